/* test_pop3 - the POP3 session against a real Dovecot run by
 * tests/integration/dovecot.py: pop3s and STLS with the certificate checked
 * before any credential is sent, refused logins, UIDLs stable across
 * sessions, byte-exact RETR, the size limit, DELE committed by QUIT and
 * forgotten by close, and a server that goes away mid-session. A scripted
 * fake server covers what Dovecot never does: refuse STLS, hang up in the
 * middle of an answer on clear text, lie about sizes, send NUL bytes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dovecot_fixture.h"
#include "lib/buf.h"
#include "transport/pop3.h"
#include "unit.h"

#define TEST_TIMEOUT_MS 20000 /* a bound for a hung test, never asserted */

/* ---- the Dovecot harness ---- */

static struct dovecot dc;

/* append - store LEN bytes of RAW in USER's INBOX through IMAP; the UID */
static long append(const char *user, const char *raw, size_t len)
{
    uint32_t uid = dovecot_append(&dc, user, "INBOX", raw, len, NULL);
    CU_ASSERT_TRUE_FATAL(uid > 0);
    return (long)uid;
}

/* inbox_count - how many messages USER's INBOX holds, as IMAP sees it */
static size_t inbox_count(const char *user)
{
    long count = dovecot_count(&dc, user, "INBOX");
    CU_ASSERT_TRUE_FATAL(count >= 0);
    return (size_t)count;
}

/* make_message - a message of about SIZE bytes (owned, length in *LEN_R)
 * with CRLF lines; the body is full of what POP3 must dot-stuff (".",
 * "..", ".text"), 8-bit bytes and lines of every length, one longer than
 * libetpan's 8 KiB read buffer; SEED varies it */
static char *make_message(unsigned seed, size_t size, size_t *len_r)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b,
               "From: Customer <c%u@example.com>\r\nTo: support@example.com\r\n"
               "Subject: test %u\r\nMessage-ID: <%u.test@example.com>\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n",
               seed, seed, seed);
    unsigned x = seed * 2654435761u + 1;
    bool long_line = size > 20000;
    while (b.len < size) {
        x = x * 1103515245u + 12345u;
        switch ((x >> 16) % 6) {
        case 0:
            buf_append_str(&b, ".\r\n");
            break;
        case 1:
            buf_append_str(&b, "..\r\n");
            break;
        case 2:
            buf_append_str(&b, ".leading dot\r\n");
            break;
        case 3:
            buf_append_str(&b, "caf\xc3\xa9 \xe2\x82\xac 8-bit\r\n");
            break;
        default:
            for (size_t i = 0, n = long_line ? 9000 : (x >> 8) % 200; i < n; i++)
                buf_append(&b, &"abcdefghij klmnopqrstuvwxyz."[(x + i) % 28], 1);
            buf_append_str(&b, "\r\n");
            long_line = false;
        }
    }
    buf_append_str(&b, "end\r\n");
    *len_r = b.len;
    return buf_steal(&b);
}

/* settings_for - USER with SECRET over TLS mode TLS, trusting the test CA */
static void settings_for(struct pop3_settings *s, const char *user, const char *secret,
                         enum pop3_tls tls)
{
    pop3_settings_default(s);
    s->host = dc.host;
    s->port = tls == POP3_TLS_IMPLICIT ? dc.pop3s_port : dc.pop3_port;
    s->tls = tls;
    s->ca_file = dc.ca_file;
    s->user = user;
    s->secret = secret;
    s->timeout_ms = TEST_TIMEOUT_MS;
}

/* login - a session for USER (password "pw") over pop3s, or fail the test */
static struct pop3_session *login(const char *user, size_t max_message_size)
{
    struct pop3_settings s;
    settings_for(&s, user, "pw", POP3_TLS_IMPLICIT);
    if (max_message_size != 0)
        s.max_message_size = max_message_size;
    struct pop3_session *sess = NULL;
    struct mb_error err;
    enum mb_status st = pop3_connect(&s, &sess, &err);
    if (st != MB_OK)
        fprintf(stderr, "login %s: %s\n", user, err.text);
    CU_ASSERT_EQUAL_FATAL(st, MB_OK);
    return sess;
}

/* list - pop3_list that must succeed */
static struct pop3_entry *list(struct pop3_session *sess, size_t *count_r)
{
    struct pop3_entry *entries = NULL;
    struct mb_error err;
    enum mb_status st = pop3_list(sess, &entries, count_r, &err);
    if (st != MB_OK)
        fprintf(stderr, "list: %s\n", err.text);
    CU_ASSERT_EQUAL_FATAL(st, MB_OK);
    return entries;
}

/* expect_message - message NUMBER of SESS is exactly LEN bytes of RAW */
static void expect_message(struct pop3_session *sess, unsigned number, const char *raw, size_t len)
{
    struct buf out;
    buf_init(&out, 0);
    struct mb_error err;
    enum mb_status st = pop3_retrieve(sess, number, &out, &err);
    if (st != MB_OK)
        fprintf(stderr, "retrieve %u: %s\n", number, err.text);
    CU_ASSERT_EQUAL_FATAL(st, MB_OK);
    CU_ASSERT_EQUAL(out.len, len);
    CU_ASSERT_TRUE(out.len == len && memcmp(out.data, raw, len) == 0);
    buf_free(&out);
}

/* quit_and_close - QUIT must succeed */
static void quit_and_close(struct pop3_session **sess)
{
    struct mb_error err;
    enum mb_status st = pop3_quit(*sess, &err);
    if (st != MB_OK)
        fprintf(stderr, "quit: %s\n", err.text);
    CU_ASSERT_EQUAL(st, MB_OK);
    pop3_close(sess);
    CU_ASSERT_PTR_NULL(*sess);
}

/* ---- against Dovecot ---- */

static void test_tls_verified_both_ways(void)
{
    static const enum pop3_tls modes[] = {POP3_TLS_IMPLICIT, POP3_TLS_STLS};
    for (size_t i = 0; i < 2; i++) {
        struct pop3_settings s;
        settings_for(&s, "support", "secret", modes[i]);
        struct pop3_session *sess = NULL;
        struct mb_error err;
        enum mb_status st = pop3_connect(&s, &sess, &err);
        if (st != MB_OK)
            fprintf(stderr, "connect: %s\n", err.text);
        CU_ASSERT_EQUAL_FATAL(st, MB_OK);
        size_t count = 99;
        struct pop3_entry *entries = list(sess, &count);
        CU_ASSERT_EQUAL(count, 0);
        CU_ASSERT_PTR_NULL(entries);
        quit_and_close(&sess);
    }
    /* the certificate also names "localhost": checked as a DNS name, with SNI */
    struct pop3_settings s;
    settings_for(&s, "support", "secret", POP3_TLS_IMPLICIT);
    s.host = "localhost";
    struct pop3_session *sess = NULL;
    struct mb_error err;
    enum mb_status st = pop3_connect(&s, &sess, &err);
    if (st != MB_OK)
        fprintf(stderr, "connect localhost: %s\n", err.text);
    CU_ASSERT_EQUAL(st, MB_OK);
    pop3_close(&sess);
}

/* A certificate from another CA stops the mailbox before USER is sent:
 * Dovecot logs those connections as having made no login attempt. */
static void test_untrusted_certificate_is_down_before_credentials(void)
{
    static const enum pop3_tls modes[] = {POP3_TLS_IMPLICIT, POP3_TLS_STLS};
    long offset = dovecot_log_size(&dc);
    CU_ASSERT_TRUE_FATAL(offset >= 0);
    for (size_t i = 0; i < 2; i++) {
        struct pop3_settings s;
        settings_for(&s, "untrusted", "pw", modes[i]);
        s.ca_file = dc.bad_ca_file;
        struct pop3_session *sess = NULL;
        struct mb_error err;
        CU_ASSERT_EQUAL(pop3_connect(&s, &sess, &err), MB_DOWN);
        CU_ASSERT_PTR_NULL(sess);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "verification failed"));
    }
    /* Dovecot writes the disconnect lines a moment after we hang up */
    char *fresh = dovecot_log_since(&dc, offset, "Disconnected", 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(fresh, "no auth attempts"));
    CU_ASSERT_PTR_NULL(strstr(fresh, "user=<untrusted>"));
    free(fresh);

    /* the same server with verification switched off */
    struct pop3_settings s;
    settings_for(&s, "support", "secret", POP3_TLS_IMPLICIT);
    s.ca_file = dc.bad_ca_file;
    s.tls_verify = false;
    struct pop3_session *sess = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(pop3_connect(&s, &sess, &err), MB_OK);
    pop3_close(&sess);
}

static void test_wrong_password_is_down_with_server_text(void)
{
    static const enum pop3_tls modes[] = {POP3_TLS_IMPLICIT, POP3_TLS_STLS};
    for (size_t i = 0; i < 2; i++) {
        struct pop3_settings s;
        settings_for(&s, "support", "Wrong-Secret-4711", modes[i]);
        struct pop3_session *sess = NULL;
        struct mb_error err;
        CU_ASSERT_EQUAL(pop3_connect(&s, &sess, &err), MB_DOWN);
        CU_ASSERT_PTR_NULL(sess);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "support"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "Authentication failed"));
        CU_ASSERT_PTR_NULL(strstr(err.text, "Wrong-Secret-4711"));
    }
}

static void test_list_uidls_stable_across_sessions(void)
{
    char *raw[3];
    size_t len[3];
    long uid[3];
    for (unsigned i = 0; i < 3; i++) {
        raw[i] = make_message(100 + i, 500 + 300 * i, &len[i]);
        uid[i] = append("lister", raw[i], len[i]);
    }
    struct pop3_session *sess = login("lister", 0);
    size_t count = 0;
    struct pop3_entry *first = list(sess, &count);
    CU_ASSERT_EQUAL_FATAL(count, 3);
    for (unsigned i = 0; i < 3; i++) {
        /* numbered in arrival order; each entry is the message appended */
        CU_ASSERT_EQUAL(first[i].number, i + 1);
        CU_ASSERT_EQUAL(first[i].size, len[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(first[i].uidl);
        /* the harness sets pop3_uidl_format = %08Xu%08Xv: the IMAP UID, then UIDVALIDITY */
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "%08lX", (unsigned long)uid[i]);
        CU_ASSERT_EQUAL(strlen(first[i].uidl), 16);
        CU_ASSERT_EQUAL(strncmp(first[i].uidl, prefix, 8), 0);
        for (unsigned j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(first[i].uidl, first[j].uidl);
        expect_message(sess, first[i].number, raw[i], len[i]);
    }
    quit_and_close(&sess);

    sess = login("lister", 0);
    struct pop3_entry *second = list(sess, &count);
    CU_ASSERT_EQUAL_FATAL(count, 3);
    for (unsigned i = 0; i < 3; i++)
        CU_ASSERT_STRING_EQUAL(second[i].uidl, first[i].uidl);
    pop3_entries_free(&second, count);
    pop3_close(&sess);
    pop3_entries_free(&first, 3);
    CU_ASSERT_PTR_NULL(first);
    for (unsigned i = 0; i < 3; i++)
        free(raw[i]);
}

static void test_retrieve_is_byte_exact(void)
{
    size_t len;
    char *raw = make_message(7, 300 * 1024, &len);
    append("retriever", raw, len);
    struct pop3_session *sess = login("retriever", 0);
    size_t count = 0;
    struct pop3_entry *entries = list(sess, &count);
    CU_ASSERT_EQUAL_FATAL(count, 1);
    CU_ASSERT_EQUAL(entries[0].size, len);
    expect_message(sess, entries[0].number, raw, len);
    expect_message(sess, entries[0].number, raw, len); /* again: the session is in step */
    pop3_entries_free(&entries, count);
    quit_and_close(&sess);
    free(raw);
}

/* Over the limit is MB_PERM for that message only: refused from the LIST
 * size when known, or read and dropped when not; the next one still comes. */
static void test_over_limit_is_perm_for_that_message(void)
{
    size_t len[3];
    char *raw[3] = {make_message(31, 600, &len[0]), make_message(32, 8000, &len[1]),
                    make_message(33, 900, &len[2])};
    for (unsigned i = 0; i < 3; i++)
        append("limited", raw[i], len[i]);
    const size_t limit = 3000;

    struct pop3_session *sess = login("limited", limit);
    size_t count = 0;
    struct pop3_entry *entries = list(sess, &count);
    CU_ASSERT_EQUAL_FATAL(count, 3);
    struct buf out;
    buf_init(&out, 0);
    struct mb_error err;
    CU_ASSERT_EQUAL(pop3_retrieve(sess, entries[1].number, &out, &err), MB_PERM);
    CU_ASSERT_EQUAL(out.len, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "message larger than 3000 bytes"));
    expect_message(sess, entries[2].number, raw[2], len[2]);
    quit_and_close(&sess);

    sess = login("limited", limit); /* no LIST: the size is found while reading */
    CU_ASSERT_EQUAL(pop3_retrieve(sess, entries[1].number, &out, &err), MB_PERM);
    CU_ASSERT_EQUAL(out.len, 0);
    expect_message(sess, entries[0].number, raw[0], len[0]);
    quit_and_close(&sess);

    buf_free(&out);
    pop3_entries_free(&entries, count);
    for (unsigned i = 0; i < 3; i++)
        free(raw[i]);
}

static void test_delete_committed_by_quit(void)
{
    size_t len[2];
    char *raw[2] = {make_message(41, 700, &len[0]), make_message(42, 800, &len[1])};
    append("deleter", raw[0], len[0]);
    append("deleter", raw[1], len[1]);
    struct pop3_session *sess = login("deleter", 0);
    size_t count = 0;
    struct pop3_entry *entries = list(sess, &count);
    CU_ASSERT_EQUAL_FATAL(count, 2);
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(pop3_delete(sess, entries[0].number, &err), MB_OK);
    /* gone for this session already... */
    struct buf out;
    buf_init(&out, 0);
    CU_ASSERT_EQUAL(pop3_retrieve(sess, entries[0].number, &out, &err), MB_TEMP);
    buf_free(&out);
    size_t now = 0;
    struct pop3_entry *rest = list(sess, &now);
    CU_ASSERT_EQUAL(now, 1);
    pop3_entries_free(&rest, now);
    quit_and_close(&sess);
    /* ...and for good after QUIT */
    CU_ASSERT_EQUAL(inbox_count("deleter"), 1);
    sess = login("deleter", 0);
    rest = list(sess, &now);
    CU_ASSERT_EQUAL_FATAL(now, 1);
    CU_ASSERT_STRING_EQUAL(rest[0].uidl, entries[1].uidl);
    expect_message(sess, rest[0].number, raw[1], len[1]);
    pop3_entries_free(&rest, now);
    pop3_close(&sess);
    pop3_entries_free(&entries, count);
    free(raw[0]);
    free(raw[1]);
}

static void test_delete_forgotten_by_close(void)
{
    size_t len;
    char *raw = make_message(51, 700, &len);
    append("keeper", raw, len);
    struct pop3_session *sess = login("keeper", 0);
    size_t count = 0;
    struct pop3_entry *entries = list(sess, &count);
    CU_ASSERT_EQUAL_FATAL(count, 1);
    struct mb_error err;
    CU_ASSERT_EQUAL(pop3_delete(sess, entries[0].number, &err), MB_OK);
    pop3_close(&sess); /* no QUIT: as if we crashed before the store commit */
    CU_ASSERT_PTR_NULL(sess);

    CU_ASSERT_EQUAL(inbox_count("keeper"), 1);
    sess = login("keeper", 0);
    size_t again = 0;
    struct pop3_entry *kept = list(sess, &again);
    CU_ASSERT_EQUAL_FATAL(again, 1);
    CU_ASSERT_STRING_EQUAL(kept[0].uidl, entries[0].uidl);
    expect_message(sess, kept[0].number, raw, len);
    pop3_entries_free(&kept, again);
    quit_and_close(&sess);
    pop3_entries_free(&entries, count);
    free(raw);
}

/* The server stops with sessions open (pop3s, STLS and clear text): every
 * call is MB_TEMP, nothing crashes or hangs, and reconnecting is MB_TEMP.
 * (Dovecot says "-ERR [SYS/TEMP] Server shutting down." before it hangs up;
 * whether the RETR reads that line or the hang-up depends on timing.) */
static void test_server_stopped_mid_session(void)
{
    size_t len;
    char *raw = make_message(61, 2000, &len);
    append("support", raw, len);
    static const enum pop3_tls modes[] = {POP3_TLS_IMPLICIT, POP3_TLS_STLS, POP3_TLS_NONE};
    struct pop3_session *sess[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < 3; i++) {
        struct pop3_settings s;
        settings_for(&s, "support", "secret", modes[i]);
        struct mb_error err;
        enum mb_status st = pop3_connect(&s, &sess[i], &err);
        if (st != MB_OK)
            fprintf(stderr, "connect: %s\n", err.text);
        CU_ASSERT_EQUAL_FATAL(st, MB_OK);
    }
    size_t count = 0;
    struct pop3_entry *entries = list(sess[0], &count);
    CU_ASSERT_EQUAL_FATAL(count, 1);

    dovecot_stop(&dc);

    struct buf out;
    buf_init(&out, 0);
    struct mb_error err;
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(pop3_retrieve(sess[i], 1, &out, &err), MB_TEMP);
        CU_ASSERT_EQUAL(out.len, 0);
        CU_ASSERT_EQUAL(pop3_delete(sess[i], 1, &err), MB_TEMP);
        /* by now the loss is known and QUIT does not even try */
        CU_ASSERT_EQUAL(pop3_quit(sess[i], &err), MB_TEMP);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "lost earlier"));
        pop3_close(&sess[i]);
    }
    buf_free(&out);
    struct pop3_settings s;
    settings_for(&s, "support", "secret", POP3_TLS_IMPLICIT);
    struct pop3_session *again = NULL;
    CU_ASSERT_EQUAL(pop3_connect(&s, &again, &err), MB_TEMP);
    CU_ASSERT_PTR_NULL(again);
    pop3_entries_free(&entries, count);
    free(raw);
}

/* ---- against a scripted fake server ---- */

enum step_kind {
    SEND,       /* write TEXT (LEN bytes; 0 = strlen) */
    EXPECT,     /* read one line; it must start with TEXT */
    EXPECT_EOF, /* the client must hang up without sending anything more */
};

struct step {
    enum step_kind kind;
    const char *text;
    size_t len;
};

/* read_line - one line from FD into LINE (at most SIZE-1 bytes), false at the end */
static bool read_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    char c;
    while (read(fd, &c, 1) == 1) {
        if (n + 1 < size)
            line[n++] = c;
        if (c == '\n') {
            line[n] = '\0';
            return true;
        }
    }
    return false;
}

/* play - the fake server's side of one connection; the exit status is 0
 * when the client did as the script says, else the failing step + 1 */
static void play(int ls, const struct step *steps, size_t count)
{
    alarm(60); /* a bound for a stuck client, never reached when all is well */
    int c = accept(ls, NULL, NULL);
    if (c < 0)
        _exit(100);
    for (size_t i = 0; i < count; i++) {
        char line[1024];
        const struct step *st = &steps[i];
        size_t len = st->len != 0 ? st->len : st->text != NULL ? strlen(st->text) : 0;
        if (st->kind == SEND && write(c, st->text, len) != (ssize_t)len)
            _exit((int)i + 1);
        if (st->kind == EXPECT &&
            (!read_line(c, line, sizeof(line)) || strncmp(line, st->text, len) != 0))
            _exit((int)i + 1);
        if (st->kind == EXPECT_EOF && read(c, line, 1) != 0)
            _exit((int)i + 1);
    }
    close(c); /* the end of the script hangs up */
    _exit(0);
}

struct fake {
    pid_t pid;
    unsigned port;
};

/* fake_start - a one-connection server on loopback playing STEPS */
static void fake_start(struct fake *f, const struct step *steps, size_t count)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_TRUE_FATAL(ls >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    CU_ASSERT_EQUAL_FATAL(bind(ls, (struct sockaddr *)&addr, sizeof(addr)), 0);
    CU_ASSERT_EQUAL_FATAL(listen(ls, 1), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(ls, (struct sockaddr *)&addr, &alen), 0);
    f->port = ntohs(addr.sin_port);
    fflush(NULL);
    f->pid = fork();
    CU_ASSERT_TRUE_FATAL(f->pid >= 0);
    if (f->pid == 0)
        play(ls, steps, count);
    close(ls);
}

/* fake_finish - the fake server's verdict: 0 when the script was followed */
static int fake_finish(struct fake *f)
{
    int status = -1;
    waitpid(f->pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000;
}

/* fake_settings - clear text to the fake server F as user "u", password "p" */
static void fake_settings(struct pop3_settings *s, const struct fake *f)
{
    pop3_settings_default(s);
    s->host = "127.0.0.1";
    s->port = f->port;
    s->tls = POP3_TLS_NONE;
    s->user = "u";
    s->secret = "p";
    s->timeout_ms = TEST_TIMEOUT_MS;
}

/* clang-format off */
#define LOGIN_STEPS \
    {SEND, "+OK fake ready\r\n", 0}, {EXPECT, "USER u\r", 0}, {SEND, "+OK\r\n", 0}, \
    {EXPECT, "PASS p\r", 0}, {SEND, "+OK logged in\r\n", 0}
/* clang-format on */

static void test_stls_refused_is_down_without_credentials(void)
{
    static const struct step steps[] = {
        {SEND, "+OK fake ready\r\n", 0},
        {EXPECT, "STLS\r", 0},
        {SEND, "-ERR not on this port\r\n", 0},
        {EXPECT_EOF, NULL, 0},
    };
    struct fake f;
    fake_start(&f, steps, sizeof(steps) / sizeof(steps[0]));
    struct pop3_settings s;
    fake_settings(&s, &f);
    s.tls = POP3_TLS_STLS;
    struct pop3_session *sess = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(pop3_connect(&s, &sess, &err), MB_DOWN);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "not on this port"));
    CU_ASSERT_EQUAL(fake_finish(&f), 0); /* no USER after the refusal */
}

static void test_busy_maildrop_is_temp(void)
{
    static const struct step steps[] = {
        {SEND, "+OK fake ready\r\n", 0},
        {EXPECT, "USER u\r", 0},
        {SEND, "+OK\r\n", 0},
        {EXPECT, "PASS p\r", 0},
        {SEND, "-ERR [IN-USE] maildrop locked by another session\r\n", 0},
    };
    struct fake f;
    fake_start(&f, steps, sizeof(steps) / sizeof(steps[0]));
    struct pop3_settings s;
    fake_settings(&s, &f);
    struct pop3_session *sess = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(pop3_connect(&s, &sess, &err), MB_TEMP);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "[IN-USE]"));
    CU_ASSERT_EQUAL(fake_finish(&f), 0);
}

/* The line drops in the middle of a LIST, then of a RETR, on clear text. */
static void test_hangup_mid_answer_is_temp(void)
{
    static const struct step mid_list[] = {
        LOGIN_STEPS,
        {EXPECT, "LIST\r", 0},
        {SEND, "+OK 2 messages\r\n1 120\r\n", 0},
    };
    static const struct step mid_retr[] = {
        LOGIN_STEPS,
        {EXPECT, "RETR 1\r", 0},
        {SEND, "+OK 120 octets\r\nSubject: cut\r\n\r\nhalf a li", 0},
    };
    struct fake f;
    fake_start(&f, mid_list, sizeof(mid_list) / sizeof(mid_list[0]));
    struct pop3_settings s;
    fake_settings(&s, &f);
    struct pop3_session *sess = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(pop3_connect(&s, &sess, &err), MB_OK);
    struct pop3_entry *entries = NULL;
    size_t count = 9;
    CU_ASSERT_EQUAL(pop3_list(sess, &entries, &count, &err), MB_TEMP);
    CU_ASSERT_PTR_NULL(entries);
    CU_ASSERT_EQUAL(count, 0);
    CU_ASSERT_EQUAL(pop3_list(sess, &entries, &count, &err), MB_TEMP);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "lost earlier"));
    pop3_close(&sess);
    CU_ASSERT_EQUAL(fake_finish(&f), 0);

    fake_start(&f, mid_retr, sizeof(mid_retr) / sizeof(mid_retr[0]));
    fake_settings(&s, &f);
    CU_ASSERT_EQUAL_FATAL(pop3_connect(&s, &sess, &err), MB_OK);
    struct buf out;
    buf_init(&out, 0);
    CU_ASSERT_EQUAL(pop3_retrieve(sess, 1, &out, &err), MB_TEMP);
    CU_ASSERT_EQUAL(out.len, 0);
    buf_free(&out);
    pop3_close(&sess);
    CU_ASSERT_EQUAL(fake_finish(&f), 0);
}

/* A server that stops answering: the time-out ends the wait, MB_TEMP. */
static void test_silent_server_times_out(void)
{
    static const struct step steps[] = {
        LOGIN_STEPS,
        {EXPECT, "LIST\r", 0},
        {EXPECT_EOF, NULL, 0},
    };
    struct fake f;
    fake_start(&f, steps, sizeof(steps) / sizeof(steps[0]));
    struct pop3_settings s;
    fake_settings(&s, &f);
    s.timeout_ms = 1000;
    struct pop3_session *sess = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(pop3_connect(&s, &sess, &err), MB_OK);
    struct pop3_entry *entries = NULL;
    size_t count = 0;
    CU_ASSERT_EQUAL(pop3_list(sess, &entries, &count, &err), MB_TEMP);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "timed out"));
    pop3_close(&sess);
    CU_ASSERT_EQUAL(fake_finish(&f), 0);
}

/* A server that under-states a size still meets the limit (the message is
 * read and dropped, the session stays in step); NUL bytes and dot lines
 * come through exactly; -ERR to QUIT means the deletions did not happen. */
static void test_lying_size_nul_bytes_and_refused_quit(void)
{
    static const char big[] = "+OK\r\n"
                              "Subject: big\r\n\r\n"
                              "0123456789012345678901234567890123456789012345678901234567890123\r\n"
                              "0123456789012345678901234567890123456789012345678901234567890123\r\n"
                              ".\r\n";
    static const char nul[] = "+OK\r\nA\0B\r\n..x\r\n.\r\r\n.\r\n";
    static const char nul_body[] = "A\0B\r\n.x\r\n\r\r\n";
    static const struct step steps[] = {
        LOGIN_STEPS,
        {EXPECT, "LIST\r", 0},
        {SEND, "+OK\r\n1 10\r\n2 12\r\n.\r\n", 0},
        {EXPECT, "UIDL\r", 0},
        {SEND, "+OK\r\n1 first-1\r\n2 second-2\r\n.\r\n", 0},
        {EXPECT, "RETR 1\r", 0},
        {SEND, big, sizeof(big) - 1},
        {EXPECT, "RETR 2\r", 0},
        {SEND, nul, sizeof(nul) - 1},
        {EXPECT, "DELE 2\r", 0},
        {SEND, "+OK marked\r\n", 0},
        {EXPECT, "QUIT\r", 0},
        {SEND, "-ERR [SYS/TEMP] could not expunge\r\n", 0},
    };
    struct fake f;
    fake_start(&f, steps, sizeof(steps) / sizeof(steps[0]));
    struct pop3_settings s;
    fake_settings(&s, &f);
    s.max_message_size = 100;
    struct pop3_session *sess = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(pop3_connect(&s, &sess, &err), MB_OK);
    size_t count = 0;
    struct pop3_entry *entries = list(sess, &count);
    CU_ASSERT_EQUAL_FATAL(count, 2);
    CU_ASSERT_STRING_EQUAL(entries[0].uidl, "first-1");
    CU_ASSERT_STRING_EQUAL(entries[1].uidl, "second-2");
    CU_ASSERT_EQUAL(entries[1].size, 12);
    pop3_entries_free(&entries, count);

    struct buf out;
    buf_init(&out, 0);
    CU_ASSERT_EQUAL(pop3_retrieve(sess, 1, &out, &err), MB_PERM);
    CU_ASSERT_EQUAL(out.len, 0);
    CU_ASSERT_EQUAL_FATAL(pop3_retrieve(sess, 2, &out, &err), MB_OK);
    CU_ASSERT_EQUAL(out.len, sizeof(nul_body) - 1);
    CU_ASSERT_TRUE(out.len == sizeof(nul_body) - 1 && memcmp(out.data, nul_body, out.len) == 0);
    buf_free(&out);
    CU_ASSERT_EQUAL(pop3_delete(sess, 2, &err), MB_OK);
    CU_ASSERT_EQUAL(pop3_quit(sess, &err), MB_TEMP);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "could not expunge"));
    pop3_close(&sess);
    CU_ASSERT_EQUAL(fake_finish(&f), 0);
}

static void test_bad_settings_are_config(void)
{
    static const struct {
        const char *user, *secret;
    } cases[] = {
        {"u", "p\r\nDELE 1"},
        {"u\nx", "p"},
        {"", "p"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pop3_settings s;
        pop3_settings_default(&s);
        s.host = "127.0.0.1";
        s.port = 1; /* never reached */
        s.user = cases[i].user;
        s.secret = cases[i].secret;
        struct pop3_session *sess = NULL;
        struct mb_error err;
        CU_ASSERT_EQUAL(pop3_connect(&s, &sess, &err), MB_CONFIG);
        CU_ASSERT_PTR_NULL(strstr(err.text, "DELE"));
    }
}

/* ---- suites ---- */

static int suite_setup(void)
{
    static const char users[] = "support:secret,untrusted:pw,lister:pw,retriever:pw,limited:pw,"
                                "deleter:pw,keeper:pw";
    return dovecot_start(&dc, "pop3", users) ? 0 : -1;
}

static int suite_teardown(void)
{
    dovecot_free(&dc);
    return 0;
}

static int loss_setup(void)
{
    return dovecot_start(&dc, "pop3", "support:secret") ? 0 : -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as main() does: a vanished peer is an error, not a signal */
    static const struct unit_test dovecot_tests[] = {
        {"TLS verified: pop3s and STLS", test_tls_verified_both_ways},
        {"untrusted certificate: down, no credentials",
         test_untrusted_certificate_is_down_before_credentials},
        {"wrong password: down, server text", test_wrong_password_is_down_with_server_text},
        {"LIST/UIDL stable across sessions", test_list_uidls_stable_across_sessions},
        {"RETR byte exact", test_retrieve_is_byte_exact},
        {"over the limit: perm for that message", test_over_limit_is_perm_for_that_message},
        {"DELE + QUIT removes", test_delete_committed_by_quit},
        {"DELE + close keeps", test_delete_forgotten_by_close},
        {NULL, NULL},
    };
    static const struct unit_test loss_tests[] = {
        {"server stopped mid-session: temp", test_server_stopped_mid_session},
        {NULL, NULL},
    };
    static const struct unit_test fake_tests[] = {
        {"STLS refused: down, no credentials", test_stls_refused_is_down_without_credentials},
        {"[IN-USE]: temp", test_busy_maildrop_is_temp},
        {"hang-up mid-answer on clear text: temp", test_hangup_mid_answer_is_temp},
        {"silent server: temp after the time-out", test_silent_server_times_out},
        {"lying size, NUL bytes, refused QUIT", test_lying_size_nul_bytes_and_refused_quit},
        {"bad settings: config", test_bad_settings_are_config},
        {NULL, NULL},
    };
    static const struct unit_suite suites[] = {
        {"pop3+fake", fake_tests, NULL, NULL},
        {"pop3+dovecot", dovecot_tests, suite_setup, suite_teardown},
        {"pop3+dovecot stopping", loss_tests, loss_setup, suite_teardown},
        {NULL, NULL, NULL, NULL},
    };
    return unit_run(suites);
}
