/* mailbox - a route's mailbox (IMAP or POP3) opened with its secret, a spool
 * directory, and a memory of its progress kept in the store.
 *
 * Ownership: route_mailbox_open fills a caller-owned struct route_mailbox
 * that borrows the store and the route (both outlive it); release with
 * route_mailbox_close, which is safe on a closed one. */
#ifndef MB_APP_MAILBOX_H
#define MB_APP_MAILBOX_H

#include <signal.h>

#include "app/pipeline.h"
#include "app/settings.h"
#include "lib/log.h"
#include "store/store.h"
#include "transport/source.h"

struct route_mailbox {
    struct source *src;           /* owned: NULL while closed */
    struct source_memory memory;  /* ctx points at this struct */
    struct store *store;          /* borrowed */
    char *progress_key;           /* owned: "ROUTE|URL|USER", the checkpoint's name */
    unsigned batch_size;          /* messages per ingest batch (the route's batch_size) */
};

/* route_mailbox_open - connect, authenticate and select ROUTE's mailbox
 * (the errors `mailbridge check` reports). SPOOL_DIR is borrowed. */
enum mb_status route_mailbox_open(const struct route_settings *route, struct store *store,
                                  const char *spool_dir, struct route_mailbox *mb, struct mb_error *err);
void route_mailbox_close(struct route_mailbox *mb);

/* route_mailbox_fetch - hand every new message to P (committed to the store
 * before the mailbox records its progress); a message over the size limit is
 * moved to the quarantine folder at once. Stops early when *STOP is set.
 * MB_TEMP/MB_DOWN from the mailbox mean: close it and open it again later. */
enum mb_status route_mailbox_fetch(struct route_mailbox *mb, struct pipeline *p,
                                   const volatile sig_atomic_t *stop, size_t *fetched_r,
                                   struct mb_error *err);

/* route_mailbox_settle - apply the processed-mail action to every message of
 * ROUTE the store says is safe now (done: the configured action; quarantined:
 * the quarantine folder), one log line each. */
enum mb_status route_mailbox_settle(struct route_mailbox *mb, const char *route, const struct mb_log *log,
                                    size_t *settled_r, struct mb_error *err);

#endif
