/*
 * runbook.yaml: read once with libyaml's document API so that every shape
 * error names file:line.  `--config FILE` replaces ./runbook.yaml (no
 * layering).  The keys other issues own (notify, kubectl, docker) are kept
 * as Lua values for their modules to read.
 */
#ifndef RUNBOOK_CONFIG_H
#define RUNBOOK_CONFIG_H

#include "runbook/runbook.h"
#include <lua.h>
#include <stddef.h>

typedef struct rb_config {
    char path[4096];       /* "" when there is no config file */
    int audit_set;         /* the file has an `audit:` key */
    int audit_off;         /* audit: false */
    char audit_path[4096]; /* expanded */
    double audit_wait;     /* audit_wait: seconds, when audit_wait_set */
    int audit_wait_set;
    char secrets_file[4096];
    int ref; /* LUA_REGISTRY ref of the whole document as a Lua table, or LUA_NOREF */
} rb_config;

/* Load path (explicit = from --config: must exist) or ./runbook.yaml if it
 * exists.  The Lua table is kept in L's registry.  Besides its own keys the
 * config may have a section for each of modules (the engine's table).
 * Returns 0, or -1 with "file:line: message" in err. */
int config_load(rb_config *c, lua_State *L, const rb_module *modules, const char *path,
                int explicit, char *err, size_t errlen);

/* Push config[key] (or config.environments[env][key] when env is not NULL),
 * nil when absent. */
void config_push(const rb_config *c, lua_State *L, const char *env, const char *key);

/* The audit database path by precedence: --no-audit/--audit flag >
 * RUNBOOK_AUDIT > config `audit:` > $XDG_STATE_HOME/runbook/audit.db.
 * NULL when auditing is off. */
const char *config_audit_path(const rb_config *c, const char *flag_path, int no_audit, char *buf,
                              size_t n);

/* The seconds of a wait at idx (a number, or a duration such as 30s, 2m),
 * or -1 when it is not one from 0 to 24 hours. */
double config_wait_value(lua_State *L, int idx);

/* audit_wait of the environment env (NULL: none), else of the top level,
 * in seconds; -1 when neither sets it. */
double config_audit_wait(const rb_config *c, lua_State *L, const char *env);

#endif
