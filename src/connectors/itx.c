/* itx - the ITX (itxems) connector: each mail is one multipart POST.
 *
 * A new case and a follow-up go to the same endpoint (createCase or
 * caseEactId); files travel in the same request and inline images are
 * referenced from the body as files[N]. A post whose answer was lost is
 * found again through message/search and a key marker in the body.
 * Contract: shared/seeds/000 and section 1 of shared/VENDORS.md. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>

#include "connectors/connector.h"
#include "connectors/json_out.h"
#include "connectors/vendors.h"
#include "http/http.h"
#include "lib/buf.h"
#include "lib/xalloc.h"

#define ITX_MESSAGE_PATH "/rest/itxems/message"
#define ITX_SEARCH_PATH "/rest/itxems/message/search"
#define ITX_DIRECTION_IN 2  /* "2 - IN, or from customer" */
#define ITX_SEARCH_PAGE 100 /* messages per search request */
#define ITX_ANSWER_MAX 500  /* bytes of a vendor error kept in the result */
#define ITX_AUTH_HEADERS 4

/* The keys of [connector NAME] with type = itx; this table is also the
 * documentation of the sample config and --help. */
static const struct conf_key itx_keys[] = {
    CONNECTOR_KEY_TYPE,
    {"url", CONF_STRING, NULL, 0, 0, true,
     "ITX tenant endpoint, such as https://app06.itxnorge.no; messages are posted to "
     "<url>/rest/itxems/message.", "https://itx.example"},
    {"tokenv2", CONF_SECRET, NULL, 0, 0, true,
     "ITX API token (tokenv2), from the ITX user profile, tab Advanced.", "file:/etc/mailbridge/itx.token"},
    {"rcntrl", CONF_INT, NULL, 0, LLONG_MAX, true,
     "User id of the ITX user the token belongs to (rcntrl), from the same tab.", "1"},
    {"ccntrl", CONF_INT, NULL, 0, LLONG_MAX, true,
     "ITX corporation group (ccntrl), from the same tab.", "1"},
    {"customer", CONF_LIST, NULL, 0, 0, false,
     "Maps senders to ITX customers: '<address or @domain> <eeexId>', such as "
     "'alice@example.com 1001' or '@example.org 2002'; case-insensitive, an exact address wins "
     "over its domain.", "alice@example.com 1001"},
    {"default_customer", CONF_INT, NULL, 1, LLONG_MAX, false,
     "Customer eeexId for senders no customer line matches; without it their mail is quarantined.",
     "3378825"},
    {"case_queue", CONF_INT, NULL, 1, LLONG_MAX, false,
     "Queue (caseQueueUcquId) of new cases; unset = ITX default.", NULL},
    {"case_category", CONF_INT, NULL, 1, LLONG_MAX, false,
     "Category (caseCategoryCtnoId) of new cases; unset = ITX default.", NULL},
    {"case_status", CONF_INT, NULL, 1, LLONG_MAX, false,
     "Status (caseStatusEmstId) of new cases; unset = ITX default.", NULL},
    {"connect_timeout", CONF_DURATION, "10s", 100, 600000, false,
     "Time allowed to connect to ITX.", NULL},
    {"timeout", CONF_DURATION, "60s", 100, 3600000, false,
     "Time allowed for one whole request, upload of the files included.", NULL},
    {"tls_verify", CONF_BOOL, "yes", 0, 0, false,
     "Verify the ITX certificate and host name; turn off only for a test server.", NULL},
    {"ca_file", CONF_STRING, NULL, 0, 0, false,
     "PEM file of CA certificates to trust instead of the system store.", "/etc/ssl/certs/itx-ca.pem"},
    {"max_response", CONF_SIZE, "16M", 1024, 1LL << 30, false, "Largest ITX answer accepted.", NULL},
    {"max_in_flight", CONF_INT, "4", 1, 32, false,
     "How many posts of one batch of mail may be on their way to ITX at once, each on its own "
     "connection; 1 posts one message after the other.", NULL},
    {"reconcile_window", CONF_INT, "500", 1, 1000000, false,
     "How many of the customer's most recent messages are searched for a post whose answer was "
     "lost.", NULL},
    CONF_KEY_END,
};

struct itx_customer {
    char *pattern; /* owned: "alice@example.com" or "@example.org" */
    long long eeex_id;
};

struct itx {
    struct connector base;
    struct http_client *http; /* owned */
    char *message_url;        /* owned: <url>/rest/itxems/message */
    char *search_url;         /* owned: <url>/rest/itxems/message/search */
    char *token;              /* owned: the tokenv2 secret, never logged */
    char rcntrl[24];
    char ccntrl[24];
    struct http_header auth[ITX_AUTH_HEADERS]; /* values borrowed from the fields above */
    struct itx_customer *customers;            /* owned */
    size_t customer_count;
    long long default_customer; /* 0 = none */
    long long case_queue;       /* 0 = not sent */
    long long case_category;    /* 0 = not sent */
    long long case_status;      /* 0 = not sent */
    long long reconcile_window;
};

/* itx_of - the ITX connector behind CONN */
static struct itx *itx_of(struct connector *conn)
{
    return (struct itx *)conn;
}

/* parse_id - a vendor id written as decimal digits only */
static bool parse_id(const char *text, long long *value_r)
{
    if (text == NULL || *text == '\0' || strspn(text, "0123456789") != strlen(text) ||
        strlen(text) > 18)
        return false;
    *value_r = strtoll(text, NULL, 10);
    return true;
}

/* parse_customer - one "<address or @domain> <eeexId>" line */
static bool parse_customer(const char *line, struct itx_customer *c)
{
    size_t plen = strcspn(line, " \t");
    const char *id = line + plen + strspn(line + plen, " \t");
    size_t idlen = strcspn(id, " \t");
    if (plen == 0 || id[idlen + strspn(id + idlen, " \t")] != '\0')
        return false;
    char *pattern = xstrndup(line, plen);
    char *idtext = xstrndup(id, idlen);
    const char *at = strrchr(pattern, '@');
    bool ok = at != NULL && at[1] != '\0' && (at != pattern || strchr(pattern + 1, '@') == NULL) &&
              parse_id(idtext, &c->eeex_id) && c->eeex_id > 0;
    free(idtext);
    if (!ok) {
        free(pattern);
        return false;
    }
    c->pattern = pattern;
    return true;
}

/* load_customers - the customer lines, checked: malformed or repeated ones are MB_CONFIG */
static enum mb_status load_customers(struct itx *itx, const struct conf_section *sec,
                                     struct mb_error *err)
{
    size_t n = conf_list(sec, "customer");
    itx->customers = xcalloc(n, sizeof(*itx->customers));
    for (size_t i = 0; i < n; i++) {
        const char *line = conf_list_item(sec, "customer", i);
        struct itx_customer *c = &itx->customers[itx->customer_count];
        if (!parse_customer(line, c))
            return mb_error_set(err, MB_CONFIG,
                                "%s: key 'customer': expected '<address or @domain> <eeexId>' "
                                "(such as 'alice@example.com 1001'), got '%.80s'",
                                conf_where(sec, "customer"), line);
        for (size_t j = 0; j < itx->customer_count; j++)
            if (strcasecmp(itx->customers[j].pattern, c->pattern) == 0) {
                mb_error_set(err, MB_CONFIG, "%s: key 'customer': %.80s is mapped twice",
                             conf_where(sec, "customer"), c->pattern);
                free(c->pattern);
                return MB_CONFIG;
            }
        itx->customer_count++;
    }
    return MB_OK;
}

/* optional_int - the value of an optional INT key, 0 when unset */
static long long optional_int(const struct conf_section *sec, const char *name)
{
    return conf_str(sec, name) != NULL ? conf_int(sec, name) : 0;
}

/* configure - everything create needs from the bound section */
static enum mb_status configure(struct itx *itx, const struct conf_section *sec,
                                const struct connector_env *env, struct mb_error *err)
{
    const char *url = conf_str(sec, "url");
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    bool scheme = strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0;
    if (!scheme || len <= (size_t)(url[4] == ':' ? 7 : 8) || strpbrk(url, "?# \t") != NULL)
        return mb_error_set(err, MB_CONFIG,
                            "%s: key 'url': expected https://host[/prefix], got '%.80s'",
                            conf_where(sec, "url"), url);
    itx->message_url = xasprintf("%.*s%s", (int)len, url, ITX_MESSAGE_PATH);
    itx->search_url = xasprintf("%.*s%s", (int)len, url, ITX_SEARCH_PATH);

    enum mb_status st = conf_secret(sec, "tokenv2", &itx->token, err);
    if (st != MB_OK)
        return st;
    if (itx->token == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: key 'tokenv2' is empty",
                            conf_where(sec, "tokenv2"));
    snprintf(itx->rcntrl, sizeof(itx->rcntrl), "%lld", conf_int(sec, "rcntrl"));
    snprintf(itx->ccntrl, sizeof(itx->ccntrl), "%lld", conf_int(sec, "ccntrl"));
    itx->auth[0] = (struct http_header){"tokenv2", itx->token, true};
    itx->auth[1] = (struct http_header){"rcntrl", itx->rcntrl, false};
    itx->auth[2] = (struct http_header){"ccntrl", itx->ccntrl, false};
    itx->auth[3] = (struct http_header){"Accept", "application/json", false};

    st = load_customers(itx, sec, err);
    if (st != MB_OK)
        return st;
    itx->default_customer = optional_int(sec, "default_customer");
    itx->case_queue = optional_int(sec, "case_queue");
    itx->case_category = optional_int(sec, "case_category");
    itx->case_status = optional_int(sec, "case_status");
    itx->reconcile_window = conf_int(sec, "reconcile_window");

    const char *ca_file = conf_str(sec, "ca_file");
    if (ca_file != NULL && access(ca_file, R_OK) != 0)
        return mb_error_set(err, MB_CONFIG, "%s: key 'ca_file': cannot read %.200s: %s",
                            conf_where(sec, "ca_file"), ca_file, strerror(errno));
    struct http_settings hs;
    http_settings_default(&hs);
    hs.connect_timeout_ms = (long)conf_int(sec, "connect_timeout");
    hs.timeout_ms = (long)conf_int(sec, "timeout");
    hs.tls_verify = conf_bool(sec, "tls_verify");
    hs.ca_file = ca_file;
    hs.max_response = (size_t)conf_int(sec, "max_response");
    hs.dry_run = env->dry_run;
    hs.max_in_flight = (size_t)conf_int(sec, "max_in_flight");
    struct mb_error why;
    st = http_client_create(&hs, &itx->http, &why);
    if (st != MB_OK)
        return mb_error_set(err, st, "%s: [connector %s]: %s", conf_section_where(sec),
                            conf_section_name(sec), why.text);
    return MB_OK;
}

/* itx_destroy - release everything create made (the token is wiped first) */
static void itx_destroy(struct connector *conn)
{
    struct itx *itx = itx_of(conn);
    http_client_destroy(&itx->http);
    free(itx->message_url);
    free(itx->search_url);
    if (itx->token != NULL)
        explicit_bzero(itx->token, strlen(itx->token));
    free(itx->token);
    for (size_t i = 0; i < itx->customer_count; i++)
        free(itx->customers[i].pattern);
    free(itx->customers);
    free(itx);
}

/* itx_create - a connector from a section bound to itx_keys */
static enum mb_status itx_create(const struct conf_section *sec, const struct connector_env *env,
                                 struct connector **conn_r, struct mb_error *err)
{
    struct itx *itx = xcalloc(1, sizeof(*itx));
    enum mb_status st = configure(itx, sec, env, err);
    if (st != MB_OK) {
        itx_destroy(&itx->base);
        return st;
    }
    *conn_r = &itx->base;
    return MB_OK;
}

/* customer_for - the eeexId for sender ADDRESS: exact line, domain line,
 * default_customer; 0 when none applies */
static long long customer_for(const struct itx *itx, const char *address)
{
    long long by_domain = 0;
    const char *at = address ? strrchr(address, '@') : NULL;
    for (size_t i = 0; address != NULL && i < itx->customer_count; i++) {
        const struct itx_customer *c = &itx->customers[i];
        if (strcasecmp(c->pattern, address) == 0)
            return c->eeex_id;
        if (at != NULL && c->pattern[0] == '@' && strcasecmp(c->pattern, at) == 0)
            by_domain = c->eeex_id;
    }
    return by_domain ? by_domain : itx->default_customer;
}

/* key_marker - the comment that identifies KEY's post in a stored body:
 * FNV-1a 64 of the key in hex (it identifies; it protects nothing) */
static void key_marker(const char *key, char out[64])
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    snprintf(out, 64, "<!-- mailbridge-key:%016" PRIx64 " -->", h);
}

/* The reference map handed to env->rewrite_html_refs. */
struct ref_map {
    const struct mb_mail *mail; /* borrowed */
    char (*names)[32];          /* owned: "files[N]" for attachment N */
};

/* is_image - only image types may be embedded as files[N] (seed 000) */
static bool is_image(const struct mb_attachment *a)
{
    return a->content_type != NULL && strncasecmp(a->content_type, "image/", 6) == 0;
}

/* hex_value - the value of hex digit C, or -1 */
static int hex_value(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* percent_decode - S with %XX escapes decoded (cid: URLs are URL-encoded, RFC 2392) */
static char *percent_decode(const char *s)
{
    char *out = xmalloc(strlen(s) + 1), *o = out;
    for (; *s != '\0'; s++) {
        int hi = s[0] == '%' ? hex_value(s[1]) : -1;
        int lo = hi >= 0 ? hex_value(s[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *o++ = (char)(hi * 16 + lo);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

/* map_ref - files[N] for a cid: or Content-Location reference to image
 * attachment N; NULL (keep) for anything else */
static const char *map_ref(void *ctx, const char *ref)
{
    struct ref_map *m = ctx;
    const struct mb_mail *mail = m->mail;
    const struct mb_attachment *a = NULL;
    if (strncasecmp(ref, "cid:", 4) == 0) {
        a = mail_find_attachment_by_cid(mail, ref + 4);
        if (a == NULL && strchr(ref, '%') != NULL) {
            char *cid = percent_decode(ref + 4);
            a = mail_find_attachment_by_cid(mail, cid);
            free(cid);
        }
    }
    for (size_t i = 0; a == NULL && i < mail->attachment_count; i++)
        if (mail->attachments[i].content_location != NULL && is_image(&mail->attachments[i]) &&
            strcmp(mail->attachments[i].content_location, ref) == 0)
            a = &mail->attachments[i];
    if (a == NULL || !is_image(a))
        return NULL;
    return m->names[a - mail->attachments];
}

/* refers_to_parts - cheap check: can HTML reference any attachment at all? */
static bool refers_to_parts(const struct mb_mail *mail, const char *html)
{
    if (strstr(html, "cid:") != NULL || strstr(html, "CID:") != NULL)
        return true;
    for (size_t i = 0; i < mail->attachment_count; i++)
        if (mail->attachments[i].content_location != NULL &&
            mail->attachments[i].content_location[0] &&
            strstr(html, mail->attachments[i].content_location) != NULL)
            return true;
    return false;
}

/* append_body - the mail's HTML with image references as files[N], plus
 * the key marker, escaped into OUT as the inside of a JSON string */
static void append_body(const struct connector_env *env, const struct ticket_request *req,
                        struct buf *out)
{
    const struct mb_mail *mail = req->mail;
    const char *html = mail->html ? mail->html : "";
    char *rewritten = NULL;
    if (env->rewrite_html_refs != NULL && mail->attachment_count > 0 &&
        refers_to_parts(mail, html)) {
        struct ref_map map = {mail, xcalloc(mail->attachment_count, sizeof(*map.names))};
        for (size_t i = 0; i < mail->attachment_count; i++)
            snprintf(map.names[i], sizeof(map.names[i]), "files[%zu]", i);
        rewritten = env->rewrite_html_refs(html, map_ref, &map);
        free(map.names);
    }
    char marker[64];
    key_marker(req->key, marker);
    json_out_escaped(out, rewritten ? rewritten : html);
    json_out_escaped(out, marker);
    free(rewritten);
}

/* add_id - ,"KEY":ID when the id is set (> 0) */
static void add_id(struct buf *out, const char *key, long long id)
{
    if (id > 0)
        buf_printf(out, ",\"%s\":%lld", key, id);
}

/* build_data - the `data` part: a new case when CASE_ID is 0, else a
 * message on that case, replying to REPLY_TO when it is known. Written
 * directly rather than as json-c objects: the body is most of every post,
 * and json-c took 7.5 us where this takes 3 for the bodies of
 * tests/bench's mailbox (the bytes are the same: test_itx compares them). */
static char *build_data(const struct itx *itx, const struct ticket_request *req, long long eeex_id,
                        long long case_id, long long reply_to)
{
    const char *subject = req->mail->subject;
    struct buf out;
    buf_init(&out, 0);
    buf_printf(&out, "{\"eeexId\":%lld,\"direction\":%d,\"subject\":\"", eeex_id, ITX_DIRECTION_IN);
    json_out_escaped(&out, subject && *subject ? subject : "(no subject)");
    buf_append_str(&out, "\",\"body\":\"");
    append_body(itx->base.env, req, &out);
    buf_printf(&out, "\",\"createCase\":%s", case_id == 0 ? "true" : "false");
    if (case_id == 0) {
        add_id(&out, "caseQueueUcquId", itx->case_queue);
        add_id(&out, "caseCategoryCtnoId", itx->case_category);
        add_id(&out, "caseStatusEmstId", itx->case_status);
    } else {
        add_id(&out, "caseEactId", case_id);
        add_id(&out, "replyToEactId", reply_to);
    }
    buf_append_str(&out, "}");
    return buf_steal(&out);
}

/* parse_answer - RESP's body as JSON, or NULL when it is not JSON */
static json_object *parse_answer(const struct http_response *resp)
{
    if (resp->body.len == 0 || resp->body.len > INT_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new();
    json_object *root = json_tokener_parse_ex(tok, resp->body.data, (int)resp->body.len);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(root);
        root = NULL;
    }
    json_tokener_free(tok);
    return root;
}

/* copy_id - *OUT = OBJ[KEY] as a decimal string when it is a JSON integer */
static void copy_id(json_object *obj, const char *key, char **out)
{
    json_object *v;
    if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_int)) {
        free(*out);
        *out = xasprintf("%" PRId64, json_object_get_int64(v));
    }
}

/* copy_ids - the case, message and conversation ids of an ITX message object */
static void copy_ids(json_object *msg, struct ticket_result *res)
{
    copy_id(msg, "caseEactId", &res->ticket_id);
    copy_id(msg, "eactId", &res->message_id);
    copy_id(msg, "conversationEactId", &res->conversation_id);
}

/* record_exchange - the HTTP facts of HREQ's answer RESP (sent with outcome ST) into RES */
static void record_exchange(const struct http_request *hreq, const struct http_response *resp,
                            enum mb_status st, struct ticket_result *res)
{
    res->http_status = resp->status;
    res->retry_after_ms = resp->retry_after_ms;
    res->unanswered = resp->unanswered;
    if (st != MB_OK && resp->body.len > 0) {
        free(res->vendor_answer);
        res->vendor_answer = http_response_excerpt(resp, hreq, ITX_ANSWER_MAX);
    }
}

/* exchange - send HREQ and record the HTTP facts in RES */
static enum mb_status exchange(struct itx *itx, const struct http_request *hreq,
                               struct http_response *resp, struct ticket_result *res,
                               struct mb_error *err)
{
    enum mb_status st = http_send(itx->http, hreq, resp, err);
    record_exchange(hreq, resp, st, res);
    return st;
}

/* One POST /rest/itxems/message being built, sent and read. */
struct itx_post {
    char *data;               /* owned: the data part (see build_data) */
    struct http_part *parts;  /* owned: data, then one `files` part per attachment */
    struct http_request hreq; /* borrows the fields above and the connector's */
    long long case_id;        /* 0: a new case */
};

/* build_post - the request for REQ into POST: a new case when CREATE, else
 * a message on case REQ->thread->ref.ticket_id, replying to its message id
 * when known (ids must be ITX integers). MB_PERM when it cannot be posted;
 * POST is then empty. Release with post_clear. */
static enum mb_status build_post(struct itx *itx, const struct ticket_request *req, bool create,
                                 struct itx_post *post, struct mb_error *err)
{
    memset(post, 0, sizeof(*post));
    const struct mb_mail *mail = req->mail;
    long long case_id = 0, reply_to = 0;
    if (!create) {
        const struct thread_ref *ref = &req->thread->ref;
        if (!parse_id(ref->ticket_id, &case_id) || case_id == 0)
            return mb_error_set(err, MB_PERM, "ITX case id '%.40s' is not a number (caseEactId)",
                                ref->ticket_id ? ref->ticket_id : "");
        if (ref->message_id != NULL && !parse_id(ref->message_id, &reply_to))
            return mb_error_set(err, MB_PERM, "ITX message id '%.40s' is not a number (eactId)",
                                ref->message_id);
    }
    long long eeex_id = customer_for(itx, mail->from.address);
    if (eeex_id == 0)
        return mb_error_set(err, MB_PERM,
                            "no ITX customer (eeexId) for sender %.200s: add a customer line or "
                            "default_customer",
                            mail->from.address ? mail->from.address : "(none)");
    post->case_id = case_id;
    post->data = build_data(itx, req, eeex_id, case_id, reply_to);

    /* Every attachment is one `files` part, in mail order: files[N] is attachment N. */
    size_t count = 1 + mail->attachment_count;
    post->parts = xcalloc(count, sizeof(*post->parts));
    post->parts[0] =
        (struct http_part){"data", NULL, "application/json", post->data, strlen(post->data)};
    for (size_t i = 0; i < mail->attachment_count; i++) {
        const struct mb_attachment *a = &mail->attachments[i];
        post->parts[i + 1] =
            (struct http_part){"files", a->filename, a->content_type, a->data, a->size};
    }
    post->hreq = (struct http_request){
        .method = "POST",
        .url = itx->message_url,
        .headers = itx->auth,
        .header_count = ITX_AUTH_HEADERS,
        .parts = post->parts,
        .part_count = count,
    };
    return MB_OK;
}

static void post_clear(struct itx_post *post)
{
    free(post->parts);
    free(post->data);
    memset(post, 0, sizeof(*post));
}

/* read_post - REQ's outcome from RESP, the answer to POST that was sent
 * with outcome ST: the HTTP facts and the vendor ids into RES */
static enum mb_status read_post(struct itx *itx, const struct ticket_request *req,
                                const struct itx_post *post, const struct http_response *resp,
                                enum mb_status st, struct ticket_result *res)
{
    record_exchange(&post->hreq, resp, st, res);
    if (st == MB_OK && resp->status != 0) { /* status 0: a dry run, no answer */
        json_object *root = parse_answer(resp);
        if (json_object_is_type(root, json_type_object))
            copy_ids(root, res);
        json_object_put(root);
        if (res->message_id == NULL)
            log_warning(
                itx->base.env->log,
                "connector=%s vendor=itx msg=%s warning=\"HTTP %ld without an integer eactId: "
                "posted, vendor ids unknown\"",
                itx->base.name, req->key, resp->status);
    }
    if (st == MB_OK && post->case_id != 0 && res->ticket_id == NULL)
        res->ticket_id = xstrdup(req->thread->ref.ticket_id);
    return st;
}

/* post_message - one POST /rest/itxems/message for REQ (see build_post) */
static enum mb_status post_message(struct itx *itx, const struct ticket_request *req, bool create,
                                   struct ticket_result *res, struct mb_error *err)
{
    struct itx_post post;
    enum mb_status st = build_post(itx, req, create, &post, err);
    if (st != MB_OK)
        return st;
    struct http_response resp;
    http_response_init(&resp);
    st = http_send(itx->http, &post.hreq, &resp, err);
    st = read_post(itx, req, &post, &resp, st, res);
    http_response_clear(&resp);
    post_clear(&post);
    return st;
}

/* itx_create_ticket - the mail as the first message of a new case */
static enum mb_status itx_create_ticket(struct connector *conn, const struct ticket_request *req,
                                        struct ticket_result *res, struct mb_error *err)
{
    return post_message(itx_of(conn), req, true, res, err);
}

/* itx_append - the mail onto case REQ->thread->ref.ticket_id */
static enum mb_status itx_append(struct connector *conn, const struct ticket_request *req,
                                 struct ticket_result *res, struct mb_error *err)
{
    return post_message(itx_of(conn), req, false, res, err);
}

/* itx_post_many - every request built first, then one http_send_many for
 * those that could be built (up to max_in_flight at once), then each
 * answer read as post_message reads it */
static void itx_post_many(struct connector *conn, const struct ticket_request *reqs, size_t n,
                          struct ticket_result *results, enum mb_status *statuses,
                          struct mb_error *errs)
{
    struct itx *itx = itx_of(conn);
    struct itx_post *posts = xcalloc(n ? n : 1, sizeof(*posts));
    struct http_request *hreqs = xcalloc(n ? n : 1, sizeof(*hreqs));
    struct http_response *resps = xcalloc(n ? n : 1, sizeof(*resps));
    enum mb_status *sent = xcalloc(n ? n : 1, sizeof(*sent));
    struct mb_error *herrs = xcalloc(n ? n : 1, sizeof(*herrs));
    size_t *which = xcalloc(n ? n : 1, sizeof(*which)); /* request of each HTTP request */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        bool create = reqs[i].thread->kind != THREAD_FOLLOWUP; /* as connector_post decides */
        statuses[i] = build_post(itx, &reqs[i], create, &posts[i], &errs[i]);
        if (statuses[i] == MB_OK) {
            hreqs[m] = posts[i].hreq;
            http_response_init(&resps[m]);
            which[m++] = i;
        }
    }
    http_send_many(itx->http, hreqs, m, resps, sent, herrs);
    for (size_t k = 0; k < m; k++) {
        size_t i = which[k];
        statuses[i] = read_post(itx, &reqs[i], &posts[i], &resps[k], sent[k], &results[i]);
        if (sent[k] != MB_OK)
            errs[i] = herrs[k];
        http_response_clear(&resps[k]);
    }
    for (size_t i = 0; i < n; i++)
        post_clear(&posts[i]);
    free(which);
    free(herrs);
    free(sent);
    free(resps);
    free(hreqs);
    free(posts);
}

/* search_page - COUNT of EEEX_ID's inbound messages from FROM (oldest
 * first) into *PAGE_R (NULL in a dry run), and the total found into
 * *TOTAL_R (-1 when ITX does not say) */
static enum mb_status search_page(struct itx *itx, long long eeex_id, long long from,
                                  long long count, bool content, json_object **page_r,
                                  long long *total_r, struct ticket_result *res,
                                  struct mb_error *err)
{
    json_object *q = json_object_new_object();
    json_out_add(q, "eeexId", json_object_new_int64(eeex_id));
    json_out_add(q, "direction", json_object_new_int(ITX_DIRECTION_IN));
    json_out_add(q, "getContent", json_object_new_boolean(content));
    json_out_add(q, "limitFrom", json_object_new_int64(from));
    json_out_add(q, "limitTo", json_object_new_int64(count));
    json_out_add(q, "getTotalActivityCount", json_object_new_boolean(1));
    char *body = json_out_string(q);
    struct http_request hreq = {
        .method = "POST",
        .url = itx->search_url,
        .headers = itx->auth,
        .header_count = ITX_AUTH_HEADERS,
        .content_type = "application/json",
        .body = body,
        .body_len = strlen(body),
    };
    struct http_response resp;
    http_response_init(&resp);
    enum mb_status st = exchange(itx, &hreq, &resp, res, err);
    *page_r = NULL;
    *total_r = -1;
    if (st == MB_OK && resp.status != 0) {
        json_object *page = parse_answer(&resp);
        const char *total = http_response_header(&resp, "ITX-Total-Found");
        if (!json_object_is_type(page, json_type_array)) {
            json_object_put(page);
            st = mb_error_set(err, MB_TEMP,
                              "ITX message search answered HTTP %ld without a JSON array",
                              resp.status);
        } else {
            *page_r = page;
            long long n;
            if (total != NULL && parse_id(total, &n))
                *total_r = n;
        }
    }
    http_response_clear(&resp);
    free(body);
    return st;
}

/* find_marker - the message of PAGE whose body holds MARKER, or NULL */
static json_object *find_marker(json_object *page, const char *marker)
{
    size_t n = json_object_array_length(page);
    for (size_t i = n; i > 0; i--) { /* newest last: look there first */
        json_object *msg = json_object_array_get_idx(page, i - 1), *body;
        if (json_object_object_get_ex(msg, "body", &body) &&
            json_object_is_type(body, json_type_string) &&
            strstr(json_object_get_string(body), marker) != NULL)
            return msg;
    }
    return NULL;
}

/* scan - search messages [FROM, FROM+COUNT) for MARKER; *LEN_R = messages seen */
static enum mb_status scan(struct itx *itx, long long eeex_id, long long from, long long count,
                           const char *marker, bool *found_r, size_t *len_r,
                           struct ticket_result *res, struct mb_error *err)
{
    json_object *page;
    long long total;
    enum mb_status st = search_page(itx, eeex_id, from, count, true, &page, &total, res, err);
    *len_r = 0;
    if (st != MB_OK || page == NULL)
        return st;
    *len_r = json_object_array_length(page);
    json_object *msg = find_marker(page, marker);
    if (msg != NULL) {
        *found_r = true;
        copy_ids(msg, res);
    }
    json_object_put(page);
    return MB_OK;
}

/* itx_find_by_key - look for REQ's marker in the reconcile_window most
 * recent inbound messages of the sender's customer. ITX lists oldest
 * first, so a probe learns the total and the pages are read from the end
 * backwards (a lost answer is almost always the newest message). Without
 * ITX-Total-Found, pages are read from the start. */
static enum mb_status itx_find_by_key(struct connector *conn, const struct ticket_request *req,
                                      bool *found_r, struct ticket_result *res,
                                      struct mb_error *err)
{
    struct itx *itx = itx_of(conn);
    *found_r = false;
    long long eeex_id = customer_for(itx, req->mail->from.address);
    if (eeex_id == 0)
        return MB_OK; /* such a mail is never posted */
    char marker[64];
    key_marker(req->key, marker);

    json_object *probe;
    long long total;
    enum mb_status st = search_page(itx, eeex_id, 0, 1, false, &probe, &total, res, err);
    if (st != MB_OK || probe == NULL)
        return st;
    json_object_put(probe);
    long long window = itx->reconcile_window;
    size_t len;
    if (total >= 0) {
        long long low = total > window ? total - window : 0;
        for (long long end = total; st == MB_OK && !*found_r && end > low;) {
            long long from = end - ITX_SEARCH_PAGE > low ? end - ITX_SEARCH_PAGE : low;
            st = scan(itx, eeex_id, from, end - from, marker, found_r, &len, res, err);
            if (len == 0)
                break;
            end = from;
        }
    } else {
        for (long long from = 0; st == MB_OK && !*found_r && from < window;) {
            long long count = window - from < ITX_SEARCH_PAGE ? window - from : ITX_SEARCH_PAGE;
            st = scan(itx, eeex_id, from, count, marker, found_r, &len, res, err);
            if ((long long)len < count)
                break;
            from += count;
        }
    }
    return st;
}

/* itx_probe - one authenticated search of a single message: proves the URL,
 * TLS and the three tokens without posting anything */
static enum mb_status itx_probe(struct connector *conn, struct mb_error *err)
{
    struct itx *itx = itx_of(conn);
    long long customer = itx->default_customer;
    if (customer == 0 && itx->customer_count > 0)
        customer = itx->customers[0].eeex_id;
    struct ticket_result res;
    ticket_result_init(&res);
    json_object *page = NULL;
    long long total = -1;
    enum mb_status st = search_page(itx, customer > 0 ? customer : 1, 0, 1, false, &page, &total, &res, err);
    json_object_put(page);
    ticket_result_clear(&res);
    return st;
}

const struct connector_ops itx_connector_ops = {
    .name = "itx",
    .caps = CONNECTOR_CAP_HTML | CONNECTOR_CAP_ATTACHMENTS | CONNECTOR_CAP_INLINE_IMAGES |
            CONNECTOR_CAP_FIND_BY_KEY,
    .conf_keys = itx_keys,
    .create = itx_create,
    .destroy = itx_destroy,
    .create_ticket = itx_create_ticket,
    .append = itx_append,
    .post_many = itx_post_many,
    .find_by_key = itx_find_by_key,
    .probe = itx_probe,
};
