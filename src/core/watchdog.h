/*
 * The watchdog: the last resort that keeps "a run can always be stopped"
 * true when the main thread is stuck inside one C call that does not return
 * (string.find backtracking, a blocking read): Lua's count hook, which turns
 * a stop request into an error, never runs there.
 *
 * A thread, started with the run, watches a heartbeat that the main thread
 * bumps wherever it makes progress (the count hook, each turn of the event
 * loop).  When a stop is pending -- a SIGINT/SIGTERM, or the deadline of
 * the task being resumed has passed -- and the main thread is running a
 * task (not waiting in the loop's poll, which answers stops by itself) with
 * no heartbeat for WATCHDOG_GRACE seconds, the watchdog ends the children's
 * process groups, records the step and run end in the audit log through a
 * connection of its own, prints one line on stderr and _exits with the
 * code the normal path uses (1 timed out, 130 interrupted).  It never
 * touches the Lua state.
 */
#ifndef RUNBOOK_WATCHDOG_H
#define RUNBOOK_WATCHDOG_H

#include "engine.h"

/* the normal stop path answers within 1 s; three means the main thread is stuck */
#define WATCHDOG_GRACE 3.0

/* Start the thread for E's run (runner_start); no-op for scenarios, the
 * REPL and when already started. */
void watchdog_start(rb_engine *E);
/* What the run's records say: fields_json (malloc'd, taken) is the run
 * record's fields as journal_run_fields wrote them, redacted; at the start
 * (start_journaled 0: the watchdog writes a start record before the end),
 * then again once journal_run_start has recorded the run (1). */
void watchdog_arm(rb_engine *E, char *fields_json, int start_journaled);
/* The step being run (name redacted by the caller; copied), for its record. */
void watchdog_step(int index, const char *name, double start);
/* The thread runs (a run of this process, not a scenario or the REPL). */
int watchdog_active(void);
/* The run's end is journaled, or the engine is freed: stop and join. */
void watchdog_stop(void);

/* Main thread: progress. */
void watchdog_beat(void);
/* Main thread: waiting in the event loop's poll (1) or not (0). */
void watchdog_waiting(int on);
/* Main thread: a task is resumed with deadline (monotonic, 0 none) and why;
 * saved keeps the outer one for watchdog_task_leave (tasks nest). */
typedef struct watchdog_task {
    long long deadline_ns;
    const char *why;
    int depth;
} watchdog_task;
void watchdog_task_enter(double deadline, const char *why, watchdog_task *saved);
void watchdog_task_leave(const watchdog_task *saved);

#endif
