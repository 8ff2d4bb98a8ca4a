/* mailbox - what the IMAP and POP3 sources share: the mailbox settings and
 * their defaults, the processed-mail action, the mailbox URL, and
 * source_open_mailbox, which picks the kind from the URL's scheme. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "transport/mailbox_int.h"

#define MAILBOX_DEFAULT_BATCH 100
#define MAILBOX_DEFAULT_TIMEOUT_MS 60000L
#define MAILBOX_DEFAULT_MAX_MESSAGE ((size_t)50 << 20)

/* mailbox_settings_default - the defaults source.h documents; the action
 * is KEEP and there is no quarantine folder, so nothing changes on the
 * server unless the configuration says so */
void mailbox_settings_default(struct mailbox_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->auth = MAILBOX_AUTH_LOGIN;
    s->starttls = true;
    s->tls_verify = true;
    s->action = MAILBOX_KEEP;
    s->batch_size = MAILBOX_DEFAULT_BATCH;
    s->timeout_ms = MAILBOX_DEFAULT_TIMEOUT_MS;
    s->idle = true;
    s->max_message_size = MAILBOX_DEFAULT_MAX_MESSAGE;
}

/* mailbox_parse_action - the five spellings; the argument must not be empty */
bool mailbox_parse_action(const char *text, struct mailbox_settings *s)
{
    static const struct {
        const char *word;
        enum mailbox_action action;
        bool takes_arg; /* the word ends with ':' and an argument follows */
    } actions[] = {
        {"keep", MAILBOX_KEEP, false},       {"seen", MAILBOX_SEEN, false},
        {"keyword:", MAILBOX_KEYWORD, true}, {"move:", MAILBOX_MOVE, true},
        {"delete", MAILBOX_DELETE, false},
    };
    if (text == NULL)
        return false;
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        size_t n = strlen(actions[i].word);
        if (actions[i].takes_arg ? strncmp(text, actions[i].word, n) != 0 || text[n] == '\0'
                                 : strcmp(text, actions[i].word) != 0)
            continue;
        s->action = actions[i].action;
        s->action_arg = actions[i].takes_arg ? text + n : NULL;
        return true;
    }
    return false;
}

/* --- the URL ---------------------------------------------------------------- */

/* shown_url - URL for an error text, owned by the caller: user information
 * ("user:password@") is left out, as a password may have been put there */
static char *shown_url(const char *url)
{
    const char *start = strstr(url, "://");
    start = start != NULL ? start + 3 : url;
    size_t auth_len = strcspn(start, "/");
    const char *at = NULL;
    for (const char *p = start; p < start + auth_len; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return xstrdup(url);
    return xasprintf("%.*s%s", (int)(start - url), url, at + 1);
}

/* bad_url - MB_CONFIG naming URL (as shown_url shows it) and the reason */
static enum mb_status bad_url(const char *url, struct mb_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum mb_status bad_url(const char *url, struct mb_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *why = xvasprintf(fmt, ap);
    va_end(ap);
    char *shown = shown_url(url);
    enum mb_status st = mb_error_set(err, MB_CONFIG, "mailbox URL \"%s\": %s", shown, why);
    free(shown);
    free(why);
    return st;
}

/* hex_value - the value of hexadecimal digit C, -1 for others */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* percent_decode - TEXT with %XX decoded, owned by the caller; NULL when a
 * % is not followed by two hex digits or decodes to NUL */
static char *percent_decode(const char *text)
{
    char *out = xmalloc(strlen(text) + 1);
    size_t n = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p != '%') {
            out[n++] = *p;
            continue;
        }
        int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);
        if (lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[n++] = (char)(hi << 4 | lo);
        p += 2;
    }
    out[n] = '\0';
    return out;
}

/* b64_value - the value of a modified-base64 digit (RFC 3501 5.1.3), -1 for others */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

/* put_utf8 - append code point CP to OUT as UTF-8 */
static void put_utf8(struct buf *out, unsigned long cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_append(out, b, n);
}

/* decode_shifted - the modified base64 from *P (just after '&') up to its
 * '-', UTF-16BE, appended to OUT as UTF-8, and *P moved past the '-'. False
 * unless it is canonical (RFC 3501): not empty, surrogates paired, no
 * printable ASCII inside, no stray bits. */
static bool decode_shifted(const char **p, struct buf *out)
{
    unsigned long bits = 0, high = 0;
    int nbits = 0;
    bool any = false;
    const char *s = *p;
    for (; *s != '-'; s++) {
        int v = b64_value(*s);
        if (v < 0)
            return false;
        bits = (bits << 6) | (unsigned long)v;
        nbits += 6;
        if (nbits < 16)
            continue;
        nbits -= 16;
        unsigned long unit = bits >> nbits, cp;
        bits &= (1ul << nbits) - 1;
        if (high != 0) {
            if (unit < 0xdc00 || unit > 0xdfff)
                return false;
            cp = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
            high = 0;
        } else if (unit >= 0xd800 && unit <= 0xdbff) {
            high = unit;
            continue;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            return false;
        } else {
            cp = unit;
        }
        if (cp == 0 || (cp >= 0x20 && cp <= 0x7e))
            return false;
        put_utf8(out, cp);
        any = true;
    }
    if (!any || high != 0 || nbits >= 6 || bits != 0)
        return false;
    *p = s + 1;
    return true;
}

/* mutf7_decode - NAME in canonical modified UTF-7 decoded to UTF-8, owned by
 * the caller; NULL when NAME is not that (raw 8-bit bytes, a lone '&', two
 * shifted runs in a row), and then it is a UTF-8 name already. A name
 * without '&' reads the same either way. */
static char *mutf7_decode(const char *name)
{
    struct buf out;
    buf_init(&out, 0);
    const char *p = name;
    bool ok = true;
    while (ok && *p != '\0') {
        if ((unsigned char)*p >= 0x80) {
            ok = false;
        } else if (*p != '&') {
            buf_append(&out, p++, 1);
        } else if (p[1] == '-') {
            buf_append(&out, "&", 1);
            p += 2;
        } else {
            p++;
            ok = decode_shifted(&p, &out) && !(p[0] == '&' && p[1] != '-');
        }
    }
    if (!ok) {
        buf_free(&out);
        return NULL;
    }
    return buf_steal(&out);
}

/* parse_folder - PATH (after the authority: "" or "/..."), %-decoded, into
 * U->folder; "INBOX" when empty */
static enum mb_status parse_folder(const char *url, const char *path, struct mailbox_url *u,
                                   struct mb_error *err)
{
    if (*path == '/')
        path++;
    if (*path == '\0') {
        u->folder = xstrdup("INBOX");
        return MB_OK;
    }
    char *decoded = percent_decode(path);
    if (decoded == NULL)
        return bad_url(url, err, "the folder has a %% that is not %%XX, or %%00");
    char *utf8 = mutf7_decode(decoded);
    if (utf8 != NULL) {
        free(decoded);
        decoded = utf8;
    }
    u->folder = decoded;
    return MB_OK;
}

/* parse_authority - "HOST[:PORT]" or "[V6ADDR][:PORT]" (LEN bytes at A) into U */
static enum mb_status parse_authority(const char *url, const char *a, size_t len,
                                      unsigned default_port, struct mailbox_url *u,
                                      struct mb_error *err)
{
    if (memchr(a, '@', len) != NULL)
        return bad_url(url, err, "user and password belong in the settings, not in the URL");
    const char *host = a, *end = a + len, *rest;
    size_t host_len;
    const char *allowed;
    if (*a == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL)
            return bad_url(url, err, "'[' without ']'");
        host = a + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
        allowed = "0123456789abcdefABCDEF:.";
    } else {
        const char *colon = memchr(a, ':', len);
        rest = colon != NULL ? colon : end;
        host_len = (size_t)(rest - a);
        allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
    }
    if (host_len == 0)
        return bad_url(url, err, "no host");
    for (size_t i = 0; i < host_len; i++)
        if (strchr(allowed, host[i]) == NULL)
            return bad_url(url, err, "'%c' in the host name", host[i]);
    u->port = default_port;
    if (rest < end) {
        if (*rest != ':' || rest + 1 == end || end - rest - 1 > 5)
            return bad_url(url, err, "expected ':PORT' after the host");
        unsigned long port = 0;
        for (const char *p = rest + 1; p < end; p++) {
            if (*p < '0' || *p > '9')
                return bad_url(url, err, "the port is not a number");
            port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port == 0 || port > 65535)
            return bad_url(url, err, "port %lu is out of range", port);
        u->port = (unsigned)port;
    }
    u->host = xstrndup(host, host_len);
    return MB_OK;
}

/* mailbox_url_parse - scheme, authority, then the folder (IMAP only) */
enum mb_status mailbox_url_parse(const char *url, bool starttls, struct mailbox_url *u,
                                 struct mb_error *err)
{
    static const struct {
        const char *prefix;
        enum mailbox_proto proto;
        bool implicit;
        unsigned port;
    } schemes[] = {
        {"imaps://", MAILBOX_IMAP, true, 993},
        {"imap://", MAILBOX_IMAP, false, 143},
        {"pop3s://", MAILBOX_POP3, true, 995},
        {"pop3://", MAILBOX_POP3, false, 110},
    };
    memset(u, 0, sizeof(*u));
    if (url == NULL || *url == '\0')
        return mb_error_set(err, MB_CONFIG, "no mailbox URL");
    size_t k = 0, count = sizeof(schemes) / sizeof(schemes[0]);
    while (k < count && strncasecmp(url, schemes[k].prefix, strlen(schemes[k].prefix)) != 0)
        k++;
    if (k == count)
        return bad_url(url, err, "expected imaps://, imap://, pop3s:// or pop3://");
    for (const char *p = url; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return bad_url(url, err, "control character in the URL");
        if (*p == '?' || *p == '#')
            return bad_url(url, err, "'%c' has no meaning here (write it as %%%02X in a folder)",
                           *p, (unsigned)*p);
    }
    const char *authority = url + strlen(schemes[k].prefix);
    size_t len = strcspn(authority, "/");
    u->proto = schemes[k].proto;
    u->tls = schemes[k].implicit ? MAILBOX_TLS_IMPLICIT
             : starttls          ? MAILBOX_TLS_STARTTLS
                                 : MAILBOX_TLS_NONE;
    enum mb_status st = parse_authority(url, authority, len, schemes[k].port, u, err);
    const char *path = authority + len;
    if (st == MB_OK && u->proto == MAILBOX_IMAP)
        st = parse_folder(url, path, u, err);
    else if (st == MB_OK && strcmp(path, "") != 0 && strcmp(path, "/") != 0)
        st = bad_url(url, err, "POP3 has no folders");
    if (st != MB_OK)
        mailbox_url_free(u);
    return st;
}

/* mailbox_url_free - see mailbox_int.h */
void mailbox_url_free(struct mailbox_url *u)
{
    free(u->host);
    free(u->folder);
    memset(u, 0, sizeof(*u));
}

/* source_open_mailbox - check what both kinds need, then open the kind the
 * URL names */
enum mb_status source_open_mailbox(const struct mailbox_settings *s,
                                   const struct source_memory *memory, struct source **src_r,
                                   struct mb_error *err)
{
    *src_r = NULL;
    struct mailbox_url u;
    enum mb_status st = mailbox_url_parse(s->url, s->starttls, &u, err);
    if (st != MB_OK)
        return st;
    if (s->user == NULL || *s->user == '\0' || s->secret == NULL)
        st = mb_error_set(err, MB_CONFIG, "mailbox %s: a user and a password or token are needed",
                          u.host);
    else if ((s->action == MAILBOX_KEYWORD || s->action == MAILBOX_MOVE) &&
             (s->action_arg == NULL || *s->action_arg == '\0'))
        st = mb_error_set(err, MB_CONFIG, "mailbox %s: the processed-mail action needs a %s",
                          u.host, s->action == MAILBOX_MOVE ? "folder" : "keyword");
    else if (u.proto == MAILBOX_IMAP)
        st = imap_source_open(&u, s, memory, src_r, err);
    else
        st = pop3_source_open(&u, s, memory, src_r, err);
    mailbox_url_free(&u);
    return st;
}
