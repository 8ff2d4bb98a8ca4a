/* mime - mime_parse(): raw bytes into struct mb_mail, within the limits.
 *
 * Order of work: cheap checks on the raw bytes (size, header field lengths
 * and counts, a bound on the number of parts) so gmime never sees a bomb;
 * text after the boundary on delimiter lines blanked (RFC 2046 5.1.1);
 * one gmime parse from memory; a walk over the tree checking depth, part
 * count, header lengths and closing boundaries; then the headers
 * (mime_header.c) and the body (mime_body.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <nettle/sha2.h>

#include "lib/xalloc.h"
#include "mime/mime_int.h"

/* Most header fields one header block may have. Real mail has tens (a long
 * Received: chain); every field costs gmime an object, so a block of
 * millions of tiny fields is refused before gmime sees it. */
#define MIME_MAX_HEADER_FIELDS 10000
/* Lines opening a part a raw message may have beyond max_parts before it
 * is refused unparsed. gmime builds about 1.3 KB per part (a flat message
 * of a million parts takes it seconds and a gigabyte), so this bounds its
 * work; the slack lets a merely deep message reach the exact nesting check
 * and its clearer error. */
#define MIME_DELIMITER_SLACK 16384
/* gmime's own nesting limit (MAX_LEVEL in gmime-parser.c) */
#define GMIME_MAX_LEVEL 1024

/* mime_limits_default - the documented defaults (see mime.h) */
void mime_limits_default(struct mime_limits *l)
{
    l->max_message_size = 50u << 20;
    l->max_depth = 20;
    l->max_parts = 1000;
    l->max_header_length = 64u << 10;
    l->max_html_text = 4u << 20;
}

/* mime_global_init - gmime and libxml2 set up once per process */
void mime_global_init(void)
{
    g_mime_init();
    xmlInitParser();
}

/* mime_global_deinit - undo mime_global_init */
void mime_global_deinit(void)
{
    g_mime_shutdown();
    xmlCleanupParser();
}

/* mime_sha256_hex - lower-case hex SHA-256 (nettle: SHA-NI where the CPU has it) */
void mime_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    struct sha256_ctx sha;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&sha);
    sha256_update(&sha, len, data);
    sha256_digest(&sha, sizeof(digest), digest);
    for (size_t i = 0; i < sizeof(digest); i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
}

/* mime_raw_key - "sha256:<hex>" of the raw bytes (see mime.h) */
char *mime_raw_key(const unsigned char *raw, size_t len)
{
    char hex[65];
    mime_sha256_hex(raw, len, hex);
    return xasprintf("sha256:%s", hex);
}

/* ---- raw pre-scan ---- */

struct line {
    const unsigned char *p; /* the line, without its end */
    size_t len;
};

/* next_line - the line at *POS (before END) into L, advancing *POS; false
 * at the end. Lines end at EOL ('\n', or '\r' in a message with bare CR
 * line ends); a CR before a LF is not part of the line. */
static bool next_line(const unsigned char **pos, const unsigned char *end, char eol, struct line *l)
{
    if (*pos >= end)
        return false;
    const unsigned char *nl = memchr(*pos, eol, (size_t)(end - *pos));
    const unsigned char *stop = nl != NULL ? nl : end;
    l->p = *pos;
    l->len = (size_t)(stop - *pos);
    if (eol == '\n' && l->len > 0 && l->p[l->len - 1] == '\r')
        l->len--;
    *pos = nl != NULL ? nl + 1 : end;
    return true;
}

/* field_name_len - length of the field name if L starts a header field
 * ("Name:" with optional blanks before the colon), else 0 */
static size_t field_name_len(const struct line *l)
{
    size_t i = 0;
    while (i < l->len && l->p[i] > 32 && l->p[i] < 127 && l->p[i] != ':')
        i++;
    size_t name = i;
    while (i < l->len && (l->p[i] == ' ' || l->p[i] == '\t'))
        i++;
    return name > 0 && i < l->len && l->p[i] == ':' ? name : 0;
}

/* fold_end - when the line end at RAW[J] is a fold (a line break followed
 * by a blank), where the next line's blank starts; else 0 */
static size_t fold_end(const unsigned char *raw, size_t len, size_t j)
{
    size_t k = j + (raw[j] == '\r' && j + 1 < len && raw[j + 1] == '\n' ? 2 : 1);
    return k < len && (raw[k] == ' ' || raw[k] == '\t') ? k : 0;
}

/* scan_boundaries - add every boundary="..." parameter value in RAW to SET;
 * a quoted value may be folded (boundary="foo<CRLF> bar" is "foo bar") */
static void scan_boundaries(const unsigned char *raw, size_t len, GHashTable *set)
{
    static const char key[] = "boundary";
    GString *value = g_string_new(NULL);
    for (size_t i = 0; i + sizeof(key) < len; i++) {
        if ((raw[i] | 0x20) != 'b' || g_ascii_strncasecmp((const char *)raw + i, key, 8) != 0)
            continue;
        size_t j = i + 8;
        while (j < len && (raw[j] == ' ' || raw[j] == '\t'))
            j++;
        if (j >= len || raw[j] != '=')
            continue;
        j++;
        while (j < len && (raw[j] == ' ' || raw[j] == '\t'))
            j++;
        g_string_truncate(value, 0);
        if (j < len && raw[j] == '"') {
            for (j++; j < len && raw[j] != '"' && value->len <= 200; j++) {
                size_t k;
                if (raw[j] != '\r' && raw[j] != '\n')
                    g_string_append_c(value, (char)raw[j]);
                else if ((k = fold_end(raw, len, j)) != 0)
                    j = k - 1;
                else
                    break;
            }
        } else {
            for (; j < len && raw[j] > 32 && raw[j] != ';' && raw[j] != '"'; j++)
                g_string_append_c(value, (char)raw[j]);
        }
        if (value->len > 0 && value->len <= 200)
            g_hash_table_add(set, g_strndup(value->str, value->len));
        i = j;
    }
    g_string_free(value, TRUE);
}

/* count_delimiters - lines of RAW that open a part: "--" and a boundary
 * declared somewhere in RAW */
static size_t count_delimiters(const unsigned char *raw, size_t len, char eol)
{
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    scan_boundaries(raw, len, set);
    size_t count = 0;
    const unsigned char *pos = raw, *end = raw + len;
    struct line l;
    while (next_line(&pos, end, eol, &l)) {
        if (l.len < 3 || l.p[0] != '-' || l.p[1] != '-')
            continue;
        size_t n = l.len - 2;
        while (n > 0 && (l.p[2 + n - 1] == ' ' || l.p[2 + n - 1] == '\t'))
            n--;
        char *candidate = g_strndup((const char *)l.p + 2, n);
        if (g_hash_table_contains(set, candidate))
            count++;
        g_free(candidate);
    }
    g_hash_table_destroy(set);
    return count;
}

/* next_dash_line - the start of the first line at or after POS (a line
 * start) that begins with "--", or NULL; bodies (base64 has no '-') are
 * skipped at memchr speed */
static const unsigned char *next_dash_line(const unsigned char *pos, const unsigned char *end,
                                           char eol)
{
    if (end - pos >= 2 && pos[0] == '-' && pos[1] == '-')
        return pos;
    for (const unsigned char *p = pos; (p = memchr(p, '-', (size_t)(end - p))) != NULL; p++)
        if (p > pos && p[-1] == (unsigned char)eol && end - p >= 2 && p[1] == '-')
            return p;
    return NULL;
}

/* has_text_after_blank - the "--" line L has blanks and then more text
 * ("--b junk"): it may be a delimiter line with text after its boundary */
static bool has_text_after_blank(const struct line *l)
{
    size_t i = 2;
    while (i < l->len && l->p[i] != ' ' && l->p[i] != '\t')
        i++;
    while (i < l->len && (l->p[i] == ' ' || l->p[i] == '\t'))
        i++;
    return i < l->len;
}

/* set_has - SET holds the N bytes at P as a string */
static bool set_has(GHashTable *set, const unsigned char *p, size_t n)
{
    char *key = g_strndup((const char *)p, n);
    bool yes = g_hash_table_contains(set, key);
    g_free(key);
    return yes;
}

/* junk_start - where the text after the boundary starts in the "--" line L
 * when L is "--B" or "--B--" with B in SET, then blanks, then more text;
 * else 0. A line whose whole text is a boundary of SET (one with blanks
 * inside it) has no junk. */
static size_t junk_start(const struct line *l, GHashTable *set)
{
    size_t b = 2, end = l->len;
    while (b < l->len && l->p[b] != ' ' && l->p[b] != '\t')
        b++;
    while (end > b && (l->p[end - 1] == ' ' || l->p[end - 1] == '\t'))
        end--;
    if (b == 2 || end == b)
        return 0;
    const unsigned char *v = l->p + 2;
    size_t whole = end - 2, token = b - 2;
    if (set_has(set, v, whole) ||
        (whole > 2 && v[whole - 1] == '-' && v[whole - 2] == '-' && set_has(set, v, whole - 2)))
        return 0;
    if (set_has(set, v, token) ||
        (token > 2 && v[token - 1] == '-' && v[token - 2] == '-' && set_has(set, v, token - 2)))
        return b;
    return 0;
}

/* blank_delimiter_junk - a copy of RAW in which the text after the
 * boundary on each delimiter line ("--b This should be ignored") is made
 * blanks, or NULL when no line has any. RFC 2046 5.1.1 tells implementors
 * to match a boundary at the start of a line, not the whole line; gmime
 * allows only blanks after it and would read such a multipart as one
 * unparsed lump. Blanking keeps every offset, so nothing else moves. Only
 * text after a blank counts, so an inner boundary that extends an outer
 * one ("--b" and "--b-1") is never cut. The caller owns the copy. */
static unsigned char *blank_delimiter_junk(const unsigned char *raw, size_t len, char eol)
{
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    scan_boundaries(raw, len, set);
    unsigned char *copy = NULL;
    const unsigned char *pos = raw, *end = raw + len;
    struct line l;
    while ((pos = next_dash_line(pos, end, eol)) != NULL && next_line(&pos, end, eol, &l)) {
        size_t at = junk_start(&l, set);
        if (at == 0)
            continue;
        if (copy == NULL)
            copy = xmemdup(raw, len);
        memset(copy + (l.p - raw) + at, ' ', l.len - at);
    }
    g_hash_table_destroy(set);
    return copy;
}

/* prescan - refuse what would cost gmime too much before it sees it: a
 * header field longer than max_header_length, a header block with more
 * than MIME_MAX_HEADER_FIELDS fields (the top block and every block after
 * a "--" line, where part headers are), and far more parts than allowed.
 * *BLANKED_R gets RAW with its delimiter junk blanked (owned by the
 * caller), or NULL when gmime reads RAW as it is; the part bound is
 * checked on what gmime will read, so blanking cannot open the way to a
 * flood of parts. */
static enum mb_status prescan(const unsigned char *raw, size_t len, char eol,
                              const struct mime_limits *lim, unsigned char **blanked_r,
                              struct mb_error *err)
{
    const unsigned char *pos = raw, *end = raw + len;
    struct line l;
    bool in_headers = true, junk = false;
    *blanked_r = NULL;
    size_t field = 0, fields = 0, dashes = 0, name_len = 0;
    const unsigned char *name = NULL;
    if (len >= 5 && memcmp(raw, "From ", 5) == 0)
        next_line(&pos, end, eol, &l); /* an mbox separator line */
    for (;;) {
        if (!in_headers && (pos = next_dash_line(pos, end, eol)) == NULL)
            break;
        if (!next_line(&pos, end, eol, &l))
            break;
        if (l.len >= 2 && l.p[0] == '-' && l.p[1] == '-') {
            dashes++;
            junk = junk || has_text_after_blank(&l);
            in_headers = true;
            field = fields = 0;
            continue;
        }
        size_t nl;
        if (l.len == 0) {
            in_headers = false;
        } else if ((l.p[0] == ' ' || l.p[0] == '\t') && field > 0) {
            field += l.len;
        } else if ((nl = field_name_len(&l)) > 0) {
            field = l.len;
            name = l.p;
            name_len = nl;
            if (++fields > MIME_MAX_HEADER_FIELDS)
                return mb_error_set(err, MB_PERM, "a header block has more than %d fields",
                                    MIME_MAX_HEADER_FIELDS);
        } else {
            field = 0; /* gmime skips a line that is no field and reads on */
        }
        if (field > lim->max_header_length) {
            char *n = xmemdup(name, name_len < 40 ? name_len : 40);
            char *shown = mime_clean_for_warning(n, 40);
            free(n);
            mb_error_set(err, MB_PERM, "header field '%s' is longer than %zu bytes", shown,
                         lim->max_header_length);
            free(shown);
            return MB_PERM;
        }
    }
    unsigned char *blanked = junk ? blank_delimiter_junk(raw, len, eol) : NULL;
    size_t bound = (size_t)lim->max_parts + MIME_DELIMITER_SLACK;
    if (dashes > bound && count_delimiters(blanked != NULL ? blanked : raw, len, eol) > bound) {
        free(blanked);
        return mb_error_set(err, MB_PERM, "more than %u MIME parts", lim->max_parts);
    }
    *blanked_r = blanked;
    return MB_OK;
}

/* delimiter_set - every "--" line of the raw message, "--" and trailing
 * blanks cut off (so "--b--" is there as "b--") */
static GHashTable *delimiter_set(const struct mime_ctx *ctx)
{
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    const unsigned char *pos = ctx->raw, *end = ctx->raw + ctx->raw_len;
    struct line l;
    char eol = memchr(ctx->raw, '\n', ctx->raw_len) != NULL ? '\n' : '\r';
    while ((pos = next_dash_line(pos, end, eol)) != NULL && next_line(&pos, end, eol, &l)) {
        size_t n = l.len - 2;
        while (n > 0 && (l.p[1 + n] == ' ' || l.p[1 + n] == '\t'))
            n--;
        g_hash_table_add(set, g_strndup((const char *)l.p + 2, n));
    }
    return set;
}

/* mime_raw_has_delimiter - a line "--BOUNDARY" exists (see mime_int.h) */
bool mime_raw_has_delimiter(struct mime_ctx *ctx, const char *boundary)
{
    if (ctx->delimiters == NULL)
        ctx->delimiters = delimiter_set(ctx);
    return g_hash_table_contains(ctx->delimiters, boundary);
}

/* ---- gmime ---- */

/* options_new - gmime parser options for one parse. No warning callback:
 * with one set, gmime checks every header of every part against the others
 * and its parse takes about 70% longer (measured on tests/bench); what its
 * warnings said that matters is found more cheaply here and in
 * mime_body.c. Made per call: nothing in them is shared between parses. */
static GMimeParserOptions *options_new(void)
{
    static const char *fallback[] = {"UTF-8", "windows-1252", NULL};
    GMimeParserOptions *o = g_mime_parser_options_new();
    g_mime_parser_options_set_rfc2047_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_allow_addresses_without_domain(o, TRUE);
    g_mime_parser_options_set_fallback_charsets(o, fallback);
    return o;
}

/* the bytes gmime reads */
struct input {
    GByteArray *arr; /* owned; its data is the caller's when BORROWED */
    bool borrowed;
};

/* input_init - RAW as it is (the array only borrows it: gmime reads a
 * memory stream in place and never writes to it), or a copy after PREFIX
 * (not "") or with bare CR line ends made LF (CR_ONLY) */
static void input_init(struct input *in, const char *prefix, const unsigned char *raw, size_t len,
                       bool cr_only)
{
    size_t plen = strlen(prefix);
    in->borrowed = plen == 0 && !cr_only;
    if (in->borrowed) {
        in->arr = g_byte_array_new_take((guint8 *)raw, len);
        return;
    }
    in->arr = g_byte_array_sized_new((guint)(plen + len));
    g_byte_array_append(in->arr, (const guint8 *)prefix, (guint)plen);
    g_byte_array_append(in->arr, raw, (guint)len);
    if (cr_only)
        for (guint i = 0; i < in->arr->len; i++)
            if (in->arr->data[i] == '\r')
                in->arr->data[i] = '\n';
}

/* input_free - release IN, never the caller's bytes; after the message
 * parsed from it (its parts are windows on the array) */
static void input_free(struct input *in)
{
    if (in->arr != NULL)
        g_byte_array_free(in->arr, !in->borrowed);
    in->arr = NULL;
}

/* parse_input - gmime's message from IN; NULL when gmime finds none */
static GMimeMessage *parse_input(struct mime_ctx *ctx, struct input *in)
{
    GMimeStream *s = g_mime_stream_mem_new_with_byte_array(in->arr);
    g_mime_stream_mem_set_owner((GMimeStreamMem *)s, FALSE);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *msg = g_mime_parser_construct_message(p, ctx->options);
    g_object_unref(p);
    g_object_unref(s);
    return msg;
}

/* check_headers - every field of HL within max_header_length (unfolded) */
static enum mb_status check_headers(struct mime_ctx *ctx, GMimeHeaderList *hl, struct mb_error *err)
{
    size_t max = ctx->limits->max_header_length;
    int n = g_mime_header_list_get_count(hl);
    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h), *raw = g_mime_header_get_raw_value(h);
        size_t len = strlen(name) + 1 + (raw != NULL ? strlen(raw) : 0);
        if (len <= max)
            continue;
        for (const char *p = raw; p != NULL && *p != '\0'; p++)
            len -= *p == '\r' || *p == '\n';
        if (len > max) {
            char *shown = mime_clean_for_warning(name, 40);
            mb_error_set(err, MB_PERM, "header field '%s' is longer than %zu bytes", shown, max);
            free(shown);
            return MB_PERM;
        }
    }
    return MB_OK;
}

/* check_tree - nesting depth, number of parts and header lengths of OBJ
 * (at DEPTH) and everything under it; *PARTS counts the parts seen. The
 * recursion stops at max_depth + 1. */
static enum mb_status check_tree(struct mime_ctx *ctx, GMimeObject *obj, unsigned depth,
                                 unsigned *parts, struct mb_error *err)
{
    const struct mime_limits *lim = ctx->limits;
    if (depth > lim->max_depth)
        return mb_error_set(err, MB_PERM, "MIME nesting deeper than %u levels", lim->max_depth);
    if (depth >= GMIME_MAX_LEVEL) /* gmime did not look inside: the rest is lost */
        return mb_error_set(err, MB_PERM, "MIME nesting deeper than %d levels", GMIME_MAX_LEVEL);
    if (++*parts > lim->max_parts)
        return mb_error_set(err, MB_PERM, "more than %u MIME parts", lim->max_parts);
    if (check_headers(ctx, g_mime_object_get_header_list(obj), err) != MB_OK)
        return MB_PERM;
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = (GMimeMultipart *)obj;
        int n = g_mime_multipart_get_count(mp);
        /* gmime's parser sets write_end_boundary exactly when it found the
         * closing delimiter (a field of the public struct it calls private;
         * reading it saves scanning the message for every multipart) */
        if (n > 0 && !mp->write_end_boundary)
            mail_add_warning(
                ctx->mail, "a multipart/%s part ends without its closing boundary",
                g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(obj)));
        for (int i = 0; i < n; i++)
            if (check_tree(ctx, g_mime_multipart_get_part(mp, i), depth + 1, parts, err) != MB_OK)
                return MB_PERM;
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *msg = g_mime_message_part_get_message((GMimeMessagePart *)obj);
        GMimeObject *top = msg != NULL ? g_mime_message_get_mime_part(msg) : NULL;
        if (msg != NULL &&
            check_headers(ctx, g_mime_object_get_header_list((GMimeObject *)msg), err) != MB_OK)
            return MB_PERM;
        if (top != NULL && check_tree(ctx, top, depth + 1, parts, err) != MB_OK)
            return MB_PERM;
    }
    return MB_OK;
}

/* check_limits - the limits the tree of MSG must keep */
static enum mb_status check_limits(struct mime_ctx *ctx, GMimeMessage *msg, struct mb_error *err)
{
    unsigned parts = 0;
    GMimeObject *top = g_mime_message_get_mime_part(msg);
    if (check_headers(ctx, g_mime_object_get_header_list((GMimeObject *)msg), err) != MB_OK)
        return MB_PERM;
    if (top != NULL && check_tree(ctx, top, 0, &parts, err) != MB_OK)
        return MB_PERM;
    return MB_OK;
}

/* mime_parse - raw bytes into a new mail, within LIMITS (NULL: the defaults) */
enum mb_status mime_parse(const unsigned char *raw, size_t len, const struct mime_limits *limits,
                          struct mb_mail **mail_r, struct mb_error *err)
{
    struct mime_limits defaults;
    *mail_r = NULL;
    if (limits == NULL) {
        mime_limits_default(&defaults);
        limits = &defaults;
    }
    if (len == 0)
        return mb_error_set(err, MB_PERM, "empty message (0 bytes)");
    if (len > limits->max_message_size)
        return mb_error_set(err, MB_PERM,
                            "message of %zu bytes is larger than the limit of %zu bytes", len,
                            limits->max_message_size);
    if (len > G_MAXUINT - 1)
        return mb_error_set(err, MB_PERM, "message of %zu bytes is too large to parse", len);
    bool cr_only = memchr(raw, '\n', len) == NULL && memchr(raw, '\r', len) != NULL;
    unsigned char *blanked; /* owned: RAW with delimiter junk blanked, or NULL */
    if (prescan(raw, len, cr_only ? '\r' : '\n', limits, &blanked, err) != MB_OK)
        return MB_PERM;
    const unsigned char *bytes = blanked != NULL ? blanked : raw;

    struct mime_ctx ctx = {.limits = limits, .mail = mail_new(), .raw = bytes, .raw_len = len};
    const unsigned char *nl = memchr(raw, '\n', len);
    ctx.crlf = nl != NULL && nl > raw && nl[-1] == '\r';
    ctx.options = options_new();
    struct input in;
    input_init(&in, "", bytes, len, cr_only);
    GMimeMessage *msg = parse_input(&ctx, &in);
    if (msg == NULL) {
        /* no header at all: the whole input is the body of a header-less
         * message; what gmime said about the first try no longer applies */
        for (size_t i = 0; i < ctx.mail->warning_count; i++)
            free(ctx.mail->warnings[i]);
        ctx.mail->warning_count = 0;
        mail_add_warning(ctx.mail, "the message has no header: all of it was read as the body");
        input_free(&in);
        input_init(&in, "\n", bytes, len, cr_only);
        msg = parse_input(&ctx, &in);
    }
    if (cr_only)
        mail_add_warning(ctx.mail, "the message has bare CR line ends: read as LF");
    if (blanked != NULL)
        mail_add_warning(ctx.mail, "a boundary line has text after the boundary: that text "
                                   "was ignored (RFC 2046 5.1.1)");
    enum mb_status st = MB_OK;
    if (msg == NULL)
        st = mb_error_set(err, MB_PERM, "not a message: gmime found nothing to parse");
    if (st == MB_OK)
        st = check_limits(&ctx, msg, err);
    if (st == MB_OK) {
        mime_headers_fill(&ctx, msg);
        mime_body_fill(&ctx, g_mime_message_get_mime_part(msg));
        struct mb_mail *m = ctx.mail;
        m->key = m->message_id != NULL ? xstrdup(m->message_id) : mime_raw_key(raw, len);
        m->raw_size = len;
        *mail_r = ctx.mail;
        ctx.mail = NULL;
    }
    if (msg != NULL)
        g_object_unref(msg);
    input_free(&in);
    free(blanked);
    if (ctx.delimiters != NULL)
        g_hash_table_destroy(ctx.delimiters);
    g_mime_parser_options_free(ctx.options);
    mail_free(&ctx.mail);
    return st;
}
