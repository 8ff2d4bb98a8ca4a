/* tls_verify - chain and host name verification of a server certificate
 * with GnuTLS trust lists, for the libetpan streams of IMAP and POP3 (see
 * tls_verify.h). libetpan hands out the peer chain as DER; GnuTLS does the
 * path building, the signature checks and the RFC 6125 name match. */
#include "transport/tls_verify.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/mmapstring.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/xalloc.h"

/* A server sending more certificates than this is not worth verifying. */
#define TLS_MAX_CHAIN 16

/* load_trust - the CAs of CA_FILE, or the system store, into LIST */
static enum mb_status load_trust(gnutls_x509_trust_list_t list, const char *ca_file,
                                 struct mb_error *err)
{
    int n;
    if (ca_file != NULL) {
        n = gnutls_x509_trust_list_add_trust_file(list, ca_file, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
        if (n <= 0)
            return mb_error_set(err, MB_CONFIG, "CA file %s: %s", ca_file,
                                n < 0 ? gnutls_strerror(n) : "no certificate in it");
        return MB_OK;
    }
    n = gnutls_x509_trust_list_add_system_trust(list, 0, 0);
    if (n <= 0)
        return mb_error_set(err, MB_CONFIG, "the system CA store is empty or unreadable: %s",
                            n < 0 ? gnutls_strerror(n) : "no certificate in it");
    return MB_OK;
}

/* status_text - GnuTLS's words for the verification result STATUS */
static void status_text(unsigned status, char *out, size_t size)
{
    gnutls_datum_t text = {NULL, 0};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) < 0 ||
        text.data == NULL) {
        snprintf(out, size, "status 0x%x", status);
        return;
    }
    snprintf(out, size, "%s", (const char *)text.data);
    gnutls_free(text.data);
}

/* tls_verify_peer - import the chain, then let the trust list build the
 * path to a CA and match HOST against the first certificate */
enum mb_status tls_verify_peer(const struct tls_der *chain, size_t count, const char *host,
                               const char *ca_file, struct mb_error *err)
{
    if (count == 0)
        return mb_error_set(err, MB_DOWN,
                            "TLS certificate verification failed for %s: no certificate received",
                            host);
    if (count > TLS_MAX_CHAIN)
        return mb_error_set(err, MB_DOWN,
                            "TLS certificate verification failed for %s: chain of %zu certificates",
                            host, count);
    gnutls_x509_trust_list_t list;
    if (gnutls_x509_trust_list_init(&list, 0) < 0)
        return mb_error_set(err, MB_TEMP, "TLS: cannot create a trust list");
    enum mb_status st = load_trust(list, ca_file, err);
    gnutls_x509_crt_t certs[TLS_MAX_CHAIN];
    size_t imported = 0;
    for (; st == MB_OK && imported < count; imported++) {
        gnutls_datum_t der = {(unsigned char *)chain[imported].data, (unsigned)chain[imported].len};
        if (gnutls_x509_crt_init(&certs[imported]) < 0) {
            st = mb_error_set(err, MB_TEMP, "TLS: cannot allocate a certificate");
            break;
        }
        int r = gnutls_x509_crt_import(certs[imported], &der, GNUTLS_X509_FMT_DER);
        if (r < 0) {
            imported++; /* initialised: deinit it below */
            st = mb_error_set(err, MB_DOWN,
                              "TLS certificate verification failed for %s: certificate %zu: %s",
                              host, imported, gnutls_strerror(r));
            break;
        }
    }
    if (st == MB_OK) {
        gnutls_typed_vdata_st name = {GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)host, 0};
        unsigned status = 0;
        int r = gnutls_x509_trust_list_verify_crt2(list, certs, (unsigned)count, &name, 1, 0,
                                                   &status, NULL);
        if (r < 0) {
            st = mb_error_set(err, MB_DOWN, "TLS certificate verification failed for %s: %s", host,
                              gnutls_strerror(r));
        } else if (status != 0) {
            char text[256];
            status_text(status, text, sizeof(text));
            st = mb_error_set(err, MB_DOWN, "TLS certificate verification failed for %s: %s", host,
                              text);
        }
    }
    for (size_t i = 0; i < imported; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_x509_trust_list_deinit(list, 1);
    return st;
}

/* tls_verify_stream - copy the DER strings libetpan collected into a
 * tls_der array and verify them */
enum mb_status tls_verify_stream(mailstream *stream, const char *host, const char *ca_file,
                                 struct mb_error *err)
{
    carray *chain = mailstream_get_certificate_chain(stream);
    if (chain == NULL)
        return mb_error_set(
            err, MB_DOWN, "TLS certificate verification failed for %s: not a TLS connection", host);
    size_t count = carray_count(chain);
    struct tls_der *der = xcalloc(count ? count : 1, sizeof(*der));
    for (size_t i = 0; i < count; i++) {
        MMAPString *s = carray_get(chain, (unsigned)i);
        der[i].data = (const unsigned char *)s->str;
        der[i].len = s->len;
    }
    enum mb_status st = tls_verify_peer(der, count, host, ca_file, err);
    free(der);
    mailstream_certificate_chain_free(chain);
    return st;
}

/* tls_sni_callback - SNI for DNS names; an IP literal is left out */
void tls_sni_callback(struct mailstream_ssl_context *ctx, void *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return;
    mailstream_ssl_set_server_name(ctx, host);
}
