/* bench_parse - how much slower mailbridge's parse+map is than the least
 * any gmime consumer does, on a generated corpus shaped like support mail.
 *
 * The corpus (default 2,000 messages, deterministic for a seed) is built in
 * memory; then the bare side (gmime parse, walk every part, decode every
 * leaf into a null stream) and the mailbridge side (mime_parse,
 * mail_json_encode) take turns over it R times, each pass in its own forked
 * child so its peak RSS is its own; the best pass counts. Figures are
 * printed, never asserted. */
#include <errno.h>
#include <gmime/gmime.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "connectors/mail_json.h"
#include "lib/buf.h"
#include "lib/xalloc.h"
#include "mime/mime.h"

#define BENCH_TARGET 0.70 /* mailbridge must keep at least this share of the bare rate */

/* The kinds of mail in the corpus and their share in percent. */
enum kind {
    KIND_REPLY,      /* plain text reply with quoted history and a long References chain */
    KIND_NEWSLETTER, /* multipart/alternative text + HTML */
    KIND_INLINE,     /* HTML with 1-3 inline cid: images */
    KIND_ATTACHMENT, /* text with a PDF or DOCX attachment of 100 KB - 1 MB */
    KIND_LATIN1,     /* ISO-8859-1, quoted-printable */
    KIND_CP1251,     /* windows-1251, base64 */
    KIND_JIS,        /* ISO-2022-JP, 7bit */
    KIND_COUNT
};

static const struct {
    const char *name;
    unsigned percent;
} kinds[KIND_COUNT] = {
    [KIND_REPLY] = {"plain replies", 35},
    [KIND_NEWSLETTER] = {"text+html newsletters", 20},
    [KIND_INLINE] = {"html with cid images", 15},
    [KIND_ATTACHMENT] = {"pdf/docx attachments", 12},
    [KIND_LATIN1] = {"iso-8859-1 qp", 6},
    [KIND_CP1251] = {"windows-1251 base64", 6},
    [KIND_JIS] = {"iso-2022-jp", 6},
};

struct options {
    unsigned long count;
    unsigned long long seed;
    unsigned runs;
};

struct message {
    char *data; /* owned */
    size_t len;
};

struct corpus {
    struct message *msgs; /* owned */
    size_t count;
    size_t bytes;
    unsigned per_kind[KIND_COUNT];
};

/* What one side measured in its child, sent back through a pipe. */
struct result {
    double wall;         /* seconds of the pass (the fastest, once folded) */
    double cpu;          /* user + system seconds (the least, once folded) */
    long peak_kb;        /* ru_maxrss of the child: the inherited corpus included */
    long start_kb;       /* RSS of the child before its pass */
    unsigned long fails; /* messages the side could not handle, per pass */
};

/* rng_next - splitmix64: small, fast and the same everywhere for a seed */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* rng_range - uniform in [LO, HI] */
static size_t rng_range(uint64_t *state, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(state) % (hi - lo + 1));
}

/* pick - one of COUNT strings */
static const char *pick(uint64_t *state, const char *const *words, size_t count)
{
    return words[rng_next(state) % count];
}
#define PICK(state, words) pick((state), (words), sizeof(words) / sizeof((words)[0]))

static const char *const words_en[] = {
    "order",   "invoice",  "delivery", "please",     "account", "password", "refund",   "the",
    "we",      "your",     "ticket",   "thanks",     "again",   "support",  "could",    "you",
    "check",   "status",   "since",    "Monday",     "still",   "not",      "working",  "printer",
    "error",   "message",  "attached", "screenshot", "team",    "update",   "urgent",   "customer",
    "number",  "shipment", "received", "damaged",    "replace", "warranty", "contract", "renewal",
    "meeting", "tomorrow", "regards",  "issue",      "server",  "login",    "portal",   "access",
};
static const char *const words_de[] = {
    "Bestellung", "Rücksendung", "Größe",     "für",    "schön",     "Grüße",    "Lieferung",
    "Rechnung",   "bitte",       "über",      "möchte", "Kündigung", "Änderung", "Straße",
    "zurück",     "Frühjahr",    "natürlich", "Mängel", "prüfen",    "Qualität", "leider",
};
static const char *const words_ru[] = {
    "Здравствуйте", "заказ",   "доставка", "спасибо",  "проблема",  "оплата", "счёт",
    "пожалуйста",   "возврат", "товар",    "договор",  "срочно",    "ответ",  "клиент",
    "номер",        "сегодня", "неделю",   "менеджер", "поддержка", "ошибка",
};
static const char *const words_ja[] = {
    "お問い合わせ", "ありがとうございます",
    "注文",         "配送",
    "確認",         "よろしくお願いします",
    "請求書",       "返品",
    "担当者",       "本日",
    "至急",         "ご連絡",
    "お客様",       "商品",
    "不具合",       "対応",
    "。",           "、",
};
static const char *const first_names[] = {
    "Anna",  "Jürgen", "Łukasz", "Olga",  "Ивана", "José", "Mette", "Søren", "Chloé", "Björn",
    "Peter", "Mary",   "John",   "Linda", "田中",  "Zoë",  "Ahmed", "Priya", "Wei",   "Nuno",
};
static const char *const last_names[] = {
    "Müller", "Smith", "Kowalski", "Петрова", "García", "Nielsen", "Dubois",  "Øvergaard",
    "Jones",  "Brown", "Schäfer",  "太郎",    "Rossi",  "Novák",   "O'Brien", "Nakamura",
};
static const char *const domains[] = {
    "example.com",        "mail.example.org",  "kunde.example.de",    "shop.example.ru",
    "corp.example.co.jp", "gmail.example.net", "outlook.example.net",
};
static const char *const mailers[] = {
    "Microsoft Outlook 16.0",  "Apple Mail (2.3774.500.171)", "Mozilla Thunderbird 115.6.0",
    "Roundcube Webmail/1.6.5", "iPhone Mail (21C66)",
};

/* add_words - N words of WORDS joined by SEP, wrapped near 70 bytes */
static void add_words(struct buf *b, uint64_t *rng, const char *const *words, size_t nwords,
                      size_t n, const char *sep)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        const char *w = pick(rng, words, nwords);
        if (col > 64) {
            buf_append_str(b, "\n");
            col = 0;
        } else if (i > 0) {
            buf_append_str(b, sep);
            col += strlen(sep);
        }
        buf_append_str(b, w);
        col += strlen(w);
    }
    buf_append_str(b, "\n");
}

/* add_paragraphs - COUNT paragraphs of English prose */
static void add_paragraphs(struct buf *b, uint64_t *rng, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        add_words(b, rng, words_en, sizeof(words_en) / sizeof(words_en[0]), rng_range(rng, 20, 90),
                  " ");
        buf_append_str(b, "\n");
    }
}

/* add_encoded - DATA (LEN bytes) in the transfer ENCODING */
static void add_encoded(struct buf *b, const void *data, size_t len, GMimeContentEncoding encoding)
{
    GMimeEncoding state;
    g_mime_encoding_init_encode(&state, encoding);
    char *out = xmalloc(g_mime_encoding_outlen(&state, len));
    size_t n = g_mime_encoding_flush(&state, data, len, out);
    buf_append(b, out, n);
    free(out);
}

/* add_random_bytes - base64 of LEN bytes that start with MAGIC and are random after */
static void add_random_bytes(struct buf *b, uint64_t *rng, const char *magic, size_t len)
{
    unsigned char *data = xmalloc(len + 8);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t r = rng_next(rng);
        memcpy(data + i, &r, 8);
    }
    memcpy(data, magic, strlen(magic));
    add_encoded(b, data, len, GMIME_CONTENT_ENCODING_BASE64);
    free(data);
}

/* add_b64_chars - N random characters of the base64 alphabet (a signature) */
static void add_b64_chars(struct buf *b, uint64_t *rng, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i++)
        buf_append(b, &alphabet[rng_next(rng) % 64], 1);
}

/* converted - UTF8 in CHARSET, owned by the caller (the corpus stays valid
 * even if a character has no mapping: it is replaced) */
static char *converted(const char *utf8, const char *charset, size_t *len_r)
{
    gsize len = 0;
    char *out = g_convert_with_fallback(utf8, -1, charset, "UTF-8", "?", NULL, &len, NULL);
    if (out == NULL) {
        fprintf(stderr, "bench_parse: iconv cannot convert to %s\n", charset);
        exit(1);
    }
    char *copy = xmemdup(out, len);
    g_free(out);
    *len_r = len;
    return copy;
}

/* add_header_text - "NAME: " and UTF8 as RFC 2047 encoded words in CHARSET when needed */
static void add_header_text(struct buf *b, const char *name, const char *utf8, const char *charset)
{
    char *enc = g_mime_utils_header_encode_text(NULL, utf8, charset);
    buf_printf(b, "%s: %s\n", name, enc);
    g_free(enc);
}

/* add_address - "NAME: Display Name <addr>" with an encoded display name */
static void add_address(struct buf *b, uint64_t *rng, const char *name, const char *charset)
{
    char *display = xasprintf("%s %s", PICK(rng, first_names), PICK(rng, last_names));
    char *enc = g_mime_utils_header_encode_phrase(NULL, display, charset);
    buf_printf(b, "%s: %s <user%u@%s>\n", name, enc, (unsigned)rng_range(rng, 1, 9999),
               PICK(rng, domains));
    g_free(enc);
    free(display);
}

/* add_msgid - "<hex.n@domain>" */
static void add_msgid(struct buf *b, uint64_t *rng)
{
    buf_printf(b, "<%016" PRIx64 ".%u@%s>", rng_next(rng), (unsigned)rng_range(rng, 1, 99999),
               PICK(rng, domains));
}

/* add_headers - the envelope a real mail carries: Received chain, DKIM,
 * addresses, ids; a reply gets In-Reply-To and a References chain of
 * 3-40 ids */
static void add_headers(struct buf *b, uint64_t *rng, const char *subject, const char *charset,
                        bool reply)
{
    buf_printf(b, "Return-Path: <bounce-%u@%s>\n", (unsigned)rng_range(rng, 1, 1u << 30),
               PICK(rng, domains));
    for (size_t i = rng_range(rng, 2, 5); i > 0; i--)
        buf_printf(b,
                   "Received: from mx%zu.%s (mx%zu.%s [192.0.2.%zu])\n\tby mx.example.net "
                   "(Postfix) with ESMTPS id %08" PRIX64 "\n\tfor <support@example.net>; "
                   "Mon, 5 Jan 2026 10:%02zu:%02zu +0100\n",
                   i, PICK(rng, domains), i, PICK(rng, domains), rng_range(rng, 1, 254),
                   rng_next(rng) >> 32, rng_range(rng, 0, 59), rng_range(rng, 0, 59));
    buf_append_str(b, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;\n"
                      "\ts=sel1; h=from:to:subject:date:message-id; bh=");
    add_b64_chars(b, rng, 44);
    buf_append_str(b, ";\n\tb=");
    for (int i = 0; i < 4; i++) { /* a 2048-bit signature folded over four lines */
        add_b64_chars(b, rng, 86);
        buf_append_str(b, i < 3 ? "\n\t" : "\n");
    }
    buf_printf(b, "Date: Mon, %zu Jan 2026 %02zu:%02zu:%02zu +0100\n", rng_range(rng, 1, 28),
               rng_range(rng, 0, 23), rng_range(rng, 0, 59), rng_range(rng, 0, 59));
    add_address(b, rng, "From", charset);
    add_address(b, rng, "To", charset);
    if (rng_range(rng, 0, 2) == 0)
        add_address(b, rng, "Cc", charset);
    add_header_text(b, "Subject", subject, charset);
    buf_append_str(b, "Message-ID: ");
    add_msgid(b, rng);
    buf_append_str(b, "\n");
    if (reply) {
        size_t n = rng_range(rng, 3, 40);
        buf_append_str(b, "References:");
        for (size_t i = 0; i < n; i++) {
            buf_append_str(b, i == 0 ? " " : "\n\t");
            add_msgid(b, rng);
        }
        buf_append_str(b, "\nIn-Reply-To: ");
        add_msgid(b, rng);
        buf_append_str(b, "\n");
    }
    buf_printf(b, "X-Mailer: %s\nMIME-Version: 1.0\n", PICK(rng, mailers));
}

/* add_quoted_history - 1-4 earlier mails, each quoted one level deeper */
static void add_quoted_history(struct buf *b, uint64_t *rng)
{
    size_t depth = rng_range(rng, 1, 4);
    for (size_t level = 1; level <= depth; level++) {
        struct buf para;
        buf_init(&para, 0);
        buf_printf(&para, "On Mon, %zu Jan 2026, %s %s wrote:\n", rng_range(rng, 1, 28),
                   PICK(rng, first_names), PICK(rng, last_names));
        add_paragraphs(&para, rng, rng_range(rng, 1, 3));
        for (const char *line = para.data; *line != '\0';) {
            size_t n = strcspn(line, "\n");
            for (size_t q = 0; q < level; q++)
                buf_append_str(b, ">");
            buf_append_str(b, n > 0 ? " " : "");
            buf_append(b, line, n);
            buf_append_str(b, "\n");
            line += n + (line[n] == '\n');
        }
        buf_free(&para);
    }
}

/* add_html - a newsletter-style HTML body of about SIZE bytes, with the cid: images */
static void add_html(struct buf *b, uint64_t *rng, size_t size, const char *const *cids,
                     size_t ncids)
{
    size_t start = b->len;
    buf_append_str(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                      "<style>td{font-family:Arial,sans-serif;font-size:14px}</style>"
                      "</head><body>\n<table width=\"600\" cellpadding=\"0\">\n");
    for (size_t i = 0; i < ncids; i++)
        buf_printf(b, "<tr><td><img src=\"cid:%s\" width=\"600\" alt=\"banner\"></td></tr>\n",
                   cids[i]);
    while (b->len - start < size) {
        buf_printf(b, "<tr><td style=\"padding:8px 16px\"><h2>%s %s</h2>\n<p>", PICK(rng, words_en),
                   PICK(rng, words_en));
        add_words(b, rng, words_en, sizeof(words_en) / sizeof(words_en[0]), rng_range(rng, 30, 80),
                  " ");
        buf_printf(b,
                   "</p>\n<p><a href=\"https://news.example.com/a/%u?utm_source=nl&amp;"
                   "utm_medium=email\">Read more &raquo;</a></p></td></tr>\n",
                   (unsigned)rng_range(rng, 1, 1u << 20));
    }
    buf_append_str(b, "</table>\n<p style=\"color:#888\">Unsubscribe: "
                      "<a href=\"https://news.example.com/u\">here</a></p></body></html>\n");
}

/* add_text_part - a text/plain part (headers and body) of TEXT in quoted-printable */
static void add_text_part(struct buf *b, const char *text)
{
    buf_append_str(b, "Content-Type: text/plain; charset=\"utf-8\"\n"
                      "Content-Transfer-Encoding: quoted-printable\n\n");
    add_encoded(b, text, strlen(text), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    buf_append_str(b, "\n");
}

/* gen_reply - KIND_REPLY */
static void gen_reply(struct buf *b, uint64_t *rng)
{
    bool utf8 = rng_range(rng, 0, 2) == 0;
    add_headers(b, rng,
                utf8 ? "Re: Ihre Bestellung – Rückfrage zur Lieferung" : "Re: printer error",
                "utf-8", true);
    buf_append_str(b, utf8 ? "Content-Type: text/plain; charset=utf-8\n"
                             "Content-Transfer-Encoding: 8bit\n\n"
                           : "Content-Type: text/plain; charset=us-ascii\n\n");
    add_paragraphs(b, rng, rng_range(rng, 1, 3));
    if (utf8)
        add_words(b, rng, words_de, sizeof(words_de) / sizeof(words_de[0]), 30, " ");
    add_quoted_history(b, rng);
}

/* gen_newsletter - KIND_NEWSLETTER */
static void gen_newsletter(struct buf *b, uint64_t *rng)
{
    add_headers(b, rng, "Neuigkeiten im Januar: 20 % Rabatt für Stammkunden", "utf-8", false);
    buf_append_str(b, "Content-Type: multipart/alternative; boundary=\"=_alt_1\"\n\n"
                      "This is a multi-part message in MIME format.\n\n--=_alt_1\n");
    struct buf text;
    buf_init(&text, 0);
    add_paragraphs(&text, rng, rng_range(rng, 4, 12));
    add_text_part(b, text.data);
    buf_free(&text);
    buf_append_str(b, "--=_alt_1\nContent-Type: text/html; charset=\"utf-8\"\n");
    struct buf html;
    buf_init(&html, 0);
    add_html(&html, rng, rng_range(rng, 10, 60) * 1024, NULL, 0);
    if (rng_range(rng, 0, 1) == 0) {
        buf_append_str(b, "Content-Transfer-Encoding: quoted-printable\n\n");
        add_encoded(b, html.data, html.len, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    } else {
        buf_append_str(b, "Content-Transfer-Encoding: base64\n\n");
        add_encoded(b, html.data, html.len, GMIME_CONTENT_ENCODING_BASE64);
    }
    buf_free(&html);
    buf_append_str(b, "\n--=_alt_1--\n");
}

/* gen_inline - KIND_INLINE: related { alternative { text, html }, images } */
static void gen_inline(struct buf *b, uint64_t *rng)
{
    add_headers(b, rng, "Screenshots of the error", "utf-8", rng_range(rng, 0, 1) == 0);
    size_t nimg = rng_range(rng, 1, 3);
    char cids[3][64];
    const char *cid_ptrs[3];
    for (size_t i = 0; i < nimg; i++) {
        snprintf(cids[i], sizeof(cids[i]), "image%03zu.png@01DA%08" PRIX64, i + 1,
                 rng_next(rng) >> 32);
        cid_ptrs[i] = cids[i];
    }
    buf_append_str(b, "Content-Type: multipart/related; boundary=\"=_rel\"; "
                      "type=\"multipart/alternative\"\n\n--=_rel\n"
                      "Content-Type: multipart/alternative; boundary=\"=_alt\"\n\n--=_alt\n");
    struct buf text;
    buf_init(&text, 0);
    add_paragraphs(&text, rng, rng_range(rng, 1, 4));
    add_text_part(b, text.data);
    buf_free(&text);
    buf_append_str(b, "--=_alt\nContent-Type: text/html; charset=\"utf-8\"\n"
                      "Content-Transfer-Encoding: quoted-printable\n\n");
    struct buf html;
    buf_init(&html, 0);
    add_html(&html, rng, rng_range(rng, 2, 8) * 1024, cid_ptrs, nimg);
    add_encoded(b, html.data, html.len, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    buf_free(&html);
    buf_append_str(b, "\n--=_alt--\n");
    for (size_t i = 0; i < nimg; i++) {
        buf_printf(b,
                   "\n--=_rel\nContent-Type: image/png; name=\"image%03zu.png\"\n"
                   "Content-Disposition: inline; filename=\"image%03zu.png\"\n"
                   "Content-ID: <%s>\nContent-Transfer-Encoding: base64\n\n",
                   i + 1, i + 1, cids[i]);
        add_random_bytes(b, rng, "\x89PNG\r\n\x1a\n", rng_range(rng, 5, 60) * 1024);
    }
    buf_append_str(b, "--=_rel--\n");
}

/* gen_attachment - KIND_ATTACHMENT: mixed { text, pdf or docx with an encoded name } */
static void gen_attachment(struct buf *b, uint64_t *rng)
{
    bool pdf = rng_range(rng, 0, 1) == 0;
    add_headers(b, rng, "Rechnung März – bitte prüfen", "iso-8859-1", rng_range(rng, 0, 1) == 0);
    buf_append_str(b, "Content-Type: multipart/mixed; boundary=\"----=_NextPart_000_0001\"\n\n"
                      "------=_NextPart_000_0001\n");
    struct buf text;
    buf_init(&text, 0);
    add_paragraphs(&text, rng, rng_range(rng, 1, 3));
    add_text_part(b, text.data);
    buf_free(&text);
    buf_append_str(b, "------=_NextPart_000_0001\n");
    if (pdf) { /* Outlook style: an encoded word inside the quotes */
        char *enc = g_mime_utils_header_encode_text(NULL, "Rechnung_März_2026.pdf", "utf-8");
        buf_printf(b,
                   "Content-Type: application/pdf; name=\"%s\"\n"
                   "Content-Disposition: attachment; filename=\"%s\"\n",
                   enc, enc);
        g_free(enc);
    } else { /* RFC 2231 */
        buf_append_str(
            b, "Content-Type: application/vnd.openxmlformats-officedocument."
               "wordprocessingml.document;\n\tname*=utf-8''Angebot_Gr%C3%B6%C3%9Fe_XL.docx\n"
               "Content-Disposition: attachment;\n"
               "\tfilename*=utf-8''Angebot_Gr%C3%B6%C3%9Fe_XL.docx\n");
    }
    buf_append_str(b, "Content-Transfer-Encoding: base64\n\n");
    add_random_bytes(b, rng, pdf ? "%PDF-1.7\n" : "PK\x03\x04", rng_range(rng, 100, 1024) * 1024);
    buf_append_str(b, "------=_NextPart_000_0001--\n");
}

/* gen_charset - KIND_LATIN1, KIND_CP1251, KIND_JIS: a text body and headers
 * in a legacy charset with its usual transfer encoding */
static void gen_charset(struct buf *b, uint64_t *rng, enum kind kind)
{
    struct buf text;
    buf_init(&text, 0);
    const char *charset, *subject;
    GMimeContentEncoding cte;
    if (kind == KIND_LATIN1) {
        charset = "iso-8859-1";
        subject = "Rückfrage zu Ihrer Bestellung Nr. 4711 – Größe ändern";
        cte = GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
        for (size_t i = rng_range(rng, 2, 6); i > 0; i--)
            add_words(&text, rng, words_de, sizeof(words_de) / sizeof(words_de[0]),
                      rng_range(rng, 20, 80), " ");
    } else if (kind == KIND_CP1251) {
        charset = "windows-1251";
        subject = "Вопрос по заказу №4711: доставка и оплата";
        cte = GMIME_CONTENT_ENCODING_BASE64;
        for (size_t i = rng_range(rng, 2, 6); i > 0; i--)
            add_words(&text, rng, words_ru, sizeof(words_ru) / sizeof(words_ru[0]),
                      rng_range(rng, 20, 80), " ");
    } else {
        charset = "iso-2022-jp";
        subject = "ご注文についてのお問い合わせ（至急）";
        cte = GMIME_CONTENT_ENCODING_7BIT;
        for (size_t i = rng_range(rng, 2, 6); i > 0; i--)
            add_words(&text, rng, words_ja, sizeof(words_ja) / sizeof(words_ja[0]),
                      rng_range(rng, 10, 40), "");
    }
    add_headers(b, rng, subject, charset, rng_range(rng, 0, 1) == 0);
    buf_printf(b, "Content-Type: text/plain; charset=\"%s\"\nContent-Transfer-Encoding: %s\n\n",
               charset, g_mime_content_encoding_to_string(cte));
    size_t len;
    char *body = converted(text.data, charset, &len);
    if (cte == GMIME_CONTENT_ENCODING_7BIT)
        buf_append(b, body, len);
    else
        add_encoded(b, body, len, cte);
    free(body);
    buf_free(&text);
}

/* kind_for - the kind of the next message, drawn in the shares of KINDS */
static enum kind kind_for(uint64_t *rng)
{
    unsigned roll = (unsigned)rng_range(rng, 0, 99);
    for (int k = 0; k < KIND_COUNT; k++) {
        if (roll < kinds[k].percent)
            return (enum kind)k;
        roll -= kinds[k].percent;
    }
    return KIND_REPLY;
}

/* corpus_build - OPT->count messages from OPT->seed */
static void corpus_build(struct corpus *c, const struct options *opt)
{
    uint64_t rng = opt->seed;
    c->msgs = xcalloc(opt->count, sizeof(*c->msgs));
    c->count = opt->count;
    c->bytes = 0;
    for (size_t i = 0; i < c->count; i++) {
        struct buf b;
        buf_init(&b, 0);
        enum kind k = kind_for(&rng);
        c->per_kind[k]++;
        switch (k) {
        case KIND_REPLY:
            gen_reply(&b, &rng);
            break;
        case KIND_NEWSLETTER:
            gen_newsletter(&b, &rng);
            break;
        case KIND_INLINE:
            gen_inline(&b, &rng);
            break;
        case KIND_ATTACHMENT:
            gen_attachment(&b, &rng);
            break;
        default: /* the legacy charsets */
            gen_charset(&b, &rng, k);
            break;
        }
        c->msgs[i].len = b.len;
        c->msgs[i].data = buf_steal(&b);
        c->bytes += c->msgs[i].len;
    }
}

/* corpus_free - release every message */
static void corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->msgs[i].data);
    free(c->msgs);
    c->msgs = NULL;
}

/* decode_tree - write the decoded content of every leaf under OBJ to SINK */
static void decode_tree(GMimeObject *obj, GMimeStream *sink)
{
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        for (int i = 0; i < g_mime_multipart_get_count(mp); i++)
            decode_tree(g_mime_multipart_get_part(mp, i), sink);
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner != NULL)
            decode_tree(g_mime_message_get_mime_part(inner), sink);
    } else if (GMIME_IS_PART(obj)) {
        GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(obj));
        if (content != NULL)
            g_mime_data_wrapper_write_to_stream(content, sink);
    }
}

/* rss_kb - the resident set now (Linux /proc/self/statm); 0 when unknown */
static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* bare_one - the least any gmime consumer does: parse, decode every leaf;
 * false when gmime found no message */
static bool bare_one(const struct message *m, GMimeStream *sink)
{
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(m->data, m->len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_object_unref(stream);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    if (msg == NULL)
        return false;
    GMimeObject *body = g_mime_message_get_mime_part(msg);
    if (body != NULL)
        decode_tree(body, sink);
    g_object_unref(msg);
    return true;
}

/* bare_run - one pass of the bare side; the number of failures */
static unsigned long bare_run(const struct corpus *c)
{
    GMimeStream *sink = g_mime_stream_null_new();
    unsigned long fails = 0;
    for (size_t i = 0; i < c->count; i++)
        fails += !bare_one(&c->msgs[i], sink);
    g_object_unref(sink);
    return fails;
}

/* mailbridge_run - one pass of mailbridge's parse and map to JSON; the
 * number of failures */
static unsigned long mailbridge_run(const struct corpus *c)
{
    struct mime_limits limits;
    mime_limits_default(&limits);
    unsigned long fails = 0;
    for (size_t i = 0; i < c->count; i++) {
        struct mb_mail *mail = NULL;
        struct mb_error err;
        if (mime_parse((const unsigned char *)c->msgs[i].data, c->msgs[i].len, &limits, &mail,
                       &err) != MB_OK) {
            fails++;
            continue;
        }
        char source[64]; /* what `mailbridge parse` passes for a file */
        snprintf(source, sizeof(source), "file:corpus/%zu.eml", i);
        free(mail_json_encode(mail, source));
        mail_free(&mail);
    }
    return fails;
}

/* ts_seconds - B - A in seconds */
static double ts_seconds(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* cpu_seconds - user + system time in RU */
static double cpu_seconds(const struct rusage *ru)
{
    return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
           (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

/* measure - one timed pass of RUN over C */
static struct result measure(unsigned long (*run)(const struct corpus *), const struct corpus *c)
{
    struct result res = {0};
    res.start_kb = rss_kb();
    struct timespec t0, t1;
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    res.fails = run(c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &u1);
    res.wall = ts_seconds(&t0, &t1);
    res.cpu = cpu_seconds(&u1) - cpu_seconds(&u0);
    res.peak_kb = u1.ru_maxrss;
    return res;
}

/* measure_in_child - measure() in a forked child, so the peak RSS is that
 * side's own (plus the corpus both share); exits on failure */
static struct result measure_in_child(const char *side, unsigned long (*run)(const struct corpus *),
                                      const struct corpus *c)
{
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "bench_parse: pipe: %s\n", strerror(errno));
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench_parse: fork: %s\n", strerror(errno));
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        struct result r = measure(run, c);
        /* exit, not _exit: a sanitizer build then checks the side for leaks */
        exit(write(fds[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(fds[1]);
    struct result r;
    ssize_t n = read(fds[0], &r, sizeof(r));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (n != (ssize_t)sizeof(r) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_parse: the %s side failed (status 0x%x)\n", side, status);
        exit(1);
    }
    return r;
}

/* keep_best - fold the pass R into BEST: least wall and least CPU time,
 * each on its own (on a shared machine the two need not come from the same
 * pass), and the highest peak RSS */
static void keep_best(struct result *best, const struct result *r, bool first)
{
    if (first || r->wall < best->wall)
        best->wall = r->wall;
    if (first || r->cpu < best->cpu)
        best->cpu = r->cpu;
    if (first || r->peak_kb - r->start_kb > best->peak_kb - best->start_kb) {
        best->peak_kb = r->peak_kb;
        best->start_kb = r->start_kb;
    }
    best->fails = r->fails; /* the same every pass: the corpus does not change */
}

/* print_side - one line of figures */
static void print_side(const char *side, const struct result *r, const struct corpus *c)
{
    printf("%-12s %10.0f %9.1f %12.1f %12.1f %9.1f %8lu\n", side, (double)c->count / r->wall,
           (double)c->bytes / 1e6 / r->wall, r->cpu / (double)c->count * 1e6,
           (double)r->peak_kb / 1024.0, (double)(r->peak_kb - r->start_kb) / 1024.0, r->fails);
}

/* parse_number - a decimal option value in [MIN, MAX], or exit with usage */
static unsigned long long parse_number(const char *opt, const char *value, unsigned long long min,
                                       unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long v = value != NULL ? strtoull(value, &end, 10) : 0;
    if (value == NULL || errno != 0 || *end != '\0' || *value == '-' || v < min || v > max) {
        fprintf(stderr, "bench_parse: %s needs a number from %llu to %llu\n", opt, min, max);
        exit(2);
    }
    return v;
}

/* parse_options - --count N, --seed S, --runs R */
static void parse_options(int argc, char **argv, struct options *opt)
{
    *opt = (struct options){2000, 1, 3};
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--count") == 0)
            opt->count = (unsigned long)parse_number(argv[i], value, 1, 1000000);
        else if (strcmp(argv[i], "--seed") == 0)
            opt->seed = parse_number(argv[i], value, 0, UINT64_MAX);
        else if (strcmp(argv[i], "--runs") == 0)
            opt->runs = (unsigned)parse_number(argv[i], value, 1, 100);
        else {
            fprintf(stderr, "usage: bench_parse [--count N] [--seed S] [--runs R]\n");
            exit(strcmp(argv[i], "--help") == 0 ? 0 : 2);
        }
        i++;
    }
}

int main(int argc, char **argv)
{
    struct options opt;
    parse_options(argc, argv, &opt);
    mime_global_init(); /* gmime for the generator's encoders and both sides */
    struct corpus c = {0};
    corpus_build(&c, &opt);
    printf("corpus: %zu messages, %.1f MB, seed %llu, best of %u runs\n", c.count,
           (double)c.bytes / 1e6, opt.seed, opt.runs);
    for (int k = 0; k < KIND_COUNT; k++)
        printf("  %5u %s\n", c.per_kind[k], kinds[k].name);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS after generating the corpus: %.1f MB (shared by both sides)\n\n",
           (double)ru.ru_maxrss / 1024.0);

    /* The sides take turns, so a change in the machine's load hits both. */
    struct result bare = {0}, mb = {0};
    for (unsigned r = 0; r < opt.runs; r++) {
        struct result pass = measure_in_child("bare", bare_run, &c);
        keep_best(&bare, &pass, r == 0);
        pass = measure_in_child("mailbridge", mailbridge_run, &c);
        keep_best(&mb, &pass, r == 0);
    }
    printf("%-12s %10s %9s %12s %12s %9s %8s\n", "side", "msgs/s", "MB/s", "CPU us/msg",
           "peak RSS MB", "own MB", "failed");
    print_side("bare gmime", &bare, &c);
    print_side("mailbridge", &mb, &c);
    /* The verdict uses CPU time: other processes on the machine stretch wall
     * time, not the work each side does. */
    double ratio = bare.cpu / mb.cpu;
    printf("\nratio mailbridge/bare (throughput by CPU time): %.2f (target >= %.2f): %s\n", ratio,
           BENCH_TARGET, ratio >= BENCH_TARGET ? "PASS" : "BELOW");
    printf("ratio mailbridge/bare (throughput by wall time): %.2f\n", bare.wall / mb.wall);
    corpus_free(&c);
    mime_global_deinit();
    return 0;
}
