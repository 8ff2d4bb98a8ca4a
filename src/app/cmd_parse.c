/* cmd_parse - `mailbridge parse`: each message as one line of normalized
 * JSON, or with --connector the exact request a connector would send. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "connectors/mail_json.h"
#include "core/thread.h"
#include "lib/xalloc.h"
#include "mime/mime.h"
#include "transport/source.h"

struct parse_run {
    struct conf *example;               /* owned: the stand-in config of a run without one */
    struct app *app;
    struct mime_limits limits;
    struct source_settings source;
    struct connector *conn;             /* owned: set with --connector */
    const struct route_settings *route; /* borrowed: set with --route */
    unsigned long long parsed, failed;
};

static void parse_usage(FILE *out)
{
    fprintf(out,
            "usage: mailbridge parse [options] PATH...\n\n"
            "Print each message as one JSON object per line (schema in README.md).\n"
            "PATH: an .eml file, a directory of message files, a Maildir, or an mbox.\n"
            "A message that cannot be parsed prints {\"source\":..,\"error\":..,\"status\":\"perm\"}.\n\n"
            "options:\n"
            "  --connector NAME  print the request [connector NAME] of the config would send\n"
            "                    for each message, instead of the JSON (nothing is sent);\n"
            "                    without a config file NAME is a type (itx), with example values\n"
            "  --route NAME      with --connector: thread replies with that route's state\n"
            "  -h, --help        this text\n\n"
            "exit: 0 all parsed, 1 some failed, 64 usage, 78 configuration error\n");
}

/* route_lookup - the route's thread map, read through the store */
static bool route_lookup(void *ctx, const char *message_id, struct thread_ref *ref_r)
{
    struct parse_run *run = ctx;
    return store_thread_lookup(run->app->store, run->route->name, message_id, ref_r);
}

/* no_lookup - without --route there is no thread map: every mail is new */
static bool no_lookup(void *ctx, const char *message_id, struct thread_ref *ref_r)
{
    (void)ctx, (void)message_id, (void)ref_r;
    return false;
}

/* dry_run - print the request for MAIL; the connector writes it to stdout */
static enum mb_status dry_run(struct parse_run *run, const struct mb_mail *mail, struct mb_error *err)
{
    struct thread_decision dec;
    if (run->route != NULL)
        thread_resolve(mail, run->route->subject_token, route_lookup, run, &dec);
    else
        thread_resolve(mail, NULL, no_lookup, NULL, &dec);
    struct ticket_request req = {.mail = mail, .thread = &dec, .key = mail->key};
    struct ticket_result res;
    ticket_result_init(&res);
    printf("# %s: %s\n", mail->key, dec.kind == THREAD_NEW ? "new ticket" : "follow-up");
    enum mb_status st = connector_post(run->conn, &req, &res, err);
    printf("\n");
    ticket_result_clear(&res);
    thread_decision_clear(&dec);
    return st;
}

static void parse_one(struct parse_run *run, const struct source_msg *msg, const char *where)
{
    struct mb_mail *mail = NULL;
    struct mb_error err;
    enum mb_status st = mime_parse(msg->data, msg->len, &run->limits, &mail, &err);
    if (st == MB_OK && run->conn != NULL)
        st = dry_run(run, mail, &err);
    if (st != MB_OK) {
        run->failed++;
        char *line = mail_json_error(where, mb_status_name(st), err.text);
        puts(line);
        free(line);
    } else if (run->conn == NULL) {
        run->parsed++;
        char *line = mail_json_encode(mail, where);
        puts(line);
        free(line);
    } else {
        run->parsed++;
    }
    mail_free(&mail);
}

static void parse_path(struct parse_run *run, const char *path)
{
    struct source *src = NULL;
    struct mb_error err;
    if (source_open_path(path, &run->source, &src, &err) != MB_OK) {
        fprintf(stderr, "mailbridge parse: %s\n", err.text);
        run->failed++;
        return;
    }
    for (;;) {
        struct source_msg msg = {0};
        bool got = false;
        enum mb_status st = source_next(src, &msg, &got, &err);
        if (st == MB_PERM && msg.id != NULL) { /* this message only: say so, go on */
            char *where = source_where(src, &msg);
            char *line = mail_json_error(where, mb_status_name(st), err.text);
            puts(line);
            free(line);
            free(where);
            run->failed++;
            continue;
        }
        if (st != MB_OK) {
            fprintf(stderr, "mailbridge parse: %s: %s\n", path, err.text);
            run->failed++;
            break;
        }
        if (!got || *run->app->stop)
            break;
        char *where = source_where(src, &msg);
        parse_one(run, &msg, where);
        free(where);
    }
    source_close(&src);
}

/* example_section - without a configuration file, --connector names a
 * connector type: its required keys get the table's example values, so the
 * request shows its exact shape (to a placeholder URL, with placeholder ids) */
static struct conf_section *example_section(struct parse_run *run, const char *type, struct mb_error *err)
{
    const struct connector_ops *ops = connector_find_ops(type);
    if (ops == NULL) {
        mb_error_set(err, MB_CONFIG, "%s does not exist and '%s' is not a connector type", run->app->config_path,
                     type);
        return NULL;
    }
    char *body = conf_example_text(ops->conf_keys);
    char *text = xasprintf("[connector %s]\ntype = %s\n%s", type, type, body);
    struct conf_section *sec = NULL;
    if (conf_load_string("(example values)", text, &run->example, err) == MB_OK)
        sec = conf_find(run->example, "connector", type);
    printf("# no configuration (%s): [connector %s] with example values:\n", run->app->config_path, type);
    for (const char *line = body; *line != '\0'; line += strcspn(line, "\n") + 1)
        printf("#   %.*s\n", (int)strcspn(line, "\n"), line);
    free(body);
    free(text);
    return sec;
}

/* open_connector - --connector NAME (and --route) from the configuration;
 * with no configuration file at all, NAME may be a connector type */
static bool open_connector(struct parse_run *run, const char *name, const char *route)
{
    struct app *app = run->app;
    struct mb_error err;
    struct conf_section *sec = NULL;
    if (route == NULL && access(app->config_path, F_OK) != 0) {
        if ((sec = example_section(run, name, &err)) == NULL) {
            log_error(&app->log, "%s", err.text);
            return false;
        }
    } else if (!app_load_config(app)) {
        return false;
    } else {
        sec = conf_find(app->cfg->conf, "connector", name);
    }
    if (sec == NULL) {
        log_error(&app->log, "%s: no [connector %s] section", app->config_path, name);
        return false;
    }
    if (route != NULL && (app_config_route(app->cfg, route, &run->route, &err) != MB_OK || !app_open_store(app))) {
        if (run->route == NULL)
            log_error(&app->log, "%s", err.text);
        return false;
    }
    app->env.dry_run = stdout;
    if (connector_open(sec, &app->env, &run->conn, &err) != MB_OK) {
        log_error(&app->log, "%s", err.text);
        return false;
    }
    return true;
}

int cmd_parse(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"connector", required_argument, NULL, 'C'},
        {"route", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *connector = NULL, *route = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'C':
            connector = optarg;
            break;
        case 'r':
            route = optarg;
            break;
        case 'h':
            parse_usage(stdout);
            return MB_EXIT_OK;
        default:
            parse_usage(stderr);
            return MB_EXIT_USAGE;
        }
    }
    if (optind >= argc || (route != NULL && connector == NULL)) {
        parse_usage(stderr);
        return MB_EXIT_USAGE;
    }
    struct parse_run run = {.app = app};
    mime_limits_default(&run.limits);
    source_settings_default(&run.source);
    if (connector != NULL && !open_connector(&run, connector, route)) {
        conf_free(&run.example);
        return MB_EXIT_CONFIG;
    }
    if (app->cfg != NULL) {
        run.limits = app->cfg->limits;
        run.source = app->cfg->source;
    }
    for (int i = optind; i < argc && !*app->stop; i++)
        parse_path(&run, argv[i]);
    connector_close(&run.conn);
    conf_free(&run.example);
    fflush(stdout);
    return run.failed ? MB_EXIT_PARTIAL : MB_EXIT_OK;
}
