# test_pop3: see test_pop3.c (a real Dovecot through tests/integration/dovecot.py,
# so python3 and dovecot, driven by dovecot_fixture.c; a scripted fake server for the rest)
mb_unit_test(test_pop3 SOURCES test_pop3.c dovecot_fixture.c LIBS mb_transport)
set_tests_properties(test_pop3 PROPERTIES TIMEOUT 600)
