/* log - one key=value line per event, to a stream owned by main().
 *
 * Lines look like
 *   2026-11-21T10:00:00Z mailbridge[812]: info: msg=<id> route=support status=ok
 * Levels: error (this message or operation failed), warning (degraded but
 * continuing), info (what happened to each message), debug. Secrets never
 * reach a log call: callers log names of secrets, never values.
 *
 * struct mb_log is created by main() and borrowed by everything else; it is
 * the only logging state there is. */
#ifndef MB_LIB_LOG_H
#define MB_LIB_LOG_H

#include <stdio.h>

enum mb_log_level { MB_LOG_ERROR = 0, MB_LOG_WARNING, MB_LOG_INFO, MB_LOG_DEBUG };

struct mb_log {
    FILE *stream;            /* borrowed: usually stderr */
    enum mb_log_level level; /* lines above this level are dropped */
};

/* mb_log_level_parse - "error", "warning", "info", "debug"; -1 if unknown */
int mb_log_level_parse(const char *name);

void mb_log(const struct mb_log *log, enum mb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(log, ...) mb_log((log), MB_LOG_ERROR, __VA_ARGS__)
#define log_warning(log, ...) mb_log((log), MB_LOG_WARNING, __VA_ARGS__)
#define log_info(log, ...) mb_log((log), MB_LOG_INFO, __VA_ARGS__)
#define log_debug(log, ...) mb_log((log), MB_LOG_DEBUG, __VA_ARGS__)

#endif
