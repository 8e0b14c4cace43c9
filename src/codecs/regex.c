/*
 * regex.match / regex.find: POSIX extended regular expressions from the C
 * library, for what Lua patterns cannot say (alternation, as in Prometheus
 * label matchers `code=~"5..|429"`).  Pure functions: not actions.
 */
#include "runbook/runbook.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 10

/* compile into a userdata whose __gc frees it, so an error never leaks */
static regex_t *compile(lua_State *L, const char *pattern, int anchored)
{
    regex_t *re = lua_newuserdatauv(L, sizeof *re, 1);
    luaL_setmetatable(L, "runbook.regex");
    const char *pat = anchored ? lua_pushfstring(L, "^(%s)$", pattern) : pattern;
    int rc = regcomp(re, pat, REG_EXTENDED | (anchored ? REG_NOSUB : 0));
    if (anchored)
        lua_pop(L, 1);
    if (rc != 0) {
        char msg[256];
        regerror(rc, re, msg, sizeof msg);
        luaL_error(L, "regex '%s': %s", pattern, msg);
    }
    lua_pushboolean(L, 1); /* compiled: __gc may free it */
    lua_setiuservalue(L, -2, 1);
    return re;
}

static int re_gc(lua_State *L)
{
    regex_t *re = luaL_checkudata(L, 1, "runbook.regex");
    if (lua_getiuservalue(L, 1, 1) == LUA_TBOOLEAN)
        regfree(re);
    return 0;
}

/* regex.match(pattern, s) -> boolean: does the whole of s match? */
static int l_match(lua_State *L)
{
    const char *pattern = luaL_checkstring(L, 1);
    const char *s = luaL_checkstring(L, 2);
    regex_t *re = compile(L, pattern, 1);
    lua_pushboolean(L, regexec(re, s, 0, NULL, 0) == 0);
    return 1;
}

/* regex.find(pattern, s) -> start, end, captures... (1-based) or nil */
static int l_find(lua_State *L)
{
    const char *pattern = luaL_checkstring(L, 1);
    const char *s = luaL_checkstring(L, 2);
    regex_t *re = compile(L, pattern, 0);
    regmatch_t m[MAX_GROUPS];
    if (regexec(re, s, MAX_GROUPS, m, 0) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, m[0].rm_so + 1);
    lua_pushinteger(L, m[0].rm_eo);
    int n = 2;
    for (size_t g = 1; g < MAX_GROUPS && g <= re->re_nsub; g++, n++) {
        if (m[g].rm_so < 0)
            lua_pushnil(L);
        else
            lua_pushlstring(L, s + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
    }
    return n;
}

void mod_regex_open(lua_State *L)
{
    /* a regex whose regcomp failed has no "compiled" mark and is not regfree()d */
    luaL_newmetatable(L, "runbook.regex");
    lua_pushcfunction(L, re_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const rb_fn fns[] = {
        {.name = "match", .fn = l_match, .cls = RB_PURE, .sig = "pattern:str s:str"},
        {.name = "find", .fn = l_find, .cls = RB_PURE, .sig = "pattern:str s:str"},
        {.name = NULL}};
    rb_register(L, "regex", fns);
}
