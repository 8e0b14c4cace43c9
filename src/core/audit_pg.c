/* The audit log on PostgreSQL: see audit_pg.h. */
#include "audit_pg.h"
#include "pq_lazy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_SCHEMA_VERSION 1
/* pg_advisory_xact_lock keys: "RBAL" for appends, +1 for creating the schema */
#define APPEND_LOCK_KEY "1380073804"
#define SCHEMA_LOCK_KEY "1380073805"
#define FETCH_BATCH     "5000"

struct audit_pg {
    const rb_pq *pq;
    PGconn *conn;
    char role[128];
    int prepared;
};

/* Every statement of the schema is idempotent: run under the schema lock by
 * whoever finds it missing.  The hash formula is audit.h's, byte for byte:
 * sha256(prev_hash "\n" seq "\n" run_id "\n" kind "\n" ts "\n" data) over
 * UTF-8; the data stored (and hashed) begins with the writer's db_role. */
static const char schema_sql[] =
    "CREATE SCHEMA IF NOT EXISTS runbook;"
    "CREATE TABLE IF NOT EXISTS runbook.meta (version integer NOT NULL);"
    "CREATE TABLE IF NOT EXISTS runbook.records ("
    " seq bigint PRIMARY KEY, run_id text NOT NULL, kind text NOT NULL, ts text NOT NULL,"
    " data text NOT NULL, prev_hash text NOT NULL, hash text NOT NULL);"
    "CREATE INDEX IF NOT EXISTS records_runs ON runbook.records (run_id, seq)"
    " WHERE kind = 'run';"
    "CREATE OR REPLACE FUNCTION runbook.append(p_run_id text, p_kind text, p_ts text,"
    " p_data text, OUT o_seq bigint, OUT o_hash text, OUT o_run_id text)"
    " LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$"
    " DECLARE last_seq bigint; last_hash text; last_id text; d text; n text; j json;"
    " BEGIN"
    /* parsed once: this runs before every action of every run */
    "  j := p_data::json;"
    "  IF j IS NULL OR json_typeof(j) <> 'object' THEN"
    "   RAISE EXCEPTION 'runbook audit: data is not a JSON object'; END IF;"
    "  IF j->'db_role' IS NOT NULL THEN"
    "   RAISE EXCEPTION 'runbook audit: db_role is written by the log itself'; END IF;"
    "  PERFORM pg_advisory_xact_lock(" APPEND_LOCK_KEY ");"
    "  SELECT r.seq, r.hash INTO last_seq, last_hash FROM runbook.records r"
    "   ORDER BY r.seq DESC LIMIT 1;"
    "  IF NOT FOUND THEN last_seq := 0; last_hash := repeat('0', 64); END IF;"
    "  o_run_id := p_run_id;"
    "  IF o_run_id IS NULL THEN"
    /* milliseconds, then a counter: when the clock gives an id not above
     * the log's greatest, the next number after it */
    "   o_run_id := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDD-HH24MISS-MS')"
    "    || '000';"
    "   SELECT r.run_id INTO last_id FROM runbook.records r WHERE r.kind = 'run'"
    "    ORDER BY r.run_id DESC LIMIT 1;"
    "   IF last_id ~ '^[0-9]{8}-[0-9]{6}-[0-9]{6}$' AND o_run_id <= last_id THEN"
    "    n := lpad((replace(last_id, '-', '')::numeric + 1)::text, 20, '0');"
    "    o_run_id := substr(n, 1, 8) || '-' || substr(n, 9, 6) || '-' || substr(n, 15, 6);"
    "   END IF;"
    "  END IF;"
    "  d := '{\"db_role\":' || to_json(session_user::text)::text"
    "   || CASE WHEN btrim(substr(p_data, 2), E' \\t\\r\\n') = '}' THEN '}'"
    "    ELSE ',' || substr(p_data, 2) END;"
    "  o_seq := last_seq + 1;"
    "  o_hash := encode(sha256(convert_to(last_hash || E'\\n' || o_seq::text || E'\\n'"
    "   || o_run_id || E'\\n' || p_kind || E'\\n' || p_ts || E'\\n' || d, 'UTF8')), 'hex');"
    "  INSERT INTO runbook.records VALUES (o_seq, o_run_id, p_kind, p_ts, d, last_hash, o_hash);"
    " END $f$;"
    /* for whoever queries the log with SQL (README "The audit log") */
    "CREATE OR REPLACE VIEW runbook.runs AS SELECT g.run_id, f.d->>'runbook' AS runbook,"
    " l.d->>'mode' AS mode, l.d->>'operator' AS operator, l.d->>'db_role' AS db_role,"
    " l.d->>'host' AS host, f.d->>'start' AS started, l.d->>'end' AS ended,"
    " l.d->>'outcome' AS outcome, (l.d->>'exit_code')::int AS exit_code,"
    " (l.d->>'duration_ms')::bigint AS duration_ms, l.d->>'error' AS error,"
    " (l.d->>'actions')::int AS actions, (l.d->>'mutations')::int AS mutations"
    " FROM (SELECT run_id, min(seq) AS first_seq, max(seq) AS last_seq FROM runbook.records"
    " WHERE kind = 'run' GROUP BY run_id) g"
    " JOIN (SELECT seq, data::json AS d FROM runbook.records WHERE kind = 'run') f"
    " ON f.seq = g.first_seq"
    " JOIN (SELECT seq, data::json AS d FROM runbook.records WHERE kind = 'run') l"
    " ON l.seq = g.last_seq;"
    "CREATE OR REPLACE VIEW runbook.steps AS SELECT seq, run_id, ts,"
    " (d->>'index')::int AS step, d->>'name' AS name, d->>'status' AS status,"
    " d->>'start' AS started, d->>'end' AS ended, (d->>'duration_ms')::bigint AS duration_ms,"
    " d->>'error' AS error FROM (SELECT seq, run_id, ts, data::json AS d FROM runbook.records"
    " WHERE kind = 'step') s;"
    "CREATE OR REPLACE VIEW runbook.actions AS SELECT seq, run_id, ts,"
    " (d->>'step')::int AS step, d->>'step_name' AS step_name, d->>'primitive' AS primitive,"
    " d->>'verb' AS verb, d->>'target' AS target, d->>'words' AS words, d->>'class' AS class,"
    " (d->>'simulated')::boolean AS simulated, d->>'status' AS status,"
    " (d->>'exit_code')::int AS exit_code, (d->>'duration_ms')::bigint AS duration_ms,"
    " d->>'error' AS error, d->>'answer' AS answer FROM (SELECT seq, run_id, ts, data::json AS d"
    " FROM runbook.records WHERE kind = 'action') a;"
    /* run locks: a session advisory lock per name (a killed holder's
     * connection ends and frees it) and a row saying who holds it */
    "CREATE TABLE IF NOT EXISTS runbook.locks ("
    " name text PRIMARY KEY, run_id text NOT NULL, holder text NOT NULL);"
    "CREATE OR REPLACE FUNCTION runbook.lock_key(p_name text) RETURNS bigint"
    " LANGUAGE sql IMMUTABLE AS $f$ SELECT hashtextextended('runbook.lock:' || p_name, 0) $f$;"
    "CREATE OR REPLACE FUNCTION runbook.lock_take(p_name text, p_run_id text, p_holder text)"
    " RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$"
    " DECLARE h text;"
    " BEGIN"
    "  IF json_typeof(p_holder::json) <> 'object' OR p_holder::json->'db_role' IS NOT NULL THEN"
    "   RAISE EXCEPTION 'runbook lock: the holder is a JSON object without db_role'; END IF;"
    "  IF pg_try_advisory_lock(runbook.lock_key(p_name)) THEN"
    "   INSERT INTO runbook.locks VALUES (p_name, p_run_id, '{\"db_role\":'"
    "    || to_json(session_user::text)::text"
    "    || CASE WHEN btrim(substr(p_holder, 2), E' \\t\\r\\n') = '}' THEN '}'"
    "     ELSE ',' || substr(p_holder, 2) END)"
    "    ON CONFLICT (name) DO UPDATE SET run_id = EXCLUDED.run_id, holder = EXCLUDED.holder;"
    "   RETURN NULL;"
    "  END IF;"
    "  SELECT l.holder INTO h FROM runbook.locks l WHERE l.name = p_name;"
    "  RETURN coalesce(h, '{}');"
    " END $f$;"
    /* only the holder's own session may say where it is, or let go */
    "CREATE OR REPLACE FUNCTION runbook.lock_held_here(p_name text) RETURNS boolean"
    " LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$"
    " SELECT EXISTS (SELECT 1 FROM pg_locks p WHERE p.locktype = 'advisory' AND p.granted"
    "  AND p.pid = pg_backend_pid() AND p.objsubid = 1"
    "  AND ((p.classid::bigint << 32) | p.objid::bigint) = runbook.lock_key(p_name)) $f$;"
    "CREATE OR REPLACE FUNCTION runbook.lock_step(p_run_id text, p_step text) RETURNS void"
    " LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$"
    " UPDATE runbook.locks l SET holder = (l.holder::jsonb || jsonb_build_object('step', "
    "p_step))::text"
    "  WHERE l.run_id = p_run_id AND runbook.lock_held_here(l.name) $f$;"
    "CREATE OR REPLACE FUNCTION runbook.lock_release(p_run_id text) RETURNS void"
    " LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$"
    " DECLARE n text;"
    " BEGIN"
    "  FOR n IN SELECT l.name FROM runbook.locks l WHERE l.run_id = p_run_id LOOP"
    "   IF runbook.lock_held_here(n) THEN"
    "    DELETE FROM runbook.locks WHERE name = n;"
    "    PERFORM pg_advisory_unlock(runbook.lock_key(n));"
    "   END IF;"
    "  END LOOP;"
    " END $f$;"
    /* a row whose advisory lock nobody holds is a killed holder's: not held */
    "CREATE OR REPLACE VIEW runbook.held_locks AS"
    " SELECT l.name, l.holder FROM runbook.locks l WHERE EXISTS (SELECT 1 FROM pg_locks p"
    "  WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 1"
    "  AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    "  AND ((p.classid::bigint << 32) | p.objid::bigint) = runbook.lock_key(l.name));";

int audit_pg_is_url(const char *spec)
{
    return spec &&
           (strncmp(spec, "postgres://", 11) == 0 || strncmp(spec, "postgresql://", 13) == 0);
}

void audit_pg_shown(const char *url, char *out, size_t n)
{
    /* userinfo is what precedes the last '@' of the authority */
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    size_t o = 0;
    out[0] = '\0';
#define PUT(s, len)                                                                                \
    do {                                                                                           \
        size_t l_ = (len);                                                                         \
        if (o + l_ >= n)                                                                           \
            l_ = n - 1 - o;                                                                        \
        memcpy(out + o, (s), l_);                                                                  \
        o += l_;                                                                                   \
        out[o] = '\0';                                                                             \
    } while (0)
    const char *p = url;
    if (colon) {
        PUT(p, (size_t)(colon + 1 - p));
        PUT("****", 4);
        p = at;
    }
    /* a password=... parameter in the query */
    while (*p) {
        const char *pw = strstr(p, "password=");
        if (!pw || (pw > url && pw[-1] != '?' && pw[-1] != '&')) {
            if (!pw) {
                PUT(p, strlen(p));
                break;
            }
            PUT(p, (size_t)(pw + 9 - p));
            p = pw + 9;
            continue;
        }
        PUT(p, (size_t)(pw + 9 - p));
        PUT("****", 4);
        p = pw + 9 + strcspn(pw + 9, "&#");
    }
#undef PUT
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void pg_err(audit_pg *p, const char *what, PGresult *r, char *err, size_t errlen)
{
    const char *m = r ? p->pq->resultErrorMessage(r) : "";
    if (!m || !*m)
        m = p->pq->errorMessage(p->conn);
    char msg[1024];
    /* the first line: libpq's LINE/HINT lines point into our own SQL */
    snprintf(msg, sizeof msg, "%.*s", (int)strcspn(m ? m : "", "\n"), m ? m : "");
    if (!msg[0])
        snprintf(msg, sizeof msg, "unknown error");
    size_t l = strlen(msg);
    while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' '))
        msg[--l] = '\0';
    snprintf(err, errlen, "%s: %s", what, msg);
}

/* Run sql (no parameters); 0 when it succeeded, else -1 with err. */
static int run(audit_pg *p, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = p->pq->exec(p->conn, sql);
    ExecStatusType st = r ? p->pq->resultStatus(r) : PGRES_FATAL_ERROR;
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        pg_err(p, what, r, err, errlen);
    if (r)
        p->pq->clear(r);
    return ok ? 0 : -1;
}

/* A one-row, one-column query's value into out; -1 with err. */
static int query1(audit_pg *p, const char *sql, char *out, size_t n, char *err, size_t errlen)
{
    PGresult *r = p->pq->exec(p->conn, sql);
    if (!r || p->pq->resultStatus(r) != PGRES_TUPLES_OK || p->pq->ntuples(r) != 1) {
        pg_err(p, "cannot read the schema", r, err, errlen);
        if (r)
            p->pq->clear(r);
        return -1;
    }
    snprintf(out, n, "%s", p->pq->getvalue(r, 0, 0));
    p->pq->clear(r);
    return 0;
}

/* The schema's version: 0 when there is no schema, -1 on error. */
static int schema_version(audit_pg *p, char *err, size_t errlen)
{
    /* which of our objects exist: m(eta), r(ecords), n(amespace) */
    char have[8], v[32];
    if (query1(p,
               "SELECT CASE WHEN to_regclass('runbook.meta') IS NULL THEN '' ELSE 'm' END"
               " || CASE WHEN to_regclass('runbook.records') IS NULL THEN '' ELSE 'r' END"
               " || CASE WHEN to_regnamespace('runbook') IS NULL THEN '' ELSE 'n' END",
               have, sizeof have, err, errlen) != 0)
        return -1;
    if (!strchr(have, 'm')) {
        if (!strchr(have, 'n'))
            return 0;
        snprintf(err, errlen, "%s; refusing to write into it",
                 strchr(have, 'r') ? "the runbook schema in this database is incomplete (no "
                                     "runbook.meta table)"
                                   : "this database has a schema named runbook that is not a "
                                     "runbook audit log");
        return -1;
    }
    if (query1(p, "SELECT coalesce(max(version), -1) FROM runbook.meta", v, sizeof v, err,
               errlen) != 0)
        return -1;
    if (atoi(v) <= 0) {
        snprintf(err, errlen, "runbook.meta has no version: not a runbook audit log");
        return -1;
    }
    return atoi(v);
}

static int ensure_schema(audit_pg *p, int create, char *err, size_t errlen)
{
    int v = schema_version(p, err, errlen);
    if (v < 0)
        return -1;
    if (v == 0) {
        if (!create) {
            snprintf(err, errlen, "no runbook audit log in this database (nothing recorded yet)");
            return -1;
        }
        char sql[sizeof schema_sql + 512];
        snprintf(
            sql, sizeof sql,
            "BEGIN; SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ");"
            " %s"
            " INSERT INTO runbook.meta SELECT %d WHERE NOT EXISTS (SELECT 1 FROM runbook.meta);"
            " COMMIT;",
            schema_sql, PG_SCHEMA_VERSION);
        if (run(p, sql, "cannot create the audit schema", err, errlen) != 0) {
            run(p, "ROLLBACK", "rollback", (char[8]){0}, 8);
            return -1;
        }
        v = PG_SCHEMA_VERSION;
    }
    if (v > PG_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "its schema version %d is newer than this runbook understands (%d): upgrade "
                 "runbook",
                 v, PG_SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

audit_pg *audit_pg_open(const char *url, int create, char *err, size_t errlen)
{
    const rb_pq *pq = rb_pq_get(err, errlen);
    if (!pq)
        return NULL;
    audit_pg *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->pq = pq;
    /* the URL's own settings win over none of these but the defaults: a
     * team's log must not hang a run for minutes on a dead network, and the
     * hash is over UTF-8 */
    const char *keys[] = {"dbname", "connect_timeout", "client_encoding", "application_name", NULL};
    const char *vals[] = {url, "10", "UTF8", "runbook", NULL};
    p->conn = pq->connectdbParams(keys, vals, 1);
    if (!p->conn || pq->status(p->conn) != CONNECTION_OK) {
        pg_err(p, "cannot connect", NULL, err, errlen);
        audit_pg_close(p);
        return NULL;
    }
    /* notices (CREATE ... IF NOT EXISTS says "already exists") are not ours
     * to print */
    pq->setNoticeProcessor(p->conn, quiet, NULL);
    PGresult *r = pq->exec(p->conn, "SELECT session_user, current_setting('server_encoding')");
    if (!r || pq->resultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(p, "cannot ask who we are", r, err, errlen);
        if (r)
            pq->clear(r);
        audit_pg_close(p);
        return NULL;
    }
    snprintf(p->role, sizeof p->role, "%s", pq->getvalue(r, 0, 0));
    int utf8 = strcmp(pq->getvalue(r, 0, 1), "UTF8") == 0;
    pq->clear(r);
    if (!utf8) {
        snprintf(err, errlen, "the database's encoding is not UTF8 (records are UTF-8 text)");
        audit_pg_close(p);
        return NULL;
    }
    if (ensure_schema(p, create, err, errlen) != 0) {
        audit_pg_close(p);
        return NULL;
    }
    return p;
}

void audit_pg_close(audit_pg *p)
{
    if (!p)
        return;
    if (p->conn)
        p->pq->finish(p->conn);
    free(p);
}

const char *audit_pg_role(const audit_pg *p)
{
    return p ? p->role : NULL;
}

int audit_pg_append(audit_pg *p, const char *run_id, const char *kind, const char *ts,
                    const char *data, long long *seq_out, char run_id_out[40], char *err,
                    size_t errlen)
{
    if (!p->prepared) {
        PGresult *r = p->pq->prepare(p->conn, "rb_append",
                                     "SELECT o_seq, o_hash, o_run_id FROM"
                                     " runbook.append($1, $2, $3, $4)",
                                     4, NULL);
        int ok = r && p->pq->resultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            pg_err(p, "cannot prepare the append", r, err, errlen);
        if (r)
            p->pq->clear(r);
        if (!ok)
            return -1;
        p->prepared = 1;
    }
    const char *params[4] = {run_id, kind, ts, data};
    PGresult *r = p->pq->execPrepared(p->conn, "rb_append", 4, params, NULL, NULL, 0);
    if (!r || p->pq->resultStatus(r) != PGRES_TUPLES_OK || p->pq->ntuples(r) != 1) {
        pg_err(p, "cannot append the record", r, err, errlen);
        if (r)
            p->pq->clear(r);
        return -1;
    }
    if (seq_out)
        *seq_out = strtoll(p->pq->getvalue(r, 0, 0), NULL, 10);
    if (run_id_out)
        snprintf(run_id_out, 40, "%s", p->pq->getvalue(r, 0, 2));
    p->pq->clear(r);
    return 0;
}

int audit_pg_fetch(audit_pg *p, long long after, audit_pg_row row, void *ud, char *err,
                   size_t errlen)
{
    /* in batches: a team's log of years is never one result in memory */
    for (;;) {
        char from[32];
        snprintf(from, sizeof from, "%lld", after);
        const char *params[1] = {from};
        PGresult *r = p->pq->execParams(
            p->conn,
            "SELECT seq, run_id, kind, ts, data, prev_hash, hash FROM runbook.records"
            " WHERE seq > $1::bigint ORDER BY seq LIMIT " FETCH_BATCH,
            1, NULL, params, NULL, NULL, 0);
        if (!r || p->pq->resultStatus(r) != PGRES_TUPLES_OK) {
            pg_err(p, "cannot read the records", r, err, errlen);
            if (r)
                p->pq->clear(r);
            return -1;
        }
        int n = p->pq->ntuples(r);
        for (int i = 0; i < n; i++) {
            after = strtoll(p->pq->getvalue(r, i, 0), NULL, 10);
            if (row(ud, after, p->pq->getvalue(r, i, 1), p->pq->getvalue(r, i, 2),
                    p->pq->getvalue(r, i, 3), p->pq->getvalue(r, i, 4), p->pq->getvalue(r, i, 5),
                    p->pq->getvalue(r, i, 6)) != 0) {
                p->pq->clear(r);
                snprintf(err, errlen, "cannot copy the records");
                return -1;
            }
        }
        p->pq->clear(r);
        if (n < atoi(FETCH_BATCH))
            return 0;
    }
}

/* One call returning one text value (or NULL); 0, or -1 with err. */
static int call(audit_pg *p, const char *sql, int n, const char *const *params, char **out,
                const char *what, char *err, size_t errlen)
{
    PGresult *r = p->pq->execParams(p->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (!r || p->pq->resultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(p, what, r, err, errlen);
        if (r)
            p->pq->clear(r);
        return -1;
    }
    if (out)
        *out = p->pq->ntuples(r) > 0 && !p->pq->getisnull(r, 0, 0)
                   ? strdup(p->pq->getvalue(r, 0, 0))
                   : NULL;
    p->pq->clear(r);
    return 0;
}

int audit_pg_lock_take(audit_pg *p, const char *name, const char *run_id, const char *holder_json,
                       char **holder, char *err, size_t errlen)
{
    const char *params[3] = {name, run_id, holder_json};
    if (call(p, "SELECT runbook.lock_take($1, $2, $3)", 3, params, holder, "cannot take the lock",
             err, errlen) != 0)
        return -1;
    return *holder ? 1 : 0;
}

int audit_pg_lock_step(audit_pg *p, const char *run_id, const char *step, char *err, size_t errlen)
{
    const char *params[2] = {run_id, step};
    return call(p, "SELECT runbook.lock_step($1, $2)", 2, params, NULL, "cannot note the step", err,
                errlen);
}

int audit_pg_lock_release(audit_pg *p, const char *run_id, char *err, size_t errlen)
{
    const char *params[1] = {run_id};
    return call(p, "SELECT runbook.lock_release($1)", 1, params, NULL, "cannot release the locks",
                err, errlen);
}

int audit_pg_locks(audit_pg *p, int (*fn)(void *ud, const char *name, const char *holder_json),
                   void *ud, char *err, size_t errlen)
{
    PGresult *r = p->pq->exec(p->conn, "SELECT name, holder FROM runbook.held_locks ORDER BY name");
    if (!r || p->pq->resultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(p, "cannot list the locks", r, err, errlen);
        if (r)
            p->pq->clear(r);
        return -1;
    }
    for (int i = 0; i < p->pq->ntuples(r); i++)
        if (fn(ud, p->pq->getvalue(r, i, 0), p->pq->getvalue(r, i, 1)) != 0)
            break;
    p->pq->clear(r);
    return 0;
}

int audit_pg_recent_runs(audit_pg *p, int window, audit_pg_row row, void *ud, char *err,
                         size_t errlen)
{
    char w[32];
    snprintf(w, sizeof w, "%d", window);
    const char *params[1] = {w};
    PGresult *r = p->pq->execParams(
        p->conn,
        "SELECT seq, run_id, kind, ts, data, prev_hash, hash FROM runbook.records"
        " WHERE kind = 'run' AND seq > (SELECT coalesce(max(seq), 0) FROM runbook.records)"
        " - $1::bigint ORDER BY seq",
        1, NULL, params, NULL, NULL, 0);
    if (!r || p->pq->resultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(p, "cannot read the recent runs", r, err, errlen);
        if (r)
            p->pq->clear(r);
        return -1;
    }
    for (int i = 0; i < p->pq->ntuples(r); i++)
        if (row(ud, strtoll(p->pq->getvalue(r, i, 0), NULL, 10), p->pq->getvalue(r, i, 1),
                p->pq->getvalue(r, i, 2), p->pq->getvalue(r, i, 3), p->pq->getvalue(r, i, 4),
                p->pq->getvalue(r, i, 5), p->pq->getvalue(r, i, 6)) != 0)
            break;
    p->pq->clear(r);
    return 0;
}

int audit_pg_latest_run(audit_pg *p, const char *run_id, char **data, char *err, size_t errlen)
{
    const char *params[1] = {run_id};
    return call(p,
                "SELECT data FROM runbook.records WHERE kind = 'run' AND run_id = $1"
                " ORDER BY seq DESC LIMIT 1",
                1, params, data, "cannot read the run", err, errlen);
}
