/* One scenario run hermetically, its verdict printed as a JSON line
 * (scenario.c); `runbook test` (cmd_test.c) runs them as child processes. */
#ifndef RUNBOOK_SCENARIO_H
#define RUNBOOK_SCENARIO_H

/* Exit code: 0 passed, 1 failed, 2 the scenario itself is malformed. */
#include "runbook/runbook.h"
int scenario_run_one(const rb_module *modules, const char *path);

/* The runbook a scenario names: a path next to the scenario (with or
 * without .lua), else a library name.  0 and out filled, or -1. */
#include <stddef.h>
int scenario_find_runbook(const char *scenario, const char *name, char *out, size_t n);

#endif
