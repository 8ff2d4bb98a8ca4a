/* cmd_deliver - `mailbridge deliver`: one message on standard input, from
 * an MTA pipe (Postfix pipe(8), procmail, ...).
 *
 * The exit code is the MTA's instruction: 0 only once the message is posted
 * or durably queued in our store; 75 (EX_TEMPFAIL) when it could not be
 * stored, so the MTA keeps it and tries again; 78 (EX_CONFIG) defers too.
 * A malformed message is queued to quarantine (exit 0), never bounced; only
 * a message over max_message_size is refused (65, EX_DATAERR: bounced with
 * the reason). */
#include <getopt.h>
#include <unistd.h>

#include "app/app.h"
#include "app/pipeline.h"
#include "transport/source.h"

static void deliver_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] deliver --route NAME < message\n\n"
                 "Take one message from standard input and post it through the route; for an\n"
                 "MTA pipe. The message is committed to the state store before anything else,\n"
                 "so exit 0 means it is safe with us even when the vendor is down.\n\n"
                 "options:\n"
                 "  -r, --route NAME  the [route NAME] to post through (required)\n"
                 "  -h, --help        this text\n\n"
                 "exit: 0 posted or queued, 65 larger than max_message_size (bounce),\n"
                 "75 could not be stored (the MTA retries), 78 configuration error (defer)\n");
}

/* deliver_one - read the message on standard input and ingest it; the exit code */
static int deliver_one(struct app *app, struct pipeline *p)
{
    struct source *src = NULL;
    struct mb_error err;
    enum mb_status st = source_open_fd(STDIN_FILENO, &app->cfg->source, &src, &err);
    struct source_msg msg;
    bool got = false;
    if (st == MB_OK)
        st = source_next(src, &msg, &got, &err);
    int rc = MB_EXIT_OK;
    if (st == MB_PERM) {
        pipeline_record_refused(p, "stdin", err.text);
        fprintf(stderr, "mailbridge: message refused: %s\n", err.text);
        rc = MB_EXIT_DATAERR;
    } else if (st != MB_OK) {
        log_error(&app->log, "reading standard input failed, the MTA keeps the message: %s", err.text);
        rc = MB_EXIT_TEMPFAIL;
    } else if (!got) {
        fprintf(stderr, "mailbridge: empty input: no message on standard input\n");
        rc = MB_EXIT_DATAERR;
    } else {
        st = pipeline_ingest(p, msg.data, msg.len, "stdin", false, &err);
        /* MB_DOWN: the vendor refused us, but the message is queued: safe */
        if (st == MB_TEMP) {
            log_error(&app->log, "message not stored, the MTA keeps it: %s", err.text);
            rc = MB_EXIT_TEMPFAIL;
        } else if (st == MB_DOWN) {
            log_error(&app->log, "%s (message queued for `mailbridge run`)", err.text);
        }
    }
    source_close(&src);
    return rc;
}

int cmd_deliver(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"route", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *route_name = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "r:h", options, NULL)) != -1) {
        if (opt == 'r') {
            route_name = optarg;
        } else {
            deliver_usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? MB_EXIT_OK : MB_EXIT_USAGE;
        }
    }
    if (route_name == NULL || optind != argc) {
        deliver_usage(stderr);
        return MB_EXIT_USAGE;
    }
    if (!app_load_config(app))
        return MB_EXIT_CONFIG;
    if (!app_open_store(app))
        return MB_EXIT_TEMPFAIL;
    struct mb_error err;
    const struct route_settings *route = NULL;
    struct pipeline *p = NULL;
    if (app_config_route(app->cfg, route_name, &route, &err) != MB_OK ||
        pipeline_open(app->cfg, route, app->store, &app->env, &p, &err) != MB_OK) {
        log_error(&app->log, "%s", err.text);
        return MB_EXIT_CONFIG;
    }
    int rc = deliver_one(app, p);
    pipeline_close(&p);
    return rc;
}
