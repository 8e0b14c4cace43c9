/*
 * The audit log on PostgreSQL: a team's shared log (`audit: postgres://…`).
 * The same records, the same hash chain and the same export format as the
 * SQLite log (audit.h); audit.c calls these and keeps its readers: what is
 * read is first copied into an in-memory SQLite mirror of the same schema.
 *
 * In the database: schema `runbook`, tables `meta` (the schema version) and
 * `records` (seq, run_id, kind, ts, data, prev_hash, hash), and the function
 * runbook.append(), through which every record is written: under a
 * transaction-scoped advisory lock it reads the last record, computes the
 * hash with the formula of audit.h, stamps the data with the role that wrote
 * it ("db_role": session_user, which a client cannot choose without that
 * role's credentials) and inserts; one round trip per record, committed
 * before the runbook goes on.  It is SECURITY DEFINER: operators need no
 * INSERT, UPDATE or DELETE on the table, only EXECUTE on the function and
 * SELECT to read.  Run locks (audit.h) are the table `locks` and the
 * functions lock_take/lock_step/lock_release beside it.
 */
#ifndef RUNBOOK_AUDIT_PG_H
#define RUNBOOK_AUDIT_PG_H

#include <stddef.h>

typedef struct audit_pg audit_pg;

/* Is spec a PostgreSQL URL (postgres:// or postgresql://)? */
int audit_pg_is_url(const char *spec);

/* The URL with its password replaced by ****, for messages. */
void audit_pg_shown(const char *url, char *out, size_t n);

/* Connect (10 s connect timeout) and check the schema; create it when
 * create is set and it is missing (under an advisory lock: of several
 * first users, one creates it).  A newer schema version than this build
 * knows is refused.  NULL with the reason in err. */
audit_pg *audit_pg_open(const char *url, int create, char *err, size_t errlen);
void audit_pg_close(audit_pg *p);

/* session_user: the role the database authenticated. */
const char *audit_pg_role(const audit_pg *p);

/* Append one record through runbook.append().  run_id NULL: allocate a new
 * run id in the same locked transaction (strictly increasing in the log),
 * written to run_id_out.  0, or -1 with err. */
int audit_pg_append(audit_pg *p, const char *run_id, const char *kind, const char *ts,
                    const char *data, long long *seq_out, char run_id_out[40], char *err,
                    size_t errlen);

/* Every record with seq > after, in seq order, to row(); row returns 0 to go
 * on.  0, or -1 with err. */
typedef int (*audit_pg_row)(void *ud, long long seq, const char *run_id, const char *kind,
                            const char *ts, const char *data, const char *prev_hash,
                            const char *hash);
int audit_pg_fetch(audit_pg *p, long long after, audit_pg_row row, void *ud, char *err,
                   size_t errlen);

/* The run records among the last window records, in seq order. */
int audit_pg_recent_runs(audit_pg *p, int window, audit_pg_row row, void *ud, char *err,
                         size_t errlen);

/* The data of run_id's latest run record (*data malloc'd, NULL if none). */
int audit_pg_latest_run(audit_pg *p, const char *run_id, char **data, char *err, size_t errlen);

/* Run locks (audit.h): 0 taken, 1 held (*holder malloc'd JSON), -1 err. */
int audit_pg_lock_take(audit_pg *p, const char *name, const char *run_id, const char *holder_json,
                       char **holder, char *err, size_t errlen);
int audit_pg_lock_step(audit_pg *p, const char *run_id, const char *step, char *err, size_t errlen);
int audit_pg_lock_release(audit_pg *p, const char *run_id, char *err, size_t errlen);
int audit_pg_locks(audit_pg *p, int (*fn)(void *ud, const char *name, const char *holder_json),
                   void *ud, char *err, size_t errlen);

#endif
