/* buf - a growable byte buffer that refuses to grow past its limit.
 *
 * Every buffer fed by the outside world (HTTP responses, message bodies,
 * header lines) has a limit, so a hostile peer gets a clear error instead of
 * our memory. The data is always NUL-terminated for convenience; LEN does not
 * count that byte. */
#ifndef MB_LIB_BUF_H
#define MB_LIB_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t limit; /* 0 = unlimited */
};

/* buf_init - an empty buffer that holds at most LIMIT bytes (0 = no limit) */
void buf_init(struct buf *b, size_t limit);
/* buf_append - append N bytes; false (buffer unchanged) when over the limit */
bool buf_append(struct buf *b, const void *data, size_t n);
bool buf_append_str(struct buf *b, const char *s);
bool buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* buf_reset - length 0, memory kept */
void buf_reset(struct buf *b);
/* buf_steal - hand the NUL-terminated data to the caller (never NULL); B is empty after */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
