/* imap_fetch - fetching messages by UID (see imap_fetch in imap.h): list
 * UIDs and sizes on a growing UID window, fetch what fits in memory in
 * batches of BODY.PEEK[], spool larger messages chunk by chunk into an
 * unlinked file and mmap it, and report oversized ones without fetching. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "transport/imap_int.h"

/* The smallest spool chunk, whatever spool_threshold says. */
#define IMAP_MIN_CHUNK ((size_t)64 << 10)

struct listed {
    uint32_t uid;
    uint32_t size; /* RFC822.SIZE */
};

/* A message body found in a FETCH response, borrowed from it. */
struct body {
    uint32_t uid;
    const unsigned char *data; /* NULL for NIL */
    size_t len;
};

/* by_uid - qsort order of struct listed and struct body (uid first) */
static int by_uid(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* uid_fetch - UID FETCH SET with the attributes of FT (both freed here);
 * *RESULT_R is owned by the caller (mailimap_fetch_list_free) */
static enum mb_status uid_fetch(struct imap_session *s, struct mailimap_set *set,
                                struct mailimap_fetch_type *ft, clist **result_r,
                                struct mb_error *err)
{
    *result_r = NULL;
    int r = mailimap_uid_fetch(s->imap, set, ft, result_r);
    mailimap_set_free(set);
    mailimap_fetch_type_free(ft);
    imap_note_mail(s);
    if (r != MAILIMAP_NO_ERROR) {
        *result_r = NULL; /* libetpan freed it */
        return imap_failed(s, r, "UID FETCH", err);
    }
    return MB_OK;
}

/* scan_att - the UID, RFC822.SIZE and body section of one FETCH response;
 * a zero UID when it had none */
static void scan_att(const struct mailimap_msg_att *att, uint32_t *uid_r, bool *has_size_r,
                     uint32_t *size_r, const struct mailimap_msg_att_body_section **body_r)
{
    *uid_r = 0;
    *has_size_r = false;
    *size_r = 0;
    *body_r = NULL;
    for (clistiter *it = clist_begin(att->att_list); it != NULL; it = clist_next(it)) {
        const struct mailimap_msg_att_item *item = clist_content(it);
        if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
            continue;
        const struct mailimap_msg_att_static *st = item->att_data.att_static;
        switch (st->att_type) {
        case MAILIMAP_MSG_ATT_UID:
            *uid_r = st->att_data.att_uid;
            break;
        case MAILIMAP_MSG_ATT_RFC822_SIZE:
            *has_size_r = true;
            *size_r = st->att_data.att_rfc822_size;
            break;
        case MAILIMAP_MSG_ATT_BODY_SECTION:
            *body_r = st->att_data.att_body_section;
            break;
        default:
            break;
        }
    }
}

/* list_range - append to *ITEMS the (UID, size) of the messages with
 * FIRST <= UID <= LAST (LAST 0 = "*"; "N:*" also returns the highest
 * message when its UID < N, which is dropped here) */
static enum mb_status list_range(struct imap_session *s, uint32_t first, uint32_t last,
                                 struct listed **items, size_t *n, struct mb_error *err)
{
    struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_rfc822_size());
    clist *result;
    enum mb_status st = uid_fetch(s, mailimap_set_new_interval(first, last), ft, &result, err);
    if (st != MB_OK)
        return st;
    *items = xreallocarray(*items, *n + clist_count(result), sizeof(**items));
    for (clistiter *it = clist_begin(result); it != NULL; it = clist_next(it)) {
        uint32_t uid, size;
        bool has_size;
        const struct mailimap_msg_att_body_section *body;
        scan_att(clist_content(it), &uid, &has_size, &size, &body);
        /* unsolicited FETCH (flag changes by others) carries no size */
        if (has_size && uid >= first && (last == 0 || uid <= last))
            (*items)[(*n)++] = (struct listed){uid, size};
    }
    mailimap_fetch_list_free(result);
    return MB_OK;
}

/* list_messages - the first WANT messages with UID >= FROM, in UID order.
 * Below the UIDNEXT known from SELECT the UIDs are listed in windows that
 * double until WANT are found (UIDs are dense in practice, so the first
 * window usually does); from there on "FROM:*" lists what is left. */
static enum mb_status list_messages(struct imap_session *s, uint32_t from, size_t want,
                                    struct listed **items_r, size_t *n_r, struct mb_error *err)
{
    *items_r = NULL;
    *n_r = 0;
    enum mb_status st = MB_OK;
    uint32_t lo = from;
    uint64_t window = want < 32 ? 64 : 2 * (uint64_t)want;
    while (st == MB_OK && *n_r < want) {
        if (s->uidnext == 0 || lo >= s->uidnext || window >= UINT32_MAX - (uint64_t)lo) {
            st = list_range(s, lo, 0, items_r, n_r, err);
            break;
        }
        uint32_t hi = (uint32_t)(lo + window - 1);
        st = list_range(s, lo, hi, items_r, n_r, err);
        lo = hi + 1;
        window *= 2;
    }
    if (st != MB_OK) {
        free(*items_r);
        *items_r = NULL;
        *n_r = 0;
        return st;
    }
    if (*n_r == 0)
        return MB_OK;
    qsort(*items_r, *n_r, sizeof(**items_r), by_uid);
    size_t kept = 0; /* drop duplicates a server might send */
    for (size_t i = 0; i < *n_r; i++)
        if (kept == 0 || (*items_r)[kept - 1].uid != (*items_r)[i].uid)
            (*items_r)[kept++] = (*items_r)[i];
    *n_r = kept < want ? kept : want;
    if ((*items_r)[*n_r - 1].uid >= s->uidnext)
        s->uidnext = (*items_r)[*n_r - 1].uid + 1;
    return MB_OK;
}

/* deliver - FN for one message, reported as too large (DATA NULL) when it
 * is; advances *NEXT_UID_R when FN accepts it */
static enum mb_status deliver(struct imap_session *s, uint32_t uid, const unsigned char *data,
                              size_t len, imap_message_fn fn, void *ctx, uint32_t *next_uid_r,
                              struct mb_error *err)
{
    if (s->max_message_size != 0 && len > s->max_message_size)
        data = NULL;
    enum mb_status st = fn(ctx, uid, data, len, err);
    if (st == MB_OK)
        *next_uid_r = uid == UINT32_MAX ? uid : uid + 1;
    return st;
}

/* in_memory - whether ITEM is fetched whole into memory */
static bool in_memory(const struct imap_session *s, const struct listed *item)
{
    if (s->max_message_size != 0 && item->size > s->max_message_size)
        return false; /* reported, never fetched */
    return s->spool_dir == NULL || item->size <= s->spool_threshold;
}

/* fetch_batch - ITEMS[0..N) (consecutive in the listing, all in memory) in
 * one UID FETCH FIRST:LAST (UID RFC822.SIZE BODY.PEEK[]), then FN for each
 * in UID order, after the command completed. A listed message that did not
 * come back was expunged meanwhile and is skipped. */
static enum mb_status fetch_batch(struct imap_session *s, const struct listed *items, size_t n,
                                  imap_message_fn fn, void *ctx, uint32_t *next_uid_r,
                                  struct mb_error *err)
{
    struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_rfc822_size());
    mailimap_fetch_type_new_fetch_att_list_add(
        ft, mailimap_fetch_att_new_body_peek_section(mailimap_section_new(NULL)));
    clist *result;
    enum mb_status st =
        uid_fetch(s, mailimap_set_new_interval(items[0].uid, items[n - 1].uid), ft, &result, err);
    if (st != MB_OK)
        return st;
    struct body *bodies = xcalloc(clist_count(result) + 1, sizeof(*bodies));
    size_t nb = 0;
    for (clistiter *it = clist_begin(result); it != NULL; it = clist_next(it)) {
        uint32_t uid, size;
        bool has_size;
        const struct mailimap_msg_att_body_section *sec;
        scan_att(clist_content(it), &uid, &has_size, &size, &sec);
        if (uid != 0 && sec != NULL)
            bodies[nb++] = (struct body){uid, (const unsigned char *)sec->sec_body_part,
                                         sec->sec_body_part ? sec->sec_length : 0};
    }
    if (nb > 1)
        qsort(bodies, nb, sizeof(*bodies), by_uid);
    for (size_t i = 0; i < n && st == MB_OK; i++) {
        struct body key = {items[i].uid, NULL, 0};
        const struct body *b = bsearch(&key, bodies, nb, sizeof(*bodies), by_uid);
        if (b == NULL) {
            *next_uid_r = items[i].uid + 1; /* expunged meanwhile */
            continue;
        }
        if (b->data == NULL) {
            st = mb_error_set(err, MB_TEMP, "IMAP %s: the server returned no body for UID %u",
                              s->where, (unsigned)b->uid);
            break;
        }
        st = deliver(s, b->uid, b->data, b->len, fn, ctx, next_uid_r, err);
    }
    free(bodies);
    mailimap_fetch_list_free(result);
    return st;
}

/* write_all - N bytes of DATA to FD */
static bool write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* spool_chunk - fetch BODY.PEEK[]<OFFSET.CHUNK> of UID and append it to FD;
 * *GOT_R is its length, *GONE_R when the message no longer exists */
static enum mb_status spool_chunk(struct imap_session *s, uint32_t uid, size_t offset, size_t chunk,
                                  int fd, size_t *got_r, bool *gone_r, struct mb_error *err)
{
    struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
    mailimap_fetch_type_new_fetch_att_list_add(
        ft, mailimap_fetch_att_new_body_peek_section_partial(mailimap_section_new(NULL),
                                                             (uint32_t)offset, (uint32_t)chunk));
    clist *result;
    enum mb_status st = uid_fetch(s, mailimap_set_new_single(uid), ft, &result, err);
    if (st != MB_OK)
        return st;
    *got_r = 0;
    *gone_r = true;
    for (clistiter *it = clist_begin(result); it != NULL && *gone_r; it = clist_next(it)) {
        uint32_t got_uid, size;
        bool has_size;
        const struct mailimap_msg_att_body_section *sec;
        scan_att(clist_content(it), &got_uid, &has_size, &size, &sec);
        if (got_uid != uid || sec == NULL)
            continue;
        *gone_r = false;
        *got_r = sec->sec_body_part ? sec->sec_length : 0;
        if (*got_r > 0 && !write_all(fd, sec->sec_body_part, *got_r))
            st = mb_error_set(err, MB_TEMP, "IMAP %s: writing the spool file in %s: %s", s->where,
                              s->spool_dir, strerror(errno));
    }
    mailimap_fetch_list_free(result);
    return st;
}

/* fetch_spooled - ITEM chunk by chunk (at most spool_threshold bytes in
 * memory at a time) into an unlinked file of spool_dir, until a short chunk
 * says the end; then FN on the mmap'ed file. The file vanishes with its
 * descriptor, even after a crash. */
static enum mb_status fetch_spooled(struct imap_session *s, const struct listed *item,
                                    imap_message_fn fn, void *ctx, uint32_t *next_uid_r,
                                    struct mb_error *err)
{
    char *path = xasprintf("%s/mailbridge-imap-XXXXXX", s->spool_dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        enum mb_status st =
            mb_error_set(err, MB_TEMP, "IMAP %s: cannot create a spool file in %s: %s", s->where,
                         s->spool_dir, strerror(errno));
        free(path);
        return st;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    unlink(path);
    free(path);
    size_t chunk = s->spool_threshold;
    if (chunk < IMAP_MIN_CHUNK)
        chunk = IMAP_MIN_CHUNK;
    if (chunk > IMAP_BATCH_BYTES)
        chunk = IMAP_BATCH_BYTES;
    size_t total = 0, got = 0;
    bool gone = false;
    enum mb_status st;
    do {
        got = 0; /* spool_chunk leaves it alone when the FETCH itself fails */
        st = spool_chunk(s, item->uid, total, chunk, fd, &got, &gone, err);
        total += got;
        if (s->max_message_size != 0 && total > s->max_message_size)
            break; /* larger than it said: report it as too large */
    } while (st == MB_OK && !gone && got == chunk);
    if (st == MB_OK && gone) {
        *next_uid_r = item->uid + 1; /* expunged meanwhile: what we have is a torso */
    } else if (st == MB_OK &&
               (total == 0 || (s->max_message_size && total > s->max_message_size))) {
        st = deliver(s, item->uid, (const unsigned char *)"", total, fn, ctx, next_uid_r, err);
    } else if (st == MB_OK) {
        void *map = mmap(NULL, total, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            st = mb_error_set(err, MB_TEMP, "IMAP %s: mmap of the spooled UID %u: %s", s->where,
                              (unsigned)item->uid, strerror(errno));
        } else {
            st = deliver(s, item->uid, map, total, fn, ctx, next_uid_r, err);
            munmap(map, total);
        }
    }
    close(fd);
    return st;
}

/* fetch_listed - ITEMS[0..N) in order: oversized ones reported, large ones
 * spooled, runs of the others in batches of up to IMAP_BATCH_BYTES */
static enum mb_status fetch_listed(struct imap_session *s, const struct listed *items, size_t n,
                                   imap_message_fn fn, void *ctx, uint32_t *next_uid_r,
                                   struct mb_error *err)
{
    enum mb_status st = MB_OK;
    size_t i = 0;
    while (st == MB_OK && i < n) {
        if (s->max_message_size != 0 && items[i].size > s->max_message_size) {
            st = deliver(s, items[i].uid, NULL, items[i].size, fn, ctx, next_uid_r, err);
            i++;
        } else if (!in_memory(s, &items[i])) {
            st = fetch_spooled(s, &items[i], fn, ctx, next_uid_r, err);
            i++;
        } else {
            size_t j = i + 1, bytes = items[i].size;
            while (j < n && in_memory(s, &items[j]) && bytes + items[j].size <= IMAP_BATCH_BYTES)
                bytes += items[j++].size;
            st = fetch_batch(s, items + i, j - i, fn, ctx, next_uid_r, err);
            i = j;
        }
    }
    return st;
}

/* imap_fetch - list, fetch and deliver in rounds while new mail arrives and
 * fewer than MAX were delivered */
enum mb_status imap_fetch(struct imap_session *s, uint32_t from_uid, unsigned max,
                          imap_message_fn fn, void *ctx, uint32_t *next_uid_r, struct mb_error *err)
{
    *next_uid_r = from_uid == 0 ? 1 : from_uid;
    enum mb_status st = imap_need_folder(s, err);
    if (st != MB_OK)
        return st;
    size_t done = 0, n;
    do {
        s->new_mail = false; /* what arrives from now on is listed by the next round */
        struct listed *items;
        st = list_messages(s, *next_uid_r, max - done, &items, &n, err);
        if (st == MB_OK)
            st = fetch_listed(s, items, n, fn, ctx, next_uid_r, err);
        free(items);
        done += n;
    } while (st == MB_OK && n > 0 && done < max && s->new_mail);
    return st;
}
