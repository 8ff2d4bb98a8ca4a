/* backoff - when to try a failed message again.
 *
 * Exponential: BASE * 2^(attempt-1), capped at MAX, and never sooner than
 * the peer asked for with Retry-After. No jitter: retries are per message
 * and already spread by their arrival times. */
#ifndef MB_LIB_BACKOFF_H
#define MB_LIB_BACKOFF_H

struct backoff {
    long long base_ms; /* delay after the first failure */
    long long max_ms;  /* cap */
};

/* backoff_delay_ms - delay before attempt ATTEMPT+1 after ATTEMPT failures
 * (ATTEMPT >= 1); RETRY_AFTER_MS < 0 means the peer said nothing. */
long long backoff_delay_ms(const struct backoff *b, unsigned attempt, long long retry_after_ms);

#endif
