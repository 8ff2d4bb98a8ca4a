/* xalloc - allocation that cannot fail (see xalloc.h). */
#include "lib/xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

/* out_of_memory - the one place where allocation failure is handled */
static void out_of_memory(size_t size)
{
    fprintf(stderr, "mailbridge: fatal: out of memory allocating %zu bytes\n", size);
    exit(EX_OSERR);
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(count * size);
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *xreallocarray(void *ptr, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        out_of_memory(SIZE_MAX);
    return xrealloc(ptr, count * size);
}

char *xstrdup(const char *s)
{
    return s == NULL ? NULL : xmemdup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    const char *end = memchr(s, '\0', n);
    return xmemdup(s, end ? (size_t)(end - s) : n);
}

void *xmemdup(const void *p, size_t n)
{
    char *copy = xmalloc(n + 1);
    if (n > 0)
        memcpy(copy, p, n);
    copy[n] = '\0';
    return copy;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int len = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (len < 0)
        out_of_memory(0);
    char *s = xmalloc((size_t)len + 1);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    return s;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}
