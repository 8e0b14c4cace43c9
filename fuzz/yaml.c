/*
 * The YAML -> Lua converter (src/codecs/yaml.c, yamlconv.h) and the YAML
 * encoder.  Runbooks read YAML from anywhere (yaml.decode of a command's
 * output), and runbook.yaml and scenario files go through the same
 * converter, so every byte string must give a value or a "name:line:"
 * error, never a crash.  Oracle: a document we decode and yaml.encode
 * decodes again to the same value (compared through json.encode, which is
 * deterministic) -- the encoder must never write YAML we cannot read back.
 */
#include "fuzz.h"
#include "yamlconv.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

void mod_json_open(lua_State *L);
void mod_yaml_open(lua_State *L);

static lua_State *state(void)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        mod_json_open(L);
        mod_yaml_open(L);
    }
    return L;
}

/* module.fn(value at idx) under pcall: 1 and the result pushed, or 0 */
static int call(lua_State *L, const char *module, const char *fn, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getglobal(L, module);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = state();
    char err[512];
    /* the variant with the line table: config.c's, a superset of the plain one */
    if (yamlconv_parse_lines(L, (const char *)data, size, "fuzz.yaml", err, sizeof err) != 0) {
        if (strncmp(err, "fuzz.yaml:", 10) != 0)
            fuzz_fail("an error without name:line: %s", err);
        fuzz_done(L, 0);
        return 0;
    }
    lua_pop(L, 1); /* the line table */
    int doc = lua_gettop(L);
    if (!call(L, "yaml", "encode", doc)) { /* cannot be written: fine, not a crash */
        fuzz_done(L, 0);
        return 0;
    }
    size_t ylen;
    const char *y = lua_tolstring(L, -1, &ylen);
    if (yamlconv_parse(L, y, ylen, "again.yaml", err, sizeof err) != 0)
        fuzz_fail("yaml.encode wrote YAML that does not decode: %s\n%s", err, y);
    int again = lua_gettop(L);
    int j1 = call(L, "json", "encode", doc);
    int j2 = call(L, "json", "encode", again);
    if (j1 != j2)
        fuzz_fail("json.encode of the document %s, of its YAML round trip %s\n%s",
                  j1 ? "works" : "fails", j2 ? "works" : "fails", y);
    if (j1 && strcmp(lua_tostring(L, -1), lua_tostring(L, -2)) != 0)
        fuzz_fail("yaml.encode round trip changed the value:\n  %s\n  %s\nYAML:\n%s",
                  lua_tostring(L, -2), lua_tostring(L, -1), y);
    fuzz_done(L, 0);
    return 0;
}
