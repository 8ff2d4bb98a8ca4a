/* thread - decide whether a mail opens a new ticket or follows one up.
 *
 * Evidence, strongest first: In-Reply-To, then References from the newest
 * (last) id back to the oldest, each looked up in the caller's map of
 * Message-Ids we have already posted; then a ticket token in the subject
 * (for example "[#{ticket}]" matching "Re: help [#4711]"). No I/O here: the
 * lookup is the caller's callback, so these rules test in microseconds. */
#ifndef MB_CORE_THREAD_H
#define MB_CORE_THREAD_H

#include <stdbool.h>

#include "core/mail.h"

/* The vendor ids a message we posted maps to. */
struct thread_ref {
    char *ticket_id;       /* owned: vendor ticket/case id (ITX caseEactId) */
    char *message_id;      /* owned: vendor id of that message (ITX eactId); NULL if unknown */
    char *conversation_id; /* owned: vendor conversation id; NULL if unknown */
};

void thread_ref_clear(struct thread_ref *ref);

enum thread_kind { THREAD_NEW, THREAD_FOLLOWUP };

struct thread_decision {
    enum thread_kind kind;
    struct thread_ref ref; /* owned: for THREAD_FOLLOWUP, the ticket and the message replied to */
    const char *evidence;  /* static: "in-reply-to", "references", "subject-token" or "none" */
};

/* thread_lookup_fn - fill REF_R (caller-owned, zeroed) for a Message-Id we
 * already posted and return true; false when unknown. */
typedef bool (*thread_lookup_fn)(void *ctx, const char *message_id, struct thread_ref *ref_r);

/* thread_token_valid - PATTERN contains exactly one "{ticket}" */
bool thread_token_valid(const char *pattern);

/* thread_token_find - the ticket id that PATTERN finds in SUBJECT (owned by
 * the caller), or NULL. The id is the longest run of [A-Za-z0-9_-] where
 * "{ticket}" stands. */
char *thread_token_find(const char *pattern, const char *subject);

/* thread_resolve - fill DEC_R (release with thread_decision_clear). PATTERN
 * may be NULL (no subject token). */
void thread_resolve(const struct mb_mail *mail, const char *pattern, thread_lookup_fn lookup,
                    void *ctx, struct thread_decision *dec_r);
void thread_decision_clear(struct thread_decision *dec);

#endif
