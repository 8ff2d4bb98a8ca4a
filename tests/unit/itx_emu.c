/* itx_emu - run the ITX emulator from a unit test (see itx_emu.h). */
#include "itx_emu.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "http/http.h"
#include "lib/xalloc.h"
#include "unit.h"

#define EMU_START_TRIES 400 /* x 25 ms: python start-up under a loaded machine */

/* read_port - the port the emulator wrote, or 0 while the file is missing */
static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

bool itx_emu_start(struct itx_emu *emu, const char *const *extra_args, bool tls)
{
    memset(emu, 0, sizeof(*emu));
    snprintf(emu->dir, sizeof(emu->dir), "/tmp/mb-itx-emu-XXXXXX");
    if (mkdtemp(emu->dir) == NULL) {
        perror("mkdtemp");
        return false;
    }
    char port_file[128];
    snprintf(port_file, sizeof(port_file), "%s/port", emu->dir);
    const char *argv[16] = {"python3",     unit_path("tests/emulators/itx_emulator.py"),
                            "--port",      "0",
                            "--port-file", port_file,
                            "--quiet"};
    size_t argc = 7;
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && argc < 15; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;
    char *script = xstrdup(argv[1]); /* unit_path's buffer is static */
    argv[1] = script;

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        free(script);
        return false;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO); /* the "listening on" line */
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    free(script);
    emu->pid = pid;
    int port = 0;
    for (int i = 0; i < EMU_START_TRIES && port == 0; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "itx emulator exited before listening (status %d)\n", status);
            emu->pid = 0;
            return false;
        }
        nanosleep(&(struct timespec){0, 25 * 1000 * 1000}, NULL);
        port = read_port(port_file);
    }
    if (port == 0) {
        fprintf(stderr, "itx emulator did not write %s\n", port_file);
        itx_emu_stop(emu);
        return false;
    }
    snprintf(emu->base_url, sizeof(emu->base_url), "%s://127.0.0.1:%d", tls ? "https" : "http",
             port);
    struct http_settings s;
    http_settings_default(&s);
    s.tls_verify = false; /* control requests only; the tests verify TLS themselves */
    struct mb_error err;
    if (http_client_create(&s, &emu->http, &err) != MB_OK) {
        fprintf(stderr, "http client: %s\n", err.text);
        itx_emu_stop(emu);
        return false;
    }
    return true;
}

void itx_emu_stop(struct itx_emu *emu)
{
    http_client_destroy(&emu->http);
    if (emu->pid > 0) {
        kill(emu->pid, SIGTERM);
        waitpid(emu->pid, NULL, 0);
        emu->pid = 0;
    }
    if (emu->dir[0] != '\0') {
        char port_file[128];
        snprintf(port_file, sizeof(port_file), "%s/port", emu->dir);
        unlink(port_file);
        rmdir(emu->dir);
        emu->dir[0] = '\0';
    }
}

/* control - one request to /_emulator/NAME; the body (owned) on 200, else NULL */
static char *control(struct itx_emu *emu, const char *method, const char *name, const char *json)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/_emulator/%s", emu->base_url, name);
    struct http_request req = {
        .method = method,
        .url = url,
        .content_type = json ? "application/json" : NULL,
        .body = json,
        .body_len = json ? strlen(json) : 0,
    };
    struct http_response resp;
    http_response_init(&resp);
    struct mb_error err;
    char *body = NULL;
    if (http_send(emu->http, &req, &resp, &err) == MB_OK)
        body = buf_steal(&resp.body);
    else
        fprintf(stderr, "emulator control %s %s: %s\n", method, name, err.text);
    http_response_clear(&resp);
    return body;
}

char *itx_emu_get(struct itx_emu *emu, const char *name)
{
    return control(emu, "GET", name, NULL);
}

bool itx_emu_post(struct itx_emu *emu, const char *name, const char *json)
{
    char *body = control(emu, "POST", name, json);
    free(body);
    return body != NULL;
}

bool itx_emu_fault(struct itx_emu *emu, const char *fault_json)
{
    char *json = xasprintf("{\"faults\": [%s]}", fault_json);
    bool ok = itx_emu_post(emu, "faults", json);
    free(json);
    return ok;
}

bool itx_emu_reset(struct itx_emu *emu)
{
    return itx_emu_post(emu, "reset", "{}");
}
