/* cmd_status - `mailbridge status` (what happened to my mail) and
 * `mailbridge retry` (try quarantined messages again). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "lib/clock.h"
#include "app/pipeline.h"

static void status_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] status [--route NAME] [--limit N]\n\n"
                 "Messages per state for each route, then the most recent failures with their\n"
                 "reasons: quarantined (needs a person: fix, then `mailbridge retry`), waiting\n"
                 "for a retry (with the time of the next attempt), and posts in flight.\n\n"
                 "options:\n"
                 "  -r, --route NAME  only this route\n"
                 "  -n, --limit N     failures listed per state (default 10)\n"
                 "  -h, --help        this text\n");
}

static void format_time(long long ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void print_counts(struct app *app, const char *route)
{
    unsigned long long counts[MSG_STATE_COUNT];
    struct mb_error err;
    if (store_counts(app->store, route, counts, &err) != MB_OK) {
        printf("  (counts unavailable: %s)\n", err.text);
        return;
    }
    printf("route %s:", route);
    for (int s = 0; s < MSG_STATE_COUNT; s++)
        printf("  %s %llu", msg_state_name((enum msg_state)s), counts[s]);
    printf("\n");
}

static void print_failures(struct app *app, const char *route, enum msg_state state, size_t limit)
{
    struct store_msg *msgs = NULL;
    size_t count = 0;
    struct mb_error err;
    if (store_list(app->store, route, state, limit, &msgs, &count, &err) != MB_OK) {
        printf("  (%s list unavailable: %s)\n", msg_state_name(state), err.text);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        const struct store_msg *m = &msgs[i];
        char when[32];
        format_time(m->updated_ms, when, sizeof(when));
        printf("  %-10s %s  route=%s  key=%s  attempts=%u\n", msg_state_name(state), when, m->route, m->key,
               m->attempts);
        printf("             subject: %s\n             source:  %s\n", m->subject ? m->subject : "-",
               m->source ? m->source : "-");
        if (state == MSG_RETRY) {
            long long in = (m->next_attempt_ms - clock_now_ms()) / 1000;
            printf("             next attempt in %llds\n", in > 0 ? in : 0);
        }
        if (m->last_error != NULL)
            printf("             reason:  %s\n", m->last_error);
    }
    store_msgs_free(&msgs, count);
}

int cmd_status(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"route", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *only = NULL;
    long limit = 10;
    int opt;
    while ((opt = getopt_long(argc, argv, "r:n:h", options, NULL)) != -1) {
        if (opt == 'r') {
            only = optarg;
        } else if (opt == 'n' && (limit = strtol(optarg, NULL, 10)) > 0) {
            continue;
        } else {
            status_usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? MB_EXIT_OK : MB_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        status_usage(stderr);
        return MB_EXIT_USAGE;
    }
    const struct route_settings *wanted = NULL;
    int rc = app_open_route(app, only, &wanted);
    if (rc != MB_EXIT_OK)
        return rc;
    for (size_t i = 0; i < app->cfg->route_count; i++)
        if (wanted == NULL || wanted == &app->cfg->routes[i])
            print_counts(app, app->cfg->routes[i].name);
    static const enum msg_state listed[] = {MSG_QUARANTINE, MSG_RETRY, MSG_POSTING};
    printf("recent failures and posts in flight:\n");
    for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++)
        print_failures(app, only, listed[i], (size_t)limit);
    return MB_EXIT_OK;
}

static void retry_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] retry [--route NAME] [--key KEY]\n\n"
                 "Queue quarantined messages (and those waiting for a retry) again, due now;\n"
                 "`mailbridge run` then posts them. Without --key: every such message (of the\n"
                 "route). Messages whose raw bytes were not kept cannot be retried.\n\n"
                 "options:\n"
                 "  -r, --route NAME  only this route\n"
                 "  -k, --key KEY     only this message (its key, as `status` shows it)\n"
                 "  -h, --help        this text\n");
}

int cmd_retry(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"route", required_argument, NULL, 'r'},
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *route = NULL, *key = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "r:k:h", options, NULL)) != -1) {
        if (opt == 'r')
            route = optarg;
        else if (opt == 'k')
            key = optarg;
        else {
            retry_usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? MB_EXIT_OK : MB_EXIT_USAGE;
        }
    }
    if (optind != argc || (key != NULL && route == NULL)) {
        fprintf(stderr, "mailbridge retry: %s\n", key ? "--key needs --route" : "unexpected argument");
        retry_usage(stderr);
        return MB_EXIT_USAGE;
    }
    if (!app_open_store(app))
        return MB_EXIT_CONFIG;
    unsigned long long count = 0;
    struct mb_error err;
    if (store_requeue(app->store, route, key, &count, &err) != MB_OK) {
        log_error(&app->log, "retry: %s", err.text);
        return app_exit_code(err.status);
    }
    printf("%llu message(s) queued again; `mailbridge run` posts them\n", count);
    return key != NULL && count == 0 ? MB_EXIT_PARTIAL : MB_EXIT_OK;
}
