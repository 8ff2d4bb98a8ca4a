/* bench_imap_fetch - the floor of bench_mailbox.py: how fast the messages of
 * a mailbox can just be read with libetpan, the IMAP library mailbridge
 * uses. Connect, log in, SELECT INBOX, UID SEARCH ALL, then UID FETCH
 * (UID RFC822.SIZE BODY.PEEK[]) in batches, touching every byte of every
 * body; nothing is parsed, stored or flagged. Prints one line:
 *   messages=N bytes=B wall_s=.. cpu_s=.. checksum=..
 * TLS (starttls or implicit) is verified like mailbridge does it, before login. */
#include <errno.h>
#include <libetpan/libetpan.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lib/error.h"
#include "lib/xalloc.h"
#include "transport/tls_verify.h"

enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_IMPLICIT };

struct options {
    const char *host;
    uint16_t port;
    const char *user;
    const char *password;
    enum tls_mode tls;
    const char *ca_file; /* NULL: the system store */
    size_t batch;
};

/* What the fetch saw. */
struct tally {
    unsigned long messages;
    unsigned long long bytes;
    uint64_t checksum; /* sum of the bodies as 64-bit words: every byte is read */
};

/* usage - the synopsis on stderr, then exit with CODE */
static void usage(int code)
{
    fprintf(stderr, "usage: bench_imap_fetch --host H --port P --user U --password PW\n"
                    "                        [--tls none|starttls|implicit] [--ca-file F] "
                    "[--batch 100]\n");
    exit(code);
}

/* number - VALUE as a whole number in [1, MAX], or exit with the usage */
static unsigned long number(const char *opt, const char *value, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno != 0 || *end != '\0' || *value == '-' || v < 1 || v > max) {
        fprintf(stderr, "bench_imap_fetch: %s needs a number from 1 to %lu\n", opt, max);
        exit(2);
    }
    return v;
}

/* parse_options - the command line into OPT; exits with the usage when wrong */
static void parse_options(int argc, char **argv, struct options *opt)
{
    *opt = (struct options){.tls = TLS_NONE, .batch = 100};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0)
            usage(0);
        if (i + 1 == argc)
            usage(2);
        const char *name = argv[i], *value = argv[++i];
        if (strcmp(name, "--host") == 0)
            opt->host = value;
        else if (strcmp(name, "--port") == 0)
            opt->port = (uint16_t)number(name, value, 65535);
        else if (strcmp(name, "--user") == 0)
            opt->user = value;
        else if (strcmp(name, "--password") == 0)
            opt->password = value;
        else if (strcmp(name, "--ca-file") == 0)
            opt->ca_file = value;
        else if (strcmp(name, "--batch") == 0)
            opt->batch = number(name, value, 100000);
        else if (strcmp(name, "--tls") == 0 && strcmp(value, "none") == 0)
            opt->tls = TLS_NONE;
        else if (strcmp(name, "--tls") == 0 && strcmp(value, "starttls") == 0)
            opt->tls = TLS_STARTTLS;
        else if (strcmp(name, "--tls") == 0 && strcmp(value, "implicit") == 0)
            opt->tls = TLS_IMPLICIT;
        else
            usage(2);
    }
    if (opt->host == NULL || opt->port == 0 || opt->user == NULL || opt->password == NULL)
        usage(2);
}

/* fail - report that STEP failed with libetpan code R, then exit 1 */
static void fail(mailimap *imap, const char *step, int r)
{
    fprintf(stderr, "bench_imap_fetch: %s failed (libetpan error %d)%s%s\n", step, r,
            imap->imap_response != NULL ? ": " : "",
            imap->imap_response != NULL ? imap->imap_response : "");
    exit(1);
}

/* open_session - connect with OPT's TLS mode, verify the certificate, log
 * in and SELECT INBOX; exits on failure */
static void open_session(mailimap *imap, const struct options *opt)
{
    int r;
    if (opt->tls == TLS_IMPLICIT)
        r = mailimap_ssl_connect_with_callback(imap, opt->host, opt->port, tls_sni_callback,
                                               (void *)opt->host);
    else
        r = mailimap_socket_connect(imap, opt->host, opt->port);
    if (r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED)
        fail(imap, "connect", r);
    if (opt->tls == TLS_STARTTLS) {
        r = mailimap_socket_starttls_with_callback(imap, tls_sni_callback, (void *)opt->host);
        if (r != MAILIMAP_NO_ERROR)
            fail(imap, "STARTTLS", r);
    }
    if (opt->tls != TLS_NONE) {
        struct mb_error err;
        if (tls_verify_stream(imap->imap_stream, opt->host, opt->ca_file, &err) != MB_OK) {
            fprintf(stderr, "bench_imap_fetch: %s\n", err.text);
            exit(1);
        }
    }
    r = mailimap_login(imap, opt->user, opt->password);
    if (r != MAILIMAP_NO_ERROR)
        fail(imap, "LOGIN", r);
    r = mailimap_select(imap, "INBOX");
    if (r != MAILIMAP_NO_ERROR)
        fail(imap, "SELECT INBOX", r);
}

/* by_value - qsort order of UIDs */
static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* list_uids - the UIDs of INBOX in ascending order (owned by the caller),
 * their number in *COUNT_R; exits on failure */
static uint32_t *list_uids(mailimap *imap, size_t *count_r)
{
    struct mailimap_search_key *all = mailimap_search_key_new_all();
    clist *result = NULL;
    int r = mailimap_uid_search(imap, NULL, all, &result);
    mailimap_search_key_free(all);
    if (r != MAILIMAP_NO_ERROR)
        fail(imap, "UID SEARCH ALL", r);
    uint32_t *uids = xcalloc((size_t)clist_count(result) + 1, sizeof(*uids));
    size_t n = 0;
    for (clistiter *it = clist_begin(result); it != NULL; it = clist_next(it))
        uids[n++] = *(uint32_t *)clist_content(it);
    mailimap_search_result_free(result);
    qsort(uids, n, sizeof(*uids), by_value); /* SEARCH promises no order */
    *count_r = n;
    return uids;
}

/* touch - add the LEN bytes of DATA to T, every byte read */
static void touch(struct tally *t, const char *data, size_t len)
{
    uint64_t sum = 0, word;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&word, data + i, 8);
        sum += word;
    }
    for (; i < len; i++)
        sum += (unsigned char)data[i];
    t->checksum += sum;
    t->messages++;
    t->bytes += len;
}

/* fetch_batch - UID FETCH FIRST:LAST (UID RFC822.SIZE BODY.PEEK[]) into T;
 * exits on failure */
static void fetch_batch(mailimap *imap, uint32_t first, uint32_t last, struct tally *t)
{
    struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_rfc822_size());
    mailimap_fetch_type_new_fetch_att_list_add(
        ft, mailimap_fetch_att_new_body_peek_section(mailimap_section_new(NULL)));
    struct mailimap_set *set = mailimap_set_new_interval(first, last);
    clist *result = NULL;
    int r = mailimap_uid_fetch(imap, set, ft, &result);
    mailimap_set_free(set);
    mailimap_fetch_type_free(ft);
    if (r != MAILIMAP_NO_ERROR)
        fail(imap, "UID FETCH", r);
    for (clistiter *it = clist_begin(result); it != NULL; it = clist_next(it)) {
        struct mailimap_msg_att *att = clist_content(it);
        for (clistiter *a = clist_begin(att->att_list); a != NULL; a = clist_next(a)) {
            struct mailimap_msg_att_item *item = clist_content(a);
            if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC ||
                item->att_data.att_static->att_type != MAILIMAP_MSG_ATT_BODY_SECTION)
                continue;
            const struct mailimap_msg_att_body_section *body =
                item->att_data.att_static->att_data.att_body_section;
            if (body->sec_body_part != NULL)
                touch(t, body->sec_body_part, body->sec_length);
        }
    }
    mailimap_fetch_list_free(result);
}

/* seconds - A and B apart */
static double seconds(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* cpu_seconds - user + system time in RU */
static double cpu_seconds(const struct rusage *ru)
{
    return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
           (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    struct options opt;
    parse_options(argc, argv, &opt);
    struct timespec t0, t1;
    struct rusage u0, u1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    getrusage(RUSAGE_SELF, &u0);

    mailimap *imap = mailimap_new(0, NULL);
    open_session(imap, &opt);
    size_t count;
    uint32_t *uids = list_uids(imap, &count);
    struct tally t = {0};
    for (size_t i = 0; i < count; i += opt.batch) {
        size_t last = i + opt.batch < count ? i + opt.batch - 1 : count - 1;
        /* the UIDs between two listed ones are all listed: one interval per batch */
        fetch_batch(imap, uids[i], uids[last], &t);
    }
    free(uids);
    mailimap_logout(imap);
    mailimap_free(imap);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &u1);
    printf("messages=%lu bytes=%llu wall_s=%.3f cpu_s=%.3f checksum=%016llx\n", t.messages,
           t.bytes, seconds(&t0, &t1), cpu_seconds(&u1) - cpu_seconds(&u0),
           (unsigned long long)t.checksum);
    return t.messages == count ? 0 : 1;
}
