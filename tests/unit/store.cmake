mb_unit_test(test_store SOURCES test_store.c LIBS mb_store)
