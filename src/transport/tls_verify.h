/* tls_verify - private to src/transport: check the certificate a mail
 * server presented on a libetpan TLS stream (IMAP, POP3), because libetpan
 * built on GnuTLS completes the handshake without verifying anything.
 *
 * Call tls_verify_stream right after the handshake and before any
 * credentials are sent. Failures are MB_DOWN ("TLS certificate verification
 * failed for HOST: ..."); an unreadable CA file is MB_CONFIG. */
#ifndef MB_TRANSPORT_TLS_VERIFY_H
#define MB_TRANSPORT_TLS_VERIFY_H

#include <stddef.h>

#include <libetpan/mailstream.h>
#include <libetpan/mailstream_ssl.h>

#include "lib/error.h"

/* One DER-encoded certificate, borrowed. */
struct tls_der {
    const unsigned char *data;
    size_t len;
};

/* tls_verify_peer - verify CHAIN (COUNT certificates, the server's own
 * first, as sent) against the CAs of CA_FILE (PEM; NULL = the system store)
 * and HOST (a DNS name, matched by RFC 6125 rules, or a textual IP address,
 * matched against the IP address SANs). Nothing is kept. */
enum mb_status tls_verify_peer(const struct tls_der *chain, size_t count, const char *host,
                               const char *ca_file, struct mb_error *err);

/* tls_verify_stream - tls_verify_peer on the chain STREAM's TLS layer
 * received (STREAM is a connected mailimap/mailpop3 stream after the
 * handshake, e.g. imap->imap_stream or pop3->pop3_stream) */
enum mb_status tls_verify_stream(mailstream *stream, const char *host, const char *ca_file,
                                 struct mb_error *err);

/* tls_sni_callback - the callback of the libetpan *_with_callback TLS
 * openers: sends HOST (a const char *, passed as DATA) as the TLS server
 * name, unless it is an IP address (SNI carries names only) */
void tls_sni_callback(struct mailstream_ssl_context *ctx, void *host);

#endif
