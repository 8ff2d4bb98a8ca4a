/* pop3 - a POP3 client session (RFC 1939, STLS from RFC 2595), over libetpan.
 *
 * The low-level steps a POP3 mail source is built from: connect and log in,
 * list the maildrop with each message's UIDL and size, retrieve a message
 * byte for byte into a capped buffer, mark messages deleted, and either
 * QUIT (the server commits the deletions) or just close (it does not).
 *
 * TLS is required unless the settings say POP3_TLS_NONE; the peer
 * certificate is verified after the handshake and before any credential is
 * sent. The secret is never logged nor put in an error text.
 *
 * Error classes: MB_CONFIG for unusable settings; MB_DOWN when the mailbox
 * cannot work until someone acts (credentials refused, certificate not
 * trusted, STLS required but not offered, no UIDL support); MB_TEMP for
 * network failures, time-outs, a server gone mid-session and -ERR replies
 * to RETR, DELE and QUIT; MB_PERM for one message over the size limit.
 * After a network failure the session is dead: every later call fails with
 * MB_TEMP without touching the network, and only pop3_close is useful.
 *
 * A peer that vanishes can raise SIGPIPE on the next write: the process
 * must ignore SIGPIPE (main() does). */
#ifndef MB_TRANSPORT_POP3_H
#define MB_TRANSPORT_POP3_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/error.h"

enum pop3_tls {
    POP3_TLS_IMPLICIT, /* pop3s://: TLS from the first byte (port 995) */
    POP3_TLS_STLS,     /* pop3://: STLS before logging in, refused if not offered (port 110) */
    POP3_TLS_NONE,     /* clear text: for tests and loopback only */
};

struct pop3_settings {
    const char *host; /* borrowed: name or address; the certificate must match it */
    unsigned port;    /* 0 = 995 for POP3_TLS_IMPLICIT, else 110 */
    enum pop3_tls tls;
    bool tls_verify;         /* check the certificate chain and host name (default true) */
    const char *ca_file;     /* borrowed: PEM trust anchors; NULL = the system's */
    const char *user;        /* borrowed */
    const char *secret;      /* borrowed: the password; never logged */
    long timeout_ms;         /* per network step; rounded up to seconds; <= 0 = 30 s */
    size_t max_message_size; /* larger messages fail with MB_PERM; 0 = no limit */
};

/* pop3_settings_default - STLS with verification, 30 s time-out, 50 MiB
 * messages; host, user and secret NULL */
void pop3_settings_default(struct pop3_settings *s);

struct pop3_session;

struct pop3_entry {
    unsigned number; /* message number in this session (1-based) */
    char *uidl;      /* owned: the server's unique id, stable across sessions */
    size_t size;     /* octets as the server counts them (the RETR size) */
};

/* pop3_connect - connect, set up TLS, verify the certificate, log in with
 * USER/PASS. *SESS_R (owned, free with pop3_close) is set only on MB_OK.
 * The settings are copied: nothing in S needs to outlive the call. */
enum mb_status pop3_connect(const struct pop3_settings *s, struct pop3_session **sess_r,
                            struct mb_error *err);

/* pop3_list - the messages of the maildrop not deleted in this session, in
 * message-number order, from LIST and UIDL. *ENTRIES_R is owned by the
 * caller (free with pop3_entries_free); it is NULL when *COUNT_R is 0.
 * MB_DOWN when the server gives no UIDL (messages could not be told apart
 * across sessions). */
enum mb_status pop3_list(struct pop3_session *s, struct pop3_entry **entries_r, size_t *count_r,
                         struct mb_error *err);

/* pop3_entries_free - free COUNT entries and the array, and NULL *ENTRIES */
void pop3_entries_free(struct pop3_entry **entries, size_t count);

/* pop3_retrieve - message NUMBER into OUT, byte for byte as the server
 * sends it (dot-stuffing undone; line ends, NUL and 8-bit bytes kept). OUT is emptied
 * first and its limit set to max_message_size. A message over the limit is
 * MB_PERM (OUT left empty) and the session stays usable: refused at once
 * when pop3_list announced the size, otherwise read to its end and
 * dropped. -ERR (no such message, already deleted) is MB_TEMP. */
enum mb_status pop3_retrieve(struct pop3_session *s, unsigned number, struct buf *out,
                             struct mb_error *err);

/* pop3_delete - mark message NUMBER deleted (DELE). The server removes it
 * only at a successful pop3_quit; pop3_close keeps it. */
enum mb_status pop3_delete(struct pop3_session *s, unsigned number, struct mb_error *err);

/* pop3_quit - QUIT: the server commits the deletions and the connection
 * ends. MB_OK only when the server confirmed; MB_TEMP otherwise (the
 * deletions may not have happened: the messages come back next session).
 * Afterwards only pop3_close is useful. */
enum mb_status pop3_quit(struct pop3_session *s, struct mb_error *err);

/* pop3_close - drop the connection without QUIT, so deletions not yet
 * committed are forgotten by the server, and free the session; NULLs *S.
 * Safe on NULL and after pop3_quit. */
void pop3_close(struct pop3_session **s);

#endif
