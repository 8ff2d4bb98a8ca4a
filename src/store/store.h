/* store - durable state in SQLite: message keys and states, raw messages
 * waiting for (re)delivery, every post attempt, and the thread map from
 * RFC Message-Ids to vendor ids.
 *
 * Durability: WAL mode with synchronous=FULL; every function that changes
 * state commits before it returns MB_OK, so a caller may acknowledge a
 * message to its source (exit 0 to the MTA, IMAP flag) right after.
 *
 * Keys are unique per route: the same message ingested twice on one route
 * is one row. A route is one mailbox/vendor pairing from the config.
 *
 * Ownership: store_open returns a handle freed with store_close(&store).
 * Every struct store_msg filled here owns its strings; release with
 * store_msg_clear(), arrays with store_msgs_free(). */
#ifndef MB_STORE_STORE_H
#define MB_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/state.h"
#include "core/thread.h"
#include "lib/error.h"

struct store;

struct store_msg {
    long long id;          /* row id */
    char *route;           /* owned */
    char *key;             /* owned: the mail's stable key */
    char *source;          /* owned: where it came from, e.g. "maildir:/srv/cur/17:2,S" */
    char *message_id;      /* owned: RFC Message-Id (no <>), NULL when unknown */
    char *subject;         /* owned: for status listings, NULL when unknown */
    enum msg_state state;
    unsigned attempts;     /* posts tried so far */
    long long next_attempt_ms; /* epoch ms when a RETRY row is due */
    long long updated_ms;  /* epoch ms of the last change */
    char *last_error;      /* owned: why the last attempt failed, NULL if none */
    char *ticket_id;       /* owned: vendor ticket once DONE */
    char *vendor_message_id; /* owned: vendor message id once DONE */
    long owner_pid;        /* the process that last began a post of it (0: none yet) */
    long long attempt_started_ms; /* epoch ms when that post began (0: none yet) */
};

void store_msg_clear(struct store_msg *msg);
void store_msgs_free(struct store_msg **msgs, size_t count);

/* store_open - open or create the database at PATH (its directory must
 * exist), applying the schema. MB_CONFIG when the file cannot be opened,
 * MB_TEMP when it is locked beyond the busy timeout. */
enum mb_status store_open(const char *path, struct store **store_r, struct mb_error *err);
void store_close(struct store **store);

struct store_new_msg {
    const char *route;      /* borrowed */
    const char *key;        /* borrowed */
    const char *source;     /* borrowed, may be NULL */
    const char *message_id; /* borrowed, may be NULL */
    const char *subject;    /* borrowed, may be NULL */
    const void *raw;        /* borrowed: the raw message, kept until DONE; NULL keeps none
                               (a mailbox holds the message meanwhile: store_keep_raw) */
    size_t raw_len;
    bool ack_wanted;        /* the source waits to hear when the message is safe (store_ack_due) */
    bool claim;             /* a new row starts POSTING, claimed as by store_begin_attempt */
};

/* store_enqueue - record a new message in state QUEUED with its raw bytes,
 * committed. When (route, key) exists already nothing is written,
 * *CREATED_R is false and MSG_R describes the existing row; otherwise
 * *CREATED_R is true and MSG_R the new row as it was admitted: QUEUED, no
 * attempts - also when MSG->claim inserted it POSTING with its first attempt
 * begun (one statement instead of store_begin_attempt's three), just as a
 * row read before store_begin_attempt describes it. */
enum mb_status store_enqueue(struct store *store, const struct store_new_msg *msg, bool *created_r,
                             struct store_msg *msg_r, struct mb_error *err);

/* store_begin_attempt - intent before side effect: state POSTING,
 * attempts+1, the attempt's start noted; committed before the vendor is called.
 * This is also the claim: MB_TEMP when the message is already POSTING (another
 * process is posting it, or a crash left it to be reconciled first), MB_PERM
 * when it is unknown, DONE or in QUARANTINE. The row remembers our pid
 * (owner_pid) so a reconciler can tell a crashed post from a live one. */
enum mb_status store_begin_attempt(struct store *store, long long id, struct mb_error *err);

struct store_outcome {
    enum mb_status status;        /* OK -> DONE, TEMP -> RETRY, PERM -> QUARANTINE, DOWN -> QUEUED */
    const char *error;            /* borrowed: reason, NULL on success */
    long http_status;             /* 0 when no HTTP answer */
    long long next_attempt_ms;    /* for TEMP: when it is due */
    const char *ticket_id;        /* borrowed: on OK */
    const char *vendor_message_id;
    const char *conversation_id;
};

/* store_finish_attempt - write the attempt's history row with OUTCOME and
 * move the message to its next state. On OK the thread map learns the message's RFC
 * Message-Id -> vendor ids, and the raw bytes are dropped. DOWN (and CONFIG)
 * do not count against the message: attempts goes back down by one, the
 * attempt stays in the history. MB_PERM unless the message is POSTING. */
enum mb_status store_finish_attempt(struct store *store, long long id,
                                    const struct store_outcome *outcome, struct mb_error *err);

/* store_set_quarantine - straight to QUARANTINE without an attempt (the
 * message could not even be parsed), keeping the raw bytes and REASON.
 * MB_PERM when the message is unknown or DONE. */
enum mb_status store_set_quarantine(struct store *store, long long id, const char *reason,
                                    struct mb_error *err);

/* store_thread_lookup - a thread_lookup_fn body: the vendor ids that
 * MESSAGE_ID was posted as on ROUTE. REF_R fields are owned by the caller.
 * False when unknown, and also when the database cannot be read. */
bool store_thread_lookup(struct store *store, const char *route, const char *message_id,
                         struct thread_ref *ref_r);

/* store_load_raw - a copy of the raw bytes kept for message ID (caller
 * frees *RAW_R); *RAW_R NULL when none are kept (dropped once DONE, or
 * still held by the mailbox it came from). MB_PERM when ID is unknown. */
enum mb_status store_load_raw(struct store *store, long long id, unsigned char **raw_r,
                              size_t *len_r, struct mb_error *err);

/* store_keep_raw - keep RAW (LEN bytes) for message ID from now on, unless
 * bytes are kept already: a message enqueued without them whose mailbox will
 * not hand it over again (committed, or with the batch) */
enum mb_status store_keep_raw(struct store *store, long long id, const void *raw, size_t len,
                              struct mb_error *err);

/* store_due - up to LIMIT messages of ROUTE (NULL = every route) ready for a
 * post: QUEUED, or RETRY with next_attempt_ms <= NOW_MS; oldest first.
 * *MSGS_R is owned by the caller (store_msgs_free). */
enum mb_status store_due(struct store *store, const char *route, long long now_ms, size_t limit,
                         struct store_msg **msgs_r, size_t *count_r, struct mb_error *err);

/* store_list - up to LIMIT messages in STATE (any route when ROUTE is NULL),
 * most recently changed first. */
enum mb_status store_list(struct store *store, const char *route, enum msg_state state,
                          size_t limit, struct store_msg **msgs_r, size_t *count_r,
                          struct mb_error *err);

/* store_get - the row for (ROUTE, KEY); MB_PERM "unknown" when absent */
enum mb_status store_get(struct store *store, const char *route, const char *key,
                         struct store_msg *msg_r, struct mb_error *err);

/* store_counts - messages per state for ROUTE (NULL = all) */
enum mb_status store_counts(struct store *store, const char *route,
                            unsigned long long counts_r[MSG_STATE_COUNT], struct mb_error *err);

/* store_requeue - QUARANTINE (and RETRY) rows of ROUTE (NULL = all) back
 * to QUEUED, due now; *COUNT_R how many. With KEY only that message (on
 * every route when ROUTE is NULL). attempts restarts at 0 and last_error is
 * cleared (the attempt history keeps every reason). Rows whose raw bytes
 * are gone cannot be posted again: they are left alone and not counted. */
enum mb_status store_requeue(struct store *store, const char *route, const char *key,
                             unsigned long long *count_r, struct mb_error *err);

/* Batches. Between store_batch_begin and store_batch_commit every change is
 * atomic on its own (a savepoint) and visible to this handle at once, but
 * durable - and visible to other processes - only at the commit: one fsync
 * for the lot. Use it only where a crash before the commit is harmless
 * because the state before the batch was already safe (for example the
 * outcomes of posts whose intent was committed: they are reconciled). The
 * batch holds the database's write lock until the commit: keep it short.
 * Functions documented as "committed" above mean "committed with the batch"
 * while one is open. */
enum mb_status store_batch_begin(struct store *store, struct mb_error *err);
enum mb_status store_batch_commit(struct store *store, struct mb_error *err);
/* store_batch_abort - roll the open batch back, if any: nothing of it happened */
void store_batch_abort(struct store *store);

/* Acknowledgements to the source. A mailbox message is flagged, moved or
 * deleted only once it is DONE (the vendor has it) or in QUARANTINE (moved
 * to the quarantine folder): the store remembers which rows still owe their
 * source that word, so a crash in between only delays it. */

/* store_ack_due - up to LIMIT rows of ROUTE that are DONE or QUARANTINE and
 * whose source has not been told yet, oldest first */
enum mb_status store_ack_due(struct store *store, const char *route, size_t limit,
                             struct store_msg **msgs_r, size_t *count_r, struct mb_error *err);
/* store_ack_done - the source was told about message ID */
enum mb_status store_ack_done(struct store *store, long long id, struct mb_error *err);
/* store_relocate - message ID was found again at SOURCE (a mailbox renumbered
 * by a UIDVALIDITY change): remember the new place and owe it an ack */
enum mb_status store_relocate(struct store *store, long long id, const char *source,
                              struct mb_error *err);

/* Checkpoints: how far a mailbox folder was read. 0/0 when never read. */
enum mb_status store_checkpoint_get(struct store *store, const char *source, const char *folder,
                                    uint32_t *uidvalidity_r, uint32_t *next_uid_r,
                                    struct mb_error *err);
enum mb_status store_checkpoint_set(struct store *store, const char *source, const char *folder,
                                    uint32_t uidvalidity, uint32_t next_uid, struct mb_error *err);

/* Items a source handed over already (POP3 UIDLs of mail left on the server). */
enum mb_status store_item_seen(struct store *store, const char *source, const char *item,
                               bool *seen_r, struct mb_error *err);
enum mb_status store_item_add(struct store *store, const char *source, const char *item,
                              struct mb_error *err);

#endif
