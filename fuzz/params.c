/*
 * Params parsing (src/core/params.c): a runbook's declared params against
 * the values given for them -- --param key=value on the command line, a
 * scenario's params: (which may be typed YAML values, lists, mappings), the
 * --env environment's and runbook.yaml's params -- as rbfile.c's runbook{}
 * resolves them.  Input: a YAML document
 *
 *     params: { NAME: { type: number, secret: true, choices: [...] }, ... }
 *     cli: { NAME: value or [values] }    # as a scenario's params: give them
 *     env: { NAME: value }
 *     config: { NAME: value }
 *     --
 *     NAME=VALUE                          # each line a --param
 *
 * Everything after a line "--" is --param lines, split at the first '=' as
 * session.c's push_params_input splits them.  Oracles: a bad value is an
 * error (a Lua string), and a resolved param has its declared type.
 */
#include "engine.h"
#include "fuzz.h"
#include "rbfile.h"
#include "yamlconv.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the --param lines in text, appended to cli[key] */
static void add_params(lua_State *L, int cli, const char *text, size_t n)
{
    const char *end = text + n;
    while (text < end) {
        const char *nl = memchr(text, '\n', (size_t)(end - text));
        const char *eol = nl ? nl : end;
        const char *eq = memchr(text, '=', (size_t)(eol - text));
        if (eq && eq > text) { /* session.c refuses "=x" and "x" */
            lua_pushlstring(L, text, (size_t)(eq - text));
            if (lua_rawget(L, cli) != LUA_TTABLE) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushlstring(L, text, (size_t)(eq - text));
                lua_pushvalue(L, -2);
                lua_rawset(L, cli);
            }
            /* a C string, as argv is: the value stops at a NUL */
            lua_pushlstring(L, eq + 1, (size_t)(eol - eq - 1));
            lua_pushstring(L, lua_tostring(L, -1));
            lua_remove(L, -2);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            lua_pop(L, 1);
        }
        text = eol + 1;
    }
}

/* params_resolve(spec, in, strict) under pcall: 1 and the resolved table */
static int resolve(lua_State *L)
{
    params_resolve(L, 1, 2, 1);
    return 1;
}

static void check_types(lua_State *L, int spec, int out)
{
    lua_pushnil(L);
    while (lua_next(L, out)) {
        const char *name = lua_tostring(L, -2);
        lua_getfield(L, spec, name);
        lua_getfield(L, -1, "type");
        const char *t = lua_isstring(L, -1) ? lua_tostring(L, -1) : "string";
        int vt = lua_type(L, -3);
        int ok = strcmp(t, "number") == 0    ? vt == LUA_TNUMBER
                 : strcmp(t, "boolean") == 0 ? vt == LUA_TBOOLEAN
                 : strcmp(t, "list") == 0    ? vt == LUA_TTABLE
                                             : vt == LUA_TSTRING;
        if (!ok)
            fuzz_fail("param '%s' of type %s resolved to a %s", name, t, lua_typename(L, vt));
        lua_pop(L, 3);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_engine *E = fuzz_engine();
    lua_State *L = E->L;
    const char *text = (const char *)data;
    size_t ylen = size;
    const char *sep = NULL;
    for (size_t i = 0; i + 2 <= size; i++)
        if ((i == 0 || text[i - 1] == '\n') && text[i] == '-' && text[i + 1] == '-' &&
            (i + 2 == size || text[i + 2] == '\n')) {
            sep = text + i;
            break;
        }
    if (sep)
        ylen = (size_t)(sep - text);
    char err[512];
    int top = lua_gettop(L);
    if (yamlconv_parse(L, text, ylen, "params.yaml", err, sizeof err) != 0) {
        fuzz_done(L, top);
        return 0;
    }
    int doc = lua_gettop(L);
    lua_pushcfunction(L, resolve);
    if (lua_istable(L, doc))
        lua_getfield(L, doc, "params");
    else
        lua_pushnil(L);       /* the spec */
    lua_createtable(L, 0, 3); /* in */
    if (lua_istable(L, doc)) {
        static const char *const sources[] = {"env", "config", NULL};
        for (int i = 0; sources[i]; i++) {
            lua_getfield(L, doc, sources[i]);
            lua_setfield(L, -2, sources[i]);
        }
    }
    lua_newtable(L); /* cli: the document's (a scenario's params:), then the lines */
    if (lua_istable(L, doc) && lua_getfield(L, doc, "cli") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        }
    }
    if (lua_istable(L, doc))
        lua_pop(L, 1);
    if (sep)
        add_params(L, lua_gettop(L), sep + 2, size - ylen - 2);
    lua_setfield(L, -2, "cli");
    if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
        if (!lua_istable(L, -1))
            fuzz_fail("params_resolve returned a %s", luaL_typename(L, -1));
        if (lua_istable(L, doc))
            lua_getfield(L, doc, "params");
        else
            lua_pushnil(L);
        if (lua_istable(L, -1))
            check_types(L, lua_gettop(L), lua_gettop(L) - 1);
    } else if (lua_type(L, -1) != LUA_TSTRING) {
        fuzz_fail("a params error that is not a message: a %s", luaL_typename(L, -1));
    }
    fuzz_done(L, top);
    rb_secrets_clear(&E->secrets);
    E->input_error = 0;
    return 0;
}
