/*
 * --confirm: a decorator over live (or dry-run) that asks before each step
 * runs -- run it, skip it, run all the rest without asking, or quit.  The
 * question comes after the step's `when`, so a step that will not run is
 * never approved.
 */
#include "engine.h"
#include "journal.h"
#include "prompt.h"

static int before_step(rb_engine *E, lua_State *L, int index, int total, const char *name,
                       const char *description)
{
    if (!E->confirm_steps)
        return 'y';
    int c = prompt_step(E, index, total, name, description);
    char answer[2] = {(char)c, 0};
    lua_pushfstring(L, "[%d/%d] %s", index, total, name);
    journal_answer(E, L, "step", lua_tostring(L, -1), answer);
    lua_pop(L, 1);
    if (c == 'a') { /* all the rest without asking */
        E->confirm_steps = 0;
        c = 'y';
    }
    if (c == 'y')
        E->prompted = 1;
    return c;
}

const rb_strategy rb_mode_confirm = {
    .name = "confirm",
    .performs = 1,
    .before_step = before_step,
};
