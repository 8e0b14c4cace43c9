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

#include "udiff.h"
#include "util.h"
#include "yamlconv.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
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

/* ---- `runbook run --dry-run`: the plan at the end, --diff ------------------------
 * The same collection as `runbook plan`'s (its changes, not the reads'
 * digests a run never checks), over whatever the run already decorates
 * (--record, --confirm): the layer below is kept and called first. */

#define RUN_BELOW "runbook.dry_run.below"
#define RUN_DIFF  "runbook.dry_run.diff"

/* Past these a diff says why it is not shown rather than take the memory
 * (the LCS table of the changed middle is lines x lines). */
#define DIFF_MAX_BYTES (4u << 20)

/* Push the whole content of path; 0, or -1 with errno set. */
static int push_file(lua_State *L, const char *path, size_t limit, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    size_t total = 0, got;
    char chunk[1 << 14];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        total += got;
        if (total <= limit)
            luaL_addlstring(&buf, chunk, got);
    }
    int bad = ferror(f);
    fclose(f);
    luaL_pushresult(&buf);
    *len = total;
    if (bad) {
        lua_pop(L, 1);
        errno = EIO;
        return -1;
    }
    return 0;
}

/* A write whose effect --diff can show: its row says so (RB_CONTENT): the
 * path is argument 1, the data argument 2 (RB_CONTENT_APPEND: added at the
 * end). */
/* A row with a diff hook: the hook says what would change (its processes
 * run where it is called: inside the rehearsal's confinement). */
static void show_hook_diff(rb_engine *E, lua_State *L, const rb_action *a, lua_CFunction hook,
                           int nargs)
{
    int top = lua_gettop(L);
    lua_pushcfunction(L, hook);
    for (int i = 1; i <= nargs; i++)
        lua_pushvalue(L, i);
    char note[512];
    if (lua_pcall(L, nargs, 2, 0) != LUA_OK) {
        snprintf(note, sizeof note, "(no diff: %s)", lua_tostring(L, -1));
        journal_diff(E, L, a, a->target, NULL, note);
    } else if (lua_type(L, -2) == LUA_TSTRING && lua_rawlen(L, -2) == 0) {
        journal_diff(E, L, a, a->target, NULL, "(no change: it is already so)");
    } else if (lua_type(L, -2) == LUA_TSTRING) {
        journal_diff(E, L, a, a->target, lua_tostring(L, -2), NULL);
    } else {
        snprintf(note, sizeof note, "(no diff: %s)",
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "none given");
        journal_diff(E, L, a, a->target, NULL, note);
    }
    lua_settop(L, top);
}

static void show_diff(rb_engine *E, lua_State *L, const rb_action *a, int nargs)
{
    int flags = 0, base = lua_gettop(L);
    lua_CFunction hook = NULL;
    if (rb_push_row(L, a->primitive, a->fn) == LUA_TTABLE &&
        lua_getfield(L, -1, "row") == LUA_TLIGHTUSERDATA) {
        flags = ((const rb_fn *)lua_touserdata(L, -1))->flags;
        hook = ((const rb_fn *)lua_touserdata(L, -1))->diff;
    }
    lua_settop(L, base);
    if (hook) {
        show_hook_diff(E, L, a, hook, nargs);
        return;
    }
    int appends = (flags & RB_CONTENT_APPEND) != 0;
    if (!(flags & RB_CONTENT) || nargs < 2 || lua_type(L, 1) != LUA_TSTRING ||
        (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER))
        return;
    int top = lua_gettop(L);
    const char *path = lua_tostring(L, 1);
    size_t ndata;
    lua_pushvalue(L, 2); /* a number is converted on the copy */
    const char *data = lua_tolstring(L, -1, &ndata);
    size_t nold = 0;
    int missing = 0;
    char note[512];
    if (push_file(L, path, DIFF_MAX_BYTES, &nold) != 0) {
        if (errno != ENOENT) {
            snprintf(note, sizeof note, "(no diff: the current content cannot be read: %s)",
                     strerror(errno));
            journal_diff(E, L, a, path, NULL, note);
            lua_settop(L, top);
            return;
        }
        lua_pushliteral(L, "");
        missing = 1;
    }
    const char *old = lua_tostring(L, -1);
    size_t nnew = appends ? nold + ndata : ndata;
    if (nold > DIFF_MAX_BYTES || nnew > DIFF_MAX_BYTES) {
        snprintf(note, sizeof note, "(no diff: %zu bytes now, %zu after; larger than %u MiB)", nold,
                 nnew, DIFF_MAX_BYTES >> 20);
        journal_diff(E, L, a, path, NULL, note);
        lua_settop(L, top);
        return;
    }
    if (appends) {
        lua_pushvalue(L, -1);
        lua_pushvalue(L, -3);
        lua_concat(L, 2);
        data = lua_tolstring(L, -1, &ndata);
    }
    if (memchr(old, '\0', nold) || memchr(data, '\0', ndata)) {
        snprintf(note, sizeof note, "(no diff: binary content, %zu bytes now, %zu after)", nold,
                 ndata);
        journal_diff(E, L, a, path, NULL, note);
    } else if (!missing && nold == ndata && memcmp(old, data, nold) == 0) {
        journal_diff(E, L, a, path, NULL, "(no change: the file already has this content)");
    } else {
        lua_pushfstring(L, "%s\t(after %s %s)", path, a->primitive, a->verb);
        if (rb_unified_diff(L, missing ? "/dev/null" : path, lua_tostring(L, -1), old, nold, data,
                            ndata) != 0)
            luaL_error(L, "--diff: out of memory");
        journal_diff(E, L, a, path, lua_tostring(L, -1), NULL);
    }
    lua_settop(L, top);
}

static void run_after_action(rb_engine *E, lua_State *L, const rb_action *a, int simulated,
                             int nargs, int res, int nres, const char *error)
{
    int top = lua_gettop(L);
    const rb_strategy *below = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, RUN_BELOW) == LUA_TLIGHTUSERDATA)
        below = lua_touserdata(L, -1);
    int diff = (lua_getfield(L, LUA_REGISTRYINDEX, RUN_DIFF), lua_toboolean(L, -1));
    lua_settop(L, top);
    if (below && below->after_action)
        below->after_action(E, L, a, simulated, nargs, res, nres, error);
    if (a->cls != RB_MUTATE)
        return;
    plan_push_action(L, a);
    if (E->step_index) { /* [2/4 ...]; a change of the top-level code has no step */
        if (lua_getfield(L, LUA_REGISTRYINDEX, JOURNAL_STEP_TOTAL) == LUA_TNUMBER)
            lua_setfield(L, -2, "total");
        else
            lua_pop(L, 1);
    }
    append(L, PLAN_CHANGES);
    lua_settop(L, top);
    if (diff && simulated && !error)
        show_diff(E, L, a, nargs);
}

static const rb_strategy rb_mode_dry_run_plan = {
    .name = "dry-run",
    .after_action = run_after_action,
};

int dry_run_collect(rb_engine *E, int diff)
{
    lua_State *L = E->L;
    lua_pushlightuserdata(L, (void *)E->strategy);
    lua_setfield(L, LUA_REGISTRYINDEX, RUN_BELOW);
    lua_pushboolean(L, diff);
    lua_setfield(L, LUA_REGISTRYINDEX, RUN_DIFF);
    return engine_decorate(E, &rb_mode_dry_run_plan);
}

void dry_run_show_plan(rb_engine *E, lua_State *L, int exit_code)
{
    plan_push_collected(L, "changes");
    journal_plan(E, L, -1, exit_code == 0);
    lua_pop(L, 1);
}
