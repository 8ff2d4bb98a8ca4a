/* source - the generic part of every mail source (see source.h): settings,
 * dispatch through the vtable, and source_open_path, which looks at a path
 * and decides whether it is a Maildir, a directory, an mbox or one message. */
#include "transport/source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "transport/local.h"

#define SOURCE_DEFAULT_MAX_MESSAGE (50u * 1024 * 1024)

/* source_settings_default - the documented defaults of source.h */
void source_settings_default(struct source_settings *s)
{
    s->max_message_size = SOURCE_DEFAULT_MAX_MESSAGE;
}

/* is_dir - PATH names a directory (symlinks followed) */
static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* is_maildir - DIR holds the cur/ and new/ directories of a Maildir */
static bool is_maildir(const char *dir)
{
    char *cur = xasprintf("%s/cur", dir);
    char *new = xasprintf("%s/new", dir);
    bool yes = is_dir(cur) && is_dir(new);
    free(cur);
    free(new);
    return yes;
}

/* open_file - a regular file is an mbox when it starts with "From "; any
 * other content is one message. An empty file is one empty message, not an
 * empty mbox: the user named it, so it gets a result of its own (mime_parse
 * refuses it as an empty message) instead of silently nothing. */
static enum mb_status open_file(const char *path, const char *abs, const struct source_settings *s,
                                struct source **src_r, struct mb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mb_error_set(err, MB_CONFIG, "%s: %s", path, strerror(errno));
    char head[5];
    ssize_t n;
    do
        n = pread(fd, head, sizeof(head), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int saved = errno;
        close(fd);
        return mb_error_set(err, MB_CONFIG, "%s: %s", path, strerror(saved));
    }
    if (n == (ssize_t)sizeof(head) && memcmp(head, "From ", sizeof(head)) == 0)
        return source_mbox_open(abs, fd, s, src_r, err);
    *src_r = source_file_open(abs, fd, s);
    return MB_OK;
}

/* source_open_path - decide the kind from what PATH is; the name and the
 * ids use its absolute path, so they do not depend on the working directory */
enum mb_status source_open_path(const char *path, const struct source_settings *s,
                                struct source **src_r, struct mb_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return mb_error_set(err, MB_CONFIG, "%s: %s", path, strerror(errno));
    char abs[PATH_MAX];
    if (realpath(path, abs) == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (is_maildir(abs))
            return source_maildir_open(abs, s, src_r, err);
        return source_dir_open(abs, s, src_r, err);
    }
    if (S_ISREG(st.st_mode))
        return open_file(path, abs, s, src_r, err);
    return mb_error_set(err, MB_CONFIG, "%s: neither a directory nor a regular file", path);
}

/* source_next - dispatch to the kind */
enum mb_status source_next(struct source *src, struct source_msg *msg_r, bool *got_r,
                           struct mb_error *err)
{
    return src->ops->next(src, msg_r, got_r, err);
}

/* source_handed - dispatch; archives keep no progress */
enum mb_status source_handed(struct source *src, const struct source_msg *msg, struct mb_error *err)
{
    return src->ops->handed == NULL ? MB_OK : src->ops->handed(src, msg, err);
}

/* source_settle - dispatch; archives have no processed-mail action, so
 * every item is settled as it stands */
enum mb_status source_settle(struct source *src, struct source_settle_item *items, size_t n,
                             struct mb_error *err)
{
    if (src->ops->settle != NULL)
        return src->ops->settle(src, items, n, err);
    for (size_t i = 0; i < n; i++) {
        items[i].result = MB_OK;
        mb_error_clear(&items[i].error);
    }
    return MB_OK;
}

/* source_is_mailbox - a mailbox is what has a processed-mail action */
bool source_is_mailbox(const struct source *src)
{
    return src->ops->settle != NULL;
}

/* source_progress - dispatch to the kind */
void source_progress(struct source *src, unsigned long long *done_r, unsigned long long *total_r)
{
    src->ops->progress(src, done_r, total_r);
}

/* source_where - the source's name and the message's id, once each */
char *source_where(const struct source *src, const struct source_msg *msg)
{
    if (msg->id[0] == '/') /* a full path already: only the kind is missing */
        return xasprintf("%s:%s", src->ops->name, msg->id);
    if (strcmp(src->name, msg->id) == 0)
        return xstrdup(src->name);
    return xasprintf("%s:%s", src->name, msg->id);
}

/* source_close - free the name, then let the kind free its own struct */
void source_close(struct source **src)
{
    if (*src == NULL)
        return;
    free((*src)->name);
    (*src)->ops->destroy(*src);
    *src = NULL;
}

/* source_too_large - the one wording of the size-limit error */
enum mb_status source_too_large(size_t limit, struct mb_error *err)
{
    return mb_error_set(err, MB_PERM, "message larger than %zu bytes", limit);
}
