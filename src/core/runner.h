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

#endif
