/*
 * dry-run: reads run for real, so the rehearsal shows today's state; calls
 * that change something are rehearsed where the primitive can prove it
 * harmlessly (a database's rolled-back savepoint) and otherwise simulated.
 * An endpoint configured nowhere does not stop the rehearsal: it warns that
 * a live run would fail there, and goes on with a stand-in.
 */
#include "dry_run.h"
#include "audit.h"
#include "engine.h"
#include "journal.h"
#include "landlock.h"

#include "util.h"
#include "yamlconv.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int missing(rb_engine *E, lua_State *L, const char *what)
{
    lua_pushfstring(L, "%s: a live run would fail here", what);
    journal_log(E, L, "warn", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
}

const rb_strategy rb_mode_dry_run = {
    .name = "dry-run",
    .performs = 0,
    .missing = missing,
};

/* The directory that holds path (which may not exist yet), resolved. */
static const char *dir_of(const char *path, char *out)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    return realpath(dirname(copy), out);
}

int dry_run_confine(rb_engine *E, const char *record)
{
    /* The audit database writes its -wal/-shm/-journal files beside it and
     * --record writes FILE.partial then renames it: Landlock grants those
     * by directory, so those two directories stay writable for the engine
     * (never for its children: they get /dev/null only, host.c).
     * /dev/tty: confine() and --confirm talk to the operator there. */
    char audit_dir[PATH_MAX], record_dir[PATH_MAX];
    const char *writable[5];
    int n = 0;
    if (E->audit && *audit_path(E->audit) && dir_of(audit_path(E->audit), audit_dir))
        writable[n++] = audit_dir;
    if (record && dir_of(record, record_dir))
        writable[n++] = record_dir;
    writable[n++] = "/dev/null";
    writable[n++] = "/dev/tty";
    writable[n] = NULL;
    return rb_landlock_confine(writable, 0);
}

/* ---- the plan (`runbook plan`, src/cli/cmd_plan.c) --------------------------
 * A decorator over dry-run that writes down, in order, every change the
 * rehearsal would make and a digest of every read's answer, redacted as the
 * audit is: what `runbook apply` holds a live run to. */

#define PLAN_JSON    "runbook.plan.json"
#define PLAN_CHANGES "runbook.plan.changes"
#define PLAN_READS   "runbook.plan.reads"

void plan_capture_json(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "encode");
    lua_setfield(L, -3, "encode");
    lua_getfield(L, -1, "decode");
    lua_setfield(L, -3, "decode");
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, PLAN_JSON);
}

static int push_json_fn(lua_State *L, const char *fn)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, PLAN_JSON) != LUA_TTABLE) {
        lua_pop(L, 1);
        plan_capture_json(L); /* before any runbook code: the engine's own */
        lua_getfield(L, LUA_REGISTRYINDEX, PLAN_JSON);
    }
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    return lua_isfunction(L, -1);
}

const char *plan_encode(lua_State *L, int idx, int pretty)
{
    idx = lua_absindex(L, idx);
    if (push_json_fn(L, "encode")) {
        lua_pushvalue(L, idx);
        if (pretty) {
            lua_createtable(L, 0, 1);
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "pretty");
        }
        if (lua_pcall(L, pretty ? 2 : 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
            return lua_tostring(L, -1);
    }
    /* NaN, a sparse table: still a value that compares and prints */
    const char *why = lua_tostring(L, -1);
    lua_pushfstring(L, "\"<not JSON: %s>\"", why ? why : "?");
    lua_remove(L, -2);
    return lua_tostring(L, -1);
}

int plan_decode(lua_State *L, const char *text, size_t len)
{
    if (!push_json_fn(L, "decode"))
        return -1;
    lua_pushlstring(L, text, len);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        return -1;
    return 0;
}

/* A copy of the value at idx with every secret's value as ****: strings
 * redacted, a number that is a secret's text written "****", what JSON
 * cannot hold named.  Tables keep the array mark, so [] stays []. */
static void push_redacted(lua_State *L, int idx, int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rb_redact(L, s, n);
        return;
    }
    case LUA_TNUMBER: {
        size_t n;
        lua_pushvalue(L, idx);
        const char *s = lua_tolstring(L, -1, &n);
        int secret = rb_is_secret(L, s, n);
        lua_pop(L, 1);
        if (secret)
            lua_pushliteral(L, "****");
        else
            lua_pushvalue(L, idx);
        return;
    }
    case LUA_TBOOLEAN:
        lua_pushvalue(L, idx);
        return;
    case LUA_TTABLE:
        break;
    default:
        lua_pushfstring(L, "<%s>", luaL_typename(L, idx));
        return;
    }
    if (depth > 16) {
        lua_pushliteral(L, "<nested too deep>");
        return;
    }
    luaL_checkstack(L, 6, "plan: nesting");
    lua_newtable(L);
    int out = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING || kt == LUA_TNUMBER) {
            lua_pushvalue(L, -2);
            push_redacted(L, -2, depth + 1);
            lua_rawset(L, out);
        }
        lua_pop(L, 1);
    }
    if (lua_getmetatable(L, idx)) {
        dataconv_push_array_mt(L);
        if (lua_rawequal(L, -1, -2))
            lua_setmetatable(L, out);
        else
            lua_pop(L, 1);
        lua_pop(L, 1);
    }
}

static void set_str(lua_State *L, const char *key, const char *value)
{
    if (!value)
        return;
    rb_redact(L, value, strlen(value));
    lua_setfield(L, -2, key);
}

/* where the run is: the step (of the runbook run_runbook() is in, too) */
static void set_step(rb_engine *E, lua_State *L)
{
    if (!E->step_index)
        return;
    lua_pushinteger(L, E->step_index);
    lua_setfield(L, -2, "step");
    set_str(L, "step_name", E->step_name);
}

void plan_push_action(lua_State *L, const rb_action *a)
{
    rb_engine *E = rb_engine_of(L);
    lua_createtable(L, 0, 8);
    set_step(E, L);
    set_str(L, "primitive", a->primitive);
    set_str(L, "fn", a->fn);
    set_str(L, "verb", a->verb);
    set_str(L, "target", a->target);
    set_str(L, "words", a->words);
    rb_push_action_fields(L, a);
    push_redacted(L, -1, 0);
    lua_setfield(L, -3, "fields");
    lua_pop(L, 1);
}

const char *plan_action_key(lua_State *L, int entry)
{
    entry = lua_absindex(L, entry);
    lua_createtable(L, 0, 5);
    static const char *const keys[] = {"primitive", "fn",     "verb", "target",
                                       "words",     "fields", NULL};
    for (int i = 0; keys[i]; i++) {
        lua_getfield(L, entry, keys[i]);
        lua_setfield(L, -2, keys[i]);
    }
    const char *s = plan_encode(L, -1, 0);
    lua_remove(L, -2);
    return s;
}

/* What the read answered, as its row says a recording would write it
 * (rb_fn.recorded: the answer without what changes at every call, such as
 * an HTTP response's Date or its time), redacted: its sha256. */
static void read_digest(lua_State *L, const rb_action *a, int res, int nres, const char *error,
                        char out[65])
{
    int top = lua_gettop(L);
    int have = 0;
    if (rb_push_row(L, a->primitive, a->fn) == LUA_TTABLE &&
        lua_getfield(L, -1, "recorded") == LUA_TFUNCTION) {
        rb_push_action_info(L, a);
        if (error)
            lua_pushstring(L, error);
        else
            lua_pushnil(L);
        for (int i = 0; i < nres; i++)
            lua_pushvalue(L, res + i);
        have = lua_pcall(L, 2 + nres, 1, 0) == LUA_OK;
    }
    if (!have) { /* record.lua's default_recorded */
        lua_settop(L, top);
        lua_newtable(L);
        if (error) {
            lua_pushstring(L, error);
            lua_setfield(L, -2, "error");
        } else if (nres > 0 && (lua_istable(L, res) || lua_type(L, res) == LUA_TSTRING)) {
            lua_pushvalue(L, res);
            lua_setfield(L, -2, lua_istable(L, res) ? "json" : "result");
        }
    }
    push_redacted(L, -1, 0);
    size_t n;
    const char *json = (plan_encode(L, -1, 0), lua_tolstring(L, -1, &n));
    rb_sha256_hex(json, n, out);
    lua_settop(L, top);
}

void plan_push_read(lua_State *L, const rb_action *a, int simulated, int res, int nres,
                    const char *error)
{
    char digest[65];
    read_digest(L, a, res, nres, simulated ? NULL : error, digest);
    lua_createtable(L, 0, 7);
    set_step(rb_engine_of(L), L);
    set_str(L, "primitive", a->primitive);
    set_str(L, "verb", a->verb);
    set_str(L, "target", a->target);
    lua_pushstring(L, digest);
    lua_setfield(L, -2, "digest");
    if (simulated) { /* answered as the rehearsal's world would: not the world's answer */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "simulated");
    }
}

static void append(lua_State *L, const char *list)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, list) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        dataconv_push_array_mt(L);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, list);
    }
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

static void plan_after_action(rb_engine *E, lua_State *L, const rb_action *a, int simulated,
                              int nargs, int res, int nres, const char *error)
{
    (void)E, (void)nargs;
    int top = lua_gettop(L);
    /* every change the live run would attempt, rehearsed or failed alike:
     * apply meets each of them in its before_action */
    if (a->cls == RB_MUTATE) {
        plan_push_action(L, a);
        append(L, PLAN_CHANGES);
    } else {
        plan_push_read(L, a, simulated, res, nres, error);
        append(L, PLAN_READS);
    }
    lua_settop(L, top);
}

const rb_strategy rb_mode_plan = {
    .name = "plan",
    .after_action = plan_after_action,
};

void plan_push_collected(lua_State *L, const char *which)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX,
                     strcmp(which, "reads") == 0 ? PLAN_READS : PLAN_CHANGES) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        dataconv_push_array_mt(L);
        lua_setmetatable(L, -2);
    }
}
