/* mail - the normalized message every module speaks.
 *
 * The mime module fills it from raw bytes; connectors read it; nothing here
 * does I/O. All strings are UTF-8 and NUL-terminated. Identifiers
 * (message_id, in_reply_to, references) carry no angle brackets.
 *
 * Ownership: a struct mb_mail owns every pointer inside it; mail_free(&m)
 * releases it all and sets the caller's pointer to NULL. */
#ifndef MB_CORE_MAIL_H
#define MB_CORE_MAIL_H

#include <stdbool.h>
#include <stddef.h>

struct mb_address {
    char *name;    /* owned: display name, NULL when absent */
    char *address; /* owned: addr-spec, NULL for an empty group */
};

struct mb_address_list {
    struct mb_address *items; /* owned */
    size_t count;
};

struct mb_attachment {
    char *filename;         /* owned: decoded file name, never NULL (a name is made up) */
    char *content_type;     /* owned: lower-case type/subtype, e.g. "image/png" */
    char *content_id;       /* owned: without <>, NULL when absent */
    char *content_location; /* owned: Content-Location, NULL when absent */
    bool inline_ref;        /* referenced from the HTML body (cid: or Content-Location) */
    unsigned char *data;    /* owned: decoded bytes */
    size_t size;
    char sha256[65];        /* lower-case hex of DATA */
};

struct mb_mail {
    char *key;         /* owned: stable key: message_id, else "sha256:<hex of raw bytes>" */
    char *message_id;  /* owned, NULL when absent */
    char *in_reply_to; /* owned, NULL when absent: the first id of In-Reply-To */
    char **references; /* owned: ids in header order */
    size_t reference_count;
    char *subject;     /* owned, "" when absent */
    char *date;        /* owned: UTC "YYYY-MM-DDTHH:MM:SSZ", NULL when absent or unparsable */
    struct mb_address from;     /* name/address NULL when absent */
    struct mb_address sender;   /* Sender:, NULL fields when absent */
    struct mb_address_list reply_to;
    struct mb_address_list to;
    struct mb_address_list cc;
    char *text;        /* owned: plain-text body, "" when the mail has none */
    char *html;        /* owned: HTML body; a text-only mail gets an escaped rendering */
    struct mb_attachment *attachments; /* owned */
    size_t attachment_count;
    char **warnings;   /* owned: what was repaired or could not be decoded */
    size_t warning_count;
    size_t raw_size;   /* bytes of the raw message */
};

/* mail_new - an empty mail (all NULL/0, subject/text/html still NULL) */
struct mb_mail *mail_new(void);
void mail_free(struct mb_mail **mail);

/* mail_add_warning - append a formatted warning; duplicates are dropped */
void mail_add_warning(struct mb_mail *mail, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* mail_add_attachment - append a zeroed attachment and return it (borrowed:
 * valid until the next mail_add_attachment or mail_free) */
struct mb_attachment *mail_add_attachment(struct mb_mail *mail);
/* mail_add_reference - append a copy of ID to references */
void mail_add_reference(struct mb_mail *mail, const char *id);
/* address_list_add - append copies of NAME and ADDRESS (either may be NULL) */
void address_list_add(struct mb_address_list *list, const char *name, const char *address);

/* mail_find_attachment_by_cid - the attachment whose Content-ID is CID
 * (without "cid:" and brackets), or NULL */
struct mb_attachment *mail_find_attachment_by_cid(const struct mb_mail *mail, const char *cid);

#endif
