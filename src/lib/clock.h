/* clock - wall-clock time in epoch milliseconds, the unit of every
 * timestamp in the store and of every retry schedule. */
#ifndef MB_LIB_CLOCK_H
#define MB_LIB_CLOCK_H

/* clock_now_ms - CLOCK_REALTIME in milliseconds since the epoch */
long long clock_now_ms(void);

#endif
