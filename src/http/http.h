/* http - a keep-alive HTTP/1.1 client (libcurl inside).
 *
 * One client per vendor connector: it keeps its connection open across
 * messages. TLS certificates and host names are verified unless the config
 * explicitly turns that off. Response bodies are capped. Multipart bodies
 * are encoded here (not by libcurl) so that a dry run prints exactly the
 * bytes a real run would send.
 *
 * A batch of independent requests can be sent several at a time
 * (http_send_many), each on its own kept-alive connection.
 *
 * Ownership: http_client_create returns a client freed with
 * http_client_destroy(&c). Requests only borrow. A struct http_response owns
 * its body and headers; release with http_response_clear(). */
#ifndef MB_HTTP_HTTP_H
#define MB_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/buf.h"
#include "lib/error.h"

struct http_settings {
    long connect_timeout_ms; /* default 10000 */
    long timeout_ms;         /* whole request; default 60000 */
    bool tls_verify;         /* default true */
    const char *ca_file;     /* borrowed; NULL = system store */
    size_t max_response;     /* response body cap; default 16 MiB */
    const char *user_agent;  /* borrowed; NULL = "mailbridge/<version>" */
    FILE *dry_run;           /* borrowed: when set, requests are written here, never sent */
    size_t max_in_flight;    /* requests of one http_send_many at once (each on its own
                                connection); default 4, 0 counts as 1 */
};

void http_settings_default(struct http_settings *s);

struct http_header {
    const char *name;  /* borrowed */
    const char *value; /* borrowed */
    bool secret;       /* printed as <redacted> in dry runs and logs */
};

struct http_part {
    const char *name;         /* borrowed: form field name */
    const char *filename;     /* borrowed: NULL for a plain field */
    const char *content_type; /* borrowed: NULL = none written */
    const void *data;         /* borrowed */
    size_t len;
};

struct http_request {
    const char *method; /* "GET", "POST", ... */
    const char *url;    /* absolute */
    const struct http_header *headers;
    size_t header_count;
    /* Either a plain body ... */
    const char *content_type;
    const void *body;
    size_t body_len;
    /* ... or multipart/form-data parts (then body must be NULL). */
    const struct http_part *parts;
    size_t part_count;
};

struct http_response {
    long status;       /* 0 when there was no HTTP answer (dry run, network error) */
    struct buf body;   /* owned */
    char **headers;    /* owned: "Name: value" lines as received */
    size_t header_count;
    long long retry_after_ms; /* parsed Retry-After (seconds or HTTP date), -1 if absent */
    bool unanswered;   /* the body went out (at least in part) but no answer came:
                          the peer may have acted on it */
};

struct http_client;

/* http_global_init - initialise libcurl once per process, before any other
 * thread exists (main() calls it); http_global_deinit undoes it at exit. */
void http_global_init(void);
void http_global_deinit(void);

enum mb_status http_client_create(const struct http_settings *s, struct http_client **client_r,
                                  struct mb_error *err);
void http_client_destroy(struct http_client **client);

void http_response_init(struct http_response *resp);
void http_response_clear(struct http_response *resp);
/* http_response_header - the value of header NAME (case-insensitive), borrowed, or NULL */
const char *http_response_header(const struct http_response *resp, const char *name);

/* http_client_connections - how many TCP/TLS connections CLIENT has opened
 * so far (1 after any number of requests while keep-alive holds); for
 * diagnostics and tests. */
unsigned long http_client_connections(const struct http_client *client);

/* http_send - perform REQ and fill RESP (initialised with
 * http_response_init; any earlier content is released first). Returns the classified outcome:
 *   MB_OK   2xx (or a dry run: RESP->status stays 0)
 *   MB_DOWN 401/403, TLS/certificate failure
 *   MB_TEMP 408/429/5xx, timeouts, refused or reset connections, DNS
 *   MB_PERM other 4xx and 3xx, response larger than max_response
 * ERR gets one line with the status and the start of the body.
 * Methods: GET, POST, or any other verb sent with its body. A request body
 * is never re-sent by libcurl on its own: when a reused connection dies
 * before the answer, the outcome is MB_TEMP (the vendor may or may not have
 * processed it; the caller reconciles). */
enum mb_status http_send(struct http_client *client, const struct http_request *req,
                         struct http_response *resp, struct mb_error *err);

/* http_send_many - perform the N independent requests REQS with up to the
 * client's max_in_flight of them at once, in no particular order on the
 * wire; the outcome of REQS[i] goes to RESPS[i] (initialised, as for
 * http_send), STATUSES[i] and ERRS[i], classified exactly as http_send
 * does (a body is never re-sent; RESPS[i].unanswered as there). Returns
 * once every request has its outcome. A dry run prints the requests in
 * order and sends none. REQS are borrowed for the call. */
void http_send_many(struct http_client *client, const struct http_request *reqs, size_t n,
                    struct http_response *resps, enum mb_status *statuses, struct mb_error *errs);

/* http_classify_status - the outcome class of an HTTP status code; a code
 * outside 200..599 (no usable answer) is MB_TEMP */
enum mb_status http_classify_status(long status);

/* http_response_excerpt - the start of RESP's body as one printable line of
 * at most MAX bytes (control characters replaced, UTF-8 not cut, values of
 * REQ's secret headers replaced by <redacted>), for errors and quarantine
 * reasons. REQ may be NULL. Owned by the caller. */
char *http_response_excerpt(const struct http_response *resp, const struct http_request *req,
                            size_t max);

/* http_parse_retry_after - a Retry-After value (delta-seconds or an HTTP
 * date, compared with NOW_S) in milliseconds, 0 for a date in the past, -1
 * when VALUE is malformed. */
long long http_parse_retry_after(const char *value, long long now_s);

/* http_multipart_encode - REQ's parts as a multipart/form-data body with
 * BOUNDARY into OUT. Names and filenames are stripped of CR, LF and '"'. */
bool http_multipart_encode(const struct http_part *parts, size_t count, const char *boundary,
                           struct buf *out);

/* http_same_origin - URL has the scheme, host and port of ORIGIN (for
 * "only fetch attachment URLs from the configured vendor origin"). */
bool http_same_origin(const char *origin, const char *url);

#endif
