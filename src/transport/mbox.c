/* mbox - an mbox archive streamed message by message: a multi-gigabyte
 * archive costs one read buffer plus the largest message, and a message
 * over the size limit is skipped without being held. Messages are split on
 * "From " lines that follow an empty line (or start the file); the From_
 * line and the empty line before the next one are dropped, mboxrd quoting
 * (">From ", ">>From ", ...) loses one '>', and nothing else is changed. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "transport/local.h"

/* the read buffer; a longer line is handed on in pieces of this size */
#define MBOX_CHUNK (128 * 1024)

struct mbox_source {
    struct source base;
    char *path;                /* owned: absolute path */
    int fd;                    /* owned */
    unsigned char *in;         /* owned: MBOX_CHUNK bytes read ahead */
    size_t pos;                /* first unconsumed byte of IN */
    size_t len;                /* bytes valid in IN */
    unsigned long long offset; /* file offset of in[pos] */
    unsigned long long size;   /* file size at open: reading stops there, so
                                * mail appended during a run waits for the next */
    bool mid_line;             /* the last consumed piece did not end its line */
    bool failed;               /* a read error ended the archive */
    size_t max_size;           /* settings.max_message_size (0 = no limit) */
    char *id;                  /* owned: "<path>@<offset>" of the current message */
    struct buf data;           /* owned: the current message, reused */
};

/* A line, or a piece of a line longer than MBOX_CHUNK, borrowed from IN. */
struct piece {
    const unsigned char *p;
    size_t len; /* 0 only at the end of the archive */
    bool start; /* the piece begins a line */
    bool end;   /* the piece ends its line (newline or end of archive) */
};

/* mbox_of - the mbox source behind SRC */
static struct mbox_source *mbox_of(struct source *src)
{
    return (struct mbox_source *)src;
}

/* fill - move the unconsumed bytes to the front of IN and read more after
 * them, never past the size at open. Returns the bytes added, 0 at the end,
 * -1 with errno on a read error. */
static ssize_t fill(struct mbox_source *m)
{
    if (m->pos > 0) {
        memmove(m->in, m->in + m->pos, m->len - m->pos);
        m->len -= m->pos;
        m->pos = 0;
    }
    unsigned long long file_pos = m->offset + m->len;
    size_t room = MBOX_CHUNK - m->len;
    if (file_pos >= m->size)
        return 0;
    if (m->size - file_pos < room)
        room = (size_t)(m->size - file_pos);
    ssize_t n;
    do
        n = read(m->fd, m->in + m->len, room);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        m->len += (size_t)n;
    return n;
}

/* peek_line - the next line, or the next MBOX_CHUNK bytes of a longer one,
 * without consuming it. PC->p stays valid until the next peek_line. */
static enum mb_status peek_line(struct mbox_source *m, struct piece *pc, struct mb_error *err)
{
    size_t scanned = 0;
    for (;;) {
        const unsigned char *start = m->in + m->pos;
        size_t avail = m->len - m->pos;
        const unsigned char *nl = memchr(start + scanned, '\n', avail - scanned);
        if (nl != NULL) {
            pc->len = (size_t)(nl - start) + 1;
            pc->end = true;
            break;
        }
        scanned = avail;
        if (avail == MBOX_CHUNK) { /* a line longer than the buffer */
            pc->len = avail;
            pc->end = false;
            break;
        }
        ssize_t n = fill(m);
        if (n < 0)
            return mb_error_set(err, MB_TEMP, "read %s: %s", m->path, strerror(errno));
        if (n == 0) { /* the archive ends without a newline, or has ended */
            pc->len = avail;
            pc->end = true;
            break;
        }
    }
    pc->p = m->in + m->pos;
    pc->start = !m->mid_line;
    return MB_OK;
}

/* consume - move past PC */
static void consume(struct mbox_source *m, const struct piece *pc)
{
    m->pos += pc->len;
    m->offset += pc->len;
    m->mid_line = !pc->end;
}

/* is_empty_line - a line that is only LF or CRLF */
static bool is_empty_line(const struct piece *pc)
{
    return pc->start && pc->end &&
           ((pc->len == 1 && pc->p[0] == '\n') ||
            (pc->len == 2 && pc->p[0] == '\r' && pc->p[1] == '\n'));
}

/* is_from_line - a line starting with "From " */
static bool is_from_line(const struct piece *pc)
{
    return pc->start && pc->len >= 5 && memcmp(pc->p, "From ", 5) == 0;
}

/* is_quoted_from - a line matching ^>+From (mboxrd quoting) */
static bool is_quoted_from(const struct piece *pc)
{
    if (!pc->start)
        return false;
    size_t k = 0;
    while (k < pc->len && pc->p[k] == '>')
        k++;
    return k > 0 && pc->len - k >= 5 && memcmp(pc->p + k, "From ", 5) == 0;
}

/* skip_from_line - consume the From_ line PC starts, however long */
static enum mb_status skip_from_line(struct mbox_source *m, struct piece *pc, struct mb_error *err)
{
    for (;;) {
        consume(m, pc);
        if (pc->end)
            return MB_OK;
        enum mb_status st = peek_line(m, pc, err);
        if (st != MB_OK)
            return st;
    }
}

/* read_body - append the message's lines to DATA up to the next From_ line
 * or the end; *OVER_R once DATA refused a line (the rest is still consumed,
 * not held). The empty line before the next From_ belongs to the archive
 * format, not to the message, and is dropped. */
static enum mb_status read_body(struct mbox_source *m, bool *over_r, struct mb_error *err)
{
    bool over = false, prev_empty = false;
    size_t line_start = 0; /* offset in DATA where the last line began */
    for (;;) {
        struct piece pc;
        enum mb_status st = peek_line(m, &pc, err);
        if (st != MB_OK)
            return st;
        if (pc.len == 0 || (prev_empty && is_from_line(&pc)))
            break;
        consume(m, &pc);
        const unsigned char *p = pc.p;
        size_t n = pc.len;
        if (pc.start)
            line_start = m->data.len;
        prev_empty = is_empty_line(&pc);
        if (is_quoted_from(&pc)) {
            p++;
            n--;
        }
        if (!over && !buf_append(&m->data, p, n))
            over = true;
    }
    if (prev_empty && !over) {
        m->data.len = line_start;
        m->data.data[line_start] = '\0';
    }
    *over_r = over;
    return MB_OK;
}

/* mbox_next - the next message; see the file comment for the format */
static enum mb_status mbox_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                                struct mb_error *err)
{
    struct mbox_source *m = mbox_of(src);
    *got_r = false;
    *msg_r = (struct source_msg){NULL, NULL, 0};
    if (m->failed)
        return MB_OK;
    struct piece pc;
    enum mb_status st = peek_line(m, &pc, err);
    if (st == MB_OK && pc.len == 0)
        return MB_OK;
    free(m->id);
    m->id = xasprintf("%s@%llu", m->path, m->offset);
    msg_r->id = m->id;
    if (st != MB_OK) {
        m->failed = true;
        return st;
    }
    buf_reset(&m->data);
    buf_append(&m->data, "", 0); /* allocates, so data is non-NULL when empty */
    bool over = false;
    st = skip_from_line(m, &pc, err);
    if (st == MB_OK)
        st = read_body(m, &over, err);
    if (st != MB_OK) {
        m->failed = true;
        return st;
    }
    if (over || (m->max_size != 0 && m->data.len > m->max_size))
        return source_too_large(m->max_size, err);
    msg_r->data = (const unsigned char *)m->data.data;
    msg_r->len = m->data.len;
    *got_r = true;
    return MB_OK;
}

/* mbox_progress - bytes consumed of the size at open */
static void mbox_progress(struct source *src, unsigned long long *done_r,
                          unsigned long long *total_r)
{
    struct mbox_source *m = mbox_of(src);
    *done_r = m->offset;
    *total_r = m->size;
}

/* mbox_destroy - free everything but base.name (source_close does that) */
static void mbox_destroy(struct source *src)
{
    struct mbox_source *m = mbox_of(src);
    close(m->fd);
    free(m->path);
    free(m->in);
    free(m->id);
    buf_free(&m->data);
    free(m);
}

static const struct source_ops mbox_ops = {
    .name = "mbox",
    .next = mbox_next,
    .progress = mbox_progress,
    .destroy = mbox_destroy,
};

/* source_mbox_open - take FD and note the size it has now */
enum mb_status source_mbox_open(const char *abs, int fd, const struct source_settings *s,
                                struct source **src_r, struct mb_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return mb_error_set(err, MB_CONFIG, "%s: %s", abs, strerror(saved));
    }
    struct mbox_source *m = xcalloc(1, sizeof(*m));
    m->base.ops = &mbox_ops;
    m->base.name = xasprintf("mbox:%s", abs);
    m->path = xstrdup(abs);
    m->fd = fd;
    m->in = xmalloc(MBOX_CHUNK);
    m->size = (unsigned long long)st.st_size;
    m->max_size = s->max_message_size;
    /* room for the separator line (LF or CRLF) that is dropped at the end */
    size_t limit = m->max_size;
    buf_init(&m->data, limit != 0 && limit < SIZE_MAX - 2 ? limit + 2 : 0);
    *src_r = &m->base;
    return MB_OK;
}
