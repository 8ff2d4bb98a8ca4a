# test_mailbox: see test_mailbox.c (the IMAP and POP3 mail sources against a
# real Dovecot from tests/integration/dovecot.py through dovecot_fixture.c, so python3
# and dovecot)
mb_unit_test(test_mailbox SOURCES test_mailbox.c dovecot_fixture.c LIBS mb_transport)
set_tests_properties(test_mailbox PROPERTIES TIMEOUT 600)
