/*
 * The kubectl module (SPEC §3, §4): kubectl.get, describe, logs, top, scale,
 * rollout_status/restart/undo/history, set_env, set_image, delete, apply,
 * wait, exec_in and run, over the real `kubectl` CLI, which owns kubeconfig,
 * contexts and auth plugins.
 *
 * Every call is built into an argv the same way in describe() and in the
 * call itself.  The action's words are that command line as an operator
 * would type it -- `kubectl scale deployment/x --replicas=5 -n ns` -- and
 * the class follows kubectl's verb: get describe logs top explain version
 * api-resources `auth can-i` `rollout status/history` diff wait read,
 * everything else mutates.  Where kubectl can print JSON, `-o json` is added
 * to the argv (not to the words) and stdout is decoded with json.decode.
 *
 * Global options, by precedence: the call's opts, kubectl.defaults{...},
 * runbook.yaml `environments.<env>.kubectl`, then top-level `kubectl`:
 * context (--context), namespace (-n), kubeconfig (--kubeconfig).
 *
 * The process runs through registry["runbook.exec_raw"], the un-funnelled
 * exec: the funnel has already classified and will record this action.  A
 * non-zero exit raises "kubectl <words>: <kubectl's error line>" unless the
 * call says check = false.
 *
 * scale and rollout_undo return the object after the change: kubectl prints
 * it as it was before, so a live call that succeeded reads it back with
 * `kubectl get` inside the same action (readback()).
 */
#include "config.h"
#include "engine.h"
#include "primitives.h"
#include "runbook/runbook.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAW_KEY      "runbook.exec_raw"
#define DECODE_KEY   "runbook.kubectl.decode"
#define ENCODE_KEY   "runbook.kubectl.encode"
#define DEFAULTS_KEY "runbook.kubectl.defaults"

/* how a call's stdout becomes its result */
enum out { K_OUT_JSON, K_OUT_TEXT, K_OUT_RESULT, K_OUT_RUN };

enum fn {
    F_GET,
    F_DESCRIBE,
    F_LOGS,
    F_TOP,
    F_SCALE,
    F_ROLLOUT_STATUS,
    F_ROLLOUT_RESTART,
    F_ROLLOUT_UNDO,
    F_ROLLOUT_HISTORY,
    F_SET_ENV,
    F_SET_IMAGE,
    F_DELETE,
    F_APPLY,
    F_WAIT,
    F_EXEC_IN,
    F_RUN
};

/* Stack layout of a call once built: 1..3 the arguments, then these. */
enum { S_ARGV = 4, S_WORDS, S_INFO, S_RESULT };

/* ---- options --------------------------------------------------------------- */

/* Push the kubectl section of runbook.yaml for env (NULL: top level), or nil. */
static void push_conf(lua_State *L, const char *env)
{
    rb_engine *E = rb_engine_of(L);
    if (!E || !E->config) {
        lua_pushnil(L);
        return;
    }
    config_push(E->config, L, env, "kubectl");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        luaL_error(L, "runbook.yaml: %s%s%skubectl must be a mapping, got %s",
                   env ? "environments." : "", env ? env : "", env ? "." : "",
                   luaL_typename(L, -1));
}

/* A global option: opts[key], kubectl.defaults[key], the environment's
 * runbook.yaml kubectl.<key>, the top-level one; NULL when none.  The string
 * stays referenced by the table it came from. */
static const char *global_opt(lua_State *L, int opts, const char *key)
{
    const char *v = rb_opt_string(L, opts, key);
    if (v)
        return v;
    int top = lua_gettop(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, DEFAULTS_KEY) == LUA_TTABLE &&
        lua_getfield(L, -1, key) == LUA_TSTRING)
        v = lua_tostring(L, -1);
    lua_settop(L, top);
    if (v)
        return v;
    rb_engine *E = rb_engine_of(L);
    for (int pass = 0; E && E->config && pass < 2; pass++) {
        const char *env = pass == 0 ? E->env_name : NULL;
        if (pass == 0 && !env)
            continue;
        top = lua_gettop(L);
        push_conf(L, env);
        if (lua_istable(L, -1)) {
            int ty = lua_getfield(L, -1, key);
            if (ty != LUA_TNIL && ty != LUA_TSTRING)
                luaL_error(L, "runbook.yaml: kubectl.%s must be a string, got %s", key,
                           luaL_typename(L, -1));
            if (ty == LUA_TSTRING) {
                v = lua_tostring(L, -1);
                lua_settop(L, top);
                return v;
            }
        }
        lua_settop(L, top);
    }
    return NULL;
}

/* ---- building the command line --------------------------------------------- */

typedef struct cmd {
    lua_State *L;
    int argv; /* table index */
    int n;
} cmd;

static void add(cmd *c, const char *s)
{
    lua_pushstring(c->L, s);
    lua_rawseti(c->L, c->argv, ++c->n);
}

static void addf(cmd *c, const char *fmt, const char *s)
{
    lua_pushfstring(c->L, fmt, s);
    lua_rawseti(c->L, c->argv, ++c->n);
}

/* An option given as a number or a string, as text ("30s" from 30); NULL if
 * absent. */
static const char *opt_duration(lua_State *L, int opts, const char *key, const char *fn)
{
    if (!opts)
        return NULL;
    int ty = lua_getfield(L, opts, key);
    const char *s = NULL;
    if (ty == LUA_TNUMBER) {
        lua_Number d = lua_tonumber(L, -1);
        if (lua_isinteger(L, -1))
            s = lua_pushfstring(L, "%Is", lua_tointeger(L, -1));
        else
            s = lua_pushfstring(L, "%ds", (int)(d + 0.999));
    } else if (ty == LUA_TSTRING) {
        s = lua_tostring(L, -1);
        lua_pushvalue(L, -1);
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "kubectl.%s: option '%s' must be a number of seconds or a string, got %s", fn,
                   key, luaL_typename(L, -1));
    } else {
        lua_pushnil(L);
    }
    /* keep the text alive in the options table's shadow: the argv keeps a copy */
    lua_replace(L, -2);
    lua_pop(L, 1);
    return s; /* the caller copies it into argv immediately */
}

static const char *checkstr(lua_State *L, int idx, const char *fn, const char *what)
{
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "kubectl.%s: %s must be a string, got %s", fn, what, luaL_typename(L, idx));
    return lua_tostring(L, idx);
}

/* Is argv word w an option of kubectl that takes the next word as value? */
static int takes_value(const char *w)
{
    static const char *const opts[] = {"-n",
                                       "--namespace",
                                       "--context",
                                       "--kubeconfig",
                                       "--cluster",
                                       "--user",
                                       "-s",
                                       "--server",
                                       "--token",
                                       "-l",
                                       "--selector",
                                       "-o",
                                       "--output",
                                       "-c",
                                       "--container",
                                       "-f",
                                       "--filename",
                                       "--field-selector",
                                       "--as",
                                       "--as-group",
                                       "--request-timeout",
                                       "--certificate-authority",
                                       NULL};
    if (strchr(w, '='))
        return 0;
    for (int i = 0; opts[i]; i++)
        if (strcmp(w, opts[i]) == 0)
            return 1;
    return 0;
}

/* The class of `kubectl argv[from..]` by verb (SPEC §3). */
static rb_class classify(const char **w, int n)
{
    const char *verb[2] = {NULL, NULL};
    int k = 0;
    for (int i = 0; i < n && k < 2; i++) {
        if (strcmp(w[i], "--") == 0)
            break;
        if (w[i][0] == '-') {
            if (takes_value(w[i]))
                i++;
            continue;
        }
        verb[k++] = w[i];
    }
    if (!verb[0])
        return RB_MUTATE;
    static const char *const reads[] = {"get",     "describe",      "logs", "top",  "explain",
                                        "version", "api-resources", "diff", "wait", NULL};
    for (int i = 0; reads[i]; i++)
        if (strcmp(verb[0], reads[i]) == 0)
            return RB_READ;
    if (verb[1] && strcmp(verb[0], "auth") == 0 && strcmp(verb[1], "can-i") == 0)
        return RB_READ;
    if (verb[1] && strcmp(verb[0], "rollout") == 0 &&
        (strcmp(verb[1], "status") == 0 || strcmp(verb[1], "history") == 0))
        return RB_READ;
    return RB_MUTATE;
}

/* Append the global options (-n/-A, --context, --kubeconfig). */
static void add_globals(cmd *c, int opts, int namespaced)
{
    lua_State *L = c->L;
    if (namespaced && rb_opt_bool(L, opts, "all_namespaces", 0)) {
        add(c, "-A");
    } else if (namespaced) {
        const char *ns = global_opt(L, opts, "namespace");
        if (ns) {
            add(c, "-n");
            add(c, ns);
        }
    }
    const char *ctx = global_opt(L, opts, "context");
    if (ctx)
        addf(c, "--context=%s", ctx);
    const char *kc = global_opt(L, opts, "kubeconfig");
    if (kc)
        addf(c, "--kubeconfig=%s", kc);
}

static const char *const NAMES[] = {"get",
                                    "describe",
                                    "logs",
                                    "top",
                                    "scale",
                                    "rollout_status",
                                    "rollout_restart",
                                    "rollout_undo",
                                    "rollout_history",
                                    "set_env",
                                    "set_image",
                                    "delete",
                                    "apply",
                                    "wait",
                                    "exec_in",
                                    "run"};

/* kind [name] or "kind/name" [nil]: the object words of get/describe/delete */
static int kind_name(lua_State *L, cmd *c, int fn)
{
    add(c, checkstr(L, 1, NAMES[fn], "kind"));
    if (lua_type(L, 2) == LUA_TSTRING || lua_type(L, 2) == LUA_TNUMBER) {
        add(c, lua_tostring(L, 2));
        return lua_istable(L, 3) ? 3 : 0;
    }
    if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
        luaL_error(L, "kubectl.%s: name must be a string, got %s", NAMES[fn], luaL_typename(L, 2));
    return lua_istable(L, 2) ? 2 : lua_istable(L, 3) ? 3 : 0;
}

/* Append sorted KEY=VALUE words of table t (false: KEY- removes it). */
static void add_pairs(lua_State *L, cmd *c, int t, const char *fn)
{
    lua_newtable(L);
    int keys = lua_gettop(L);
    int nk = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "kubectl.%s: keys must be strings", fn);
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++nk);
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_remove(L, -2);
    lua_pushvalue(L, keys);
    lua_call(L, 1, 0);
    for (int i = 1; i <= nk; i++) {
        lua_rawgeti(L, keys, i);
        const char *k = lua_tostring(L, -1);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            lua_pushfstring(L, "%s-", k);
        else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
            lua_pushfstring(L, "%s=%s", k, lua_tostring(L, -1));
        else
            luaL_error(L, "kubectl.%s: value of '%s' must be a string, got %s", fn, k,
                       luaL_typename(L, -1));
        lua_rawseti(L, c->argv, ++c->n);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* Build the call into: S_ARGV the argv table (with "kubectl" first), S_WORDS
 * the operator's words, S_INFO { out, stdin, timeout, check, cls, verb,
 * target }.  Arguments are normalised to 1..3 first. */
static void build(lua_State *L, int fn)
{
    lua_settop(L, 3);
    lua_newtable(L); /* S_ARGV */
    cmd c = {L, S_ARGV, 0};
    int opts = 0, out = K_OUT_RESULT, namespaced = 1, json = 0;
    const char *name = NAMES[fn];
    const char *stdin_text = NULL;
    double timeout = -1;
    int manifest = 0;
    add(&c, "kubectl");
    switch (fn) {
    case F_GET:
        add(&c, "get");
        opts = kind_name(L, &c, fn);
        out = K_OUT_JSON;
        json = 1;
        break;
    case F_DESCRIBE:
        add(&c, "describe");
        opts = kind_name(L, &c, fn);
        out = K_OUT_TEXT;
        break;
    case F_DELETE:
        add(&c, "delete");
        opts = kind_name(L, &c, fn);
        if (rb_opt_bool(L, opts, "ignore_not_found", 0))
            add(&c, "--ignore-not-found");
        break;
    case F_TOP:
        add(&c, "top");
        if (lua_istable(L, 1)) {
            add(&c, "pod");
            opts = 1;
        } else if (lua_isnoneornil(L, 1)) {
            add(&c, "pod");
            opts = lua_istable(L, 2) ? 2 : 0;
        } else {
            opts = kind_name(L, &c, fn);
        }
        out = K_OUT_TEXT;
        break;
    default:
        break;
    }
    if (fn == F_GET || fn == F_DESCRIBE || fn == F_DELETE || fn == F_TOP) {
        const char *sel = rb_opt_string(L, opts, "selector");
        if (sel) {
            add(&c, "-l");
            add(&c, sel);
        }
        const char *fs = rb_opt_string(L, opts, "field_selector");
        if (fs)
            addf(&c, "--field-selector=%s", fs);
    }
    switch (fn) {
    case F_LOGS: {
        add(&c, "logs");
        add(&c, checkstr(L, 1, name, "pod"));
        opts = lua_istable(L, 2) ? 2 : 0;
        const char *ct = rb_opt_string(L, opts, "container");
        if (ct) {
            add(&c, "-c");
            add(&c, ct);
        }
        if (opts && lua_getfield(L, opts, "tail") != LUA_TNIL) {
            lua_Integer t = luaL_checkinteger(L, -1);
            lua_pushfstring(L, "--tail=%I", t);
            lua_rawseti(L, S_ARGV, ++c.n);
        }
        if (opts)
            lua_pop(L, 1);
        if (rb_opt_bool(L, opts, "previous", 0))
            add(&c, "--previous");
        if (rb_opt_bool(L, opts, "timestamps", 0))
            add(&c, "--timestamps");
        const char *since = opt_duration(L, opts, "since", name);
        if (since)
            addf(&c, "--since=%s", since);
        out = K_OUT_TEXT;
        break;
    }
    case F_SCALE: {
        add(&c, "scale");
        add(&c, checkstr(L, 1, name, "target"));
        lua_Integer r = luaL_checkinteger(L, 2);
        lua_pushfstring(L, "--replicas=%I", r);
        lua_rawseti(L, S_ARGV, ++c.n);
        opts = lua_istable(L, 3) ? 3 : 0;
        out = K_OUT_JSON;
        json = 1;
        break;
    }
    case F_ROLLOUT_STATUS:
    case F_ROLLOUT_RESTART:
    case F_ROLLOUT_UNDO:
    case F_ROLLOUT_HISTORY: {
        add(&c, "rollout");
        add(&c, fn == F_ROLLOUT_STATUS    ? "status"
                : fn == F_ROLLOUT_RESTART ? "restart"
                : fn == F_ROLLOUT_UNDO    ? "undo"
                                          : "history");
        add(&c, checkstr(L, 1, name, "target"));
        opts = lua_istable(L, 2) ? 2 : 0;
        if (fn == F_ROLLOUT_UNDO && opts && lua_getfield(L, opts, "to_revision") != LUA_TNIL) {
            lua_pushfstring(L, "--to-revision=%I", luaL_checkinteger(L, -1));
            lua_rawseti(L, S_ARGV, ++c.n);
            lua_pop(L, 1);
        } else if (fn == F_ROLLOUT_UNDO && opts) {
            lua_pop(L, 1);
        }
        if (fn == F_ROLLOUT_HISTORY && opts && lua_getfield(L, opts, "revision") != LUA_TNIL) {
            lua_pushfstring(L, "--revision=%I", luaL_checkinteger(L, -1));
            lua_rawseti(L, S_ARGV, ++c.n);
            lua_pop(L, 1);
        } else if (fn == F_ROLLOUT_HISTORY && opts) {
            lua_pop(L, 1);
        }
        if (fn == F_ROLLOUT_STATUS) {
            const char *t = opt_duration(L, opts, "wait_timeout", name);
            if (t)
                addf(&c, "--timeout=%s", t);
        }
        if (fn == F_ROLLOUT_RESTART || fn == F_ROLLOUT_UNDO) {
            out = K_OUT_JSON;
            json = 1;
        }
        break;
    }
    case F_SET_ENV:
    case F_SET_IMAGE: {
        add(&c, "set");
        add(&c, fn == F_SET_ENV ? "env" : "image");
        add(&c, checkstr(L, 1, name, "target"));
        if (lua_istable(L, 2))
            add_pairs(L, &c, 2, name);
        else
            add(&c, checkstr(L, 2, name, fn == F_SET_ENV ? "vars" : "images"));
        opts = lua_istable(L, 3) ? 3 : 0;
        out = K_OUT_JSON;
        json = 1;
        break;
    }
    case F_APPLY: {
        add(&c, "apply");
        opts = lua_istable(L, 2) ? 2 : 0;
        if (lua_istable(L, 1)) {
            add(&c, "-f");
            add(&c, "-");
            /* encoded into info.stdin below: the arguments are the caller's
             * (the funnel calls describe and the call with the same ones) */
            manifest = 1;
        } else {
            add(&c, "-f");
            add(&c, checkstr(L, 1, name, "file"));
        }
        if (rb_opt_bool(L, opts, "server_side", 0))
            add(&c, "--server-side");
        out = K_OUT_JSON;
        json = 1;
        break;
    }
    case F_WAIT: {
        add(&c, "wait");
        add(&c, checkstr(L, 1, name, "target"));
        opts = lua_istable(L, 2) ? 2 : 0;
        const char *f = rb_opt_string(L, opts, "for");
        addf(&c, "--for=%s", f ? f : "condition=ready");
        const char *t = opt_duration(L, opts, "timeout", name);
        if (t)
            addf(&c, "--timeout=%s", t);
        double secs =
            opts && lua_getfield(L, opts, "timeout") == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (opts)
            lua_pop(L, 1);
        timeout = secs > 0 ? secs + 30 : 0; /* kubectl times out first */
        break;
    }
    case F_EXEC_IN: {
        add(&c, "exec");
        add(&c, checkstr(L, 1, name, "pod"));
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = lua_istable(L, 3) ? 3 : 0;
        const char *ct = rb_opt_string(L, opts, "container");
        if (ct) {
            add(&c, "-c");
            add(&c, ct);
        }
        if (opts && lua_getfield(L, opts, "stdin") == LUA_TSTRING) {
            add(&c, "-i");
            stdin_text = lua_tostring(L, -1);
        }
        if (opts)
            lua_pop(L, 1);
        break;
    }
    case F_RUN: {
        luaL_checktype(L, 1, LUA_TTABLE);
        opts = lua_istable(L, 2) ? 2 : 0;
        int n = (int)luaL_len(L, 1);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, 1, i);
            const char *w = checkstr(L, -1, name, "argv word");
            if (!(i == 1 && strcmp(w, "kubectl") == 0))
                add(&c, w);
            lua_pop(L, 1);
        }
        if (c.n < 2)
            luaL_error(L, "kubectl.run: argv must have a kubectl command");
        for (int i = 2; i <= c.n; i++) {
            lua_rawgeti(L, S_ARGV, i);
            const char *w = lua_tostring(L, -1);
            lua_pop(L, 1);
            if (strcmp(w, "--") == 0)
                break;
            if (strcmp(w, "-n") == 0 || strncmp(w, "--namespace", 11) == 0 ||
                strncmp(w, "-n=", 3) == 0 || strcmp(w, "-A") == 0 ||
                strcmp(w, "--all-namespaces") == 0)
                namespaced = 0; /* the argv names its namespace itself */
        }
        out = K_OUT_RUN;
        break;
    }
    default:
        break;
    }
    if (opts && !lua_istable(L, opts))
        opts = 0;
    add_globals(&c, opts, namespaced);
    /* the words: the argv as typed (before `-o json` and the command's argv) */
    int nwords = c.n;
    if (fn == F_EXEC_IN) {
        add(&c, "--");
        int n = (int)luaL_len(L, 2);
        if (n < 1)
            luaL_error(L, "kubectl.exec_in: argv must have at least the program name");
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, 2, i);
            add(&c, checkstr(L, -1, name, "argv word"));
            lua_pop(L, 1);
        }
        nwords = c.n;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= nwords; i++) {
        lua_rawgeti(L, S_ARGV, i);
        const char *w = lua_tostring(L, -1);
        lua_pop(L, 1); /* still referenced by argv */
        if (i > 1)
            luaL_addchar(&b, ' ');
        rb_quote_arg(&b, w);
    }
    luaL_pushresult(&b); /* S_WORDS */
    if (json) {
        add(&c, "-o");
        add(&c, "json");
    }
    /* the class from the verb of what runs */
    const char *words[256];
    int nw = 0;
    for (int i = 2; i <= c.n && nw < 256; i++) {
        lua_rawgeti(L, S_ARGV, i);
        words[nw++] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    rb_class cls = classify(words, nw);
    lua_createtable(L, 0, 8); /* S_INFO */
    lua_pushinteger(L, out);
    lua_setfield(L, S_INFO, "out");
    lua_pushinteger(L, cls);
    lua_setfield(L, S_INFO, "cls");
    lua_pushinteger(L, fn);
    lua_setfield(L, S_INFO, "fn");
    if (stdin_text) {
        lua_pushstring(L, stdin_text);
        lua_setfield(L, S_INFO, "stdin");
    } else if (manifest) {
        lua_getfield(L, LUA_REGISTRYINDEX, ENCODE_KEY);
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        if (!lua_isstring(L, -1))
            luaL_error(L, "kubectl.apply: cannot encode the manifest");
        lua_setfield(L, S_INFO, "stdin");
    }
    if (timeout < 0)
        timeout = rb_opt_number(L, opts, "timeout", -1);
    if (timeout > 0) {
        lua_pushnumber(L, timeout);
        lua_setfield(L, S_INFO, "timeout");
    }
    lua_pushboolean(L, rb_opt_bool(L, opts, "check", 1));
    lua_setfield(L, S_INFO, "check");
    lua_pushinteger(L, opts);
    lua_setfield(L, S_INFO, "opts");
    /* verb: the kubectl verb words; target: the object */
    int vstart = 0;
    while (vstart < nw && words[vstart][0] == '-')
        vstart += takes_value(words[vstart]) ? 2 : 1;
    if (vstart < nw) {
        if (vstart + 1 < nw &&
            (strcmp(words[vstart], "rollout") == 0 || strcmp(words[vstart], "set") == 0 ||
             strcmp(words[vstart], "auth") == 0))
            lua_pushfstring(L, "%s %s", words[vstart], words[vstart + 1]);
        else
            lua_pushstring(L, words[vstart]);
    } else {
        lua_pushliteral(L, "kubectl");
    }
    lua_setfield(L, S_INFO, "verb");
    const char *target = NULL;
    if (fn == F_APPLY && lua_istable(L, 1)) {
        /* Kind/name of the manifest */
        if (lua_getfield(L, 1, "kind") == LUA_TSTRING)
            target = lua_tostring(L, -1);
        lua_pop(L, 1);
        target = target ? target : "manifest";
        lua_pushstring(L, target);
    } else if (fn == F_RUN) {
        lua_pushstring(L, nw > 1 ? words[1] : "kubectl");
    } else if (fn == F_TOP && lua_type(L, 1) != LUA_TSTRING) {
        lua_pushliteral(L, "pod");
    } else if ((fn == F_GET || fn == F_DESCRIBE || fn == F_DELETE || fn == F_TOP) &&
               lua_type(L, 2) == LUA_TSTRING) {
        lua_pushfstring(L, "%s/%s", lua_tostring(L, 1), lua_tostring(L, 2));
    } else {
        lua_pushstring(L, lua_tostring(L, 1));
    }
    lua_setfield(L, S_INFO, "target");
}

/* ---- describe ---------------------------------------------------------------- */

static void describe_fn(lua_State *L, rb_action *a, int fn)
{
    build(L, fn);
    lua_getfield(L, S_INFO, "verb");
    rb_action_set(L, a, "verb", "%s", lua_tostring(L, -1));
    lua_getfield(L, S_INFO, "target");
    rb_action_set(L, a, "target", "%s", lua_tostring(L, -1));
    rb_action_set(L, a, "words", "%s", lua_tostring(L, S_WORDS));
    lua_getfield(L, S_INFO, "cls");
    a->cls = (rb_class)lua_tointeger(L, -1);
    lua_getfield(L, S_INFO, "opts");
    a->opts = (int)lua_tointeger(L, -1);
    lua_pop(L, 3);
}

/* ---- the call ------------------------------------------------------------------ */

/* Push kubectl's error line of stderr: the first `error:`/`Error from
 * server` line, else the last non-empty one. */
static void push_error_line(lua_State *L, const char *e, size_t n)
{
    const char *last = NULL;
    size_t lastn = 0;
    const char *p = e, *end = e + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' '))
            len--;
        if (len > 0) {
            if ((len >= 6 && strncmp(p, "error:", 6) == 0) ||
                (len >= 17 && strncmp(p, "Error from server", 17) == 0)) {
                lua_pushlstring(L, p, len);
                return;
            }
            last = p;
            lastn = len;
        }
        p = nl ? nl + 1 : end;
    }
    if (last)
        lua_pushlstring(L, last, lastn);
    else
        lua_pushliteral(L, "");
}

static int decode_into(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

static int call_k(lua_State *L, int status, lua_KContext ctx);

/* Push the options table of registry["runbook.exec_raw"] for this call. */
static void push_raw_opts(lua_State *L)
{
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "check");
    if (lua_getfield(L, S_INFO, "stdin") != LUA_TNIL)
        lua_setfield(L, -2, "stdin");
    else
        lua_pop(L, 1);
    if (lua_getfield(L, S_INFO, "timeout") != LUA_TNIL)
        lua_setfield(L, -2, "timeout");
    else
        lua_pop(L, 1);
}

/* `kubectl scale -o json` and `kubectl rollout undo -o json` print the
 * object as it was before the change.  After one that succeeded, read the
 * object back with `kubectl get` -- the same target and global options: the
 * argv with "get" for the verb words and without --replicas/--to-revision --
 * so that the call returns the object as changed (new spec.replicas, the
 * template rolled back to).  The read is part of the mutation's action (one
 * action, one audit record: it is how the change reports its outcome, like
 * the object `kubectl set`/`apply -o json` print), and it runs only live: a
 * dry-run never reaches here.  Returns what call_k returns once the get is
 * done. */
static int readback(lua_State *L, int fn)
{
    int verbs = fn == F_SCALE ? 1 : 2; /* words after "kubectl" to drop */
    lua_settop(L, S_RESULT);
    lua_getfield(L, LUA_REGISTRYINDEX, RAW_KEY);
    int n = (int)lua_rawlen(L, S_ARGV);
    lua_createtable(L, n, 0);
    int k = 0;
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, S_ARGV, i);
        const char *w = lua_tostring(L, -1);
        if (strncmp(w, "--replicas=", 11) == 0 || strncmp(w, "--to-revision=", 14) == 0 ||
            (i > 2 && i <= 1 + verbs)) {
            lua_pop(L, 1);
            continue;
        }
        if (i == 2) {
            lua_pop(L, 1);
            lua_pushliteral(L, "get");
        }
        lua_rawseti(L, -2, ++k);
    }
    push_raw_opts(L);
    int st = lua_pcallk(L, 2, 1, 0, 1, call_k);
    return call_k(L, st, 1);
}

static int call_k(lua_State *L, int status, lua_KContext ctx)
{
    const char *words = lua_tostring(L, S_WORDS);
    if (ctx == 1) {
        /* the read-back of a scale or undo: its object replaces the scale's output
         * when it worked; otherwise the scale's own answer stands */
        int ok = (status == LUA_OK || status == LUA_YIELD) && lua_istable(L, -1);
        if (ok) {
            lua_getfield(L, -1, "code");
            ok = lua_tointeger(L, -1) == 0;
            lua_pop(L, 1);
        }
        if (ok)
            lua_replace(L, S_RESULT);
        lua_settop(L, S_RESULT);
        status = LUA_OK;
    }
    if (status != LUA_OK && status != LUA_YIELD) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return lua_error(L);
        const char *m = lua_tostring(L, -1);
        const char *cause = strstr(m, ": ");
        if (strncmp(m, "exec ", 5) == 0 && cause)
            return luaL_error(L, "%s:%s", words, cause + 1);
        return lua_error(L);
    }
    lua_settop(L, S_RESULT);
    if (!lua_istable(L, S_RESULT))
        return luaL_error(L, "%s: no result from kubectl", words);
    lua_getfield(L, S_RESULT, "code");
    lua_Integer code = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, S_INFO, "out");
    int out = (int)lua_tointeger(L, -1);
    lua_getfield(L, S_INFO, "check");
    int check = lua_toboolean(L, -1);
    lua_getfield(L, S_INFO, "cls");
    int mutate = lua_tointeger(L, -1) == RB_MUTATE;
    lua_pop(L, 3);
    if (code != 0) {
        lua_getfield(L, S_RESULT, "stderr");
        size_t n = 0;
        const char *e = lua_tolstring(L, -1, &n);
        push_error_line(L, e ? e : "", n);
        lua_setfield(L, S_RESULT, "error");
        lua_pop(L, 1);
        if (check) {
            rb_note_result(L, S_RESULT);
            lua_getfield(L, S_RESULT, "error");
            if (lua_rawlen(L, -1) > 0)
                return luaL_error(L, "%s: %s", words, lua_tostring(L, -1));
            return luaL_error(L, "%s: exit code %d", words, (int)code);
        }
        if (out == K_OUT_TEXT) {
            lua_pushnil(L);
            lua_getfield(L, S_RESULT, "error");
            return 2;
        }
        return 1; /* { code, stdout, stderr, ok = false, error } */
    }
    lua_getfield(L, S_INFO, "fn");
    int fn = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if ((fn == F_SCALE || fn == F_ROLLOUT_UNDO) && ctx == 0)
        return readback(L, fn);
    switch (out) {
    case K_OUT_TEXT:
        lua_getfield(L, S_RESULT, "stdout");
        return 1;
    case K_OUT_JSON:
        lua_getfield(L, S_RESULT, "stdout");
        if (lua_rawlen(L, -1) > 0 && decode_into(L, -1)) {
            if (mutate) {
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, "ok");
            }
            return 1;
        }
        lua_pop(L, 1);
        return 1;
    case K_OUT_RUN: {
        /* argv asked for -o json: decode into .json */
        int n = (int)lua_rawlen(L, S_ARGV);
        int wants = 0;
        for (int i = 2; i < n + 1 && !wants; i++) {
            lua_rawgeti(L, S_ARGV, i);
            const char *w = lua_tostring(L, -1);
            lua_rawgeti(L, S_ARGV, i + 1);
            const char *nx = lua_tostring(L, -1);
            wants = strcmp(w, "-ojson") == 0 || strcmp(w, "-o=json") == 0 ||
                    strcmp(w, "--output=json") == 0 ||
                    ((strcmp(w, "-o") == 0 || strcmp(w, "--output") == 0) && nx &&
                     strcmp(nx, "json") == 0);
            lua_pop(L, 2);
        }
        if (wants) {
            lua_getfield(L, S_RESULT, "stdout");
            if (decode_into(L, -1))
                lua_setfield(L, S_RESULT, "json");
            lua_settop(L, S_RESULT);
        }
        return 1;
    }
    default:
        return 1;
    }
}

static int call(lua_State *L, int fn)
{
    build(L, fn); /* 1..3, S_ARGV, S_WORDS, S_INFO */
    if (lua_getfield(L, LUA_REGISTRYINDEX, RAW_KEY) != LUA_TFUNCTION)
        return luaL_error(L, "kubectl: exec is not available in this build");
    lua_pushvalue(L, S_ARGV);
    push_raw_opts(L);
    int st = lua_pcallk(L, 2, 1, 0, 0, call_k);
    return call_k(L, st, 0);
}

#define KFN(id, cname)                                                                             \
    static int l_##cname(lua_State *L)                                                             \
    {                                                                                              \
        return call(L, id);                                                                        \
    }                                                                                              \
    static void d_##cname(lua_State *L, rb_action *a)                                              \
    {                                                                                              \
        describe_fn(L, a, id);                                                                     \
    }

KFN(F_GET, get)
KFN(F_DESCRIBE, describe)
KFN(F_LOGS, logs)
KFN(F_TOP, top)
KFN(F_SCALE, scale)
KFN(F_ROLLOUT_STATUS, rollout_status)
KFN(F_ROLLOUT_RESTART, rollout_restart)
KFN(F_ROLLOUT_UNDO, rollout_undo)
KFN(F_ROLLOUT_HISTORY, rollout_history)
KFN(F_SET_ENV, set_env)
KFN(F_SET_IMAGE, set_image)
KFN(F_DELETE, delete)
KFN(F_APPLY, apply)
KFN(F_WAIT, wait)
KFN(F_EXEC_IN, exec_in)
KFN(F_RUN, run)

/* kubectl.defaults{ context, namespace, kubeconfig } -> the previous defaults */
static int l_defaults(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULTS_KEY);
    if (lua_isnoneornil(L, 1))
        return 1;
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const keys[] = {"context", "namespace", "kubeconfig", NULL};
    lua_createtable(L, 0, 3);
    for (int i = 0; keys[i]; i++) {
        int ty = lua_getfield(L, 1, keys[i]);
        if (ty != LUA_TNIL && ty != LUA_TSTRING)
            return luaL_error(L, "kubectl.defaults: '%s' must be a string, got %s", keys[i],
                              luaL_typename(L, -1));
        lua_setfield(L, -2, keys[i]);
    }
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int known = 0;
        for (int i = 0; keys[i] && lua_type(L, -2) == LUA_TSTRING; i++)
            known |= strcmp(lua_tostring(L, -2), keys[i]) == 0;
        if (!known)
            return luaL_error(L, "kubectl.defaults: unknown option '%s'",
                              lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
        lua_pop(L, 1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULTS_KEY);
    return 1;
}

void mod_kubectl_open(lua_State *L)
{
    static const rb_fn fns[] = {
        {.name = "get", .fn = l_get, .cls = RB_BY_ARGS, .describe = d_get},
        {.name = "describe", .fn = l_describe, .cls = RB_BY_ARGS, .describe = d_describe},
        {.name = "logs", .fn = l_logs, .cls = RB_BY_ARGS, .describe = d_logs},
        {.name = "top", .fn = l_top, .cls = RB_BY_ARGS, .describe = d_top},
        {.name = "scale", .fn = l_scale, .cls = RB_BY_ARGS, .describe = d_scale},
        {.name = "rollout_status", .fn = l_rollout_status, .cls = RB_BY_ARGS, .describe = d_rollout_status},
        {.name = "rollout_restart", .fn = l_rollout_restart, .cls = RB_BY_ARGS, .describe = d_rollout_restart},
        {.name = "rollout_undo", .fn = l_rollout_undo, .cls = RB_BY_ARGS, .describe = d_rollout_undo},
        {.name = "rollout_history", .fn = l_rollout_history, .cls = RB_BY_ARGS, .describe = d_rollout_history},
        {.name = "set_env", .fn = l_set_env, .cls = RB_BY_ARGS, .describe = d_set_env},
        {.name = "set_image", .fn = l_set_image, .cls = RB_BY_ARGS, .describe = d_set_image},
        {.name = "delete", .fn = l_delete, .cls = RB_BY_ARGS, .describe = d_delete},
        {.name = "apply", .fn = l_apply, .cls = RB_BY_ARGS, .describe = d_apply},
        {.name = "wait", .fn = l_wait, .cls = RB_BY_ARGS, .describe = d_wait},
        {.name = "exec_in", .fn = l_exec_in, .cls = RB_BY_ARGS, .describe = d_exec_in},
        {.name = "run", .fn = l_run, .cls = RB_BY_ARGS, .describe = d_run},
        {.name = "defaults", .fn = l_defaults, .cls = RB_PURE},
        {.name = NULL},
    };
    rb_register(L, "kubectl", fns);
    if (lua_getglobal(L, "json") == LUA_TTABLE) {
        lua_getfield(L, -1, "decode");
        lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
        lua_getfield(L, -1, "encode");
        lua_setfield(L, LUA_REGISTRYINDEX, ENCODE_KEY);
    }
    lua_pop(L, 1);
}
