/* conf - table-driven configuration files.
 *
 * The file is lines of `key = value`, `#` comments, and section headers
 * `[kind name]` (for example `[connector itx]`, `[route support]`). Keys
 * before the first header belong to the "global" section. A key may repeat
 * only when its type is CONF_LIST.
 *
 * Each section is checked against a table of struct conf_key rows (name,
 * type, default, bounds, help): the same table produces the sample config and
 * --help text, so the documentation cannot drift from the code. Every error
 * names the file, the line and the key.
 *
 * Ownership: conf_load returns a struct conf the caller frees with
 * conf_free(&conf); sections and values it hands out are borrowed and live as
 * long as the struct conf. */
#ifndef MB_LIB_CONF_H
#define MB_LIB_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/error.h"

enum conf_type {
    CONF_STRING,
    CONF_INT,      /* decimal integer within [min, max] */
    CONF_BOOL,     /* yes/no, true/false, on/off, 1/0 */
    CONF_SIZE,     /* bytes, with optional k/M/G suffix (powers of 1024) */
    CONF_DURATION, /* milliseconds, written with ms/s/m/h suffix (bare = seconds) */
    CONF_SECRET,   /* env:NAME, file:PATH, or a literal (discouraged); never logged */
    CONF_LIST,     /* may repeat; each occurrence is one item */
};

struct conf_key {
    const char *name;
    enum conf_type type;
    const char *def; /* default as written in a file; NULL = none */
    long long min;   /* bounds for INT, SIZE and DURATION (after conversion) */
    long long max;
    bool required;
    const char *help;    /* one sentence, shown in the sample config */
    const char *example; /* a typical value for a key without default; NULL = none */
};
#define CONF_KEY_END {NULL, CONF_STRING, NULL, 0, 0, false, NULL, NULL}

struct conf;
struct conf_section;

/* conf_load - read and tokenize PATH. Syntax errors are MB_CONFIG with
 * "PATH:LINE: ..." in ERR. */
enum mb_status conf_load(const char *path, struct conf **conf_r, struct mb_error *err);
/* conf_load_string - the same from memory; NAME stands for the file in errors */
enum mb_status conf_load_string(const char *name, const char *text, struct conf **conf_r,
                                struct mb_error *err);
void conf_free(struct conf **conf);

/* conf_global - the keys before the first section header (never NULL) */
struct conf_section *conf_global(struct conf *conf);
/* conf_find - the section [KIND NAME], or NULL */
struct conf_section *conf_find(struct conf *conf, const char *kind, const char *name);
/* conf_next - iterate sections of KIND: pass NULL first, then the previous result */
struct conf_section *conf_next(struct conf *conf, const char *kind, struct conf_section *prev);

const char *conf_section_kind(const struct conf_section *sec);
const char *conf_section_name(const struct conf_section *sec);
/* conf_section_where - "PATH:LINE" of the section header, for messages */
const char *conf_section_where(const struct conf_section *sec);
/* conf_raw - the last value written for KEY, before any table is bound; NULL if absent */
const char *conf_raw(const struct conf_section *sec, const char *key);

/* conf_bind - check SEC against KEYS (unknown keys, repeats, types, bounds,
 * required keys) and remember the table for the getters below. KEYS must
 * outlive the conf. */
enum mb_status conf_bind(struct conf_section *sec, const struct conf_key *keys,
                         struct mb_error *err);

/* Getters on a bound section. A name missing from the table is our bug
 * (assertion). Values come from the file, else the table default. */
const char *conf_str(const struct conf_section *sec, const char *name); /* NULL if unset */
long long conf_int(const struct conf_section *sec, const char *name);   /* also SIZE, DURATION */
bool conf_bool(const struct conf_section *sec, const char *name);
/* conf_list - number of items of a CONF_LIST key; conf_list_item the Nth */
size_t conf_list(const struct conf_section *sec, const char *name);
const char *conf_list_item(const struct conf_section *sec, const char *name, size_t n);
/* conf_where - "PATH:LINE" where NAME was set (or the section's place) */
const char *conf_where(const struct conf_section *sec, const char *name);
/* conf_secret - resolve a CONF_SECRET: env:NAME, file:PATH (first line,
 * trailing newline stripped) or the literal. *VALUE_R is owned by the caller
 * (NULL when unset and without default). */
enum mb_status conf_secret(const struct conf_section *sec, const char *name, char **value_r,
                           struct mb_error *err);

/* conf_parse_size, conf_parse_duration_ms - the converters used by conf_bind,
 * exposed for command-line options. Return false on a malformed value. */
bool conf_parse_size(const char *text, long long *value_r);
bool conf_parse_duration_ms(const char *text, long long *value_r);

/* conf_write_sample - document every row of KEYS as commented `key = default`
 * (or `key = example`) lines under a `[HEADER]` line (no header when HEADER
 * is NULL). */
void conf_write_sample(FILE *out, const char *header, const char *intro,
                       const struct conf_key *keys);

/* conf_example_text - "key = example" lines for every required key of KEYS
 * and every integer key with an example
 * (owned by the caller): a section that binds, for dry runs without a
 * configuration. */
char *conf_example_text(const struct conf_key *keys);

#endif
