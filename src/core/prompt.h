/* Questions to the operator, asked on the controlling terminal (/dev/tty),
 * never on stdin: stdin may be a pipe feeding the runbook. */
#ifndef RUNBOOK_PROMPT_H
#define RUNBOOK_PROMPT_H

#include "engine.h"

/* Open /dev/tty into E->tty; 0 on success, -1 when there is no terminal. */
int prompt_open_tty(rb_engine *E);
/* "question [y/N]" -> 1 yes, 0 no.  Raises when there is no terminal. */
int prompt_yes_no(rb_engine *E, lua_State *L, const char *question);
/* The step-confirm prompt: returns 'y', 's', 'a' or 'q' ('q' also on EOF/^C). */
int prompt_step(rb_engine *E, int index, int total, const char *name, const char *description);

#endif
