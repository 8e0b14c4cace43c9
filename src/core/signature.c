/*
 * The one checker of calls (signature.h).  A signature is a short string,
 * parsed on each call (a few dozen bytes: cheaper than caching it):
 *
 *     "kind:str name?:str opts?:opts"
 *
 * parameters in order, `?` optional, after `:` the accepted types (str num
 * int bool table fn any opts, `|` between alternatives; default any), and
 * `...` last for any further arguments.  The parameter of type opts is the
 * options table: a table whose string keys must be among the row's
 * options.  Lua's convention for optional arguments holds: an optional
 * parameter the argument does not fit is skipped (kubectl.get("pods",
 * { selector = … }) leaves the name out), and nil fills an optional one.
 */
#include "signature.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

enum { T_STR = 1, T_NUM = 2, T_INT = 4, T_BOOL = 8, T_TABLE = 16, T_FN = 32, T_OPTS = 64 };
#define T_ANY 0x7f

typedef struct param {
    char name[32];
    unsigned types;
    int optional;
} param;

typedef struct parsed {
    param p[16];
    int n;
    int varargs;
} parsed;

static unsigned type_bit(const char *t, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } types[] = {{"str", T_STR},     {"num", T_NUM}, {"int", T_INT},   {"bool", T_BOOL},
                 {"table", T_TABLE}, {"fn", T_FN},   {"opts", T_OPTS}, {"any", T_ANY}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strlen(types[i].name) == n && strncmp(types[i].name, t, n) == 0)
            return types[i].bit;
    return 0;
}

/* 0 on success; a malformed signature is the declaring code's bug. */
static int parse(const char *sig, parsed *out)
{
    memset(out, 0, sizeof *out);
    for (const char *s = sig; *s;) {
        s += strspn(s, " ");
        size_t len = strcspn(s, " ");
        if (!len)
            break;
        if (len == 3 && strncmp(s, "...", 3) == 0) {
            out->varargs = 1;
        } else {
            if (out->n == (int)(sizeof out->p / sizeof *out->p))
                return -1;
            param *p = &out->p[out->n++];
            size_t nl = strcspn(s, "?: ");
            if (nl >= sizeof p->name || nl == 0)
                return -1;
            memcpy(p->name, s, nl);
            p->optional = s[nl] == '?';
            const char *t = s + nl + p->optional;
            p->types = T_ANY;
            if (*t == ':') {
                p->types = 0;
                for (t++; t < s + len;) {
                    size_t tl = strcspn(t, "| ");
                    unsigned bit = type_bit(t, tl);
                    if (!bit)
                        return -1;
                    p->types |= bit;
                    t += tl + (t[tl] == '|');
                }
            }
        }
        s += len;
    }
    return 0;
}

/* What an argument is, for binding: from a value on the stack, or from a
 * literal in the source (`runbook check`, where most are unknown). */
int sig_kind_of(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
        return SIG_NIL;
    case LUA_TSTRING:
        return SIG_STR;
    case LUA_TNUMBER:
        return lua_isinteger(L, idx) ? SIG_INT : SIG_NUM;
    case LUA_TBOOLEAN:
        return SIG_BOOL;
    case LUA_TTABLE:
        return SIG_TABLE;
    case LUA_TFUNCTION:
        return SIG_FN;
    default: /* userdata (db.null, a connection), threads: only any takes them */
        return SIG_OTHER;
    }
}

static int fits(int kind, unsigned types)
{
    switch (kind) {
    case SIG_UNKNOWN:
        return 1;
    case SIG_STR:
        return (types & T_STR) != 0;
    case SIG_INT:
        return (types & (T_STR | T_NUM | T_INT)) != 0;
    case SIG_NUM:
        return (types & (T_STR | T_NUM)) != 0;
    case SIG_BOOL:
        return (types & T_BOOL) != 0;
    case SIG_TABLE:
        return (types & (T_TABLE | T_OPTS)) != 0;
    case SIG_FN:
        return (types & T_FN) != 0;
    default:
        return types == T_ANY;
    }
}

/* Bind n arguments of the given kinds to the parameters: opts_of[i] is 1
 * for the argument that is the options table.  Returns 0, or the problem:
 * in *arg the argument (0-based) and in *par the parameter it concerns. */
enum { BIND_OK, BIND_MISSING, BIND_TYPE, BIND_TOO_MANY };

static int bind(const parsed *ps, const int *kinds, int n, int *opts_of, int *arg, int *par)
{
    int i = 0;
    for (int p = 0; p < ps->n; p++) {
        const param *pr = &ps->p[p];
        *arg = i;
        *par = p;
        if (i >= n) {
            if (pr->optional)
                continue;
            return BIND_MISSING;
        }
        if (kinds[i] != SIG_NIL && fits(kinds[i], pr->types)) {
            if (opts_of)
                opts_of[i] = (pr->types & T_OPTS) && pr->types != T_ANY && kinds[i] == SIG_TABLE;
            i++;
            continue;
        }
        if (kinds[i] == SIG_NIL && (pr->optional || pr->types == T_ANY)) {
            i++;
            continue;
        }
        /* an optional parameter the argument does not fit is left out,
         * unless it is the last: then the argument is misplaced */
        if (pr->optional && (p < ps->n - 1 || ps->varargs))
            continue;
        return BIND_TYPE;
    }
    *arg = i;
    if (!ps->varargs)
        for (; i < n; i++)
            if (kinds[i] != SIG_NIL)
                return BIND_TOO_MANY;
    return BIND_OK;
}

int sig_options_arg(const char *sig, const int *kinds, int n, int *opts_of)
{
    parsed ps;
    int arg, par;
    if (n > 64)
        return -1;
    for (int i = 0; i < n; i++)
        opts_of[i] = 0;
    if (!sig || parse(sig, &ps) != 0)
        return -1;
    return bind(&ps, kinds, n, opts_of, &arg, &par) == BIND_OK ? 0 : -1;
}

static const char *type_words(unsigned types, char *buf, size_t n)
{
    static const char *const words[] = {"a string", "a number",   "an integer",      "a boolean",
                                        "a table",  "a function", "an options table"};
    buf[0] = '\0';
    int k = 0;
    for (int i = 0; i < 7; i++)
        if (types & (1u << i))
            snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", k++ ? " or " : "", words[i]);
    return buf;
}

const char *sig_usage(const char *name, const char *sig, char *buf, size_t n)
{
    parsed ps;
    if (!sig || parse(sig, &ps) != 0) {
        snprintf(buf, n, "%s(...)", name);
        return buf;
    }
    snprintf(buf, n, "%s(", name);
    int first = 1;
    for (int i = 0; i < ps.n; i++) {
        size_t l = strlen(buf);
        if (ps.p[i].optional) {
            snprintf(buf + l, n - l, "%s[%s%s]", first ? "" : " ", first ? "" : ", ", ps.p[i].name);
        } else {
            snprintf(buf + l, n - l, "%s%s", first ? "" : ", ", ps.p[i].name);
        }
        first = 0;
    }
    size_t l = strlen(buf);
    snprintf(buf + l, n - l, "%s)", ps.varargs ? (first ? "..." : ", ...") : "");
    return buf;
}

/* Raise msg at the runbook's line, with the usage line when there is one. */
static void raise_at(lua_State *L, int level, const char *msg, const char *usage)
{
    luaL_where(L, level);
    lua_pushstring(L, msg);
    if (usage)
        lua_pushfstring(L, "; usage: %s", usage);
    else
        lua_pushliteral(L, "");
    lua_concat(L, 3);
    lua_error(L);
}

/* The keys of the options table at idx must be among options. */
static void check_options(lua_State *L, const char *name, const char *options, int idx, int level)
{
    const char *cand[64];
    char store[1024];
    int nc = 0;
    snprintf(store, sizeof store, "%s", options ? options : "");
    for (char *save, *k = strtok_r(store, " ", &save); k && nc < 63; k = strtok_r(NULL, " ", &save))
        cand[nc++] = k;
    cand[nc] = NULL;
    lua_pushnil(L);
    /* the smallest unknown key, so the message does not depend on table order */
    const char *bad = NULL;
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue; /* exec{ "df", "-h" }: the array part is the argv */
        const char *k = lua_tostring(L, -1);
        int known = 0;
        for (int i = 0; i < nc && !known; i++)
            known = strcmp(cand[i], k) == 0;
        if (!known && (!bad || strcmp(k, bad) < 0))
            bad = k; /* stays alive: the table holds it */
    }
    if (!bad)
        return;
    const char *near = rb_did_you_mean(bad, cand, nc);
    char hint[160] = "";
    if (near)
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    else if (nc)
        snprintf(hint, sizeof hint, " (it takes: %s)", options);
    else
        snprintf(hint, sizeof hint, " (it takes none)");
    char msg[512];
    snprintf(msg, sizeof msg, "unknown option '%s' for %s%s", bad, name, hint);
    raise_at(L, level, msg, NULL);
}

void sig_check(lua_State *L, const char *name, const char *sig, const char *options, int first,
               int level)
{
    if (!sig)
        return;
    parsed ps;
    if (parse(sig, &ps) != 0)
        luaL_error(L, "internal: malformed signature of %s: \"%s\"", name, sig);
    int n = lua_gettop(L) - first + 1;
    if (n > 64)
        n = 64; /* print's and log's varargs: only the declared ones matter */
    int kinds[64], opts_of[64] = {0}, arg, par;
    for (int i = 0; i < n; i++)
        kinds[i] = sig_kind_of(L, first + i);
    int why = bind(&ps, kinds, n < 0 ? 0 : n, opts_of, &arg, &par);
    char usage[256], want[96], msg[512];
    if (why == BIND_MISSING)
        snprintf(msg, sizeof msg, "%s: missing argument %d (%s)", name, arg + 1, ps.p[par].name);
    else if (why == BIND_TYPE)
        snprintf(msg, sizeof msg, "%s: argument %d (%s) must be %s, got %s", name, arg + 1,
                 ps.p[par].name, type_words(ps.p[par].types, want, sizeof want),
                 luaL_typename(L, first + arg));
    else if (why == BIND_TOO_MANY)
        snprintf(msg, sizeof msg, "%s: too many arguments (%d)", name, lua_gettop(L) - first + 1);
    if (why != BIND_OK)
        raise_at(L, level, msg, sig_usage(name, sig, usage, sizeof usage));
    for (int i = 0; i < n; i++)
        if (opts_of[i])
            check_options(L, name, options, first + i, level);
}

/* ---- the registry: what `runbook check` and `runbook reference` read ---- */
#define SIGS      "runbook.signatures"
#define SIG_OF_FN "runbook.signature_of"

static void push_registry_table(lua_State *L, const char *key, int weak_keys)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    if (weak_keys) {
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
}

void sig_declare(lua_State *L, const char *name, const char *sig, const char *options, int fn_idx)
{
    fn_idx = fn_idx ? lua_absindex(L, fn_idx) : 0;
    parsed ps;
    if (sig && parse(sig, &ps) != 0)
        luaL_error(L, "internal: malformed signature of %s: \"%s\"", name, sig);
    char usage[256];
    push_registry_table(L, SIGS, 0);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, sig);
    lua_setfield(L, -2, "sig");
    lua_pushstring(L, options ? options : "");
    lua_setfield(L, -2, "options");
    lua_pushstring(L, sig_usage(name, sig, usage, sizeof usage));
    lua_setfield(L, -2, "usage");
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    if (fn_idx) {
        push_registry_table(L, SIG_OF_FN, 1);
        lua_pushvalue(L, fn_idx);
        lua_pushstring(L, name);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
}

void sig_push_all(lua_State *L)
{
    push_registry_table(L, SIGS, 0);
}

void sig_push_by_function(lua_State *L)
{
    push_registry_table(L, SIG_OF_FN, 1);
}

/* signature.check(name, ...): the declared signature of name holds for the
 * arguments, else raise at the line that called the function calling
 * check (a wrapper's caller).  "mod:fn" names a method: self is skipped. */
static int l_check(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    push_registry_table(L, SIGS, 0);
    if (lua_getfield(L, -1, name) != LUA_TTABLE)
        return luaL_error(L, "signature.check: %s has no declared signature", name);
    lua_getfield(L, -1, "sig");
    lua_getfield(L, -2, "options");
    char sig[256], options[1024];
    snprintf(sig, sizeof sig, "%s", lua_tostring(L, -2));
    snprintf(options, sizeof options, "%s", lua_tostring(L, -1));
    lua_pop(L, 4);
    sig_check(L, name, sig, options, strchr(name, ':') ? 3 : 2, 2);
    return 0;
}

/* A wrapper's check: the strings are the wrapper's upvalues, so a call
 * costs the check itself, not a lookup of the declaration. */
static int l_check_wrapped(lua_State *L)
{
    const char *name = lua_tostring(L, 1);
    sig_check(L, name, lua_tostring(L, 2), lua_tostring(L, 3), strchr(name, ':') ? 5 : 4, 2);
    return 0;
}

/* signature.declare(name, sig [, options]) */
static int l_declare(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *sig = luaL_checkstring(L, 2);
    sig_declare(L, name, sig, luaL_optstring(L, 3, ""), 0);
    return 0;
}

/* signature.wrap(name, sig, options, fn) -> a function that checks its
 * arguments, then tail-calls fn (so fn's errors at level 2 still name the
 * runbook's line). */
static const char WRAPPER[] =
    "local check, name, sig, options, fn = ...\n"
    "return function(...) check(name, sig, options, ...) return fn(...) end\n";
#define WRAPPER_KEY "runbook.signature_wrapper"

static int l_wrap(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *sig = luaL_checkstring(L, 2);
    const char *options = luaL_optstring(L, 3, "");
    luaL_checktype(L, 4, LUA_TFUNCTION);
    if (lua_getfield(L, LUA_REGISTRYINDEX, WRAPPER_KEY) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        if (luaL_loadbuffer(L, WRAPPER, sizeof WRAPPER - 1, "=signature") != LUA_OK)
            return lua_error(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, WRAPPER_KEY);
    }
    lua_pushcfunction(L, l_check_wrapped);
    lua_pushvalue(L, 1);
    lua_pushstring(L, sig);
    lua_pushstring(L, options);
    lua_pushvalue(L, 4);
    lua_call(L, 5, 1);
    sig_declare(L, name, sig, options, -1);
    return 1;
}

int sig_open_module(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"check", l_check}, {"declare", l_declare}, {"wrap", l_wrap}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
