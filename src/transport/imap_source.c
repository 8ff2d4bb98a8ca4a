/* imap_source - an IMAP folder as a mail source (source.h) over the session
 * of imap.h. Messages are fetched in batches from the checkpoint the
 * source_memory keeps (UIDVALIDITY + next UID, written once per batch), never
 * flagged by reading; the processed-mail action waits for settle().
 *
 * Waiting: idle_begin starts IDLE when the server offers it and the settings
 * allow. The server drops an IDLE after 30 minutes, so the caller ends every
 * wait (idle_end) within 25 minutes and begins a new one: its poll timeout
 * guarantees that. Without IDLE the caller waits its poll interval, and the
 * next next() starts with a NOOP, which makes the server look for new mail. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "transport/imap.h"
#include "transport/local.h"
#include "transport/mailbox_int.h"

/* Message bytes a batch holds in memory; a single larger message still
 * comes, alone. Spooled messages (see keep) are not counted. */
#define IMAP_SOURCE_BATCH_BYTES ((size_t)16 << 20)

/* One fetched message, held until the batch is used up. */
struct held {
    uint32_t uid;
    char *id;            /* owned: "UIDVALIDITY=V;UID=U" */
    unsigned char *data; /* owned: a heap copy, or a mapping of LEN bytes when MAPPED;
                            NULL when the message is over the size limit */
    size_t len;
    bool mapped;
};

struct imap_source {
    struct source base;
    struct imap_session *sess;          /* owned */
    const struct source_memory *memory; /* borrowed: lives as long as the source */
    char *folder;                       /* owned: UTF-8; the checkpoint's name */
    enum mailbox_action action;
    char *action_arg; /* owned: keyword or folder of the action; NULL */
    char *quarantine; /* owned: NULL leaves quarantined mail where it is */
    char *spool_dir;  /* owned: NULL holds every message in memory */
    size_t spool_threshold;
    size_t max_message_size;
    unsigned batch_size;
    bool use_idle;
    bool idling;
    uint32_t uidvalidity; /* of the selected folder */
    bool started;         /* the checkpoint was read */
    uint32_t fetch_uid;   /* the next UID to fetch */
    uint32_t progress;    /* one past the last message handed (or refused as too large) */
    uint32_t saved_validity, saved_progress; /* what the checkpoint holds */
    struct held *batch;                      /* owned: batch_size slots */
    size_t count, pos;                       /* held, handed out */
    size_t bytes;                            /* held in memory */
    bool full;                               /* a spooled message ends the batch */
    bool stopped;                            /* keep refused a message: the batch is complete */
    bool action_created, quarantine_created; /* CREATE was tried for that folder */
    unsigned long long handed_out;
};

/* imap_of - the IMAP source behind SRC */
static struct imap_source *imap_of(struct source *src)
{
    return (struct imap_source *)src;
}

/* release - free the batch's messages; it is empty afterwards */
static void release(struct imap_source *m)
{
    for (size_t i = 0; i < m->count; i++) {
        struct held *h = &m->batch[i];
        if (h->mapped)
            munmap(h->data, h->len);
        else
            free(h->data);
        free(h->id);
    }
    m->count = m->pos = m->bytes = 0;
}

/* spool_copy - LEN (> 0) bytes of DATA into an unlinked file of DIR, mapped
 * read-only at *MAP_R (munmap LEN bytes); the file vanishes with the
 * mapping, even after a crash. The space is reserved first, so a full disk
 * is an error here rather than a SIGBUS while copying. */
static enum mb_status spool_copy(const char *dir, const unsigned char *data, size_t len,
                                 unsigned char **map_r, struct mb_error *err)
{
    char *path = xasprintf("%s/mailbridge-batch-XXXXXX", dir);
    int fd = mkstemp(path);
    int saved = errno;
    if (fd >= 0)
        unlink(path);
    free(path);
    if (fd < 0)
        return mb_error_set(err, MB_TEMP, "cannot create a spool file in %s: %s", dir,
                            strerror(saved));
    void *map = MAP_FAILED;
    int rc = posix_fallocate(fd, 0, (off_t)len);
    if (rc == 0)
        map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    saved = rc != 0 ? rc : errno;
    close(fd);
    if (map == MAP_FAILED)
        return mb_error_set(err, MB_TEMP, "cannot spool %zu bytes in %s: %s", len, dir,
                            strerror(saved));
    memcpy(map, data, len);
    mprotect(map, len, PROT_READ);
    *map_r = map;
    return MB_OK;
}

/* keep - imap_fetch's callback: hold a copy of the message (DATA NULL: over
 * the size limit). Once the batch holds its share of memory, or a spooled
 * message, the next message is refused: imap_fetch stops there and the next
 * batch starts with it. */
static enum mb_status keep(void *ctx, uint32_t uid, const unsigned char *data, size_t len,
                           struct mb_error *err)
{
    struct imap_source *m = ctx;
    bool spool = data != NULL && m->spool_dir != NULL && len > m->spool_threshold;
    bool in_memory = data != NULL && !spool;
    if (m->count > 0 && (m->full || (in_memory && m->bytes + len > IMAP_SOURCE_BATCH_BYTES))) {
        m->stopped = true;
        return mb_error_set(err, MB_TEMP, "the batch is full");
    }
    struct held h = {.uid = uid, .len = len};
    if (spool) {
        enum mb_status st = spool_copy(m->spool_dir, data, len, &h.data, err);
        if (st != MB_OK)
            return st;
        h.mapped = true;
        m->full = true;
    } else if (in_memory) {
        h.data = xmemdup(data, len);
        m->bytes += len;
    }
    h.id = xasprintf("UIDVALIDITY=%u;UID=%u", (unsigned)m->uidvalidity, (unsigned)uid);
    m->batch[m->count++] = h;
    return MB_OK;
}

/* advance - the message UID is dealt with: progress moves past it */
static void advance(struct imap_source *m, uint32_t uid)
{
    if (uid >= m->progress && uid < UINT32_MAX)
        m->progress = uid + 1;
}

/* save_progress - write the checkpoint when it changed since it was read
 * or last written */
static enum mb_status save_progress(struct imap_source *m, struct mb_error *err)
{
    if (!m->started || (m->saved_validity == m->uidvalidity && m->saved_progress == m->progress))
        return MB_OK;
    enum mb_status st =
        m->memory->checkpoint_set(m->memory->ctx, m->folder, m->uidvalidity, m->progress, err);
    if (st == MB_OK) {
        m->saved_validity = m->uidvalidity;
        m->saved_progress = m->progress;
    }
    return st;
}

/* start - where to begin: the checkpoint's next UID, or UID 1 when the
 * folder was renumbered since (another UIDVALIDITY): the messages come
 * again under their new UIDs and the store knows them by their keys */
static enum mb_status start(struct imap_source *m, struct mb_error *err)
{
    uint32_t validity = 0, next_uid = 0;
    enum mb_status st =
        m->memory->checkpoint_get(m->memory->ctx, m->folder, &validity, &next_uid, err);
    if (st != MB_OK)
        return st;
    m->saved_validity = validity;
    m->saved_progress = next_uid;
    bool same = validity == m->uidvalidity || validity == 0;
    m->fetch_uid = same && next_uid > 0 ? next_uid : 1;
    m->progress = m->fetch_uid;
    m->started = true;
    return MB_OK;
}

/* wake - end an IDLE still under way (no other command may be sent in it) */
static enum mb_status wake(struct imap_source *m, struct mb_error *err)
{
    if (!m->idling)
        return MB_OK;
    m->idling = false;
    bool new_mail;
    return imap_idle_done(m->sess, &new_mail, err);
}

/* refill - the used-up batch is released and progress saved; then a NOOP
 * (so the server looks for new mail) and the next batch */
static enum mb_status refill(struct imap_source *m, struct mb_error *err)
{
    release(m);
    enum mb_status st = save_progress(m, err);
    if (st == MB_OK && !m->started)
        st = start(m, err);
    bool new_mail;
    if (st == MB_OK)
        st = imap_noop(m->sess, &new_mail, err);
    if (st != MB_OK)
        return st;
    m->full = m->stopped = false;
    uint32_t next_uid;
    st = imap_fetch(m->sess, m->fetch_uid, m->batch_size, keep, m, &next_uid, err);
    if (st != MB_OK && m->stopped)
        st = MB_OK; /* keep ended the batch early; NEXT_UID is the refused message */
    if (st != MB_OK) {
        release(m);
        return st;
    }
    m->fetch_uid = next_uid;
    return MB_OK;
}

/* imap_src_next - hand out the batch one message at a time, fetching the
 * next batch when it is used up */
static enum mb_status imap_src_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                                    struct mb_error *err)
{
    struct imap_source *m = imap_of(src);
    *got_r = false;
    *msg_r = (struct source_msg){NULL, NULL, 0};
    enum mb_status st = wake(m, err);
    if (st == MB_OK && m->pos == m->count)
        st = refill(m, err);
    if (st != MB_OK || m->pos == m->count)
        return st;
    struct held *h = &m->batch[m->pos++];
    m->handed_out++;
    msg_r->id = h->id;
    if (h->data == NULL) { /* refused for good: counts as handed, settle may move it */
        advance(m, h->uid);
        return source_too_large(m->max_message_size, err);
    }
    msg_r->data = h->data;
    msg_r->len = h->len;
    *got_r = true;
    return MB_OK;
}

/* parse_u32 - decimal digits at *P (no sign, no leading zeros beyond "0")
 * into *OUT, *P moved past them; false when there are none or too many */
static bool parse_u32(const char **p, uint32_t *out)
{
    const char *s = *p;
    unsigned long long v = 0;
    while (*s >= '0' && *s <= '9' && v <= UINT32_MAX)
        v = v * 10 + (unsigned long long)(*s++ - '0');
    if (s == *p || v > UINT32_MAX || (s - *p > 1 && **p == '0'))
        return false;
    *out = (uint32_t)v;
    *p = s;
    return true;
}

/* parse_id - "UIDVALIDITY=V;UID=U" (a held message's id) into its numbers */
static bool parse_id(const char *id, uint32_t *validity_r, uint32_t *uid_r)
{
    static const char vkey[] = "UIDVALIDITY=", ukey[] = ";UID=";
    if (strncmp(id, vkey, sizeof(vkey) - 1) != 0)
        return false;
    id += sizeof(vkey) - 1;
    if (!parse_u32(&id, validity_r) || strncmp(id, ukey, sizeof(ukey) - 1) != 0)
        return false;
    id += sizeof(ukey) - 1;
    return parse_u32(&id, uid_r) && *id == '\0' && *uid_r != 0;
}

/* imap_src_handed - MSG is safe in the store: progress moves past it (the
 * checkpoint is written when the batch is used up) */
static enum mb_status imap_src_handed(struct source *src, const struct source_msg *msg,
                                      struct mb_error *err)
{
    struct imap_source *m = imap_of(src);
    uint32_t validity, uid;
    if (!parse_id(msg->id, &validity, &uid))
        return mb_error_set(err, MB_PERM, "%s: \"%s\" names no message of this mailbox",
                            m->base.name, msg->id);
    if (validity == m->uidvalidity)
        advance(m, uid);
    return MB_OK;
}

/* move_to - the N UIDS to FOLDER; when the server says the folder is
 * missing, it is created (tried once per source, *CREATED remembers) and
 * the move is tried again */
static enum mb_status move_to(struct imap_source *m, const uint32_t *uids, size_t n,
                              const char *folder, bool *created, struct mb_error *err)
{
    enum mb_status st = imap_move(m->sess, uids, n, folder, err);
    if (st != MB_CONFIG || *created)
        return st;
    *created = true;
    st = imap_create_folder(m->sess, folder, err);
    return st != MB_OK ? st : imap_move(m->sess, uids, n, folder, err);
}

/* settle_uid - ITEM's UID when its where is this source's name, ':' and an
 * id of the current UIDVALIDITY (its result MB_OK); else 0, with its result
 * MB_PERM and why */
static uint32_t settle_uid(const struct imap_source *m, struct source_settle_item *item)
{
    const char *where = item->where;
    size_t n = strlen(m->base.name);
    uint32_t validity, uid;
    if (strncmp(where, m->base.name, n) != 0 || where[n] != ':' ||
        !parse_id(where + n + 1, &validity, &uid)) {
        item->result =
            mb_error_set(&item->error, MB_PERM, "%s: not this mailbox (%s)", where, m->base.name);
        return 0;
    }
    if (validity != m->uidvalidity) {
        item->result = mb_error_set(&item->error, MB_PERM,
                                    "%s: the folder was renumbered (UIDVALIDITY is %u now); the "
                                    "message is acknowledged at its new place",
                                    where, (unsigned)m->uidvalidity);
        return 0;
    }
    item->result = MB_OK;
    mb_error_clear(&item->error);
    return uid;
}

/* by_uid - qsort order of UIDs: ascending, so runs become ranges */
static int by_uid(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* apply_action - the configured processed-mail action on the N UIDS */
static enum mb_status apply_action(struct imap_source *m, const uint32_t *uids, size_t n,
                                   struct mb_error *err)
{
    switch (m->action) {
    case MAILBOX_SEEN:
        return imap_add_flag(m->sess, uids, n, "\\Seen", err);
    case MAILBOX_KEYWORD:
        return imap_add_flag(m->sess, uids, n, m->action_arg, err);
    case MAILBOX_MOVE:
        return move_to(m, uids, n, m->action_arg, &m->action_created, err);
    case MAILBOX_DELETE:
        return imap_delete(m->sess, uids, n, err);
    case MAILBOX_KEEP:
        break;
    }
    return MB_OK;
}

/* imap_src_settle - the items of this mailbox and numbering in two sets,
 * DONE and QUARANTINED, each sorted by UID and settled with one command per
 * action (more for a set of over IMAP_SET_MAX_RANGES ranges). A UID that
 * is gone (moved or deleted already, also by an earlier settle that crashed
 * before the store noted it) is fine: IMAP ignores it, and so does every
 * action here. */
static enum mb_status imap_src_settle(struct source *src, struct source_settle_item *items,
                                      size_t n, struct mb_error *err)
{
    struct imap_source *m = imap_of(src);
    uint32_t *done = xcalloc(n, sizeof(*done));
    uint32_t *quarantined = xcalloc(n, sizeof(*quarantined));
    size_t n_done = 0, n_quarantined = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t uid = settle_uid(m, &items[i]);
        if (uid != 0 && items[i].fate == SOURCE_DONE)
            done[n_done++] = uid;
        else if (uid != 0)
            quarantined[n_quarantined++] = uid;
    }
    bool act = n_done > 0 && m->action != MAILBOX_KEEP;
    bool quarantine = n_quarantined > 0 && m->quarantine != NULL;
    enum mb_status st = act || quarantine ? wake(m, err) : MB_OK;
    if (st == MB_OK && act) {
        qsort(done, n_done, sizeof(*done), by_uid);
        st = apply_action(m, done, n_done, err);
    }
    if (st == MB_OK && quarantine) {
        qsort(quarantined, n_quarantined, sizeof(*quarantined), by_uid);
        st = move_to(m, quarantined, n_quarantined, m->quarantine, &m->quarantine_created, err);
    }
    free(done);
    free(quarantined);
    return st;
}

/* imap_src_idle_begin - save progress, then IDLE when allowed and offered */
static enum mb_status imap_src_idle_begin(struct source *src, int *fd_r, bool *ready_r, struct mb_error *err)
{
    struct imap_source *m = imap_of(src);
    *fd_r = -1;
    *ready_r = false;
    enum mb_status st = wake(m, err); /* a second idle_begin renews the IDLE */
    if (st == MB_OK)
        st = save_progress(m, err);
    if (st == MB_OK && imap_mail_pending(m->sess)) { /* announced meanwhile: IDLE would not repeat it */
        *ready_r = true;
        return MB_OK;
    }
    if (st != MB_OK || !m->use_idle || !imap_has_capability(m->sess, "IDLE"))
        return st;
    st = imap_idle_start(m->sess, err);
    if (st == MB_OK) {
        m->idling = true;
        *fd_r = imap_idle_fd(m->sess);
        *ready_r = imap_idle_buffered(m->sess);
    }
    return st;
}

/* imap_src_idle_end - end the IDLE, if any; next() fetches what came */
static enum mb_status imap_src_idle_end(struct source *src, struct mb_error *err)
{
    return wake(imap_of(src), err);
}

/* imap_src_progress - messages handed out by this source; the total is unknown */
static void imap_src_progress(struct source *src, unsigned long long *done_r,
                              unsigned long long *total_r)
{
    *done_r = imap_of(src)->handed_out;
    *total_r = 0;
}

/* imap_src_destroy - save progress (a failure only means a harmless
 * re-fetch next time), LOGOUT, free everything but base.name */
static void imap_src_destroy(struct source *src)
{
    struct imap_source *m = imap_of(src);
    struct mb_error ignored;
    if (m->sess != NULL)
        save_progress(m, &ignored);
    release(m);
    imap_close(&m->sess);
    free(m->batch);
    free(m->folder);
    free(m->action_arg);
    free(m->quarantine);
    free(m->spool_dir);
    free(m);
}

static const struct source_ops imap_source_ops = {
    .name = "imap",
    .next = imap_src_next,
    .handed = imap_src_handed,
    .settle = imap_src_settle,
    .idle_begin = imap_src_idle_begin,
    .idle_end = imap_src_idle_end,
    .progress = imap_src_progress,
    .destroy = imap_src_destroy,
};

/* imap_source_open - connect, log in, select the folder */
enum mb_status imap_source_open(const struct mailbox_url *u, const struct mailbox_settings *s,
                                const struct source_memory *memory, struct source **src_r,
                                struct mb_error *err)
{
    static const enum imap_tls tls[] = {
        [MAILBOX_TLS_IMPLICIT] = IMAP_TLS_IMPLICIT,
        [MAILBOX_TLS_STARTTLS] = IMAP_TLS_STARTTLS,
        [MAILBOX_TLS_NONE] = IMAP_TLS_NONE,
    };
    static const enum imap_auth auth[] = {
        [MAILBOX_AUTH_LOGIN] = IMAP_AUTH_LOGIN,
        [MAILBOX_AUTH_PLAIN] = IMAP_AUTH_PLAIN,
        [MAILBOX_AUTH_XOAUTH2] = IMAP_AUTH_XOAUTH2,
    };
    if (s->batch_size == 0)
        return mb_error_set(err, MB_CONFIG, "mailbox %s: batch_size must be at least 1", u->host);
    struct imap_settings is;
    imap_settings_default(&is);
    is.host = u->host;
    is.port = u->port;
    is.tls = tls[u->tls];
    is.tls_verify = s->tls_verify;
    is.ca_file = s->ca_file;
    is.user = s->user;
    is.secret = s->secret;
    is.auth = auth[s->auth];
    is.timeout_ms = s->timeout_ms;
    is.max_message_size = s->max_message_size;
    is.spool_dir = s->spool_dir;
    struct imap_session *sess = NULL;
    struct imap_folder info;
    enum mb_status st = imap_connect(&is, &sess, err);
    if (st == MB_OK)
        st = imap_select(sess, u->folder, &info, err);
    if (st != MB_OK) {
        imap_close(&sess);
        return st;
    }
    struct imap_source *m = xcalloc(1, sizeof(*m));
    m->base.ops = &imap_source_ops;
    bool v6 = strchr(u->host, ':') != NULL;
    m->base.name = xasprintf("imap://%s@%s%s%s:%u/%s", s->user, v6 ? "[" : "", u->host,
                             v6 ? "]" : "", u->port, u->folder);
    m->sess = sess;
    m->memory = memory;
    m->folder = xstrdup(u->folder);
    m->action = s->action;
    m->action_arg = xstrdup(s->action_arg);
    m->quarantine = xstrdup(s->quarantine_folder);
    m->spool_dir = xstrdup(s->spool_dir);
    m->spool_threshold = is.spool_threshold;
    m->max_message_size = s->max_message_size;
    m->batch_size = s->batch_size;
    m->use_idle = s->idle;
    m->uidvalidity = info.uidvalidity;
    m->batch = xcalloc(s->batch_size, sizeof(*m->batch));
    *src_r = &m->base;
    return MB_OK;
}
