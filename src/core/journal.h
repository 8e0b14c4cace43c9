/*
 * The journal: every run, step and action becomes one record, built once as
 * JSON and sent to the audit log and, with --output json, to stdout as an
 * event with the same field names.  The human view is printed from here too
 * so the three never disagree.
 */
#ifndef RUNBOOK_JOURNAL_H
#define RUNBOOK_JOURNAL_H

#include "engine.h"

struct rb_action_result {
    const char *status; /* "ok", "error", "simulated", "declined" */
    int simulated;
    int has_exit_code;
    long long exit_code;
    int has_http_status;
    long long http_status;
    const char *out; /* stdout excerpt source (redacted and bounded here) */
    size_t out_len;
    const char *err;
    size_t err_len;
    const char *error;    /* the error message, when status is "error" */
    const char *answer;   /* for confirmations */
    const char *evidence; /* a rehearsal's account of what would happen */
    double duration;      /* seconds */
};

/* An action: arguments are at args..args+nargs-1 on L's stack. */
int journal_action(rb_engine *E, lua_State *L, int args, int nargs, const rb_action *a,
                   const rb_action_result *r);
/* A confirmation given (or refused) by the operator. */
int journal_answer(rb_engine *E, lua_State *L, const char *verb, const char *question,
                   const char *answer);

int journal_run_start(rb_engine *E, lua_State *L);
/* state: stack index of the state table, 0 for none */
int journal_step(rb_engine *E, lua_State *L, int index, int total, const char *name,
                 const char *status, double start, double end, const char *error, int state);
int journal_run_end(rb_engine *E, lua_State *L, const char *outcome, int exit_code,
                    const char *error, int state);
/* The run record's fields, redacted, as a JSON object (malloc'd): what the
 * watchdog needs to write the run's end without the Lua state. */
char *journal_run_fields(rb_engine *E, lua_State *L);
/* log.info & co, and print(): human view or a "log" event; never audited */
void journal_log(rb_engine *E, lua_State *L, const char *level, const char *msg);
/* [3/7] Restart calendar-api -- before the step runs */
void journal_step_start(rb_engine *E, lua_State *L, int index, int total, const char *name,
                        const char *description);

/* ---- a dry-run's plan and diffs (src/modes/dry_run.c) ----
 * The registry key where the journal keeps the running step's total for
 * the plan's [2/4 Drain]. */
#define JOURNAL_STEP_TOTAL "runbook.journal.step_total"
/* The plan: the array of changes at idx (dry_run.h plan_push_action's
 * entries, redacted, with `total`), numbered, after the summary line, or
 * one "plan" event.  complete: 0 when the rehearsal did not finish. */
void journal_plan(rb_engine *E, lua_State *L, int changes, int complete);
/* --diff: what a simulated write would do to path, as a unified diff (or
 * a note saying why there is none); redacted here. */
void journal_diff(rb_engine *E, lua_State *L, const rb_action *a, const char *path,
                  const char *diff, const char *note);

#endif
