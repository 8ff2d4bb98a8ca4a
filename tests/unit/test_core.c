/* test_core - threading rules, the message state machine and the mail model. */
#include <stdlib.h>
#include <string.h>

#include "core/mail.h"
#include "core/state.h"
#include "core/thread.h"
#include "lib/xalloc.h"
#include "unit.h"

/* A fake thread map: ids we "posted" and the vendor ids they map to. */
struct fake_map {
    const char *known[4];
    const char *ticket[4];
    const char *message[4];
    unsigned lookups;
};

static bool fake_lookup(void *ctx, const char *message_id, struct thread_ref *ref_r)
{
    struct fake_map *map = ctx;
    map->lookups++;
    for (size_t i = 0; i < 4 && map->known[i] != NULL; i++) {
        if (strcmp(map->known[i], message_id) == 0) {
            ref_r->ticket_id = xstrdup(map->ticket[i]);
            ref_r->message_id = xstrdup(map->message[i]);
            return true;
        }
    }
    return false;
}

static struct mb_mail *mail_with(const char *in_reply_to, const char *const *refs, const char *subject)
{
    struct mb_mail *m = mail_new();
    m->in_reply_to = xstrdup(in_reply_to);
    for (; refs != NULL && *refs != NULL; refs++)
        mail_add_reference(m, *refs);
    m->subject = xstrdup(subject ? subject : "");
    return m;
}

static void test_in_reply_to_wins(void)
{
    struct fake_map map = {{"a@x", "b@x"}, {"T1", "T2"}, {"M1", "M2"}, 0};
    const char *refs[] = {"a@x", NULL};
    struct mb_mail *m = mail_with("b@x", refs, "Re: [#T9] hello");
    struct thread_decision dec;
    thread_resolve(m, "[#{ticket}]", fake_lookup, &map, &dec);
    CU_ASSERT_EQUAL(dec.kind, THREAD_FOLLOWUP);
    CU_ASSERT_STRING_EQUAL(dec.evidence, "in-reply-to");
    CU_ASSERT_STRING_EQUAL(dec.ref.ticket_id, "T2");
    CU_ASSERT_STRING_EQUAL(dec.ref.message_id, "M2");
    thread_decision_clear(&dec);
    mail_free(&m);
    CU_ASSERT_PTR_NULL(m);
}

/* References are tried newest (last) first: a reply deep in a thread lands
 * on the message it answers, not on the thread's first message. */
static void test_references_newest_first(void)
{
    struct fake_map map = {{"first@x", "third@x"}, {"T1", "T1"}, {"M1", "M3"}, 0};
    const char *refs[] = {"first@x", "second@x", "third@x", NULL};
    struct mb_mail *m = mail_with("unknown@x", refs, "Re: hello");
    struct thread_decision dec;
    thread_resolve(m, NULL, fake_lookup, &map, &dec);
    CU_ASSERT_EQUAL(dec.kind, THREAD_FOLLOWUP);
    CU_ASSERT_STRING_EQUAL(dec.evidence, "references");
    CU_ASSERT_STRING_EQUAL(dec.ref.message_id, "M3");
    CU_ASSERT_EQUAL(map.lookups, 2); /* in-reply-to, then third@x: found */
    thread_decision_clear(&dec);
    mail_free(&m);
}

static void test_subject_token_fallback(void)
{
    struct fake_map map = {{NULL}, {NULL}, {NULL}, 0};
    struct mb_mail *m = mail_with("unknown@x", NULL, "Re: [#4711] printer on fire");
    struct thread_decision dec;
    thread_resolve(m, "[#{ticket}]", fake_lookup, &map, &dec);
    CU_ASSERT_EQUAL(dec.kind, THREAD_FOLLOWUP);
    CU_ASSERT_STRING_EQUAL(dec.evidence, "subject-token");
    CU_ASSERT_STRING_EQUAL(dec.ref.ticket_id, "4711");
    CU_ASSERT_PTR_NULL(dec.ref.message_id);
    thread_decision_clear(&dec);
    mail_free(&m);
}

static void test_nothing_known_is_new(void)
{
    struct fake_map map = {{"a@x"}, {"T1"}, {"M1"}, 0};
    const char *refs[] = {"zzz@x", NULL};
    struct mb_mail *m = mail_with(NULL, refs, "Question [#] about [#x");
    struct thread_decision dec;
    thread_resolve(m, "[#{ticket}]", fake_lookup, &map, &dec);
    CU_ASSERT_EQUAL(dec.kind, THREAD_NEW);
    CU_ASSERT_STRING_EQUAL(dec.evidence, "none");
    CU_ASSERT_PTR_NULL(dec.ref.ticket_id);
    thread_decision_clear(&dec);
    mail_free(&m);
}

static void test_token_patterns(void)
{
    static const struct {
        const char *pattern, *subject, *expect;
    } cases[] = {
        {"[#{ticket}]", "Re: [#12] x", "12"},
        {"[#{ticket}]", "[#] [#ab-9_z] tail", "ab-9_z"},
        {"[#{ticket}]", "[#12 x", NULL},
        {"(case {ticket})", "Fwd: (case 77)", "77"},
        {"Ticket#{ticket}", "Ticket#", NULL},
        {"no placeholder", "no placeholder", NULL},
        {"{ticket}{ticket}", "12", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = thread_token_find(cases[i].pattern, cases[i].subject);
        if (cases[i].expect == NULL) {
            CU_ASSERT_PTR_NULL(got);
        } else {
            CU_ASSERT_PTR_NOT_NULL_FATAL(got);
            CU_ASSERT_STRING_EQUAL(got, cases[i].expect);
        }
        free(got);
    }
    CU_ASSERT_TRUE(thread_token_valid("[#{ticket}]"));
    CU_ASSERT_FALSE(thread_token_valid("[#]"));
}

static void test_state_machine(void)
{
    CU_ASSERT_EQUAL(msg_state_after(MB_OK), MSG_DONE);
    CU_ASSERT_EQUAL(msg_state_after(MB_TEMP), MSG_RETRY);
    CU_ASSERT_EQUAL(msg_state_after(MB_PERM), MSG_QUARANTINE);
    CU_ASSERT_EQUAL(msg_state_after(MB_DOWN), MSG_QUEUED);
    for (int s = 0; s < MSG_STATE_COUNT; s++)
        CU_ASSERT_EQUAL(msg_state_parse(msg_state_name((enum msg_state)s)), s);
    CU_ASSERT_EQUAL(msg_state_parse("lost"), -1);
}

static void test_mail_model(void)
{
    struct mb_mail *m = mail_new();
    mail_add_warning(m, "charset %s unknown", "x-foo");
    mail_add_warning(m, "charset %s unknown", "x-foo");
    CU_ASSERT_EQUAL(m->warning_count, 1);
    struct mb_attachment *a = mail_add_attachment(m);
    a->content_id = xstrdup("logo@x");
    mail_add_attachment(m)->content_id = xstrdup("other@x");
    CU_ASSERT_PTR_EQUAL(mail_find_attachment_by_cid(m, "other@x"), &m->attachments[1]);
    CU_ASSERT_PTR_NULL(mail_find_attachment_by_cid(m, "LOGO@x"));
    address_list_add(&m->to, NULL, "a@example.com");
    CU_ASSERT_PTR_NULL(m->to.items[0].name);
    mail_free(&m);
}

int main(void)
{
    static const struct unit_test thread_tests[] = {
        {"In-Reply-To wins over References and token", test_in_reply_to_wins},
        {"References tried newest first", test_references_newest_first},
        {"subject token is the fallback", test_subject_token_fallback},
        {"nothing known: new ticket", test_nothing_known_is_new},
        {"token patterns", test_token_patterns},
        {NULL, NULL},
    };
    static const struct unit_test model_tests[] = {
        {"state machine", test_state_machine},
        {"mail model helpers", test_mail_model},
        {NULL, NULL},
    };
    static const struct unit_suite suites[] = {
        {"thread", thread_tests, NULL, NULL},
        {"model", model_tests, NULL, NULL},
        {NULL, NULL, NULL, NULL},
    };
    return unit_run(suites);
}
