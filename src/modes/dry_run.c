/*
 * dry-run: reads run for real, so the rehearsal shows today's state; calls
 * that change something are rehearsed where the primitive can prove it
 * harmlessly (a database's rolled-back savepoint) and otherwise simulated.
 * An endpoint configured nowhere does not stop the rehearsal: it warns that
 * a live run would fail there, and goes on with a stand-in.
 */
#include "engine.h"
#include "journal.h"

static int missing(rb_engine *E, lua_State *L, const char *what)
{
    lua_pushfstring(L, "%s: a live run would fail here", what);
    journal_log(E, L, "warn", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
}

const rb_strategy rb_mode_dry_run = {
    .name = "dry-run",
    .performs = 0,
    .missing = missing,
};
