/*
 * One scenario (SPEC §8), run hermetically: the runbook's every action is
 * answered by the scenario's mocks through the funnel's intercept hook
 * (src/lua/scenario.lua matches and answers), fs works inside a scratch
 * directory seeded from the scenario, sleep and the clocks are virtual, and
 * nothing is audited.  The verdict -- the run's outcome against the
 * scenario's expectations -- is one JSON line, read by `runbook test`
 * (cmd_test.c), which runs scenarios as child processes, in parallel.
 */
#include "scenario.h"
#include "config.h"
#include "engine.h"
#include "journal.h"
#include "jsonw.h"
#include "loop.h"
#include "rbfile.h"
#include "runner.h"
#include "util.h"
#include "yamlconv.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* rt.fn(the nargs values on top) from src/lua/scenario.lua */
static int rt_call(lua_State *L, const char *fn, int nargs, int nres)
{
    rb_push_internal(L, "scenario", fn);
    lua_insert(L, -(nargs + 1));
    lua_call(L, nargs, nres);
    return nres;
}

/* ---- the scenario strategy -------------------------------------------------
 * Every action is answered by the scenario (src/lua/scenario.lua reads the
 * call's row: its fields, what a mock may answer, how); sleep moves a virtual
 * clock; confirm() takes the scenario's answers; what is configured nowhere
 * gets a stand-in that no request ever reaches. */

/* Called in place of every primitive: rt.scenario_call(info, row, args...) */
static int answer(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    const rb_action *a = E->answering;
    int nargs = lua_gettop(L);
    rb_push_internal(L, "scenario", "scenario_call");
    rb_push_action_info(L, a);
    rb_push_row(L, a->primitive, a->fn);
    for (int i = 1; i <= nargs; i++)
        lua_pushvalue(L, i);
    lua_call(L, nargs + 2, LUA_MULTRET);
    return lua_gettop(L) - nargs;
}

static int missing(rb_engine *E, lua_State *L, const char *what)
{
    (void)E, (void)L, (void)what;
    return 1;
}

/* scenarios run in CI without the real secrets */
static int missing_secret(rb_engine *E, lua_State *L, const char *name)
{
    (void)E;
    lua_pushfstring(L, "scenario-secret-%s", name);
    return 1;
}

/* ten minutes of waiting take no time */
static int virtual_sleep(rb_engine *E, lua_State *L, double seconds)
{
    (void)L;
    E->vclock += seconds;
    return 1;
}

static int scenario_confirm(rb_engine *E, lua_State *L, const char *question, const char **how)
{
    (void)E;
    rb_push_internal(L, "scenario", "scenario_confirm");
    lua_pushstring(L, question);
    lua_call(L, 1, 1);
    int yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    *how = "scenario";
    return yes;
}

static void journaled(rb_engine *E, lua_State *co, const rb_action *a, const rb_action_result *r);
static void step_done(rb_engine *E, int index, const char *name, const char *status);

const rb_strategy rb_mode_scenario = {
    .name = "scenario",
    .performs = 1,
    .answer = answer,
    .sleep = virtual_sleep,
    .confirm = scenario_confirm,
    .missing = missing,
    .missing_secret = missing_secret,
    .journaled = journaled,
    .step_done = step_done,
};

static char runbook_chunk[PATH_MAX + 1]; /* "@path" of the runbook under test */

/* The line of the runbook file itself that led to the action -- past the
 * engine's and stdlib's frames, and a library module's -- so a call made
 * through `require "redis"` counts at the runbook's line. 0: none. */
static int runbook_line(lua_State *co)
{
    lua_Debug ar;
    for (int level = 0; lua_getstack(co, level, &ar); level++) {
        lua_getinfo(co, "Sl", &ar);
        if (ar.currentline > 0 && strcmp(ar.source, runbook_chunk) == 0)
            return ar.currentline;
    }
    return 0;
}

static void journaled(rb_engine *E, lua_State *co, const rb_action *a, const rb_action_result *r)
{
    lua_State *L = E->L;
    lua_pushstring(L, a->words);
    lua_pushstring(L, a->cls == RB_READ ? "read" : "mutate");
    lua_pushstring(L, r->status);
    lua_pushinteger(L, runbook_line(co)); /* for coverage */
    rt_call(L, "scenario_action", 4, 0);
}

static void step_done(rb_engine *E, int index, const char *name, const char *status)
{
    lua_State *L = E->L;
    lua_pushinteger(L, index);
    lua_pushstring(L, name);
    lua_pushstring(L, status);
    rt_call(L, "scenario_step", 3, 0);
}

/* rt.note_result(t): a mocked command that fails keeps its exit code */
static int rt_note_result(lua_State *L)
{
    rb_note_result(L, 1);
    return 0;
}

/* rt.mkdir_parents(path): the directories above path, in the scratch dir */
static int rt_mkdir_parents(lua_State *L)
{
    rb_mkdir_parents(luaL_checkstring(L, 1));
    return 0;
}

/* The judge's own files -- the scenario, the files its mocks answer with,
 * its seeds -- are read and written here, not through primitives: they are
 * not the runbook's actions, and no mode stands between them. */

/* rt.read_text(path [, max]) -> the file's contents, or nil and the cause
 * (max: a larger file is refused before it is read) */
static int rt_read_text(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    struct stat st;
    if (max > 0 && stat(path, &st) == 0 && st.st_size > max) {
        lua_pushnil(L);
        lua_pushfstring(L, "%I bytes, more than the %I a scenario's file may have",
                        (lua_Integer)st.st_size, max);
        return 2;
    }
    if (fs_push_file_contents(L, path) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    return 1;
}

/* rt.load_yaml(path) -> the document, or nil and "path:line: message" */
static int rt_load_yaml(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    if (fs_push_file_contents(L, path) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    char err[512];
    size_t len;
    const char *buf = lua_tolstring(L, 2, &len);
    if (yamlconv_parse(L, buf, len, path, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* rt.write_seed(path, text): a seed file (0644), its directories first */
static int rt_write_seed(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    rb_mkdir_parents(path);
    FILE *f = fopen(path, "w");
    int ok = f && fwrite(text, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        return luaL_error(L, "%s: cannot write: %s", path, strerror(errno));
    chmod(path, 0644);
    return 0;
}

/* rt.in_scratch(root, path) -> root/path with "." and ".." resolved, or nil
 * and why: a path that climbs out of the scratch directory ("/../../etc"),
 * or through a symbolic link that leads out of it, is refused -- a scenario
 * touches nothing outside its scratch directory, whatever the runbook
 * writes. */
static int rt_in_scratch(lua_State *L)
{
    const char *root = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
    char real_root[PATH_MAX];
    if (!realpath(root, real_root))
        return luaL_error(L, "scratch directory %s: %s", root, strerror(errno));
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, real_root);
    size_t depth = 0, lens[PATH_MAX / 2];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (depth == 0) {
                lua_pushnil(L);
                lua_pushfstring(L, "%s: the path leaves the scenario's scratch directory", path);
                return 2;
            }
            luaL_buffsub(&b, lens[--depth]);
        } else if (n > 0 && !(n == 1 && p[0] == '.') && depth < sizeof lens / sizeof lens[0]) {
            luaL_addchar(&b, '/');
            luaL_addlstring(&b, p, n);
            lens[depth++] = n + 1;
        }
        p += n;
        p += strspn(p, "/");
    }
    luaL_pushresult(&b);
    /* the longest part of it that exists must really be inside the root */
    char probe[PATH_MAX], real[PATH_MAX];
    snprintf(probe, sizeof probe, "%s", lua_tostring(L, -1));
    for (;;) {
        if (realpath(probe, real)) {
            size_t rn = strlen(real_root);
            if (strncmp(real, real_root, rn) != 0 || (real[rn] != '\0' && real[rn] != '/')) {
                lua_pushnil(L);
                lua_pushfstring(L,
                                "%s: the path leads out of the scenario's scratch directory "
                                "(a symbolic link)",
                                path);
                return 2;
            }
            break;
        }
        char *slash = strrchr(probe, '/');
        if (!slash || slash == probe)
            break;
        *slash = '\0';
    }
    return 1;
}

/* rt.set_mtime(path, epoch): a seed's age (fs: { text, age_days }) */
static int rt_set_mtime(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    double t = luaL_checknumber(L, 2);
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = (time_t)t;
    ts[0].tv_nsec = ts[1].tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
    if (utimensat(AT_FDCWD, path, ts, 0) != 0)
        return luaL_error(L, "%s: cannot set its time: %s", path, strerror(errno));
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

typedef struct one {
    const char *path;
    char scratch[PATH_MAX];
    char *out; /* the run's human view, captured */
    size_t out_len;
    int exit_code;
    const char *malformed; /* the scenario itself is wrong */
    int coverage;          /* judge the runbook's coverage too (--coverage wants it) */
} one;

static const char *outcome_of(int code)
{
    switch (code) {
    case 0:
        return "success";
    case 1:
        return "failed";
    case 3:
        return "aborted";
    case 130:
        return "interrupted";
    default:
        return "invalid";
    }
}

/* The runbook a scenario names: a path next to the scenario, else a
 * library name. */
int scenario_find_runbook(const char *scenario, const char *name, char *out, size_t n)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", scenario);
    const char *dir = dirname(copy);
    char cand[PATH_MAX * 2];
    for (int k = 0; k < 2; k++) {
        snprintf(cand, sizeof cand, "%s/%s%s", dir, name, k ? ".lua" : "");
        if (access(cand, R_OK) == 0 && rbfile_find(cand, out, n) == 0)
            return 0;
    }
    return rbfile_find(name, out, n);
}

void scenario_open_judge(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.internal");
    int rt = lua_gettop(L);
    lua_pushcfunction(L, rt_note_result);
    lua_setfield(L, rt, "note_result");
    lua_pushcfunction(L, rt_mkdir_parents);
    lua_setfield(L, rt, "mkdir_parents");
    lua_pushcfunction(L, rt_read_text);
    lua_setfield(L, rt, "read_text");
    lua_pushcfunction(L, rt_load_yaml);
    lua_setfield(L, rt, "load_yaml");
    lua_pushcfunction(L, rt_write_seed);
    lua_setfield(L, rt, "write_seed");
    lua_pushcfunction(L, rt_set_mtime);
    lua_setfield(L, rt, "set_mtime");
    lua_pushcfunction(L, rt_in_scratch);
    lua_setfield(L, rt, "in_scratch");
    lua_pop(L, 1);
    rb_internal_load(L, "scenario");
}

static int prun(lua_State *L)
{
    one *o = lua_touserdata(L, 1);
    rb_engine *E = rb_engine_of(L);
    scenario_open_judge(L);

    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", o->path);
    lua_pushstring(L, dirname(copy));
    rt_call(L, "scenario_dir", 1, 0);
    /* the scenario's own loading and seeding are not the runbook's output */
    FILE *out = E->out, *quiet = fopen("/dev/null", "w");
    if (quiet)
        E->out = quiet;
    lua_pushstring(L, o->path);
    rt_call(L, "scenario_load", 1, 2);
    if (lua_isnil(L, -2)) {
        const char *msg = lua_tostring(L, -1);
        o->malformed = strncmp(msg, o->path, strlen(o->path)) == 0
                           ? msg
                           : lua_pushfstring(L, "%s: %s", o->path, msg);
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.error");
        return 0;
    }
    lua_pop(L, 1);
    int sc = lua_gettop(L);
    if (lua_getfield(L, sc, "skip") == LUA_TSTRING) {
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.skip");
        return 0;
    }
    lua_pop(L, 1);
    lua_getfield(L, sc, "rollback");
    int rollback = lua_toboolean(L, -1);
    lua_pop(L, 1);

    /* fs works for real, under a scratch directory seeded from `fs:` */
    snprintf(o->scratch, sizeof o->scratch, "%s/runbook-scenario.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(o->scratch))
        return luaL_error(L, "cannot create a scratch directory: %s", strerror(errno));
    lua_pushstring(L, o->scratch);
    lua_getfield(L, sc, "fs");
    rt_call(L, "scenario_scratch", 2, 1);
    E->out = out;
    if (quiet)
        fclose(quiet);
    if (lua_isstring(L, -1)) { /* a seed file that cannot be read, say */
        o->malformed = lua_pushfstring(L, "%s: fs: %s", o->path, lua_tostring(L, -1));
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.error");
        return 0;
    }
    lua_pop(L, 1);
    /* runbook.yaml (notify endpoints, readonly_commands, kubectl defaults)
     * and the scenario's `env:` environment, as `run` would use them */
    if (lua_getfield(L, sc, "env") == LUA_TSTRING)
        E->env_name = lua_tostring(L, -1); /* anchored: sc stays on the stack */
    lua_pop(L, 1);

    lua_getfield(L, sc, "runbook");
    char rbpath[PATH_MAX];
    if (scenario_find_runbook(o->path, lua_tostring(L, -1), rbpath, sizeof rbpath) != 0) {
        o->malformed =
            lua_pushfstring(L, "%s: runbook: no runbook named '%s'", o->path, lua_tostring(L, -1));
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.error");
        return 0;
    }
    lua_pop(L, 1);

    /* params: the scenario's, as if given with --param */
    lua_createtable(L, 0, 1);
    lua_newtable(L);
    lua_getfield(L, sc, "params");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_istable(L, -1)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        } else {
            lua_createtable(L, 1, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        }
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "cli");
    int in = lua_gettop(L);

    /* from here on the scenario answers: the judge's own loading and
     * seeding above ran as the engine itself */
    engine_use(E, &rb_mode_scenario);
    snprintf(runbook_chunk, sizeof runbook_chunk, "@%s", rbpath);
    if (rbfile_load(L, rbpath, in) != 0) {
        o->malformed =
            lua_pushfstring(L, "%s: runbook %s: %s", o->path, rbpath, lua_tostring(L, -1));
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.error");
        return 0;
    }
    int rb = lua_gettop(L);
    lua_getfield(L, rb, "meta");
    lua_getfield(L, -1, "name");
    E->runbook_name = lua_tostring(L, -1);
    /* the runbook as the operator names it: relative to here when it is below */
    char real[PATH_MAX], cwd[PATH_MAX];
    if (realpath(rbpath, real) && getcwd(cwd, sizeof cwd) && strncmp(real, cwd, strlen(cwd)) == 0 &&
        real[strlen(cwd)] == '/')
        snprintf(E->path, sizeof E->path, "%s", real + strlen(cwd) + 1);
    else
        snprintf(E->path, sizeof E->path, "%s", rbpath);
    E->params_json = strdup("{}");
    run_opts opts = {0};
    opts.rollback = rollback;
    o->exit_code = runner_run(E, L, rb, &opts);
    fflush(E->out);

    /* the verdict */
    lua_createtable(L, 0, 6);
    lua_pushstring(L, outcome_of(o->exit_code));
    lua_setfield(L, -2, "outcome");
    if (E->failed_index) {
        lua_pushstring(L, E->failed_error);
        lua_setfield(L, -2, "error");
        lua_pushstring(L, E->failed_step);
        lua_setfield(L, -2, "failed_step");
        lua_pushinteger(L, E->failed_index);
        lua_setfield(L, -2, "failed_index");
    }
    lua_getfield(L, rb, "env");
    lua_getfield(L, -1, "state");
    lua_setfield(L, -3, "state");
    lua_pop(L, 1);
    lua_pushlstring(L, o->out ? o->out : "", o->out_len);
    lua_setfield(L, -2, "output");
    rt_call(L, "scenario_verdict", 1, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.failures");
    if (!o->coverage) /* only --coverage reads it, and scanning the source is costly */
        return 0;
    lua_pushstring(L, E->path);
    lua_getfield(L, rb, "steps");
    size_t srclen = 0;
    char *src = rb_read_file(rbpath, &srclen); /* fs is the scenario's scratch world */
    lua_pushlstring(L, src ? src : "", src ? srclen : 0);
    free(src);
    rt_call(L, "scenario_coverage", 3, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.coverage");
    return 0;
}

rb_engine *scenario_engine(const rb_module *modules, char *err, size_t errlen)
{
    rb_engine *E = engine_new(modules, err, errlen);
    if (!E)
        return NULL;
    E->mode = MODE_SCENARIO;
    E->purpose = PURPOSE_RUN;
    E->output = OUT_TEXT;
    E->verbose = 1;
    return E;
}

int scenario_run_one(const rb_module *modules, const char *path)
{
    char err[4096];
    rb_engine *E = scenario_engine(modules, err, sizeof err);
    if (!E) {
        fprintf(stderr, "runbook: %s\n", err);
        return 2;
    }
    int rc = scenario_run(E, path, 1);
    engine_free(E);
    return rc;
}

int scenario_run(rb_engine *E, const char *path, int coverage)
{
    double t0 = rb_now();
    char err[4096];
    one o;
    memset(&o, 0, sizeof o);
    o.path = path;
    o.coverage = coverage;
    rb_new_run_id(E->run_id);
    FILE *capture = open_memstream(&o.out, &o.out_len);
    FILE *real_out = E->out;
    if (capture)
        E->out = capture;
    loop_install_signals();
    lua_State *L = E->L;
    rb_config cfg;
    const char *crash = NULL;
    if (config_load(&cfg, L, E->modules, NULL, 0, err, sizeof err) == 0)
        E->config = &cfg;
    else
        crash = lua_pushstring(L, err);
    lua_pushcfunction(L, prun);
    lua_pushlightuserdata(L, &o);
    if (crash)
        lua_pop(L, 2);
    else if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        crash = engine_errmsg(L, -1);
    if (capture) {
        fclose(capture);
        E->out = real_out;
    }
    if (o.scratch[0])
        nftw(o.scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);

    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "scenario", path);
    jw_kint(&w, "duration_ms", (long long)((rb_now() - t0) * 1000 + 0.5));
    jw_kint(&w, "exit_code", o.exit_code);
    jw_key(&w, "failures");
    jw_arr(&w);
    int ok = 1;
    if (crash) {
        jw_string(&w, crash);
        ok = 0;
    } else if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.scenario.skip") == LUA_TSTRING) {
        jw_string(&w, lua_tostring(L, -1));
        ok = 3;
    } else if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.scenario.error") == LUA_TSTRING) {
        jw_string(&w, lua_tostring(L, -1));
        ok = -1;
    } else if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.scenario.failures") == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            size_t len;
            const char *f = lua_tolstring(L, -1, &len);
            jw_string(&w, rb_redact(L, f, len)); /* the runbook's secrets stay out of CI logs */
            lua_pop(L, 2);
            ok = 0;
        }
    }
    jw_arr_end(&w);
    jw_kstr(&w, "status",
            ok == 3  ? "skipped"
            : ok > 0 ? "passed"
            : ok < 0 ? "malformed"
                     : "failed");
    if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.scenario.coverage") == LUA_TTABLE) {
        jw_key(&w, "coverage");
        jw_lua(&w, L, -1);
    }
    lua_pop(L, 1);
    jw_key(&w, "output");
    jw_string(&w, o.out ? rb_redact(L, o.out, o.out_len) : "");
    jw_obj_end(&w);
    printf("%s\n", jw_str_result(&w));
    fflush(stdout);
    jw_free(&w);
    free(o.out);
    /* cfg lives on this stack */
    E->config = NULL;
    return ok > 0 ? 0 : ok < 0 ? 2 : 1; /* skipped (3) counts as passed here */
}
