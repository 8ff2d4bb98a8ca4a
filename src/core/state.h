/* state - the life of one message in our store.
 *
 *   QUEUED --post--> POSTING --2xx--------> DONE
 *                       |------temp------> RETRY --due--> POSTING
 *                       |------perm------> QUARANTINE --retry cmd--> QUEUED
 *                       '------down------> QUEUED (the route stops; not an attempt)
 *
 * POSTING is written before the HTTP request (intent before side effect):
 * a row found in POSTING at start-up had its answer lost and is reconciled
 * with the vendor before it is sent again. */
#ifndef MB_CORE_STATE_H
#define MB_CORE_STATE_H

#include "lib/error.h"

enum msg_state {
    MSG_QUEUED = 0,
    MSG_POSTING,
    MSG_DONE,
    MSG_RETRY,
    MSG_QUARANTINE,
};
#define MSG_STATE_COUNT 5

/* msg_state_name - "queued", "posting", "done", "retry", "quarantine" */
const char *msg_state_name(enum msg_state state);
/* msg_state_parse - the state named NAME, or -1 */
int msg_state_parse(const char *name);
/* msg_state_after - the state a post's outcome leads to */
enum msg_state msg_state_after(enum mb_status outcome);

#endif
