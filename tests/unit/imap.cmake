# test_imap: see test_imap.c (against a real Dovecot from tests/integration/dovecot.py,
# started and driven by dovecot_fixture.c)
mb_unit_test(test_imap SOURCES test_imap.c dovecot_fixture.c LIBS mb_transport)
set_tests_properties(test_imap PROPERTIES TIMEOUT 600)
