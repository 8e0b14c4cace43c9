/*
 * The runner: steps in order, each in its own coroutine on the event loop,
 * with `when`, `timeout`, `continue_on_error`, step-confirm, --from,
 * --resume, --rollback (undo of completed steps, in reverse) and --timeout.
 * It decides the run's outcome and exit code (SPEC §7): 0 success, 1 a step
 * failed or timed out, 3 aborted by the operator, 130 interrupted.
 */
#include "runner.h"
#include "audit.h"
#include "journal.h"
#include "jsonw.h"
#include "loop.h"
#include "prompt.h"
#include "run_locks.h"
#include "util.h"
#include "watchdog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run the function at the top of L (popped) in a task; on failure push the
 * message and return 1, on success push its first result (or nil) and
 * return 0. */
static int call_in_task(lua_State *L, double deadline, const char *why)
{
    rb_task *t = loop_spawn(L, 0, deadline, why);
    loop_wait(L, t);
    int rc;
    if (!t->done) {
        lua_pushliteral(L, "the step did not finish");
        rc = 1;
    } else if (t->failed) {
        const char *msg = engine_errmsg(t->co, -1);
        rb_engine *E = rb_engine_of(L);
        if (E->verbose) {
            luaL_traceback(L, t->co, msg, 0);
        } else {
            lua_pushstring(L, msg);
        }
        rc = 1;
    } else {
        if (t->nres > 0) {
            lua_pushvalue(t->co, -t->nres);
            lua_xmove(t->co, L, 1);
        } else {
            lua_pushnil(L);
        }
        rc = 0;
    }
    loop_task_free(L, t);
    return rc;
}

static int step_field_string(lua_State *L, int step, const char *k, char *buf, size_t n)
{
    buf[0] = '\0';
    if (lua_getfield(L, step, k) == LUA_TSTRING)
        snprintf(buf, n, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return buf[0] != '\0';
}

static int resolve_from(lua_State *L, int steps, int total, const char *from)
{
    char *end;
    long n = strtol(from, &end, 10);
    if (*from && *end == '\0')
        return (n >= 1 && n <= total) ? (int)n : -1;
    for (int i = 1; i <= total; i++) {
        lua_rawgeti(L, steps, i);
        lua_getfield(L, -1, "name");
        int same = strcmp(lua_tostring(L, -1), from) == 0;
        lua_pop(L, 2);
        if (same)
            return i;
    }
    return -1;
}

static int was_done(const run_opts *o, int i)
{
    for (int k = 0; k < o->n_done; k++)
        if (o->done[k] == i)
            return 1;
    return 0;
}

void runner_start(rb_engine *E, double timeout)
{
    E->started = rb_wallclock();
    E->started_mono = rb_now();
    if (timeout > 0) {
        E->run_deadline = E->started_mono + timeout;
        snprintf(E->run_why, sizeof E->run_why, "run timed out after %g s (--timeout)", timeout);
    }
    /* from here a stop must end the run even inside a C call that never
     * returns (the count hook does not run there) */
    watchdog_start(E);
    /* a top level stuck before its run is journaled is recorded with what
     * is known now (no runbook name or path yet) */
    if (watchdog_active())
        watchdog_arm(E, journal_run_fields(E, E->L), 0);
}

int runner_load_stopped(rb_engine *E, lua_State *L, const char *path)
{
    char msg[2048];
    snprintf(msg, sizeof msg, "top-level code: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (E->run_deadline > 0 && rb_now() >= E->run_deadline)
        E->timed_out = 1;
    /* name the run as runner_run would, from what the file declared before
     * it was stopped (nothing, if it was stopped before runbook{}) */
    int base = lua_gettop(L);
    E->runbook_name = path;
    if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.stopped") == LUA_TTABLE) {
        if (lua_getfield(L, base + 1, "meta") == LUA_TTABLE) {
            lua_getfield(L, -1, "name");
            E->runbook_name = lua_tostring(L, -1); /* anchored: the registry holds meta */
            lua_getfield(L, -2, "title");
            E->runbook_title = lua_tostring(L, -1);
        }
        lua_getfield(L, base + 1, "sha256");
        snprintf(E->sha256, sizeof E->sha256, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        if (lua_getfield(L, base + 1, "params") == LUA_TTABLE && !E->params_json) {
            jsonw w; /* as `run` records them (cmd_run.c) */
            jw_init(&w);
            rb_params_json(&w, L, -1);
            E->params_json = strdup(jw_str_result(&w));
            jw_free(&w);
        }
    }
    lua_settop(L, base);
    char real[4096];
    snprintf(E->path, sizeof E->path, "%s", realpath(path, real) ? real : path);
    if (E->started_mono <= 0)
        runner_start(E, 0);
    if (journal_run_start(E, L) != 0) {
        fprintf(stderr, "runbook: cannot write the audit log\n");
        return audit_locked(E->audit) ? 1 : 2; /* locked: the same command works later */
    }
    int interrupted = loop_interrupted() != 0;
    journal_run_end(E, L, interrupted ? "interrupted" : "failed", interrupted ? 130 : 1, msg, 0);
    watchdog_stop();
    return interrupted ? 130 : 1;
}

int runner_run(rb_engine *E, lua_State *L, int rb, const run_opts *o)
{
    rb = lua_absindex(L, rb);
    lua_getfield(L, rb, "steps");
    int steps = lua_gettop(L);
    lua_getfield(L, rb, "env");
    lua_getfield(L, -1, "state");
    int state = lua_gettop(L);
    int total = (int)lua_rawlen(L, steps);

    int from = 1;
    if (o->from) {
        from = resolve_from(L, steps, total, o->from);
        if (from < 0) {
            fprintf(stderr, "runbook: --from %s: no such step (1..%d or a step name)\n", o->from,
                    total);
            return 2;
        }
    }

    if (E->started_mono <= 0) /* else runner_start did, before the file was loaded */
        runner_start(E, o->timeout);
    if (journal_run_start(E, L) != 0) {
        fprintf(stderr, "runbook: cannot write the audit log; nothing was run\n");
        return audit_locked(E->audit) ? 1 : 2; /* locked: the same command works later */
    }
    if (watchdog_active())
        watchdog_arm(E, journal_run_fields(E, L), 1);
    /* after the run's first record: the lock names the run holding it */
    char lock_err[1536];
    if (run_locks_take(E, L, rb, lock_err, sizeof lock_err) != 0) {
        journal_run_end(E, L, "failed", 2, lock_err, 0);
        watchdog_stop();
        lua_settop(L, steps - 1);
        return 2;
    }

    const char *run_why = E->run_why;
    const char *outcome = "success";
    int exit_code = 0;
    const char *run_error = NULL;
    char errbuf[2048] = "";
    int *completed = calloc((size_t)total + 1, sizeof *completed);
    int n_completed = 0;

    for (int i = 1; i <= total; i++) {
        lua_rawgeti(L, steps, i);
        int step = lua_gettop(L);
        char name[512], desc[1024];
        step_field_string(L, step, "name", name, sizeof name);
        lua_getfield(L, step, "opts");
        int opts = lua_gettop(L);
        step_field_string(L, opts, "description", desc, sizeof desc);
        E->step_index = i;
        E->step_name = name;

        if (loop_interrupted()) {
            outcome = "interrupted";
            exit_code = 130;
            run_error = "interrupted";
            lua_settop(L, state);
            break;
        }
        if (E->run_deadline > 0 && rb_now() >= E->run_deadline) {
            E->timed_out = 1;
            outcome = "failed";
            exit_code = 1;
            run_error = "timed out";
            snprintf(errbuf, sizeof errbuf, "%s", run_why);
            lua_settop(L, state);
            break;
        }
        if (i < from) {
            journal_step(E, L, i, total, name, "skipped", 0, 0, "before --from", 0);
            lua_settop(L, state);
            continue;
        }
        if (was_done(o, i)) {
            journal_step(E, L, i, total, name, "skipped", 0, 0, "completed by the resumed run", 0);
            lua_settop(L, state);
            continue;
        }
        /* when: a boolean, or a function evaluated now (it may read the world) */
        int run = 1;
        int wt = lua_getfield(L, opts, "when");
        if (wt == LUA_TBOOLEAN) {
            run = lua_toboolean(L, -1);
            lua_pop(L, 1);
        } else if (wt == LUA_TFUNCTION) {
            if (call_in_task(L, E->run_deadline, run_why) != 0) {
                double now = rb_wallclock();
                lua_pushfstring(L, "when: %s", lua_tostring(L, -1));
                journal_step(E, L, i, total, name, "failed", now, now, lua_tostring(L, -1), state);
                snprintf(errbuf, sizeof errbuf, "step %d \"%s\": %s", i, name, lua_tostring(L, -1));
                E->failed_index = i;
                snprintf(E->failed_step, sizeof E->failed_step, "%s", name);
                outcome = loop_interrupted() ? "interrupted" : "failed";
                exit_code = loop_interrupted() ? 130 : 1;
                run_error = errbuf;
                lua_settop(L, state);
                break;
            }
            run = lua_toboolean(L, -1);
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
        }
        if (!run) {
            journal_step(E, L, i, total, name, "skipped", 0, 0, "when", 0);
            lua_settop(L, state);
            continue;
        }

        /* the mode may ask first (--confirm), after `when`: a step that will
         * not run is never approved */
        int c =
            E->strategy->before_step ? E->strategy->before_step(E, L, i, total, name, desc) : 'y';
        if (c == 's') {
            journal_step(E, L, i, total, name, "declined", 0, 0, "skipped by the operator", 0);
            lua_settop(L, state);
            continue;
        }
        if (c == 'q') {
            journal_step(E, L, i, total, name, "declined", 0, 0, "run aborted by the operator", 0);
            outcome = loop_interrupted() ? "interrupted" : "aborted";
            exit_code = loop_interrupted() ? 130 : 3;
            run_error = loop_interrupted() ? "interrupted" : "aborted by the operator";
            lua_settop(L, state);
            break;
        }

        journal_step_start(E, L, i, total, name, desc);
        run_locks_step(E, i, total, name);
        watchdog_step(i, rb_redact(L, name, strlen(name)), rb_wallclock());
        lua_pop(L, 1);
        double deadline = E->run_deadline;
        const char *why = run_why;
        char step_why[96];
        double st = rb_opt_number(L, opts, "timeout", 0);
        if (st > 0 && (deadline <= 0 || rb_now() + st < deadline)) {
            deadline = rb_now() + st;
            snprintf(step_why, sizeof step_why, "step timed out after %g s", st);
            why = step_why;
        }
        double t0 = rb_wallclock();
        lua_getfield(L, step, "fn");
        int failed = call_in_task(L, deadline, why);
        double t1 = rb_wallclock();
        if (!failed) {
            lua_pop(L, 1);
            journal_step(E, L, i, total, name, "ok", t0, t1, NULL, state);
            completed[n_completed++] = i;
            lua_settop(L, state);
            continue;
        }
        int interrupted = loop_interrupted() != 0;
        if (E->run_deadline > 0 && rb_now() >= E->run_deadline)
            E->timed_out = 1;
        journal_step(E, L, i, total, name, interrupted ? "interrupted" : "failed", t0, t1,
                     lua_tostring(L, -1), state);
        /* the run's error names the step, for the summary and `audit list`;
         * a traceback (-v) stays with the step's own record */
        const char *msg = lua_tostring(L, -1);
        const char *nl = strstr(msg, "\nstack traceback:");
        snprintf(errbuf, sizeof errbuf, "step %d \"%s\": %.*s", i, name,
                 nl ? (int)(nl - msg) : (int)strlen(msg), msg);
        if (!interrupted && rb_opt_bool(L, opts, "continue_on_error", 0)) {
            lua_settop(L, state);
            continue;
        }
        outcome = interrupted ? "interrupted" : "failed";
        exit_code = interrupted ? 130 : 1;
        run_error = errbuf;
        E->failed_index = i;
        snprintf(E->failed_step, sizeof E->failed_step, "%s", name);
        snprintf(E->failed_error, sizeof E->failed_error, "%.*s",
                 nl ? (int)(nl - msg) : (int)strlen(msg), msg);
        lua_settop(L, state);
        break;
    }

    if (exit_code == 1 && o->rollback && n_completed > 0 && !loop_interrupted()) {
        for (int k = n_completed - 1; k >= 0; k--) {
            int i = completed[k];
            lua_rawgeti(L, steps, i);
            int step = lua_gettop(L);
            char name[600], base[512];
            step_field_string(L, step, "name", base, sizeof base);
            snprintf(name, sizeof name, "undo: %s", base);
            lua_getfield(L, step, "opts");
            if (lua_getfield(L, -1, "undo") != LUA_TFUNCTION) {
                lua_settop(L, state);
                continue;
            }
            E->step_index = i;
            E->step_name = name;
            journal_step_start(E, L, i, total, name, NULL);
            double t0 = rb_wallclock();
            int failed = call_in_task(L, 0, NULL);
            double t1 = rb_wallclock();
            journal_step(E, L, i, total, name, failed ? "failed" : "ok", t0, t1,
                         failed ? lua_tostring(L, -1) : NULL, state);
            lua_settop(L, state);
        }
    }
    free(completed);
    E->step_index = 0;
    E->step_name = NULL;
    if (loop_interrupted() && exit_code == 0) {
        outcome = "interrupted";
        exit_code = 130;
    }
    watchdog_step(0, NULL, 0);
    run_locks_release(E);
    journal_run_end(E, L, outcome, exit_code, run_error ? (errbuf[0] ? errbuf : run_error) : NULL,
                    state);
    watchdog_stop(); /* the end is recorded: the watchdog must not record another */
    lua_settop(L, steps - 1);
    return exit_code;
}
