/* thread - new ticket or follow-up (see thread.h). */
#include "core/thread.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

#define TOKEN_PLACEHOLDER "{ticket}"

void thread_ref_clear(struct thread_ref *ref)
{
    free(ref->ticket_id);
    free(ref->message_id);
    free(ref->conversation_id);
    ref->ticket_id = ref->message_id = ref->conversation_id = NULL;
}

void thread_decision_clear(struct thread_decision *dec)
{
    thread_ref_clear(&dec->ref);
    dec->kind = THREAD_NEW;
    dec->evidence = "none";
}

bool thread_token_valid(const char *pattern)
{
    const char *p = strstr(pattern, TOKEN_PLACEHOLDER);
    return p != NULL && strstr(p + 1, TOKEN_PLACEHOLDER) == NULL;
}

static bool is_id_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

char *thread_token_find(const char *pattern, const char *subject)
{
    if (pattern == NULL || subject == NULL || !thread_token_valid(pattern))
        return NULL;
    const char *hole = strstr(pattern, TOKEN_PLACEHOLDER);
    size_t prefix_len = (size_t)(hole - pattern);
    const char *suffix = hole + strlen(TOKEN_PLACEHOLDER);
    size_t suffix_len = strlen(suffix);

    /* Scan every occurrence of the prefix: "Re: [#12] Fwd: [#x" must still find 12. */
    for (const char *s = subject; *s != '\0'; s++) {
        if (strncmp(s, pattern, prefix_len) != 0)
            continue;
        const char *id = s + prefix_len;
        size_t n = 0;
        while (is_id_char(id[n]))
            n++;
        if (n > 0 && strncmp(id + n, suffix, suffix_len) == 0)
            return xstrndup(id, n);
    }
    return NULL;
}

/* try_id - look ID up; on success record the follow-up decision */
static bool try_id(const char *id, const char *evidence, thread_lookup_fn lookup, void *ctx,
                   struct thread_decision *dec)
{
    if (id == NULL || *id == '\0')
        return false;
    struct thread_ref ref = {0};
    if (!lookup(ctx, id, &ref)) {
        thread_ref_clear(&ref);
        return false;
    }
    if (ref.ticket_id == NULL) { /* a posted message must know its ticket */
        thread_ref_clear(&ref);
        return false;
    }
    dec->kind = THREAD_FOLLOWUP;
    dec->ref = ref;
    dec->evidence = evidence;
    return true;
}

void thread_resolve(const struct mb_mail *mail, const char *pattern, thread_lookup_fn lookup,
                    void *ctx, struct thread_decision *dec)
{
    memset(dec, 0, sizeof(*dec));
    dec->kind = THREAD_NEW;
    dec->evidence = "none";

    if (try_id(mail->in_reply_to, "in-reply-to", lookup, ctx, dec))
        return;
    for (size_t i = mail->reference_count; i > 0; i--)
        if (try_id(mail->references[i - 1], "references", lookup, ctx, dec))
            return;
    char *ticket = thread_token_find(pattern, mail->subject);
    if (ticket != NULL) {
        dec->kind = THREAD_FOLLOWUP;
        dec->ref.ticket_id = ticket;
        dec->evidence = "subject-token";
    }
}
