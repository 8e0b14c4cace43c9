/* One scenario run hermetically, its verdict printed as a JSON line
 * (scenario.c); `runbook test` (cmd_test.c) runs them in worker processes. */
#ifndef RUNBOOK_SCENARIO_H
#define RUNBOOK_SCENARIO_H

/* Exit code: 0 passed, 1 failed, 2 the scenario itself is malformed. */
#include "runbook/runbook.h"
/* Load the scenario judge (src/lua/scenario.lua) with the helpers it needs
 * from C: `runbook test` and `runbook check` read scenarios through it. */
void scenario_open_judge(lua_State *L);
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
 * scenario exercised too (--coverage; scenario_run_one always does). */
typedef struct rb_engine rb_engine;
rb_engine *scenario_engine(const rb_module *modules, char *err, size_t errlen);
int scenario_run(rb_engine *E, const char *path, int coverage);

#endif
