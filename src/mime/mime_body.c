/* mime_body - the MIME tree of a message into text, html and attachments.
 *
 * The body is picked the way mail clients show it: in multipart/alternative
 * the last part that gives text/plain is the text and the last that gives
 * text/html the html; in multipart/related the root (the start parameter,
 * else the first part); in multipart/mixed and any other multipart the
 * first part that can be a body, with the body of every inline text part
 * and multipart after it appended (Apple Mail style; RFC 8621 4.1.4 reads
 * nested trees the same way). Every other leaf is an attachment;
 * the ones the HTML references by cid: or Content-Location are inline_ref. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mime/mime_int.h"

/* one piece of body: the text and/or html it gave */
struct seg {
    struct buf text;
    struct buf html;
    bool has_text;
    bool has_html;
};

/* the bytes of a part after Content-Transfer-Encoding decoding */
struct content {
    const unsigned char *data; /* borrowed from gmime's buffer, or OWNED */
    size_t len;
    unsigned char *owned; /* owned: decoded bytes, NULL when DATA is gmime's */
};

/* file name extensions for made-up names, and types for uuencoded files */
static const struct {
    const char *type;
    const char *ext;
} extensions[] = {
    {"application/pdf", "pdf"},
    {"image/png", "png"},
    {"image/jpeg", "jpg"},
    {"image/jpeg", "jpeg"},
    {"image/gif", "gif"},
    {"image/bmp", "bmp"},
    {"image/webp", "webp"},
    {"image/svg+xml", "svg"},
    {"image/tiff", "tif"},
    {"text/plain", "txt"},
    {"text/html", "html"},
    {"text/calendar", "ics"},
    {"text/csv", "csv"},
    {"text/vcard", "vcf"},
    {"text/x-vcard", "vcf"},
    {"text/rfc822-headers", "txt"},
    {"message/rfc822", "eml"},
    {"message/delivery-status", "txt"},
    {"message/disposition-notification", "txt"},
    {"application/zip", "zip"},
    {"application/gzip", "gz"},
    {"application/json", "json"},
    {"application/xml", "xml"},
    {"application/msword", "doc"},
    {"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"},
    {"application/vnd.ms-excel", "xls"},
    {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"},
    {"application/ms-tnef", "dat"},
    {"application/pgp-signature", "asc"},
    {"application/pkcs7-signature", "p7s"},
    {"audio/mpeg", "mp3"},
    {"video/mp4", "mp4"},
    {"application/octet-stream", "bin"},
};

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

static bool body_from(struct mime_ctx *ctx, GMimeObject *obj, struct seg *seg);
static void attach_tree(struct mime_ctx *ctx, GMimeObject *obj);

/* text_cap - the most bytes one body text may take: decoding never makes
 * more than 4 bytes of UTF-8 from one raw byte */
static size_t text_cap(const struct mime_ctx *ctx)
{
    size_t max = ctx->limits->max_message_size;
    return max > (SIZE_MAX - 4096) / 4 ? 0 : max * 4 + 4096;
}

/* seg_init - an empty piece of body */
static void seg_init(struct mime_ctx *ctx, struct seg *s)
{
    buf_init(&s->text, text_cap(ctx));
    buf_init(&s->html, text_cap(ctx));
    s->has_text = s->has_html = false;
}

/* seg_free - release S */
static void seg_free(struct seg *s)
{
    buf_free(&s->text);
    buf_free(&s->html);
}

/* seg_put - append N bytes to B, warning once per message when it is full */
static void seg_put(struct mime_ctx *ctx, struct buf *b, const char *s, size_t n)
{
    if (!buf_append(b, s, n))
        mail_add_warning(ctx->mail, "the body is longer than %zu bytes: cut there", b->limit);
}

/* html_text - text rendered from HTML, warning when it had to be cut */
static char *html_text(struct mime_ctx *ctx, const char *html)
{
    size_t max = ctx->limits->max_html_text;
    char *t = mime_html_to_text(html, max);
    if (strlen(t) + 4 > max)
        mail_add_warning(ctx->mail, "the text rendered from HTML was cut at %zu bytes", max);
    return t;
}

/* seg_complete - give S the representation it lacks: html from text
 * (escaped) or text from html (rendered) */
static void seg_complete(struct mime_ctx *ctx, struct seg *s)
{
    if (s->has_text && !s->has_html) {
        char *h = mime_text_to_html(s->text.data != NULL ? s->text.data : "");
        seg_put(ctx, &s->html, h, strlen(h));
        free(h);
        s->has_html = true;
    } else if (s->has_html && !s->has_text) {
        char *t = html_text(ctx, s->html.data != NULL ? s->html.data : "");
        seg_put(ctx, &s->text, t, strlen(t));
        free(t);
        s->has_text = true;
    }
}

/* seg_append - SRC after DST (an inline part after the body); when they do
 * not have the same representations both are completed first */
static void seg_append(struct mime_ctx *ctx, struct seg *dst, struct seg *src)
{
    if (!src->has_text && !src->has_html)
        return;
    if (dst->has_text != src->has_text || dst->has_html != src->has_html) {
        seg_complete(ctx, dst);
        seg_complete(ctx, src);
    }
    if (src->has_text) {
        if (dst->text.len > 0 && dst->text.data[dst->text.len - 1] != '\n')
            seg_put(ctx, &dst->text, "\n", 1);
        seg_put(ctx, &dst->text, src->text.data != NULL ? src->text.data : "", src->text.len);
    }
    if (src->has_html) {
        if (dst->html.len > 0)
            seg_put(ctx, &dst->html, "\n", 1);
        seg_put(ctx, &dst->html, src->html.data != NULL ? src->html.data : "", src->html.len);
    }
}

/* ---- content decoding ---- */

/* stream_view - point at the bytes of S inside its memory buffer (the
 * parser keeps every part as a window on the message); false when S is
 * not a memory stream */
static bool stream_view(GMimeStream *s, const unsigned char **data_r, size_t *len_r)
{
    if (!GMIME_IS_STREAM_MEM(s) || g_mime_stream_reset(s) == -1)
        return false;
    GByteArray *arr = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)s);
    gint64 start = g_mime_stream_tell(s), len = g_mime_stream_length(s);
    if (arr == NULL || start < 0 || len < 0 || (guint64)start > arr->len)
        return false;
    if ((guint64)len > arr->len - (guint64)start)
        len = (gint64)(arr->len - (guint64)start);
    *data_r = arr->data + start;
    *len_r = (size_t)len;
    return true;
}

/* uu_begin - if the line at P (up to END) is "begin <mode> <name>", the
 * name (trimmed, N bytes into *NAME_R) and the start of the next line */
static const unsigned char *uu_begin(const unsigned char *p, const unsigned char *end,
                                     const unsigned char **name_r, size_t *name_len_r)
{
    const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
        eol = end;
    if (eol - p < 10 || memcmp(p, "begin ", 6) != 0)
        return NULL;
    const unsigned char *q = p + 6;
    size_t digits = 0;
    while (q < eol && *q >= '0' && *q <= '7' && digits < 4) {
        q++;
        digits++;
    }
    if (digits < 3 || q >= eol || *q != ' ')
        return NULL;
    q++;
    const unsigned char *ne = eol;
    while (ne > q && (ne[-1] == '\r' || ne[-1] == ' ' || ne[-1] == '\t'))
        ne--;
    if (ne == q)
        return NULL;
    *name_r = q;
    *name_len_r = (size_t)(ne - q);
    return eol < end ? eol + 1 : end;
}

/* uu_end - the start of the "end" line at or after P, or NULL */
static const unsigned char *uu_end(const unsigned char *p, const unsigned char *end)
{
    while (p < end) {
        const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *stop = eol != NULL ? eol : end;
        const unsigned char *t = stop;
        while (t > p && (t[-1] == '\r' || t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (t - p == 3 && memcmp(p, "end", 3) == 0)
            return p;
        p = eol != NULL ? eol + 1 : end;
    }
    return NULL;
}

/* uu_decode - the uuencoded lines DATA (after "begin", before "end") into
 * OUT (room for LEN); returns the length */
static size_t uu_decode(const unsigned char *data, size_t len, unsigned char *out)
{
    int state = GMIME_UUDECODE_STATE_BEGIN;
    guint32 save = 0;
    return g_mime_encoding_uudecode_step(data, len, out, &state, &save);
}

/* part_what - how warnings name a part: its type and file name */
static char *part_what(const char *ctype, const char *filename)
{
    return filename != NULL ? xasprintf("%s part '%s'", ctype, filename)
                            : xasprintf("%s part", ctype);
}

/* part_content - the decoded bytes of PART into C (release with
 * content_free); malformed base64, quoted-printable or uuencoding is decoded
 * as far as it goes, with a warning naming WHAT */
static void part_content(struct mime_ctx *ctx, GMimePart *part, const char *what, struct content *c)
{
    static const unsigned char empty[1] = {0};
    c->data = empty;
    c->len = 0;
    c->owned = NULL;
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GMimeStream *s = w != NULL ? g_mime_data_wrapper_get_stream(w) : NULL;
    if (s == NULL)
        return;
    const unsigned char *raw;
    size_t len;
    struct buf copy;
    buf_init(&copy, ctx->limits->max_message_size);
    if (!stream_view(s, &raw, &len)) {
        char tmp[8192];
        ssize_t n;
        g_mime_stream_reset(s);
        while ((n = g_mime_stream_read(s, tmp, sizeof(tmp))) > 0 &&
               buf_append(&copy, tmp, (size_t)n))
            ;
        raw = (const unsigned char *)(copy.data != NULL ? copy.data : "");
        len = copy.len;
    }
    bool malformed = false;
    switch (g_mime_data_wrapper_get_encoding(w)) {
    case GMIME_CONTENT_ENCODING_BASE64:
        c->owned = xmalloc(len / 4 * 3 + 3);
        c->len = mime_base64_decode(raw, len, c->owned, &malformed);
        if (malformed)
            mail_add_warning(ctx->mail, "malformed base64 in %s: decoded what was readable", what);
        break;
    case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
        c->owned = xmalloc(len + 1);
        c->len = mime_qp_decode(raw, len, c->owned, &malformed);
        if (malformed)
            mail_add_warning(ctx->mail,
                             "malformed quoted-printable in %s: decoded what was "
                             "readable",
                             what);
        break;
    case GMIME_CONTENT_ENCODING_UUENCODE: {
        const unsigned char *name, *p = raw, *end = raw + len, *body = NULL;
        size_t name_len;
        while (p < end && (body = uu_begin(p, end, &name, &name_len)) == NULL) {
            const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
            p = eol != NULL ? eol + 1 : end;
        }
        if (body == NULL) {
            mail_add_warning(ctx->mail,
                             "uuencoded %s has no begin line: decoded what was "
                             "readable",
                             what);
            body = raw;
        }
        c->owned = xmalloc(len + 3);
        c->len = uu_decode(body, (size_t)(end - body), c->owned);
        break;
    }
    default:
        if (copy.data != NULL) {
            c->len = copy.len;
            c->owned = (unsigned char *)buf_steal(&copy);
        } else {
            c->len = len;
            c->data = raw;
        }
        break;
    }
    if (c->owned != NULL)
        c->data = c->owned;
    buf_free(&copy);
}

/* content_take - the bytes of C as a buffer the caller owns; C is emptied */
static unsigned char *content_take(struct content *c)
{
    unsigned char *d = c->owned != NULL ? c->owned : xmemdup(c->data, c->len);
    c->owned = NULL;
    c->len = 0;
    return d;
}

/* content_free - release C */
static void content_free(struct content *c)
{
    free(c->owned);
    c->owned = NULL;
}

/* ---- attachments ---- */

/* lower_type - "type/subtype" of OBJ in lower case; caller owns it */
static char *lower_type(GMimeObject *obj)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *gs = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
    const char *type = gs != NULL ? gs : "application/octet-stream";
    char *s = mime_utf8_dup(type, strlen(type));
    g_free(gs);
    for (char *p = s; *p != '\0'; p++)
        *p = (char)g_ascii_tolower(*p);
    return s;
}

/* type_extension - the usual file name extension of TYPE */
static const char *type_extension(const char *type)
{
    for (size_t i = 0; i < N_ELEMENTS(extensions); i++)
        if (strcmp(type, extensions[i].type) == 0)
            return extensions[i].ext;
    const char *sub = strchr(type, '/');
    if (sub == NULL || sub[1] == '\0' || strlen(sub + 1) > 8 ||
        strspn(sub + 1, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(sub + 1))
        return "bin";
    return sub + 1;
}

/* extension_type - the type of a file named NAME, from its extension */
static const char *extension_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot != NULL)
        for (size_t i = 0; i < N_ELEMENTS(extensions); i++)
            if (g_ascii_strcasecmp(dot + 1, extensions[i].ext) == 0)
                return extensions[i].type;
    return "application/octet-stream";
}

/* cut_utf8 - the largest length <= MAX that ends on a character boundary */
static size_t cut_utf8(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

/* sanitize_filename - NAME made safe to write anywhere: its last path
 * component, control characters replaced, at most 200 bytes with its
 * extension kept; NULL when nothing usable is left. Caller owns it. */
static char *sanitize_filename(const char *name)
{
    if (name == NULL)
        return NULL;
    char *u = mime_utf8_dup(name, strlen(name));
    const char *base = u;
    for (const char *p = u; *p != '\0'; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    char *t = mime_utf8_trimmed(base);
    free(u);
    if (t == NULL || strcmp(t, ".") == 0 || strcmp(t, "..") == 0) {
        free(t);
        return NULL;
    }
    for (char *p = t; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '_';
    size_t len = strlen(t);
    if (len > 200) {
        const char *dot = strrchr(t, '.');
        size_t ext = dot != NULL && strlen(dot) <= 16 ? strlen(dot) : 0;
        size_t keep = cut_utf8(t, len - ext, 200 - ext);
        memmove(t + keep, t + len - ext, ext + 1);
    }
    return t;
}

/* eml_name - "<subject>.eml" for an attached message (characters file
 * systems dislike replaced, at most 100 bytes of subject), "message.eml"
 * without a subject; caller owns it */
static char *eml_name(GMimeMessage *msg)
{
    const char *subject =
        msg != NULL ? g_mime_object_get_header((GMimeObject *)msg, "Subject") : NULL;
    char *s = mime_utf8_trimmed(subject);
    if (s == NULL)
        return xstrdup("message.eml");
    char *w = s;
    bool space = false;
    for (const char *r = s; *r != '\0'; r++) {
        unsigned char c = (unsigned char)*r;
        if (c < 0x20 || c == ' ' || c == 0x7f) {
            space = true;
            continue;
        }
        if (space && w != s)
            *w++ = ' ';
        space = false;
        *w++ = strchr("/\\:*?\"<>|", c) != NULL ? '_' : (char)c;
    }
    *w = '\0';
    size_t len = cut_utf8(s, strlen(s), 100);
    char *name = xasprintf("%.*s.eml", (int)len, s);
    free(s);
    return name;
}

/* attachment_add - append an attachment owning DATA; a missing FILENAME is
 * made up from the position and type ("attachment-2.pdf") */
static struct mb_attachment *attachment_add(struct mime_ctx *ctx, unsigned char *data, size_t size,
                                            char *ctype, char *filename)
{
    struct mb_mail *m = ctx->mail;
    struct mb_attachment *a = mail_add_attachment(m);
    a->data = data;
    a->size = size;
    a->content_type = ctype;
    a->filename = filename != NULL
                      ? filename
                      : xasprintf("attachment-%zu.%s", m->attachment_count, type_extension(ctype));
    mime_sha256_hex(data, size, a->sha256);
    return a;
}

/* message_bytes - the attached message MSG serialized with the line ends
 * of the whole message; *LEN_R gets the length. Caller owns the bytes. */
static unsigned char *message_bytes(struct mime_ctx *ctx, GMimeMessage *msg, size_t *len_r)
{
    GMimeStream *out = g_mime_stream_mem_new();
    GMimeFormatOptions *fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, ctx->crlf ? GMIME_NEWLINE_FORMAT_DOS
                                                           : GMIME_NEWLINE_FORMAT_UNIX);
    g_mime_object_write_to_stream((GMimeObject *)msg, fo, out);
    GByteArray *arr = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)out);
    unsigned char *data = xmemdup(arr->data, arr->len);
    *len_r = arr->len;
    g_mime_format_options_free(fo);
    g_object_unref(out);
    return data;
}

/* attach_message - an attached message as a message/rfc822 attachment
 * holding its bytes, named after its subject unless it has a file name */
static void attach_message(struct mime_ctx *ctx, GMimeMessagePart *mp)
{
    GMimeObject *obj = (GMimeObject *)mp;
    GMimeMessage *msg = g_mime_message_part_get_message(mp);
    size_t len = 0;
    unsigned char *data = msg != NULL ? message_bytes(ctx, msg, &len) : xmemdup("", 0);
    const char *fn = g_mime_object_get_content_disposition_parameter(obj, "filename");
    if (fn == NULL)
        fn = g_mime_object_get_content_type_parameter(obj, "name");
    char *filename = sanitize_filename(fn);
    if (filename == NULL)
        filename = eml_name(msg);
    attachment_add(ctx, data, len, lower_type(obj), filename);
}

/* embedded_eml_name - the .eml name of message bytes DATA (a message/rfc822
 * part gmime did not open because it was base64 or quoted-printable) */
static char *embedded_eml_name(struct mime_ctx *ctx, const unsigned char *data, size_t len)
{
    GMimeStream *s = g_mime_stream_mem_new_with_buffer((const char *)data, len);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *msg = g_mime_parser_construct_message(p, ctx->options);
    char *name = eml_name(msg);
    if (msg != NULL)
        g_object_unref(msg);
    g_object_unref(p);
    g_object_unref(s);
    return name;
}

/* attach_leaf - PART as an attachment with its decoded bytes */
static void attach_leaf(struct mime_ctx *ctx, GMimePart *part)
{
    GMimeObject *obj = (GMimeObject *)part;
    char *ctype = lower_type(obj);
    char *filename = sanitize_filename(g_mime_part_get_filename(part));
    char *what = part_what(ctype, filename);
    struct content c;
    part_content(ctx, part, what, &c);
    size_t size = c.len;
    if (filename == NULL && g_str_has_prefix(ctype, "message/") &&
        (strcmp(ctype + 8, "rfc822") == 0 || strcmp(ctype + 8, "global") == 0))
        filename = embedded_eml_name(ctx, c.data, c.len);
    struct mb_attachment *a = attachment_add(ctx, content_take(&c), size, ctype, filename);
    a->content_id = mime_utf8_trimmed(g_mime_object_get_content_id(obj));
    a->content_location = mime_utf8_trimmed(g_mime_part_get_content_location(part));
    free(what);
}

/* attach_tree - every leaf under OBJ as an attachment */
static void attach_tree(struct mime_ctx *ctx, GMimeObject *obj)
{
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = (GMimeMultipart *)obj;
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n; i++)
            attach_tree(ctx, g_mime_multipart_get_part(mp, i));
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        attach_message(ctx, (GMimeMessagePart *)obj);
    } else if (GMIME_IS_PART(obj)) {
        attach_leaf(ctx, (GMimePart *)obj);
    }
}

/* ---- body text ---- */

enum leaf_kind { LEAF_OTHER, LEAF_TEXT, LEAF_HTML };

/* leaf_kind - whether OBJ can be (part of) the body: an inline text/plain
 * or text/html part without a file name. A part gmime created as text but
 * whose Content-Type it could not read is text/plain (RFC 2045, 5.2). */
static enum leaf_kind leaf_kind(GMimeObject *obj)
{
    if (!GMIME_IS_PART(obj))
        return LEAF_OTHER;
    const char *disp = g_mime_object_get_disposition(obj);
    const char *fn = g_mime_part_get_filename((GMimePart *)obj);
    if ((disp != NULL && g_ascii_strcasecmp(disp, "attachment") == 0) ||
        (fn != NULL && *fn != '\0'))
        return LEAF_OTHER;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    const char *type = ct != NULL ? g_mime_content_type_get_media_type(ct) : "text";
    const char *sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : "plain";
    if (type != NULL && g_ascii_strcasecmp(type, "text") == 0 && sub != NULL) {
        if (g_ascii_strcasecmp(sub, "plain") == 0)
            return LEAF_TEXT;
        if (g_ascii_strcasecmp(sub, "html") == 0)
            return LEAF_HTML;
        return LEAF_OTHER;
    }
    return GMIME_IS_TEXT_PART(obj) ? LEAF_TEXT : LEAF_OTHER;
}

/* meta_charset - the charset an HTML document declares in its first 1024
 * bytes (<meta charset=...> or http-equiv content), copied into OUT */
static bool meta_charset(const unsigned char *data, size_t len, char *out, size_t out_size)
{
    size_t n = len < 1024 ? len : 1024;
    for (size_t i = 0; i + 8 < n; i++) {
        if (g_ascii_strncasecmp((const char *)data + i, "charset=", 8) != 0)
            continue;
        size_t j = i + 8, k = 0;
        while (j < n && (data[j] == '"' || data[j] == '\'' || data[j] == ' '))
            j++;
        while (j < n && k + 1 < out_size && (g_ascii_isalnum(data[j]) || strchr("-_.:", data[j])))
            out[k++] = (char)data[j++];
        out[k] = '\0';
        return k > 0;
    }
    return false;
}

/* uu_extract - move the uuencoded files in the text DATA into attachments,
 * the rest of the text into REST; false (REST untouched) when there is none */
static bool uu_extract(struct mime_ctx *ctx, const unsigned char *data, size_t len,
                       struct buf *rest)
{
    const unsigned char *end = data + len, *p = data, *copied = data;
    bool found = false;
    while (p < end) {
        const unsigned char *name, *body;
        size_t name_len;
        const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *next = eol != NULL ? eol + 1 : end;
        if (*p != 'b' || (body = uu_begin(p, end, &name, &name_len)) == NULL) {
            p = next;
            continue;
        }
        const unsigned char *stop = uu_end(body, end);
        char *raw_name = xmemdup(name, name_len);
        char *filename = sanitize_filename(raw_name);
        free(raw_name);
        if (stop == NULL)
            mail_add_warning(ctx->mail,
                             "uuencoded file '%s' has no end line: decoded what was "
                             "there",
                             filename != NULL ? filename : "?");
        const unsigned char *body_end = stop != NULL ? stop : end;
        unsigned char *out = xmalloc((size_t)(body_end - body) + 3);
        size_t n = uu_decode(body, (size_t)(body_end - body), out);
        const char *type = extension_type(filename != NULL ? filename : "");
        attachment_add(ctx, out, n, xstrdup(type), filename);
        buf_append(rest, copied, (size_t)(p - copied));
        if (stop != NULL) {
            const unsigned char *e = memchr(stop, '\n', (size_t)(end - stop));
            p = e != NULL ? e + 1 : end;
        } else {
            p = end;
        }
        copied = p;
        found = true;
    }
    if (found)
        buf_append(rest, copied, (size_t)(end - copied));
    return found;
}

/* leaf_text - the text of a body PART of KIND appended to OUT in UTF-8;
 * uuencoded files in a text/plain part become attachments */
static void leaf_text(struct mime_ctx *ctx, GMimePart *part, enum leaf_kind kind, struct buf *out)
{
    GMimeObject *obj = (GMimeObject *)part;
    const char *what = kind == LEAF_HTML ? "text/html part" : "text/plain part";
    struct content c;
    part_content(ctx, part, what, &c);
    const char *charset = g_mime_object_get_content_type_parameter(obj, "charset");
    char declared[48];
    if (charset == NULL && kind == LEAF_HTML &&
        meta_charset(c.data, c.len, declared, sizeof(declared)))
        charset = declared;
    const unsigned char *data = c.data;
    size_t len = c.len;
    struct buf rest;
    buf_init(&rest, len + 1);
    if (kind == LEAF_TEXT && uu_extract(ctx, data, len, &rest)) {
        data = (const unsigned char *)(rest.data != NULL ? rest.data : "");
        len = rest.len;
    }
    if (!mime_decode_text(ctx, charset, data, len, what, out))
        mail_add_warning(ctx->mail, "the body is longer than %zu bytes: cut there", out->limit);
    buf_free(&rest);
    content_free(&c);
}

/* prologue_has_delimiter - a line of PRO starts with "--BOUNDARY" */
static bool prologue_has_delimiter(const char *pro, const char *boundary)
{
    size_t n = strlen(boundary);
    for (const char *p = pro; p != NULL; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        if (p[0] == '-' && p[1] == '-' && strncmp(p + 2, boundary, n) == 0)
            return true;
    return false;
}

/* prologue_text - when gmime found no part in a multipart (no boundary
 * parameter, a boundary no line uses, or delimiter lines it would not take)
 * its content is all in the prologue: it becomes the text of SEG. A
 * multipart whose delimiters are there but hold no part has only a preamble
 * ("This is a multi-part message in MIME format."), which is no body. */
static bool prologue_text(struct mime_ctx *ctx, GMimeMultipart *mp, struct seg *seg)
{
    const char *pro = g_mime_multipart_get_prologue(mp);
    const char *boundary = g_mime_object_get_content_type_parameter((GMimeObject *)mp, "boundary");
    if (pro == NULL || *pro == '\0')
        return false;
    if (boundary != NULL && !prologue_has_delimiter(pro, boundary) &&
        mime_raw_has_delimiter(ctx, boundary))
        return false;
    mail_add_warning(ctx->mail, boundary == NULL ? "a multipart without boundary: its content was "
                                                   "read as text"
                                                 : "no part of a multipart could be found: its "
                                                   "content was read as text");
    mime_decode_text(ctx, NULL, (const unsigned char *)pro, strlen(pro), "multipart part",
                     &seg->text);
    seg->has_text = true;
    return true;
}

/* related_root - the root of a multipart/related: the part whose
 * Content-ID is the start parameter, else the first */
static int related_root(GMimeMultipart *mp)
{
    const char *start = g_mime_object_get_content_type_parameter((GMimeObject *)mp, "start");
    int n = g_mime_multipart_get_count(mp);
    if (start != NULL) {
        char *want = g_mime_utils_decode_message_id(start);
        for (int i = 0; want != NULL && i < n; i++) {
            const char *id = g_mime_object_get_content_id(g_mime_multipart_get_part(mp, i));
            if (id != NULL && strcmp(id, want) == 0) {
                g_free(want);
                return i;
            }
        }
        g_free(want);
    }
    return 0;
}

/* is_subtype - OBJ is multipart/SUB */
static bool is_subtype(GMimeObject *obj, const char *sub)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    const char *s = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : NULL;
    return GMIME_IS_MULTIPART(obj) && s != NULL && g_ascii_strcasecmp(s, sub) == 0;
}

/* body_from_alternative - the last text and the last html its parts give */
static bool body_from_alternative(struct mime_ctx *ctx, GMimeMultipart *mp, struct seg *seg)
{
    bool got = false;
    int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; i++) {
        struct seg child;
        seg_init(ctx, &child);
        if (body_from(ctx, g_mime_multipart_get_part(mp, i), &child)) {
            got = true;
            if (child.has_text) {
                buf_free(&seg->text);
                seg->text = child.text;
                buf_init(&child.text, seg->text.limit);
                seg->has_text = true;
            }
            if (child.has_html) {
                buf_free(&seg->html);
                seg->html = child.html;
                buf_init(&child.html, seg->html.limit);
                seg->has_html = true;
            }
        }
        seg_free(&child);
    }
    return got;
}

/* body_from_mixed - the first part that gives a body, then what every
 * later inline text part or multipart gives appended (as RFC 8621 4.1.4
 * reads a mixed tree); the rest are attachments */
static bool body_from_mixed(struct mime_ctx *ctx, GMimeMultipart *mp, struct seg *seg)
{
    bool got = false;
    int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; i++) {
        GMimeObject *part = g_mime_multipart_get_part(mp, i);
        if (!got) {
            got = body_from(ctx, part, seg);
        } else if (leaf_kind(part) != LEAF_OTHER ||
                   (GMIME_IS_MULTIPART(part) &&
                    g_mime_multipart_get_count((GMimeMultipart *)part) > 0)) {
            struct seg extra;
            seg_init(ctx, &extra);
            body_from(ctx, part, &extra);
            seg_append(ctx, seg, &extra);
            seg_free(&extra);
        } else {
            attach_tree(ctx, part);
        }
    }
    return got;
}

/* body_from - take the body OBJ gives into SEG and attach the rest of its
 * subtree; false when OBJ gave no body (then all of it was attached). The
 * recursion is bounded by max_depth, checked before. */
static bool body_from(struct mime_ctx *ctx, GMimeObject *obj, struct seg *seg)
{
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = (GMimeMultipart *)obj;
        int n = g_mime_multipart_get_count(mp);
        if (n == 0)
            return prologue_text(ctx, mp, seg);
        if (is_subtype(obj, "alternative"))
            return body_from_alternative(ctx, mp, seg);
        if (is_subtype(obj, "related")) {
            int root = related_root(mp);
            bool got = body_from(ctx, g_mime_multipart_get_part(mp, root), seg);
            for (int i = 0; i < n; i++)
                if (i != root)
                    attach_tree(ctx, g_mime_multipart_get_part(mp, i));
            return got;
        }
        return body_from_mixed(ctx, mp, seg);
    }
    enum leaf_kind kind = leaf_kind(obj);
    if (kind == LEAF_OTHER) {
        attach_tree(ctx, obj);
        return false;
    }
    const char *type = g_mime_content_type_get_media_type(g_mime_object_get_content_type(obj));
    if (type != NULL && g_ascii_strcasecmp(type, "text") != 0) {
        const char *raw = g_mime_object_get_header(obj, "Content-Type");
        char *shown = mime_clean_for_warning(raw != NULL ? raw : "", 60);
        mail_add_warning(ctx->mail, "invalid Content-Type '%s': read as text/plain", shown);
        free(shown);
    }
    leaf_text(ctx, (GMimePart *)obj, kind, kind == LEAF_HTML ? &seg->html : &seg->text);
    if (kind == LEAF_HTML)
        seg->has_html = true;
    else
        seg->has_text = true;
    return true;
}

/* ---- inline references ---- */

/* mark_ref - mime_ref_map_fn that flags the attachments REF points at (a
 * "cid:" URL, percent-encoded or not, or a Content-Location) */
static const char *mark_ref(void *vmail, const char *ref)
{
    struct mb_mail *m = vmail;
    char *r = mime_utf8_trimmed(ref);
    if (r == NULL)
        return NULL;
    if (g_ascii_strncasecmp(r, "cid:", 4) == 0) {
        char *id = g_uri_unescape_string(r + 4, NULL);
        const char *want = id != NULL ? id : r + 4;
        size_t wl = strlen(want);
        bool bracketed = wl >= 2 && want[0] == '<' && want[wl - 1] == '>';
        for (size_t i = 0; i < m->attachment_count; i++) {
            const char *cid = m->attachments[i].content_id;
            if (cid == NULL)
                continue;
            if (strcmp(cid, want) == 0 ||
                (bracketed && strlen(cid) == wl - 2 && memcmp(cid, want + 1, wl - 2) == 0))
                m->attachments[i].inline_ref = true;
        }
        g_free(id);
    } else {
        for (size_t i = 0; i < m->attachment_count; i++)
            if (m->attachments[i].content_location != NULL &&
                strcmp(m->attachments[i].content_location, r) == 0)
                m->attachments[i].inline_ref = true;
    }
    free(r);
    return NULL;
}

/* has_ref_candidates - some attachment has a Content-ID or Content-Location */
static bool has_ref_candidates(const struct mb_mail *m)
{
    for (size_t i = 0; i < m->attachment_count; i++)
        if (m->attachments[i].content_id != NULL || m->attachments[i].content_location != NULL)
            return true;
    return false;
}

/* mime_body_fill - text, html and attachments of TOP (see mime_int.h) */
void mime_body_fill(struct mime_ctx *ctx, GMimeObject *top)
{
    struct seg body;
    seg_init(ctx, &body);
    if (top == NULL || !body_from(ctx, top, &body))
        body.has_text = true; /* no body at all: text "" and its html rendering */
    /* the HTML is parsed once for both its text (an HTML-only mail) and the
     * attachments it references */
    bool need_text = body.has_html && !body.has_text;
    bool refs = body.has_html && has_ref_candidates(ctx->mail);
    if (need_text || refs) {
        char *text = NULL;
        size_t max = ctx->limits->max_html_text;
        mime_html_scan(body.html.data != NULL ? body.html.data : "", max, need_text ? &text : NULL,
                       refs ? mark_ref : NULL, ctx->mail);
        if (need_text) {
            if (strlen(text) + 4 > max)
                mail_add_warning(ctx->mail, "the text rendered from HTML was cut at %zu bytes",
                                 max);
            seg_put(ctx, &body.text, text, strlen(text));
            body.has_text = true;
            free(text);
        }
    }
    seg_complete(ctx, &body);
    ctx->mail->text = buf_steal(&body.text);
    ctx->mail->html = buf_steal(&body.html);
    seg_free(&body);
}
