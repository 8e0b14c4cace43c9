/*
 * `runbook plan`, `runbook approve`, `runbook apply`: a change reviewed
 * before it is made, and made exactly as reviewed (Terraform's saved plan,
 * for an imperative runbook).
 *
 * plan runs the dry-run and writes what it would change -- every change in
 * order with its step and structured fields, a digest of every read's
 * answer, the runbook's sha256 and library commit, the params (secrets as
 * ****) and the environment -- as a JSON file whose canonical form
 * (json.encode: keys sorted, no spaces) hashes to the plan's id, and
 * records a "plan" record in the audit log.  approve records an "approval"
 * of that id by an operator other than the planner.  apply refuses a plan
 * whose runbook or params changed, then runs live under src/modes/apply.c,
 * which lets only the planned changes happen, in order.
 *
 * Who is who is decided by the log: on a log that knows database roles
 * (audit_role() non-NULL: PostgreSQL) the role that wrote the plan record
 * and the role of this connection; on a local SQLite log the OS account
 * (rb_username(): real credentials, never USER or LOGNAME).
 */
#include "audit.h"
#include "commands.h"
#include "config.h"
#include "dry_run.h"
#include "engine.h"
#include "jsonw.h"
#include "library.h"
#include "loop.h"
#include "modules.h"
#include "provenance.h"
#include "rbfile.h"
#include "runner.h"
#include "session.h"
#include "util.h"
#include "yamlconv.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLAN_FORMAT "runbook-plan/1"
#define PLAN_KEPT   "runbook.plan.file" /* the plan being approved or applied */

static const char PLAN_HELP[] =
    "usage: runbook plan NAME|FILE -o FILE [options]\n"
    "\n"
    "Run the runbook's dry-run and write what a live run would change, as a plan\n"
    "for `runbook approve` and `runbook apply`.  The plan's id is recorded in the\n"
    "audit log with who made it.  No plan is written when the dry-run fails.\n"
    "\n"
    "  -o, --out FILE      write the plan to FILE (JSON)\n"
    "  --param K=V         set a param (repeat for several)\n"
    "  --env NAME          use the `environments: NAME` section of runbook.yaml\n"
    "  --config FILE       read FILE instead of ./runbook.yaml\n"
    "  --audit PATH        audit log (default: as `runbook run`)\n"
    "  --audit-wait D      wait up to D for another process's lock on the audit log\n"
    "  --yes               answer yes to the runbook's confirm() questions\n"
    "  --timeout S         limit the dry-run to S seconds (90s, 5m)\n"
    "  -v, --verbose       show read actions too\n"
    "\n"
    "Exit codes: 0 plan written, 1 the dry-run failed, 2 invalid input.\n";

static const char APPROVE_HELP[] =
    "usage: runbook approve FILE [options]\n"
    "\n"
    "Approve the plan in FILE: record in the audit log that you approve exactly\n"
    "this plan (its id).  The operator who made the plan cannot approve it.\n"
    "\n"
    "  --config FILE       read FILE instead of ./runbook.yaml\n"
    "  --audit PATH        audit log (default: the plan's environment's, as `runbook run`)\n"
    "  --audit-wait D      wait up to D for another process's lock on the audit log\n"
    "\n"
    "Exit codes: 0 approved (or approved by you already), 2 refused or invalid input.\n";

static const char APPLY_HELP[] =
    "usage: runbook apply FILE [options]\n"
    "\n"
    "Run the runbook of the plan in FILE live, with the plan's params and\n"
    "environment, making only the planned changes in the planned order.  A\n"
    "changed runbook or params is refused before anything runs; a change that\n"
    "is not the next planned one stops the run before it is made.\n"
    "\n"
    "  --param K=V         a secret param again (the plan holds it as ****)\n"
    "  --config FILE       read FILE instead of ./runbook.yaml\n"
    "  --audit PATH        audit log (default: the plan's environment's, as `runbook run`)\n"
    "  --audit-wait D      wait up to D for another process's lock on the audit log\n"
    "  --wait-lock D       wait up to D (30s, 5m) for a run lock another run holds\n"
    "  --yes               answer yes to the runbook's confirm() questions\n"
    "  --output text|json  human view (default) or one JSON event per line\n"
    "  --timeout S         limit the run to S seconds (90s, 5m)\n"
    "  -v, --verbose       show read actions too\n"
    "\n"
    "Exit codes: 0 every planned change made, 1 the run failed, stopped off the plan\n"
    "or left planned changes undone, 2 refused (changed runbook or params, missing\n"
    "approvals) or invalid input, 130 interrupted.\n";

enum {
    O_PARAM = 1000,
    O_ENV,
    O_CONFIG,
    O_AUDIT,
    O_AUDIT_WAIT,
    O_WAIT_LOCK,
    O_YES,
    O_OUTPUT,
    O_TIMEOUT,
    O_HELP
};

/* The options of the three commands; which takes which is `allowed`. */
static const struct option OPTIONS[] = {
    {"out", required_argument, NULL, 'o'},
    {"param", required_argument, NULL, O_PARAM},
    {"env", required_argument, NULL, O_ENV},
    {"config", required_argument, NULL, O_CONFIG},
    {"audit", required_argument, NULL, O_AUDIT},
    {"audit-wait", required_argument, NULL, O_AUDIT_WAIT},
    {"wait-lock", required_argument, NULL, O_WAIT_LOCK},
    {"yes", no_argument, NULL, O_YES},
    {"output", required_argument, NULL, O_OUTPUT},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct plan_args {
    run_args r;      /* what session_open and the params input read */
    const char *out; /* plan -o */
    const char *file;
    char env[256]; /* approve, apply: the plan's environment */
} plan_args;

/* A flag this command does not take, with a hint only of the options it
 * takes (allowed, as in parse): never one that is then refused. */
static int unknown_plan_flag(const char *cmd, const char *arg, const char *allowed)
{
    const char *names[sizeof OPTIONS / sizeof *OPTIONS];
    size_t k = 0;
    for (const struct option *o = OPTIONS; o->name; o++) {
        char word[32];
        snprintf(word, sizeof word, " %s ", o->name);
        if (o->val == O_HELP || strstr(allowed, word))
            names[k++] = o->name;
    }
    names[k] = NULL;
    return unknown_flag(cmd, arg, names);
}

/* 0, -1 after --help, or 2 after a usage error.  allowed: the option
 * letters/codes this command takes, as a string of their names. */
static int parse(int argc, char **argv, plan_args *p, const char *cmd, const char *help,
                 const char *allowed)
{
    memset(p, 0, sizeof *p);
    p->r.params = calloc((size_t)argc + 1, sizeof *p->r.params);
    optind = 1;
    opterr = 0;
    int c, idx;
    while ((c = getopt_long(argc, argv, ":o:v", OPTIONS, &idx)) != -1) {
        const char *name = NULL;
        for (const struct option *o = OPTIONS; o->name; o++)
            if (o->val == c)
                name = o->name;
        if (c == O_HELP) {
            fputs(help, stdout);
            return -1;
        }
        if (c == ':')
            return usage_error("%s: %s needs a value (see runbook %s --help)", cmd,
                               argv[optind - 1], cmd);
        char word[32];
        snprintf(word, sizeof word, " %s ", name ? name : "?");
        if (c == '?' || !name) {
            return unknown_plan_flag(cmd, argv[optind - 1], allowed);
        }
        if (!strstr(allowed, word))
            return usage_error("%s: --%s is not an option of %s (see runbook %s --help)", cmd, name,
                               cmd, cmd);
        switch (c) {
        case 'o':
            p->out = optarg;
            break;
        case O_PARAM:
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return usage_error("--param %s: expected NAME=VALUE", optarg);
            p->r.params[p->r.n_params++] = optarg;
            break;
        case O_ENV:
            p->r.env = optarg;
            break;
        case O_CONFIG:
            p->r.config = optarg;
            break;
        case O_AUDIT:
            p->r.audit = optarg;
            break;
        case O_AUDIT_WAIT: {
            double w = rb_parse_duration(optarg);
            if (!(w >= 0 && w <= 86400))
                return usage_error("--audit-wait %s: expected a duration such as 30s or 2m (0 to "
                                   "not wait, at most 24h)",
                                   optarg);
            p->r.audit_wait = optarg;
            break;
        }
        case O_WAIT_LOCK:
            p->r.wait_lock = rb_parse_duration(optarg);
            if (!(p->r.wait_lock > 0 && p->r.wait_lock <= 86400))
                return usage_error("--wait-lock %s: expected a duration such as 30s or 5m (more "
                                   "than 0, at most 24h)",
                                   optarg);
            break;
        case O_YES:
            p->r.yes = 1;
            break;
        case O_OUTPUT:
            if (strcmp(optarg, "json") == 0)
                p->r.json = 1;
            else if (strcmp(optarg, "text") != 0)
                return usage_error("--output %s: expected text or json", optarg);
            break;
        case O_TIMEOUT:
            p->r.timeout = rb_parse_duration(optarg);
            if (p->r.timeout <= 0 || p->r.timeout > 7 * 86400)
                return usage_error("--timeout %s: expected a duration of more than 0 and at "
                                   "most 7d (seconds, or 90s, 5m, 1h)",
                                   optarg);
            break;
        case 'v':
            p->r.verbose = 1;
            break;
        }
    }
    if (optind < argc)
        p->file = argv[optind++];
    if (optind < argc)
        return usage_error("%s: one %s at a time ('%s' and '%s')", cmd,
                           strcmp(cmd, "plan") == 0 ? "runbook" : "plan", p->file, argv[optind]);
    return 0;
}

/* ---- the plan file ------------------------------------------------------- */

/* The plan's id: the sha256 of its canonical form.  The file is read,
 * decoded and encoded again, so that its layout is not part of the id but
 * every value is.  Leaves the decoded plan on the stack; 0, or -1 with a
 * message in err (nothing pushed). */
static int load_plan(lua_State *L, const char *file, char id[65], char *err, size_t n)
{
    size_t len;
    char *text = rb_read_file(file, &len);
    if (!text) {
        snprintf(err, n, "%s: cannot read the plan: %s", file, strerror(errno));
        return -1;
    }
    int rc = plan_decode(L, text, len);
    free(text);
    if (rc != 0 || !lua_istable(L, -1)) {
        snprintf(err, n, "%s: not a plan (not a JSON object%s%s)", file, rc ? ": " : "",
                 rc ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
        return -1;
    }
    lua_getfield(L, -1, "format");
    int ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), PLAN_FORMAT) == 0;
    lua_pop(L, 1);
    if (!ok) {
        snprintf(err, n, "%s: not a plan of this version of runbook (format %s expected)", file,
                 PLAN_FORMAT);
        lua_pop(L, 1);
        return -1;
    }
    size_t clen;
    const char *canon = (plan_encode(L, -1, 0), lua_tolstring(L, -1, &clen));
    rb_sha256_hex(canon, clen, id);
    lua_pop(L, 1);
    return 0;
}

/* plan[section][key] as a string, or NULL (the value stays referenced by the
 * plan table). */
static const char *plan_str(lua_State *L, int plan, const char *section, const char *key)
{
    const char *s = NULL;
    int top = lua_gettop(L);
    if (section) {
        if (lua_getfield(L, plan, section) == LUA_TTABLE && lua_getfield(L, -1, key) == LUA_TSTRING)
            s = lua_tostring(L, -1);
    } else if (lua_getfield(L, plan, key) == LUA_TSTRING) {
        s = lua_tostring(L, -1);
    }
    lua_settop(L, top);
    return s;
}

/* ---- who planned and who approved, as the log says --------------------------- */

#define MAX_APPROVERS 64

typedef struct plan_trail {
    int found;              /* the log has the plan record */
    char planner[128];      /* its identity: role on a log with roles, else OS account */
    char planner_user[128]; /* the OS account, for messages */
    char approvers[MAX_APPROVERS][128];
    int n_approvers;  /* distinct, the planner never among them */
    char mine_at[40]; /* when the current identity approved it, "" if not */
} plan_trail;

static void copy(char *dst, size_t n, const char *src)
{
    size_t len = src ? strnlen(src, n - 1) : 0;
    memcpy(dst, src ? src : "", len);
    dst[len] = '\0';
}

/* The identity of this handle: its database role, else the OS account. */
static const char *me(audit *a)
{
    const char *role = audit_role(a);
    return role ? role : rb_username();
}

/* Read the plan record and the approvals of plan id from the records of
 * run (the dry-run that made the plan).  0, or -1 with a message in err. */
static int read_trail(audit *a, const char *run, const char *id, plan_trail *t, char *err, size_t n)
{
    memset(t, 0, sizeof *t);
    if (!run || !*run)
        return 0;
    audit_cursor *cur = audit_records(a, run, NULL, err, n);
    if (!cur)
        return -1;
    int roles = audit_role(a) != NULL;
    audit_record r;
    int rc;
    /* approvals are counted once the planner is known: read them all first */
    char who[MAX_APPROVERS][128], at[MAX_APPROVERS][40];
    int nwho = 0;
    while ((rc = audit_next(cur, &r)) == 1) {
        int is_plan = strcmp(r.kind, "plan") == 0, is_approval = strcmp(r.kind, "approval") == 0;
        if (!is_plan && !is_approval)
            continue;
        audit_fields f;
        audit_fields_parse(a, r.data, &f);
        const char *pid = audit_field_str(&f, "plan");
        if (pid && strcmp(pid, id) == 0) {
            if (is_plan && !t->found) {
                t->found = 1;
                const char *role = r.role ? r.role : audit_field_str(&f, "planner_role");
                copy(t->planner_user, sizeof t->planner_user, audit_field_str(&f, "planner"));
                copy(t->planner, sizeof t->planner, roles && role ? role : t->planner_user);
            } else if (is_approval && nwho < MAX_APPROVERS) {
                const char *role = r.role ? r.role : audit_field_str(&f, "approver_role");
                copy(who[nwho], sizeof who[nwho],
                     roles && role ? role : audit_field_str(&f, "approver"));
                copy(at[nwho], sizeof at[nwho], r.ts);
                nwho++;
            }
        }
        audit_fields_free(&f);
    }
    audit_cursor_free(cur);
    if (rc < 0) {
        snprintf(err, n, "%s", audit_error(a));
        return -1;
    }
    const char *self = me(a);
    for (int i = 0; i < nwho; i++) {
        if (!who[i][0] || strcmp(who[i], t->planner) == 0)
            continue; /* the planner's own (only a hand-written record can be one) */
        if (strcmp(who[i], self) == 0 && !t->mine_at[0])
            copy(t->mine_at, sizeof t->mine_at, at[i]);
        int dup = 0;
        for (int k = 0; k < t->n_approvers && !dup; k++)
            dup = strcmp(t->approvers[k], who[i]) == 0;
        if (!dup)
            copy(t->approvers[t->n_approvers++], sizeof t->approvers[0], who[i]);
    }
    return 0;
}

/* ---- the policy of an environment ------------------------------------------ */

typedef struct policy {
    int require_plan;
    int approvals;
} policy;

static policy policy_of(rb_engine *E, const char *env)
{
    policy p = {0, 0};
    if (!env || !E->config)
        return p;
    lua_State *L = E->L;
    config_push(E->config, L, env, "require_plan");
    p.require_plan = lua_toboolean(L, -1);
    config_push(E->config, L, env, "approvals");
    p.approvals = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    lua_pop(L, 2);
    return p;
}

int plan_gate_run(rb_engine *E, const char *env, const char *target)
{
    policy p = policy_of(E, env);
    if (!p.require_plan)
        return 0;
    fprintf(stderr,
            "runbook: environment '%s' requires a reviewed plan (require_plan in %s): a live run "
            "there goes through\n"
            "  runbook plan %s --env %s -o change.plan\n"
            "  runbook approve change.plan   (%s other than the planner)\n"
            "  runbook apply change.plan\n"
            "runbook: nothing was run\n",
            env, E->config && E->config->path[0] ? E->config->path : "runbook.yaml",
            target ? target : "RUNBOOK", env,
            p.approvals == 1  ? "by an operator"
            : p.approvals > 1 ? "by enough operators"
                              : "optional here: by an operator");
    return 2;
}

/* ---- plan ------------------------------------------------------------------ */

typedef struct plan_ctx {
    plan_args *p;
    const char *path; /* the runbook */
    int exit_code;
    char id[65];
    int changes;
} plan_ctx;

/* Fill E's run fields from the loaded runbook at rb (as `run` does). */
static void take_runbook(rb_engine *E, lua_State *L, int rb, const char *path)
{
    lua_getfield(L, rb, "meta");
    lua_getfield(L, -1, "name");
    E->runbook_name = lua_tostring(L, -1); /* anchored: meta stays referenced by rb */
    lua_getfield(L, -2, "title");
    E->runbook_title = lua_tostring(L, -1);
    lua_pop(L, 3);
    char real[PATH_MAX];
    snprintf(E->path, sizeof E->path, "%s", realpath(path, real) ? real : path);
    lua_getfield(L, rb, "sha256");
    snprintf(E->sha256, sizeof E->sha256, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, rb, "params");
    jsonw w;
    jw_init(&w);
    rb_params_json(&w, L, -1); /* secret params by declaration */
    free(E->params_json);
    E->params_json = strdup(jw_str_result(&w));
    jw_free(&w);
    lua_pop(L, 1);
}

static void set_s(lua_State *L, const char *key, const char *value)
{
    if (value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, key);
    }
}

static void push_array(lua_State *L)
{
    lua_newtable(L);
    dataconv_push_array_mt(L);
    lua_setmetatable(L, -2);
}

/* The params as recorded (E->params_json, secrets as ****), decoded. */
static void push_params(rb_engine *E, lua_State *L)
{
    const char *j = E->params_json ? E->params_json : "{}";
    if (plan_decode(L, j, strlen(j)) != 0 || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
}

/* Build the plan of the run just made (at the top of the stack). */
static void push_plan(rb_engine *E, lua_State *L)
{
    lua_createtable(L, 0, 10);
    set_s(L, "format", PLAN_FORMAT);
    lua_createtable(L, 0, 4);
    set_s(L, "name", E->runbook_name);
    set_s(L, "title", E->runbook_title);
    set_s(L, "path", E->path);
    set_s(L, "sha256", E->sha256);
    lua_setfield(L, -2, "runbook");
    char commit[65];
    int dirty;
    if (rb_git_provenance(E->path, commit, &dirty) == 0) {
        lua_createtable(L, 0, 2);
        set_s(L, "commit", commit);
        lua_pushboolean(L, dirty);
        lua_setfield(L, -2, "dirty");
        lua_setfield(L, -2, "library");
    }
    push_params(E, L);
    lua_setfield(L, -2, "params");
    push_array(L); /* which params apply must not take from the plan */
    if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.secret_params") == LUA_TTABLE) {
        rb_push_sorted_keys(L, -1);
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++)
            lua_rawseti(L, -4, i);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "secret_params");
    set_s(L, "env", E->env_name);
    char ts[32];
    rb_time_rfc3339(ts, -1);
    lua_createtable(L, 0, 6);
    set_s(L, "by", rb_username());
    set_s(L, "role", E->audit ? audit_role(E->audit) : NULL);
    set_s(L, "host", rb_hostname());
    set_s(L, "at", ts);
    set_s(L, "run", E->run_id);
    lua_setfield(L, -2, "planned");
    plan_push_collected(L, "reads");
    lua_setfield(L, -2, "reads");
    plan_push_collected(L, "changes");
    lua_setfield(L, -2, "changes");
}

/* Write text to path through a temporary file of its directory, renamed
 * into place: a reader never sees half a plan.  0, or -1 with errno. */
static int write_file(const char *path, const char *text, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

static void record_plan(rb_engine *E, const char *id, const char *file, int changes)
{
    if (!E->audit)
        return;
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "plan", id);
    jw_kstr(&w, "planner", rb_username());
    jw_kstr(&w, "planner_role", audit_role(E->audit));
    jw_kstr(&w, "host", rb_hostname());
    jw_kstr(&w, "runbook", E->runbook_name);
    jw_kstr(&w, "path", E->path);
    jw_kstr(&w, "sha256", E->sha256);
    jw_kstr(&w, "env", E->env_name);
    jw_kint(&w, "changes", changes);
    char real[PATH_MAX];
    jw_kstr(&w, "file", realpath(file, real) ? real : file);
    jw_obj_end(&w);
    char ts[32];
    rb_time_rfc3339(ts, -1);
    if (audit_append(E->audit, E->run_id, "plan", ts, jw_str_result(&w), NULL) != 0)
        fprintf(stderr, "runbook: audit: %s\n", audit_error(E->audit));
    jw_free(&w);
}

static int pplan(lua_State *L)
{
    plan_ctx *ctx = lua_touserdata(L, 1);
    plan_args *p = ctx->p;
    rb_engine *E = rb_engine_of(L);
    ctx->exit_code = 2;
    int in = push_params_input(E, L, &p->r);
    /* the dry-run's confinement keeps the plan's directory writable (as
     * --record's): the plan is written after the run */
    dry_run_confine(E, p->out);
    runner_start(E, p->r.timeout);
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
    take_runbook(E, L, rb, ctx->path);
    run_opts o = {0};
    o.timeout = p->r.timeout;
    ctx->exit_code = runner_run(E, L, rb, &o);
    if (ctx->exit_code != 0) {
        fprintf(stderr, "runbook: plan: the dry-run did not succeed (exit %d): no plan written\n",
                ctx->exit_code);
        return 0;
    }
    push_plan(E, L);
    int plan = lua_gettop(L);
    lua_getfield(L, plan, "changes");
    ctx->changes = (int)lua_rawlen(L, -1);
    lua_pop(L, 1);
    size_t len;
    plan_encode(L, plan, 1);
    lua_pushliteral(L, "\n");
    lua_concat(L, 2);
    const char *text = lua_tolstring(L, -1, &len);
    if (write_file(p->out, text, len) != 0) {
        fprintf(stderr, "runbook: plan: cannot write %s: %s\n", p->out, strerror(errno));
        ctx->exit_code = 2;
        return 0;
    }
    char err[512];
    if (load_plan(L, p->out, ctx->id, err, sizeof err) != 0) { /* the id of what is written */
        fprintf(stderr, "runbook: plan: %s\n", err);
        ctx->exit_code = 2;
        return 0;
    }
    lua_pop(L, 1);
    record_plan(E, ctx->id, p->out, ctx->changes);
    return 0;
}

static plan_args *args_free(plan_args *p)
{
    free(p->r.params);
    p->r.params = NULL;
    return p;
}

int cmd_plan(int argc, char **argv)
{
    plan_args p;
    int rc = parse(argc, argv, &p, "plan", PLAN_HELP,
                   " out param env config audit audit-wait yes timeout verbose ");
    if (rc != 0) {
        args_free(&p);
        return rc < 0 ? 0 : rc;
    }
    if (!p.file || !p.out) {
        args_free(&p);
        return usage_error(!p.file ? "plan: which runbook? (runbook plan NAME|FILE -o FILE)"
                                   : "plan: where to write the plan? (-o FILE)");
    }
    /* where the plan goes, known good before the dry-run spends its time */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", p.out);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    struct stat st;
    const char *why = !*p.out                                        ? "no file named"
                      : stat(p.out, &st) == 0 && S_ISDIR(st.st_mode) ? "a directory"
                      : access(slash ? dir : ".", W_OK) != 0 ? strerror(errno)
                                                             : NULL;
    if (why) {
        usage_error("plan: -o %s: cannot write a plan there (%s); nothing was run", p.out, why);
        args_free(&p);
        return 2;
    }
    char err[4096];
    rb_engine *E = engine_new(rb_builtin_modules, err, sizeof err);
    if (!E) {
        args_free(&p);
        return usage_error("%s", err);
    }
    lua_State *L = E->L;
    plan_capture_json(L);
    rb_config cfg;
    int exit_code = session_open(E, &cfg, &p.r);
    char path[4096];
    if (exit_code != 0)
        goto out;
    exit_code = 2;
    E->mode = MODE_DRY_RUN;
    engine_use(E, &rb_mode_dry_run);
    engine_decorate(E, &rb_mode_plan);
    E->purpose = PURPOSE_RUN;
    E->output = OUT_TEXT;
    E->assume_yes = p.r.yes;
    E->verbose = p.r.verbose;
    E->color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (rbfile_find(p.file, path, sizeof path) != 0) {
        no_such_runbook(p.file);
        goto out;
    }
    rb_new_run_id(E->run_id);
    loop_install_signals();
    plan_ctx ctx = {&p, path, 2, "", 0};
    lua_pushcfunction(L, pplan);
    lua_pushlightuserdata(L, &ctx);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        usage_error("%s", engine_errmsg(L, -1));
        ctx.exit_code = 2;
    }
    exit_code = ctx.exit_code;
    if (exit_code == 0) {
        printf("\nplan %.12s written to %s: %d change%s%s\n", ctx.id, p.out, ctx.changes,
               ctx.changes == 1 ? "" : "s",
               E->audit ? "" : " (not recorded: the audit log is off, so it cannot be approved)");
        policy pol = policy_of(E, p.r.env);
        printf("next: runbook approve %s   (%s)\n      runbook apply %s\n", p.out,
               pol.approvals > 0 ? "by another operator: required here"
                                 : "by another operator, if your team wants it",
               p.out);
    }
out:
    if (E->audit)
        audit_close(E->audit);
    E->audit = NULL;
    engine_free(E);
    args_free(&p);
    return exit_code;
}

/* ---- approve ---------------------------------------------------------------- */

/* An engine with the config and the audit log of the plan's environment,
 * the plan decoded on its stack (index 1) and its id.  0, or an exit code
 * after the message. */
static int open_plan(plan_args *p, const char *cmd, rb_engine **out, rb_config *cfg, char id[65])
{
    char err[4096];
    *out = NULL;
    if (!p->file)
        return usage_error("%s: which plan? (runbook %s FILE; runbook plan writes one)", cmd, cmd);
    rb_engine *E = engine_new(rb_builtin_modules, err, sizeof err);
    if (!E)
        return usage_error("%s", err);
    *out = E;
    lua_State *L = E->L;
    plan_capture_json(L);
    if (load_plan(L, p->file, id, err, sizeof err) != 0)
        return usage_error("%s: %s", cmd, err);
    /* the plan's environment decides the log (its `audit:`) and the policy */
    if (lua_getfield(L, -1, "env") == LUA_TSTRING) {
        snprintf(p->env, sizeof p->env, "%s", lua_tostring(L, -1));
        p->r.env = p->env;
    }
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, PLAN_KEPT); /* session_open empties the stack */
    int rc = session_open(E, cfg, &p->r);
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, PLAN_KEPT); /* at index 1 */
    return rc;
}

static void close_plan(rb_engine *E)
{
    if (!E)
        return;
    if (E->audit)
        audit_close(E->audit);
    E->audit = NULL;
    engine_free(E);
}

int cmd_approve(int argc, char **argv)
{
    plan_args p;
    int rc = parse(argc, argv, &p, "approve", APPROVE_HELP, " config audit audit-wait ");
    if (rc != 0) {
        args_free(&p);
        return rc < 0 ? 0 : rc;
    }
    rb_engine *E;
    rb_config cfg;
    char id[65], err[4096];
    int exit_code = open_plan(&p, "approve", &E, &cfg, id);
    if (exit_code != 0)
        goto out;
    exit_code = 2;
    lua_State *L = E->L;
    if (!E->audit) {
        usage_error("approve: an approval is a record of the audit log, which is off here");
        goto out;
    }
    const char *run = plan_str(L, 1, "planned", "run");
    plan_trail t;
    if (read_trail(E->audit, run, id, &t, err, sizeof err) != 0) {
        usage_error("approve: %s: %s", audit_path(E->audit), err);
        goto out;
    }
    if (!t.found) {
        usage_error("approve: plan %.12s is not recorded in the audit log %s: it was made with "
                    "another log or none (make it again with this log)",
                    id, audit_path(E->audit));
        goto out;
    }
    const char *self = me(E->audit);
    if (strcmp(self, t.planner) == 0) {
        usage_error("approve: you (%s) made plan %.12s: it must be approved by another operator",
                    self, id);
        goto out;
    }
    policy pol = policy_of(E, p.r.env);
    if (t.mine_at[0]) {
        printf("plan %.12s was already approved by %s at %s (%d approval%s)\n", id, self, t.mine_at,
               t.n_approvers, t.n_approvers == 1 ? "" : "s");
        exit_code = 0;
        goto out;
    }
    /* what is approved, for the record and for the approver's eyes */
    const char *name = plan_str(L, 1, "runbook", "name");
    printf("plan %.12s: runbook %s%s%s, planned by %s at %s\n", id, name ? name : "?",
           p.r.env ? " in " : "", p.r.env ? p.r.env : "", t.planner,
           plan_str(L, 1, "planned", "at") ? plan_str(L, 1, "planned", "at") : "?");
    lua_getfield(L, 1, "changes");
    int n = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "step");
        lua_getfield(L, -2, "words");
        printf("  %d. step %s: %s\n", i, lua_tostring(L, -2) ? lua_tostring(L, -2) : "-",
               lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "plan", id);
    jw_kstr(&w, "approver", rb_username());
    jw_kstr(&w, "approver_role", audit_role(E->audit));
    jw_kstr(&w, "host", rb_hostname());
    jw_kstr(&w, "planner", t.planner);
    jw_kstr(&w, "runbook", name);
    jw_kstr(&w, "env", p.r.env);
    char ts[32];
    rb_time_rfc3339(ts, -1);
    jw_kstr(&w, "at", ts);
    jw_obj_end(&w);
    if (audit_append(E->audit, run, "approval", ts, jw_str_result(&w), NULL) != 0) {
        fprintf(stderr, "runbook: approve: cannot record the approval: %s\n",
                audit_error(E->audit));
        jw_free(&w);
        exit_code = 1;
        goto out;
    }
    jw_free(&w);
    printf("approved by %s: %d approval%s", self, t.n_approvers + 1,
           t.n_approvers + 1 == 1 ? "" : "s");
    if (pol.approvals > 0)
        printf(" of the %d that %s requires", pol.approvals, p.r.env);
    printf("\n");
    exit_code = 0;
out:
    close_plan(E);
    args_free(&p);
    return exit_code;
}

/* ---- apply ------------------------------------------------------------------ */

typedef struct apply_ctx {
    plan_args *p;
    const char *path;
    const char *id;
    int exit_code;
} apply_ctx;

/* The params input of an apply: the plan's params (but the secret ones,
 * which it holds as ****) over the environment's, below --param. */
static int push_apply_input(rb_engine *E, lua_State *L, int plan, const run_args *a)
{
    int in = push_params_input(E, L, a);
    lua_getfield(L, in, "env");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    int env = lua_gettop(L);
    lua_newtable(L); /* { name = true } of the secret params */
    int secret = lua_gettop(L);
    if (lua_getfield(L, plan, "secret_params") == LUA_TTABLE)
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
            lua_pushboolean(L, 1);
            lua_rawset(L, secret);
        }
    lua_settop(L, secret);
    if (lua_getfield(L, plan, "params") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            if (lua_rawget(L, secret) != LUA_TNIL) {
                lua_pop(L, 2);
                continue;
            }
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, env);
        }
    }
    lua_settop(L, env);
    lua_setfield(L, in, "env");
    return in;
}

/* The params this run resolved vs the plan's: "" when the same, else the
 * names of those that differ with both values (both redacted alike). */
static const char *params_changed(rb_engine *E, lua_State *L, int plan)
{
    lua_pushliteral(L, "");
    int acc = lua_gettop(L);
    push_params(E, L);
    int now = lua_gettop(L);
    lua_getfield(L, plan, "params");
    int then = lua_gettop(L);
    for (int side = 0; side < 2; side++) {
        int t = side ? now : then, o = side ? then : now;
        if (!lua_istable(L, t))
            continue;
        rb_push_sorted_keys(L, t);
        int keys = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, keys, i) == LUA_TSTRING; i++) {
            const char *k = lua_tostring(L, -1);
            if (lua_istable(L, o))
                lua_getfield(L, o, k);
            else
                lua_pushnil(L);
            if (side && !lua_isnil(L, -1)) { /* compared from the plan's side already */
                lua_settop(L, keys);
                continue;
            }
            lua_getfield(L, t, k);
            const char *vt = plan_encode(L, -1, 0);
            const char *vo = lua_isnil(L, -3) ? "(none)" : plan_encode(L, -3, 0);
            if (strcmp(vt, vo) != 0) {
                lua_pushvalue(L, acc);
                lua_pushfstring(L, "\n  param %s: %s in the plan, %s now", k, side ? vo : vt,
                                side ? vt : vo);
                lua_concat(L, 2);
                lua_replace(L, acc);
            }
            lua_settop(L, keys);
        }
        lua_settop(L, keys - 1);
    }
    lua_settop(L, acc);
    return lua_tostring(L, acc);
}

static int papply(lua_State *L)
{
    apply_ctx *ctx = lua_touserdata(L, 1);
    plan_args *p = ctx->p;
    rb_engine *E = rb_engine_of(L);
    const int plan = 2; /* pushed by cmd_apply */
    ctx->exit_code = 2;
    int in = push_apply_input(E, L, plan, &p->r);
    lua_getfield(L, plan, "changes");
    lua_getfield(L, plan, "reads");
    /* from before the file's top level: an action there is checked too */
    apply_begin(L, lua_gettop(L) - 1, lua_gettop(L), ctx->id);
    lua_pop(L, 2);
    runner_start(E, p->r.timeout);
    int loaded = rbfile_load(L, ctx->path, in);
    if (loaded == RBFILE_STOPPED) {
        ctx->exit_code = apply_finish(E, L, runner_load_stopped(E, L, ctx->path));
        return 0;
    }
    if (loaded != 0) {
        usage_error("%s", lua_tostring(L, -1));
        return 0;
    }
    int rb = lua_gettop(L);
    take_runbook(E, L, rb, ctx->path);
    const char *want = plan_str(L, plan, "runbook", "sha256");
    if (!want || strcmp(want, E->sha256) != 0) { /* changed since cmd_apply hashed it */
        usage_error("apply: runbook %s changed since the plan was made (sha256 %.12s in the "
                    "plan, %.12s now): make a new plan; nothing was run",
                    E->path, want ? want : "?", E->sha256);
        return 0;
    }
    const char *changed = params_changed(E, L, plan);
    if (*changed) {
        usage_error("apply: the params are not the plan's:%s\nrunbook: nothing was run (make a "
                    "new plan, or pass the plan's values)",
                    changed);
        return 0;
    }
    lua_pop(L, 1);
    run_opts o = {0};
    o.timeout = p->r.timeout;
    ctx->exit_code = apply_finish(E, L, runner_run(E, L, rb, &o));
    return 0;
}

int cmd_apply(int argc, char **argv)
{
    plan_args p;
    int rc = parse(argc, argv, &p, "apply", APPLY_HELP,
                   " param config audit audit-wait wait-lock yes output timeout verbose ");
    if (rc != 0) {
        args_free(&p);
        return rc < 0 ? 0 : rc;
    }
    rb_engine *E;
    rb_config cfg;
    char id[65], err[4096];
    int exit_code = open_plan(&p, "apply", &E, &cfg, id);
    if (exit_code != 0)
        goto out;
    exit_code = 2;
    lua_State *L = E->L;
    const char *env = p.r.env;
    policy pol = policy_of(E, env);
    if (pol.require_plan || pol.approvals > 0) {
        /* the approvals that count are those of the log runbook.yaml names
         * for the environment, not of one the operator points at */
        config_push(&cfg, L, env, "audit");
        int env_log = lua_type(L, -1) == LUA_TSTRING;
        lua_pop(L, 1);
        const char *chosen = p.r.audit                             ? "--audit"
                             : !env_log && getenv("RUNBOOK_AUDIT") ? "RUNBOOK_AUDIT"
                                                                   : NULL;
        if (chosen) {
            usage_error("apply: environment '%s' requires approvals, which count only in the "
                        "audit log runbook.yaml names for it: %s cannot choose another; nothing "
                        "was run",
                        env, chosen);
            goto out;
        }
        if (!E->audit) {
            usage_error("apply: environment '%s' requires an approved plan, and the audit log "
                        "that would show the approvals is off; nothing was run",
                        env);
            goto out;
        }
        plan_trail t;
        if (read_trail(E->audit, plan_str(L, 1, "planned", "run"), id, &t, err, sizeof err) != 0) {
            usage_error("apply: %s: %s; nothing was run", audit_path(E->audit), err);
            goto out;
        }
        if (!t.found) {
            usage_error("apply: plan %.12s is not recorded in the audit log %s, which "
                        "environment '%s' requires; nothing was run",
                        id, audit_path(E->audit), env);
            goto out;
        }
        if (t.n_approvers < pol.approvals) {
            usage_error("apply: plan %.12s has %d of the %d approval%s environment '%s' requires "
                        "(by operators other than its planner, %s): runbook approve %s; nothing "
                        "was run",
                        id, t.n_approvers, pol.approvals, pol.approvals == 1 ? "" : "s", env,
                        t.planner, p.file);
            goto out;
        }
    }
    /* the runbook, byte for byte, before any of it runs */
    const char *path = plan_str(L, 1, "runbook", "path");
    const char *want = plan_str(L, 1, "runbook", "sha256");
    size_t len;
    char *src = path ? rb_read_file(path, &len) : NULL;
    if (!src) {
        usage_error("apply: the plan's runbook %s cannot be read (%s); nothing was run",
                    path ? path : "(none named)", path ? strerror(errno) : "not a plan");
        goto out;
    }
    char sha[65];
    rb_sha256_hex(src, len, sha);
    free(src);
    if (!want || strcmp(sha, want) != 0) {
        usage_error("apply: runbook %s changed since the plan was made (sha256 %.12s in the "
                    "plan, %.12s now): make a new plan; nothing was run",
                    path, want ? want : "?", sha);
        goto out;
    }
    E->mode = MODE_LIVE;
    engine_use(E, &rb_mode_live);
    engine_decorate(E, &rb_mode_apply);
    E->purpose = PURPOSE_RUN;
    E->output = p.r.json ? OUT_JSON : OUT_TEXT;
    E->assume_yes = p.r.yes;
    E->verbose = p.r.verbose;
    E->color = !p.r.json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    rb_new_run_id(E->run_id);
    loop_install_signals();
    apply_ctx ctx = {&p, path, id, 2};
    lua_settop(L, 1);
    lua_pushcfunction(L, papply);
    lua_insert(L, 1); /* papply(ctx, plan): the plan at index 2 */
    lua_pushlightuserdata(L, &ctx);
    lua_insert(L, 2);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        usage_error("%s", engine_errmsg(L, -1));
        ctx.exit_code = 2;
    }
    exit_code = ctx.exit_code;
out:
    close_plan(E);
    args_free(&p);
    return exit_code;
}
