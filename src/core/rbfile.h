/*
 * Runbook files.  Loading a file runs its top level in a fresh environment
 * whose `runbook{}` and `step()` are bound to one runbook object (a Lua
 * table: meta, steps, env, path, sha256), so runbooks can load runbooks
 * (run_runbook) without sharing state.  Params are resolved inside
 * runbook{}, before the rest of the file runs, so steps may be generated
 * from them.
 */
#ifndef RUNBOOK_RBFILE_H
#define RUNBOOK_RBFILE_H

#include "engine.h"

/*
 * Load the runbook at path.  params_in is the stack index of a table
 *   { cli = { name = {"raw", ...} }, env = {...}, config = {...} }
 * (0 for none: defaults only).  On success pushes the runbook object and
 * returns 0; on failure pushes an error message and returns 2 (invalid
 * input: syntax, metadata, params, an error in the top level) or
 * RBFILE_STOPPED: the top level was stopped -- interrupted, past the run's
 * deadline (E->run_deadline: --timeout covers loading too) or over the
 * memory limit.  A stopped top-level load (not run_runbook's) leaves its
 * runbook object in the registry as "runbook.stopped", to name the run.
 */
#define RBFILE_STOPPED 3
int rbfile_load(lua_State *L, const char *path, int params_in);

/* Resolve params: spec table at spec, input table at in (0 = none).  Pushes
 * the resolved table or raises with "param 'x': ..." (E->input_error set). */
void params_resolve(lua_State *L, int spec, int in, int strict);
/* Validate one param spec (type, default of that type, known keys). */
void params_check_spec(lua_State *L, const char *name, int spec);

/* Find a runbook by name or path: a file path that exists, else NAME(.lua)
 * under the library root's runbooks/ (rbfile_root), ./runbooks, each
 * RUNBOOK_PATH directory and the share directory.  Returns 0 and fills out,
 * or -1. */
int rbfile_find(const char *name, char *out, size_t n);

/* The library a runbook belongs to is found from where the runbook is, not
 * from the working directory: the nearest ancestor of path (a file or a
 * directory) that holds runbook.yaml or a runbooks/ directory.  Its
 * runbooks/ is where run_runbook and scenario names look first, and its
 * runbooks/lib and lib are searched by require.  Loading a top-level
 * runbook sets it; `runbook test` sets it from each scenario's file; until
 * then it is the working directory's.  0, or -1 when no ancestor is one. */
int rbfile_use_root_of(lua_State *L, const char *path);
const char *rbfile_root(void);

#endif
