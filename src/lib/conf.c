/* conf - table-driven configuration files (see conf.h). */
#include "lib/conf.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/xalloc.h"

#define CONF_MAX_FILE (1024 * 1024)
#define CONF_MAX_LINE 4096

struct conf_entry {
    char *key;   /* owned */
    char *value; /* owned */
    char *where; /* owned: "PATH:LINE" */
};

struct conf_section {
    char *kind;  /* owned */
    char *name;  /* owned */
    char *where; /* owned: "PATH:LINE" of the header */
    struct conf_entry *entries; /* owned */
    size_t count;
    const struct conf_key *keys; /* borrowed: set by conf_bind */
};

struct conf {
    struct conf_section **sections; /* owned; [0] is the global section */
    size_t count;
};

static struct conf_section *section_new(struct conf *conf, const char *kind, const char *name,
                                        const char *where)
{
    struct conf_section *sec = xcalloc(1, sizeof(*sec));
    sec->kind = xstrdup(kind);
    sec->name = xstrdup(name);
    sec->where = xstrdup(where);
    conf->sections = xreallocarray(conf->sections, conf->count + 1, sizeof(*conf->sections));
    conf->sections[conf->count++] = sec;
    return sec;
}

static void section_add(struct conf_section *sec, const char *key, const char *value,
                        const char *where)
{
    sec->entries = xreallocarray(sec->entries, sec->count + 1, sizeof(*sec->entries));
    struct conf_entry *e = &sec->entries[sec->count++];
    e->key = xstrdup(key);
    e->value = xstrdup(value);
    e->where = xstrdup(where);
}

/* trim - strip leading and trailing white space in place */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static bool valid_word(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

/* parse_header - "[kind name]" into its two words */
static enum mb_status parse_header(struct conf *conf, char *line, const char *where,
                                   struct conf_section **sec_r, struct mb_error *err)
{
    size_t n = strlen(line);
    if (line[n - 1] != ']')
        return mb_error_set(err, MB_CONFIG, "%s: section header must end with ']'", where);
    line[n - 1] = '\0';
    char *inner = trim(line + 1);
    char *space = inner + strcspn(inner, " \t");
    if (*space == '\0')
        return mb_error_set(err, MB_CONFIG, "%s: section header needs a kind and a name, as [route support]",
                            where);
    *space = '\0';
    char *kind = inner, *name = trim(space + 1);
    if (!valid_word(kind) || !valid_word(name))
        return mb_error_set(err, MB_CONFIG, "%s: section kind and name may hold letters, digits, '_', '-' and '.'",
                            where);
    if (conf_find(conf, kind, name) != NULL)
        return mb_error_set(err, MB_CONFIG, "%s: section [%s %s] is defined twice", where, kind, name);
    *sec_r = section_new(conf, kind, name, where);
    return MB_OK;
}

static enum mb_status parse_line(struct conf *conf, char *line, const char *where,
                                 struct conf_section **sec, struct mb_error *err)
{
    line = trim(line);
    if (*line == '\0' || *line == '#')
        return MB_OK;
    if (*line == '[')
        return parse_header(conf, line, where, sec, err);
    char *eq = strchr(line, '=');
    if (eq == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: expected 'key = value', got '%.60s'", where, line);
    *eq = '\0';
    char *key = trim(line), *value = trim(eq + 1);
    if (!valid_word(key))
        return mb_error_set(err, MB_CONFIG, "%s: '%.60s' is not a valid key name", where, key);
    section_add(*sec, key, value, where);
    return MB_OK;
}

enum mb_status conf_load_string(const char *name, const char *text, struct conf **conf_r,
                                struct mb_error *err)
{
    struct conf *conf = xcalloc(1, sizeof(*conf));
    struct conf_section *sec = section_new(conf, "global", "global", name);
    enum mb_status st = MB_OK;
    unsigned lineno = 0;
    for (const char *p = text; *p != '\0' && st == MB_OK;) {
        size_t len = strcspn(p, "\n");
        lineno++;
        char where[512];
        snprintf(where, sizeof(where), "%s:%u", name, lineno);
        if (len > CONF_MAX_LINE) {
            st = mb_error_set(err, MB_CONFIG, "%s: line longer than %d bytes", where, CONF_MAX_LINE);
            break;
        }
        char *line = xstrndup(p, len);
        st = parse_line(conf, line, where, &sec, err);
        free(line);
        p += len;
        if (*p == '\n')
            p++;
    }
    if (st != MB_OK) {
        conf_free(&conf);
        return st;
    }
    *conf_r = conf;
    return MB_OK;
}

enum mb_status conf_load(const char *path, struct conf **conf_r, struct mb_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: cannot open: %s", path, strerror(errno));
    struct buf text;
    buf_init(&text, CONF_MAX_FILE);
    char chunk[4096];
    size_t n;
    bool fits = true;
    while (fits && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fits = buf_append(&text, chunk, n);
    bool failed = ferror(f);
    fclose(f);
    enum mb_status st;
    if (!fits)
        st = mb_error_set(err, MB_CONFIG, "%s: larger than %d bytes", path, CONF_MAX_FILE);
    else if (failed)
        st = mb_error_set(err, MB_CONFIG, "%s: read error", path);
    else
        st = conf_load_string(path, text.data ? text.data : "", conf_r, err);
    buf_free(&text);
    return st;
}

void conf_free(struct conf **confp)
{
    struct conf *conf = *confp;
    if (conf == NULL)
        return;
    for (size_t i = 0; i < conf->count; i++) {
        struct conf_section *sec = conf->sections[i];
        for (size_t j = 0; j < sec->count; j++) {
            free(sec->entries[j].key);
            free(sec->entries[j].value);
            free(sec->entries[j].where);
        }
        free(sec->entries);
        free(sec->kind);
        free(sec->name);
        free(sec->where);
        free(sec);
    }
    free(conf->sections);
    free(conf);
    *confp = NULL;
}

struct conf_section *conf_global(struct conf *conf)
{
    return conf->sections[0];
}

struct conf_section *conf_find(struct conf *conf, const char *kind, const char *name)
{
    for (size_t i = 1; i < conf->count; i++)
        if (strcmp(conf->sections[i]->kind, kind) == 0 && strcmp(conf->sections[i]->name, name) == 0)
            return conf->sections[i];
    return NULL;
}

struct conf_section *conf_next(struct conf *conf, const char *kind, struct conf_section *prev)
{
    size_t i = 1;
    if (prev != NULL)
        while (i < conf->count && conf->sections[i++] != prev)
            ;
    for (; i < conf->count; i++)
        if (strcmp(conf->sections[i]->kind, kind) == 0)
            return conf->sections[i];
    return NULL;
}

const char *conf_section_kind(const struct conf_section *sec) { return sec->kind; }
const char *conf_section_name(const struct conf_section *sec) { return sec->name; }
const char *conf_section_where(const struct conf_section *sec) { return sec->where; }

static const struct conf_entry *last_entry(const struct conf_section *sec, const char *key)
{
    for (size_t i = sec->count; i > 0; i--)
        if (strcmp(sec->entries[i - 1].key, key) == 0)
            return &sec->entries[i - 1];
    return NULL;
}

const char *conf_raw(const struct conf_section *sec, const char *key)
{
    const struct conf_entry *e = last_entry(sec, key);
    return e ? e->value : NULL;
}

static const struct conf_key *find_key(const struct conf_key *keys, const char *name)
{
    for (; keys != NULL && keys->name != NULL; keys++)
        if (strcmp(keys->name, name) == 0)
            return keys;
    return NULL;
}

/* parse_scaled - a non-negative integer with an optional unit suffix from UNITS */
static bool parse_scaled(const char *text, const char *const *units, const long long *scales,
                         long long bare_scale, long long *value_r)
{
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*text))
        return false;
    long long v = strtoll(text, &end, 10);
    if (errno != 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    long long scale = bare_scale;
    if (*end != '\0') {
        size_t i;
        for (i = 0; units[i] != NULL; i++)
            if (strcmp(end, units[i]) == 0)
                break;
        if (units[i] == NULL)
            return false;
        scale = scales[i];
    }
    if (v > 0 && scale > 0 && v > __LONG_LONG_MAX__ / scale)
        return false;
    *value_r = v * scale;
    return true;
}

bool conf_parse_size(const char *text, long long *value_r)
{
    static const char *const units[] = {"k", "K", "M", "G", "kB", "KB", "MB", "GB", NULL};
    static const long long scales[] = {1LL << 10, 1LL << 10, 1LL << 20, 1LL << 30,
                                       1LL << 10, 1LL << 10, 1LL << 20, 1LL << 30};
    return parse_scaled(text, units, scales, 1, value_r);
}

bool conf_parse_duration_ms(const char *text, long long *value_r)
{
    static const char *const units[] = {"ms", "s", "m", "h", NULL};
    static const long long scales[] = {1, 1000, 60000, 3600000};
    return parse_scaled(text, units, scales, 1000, value_r);
}

static int parse_bool(const char *text)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return 1;
        if (strcasecmp(text, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* convert_number - the integer value of TEXT for an INT, SIZE or DURATION key */
static bool convert_number(const struct conf_key *key, const char *text, long long *value_r)
{
    if (key->type == CONF_SIZE)
        return conf_parse_size(text, value_r);
    if (key->type == CONF_DURATION)
        return conf_parse_duration_ms(text, value_r);
    errno = 0;
    char *end;
    *value_r = strtoll(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

static const char *type_hint(enum conf_type type)
{
    switch (type) {
    case CONF_INT:
        return "a whole number";
    case CONF_SIZE:
        return "a size such as 512k or 25M";
    case CONF_DURATION:
        return "a duration such as 500ms, 30s or 5m";
    case CONF_BOOL:
        return "yes or no";
    default:
        return "a value";
    }
}

static enum mb_status check_value(const struct conf_key *key, const char *value, const char *where,
                                  struct mb_error *err)
{
    long long v;
    switch (key->type) {
    case CONF_BOOL:
        if (parse_bool(value) < 0)
            return mb_error_set(err, MB_CONFIG, "%s: key '%s': expected yes or no, got '%.60s'", where,
                                key->name, value);
        return MB_OK;
    case CONF_INT:
    case CONF_SIZE:
    case CONF_DURATION:
        if (!convert_number(key, value, &v))
            return mb_error_set(err, MB_CONFIG, "%s: key '%s': expected %s, got '%.60s'", where,
                                key->name, type_hint(key->type), value);
        if (v < key->min || v > key->max)
            return mb_error_set(err, MB_CONFIG, "%s: key '%s': %s is out of range [%lld, %lld]%s",
                                where, key->name, value, key->min, key->max,
                                key->type == CONF_SIZE       ? " bytes"
                                : key->type == CONF_DURATION ? " ms"
                                                             : "");
        return MB_OK;
    case CONF_SECRET:
        if (strncmp(value, "env:", 4) == 0 && value[4] == '\0')
            return mb_error_set(err, MB_CONFIG, "%s: key '%s': env: needs a variable name", where,
                                key->name);
        if (strncmp(value, "file:", 5) == 0 && value[5] == '\0')
            return mb_error_set(err, MB_CONFIG, "%s: key '%s': file: needs a path", where, key->name);
        return MB_OK;
    default:
        return MB_OK;
    }
}

enum mb_status conf_bind(struct conf_section *sec, const struct conf_key *keys, struct mb_error *err)
{
    for (size_t i = 0; i < sec->count; i++) {
        const struct conf_entry *e = &sec->entries[i];
        const struct conf_key *key = find_key(keys, e->key);
        if (key == NULL)
            return mb_error_set(err, MB_CONFIG, "%s: unknown key '%s' in [%s %s]", e->where, e->key,
                                sec->kind, sec->name);
        if (key->type != CONF_LIST && last_entry(sec, e->key) != e)
            return mb_error_set(err, MB_CONFIG, "%s: key '%s' is set more than once in [%s %s]",
                                last_entry(sec, e->key)->where, e->key, sec->kind, sec->name);
        enum mb_status st = check_value(key, e->value, e->where, err);
        if (st != MB_OK)
            return st;
    }
    for (const struct conf_key *key = keys; key->name != NULL; key++)
        if (key->required && last_entry(sec, key->name) == NULL)
            return mb_error_set(err, MB_CONFIG, "%s: [%s %s] needs key '%s' (%s)", sec->where, sec->kind,
                                sec->name, key->name, key->help);
    sec->keys = keys;
    return MB_OK;
}

static const struct conf_key *bound_key(const struct conf_section *sec, const char *name)
{
    const struct conf_key *key = find_key(sec->keys, name);
    assert(key != NULL && "configuration key missing from its table");
    return key;
}

const char *conf_str(const struct conf_section *sec, const char *name)
{
    const struct conf_key *key = bound_key(sec, name);
    const char *v = conf_raw(sec, name);
    return v ? v : key->def;
}

long long conf_int(const struct conf_section *sec, const char *name)
{
    const struct conf_key *key = bound_key(sec, name);
    const char *text = conf_str(sec, name);
    long long v = 0;
    if (text != NULL && !convert_number(key, text, &v))
        v = 0; /* only a bad table default gets here; conf_bind checked the file */
    return v;
}

bool conf_bool(const struct conf_section *sec, const char *name)
{
    const char *text = conf_str(sec, name);
    return text != NULL && parse_bool(text) == 1;
}

size_t conf_list(const struct conf_section *sec, const char *name)
{
    bound_key(sec, name);
    size_t n = 0;
    for (size_t i = 0; i < sec->count; i++)
        if (strcmp(sec->entries[i].key, name) == 0)
            n++;
    return n;
}

const char *conf_list_item(const struct conf_section *sec, const char *name, size_t n)
{
    for (size_t i = 0; i < sec->count; i++)
        if (strcmp(sec->entries[i].key, name) == 0 && n-- == 0)
            return sec->entries[i].value;
    return NULL;
}

const char *conf_where(const struct conf_section *sec, const char *name)
{
    const struct conf_entry *e = last_entry(sec, name);
    return e ? e->where : sec->where;
}

/* read_secret_file - the first line of PATH, without its line end */
static enum mb_status read_secret_file(const char *path, const char *where, const char *key,
                                       char **value_r, struct mb_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return mb_error_set(err, MB_CONFIG, "%s: key '%s': cannot read secret file %s: %s", where, key,
                            path, strerror(errno));
    char line[4096];
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    if (!got)
        return mb_error_set(err, MB_CONFIG, "%s: key '%s': secret file %s is empty", where, key, path);
    line[strcspn(line, "\r\n")] = '\0';
    *value_r = xstrdup(line);
    return MB_OK;
}

enum mb_status conf_secret(const struct conf_section *sec, const char *name, char **value_r,
                           struct mb_error *err)
{
    const char *v = conf_str(sec, name);
    const char *where = conf_where(sec, name);
    *value_r = NULL;
    if (v == NULL || *v == '\0')
        return MB_OK;
    if (strncmp(v, "env:", 4) == 0) {
        const char *env = getenv(v + 4);
        if (env == NULL)
            return mb_error_set(err, MB_CONFIG, "%s: key '%s': environment variable %s is not set", where,
                                name, v + 4);
        *value_r = xstrdup(env);
        return MB_OK;
    }
    if (strncmp(v, "file:", 5) == 0)
        return read_secret_file(v + 5, where, name, value_r, err);
    *value_r = xstrdup(v);
    return MB_OK;
}

void conf_write_sample(FILE *out, const char *header, const char *intro, const struct conf_key *keys)
{
    if (header != NULL)
        fprintf(out, "[%s]\n", header);
    if (intro != NULL)
        fprintf(out, "# %s\n", intro);
    for (const struct conf_key *key = keys; key->name != NULL; key++) {
        fprintf(out, "# %s", key->help);
        if (key->type == CONF_INT || key->type == CONF_SIZE || key->type == CONF_DURATION)
            fprintf(out, " (%s, %lld..%lld%s)", type_hint(key->type), key->min, key->max,
                    key->type == CONF_SIZE ? " bytes" : key->type == CONF_DURATION ? " ms" : "");
        else if (key->type == CONF_BOOL)
            fprintf(out, " (yes or no)");
        else if (key->type == CONF_SECRET)
            fprintf(out, " (env:VARIABLE, file:PATH or the value itself)");
        else if (key->type == CONF_LIST)
            fprintf(out, " (may be repeated)");
        fprintf(out, "%s\n", key->required ? " Required." : "");
        const char *shown = key->def ? key->def : key->example ? key->example : "";
        fprintf(out, "#%s = %s\n\n", key->name, shown);
    }
}

char *conf_example_text(const struct conf_key *keys)
{
    struct buf text;
    buf_init(&text, 0);
    for (const struct conf_key *key = keys; key->name != NULL; key++)
        /* required keys, and ids that make a request complete (a default customer);
         * a secret's example names a file: a literal stand-in instead */
        if (key->example != NULL && (key->required || key->type == CONF_INT))
            buf_printf(&text, "%s = %s\n", key->name, key->type == CONF_SECRET ? "example-secret" : key->example);
    return buf_steal(&text);
}
