/*
 * `runbook run NAME|FILE`: resolve the runbook, the config, the params and
 * the audit log, then hand the loaded runbook to the runner.  Everything
 * that can be wrong with the input is checked here, before the run record
 * is written and before any step runs (exit 2).
 */
#include "audit.h"
#include "commands.h"
#include "config.h"
#include "dry_run.h"
#include "engine.h"
#include "jsonw.h"
#include "landlock.h"
#include "library.h"
#include "loop.h"
#include "modules.h"
#include "prompt.h"
#include "rbfile.h"
#include "record.h"
#include "runner.h"
#include "session.h"
#include "util.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char RUN_HELP[] =
    "usage: runbook run NAME|FILE [options]\n"
    "\n"
    "Run a runbook's steps.  Every action is recorded in the audit log.\n"
    "\n"
    "  --dry-run           read-only actions run, mutating ones are shown as `would: ...`\n"
    "                      and not performed; nothing is written but the audit log; the\n"
    "                      run ends with the plan: every change, numbered, with its step\n"
    "  --confirm           ask before each step: [y]es, [s]kip, [a]ll, [q]uit\n"
    "  --yes               answer yes to every confirmation (confirm() and --confirm)\n"
    "  --param K=V         set a param (repeat for several; a list as a,b,c or repeated)\n"
    "  --env NAME          use the `environments: NAME` section of runbook.yaml\n"
    "  --config FILE       read FILE instead of ./runbook.yaml\n"
    "  --audit PATH|URL    audit database (default $XDG_STATE_HOME/runbook/audit.db),\n"
    "                      or a team's shared log: postgres://user@host/db\n"
    "  --no-audit          do not record this run\n"
    "  --audit-fallback P  a local log for when the shared (postgres://) log is down\n"
    "  --wait-lock D       wait up to D (30s, 5m) for a run lock another run holds\n"
    "  --audit-wait D      wait up to D (30s, 2m; default 30s) for another process's\n"
    "                      lock on the audit log, then exit 1 naming it\n"
    "  --output text|json  human view (default) or one JSON event per line\n"
    "  --from STEP         start at STEP (index or name); earlier steps are recorded skipped\n"
    "  --resume RUN_ID     skip the steps RUN_ID completed and restore its state\n"
    "  --rollback          after a failure, run the `undo` of completed steps in reverse\n"
    "  --timeout S         limit the whole run to S seconds (90s, 5m; at most 7d), the\n"
    "                      runbook file's top-level code included\n"
    "  --max-memory SIZE   limit the runbook's Lua to SIZE (512M, 2G; default 1G): past it\n"
    "                      the step fails instead of taking the machine's memory\n"
    "  --strict            with --dry-run: refuse to start (exit 2) unless the kernel\n"
    "                      enforces it (Landlock); without it such a dry-run only warns\n"
    "  --diff              with --dry-run: show each fs.write/fs.append as a unified diff\n"
    "                      against the file's current content (the file is only read)\n"
    "  --record FILE       write the run as a scenario for `runbook test`: reads become\n"
    "                      mocks with their real responses, mutations expectations\n"
    "  -v, --verbose       show read actions and tracebacks too\n"
    "\n"
    "Exit codes: 0 success, 1 a step failed or timed out (or the audit log stayed\n"
    "locked), 2 invalid input, 3 aborted by the operator, 130 interrupted.\n";

/* --resume: put the earlier run's state into the runbook's state table */
static int restore_state(lua_State *L, int rb, const char *json)
{
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "decode");
    lua_pushstring(L, json);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        lua_pop(L, 2);
        return -1;
    }
    lua_getfield(L, rb, "env");
    lua_getfield(L, -1, "state");
    lua_pushnil(L);
    while (lua_next(L, -4)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_pop(L, 4);
    return 0;
}

typedef struct run_ctx {
    run_args *a;
    audit_resume *res;
    const char *path;
    int exit_code;
} run_ctx;

static int prun(lua_State *L)
{
    run_ctx *ctx = lua_touserdata(L, 1);
    run_args *a = ctx->a;
    audit_resume *res = ctx->res;
    rb_engine *E = rb_engine_of(L);
    ctx->exit_code = 2;
    int in = push_params_input(E, L, a);
    if (a->record)
        record_start(E);
    if (a->dry_run) /* over --record's layer: both see every action */
        dry_run_collect(E, a->diff);
    /* everything a dry-run writes is open or known by now: from here on the
     * kernel refuses the engine every other write (before the runbook's
     * file runs: its top level may act too) */
    if (a->dry_run && dry_run_confine(E, a->record) != 0 && a->strict) {
        usage_error("--strict: this dry-run cannot be enforced by the kernel (%s); nothing was run",
                    rb_landlock_why_not());
        return 0;
    }
    runner_start(E, a->timeout); /* --timeout covers the file's top level too */
    int loaded = rbfile_load(L, ctx->path, in);
    if (loaded == RBFILE_STOPPED) {
        ctx->exit_code = runner_load_stopped(E, L, ctx->path);
        return 0;
    }
    if (loaded != 0) {
        usage_error("%s", lua_tostring(L, -1));
        return 0;
    }
    int rb = lua_gettop(L);
    lua_getfield(L, rb, "meta");
    lua_getfield(L, -1, "name");
    E->runbook_name = lua_tostring(L, -1); /* anchored: meta stays on the stack */
    lua_getfield(L, -2, "title");
    E->runbook_title = lua_tostring(L, -1);
    char real[PATH_MAX];
    snprintf(E->path, sizeof E->path, "%s", realpath(ctx->path, real) ? real : ctx->path);
    lua_getfield(L, rb, "sha256");
    snprintf(E->sha256, sizeof E->sha256, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, rb, "params");
    jsonw w;
    jw_init(&w);
    rb_params_json(&w, L, -1); /* secret params by declaration */
    E->params_json = strdup(jw_str_result(&w));
    jw_free(&w);
    lua_pop(L, 1);
    if (a->resume && res->runbook && strcmp(res->runbook, E->runbook_name) != 0) {
        usage_error("--resume %s: that run was of runbook '%s', not '%s'", a->resume, res->runbook,
                    E->runbook_name);
        return 0;
    }
    if (a->resume && restore_state(L, rb, res->state_json ? res->state_json : "{}") != 0) {
        usage_error("--resume %s: the recorded state cannot be restored", a->resume);
        return 0;
    }
    run_opts o = {a->from, a->rollback, a->timeout, res->done, res->n_done};
    ctx->exit_code = runner_run(E, L, rb, &o);
    if (a->dry_run) /* after the summary line, or the last event */
        dry_run_show_plan(E, L, ctx->exit_code);
    if (a->record && record_finish(E, L, rb, a->record, ctx->exit_code) != 0 && ctx->exit_code == 0)
        ctx->exit_code = 1;
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_args a;
    int rc = run_args_parse(argc, argv, &a, "run", RUN_HELP);
    if (rc != 0) {
        free(a.params);
        return rc < 0 ? 0 : rc;
    }
    if (!a.target && !a.resume) {
        free(a.params);
        return usage_error("run: which runbook? (runbook run NAME|FILE; see runbook list)");
    }
    if (a.strict && !a.dry_run) {
        free(a.params);
        return usage_error("run: --strict applies to a --dry-run (it refuses one the kernel "
                           "cannot enforce)");
    }
    if (a.diff && !a.dry_run) {
        free(a.params);
        return usage_error("run: --diff shows what a --dry-run would write; it needs --dry-run "
                           "(a live run writes instead)");
    }
    if (a.strict && rb_landlock_abi() == 0) {
        free(a.params);
        return usage_error("run --strict: this dry-run cannot be enforced by the kernel "
                           "(no Landlock); nothing was run");
    }
    if (a.resume && a.no_audit) {
        free(a.params);
        return usage_error("run: --resume reads the audit log; it cannot be used with --no-audit");
    }
    char err[4096];
    if (a.record && record_check(a.record, err, sizeof err) != 0) { /* not after every action */
        free(a.params);
        return usage_error("run: %s; nothing was run", err);
    }

    rb_engine *E = engine_new(rb_builtin_modules, err, sizeof err);
    if (!E) {
        free(a.params);
        return usage_error("%s", err);
    }
    lua_State *L = E->L;
    rb_config cfg;
    audit_resume res;
    memset(&res, 0, sizeof res);
    int exit_code = 2;
    if ((exit_code = session_open(E, &cfg, &a)) != 0)
        goto out;
    /* require_plan: live only through `runbook apply` (cmd_plan.c) */
    if (!a.dry_run && (exit_code = plan_gate_run(E, a.env, a.target)) != 0)
        goto out;
    exit_code = 2;
    E->mode = a.dry_run ? MODE_DRY_RUN : MODE_LIVE;
    engine_use(E, a.dry_run ? &rb_mode_dry_run : &rb_mode_live);
    E->purpose = PURPOSE_RUN;
    E->output = a.json ? OUT_JSON : OUT_TEXT;
    E->assume_yes = a.yes;
    E->confirm_steps = a.confirm && !a.yes;
    if (E->confirm_steps)
        engine_decorate(E, &rb_mode_confirm);
    E->verbose = a.verbose;
    E->color = !a.json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (E->confirm_steps && prompt_open_tty(E) != 0) {
        usage_error("--confirm asks on the terminal, and there is none (use --yes to approve "
                    "every step, or run from a terminal)");
        goto out;
    }

    if (a.resume) {
        if (!E->audit) {
            usage_error("--resume reads the audit log, which is turned off in the config");
            goto out;
        }
        if (audit_load_resume(E->audit, a.resume, &res, err, sizeof err) != 0) {
            usage_error("--resume %s: %s", a.resume, err);
            goto out;
        }
        snprintf(E->resumed_from, sizeof E->resumed_from, "%s", res.run_id);
        if (!a.target)
            a.target = res.path;
    }

    char path[4096];
    if (rbfile_find(a.target, path, sizeof path) != 0) {
        no_such_runbook(a.target);
        goto out;
    }
    rb_new_run_id(E->run_id);
    loop_install_signals();
    run_ctx ctx = {&a, &res, path, 2};
    /* everything that touches Lua runs protected, as lua.c's pmain does */
    lua_pushcfunction(L, prun);
    lua_pushlightuserdata(L, &ctx);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        usage_error("%s", engine_errmsg(L, -1));
        ctx.exit_code = 2;
    }
    exit_code = ctx.exit_code;
out:
    if (E->audit)
        audit_close(E->audit);
    E->audit = NULL;
    audit_resume_free(&res);
    engine_free(E);
    free(a.params);
    return exit_code;
}
