/* settings - global and route configuration tables (see settings.h). */
#include "app/settings.h"

#include <stdlib.h>
#include <string.h>

#include "connectors/connector.h"
#include "core/thread.h"
#include "lib/buf.h"
#include "lib/xalloc.h"

#define DEFAULT_MAX_MESSAGE "50M"

static const struct conf_key global_keys[] = {
    {"state_dir", CONF_STRING, "/var/lib/mailbridge", 0, 0, false,
     "Directory of the state database (mailbridge.db): message states, retry queue, thread map.", NULL},
    {"log_level", CONF_STRING, "info", 0, 0, false, "One of error, warning, info, debug.", NULL},
    {"max_message_size", CONF_SIZE, DEFAULT_MAX_MESSAGE, 1024, 1LL << 31, false,
     "Largest message accepted; larger ones are refused with a clear error.", NULL},
    {"max_mime_depth", CONF_INT, "20", 2, 200, false, "Deepest multipart/message nesting parsed.", NULL},
    {"max_mime_parts", CONF_INT, "1000", 1, 100000, false, "Most MIME parts in one message.", NULL},
    {"max_header_length", CONF_SIZE, "64k", 1024, 16LL << 20, false,
     "Longest single (unfolded) header field.", NULL},
    {"retry_base", CONF_DURATION, "30s", 10, 86400000, false,
     "Delay before the first retry of a temporary failure; doubles with each attempt.", NULL},
    {"retry_max", CONF_DURATION, "1h", 10, 7 * 86400000LL, false, "Longest delay between retries.", NULL},
    {"max_attempts", CONF_INT, "30", 1, 1000, false,
     "Temporary failures after which a message is quarantined instead of retried.", NULL},
    {"poll_interval", CONF_DURATION, "5s", 10, 3600000, false,
     "How often `mailbridge run` looks for messages due for a retry.", NULL},
    {"reconcile_after", CONF_DURATION, "2m", 0, 86400000, false,
     "A post left without an answer (timeout, dropped connection, crash) is looked up at the "
     "vendor only this long after it was sent, so a slow vendor still acting on it is not sent "
     "it twice; then it is posted again if the vendor does not have it.", NULL},
    CONF_KEY_END,
};

static const struct conf_key route_keys[] = {
    {"connector", CONF_STRING, NULL, 0, 0, true,
     "Name of the [connector NAME] section this route posts to.", "itx"},
    {"subject_token", CONF_STRING, "[#{ticket}]", 0, 0, false,
     "Ticket token looked for in subjects when no Message-Id matches; {ticket} is the ticket id; "
     "empty turns it off.", NULL},
    {"source", CONF_STRING, NULL, 0, 0, false,
     "Mailbox `mailbridge run` watches: imaps://host[:port]/FOLDER, imap://host[:port]/FOLDER "
     "(STARTTLS), pop3s://host[:port] or pop3://host[:port] (STLS); unset: the route is fed by "
     "import and deliver only.", "imaps://imap.example.com/INBOX"},
    {"user", CONF_STRING, NULL, 0, 0, false, "Mailbox login name.", "support@example.com"},
    {"password", CONF_SECRET, NULL, 0, 0, false,
     "Mailbox password, or the OAuth2 access token with auth = xoauth2 (a file: is read again at "
     "each login, so a token refresher can rewrite it).", "file:/etc/mailbridge/support.password"},
    {"oauth_token_command", CONF_STRING, NULL, 0, 0, false,
     "With auth = xoauth2: a command whose first output line is a fresh access token, run at each "
     "login (instead of password).", "/usr/local/bin/oauth-token support@example.com"},
    {"auth", CONF_STRING, "plain", 0, 0, false, "login, plain or xoauth2 (Gmail, Microsoft 365).", NULL},
    {"starttls", CONF_BOOL, "yes", 0, 0, false,
     "Require STARTTLS/STLS on imap:// and pop3://; turn off only on a trusted test network.", NULL},
    {"tls_verify", CONF_BOOL, "yes", 0, 0, false,
     "Verify the mail server's certificate and host name; turn off only for a test server.", NULL},
    {"ca_file", CONF_STRING, NULL, 0, 0, false, "PEM file of CA certificates to trust instead of the system store.", "/etc/mailbridge/ca.pem"},
    {"processed_action", CONF_STRING, "seen", 0, 0, false,
     "What is done to a message once the vendor has it: keep, seen, keyword:NAME, move:FOLDER or "
     "delete (POP3: keep or delete). Never before.", NULL},
    {"quarantine_folder", CONF_STRING, "Quarantine", 0, 0, false,
     "IMAP folder a message that failed for good is moved to (with the reason in the log and "
     "`mailbridge status`); empty leaves it in place.", NULL},
    {"batch_size", CONF_INT, "100", 1, 5000, false, "Messages fetched per round trip.", NULL},
    {"idle", CONF_BOOL, "yes", 0, 0, false,
     "Use IMAP IDLE (push) when the server offers it; otherwise poll every poll_interval.", NULL},
    {"mailbox_timeout", CONF_DURATION, "60s", 1000, 3600000, false, "Network timeout for the mailbox.", NULL},
    CONF_KEY_END,
};

static enum mb_status bind_connector(struct conf_section *sec, struct mb_error *err)
{
    const char *type = conf_raw(sec, "type");
    if (type == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: [connector %s] needs key 'type'", conf_section_where(sec),
                            conf_section_name(sec));
    const struct connector_ops *ops = connector_find_ops(type);
    if (ops == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: key 'type': unknown connector type '%s'",
                            conf_where(sec, "type"), type);
    return conf_bind(sec, ops->conf_keys, err);
}

/* load_mailbox - the route's mailbox settings, when it has a source */
static enum mb_status load_mailbox(const struct app_config *cfg, const struct conf_section *sec,
                                   struct route_settings *route, struct mb_error *err)
{
    static const char *const auths[] = {"login", "plain", "xoauth2"};
    struct mailbox_settings *m = &route->mailbox;
    mailbox_settings_default(m);
    route->section = sec;
    m->url = conf_str(sec, "source");
    if (m->url == NULL)
        return MB_OK;
    m->user = conf_str(sec, "user");
    if (m->user == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: [route %s] has a source but no 'user'", conf_section_where(sec),
                            conf_section_name(sec));
    const char *auth = conf_str(sec, "auth");
    size_t a = 0;
    while (a < 3 && strcmp(auth, auths[a]) != 0)
        a++;
    if (a == 3)
        return mb_error_set(err, MB_CONFIG, "%s: key 'auth': expected login, plain or xoauth2, got '%s'",
                            conf_where(sec, "auth"), auth);
    m->auth = (enum mailbox_auth)a;
    if (conf_str(sec, "password") == NULL && conf_str(sec, "oauth_token_command") == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: [route %s] has a source but no 'password'%s",
                            conf_section_where(sec), conf_section_name(sec),
                            m->auth == MAILBOX_AUTH_XOAUTH2 ? " or 'oauth_token_command'" : "");
    if (!mailbox_parse_action(conf_str(sec, "processed_action"), m))
        return mb_error_set(err, MB_CONFIG,
                            "%s: key 'processed_action': expected keep, seen, keyword:NAME, move:FOLDER or delete",
                            conf_where(sec, "processed_action"));
    m->starttls = conf_bool(sec, "starttls");
    m->tls_verify = conf_bool(sec, "tls_verify");
    m->ca_file = conf_str(sec, "ca_file");
    m->quarantine_folder = conf_str(sec, "quarantine_folder");
    if (m->quarantine_folder != NULL && *m->quarantine_folder == '\0')
        m->quarantine_folder = NULL;
    m->batch_size = (unsigned)conf_int(sec, "batch_size");
    m->idle = conf_bool(sec, "idle");
    m->timeout_ms = conf_int(sec, "mailbox_timeout");
    m->max_message_size = cfg->limits.max_message_size;
    return MB_OK;
}

static enum mb_status load_route(const struct app_config *cfg, struct conf_section *sec,
                                 struct route_settings *route, struct mb_error *err)
{
    enum mb_status st = conf_bind(sec, route_keys, err);
    if (st != MB_OK)
        return st;
    route->name = conf_section_name(sec);
    route->connector = conf_str(sec, "connector");
    route->subject_token = conf_str(sec, "subject_token");
    if (route->subject_token != NULL && *route->subject_token == '\0')
        route->subject_token = NULL;
    if (route->subject_token != NULL && !thread_token_valid(route->subject_token))
        return mb_error_set(err, MB_CONFIG, "%s: key 'subject_token': must contain {ticket} exactly once",
                            conf_where(sec, "subject_token"));
    st = load_mailbox(cfg, sec, route, err);
    if (st != MB_OK)
        return st;
    route->connector_section = conf_find(cfg->conf, "connector", route->connector);
    if (route->connector_section == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: key 'connector': no [connector %s] section",
                            conf_where(sec, "connector"), route->connector);
    return MB_OK;
}

static void load_global(struct app_config *cfg, const struct conf_section *g)
{
    cfg->state_dir = conf_str(g, "state_dir");
    cfg->log_level = conf_str(g, "log_level");
    mime_limits_default(&cfg->limits);
    cfg->limits.max_message_size = (size_t)conf_int(g, "max_message_size");
    cfg->limits.max_depth = (unsigned)conf_int(g, "max_mime_depth");
    cfg->limits.max_parts = (unsigned)conf_int(g, "max_mime_parts");
    cfg->limits.max_header_length = (size_t)conf_int(g, "max_header_length");
    source_settings_default(&cfg->source);
    cfg->source.max_message_size = cfg->limits.max_message_size;
    cfg->backoff.base_ms = conf_int(g, "retry_base");
    cfg->backoff.max_ms = conf_int(g, "retry_max");
    cfg->max_attempts = (unsigned)conf_int(g, "max_attempts");
    cfg->poll_interval_ms = conf_int(g, "poll_interval");
    cfg->reconcile_after_ms = conf_int(g, "reconcile_after");
}

/* check_sections - every section is of a kind we know */
static enum mb_status check_sections(struct conf *conf, struct mb_error *err)
{
    static const char *const kinds[] = {"connector", "route", NULL};
    struct conf_section *sec = NULL;
    for (size_t k = 0; kinds[k] != NULL; k++)
        while ((sec = conf_next(conf, kinds[k], sec)) != NULL)
            if (strcmp(kinds[k], "connector") == 0) {
                enum mb_status st = bind_connector(sec, err);
                if (st != MB_OK)
                    return st;
            }
    return MB_OK;
}

enum mb_status app_config_load(const char *path, struct app_config **cfg_r, struct mb_error *err)
{
    struct app_config *cfg = xcalloc(1, sizeof(*cfg));
    enum mb_status st = conf_load(path, &cfg->conf, err);
    if (st == MB_OK)
        st = conf_bind(conf_global(cfg->conf), global_keys, err);
    if (st == MB_OK) {
        load_global(cfg, conf_global(cfg->conf));
        if (mb_log_level_parse(cfg->log_level) < 0)
            st = mb_error_set(err, MB_CONFIG, "%s: key 'log_level': expected error, warning, info or debug",
                              conf_where(conf_global(cfg->conf), "log_level"));
    }
    if (st == MB_OK)
        st = check_sections(cfg->conf, err);
    for (struct conf_section *sec = NULL; st == MB_OK && (sec = conf_next(cfg->conf, "route", sec));) {
        cfg->routes = xreallocarray(cfg->routes, cfg->route_count + 1, sizeof(*cfg->routes));
        st = load_route(cfg, sec, &cfg->routes[cfg->route_count++], err);
    }
    if (st != MB_OK) {
        app_config_free(&cfg);
        return st;
    }
    *cfg_r = cfg;
    return MB_OK;
}

void app_config_free(struct app_config **cfgp)
{
    struct app_config *cfg = *cfgp;
    if (cfg == NULL)
        return;
    conf_free(&cfg->conf);
    free(cfg->routes);
    free(cfg);
    *cfgp = NULL;
}

enum mb_status app_config_route(const struct app_config *cfg, const char *name,
                                const struct route_settings **route_r, struct mb_error *err)
{
    struct buf known;
    buf_init(&known, 4096);
    for (size_t i = 0; i < cfg->route_count; i++) {
        if (strcmp(cfg->routes[i].name, name) == 0) {
            buf_free(&known);
            *route_r = &cfg->routes[i];
            return MB_OK;
        }
        buf_printf(&known, "%s%s", i ? ", " : "", cfg->routes[i].name);
    }
    mb_error_set(err, MB_CONFIG, "no [route %s] in the configuration (routes: %s)", name,
                 known.len ? known.data : "none");
    buf_free(&known);
    return MB_CONFIG;
}

/* run_token_command - the first line COMMAND prints (an OAuth2 token helper) */
static enum mb_status run_token_command(const struct conf_section *sec, const char *command, char **token_r,
                                        struct mb_error *err)
{
    FILE *p = popen(command, "r");
    if (p == NULL)
        return mb_error_set(err, MB_TEMP, "%s: oauth_token_command could not be started",
                            conf_where(sec, "oauth_token_command"));
    char line[8192];
    bool got = fgets(line, sizeof(line), p) != NULL;
    int status = pclose(p);
    if (!got || status != 0 || line[0] == '\n')
        return mb_error_set(err, MB_TEMP, "%s: oauth_token_command printed no token (exit status %d)",
                            conf_where(sec, "oauth_token_command"), status);
    line[strcspn(line, "\r\n")] = '\0';
    *token_r = xstrdup(line);
    return MB_OK;
}

enum mb_status app_config_mailbox_secret(const struct route_settings *route, char **secret_r,
                                         struct mb_error *err)
{
    const char *command = conf_str(route->section, "oauth_token_command");
    if (command != NULL)
        return run_token_command(route->section, command, secret_r, err);
    return conf_secret(route->section, "password", secret_r, err);
}

char *app_config_store_path(const struct app_config *cfg)
{
    return xasprintf("%s/mailbridge.db", cfg->state_dir);
}

void app_config_write_sample(FILE *out)
{
    fprintf(out, "# mailbridge.conf - every key with its default (generated by `mailbridge config "
                 "--sample`).\n"
                 "# Lines are `key = value`; `#` starts a comment line. Keys before the first\n"
                 "# [section] are global. Durations take ms/s/m/h, sizes k/M/G.\n\n");
    conf_write_sample(out, NULL, "Global settings.", global_keys);
    for (const struct connector_ops *const *ops = connector_registry(); *ops != NULL; ops++) {
        char header[64];
        snprintf(header, sizeof(header), "connector %s", (*ops)->name);
        char intro[160];
        snprintf(intro, sizeof(intro), "A connector of type %s; routes refer to it by its section name (here %s).",
                 (*ops)->name, (*ops)->name);
        conf_write_sample(out, header, intro, (*ops)->conf_keys);
    }
    conf_write_sample(out, "route support",
                      "A route joins a mail source to a connector; `import`, `deliver` and `run` name it.",
                      route_keys);
}
