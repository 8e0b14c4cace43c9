/* The runner: executes a loaded runbook's steps in the chosen mode. */
#ifndef RUNBOOK_RUNNER_H
#define RUNBOOK_RUNNER_H

#include "engine.h"

typedef struct run_opts {
    const char *from; /* --from: index or name */
    int rollback;     /* --rollback */
    double timeout;   /* --timeout, 0 = none */
    int *done;        /* --resume: indexes completed by the earlier run */
    int n_done;
} run_opts;

/* Run the runbook object at index rb; returns the process exit code.
 * Writes the run's start and end records. */
int runner_run(rb_engine *E, lua_State *L, int rb, const run_opts *o);

/* Start the run's clock before its file is loaded, so that --timeout (0 =
 * none) covers the runbook's top-level code as well as its steps. */
void runner_start(rb_engine *E, double timeout);

/* The runbook's top level was stopped while loading (rbfile_load returned
 * RBFILE_STOPPED, its message on top of L): write the run's records, timed
 * out, over the memory limit or interrupted, and return the exit code (1 or
 * 130; 2 when the audit log cannot be written). */
int runner_load_stopped(rb_engine *E, lua_State *L, const char *path);

#endif
