/*
 * dry-run: reads run for real, so the rehearsal shows today's state; calls
 * that change something are rehearsed where the primitive can prove it
 * harmlessly (a database's rolled-back savepoint) and otherwise simulated.
 * An endpoint configured nowhere does not stop the rehearsal: it warns that
 * a live run would fail there, and goes on with a stand-in.
 */
#include "dry_run.h"
#include "audit.h"
#include "engine.h"
#include "journal.h"
#include "landlock.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

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

/* The directory that holds path (which may not exist yet), resolved. */
static const char *dir_of(const char *path, char *out)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    return realpath(dirname(copy), out);
}

int dry_run_confine(rb_engine *E, const char *record)
{
    /* The audit database writes its -wal/-shm/-journal files beside it and
     * --record writes FILE.partial then renames it: Landlock grants those
     * by directory, so those two directories stay writable for the engine
     * (never for its children: they get /dev/null only, host.c).
     * /dev/tty: confine() and --confirm talk to the operator there. */
    char audit_dir[PATH_MAX], record_dir[PATH_MAX];
    const char *writable[5];
    int n = 0;
    if (E->audit && *audit_path(E->audit) && dir_of(audit_path(E->audit), audit_dir))
        writable[n++] = audit_dir;
    if (record && dir_of(record, record_dir))
        writable[n++] = record_dir;
    writable[n++] = "/dev/null";
    writable[n++] = "/dev/tty";
    writable[n] = NULL;
    return rb_landlock_confine(writable, 0);
}
