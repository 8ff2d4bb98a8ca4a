/* store - durable state in SQLite (see store.h). One connection and its
 * prepared statements per struct store; the schema is versioned through
 * PRAGMA user_version; every change runs inside BEGIN IMMEDIATE ... COMMIT. */
#include "store/store.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/xalloc.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_APPLICATION_ID 1296200295 /* 0x4d427267, "MBrg": our files among SQLite files */
#define STR(x) #x
#define XSTR(x) STR(x)
#define STORE_BUSY_TIMEOUT_MS 5000

/* migrations[v] takes a database from schema version v to v + 1. Only ever
 * append: a released step never changes, older files replay the steps they
 * miss.
 *
 * Version 1. A message's raw bytes live in their own table until DONE: SQLite
 * rewrites a whole record on any UPDATE, so a blob in the messages row would
 * be copied again at every state change. The attempts table is the
 * history of a message: every post whose outcome is known (ok/temp/perm/
 * down/config; a post in flight is the row's POSTING state and its
 * attempt_started_ms, written once when it ends) and every quarantine
 * decision; messages.attempts counts only the posts that count against the
 * message. States are stored by name, so the rows read well in
 * the sqlite3 shell and do not depend on the enum's order. */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY,"
    " route TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " source TEXT,"
    " message_id TEXT,"
    " subject TEXT,"
    " state TEXT NOT NULL"
    /* ORs, not IN: SQLite builds a temporary index for an IN list of more
     * than two values at every INSERT and UPDATE that checks it */
    "  CHECK (state = 'queued' OR state = 'posting' OR state = 'done' OR state = 'retry'"
    "         OR state = 'quarantine'),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " last_error TEXT,"
    " ticket_id TEXT,"
    " vendor_message_id TEXT,"
    " conversation_id TEXT,"
    " owner_pid INTEGER,"
    " attempt_started_ms INTEGER,"
    " ack_pending INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (route, key));"
    "CREATE TABLE raws ("
    " id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,"
    " raw BLOB NOT NULL);"
    /* store_due and store_list search these by state, with or without a route */
    "CREATE INDEX messages_state ON messages (state, updated_ms);"
    "CREATE INDEX messages_route_state ON messages (route, state, updated_ms);"
    /* store_ack_due: the few rows whose source still waits to hear of them */
    "CREATE INDEX messages_ack ON messages (route, id) WHERE ack_pending = 1;"
    "CREATE TABLE attempts ("
    " id INTEGER PRIMARY KEY,"
    " message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    " started_ms INTEGER NOT NULL,"
    " finished_ms INTEGER,"
    " outcome TEXT,"
    " http_status INTEGER,"
    " error TEXT);"
    "CREATE INDEX attempts_message ON attempts (message);"
    "CREATE TABLE threads ("
    " route TEXT NOT NULL,"
    " message_id TEXT NOT NULL,"
    " ticket_id TEXT NOT NULL,"
    " vendor_message_id TEXT,"
    " conversation_id TEXT,"
    " updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (route, message_id)) WITHOUT ROWID;"
    /* how far a mailbox folder was read: UIDVALIDITY and the next UID to fetch */
    "CREATE TABLE checkpoints ("
    " source TEXT NOT NULL,"
    " folder TEXT NOT NULL,"
    " uidvalidity INTEGER NOT NULL,"
    " next_uid INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (source, folder)) WITHOUT ROWID;"
    /* items a source has handed over already (POP3 UIDLs left on the server) */
    "CREATE TABLE source_items ("
    " source TEXT NOT NULL,"
    " item TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " PRIMARY KEY (source, item)) WITHOUT ROWID;"
    "PRAGMA application_id = " XSTR(STORE_APPLICATION_ID) ";",
};

/* The columns msg_from_row reads, in its order. */
#define MSG_COLUMNS                                                                                \
    "id, route, key, source, message_id, subject, state, attempts, next_attempt_ms, updated_ms, "  \
    "last_error, ticket_id, vendor_message_id, owner_pid, attempt_started_ms"

enum stmt_id {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_SAVEPOINT,
    STMT_RELEASE,
    STMT_ROLLBACK_TO,
    STMT_INSERT,
    STMT_BY_KEY,
    STMT_STATE,
    STMT_START,
    STMT_ATTEMPT,
    STMT_EVENT,
    STMT_DONE,
    STMT_SET_STATE,
    STMT_THREAD_PUT,
    STMT_THREAD_GET,
    STMT_RAW,
    STMT_RAW_PUT,
    STMT_RAW_KEEP,
    STMT_RAW_DROP,
    STMT_DUE,
    STMT_DUE_ROUTE,
    STMT_LIST,
    STMT_LIST_ROUTE,
    STMT_COUNTS,
    STMT_REQUEUE,
    STMT_ACK_DUE,
    STMT_ACK_DONE,
    STMT_RELOCATE,
    STMT_CKPT_GET,
    STMT_CKPT_PUT,
    STMT_ITEM_GET,
    STMT_ITEM_PUT,
    STMT_COUNT
};

/* Every statement the store runs, prepared once in store_open. The due and
 * list pairs share parameter numbers so one function binds either. */
static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT op",
    [STMT_RELEASE] = "RELEASE op",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO op",
    /* ?9 'posting' claims the new row at once, as STMT_START would */
    [STMT_INSERT] = "INSERT INTO messages (route, key, source, message_id, subject, state,"
                    " attempts, owner_pid, attempt_started_ms, created_ms, updated_ms, ack_pending)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?9, ?10, ?11, ?12, ?6, ?6, ?8)"
                    " ON CONFLICT (route, key) DO NOTHING",
    [STMT_BY_KEY] = "SELECT " MSG_COLUMNS " FROM messages WHERE route = ?1 AND key = ?2",
    [STMT_STATE] = "SELECT state FROM messages WHERE id = ?1",
    [STMT_START] = "UPDATE messages SET state = 'posting', attempts = attempts + 1,"
                   " updated_ms = ?2, attempt_started_ms = ?2, owner_pid = ?3 WHERE id = ?1",
    [STMT_ATTEMPT] = "INSERT INTO attempts (message, started_ms, finished_ms, outcome, http_status, error)"
                     " SELECT id, attempt_started_ms, ?2, ?3, ?4, ?5 FROM messages WHERE id = ?1",
    [STMT_EVENT] = "INSERT INTO attempts (message, started_ms, finished_ms, outcome, error)"
                   " VALUES (?1, ?2, ?2, ?3, ?4)",
    [STMT_DONE] = "UPDATE messages SET state = 'done', next_attempt_ms = 0, updated_ms = ?2,"
                  " last_error = NULL, ticket_id = ?3, vendor_message_id = ?4,"
                  " conversation_id = ?5 WHERE id = ?1 AND state = 'posting'",
    /* ?7, when given, is the state the message must be in */
    [STMT_SET_STATE] = "UPDATE messages SET state = ?2, next_attempt_ms = ?3, last_error = ?4,"
                       " attempts = attempts - ?5, updated_ms = ?6"
                       " WHERE id = ?1 AND (?7 IS NULL OR state = ?7)",
    [STMT_THREAD_PUT] = "INSERT INTO threads (route, message_id, ticket_id, vendor_message_id,"
                        " conversation_id, updated_ms)"
                        " SELECT route, message_id, ?2, ?3, ?4, ?5 FROM messages"
                        " WHERE id = ?1 AND message_id IS NOT NULL AND ?2 IS NOT NULL"
                        " ON CONFLICT (route, message_id) DO UPDATE SET"
                        " ticket_id = excluded.ticket_id,"
                        " vendor_message_id = excluded.vendor_message_id,"
                        " conversation_id = excluded.conversation_id,"
                        " updated_ms = excluded.updated_ms",
    [STMT_THREAD_GET] = "SELECT ticket_id, vendor_message_id, conversation_id FROM threads"
                        " WHERE route = ?1 AND message_id = ?2",
    [STMT_RAW] = "SELECT m.id, r.raw FROM messages m LEFT JOIN raws r ON r.id = m.id WHERE m.id = ?1",
    [STMT_RAW_PUT] = "INSERT INTO raws (id, raw) VALUES (?1, ?2)",
    [STMT_RAW_KEEP] = "INSERT INTO raws (id, raw) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
    [STMT_RAW_DROP] = "DELETE FROM raws WHERE id = ?1",
    [STMT_DUE] = "SELECT " MSG_COLUMNS " FROM messages WHERE state IN ('queued', 'retry')"
                 " AND (state = 'queued' OR next_attempt_ms <= ?1) ORDER BY id LIMIT ?2",
    [STMT_DUE_ROUTE] = "SELECT " MSG_COLUMNS " FROM messages WHERE route = ?3"
                       " AND state IN ('queued', 'retry')"
                       " AND (state = 'queued' OR next_attempt_ms <= ?1) ORDER BY id LIMIT ?2",
    [STMT_LIST] = "SELECT " MSG_COLUMNS " FROM messages WHERE state = ?1"
                  " ORDER BY updated_ms DESC, id DESC LIMIT ?2",
    [STMT_LIST_ROUTE] = "SELECT " MSG_COLUMNS " FROM messages WHERE route = ?3 AND state = ?1"
                        " ORDER BY updated_ms DESC, id DESC LIMIT ?2",
    [STMT_COUNTS] = "SELECT state, count(*) FROM messages WHERE ?1 IS NULL OR route = ?1"
                    " GROUP BY state",
    [STMT_REQUEUE] = "UPDATE messages SET state = 'queued', next_attempt_ms = 0, attempts = 0,"
                     " last_error = NULL, updated_ms = ?1"
                     " WHERE state IN ('quarantine', 'retry')"
                     " AND EXISTS (SELECT 1 FROM raws WHERE raws.id = messages.id)"
                     " AND (?2 IS NULL OR route = ?2) AND (?3 IS NULL OR key = ?3)",
    [STMT_ACK_DUE] = "SELECT " MSG_COLUMNS " FROM messages WHERE route = ?1 AND ack_pending = 1"
                     " AND state IN ('done', 'quarantine') ORDER BY id LIMIT ?2",
    [STMT_ACK_DONE] = "UPDATE messages SET ack_pending = 0 WHERE id = ?1",
    [STMT_RELOCATE] = "UPDATE messages SET source = ?2, ack_pending = 1, updated_ms = ?3 WHERE id = ?1",
    [STMT_CKPT_GET] = "SELECT uidvalidity, next_uid FROM checkpoints WHERE source = ?1 AND folder = ?2",
    [STMT_CKPT_PUT] = "INSERT INTO checkpoints (source, folder, uidvalidity, next_uid, updated_ms)"
                      " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (source, folder) DO UPDATE SET"
                      " uidvalidity = excluded.uidvalidity, next_uid = excluded.next_uid,"
                      " updated_ms = excluded.updated_ms",
    [STMT_ITEM_GET] = "SELECT 1 FROM source_items WHERE source = ?1 AND item = ?2",
    [STMT_ITEM_PUT] = "INSERT INTO source_items (source, item, created_ms) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT DO NOTHING",
};

struct store {
    sqlite3 *db;                    /* owned */
    char *path;                     /* owned: names the file in every error */
    sqlite3_stmt *stmt[STMT_COUNT]; /* owned: prepared once, reset after each use */
    bool batch;                     /* a store_batch_begin transaction is open */
    long long pid;                  /* ours, for owner_pid (getpid is a system call) */
};

/* db_class - what a failed SQLite call means to the caller */
static enum mb_status db_class(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY: /* another process held the lock past the busy timeout */
    case SQLITE_LOCKED:
    case SQLITE_FULL: /* disk full: space may come back */
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL: /* a WAL lock race between processes */
        return MB_TEMP;
    case SQLITE_CANTOPEN: /* the file is wrong: the operator must act */
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_NOLFS:
    case SQLITE_AUTH:
        return MB_CONFIG;
    default: /* constraint, too big, misuse: this request can never succeed */
        return MB_PERM;
    }
}

/* db_fail - classify RC and fill ERR with the file, WHAT we were doing and
 * SQLite's message (plus the system's, when the file could not be opened) */
static enum mb_status db_fail(struct store *s, int rc, const char *what, struct mb_error *err)
{
    int sys = sqlite3_system_errno(s->db);
    if ((rc & 0xff) == SQLITE_CANTOPEN && sys != 0)
        return mb_error_set(err, db_class(rc), "store %s: %s: %s (%s)", s->path, what,
                            sqlite3_errmsg(s->db), strerror(sys));
    return mb_error_set(err, db_class(rc), "store %s: %s: %s", s->path, what,
                        sqlite3_errmsg(s->db));
}

/* stmt_reset - ready a statement for its next use, without its bindings */
static void stmt_reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* run - step a statement that yields no rows, then reset it */
static enum mb_status run(struct store *s, sqlite3_stmt *st, const char *what, struct mb_error *err)
{
    int rc = sqlite3_step(st);
    enum mb_status status = rc == SQLITE_DONE ? MB_OK : db_fail(s, rc, what, err);
    stmt_reset(st);
    return status;
}

/* tx_begin - BEGIN IMMEDIATE takes the write lock first, so a busy
 * database fails here (MB_TEMP after the busy timeout), never halfway */
/* Inside a batch (store_batch_begin) every operation is a savepoint of the
 * batch's transaction: atomic on its own, durable only at store_batch_commit. */
static enum mb_status tx_begin(struct store *s, const char *what, struct mb_error *err)
{
    return run(s, s->stmt[s->batch ? STMT_SAVEPOINT : STMT_BEGIN], what, err);
}

/* tx_end - commit when STATUS is MB_OK, otherwise (or when the commit
 * fails) roll back; returns what the caller should return */
static enum mb_status tx_end(struct store *s, enum mb_status status, const char *what,
                             struct mb_error *err)
{
    if (s->batch) {
        if (status != MB_OK)
            run(s, s->stmt[STMT_ROLLBACK_TO], what, NULL); /* keep the first error */
        enum mb_status released = run(s, s->stmt[STMT_RELEASE], what, status == MB_OK ? err : NULL);
        return status == MB_OK ? released : status;
    }
    if (status == MB_OK)
        status = run(s, s->stmt[STMT_COMMIT], what, err);
    if (status != MB_OK && !sqlite3_get_autocommit(s->db))
        run(s, s->stmt[STMT_ROLLBACK], what, NULL); /* keep the first error */
    return status;
}

/* column_str - a copy of a text column; NULL stays NULL */
static char *column_str(sqlite3_stmt *st, int col)
{
    return xstrdup((const char *)sqlite3_column_text(st, col));
}

/* column_state - the state held in column COL; MB_CONFIG for a name this
 * version does not know (a file edited by hand or by something else) */
static enum mb_status column_state(struct store *s, sqlite3_stmt *st, int col,
                                   enum msg_state *state_r, struct mb_error *err)
{
    const char *name = (const char *)sqlite3_column_text(st, col);
    int state = name != NULL ? msg_state_parse(name) : -1;
    if (state < 0)
        return mb_error_set(err, MB_CONFIG, "store %s: unknown message state '%s'", s->path,
                            name != NULL ? name : "NULL");
    *state_r = (enum msg_state)state;
    return MB_OK;
}

/* msg_from_row - fill MSG (zeroed on failure) from a row of MSG_COLUMNS */
static enum mb_status msg_from_row(struct store *s, sqlite3_stmt *st, struct store_msg *msg,
                                   struct mb_error *err)
{
    memset(msg, 0, sizeof(*msg));
    enum mb_status status = column_state(s, st, 6, &msg->state, err);
    if (status != MB_OK)
        return status;
    msg->id = sqlite3_column_int64(st, 0);
    msg->route = column_str(st, 1);
    msg->key = column_str(st, 2);
    msg->source = column_str(st, 3);
    msg->message_id = column_str(st, 4);
    msg->subject = column_str(st, 5);
    msg->attempts = (unsigned)sqlite3_column_int64(st, 7);
    msg->next_attempt_ms = sqlite3_column_int64(st, 8);
    msg->updated_ms = sqlite3_column_int64(st, 9);
    msg->last_error = column_str(st, 10);
    msg->ticket_id = column_str(st, 11);
    msg->vendor_message_id = column_str(st, 12);
    msg->owner_pid = (long)sqlite3_column_int64(st, 13);
    msg->attempt_started_ms = sqlite3_column_int64(st, 14);
    return MB_OK;
}

/* collect - every row ST yields, as an array the caller frees with
 * store_msgs_free; ST is reset */
static enum mb_status collect(struct store *s, sqlite3_stmt *st, const char *what,
                              struct store_msg **msgs_r, size_t *count_r, struct mb_error *err)
{
    struct store_msg *msgs = NULL;
    size_t count = 0, cap = 0;
    enum mb_status status = MB_OK;
    int rc = SQLITE_DONE;
    while (status == MB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            msgs = xreallocarray(msgs, cap, sizeof(*msgs));
        }
        status = msg_from_row(s, st, &msgs[count], err);
        if (status == MB_OK)
            count++;
    }
    if (status == MB_OK && rc != SQLITE_DONE)
        status = db_fail(s, rc, what, err);
    stmt_reset(st);
    if (status != MB_OK) {
        store_msgs_free(&msgs, count);
        count = 0;
    }
    *msgs_r = msgs;
    *count_r = count;
    return status;
}

/* limit_arg - LIMIT as SQLite takes it */
static sqlite3_int64 limit_arg(size_t limit)
{
    return limit > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit;
}

/* bind_text - bind a borrowed string (NULL binds NULL) for one statement run */
static void bind_text(sqlite3_stmt *st, int param, const char *text)
{
    sqlite3_bind_text(st, param, text, -1, SQLITE_STATIC);
}

/* load_state - the state of message ID; MB_PERM when there is no such message */
static enum mb_status load_state(struct store *s, long long id, enum msg_state *state_r,
                                 const char *what, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_STATE];
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    enum mb_status status;
    if (rc == SQLITE_ROW)
        status = column_state(s, st, 0, state_r, err);
    else if (rc == SQLITE_DONE)
        status =
            mb_error_set(err, MB_PERM, "store %s: %s: unknown message %lld", s->path, what, id);
    else
        status = db_fail(s, rc, what, err);
    stmt_reset(st);
    return status;
}

/* record_attempt - the history row of the post of message ID just ended
 * with OUTCOME */
static enum mb_status record_attempt(struct store *s, long long id, long long now,
                                     const char *outcome, long http_status, const char *error,
                                     const char *what, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_ATTEMPT];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    bind_text(st, 3, outcome);
    if (http_status != 0)
        sqlite3_bind_int64(st, 4, http_status);
    bind_text(st, 5, error);
    return run(s, st, what, err);
}

/* set_state - move message ID to STATE (only if it is POSTING when
 * FROM_POSTING: see was_posting); UNCOUNT is 1 when the attempt just made
 * must not count against the message */
static enum mb_status set_state(struct store *s, long long id, enum msg_state state,
                                long long next_attempt_ms, const char *error, int uncount,
                                bool from_posting, long long now, const char *what,
                                struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_SET_STATE];
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, msg_state_name(state));
    sqlite3_bind_int64(st, 3, next_attempt_ms);
    bind_text(st, 4, error);
    sqlite3_bind_int(st, 5, uncount);
    sqlite3_bind_int64(st, 6, now);
    if (from_posting)
        bind_text(st, 7, msg_state_name(MSG_POSTING));
    return run(s, st, what, err);
}

/* was_posting - after an UPDATE of message ID guarded by "state =
 * 'posting'": MB_OK when it changed the row, else MB_PERM saying why */
static enum mb_status was_posting(struct store *s, long long id, const char *what, struct mb_error *err)
{
    if (sqlite3_changes(s->db) > 0)
        return MB_OK;
    enum msg_state state = MSG_QUEUED;
    enum mb_status status = load_state(s, id, &state, what, err);
    if (status != MB_OK)
        return status;
    return mb_error_set(err, MB_PERM, "store %s: %s: message %lld is %s, not posting", s->path,
                        what, id, msg_state_name(state));
}

/* get_by_key - MSG_R (zeroed first) for (ROUTE, KEY); MB_PERM when absent */
static enum mb_status get_by_key(struct store *s, const char *route, const char *key,
                                 struct store_msg *msg_r, const char *what, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_BY_KEY];
    memset(msg_r, 0, sizeof(*msg_r));
    bind_text(st, 1, route);
    bind_text(st, 2, key);
    int rc = sqlite3_step(st);
    enum mb_status status;
    if (rc == SQLITE_ROW)
        status = msg_from_row(s, st, msg_r, err);
    else if (rc == SQLITE_DONE)
        status = mb_error_set(err, MB_PERM, "store %s: %s: unknown message route=%s key=%s",
                              s->path, what, route, key);
    else
        status = db_fail(s, rc, what, err);
    stmt_reset(st);
    return status;
}

/* exec - run SQL (one or more statements) outside the prepared set */
static enum mb_status exec(struct store *s, const char *sql, const char *what, struct mb_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? MB_OK : db_fail(s, rc, what, err);
}

/* query_int - the single integer SQL yields */
static enum mb_status query_int(struct store *s, const char *sql, long long *value_r,
                                struct mb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *value_r = sqlite3_column_int64(st, 0);
    enum mb_status status = rc == SQLITE_ROW ? MB_OK : db_fail(s, rc, "reading the schema", err);
    sqlite3_finalize(st);
    return status;
}

/* configure - connection settings: busy timeout, foreign keys, WAL with
 * synchronous=FULL (a commit is on disk when it returns) */
static enum mb_status configure(struct store *s, struct mb_error *err)
{
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if (sqlite3_db_readonly(s->db, "main") == 1)
        return mb_error_set(err, MB_CONFIG, "store %s: the file is read-only", s->path);
    /* A batch of raw messages must fit the page cache (32 MiB), or SQLite
     * spills it into the WAL page by page before the commit. */
    enum mb_status status = exec(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
                                    " PRAGMA cache_size = -32768", "configuring", err);
    if (status != MB_OK)
        return status;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        if (mode == NULL || strcmp(mode, "wal") != 0)
            status =
                mb_error_set(err, MB_CONFIG, "store %s: cannot use a WAL journal here (got %s)",
                             s->path, mode != NULL ? mode : "nothing");
    } else {
        status = db_fail(s, rc, "setting WAL mode", err);
    }
    sqlite3_finalize(st);
    return status;
}

/* check_schema - *VERSION_R of the file; MB_CONFIG for a file that is not
 * ours or is newer than this program */
static enum mb_status check_schema(struct store *s, long long *version_r, struct mb_error *err)
{
    long long app_id = 0, objects = 0;
    *version_r = 0;
    enum mb_status status = query_int(s, "PRAGMA application_id", &app_id, err);
    if (status == MB_OK)
        status = query_int(s, "PRAGMA user_version", version_r, err);
    if (status == MB_OK)
        status = query_int(s, "SELECT count(*) FROM sqlite_master", &objects, err);
    if (status == MB_OK && (app_id != STORE_APPLICATION_ID && (app_id != 0 || objects > 0)))
        return mb_error_set(err, MB_CONFIG, "store %s: not a mailbridge store", s->path);
    if (status == MB_OK && *version_r > STORE_SCHEMA_VERSION)
        return mb_error_set(err, MB_CONFIG,
                            "store %s: schema version %lld is newer than this mailbridge knows (%d)",
                            s->path, *version_r, STORE_SCHEMA_VERSION);
    return status;
}

/* migrate - create the schema in a new file, bring an older one up to
 * STORE_SCHEMA_VERSION; refuse newer files and files that are not ours.
 * An up-to-date file is only read: opening the store (`status`) must not
 * wait for the write lock a daemon holds during a batch. */
static enum mb_status migrate(struct store *s, struct mb_error *err)
{
    long long version = 0;
    enum mb_status status = check_schema(s, &version, err);
    if (status != MB_OK || version == STORE_SCHEMA_VERSION)
        return status;
    status = exec(s, "BEGIN IMMEDIATE", "reading the schema", err);
    if (status != MB_OK)
        return status;
    status = check_schema(s, &version, err); /* another process may have been first */
    for (long long v = version; status == MB_OK && v < STORE_SCHEMA_VERSION; v++)
        status = exec(s, migrations[v], "creating the schema", err);
    if (status == MB_OK && version < STORE_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
        status = exec(s, sql, "creating the schema", err);
    }
    if (status == MB_OK)
        return exec(s, "COMMIT", "creating the schema", err);
    if (!sqlite3_get_autocommit(s->db))
        exec(s, "ROLLBACK", "creating the schema", NULL);
    return status;
}

/* prepare_all - every statement of stmt_sql, once per handle */
static enum mb_status prepare_all(struct store *s, struct mb_error *err)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                                    NULL);
        if (rc != SQLITE_OK)
            return db_fail(s, rc, "preparing statements", err);
    }
    return MB_OK;
}

/* store_msg_clear - free the strings of MSG and zero it */
void store_msg_clear(struct store_msg *msg)
{
    free(msg->route);
    free(msg->key);
    free(msg->source);
    free(msg->message_id);
    free(msg->subject);
    free(msg->last_error);
    free(msg->ticket_id);
    free(msg->vendor_message_id);
    memset(msg, 0, sizeof(*msg));
}

/* store_msgs_free - clear COUNT messages, free the array, NULL the pointer */
void store_msgs_free(struct store_msg **msgs, size_t count)
{
    if (msgs == NULL || *msgs == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        store_msg_clear(&(*msgs)[i]);
    free(*msgs);
    *msgs = NULL;
}

/* store_open - open, configure, migrate, then prepare every statement */
enum mb_status store_open(const char *path, struct store **store_r, struct mb_error *err)
{
    struct store *s = xcalloc(1, sizeof(*s));
    s->path = xstrdup(path);
    s->pid = (long long)getpid();
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    enum mb_status status = rc == SQLITE_OK ? MB_OK : db_fail(s, rc, "cannot open", err);
    if (status == MB_OK)
        status = configure(s, err);
    if (status == MB_OK)
        status = migrate(s, err);
    if (status == MB_OK)
        status = prepare_all(s, err);
    if (status != MB_OK) {
        store_close(&s);
        return status;
    }
    *store_r = s;
    return MB_OK;
}

/* store_close - finalize the statements, close the file, NULL the pointer */
void store_close(struct store **store)
{
    struct store *s = *store;
    if (s == NULL)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
    *store = NULL;
}

/* new_row - MSG_R for the row MSG just inserted as ID, as it was admitted
 * (before a claim), without reading it back */
static void new_row(const struct store_new_msg *msg, long long id, long long now, struct store_msg *msg_r)
{
    msg_r->id = id;
    msg_r->route = xstrdup(msg->route);
    msg_r->key = xstrdup(msg->key);
    msg_r->source = xstrdup(msg->source);
    msg_r->message_id = xstrdup(msg->message_id);
    msg_r->subject = xstrdup(msg->subject);
    msg_r->state = MSG_QUEUED;
    msg_r->updated_ms = now;
}

/* store_enqueue - insert unless (route, key) exists, else read that row */
enum mb_status store_enqueue(struct store *s, const struct store_new_msg *msg, bool *created_r,
                             struct store_msg *msg_r, struct mb_error *err)
{
    memset(msg_r, 0, sizeof(*msg_r));
    enum mb_status status = tx_begin(s, "enqueue", err);
    if (status != MB_OK)
        return status;
    long long now = clock_now_ms();
    sqlite3_stmt *st = s->stmt[STMT_INSERT];
    bind_text(st, 1, msg->route);
    bind_text(st, 2, msg->key);
    bind_text(st, 3, msg->source);
    bind_text(st, 4, msg->message_id);
    bind_text(st, 5, msg->subject);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_int(st, 8, msg->ack_wanted ? 1 : 0);
    bind_text(st, 9, msg_state_name(msg->claim ? MSG_POSTING : MSG_QUEUED));
    sqlite3_bind_int(st, 10, msg->claim ? 1 : 0);
    if (msg->claim) {
        sqlite3_bind_int64(st, 11, s->pid);
        sqlite3_bind_int64(st, 12, now);
    }
    status = run(s, st, "enqueue", err);
    bool created = status == MB_OK && sqlite3_changes(s->db) > 0;
    long long id = created ? sqlite3_last_insert_rowid(s->db) : 0;
    if (created && msg->raw != NULL) {
        st = s->stmt[STMT_RAW_PUT];
        sqlite3_bind_int64(st, 1, id);
        int rc = sqlite3_bind_blob64(st, 2, msg->raw, msg->raw_len, SQLITE_STATIC);
        if (rc == SQLITE_OK) {
            status = run(s, st, "enqueue", err);
        } else {
            status = db_fail(s, rc, "enqueue", err); /* larger than SQLite takes */
            stmt_reset(st);
        }
    }
    if (status == MB_OK && created)
        new_row(msg, id, now, msg_r);
    else if (status == MB_OK)
        status = get_by_key(s, msg->route, msg->key, msg_r, "enqueue", err);
    status = tx_end(s, status, "enqueue", err);
    if (status != MB_OK) {
        store_msg_clear(msg_r);
        return status;
    }
    *created_r = created;
    return MB_OK;
}

/* store_begin_attempt - POSTING, committed before the post */
enum mb_status store_begin_attempt(struct store *s, long long id, struct mb_error *err)
{
    static const char what[] = "begin attempt";
    enum mb_status status = tx_begin(s, what, err);
    if (status != MB_OK)
        return status;
    enum msg_state state = MSG_QUEUED;
    long long now = clock_now_ms();
    status = load_state(s, id, &state, what, err);
    /* The claim: inside this IMMEDIATE transaction only one process can move
     * a message to POSTING, so a `deliver` and a `run` never post it twice. */
    if (status == MB_OK && state == MSG_POSTING)
        status = mb_error_set(err, MB_TEMP, "store %s: %s: message %lld is being posted by another process",
                              s->path, what, id);
    else if (status == MB_OK && (state == MSG_DONE || state == MSG_QUARANTINE))
        status = mb_error_set(err, MB_PERM, "store %s: %s: message %lld is %s, not due", s->path,
                              what, id, msg_state_name(state));
    if (status == MB_OK) {
        sqlite3_stmt *st = s->stmt[STMT_START];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, s->pid);
        status = run(s, st, what, err);
    }
    return tx_end(s, status, what, err);
}

/* record_done - the OK half of store_finish_attempt: vendor ids on the row,
 * raw bytes dropped, the thread map taught the message's RFC Message-Id */
static enum mb_status record_done(struct store *s, long long id,
                                  const struct store_outcome *outcome, long long now,
                                  const char *what, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_DONE];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    bind_text(st, 3, outcome->ticket_id);
    bind_text(st, 4, outcome->vendor_message_id);
    bind_text(st, 5, outcome->conversation_id);
    enum mb_status status = run(s, st, what, err);
    if (status == MB_OK)
        status = was_posting(s, id, what, err);
    if (status != MB_OK)
        return status;
    st = s->stmt[STMT_RAW_DROP];
    sqlite3_bind_int64(st, 1, id);
    status = run(s, st, what, err);
    if (status != MB_OK)
        return status;
    st = s->stmt[STMT_THREAD_PUT]; /* a no-op without a Message-Id or a ticket id */
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, outcome->ticket_id);
    bind_text(st, 3, outcome->vendor_message_id);
    bind_text(st, 4, outcome->conversation_id);
    sqlite3_bind_int64(st, 5, now);
    return run(s, st, what, err);
}

/* store_finish_attempt - close the attempt; the outcome decides the next state */
enum mb_status store_finish_attempt(struct store *s, long long id,
                                    const struct store_outcome *outcome, struct mb_error *err)
{
    static const char what[] = "finish attempt";
    enum mb_status status = tx_begin(s, what, err);
    if (status != MB_OK)
        return status;
    long long now = clock_now_ms();
    /* the state change itself checks that the message is POSTING: no read first */
    enum msg_state next = msg_state_after(outcome->status);
    if (next == MSG_DONE) {
        status = record_done(s, id, outcome, now, what, err);
    } else {
        /* DOWN (and CONFIG) stop the route, not the message: back to QUEUED
         * and the attempt, kept in the history, does not count */
        status = set_state(s, id, next, next == MSG_RETRY ? outcome->next_attempt_ms : 0,
                           outcome->error, next == MSG_QUEUED, true, now, what, err);
        if (status == MB_OK)
            status = was_posting(s, id, what, err);
    }
    if (status == MB_OK)
        status = record_attempt(s, id, now, mb_status_name(outcome->status), outcome->http_status,
                                outcome->error, what, err);
    return tx_end(s, status, what, err);
}

/* store_set_quarantine - QUARANTINE with REASON, no post counted */
enum mb_status store_set_quarantine(struct store *s, long long id, const char *reason,
                                    struct mb_error *err)
{
    static const char what[] = "quarantine";
    enum mb_status status = tx_begin(s, what, err);
    if (status != MB_OK)
        return status;
    enum msg_state state = MSG_QUEUED;
    long long now = clock_now_ms();
    status = load_state(s, id, &state, what, err);
    if (status == MB_OK && state == MSG_DONE)
        status = mb_error_set(err, MB_PERM, "store %s: %s: message %lld is done already", s->path,
                              what, id);
    /* the reason goes to the history too, so a requeue does not lose it; a
     * post in flight ends there */
    if (status == MB_OK && state == MSG_POSTING) {
        status = record_attempt(s, id, now, "quarantine", 0, reason, what, err);
    } else if (status == MB_OK) {
        sqlite3_stmt *st = s->stmt[STMT_EVENT];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now);
        bind_text(st, 3, "quarantine");
        bind_text(st, 4, reason);
        status = run(s, st, what, err);
    }
    if (status == MB_OK)
        status = set_state(s, id, MSG_QUARANTINE, 0, reason, 0, false, now, what, err);
    return tx_end(s, status, what, err);
}

/* store_thread_lookup - the vendor ids of (ROUTE, MESSAGE_ID); false when unknown
 * and, having no error to give, when the database cannot answer */
bool store_thread_lookup(struct store *s, const char *route, const char *message_id,
                         struct thread_ref *ref_r)
{
    sqlite3_stmt *st = s->stmt[STMT_THREAD_GET];
    bind_text(st, 1, route);
    bind_text(st, 2, message_id);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    if (found) {
        ref_r->ticket_id = column_str(st, 0);
        ref_r->message_id = column_str(st, 1);
        ref_r->conversation_id = column_str(st, 2);
    }
    stmt_reset(st);
    return found;
}

/* store_load_raw - a copy of the kept raw bytes */
enum mb_status store_load_raw(struct store *s, long long id, unsigned char **raw_r, size_t *len_r,
                              struct mb_error *err)
{
    static const char what[] = "load raw";
    sqlite3_stmt *st = s->stmt[STMT_RAW];
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    enum mb_status status = MB_OK;
    *raw_r = NULL;
    *len_r = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL) {
        const void *raw = sqlite3_column_blob(st, 1); /* NULL for zero bytes */
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        *raw_r = xmemdup(raw != NULL ? raw : "", len);
        *len_r = len;
    } else if (rc == SQLITE_ROW) {
        /* delivered, or its mailbox still holds it: none kept, not an error */
    } else if (rc == SQLITE_DONE) {
        status =
            mb_error_set(err, MB_PERM, "store %s: %s: unknown message %lld", s->path, what, id);
    } else {
        status = db_fail(s, rc, what, err);
    }
    stmt_reset(st);
    return status;
}

/* store_due - QUEUED and due RETRY rows in enqueue order */
enum mb_status store_due(struct store *s, const char *route, long long now_ms, size_t limit,
                         struct store_msg **msgs_r, size_t *count_r, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[route != NULL ? STMT_DUE_ROUTE : STMT_DUE];
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, limit_arg(limit));
    bind_text(st, 3, route);
    return collect(s, st, "due", msgs_r, count_r, err);
}

/* store_list - rows in STATE, most recently changed first */
enum mb_status store_list(struct store *s, const char *route, enum msg_state state, size_t limit,
                          struct store_msg **msgs_r, size_t *count_r, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[route != NULL ? STMT_LIST_ROUTE : STMT_LIST];
    bind_text(st, 1, msg_state_name(state));
    sqlite3_bind_int64(st, 2, limit_arg(limit));
    bind_text(st, 3, route);
    return collect(s, st, "list", msgs_r, count_r, err);
}

/* store_get - the row of (ROUTE, KEY) */
enum mb_status store_get(struct store *s, const char *route, const char *key,
                         struct store_msg *msg_r, struct mb_error *err)
{
    return get_by_key(s, route, key, msg_r, "get", err);
}

/* store_counts - messages per state */
enum mb_status store_counts(struct store *s, const char *route,
                            unsigned long long counts_r[MSG_STATE_COUNT], struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_COUNTS];
    memset(counts_r, 0, MSG_STATE_COUNT * sizeof(counts_r[0]));
    bind_text(st, 1, route);
    enum mb_status status = MB_OK;
    int rc = SQLITE_DONE;
    while (status == MB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum msg_state state = MSG_QUEUED;
        status = column_state(s, st, 0, &state, err);
        if (status == MB_OK)
            counts_r[state] = (unsigned long long)sqlite3_column_int64(st, 1);
    }
    if (status == MB_OK && rc != SQLITE_DONE)
        status = db_fail(s, rc, "counts", err);
    stmt_reset(st);
    return status;
}

/* store_requeue - QUARANTINE and RETRY rows with raw bytes back to QUEUED */
enum mb_status store_requeue(struct store *s, const char *route, const char *key,
                             unsigned long long *count_r, struct mb_error *err)
{
    enum mb_status status = tx_begin(s, "requeue", err);
    if (status != MB_OK)
        return status;
    sqlite3_stmt *st = s->stmt[STMT_REQUEUE];
    sqlite3_bind_int64(st, 1, clock_now_ms());
    bind_text(st, 2, route);
    bind_text(st, 3, key);
    status = run(s, st, "requeue", err);
    unsigned long long count = status == MB_OK ? (unsigned long long)sqlite3_changes(s->db) : 0;
    status = tx_end(s, status, "requeue", err);
    if (status == MB_OK)
        *count_r = count;
    return status;
}

enum mb_status store_ack_due(struct store *s, const char *route, size_t limit, struct store_msg **msgs_r,
                             size_t *count_r, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_ACK_DUE];
    bind_text(st, 1, route);
    sqlite3_bind_int64(st, 2, limit_arg(limit));
    return collect(s, st, "ack due", msgs_r, count_r, err);
}

/* write_one - run one bound statement in its own committed transaction (in
 * a batch: as part of the batch's) */
static enum mb_status write_one(struct store *s, sqlite3_stmt *st, const char *what, struct mb_error *err)
{
    if (s->batch) /* one statement is atomic on its own: no savepoint needed */
        return run(s, st, what, err);
    enum mb_status status = tx_begin(s, what, err);
    if (status != MB_OK) {
        stmt_reset(st);
        return status;
    }
    status = run(s, st, what, err);
    return tx_end(s, status, what, err);
}

/* store_keep_raw - the raw bytes of message ID, unless some are kept already */
enum mb_status store_keep_raw(struct store *s, long long id, const void *raw, size_t len,
                              struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_RAW_KEEP];
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_bind_blob64(st, 2, len > 0 ? raw : "", len, SQLITE_STATIC);
    if (rc != SQLITE_OK) { /* larger than SQLite takes */
        stmt_reset(st);
        return db_fail(s, rc, "keep raw", err);
    }
    return write_one(s, st, "keep raw", err);
}

enum mb_status store_ack_done(struct store *s, long long id, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_ACK_DONE];
    sqlite3_bind_int64(st, 1, id);
    return write_one(s, st, "ack done", err);
}

enum mb_status store_relocate(struct store *s, long long id, const char *source, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_RELOCATE];
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, source);
    sqlite3_bind_int64(st, 3, clock_now_ms());
    return write_one(s, st, "relocate", err);
}

enum mb_status store_checkpoint_get(struct store *s, const char *source, const char *folder,
                                    uint32_t *uidvalidity_r, uint32_t *next_uid_r, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_CKPT_GET];
    bind_text(st, 1, source);
    bind_text(st, 2, folder);
    *uidvalidity_r = 0;
    *next_uid_r = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *uidvalidity_r = (uint32_t)sqlite3_column_int64(st, 0);
        *next_uid_r = (uint32_t)sqlite3_column_int64(st, 1);
    }
    stmt_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? MB_OK : db_fail(s, rc, "checkpoint", err);
}

enum mb_status store_checkpoint_set(struct store *s, const char *source, const char *folder,
                                    uint32_t uidvalidity, uint32_t next_uid, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_CKPT_PUT];
    bind_text(st, 1, source);
    bind_text(st, 2, folder);
    sqlite3_bind_int64(st, 3, uidvalidity);
    sqlite3_bind_int64(st, 4, next_uid);
    sqlite3_bind_int64(st, 5, clock_now_ms());
    return write_one(s, st, "checkpoint", err);
}

enum mb_status store_item_seen(struct store *s, const char *source, const char *item, bool *seen_r,
                               struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_ITEM_GET];
    bind_text(st, 1, source);
    bind_text(st, 2, item);
    int rc = sqlite3_step(st);
    *seen_r = rc == SQLITE_ROW;
    stmt_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? MB_OK : db_fail(s, rc, "source item", err);
}

enum mb_status store_item_add(struct store *s, const char *source, const char *item, struct mb_error *err)
{
    sqlite3_stmt *st = s->stmt[STMT_ITEM_PUT];
    bind_text(st, 1, source);
    bind_text(st, 2, item);
    sqlite3_bind_int64(st, 3, clock_now_ms());
    return write_one(s, st, "source item", err);
}

enum mb_status store_batch_begin(struct store *s, struct mb_error *err)
{
    if (s->batch)
        return MB_OK;
    enum mb_status status = run(s, s->stmt[STMT_BEGIN], "batch", err);
    s->batch = status == MB_OK;
    return status;
}

void store_batch_abort(struct store *s)
{
    if (!s->batch)
        return;
    s->batch = false;
    if (!sqlite3_get_autocommit(s->db))
        run(s, s->stmt[STMT_ROLLBACK], "batch abort", NULL);
}

enum mb_status store_batch_commit(struct store *s, struct mb_error *err)
{
    if (!s->batch)
        return MB_OK;
    s->batch = false;
    enum mb_status status = run(s, s->stmt[STMT_COMMIT], "batch commit", err);
    if (status != MB_OK && !sqlite3_get_autocommit(s->db))
        run(s, s->stmt[STMT_ROLLBACK], "batch commit", NULL);
    return status;
}
