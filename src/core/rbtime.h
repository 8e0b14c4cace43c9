/*
 * Time as runbooks write it: RFC 3339 timestamps and durations such as
 * "1h30m" (src/core/rbtime.c).  The global `time` table, and the readers
 * the scenario judge shares with it, so that a scenario's `now:` and a
 * runbook's time.parse accept exactly the same text.
 */
#ifndef RUNBOOK_RBTIME_H
#define RUNBOOK_RBTIME_H

#include <lua.h>
#include <stddef.h>

/* "2024-05-01T09:00:00Z", "2024-05-01T11:00:00.250+02:00" -> unix seconds
 * in *t: 0, or -1 with why it is not an RFC 3339 time in why. */
int rb_rfc3339_parse(const char *s, double *t, char *why, size_t whylen);

/* "90s", "5m", "1h30m", "500ms", "2d", "1.5h", "90" -> seconds in *secs:
 * 0, or -1 (negative, unknown unit, empty, not finite). */
int rb_duration_parse(const char *s, double *secs);

/* Lua: (text) -> unix seconds, or nil and why.  For the scenario judge. */
int rb_rfc3339_lua(lua_State *L);

/* The global `time`: parse, duration, since, format. */
void mod_time_open(lua_State *L);

#endif
