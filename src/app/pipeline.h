/* pipeline - what happens to one message on one route.
 *
 *   raw bytes -> parse -> store (durable, deduplicated by key) -> thread ->
 *   intent recorded -> vendor post -> outcome recorded -> one log line
 *
 * The ordering is the product's promise: a message is committed to the
 * store before anything else happens to it, so once pipeline_ingest returns
 * MB_OK its source may forget it (flag, move, delete, exit 0 to the MTA).
 * A message that cannot be parsed is kept in quarantine, never dropped.
 *
 * Ownership: pipeline_open returns a pipeline freed with pipeline_close(&p);
 * it borrows the store, the route settings and the log. */
#ifndef MB_APP_PIPELINE_H
#define MB_APP_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "app/settings.h"
#include "connectors/connector.h"
#include "lib/log.h"
#include "store/store.h"

/* What became of each message, for summaries. */
struct pipeline_stats {
    unsigned long long created;     /* new tickets */
    unsigned long long appended;    /* follow-ups on existing tickets */
    unsigned long long duplicates;  /* already known, nothing posted */
    unsigned long long retrying;    /* temporary failure, queued for retry */
    unsigned long long quarantined; /* permanent failure or unparsable */
    unsigned long long reconciled;  /* lost answers found at the vendor */
};

struct pipeline;

/* pipeline_open - a pipeline for ROUTE; the connector is opened here, so a
 * connector configuration error surfaces as MB_CONFIG. */
enum mb_status pipeline_open(const struct app_config *cfg, const struct route_settings *route,
                             struct store *store, const struct connector_env *env,
                             struct pipeline **p_r, struct mb_error *err);
void pipeline_close(struct pipeline **p);

/* pipeline_ingest - take one raw message found at WHERE. MB_OK once it is
 * safe (posted, deduplicated, queued for retry or quarantined); MB_TEMP when
 * it could not be stored (the source must keep it); MB_DOWN when the vendor
 * refused our credentials (the message is queued; the caller should stop
 * this route). With ACK_WANTED the store owes WHERE an acknowledgement once
 * the message is done or quarantined (a mailbox's processed-mail action);
 * a message seen before at another place owes it to the new place. */
enum mb_status pipeline_ingest(struct pipeline *p, const unsigned char *raw, size_t len,
                               const char *where, bool ack_wanted, struct mb_error *err);

/* One message for pipeline_ingest_batch; everything borrowed. */
struct pipeline_input {
    const unsigned char *raw;
    size_t len;
    const char *where;
    bool ack_wanted;
};

/* pipeline_ingest_batch - pipeline_ingest for N messages with a few commits
 * instead of several per message: all are admitted and their intents
 * recorded in one commit (after which every one is safe: MB_OK means the
 * source may record its progress for all N), then posted with their
 * outcomes committed together. MB_TEMP when the first commit failed
 * (nothing is safe: the source keeps them all); MB_DOWN as for
 * pipeline_ingest. When *STOP is set the posts not yet made are queued
 * instead (still MB_OK: every message is safe). */
enum mb_status pipeline_ingest_batch(struct pipeline *p, const struct pipeline_input *in, size_t n,
                                     const volatile sig_atomic_t *stop, struct mb_error *err);

/* pipeline_record_refused - a message the source could not hand over whole
 * (over the size limit): logged as refused with REASON, nothing stored. */
void pipeline_record_refused(struct pipeline *p, const char *source_id, const char *reason);

/* pipeline_reconcile - settle messages left in POSTING by a crash: ask the
 * vendor (find_by_key) whether each arrived; found -> DONE, not found ->
 * queued again. Without the capability they are queued again. */
enum mb_status pipeline_reconcile(struct pipeline *p, struct mb_error *err);

/* pipeline_drain - post every message due at NOW_MS (queued or retry),
 * at most LIMIT (0 = all); *POSTED_R counts the attempts made. Stops early
 * on MB_DOWN, or when *STOP becomes non-zero. */
enum mb_status pipeline_drain(struct pipeline *p, long long now_ms, size_t limit,
                              const volatile sig_atomic_t *stop, size_t *posted_r, struct mb_error *err);

const struct pipeline_stats *pipeline_stats(const struct pipeline *p);

#endif
