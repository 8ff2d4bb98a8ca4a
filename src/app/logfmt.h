/* logfmt - key=value pairs for log lines, quoted so one line stays one line.
 *
 * Values come from mail and vendors: control characters (CR, LF, ...) are
 * escaped, values with spaces, quotes or '=' are quoted, NULL prints "-". */
#ifndef MB_APP_LOGFMT_H
#define MB_APP_LOGFMT_H

#include "lib/buf.h"

/* logfmt_pair - append " KEY=VALUE" (no leading space when LINE is empty) */
void logfmt_pair(struct buf *line, const char *key, const char *value);

#endif
