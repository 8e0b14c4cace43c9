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
 * The process runs through exec's raw effect (rb_push_raw), the
 * un-funnelled exec: the funnel has already classified and will record this
 * action.  A non-zero exit raises "kubectl <words>: <kubectl's error line>"
 * unless the call says check = false.
 *
 * Each row declares its signature and option keys (mod_kubectl_open): the
 * funnel refuses a misspelled option or a misplaced argument before
 * anything runs, and kubectl.wait refuses to run without a name, a selector
 * or all = true (wait_target).
 *
 * scale and rollout_undo return the object after the change: kubectl prints
 * it as it was before, so a live call that succeeded reads it back with
 * `kubectl get` inside the same action (readback()).
 *
 * The rows describe each action by fields read back from its command line
 * (verb, kind, name, namespace, selector, replicas, args ...: see FIELDS),
 * which scenario mocks match and recordings write; l_answer and l_recorded
 * turn a mock's respond into what the live call returns, and a live outcome
 * into a respond.
 */
#include "runbook/host.h"
#include "runbook/runbook.h"
#include "udiff.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECODE_KEY   "runbook.kubectl.decode"
#define ENCODE_KEY   "runbook.kubectl.encode"
#define YAML_KEY     "runbook.kubectl.yaml_encode"
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

/* A global option: opts[key], kubectl.defaults[key], runbook.yaml
 * kubectl.<key> (the --env environment's section first, then the top
 * level); NULL when none.  The string stays referenced by the table it came
 * from (the configuration's is the engine's, alive for the run). */
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
    int ty = rb_config_get(L, "kubectl", key);
    if (ty != LUA_TNIL && ty != LUA_TSTRING)
        luaL_error(L, "runbook.yaml: kubectl.%s must be a string, got %s", key,
                   luaL_typename(L, -1));
    v = ty == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_settop(L, top);
    return v;
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

/* kind [name] or "kind/name" [nil]: the object words of get, describe,
 * delete, top and wait; returns the index of the options table, or 0. */
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

/* kubectl.wait needs what to wait on: a name ("pod/x" or the name
 * argument), a selector, or all = true, as kubectl itself does.  A name that
 * was nil (issue 16: kubectl.wait("pod", name, { namespace = ns })) must not
 * become a wait on the kind alone, which cannot mean what was written. */
static void wait_target(lua_State *L, int opts)
{
    const char *kind = lua_tostring(L, 1);
    int named =
        lua_type(L, 2) == LUA_TNUMBER || (lua_type(L, 2) == LUA_TSTRING && lua_rawlen(L, 2) > 0);
    const char *slash = kind ? strchr(kind, '/') : NULL;
    const char *sel = rb_opt_string(L, opts, "selector");
    const char *fsel = rb_opt_string(L, opts, "field_selector");
    if (named || (slash && slash[1]) || (sel && *sel) || (fsel && *fsel))
        return;
    luaL_error(L,
               "kubectl.wait: which %s? give a name, { selector = ... } or { all = true }; "
               "usage: kubectl.wait(kind [, name] [, opts])",
               kind ? kind : "object");
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
    case F_WAIT:
        add(&c, "wait");
        opts = kind_name(L, &c, fn);
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
    if (fn == F_GET || fn == F_DESCRIBE || fn == F_DELETE || fn == F_TOP || fn == F_WAIT) {
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
        if (rb_opt_bool(L, opts, "all", 0))
            add(&c, "--all");
        else
            wait_target(L, opts);
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
    lua_pushinteger(L, nwords);
    lua_setfield(L, S_INFO, "nwords");
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
    } else if ((fn == F_GET || fn == F_DESCRIBE || fn == F_DELETE || fn == F_TOP || fn == F_WAIT) &&
               lua_type(L, 2) == LUA_TSTRING) {
        lua_pushfstring(L, "%s/%s", lua_tostring(L, 1), lua_tostring(L, 2));
    } else {
        lua_pushstring(L, lua_tostring(L, 1));
    }
    lua_setfield(L, S_INFO, "target");
}

/* ---- the action's fields -----------------------------------------------------
 * Read back from the command line as typed (the words), the same way for the
 * functions and for kubectl.run(argv): a mock for `kubectl get pods -n x`
 * answers kubectl.get("pods", { namespace = "x" }) and
 * kubectl.run{ "get", "pods", "-n", "x" } alike.  An object given as
 * "deployment/api" or as ("deployment", "api") is always kind + name. */

static const rb_field FIELDS[] = {
    {"verb", RB_STR, RB_KEY},          /* kubectl's verb words: get, rollout status, set image */
    {"kind", RB_STR, RB_KEY},          /* as typed: deployment, pods */
    {"name", RB_STR, RB_KEY},          /* the object's name */
    {"namespace", RB_STR, RB_KEY},     /* -n */
    {"selector", RB_STR, RB_MATCH},    /* -l */
    {"container", RB_STR, RB_MATCH},   /* -c */
    {"context", RB_STR, RB_MATCH},     /* --context */
    {"replicas", RB_INT, RB_MATCH},    /* scale */
    {"to_revision", RB_INT, RB_MATCH}, /* rollout undo */
    {"images", RB_MAP, RB_MATCH},      /* set image: container -> image */
    {"env", RB_MAP, RB_MATCH},         /* set env: NAME -> value (false: removed) */
    {"for", RB_STR, RB_MATCH},         /* wait: the condition */
    {"file", RB_STR, RB_MATCH},        /* apply -f FILE */
    {"command", RB_LIST, RB_MATCH},    /* exec_in: the argv after -- */
    {"args", RB_SET, RB_MATCH},        /* every word of the command line */
    {NULL, RB_STR, 0},
};

/* Is w option opt with a value, as `opt VALUE` (returns 2: two words) or
 * `opt=VALUE` (1)?  *val is the value. */
static int opt_value(const char *w, const char *next, const char *opt, const char **val)
{
    size_t n = strlen(opt);
    if (strncmp(w, opt, n) != 0)
        return 0;
    if (w[n] == '=') {
        *val = w + n + 1;
        return 1;
    }
    if (w[n] == '\0' && next) {
        *val = next;
        return 2;
    }
    return 0;
}

static void field_int(lua_State *L, const char *field, const char *text)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (end != text && *end == '\0')
        rb_field_int(L, field, (lua_Integer)v);
}

/* kind and name from "kind/name", or from the two words */
static void kind_and_name(lua_State *L, const char *kind, const char *name)
{
    const char *slash = strchr(kind, '/');
    if (slash && slash > kind && slash[1]) {
        lua_pushlstring(L, kind, (size_t)(slash - kind));
        rb_field_set(L, "kind");
        rb_field_str(L, "name", slash + 1);
        return;
    }
    rb_field_str(L, "kind", kind);
    rb_field_str(L, "name", name);
}

static int one_of(const char *w, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(w, list[i]) == 0)
            return 1;
    return 0;
}

/* The options of the words 1..n-1 that are fields; the positional words
 * collected in pos.  Returns how many words come before `--` (n if none). */
static int option_fields(lua_State *L, const char **w, int n, const char **pos, int *npos, int *ns)
{
    static const char *const STRS[][3] = {
        {"-n", "--namespace", "namespace"},
        {"-l", "--selector", "selector"},
        {"-c", "--container", "container"},
        {"--context", NULL, "context"},
        {"--for", NULL, "for"},
        {"-f", "--filename", "file"},
    };
    for (int i = 1; i < n; i++) {
        const char *x = w[i], *next = i + 1 < n ? w[i + 1] : NULL, *v = NULL;
        if (strcmp(x, "--") == 0)
            return i;
        if (x[0] != '-' || !x[1]) {
            if (*npos < 8)
                pos[(*npos)++] = x;
            continue;
        }
        int k = 0;
        for (size_t j = 0; j < sizeof STRS / sizeof STRS[0] && !k; j++) {
            k = opt_value(x, next, STRS[j][0], &v);
            if (!k && STRS[j][1])
                k = opt_value(x, next, STRS[j][1], &v);
            if (k && strcmp(v, "-") != 0) /* -f -: the manifest on stdin */
                rb_field_str(L, STRS[j][2], v);
            if (k && j == 0)
                *ns = 1;
        }
        if (!k && (k = opt_value(x, NULL, "--replicas", &v)) != 0)
            field_int(L, "replicas", v);
        if (!k && (k = opt_value(x, NULL, "--to-revision", &v)) != 0)
            field_int(L, "to_revision", v);
        if (!k)
            k = takes_value(x) && next ? 2 : 1;
        i += k - 1;
    }
    return n;
}

/* set env / set image: the KEY=VALUE words as a map (KEY- : false) */
static void pairs_field(lua_State *L, const char *field, const char **obj, int nobj)
{
    lua_newtable(L);
    for (int j = 0; j < nobj; j++) {
        const char *eq = strchr(obj[j], '=');
        size_t len = strlen(obj[j]);
        if (eq && eq > obj[j]) {
            lua_pushlstring(L, obj[j], (size_t)(eq - obj[j]));
            lua_pushstring(L, eq + 1);
            lua_settable(L, -3);
        } else if (len > 1 && obj[j][len - 1] == '-') {
            lua_pushlstring(L, obj[j], len - 1);
            lua_pushboolean(L, 0);
            lua_settable(L, -3);
        }
    }
    rb_field_set(L, field);
}

/* kubectl.apply(manifest): the object it names */
static void manifest_fields(lua_State *L, int ns)
{
    if (lua_getfield(L, 1, "kind") == LUA_TSTRING) {
        luaL_Buffer b;
        const char *k = lua_tostring(L, -1);
        luaL_buffinit(L, &b);
        for (; *k; k++)
            luaL_addchar(&b, (char)tolower((unsigned char)*k));
        luaL_pushresult(&b);
        rb_field_set(L, "kind");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "metadata") == LUA_TTABLE) {
        if (lua_getfield(L, -1, "name") == LUA_TSTRING)
            rb_field_set(L, "name");
        else
            lua_pop(L, 1);
        if (!ns && lua_getfield(L, -1, "namespace") == LUA_TSTRING)
            rb_field_set(L, "namespace");
        else if (!ns)
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Set the fields of the call built at S_ARGV/S_INFO (see build). */
static void set_fields(lua_State *L, int fn)
{
    static const char *const POD_VERBS[] = {"logs", "exec", "attach", "port-forward", "run", NULL};
    static const char *const NODE_VERBS[] = {"cordon", "uncordon", "drain", NULL};
    static const char *const OBJECT_VERBS[] = {"get",   "describe",  "delete", "top",    "wait",
                                               "scale", "rollout",   "set",    "label",  "annotate",
                                               "patch", "edit",      "expose", "create", "explain",
                                               "taint", "autoscale", NULL};
    lua_getfield(L, S_INFO, "nwords");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    const char *w[256];
    n = n < 256 ? n : 256;
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, S_ARGV, i);
        w[i - 1] = lua_tostring(L, -1); /* stays referenced by argv */
        lua_rawseti(L, -2, i);
    }
    rb_field_set(L, "args");
    lua_getfield(L, S_INFO, "verb");
    rb_field_set(L, "verb");
    const char *pos[8];
    int npos = 0, ns = 0;
    int dashdash = option_fields(L, w, n, pos, &npos, &ns);
    if (dashdash < n) {
        lua_createtable(L, n - dashdash - 1, 0);
        for (int i = dashdash + 1; i < n; i++) {
            lua_pushstring(L, w[i]);
            lua_rawseti(L, -2, i - dashdash);
        }
        rb_field_set(L, "command");
    }
    if (npos == 0)
        return;
    int nverb = npos > 1 && (strcmp(pos[0], "rollout") == 0 || strcmp(pos[0], "set") == 0 ||
                             strcmp(pos[0], "auth") == 0)
                    ? 2
                    : 1;
    const char **obj = pos + nverb;
    int nobj = npos - nverb;
    if (fn == F_APPLY && lua_istable(L, 1))
        manifest_fields(L, ns);
    if (nobj == 0)
        return;
    if (one_of(pos[0], POD_VERBS)) {
        if (strchr(obj[0], '/'))
            kind_and_name(L, obj[0], NULL);
        else
            kind_and_name(L, "pod", obj[0]);
    } else if (one_of(pos[0], NODE_VERBS)) {
        kind_and_name(L, "node", obj[0]);
    } else if (one_of(pos[0], OBJECT_VERBS)) {
        /* `create secret generic NAME`, `create service clusterip NAME` */
        int sub = strcmp(pos[0], "create") == 0 && nobj > 2 &&
                  (strcmp(obj[0], "secret") == 0 || strcmp(obj[0], "service") == 0 ||
                   strcmp(obj[0], "svc") == 0);
        const char *name = nobj > 1 + sub && !strchr(obj[1 + sub], '=') ? obj[1 + sub] : NULL;
        kind_and_name(L, obj[0], strchr(obj[0], '/') ? NULL : name);
        if (nverb == 2 && strcmp(pos[0], "set") == 0 &&
            (strcmp(pos[1], "env") == 0 || strcmp(pos[1], "image") == 0))
            pairs_field(L, strcmp(pos[1], "env") == 0 ? "env" : "images", obj + 1, nobj - 1);
    }
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
    set_fields(L, fn);
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

/* Push the options table of exec's raw effect for this call. */
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
    rb_push_raw(L, "exec", "exec");
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
    build(L, fn);                   /* 1..3, S_ARGV, S_WORDS, S_INFO */
    rb_push_raw(L, "exec", "exec"); /* the funnel records this call as kubectl's */
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

/* ---- scenarios and recordings -------------------------------------------------
 * A mock's respond becomes what the call returns live (SPEC §8): error is a
 * failed command (raised as "<words>: <error>", or with check = false the
 * failed result -- nil and the error for a text result), json the decoded
 * object (with ok = true after a change, as `-o json` of a mutation gives
 * it), result the text (a command's stdout where the call returns the
 * command's result).  Without either, the object the change names --
 * kubectl.scale answers { kind = "Deployment", metadata = { name, namespace },
 * spec = { replicas }, ok = true } -- an empty List for get, "" for text. */

/* build() for the answer hook: the call's arguments at 1..3, the function
 * in upvalue 1; returns S_INFO, S_WORDS. */
static int l_build(lua_State *L)
{
    build(L, (int)lua_tointeger(L, lua_upvalueindex(1)));
    lua_pushvalue(L, S_INFO);
    lua_pushvalue(L, S_WORDS);
    return 2;
}

static int fn_of(lua_State *L, int info)
{
    lua_getfield(L, info, "fn");
    const char *name = lua_tostring(L, -1);
    for (int i = 0; name && i <= F_RUN; i++)
        if (strcmp(name, NAMES[i]) == 0) {
            lua_pop(L, 1);
            return i;
        }
    return luaL_error(L, "internal: kubectl has no function '%s'", name ? name : "?");
}

/* The result of a command that ran: { ok, code, stdout, stderr, time } */
static void push_ran(lua_State *L, lua_Integer code, const char *out, const char *err)
{
    lua_createtable(L, 0, 6);
    lua_pushboolean(L, code == 0);
    lua_setfield(L, -2, "ok");
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, out);
    lua_setfield(L, -2, "stdout");
    lua_pushstring(L, err);
    lua_setfield(L, -2, "stderr");
    lua_pushnumber(L, 0.0);
    lua_setfield(L, -2, "time");
    if (code != 0) {
        lua_pushstring(L, err);
        lua_setfield(L, -2, "error");
    }
}

/* Push the Kind of an object from kubectl's word for it (deploy, pods). */
static void push_kind(lua_State *L, const char *word)
{
    static const char *const KINDS[][2] = {
        {"deployment", "Deployment"},
        {"deployments", "Deployment"},
        {"deploy", "Deployment"},
        {"statefulset", "StatefulSet"},
        {"statefulsets", "StatefulSet"},
        {"sts", "StatefulSet"},
        {"daemonset", "DaemonSet"},
        {"daemonsets", "DaemonSet"},
        {"ds", "DaemonSet"},
        {"replicaset", "ReplicaSet"},
        {"replicasets", "ReplicaSet"},
        {"rs", "ReplicaSet"},
        {"pod", "Pod"},
        {"pods", "Pod"},
        {"po", "Pod"},
        {"service", "Service"},
        {"services", "Service"},
        {"svc", "Service"},
        {"configmap", "ConfigMap"},
        {"configmaps", "ConfigMap"},
        {"cm", "ConfigMap"},
        {"secret", "Secret"},
        {"secrets", "Secret"},
        {"job", "Job"},
        {"jobs", "Job"},
        {"cronjob", "CronJob"},
        {"cronjobs", "CronJob"},
        {"node", "Node"},
        {"nodes", "Node"},
        {"namespace", "Namespace"},
        {"namespaces", "Namespace"},
        {"ns", "Namespace"},
    };
    size_t len = strcspn(word, "."); /* deployment.apps */
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (strlen(KINDS[i][0]) == len && strncmp(word, KINDS[i][0], len) == 0) {
            lua_pushstring(L, KINDS[i][1]);
            return;
        }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++)
        luaL_addchar(&b, i == 0 ? (char)toupper((unsigned char)word[0]) : word[i]);
    luaL_pushresult(&b);
}

/* The object a JSON call names, from its fields at index f */
static void push_object(lua_State *L, int f, int fn, int mutate)
{
    f = lua_absindex(L, f);
    lua_createtable(L, 0, 4);
    if (lua_getfield(L, f, "name") != LUA_TSTRING) {
        lua_pop(L, 1);
        if (fn == F_GET) {
            lua_pushliteral(L, "v1");
            lua_setfield(L, -2, "apiVersion");
            lua_pushliteral(L, "List");
            lua_setfield(L, -2, "kind");
            lua_newtable(L);
            lua_setfield(L, -2, "items");
        }
    } else {
        lua_createtable(L, 0, 2); /* metadata */
        lua_insert(L, -2);
        lua_setfield(L, -2, "name");
        if (lua_getfield(L, f, "namespace") == LUA_TSTRING)
            lua_setfield(L, -2, "namespace");
        else
            lua_pop(L, 1);
        lua_setfield(L, -2, "metadata");
        if (lua_getfield(L, f, "kind") == LUA_TSTRING) {
            push_kind(L, lua_tostring(L, -1));
            lua_setfield(L, -3, "kind");
        }
        lua_pop(L, 1);
        if (fn == F_SCALE && lua_getfield(L, f, "replicas") == LUA_TNUMBER) {
            lua_createtable(L, 0, 1);
            lua_insert(L, -2);
            lua_setfield(L, -2, "replicas");
            lua_setfield(L, -2, "spec");
        } else if (fn == F_SCALE) {
            lua_pop(L, 1);
        }
    }
    if (mutate) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "ok");
    }
}

/* answer(respond, info, args...) */
static int l_answer(lua_State *L)
{
    int nargs = lua_gettop(L) - 2;
    int fn = fn_of(L, 2);
    lua_pushinteger(L, fn);
    lua_pushcclosure(L, l_build, 1);
    for (int i = 1; i <= nargs; i++)
        lua_pushvalue(L, 2 + i);
    lua_call(L, nargs, 2);
    int info = lua_gettop(L) - 1;
    const char *words = lua_tostring(L, info + 1);
    lua_getfield(L, info, "out");
    int out = (int)lua_tointeger(L, -1);
    lua_getfield(L, info, "check");
    int check = lua_toboolean(L, -1);
    lua_getfield(L, info, "cls");
    int mutate = lua_tointeger(L, -1) == RB_MUTATE;
    lua_pop(L, 3);
    int has_error = lua_getfield(L, 1, "error") != LUA_TNIL;
    const char *err = has_error ? luaL_tolstring(L, -1, NULL) : "";
    lua_Integer code = has_error ? 1 : 0;
    if (lua_getfield(L, 1, "code") == LUA_TNUMBER)
        code = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (has_error || code != 0) {
        if (check) {
            /* as the live call raises: no position, the funnel adds the runbook's */
            if (*err)
                lua_pushfstring(L, "%s: %s", words, err);
            else
                lua_pushfstring(L, "%s: exit code %d", words, (int)code);
            return lua_error(L);
        }
        if (out == K_OUT_TEXT) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        push_ran(L, code ? code : 1, "", err);
        return 1;
    }
    int has_json = lua_getfield(L, 1, "json") != LUA_TNIL;
    int json = lua_gettop(L);
    int has_result = lua_getfield(L, 1, "result") != LUA_TNIL;
    int result = lua_gettop(L);
    if (out == K_OUT_RESULT || out == K_OUT_RUN) {
        if (out == K_OUT_RESULT && has_json) { /* an object answered as it was given */
            lua_pushvalue(L, json);
            return 1;
        }
        const char *text = "";
        if (has_result) {
            text = luaL_tolstring(L, result, NULL);
        } else if (has_json) { /* run's -o json: the object was its stdout */
            lua_getfield(L, LUA_REGISTRYINDEX, ENCODE_KEY);
            lua_pushvalue(L, json);
            lua_call(L, 1, 1);
            text = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
        }
        push_ran(L, 0, text, "");
        if (has_json) {
            lua_pushvalue(L, json);
            lua_setfield(L, -2, "json");
        }
        return 1;
    }
    if (has_json && mutate && lua_istable(L, json)) { /* a copy: the mock answers again */
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, json)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "ok");
        return 1;
    }
    if (has_json || has_result) {
        lua_pushvalue(L, has_json ? json : result);
        return 1;
    }
    if (out == K_OUT_TEXT) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_getfield(L, 2, "fields");
    push_object(L, -1, fn, mutate);
    return 1;
}

/* The cause of a failed call without the runbook's position ("x.lua:3: ")
 * and the call's words: answering it again puts the words back. */
static const char *cause_of(const char *msg, const char *words)
{
    const char *c = strstr(msg, ": ");
    if (c) {
        const char *d = c;
        while (d > msg && d[-1] >= '0' && d[-1] <= '9')
            d--;
        if (d < c && d - 1 > msg && d[-1] == ':')
            msg = c + 2;
    }
    size_t n = strlen(words);
    if (strncmp(msg, words, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
        msg += n + 2;
    return msg;
}

/* The respond of a table result into r: a command's result (rollout
 * status, delete, run; a failure with check = false) or an object. */
static void recorded_table(lua_State *L, int r)
{
    int coded = lua_getfield(L, 3, "code") == LUA_TNUMBER;
    lua_Integer code = lua_tointeger(L, -1);
    if (!coded || lua_getfield(L, 3, "stdout") != LUA_TSTRING) {
        lua_pushvalue(L, 3);
        lua_setfield(L, r, "json");
        return;
    }
    if (code != 0) {
        if (lua_getfield(L, 3, "error") != LUA_TSTRING || lua_rawlen(L, -1) == 0)
            lua_getfield(L, 3, "stderr");
        lua_setfield(L, r, "error");
        if (code != 1) { /* 1 is what an answered error exits with */
            lua_pushinteger(L, code);
            lua_setfield(L, r, "code");
        }
        return;
    }
    if (lua_getfield(L, 3, "json") == LUA_TTABLE) { /* run's -o json: its stdout is the object */
        lua_setfield(L, r, "json");
        return;
    }
    lua_pop(L, 1);
    if (lua_rawlen(L, -1) > 0) {
        lua_pushvalue(L, -1);
        lua_setfield(L, r, "result");
    }
}

/* recorded(info, error_or_nil, results...) -> the respond a recording writes */
static int l_recorded(lua_State *L)
{
    lua_settop(L, 4);
    lua_getfield(L, 1, "words");
    const char *words = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
    lua_newtable(L);
    int r = lua_gettop(L);
    if (!lua_isnil(L, 2)) {
        lua_pushstring(L, cause_of(luaL_tolstring(L, 2, NULL), words));
        lua_setfield(L, r, "error");
    } else if (lua_isnil(L, 3) && lua_type(L, 4) == LUA_TSTRING) {
        lua_pushvalue(L, 4); /* a text call with check = false: nil, error */
        lua_setfield(L, r, "error");
    } else if (lua_type(L, 3) == LUA_TSTRING) {
        lua_pushvalue(L, 3);
        lua_setfield(L, r, "result");
    } else if (lua_istable(L, 3)) {
        recorded_table(L, r);
    }
    lua_settop(L, r);
    return 1;
}

/* kubectl.defaults{ context, namespace, kubeconfig } -> the previous defaults
 * (its row's signature refuses any other key) */
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
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULTS_KEY);
    return 1;
}

/* rollout_status / wait on an object a rehearsal changed only in simulation:
 * the rollout that the change would have started is not there to watch, so
 * the call answers as it would once that rollout was done. */
static int rehearsed_rollout(lua_State *L, const rb_action *a)
{
    lua_pushfstring(L,
                    "%s: changed only in this rehearsal; a live run would wait for its rollout\n",
                    a->target);
    push_ran(L, 0, lua_tostring(L, -1), "");
    return 1;
}

/* ---- --dry-run --diff: kubectl.apply as `kubectl diff` shows it ----------------
 * The Lua half (src/primitives/kubectl.lua) asks the server for the live
 * objects and for its rehearsal of the apply (--dry-run=server), neither of
 * which writes a file -- kubectl diff itself writes both versions to $TMPDIR,
 * which a rehearsal's confined processes cannot -- and diffs them as YAML. */
static int l_unified(lua_State *L)
{
    size_t nold, nnew;
    const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
    const char *old = luaL_checklstring(L, 3, &nold), *new = luaL_checklstring(L, 4, &nnew);
    if (rb_unified_diff(L, from, to, old, nold, new, nnew) != 0)
        return luaL_error(L, "kubectl.apply: out of memory for the diff");
    return 1;
}

static int l_diff_apply(lua_State *L)
{
    build(L, F_APPLY); /* 1..3, S_ARGV, S_WORDS, S_INFO */
    rb_push_lua(L, "kubectl", "kubectl_apply_diff");
    rb_push_raw(L, "exec", "exec");
    lua_pushvalue(L, S_ARGV);
    lua_pushvalue(L, S_INFO);
    lua_createtable(L, 0, 3); /* the codecs, as they were when kubectl opened */
    lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
    lua_setfield(L, -2, "decode");
    lua_getfield(L, LUA_REGISTRYINDEX, YAML_KEY);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, l_unified);
    lua_setfield(L, -2, "unified");
    lua_call(L, 4, 2);
    return 2;
}

void mod_kubectl_open(lua_State *L)
{
    /* The options every function reads: the global ones (add_globals),
     * timeout and check (build), and readonly, which the funnel honours
     * (describe points a->opts at the table).  Each row adds its own. */
#define COMMON  "namespace all_namespaces context kubeconfig timeout check readonly"
#define OBJECTS COMMON " selector field_selector"
#define ROW(n, c, s, o)                                                                            \
    {                                                                                              \
        .name = #n, .fn = l_##n, .cls = c, .describe = d_##n, .fields = FIELDS,                    \
        .respond = "json result code error", .answer = l_answer, .recorded = l_recorded,           \
        .object = "kind name namespace", .sig = s, .options = o                                    \
    }
#define WATCH(n, s, o)                                                                             \
    {                                                                                              \
        .name = #n, .fn = l_##n, .cls = RB_READ, .describe = d_##n, .fields = FIELDS,              \
        .respond = "json result code error", .answer = l_answer, .recorded = l_recorded,           \
        .object = "kind name namespace", .after_simulated = rehearsed_rollout, .sig = s,           \
        .options = o                                                                               \
    }
    /* each function's class is its verb's (describe says so per call, and
     * readonly = overrides it); run's is the argv's verb */
    static const rb_fn fns[] = {
        ROW(get, RB_READ, "kind:str name?:str opts?:opts", OBJECTS),
        ROW(describe, RB_READ, "kind:str name?:str opts?:opts", OBJECTS),
        ROW(logs, RB_READ, "pod:str opts?:opts",
            COMMON " container tail previous timestamps since"),
        ROW(top, RB_READ, "kind?:str name?:str opts?:opts", OBJECTS),
        ROW(scale, RB_MUTATE, "target:str replicas:int opts?:opts", COMMON),
        WATCH(rollout_status, "target:str opts?:opts", COMMON " wait_timeout"),
        ROW(rollout_restart, RB_MUTATE, "target:str opts?:opts", COMMON),
        ROW(rollout_undo, RB_MUTATE, "target:str opts?:opts", COMMON " to_revision"),
        ROW(rollout_history, RB_READ, "target:str opts?:opts", COMMON " revision"),
        ROW(set_env, RB_MUTATE, "target:str vars:table|str opts?:opts", COMMON),
        ROW(set_image, RB_MUTATE, "target:str images:table|str opts?:opts", COMMON),
        ROW(delete, RB_MUTATE, "kind:str name?:str opts?:opts", OBJECTS " ignore_not_found"),
        /* --dry-run --diff shows it as kubectl diff does */
        {.name = "apply",
         .fn = l_apply,
         .cls = RB_MUTATE,
         .describe = d_apply,
         .fields = FIELDS,
         .respond = "json result code error",
         .answer = l_answer,
         .recorded = l_recorded,
         .object = "kind name namespace",
         .sig = "manifest:str|table opts?:opts",
         .options = COMMON " server_side",
         .diff = l_diff_apply},
        WATCH(wait, "kind:str name?:str opts?:opts", OBJECTS " for all"),
        ROW(exec_in, RB_MUTATE, "pod:str argv:table opts?:opts", COMMON " container stdin"),
        ROW(run, RB_BY_ARGS, "argv:table opts?:opts", COMMON),
        {.name = "defaults",
         .fn = l_defaults,
         .cls = RB_PURE,
         .sig = "defaults?:opts",
         .options = "context namespace kubeconfig"},
        {.name = NULL},
    };
#undef ROW
#undef WATCH
#undef OBJECTS
#undef COMMON
    rb_register(L, "kubectl", fns);
    if (lua_getglobal(L, "json") == LUA_TTABLE) {
        lua_getfield(L, -1, "decode");
        lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
        lua_getfield(L, -1, "encode");
        lua_setfield(L, LUA_REGISTRYINDEX, ENCODE_KEY);
    }
    lua_pop(L, 1);
    if (lua_getglobal(L, "yaml") == LUA_TTABLE) { /* for --diff, taken while it is ours */
        lua_getfield(L, -1, "encode");
        lua_setfield(L, LUA_REGISTRYINDEX, YAML_KEY);
    }
    lua_pop(L, 1);
}
