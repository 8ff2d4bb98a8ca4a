/* test_itx - the connector registry, the mail JSON schema and the ITX
 * connector over real HTTP against tests/emulators/itx_emulator.py: new
 * cases with inline images and files, follow-ups, customer mapping, every
 * failure class a user depends on, lost answers found again by key, and
 * dry runs that send nothing and leak no token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "connectors/connector.h"
#include "connectors/json_out.h"
#include "connectors/mail_json.h"
#include "http/http.h"
#include "itx_emu.h"
#include "lib/buf.h"
#include "lib/xalloc.h"
#include "unit.h"

static struct itx_emu emu;

#define SHA_A                                                                                      \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* a made-up digest */

/* test_rewrite - stands in for mime_html_rewrite_refs: every src="X" and
 * href="X" whose X the map knows is replaced by plain substring work */
static char *test_rewrite(const char *html, const char *(*map)(void *ctx, const char *ref),
                          void *ctx)
{
    struct buf out;
    buf_init(&out, 0);
    const char *p = html;
    for (;;) {
        const char *src = strstr(p, "src=\""), *href = strstr(p, "href=\"");
        const char *attr = src && (!href || src < href) ? src : href;
        if (attr == NULL)
            break;
        const char *value = strchr(attr, '"') + 1, *end = strchr(value, '"');
        if (end == NULL)
            break;
        char *ref = xstrndup(value, (size_t)(end - value));
        const char *to = map(ctx, ref);
        buf_append(&out, p, (size_t)(value - p));
        buf_append_str(&out, to ? to : ref);
        free(ref);
        p = end;
    }
    buf_append_str(&out, p);
    return buf_steal(&out);
}

static struct mb_log quiet = {NULL, MB_LOG_ERROR};
static const struct connector_env env = {&quiet, NULL, test_rewrite};

/* A connector and the config it came from. */
struct opened {
    struct conf *conf;
    struct connector *conn;
};

/* open_itx - a connector for the emulator with EXTRA config lines */
static enum mb_status open_itx(const char *extra, const struct connector_env *e, struct opened *o,
                               struct mb_error *err)
{
    char *text = xasprintf("[connector test]\n"
                           "type = itx\n"
                           "url = %s/\n"
                           "tokenv2 = test-token\n"
                           "rcntrl = 11\n"
                           "ccntrl = 22\n"
                           "timeout = 1s\n"
                           "connect_timeout = 1s\n"
                           "%s",
                           emu.base_url[0] ? emu.base_url : "http://127.0.0.1:9", extra);
    memset(o, 0, sizeof(*o));
    enum mb_status st = conf_load_string("itx.conf", text, &o->conf, err);
    free(text);
    if (st == MB_OK)
        st = connector_open(conf_find(o->conf, "connector", "test"), e, &o->conn, err);
    return st;
}

static void close_itx(struct opened *o)
{
    connector_close(&o->conn);
    CU_ASSERT_PTR_NULL(o->conn);
    conf_free(&o->conf);
}

static struct mb_mail *new_mail(const char *from, const char *key, const char *subject,
                                const char *html)
{
    struct mb_mail *m = mail_new();
    m->key = xstrdup(key);
    m->message_id = xstrdup(key);
    m->subject = xstrdup(subject);
    m->from.name = xstrdup("Kari Nordmann");
    m->from.address = xstrdup(from);
    m->text = xstrdup("hei");
    m->html = xstrdup(html);
    return m;
}

static void add_file(struct mb_mail *m, const char *name, const char *type, const char *cid,
                     const char *location, const char *data)
{
    struct mb_attachment *a = mail_add_attachment(m);
    a->filename = xstrdup(name);
    a->content_type = xstrdup(type);
    a->content_id = xstrdup(cid);
    a->content_location = xstrdup(location);
    a->size = strlen(data);
    a->data = xmemdup(data, a->size);
    memcpy(a->sha256, SHA_A, sizeof(a->sha256));
}

/* A posting context: the request, its threading decision and the result. */
struct post {
    struct thread_decision thread;
    struct ticket_request req;
    struct ticket_result res;
    struct mb_error err;
};

static void post_init(struct post *p, const struct mb_mail *mail)
{
    memset(p, 0, sizeof(*p));
    p->thread.kind = THREAD_NEW;
    p->thread.evidence = "none";
    p->req = (struct ticket_request){mail, &p->thread, mail->key};
    ticket_result_init(&p->res);
}

static void post_clear(struct post *p)
{
    thread_decision_clear(&p->thread);
    ticket_result_clear(&p->res);
}

/* emu_json - GET /_emulator/NAME parsed (owned) */
static json_object *emu_json(const char *name)
{
    char *text = itx_emu_get(&emu, name);
    json_object *o = text ? json_tokener_parse(text) : NULL;
    free(text);
    return o;
}

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static long long jint(json_object *o, const char *key)
{
    json_object *v = field(o, key);
    return json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = field(o, key);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

static char *decimal(long long v)
{
    return xasprintf("%lld", v);
}

/* stored_count - how many messages the emulator holds */
static size_t stored_count(void)
{
    json_object *msgs = emu_json("messages");
    size_t n = json_object_array_length(msgs);
    json_object_put(msgs);
    return n;
}

static size_t request_count(void)
{
    json_object *reqs = emu_json("requests");
    size_t n = json_object_array_length(reqs);
    json_object_put(reqs);
    return n;
}

/* --- mail_json --------------------------------------------------------- */

/* read_back - what was written to F (a tmpfile), NUL-terminated in TEXT
 * (SIZE bytes at most); F is closed */
static void read_back(FILE *f, char *text, size_t size)
{
    fflush(f);
    rewind(f);
    size_t n = fread(text, 1, size - 1, f);
    text[n] = '\0';
    fclose(f);
}

static void test_mail_json_schema(void)
{
    struct mb_mail *m =
        new_mail("kari@example.no", "abc@example.no", "Spørsmål \"1\"", "<p>a/b</p>");
    m->in_reply_to = xstrdup("prev@example.no");
    mail_add_reference(m, "first@example.no");
    mail_add_reference(m, "prev@example.no");
    m->date = xstrdup("2026-11-21T10:00:00Z");
    address_list_add(&m->reply_to, NULL, "svar@example.no");
    address_list_add(&m->to, "Support", "support@example.com");
    address_list_add(&m->to, NULL, NULL);
    free(m->text);
    m->text = xstrdup("linje 1\nlinje\t2");
    add_file(m, "logo.png", "image/png", "logo@x", NULL, "PNG");
    m->attachments[0].inline_ref = true;
    add_file(m, "a.pdf", "application/pdf", NULL, "http://example.com/a.pdf", "%PDF-1");
    mail_add_warning(m, "charset %s repaired", "x-bad");
    m->raw_size = 1234;
    char *json = mail_json_encode(m, "maildir:/var/mail/support:new/1.eml");
    char *expect = xasprintf(
        "{\"source\":\"maildir:/var/mail/support:new/1.eml\","
        "\"key\":\"abc@example.no\","
        "\"message_id\":\"abc@example.no\","
        "\"in_reply_to\":\"prev@example.no\","
        "\"references\":[\"first@example.no\",\"prev@example.no\"],"
        "\"subject\":\"Spørsmål \\\"1\\\"\","
        "\"date\":\"2026-11-21T10:00:00Z\","
        "\"from\":{\"name\":\"Kari Nordmann\",\"address\":\"kari@example.no\"},"
        "\"sender\":null,"
        "\"reply_to\":[{\"name\":null,\"address\":\"svar@example.no\"}],"
        "\"to\":[{\"name\":\"Support\",\"address\":\"support@example.com\"},"
        "{\"name\":null,\"address\":null}],"
        "\"cc\":[],"
        "\"text\":\"linje 1\\nlinje\\t2\","
        "\"html\":\"<p>a/b</p>\","
        "\"attachments\":["
        "{\"filename\":\"logo.png\",\"content_type\":\"image/png\",\"size\":3,\"sha256\":\"%s\","
        "\"content_id\":\"logo@x\",\"content_location\":null,\"inline\":true},"
        "{\"filename\":\"a.pdf\",\"content_type\":\"application/pdf\",\"size\":6,\"sha256\":\"%s\","
        "\"content_id\":null,\"content_location\":\"http://example.com/a.pdf\",\"inline\":false}],"
        "\"warnings\":[\"charset x-bad repaired\"],"
        "\"size\":1234}",
        SHA_A, SHA_A);
    CU_ASSERT_STRING_EQUAL(json, expect);
    if (strcmp(json, expect) != 0)
        fprintf(stderr, "\n got %s\nwant %s\n", json, expect);
    free(expect);
    free(json);
    mail_free(&m);

    /* An empty mail still has every key, with null or empty values. */
    m = mail_new();
    json = mail_json_encode(m, NULL);
    CU_ASSERT_STRING_EQUAL(json, "{\"source\":null,\"key\":\"\",\"message_id\":null,"
                                 "\"in_reply_to\":null,\"references\":[],\"subject\":\"\","
                                 "\"date\":null,\"from\":null,\"sender\":null,\"reply_to\":[],"
                                 "\"to\":[],\"cc\":[],\"text\":\"\",\"html\":\"\","
                                 "\"attachments\":[],\"warnings\":[],\"size\":0}");
    free(json);
    mail_free(&m);

    json = mail_json_error("mbox:/tmp/a@120", "perm", "larger than 50 MiB \"x\"");
    CU_ASSERT_STRING_EQUAL(json, "{\"source\":\"mbox:/tmp/a@120\","
                                 "\"error\":\"larger than 50 MiB \\\"x\\\"\",\"status\":\"perm\"}");
    free(json);
}

/* --- JSON written by hand ---------------------------------------------- */

/* jsonc_string - S as json-c writes a string value (quotes included; owned) */
static char *jsonc_string(const char *s)
{
    json_object *o = json_object_new_string(s);
    char *text = xstrdup(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return text;
}

/* The escaper behind the posted body writes every byte as json-c would. */
static void test_json_escape_matches_json_c(void)
{
    char s[8];
    for (int c = 1; c < 256; c++) {
        snprintf(s, sizeof(s), "a%cb", c);
        struct buf out;
        buf_init(&out, 0);
        buf_append_str(&out, "\"");
        json_out_escaped(&out, s);
        buf_append_str(&out, "\"");
        char *want = jsonc_string(s);
        if (strcmp(out.data, want) != 0)
            fprintf(stderr, "\nbyte %d: got %s want %s\n", c, out.data, want);
        CU_ASSERT_STRING_EQUAL(out.data, want);
        free(want);
        buf_free(&out);
    }
}

/* The data part ITX gets is exactly the JSON json-c would write for the
 * same fields, whatever the subject and body hold. */
static void test_itx_data_is_json_c_json(void)
{
    FILE *out = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    const struct connector_env dry = {&quiet, out, test_rewrite};
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("default_customer = 1001\ncase_queue = 7\n", &dry, &o, &err),
                          MB_OK);
    static const char subject[] = "Re: \"quoted\" \\ a/b \x01\x1f\x7f tab\there \xc3\xb8";
    static const char html[] = "<p class=\"x\">line\r\nline</p>\n<a href=\"/a\\b\">\x02</a>";
    struct mb_mail *m = new_mail("who@example.com", "key@x", subject, html);
    struct post p;
    post_init(&p, m);
    CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_OK);
    char text[16384];
    read_back(out, text, sizeof(text));
    char *data = strstr(text, "\n{\"eeexId\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    data++;
    data[strcspn(data, "\n")] = '\0';
    json_object *parsed = json_tokener_parse(data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(parsed);
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(parsed, "subject", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), subject);
    CU_ASSERT_TRUE(json_object_object_get_ex(parsed, "body", &v));
    CU_ASSERT_EQUAL(strncmp(json_object_get_string(v), html, strlen(html)), 0);
    CU_ASSERT_TRUE(json_object_object_get_ex(parsed, "caseQueueUcquId", &v));
    CU_ASSERT_EQUAL(json_object_get_int64(v), 7);
    /* json-c keeps the key order it read: writing it again must give the same bytes */
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string_ext(
                               parsed, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                           data);
    json_object_put(parsed);
    post_clear(&p);
    mail_free(&m);
    close_itx(&o);
}

/* --- registry and configuration ---------------------------------------- */

static void test_registry_and_config_errors(void)
{
    CU_ASSERT_PTR_EQUAL(connector_find_ops("itx"), connector_registry()[0]);
    CU_ASSERT_PTR_NULL(connector_find_ops("nope"));
    CU_ASSERT_STRING_EQUAL(connector_common_keys()[0].name, "type");
    CU_ASSERT_TRUE(connector_find_ops("itx")->caps & CONNECTOR_CAP_FIND_BY_KEY);

    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"[connector test]\ntype = zendesk\n",
         "itx.conf:2: unknown connector type 'zendesk' (known: itx)"},
        {"[connector test]\nurl = x\n",
         "itx.conf:1: [connector test] needs key 'type' (known: itx)"},
        {"[connector test]\ntype = itx\ntokenv2 = t\nrcntrl = 1\nccntrl = 2\n",
         "itx.conf:1: [connector test] needs key 'url'"},
        {"[connector test]\ntype = itx\nurl = ftp://x\ntokenv2 = t\nrcntrl = 1\nccntrl = 2\n",
         "itx.conf:3: key 'url': expected https://host"},
        {"[connector test]\ntype = itx\nurl = https://x\ntokenv2 = t\nrcntrl = 1\nccntrl = 2\n"
         "customer = alice@example.com\n",
         "itx.conf:7: key 'customer': expected '<address or @domain> <eeexId>'"},
        {"[connector test]\ntype = itx\nurl = https://x\ntokenv2 = t\nrcntrl = 1\nccntrl = 2\n"
         "customer = nobody 12\n",
         "itx.conf:7: key 'customer'"},
        {"[connector test]\ntype = itx\nurl = https://x\ntokenv2 = t\nrcntrl = 1\nccntrl = 2\n"
         "customer = @x.no 1\ncustomer = @X.no 2\n",
         "itx.conf:8: key 'customer': @X.no is mapped twice"},
        {"[connector test]\ntype = itx\nurl = https://x\ntokenv2 = env:MB_TEST_NO_SUCH_VAR\nrcntrl "
         "= 1\n"
         "ccntrl = 2\n",
         "itx.conf:4: key 'tokenv2': environment variable MB_TEST_NO_SUCH_VAR is not set"},
        {"[connector test]\ntype = itx\nurl = https://x\ntokenv2 = t\nrcntrl = x\nccntrl = 2\n",
         "itx.conf:5: key 'rcntrl': expected a whole number"},
        {"[connector test]\ntype = itx\nurl = https://x\ntokenv2 = t\nrcntrl = 1\nccntrl = 2\n"
         "ca_file = /nonexistent/ca.pem\n",
         "itx.conf:7: key 'ca_file': cannot read /nonexistent/ca.pem"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf *conf = NULL;
        struct connector *conn = NULL;
        struct mb_error err;
        CU_ASSERT_EQUAL_FATAL(conf_load_string("itx.conf", cases[i].text, &conf, &err), MB_OK);
        CU_ASSERT_EQUAL(connector_open(conf_find(conf, "connector", "test"), &env, &conn, &err),
                        MB_CONFIG);
        CU_ASSERT_PTR_NULL(conn);
        if (strstr(err.text, cases[i].expect) == NULL)
            fprintf(stderr, "\ncase %zu: %s\n", i, err.text);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, cases[i].expect));
        conf_free(&conf);
    }

    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("customer = a@b.no 1\n", &env, &o, &err), MB_OK);
    CU_ASSERT_STRING_EQUAL(o.conn->name, "test");
    CU_ASSERT_STRING_EQUAL(o.conn->ops->name, "itx");
    close_itx(&o);
}

/* The sample config comes from the key table: every key is documented. */
static void test_keys_document_themselves(void)
{
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    conf_write_sample(f, "connector itx", NULL, connector_find_ops("itx")->conf_keys);
    char text[16384];
    read_back(f, text, sizeof(text));
    static const char *const keys[] = {"type",
                                       "url",
                                       "tokenv2",
                                       "rcntrl",
                                       "ccntrl",
                                       "default_customer",
                                       "customer",
                                       "case_queue",
                                       "case_category",
                                       "case_status",
                                       "connect_timeout",
                                       "timeout",
                                       "tls_verify",
                                       "ca_file",
                                       "max_response",
                                       "reconcile_window"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "\n#%s = ", keys[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, line));
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "#reconcile_window = 500\n"));
}

/* --- against the emulator ---------------------------------------------- */

static int emu_setup(void)
{
    return itx_emu_start(&emu, NULL, false) ? 0 : 1;
}

static int emu_teardown(void)
{
    itx_emu_stop(&emu);
    return 0;
}

static const char rich_html[] =
    "<p>Se bildet: <img src=\"cid:logo@x\"> og <img src=\"http://example.com/pic.gif\">"
    " og <a href=\"cid:avtale@x\">avtalen</a></p>";

/* rich_mail - HTML with an inline cid: image, a PDF linked by cid (not an
 * image: stays as it is) and an image found by Content-Location */
static struct mb_mail *rich_mail(const char *key)
{
    struct mb_mail *m = new_mail("alice@example.com", key, "Jeg har et spørsmål", rich_html);
    add_file(m, "logo.png", "image/png", "logo@x", NULL, "\x89PNG\r\n\x1a\n-logo");
    add_file(m, "avtale.pdf", "application/pdf", "avtale@x", NULL, "%PDF-1.4 avtale");
    add_file(m, "pic.gif", "image/gif", NULL, "http://example.com/pic.gif", "GIF89a-pic");
    return m;
}

static void test_new_case_with_inline_image_and_pdf(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(
        open_itx("customer = alice@example.com 1001\ncase_queue = 7\n", &env, &o, &err), MB_OK);
    struct mb_mail *m = rich_mail("first@example.com");
    struct post p;
    post_init(&p, m);
    CU_ASSERT_EQUAL_FATAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_OK);
    CU_ASSERT_EQUAL(p.res.http_status, 200);

    json_object *msgs = emu_json("messages");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(msgs), 1);
    json_object *msg = json_object_array_get_idx(msgs, 0);
    CU_ASSERT_EQUAL(jint(msg, "eeexId"), 1001);
    CU_ASSERT_EQUAL(jint(msg, "direction"), 2);
    CU_ASSERT_EQUAL(jint(msg, "caseQueueUcquId"), 7);
    CU_ASSERT_TRUE(json_object_get_boolean(field(msg, "createCase")));
    CU_ASSERT_STRING_EQUAL(jstr(msg, "subject"), "Jeg har et spørsmål");
    json_object *files = field(msg, "files");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(files), 3);
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(files, 0), "filename"), "logo.png");
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(files, 0), "contentType"), "image/png");
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(files, 1), "contentType"),
                           "application/pdf");
    CU_ASSERT_EQUAL(jint(json_object_array_get_idx(files, 1), "size"), 15);
    /* The stored body: the images point at their stored files, the PDF link is untouched. */
    char *expect = xasprintf(
        "<p>Se bildet: <img src=\"rest/core/corefile/i/%lld\"> og "
        "<img src=\"rest/core/corefile/i/%lld\"> og <a href=\"cid:avtale@x\">avtalen</a></p>"
        "<!-- mailbridge-key:",
        jint(json_object_array_get_idx(files, 0), "id"),
        jint(json_object_array_get_idx(files, 2), "id"));
    CU_ASSERT_EQUAL(strncmp(jstr(msg, "body"), expect, strlen(expect)), 0);
    free(expect);

    char *eact = decimal(jint(msg, "eactId")), *kase = decimal(jint(msg, "caseEactId"));
    CU_ASSERT_STRING_EQUAL(p.res.message_id, eact);
    CU_ASSERT_STRING_EQUAL(p.res.ticket_id, kase);
    CU_ASSERT_STRING_EQUAL(p.res.conversation_id,
                           eact); /* a new case's first message starts its conversation */
    free(eact);
    free(kase);
    json_object_put(msgs);
    post_clear(&p);
    mail_free(&m);
    close_itx(&o);
}

static void test_followup_lands_on_the_same_case(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("default_customer = 1001\n", &env, &o, &err), MB_OK);
    struct mb_mail *first = new_mail("alice@example.com", "q1@example.com", "Hjelp", "<p>1</p>");
    struct mb_mail *reply = new_mail("alice@example.com", "q2@example.com", "", "<p>2</p>");
    struct post a, b;
    post_init(&a, first);
    CU_ASSERT_EQUAL_FATAL(connector_post(o.conn, &a.req, &a.res, &a.err), MB_OK);

    post_init(&b, reply);
    b.thread.kind = THREAD_FOLLOWUP;
    b.thread.ref.ticket_id = xstrdup(a.res.ticket_id);
    b.thread.ref.message_id = xstrdup(a.res.message_id);
    CU_ASSERT_EQUAL_FATAL(connector_post(o.conn, &b.req, &b.res, &b.err), MB_OK);
    CU_ASSERT_STRING_EQUAL(b.res.ticket_id, a.res.ticket_id);
    CU_ASSERT_STRING_EQUAL(b.res.conversation_id, a.res.conversation_id);
    CU_ASSERT_STRING_NOT_EQUAL(b.res.message_id, a.res.message_id);

    json_object *msgs = emu_json("messages");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(msgs), 2);
    json_object *second = json_object_array_get_idx(msgs, 1);
    CU_ASSERT_FALSE(json_object_get_boolean(field(second, "createCase")));
    char *case_id = decimal(jint(second, "caseEactId")),
         *reply_to = decimal(jint(second, "replyToEactId"));
    CU_ASSERT_STRING_EQUAL(case_id, a.res.ticket_id);
    CU_ASSERT_STRING_EQUAL(reply_to, a.res.message_id);
    CU_ASSERT_STRING_EQUAL(jstr(second, "subject"), "(no subject)");
    free(case_id);
    free(reply_to);
    json_object_put(msgs);

    /* Without a known message id the follow-up still lands, with no replyToEactId. */
    post_clear(&b);
    post_init(&b, reply);
    b.thread.kind = THREAD_FOLLOWUP;
    b.thread.ref.ticket_id = xstrdup(a.res.ticket_id);
    CU_ASSERT_EQUAL(connector_post(o.conn, &b.req, &b.res, &b.err), MB_OK);
    msgs = emu_json("messages");
    CU_ASSERT_EQUAL(jint(json_object_array_get_idx(msgs, 2), "replyToEactId"), -1);
    json_object_put(msgs);

    post_clear(&a);
    post_clear(&b);
    mail_free(&first);
    mail_free(&reply);
    close_itx(&o);
}

/* post_many posts a batch several at a time (the first two are held by the
 * emulator until both are in, which a one-by-one post never achieves) and
 * gives each request its own outcome, in order: new cases, follow-ups, and
 * one follow-up ITX refuses (4xx, quarantined) while the others land. */
static void test_post_many_in_order(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("default_customer = 1001\n", &env, &o, &err),
                          MB_OK);
    struct mb_mail *first = new_mail("alice@example.com", "pm-first@example.com", "start", "<p>0</p>");
    struct post root;
    post_init(&root, first);
    CU_ASSERT_EQUAL_FATAL(connector_post(o.conn, &root.req, &root.res, &root.err), MB_OK);

    enum { N = 6 };
    static const bool followup[N] = {false, true, true, false, true, false};
    struct mb_mail *mails[N];
    struct thread_decision decs[N];
    struct ticket_request reqs[N];
    struct ticket_result results[N];
    enum mb_status st[N];
    struct mb_error errs[N];
    for (size_t i = 0; i < N; i++) {
        char key[40], subject[16];
        snprintf(key, sizeof(key), "pm-%zu@example.com", i);
        snprintf(subject, sizeof(subject), "pm-%zu", i);
        mails[i] = new_mail("alice@example.com", key, subject, "<p>x</p>");
        memset(&decs[i], 0, sizeof(decs[i]));
        decs[i].kind = followup[i] ? THREAD_FOLLOWUP : THREAD_NEW;
        decs[i].evidence = "none";
        if (followup[i]) {
            decs[i].ref.ticket_id = xstrdup(root.res.ticket_id);
            /* number 2 replies to a message ITX does not have: 404 */
            decs[i].ref.message_id = xstrdup(i == 2 ? "999999" : root.res.message_id);
        }
        reqs[i] = (struct ticket_request){mails[i], &decs[i], mails[i]->key};
        ticket_result_init(&results[i]);
    }
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"match\":\"\\\"subject\\\":\\\"pm-0\\\"\",\"await\":2}"));
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"match\":\"\\\"subject\\\":\\\"pm-1\\\"\",\"await\":2}"));
    connector_post_many(o.conn, reqs, N, results, st, errs);

    json_object *msgs = emu_json("messages");
    CU_ASSERT_EQUAL(json_object_array_length(msgs), 1 + N - 1);
    for (size_t i = 0; i < N; i++) {
        char subject[16];
        snprintf(subject, sizeof(subject), "pm-%zu", i);
        if (i == 2) {
            CU_ASSERT_EQUAL(st[i], MB_PERM);
            CU_ASSERT_EQUAL(results[i].http_status, 404);
            CU_ASSERT_PTR_NOT_NULL(results[i].vendor_answer);
            CU_ASSERT_PTR_NOT_NULL(strstr(errs[i].text, "HTTP 404"));
            CU_ASSERT_PTR_NULL(results[i].message_id);
            continue;
        }
        CU_ASSERT_EQUAL(st[i], MB_OK);
        CU_ASSERT_EQUAL(results[i].http_status, 200);
        CU_ASSERT_PTR_NOT_NULL_FATAL(results[i].message_id);
        /* the ids given back for request i are those of the message with its subject */
        json_object *stored = NULL;
        for (size_t k = 0; k < json_object_array_length(msgs); k++) {
            json_object *m = json_object_array_get_idx(msgs, k);
            char *id = decimal(jint(m, "eactId"));
            if (strcmp(id, results[i].message_id) == 0)
                stored = m;
            free(id);
        }
        CU_ASSERT_PTR_NOT_NULL_FATAL(stored);
        CU_ASSERT_STRING_EQUAL(jstr(stored, "subject"), subject);
        char *case_id = decimal(jint(stored, "caseEactId"));
        CU_ASSERT_STRING_EQUAL(results[i].ticket_id, case_id);
        if (followup[i]) {
            CU_ASSERT_STRING_EQUAL(results[i].ticket_id, root.res.ticket_id);
        } else {
            CU_ASSERT_STRING_NOT_EQUAL(results[i].ticket_id, root.res.ticket_id);
        }
        free(case_id);
    }
    json_object_put(msgs);
    /* no await gave up (that would be a 500), nothing was sent twice */
    CU_ASSERT_EQUAL(request_count(), 1 + N);
    json_object *log = emu_json("requests");
    for (size_t k = 0; k < json_object_array_length(log); k++)
        CU_ASSERT_NOT_EQUAL(jint(json_object_array_get_idx(log, k), "status"), 500);
    json_object_put(log);

    for (size_t i = 0; i < N; i++) {
        ticket_result_clear(&results[i]);
        thread_decision_clear(&decs[i]);
        mail_free(&mails[i]);
    }
    post_clear(&root);
    mail_free(&first);
    close_itx(&o);
}

/* post_as - post a plain mail from FROM; the outcome, and the eeexId the emulator stored */
static enum mb_status post_as(struct connector *conn, const char *from, long long *eeex_r,
                              struct mb_error *err)
{
    struct mb_mail *m = new_mail(from, from, "hei", "<p>hei</p>");
    struct post p;
    post_init(&p, m);
    enum mb_status st = connector_post(conn, &p.req, &p.res, err);
    *eeex_r = -1;
    if (st == MB_OK) {
        json_object *msgs = emu_json("messages");
        size_t n = json_object_array_length(msgs);
        *eeex_r = jint(json_object_array_get_idx(msgs, n - 1), "eeexId");
        json_object_put(msgs);
    }
    post_clear(&p);
    mail_free(&m);
    return st;
}

static void test_customer_mapping(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("customer = alice@example.com 1001\n"
                                   "customer = Carol@Example.ORG 1004\n"
                                   "customer = @example.org 2002\n"
                                   "default_customer = 3003\n",
                                   &env, &o, &err),
                          MB_OK);
    long long eeex;
    CU_ASSERT_EQUAL(post_as(o.conn, "ALICE@example.COM", &eeex, &err), MB_OK);
    CU_ASSERT_EQUAL(eeex, 1001);
    CU_ASSERT_EQUAL(post_as(o.conn, "bob@EXAMPLE.org", &eeex, &err), MB_OK);
    CU_ASSERT_EQUAL(eeex, 2002);
    CU_ASSERT_EQUAL(post_as(o.conn, "carol@example.org", &eeex, &err),
                    MB_OK); /* exact beats domain */
    CU_ASSERT_EQUAL(eeex, 1004);
    CU_ASSERT_EQUAL(post_as(o.conn, "dave@sub.example.org", &eeex, &err), MB_OK);
    CU_ASSERT_EQUAL(eeex, 3003);
    close_itx(&o);

    CU_ASSERT_EQUAL_FATAL(open_itx("customer = @example.org 2002\n", &env, &o, &err), MB_OK);
    size_t before = request_count();
    CU_ASSERT_EQUAL(post_as(o.conn, "dave@other.net", &eeex, &err), MB_PERM);
    CU_ASSERT_STRING_EQUAL(err.text, "no ITX customer (eeexId) for sender dave@other.net: "
                                     "add a customer line or default_customer");
    CU_ASSERT_EQUAL(request_count(), before); /* nothing was sent */
    close_itx(&o);
}

/* expect_failure - post a plain mail after queuing FAULT (may be NULL); check the outcome */
static void expect_failure(struct connector *conn, const char *fault, enum mb_status expect,
                           long status, struct post *p, struct mb_mail **m)
{
    if (fault != NULL)
        CU_ASSERT_TRUE(itx_emu_fault(&emu, fault));
    *m = new_mail("alice@example.com", "fail@example.com", "hei", "<p>hei</p>");
    post_init(p, *m);
    CU_ASSERT_EQUAL(connector_post(conn, &p->req, &p->res, &p->err), expect);
    CU_ASSERT_EQUAL(p->res.http_status, status);
    CU_ASSERT_PTR_NULL(p->res.ticket_id);
    CU_ASSERT_PTR_NULL(strstr(p->err.text, "test-token"));
}

static void test_failure_classes(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct connector *bad;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("default_customer = 1001\n", &env, &o, &err), MB_OK);
    struct post p;
    struct mb_mail *m;

    expect_failure(
        o.conn,
        "{\"status\":400,\"body\":\"{\\\"error\\\":\\\"subject must be a JSON string\\\"}\"}",
        MB_PERM, 400, &p, &m);
    CU_ASSERT_STRING_EQUAL(p.res.vendor_answer, "{\"error\":\"subject must be a JSON string\"}");
    CU_ASSERT_STRING_EQUAL(p.err.text, "HTTP 400 from POST /rest/itxems/message: "
                                       "{\"error\":\"subject must be a JSON string\"}");
    post_clear(&p);
    mail_free(&m);

    expect_failure(o.conn, "{\"status\":503}", MB_TEMP, 503, &p, &m);
    CU_ASSERT_EQUAL(p.res.retry_after_ms, -1);
    post_clear(&p);
    mail_free(&m);

    expect_failure(o.conn, "{\"status\":429,\"retry_after\":\"7\"}", MB_TEMP, 429, &p, &m);
    CU_ASSERT_EQUAL(p.res.retry_after_ms, 7000);
    post_clear(&p);
    mail_free(&m);

    expect_failure(o.conn, "{\"reset\":true}", MB_TEMP, 0, &p, &m);
    post_clear(&p);
    mail_free(&m);
    CU_ASSERT_EQUAL(stored_count(), 0);

    /* A case that does not exist (the emulator's own 404) is permanent. */
    m = new_mail("alice@example.com", "gone@example.com", "hei", "<p>hei</p>");
    post_init(&p, m);
    p.thread.kind = THREAD_FOLLOWUP;
    p.thread.ref.ticket_id = xstrdup("999999");
    CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_PERM);
    CU_ASSERT_EQUAL(p.res.http_status, 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.res.vendor_answer, "caseEactId 999999 does not exist"));
    post_clear(&p);

    /* A ticket id that is not an ITX id never reaches the vendor. */
    size_t before = request_count();
    post_init(&p, m);
    p.thread.kind = THREAD_FOLLOWUP;
    p.thread.ref.ticket_id = xstrdup("T-4711");
    CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.err.text, "'T-4711' is not a number"));
    CU_ASSERT_EQUAL(request_count(), before);
    post_clear(&p);
    mail_free(&m);

    /* Wrong credentials stop the connector. */
    struct conf *conf;
    char *text =
        xasprintf("[connector test]\ntype = itx\nurl = %s\ntokenv2 = wrong-token\nrcntrl = 11\n"
                  "ccntrl = 22\ndefault_customer = 1\n",
                  emu.base_url);
    CU_ASSERT_EQUAL_FATAL(conf_load_string("bad.conf", text, &conf, &err), MB_OK);
    free(text);
    CU_ASSERT_EQUAL_FATAL(connector_open(conf_find(conf, "connector", "test"), &env, &bad, &err),
                          MB_OK);
    expect_failure(bad, NULL, MB_DOWN, 401, &p, &m);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.err.text, "HTTP 401"));
    CU_ASSERT_PTR_NULL(strstr(p.err.text, "wrong-token"));
    post_clear(&p);
    mail_free(&m);
    connector_close(&bad);
    conf_free(&conf);
    close_itx(&o);
}

/* find - find_by_key for a mail with KEY from alice; FOUND and the result */
static enum mb_status find(struct connector *conn, const char *key, bool *found,
                           struct ticket_result *res)
{
    struct mb_mail *m = new_mail("alice@example.com", key, "x", "<p>x</p>");
    struct post p;
    post_init(&p, m);
    enum mb_status st = conn->ops->find_by_key(conn, &p.req, found, res, &p.err);
    post_clear(&p);
    mail_free(&m);
    return st;
}

/* A lost answer (processed, connection dropped) is MB_TEMP; find_by_key
 * then finds the message, and a key never posted is not found. */
static void test_lost_answer_found_by_key(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("customer = alice@example.com 1001\n", &env, &o, &err), MB_OK);
    long long eeex;
    CU_ASSERT_EQUAL(post_as(o.conn, "alice@example.com", &eeex, &err), MB_OK); /* some history */

    struct mb_mail *m = rich_mail("lost@example.com");
    struct post p;
    post_init(&p, m);
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"drop_response\":true}"));
    CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_TEMP);
    CU_ASSERT_EQUAL(stored_count(), 2); /* it did arrive, once */

    bool found = false;
    struct ticket_result res;
    ticket_result_init(&res);
    CU_ASSERT_EQUAL(find(o.conn, "lost@example.com", &found, &res), MB_OK);
    CU_ASSERT_TRUE_FATAL(found);
    json_object *msgs = emu_json("messages");
    json_object *lost = json_object_array_get_idx(msgs, 1);
    char *eact = decimal(jint(lost, "eactId")), *kase = decimal(jint(lost, "caseEactId"));
    CU_ASSERT_STRING_EQUAL(res.message_id, eact);
    CU_ASSERT_STRING_EQUAL(res.ticket_id, kase);
    CU_ASSERT_STRING_EQUAL(res.conversation_id, eact);
    free(eact);
    free(kase);
    json_object_put(msgs);
    ticket_result_clear(&res);

    CU_ASSERT_EQUAL(find(o.conn, "never-posted@example.com", &found, &res), MB_OK);
    CU_ASSERT_FALSE(found);
    CU_ASSERT_PTR_NULL(res.ticket_id);
    ticket_result_clear(&res);

    /* A failing search is classified like any request. */
    CU_ASSERT_TRUE(
        itx_emu_fault(&emu, "{\"status\":502,\"path\":\"/rest/itxems/message/search\"}"));
    CU_ASSERT_EQUAL(find(o.conn, "lost@example.com", &found, &res), MB_TEMP);
    CU_ASSERT_FALSE(found);
    ticket_result_clear(&res);
    post_clear(&p);
    mail_free(&m);
    close_itx(&o);
}

/* reconcile_window bounds the search to the customer's newest messages. */
static void test_reconcile_window(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(
        open_itx("default_customer = 1001\nreconcile_window = 2\n", &env, &o, &err), MB_OK);
    static const char *const keys[] = {"k1@x", "k2@x", "k3@x"};
    for (size_t i = 0; i < 3; i++) {
        struct mb_mail *m = new_mail("alice@example.com", keys[i], "x", "<p>x</p>");
        struct post p;
        post_init(&p, m);
        CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_OK);
        post_clear(&p);
        mail_free(&m);
    }
    bool found;
    struct ticket_result res;
    ticket_result_init(&res);
    CU_ASSERT_EQUAL(find(o.conn, "k3@x", &found, &res), MB_OK);
    CU_ASSERT_TRUE(found);
    ticket_result_clear(&res);
    CU_ASSERT_EQUAL(find(o.conn, "k2@x", &found, &res), MB_OK);
    CU_ASSERT_TRUE(found);
    ticket_result_clear(&res);
    CU_ASSERT_EQUAL(find(o.conn, "k1@x", &found, &res), MB_OK);
    CU_ASSERT_FALSE(found); /* older than the window */
    ticket_result_clear(&res);
    close_itx(&o);
}

/* A request that times out is MB_TEMP; the vendor may still process it
 * late, and find_by_key then finds it. */
static void test_timeout_then_found(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("default_customer = 1001\n", &env, &o, &err), MB_OK);
    struct mb_mail *m = new_mail("alice@example.com", "slow@example.com", "x", "<p>x</p>");
    struct post p;
    post_init(&p, m);
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"delay_ms\":1500}"));
    CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_TEMP);
    CU_ASSERT_EQUAL(p.res.http_status, 0);
    size_t n = 0;
    for (int i = 0; i < 200 && n == 0; i++) { /* wait for the late processing, not for a time */
        n = stored_count();
        if (n == 0)
            usleep(25 * 1000);
    }
    CU_ASSERT_EQUAL_FATAL(n, 1);
    bool found;
    struct ticket_result res;
    ticket_result_init(&res);
    CU_ASSERT_EQUAL(find(o.conn, "slow@example.com", &found, &res), MB_OK);
    CU_ASSERT_TRUE(found);
    ticket_result_clear(&res);
    post_clear(&p);
    mail_free(&m);
    close_itx(&o);
}

static void test_dry_run_sends_nothing(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    FILE *out = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    const struct connector_env dry = {&quiet, out, test_rewrite};
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("default_customer = 1001\n", &dry, &o, &err), MB_OK);
    struct mb_mail *m = rich_mail("dry@example.com");
    struct post p;
    post_init(&p, m);
    CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_OK);
    CU_ASSERT_EQUAL(p.res.http_status, 0);
    CU_ASSERT_PTR_NULL(p.res.ticket_id);
    bool found = true;
    CU_ASSERT_EQUAL(o.conn->ops->find_by_key(o.conn, &p.req, &found, &p.res, &p.err), MB_OK);
    CU_ASSERT_FALSE(found);

    char text[16384];
    read_back(out, text, sizeof(text));
    char *line = xasprintf("POST %s/rest/itxems/message\n", emu.base_url);
    CU_ASSERT_EQUAL(strncmp(text, line, strlen(line)), 0);
    free(line);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\ntokenv2: <redacted>\n"));
    CU_ASSERT_PTR_NULL(strstr(text, "test-token"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"createCase\":true"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "<img src=\\\"files[0]\\\">"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "filename=\"avtale.pdf\"\nContent-Type: application/pdf\n\n"
                                        "[15 bytes of application/pdf]\n"));
    line =
        xasprintf("\nPOST %s/rest/itxems/message/search\n", emu.base_url); /* find_by_key's probe */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, line));
    free(line);
    CU_ASSERT_EQUAL(request_count(), 0);
    post_clear(&p);
    mail_free(&m);
    close_itx(&o);
}

/* A 2xx the connector cannot read is still a success (the vendor took the
 * message), with a warning and no ids. */
static void test_unreadable_success_is_ok_with_warning(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    FILE *logf = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(logf);
    struct mb_log log = {logf, MB_LOG_INFO};
    const struct connector_env logged = {&log, NULL, test_rewrite};
    struct opened o;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(open_itx("default_customer = 1001\n", &logged, &o, &err), MB_OK);
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"status\":200,\"body\":\"OK\"}"));
    struct mb_mail *m = new_mail("alice@example.com", "odd@example.com", "x", "<p>x</p>");
    struct post p;
    post_init(&p, m);
    CU_ASSERT_EQUAL(connector_post(o.conn, &p.req, &p.res, &p.err), MB_OK);
    CU_ASSERT_PTR_NULL(p.res.message_id);
    char text[2048];
    read_back(logf, text, sizeof(text));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "warning: connector=test vendor=itx msg=odd@example.com"));
    post_clear(&p);
    mail_free(&m);
    close_itx(&o);
}

int main(void)
{
    http_global_init();
    static const struct unit_test offline_tests[] = {
        {"mail JSON schema", test_mail_json_schema},
        {"registry and config errors", test_registry_and_config_errors},
        {"keys document themselves", test_keys_document_themselves},
        {"JSON escapes match json-c", test_json_escape_matches_json_c},
        {"ITX data part is json-c's JSON", test_itx_data_is_json_c_json},
        {NULL, NULL},
    };
    static const struct unit_test emulator_tests[] = {
        {"new case with inline image and PDF", test_new_case_with_inline_image_and_pdf},
        {"follow-up lands on the same case", test_followup_lands_on_the_same_case},
        {"post_many: several at once, outcomes in order", test_post_many_in_order},
        {"customer mapping", test_customer_mapping},
        {"failure classes", test_failure_classes},
        {"lost answer found by key", test_lost_answer_found_by_key},
        {"reconcile window", test_reconcile_window},
        {"timeout, then found by key", test_timeout_then_found},
        {"dry run sends nothing", test_dry_run_sends_nothing},
        {"unreadable 2xx is ok with a warning", test_unreadable_success_is_ok_with_warning},
        {NULL, NULL},
    };
    static const struct unit_suite suites[] = {
        {"connectors", offline_tests, NULL, NULL},
        {"itx+emulator", emulator_tests, emu_setup, emu_teardown},
        {NULL, NULL, NULL, NULL},
    };
    int rc = unit_run(suites);
    http_global_deinit();
    return rc;
}
