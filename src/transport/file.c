/* file - the sources that hold whole messages in files: one message file,
 * a directory of message files, and a descriptor (standard input of
 * `deliver`); plus the capped reader and the sorted directory listing that
 * the Maildir source shares. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "transport/local.h"

#define FILE_READ_CHUNK (64 * 1024)

/* One message file (fd >= 0 until it is read) or a directory of them (fd
 * -1: each file is opened when its turn comes). */
struct file_source {
    struct source base;
    char **ids; /* owned: absolute paths, which are also the message ids */
    size_t count;
    size_t next;     /* index of the next message */
    int fd;          /* owned: the single file until read, else -1 */
    struct buf data; /* owned: the current message, reused; limit = max size */
};

/* One message read from a descriptor we do not own (standard input). */
struct fd_source {
    struct source base;
    int fd; /* borrowed: the caller closes it */
    bool done;
    struct buf data; /* owned; limit = max size */
};

/* source_read_fd - see local.h. A regular file is checked by its size
 * first, so an oversized one is refused without reading it. */
enum mb_status source_read_fd(int fd, const char *what, struct buf *b, struct mb_error *err)
{
    buf_reset(b);
    buf_append(b, "", 0); /* allocates, so data is non-NULL for an empty message */
    struct stat st;
    if (b->limit != 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (unsigned long long)st.st_size > b->limit)
        return source_too_large(b->limit, err);
    char chunk[FILE_READ_CHUNK];
    for (;;) {
        size_t want = sizeof(chunk);
        /* never read more than one byte past the limit */
        if (b->limit != 0 && b->limit - b->len < want - 1)
            want = b->limit - b->len + 1;
        ssize_t n = read(fd, chunk, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mb_error_set(err, MB_TEMP, "read %s: %s", what, strerror(errno));
        if (n == 0)
            return MB_OK;
        if (!buf_append(b, chunk, (size_t)n))
            return source_too_large(b->limit, err);
    }
}

/* compare_names - qsort order of two char * by byte value */
static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* source_list_files - readdir, keep the regular non-dot files, sort */
enum mb_status source_list_files(const char *dir, char ***names_r, size_t *count_r,
                                 struct mb_error *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t count = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL)
            break;
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        names = xreallocarray(names, count + 1, sizeof(*names));
        names[count++] = xstrdup(de->d_name);
    }
    int saved = errno;
    closedir(d);
    if (saved != 0) {
        source_free_names(&names, count);
        return mb_error_set(err, MB_CONFIG, "%s: %s", dir, strerror(saved));
    }
    if (count > 0)
        qsort(names, count, sizeof(*names), compare_names);
    *names_r = names;
    *count_r = count;
    return MB_OK;
}

/* source_free_names - see local.h */
void source_free_names(char ***names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free((*names)[i]);
    free(*names);
    *names = NULL;
}

/* file_of - the file source behind SRC */
static struct file_source *file_of(struct source *src)
{
    return (struct file_source *)src;
}

/* file_next - read the next file whole; an unreadable or oversized file
 * fails alone and the next call moves on */
static enum mb_status file_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                                struct mb_error *err)
{
    struct file_source *f = file_of(src);
    *got_r = false;
    *msg_r = (struct source_msg){NULL, NULL, 0};
    if (f->next == f->count)
        return MB_OK;
    const char *path = f->ids[f->next++];
    msg_r->id = path;
    int fd = f->fd;
    f->fd = -1;
    if (fd < 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mb_error_set(err, MB_TEMP, "open %s: %s", path, strerror(errno));
    enum mb_status st = source_read_fd(fd, path, &f->data, err);
    close(fd);
    if (st != MB_OK)
        return st;
    msg_r->data = (const unsigned char *)f->data.data;
    msg_r->len = f->data.len;
    *got_r = true;
    return MB_OK;
}

/* file_progress - messages handed out (or failed) of the files listed at open */
static void file_progress(struct source *src, unsigned long long *done_r,
                          unsigned long long *total_r)
{
    struct file_source *f = file_of(src);
    *done_r = f->next;
    *total_r = f->count;
}

/* file_destroy - free everything but base.name (source_close does that) */
static void file_destroy(struct source *src)
{
    struct file_source *f = file_of(src);
    if (f->fd >= 0)
        close(f->fd);
    source_free_names(&f->ids, f->count);
    buf_free(&f->data);
    free(f);
}

static const struct source_ops file_ops = {
    .name = "file",
    .next = file_next,
    .progress = file_progress,
    .destroy = file_destroy,
};

static const struct source_ops dir_ops = {
    .name = "dir",
    .next = file_next,
    .progress = file_progress,
    .destroy = file_destroy,
};

/* file_new - a file source of OPS with no messages yet */
static struct file_source *file_new(const struct source_ops *ops, const char *kind, const char *abs,
                                    const struct source_settings *s)
{
    struct file_source *f = xcalloc(1, sizeof(*f));
    f->base.ops = ops;
    f->base.name = xasprintf("%s:%s", kind, abs);
    f->fd = -1;
    buf_init(&f->data, s->max_message_size);
    return f;
}

/* source_file_open - one message, the file already open */
struct source *source_file_open(const char *abs, int fd, const struct source_settings *s)
{
    struct file_source *f = file_new(&file_ops, "file", abs, s);
    f->ids = xmalloc(sizeof(*f->ids));
    f->ids[0] = xstrdup(abs);
    f->count = 1;
    f->fd = fd;
    return &f->base;
}

/* source_dir_open - list the directory now, read each file in turn */
enum mb_status source_dir_open(const char *abs, const struct source_settings *s,
                               struct source **src_r, struct mb_error *err)
{
    char **names;
    size_t count;
    enum mb_status st = source_list_files(abs, &names, &count, err);
    if (st != MB_OK)
        return st;
    struct file_source *f = file_new(&dir_ops, "dir", abs, s);
    f->ids = xcalloc(count, sizeof(*f->ids));
    for (size_t i = 0; i < count; i++)
        f->ids[i] = xasprintf("%s/%s", abs, names[i]);
    f->count = count;
    source_free_names(&names, count);
    *src_r = &f->base;
    return MB_OK;
}

/* fd_of - the descriptor source behind SRC */
static struct fd_source *fd_of(struct source *src)
{
    return (struct fd_source *)src;
}

/* fd_next - the one message on the descriptor, then the end; empty input
 * is no message at all (*GOT_R false), so `deliver` can say so */
static enum mb_status fd_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                              struct mb_error *err)
{
    struct fd_source *f = fd_of(src);
    *got_r = false;
    *msg_r = (struct source_msg){NULL, NULL, 0};
    if (f->done)
        return MB_OK;
    f->done = true;
    msg_r->id = "stdin";
    enum mb_status st = source_read_fd(f->fd, "standard input", &f->data, err);
    if (st != MB_OK || f->data.len == 0)
        return st;
    msg_r->data = (const unsigned char *)f->data.data;
    msg_r->len = f->data.len;
    *got_r = true;
    return MB_OK;
}

/* fd_progress - 0 or 1 of 1 message */
static void fd_progress(struct source *src, unsigned long long *done_r, unsigned long long *total_r)
{
    *done_r = fd_of(src)->done ? 1 : 0;
    *total_r = 1;
}

/* fd_destroy - free the buffer and the struct; the descriptor stays open */
static void fd_destroy(struct source *src)
{
    struct fd_source *f = fd_of(src);
    buf_free(&f->data);
    free(f);
}

static const struct source_ops fd_ops = {
    .name = "stdin",
    .next = fd_next,
    .progress = fd_progress,
    .destroy = fd_destroy,
};

/* source_open_fd - the descriptor is borrowed: `deliver` keeps its stdin */
enum mb_status source_open_fd(int fd, const struct source_settings *s, struct source **src_r,
                              struct mb_error *err)
{
    (void)err; /* nothing is read before the first next() */
    struct fd_source *f = xcalloc(1, sizeof(*f));
    f->base.ops = &fd_ops;
    f->base.name = xstrdup("stdin");
    f->fd = fd;
    buf_init(&f->data, s->max_message_size);
    *src_r = &f->base;
    return MB_OK;
}
