/* mailbox - a route's mailbox with its secret and store-backed progress
 * (see mailbox.h). */
#include "app/mailbox.h"

#include <stdlib.h>
#include <string.h>

#include "app/logfmt.h"
#include "lib/buf.h"
#include "lib/xalloc.h"

#define SETTLE_BATCH 200

static enum mb_status memory_checkpoint_get(void *ctx, const char *folder, uint32_t *uidvalidity_r,
                                            uint32_t *next_uid_r, struct mb_error *err)
{
    struct route_mailbox *mb = ctx;
    char *name = xasprintf("%s|%s", mb->progress_key, folder);
    enum mb_status st = store_checkpoint_get(mb->store, name, folder, uidvalidity_r, next_uid_r, err);
    free(name);
    return st;
}

static enum mb_status memory_checkpoint_set(void *ctx, const char *folder, uint32_t uidvalidity,
                                            uint32_t next_uid, struct mb_error *err)
{
    struct route_mailbox *mb = ctx;
    char *name = xasprintf("%s|%s", mb->progress_key, folder);
    enum mb_status st = store_checkpoint_set(mb->store, name, folder, uidvalidity, next_uid, err);
    free(name);
    return st;
}

static enum mb_status memory_item_seen(void *ctx, const char *item, bool *seen_r, struct mb_error *err)
{
    struct route_mailbox *mb = ctx;
    return store_item_seen(mb->store, mb->progress_key, item, seen_r, err);
}

static enum mb_status memory_item_add(void *ctx, const char *item, struct mb_error *err)
{
    struct route_mailbox *mb = ctx;
    return store_item_add(mb->store, mb->progress_key, item, err);
}

enum mb_status route_mailbox_open(const struct route_settings *route, struct store *store,
                                  const char *spool_dir, struct route_mailbox *mb, struct mb_error *err)
{
    memset(mb, 0, sizeof(*mb));
    mb->store = store;
    mb->batch_size = route->mailbox.batch_size;
    mb->progress_key = xasprintf("%s|%s|%s", route->name, route->mailbox.url, route->mailbox.user);
    mb->memory = (struct source_memory){
        .ctx = mb,
        .checkpoint_get = memory_checkpoint_get,
        .checkpoint_set = memory_checkpoint_set,
        .item_seen = memory_item_seen,
        .item_add = memory_item_add,
    };
    char *secret = NULL;
    enum mb_status st = app_config_mailbox_secret(route, &secret, err);
    if (st == MB_OK) {
        struct mailbox_settings s = route->mailbox;
        s.secret = secret;
        s.spool_dir = spool_dir;
        st = source_open_mailbox(&s, &mb->memory, &mb->src, err);
    }
    if (secret != NULL) {
        /* our copy served the login (POP3 keeps its own for later logins and
         * wipes it on close): wipe this one before it is freed */
        memset(secret, 0, strlen(secret));
        free(secret);
    }
    if (st != MB_OK)
        route_mailbox_close(mb);
    return st;
}

void route_mailbox_close(struct route_mailbox *mb)
{
    source_close(&mb->src);
    free(mb->progress_key);
    mb->progress_key = NULL;
}

/* Messages are taken from the mailbox in batches of at most this many bytes
 * (and the route's batch_size), so a batch is a few commits, not a few per message. */
#define FETCH_BATCH_BYTES (32u << 20)
/* A message larger than this is not copied into a batch: it is ingested on
 * its own straight from the source (which spools large ones to a file). */
#define FETCH_COPY_MAX (4u << 20)

/* A fetched message, copied: the source's bytes only live until its next call. */
struct fetched {
    struct source_msg msg; /* id and data owned (copies) */
    char *where;           /* owned */
};

static void fetched_free(struct fetched *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)f[i].msg.id);
        free((unsigned char *)f[i].msg.data);
        free(f[i].where);
    }
}

/* refuse - a message too large to take: straight to the quarantine folder */
static enum mb_status refuse(struct route_mailbox *mb, struct pipeline *p, const struct source_msg *msg,
                             struct mb_error *err)
{
    char *where = source_where(mb->src, msg);
    pipeline_record_refused(p, where, err->text);
    /* its result does not matter: MB_PERM (not this mailbox's) leaves nothing to move */
    struct source_settle_item item = {.where = where, .fate = SOURCE_QUARANTINED};
    enum mb_status st = source_settle(mb->src, &item, 1, err);
    free(where);
    return st == MB_OK ? source_handed(mb->src, msg, err) : st;
}

/* fetch_batch - up to batch_size messages (FETCH_BATCH_BYTES) copied into F;
 * a message over FETCH_COPY_MAX ends the batch uncopied in *LARGE_R
 * (id NULL when there is none), valid until the next source call */
static enum mb_status fetch_batch(struct route_mailbox *mb, struct pipeline *p, const volatile sig_atomic_t *stop,
                                  struct fetched *f, size_t max, size_t *n_r, struct source_msg *large_r,
                                  struct mb_error *err)
{
    size_t n = 0, bytes = 0;
    enum mb_status st = MB_OK;
    memset(large_r, 0, sizeof(*large_r));
    while (st == MB_OK && n < max && bytes < FETCH_BATCH_BYTES && !*stop) {
        struct source_msg msg = {0};
        bool got = false;
        st = source_next(mb->src, &msg, &got, err);
        if (st == MB_PERM && msg.id != NULL) {
            st = refuse(mb, p, &msg, err);
            continue;
        }
        if (st != MB_OK || !got)
            break;
        if (msg.len > FETCH_COPY_MAX) {
            *large_r = msg;
            break;
        }
        f[n].msg.id = xstrdup(msg.id);
        f[n].msg.data = xmemdup(msg.data, msg.len);
        f[n].msg.len = msg.len;
        f[n].where = source_where(mb->src, &msg);
        bytes += msg.len;
        n++;
    }
    *n_r = n;
    return st;
}

/* ingest_and_hand - IN (N messages, F their source side) into the pipeline,
 * then tell the source each is safe, in one store batch: what handed
 * records (POP3 UIDLs) is one commit, and a crash before it only means a
 * harmless re-fetch, as the store knows the messages by their keys.
 * MB_DOWN: the vendor refused us, but every message is queued all the same. */
static enum mb_status ingest_and_hand(struct route_mailbox *mb, struct pipeline *p,
                                      const struct pipeline_input *in, const struct fetched *f, size_t n,
                                      const volatile sig_atomic_t *stop, struct mb_error *err)
{
    enum mb_status st = pipeline_ingest_batch(p, in, n, stop, err);
    if (st != MB_OK && st != MB_DOWN)
        return st;
    enum mb_status hst = store_batch_begin(mb->store, err);
    for (size_t i = 0; hst == MB_OK && i < n; i++)
        hst = source_handed(mb->src, &f[i].msg, err);
    struct mb_error cerr;
    enum mb_status cst = store_batch_commit(mb->store, hst == MB_OK ? err : &cerr);
    hst = hst == MB_OK ? cst : hst;
    return hst != MB_OK ? hst : st;
}

enum mb_status route_mailbox_fetch(struct route_mailbox *mb, struct pipeline *p,
                                   const volatile sig_atomic_t *stop, size_t *fetched_r,
                                   struct mb_error *err)
{
    size_t max = mb->batch_size ? mb->batch_size : 100;
    struct fetched *f = xcalloc(max, sizeof(*f));
    struct pipeline_input *in = xcalloc(max, sizeof(*in));
    enum mb_status st = MB_OK;
    *fetched_r = 0;
    for (;;) {
        size_t n = 0;
        struct source_msg large;
        st = fetch_batch(mb, p, stop, f, max, &n, &large, err);
        if (n > 0) {
            for (size_t i = 0; i < n; i++)
                in[i] = (struct pipeline_input){f[i].msg.data, f[i].msg.len, f[i].where, true};
            enum mb_status ist = ingest_and_hand(mb, p, in, f, n, stop, err);
            st = st == MB_OK ? ist : st;
            *fetched_r += n;
        }
        if (st == MB_OK && large.id != NULL) { /* on its own, from the source's spool */
            struct fetched one = {.msg = large, .where = source_where(mb->src, &large)};
            in[0] = (struct pipeline_input){large.data, large.len, one.where, true};
            st = ingest_and_hand(mb, p, in, &one, 1, stop, err);
            free(one.where);
            (*fetched_r)++;
        }
        fetched_free(f, n);
        if (st != MB_OK || (n == 0 && large.id == NULL) || *stop)
            break;
    }
    free(in);
    free(f);
    return st;
}

/* log_settled - one line for a message whose mailbox copy was dealt with */
static void log_settled(const struct mb_log *log, const char *route, const struct store_msg *row,
                        const char *fate, enum mb_status st, const char *error)
{
    enum mb_log_level level = st == MB_OK ? MB_LOG_INFO : MB_LOG_WARNING;
    if (level > log->level)
        return;
    struct buf line;
    buf_init(&line, 4096);
    logfmt_pair(&line, "msg", row->message_id ? row->message_id : row->key);
    logfmt_pair(&line, "route", route);
    logfmt_pair(&line, "source", row->source);
    logfmt_pair(&line, "action", fate);
    logfmt_pair(&line, "status", st == MB_OK ? "ok" : "skipped");
    if (error != NULL)
        logfmt_pair(&line, "error", error);
    mb_log(log, level, "%s", line.data);
    buf_free(&line);
}

/* ack_settled - ROWS (COUNT, settled as ITEMS say) logged and acknowledged
 * in one commit: a crash before it only repeats an idempotent action */
static enum mb_status ack_settled(struct route_mailbox *mb, const char *route,
                                  const struct mb_log *log, const struct store_msg *rows,
                                  const struct source_settle_item *items, size_t count,
                                  struct mb_error *err)
{
    enum mb_status st = store_batch_begin(mb->store, err);
    for (size_t i = 0; st == MB_OK && i < count; i++) {
        /* MB_PERM: not this mailbox's any more (renumbered, gone): nothing to do there */
        log_settled(log, route, &rows[i],
                    items[i].fate == SOURCE_DONE ? "processed" : "quarantine-folder",
                    items[i].result, items[i].result == MB_OK ? NULL : items[i].error.text);
        st = store_ack_done(mb->store, rows[i].id, err);
    }
    struct mb_error cerr;
    enum mb_status cst = store_batch_commit(mb->store, st == MB_OK ? err : &cerr);
    return st == MB_OK ? cst : st;
}

/* settle_batch - one batch of store_ack_due; *COUNT_R rows were due. The
 * source settles them all at once (IMAP: one command per action) before
 * the store's write lock is taken; anything but MB_OK means the mailbox is
 * away and every row stays due for later. */
static enum mb_status settle_batch(struct route_mailbox *mb, const char *route, const struct mb_log *log,
                                   size_t *count_r, struct mb_error *err)
{
    struct store_msg *rows = NULL;
    size_t count = 0;
    enum mb_status st = store_ack_due(mb->store, route, SETTLE_BATCH, &rows, &count, err);
    *count_r = count;
    if (st == MB_OK && count > 0) {
        struct source_settle_item *items = xcalloc(count, sizeof(*items));
        for (size_t i = 0; i < count; i++)
            items[i] = (struct source_settle_item){
                .where = rows[i].source ? rows[i].source : "",
                .fate = rows[i].state == MSG_DONE ? SOURCE_DONE : SOURCE_QUARANTINED,
            };
        st = source_settle(mb->src, items, count, err);
        if (st == MB_OK)
            st = ack_settled(mb, route, log, rows, items, count, err);
        free(items);
    }
    store_msgs_free(&rows, count);
    return st;
}

enum mb_status route_mailbox_settle(struct route_mailbox *mb, const char *route, const struct mb_log *log,
                                    size_t *settled_r, struct mb_error *err)
{
    size_t count = 0;
    enum mb_status st;
    *settled_r = 0;
    do {
        st = settle_batch(mb, route, log, &count, err);
        *settled_r += count;
    } while (st == MB_OK && count == SETTLE_BATCH);
    return st;
}
