/* app - shared command state (see app.h). */
#include "app/app.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool app_load_config(struct app *app)
{
    if (app->cfg != NULL)
        return true;
    struct mb_error err;
    if (app_config_load(app->config_path, &app->cfg, &err) != MB_OK) {
        log_error(&app->log, "configuration: %s", err.text);
        return false;
    }
    /* -v on the command line (debug) wins over the file */
    int level = mb_log_level_parse(app->cfg->log_level);
    if (app->log.level != MB_LOG_DEBUG)
        app->log.level = (enum mb_log_level)level;
    return true;
}

bool app_open_store(struct app *app)
{
    if (app->store != NULL)
        return true;
    if (!app_load_config(app))
        return false;
    if (mkdir(app->cfg->state_dir, 0700) != 0 && errno != EEXIST) {
        log_error(&app->log, "state_dir %s: cannot create: %s", app->cfg->state_dir, strerror(errno));
        return false;
    }
    char *path = app_config_store_path(app->cfg);
    struct mb_error err;
    enum mb_status st = store_open(path, &app->store, &err);
    free(path);
    if (st != MB_OK) {
        log_error(&app->log, "store: %s", err.text);
        return false;
    }
    return true;
}

int app_open_route(struct app *app, const char *only, const struct route_settings **wanted_r)
{
    *wanted_r = NULL;
    if (!app_open_store(app))
        return MB_EXIT_CONFIG;
    struct mb_error err;
    if (only != NULL && app_config_route(app->cfg, only, wanted_r, &err) != MB_OK) {
        log_error(&app->log, "%s", err.text);
        return MB_EXIT_USAGE;
    }
    return MB_EXIT_OK;
}

int app_exit_code(enum mb_status st)
{
    switch (st) {
    case MB_OK:
        return MB_EXIT_OK;
    case MB_TEMP:
        return MB_EXIT_TEMPFAIL;
    case MB_PERM:
        return MB_EXIT_PARTIAL;
    case MB_DOWN:
        return MB_EXIT_UNAVAILABLE;
    case MB_CONFIG:
        return MB_EXIT_CONFIG;
    }
    return MB_EXIT_SOFTWARE;
}

void app_release(struct app *app)
{
    store_close(&app->store);
    app_config_free(&app->cfg);
}
