/* One scenario run hermetically, its verdict printed as a JSON line
 * (scenario.c); `runbook test` (cmd_test.c) runs them in worker processes. */
#ifndef RUNBOOK_SCENARIO_H
#define RUNBOOK_SCENARIO_H

/* Exit code: 0 passed, 1 failed, 2 the scenario itself is malformed. */
#include "runbook/runbook.h"
int scenario_run_one(const rb_module *modules, const char *path);

/* The runbook a scenario names: a path next to the scenario (with or
 * without .lua), else a library name.  0 and out filled, or -1. */
#include <stddef.h>
int scenario_find_runbook(const char *scenario, const char *name, char *out, size_t n);

/* The two halves of scenario_run_one, for `runbook test`'s workers, which
 * run scenario after scenario in one process: a fresh engine for a scenario
 * (NULL and err filled on failure), and the scenario run in it, its verdict
 * line printed on stdout -- once: the engine is then only good for
 * engine_free.  coverage: judge which steps and calls the runbook's
 * scenario exercised too (--coverage; scenario_run_one always does).
 * scratch: the scratch directory, which the caller confined this process
 * to (scenario_confine) and which is emptied afterwards; NULL: the scenario
 * gets one of its own, in a confined process of its own. */
typedef struct rb_engine rb_engine;
rb_engine *scenario_engine(const rb_module *modules, char *err, size_t errlen);
int scenario_run(rb_engine *E, const char *path, int coverage, const char *scratch);

/* What the kernel lets the process of a scenario do, for good (Landlock):
 * write only below scratch and to /dev/null, no TCP bind or connect, no
 * signal to a process outside its own.  0, or -1 with errno (ENOSYS: no
 * Landlock).  runbook test calls it in each scenario's own process. */
int scenario_confine(const char *scratch);
/* ... and below also (NULL: nothing more): a worker's audit log directory
 * under `runbook test --audit`, outside the scenario's scratch directory,
 * so the runbook's fs never reaches it */
int scenario_confine_also(const char *scratch, const char *also);

#endif
