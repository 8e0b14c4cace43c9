/*
 * A mode is one strategy of the funnel (src/modes/: live, dry_run, confirm,
 * scenario, record, repl).  The session picks one when the engine is made;
 * the funnel, the runner and the engine's own functions (sleep, confirm,
 * secret) ask it -- never a primitive, which cannot see it.
 */
#ifndef RUNBOOK_STRATEGY_H
#define RUNBOOK_STRATEGY_H

#include "runbook/runbook.h"

typedef struct rb_engine rb_engine;
typedef struct rb_action_result rb_action_result;

typedef struct rb_strategy {
    const char *name; /* "live", "dry-run", "scenario": for messages */
    /* 1: calls that change something are carried out; 0: they are rehearsed
     * (a row's rehearse hook: evidence, nothing kept) or simulated. */
    int performs;
    /* A call that changes something is about to be carried out: 1 go on,
     * 0 the operator declined (the REPL's .confirm).  NULL: go on. */
    int (*before_action)(rb_engine *E, lua_State *L, const rb_action *a);
    /* Every action is answered here instead of by the world (a scenario's
     * mocks); called with the call's arguments, the row and action in
     * E->answering_row / E->answering.  NULL: the world answers. */
    lua_CFunction answer;
    /* After an action is recorded (--record writes it down); args at
     * 1..nargs, results res..res+nres-1, or error.  NULL: nothing. */
    void (*after_action)(rb_engine *E, lua_State *L, const rb_action *a, int simulated, int nargs,
                         int res, int nres, const char *error);
    /* sleep(seconds): 1 when the mode took care of it (a scenario's virtual
     * clock), 0 for a real sleep on the loop. */
    int (*sleep)(rb_engine *E, lua_State *L, double seconds);
    /* confirm(question) from a runbook: 1 yes, 0 no, -1 ask the operator
     * (or --yes).  *how says where a mode's answer came from ("scenario"). */
    int (*confirm)(rb_engine *E, lua_State *L, const char *question, const char **how);
    /* Before step index of total runs (--confirm asks): 'y' run it, 's'
     * skip it, 'q' abort the run.  NULL: run it. */
    int (*before_step)(rb_engine *E, lua_State *L, int index, int total, const char *name,
                       const char *description);
    /* An endpoint, credential or setting configured nowhere (host.h
     * rb_missing): 1 go on with a stand-in, 0 the caller raises. */
    int (*missing)(rb_engine *E, lua_State *L, const char *what);
    /* secret(name) set nowhere: push a stand-in and return 1 (a scenario
     * runs in CI without the real ones), or 0: the runbook's error. */
    int (*missing_secret)(rb_engine *E, lua_State *L, const char *name);
    /* What the journal wrote, for a mode that keeps its own account (a
     * scenario's actions and steps for its expectations and coverage). */
    void (*journaled)(rb_engine *E, lua_State *co, const rb_action *a, const rb_action_result *r);
    void (*step_done)(rb_engine *E, int index, const char *name, const char *status);
} rb_strategy;

/* The strategies (one file each in src/modes). */
extern const rb_strategy rb_mode_live;
extern const rb_strategy rb_mode_dry_run;
extern const rb_strategy rb_mode_confirm;  /* a decorator: --confirm's step prompts */
extern const rb_strategy rb_mode_repl;     /* live, asking before each change (.confirm) */
extern const rb_strategy rb_mode_scenario; /* src/modes/scenario.c */
/* `runbook plan`: a decorator over dry-run that collects the plan (dry_run.c) */
extern const rb_strategy rb_mode_plan;
/* `runbook apply`: a decorator over live that lets a change happen only if
 * it is the next one of the plan (src/modes/apply.c) */
extern const rb_strategy rb_mode_apply;

/* Before an apply runs: the plan's changes and reads (arrays) at changes
 * and reads, its id (recorded in the run records as `plan`). */
void apply_begin(lua_State *L, int changes, int reads, const char *plan_id);
/* After it ran with exit_code: the planned changes left undone are
 * reported; the apply's exit code (1 when it stopped or left changes
 * undone). */
int apply_finish(rb_engine *E, lua_State *L, int exit_code);

/* The rows of every primitive, as the modes read them: push
 * runbook.rows[primitive][fn] (a table: class, kind, fields, respond,
 * answer, recorded, paths, stand_in, notice, raw); returns its type. */
int rb_push_row(lua_State *L, const char *primitive, const char *fn);
/* Push runbook.rows: { [primitive] = { [fn] = row } }. */
void rb_push_rows(lua_State *L);

#endif
