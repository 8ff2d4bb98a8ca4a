/* imap_int - private to the IMAP client (imap.c: connection, login and
 * commands; imap_fetch.c: listing, batches and spooling). Nothing outside
 * src/transport includes this; the public contract is imap.h. */
#ifndef MB_TRANSPORT_IMAP_INT_H
#define MB_TRANSPORT_IMAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libetpan/libetpan.h>

#include "lib/error.h"
#include "transport/imap.h"

/* Bytes of message bodies fetched in one UID FETCH round trip (a single
 * larger message still goes alone), and the largest spool chunk. */
#define IMAP_BATCH_BYTES ((size_t)4 << 20)

struct imap_session {
    mailimap *imap;          /* owned */
    char *where;             /* owned: "host:port", for error texts */
    size_t max_message_size; /* 0 = no limit */
    char *spool_dir;         /* owned; NULL = never spool */
    size_t spool_threshold;
    char **disabled; /* owned: capabilities treated as absent */
    size_t n_disabled;
    uint32_t uidnext; /* of the selected folder, raised by what fetches saw; 0 = unknown */
    bool dead;        /* the connection is gone: no more commands, no LOGOUT */
    bool idling;      /* between imap_idle_start and imap_idle_done */
    bool new_mail;    /* EXISTS or RECENT > 0 seen and not reported yet */
};

/* imap_need_folder - MB_TEMP when an earlier network error killed the
 * session, MB_CONFIG when no folder is selected (never, or the last SELECT
 * failed) */
enum mb_status imap_need_folder(struct imap_session *s, struct mb_error *err);

/* imap_failed - the error for libetpan's result R of command WHAT: the
 * connection lost, timed out, unparsable or closed by the server (BYE) is
 * MB_TEMP and kills the session; a refused command (NO, BAD) is MB_TEMP
 * with the server's text. Callers classify refusals they understand better
 * before calling this. */
enum mb_status imap_failed(struct imap_session *s, int r, const char *what, struct mb_error *err);

/* imap_note_mail - after each command: remember EXISTS / RECENT > 0
 * announcements in s->new_mail, and clear libetpan's markers */
void imap_note_mail(struct imap_session *s);

#endif
