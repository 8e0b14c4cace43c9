/*
 * The scenario judge in a Lua state of its own (judge.c).  What decides
 * whether a scenario passed -- its loading, mock matching, the account of
 * actions and steps, expectations, coverage -- runs in this state, which
 * shares no table, metatable, global or registry with the runbook's: a
 * runbook that replaces string.format or the string metatable, error,
 * tostring or anything it can reach changes its own world, never the
 * verdict.  Only data crosses between the two (judge_copy).
 */
#ifndef RUNBOOK_JUDGE_H
#define RUNBOOK_JUDGE_H

#include "runbook/runbook.h"

#include <stddef.h>

/* A new judge with src/lua/scenario.lua loaded.  from: an engine's state,
 * before any runbook code ran in it, whose primitives' rows the judge
 * copies (data only: a function becomes true).  NULL when out of memory. */
lua_State *judge_new(lua_State *from);
void judge_free(lua_State *J);

/* Call the judge's rt.fn with the nargs values on J's top; 0 and nres
 * results, or -1 with the error message in err (nothing left on J). */
int judge_call(lua_State *J, const char *fn, int nargs, int nres, char *err, size_t errlen);

/* Push onto to a copy of the value at idx of from: nil, booleans, numbers,
 * strings, json.null and tables of them (raw: no metamethod of from runs;
 * json.array_mt is kept), at most 64 deep; anything else (a function,
 * userdata) becomes fn_as (true, or nil when fn_as is 0). */
void judge_copy(lua_State *from, int idx, lua_State *to, int fn_as);

/* root/path with "." and ".." resolved, the longest existing part of it
 * really below root (no symbolic link out of it): 0 and out filled, or -1
 * and why ("P: the path leaves the scenario's scratch directory"). */
int scratch_resolve(const char *root, const char *path, char *out, size_t n, char *why,
                    size_t whylen);

#endif
