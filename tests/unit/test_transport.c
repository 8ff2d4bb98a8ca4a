/* test_transport - the local mail sources: what source_open_path detects,
 * the order and ids of Maildir and directory messages, mbox splitting and
 * unquoting byte for byte, the size limit (the oversized message fails
 * alone and the next one still arrives), standard input, and progress. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "transport/source.h"
#include "unit.h"

/* tmp_make - a new empty directory, owned by the caller */
static char *tmp_make(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = xasprintf("%s/mb-transport.XXXXXX", base != NULL ? base : "/tmp");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    return dir;
}

/* remove_entry - nftw callback: remove one file or (emptied) directory */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* tmp_remove - delete DIR and everything under it */
static void tmp_remove(char **dir)
{
    CU_ASSERT_EQUAL(nftw(*dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(*dir);
    *dir = NULL;
}

/* put - write LEN bytes of DATA to DIR/REL (LEN (size_t)-1: strlen) */
static void put(const char *dir, const char *rel, const char *data, size_t len)
{
    char *path = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (len == (size_t)-1)
        len = strlen(data);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    CU_ASSERT_EQUAL(fclose(f), 0);
    free(path);
}

/* sub - make the directory DIR/REL */
static void sub(const char *dir, const char *rel)
{
    char *path = xasprintf("%s/%s", dir, rel);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0700), 0);
    free(path);
}

/* absolute - DIR with symlinks resolved (what the sources put in names) */
static char *absolute(const char *dir)
{
    char abs[PATH_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(dir, abs));
    return xstrdup(abs);
}

/* open_with_limit - source_open_path with max_message_size LIMIT (0: default) */
static struct source *open_with_limit(const char *path, size_t limit)
{
    struct source_settings s;
    source_settings_default(&s);
    if (limit != 0)
        s.max_message_size = limit;
    struct source *src = NULL;
    struct mb_error err;
    enum mb_status st = source_open_path(path, &s, &src, &err);
    if (st != MB_OK)
        fprintf(stderr, "open %s: %s\n", path, err.text);
    CU_ASSERT_EQUAL_FATAL(st, MB_OK);
    return src;
}

/* expect_msg - the next message is ID (when not NULL) with exactly DATA */
static void expect_msg(struct source *src, const char *id, const char *data)
{
    struct source_msg msg;
    bool got = false;
    struct mb_error err;
    enum mb_status st = source_next(src, &msg, &got, &err);
    if (st != MB_OK)
        fprintf(stderr, "next: %s\n", err.text);
    CU_ASSERT_EQUAL_FATAL(st, MB_OK);
    CU_ASSERT_TRUE_FATAL(got);
    if (id != NULL)
        CU_ASSERT_STRING_EQUAL(msg.id, id);
    CU_ASSERT_EQUAL(msg.len, strlen(data));
    CU_ASSERT_TRUE(msg.len == strlen(data) && memcmp(msg.data, data, msg.len) == 0);
}

/* expect_end - the source has no more messages */
static void expect_end(struct source *src)
{
    struct source_msg msg;
    bool got = true;
    struct mb_error err;
    CU_ASSERT_EQUAL(source_next(src, &msg, &got, &err), MB_OK);
    CU_ASSERT_FALSE(got);
}

/* expect_too_large - the next message is ID and refused for the size LIMIT */
static void expect_too_large(struct source *src, const char *id, size_t limit)
{
    struct source_msg msg;
    bool got = true;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(source_next(src, &msg, &got, &err), MB_PERM);
    CU_ASSERT_FALSE(got);
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg.id);
    CU_ASSERT_STRING_EQUAL(msg.id, id);
    char *text = xasprintf("message larger than %zu bytes", limit);
    CU_ASSERT_STRING_EQUAL(err.text, text);
    free(text);
}

/* expect_progress - source_progress reports DONE of TOTAL */
static void expect_progress(struct source *src, unsigned long long done, unsigned long long total)
{
    unsigned long long d = 99, t = 99;
    source_progress(src, &d, &t);
    CU_ASSERT_EQUAL(d, done);
    CU_ASSERT_EQUAL(t, total);
}

/* expect_kind - PATH opens as kind KIND named "KIND:<absolute path>" */
static void expect_kind(const char *path, const char *kind)
{
    struct source *src = open_with_limit(path, 0);
    char *abs = absolute(path);
    char *name = xasprintf("%s:%s", kind, abs);
    CU_ASSERT_STRING_EQUAL(src->ops->name, kind);
    CU_ASSERT_STRING_EQUAL(src->name, name);
    free(name);
    free(abs);
    source_close(&src);
    CU_ASSERT_PTR_NULL(src);
}

static void test_detects_each_kind(void)
{
    char *dir = tmp_make();
    char *p;
    sub(dir, "md");
    sub(dir, "md/cur");
    sub(dir, "md/new");
    expect_kind(p = xasprintf("%s/md", dir), "maildir");
    free(p);
    sub(dir, "plain");
    sub(dir, "plain/cur"); /* cur/ alone is not a Maildir */
    expect_kind(p = xasprintf("%s/plain", dir), "dir");
    free(p);
    put(dir, "a.mbox", "From someone Thu Jan  1 00:00:00 2026\nSubject: x\n\nhi\n", (size_t)-1);
    expect_kind(p = xasprintf("%s/a.mbox", dir), "mbox");
    free(p);
    put(dir, "empty", "", 0); /* one empty message, not an empty mbox */
    expect_kind(p = xasprintf("%s/empty", dir), "file");
    free(p);
    put(dir, "one.eml", "Subject: x\n\nFrom here on, a body\n", (size_t)-1);
    expect_kind(p = xasprintf("%s/one.eml", dir), "file");
    free(p);
    put(dir, "short", "From", (size_t)-1); /* too short to be a From_ line */
    expect_kind(p = xasprintf("%s/short", dir), "file");
    free(p);
    tmp_remove(&dir);
}

static void test_missing_path_is_config_error(void)
{
    struct source_settings s;
    source_settings_default(&s);
    struct source *src = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(source_open_path("/nonexistent/mail.mbox", &s, &src, &err), MB_CONFIG);
    CU_ASSERT_PTR_NULL(src);
    CU_ASSERT_STRING_EQUAL(err.text, "/nonexistent/mail.mbox: No such file or directory");
    CU_ASSERT_EQUAL(source_open_path("/dev/null", &s, &src, &err), MB_CONFIG);
    CU_ASSERT_PTR_NULL(src);
    CU_ASSERT_STRING_EQUAL(err.text, "/dev/null: neither a directory nor a regular file");
}

static void test_maildir_order_and_ids(void)
{
    char *dir = tmp_make();
    sub(dir, "cur");
    sub(dir, "new");
    sub(dir, "tmp");
    put(dir, "new/1700000002.M2.host", "new two\n", (size_t)-1);
    put(dir, "new/1700000001.M1.host", "new one\n", (size_t)-1);
    put(dir, "new/.hidden", "never\n", (size_t)-1);
    put(dir, "cur/1600000002.M4.host:2,S", "cur two\n", (size_t)-1);
    put(dir, "cur/1600000001.M3.host:2,RS", "cur one\n", (size_t)-1);
    put(dir, "tmp/1700000003.M5.host", "being delivered\n", (size_t)-1);
    struct source *src = open_with_limit(dir, 0);
    expect_progress(src, 0, 4);
    expect_msg(src, "new/1700000001.M1.host", "new one\n");
    expect_msg(src, "new/1700000002.M2.host", "new two\n");
    expect_progress(src, 2, 4);
    expect_msg(src, "cur/1600000001.M3.host:2,RS", "cur one\n");
    expect_msg(src, "cur/1600000002.M4.host:2,S", "cur two\n");
    expect_end(src);
    expect_progress(src, 4, 4);
    source_close(&src);
    tmp_remove(&dir);
}

/* A mail client marking a message seen moves new/X to cur/X:2,S between
 * our listing and our read: the message must still arrive, under its new
 * name. */
static void test_maildir_follows_rename(void)
{
    char *dir = tmp_make();
    sub(dir, "cur");
    sub(dir, "new");
    put(dir, "new/1700000001.M1.host", "moved\n", (size_t)-1);
    put(dir, "new/1700000002.M2.host", "stays\n", (size_t)-1);
    struct source *src = open_with_limit(dir, 0);
    char *from = xasprintf("%s/new/1700000001.M1.host", dir);
    char *to = xasprintf("%s/cur/1700000001.M1.host:2,S", dir);
    CU_ASSERT_EQUAL_FATAL(rename(from, to), 0);
    expect_msg(src, "cur/1700000001.M1.host:2,S", "moved\n");
    expect_msg(src, "new/1700000002.M2.host", "stays\n");
    expect_end(src);
    free(from);
    free(to);
    source_close(&src);
    tmp_remove(&dir);
}

/* An oversized or vanished message fails alone; the next still arrives. */
static void test_maildir_message_errors_skip_one(void)
{
    char *dir = tmp_make();
    sub(dir, "cur");
    sub(dir, "new");
    put(dir, "new/1", "0123456789\n", (size_t)-1); /* 11 bytes */
    put(dir, "new/2", "gone\n", (size_t)-1);
    put(dir, "new/3", "0123456789", (size_t)-1); /* exactly the limit */
    struct source *src = open_with_limit(dir, 10);
    char *gone = xasprintf("%s/new/2", dir);
    CU_ASSERT_EQUAL_FATAL(unlink(gone), 0);
    expect_too_large(src, "new/1", 10);
    struct source_msg msg;
    bool got = true;
    struct mb_error err;
    CU_ASSERT_EQUAL(source_next(src, &msg, &got, &err), MB_TEMP);
    CU_ASSERT_FALSE(got);
    CU_ASSERT_STRING_EQUAL(msg.id, "new/2");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "No such file or directory"));
    expect_msg(src, "new/3", "0123456789");
    expect_end(src);
    expect_progress(src, 3, 3);
    free(gone);
    source_close(&src);
    tmp_remove(&dir);
}

static void test_dir_skips_dot_files_and_subdirs(void)
{
    char *dir = tmp_make();
    put(dir, "b.eml", "bee\n", (size_t)-1);
    put(dir, "a.eml", "ay\n", (size_t)-1);
    put(dir, ".c.eml", "hidden\n", (size_t)-1);
    sub(dir, "d");
    put(dir, "d/e.eml", "nested\n", (size_t)-1);
    char *abs = absolute(dir);
    char *a = xasprintf("%s/a.eml", abs), *b = xasprintf("%s/b.eml", abs);
    struct source *src = open_with_limit(dir, 0);
    CU_ASSERT_STRING_EQUAL(src->ops->name, "dir");
    expect_progress(src, 0, 2);
    expect_msg(src, a, "ay\n");
    expect_msg(src, b, "bee\n");
    expect_end(src);
    expect_progress(src, 2, 2);
    source_close(&src);
    free(a);
    free(b);
    free(abs);
    tmp_remove(&dir);
}

static void test_single_file(void)
{
    char *dir = tmp_make();
    const char *mail = "Subject: one\r\n\r\nbody\r\n";
    put(dir, "one.eml", mail, (size_t)-1);
    char *path = xasprintf("%s/one.eml", dir);
    char *abs = absolute(path);
    struct source *src = open_with_limit(path, 0);
    expect_progress(src, 0, 1);
    expect_msg(src, abs, mail);
    expect_end(src);
    expect_progress(src, 1, 1);
    source_close(&src);
    free(abs);
    free(path);
    tmp_remove(&dir);
}

/* A file the user names gets a result even when it is empty: it is one
 * message of 0 bytes (which the parser then refuses by name), never an
 * mbox with nothing in it, which would print nothing at all. */
static void test_empty_file_is_one_empty_message(void)
{
    char *dir = tmp_make();
    put(dir, "email.01", "", 0);
    char *path = xasprintf("%s/email.01", dir);
    char *abs = absolute(path);
    struct source *src = open_with_limit(path, 0);
    CU_ASSERT_STRING_EQUAL(src->ops->name, "file");
    expect_progress(src, 0, 1);
    expect_msg(src, abs, "");
    expect_end(src);
    expect_progress(src, 1, 1);
    source_close(&src);
    free(abs);
    free(path);
    tmp_remove(&dir);
}

/* open_mbox - write TEXT (LEN bytes) as DIR/m.mbox and open it; *ABS_R is
 * its absolute path (owned by the caller) */
static struct source *open_mbox(const char *dir, const char *text, size_t len, size_t limit,
                                char **abs_r)
{
    put(dir, "m.mbox", text, len);
    char *path = xasprintf("%s/m.mbox", dir);
    *abs_r = absolute(path);
    struct source *src = open_with_limit(path, limit);
    CU_ASSERT_STRING_EQUAL(src->ops->name, "mbox");
    free(path);
    return src;
}

/* id_at - "<abs>@<offset>" in a static buffer (tests are single-threaded) */
static const char *id_at(const char *abs, size_t offset)
{
    static char id[PATH_MAX + 32];
    snprintf(id, sizeof(id), "%s@%zu", abs, offset);
    return id;
}

static void test_mbox_splits_and_unquotes(void)
{
    static const char m1[] = "From alice@example.com Mon Jan  5 10:00:00 2026\n"
                             "Subject: one\n"
                             "\n"
                             "I said: From here on we ship.\n"
                             "From the top, not after an empty line: no split\n"
                             ">From quoted\n"
                             ">>From doubly quoted\n"
                             "> From is not mboxrd quoting\n"
                             ">Fromage\n"
                             "\n";
    static const char m2[] = "From bob@example.com Mon Jan  5 11:00:00 2026\n"
                             "Subject: two\n"
                             "\n"
                             "\n"
                             ">From starts a line\n"
                             "\n";
    static const char m3[] = "From carol@example.com Mon Jan  5 12:00:00 2026\n"
                             "Subject: three\n"
                             "\n"
                             "last\n"
                             "\n";
    char text[sizeof(m1) + sizeof(m2) + sizeof(m3)];
    snprintf(text, sizeof(text), "%s%s%s", m1, m2, m3);
    char *dir = tmp_make(), *abs;
    struct source *src = open_mbox(dir, text, strlen(text), 0, &abs);
    expect_progress(src, 0, strlen(text));
    expect_msg(src, id_at(abs, 0),
               "Subject: one\n"
               "\n"
               "I said: From here on we ship.\n"
               "From the top, not after an empty line: no split\n"
               "From quoted\n"
               ">From doubly quoted\n"
               "> From is not mboxrd quoting\n"
               ">Fromage\n");
    expect_progress(src, strlen(m1), strlen(text));
    expect_msg(src, id_at(abs, strlen(m1)), "Subject: two\n\n\nFrom starts a line\n");
    expect_msg(src, id_at(abs, strlen(m1) + strlen(m2)), "Subject: three\n\nlast\n");
    expect_end(src);
    expect_progress(src, strlen(text), strlen(text));
    source_close(&src);
    free(abs);
    tmp_remove(&dir);
}

static void test_mbox_crlf_kept(void)
{
    static const char text[] = "From a Mon Jan  5 10:00:00 2026\r\n"
                               "Subject: one\r\n\r\n>From body\r\n\r\n"
                               "From b Mon Jan  5 11:00:00 2026\r\n"
                               "Subject: two\r\n\r\nbody\r\n";
    char *dir = tmp_make(), *abs;
    struct source *src = open_mbox(dir, text, strlen(text), 0, &abs);
    expect_msg(src, id_at(abs, 0), "Subject: one\r\n\r\nFrom body\r\n");
    expect_msg(src, id_at(abs, strlen(text) - strlen(strstr(text, "From b Mon"))),
               "Subject: two\r\n\r\nbody\r\n");
    expect_end(src);
    source_close(&src);
    free(abs);
    tmp_remove(&dir);
}

static void test_mbox_last_message_without_newline(void)
{
    static const char text[] = "From a Mon Jan  5 10:00:00 2026\n"
                               "Subject: one\n\nfirst\n\n"
                               "From b Mon Jan  5 11:00:00 2026\n"
                               "Subject: two\n\nno newline at the end";
    char *dir = tmp_make(), *abs;
    struct source *src = open_mbox(dir, text, strlen(text), 0, &abs);
    expect_msg(src, NULL, "Subject: one\n\nfirst\n");
    expect_msg(src, NULL, "Subject: two\n\nno newline at the end");
    expect_end(src);
    expect_progress(src, strlen(text), strlen(text));
    source_close(&src);
    free(abs);
    tmp_remove(&dir);
}

/* The From_ line may hold anything, even be longer than the read buffer,
 * and so may a body line: neither may split or corrupt a message. */
static void test_mbox_odd_and_long_lines(void)
{
    const size_t long_len = 300 * 1024;
    struct buf text, body;
    buf_init(&text, 0);
    buf_init(&body, 0);
    buf_append_str(&text, "From \n"); /* no sender, no date */
    buf_append_str(&text, "Subject: odd\n\n");
    buf_append_str(&body, "Subject: odd\n\n");
    for (size_t i = 0; i < long_len; i++) {
        char c = "aFrom "[i % 6]; /* "From " often, never at a line start */
        buf_append(&text, &c, 1);
        buf_append(&body, &c, 1);
    }
    buf_append_str(&text, "\nend\n\n");
    buf_append_str(&body, "\nend\n");
    size_t second = text.len;
    buf_append_str(&text, "From ");
    for (size_t i = 0; i < long_len; i++)
        buf_append(&text, "x", 1);
    buf_append_str(&text, "\nSubject: after\n\nok\n");
    char *dir = tmp_make(), *abs;
    struct source *src = open_mbox(dir, text.data, text.len, 0, &abs);
    expect_msg(src, id_at(abs, 0), body.data);
    expect_msg(src, id_at(abs, second), "Subject: after\n\nok\n");
    expect_end(src);
    source_close(&src);
    free(abs);
    buf_free(&text);
    buf_free(&body);
    tmp_remove(&dir);
}

/* An oversized message in the middle is reported by its id, and the next
 * message still arrives; the empty line before a From_ line does not count
 * against the limit. */
static void test_mbox_over_limit_in_the_middle(void)
{
    struct buf text;
    buf_init(&text, 0);
    buf_append_str(&text, "From a\nSubject: 1\n\n0123456\n\n"); /* 20 bytes: the limit */
    size_t big = text.len;
    buf_append_str(&text, "From b\nSubject: 2\n\n");
    for (int i = 0; i < 5000; i++)
        buf_append_str(&text, "a line of the large attachment\n");
    buf_append_str(&text, "\n");
    buf_append_str(&text, "From c\nSubject: 3\n\nsmall\n");
    char *dir = tmp_make(), *abs;
    struct source *src = open_mbox(dir, text.data, text.len, 20, &abs);
    expect_msg(src, id_at(abs, 0), "Subject: 1\n\n0123456\n");
    char *big_id = xstrdup(id_at(abs, big));
    expect_too_large(src, big_id, 20);
    expect_msg(src, NULL, "Subject: 3\n\nsmall\n");
    expect_end(src);
    free(big_id);
    source_close(&src);
    free(abs);
    buf_free(&text);
    tmp_remove(&dir);
}

/* open_pipe - a source over a pipe holding LEN bytes of DATA, then EOF;
 * *FD_R is the read end, which the caller closes */
static struct source *open_pipe(const char *data, size_t len, size_t limit, int *fd_r)
{
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    CU_ASSERT_EQUAL_FATAL(write(fds[1], data, len), (ssize_t)len);
    close(fds[1]);
    struct source_settings s;
    source_settings_default(&s);
    s.max_message_size = limit;
    struct source *src = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(source_open_fd(fds[0], &s, &src, &err), MB_OK);
    *fd_r = fds[0];
    return src;
}

static void test_fd_reads_one_message(void)
{
    const char *mail = "Subject: piped\n\nFrom the MTA\n";
    int fd;
    struct source *src = open_pipe(mail, strlen(mail), strlen(mail), &fd);
    CU_ASSERT_STRING_EQUAL(src->name, "stdin");
    expect_progress(src, 0, 1);
    expect_msg(src, "stdin", mail);
    expect_end(src);
    expect_progress(src, 1, 1);
    source_close(&src);
    CU_ASSERT_EQUAL(close(fd), 0); /* still ours: the source borrowed it */
}

/* A message bigger than the pipe's buffer arrives whole, read in chunks
 * while a child process writes it. */
static void test_fd_reads_large_message(void)
{
    const size_t len = 1024 * 1024 + 7;
    char *mail = xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        mail[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
    mail[len] = '\0';
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        _exit(write(fds[1], mail, len) == (ssize_t)len ? 0 : 1);
    }
    close(fds[1]);
    struct source_settings s;
    source_settings_default(&s);
    struct source *src = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(source_open_fd(fds[0], &s, &src, &err), MB_OK);
    expect_msg(src, "stdin", mail);
    expect_end(src);
    int status = -1;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    source_close(&src);
    close(fds[0]);
    free(mail);
}

/* An MTA that pipes nothing delivered no message (`deliver` reports it). */
static void test_fd_empty_is_no_message(void)
{
    int fd;
    struct source *src = open_pipe("", 0, 100, &fd);
    expect_end(src);
    expect_progress(src, 1, 1);
    source_close(&src);
    close(fd);
}

static void test_fd_over_limit(void)
{
    const char *mail = "Subject: piped\n\none byte too many\n";
    int fd;
    struct source *src = open_pipe(mail, strlen(mail), strlen(mail) - 1, &fd);
    expect_too_large(src, "stdin", strlen(mail) - 1);
    expect_end(src);
    source_close(&src);
    close(fd);
}

static const struct unit_test detect_tests[] = {
    {"detects each kind", test_detects_each_kind},
    {"missing or odd path is a config error", test_missing_path_is_config_error},
    {NULL, NULL},
};

static const struct unit_test files_tests[] = {
    {"maildir order and ids", test_maildir_order_and_ids},
    {"maildir follows a rename", test_maildir_follows_rename},
    {"maildir message errors skip one", test_maildir_message_errors_skip_one},
    {"dir skips dot files and subdirs", test_dir_skips_dot_files_and_subdirs},
    {"single file", test_single_file},
    {"empty file is one empty message", test_empty_file_is_one_empty_message},
    {"fd reads one message", test_fd_reads_one_message},
    {"fd reads a large message", test_fd_reads_large_message},
    {"fd empty is no message", test_fd_empty_is_no_message},
    {"fd over limit", test_fd_over_limit},
    {NULL, NULL},
};

static const struct unit_test mbox_tests[] = {
    {"splits and unquotes", test_mbox_splits_and_unquotes},
    {"crlf kept", test_mbox_crlf_kept},
    {"last message without newline", test_mbox_last_message_without_newline},
    {"odd and long lines", test_mbox_odd_and_long_lines},
    {"over limit in the middle", test_mbox_over_limit_in_the_middle},
    {NULL, NULL},
};

static const struct unit_suite suites[] = {
    {"detect", detect_tests, NULL, NULL},
    {"files", files_tests, NULL, NULL},
    {"mbox", mbox_tests, NULL, NULL},
    {NULL, NULL, NULL, NULL},
};

int main(void)
{
    return unit_run(suites);
}
