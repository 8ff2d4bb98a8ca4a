/* imap - a low-level IMAP client session (over libetpan, which stays
 * inside src/transport): connect with verified TLS and log in, select a
 * folder, fetch messages by UID without setting \Seen, flag, move and
 * delete sets of messages (one command per set of UID ranges), and wait for
 * new mail with IDLE or NOOP. The mail source of source.h and
 * the daemon loop are built on top of it.
 *
 * Errors, classified where understood:
 *   MB_DOWN   the login was refused ("IMAP login to HOST:PORT as USER failed:
 *             [AUTHENTICATIONFAILED] ..."), the server certificate or its
 *             name failed verification ("TLS certificate verification failed
 *             for HOST: ..."), STARTTLS is required but not offered;
 *   MB_TEMP   network errors, timeouts, TLS handshake failures, the server
 *             closed the connection (BYE), a NO to a command on messages
 *             (STORE, COPY, MOVE, EXPUNGE) with the server's text;
 *   MB_CONFIG a folder that does not exist or cannot be selected, a move to a
 *             folder that does not exist ([TRYCREATE]), an invalid flag, an
 *             unreadable CA file, a command on messages (fetch, flag, move,
 *             delete, IDLE) while no folder is selected.
 * After a network error the session is dead: every later call fails with
 * MB_TEMP at once and the caller reconnects (imap_close, imap_connect).
 *
 * Secrets: imap_settings.secret is used during imap_connect only and is
 * never copied into an error text, a log or the session.
 *
 * Writing to a connection the server has closed raises SIGPIPE: the process
 * (main, the test runner) ignores SIGPIPE, as every network daemon does. */
#ifndef MB_TRANSPORT_IMAP_H
#define MB_TRANSPORT_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

enum imap_tls {
    IMAP_TLS_IMPLICIT, /* imaps:// (port 993) */
    IMAP_TLS_STARTTLS, /* imap:// (port 143), STARTTLS required: the default */
    IMAP_TLS_NONE,     /* clear text: only when explicitly configured */
};

enum imap_auth {
    IMAP_AUTH_LOGIN,   /* the LOGIN command */
    IMAP_AUTH_PLAIN,   /* AUTHENTICATE PLAIN (RFC 4616) */
    IMAP_AUTH_XOAUTH2, /* AUTHENTICATE XOAUTH2 with an OAuth2 access token */
};

/* Every string is borrowed for the duration of imap_connect only. */
struct imap_settings {
    const char *host;
    unsigned port; /* 0 = 993 for IMAP_TLS_IMPLICIT, else 143 */
    enum imap_tls tls;
    bool tls_verify;     /* verify the chain and the host name; default true */
    const char *ca_file; /* PEM CAs to trust; NULL = the system store */
    const char *user;
    const char *secret; /* the password, or the access token for XOAUTH2; never logged */
    enum imap_auth auth;
    long timeout_ms;         /* connect and every network wait; whole seconds after
                              * connect (rounded up) */
    size_t max_message_size; /* larger messages are reported, not fetched; 0 = no limit */
    const char *spool_dir;   /* where large messages are spooled; NULL = never spool */
    size_t spool_threshold;  /* messages larger than this are fetched in chunks of at most
                              * this size into an unlinked file in spool_dir and mmap'ed,
                              * never held whole in memory */
};

/* imap_settings_default - STARTTLS, port 0, verification on, system CAs,
 * LOGIN, 60 s timeout, 50 MiB limit, no spool dir, 8 MiB spool threshold;
 * host, user and secret NULL */
void imap_settings_default(struct imap_settings *s);

struct imap_session;

/* imap_connect - connect, establish TLS as S->tls says, verify the server
 * certificate (before any credentials are sent), log in, and learn the
 * capabilities. *SESS_R is owned by the caller (imap_close). */
enum mb_status imap_connect(const struct imap_settings *s, struct imap_session **sess_r,
                            struct mb_error *err);

/* imap_close - LOGOUT, then free, and NULL *SESS; safe on a dead connection
 * (no LOGOUT then), during IDLE, and on NULL */
void imap_close(struct imap_session **sess);

/* imap_has_capability - whether the server announced CAP ("IDLE", "MOVE",
 * "UIDPLUS", "AUTH=PLAIN", ...; case-insensitive) and it was not disabled */
bool imap_has_capability(struct imap_session *s, const char *cap);

/* imap_disable_capability - treat CAP as not offered from now on: works
 * around a server whose extension misbehaves (e.g. MOVE, UIDPLUS, IDLE), and
 * lets tests exercise the fallbacks against a server that has them */
void imap_disable_capability(struct imap_session *s, const char *cap);

struct imap_folder {
    uint32_t uidvalidity;
    uint32_t uidnext; /* 0 when the server did not say */
    uint32_t exists;
};

/* imap_select - select FOLDER (UTF-8 names are sent in modified UTF-7) for
 * reading and writing; MB_CONFIG naming it when the server refuses
 * (typically: it does not exist) */
enum mb_status imap_select(struct imap_session *s, const char *folder, struct imap_folder *info_r,
                           struct mb_error *err);

/* imap_message_fn - one message. DATA (LEN bytes) is borrowed for the call:
 * a message over max_message_size comes with DATA NULL and LEN its size (the
 * caller refuses it). FN may call imap_add_flag, imap_move and imap_delete
 * on the same session (no command is in progress), but not imap_fetch,
 * imap_select or IDLE. A status other than MB_OK stops imap_fetch. */
typedef enum mb_status (*imap_message_fn)(void *ctx, uint32_t uid, const unsigned char *data,
                                          size_t len, struct mb_error *err);

/* imap_fetch - the messages of the selected folder with UID >= FROM_UID,
 * oldest first, at most MAX, each passed to FN exactly once. Never sets
 * \Seen (BODY.PEEK). The UIDs and sizes are listed first (UID FETCH
 * (UID RFC822.SIZE) on a UID window that grows until MAX are found, so a big
 * folder is never listed whole; "N:*" also returns the highest message when
 * its UID < N: it is skipped); then the messages that fit in memory are
 * fetched with UID FETCH (UID RFC822.SIZE BODY.PEEK[]), one round trip per
 * batch of up to 4 MiB, and larger ones are spooled in chunks
 * (BODY.PEEK[]<offset.size>) and mmap'ed. New mail announced meanwhile
 * (EXISTS) is listed too while fewer than MAX were delivered.
 * *NEXT_UID_R is the UID to pass next time: one past the last message FN
 * accepted (or that vanished), FROM_UID when there was none; when FN or the
 * connection fails it points at the message that was not accepted, and the
 * error is FN's or the connection's. */
enum mb_status imap_fetch(struct imap_session *s, uint32_t from_uid, unsigned max,
                          imap_message_fn fn, void *ctx, uint32_t *next_uid_r,
                          struct mb_error *err);

/* Sets of messages. imap_add_flag, imap_move and imap_delete act on the N
 * UIDS (none 0) with one command per IMAP_SET_MAX_RANGES ranges: runs of
 * consecutive UIDs are sent as one range ("5:9"), so pass them ascending
 * (duplicates are fine); any order is still correct, only longer. A longer
 * set is split over several commands to stay well inside the server's
 * command line limit (Dovecot: 64 KB; a range is at most 22 bytes). A UID
 * that no longer exists is not an error (IMAP ignores it). N == 0 sends
 * nothing. After a failure some of the commands may have been applied:
 * each is idempotent, so the caller repeats the whole set. */
#define IMAP_SET_MAX_RANGES 1000

/* imap_add_flag - UID STORE +FLAGS.SILENT: FLAG is a system flag ("\\Seen",
 * "\\Answered", "\\Flagged", "\\Deleted", "\\Draft") or a keyword atom like
 * "$Ticketed" (MB_CONFIG otherwise) */
enum mb_status imap_add_flag(struct imap_session *s, const uint32_t *uids, size_t n,
                             const char *flag, struct mb_error *err);

/* imap_move - UID MOVE to FOLDER when the server has MOVE, else UID COPY +
 * STORE \Deleted + UID EXPUNGE (UIDPLUS), or a plain EXPUNGE, which also
 * removes any other message someone marked \Deleted in the folder */
enum mb_status imap_move(struct imap_session *s, const uint32_t *uids, size_t n, const char *folder,
                         struct mb_error *err);

/* imap_delete - STORE \Deleted, then UID EXPUNGE or EXPUNGE as imap_move */
enum mb_status imap_delete(struct imap_session *s, const uint32_t *uids, size_t n,
                           struct mb_error *err);

/* imap_create_folder - CREATE FOLDER; one that exists already is MB_OK */
enum mb_status imap_create_folder(struct imap_session *s, const char *folder, struct mb_error *err);

/* IDLE: imap_idle_start sends IDLE (MB_CONFIG when the server has no IDLE:
 * poll with imap_noop instead); imap_idle_fd is the socket to poll() for
 * POLLIN (-1 when not idling); imap_idle_done sends DONE and reports whether
 * the server announced new mail (EXISTS, RECENT > 0) since the last report
 * or imap_fetch started. The caller re-issues IDLE before 29 minutes. No
 * other command may be sent between start and done. */
enum mb_status imap_idle_start(struct imap_session *s, struct mb_error *err);
int imap_idle_fd(struct imap_session *s);
/* imap_idle_buffered - while idling: the server already said more than the
 * IDLE continuation and it sits read in our buffer (mail that came before
 * the IDLE is announced right after "+ idling", often in the same packet),
 * so poll() on imap_idle_fd would not show it: end the IDLE at once */
bool imap_idle_buffered(struct imap_session *s);
enum mb_status imap_idle_done(struct imap_session *s, bool *new_mail_r, struct mb_error *err);

/* imap_noop - NOOP; *NEW_MAIL_R as imap_idle_done */
/* imap_mail_pending - the server announced new mail (EXISTS/RECENT) in the
 * answer to some command since the last imap_noop or imap_idle_done: check
 * before starting an IDLE, which would not hear of it again */
bool imap_mail_pending(struct imap_session *s);
enum mb_status imap_noop(struct imap_session *s, bool *new_mail_r, struct mb_error *err);

#endif
