/* error - classified errors, decided where the failure is understood.
 *
 * Every fallible function returns an enum mb_status and, when it fails,
 * fills a caller-provided struct mb_error with the same status and a
 * one-line human explanation. The caller owns the struct (usually on the
 * stack); nothing in it needs freeing. */
#ifndef MB_LIB_ERROR_H
#define MB_LIB_ERROR_H

enum mb_status {
    MB_OK = 0,
    MB_TEMP,   /* retry this message later, with backoff */
    MB_PERM,   /* never retry: quarantine with the reason */
    MB_DOWN,   /* stop this connector or mailbox: credentials, TLS, ... */
    MB_CONFIG, /* the configuration is wrong: fatal at start-up */
};

#define MB_ERROR_TEXT_MAX 512

struct mb_error {
    enum mb_status status;
    char text[MB_ERROR_TEXT_MAX];
};

/* mb_status_name - "ok", "temp", "perm", "down", "config" */
const char *mb_status_name(enum mb_status status);

/* mb_error_set - fill ERR (may be NULL) and return STATUS, so callers can
 * write `return mb_error_set(err, MB_PERM, "...")`. */
enum mb_status mb_error_set(struct mb_error *err, enum mb_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mb_error_clear - status MB_OK, empty text */
void mb_error_clear(struct mb_error *err);

#endif
