/* json_out - json-c writing helpers (see json_out.h). Keys are added as
 * constant and new: no copy and no duplicate lookup, which matters when
 * `mailbridge parse` runs over whole mailboxes. */
#include "connectors/json_out.h"

#include <string.h>

#include "lib/xalloc.h"

void json_out_add(json_object *obj, const char *key, json_object *value)
{
    json_object_object_add_ex(obj, key, value,
                              JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_ADD_CONSTANT_KEY);
}

char *json_out_string(json_object *obj)
{
    char *text = xstrdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(obj);
    return text;
}

void json_out_escaped(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s; /* start of the bytes not yet appended */
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(out, run, (size_t)(p - run));
        if (c == '\0')
            return;
        char esc[6] = {'\\', (char)c};
        size_t n = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default: /* \u00XX, lower-case as json-c writes it */
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
            break;
        }
        buf_append(out, esc, n);
        run = p + 1;
    }
}
