/* dovecot_fixture - start, drive and stop the private Dovecot of
 * tests/integration/dovecot.py for the CUnit tests (see dovecot_fixture.h).
 * The harness's JSON is flat and written by Python's json module, so a few
 * string searches read it. */
#include "dovecot_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "unit.h"

#define START_TRIES 1200 /* x 100 ms: key generation and start-up on a loaded machine */
#define LOG_TRIES 100    /* x 100 ms: Dovecot's log lines trail the events */
#define CLI_MAX_ARGS 10  /* after SUB --state-file STATE */

/* pause_100ms - the polling step of the waits below */
static void pause_100ms(void)
{
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
}

/* json_value - where the value of "KEY" starts in JSON (borrowed), NULL
 * when the key is absent */
static const char *json_value(const char *json, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\"%s\"", key);
    const char *p = strstr(json, pattern);
    if (p == NULL)
        return NULL;
    p += strlen(pattern);
    p += strspn(p, " \t\r\n");
    if (*p++ != ':')
        return NULL;
    return p + strspn(p, " \t\r\n");
}

/* json_string - the string value of KEY into OUT (\x escapes undone); false
 * when absent, not a string or longer than OUT */
static bool json_string(const char *json, const char *key, char *out, size_t size)
{
    const char *v = json_value(json, key);
    if (v == NULL || *v != '"' || size == 0)
        return false;
    size_t n = 0;
    for (v++; *v != '\0' && *v != '"' && n + 1 < size; v++) {
        if (*v == '\\' && v[1] != '\0')
            v++;
        out[n++] = *v;
    }
    out[n] = '\0';
    return *v == '"';
}

/* json_number - the number value of KEY, -1 when absent */
static long json_number(const char *json, const char *key)
{
    const char *v = json_value(json, key);
    return v != NULL && *v >= '0' && *v <= '9' ? strtol(v, NULL, 10) : -1;
}

/* read_stream - F from where it stands to its end (owned, never NULL) */
static char *read_stream(FILE *f)
{
    struct buf b;
    buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    return buf_steal(&b);
}

char *dovecot_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *text = read_stream(f);
    fclose(f);
    return text;
}

/* read_state - fill D from the state file JSON; false (and why on stderr)
 * when something the tests need is missing */
static bool read_state(struct dovecot *d, const char *json)
{
    long ports[4] = {json_number(json, "imap_port"), json_number(json, "imaps_port"),
                     json_number(json, "pop3_port"), json_number(json, "pop3s_port")};
    bool ok = json_string(json, "host", d->host, sizeof(d->host)) &&
              json_string(json, "ca_file", d->ca_file, sizeof(d->ca_file)) &&
              json_string(json, "bad_ca_file", d->bad_ca_file, sizeof(d->bad_ca_file)) &&
              json_string(json, "log_file", d->log_file, sizeof(d->log_file)) &&
              json_string(json, "dir", d->mail_dir, sizeof(d->mail_dir) - 5);
    for (size_t i = 0; i < 4; i++)
        ok = ok && ports[i] > 0;
    if (!ok) {
        fprintf(stderr, "%s lacks host, ports, CA files, log file or directory\n", d->state);
        return false;
    }
    strcat(d->mail_dir, "/mail");
    d->imap_port = (unsigned)ports[0];
    d->imaps_port = (unsigned)ports[1];
    d->pop3_port = (unsigned)ports[2];
    d->pop3s_port = (unsigned)ports[3];
    const char *tokens = json_value(json, "oauth_tokens");
    if (tokens == NULL || !json_string(tokens, "support", d->token, sizeof(d->token)))
        d->token[0] = '\0';
    return true;
}

/* wait_ready - wait for D's state file and read it; false (and why on
 * stderr) when the harness exits first or never writes it */
static bool wait_ready(struct dovecot *d)
{
    for (int i = 0; i < START_TRIES; i++) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "dovecot.py serve exited before it was ready (status %d)\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            d->pid = 0;
            return false;
        }
        pause_100ms();
        char *json = dovecot_read_file(d->state); /* written atomically: present means complete */
        if (json != NULL) {
            bool ok = read_state(d, json);
            free(json);
            return ok;
        }
    }
    fprintf(stderr, "dovecot.py serve did not write %s\n", d->state);
    return false;
}

bool dovecot_start(struct dovecot *d, const char *name, const char *users)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/mb-test-%s-XXXXXX", name);
    if (mkdtemp(d->dir) == NULL) {
        perror("mkdtemp");
        d->dir[0] = '\0';
        return false;
    }
    snprintf(d->state, sizeof(d->state), "%s/state.json", d->dir);
    char *script = xstrdup(unit_path("tests/integration/dovecot.py"));
    const char *argv[8] = {"python3", script, "serve", "--state-file", d->state};
    if (users != NULL) {
        argv[5] = "--users";
        argv[6] = users;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed test takes its server along */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    free(script);
    if (pid < 0) {
        perror("fork");
        dovecot_free(d);
        return false;
    }
    d->pid = pid;
    if (!wait_ready(d)) {
        dovecot_free(d); /* CUnit runs no teardown after a failed suite setup */
        return false;
    }
    return true;
}

void dovecot_stop(struct dovecot *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        d->pid = 0;
    }
}

void dovecot_free(struct dovecot *d)
{
    dovecot_stop(d);
    if (d->dir[0] != '\0') {
        char *msg = xasprintf("%s/message.eml", d->dir);
        unlink(msg);
        free(msg);
        unlink(d->state);
        rmdir(d->dir);
    }
    memset(d, 0, sizeof(*d));
}

/* cli - run `dovecot.py SUB --state-file STATE ARGS...` (ARGS
 * NULL-terminated, at most CLI_MAX_ARGS); its standard output (owned), NULL
 * when it fails. QUIET drops its standard error, for failures the caller
 * expects. */
static char *cli(const struct dovecot *d, bool quiet, const char *sub, ...)
{
    char *script = xstrdup(unit_path("tests/integration/dovecot.py"));
    const char *argv[5 + CLI_MAX_ARGS + 1] = {"python3", script, sub, "--state-file", d->state};
    size_t argc = 5;
    va_list ap;
    va_start(ap, sub);
    for (const char *a; argc < 5 + CLI_MAX_ARGS && (a = va_arg(ap, const char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int out[2];
    if (pipe(out) != 0) {
        free(script);
        return NULL;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        int null = quiet ? open("/dev/null", O_WRONLY) : -1;
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    free(script);
    close(out[1]);
    if (pid < 0) {
        close(out[0]);
        return NULL;
    }
    struct buf b;
    buf_init(&b, 0);
    char chunk[4096];
    ssize_t n;
    while ((n = read(out[0], chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            buf_append(&b, chunk, (size_t)n);
    close(out[0]);
    int status = -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (!quiet)
            fprintf(stderr, "dovecot.py %s failed (status %d)\n", sub, status);
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

uint32_t dovecot_append(const struct dovecot *d, const char *user, const char *folder,
                        const char *raw, size_t len, const char *flags)
{
    char *path = xasprintf("%s/message.eml", d->dir);
    FILE *f = fopen(path, "wb");
    bool written = f != NULL && fwrite(raw, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        written = false;
    char *out = NULL;
    if (written && flags != NULL)
        out = cli(d, false, "append", "--flags", flags, user, folder, path, NULL);
    else if (written)
        out = cli(d, false, "append", user, folder, path, NULL);
    free(path);
    uint32_t uid = out != NULL ? (uint32_t)strtoul(out, NULL, 10) : 0;
    free(out);
    return uid;
}

char *dovecot_messages(const struct dovecot *d, const char *user, const char *folder)
{
    return cli(d, false, "messages", user, folder, NULL);
}

/* next_object - the {...} at or after *P copied into OUT, *P moved past
 * its start; false when there is none */
static bool next_object(const char **p, char *out, size_t size)
{
    const char *start = *p != NULL ? strchr(*p, '{') : NULL;
    const char *end = start != NULL ? strchr(start, '}') : NULL;
    if (end == NULL)
        return false;
    snprintf(out, size, "%.*s", (int)(end - start + 1), start);
    *p = start + 1;
    return true;
}

bool dovecot_message_object(const char *list, uint32_t uid, char *out, size_t size)
{
    for (const char *p = list; next_object(&p, out, size);)
        if (json_number(out, "uid") == (long)uid)
            return true;
    return false;
}

int dovecot_has_flag(const struct dovecot *d, const char *user, const char *folder, uint32_t uid,
                     const char *flag_json)
{
    char *list = dovecot_messages(d, user, folder);
    char obj[2048], quoted[128];
    int r = -1;
    if (dovecot_message_object(list, uid, obj, sizeof(obj))) {
        snprintf(quoted, sizeof(quoted), "\"%s\"", flag_json);
        r = strstr(obj, quoted) != NULL;
    }
    free(list);
    return r;
}

long dovecot_count(const struct dovecot *d, const char *user, const char *folder)
{
    char *list = cli(d, true, "messages", user, folder, NULL);
    if (list == NULL)
        return -1;
    long n = 0;
    for (const char *p = list; (p = strstr(p, "\"uid\"")) != NULL; p++)
        n++;
    free(list);
    return n;
}

bool dovecot_has_size(const struct dovecot *d, const char *user, const char *folder, size_t size)
{
    char *list = dovecot_messages(d, user, folder);
    char obj[2048];
    bool found = false;
    for (const char *p = list; !found && next_object(&p, obj, sizeof(obj));)
        found = json_number(obj, "size") == (long)size;
    free(list);
    return found;
}

uint32_t dovecot_reset_uidvalidity(const struct dovecot *d, const char *user, const char *folder)
{
    char *out = cli(d, false, "reset-uidvalidity", user, folder, NULL);
    uint32_t validity = out != NULL ? (uint32_t)strtoul(out, NULL, 10) : 0;
    free(out);
    return validity;
}

long dovecot_log_size(const struct dovecot *d)
{
    struct stat st;
    return stat(d->log_file, &st) == 0 ? (long)st.st_size : -1;
}

char *dovecot_log_since(const struct dovecot *d, long offset, const char *wait_for, int count)
{
    char *text = NULL;
    for (int tries = 0; tries < LOG_TRIES; tries++) {
        free(text);
        FILE *f = fopen(d->log_file, "r");
        text = f != NULL && fseek(f, offset, SEEK_SET) == 0 ? read_stream(f) : xstrdup("");
        if (f != NULL)
            fclose(f);
        int found = 0;
        for (const char *p = text; (p = strstr(p, wait_for)) != NULL; p++)
            found++;
        if (found >= count)
            break;
        pause_100ms();
    }
    return text;
}

char *dovecot_make_message(const char *subject, size_t size, size_t *len_r)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b,
               "From: Customer <customer@example.com>\r\nTo: support@example.com\r\n"
               "Subject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\n",
               subject, subject);
    for (unsigned line = 0; b.len < size; line++)
        buf_printf(&b, "line %08u of %s: the quick brown fox jumps over the lazy dog\r\n", line,
                   subject);
    *len_r = b.len;
    return buf_steal(&b);
}

bool dovecot_drop(const struct dovecot *d, const char *user, const char *folder,
                  const char *subject, unsigned count)
{
    char *box = strcmp(folder, "INBOX") == 0
                    ? xasprintf("%s/%s/Maildir", d->mail_dir, user)
                    : xasprintf("%s/%s/Maildir/.%s", d->mail_dir, user, folder);
    struct stat owner;
    bool ok = stat(box, &owner) == 0;
    if (!ok)
        perror(box);
    for (unsigned i = 0; ok && i < count; i++) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now); /* with I and our pid: a name never used before */
        char *tmp = xasprintf("%s/tmp/%lld.M%09ldP%dQ%u.mbtest", box, (long long)now.tv_sec,
                              now.tv_nsec, (int)getpid(), i);
        char *new = xasprintf("%s/new/%s", box, strrchr(tmp, '/') + 1);
        FILE *f = fopen(tmp, "wb");
        ok = f != NULL && fprintf(f, "Subject: %s %u\r\n\r\n%s %u\r\n", subject, i, subject, i) > 0;
        if (f != NULL && fclose(f) != 0)
            ok = false;
        /* the server's mail processes own the mail when we run as root */
        if (ok && geteuid() == 0)
            ok = chown(tmp, owner.st_uid, owner.st_gid) == 0;
        ok = ok && rename(tmp, new) == 0;
        if (!ok)
            perror(tmp);
        free(tmp);
        free(new);
    }
    free(box);
    return ok;
}

void dovecot_fill(const struct dovecot *d, const char *user, const char *folder, unsigned count,
                  size_t size, char **raws, size_t *lens, uint32_t *uids)
{
    for (unsigned i = 0; i < count; i++) {
        char subject[64];
        snprintf(subject, sizeof(subject), "%s-%u", folder, i);
        raws[i] = dovecot_make_message(subject, size + i * 37, &lens[i]);
        uids[i] = dovecot_append(d, user, folder, raws[i], lens[i], NULL);
    }
}
