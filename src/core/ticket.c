/* ticket - connector request and result (see ticket.h). */
#include "core/ticket.h"

#include <stdlib.h>
#include <string.h>

void ticket_result_init(struct ticket_result *res)
{
    memset(res, 0, sizeof(*res));
    res->retry_after_ms = -1;
}

void ticket_result_clear(struct ticket_result *res)
{
    free(res->ticket_id);
    free(res->message_id);
    free(res->conversation_id);
    free(res->vendor_answer);
    ticket_result_init(res);
}
