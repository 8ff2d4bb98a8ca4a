/* unit - CUnit runner (see unit.h). */
#include "unit.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

int unit_run(const struct unit_suite *suites)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (const struct unit_suite *s = suites; s->name != NULL; s++) {
        CU_pSuite suite = CU_add_suite(s->name, s->setup, s->teardown);
        if (suite == NULL)
            return 2;
        for (const struct unit_test *t = s->tests; t->name != NULL; t++)
            if (CU_add_test(suite, t->name, t->fn) == NULL)
                return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

const char *unit_path(const char *rel)
{
    static char path[4096];
    const char *top = getenv("MB_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/%s", top ? top : ".", rel);
    return path;
}
