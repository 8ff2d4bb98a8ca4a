/* app - what every command shares: the log, the config, the store, the
 * services lent to connectors, and the stop flag set by signals.
 *
 * main() owns the one struct app; commands borrow it. Exit codes follow
 * sysexits(3) so an MTA knows what to do with a `deliver` failure. */
#ifndef MB_APP_APP_H
#define MB_APP_APP_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "app/settings.h"
#include "connectors/connector.h"
#include "lib/log.h"
#include "store/store.h"

#define MB_EXIT_OK 0
#define MB_EXIT_PARTIAL 1 /* some messages need attention (quarantined or retrying) */
#define MB_EXIT_USAGE 64  /* EX_USAGE */
#define MB_EXIT_DATAERR 65     /* EX_DATAERR: the MTA bounces */
#define MB_EXIT_UNAVAILABLE 69 /* EX_UNAVAILABLE: the vendor refused us */
#define MB_EXIT_SOFTWARE 70    /* EX_SOFTWARE */
#define MB_EXIT_TEMPFAIL 75    /* EX_TEMPFAIL: the MTA keeps the mail and retries */
#define MB_EXIT_CONFIG 78      /* EX_CONFIG: the MTA defers */

#define MB_DEFAULT_CONFIG "/etc/mailbridge/mailbridge.conf"

struct app {
    struct mb_log log;
    const volatile sig_atomic_t *stop; /* borrowed: set by SIGINT/SIGTERM */
    const char *config_path;           /* borrowed: -c, $MAILBRIDGE_CONFIG or the default */
    struct app_config *cfg;            /* owned: NULL until app_load_config */
    struct store *store;               /* owned: NULL until app_open_store */
    struct connector_env env;
};

/* app_load_config - load app->config_path and apply log_level; prints the
 * error and returns false on failure. */
bool app_load_config(struct app *app);
/* app_open_store - load the config if needed, create state_dir if missing
 * and open the store; prints the error and returns false on failure. */
bool app_open_store(struct app *app);
/* app_open_route - app_open_store, then the route named ONLY (NULL: every
 * route, *WANTED_R NULL); MB_EXIT_OK or the exit code, the error printed */
int app_open_route(struct app *app, const char *only, const struct route_settings **wanted_r);
/* app_exit_code - the sysexits code for a failure status */
int app_exit_code(enum mb_status st);
void app_release(struct app *app);

/* Commands: each parses its own options (all have --help) and returns an
 * exit code. ARGV[0] is the command name. */
int cmd_parse(struct app *app, int argc, char **argv);
int cmd_import(struct app *app, int argc, char **argv);
int cmd_deliver(struct app *app, int argc, char **argv);
int cmd_run(struct app *app, int argc, char **argv);
int cmd_status(struct app *app, int argc, char **argv);
int cmd_retry(struct app *app, int argc, char **argv);
int cmd_config(struct app *app, int argc, char **argv);
int cmd_check(struct app *app, int argc, char **argv);

#endif
