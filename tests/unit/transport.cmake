# test_transport: see test_transport.c
mb_unit_test(test_transport SOURCES test_transport.c LIBS mb_transport)
