/*
 * The global `time`: time.parse(rfc3339), time.duration("5m"),
 * time.since(t) and time.format(t).  A global like now(), not a stdlib
 * module: it is pure (no action, nothing outside the process) and reads the
 * engine's clock, so in a scenario it follows the virtual clock that `now:`
 * starts and sleep() moves.  Every escalation ladder needed the same
 * os.time arithmetic; this is it, once, with errors that quote the input.
 *
 * The calendar arithmetic is done here rather than with timegm/gmtime so
 * that no time zone setting (TZ) can change a result.
 */
#include "rbtime.h"
#include "engine.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_EXAMPLE    "\"2024-05-01T09:00:00Z\" or \"2024-05-01T11:00:00.5+02:00\""
#define DURATION_EXAMPLE "\"90s\", \"5m\", \"1h30m\", \"500ms\", \"2d\" or seconds"

/* ---- the calendar ---------------------------------------------------------- */

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil: exact for every year, no table) */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, int *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* RFC 3339's years: 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z */
#define FIRST_SECOND      (-62167219200.0)
#define AFTER_LAST_SECOND (253402300800.0)

/* ---- reading ------------------------------------------------------------- */

/* n decimal digits at *p into *out */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, const char *one_of)
{
    if (**p == '\0' || !strchr(one_of, **p))
        return -1;
    (*p)++;
    return 0;
}

static int why_not(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Seconds, the fraction, and the offset: what follows the date. */
static int parse_clock(const char *p, int *hh, int *mi, int *ss, double *frac, int *offset,
                       char *why, size_t len)
{
    if (digits(&p, 2, hh) || expect(&p, ":") || digits(&p, 2, mi) || expect(&p, ":") ||
        digits(&p, 2, ss))
        return why_not(why, len, "expected HH:MM:SS after the date");
    *frac = 0;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return why_not(why, len, "expected digits after the decimal point");
        for (double scale = 0.1; isdigit((unsigned char)*p); p++, scale /= 10)
            *frac += (*p - '0') * scale;
    }
    *offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om))
            return why_not(why, len, "expected an offset such as +02:00");
        if (oh > 23 || om > 59)
            return why_not(why, len, "offset %02d:%02d out of range", oh, om);
        *offset = sign * (oh * 3600 + om * 60);
    } else if (*p == '\0') {
        return why_not(why, len, "no time zone (add Z for UTC, or an offset such as +02:00)");
    } else {
        return why_not(why, len, "expected Z or an offset such as +02:00 after the seconds");
    }
    if (*p != '\0')
        return why_not(why, len, "unexpected text after the time zone");
    if (*hh > 23 || *mi > 59 || *ss > 60) /* 60: a leap second, as timegm reads it */
        return why_not(why, len, "time %02d:%02d:%02d out of range", *hh, *mi, *ss);
    return 0;
}

int rb_rfc3339_parse(const char *s, double *t, char *why, size_t len)
{
    const char *p = s;
    int y, m, d, hh = 0, mi = 0, ss = 0, offset = 0;
    double frac = 0;
    /* RFC 3339 5.6 allows a lower-case t and z, and a space for the T */
    if (digits(&p, 4, &y) || expect(&p, "-") || digits(&p, 2, &m) || expect(&p, "-") ||
        digits(&p, 2, &d))
        return why_not(why, len, "expected a date YYYY-MM-DD first");
    if (expect(&p, "Tt "))
        return why_not(why, len, "expected T and the time after the date");
    if (parse_clock(p, &hh, &mi, &ss, &frac, &offset, why, len) != 0)
        return -1;
    if (m < 1 || m > 12)
        return why_not(why, len, "month %02d out of range", m);
    if (d < 1 || d > days_in_month(y, m))
        return why_not(why, len, "day %02d out of range for %04d-%02d", d, y, m);
    *t = (double)(days_from_civil(y, m, d) * 86400 + hh * 3600 + mi * 60 + ss - offset) + frac;
    return 0;
}

int rb_duration_parse(const char *s, double *secs)
{
    static const struct {
        const char *name;
        double seconds;
    } units[] = {{"ms", 0.001}, {"s", 1},      {"m", 60},       {"h", 3600},
                 {"d", 86400},  {"w", 604800}, {"y", 31536000}, {NULL, 0}};
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    const char *end = s + n;
    double total = 0;
    int parts = 0;
    for (const char *p = s; p < end; parts++) {
        /* decimal only: strtod would take "inf", "1e9" and hex */
        const char *num = p;
        int dots = 0, figures = 0;
        for (; p < end && (isdigit((unsigned char)*p) || *p == '.'); p++)
            *p == '.' ? dots++ : figures++;
        char buf[64];
        size_t nlen = (size_t)(p - num);
        if (figures == 0 || dots > 1 || nlen >= sizeof buf)
            return -1;
        memcpy(buf, num, nlen);
        buf[nlen] = '\0';
        double v = strtod(buf, NULL);
        const char *unit = p;
        while (p < end && isalpha((unsigned char)*p))
            p++;
        size_t ulen = (size_t)(p - unit);
        if (ulen == 0) { /* a plain number is seconds, alone only: "1h30" is a typo */
            if (parts > 0 || p != end)
                return -1;
            total = v;
            parts++;
            break;
        }
        int found = 0;
        for (int i = 0; units[i].name; i++)
            if (strlen(units[i].name) == ulen && strncmp(units[i].name, unit, ulen) == 0) {
                total += v * units[i].seconds;
                found = 1;
            }
        if (!found)
            return -1;
    }
    if (parts == 0 || !isfinite(total))
        return -1;
    *secs = total;
    return 0;
}

/* ---- Lua ------------------------------------------------------------------- */

/* raise "file:line: fmt" at the runbook's line */
static int fail(lua_State *L, const char *fmt, ...)
{
    rb_where(L);
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

/* a string argument as an error message quotes it: at most 60 bytes */
static const char *quoted(lua_State *L, const char *s)
{
    size_t n = strlen(s);
    if (n <= 60)
        return lua_pushfstring(L, "\"%s\"", s);
    return lua_pushfstring(L, "\"%s...\"", lua_pushlstring(L, s, 57));
}

static double engine_clock(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    return rb_wallclock() + (E ? E->vclock : 0);
}

/* text -> unix seconds, or raise naming fname */
static double parse_or_raise(lua_State *L, const char *fname, const char *s)
{
    double t;
    char why[128];
    if (rb_rfc3339_parse(s, &t, why, sizeof why) != 0)
        fail(L, "%s: %s is not an RFC 3339 time: %s (expected e.g. " PARSE_EXAMPLE ")", fname,
             quoted(L, s), why);
    return t;
}

/* argument i: unix seconds (a number) or an RFC 3339 time (a string) */
static double time_arg(lua_State *L, int i, const char *fname)
{
    if (lua_type(L, i) == LUA_TNUMBER) {
        double t = lua_tonumber(L, i);
        if (!isfinite(t))
            fail(L, "%s: expected unix seconds or an RFC 3339 time, got %s", fname,
                 isnan(t) ? "NaN" : "infinity");
        return t;
    }
    if (lua_type(L, i) != LUA_TSTRING)
        fail(L,
             "%s: expected unix seconds or an RFC 3339 time such as \"2024-05-01T09:00:00Z\", "
             "got %s",
             fname, luaL_typename(L, i));
    return parse_or_raise(L, fname, lua_tostring(L, i));
}

/* time.parse(text) -> unix seconds (a float: fractions kept) */
static int l_parse(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return fail(L,
                    "time.parse: expected an RFC 3339 time such as \"2024-05-01T09:00:00Z\", "
                    "got %s",
                    luaL_typename(L, 1));
    lua_pushnumber(L, parse_or_raise(L, "time.parse", lua_tostring(L, 1)));
    return 1;
}

/* time.duration("1h30m" or seconds) -> seconds */
static int l_duration(lua_State *L)
{
    double secs;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        secs = lua_tonumber(L, 1);
        if (!(secs >= 0) || !isfinite(secs)) {
            char num[32];
            snprintf(num, sizeof num, "%g", secs);
            return fail(L, "time.duration: bad duration %s (expected e.g. " DURATION_EXAMPLE ")",
                        num);
        }
        lua_pushnumber(L, secs);
        return 1;
    }
    if (lua_type(L, 1) != LUA_TSTRING)
        return fail(L, "time.duration: expected a duration such as \"5m\" or seconds, got %s",
                    luaL_typename(L, 1));
    const char *s = lua_tostring(L, 1);
    if (rb_duration_parse(s, &secs) != 0)
        return fail(L, "time.duration: bad duration %s (expected e.g. " DURATION_EXAMPLE ")",
                    quoted(L, s));
    lua_pushnumber(L, secs);
    return 1;
}

/* time.since(t) -> seconds from t to the engine's now (negative if t is
 * ahead) */
static int l_since(lua_State *L)
{
    double t = time_arg(L, 1, "time.since");
    lua_pushnumber(L, engine_clock(L) - t);
    return 1;
}

/* time.format([t]) -> "2024-05-01T09:00:00.000Z" (UTC, milliseconds); t
 * defaults to now */
static int l_format(lua_State *L)
{
    double t = lua_isnoneornil(L, 1) ? engine_clock(L) : time_arg(L, 1, "time.format");
    if (!(t >= FIRST_SECOND && t < AFTER_LAST_SECOND - 0.0005)) {
        char num[32];
        snprintf(num, sizeof num, "%.0f", t);
        return fail(L, "time.format: %s is out of range (years 0000 to 9999)", num);
    }
    /* rounded to the millisecond, so that format(parse(x)) gives x back:
     * .123 is 0.12299999... as a double */
    long long ms = llround(t * 1000.0);
    long long secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int milli = (int)(ms - secs * 1000);
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int in_day = (int)(secs - days * 86400), y, m, d;
    civil_from_days(days, &y, &m, &d);
    char out[40];
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, in_day / 3600,
             in_day / 60 % 60, in_day % 60, milli);
    lua_pushstring(L, out);
    return 1;
}

int rb_rfc3339_lua(lua_State *L)
{
    double t;
    char why[128];
    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushnil(L);
        lua_pushfstring(L, "expected a string, got %s", luaL_typename(L, 1));
        return 2;
    }
    if (rb_rfc3339_parse(lua_tostring(L, 1), &t, why, sizeof why) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushnumber(L, t);
    return 1;
}

void mod_time_open(lua_State *L)
{
    /* the signatures raise for a missing, misplaced or extra argument; the
     * functions still refuse a number where only text will do */
    static const rb_fn rows[] = {
        {.name = "parse", .fn = l_parse, .cls = RB_PURE, .sig = "text:str"},
        {.name = "duration", .fn = l_duration, .cls = RB_PURE, .sig = "d:str|num"},
        {.name = "since", .fn = l_since, .cls = RB_PURE, .sig = "t:str|num"},
        {.name = "format", .fn = l_format, .cls = RB_PURE, .sig = "t?:str|num"},
        {.name = NULL}};
    rb_register(L, "time", rows);
}
