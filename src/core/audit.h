/*
 * The audit log: an append-only, hash-chained SQLite database (WAL), or a
 * team's shared log on PostgreSQL (audit_pg.h) behind the same functions.
 *
 * Every record is one row of `records`: seq (global, contiguous), run_id,
 * kind ("run", "step", "action"), ts (RFC 3339 UTC), data (a JSON object),
 * prev_hash, hash = sha256(prev_hash "\n" seq "\n" run_id "\n" kind "\n" ts
 * "\n" data).  A run writes a "run" record when it starts (outcome
 * "running") and another when it ends; the latest one is the run's state.
 *
 * Fields of data, by kind (what the engine writes; list/show/export read):
 *   run:    runbook title path sha256 params{} mode operator sudo_user host
 *           pid pid_start start end outcome exit_code state{} error parent_run
 *   step:   index name status start end duration_ms error state{}
 *   action: step step_name primitive verb target words args class simulated
 *           status exit_code duration_ms stdout stderr answer error
 */
#ifndef RUNBOOK_AUDIT_H
#define RUNBOOK_AUDIT_H

#include <stddef.h>

typedef struct audit audit;

/* Every log carries this SQLite application_id ("RBAL", header offset 68);
 * a log created before it existed is known by its `records` table. */
#define AUDIT_APPLICATION_ID  0x5242414C
#define AUDIT_WAIT_DEFAULT_MS 30000

/* Why an open failed (err says it in words). */
enum { AUDIT_FAILED = 1, AUDIT_FOREIGN, AUDIT_LOCKED };

/* Open or create the database at path (parent directories created, mode
 * 0600), WAL, synchronous=NORMAL, a busy timeout for concurrent writers.
 *
 * What is at path is looked at before anything is written to it, through a
 * read of the main file that takes no lock and creates no -wal or -shm: a
 * file that is not SQLite, or an SQLite database with tables of another
 * application (or another application_id), is refused and left exactly as
 * it was.  A missing log is built in a temporary file of the same directory
 * (.NAME.PID.RANDOM.tmp, 0600) and renamed into place without replacing
 * anything, so a kill -9 leaves no log or a complete one, and of two runs
 * creating it at once one wins and both use its log; temporary files of dead
 * processes are removed then.  An empty file (0 bytes, or SQLite with no
 * schema at all) holds nothing of anyone's and becomes a log in place, in
 * one transaction.  NULL with a message in err on failure. */
audit *audit_open(const char *path, char *err, size_t errlen);

/* audit_open for a run: another writer is waited for up to wait_ms (an
 * append waits as long), and the write lock is tried once here so that a
 * log locked past the wait stops the run before anything runs.  On failure
 * *why is AUDIT_LOCKED (err names the holder's pid and command when
 * /proc/locks shows them), AUDIT_FOREIGN (not a runbook audit log) or
 * AUDIT_FAILED. */
audit *audit_open_run(const char *path, int wait_ms, int *why, char *err, size_t errlen);

/* Whether the last failed append failed because another process held the
 * log's lock past the wait (its message says who). */
int audit_locked(const audit *a);
void audit_close(audit *a);
const char *audit_path(const audit *a);

/* Who the log itself vouches for: the database role this handle is
 * connected as (PostgreSQL's session_user, which a client cannot choose
 * without the role's credentials), or NULL for a local SQLite log, where the
 * OS account (rb_username()) is the identity. */
const char *audit_role(const audit *a);

/* Append the first record of a new run (usually its run record; an action
 * of a runbook's top-level code can come first) and allocate the run's id in
 * the same write transaction, so that run ids are strictly increasing within
 * a log in the order the runs began, and sort as strings:
 * YYYYMMDD-HHMMSS-mmmNNN (UTC to the millisecond, then a counter for runs
 * begun within one millisecond or after the clock stepped back).  0 with the
 * id in run_id, or -1 with a message in audit_error(). */
int audit_append_first(audit *a, const char *kind, const char *ts, const char *data_json,
                       char run_id[40], long long *seq_out);

/* What the log was opened from, password included: for a second handle on
 * the same log (the watchdog's).  audit_path() is for messages: a URL's
 * password is shown as ****. */
const char *audit_spec(const audit *a);

/* Append one record in its own IMMEDIATE transaction, chained to the last
 * record in the database, committed before returning.  ts NULL = now.
 * Returns 0, or -1 with a message retrievable by audit_error(). */
int audit_append(audit *a, const char *run_id, const char *kind, const char *ts,
                 const char *data_json, long long *seq_out);
const char *audit_error(const audit *a);

/* What --resume needs from an earlier run (id or unique prefix). */
typedef struct audit_resume {
    char run_id[40];
    char *runbook;    /* malloc'd */
    char *path;       /* malloc'd */
    char *state_json; /* state after the last completed step; malloc'd, "{}" if none */
    int *done;        /* indexes of steps with status ok (or skipped by `when`) */
    int n_done;
} audit_resume;
int audit_load_resume(audit *a, const char *run_id, audit_resume *out, char *err, size_t errlen);
void audit_resume_free(audit_resume *r);

/* ---- reading the log: the audit commands, --resume and the tests ----------
 * Added for `runbook audit` (cmd_audit.c), which must not include sqlite3.h
 * itself.  Strings handed out by a cursor live until the next audit_next(). */

/* Open an existing audit log for reading (never creates it; an empty or
 * foreign SQLite file is an error).  NULL with a message on failure. */
audit *audit_open_existing(const char *path, char *err, size_t errlen);

/* How long an append waits for another writer's transaction (default 30 s)
 * before it fails with -1 and a message. */
void audit_busy_timeout(audit *a, int ms);

typedef struct audit_record {
    long long seq; /* 0 for the placeholder of a run without a run record */
    const char *run_id, *kind, *ts, *data, *prev_hash, *hash;
    int latest_run;        /* a "run" record that is its run's latest: the run's state */
    const char *run_start; /* audit_runs() only: ts of the run's first record */
    const char *role;      /* the database role that wrote it (PostgreSQL log); NULL on SQLite */
} audit_record;

typedef struct audit_cursor audit_cursor;
/* Every record in seq order, of one run (full id) or all (NULL), with ts at or
 * after since (RFC 3339 UTC) or all (NULL). */
audit_cursor *audit_records(audit *a, const char *run_id, const char *since, char *err,
                            size_t errlen);
/* One row per run, newest first: its latest run record, with run_start set;
 * since filters on run_start. */
audit_cursor *audit_runs(audit *a, const char *since, char *err, size_t errlen);
/* 1 with *r filled, 0 at the end, -1 on error (message in audit_error()). */
int audit_next(audit_cursor *c, audit_record *r);
void audit_cursor_free(audit_cursor *c);

/* A full run id from an id or a unique prefix.  -1 with "no run matches X" or
 * "run id prefix X is ambiguous (A, B, ...)" in err. */
int audit_resolve_run(audit *a, const char *id_or_prefix, char out[40], char *err, size_t errlen);

/* The top-level fields of a record's data, decoded (SQLite's JSON1). */
typedef struct audit_field {
    char *key;
    char *value; /* text of a string, number, "true"/"false", JSON text of an
                    object or array; NULL for null */
    char type;   /* 's' string, 'i' integer, 'r' real, 'b' boolean, 'z' null,
                    'o' object, 'a' array */
} audit_field;
typedef struct audit_fields {
    audit_field *v;
    int n;
} audit_fields;
/* 0, or -1 when data is not a JSON object (fields left empty, still freeable). */
int audit_fields_parse(audit *a, const char *data, audit_fields *f);
const char *audit_field_str(const audit_fields *f, const char *key); /* NULL if absent or null */
const audit_field *audit_field_get(const audit_fields *f, const char *key);
void audit_fields_free(audit_fields *f);

/* What a run's outcome really is: a run recorded as "running" whose process
 * is gone (host is this host, pid dead, or alive with another start time than
 * pid_start) was killed and could not write its end: "interrupted".  Any other
 * outcome is returned as given.  A pid_start of 0 means unknown. */
const char *audit_effective_outcome(const char *outcome, const char *host, long long pid,
                                    unsigned long long pid_start);
/* The same, from the fields of a run record (NULL when it has no outcome). */
const char *audit_fields_outcome(const audit_fields *f);
/* The effective outcome of a run (id or unique prefix) into buf: 0, or -1. */
int audit_run_outcome(audit *a, const char *run_id, char *buf, size_t n);

/* One record as the export's JSON object (one line, no newline): kind, run_id,
 * seq, ts, hash, prev_hash, then the fields of data; the latest run record of
 * a run carries the effective outcome.  Data that is not a JSON object is
 * kept as "data" (a string) with "data_malformed": true.  malloc'd; NULL on
 * allocation failure. */
char *audit_record_json(audit *a, const audit_record *r);

/* Walk the whole chain in seq order.  0: intact, msg "N records verified,
 * chain intact"; 1: broken, msg "chain broken at run R seq S: why" and
 * bad_seq/bad_run set (either may be NULL); -1: the database could not be
 * read (msg says why). */
int audit_verify(audit *a, char *msg, size_t n, long long *bad_seq, char bad_run[40]);

/* ---- run locks (runbook{ lock = ... }) ------------------------------------
 * Named locks a live run holds for its whole duration, kept in the log's
 * database so that every operator sharing the log sees them.  PostgreSQL: a
 * session advisory lock on the handle's connection (a killed holder's
 * connection ends, and the lock with it) plus a row saying who holds it.
 * SQLite: a row in the table `locks` with the holder's host, pid and pid
 * start time; a row whose process is gone is stale and taken over.  The
 * holder is a JSON object (run_id, operator, host, pid, pid_start, since,
 * runbook, step; db_role on PostgreSQL, stamped by the database). */

/* 0 taken; 1 held by another run (*holder: its JSON, malloc'd); -1 error
 * (audit_error()). */
int audit_lock_take(audit *a, const char *name, const char *run_id, const char *holder_json,
                    char **holder);
/* The step the run holding locks is in now, for whoever waits on them. */
int audit_lock_step(audit *a, const char *run_id, const char *step);
/* Give back every lock of run_id. */
int audit_lock_release(audit *a, const char *run_id);
/* The locks held now: fn(ud, name, holder_json) for each; 0 or -1. */
int audit_locks(audit *a, int (*fn)(void *ud, const char *name, const char *holder_json), void *ud);

/* `runbook audit list|show|export|verify ...`; argv[0] is "audit". */
int cmd_audit(int argc, char **argv);
/* `runbook audit push PATH`: the runs of the local log at PATH appended to
 * target (src/cli/cmd_audit_push.c).  Exit status. */
int cmd_audit_push(audit *target, const char *from_path);

#endif
