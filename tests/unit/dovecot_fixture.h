/* dovecot_fixture - a private Dovecot for the IMAP, POP3 and mailbox tests.
 *
 * Runs `python3 tests/integration/dovecot.py serve` in a child process, reads
 * the JSON state file it writes once the server is up, and drives the
 * harness's append, messages and reset-uidvalidity commands against it.
 * Shared by test_imap.c, test_pop3.c and test_mailbox.c. Nothing here asserts:
 * failures come back as 0, -1 or NULL and each test decides what they mean. */
#ifndef MB_TESTS_DOVECOT_FIXTURE_H
#define MB_TESTS_DOVECOT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A server run by the harness, as its state file describes it. */
struct dovecot {
    pid_t pid;      /* the `serve` process; 0 when not running */
    char dir[64];   /* owned temp directory: the state file, the message to append */
    char state[96]; /* the harness's JSON state file, in DIR */
    char host[64];
    unsigned imap_port, imaps_port, pop3_port, pop3s_port;
    char ca_file[512];     /* the CA that signed the server's certificate */
    char bad_ca_file[512]; /* a CA that did not */
    char log_file[512];    /* the server log */
    char token[512];       /* XOAUTH2 token of "support"; empty when there is none */
    char mail_dir[512];    /* the server's mail: USER/Maildir below it */
};

/* dovecot_start - run `dovecot.py serve` (for USERS, "user:password,...";
 * NULL for the harness's support:secret,sales:secret2) in a temp directory
 * named after NAME, and wait for its state file (120 s only guard against a
 * hang). False, with a line on stderr and nothing left behind, when the
 * server does not come up. */
bool dovecot_start(struct dovecot *d, const char *name, const char *users);
/* dovecot_stop - SIGTERM the harness (it stops Dovecot and removes its own
 * files); what D says about the server stays, for tests that go on to find
 * it gone */
void dovecot_stop(struct dovecot *d);
/* dovecot_free - stop if still running, remove the temp directory, zero D */
void dovecot_free(struct dovecot *d);

/* dovecot_append - APPEND LEN bytes of RAW to USER's FOLDER (created if
 * missing) with FLAGS (space-separated, e.g. "\\Deleted"; may be NULL);
 * the new UID, 0 on failure */
uint32_t dovecot_append(const struct dovecot *d, const char *user, const char *folder,
                        const char *raw, size_t len, const char *flags);
/* dovecot_messages - USER's FOLDER as the harness lists it, JSON
 * [{"uid", "flags", "size", "sha256"}, ...] (owned); NULL on failure (the
 * folder does not exist, say) */
char *dovecot_messages(const struct dovecot *d, const char *user, const char *folder);
/* dovecot_message_object - the {...} of UID in LIST (from dovecot_messages,
 * may be NULL) copied into OUT; false when it is not there */
bool dovecot_message_object(const char *list, uint32_t uid, char *out, size_t size);
/* dovecot_has_flag - 1 when UID in USER's FOLDER carries FLAG_JSON (the flag
 * as the JSON text writes it, e.g. "\\\\Seen"), 0 when not, -1 when the
 * message is not there */
int dovecot_has_flag(const struct dovecot *d, const char *user, const char *folder, uint32_t uid,
                     const char *flag_json);
/* dovecot_count - how many messages USER's FOLDER holds; -1 when it does
 * not exist (quietly: tests expect that) or the harness fails */
long dovecot_count(const struct dovecot *d, const char *user, const char *folder);
/* dovecot_has_size - whether USER's FOLDER holds a message of SIZE bytes */
bool dovecot_has_size(const struct dovecot *d, const char *user, const char *folder, size_t size);
/* dovecot_reset_uidvalidity - give USER's FOLDER a new UIDVALIDITY and new
 * UIDs; the new UIDVALIDITY, 0 on failure */
uint32_t dovecot_reset_uidvalidity(const struct dovecot *d, const char *user, const char *folder);

/* dovecot_log_size - the current length of the server log, -1 if unknown */
long dovecot_log_size(const struct dovecot *d);
/* dovecot_log_since - the server log from byte OFFSET on (owned, never
 * NULL), once it holds COUNT occurrences of WAIT_FOR: Dovecot logs a
 * disconnect a moment after it happens (10 s only guard against a hang) */
char *dovecot_log_since(const struct dovecot *d, long offset, const char *wait_for, int count);

/* dovecot_make_message - a message of about SIZE bytes (owned, its length
 * in *LEN_R) with CRLF lines, SUBJECT in its header and Message-ID, and a
 * body that changes along its length */
char *dovecot_make_message(const char *subject, size_t size, size_t *len_r);
/* dovecot_fill - append COUNT distinct messages of about SIZE bytes to
 * USER's FOLDER: their texts into RAWS (owned by the caller), lengths into
 * LENS, UIDs into UIDS (0 where the append failed) */
void dovecot_fill(const struct dovecot *d, const char *user, const char *folder, unsigned count,
                  size_t size, char **raws, size_t *lens, uint32_t *uids);

/* dovecot_drop - COUNT small distinct messages ("Subject: SUBJECT N") written
 * straight into USER's FOLDER (a name without hierarchy, existing: an append
 * creates it) as Maildir files, the way a local delivery agent does it:
 * thousands in a moment, where an append costs a process each. The server
 * numbers them, in some order, when a session next looks at the folder.
 * False (and why on stderr) when a file cannot be written. */
bool dovecot_drop(const struct dovecot *d, const char *user, const char *folder,
                  const char *subject, unsigned count);

/* dovecot_read_file - the whole file PATH (owned), NULL when it cannot be read */
char *dovecot_read_file(const char *path);

#endif
