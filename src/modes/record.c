/*
 * Recording (`runbook run ... --record FILE.scenario.yaml`): the funnel
 * tells us of every action with its arguments and results; src/lua/record.lua
 * turns them into mocks and expectations.  Secrets are redacted from
 * everything written, and large bodies go to files beside the scenario.
 */
#include "record.h"
#include "util.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void push_range(lua_State *L, int first, int n)
{
    lua_createtable(L, n > 0 ? n : 0, 0);
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, first + i);
        lua_rawseti(L, -2, i + 1);
    }
}

/* The record strategy: a decorator over live or dry-run that writes down
 * every action with its arguments and results after the journal has it. */
static void after_action(rb_engine *E, lua_State *L, const rb_action *a, int simulated, int nargs,
                         int res, int nres, const char *error)
{
    (void)E;
    int top = lua_gettop(L);
    rb_push_internal(L, "record", "record_action");
    rb_push_action_info(L, a);
    lua_pushboolean(L, simulated);
    push_range(L, 1, nargs);
    push_range(L, res, nres);
    if (error)
        lua_pushstring(L, error);
    else
        lua_pushnil(L);
    lua_call(L, 5, 0);
    lua_settop(L, top);
}

/* rt.redact(s): s with every secret's value as **** */
static int rt_redact(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    rb_redact(L, s, n);
    return 1;
}

static const rb_strategy rb_mode_record = {
    .name = "record",
    .after_action = after_action,
};

void record_start(rb_engine *E)
{
    rb_internal_load(E->L, "record");
    lua_getfield(E->L, LUA_REGISTRYINDEX, "runbook.internal");
    lua_pushcfunction(E->L, rt_redact);
    lua_setfield(E->L, -2, "redact");
    lua_pop(E->L, 1);
    rb_push_internal(E->L, "record", "record_start");
    lua_call(E->L, 0, 0);
    /* the recording of this run: what the run's own mode does, written down */
    engine_decorate(E, &rb_mode_record);
}

/* --record's destination, checked before the run starts (exit 2, nothing
 * done) rather than found unwritable after every action was performed: its
 * directory must exist and take a new file -- tried for real, with a probe
 * file made and removed there (permissions, a read-only mount, ACLs, the
 * kernel's sandbox all answer) -- and the path must not be a directory. */
int record_check(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (!*path || strlen(path) >= sizeof dir - 32) {
        snprintf(err, errlen, "--record '%s': expected the path of a scenario file to write", path);
        return -1;
    }
    snprintf(dir, sizeof dir, "%s", path);
    const char *d = dirname(dir);
    struct stat st;
    if (stat(d, &st) != 0) {
        snprintf(err, errlen, "--record %s: no directory %s to write it in (%s)", path, d,
                 strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--record %s: %s is not a directory", path, d);
        return -1;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--record %s: is a directory (expected the path of a file)", path);
        return -1;
    }
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/.runbook-record-XXXXXX", d);
    int fd = mkstemp(probe);
    if (fd < 0) {
        snprintf(err, errlen, "--record %s: cannot write in %s: %s", path, d, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

/* Write data (redacted) to path atomically. */
static int write_redacted(lua_State *L, const char *path, const char *data, size_t len)
{
    const char *red = rb_redact(L, data, len);
    size_t n = lua_rawlen(L, -1);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fwrite(red, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = 0;
    lua_pop(L, 1);
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "runbook: --record %s: cannot write: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

int record_finish(rb_engine *E, lua_State *L, int rb, const char *path, int exit_code)
{
    int top = lua_gettop(L);
    char abs[PATH_MAX], dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *d = dirname(dir);
    char realdir[PATH_MAX];
    if (!realpath(d, realdir)) {
        fprintf(stderr, "runbook: --record %s: no such directory\n", path);
        return -1;
    }
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(abs, sizeof abs, "%.2047s/%.2047s", realdir, basename(dir));
    rb_push_internal(L, "record", "record_finish");
    lua_createtable(L, 0, 8);
    lua_pushstring(L, abs);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, E->path);
    lua_setfield(L, -2, "runbook");
    lua_getfield(L, rb, "params");
    lua_setfield(L, -2, "params");
    /* params declared secret are not written (their value would be ****) */
    lua_getfield(L, rb, "meta");
    lua_getfield(L, -1, "params");
    lua_remove(L, -2);
    lua_setfield(L, -2, "params_spec");
    const char *outcome = exit_code == 0 ? "success" : exit_code == 3 ? "aborted" : "failed";
    lua_pushstring(L, outcome);
    lua_setfield(L, -2, "outcome");
    if (E->failed_index) {
        lua_pushstring(L, E->failed_step);
        lua_setfield(L, -2, "failed_step");
    }
    char stem[PATH_MAX];
    snprintf(stem, sizeof stem, "%s", basename(dir));
    char *dot = strstr(stem, ".scenario.yaml");
    if (dot)
        *dot = '\0';
    lua_pushstring(L, stem);
    lua_setfield(L, -2, "stem");
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
        fprintf(stderr, "runbook: --record %s: %s\n", path, lua_tostring(L, -1));
        lua_settop(L, top);
        return -1;
    }
    int rc = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n && rc == 0; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "data");
        char fpath[PATH_MAX];
        snprintf(fpath, sizeof fpath, "%.2047s/%.2047s", realdir, lua_tostring(L, -2));
        size_t len;
        const char *data = lua_tolstring(L, -1, &len);
        rc = write_redacted(L, fpath, data, len);
        lua_pop(L, 3);
    }
    size_t len;
    const char *text = lua_tolstring(L, -2, &len);
    if (rc == 0)
        rc = write_redacted(L, path, text, len);
    if (rc == 0)
        fprintf(E->out, "recorded the run as %s: runbook test %s\n", path, path);
    lua_settop(L, top);
    return rc;
}
