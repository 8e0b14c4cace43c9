/*
 * The SQLite driver of db: a connection object over the sqlite3 C API.
 *
 * Classification is proved, not guessed: describe() prepares the statement
 * and asks sqlite3_stmt_readonly().  A write in dry-run is rehearsed: it
 * runs in a transaction that is rolled back, never committed, so
 * constraints and triggers are exercised and the output says how many rows
 * it would change, while the file stays byte-identical (see rehearsals).
 * Prepared statements are kept in a small per-connection cache keyed by
 * their text, so describe() and the call share one prepare and a loop of
 * inserts prepares once.
 */
#include "db.h"
#include "runbook/host.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define META      "runbook.db.sqlite"
#define CACHE_N   16
#define BUSY_WAIT 5.0 /* seconds to wait for another writer's lock */

typedef struct sq_conn {
    sqlite3 *db;
    char *display; /* "sqlite:path" */
    struct {
        char *sql;
        sqlite3_stmt *st;
    } cache[CACHE_N];
    int next;            /* cache slot to replace next */
    double deadline;     /* of the statement running, for the progress handler */
    int stand_in;        /* a scenario's stand-in for a database it mocks */
    int copy_rehearsals; /* read-only because the run may not write: rehearse on a copy */
} sq_conn;

static sq_conn *check_conn(lua_State *L)
{
    sq_conn *c = (sq_conn *)luaL_checkudata(L, 1, META);
    if (!c->db)
        luaL_error(L, "db: %s is closed", c->display ? c->display : "connection");
    return c;
}

static void conn_close(sq_conn *c)
{
    for (int i = 0; i < CACHE_N; i++) {
        sqlite3_finalize(c->cache[i].st);
        free(c->cache[i].sql);
        c->cache[i].st = NULL;
        c->cache[i].sql = NULL;
    }
    if (c->db)
        sqlite3_close_v2(c->db);
    c->db = NULL;
}

/* A long statement stops at its deadline or on Ctrl-C. */
static int progress(void *ud)
{
    sq_conn *c = (sq_conn *)ud;
    return rb_interrupted(NULL) || (c->deadline > 0 && rb_now() > c->deadline);
}

static int only_space(const char *p)
{
    /* the tail after the last statement may hold whitespace and comments */
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ';')
        p++;
    return *p == '\0';
}

/* The cached statement for sql (a single statement), reset for reuse; NULL
 * when sql holds several statements or does not prepare (message in db). */
static sqlite3_stmt *cached(sq_conn *c, const char *sql, int *multi)
{
    *multi = 0;
    for (int i = 0; i < CACHE_N; i++)
        if (c->cache[i].sql && strcmp(c->cache[i].sql, sql) == 0) {
            sqlite3_reset(c->cache[i].st);
            sqlite3_clear_bindings(c->cache[i].st);
            return c->cache[i].st;
        }
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail) != SQLITE_OK)
        return NULL;
    if (!st || !only_space(tail)) {
        sqlite3_finalize(st);
        *multi = 1;
        return NULL;
    }
    int i = c->next;
    c->next = (c->next + 1) % CACHE_N;
    sqlite3_finalize(c->cache[i].st);
    free(c->cache[i].sql);
    c->cache[i].sql = strdup(sql);
    c->cache[i].st = c->cache[i].sql ? st : NULL;
    if (!c->cache[i].sql)
        sqlite3_finalize(st);
    return c->cache[i].st;
}

/* ---- classification ------------------------------------------------------ */

/* VACUUM INTO writes a new file, and on a read-only connection (a dry-run's,
 * or mode=ro) sqlite3_stmt_readonly() calls it read-only: it changes no
 * database of the connection.  Every VACUUM is a change here. */
static int is_vacuum(const char *sql)
{
    const char *p = sql ? sql : "";
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ';')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            break;
        }
    }
    return strncasecmp(p, "vacuum", 6) == 0 && !isalnum((unsigned char)p[6]) && p[6] != '_';
}

static int stmt_writes(sqlite3_stmt *st)
{
    return !sqlite3_stmt_readonly(st) || is_vacuum(sqlite3_sql(st));
}

/* READ when every statement is read-only; a statement that does not prepare
 * is READ too, since it fails before touching anything (the call reports it). */
static void classify(sq_conn *c, const char *sql, rb_action *a)
{
    if (c->stand_in) { /* no schema to prepare against: the static classifier */
        rb_class known = db_sql_class(sql);
        a->cls = known == RB_READ ? RB_READ : RB_MUTATE;
        return;
    }
    int multi;
    sqlite3_stmt *st = cached(c, sql, &multi);
    if (st || !multi) {
        a->cls = !st || !stmt_writes(st) ? RB_READ : RB_MUTATE;
        return;
    }
    a->cls = RB_READ;
    for (const char *p = sql; *p && a->cls == RB_READ;) {
        const char *tail = NULL;
        if (sqlite3_prepare_v2(c->db, p, -1, &st, &tail) != SQLITE_OK) {
            /* a later statement may need what an earlier one creates */
            a->cls = p == sql ? RB_READ : RB_MUTATE;
            return;
        }
        if (!st)
            break;
        if (stmt_writes(st))
            a->cls = RB_MUTATE;
        sqlite3_finalize(st);
        p = tail;
    }
}

static void describe_stmt(lua_State *L, rb_action *a, const char *verb)
{
    sq_conn *c = check_conn(L);
    db_call dc;
    db_call_parse(L, &dc);
    a->opts = dc.opts;
    db_describe(L, a, c->display, verb, dc.sql);
    classify(c, dc.sql, a);
}

static void describe_query(lua_State *L, rb_action *a)
{
    describe_stmt(L, a, "query");
}

static void describe_exec(lua_State *L, rb_action *a)
{
    describe_stmt(L, a, "exec");
}

/* ---- running statements --------------------------------------------------- */

static int bind_params(lua_State *L, sq_conn *c, sqlite3_stmt *st, const db_call *dc, char *err,
                       size_t errlen)
{
    int want = sqlite3_bind_parameter_count(st);
    if (want != dc->nparams) {
        snprintf(err, errlen, "the statement takes %d parameter%s, %d given", want,
                 want == 1 ? "" : "s", dc->nparams);
        return -1;
    }
    for (int i = 0; i < dc->nparams; i++) {
        int idx = dc->first_param + i, rc;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        case LUA_TBOOLEAN:
            rc = sqlite3_bind_int64(st, i + 1, lua_toboolean(L, idx));
            break;
        case LUA_TNUMBER:
            rc = lua_isinteger(L, idx)
                     ? sqlite3_bind_int64(st, i + 1, (sqlite3_int64)lua_tointeger(L, idx))
                     : sqlite3_bind_double(st, i + 1, lua_tonumber(L, idx));
            break;
        case LUA_TSTRING: {
            size_t n;
            const char *s = lua_tolstring(L, idx, &n);
            rc = sqlite3_bind_text64(st, i + 1, s, n, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        }
        default:
            if (db_is_null(L, idx)) {
                rc = sqlite3_bind_null(st, i + 1);
                break;
            }
            snprintf(err, errlen, "parameter %d: cannot bind a %s", i + 1, luaL_typename(L, idx));
            return -1;
        }
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "parameter %d: %s", i + 1, sqlite3_errmsg(c->db));
            return -1;
        }
    }
    return 0;
}

static void push_row(lua_State *L, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, i));
            break;
        case SQLITE_FLOAT:
            lua_pushnumber(L, sqlite3_column_double(st, i));
            break;
        case SQLITE_NULL:
            db_push_null(L);
            break;
        default: /* text and blobs: bytes as they are */
            lua_pushlstring(L, (const char *)sqlite3_column_blob(st, i),
                            (size_t)sqlite3_column_bytes(st, i));
        }
        lua_setfield(L, -2, sqlite3_column_name(st, i));
    }
}

/* The rows a statement changed itself, not counting what its triggers,
 * foreign-key actions or REPLACE did (PostgreSQL's command tag counts the
 * same way).  sqlite3_changes64() is that count, but only a completed
 * INSERT, UPDATE or DELETE sets it: after DDL it still holds the previous
 * statement's.  A statement that changed any row moved the total, so a
 * total that did not move is a statement that changed nothing. */
static sqlite3_int64 own_changes(sq_conn *c, sqlite3_int64 total_before)
{
    return sqlite3_total_changes64(c->db) != total_before ? sqlite3_changes64(c->db) : 0;
}

/* Run one prepared statement to its end; rows are appended to the table on
 * top when want_rows; *own gains the rows it changed itself.  Returns 0 or
 * -1 with the message in err. */
static int step_all(lua_State *L, sq_conn *c, sqlite3_stmt *st, int want_rows, sqlite3_int64 *own,
                    char *err, size_t errlen)
{
    sqlite3_int64 total = sqlite3_total_changes64(c->db);
    int rc;
    lua_Integer n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (want_rows) {
            push_row(L, st);
            lua_rawseti(L, -2, ++n);
        }
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_INTERRUPT)
            snprintf(err, errlen, "%s", rb_interrupted(NULL) ? "interrupted" : "timed out");
        else
            snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        sqlite3_reset(st);
        return -1;
    }
    *own += own_changes(c, total);
    sqlite3_reset(st);
    return 0;
}

/* What a statement changed: exec's count is own, the rows the statement
 * changed itself (for a script, the sum over its statements); all adds the
 * rows its triggers changed, for a rehearsal's evidence. */
typedef struct sq_changes {
    sqlite3_int64 own, all;
} sq_changes;

/* Run the call's SQL: pushes the rows (want_rows) and sets *changes.
 * Returns 0, or -1 with the message in err. */
static int run_sql(lua_State *L, sq_conn *c, const db_call *dc, int want_rows, sq_changes *changes,
                   char *err, size_t errlen)
{
    double timeout = rb_opt_number(L, dc->opts, "timeout", DB_QUERY_TIMEOUT);
    c->deadline = timeout > 0 ? rb_now() + timeout : 0;
    sqlite3_int64 before = sqlite3_total_changes64(c->db);
    changes->own = 0;
    int multi, rc = 0;
    if (want_rows)
        db_new_rows(L, 0);
    sqlite3_stmt *st = cached(c, dc->sql, &multi);
    if (st) {
        rc = bind_params(L, c, st, dc, err, errlen);
        if (rc == 0)
            rc = step_all(L, c, st, want_rows, &changes->own, err, errlen);
        sqlite3_clear_bindings(st);
    } else if (!multi) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        rc = -1;
    } else if (want_rows || dc->nparams) {
        snprintf(err, errlen, "%s takes one statement: split the SQL into several calls",
                 want_rows ? "query" : "exec with parameters");
        rc = -1;
    } else {
        for (const char *p = dc->sql; *p && rc == 0;) {
            const char *tail = NULL;
            if (sqlite3_prepare_v2(c->db, p, -1, &st, &tail) != SQLITE_OK) {
                snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
                rc = -1;
                break;
            }
            if (!st)
                break;
            rc = step_all(L, c, st, 0, &changes->own, err, errlen);
            sqlite3_finalize(st);
            p = tail;
        }
    }
    c->deadline = 0;
    changes->all = sqlite3_total_changes64(c->db) - before;
    return rc;
}

static int fail(lua_State *L, sq_conn *c, const char *verb, const char *err)
{
    return luaL_error(L, "db %s %s: %s", verb, c->display, err);
}

/* conn:query(sql, ...) -> { {col = value, ...}, ... } */
static int l_query(lua_State *L)
{
    sq_conn *c = check_conn(L);
    db_call dc;
    db_call_parse(L, &dc);
    char err[512];
    sq_changes changes;
    if (run_sql(L, c, &dc, 1, &changes, err, sizeof err) != 0)
        return fail(L, c, "query", err);
    return 1;
}

/* conn:exec(sql, ...) -> the rows the statement changed itself */
static int l_exec(lua_State *L)
{
    sq_conn *c = check_conn(L);
    db_call dc;
    db_call_parse(L, &dc);
    char err[512];
    sq_changes changes;
    if (run_sql(L, c, &dc, 0, &changes, err, sizeof err) != 0)
        return fail(L, c, "exec", err);
    lua_pushinteger(L, (lua_Integer)changes.own);
    return 1;
}

/* ---- rehearsals ------------------------------------------------------------ */

/* A rehearsal must leave the database file, its directory and its locks as
 * they were.  A SAVEPOINT opened outside a transaction starts one that
 * RELEASE commits: even with nothing left to change, the commit rewrites the
 * header's change counter, creates and fsyncs a -journal and bumps the mtime.
 * So outside the runbook's own transaction a rehearsal is BEGIN ... ROLLBACK
 * (nothing is ever committed), with
 *   - journal_mode MEMORY for a rollback-journal database, so the undo log
 *     lives in memory and no -journal file is created or deleted;
 *   - cache_spill off, so a statement that dirties more pages than the page
 *     cache holds keeps them in memory instead of writing them to the file
 *     (rollback mode) or appending frames to the -wal (WAL mode) mid-way:
 *     the cost is memory for every page the statement changes;
 *   - no checkpoint on close, so the connection's last close does not copy
 *     the -wal into the file or delete the -wal and -shm.
 * The write lock the statement takes ends with its ROLLBACK. */
typedef struct rehearsal {
    int outer;       /* inside the runbook's own transaction: a savepoint */
    int memory;      /* journal_mode switched from DELETE to MEMORY */
    long long spill; /* cache_spill before, to put back */
} rehearsal;

static long long pragma_int(sq_conn *c, const char *sql, char *text, size_t textlen)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (text && textlen)
        text[0] = '\0';
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK && st &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        if (text && sqlite3_column_text(st, 0))
            snprintf(text, textlen, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return v;
}

static int rehearsal_begin(sq_conn *c, rehearsal *r)
{
    memset(r, 0, sizeof *r);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    r->outer = !sqlite3_get_autocommit(c->db);
    /* only where no private connection can be had (a BEGIN IMMEDIATE of the
     * runbook's, an in-memory database): the runbook's COMMIT may then write */
    if (r->outer)
        return sqlite3_exec(c->db, "SAVEPOINT runbook_rehearsal", NULL, NULL, NULL);
    char mode[32];
    pragma_int(c, "PRAGMA journal_mode", mode, sizeof mode);
    /* PERSIST and TRUNCATE are left alone: leaving them deletes their journal */
    if (strcasecmp(mode, "delete") == 0) {
        pragma_int(c, "PRAGMA journal_mode = MEMORY", mode, sizeof mode);
        r->memory = strcasecmp(mode, "memory") == 0;
    }
    r->spill = pragma_int(c, "PRAGMA cache_spill", NULL, 0);
    sqlite3_exec(c->db, "PRAGMA cache_spill = OFF", NULL, NULL, NULL);
    return sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
}

static void rehearsal_end(sq_conn *c, const rehearsal *r)
{
    if (r->outer) {
        sqlite3_exec(c->db, "ROLLBACK TO runbook_rehearsal; RELEASE runbook_rehearsal", NULL, NULL,
                     NULL);
        return;
    }
    if (!sqlite3_get_autocommit(c->db)) /* a failing statement may have rolled back already */
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    char sql[64];
    if (r->spill >= 0) {
        snprintf(sql, sizeof sql, "PRAGMA cache_spill = %lld", r->spill);
        sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    }
    if (r->memory)
        sqlite3_exec(c->db, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
}

/* Inside the runbook's own transaction a rolled-back savepoint still leaves
 * the transaction a writer, and the runbook's COMMIT then rewrites the file.
 * In a dry-run that transaction has changed nothing (its writes were all
 * rehearsed), so the statement is rehearsed on a private connection to the
 * same file instead, where it is BEGIN ... ROLLBACK like any other.  Not when
 * the runbook's transaction holds the write lock (BEGIN IMMEDIATE): the
 * private connection would wait for it. */
static int private_conn(sq_conn *c, sq_conn *priv)
{
    memset(priv, 0, sizeof *priv);
    const char *file = sqlite3_db_filename(c->db, "main");
    if (sqlite3_get_autocommit(c->db) || !file || !*file ||
        sqlite3_txn_state(c->db, "main") == SQLITE_TXN_WRITE)
        return -1;
    int flags =
        SQLITE_OPEN_NOMUTEX |
        (sqlite3_db_readonly(c->db, "main") == 1 ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
    if (sqlite3_open_v2(file, &priv->db, flags, NULL) != SQLITE_OK) {
        sqlite3_close_v2(priv->db);
        priv->db = NULL;
        return -1;
    }
    priv->display = c->display;
    sqlite3_extended_result_codes(priv->db, 1);
    sqlite3_busy_timeout(priv->db, (int)(BUSY_WAIT * 1000));
    sqlite3_progress_handler(priv->db, 1000, progress, priv);
    return 0;
}

/* While the engine's children may not write (a dry-run the kernel
 * enforces), the engine itself cannot open the file for writing either, so
 * the connection is read-only and a write is rehearsed on a copy of the
 * database in memory (SQLite's backup API, read through the connection's
 * own snapshot, inside the runbook's transaction if one is open): the
 * statement runs there whole, constraints and triggers fire, the row count
 * is the real one, and the copy is dropped.  The file is only read.  What
 * the copy lacks: the connection's TEMP tables and ATTACHed databases. */
#define COPY_MAX (512LL << 20) /* bytes a rehearsal copies into memory at most */

static int memory_copy(sq_conn *c, sq_conn *copy, char *err, size_t n)
{
    memset(copy, 0, sizeof *copy);
    long long size =
        pragma_int(c, "PRAGMA page_count", NULL, 0) * pragma_int(c, "PRAGMA page_size", NULL, 0);
    if (size > COPY_MAX) {
        snprintf(err, n,
                 "the database is %lld MiB, more than the %lld MiB a rehearsal copies into memory",
                 size >> 20, COPY_MAX >> 20);
        return 1;
    }
    int rc =
        sqlite3_open_v2(":memory:", &copy->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    sqlite3_backup *b =
        rc == SQLITE_OK ? sqlite3_backup_init(copy->db, "main", c->db, "main") : NULL;
    if (b) {
        rc = sqlite3_backup_step(b, -1);
        sqlite3_backup_finish(b);
    }
    if (!b || rc != SQLITE_DONE) {
        snprintf(err, n, "cannot copy the database for the rehearsal: %s",
                 copy->db ? sqlite3_errmsg(copy->db) : sqlite3_errstr(rc));
        sqlite3_close_v2(copy->db);
        copy->db = NULL;
        return -1;
    }
    copy->display = c->display;
    copy->deadline = c->deadline;
    sqlite3_extended_result_codes(copy->db, 1);
    sqlite3_exec(copy->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);
    sqlite3_progress_handler(copy->db, 1000, progress, copy);
    return 0;
}

/* A write that could not be rehearsed (too large to copy, VACUUM): simulated,
 * saying why; the result a simulation gives. */
static int not_rehearsed(lua_State *L, const db_call *dc, int want_rows, const char *why)
{
    lua_settop(L, dc->opts ? dc->opts : dc->first_param + dc->nparams - 1);
    char ev[600];
    snprintf(ev, sizeof ev, "not rehearsed: %s", why);
    rb_rehearsed(L, ev);
    if (want_rows)
        db_new_rows(L, 0);
    else
        lua_pushinteger(L, 0);
    return 1;
}

/* A rehearsal that ran: its evidence, and exec's count -- the statement's
 * own rows, as live (query's rows are on the stack already).  The evidence
 * also tells what triggers would change: the operator judges the whole. */
static int rehearsed(lua_State *L, int want_rows, const sq_changes *changes)
{
    char ev[160], more[64] = "";
    if (changes->all > changes->own)
        snprintf(more, sizeof more, " (and %lld by triggers)",
                 (long long)(changes->all - changes->own));
    snprintf(ev, sizeof ev, "%lld row%s would change%s; rehearsed and rolled back",
             (long long)changes->own, changes->own == 1 ? "" : "s", more);
    rb_rehearsed(L, ev);
    if (!want_rows)
        lua_pushinteger(L, (lua_Integer)changes->own);
    return 1;
}

static int rehearse_on_copy(lua_State *L, sq_conn *c, const db_call *dc, int want_rows)
{
    char err[512];
    sq_conn copy;
    /* VACUUM (INTO a file) would write outside the copy: never run here */
    int rc = is_vacuum(dc->sql)
                 ? (snprintf(err, sizeof err, "VACUUM cannot be rehearsed on a copy"), 1)
                 : memory_copy(c, &copy, err, sizeof err);
    sq_changes changes = {0, 0};
    if (rc == 0) {
        rc = run_sql(L, &copy, dc, want_rows, &changes, err, sizeof err) ? -1 : 0;
        conn_close(&copy); /* display is c's */
    }
    if (rc > 0) { /* too large to copy: simulated, saying why */
        return not_rehearsed(L, dc, want_rows, err);
    }
    if (rc != 0)
        return fail(L, c, want_rows ? "query" : "exec", err);
    return rehearsed(L, want_rows, &changes);
}

/* Dry-run of a write: the same call, rolled back (see above). */
static int rehearse(lua_State *L, int want_rows)
{
    const char *verb = want_rows ? "query" : "exec";
    sq_conn *c = check_conn(L);
    db_call dc;
    db_call_parse(L, &dc);
    if (c->copy_rehearsals)
        return rehearse_on_copy(L, c, &dc, want_rows);
    char err[512];
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    sq_conn priv;
    sq_conn *w = private_conn(c, &priv) == 0 ? &priv : c; /* where it runs */
    rehearsal r;
    int rc = rehearsal_begin(w, &r) == SQLITE_OK ? 0 : -1;
    sq_changes changes = {0, 0};
    if (rc != 0)
        snprintf(err, sizeof err, "cannot start the rehearsal: %s", sqlite3_errmsg(w->db));
    else
        rc = run_sql(L, w, &dc, want_rows, &changes, err, sizeof err);
    rehearsal_end(w, &r);
    if (w == &priv)
        conn_close(&priv); /* display is c's */
    if (rc != 0 && strstr(err, "within a transaction")) {
        /* VACUUM and journal-mode changes cannot run inside a transaction */
        return not_rehearsed(L, &dc, want_rows, err);
    }
    if (rc != 0)
        return fail(L, c, verb, err);
    return rehearsed(L, want_rows, &changes);
}

static int l_rehearse_query(lua_State *L)
{
    return rehearse(L, 1);
}

static int l_rehearse_exec(lua_State *L)
{
    return rehearse(L, 0);
}

/* ---- backup ---------------------------------------------------------------- */

static void describe_backup_to(lua_State *L, rb_action *a)
{
    sq_conn *c = check_conn(L);
    const char *path = luaL_checkstring(L, 2);
    a->opts = lua_istable(L, 3) ? 3 : 0;
    rb_action_set(L, a, "verb", "backup");
    rb_action_set(L, a, "target", "%s", path);
    rb_action_set(L, a, "words", "db backup %s -> %s", c->display, path);
}

/* conn:backup_to(path) -> { path, pages }   the online backup API: a
 * consistent copy of the database while others keep using it */
static int l_backup_to(lua_State *L)
{
    sq_conn *c = check_conn(L);
    const char *path = luaL_checkstring(L, 2);
    double timeout = rb_opt_number(L, lua_istable(L, 3) ? 3 : 0, "timeout", DB_QUERY_TIMEOUT);
    double until = rb_now() + timeout;
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        lua_pushstring(L, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        sqlite3_close_v2(dst);
        return luaL_error(L, "db backup %s -> %s: %s", c->display, path, lua_tostring(L, -1));
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", c->db, "main");
    if (!b) {
        lua_pushstring(L, sqlite3_errmsg(dst));
        sqlite3_close_v2(dst);
        return luaL_error(L, "db backup %s -> %s: %s", c->display, path, lua_tostring(L, -1));
    }
    do {
        rc = sqlite3_backup_step(b, 256);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL); /* another writer holds the lock */
        }
    } while ((rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && rb_now() < until &&
             !rb_interrupted(NULL));
    int pages = sqlite3_backup_pagecount(b);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        const char *why = rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED
                              ? (rb_interrupted(NULL) ? "interrupted" : "timed out")
                              : sqlite3_errmsg(dst);
        lua_pushstring(L, why);
        sqlite3_close_v2(dst);
        return luaL_error(L, "db backup %s -> %s: %s", c->display, path, lua_tostring(L, -1));
    }
    sqlite3_close_v2(dst);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, pages);
    lua_setfield(L, -2, "pages");
    return 1;
}

/* ---- the object ------------------------------------------------------------ */

static int l_close(lua_State *L)
{
    sq_conn *c = (sq_conn *)luaL_checkudata(L, 1, META);
    conn_close(c);
    return 0;
}

static int l_gc(lua_State *L)
{
    sq_conn *c = (sq_conn *)luaL_checkudata(L, 1, META);
    conn_close(c);
    free(c->display);
    c->display = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    sq_conn *c = (sq_conn *)luaL_checkudata(L, 1, META);
    lua_pushfstring(L, "db connection %s%s", c->display ? c->display : "?",
                    c->db ? "" : " (closed)");
    return 1;
}

int db_sqlite_open(lua_State *L, const char *path, int opts)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (rb_opt_bool(L, opts, "create", 0))
        flags |= SQLITE_OPEN_CREATE;
    const char *q = strchr(path, '?');
    char file[4096];
    snprintf(file, sizeof file, "%.*s", q ? (int)(q - path) : (int)strlen(path), path);
    /* a run whose children may not write is a dry-run the kernel keeps
     * from writing: the engine cannot open the file for writing either */
    int copy_rehearsals =
        !(q && strstr(q, "mode=ro")) && strcmp(file, ":memory:") != 0 && rb_children_confined(L);
    if ((q && strstr(q, "mode=ro")) || copy_rehearsals)
        flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
    sq_conn *c = (sq_conn *)lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->copy_rehearsals = copy_rehearsals;
    luaL_setmetatable(L, META);
    const char *display = lua_pushfstring(L, "sqlite:%s", file);
    c->display = strdup(display);
    lua_pop(L, 1);
    int rc = sqlite3_open_v2(file, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        const char *why = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
        lua_pushfstring(
            L, "db open sqlite:%s: %s%s", file, why,
            (flags & SQLITE_OPEN_CREATE) ? "" : " (no such file? { create = true } makes one)");
        conn_close(c);
        return lua_error(L);
    }
    sqlite3_extended_result_codes(c->db, 1);
    if (copy_rehearsals) /* sorts and statement journals: no temporary files */
        sqlite3_exec(c->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);
    sqlite3_busy_timeout(c->db, (int)(rb_opt_number(L, opts, "busy_timeout", BUSY_WAIT) * 1000));
    sqlite3_progress_handler(c->db, 1000, progress, c);
    return 1;
}

int db_stand_in(lua_State *L, const char *display)
{
    db_sqlite_open(L, ":memory:", 0);
    sq_conn *c = (sq_conn *)lua_touserdata(L, -1);
    free(c->display);
    c->display = strdup(display);
    c->stand_in = 1;
    return 1;
}

void db_sqlite_init(lua_State *L)
{
    static const rb_fn methods[] = {
        {.name = "query",
         .fn = l_query,
         .describe = describe_query,
         .rehearse = l_rehearse_query,
         DB_STATEMENT},
        {.name = "exec",
         .fn = l_exec,
         .describe = describe_exec,
         .rehearse = l_rehearse_exec,
         DB_STATEMENT},
        {.name = "backup_to",
         .fn = l_backup_to,
         .cls = RB_MUTATE,
         .describe = describe_backup_to,
         .sig = "path:str opts?:opts",
         .options = "timeout readonly"},
        {.name = "close", .fn = l_close, .cls = RB_PURE, .sig = "", .options = ""},
        {.name = NULL}};
    db_conn_meta(L, META, methods, l_gc, l_close, l_tostring);
}
