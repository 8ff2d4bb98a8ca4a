/* maildir - a Maildir read as an archive: every message of new/ and then
 * cur/, each sorted by file name so runs are deterministic; tmp/ and dot
 * files are never read, and nothing is moved or flagged (no handed or settle). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "transport/local.h"

struct maildir_source {
    struct source base;
    char *dir;  /* owned: absolute path of the Maildir */
    char **ids; /* owned: "new/<file>" then "cur/<file>", listed at open */
    size_t count;
    size_t next;     /* index of the next message */
    struct buf data; /* owned: the current message, reused; limit = max size */
};

/* maildir_of - the Maildir source behind SRC */
static struct maildir_source *maildir_of(struct source *src)
{
    return (struct maildir_source *)src;
}

/* relocate - a mail client or the delivery agent may rename a message
 * after we listed it: new/X becomes cur/X:2,S when it is seen, and cur/X:2,S
 * becomes cur/X:2,RS when it is answered. The part before ':' is the
 * message's unique name and never changes, so look for it in cur/ and, when
 * found, make ID the new name. Returns whether it was found. */
static bool relocate(struct maildir_source *m, char **id)
{
    const char *unique = *id + strlen("new/");
    size_t ulen = strcspn(unique, ":");
    char *cur = xasprintf("%s/cur", m->dir);
    char **names;
    size_t count;
    bool found = false;
    if (source_list_files(cur, &names, &count, NULL) == MB_OK) {
        for (size_t i = 0; i < count && !found; i++) {
            if (strncmp(names[i], unique, ulen) == 0 &&
                (names[i][ulen] == ':' || names[i][ulen] == '\0')) {
                free(*id);
                *id = xasprintf("cur/%s", names[i]);
                found = true;
            }
        }
        source_free_names(&names, count);
    }
    free(cur);
    return found;
}

/* open_message - open the file of ID, following a rename (see relocate) */
static int open_message(struct maildir_source *m, char **id)
{
    char *path = xasprintf("%s/%s", m->dir, *id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    if (!relocate(m, id)) {
        errno = ENOENT; /* relocate's own calls may have changed it */
        return -1;
    }
    path = xasprintf("%s/%s", m->dir, *id);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    return fd;
}

/* maildir_next - read the next listed message whole; a vanished, unreadable
 * or oversized one fails alone and the next call moves on */
static enum mb_status maildir_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                                   struct mb_error *err)
{
    struct maildir_source *m = maildir_of(src);
    *got_r = false;
    *msg_r = (struct source_msg){NULL, NULL, 0};
    if (m->next == m->count)
        return MB_OK;
    char **id = &m->ids[m->next++];
    int fd = open_message(m, id);
    msg_r->id = *id;
    if (fd < 0)
        return mb_error_set(err, MB_TEMP, "open %s/%s: %s", m->dir, *id, strerror(errno));
    enum mb_status st = source_read_fd(fd, *id, &m->data, err);
    close(fd);
    if (st != MB_OK)
        return st;
    msg_r->data = (const unsigned char *)m->data.data;
    msg_r->len = m->data.len;
    *got_r = true;
    return MB_OK;
}

/* maildir_progress - messages handed out (or failed) of those listed at open */
static void maildir_progress(struct source *src, unsigned long long *done_r,
                             unsigned long long *total_r)
{
    struct maildir_source *m = maildir_of(src);
    *done_r = m->next;
    *total_r = m->count;
}

/* maildir_destroy - free everything but base.name (source_close does that) */
static void maildir_destroy(struct source *src)
{
    struct maildir_source *m = maildir_of(src);
    free(m->dir);
    source_free_names(&m->ids, m->count);
    buf_free(&m->data);
    free(m);
}

static const struct source_ops maildir_ops = {
    .name = "maildir",
    .next = maildir_next,
    .progress = maildir_progress,
    .destroy = maildir_destroy,
};

/* add_folder - append "SUB/<file>" for every message file in ABS/SUB */
static enum mb_status add_folder(struct maildir_source *m, const char *sub, struct mb_error *err)
{
    char *dir = xasprintf("%s/%s", m->dir, sub);
    char **names;
    size_t count;
    enum mb_status st = source_list_files(dir, &names, &count, err);
    free(dir);
    if (st != MB_OK)
        return st;
    m->ids = xreallocarray(m->ids, m->count + count, sizeof(*m->ids));
    for (size_t i = 0; i < count; i++)
        m->ids[m->count++] = xasprintf("%s/%s", sub, names[i]);
    source_free_names(&names, count);
    return MB_OK;
}

/* source_maildir_open - list new/ and cur/ now, read each message in turn */
enum mb_status source_maildir_open(const char *abs, const struct source_settings *s,
                                   struct source **src_r, struct mb_error *err)
{
    struct maildir_source *m = xcalloc(1, sizeof(*m));
    m->base.ops = &maildir_ops;
    m->base.name = xasprintf("maildir:%s", abs);
    m->dir = xstrdup(abs);
    buf_init(&m->data, s->max_message_size);
    enum mb_status st = add_folder(m, "new", err);
    if (st == MB_OK)
        st = add_folder(m, "cur", err);
    if (st != MB_OK) {
        struct source *src = &m->base;
        source_close(&src);
        return st;
    }
    *src_r = &m->base;
    return MB_OK;
}
