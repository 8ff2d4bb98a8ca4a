/* main - the mailbridge command: global options, signals, library set-up,
 * and dispatch to one command. The only process-wide state lives here. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "http/http.h"
#include "mime/mime.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct command {
    const char *name;
    int (*run)(struct app *app, int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"parse", cmd_parse, "print messages as normalized JSON, or the request a connector would send"},
    {"import", cmd_import, "post Maildir folders, mbox archives or .eml files through a route"},
    {"deliver", cmd_deliver, "take one message on standard input (for an MTA pipe)"},
    {"run", cmd_run, "the daemon: watch mailboxes (IMAP IDLE, POP3), post, retry with backoff"},
    {"status", cmd_status, "message counts per state and recent failures with reasons"},
    {"retry", cmd_retry, "queue quarantined messages again"},
    {"check", cmd_check, "connect to every mailbox and vendor and report what works"},
    {"config", cmd_config, "check a configuration, or print the documented sample"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mailbridge [-c CONFIG] [-v] COMMAND [ARGS...]\n\n"
                 "mailbridge turns email into helpdesk tickets and follow-ups.\n\ncommands:\n");
    for (const struct command *c = commands; c->name != NULL; c++)
        fprintf(out, "  %-8s %s\n", c->name, c->summary);
    fprintf(out, "\nglobal options:\n"
                 "  -c, --config FILE  configuration (default $MAILBRIDGE_CONFIG or %s)\n"
                 "  -v, --verbose      debug logging\n"
                 "  -h, --help         this text; `mailbridge COMMAND --help` for a command\n"
                 "  --version          print the version\n",
                 MB_DEFAULT_CONFIG);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    struct app app = {
        .log = {.stream = stderr, .level = MB_LOG_INFO},
        .stop = &stop_requested,
        .config_path = getenv("MAILBRIDGE_CONFIG") ? getenv("MAILBRIDGE_CONFIG") : MB_DEFAULT_CONFIG,
    };
    /* Global options come before the command; commands parse their own. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            app.config_path = argv[++i];
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            app.log.level = MB_LOG_DEBUG;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return MB_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("mailbridge %s\n", MB_VERSION);
            return MB_EXIT_OK;
        } else {
            fprintf(stderr, "mailbridge: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return MB_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return MB_EXIT_USAGE;
    }
    const struct command *cmd = commands;
    while (cmd->name != NULL && strcmp(cmd->name, argv[i]) != 0)
        cmd++;
    if (cmd->name == NULL) {
        fprintf(stderr, "mailbridge: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return MB_EXIT_USAGE;
    }

    install_signals();
    mime_global_init();
    http_global_init();
    app.env.log = &app.log;
    app.env.rewrite_html_refs = mime_html_rewrite_refs;
    int rc = cmd->run(&app, argc - i, argv + i);
    app_release(&app);
    http_global_deinit();
    mime_global_deinit();
    return rc;
}
