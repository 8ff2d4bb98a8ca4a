/* cmd_check - `mailbridge check`: connect to every configured mailbox and
 * vendor and say, for each, whether it works and if not why - before the
 * daemon is started, and whenever something seems off. Nothing is posted,
 * fetched or flagged. */
#include <getopt.h>

#include "app/app.h"
#include "app/mailbox.h"

static void check_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] check [--route NAME]\n\n"
                 "Log in to every route's mailbox and make one harmless authenticated request\n"
                 "to every connector; print OK or the reason for each.\n\n"
                 "options:\n"
                 "  -r, --route NAME  only this route and its connector\n"
                 "  -h, --help        this text\n\n"
                 "exit: 0 everything works, 1 something does not, 78 configuration error\n");
}

static const char *class_word(enum mb_status st)
{
    switch (st) {
    case MB_DOWN:
        return "refused (credentials or TLS)";
    case MB_TEMP:
        return "unreachable or failing";
    case MB_CONFIG:
        return "misconfigured";
    default:
        return "failed";
    }
}

static bool check_connector(struct app *app, const struct route_settings *route)
{
    struct connector *conn = NULL;
    struct mb_error err;
    enum mb_status st = connector_open(route->connector_section, &app->env, &conn, &err);
    if (st == MB_OK && conn->ops->probe != NULL)
        st = conn->ops->probe(conn, &err);
    connector_close(&conn);
    if (st == MB_OK)
        printf("route %s: connector %s: OK\n", route->name, route->connector);
    else
        printf("route %s: connector %s: %s: %s\n", route->name, route->connector, class_word(st), err.text);
    return st == MB_OK;
}

static bool check_mailbox(struct app *app, const struct route_settings *route)
{
    if (route->mailbox.url == NULL) {
        printf("route %s: no mailbox (fed by import and deliver)\n", route->name);
        return true;
    }
    struct route_mailbox mb;
    struct mb_error err;
    enum mb_status st = route_mailbox_open(route, app->store, NULL, &mb, &err);
    if (st == MB_OK)
        printf("route %s: mailbox %s as %s: OK\n", route->name, route->mailbox.url, route->mailbox.user);
    else
        printf("route %s: mailbox %s as %s: %s: %s\n", route->name, route->mailbox.url, route->mailbox.user,
               class_word(st), err.text);
    route_mailbox_close(&mb);
    return st == MB_OK;
}

int cmd_check(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"route", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *only = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "r:h", options, NULL)) != -1) {
        if (opt == 'r') {
            only = optarg;
        } else {
            check_usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? MB_EXIT_OK : MB_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        check_usage(stderr);
        return MB_EXIT_USAGE;
    }
    const struct route_settings *wanted = NULL;
    int rc = app_open_route(app, only, &wanted);
    if (rc != MB_EXIT_OK)
        return rc;
    bool ok = true;
    for (size_t i = 0; i < app->cfg->route_count; i++) {
        const struct route_settings *route = &app->cfg->routes[i];
        if (wanted != NULL && wanted != route)
            continue;
        ok = check_mailbox(app, route) && ok;
        ok = check_connector(app, route) && ok;
    }
    return ok ? MB_EXIT_OK : MB_EXIT_PARTIAL;
}
