/* test_mailbox - the IMAP and POP3 mail sources (source_open_mailbox)
 * against a real Dovecot run by tests/integration/dovecot.py, with an
 * in-memory struct source_memory: the URL table, the action words, refused
 * opens; IMAP order and exact bytes, the checkpoint across sessions and per
 * batch, no \Seen from reading, every processed-mail action and quarantine
 * by settle (twice is harmless), one settle call over a batch of mixed
 * fates and on sets, wheres of another mailbox or numbering, a
 * UIDVALIDITY reset, the size limit, spooled batches, IDLE and NOOP waits;
 * POP3 UIDLs across sessions, delete committed by QUIT, keep. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dovecot_fixture.h"
#include "lib/xalloc.h"
#include "transport/mailbox_int.h"
#include "transport/source.h"
#include "unit.h"

#define TIMEOUT_MS 30000 /* network bound for a hung test, never asserted */

static struct dovecot dc; /* started by the suite setup */

/* ---- an in-memory struct source_memory ---- */

struct memory {
    struct source_memory ops; /* ctx points here */
    char folder[8][128];
    uint32_t validity[8], next_uid[8];
    size_t folders;
    unsigned sets;         /* checkpoint_set calls */
    uint32_t set_next[32]; /* their next_uid, in order */
    char *items[64];       /* owned: item_add's */
    size_t nitems;
};

/* memory_slot - the index of FOLDER's checkpoint; M->folders when it has none */
static size_t memory_slot(struct memory *m, const char *folder)
{
    size_t i = 0;
    while (i < m->folders && strcmp(m->folder[i], folder) != 0)
        i++;
    return i;
}

/* memory_checkpoint_get - 0/0 for a folder never written, as the store says */
static enum mb_status memory_checkpoint_get(void *ctx, const char *folder, uint32_t *uidvalidity_r,
                                            uint32_t *next_uid_r, struct mb_error *err)
{
    (void)err;
    struct memory *m = ctx;
    size_t i = memory_slot(m, folder);
    *uidvalidity_r = i < m->folders ? m->validity[i] : 0;
    *next_uid_r = i < m->folders ? m->next_uid[i] : 0;
    return MB_OK;
}

/* memory_checkpoint_set - store it, and count the call with its next UID */
static enum mb_status memory_checkpoint_set(void *ctx, const char *folder, uint32_t uidvalidity,
                                            uint32_t next_uid, struct mb_error *err)
{
    struct memory *m = ctx;
    size_t i = memory_slot(m, folder);
    if (i == 8)
        return mb_error_set(err, MB_TEMP, "test memory full");
    if (i == m->folders)
        snprintf(m->folder[m->folders++], sizeof(m->folder[0]), "%s", folder);
    m->validity[i] = uidvalidity;
    m->next_uid[i] = next_uid;
    if (m->sets < 32)
        m->set_next[m->sets] = next_uid;
    m->sets++;
    return MB_OK;
}

/* memory_item_seen - whether ITEM was added */
static enum mb_status memory_item_seen(void *ctx, const char *item, bool *seen_r,
                                       struct mb_error *err)
{
    (void)err;
    struct memory *m = ctx;
    *seen_r = false;
    for (size_t i = 0; i < m->nitems && !*seen_r; i++)
        *seen_r = strcmp(m->items[i], item) == 0;
    return MB_OK;
}

/* memory_item_add - remember ITEM */
static enum mb_status memory_item_add(void *ctx, const char *item, struct mb_error *err)
{
    struct memory *m = ctx;
    if (m->nitems == 64)
        return mb_error_set(err, MB_TEMP, "test memory full");
    m->items[m->nitems++] = xstrdup(item);
    return MB_OK;
}

/* memory_init - an empty memory whose ops point at M */
static void memory_init(struct memory *m)
{
    memset(m, 0, sizeof(*m));
    m->ops = (struct source_memory){m, memory_checkpoint_get, memory_checkpoint_set,
                                    memory_item_seen, memory_item_add};
}

/* memory_free - free the items and zero M */
static void memory_free(struct memory *m)
{
    for (size_t i = 0; i < m->nitems; i++)
        free(m->items[i]);
    memset(m, 0, sizeof(*m));
}

/* ---- mailboxes ---- */

struct box {
    char url[256];
    struct mailbox_settings s;
};

/* imap_box - support's FOLDER over imaps:// with the test CA, action keep */
static void imap_box(struct box *b, const char *folder)
{
    snprintf(b->url, sizeof(b->url), "imaps://%s:%u/%s", dc.host, dc.imaps_port, folder);
    mailbox_settings_default(&b->s);
    b->s.url = b->url;
    b->s.user = "support";
    b->s.secret = "secret";
    b->s.ca_file = dc.ca_file;
    b->s.timeout_ms = TIMEOUT_MS;
}

/* pop3_box - sales's maildrop over pop3s:// with the test CA, action keep */
static void pop3_box(struct box *b)
{
    snprintf(b->url, sizeof(b->url), "pop3s://%s:%u", dc.host, dc.pop3s_port);
    mailbox_settings_default(&b->s);
    b->s.url = b->url;
    b->s.user = "sales";
    b->s.secret = "secret2";
    b->s.ca_file = dc.ca_file;
    b->s.timeout_ms = TIMEOUT_MS;
}

/* open_box - the source of B with memory M; NULL (and why on stderr) on failure */
static struct source *open_box(const struct box *b, struct memory *m)
{
    struct source *src = NULL;
    struct mb_error err;
    if (source_open_mailbox(&b->s, &m->ops, &src, &err) != MB_OK)
        fprintf(stderr, "open %s: %s\n", b->url, err.text);
    return src;
}

/* open_ok - open_box that must succeed (FATAL otherwise) */
static struct source *open_ok(const struct box *b, struct memory *m)
{
    struct source *src = open_box(b, m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    return src;
}

/* next_is - the next message must be LEN bytes of RAW; its where (owned), or NULL */
static char *next_is(struct source *src, const char *raw, size_t len, struct source_msg *msg)
{
    bool got = false;
    struct mb_error err;
    enum mb_status st = source_next(src, msg, &got, &err);
    if (st != MB_OK)
        fprintf(stderr, "next: %s\n", err.text);
    CU_ASSERT_EQUAL(st, MB_OK);
    CU_ASSERT_TRUE(got);
    if (st != MB_OK || !got)
        return NULL;
    CU_ASSERT_EQUAL(msg->len, len);
    CU_ASSERT_TRUE(msg->len == len && memcmp(msg->data, raw, len) == 0);
    return source_where(src, msg);
}

/* next_none - next() must say there is nothing (more) */
static void next_none(struct source *src)
{
    struct source_msg msg;
    bool got = true;
    struct mb_error err;
    CU_ASSERT_EQUAL(source_next(src, &msg, &got, &err), MB_OK);
    CU_ASSERT_FALSE(got);
}

/* handed - source_handed must succeed */
static void handed(struct source *src, const struct source_msg *msg)
{
    struct mb_error err;
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg->id); /* an earlier next() failed */
    CU_ASSERT_EQUAL(source_handed(src, msg, &err), MB_OK);
}

/* uid_of - the UID in an IMAP where or id, 0 when none */
static uint32_t uid_of(const char *where)
{
    const char *p = where ? strstr(where, ";UID=") : NULL;
    return p ? (uint32_t)strtoul(p + 5, NULL, 10) : 0;
}

/* settle_where - source_settle of the one item WHERE, FATE: its result (and
 * its error in *ERR) when the call succeeded, else the call's status */
static enum mb_status settle_where(struct source *src, const char *where, enum source_fate fate,
                                   struct mb_error *err)
{
    struct source_settle_item item = {.where = where, .fate = fate};
    enum mb_status st = source_settle(src, &item, 1, err);
    if (st != MB_OK)
        return st;
    *err = item.error;
    return item.result;
}

/* ---- URL and settings ---- */

struct url_case {
    const char *url;
    bool starttls;
    enum mb_status status;
    enum mailbox_proto proto;
    enum mailbox_tls tls;
    const char *host;
    unsigned port;
    const char *folder; /* NULL for POP3 */
};

static void test_url_table(void)
{
    static const struct url_case cases[] = {
        {"imaps://mail.example.com/INBOX", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT,
         "mail.example.com", 993, "INBOX"},
        {"imaps://mail.example.com", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT,
         "mail.example.com", 993, "INBOX"},
        {"IMAPS://mail.example.com/", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT,
         "mail.example.com", 993, "INBOX"},
        {"imap://mail.example.com:1143/Support%20Queue", true, MB_OK, MAILBOX_IMAP,
         MAILBOX_TLS_STARTTLS, "mail.example.com", 1143, "Support Queue"},
        {"imap://10.0.0.7/Support", false, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_NONE, "10.0.0.7", 143,
         "Support"},
        {"imaps://[::1]:994/Parent/Child", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "::1",
         994, "Parent/Child"},
        /* modified UTF-7 as IMAP URLs write it reaches the server as written */
        {"imaps://h/Erledigt%20&APY-", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "h", 993,
         "Erledigt \xc3\xb6"},
        {"imaps://h/&2D3c6A-", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "h", 993,
         "\xf0\x9f\x93\xa8"},
        {"imaps://h/Tom &- Jerry", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "h", 993,
         "Tom & Jerry"},
        /* not modified UTF-7: a UTF-8 name as it stands */
        {"imaps://h/Sales & Marketing", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "h", 993,
         "Sales & Marketing"},
        {"imaps://h/Gel%C3%B6scht", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "h", 993,
         "Gel\xc3\xb6scht"},
        {"imaps://h/&AGE-", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "h", 993,
         "&AGE-"}, /* "a" must not be shifted: not canonical, so taken literally */
        {"pop3s://pop.example.com", true, MB_OK, MAILBOX_POP3, MAILBOX_TLS_IMPLICIT,
         "pop.example.com", 995, NULL},
        {"pop3://pop.example.com:1110/", true, MB_OK, MAILBOX_POP3, MAILBOX_TLS_STARTTLS,
         "pop.example.com", 1110, NULL},
        {"pop3://pop.example.com", false, MB_OK, MAILBOX_POP3, MAILBOX_TLS_NONE, "pop.example.com",
         110, NULL},
        {"imaps://h:65535/x", true, MB_OK, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT, "h", 65535, "x"},
        {"", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"http://h/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps:/h/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://:993/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h:0/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h:65536/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h:/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h:99x/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h:000993/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h o/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://[::1/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h/IN%ZZ", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h/IN%4", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h/A%00B", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h/INBOX?x=1", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h/INBOX#top", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"imaps://h/IN\tBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
        {"pop3s://h/INBOX", true, MB_CONFIG, 0, 0, NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct url_case *c = &cases[i];
        struct mailbox_url u;
        struct mb_error err;
        enum mb_status st = mailbox_url_parse(c->url, c->starttls, &u, &err);
        if (st != c->status)
            fprintf(stderr, "case %zu (%s): status %d, %s\n", i, c->url, st, st ? err.text : "ok");
        CU_ASSERT_EQUAL(st, c->status);
        if (st != MB_OK) {
            CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "mailbox URL"));
            continue;
        }
        CU_ASSERT_EQUAL(u.proto, c->proto);
        CU_ASSERT_EQUAL(u.tls, c->tls);
        CU_ASSERT_STRING_EQUAL(u.host, c->host);
        CU_ASSERT_EQUAL(u.port, c->port);
        if (c->folder == NULL)
            CU_ASSERT_PTR_NULL(u.folder);
        if (c->folder != NULL)
            CU_ASSERT_TRUE(u.folder != NULL && strcmp(u.folder, c->folder) == 0);
        mailbox_url_free(&u);
    }
    /* a password put in the URL is refused without being repeated */
    struct mailbox_url u;
    struct mb_error err;
    CU_ASSERT_EQUAL(mailbox_url_parse("imaps://bob:hunter2@mail.example.com/INBOX", true, &u, &err),
                    MB_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "\"imaps://mail.example.com/INBOX\""));
    CU_ASSERT_PTR_NULL(strstr(err.text, "hunter2"));
    CU_ASSERT_EQUAL(mailbox_url_parse(NULL, true, &u, &err), MB_CONFIG);
}

static void test_settings_and_actions(void)
{
    struct mailbox_settings s;
    mailbox_settings_default(&s);
    CU_ASSERT_TRUE(s.starttls && s.tls_verify && s.idle);
    CU_ASSERT_EQUAL(s.batch_size, 100);
    CU_ASSERT_EQUAL(s.timeout_ms, 60000);
    CU_ASSERT_EQUAL(s.max_message_size, (size_t)50 << 20);
    CU_ASSERT_EQUAL(s.action, MAILBOX_KEEP);
    CU_ASSERT_PTR_NULL(s.quarantine_folder);
    static const struct {
        const char *text;
        bool ok;
        enum mailbox_action action;
        const char *arg;
    } cases[] = {
        {"keep", true, MAILBOX_KEEP, NULL},
        {"seen", true, MAILBOX_SEEN, NULL},
        {"keyword:$Ticketed", true, MAILBOX_KEYWORD, "$Ticketed"},
        {"move:Done/2024", true, MAILBOX_MOVE, "Done/2024"},
        {"delete", true, MAILBOX_DELETE, NULL},
        {"keyword:", false, 0, NULL},
        {"move:", false, 0, NULL},
        {"Seen", false, 0, NULL},
        {"seen ", false, 0, NULL},
        {"move", false, 0, NULL},
        {"", false, 0, NULL},
        {NULL, false, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mailbox_settings_default(&s);
        s.action = MAILBOX_DELETE; /* untouched on failure */
        bool ok = mailbox_parse_action(cases[i].text, &s);
        CU_ASSERT_EQUAL(ok, cases[i].ok);
        CU_ASSERT_EQUAL(s.action, ok ? cases[i].action : MAILBOX_DELETE);
        if (ok && cases[i].arg != NULL)
            CU_ASSERT_TRUE(s.action_arg && strcmp(s.action_arg, cases[i].arg) == 0);
        if (ok && cases[i].arg == NULL)
            CU_ASSERT_PTR_NULL(s.action_arg);
    }
}

/* open_fails - opening B must fail with STATUS and a text containing EXPECT */
static void open_fails(const struct box *b, enum mb_status status, const char *expect)
{
    struct memory m;
    memory_init(&m);
    struct source *src = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(source_open_mailbox(&b->s, &m.ops, &src, &err), status);
    CU_ASSERT_PTR_NULL(src);
    if (strstr(err.text, expect) == NULL)
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", expect, err.text);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, expect));
    CU_ASSERT_PTR_NULL(strstr(err.text, "wrong-pw"));
    source_close(&src);
    memory_free(&m);
}

static void test_refused_opens(void)
{
    struct box b;
    imap_box(&b, "INBOX");
    b.s.secret = "wrong-pw";
    open_fails(&b, MB_DOWN, "AUTHENTICATIONFAILED");
    pop3_box(&b);
    b.s.secret = "wrong-pw";
    open_fails(&b, MB_DOWN, "sales");
    imap_box(&b, "No%20Such%20Folder");
    open_fails(&b, MB_CONFIG, "No Such Folder");
    imap_box(&b, "INBOX");
    b.s.url = "imaps://bob:wrong-pw@host/INBOX";
    open_fails(&b, MB_CONFIG, "mailbox URL");
    imap_box(&b, "INBOX");
    b.s.user = NULL;
    open_fails(&b, MB_CONFIG, "user");
    pop3_box(&b);
    b.s.action = MAILBOX_SEEN;
    open_fails(&b, MB_CONFIG, "keep or delete");
    imap_box(&b, "INBOX");
    b.s.action = MAILBOX_MOVE;
    open_fails(&b, MB_CONFIG, "folder");
    /* STARTTLS on imap:// with the test CA works; clear text when turned off */
    struct memory m;
    memory_init(&m);
    imap_box(&b, "INBOX");
    snprintf(b.url, sizeof(b.url), "imap://%s:%u/INBOX", dc.host, dc.imap_port);
    struct source *src = open_box(&b, &m);
    CU_ASSERT_PTR_NOT_NULL(src);
    source_close(&src);
    b.s.starttls = false;
    src = open_box(&b, &m);
    CU_ASSERT_PTR_NOT_NULL(src);
    source_close(&src);
    memory_free(&m);
}

/* ---- IMAP ---- */

static void test_imap_order_bytes_checkpoint(void)
{
    const char *folder = "Three";
    char *raws[4];
    size_t lens[4];
    uint32_t uids[4];
    dovecot_fill(&dc, "support", folder, 3, 900, raws, lens, uids);
    CU_ASSERT_TRUE_FATAL(uids[0] && uids[2] == uids[0] + 2);
    struct box b;
    imap_box(&b, folder);
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    CU_ASSERT_TRUE(source_is_mailbox(src));
    char name[256];
    snprintf(name, sizeof(name), "imap://support@%s:%u/%s", dc.host, dc.imaps_port, folder);
    CU_ASSERT_STRING_EQUAL(src->name, name);

    /* in order, byte exact; progress is what was handed, not what was read */
    struct source_msg msg;
    for (unsigned i = 0; i < 3; i++) {
        char *where = next_is(src, raws[i], lens[i], &msg);
        char expect[400];
        snprintf(expect, sizeof(expect), "%s:UIDVALIDITY=", name);
        CU_ASSERT_TRUE(where && strncmp(where, expect, strlen(expect)) == 0);
        CU_ASSERT_EQUAL(uid_of(where), uids[i]);
        if (i < 2)
            handed(src, &msg);
        free(where);
    }
    next_none(src);
    source_close(&src);
    CU_ASSERT_EQUAL(m.next_uid[0], uids[1] + 1);
    for (unsigned i = 0; i < 3; i++) /* reading never sets \Seen */
        CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, uids[i], "\\\\Seen"), 0);

    /* the message not handed comes again; then nothing */
    src = open_ok(&b, &m);
    char *where = next_is(src, raws[2], lens[2], &msg);
    handed(src, &msg);
    free(where);
    next_none(src);
    source_close(&src);
    CU_ASSERT_EQUAL(m.next_uid[0], uids[2] + 1);
    src = open_ok(&b, &m);
    next_none(src);
    source_close(&src);

    /* new mail after a reopen: only it */
    raws[3] = dovecot_make_message("Three-late", 700, &lens[3]);
    uids[3] = dovecot_append(&dc, "support", folder, raws[3], lens[3], NULL);
    src = open_ok(&b, &m);
    where = next_is(src, raws[3], lens[3], &msg);
    CU_ASSERT_EQUAL(uid_of(where), uids[3]);
    handed(src, &msg);
    free(where);
    next_none(src);
    unsigned long long done, total;
    source_progress(src, &done, &total);
    CU_ASSERT_EQUAL(done, 1);
    source_close(&src);
    CU_ASSERT_PTR_NULL(src);
    memory_free(&m);
    for (unsigned i = 0; i < 4; i++)
        free(raws[i]);
}

static void test_imap_batches(void)
{
    const char *folder = "Batches";
    char *raws[5];
    size_t lens[5];
    uint32_t uids[5];
    dovecot_fill(&dc, "support", folder, 5, 1500, raws, lens, uids);
    CU_ASSERT_TRUE_FATAL(uids[4] != 0);
    struct box b;
    imap_box(&b, folder);
    b.s.batch_size = 2;
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    for (unsigned i = 0; i < 5; i++) {
        free(next_is(src, raws[i], lens[i], &msg));
        handed(src, &msg);
        /* the checkpoint is written when a batch is used up, not per message */
        CU_ASSERT_EQUAL(m.sets, i / 2);
    }
    next_none(src);
    next_none(src);
    /* 2 + 2 + 1: three commits, each one past its batch */
    CU_ASSERT_EQUAL_FATAL(m.sets, 3);
    CU_ASSERT_EQUAL(m.set_next[0], uids[1] + 1);
    CU_ASSERT_EQUAL(m.set_next[1], uids[3] + 1);
    CU_ASSERT_EQUAL(m.set_next[2], uids[4] + 1);
    source_close(&src);
    CU_ASSERT_EQUAL(m.sets, 3); /* nothing changed since */
    memory_free(&m);
    for (unsigned i = 0; i < 5; i++)
        free(raws[i]);
}

/* settle_one - a message in its own FOLDER, fetched and handed by a source
 * with ACTION (parsed as mailbox_parse_action does), settled DONE twice:
 * both MB_OK. The UID; *SIZE_R its size. */
static uint32_t settle_one(const char *folder, const char *action, size_t *size_r)
{
    size_t len;
    char *raw = dovecot_make_message(folder, 600, &len);
    uint32_t uid = dovecot_append(&dc, "support", folder, raw, len, NULL);
    CU_ASSERT_TRUE(uid != 0);
    struct box b;
    imap_box(&b, folder);
    CU_ASSERT_TRUE(mailbox_parse_action(action, &b.s));
    struct memory m;
    memory_init(&m);
    struct source *src = open_box(&b, &m);
    CU_ASSERT_PTR_NOT_NULL(src);
    if (src != NULL) {
        struct source_msg msg;
        char *where = next_is(src, raw, len, &msg);
        handed(src, &msg);
        struct mb_error err;
        enum mb_status st = where ? settle_where(src, where, SOURCE_DONE, &err) : MB_TEMP;
        if (st != MB_OK)
            fprintf(stderr, "settle %s: %s\n", action, err.text);
        CU_ASSERT_EQUAL(st, MB_OK);
        CU_ASSERT_EQUAL(where ? settle_where(src, where, SOURCE_DONE, &err) : MB_TEMP, MB_OK);
        free(where);
    }
    source_close(&src);
    memory_free(&m);
    free(raw);
    *size_r = len;
    return uid;
}

static void test_imap_actions(void)
{
    size_t size;
    uint32_t uid = settle_one("ActKeep", "keep", &size);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", "ActKeep", uid, "\\\\Seen"), 0);

    uid = settle_one("ActSeen", "seen", &size);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", "ActSeen", uid, "\\\\Seen"), 1);

    uid = settle_one("ActKeyword", "keyword:$Ticketed", &size);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", "ActKeyword", uid, "$Ticketed"), 1);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", "ActKeyword", uid, "\\\\Seen"), 0);

    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "Done"), -1); /* created by the move */
    uid = settle_one("ActMove", "move:Done", &size);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "ActMove"), 0);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "Done"), 1);
    CU_ASSERT_TRUE(dovecot_has_size(&dc, "support", "Done", size));

    uid = settle_one("ActDelete", "delete", &size);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "ActDelete"), 0);
}

/* settle_set - four messages in their own FOLDER, fetched and handed by a
 * source with ACTION; the first, second and fourth settled DONE in one call
 * (the third is left alone). Their UIDs into UIDS. */
static void settle_set(const char *folder, const char *action, uint32_t uids[4])
{
    char *raws[4];
    size_t lens[4];
    dovecot_fill(&dc, "support", folder, 4, 600, raws, lens, uids);
    CU_ASSERT_TRUE_FATAL(uids[3] != 0);
    struct box b;
    imap_box(&b, folder);
    CU_ASSERT_TRUE(mailbox_parse_action(action, &b.s));
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    char *wheres[4];
    for (unsigned i = 0; i < 4; i++) {
        wheres[i] = next_is(src, raws[i], lens[i], &msg);
        handed(src, &msg);
    }
    struct source_settle_item items[3] = {
        {.where = wheres[3], .fate = SOURCE_DONE},
        {.where = wheres[0], .fate = SOURCE_DONE},
        {.where = wheres[1], .fate = SOURCE_DONE},
    };
    struct mb_error err;
    enum mb_status st = wheres[3] ? source_settle(src, items, 3, &err) : MB_TEMP;
    if (st != MB_OK)
        fprintf(stderr, "settle %s: %s\n", action, err.text);
    CU_ASSERT_EQUAL(st, MB_OK);
    for (unsigned i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(items[i].result, MB_OK);
    source_close(&src);
    memory_free(&m);
    for (unsigned i = 0; i < 4; i++) {
        free(wheres[i]);
        free(raws[i]);
    }
}

static void test_imap_actions_on_a_set(void)
{
    uint32_t uids[4];
    settle_set("SetMove", "move:SetDone", uids);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "SetDone"), 3); /* created by the move */
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "SetMove"), 1);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", "SetMove", uids[2], "\\\\Seen"), 0);

    settle_set("SetDelete", "delete", uids);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "SetDelete"), 1);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", "SetDelete", uids[2], "\\\\Deleted"), 0);
}

/* One settle call over ten messages with a mix of fates, a message gone
 * already, another mailbox's where and one of an older numbering: \Seen on
 * exactly the DONE ones, the QUARANTINED ones in the quarantine folder,
 * MB_PERM with its reason for the two strangers, nothing else touched. */
static void test_imap_settle_batch(void)
{
    const char *folder = "Batch";
    enum { N = 10 };
    char *raws[N];
    size_t lens[N];
    uint32_t uids[N];
    dovecot_fill(&dc, "support", folder, N, 500, raws, lens, uids);
    CU_ASSERT_TRUE_FATAL(uids[N - 1] != 0);
    struct box b;
    imap_box(&b, folder);
    b.s.action = MAILBOX_SEEN;
    b.s.quarantine_folder = "BatchQuarantine";
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    char *wheres[N];
    for (unsigned i = 0; i < N; i++) {
        wheres[i] = next_is(src, raws[i], lens[i], &msg);
        CU_ASSERT_PTR_NOT_NULL_FATAL(wheres[i]);
        handed(src, &msg);
    }
    /* message 7 leaves before the batch: its DONE finds it gone */
    struct mb_error err;
    CU_ASSERT_EQUAL(settle_where(src, wheres[7], SOURCE_QUARANTINED, &err), MB_OK);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", folder), N - 1);

    uint32_t validity = (uint32_t)strtoul(strstr(wheres[0], "UIDVALIDITY=") + 12, NULL, 10);
    char *foreign = xasprintf("imap://support@elsewhere:993/%s:UIDVALIDITY=%u;UID=%u", folder,
                              (unsigned)validity, (unsigned)uids[9]);
    char *renumbered =
        xasprintf("%s:UIDVALIDITY=%u;UID=%u", src->name, (unsigned)validity + 1, (unsigned)uids[9]);
    /* DONE: 0 1 2 4 5 8 (runs and gaps, out of order) and 7 (gone);
     * QUARANTINED: 3 6; 9 only under the strangers' names */
    struct source_settle_item items[] = {
        {.where = wheres[5], .fate = SOURCE_DONE},
        {.where = wheres[0], .fate = SOURCE_DONE},
        {.where = wheres[6], .fate = SOURCE_QUARANTINED},
        {.where = foreign, .fate = SOURCE_DONE},
        {.where = wheres[1], .fate = SOURCE_DONE},
        {.where = wheres[2], .fate = SOURCE_DONE},
        {.where = wheres[7], .fate = SOURCE_DONE},
        {.where = wheres[3], .fate = SOURCE_QUARANTINED},
        {.where = renumbered, .fate = SOURCE_QUARANTINED},
        {.where = wheres[4], .fate = SOURCE_DONE},
        {.where = wheres[8], .fate = SOURCE_DONE},
    };
    size_t n = sizeof(items) / sizeof(items[0]);
    for (size_t i = 0; i < n; i++) /* what settle must overwrite */
        items[i].result = MB_TEMP;
    enum mb_status st = source_settle(src, items, n, &err);
    if (st != MB_OK)
        fprintf(stderr, "settle batch: %s\n", err.text);
    CU_ASSERT_EQUAL_FATAL(st, MB_OK);
    for (size_t i = 0; i < n; i++) {
        bool stranger = items[i].where == foreign || items[i].where == renumbered;
        CU_ASSERT_EQUAL(items[i].result, stranger ? MB_PERM : MB_OK);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(items[3].error.text, "not this mailbox"));
    CU_ASSERT_PTR_NOT_NULL(strstr(items[8].error.text, "renumbered"));

    static const int seen[N] = {1, 1, 1, -1, 1, 1, -1, -1, 1, 0}; /* -1: not in the folder */
    char *list = dovecot_messages(&dc, "support", folder);
    char obj[2048];
    for (unsigned i = 0; i < N; i++) {
        bool there = dovecot_message_object(list, uids[i], obj, sizeof(obj));
        CU_ASSERT_EQUAL(there, seen[i] >= 0);
        if (there)
            CU_ASSERT_EQUAL(strstr(obj, "\"\\\\Seen\"") != NULL, seen[i] == 1);
    }
    free(list);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "BatchQuarantine"), 3);
    CU_ASSERT_TRUE(dovecot_has_size(&dc, "support", "BatchQuarantine", lens[3]));
    CU_ASSERT_TRUE(dovecot_has_size(&dc, "support", "BatchQuarantine", lens[6]));
    CU_ASSERT_TRUE(dovecot_has_size(&dc, "support", "BatchQuarantine", lens[7]));

    /* the same batch again: every action is idempotent */
    CU_ASSERT_EQUAL(source_settle(src, items, n, &err), MB_OK);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", folder), N - 3);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "BatchQuarantine"), 3);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, uids[9], "\\\\Seen"), 0);
    source_close(&src);
    memory_free(&m);
    free(foreign);
    free(renumbered);
    for (unsigned i = 0; i < N; i++) {
        free(wheres[i]);
        free(raws[i]);
    }
}

static void test_imap_over_limit_quarantined(void)
{
    const char *folder = "Limit";
    size_t len[3];
    char *raw[3] = {dovecot_make_message("limit-a", 500, &len[0]),
                    dovecot_make_message("limit-big", 5000, &len[1]),
                    dovecot_make_message("limit-c", 700, &len[2])};
    uint32_t uid[3];
    for (int i = 0; i < 3; i++)
        uid[i] = dovecot_append(&dc, "support", folder, raw[i], len[i], NULL);
    CU_ASSERT_TRUE_FATAL(uid[2] != 0);
    struct box b;
    imap_box(&b, folder);
    b.s.max_message_size = 2000;
    b.s.quarantine_folder = "Quarantine";
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    free(next_is(src, raw[0], len[0], &msg));
    handed(src, &msg);

    /* refused for good, named, and moved by settle to the created quarantine */
    bool got = true;
    struct mb_error err;
    CU_ASSERT_EQUAL(source_next(src, &msg, &got, &err), MB_PERM);
    CU_ASSERT_FALSE(got);
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg.id);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "larger than 2000 bytes"));
    char *where = source_where(src, &msg);
    CU_ASSERT_EQUAL(uid_of(where), uid[1]);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "Quarantine"), -1);
    CU_ASSERT_EQUAL(settle_where(src, where, SOURCE_QUARANTINED, &err), MB_OK);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", folder), 2);
    CU_ASSERT_TRUE(dovecot_has_size(&dc, "support", "Quarantine", len[1]));
    handed(src, &msg);

    /* and the next one follows */
    free(next_is(src, raw[2], len[2], &msg));
    handed(src, &msg);
    next_none(src);
    CU_ASSERT_EQUAL(m.next_uid[0], uid[2] + 1);

    /* wheres that are not this mailbox's, or of another numbering: MB_PERM */
    char *other = xasprintf("imap://support@elsewhere:993/%s:UIDVALIDITY=1;UID=1", folder);
    CU_ASSERT_EQUAL(settle_where(src, other, SOURCE_DONE, &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "not this mailbox"));
    free(other);
    uint32_t validity = (uint32_t)strtoul(strstr(where, "UIDVALIDITY=") + 12, NULL, 10);
    other = xasprintf("%s:UIDVALIDITY=%u;UID=%u", src->name, validity + 1, uid[2]);
    CU_ASSERT_EQUAL(settle_where(src, other, SOURCE_QUARANTINED, &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "renumbered"));
    free(other);
    other = xasprintf("%s:UID=%u", src->name, uid[2]);
    CU_ASSERT_EQUAL(settle_where(src, other, SOURCE_QUARANTINED, &err), MB_PERM);
    free(other);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", folder), 2); /* none of those moved anything */
    free(where);
    source_close(&src);

    /* without a quarantine folder a quarantined message stays */
    b.s.quarantine_folder = NULL;
    memory_free(&m);
    memory_init(&m);
    src = open_ok(&b, &m);
    where = next_is(src, raw[0], len[0], &msg);
    CU_ASSERT_EQUAL(where ? settle_where(src, where, SOURCE_QUARANTINED, &err) : MB_TEMP, MB_OK);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", folder), 2);
    free(where);
    source_close(&src);
    memory_free(&m);
    for (int i = 0; i < 3; i++)
        free(raw[i]);
}

static void test_imap_uidvalidity_reset(void)
{
    const char *folder = "Renumbered";
    char *raws[3];
    size_t lens[3];
    uint32_t uids[3];
    dovecot_fill(&dc, "support", folder, 3, 800, raws, lens, uids);
    CU_ASSERT_TRUE_FATAL(uids[2] != 0);
    struct box b;
    imap_box(&b, folder);
    b.s.action = MAILBOX_SEEN;
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    char *old_where = NULL;
    for (unsigned i = 0; i < 3; i++) {
        char *where = next_is(src, raws[i], lens[i], &msg);
        handed(src, &msg);
        if (i == 0)
            old_where = where;
        else
            free(where);
    }
    next_none(src);
    source_close(&src);
    uint32_t old_validity = m.validity[0];

    uint32_t validity = dovecot_reset_uidvalidity(&dc, "support", folder);
    CU_ASSERT_NOT_EQUAL_FATAL(validity, 0);
    CU_ASSERT_NOT_EQUAL_FATAL(validity, old_validity);
    /* the harness numbers on from the old UIDNEXT; a rebuilt folder may as
     * well start low, under where the old numbering had got to */
    m.next_uid[0] = 1000000;

    /* all again, from UID 1 of the new numbering, byte for byte */
    src = open_ok(&b, &m);
    uint32_t last = 0;
    for (unsigned i = 0; i < 3; i++) {
        char *where = next_is(src, raws[i], lens[i], &msg);
        char expect[64];
        snprintf(expect, sizeof(expect), ":UIDVALIDITY=%u;UID=", (unsigned)validity);
        CU_ASSERT_TRUE(where && strstr(where, expect) != NULL);
        CU_ASSERT_TRUE(uid_of(where) > last);
        last = uid_of(where);
        handed(src, &msg);
        free(where);
    }
    next_none(src);
    CU_ASSERT_EQUAL(m.validity[0], validity);
    CU_ASSERT_EQUAL(m.next_uid[0], last + 1);
    /* the old place is no more: MB_PERM, nothing flagged */
    struct mb_error err;
    CU_ASSERT_EQUAL(old_where ? settle_where(src, old_where, SOURCE_DONE, &err) : MB_OK, MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "renumbered"));
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, last, "\\\\Seen"), 0);
    source_close(&src);
    src = open_ok(&b, &m);
    next_none(src);
    source_close(&src);
    free(old_where);
    memory_free(&m);
    for (unsigned i = 0; i < 3; i++)
        free(raws[i]);
}

/* spooled_mapping - whether this process maps a deleted file of DIR */
static bool spooled_mapping(const char *dir)
{
    char *maps = dovecot_read_file("/proc/self/maps");
    bool found = false;
    for (const char *p = maps; p != NULL && !found && (p = strstr(p, dir)) != NULL; p++) {
        const char *eol = strchr(p, '\n');
        const char *del = strstr(p, "(deleted)");
        found = del != NULL && (eol == NULL || del < eol);
    }
    free(maps);
    return found;
}

static void test_imap_spooled_batches(void)
{
    const char *folder = "Spooled";
    size_t len[3];
    char *raw[3] = {dovecot_make_message("spool-1", 9 << 20, &len[0]),
                    dovecot_make_message("spool-2", 9 << 20, &len[1]),
                    dovecot_make_message("spool-3", 1000, &len[2])};
    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE_FATAL(dovecot_append(&dc, "support", folder, raw[i], len[i], NULL) != 0);
    char spool[] = "/tmp/mb-test-mbox-spool-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(spool));
    struct box b;
    imap_box(&b, folder);
    b.s.spool_dir = spool;
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    for (int i = 0; i < 3; i++) {
        free(next_is(src, raw[i], len[i], &msg));
        /* large ones are held in an unlinked file of the spool dir, not in memory */
        CU_ASSERT_EQUAL(spooled_mapping(spool), i < 2);
        handed(src, &msg);
    }
    next_none(src);
    CU_ASSERT_EQUAL(m.sets, 3); /* a spooled message ends its batch */
    CU_ASSERT_FALSE(spooled_mapping(spool));
    source_close(&src);
    CU_ASSERT_EQUAL(rmdir(spool), 0); /* nothing left behind */
    memory_free(&m);
    for (int i = 0; i < 3; i++)
        free(raw[i]);
}

/* wait_and_fetch - IDLE or not as B says: after a message is appended during
 * the wait, next() returns it. With IDLE the descriptor turns readable. */
static void wait_and_fetch(struct box *b, const char *folder, bool expect_fd)
{
    CU_ASSERT_TRUE_FATAL(
        dovecot_append(&dc, "support", folder, "Subject: 0\r\n\r\n0\r\n", 17, NULL) != 0);
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(b, &m);
    struct source_msg msg;
    free(next_is(src, "Subject: 0\r\n\r\n0\r\n", 17, &msg));
    handed(src, &msg);
    next_none(src);
    int fd = -2;
    bool ready = true;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(src->ops->idle_begin(src, &fd, &ready, &err), MB_OK);
    CU_ASSERT_EQUAL(fd >= 0, expect_fd);
    CU_ASSERT_FALSE(ready); /* nothing new was announced */
    size_t len;
    char *raw = dovecot_make_message(folder, 400, &len);
    CU_ASSERT_TRUE(dovecot_append(&dc, "support", folder, raw, len, NULL) != 0);
    if (fd >= 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CU_ASSERT_EQUAL(poll(&p, 1, 5000), 1); /* 5 s: a hang guard, not a speed check */
    }
    CU_ASSERT_EQUAL(src->ops->idle_end(src, &err), MB_OK);
    free(next_is(src, raw, len, &msg));
    handed(src, &msg);
    next_none(src);
    /* closing while idle is fine too */
    CU_ASSERT_EQUAL(src->ops->idle_begin(src, &fd, &ready, &err), MB_OK);
    source_close(&src);
    memory_free(&m);
    free(raw);
}

/* Mail announced in the answer to another command (a STORE while settling)
 * is not announced again by IDLE: idle_begin must say "ready", not wait. */
static void test_imap_mail_announced_before_idle(void)
{
    struct box b;
    imap_box(&b, "Announced");
    b.s.action = MAILBOX_SEEN;
    b.s.idle = false; /* no IDLE in the loop below: it would take the news itself */
    CU_ASSERT_TRUE_FATAL(dovecot_append(&dc, "support", "Announced", "Subject: 0\r\n\r\n0\r\n", 17, NULL) != 0);
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    char *where = next_is(src, "Subject: 0\r\n\r\n0\r\n", 17, &msg);
    handed(src, &msg);
    next_none(src);
    CU_ASSERT_TRUE(dovecot_append(&dc, "support", "Announced", "Subject: 1\r\n\r\n1\r\n", 17, NULL) != 0);
    struct mb_error err;
    int fd = -1;
    bool ready = false;
    /* Dovecot announces the append within about half a second, in the
     * answer to whatever command comes next; 40 tries is a hang guard */
    for (int i = 0; i < 40 && !ready; i++) {
        CU_ASSERT_EQUAL(settle_where(src, where, SOURCE_DONE, &err), MB_OK); /* a STORE */
        CU_ASSERT_EQUAL_FATAL(src->ops->idle_begin(src, &fd, &ready, &err), MB_OK);
        CU_ASSERT_EQUAL(src->ops->idle_end(src, &err), MB_OK);
        if (!ready)
            usleep(50000);
    }
    CU_ASSERT_TRUE(ready);
    free(next_is(src, "Subject: 1\r\n\r\n1\r\n", 17, &msg));
    free(where);
    source_close(&src);
    memory_free(&m);
}

static void test_imap_wait_idle(void)
{
    struct box b;
    imap_box(&b, "IdleWait");
    wait_and_fetch(&b, "IdleWait", true);
}

static void test_imap_wait_poll(void)
{
    struct box b;
    imap_box(&b, "PollWait");
    b.s.idle = false; /* the caller sleeps; next() starts with a NOOP */
    wait_and_fetch(&b, "PollWait", false);
}

/* ---- POP3 ---- */

static void test_pop3_uidls_across_sessions(void)
{
    char *raws[3];
    size_t lens[3];
    for (unsigned i = 0; i < 3; i++) {
        char subject[32];
        snprintf(subject, sizeof(subject), "pop-%u", i);
        raws[i] = dovecot_make_message(subject, 800 + 100 * i, &lens[i]);
        CU_ASSERT_TRUE_FATAL(dovecot_append(&dc, "sales", "INBOX", raws[i], lens[i], NULL) != 0);
    }
    struct box b;
    pop3_box(&b);
    struct memory m;
    memory_init(&m);
    struct source *src = open_ok(&b, &m);
    char name[256];
    snprintf(name, sizeof(name), "pop3://sales@%s:%u", dc.host, dc.pop3s_port);
    CU_ASSERT_STRING_EQUAL(src->name, name);
    struct source_msg msg;
    for (unsigned i = 0; i < 3; i++) {
        char *where = next_is(src, raws[i], lens[i], &msg);
        char expect[300];
        snprintf(expect, sizeof(expect), "%s:UIDL=", name);
        CU_ASSERT_TRUE(where && strncmp(where, expect, strlen(expect)) == 0);
        if (i != 1)
            handed(src, &msg);
        free(where);
    }
    next_none(src);
    CU_ASSERT_EQUAL(m.nitems, 2);
    /* a new session (after a wait): only the one not handed */
    int fd = 0;
    bool ready = true;
    struct mb_error err;
    CU_ASSERT_EQUAL(src->ops->idle_begin(src, &fd, &ready, &err), MB_OK);
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_FALSE(ready);
    CU_ASSERT_EQUAL(src->ops->idle_end(src, &err), MB_OK);
    free(next_is(src, raws[1], lens[1], &msg));
    handed(src, &msg);
    next_none(src);
    source_close(&src);
    /* another source with the same memory: nothing; keep left all three */
    src = open_ok(&b, &m);
    next_none(src);
    source_close(&src);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "sales", "INBOX"), 3);
    memory_free(&m);
    for (unsigned i = 0; i < 3; i++)
        free(raws[i]);
}

static void test_pop3_delete_at_quit(void)
{
    long before = dovecot_count(&dc, "sales", "INBOX");
    size_t len;
    char *raw = dovecot_make_message("pop-delete", 1234, &len);
    CU_ASSERT_TRUE_FATAL(dovecot_append(&dc, "sales", "INBOX", raw, len, NULL) != 0);
    size_t big_len;
    char *big = dovecot_make_message("pop-big", 6000, &big_len);
    CU_ASSERT_TRUE_FATAL(dovecot_append(&dc, "sales", "INBOX", big, big_len, NULL) != 0);
    struct box b;
    pop3_box(&b);
    b.s.action = MAILBOX_DELETE;
    b.s.max_message_size = 5000;
    struct memory m;
    memory_init(&m);
    /* a fresh memory: what the previous test left comes first */
    struct source *src = open_ok(&b, &m);
    struct source_msg msg;
    bool got;
    struct mb_error err;
    char *where = NULL;
    for (long i = 0; i < before; i++) { /* those are handed, not settled: they stay */
        CU_ASSERT_EQUAL(source_next(src, &msg, &got, &err), MB_OK);
        handed(src, &msg);
    }
    where = next_is(src, raw, len, &msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(where);
    handed(src, &msg);

    /* over the limit: MB_PERM naming it; quarantine leaves it on the server */
    CU_ASSERT_EQUAL(source_next(src, &msg, &got, &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg.id);
    char *big_where = source_where(src, &msg);
    CU_ASSERT_EQUAL(settle_where(src, big_where, SOURCE_QUARANTINED, &err), MB_OK);
    handed(src, &msg);
    next_none(src);

    /* one call for several: DONE twice (harmless), another mailbox's, and
     * the quarantined one again (it stays) */
    char *other = xasprintf("pop3://sales@elsewhere:995:UIDL=x");
    struct source_settle_item items[] = {
        {.where = where, .fate = SOURCE_DONE},
        {.where = other, .fate = SOURCE_DONE},
        {.where = big_where, .fate = SOURCE_QUARANTINED},
        {.where = where, .fate = SOURCE_DONE},
    };
    CU_ASSERT_EQUAL(source_settle(src, items, 4, &err), MB_OK);
    CU_ASSERT_EQUAL(items[0].result, MB_OK);
    CU_ASSERT_EQUAL(items[1].result, MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(items[1].error.text, "not this mailbox"));
    CU_ASSERT_EQUAL(items[2].result, MB_OK);
    CU_ASSERT_EQUAL(items[3].result, MB_OK);
    free(other);
    CU_ASSERT_TRUE(dovecot_has_size(&dc, "sales", "INBOX", len)); /* DELE waits for QUIT */
    int fd;
    bool ready;
    CU_ASSERT_EQUAL(src->ops->idle_begin(src, &fd, &ready, &err), MB_OK);
    CU_ASSERT_FALSE(dovecot_has_size(&dc, "sales", "INBOX", len));
    CU_ASSERT_TRUE(dovecot_has_size(&dc, "sales", "INBOX", big_len));
    CU_ASSERT_EQUAL(dovecot_count(&dc, "sales", "INBOX"), before + 1);
    /* settling it again in a new session: already gone, fine */
    CU_ASSERT_EQUAL(src->ops->idle_end(src, &err), MB_OK);
    CU_ASSERT_EQUAL(settle_where(src, where, SOURCE_DONE, &err), MB_OK);
    next_none(src);
    source_close(&src);
    CU_ASSERT_EQUAL(dovecot_count(&dc, "sales", "INBOX"), before + 1);
    free(where);
    free(big_where);
    memory_free(&m);
    free(raw);
    free(big);
}

static int suite_setup(void)
{
    return dovecot_start(&dc, "mailbox", NULL) ? 0 : 1;
}

static int suite_teardown(void)
{
    dovecot_free(&dc);
    return 0;
}

static const struct unit_test settings_tests[] = {
    {"URL table: forms, ports, %-decoding, modified UTF-7, starttls off, errors", test_url_table},
    {"settings defaults and action words", test_settings_and_actions},
    {NULL, NULL},
};

static const struct unit_test mailbox_tests[] = {
    {"refused opens: password, folder, URL, settings", test_refused_opens},
    {"IMAP: order, bytes, checkpoint across sessions, no \\Seen", test_imap_order_bytes_checkpoint},
    {"IMAP: batches commit the checkpoint once each", test_imap_batches},
    {"IMAP: settle keep, seen, keyword, move, delete (twice)", test_imap_actions},
    {"IMAP: settle move, delete on a set in one call", test_imap_actions_on_a_set},
    {"IMAP: one settle call over mixed fates, gone and foreign wheres", test_imap_settle_batch},
    {"IMAP: over the limit is MB_PERM, quarantined; foreign wheres",
     test_imap_over_limit_quarantined},
    {"IMAP: UIDVALIDITY reset fetches all again", test_imap_uidvalidity_reset},
    {"IMAP: large messages spooled, one per batch", test_imap_spooled_batches},
    {"IMAP: IDLE wakes for new mail", test_imap_wait_idle},
    {"IMAP: mail announced before IDLE means ready", test_imap_mail_announced_before_idle},
    {"IMAP: without IDLE, next() after the wait finds it", test_imap_wait_poll},
    {"POP3: UIDLs handed are skipped across sessions; keep", test_pop3_uidls_across_sessions},
    {"POP3: delete committed at QUIT; over the limit; quarantine", test_pop3_delete_at_quit},
    {NULL, NULL},
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the daemon does: a dead peer is an error, not a signal */
    static const struct unit_suite suites[] = {
        {"mailbox_settings", settings_tests, NULL, NULL},
        {"mailbox_dovecot", mailbox_tests, suite_setup, suite_teardown},
        {NULL, NULL, NULL, NULL},
    };
    return unit_run(suites);
}
