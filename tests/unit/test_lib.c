/* test_lib - the libc-only helpers: capped buffers, config tables, backoff. */
#include <stdlib.h>
#include <string.h>

#include "lib/backoff.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "unit.h"

static void test_buf_refuses_past_limit(void)
{
    struct buf b;
    buf_init(&b, 8);
    CU_ASSERT_TRUE(buf_append_str(&b, "12345"));
    CU_ASSERT_FALSE(buf_append_str(&b, "6789"));
    CU_ASSERT_EQUAL(b.len, 5); /* unchanged by the refused append */
    CU_ASSERT_STRING_EQUAL(b.data, "12345");
    CU_ASSERT_TRUE(buf_printf(&b, "%d", 678));
    CU_ASSERT_STRING_EQUAL(b.data, "12345678");
    CU_ASSERT_FALSE(buf_printf(&b, "x"));
    buf_free(&b);
}

static void test_buf_grows_unlimited(void)
{
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        CU_ASSERT_TRUE_FATAL(buf_append(&b, "ab", 2));
    CU_ASSERT_EQUAL(b.len, 20000);
    char *s = buf_steal(&b);
    CU_ASSERT_EQUAL(strlen(s), 20000);
    CU_ASSERT_EQUAL(b.len, 0);
    free(s);
}

static const struct conf_key test_keys[] = {
    {"url", CONF_STRING, NULL, 0, 0, true, "Base URL.", NULL},
    {"timeout", CONF_DURATION, "30s", 1, 600000, false, "Request timeout.", NULL},
    {"max_size", CONF_SIZE, "25M", 1024, 1LL << 30, false, "Largest message.", NULL},
    {"verify", CONF_BOOL, "yes", 0, 0, false, "Verify TLS.", NULL},
    {"retries", CONF_INT, "5", 0, 100, false, "Attempts.", NULL},
    {"customer", CONF_LIST, NULL, 0, 0, false, "Customer map entry.", NULL},
    {"token", CONF_SECRET, NULL, 0, 0, false, "API token.", NULL},
    CONF_KEY_END,
};

static struct conf *load(const char *text, struct mb_error *err)
{
    struct conf *conf = NULL;
    if (conf_load_string("t.conf", text, &conf, err) != MB_OK)
        return NULL;
    return conf;
}

static void test_conf_values_and_defaults(void)
{
    struct mb_error err;
    struct conf *conf = load("log_level = debug\n"
                             "[connector itx]\n"
                             "  url = https://x.example/  # not a comment: values are raw\n"
                             "timeout = 2m\n"
                             "customer = a@example.com 1\n"
                             "customer = @example.org 2\n",
                             &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_STRING_EQUAL(conf_raw(conf_global(conf), "log_level"), "debug");
    struct conf_section *sec = conf_find(conf, "connector", "itx");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    CU_ASSERT_EQUAL_FATAL(conf_bind(sec, test_keys, &err), MB_OK);
    CU_ASSERT_STRING_EQUAL(conf_str(sec, "url"), "https://x.example/  # not a comment: values are raw");
    CU_ASSERT_EQUAL(conf_int(sec, "timeout"), 120000);
    CU_ASSERT_EQUAL(conf_int(sec, "max_size"), 25LL << 20);
    CU_ASSERT_TRUE(conf_bool(sec, "verify"));
    CU_ASSERT_EQUAL(conf_int(sec, "retries"), 5);
    CU_ASSERT_EQUAL(conf_list(sec, "customer"), 2);
    CU_ASSERT_STRING_EQUAL(conf_list_item(sec, "customer", 1), "@example.org 2");
    CU_ASSERT_STRING_EQUAL(conf_where(sec, "timeout"), "t.conf:4");
    conf_free(&conf);
    CU_ASSERT_PTR_NULL(conf);
}

/* Each bad file must fail with an error naming the file, the line and the key. */
static void test_conf_errors_name_file_line_key(void)
{
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"[connector itx]\nurl = u\ntimeout = soon\n", "t.conf:3: key 'timeout'"},
        {"[connector itx]\nurl = u\nretries = 101\n", "t.conf:3: key 'retries': 101 is out of range"},
        {"[connector itx]\nurl = u\nverify = maybe\n", "t.conf:3: key 'verify': expected yes or no"},
        {"[connector itx]\nurl = u\ncolour = red\n", "t.conf:3: unknown key 'colour'"},
        {"[connector itx]\nurl = u\nurl = v\n", "t.conf:3: key 'url' is set more than once"},
        {"[connector itx]\ntimeout = 1s\n", "t.conf:1: [connector itx] needs key 'url'"},
        {"[connector itx]\nurl = u\ntoken = env:\n", "t.conf:3: key 'token': env: needs"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mb_error err;
        struct conf *conf = load(cases[i].text, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
        CU_ASSERT_EQUAL(conf_bind(conf_find(conf, "connector", "itx"), test_keys, &err), MB_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, cases[i].expect));
        conf_free(&conf);
    }
}

static void test_conf_syntax_errors(void)
{
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"a = 1\njust words\n", "t.conf:2: expected 'key = value'"},
        {"[route]\n", "t.conf:1: section header needs a kind and a name"},
        {"[route a\n", "t.conf:1: section header must end with ']'"},
        {"[route a]\n[route a]\n", "t.conf:2: section [route a] is defined twice"},
        {"bad key = 1\n", "t.conf:1: 'bad key' is not a valid key name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mb_error err;
        CU_ASSERT_PTR_NULL(load(cases[i].text, &err));
        CU_ASSERT_EQUAL(err.status, MB_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, cases[i].expect));
    }
}

static void test_conf_secret_sources(void)
{
    struct mb_error err;
    setenv("MB_TEST_SECRET", "s3cret", 1);
    struct conf *conf = load("[connector itx]\nurl = u\ntoken = env:MB_TEST_SECRET\n"
                             "[connector other]\nurl = u\ntoken = env:MB_TEST_UNSET_VARIABLE\n",
                             &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    struct conf_section *a = conf_find(conf, "connector", "itx");
    struct conf_section *b = conf_find(conf, "connector", "other");
    CU_ASSERT_EQUAL_FATAL(conf_bind(a, test_keys, &err), MB_OK);
    CU_ASSERT_EQUAL_FATAL(conf_bind(b, test_keys, &err), MB_OK);
    char *value = NULL;
    CU_ASSERT_EQUAL(conf_secret(a, "token", &value, &err), MB_OK);
    CU_ASSERT_STRING_EQUAL(value, "s3cret");
    free(value);
    CU_ASSERT_EQUAL(conf_secret(b, "token", &value, &err), MB_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "MB_TEST_UNSET_VARIABLE is not set"));
    CU_ASSERT_PTR_NULL(strstr(err.text, "s3cret"));
    conf_free(&conf);
}

static void test_conf_iterates_sections_of_a_kind(void)
{
    struct mb_error err;
    struct conf *conf = load("[route a]\n[connector c]\n[route b]\n", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    struct conf_section *s = conf_next(conf, "route", NULL);
    CU_ASSERT_STRING_EQUAL(conf_section_name(s), "a");
    s = conf_next(conf, "route", s);
    CU_ASSERT_STRING_EQUAL(conf_section_name(s), "b");
    CU_ASSERT_PTR_NULL(conf_next(conf, "route", s));
    conf_free(&conf);
}

static void test_backoff_doubles_caps_and_honours_retry_after(void)
{
    struct backoff b = {.base_ms = 1000, .max_ms = 60000};
    CU_ASSERT_EQUAL(backoff_delay_ms(&b, 1, -1), 1000);
    CU_ASSERT_EQUAL(backoff_delay_ms(&b, 2, -1), 2000);
    CU_ASSERT_EQUAL(backoff_delay_ms(&b, 4, -1), 8000);
    CU_ASSERT_EQUAL(backoff_delay_ms(&b, 30, -1), 60000);
    CU_ASSERT_EQUAL(backoff_delay_ms(&b, 1, 5000), 5000);
    CU_ASSERT_EQUAL(backoff_delay_ms(&b, 4, 10), 8000);
}

int main(void)
{
    static const struct unit_test buf_tests[] = {
        {"refuses to grow past its limit", test_buf_refuses_past_limit},
        {"grows without a limit", test_buf_grows_unlimited},
        {NULL, NULL},
    };
    static const struct unit_test conf_tests[] = {
        {"values, defaults, lists", test_conf_values_and_defaults},
        {"errors name file, line and key", test_conf_errors_name_file_line_key},
        {"syntax errors", test_conf_syntax_errors},
        {"secrets from env, never echoed", test_conf_secret_sources},
        {"iterates sections of a kind", test_conf_iterates_sections_of_a_kind},
        {NULL, NULL},
    };
    static const struct unit_test backoff_tests[] = {
        {"doubles, caps, honours Retry-After", test_backoff_doubles_caps_and_honours_retry_after},
        {NULL, NULL},
    };
    static const struct unit_suite suites[] = {
        {"buf", buf_tests, NULL, NULL},
        {"conf", conf_tests, NULL, NULL},
        {"backoff", backoff_tests, NULL, NULL},
        {NULL, NULL, NULL, NULL},
    };
    return unit_run(suites);
}
