/*
 * Run locks: runbook{ lock = "calendar-api" } (a string, a list, or a
 * function of the params returning either) makes a run that carries out its
 * changes hold those named locks, in the audit log's database, from before
 * its first step to its end.  Dry-runs and scenarios change nothing and take
 * none.  A lock held by another run stops this one before its first action
 * (exit 2, naming who holds it and where that run is), or is waited for up
 * to --wait-lock.
 */
#ifndef RUNBOOK_RUN_LOCKS_H
#define RUNBOOK_RUN_LOCKS_H

#include "engine.h"

/* rb: the runbook object.  0: go on (locks taken, or none to take); 2: not
 * run, why in err (already printed). */
int run_locks_take(rb_engine *E, lua_State *L, int rb, char *err, size_t n);
/* The run is at step index of total: for whoever waits on its locks. */
void run_locks_step(rb_engine *E, int index, int total, const char *name);
void run_locks_release(rb_engine *E);

#endif
