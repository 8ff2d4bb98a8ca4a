/* cmd_run - `mailbridge run`: the daemon loop. Settles posts a crash left
 * unanswered, then posts queued messages and retries temporary failures
 * when they fall due. Each route is independent: one whose vendor refuses
 * us backs off on its own while the others go on. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "lib/clock.h"
#include "app/pipeline.h"
#include "lib/backoff.h"
#include "lib/xalloc.h"

struct route_run {
    struct pipeline *p;     /* owned */
    const char *name;       /* borrowed */
    unsigned failures;      /* consecutive MB_DOWN/MB_TEMP route failures */
    long long resume_at_ms; /* backing off until then */
};

static void run_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] run [options]\n\n"
                 "Post queued messages and retry failed ones with exponential backoff, for every\n"
                 "route (or one). Stops cleanly on SIGINT/SIGTERM.\n\n"
                 "options:\n"
                 "  -r, --route NAME  only this route\n"
                 "  --once            post what is due now, then exit (for cron and tests)\n"
                 "  -h, --help        this text\n\n"
                 "exit: 0 done, 1 (with --once) messages still waiting for a retry,\n"
                 "69 (with --once) a vendor refused our credentials, 78 configuration error\n");
}

/* sleep_ms - sleep, cut short by a stop signal */
static void sleep_ms(long long ms, const volatile sig_atomic_t *stop)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (!*stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* run_route - one pass over ROUTE; its failures back it off, nobody else */
static enum mb_status run_route(struct app *app, struct route_run *r, bool once, size_t *posted_r)
{
    struct mb_error err;
    size_t posted = 0;
    *posted_r = 0;
    /* Every pass settles posts left without an answer (a crash, a reset)
     * before anything new: a lost answer must not become a duplicate. */
    enum mb_status st = pipeline_reconcile(r->p, &err);
    while (st == MB_OK) {
        st = pipeline_drain(r->p, clock_now_ms(), 0, app->stop, &posted, &err);
        *posted_r += posted;
        if (!once || posted == 0 || *app->stop)
            break;
    }
    if (st == MB_OK) {
        r->failures = 0;
        return MB_OK;
    }
    r->failures++;
    long long delay = backoff_delay_ms(&app->cfg->backoff, r->failures, -1);
    r->resume_at_ms = clock_now_ms() + delay;
    log_error(&app->log, "route=%s status=%s error=\"%s\" resume_in=%llds", r->name, mb_status_name(st),
              err.text, delay / 1000);
    return st;
}

/* open_routes - a pipeline per route (or only ONLY) */
static enum mb_status open_routes(struct app *app, const char *only, struct route_run **runs_r,
                                  size_t *count_r)
{
    struct route_run *runs = xcalloc(app->cfg->route_count, sizeof(*runs));
    size_t n = 0;
    struct mb_error err;
    const struct route_settings *wanted = NULL;
    enum mb_status st = only != NULL ? app_config_route(app->cfg, only, &wanted, &err) : MB_OK;
    for (size_t i = 0; st == MB_OK && i < app->cfg->route_count; i++) {
        const struct route_settings *route = &app->cfg->routes[i];
        if (wanted != NULL && wanted != route)
            continue;
        st = pipeline_open(app->cfg, route, app->store, &app->env, &runs[n].p, &err);
        if (st != MB_OK)
            break;
        runs[n++].name = route->name;
    }
    if (st != MB_OK)
        log_error(&app->log, "%s", err.text);
    *runs_r = runs;
    *count_r = n;
    return st;
}

int cmd_run(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"route", required_argument, NULL, 'r'},
        {"once", no_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *only = NULL;
    bool once = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "r:h", options, NULL)) != -1) {
        if (opt == 'r')
            only = optarg;
        else if (opt == 'o')
            once = true;
        else {
            run_usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? MB_EXIT_OK : MB_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        run_usage(stderr);
        return MB_EXIT_USAGE;
    }
    if (!app_open_store(app))
        return MB_EXIT_CONFIG;
    struct route_run *runs = NULL;
    size_t count = 0;
    enum mb_status st = open_routes(app, only, &runs, &count);
    int rc = st == MB_OK ? MB_EXIT_OK : MB_EXIT_CONFIG;
    if (st == MB_OK)
        log_info(&app->log, "run: %zu route(s)%s", count, once ? ", once" : "");
    while (st == MB_OK && !*app->stop) {
        size_t busy = 0; /* routes take turns a batch at a time; sleep only when all are idle */
        for (size_t i = 0; i < count && !*app->stop; i++) {
            size_t posted = 0;
            if (runs[i].resume_at_ms > clock_now_ms())
                continue;
            enum mb_status rst = run_route(app, &runs[i], once, &posted);
            if (once && rst != MB_OK)
                rc = app_exit_code(rst);
            busy += posted > 0;
        }
        if (once)
            break;
        if (busy == 0)
            sleep_ms(app->cfg->poll_interval_ms, app->stop);
    }
    if (once && rc == MB_EXIT_OK) {
        unsigned long long counts[MSG_STATE_COUNT];
        struct mb_error err;
        if (store_counts(app->store, only, counts, &err) == MB_OK && counts[MSG_RETRY] > 0)
            rc = MB_EXIT_PARTIAL;
    }
    for (size_t i = 0; i < count; i++)
        pipeline_close(&runs[i].p);
    free(runs);
    return rc;
}
