/*
 * The db primitive, shared between its module (mod_db.c) and its two
 * drivers (db_sqlite.c, db_pg.c).  A connection's methods take the same
 * arguments in both: self, sql, parameters..., and an options table last
 * (a table is never a parameter, so a trailing one is the options).
 */
#ifndef RUNBOOK_DB_H
#define RUNBOOK_DB_H

#include "runbook/runbook.h"

#define DB_QUERY_TIMEOUT   300.0 /* seconds: a statement's default limit */
#define DB_CONNECT_TIMEOUT 10.0

typedef struct db_call {
    const char *sql;
    int first_param; /* stack index of the first parameter */
    int nparams;
    int opts; /* stack index of the options table, 0 if none */
} db_call;

/* Read self, sql, parameters and options from a method call's stack. */
void db_call_parse(lua_State *L, db_call *dc);
/* Fill an action: verb, target (the redacted URL) and words
 * "db exec sqlite:app.db: UPDATE t SET ..." (whitespace folded, bounded),
 * after checking the options table a->opts (0: none) of db:VERB. */
void db_describe(lua_State *L, rb_action *a, const char *display, const char *verb,
                 const char *sql);
/* The static part of classifying SQL, the same for every driver and for a
 * scenario's stand-in: RB_MUTATE when it calls a function whose effects a
 * READ ONLY transaction does not stop (pg_terminate_backend(...)), RB_READ
 * when its first word is a reading one (SELECT, SHOW, EXPLAIN, ...), else
 * RB_BY_ARGS: only the database can tell (sqlite3_stmt_readonly, a
 * PostgreSQL read-only transaction). */
rb_class db_sql_class(const char *sql);
/* Does sql call one of those functions (a name followed by "(")? */
int db_sql_effectful(const char *sql);

/* A statement method's row: its fields, what a mock answers, how, and its
 * signature: conn:query(sql, params... [, opts]).  The parameters are any
 * number of values, so the signature's `...` takes them and the trailing
 * options table is checked against DB_STATEMENT_OPTIONS by db_describe
 * (timeout and numbers are read by the drivers, readonly by the funnel and
 * PostgreSQL's rehearsal; numbers changes nothing for SQLite, whose
 * numbers are numbers already). */
extern const rb_field db_statement_fields[];
int db_answer(lua_State *L);
int db_recorded(lua_State *L);
#define DB_STATEMENT_OPTIONS "timeout numbers readonly"
#define DB_STATEMENT                                                                               \
    .cls = RB_BY_ARGS, .fields = db_statement_fields, .respond = "rows affected json error",       \
    .answer = db_answer, .recorded = db_recorded, .sig = "sql:str ...",                            \
    .options = DB_STATEMENT_OPTIONS

/* SQL NULL: json.null (a NULL light userdata), so rows encode as JSON nulls */
void db_push_null(lua_State *L);
int db_is_null(lua_State *L, int idx);
/* A new empty array that encodes as [] */
void db_new_rows(lua_State *L, int n);

/* db.open's drivers: push the connection object */
int db_sqlite_open(lua_State *L, const char *path, int opts);
int db_pg_open(lua_State *L, const char *url, int opts); /* may yield */
/* A scenario's stand-in connection for a mocked database: statements are
 * classified by their first word and answered by the mocks; display is the
 * URL the runbook opened. */
int db_stand_in(lua_State *L, const char *display);
/* A driver's connection metatable: methods (funnelled) as __index, whose
 * misses load src/lua/db.lua (conn:transaction lives there), and the
 * object's __gc, __close and __tostring. */
void db_conn_meta(lua_State *L, const char *meta, const rb_fn *methods, lua_CFunction gc,
                  lua_CFunction close, lua_CFunction tostring);
/* Create the drivers' connection metatables (with funnelled methods). */
void db_sqlite_init(lua_State *L);
void db_pg_init(lua_State *L);
/* Register a PostgreSQL URL's password (and PGPASSWORD) as secrets. */
void db_pg_secrets(lua_State *L, const char *url);
/* sqlite:/pg: URL parsing for describe and for tools (pg_dump) */
int db_pg_url_info(lua_State *L, const char *url); /* pushes a table */

#endif
