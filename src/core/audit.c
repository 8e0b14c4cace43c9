/*
 * The audit log: one SQLite database (WAL) holding every run, step and action
 * record as a row of `records`, chained by hashes so that editing, inserting
 * or deleting a row in the middle is detected by `runbook audit verify`.  This
 * file owns the schema, the append path (one IMMEDIATE transaction per
 * record, statements prepared once per handle because the engine appends
 * before every action goes on), the readers the audit commands and --resume
 * use, the effective outcome of a run (a run killed with -9 stays "running"
 * in the database and is reported "interrupted"), and the chain check.  It
 * also guards the path it is given: another program's database or a file
 * that is not SQLite is refused untouched (audit_file.c tells whose file it
 * is, and who holds a lock), a new log appears atomically (built aside,
 * renamed into place), and a lock held by another process is reported with
 * its holder.
 *
 * A PostgreSQL URL is a team's shared log instead (audit_pg.c): appends go to
 * the database, and what is read is first copied into an in-memory SQLite
 * database of this same schema (only the records not copied yet), so that
 * every reader below serves both.
 */
#include "audit.h"
#include "audit_file.h"
#include "audit_pg.h"
#include "jsonw.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION  1
#define BUSY_TIMEOUT_MS AUDIT_WAIT_DEFAULT_MS
#define GENESIS_HASH    "0000000000000000000000000000000000000000000000000000000000000000"

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_LAST,
    ST_INSERT,
    ST_LAST_RUN_ID,
    ST_DATA_TYPE, /* is data a JSON object? */
    ST_DATA_EACH, /* its top-level fields */
    ST_DATA_BODY, /* data minus the base fields, outcome replaced */
    ST_COUNT
};

/* Prepared on first use, kept for the life of the handle: the append path
 * runs once per action and must not re-parse SQL every time. */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_LAST] = "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
    [ST_INSERT] = "INSERT INTO records(seq, run_id, kind, ts, data, prev_hash, hash)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* the index of run records is ordered by run_id */
    [ST_LAST_RUN_ID] = "SELECT max(run_id) FROM records WHERE kind = 'run'",
    /* json_type() raises on malformed JSON, so it only runs behind json_valid() */
    [ST_DATA_TYPE] = "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) END",
    [ST_DATA_EACH] = "SELECT key, type, value FROM json_each(?1)",
    /* the base fields are written by us (a data field of the same name would
     * make a duplicate key); the fields SPEC §6 documents for the kind are
     * always there, null when the record lacks them (a running run's
     * exit_code), so that a log shipper sees one shape per kind */
    [ST_DATA_BODY] =
        "SELECT CASE ?3"
        " WHEN 'run' THEN json_insert(b, '$.runbook', NULL, '$.path', NULL, '$.sha256', NULL,"
        " '$.mode', NULL, '$.operator', NULL, '$.host', NULL, '$.params', NULL,"
        " '$.outcome', NULL, '$.exit_code', NULL)"
        " WHEN 'step' THEN json_insert(b, '$.index', NULL, '$.name', NULL, '$.status', NULL)"
        " WHEN 'action' THEN json_insert(b, '$.step', NULL, '$.primitive', NULL, '$.verb', NULL,"
        " '$.target', NULL, '$.class', NULL, '$.simulated', NULL, '$.status', NULL,"
        " '$.duration_ms', NULL)"
        " ELSE b END FROM (SELECT"
        " CASE WHEN json_valid(?1) THEN CASE WHEN json_type(?1) = 'object' THEN"
        " CASE WHEN ?2 IS NULL"
        " THEN json_remove(?1, '$.kind', '$.run_id', '$.seq', '$.ts', '$.hash', '$.prev_hash')"
        " ELSE json_set(json_remove(?1, '$.kind', '$.run_id', '$.seq', '$.ts', '$.hash',"
        " '$.prev_hash'), '$.outcome', ?2) END"
        " END END AS b)",
};

struct audit {
    sqlite3 *db;      /* the log, or the in-memory mirror of a PostgreSQL log */
    audit_pg *pg;     /* a shared log on PostgreSQL; NULL for SQLite */
    char *spec;       /* what the log was opened from (a URL with its password) */
    long long mirror; /* the last seq copied into the mirror */
    sqlite3_stmt *st[ST_COUNT];
    char path[4096];
    char err[2048];
    char *buf; /* the hash input, reused across appends */
    size_t cap;
    int busy_ms;
    int wal_frames; /* frames in the WAL after our last commit */
    int locked;     /* the last failure: another process held the lock past busy_ms */
    dev_t dev;      /* the file, while it is in the registry below */
    ino_t ino;
    int registered;
};

/* The logs this process has open.  A second handle on one of them (the
 * watchdog's) must not look at the file through an immutable connection:
 * that one takes no locks, and closing its descriptor would drop the POSIX
 * locks the first handle's connection holds on the file (POSIX drops a
 * process's locks on a file when any of its descriptors for it closes). */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    dev_t dev;
    ino_t ino;
    int n;
} open_logs[8];

static int registered(const struct stat *sb)
{
    int found = 0;
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < sizeof open_logs / sizeof *open_logs && !found; i++)
        found =
            open_logs[i].n > 0 && open_logs[i].dev == sb->st_dev && open_logs[i].ino == sb->st_ino;
    pthread_mutex_unlock(&open_mu);
    return found;
}

/* Add (delta 1) or drop (-1) a's file: 0, or -1 when eight other logs are
 * open at once (no command does that; a is then left out). */
static int register_log(audit *a, int delta)
{
    int rc = -1;
    pthread_mutex_lock(&open_mu);
    size_t n = sizeof open_logs / sizeof *open_logs, free_slot = n;
    for (size_t i = 0; i < n; i++) {
        if (open_logs[i].n > 0 && open_logs[i].dev == a->dev && open_logs[i].ino == a->ino) {
            open_logs[i].n += delta;
            rc = 0;
            break;
        }
        if (open_logs[i].n == 0 && free_slot == n)
            free_slot = i;
    }
    if (rc != 0 && delta > 0 && free_slot < n) {
        open_logs[free_slot].dev = a->dev;
        open_logs[free_slot].ino = a->ino;
        open_logs[free_slot].n = 1;
        rc = 0;
    }
    pthread_mutex_unlock(&open_mu);
    return rc;
}

/* The WAL is kept between connections (see open_db), and whoever opens the
 * log first rebuilds its index by reading every frame still in it; so a
 * connection that leaves more than this many frames behind truncates the WAL
 * when it closes.  Small runs then close without an fsync most of the time,
 * and opening never has much to read. */
#define WAL_KEEP_FRAMES    64
#define WAL_AUTOCHECKPOINT 1000 /* SQLite's default, which our hook replaces */

struct audit_cursor {
    audit *a;
    sqlite3_stmt *st;
};

static void set_err(audit *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt, ap);
    va_end(ap);
}

static sqlite3_stmt *stmt(audit *a, int which)
{
    if (!a->st[which] && sqlite3_prepare_v3(a->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                            &a->st[which], NULL) != SQLITE_OK) {
        set_err(a, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
        a->st[which] = NULL;
    }
    return a->st[which];
}

/* sqlite3_column_text never NULL: a NULL column (or an allocation failure)
 * reads as "", which every check downstream treats as malformed. */
static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *)s : "";
}

/* ---- another process's lock ----------------------------------------------- */

static int is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* The failure of a statement that waited busy_ms for another process's
 * lock: what SQLite says, the journal mode, who holds the lock and what to
 * do, for the operator who meets it at 3 a.m. */
static int locked_fail(audit *a, const char *what, int rc)
{
    char mode[16] = "unknown";
    sqlite3_stmt *st = NULL;
    /* asked without waiting: in rollback mode even this read is blocked */
    sqlite3_busy_timeout(a->db, 0);
    if (sqlite3_prepare_v2(a->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(mode, sizeof mode, "%s", col_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_busy_timeout(a->db, a->busy_ms);

    char holders[1024], todo[4200];
    int pid = audit_lock_holders(a->path, holders, sizeof holders);
    if (!holders[0])
        snprintf(holders, sizeof holders,
                 "no process on this host shows a lock on it in /proc/locks (it may have "
                 "just been released, or be held from another machine over a network file "
                 "system)");
    if (pid)
        snprintf(todo, sizeof todo, "let pid %d finish, or stop it (kill %d), then run again", pid,
                 pid);
    else
        snprintf(todo, sizeof todo,
                 "find what has it open (fuser -v %s*), let it finish, then run again", a->path);
    a->locked = 1;
    set_err(a,
            "the audit log %s is locked by another process: %s (SQLite: %s%s, journal mode %s); "
            "%s after waiting %g s (--audit-wait, audit_wait: in runbook.yaml). What to do: %s",
            a->path, holders, sqlite3_errstr(rc),
            (rc & 0xffff) == SQLITE_BUSY_RECOVERY ? ", another process is recovering the WAL" : "",
            mode, what, a->busy_ms / 1000.0, todo);
    return -1;
}

static int exec_sql(audit *a, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(a->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        if (is_busy(rc))
            locked_fail(a, "the log could not be opened", rc);
        else
            set_err(a, "audit log %s: %s", a->path, msg ? msg : sqlite3_errmsg(a->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int query_int(audit *a, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(a->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        if (is_busy(rc))
            return locked_fail(a, "the log could not be read", rc);
        set_err(a, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
        return -1;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else if (is_busy(rc))
        locked_fail(a, "the log could not be read", rc);
    else if (rc != SQLITE_DONE)
        set_err(a, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Switching a new file to WAL needs an exclusive lock, and when several
 * processes open the same new log at once SQLite returns SQLITE_BUSY here
 * without calling the busy handler: retry until the busy timeout.  On a
 * file already in WAL mode (persistent) this is a read. */
static int use_wal(audit *a)
{
    double deadline = rb_wallclock() + a->busy_ms / 1000.0;
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = NULL;
        char mode[16] = "";
        /* asking first is free; switching takes an exclusive lock */
        int rc = sqlite3_prepare_v2(
            a->db, attempt == 0 ? "PRAGMA journal_mode" : "PRAGMA journal_mode = WAL", -1, &st,
            NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            snprintf(mode, sizeof mode, "%s", col_text(st, 0));
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK)
            set_err(a, "audit log %s: cannot use WAL: %s", a->path, sqlite3_errmsg(a->db));
        sqlite3_finalize(st);
        if (rc == SQLITE_OK) {
            if (strcmp(mode, "wal") == 0)
                return 0;
            if (attempt == 0)
                continue; /* not WAL yet: switch it */
            /* e.g. a file system without shared memory: no concurrent writers */
            set_err(a, "audit log %s: cannot use WAL (journal mode stays %s)", a->path, mode);
            return -1;
        }
        if (!is_busy(rc))
            return -1;
        if (rb_wallclock() > deadline)
            return locked_fail(a, "the log could not be switched to WAL", rc);
        struct timespec ts = {0, (1 + attempt % 8) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- what is at the path ------------------------------------------------ */

/* Views for whoever queries the log with SQL (README "The audit log"): one
 * row per run with its final record's outcome, and the fields of steps and
 * actions as columns.  Data that is not JSON (an edited row) reads as NULLs
 * there; `audit verify` names it. */
#define VIEWS_SQL                                                                                  \
    "CREATE VIEW IF NOT EXISTS runs AS SELECT g.run_id AS run_id,"                                 \
    " json_extract(f.d, '$.runbook') AS runbook, json_extract(l.d, '$.mode') AS mode,"             \
    " json_extract(l.d, '$.operator') AS operator, json_extract(l.d, '$.db_role') AS db_role,"     \
    " json_extract(l.d, '$.host') AS host, json_extract(f.d, '$.start') AS started,"               \
    " json_extract(l.d, '$.end') AS ended, json_extract(l.d, '$.outcome') AS outcome,"             \
    " json_extract(l.d, '$.exit_code') AS exit_code,"                                              \
    " json_extract(l.d, '$.duration_ms') AS duration_ms, json_extract(l.d, '$.error') AS error,"   \
    " json_extract(l.d, '$.actions') AS actions, json_extract(l.d, '$.mutations') AS mutations"    \
    " FROM (SELECT run_id, min(seq) AS first_seq, max(seq) AS last_seq FROM records"               \
    " WHERE kind = 'run' GROUP BY run_id) g"                                                       \
    " JOIN (SELECT seq, CASE WHEN json_valid(data) THEN data END AS d FROM records"                \
    " WHERE kind = 'run') f ON f.seq = g.first_seq"                                                \
    " JOIN (SELECT seq, CASE WHEN json_valid(data) THEN data END AS d FROM records"                \
    " WHERE kind = 'run') l ON l.seq = g.last_seq;"                                                \
    "CREATE VIEW IF NOT EXISTS steps AS SELECT seq, run_id, ts,"                                   \
    " json_extract(d, '$.index') AS step, json_extract(d, '$.name') AS name,"                      \
    " json_extract(d, '$.status') AS status, json_extract(d, '$.start') AS started,"               \
    " json_extract(d, '$.end') AS ended, json_extract(d, '$.duration_ms') AS duration_ms,"         \
    " json_extract(d, '$.error') AS error FROM (SELECT seq, run_id, ts,"                           \
    " CASE WHEN json_valid(data) THEN data END AS d FROM records WHERE kind = 'step');"            \
    "CREATE VIEW IF NOT EXISTS actions AS SELECT seq, run_id, ts,"                                 \
    " json_extract(d, '$.step') AS step, json_extract(d, '$.step_name') AS step_name,"             \
    " json_extract(d, '$.primitive') AS primitive, json_extract(d, '$.verb') AS verb,"             \
    " json_extract(d, '$.target') AS target, json_extract(d, '$.words') AS words,"                 \
    " json_extract(d, '$.class') AS class, json_extract(d, '$.simulated') AS simulated,"           \
    " json_extract(d, '$.status') AS status, json_extract(d, '$.exit_code') AS exit_code,"         \
    " json_extract(d, '$.duration_ms') AS duration_ms, json_extract(d, '$.error') AS error,"       \
    " json_extract(d, '$.answer') AS answer FROM (SELECT seq, run_id, ts,"                         \
    " CASE WHEN json_valid(data) THEN data END AS d FROM records WHERE kind = 'action');"

static const char *schema_sql(char *buf, size_t n)
{
    /* n is 7168 at every call: the views are most of it */
    snprintf(buf, n,
             "CREATE TABLE records("
             " seq INTEGER PRIMARY KEY,"
             " run_id TEXT NOT NULL,"
             " kind TEXT NOT NULL,"
             " ts TEXT NOT NULL,"
             " data TEXT NOT NULL,"
             " prev_hash TEXT NOT NULL,"
             " hash TEXT NOT NULL);"
             /* only run records are indexed: an action's commit then writes
              * one b-tree page, not two; a run's other records are found by
              * seq from its first run record */
             "CREATE INDEX records_runs ON records(run_id, seq) WHERE kind = 'run';" VIEWS_SQL
             "PRAGMA application_id = %d;"
             "PRAGMA user_version = %d;",
             AUDIT_APPLICATION_ID, SCHEMA_VERSION);
    return buf;
}

/* A log made before the views existed gets them when a run opens it (in a
 * transaction of its own; a log that has them is not written to). */
static int ensure_views(audit *a)
{
    int have = 0;
    if (query_int(a,
                  "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN"
                  " ('runs', 'steps', 'actions')",
                  &have) != 0)
        return -1;
    if (have == 3)
        return 0;
    return exec_sql(a, "BEGIN IMMEDIATE;" VIEWS_SQL "COMMIT;") == 0
               ? 0
               : (sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL), -1);
}

/* Make an empty database (0 bytes, or no schema at all) a log, or mark a
 * log written before the application_id existed.  In one IMMEDIATE
 * transaction: of several processes opening it at once, one does it. */
static int ensure_schema(audit *a)
{
    int v = 0, id = 0, objects = 0;
    if (query_int(a, "PRAGMA user_version", &v) != 0 ||
        query_int(a, "PRAGMA application_id", &id) != 0)
        return -1;
    if (v == 0 || id != AUDIT_APPLICATION_ID) {
        char sql[7168];
        if (exec_sql(a, "BEGIN IMMEDIATE") != 0)
            return -1;
        if (query_int(a, "PRAGMA user_version", &v) != 0 ||
            query_int(a, "PRAGMA application_id", &id) != 0 ||
            query_int(a, "SELECT count(*) FROM sqlite_master", &objects) != 0)
            goto fail;
        if (v == 0 && objects == 0) {
            if (exec_sql(a, schema_sql(sql, sizeof sql)) != 0)
                goto fail;
            v = SCHEMA_VERSION;
        } else if (v == 0 || (id != 0 && id != AUDIT_APPLICATION_ID)) {
            /* tables appeared since we looked: another program's */
            set_err(a, "%s is not a runbook audit log (another program created tables in it)",
                    a->path);
            goto fail;
        } else if (id == 0) {
            snprintf(sql, sizeof sql, "PRAGMA application_id = %d", AUDIT_APPLICATION_ID);
            if (exec_sql(a, sql) != 0)
                goto fail;
        }
        if (exec_sql(a, "COMMIT") != 0)
            goto fail;
    }
    if (v > SCHEMA_VERSION) {
        set_err(a, "audit log %s: schema version %d is newer than this runbook understands (%d)",
                a->path, v, SCHEMA_VERSION);
        return -1;
    }
    return 0;
fail:
    sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* An existing log must already have our table; anything else is not ours. */
static int check_schema(audit *a)
{
    int v = 0, has_table = 0;
    if (query_int(a, "PRAGMA user_version", &v) != 0 ||
        query_int(a, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'",
                  &has_table) != 0)
        return -1;
    if (!has_table) {
        set_err(a, "%s is not a runbook audit log (no records table)", a->path);
        return -1;
    }
    if (v > SCHEMA_VERSION) {
        set_err(a, "audit log %s: schema version %d is newer than this runbook understands (%d)",
                a->path, v, SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    audit *a = ud;
    a->wal_frames = frames;
    if (frames >= WAL_AUTOCHECKPOINT)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* ---- creating a log -------------------------------------------------------- */

/* Build the schema in a temporary file, then rename it into place unless a
 * log appeared there meanwhile: 0 created, 1 someone else's is there now,
 * -1 with err. */
static int create_log(const char *path, char *err, size_t errlen)
{
    if (rb_mkdir_parents(path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(errno));
        return -1;
    }
    char dir[4096], tmp[4200], sql[8192];
    const char *base;
    audit_split_path(path, dir, sizeof dir, &base);
    audit_clean_stale_temps(dir, base);
    unsigned r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned)rb_wallclock() ^ (unsigned)clock();
    snprintf(tmp, sizeof tmp, "%s/.%s.%d.%08x.tmp", dir, base, (int)getpid(), r);
    /* created by us so that it is 0600 from the first byte: it records who
     * did what; SQLite gives -wal and -shm the same mode */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    close(fd);
    sqlite3 *db = NULL;
    char mode[16] = "";
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    snprintf(sql, sizeof sql, "PRAGMA journal_mode = OFF; BEGIN; %s COMMIT;",
             schema_sql((char[7168]){0}, 7168));
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    /* nobody sees the file before the rename: no journal needed to build
     * it; WAL is a flag in its header that the rename carries along */
    if (rc == SQLITE_OK &&
        (rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL)) == SQLITE_OK &&
        (rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(mode, sizeof mode, "%s", col_text(st, 0));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK || strcmp(mode, "wal") != 0) {
        snprintf(err, errlen, "cannot create %s: %s", path,
                 rc != SQLITE_OK ? (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc))
                                 : "the file system does not support WAL");
        sqlite3_close(db);
        audit_unlink_temp(tmp);
        return -1;
    }
    sqlite3_close(db); /* checkpoints and removes the temporary -wal, -shm */
    audit_fsync_path(tmp, 0);
    rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        /* no RENAME_NOREPLACE on this file system: link() never replaces */
        rc = link(tmp, path);
    }
    int e = errno;
    audit_unlink_temp(tmp);
    if (rc == 0) {
        audit_fsync_path(dir, O_DIRECTORY); /* the name survives a crash too */
        return 0;
    }
    struct stat sb;
    if (e == EEXIST && stat(path, &sb) != 0 && errno == ENOENT) {
        snprintf(err, errlen, "cannot create %s: it is a symbolic link to a missing file", path);
        return -1;
    }
    if (e == EEXIST)
        return 1;
    snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
    return -1;
}

static audit *open_db(const char *path, int create, int wait_ms, int *why, char *err, size_t errlen)
{
    int why_ = 0;
    if (!why)
        why = &why_;
    *why = AUDIT_FAILED;
    if (!path || !*path) {
        snprintf(err, errlen, "no audit log path");
        return NULL;
    }
    int kind = AUDIT_FILE_NONE;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && registered(&sb))
        kind = AUDIT_FILE_OURS; /* open here already, and checked then */
    for (int attempt = 0; kind == AUDIT_FILE_NONE; attempt++) {
        if (audit_file_kind(path, &kind, err, errlen) != 0) {
            if (kind == AUDIT_FILE_FOREIGN)
                *why = AUDIT_FOREIGN;
            return NULL;
        }
        if (kind != AUDIT_FILE_NONE)
            break;
        if (!create) {
            snprintf(err, errlen, "no audit log at %s (nothing recorded there yet)", path);
            return NULL;
        }
        int rc = create_log(path, err, errlen);
        if (rc < 0)
            return NULL;
        if (rc == 0)
            kind = AUDIT_FILE_OURS;
        else if (attempt == 3) { /* created, then removed, by others, each time */
            snprintf(err, errlen, "cannot create %s: others create and remove it meanwhile", path);
            return NULL;
        }
    }
    if (kind == AUDIT_FILE_BLANK && !create) {
        snprintf(err, errlen, "%s is not a runbook audit log (empty: nothing recorded there yet)",
                 path);
        *why = AUDIT_FOREIGN;
        return NULL;
    }

    audit *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(a->path, sizeof a->path, "%s", path);
    /* READWRITE even for reading: SQLite falls back to read-only on its own
     * when the file is not writable, and a WAL reader wants the -shm file */
    int rc = sqlite3_open_v2(path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_err(a, "cannot open %s: %s", path, a->db ? sqlite3_errmsg(a->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(a->db, 1);
    audit_busy_timeout(a, wait_ms);
    /* Every run opens and closes the log, so both must be cheap (a one-step
     * run is meant to start about as fast as bare Lua): keep the WAL file
     * between connections instead of deleting and recreating it, and leave
     * checkpointing to the automatic checkpoint of a later commit rather
     * than an fsync'ing one on every close. */
    sqlite3_db_config(a->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    int persist = 1;
    sqlite3_file_control(a->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    sqlite3_wal_hook(a->db, wal_hook, a);
    if (create) {
        /* WAL: readers never block the writer, and a commit is an append to
         * the log; NORMAL: no fsync per commit, still consistent after a
         * crash (at most the last commits are lost on power failure).  An
         * empty file gets its schema first, in its rollback journal: a kill
         * leaves it empty or a log. */
        if (kind == AUDIT_FILE_BLANK ? ensure_schema(a) != 0 || use_wal(a) != 0
                                     : use_wal(a) != 0 || ensure_schema(a) != 0)
            goto fail;
        if (exec_sql(a, "PRAGMA synchronous = NORMAL") != 0 || ensure_views(a) != 0)
            goto fail;
        for (int i = 0; i <= ST_INSERT; i++)
            if (!stmt(a, i))
                goto fail;
    } else if (check_schema(a) != 0) {
        goto fail;
    }
    if (stat(path, &sb) == 0) {
        a->dev = sb.st_dev;
        a->ino = sb.st_ino;
        a->registered = register_log(a, 1) == 0;
    }
    return a;
fail:
    if (a->locked)
        *why = AUDIT_LOCKED;
    snprintf(err, errlen, "%s", a->err);
    audit_close(a);
    return NULL;
}

/* A shared log on PostgreSQL, with its in-memory mirror for reading. */
static audit *open_pg(const char *url, int create, char *err, size_t errlen)
{
    audit *a = calloc(1, sizeof *a);
    if (!a || !(a->spec = strdup(url))) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    audit_pg_shown(url, a->path, sizeof a->path);
    char why[1536];
    a->pg = audit_pg_open(url, create, why, sizeof why);
    if (!a->pg) {
        snprintf(err, errlen, "audit log %s: %s", a->path, why);
        audit_close(a);
        return NULL;
    }
    char sql[7168];
    if (sqlite3_open_v2(":memory:", &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        exec_sql(a, schema_sql(sql, sizeof sql)) != 0) {
        snprintf(err, errlen, "audit log %s: cannot make its reading copy: %s", a->path,
                 a->db ? sqlite3_errmsg(a->db) : "out of memory");
        audit_close(a);
        return NULL;
    }
    return a;
}

static int mirror_row(void *ud, long long seq, const char *run_id, const char *kind, const char *ts,
                      const char *data, const char *prev_hash, const char *hash)
{
    audit *a = ud;
    sqlite3_stmt *ins = stmt(a, ST_INSERT);
    if (!ins)
        return -1;
    sqlite3_bind_int64(ins, 1, seq);
    sqlite3_bind_text(ins, 2, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, ts, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, data, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 6, prev_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 7, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    if (rc != SQLITE_DONE)
        return -1;
    a->mirror = seq;
    return 0;
}

/* Before a read of a PostgreSQL log: copy what was appended since the last
 * read.  0, or -1 with a message in a->err (and err when given). */
static int sync_pg(audit *a, char *err, size_t errlen)
{
    if (!a->pg)
        return 0;
    char why[1536];
    sqlite3_exec(a->db, "BEGIN", NULL, NULL, NULL);
    int rc = audit_pg_fetch(a->pg, a->mirror, mirror_row, a, why, sizeof why);
    sqlite3_exec(a->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (rc != 0) {
        set_err(a, "audit log %s: %s", a->path, why);
        if (err && err != a->err)
            snprintf(err, errlen, "%s", a->err);
        /* a failed copy may have half a batch: start over next time */
        sqlite3_exec(a->db, "DELETE FROM records", NULL, NULL, NULL);
        a->mirror = 0;
    }
    return rc;
}

const char *audit_role(const audit *a)
{
    return a && a->pg ? audit_pg_role(a->pg) : NULL;
}

const char *audit_spec(const audit *a)
{
    return a ? (a->spec ? a->spec : a->path) : "";
}

void audit_busy_timeout(audit *a, int ms)
{
    a->busy_ms = ms;
    sqlite3_busy_timeout(a->db, ms);
}

audit *audit_open(const char *path, char *err, size_t errlen)
{
    if (audit_pg_is_url(path))
        return open_pg(path, 1, err, errlen);
    return open_db(path, 1, BUSY_TIMEOUT_MS, NULL, err, errlen);
}

/* ---- runs killed before they recorded their end ------------------------- */

/* How far back a run looks for them: the run records among this many of
 * the newest records (a bounded read at every start; an older one is still
 * shown interrupted by the readers, which check the process themselves). */
#define KILLED_WINDOW 500

typedef struct latest_runs {
    struct {
        char id[40];
        char *data;
    } * v;
    int n, cap;
} latest_runs;

static int note_run(void *ud, long long seq, const char *run_id, const char *kind, const char *ts,
                    const char *data, const char *prev_hash, const char *hash)
{
    (void)seq, (void)kind, (void)ts, (void)prev_hash, (void)hash;
    latest_runs *l = ud;
    int i = 0;
    while (i < l->n && strcmp(l->v[i].id, run_id) != 0)
        i++;
    if (i == l->n) {
        if (l->n == l->cap) {
            int cap = l->cap ? l->cap * 2 : 16;
            void *nv = realloc(l->v, (size_t)cap * sizeof *l->v);
            if (!nv)
                return -1;
            l->v = nv;
            l->cap = cap;
        }
        snprintf(l->v[i].id, sizeof l->v[i].id, "%s", run_id);
        l->v[i].data = NULL;
        l->n++;
    }
    free(l->v[i].data);
    l->v[i].data = strdup(data); /* the latest run record of the run */
    return l->v[i].data ? 0 : -1;
}

/* The data of run_id's latest run record, malloc'd; NULL if none. */
static char *latest_run_data(audit *a, const char *run_id)
{
    char *data = NULL;
    if (a->pg) {
        char why[1536];
        audit_pg_latest_run(a->pg, run_id, &data, why, sizeof why);
        return data;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db,
                           "SELECT data FROM records WHERE kind = 'run' AND run_id = ?1"
                           " ORDER BY seq DESC LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            data = strdup(col_text(st, 0));
    }
    sqlite3_finalize(st);
    return data;
}

/* A run of this host whose process is gone but whose latest record still
 * says "running" was killed (-9, a power cut): record that it was
 * interrupted, in the log itself, so that SQL over the log (the runs view)
 * says what `audit list` says. */
static void close_killed_runs(audit *a)
{
    latest_runs l = {0};
    char why[1536];
    if (a->pg) {
        if (audit_pg_recent_runs(a->pg, KILLED_WINDOW, note_run, &l, why, sizeof why) != 0)
            goto out;
    } else {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(a->db,
                               "SELECT run_id, data FROM records WHERE kind = 'run' AND seq >"
                               " (SELECT coalesce(max(seq), 0) FROM records) - ?1 ORDER BY seq",
                               -1, &st, NULL) != SQLITE_OK)
            goto out;
        sqlite3_bind_int(st, 1, KILLED_WINDOW);
        while (sqlite3_step(st) == SQLITE_ROW)
            if (note_run(&l, 0, col_text(st, 0), "run", "", col_text(st, 1), "", "") != 0)
                break;
        sqlite3_finalize(st);
    }
    for (int i = 0; i < l.n; i++) {
        audit_fields f;
        if (audit_fields_parse(a, l.v[i].data, &f) != 0) {
            audit_fields_free(&f);
            continue;
        }
        const char *given = audit_field_str(&f, "outcome"), *host = audit_field_str(&f, "host");
        const char *now = audit_fields_outcome(&f);
        int killed = given && now && strcmp(given, "running") == 0 &&
                     strcmp(now, "interrupted") == 0 && host && strcmp(host, rb_hostname()) == 0;
        audit_fields_free(&f);
        if (!killed)
            continue;
        /* gone now, but it may have recorded its end since the read above
         * (a run writes its end before it exits): look again */
        char *latest = latest_run_data(a, l.v[i].id);
        int still = 0;
        if (latest && audit_fields_parse(a, latest, &f) == 0) {
            const char *o = audit_field_str(&f, "outcome");
            still = o && strcmp(o, "running") == 0;
        }
        if (latest)
            audit_fields_free(&f);
        free(latest);
        if (!still)
            continue;
        sqlite3_stmt *st = NULL;
        char ts[32];
        rb_time_rfc3339(ts, -1);
        if (sqlite3_prepare_v2(a->db,
                               "SELECT json_set(json_remove(?1, '$.db_role'), '$.outcome',"
                               " 'interrupted', '$.end', ?2, '$.error', 'the process ended"
                               " without recording the end of its run (killed); recorded by"
                               " a later run on the same host')",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, l.v[i].data, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, ts, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                audit_append(a, l.v[i].id, "run", ts, col_text(st, 0), NULL);
        }
        sqlite3_finalize(st);
    }
out:
    for (int i = 0; i < l.n; i++)
        free(l.v[i].data);
    free(l.v);
}

audit *audit_open_run(const char *path, int wait_ms, int *why, char *err, size_t errlen)
{
    if (audit_pg_is_url(path)) {
        /* appends wait on the database's own lock, never failing for it */
        if (why)
            *why = AUDIT_FAILED;
        audit *a = open_pg(path, 1, err, errlen);
        if (a)
            close_killed_runs(a);
        return a;
    }
    audit *a = open_db(path, 1, wait_ms, why, err, errlen);
    if (!a)
        return NULL;
    /* take the write lock once, and give it back: a log that cannot be
     * written must stop the run before its first action, not at it */
    sqlite3_stmt *begin = stmt(a, ST_BEGIN), *rollback = stmt(a, ST_ROLLBACK);
    int rc = begin ? sqlite3_step(begin) : SQLITE_ERROR;
    if (begin)
        sqlite3_reset(begin);
    if (rc == SQLITE_DONE && rollback) {
        sqlite3_step(rollback);
        sqlite3_reset(rollback);
        close_killed_runs(a);
        return a;
    }
    if (is_busy(rc))
        locked_fail(a, "nothing was written", rc);
    else if (begin)
        set_err(a, "audit log %s: cannot write: %s", a->path, sqlite3_errmsg(a->db));
    *why = a->locked ? AUDIT_LOCKED : AUDIT_FAILED;
    snprintf(err, errlen, "%s", a->err);
    audit_close(a);
    return NULL;
}

int audit_locked(const audit *a)
{
    return a && a->locked;
}

audit *audit_open_existing(const char *path, char *err, size_t errlen)
{
    if (audit_pg_is_url(path))
        return open_pg(path, 0, err, errlen);
    return open_db(path, 0, BUSY_TIMEOUT_MS, NULL, err, errlen);
}

void audit_close(audit *a)
{
    if (!a)
        return;
    if (a->registered)
        register_log(a, -1);
    if (a->db && a->wal_frames > WAL_KEEP_FRAMES) {
        /* never wait for another writer here: if one is busy, it will */
        sqlite3_busy_timeout(a->db, 0);
        sqlite3_wal_checkpoint_v2(a->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(a->st[i]);
    sqlite3_close(a->db);
    audit_pg_close(a->pg);
    free(a->spec);
    free(a->buf);
    free(a);
}

const char *audit_path(const audit *a)
{
    return a ? a->path : "";
}

const char *audit_error(const audit *a)
{
    return a ? a->err : "no audit log";
}

static int grow(audit *a, size_t need)
{
    if (need <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 1024;
    while (cap < need)
        cap *= 2;
    char *b = realloc(a->buf, cap);
    if (!b)
        return -1;
    a->buf = b;
    a->cap = cap;
    return 0;
}

/* The record's hash: sha256(prev_hash "\n" seq "\n" run_id "\n" kind "\n" ts
 * "\n" data).  The hash input is built in a->buf. */
static int record_hash(audit *a, const char *prev_hash, long long seq, const char *run_id,
                       const char *kind, const char *ts, const char *data, size_t data_len,
                       char out[65])
{
    char head[64];
    int hl = snprintf(head, sizeof head, "\n%lld\n", seq);
    size_t lp = strlen(prev_hash), lr = strlen(run_id), lk = strlen(kind), lt = strlen(ts);
    size_t n = lp + (size_t)hl + lr + 1 + lk + 1 + lt + 1 + data_len;
    if (grow(a, n + 1) != 0)
        return -1;
    char *p = a->buf;
    memcpy(p, prev_hash, lp), p += lp;
    memcpy(p, head, (size_t)hl), p += hl;
    memcpy(p, run_id, lr), p += lr;
    *p++ = '\n';
    memcpy(p, kind, lk), p += lk;
    *p++ = '\n';
    memcpy(p, ts, lt), p += lt;
    *p++ = '\n';
    memcpy(p, data, data_len);
    rb_sha256_hex(a->buf, n, out);
    return 0;
}

/* Not a parse: the engine builds data with jsonw, this only stops a caller
 * from storing something the export could not splice as an object. */
static int looks_like_object(const char *s, size_t n)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    while (n && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r'))
        s++, n--;
    return n >= 2 && s[0] == '{' && s[n - 1] == '}';
}

static int append_fail(audit *a, const char *what)
{
    set_err(a, "audit log %s: %s: %s", a->path, what, sqlite3_errmsg(a->db));
    if (!sqlite3_get_autocommit(a->db)) {
        sqlite3_stmt *rb = stmt(a, ST_ROLLBACK);
        if (rb) {
            sqlite3_step(rb);
            sqlite3_reset(rb);
        }
    }
    return -1;
}

/* The run id after last, or the clock's when it is greater: ids of the form
 * YYYYMMDD-HHMMSS-mmmNNN compare as the numbers their digits make. */
static void next_run_id(const char *last, char out[40])
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y%m%d-%H%M%S", &tm);
    snprintf(out, 40, "%.15s-%03ld000", base, now.tv_nsec / 1000000);
    if (!last || strlen(last) != 22 || strcmp(out, last) > 0)
        return;
    for (int i = 0; i < 22; i++)
        if (i == 8 || i == 15 ? last[i] != '-' : (last[i] < '0' || last[i] > '9'))
            return; /* an id of the older form (random suffix): nothing to count from */
    snprintf(out, 40, "%s", last);
    for (int i = 21; i >= 0; i--) {
        if (out[i] == '-')
            continue;
        if (out[i] < '9') {
            out[i]++;
            break;
        }
        out[i] = '0';
    }
}

/* run_id NULL: the first record of a new run, whose id is allocated here,
 * inside the write transaction (run_id_out). */
static int append(audit *a, const char *run_id, const char *kind, const char *ts,
                  const char *data_json, long long *seq_out, char run_id_out[40])
{
    if (!a)
        return -1;
    if ((run_id && (!*run_id || strlen(run_id) >= 40)) || !kind || !*kind) {
        set_err(a, "audit log %s: a record needs a run id (under 40 characters) and a kind",
                a->path);
        return -1;
    }
    if (!data_json)
        data_json = "{}";
    size_t data_len = strlen(data_json);
    if (!looks_like_object(data_json, data_len)) {
        set_err(a, "audit log %s: %s record of run %s: data is not a JSON object", a->path, kind,
                run_id);
        return -1;
    }
    char tsbuf[32];
    if (!ts) {
        rb_time_rfc3339(tsbuf, -1);
        ts = tsbuf;
    }
    if (a->pg) {
        char why[1536];
        while (data_len && strchr(" \t\r\n", data_json[0]))
            data_json++, data_len--;
        if (audit_pg_append(a->pg, run_id, kind, ts, data_json, seq_out, run_id_out, why,
                            sizeof why) != 0) {
            set_err(a, "audit log %s: %s record of run %s not written: %s", a->path, kind,
                    run_id ? run_id : "(new)", why);
            return -1;
        }
        return 0;
    }

    sqlite3_stmt *begin = stmt(a, ST_BEGIN), *last = stmt(a, ST_LAST), *ins = stmt(a, ST_INSERT),
                 *commit = stmt(a, ST_COMMIT);
    if (!begin || !last || !ins || !commit)
        return -1; /* stmt() said why */
    /* the write lock is taken up front so that reading the last hash and
     * inserting after it cannot interleave with another writer; past the
     * busy timeout this fails loudly rather than dropping the record */
    a->locked = 0;
    int rc = sqlite3_step(begin);
    sqlite3_reset(begin);
    if (rc != SQLITE_DONE) {
        if (is_busy(rc)) {
            char what[160];
            snprintf(what, sizeof what, "%s record of run %s not written", kind, run_id);
            return locked_fail(a, what, rc);
        }
        return append_fail(a, "cannot start a transaction");
    }

    long long seq = 1;
    char prev[65] = GENESIS_HASH;
    rc = sqlite3_step(last);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(last, 0) + 1;
        snprintf(prev, sizeof prev, "%s", col_text(last, 1));
    }
    sqlite3_reset(last);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return append_fail(a, "cannot read the last record");
    char new_id[40];
    if (!run_id) {
        sqlite3_stmt *st = stmt(a, ST_LAST_RUN_ID);
        if (!st)
            return append_fail(a, "cannot read the last run id");
        rc = sqlite3_step(st);
        next_run_id(rc == SQLITE_ROW ? col_text(st, 0) : NULL, new_id);
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return append_fail(a, "cannot read the last run id");
        run_id = new_id;
    }

    char hash[65];
    if (record_hash(a, prev, seq, run_id, kind, ts, data_json, data_len, hash) != 0) {
        append_fail(a, "out of memory");
        set_err(a, "audit log %s: out of memory", a->path);
        return -1;
    }
    sqlite3_bind_int64(ins, 1, seq);
    sqlite3_bind_text(ins, 2, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, ts, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, data_json, (int)data_len, SQLITE_STATIC);
    sqlite3_bind_text(ins, 6, prev, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 7, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins); /* the bound strings are the caller's */
    if (rc != SQLITE_DONE)
        return append_fail(a, "cannot insert the record");

    rc = sqlite3_step(commit);
    sqlite3_reset(commit);
    if (rc != SQLITE_DONE)
        return append_fail(a, "cannot commit the record");
    if (seq_out)
        *seq_out = seq;
    if (run_id_out)
        snprintf(run_id_out, 40, "%s", run_id);
    return 0;
}

int audit_append(audit *a, const char *run_id, const char *kind, const char *ts,
                 const char *data_json, long long *seq_out)
{
    if (a && !run_id) {
        set_err(a, "audit log %s: a record needs a run id", a->path);
        return -1;
    }
    return append(a, run_id, kind, ts, data_json, seq_out, NULL);
}

int audit_append_first(audit *a, const char *kind, const char *ts, const char *data_json,
                       char run_id[40], long long *seq_out)
{
    return append(a, NULL, kind, ts, data_json, seq_out, run_id);
}

/* ---- reading ------------------------------------------------------------ */

/* The role that wrote a record: on a PostgreSQL log the database stamped it
 * into data; a SQLite log has no roles (a db_role there is only a claim). */
static const char *role_sql(const audit *a, const char *alias)
{
    if (!a->pg)
        return "NULL";
    return alias[0] == 'r'
               ? "CASE WHEN json_valid(r.data) THEN json_extract(r.data, '$.db_role') END"
               : "CASE WHEN json_valid(f.data) THEN json_extract(f.data, '$.db_role') END";
}

static audit_cursor *cursor_new(audit *a, const char *sql, char *err, size_t errlen)
{
    audit_cursor *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->a = a;
    if (sqlite3_prepare_v2(a->db, sql, -1, &c->st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
        sqlite3_finalize(c->st);
        free(c);
        return NULL;
    }
    return c;
}

audit_cursor *audit_records(audit *a, const char *run_id, const char *since, char *err,
                            size_t errlen)
{
    /* whether a run record is its run's latest is asked only of run records:
     * the subquery walks that run's index entries */
    if (sync_pg(a, err, errlen) != 0)
        return NULL;
    char sql[1200];
    snprintf(sql, sizeof sql,
             "SELECT r.seq, r.run_id, r.kind, r.ts, r.data, r.prev_hash, r.hash,"
             " CASE WHEN r.kind = 'run' THEN r.seq = (SELECT m.seq FROM records m"
             " WHERE m.run_id = r.run_id AND m.kind = 'run' ORDER BY m.seq DESC LIMIT 1)"
             " ELSE 0 END, NULL, %s"
             " FROM records r WHERE 1 %s %s ORDER BY r.seq",
             role_sql(a, "r"),
             run_id ? "AND r.run_id = ?1 AND r.seq >= coalesce((SELECT min(f.seq) FROM records f"
                      " WHERE f.kind = 'run' AND f.run_id = ?1), 0)"
                    : "",
             since ? "AND r.ts >= ?2" : "");
    audit_cursor *c = cursor_new(a, sql, err, errlen);
    if (c && run_id)
        sqlite3_bind_text(c->st, 1, run_id, -1, SQLITE_TRANSIENT);
    if (c && since)
        sqlite3_bind_text(c->st, 2, since, -1, SQLITE_TRANSIENT);
    return c;
}

audit_cursor *audit_runs(audit *a, const char *since, char *err, size_t errlen)
{
    /* runs are known by their run records (a log edited to remove them is
     * what `audit verify` reports) */
    if (sync_pg(a, err, errlen) != 0)
        return NULL;
    char sql[1200];
    snprintf(sql, sizeof sql,
             "WITH runs AS (SELECT run_id, min(seq) AS first_seq, max(seq) AS run_seq"
             " FROM records WHERE kind = 'run' GROUP BY run_id)"
             " SELECT coalesce(l.seq, 0), runs.run_id, 'run', coalesce(l.ts, f.ts),"
             " coalesce(l.data, '{}'), coalesce(l.prev_hash, ''), coalesce(l.hash, ''),"
             " l.seq IS NOT NULL, f.ts, %s"
             " FROM runs JOIN records f ON f.seq = runs.first_seq"
             " LEFT JOIN records l ON l.seq = runs.run_seq %s"
             " ORDER BY runs.first_seq DESC",
             role_sql(a, "f"), since ? "WHERE f.ts >= ?1" : "");
    audit_cursor *c = cursor_new(a, sql, err, errlen);
    if (c && since)
        sqlite3_bind_text(c->st, 1, since, -1, SQLITE_TRANSIENT);
    return c;
}

int audit_next(audit_cursor *c, audit_record *r)
{
    int rc = sqlite3_step(c->st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW) {
        set_err(c->a, "audit log %s: %s", c->a->path, sqlite3_errmsg(c->a->db));
        return -1;
    }
    sqlite3_stmt *st = c->st;
    r->seq = sqlite3_column_int64(st, 0);
    r->run_id = col_text(st, 1);
    r->kind = col_text(st, 2);
    r->ts = col_text(st, 3);
    r->data = col_text(st, 4);
    r->prev_hash = col_text(st, 5);
    r->hash = col_text(st, 6);
    r->latest_run = sqlite3_column_int(st, 7);
    r->run_start = sqlite3_column_type(st, 8) == SQLITE_NULL ? NULL : col_text(st, 8);
    r->role = sqlite3_column_type(st, 9) == SQLITE_NULL ? NULL : col_text(st, 9);
    return 1;
}

void audit_cursor_free(audit_cursor *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->st);
    free(c);
}

int audit_resolve_run(audit *a, const char *id, char out[40], char *err, size_t errlen)
{
    if (!id || !*id) {
        snprintf(err, errlen, "empty run id");
        return -1;
    }
    if (sync_pg(a, err, errlen) != 0)
        return -1;
    /* an exact id wins even when it is also the prefix of a longer one;
     * otherwise a range scan of the run_id index: every id starting with
     * the prefix sorts between it and it followed by 0xff */
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT * FROM (SELECT run_id FROM records WHERE kind = 'run' AND"
                      " run_id = ?1 LIMIT 1)"
                      " UNION ALL SELECT * FROM (SELECT DISTINCT run_id FROM records"
                      " WHERE kind = 'run' AND run_id > ?1 AND run_id < ?2 ORDER BY run_id"
                      " LIMIT 4)";
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
        return -1;
    }
    char hi[256];
    snprintf(hi, sizeof hi, "%s\xff", id);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
    char found[4][40];
    int n = 0, exact = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *rid = col_text(st, 0);
        if (strcmp(rid, id) == 0) {
            exact = 1;
            break;
        }
        if (n < 4)
            snprintf(found[n++], 40, "%s", rid);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        snprintf(err, errlen, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (exact || n == 1) {
        snprintf(out, 40, "%s", exact ? id : found[0]);
        return 0;
    }
    if (n == 0) {
        snprintf(err, errlen, "no run matches '%s' in %s", id, a->path);
        return -1;
    }
    snprintf(err, errlen, "run id prefix '%s' is ambiguous (%s, %s%s)", id, found[0], found[1],
             n > 2 ? ", ..." : "");
    return -1;
}

/* ---- the fields of data -------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

/* Is data a JSON object?  Malformed data (an edited row) is not an error for
 * the readers: they show what they can and verify names the row. */
static int data_is_object(audit *a, const char *data)
{
    sqlite3_stmt *st = stmt(a, ST_DATA_TYPE);
    if (!st)
        return 0;
    sqlite3_bind_text(st, 1, data, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_ROW && strcmp(col_text(st, 0), "object") == 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

int audit_fields_parse(audit *a, const char *data, audit_fields *f)
{
    f->v = NULL;
    f->n = 0;
    if (!data || !data_is_object(a, data))
        return -1;
    sqlite3_stmt *st = stmt(a, ST_DATA_EACH);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, data, -1, SQLITE_STATIC);
    int cap = 0, rc, failed = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (f->n == cap) {
            int ncap = cap ? cap * 2 : 32;
            audit_field *nv = realloc(f->v, (size_t)ncap * sizeof *nv);
            if (!nv) {
                failed = 1;
                break;
            }
            f->v = nv;
            cap = ncap;
        }
        const char *type = col_text(st, 1);
        audit_field *fl = &f->v[f->n];
        fl->key = dup_str(col_text(st, 0));
        fl->value = NULL;
        if (strcmp(type, "null") == 0) {
            fl->type = 'z';
        } else if (strcmp(type, "true") == 0 || strcmp(type, "false") == 0) {
            fl->type = 'b';
            fl->value = dup_str(type);
        } else {
            fl->type = strcmp(type, "text") == 0      ? 's'
                       : strcmp(type, "integer") == 0 ? 'i'
                       : strcmp(type, "real") == 0    ? 'r'
                       : strcmp(type, "array") == 0   ? 'a'
                                                      : 'o';
            fl->value = dup_str(col_text(st, 2));
            if (!fl->value) {
                free(fl->key);
                failed = 1;
                break;
            }
        }
        if (!fl->key) {
            free(fl->value);
            failed = 1;
            break;
        }
        f->n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (failed || (rc != SQLITE_ROW && rc != SQLITE_DONE)) {
        audit_fields_free(f);
        return -1;
    }
    return 0;
}

const audit_field *audit_field_get(const audit_fields *f, const char *key)
{
    /* the last of duplicate keys wins, as in most JSON decoders */
    for (int i = f->n - 1; i >= 0; i--)
        if (strcmp(f->v[i].key, key) == 0)
            return &f->v[i];
    return NULL;
}

const char *audit_field_str(const audit_fields *f, const char *key)
{
    const audit_field *fl = audit_field_get(f, key);
    return fl ? fl->value : NULL;
}

void audit_fields_free(audit_fields *f)
{
    for (int i = 0; i < f->n; i++) {
        free(f->v[i].key);
        free(f->v[i].value);
    }
    free(f->v);
    f->v = NULL;
    f->n = 0;
}

/* ---- outcomes ------------------------------------------------------------ */

const char *audit_effective_outcome(const char *outcome, const char *host, long long pid,
                                    unsigned long long pid_start)
{
    if (!outcome || strcmp(outcome, "running") != 0)
        return outcome;
    /* another machine's processes cannot be seen from here; pid <= 0 would
     * make kill() address a process group */
    if (!host || strcmp(host, rb_hostname()) != 0 || pid <= 0 || pid != (long long)(pid_t)pid)
        return outcome;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return "interrupted";
    /* alive (or not ours to signal): the same process only if it started
     * when the run's did -- pids are reused */
    unsigned long long now_start = rb_pid_start((pid_t)pid);
    if (pid_start && now_start && now_start != pid_start)
        return "interrupted";
    return outcome;
}

const char *audit_fields_outcome(const audit_fields *f)
{
    const char *outcome = audit_field_str(f, "outcome");
    const char *pid = audit_field_str(f, "pid"), *start = audit_field_str(f, "pid_start");
    return audit_effective_outcome(outcome, audit_field_str(f, "host"),
                                   pid ? strtoll(pid, NULL, 10) : 0,
                                   start ? strtoull(start, NULL, 10) : 0);
}

int audit_run_outcome(audit *a, const char *run_id, char *buf, size_t n)
{
    char id[40];
    if (audit_resolve_run(a, run_id, id, a->err, sizeof a->err) != 0)
        return -1;
    audit_cursor *c = audit_records(a, id, NULL, a->err, sizeof a->err);
    if (!c)
        return -1;
    audit_record r;
    int rc, found = 0;
    while ((rc = audit_next(c, &r)) == 1) {
        if (!r.latest_run)
            continue;
        audit_fields f;
        audit_fields_parse(a, r.data, &f);
        const char *o = audit_fields_outcome(&f);
        snprintf(buf, n, "%s", o ? o : "unknown");
        audit_fields_free(&f);
        found = 1;
    }
    audit_cursor_free(c);
    if (rc < 0)
        return -1;
    if (!found) {
        set_err(a, "run %s has no run record", id);
        return -1;
    }
    return 0;
}

/* ---- export ------------------------------------------------------------- */

char *audit_record_json(audit *a, const audit_record *r)
{
    const char *override = NULL;
    if (r->latest_run && strcmp(r->kind, "run") == 0) {
        audit_fields f;
        if (audit_fields_parse(a, r->data, &f) == 0) {
            const char *recorded = audit_field_str(&f, "outcome");
            const char *eff = audit_fields_outcome(&f);
            /* eff is either recorded (owned by f) or a static string */
            if (recorded && eff && strcmp(recorded, eff) != 0)
                override = eff;
            audit_fields_free(&f);
        }
    }

    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "kind", r->kind);
    jw_kstr(&w, "run_id", r->run_id);
    jw_kint(&w, "seq", r->seq);
    jw_kstr(&w, "ts", r->ts);
    jw_kstr(&w, "hash", r->hash);
    jw_kstr(&w, "prev_hash", r->prev_hash);

    sqlite3_stmt *st = stmt(a, ST_DATA_BODY);
    const char *body = NULL;
    if (st) {
        sqlite3_bind_text(st, 1, r->data, -1, SQLITE_STATIC);
        if (override)
            sqlite3_bind_text(st, 2, override, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->kind, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            body = col_text(st, 0);
    }
    if (!body || body[0] != '{') {
        body = NULL;
        jw_kbool(&w, "data_malformed", 1);
        jw_kstr(&w, "data", r->data);
    }
    jw_obj_end(&w);

    /* splice: the base object without its closing brace, then data's
     * members (json_remove wrote it minified, on one line) */
    char *out = NULL;
    const char *base = jw_str_result(&w);
    size_t bl = strlen(base);
    if (bl >= 2) {
        size_t dl = body ? strlen(body) : 0;
        out = malloc(bl + dl + 2);
        if (out) {
            if (body && strcmp(body, "{}") != 0) {
                memcpy(out, base, bl - 1);
                out[bl - 1] = ',';
                memcpy(out + bl, body + 1, dl); /* includes data's closing brace */
                out[bl + dl - 1] = '\0';
            } else {
                memcpy(out, base, bl + 1);
            }
        }
    }
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    jw_free(&w);
    return out;
}

/* ---- --resume ------------------------------------------------------------ */

static int int_cmp(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

int audit_load_resume(audit *a, const char *run_id, audit_resume *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (audit_resolve_run(a, run_id, out->run_id, err, errlen) != 0)
        return -1;
    audit_cursor *c = audit_records(a, out->run_id, NULL, err, errlen);
    if (!c)
        return -1;

    /* per step index, the status of its latest step record decides */
    struct {
        int index, done;
    } *steps = NULL;
    int nsteps = 0, cap = 0, have_run = 0, rc = 0, oom = 0;
    audit_record r;
    while (!oom && (rc = audit_next(c, &r)) == 1) {
        audit_fields f;
        if (audit_fields_parse(a, r.data, &f) != 0)
            continue; /* an edited row: verify reports it */
        if (strcmp(r.kind, "run") == 0 && r.latest_run) {
            const char *rb = audit_field_str(&f, "runbook"), *path = audit_field_str(&f, "path");
            free(out->runbook);
            free(out->path);
            out->runbook = dup_str(rb ? rb : "");
            out->path = dup_str(path ? path : "");
            oom = !out->runbook || !out->path;
            have_run = 1;
        } else if (strcmp(r.kind, "step") == 0) {
            const audit_field *idx = audit_field_get(&f, "index");
            const char *status = audit_field_str(&f, "status");
            if (idx && idx->type == 'i') {
                int index = atoi(idx->value), i;
                for (i = 0; i < nsteps && steps[i].index != index; i++)
                    ;
                if (i == nsteps) {
                    if (nsteps == cap) {
                        int ncap = cap ? cap * 2 : 16;
                        void *ns = realloc(steps, (size_t)ncap * sizeof *steps);
                        if (!ns) {
                            oom = 1;
                            audit_fields_free(&f);
                            break;
                        }
                        steps = ns;
                        cap = ncap;
                    }
                    steps[nsteps++].index = index;
                }
                steps[i].done =
                    status && (strcmp(status, "ok") == 0 || strcmp(status, "skipped") == 0);
            }
            const audit_field *state = audit_field_get(&f, "state");
            if (state && state->type == 'o') {
                char *s = dup_str(state->value);
                if (s) {
                    free(out->state_json);
                    out->state_json = s;
                } else {
                    oom = 1;
                }
            }
        }
        audit_fields_free(&f);
    }
    audit_cursor_free(c);
    if (rc < 0 || oom || !have_run) {
        if (rc < 0)
            snprintf(err, errlen, "%s", a->err);
        else if (oom)
            snprintf(err, errlen, "out of memory");
        else
            snprintf(err, errlen, "run %s has no run record in %s", out->run_id, a->path);
        free(steps);
        audit_resume_free(out);
        return -1;
    }
    if (!out->state_json && !(out->state_json = dup_str("{}"))) {
        snprintf(err, errlen, "out of memory");
        free(steps);
        audit_resume_free(out);
        return -1;
    }
    if (nsteps && !(out->done = malloc((size_t)nsteps * sizeof *out->done))) {
        snprintf(err, errlen, "out of memory");
        free(steps);
        audit_resume_free(out);
        return -1;
    }
    for (int i = 0; i < nsteps; i++)
        if (steps[i].done)
            out->done[out->n_done++] = steps[i].index;
    free(steps);
    if (out->n_done > 1)
        qsort(out->done, (size_t)out->n_done, sizeof *out->done, int_cmp);
    return 0;
}

void audit_resume_free(audit_resume *r)
{
    if (!r)
        return;
    free(r->runbook);
    free(r->path);
    free(r->state_json);
    free(r->done);
    char id[40];
    memcpy(id, r->run_id, sizeof id);
    memset(r, 0, sizeof *r);
    memcpy(r->run_id, id, sizeof id); /* still names the run for a message */
}

/* ---- verify -------------------------------------------------------------- */

int audit_verify(audit *a, char *msg, size_t n, long long *bad_seq, char bad_run[40])
{
    /* one statement is one read snapshot: concurrent appends do not move
     * the end of the chain under us */
    sqlite3_stmt *st = NULL;
    if (sync_pg(a, msg, n) != 0)
        return -1;
    if (sqlite3_prepare_v2(a->db,
                           "SELECT seq, run_id, kind, ts, data, prev_hash, hash, json_valid(data)"
                           " FROM records ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(msg, n, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
        return -1;
    }
    long long expect = 1, count = 0;
    char prev[65] = GENESIS_HASH, hash[65];
    int rc, result = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long seq = sqlite3_column_int64(st, 0);
        const char *run_id = col_text(st, 1), *kind = col_text(st, 2), *ts = col_text(st, 3);
        const char *data = col_text(st, 4), *prev_hash = col_text(st, 5);
        const char *stored = col_text(st, 6);
        int data_len = sqlite3_column_bytes(st, 4);
        const char *why = NULL;
        char whybuf[96];
        if (seq != expect) {
            why = seq > expect ? "previous record missing"
                               : "record inserted before the start of the chain";
        } else if (strcmp(prev_hash, prev) != 0) {
            if (seq == 1)
                why = "prev_hash is not the genesis hash";
            else {
                snprintf(whybuf, sizeof whybuf, "prev_hash does not match seq %lld", seq - 1);
                why = whybuf;
            }
        } else if (record_hash(a, prev_hash, seq, run_id, kind, ts, data, (size_t)data_len, hash) !=
                   0) {
            snprintf(msg, n, "out of memory");
            result = -1;
            break;
        } else if (strcmp(hash, stored) != 0) {
            why = "hash mismatch (record altered)";
        } else if (!sqlite3_column_int(st, 7) || !looks_like_object(data, (size_t)data_len)) {
            /* the chain holds, but this is not what the engine writes: a
             * rewritten chain or a bug; either way someone must look */
            why = "data is not a JSON object";
        }
        if (why) {
            snprintf(msg, n, "%s at run %s seq %lld: %s",
                     why[0] == 'd' ? "malformed record" : "chain broken", run_id, seq, why);
            if (bad_seq)
                *bad_seq = seq;
            if (bad_run)
                snprintf(bad_run, 40, "%s", run_id);
            result = 1;
            break;
        }
        snprintf(prev, sizeof prev, "%s", stored);
        expect = seq + 1;
        count++;
    }
    if (result == 0 && rc != SQLITE_DONE) {
        snprintf(msg, n, "audit log %s: %s", a->path, sqlite3_errmsg(a->db));
        result = -1;
    }
    if (result == 0)
        snprintf(msg, n, "%lld record%s verified, chain intact", count, count == 1 ? "" : "s");
    sqlite3_finalize(st);
    return result;
}

/* ---- run locks ------------------------------------------------------------ */

/* A holder recorded in a SQLite log is alive while its process is: the
 * same test as a run's effective outcome (host, pid, pid start time). */
static int holder_alive(audit *a, const char *holder)
{
    audit_fields f;
    if (audit_fields_parse(a, holder, &f) != 0) {
        audit_fields_free(&f);
        return 0; /* unreadable: nobody can be shown as holding it */
    }
    const char *host = audit_field_str(&f, "host"), *pid = audit_field_str(&f, "pid"),
               *start = audit_field_str(&f, "pid_start");
    int alive = strcmp(audit_effective_outcome("running", host, pid ? atoll(pid) : 0,
                                               start ? strtoull(start, NULL, 10) : 0),
                       "running") == 0;
    audit_fields_free(&f);
    return alive;
}

static int locks_table(audit *a)
{
    return exec_sql(a, "CREATE TABLE IF NOT EXISTS locks(name TEXT PRIMARY KEY,"
                       " run_id TEXT NOT NULL, holder TEXT NOT NULL)");
}

int audit_lock_take(audit *a, const char *name, const char *run_id, const char *holder_json,
                    char **holder)
{
    *holder = NULL;
    if (a->pg) {
        char why[1536];
        int rc = audit_pg_lock_take(a->pg, name, run_id, holder_json, holder, why, sizeof why);
        if (rc < 0)
            set_err(a, "audit log %s: lock %s: %s", a->path, name, why);
        return rc;
    }
    if (exec_sql(a, "BEGIN IMMEDIATE") != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    int result = -1;
    if (locks_table(a) != 0)
        goto out;
    if (sqlite3_prepare_v2(a->db, "SELECT run_id, holder FROM locks WHERE name = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && strcmp(col_text(st, 0), run_id) != 0 &&
        holder_alive(a, col_text(st, 1))) {
        *holder = strdup(col_text(st, 1));
        result = *holder ? 1 : -1;
        goto out;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    /* free, or held by a process that is gone: ours now */
    if (sqlite3_prepare_v2(a->db, "INSERT OR REPLACE INTO locks VALUES (?1, ?2, ?3)", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, holder_json, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    st = NULL;
    if (exec_sql(a, "COMMIT") != 0)
        goto out;
    return 0;
fail:
    set_err(a, "audit log %s: lock %s: %s", a->path, name, sqlite3_errmsg(a->db));
out:
    sqlite3_finalize(st);
    sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
    return result;
}

/* One UPDATE or DELETE of our rows with two text parameters. */
static int lock_rows(audit *a, const char *sql, const char *p1, const char *p2)
{
    sqlite3_stmt *st = NULL;
    if (locks_table(a) != 0)
        return -1;
    int ok = sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, p1, -1, SQLITE_STATIC);
        if (p2)
            sqlite3_bind_text(st, 2, p2, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    if (!ok)
        set_err(a, "audit log %s: locks: %s", a->path, sqlite3_errmsg(a->db));
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

int audit_lock_step(audit *a, const char *run_id, const char *step)
{
    if (a->pg) {
        char why[1536];
        if (audit_pg_lock_step(a->pg, run_id, step, why, sizeof why) != 0) {
            set_err(a, "audit log %s: locks: %s", a->path, why);
            return -1;
        }
        return 0;
    }
    return lock_rows(a,
                     "UPDATE locks SET holder = json_set(holder, '$.step', ?2) WHERE run_id = ?1",
                     run_id, step);
}

int audit_lock_release(audit *a, const char *run_id)
{
    if (a->pg) {
        char why[1536];
        if (audit_pg_lock_release(a->pg, run_id, why, sizeof why) != 0) {
            set_err(a, "audit log %s: locks: %s", a->path, why);
            return -1;
        }
        return 0;
    }
    return lock_rows(a, "DELETE FROM locks WHERE run_id = ?1", run_id, NULL);
}

int audit_locks(audit *a, int (*fn)(void *ud, const char *name, const char *holder_json), void *ud)
{
    if (a->pg) {
        char why[1536];
        if (audit_pg_locks(a->pg, fn, ud, why, sizeof why) != 0) {
            set_err(a, "audit log %s: locks: %s", a->path, why);
            return -1;
        }
        return 0;
    }
    int has = 0;
    if (query_int(a, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'locks'",
                  &has) != 0)
        return -1;
    if (!has)
        return 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT name, holder FROM locks ORDER BY name", -1, &st, NULL) !=
        SQLITE_OK) {
        set_err(a, "audit log %s: locks: %s", a->path, sqlite3_errmsg(a->db));
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (holder_alive(a, col_text(st, 1)) && fn(ud, col_text(st, 0), col_text(st, 1)) != 0)
            break;
    sqlite3_finalize(st);
    return 0;
}
