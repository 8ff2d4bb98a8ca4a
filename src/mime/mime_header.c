/* mime_header - the header fields of a message into the normalized mail.
 *
 * Subject, Date and the ids come from the first field of each name; address
 * lists from every field of the name (a second To: adds recipients). RFC
 * 2047 is decoded here, loosely and with mime_charset.c's fallbacks: the
 * Subject, and the encoded words of display names before gmime's address
 * parser sees them; everything repaired on the way becomes a warning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/xalloc.h"
#include "mime/mime_int.h"

/* mime_clean_for_warning - hostile text made safe to quote (see mime_int.h) */
char *mime_clean_for_warning(const char *s, size_t max)
{
    size_t n = strlen(s);
    size_t keep = n > max ? max : n;
    char *out = xmalloc(keep + 4);
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    strcpy(out + keep, n > max ? "..." : "");
    return out;
}

/* is_blank - RFC 5322 white space, folding included */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* mime_utf8_trimmed - S trimmed and valid UTF-8, NULL when empty */
char *mime_utf8_trimmed(const char *s)
{
    if (s == NULL)
        return NULL;
    while (is_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    return n == 0 ? NULL : mime_utf8_dup(s, n);
}

/* ---- RFC 2047 ---- */

/* one encoded word "=?charset?E?text?=" */
struct word {
    char charset[64]; /* without an RFC 2231 "*language" suffix */
    char encoding;    /* 'B' or 'Q' */
    const char *text; /* borrowed: the encoded text */
    size_t len;
    const char *end; /* just after the closing "?=" */
};

/* adjacent encoded words of one charset, decoded together (mailers split
 * multibyte characters across words) */
struct word_run {
    char charset[64];
    struct buf bytes; /* the decoded bytes so far */
    struct buf b64;   /* base64 text waiting for a complete group */
};

/* parse_word - the encoded word starting at W into OUT; false if W starts none */
static bool parse_word(const char *w, struct word *out)
{
    if (w[0] != '=' || w[1] != '?')
        return false;
    const char *cs = w + 2, *q1 = strchr(cs, '?');
    if (q1 == NULL || q1 == cs || q1 - cs >= (long)sizeof(out->charset) || q1[1] == '\0' ||
        strchr("BbQq", q1[1]) == NULL || q1[2] != '?')
        return false;
    const char *end = strstr(q1 + 3, "?=");
    if (end == NULL)
        return false;
    size_t n = (size_t)(q1 - cs);
    const char *star = memchr(cs, '*', n);
    if (star != NULL)
        n = (size_t)(star - cs);
    memcpy(out->charset, cs, n);
    out->charset[n] = '\0';
    out->encoding = (char)g_ascii_toupper(q1[1]);
    out->text = q1 + 3;
    out->len = (size_t)(end - out->text);
    out->end = end + 2;
    return true;
}

/* q_decode - RFC 2047 "Q" text of N bytes at S appended to OUT */
static void q_decode(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '_') {
            c = ' ';
        } else if (c == '=' && i + 2 < n && g_ascii_isxdigit(s[i + 1]) &&
                   g_ascii_isxdigit(s[i + 2])) {
            c = (unsigned char)(g_ascii_xdigit_value(s[i + 1]) * 16 +
                                g_ascii_xdigit_value(s[i + 2]));
            i += 2;
        }
        buf_append(out, &c, 1);
    }
}

/* run_b64 - decode the base64 text waiting in R */
static void run_b64(struct word_run *r)
{
    if (r->b64.len == 0)
        return;
    unsigned char *tmp = xmalloc(r->b64.len + 3);
    size_t n = mime_base64_decode((const unsigned char *)r->b64.data, r->b64.len, tmp, NULL);
    buf_append(&r->bytes, tmp, n);
    free(tmp);
    buf_reset(&r->b64);
}

/* run_add - the bytes of W into R. A base64 word is decoded on its own when
 * complete; an incomplete one (a mailer cut the base64 text, not the bytes)
 * waits for the rest from the next word. */
static void run_add(struct word_run *r, const struct word *w)
{
    if (w->encoding == 'Q') {
        run_b64(r);
        q_decode(w->text, w->len, &r->bytes);
        return;
    }
    buf_append(&r->b64, w->text, w->len);
    if (r->b64.len % 4 == 0 || memchr(w->text, '=', w->len) != NULL)
        run_b64(r);
}

/* run_flush - the finished run R decoded into OUT as WHAT, then emptied */
static void run_flush(struct mime_ctx *ctx, struct word_run *r, const char *what, struct buf *out)
{
    if (r->charset[0] == '\0')
        return;
    run_b64(r);
    const unsigned char *p = (const unsigned char *)(r->bytes.data ? r->bytes.data : "");
    mime_decode_text(ctx, r->charset, p, r->bytes.len, what, out);
    r->charset[0] = '\0';
    buf_reset(&r->bytes);
}

/* decode_words - RFC 2047 decoding of the LEN bytes of header text RAW
 * into OUT, as loosely as real mail needs: encoded words inside words and
 * quoted strings, without spaces between them, multibyte characters split
 * across words, unknown charsets. White space between encoded words is
 * dropped; other text is raw: UTF-8 where valid, else windows-1252. */
static void decode_words(struct mime_ctx *ctx, const char *what, const char *raw, size_t len,
                         struct buf *out)
{
    struct word_run run = {.charset = ""};
    char *text = xmemdup(raw, len); /* NUL-terminated for the scan */
    buf_init(&run.bytes, len + 1);
    buf_init(&run.b64, len + 1);
    const char *lit = text, *p = text;
    bool after_word = false;
    const char *w;
    while ((w = strstr(p, "=?")) != NULL) {
        struct word word;
        if (!parse_word(w, &word)) {
            p = w + 2;
            continue;
        }
        bool blank = strspn(lit, " \t\r\n") >= (size_t)(w - lit);
        if (!after_word || !blank) {
            run_flush(ctx, &run, what, out);
            mime_decode_text(ctx, NULL, (const unsigned char *)lit, (size_t)(w - lit), what, out);
        }
        if (g_ascii_strcasecmp(run.charset, word.charset) != 0) {
            run_flush(ctx, &run, what, out);
            strcpy(run.charset, word.charset);
        }
        run_add(&run, &word);
        p = lit = word.end;
        after_word = true;
    }
    run_flush(ctx, &run, what, out);
    mime_decode_text(ctx, NULL, (const unsigned char *)lit, strlen(lit), what, out);
    buf_free(&run.bytes);
    buf_free(&run.b64);
    free(text);
}

/* word_run_end - the end of the run of encoded words starting at W (words
 * separated by white space only) */
static const char *word_run_end(const char *w)
{
    struct word word;
    const char *end = w;
    while (parse_word(w, &word)) {
        end = word.end;
        w = end + strspn(end, " \t\r\n");
    }
    return end;
}

/* put_quoted - LEN bytes of S into OUT escaped for a quoted string, line
 * ends made spaces */
static void put_quoted(struct buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i] == '\n' || s[i] == '\r' ? ' ' : s[i];
        if (c == '"' || c == '\\')
            buf_append(out, "\\", 1);
        buf_append(out, &c, 1);
    }
}

/* decode_address_words - RAW (an address field) with every encoded word in
 * a display name decoded here (see decode_words) and written as a quoted
 * string, so gmime's address parser sees plain UTF-8: a decoded ':' or ','
 * cannot break the list, and a word labelled iso-8859-1 that is UTF-8 is
 * read as UTF-8. Comments and addresses are left alone. Caller owns it. */
static char *decode_address_words(struct mime_ctx *ctx, const char *what, const char *raw)
{
    struct buf out, word;
    size_t len = strlen(raw);
    buf_init(&out, 8 * len + 16); /* a raw byte ends as at most 4 bytes, escaped twice */
    buf_init(&word, 4 * len + 16);
    bool quoted = false, angle = false;
    int comment = 0;
    for (const char *p = raw; *p != '\0';) {
        if (*p == '\\' && p[1] != '\0' && (quoted || comment > 0)) {
            buf_append(&out, p, 2);
            p += 2;
            continue;
        }
        if (*p == '=' && p[1] == '?' && !angle && comment == 0) {
            const char *end = word_run_end(p);
            if (end != p) {
                buf_reset(&word);
                decode_words(ctx, what, p, (size_t)(end - p), &word);
                if (!quoted)
                    buf_append(&out, "\"", 1);
                put_quoted(&out, word.data != NULL ? word.data : "", word.len);
                if (!quoted)
                    buf_append(&out, "\"", 1);
                p = end;
                continue;
            }
        }
        if (quoted)
            quoted = *p != '"';
        else if (comment > 0)
            comment += *p == '(' ? 1 : *p == ')' ? -1 : 0;
        else if (angle)
            angle = *p != '>';
        else if (*p == '"')
            quoted = true;
        else if (*p == '(')
            comment = 1;
        else if (*p == '<')
            angle = true;
        buf_append(&out, p, 1);
        p++;
    }
    buf_free(&word);
    return buf_steal(&out);
}

/* ---- message ids ---- */

struct ids {
    char **items; /* owned */
    size_t count;
};

/* ids_add - append the N bytes at S without white space, if any remain */
static void ids_add(struct ids *ids, const char *s, size_t n)
{
    char *id = xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_blank(s[i]))
            id[k++] = s[i];
    id[k] = '\0';
    if (k == 0) {
        free(id);
        return;
    }
    char *valid = mime_utf8_dup(id, k);
    free(id);
    ids->items = xreallocarray(ids->items, ids->count + 1, sizeof(char *));
    ids->items[ids->count++] = valid;
}

/* ids_free - release IDS */
static void ids_free(struct ids *ids)
{
    for (size_t i = 0; i < ids->count; i++)
        free(ids->items[i]);
    free(ids->items);
    ids->items = NULL;
    ids->count = 0;
}

/* skip_comment - past the (possibly nested) comment opening at P */
static const char *skip_comment(const char *p)
{
    int depth = 0;
    for (; *p != '\0'; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            return p + 1;
    }
    return p;
}

/* ids_parse - the message ids of S in order: each <...> outside comments,
 * with white space removed. Real mailers also write junk around them
 * ("<id> (Joe's message of Monday)") and ids without brackets: when there is
 * no <...> at all, every word with an '@' is an id. */
static void ids_parse(const char *s, struct ids *ids)
{
    const char *p = s;
    while (*p != '\0') {
        if (*p == '(') {
            p = skip_comment(p);
        } else if (*p == '<') {
            const char *q = p + 1;
            while (*q != '\0' && *q != '>' && *q != '<')
                q++;
            if (*q == '>') {
                ids_add(ids, p + 1, (size_t)(q - p - 1));
                p = q + 1;
            } else if (*q == '<') {
                p = q;
            } else {
                const char *e = p + 1 + strcspn(p + 1, " \t\r\n");
                if (memchr(p + 1, '@', (size_t)(e - p - 1)) != NULL)
                    ids_add(ids, p + 1, (size_t)(e - p - 1));
                p = e;
            }
        } else {
            p++;
        }
    }
    if (ids->count > 0)
        return;
    for (p = s; *p != '\0';) {
        p += strspn(p, " \t\r\n,;");
        size_t n = strcspn(p, " \t\r\n,;");
        if (n > 0 && memchr(p, '@', n) != NULL && *p != '(')
            ids_add(ids, p, n);
        p += n;
    }
}

/* fill_ids - Message-Id, In-Reply-To and References */
static void fill_ids(struct mime_ctx *ctx, GMimeHeaderList *hl)
{
    struct mb_mail *m = ctx->mail;
    struct ids ids = {NULL, 0};
    GMimeHeader *h = g_mime_header_list_get_header(hl, "Message-Id");
    const char *raw = h != NULL ? g_mime_header_get_raw_value(h) : NULL;
    if (raw != NULL) {
        ids_parse(raw, &ids);
        char *bare = mime_utf8_trimmed(raw);
        if (ids.count > 0) {
            m->message_id = ids.items[0];
            ids.items[0] = NULL;
        } else if (bare != NULL && strpbrk(bare, " \t\r\n") == NULL) {
            m->message_id = bare;
            bare = NULL;
        }
        if (m->message_id == NULL && bare != NULL) {
            char *shown = mime_clean_for_warning(bare, 60);
            mail_add_warning(m,
                             "unusable Message-ID header '%s': the key is the hash of the "
                             "raw message",
                             shown);
            free(shown);
        }
        free(bare);
        ids_free(&ids);
    }
    h = g_mime_header_list_get_header(hl, "In-Reply-To");
    if (h != NULL && g_mime_header_get_raw_value(h) != NULL) {
        ids_parse(g_mime_header_get_raw_value(h), &ids);
        if (ids.count > 0) {
            m->in_reply_to = ids.items[0];
            ids.items[0] = NULL;
        }
        ids_free(&ids);
    }
    h = g_mime_header_list_get_header(hl, "References");
    if (h != NULL && g_mime_header_get_raw_value(h) != NULL) {
        ids_parse(g_mime_header_get_raw_value(h), &ids);
        for (size_t i = 0; i < ids.count; i++)
            mail_add_reference(m, ids.items[i]);
        ids_free(&ids);
    }
}

/* ---- subject, date ---- */

/* fill_subject - the first Subject, decoded, on one line; "" when absent */
static void fill_subject(struct mime_ctx *ctx, GMimeHeaderList *hl)
{
    GMimeHeader *h = g_mime_header_list_get_header(hl, "Subject");
    const char *raw = h != NULL ? g_mime_header_get_raw_value(h) : NULL;
    struct buf b;
    buf_init(&b, 4 * (raw != NULL ? strlen(raw) : 0) + 16); /* UTF-8 of one raw byte: < 4 */
    if (raw != NULL) {
        char *unfolded = xstrdup(raw);
        char *w = unfolded;
        for (const char *r = raw; *r != '\0'; r++)
            if (*r != '\r' && *r != '\n')
                *w++ = *r;
        *w = '\0';
        decode_words(ctx, "Subject header", unfolded, strlen(unfolded), &b);
        free(unfolded);
    }
    char *s = mime_utf8_trimmed(b.data);
    buf_free(&b);
    if (s == NULL)
        s = xstrdup("");
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
    ctx->mail->subject = s;
}

/* zone_names_upper - copy of the date VALUE with every RFC 5322 obs-zone
 * name (UT, GMT, EST, EDT, CST, CDT, MST, MDT, PST, PDT) in upper case:
 * they are case-insensitive (RFC 5234 2.3), gmime only knows them in upper
 * case and would read "12:24:23 cst" as UTC. Other words are left alone
 * (single-letter military zones keep their meaning). Caller owns it. */
static char *zone_names_upper(const char *value)
{
    static const char *const zones[] = {"UT",  "GMT", "EST", "EDT", "CST",
                                        "CDT", "MST", "MDT", "PST", "PDT"};
    char *s = xstrdup(value);
    for (char *p = s; *p != '\0';) {
        size_t n = 0;
        while (g_ascii_isalpha(p[n]))
            n++;
        if (n == 0) {
            p++;
            continue;
        }
        for (size_t k = 0; k < sizeof(zones) / sizeof(zones[0]); k++)
            if (strlen(zones[k]) == n && g_ascii_strncasecmp(p, zones[k], n) == 0)
                memcpy(p, zones[k], n);
        p += n;
    }
    return s;
}

/* fill_date - the first Date in UTC, or NULL (warned when unparsable) */
static void fill_date(struct mime_ctx *ctx, GMimeHeaderList *hl)
{
    GMimeHeader *h = g_mime_header_list_get_header(hl, "Date");
    const char *value = h != NULL ? g_mime_header_get_value(h) : NULL;
    if (value == NULL)
        return;
    char *zoned = zone_names_upper(value);
    GDateTime *dt = g_mime_utils_header_decode_date(zoned);
    free(zoned);
    if (dt == NULL) {
        char *shown = mime_clean_for_warning(value, 60);
        mail_add_warning(ctx->mail, "unparsable Date header '%s'", shown);
        free(shown);
        return;
    }
    time_t t = (time_t)g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    struct tm tm;
    char out[32];
    if (gmtime_r(&t, &tm) != NULL && strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        ctx->mail->date = xstrdup(out);
}

/* ---- addresses ---- */

/* address_strings - the display name (NULL when empty) and addr-spec of a
 * mailbox, as valid UTF-8 owned by the caller */
static void address_strings(InternetAddress *ia, char **name_r, char **addr_r)
{
    *name_r = mime_utf8_trimmed(internet_address_get_name(ia));
    const char *addr = INTERNET_ADDRESS_IS_MAILBOX(ia)
                           ? internet_address_mailbox_get_addr((InternetAddressMailbox *)ia)
                           : NULL;
    *addr_r = mime_utf8_trimmed(addr);
}

/* first_mailbox - fill OUT from the first mailbox of LIST (inside groups
 * too); true when there was one */
static bool first_mailbox(InternetAddressList *list, struct mb_address *out)
{
    int n = list != NULL ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            if (first_mailbox(internet_address_group_get_members((InternetAddressGroup *)ia), out))
                return true;
        } else {
            address_strings(ia, &out->name, &out->address);
            return true;
        }
    }
    return false;
}

/* add_all - every mailbox of LIST into OUT, groups flattened; an empty
 * group stays as its name with a NULL address. Groups do not nest (gmime
 * reads a group inside a group as members), so this recursion is one deep. */
static void add_all(InternetAddressList *list, struct mb_address_list *out)
{
    int n = list != NULL ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        char *name, *addr;
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            InternetAddressList *members =
                internet_address_group_get_members((InternetAddressGroup *)ia);
            if (members != NULL && internet_address_list_length(members) > 0) {
                add_all(members, out);
                continue;
            }
            address_strings(ia, &name, &addr);
        } else {
            address_strings(ia, &name, &addr);
        }
        address_list_add(out, name, addr);
        free(name);
        free(addr);
    }
}

/* fill_addresses - the mail's address of field NAME (FIRST set: the
 * first mailbox of all its fields) or its list (LIST set: every mailbox of
 * all its fields, so a second To: adds recipients). Without encoded words
 * gmime's own parse of the fields (TYPE) is used; with them each field is
 * parsed again after decode_address_words. WHAT names the field in
 * warnings ("From header"). */
static void fill_addresses(struct mime_ctx *ctx, GMimeMessage *msg, const char *name,
                           const char *what, GMimeAddressType type, struct mb_address *first,
                           struct mb_address_list *list)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list((GMimeObject *)msg);
    int n = g_mime_header_list_get_count(hl);
    bool encoded = false;
    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *raw = g_mime_header_get_raw_value(h);
        if (raw == NULL || g_ascii_strcasecmp(g_mime_header_get_name(h), name) != 0)
            continue;
        if (!mime_utf8_valid((const unsigned char *)raw, strlen(raw)))
            mail_add_warning(ctx->mail, "raw 8-bit %s is not UTF-8: decoded as windows-1252", what);
        encoded |= strstr(raw, "=?") != NULL;
    }
    for (int i = 0; i < n && encoded; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *raw = g_mime_header_get_raw_value(h);
        if (raw == NULL || g_ascii_strcasecmp(g_mime_header_get_name(h), name) != 0)
            continue;
        char *plain = decode_address_words(ctx, what, raw);
        InternetAddressList *addrs = internet_address_list_parse(ctx->options, plain);
        free(plain);
        if (addrs == NULL)
            continue;
        if (list != NULL)
            add_all(addrs, list);
        bool done = first != NULL && first_mailbox(addrs, first);
        g_object_unref(addrs);
        if (done)
            break;
    }
    if (!encoded) {
        InternetAddressList *addrs = g_mime_message_get_addresses(msg, type);
        if (list != NULL)
            add_all(addrs, list);
        if (first != NULL)
            first_mailbox(addrs, first);
    }
}

/* warn_repeated - the warnings a repeated field deserves: a second, other
 * value of a field read once is ignored; a second address list is merged */
static void warn_repeated(struct mime_ctx *ctx, GMimeHeaderList *hl)
{
    static const char *const single[] = {"Subject",    "Date", "Message-ID", "In-Reply-To",
                                         "References", "From", "Sender"};
    static const char *const lists[] = {"To", "Cc", "Reply-To"};
    int n = g_mime_header_list_get_count(hl);
    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h), *single_name = NULL, *list_name = NULL;
        for (size_t k = 0; k < sizeof(single) / sizeof(single[0]); k++)
            if (g_ascii_strcasecmp(name, single[k]) == 0)
                single_name = single[k];
        for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++)
            if (g_ascii_strcasecmp(name, lists[k]) == 0)
                list_name = lists[k];
        GMimeHeader *first =
            single_name != NULL || list_name != NULL ? g_mime_header_list_get_header(hl, name) : h;
        if (first == h)
            continue;
        const char *a = g_mime_header_get_raw_value(first), *b = g_mime_header_get_raw_value(h);
        if (single_name != NULL && a != NULL && b != NULL && strcmp(a, b) != 0)
            mail_add_warning(ctx->mail, "conflicting %s headers: the first is used", single_name);
        if (list_name != NULL)
            mail_add_warning(ctx->mail, "several %s headers: their addresses are merged",
                             list_name);
    }
}

/* mime_headers_fill - subject, date, ids and addresses of MSG */
void mime_headers_fill(struct mime_ctx *ctx, GMimeMessage *msg)
{
    struct mb_mail *m = ctx->mail;
    GMimeHeaderList *hl = g_mime_object_get_header_list((GMimeObject *)msg);
    warn_repeated(ctx, hl);
    fill_subject(ctx, hl);
    fill_date(ctx, hl);
    fill_ids(ctx, hl);
    fill_addresses(ctx, msg, "From", "From header", GMIME_ADDRESS_TYPE_FROM, &m->from, NULL);
    fill_addresses(ctx, msg, "Sender", "Sender header", GMIME_ADDRESS_TYPE_SENDER, &m->sender,
                   NULL);
    fill_addresses(ctx, msg, "Reply-To", "Reply-To header", GMIME_ADDRESS_TYPE_REPLY_TO, NULL,
                   &m->reply_to);
    fill_addresses(ctx, msg, "To", "To header", GMIME_ADDRESS_TYPE_TO, NULL, &m->to);
    fill_addresses(ctx, msg, "Cc", "Cc header", GMIME_ADDRESS_TYPE_CC, NULL, &m->cc);
}
