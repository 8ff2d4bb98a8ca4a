/* test_http - the HTTP client: multipart bytes, header-injection-proof
 * names, outcome classification, same-origin checks, Retry-After, dry runs
 * that never leak a secret, and real requests against the ITX emulator
 * (keep-alive, timeouts, resets that must not be re-sent, TLS checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http/http.h"
#include "itx_emu.h"
#include "lib/xalloc.h"
#include "unit.h"

static struct itx_emu emu;
static bool emu_up;

static const struct http_header auth[] = {
    {"tokenv2", "test-token", true},
    {"rcntrl", "11", false},
    {"ccntrl", "22", false},
};

/* count - occurrences of NEEDLE in HAYSTACK */
static size_t count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* read_all - the whole content of F from the start (owned) */
static char *read_all(FILE *f)
{
    fflush(f);
    rewind(f);
    struct buf b;
    buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    return buf_steal(&b);
}

static struct http_client *client_with(long timeout_ms, size_t max_response, FILE *dry_run)
{
    struct http_settings s;
    http_settings_default(&s);
    s.connect_timeout_ms = 2000;
    s.timeout_ms = timeout_ms;
    s.max_response = max_response;
    s.dry_run = dry_run;
    struct http_client *c = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL_FATAL(http_client_create(&s, &c, &err), MB_OK);
    return c;
}

static void test_multipart_exact_bytes(void)
{
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x00, 0xff};
    const struct http_part parts[] = {
        {"data", NULL, "application/json", "{\"a\":1}", 7},
        {"files", "bild ø.png", "image/png", png, sizeof(png)},
    };
    struct buf out;
    buf_init(&out, 0);
    CU_ASSERT_TRUE_FATAL(http_multipart_encode(parts, 2, "b0undary", &out));
    static const char expect_head[] =
        "--b0undary\r\n"
        "Content-Disposition: form-data; name=\"data\"\r\n"
        "Content-Type: application/json\r\n"
        "\r\n"
        "{\"a\":1}\r\n"
        "--b0undary\r\n"
        "Content-Disposition: form-data; name=\"files\"; filename=\"bild ø.png\"\r\n"
        "Content-Type: image/png\r\n"
        "\r\n";
    static const char expect_tail[] = "\r\n--b0undary--\r\n";
    size_t head = sizeof(expect_head) - 1, tail = sizeof(expect_tail) - 1;
    CU_ASSERT_EQUAL_FATAL(out.len, head + sizeof(png) + tail);
    CU_ASSERT_EQUAL(memcmp(out.data, expect_head, head), 0);
    CU_ASSERT_EQUAL(memcmp(out.data + head, png, sizeof(png)), 0);
    CU_ASSERT_EQUAL(memcmp(out.data + head + sizeof(png), expect_tail, tail), 0);
    buf_free(&out);

    /* A capped buffer refuses instead of truncating. */
    buf_init(&out, 64);
    CU_ASSERT_FALSE(http_multipart_encode(parts, 2, "b0undary", &out));
    buf_free(&out);
}

/* A file name from a hostile mail cannot add a header or end the quoted string. */
static void test_multipart_sanitizes_names(void)
{
    const struct http_part parts[] = {
        {"fi\"les\r\nX-Evil: 1", "a\r\nContent-Type: text/html\r\n\r\n<script>\".pdf",
         "application/pdf", "%PDF", 4},
    };
    struct buf out;
    buf_init(&out, 0);
    CU_ASSERT_TRUE_FATAL(http_multipart_encode(parts, 1, "B", &out));
    CU_ASSERT_STRING_EQUAL(out.data, "--B\r\n"
                                     "Content-Disposition: form-data; name=\"filesX-Evil: 1\"; "
                                     "filename=\"aContent-Type: text/html<script>.pdf\"\r\n"
                                     "Content-Type: application/pdf\r\n"
                                     "\r\n"
                                     "%PDF\r\n"
                                     "--B--\r\n");
    CU_ASSERT_EQUAL(count(out.data, "\r\nContent-Type:"), 1);
    buf_free(&out);
}

static void test_classify_status(void)
{
    static const struct {
        long status;
        enum mb_status expect;
    } cases[] = {
        {200, MB_OK},   {201, MB_OK},   {204, MB_OK},   {301, MB_PERM}, {302, MB_PERM},
        {304, MB_PERM}, {400, MB_PERM}, {401, MB_DOWN}, {403, MB_DOWN}, {404, MB_PERM},
        {408, MB_TEMP}, {409, MB_PERM}, {413, MB_PERM}, {422, MB_PERM}, {429, MB_TEMP},
        {500, MB_TEMP}, {502, MB_TEMP}, {503, MB_TEMP}, {504, MB_TEMP}, {599, MB_TEMP},
        {0, MB_TEMP},   {100, MB_TEMP}, {600, MB_TEMP},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum mb_status got = http_classify_status(cases[i].status);
        if (got != cases[i].expect)
            fprintf(stderr, "status %ld: got %s\n", cases[i].status, mb_status_name(got));
        CU_ASSERT_EQUAL(got, cases[i].expect);
    }
}

static void test_same_origin(void)
{
    static const struct {
        const char *origin, *url;
        bool same;
    } cases[] = {
        {"https://app06.itxnorge.no", "https://app06.itxnorge.no/rest/core/corefile/i/1", true},
        {"https://app06.itxnorge.no", "https://APP06.ItxNorge.no:443/x", true},
        {"http://h.example:80/a", "http://h.example/b?c", true},
        {"https://h.example", "http://h.example/x", false},
        {"https://h.example", "https://h.example:8443/x", false},
        {"https://h.example", "https://h.example.evil.com/x", false},
        {"https://h.example", "https://h.example@evil.com/x", false},
        {"https://h.example", "https://evil.com/?https://h.example/", false},
        {"https://h.example", "/relative/path", false},
        {"https://h.example", "", false},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080/x", true},
        {"http://[::1]:8080", "http://[::1]:8080/x", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = http_same_origin(cases[i].origin, cases[i].url);
        if (got != cases[i].same)
            fprintf(stderr, "same_origin(%s, %s) = %d\n", cases[i].origin, cases[i].url, got);
        CU_ASSERT_EQUAL(got, cases[i].same);
    }
}

static void test_retry_after(void)
{
    /* Wed, 21 Oct 2015 07:28:00 GMT */
    const long long date = 1445412480;
    CU_ASSERT_EQUAL(http_parse_retry_after("7", 0), 7000);
    CU_ASSERT_EQUAL(http_parse_retry_after(" 120 ", 0), 120000);
    CU_ASSERT_EQUAL(http_parse_retry_after("0", 0), 0);
    CU_ASSERT_EQUAL(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - 30), 30000);
    CU_ASSERT_EQUAL(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date + 5), 0);
    CU_ASSERT_EQUAL(http_parse_retry_after("soon", 0), -1);
    CU_ASSERT_EQUAL(http_parse_retry_after("", 0), -1);
    CU_ASSERT_EQUAL(http_parse_retry_after("12 s", 0), -1);
    CU_ASSERT_EQUAL(http_parse_retry_after("99999999999999999999", 0), -1);
}

/* A dry run prints what would be sent, redacts secrets, summarises binary
 * data and sends nothing (port 9 on loopback has no listener). */
static void test_dry_run_redacts_and_sends_nothing(void)
{
    FILE *out = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    struct http_client *c = client_with(1000, 1 << 20, out);
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', 0, 1, 2, 3};
    const struct http_part parts[] = {
        {"data", NULL, "application/json", "{\"subject\":\"hei\"}", 17},
        {"files", "logo.png", "image/png", png, sizeof(png)},
    };
    const struct http_request req = {
        .method = "POST",
        .url = "http://127.0.0.1:9/rest/itxems/message",
        .headers = auth,
        .header_count = 3,
        .parts = parts,
        .part_count = 2,
    };
    struct http_response resp;
    http_response_init(&resp);
    struct mb_error err;
    CU_ASSERT_EQUAL(http_send(c, &req, &resp, &err), MB_OK);
    CU_ASSERT_EQUAL(resp.status, 0);
    CU_ASSERT_EQUAL(http_client_connections(c), 0);
    char *text = read_all(out);
    CU_ASSERT_EQUAL(strncmp(text, "POST http://127.0.0.1:9/rest/itxems/message\n", 44), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\ntokenv2: <redacted>\n"));
    CU_ASSERT_PTR_NULL(strstr(text, "test-token"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nrcntrl: 11\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nContent-Type: multipart/form-data; boundary="));
    CU_ASSERT_PTR_NOT_NULL(strstr(text,
                                  "Content-Disposition: form-data; name=\"data\"\n"
                                  "Content-Type: application/json\n\n{\"subject\":\"hei\"}\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "filename=\"logo.png\"\nContent-Type: image/png\n\n"
                                        "[8 bytes of image/png]\n"));
    CU_ASSERT_PTR_NULL(strstr(text, "PNG"));
    free(text);
    http_response_clear(&resp);
    http_client_destroy(&c);
    CU_ASSERT_PTR_NULL(c);
    fclose(out);
}

/* A dry run of a batch prints every request, in order, and sends none. */
static void test_dry_run_many_in_order(void)
{
    FILE *out = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    struct http_client *c = client_with(1000, 1 << 20, out);
    struct http_request reqs[3];
    struct http_response resps[3];
    enum mb_status st[3];
    struct mb_error errs[3];
    static const char *const urls[] = {"http://127.0.0.1:9/a", "http://127.0.0.1:9/b",
                                       "http://127.0.0.1:9/c"};
    for (size_t i = 0; i < 3; i++) {
        reqs[i] = (struct http_request){.method = "POST", .url = urls[i],
                                        .content_type = "text/plain", .body = "x", .body_len = 1};
        http_response_init(&resps[i]);
    }
    http_send_many(c, reqs, 3, resps, st, errs);
    char *text = read_all(out);
    const char *a = strstr(text, "POST http://127.0.0.1:9/a\n");
    const char *b = strstr(text, "POST http://127.0.0.1:9/b\n");
    const char *cc = strstr(text, "POST http://127.0.0.1:9/c\n");
    CU_ASSERT_TRUE(a != NULL && b != NULL && cc != NULL && a < b && b < cc);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(st[i], MB_OK);
        CU_ASSERT_EQUAL(resps[i].status, 0);
        http_response_clear(&resps[i]);
    }
    CU_ASSERT_EQUAL(http_client_connections(c), 0);
    free(text);
    http_client_destroy(&c);
    fclose(out);
}

/* last_boundary - the multipart boundary the last dry run in TEXT printed (owned) */
static char *last_boundary(const char *text)
{
    const char *b = NULL;
    for (const char *p = text; (p = strstr(p, "boundary=")) != NULL; p++)
        b = p + 9;
    return b != NULL ? xstrndup(b, strcspn(b, "\n")) : xstrdup("");
}

/* Boundaries are never in the data: not even when a part holds the very
 * boundary the client would pick next (they count up from a random prefix). */
static void test_boundary_never_in_data(void)
{
    FILE *out = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    struct http_client *c = client_with(1000, 1 << 20, out);
    struct http_part part = {"data", NULL, "text/plain", "x", 1};
    struct http_request req = {
        .method = "POST", .url = "http://127.0.0.1:9/x", .parts = &part, .part_count = 1};
    struct http_response resp;
    http_response_init(&resp);
    struct mb_error err;
    CU_ASSERT_EQUAL(http_send(c, &req, &resp, &err), MB_OK);
    char *text = read_all(out);
    char *first = last_boundary(text);
    free(text);
    CU_ASSERT_EQUAL_FATAL(strlen(first), 32);
    CU_ASSERT_EQUAL(strspn(first, "0123456789abcdef"), 32);
    /* the next one: the same prefix, the count one up (it ends in ...01 now) */
    char *next = xstrdup(first);
    next[31] = '2';
    char *data = xasprintf("a part holding --%s inside", next);
    part.data = data;
    part.len = strlen(data);
    CU_ASSERT_EQUAL(http_send(c, &req, &resp, &err), MB_OK);
    text = read_all(out);
    char *second = last_boundary(text);
    CU_ASSERT_EQUAL(strlen(second), 32);
    CU_ASSERT_STRING_NOT_EQUAL(second, first);
    CU_ASSERT_STRING_NOT_EQUAL(second, next);
    CU_ASSERT_PTR_NULL(strstr(data, second));
    free(text);
    free(second);
    free(data);
    free(next);
    free(first);
    http_response_clear(&resp);
    http_client_destroy(&c);
    fclose(out);
}

/* The vendor's answer goes into error texts cleaned up: one line, capped,
 * and a secret it echoes is redacted even where the cap would cut it. */
static void test_excerpt_is_one_clean_line(void)
{
    const struct http_request req = {
        .method = "GET", .url = "http://x/", .headers = auth, .header_count = 3};
    struct http_response resp;
    http_response_init(&resp);
    buf_append_str(&resp.body, "{\"error\":\"bad\r\ntoken test-token\"}");
    char *e = http_response_excerpt(&resp, &req, 300);
    CU_ASSERT_STRING_EQUAL(e, "{\"error\":\"bad  token <redacted>\"}");
    free(e);
    e = http_response_excerpt(&resp, &req, 25);
    CU_ASSERT_PTR_NULL(strstr(e, "test-"));
    CU_ASSERT_STRING_EQUAL(e, "{\"error\":\"bad  token <red...");
    free(e);
    buf_reset(&resp.body);
    buf_append_str(&resp.body, "øøøø");
    e = http_response_excerpt(&resp, NULL, 5); /* never half a UTF-8 character */
    CU_ASSERT_STRING_EQUAL(e, "øø...");
    free(e);
    http_response_clear(&resp);
}

/* url - the emulator URL of PATH (static buffer) */
static const char *url(const char *path)
{
    static char u[160];
    snprintf(u, sizeof(u), "%s%s", emu.base_url, path);
    return u;
}

/* search - POST a harmless message search with C */
static enum mb_status search(struct http_client *c, struct http_response *resp,
                             struct mb_error *err)
{
    static const char body[] = "{\"eeexId\":1,\"limitTo\":1,\"getTotalActivityCount\":true}";
    const struct http_request req = {
        .method = "POST",
        .url = url("/rest/itxems/message/search"),
        .headers = auth,
        .header_count = 3,
        .content_type = "application/json",
        .body = body,
        .body_len = sizeof(body) - 1,
    };
    return http_send(c, &req, resp, err);
}

static int emu_setup(void)
{
    emu_up = itx_emu_start(&emu, NULL, false);
    return emu_up ? 0 : 1;
}

static int emu_teardown(void)
{
    itx_emu_stop(&emu);
    return 0;
}

static void test_keep_alive_one_connection(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct http_client *c = client_with(5000, 1 << 20, NULL);
    struct http_response resp;
    http_response_init(&resp);
    struct mb_error err;
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_OK);
    CU_ASSERT_EQUAL(resp.status, 200);
    CU_ASSERT_STRING_EQUAL(http_response_header(&resp, "itx-total-found"), "0");
    CU_ASSERT_STRING_EQUAL(resp.body.data, "[]");
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_OK);
    CU_ASSERT_EQUAL(resp.status, 200);
    CU_ASSERT_EQUAL(http_client_connections(c), 1);
    char *log = itx_emu_get(&emu, "requests");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_EQUAL(count(log, "\"status\": 200"), 2);
    free(log);
    http_response_clear(&resp);
    http_client_destroy(&c);
}

static void test_status_outcomes(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct http_client *c = client_with(5000, 1 << 20, NULL);
    struct http_response resp;
    http_response_init(&resp);
    struct mb_error err;

    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"status\":503,\"body\":\"busy\",\"retry_after\":\"2\"}"));
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_TEMP);
    CU_ASSERT_EQUAL(resp.status, 503);
    CU_ASSERT_EQUAL(resp.retry_after_ms, 2000);
    CU_ASSERT_STRING_EQUAL(err.text, "HTTP 503 from POST /rest/itxems/message/search: busy");

    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"status\":302}"));
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "vendor answered a redirect"));

    /* The vendor echoing our token must not put it into the error text. */
    CU_ASSERT_TRUE(itx_emu_fault(
        &emu, "{\"status\":400,\"body\":\"{\\\"error\\\":\\\"token test-token\\\"}\"}"));
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_PERM);
    CU_ASSERT_STRING_EQUAL(err.text, "HTTP 400 from POST /rest/itxems/message/search: "
                                     "{\"error\":\"token <redacted>\"}");

    const struct http_request bad_auth = {.method = "POST",
                                          .url = url("/rest/itxems/message/search"),
                                          .content_type = "application/json",
                                          .body = "{}",
                                          .body_len = 2};
    CU_ASSERT_EQUAL(http_send(c, &bad_auth, &resp, &err), MB_DOWN);
    CU_ASSERT_EQUAL(resp.status, 401);
    CU_ASSERT_EQUAL(resp.retry_after_ms, -1);

    /* A vendor answer above max_response is refused, not truncated. */
    struct http_client *small = client_with(5000, 1024, NULL);
    char fault[3000];
    snprintf(fault, sizeof(fault), "{\"status\":200,\"body\":\"%02000d\"}", 0);
    CU_ASSERT_TRUE(itx_emu_fault(&emu, fault));
    CU_ASSERT_EQUAL(search(small, &resp, &err), MB_PERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "response larger than 1024 bytes"));
    CU_ASSERT_TRUE(resp.body.len <= 1024);
    http_client_destroy(&small);

    http_response_clear(&resp);
    http_client_destroy(&c);
}

static void test_timeout_is_temp(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct http_client *c = client_with(300, 1 << 20, NULL);
    struct http_response resp;
    http_response_init(&resp);
    struct mb_error err;
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"delay_ms\":1500}"));
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_TEMP);
    CU_ASSERT_EQUAL(resp.status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "POST /rest/itxems/message/search: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "imed out"));
    /* Let the emulator finish the late request so it cannot blur the next test. */
    bool done = false;
    for (int i = 0; i < 200 && !done; i++) {
        char *log = itx_emu_get(&emu, "requests");
        done = log != NULL && strstr(log, "\"status\": 200") != NULL;
        free(log);
        if (!done)
            usleep(25 * 1000);
    }
    CU_ASSERT_TRUE(done);
    http_response_clear(&resp);
    http_client_destroy(&c);
}

/* A connection closed without an answer is MB_TEMP, on a new connection and
 * on a reused one - and on the reused one libcurl must not quietly send the
 * POST again (the vendor may have processed it). */
static void test_reset_is_temp_and_not_resent(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    struct http_client *c = client_with(5000, 1 << 20, NULL);
    struct http_response resp;
    http_response_init(&resp);
    struct mb_error err;
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"reset\":true}"));
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_TEMP); /* first request: new connection */
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_OK);
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"drop_response\":true}"));
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_TEMP); /* reused connection */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "connection closed before an answer (not re-sent)"));
    CU_ASSERT_TRUE(resp.unanswered); /* the vendor may have it: ask before posting again */
    CU_ASSERT_EQUAL(search(c, &resp, &err), MB_OK);
    char *log = itx_emu_get(&emu, "requests");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_EQUAL(count(log, "\"status\": null"), 2);
    CU_ASSERT_EQUAL(count(log, "\"status\": 200"), 2); /* nothing was sent twice */
    free(log);
    http_response_clear(&resp);
    http_client_destroy(&c);
}

/* A batch goes out several requests at a time and every outcome comes back
 * in request order, classified as http_send would: the first two are held
 * by the emulator until both are in the server at once (sent one after the
 * other they would each give up after 10 s and answer 500), a lost answer
 * and a reset are unanswered and never sent twice. */
static void test_send_many_in_flight_in_order(void)
{
    CU_ASSERT_TRUE_FATAL(itx_emu_reset(&emu));
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"match\":\"#0\",\"await\":2,\"status\":201,"
                                       "\"body\":\"{\\\"n\\\":0}\"}"));
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"match\":\"#1\",\"await\":2,\"status\":503,"
                                       "\"retry_after\":\"7\"}"));
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"match\":\"#2\",\"drop_response\":true}"));
    CU_ASSERT_TRUE(itx_emu_fault(&emu, "{\"match\":\"#4\",\"reset\":true}"));
    static const char search_body[] = "{\"eeexId\":1,\"limitTo\":1}";
    static const char *const bodies[] = {"{\"n\":\"#0\"}", "{\"n\":\"#1\"}", "{\"n\":\"#2\"}",
                                         search_body, "{\"n\":\"#4\"}"};
    enum { N = 5 };
    struct http_request reqs[N];
    struct http_response resps[N];
    enum mb_status st[N];
    struct mb_error errs[N];
    for (size_t i = 0; i < N; i++) {
        reqs[i] = (struct http_request){
            .method = "POST",
            .url = url("/rest/itxems/message/search"),
            .headers = auth,
            .header_count = 3,
            .content_type = "application/json",
            .body = bodies[i],
            .body_len = strlen(bodies[i]),
        };
        http_response_init(&resps[i]);
    }
    struct http_client *c = client_with(20000, 1 << 20, NULL); /* 4 in flight by default */
    http_send_many(c, reqs, N, resps, st, errs);

    CU_ASSERT_EQUAL(st[0], MB_OK);
    CU_ASSERT_EQUAL(resps[0].status, 201);
    CU_ASSERT_STRING_EQUAL(resps[0].body.data, "{\"n\":0}");
    CU_ASSERT_EQUAL(st[1], MB_TEMP);
    CU_ASSERT_EQUAL(resps[1].status, 503);
    CU_ASSERT_EQUAL(resps[1].retry_after_ms, 7000);
    CU_ASSERT_FALSE(resps[1].unanswered);
    CU_ASSERT_EQUAL(strncmp(errs[1].text, "HTTP 503 from POST /rest/itxems/message/search", 46), 0);
    CU_ASSERT_EQUAL(st[2], MB_TEMP);
    CU_ASSERT_EQUAL(resps[2].status, 0);
    CU_ASSERT_TRUE(resps[2].unanswered);
    CU_ASSERT_EQUAL(st[3], MB_OK);
    CU_ASSERT_EQUAL(resps[3].status, 200);
    CU_ASSERT_STRING_EQUAL(resps[3].body.data, "[]");
    CU_ASSERT_EQUAL(st[4], MB_TEMP);
    CU_ASSERT_TRUE(resps[4].unanswered);
    CU_ASSERT_TRUE(http_client_connections(c) >= 2);

    char *log = itx_emu_get(&emu, "requests");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_EQUAL(count(log, "\"status\": "), N); /* each request reached it once */
    CU_ASSERT_EQUAL(count(log, "\"status\": null"), 2);
    CU_ASSERT_EQUAL(count(log, "\"status\": 500"), 0); /* no await gave up */
    free(log);

    /* The same client sends the next batch on the connections it kept. */
    unsigned long before = http_client_connections(c);
    http_send_many(c, &reqs[3], 1, &resps[3], &st[3], &errs[3]);
    CU_ASSERT_EQUAL(st[3], MB_OK);
    CU_ASSERT_EQUAL(http_client_connections(c), before);
    for (size_t i = 0; i < N; i++)
        http_response_clear(&resps[i]);
    http_client_destroy(&c);
}

/* TLS: a certificate we do not trust stops the connector (MB_DOWN); with
 * the certificate as ca_file the same server is accepted. Needs openssl(1)
 * to make a throw-away certificate; skipped without it. */
static void test_tls_verification(void)
{
    char dir[] = "/tmp/mb-tls-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char *cert = xasprintf("%s/cert.pem", dir), *key = xasprintf("%s/key.pem", dir);
    char *cmd = xasprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1",
                          key, cert);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "openssl not usable: TLS test skipped\n");
    } else {
        struct itx_emu tls;
        const char *const args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
        CU_ASSERT_TRUE_FATAL(itx_emu_start(&tls, args, true));
        struct http_settings s;
        http_settings_default(&s);
        s.timeout_ms = 5000;
        struct http_client *c;
        struct mb_error err;
        CU_ASSERT_EQUAL_FATAL(http_client_create(&s, &c, &err), MB_OK);
        char u[160];
        snprintf(u, sizeof(u), "%s/rest/core/corefile/i/1", tls.base_url);
        const struct http_request req = {
            .method = "GET", .url = u, .headers = auth, .header_count = 3};
        struct http_response resp;
        http_response_init(&resp);
        CU_ASSERT_EQUAL(http_send(c, &req, &resp, &err), MB_DOWN);
        CU_ASSERT_PTR_NOT_NULL(
            strstr(err.text, "TLS certificate verification failed for 127.0.0.1"));
        http_client_destroy(&c);

        s.ca_file = cert;
        CU_ASSERT_EQUAL_FATAL(http_client_create(&s, &c, &err), MB_OK);
        CU_ASSERT_EQUAL(http_send(c, &req, &resp, &err), MB_PERM); /* verified; 404: no such file */
        CU_ASSERT_EQUAL(resp.status, 404);
        http_client_destroy(&c);
        http_response_clear(&resp);
        itx_emu_stop(&tls);
    }
    unlink(cert);
    unlink(key);
    rmdir(dir);
    free(cert);
    free(key);
}

int main(void)
{
    http_global_init();
    static const struct unit_test offline_tests[] = {
        {"multipart exact bytes", test_multipart_exact_bytes},
        {"multipart sanitizes names", test_multipart_sanitizes_names},
        {"classification table", test_classify_status},
        {"same origin", test_same_origin},
        {"Retry-After seconds and dates", test_retry_after},
        {"dry run redacts and sends nothing", test_dry_run_redacts_and_sends_nothing},
        {"dry run of a batch: in order", test_dry_run_many_in_order},
        {"boundary never in the data", test_boundary_never_in_data},
        {"vendor answer excerpt", test_excerpt_is_one_clean_line},
        {NULL, NULL},
    };
    static const struct unit_test emulator_tests[] = {
        {"keep-alive: one connection", test_keep_alive_one_connection},
        {"status outcomes", test_status_outcomes},
        {"timeout is temp", test_timeout_is_temp},
        {"reset is temp, never re-sent", test_reset_is_temp_and_not_resent},
        {"send_many: in flight together, outcomes in order", test_send_many_in_flight_in_order},
        {"TLS verification", test_tls_verification},
        {NULL, NULL},
    };
    static const struct unit_suite suites[] = {
        {"http", offline_tests, NULL, NULL},
        {"http+emulator", emulator_tests, emu_setup, emu_teardown},
        {NULL, NULL, NULL, NULL},
    };
    int rc = unit_run(suites);
    http_global_deinit();
    return rc;
}
