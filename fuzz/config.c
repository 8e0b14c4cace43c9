/*
 * The config loader (src/core/config.c): runbook.yaml, read by path as
 * `runbook run --config FILE` reads it.  A config file is the operator's,
 * but a wrong one must be a "file:line: message" error (exit 2), never a
 * crash.  After a successful load the harness reads it the way the engine
 * does (every environment's params and audit_wait, the audit path).
 * Oracle: an error names the file.
 */
#include "config.h"
#include "fuzz.h"
#include "modules.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

static lua_State *state(void)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    return L;
}

/* what the engine reads of a loaded config, for the environment env */
static void read_back(rb_config *c, lua_State *L, const char *env)
{
    config_push(c, L, env, "params");
    config_push(c, L, env, "readonly_commands");
    config_audit_wait(c, L, env);
    lua_pop(L, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = state();
    const char *path = fuzz_write("runbook.yaml", data, size);
    rb_config c;
    char err[1024];
    if (config_load(&c, L, rb_builtin_modules, path, 1, err, sizeof err) != 0) {
        if (strncmp(err, path, strlen(path)) != 0)
            fuzz_fail("a config error that does not name the file: %s", err);
        if (lua_gettop(L) != 0)
            fuzz_fail("config_load left %d values on the stack", lua_gettop(L));
        fuzz_done(L, 0);
        return 0;
    }
    char buf[4096];
    config_audit_path(&c, NULL, 0, buf, sizeof buf);
    read_back(&c, L, NULL);
    config_push(&c, L, NULL, "environments");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING)
                read_back(&c, L, lua_tostring(L, -1));
        }
    }
    fuzz_done(L, 0);
    luaL_unref(L, LUA_REGISTRYINDEX, c.ref);
    return 0;
}
