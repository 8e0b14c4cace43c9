/*
 * repl: the incident REPL acts live, and asks before each action that
 * changes something unless --yes was given or `.confirm off` said so.  Its
 * `.dry on` switches the engine to the dry-run strategy and back.
 */
#include "engine.h"
#include "journal.h"
#include "prompt.h"

static int before_action(rb_engine *E, lua_State *L, const rb_action *a)
{
    if (!E->confirm_actions || E->assume_yes)
        return 1;
    /* refused for want of someone to ask: on the record too, as a "no" */
    if (prompt_open_tty(E) != 0)
        journal_answer(E, L, "action", a->words, "refused: no terminal to ask (--yes approves)");
    int yes = prompt_yes_no(E, L, a->words);
    journal_answer(E, L, "action", a->words, yes ? "y" : "n");
    return yes;
}

const rb_strategy rb_mode_repl = {
    .name = "repl",
    .performs = 1,
    .before_action = before_action,
};
