/* progress - a status line on a terminal (see progress.h). */
#include "app/progress.h"
#include "lib/clock.h"

#include <stdio.h>
#include <string.h>

#define REDRAW_MS 100

void progress_init(struct progress *pr, bool enabled)
{
    memset(pr, 0, sizeof(*pr));
    pr->enabled = enabled;
    pr->started_ms = clock_now_ms();
}

void progress_update(struct progress *pr, const char *what, unsigned long long done,
                     unsigned long long total, const struct pipeline_stats *stats)
{
    pr->messages++;
    long long now = clock_now_ms();
    if (!pr->enabled || now - pr->last_draw_ms < REDRAW_MS)
        return;
    pr->last_draw_ms = now;
    double secs = (double)(now - pr->started_ms) / 1000.0;
    char pct[16] = "";
    if (total > 0)
        snprintf(pct, sizeof(pct), "%3llu%% ", done * 100 / total);
    /* \r plus erase-to-end-of-line: the line redraws in place */
    fprintf(stderr, "\r\033[K%s %.40s  %llu msgs (%.0f/s)  new=%llu follow-up=%llu dup=%llu retry=%llu quarantined=%llu",
            pct, what, pr->messages, secs > 0 ? (double)pr->messages / secs : 0.0, stats->created,
            stats->appended, stats->duplicates, stats->retrying, stats->quarantined);
    fflush(stderr);
}

void progress_done(struct progress *pr)
{
    if (pr->enabled && pr->last_draw_ms != 0)
        fprintf(stderr, "\r\033[K");
}
