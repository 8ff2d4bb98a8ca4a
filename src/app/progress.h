/* progress - one self-redrawing status line on a terminal for long work.
 *
 * Drawn on stderr at most ten times a second, only when stderr is a
 * terminal (never into logs or pipes). progress_done ends the line. */
#ifndef MB_APP_PROGRESS_H
#define MB_APP_PROGRESS_H

#include <stdbool.h>

#include "app/pipeline.h"

struct progress {
    bool enabled;
    long long last_draw_ms;
    long long started_ms;
    unsigned long long messages;
};

void progress_init(struct progress *pr, bool enabled);
/* progress_update - one more message; DONE of TOTAL units of the current source */
void progress_update(struct progress *pr, const char *what, unsigned long long done,
                     unsigned long long total, const struct pipeline_stats *stats);
void progress_done(struct progress *pr);

#endif
