/* backoff - exponential retry delays (see backoff.h). */
#include "lib/backoff.h"

long long backoff_delay_ms(const struct backoff *b, unsigned attempt, long long retry_after_ms)
{
    long long delay = b->base_ms;
    for (unsigned i = 1; i < attempt && delay < b->max_ms; i++)
        delay *= 2;
    if (delay > b->max_ms)
        delay = b->max_ms;
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    return delay;
}
