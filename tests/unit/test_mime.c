/* test_mime - what a user sees of a parsed mail: decoded text in every
 * charset, headers, addresses, dates, ids, the body picked from the MIME
 * tree, attachments and inline images, HTML to text and back, and the
 * limits that refuse hostile mail with a clear MB_PERM. Every message is
 * inline; encoded bytes are written as C escapes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "mime/mime.h"
#include "unit.h"

/* parse - parse RAW (a C string) with the default limits; NULL on failure */
static struct mb_mail *parse(const char *raw)
{
    struct mime_limits lim;
    struct mb_mail *m = NULL;
    struct mb_error err;
    mime_limits_default(&lim);
    enum mb_status st = mime_parse((const unsigned char *)raw, strlen(raw), &lim, &m, &err);
    CU_ASSERT_EQUAL(st, MB_OK);
    if (st != MB_OK)
        fprintf(stderr, "\nunexpected failure: %s\n", err.text);
    return m;
}

/* parse_fail - parse LEN bytes of RAW with LIM, expecting MB_PERM with a
 * text containing EXPECT and no mail */
static void parse_fail(const char *raw, size_t len, const struct mime_limits *lim,
                       const char *expect)
{
    struct mb_mail *m = (struct mb_mail *)&m; /* must come back NULL */
    struct mb_error err = {MB_OK, ""};
    CU_ASSERT_EQUAL(mime_parse((const unsigned char *)raw, len, lim, &m, &err), MB_PERM);
    CU_ASSERT_EQUAL(err.status, MB_PERM);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.text, expect));
    if (strstr(err.text, expect) == NULL)
        fprintf(stderr, "\nerror was '%s', expected '%s'\n", err.text, expect);
}

/* has_warning - some warning of M contains NEEDLE */
static bool has_warning(const struct mb_mail *m, const char *needle)
{
    for (size_t i = 0; i < m->warning_count; i++)
        if (strstr(m->warnings[i], needle) != NULL)
            return true;
    return false;
}

/* ---- charsets ---- */

/* One text/plain body and one encoded-word Subject per charset; the body
 * uses characters only the superset has where the label is a subset
 * (iso-8859-1 with windows-1252 quotes, gb2312 with a GBK character,
 * ks_c_5601-1987 with a CP949 syllable, shift_jis with a CP932 symbol). */
static const struct {
    const char *charset;
    const char *body;
    const char *text;
    const char *subject;
    const char *subject_text;
} charset_cases[] = {
    {"windows-1252",
     "Caf\xe9 \x96 \x93quoted\x94 costs \x80"
     "5",
     "Caf\xc3\xa9 \xe2\x80\x93 \xe2\x80\x9cquoted\xe2\x80\x9d costs \xe2\x82\xac"
     "5",
     "=?windows-1252?B?Q2Fm6SCA?=", "Caf\xc3\xa9 \xe2\x82\xac"},
    {"iso-8859-1",
     "Price: \x80"
     "5 \x96 \x93ok\x94",
     "Price: \xe2\x82\xac"
     "5 \xe2\x80\x93 \xe2\x80\x9cok\xe2\x80\x9d",
     "=?iso-8859-1?Q?Caf=E9?=", "Caf\xc3\xa9"},
    {"windows-1250", "Za\xbf\xf3\xb3\xe6 g\xea\x9cl\xb9 ja\x9f\xf1",
     "Za\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87 g\xc4\x99\xc5\x9bl\xc4\x85 ja\xc5\xba\xc5\x84",
     "=?windows-1250?B?WmG/87Pm?=", "Za\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87"},
    {"windows-1251", "\xcf\xf0\xe8\xe2\xe5\xf2, \xec\xe8\xf0",
     "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80",
     "=?windows-1251?B?z/Do4uXy?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"},
    {"koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2",
     "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80",
     "=?koi8-r?B?8NLJ18XU?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"},
    {"iso-2022-jp", "\x1b$BF|K\\8l$N%F%-%9%H\x1b(B",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88",
     "=?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
    {"shift_jis",
     "\x93\xfa\x96{\x8c\xea\x82\xcc\x83"
     "e\x83L\x83X\x83g\x87@",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88\xe2\x91\xa0",
     "=?shift_jis?B?k/qWe4zq?=", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
    {"gb2312",
     "\xd6\xd0\xce\xc4\xb2\xe2\xca\xd4\xe9"
     "F",
     "\xe4\xb8\xad\xe6\x96\x87\xe6\xb5\x8b\xe8\xaf\x95\xe9\x95\x95",
     "=?gb2312?B?1tDOxA==?=", "\xe4\xb8\xad\xe6\x96\x87"},
    {"gb18030", "\xd6\xd0\xce\xc4\xb2\xe2\xca\xd4\xa2\xe3",
     "\xe4\xb8\xad\xe6\x96\x87\xe6\xb5\x8b\xe8\xaf\x95\xe2\x82\xac",
     "=?gb18030?B?1tDOxA==?=", "\xe4\xb8\xad\xe6\x96\x87"},
    {"euc-kr", "\xc7\xd1\xb1\xb9\xbe\xee \xc5\xd8\xbd\xba\xc6\xae",
     "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xed\x85\x8d\xec\x8a\xa4\xed\x8a\xb8",
     "=?euc-kr?B?x9Gxub7u?=", "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4"},
    {"ks_c_5601-1987",
     "\x8c"
     "c\xb9\xe6\xb0\xa2\xc7\xcf",
     "\xeb\x98\xa0\xeb\xb0\xa9\xea\xb0\x81\xed\x95\x98",
     "=?ks_c_5601-1987?B?x9Gxub7u?=", "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4"},
    {"utf-7", "Hi Mom -+Jjo--!", "Hi Mom -\xe2\x98\xba-!",
     "=?utf-7?B?SGkgK0pqby0=?=", "Hi \xe2\x98\xba"},
    {"big5",
     "\xc1"
     "c\xc5\xe9\xa4\xa4\xa4\xe5",
     "\xe7\xb9\x81\xe9\xab\x94\xe4\xb8\xad\xe6\x96\x87",
     "=?big5?B?wWPF6Q==?=", "\xe7\xb9\x81\xe9\xab\x94"},
};

static void test_charsets_decode_exactly(void)
{
    for (size_t i = 0; i < sizeof(charset_cases) / sizeof(charset_cases[0]); i++) {
        char *raw =
            xasprintf("From: a@example.com\nSubject: %s\nMIME-Version: 1.0\n"
                      "Content-Type: text/plain; charset=\"%s\"\n"
                      "Content-Transfer-Encoding: 8bit\n\n%s\n",
                      charset_cases[i].subject, charset_cases[i].charset, charset_cases[i].body);
        struct mb_mail *m = parse(raw);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(m->subject, charset_cases[i].subject_text);
        char *expect = xasprintf("%s\n", charset_cases[i].text);
        CU_ASSERT_STRING_EQUAL(m->text, expect);
        CU_ASSERT_EQUAL(m->warning_count, 0);
        if (strcmp(m->text, expect) != 0 || m->warning_count != 0)
            fprintf(stderr, "\n%s: text '%s' (%zu warnings)\n", charset_cases[i].charset, m->text,
                    m->warning_count);
        free(expect);
        mail_free(&m);
        free(raw);
    }
}

/* Mislabeled and unknown charsets: the documented fallback, with a warning. */
static void test_charset_fallbacks_warn(void)
{
    static const struct {
        const char *content_type;
        const char *body;
        const char *text;
        const char *warning; /* NULL: none expected */
    } cases[] = {
        {"text/plain; charset=x-foo", "caf\xe9", "caf\xc3\xa9",
         "unknown charset 'x-foo' in text/plain part: decoded as windows-1252"},
        {"text/plain; charset=x-foo", "caf\xc3\xa9", "caf\xc3\xa9",
         "unknown charset 'x-foo' in text/plain part: decoded as UTF-8"},
        {"text/plain; charset=utf-8", "caf\xe9 and caf\xc3\xa9", "caf\xc3\xa9 and caf\xc3\xa9",
         "declared as utf-8 is not valid UTF-8"},
        {"text/plain", "caf\xe9", "caf\xc3\xa9", "has no charset and is not UTF-8"},
        {"text/plain; charset=us-ascii", "caf\xc3\xa9", "caf\xc3\xa9",
         "declared as us-ascii has 8-bit bytes: decoded as UTF-8"},
        {"text/plain; charset=iso-8859-1", "caf\xc3\xa9", "caf\xc3\xa9",
         "declared as iso-8859-1 is UTF-8"},
        {"text/plain; charset=shift_jis", "\x93\xfa\xff\x96{",
         "\xe6\x97\xa5\xef\xbf\xbd\xe6\x9c\xac", "1 byte that are not valid shift_jis"},
        /* EUC-JP labelled ISO-2022-JP, as Japanese mobile carriers send it */
        {"text/plain; charset=iso-2022-jp", "\xc6\xfc\xcb\xdc\xb8\xec",
         "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
         "declared as iso-2022-jp is not valid iso-2022-jp: decoded as EUC-JP"},
        {"text/plain; charset=unicode-1-1-utf-7", "+ZeVnLIqe-",
         "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *raw = xasprintf("From: a@example.com\nContent-Type: %s\n\n%s", cases[i].content_type,
                              cases[i].body);
        struct mb_mail *m = parse(raw);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(m->text, cases[i].text);
        if (cases[i].warning == NULL) {
            CU_ASSERT_EQUAL(m->warning_count, 0);
            mail_free(&m);
            free(raw);
            continue;
        }
        CU_ASSERT_TRUE(has_warning(m, cases[i].warning));
        if (!has_warning(m, cases[i].warning))
            fprintf(stderr, "\ncase %zu: no warning '%s' (%zu others)\n", i, cases[i].warning,
                    m->warning_count);
        mail_free(&m);
        free(raw);
    }
}

/* An HTML part without a charset parameter is read in its <meta> charset. */
static void test_html_meta_charset(void)
{
    struct mb_mail *m = parse("Content-Type: text/html\n\n<html><head><meta charset=\"koi8-r\">"
                              "</head><body><p>\xf0\xd2\xc9\xd7\xc5\xd4</p></body></html>\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
    CU_ASSERT_EQUAL(m->warning_count, 0);
    mail_free(&m);
}

/* ---- headers ---- */

static void test_broken_encoded_words(void)
{
    static const struct {
        const char *raw;
        const char *subject;
        const char *warning; /* NULL: none expected */
    } cases[] = {
        {"=?utf-8?Q?a?==?utf-8?Q?b?=", "ab", NULL}, /* no space between */
        {"foo=?utf-8?Q?b=C3=A9?=bar",
         "foob\xc3\xa9"
         "bar",
         NULL},                                                        /* inside a word */
        {"=?utf-8?Q?=E2=82?= =?utf-8?Q?=AC?=", "\xe2\x82\xac", NULL},  /* char split in two */
        {"=?utf-8?B?4oI=?=\n =?utf-8?B?rA==?=", "\xe2\x82\xac", NULL}, /* split, folded, B */
        {"=?UTF-8?q?caf=C3=A9?= =?iso-8859-1?q?_na=EFve?=", "caf\xc3\xa9 na\xc3\xafve", NULL},
        {"=?utf-8*en?Q?hello?=", "hello", NULL}, /* RFC 2231 language */
        {"=?x-foo?Q?caf=E9?=", "caf\xc3\xa9",
         "unknown charset 'x-foo' in Subject header: "
         "decoded as windows-1252"},
        {"caf\xe9 cr\xe8me", "caf\xc3\xa9 cr\xc3\xa8me",
         "Subject header has no charset and is not UTF-8: decoded as windows-1252"},
        {"caf\xc3\xa9 (raw UTF-8)", "caf\xc3\xa9 (raw UTF-8)", NULL},
        {"=?utf-8?Q?unterminated", "=?utf-8?Q?unterminated", NULL},
        {"  spaced   out  ", "spaced   out", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *raw = xasprintf("From: a@example.com\nSubject: %s\n\nbody\n", cases[i].raw);
        struct mb_mail *m = parse(raw);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(m->subject, cases[i].subject);
        if (cases[i].warning != NULL) {
            CU_ASSERT_TRUE(has_warning(m, cases[i].warning));
        } else {
            CU_ASSERT_EQUAL(m->warning_count, 0);
        }
        if (strcmp(m->subject, cases[i].subject) != 0)
            fprintf(stderr, "\ncase %zu: subject '%s'\n", i, m->subject);
        mail_free(&m);
        free(raw);
    }
}

static void test_rfc2231_filename(void)
{
    struct mb_mail *m =
        parse("From: a@example.com\nMIME-Version: 1.0\n"
              "Content-Type: multipart/mixed; boundary=XX\n\n"
              "--XX\nContent-Type: text/plain\n\nsee attached\n"
              "--XX\nContent-Type: application/pdf\n"
              "Content-Disposition: attachment;\n"
              " filename*0*=utf-8'de'%C3%84rger%20;\n"
              " filename*1*=mit%20%C3%9Cmlauten;\n"
              " filename*2=.pdf\n"
              "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQKJWZha2UK\n"
              "--XX\nContent-Type: text/plain; name=\"=?utf-8?Q?r=C3=A9sum=C3=A9.txt?=\"\n"
              "Content-Disposition: attachment\n\ncv\n--XX--\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "see attached");
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 2);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].filename, "\xc3\x84rger mit \xc3\x9cmlauten.pdf");
    CU_ASSERT_STRING_EQUAL(m->attachments[0].content_type, "application/pdf");
    CU_ASSERT_EQUAL(m->attachments[0].size, 15);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].sha256,
                           "ef381f48344a471dcadc1393a10d82e85dcfaca7c500a6e17f48f358b701c1f4");
    CU_ASSERT_STRING_EQUAL(m->attachments[1].filename, "r\xc3\xa9sum\xc3\xa9.txt");
    mail_free(&m);
}

static void test_addresses(void)
{
    struct mb_mail *m = parse(
        "From: \"=?utf-8?Q?J=C3=B6rg_M=C3=BCller?=\" <joerg@example.com>, second@example.com\n"
        "Sender: =?iso-8859-1?Q?Ren=E9?= <rene@example.com>\n"
        "Reply-To: Support <support@example.com>\n"
        "To: \"Smith, John\" <john@example.com>, Team: a@example.com, \"B\" <b@example.com>;,\n"
        " jane@example.com (Jane Doe)\n"
        "Cc: Undisclosed recipients:;\n"
        "Subject: addresses\n\nbody\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->from.name, "J\xc3\xb6rg M\xc3\xbcller");
    CU_ASSERT_STRING_EQUAL(m->from.address, "joerg@example.com");
    CU_ASSERT_STRING_EQUAL(m->sender.name, "Ren\xc3\xa9");
    CU_ASSERT_STRING_EQUAL(m->sender.address, "rene@example.com");
    CU_ASSERT_EQUAL_FATAL(m->reply_to.count, 1);
    CU_ASSERT_STRING_EQUAL(m->reply_to.items[0].name, "Support");
    CU_ASSERT_EQUAL_FATAL(m->to.count, 4);
    CU_ASSERT_STRING_EQUAL(m->to.items[0].name, "Smith, John");
    CU_ASSERT_STRING_EQUAL(m->to.items[0].address, "john@example.com");
    CU_ASSERT_PTR_NULL(m->to.items[1].name); /* group members, flattened */
    CU_ASSERT_STRING_EQUAL(m->to.items[1].address, "a@example.com");
    CU_ASSERT_STRING_EQUAL(m->to.items[2].name, "B");
    CU_ASSERT_STRING_EQUAL(m->to.items[3].name, "Jane Doe");
    CU_ASSERT_STRING_EQUAL(m->to.items[3].address, "jane@example.com");
    CU_ASSERT_EQUAL_FATAL(m->cc.count, 1); /* an empty group: its name, no address */
    CU_ASSERT_STRING_EQUAL(m->cc.items[0].name, "Undisclosed recipients");
    CU_ASSERT_PTR_NULL(m->cc.items[0].address);
    mail_free(&m);

    /* encoded words in names are decoded here: a ':' inside one cannot
     * break the list, a word labelled iso-8859-1 holding UTF-8 is UTF-8,
     * and a word ending the field is read safely */
    m = parse("From: =?utf-8?Q?Vestnik_:)?= <news@example.com>\n"
              "To: Heinz =?iso-8859-1?Q?M\xc3\xbcller?= <mueller@example.com>,\n"
              " =?utf-8?Q?bob?=\n\nbody\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->from.name, "Vestnik :)");
    CU_ASSERT_STRING_EQUAL(m->from.address, "news@example.com");
    CU_ASSERT_EQUAL_FATAL(m->to.count, 2);
    CU_ASSERT_STRING_EQUAL(m->to.items[0].name, "Heinz M\xc3\xbcller");
    CU_ASSERT_TRUE(has_warning(m, "To header declared as iso-8859-1 is UTF-8"));
    mail_free(&m);

    m = parse("Subject: nobody\n\nbody\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NULL(m->from.address);
    CU_ASSERT_PTR_NULL(m->from.name);
    CU_ASSERT_EQUAL(m->to.count, 0);
    mail_free(&m);
}

static void test_dates_to_utc(void)
{
    static const struct {
        const char *raw;
        const char *utc; /* NULL: unparsable */
    } cases[] = {
        {"Mon, 1 Jan 2024 10:00:00 +0200", "2024-01-01T08:00:00Z"},
        {"Sun, 31 Dec 2023 23:30:00 -0130", "2024-01-01T01:00:00Z"},
        {"Fri, 21 Nov 1997 09:55:06 -0600 (CST)", "1997-11-21T15:55:06Z"},
        {"Mon, 01 Jan 2024 10:00:00 GMT", "2024-01-01T10:00:00Z"},
        /* zone names are case-insensitive: cst is -0600, not UTC */
        {"Tue, 28 May 1996 12:24:23 cst", "1996-05-28T18:24:23Z"},
        {"Tue, 28 May 1996 12:24:23 Pdt", "1996-05-28T19:24:23Z"},
        {"1 Jan 24 10:00 +0100", "2024-01-01T09:00:00Z"},
        {"Mon, 1 Jan 2024 25:00:00 +0000", NULL},
        {"yesterday at noon", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *raw = xasprintf("From: a@example.com\nDate: %s\n\nbody\n", cases[i].raw);
        struct mb_mail *m = parse(raw);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        if (cases[i].utc != NULL) {
            CU_ASSERT_PTR_NOT_NULL_FATAL(m->date);
            CU_ASSERT_STRING_EQUAL(m->date, cases[i].utc);
        } else {
            CU_ASSERT_PTR_NULL(m->date);
            CU_ASSERT_TRUE(has_warning(m, "unparsable Date header"));
        }
        mail_free(&m);
        free(raw);
    }
    struct mb_mail *m = parse("From: a@example.com\n\nno date\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NULL(m->date);
    CU_ASSERT_EQUAL(m->warning_count, 0);
    mail_free(&m);
}

static void test_message_ids(void)
{
    struct mb_mail *m = parse("Message-ID:  <abc.123@x.example>  (a comment)\n"
                              "In-Reply-To: <parent@x.example> (Joe's message of Monday)\n"
                              "References: <a@x.example>\n <b@\n y.example>,<c@z.example>"
                              " (not <d@x>)\n\nbody\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->message_id, "abc.123@x.example");
    CU_ASSERT_STRING_EQUAL(m->key, "abc.123@x.example");
    CU_ASSERT_STRING_EQUAL(m->in_reply_to, "parent@x.example");
    CU_ASSERT_EQUAL_FATAL(m->reference_count, 3);
    CU_ASSERT_STRING_EQUAL(m->references[0], "a@x.example");
    CU_ASSERT_STRING_EQUAL(m->references[1], "b@y.example");
    CU_ASSERT_STRING_EQUAL(m->references[2], "c@z.example");
    mail_free(&m);

    /* junk around ids, ids without brackets */
    m = parse("Message-ID: bare-id@x.example\n"
              "In-Reply-To: Your message of Mon, 1 Jan 2024 <orig@x.example>\n"
              "References: a@x.example b@x.example\n\nbody\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->message_id, "bare-id@x.example");
    CU_ASSERT_STRING_EQUAL(m->in_reply_to, "orig@x.example");
    CU_ASSERT_EQUAL_FATAL(m->reference_count, 2);
    CU_ASSERT_STRING_EQUAL(m->references[1], "b@x.example");
    mail_free(&m);

    /* no Message-ID: the key is the hash of the raw bytes */
    const char *raw = "From: a@example.com\n\nno id\n";
    m = parse(raw);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NULL(m->message_id);
    char *key = mime_raw_key((const unsigned char *)raw, strlen(raw));
    CU_ASSERT_STRING_EQUAL(m->key, key);
    CU_ASSERT_EQUAL(m->raw_size, strlen(raw));
    free(key);
    mail_free(&m);
}

static void test_raw_key(void)
{
    char *key = mime_raw_key((const unsigned char *)"abc", 3);
    CU_ASSERT_STRING_EQUAL(
        key, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(key);
}

/* ---- body ---- */

static void test_alternative(void)
{
    struct mb_mail *m = parse("From: a@example.com\nMIME-Version: 1.0\n"
                              "Content-Type: multipart/alternative; boundary=\"alt\"\n\n"
                              "preamble\n--alt\nContent-Type: text/plain; charset=utf-8\n"
                              "Content-Transfer-Encoding: quoted-printable\n\n"
                              "Hello =C3=A9l=C3=A8ve,=\nsoft break\n"
                              "--alt\nContent-Type: text/html; charset=utf-8\n\n"
                              "<p>Hello <b>\xc3\xa9l\xc3\xa8ve</b></p>\n--alt--\nepilogue\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "Hello \xc3\xa9l\xc3\xa8ve,soft break");
    CU_ASSERT_STRING_EQUAL(m->html, "<p>Hello <b>\xc3\xa9l\xc3\xa8ve</b></p>");
    CU_ASSERT_EQUAL(m->attachment_count, 0);
    CU_ASSERT_EQUAL(m->warning_count, 0);
    mail_free(&m);
}

/* mixed > alternative > related with a cid image, plus a PDF attachment */
static void test_related_cid_image(void)
{
    struct mb_mail *m = parse(
        "From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=m\n\n"
        "--m\nContent-Type: multipart/alternative; boundary=a\n\n"
        "--a\nContent-Type: text/plain\n\nSee the logo.\n"
        "--a\nContent-Type: multipart/related; boundary=r; type=\"text/html\"\n\n"
        "--r\nContent-Type: text/html\n\n<p>See <img src=\"cid:logo@x.example\"> and "
        "<img src=\"http://example.com/pixel.gif\"></p>\n"
        "--r\nContent-Type: image/png\nContent-ID: <logo@x.example>\n"
        "Content-Transfer-Encoding: base64\n\niVBORw0KGgoAAAANSUhEUg==\n"
        "--r\nContent-Type: image/gif\nContent-Location: http://example.com/pixel.gif\n"
        "Content-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAADs=\n"
        "--r\nContent-Type: image/gif\nContent-ID: <unused@x.example>\n"
        "Content-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAADs=\n"
        "--r--\n--a--\n"
        "--m\nContent-Type: application/pdf\nContent-Disposition: attachment\n"
        "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQKJWZha2UK\n--m--\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "See the logo.");
    CU_ASSERT_PTR_NOT_NULL(strstr(m->html, "cid:logo@x.example"));
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 4);
    struct mb_attachment *png = mail_find_attachment_by_cid(m, "logo@x.example");
    CU_ASSERT_PTR_NOT_NULL_FATAL(png);
    CU_ASSERT_TRUE(png->inline_ref);
    CU_ASSERT_STRING_EQUAL(png->content_type, "image/png");
    CU_ASSERT_EQUAL(png->size, 16);
    CU_ASSERT_EQUAL(memcmp(png->data, "\x89PNG\r\n\x1a\n", 8), 0);
    CU_ASSERT_STRING_EQUAL(png->sha256,
                           "02a3e298f1533f62558c58e4c70edcab9af5a50d62d925fd5390942020fb0fb8");
    CU_ASSERT_STRING_EQUAL(png->filename, "attachment-1.png");
    struct mb_attachment *gif = &m->attachments[1];
    CU_ASSERT_STRING_EQUAL(gif->content_location, "http://example.com/pixel.gif");
    CU_ASSERT_TRUE(gif->inline_ref);
    CU_ASSERT_STRING_EQUAL(gif->sha256,
                           "1f19970f056cd116a5fe3c02422c1ee1ac827136df470b5c89af492620512aa4");
    CU_ASSERT_FALSE(m->attachments[2].inline_ref); /* nothing refers to it */
    CU_ASSERT_STRING_EQUAL(m->attachments[3].content_type, "application/pdf");
    CU_ASSERT_STRING_EQUAL(m->attachments[3].filename, "attachment-4.pdf");
    CU_ASSERT_FALSE(m->attachments[3].inline_ref);
    mail_free(&m);
}

/* Apple Mail: text, an inline image, more text, all in multipart/mixed */
static void test_inline_parts_after_body_are_appended(void)
{
    struct mb_mail *m = parse("Content-Type: multipart/mixed; boundary=b\n\n"
                              "--b\nContent-Type: text/plain\n\nPart one.\n"
                              "--b\nContent-Type: image/gif; name=dot.gif\n"
                              "Content-Disposition: inline; filename=dot.gif\n"
                              "Content-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAADs=\n"
                              "--b\nContent-Type: text/plain\n\nPart two.\n"
                              "--b\nContent-Type: text/html\n\n<p>Part <i>three</i>.</p>\n--b--\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "Part one.\nPart two.\nPart three.");
    CU_ASSERT_PTR_NOT_NULL(strstr(m->html, "Part one."));
    CU_ASSERT_PTR_NOT_NULL(strstr(m->html, "<p>Part <i>three</i>.</p>"));
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].filename, "dot.gif");
    mail_free(&m);
}

static void test_attached_message_is_eml(void)
{
    const char *inner = "From: c@example.com\nSubject: Re: Q3/Q4 report?\n\ninner body";
    char *raw = xasprintf(
        "From: a@example.com\nSubject: fwd\nContent-Type: multipart/mixed; boundary=XX\n\n"
        "--XX\nContent-Type: text/plain\n\nsee attached\n"
        "--XX\nContent-Type: message/rfc822\n\n%s\n--XX--\n",
        inner);
    struct mb_mail *m = parse(raw);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->subject, "fwd");
    CU_ASSERT_STRING_EQUAL(m->text, "see attached");
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
    struct mb_attachment *a = &m->attachments[0];
    CU_ASSERT_STRING_EQUAL(a->content_type, "message/rfc822");
    CU_ASSERT_STRING_EQUAL(a->filename, "Re_ Q3_Q4 report_.eml");
    CU_ASSERT_EQUAL(a->size, strlen(inner));
    CU_ASSERT_EQUAL(memcmp(a->data, inner, strlen(inner)), 0);
    mail_free(&m);
    free(raw);

    /* base64 message/rfc822: gmime leaves it closed; the name still comes from it */
    m = parse("Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nx\n"
              "--XX\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
              "RnJvbTogYwpTdWJqZWN0OiBpbm5lcgoKeQo=\n--XX--\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].filename, "inner.eml");
    CU_ASSERT_EQUAL(m->attachments[0].size, 26);
    mail_free(&m);
}

static void test_uuencoded_attachment(void)
{
    struct mb_mail *m = parse("From: a@example.com\nSubject: uu\n\nHere it is:\n\n"
                              "begin 644 hello.txt\n"
                              "82&5L;&\\L('5U96YC;V1E9\"!W;W)L9\"$*\n`\nend\n\nBye.\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "Here it is:\n\n\nBye.\n");
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].filename, "hello.txt");
    CU_ASSERT_STRING_EQUAL(m->attachments[0].content_type, "text/plain");
    CU_ASSERT_EQUAL(m->attachments[0].size, 24);
    CU_ASSERT_EQUAL(memcmp(m->attachments[0].data, "Hello, uuencoded world!\n", 24), 0);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].sha256,
                           "2010f2d234b032487e23c51a5efc05ed4027023a10da4c3a39a5eedacab0da84");
    mail_free(&m);
}

static void test_html_only_gets_text(void)
{
    struct mb_mail *m =
        parse("Content-Type: text/html; charset=utf-8\n\n"
              "<html><head><title>Title bar</title><style>p { color: red }</style>"
              "<script>alert('x')</script></head><body>\n"
              "<h1>Heading</h1>\n<p>First &amp; <b>bold</b>\n   paragraph &eacute;t&eacute;</p>"
              "<p>Line one<br>Line two</p>\n"
              "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>"
              "<div>A <a href=\"https://example.com/x\">link</a> and "
              "<a href=\"https://example.com/y\">https://example.com/y</a></div>"
              "<script>document.write('no')</script></body></html>\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "Heading\n\nFirst & bold paragraph \xc3\xa9t\xc3\xa9\n\n"
                                    "Line one\nLine two\n\n- one\n- two\n  - nested\n\n"
                                    "A link (https://example.com/x) and https://example.com/y");
    CU_ASSERT_PTR_NULL(strstr(m->text, "alert"));
    CU_ASSERT_PTR_NULL(strstr(m->text, "color"));
    CU_ASSERT_PTR_NULL(strstr(m->text, "Title bar"));
    mail_free(&m);
}

static void test_text_only_gets_escaped_html(void)
{
    struct mb_mail *m = parse("Content-Type: text/plain\n\n"
                              "a < b & \"c\" <script>alert(1)</script>\n  indented\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->html,
                           "a &lt; b &amp; &quot;c&quot; &lt;script&gt;alert(1)&lt;/script&gt;"
                           "<br>\n&nbsp;&nbsp;indented<br>\n");
    mail_free(&m);

    char *h = mime_text_to_html("");
    CU_ASSERT_STRING_EQUAL(h, "");
    free(h);
}

static void test_no_body(void)
{
    struct mb_mail *m = parse("Content-Type: application/octet-stream; name=blob.bin\n"
                              "Content-Transfer-Encoding: base64\n\nSGVsbG8gd29ybGQhIQ==\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "");
    CU_ASSERT_STRING_EQUAL(m->html, "");
    CU_ASSERT_STRING_EQUAL(m->subject, "");
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].filename, "blob.bin");
    CU_ASSERT_EQUAL(m->attachments[0].size, 13);
    mail_free(&m);
}

/* b64_encode - LEN bytes of DATA in base64 lines of 76 characters with
 * CRLF ends; caller owns the result */
static char *b64_encode(const unsigned char *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (i + 1 < len ? (unsigned)data[i + 1] << 8 : 0) |
                     (i + 2 < len ? data[i + 2] : 0);
        char q[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63],
                     i + 1 < len ? alphabet[(v >> 6) & 63] : '=',
                     i + 2 < len ? alphabet[v & 63] : '='};
        buf_append(&b, q, 4);
        if ((i / 3 + 1) % 19 == 0)
            buf_append_str(&b, "\r\n");
    }
    return buf_steal(&b);
}

/* Every byte value, every length modulo 3, through the base64 decoder. */
static void test_base64_round_trip(void)
{
    unsigned char data[3000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(data); i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 16);
    }
    for (size_t len = 2995; len <= 3000; len++) {
        char *enc = b64_encode(data, len);
        char *raw = xasprintf("Content-Type: application/octet-stream; name=r.bin\r\n"
                              "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n",
                              enc);
        struct mb_mail *m = parse(raw);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
        CU_ASSERT_EQUAL(m->attachments[0].size, len);
        CU_ASSERT_EQUAL(memcmp(m->attachments[0].data, data, len), 0);
        CU_ASSERT_EQUAL(m->warning_count, 0);
        mail_free(&m);
        free(raw);
        free(enc);
    }
}

/* Bad mail is still ingested: what could be decoded is, with a warning. */
static void test_repairs(void)
{
    /* base64 with junk and a cut-off last group */
    struct mb_mail *m =
        parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n\ntext\n"
              "--b\nContent-Type: application/octet-stream; name=x.bin\n"
              "Content-Transfer-Encoding: base64\n\nSGVs*bG8gd29y\nbGQhIQ\n--b--\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
    CU_ASSERT_EQUAL(m->attachments[0].size, 13);
    CU_ASSERT_EQUAL(memcmp(m->attachments[0].data, "Hello world!!", 13), 0);
    CU_ASSERT_TRUE(has_warning(m, "malformed base64 in application/octet-stream part 'x.bin'"));
    mail_free(&m);

    /* quoted-printable with a bad escape */
    m = parse("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
              "50=25 off =ZZ today=\n!\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "50% off =ZZ today!\n");
    CU_ASSERT_TRUE(has_warning(m, "malformed quoted-printable in text/plain part"));
    mail_free(&m);

    /* a multipart without boundary: its content is read as text */
    m = parse("Content-Type: multipart/alternative\n\nsome text here\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "some text here\n");
    CU_ASSERT_TRUE(has_warning(m, "multipart without boundary"));
    mail_free(&m);

    /* a missing closing boundary */
    m = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\ncut");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "cut");
    CU_ASSERT_TRUE(has_warning(m, "a multipart/mixed part ends without its closing boundary"));
    mail_free(&m);

    /* two different Subjects: the first wins, said in a warning */
    m = parse("Subject: first\nSubject: second\nTo: a@example.com\nTo: b@example.com\n\nx\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->subject, "first");
    CU_ASSERT_EQUAL(m->to.count, 2);
    CU_ASSERT_TRUE(has_warning(m, "conflicting Subject headers: the first is used"));
    CU_ASSERT_TRUE(has_warning(m, "several To headers: their addresses are merged"));
    mail_free(&m);

    /* an unreadable Content-Type is text/plain (RFC 2045) */
    m = parse("Content-Type: garbage\n\nbody text\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "body text\n");
    CU_ASSERT_TRUE(has_warning(m, "invalid Content-Type 'garbage': read as text/plain"));
    mail_free(&m);

    /* no header at all, even binary: the bytes are the body */
    m = parse("\x01\x02\xff just bytes\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "\x01\x02\xc3\xbf just bytes\n");
    CU_ASSERT_TRUE(has_warning(m, "the message has no header"));
    mail_free(&m);

    /* bare CR line ends */
    m = parse("From: a@example.com\rSubject: old mac\r\rline one\rline two\r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->subject, "old mac");
    CU_ASSERT_STRING_EQUAL(m->text, "line one\nline two\n");
    mail_free(&m);

    /* an mbox From_ line, CRLF line ends */
    m = parse("From someone@example.com Mon Jan  1 10:00:00 2024\r\n"
              "From: a@example.com\r\nSubject: mbox\r\n\r\nbody\r\nline\r\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->subject, "mbox");
    CU_ASSERT_STRING_EQUAL(m->text, "body\nline\n");
    mail_free(&m);

    /* CRLF line ends, and in the decoded text lone CRs, CR LF and NUL bytes */
    m = parse("From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
              "one=0Dtwo=0D=0Athree=00four=00\r\nfive=0D\r\n=0Dsix=0D");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "one\ntwo\nthreefour\nfive\n\n\nsix\n");
    mail_free(&m);
}

/* RFC 2046 5.1.1: a boundary is matched at the start of a delimiter line;
 * text after it on that line is ignored, never a reason to lose the parts. */
static void test_delimiter_line_with_text_after_boundary(void)
{
    struct mb_mail *m = parse("Content-Type: multipart/mixed; boundary=\"b\"\n\n"
                              "--b This should be ignored Content-Type: message/rfc822\n"
                              "Content-Type: text/plain\n\nfirst part\n"
                              "--b\tand this\n"
                              "Content-Type: application/pdf; name=a.pdf\n\n%PDF\n"
                              "--b-- not part of the epilogue\n"
                              "epilogue\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "first part");
    CU_ASSERT_EQUAL_FATAL(m->attachment_count, 1);
    CU_ASSERT_STRING_EQUAL(m->attachments[0].filename, "a.pdf");
    CU_ASSERT_EQUAL(m->attachments[0].size, 4);
    CU_ASSERT_TRUE(has_warning(m, "a boundary line has text after the boundary"));
    mail_free(&m);

    /* a boundary with a blank inside that starts like another one is its
     * own delimiter, not "--b" with junk; nothing is blanked or warned */
    m = parse("Content-Type: multipart/mixed; boundary=b\n\n"
              "--b\nContent-Type: multipart/alternative; boundary=\"b x\"\n\n"
              "--b x\nContent-Type: text/plain\n\ninner\n--b x--\n"
              "--b\nContent-Type: text/plain\n\n-- \nsignature\n--b--\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "inner\n-- \nsignature");
    CU_ASSERT_EQUAL(m->attachment_count, 0);
    CU_ASSERT_EQUAL(m->warning_count, 0);
    mail_free(&m);

    /* the same with the boundary folded in its header (Dovecot's test
     * message): "foo bar" is the boundary, not "foo" */
    m = parse("Content-Type: multipart/mixed; boundary=\"foo\n bar\"\n\n"
              "--foo bar\nContent-Type: text/plain\n\nhello\n--foo bar--\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->text, "hello");
    CU_ASSERT_EQUAL(m->warning_count, 0);
    mail_free(&m);
}

/* ---- HTML helpers ---- */

/* map_cid - mime_ref_map_fn turning cid:logo@x into files[0] */
static const char *map_cid(void *ctx, const char *ref)
{
    (*(int *)ctx)++;
    return strcmp(ref, "cid:logo@x") == 0 ? "files[0]" : NULL;
}

static void test_rewrite_refs(void)
{
    int seen = 0;
    char *out =
        mime_html_rewrite_refs("<p>Hi <img src=\"cid:logo@x\"> <a href=\"http://a.example/\">"
                               "a &amp; b</a> caf\xc3\xa9</p>text after",
                               map_cid, &seen);
    CU_ASSERT_STRING_EQUAL(out,
                           "<p>Hi <img src=\"files[0]\"> <a href=\"http://a.example/\">a &amp; "
                           "b</a> caf\xc3\xa9</p>text after");
    CU_ASSERT_EQUAL(seen, 2);
    free(out);

    out = mime_html_rewrite_refs("<!DOCTYPE html><html><head><title>t</title></head>"
                                 "<body background=\"cid:logo@x\"><p>x</p></body></html>",
                                 map_cid, &seen);
    CU_ASSERT_STRING_EQUAL(out, "<!DOCTYPE html>\n<html><head><title>t</title></head>"
                                "<body background=\"files[0]\"><p>x</p></body></html>");
    free(out);

    /* URLs the map leaves alone are written exactly as they were */
    out = mime_html_rewrite_refs("<a href=\"http://x.example/\xc3\xa4 b?q=1&amp;r=[2]\">x</a>",
                                 map_cid, &seen);
    CU_ASSERT_STRING_EQUAL(out, "<a href=\"http://x.example/\xc3\xa4 b?q=1&amp;r=[2]\">x</a>");
    free(out);

    out = mime_html_rewrite_refs("", map_cid, &seen);
    CU_ASSERT_STRING_EQUAL(out, "");
    free(out);
}

static void test_html_to_text_limit(void)
{
    /* "é" is two bytes: a cut never splits it */
    char *t = mime_html_to_text("<p>\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9</p>", 5);
    CU_ASSERT_STRING_EQUAL(t, "\xc3\xa9\xc3\xa9");
    free(t);
    t = mime_html_to_text("<p>a</p><p>b</p>", 0);
    CU_ASSERT_STRING_EQUAL(t, "");
    free(t);
    /* nesting is walked without recursion; libxml2 itself stops reading
     * past 256 levels, so a hostile depth only loses text, never crashes */
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 100; i++)
        buf_append_str(&b, "<div><span>");
    buf_append_str(&b, "deep");
    t = mime_html_to_text(b.data, 1000);
    CU_ASSERT_STRING_EQUAL(t, "deep");
    free(t);
    for (int i = 0; i < 20000; i++)
        buf_append_str(&b, "<div>");
    t = mime_html_to_text(b.data, 1000);
    CU_ASSERT_PTR_NOT_NULL(t);
    free(t);
    buf_free(&b);
}

/* ---- limits ---- */

static void test_limit_nesting(void)
{
    struct mime_limits lim;
    mime_limits_default(&lim);
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "From: a@example.com\nSubject: deep\n");
    for (int i = 0; i < 10000; i++)
        buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
    buf_append_str(&b, "Content-Type: text/plain\n\nhello\n");
    for (int i = 9999; i >= 0; i--)
        buf_printf(&b, "--b%d--\n", i);
    parse_fail(b.data, b.len, &lim, "MIME nesting deeper than 20 levels");
    buf_free(&b);

    /* message/rfc822 inside message/rfc822 counts as nesting too */
    buf_init(&b, 0);
    for (int i = 0; i < 30; i++)
        buf_append_str(&b, "Subject: wrap\nContent-Type: message/rfc822\n\n");
    buf_append_str(&b, "Subject: core\n\ncore\n");
    parse_fail(b.data, b.len, &lim, "MIME nesting deeper than 20 levels");
    buf_free(&b);

    /* past gmime's own limit (1024 levels) the error says so */
    lim.max_depth = 5000;
    lim.max_parts = 5000;
    buf_init(&b, 0);
    for (int i = 0; i < 1100; i++)
        buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
    buf_append_str(&b, "\nhello\n");
    parse_fail(b.data, b.len, &lim, "MIME nesting deeper than 1024 levels");
    buf_free(&b);

    /* exactly at a small limit is fine, one deeper is not */
    mime_limits_default(&lim);
    lim.max_depth = 2;
    const char *two = "Content-Type: multipart/mixed; boundary=a\n\n--a\n"
                      "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nleaf\n--b--\n--a--\n";
    struct mb_mail *m = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(mime_parse((const unsigned char *)two, strlen(two), &lim, &m, &err), MB_OK);
    CU_ASSERT_STRING_EQUAL(m->text, "leaf");
    mail_free(&m);
    lim.max_depth = 1;
    parse_fail(two, strlen(two), &lim, "MIME nesting deeper than 1 levels");
}

static void test_limit_parts(void)
{
    struct mime_limits lim;
    mime_limits_default(&lim);
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=p\n\n");
    for (int i = 0; i < 5000; i++)
        buf_printf(&b, "--p\nContent-Type: text/plain\n\npart %d\n", i);
    buf_append_str(&b, "--p--\n");
    parse_fail(b.data, b.len, &lim, "more than 1000 MIME parts");

    /* a part bomb is refused before gmime builds its tree */
    buf_reset(&b);
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=p\n\n");
    for (int i = 0; i < 200000; i++)
        buf_append_str(&b, "--p\n\n");
    parse_fail(b.data, b.len, &lim, "more than 1000 MIME parts");

    /* many lines starting with "--" that are not delimiters are fine */
    buf_reset(&b);
    buf_append_str(&b, "Content-Type: text/plain\n\n");
    for (int i = 0; i < 20000; i++)
        buf_append_str(&b, "-- an SQL comment\n");
    struct mb_mail *m = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(mime_parse((const unsigned char *)b.data, b.len, &lim, &m, &err), MB_OK);
    mail_free(&m);
    buf_free(&b);
}

static void test_limit_header_length(void)
{
    struct mime_limits lim;
    mime_limits_default(&lim);
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "From: a@example.com\nX-Long: ");
    for (int i = 0; i < (1 << 20); i += 16)
        buf_append_str(&b, "aaaaaaaaaaaaaaaa");
    buf_append_str(&b, "\n\nbody\n");
    parse_fail(b.data, b.len, &lim, "header field 'X-Long' is longer than 65536 bytes");

    /* folded: the unfolded length counts */
    buf_reset(&b);
    buf_append_str(&b, "Subject: start");
    for (int i = 0; i < 6000; i++)
        buf_append_str(&b, "\n folded words");
    buf_append_str(&b, "\n\nbody\n");
    parse_fail(b.data, b.len, &lim, "header field 'Subject' is longer than 65536 bytes");

    /* in a nested part */
    buf_reset(&b);
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=b\n\n--b\nX-Part: ");
    for (int i = 0; i < 70000; i++)
        buf_append(&b, "x", 1);
    buf_append_str(&b, "\n\nbody\n--b--\n");
    parse_fail(b.data, b.len, &lim, "header field 'X-Part' is longer than 65536 bytes");

    /* in an attached message, which only the tree walk sees */
    buf_reset(&b);
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                       "Content-Type: message/rfc822\n\nX-Inner: ");
    for (int i = 0; i < 70000; i++)
        buf_append(&b, "y", 1);
    buf_append_str(&b, "\n\ninner\n--b--\n");
    parse_fail(b.data, b.len, &lim, "header field 'X-Inner' is longer than 65536 bytes");

    /* too many fields */
    buf_reset(&b);
    for (int i = 0; i < 20000; i++)
        buf_append_str(&b, "X-A: b\n");
    buf_append_str(&b, "\nbody\n");
    parse_fail(b.data, b.len, &lim, "more than 10000 fields");
    buf_free(&b);
}

static void test_limit_size_and_empty(void)
{
    struct mime_limits lim;
    mime_limits_default(&lim);
    lim.max_message_size = 100;
    char raw[101];
    memset(raw, 'a', sizeof(raw));
    memcpy(raw, "Subject: x\n\n", 12);
    parse_fail(raw, sizeof(raw), &lim,
               "message of 101 bytes is larger than the limit of 100 bytes");
    struct mb_mail *m = NULL;
    struct mb_error err;
    CU_ASSERT_EQUAL(mime_parse((const unsigned char *)raw, 100, &lim, &m, &err), MB_OK);
    mail_free(&m);
    mime_limits_default(&lim);
    parse_fail("", 0, &lim, "empty message");
}

static void test_limits_default(void)
{
    struct mime_limits lim;
    mime_limits_default(&lim);
    CU_ASSERT_EQUAL(lim.max_message_size, 50u << 20);
    CU_ASSERT_EQUAL(lim.max_depth, 20);
    CU_ASSERT_EQUAL(lim.max_parts, 1000);
    CU_ASSERT_EQUAL(lim.max_header_length, 64u << 10);
    CU_ASSERT_EQUAL(lim.max_html_text, 4u << 20);
}

int main(void)
{
    static const struct unit_test charset_tests[] = {
        {"every charset decodes exactly", test_charsets_decode_exactly},
        {"mislabeled and unknown charsets fall back with a warning", test_charset_fallbacks_warn},
        {"HTML without charset parameter uses its meta charset", test_html_meta_charset},
        {NULL, NULL},
    };
    static const struct unit_test header_tests[] = {
        {"broken encoded words", test_broken_encoded_words},
        {"RFC 2231 and RFC 2047 file names", test_rfc2231_filename},
        {"addresses, names, groups", test_addresses},
        {"dates with offsets to UTC", test_dates_to_utc},
        {"message ids, key", test_message_ids},
        {"raw key", test_raw_key},
        {NULL, NULL},
    };
    static const struct unit_test body_tests[] = {
        {"multipart/alternative", test_alternative},
        {"related cid image, Content-Location, attachment", test_related_cid_image},
        {"inline parts after the body are appended", test_inline_parts_after_body_are_appended},
        {"attached message becomes .eml", test_attached_message_is_eml},
        {"uuencoded file becomes an attachment", test_uuencoded_attachment},
        {"HTML-only mail gets its text", test_html_only_gets_text},
        {"text-only mail gets escaped HTML", test_text_only_gets_escaped_html},
        {"no body at all", test_no_body},
        {"base64 round trip", test_base64_round_trip},
        {"bad mail is repaired and warned", test_repairs},
        {"delimiter line with text after the boundary",
         test_delimiter_line_with_text_after_boundary},
        {NULL, NULL},
    };
    static const struct unit_test html_tests[] = {
        {"rewrite_refs keeps fragments and documents", test_rewrite_refs},
        {"html_to_text limit and deep nesting", test_html_to_text_limit},
        {NULL, NULL},
    };
    static const struct unit_test limit_tests[] = {
        {"nesting", test_limit_nesting},
        {"parts", test_limit_parts},
        {"header length and count", test_limit_header_length},
        {"size and empty input", test_limit_size_and_empty},
        {"documented defaults", test_limits_default},
        {NULL, NULL},
    };
    static const struct unit_suite suites[] = {
        {"charsets", charset_tests, NULL, NULL}, {"headers", header_tests, NULL, NULL},
        {"body", body_tests, NULL, NULL},        {"html", html_tests, NULL, NULL},
        {"limits", limit_tests, NULL, NULL},     {NULL, NULL, NULL, NULL},
    };
    mime_global_init();
    int rc = unit_run(suites);
    mime_global_deinit();
    return rc;
}
