/* source - one vtable for every place mail comes from.
 *
 * Maildir folders, mbox archives, single .eml files and directories of
 * them, standard input (an MTA pipe), and mailboxes: IMAP and POP3 (LMTP
 * later). The pipeline pulls messages with next(); once a message is
 * committed to our store it calls handed(), where a mailbox records its
 * progress (UIDVALIDITY + UID, POP3 UIDLs) through a struct source_memory.
 * The processed-mail action (flag, keyword, move, delete) is a separate,
 * later step, settle(), driven by the store: only when the vendor has the
 * message (or it was quarantined) is it applied, by its location string,
 * possibly long after and in another process, to a whole batch of messages
 * at once (IMAP sends one command per action for the lot). Archives do none
 * of this.
 *
 * Ownership: source_open_* return a source freed with source_close(&src).
 * The bytes in a struct source_msg are borrowed from the source and valid
 * until the next call to next() or close(). */
#ifndef MB_TRANSPORT_SOURCE_H
#define MB_TRANSPORT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

struct source_settings {
    size_t max_message_size; /* larger messages fail with MB_PERM; default 50 MiB */
};

void source_settings_default(struct source_settings *s);

/* What became of a message, for a mailbox's processed-mail action. */
enum source_fate {
    SOURCE_DONE,        /* the vendor has it: flag, keyword, move or delete as configured */
    SOURCE_QUARANTINED, /* it failed for good: move it to the quarantine folder */
};

/* One message to settle, and what became of it. */
struct source_settle_item {
    const char *where; /* borrowed: a source_where() string of this source */
    enum source_fate fate;
    enum mb_status result; /* set by settle: MB_OK applied (or the message was gone already);
                              MB_PERM not this mailbox's (renumbered, another source):
                              nothing done */
    struct mb_error error; /* set by settle when result is MB_PERM: why */
};

struct source_msg {
    const char *id;            /* borrowed: where in the source, e.g. "cur/17:2,S", "@4096" */
    const unsigned char *data; /* borrowed */
    size_t len;
};

struct source;

struct source_ops {
    const char *name; /* "maildir", "mbox", "file", "dir", "stdin" */
    /* next - the next message: MB_OK with *GOT_R true, or *GOT_R false at the
     * end. A message over the size limit is MB_PERM for that message only:
     * MSG_R->id names it and the following call continues after it. */
    enum mb_status (*next)(struct source *src, struct source_msg *msg_r, bool *got_r,
                           struct mb_error *err);
    /* handed - MSG is committed to our store: record progress so it is not
     * fetched again (a crash before this only means a harmless re-fetch: the
     * store recognizes the key). NULL for archives. */
    enum mb_status (*handed)(struct source *src, const struct source_msg *msg, struct mb_error *err);
    /* settle - each of the N ITEMS met its fate: apply the processed-mail
     * action, or move it to the quarantine folder, and set its result:
     * MB_PERM when its where is no longer this mailbox's (a UIDVALIDITY
     * change, another source): nothing to do there; MB_OK for a message
     * already gone (moved or deleted before a crash let us record it).
     * Returns MB_OK when every item has its result; anything else (MB_TEMP
     * network or a refused command, MB_DOWN, MB_CONFIG) means the mailbox is
     * away or misconfigured and no item's result may be trusted: the caller
     * retries the whole batch later (every action is idempotent). NULL for
     * archives. */
    enum mb_status (*settle)(struct source *src, struct source_settle_item *items, size_t n,
                             struct mb_error *err);
    /* idle_begin - about to wait for new mail: *FD_R is a descriptor to
     * poll() for input (IMAP IDLE), or -1 to wait for the poll interval
     * (POP3 commits its deletions and disconnects here); *READY_R true means
     * new mail is known to be there already: do not wait at all. idle_end -
     * the wait is over. NULL for archives. */
    enum mb_status (*idle_begin)(struct source *src, int *fd_r, bool *ready_r, struct mb_error *err);
    enum mb_status (*idle_end)(struct source *src, struct mb_error *err);
    /* progress - how far: *DONE_R of *TOTAL_R units (bytes or messages; total
     * 0 when unknown) */
    void (*progress)(struct source *src, unsigned long long *done_r,
                     unsigned long long *total_r);
    void (*destroy)(struct source *src);
};

/* The generic part every source struct starts with. */
struct source {
    const struct source_ops *ops; /* borrowed: static table */
    char *name;                   /* owned: "maildir:/path", for logs and the store */
};

/* Where a mailbox keeps its progress across restarts; the application
 * backs it with the store. All borrowed: live as long as the source. */
struct source_memory {
    void *ctx;
    enum mb_status (*checkpoint_get)(void *ctx, const char *folder, uint32_t *uidvalidity_r,
                                     uint32_t *next_uid_r, struct mb_error *err);
    enum mb_status (*checkpoint_set)(void *ctx, const char *folder, uint32_t uidvalidity,
                                     uint32_t next_uid, struct mb_error *err);
    enum mb_status (*item_seen)(void *ctx, const char *item, bool *seen_r, struct mb_error *err);
    enum mb_status (*item_add)(void *ctx, const char *item, struct mb_error *err);
};

enum mailbox_action {
    MAILBOX_KEEP,    /* leave it as it is (progress is tracked by UID/UIDL anyway) */
    MAILBOX_SEEN,    /* IMAP: set \Seen */
    MAILBOX_KEYWORD, /* IMAP: set the keyword action_arg */
    MAILBOX_MOVE,    /* IMAP: move to folder action_arg (COPY + EXPUNGE without MOVE) */
    MAILBOX_DELETE,  /* IMAP: delete and expunge; POP3: DELE, committed at QUIT */
};

enum mailbox_auth { MAILBOX_AUTH_LOGIN, MAILBOX_AUTH_PLAIN, MAILBOX_AUTH_XOAUTH2 };

struct mailbox_settings {
    const char *url;       /* imaps://host[:port]/FOLDER, imap://host[:port]/FOLDER
                              (STARTTLS), pop3s://host[:port], pop3://host[:port] (STLS) */
    const char *user;
    const char *secret;    /* password or OAuth2 access token; never logged */
    enum mailbox_auth auth;
    bool starttls;         /* imap:// and pop3:// require STARTTLS/STLS (default true);
                              false only for a trusted test network */
    bool tls_verify;       /* default true */
    const char *ca_file;   /* NULL: the system store */
    enum mailbox_action action;
    const char *action_arg;        /* keyword or folder for KEYWORD and MOVE */
    const char *quarantine_folder; /* IMAP; NULL: a quarantined message stays where it is */
    unsigned batch_size;           /* messages per FETCH round trip; default 100 */
    long timeout_ms;               /* network timeout; default 60 s */
    bool idle;                     /* use IMAP IDLE when offered; default true */
    size_t max_message_size;
    const char *spool_dir;         /* large messages are spooled here, not held in memory */
};

void mailbox_settings_default(struct mailbox_settings *s);

/* mailbox_parse_action - "keep", "seen", "keyword:NAME", "move:FOLDER",
 * "delete" into S->action and S->action_arg (borrowed from TEXT); false
 * when TEXT is none of those. */
bool mailbox_parse_action(const char *text, struct mailbox_settings *s);

/* source_open_mailbox - connect, authenticate and select: errors here are
 * the ones `mailbridge check` reports (MB_DOWN for credentials and TLS,
 * MB_TEMP for the network, MB_CONFIG for a bad URL or folder). MEMORY is
 * borrowed for the life of the source. */
enum mb_status source_open_mailbox(const struct mailbox_settings *s, const struct source_memory *memory,
                                   struct source **src_r, struct mb_error *err);

/* source_open_path - PATH as a Maildir (a directory with cur/ and new/), a
 * directory of message files, an mbox (a file starting with "From "), or
 * one message file. */
enum mb_status source_open_path(const char *path, const struct source_settings *s,
                                struct source **src_r, struct mb_error *err);
/* source_open_fd - one message read from FD (standard input of `deliver`) */
enum mb_status source_open_fd(int fd, const struct source_settings *s, struct source **src_r,
                              struct mb_error *err);

enum mb_status source_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                           struct mb_error *err);
/* source_handed, source_settle - as the ops; MB_OK at once for archives
 * (source_settle sets every item's result to MB_OK there) */
enum mb_status source_handed(struct source *src, const struct source_msg *msg, struct mb_error *err);
enum mb_status source_settle(struct source *src, struct source_settle_item *items, size_t n,
                             struct mb_error *err);
/* source_is_mailbox - the source has a processed-mail action (IMAP, POP3) */
bool source_is_mailbox(const struct source *src);
void source_progress(struct source *src, unsigned long long *done_r, unsigned long long *total_r);
/* source_where - where MSG is, for logs and the store, owned by the caller:
 * "maildir:/srv/Maildir:new/17.M1", "mbox:/srv/a.mbox@4096", "file:/srv/m.eml",
 * "stdin" (an id that is already a full path is not repeated) */
char *source_where(const struct source *src, const struct source_msg *msg);
void source_close(struct source **src);

#endif
