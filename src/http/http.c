/* http - the keep-alive HTTP/1.1 client (see http.h).
 *
 * One libcurl multi handle per client with max_in_flight easy handles: its
 * connection cache keeps the vendor connections open between messages, and
 * a batch of requests goes out several at a time. Bodies (including
 * multipart) are built here and handed over as POSTFIELDS, guarded against
 * libcurl's silent re-send (see http_send_many); every outcome is
 * classified before it leaves this file. */
#define _GNU_SOURCE /* memmem */
#include "http/http.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

#include "lib/xalloc.h"

#define HTTP_MAX_HEADERS 256 /* response header lines kept; more is refused */
#define HTTP_EXCERPT_MAX 300 /* bytes of a vendor's answer in error texts */
#define HTTP_BOUNDARY_LEN 32 /* hex digits: 16 random per client, 16 counting requests */
#define HTTP_DEFAULT_AGENT "mailbridge/0.1.0"
#define HTTP_POLL_MS 1000    /* longest wait in one curl_multi_poll (libcurl wakes earlier for its timers) */

/* One easy handle and the request it carries while that is in flight. */
struct http_transfer {
    CURL *curl;                     /* owned */
    const struct http_request *req; /* borrowed: the request in flight, NULL when idle */
    struct http_response *resp;     /* borrowed: the response being filled */
    size_t index;                   /* the request's place in its http_send_many batch */
    struct curl_slist *headers;     /* owned while in flight */
    struct buf body;                /* owned: the encoded multipart body while in flight */
    char *content_type;             /* owned while in flight */
    bool has_body;         /* the request in flight has a body: it is sent at most once */
    unsigned attempts;     /* times libcurl was about to send the request in flight */
    bool too_large;        /* the write callback refused the body */
    bool too_many_headers; /* the header callback refused a line */
    char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
    CURLM *multi;                  /* owned */
    struct http_transfer *xfers;   /* owned: max_in_flight of them */
    size_t max_in_flight;
    FILE *dry_run; /* borrowed: from the settings */
    size_t max_response;
    unsigned long connections; /* connections opened so far */
    char boundary_prefix[HTTP_BOUNDARY_LEN / 2 + 1]; /* random hex, drawn once */
    uint64_t boundaries;                             /* multipart boundaries made so far */
};

void http_settings_default(struct http_settings *s)
{
    s->connect_timeout_ms = 10000;
    s->timeout_ms = 60000;
    s->tls_verify = true;
    s->ca_file = NULL;
    s->max_response = 16u << 20;
    s->user_agent = NULL;
    s->dry_run = NULL;
    s->max_in_flight = 4;
}

void http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_deinit(void)
{
    curl_global_cleanup();
}

/* on_body - libcurl write callback: append to the capped response body */
static size_t on_body(char *data, size_t size, size_t count, void *ctx)
{
    struct http_transfer *t = ctx;
    if (!buf_append(&t->resp->body, data, size * count)) {
        t->too_large = true;
        return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    return size * count;
}

/* on_header - libcurl header callback: keep "Name: value" lines of the final response */
static size_t on_header(char *data, size_t size, size_t count, void *ctx)
{
    struct http_transfer *t = ctx;
    struct http_response *resp = t->resp;
    size_t total = size * count, len = total;
    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A status line starts a new response (after 1xx): forget earlier headers. */
        for (size_t i = 0; i < resp->header_count; i++)
            free(resp->headers[i]);
        resp->header_count = 0;
        return total;
    }
    if (len == 0)
        return total;
    if (resp->header_count >= HTTP_MAX_HEADERS) {
        t->too_many_headers = true;
        return 0;
    }
    resp->headers = xreallocarray(resp->headers, resp->header_count + 1, sizeof(char *));
    resp->headers[resp->header_count++] = xstrndup(data, len);
    return total;
}

/* on_prereq - libcurl pre-request callback, called right before a request
 * is sent on its connection: the second attempt of a request with a body is
 * refused (see http_send_many) */
static int on_prereq(void *ctx, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    struct http_transfer *t = ctx;
    (void)conn_primary_ip, (void)conn_local_ip, (void)conn_primary_port, (void)conn_local_port;
    t->attempts++;
    return t->has_body && t->attempts > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

static const char hex_digits[] = "0123456789abcdef";

/* hex_random - N random hex digits into OUT, NUL-terminated */
static void hex_random(char *out, size_t n)
{
    unsigned char raw[32];
    size_t got = 0;
    assert(n <= 2 * sizeof(raw));
    while (got < (n + 1) / 2) {
        ssize_t r = getrandom(raw + got, (n + 1) / 2 - got, 0);
        if (r > 0)
            got += (size_t)r;
        /* EINTR only: getrandom never fails otherwise for so few bytes */
    }
    for (size_t i = 0; i < n; i++)
        out[i] = hex_digits[i % 2 ? raw[i / 2] & 15 : raw[i / 2] >> 4];
    out[n] = '\0';
}

/* setup_transfer - T's easy handle with every option that stays the same
 * for all its requests; false when libcurl cannot use the CA file */
static bool setup_transfer(struct http_transfer *t, const struct http_settings *s)
{
    CURL *curl = t->curl;
    buf_init(&t->body, 0);
    curl_easy_setopt(curl, CURLOPT_PRIVATE, t);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, s->tls_verify ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, s->tls_verify ? 2L : 0L);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, s->user_agent ? s->user_agent : HTTP_DEFAULT_AGENT);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(curl, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(curl, CURLOPT_PREREQDATA, t);
    return s->ca_file == NULL || curl_easy_setopt(curl, CURLOPT_CAINFO, s->ca_file) == CURLE_OK;
}

enum mb_status http_client_create(const struct http_settings *s, struct http_client **client_r,
                                  struct mb_error *err)
{
    struct http_client *c = xcalloc(1, sizeof(*c));
    c->max_in_flight = s->max_in_flight > 0 ? s->max_in_flight : 1;
    c->dry_run = s->dry_run;
    c->max_response = s->max_response;
    hex_random(c->boundary_prefix, sizeof(c->boundary_prefix) - 1);
    c->xfers = xcalloc(c->max_in_flight, sizeof(*c->xfers));
    c->multi = curl_multi_init();
    enum mb_status st = c->multi != NULL ? MB_OK : mb_error_set(err, MB_DOWN, "cannot initialise libcurl");
    for (size_t i = 0; st == MB_OK && i < c->max_in_flight; i++) {
        c->xfers[i].curl = curl_easy_init();
        if (c->xfers[i].curl == NULL)
            st = mb_error_set(err, MB_DOWN, "cannot initialise libcurl");
        else if (!setup_transfer(&c->xfers[i], s))
            st = mb_error_set(err, MB_CONFIG, "this libcurl cannot use a CA file (%s)", s->ca_file);
    }
    if (st != MB_OK) {
        http_client_destroy(&c);
        return st;
    }
    /* keep every connection of a batch open for the next one */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->max_in_flight);
    *client_r = c;
    return MB_OK;
}

void http_client_destroy(struct http_client **clientp)
{
    struct http_client *c = *clientp;
    if (c == NULL)
        return;
    curl_multi_cleanup(c->multi); /* no handle is left in it between calls */
    for (size_t i = 0; i < c->max_in_flight; i++) {
        curl_easy_cleanup(c->xfers[i].curl);
        buf_free(&c->xfers[i].body);
    }
    free(c->xfers);
    free(c);
    *clientp = NULL;
}

unsigned long http_client_connections(const struct http_client *client)
{
    return client->connections;
}

void http_response_init(struct http_response *resp)
{
    resp->status = 0;
    buf_init(&resp->body, 0);
    resp->headers = NULL;
    resp->header_count = 0;
    resp->retry_after_ms = -1;
    resp->unanswered = false;
}

void http_response_clear(struct http_response *resp)
{
    buf_free(&resp->body);
    for (size_t i = 0; i < resp->header_count; i++)
        free(resp->headers[i]);
    free(resp->headers);
    http_response_init(resp);
}

const char *http_response_header(const struct http_response *resp, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < resp->header_count; i++) {
        const char *line = resp->headers[i];
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

enum mb_status http_classify_status(long status)
{
    if (status >= 200 && status <= 299)
        return MB_OK;
    if (status == 401 || status == 403)
        return MB_DOWN;
    if (status == 408 || status == 429 || (status >= 500 && status <= 599))
        return MB_TEMP;
    if (status >= 300 && status <= 499)
        return MB_PERM;
    return MB_TEMP; /* 1xx as final answer, garbage: no usable answer */
}

long long http_parse_retry_after(const char *value, long long now_s)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        errno = 0;
        char *end;
        long long s = strtoll(value, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (errno != 0 || *end != '\0' || s > LLONG_MAX / 1000)
            return -1;
        return s * 1000;
    }
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t)-1)
        return -1;
    long long delta = (long long)when - now_s;
    return delta > 0 ? delta * 1000 : 0;
}

/* append_clean - S without CR, LF and (when STRIP_QUOTE) '"': a value
 * that cannot end its header line or its quoted string */
static bool append_clean(struct buf *out, const char *s, bool strip_quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\r' || *s == '\n' || (strip_quote && *s == '"'))
            continue;
        if (!buf_append(out, s, 1))
            return false;
    }
    return true;
}

/* append_part_headers - the header lines of one form part, each ended by EOL */
static bool append_part_headers(struct buf *out, const struct http_part *p, const char *eol)
{
    bool ok = buf_append_str(out, "Content-Disposition: form-data; name=\"") &&
              append_clean(out, p->name, true) && buf_append_str(out, "\"");
    if (p->filename != NULL)
        ok = ok && buf_append_str(out, "; filename=\"") && append_clean(out, p->filename, true) &&
             buf_append_str(out, "\"");
    ok = ok && buf_append_str(out, eol);
    if (p->content_type != NULL)
        ok = ok && buf_append_str(out, "Content-Type: ") &&
             append_clean(out, p->content_type, false) && buf_append_str(out, eol);
    return ok;
}

bool http_multipart_encode(const struct http_part *parts, size_t count, const char *boundary,
                           struct buf *out)
{
    bool ok = true;
    for (size_t i = 0; ok && i < count; i++)
        ok = buf_append_str(out, "--") && buf_append_str(out, boundary) &&
             buf_append_str(out, "\r\n") && append_part_headers(out, &parts[i], "\r\n") &&
             buf_append_str(out, "\r\n") && buf_append(out, parts[i].data, parts[i].len) &&
             buf_append_str(out, "\r\n");
    return ok && buf_append_str(out, "--") && buf_append_str(out, boundary) &&
           buf_append_str(out, "--\r\n");
}

/* new_boundary - 32 hex digits that occur in no part's data: C's random
 * prefix and its count of boundaries. Checking the data is what makes a
 * boundary safe, so it need not be unpredictable for each request (a
 * getrandom call each was measurable); the random prefix keeps it unlike
 * anything a mail could hold by chance. */
static void new_boundary(struct http_client *c, const struct http_part *parts, size_t count,
                         char out[HTTP_BOUNDARY_LEN + 1])
{
    for (;;) {
        size_t half = HTTP_BOUNDARY_LEN / 2;
        uint64_t n = ++c->boundaries;
        memcpy(out, c->boundary_prefix, half);
        for (size_t i = 0; i < half; i++)
            out[half + i] = hex_digits[(n >> (4 * (half - 1 - i))) & 15];
        out[HTTP_BOUNDARY_LEN] = '\0';
        bool clash = false;
        for (size_t i = 0; i < count && !clash; i++)
            clash = memmem(parts[i].data, parts[i].len, out, HTTP_BOUNDARY_LEN) != NULL;
        if (!clash)
            return;
    }
}

/* is_text_type - a content type whose bytes a dry run may print */
static bool is_text_type(const char *type)
{
    if (type == NULL)
        return false;
    size_t n = strcspn(type, "; ");
    static const char *const text[] = {"application/json", "application/xml",
                                       "application/x-www-form-urlencoded"};
    if (strncasecmp(type, "text/", 5) == 0)
        return true;
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
        if (n == strlen(text[i]) && strncasecmp(type, text[i], n) == 0)
            return true;
    return n > 5 && (strncasecmp(type + n - 5, "+json", 5) == 0 ||
                     strncasecmp(type + n - 4, "+xml", 4) == 0);
}

/* print_content - DATA verbatim when TYPE is text, else one summary line */
static void print_content(FILE *f, const void *data, size_t len, const char *type)
{
    if (is_text_type(type)) {
        fwrite(data, 1, len, f);
        fputc('\n', f);
    } else {
        fprintf(f, "[%zu bytes of %s]\n", len, type ? type : "unknown type");
    }
}

/* write_dry_run - print REQ as it would be sent (secrets redacted, binary summarised) */
static enum mb_status write_dry_run(FILE *f, const struct http_request *req,
                                    const char *content_type, const char *boundary,
                                    struct mb_error *err)
{
    fprintf(f, "%s %s\n", req->method, req->url);
    for (size_t i = 0; i < req->header_count; i++)
        fprintf(f, "%s: %s\n", req->headers[i].name,
                req->headers[i].secret ? "<redacted>" : req->headers[i].value);
    if (content_type != NULL)
        fprintf(f, "Content-Type: %s\n", content_type);
    fputc('\n', f);
    if (req->parts != NULL) {
        struct buf head;
        buf_init(&head, 0);
        for (size_t i = 0; i < req->part_count; i++) {
            const struct http_part *p = &req->parts[i];
            buf_reset(&head);
            append_part_headers(&head, p, "\n");
            fprintf(f, "--%s\n%s\n", boundary, head.data);
            print_content(f, p->data, p->len, p->content_type);
        }
        buf_free(&head);
        fprintf(f, "--%s--\n", boundary);
    } else if (req->body != NULL) {
        print_content(f, req->body, req->body_len, content_type);
    }
    fputc('\n', f);
    if (fflush(f) != 0 || ferror(f))
        return mb_error_set(err, MB_DOWN, "cannot write the dry run: %s", strerror(errno));
    return MB_OK;
}

/* url_part - one component of URL (owned by the caller), or NULL */
static char *url_part(const char *url, CURLUPart what, unsigned flags)
{
    CURLU *u = curl_url();
    char *part = NULL, *copy = NULL;
    if (u == NULL)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, what, &part, flags) == CURLUE_OK) {
        copy = xstrdup(part);
        curl_free(part);
    }
    curl_url_cleanup(u);
    return copy;
}

bool http_same_origin(const char *origin, const char *url)
{
    static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
    bool same = true;
    for (size_t i = 0; same && i < sizeof(parts) / sizeof(parts[0]); i++) {
        char *a = url_part(origin, parts[i], CURLU_DEFAULT_PORT);
        char *b = url_part(url, parts[i], CURLU_DEFAULT_PORT);
        same = a != NULL && b != NULL && strcasecmp(a, b) == 0;
        free(a);
        free(b);
    }
    return same;
}

/* replace_all - S with every occurrence of NEEDLE replaced by WITH (owned) */
static char *replace_all(const char *s, const char *needle, const char *with)
{
    struct buf out;
    buf_init(&out, 0);
    size_t n = strlen(needle);
    const char *hit;
    while ((hit = strstr(s, needle)) != NULL) {
        buf_append(&out, s, (size_t)(hit - s));
        buf_append_str(&out, with);
        s = hit + n;
    }
    buf_append_str(&out, s);
    return buf_steal(&out);
}

char *http_response_excerpt(const struct http_response *resp, const struct http_request *req,
                            size_t max)
{
    /* Redact before cutting, so no prefix of a secret survives at the cut. */
    size_t longest = 0;
    for (size_t i = 0; req != NULL && i < req->header_count; i++)
        if (req->headers[i].secret && strlen(req->headers[i].value) > longest)
            longest = strlen(req->headers[i].value);
    size_t len = resp->body.len;
    size_t take =
        len < max + longest + 1 ? len : max + longest + 1; /* +1: see the byte after the cut */
    char *text = xmalloc(take + 1);
    for (size_t i = 0; i < take; i++) {
        unsigned char ch = (unsigned char)resp->body.data[i];
        text[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    text[take] = '\0';
    for (size_t i = 0; req != NULL && i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->secret && h->value[0] != '\0') {
            char *redacted = replace_all(text, h->value, "<redacted>");
            free(text);
            text = redacted;
        }
    }
    size_t n = strlen(text);
    bool cut = n > max || take < len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--; /* do not split a UTF-8 sequence */
    }
    while (n > 0 && text[n - 1] == ' ')
        n--;
    text[n] = '\0';
    if (cut) {
        char *more = xasprintf("%s...", text);
        free(text);
        text = more;
    }
    return text;
}

/* describe_target - "METHOD /path" of REQ for messages (no query: it may carry credentials) */
static char *describe_target(const struct http_request *req)
{
    char *path = url_part(req->url, CURLUPART_PATH, 0);
    char *d = xasprintf("%s %s", req->method, path ? path : "(bad URL)");
    free(path);
    return d;
}

/* classify_transport - the outcome of a transfer libcurl could not complete */
static enum mb_status classify_transport(const struct http_client *c, const struct http_transfer *t,
                                         CURLcode rc, const struct http_request *req,
                                         struct mb_error *err)
{
    char *target = describe_target(req);
    const char *why = t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(rc);
    char *host = url_part(req->url, CURLUPART_HOST, 0);
    enum mb_status st;
    switch (rc) {
    case CURLE_WRITE_ERROR:
        if (t->too_large)
            st = mb_error_set(err, MB_PERM, "response larger than %zu bytes from %s",
                              c->max_response, target);
        else if (t->too_many_headers)
            st = mb_error_set(err, MB_PERM, "response with more than %d header lines from %s",
                              HTTP_MAX_HEADERS, target);
        else
            st = mb_error_set(err, MB_TEMP, "%s: %s", target, why);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
        st = mb_error_set(err, MB_DOWN, "TLS certificate verification failed for %s: %s",
                          host ? host : "?", why);
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        st = mb_error_set(err, MB_DOWN, "TLS handshake with %s failed: %s", host ? host : "?", why);
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        st = mb_error_set(err, MB_DOWN, "cannot use URL for %s: %s", target, why);
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        /* on_prereq refused a second attempt (see http_send_many): the first
         * one's connection closed without an answer. No other callback
         * aborts this way. */
        st = mb_error_set(err, MB_TEMP, "%s: connection closed before an answer (not re-sent)",
                          target);
        break;
    default:
        /* Timeouts, refused or reset connections, DNS, empty or partial
         * answers - and anything unknown, which is safer retried than dropped. */
        st = mb_error_set(err, MB_TEMP, "%s: %s", target, why);
        break;
    }
    free(host);
    free(target);
    return st;
}

/* classify_answer - the outcome of a complete HTTP answer */
static enum mb_status classify_answer(const struct http_response *resp,
                                      const struct http_request *req, struct mb_error *err)
{
    enum mb_status st = http_classify_status(resp->status);
    if (st == MB_OK)
        return MB_OK;
    char *target = describe_target(req);
    if (resp->status >= 300 && resp->status <= 399) {
        const char *location = http_response_header(resp, "Location");
        mb_error_set(err, st, "HTTP %ld from %s: vendor answered a redirect to %.200s",
                     resp->status, target, location ? location : "(no Location)");
    } else {
        char *excerpt = http_response_excerpt(resp, req, HTTP_EXCERPT_MAX);
        mb_error_set(err, st, "HTTP %ld from %s: %s", resp->status, target,
                     excerpt[0] ? excerpt : "(empty body)");
        free(excerpt);
    }
    free(target);
    return st;
}

/* build_headers - REQ's headers plus Content-Type and an empty Expect as a
 * libcurl list in *LIST_R */
static enum mb_status build_headers(const struct http_request *req, const char *content_type,
                                    struct curl_slist **list_r, struct mb_error *err)
{
    struct curl_slist *list = NULL;
    enum mb_status st = MB_OK;
    struct buf line; /* one header line at a time (curl_slist_append copies it) */
    buf_init(&line, 0);
    for (size_t i = 0; st == MB_OK && i <= req->header_count + 1; i++) {
        buf_reset(&line);
        if (i < req->header_count) {
            const struct http_header *h = &req->headers[i];
            if (strpbrk(h->name, "\r\n:") != NULL || strpbrk(h->value, "\r\n") != NULL) {
                /* Never echo the value: it may be a secret. */
                st =
                    mb_error_set(err, MB_PERM, "header %.60s holds a line break or colon", h->name);
                break;
            }
            /* "Name;" is libcurl's way to send a header with an empty value */
            buf_append_str(&line, h->name);
            buf_append_str(&line, h->value[0] ? ": " : ";");
            buf_append_str(&line, h->value);
        } else if (i == req->header_count) {
            if (content_type == NULL)
                continue;
            buf_append_str(&line, "Content-Type: ");
            buf_append_str(&line, content_type);
        } else {
            buf_append_str(&line, "Expect:"); /* no 100-continue round trip */
        }
        struct curl_slist *next = curl_slist_append(list, line.data);
        if (next == NULL)
            st = mb_error_set(err, MB_TEMP, "out of memory building an HTTP request");
        else
            list = next;
    }
    buf_free(&line);
    if (st != MB_OK) {
        curl_slist_free_all(list);
        list = NULL;
    }
    *list_r = list;
    return st;
}

/* set_method - METHOD with or without BODY on the reused handle (every
 * option a previous request may have set is set again) */
static void set_method(CURL *curl, const char *method, const char *body, size_t body_len)
{
    curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (body != NULL) {
        /* POSTFIELDS, not COPYPOSTFIELDS: the body outlives the transfer */
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
}

/* compose - REQ's body (multipart encoded into T->body) and Content-Type
 * into T; *BODY_R and *LEN_R point at the bytes to send (NULL: none) */
static void compose(struct http_client *c, struct http_transfer *t, const struct http_request *req,
                    char boundary[HTTP_BOUNDARY_LEN + 1], const char **body_r, size_t *len_r)
{
    assert(req->parts == NULL || req->body == NULL);
    buf_reset(&t->body);
    t->content_type = NULL;
    *body_r = req->body;
    *len_r = req->body_len;
    boundary[0] = '\0';
    if (req->parts != NULL) {
        new_boundary(c, req->parts, req->part_count, boundary);
        http_multipart_encode(req->parts, req->part_count, boundary, &t->body);
        t->content_type = xasprintf("multipart/form-data; boundary=%s", boundary);
        *body_r = t->body.data;
        *len_r = t->body.len;
    } else if (req->content_type != NULL) {
        t->content_type = xstrdup(req->content_type);
    }
}

/* release - what T held for its last request; the encoded body's memory
 * is kept for the next one unless it was large */
static void release(struct http_transfer *t)
{
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    free(t->content_type);
    t->content_type = NULL;
    if (t->body.cap > (1u << 20))
        buf_free(&t->body);
    else
        buf_reset(&t->body);
    t->req = NULL;
    t->resp = NULL;
}

/* dry_run - print REQ instead of sending it */
static enum mb_status dry_run(struct http_client *c, const struct http_request *req,
                              struct http_response *resp, struct mb_error *err)
{
    struct http_transfer *t = &c->xfers[0];
    char boundary[HTTP_BOUNDARY_LEN + 1];
    const char *body;
    size_t len;
    http_response_clear(resp);
    compose(c, t, req, boundary, &body, &len);
    enum mb_status st = write_dry_run(c->dry_run, req, t->content_type, boundary, err);
    release(t);
    return st;
}

/* start - put REQ (number INDEX of its batch) on the idle transfer T and
 * hand it to the multi handle; MB_OK when it is in flight, else its outcome */
static enum mb_status start(struct http_client *c, struct http_transfer *t,
                            const struct http_request *req, struct http_response *resp,
                            size_t index, struct mb_error *err)
{
    http_response_clear(resp);
    resp->body.limit = c->max_response;
    char boundary[HTTP_BOUNDARY_LEN + 1];
    const char *body;
    size_t body_len;
    compose(c, t, req, boundary, &body, &body_len);
    enum mb_status st = build_headers(req, t->content_type, &t->headers, err);
    if (st != MB_OK) {
        release(t);
        return st;
    }
    if (body == NULL && strcmp(req->method, "POST") == 0) {
        body = ""; /* a POST without a body still sends Content-Length: 0 */
        body_len = 0;
    }
    t->req = req;
    t->resp = resp;
    t->index = index;
    t->too_large = t->too_many_headers = false;
    t->has_body = body != NULL;
    t->attempts = 0;
    t->errbuf[0] = '\0';
    curl_easy_setopt(t->curl, CURLOPT_URL, req->url);
    curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, t->headers);
    set_method(t->curl, req->method, body, body_len);
    CURLMcode mc = curl_multi_add_handle(c->multi, t->curl);
    if (mc != CURLM_OK) {
        release(t);
        return mb_error_set(err, MB_TEMP, "cannot start an HTTP request: %s",
                            curl_multi_strerror(mc));
    }
    return MB_OK;
}

/* finish - the outcome of T's request, which libcurl ended with RC; T is
 * idle again afterwards */
static enum mb_status finish(struct http_client *c, struct http_transfer *t, CURLcode rc,
                             struct mb_error *err)
{
    const struct http_request *req = t->req;
    struct http_response *resp = t->resp;
    curl_multi_remove_handle(c->multi, t->curl);
    /* The request went to a connection: the peer may have its body even
     * though it never answered. */
    bool body_left = t->has_body && t->attempts > 0;
    long connects = 0;
    curl_easy_getinfo(t->curl, CURLINFO_NUM_CONNECTS, &connects);
    c->connections += (unsigned long)connects;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    /* nothing borrowed from this request stays in the handle */
    curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, (char *)NULL);

    enum mb_status st;
    if (rc != CURLE_OK) {
        st = classify_transport(c, t, rc, req, err);
        resp->unanswered = st == MB_TEMP && body_left && resp->status == 0;
    } else {
        const char *retry_after = http_response_header(resp, "Retry-After");
        if (retry_after != NULL)
            resp->retry_after_ms = http_parse_retry_after(retry_after, (long long)time(NULL));
        st = classify_answer(resp, req, err);
    }
    release(t);
    return st;
}

/* idle_transfer - a transfer of C with no request, or NULL */
static struct http_transfer *idle_transfer(struct http_client *c)
{
    for (size_t i = 0; i < c->max_in_flight; i++)
        if (c->xfers[i].req == NULL)
            return &c->xfers[i];
    return NULL;
}

/* Why a request with a body is sent at most once: when a reused keep-alive
 * connection dies before any answer byte, libcurl silently re-sends the
 * request on a new connection. For a vendor POST that is a second ticket
 * whenever the first one was processed and only its answer was lost. So
 * on_prereq, which libcurl calls right before each attempt goes out,
 * refuses every attempt after the first; libcurl stops with
 * CURLE_ABORTED_BY_CALLBACK and we report MB_TEMP; the pipeline then asks
 * the vendor (find_by_key) before it posts again. Requests without a body
 * (GET) keep libcurl's harmless retry. Each easy handle counts its own
 * attempts, so this holds for every request of a batch.
 *
 * The body goes in as POSTFIELDS rather than through a read callback (a
 * read callback without a seek callback would also stop the re-send)
 * because libcurl then writes the request line, the headers and a body up
 * to 64 KB with one send(): one syscall and one trip through the TCP stack
 * fewer per message (measured: about 10 us of system time per post on
 * loopback).
 *
 * A batch keeps up to max_in_flight requests going, each on its own easy
 * handle (and so its own connection); a request starts as soon as one
 * finishes. A failure of the multi handle itself ends every request then
 * in flight as a transport error (MB_TEMP, unanswered when its body left). */
void http_send_many(struct http_client *c, const struct http_request *reqs, size_t n,
                    struct http_response *resps, enum mb_status *statuses, struct mb_error *errs)
{
    if (c->dry_run != NULL) {
        for (size_t i = 0; i < n; i++)
            statuses[i] = dry_run(c, &reqs[i], &resps[i], &errs[i]);
        return;
    }
    size_t next = 0, active = 0;
    struct http_transfer *t;
    while (next < n || active > 0) {
        while (next < n && (t = idle_transfer(c)) != NULL) {
            size_t i = next++;
            statuses[i] = start(c, t, &reqs[i], &resps[i], i, &errs[i]);
            active += t->req != NULL;
        }
        if (active == 0)
            continue;
        int running = 0, queued = 0;
        bool ended = false;
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        while (mc == CURLM_OK && (m = curl_multi_info_read(c->multi, &queued)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            t = (struct http_transfer *)priv;
            statuses[t->index] = finish(c, t, m->data.result, &errs[t->index]);
            active--;
            ended = true;
        }
        if (mc == CURLM_OK && !ended && running > 0)
            mc = curl_multi_poll(c->multi, NULL, 0, HTTP_POLL_MS, NULL);
        for (size_t k = 0; mc != CURLM_OK && k < c->max_in_flight; k++) {
            t = &c->xfers[k];
            if (t->req == NULL)
                continue;
            snprintf(t->errbuf, sizeof(t->errbuf), "%s", curl_multi_strerror(mc));
            statuses[t->index] = finish(c, t, CURLE_SEND_ERROR, &errs[t->index]);
            active--;
        }
    }
}

enum mb_status http_send(struct http_client *c, const struct http_request *req,
                         struct http_response *resp, struct mb_error *err)
{
    enum mb_status st;
    http_send_many(c, req, 1, resp, &st, err);
    return st;
}
