/*
 * `runbook run NAME|FILE`: resolve the runbook, the config, the params and
 * the audit log, then hand the loaded runbook to the runner.  Everything
 * that can be wrong with the input is checked here, before the run record
 * is written and before any step runs (exit 2).
 */
#include "audit.h"
#include "commands.h"
#include "config.h"
#include "engine.h"
#include "jsonw.h"
#include "loop.h"
#include "prompt.h"
#include "rbfile.h"
#include "runner.h"
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
    "                      and not performed; nothing is written but the audit log\n"
    "  --confirm           ask before each step: [y]es, [s]kip, [a]ll, [q]uit\n"
    "  --yes               answer yes to every confirmation (confirm() and --confirm)\n"
    "  --param K=V         set a param (repeat for several; a list as a,b,c or repeated)\n"
    "  --env NAME          use the `environments: NAME` section of runbook.yaml\n"
    "  --config FILE       read FILE instead of ./runbook.yaml\n"
    "  --audit PATH        audit database (default $XDG_STATE_HOME/runbook/audit.db)\n"
    "  --no-audit          do not record this run\n"
    "  --output text|json  human view (default) or one JSON event per line\n"
    "  --from STEP         start at STEP (index or name); earlier steps are recorded skipped\n"
    "  --resume RUN_ID     skip the steps RUN_ID completed and restore its state\n"
    "  --rollback          after a failure, run the `undo` of completed steps in reverse\n"
    "  --timeout S         limit the whole run to S seconds\n"
    "  -v, --verbose       show read actions and tracebacks too\n"
    "\n"
    "Exit codes: 0 success, 1 a step failed or timed out, 2 invalid input,\n"
    "3 aborted by the operator, 130 interrupted.\n";

enum {
    OPT_DRY = 1000,
    OPT_CONFIRM,
    OPT_YES,
    OPT_PARAM,
    OPT_ENV,
    OPT_CONFIG,
    OPT_AUDIT,
    OPT_NO_AUDIT,
    OPT_OUTPUT,
    OPT_FROM,
    OPT_RESUME,
    OPT_ROLLBACK,
    OPT_TIMEOUT,
    OPT_HELP
};

static const struct option run_options[] = {{"dry-run", no_argument, NULL, OPT_DRY},
                                            {"confirm", no_argument, NULL, OPT_CONFIRM},
                                            {"yes", no_argument, NULL, OPT_YES},
                                            {"param", required_argument, NULL, OPT_PARAM},
                                            {"env", required_argument, NULL, OPT_ENV},
                                            {"config", required_argument, NULL, OPT_CONFIG},
                                            {"audit", required_argument, NULL, OPT_AUDIT},
                                            {"no-audit", no_argument, NULL, OPT_NO_AUDIT},
                                            {"output", required_argument, NULL, OPT_OUTPUT},
                                            {"from", required_argument, NULL, OPT_FROM},
                                            {"resume", required_argument, NULL, OPT_RESUME},
                                            {"rollback", no_argument, NULL, OPT_ROLLBACK},
                                            {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, OPT_HELP},
                                            {NULL, 0, NULL, 0}};

/* The flags that are not about a specific runbook, shared with `repl`. */
typedef struct run_args {
    int dry_run, confirm, yes, no_audit, rollback, verbose, json;
    const char *env, *config, *audit, *from, *resume, *target;
    double timeout;
    char **params;
    int n_params;
} run_args;

static int parse(int argc, char **argv, run_args *a)
{
    memset(a, 0, sizeof *a);
    a->params = calloc((size_t)argc + 1, sizeof *a->params);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:v", run_options, NULL)) != -1) {
        switch (c) {
        case OPT_DRY:
            a->dry_run = 1;
            break;
        case OPT_CONFIRM:
            a->confirm = 1;
            break;
        case OPT_YES:
            a->yes = 1;
            break;
        case OPT_PARAM:
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return usage_error("--param %s: expected NAME=VALUE", optarg);
            a->params[a->n_params++] = optarg;
            break;
        case OPT_ENV:
            a->env = optarg;
            break;
        case OPT_CONFIG:
            a->config = optarg;
            break;
        case OPT_AUDIT:
            a->audit = optarg;
            break;
        case OPT_NO_AUDIT:
            a->no_audit = 1;
            break;
        case OPT_OUTPUT:
            if (strcmp(optarg, "json") == 0)
                a->json = 1;
            else if (strcmp(optarg, "text") != 0)
                return usage_error("--output %s: expected text or json", optarg);
            break;
        case OPT_FROM:
            a->from = optarg;
            break;
        case OPT_RESUME:
            a->resume = optarg;
            break;
        case OPT_ROLLBACK:
            a->rollback = 1;
            break;
        case OPT_TIMEOUT: {
            a->timeout = rb_parse_duration(optarg);
            if (a->timeout <= 0)
                return usage_error("--timeout %s: expected seconds (or 90s, 5m, 1h)", optarg);
            break;
        }
        case 'v':
            a->verbose = 1;
            break;
        case OPT_HELP:
            fputs(RUN_HELP, stdout);
            return -1;
        case ':':
            return usage_error("run: %s needs a value (see runbook run --help)", argv[optind - 1]);
        default:
            return usage_error("run: unknown option '%s' (see runbook run --help)",
                               argv[optind - 1]);
        }
    }
    if (optind < argc)
        a->target = argv[optind++];
    /* options after the runbook name are accepted too */
    if (optind < argc) {
        int rest = argc - optind + 1;
        char **sub = argv + optind - 1;
        run_args more;
        char **keep = a->params;
        int kept = a->n_params;
        int rc = parse(rest, sub, &more);
        if (rc != 0) {
            free(more.params);
            return rc;
        }
        const char *target = a->target;
        for (int i = 0; i < more.n_params; i++)
            keep[kept++] = more.params[i];
        free(more.params);
        if (more.target)
            return usage_error("run: one runbook at a time ('%s' and '%s')", target, more.target);
        *a = (run_args){a->dry_run | more.dry_run,
                        a->confirm | more.confirm,
                        a->yes | more.yes,
                        a->no_audit | more.no_audit,
                        a->rollback | more.rollback,
                        a->verbose | more.verbose,
                        a->json | more.json,
                        more.env ? more.env : a->env,
                        more.config ? more.config : a->config,
                        more.audit ? more.audit : a->audit,
                        more.from ? more.from : a->from,
                        more.resume ? more.resume : a->resume,
                        target,
                        more.timeout > 0 ? more.timeout : a->timeout,
                        keep,
                        kept};
    }
    return 0;
}

/* { cli = { k = {v...} }, env = environments[env].params, config = params } */
static int push_params_input(rb_engine *E, lua_State *L, const run_args *a)
{
    lua_createtable(L, 0, 3);
    lua_newtable(L);
    for (int i = 0; i < a->n_params; i++) {
        const char *eq = strchr(a->params[i], '=');
        lua_pushlstring(L, a->params[i], (size_t)(eq - a->params[i])); /* cli key */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TNIL) { /* cli key values */
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, -5);
        }
        lua_pushstring(L, eq + 1);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
    }
    lua_setfield(L, -2, "cli");
    if (a->env) {
        config_push(E->config, L, a->env, "params");
        lua_setfield(L, -2, "env");
    }
    config_push(E->config, L, NULL, "params");
    lua_setfield(L, -2, "config");
    return lua_gettop(L);
}

static int environment_exists(rb_engine *E, lua_State *L, const char *env)
{
    config_push(E->config, L, NULL, "environments");
    int ok = lua_istable(L, -1) && (lua_pushstring(L, env), lua_rawget(L, -2)) == LUA_TTABLE;
    lua_settop(L, 0);
    return ok;
}

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
    if (rbfile_load(L, ctx->path, in) != 0) {
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
    jw_lua(&w, L, -1);
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
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_args a;
    int rc = parse(argc, argv, &a);
    if (rc != 0) {
        free(a.params);
        return rc < 0 ? 0 : rc;
    }
    if (!a.target && !a.resume) {
        free(a.params);
        return usage_error("run: which runbook? (runbook run NAME|FILE; see runbook list)");
    }
    if (a.resume && a.no_audit) {
        free(a.params);
        return usage_error("run: --resume reads the audit log; it cannot be used with --no-audit");
    }

    char err[4096];
    rb_engine *E = engine_new(err, sizeof err);
    if (!E) {
        free(a.params);
        return usage_error("%s", err);
    }
    lua_State *L = E->L;
    rb_config cfg;
    audit_resume res;
    memset(&res, 0, sizeof res);
    E->config = &cfg;
    int exit_code = 2;
    if (config_load(&cfg, L, a.config, a.config != NULL, err, sizeof err) != 0) {
        usage_error("%s", err);
        E->config = NULL;
        goto out;
    }
    if (a.env && !environment_exists(E, L, a.env)) {
        usage_error("--env %s: no such environment in %s", a.env,
                    cfg.path[0] ? cfg.path : "runbook.yaml (there is no runbook.yaml here)");
        goto out;
    }
    E->env_name = a.env;
    E->mode = a.dry_run ? MODE_DRY_RUN : MODE_LIVE;
    E->purpose = PURPOSE_RUN;
    E->output = a.json ? OUT_JSON : OUT_TEXT;
    E->assume_yes = a.yes;
    E->confirm_steps = a.confirm && !a.yes;
    E->verbose = a.verbose;
    E->color = !a.json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (E->confirm_steps && prompt_open_tty(E) != 0) {
        usage_error("--confirm asks on the terminal, and there is none (use --yes to approve "
                    "every step, or run from a terminal)");
        goto out;
    }

    char abuf[4096];
    /* the keys of the --env environment chosen on the command line count as
     * command line (SPEC §7): its `audit:` beats RUNBOOK_AUDIT */
    const char *audit_flag = a.audit;
    int no_audit = a.no_audit;
    char envaudit[4096];
    if (a.env && !a.audit && !a.no_audit) {
        config_push(&cfg, L, a.env, "audit");
        if (lua_type(L, -1) == LUA_TSTRING)
            audit_flag = rb_expand_home(lua_tostring(L, -1), envaudit, sizeof envaudit);
        else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            no_audit = 1;
        lua_pop(L, 1);
    }
    const char *apath = config_audit_path(&cfg, audit_flag, no_audit, abuf, sizeof abuf);
    if (apath) {
        E->audit = audit_open(apath, err, sizeof err);
        if (!E->audit) {
            usage_error("audit: %s", err);
            goto out;
        }
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
        usage_error("no runbook named '%s' (looked for a file, then in ./runbooks, "
                    "RUNBOOK_PATH and the installed library; see runbook list)",
                    a.target);
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
