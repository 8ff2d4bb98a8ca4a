/* test_imap - the IMAP client session against a real Dovecot started by
 * tests/integration/dovecot.py: verified TLS (implicit and STARTTLS, wrong
 * CA with no credentials sent, wrong name), the three logins and refused
 * ones, SELECT, fetching by UID (order, exact bytes, batches, the "N:*"
 * edge, no \Seen, oversized and spooled messages), flags, MOVE and its
 * fallbacks and delete on sets of UIDs (one split over several commands),
 * CREATE, IDLE, NOOP, and a server that goes away. A
 * scripted server covers what Dovecot will not do: no STARTTLS, data
 * injected after STARTTLS, silence (timeouts). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dovecot_fixture.h"
#include "lib/buf.h"
#include "lib/xalloc.h"
#include "transport/imap.h"
#include "unit.h"

static struct dovecot dc; /* the suite's server, started in its setup */

/* settings - LOGIN as support over implicit TLS, verified with the test CA */
static void settings(struct imap_settings *s)
{
    imap_settings_default(s);
    s->host = dc.host;
    s->port = dc.imaps_port;
    s->tls = IMAP_TLS_IMPLICIT;
    s->ca_file = dc.ca_file;
    s->user = "support";
    s->secret = "secret";
    s->timeout_ms = 30000;
}

/* session - a connected session as settings() says (FATAL on failure) */
static struct imap_session *session(void)
{
    struct imap_settings set;
    settings(&set);
    struct imap_session *s = NULL;
    struct mb_error err;
    if (imap_connect(&set, &s, &err) != MB_OK)
        fprintf(stderr, "imap_connect: %s\n", err.text);
    return s;
}

/* selected - a session() with FOLDER selected, what SELECT said in *F;
 * fails the test when either step does */
static struct imap_session *selected(const char *folder, struct imap_folder *f)
{
    struct imap_session *s = session();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(imap_select(s, folder, f, &err), MB_OK);
    return s;
}

/* What a fetch delivered, for the assertions. */
struct got {
    unsigned count;
    uint32_t uids[64];
    char *data[64]; /* owned copies; NULL when delivered as too large */
    size_t lens[64];
    unsigned fail_at;          /* return MB_TEMP for this delivery (1-based); 0 = never */
    const char *flag;          /* imap_add_flag this on each message from inside FN */
    struct imap_session *sess; /* for FLAG */
    bool spooled[64];          /* DATA lived in a deleted file of SPOOL_DIR */
    const char *spool_dir;
    const char *append_folder; /* append one message here on the first delivery */
};

/* mapped_from_spool - whether a descriptor of ours is a deleted file of DIR */
static bool mapped_from_spool(const char *dir)
{
    DIR *fds = opendir("/proc/self/fd");
    bool found = false;
    struct dirent *e;
    while (fds != NULL && (e = readdir(fds)) != NULL && !found) {
        char link[300], target[512];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strncmp(target, dir, strlen(dir)) == 0 && strstr(target, "(deleted)") != NULL;
    }
    if (fds)
        closedir(fds);
    return found;
}

static enum mb_status collect(void *ctx, uint32_t uid, const unsigned char *data, size_t len,
                              struct mb_error *err)
{
    struct got *g = ctx;
    if (g->fail_at != 0 && g->count + 1 == g->fail_at)
        return mb_error_set(err, MB_TEMP, "refused by the test");
    if (g->count == 64)
        return mb_error_set(err, MB_PERM, "too many");
    unsigned i = g->count++;
    g->uids[i] = uid;
    g->data[i] = data ? xmemdup(data, len) : NULL;
    g->lens[i] = len;
    if (g->spool_dir != NULL)
        g->spooled[i] = mapped_from_spool(g->spool_dir);
    if (g->append_folder != NULL && i == 0) {
        dovecot_append(&dc, "support", g->append_folder, "Subject: late\r\n\r\nlate\r\n", 23, NULL);
    }
    if (g->flag != NULL)
        return imap_add_flag(g->sess, &uid, 1, g->flag, err);
    return MB_OK;
}

static void got_free(struct got *g)
{
    for (unsigned i = 0; i < g->count; i++)
        free(g->data[i]);
    memset(g, 0, sizeof(*g));
}

/* --- TLS and login ----------------------------------------------------- */

static void test_implicit_tls_login(void)
{
    struct imap_session *s = session();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_TRUE(imap_has_capability(s, "IDLE"));
    CU_ASSERT_TRUE(imap_has_capability(s, "move")); /* case-insensitive */
    CU_ASSERT_TRUE(imap_has_capability(s, "UIDPLUS"));
    CU_ASSERT_FALSE(imap_has_capability(s, "X-NO-SUCH-THING"));
    imap_disable_capability(s, "MOVE");
    CU_ASSERT_FALSE(imap_has_capability(s, "MOVE"));
    imap_close(&s);
    CU_ASSERT_PTR_NULL(s);
}

static void test_starttls_plain(void)
{
    struct imap_settings set;
    settings(&set);
    set.tls = IMAP_TLS_STARTTLS;
    set.port = dc.imap_port;
    set.auth = IMAP_AUTH_PLAIN;
    struct imap_session *s = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_connect(&set, &s, &err), MB_OK);
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) {
        struct imap_folder f;
        CU_ASSERT_EQUAL(imap_select(s, "INBOX", &f, &err), MB_OK);
    }
    imap_close(&s);
}

static void test_starttls_localhost_name(void)
{
    struct imap_settings set;
    settings(&set);
    set.host = "localhost"; /* the certificate names localhost and 127.0.0.1 */
    set.tls = IMAP_TLS_STARTTLS;
    set.port = dc.imap_port;
    struct imap_session *s = NULL;
    struct mb_error err;
    enum mb_status st = imap_connect(&set, &s, &err);
    if (st != MB_OK)
        fprintf(stderr, "localhost: %s\n", err.text);
    CU_ASSERT_EQUAL(st, MB_OK);
    imap_close(&s);
}

static void test_xoauth2(void)
{
    CU_ASSERT_NOT_EQUAL_FATAL(dc.token[0], '\0'); /* the harness gives a token */
    struct imap_settings set;
    settings(&set);
    set.auth = IMAP_AUTH_XOAUTH2;
    set.secret = dc.token;
    struct imap_session *s = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_connect(&set, &s, &err), MB_OK);
    imap_close(&s);
    set.secret = "not-the-token";
    CU_ASSERT_EQUAL(imap_connect(&set, &s, &err), MB_DOWN);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "IMAP login to"));
    CU_ASSERT_PTR_NULL(strstr(err.text, "not-the-token"));
}

static void test_wrong_password_is_down(void)
{
    struct imap_settings set;
    settings(&set);
    set.secret = "wrong-password-xyz";
    for (int auth = IMAP_AUTH_LOGIN; auth <= IMAP_AUTH_PLAIN; auth++) {
        set.auth = (enum imap_auth)auth;
        struct imap_session *s = NULL;
        struct mb_error err;
        CU_ASSERT_EQUAL(imap_connect(&set, &s, &err), MB_DOWN);
        CU_ASSERT_PTR_NULL(s);
        char expect[128];
        snprintf(expect, sizeof(expect), "IMAP login to %s:%u as support failed: ", dc.host,
                 dc.imaps_port);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, expect));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "AUTHENTICATIONFAILED"));
        CU_ASSERT_PTR_NULL(strstr(err.text, "wrong-password-xyz"));
    }
}

/* connect_fails - imap_connect with SET must fail with STATUS, text EXPECT */
static void connect_fails(const struct imap_settings *set, enum mb_status status,
                          const char *expect)
{
    struct imap_session *s = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_connect(set, &s, &err), status);
    CU_ASSERT_PTR_NULL(s);
    if (strstr(err.text, expect) == NULL)
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", expect, err.text);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, expect));
}

static void test_untrusted_ca_is_down(void)
{
    struct imap_settings set;
    settings(&set);
    set.ca_file = dc.bad_ca_file;
    char expect[128];
    snprintf(expect, sizeof(expect), "TLS certificate verification failed for %s: ", dc.host);
    long offset = dovecot_log_size(&dc);
    CU_ASSERT_TRUE_FATAL(offset >= 0);
    connect_fails(&set, MB_DOWN, expect);
    set.tls = IMAP_TLS_STARTTLS;
    set.port = dc.imap_port;
    connect_fails(&set, MB_DOWN, expect);
    /* the server saw two TLS clients leave without trying to log in */
    char *log = dovecot_log_since(&dc, offset, "no auth attempts", 2);
    int left = 0;
    for (const char *p = log; (p = strstr(p, "no auth attempts")) != NULL; p++)
        left++;
    CU_ASSERT_EQUAL(left, 2);
    CU_ASSERT_PTR_NULL(strstr(log, "user=<support>"));
    if (left != 2)
        fprintf(stderr, "server log:\n%s\n", log);
    free(log);
    set.tls_verify = false; /* explicitly off: the same server is accepted */
    struct imap_session *s = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_connect(&set, &s, &err), MB_OK);
    imap_close(&s);
}

static void test_wrong_host_name_is_down(void)
{
    struct imap_settings set;
    settings(&set);
    set.host = "127.1"; /* resolves to 127.0.0.1, but is not a name the certificate has */
    connect_fails(&set, MB_DOWN, "TLS certificate verification failed for 127.1: ");
}

static void test_unreadable_ca_file_is_config(void)
{
    struct imap_settings set;
    settings(&set);
    set.ca_file = "/nonexistent/ca.pem";
    connect_fails(&set, MB_CONFIG, "CA file /nonexistent/ca.pem");
}

static void test_connection_refused_is_temp(void)
{
    struct imap_settings set;
    settings(&set);
    set.port = 1; /* nothing listens there */
    connect_fails(&set, MB_TEMP, "connect failed");
}

/* --- a scripted server, for what Dovecot cannot be made to do ------------- */

/* listen_local - a TCP socket listening on 127.0.0.1, its port in *PORT_R */
static int listen_local(unsigned *port_r)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port_r = ntohs(a.sin_port);
    return fd;
}

/* A child process serving one connection from a script. */
struct fake {
    pid_t pid;
    unsigned port;
    int lines; /* read end: every line the client sent */
};

/* fake_start - greet with "* OK [CAPABILITY CAPS] fake", answer CAPABILITY
 * with CAPS, STARTTLS with "TAG STARTTLS_REPLY" (one write), LOGOUT with
 * BYE, anything else with BAD; every line received goes to F->lines */
static bool fake_start(struct fake *f, const char *caps, const char *starttls_reply)
{
    int ls = listen_local(&f->port);
    int p[2];
    if (ls < 0 || pipe(p) < 0)
        return false;
    f->pid = fork();
    if (f->pid == 0) {
        close(p[0]);
        int c = accept(ls, NULL, NULL);
        dprintf(c, "* OK [CAPABILITY %s] fake ready\r\n", caps);
        FILE *in = fdopen(c, "r");
        char line[1024], tag[64], cmd[64];
        while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
            if (write(p[1], line, strlen(line)) < 0 || sscanf(line, "%63s %63s", tag, cmd) != 2)
                break;
            if (strcasecmp(cmd, "CAPABILITY") == 0)
                dprintf(c, "* CAPABILITY %s\r\n%s OK done\r\n", caps, tag);
            else if (strcasecmp(cmd, "STARTTLS") == 0)
                dprintf(c, "%s %s\r\n", tag, starttls_reply);
            else if (strcasecmp(cmd, "LOGOUT") == 0)
                dprintf(c, "* BYE bye\r\n%s OK done\r\n", tag);
            else
                dprintf(c, "%s BAD unexpected\r\n", tag);
        }
        _exit(0);
    }
    close(p[1]);
    close(ls);
    f->lines = p[0];
    return f->pid > 0;
}

/* fake_finish - what the client sent, once it has gone; owned by caller */
static char *fake_finish(struct fake *f)
{
    struct buf b;
    buf_init(&b, 0);
    char chunk[1024];
    ssize_t n;
    while ((n = read(f->lines, chunk, sizeof(chunk))) > 0)
        buf_append(&b, chunk, (size_t)n);
    buf_append(&b, "", 0);
    close(f->lines);
    while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return buf_steal(&b);
}

static void test_starttls_not_offered_is_down(void)
{
    struct fake f;
    CU_ASSERT_TRUE_FATAL(fake_start(&f, "IMAP4rev1 AUTH=PLAIN", "OK begin"));
    struct imap_settings set;
    settings(&set);
    set.port = f.port;
    set.tls = IMAP_TLS_STARTTLS;
    connect_fails(&set, MB_DOWN, "does not offer STARTTLS");
    char *sent = fake_finish(&f);
    CU_ASSERT_PTR_NULL(strstr(sent, "LOGIN"));
    CU_ASSERT_PTR_NULL(strstr(sent, "AUTHENTICATE"));
    CU_ASSERT_PTR_NULL(strstr(sent, "secret"));
    free(sent);
}

static void test_starttls_injection_is_down(void)
{
    struct fake f; /* CVE-2020-15953: clear text smuggled in behind the OK */
    CU_ASSERT_TRUE_FATAL(
        fake_start(&f, "IMAP4rev1 STARTTLS", "OK begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN"));
    struct imap_settings set;
    settings(&set);
    set.port = f.port;
    set.tls = IMAP_TLS_STARTTLS;
    connect_fails(&set, MB_DOWN, "sent data after accepting STARTTLS");
    char *sent = fake_finish(&f);
    CU_ASSERT_PTR_NULL(strstr(sent, "LOGIN"));
    free(sent);
}

static void test_silent_server_times_out(void)
{
    unsigned port; /* the kernel completes the handshake; nobody ever speaks */
    int ls = listen_local(&port);
    CU_ASSERT_TRUE_FATAL(ls >= 0);
    struct imap_settings set;
    settings(&set);
    set.port = port;
    set.timeout_ms = 1000;
    set.tls = IMAP_TLS_NONE;
    connect_fails(&set, MB_TEMP, "timed out during the greeting");
    set.tls = IMAP_TLS_IMPLICIT;
    connect_fails(&set, MB_TEMP, "TLS handshake failed");
    close(ls);
}

static void test_clear_text_when_configured(void)
{
    struct imap_settings set;
    settings(&set);
    set.tls = IMAP_TLS_NONE;
    set.port = dc.imap_port;
    struct imap_session *s = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_connect(&set, &s, &err), MB_OK);
    struct imap_folder f;
    CU_ASSERT_TRUE(s && imap_select(s, "INBOX", &f, &err) == MB_OK);
    imap_close(&s);
}

/* --- folders and fetching ------------------------------------------------- */

static void test_select(void)
{
    const char *folder = "SelectMe";
    size_t len;
    char *raw = dovecot_make_message("select", 300, &len);
    uint32_t uids[3];
    for (int i = 0; i < 3; i++)
        uids[i] = dovecot_append(&dc, "support", folder, raw, len, NULL);
    free(raw);
    CU_ASSERT_TRUE_FATAL(uids[0] != 0 && uids[2] == uids[0] + 2);
    struct imap_session *s = session();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct imap_folder f;
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_select(s, folder, &f, &err), MB_OK);
    CU_ASSERT_EQUAL(f.exists, 3);
    CU_ASSERT_EQUAL(f.uidnext, uids[2] + 1);
    CU_ASSERT_NOT_EQUAL(f.uidvalidity, 0);
    struct imap_folder again;
    CU_ASSERT_EQUAL(imap_select(s, "INBOX", &again, &err), MB_OK);
    CU_ASSERT_EQUAL(imap_select(s, folder, &again, &err), MB_OK);
    CU_ASSERT_EQUAL(again.uidvalidity, f.uidvalidity);
    CU_ASSERT_EQUAL(imap_select(s, "No/Such/Folder", &f, &err), MB_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "No/Such/Folder"));
    imap_close(&s);
}

static void test_fetch_order_bytes_batches(void)
{
    const char *folder = "Fetch";
    char *raws[5];
    size_t lens[5];
    uint32_t uids[5];
    dovecot_fill(&dc, "support", folder, 5, 2000, raws, lens, uids);
    CU_ASSERT_TRUE_FATAL(uids[0] != 0 && uids[4] != 0);
    struct imap_folder f;
    struct imap_session *s = selected(folder, &f);
    struct mb_error err;

    /* from the second message: exactly the last four, oldest first, byte exact */
    struct got g = {0};
    uint32_t next = 0;
    CU_ASSERT_EQUAL(imap_fetch(s, uids[1], 100, collect, &g, &next, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(g.count, 4);
    for (unsigned i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(g.uids[i], uids[i + 1]);
        CU_ASSERT_EQUAL(g.lens[i], lens[i + 1]);
        CU_ASSERT_TRUE(g.data[i] && memcmp(g.data[i], raws[i + 1], lens[i + 1]) == 0);
    }
    CU_ASSERT_EQUAL(next, uids[4] + 1);
    got_free(&g);

    /* batches of two: 2 + 2 + 1, then nothing, NEXT unchanged ("N:*" edge) */
    uint32_t from = uids[0];
    unsigned sizes[] = {2, 2, 1, 0};
    for (unsigned round = 0; round < 4; round++) {
        CU_ASSERT_EQUAL(imap_fetch(s, from, 2, collect, &g, &next, &err), MB_OK);
        CU_ASSERT_EQUAL(g.count, sizes[round]);
        if (g.count > 0) {
            CU_ASSERT_EQUAL(g.uids[0], 2 * round < 5 ? uids[2 * round] : 0);
            CU_ASSERT_EQUAL(next, g.uids[g.count - 1] + 1);
        } else {
            CU_ASSERT_EQUAL(next, from);
        }
        from = next;
        got_free(&g);
    }
    CU_ASSERT_EQUAL(from, uids[4] + 1);

    /* far above every UID: still nothing */
    CU_ASSERT_EQUAL(imap_fetch(s, uids[4] + 1000, 10, collect, &g, &next, &err), MB_OK);
    CU_ASSERT_EQUAL(g.count, 0);
    CU_ASSERT_EQUAL(next, uids[4] + 1000);
    imap_close(&s);

    /* fetching never set \Seen */
    for (unsigned i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, uids[i], "\\\\Seen"), 0);
        free(raws[i]);
    }
}

static void test_fetch_stops_at_callback_error(void)
{
    const char *folder = "FetchFail";
    char *raws[3];
    size_t lens[3];
    uint32_t uids[3];
    dovecot_fill(&dc, "support", folder, 3, 500, raws, lens, uids);
    struct imap_folder f;
    struct imap_session *s = selected(folder, &f);
    struct mb_error err;
    struct got g = {.fail_at = 2};
    uint32_t next = 0;
    CU_ASSERT_EQUAL(imap_fetch(s, 1, 10, collect, &g, &next, &err), MB_TEMP);
    CU_ASSERT_STRING_EQUAL(err.text, "refused by the test");
    CU_ASSERT_EQUAL(g.count, 1);
    CU_ASSERT_EQUAL(next, uids[1]); /* the refused one comes again */
    got_free(&g);
    imap_close(&s);
    for (unsigned i = 0; i < 3; i++)
        free(raws[i]);
}

static void test_fetch_flags_from_callback_and_late_mail(void)
{
    const char *folder = "FetchFlag";
    char *raws[2];
    size_t lens[2];
    uint32_t uids[2];
    dovecot_fill(&dc, "support", folder, 2, 500, raws, lens, uids);
    struct imap_folder f;
    struct imap_session *s = selected(folder, &f);
    struct mb_error err;
    /* FN flags each message, and a message arrives during the first: the
     * STORE's answer announces it, and the same imap_fetch delivers it */
    struct got g = {.flag = "$Ticketed", .sess = s, .append_folder = folder};
    uint32_t next = 0;
    CU_ASSERT_EQUAL(imap_fetch(s, uids[0], 10, collect, &g, &next, &err), MB_OK);
    CU_ASSERT_EQUAL(g.count, 3);
    CU_ASSERT_EQUAL(next, g.uids[g.count - 1] + 1);
    for (unsigned i = 0; i < g.count; i++)
        CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, g.uids[i], "$Ticketed"), 1);
    got_free(&g);
    imap_close(&s);
    for (unsigned i = 0; i < 2; i++)
        free(raws[i]);
}

static void test_fetch_oversized_and_spooled(void)
{
    const char *folder = "Large";
    size_t small_len, big_len, huge_len;
    char *small = dovecot_make_message("small", 1000, &small_len);
    char *big = dovecot_make_message("big", 3 << 20, &big_len);    /* 3 MiB: spooled */
    char *huge = dovecot_make_message("huge", 6 << 20, &huge_len); /* over the 5 MiB limit */
    uint32_t u_small = dovecot_append(&dc, "support", folder, small, small_len, NULL);
    uint32_t u_big = dovecot_append(&dc, "support", folder, big, big_len, NULL);
    uint32_t u_huge = dovecot_append(&dc, "support", folder, huge, huge_len, NULL);
    CU_ASSERT_TRUE_FATAL(u_small && u_big && u_huge);

    char spool[] = "/tmp/mb-test-spool-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(spool));
    struct imap_settings set;
    settings(&set);
    set.max_message_size = (size_t)5 << 20;
    set.spool_dir = spool;
    set.spool_threshold = (size_t)1 << 20;
    struct imap_session *s = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(imap_connect(&set, &s, &err), MB_OK);
    struct imap_folder f;
    CU_ASSERT_EQUAL_FATAL(imap_select(s, folder, &f, &err), MB_OK);
    struct got g = {.spool_dir = spool};
    uint32_t next = 0;
    CU_ASSERT_EQUAL(imap_fetch(s, 1, 10, collect, &g, &next, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(g.count, 3);
    CU_ASSERT_EQUAL(g.uids[0], u_small);
    CU_ASSERT_FALSE(g.spooled[0]);
    CU_ASSERT_TRUE(g.data[0] && g.lens[0] == small_len && !memcmp(g.data[0], small, small_len));
    CU_ASSERT_EQUAL(g.uids[1], u_big);
    CU_ASSERT_TRUE(g.spooled[1]); /* delivered from an unlinked file in the spool dir */
    CU_ASSERT_TRUE(g.data[1] && g.lens[1] == big_len && !memcmp(g.data[1], big, big_len));
    CU_ASSERT_EQUAL(g.uids[2], u_huge);
    CU_ASSERT_PTR_NULL(g.data[2]); /* reported, not fetched */
    CU_ASSERT_EQUAL(g.lens[2], huge_len);
    CU_ASSERT_EQUAL(next, u_huge + 1);
    got_free(&g);
    imap_close(&s);
    CU_ASSERT_EQUAL(rmdir(spool), 0); /* nothing left behind */
    free(small);
    free(big);
    free(huge);
}

static void test_no_folder_selected_is_config(void)
{
    struct imap_session *s = session();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct mb_error err;
    struct got g = {0};
    uint32_t next;
    CU_ASSERT_EQUAL(imap_fetch(s, 1, 10, collect, &g, &next, &err), MB_CONFIG);
    const uint32_t one = 1;
    CU_ASSERT_EQUAL(imap_add_flag(s, &one, 1, "\\Seen", &err), MB_CONFIG);
    CU_ASSERT_EQUAL(imap_idle_start(s, &err), MB_CONFIG);
    struct imap_folder f;
    CU_ASSERT_EQUAL(imap_select(s, "INBOX", &f, &err), MB_OK);
    CU_ASSERT_EQUAL(imap_select(s, "No Such Folder", &f, &err), MB_CONFIG);
    CU_ASSERT_EQUAL(imap_delete(s, &one, 1, &err), MB_CONFIG); /* the failed SELECT left none */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "no folder selected"));
    bool new_mail;
    CU_ASSERT_EQUAL(imap_noop(s, &new_mail, &err), MB_OK); /* the session is fine */
    imap_close(&s);
}

/* --- flags, moves, deletes, folders ------------------------------------- */

static void test_add_flag(void)
{
    const char *folder = "Flags";
    uint32_t uid = dovecot_append(&dc, "support", folder, "Subject: f\r\n\r\nx\r\n", 17, NULL);
    CU_ASSERT_TRUE_FATAL(uid != 0);
    struct imap_folder f;
    struct imap_session *s = selected(folder, &f);
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_add_flag(s, &uid, 1, "$Ticketed", &err), MB_OK);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, uid, "$Ticketed"), 1);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, uid, "\\\\Seen"), 0);
    CU_ASSERT_EQUAL(imap_add_flag(s, &uid, 1, "\\Seen", &err), MB_OK);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, uid, "\\\\Seen"), 1);
    CU_ASSERT_EQUAL(imap_add_flag(s, &uid, 1, "bad flag", &err), MB_CONFIG);
    CU_ASSERT_EQUAL(imap_add_flag(s, &uid, 1, "\\NoSuchSystemFlag", &err), MB_CONFIG);
    CU_ASSERT_EQUAL(imap_add_flag(s, NULL, 0, "\\Answered", &err), MB_OK); /* nothing to do */
    imap_close(&s);
}

/* moved - whether UID left FROM and a message of SIZE bytes is now in TO */
static bool moved(const char *from, uint32_t uid, const char *to, size_t size)
{
    char obj[2048];
    char *src = dovecot_messages(&dc, "support", from);
    bool gone = src != NULL && !dovecot_message_object(src, uid, obj, sizeof(obj));
    free(src);
    return gone && dovecot_has_size(&dc, "support", to, size);
}

/* still_there - whether UID is in FOLDER */
static bool still_there(const char *folder, uint32_t uid)
{
    char obj[2048];
    char *list = dovecot_messages(&dc, "support", folder);
    bool found = dovecot_message_object(list, uid, obj, sizeof(obj));
    free(list);
    return found;
}

static void test_move_and_fallbacks(void)
{
    const char *folder = "MoveFrom";
    size_t lens[7];
    char *raws[7];
    uint32_t uids[7];
    dovecot_fill(&dc, "support", folder, 7, 700, raws, lens, uids);
    /* a bystander marked \Deleted by someone else: UID EXPUNGE must spare it */
    uint32_t bystander =
        dovecot_append(&dc, "support", folder, "Subject: b\r\n\r\nb\r\n", 17, "\\Deleted");
    CU_ASSERT_TRUE_FATAL(uids[6] == uids[0] + 6 && bystander != 0);
    struct imap_session *s = session();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_create_folder(s, "Done", &err), MB_OK);
    struct imap_folder f;
    CU_ASSERT_EQUAL_FATAL(imap_select(s, folder, &f, &err), MB_OK);

    /* UID MOVE of a range and a UID that was never there (ignored) */
    const uint32_t move[] = {uids[0], uids[1], bystander + 1000};
    CU_ASSERT_EQUAL(imap_move(s, move, 3, "Done", &err), MB_OK);
    CU_ASSERT_TRUE(moved(folder, uids[0], "Done", lens[0]));
    CU_ASSERT_TRUE(moved(folder, uids[1], "Done", lens[1]));

    imap_disable_capability(s, "MOVE"); /* UID COPY + STORE + UID EXPUNGE */
    const uint32_t copy[] = {uids[2], uids[4]};
    CU_ASSERT_EQUAL(imap_move(s, copy, 2, "Done", &err), MB_OK);
    CU_ASSERT_TRUE(moved(folder, uids[2], "Done", lens[2]));
    CU_ASSERT_TRUE(moved(folder, uids[4], "Done", lens[4]));
    CU_ASSERT_TRUE(still_there(folder, uids[3])); /* between the two: not part of the set */
    CU_ASSERT_TRUE(still_there(folder, bystander));

    imap_disable_capability(s, "UIDPLUS"); /* UID COPY + STORE + EXPUNGE */
    const uint32_t plain[] = {uids[5], uids[6]};
    CU_ASSERT_EQUAL(imap_move(s, plain, 2, "Done", &err), MB_OK);
    CU_ASSERT_TRUE(moved(folder, uids[5], "Done", lens[5]));
    CU_ASSERT_TRUE(moved(folder, uids[6], "Done", lens[6]));
    CU_ASSERT_TRUE(still_there(folder, uids[3]));
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", "Done"), 6);

    uint32_t last = dovecot_append(&dc, "support", folder, "Subject: l\r\n\r\nl\r\n", 17, NULL);
    CU_ASSERT_EQUAL(imap_select(s, folder, &f, &err), MB_OK);
    CU_ASSERT_EQUAL(imap_move(s, &last, 1, "No Such Target", &err), MB_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "No Such Target"));
    imap_close(&s);
    for (unsigned i = 0; i < 7; i++)
        free(raws[i]);
}

static void test_delete(void)
{
    const char *folder = "Delete";
    uint32_t drop1 = dovecot_append(&dc, "support", folder, "Subject: d\r\n\r\nd\r\n", 17, NULL);
    uint32_t keep = dovecot_append(&dc, "support", folder, "Subject: k\r\n\r\nk\r\n", 17, NULL);
    uint32_t drop2 = dovecot_append(&dc, "support", folder, "Subject: e\r\n\r\ne\r\n", 17, NULL);
    uint32_t drop3 = dovecot_append(&dc, "support", folder, "Subject: f\r\n\r\nf\r\n", 17, NULL);
    CU_ASSERT_TRUE_FATAL(drop1 && keep && drop2 && drop3);
    struct imap_folder f;
    struct imap_session *s = selected(folder, &f);
    struct mb_error err;
    const uint32_t drop[] = {drop1, drop2, drop3};
    CU_ASSERT_EQUAL(imap_delete(s, drop, 3, &err), MB_OK);
    for (unsigned i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, drop[i], "\\\\Deleted"), -1);
    CU_ASSERT_EQUAL(dovecot_has_flag(&dc, "support", folder, keep, "\\\\Deleted"), 0);
    CU_ASSERT_EQUAL(imap_delete(s, drop, 3, &err), MB_OK); /* gone already: fine */
    CU_ASSERT_EQUAL(dovecot_count(&dc, "support", folder), 1);
    imap_close(&s);
}

/* A set of more ranges than one command takes is split over several: every
 * other message of a folder of 5,000 (2,500 ranges) flagged, and only those.
 * The messages are dropped into the Maildir directly: 5,000 appends would
 * take minutes. */
static void test_large_sparse_set(void)
{
    enum { TOTAL = 5000, SPARSE = TOTAL / 2 };
    CU_ASSERT_TRUE_FATAL(SPARSE > 2 * IMAP_SET_MAX_RANGES); /* three commands at least */
    const char *folder = "Sparse";
    uint32_t first = dovecot_append(&dc, "support", folder, "Subject: 0\r\n\r\n0\r\n", 17, NULL);
    CU_ASSERT_TRUE_FATAL(first != 0);
    CU_ASSERT_TRUE_FATAL(dovecot_drop(&dc, "support", folder, "sparse", TOTAL - 1));
    struct imap_folder f;
    struct imap_session *s = selected(folder, &f);
    CU_ASSERT_EQUAL_FATAL(f.exists, TOTAL);
    CU_ASSERT_EQUAL_FATAL(f.uidnext, first + TOTAL); /* numbered FIRST, FIRST + 1, ... */
    uint32_t *odd = xcalloc(SPARSE, sizeof(*odd));
    for (uint32_t i = 0; i < SPARSE; i++)
        odd[i] = first + 2 * i;
    struct mb_error err;
    enum mb_status st = imap_add_flag(s, odd, SPARSE, "\\Seen", &err);
    if (st != MB_OK)
        fprintf(stderr, "sparse: %s\n", err.text);
    CU_ASSERT_EQUAL(st, MB_OK);
    imap_close(&s);
    free(odd);

    char *list = dovecot_messages(&dc, "support", folder);
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    unsigned listed = 0, flagged_odd = 0, flagged_even = 0;
    for (const char *p = list; (p = strstr(p, "{\"uid\": ")) != NULL; p++) {
        uint32_t uid = (uint32_t)strtoul(p + 8, NULL, 10);
        const char *end = strchr(p, '}');
        const char *seen = strstr(p, "\"\\\\Seen\"");
        bool flagged = seen != NULL && end != NULL && seen < end;
        listed++;
        if (flagged && (uid - first) % 2 == 0)
            flagged_odd++;
        else if (flagged)
            flagged_even++;
    }
    free(list);
    CU_ASSERT_EQUAL(listed, TOTAL);
    CU_ASSERT_EQUAL(flagged_odd, SPARSE); /* every one of the set, across the commands */
    CU_ASSERT_EQUAL(flagged_even, 0);     /* and nothing between */
}

static void test_create_folder(void)
{
    struct imap_session *s = session();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct mb_error err;
    struct imap_folder f;
    CU_ASSERT_EQUAL(imap_select(s, "Processed", &f, &err), MB_CONFIG);
    CU_ASSERT_EQUAL(imap_create_folder(s, "Processed", &err), MB_OK);
    CU_ASSERT_EQUAL(imap_create_folder(s, "Processed", &err), MB_OK); /* exists: fine */
    CU_ASSERT_EQUAL(imap_select(s, "Processed", &f, &err), MB_OK);
    CU_ASSERT_EQUAL(f.exists, 0);
    /* non-ASCII names go out in modified UTF-7, which Dovecot checks */
    CU_ASSERT_EQUAL(imap_create_folder(s, "Erledigt & gel\xc3\xb6scht \xf0\x9f\x93\xa8", &err),
                    MB_OK);
    CU_ASSERT_EQUAL(imap_select(s, "Erledigt & gel\xc3\xb6scht \xf0\x9f\x93\xa8", &f, &err), MB_OK);
    /* the server knows it by its RFC 3501 name (Dovecot would take raw UTF-8 too) */
    char *list = dovecot_messages(&dc, "support", "Erledigt &- gel&APY-scht &2D3c6A-");
    CU_ASSERT_PTR_NOT_NULL(list);
    free(list);
    CU_ASSERT_EQUAL(imap_create_folder(s, "bad \xc3(", &err), MB_CONFIG);
    imap_close(&s);
}

/* --- waiting for mail ------------------------------------------------------ */

/* selected_with_one - a session with FOLDER selected, after one message was
 * put there */
static struct imap_session *selected_with_one(const char *folder)
{
    CU_ASSERT_TRUE_FATAL(
        dovecot_append(&dc, "support", folder, "Subject: 1\r\n\r\n1\r\n", 17, NULL));
    struct imap_folder f;
    return selected(folder, &f);
}

/* Mail that came while the session was busy is announced right after
 * "+ idling", often in the same packet: libetpan has read it already and the
 * socket stays quiet, so the session itself must say there is news. */
static void test_idle_reports_mail_announced_with_its_start(void)
{
    const char *folder = "IdleEarly";
    struct imap_session *s = selected_with_one(folder);
    struct mb_error err;
    bool new_mail = false;
    CU_ASSERT_TRUE_FATAL(
        dovecot_append(&dc, "support", folder, "Subject: 2\r\n\r\n2\r\n", 17, NULL) != 0);
    CU_ASSERT_EQUAL_FATAL(imap_idle_start(s, &err), MB_OK);
    struct pollfd p = {.fd = imap_idle_fd(s), .events = POLLIN};
    /* 3 s: a hang guard, not a speed check */
    CU_ASSERT_TRUE(imap_idle_buffered(s) || poll(&p, 1, 3000) == 1);
    CU_ASSERT_EQUAL(imap_idle_done(s, &new_mail, &err), MB_OK);
    CU_ASSERT_TRUE(new_mail);
    CU_ASSERT_FALSE(imap_idle_buffered(s)); /* not idling */
    imap_close(&s);
}

static void test_idle_reports_new_mail(void)
{
    const char *folder = "Idle";
    struct imap_session *s = selected_with_one(folder);
    struct mb_error err;
    bool new_mail = true;
    CU_ASSERT_EQUAL(imap_idle_fd(s), -1);
    CU_ASSERT_EQUAL_FATAL(imap_idle_start(s, &err), MB_OK);
    CU_ASSERT_TRUE(imap_idle_fd(s) >= 0);
    CU_ASSERT_EQUAL(imap_idle_done(s, &new_mail, &err), MB_OK);
    CU_ASSERT_FALSE(new_mail); /* nothing happened */

    CU_ASSERT_EQUAL_FATAL(imap_idle_start(s, &err), MB_OK);
    CU_ASSERT_TRUE(dovecot_append(&dc, "support", folder, "Subject: 2\r\n\r\n2\r\n", 17, NULL) !=
                   0);
    struct pollfd p = {.fd = imap_idle_fd(s), .events = POLLIN};
    CU_ASSERT_EQUAL(poll(&p, 1, 5000), 1); /* 5 s: a hang guard, not a speed check */
    CU_ASSERT_EQUAL(imap_idle_done(s, &new_mail, &err), MB_OK);
    CU_ASSERT_TRUE(new_mail);
    CU_ASSERT_EQUAL(imap_idle_fd(s), -1);

    CU_ASSERT_EQUAL_FATAL(imap_idle_start(s, &err), MB_OK);
    imap_close(&s); /* closing while idle: DONE, LOGOUT */
    CU_ASSERT_PTR_NULL(s);
}

static void test_noop_reports_exists(void)
{
    const char *folder = "Noop";
    CU_ASSERT_TRUE_FATAL(
        dovecot_append(&dc, "support", folder, "Subject: 1\r\n\r\n1\r\n", 17, NULL));
    struct imap_folder f;
    struct imap_session *s = selected(folder, &f);
    struct mb_error err;
    bool new_mail = true;
    CU_ASSERT_EQUAL(imap_noop(s, &new_mail, &err), MB_OK);
    CU_ASSERT_FALSE(new_mail);
    CU_ASSERT_TRUE(dovecot_append(&dc, "support", folder, "Subject: 2\r\n\r\n2\r\n", 17, NULL) !=
                   0);
    CU_ASSERT_EQUAL(imap_noop(s, &new_mail, &err), MB_OK);
    CU_ASSERT_TRUE(new_mail);
    CU_ASSERT_EQUAL(imap_noop(s, &new_mail, &err), MB_OK);
    CU_ASSERT_FALSE(new_mail); /* reported once */
    /* and imap_fetch finds it */
    struct got g = {0};
    uint32_t next;
    CU_ASSERT_EQUAL(imap_fetch(s, f.uidnext, 10, collect, &g, &next, &err), MB_OK);
    CU_ASSERT_EQUAL(g.count, 1);
    got_free(&g);
    imap_close(&s);
}

/* --- the server goes away -------------------------------------------------- */

static void test_server_stopped_is_temp(void)
{
    struct dovecot own;
    CU_ASSERT_TRUE_FATAL(dovecot_start(&own, "imap", NULL));
    struct imap_settings set;
    settings(&set);
    set.port = own.imaps_port;
    set.ca_file = own.ca_file;
    struct imap_session *s = NULL, *idle = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(imap_connect(&set, &s, &err), MB_OK);
    CU_ASSERT_EQUAL(imap_connect(&set, &idle, &err), MB_OK);
    struct imap_folder f;
    if (s && idle) {
        CU_ASSERT_EQUAL(imap_select(s, "INBOX", &f, &err), MB_OK);
        CU_ASSERT_EQUAL(imap_select(idle, "INBOX", &f, &err), MB_OK);
        CU_ASSERT_EQUAL(imap_idle_start(idle, &err), MB_OK);
    }
    dovecot_free(&own); /* the server goes away */
    if (s && idle) {
        bool new_mail;
        CU_ASSERT_EQUAL(imap_noop(s, &new_mail, &err), MB_TEMP);
        CU_ASSERT_EQUAL(imap_noop(s, &new_mail, &err), MB_TEMP); /* dead from now on */
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "reconnect"));
        struct got g = {0};
        uint32_t next;
        CU_ASSERT_EQUAL(imap_fetch(s, 1, 10, collect, &g, &next, &err), MB_TEMP);
        CU_ASSERT_EQUAL(next, 1);
        struct pollfd p = {.fd = imap_idle_fd(idle), .events = POLLIN};
        CU_ASSERT_EQUAL(poll(&p, 1, 5000), 1); /* BYE or EOF wakes the idler */
        CU_ASSERT_EQUAL(imap_idle_done(idle, &new_mail, &err), MB_TEMP);
    }
    imap_close(&s);
    imap_close(&idle);
    connect_fails(&set, MB_TEMP, "connect failed");
}

static int suite_setup(void)
{
    return dovecot_start(&dc, "imap", NULL) ? 0 : 1;
}

static int suite_teardown(void)
{
    dovecot_free(&dc);
    return 0;
}

static const struct unit_test tls_tests[] = {
    /* first: the log it reads holds no other logins yet */
    {"untrusted CA is MB_DOWN", test_untrusted_ca_is_down},
    {"implicit TLS, LOGIN, capabilities", test_implicit_tls_login},
    {"STARTTLS, AUTHENTICATE PLAIN", test_starttls_plain},
    {"STARTTLS to localhost by name", test_starttls_localhost_name},
    {"AUTHENTICATE XOAUTH2", test_xoauth2},
    {"wrong password is MB_DOWN with the server's text", test_wrong_password_is_down},
    {"wrong host name is MB_DOWN", test_wrong_host_name_is_down},
    {"unreadable CA file is MB_CONFIG", test_unreadable_ca_file_is_config},
    {"connection refused is MB_TEMP", test_connection_refused_is_temp},
    {"STARTTLS not offered is MB_DOWN, nothing sent", test_starttls_not_offered_is_down},
    {"data injected after STARTTLS is MB_DOWN", test_starttls_injection_is_down},
    {"a silent server times out: MB_TEMP", test_silent_server_times_out},
    {"clear text when configured", test_clear_text_when_configured},
    {NULL, NULL},
};

static const struct unit_test mailbox_tests[] = {
    {"SELECT: UIDVALIDITY, UIDNEXT, EXISTS; missing folder", test_select},
    {"fetch: order, bytes, batches, N:* edge, no \\Seen", test_fetch_order_bytes_batches},
    {"fetch stops where the callback fails", test_fetch_stops_at_callback_error},
    {"fetch: flags from the callback, late mail", test_fetch_flags_from_callback_and_late_mail},
    {"fetch: oversized reported, large spooled", test_fetch_oversized_and_spooled},
    {"commands without a selected folder are MB_CONFIG", test_no_folder_selected_is_config},
    {"add_flag: keyword, \\Seen, invalid", test_add_flag},
    {"move a set: MOVE, COPY+UID EXPUNGE, COPY+EXPUNGE", test_move_and_fallbacks},
    {"delete a set, twice", test_delete},
    {"a set of 2,500 ranges is split over several commands", test_large_sparse_set},
    {"create_folder, existing, UTF-7 names", test_create_folder},
    {"IDLE reports new mail", test_idle_reports_new_mail},
    {"IDLE reports mail announced with its start", test_idle_reports_mail_announced_with_its_start},
    {"NOOP reports EXISTS", test_noop_reports_exists},
    {"server stopped mid-session is MB_TEMP", test_server_stopped_is_temp},
    {NULL, NULL},
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the daemon does: a dead peer is an error, not a signal */
    static const struct unit_suite suites[] = {
        {"imap_tls", tls_tests, suite_setup, suite_teardown},
        {"imap_mailbox", mailbox_tests, suite_setup, suite_teardown},
        {NULL, NULL, NULL, NULL},
    };
    return unit_run(suites);
}
