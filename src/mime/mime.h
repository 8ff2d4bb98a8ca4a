/* mime - raw RFC 5322 / MIME bytes into the normalized mail (gmime inside).
 *
 * Everything gmime or libxml2 touches stays behind this header: callers see
 * only struct mb_mail and plain strings. Parsing never crashes or hangs on
 * hostile input: every limit in struct mime_limits is checked, and
 * exceeding one is a clear MB_PERM error. What could be repaired (bad
 * charsets, broken encoded words, missing boundaries) is repaired and noted
 * in mail->warnings. */
#ifndef MB_MIME_MIME_H
#define MB_MIME_MIME_H

#include <stddef.h>

#include "core/mail.h"
#include "lib/error.h"

struct mime_limits {
    size_t max_message_size;    /* raw bytes; default 50 MiB */
    unsigned max_depth;         /* multipart / message nesting; default 20 */
    unsigned max_parts;         /* MIME parts in the whole tree; default 1000 */
    size_t max_header_length;   /* one (unfolded) header field; default 64 KiB */
    size_t max_html_text;       /* bytes of text rendered from HTML; default 4 MiB */
};

/* mime_limits_default - fill L with the documented defaults above */
void mime_limits_default(struct mime_limits *l);

/* mime_global_init - initialise gmime once per process (main() calls it;
 * gmime's own state is process-wide). mime_global_deinit undoes it. */
void mime_global_init(void);
void mime_global_deinit(void);

/* mime_parse - parse RAW (LEN bytes; need not be NUL-terminated) into a new
 * mail owned by the caller (*MAIL_R, free with mail_free). Sets mail->key:
 * the Message-Id, else mime_raw_key(). Returns MB_OK, or MB_PERM with a
 * reason when a limit is exceeded or the bytes are not a message at all;
 * *MAIL_R is NULL then. */
enum mb_status mime_parse(const unsigned char *raw, size_t len, const struct mime_limits *limits,
                          struct mb_mail **mail_r, struct mb_error *err);

/* mime_raw_key - "sha256:<hex>" of RAW, owned by the caller: the key of a
 * message without Message-Id, and of one that could not be parsed. */
char *mime_raw_key(const unsigned char *raw, size_t len);

/* mime_ref_map_fn - the replacement for a reference REF found in an HTML
 * attribute (for example "cid:logo@x" or a Content-Location URL), or NULL to
 * leave it alone. The returned string is borrowed from CTX. */
typedef const char *(*mime_ref_map_fn)(void *ctx, const char *ref);

/* mime_html_rewrite_refs - HTML with every src/href/background reference
 * passed through MAP (libxml2, not regexes). Caller owns the result; an
 * HTML that libxml2 cannot read at all comes back unchanged (copied). */
char *mime_html_rewrite_refs(const char *html, mime_ref_map_fn map, void *ctx);

/* mime_html_to_text - readable plain text of HTML (block elements become
 * line breaks, links keep their URL, scripts and styles dropped), at most
 * MAX_LEN bytes; caller owns the result. */
char *mime_html_to_text(const char *html, size_t max_len);

/* mime_text_to_html - TEXT escaped into a minimal HTML rendering (line
 * breaks kept, URLs not linked); caller owns the result. */
char *mime_text_to_html(const char *text);

#endif
