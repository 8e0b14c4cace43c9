/*
 * Typed params: string (default), number, boolean, list.  Validated before
 * any step runs; precedence --param > the --env environment's params >
 * runbook.yaml params > default.  Values from the command line are strings
 * and are converted; values from YAML are already typed and only checked.
 */
#include "engine.h"
#include "rbfile.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const TYPES[] = {"string", "number", "boolean", "list", NULL};
static const char *const SPEC_KEYS[] = {"type",     "default", "help",    "secret",
                                        "required", "choices", "example", NULL};

static int param_error(lua_State *L, const char *fmt, ...)
{
    rb_engine *E = rb_engine_of(L);
    if (E)
        E->input_error = 1;
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return lua_error(L);
}

static const char *spec_type(lua_State *L, int spec)
{
    const char *t = "string";
    if (lua_getfield(L, spec, "type") == LUA_TSTRING)
        t = lua_tostring(L, -1);
    lua_pop(L, 1);
    for (int i = 0; TYPES[i]; i++)
        if (strcmp(t, TYPES[i]) == 0)
            return TYPES[i];
    return NULL;
}

static int is_secret(lua_State *L, int spec)
{
    return rb_opt_bool(L, spec, "secret", 0);
}

/* A number must be finite: "1e400" reads as inf, which no runbook means. */
static void check_finite(lua_State *L, const char *name, int idx, int secret, const char *src)
{
    if (lua_isinteger(L, idx) || isfinite(lua_tonumber(L, idx)))
        return;
    if (secret)
        param_error(L, "param '%s' (secret): the value given is not a finite number (%s)", name,
                    src);
    param_error(L, "param '%s' must be a finite number, got '%s' (%s)", name, lua_tostring(L, idx),
                src);
}

/* Convert the value at top (from the command line when raw, else typed) to
 * type t; replaces it.  Raises naming the param and the source -- and the
 * value, unless the param is secret: a validation error is printed, logged
 * and audited like any other. */
static void convert(lua_State *L, const char *name, const char *t, int raw, const char *src,
                    int secret)
{
    int top = lua_gettop(L);
    int vt = lua_type(L, top);
    if (strcmp(t, "string") == 0) {
        if (vt == LUA_TSTRING)
            return;
        if (vt == LUA_TNUMBER) {
            lua_pushstring(L, lua_tostring(L, top));
            lua_replace(L, top);
            return;
        }
    } else if (strcmp(t, "number") == 0) {
        if (vt == LUA_TNUMBER) {
            check_finite(L, name, top, secret, src);
            return;
        }
        if (vt == LUA_TSTRING && lua_stringtonumber(L, lua_tostring(L, top))) {
            check_finite(L, name, top, secret, src); /* names the value as given */
            lua_replace(L, top);
            return;
        }
    } else if (strcmp(t, "boolean") == 0) {
        if (vt == LUA_TBOOLEAN)
            return;
        if (vt == LUA_TSTRING) {
            const char *s = lua_tostring(L, top);
            int v = -1;
            if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1") || !strcmp(s, "on"))
                v = 1;
            else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0") ||
                     !strcmp(s, "off"))
                v = 0;
            if (v >= 0) {
                lua_pushboolean(L, v);
                lua_replace(L, top);
                return;
            }
        }
    } else if (strcmp(t, "list") == 0) {
        if (vt == LUA_TTABLE) {
            /* a YAML sequence, or repeated --param: every item a string */
            lua_Integer n = (lua_Integer)lua_rawlen(L, top);
            lua_createtable(L, (int)n, 0);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, top, i);
                if (raw && lua_type(L, -1) == LUA_TSTRING) {
                    /* each repetition may itself be a comma list */
                    const char *s = lua_tostring(L, -1);
                    lua_pop(L, 1);
                    lua_Integer k = (lua_Integer)lua_rawlen(L, -1);
                    const char *p = s;
                    while (*p) {
                        const char *comma = strchr(p, ',');
                        size_t len = comma ? (size_t)(comma - p) : strlen(p);
                        while (len && (*p == ' ')) {
                            p++;
                            len--;
                        }
                        while (len && p[len - 1] == ' ')
                            len--;
                        if (len) {
                            lua_pushlstring(L, p, len);
                            lua_rawseti(L, -2, ++k);
                        }
                        if (!comma)
                            break;
                        p = comma + 1;
                    }
                    continue;
                }
                if (lua_type(L, -1) == LUA_TNUMBER)
                    check_finite(L, name, -1, secret, src);
                if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                    param_error(L, "param '%s' (%s): list items must be strings, item %d is a %s",
                                name, src, (int)i, luaL_typename(L, -1));
                lua_pushstring(L, lua_tostring(L, -1));
                lua_replace(L, -2);
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            }
            lua_replace(L, top);
            return;
        }
        if (vt == LUA_TSTRING) {
            lua_createtable(L, 1, 0);
            lua_pushvalue(L, top);
            lua_rawseti(L, -2, 1);
            lua_replace(L, top);
            raw = 1;
            convert(L, name, t, raw, src, secret);
            return;
        }
    }
    if (vt == LUA_TTABLE && raw) {
        /* from the command line: one value unless the type is a list */
        lua_rawgeti(L, top, (lua_Integer)lua_rawlen(L, top));
        lua_replace(L, top);
        convert(L, name, t, raw, src, secret);
        return;
    }
    if (secret)
        param_error(L, "param '%s' (secret) must be a %s, and the value given is not (%s)", name, t,
                    src);
    param_error(L, "param '%s' must be a %s, got %s%s%s%s (%s)", name, t,
                vt == LUA_TSTRING ? "'" : "", vt == LUA_TSTRING ? "" : luaL_typename(L, top),
                vt == LUA_TSTRING ? lua_tostring(L, top) : "", vt == LUA_TSTRING ? "'" : "", src);
}

/* choices: a non-empty list of values of the param's type (of its items'
 * type, strings, for a list param). */
static void check_choices(lua_State *L, const char *name, int spec, const char *t)
{
    if (lua_getfield(L, spec, "choices") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    int choices = lua_gettop(L);
    const char *item = strcmp(t, "list") == 0 ? "string" : t;
    lua_Integer n = lua_istable(L, choices) ? (lua_Integer)lua_rawlen(L, choices) : 0;
    if (n == 0)
        param_error(L,
                    "runbook{}: param '%s': choices must be a non-empty list of %ss, e.g. "
                    "choices = { ... }, got %s",
                    name, item,
                    lua_istable(L, choices) ? "an empty table" : luaL_typename(L, choices));
    lua_pushnil(L);
    while (lua_next(L, choices)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n)
            param_error(L, "runbook{}: param '%s': choices must be a list of %ss, not a mapping",
                        name, item);
    }
    int want = strcmp(item, "number") == 0    ? LUA_TNUMBER
               : strcmp(item, "boolean") == 0 ? LUA_TBOOLEAN
                                              : LUA_TSTRING;
    for (lua_Integer i = 1; i <= n; i++) {
        int ty = lua_rawgeti(L, choices, i);
        if (ty != want || (ty == LUA_TNUMBER && !isfinite(lua_tonumber(L, -1))))
            param_error(L,
                        "runbook{}: param '%s': choices[%d] must be a %s%s (the param's type), "
                        "got %s",
                        name, (int)i, want == LUA_TNUMBER ? "finite " : "", item,
                        luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

void params_check_spec(lua_State *L, const char *name, int spec)
{
    spec = lua_absindex(L, spec);
    if (!lua_istable(L, spec))
        param_error(L,
                    "runbook{}: param '%s' must be declared with a table, e.g. { default = "
                    "..., help = \"...\" }",
                    name);
    lua_pushnil(L);
    while (lua_next(L, spec)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
        int known = 0;
        for (int i = 0; SPEC_KEYS[i]; i++)
            known |= strcmp(k, SPEC_KEYS[i]) == 0;
        if (!known) {
            lua_pop(L, 1);
            param_error(L,
                        "runbook{}: param '%s' has unknown field '%s' (known: type, default, help, "
                        "secret, required, choices, example)",
                        name, k);
        }
    }
    const char *t = spec_type(L, spec);
    if (!t) {
        lua_getfield(L, spec, "type");
        param_error(L,
                    "runbook{}: param '%s' has unknown type '%s' (string, number, boolean, list)",
                    name, luaL_tolstring(L, -1, NULL));
    }
    int secret = is_secret(L, spec);
    if (lua_getfield(L, spec, "default") != LUA_TNIL)
        convert(L, name, t, 0, "its default", secret);
    lua_pop(L, 1);
    check_choices(L, name, spec, t);
}

/* The value on top is none of choices: raise listing them, with the one
 * meant when it is a typo away -- unless the param is secret, whose value
 * no message quotes or hints at. */
static void not_chosen(lua_State *L, const char *name, int choices, int secret)
{
    int strings = lua_type(L, -1) == LUA_TSTRING;
    const char *given = luaL_tolstring(L, -1, NULL);
    lua_Integer n = (lua_Integer)lua_rawlen(L, choices);
    lua_createtable(L, (int)n, 0); /* their texts, alive while names[] points at them */
    int texts = lua_gettop(L);
    const char *names[256];
    int k = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, choices, i);
        luaL_tolstring(L, -1, NULL);
        lua_rawseti(L, texts, i);
        lua_pop(L, 1);
        lua_rawgeti(L, texts, i);
        if (k < (int)(sizeof names / sizeof *names))
            names[k++] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addstring(&b, ", ");
        lua_rawgeti(L, texts, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    const char *list = lua_tostring(L, -1);
    if (secret)
        param_error(L, "param '%s' (secret): the value given is not one of %s", name, list);
    /* "12" for 13 is no typo: only words are suggested */
    const char *near = strings ? rb_did_you_mean(given, names, k) : NULL;
    if (near)
        param_error(L, "param '%s': '%s' is not one of %s (did you mean '%s'?)", name, given, list,
                    near);
    param_error(L, "param '%s': '%s' is not one of %s", name, given, list);
}

/* Is the value at v one of choices (a list param: is every item)?  Raises
 * naming the param and the rule -- and the value, unless it is secret. */
static void check_chosen(lua_State *L, const char *name, int v, int choices, int secret)
{
    v = lua_absindex(L, v);
    choices = lua_absindex(L, choices);
    int list = lua_istable(L, v);
    lua_Integer items = list ? (lua_Integer)lua_rawlen(L, v) : 1;
    lua_Integer n = (lua_Integer)lua_rawlen(L, choices);
    for (lua_Integer k = 1; k <= items; k++) {
        if (list)
            lua_rawgeti(L, v, k);
        else
            lua_pushvalue(L, v);
        int ok = 0;
        for (lua_Integer i = 1; i <= n && !ok; i++) {
            lua_rawgeti(L, choices, i);
            ok = lua_compare(L, -1, -2, LUA_OPEQ);
            lua_pop(L, 1);
        }
        if (!ok)
            not_chosen(L, name, choices, secret);
        lua_pop(L, 1);
    }
}

static void push_input(lua_State *L, int in, const char *which, const char *name)
{
    if (!in || lua_getfield(L, in, which) != LUA_TTABLE) {
        if (in)
            lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* --param servce=x: the declared names, sorted, and the one meant when it
 * is a typo away.  Raises. */
static void undeclared_param(lua_State *L, const char *name, int spec)
{
    const char *names[256];
    int n = 0;
    luaL_Buffer b;
    if (spec)
        rb_push_sorted_keys(L, spec);
    else
        lua_newtable(L);
    int keys = lua_gettop(L);
    lua_Integer k = (lua_Integer)lua_rawlen(L, keys);
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= k; i++) {
        if (i > 1)
            luaL_addstring(&b, ", ");
        lua_rawgeti(L, keys, i);
        if (n < (int)(sizeof names / sizeof *names))
            names[n++] = lua_tostring(L, -1); /* kept alive by keys */
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    const char *near = rb_did_you_mean(name, names, n);
    if (near)
        param_error(L,
                    "--param %s: the runbook declares no such param; did you mean '%s'? "
                    "(declared: %s)",
                    name, near, lua_tostring(L, -1));
    param_error(L, "--param %s: the runbook declares no such param (declared: %s)", name,
                k ? lua_tostring(L, -1) : "none");
}

void params_resolve(lua_State *L, int spec, int in, int strict)
{
    spec = lua_absindex(L, spec);
    if (in)
        in = lua_absindex(L, in);
    lua_newtable(L); /* resolved */
    int out = lua_gettop(L);
    if (spec && !lua_isnil(L, spec)) {
        if (!lua_istable(L, spec))
            param_error(L, "runbook{}: params must be a table of param declarations");
        lua_pushnil(L);
        while (lua_next(L, spec)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                param_error(L, "runbook{}: param names must be strings");
            const char *name = lua_tostring(L, -2);
            int ps = lua_gettop(L);
            params_check_spec(L, name, ps);
            const char *t = spec_type(L, ps);
            int secret = is_secret(L, ps);
            static const char *const sources[] = {"cli", "env", "config"};
            static const char *const what[] = {"from --param", "from the --env environment",
                                               "from runbook.yaml"};
            int found = 0;
            for (int s = 0; s < 3 && !found; s++) {
                push_input(L, in, sources[s], name);
                if (!lua_isnil(L, -1)) {
                    convert(L, name, t, s == 0, what[s], secret);
                    found = 1;
                } else {
                    lua_pop(L, 1);
                }
            }
            if (!found) {
                if (lua_getfield(L, ps, "default") != LUA_TNIL) {
                    convert(L, name, t, 0, "its default", secret);
                    found = 1;
                } else {
                    lua_pop(L, 1);
                }
            }
            if (!found) {
                if (strict && rb_opt_bool(L, ps, "required", 0)) {
                    const char *help = rb_opt_string(L, ps, "help");
                    param_error(L, "param '%s' is required: pass --param %s=VALUE%s%s%s", name,
                                name, help ? " (" : "", help ? help : "", help ? ")" : "");
                }
                lua_settop(L, ps - 1); /* keep the key */
                continue;
            }
            if (lua_getfield(L, ps, "choices") == LUA_TTABLE)
                check_chosen(L, name, -2, -1, secret);
            lua_pop(L, 1);
            /* a secret's value is registered by rb_secret_params, every type */
            lua_setfield(L, out, name);
            lua_settop(L, ps - 1);
        }
    }
    /* a --param that the runbook does not declare is a typo until proven otherwise */
    if (strict && in && lua_getfield(L, in, "cli") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pop(L, 1);
            const char *name = lua_tostring(L, -1);
            int declared = spec && lua_istable(L, spec) && lua_getfield(L, spec, name) != LUA_TNIL;
            if (spec && lua_istable(L, spec))
                lua_pop(L, 1);
            if (!declared)
                undeclared_param(L, name, spec && lua_istable(L, spec) ? spec : 0);
        }
    }
    lua_settop(L, out);
}
