/* ticket - what the pipeline asks a connector to post, and what comes back.
 *
 * The request only borrows: the mail, the threading decision and the
 * customer id all belong to the pipeline for the duration of one post. The
 * result owns its strings; release with ticket_result_clear(). */
#ifndef MB_CORE_TICKET_H
#define MB_CORE_TICKET_H

#include <stdbool.h>

#include "core/mail.h"
#include "core/thread.h"

struct ticket_request {
    const struct mb_mail *mail;            /* borrowed */
    const struct thread_decision *thread;  /* borrowed: NEW or FOLLOWUP with vendor ids */
    const char *key;                       /* borrowed: the mail's stable key */
};

struct ticket_result {
    char *ticket_id;       /* owned: the ticket/case the message landed in */
    char *message_id;      /* owned: the vendor's id of the posted message */
    char *conversation_id; /* owned: may be NULL */
    long http_status;      /* last HTTP status seen, 0 if none */
    char *vendor_answer;   /* owned: the vendor's error body (trimmed), for the log and quarantine */
    long long retry_after_ms; /* >= 0 when the vendor said when to come back, else -1 */
    bool unanswered;       /* sent, but no answer came (reset, timeout): the vendor may
                              have it, so ask (find_by_key) before posting again */
};

void ticket_result_init(struct ticket_result *res);
void ticket_result_clear(struct ticket_result *res);

#endif
