/* json_out - the json-c writing helpers the connectors share.
 *
 * Internal to src/connectors (json-c types never leave this folder). Every
 * JSON we send or print is compact, with UTF-8 kept and '/' unescaped. */
#ifndef MB_CONNECTORS_JSON_OUT_H
#define MB_CONNECTORS_JSON_OUT_H

#include <json-c/json.h>

#include "lib/buf.h"

/* json_out_add - KEY (a string literal, not yet in OBJ) = VALUE (NULL is
 * JSON null); OBJ takes VALUE over */
void json_out_add(json_object *obj, const char *key, json_object *value);

/* json_out_string - OBJ as one line of JSON, owned by the caller; OBJ is released */
char *json_out_string(json_object *obj);

/* json_out_escaped - append S to OUT as the inside of a JSON string, byte
 * for byte as json_out_string writes a string: '"', '\\' and control
 * characters escaped, everything else (UTF-8 included) as it is. For a
 * document too hot to build as objects (json-c escapes a character at a
 * time, and a posted body is escaped on every message). */
void json_out_escaped(struct buf *out, const char *s);

#endif
