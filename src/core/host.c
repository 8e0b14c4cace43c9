/*
 * The host API (include/runbook/host.h): what primitives may use of the
 * engine, implemented over the core's own pieces so that primitives never
 * include them.
 */
#include "runbook/host.h"
#include "config.h"
#include "engine.h"
#include "journal.h"
#include "loop.h"
#include "strategy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rb_config_get(lua_State *L, const char *section, const char *key)
{
    rb_engine *E = rb_engine_of(L);
    for (int pass = 0; E && E->config && pass < 2; pass++) {
        const char *env = pass == 0 ? E->env_name : NULL;
        if (pass == 0 && !env)
            continue;
        config_push(E->config, L, env, section);
        if (key && !lua_isnil(L, -1)) {
            if (!lua_istable(L, -1))
                luaL_error(L, "runbook.yaml: %s%s%s%s must be a mapping, got %s",
                           env ? "environments." : "", env ? env : "", env ? "." : "", section,
                           luaL_typename(L, -1));
            lua_getfield(L, -1, key);
            lua_remove(L, -2);
        }
        if (!lua_isnil(L, -1))
            return lua_type(L, -1);
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return LUA_TNIL;
}

void rb_log(lua_State *L, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    rb_engine *E = rb_engine_of(L);
    if (E)
        journal_log(E, L, level, msg);
    lua_pop(L, 1);
}

int rb_missing(lua_State *L, const char *what)
{
    rb_engine *E = rb_engine_of(L);
    return E && E->strategy && E->strategy->missing ? E->strategy->missing(E, L, what) : 0;
}

void rb_push_raw(lua_State *L, const char *primitive, const char *fn)
{
    if (rb_push_row(L, primitive, fn) != LUA_TTABLE)
        luaL_error(L, "internal: no primitive %s.%s", primitive, fn);
    lua_getfield(L, -1, "raw");
    lua_remove(L, -2);
}

const char *rb_runtime_dir(lua_State *L)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    const char *dir;
    if (xdg && *xdg)
        dir = lua_pushfstring(L, "%s/runbook", xdg);
    else
        dir = lua_pushfstring(L, "/tmp/runbook-%d", (int)getuid());
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        luaL_error(L, "cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
        luaL_error(L, "%s is not a private directory of this user (mode 0700)", dir);
    /* anchored for the run: the registry keeps the string alive */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.runtime_dir");
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.runtime_dir");
    dir = lua_tostring(L, -1);
    lua_pop(L, 1);
    return dir;
}

int rb_interrupted(lua_State *L)
{
    (void)L;
    return loop_interrupted();
}

void rb_child_started(pid_t pid)
{
    loop_child_add(pid);
}

void rb_child_ended(pid_t pid)
{
    loop_child_remove(pid);
}

void rb_set_poller(rb_poller_fn fn)
{
    loop_set_poller(fn);
}

void rb_push_lua(lua_State *L, const char *name, const char *fn)
{
    rb_push_internal(L, name, fn);
}

/* One level of runbook.yaml, a dotted section walked part by part: notify
 * resolves its credentials level by level (host.h says why). */
int rb_config_at(lua_State *L, int level, const char *section, const char *key)
{
    rb_engine *E = rb_engine_of(L);
    const char *env = level ? (E ? E->env_name : NULL) : NULL;
    if (!E || !E->config || (level && !env)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    config_push(E->config, L, env, NULL);
    const char *p = section;
    while (p && *p) {
        size_t n = strcspn(p, ".");
        if (!lua_istable(L, -1)) {
            if (!lua_isnil(L, -1) && p != section)
                luaL_error(L, "runbook.yaml: %s%s%s%.*s must be a mapping, got %s",
                           env ? "environments." : "", env ? env : "", env ? "." : "",
                           (int)(p - section - 1), section, luaL_typename(L, -1));
            lua_pop(L, 1);
            lua_pushnil(L);
            return LUA_TNIL;
        }
        lua_pushlstring(L, p, n);
        lua_gettable(L, -2);
        lua_remove(L, -2);
        p += n;
        p += *p == '.';
    }
    if (key && !lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            luaL_error(L, "runbook.yaml: %s%s%s%s must be a mapping, got %s",
                       env ? "environments." : "", env ? env : "", env ? "." : "", section,
                       luaL_typename(L, -1));
        lua_getfield(L, -1, key);
        lua_remove(L, -2);
    }
    return lua_type(L, -1);
}
