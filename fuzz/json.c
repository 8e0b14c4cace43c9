/*
 * The JSON codec (src/codecs/json.c: lua-cjson's decoder with our rewrite
 * of [] and big integers around it, our encoder) and the record writer
 * (src/codecs/jsonw.c).  JSON comes from servers and commands a runbook
 * talks to, so any byte string must decode or raise "json.decode: ...".
 * Oracles:
 * - encoding is a fixed point: e1 = encode(decode(x)), e2 =
 *   encode(decode(e1)), e3 = encode(decode(e2)) give e2 == e3, and e1 == e2
 *   unless e1 has a \ufffd (for bytes that were not UTF-8, which e2 then
 *   writes as the character itself) -- compact and pretty;
 * - jsonw writes a valid JSON string for any bytes (invalid UTF-8 becomes
 *   U+FFFD), which json.decode reads back as the input when the input was
 *   valid UTF-8;
 * - jw_lua's record of a decoded value is valid JSON.
 */
#include "fuzz.h"
#include "jsonw.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

void mod_json_open(lua_State *L);

static lua_State *state(void)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        mod_json_open(L);
    }
    return L;
}

/* json.fn(value at idx [, opts]) under pcall: 1 and the result pushed, or
 * 0 and the error pushed */
static int call(lua_State *L, const char *fn, int idx, int pretty)
{
    idx = lua_absindex(L, idx);
    lua_getglobal(L, "json");
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_pushvalue(L, idx);
    if (pretty) {
        lua_createtable(L, 0, 1);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "pretty");
    }
    return lua_pcall(L, 1 + pretty, 1, 0) == LUA_OK;
}

static int valid_utf8(const uint8_t *s, size_t n)
{
    lua_State *L = state();
    lua_getglobal(L, "utf8");
    lua_getfield(L, -1, "len");
    lua_pushlstring(L, (const char *)s, n);
    lua_pushinteger(L, 1);
    lua_pushinteger(L, -1);
    lua_pushboolean(L, 0); /* strict: no surrogates, nothing above U+10FFFF */
    lua_call(L, 4, 1);
    int ok = !lua_isnil(L, -1);
    lua_pop(L, 2);
    return ok;
}

/* encode(decode(e)) of the encoding e on top, pushed */
static void again(lua_State *L, int pretty)
{
    int e = lua_gettop(L);
    if (!call(L, "decode", e, 0))
        fuzz_fail("json.decode refuses what json.encode wrote: %s\n%s", lua_tostring(L, -1),
                  lua_tostring(L, e));
    if (!call(L, "encode", -1, pretty))
        fuzz_fail("json.encode refuses what it wrote, decoded: %s", lua_tostring(L, -1));
    lua_remove(L, -2);
}

/* encoding the value at idx reaches a fixed point */
static void fixed_point(lua_State *L, int idx, int pretty)
{
    int top = lua_gettop(L);
    if (!call(L, "encode", idx, pretty)) { /* e.g. nesting our encoder refuses */
        lua_settop(L, top);
        return;
    }
    const char *e1 = lua_tostring(L, -1);
    again(L, pretty);
    const char *e2 = lua_tostring(L, -1);
    if (!strstr(e1, "\\ufffd") && strcmp(e1, e2) != 0)
        fuzz_fail("json round trip changed the value:\n  %s\n  %s", e1, e2);
    again(L, pretty);
    if (strcmp(e2, lua_tostring(L, -1)) != 0)
        fuzz_fail("json round trip is not a fixed point:\n  %s\n  %s", e2, lua_tostring(L, -1));
    lua_settop(L, top);
}

static void writer(lua_State *L, const uint8_t *data, size_t size)
{
    jsonw w;
    jw_init(&w);
    jw_stringn(&w, (const char *)data, size);
    lua_pushstring(L, jw_str_result(&w));
    jw_free(&w);
    int s = lua_gettop(L);
    if (!call(L, "decode", s, 0))
        fuzz_fail("jw_stringn wrote an invalid JSON string: %s", lua_tostring(L, -1));
    if (!lua_isstring(L, -1))
        fuzz_fail("jw_stringn wrote a JSON value that is not a string");
    size_t n;
    const char *back = lua_tolstring(L, -1, &n);
    if (valid_utf8(data, size) && (n != size || memcmp(back, data, size) != 0))
        fuzz_fail("jw_stringn changed valid UTF-8");
    lua_settop(L, s - 1);
}

/* jw_lua(w, value) under pcall: it redacts, and a URL with a password in it
 * raises here, in a state without an engine to register the secret with */
static int record(lua_State *L)
{
    jw_lua((jsonw *)lua_touserdata(L, 1), L, 2);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = state();
    writer(L, data, size);
    lua_pushlstring(L, (const char *)data, size);
    if (!call(L, "decode", 1, 0)) {
        const char *msg = lua_tostring(L, -1);
        if (!msg || strncmp(msg, "json.decode: ", 13) != 0)
            fuzz_fail("json.decode raised without naming itself: %s", msg ? msg : "(not a string)");
        fuzz_done(L, 0);
        return 0;
    }
    int v = lua_gettop(L);
    fixed_point(L, v, 0);
    fixed_point(L, v, 1);
    /* the record writer (audit rows, --output json) on the same value */
    jsonw w;
    jw_init(&w);
    lua_pushcfunction(L, record);
    lua_pushlightuserdata(L, &w);
    lua_pushvalue(L, v);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK) {
        lua_pushstring(L, jw_str_result(&w));
        if (!call(L, "decode", -1, 0))
            fuzz_fail("jw_lua wrote invalid JSON: %s", lua_tostring(L, -1));
    }
    jw_free(&w);
    fuzz_done(L, 0);
    return 0;
}
