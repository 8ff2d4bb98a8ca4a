/* pop3 - a POP3 client session over libetpan (see pop3.h).
 *
 * libetpan's mailpop3 does the connection, TLS (implicit or STLS), the
 * greeting and USER/PASS. The commands after the login are our own, over
 * libetpan's mailstream, for reasons found in its source (1.9.x):
 *  - its multi-line reader keeps the whole message in memory with no limit,
 *    stops each line at a NUL byte, and on a clear-text stream takes the end
 *    of the stream for an empty line and loops for ever (RETR, LIST, UIDL);
 *  - mailpop3_quit reports success whatever the server answers, and
 *    mailpop3_free sends QUIT, which would commit deletions on close.
 * So responses are read here straight from the mailstream's read buffer:
 * capped, byte exact, and with the end of the stream an error. */
#include "transport/pop3.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libetpan/libetpan.h>

#include "lib/xalloc.h"
#include "transport/local.h"
#include "transport/tls_verify.h"

#define POP3_DEFAULT_TIMEOUT_S 30
#define POP3_DEFAULT_MAX_MESSAGE (50 * 1024 * 1024)
/* A status line is at most 512 octets (RFC 2449); leave room for chatty servers. */
#define POP3_LINE_MAX 4096
/* LIST and UIDL answers: about 80 octets a message, so some 200000 messages. */
#define POP3_LISTING_MAX (16 * 1024 * 1024)
/* libetpan formats "USER x\r\n" and "PASS x\r\n" into 513 bytes and cuts the rest. */
#define POP3_CREDENTIAL_MAX (POP3_STRING_SIZE - sizeof("PASS \r\n"))

struct pop3_session {
    mailpop3 *pop3;            /* owned: libetpan's session; pop3_stream is the connection */
    char *host;                /* owned: for SNI and certificate checks */
    char *where;               /* owned: "HOST:PORT", for error texts */
    size_t max_message_size;   /* 0 = no limit */
    struct buf line;           /* owned: the last status line, CRLF removed */
    const char *reply;         /* borrowed from line: the text after +OK or -ERR */
    struct pop3_entry *listed; /* owned: numbers and sizes of the last LIST (uidl NULL) */
    size_t listed_count;
    bool dead; /* the connection failed or ended: no more network I/O */
};

void pop3_settings_default(struct pop3_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->tls = POP3_TLS_STLS;
    s->tls_verify = true;
    s->timeout_ms = POP3_DEFAULT_TIMEOUT_S * 1000L;
    s->max_message_size = POP3_DEFAULT_MAX_MESSAGE;
}

/* lost - the connection failed during WHAT: the session is dead from now on
 * (libetpan does not say whether the peer hung up, the network failed or the
 * time-out passed) */
static enum mb_status lost(struct pop3_session *s, const char *what, struct mb_error *err)
{
    s->dead = true;
    return mb_error_set(err, MB_TEMP, "pop3 %s: %s: connection closed, broken or timed out",
                        s->where, what);
}

/* usable - MB_TEMP, without network I/O, when the connection is gone */
static enum mb_status usable(struct pop3_session *s, struct mb_error *err)
{
    if (s->dead)
        return mb_error_set(err, MB_TEMP,
                            "pop3 %s: the connection was lost earlier or ended by QUIT", s->where);
    return MB_OK;
}

/* drop - close the connection without a word to the server and free
 * libetpan's session. mailpop3_free would send QUIT (committing deletions)
 * while the stream is open, and leaves the greeting's timestamp to QUIT to
 * free; libetpan's message table is never filled, as its LIST is unused. */
static void drop(mailpop3 *p)
{
    if (p->pop3_stream != NULL) {
        mailstream_close(p->pop3_stream);
        p->pop3_stream = NULL;
    }
    free(p->pop3_timestamp);
    p->pop3_timestamp = NULL;
    mailpop3_free(p);
}

/* send_line - write the command CMD (with its CRLF) and flush it */
static enum mb_status send_line(struct pop3_session *s, const char *cmd, const char *what,
                                struct mb_error *err)
{
    mailstream *st = s->pop3->pop3_stream;
    if (mailstream_write(st, cmd, strlen(cmd)) < 0 || mailstream_flush(st) < 0)
        return lost(s, what, err);
    return MB_OK;
}

/* fill - make sure the stream's read buffer holds at least one byte. A
 * clear-text stream reports its end as a read of 0 bytes, TLS as -1: both
 * end the session. */
static enum mb_status fill(struct pop3_session *s, const char *what, struct mb_error *err)
{
    mailstream *st = s->pop3->pop3_stream;
    if (st->read_buffer_len > 0 || mailstream_feed_read_buffer(st) > 0)
        return MB_OK;
    return lost(s, what, err);
}

/* consume - remove the first N bytes of the stream's read buffer, which the
 * caller has already looked at in place (N <= read_buffer_len, so this never
 * waits for the network) */
static void consume(mailstream *st, size_t n)
{
    char sink[4096];
    while (n > 0) {
        size_t k = n < sizeof(sink) ? n : sizeof(sink);
        mailstream_read(st, sink, k);
        n -= k;
    }
}

/* read_status - one response line into s->line: *OK_R tells "+OK" from
 * "-ERR", s->reply is the text after it. Anything else kills the session:
 * we no longer know where the responses are. */
static enum mb_status read_status(struct pop3_session *s, const char *what, bool *ok_r,
                                  struct mb_error *err)
{
    mailstream *st = s->pop3->pop3_stream;
    buf_reset(&s->line);
    for (bool eol = false; !eol;) {
        if (fill(s, what, err) != MB_OK)
            return MB_TEMP;
        const char *lf = memchr(st->read_buffer, '\n', st->read_buffer_len);
        size_t n = lf != NULL ? (size_t)(lf - st->read_buffer) + 1 : st->read_buffer_len;
        if (!buf_append(&s->line, st->read_buffer, n)) {
            s->dead = true;
            return mb_error_set(err, MB_TEMP, "pop3 %s: %s: response line longer than %d bytes",
                                s->where, what, POP3_LINE_MAX);
        }
        consume(st, n);
        eol = lf != NULL;
    }
    char *text = s->line.data;
    size_t len = s->line.len;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    s->line.len = len;
    if (strncmp(text, "+OK", 3) == 0)
        *ok_r = true;
    else if (strncmp(text, "-ERR", 4) == 0)
        *ok_r = false;
    else {
        s->dead = true;
        return mb_error_set(err, MB_TEMP, "pop3 %s: %s: unexpected response '%.80s'", s->where,
                            what, text);
    }
    s->reply = text + (*ok_r ? 3 : 4);
    s->reply += strspn(s->reply, " ");
    return MB_OK;
}

/* command - send CMD and read its status line; -ERR is MB_OK with *OK_R false */
static enum mb_status command(struct pop3_session *s, const char *cmd, const char *what, bool *ok_r,
                              struct mb_error *err)
{
    if (usable(s, err) != MB_OK || send_line(s, cmd, what, err) != MB_OK)
        return MB_TEMP;
    return read_status(s, what, ok_r, err);
}

/* emit - append N bytes to OUT unless the body already overflowed it */
static void emit(struct buf *out, const char *data, size_t n, bool *over)
{
    if (!*over && !buf_append(out, data, n))
        *over = true;
}

/* read_multiline - the body after a +OK, up to the line ".", into OUT:
 * a leading dot is removed from every other line that has one (RFC 1939
 * byte-stuffing) and every other byte is kept as sent. A body larger than
 * OUT's limit is read to its end anyway, so the next response is found,
 * and only *OVER_R is set (OUT then holds a truncated prefix). */
static enum mb_status read_multiline(struct pop3_session *s, const char *what, struct buf *out,
                                     bool *over_r, struct mb_error *err)
{
    enum { AT_START, IN_LINE, AFTER_DOT, AFTER_DOT_CR } state = AT_START;
    mailstream *st = s->pop3->pop3_stream;
    *over_r = false;
    for (bool end = false; !end;) {
        if (fill(s, what, err) != MB_OK)
            return MB_TEMP;
        const char *p = st->read_buffer;
        size_t len = st->read_buffer_len, i = 0;
        while (i < len && !end) {
            switch (state) {
            case AT_START:
                if (p[i] == '.')
                    i++, state = AFTER_DOT;
                else
                    state = IN_LINE;
                break;
            case IN_LINE: {
                const char *lf = memchr(p + i, '\n', len - i);
                size_t n = lf != NULL ? (size_t)(lf - (p + i)) + 1 : len - i;
                emit(out, p + i, n, over_r);
                i += n;
                if (lf != NULL)
                    state = AT_START;
                break;
            }
            case AFTER_DOT: /* ".\r\n" ends the body; any other dot was stuffing */
                if (p[i] == '\r')
                    i++, state = AFTER_DOT_CR;
                else if (p[i] == '\n')
                    i++, end = true;
                else
                    state = IN_LINE;
                break;
            case AFTER_DOT_CR:
                if (p[i] == '\n') {
                    i++, end = true;
                } else {
                    emit(out, "\r", 1, over_r);
                    state = IN_LINE;
                }
                break;
            }
        }
        consume(st, i);
    }
    return MB_OK;
}

/* fetch_listing - CMD (LIST or UIDL) whole into OUT; *OK_R false on -ERR.
 * A listing over POP3_LISTING_MAX is MB_DOWN: it will not shrink by itself. */
static enum mb_status fetch_listing(struct pop3_session *s, const char *cmd, const char *what,
                                    struct buf *out, bool *ok_r, struct mb_error *err)
{
    if (command(s, cmd, what, ok_r, err) != MB_OK)
        return MB_TEMP;
    if (!*ok_r)
        return MB_OK;
    bool over;
    buf_reset(out);
    if (read_multiline(s, what, out, &over, err) != MB_OK)
        return MB_TEMP;
    if (over)
        return mb_error_set(err, MB_DOWN, "pop3 %s: %s answer larger than %d bytes", s->where, what,
                            POP3_LISTING_MAX);
    if (out->data == NULL)
        buf_append(out, "", 0); /* an empty maildrop: parse "" */
    return MB_OK;
}

/* parse_number - the decimal number at *P (moving *P past it) into *V_R;
 * false when there is none or it exceeds MAX */
static bool parse_number(const char **p, unsigned long long max, unsigned long long *v_r)
{
    const char *q = *p;
    unsigned long long v = 0;
    if (*q < '0' || *q > '9')
        return false;
    for (; *q >= '0' && *q <= '9'; q++) {
        if (v > (max - (unsigned long long)(*q - '0')) / 10)
            return false;
        v = v * 10 + (unsigned long long)(*q - '0');
    }
    *p = q;
    *v_r = v;
    return true;
}

/* next_line - the line at *P (NUL-terminated in place, CRLF removed),
 * moving *P to the following one; NULL at the end of the listing */
static char *next_line(char **p)
{
    if (**p == '\0')
        return NULL;
    char *line = *p;
    char *lf = strchr(line, '\n');
    *p = lf != NULL ? lf + 1 : line + strlen(line);
    if (lf != NULL)
        *lf = '\0';
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '\r')
        line[n - 1] = '\0';
    return line;
}

/* entry_cmp - qsort/bsearch order of entries: by message number */
static int entry_cmp(const void *a, const void *b)
{
    unsigned x = ((const struct pop3_entry *)a)->number, y = ((const struct pop3_entry *)b)->number;
    return (x > y) - (x < y);
}

/* bad_listing - the error for a line of a LIST or UIDL answer we cannot read */
static enum mb_status bad_listing(struct pop3_session *s, const char *what, const char *line,
                                  struct mb_error *err)
{
    return mb_error_set(err, MB_TEMP, "pop3 %s: %s: cannot read the line '%.80s'", s->where, what,
                        line);
}

/* parse_list - "NUMBER SIZE" lines into a new array, sorted by number */
static enum mb_status parse_list(struct pop3_session *s, char *text, struct pop3_entry **entries_r,
                                 size_t *count_r, struct mb_error *err)
{
    struct pop3_entry *entries = NULL;
    size_t count = 0;
    for (char *line; (line = next_line(&text)) != NULL;) {
        const char *p = line;
        unsigned long long number, size;
        if (!parse_number(&p, UINT_MAX, &number) || number == 0 || *p++ != ' ' ||
            !parse_number(&p, SIZE_MAX, &size) || (*p != '\0' && *p != ' ')) {
            pop3_entries_free(&entries, count);
            return bad_listing(s, "LIST", line, err);
        }
        entries = xreallocarray(entries, count + 1, sizeof(*entries));
        entries[count++] = (struct pop3_entry){(unsigned)number, NULL, (size_t)size};
    }
    if (count > 0)
        qsort(entries, count, sizeof(*entries), entry_cmp);
    *entries_r = entries;
    *count_r = count;
    return MB_OK;
}

/* parse_uidl - "NUMBER UID" lines onto ENTRIES; every entry must get one.
 * A unique id is 1 to 70 printable characters (RFC 1939); we only insist
 * on printable and non-empty. */
static enum mb_status parse_uidl(struct pop3_session *s, char *text, struct pop3_entry *entries,
                                 size_t count, struct mb_error *err)
{
    for (char *line; (line = next_line(&text)) != NULL;) {
        const char *p = line;
        unsigned long long number;
        if (!parse_number(&p, UINT_MAX, &number) || *p++ != ' ')
            return bad_listing(s, "UIDL", line, err);
        size_t n = 0;
        while (p[n] > ' ' && p[n] < 0x7f)
            n++;
        if (n == 0 || (p[n] != '\0' && p[n] != ' '))
            return bad_listing(s, "UIDL", line, err);
        struct pop3_entry key = {.number = (unsigned)number};
        struct pop3_entry *e =
            count > 0 ? bsearch(&key, entries, count, sizeof(*entries), entry_cmp) : NULL;
        if (e == NULL)
            continue; /* not in LIST: nothing to attach it to */
        free(e->uidl);
        e->uidl = xstrndup(p, n);
    }
    for (size_t i = 0; i < count; i++)
        if (entries[i].uidl == NULL)
            return mb_error_set(err, MB_TEMP, "pop3 %s: UIDL did not name message %u", s->where,
                                entries[i].number);
    return MB_OK;
}

/* remember_sizes - keep the LIST numbers and sizes, so pop3_retrieve can
 * refuse an oversized message before downloading it */
static void remember_sizes(struct pop3_session *s, const struct pop3_entry *entries, size_t count)
{
    free(s->listed);
    s->listed = count > 0 ? xreallocarray(NULL, count, sizeof(*s->listed)) : NULL;
    for (size_t i = 0; i < count; i++)
        s->listed[i] = (struct pop3_entry){entries[i].number, NULL, entries[i].size};
    s->listed_count = count;
}

/* listed_size - the size LIST gave for message NUMBER, or SIZE_MAX */
static size_t listed_size(const struct pop3_session *s, unsigned number)
{
    struct pop3_entry key = {.number = number};
    const struct pop3_entry *e = s->listed_count > 0 ? bsearch(&key, s->listed, s->listed_count,
                                                               sizeof(*s->listed), entry_cmp)
                                                     : NULL;
    return e != NULL ? e->size : SIZE_MAX;
}

enum mb_status pop3_list(struct pop3_session *s, struct pop3_entry **entries_r, size_t *count_r,
                         struct mb_error *err)
{
    *entries_r = NULL;
    *count_r = 0;
    struct buf listing;
    buf_init(&listing, POP3_LISTING_MAX);
    struct pop3_entry *entries = NULL;
    size_t count = 0;
    bool ok;
    enum mb_status st = fetch_listing(s, "LIST\r\n", "LIST", &listing, &ok, err);
    if (st == MB_OK && !ok)
        st = mb_error_set(err, MB_TEMP, "pop3 %s: LIST refused: %s", s->where, s->reply);
    if (st == MB_OK)
        st = parse_list(s, listing.data, &entries, &count, err);
    if (st == MB_OK)
        st = fetch_listing(s, "UIDL\r\n", "UIDL", &listing, &ok, err);
    if (st == MB_OK && !ok)
        st = mb_error_set(err, MB_DOWN,
                          "pop3 %s: UIDL refused (%s): without unique ids messages cannot be "
                          "told apart across sessions",
                          s->where, s->reply);
    if (st == MB_OK)
        st = parse_uidl(s, listing.data, entries, count, err);
    buf_free(&listing);
    if (st != MB_OK) {
        pop3_entries_free(&entries, count);
        return st;
    }
    remember_sizes(s, entries, count);
    *entries_r = entries;
    *count_r = count;
    return MB_OK;
}

void pop3_entries_free(struct pop3_entry **entries, size_t count)
{
    if (*entries == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free((*entries)[i].uidl);
    free(*entries);
    *entries = NULL;
}

/* too_large - the MB_PERM for message NUMBER, in the transport's words */
static enum mb_status too_large(struct pop3_session *s, unsigned number, struct mb_error *err)
{
    struct mb_error e;
    source_too_large(s->max_message_size, &e);
    return mb_error_set(err, MB_PERM, "pop3 %s: message %u: %s", s->where, number, e.text);
}

enum mb_status pop3_retrieve(struct pop3_session *s, unsigned number, struct buf *out,
                             struct mb_error *err)
{
    buf_reset(out);
    out->limit = s->max_message_size;
    if (usable(s, err) != MB_OK)
        return MB_TEMP;
    size_t announced = listed_size(s, number);
    if (s->max_message_size != 0 && announced != SIZE_MAX && announced > s->max_message_size)
        return too_large(s, number, err);
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "RETR %u\r\n", number);
    bool ok, over;
    if (command(s, cmd, "RETR", &ok, err) != MB_OK)
        return MB_TEMP;
    if (!ok)
        return mb_error_set(err, MB_TEMP, "pop3 %s: RETR %u refused: %s", s->where, number,
                            s->reply);
    if (read_multiline(s, "RETR", out, &over, err) != MB_OK) {
        buf_reset(out);
        return MB_TEMP;
    }
    if (over) {
        buf_reset(out);
        return too_large(s, number, err);
    }
    if (out->data == NULL)
        buf_append(out, "", 0); /* an empty message still has data */
    return MB_OK;
}

enum mb_status pop3_delete(struct pop3_session *s, unsigned number, struct mb_error *err)
{
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "DELE %u\r\n", number);
    bool ok;
    if (command(s, cmd, "DELE", &ok, err) != MB_OK)
        return MB_TEMP;
    if (!ok)
        return mb_error_set(err, MB_TEMP, "pop3 %s: DELE %u refused: %s", s->where, number,
                            s->reply);
    return MB_OK;
}

enum mb_status pop3_quit(struct pop3_session *s, struct mb_error *err)
{
    bool ok;
    enum mb_status st = command(s, "QUIT\r\n", "QUIT", &ok, err);
    if (st == MB_OK && !ok)
        st = mb_error_set(err, MB_TEMP, "pop3 %s: QUIT refused, deletions not committed: %s",
                          s->where, s->reply);
    s->dead = true; /* the server hangs up after QUIT either way */
    return st;
}

void pop3_close(struct pop3_session **s)
{
    if (*s == NULL)
        return;
    drop((*s)->pop3);
    free((*s)->host);
    free((*s)->where);
    free((*s)->listed);
    buf_free(&(*s)->line);
    free(*s);
    *s = NULL;
}

/* check_settings - what would make a login impossible or unsafe */
static enum mb_status check_settings(const struct pop3_settings *set, struct mb_error *err)
{
    if (set->host == NULL || set->host[0] == '\0')
        return mb_error_set(err, MB_CONFIG, "pop3: no host");
    if (set->port > 65535)
        return mb_error_set(err, MB_CONFIG, "pop3 %s: port %u out of range", set->host, set->port);
    if (set->user == NULL || set->user[0] == '\0' || set->secret == NULL)
        return mb_error_set(err, MB_CONFIG, "pop3 %s: user and secret are required", set->host);
    /* CR or LF would end the command early and start another one */
    if (set->user[strcspn(set->user, "\r\n")] != '\0' ||
        set->secret[strcspn(set->secret, "\r\n")] != '\0')
        return mb_error_set(err, MB_CONFIG, "pop3 %s: user or secret contains a line break",
                            set->host);
    if (strlen(set->user) > POP3_CREDENTIAL_MAX || strlen(set->secret) > POP3_CREDENTIAL_MAX)
        return mb_error_set(err, MB_CONFIG, "pop3 %s: user or secret longer than %zu bytes",
                            set->host, (size_t)POP3_CREDENTIAL_MAX);
    return MB_OK;
}

/* connect_failed - the error for libetpan's code R from connecting (STEP
 * "connect") or from STLS (STEP "STLS") */
static enum mb_status connect_failed(struct pop3_session *s, int r, const char *step,
                                     struct mb_error *err)
{
    mailpop3 *p = s->pop3;
    switch (r) {
    case MAILPOP3_ERROR_CONNECTION_REFUSED:
        return mb_error_set(err, MB_TEMP,
                            "pop3 %s: cannot connect (refused, unreachable, unknown host or "
                            "timed out)",
                            s->where);
    case MAILPOP3_ERROR_UNAUTHORIZED: /* the greeting was not +OK */
        if (p->pop3_response == NULL)
            return lost(s, "greeting", err);
        return mb_error_set(err, MB_TEMP, "pop3 %s: server refused the connection: %s", s->where,
                            p->pop3_response);
    case MAILPOP3_ERROR_STLS_NOT_SUPPORTED:
        if (p->pop3_response == NULL)
            return lost(s, "STLS", err);
        return mb_error_set(err, MB_DOWN,
                            "pop3 %s: server refused STLS (%s) and TLS is required: use pop3s "
                            "or another port",
                            s->where, p->pop3_response);
    case MAILPOP3_ERROR_SSL:
        /* mailpop3_stls refuses bytes queued behind its +OK: they would be
         * read as if they came over TLS (response injection) */
        if (p->pop3_stream != NULL && p->pop3_stream->read_buffer_len != 0)
            return mb_error_set(err, MB_DOWN,
                                "pop3 %s: server sent data right after accepting STLS "
                                "(response injection?)",
                                s->where);
        return mb_error_set(err, MB_TEMP, "pop3 %s: TLS handshake failed", s->where);
    default:
        return mb_error_set(err, MB_TEMP, "pop3 %s: %s failed (libetpan error %d)", s->where, step,
                            r);
    }
}

/* login_failed - the error for libetpan's code R from USER or PASS. RFC 3206
 * codes tell a busy maildrop or a server fault, worth retrying, from
 * refused credentials. */
static enum mb_status login_failed(struct pop3_session *s, int r, const char *user,
                                   struct mb_error *err)
{
    const char *text = s->pop3->pop3_response;
    if (r == MAILPOP3_ERROR_STREAM || text == NULL)
        return lost(s, "login", err);
    if (strncmp(text, "[IN-USE]", 8) == 0 || strncmp(text, "[SYS/TEMP]", 10) == 0)
        return mb_error_set(err, MB_TEMP, "pop3 %s: login as %s failed for now: %s", s->where, user,
                            text);
    return mb_error_set(err, MB_DOWN, "pop3 %s: login as %s refused: %s", s->where, user, text);
}

/* open_tls - connect with TLS as SET says, and verify the certificate */
static enum mb_status open_tls(struct pop3_session *s, const struct pop3_settings *set,
                               unsigned port, struct mb_error *err)
{
    int r;
    if (set->tls == POP3_TLS_IMPLICIT) {
        r = mailpop3_ssl_connect_with_callback(s->pop3, s->host, (uint16_t)port, tls_sni_callback,
                                               s->host);
        if (r != MAILPOP3_NO_ERROR)
            return connect_failed(s, r, "connect", err);
    } else {
        r = mailpop3_socket_connect(s->pop3, s->host, (uint16_t)port);
        if (r != MAILPOP3_NO_ERROR)
            return connect_failed(s, r, "connect", err);
        if (set->tls == POP3_TLS_NONE)
            return MB_OK;
        r = mailpop3_socket_starttls_with_callback(s->pop3, tls_sni_callback, s->host);
        if (r != MAILPOP3_NO_ERROR)
            return connect_failed(s, r, "STLS", err);
    }
    if (!set->tls_verify)
        return MB_OK;
    struct mb_error e;
    enum mb_status st = tls_verify_stream(s->pop3->pop3_stream, s->host, set->ca_file, &e);
    if (st != MB_OK)
        return mb_error_set(err, st, "pop3 %s: %s", s->where, e.text);
    return MB_OK;
}

enum mb_status pop3_connect(const struct pop3_settings *set, struct pop3_session **sess_r,
                            struct mb_error *err)
{
    *sess_r = NULL;
    if (check_settings(set, err) != MB_OK)
        return MB_CONFIG;
    unsigned port = set->port != 0 ? set->port : set->tls == POP3_TLS_IMPLICIT ? 995 : 110;
    mailpop3 *p = mailpop3_new(0, NULL);
    if (p == NULL)
        return mb_error_set(err, MB_TEMP, "pop3 %s: out of memory", set->host);
    long timeout_s = set->timeout_ms > 0 ? (set->timeout_ms + 999) / 1000 : POP3_DEFAULT_TIMEOUT_S;
    mailpop3_set_timeout(p, (time_t)timeout_s);

    struct pop3_session *s = xcalloc(1, sizeof(*s));
    s->pop3 = p;
    s->host = xstrdup(set->host);
    s->where = xasprintf("%s:%u", set->host, port);
    s->max_message_size = set->max_message_size;
    buf_init(&s->line, POP3_LINE_MAX);

    enum mb_status st = open_tls(s, set, port, err);
    if (st == MB_OK) {
        int r = mailpop3_user(p, set->user);
        if (r == MAILPOP3_NO_ERROR)
            r = mailpop3_pass(p, set->secret);
        if (r != MAILPOP3_NO_ERROR)
            st = login_failed(s, r, set->user, err);
    }
    if (st != MB_OK) {
        pop3_close(&s);
        return st;
    }
    *sess_r = s;
    return MB_OK;
}
