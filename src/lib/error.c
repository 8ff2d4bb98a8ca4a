/* error - classified errors (see error.h). */
#include "lib/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *mb_status_name(enum mb_status status)
{
    switch (status) {
    case MB_OK:
        return "ok";
    case MB_TEMP:
        return "temp";
    case MB_PERM:
        return "perm";
    case MB_DOWN:
        return "down";
    case MB_CONFIG:
        return "config";
    }
    return "unknown";
}

enum mb_status mb_error_set(struct mb_error *err, enum mb_status status, const char *fmt, ...)
{
    if (err == NULL)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return status;
}

void mb_error_clear(struct mb_error *err)
{
    if (err == NULL)
        return;
    err->status = MB_OK;
    err->text[0] = '\0';
}
