/* cmd_import - `mailbridge import`: post archives (Maildir, mbox, .eml
 * files) through a route. Safe to interrupt and run again: every message is
 * keyed in the store, so nothing is posted twice, and messages an earlier
 * run left queued are posted now. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/pipeline.h"
#include "app/progress.h"
#include "lib/xalloc.h"
#include "transport/source.h"

static void import_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] import --route NAME [options] PATH...\n\n"
                 "Post every message under PATH (Maildir, mbox, directory of files, .eml) through\n"
                 "the route's connector: new tickets, follow-ups threaded by Message-Id, nothing\n"
                 "posted twice. Interrupt (Ctrl-C) at any time and run again to continue.\n\n"
                 "options:\n"
                 "  -r, --route NAME  the [route NAME] to post through (required)\n"
                 "  --log FILE        append the per-message log lines to FILE\n"
                 "  --no-progress     no progress line, even on a terminal\n"
                 "  -h, --help        this text\n\n"
                 "exit: 0 all posted (or already known), 1 some quarantined or waiting for a\n"
                 "retry (see `mailbridge status`), 69 the vendor refused our credentials,\n"
                 "75 the store failed, 78 configuration error\n");
}

/* A source that keeps failing to read (a dying disk) is given up after this many in a row. */
#define MAX_READ_ERRORS 10

/* import_source - every message of one PATH. A message the source cannot
 * read is skipped with a warning (it stays in the archive); a store failure
 * (MB_TEMP from the pipeline) or a vendor refusing us (MB_DOWN) stops it. */
static enum mb_status import_source(struct app *app, struct pipeline *p, const char *path,
                                    struct progress *pr, struct mb_error *err)
{
    struct source *src = NULL;
    enum mb_status st = source_open_path(path, &app->cfg->source, &src, err);
    unsigned read_errors = 0;
    while (st == MB_OK && !*app->stop) {
        struct source_msg msg = {0};
        bool got = false;
        st = source_next(src, &msg, &got, err);
        char *where = msg.id != NULL ? source_where(src, &msg) : xstrdup(src->name);
        if (st == MB_PERM && msg.id != NULL) {
            pipeline_record_refused(p, where, err->text);
            st = MB_OK;
        } else if (st == MB_TEMP && ++read_errors < MAX_READ_ERRORS) {
            log_warning(&app->log, "source=%s status=skipped error=\"%s\"", where, err->text);
            st = MB_OK;
        } else if (st == MB_OK && got) {
            read_errors = 0;
            st = pipeline_ingest(p, msg.data, msg.len, where, false, err);
            unsigned long long done, total;
            source_progress(src, &done, &total);
            progress_update(pr, path, done, total, pipeline_stats(p));
        }
        free(where);
        if (st == MB_OK && !got && msg.id == NULL)
            break;
    }
    source_close(&src);
    return st;
}

static void print_summary(const struct pipeline_stats *s, bool interrupted)
{
    fprintf(stderr,
            "mailbridge import%s: %llu new tickets, %llu follow-ups, %llu duplicates skipped, "
            "%llu queued for retry, %llu quarantined, %llu reconciled\n",
            interrupted ? " (interrupted: run again to continue)" : "", s->created, s->appended,
            s->duplicates, s->retrying, s->quarantined, s->reconciled);
}

int cmd_import(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"route", required_argument, NULL, 'r'},
        {"log", required_argument, NULL, 'L'},
        {"no-progress", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *route_name = NULL, *log_path = NULL;
    bool progress_wanted = true;
    int opt;
    while ((opt = getopt_long(argc, argv, "r:h", options, NULL)) != -1) {
        if (opt == 'r')
            route_name = optarg;
        else if (opt == 'L')
            log_path = optarg;
        else if (opt == 'P')
            progress_wanted = false;
        else {
            import_usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? MB_EXIT_OK : MB_EXIT_USAGE;
        }
    }
    if (route_name == NULL || optind >= argc) {
        fprintf(stderr, "mailbridge import: %s\n", route_name ? "no PATH given" : "--route is required");
        import_usage(stderr);
        return MB_EXIT_USAGE;
    }
    FILE *log_file = NULL;
    if (log_path != NULL && (log_file = fopen(log_path, "a")) == NULL) {
        fprintf(stderr, "mailbridge import: cannot open log file %s\n", log_path);
        return MB_EXIT_USAGE;
    }
    if (!app_open_store(app)) {
        if (log_file)
            fclose(log_file);
        return MB_EXIT_CONFIG;
    }
    struct progress pr;
    progress_init(&pr, progress_wanted && isatty(STDERR_FILENO));
    if (log_file != NULL)
        app->log.stream = log_file;
    else if (pr.enabled && app->log.level == MB_LOG_INFO)
        app->log.level = MB_LOG_WARNING; /* a terminal shows progress and problems only */

    struct mb_error err;
    const struct route_settings *route = NULL;
    struct pipeline *p = NULL;
    enum mb_status st = app_config_route(app->cfg, route_name, &route, &err);
    if (st == MB_OK)
        st = pipeline_open(app->cfg, route, app->store, &app->env, &p, &err);
    if (st == MB_OK)
        st = pipeline_reconcile(p, &err);
    for (int i = optind; st == MB_OK && i < argc && !*app->stop; i++)
        st = import_source(app, p, argv[i], &pr, &err);
    progress_done(&pr);
    app->log.stream = stderr;
    if (log_file != NULL)
        fclose(log_file);
    if (st != MB_OK)
        log_error(&app->log, "import stopped: %s", err.text);
    int rc = app_exit_code(st);
    if (p != NULL) {
        const struct pipeline_stats *s = pipeline_stats(p);
        print_summary(s, *app->stop != 0);
        if (rc == MB_EXIT_OK && (s->retrying || s->quarantined))
            rc = MB_EXIT_PARTIAL;
    }
    pipeline_close(&p);
    return rc;
}
