/* imap - the IMAP client session over libetpan (see imap.h): TCP connect
 * with a timeout, implicit TLS or STARTTLS, certificate verification before
 * any credential leaves, LOGIN / AUTHENTICATE PLAIN / XOAUTH2, capabilities,
 * SELECT, flags, MOVE and its fallback on sets of UIDs, CREATE, IDLE and
 * NOOP. Fetching lives in imap_fetch.c. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "transport/imap_int.h"
#include "transport/tls_verify.h"

/* The server's text is quoted in errors up to this length. */
#define IMAP_TEXT_MAX 200

/* imap_settings_default - the documented defaults (imap.h) */
void imap_settings_default(struct imap_settings *s)
{
    *s = (struct imap_settings){
        .host = NULL,
        .port = 0,
        .tls = IMAP_TLS_STARTTLS,
        .tls_verify = true,
        .ca_file = NULL,
        .user = NULL,
        .secret = NULL,
        .auth = IMAP_AUTH_LOGIN,
        .timeout_ms = 60000,
        .max_message_size = (size_t)50 << 20,
        .spool_dir = NULL,
        .spool_threshold = (size_t)8 << 20,
    };
}

/* --- errors --------------------------------------------------------------- */

/* imap_refused - whether R means the server answered NO or BAD (the
 * connection is fine) */
static bool imap_refused(int r)
{
    switch (r) {
    case MAILIMAP_ERROR_STREAM:
    case MAILIMAP_ERROR_PARSE:
    case MAILIMAP_ERROR_FATAL:
    case MAILIMAP_ERROR_CONNECTION_REFUSED:
    case MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION:
    case MAILIMAP_ERROR_SSL:
    case MAILIMAP_ERROR_MEMORY:
    case MAILIMAP_ERROR_BAD_STATE:
        return false;
    default:
        return true;
    }
}

/* imap_server_text - the server's text of the last tagged response, with its
 * response code ("[AUTHENTICATIONFAILED] Authentication failed."), into OUT */
static void imap_server_text(struct imap_session *s, char *out, size_t size)
{
    const char *text = s->imap->imap_response ? s->imap->imap_response : "";
    const struct mailimap_response_info *info = s->imap->imap_response_info;
    if (info != NULL && info->rsp_atom != NULL)
        snprintf(out, size, "[%s%s%s] %.*s", info->rsp_atom, info->rsp_value ? " " : "",
                 info->rsp_value ? info->rsp_value : "", IMAP_TEXT_MAX, text);
    else if (*text != '\0')
        snprintf(out, size, "%.*s", IMAP_TEXT_MAX, text);
    else
        snprintf(out, size, "(no text)");
}

/* imap_failed - classify a libetpan failure; kill the session when the
 * connection is gone */
enum mb_status imap_failed(struct imap_session *s, int r, const char *what, struct mb_error *err)
{
    char text[IMAP_TEXT_MAX + 64];
    switch (r) {
    case MAILIMAP_ERROR_FATAL:
        s->dead = true;
        imap_server_text(s, text, sizeof(text));
        return mb_error_set(err, MB_TEMP, "IMAP %s: the server closed the connection during %s: %s",
                            s->where, what, text);
    case MAILIMAP_ERROR_PARSE:
        s->dead = true;
        return mb_error_set(err, MB_TEMP, "IMAP %s: unparsable server response to %s", s->where,
                            what);
    default:
        if (!imap_refused(r)) {
            s->dead = true;
            return mb_error_set(err, MB_TEMP, "IMAP %s: connection lost or timed out during %s",
                                s->where, what);
        }
        imap_server_text(s, text, sizeof(text));
        return mb_error_set(err, MB_TEMP, "IMAP %s: %s failed: %s", s->where, what, text);
    }
}

/* imap_usable - MB_TEMP when an earlier network error killed the session */
static enum mb_status imap_usable(struct imap_session *s, struct mb_error *err)
{
    assert(!s->idling); /* the caller's bug: no command between IDLE and DONE */
    if (s->dead)
        return mb_error_set(err, MB_TEMP, "IMAP %s: the connection was lost earlier; reconnect",
                            s->where);
    return MB_OK;
}

/* imap_need_folder - commands on messages need a SELECT that worked */
enum mb_status imap_need_folder(struct imap_session *s, struct mb_error *err)
{
    enum mb_status st = imap_usable(s, err);
    if (st == MB_OK && s->imap->imap_selection_info == NULL)
        st = mb_error_set(err, MB_CONFIG, "IMAP %s: no folder selected", s->where);
    return st;
}

/* imap_note_mail - fold libetpan's EXISTS / RECENT markers into new_mail */
void imap_note_mail(struct imap_session *s)
{
    struct mailimap_selection_info *sel = s->imap->imap_selection_info;
    if (sel == NULL)
        return;
    if (sel->sel_has_exists || (sel->sel_has_recent && sel->sel_recent > 0))
        s->new_mail = true;
    sel->sel_has_exists = 0;
    sel->sel_has_recent = 0;
}

bool imap_mail_pending(struct imap_session *s)
{
    imap_note_mail(s);
    return s->new_mail;
}

/* --- capabilities ------------------------------------------------------- */

/* imap_has_capability - look CAP up in the list libetpan keeps ("AUTH=X"
 * among the auth types), unless it was disabled */
bool imap_has_capability(struct imap_session *s, const char *cap)
{
    for (size_t i = 0; i < s->n_disabled; i++)
        if (strcasecmp(s->disabled[i], cap) == 0)
            return false;
    const struct mailimap_connection_info *ci = s->imap->imap_connection_info;
    if (ci == NULL || ci->imap_capability == NULL)
        return false;
    bool auth = strncasecmp(cap, "AUTH=", 5) == 0;
    for (clistiter *it = clist_begin(ci->imap_capability->cap_list); it; it = clist_next(it)) {
        const struct mailimap_capability *c = clist_content(it);
        if (auth && c->cap_type == MAILIMAP_CAPABILITY_AUTH_TYPE && c->cap_data.cap_auth_type &&
            strcasecmp(c->cap_data.cap_auth_type, cap + 5) == 0)
            return true;
        if (!auth && c->cap_type == MAILIMAP_CAPABILITY_NAME && c->cap_data.cap_name &&
            strcasecmp(c->cap_data.cap_name, cap) == 0)
            return true;
    }
    return false;
}

/* imap_disable_capability - remember CAP as absent */
void imap_disable_capability(struct imap_session *s, const char *cap)
{
    s->disabled = xreallocarray(s->disabled, s->n_disabled + 1, sizeof(*s->disabled));
    s->disabled[s->n_disabled++] = xstrdup(cap);
}

/* refresh_capabilities - CAPABILITY; libetpan keeps the answer in
 * imap_connection_info, which imap_has_capability reads */
static enum mb_status refresh_capabilities(struct imap_session *s, struct mb_error *err)
{
    struct mailimap_capability_data *caps = NULL;
    int r = mailimap_capability(s->imap, &caps);
    if (r != MAILIMAP_NO_ERROR)
        return imap_failed(s, r, "CAPABILITY", err);
    mailimap_capability_data_free(caps);
    return MB_OK;
}

/* --- connecting ---------------------------------------------------------- */

/* wait_connected - finish the non-blocking connect of FD within TIMEOUT_MS;
 * 0 or an errno value */
static int wait_connected(int fd, long timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    do
        n = poll(&p, 1, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno;
    if (n == 0)
        return ETIMEDOUT;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return errno;
    return soerr;
}

/* tcp_connect - a blocking socket connected to HOST:PORT (each address in
 * turn, each within TIMEOUT_MS), as libetpan's TLS layer wants it */
static enum mb_status tcp_connect(struct imap_session *s, const char *host, unsigned port,
                                  long timeout_ms, int *fd_r, struct mb_error *err)
{
    char service[16];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int r = getaddrinfo(host, service, &hints, &res);
    if (r != 0)
        return mb_error_set(err, MB_TEMP, "IMAP %s: cannot resolve %s: %s", s->where, host,
                            gai_strerror(r));
    int error = 0;
    *fd_r = -1;
    for (struct addrinfo *ai = res; ai != NULL && *fd_r < 0; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            error = errno;
            continue;
        }
        error = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (error == EINPROGRESS)
            error = wait_connected(fd, timeout_ms);
        if (error == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
            error = errno;
        if (error == 0)
            *fd_r = fd;
        else
            close(fd);
    }
    freeaddrinfo(res);
    if (*fd_r < 0)
        return mb_error_set(err, MB_TEMP, "IMAP %s: connect failed: %s", s->where,
                            strerror(error ? error : EHOSTUNREACH));
    return MB_OK;
}

/* starttls - STARTTLS, then swap the stream's clear-text layer for TLS
 * (libetpan's own helper does the same, without a timeout and without the
 * check for data the server sent ahead of the handshake) */
static enum mb_status starttls(struct imap_session *s, const char *host, time_t timeout_s,
                               struct mb_error *err)
{
    if (!imap_has_capability(s, "STARTTLS"))
        return mb_error_set(err, MB_DOWN,
                            "IMAP %s does not offer STARTTLS; refusing to log in without TLS "
                            "(use implicit TLS, or allow clear text explicitly)",
                            s->where);
    int r = mailimap_starttls(s->imap);
    mailstream *stream = s->imap->imap_stream;
    /* CVE-2020-15953: clear text smuggled in behind the OK would be read as
     * if it came over TLS (patched libetpan fails STARTTLS then; we check) */
    if ((r == MAILIMAP_NO_ERROR || imap_refused(r)) && stream->read_buffer_len > 0)
        return mb_error_set(err, MB_DOWN,
                            "IMAP %s sent data after accepting STARTTLS; refusing the connection",
                            s->where);
    if (r != MAILIMAP_NO_ERROR) {
        if (!imap_refused(r))
            return imap_failed(s, r, "STARTTLS", err);
        char text[IMAP_TEXT_MAX + 64];
        imap_server_text(s, text, sizeof(text));
        return mb_error_set(err, MB_DOWN, "IMAP %s refused STARTTLS: %s", s->where, text);
    }
    mailstream_low *plain = mailstream_get_low(stream);
    int fd = mailstream_low_get_fd(plain);
    mailstream_low *tls = mailstream_low_tls_open_with_callback_timeout(
        fd, timeout_s, tls_sni_callback, (void *)host);
    if (tls == NULL)
        return mb_error_set(err, MB_TEMP, "IMAP %s: TLS handshake failed", s->where);
    mailstream_low_free(plain); /* frees the layer, keeps FD for the TLS layer */
    mailstream_set_low(stream, tls);
    return MB_OK;
}

/* open_stream - TCP, implicit TLS or not, the greeting, and STARTTLS when
 * asked; *PREAUTH_R when the server authenticated us already */
static enum mb_status open_stream(struct imap_session *s, const struct imap_settings *set,
                                  unsigned port, bool *preauth_r, struct mb_error *err)
{
    time_t timeout_s = (time_t)((set->timeout_ms + 999) / 1000);
    if (timeout_s < 1)
        timeout_s = 1;
    int fd;
    enum mb_status st = tcp_connect(s, set->host, port, set->timeout_ms, &fd, err);
    if (st != MB_OK)
        return st;
    mailstream *stream;
    if (set->tls == IMAP_TLS_IMPLICIT) {
        stream = mailstream_ssl_open_with_callback_timeout(fd, timeout_s, tls_sni_callback,
                                                           (void *)set->host);
        if (stream == NULL) {
            close(fd);
            return mb_error_set(err, MB_TEMP, "IMAP %s: TLS handshake failed", s->where);
        }
    } else {
        stream = mailstream_socket_open_timeout(fd, timeout_s);
    }
    int r = mailimap_connect(s->imap, stream); /* the session owns STREAM from here */
    if (r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED && r != MAILIMAP_NO_ERROR_AUTHENTICATED)
        return imap_failed(s, r, "the greeting", err);
    *preauth_r = r == MAILIMAP_NO_ERROR_AUTHENTICATED;
    if (set->tls != IMAP_TLS_STARTTLS)
        return MB_OK;
    if (*preauth_r)
        return mb_error_set(err, MB_DOWN,
                            "IMAP %s authenticated the connection before STARTTLS; refusing it",
                            s->where);
    st = refresh_capabilities(s, err);
    if (st != MB_OK)
        return st;
    return starttls(s, set->host, timeout_s, err);
}

/* --- logging in ---------------------------------------------------------- */

/* base64_append - N bytes of IN in base64 with ALPHABET (64 characters),
 * '=' padded when PAD */
static void base64_append(struct buf *out, const unsigned char *in, size_t n, const char *alphabet,
                          bool pad)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t j = 0; j < 4; j++) {
            if (j < chars)
                buf_append(out, &alphabet[(v >> (18 - 6 * j)) & 0x3f], 1);
            else if (pad)
                buf_append(out, "=", 1);
        }
    }
}

static const char base64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* wipe - clear and free a buffer that held a secret */
static void wipe(struct buf *b)
{
    if (b->data != NULL)
        explicit_bzero(b->data, b->cap);
    buf_free(b);
}

/* send_text - write STR to the stream, unflushed */
static bool send_text(mailstream *stream, const char *str)
{
    return mailstream_write(stream, str, strlen(str)) >= 0;
}

/* authenticate - AUTHENTICATE MECH with the base64 RESPONSE: inline when
 * the server has SASL-IR, else after its empty challenge. A further
 * challenge is the server explaining a failure (XOAUTH2 sends JSON): it is
 * answered with an empty line, and the tagged NO follows. Returns a
 * libetpan code, MAILIMAP_ERROR_LOGIN for NO. */
static int authenticate(struct imap_session *s, const char *mech, const char *response)
{
    mailimap *imap = s->imap;
    mailstream *stream = imap->imap_stream;
    bool ir = imap_has_capability(s, "SASL-IR");
    int r = mailimap_send_current_tag(imap);
    if (r != MAILIMAP_NO_ERROR)
        return r;
    mailstream_set_privacy(stream, 0);
    bool ok = send_text(stream, "AUTHENTICATE ") && send_text(stream, mech) &&
              (!ir || (send_text(stream, " ") && send_text(stream, response))) &&
              send_text(stream, "\r\n") && mailstream_flush(stream) == 0;
    const char *line = ok ? mailimap_read_line(imap) : NULL;
    if (ok && !ir && line != NULL && line[0] == '+') {
        ok = send_text(stream, response) && send_text(stream, "\r\n") &&
             mailstream_flush(stream) == 0;
        line = ok ? mailimap_read_line(imap) : NULL;
    }
    mailstream_set_privacy(stream, 1);
    for (int challenges = 0; line != NULL && line[0] == '+'; challenges++) {
        if (challenges == 3 || !send_text(stream, "\r\n") || mailstream_flush(stream) != 0)
            return MAILIMAP_ERROR_STREAM;
        line = mailimap_read_line(imap);
    }
    if (line == NULL)
        return MAILIMAP_ERROR_STREAM;
    struct mailimap_response *resp;
    r = mailimap_parse_response(imap, &resp);
    if (r != MAILIMAP_NO_ERROR)
        return r;
    int type = resp->rsp_resp_done->rsp_data.rsp_tagged->rsp_cond_state->rsp_type;
    mailimap_response_free(resp);
    if (type != MAILIMAP_RESP_COND_STATE_OK)
        return MAILIMAP_ERROR_LOGIN;
    imap->imap_state = MAILIMAP_STATE_AUTHENTICATED;
    return MAILIMAP_NO_ERROR;
}

/* login - authenticate as SET says; a refusal is MB_DOWN with the
 * server's words, never the secret */
static enum mb_status login(struct imap_session *s, const struct imap_settings *set,
                            struct mb_error *err)
{
    int r;
    if (set->auth == IMAP_AUTH_LOGIN) {
        r = mailimap_login(s->imap, set->user, set->secret);
    } else {
        struct buf raw;
        buf_init(&raw, 0);
        if (set->auth == IMAP_AUTH_PLAIN) { /* authzid NUL authcid NUL password */
            buf_append(&raw, "", 1);
            buf_append(&raw, set->user, strlen(set->user) + 1);
            buf_append_str(&raw, set->secret);
        } else {
            buf_printf(&raw, "user=%s\001auth=Bearer %s\001\001", set->user, set->secret);
        }
        struct buf response;
        buf_init(&response, 0);
        base64_append(&response, (const unsigned char *)raw.data, raw.len, base64_std, true);
        wipe(&raw);
        r = authenticate(s, set->auth == IMAP_AUTH_PLAIN ? "PLAIN" : "XOAUTH2", response.data);
        wipe(&response);
    }
    if (r == MAILIMAP_NO_ERROR)
        return MB_OK;
    if (!imap_refused(r))
        return imap_failed(s, r, "login", err);
    char text[IMAP_TEXT_MAX + 64];
    imap_server_text(s, text, sizeof(text));
    return mb_error_set(err, MB_DOWN, "IMAP login to %s as %s failed: %s", s->where, set->user,
                        text);
}

/* imap_connect - connect, TLS, verify, capabilities, login, capabilities */
enum mb_status imap_connect(const struct imap_settings *set, struct imap_session **sess_r,
                            struct mb_error *err)
{
    *sess_r = NULL;
    if (set->host == NULL || set->user == NULL || set->secret == NULL)
        return mb_error_set(err, MB_CONFIG, "IMAP: host, user and secret are required");
    if (strpbrk(set->user, "\r\n") != NULL || strpbrk(set->secret, "\r\n") != NULL)
        return mb_error_set(err, MB_CONFIG, "IMAP: user or secret contains a line break");
    unsigned port = set->port ? set->port : set->tls == IMAP_TLS_IMPLICIT ? 993 : 143;
    struct imap_session *s = xcalloc(1, sizeof(*s));
    s->where = xasprintf("%s:%u", set->host, port);
    s->max_message_size = set->max_message_size;
    s->spool_dir = xstrdup(set->spool_dir);
    s->spool_threshold = set->spool_threshold;
    s->imap = mailimap_new(0, NULL);
    bool preauth = false;
    enum mb_status st = open_stream(s, set, port, &preauth, err);
    if (st == MB_OK && set->tls != IMAP_TLS_NONE && set->tls_verify)
        st = tls_verify_stream(s->imap->imap_stream, set->host, set->ca_file, err);
    if (st == MB_OK && !preauth) {
        /* after STARTTLS the old list is void; implicit TLS may have had none */
        st = refresh_capabilities(s, err);
        if (st == MB_OK)
            st = login(s, set, err);
    }
    if (st == MB_OK)
        st = refresh_capabilities(s, err); /* logging in may add some */
    if (st != MB_OK) {
        s->dead = true; /* no LOGOUT on a half-open session */
        imap_close(&s);
        return st;
    }
    *sess_r = s;
    return MB_OK;
}

/* imap_close - DONE and LOGOUT when the connection still works, then free */
void imap_close(struct imap_session **sess)
{
    struct imap_session *s = *sess;
    if (s == NULL)
        return;
    if (!s->dead) {
        if (s->idling)
            mailimap_idle_done(s->imap);
        mailimap_logout(s->imap); /* closes the stream whatever the answer */
    }
    mailimap_free(s->imap);
    for (size_t i = 0; i < s->n_disabled; i++)
        free(s->disabled[i]);
    free(s->disabled);
    free(s->spool_dir);
    free(s->where);
    free(s);
    *sess = NULL;
}

/* --- folders --------------------------------------------------------------- */

/* utf8_next - decode one code point at *P (advanced); -1 when malformed */
static long utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    long cp;
    int extra;
    if (s[0] < 0x80)
        cp = s[0], extra = 0;
    else if ((s[0] & 0xe0) == 0xc0)
        cp = s[0] & 0x1f, extra = 1;
    else if ((s[0] & 0xf0) == 0xe0)
        cp = s[0] & 0x0f, extra = 2;
    else if ((s[0] & 0xf8) == 0xf0)
        cp = s[0] & 0x07, extra = 3;
    else
        return -1;
    for (int i = 1; i <= extra; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const long min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *p = s + extra + 1;
    return cp;
}

/* flush_utf16 - append the shifted run RUN (UTF-16BE) as "&<modified
 * base64>-", and empty it */
static void flush_utf16(struct buf *out, struct buf *run)
{
    static const char modified[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    if (run->len == 0)
        return;
    buf_append(out, "&", 1);
    base64_append(out, (const unsigned char *)run->data, run->len, modified, false);
    buf_append(out, "-", 1);
    buf_reset(run);
}

/* put_utf16 - append code unit U to RUN, big-endian */
static void put_utf16(struct buf *run, long u)
{
    unsigned char be[2] = {(unsigned char)(u >> 8), (unsigned char)u};
    buf_append(run, be, 2);
}

/* folder_name - NAME (UTF-8) in modified UTF-7 (RFC 3501 5.1.3), owned by
 * the caller; MB_CONFIG when NAME is not UTF-8 */
static enum mb_status folder_name(const char *name, char **mutf7_r, struct mb_error *err)
{
    struct buf out, run;
    buf_init(&out, 0);
    buf_init(&run, 0);
    const unsigned char *p = (const unsigned char *)name;
    while (*p != '\0') {
        if (*p >= 0x20 && *p <= 0x7e) {
            flush_utf16(&out, &run);
            buf_append(&out, *p == '&' ? "&-" : (const char *)p, *p == '&' ? 2 : 1);
            p++;
            continue;
        }
        long cp = utf8_next(&p);
        if (cp < 0) {
            buf_free(&out);
            buf_free(&run);
            return mb_error_set(err, MB_CONFIG, "IMAP folder name \"%s\" is not UTF-8", name);
        }
        if (cp >= 0x10000) {
            put_utf16(&run, 0xd800 + ((cp - 0x10000) >> 10));
            put_utf16(&run, 0xdc00 + ((cp - 0x10000) & 0x3ff));
        } else {
            put_utf16(&run, cp);
        }
    }
    flush_utf16(&out, &run);
    buf_free(&run);
    *mutf7_r = buf_steal(&out);
    return MB_OK;
}

/* imap_select - SELECT, and remember UIDNEXT for the fetch windows */
enum mb_status imap_select(struct imap_session *s, const char *folder, struct imap_folder *info_r,
                           struct mb_error *err)
{
    char *name;
    enum mb_status st = imap_usable(s, err);
    if (st == MB_OK)
        st = folder_name(folder, &name, err);
    if (st != MB_OK)
        return st;
    int r = mailimap_select(s->imap, name);
    free(name);
    if (r != MAILIMAP_NO_ERROR) {
        if (!imap_refused(r))
            return imap_failed(s, r, "SELECT", err);
        char text[IMAP_TEXT_MAX + 64];
        imap_server_text(s, text, sizeof(text));
        return mb_error_set(err, MB_CONFIG, "IMAP %s: cannot select folder \"%s\": %s", s->where,
                            folder, text);
    }
    const struct mailimap_selection_info *sel = s->imap->imap_selection_info;
    info_r->uidvalidity = sel->sel_uidvalidity;
    info_r->uidnext = sel->sel_uidnext;
    info_r->exists = sel->sel_exists;
    s->uidnext = sel->sel_uidnext;
    imap_note_mail(s);
    s->new_mail = false; /* the caller fetches what SELECT announced */
    return MB_OK;
}

/* folder_exists - LIST "" NAME (modified UTF-7): *FOUND_R when exactly
 * NAME came back; returns libetpan's code */
static int folder_exists(struct imap_session *s, const char *name, bool *found_r)
{
    clist *list = NULL;
    *found_r = false;
    int r = mailimap_list(s->imap, "", name, &list);
    imap_note_mail(s);
    if (list == NULL)
        return r;
    for (clistiter *it = clist_begin(list); it != NULL && !*found_r; it = clist_next(it)) {
        const struct mailimap_mailbox_list *mb = clist_content(it);
        *found_r = strcmp(mb->mb_name, name) == 0 ||
                   (strcasecmp(name, "INBOX") == 0 && strcasecmp(mb->mb_name, "INBOX") == 0);
    }
    mailimap_list_result_free(list);
    return r;
}

/* imap_create_folder - CREATE; a refusal is fine when LIST shows the folder */
enum mb_status imap_create_folder(struct imap_session *s, const char *folder, struct mb_error *err)
{
    char *name;
    enum mb_status st = imap_usable(s, err);
    if (st == MB_OK)
        st = folder_name(folder, &name, err);
    if (st != MB_OK)
        return st;
    int r = mailimap_create(s->imap, name);
    imap_note_mail(s);
    if (r == MAILIMAP_NO_ERROR || !imap_refused(r)) {
        free(name);
        return r == MAILIMAP_NO_ERROR ? MB_OK : imap_failed(s, r, "CREATE", err);
    }
    char text[IMAP_TEXT_MAX + 64];
    imap_server_text(s, text, sizeof(text)); /* before LIST replaces it */
    bool found;
    r = folder_exists(s, name, &found);
    free(name);
    if (found)
        return MB_OK;
    if (r != MAILIMAP_NO_ERROR && !imap_refused(r))
        return imap_failed(s, r, "LIST", err);
    return mb_error_set(err, MB_CONFIG, "IMAP %s: cannot create folder \"%s\": %s", s->where,
                        folder, text);
}

/* --- commands on sets of messages ------------------------------------------ */

/* new_flag - the libetpan flag for FLAG; NULL when it is neither a system
 * flag nor a valid keyword atom */
static struct mailimap_flag *new_flag(const char *flag)
{
    static const struct {
        const char *name;
        struct mailimap_flag *(*make)(void);
    } system[] = {
        {"\\Seen", mailimap_flag_new_seen},       {"\\Answered", mailimap_flag_new_answered},
        {"\\Flagged", mailimap_flag_new_flagged}, {"\\Deleted", mailimap_flag_new_deleted},
        {"\\Draft", mailimap_flag_new_draft},
    };
    for (size_t i = 0; i < sizeof(system) / sizeof(system[0]); i++)
        if (strcasecmp(flag, system[i].name) == 0)
            return system[i].make();
    if (*flag == '\0' || strlen(flag) > 200)
        return NULL;
    for (const char *p = flag; *p != '\0'; p++) /* atom-char minus resp-specials */
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("(){%*\"\\]", *p))
            return NULL;
    return mailimap_flag_new_flag_keyword(xstrdup(flag));
}

/* next_set - the UIDs from *POS on, runs of consecutive ones coalesced into
 * ranges, at most IMAP_SET_MAX_RANGES of them, as a set owned by the caller;
 * *POS moves past them. NULL when none are left. */
static struct mailimap_set *next_set(const uint32_t *uids, size_t n, size_t *pos)
{
    if (*pos >= n)
        return NULL;
    struct mailimap_set *set = mailimap_set_new_empty();
    size_t i = *pos;
    for (size_t ranges = 0; i < n && ranges < IMAP_SET_MAX_RANGES; ranges++) {
        assert(uids[i] != 0); /* libetpan would send 0 as "*": the last message */
        uint32_t first = uids[i], last = uids[i];
        for (i++; i < n && uids[i] >= last && uids[i] - last <= 1; i++)
            last = uids[i];
        if (first == last)
            mailimap_set_add_single(set, first);
        else
            mailimap_set_add_interval(set, first, last);
    }
    *pos = i;
    return set;
}

/* set_command - one command on SET with ARG; libetpan's code */
typedef int (*set_command)(mailimap *imap, struct mailimap_set *set, void *arg);

/* each_set - COMMAND on the N UIDS, a set of at most IMAP_SET_MAX_RANGES
 * ranges at a time, until one fails; libetpan's code of the last one */
static int each_set(struct imap_session *s, const uint32_t *uids, size_t n, set_command command,
                    void *arg)
{
    int r = MAILIMAP_NO_ERROR;
    size_t pos = 0;
    struct mailimap_set *set;
    while (r == MAILIMAP_NO_ERROR && (set = next_set(uids, n, &pos)) != NULL) {
        r = command(s->imap, set, arg);
        mailimap_set_free(set);
        imap_note_mail(s);
    }
    return r;
}

/* uid_store, uid_expunge, uid_move, uid_copy - the commands of each_set;
 * ARG is the store_att_flags, nothing, the folder's wire name */
static int uid_store(mailimap *imap, struct mailimap_set *set, void *att)
{
    return mailimap_uid_store(imap, set, att);
}

static int uid_expunge(mailimap *imap, struct mailimap_set *set, void *unused)
{
    (void)unused;
    return mailimap_uid_expunge(imap, set);
}

static int uid_move(mailimap *imap, struct mailimap_set *set, void *name)
{
    return mailimap_uid_move(imap, set, name);
}

static int uid_copy(mailimap *imap, struct mailimap_set *set, void *name)
{
    return mailimap_uid_copy(imap, set, name);
}

/* store_flag - UID STORE UIDS +FLAGS.SILENT (FLAG, consumed); WHAT names it
 * in errors */
static enum mb_status store_flag(struct imap_session *s, const uint32_t *uids, size_t n,
                                 struct mailimap_flag *flag, const char *what, struct mb_error *err)
{
    struct mailimap_flag_list *list = mailimap_flag_list_new_empty();
    mailimap_flag_list_add(list, flag);
    struct mailimap_store_att_flags *att = mailimap_store_att_flags_new_add_flags_silent(list);
    int r = each_set(s, uids, n, uid_store, att);
    mailimap_store_att_flags_free(att);
    if (r != MAILIMAP_NO_ERROR)
        return imap_failed(s, r, what, err);
    return MB_OK;
}

/* imap_add_flag - validate FLAG, then UID STORE +FLAGS.SILENT */
enum mb_status imap_add_flag(struct imap_session *s, const uint32_t *uids, size_t n,
                             const char *flag, struct mb_error *err)
{
    enum mb_status st = imap_need_folder(s, err);
    if (st != MB_OK)
        return st;
    struct mailimap_flag *f = new_flag(flag);
    if (f == NULL)
        return mb_error_set(err, MB_CONFIG, "invalid IMAP flag \"%s\"", flag);
    return store_flag(s, uids, n, f, "UID STORE", err);
}

/* expunge - remove the N UIDS, already marked \Deleted: UID EXPUNGE with
 * UIDPLUS, else one EXPUNGE (which takes every \Deleted message of the
 * folder) */
static enum mb_status expunge(struct imap_session *s, const uint32_t *uids, size_t n,
                              struct mb_error *err)
{
    if (n == 0)
        return MB_OK;
    int r;
    const char *what;
    if (imap_has_capability(s, "UIDPLUS")) {
        r = each_set(s, uids, n, uid_expunge, NULL);
        what = "UID EXPUNGE";
    } else {
        r = mailimap_expunge(s->imap);
        imap_note_mail(s);
        what = "EXPUNGE";
    }
    if (r != MAILIMAP_NO_ERROR)
        return imap_failed(s, r, what, err);
    return MB_OK;
}

/* imap_delete - \Deleted, then expunge just UIDS where possible */
enum mb_status imap_delete(struct imap_session *s, const uint32_t *uids, size_t n,
                           struct mb_error *err)
{
    enum mb_status st = imap_need_folder(s, err);
    if (st == MB_OK)
        st = store_flag(s, uids, n, mailimap_flag_new_deleted(), "UID STORE \\Deleted", err);
    if (st == MB_OK)
        st = expunge(s, uids, n, err);
    return st;
}

/* imap_move - UID MOVE, or UID COPY + \Deleted + expunge; a target that
 * does not exist ([TRYCREATE]) is MB_CONFIG */
enum mb_status imap_move(struct imap_session *s, const uint32_t *uids, size_t n, const char *folder,
                         struct mb_error *err)
{
    char *name;
    enum mb_status st = imap_need_folder(s, err);
    if (st == MB_OK)
        st = folder_name(folder, &name, err);
    if (st != MB_OK)
        return st;
    bool move = imap_has_capability(s, "MOVE");
    int r = each_set(s, uids, n, move ? uid_move : uid_copy, name);
    free(name);
    if (r != MAILIMAP_NO_ERROR) {
        const struct mailimap_response_info *info = s->imap->imap_response_info;
        if (imap_refused(r) && info != NULL && info->rsp_trycreate) {
            char text[IMAP_TEXT_MAX + 64];
            imap_server_text(s, text, sizeof(text));
            return mb_error_set(err, MB_CONFIG, "IMAP %s: cannot move to folder \"%s\": %s",
                                s->where, folder, text);
        }
        return imap_failed(s, r, move ? "UID MOVE" : "UID COPY", err);
    }
    if (move)
        return MB_OK;
    st = store_flag(s, uids, n, mailimap_flag_new_deleted(), "UID STORE \\Deleted", err);
    if (st == MB_OK)
        st = expunge(s, uids, n, err);
    return st;
}

/* --- waiting for mail ----------------------------------------------------- */

/* report_mail - hand out and clear the new-mail note */
static void report_mail(struct imap_session *s, bool *new_mail_r)
{
    imap_note_mail(s);
    *new_mail_r = s->new_mail;
    s->new_mail = false;
}

/* imap_idle_start - IDLE, after noting what earlier commands announced */
enum mb_status imap_idle_start(struct imap_session *s, struct mb_error *err)
{
    enum mb_status st = imap_need_folder(s, err);
    if (st != MB_OK)
        return st;
    if (!imap_has_capability(s, "IDLE"))
        return mb_error_set(err, MB_CONFIG, "IMAP %s does not support IDLE; poll with NOOP",
                            s->where);
    imap_note_mail(s); /* mailimap_idle clears the markers */
    int r = mailimap_idle(s->imap);
    if (r != MAILIMAP_NO_ERROR)
        return imap_failed(s, r, "IDLE", err);
    s->idling = true;
    return MB_OK;
}

/* imap_idle_fd - the socket while idling */
int imap_idle_fd(struct imap_session *s)
{
    return s->idling ? mailimap_idle_get_fd(s->imap) : -1;
}

/* imap_idle_buffered - bytes past the continuation line are left in
 * libetpan's read buffer (struct _mailstream is public). Under TLS only a
 * record longer than that buffer could leave a tail inside GnuTLS; the few
 * lines that follow a continuation are far shorter. */
bool imap_idle_buffered(struct imap_session *s)
{
    return s->idling && s->imap->imap_stream != NULL && s->imap->imap_stream->read_buffer_len > 0;
}

/* imap_idle_done - DONE; the EXISTS read meanwhile are parsed now */
enum mb_status imap_idle_done(struct imap_session *s, bool *new_mail_r, struct mb_error *err)
{
    *new_mail_r = false;
    if (!s->idling)
        return imap_usable(s, err);
    s->idling = false;
    int r = mailimap_idle_done(s->imap);
    if (r != MAILIMAP_NO_ERROR)
        return imap_failed(s, r, "IDLE", err);
    report_mail(s, new_mail_r);
    return MB_OK;
}

/* imap_noop - NOOP, reporting the EXISTS it brings */
enum mb_status imap_noop(struct imap_session *s, bool *new_mail_r, struct mb_error *err)
{
    *new_mail_r = false;
    enum mb_status st = imap_usable(s, err);
    if (st != MB_OK)
        return st;
    int r = mailimap_noop(s->imap);
    if (r != MAILIMAP_NO_ERROR)
        return imap_failed(s, r, "NOOP", err);
    report_mail(s, new_mail_r);
    return MB_OK;
}
