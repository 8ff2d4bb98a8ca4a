/* pipeline - parse, store, thread, post, record (see pipeline.h). */
#include "app/pipeline.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/logfmt.h"
#include "core/state.h"
#include "core/thread.h"
#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/buf.h"
#include "lib/xalloc.h"
#include "mime/mime.h"

#define DRAIN_BATCH 200
#define RECONCILE_BATCH 1000
/* A reply whose parent is still queued waits this long before it looks again. */
#define PARENT_WAIT_MS 2000

struct pipeline {
    const struct app_config *cfg;       /* borrowed */
    const struct route_settings *route; /* borrowed */
    struct store *store;                /* borrowed */
    const struct connector_env *env;    /* borrowed */
    struct connector *conn;             /* owned */
    struct pipeline_stats stats;
};

enum mb_status pipeline_open(const struct app_config *cfg, const struct route_settings *route,
                             struct store *store, const struct connector_env *env,
                             struct pipeline **p_r, struct mb_error *err)
{
    struct connector *conn = NULL;
    enum mb_status st = connector_open(route->connector_section, env, &conn, err);
    if (st != MB_OK)
        return st;
    struct pipeline *p = xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    p->route = route;
    p->store = store;
    p->env = env;
    p->conn = conn;
    *p_r = p;
    return MB_OK;
}

void pipeline_close(struct pipeline **pp)
{
    struct pipeline *p = *pp;
    if (p == NULL)
        return;
    connector_close(&p->conn);
    free(p);
    *pp = NULL;
}

const struct pipeline_stats *pipeline_stats(const struct pipeline *p)
{
    return &p->stats;
}

static bool lookup_thread(void *ctx, const char *message_id, struct thread_ref *ref_r)
{
    struct pipeline *p = ctx;
    return store_thread_lookup(p->store, p->route->name, message_id, ref_r);
}

/* pending_parent - an id this mail replies to that we hold but have not
 * posted yet (queued, posting or retrying), or NULL. Posting the reply now
 * would open a second ticket; it waits for its parent instead. */
static const char *pending_parent(struct pipeline *p, const struct mb_mail *mail)
{
    for (size_t i = 0; i <= mail->reference_count; i++) {
        const char *id = i == 0 ? mail->in_reply_to : mail->references[i - 1];
        if (id == NULL)
            continue;
        struct store_msg row = {0};
        bool pending = false;
        if (store_get(p->store, p->route->name, id, &row, NULL) == MB_OK)
            pending = row.state == MSG_QUEUED || row.state == MSG_POSTING || row.state == MSG_RETRY;
        store_msg_clear(&row);
        if (pending)
            return id;
    }
    return NULL;
}

/* log_outcome - the one line per message and outcome */
static void log_outcome(struct pipeline *p, const struct store_msg *row, const struct mb_mail *mail,
                        const char *action, const char *status, const struct ticket_result *res,
                        const char *error, long long retry_in_ms)
{
    enum mb_log_level level = MB_LOG_ERROR;
    if (error == NULL || strcmp(status, "deferred") == 0)
        level = MB_LOG_INFO;
    else if (strcmp(status, "retry") == 0 || strcmp(status, "requeued") == 0 ||
             strcmp(status, "unanswered") == 0 || strcmp(status, "unsettled") == 0)
        level = MB_LOG_WARNING;
    if (level > p->env->log->level) /* not wanted: spare the formatting */
        return;
    struct buf line;
    buf_init(&line, 8192);
    logfmt_pair(&line, "msg", mail && mail->message_id ? mail->message_id : row->key);
    logfmt_pair(&line, "route", p->route->name);
    logfmt_pair(&line, "source", row->source);
    logfmt_pair(&line, "vendor", p->conn->ops->name);
    logfmt_pair(&line, "action", action);
    if (res != NULL && res->ticket_id != NULL)
        logfmt_pair(&line, "ticket", res->ticket_id);
    if (res != NULL && res->message_id != NULL)
        logfmt_pair(&line, "vendor_msg", res->message_id);
    logfmt_pair(&line, "status", status);
    bool posting = strcmp(action, "create") == 0 || strcmp(action, "append") == 0;
    if (posting && row->attempts > 0)
        buf_printf(&line, " attempt=%u", row->attempts + 1);
    if (res != NULL && res->http_status != 0)
        buf_printf(&line, " http=%ld", res->http_status);
    if (retry_in_ms >= 0)
        buf_printf(&line, " retry_in=%llds", (retry_in_ms + 999) / 1000);
    if (error != NULL)
        logfmt_pair(&line, "error", error);
    mb_log(p->env->log, level, "%s", line.data);
    buf_free(&line);
}

static void count_outcome(struct pipeline *p, enum mb_status st, enum thread_kind kind)
{
    if (st == MB_OK && kind == THREAD_NEW)
        p->stats.created++;
    else if (st == MB_OK)
        p->stats.appended++;
    else if (st == MB_TEMP)
        p->stats.retrying++;
    else if (st == MB_PERM)
        p->stats.quarantined++;
}

/* defer_for_parent - record a no-op attempt that makes ROW due again soon */
static enum mb_status defer_for_parent(struct pipeline *p, const struct store_msg *row,
                                       const struct mb_mail *mail, const char *parent, bool begun,
                                       struct mb_error *err)
{
    char *why = xasprintf("waiting for the message it replies to (%s) to be posted first", parent);
    struct store_outcome o = {.status = MB_TEMP, .error = why, .next_attempt_ms = clock_now_ms() + PARENT_WAIT_MS};
    enum mb_status st = begun ? MB_OK : store_begin_attempt(p->store, row->id, err);
    if (st == MB_OK)
        st = store_finish_attempt(p->store, row->id, &o, err);
    if (st == MB_OK)
        log_outcome(p, row, mail, "wait", "deferred", NULL, why, PARENT_WAIT_MS);
    free(why);
    return st;
}

/* classify_attempt - the outcome to record: a temporary failure becomes
 * permanent once max_attempts were spent; a config/auth failure is DOWN. */
static enum mb_status classify_attempt(struct pipeline *p, enum mb_status st, unsigned attempt,
                                       struct mb_error *perr)
{
    if (st == MB_CONFIG)
        return MB_DOWN;
    if (st == MB_TEMP && attempt >= p->cfg->max_attempts) {
        /* the last words are the vendor's: a truncated tail is acceptable */
        char text[MB_ERROR_TEXT_MAX];
        memcpy(text, perr->text, sizeof(text));
        mb_error_set(perr, MB_PERM, "gave up after %u attempts: %.*s", attempt, (int)(sizeof(text) - 40), text);
        return MB_PERM;
    }
    return st;
}

static const char *status_word(enum mb_status st)
{
    switch (st) {
    case MB_OK:
        return "ok";
    case MB_TEMP:
        return "retry";
    case MB_PERM:
        return "quarantine";
    default:
        return "down";
    }
}

/* settle - ask the vendor whether the post of REQ (ROW, left in POSTING)
 * arrived: found -> DONE (*DONE_R true); not found -> due again (at once
 * when REQUEUE_NOW, else after the usual backoff). MB_TEMP when the vendor
 * could not be asked: the row stays POSTING and is settled on a later pass. */
static enum mb_status settle(struct pipeline *p, const struct store_msg *row, const struct mb_mail *mail,
                             const struct ticket_request *req, bool requeue_now, bool *done_r,
                             struct mb_error *err)
{
    struct ticket_result res;
    ticket_result_init(&res);
    bool found = false;
    enum mb_status st = MB_OK;
    if (p->conn->ops->find_by_key != NULL)
        st = p->conn->ops->find_by_key(p->conn, req, &found, &res, err);
    if (st != MB_OK) {
        log_outcome(p, row, mail, "reconcile", "unsettled", &res, err->text, -1);
        ticket_result_clear(&res);
        return st;
    }
    unsigned attempt = row->attempts + 1;
    long long delay = requeue_now ? 0 : backoff_delay_ms(&p->cfg->backoff, attempt, -1);
    const char *why = p->conn->ops->find_by_key != NULL
                          ? "no answer to the post and the vendor does not have it: posting again"
                          : "no answer to the post and the vendor offers no lookup: posting again";
    struct store_outcome o = {
        .status = found ? MB_OK : MB_TEMP,
        .error = found ? NULL : why,
        .next_attempt_ms = found ? 0 : clock_now_ms() + delay,
        .ticket_id = res.ticket_id,
        .vendor_message_id = res.message_id,
        .conversation_id = res.conversation_id,
    };
    st = store_finish_attempt(p->store, row->id, &o, err);
    *done_r = st == MB_OK && found;
    if (st == MB_OK && found) {
        p->stats.reconciled++;
        log_outcome(p, row, mail, "reconcile", "ok", &res, NULL, -1);
    } else if (st == MB_OK) {
        p->stats.retrying += requeue_now ? 0 : 1;
        log_outcome(p, row, mail, "reconcile", "requeued", &res, why, delay);
    }
    ticket_result_clear(&res);
    return st;
}

/* decide - the threading decision for MAIL (stored as ROW) into DEC, and
 * the post's intent recorded (store_begin_attempt) unless BEGUN says the
 * caller did it. A reply whose parent is not posted yet waits for it
 * instead: recorded as deferred, *DEFERRED_R set. DEC is to be cleared by
 * the caller only when MB_OK is returned and nothing was deferred. */
static enum mb_status decide(struct pipeline *p, const struct store_msg *row, const struct mb_mail *mail,
                             bool begun, struct thread_decision *dec, bool *deferred_r, struct mb_error *err)
{
    *deferred_r = false;
    thread_resolve(mail, p->route->subject_token, lookup_thread, p, dec);
    const char *parent = dec->kind == THREAD_NEW ? pending_parent(p, mail) : NULL;
    if (parent != NULL) {
        thread_decision_clear(dec);
        *deferred_r = true;
        return defer_for_parent(p, row, mail, parent, begun, err);
    }
    enum mb_status st = begun ? MB_OK : store_begin_attempt(p->store, row->id, err);
    if (st != MB_OK)
        thread_decision_clear(dec);
    return st;
}

/* record - the outcome of the post of MAIL (stored as ROW) as REQ: the
 * connector said SENT, RES and PERR (PERR may be rewritten by
 * classify_attempt). MB_OK whatever the vendor said, unless the store
 * failed (MB_TEMP) or the vendor is down (MB_DOWN); *DONE_R tells whether
 * the row ended DONE. */
static enum mb_status record(struct pipeline *p, const struct store_msg *row, const struct mb_mail *mail,
                             const struct ticket_request *req, enum mb_status sent,
                             const struct ticket_result *res, struct mb_error *perr, bool *done_r,
                             struct mb_error *err)
{
    *done_r = false;
    unsigned attempt = row->attempts + 1;
    enum thread_kind kind = req->thread->kind;
    const char *action = kind == THREAD_NEW ? "create" : "append";
    enum mb_status outcome = classify_attempt(p, sent, attempt, perr);
    if (outcome == MB_TEMP && res->unanswered) {
        /* The vendor may have acted on it - or may still be working on it:
         * it stays POSTING and is looked up reconcile_after after it was
         * sent (pipeline_reconcile), before any second post. */
        long long wait = p->cfg->reconcile_after_ms;
        log_outcome(p, row, mail, action, "unanswered", res, perr->text, wait);
        if (wait > 0) {
            p->stats.retrying++;
            return MB_OK;
        }
        enum mb_status st = settle(p, row, mail, req, false, done_r, err);
        return st == MB_TEMP ? MB_OK : st; /* unsettled: stays POSTING, settled on a later pass */
    }
    long long delay = outcome == MB_TEMP ? backoff_delay_ms(&p->cfg->backoff, attempt, res->retry_after_ms) : -1;
    struct store_outcome o = {
        .status = outcome,
        .error = outcome == MB_OK ? NULL : perr->text,
        .http_status = res->http_status,
        .next_attempt_ms = delay >= 0 ? clock_now_ms() + delay : 0,
        .ticket_id = res->ticket_id,
        .vendor_message_id = res->message_id,
        .conversation_id = res->conversation_id,
    };
    enum mb_status st = store_finish_attempt(p->store, row->id, &o, err);
    if (st != MB_OK)
        return st; /* left in POSTING: reconciled on the next start */
    *done_r = outcome == MB_OK;
    log_outcome(p, row, mail, action, status_word(outcome), res, o.error, delay);
    count_outcome(p, outcome, kind);
    if (outcome == MB_DOWN)
        return mb_error_set(err, MB_DOWN, "route %s: %s", p->route->name, perr->text);
    return MB_OK;
}

/* post - one attempt to hand MAIL (stored as ROW) to the vendor, recorded
 * before (intent: store_begin_attempt, done here unless BEGUN says the
 * caller did it) and after (outcome), see decide and record. */
static enum mb_status post(struct pipeline *p, const struct store_msg *row, const struct mb_mail *mail,
                           bool begun, bool *done_r, struct mb_error *err)
{
    *done_r = false;
    struct thread_decision dec;
    bool deferred = false;
    enum mb_status st = decide(p, row, mail, begun, &dec, &deferred, err);
    if (st != MB_OK || deferred)
        return st;
    struct ticket_request req = {.mail = mail, .thread = &dec, .key = row->key};
    struct ticket_result res;
    ticket_result_init(&res);
    struct mb_error perr;
    mb_error_clear(&perr);
    enum mb_status sent = connector_post(p->conn, &req, &res, &perr);
    st = record(p, row, mail, &req, sent, &res, &perr, done_r, err);
    ticket_result_clear(&res);
    thread_decision_clear(&dec);
    return st;
}

/* due_now - an existing row an ingest may post right away */
static bool due_now(const struct store_msg *row)
{
    return row->state == MSG_QUEUED || (row->state == MSG_RETRY && row->next_attempt_ms <= clock_now_ms());
}

/* owner_alive - another live process began this post: leave it alone */
static bool owner_alive(long pid)
{
    if (pid <= 0 || pid == (long)getpid())
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* relocate_if_moved - a known message (ROW) found again at WHERE: the place
 * it is now is the one to acknowledge */
static enum mb_status relocate_if_moved(struct pipeline *p, const struct store_msg *row, const char *where,
                                        struct mb_error *err)
{
    if (row->source != NULL && strcmp(row->source, where) == 0)
        return MB_OK;
    return store_relocate(p->store, row->id, where, err);
}

/* reconcile_due - ROW (POSTING) was sent long enough ago (reconcile_after)
 * for a lookup at the vendor to be trusted, and nobody alive is posting it */
static bool reconcile_due(const struct pipeline *p, const struct store_msg *row)
{
    return !owner_alive(row->owner_pid) &&
           clock_now_ms() - row->attempt_started_ms >= p->cfg->reconcile_after_ms;
}

/* reconcile_with - settle ROW, left in POSTING by a crash or an unanswered
 * post, asking the vendor about MAIL; *DONE_R true when the vendor had it */
static enum mb_status reconcile_with(struct pipeline *p, const struct store_msg *row, const struct mb_mail *mail,
                                     bool *done_r, struct mb_error *err)
{
    struct thread_decision dec;
    thread_resolve(mail, p->route->subject_token, lookup_thread, p, &dec);
    struct ticket_request req = {.mail = mail, .thread = &dec, .key = row->key};
    enum mb_status st = settle(p, row, mail, &req, true, done_r, err);
    thread_decision_clear(&dec);
    return st;
}

/* A message admitted to the store and due for a post. */
struct admitted {
    struct mb_mail *mail;      /* owned */
    struct store_msg row;      /* owned */
    const unsigned char *raw;  /* borrowed: bytes the store does not hold (the source
                                  does), NULL when it holds them */
    size_t len;
    bool begun;                /* claimed as it was enqueued: its intent is recorded */
    bool finished;             /* posted (or deferred) in phase two: never given back */
};

static void admitted_clear(struct admitted *a)
{
    mail_free(&a->mail);
    store_msg_clear(&a->row);
}

/* keep_raw_unless_done - A, whose bytes only its mailbox holds, did not end
 * DONE: the store keeps them now, as the mailbox will not hand it over again
 * (its progress moves past it once the batch is safe) */
static enum mb_status keep_raw_unless_done(struct pipeline *p, const struct admitted *a, bool done,
                                           struct mb_error *err)
{
    if (done || a->raw == NULL)
        return MB_OK;
    return store_keep_raw(p->store, a->row.id, a->raw, a->len, err);
}

/* claimed_in - whether row ID is one of the N messages claimed already in
 * this batch (the same mail twice in one fetch) */
static bool claimed_in(const struct admitted *claimed, size_t n, long long id)
{
    for (size_t i = 0; i < n; i++)
        if (claimed[i].mail != NULL && claimed[i].row.id == id)
            return true;
    return false;
}

/* resume_interrupted - A was found again while its row is POSTING and the
 * process that began the post is gone: it died before the outcome, and
 * (coming from a mailbox) may have kept no bytes. With the bytes at hand,
 * ask the vendor first, exactly as reconciliation does; *DUE_R when the
 * vendor does not have it and it is to be posted now. */
static enum mb_status resume_interrupted(struct pipeline *p, struct admitted *a, bool *due_r, struct mb_error *err)
{
    bool done = false;
    if (!reconcile_due(p, &a->row)) /* too early to ask: a later reconcile will */
        return keep_raw_unless_done(p, a, false, err);
    enum mb_status st = reconcile_with(p, &a->row, a->mail, &done, err);
    if (st == MB_TEMP) /* the vendor could not be asked: a later reconcile will */
        return keep_raw_unless_done(p, a, false, err);
    if (st != MB_OK || done)
        return st;
    char *key = xstrdup(a->row.key);
    store_msg_clear(&a->row);
    st = store_get(p->store, p->route->name, key, &a->row, err);
    free(key);
    *due_r = st == MB_OK && due_now(&a->row);
    return st;
}

/* admit - parse IN and commit it to the store (deduplicated by key); an
 * unparsable message is quarantined there. *DUE_R says whether it is to be
 * posted now, A_R then holds it. CLAIMED (N) are the messages of this batch
 * claimed already. A parsed mailbox message is stored without its bytes:
 * the mailbox keeps it until it is settled, and keep_raw_unless_done stores
 * them for the few that are not delivered at once. */
static enum mb_status admit(struct pipeline *p, const struct pipeline_input *in, const struct admitted *claimed,
                            size_t n, struct admitted *a_r, bool *due_r, struct mb_error *err)
{
    struct mb_error perr;
    mb_error_clear(&perr);
    memset(a_r, 0, sizeof(*a_r));
    *due_r = false;
    enum mb_status parsed = mime_parse(in->raw, in->len, &p->cfg->limits, &a_r->mail, &perr);
    char *key = a_r->mail != NULL ? xstrdup(a_r->mail->key) : mime_raw_key(in->raw, in->len);
    bool held_by_source = in->ack_wanted && parsed == MB_OK;
    struct store_new_msg nm = {
        .route = p->route->name,
        .key = key,
        .source = in->where,
        .message_id = a_r->mail ? a_r->mail->message_id : NULL,
        .subject = a_r->mail ? a_r->mail->subject : NULL,
        .raw = held_by_source ? NULL : in->raw,
        .raw_len = in->len,
        .ack_wanted = in->ack_wanted,
        .claim = parsed == MB_OK, /* a new row is posted at once */
    };
    a_r->raw = held_by_source ? in->raw : NULL;
    a_r->len = in->len;
    bool created = false;
    enum mb_status st = store_enqueue(p->store, &nm, &created, &a_r->row, err);
    if (st == MB_OK && !created && in->ack_wanted)
        st = relocate_if_moved(p, &a_r->row, in->where, err);
    if (st != MB_OK) {
        /* not stored: the source keeps the message */
    } else if (parsed != MB_OK) {
        if (created)
            st = store_set_quarantine(p->store, a_r->row.id, perr.text, err);
        if (st == MB_OK && created) {
            log_outcome(p, &a_r->row, NULL, "parse", "quarantine", NULL, perr.text, -1);
            p->stats.quarantined++;
        } else if (st == MB_OK) {
            p->stats.duplicates++;
        }
    } else if (created || due_now(&a_r->row)) {
        *due_r = true;
        a_r->begun = created;
    } else if (a_r->row.state == MSG_POSTING && !owner_alive(a_r->row.owner_pid) &&
               !claimed_in(claimed, n, a_r->row.id)) {
        st = resume_interrupted(p, a_r, due_r, err);
    } else {
        log_outcome(p, &a_r->row, a_r->mail, "skip", "duplicate", NULL, NULL, -1);
        p->stats.duplicates++;
    }
    free(key);
    if (!*due_r)
        admitted_clear(a_r);
    return st;
}

enum mb_status pipeline_ingest(struct pipeline *p, const unsigned char *raw, size_t len,
                               const char *where, bool ack_wanted, struct mb_error *err)
{
    const struct pipeline_input in = {raw, len, where, ack_wanted};
    return pipeline_ingest_batch(p, &in, 1, NULL, err);
}

/* A batch holds the store's write lock while it posts: other processes (an
 * MTA's `deliver`) wait for it, so it is committed at least this often. */
#define BATCH_LOCK_MS 250

/* The most messages posted together in one wave: the batch's store lock
 * is held while a wave is out, so a slow vendor holds it for about
 * WAVE_MAX / max_in_flight of its answer times. */
#define WAVE_MAX 16

/* A wave: admitted messages whose posts are independent of each other,
 * handed to the connector together (connector_post_many). */
struct wave {
    struct admitted *items[WAVE_MAX];         /* borrowed: the batch's */
    struct thread_decision decs[WAVE_MAX];    /* owned */
    struct ticket_request reqs[WAVE_MAX];     /* borrow the above */
    struct ticket_result results[WAVE_MAX];   /* owned during post_wave */
    enum mb_status statuses[WAVE_MAX];
    struct mb_error errs[WAVE_MAX];
    size_t n;
};

/* replies_into - MAIL's In-Reply-To or References names the Message-Id of
 * a message in W: it can only be threaded once that one's ticket is known */
static bool replies_into(const struct wave *w, const struct mb_mail *mail)
{
    for (size_t i = 0; i <= mail->reference_count; i++) {
        const char *id = i == 0 ? mail->in_reply_to : mail->references[i - 1];
        for (size_t k = 0; id != NULL && k < w->n; k++) {
            const char *mid = w->items[k]->mail->message_id;
            if (mid != NULL && strcmp(mid, id) == 0)
                return true;
        }
    }
    return false;
}

/* wave_drop - forget W's decisions (after its posts, or when it is never posted) */
static void wave_drop(struct wave *w)
{
    for (size_t k = 0; k < w->n; k++)
        thread_decision_clear(&w->decs[k]);
    w->n = 0;
}

/* post_wave - post W's messages together, then record each outcome in
 * order exactly as post() does. Crash safety is that of a single post by
 * construction: every message of W is POSTING (its intent committed in
 * phase one) before any request leaves, and the outcomes are recorded
 * only after all answers are in; a crash in between leaves POSTING rows
 * that reconciliation settles by asking the vendor. Every outcome is
 * recorded even after one says MB_DOWN (those posts happened); a store
 * failure leaves the rest POSTING. */
static enum mb_status post_wave(struct pipeline *p, struct wave *w, struct mb_error *err)
{
    for (size_t k = 0; k < w->n; k++) {
        ticket_result_init(&w->results[k]);
        mb_error_clear(&w->errs[k]);
        w->items[k]->finished = true;
    }
    connector_post_many(p->conn, w->reqs, w->n, w->results, w->statuses, w->errs);
    enum mb_status st = MB_OK;
    bool down = false;
    for (size_t k = 0; k < w->n; k++) {
        struct admitted *a = w->items[k];
        bool done = false;
        struct mb_error rerr, kerr;
        enum mb_status rst = MB_TEMP;
        if (st == MB_OK)
            rst = record(p, &a->row, a->mail, &w->reqs[k], w->statuses[k], &w->results[k], &w->errs[k],
                         &done, &rerr);
        if (st == MB_OK && (rst == MB_OK || rst == MB_DOWN)) { /* an outcome was recorded */
            enum mb_status kst = keep_raw_unless_done(p, a, done, &kerr);
            if (rst == MB_OK && kst != MB_OK) {
                rst = kst;
                rerr = kerr;
            }
        }
        if (st == MB_OK && rst == MB_DOWN && !down) {
            down = true;
            *err = rerr;
        } else if (st == MB_OK && rst != MB_OK && rst != MB_DOWN) {
            st = rst;
            *err = rerr;
        }
        ticket_result_clear(&w->results[k]);
    }
    wave_drop(w);
    return st == MB_OK && down ? MB_DOWN : st;
}

/* post_admitted - phase two of pipeline_ingest_batch: the posts in waves,
 * their outcomes committed together (in slices, see BATCH_LOCK_MS). A wave
 * ends when it is full or before a message that replies to one in it, so
 * a reply in the same batch as its parent is appended to the parent's
 * ticket (its parent's outcome is recorded when it is threaded). */
static enum mb_status post_admitted(struct pipeline *p, struct admitted *items, size_t n,
                                    const volatile sig_atomic_t *stop, struct mb_error *err)
{
    struct wave *w = xcalloc(1, sizeof(*w));
    enum mb_status st = store_batch_begin(p->store, err);
    long long since = clock_now_ms();
    for (size_t i = 0; st == MB_OK && i <= n; i++) {
        struct admitted *a = i < n ? &items[i] : NULL;
        if (a != NULL && a->mail == NULL)
            continue;
        bool stopping = stop && *stop;
        if (w->n > 0 && !stopping && (a == NULL || w->n == WAVE_MAX || replies_into(w, a->mail))) {
            st = post_wave(p, w, err);
            if (st == MB_OK && clock_now_ms() - since > BATCH_LOCK_MS) {
                st = store_batch_commit(p->store, err);
                if (st == MB_OK)
                    st = store_batch_begin(p->store, err);
                since = clock_now_ms();
            }
        }
        if (a == NULL || st != MB_OK || stopping)
            break;
        bool deferred = false;
        st = decide(p, &a->row, a->mail, true, &w->decs[w->n], &deferred, err);
        if (st == MB_OK && deferred) {
            a->finished = true;
            st = keep_raw_unless_done(p, a, false, err);
        } else if (st == MB_OK) {
            w->items[w->n] = a;
            w->reqs[w->n] = (struct ticket_request){.mail = a->mail, .thread = &w->decs[w->n], .key = a->row.key};
            w->n++;
        }
    }
    wave_drop(w); /* a wave left unposted (stopping, or a store failure) */
    free(w);
    /* The vendor refused us, or we are stopping: the rest were claimed but not
     * posted; give them back (queued, no attempt counted) rather than leave
     * them to reconciliation. */
    struct mb_error cerr;
    struct store_outcome back = {.status = MB_DOWN, .error = "not posted: the route stopped"};
    for (size_t i = 0; (st == MB_DOWN || (stop && *stop)) && i < n; i++)
        if (items[i].mail != NULL && !items[i].finished &&
            store_finish_attempt(p->store, items[i].row.id, &back, &cerr) == MB_OK)
            keep_raw_unless_done(p, &items[i], false, &cerr);
    enum mb_status cst = store_batch_commit(p->store, st == MB_OK ? err : &cerr);
    return st != MB_OK ? st : cst;
}

enum mb_status pipeline_ingest_batch(struct pipeline *p, const struct pipeline_input *in, size_t n,
                                     const volatile sig_atomic_t *stop, struct mb_error *err)
{
    struct admitted *items = xcalloc(n ? n : 1, sizeof(*items));
    /* Phase one: every message admitted and its post's intent recorded, in
     * one commit - from here on each is safe, and a crash before its outcome
     * is recorded is settled by reconciliation, never by a blind second post.
     * All or nothing: a failure rolls the phase back and the source keeps
     * every message (some were admitted without their bytes). */
    enum mb_status st = store_batch_begin(p->store, err);
    for (size_t i = 0; st == MB_OK && i < n; i++) {
        bool due = false;
        st = admit(p, &in[i], items, i, &items[i], &due, err);
        if (st == MB_OK && due && !items[i].begun) /* inside the batch's lock nobody else can claim it */
            st = store_begin_attempt(p->store, items[i].row.id, err);
    }
    if (st == MB_OK)
        st = store_batch_commit(p->store, err);
    else
        store_batch_abort(p->store);
    if (st == MB_OK)
        st = post_admitted(p, items, n, stop, err);
    for (size_t i = 0; i < n; i++)
        admitted_clear(&items[i]);
    free(items);
    return st;
}

void pipeline_record_refused(struct pipeline *p, const char *source_id, const char *reason)
{
    struct buf line;
    buf_init(&line, 4096);
    logfmt_pair(&line, "msg", "-");
    logfmt_pair(&line, "route", p->route->name);
    logfmt_pair(&line, "source", source_id);
    logfmt_pair(&line, "status", "refused");
    logfmt_pair(&line, "error", reason);
    log_error(p->env->log, "%s", line.data);
    buf_free(&line);
    p->stats.quarantined++;
}

/* load_mail - parse the raw bytes kept for ROW; a row that no longer parses
 * (the limits were lowered) is quarantined and *MAIL_R left NULL. *HELD_R
 * (when given) is set when no bytes are kept because the row's mailbox
 * still holds them; without HELD_R that is a reason to quarantine. */
static enum mb_status load_mail(struct pipeline *p, const struct store_msg *row, struct mb_mail **mail_r,
                                bool *held_r, struct mb_error *err)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    *mail_r = NULL;
    enum mb_status st = store_load_raw(p->store, row->id, &raw, &len, err);
    if (st == MB_PERM)
        return store_set_quarantine(p->store, row->id, err->text, err);
    if (st != MB_OK)
        return st;
    if (raw == NULL && held_r != NULL) {
        *held_r = true;
        return MB_OK;
    }
    if (raw == NULL)
        return store_set_quarantine(p->store, row->id, "no raw bytes kept for it", err);
    struct mb_error perr;
    if (mime_parse(raw, len, &p->cfg->limits, mail_r, &perr) != MB_OK) {
        st = store_set_quarantine(p->store, row->id, perr.text, err);
        if (st == MB_OK)
            log_outcome(p, row, NULL, "parse", "quarantine", NULL, perr.text, -1);
    }
    free(raw);
    return st;
}

enum mb_status pipeline_drain(struct pipeline *p, long long now, size_t limit,
                              const volatile sig_atomic_t *stop, size_t *posted_r, struct mb_error *err)
{
    struct store_msg *msgs = NULL;
    size_t count = 0;
    *posted_r = 0;
    size_t batch = limit == 0 || limit > DRAIN_BATCH ? DRAIN_BATCH : limit;
    enum mb_status st = store_due(p->store, p->route->name, now, batch, &msgs, &count, err);
    for (size_t i = 0; st == MB_OK && i < count && !(stop && *stop); i++) {
        struct mb_mail *mail = NULL;
        bool done = false;
        st = load_mail(p, &msgs[i], &mail, NULL, err);
        if (st == MB_OK && mail != NULL) {
            st = post(p, &msgs[i], mail, false, &done, err);
            (*posted_r)++;
        }
        mail_free(&mail);
    }
    store_msgs_free(&msgs, count);
    return st;
}

/* reconcile_one - settle ROW, left in POSTING by a crash or an unanswered
 * post; one whose bytes only its mailbox holds is settled when the mailbox
 * hands it over again (resume_interrupted) */
static enum mb_status reconcile_one(struct pipeline *p, const struct store_msg *row, struct mb_error *err)
{
    struct mb_mail *mail = NULL;
    bool held = false, done = false;
    enum mb_status st = load_mail(p, row, &mail, &held, err);
    if (st != MB_OK || mail == NULL)
        return st;
    st = reconcile_with(p, row, mail, &done, err);
    mail_free(&mail);
    return st;
}

enum mb_status pipeline_reconcile(struct pipeline *p, struct mb_error *err)
{
    struct store_msg *msgs = NULL;
    size_t count = 0;
    enum mb_status st = store_list(p->store, p->route->name, MSG_POSTING, RECONCILE_BATCH, &msgs, &count, err);
    for (size_t i = 0; st == MB_OK && i < count; i++)
        if (reconcile_due(p, &msgs[i]))
            st = reconcile_one(p, &msgs[i], err);
    store_msgs_free(&msgs, count);
    return st;
}
