/* Unified diffs (src/codecs/udiff.c). */
#ifndef RUNBOOK_UDIFF_H
#define RUNBOOK_UDIFF_H

#include <lua.h>
#include <stddef.h>

/* Push the unified diff (diff -u's format, 3 lines of context) of old to
 * new, headed "--- from" / "+++ to"; an empty string when they are equal.
 * 0, or -1 (nothing pushed) when out of memory. */
int rb_unified_diff(lua_State *L, const char *from, const char *to, const char *old, size_t nold,
                    const char *new, size_t nnew);

#endif
