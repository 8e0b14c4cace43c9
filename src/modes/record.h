/* `runbook run --record FILE.scenario.yaml`: a run written down as a
 * scenario (record.c, src/lua/record.lua). */
#ifndef RUNBOOK_RECORD_H
#define RUNBOOK_RECORD_H

#include "engine.h"

/* Can path be written as the recording?  0, or -1 with why in err.  Checked
 * before anything runs. */
int record_check(const char *path, char *err, size_t errlen);
/* Start recording every action of the run (before the runbook loads). */
void record_start(rb_engine *E);
/* Write the scenario: the runbook object at rb, the run's exit code.
 * Returns 0, or -1 after printing why. */
int record_finish(rb_engine *E, lua_State *L, int rb, const char *path, int exit_code);

#endif
