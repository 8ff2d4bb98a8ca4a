/* state - message states (see state.h). */
#include "core/state.h"

#include <string.h>

static const char *const state_names[MSG_STATE_COUNT] = {"queued", "posting", "done", "retry",
                                                         "quarantine"};

const char *msg_state_name(enum msg_state state)
{
    return (unsigned)state < MSG_STATE_COUNT ? state_names[state] : "unknown";
}

int msg_state_parse(const char *name)
{
    for (int i = 0; i < MSG_STATE_COUNT; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

enum msg_state msg_state_after(enum mb_status outcome)
{
    switch (outcome) {
    case MB_OK:
        return MSG_DONE;
    case MB_TEMP:
        return MSG_RETRY;
    case MB_PERM:
        return MSG_QUARANTINE;
    case MB_DOWN:
    case MB_CONFIG:
        break;
    }
    return MSG_QUEUED;
}
