/*
 * The db module (SPEC §4): db.open(url) for `sqlite:PATH` and
 * `postgres://...` / `postgresql://...`, db.null, and what the drivers share:
 * how a method call's arguments are read and how it is described.  The
 * drivers are db_sqlite.c and db_pg.c; backup, restore and verification are
 * plain Lua over them (src/lua/db.lua).
 */
#include "db.h"
#include "engine.h"
#include "primitives.h"
#include "yamlconv.h"

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

void db_describe(lua_State *L, rb_action *a, const char *display, const char *verb, const char *sql)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int space = 1, n = 0;
    for (const char *p = sql; *p && n < 200; p++) {
        int ws = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
        if (ws && space)
            continue;
        luaL_addchar(&b, ws ? ' ' : *p);
        space = ws;
        n++;
    }
    if (n >= 200)
        luaL_addstring(&b, "...");
    luaL_pushresult(&b);
    rb_action_set(L, a, "verb", "%s", verb);
    rb_action_set(L, a, "target", "%s", display);
    rb_action_set(L, a, "words", "db %s %s: %s", verb, display, lua_tostring(L, -1));
    lua_pop(L, 1);
}

/* db.backup/verify/restore and conn:transaction are plain Lua (src/lua/db.lua),
 * compiled the first time one of them is looked up rather than at every
 * start: the tables that hold them load it on a miss. */
static int lazy_index(lua_State *L)
{
    rb_internal_load(L, "db");
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

/* db.pg_url(url) -> its parts, and conninfo without the password */
static int l_pg_url(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    db_pg_secrets(L, url); /* the caller will hand the password to a tool */
    return db_pg_url_info(L, url);
}

void mod_db_open(lua_State *L)
{
    static const rb_fn fns[] = {{.name = "open", .fn = l_open, .cls = RB_BY_ARGS, .describe = describe_open, .simulate = simulate_open},
                                {.name = "pg_url", .fn = l_pg_url, .cls = RB_PURE},
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
