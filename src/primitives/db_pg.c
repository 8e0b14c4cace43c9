/*
 * The PostgreSQL driver of db: libpq (loaded on first use, pq_lazy.h) on
 * the event loop -- connecting and every statement are ops that yield, so
 * `parallel` can query several databases at once.
 *
 * Classification is proved by the server, not guessed from the text.  A
 * statement whose class is not known yet is first run where writes are
 * refused: in a READ ONLY transaction (or, inside the runbook's own
 * transaction, a savepoint with transaction_read_only on), pipelined into
 * one round trip.  If the server runs it, it was a read and its rows are
 * the answer.  If the server refuses it as a write (SQLSTATE 25006), it is
 * a write: live, it then runs for real; in dry-run it never runs -- EXPLAIN
 * (without ANALYZE) validates it and gives the planner's row estimate.  A
 * statement text proved to write is remembered per connection, so a loop
 * of inserts pays for the proof once.  Transaction and session control
 * (BEGIN, COMMIT, SET, SHOW...) run as they are: they change no data.
 */
#include "db.h"
#include "pq_lazy.h"
#include "runbook/host.h"

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define META    "runbook.db.pg"
#define MAXUNIT 8

typedef struct pg_conn {
    PGconn *c;
    char *display; /* the URL as given, for messages (secrets redacted on output) */
    int busy;      /* an op is in flight: one statement at a time per connection */
    int nwrites;   /* statement texts remembered as writes */
} pg_conn;

enum unit_kind { U_CMD, U_SYNC };
enum stage { ST_CONNECT, ST_RUN, ST_PROBE, ST_EXPLAIN };

typedef struct pg_op {
    rb_op op;
    const rb_pq *pq;
    pg_conn *pc;
    PGconn *connecting; /* ST_CONNECT: the connection being made */
    int stage, want_rows, pipeline;
    const char *why; /* ST_EXPLAIN: why the statement was not run (kept alive by the
                        connection's table of writes, or static) */
    int n, cur, stmt_unit;
    int kind[MAXUNIT];
    PGresult *res[MAXUNIT];
    long long script_rows; /* a script's statements before its last: their command tags' rows */
    double timeout;
} pg_op;

static const rb_pq *pq_api(lua_State *L)
{
    char err[256];
    const rb_pq *pq = rb_pq_get(err, sizeof err);
    if (!pq)
        luaL_error(L, "db: %s", err);
    return pq;
}

static pg_conn *check_conn(lua_State *L)
{
    pg_conn *pc = (pg_conn *)luaL_checkudata(L, 1, META);
    if (!pc->c)
        luaL_error(L, "db: %s is closed", pc->display ? pc->display : "connection");
    return pc;
}

/* ---- the op: a batch of pipelined commands, or a connection attempt -------- */

static void op_fail(pg_op *o, const char *msg)
{
    snprintf(o->op.error, sizeof o->op.error, "%s", msg);
    rb_op_done(&o->op);
}

/* One line of a libpq message: "connection to server at ... failed: ..." */
static void pq_message(char *dst, size_t n, const char *msg)
{
    size_t j = 0;
    for (const char *p = msg; *p && j + 1 < n; p++) {
        char ch = *p == '\n' || *p == '\t' ? ' ' : *p;
        if (ch == ' ' && (j == 0 || dst[j - 1] == ' '))
            continue;
        dst[j++] = ch;
    }
    while (j > 0 && dst[j - 1] == ' ')
        j--;
    dst[j] = '\0';
}

static void drain(pg_op *o)
{
    const rb_pq *pq = o->pq;
    PGconn *c = o->pc->c;
    while (o->cur < o->n && !pq->isBusy(c)) {
        PGresult *r = pq->getResult(c);
        if (o->kind[o->cur] == U_SYNC) {
            if (!r)
                break;
            pq->clear(r);
            o->cur++;
        } else if (!r) {
            o->cur++; /* the end of this command's results */
        } else if (o->res[o->cur] && pq->resultStatus(o->res[o->cur]) == PGRES_FATAL_ERROR) {
            pq->clear(r); /* keep the first error */
        } else {
            if (o->res[o->cur]) { /* a script's earlier statement: its rows count too */
                const char *t = pq->cmdTuples(o->res[o->cur]);
                o->script_rows += t && *t ? strtoll(t, NULL, 10) : 0;
                pq->clear(o->res[o->cur]);
            }
            o->res[o->cur] = r;
        }
    }
    if (o->cur == o->n) {
        if (o->pipeline)
            pq->exitPipelineMode(c);
        rb_op_done(&o->op);
    }
}

static void connect_step(pg_op *o)
{
    const rb_pq *pq = o->pq;
    switch (pq->connectPoll(o->connecting)) {
    case PGRES_POLLING_READING:
        o->op.events[0] = POLLIN;
        break;
    case PGRES_POLLING_WRITING:
        o->op.events[0] = POLLOUT;
        break;
    case PGRES_POLLING_OK:
        rb_op_done(&o->op);
        return;
    default: {
        char msg[sizeof o->op.error];
        pq_message(msg, sizeof msg, pq->errorMessage(o->connecting));
        op_fail(o, msg);
        return;
    }
    }
    o->op.fd[0] = pq->socket(o->connecting); /* may change between attempts */
}

static void op_ready(rb_op *op, int i, short revents)
{
    (void)i;
    pg_op *o = (pg_op *)op;
    if (o->stage == ST_CONNECT) {
        connect_step(o);
        return;
    }
    const rb_pq *pq = o->pq;
    PGconn *c = o->pc->c;
    if (revents & POLLOUT) {
        int r = pq->flush(c);
        if (r < 0) {
            char msg[sizeof op->error];
            pq_message(msg, sizeof msg, pq->errorMessage(c));
            op_fail(o, msg);
            return;
        }
        if (r == 0)
            op->events[0] = POLLIN;
    }
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
        if (!pq->consumeInput(c)) {
            char msg[sizeof op->error];
            pq_message(msg, sizeof msg, pq->errorMessage(c));
            op_fail(o, msg);
            return;
        }
    }
    drain(o);
}

/* A statement that outlives its limit, or Ctrl-C: ask the server to cancel,
 * then drop the connection -- a server that does not answer must not hold
 * the runbook, and a connection in an unknown state must not be reused. */
static void op_cancel(rb_op *op, const char *why)
{
    pg_op *o = (pg_op *)op;
    const rb_pq *pq = o->pq;
    if (o->stage == ST_CONNECT) {
        op_fail(o, why);
        return;
    }
    PGcancel *cc = pq->getCancel(o->pc->c);
    if (cc) {
        char buf[256];
        pq->cancel(cc, buf, sizeof buf);
        pq->freeCancel(cc);
    }
    pq->finish(o->pc->c);
    o->pc->c = NULL;
    char msg[sizeof op->error];
    snprintf(msg, sizeof msg, "%s; the statement was cancelled and the connection closed", why);
    op_fail(o, msg);
}

static void op_expired(rb_op *op)
{
    pg_op *o = (pg_op *)op;
    char why[64];
    snprintf(why, sizeof why, "timed out after %g s", o->timeout);
    op_cancel(op, why);
}

static void op_destroy(rb_op *op)
{
    pg_op *o = (pg_op *)op;
    for (int i = 0; i < MAXUNIT; i++)
        if (o->res[i])
            o->pq->clear(o->res[i]);
    if (o->connecting)
        o->pq->finish(o->connecting);
    if (o->pc)
        o->pc->busy = 0;
    free(o);
}

static const rb_op_vtable pg_vt = {op_ready, op_cancel, op_expired, op_destroy};

static pg_op *op_new(lua_State *L, const rb_pq *pq, pg_conn *pc, int stage, double timeout)
{
    pg_op *o = (pg_op *)calloc(1, sizeof *o);
    if (!o)
        luaL_error(L, "db: out of memory");
    o->op.vt = &pg_vt;
    for (int i = 0; i < RB_OP_MAXFD; i++)
        o->op.fd[i] = -1;
    o->pq = pq;
    o->pc = pc;
    o->stage = stage;
    o->timeout = timeout;
    o->op.deadline = timeout > 0 ? rb_now() + timeout : 0;
    o->stmt_unit = -1;
    return o;
}

/* ---- sending ---------------------------------------------------------------- */

/* The call's parameters as text (NULL for SQL NULL).  The array and the
 * converted strings are Lua values left on the stack, so nothing leaks when a
 * parameter is refused or the call fails later. */
static const char **param_values(lua_State *L, const db_call *dc, const char *verb,
                                 const char *display)
{
    if (dc->nparams == 0)
        return NULL;
    const char **v = (const char **)lua_newuserdatauv(L, ((size_t)dc->nparams + 1) * sizeof *v, 0);
    memset(v, 0, ((size_t)dc->nparams + 1) * sizeof *v);
    lua_createtable(L, dc->nparams, 0); /* anchors the converted strings */
    for (int i = 0; i < dc->nparams; i++) {
        int idx = dc->first_param + i;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            continue;
        case LUA_TBOOLEAN:
            lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
            } else {
                char buf[64];
                snprintf(buf, sizeof buf, "%.17g", lua_tonumber(L, idx));
                lua_pushstring(L, buf);
            }
            break;
        case LUA_TSTRING:
            lua_pushvalue(L, idx);
            break;
        default:
            if (db_is_null(L, idx))
                continue;
            luaL_error(L, "db %s %s: parameter %d: cannot bind a %s", verb, display, i + 1,
                       luaL_typename(L, idx));
        }
        v[i] = lua_tostring(L, -1);
        lua_rawseti(L, -2, i + 1);
    }
    return v;
}

static int add_cmd(pg_op *o, const char *sql, int nparams, const char *const *values)
{
    o->kind[o->n++] = U_CMD;
    return o->pq->sendQueryParams(o->pc->c, sql, nparams, NULL, values, NULL, NULL, 0);
}

static int add_sync(pg_op *o)
{
    o->kind[o->n++] = U_SYNC;
    return o->pq->pipelineSync(o->pc->c);
}

static int await_op(lua_State *L, pg_op *o, lua_KFunction k);

/* Queue the statement between guards that refuse writes; in_tx: inside the
 * runbook's own transaction, where a savepoint keeps it intact. */
static int send_guarded(pg_op *o, const char *sql, int nparams, const char *const *values)
{
    PGconn *c = o->pc->c;
    int in_tx = o->pq->transactionStatus(c) != PQTRANS_IDLE;
    int ok = o->pq->enterPipelineMode(c);
    o->pipeline = 1;
    if (in_tx) {
        ok = ok && add_cmd(o, "SAVEPOINT runbook_probe", 0, NULL);
        ok = ok && add_cmd(o, "SET LOCAL transaction_read_only = on", 0, NULL);
        o->stmt_unit = o->n;
        ok = ok && add_cmd(o, sql, nparams, values) && add_sync(o);
        ok = ok && add_cmd(o, "ROLLBACK TO SAVEPOINT runbook_probe", 0, NULL);
        ok = ok && add_cmd(o, "RELEASE SAVEPOINT runbook_probe", 0, NULL) && add_sync(o);
    } else {
        /* a read's own SET must survive: COMMIT, which rolls back a refused write */
        ok = ok && add_cmd(o, "BEGIN READ ONLY", 0, NULL);
        o->stmt_unit = o->n;
        ok = ok && add_cmd(o, sql, nparams, values) && add_sync(o);
        ok = ok && add_cmd(o, "COMMIT", 0, NULL) && add_sync(o);
    }
    return ok;
}

/* ---- results ---------------------------------------------------------------- */

static int is_error(const rb_pq *pq, const PGresult *r)
{
    ExecStatusType s = r ? pq->resultStatus(r) : PGRES_FATAL_ERROR;
    return s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK && s != PGRES_EMPTY_QUERY;
}

static const char *sqlstate(const rb_pq *pq, const PGresult *r)
{
    const char *s = r ? pq->resultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

/* "duplicate key value violates unique constraint "t_pkey": Key (id)=(1)
 * already exists. (SQLSTATE 23505)" */
static const char *push_result_error(lua_State *L, const rb_pq *pq, const PGresult *r)
{
    if (!r)
        return lua_pushstring(L, "no result");
    if (pq->resultStatus(r) == PGRES_PIPELINE_ABORTED)
        return lua_pushstring(L, "not run: an earlier command of the batch failed");
    const char *primary = pq->resultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = pq->resultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    if (!primary) {
        char msg[512];
        pq_message(msg, sizeof msg, pq->resultErrorMessage(r));
        return lua_pushstring(L, msg);
    }
    return lua_pushfstring(L, "%s%s%s (SQLSTATE %s)", primary, detail ? ": " : "",
                           detail ? detail : "", sqlstate(pq, r));
}

static void push_value(lua_State *L, const rb_pq *pq, const PGresult *r, int row, int col,
                       int numbers)
{
    if (pq->getisnull(r, row, col)) {
        db_push_null(L);
        return;
    }
    const char *s = pq->getvalue(r, row, col);
    size_t len = (size_t)pq->getlength(r, row, col);
    switch (pq->ftype(r, col)) {
    case 16: /* bool */
        lua_pushboolean(L, s[0] == 't');
        return;
    case 20: /* int8 */
    case 21: /* int2 */
    case 23: /* int4 */
    case 26: /* oid */
        lua_pushinteger(L, (lua_Integer)strtoll(s, NULL, 10));
        return;
    case 700: /* float4 */
    case 701: /* float8 */
        lua_pushnumber(L, strtod(s, NULL));
        return;
    case 1700: /* numeric: exact digits as a string, unless asked for numbers */
        if (numbers) {
            lua_pushnumber(L, strtod(s, NULL));
            return;
        }
        break;
    }
    lua_pushlstring(L, s, len);
}

static void push_rows(lua_State *L, const rb_pq *pq, const PGresult *r, int numbers)
{
    int n = r ? pq->ntuples(r) : 0, nf = r ? pq->nfields(r) : 0;
    db_new_rows(L, n);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, nf);
        for (int j = 0; j < nf; j++) {
            push_value(L, pq, r, i, j, numbers);
            lua_setfield(L, -2, pq->fname(r, j));
        }
        lua_rawseti(L, -2, i + 1);
    }
}

/* The call's answer from the statement's result: rows, or the rows the
 * statement changed itself -- its command tag's count ("UPDATE 4"), which
 * leaves out what triggers and cascades changed; a script adds the counts
 * of its earlier statements (before). */
static int push_answer(lua_State *L, const rb_pq *pq, PGresult *r, int want_rows, long long before)
{
    if (want_rows) {
        db_call dc;
        db_call_parse(L, &dc);
        push_rows(L, pq, r, rb_opt_bool(L, dc.opts, "numbers", 0));
    } else {
        const char *t = r ? pq->cmdTuples(r) : "";
        lua_pushinteger(L, (lua_Integer)(before + strtoll(t && *t ? t : "0", NULL, 10)));
    }
    return 1;
}

static int raise_for(lua_State *L, pg_op *o, const char *what, PGresult *r)
{
    lua_pushfstring(L, "db %s %s: ", o->want_rows ? "query" : "exec", o->pc->display);
    if (what)
        lua_pushstring(L, what);
    else
        push_result_error(L, o->pq, r);
    lua_concat(L, 2);
    rb_op_free(&o->op);
    return lua_error(L);
}

/* ---- running statements ------------------------------------------------------ */

static int run_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    pg_op *o = (pg_op *)ctx;
    if (o->op.error[0])
        return raise_for(L, o, o->op.error, NULL);
    PGresult *r = o->res[0];
    if (is_error(o->pq, r))
        return raise_for(L, o, NULL, r);
    const rb_pq *pq = o->pq;
    int want_rows = o->want_rows;
    long long before = o->script_rows;
    o->res[0] = NULL;
    rb_op_free(&o->op);
    push_answer(L, pq, r, want_rows, before);
    pq->clear(r);
    return 1;
}

static pg_op *start(lua_State *L, pg_conn *pc, const db_call *dc, int stage, int want_rows)
{
    const rb_pq *pq = pq_api(L);
    if (pc->busy)
        luaL_error(L,
                   "db %s: the connection is busy with another statement (open one "
                   "connection per parallel task)",
                   pc->display);
    double timeout = rb_opt_number(L, dc->opts, "timeout", DB_QUERY_TIMEOUT);
    pg_op *o = op_new(L, pq, pc, stage, timeout);
    o->want_rows = want_rows;
    return o;
}

static int send_failed(lua_State *L, pg_op *o)
{
    char msg[512];
    pq_message(msg, sizeof msg, o->pq->errorMessage(o->pc->c));
    if (o->pipeline)
        o->pq->exitPipelineMode(o->pc->c);
    return raise_for(L, o, msg, NULL);
}

static int await_op(lua_State *L, pg_op *o, lua_KFunction k)
{
    o->pc->busy = 1;
    o->op.fd[0] = o->pq->socket(o->pc->c);
    o->op.events[0] = POLLIN | (o->pq->flush(o->pc->c) > 0 ? POLLOUT : 0);
    return rb_await(L, &o->op, k);
}

static int run(lua_State *L, int want_rows)
{
    pg_conn *pc = check_conn(L);
    db_call dc;
    db_call_parse(L, &dc);
    int top = lua_gettop(L);
    const char **values = param_values(L, &dc, want_rows ? "query" : "exec", pc->display);
    pg_op *o = start(L, pc, &dc, ST_RUN, want_rows);
    /* without parameters the simple protocol runs a script of statements */
    o->n = 1;
    o->kind[0] = U_CMD;
    int ok = values ? o->pq->sendQueryParams(pc->c, dc.sql, dc.nparams, NULL, values, NULL, NULL, 0)
                    : o->pq->sendQuery(pc->c, dc.sql);
    lua_settop(L, top);
    if (!ok)
        return send_failed(L, o);
    return await_op(L, o, run_k);
}

static int l_query(lua_State *L)
{
    return run(L, 1);
}

static int l_exec(lua_State *L)
{
    return run(L, 0);
}

/* ---- proving and rehearsing ----------------------------------------------- */

#define REFUSED   "refused by a read-only transaction, not executed"
#define NOT_TRIED "not tried, could not be proved read-only: "
#define MAX_WRITES                                                                                 \
    1024 /* texts remembered per connection: a loop of literal                                     \
            values must not grow the table without end */

/* Remember that sql writes, and why we know (the dry-run evidence starts
 * with it).  The table is the connection's user value. */
static void remember_write(lua_State *L, pg_conn *pc, const char *sql, const char *why)
{
    if (++pc->nwrites > MAX_WRITES) {
        lua_newtable(L);
        lua_setiuservalue(L, 1, 1);
        pc->nwrites = 1;
    }
    lua_getiuservalue(L, 1, 1);
    lua_pushstring(L, why);
    lua_setfield(L, -2, sql);
    lua_pop(L, 1);
}

/* Why sql is known to write, or NULL.  The string stays in the table. */
static const char *known_write(lua_State *L, const char *sql)
{
    lua_getiuservalue(L, 1, 1);
    const char *why = lua_getfield(L, -1, sql) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 2);
    return why;
}

/* A write not executed (dry-run): no rows, and exec's placeholder 0 --
 * nothing ran, so there is no count to give. */
static int simulated_answer(lua_State *L, int want_rows)
{
    if (want_rows)
        db_new_rows(L, 0);
    else
        lua_pushinteger(L, 0);
    return 1;
}

/* The planner's estimate of the rows a write touches: the row count of the
 * plan under the ModifyTable node (that node itself returns no rows). */
static long long plan_rows(lua_State *L, const char *json)
{
    long long rows = -1;
    int top = lua_gettop(L);
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "decode");
    lua_pushstring(L, json);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1) &&
        lua_rawgeti(L, -1, 1) == LUA_TTABLE && lua_getfield(L, -1, "Plan") == LUA_TTABLE) {
        int plan = lua_gettop(L);
        if (lua_getfield(L, plan, "Plans") == LUA_TTABLE && lua_rawgeti(L, -1, 1) == LUA_TTABLE &&
            lua_getfield(L, -1, "Plan Rows") == LUA_TNUMBER)
            rows = (long long)lua_tonumber(L, -1);
        if (rows < 0 && lua_getfield(L, plan, "Plan Rows") == LUA_TNUMBER)
            rows = (long long)lua_tonumber(L, -1);
    }
    lua_settop(L, top);
    return rows;
}

static int explain_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    pg_op *o = (pg_op *)ctx;
    int want_rows = o->want_rows;
    int top = lua_gettop(L);
    PGresult *r = o->stmt_unit >= 0 ? o->res[o->stmt_unit] : NULL;
    long long est = -1;
    if (!o->op.error[0] && !is_error(o->pq, r) && o->pq->ntuples(r) > 0)
        est = plan_rows(L, o->pq->getvalue(r, 0, 0));
    lua_settop(L, top);
    const char *why = o->why;
    rb_op_free(&o->op);
    if (est >= 0)
        lua_pushfstring(L, "%s; the planner estimates %I row%s", why, (LUAI_UACINT)est,
                        est == 1 ? "" : "s");
    else
        lua_pushfstring(L, "%s; no estimate for this kind of statement", why);
    rb_rehearsed(L, lua_tostring(L, -1));
    lua_pop(L, 1);
    /* the estimate is evidence, never exec's result: a count the runbook
     * could take for rows changed, when nothing ran */
    return simulated_answer(L, want_rows);
}

static int explain(lua_State *L, pg_conn *pc, int want_rows, const char *why)
{
    db_call dc;
    db_call_parse(L, &dc);
    int top = lua_gettop(L);
    const char **values = param_values(L, &dc, want_rows ? "query" : "exec", pc->display);
    const char *sql = lua_pushfstring(L, "EXPLAIN (FORMAT JSON) %s", dc.sql);
    pg_op *o = start(L, pc, &dc, ST_EXPLAIN, want_rows);
    o->why = why;
    int ok = send_guarded(o, sql, dc.nparams, values);
    lua_settop(L, top);
    if (!ok)
        return send_failed(L, o);
    return await_op(L, o, explain_k);
}

static int probe_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    pg_op *o = (pg_op *)ctx;
    const rb_pq *pq = o->pq;
    if (o->op.error[0])
        return raise_for(L, o, o->op.error, NULL);
    for (int i = 0; i < o->stmt_unit; i++) /* a guard failed: an aborted transaction, say */
        if (o->kind[i] == U_CMD && is_error(pq, o->res[i]))
            return raise_for(L, o, NULL, o->res[i]);
    PGresult *r = o->res[o->stmt_unit];
    int want_rows = o->want_rows;
    if (!is_error(pq, r)) { /* it ran where writes are refused: a read, answered */
        o->res[o->stmt_unit] = NULL;
        rb_op_free(&o->op);
        push_answer(L, pq, r, want_rows, 0);
        pq->clear(r);
        return 1;
    }
    const char *state = sqlstate(pq, r);
    const char *primary = pq->resultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    int refused = strcmp(state, "25006") == 0;
    /* cannot be tried in a transaction (VACUUM, CREATE DATABASE) or holds
     * several statements: unproven, so treated as a write */
    int untried = strcmp(state, "25001") == 0 ||
                  (strcmp(state, "42601") == 0 && primary && strstr(primary, "multiple commands"));
    if (!refused && !untried)
        return raise_for(L, o, NULL, r);
    db_call dc;
    db_call_parse(L, &dc);
    if (refused)
        lua_pushliteral(L, REFUSED);
    else
        lua_pushfstring(L, NOT_TRIED "%s", primary ? primary : "unknown");
    remember_write(L, o->pc, dc.sql, lua_tostring(L, -1));
    rb_op_free(&o->op);
    /* a write: live, the funnel now runs it; in dry-run it asks again for
     * the evidence (explain) */
    rb_rehearsed(L, lua_tostring(L, -1));
    lua_pop(L, 1);
    return simulated_answer(L, want_rows);
}

static int rehearse(lua_State *L, int want_rows)
{
    pg_conn *pc = check_conn(L);
    db_call dc;
    db_call_parse(L, &dc);
    if (dc.opts && lua_getfield(L, dc.opts, "readonly") == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        lua_pop(L, 1); /* the runbook says it writes: never tried */
        return explain(L, pc, want_rows, "not executed: marked readonly = false");
    }
    if (dc.opts)
        lua_pop(L, 1);
    if (db_sql_effectful(dc.sql))
        return explain(L, pc, want_rows,
                       "not executed: it calls a function a read-only "
                       "transaction does not stop");
    const char *why = known_write(L, dc.sql);
    if (why && strncmp(why, NOT_TRIED, strlen(NOT_TRIED)) == 0) { /* EXPLAIN cannot either */
        rb_rehearsed(L, why);
        return simulated_answer(L, want_rows);
    }
    if (why) /* dry-run of a proved write: evidence only */
        return explain(L, pc, want_rows, why);
    int top = lua_gettop(L);
    const char **values = param_values(L, &dc, want_rows ? "query" : "exec", pc->display);
    pg_op *o = start(L, pc, &dc, ST_PROBE, want_rows);
    int ok = send_guarded(o, dc.sql, dc.nparams, values);
    lua_settop(L, top);
    if (!ok)
        return send_failed(L, o);
    return await_op(L, o, probe_k);
}

static int l_rehearse_query(lua_State *L)
{
    return rehearse(L, 1);
}

static int l_rehearse_exec(lua_State *L)
{
    return rehearse(L, 0);
}

/* ---- classification ---------------------------------------------------------- */

/* Transaction and session control: they change no data and must run as
 * written (a BEGIN inside a read-only probe would mean nothing). */
static int session_control(const char *sql)
{
    static const char *const words[] = {"BEGIN",    "START", "COMMIT",    "END",
                                        "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
                                        "SET",      "RESET", "SHOW",      NULL};
    const char *p = sql;
    for (;;) { /* skip blanks and comments */
        while (isspace((unsigned char)*p))
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            break;
        }
    }
    size_t n = 0;
    while (isalpha((unsigned char)p[n]))
        n++;
    if (n == 0 || strchr(p, ';') != NULL) /* a script: unproven */
        return 0;
    for (int i = 0; words[i]; i++)
        if (strlen(words[i]) == n && strncasecmp(p, words[i], n) == 0) {
            /* COMMIT PREPARED / ROLLBACK PREPARED act on other transactions */
            return strcasestr(p, "PREPARED") == NULL;
        }
    return 0;
}

static void describe_stmt(lua_State *L, rb_action *a, const char *verb)
{
    pg_conn *pc = check_conn(L);
    db_call dc;
    db_call_parse(L, &dc);
    a->opts = dc.opts;
    db_describe(L, a, pc->display, verb, dc.sql);
    if (session_control(dc.sql))
        a->cls = RB_READ;
    else if (known_write(L, dc.sql) || db_sql_effectful(dc.sql))
        a->cls = RB_MUTATE;
    /* else: left to the funnel's probe (rehearse) */
}

static void describe_query(lua_State *L, rb_action *a)
{
    describe_stmt(L, a, "query");
}

static void describe_exec(lua_State *L, rb_action *a)
{
    describe_stmt(L, a, "exec");
}

/* ---- connecting ---------------------------------------------------------------- */

static int l_close(lua_State *L)
{
    pg_conn *pc = (pg_conn *)luaL_checkudata(L, 1, META);
    if (pc->busy)
        return luaL_error(L, "db: %s is busy; close it when its statement is done", pc->display);
    if (pc->c)
        pq_api(L)->finish(pc->c);
    pc->c = NULL;
    return 0;
}

static int l_gc(lua_State *L)
{
    pg_conn *pc = (pg_conn *)luaL_checkudata(L, 1, META);
    if (pc->c) {
        char err[64];
        const rb_pq *pq = rb_pq_get(err, sizeof err);
        if (pq)
            pq->finish(pc->c);
        pc->c = NULL;
    }
    free(pc->display);
    pc->display = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    pg_conn *pc = (pg_conn *)luaL_checkudata(L, 1, META);
    lua_pushfstring(L, "db connection %s%s", pc->display ? pc->display : "?",
                    pc->c ? "" : " (closed)");
    return 1;
}

/* Register a URL's password (and PGPASSWORD) as secrets. */
void db_pg_secrets(lua_State *L, const char *url)
{
    const rb_pq *pq = pq_api(L);
    char *err = NULL;
    PQconninfoOption *opts = pq->conninfoParse(url, &err);
    if (err)
        pq->freemem(err);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
            rb_secret_add(L, o->val);
    if (opts)
        pq->conninfoFree(opts);
    const char *envpw = getenv("PGPASSWORD");
    if (envpw && *envpw)
        rb_secret_add(L, envpw);
}

/* The server's notices ("table does not exist, skipping") join the run's
 * log instead of going raw to stderr. */
static void notice(void *ud, const char *message)
{
    lua_State *M = (lua_State *)ud; /* the main thread: notices come between calls */
    char msg[1024];
    pq_message(msg, sizeof msg, message);
    rb_log(M, "info", "postgres: %s", msg);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    pg_op *o = (pg_op *)ctx;
    pg_conn *pc = (pg_conn *)lua_touserdata(L, -1);
    if (o->op.error[0]) {
        lua_pushfstring(L, "db open %s: %s", pc->display, o->op.error);
        rb_op_free(&o->op);
        return lua_error(L);
    }
    const rb_pq *pq = o->pq;
    pc->c = o->connecting;
    o->connecting = NULL;
    rb_op_free(&o->op);
    pq->setnonblocking(pc->c, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    pq->setNoticeProcessor(pc->c, notice, lua_tothread(L, -1));
    lua_pop(L, 1);
    return 1;
}

int db_pg_open(lua_State *L, const char *url, int opts)
{
    const rb_pq *pq = pq_api(L);
    db_pg_secrets(L, url);
    double timeout = rb_opt_number(L, opts, "timeout", DB_CONNECT_TIMEOUT);
    pg_conn *pc = (pg_conn *)lua_newuserdatauv(L, sizeof *pc, 1);
    memset(pc, 0, sizeof *pc);
    luaL_setmetatable(L, META);
    lua_newtable(L); /* statement texts proved to write */
    lua_setiuservalue(L, -2, 1);
    pc->display = strdup(url);
    if (!pc->display)
        return luaL_error(L, "db: out of memory");
    pg_op *o = op_new(L, pq, pc, ST_CONNECT, timeout);
    o->pc = NULL; /* not busy-tracked while connecting */
    o->connecting = pq->connectStart(url);
    if (!o->connecting || pq->status(o->connecting) == CONNECTION_BAD) {
        char msg[512];
        pq_message(msg, sizeof msg,
                   o->connecting ? pq->errorMessage(o->connecting) : "out of memory");
        lua_pushfstring(L, "db open %s: %s", pc->display, msg);
        o->op.vt->destroy(&o->op);
        return lua_error(L);
    }
    o->op.fd[0] = pq->socket(o->connecting);
    o->op.events[0] = POLLOUT;
    return rb_await(L, &o->op, connect_k);
}

/* db.pg_url(url) -> { host, port, user, dbname, password, conninfo }:
 * conninfo holds everything but the password, for tools like pg_dump,
 * which get the password through PGPASSWORD instead of their argv. */
int db_pg_url_info(lua_State *L, const char *url)
{
    const rb_pq *pq = pq_api(L);
    char *err = NULL;
    PQconninfoOption *opts = pq->conninfoParse(url, &err);
    if (!opts) {
        lua_pushfstring(L, "db: bad PostgreSQL URL: %s", err ? err : "out of memory");
        if (err)
            pq->freemem(err);
        return lua_error(L);
    }
    lua_newtable(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        lua_pushstring(L, o->val);
        lua_setfield(L, -3, o->keyword);
        if (strcmp(o->keyword, "password") == 0)
            continue;
        if (luaL_bufflen(&b) > 0)
            luaL_addchar(&b, ' ');
        luaL_addstring(&b, o->keyword);
        luaL_addstring(&b, "='");
        for (const char *p = o->val; *p; p++) {
            if (*p == '\'' || *p == '\\')
                luaL_addchar(&b, '\\');
            luaL_addchar(&b, *p);
        }
        luaL_addchar(&b, '\'');
    }
    pq->conninfoFree(opts);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "conninfo");
    return 1;
}

void db_pg_init(lua_State *L)
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
        {.name = "close", .fn = l_close, .cls = RB_PURE, .sig = "", .options = ""},
        {.name = NULL}};
    db_conn_meta(L, META, methods, l_gc, l_close, l_tostring);
}
