/*
 * What `run` and `repl` share: their command-line flags, the params input
 * a runbook is loaded with, and opening the config, the --env environment
 * and the audit log -- everything that is checked before anything runs.
 */
#ifndef RUNBOOK_SESSION_H
#define RUNBOOK_SESSION_H

#include "config.h"
#include "engine.h"

typedef struct run_args {
    int dry_run, confirm, yes, no_audit, rollback, verbose, json;
    const char *env, *config, *audit, *from, *resume, *target, *record;
    double timeout;
    char **params; /* "NAME=VALUE", malloc'd array */
    int n_params;
    size_t max_memory;          /* --max-memory in bytes, 0 = the engine's default */
    int strict;                 /* --strict: no dry-run the kernel does not enforce */
    const char *audit_wait;     /* --audit-wait DURATION, checked */
    const char *audit_fallback; /* --audit-fallback PATH: a local log when the shared one is down */
    double wait_lock;           /* --wait-lock: seconds to wait for a run lock another run holds */
    int diff;                   /* --diff: a --dry-run shows fs writes as unified diffs */
} run_args;

/* Parse argv (argv[0] is the command); options may follow the runbook
 * name.  Returns 0, -1 after --help (printed), or 2 after a usage error. */
int run_args_parse(int argc, char **argv, run_args *a, const char *cmd, const char *help);

/* Push { cli = { k = {v...} }, env = environments[env].params,
 * config = params } for rbfile_load(); returns its stack index. */
int push_params_input(rb_engine *E, lua_State *L, const run_args *a);

/* Load the config (--config or ./runbook.yaml), check --env, open the
 * audit log (--audit, --no-audit, the environment's `audit:`, config,
 * RUNBOOK_AUDIT), waiting --audit-wait / audit_wait for another process's
 * lock on it.  Returns 0, or after printing why 1 (the log stayed locked)
 * or 2. */
int session_open(rb_engine *E, rb_config *cfg, const run_args *a);

#endif
