/* The module table of the runbook binary (src/cli/modules.c). */
#ifndef RUNBOOK_CLI_MODULES_H
#define RUNBOOK_CLI_MODULES_H

#include "runbook/runbook.h"

extern const rb_module rb_builtin_modules[];

#endif
