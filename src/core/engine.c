/*
 * The engine: the Lua state every runbook runs in, and its sandbox.
 * Runbooks are untrusted input (teams share libraries), so the standard
 * library is cut down to what cannot touch the world: no os.execute,
 * io.popen, os.exit, os.remove, writable io.open, package.loadlib, C
 * modules or binary chunks.  Every effect goes through a primitive, which
 * is what makes dry-run trustworthy.  A forbidden function is replaced by
 * one that says what to use instead, rather than simply missing.
 */
#include "engine.h"
#include "library.h"
#include "loop.h"
#include "rbfile.h"
#include "rbtime.h"
#include "signature.h"
#include "util.h"
#include "watchdog.h"

#include <lualib.h>
#include <math.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The engine is the Lua state's allocator data: every coroutine of the state
 * reaches it in O(1), and any number of engines can live in one process. */
rb_engine *rb_engine_of(lua_State *L)
{
    void *ud = NULL;
    if (L)
        lua_getallocf(L, &ud);
    return (rb_engine *)ud;
}

/* Room the engine keeps past the limit once it has refused an allocation,
 * to record the failure (the run's error, the journal) without itself
 * failing where no error can be caught. */
#define MEM_RESERVE ((size_t)32 << 20)
/* Allocations this large are where C code (string.rep, table.concat) can
 * spend long between two count hooks: they are refused once the run stops. */
#define STOP_CHECK_BYTES ((size_t)256 << 10)

/* Counts the bytes of runbook Lua and refuses growth past the limit (Lua
 * raises "not enough memory"; the task's error then names the limit).  Only
 * inside a task, which lua_resume protects: the engine's own calls on the
 * main thread must never fail unprotected. */
static void *engine_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    rb_engine *E = (rb_engine *)ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is the kind of object */
    if (nsize == 0) {
        free(ptr);
        E->mem_used -= old;
        if (E->mem_exceeded && E->mem_used < E->mem_limit - E->mem_limit / 8)
            E->mem_exceeded = 0;
        return NULL;
    }
    if (nsize > old && loop_in_task(E->loop)) {
        size_t cap = E->mem_limit + (E->mem_exceeded ? MEM_RESERVE : 0);
        if (E->mem_limit > 0 && E->mem_used + (nsize - old) > cap) {
            E->mem_exceeded = 1;
            return NULL;
        }
        if (nsize - old >= STOP_CHECK_BYTES && loop_stop_reason_current(E->loop)) {
            E->stop_refused = 1;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p)
        E->mem_used = E->mem_used - old + nsize;
    return p;
}

static int engine_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "runbook: unprotected error in Lua: %s\n", msg ? msg : "(not a string)");
    return 0; /* abort() follows */
}

const char *mode_name(rb_mode m)
{
    switch (m) {
    case MODE_LIVE:
        return "live";
    case MODE_DRY_RUN:
        return "dry-run";
    case MODE_SCENARIO:
        return "scenario";
    case MODE_REPL:
        return "repl";
    }
    return "?";
}

/* ---- the sandbox -------------------------------------------------------- */

static int denied(lua_State *L)
{
    return luaL_error(L, "%s", lua_tostring(L, lua_upvalueindex(1)));
}

/* Is the value at idx one of the sandbox's "not available" stubs? */
int engine_is_denied(lua_State *L, int idx)
{
    return lua_tocfunction(L, idx) == denied;
}

static void deny(lua_State *L, const char *lib, const char *name, const char *instead)
{
    if (lib)
        lua_getglobal(L, lib);
    else
        lua_pushglobaltable(L);
    lua_pushfstring(L, "%s%s%s is not available to runbooks (sandbox): %s", lib ? lib : "",
                    lib ? "." : "", name, instead);
    lua_pushcclosure(L, denied, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static void reraise_if_stopping(lua_State *L);

/* load(chunk [, chunkname [, mode [, env]]]) -- text chunks only */
static int safe_load(lua_State *L)
{
    int n = lua_gettop(L);
    const char *mode = luaL_optstring(L, 3, "t");
    if (strchr(mode, 'b'))
        return luaL_error(L, "load: binary chunks are not allowed in runbooks (sandbox)");
    lua_settop(L, 4);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "t");
    if (n >= 4)
        lua_pushvalue(L, 4);
    lua_call(L, n >= 4 ? 4 : 3, 2);
    if (lua_isnil(L, -2)) /* a reader function's error is returned, not raised */
        reraise_if_stopping(L);
    return 2;
}

/* ---- stopping ----------------------------------------------------------
 * A runbook's pcall must not swallow an interrupt, a deadline or the memory
 * limit: `while true do pcall(f) end` would otherwise outlive --timeout,
 * SIGINT and SIGTERM.  Where a runbook can catch an error (pcall, xpcall,
 * coroutine.resume, load's reader), the engine raises it again while the
 * run is stopping. */
static void reraise_if_stopping(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    if (E->mem_exceeded) {
        lua_pushliteral(L, "not enough memory");
        lua_error(L); /* the task's error names the limit (src/core/loop.c) */
    }
    const char *why = loop_stop_reason(L);
    if (why) {
        luaL_where(L, 1);
        lua_pushstring(L, why);
        lua_concat(L, 2);
        lua_error(L);
    }
}

static int stopping(lua_State *L)
{
    return rb_engine_of(L)->mem_exceeded || loop_stop_reason(L) != NULL;
}

/* pcall's and xpcall's finish (Lua's own, plus the check); extra is the
 * number of values below the results: true and, for xpcall, the handler */
static int finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        reraise_if_stopping(L);
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int safe_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

/* A runbook's message handler does not run while the run stops: a handler
 * that loops would otherwise be called again for its own error. */
static int guarded_handler(lua_State *L)
{
    if (stopping(L))
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int safe_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

/* coroutine.resume returns false and the error of a coroutine that died */
static int safe_resume(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    if (lua_gettop(L) >= 1 && lua_isboolean(L, 1) && !lua_toboolean(L, 1))
        reraise_if_stopping(L);
    return lua_gettop(L);
}

/* setmetatable without __gc: Lua runs finalizers with hooks off, so a
 * finalizer that loops could be stopped by nothing short of SIGKILL */
static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL)
        return luaL_error(L, "__gc is not available to runbooks (sandbox): a finalizer cannot "
                             "be stopped; use a <close> variable or a step's undo");
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* io.open(path [, mode]) -- reading only */
static int safe_io_open(lua_State *L)
{
    const char *mode = luaL_optstring(L, 2, "r");
    if (strcmp(mode, "r") != 0 && strcmp(mode, "rb") != 0)
        return luaL_error(L,
                          "io.open '%s' with mode '%s': writing files is not allowed in runbooks "
                          "(sandbox): use fs.write/fs.append, which dry-run and the audit see",
                          luaL_checkstring(L, 1), mode);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushstring(L, mode);
    lua_call(L, 2, 3);
    return 3;
}

/* io.input(file) would be fine, io.output(file) opens for writing */
static int safe_io_output(lua_State *L)
{
    if (!lua_isnoneornil(L, 1) && lua_type(L, 1) == LUA_TSTRING)
        return luaL_error(L, "io.output to a file is not allowed in runbooks (sandbox): use "
                             "fs.write");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* os.date(fmt [, t]) and os.time([t]): t may be now()'s fractional seconds,
 * and without t they read the engine's clock -- the virtual one in a
 * scenario -- so `os.date("!%F", now() - 86400)` works and dates in a
 * scenario move with its sleeps. */
static void push_engine_time(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    lua_pushinteger(L, (lua_Integer)floor(rb_wallclock() + (E ? E->vclock : 0)));
}

static int safe_os_date(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_isnoneornil(L, 1)) {
        lua_pushliteral(L, "%c");
        lua_replace(L, 1);
    }
    if (lua_isnil(L, 2))
        push_engine_time(L);
    else
        lua_pushinteger(L, (lua_Integer)floor(luaL_checknumber(L, 2)));
    lua_replace(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

static int safe_os_time(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        return 1;
    }
    push_engine_time(L);
    return 1;
}

/* package.searchers[2] replacement: Lua files from package.path, text only */
static int search_lua(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    lua_getfield(L, -2, "searchpath");
    lua_pushstring(L, name);
    lua_pushstring(L, path ? path : "");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 1; /* the message listing the files tried */
    const char *file = lua_tostring(L, -2);
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                          lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

struct rb_stdlib_file {
    const char *name;
    const char *src;
    size_t len;
};
extern const struct rb_stdlib_file rb_stdlib_files[];
extern const struct rb_stdlib_file rb_internal_files[];

/* A process that makes many engines -- `runbook test` makes one per
 * scenario -- compiles each embedded chunk once: from its second load on it
 * loads the chunk's dump (with its debug information, so errors and
 * tracebacks read the same).  Runbooks still cannot load binary chunks
 * (safe_load, search_lua): these are the engine's own, dumped here. */
typedef struct compiled {
    const struct rb_stdlib_file *f;
    int loads;
    char *code;
    size_t len, cap;
} compiled;
static compiled compiled_chunks[128];

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    compiled *c = ud;
    if (c->len + sz > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + sz)
            cap *= 2;
        char *code = realloc(c->code, cap);
        if (!code)
            return 1;
        c->code = code, c->cap = cap;
    }
    memcpy(c->code + c->len, p, sz);
    c->len += sz;
    return 0;
}

static int load_chunk(lua_State *L, const struct rb_stdlib_file *f, const char *chunkname)
{
    compiled *c = NULL;
    for (size_t i = 0; !c && i < sizeof compiled_chunks / sizeof *compiled_chunks; i++)
        if (compiled_chunks[i].f == f || !compiled_chunks[i].f) {
            c = &compiled_chunks[i];
            c->f = f;
        }
    if (c && c->code)
        return luaL_loadbufferx(L, c->code, c->len, chunkname, "b");
    int rc = luaL_loadbufferx(L, f->src, f->len, chunkname, "t");
    if (rc == LUA_OK && c && ++c->loads == 2 && lua_dump(L, dump_writer, c, 0) != 0) {
        free(c->code);
        c->code = NULL, c->len = c->cap = 0;
    }
    return rc;
}

static int load_embedded(lua_State *L)
{
    const struct rb_stdlib_file *f = lua_touserdata(L, lua_upvalueindex(1));
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "=stdlib/%s.lua", f->name);
    if (load_chunk(L, f, chunkname) != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

static void sandbox(lua_State *L)
{
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_LOADLIBNAME, luaopen_package},
                                    {LUA_COLIBNAME, luaopen_coroutine},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_IOLIBNAME, luaopen_io},
                                    {LUA_OSLIBNAME, luaopen_os},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8},
                                    {LUA_DBLIBNAME, luaopen_debug},
                                    {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    const char *use_exec = "use exec{...} or sh(...), which dry-run, confirm and the audit see";
    const char *use_fs = "use fs.remove/fs.move, which dry-run and the audit see";
    deny(L, NULL, "dofile", "use require for modules");
    deny(L, NULL, "loadfile", "use require for modules");
    deny(L, "os", "execute", use_exec);
    deny(L, "os", "exit", "a runbook ends by returning or raising an error (check, error)");
    deny(L, "os", "remove", use_fs);
    deny(L, "os", "rename", use_fs);
    deny(L, "os", "tmpname", "use fs.mkdir under env(\"TMPDIR\", \"/tmp\")");
    deny(L, "os", "setlocale", "the locale belongs to the process");
    deny(L, "io", "popen", use_exec);
    deny(L, "io", "tmpfile", "use fs.write");
    deny(L, "string", "dump", "binary chunks are not allowed");
    deny(L, "package", "loadlib", "C modules are not allowed");

    lua_getglobal(L, "load");
    lua_pushcclosure(L, safe_load, 1);
    lua_setglobal(L, "load");
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, safe_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, safe_xpcall);
    lua_setglobal(L, "xpcall");
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "resume");
    lua_pushcclosure(L, safe_resume, 1);
    lua_setfield(L, -2, "resume");
    lua_pop(L, 1);

    lua_getglobal(L, "os");
    lua_getfield(L, -1, "date");
    lua_pushcclosure(L, safe_os_date, 1);
    lua_setfield(L, -2, "date");
    lua_getfield(L, -1, "time");
    lua_pushcclosure(L, safe_os_time, 1);
    lua_setfield(L, -2, "time");
    lua_pop(L, 1);

    lua_getglobal(L, "io");
    lua_getfield(L, -1, "open");
    lua_pushcclosure(L, safe_io_open, 1);
    lua_setfield(L, -2, "open");
    lua_getfield(L, -1, "output");
    lua_pushcclosure(L, safe_io_output, 1);
    lua_setfield(L, -2, "output");
    lua_pop(L, 1);

    /* debug gives the registry and upvalues of anything: keep traceback only */
    lua_getglobal(L, "debug");
    lua_newtable(L);
    lua_getfield(L, -2, "traceback");
    lua_setfield(L, -2, "traceback");
    lua_setglobal(L, "debug");
    lua_pop(L, 1);

    /* modules: embedded stdlib (overridable from disk), then Lua files only */
    lua_getglobal(L, "package");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "preload");
    for (const struct rb_stdlib_file *f = rb_stdlib_files; f->name; f++) {
        lua_pushlightuserdata(L, (void *)f);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_pushcfunction(L, sig_open_module); /* signature.wrap, for functions in Lua */
    lua_setfield(L, -2, "signature");
    lua_pop(L, 1);
    lua_getfield(L, -1, "searchers");
    lua_rawgeti(L, -1, 1); /* keep the preload searcher */
    lua_newtable(L);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushcfunction(L, search_lua);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1);
    /* stdlib from disk first when developing it, then each library's lib/ */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *dev = getenv("RUNBOOK_STDLIB_DIR");
    if (dev) {
        luaL_addstring(&b, dev);
        luaL_addstring(&b, "/?.lua;");
    }
    file_list roots = {0};
    library_roots(&roots);
    for (int i = 0; i < roots.n; i++) {
        lua_pushfstring(L, "%s/lib/?.lua;%s/lib/?/init.lua;", roots.paths[i], roots.paths[i]);
        luaL_addvalue(&b);
    }
    file_list_free(&roots);
    luaL_addstring(&b, "./lib/?.lua;./lib/?/init.lua");
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* The engine's own Lua (src/lua) and the primitives' Lua halves
 * (src/primitives/NAME.lua).  What runbooks call directly (wait_until,
 * run_runbook) runs at start; the rest -- db's backups, the REPL, scenarios,
 * recording -- is compiled the first time it is needed: together about 1 ms
 * of parsing that every start would pay. */
static const char *const EAGER[] = {"prelude", NULL};
#define LOADED "runbook.internal.loaded"

void rb_internal_load(lua_State *L, const char *name)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, LOADED) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, LOADED);
    }
    int done = lua_getfield(L, -1, name) != LUA_TNIL;
    lua_pop(L, 1);
    if (done) {
        lua_pop(L, 1);
        return;
    }
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    for (const struct rb_stdlib_file *f = rb_internal_files; f->name; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        char chunkname[128];
        snprintf(chunkname, sizeof chunkname, "=runbook/%s.lua", f->name);
        if (load_chunk(L, f, chunkname) != LUA_OK)
            lua_error(L);
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.internal");
        lua_call(L, 1, 0);
        return;
    }
    luaL_error(L, "internal: no src/lua/%s.lua", name);
}

void rb_push_internal(lua_State *L, const char *name, const char *fn)
{
    rb_internal_load(L, name);
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.internal");
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
}

/* rt.rows(): every primitive's rows as data (runbook.rows) */
static int rt_rows(lua_State *L)
{
    rb_push_rows(L);
    return 1;
}

/* rt.embedded_sources(): { name = source } of the embedded Lua (stdlib and
 * the engine's own), for what reads their `-- mutates:` lines */
int rb_embedded_sources(lua_State *L)
{
    lua_newtable(L);
    const struct rb_stdlib_file *sets[] = {rb_stdlib_files, rb_internal_files};
    for (int k = 0; k < 2; k++)
        for (const struct rb_stdlib_file *f = sets[k]; f->name; f++) {
            lua_pushfstring(L, "%s/%s", k ? "runbook" : "stdlib", f->name);
            lua_pushlstring(L, f->src, f->len);
            lua_settable(L, -3);
        }
    return 1;
}

static int run_internal(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.internal");
    lua_pushcfunction(L, rt_rows);
    lua_setfield(L, -2, "rows");
    lua_pushcfunction(L, rb_embedded_sources);
    lua_setfield(L, -2, "embedded_sources");
    lua_pop(L, 1);
    for (int i = 0; EAGER[i]; i++)
        rb_internal_load(L, EAGER[i]);
    return 0;
}

/* The sandbox, the engine's own functions, then the embedder's modules. */
static int open_all(lua_State *L)
{
    sandbox(L);
    mod_base_open(L);
    mod_time_open(L); /* time.parse/duration/since/format: on the engine's clock */
    rbfile_open(L);
    for (const rb_module *m = rb_engine_of(L)->modules; m && m->name; m++)
        m->open(L);
    return run_internal(L);
}

static size_t default_max_memory;
static double default_timeout;
static char default_timeout_why[128];

void engine_default_limits(size_t max_memory, double timeout, const char *why)
{
    default_max_memory = max_memory;
    default_timeout = timeout;
    snprintf(default_timeout_why, sizeof default_timeout_why, "%s", why ? why : "timed out");
}

rb_engine *engine_new(const rb_module *modules, char *err, size_t errlen)
{
    rb_engine *E = calloc(1, sizeof *E);
    if (!E) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    E->out = stdout;
    E->modules = modules;
    E->strategy = &rb_mode_live;
    E->mem_limit = default_max_memory ? default_max_memory : (size_t)1 << 30; /* --max-memory */
    if (default_timeout > 0) {
        E->run_deadline = rb_now() + default_timeout;
        snprintf(E->run_why, sizeof E->run_why, "%s", default_timeout_why);
    }
    E->loop = loop_new();
    E->L = E->loop ? lua_newstate(engine_alloc, E) : NULL;
    if (!E->L) {
        free(E->loop);
        free(E);
        snprintf(err, errlen, "cannot create a Lua state");
        return NULL;
    }
    lua_atpanic(E->L, engine_panic);
    /* new threads copy the main thread's extra space: it must say "no task" */
    *(void **)lua_getextraspace(E->L) = NULL;
    lua_pushcfunction(E->L, open_all);
    if (lua_pcall(E->L, 0, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(E->L, -1));
        lua_close(E->L);
        loop_shutdown(E->loop);
        free(E);
        return NULL;
    }
    return E;
}

void engine_free(rb_engine *E)
{
    if (!E)
        return;
    watchdog_stop(); /* a run that ended early (a usage error after runner_start) */
    loop_shutdown(E->loop);
    E->loop = NULL;
    for (const rb_module *m = E->modules; m && m->name; m++)
        if (m->close)
            m->close();
    if (E->L)
        lua_close(E->L);
    if (E->tty)
        fclose(E->tty);
    free(E->params_json);
    rb_secrets_clear(&E->secrets);
    free(E);
}

const char *engine_errmsg(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER)
        return lua_tostring(L, idx);
    if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        lua_replace(L, idx < 0 ? idx - 1 : idx);
        return s;
    }
    return lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
}
