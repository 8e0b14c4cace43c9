/*
 * The db module (SPEC §4): db.open(url) for `sqlite:PATH` and
 * `postgres://...` / `postgresql://...`, db.null, and what the drivers share:
 * how a method call's arguments are read and how it is described.  The
 * drivers are db_sqlite.c and db_pg.c; backup, restore and verification are
 * plain Lua over them (src/lua/db.lua).
 */
#include "db.h"
#include "runbook/host.h"
#include "yamlconv.h"

#include <ctype.h>
#include <string.h>
#include <sys/stat.h>

void db_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL); /* json.null */
}

int db_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

void db_new_rows(lua_State *L, int n)
{
    lua_createtable(L, n, 0);
    dataconv_push_array_mt(L);
    lua_setmetatable(L, -2);
}

void db_call_parse(lua_State *L, db_call *dc)
{
    dc->sql = luaL_checkstring(L, 2);
    int top = lua_gettop(L);
    dc->opts = top >= 3 && lua_type(L, top) == LUA_TTABLE ? top : 0;
    dc->first_param = 3;
    dc->nparams = (dc->opts ? top - 1 : top) - 2;
    if (dc->nparams < 0)
        dc->nparams = 0;
}

/* ---- the static classifier ---------------------------------------------------- */

/* Functions whose effects a READ ONLY transaction does not stop (ending
 * other sessions, reloading the configuration, locks, remote writes): a
 * statement calling one is a write without being tried.  Prefixes end in
 * '_' (advisory_lock, pg_file_write). */
static const char *const EFFECTFUL[] = {"pg_terminate_backend",
                                        "pg_cancel_backend",
                                        "pg_reload_conf",
                                        "pg_rotate_logfile",
                                        "pg_switch_wal",
                                        "pg_create_restore_point",
                                        "pg_promote",
                                        "pg_advisory_",
                                        "pg_try_advisory_",
                                        "set_config",
                                        "dblink",
                                        "dblink_",
                                        "pg_file_",
                                        "pg_stat_reset",
                                        "pg_create_physical_replication_slot",
                                        "pg_create_logical_replication_slot",
                                        "pg_drop_replication_slot",
                                        "pg_copy_physical_replication_slot",
                                        "pg_copy_logical_replication_slot",
                                        "pg_replication_slot_advance",
                                        "pg_replication_origin_",
                                        "pg_wal_replay_",
                                        "pg_backup_",
                                        "pg_log_backend_memory_contexts",
                                        "pg_notify",
                                        "lo_import",
                                        "lo_export",
                                        "lo_unlink",
                                        NULL};

static int ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* A call: the name as a whole identifier (schema-qualified or not), then
 * "(" -- so the catalog views pg_replication_origin_status or
 * pg_file_settings, read as tables, are not calls. */
int db_sql_effectful(const char *sql)
{
    for (const char *p = sql; *p; p++) {
        if (p > sql && ident_char(p[-1]))
            continue;
        for (int i = 0; EFFECTFUL[i]; i++) {
            size_t n = strlen(EFFECTFUL[i]);
            if (strncasecmp(p, EFFECTFUL[i], n) != 0)
                continue;
            const char *q = p + n;
            if (EFFECTFUL[i][n - 1] == '_') /* a prefix: the rest of the name */
                while (ident_char(*q))
                    q++;
            else if (ident_char(*q))
                continue;
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
                q++;
            if (*q == '(')
                return 1;
        }
    }
    return 0;
}

rb_class db_sql_class(const char *sql)
{
    static const char *const reads[] = {"SELECT", "SHOW",   "EXPLAIN", "VALUES",
                                        "TABLE",  "PRAGMA", NULL};
    if (db_sql_effectful(sql))
        return RB_MUTATE;
    while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '\r' || *sql == '(')
        sql++;
    for (int i = 0; reads[i]; i++) {
        size_t n = strlen(reads[i]);
        if (strncasecmp(sql, reads[i], n) == 0 && !ident_char(sql[n]))
            return RB_READ;
    }
    return RB_BY_ARGS;
}

/* ---- describing a statement ------------------------------------------------- */

const rb_field db_statement_fields[] = {
    {"verb", RB_STR, RB_KEY}, {"sql", RB_STR, RB_KEY}, {"url", RB_STR, RB_MATCH}, {NULL, 0, 0}};

/* Push sql with each run of whitespace folded to one space, at most limit
 * characters of it (0: all); returns how many it kept. */
static int push_folded(lua_State *L, const char *sql, int limit)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int space = 1, n = 0;
    for (const char *p = sql; *p && (limit <= 0 || n < limit); p++) {
        int ws = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
        if (ws && space)
            continue;
        luaL_addchar(&b, ws ? ' ' : *p);
        space = ws;
        n++;
    }
    luaL_pushresult(&b);
    return n;
}

/* The action: verb, target (the redacted URL), words "db exec sqlite:app.db:
 * UPDATE t SET ..." (bounded), and the fields a mock matches -- sql is the
 * whole statement folded, without a trailing space. */
void db_describe(lua_State *L, rb_action *a, const char *display, const char *verb, const char *sql)
{
    if (a->opts) {
        rb_check_options(L, lua_pushfstring(L, "db:%s", verb), DB_STATEMENT_OPTIONS, a->opts);
        lua_pop(L, 1);
    }
    push_folded(L, sql, 0);
    size_t len;
    const char *folded = lua_tolstring(L, -1, &len);
    lua_pushlstring(L, folded, len && folded[len - 1] == ' ' ? len - 1 : len);
    rb_field_set(L, "sql");
    lua_pop(L, 1);
    rb_field_str(L, "verb", verb);
    rb_field_str(L, "url", display);
    if (push_folded(L, sql, 200) >= 200) {
        lua_pushliteral(L, "...");
        lua_concat(L, 2);
    }
    rb_action_set(L, a, "verb", "%s", verb);
    rb_action_set(L, a, "target", "%s", display);
    rb_action_set(L, a, "words", "db %s %s: %s", verb, display, lua_tostring(L, -1));
    lua_pop(L, 1);
}

/* answer(respond, info, self, sql, ...): what a mocked statement returns --
 * a query its rows, an exec the rows it changed */
int db_answer(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "error") != LUA_TNIL) {
        lua_getfield(L, 2, "words");
        return luaL_error(L, "%s: %s", lua_tostring(L, -1), lua_tostring(L, -2));
    }
    lua_getfield(L, 2, "verb");
    if (strcmp(luaL_optstring(L, -1, ""), "exec") == 0) {
        lua_getfield(L, 1, "affected");
        lua_pushinteger(L, lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0);
        return 1;
    }
    if (lua_getfield(L, 1, "rows") == LUA_TNIL) {
        lua_pop(L, 1);
        lua_getfield(L, 1, "json");
    }
    if (!lua_istable(L, -1)) {
        db_new_rows(L, 0);
        return 1;
    }
    dataconv_push_array_mt(L);
    lua_setmetatable(L, -2);
    return 1;
}

/* recorded(info, err, result): { rows } or { affected } or { error }.  A
 * simulated call has no result: rows [] (a list, as a query's rows always
 * are) and affected 0, what the simulation returned. */
int db_recorded(lua_State *L)
{
    lua_settop(L, 3); /* the result's slot, nil when there is none */
    lua_newtable(L);
    if (!lua_isnil(L, 2)) {
        lua_getfield(L, 1, "words");
        const char *words = lua_tostring(L, -1), *err = luaL_tolstring(L, 2, NULL);
        const char *at = words ? strstr(err, words) : NULL;
        if (at) { /* the cause, after the action's words */
            at += strlen(words);
            if (at[0] == ':' && at[1] == ' ')
                at += 2;
            lua_pushstring(L, at);
        } else {
            lua_pushvalue(L, -1);
        }
        lua_setfield(L, -4, "error");
        lua_pop(L, 2);
        return 1;
    }
    lua_getfield(L, 1, "verb");
    int exec = strcmp(luaL_optstring(L, -1, ""), "exec") == 0;
    lua_pop(L, 1);
    if (exec) {
        lua_pushinteger(L, lua_isinteger(L, 3) ? lua_tointeger(L, 3) : 0);
        lua_setfield(L, -2, "affected");
    } else {
        if (lua_istable(L, 3)) {
            lua_pushvalue(L, 3);
            dataconv_push_array_mt(L); /* even when empty: a list */
            lua_setmetatable(L, -2);
        } else {
            db_new_rows(L, 0);
        }
        lua_setfield(L, -2, "rows");
    }
    return 1;
}

/* db.backup/verify/restore and conn:transaction are plain Lua (src/lua/db.lua),
 * compiled the first time one of them is looked up rather than at every
 * start: the tables that hold them load it on a miss. */
static int lazy_index(lua_State *L)
{
    rb_push_lua(L, "db", "__loaded");
    lua_pop(L, 1);
    lua_rawget(L, 1);
    return 1;
}

static void lazy_db_lua(lua_State *L, int t)
{
    t = lua_absindex(L, t);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lazy_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, t);
}

void db_conn_meta(lua_State *L, const char *meta, const rb_fn *methods, lua_CFunction gc,
                  lua_CFunction close, lua_CFunction tostring)
{
    luaL_newmetatable(L, meta);
    lua_newtable(L);
    rb_register_at(L, -1, "db", methods);
    lazy_db_lua(L, -1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

/* ---- db.open ---------------------------------------------------------------- */

typedef enum { URL_SQLITE, URL_PG } url_kind;

/* sqlite:PATH, sqlite://PATH (sqlite:///abs/path) or a PostgreSQL URL */
static url_kind classify_url(lua_State *L, const char *url, const char **path)
{
    if (strncmp(url, "sqlite:", 7) == 0) {
        *path = url + 7;
        if (strncmp(*path, "//", 2) == 0)
            *path += 2;
        if (!**path)
            luaL_error(L, "db.open: '%s' names no file", url);
        return URL_SQLITE;
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return URL_PG;
    luaL_error(L, "db.open: '%s' is not a sqlite:PATH or postgres:// URL", url);
    return URL_SQLITE;
}

/* Would opening create the file? (only with { create = true }) */
static int creates_file(lua_State *L, const char *path, int opts)
{
    if (!rb_opt_bool(L, opts, "create", 0))
        return 0;
    char file[4096];
    const char *q = strchr(path, '?');
    snprintf(file, sizeof file, "%.*s", q ? (int)(q - path) : (int)strlen(path), path);
    struct stat st;
    return stat(file, &st) != 0 && strcmp(file, ":memory:") != 0;
}

static void describe_open(lua_State *L, rb_action *a)
{
    const char *url = luaL_checkstring(L, 1);
    a->opts = lua_istable(L, 2) ? 2 : 0;
    const char *path = NULL;
    if (classify_url(L, url, &path) == URL_PG)
        db_pg_secrets(L, url); /* before anything is recorded */
    a->cls = path && creates_file(L, path, a->opts) ? RB_MUTATE : RB_READ;
    rb_field_str(L, "url", url);
    rb_action_set(L, a, "verb", a->cls == RB_MUTATE ? "create" : "open");
    rb_action_set(L, a, "target", "%s", url);
    rb_action_set(L, a, "words", "db %s %s", a->cls == RB_MUTATE ? "create" : "open", url);
}

/* db.open(url [, { timeout, create, busy_timeout }]) -> connection */
static int l_open(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    int opts = lua_istable(L, 2) ? 2 : 0;
    const char *path = NULL;
    if (classify_url(L, url, &path) == URL_SQLITE)
        return db_sqlite_open(L, path, opts);
    lua_settop(L, 2);
    return db_pg_open(L, url, opts);
}

/* dry-run of creating a database file: an in-memory one stands in, so the
 * runbook's statements still rehearse against something real */
static int simulate_open(lua_State *L, const rb_action *a)
{
    (void)a;
    return db_sqlite_open(L, ":memory:", 0);
}

/* Where the world is mocked: a stand-in connection whose statements the
 * scenario's mocks answer. */
static int open_stand_in(lua_State *L)
{
    return db_stand_in(L, luaL_checkstring(L, 1));
}

/* db.pg_url(url) -> its parts, and conninfo without the password */
static int l_pg_url(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    db_pg_secrets(L, url); /* the caller will hand the password to a tool */
    return db_pg_url_info(L, url);
}

void mod_db_open(lua_State *L)
{
    static const rb_field open_fields[] = {{"url", RB_STR, RB_KEY}, {NULL, 0, 0}};
    static const rb_fn fns[] = {
        {.name = "open",
         .fn = l_open,
         .cls = RB_BY_ARGS,
         .describe = describe_open,
         .simulate = simulate_open,
         .fields = open_fields,
         .stand_in = open_stand_in,
         .sig = "url:str opts?:opts",
         /* timeout: PostgreSQL's connect; create and
          * busy_timeout: SQLite's; readonly: the funnel */
         .options = "timeout create busy_timeout readonly"},
        {.name = "pg_url", .fn = l_pg_url, .cls = RB_PURE, .sig = "url:str", .options = ""},
        {.name = NULL}};
    rb_register(L, "db", fns);
    lua_getglobal(L, "db");
    db_push_null(L);
    lua_setfield(L, -2, "null");
    lazy_db_lua(L, -1);
    lua_pop(L, 1);
    db_sqlite_init(L);
    db_pg_init(L);
    /* the connection metatables, for db.lua's transaction() and backups */
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.internal");
    if (lua_istable(L, -1)) {
        luaL_getmetatable(L, "runbook.db.sqlite");
        lua_setfield(L, -2, "db_sqlite_meta");
        luaL_getmetatable(L, "runbook.db.pg");
        lua_setfield(L, -2, "db_pg_meta");
    }
    lua_pop(L, 1);
}
