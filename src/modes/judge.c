/*
 * The scenario judge's own Lua state (judge.h): plain Lua libraries, a json
 * of plain functions, the primitives' rows as data, and the C helpers
 * through which it reads and writes its own files -- the scenario, the
 * files its mocks answer with, its seeds -- which are not the runbook's
 * actions.  Nothing in it is reachable from a runbook.
 */
#include "judge.h"
#include "engine.h"
#include "rbtime.h"
#include "util.h"
#include "yamlconv.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define COPY_MAX_DEPTH 64

static void copy_value(lua_State *from, int idx, lua_State *to, int fn_as, int depth);

static void copy_table(lua_State *from, int t, lua_State *to, int fn_as, int depth)
{
    lua_newtable(to);
    if (!lua_checkstack(from, 4) || !lua_checkstack(to, 4))
        return;
    lua_pushnil(from);
    while (lua_next(from, t)) { /* raw: no __pairs, no __index of the runbook's runs */
        int kt = lua_type(from, -2);
        if (kt == LUA_TSTRING || kt == LUA_TNUMBER || kt == LUA_TBOOLEAN) {
            copy_value(from, -2, to, 0, depth + 1);
            copy_value(from, -1, to, fn_as, depth + 1);
            if (lua_isnil(to, -2) || lua_isnil(to, -1))
                lua_pop(to, 2);
            else
                lua_rawset(to, -3);
        }
        lua_pop(from, 1);
    }
    /* json.array_mt says "an array, even empty": keep it, in to's own */
    if (lua_getmetatable(from, t)) {
        dataconv_push_array_mt(from);
        if (lua_rawequal(from, -1, -2)) {
            dataconv_push_array_mt(to);
            lua_setmetatable(to, -2);
        }
        lua_pop(from, 2);
    }
}

static void copy_value(lua_State *from, int idx, lua_State *to, int fn_as, int depth)
{
    idx = lua_absindex(from, idx);
    switch (lua_type(from, idx)) {
    case LUA_TBOOLEAN:
        lua_pushboolean(to, lua_toboolean(from, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(from, idx))
            lua_pushinteger(to, lua_tointeger(from, idx));
        else
            lua_pushnumber(to, lua_tonumber(from, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(from, idx, &len);
        lua_pushlstring(to, s, len);
        break;
    }
    case LUA_TTABLE:
        if (depth >= COPY_MAX_DEPTH)
            lua_pushliteral(to, "<nested too deep>"); /* a cycle, say */
        else
            copy_table(from, idx, to, fn_as, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        if (dataconv_is_null(from, idx)) { /* json.null */
            lua_pushlightuserdata(to, NULL);
            break;
        }
        /* fall through */
    default:
        if (fn_as && lua_type(from, idx) != LUA_TNIL)
            lua_pushboolean(to, 1);
        else
            lua_pushnil(to);
    }
}

void judge_copy(lua_State *from, int idx, lua_State *to, int fn_as)
{
    luaL_checkstack(to, 8, "judge_copy");
    copy_value(from, idx, to, fn_as, 0);
}

int scratch_resolve(const char *root, const char *path, char *out, size_t n, char *why,
                    size_t whylen)
{
    char real_root[PATH_MAX];
    if (!realpath(root, real_root)) {
        snprintf(why, whylen, "scratch directory %s: %s", root, strerror(errno));
        return -1;
    }
    /* "." and ".." resolved by name, never above the root */
    size_t len = strlen(real_root), depth = 0, lens[PATH_MAX / 2];
    if (len >= n)
        goto too_long;
    memcpy(out, real_root, len + 1);
    for (const char *p = path; *p;) {
        size_t k = strcspn(p, "/");
        if (k == 2 && p[0] == '.' && p[1] == '.') {
            if (depth == 0) {
                snprintf(why, whylen, "%s: the path leaves the scenario's scratch directory", path);
                return -1;
            }
            len -= lens[--depth];
            out[len] = '\0';
        } else if (k > 0 && !(k == 1 && p[0] == '.') && depth < sizeof lens / sizeof lens[0]) {
            if (len + 1 + k >= n)
                goto too_long;
            out[len] = '/';
            memcpy(out + len + 1, p, k);
            len += k + 1;
            out[len] = '\0';
            lens[depth++] = k + 1;
        }
        p += k;
        p += strspn(p, "/");
    }
    /* the longest part of it that exists must really be inside the root */
    char probe[PATH_MAX], real[PATH_MAX];
    snprintf(probe, sizeof probe, "%s", out);
    for (;;) {
        if (realpath(probe, real)) {
            size_t rn = strlen(real_root);
            if (strncmp(real, real_root, rn) != 0 || (real[rn] != '\0' && real[rn] != '/')) {
                snprintf(why, whylen,
                         "%s: the path leads out of the scenario's scratch directory (a "
                         "symbolic link)",
                         path);
                return -1;
            }
            return 0;
        }
        char *slash = strrchr(probe, '/');
        if (!slash || slash == probe)
            return 0;
        *slash = '\0';
    }
too_long:
    snprintf(why, whylen, "%.200s: too long a path", path);
    return -1;
}

/* ---- the helpers of src/lua/scenario.lua (rt.*) ------------------------- */

/* rt.in_scratch(root, path) -> root/path, or nil and why: a path that
 * climbs out of the scratch directory ("/../../etc") or through a symbolic
 * link out of it is refused -- whatever the scenario or runbook writes. */
static int rt_in_scratch(lua_State *J)
{
    char out[PATH_MAX], why[PATH_MAX + 128];
    if (scratch_resolve(luaL_checkstring(J, 1), luaL_checkstring(J, 2), out, sizeof out, why,
                        sizeof why) != 0) {
        lua_pushnil(J);
        lua_pushstring(J, why);
        return 2;
    }
    lua_pushstring(J, out);
    return 1;
}

/* rt.read_text(path [, max]) -> the file's contents, or nil and the cause
 * (max: a larger file is refused before it is read) */
static int rt_read_text(lua_State *J)
{
    const char *path = luaL_checkstring(J, 1);
    lua_Integer max = luaL_optinteger(J, 2, 0);
    struct stat st;
    if (max > 0 && stat(path, &st) == 0 && st.st_size > max) {
        lua_pushnil(J);
        lua_pushfstring(J, "%I bytes, more than the %I a scenario's file may have",
                        (lua_Integer)st.st_size, max);
        return 2;
    }
    if (fs_push_file_contents(J, path) != 0) {
        lua_pushnil(J);
        lua_pushstring(J, strerror(errno));
        return 2;
    }
    return 1;
}

/* rt.load_yaml(path) -> the document and its line table (yamlconv.h: where
 * each mapping, key and element starts, for errors that name the line of a
 * bad value), or nil and "path:line: message" */
static int rt_load_yaml(lua_State *J)
{
    const char *path = luaL_checkstring(J, 1);
    lua_settop(J, 1);
    if (fs_push_file_contents(J, path) != 0) {
        lua_pushnil(J);
        lua_pushfstring(J, "%s: %s", path, strerror(errno));
        return 2;
    }
    char err[512];
    size_t len;
    const char *buf = lua_tolstring(J, 2, &len);
    if (yamlconv_parse_lines(J, buf, len, path, err, sizeof err) != 0) {
        lua_pushnil(J);
        lua_pushstring(J, err);
        return 2;
    }
    return 2;
}

/* rt.write_seed(path, text): a seed file (0644), its directories first */
static int rt_write_seed(lua_State *J)
{
    const char *path = luaL_checkstring(J, 1);
    size_t len;
    const char *text = luaL_checklstring(J, 2, &len);
    rb_mkdir_parents(path);
    FILE *f = fopen(path, "w");
    int ok = f && fwrite(text, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        return luaL_error(J, "%s: cannot write: %s", path, strerror(errno));
    chmod(path, 0644);
    return 0;
}

/* rt.set_mtime(path, epoch): a seed's age (fs: { text, age_days }) */
static int rt_set_mtime(lua_State *J)
{
    const char *path = luaL_checkstring(J, 1);
    double t = luaL_checknumber(J, 2);
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = (time_t)t;
    ts[0].tv_nsec = ts[1].tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
    if (utimensat(AT_FDCWD, path, ts, 0) != 0)
        return luaL_error(J, "%s: cannot set its time: %s", path, strerror(errno));
    return 0;
}

/* rt.duration(text) -> seconds, or nil: "90s", "5m", "1h" as --timeout reads them */
static int rt_duration(lua_State *J)
{
    double t = rb_parse_duration(luaL_checkstring(J, 1));
    if (t <= 0)
        return 0;
    lua_pushnumber(J, t);
    return 1;
}

/* rt.rows(): the primitives' rows, copied when the judge was made */
static int rt_rows(lua_State *J)
{
    lua_getfield(J, LUA_REGISTRYINDEX, "runbook.judge.rows");
    return 1;
}

static int open_judge(lua_State *J)
{
    lua_State *from = lua_touserdata(J, 1);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(J, lib->name, lib->func, 1);
        lua_pop(J, 1);
    }
    json_open_plain(J);

    rb_push_rows(from);
    judge_copy(from, -1, J, 1);
    lua_pop(from, 1);
    lua_setfield(J, LUA_REGISTRYINDEX, "runbook.judge.rows");

    static const luaL_Reg rt[] = {{"rows", rt_rows},
                                  {"embedded_sources", rb_embedded_sources},
                                  {"read_text", rt_read_text},
                                  {"load_yaml", rt_load_yaml},
                                  {"write_seed", rt_write_seed},
                                  {"set_mtime", rt_set_mtime},
                                  {"in_scratch", rt_in_scratch},
                                  {"duration", rt_duration},
                                  /* `now:`, read as time.parse reads it */
                                  {"rfc3339", rb_rfc3339_lua},
                                  {NULL, NULL}};
    luaL_newlib(J, rt);
    lua_setfield(J, LUA_REGISTRYINDEX, "runbook.internal");
    rb_internal_load(J, "scenario");
    return 0;
}

lua_State *judge_new(lua_State *from)
{
    lua_State *J = luaL_newstate();
    if (!J)
        return NULL;
    lua_pushcfunction(J, open_judge);
    lua_pushlightuserdata(J, from);
    if (lua_pcall(J, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "runbook: the scenario judge: %s\n", lua_tostring(J, -1));
        lua_close(J);
        return NULL;
    }
    return J;
}

void judge_free(lua_State *J)
{
    if (J)
        lua_close(J);
}

static int traceback(lua_State *J)
{
    luaL_traceback(J, J, lua_tostring(J, 1), 1);
    return 1;
}

int judge_call(lua_State *J, const char *fn, int nargs, int nres, char *err, size_t errlen)
{
    lua_getfield(J, LUA_REGISTRYINDEX, "runbook.internal");
    lua_getfield(J, -1, fn);
    lua_remove(J, -2);
    lua_insert(J, -(nargs + 1));
    lua_pushcfunction(J, traceback);
    lua_insert(J, -(nargs + 2));
    int h = lua_gettop(J) - nargs - 1;
    if (lua_pcall(J, nargs, nres, h) != LUA_OK) {
        snprintf(err, errlen, "the scenario judge (%s): %s", fn,
                 lua_isstring(J, -1) ? lua_tostring(J, -1) : "an error");
        lua_settop(J, h - 1);
        return -1;
    }
    lua_remove(J, h);
    return 0;
}
