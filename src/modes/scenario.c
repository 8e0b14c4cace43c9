/*
 * One scenario (SPEC §8), run hermetically: the runbook's every action is
 * answered by the scenario's mocks (the judge, src/lua/scenario.lua in a Lua
 * state of its own -- judge.c -- matches; the call's row turns the mock's
 * response into the call's results), fs works inside a scratch directory
 * seeded from the scenario, sleep and the clocks are virtual, and nothing
 * is audited (but with `runbook test --audit`: cmd_test.c gives the engine
 * a log of the worker's own, which it copies into the operator's).  The verdict -- the run's
 * outcome against the scenario's expectations -- is one JSON line, read by `runbook test`
 * (cmd_test.c), which runs scenarios as child processes, in parallel.
 */
#include "scenario.h"
#include "config.h"
#include "engine.h"
#include "journal.h"
#include "jsonw.h"
#include "judge.h"
#include "landlock.h"
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What the strategy keeps while a scenario runs (E->strategy_data). */
typedef struct judging {
    lua_State *J;           /* the judge (judge.h) */
    char scratch[PATH_MAX]; /* the scratch directory, as the kernel names it */
    char broken[1024];      /* the judge itself failed: the verdict says so */
} judging;

static judging *judging_of(rb_engine *E)
{
    return E->strategy_data;
}

/* The judge's rt.fn(nargs on J's top); 0, or -1 with the judge marked broken
 * (the scenario fails, whatever the runbook does with the error). */
static int jcall(judging *jg, const char *fn, int nargs, int nres)
{
    char err[1024];
    if (judge_call(jg->J, fn, nargs, nres, err, sizeof err) == 0)
        return 0;
    if (!jg->broken[0])
        snprintf(jg->broken, sizeof jg->broken, "%s", err);
    return -1;
}

/* ---- the scenario strategy -------------------------------------------------
 * Every action is answered by the scenario (the judge matches the call's
 * fields against its mocks; the call's row says what a mock may answer and
 * how); sleep moves a virtual clock; confirm() takes the scenario's
 * answers; what is configured nowhere gets a stand-in that no request ever
 * reaches. */

/* s with every "scratch/" made "/" and a bare scratch "": the runbook sees
 * its own paths, in its messages and results */
static void push_unscratched(lua_State *L, const char *s, size_t len, const char *scratch)
{
    size_t sl = strlen(scratch);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *end = s + len; s < end;) {
        const char *hit = sl ? memmem(s, (size_t)(end - s), scratch, sl) : NULL;
        if (!hit) {
            luaL_addlstring(&b, s, (size_t)(end - s));
            break;
        }
        luaL_addlstring(&b, s, (size_t)(hit - s));
        s = hit + sl;
    }
    luaL_pushresult(&b);
}

/* The value at idx with the scratch directory taken out of its strings
 * (tables in place: they are the primitive's fresh results). */
static void unscratch(lua_State *L, int idx, const char *scratch, int depth)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        push_unscratched(L, s, len, scratch);
        lua_replace(L, idx);
    } else if (lua_type(L, idx) == LUA_TTABLE && depth < 16) {
        luaL_checkstack(L, 4, "scenario");
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TTABLE) {
                unscratch(L, -1, scratch, depth + 1);
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, idx);
            } else {
                lua_pop(L, 1);
            }
        }
    }
}

/* A row with path arguments (fs, yaml.load) works for real, inside the
 * scratch directory: each path argument resolved there, and refused -- the
 * scenario failing even if the runbook catches the error -- when it leaves
 * it.  Arguments at 1..nargs, the row at row. */
static int in_scratch_call(lua_State *L, judging *jg, const rb_action *a, int row, int nargs)
{
    const char *last = NULL;
    lua_getfield(L, row, "paths");
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TNUMBER; i++) {
        int k = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (k < 1 || k > nargs || lua_type(L, k) != LUA_TSTRING)
            continue;
        char out[PATH_MAX], why[PATH_MAX + 128];
        if (scratch_resolve(jg->scratch, lua_tostring(L, k), out, sizeof out, why, sizeof why) !=
            0) {
            lua_pushstring(jg->J, why);
            jcall(jg, "scenario_escaped", 1, 0);
            lua_pushstring(L, why);
            return lua_error(L);
        }
        lua_pushstring(L, out);
        lua_replace(L, k);
        last = lua_tostring(L, k);
    }
    lua_pop(L, 2);
    if (a->cls != RB_READ && last)
        rb_mkdir_parents(last); /* the directories the real world had */
    int base = lua_gettop(L);
    lua_getfield(L, row, "raw");
    for (int i = 1; i <= nargs; i++)
        lua_pushvalue(L, i);
    if (lua_pcall(L, nargs, LUA_MULTRET, 0) != LUA_OK) {
        if (lua_type(L, -1) == LUA_TSTRING) { /* the primitive's words, the runbook's paths */
            size_t len;
            const char *msg = lua_tolstring(L, -1, &len);
            push_unscratched(L, msg, len, jg->scratch);
        }
        return lua_error(L);
    }
    for (int i = base + 1; i <= lua_gettop(L); i++)
        unscratch(L, i, jg->scratch, 0);
    return lua_gettop(L) - base;
}

/* What a row without its own answer hook returns for the response r:
 * respond.error raises in the primitive's words ("docker restart web: ..."),
 * json or result is the result, anything else the response itself. */
static int default_answer(lua_State *L, const rb_action *a, int r)
{
    if (lua_getfield(L, r, "error") != LUA_TNIL) {
        const char *why = luaL_tolstring(L, -1, NULL);
        size_t pl = strlen(a->primitive);
        if (strncmp(a->words, a->primitive, pl) == 0 && a->words[pl] == ' ')
            lua_pushfstring(L, "%s: %s", a->words, why);
        else
            lua_pushfstring(L, "%s %s: %s", a->primitive, a->words, why);
        return lua_error(L);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, r, "json") != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (lua_getfield(L, r, "result") != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    lua_pushnil(L);
    if (lua_next(L, r))
        lua_pop(L, 2);
    else { /* an empty response: it went fine */
        lua_pushboolean(L, 1);
        lua_setfield(L, r, "ok");
    }
    lua_pushvalue(L, r);
    return 1;
}

/* Called in place of every primitive, with the call's arguments. */
static int answer(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    judging *jg = judging_of(E);
    const rb_action *a = E->answering;
    int nargs = lua_gettop(L);
    rb_push_row(L, a->primitive, a->fn);
    int row = nargs + 1;
    if (lua_getfield(L, row, "paths") == LUA_TTABLE) {
        lua_pop(L, 1);
        return in_scratch_call(L, jg, a, row, nargs);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, row, "stand_in") == LUA_TFUNCTION) { /* db.open */
        for (int i = 1; i <= nargs; i++)
            lua_pushvalue(L, i);
        lua_call(L, nargs, LUA_MULTRET);
        return lua_gettop(L) - row;
    }
    lua_pop(L, 1);

    /* the judge matches a copy of the call; its response comes back as a
     * copy the runbook may do with what it likes */
    rb_push_action_info(L, a);
    int info = lua_gettop(L);
    judge_copy(L, info, jg->J, 0);
    if (jcall(jg, "scenario_match", 1, 2) != 0)
        return luaL_error(L, "%s", jg->broken);
    if (lua_isnil(jg->J, -2)) { /* no mock answers: the judge noted it */
        judge_copy(jg->J, -1, L, 0);
        lua_pop(jg->J, 2);
        return lua_error(L);
    }
    judge_copy(jg->J, -2, L, 0);
    lua_pop(jg->J, 2);
    int r = lua_gettop(L);
    if (lua_getfield(L, row, "answer") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return default_answer(L, a, r);
    }
    lua_pushvalue(L, r);
    lua_pushvalue(L, info);
    for (int i = 1; i <= nargs; i++)
        lua_pushvalue(L, i);
    lua_call(L, nargs + 2, LUA_MULTRET); /* raises as the live call would */
    return lua_gettop(L) - r;
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
    (void)L;
    judging *jg = judging_of(E);
    *how = "scenario";
    lua_pushstring(jg->J, question);
    if (jcall(jg, "scenario_confirm", 1, 1) != 0)
        return 0;
    int yes = lua_toboolean(jg->J, -1);
    lua_pop(jg->J, 1);
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
    judging *jg = judging_of(E);
    lua_State *J = jg->J;
    lua_pushstring(J, a->words);
    lua_pushstring(J, a->cls == RB_READ ? "read" : "mutate");
    lua_pushstring(J, r->status);
    lua_pushinteger(J, runbook_line(co)); /* for coverage */
    jcall(jg, "scenario_action", 4, 0);
}

static void step_done(rb_engine *E, int index, const char *name, const char *status)
{
    judging *jg = judging_of(E);
    lua_pushinteger(jg->J, index);
    lua_pushstring(jg->J, name);
    lua_pushstring(jg->J, status);
    jcall(jg, "scenario_step", 3, 0);
}

typedef struct one {
    const char *path;
    judging jg;
    char *out; /* the run's human view, captured */
    size_t out_len;
    int exit_code;
    int coverage; /* judge the runbook's coverage too (--coverage wants it) */
    /* what the verdict says beyond the judge's failures (NULL: nothing) */
    const char *malformed; /* the scenario itself is wrong */
    const char *skip;      /* skip: its reason */
    const char *stopped;   /* the runbook was stopped before its steps */
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
    /* the library the scenario belongs to, not the working directory's */
    rbfile_use_root_of(NULL, scenario);
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

/* A scenario's process that outlives its deadline by far -- stuck where no
 * Lua hook reaches, in C or in the judge -- is ended by the kernel: SIGALRM,
 * whose default action terminates it (the engine never handles it).  A
 * process that runs scenarios is theirs (a worker, or --one's child): the
 * one that starts it reports a scenario whose process died. */
static void arm_backstop(rb_engine *E)
{
    if (E->run_deadline <= 0)
        return;
    double left = E->run_deadline - rb_now();
    signal(SIGALRM, SIG_DFL);
    alarm(left > 0 ? (unsigned)left + 10 : 10);
}

/* The judge's rt.fn(nargs) in prun: its failure fails the scenario there */
static void jcall_or_raise(lua_State *L, judging *jg, const char *fn, int nargs, int nres)
{
    if (jcall(jg, fn, nargs, nres) != 0)
        luaL_error(L, "%s", jg->broken);
}

/* Load the scenario, seed its scratch directory, run the runbook under it
 * and ask the judge for the verdict (in its registry: runbook.failures and
 * runbook.coverage).  Protected: in the runbook's state, L. */
static int prun(lua_State *L)
{
    one *o = lua_touserdata(L, 1);
    rb_engine *E = rb_engine_of(L);
    lua_State *J = o->jg.J;

    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", o->path);
    lua_pushstring(J, dirname(copy));
    jcall_or_raise(L, &o->jg, "scenario_dir", 1, 0);
    lua_pushstring(J, o->path);
    jcall_or_raise(L, &o->jg, "scenario_load", 1, 2);
    if (lua_isnil(J, -2)) {
        const char *msg = lua_tostring(J, -1);
        o->malformed = strncmp(msg, o->path, strlen(o->path)) == 0
                           ? lua_pushstring(L, msg)
                           : lua_pushfstring(L, "%s: %s", o->path, msg);
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.error"); /* anchored */
        return 0;
    }
    lua_pop(J, 1);
    int jsc = lua_gettop(J);
    /* what the engine needs of it, as the runbook's data */
    judge_copy(J, jsc, L, 0);
    int sc = lua_gettop(L);
    if (lua_getfield(L, sc, "skip") == LUA_TSTRING) {
        o->skip = lua_tostring(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.skip"); /* anchored */
        return 0;
    }
    lua_pop(L, 1);
    lua_getfield(L, sc, "rollback");
    int rollback = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, sc, "timeout") == LUA_TSTRING) { /* its own, over --scenario-timeout */
        double t = rb_parse_duration(lua_tostring(L, -1));
        E->run_deadline = rb_now() + t;
        snprintf(E->run_why, sizeof E->run_why, "timed out after %s (timeout: of the scenario)",
                 lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    /* `now:` starts the run's clock there: now(), os.time, os.date and the
     * seeds' ages read real time plus vclock, which sleeps then move.  Set
     * before seeding, so an fs seed's age_days counts back from it too. */
    if (lua_getfield(L, sc, "now") == LUA_TNUMBER)
        E->vclock = lua_tonumber(L, -1) - rb_wallclock();
    lua_pop(L, 1);
    arm_backstop(E);

    /* fs works for real, under the scratch directory seeded from `fs:` */
    lua_pushstring(J, o->jg.scratch);
    lua_getfield(J, jsc, "fs");
    lua_pushnumber(J, rb_wallclock() + E->vclock);
    jcall_or_raise(L, &o->jg, "scenario_scratch", 3, 1);
    if (lua_isstring(J, -1)) { /* a seed's path outside the scratch directory, say */
        const char *msg = lua_tostring(J, -1);
        o->malformed = strncmp(msg, o->path, strlen(o->path)) == 0
                           ? lua_pushstring(L, msg)
                           : lua_pushfstring(L, "%s: fs: %s", o->path, msg);
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.error");
        return 0;
    }
    lua_settop(J, 0);
    /* runbook.yaml (notify endpoints, readonly_commands, kubectl defaults)
     * and the scenario's `env:` environment, as `run` would use them */
    if (lua_getfield(L, sc, "env") == LUA_TSTRING)
        E->env_name = lua_tostring(L, -1); /* anchored: sc stays on the stack */
    lua_pop(L, 1);

    lua_getfield(L, sc, "runbook");
    char rbpath[PATH_MAX];
    if (scenario_find_runbook(o->path, lua_tostring(L, -1), rbpath, sizeof rbpath) != 0) {
        lua_getfield(L, sc, "runbook_line");
        int line = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        o->malformed = lua_pushfstring(L, "%s:%d: runbook: no runbook named '%s'", o->path,
                                       line > 0 ? line : 1, lua_tostring(L, -1));
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

    /* a scenario runs in its library's root, whatever the working directory
     * of `runbook test`: a runbook's relative paths (a compose file, ./logs)
     * then mean what they mean in the checkout, from / as from CI
     * (scenario_run gives the directory back) */
    char here[PATH_MAX], abs[PATH_MAX];
    const char *root = rbfile_root();
    if (root[0] && getcwd(here, sizeof here) && strcmp(here, root) != 0 && realpath(rbpath, abs) &&
        chdir(root) == 0)
        snprintf(rbpath, sizeof rbpath, "%s", abs);

    /* from here on the scenario answers: the judge's own loading and
     * seeding above ran as the engine itself */
    engine_use(E, &rb_mode_scenario);
    snprintf(runbook_chunk, sizeof runbook_chunk, "@%s", rbpath);
    int loaded = rbfile_load(L, rbpath, in);
    if (loaded == RBFILE_STOPPED) { /* its top level ran out of time or memory */
        if (E->run_deadline > 0 && rb_now() >= E->run_deadline)
            E->timed_out = 1;
        o->stopped = lua_pushfstring(L, "runbook %s: %s", rbpath, lua_tostring(L, -1));
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.scenario.stopped");
        return 0;
    }
    if (loaded != 0) {
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

    /* the verdict, from what C saw of the run; only the final state is the
     * runbook's own data (copied) */
    lua_createtable(J, 0, 6);
    lua_pushstring(J, outcome_of(o->exit_code));
    lua_setfield(J, -2, "outcome");
    if (E->failed_index) {
        lua_pushstring(J, E->failed_error);
        lua_setfield(J, -2, "error");
        lua_pushstring(J, E->failed_step);
        lua_setfield(J, -2, "failed_step");
        lua_pushinteger(J, E->failed_index);
        lua_setfield(J, -2, "failed_index");
    }
    lua_getfield(L, rb, "env");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "state");
        judge_copy(L, -1, J, 0);
        lua_setfield(J, -2, "state");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushlstring(J, o->out ? o->out : "", o->out_len);
    lua_setfield(J, -2, "output");
    jcall_or_raise(L, &o->jg, "scenario_verdict", 1, 1);
    lua_setfield(J, LUA_REGISTRYINDEX, "runbook.failures");
    if (!o->coverage) /* only --coverage reads it, and scanning the source is costly */
        return 0;
    lua_pushstring(J, E->path);
    lua_getfield(L, rb, "steps");
    judge_copy(L, -1, J, 0);
    lua_pop(L, 1);
    size_t srclen = 0;
    char *src = rb_read_file(rbpath, &srclen); /* fs is the scenario's scratch world */
    lua_pushlstring(J, src ? src : "", src ? srclen : 0);
    free(src);
    jcall_or_raise(L, &o->jg, "scenario_coverage", 3, 1);
    lua_setfield(J, LUA_REGISTRYINDEX, "runbook.coverage");
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
    int rc = scenario_run(E, path, 1, NULL);
    engine_free(E);
    return rc;
}

/* The verdict line: {scenario, duration_ms, exit_code, failures, status,
 * coverage?, output}, redacted with the runbook's secrets. */
static int print_verdict(rb_engine *E, one *o, const char *crash, double t0)
{
    lua_State *L = E->L, *J = o->jg.J;
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "scenario", o->path);
    jw_kint(&w, "duration_ms", (long long)((rb_now() - t0) * 1000 + 0.5));
    jw_kint(&w, "exit_code", o->exit_code);
    jw_key(&w, "failures");
    jw_arr(&w);
    int ok = 1;
    if (o->jg.broken[0]) { /* the judge failed: never a pass */
        jw_string(&w, o->jg.broken);
        ok = 0;
    } else if (crash) {
        jw_string(&w, crash);
        ok = 0;
    } else if (E->timed_out) { /* past its time limit: an error, whatever it expected */
        jw_string(&w, E->run_why[0] ? E->run_why : "timed out");
        ok = -2;
    } else if (o->stopped) {
        jw_string(&w, o->stopped);
        ok = 0;
    } else if (o->skip) {
        jw_string(&w, o->skip);
        ok = 3;
    } else if (o->malformed) {
        jw_string(&w, o->malformed);
        ok = -1;
    } else if (lua_getfield(J, LUA_REGISTRYINDEX, "runbook.failures") == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(J, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(J, -1, i);
            size_t len;
            const char *f = lua_tolstring(J, -1, &len);
            jw_string(&w, rb_redact(L, f ? f : "?", f ? len : 1)); /* secrets stay out of CI logs */
            lua_pop(L, 1);
            lua_pop(J, 1);
            ok = 0;
        }
    } else {
        jw_string(&w, "the scenario was not judged");
        ok = 0;
    }
    jw_arr_end(&w);
    jw_kstr(&w, "status",
            ok == 3    ? "skipped"
            : ok > 0   ? "passed"
            : ok == -2 ? "error"
            : ok < 0   ? "malformed"
                       : "failed");
    if (lua_getfield(J, LUA_REGISTRYINDEX, "runbook.coverage") == LUA_TTABLE) {
        judge_copy(J, -1, L, 0);
        jw_key(&w, "coverage");
        jw_lua(&w, L, -1);
        lua_pop(L, 1);
    }
    lua_settop(J, 0);
    jw_key(&w, "output");
    jw_string(&w, o->out ? rb_redact(L, o->out, o->out_len) : "");
    jw_obj_end(&w);
    printf("%s\n", jw_str_result(&w));
    fflush(stdout);
    jw_free(&w);
    return ok > 0 ? 0 : ok == -1 ? 2 : 1; /* skipped (3) counts as passed here */
}

/* The scenario in this process, its verdict on out (a descriptor the
 * runbook cannot reach: its own stdout is /dev/null meanwhile). */
static int run_here(rb_engine *E, one *o, int out)
{
    double t0 = rb_now();
    char err[4096];
    FILE *capture = open_memstream(&o->out, &o->out_len);
    if (capture)
        E->out = capture;
    loop_install_signals();
    lua_State *L = E->L;
    rb_config cfg;
    const char *crash = NULL;
    o->jg.J = judge_new(L); /* before any of the runbook's code runs */
    E->strategy_data = &o->jg;
    if (!o->jg.J)
        crash = "the scenario judge could not start (out of memory?)";
    else if (config_load(&cfg, L, E->modules, NULL, 0, err, sizeof err) == 0)
        E->config = &cfg;
    else
        crash = lua_pushstring(L, err);
    if (!crash) {
        lua_pushcfunction(L, prun);
        lua_pushlightuserdata(L, o);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK)
            crash = engine_errmsg(L, -1);
    }
    if (capture) {
        fclose(capture);
        E->out = stdout;
    }
    fflush(stdout); /* what the runbook wrote there goes to /dev/null */
    dup2(out, STDOUT_FILENO);
    alarm(0); /* the next scenario of a worker has its own */
    int rc = o->jg.J ? print_verdict(E, o, crash, t0) : 1;
    judge_free(o->jg.J);
    o->jg.J = NULL;
    E->strategy_data = NULL;
    E->config = NULL; /* cfg lives on this stack */
    free(o->out);
    return rc;
}

int scenario_confine(const char *scratch)
{
    return scenario_confine_also(scratch, NULL);
}

int scenario_confine_also(const char *scratch, const char *also)
{
    const char *writable[] = {scratch, "/dev/null", also, NULL};
    return rb_landlock_confine(writable, RB_LL_NO_NET | RB_LL_SCOPE);
}

/* A scenario alone (--one) in a child process the kernel confines
 * (scenario_confine, where the kernel has Landlock).  A confinement is for
 * good, so not this process: it waits for the child and cleans up after it
 * (the scratch directory itself is not the child's to remove).  Workers of
 * `runbook test` are confined once, to a scratch directory of their own,
 * and run scenario after scenario in it (cmd_test.c). */
static int run_confined(rb_engine *E, one *o, int out)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return run_here(E, o, out); /* as hermetic as the judge makes it, no more */
    if (pid == 0) {
        /* a worker that dies takes its scenario with it (or the scenario
         * would hold the worker's socket, and `runbook test` would wait) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(1);
        if (scenario_confine(o->jg.scratch) != 0 &&
            rb_landlock_abi() > 0) { /* the kernel has it, and it failed: say so, run nothing */
            dup2(out, STDOUT_FILENO);
            fprintf(stderr, "runbook: test: cannot confine the scenario: %s\n",
                    rb_landlock_why_not());
            _exit(2);
        }
        int rc = run_here(E, o, out);
        engine_free(E);
        _exit(rc);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WTERMSIG(status) == SIGALRM)
        fprintf(stderr, "runbook: test: %s: %s, and did not stop: killed\n", o->path,
                E->run_why[0] ? E->run_why : "timed out");
    else
        fprintf(stderr, "runbook: test: %s: the scenario runner died (signal %d)\n", o->path,
                WTERMSIG(status));
    return 1;
}

int scenario_run(rb_engine *E, const char *path, int coverage, const char *scratch)
{
    one o;
    memset(&o, 0, sizeof o);
    o.path = path;
    o.coverage = coverage;
    rb_new_run_id(E->run_id);
    /* the verdict's descriptor, then the runbook's stdout is /dev/null: no
     * io.write of a runbook's can pass for a verdict */
    fflush(stdout);
    int out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (out < 0 || devnull < 0 || dup2(devnull, STDOUT_FILENO) < 0) {
        fprintf(stderr, "runbook: test: %s\n", strerror(errno));
        return 2;
    }
    close(devnull);
    int home = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* a scenario may move (run_one) */
    char own[PATH_MAX];
    snprintf(own, sizeof own, "%s/runbook-scenario.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int rc = 2;
    if (!(scratch || (scratch = mkdtemp(own))) || !realpath(scratch, o.jg.scratch)) {
        dup2(out, STDOUT_FILENO);
        fprintf(stderr, "runbook: test: cannot create a scratch directory: %s\n", strerror(errno));
    } else if (scratch == own) { /* alone (--one): a confined process of its own */
        rc = run_confined(E, &o, out);
        rb_remove_tree(scratch, 0);
    } else { /* a worker, confined to scratch already */
        rc = run_here(E, &o, out);
        rb_remove_tree(scratch, 1); /* the directory itself is not its to remove */
    }
    if (home >= 0) {
        if (fchdir(home) != 0)
            rc = 2;
        close(home);
    }
    close(out);
    return rc;
}
