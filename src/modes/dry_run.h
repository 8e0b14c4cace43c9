/*
 * The dry-run's own confinement: once a `run --dry-run` has opened what it
 * needs, the engine process asks the kernel (Landlock) to refuse it every
 * write but the audit log's and the --record output's, for good.
 */
#ifndef RB_DRY_RUN_H
#define RB_DRY_RUN_H

#include "engine.h"

/* Confine E's process: writes only below the audit log's directory, the
 * --record output's directory (record: its path, or NULL), /dev/null and
 * /dev/tty.  0: enforced; -1: not (rb_landlock_why_not() says why). */
int dry_run_confine(rb_engine *E, const char *record);

/* ---- the plan: what `runbook plan` writes and `runbook apply` checks ------
 * rb_mode_plan (strategy.h) collects, over the dry-run, every change in
 * order (plan_push_action) and a digest of every read's answer
 * (plan_push_read); plan_push_collected(L, "changes" | "reads") pushes
 * them, an array.  Everything in them is redacted as the audit is. */

/* Keep the engine's json.encode/decode for the plan, before any runbook code
 * runs (a runbook may replace the global json's functions). */
void plan_capture_json(lua_State *L);
/* Push the value at idx as canonical JSON (keys sorted; pretty: indented);
 * never raises.  Returns the pushed string. */
const char *plan_encode(lua_State *L, int idx, int pretty);
/* Push the value of JSON text; 0, or -1 with the error message pushed. */
int plan_decode(lua_State *L, const char *text, size_t len);
/* Push { step, step_name, primitive, fn, verb, target, words, fields } of an
 * action in flight, redacted. */
void plan_push_action(lua_State *L, const rb_action *a);
/* Push { step, step_name, primitive, verb, target, digest [, simulated] } of
 * a read whose results are at res..res+nres-1 (or that failed with error). */
void plan_push_read(lua_State *L, const rb_action *a, int simulated, int res, int nres,
                    const char *error);
/* Push the canonical JSON of what two changes must share to be the same one
 * (primitive, fn, verb, target, words, fields) of the entry at idx. */
const char *plan_action_key(lua_State *L, int entry);
void plan_push_collected(lua_State *L, const char *which);

/* ---- `runbook run --dry-run`: the plan at its end, --diff ----
 * Collect the changes as rb_mode_plan does, over the engine's current
 * strategy (whose after_action still runs first: --record), numbering them
 * with their step; with diff, show what a simulated fs.write or fs.append
 * would do to its file as a unified diff (the file is only read).  After
 * --record's decorator, if any.  0, or -1 when too many layers. */
int dry_run_collect(rb_engine *E, int diff);
/* After the run's summary line: the plan (journal_plan); exit_code 0
 * means the rehearsal finished. */
void dry_run_show_plan(rb_engine *E, lua_State *L, int exit_code);

#endif
