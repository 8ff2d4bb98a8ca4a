/* settings - the [global] and [route NAME] sections of mailbridge.conf.
 *
 * Both are tables of struct conf_key (lib/conf.h): the same rows check the
 * file, give defaults, and print the sample config (`mailbridge config
 * --sample`), so conf/mailbridge.conf.example cannot drift from the code.
 *
 * Ownership: app_config_load returns a struct app_config freed with
 * app_config_free(&cfg); route pointers are borrowed from it. */
#ifndef MB_APP_SETTINGS_H
#define MB_APP_SETTINGS_H

#include <stdio.h>

#include "lib/backoff.h"
#include "lib/conf.h"
#include "lib/error.h"
#include "mime/mime.h"
#include "transport/source.h"

struct route_settings {
    const char *name;          /* borrowed from the conf */
    const char *connector;     /* borrowed: name of its [connector NAME] */
    const char *subject_token; /* borrowed: "[#{ticket}]" or NULL (off) */
    struct conf_section *connector_section; /* borrowed */
    const struct conf_section *section;     /* borrowed: the route's own, for its secrets */
    struct mailbox_settings mailbox;        /* mailbox.url NULL: no mailbox; secret and
                                               spool_dir are filled when it is opened */
};

struct app_config {
    struct conf *conf;         /* owned */
    const char *state_dir;     /* borrowed from conf */
    const char *log_level;     /* borrowed */
    struct mime_limits limits;
    struct source_settings source;
    struct backoff backoff;
    unsigned max_attempts;     /* TEMP failures before a message is quarantined */
    long long poll_interval_ms; /* how often `run` looks for due work */
    long long reconcile_after_ms; /* how long an unanswered post is left before the lookup */
    struct route_settings *routes; /* owned array */
    size_t route_count;
};

/* app_config_load - read PATH, check every section against its table, and
 * check that each route names an existing connector. */
enum mb_status app_config_load(const char *path, struct app_config **cfg_r, struct mb_error *err);
void app_config_free(struct app_config **cfg);

/* app_config_route - the route called NAME; MB_CONFIG listing the known
 * routes when there is none. */
enum mb_status app_config_route(const struct app_config *cfg, const char *name,
                                const struct route_settings **route_r, struct mb_error *err);

/* app_config_store_path - "<state_dir>/mailbridge.db", owned by the caller */
char *app_config_store_path(const struct app_config *cfg);

/* app_config_mailbox_secret - the password or OAuth2 token of ROUTE's mailbox,
 * read now (a token file or command is consulted at each login); owned by the
 * caller. Never logged. */
enum mb_status app_config_mailbox_secret(const struct route_settings *route, char **secret_r,
                                         struct mb_error *err);

/* app_config_write_sample - the documented sample configuration */
void app_config_write_sample(FILE *out);

#endif
