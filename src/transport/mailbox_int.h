/* mailbox_int - private to src/transport: the mailbox URL as mailbox.c
 * parses it, and the IMAP and POP3 sources source_open_mailbox dispatches
 * to. Nothing outside src/transport (and its tests) includes this; the
 * public contract is source.h. */
#ifndef MB_TRANSPORT_MAILBOX_INT_H
#define MB_TRANSPORT_MAILBOX_INT_H

#include <stdbool.h>

#include "lib/error.h"
#include "transport/source.h"

enum mailbox_proto { MAILBOX_IMAP, MAILBOX_POP3 };

enum mailbox_tls {
    MAILBOX_TLS_IMPLICIT, /* imaps://, pop3s:// */
    MAILBOX_TLS_STARTTLS, /* imap://, pop3:// (STARTTLS, STLS) */
    MAILBOX_TLS_NONE,     /* imap://, pop3:// with starttls off */
};

struct mailbox_url {
    enum mailbox_proto proto;
    enum mailbox_tls tls;
    char *host;    /* owned: a name or an address, without IPv6 brackets */
    unsigned port; /* the URL's, else 993, 143, 995 or 110 */
    char *folder;  /* owned: IMAP: the UTF-8 folder name (default "INBOX"); POP3: NULL */
};

/* mailbox_url_parse - URL (see mailbox_settings.url) into *U, owned by the
 * caller (mailbox_url_free). STARTTLS false makes imap:// and pop3:// clear
 * text. The folder is %-decoded; a name that is valid modified UTF-7 (RFC
 * 3501, as IMAP URLs write it) is decoded to UTF-8, so the server gets it as
 * written; any other name is taken as UTF-8. MB_CONFIG naming the URL (user
 * information in it left out) when it is none of the four forms. */
enum mb_status mailbox_url_parse(const char *url, bool starttls, struct mailbox_url *u,
                                 struct mb_error *err);
/* mailbox_url_free - free the strings of U and zero it */
void mailbox_url_free(struct mailbox_url *u);

/* The two kinds of mailbox. Each connects and logs in (IMAP also selects
 * the folder) before returning; the settings are copied as needed, MEMORY is
 * borrowed for the life of the source. Errors are source_open_mailbox's. */
enum mb_status imap_source_open(const struct mailbox_url *u, const struct mailbox_settings *s,
                                const struct source_memory *memory, struct source **src_r,
                                struct mb_error *err);
enum mb_status pop3_source_open(const struct mailbox_url *u, const struct mailbox_settings *s,
                                const struct source_memory *memory, struct source **src_r,
                                struct mb_error *err);

#endif
