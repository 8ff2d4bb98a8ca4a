/* json_out - json-c writing helpers (see json_out.h). Keys are added as
 * constant and new: no copy and no duplicate lookup, which matters when
 * `mailbridge parse` runs over whole mailboxes. */
#include "connectors/json_out.h"

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
