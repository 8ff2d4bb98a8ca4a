/* mime_int - what the files of the mime module share, and nothing else sees.
 *
 * One struct mime_ctx lives on mime_parse()'s stack for one message; the
 * helpers in mime_header.c, mime_body.c, mime_charset.c and mime_html.c
 * borrow it to add warnings and read the limits and the raw bytes. gmime and libxml2 types may
 * appear here because this header never leaves src/mime. */
#ifndef MB_MIME_MIME_INT_H
#define MB_MIME_MIME_INT_H

#include <gmime/gmime.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/mail.h"
#include "lib/buf.h"
#include "lib/error.h"
#include "mime/mime.h"

struct mime_ctx {
    const struct mime_limits *limits; /* borrowed: the caller's limits */
    struct mb_mail *mail;             /* borrowed: the mail being filled */
    GMimeParserOptions *options;      /* borrowed: this parse's gmime options */
    const unsigned char *raw;         /* borrowed: the bytes gmime reads (the caller's, or
                                         mime_parse's copy with delimiter junk blanked) */
    size_t raw_len;
    bool crlf;              /* the raw message uses CRLF line ends */
    GHashTable *delimiters; /* owned, NULL until needed: see mime_raw_has_delimiter */
};

/* ---- mime.c ---- */

/* mime_raw_has_delimiter - a line of the raw message is "--BOUNDARY"
 * (trailing blanks allowed). The first call indexes every "--" line of the
 * message once; later ones are lookups. */
bool mime_raw_has_delimiter(struct mime_ctx *ctx, const char *boundary);

/* ---- mime_charset.c ---- */

/* mime_decode_text - append to OUT the UTF-8 form of LEN bytes of DATA
 * declared as CHARSET (NULL or "" when undeclared), following the fallback
 * order documented in mime_charset.c. NUL bytes are dropped, CRLF and lone
 * CR become LF. WHAT names the source in warnings ("text/plain part").
 * Returns false when OUT refused to grow (the text is cut there). */
bool mime_decode_text(struct mime_ctx *ctx, const char *charset, const unsigned char *data,
                      size_t len, const char *what, struct buf *out);

/* mime_utf8_dup - copy of LEN bytes of S as valid UTF-8 (valid sequences
 * kept, every other byte read as windows-1252, NUL bytes dropped, CR and
 * CRLF made LF); caller owns it */
char *mime_utf8_dup(const char *s, size_t len);

/* mime_utf8_valid - LEN bytes of S are valid UTF-8 */
bool mime_utf8_valid(const unsigned char *s, size_t len);

/* ---- mime_header.c ---- */

/* mime_headers_fill - subject, date, ids, addresses of MSG into ctx->mail */
void mime_headers_fill(struct mime_ctx *ctx, GMimeMessage *msg);

/* mime_utf8_trimmed - S without surrounding white space, as valid UTF-8;
 * NULL when S is NULL or nothing is left. Caller owns it. */
char *mime_utf8_trimmed(const char *s);

/* mime_clean_for_warning - S cut to MAX bytes, with anything but printable
 * ASCII replaced by '?', for quoting hostile input in a warning; caller owns */
char *mime_clean_for_warning(const char *s, size_t max);

/* ---- mime_body.c ---- */

/* mime_body_fill - text, html and attachments of the tree under TOP into
 * ctx->mail (the limits were checked before) */
void mime_body_fill(struct mime_ctx *ctx, GMimeObject *top);

/* ---- mime_encoding.c ---- */

/* mime_base64_decode - base64 IN decoded into OUT (room for LEN / 4 * 3 +
 * 3): white space skipped, other bad characters skipped, the whole bytes of
 * a cut-off last group kept. *MALFORMED_R (may be NULL) tells whether IN
 * was not clean base64. Returns the length. */
size_t mime_base64_decode(const unsigned char *in, size_t len, unsigned char *out,
                          bool *malformed_r);

/* mime_qp_decode - quoted-printable IN decoded into OUT (room for LEN);
 * soft line breaks may have trailing blanks; an '=' starting neither a
 * byte nor a soft break stays as it is and makes *MALFORMED_R (may be NULL)
 * true. Returns the length. */
size_t mime_qp_decode(const unsigned char *in, size_t len, unsigned char *out, bool *malformed_r);

/* mime_sha256_hex - lower-case hex SHA-256 of DATA into OUT */
void mime_sha256_hex(const void *data, size_t len, char out[65]);

/* ---- mime_html.c ---- */

/* mime_html_scan - parse HTML once for two jobs: when TEXT_R is not NULL,
 * *TEXT_R gets its text as mime_html_to_text(HTML, MAX_LEN) gives it
 * (caller owns it); when FN is not NULL, FN(CTX, value) is called for every
 * src, href and background attribute (its return is ignored) */
void mime_html_scan(const char *html, size_t max_len, char **text_r, mime_ref_map_fn fn, void *ctx);

#endif
