mb_unit_test(test_core SOURCES test_core.c LIBS mb_core)
