/* pop3_source - a POP3 maildrop as a mail source (source.h) over the session
 * of pop3.h. Each session lists the maildrop and hands out, in list order,
 * the messages whose UIDL the source_memory has not been handed yet. POP3
 * has no flags and no folders: the only processed-mail actions are keep and
 * delete, and a quarantined message stays on the server.
 *
 * Sessions: the source connects at open and again lazily on the first call
 * after idle_begin, which QUITs so the server commits the deletions settle
 * asked for (a POP3 server locks the maildrop for as long as a session
 * lasts, so it never lasts over a wait). An error from the session ends it
 * (with QUIT when the connection still works, so asked-for deletions are
 * not forgotten); the next call connects again. A deletion is lost only
 * when the connection breaks before QUIT: the message then stays on the
 * server, already handed, and is never fetched again. */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "transport/mailbox_int.h"
#include "transport/pop3.h"

struct pop3_source {
    struct source base;
    struct pop3_settings conn;          /* strings point at the owned copies below */
    char *host, *user, *ca_file;        /* owned */
    char *secret;                       /* owned: kept to reconnect; wiped when freed */
    const struct source_memory *memory; /* borrowed: lives as long as the source */
    bool delete_done;                   /* the processed-mail action is delete */
    struct pop3_session *sess;          /* owned; NULL between sessions */
    struct pop3_entry *entries;         /* owned: this session's listing; NULL until listed */
    bool *deleted;                      /* owned: DELE sent for entries[i] in this session */
    size_t count, pos;                  /* listed, looked at by next() */
    bool listed;
    struct buf data; /* owned: the current message; limit = max size */
    char *id;        /* owned: "UIDL=<uidl>" of the current message */
};

/* pop3_of - the POP3 source behind SRC */
static struct pop3_source *pop3_of(struct source *src)
{
    return (struct pop3_source *)src;
}

/* end_session - QUIT (committing the deletions asked for; without a
 * working connection pop3_quit fails at once) and close; the listing goes
 * with the session */
static enum mb_status end_session(struct pop3_source *p, struct mb_error *err)
{
    enum mb_status st = MB_OK;
    if (p->sess != NULL)
        st = pop3_quit(p->sess, err);
    pop3_close(&p->sess);
    pop3_entries_free(&p->entries, p->count);
    free(p->deleted);
    p->deleted = NULL;
    p->count = p->pos = 0;
    p->listed = false;
    return st;
}

/* failed - ST (not MB_OK, except a message's MB_PERM) from the session: it
 * is ended, the next call starts another; ST is returned */
static enum mb_status failed(struct pop3_source *p, enum mb_status st)
{
    struct mb_error ignored;
    end_session(p, &ignored);
    return st;
}

/* ensure_listed - a session with its listing, connecting as needed */
static enum mb_status ensure_listed(struct pop3_source *p, struct mb_error *err)
{
    enum mb_status st = MB_OK;
    if (p->sess == NULL)
        st = pop3_connect(&p->conn, &p->sess, err);
    if (st == MB_OK && !p->listed) {
        st = pop3_list(p->sess, &p->entries, &p->count, err);
        if (st == MB_OK) {
            p->deleted = xcalloc(p->count + 1, sizeof(*p->deleted));
            p->pos = 0;
            p->listed = true;
        }
    }
    return st == MB_OK ? st : failed(p, st);
}

/* pop3_src_next - the next listed message not handed before */
static enum mb_status pop3_src_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                                    struct mb_error *err)
{
    struct pop3_source *p = pop3_of(src);
    *got_r = false;
    *msg_r = (struct source_msg){NULL, NULL, 0};
    enum mb_status st = ensure_listed(p, err);
    while (st == MB_OK && p->pos < p->count) {
        const struct pop3_entry *e = &p->entries[p->pos++];
        bool seen = false;
        st = p->memory->item_seen(p->memory->ctx, e->uidl, &seen, err);
        if (st != MB_OK || seen)
            continue;
        free(p->id);
        p->id = xasprintf("UIDL=%s", e->uidl);
        msg_r->id = p->id;
        st = pop3_retrieve(p->sess, e->number, &p->data, err);
        if (st == MB_PERM) /* over the size limit: this message only */
            return st;
        if (st != MB_OK)
            return failed(p, st);
        msg_r->data = (const unsigned char *)p->data.data;
        msg_r->len = p->data.len;
        *got_r = true;
        return MB_OK;
    }
    return st;
}

/* uidl_of - the UIDL in ID ("UIDL=<uidl>"), NULL when ID is not one */
static const char *uidl_of(const char *id)
{
    static const char key[] = "UIDL=";
    if (strncmp(id, key, sizeof(key) - 1) != 0 || id[sizeof(key) - 1] == '\0')
        return NULL;
    return id + sizeof(key) - 1;
}

/* pop3_src_handed - remember the UIDL, so no later session fetches it */
static enum mb_status pop3_src_handed(struct source *src, const struct source_msg *msg,
                                      struct mb_error *err)
{
    struct pop3_source *p = pop3_of(src);
    const char *uidl = uidl_of(msg->id);
    if (uidl == NULL)
        return mb_error_set(err, MB_PERM, "%s: \"%s\" names no message of this mailbox",
                            p->base.name, msg->id);
    return p->memory->item_add(p->memory->ctx, uidl, err);
}

/* settle_uidl - ITEM's UIDL when its where is this source's name, ':' and
 * "UIDL=..." (borrowed from the where; its result MB_OK); else NULL, with its
 * result MB_PERM and why */
static const char *settle_uidl(const struct pop3_source *p, struct source_settle_item *item)
{
    size_t n = strlen(p->base.name);
    const char *where = item->where;
    const char *uidl =
        strncmp(where, p->base.name, n) == 0 && where[n] == ':' ? uidl_of(where + n + 1) : NULL;
    if (uidl == NULL) {
        item->result =
            mb_error_set(&item->error, MB_PERM, "%s: not this mailbox (%s)", where, p->base.name);
        return NULL;
    }
    item->result = MB_OK;
    mb_error_clear(&item->error);
    return uidl;
}

/* dele - DELE every listed message with UIDL in this session (committed at
 * the next QUIT) unless it was already; none listed: deleted already */
static enum mb_status dele(struct pop3_source *p, const char *uidl, struct mb_error *err)
{
    enum mb_status st = ensure_listed(p, err);
    for (size_t i = 0; st == MB_OK && i < p->count; i++) {
        if (strcmp(p->entries[i].uidl, uidl) != 0 || p->deleted[i])
            continue;
        st = pop3_delete(p->sess, p->entries[i].number, err);
        if (st != MB_OK)
            return failed(p, st);
        p->deleted[i] = true;
    }
    return st;
}

/* pop3_src_settle - with the delete action, DELE each DONE item's message
 * (POP3 has no command for several). Everything else leaves the message
 * where it is: a quarantined message too, as POP3 has no folder to move it
 * to. */
static enum mb_status pop3_src_settle(struct source *src, struct source_settle_item *items,
                                      size_t n, struct mb_error *err)
{
    struct pop3_source *p = pop3_of(src);
    enum mb_status st = MB_OK;
    for (size_t i = 0; st == MB_OK && i < n; i++) {
        const char *uidl = settle_uidl(p, &items[i]);
        if (uidl != NULL && items[i].fate == SOURCE_DONE && p->delete_done)
            st = dele(p, uidl, err);
    }
    return st;
}

/* pop3_src_idle_begin - QUIT: the deletions are committed and the maildrop
 * unlocked for the wait; there is nothing to poll */
static enum mb_status pop3_src_idle_begin(struct source *src, int *fd_r, bool *ready_r, struct mb_error *err)
{
    *ready_r = false;
    *fd_r = -1;
    return end_session(pop3_of(src), err);
}

/* pop3_src_idle_end - nothing: the next call connects */
static enum mb_status pop3_src_idle_end(struct source *src, struct mb_error *err)
{
    (void)src;
    (void)err;
    return MB_OK;
}

/* pop3_src_progress - messages looked at of those listed in this session */
static void pop3_src_progress(struct source *src, unsigned long long *done_r,
                              unsigned long long *total_r)
{
    struct pop3_source *p = pop3_of(src);
    *done_r = p->pos;
    *total_r = p->count;
}

/* pop3_src_destroy - QUIT (settle's deletions were asked for after the
 * vendor had the mail), then free everything but base.name */
static void pop3_src_destroy(struct source *src)
{
    struct pop3_source *p = pop3_of(src);
    struct mb_error ignored;
    end_session(p, &ignored);
    buf_free(&p->data);
    free(p->id);
    free(p->host);
    free(p->user);
    free(p->ca_file);
    explicit_bzero(p->secret, strlen(p->secret));
    free(p->secret);
    free(p);
}

static const struct source_ops pop3_source_ops = {
    .name = "pop3",
    .next = pop3_src_next,
    .handed = pop3_src_handed,
    .settle = pop3_src_settle,
    .idle_begin = pop3_src_idle_begin,
    .idle_end = pop3_src_idle_end,
    .progress = pop3_src_progress,
    .destroy = pop3_src_destroy,
};

/* pop3_source_open - check what POP3 can do, connect and log in */
enum mb_status pop3_source_open(const struct mailbox_url *u, const struct mailbox_settings *s,
                                const struct source_memory *memory, struct source **src_r,
                                struct mb_error *err)
{
    static const enum pop3_tls tls[] = {
        [MAILBOX_TLS_IMPLICIT] = POP3_TLS_IMPLICIT,
        [MAILBOX_TLS_STARTTLS] = POP3_TLS_STLS,
        [MAILBOX_TLS_NONE] = POP3_TLS_NONE,
    };
    if (s->auth == MAILBOX_AUTH_XOAUTH2)
        return mb_error_set(err, MB_CONFIG, "POP3 mailbox %s: only password logins (USER/PASS)",
                            u->host);
    if (s->action != MAILBOX_KEEP && s->action != MAILBOX_DELETE)
        return mb_error_set(err, MB_CONFIG,
                            "POP3 mailbox %s: the processed-mail action can only be keep or delete",
                            u->host);
    struct pop3_source *p = xcalloc(1, sizeof(*p));
    p->base.ops = &pop3_source_ops;
    bool v6 = strchr(u->host, ':') != NULL;
    p->base.name =
        xasprintf("pop3://%s@%s%s%s:%u", s->user, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
    p->host = xstrdup(u->host);
    p->user = xstrdup(s->user);
    p->secret = xstrdup(s->secret);
    p->ca_file = xstrdup(s->ca_file);
    pop3_settings_default(&p->conn);
    p->conn.host = p->host;
    p->conn.port = u->port;
    p->conn.tls = tls[u->tls];
    p->conn.tls_verify = s->tls_verify;
    p->conn.ca_file = p->ca_file;
    p->conn.user = p->user;
    p->conn.secret = p->secret;
    p->conn.timeout_ms = s->timeout_ms;
    p->conn.max_message_size = s->max_message_size;
    p->memory = memory;
    p->delete_done = s->action == MAILBOX_DELETE;
    buf_init(&p->data, s->max_message_size);
    enum mb_status st = pop3_connect(&p->conn, &p->sess, err);
    if (st != MB_OK) {
        struct source *src = &p->base;
        source_close(&src);
        return st;
    }
    *src_r = &p->base;
    return MB_OK;
}
