/* test_store - the SQLite store on real files in a temp dir: one row per
 * (route, key), the message life cycle and its attempt counting, due
 * ordering, the thread map, requeue, and what survives a close and reopen. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "unit.h"

struct fixture {
    char dir[64];        /* mkdtemp directory, removed by fixture_done */
    char path[128];      /* DIR/store.db */
    struct store *store; /* owned */
};

/* fixture_init - a fresh store in a new temp dir */
static void fixture_init(struct fixture *fx)
{
    struct mb_error err;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/mb-store-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    fx->store = NULL;
    CU_ASSERT_EQUAL_FATAL(store_open(fx->path, &fx->store, &err), MB_OK);
}

/* fixture_done - close the store and remove the temp dir with its files */
static void fixture_done(struct fixture *fx)
{
    store_close(&fx->store);
    CU_ASSERT_PTR_NULL(fx->store);
    DIR *d = opendir(fx->dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char file[512];
        snprintf(file, sizeof(file), "%s/%s", fx->dir, e->d_name);
        if (unlink(file) != 0)
            rmdir(file);
    }
    closedir(d);
    CU_ASSERT_EQUAL(rmdir(fx->dir), 0);
}

/* reopen - close and open the same file again */
static void reopen(struct fixture *fx)
{
    struct mb_error err;
    store_close(&fx->store);
    CU_ASSERT_EQUAL_FATAL(store_open(fx->path, &fx->store, &err), MB_OK);
}

/* put - enqueue a message with RAW as its bytes (NULL keeps none); returns its row id */
static long long put(struct store *store, const char *route, const char *key,
                     const char *message_id, const char *raw)
{
    struct store_new_msg m = {
        .route = route,
        .key = key,
        .source = "maildir:/srv/mail/cur/1",
        .message_id = message_id,
        .subject = "Printer on fire",
        .raw = raw,
        .raw_len = raw != NULL ? strlen(raw) : 0,
    };
    struct store_msg msg;
    struct mb_error err;
    bool created = false;
    CU_ASSERT_EQUAL_FATAL(store_enqueue(store, &m, &created, &msg, &err), MB_OK);
    CU_ASSERT_TRUE(created);
    long long id = msg.id;
    store_msg_clear(&msg);
    return id;
}

/* post - one attempt on message ID ending with OUTCOME */
static void post(struct store *store, long long id, const struct store_outcome *outcome)
{
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(store_begin_attempt(store, id, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(store_finish_attempt(store, id, outcome, &err), MB_OK);
}

/* get - the row of (ROUTE, KEY), which must exist */
static void get(struct store *store, const char *route, const char *key, struct store_msg *msg)
{
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(store_get(store, route, key, msg, &err), MB_OK);
}

/* raw_equals - the kept raw bytes of ID are exactly EXPECT */
static bool raw_equals(struct store *store, long long id, const char *expect)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    struct mb_error err;
    if (store_load_raw(store, id, &raw, &len, &err) != MB_OK || raw == NULL)
        return false;
    bool same = len == strlen(expect) && memcmp(raw, expect, len) == 0;
    free(raw);
    return same;
}

static const struct store_outcome temp_503 = {.status = MB_TEMP,
                                              .error = "HTTP 503 Service Unavailable",
                                              .http_status = 503,
                                              .next_attempt_ms = 1000};

static void test_enqueue_one_row_per_route_and_key(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct store_new_msg m = {.route = "support",
                              .key = "k1",
                              .source = "imap:support/812",
                              .message_id = "abc@example.com",
                              .subject = "Help",
                              .raw = "raw one",
                              .raw_len = 7};
    struct store_msg first, again, other;
    struct mb_error err;
    bool created = false;
    CU_ASSERT_EQUAL_FATAL(store_enqueue(fx.store, &m, &created, &first, &err), MB_OK);
    CU_ASSERT_TRUE(created);
    CU_ASSERT(first.id > 0);
    CU_ASSERT_EQUAL(first.state, MSG_QUEUED);
    CU_ASSERT_EQUAL(first.attempts, 0);
    CU_ASSERT_STRING_EQUAL(first.route, "support");
    CU_ASSERT_STRING_EQUAL(first.key, "k1");
    CU_ASSERT_STRING_EQUAL(first.source, "imap:support/812");
    CU_ASSERT_STRING_EQUAL(first.message_id, "abc@example.com");
    CU_ASSERT_STRING_EQUAL(first.subject, "Help");
    CU_ASSERT_PTR_NULL(first.last_error);
    CU_ASSERT_PTR_NULL(first.ticket_id);
    CU_ASSERT(first.updated_ms > 0);

    /* the same mail ingested again: the existing row, nothing rewritten */
    m.subject = "Changed";
    m.raw = "raw two";
    created = true;
    CU_ASSERT_EQUAL_FATAL(store_enqueue(fx.store, &m, &created, &again, &err), MB_OK);
    CU_ASSERT_FALSE(created);
    CU_ASSERT_EQUAL(again.id, first.id);
    CU_ASSERT_STRING_EQUAL(again.subject, "Help");
    CU_ASSERT_EQUAL(again.updated_ms, first.updated_ms);
    CU_ASSERT_TRUE(raw_equals(fx.store, first.id, "raw one"));

    /* the same key on another route is another message */
    m.route = "sales";
    CU_ASSERT_EQUAL_FATAL(store_enqueue(fx.store, &m, &created, &other, &err), MB_OK);
    CU_ASSERT_TRUE(created);
    CU_ASSERT_NOT_EQUAL(other.id, first.id);
    CU_ASSERT_STRING_EQUAL(other.route, "sales");
    CU_ASSERT_TRUE(raw_equals(fx.store, other.id, "raw two"));

    unsigned long long counts[MSG_STATE_COUNT];
    CU_ASSERT_EQUAL(store_counts(fx.store, NULL, counts, &err), MB_OK);
    CU_ASSERT_EQUAL(counts[MSG_QUEUED], 2);
    store_msg_clear(&first);
    store_msg_clear(&again);
    store_msg_clear(&other);
    CU_ASSERT_PTR_NULL(first.route);
    fixture_done(&fx);
}

static void test_lifecycle_done_teaches_thread_map(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct thread_ref ref = {0};
    struct store_msg msg;
    long long id = put(fx.store, "support", "k1", "abc@example.com", "From: a\r\n\r\nhi");
    CU_ASSERT_FALSE(store_thread_lookup(fx.store, "support", "abc@example.com", &ref));

    CU_ASSERT_EQUAL_FATAL(store_begin_attempt(fx.store, id, &err), MB_OK);
    get(fx.store, "support", "k1", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_POSTING);
    CU_ASSERT_EQUAL(msg.attempts, 1);
    store_msg_clear(&msg);
    CU_ASSERT_FALSE(store_thread_lookup(fx.store, "support", "abc@example.com", &ref));

    const struct store_outcome ok = {.status = MB_OK,
                                     .http_status = 201,
                                     .ticket_id = "4711",
                                     .vendor_message_id = "m-9",
                                     .conversation_id = "c-3"};
    CU_ASSERT_EQUAL_FATAL(store_finish_attempt(fx.store, id, &ok, &err), MB_OK);
    get(fx.store, "support", "k1", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_DONE);
    CU_ASSERT_EQUAL(msg.attempts, 1);
    CU_ASSERT_STRING_EQUAL(msg.ticket_id, "4711");
    CU_ASSERT_STRING_EQUAL(msg.vendor_message_id, "m-9");
    CU_ASSERT_PTR_NULL(msg.last_error);
    store_msg_clear(&msg);

    CU_ASSERT_TRUE_FATAL(store_thread_lookup(fx.store, "support", "abc@example.com", &ref));
    CU_ASSERT_STRING_EQUAL(ref.ticket_id, "4711");
    CU_ASSERT_STRING_EQUAL(ref.message_id, "m-9");
    CU_ASSERT_STRING_EQUAL(ref.conversation_id, "c-3");
    thread_ref_clear(&ref);
    /* the map is per route */
    CU_ASSERT_FALSE(store_thread_lookup(fx.store, "sales", "abc@example.com", &ref));
    CU_ASSERT_FALSE(store_thread_lookup(fx.store, "support", "other@example.com", &ref));
    CU_ASSERT_PTR_NULL(ref.ticket_id);

    /* delivered: the raw bytes are gone, and it cannot be posted twice */
    unsigned char *raw = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(store_load_raw(fx.store, id, &raw, &len, &err), MB_OK);
    CU_ASSERT_PTR_NULL(raw);
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, id, &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "done"));
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, id, &ok, &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "not posting"));
    fixture_done(&fx);
}

/* The thread map follows the newest post of a Message-Id; a mail without
 * one posts fine and teaches nothing. */
static void test_thread_map_updates_and_needs_message_id(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct thread_ref ref = {0};
    long long a = put(fx.store, "support", "k1", "same@example.com", "a");
    long long b = put(fx.store, "support", "k2", "same@example.com", "b");
    long long c = put(fx.store, "support", "k3", NULL, "c");
    const struct store_outcome ok_a = {.status = MB_OK, .ticket_id = "1", .vendor_message_id = "x"};
    const struct store_outcome ok_b = {.status = MB_OK, .ticket_id = "2"};
    post(fx.store, a, &ok_a);
    post(fx.store, b, &ok_b);
    post(fx.store, c, &ok_a);
    CU_ASSERT_TRUE_FATAL(store_thread_lookup(fx.store, "support", "same@example.com", &ref));
    CU_ASSERT_STRING_EQUAL(ref.ticket_id, "2");
    CU_ASSERT_PTR_NULL(ref.message_id);
    CU_ASSERT_PTR_NULL(ref.conversation_id);
    thread_ref_clear(&ref);
    fixture_done(&fx);
}

static void test_temp_failure_is_due_at_its_time_oldest_first(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg *due = NULL, msg;
    size_t n = 0;
    long long a = put(fx.store, "support", "a", NULL, "a");
    long long b = put(fx.store, "support", "b", NULL, "b");
    put(fx.store, "support", "c", NULL, "c");
    put(fx.store, "sales", "d", NULL, "d");
    struct store_outcome late = temp_503;
    late.next_attempt_ms = 2000;
    post(fx.store, a, &late);     /* due at 2000 */
    post(fx.store, b, &temp_503); /* due at 1000 */

    get(fx.store, "support", "a", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_RETRY);
    CU_ASSERT_EQUAL(msg.attempts, 1);
    CU_ASSERT_EQUAL(msg.next_attempt_ms, 2000);
    CU_ASSERT_STRING_EQUAL(msg.last_error, "HTTP 503 Service Unavailable");
    store_msg_clear(&msg);
    CU_ASSERT_TRUE(raw_equals(fx.store, a, "a"));

    static const struct {
        long long now;
        const char *route;
        size_t limit;
        size_t count;
        const char *keys[4];
    } cases[] = {
        {999, "support", 10, 1, {"c"}},       {1000, "support", 10, 2, {"b", "c"}},
        {1999, NULL, 10, 3, {"b", "c", "d"}}, {2000, NULL, 10, 4, {"a", "b", "c", "d"}},
        {5000, NULL, 2, 2, {"a", "b"}},       {5000, "sales", 10, 1, {"d"}},
        {5000, "nobody", 10, 0, {NULL}},      {5000, NULL, 0, 0, {NULL}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CU_ASSERT_EQUAL_FATAL(
            store_due(fx.store, cases[i].route, cases[i].now, cases[i].limit, &due, &n, &err),
            MB_OK);
        CU_ASSERT_EQUAL(n, cases[i].count);
        for (size_t j = 0; j < n && j < cases[i].count; j++)
            CU_ASSERT_STRING_EQUAL(due[j].key, cases[i].keys[j]);
        store_msgs_free(&due, n);
        CU_ASSERT_PTR_NULL(due);
    }

    /* a due RETRY row posts again and counts the second attempt */
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, b, &err), MB_OK);
    get(fx.store, "support", "b", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_POSTING);
    CU_ASSERT_EQUAL(msg.attempts, 2);
    store_msg_clear(&msg);
    fixture_done(&fx);
}

static void test_perm_failure_quarantines_and_keeps_raw(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg *due = NULL, msg;
    size_t n = 0;
    long long id = put(fx.store, "support", "k1", NULL, "bytes");
    const struct store_outcome perm = {
        .status = MB_PERM, .error = "HTTP 400: bad address", .http_status = 400};
    post(fx.store, id, &perm);
    get(fx.store, "support", "k1", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_QUARANTINE);
    CU_ASSERT_EQUAL(msg.attempts, 1);
    CU_ASSERT_STRING_EQUAL(msg.last_error, "HTTP 400: bad address");
    store_msg_clear(&msg);
    CU_ASSERT_TRUE(raw_equals(fx.store, id, "bytes"));
    CU_ASSERT_EQUAL(store_due(fx.store, NULL, 1LL << 50, 10, &due, &n, &err), MB_OK);
    CU_ASSERT_EQUAL(n, 0);
    store_msgs_free(&due, n);
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, id, &err), MB_PERM);
    fixture_done(&fx);
}

/* DOWN stops the route, not the message: back to QUEUED, attempt not counted */
static void test_down_requeues_without_counting(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg *due = NULL, msg;
    size_t n = 0;
    long long id = put(fx.store, "support", "k1", NULL, "bytes");
    const struct store_outcome down = {
        .status = MB_DOWN, .error = "HTTP 401: bad token", .http_status = 401};
    post(fx.store, id, &down);
    post(fx.store, id, &down);
    get(fx.store, "support", "k1", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_QUEUED);
    CU_ASSERT_EQUAL(msg.attempts, 0);
    CU_ASSERT_STRING_EQUAL(msg.last_error, "HTTP 401: bad token");
    store_msg_clear(&msg);
    CU_ASSERT_EQUAL(store_due(fx.store, "support", 0, 10, &due, &n, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(due[0].id, id);
    store_msgs_free(&due, n);
    CU_ASSERT_TRUE(raw_equals(fx.store, id, "bytes"));
    fixture_done(&fx);
}

static void test_set_quarantine(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg msg;
    long long id = put(fx.store, "support", "k1", NULL, "garbage");
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, id, "MIME depth over 20", &err), MB_OK);
    get(fx.store, "support", "k1", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_QUARANTINE);
    CU_ASSERT_EQUAL(msg.attempts, 0);
    CU_ASSERT_STRING_EQUAL(msg.last_error, "MIME depth over 20");
    store_msg_clear(&msg);
    CU_ASSERT_TRUE(raw_equals(fx.store, id, "garbage"));

    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, id + 100, "x", &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "unknown message"));
    long long done = put(fx.store, "support", "k2", NULL, "ok");
    post(fx.store, done, &(struct store_outcome){.status = MB_OK, .ticket_id = "1"});
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, done, "x", &err), MB_PERM);

    /* from POSTING too: the open attempt is closed and the message no longer posting */
    long long posting = put(fx.store, "support", "k3", NULL, "p");
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, posting, &err), MB_OK);
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, posting, "unparseable", &err), MB_OK);
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, posting, &temp_503, &err), MB_PERM);
    fixture_done(&fx);
}

static void test_counts_and_list_per_state_and_route(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    unsigned long long counts[MSG_STATE_COUNT];
    struct store_msg *list = NULL;
    size_t n = 0;
    put(fx.store, "support", "q1", NULL, "r");
    put(fx.store, "support", "q2", NULL, "r");
    long long p = put(fx.store, "support", "p", NULL, "r");
    long long t = put(fx.store, "sales", "t", NULL, "r");
    long long x = put(fx.store, "sales", "x", NULL, "r");
    long long o = put(fx.store, "sales", "o", NULL, "r");
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, p, &err), MB_OK);
    post(fx.store, t, &temp_503);
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, x, "bad", &err), MB_OK);
    post(fx.store, o, &(struct store_outcome){.status = MB_OK, .ticket_id = "7"});

    static const struct {
        const char *route;
        unsigned long long expect[MSG_STATE_COUNT]; /* queued posting done retry quarantine */
    } cases[] = {
        {NULL, {2, 1, 1, 1, 1}},
        {"support", {2, 1, 0, 0, 0}},
        {"sales", {0, 0, 1, 1, 1}},
        {"nobody", {0, 0, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CU_ASSERT_EQUAL_FATAL(store_counts(fx.store, cases[i].route, counts, &err), MB_OK);
        for (int s = 0; s < MSG_STATE_COUNT; s++)
            CU_ASSERT_EQUAL(counts[s], cases[i].expect[s]);
    }

    CU_ASSERT_EQUAL_FATAL(store_list(fx.store, NULL, MSG_QUEUED, 10, &list, &n, &err), MB_OK);
    CU_ASSERT_EQUAL(n, 2);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(list[i].state, MSG_QUEUED);
    store_msgs_free(&list, n);
    CU_ASSERT_EQUAL_FATAL(store_list(fx.store, NULL, MSG_QUEUED, 1, &list, &n, &err), MB_OK);
    CU_ASSERT_EQUAL(n, 1);
    store_msgs_free(&list, n);
    CU_ASSERT_EQUAL_FATAL(store_list(fx.store, "sales", MSG_QUARANTINE, 10, &list, &n, &err),
                          MB_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(list[0].key, "x");
    CU_ASSERT_STRING_EQUAL(list[0].last_error, "bad");
    store_msgs_free(&list, n);
    CU_ASSERT_EQUAL_FATAL(store_list(fx.store, "support", MSG_QUARANTINE, 10, &list, &n, &err),
                          MB_OK);
    CU_ASSERT_EQUAL(n, 0);
    store_msgs_free(&list, n);
    fixture_done(&fx);
}

static void test_requeue_all_and_by_key(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg msg;
    unsigned long long count = 99;
    const struct store_outcome perm = {.status = MB_PERM, .error = "HTTP 422"};
    long long k1 = put(fx.store, "support", "k1", NULL, "one");
    long long k2 = put(fx.store, "support", "k2", NULL, "two");
    long long r = put(fx.store, "sales", "r", NULL, "three");
    long long done = put(fx.store, "sales", "done", NULL, "four");
    long long noraw = put(fx.store, "sales", "noraw", NULL, NULL);
    post(fx.store, k1, &perm);
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, k2, "unparseable", &err), MB_OK);
    post(fx.store, r, &temp_503);
    post(fx.store, done, &(struct store_outcome){.status = MB_OK, .ticket_id = "1"});
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, noraw, "empty", &err), MB_OK);

    CU_ASSERT_EQUAL(store_requeue(fx.store, "support", "k1", &count, &err), MB_OK);
    CU_ASSERT_EQUAL(count, 1);
    get(fx.store, "support", "k1", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_QUEUED);
    CU_ASSERT_EQUAL(msg.attempts, 0);
    CU_ASSERT_EQUAL(msg.next_attempt_ms, 0);
    CU_ASSERT_PTR_NULL(msg.last_error);
    store_msg_clear(&msg);
    get(fx.store, "support", "k2", &msg);
    CU_ASSERT_EQUAL(msg.state, MSG_QUARANTINE);
    store_msg_clear(&msg);

    /* every route: k2 and the RETRY row; not DONE, not the row without raw bytes */
    CU_ASSERT_EQUAL(store_requeue(fx.store, NULL, NULL, &count, &err), MB_OK);
    CU_ASSERT_EQUAL(count, 2);
    unsigned long long counts[MSG_STATE_COUNT];
    CU_ASSERT_EQUAL(store_counts(fx.store, NULL, counts, &err), MB_OK);
    CU_ASSERT_EQUAL(counts[MSG_QUEUED], 3);
    CU_ASSERT_EQUAL(counts[MSG_DONE], 1);
    CU_ASSERT_EQUAL(counts[MSG_QUARANTINE], 1);
    CU_ASSERT_EQUAL(counts[MSG_RETRY], 0);
    CU_ASSERT_EQUAL(store_requeue(fx.store, NULL, NULL, &count, &err), MB_OK);
    CU_ASSERT_EQUAL(count, 0);
    CU_ASSERT_TRUE(raw_equals(fx.store, k2, "two"));
    fixture_done(&fx);
}

/* A commit is a commit: rows, raw bytes, the thread map and a message left
 * POSTING by a crash are all there after close and reopen. */
static void test_persists_across_reopen(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg *list = NULL;
    struct thread_ref ref = {0};
    size_t n = 0;
    long long a = put(fx.store, "support", "a", "a@example.com", "raw a");
    long long b = put(fx.store, "support", "b", "b@example.com", "raw b");
    put(fx.store, "support", "c", NULL, "raw c");
    post(fx.store, a, &(struct store_outcome){.status = MB_OK, .ticket_id = "10"});
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, b, &err), MB_OK); /* then the process dies */

    reopen(&fx);
    CU_ASSERT_EQUAL_FATAL(store_list(fx.store, NULL, MSG_POSTING, 10, &list, &n, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(list[0].id, b);
    CU_ASSERT_EQUAL(list[0].attempts, 1);
    CU_ASSERT_EQUAL(list[0].owner_pid, (long)getpid()); /* who was posting it */
    store_msgs_free(&list, n);
    CU_ASSERT_TRUE(raw_equals(fx.store, b, "raw b"));
    CU_ASSERT_TRUE_FATAL(store_thread_lookup(fx.store, "support", "a@example.com", &ref));
    CU_ASSERT_STRING_EQUAL(ref.ticket_id, "10");
    thread_ref_clear(&ref);
    unsigned long long counts[MSG_STATE_COUNT];
    CU_ASSERT_EQUAL(store_counts(fx.store, NULL, counts, &err), MB_OK);
    CU_ASSERT_EQUAL(counts[MSG_QUEUED], 1);
    CU_ASSERT_EQUAL(counts[MSG_POSTING], 1);
    CU_ASSERT_EQUAL(counts[MSG_DONE], 1);

    /* Still claimed: nobody may post it again before it is reconciled. */
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, b, &err), MB_TEMP);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "being posted by another process"));
    /* reconciled (the vendor never got it): due again at once, posted, delivered */
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, b, &(struct store_outcome){.status = MB_TEMP,
                                         .error = "answer lost", .next_attempt_ms = 0}, &err), MB_OK);
    post(fx.store, b, &(struct store_outcome){.status = MB_OK, .ticket_id = "11"});
    CU_ASSERT_TRUE_FATAL(store_thread_lookup(fx.store, "support", "b@example.com", &ref));
    CU_ASSERT_STRING_EQUAL(ref.ticket_id, "11");
    thread_ref_clear(&ref);
    struct store_msg msg;
    get(fx.store, "support", "b", &msg);
    CU_ASSERT_EQUAL(msg.attempts, 2);
    store_msg_clear(&msg);
    fixture_done(&fx);
}

static void test_open_errors_name_the_file(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct store *other = NULL;
    struct mb_error err;
    char path[256];

    snprintf(path, sizeof(path), "%s/no/such/dir/store.db", fx.dir);
    CU_ASSERT_EQUAL(store_open(path, &other, &err), MB_CONFIG);
    CU_ASSERT_PTR_NULL(other);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "unable to open"));

    snprintf(path, sizeof(path), "%s/garbage.db", fx.dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database, it is a mail spool\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(store_open(path, &other, &err), MB_CONFIG);
    CU_ASSERT_PTR_NULL(other);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "not a database"));

    snprintf(path, sizeof(path), "%s/adir", fx.dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0700), 0);
    CU_ASSERT_EQUAL(store_open(path, &other, &err), MB_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, path));

    /* a second handle on the same file works alongside the first */
    CU_ASSERT_EQUAL_FATAL(store_open(fx.path, &other, &err), MB_OK);
    long long id = put(other, "support", "k", NULL, "r");
    struct store_msg msg;
    get(fx.store, "support", "k", &msg);
    CU_ASSERT_EQUAL(msg.id, id);
    store_msg_clear(&msg);
    store_close(&other);
    fixture_done(&fx);
}

static void test_unknown_messages_are_perm(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg msg;
    unsigned char *raw = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(store_get(fx.store, "support", "nope", &msg, &err), MB_PERM);
    CU_ASSERT_EQUAL(err.status, MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "unknown"));
    CU_ASSERT_PTR_NULL(msg.route);
    CU_ASSERT_EQUAL(store_load_raw(fx.store, 42, &raw, &len, &err), MB_PERM);
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, 42, &err), MB_PERM);
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, 42, &temp_503, &err), MB_PERM);
    fixture_done(&fx);
}

/* A mailbox message is acknowledged to its source only once it is DONE or
 * QUARANTINE, exactly once; a relocated message owes its new place an ack. */
static void test_source_acks_wait_for_a_safe_state(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_msg *due = NULL, row;
    size_t n = 0;
    bool created = false;
    struct store_new_msg m = {.route = "support", .key = "a", .source = "imap:INBOX;UID=7",
                              .raw = "x", .raw_len = 1, .ack_wanted = true};
    CU_ASSERT_EQUAL_FATAL(store_enqueue(fx.store, &m, &created, &row, &err), MB_OK);
    long long a = row.id;
    store_msg_clear(&row);
    m.key = "b";
    CU_ASSERT_EQUAL_FATAL(store_enqueue(fx.store, &m, &created, &row, &err), MB_OK);
    long long b = row.id;
    store_msg_clear(&row);
    long long archive = put(fx.store, "support", "c", NULL, "from an archive: no ack wanted");

    CU_ASSERT_EQUAL(store_ack_due(fx.store, "support", 10, &due, &n, &err), MB_OK);
    CU_ASSERT_EQUAL(n, 0); /* queued: not safe with the vendor yet */
    store_msgs_free(&due, n);
    post(fx.store, a, &(struct store_outcome){.status = MB_TEMP, .error = "503", .next_attempt_ms = 1});
    post(fx.store, archive, &(struct store_outcome){.status = MB_OK, .ticket_id = "1"});
    CU_ASSERT_EQUAL(store_ack_due(fx.store, "support", 10, &due, &n, &err), MB_OK);
    CU_ASSERT_EQUAL(n, 0); /* retry is not safe either; the archive row wants no ack */
    store_msgs_free(&due, n);
    post(fx.store, a, &(struct store_outcome){.status = MB_OK, .ticket_id = "1"});
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, b, "bad", &err), MB_OK);
    CU_ASSERT_EQUAL(store_ack_due(fx.store, "support", 10, &due, &n, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_EQUAL(due[0].id, a);
    CU_ASSERT_EQUAL(due[0].state, MSG_DONE);
    CU_ASSERT_EQUAL(due[1].state, MSG_QUARANTINE);
    store_msgs_free(&due, n);
    CU_ASSERT_EQUAL(store_ack_done(fx.store, a, &err), MB_OK);
    CU_ASSERT_EQUAL(store_ack_done(fx.store, b, &err), MB_OK);
    CU_ASSERT_EQUAL(store_ack_due(fx.store, "support", 10, &due, &n, &err), MB_OK);
    CU_ASSERT_EQUAL(n, 0);
    store_msgs_free(&due, n);

    CU_ASSERT_EQUAL(store_relocate(fx.store, a, "imap:INBOX;UIDVALIDITY=2;UID=1", &err), MB_OK);
    CU_ASSERT_EQUAL(store_ack_due(fx.store, "support", 10, &due, &n, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(due[0].source, "imap:INBOX;UIDVALIDITY=2;UID=1");
    store_msgs_free(&due, n);
    fixture_done(&fx);
}

static void test_checkpoints_and_items_persist(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    uint32_t validity = 9, next = 9;
    CU_ASSERT_EQUAL(store_checkpoint_get(fx.store, "imap:support", "INBOX", &validity, &next, &err), MB_OK);
    CU_ASSERT_EQUAL(validity, 0);
    CU_ASSERT_EQUAL(next, 0);
    CU_ASSERT_EQUAL(store_checkpoint_set(fx.store, "imap:support", "INBOX", 1700000000u, 42, &err), MB_OK);
    CU_ASSERT_EQUAL(store_checkpoint_set(fx.store, "imap:support", "INBOX", 1700000000u, 43, &err), MB_OK);
    CU_ASSERT_EQUAL(store_checkpoint_set(fx.store, "imap:support", "Other", 5, 1, &err), MB_OK);
    bool seen = true;
    CU_ASSERT_EQUAL(store_item_seen(fx.store, "pop3:support", "000001", &seen, &err), MB_OK);
    CU_ASSERT_FALSE(seen);
    CU_ASSERT_EQUAL(store_item_add(fx.store, "pop3:support", "000001", &err), MB_OK);
    CU_ASSERT_EQUAL(store_item_add(fx.store, "pop3:support", "000001", &err), MB_OK); /* idempotent */
    reopen(&fx);
    CU_ASSERT_EQUAL(store_checkpoint_get(fx.store, "imap:support", "INBOX", &validity, &next, &err), MB_OK);
    CU_ASSERT_EQUAL(validity, 1700000000u); /* UIDVALIDITY is unsigned 32-bit: no sign trouble */
    CU_ASSERT_EQUAL(next, 43);
    CU_ASSERT_EQUAL(store_item_seen(fx.store, "pop3:support", "000001", &seen, &err), MB_OK);
    CU_ASSERT_TRUE(seen);
    CU_ASSERT_EQUAL(store_item_seen(fx.store, "pop3:other", "000001", &seen, &err), MB_OK);
    CU_ASSERT_FALSE(seen);
    fixture_done(&fx);
}

/* A batch: each change atomic, visible to its own handle at once, durable
 * and visible to others only at the commit; a crash before it loses the lot. */
static void test_batches_commit_once(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store *other = NULL;
    CU_ASSERT_EQUAL_FATAL(store_open(fx.path, &other, &err), MB_OK);
    long long a = put(fx.store, "support", "a", "a@example.com", "raw a");
    long long b = put(fx.store, "support", "b", "b@example.com", "raw b");
    CU_ASSERT_EQUAL_FATAL(store_begin_attempt(fx.store, a, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(store_begin_attempt(fx.store, b, &err), MB_OK);

    CU_ASSERT_EQUAL_FATAL(store_batch_begin(fx.store, &err), MB_OK);
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, a, &(struct store_outcome){.status = MB_OK, .ticket_id = "7"}, &err), MB_OK);
    /* a failing operation inside the batch undoes only itself */
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, a, &(struct store_outcome){.status = MB_OK, .ticket_id = "8"}, &err), MB_PERM);
    struct thread_ref ref = {0};
    CU_ASSERT_TRUE(store_thread_lookup(fx.store, "support", "a@example.com", &ref)); /* seen by its own handle */
    CU_ASSERT_STRING_EQUAL(ref.ticket_id, "7");
    thread_ref_clear(&ref);
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, b, &(struct store_outcome){.status = MB_OK, .ticket_id = "9"}, &err), MB_OK);
    CU_ASSERT_FALSE(store_thread_lookup(other, "support", "a@example.com", &ref)); /* not by others yet */
    CU_ASSERT_EQUAL(store_batch_commit(fx.store, &err), MB_OK);
    CU_ASSERT_TRUE(store_thread_lookup(other, "support", "b@example.com", &ref));
    thread_ref_clear(&ref);

    /* a batch that never commits (the process dies) leaves the state before it */
    long long c = put(fx.store, "support", "c", "c@example.com", "raw c");
    CU_ASSERT_EQUAL_FATAL(store_begin_attempt(fx.store, c, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(store_batch_begin(fx.store, &err), MB_OK);
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, c, &(struct store_outcome){.status = MB_OK, .ticket_id = "1"}, &err), MB_OK);
    store_close(&fx.store);
    reopen(&fx);
    struct store_msg row;
    get(fx.store, "support", "c", &row);
    CU_ASSERT_EQUAL(row.state, MSG_POSTING); /* to be reconciled with the vendor */
    store_msg_clear(&row);
    store_close(&other);
    fixture_done(&fx);
}

/* A new message that is to be posted at once is claimed as it is inserted:
 * one statement, the same state as store_begin_attempt leaves. */
static void test_enqueue_can_claim_a_new_row(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    struct store_new_msg m = {.route = "support", .key = "c", .message_id = "c@example.com",
                              .raw = "raw c", .raw_len = 5, .claim = true};
    struct store_msg admitted, row;
    bool created = false;
    CU_ASSERT_EQUAL_FATAL(store_enqueue(fx.store, &m, &created, &admitted, &err), MB_OK);
    CU_ASSERT_TRUE(created);
    CU_ASSERT_EQUAL(admitted.state, MSG_QUEUED); /* as admitted, before the claim */
    CU_ASSERT_EQUAL(admitted.attempts, 0);
    CU_ASSERT_STRING_EQUAL(admitted.key, "c");
    get(fx.store, "support", "c", &row);
    CU_ASSERT_EQUAL(row.id, admitted.id);
    CU_ASSERT_EQUAL(row.state, MSG_POSTING);
    CU_ASSERT_EQUAL(row.attempts, 1);
    CU_ASSERT_EQUAL(row.owner_pid, (long)getpid());
    store_msg_clear(&row);
    /* claimed: nobody else may begin it */
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, admitted.id, &err), MB_TEMP);
    /* an existing row is never claimed by an enqueue */
    struct store_msg again;
    CU_ASSERT_EQUAL_FATAL(store_enqueue(fx.store, &m, &created, &again, &err), MB_OK);
    CU_ASSERT_FALSE(created);
    CU_ASSERT_EQUAL(again.state, MSG_POSTING);
    store_msg_clear(&again);
    CU_ASSERT_EQUAL(store_finish_attempt(fx.store, admitted.id,
                                         &(struct store_outcome){.status = MB_OK, .ticket_id = "9"}, &err),
                    MB_OK);
    get(fx.store, "support", "c", &row);
    CU_ASSERT_EQUAL(row.state, MSG_DONE);
    CU_ASSERT_EQUAL(row.attempts, 1);
    store_msg_clear(&row);
    store_msg_clear(&admitted);
    fixture_done(&fx);
}

/* A mailbox message is enqueued without its bytes (the mailbox holds it);
 * they are kept only once it will not be handed over again undelivered. */
static void test_raw_kept_only_when_asked(void)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mb_error err;
    long long id = put(fx.store, "support", "m", "m@example.com", NULL);
    unsigned char *raw = (unsigned char *)"sentinel";
    size_t len = 99;
    CU_ASSERT_EQUAL(store_load_raw(fx.store, id, &raw, &len, &err), MB_OK);
    CU_ASSERT_PTR_NULL(raw);
    CU_ASSERT_EQUAL(len, 0);
    /* nothing to requeue: the bytes are not here */
    CU_ASSERT_EQUAL(store_set_quarantine(fx.store, id, "x", &err), MB_OK);
    unsigned long long count = 99;
    CU_ASSERT_EQUAL(store_requeue(fx.store, NULL, NULL, &count, &err), MB_OK);
    CU_ASSERT_EQUAL(count, 0);
    CU_ASSERT_EQUAL(store_keep_raw(fx.store, id, "first", 5, &err), MB_OK);
    CU_ASSERT_EQUAL(store_keep_raw(fx.store, id, "second", 6, &err), MB_OK); /* kept already */
    CU_ASSERT_TRUE(raw_equals(fx.store, id, "first"));
    CU_ASSERT_EQUAL(store_requeue(fx.store, NULL, NULL, &count, &err), MB_OK);
    CU_ASSERT_EQUAL(count, 1);
    /* an aborted batch leaves nothing behind */
    long long other = put(fx.store, "support", "o", NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(store_batch_begin(fx.store, &err), MB_OK);
    CU_ASSERT_EQUAL(store_keep_raw(fx.store, other, "b", 1, &err), MB_OK);
    CU_ASSERT_EQUAL(store_begin_attempt(fx.store, other, &err), MB_OK);
    store_batch_abort(fx.store);
    store_close(&fx.store);
    reopen(&fx);
    struct store_msg row;
    get(fx.store, "support", "o", &row);
    CU_ASSERT_EQUAL(row.state, MSG_QUEUED);
    store_msg_clear(&row);
    CU_ASSERT_EQUAL(store_load_raw(fx.store, other, &raw, &len, &err), MB_OK);
    CU_ASSERT_PTR_NULL(raw);
    fixture_done(&fx);
}

int main(void)
{
    static const struct unit_test tests[] = {
        {"enqueue: one row per route and key", test_enqueue_one_row_per_route_and_key},
        {"queued, posting, done; thread map", test_lifecycle_done_teaches_thread_map},
        {"thread map: newest post, needs a Message-Id",
         test_thread_map_updates_and_needs_message_id},
        {"temp: retry when due, oldest first", test_temp_failure_is_due_at_its_time_oldest_first},
        {"perm: quarantine keeps raw", test_perm_failure_quarantines_and_keeps_raw},
        {"down: queued again, not counted", test_down_requeues_without_counting},
        {"set_quarantine", test_set_quarantine},
        {"counts and list per state and route", test_counts_and_list_per_state_and_route},
        {"requeue all and by key", test_requeue_all_and_by_key},
        {"persists across reopen, POSTING too", test_persists_across_reopen},
        {"open errors name the file", test_open_errors_name_the_file},
        {"source acks wait for a safe state", test_source_acks_wait_for_a_safe_state},
        {"checkpoints and items persist", test_checkpoints_and_items_persist},
        {"batches commit once", test_batches_commit_once},
        {"unknown messages are perm", test_unknown_messages_are_perm},
        {"raw bytes kept only when asked", test_raw_kept_only_when_asked},
        {"enqueue can claim a new row", test_enqueue_can_claim_a_new_row},
        {NULL, NULL},
    };
    static const struct unit_suite suites[] = {
        {"store", tests, NULL, NULL},
        {NULL, NULL, NULL, NULL},
    };
    return unit_run(suites);
}
