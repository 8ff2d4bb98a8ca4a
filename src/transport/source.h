/* source - one vtable for every place mail comes from.
 *
 * Maildir folders, mbox archives, single .eml files and directories of
 * them, and standard input (an MTA pipe) now; IMAP, POP3 and LMTP later.
 * The pipeline pulls messages with next(), and calls ack() only after the
 * message was posted to the vendor or committed to our store: that is when
 * a source may flag, move or delete it (archives do nothing).
 *
 * Ownership: source_open_* return a source freed with source_close(&src).
 * The bytes in a struct source_msg are borrowed from the source and valid
 * until the next call to next() or close(). */
#ifndef MB_TRANSPORT_SOURCE_H
#define MB_TRANSPORT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

struct source_settings {
    size_t max_message_size; /* larger messages fail with MB_PERM; default 50 MiB */
};

void source_settings_default(struct source_settings *s);

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
    /* ack - MSG is safe with us or the vendor: apply the processed-mail
     * action. NULL when the source does nothing (archives). */
    enum mb_status (*ack)(struct source *src, const struct source_msg *msg, struct mb_error *err);
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
enum mb_status source_ack(struct source *src, const struct source_msg *msg, struct mb_error *err);
void source_progress(struct source *src, unsigned long long *done_r, unsigned long long *total_r);
/* source_where - where MSG is, for logs and the store, owned by the caller:
 * "maildir:/srv/Maildir:new/17.M1", "mbox:/srv/a.mbox@4096", "file:/srv/m.eml",
 * "stdin" (an id that is already a full path is not repeated) */
char *source_where(const struct source *src, const struct source_msg *msg);
void source_close(struct source **src);

#endif
