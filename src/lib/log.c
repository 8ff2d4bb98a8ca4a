/* log - key=value log lines (see log.h). */
#include "lib/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warning", "info", "debug"};

int mb_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void mb_log(const struct mb_log *log, enum mb_log_level level, const char *fmt, ...)
{
    if (log == NULL || log->stream == NULL || level > log->level)
        return;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);

    /* One fprintf per line part, then a single flush: lines from one
     * process never interleave because we are single-threaded. */
    fprintf(log->stream, "%s mailbridge[%ld]: %s: ", stamp, (long)getpid(), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log->stream, fmt, ap);
    va_end(ap);
    fputc('\n', log->stream);
    fflush(log->stream);
}
