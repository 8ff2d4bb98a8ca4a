/* cmd_config - `mailbridge config`: check a configuration (every section,
 * every connector created, secrets resolved) or print the sample. */
#include <getopt.h>
#include <string.h>

#include "app/app.h"

static void config_usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] config [--check | --sample]\n\n"
                 "  --check   load CONFIG, create every connector (secrets resolved, nothing\n"
                 "            sent) and report what is wrong with file:line (the default)\n"
                 "  --sample  print every key with its default and help text\n"
                 "  -h, --help  this text\n");
}

static int check_config(struct app *app)
{
    if (!app_load_config(app))
        return MB_EXIT_CONFIG;
    size_t connectors = 0;
    for (struct conf_section *sec = NULL; (sec = conf_next(app->cfg->conf, "connector", sec)) != NULL;) {
        struct connector *conn = NULL;
        struct mb_error err;
        if (connector_open(sec, &app->env, &conn, &err) != MB_OK) {
            log_error(&app->log, "%s", err.text);
            return MB_EXIT_CONFIG;
        }
        connector_close(&conn);
        connectors++;
    }
    printf("%s: OK (%zu route(s), %zu connector(s), state in %s)\n", app->config_path, app->cfg->route_count,
           connectors, app->cfg->state_dir);
    return MB_EXIT_OK;
}

int cmd_config(struct app *app, int argc, char **argv)
{
    static const struct option options[] = {
        {"check", no_argument, NULL, 'c'},
        {"sample", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool sample = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 's')
            sample = true;
        else if (opt == 'c')
            sample = false;
        else {
            config_usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? MB_EXIT_OK : MB_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        config_usage(stderr);
        return MB_EXIT_USAGE;
    }
    if (sample) {
        app_config_write_sample(stdout);
        return MB_EXIT_OK;
    }
    return check_config(app);
}
