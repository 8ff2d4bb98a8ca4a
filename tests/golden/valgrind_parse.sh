#!/bin/sh
# valgrind_parse - the core parse path (mbox/Maildir/file sources, MIME
# parsing, charset and transfer decoding, HTML work, JSON output) under
# valgrind over a representative subset of fixtures/corpora: no invalid
# reads/writes, no use of uninitialized memory, no definite leaks.
#
# Needs a build WITHOUT sanitizers (ASan and valgrind cannot share a
# process); CMake only registers it then. Exit 77 (skipped) when valgrind is
# absent. Every message listed parses (mailbridge exits 0), so exit 1 means
# a valgrind error or a parse failure: the log says which. Known false
# positives of glibc's dynamic loader are suppressed (valgrind.supp).
# Environment: MAILBRIDGE (the binary), MB_SOURCE_DIR (the repository top).
set -u

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind is not installed: skipped"
    exit 77
fi
top=${MB_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MAILBRIDGE:-$top/build/mailbridge}
c=$top/fixtures/corpora
if [ ! -x "$bin" ]; then
    echo "no binary at $bin"
    exit 1
fi

# about 30 messages, one or two of each kind the parser must handle
set -- \
    "$c/mailcore2/mail/mbox/jwz/1" \
    "$c/mailcore2/mail/mbox/jwz/3" \
    "$c/mailcore2/mail/mbox/jwz/75" \
    "$c/mailcore2/mail/messages/headers.txt" \
    "$c/mailcore2/mail/messages/multipart-digest.txt" \
    "$c/stalwart/mail/rfc/000.eml" \
    "$c/stalwart/mail/rfc/002.eml" \
    "$c/stalwart/mail/rfc/007.eml" \
    "$c/stalwart/mail/legacy/006.eml" \
    "$c/stalwart/mail/legacy/030.eml" \
    "$c/stalwart/mail/legacy/047.eml" \
    "$c/stalwart-dovecot/mail/malformed/010.eml" \
    "$c/stalwart-dovecot/mail/thirdparty/013.eml" \
    "$c/stalwart-maildir/mail" \
    "$c/mime4j/mail/testmsgs/example.msg" \
    "$c/mime4j/mail/testmsgs/qp-body.msg" \
    "$c/mime4j/mail/testmsgs/base64encoded-rfc822message.msg" \
    "$c/mime4j/mail/mbox/mbox.rlug" \
    "$c/mimekit/mail/messages/body.5.txt" \
    "$c/mimekit/mail/messages/multipart-related-mhtml.txt" \
    "$c/mimekit/mail/messages/delivery-status.txt" \
    "$c/mimekit/mail/messages/japanese.txt" \
    "$c/enmime/mail/mail/html-mime-inline.raw" \
    "$c/enmime/mail/low-quality/bad-header-wrap.raw" \
    "$c/enmime/mail/parts/chardet-success-big-5.raw" \
    "$c/flanker/mail/enclosed.eml" \
    "$c/flanker/mail/apache-message-news-mime.eml" \
    "$c/python-test_email/mail/msg_07.txt" \
    "$c/ruby-mail/mail/attachment_emails/attachment_with_encoded_name.eml" \
    "$c/ruby-mail/mail/multi_charset/japanese_attachment_long_name.eml" \
    "$c/nodemailer-mailparser/mail/nested.eml"

# GLib: plain malloc so valgrind sees every block. valgrind.supp holds the
# known false positives of glibc's loader (each explained there); none of
# them has a frame of ours.
G_SLICE=always-malloc G_DEBUG=gc-friendly \
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --suppressions="$top/tests/golden/valgrind.supp" \
    "$bin" parse "$@" >/dev/null
rc=$?
echo "valgrind_parse: $# inputs, exit $rc"
exit $rc
