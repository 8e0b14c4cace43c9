/*
 * The dry-run's own confinement: once a `run --dry-run` has opened what it
 * needs, the engine process asks the kernel (Landlock) to refuse it every
 * write but the audit log's and the --record output's, for good.
 */
#ifndef RB_DRY_RUN_H
#define RB_DRY_RUN_H

#include "engine.h"

/* Confine E's process: writes only below the audit log's directory, the
 * --record output's directory (record: its path, or NULL), /dev/null and
 * /dev/tty.  0: enforced; -1: not (rb_landlock_why_not() says why). */
int dry_run_confine(rb_engine *E, const char *record);

#endif
