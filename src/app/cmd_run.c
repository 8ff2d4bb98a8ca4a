/* cmd_run - `mailbridge run`: the daemon. For every route it settles posts
 * left without an answer, fetches new mail from the route's mailbox (IMAP
 * or POP3), posts queued messages and retries failures when they fall due,
 * and applies the processed-mail action once the vendor has a message. Then
 * it waits: on IMAP IDLE sockets (push) and the poll interval.
 *
 * Routes are independent: one whose mailbox or vendor fails backs off on
 * its own (exponentially, retry_base to retry_max) while the others go on.
 * Everything runs in one thread; poll() is the only place it sleeps. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/app.h"
#include "app/mailbox.h"
#include "app/pipeline.h"
#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/xalloc.h"

/* An IDLE is ended and issued again well before the server's 29-minute limit. */
#define IDLE_REFRESH_MS (25LL * 60 * 1000)

struct route_run {
    const struct route_settings *route; /* borrowed */
    struct pipeline *p;                 /* owned */
    struct route_mailbox mailbox;       /* owned: src NULL while disconnected */
    unsigned failures;                  /* consecutive failed passes */
    long long resume_at_ms;             /* backing off until then */
    bool waiting;                       /* idle_begin was called, idle_end is due */
    int idle_fd;                        /* >= 0 while an IMAP IDLE is under way */
};

static void run_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] run [options]\n\n"
                 "The daemon: watch every route's mailbox (IMAP IDLE or polling, POP3), post new\n"
                 "mail, retry failures with exponential backoff, and flag/move/delete a message\n"
                 "only once the vendor has it. Stops cleanly on SIGINT/SIGTERM.\n\n"
                 "options:\n"
                 "  -r, --route NAME  only this route\n"
                 "  --once            one pass (fetch, post what is due, settle), then exit\n"
                 "  -h, --help        this text\n\n"
                 "exit: 0 done, 1 (with --once) messages still waiting for a retry,\n"
                 "69 (with --once) a vendor or mailbox refused our credentials, 78 configuration error\n");
}

/* back_off - ROUTE failed a pass: wait longer after each failure in a row, and say why */
static void back_off(struct app *app, struct route_run *r, const char *what, const struct mb_error *err)
{
    r->failures++;
    long long delay = backoff_delay_ms(&app->cfg->backoff, r->failures, -1);
    r->resume_at_ms = clock_now_ms() + delay;
    log_error(&app->log, "route=%s %s status=%s error=\"%s\" resume_in=%llds", r->route->name, what,
              mb_status_name(err->status), err->text, (delay + 999) / 1000);
}

/* mailbox_step - connect if needed, fetch new mail, settle what is safe now */
static enum mb_status mailbox_step(struct app *app, struct route_run *r, const char *spool, size_t *work_r,
                                   struct mb_error *err)
{
    enum mb_status st = MB_OK;
    if (r->mailbox.src == NULL) {
        st = route_mailbox_open(r->route, app->store, spool, &r->mailbox, err);
        if (st != MB_OK)
            return st;
        log_info(&app->log, "route=%s mailbox=%s status=connected", r->route->name, r->mailbox.src->name);
    }
    size_t fetched = 0, settled = 0;
    st = route_mailbox_fetch(&r->mailbox, r->p, app->stop, &fetched, err);
    if (st == MB_OK)
        st = route_mailbox_settle(&r->mailbox, r->route->name, &app->log, &settled, err);
    *work_r += fetched + settled;
    return st;
}

/* run_pass - one pass over route R; *WORK_R counts what it did */
static enum mb_status run_pass(struct app *app, struct route_run *r, bool once, const char *spool,
                               size_t *work_r)
{
    struct mb_error err;
    mb_error_clear(&err);
    /* Posts left without an answer (a crash, a reset) are settled before
     * anything new: a lost answer must not become a duplicate. */
    enum mb_status st = pipeline_reconcile(r->p, &err);
    bool mailbox = r->route->mailbox.url != NULL;
    if (st == MB_OK && mailbox)
        st = mailbox_step(app, r, spool, work_r, &err);
    while (st == MB_OK) {
        size_t posted = 0;
        st = pipeline_drain(r->p, clock_now_ms(), 0, app->stop, &posted, &err);
        *work_r += posted;
        if (posted == 0 || *app->stop || !once)
            break;
    }
    if (st == MB_OK && mailbox) { /* what the drain just delivered can be flagged now */
        size_t settled = 0;
        st = route_mailbox_settle(&r->mailbox, r->route->name, &app->log, &settled, &err);
        *work_r += settled;
    }
    if (st == MB_OK) {
        r->failures = 0;
        return MB_OK;
    }
    route_mailbox_close(&r->mailbox); /* a fresh connection on the next pass */
    back_off(app, r, "pass", &err);
    return st;
}

/* open_routes - a pipeline per route (or only ONLY); mailboxes connect on
 * the first pass, so one unreachable server does not stop the daemon */
static enum mb_status open_routes(struct app *app, const char *only, struct route_run **runs_r,
                                  size_t *count_r)
{
    const struct route_settings *wanted = NULL;
    *runs_r = NULL;
    *count_r = 0;
    if (app_open_route(app, only, &wanted) != MB_EXIT_OK)
        return MB_CONFIG; /* said already */
    struct route_run *runs = xcalloc(app->cfg->route_count, sizeof(*runs));
    size_t n = 0;
    struct mb_error err;
    enum mb_status st = MB_OK;
    for (size_t i = 0; st == MB_OK && i < app->cfg->route_count; i++) {
        const struct route_settings *route = &app->cfg->routes[i];
        if (wanted != NULL && wanted != route)
            continue;
        st = pipeline_open(app->cfg, route, app->store, &app->env, &runs[n].p, &err);
        if (st != MB_OK)
            break;
        runs[n].route = route;
        runs[n].idle_fd = -1;
        n++;
    }
    if (st != MB_OK)
        log_error(&app->log, "%s", err.text);
    *runs_r = runs;
    *count_r = n;
    return st;
}

/* idle_begin_all - start waiting on every connected mailbox that can push;
 * false when one already knows of new mail (then nobody should wait) */
static bool idle_begin_all(struct app *app, struct route_run *runs, size_t count)
{
    bool wait = true;
    for (size_t i = 0; i < count; i++) {
        struct route_run *r = &runs[i];
        if (r->mailbox.src == NULL || r->waiting || r->resume_at_ms > clock_now_ms())
            continue;
        struct mb_error err;
        int fd = -1;
        bool ready = false;
        if (r->mailbox.src->ops->idle_begin(r->mailbox.src, &fd, &ready, &err) != MB_OK) {
            route_mailbox_close(&r->mailbox);
            back_off(app, r, "idle", &err);
            continue;
        }
        r->idle_fd = fd;
        r->waiting = true;
        wait = wait && !ready;
    }
    return wait;
}

/* idle_end_all - the wait is over: end every IDLE under way */
static void idle_end_all(struct app *app, struct route_run *runs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct route_run *r = &runs[i];
        if (r->mailbox.src == NULL || !r->waiting)
            continue;
        struct mb_error err;
        enum mb_status st = r->mailbox.src->ops->idle_end(r->mailbox.src, &err);
        r->waiting = false;
        r->idle_fd = -1;
        if (st != MB_OK) {
            route_mailbox_close(&r->mailbox);
            back_off(app, r, "idle", &err);
        }
    }
}

/* wait_for_work - sleep up to the poll interval, less when a route resumes
 * sooner; wake at once when an IDLE socket says the server has news */
static void wait_for_work(struct app *app, struct route_run *runs, size_t count)
{
    bool wait = idle_begin_all(app, runs, count);
    struct pollfd *fds = xcalloc(count ? count : 1, sizeof(*fds));
    nfds_t nfds = 0;
    long long now = clock_now_ms();
    long long timeout = app->cfg->poll_interval_ms < IDLE_REFRESH_MS ? app->cfg->poll_interval_ms : IDLE_REFRESH_MS;
    for (size_t i = 0; i < count; i++) {
        if (runs[i].idle_fd >= 0)
            fds[nfds++] = (struct pollfd){.fd = runs[i].idle_fd, .events = POLLIN};
        if (runs[i].resume_at_ms > now && runs[i].resume_at_ms - now < timeout)
            timeout = runs[i].resume_at_ms - now;
    }
    if (!*app->stop)
        poll(fds, nfds, wait ? (int)timeout : 0); /* EINTR from a stop signal is a wake-up too */
    free(fds);
    idle_end_all(app, runs, count);
}

static char *spool_dir(struct app *app)
{
    char *dir = xasprintf("%s/spool", app->cfg->state_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        log_warning(&app->log, "spool %s: %s (large messages will be held in memory)", dir, strerror(errno));
    return dir;
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
    struct route_run *runs = NULL;
    size_t count = 0;
    enum mb_status st = open_routes(app, only, &runs, &count);
    int rc = st == MB_OK ? MB_EXIT_OK : MB_EXIT_CONFIG;
    char *spool = st == MB_OK ? spool_dir(app) : NULL;
    if (st == MB_OK)
        log_info(&app->log, "run: %zu route(s)%s", count, once ? ", once" : "");
    while (st == MB_OK && !*app->stop) {
        size_t work = 0;
        for (size_t i = 0; i < count && !*app->stop; i++) {
            if (runs[i].resume_at_ms > clock_now_ms())
                continue;
            enum mb_status rst = run_pass(app, &runs[i], once, spool, &work);
            if (once && rst != MB_OK)
                rc = app_exit_code(rst);
        }
        if (once)
            break;
        if (work == 0) /* routes take turns; sleep only when none had anything to do */
            wait_for_work(app, runs, count);
    }
    if (once && rc == MB_EXIT_OK) {
        unsigned long long counts[MSG_STATE_COUNT];
        struct mb_error err;
        if (store_counts(app->store, only, counts, &err) == MB_OK && counts[MSG_RETRY] > 0)
            rc = MB_EXIT_PARTIAL;
    }
    if (st == MB_OK)
        log_info(&app->log, "run: stopped");
    for (size_t i = 0; i < count; i++) {
        route_mailbox_close(&runs[i].mailbox);
        pipeline_close(&runs[i].p);
    }
    free(runs);
    free(spool);
    return rc;
}
