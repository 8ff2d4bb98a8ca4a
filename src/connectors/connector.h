/* connector - one vtable for every vendor's message API.
 *
 * Designed against all five vendor contracts (shared/seeds): ITX posts the
 * message and its files in one multipart request; SuperOffice creates a
 * ticket, then a message, then uploads and links attachments; Mews creates a
 * thread then adds text messages (no files); Comm100 creates tickets and
 * messages with attachments by file key and offers messages:identify;
 * Omnidesk takes inbound mail with references[] and dedups by messageID.
 * The pipeline never names a vendor: it calls create_ticket or append
 * depending on the threading decision, find_by_key to reconcile a post
 * whose answer was lost, and (outbound, later) poll_replies, fetch_file and
 * report_delivery where the capability bits say the vendor has them.
 *
 * A vendor file defines `struct itx { struct connector base; ... }`, fills a
 * const struct connector_ops and is listed in the registry (registry.c).
 *
 * Ownership: connector_open returns a connector freed with
 * connector_close(&c). Requests are borrowed for the call; results are
 * owned by the caller (ticket_result_clear). */
#ifndef MB_CONNECTORS_CONNECTOR_H
#define MB_CONNECTORS_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/ticket.h"
#include "lib/conf.h"
#include "lib/error.h"
#include "lib/log.h"

/* What a vendor's API can do. */
enum connector_cap {
    CONNECTOR_CAP_HTML = 1 << 0,           /* takes an HTML body (Mews: text only) */
    CONNECTOR_CAP_ATTACHMENTS = 1 << 1,    /* takes file attachments */
    CONNECTOR_CAP_INLINE_IMAGES = 1 << 2,  /* inline images referenced from the body */
    CONNECTOR_CAP_FIND_BY_KEY = 1 << 3,    /* can tell whether a key was posted */
    CONNECTOR_CAP_VENDOR_THREADING = 1 << 4, /* threads by RFC Message-Id itself */
};

/* Services the application lends to connectors, so a vendor file needs no
 * MIME or HTML library of its own. */
struct connector_env {
    const struct mb_log *log; /* borrowed */
    FILE *dry_run;            /* borrowed: print requests here instead of sending */
    /* rewrite_html_refs - mime_html_rewrite_refs(): HTML with references
     * mapped by MAP (NULL = keep); the result is owned by the caller. */
    char *(*rewrite_html_refs)(const char *html, const char *(*map)(void *ctx, const char *ref),
                               void *ctx);
};

struct connector;

struct connector_ops {
    const char *name;                 /* the `type` in [connector NAME] */
    unsigned caps;                    /* enum connector_cap bits */
    const struct conf_key *conf_keys; /* the keys of its [connector NAME] section */

    /* create - build from a section already bound to conf_keys */
    enum mb_status (*create)(const struct conf_section *sec, const struct connector_env *env,
                             struct connector **conn_r, struct mb_error *err);
    void (*destroy)(struct connector *conn);

    /* create_ticket - post REQ->mail as the first message of a new ticket */
    enum mb_status (*create_ticket)(struct connector *conn, const struct ticket_request *req,
                                    struct ticket_result *res, struct mb_error *err);
    /* append - post REQ->mail onto REQ->thread->ref.ticket_id */
    enum mb_status (*append)(struct connector *conn, const struct ticket_request *req,
                             struct ticket_result *res, struct mb_error *err);
    /* find_by_key - did an earlier post of REQ reach the vendor? MB_OK with
     * *FOUND_R and RES filled when it did. NULL without
     * CONNECTOR_CAP_FIND_BY_KEY. */
    enum mb_status (*find_by_key)(struct connector *conn, const struct ticket_request *req,
                                  bool *found_r, struct ticket_result *res, struct mb_error *err);
    /* post_many - post the N independent requests REQS (each a create or an
     * append, as REQS[i].thread decides: see connector_post), possibly
     * several at once; the outcome of REQS[i] goes to RESULTS[i]
     * (initialised), STATUSES[i] and ERRS[i], classified as create_ticket
     * and append do. NULL when the vendor has no faster way than one post
     * after the other. */
    void (*post_many)(struct connector *conn, const struct ticket_request *reqs, size_t n,
                      struct ticket_result *results, enum mb_status *statuses,
                      struct mb_error *errs);
    /* probe - one harmless authenticated request (`mailbridge check`):
     * MB_OK, or the classified reason the vendor cannot be used */
    enum mb_status (*probe)(struct connector *conn, struct mb_error *err);
};

/* The generic part every vendor struct starts with. */
struct connector {
    const struct connector_ops *ops; /* borrowed: static table */
    char *name;                      /* owned: the section name */
    const struct connector_env *env; /* borrowed: lives as long as the application */
};

/* connector_find_ops - the registered ops for TYPE, or NULL */
const struct connector_ops *connector_find_ops(const char *type);
/* connector_registry - NULL-terminated list of every connector type */
const struct connector_ops *const *connector_registry(void);
/* connector_common_keys - keys every connector section has (type) */
const struct conf_key *connector_common_keys(void);
/* CONNECTOR_KEY_TYPE - the row connector_common_keys() holds; each vendor's
 * conf_keys table starts with it, so `type` binds and is documented there too */
#define CONNECTOR_KEY_TYPE                                                                       \
    {"type", CONF_STRING, NULL, 0, 0, true,                                                      \
     "Which vendor API this connector talks to (a registered type, such as itx).", NULL}

/* connector_open - read `type` from SEC, bind SEC to that vendor's keys and
 * create the connector. Config errors name the file and line. */
enum mb_status connector_open(struct conf_section *sec, const struct connector_env *env,
                              struct connector **conn_r, struct mb_error *err);
void connector_close(struct connector **conn);

/* connector_post - create_ticket or append, as REQ->thread decides */
enum mb_status connector_post(struct connector *conn, const struct ticket_request *req,
                              struct ticket_result *res, struct mb_error *err);

/* connector_post_many - connector_post for N independent requests (none
 * threads onto another's result), through the vendor's post_many when it
 * has one, else one connector_post after the other. Outcomes in order in
 * RESULTS (initialised), STATUSES and ERRS. */
void connector_post_many(struct connector *conn, const struct ticket_request *reqs, size_t n,
                         struct ticket_result *results, enum mb_status *statuses,
                         struct mb_error *errs);

#endif
