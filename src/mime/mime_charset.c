/* mime_charset - bytes in a declared, missing or wrong charset into UTF-8.
 *
 * Fallback order, for body text and for the Subject and the encoded words
 * of display names alike (mime_header.c; what gmime decodes itself - raw
 * 8-bit display names, comments - falls back to UTF-8, then windows-1252):
 *   1. The declared charset, read as its common superset: US-ASCII and
 *      ISO-8859-1 as windows-1252, GB2312/GBK as GB18030, EUC-KR and
 *      KS_C_5601-1987 as CP949, Shift_JIS as CP932, Big5 as Big5-HKSCS,
 *      ISO-2022-JP as ISO-2022-JP-2, TIS-620 as CP874; others by their name
 *      (through gmime's alias table and iconv).
 *      - A single-byte charset (ISO-8859-x, windows-125x, KOI8) whose bytes
 *        are valid UTF-8 with non-ASCII in them was mislabeled: UTF-8.
 *      - Bytes the declared charset cannot decode: if the whole text is valid
 *        UTF-8 it is read as UTF-8; else if a sibling charset of the same
 *        script decodes all of it, that one (Japanese: EUC-JP, CP932,
 *        ISO-2022-JP; Chinese: GB18030, Big5) - mobile carriers label
 *        EUC-JP as ISO-2022-JP; else each bad byte becomes U+FFFD.
 *   2. No charset, an unknown one, or declared UTF-8 / US-ASCII that is not:
 *      UTF-8 where the bytes are valid UTF-8, every other byte as
 *      windows-1252 (its five unassigned bytes become U+FFFD).
 * Every repair adds one warning naming the part. */
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mime/mime_int.h"

enum cs_kind {
    CS_NONE,    /* no charset declared */
    CS_UTF8,    /* declared UTF-8 */
    CS_ASCII,   /* declared US-ASCII */
    CS_CP1252,  /* ISO-8859-1 or windows-1252: decoded by the table below */
    CS_ICONV,   /* anything iconv can open */
    CS_UNKNOWN, /* a label nobody knows */
};

struct charset {
    enum cs_kind kind;
    iconv_t cd;       /* owned (through gmime's cache): for CS_ICONV */
    const char *name; /* borrowed (static or LABEL): the name iconv opened */
    bool single_byte; /* a mislabeled UTF-8 text is detectable */
    bool ascii_safe;  /* pure ASCII bytes mean ASCII in this charset */
    char label[48];   /* the declared label, lower-case, for warnings */
};

/* Labels read as a wider charset than they name, as mail clients do, and
 * aliases iconv does not know. */
static const struct {
    const char *label;
    const char *iconv_name;
} aliases[] = {
    {"gb2312", "GB18030"},
    {"gbk", "GB18030"},
    {"x-gbk", "GB18030"},
    {"cp936", "GB18030"},
    {"euc-cn", "GB18030"},
    {"csgb2312", "GB18030"},
    {"gb_2312-80", "GB18030"},
    {"chinese", "GB18030"},
    {"euc-kr", "CP949"},
    {"ks_c_5601-1987", "CP949"},
    {"ks_c_5601-1989", "CP949"},
    {"ksc_5601", "CP949"},
    {"ksc5601", "CP949"},
    {"korean", "CP949"},
    {"cseuckr", "CP949"},
    {"shift_jis", "CP932"},
    {"shift-jis", "CP932"},
    {"sjis", "CP932"},
    {"x-sjis", "CP932"},
    {"ms_kanji", "CP932"},
    {"csshiftjis", "CP932"},
    {"windows-31j", "CP932"},
    {"big5", "BIG5-HKSCS"},
    {"big-5", "BIG5-HKSCS"},
    {"cn-big5", "BIG5-HKSCS"},
    {"x-x-big5", "BIG5-HKSCS"},
    {"csbig5", "BIG5-HKSCS"},
    {"iso-2022-jp", "ISO-2022-JP-2"},
    {"csiso2022jp", "ISO-2022-JP-2"},
    {"tis-620", "CP874"},
    {"iso-8859-11", "CP874"},
    {"windows-874", "CP874"},
    {"euc-jp", "EUC-JP"},
    {"x-euc-jp", "EUC-JP"},
    {"eucjp", "EUC-JP"},
    {"unicode-1-1-utf-7", "UTF-7"},
    {"utf7", "UTF-7"},
    {"iso-8859-8-i", "ISO-8859-8"},
    {"macintosh", "MACINTOSH"},
    {"x-mac-roman", "MACINTOSH"},
};

/* charsets tried, in order, when text does not decode in the declared one */
static const struct {
    const char *charset;
    const char *siblings[3];
} families[] = {
    {"ISO-2022-JP-2", {"EUC-JP", "CP932", NULL}}, {"EUC-JP", {"CP932", "ISO-2022-JP-2", NULL}},
    {"CP932", {"EUC-JP", "ISO-2022-JP-2", NULL}}, {"GB18030", {"BIG5-HKSCS", NULL, NULL}},
    {"BIG5-HKSCS", {"GB18030", NULL, NULL}},
};

static const char *const utf8_labels[] = {"utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8"};
static const char *const ascii_labels[] = {"us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us",
                                           "csascii",  "us",    "iso-ir-6",       "cp367"};
static const char *const cp1252_labels[] = {
    "iso-8859-1",   "iso8859-1", "iso_8859-1", "latin1",         "latin-1",
    "l1",           "cp819",     "ibm819",     "iso-ir-100",     "csisolatin1",
    "windows-1252", "cp1252",    "x-cp1252",   "iso_8859-1:1987"};
/* prefixes of charsets where a byte is a character */
static const char *const single_byte_prefixes[] = {"iso-8859-",   "iso8859-", "iso_8859-",
                                                   "windows-125", "cp125",    "koi8"};
/* prefixes of charsets where ASCII bytes do not stand for ASCII text */
static const char *const not_ascii_prefixes[] = {
    "utf-7", "utf7", "unicode-1-1-utf-7", "iso-2022", "hz", "utf-16", "utf-32", "ucs-", "unicode"};

/* windows-1252 0x80..0x9F; 0 marks the five unassigned bytes */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* in_list - S equals one of the N strings of LIST */
static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* has_prefix_in - S starts with one of the N strings of LIST */
static bool has_prefix_in(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(s, list[i], strlen(list[i])) == 0)
            return true;
    return false;
}

/* charset_resolve - classify the declared LABEL (NULL allowed) into CS;
 * a CS_ICONV result holds an open descriptor for charset_release() */
static void charset_resolve(const char *label, struct charset *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->cd = (iconv_t)-1;
    cs->ascii_safe = true;
    cs->kind = CS_NONE;
    if (label == NULL)
        return;
    /* trim blanks, quotes and a stray ';' that broken mailers leave around */
    while (*label == ' ' || *label == '\t' || *label == '"' || *label == '\'')
        label++;
    size_t n = strlen(label);
    while (n > 0 && strchr(" \t\"';", label[n - 1]) != NULL)
        n--;
    if (n == 0)
        return;
    size_t keep = n < sizeof(cs->label) - 1 ? n : sizeof(cs->label) - 1;
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)label[i];
        cs->label[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : (c < 0x20 || c > 0x7e ? '?' : c));
    }
    cs->label[keep] = '\0';
    cs->kind = CS_UNKNOWN;
    if (n != keep)
        return; /* no real charset has so long a name */
    cs->ascii_safe = !has_prefix_in(cs->label, not_ascii_prefixes, N_ELEMENTS(not_ascii_prefixes));
    cs->single_byte =
        has_prefix_in(cs->label, single_byte_prefixes, N_ELEMENTS(single_byte_prefixes));
    if (in_list(cs->label, utf8_labels, N_ELEMENTS(utf8_labels))) {
        cs->kind = CS_UTF8;
        return;
    }
    if (in_list(cs->label, ascii_labels, N_ELEMENTS(ascii_labels))) {
        cs->kind = CS_ASCII;
        return;
    }
    if (in_list(cs->label, cp1252_labels, N_ELEMENTS(cp1252_labels))) {
        cs->kind = CS_CP1252;
        cs->single_byte = true;
        return;
    }
    cs->name = cs->label;
    for (size_t i = 0; i < N_ELEMENTS(aliases); i++)
        if (strcmp(cs->label, aliases[i].label) == 0)
            cs->name = aliases[i].iconv_name;
    cs->cd = g_mime_iconv_open("UTF-8", cs->name);
    if (cs->cd != (iconv_t)-1)
        cs->kind = CS_ICONV;
}

/* charset_release - close what charset_resolve opened */
static void charset_release(struct charset *cs)
{
    if (cs->cd != (iconv_t)-1)
        g_mime_iconv_close(cs->cd);
    cs->cd = (iconv_t)-1;
}

/* utf8_seq - length of the valid UTF-8 sequence at P (N bytes left), 0 if
 * there is none (overlong forms and surrogates are not valid) */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* ascii_run - how many bytes from P on (N left) are ASCII, eight at a time */
static size_t ascii_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL)
            break;
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

/* mime_utf8_valid - S is valid UTF-8, eight ASCII bytes at a time */
bool mime_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        i += ascii_run(s + i, len - i);
        if (i == len)
            break;
        size_t k = utf8_seq(s + i, len - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* has_non_ascii - some byte of S is 0x80 or above */
static bool has_non_ascii(const unsigned char *s, size_t len)
{
    return ascii_run(s, len) != len;
}

/* put_codepoint - U (below U+10000) as UTF-8 into OUT; returns the length */
static size_t put_codepoint(unsigned u, char *out)
{
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xC0 | (u >> 6));
        out[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (u >> 12));
    out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
    out[2] = (char)(0x80 | (u & 0x3F));
    return 3;
}

/* cp1252_char - the code point of windows-1252 byte C (U+FFFD if unassigned) */
static unsigned cp1252_char(unsigned char c)
{
    if (c < 0x80 || c >= 0xA0)
        return c;
    return cp1252_high[c - 0x80] ? cp1252_high[c - 0x80] : 0xFFFD;
}

/* append_cut - append N bytes of DATA to B; when B refuses, append the
 * longest prefix that fits and ends on a UTF-8 character boundary, and
 * return false */
static bool append_cut(struct buf *b, const void *data, size_t n)
{
    if (buf_append(b, data, n))
        return true;
    if (b->limit > b->len) {
        const unsigned char *p = data;
        size_t room = b->limit - b->len;
        while (room > 0 && (p[room] & 0xC0) == 0x80)
            room--;
        buf_append(b, p, room);
    }
    return false;
}

/* decode_bytewise - append S to OUT: with UTF8_FIRST, valid UTF-8
 * sequences are kept and other bytes read as windows-1252; without it every
 * byte is windows-1252. Returns false when OUT is full. */
static bool decode_bytewise(const unsigned char *s, size_t len, bool utf8_first, struct buf *out)
{
    size_t i = 0;
    while (i < len) {
        size_t run = ascii_run(s + i, len - i);
        if (utf8_first) {
            size_t k;
            while (i + run < len && (k = utf8_seq(s + i + run, len - i - run)) > 0)
                run += k + ascii_run(s + i + run + k, len - i - run - k);
        }
        if (run > 0 && !append_cut(out, s + i, run))
            return false;
        i += run;
        if (i < len) {
            char u[3];
            if (!append_cut(out, u, put_codepoint(cp1252_char(s[i]), u)))
                return false;
            i++;
        }
    }
    return true;
}

/* decode_iconv - append the conversion of S through CD to OUT; a byte CD
 * cannot convert becomes U+FFFD. Returns the number of such bytes; *FULL_R
 * is set when OUT refused to grow. */
static size_t decode_iconv(iconv_t cd, const unsigned char *s, size_t len, struct buf *out,
                           bool *full_r)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    char chunk[4096];
    char *in = (char *)s;
    size_t inleft = len, bad = 0;
    iconv(cd, NULL, NULL, NULL, NULL);
    *full_r = false;
    while (inleft > 0) {
        char *o = chunk;
        size_t oleft = sizeof(chunk);
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        int e = errno;
        if (!append_cut(out, chunk, (size_t)(o - chunk))) {
            *full_r = true;
            return bad;
        }
        if (r != (size_t)-1 || e == E2BIG)
            continue;
        /* EILSEQ, or EINVAL for a sequence cut off at the end */
        bad++;
        in++;
        inleft--;
        if (!append_cut(out, replacement, 3)) {
            *full_r = true;
            return bad;
        }
    }
    char *o = chunk;
    size_t oleft = sizeof(chunk);
    iconv(cd, NULL, NULL, &o, &oleft); /* the shift state of ISO-2022 and UTF-7 */
    if (!append_cut(out, chunk, (size_t)(o - chunk)))
        *full_r = true;
    return bad;
}

/* decode_sibling - append DATA to OUT in the first sibling of CS's
 * charset that decodes every byte of it; its name, or NULL (OUT untouched) */
static const char *decode_sibling(const struct charset *cs, const unsigned char *data, size_t len,
                                  struct buf *out)
{
    for (size_t i = 0; i < N_ELEMENTS(families); i++) {
        if (g_ascii_strcasecmp(cs->name, families[i].charset) != 0)
            continue;
        for (size_t k = 0; k < 3 && families[i].siblings[k] != NULL; k++) {
            iconv_t cd = g_mime_iconv_open("UTF-8", families[i].siblings[k]);
            if (cd == (iconv_t)-1)
                continue;
            struct buf tmp;
            bool full;
            buf_init(&tmp, out->limit);
            size_t bad = decode_iconv(cd, data, len, &tmp, &full);
            g_mime_iconv_close(cd);
            if (bad == 0 && !full && append_cut(out, tmp.data != NULL ? tmp.data : "", tmp.len)) {
                buf_free(&tmp);
                return families[i].siblings[k];
            }
            buf_free(&tmp);
        }
    }
    return NULL;
}

/* normalize_text - from offset START of B on: drop NUL bytes, CRLF and a
 * lone CR become LF. Mail read over IMAP has a CR on every line, so the
 * text between CRs is moved in runs rather than a byte at a time. */
static void normalize_text(struct buf *b, size_t start)
{
    if (b->data == NULL || start >= b->len)
        return;
    char *r = b->data + start, *end = b->data + b->len;
    char *cr = memchr(r, '\r', (size_t)(end - r)), *nul = memchr(r, '\0', (size_t)(end - r));
    if (cr == NULL && nul == NULL)
        return; /* the common case for mail from files */
    char *w = r;
    while (r < end) {
        if (cr != NULL && cr < r)
            cr = memchr(r, '\r', (size_t)(end - r));
        if (nul != NULL && nul < r)
            nul = memchr(r, '\0', (size_t)(end - r));
        char *stop = cr != NULL ? cr : end;
        if (nul != NULL && nul < stop)
            stop = nul;
        memmove(w, r, (size_t)(stop - r));
        w += stop - r;
        r = stop;
        if (r == end)
            break;
        if (*r++ == '\r' && (r == end || *r != '\n'))
            *w++ = '\n'; /* a lone CR; before a LF it is just dropped */
    }
    b->len = (size_t)(w - b->data);
    b->data[b->len] = '\0';
}

/* mime_decode_text - DATA in UTF-8 by the fallback order at the top of this file */
bool mime_decode_text(struct mime_ctx *ctx, const char *charset, const unsigned char *data,
                      size_t len, const char *what, struct buf *out)
{
    struct charset cs;
    size_t start = out->len;
    bool ok = true;
    charset_resolve(charset, &cs);
    struct mb_mail *m = ctx->mail;

    if (cs.ascii_safe && !has_non_ascii(data, len)) {
        ok = append_cut(out, data, len);
    } else if (cs.kind == CS_UTF8 || cs.kind == CS_NONE || cs.kind == CS_ASCII ||
               cs.kind == CS_UNKNOWN) {
        bool valid = mime_utf8_valid(data, len);
        /* valid UTF-8 is its own decoding: one copy instead of a second walk */
        ok = valid ? append_cut(out, data, len) : decode_bytewise(data, len, true, out);
        const char *as = valid ? "UTF-8" : "windows-1252";
        if (cs.kind == CS_UTF8 && !valid)
            mail_add_warning(m,
                             "%s declared as utf-8 is not valid UTF-8: bad bytes decoded as "
                             "windows-1252",
                             what);
        else if (cs.kind == CS_NONE && !valid)
            mail_add_warning(m, "%s has no charset and is not UTF-8: decoded as windows-1252",
                             what);
        else if (cs.kind == CS_ASCII)
            mail_add_warning(m, "%s declared as us-ascii has 8-bit bytes: decoded as %s", what, as);
        else if (cs.kind == CS_UNKNOWN)
            mail_add_warning(m, "unknown charset '%s' in %s: decoded as %s", cs.label, what, as);
    } else if (cs.single_byte && has_non_ascii(data, len) && mime_utf8_valid(data, len)) {
        ok = append_cut(out, data, len);
        mail_add_warning(m, "%s declared as %s is UTF-8: decoded as UTF-8", what, cs.label);
    } else if (cs.kind == CS_CP1252) {
        ok = decode_bytewise(data, len, false, out);
    } else {
        bool full;
        size_t bad = decode_iconv(cs.cd, data, len, out, &full);
        const char *sibling = NULL;
        ok = !full;
        if (bad > 0) {
            out->len = start;
            out->data[start] = '\0';
        }
        if (bad > 0 && mime_utf8_valid(data, len)) {
            ok = append_cut(out, data, len);
            mail_add_warning(m, "%s declared as %s is UTF-8: decoded as UTF-8", what, cs.label);
        } else if (bad > 0 && (sibling = decode_sibling(&cs, data, len, out)) != NULL) {
            mail_add_warning(m, "%s declared as %s is not valid %s: decoded as %s", what, cs.label,
                             cs.label, sibling);
        } else if (bad > 0) {
            decode_iconv(cs.cd, data, len, out, &full);
            ok = !full;
            mail_add_warning(m, "%s has %zu byte%s that are not valid %s: replaced with U+FFFD",
                             what, bad, bad == 1 ? "" : "s", cs.label);
        }
    }
    charset_release(&cs);
    normalize_text(out, start);
    return ok;
}

/* mime_utf8_dup - a valid UTF-8 copy of S (see mime_int.h) */
char *mime_utf8_dup(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    if (mime_utf8_valid(u, len) && memchr(s, '\0', len) == NULL)
        return xmemdup(s, len);
    struct buf b;
    buf_init(&b, 3 * len + 1); /* a byte never grows past 3 bytes of UTF-8 */
    decode_bytewise(u, len, true, &b);
    normalize_text(&b, 0);
    return buf_steal(&b);
}
