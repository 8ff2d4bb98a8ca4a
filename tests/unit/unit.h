/* unit - a thin runner over CUnit's basic interface.
 *
 * Each test binary lists its suites as a NULL-terminated array of struct
 * unit_suite and calls unit_run() from main(); the exit status is the number
 * of failures (capped at 1), so ctest sees a failing binary. */
#ifndef MB_TESTS_UNIT_H
#define MB_TESTS_UNIT_H

#include <CUnit/CUnit.h>

struct unit_test {
    const char *name;
    void (*fn)(void);
};

struct unit_suite {
    const char *name;
    const struct unit_test *tests; /* terminated by {NULL, NULL} */
    int (*setup)(void);            /* may be NULL */
    int (*teardown)(void);         /* may be NULL */
};

int unit_run(const struct unit_suite *suites);

/* unit_path - MB_SOURCE_DIR (or ".") joined with REL, in a static buffer
 * (tests are single-threaded) */
const char *unit_path(const char *rel);

#endif
