/* mail_json - the normalized mail as one line of JSON.
 *
 * This is the output of `mailbridge parse` and the schema documented in the
 * README; json-c stays inside the .c file. */
#ifndef MB_CONNECTORS_MAIL_JSON_H
#define MB_CONNECTORS_MAIL_JSON_H

#include "core/mail.h"

/* mail_json_encode - MAIL as one JSON object without a trailing newline,
 * owned by the caller; SOURCE says where it came from (file:PATH,
 * maildir:DIR:new/NAME, mbox:PATH@OFFSET; NULL gives null):
 *   {"source":S, "key":S, "message_id":S|null, "in_reply_to":S|null,
 *    "references":[S...], "subject":S, "date":S|null, "from":ADDR|null,
 *    "sender":ADDR|null, "reply_to":[ADDR...], "to":[ADDR...], "cc":[ADDR...],
 *    "text":S, "html":S,
 *    "attachments":[{"filename":S, "content_type":S, "size":N, "sha256":S,
 *                    "content_id":S|null, "content_location":S|null, "inline":B}],
 *    "warnings":[S...], "size":N}
 * where ADDR is {"name":S|null, "address":S|null}; from and sender are null
 * when both their name and address are absent, and size is the raw size. */
char *mail_json_encode(const struct mb_mail *mail, const char *source);

/* mail_json_error - the line for a message that could not be handled:
 * {"source":S|null, "error":S, "status":S}, owned by the caller */
char *mail_json_error(const char *source, const char *status, const char *error);

#endif
