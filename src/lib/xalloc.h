/* xalloc - allocation that cannot fail.
 *
 * Allocation failure is fatal in exactly one place (here): the process logs
 * "out of memory" to stderr and exits with EX_OSERR, so no caller carries
 * impossible error branches. Every returned pointer is owned by the caller
 * and released with free(). */
#ifndef MB_LIB_XALLOC_H
#define MB_LIB_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
/* xreallocarray - grow an array of COUNT elements of SIZE, overflow checked */
void *xreallocarray(void *ptr, size_t count, size_t size);
/* xstrdup - copy of S; NULL stays NULL */
char *xstrdup(const char *s);
/* xstrndup - copy of at most N bytes of S, always NUL-terminated */
char *xstrndup(const char *s, size_t n);
/* xmemdup - copy of N bytes, with a NUL byte after them */
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
