/* logfmt - key=value pairs (see logfmt.h). */
#include "app/logfmt.h"

#include <stdbool.h>
#include <string.h>

#define LOGFMT_MAX_VALUE 400 /* a vendor's error page must not flood the log */

static bool needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (; *v; v++)
        if ((unsigned char)*v <= ' ' || *v == '"' || *v == '=' || *v == 0x7f)
            return true;
    return false;
}

void logfmt_pair(struct buf *line, const char *key, const char *value)
{
    if (line->len > 0)
        buf_append_str(line, " ");
    buf_printf(line, "%s=", key);
    if (value == NULL) {
        buf_append_str(line, "-");
        return;
    }
    bool quoted = needs_quotes(value);
    if (quoted)
        buf_append_str(line, "\"");
    size_t n = 0;
    for (const unsigned char *v = (const unsigned char *)value; *v && n < LOGFMT_MAX_VALUE; v++, n++) {
        if (*v == '"' || *v == '\\')
            buf_printf(line, "\\%c", *v);
        else if (*v == '\n')
            buf_append_str(line, "\\n");
        else if (*v == '\r')
            buf_append_str(line, "\\r");
        else if (*v < ' ' || *v == 0x7f)
            buf_printf(line, "\\x%02x", *v);
        else
            buf_append(line, v, 1);
    }
    if (value[n] != '\0')
        buf_append_str(line, "...");
    if (quoted)
        buf_append_str(line, "\"");
}
