/*
 * Runbook files: loading one into its own environment, the runbook{} and
 * step() declarations, and finding a runbook by name in the library.
 * See rbfile.h for the model.
 */
#include "rbfile.h"
#include "engine.h"
#include "journal.h"
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef RUNBOOK_SHARE_DIR
#define RUNBOOK_SHARE_DIR "/usr/local/share/runbook"
#endif

static const char *const META_KEYS[] = {"name",    "title",  "description", "tags",     "params",
                                        "owner",   "source", "version",     "severity", "schedule",
                                        "mutates", "lock",   NULL};
static const char *const STEP_KEYS[] = {"when",        "undo", "timeout", "continue_on_error",
                                        "description", NULL};

static int input_error(lua_State *L, const char *fmt, ...)
{
    rb_engine *E = rb_engine_of(L);
    if (E)
        E->input_error = 1;
    luaL_where(L, 1);
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

static int known(const char *const *keys, const char *k)
{
    for (int i = 0; keys[i]; i++)
        if (strcmp(keys[i], k) == 0)
            return 1;
    return 0;
}

/* params_resolve under pcall, so its message can get the file:line of runbook{} */
static int resolve_params(lua_State *L)
{
    int strict = lua_toboolean(L, 3);
    params_resolve(L, 1, lua_isnil(L, 2) ? 0 : 2, strict);
    rb_secret_params(L, 1, -1);
    return 1;
}

/* runbook { name = ..., title = ..., params = {...} } -- upvalue 1: the runbook object */
static int l_runbook(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    if (!lua_istable(L, 1))
        return input_error(L, "runbook{}: expected a table of metadata, got %s",
                           luaL_typename(L, 1));
    lua_settop(L, 1);
    int rb = lua_upvalueindex(1);
    if (lua_getfield(L, rb, "meta") != LUA_TNIL)
        return input_error(L, "runbook{}: declared twice");
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || !known(META_KEYS, lua_tostring(L, -1)))
            return input_error(L,
                               "runbook{}: unknown field '%s' (known: name, title, description, "
                               "tags, params, owner, source, version, severity, schedule, "
                               "mutates, lock)",
                               luaL_tolstring(L, -1, NULL));
    }
    if (lua_getfield(L, 1, "name") != LUA_TSTRING || lua_rawlen(L, -1) == 0)
        return input_error(L, "runbook{}: 'name' is required (a string, e.g. "
                              "\"calendar-api/high-error-rate\")");
    lua_pop(L, 1);
    static const char *const strings[] = {"title",   "description", "owner",    "source",
                                          "version", "severity",    "schedule", NULL};
    for (int i = 0; strings[i]; i++) {
        int t = lua_getfield(L, 1, strings[i]);
        if (t != LUA_TNIL && t != LUA_TSTRING)
            return input_error(L, "runbook{}: '%s' must be a string, got %s", strings[i],
                               lua_typename(L, t));
        lua_pop(L, 1);
    }
    /* tags; mutates: what the runbook may change, in words, for `list --markdown` */
    static const char *const lists[] = {"tags", "mutates", NULL};
    for (int k = 0; lists[k]; k++) {
        int t = lua_getfield(L, 1, lists[k]);
        if (t == LUA_TTABLE) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                    return input_error(L, "runbook{}: '%s' must be strings (item %d is a %s)",
                                       lists[k], (int)i, luaL_typename(L, -1));
                lua_pop(L, 1);
            }
        } else if (t != LUA_TNIL) {
            return input_error(L, "runbook{}: '%s' must be a list of strings", lists[k]);
        }
        lua_pop(L, 1);
    }

    /* lock: checked whole when a run takes it (a function needs the params) */
    int lt = lua_getfield(L, 1, "lock");
    if (lt != LUA_TNIL && lt != LUA_TSTRING && lt != LUA_TTABLE && lt != LUA_TFUNCTION)
        return input_error(L,
                           "runbook{}: 'lock' must be a name, a list of names or a function "
                           "of the params returning them, got %s",
                           lua_typename(L, lt));
    lua_pop(L, 1);

    /* params, resolved now so the rest of the file can use them */
    lua_pushcfunction(L, resolve_params);
    lua_getfield(L, 1, "params");
    lua_getfield(L, rb, "params_in");
    lua_pushboolean(L, E->purpose == PURPOSE_RUN);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        E->input_error = 1;
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
        return lua_error(L);
    }
    lua_getfield(L, rb, "env");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "params");
    lua_pop(L, 1);
    lua_setfield(L, rb, "params");
    lua_pushvalue(L, 1);
    lua_setfield(L, rb, "meta");
    return 0;
}

/* step(name, [opts,] fn) */
static int l_step(lua_State *L)
{
    int rb = lua_upvalueindex(1);
    if (lua_getfield(L, rb, "meta") == LUA_TNIL)
        return input_error(L, "step(): declare runbook{ name = ... } before the first step");
    lua_pop(L, 1);
    if (lua_type(L, 1) != LUA_TSTRING)
        return input_error(L, "step(): the first argument must be the step's name (a string)");
    int opts = 0, fn = 2;
    if (lua_istable(L, 2)) {
        opts = 2;
        fn = 3;
    }
    if (!lua_isfunction(L, fn))
        return input_error(L, "step \"%s\": expected a function %s", lua_tostring(L, 1),
                           opts ? "after the options table" : "as the second argument");
    if (opts) {
        lua_pushnil(L);
        while (lua_next(L, opts)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING || !known(STEP_KEYS, lua_tostring(L, -1)))
                return input_error(L,
                                   "step \"%s\": unknown option '%s' (known: when, undo, timeout, "
                                   "continue_on_error, description)",
                                   lua_tostring(L, 1), luaL_tolstring(L, -1, NULL));
        }
        int t = lua_getfield(L, opts, "when");
        if (t != LUA_TNIL && t != LUA_TFUNCTION && t != LUA_TBOOLEAN)
            return input_error(L, "step \"%s\": 'when' must be a function or a boolean",
                               lua_tostring(L, 1));
        t = lua_getfield(L, opts, "undo");
        if (t != LUA_TNIL && t != LUA_TFUNCTION)
            return input_error(L, "step \"%s\": 'undo' must be a function", lua_tostring(L, 1));
        t = lua_getfield(L, opts, "timeout");
        if (t != LUA_TNIL && (t != LUA_TNUMBER || lua_tonumber(L, -1) <= 0))
            return input_error(L, "step \"%s\": 'timeout' must be a positive number of seconds",
                               lua_tostring(L, 1));
        t = lua_getfield(L, opts, "description");
        if (t != LUA_TNIL && t != LUA_TSTRING)
            return input_error(L, "step \"%s\": 'description' must be a string",
                               lua_tostring(L, 1));
        lua_pop(L, 4);
    }
    lua_getfield(L, rb, "steps");
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, fn);
    lua_setfield(L, -2, "fn");
    if (opts)
        lua_pushvalue(L, opts);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "opts");
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) {
        lua_pushinteger(L, ar.currentline);
        lua_setfield(L, -2, "line");
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    return 0;
}

int rbfile_load(lua_State *L, const char *path, int params_in)
{
    rb_engine *E = rb_engine_of(L);
    if (params_in)
        params_in = lua_absindex(L, params_in);
    size_t len;
    char *src = rb_read_file(path, &len);
    if (!src) {
        lua_pushfstring(L, "%s: cannot read: %s", path, strerror(errno));
        return 2;
    }
    if (E && E->depth == 0)
        rbfile_use_root_of(L, path);
    char sha[65];
    rb_sha256_hex(src, len, sha);
    size_t bom = rb_lua_source(src, len); /* the hash above is of the file as it is */
    lua_pushfstring(L, "@%s", path);
    int st = luaL_loadbufferx(L, src + bom, len - bom, lua_tostring(L, -1), "t");
    free(src);
    lua_remove(L, -2);
    if (st != LUA_OK)
        return 2;
    int chunk = lua_gettop(L);

    /* the runbook object and its environment */
    lua_createtable(L, 0, 8);
    int rb = lua_gettop(L);
    lua_pushstring(L, path);
    lua_setfield(L, rb, "path");
    lua_pushstring(L, sha);
    lua_setfield(L, rb, "sha256");
    lua_newtable(L);
    lua_setfield(L, rb, "steps");
    if (params_in)
        lua_pushvalue(L, params_in);
    else
        lua_pushnil(L);
    lua_setfield(L, rb, "params_in");
    lua_createtable(L, 0, 4); /* env */
    lua_newtable(L);
    lua_setfield(L, -2, "state");
    lua_newtable(L);
    lua_setfield(L, -2, "params");
    lua_pushvalue(L, rb);
    lua_pushcclosure(L, l_runbook, 1);
    lua_setfield(L, -2, "runbook");
    lua_pushvalue(L, rb);
    lua_pushcclosure(L, l_step, 1);
    lua_setfield(L, -2, "step");
    lua_createtable(L, 0, 1); /* globals are read through, written locally */
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, rb, "env");
    lua_setupvalue(L, chunk, 1); /* _ENV */

    /* run the top level as a task: it may call primitives, which may yield.
     * The run's deadline holds here too (a top level that loops must not
     * outlive --timeout); run_runbook's load inherits its step's. */
    lua_pushvalue(L, chunk);
    int saved_input = E->input_error;
    E->input_error = 0;
    rb_task *t = loop_spawn(L, 0, E->run_deadline, E->run_why[0] ? E->run_why : NULL);
    loop_wait(L, t);
    int failed = !t->done || t->failed;
    /* asked while t is still the task: its deadline, the limit it met */
    int stopped = failed && (loop_stop_reason(t->co) || E->mem_exceeded);
    if (failed) {
        if (t->done)
            lua_pushstring(L, engine_errmsg(t->co, -1));
        else
            lua_pushfstring(L, "%s: loading did not finish", path);
    }
    loop_task_free(L, t);
    if (stopped && E->depth == 0) {
        lua_pushvalue(L, rb);
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.stopped");
    }
    if (!failed && E->purpose == PURPOSE_LIST && E->list_refused) {
        /* worth a warning from `check`: it acts before any step */
        lua_pushfstring(L,
                        "%s: top-level code calls %s, which runs before any step (and was "
                        "not run while listing)",
                        path, E->list_refused_what ? E->list_refused_what : "a primitive");
        lua_setfield(L, rb, "load_error");
    }
    E->list_refused = 0;
    if (failed) {
        lua_replace(L, chunk);
        lua_settop(L, chunk);
        E->input_error = saved_input;
        return stopped ? RBFILE_STOPPED : 2;
    }
    E->input_error = saved_input;
    if (lua_getfield(L, rb, "meta") == LUA_TNIL) {
        lua_settop(L, chunk - 1);
        lua_pushfstring(L, "%s: no runbook{ name = ... } declaration", path);
        return 2;
    }
    lua_pop(L, 1);
    lua_replace(L, chunk);
    lua_settop(L, chunk);
    return 0;
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int try_dir(const char *dir, const char *name, char *out, size_t n)
{
    size_t len = strlen(name);
    int has_ext = len > 4 && strcmp(name + len - 4, ".lua") == 0;
    snprintf(out, n, "%s/%s%s", dir, name, has_ext ? "" : ".lua");
    return is_file(out);
}

static char library_root[PATH_MAX];

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The nearest ancestor of path holding runbook.yaml or runbooks/. */
static int root_of(const char *path, char *out, size_t n)
{
    char dir[PATH_MAX], probe[PATH_MAX + 32];
    if (!realpath(path, dir))
        return -1;
    if (!is_dir(dir)) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            return -1;
        slash == dir ? (void)(dir[1] = '\0') : (void)(*slash = '\0');
    }
    for (;;) {
        snprintf(probe, sizeof probe, "%s/runbook.yaml", dir);
        int yaml = is_file(probe);
        snprintf(probe, sizeof probe, "%s/runbooks", dir);
        if (yaml || is_dir(probe)) {
            snprintf(out, n, "%s", dir);
            return 0;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            return -1;
        *slash = '\0';
    }
}

const char *rbfile_root(void)
{
    if (!library_root[0] && root_of(".", library_root, sizeof library_root) != 0)
        library_root[0] = '\0';
    return library_root;
}

int rbfile_use_root_of(lua_State *L, const char *path)
{
    char root[PATH_MAX];
    if (root_of(path, root, sizeof root) != 0)
        return -1;
    snprintf(library_root, sizeof library_root, "%s", root);
    if (!L)
        return 0;
    /* its modules first: require finds this library's lib/ whatever the
     * working directory (once per Lua state) */
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "path");
        char mine[PATH_MAX + 32];
        snprintf(mine, sizeof mine, "%s/runbooks/lib/?.lua;", root);
        if (lua_isstring(L, -1) && strstr(lua_tostring(L, -1), mine)) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pushfstring(L,
                        "%s/runbooks/lib/?.lua;%s/runbooks/lib/?/init.lua;%s/lib/?.lua;"
                        "%s/lib/?/init.lua;%s",
                        root, root, root, root, lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        lua_setfield(L, -3, "path");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

int rbfile_find(const char *name, char *out, size_t n)
{
    if (is_file(name)) {
        snprintf(out, n, "%s", name);
        return 0;
    }
    const char *root = rbfile_root();
    if (root[0]) {
        char lib[PATH_MAX + 16];
        snprintf(lib, sizeof lib, "%s/runbooks", root);
        if (try_dir(lib, name, out, n))
            return 0;
    }
    if (try_dir("runbooks", name, out, n))
        return 0;
    const char *rp = getenv("RUNBOOK_PATH");
    if (rp) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", rp);
        for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save))
            if (*d && try_dir(d, name, out, n))
                return 0;
    }
    char share[4096];
    snprintf(share, sizeof share, "%s/runbooks", RUNBOOK_SHARE_DIR);
    if (try_dir(share, name, out, n))
        return 0;
    return -1;
}

/* rt.load_runbook(name, params) for run_runbook() */
static int rt_load_runbook(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    char path[4096];
    if (rbfile_find(name, path, sizeof path) != 0)
        return luaL_error(L,
                          "run_runbook: no runbook named '%s' (looked in %s%s./runbooks, "
                          "RUNBOOK_PATH and the installed library)",
                          name, rbfile_root()[0] ? rbfile_root() : "",
                          rbfile_root()[0] ? "/runbooks, " : "");
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "cli");
    rb_engine *E = rb_engine_of(L);
    E->depth++;
    int rc = rbfile_load(L, path, lua_gettop(L));
    E->depth--;
    if (rc != 0)
        return luaL_error(L, "run_runbook %s: %s", name, lua_tostring(L, -1));
    return 1;
}

/* rt.substep(label, index, name, status, error, t0) */
static int rt_substep(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    const char *label = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 3);
    const char *status = luaL_checkstring(L, 4);
    const char *err = luaL_optstring(L, 5, NULL);
    double t0 = luaL_optnumber(L, 6, 0);
    double now = rb_wallclock();
    double start = t0 > 0 ? now - (rb_now() - t0) : 0;
    lua_pushfstring(L, "%s › %s", label, name);
    journal_step(E, L, E->step_index, 0, lua_tostring(L, -1), status, start, now, err, 0);
    return 0;
}

void rbfile_open(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.internal");
    lua_pushcfunction(L, rt_load_runbook);
    lua_setfield(L, -2, "load_runbook");
    lua_pushcfunction(L, rt_substep);
    lua_setfield(L, -2, "substep");
    lua_pop(L, 1);
}
