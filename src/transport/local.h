/* local - private to src/transport: the sources that read local files
 * (Maildir, mbox, a directory of files, one file, a descriptor) and the
 * helpers they share. Nothing outside src/transport includes this; the
 * public contract is source.h. */
#ifndef MB_TRANSPORT_LOCAL_H
#define MB_TRANSPORT_LOCAL_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/error.h"
#include "transport/source.h"

/* Each opener takes ABS, the absolute path (borrowed: copied as needed), and
 * fills *SRC_R with a source whose name is set; errors at open are MB_CONFIG.
 * Per-message read errors later are MB_TEMP with msg_r->id naming the
 * message; the following call continues with the next message (an mbox
 * read error ends the archive instead: its position is lost). */
enum mb_status source_maildir_open(const char *abs, const struct source_settings *s,
                                   struct source **src_r, struct mb_error *err);
enum mb_status source_dir_open(const char *abs, const struct source_settings *s,
                               struct source **src_r, struct mb_error *err);
/* source_mbox_open - FD is the open archive (owned from now on, even on error) */
enum mb_status source_mbox_open(const char *abs, int fd, const struct source_settings *s,
                                struct source **src_r, struct mb_error *err);
/* source_file_open - FD is the open message file (owned from now on); it
 * is read on the first next() */
struct source *source_file_open(const char *abs, int fd, const struct source_settings *s);

/* source_list_files - the names of the regular files in DIR (symlinks
 * followed), dot files skipped, sorted by byte value. *NAMES_R is owned by
 * the caller (free with source_free_names). MB_CONFIG naming DIR when it
 * cannot be read. */
enum mb_status source_list_files(const char *dir, char ***names_r, size_t *count_r,
                                 struct mb_error *err);
/* source_free_names - free COUNT strings and the array, and NULL *NAMES */
void source_free_names(char ***names, size_t count);

/* source_read_fd - replace the contents of B with everything readable from
 * FD, reading at most B->limit + 1 bytes (B->limit is the message size
 * limit; 0 = none). MB_PERM "message larger than N bytes" when there is
 * more, MB_TEMP "read WHAT: <strerror>" on a read error. B->data is non-NULL
 * afterwards, even for an empty message. */
enum mb_status source_read_fd(int fd, const char *what, struct buf *b, struct mb_error *err);

/* source_too_large - the MB_PERM error for a message over LIMIT bytes */
enum mb_status source_too_large(size_t limit, struct mb_error *err);

#endif
