/* itx_emu - run tests/emulators/itx_emulator.py for a test binary.
 *
 * Starts the emulator on a free loopback port, talks to its /_emulator/
 * control endpoints (through our own HTTP client) and stops it again.
 * Shared by test_http.c and test_itx.c. */
#ifndef MB_TESTS_ITX_EMU_H
#define MB_TESTS_ITX_EMU_H

#include <stdbool.h>
#include <sys/types.h>

struct http_client;

struct itx_emu {
    pid_t pid;                /* 0 when not running */
    char base_url[64];        /* "http://127.0.0.1:PORT" (https with TLS) */
    char dir[64];             /* owned temp directory for the port file */
    struct http_client *http; /* owned: for control requests */
};

/* itx_emu_start - run the emulator with EXTRA_ARGS (NULL-terminated, may be
 * NULL) and wait until it listens; false (with a message on stderr) if it
 * does not come up. TLS = serve https (EXTRA_ARGS then hold --tls-cert/key). */
bool itx_emu_start(struct itx_emu *emu, const char *const *extra_args, bool tls);
void itx_emu_stop(struct itx_emu *emu);

/* itx_emu_get - body of GET /_emulator/NAME (owned), NULL on failure */
char *itx_emu_get(struct itx_emu *emu, const char *name);
/* itx_emu_post - POST /_emulator/NAME with JSON; true on 200 */
bool itx_emu_post(struct itx_emu *emu, const char *name, const char *json);
/* itx_emu_fault - queue one fault (a JSON object) */
bool itx_emu_fault(struct itx_emu *emu, const char *fault_json);
/* itx_emu_reset - forget messages, requests and faults */
bool itx_emu_reset(struct itx_emu *emu);

#endif
