/* run and repl: flags, params input, config/env/audit (see session.h). */
#include "session.h"
#include "audit.h"
#include "audit_pg.h"
#include "commands.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    OPT_RECORD,
    OPT_MAX_MEMORY,
    OPT_STRICT,
    OPT_AUDIT_WAIT,
    OPT_AUDIT_FALLBACK,
    OPT_WAIT_LOCK,
    OPT_DIFF,
    OPT_HELP
};

static const struct option run_options[] = {
    {"dry-run", no_argument, NULL, OPT_DRY},
    {"confirm", no_argument, NULL, OPT_CONFIRM},
    {"yes", no_argument, NULL, OPT_YES},
    {"param", required_argument, NULL, OPT_PARAM},
    {"env", required_argument, NULL, OPT_ENV},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"audit", required_argument, NULL, OPT_AUDIT},
    {"no-audit", no_argument, NULL, OPT_NO_AUDIT},
    {"audit-wait", required_argument, NULL, OPT_AUDIT_WAIT},
    {"audit-fallback", required_argument, NULL, OPT_AUDIT_FALLBACK},
    {"wait-lock", required_argument, NULL, OPT_WAIT_LOCK},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"from", required_argument, NULL, OPT_FROM},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"rollback", no_argument, NULL, OPT_ROLLBACK},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"record", required_argument, NULL, OPT_RECORD},
    {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
    {"strict", no_argument, NULL, OPT_STRICT},
    {"diff", no_argument, NULL, OPT_DIFF},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

int run_args_parse(int argc, char **argv, run_args *a, const char *cmd, const char *help)
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
        case OPT_STRICT:
            a->strict = 1;
            break;
        case OPT_DIFF:
            if (strcmp(cmd, "run") != 0) /* the REPL's rehearsal (.dry on) shows no diffs */
                return usage_error("%s: --diff is an option of runbook run --dry-run", cmd);
            a->diff = 1;
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
        case OPT_AUDIT_WAIT: {
            double w = rb_parse_duration(optarg);
            if (!(w >= 0 && w <= 86400)) /* NaN fails too */
                return usage_error("--audit-wait %s: expected a duration such as 30s or 2m (0 to "
                                   "not wait, at most 24h)",
                                   optarg);
            a->audit_wait = optarg;
            break;
        }
        case OPT_WAIT_LOCK:
            a->wait_lock = rb_parse_duration(optarg);
            if (!(a->wait_lock > 0 && a->wait_lock <= 86400))
                return usage_error("--wait-lock %s: expected a duration such as 30s or 5m (more "
                                   "than 0, at most 24h)",
                                   optarg);
            break;
        case OPT_AUDIT_FALLBACK:
            if (!*optarg || audit_pg_is_url(optarg))
                return usage_error("--audit-fallback %s: expected the path of a local SQLite log "
                                   "(it is used when the shared log cannot be reached)",
                                   optarg);
            a->audit_fallback = optarg;
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
            if (a->timeout <= 0 || a->timeout > 7 * 86400) /* 1e999 is infinity: a typo */
                return usage_error("--timeout %s: expected a duration of more than 0 and at "
                                   "most 7d (seconds, or 90s, 5m, 1h)",
                                   optarg);
            break;
        }
        case OPT_RECORD:
            a->record = optarg;
            break;
        case OPT_MAX_MEMORY:
            a->max_memory = rb_parse_size(optarg);
            if (a->max_memory < ((size_t)1 << 20))
                return usage_error("--max-memory %s: expected a size of at least 1M (512M, 2G)",
                                   optarg);
            break;
        case 'v':
            a->verbose = 1;
            break;
        case OPT_HELP:
            fputs(help, stdout);
            return -1;
        case ':':
            return usage_error("%s: %s needs a value (see runbook %s --help)", cmd,
                               argv[optind - 1], cmd);
        default: {
            return unknown_getopt_flag(cmd, argv[optind - 1], run_options);
        }
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
        int rc = run_args_parse(rest, sub, &more, cmd, help);
        if (rc != 0) {
            free(more.params);
            return rc;
        }
        const char *target = a->target;
        for (int i = 0; i < more.n_params; i++)
            keep[kept++] = more.params[i];
        free(more.params);
        if (more.target)
            return usage_error("%s: one runbook at a time ('%s' and '%s')", cmd, target,
                               more.target);
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
                        more.record ? more.record : a->record,
                        more.timeout > 0 ? more.timeout : a->timeout,
                        keep,
                        kept,
                        more.max_memory ? more.max_memory : a->max_memory,
                        a->strict | more.strict,
                        more.audit_wait ? more.audit_wait : a->audit_wait,
                        more.audit_fallback ? more.audit_fallback : a->audit_fallback,
                        more.wait_lock > 0 ? more.wait_lock : a->wait_lock,
                        a->diff | more.diff};
    }
    if (a->no_audit && (a->audit || a->audit_wait || a->audit_fallback)) {
        /* which one did the operator mean? */
        const char *other = a->audit        ? "--audit"
                            : a->audit_wait ? "--audit-wait"
                                            : "--audit-fallback";
        return usage_error("%s: --no-audit and %s contradict each other: record the run (drop "
                           "--no-audit) or do not (drop %s)",
                           cmd, other, other);
    }
    return 0;
}

/* The password of a shared log's URL is a secret like any other: no output,
 * audit record or error message shows it. */
static void register_url_password(rb_engine *E, const char *url)
{
    if (!audit_pg_is_url(url))
        return;
    const char *auth = strstr(url, "://") + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon && at > colon + 1) {
        char pw[512];
        snprintf(pw, sizeof pw, "%.*s", (int)(at - colon - 1), colon + 1);
        rb_secret_add_named(E->L, pw, "the audit log's password");
    }
    /* or as a parameter: ?password=... */
    for (const char *q = strchr(url, '?'); q && (q = strstr(q, "password=")); q += 9) {
        if (q[-1] != '?' && q[-1] != '&')
            continue;
        char pw[512];
        snprintf(pw, sizeof pw, "%.*s", (int)strcspn(q + 9, "&#"), q + 9);
        if (pw[0])
            rb_secret_add_named(E->L, pw, "the audit log's password");
    }
    /* libpq's own source of it, when the URL has none */
    const char *env = getenv("PGPASSWORD");
    if (env && *env)
        rb_secret_add_named(E->L, env, "PGPASSWORD (the audit log's password)");
}

int push_params_input(rb_engine *E, lua_State *L, const run_args *a)
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

int session_open(rb_engine *E, rb_config *cfg, const run_args *a)
{
    lua_State *L = E->L;
    char err[4096];
    E->config = cfg;
    if (config_load(cfg, L, E->modules, a->config, a->config != NULL, err, sizeof err) != 0) {
        E->config = NULL;
        return usage_error("%s", err);
    }
    if (a->env && !environment_exists(E, L, a->env))
        return usage_error("--env %s: no such environment in %s", a->env,
                           cfg->path[0] ? cfg->path
                                        : "runbook.yaml (there is no runbook.yaml here)");
    E->env_name = a->env;
    if (a->max_memory)
        E->mem_limit = a->max_memory;
    /* the keys of the --env environment chosen on the command line count as
     * command line (SPEC §7): its `audit:` beats RUNBOOK_AUDIT */
    char abuf[4096], envaudit[4096];
    const char *audit_flag = a->audit;
    int no_audit = a->no_audit;
    if (a->env && !a->audit && !a->no_audit) {
        config_push(cfg, L, a->env, "audit");
        if (lua_type(L, -1) == LUA_TSTRING)
            audit_flag = rb_expand_home(lua_tostring(L, -1), envaudit, sizeof envaudit);
        else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            no_audit = 1;
        lua_pop(L, 1);
    }
    const char *apath = config_audit_path(cfg, audit_flag, no_audit, abuf, sizeof abuf);
    if (apath) {
        /* --audit-wait > the --env environment's audit_wait > the top level's */
        double wait =
            a->audit_wait ? rb_parse_duration(a->audit_wait) : config_audit_wait(cfg, L, a->env);
        int why = 0;
        E->audit =
            audit_open_run(apath, wait >= 0 ? (int)(wait * 1000 + 0.5) : AUDIT_WAIT_DEFAULT_MS,
                           &why, err, sizeof err);
        if (!E->audit && why == AUDIT_LOCKED) {
            /* not a usage error: the same command works once the lock is gone */
            fprintf(stderr, "runbook: %s\nrunbook: nothing was run\n", err);
            return 1;
        }
        if (!E->audit && audit_pg_is_url(apath) && a->audit_fallback) {
            /* the team's log is down: record locally, say so, say how to
             * upload it; never silently */
            char ferr[2048];
            char fb[4096];
            E->audit = audit_open_run(rb_expand_home(a->audit_fallback, fb, sizeof fb),
                                      AUDIT_WAIT_DEFAULT_MS, &why, ferr, sizeof ferr);
            if (!E->audit)
                return usage_error("audit: %s; and the fallback log: %s; nothing was run", err,
                                   ferr);
            fprintf(stderr,
                    "runbook: warning: %s\nrunbook: recording this run in the fallback log %s; "
                    "upload it later with: runbook audit push %s\n",
                    err, fb, fb);
        }
        if (!E->audit)
            return usage_error("audit: %s; nothing was run%s", err,
                               audit_pg_is_url(apath)
                                   ? " (--audit-fallback PATH records in a local log instead)"
                                   : "");
        register_url_password(E, apath);
    }
    E->lock_wait = a->wait_lock;
    return 0;
}
