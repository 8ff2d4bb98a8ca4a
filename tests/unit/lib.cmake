mb_unit_test(test_lib SOURCES test_lib.c LIBS mb_lib)
