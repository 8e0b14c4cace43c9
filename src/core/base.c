/*
 * The base globals of a runbook: log.*, print, sleep, now, env, secret,
 * check, confirm and parallel.  None of them is an action in itself (they
 * touch nothing outside the process), but confirm() answers are recorded
 * and parallel() runs its items as tasks on the event loop.
 */
#include "config.h"
#include "engine.h"
#include "journal.h"
#include "loop.h"
#include "prompt.h"
#include "signature.h"
#include "util.h"
#include "yamlconv.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- log.info/warn/error/debug(fmt, ...) and print ---------------------- */

/* NaN and the infinities as Prometheus (and Go, and Python) write them: C's
 * printf says "-nan" for the NaN 0/0 gives, and "inf". */
static int non_finite(lua_State *L, int i)
{
    if (lua_type(L, i) != LUA_TNUMBER || lua_isinteger(L, i))
        return 0;
    lua_Number v = lua_tonumber(L, i);
    return isnan(v) || isinf(v);
}

static void push_non_finite(lua_State *L, int i)
{
    lua_Number v = lua_tonumber(L, i);
    lua_pushstring(L, v != v ? "NaN" : v > 0 ? "+Inf" : "-Inf");
}

/* What a %f or %g of a non-finite argument wrote, rewritten the same way:
 * "nan", "-nan", "inf", "-inf" standing as words of the formatted text. */
static void fix_non_finite_words(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n;) {
        int start = i == 0 || !(isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_');
        size_t neg = s[i] == '-' ? 1 : 0, w = 0;
        if (start && strncasecmp(s + i + neg, "nan", 3) == 0)
            w = 3;
        else if (start && strncasecmp(s + i + neg, "inf", 3) == 0)
            w = 3;
        if (w && (i + neg + w == n ||
                  !(isalnum((unsigned char)s[i + neg + w]) || s[i + neg + w] == '_'))) {
            luaL_addstring(&b, tolower((unsigned char)s[i + neg]) == 'n' ? "NaN"
                               : neg                                     ? "-Inf"
                                                                         : "+Inf");
            i += neg + w;
            continue;
        }
        luaL_addchar(&b, s[i]);
        i++;
    }
    luaL_pushresult(&b);
    lua_remove(L, -2);
}

static void format_args(lua_State *L, int first)
{
    int n = lua_gettop(L);
    if (n >= first && lua_type(L, first) == LUA_TSTRING && n > first) {
        lua_getglobal(L, "string");
        lua_getfield(L, -1, "format");
        lua_remove(L, -2);
        for (int i = first; i <= n; i++)
            lua_pushvalue(L, i);
        if (lua_pcall(L, n - first + 1, 1, 0) != LUA_OK) {
            /* a bad format is the runbook's mistake: name its line */
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
            lua_error(L);
        }
        int odd = 0;
        for (int i = first + 1; i <= n && !odd; i++)
            odd = non_finite(L, i);
        if (odd)
            fix_non_finite_words(L);
    } else if (n >= first) {
        if (non_finite(L, first))
            push_non_finite(L, first);
        else
            luaL_tolstring(L, first, NULL);
    } else {
        lua_pushliteral(L, "");
    }
}

static int l_log(lua_State *L)
{
    const char *level = lua_tostring(L, lua_upvalueindex(1));
    format_args(L, 1);
    journal_log(rb_engine_of(L), L, level, lua_tostring(L, -1));
    return 0;
}

static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        if (non_finite(L, i))
            push_non_finite(L, i);
        else
            luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    journal_log(rb_engine_of(L), L, "print", lua_tostring(L, -1));
    return 0;
}

/* ---- sleep(seconds) ------------------------------------------------------ */

typedef struct sleep_op {
    rb_op op;
} sleep_op;

static void sleep_ready(rb_op *op, int i, short revents)
{
    (void)op, (void)i, (void)revents;
}
static void sleep_cancel(rb_op *op, const char *why)
{
    snprintf(op->error, sizeof op->error, "%s", why);
    rb_op_done(op);
}
static void sleep_expired(rb_op *op)
{
    rb_op_done(op);
}
static void sleep_destroy(rb_op *op)
{
    free(op);
}
static const rb_op_vtable sleep_vt = {sleep_ready, sleep_cancel, sleep_expired, sleep_destroy};

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    rb_op *op = (rb_op *)ctx;
    int failed = op->error[0] != '\0';
    if (failed) {
        rb_where(L); /* the runbook line that slept */
        lua_pushfstring(L, "sleep: %s", op->error);
        lua_concat(L, 2);
    }
    rb_op_free(op);
    if (failed)
        return lua_error(L);
    return 0;
}

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (s <= 0)
        return 0;
    rb_engine *E = rb_engine_of(L);
    if (E->strategy->sleep && E->strategy->sleep(E, L, s)) /* a scenario's virtual clock */
        return 0;
    sleep_op *so = calloc(1, sizeof *so);
    if (!so)
        return luaL_error(L, "sleep: out of memory");
    so->op.vt = &sleep_vt;
    for (int i = 0; i < RB_OP_MAXFD; i++)
        so->op.fd[i] = -1;
    so->op.deadline = rb_now() + s;
    return rb_await(L, &so->op, sleep_k);
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, rb_wallclock() + rb_engine_of(L)->vclock);
    return 1;
}

/* dry_run() -> true when changes are only rehearsed (--dry-run, the REPL's
 * .dry on): for what a runbook says, never for staying correct -- the
 * primitives' simulated results and the stdlib already answer as the
 * rehearsal implies. */
static int l_dry_run(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    lua_pushboolean(L, E && E->dry_run);
    return 1;
}

static int l_mono(lua_State *L)
{
    lua_pushnumber(L, rb_now() + rb_engine_of(L)->vclock);
    return 1;
}

/* env(name [, default]) */
static int l_env(lua_State *L)
{
    const char *v = getenv(luaL_checkstring(L, 1));
    if (v)
        lua_pushstring(L, v);
    else
        lua_settop(L, 2);
    return 1;
}

/* secret(name): the environment variable, else secrets_file; redacted from
 * everything written from now on */
static int l_secret(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *v = getenv(name);
    rb_engine *E = rb_engine_of(L);
    const char *file = E->config && E->config->secrets_file[0] ? E->config->secrets_file : NULL;
    if (!v && file) {
        if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.secrets") != LUA_TTABLE) {
            lua_pop(L, 1);
            size_t len;
            char *buf = rb_read_file(file, &len);
            if (!buf)
                return luaL_error(L, "secret '%s': cannot read secrets_file %s", name, file);
            char err[512];
            int rc = yamlconv_parse(L, buf, len, file, err, sizeof err);
            free(buf);
            if (rc != 0)
                return luaL_error(L, "secret '%s': %s", name, err);
            if (!lua_istable(L, -1))
                return luaL_error(L, "secret '%s': %s must be a mapping of NAME: value", name,
                                  file);
            lua_pushvalue(L, -1);
            lua_setfield(L, LUA_REGISTRYINDEX, "runbook.secrets");
        }
        lua_getfield(L, -1, name);
        if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
            v = lua_tostring(L, -1);
    }
    if (!v && E->strategy->missing_secret && E->strategy->missing_secret(E, L, name))
        v = lua_tostring(L, -1);
    if (!v)
        return luaL_error(L, "secret '%s' is not set: export %s=... %s%s", name, name,
                          file ? "or add it to " : "or name a secrets_file in runbook.yaml",
                          file ? file : "");
    rb_secret_add(L, v);
    lua_pushstring(L, v);
    return 1;
}

/* secret.register(value) -> value: a value the runbook obtained (a password
 * read from a file, a token a command printed) is a secret from now on,
 * redacted like secret()'s. */
static int l_secret_register(lua_State *L)
{
    int t = lua_type(L, 1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_error(L, "secret.register: expected a string or a number, got %s",
                          luaL_typename(L, 1));
    lua_settop(L, 1);
    lua_pushvalue(L, 1);
    rb_secret_add_named(L, lua_tostring(L, -1), "a value given to secret.register");
    lua_pop(L, 1);
    return 1;
}

#define SECRET_SIG "name:str"

/* secret(name) through the table secret is: checked here, where level 1 is
 * the runbook's line (a call through the row's own checker would name this
 * C function instead) */
static int l_secret_call(lua_State *L)
{
    sig_check(L, "secret", SECRET_SIG, NULL, 2, 1);
    lua_remove(L, 1); /* the table itself is not an argument */
    return l_secret(L);
}

/* check(cond, fmt, ...): fail the step with a formatted message */
static int l_check(lua_State *L)
{
    if (lua_toboolean(L, 1))
        return lua_gettop(L) ? 1 : 0;
    luaL_where(L, 1);
    if (lua_gettop(L) >= 3 || lua_type(L, 2) == LUA_TSTRING) {
        lua_insert(L, 1); /* where cond fmt ... */
        lua_remove(L, 2); /* where fmt ... */
        format_args(L, 2);
    } else {
        lua_pushliteral(L, "check failed");
    }
    lua_pushvalue(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
}

/* confirm(question) -> boolean; asked in every mode unless --yes */
static int l_confirm(lua_State *L)
{
    const char *q = luaL_checkstring(L, 1);
    rb_engine *E = rb_engine_of(L);
    const char *how = NULL;
    int yes = E->strategy->confirm ? E->strategy->confirm(E, L, q, &how) : -1;
    if (yes >= 0) { /* the mode's answer (a scenario's) */
        lua_pushfstring(L, "%s (%s)", yes ? "y" : "n", how ? how : E->strategy->name);
        journal_answer(E, L, "confirm", q, lua_tostring(L, -1));
        lua_pushboolean(L, yes);
        return 1;
    }
    if (E->assume_yes) {
        journal_answer(E, L, "confirm", q, "yes (--yes)");
        lua_pushboolean(L, 1);
        return 1;
    }
    yes = prompt_yes_no(E, L, q);
    journal_answer(E, L, "confirm", q, yes ? "y" : "n");
    lua_pushboolean(L, yes);
    return 1;
}

/* ---- parallel(list, fn [, { concurrency, check }]) ----------------------- */

typedef struct join_op {
    rb_op op;
    lua_State *L; /* the waiting coroutine: owns the results table */
    int list_ref, fn_ref, results_ref;
    lua_Integer n, next, running, failures;
    int concurrency;
    int first_error_ref;
    lua_Integer first_error_index;
} join_op;

static void join_ready(rb_op *op, int i, short revents)
{
    (void)op, (void)i, (void)revents;
}
static void join_cancel(rb_op *op, const char *why)
{
    (void)op, (void)why; /* the items' own ops are cancelled; the join waits for them */
}
static void join_expired(rb_op *op)
{
    (void)op;
}
static void join_destroy(rb_op *op)
{
    join_op *j = (join_op *)op;
    luaL_unref(j->L, LUA_REGISTRYINDEX, j->list_ref);
    luaL_unref(j->L, LUA_REGISTRYINDEX, j->fn_ref);
    luaL_unref(j->L, LUA_REGISTRYINDEX, j->results_ref);
    luaL_unref(j->L, LUA_REGISTRYINDEX, j->first_error_ref);
    free(j);
}
static const rb_op_vtable join_vt = {join_ready, join_cancel, join_expired, join_destroy};

static void item_done(rb_task *t, void *ud);

static void start_item(join_op *j)
{
    lua_State *L = j->L;
    lua_Integer i = ++j->next;
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->list_ref);
    lua_rawgeti(L, -1, i);
    lua_remove(L, -2);
    lua_pushinteger(L, i);
    rb_task *t = loop_spawn(L, 2, 0, NULL);
    t->on_done = item_done;
    t->on_done_ud = j;
    t->tag = (long long)i; /* not on the coroutine's stack: lua_resume counts all of it */
    j->running++;
}

static void item_done(rb_task *t, void *ud)
{
    join_op *j = (join_op *)ud;
    lua_State *L = j->L;
    lua_Integer i = (lua_Integer)t->tag;
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->results_ref);
    if (t->failed) {
        j->failures++;
        lua_createtable(L, 0, 1);
        const char *msg = engine_errmsg(t->co, -1);
        lua_pushstring(L, msg);
        if (j->first_error_ref == LUA_NOREF) {
            lua_pushvalue(L, -1);
            j->first_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            j->first_error_index = i;
        }
        lua_setfield(L, -2, "error");
    } else if (t->nres > 0) {
        lua_pushvalue(t->co, -t->nres);
        lua_xmove(t->co, L, 1);
    } else {
        lua_pushboolean(L, 1);
    }
    lua_rawseti(L, -2, i);
    lua_pop(L, 1);
    j->running--;
    loop_task_free(L, t);
    if (j->next < j->n && !loop_interrupted())
        start_item(j);
    else if (j->running == 0)
        rb_op_done(&j->op);
}

static int parallel_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    join_op *j = (join_op *)ctx;
    int check = lua_toboolean(L, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->results_ref);
    lua_Integer failures = j->failures, n = j->n, idx = j->first_error_index;
    if (failures && check) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, j->first_error_ref);
        lua_pushfstring(L, "parallel: %d of %d items failed; item %d: %s", (int)failures, (int)n,
                        (int)idx, lua_tostring(L, -1));
        rb_op_free(&j->op);
        return lua_error(L);
    }
    rb_op_free(&j->op);
    return 1;
}

static int l_parallel(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int opts = lua_istable(L, 3) ? 3 : 0;
    lua_Integer n = (lua_Integer)luaL_len(L, 1);
    double conc = rb_opt_number(L, opts, "concurrency", 16);
    int check = rb_opt_bool(L, opts, "check", 1);
    lua_settop(L, 3);
    lua_pushboolean(L, check); /* 4: read by the continuation */
    if (conc < 1)
        return luaL_argerror(L, 3, "concurrency must be at least 1");
    lua_createtable(L, (int)n, 0);
    if (n == 0)
        return 1;
    join_op *j = calloc(1, sizeof *j);
    if (!j)
        return luaL_error(L, "parallel: out of memory");
    j->op.vt = &join_vt;
    for (int i = 0; i < RB_OP_MAXFD; i++)
        j->op.fd[i] = -1;
    j->L = L;
    j->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    j->list_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    j->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    j->first_error_ref = LUA_NOREF;
    j->n = n;
    j->concurrency = (int)conc;
    for (lua_Integer i = 0; i < n && i < (lua_Integer)conc; i++)
        start_item(j);
    return rb_await(L, &j->op, parallel_k);
}

/* the internal helpers handed to the engine's own Lua (src/lua), not globals */
static int l_progress(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    if (E->output != OUT_TEXT || !E->color)
        return 0; /* a live line only on a terminal */
    const char *s = luaL_optstring(L, 1, NULL);
    if (s)
        fprintf(E->out, "\r\033[K  … %s", s);
    else
        fputs("\r\033[K", E->out);
    fflush(E->out);
    return 0;
}

/* ---- db.null and json.null say "null" ---------------------------------- */

/* SQL NULL and JSON null are the NULL light userdata, which print, log and
 * tostring wrote as "userdata: (nil)".  Every light userdata shares one
 * metatable; any other keeps Lua's own form. */
static int l_light_tostring(lua_State *L)
{
    void *p = lua_touserdata(L, 1);
    if (p)
        lua_pushfstring(L, "userdata: %p", p);
    else
        lua_pushliteral(L, "null");
    return 1;
}

static void null_says_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL);
    lua_newtable(L);
    lua_pushcfunction(L, l_light_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0); /* getmetatable(db.null) is false: a runbook cannot change it */
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

/* log.info/warn/error/debug: closures over their level, declared one by one */
static void open_log(lua_State *L)
{
    static const char *const levels[] = {"info", "warn", "error", "debug", NULL};
    lua_newtable(L);
    for (int i = 0; levels[i]; i++) {
        lua_pushstring(L, levels[i]);
        lua_pushcclosure(L, l_log, 1);
        char name[16];
        snprintf(name, sizeof name, "log.%s", levels[i]);
        sig_declare(L, name, "fmt?:str ...", NULL, -1);
        lua_setfield(L, -2, levels[i]);
    }
    lua_setglobal(L, "log");
}

void mod_base_open(lua_State *L)
{
    null_says_null(L);
    open_log(L);
    static const rb_fn base[] = {
        {.name = "print", .fn = l_print, .cls = RB_PURE, .sig = "..."},
        {.name = "sleep", .fn = l_sleep, .cls = RB_PURE, .sig = "seconds:num"},
        {.name = "now", .fn = l_now, .cls = RB_PURE, .sig = ""},
        {.name = "dry_run", .fn = l_dry_run, .cls = RB_PURE, .sig = ""},
        {.name = "env", .fn = l_env, .cls = RB_PURE, .sig = "name:str default?"},
        {.name = "secret", .fn = l_secret, .cls = RB_PURE, .sig = SECRET_SIG},
        {.name = "check", .fn = l_check, .cls = RB_PURE, .sig = "cond fmt?:str ..."},
        {.name = "confirm", .fn = l_confirm, .cls = RB_PURE, .sig = "question:str"},
        {.name = "parallel",
         .fn = l_parallel,
         .cls = RB_PURE,
         .sig = "list:table fn:fn opts?:opts",
         .options = "concurrency check"},
        {.name = NULL}};
    rb_register(L, NULL, base);
    /* secret is callable -- secret(name) -- and has register(value) */
    static const rb_fn secret_fns[] = {
        {.name = "register", .fn = l_secret_register, .cls = RB_PURE, .sig = "value:str"},
        {.name = NULL}};
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, l_secret_call);
    lua_setfield(L, -2, "__call");
    lua_pushliteral(L, "secret");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setglobal(L, "secret");
    rb_register(L, "secret", secret_fns);
    /* internals for src/lua: a registry table, never a global */
    lua_newtable(L);
    lua_pushcfunction(L, l_progress);
    lua_setfield(L, -2, "progress");
    lua_pushcfunction(L, l_mono);
    lua_setfield(L, -2, "mono");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.internal");
}
