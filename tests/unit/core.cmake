# test_core: see test_core.c
