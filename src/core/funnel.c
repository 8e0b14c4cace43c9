/*
 * The action funnel: the one path every primitive call takes (Redis's
 * script.c has one gate for every side effect; this is ours).  In order:
 * describe and classify the call (unknown is MUTATE; `readonly = true`
 * overrides), ask the operator where the mode wants it, then execute or
 * simulate, and record the action in the journal (audit log, JSON events,
 * human view) before the runbook goes on.  Modes are decided here and in the
 * runner; primitives only do their work.
 */
#include "engine.h"
#include "journal.h"
#include "loop.h"
#include "prompt.h"
#include "signature.h"
#include "strategy.h"

#include <stdarg.h>
#include <string.h>

/* One call in flight; a full userdata so it survives yields.  Its user value
 * is a table that anchors the strings describe() built. */
typedef struct call {
    rb_action a;
    const rb_fn *row;
    int nargs;
    double t0;
} call;

static call *call_of(lua_State *L, int nargs)
{
    return (call *)lua_touserdata(L, nargs + 1);
}

/* describe() sees exactly the call's arguments on the stack, so the strings
 * it builds are anchored in a registry table for the moment, then moved to
 * the call's userdata (describe never yields, so one table suffices). */
#define ANCHORS "runbook.anchors"

void rb_action_set(lua_State *L, rb_action *a, const char *which, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *s = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    if (lua_getfield(L, LUA_REGISTRYINDEX, ANCHORS) != LUA_TTABLE)
        luaL_error(L, "rb_action_set: called outside a describe hook");
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 2);
    if (strcmp(which, "verb") == 0)
        a->verb = s;
    else if (strcmp(which, "target") == 0)
        a->target = s;
    else if (strcmp(which, "words") == 0)
        a->words = s;
    else
        luaL_error(L, "rb_action_set: unknown field '%s'", which);
}

/* The fields of the action being described: a registry table while
 * describe() runs (it never yields), then the call userdata's second user
 * value.  A field must be one the row declares: the row is the contract. */
#define FIELDS     "runbook.fields"
#define DESCRIBING "runbook.describing"

void rb_field_set(lua_State *L, const char *name)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, FIELDS) != LUA_TTABLE)
        luaL_error(L, "rb_field_set: called outside a describe hook");
    const rb_fn *row = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, DESCRIBING) == LUA_TLIGHTUSERDATA)
        row = (const rb_fn *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    int declared = 0;
    for (const rb_field *f = row ? row->fields : NULL; f && f->name && !declared; f++)
        declared = strcmp(f->name, name) == 0;
    if (!declared)
        luaL_error(L, "internal: %s sets field '%s', which its row does not declare",
                   row ? row->name : "?", name);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

void rb_field_str(lua_State *L, const char *name, const char *value)
{
    if (!value)
        return;
    lua_pushstring(L, value);
    rb_field_set(L, name);
}

void rb_field_int(lua_State *L, const char *name, lua_Integer value)
{
    lua_pushinteger(L, value);
    rb_field_set(L, name);
}

void rb_quote_arg(luaL_Buffer *b, const char *s)
{
    int plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                       "-_./=:,+@%^",
                       *p) != NULL;
    if (plain) {
        luaL_addstring(b, s);
        return;
    }
    luaL_addchar(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            luaL_addstring(b, "'\\''");
        else
            luaL_addchar(b, *p);
    }
    luaL_addchar(b, '\'');
}

/* The fields of calls in flight, by the address of their rb_action: hooks
 * that see only the action (the journal, a scenario's answer) reach them.
 * record() removes the entry. */
#define CALL_FIELDS "runbook.call_fields"

void rb_push_action_fields(lua_State *L, const rb_action *a)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, CALL_FIELDS) == LUA_TTABLE &&
        lua_rawgetp(L, -1, a) == LUA_TTABLE) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, lua_istable(L, -1) ? 2 : 1);
    lua_newtable(L);
}

static void call_fields_set(lua_State *L, const rb_action *a, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_getfield(L, LUA_REGISTRYINDEX, CALL_FIELDS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, CALL_FIELDS);
    }
    if (idx)
        lua_pushvalue(L, idx);
    else
        lua_pushnil(L);
    lua_rawsetp(L, -2, a);
    lua_pop(L, 1);
}

void rb_push_action_info(lua_State *L, const rb_action *a)
{
    lua_createtable(L, 0, 7);
    lua_pushstring(L, a->primitive);
    lua_setfield(L, -2, "primitive");
    lua_pushstring(L, a->fn);
    lua_setfield(L, -2, "fn");
    lua_pushstring(L, a->verb);
    lua_setfield(L, -2, "verb");
    lua_pushstring(L, a->target);
    lua_setfield(L, -2, "target");
    lua_pushstring(L, a->words);
    lua_setfield(L, -2, "words");
    lua_pushstring(L, a->cls == RB_READ ? "read" : "mutate");
    lua_setfield(L, -2, "class");
    rb_push_action_fields(L, a);
    lua_setfield(L, -2, "fields");
    if (a->opts > 0) { /* which argument is the options table */
        lua_pushinteger(L, a->opts);
        lua_setfield(L, -2, "opts");
    }
}

/* Insertion sort in C: the tables are small (params, a query), and the
 * runbook's own table.sort, which it may have replaced, is not used. */
void rb_push_sorted_keys(lua_State *L, int t)
{
    t = lua_absindex(L, t);
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue;
        lua_Integer i = n++;
        for (; i > 0; i--) { /* shift the greater keys up */
            lua_rawgeti(L, keys, i);
            if (strcmp(lua_tostring(L, -1), lua_tostring(L, -2)) <= 0) {
                lua_pop(L, 1);
                break;
            }
            lua_rawseti(L, keys, i + 1);
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, i + 1);
    }
}

int rb_opt_bool(lua_State *L, int opts, const char *key, int dflt)
{
    if (!opts || !lua_istable(L, opts))
        return dflt;
    int t = lua_getfield(L, opts, key);
    int v = t == LUA_TNIL ? dflt : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

double rb_opt_number(lua_State *L, int opts, const char *key, double dflt)
{
    if (!opts || !lua_istable(L, opts))
        return dflt;
    int t = lua_getfield(L, opts, key);
    double v = dflt;
    if (t != LUA_TNIL) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

const char *rb_opt_string(lua_State *L, int opts, const char *key)
{
    if (!opts || !lua_istable(L, opts))
        return NULL;
    int t = lua_getfield(L, opts, key);
    const char *v = NULL;
    if (t == LUA_TSTRING) {
        v = lua_tostring(L, -1); /* stays alive: the options table references it */
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

/* The first result of a primitive, read for the record: exit code, HTTP
 * status, output excerpts. */
static void read_result(lua_State *L, int idx, rb_action_result *r)
{
    if (!lua_istable(L, idx))
        return;
    if (lua_getfield(L, idx, "code") == LUA_TNUMBER) {
        r->has_exit_code = 1;
        r->exit_code = (long long)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "status") == LUA_TNUMBER) {
        r->has_http_status = 1;
        r->http_status = (long long)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    /* the strings stay referenced by the result table, which stays on the stack */
    if (lua_getfield(L, idx, "stdout") == LUA_TSTRING)
        r->out = lua_tolstring(L, -1, &r->out_len);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "stderr") == LUA_TSTRING)
        r->err = lua_tolstring(L, -1, &r->err_len);
    lua_pop(L, 1);
}

#define NOTED "runbook.noted"

void rb_note_result(lua_State *L, int idx)
{
    lua_pushvalue(L, idx);
    lua_setfield(L, LUA_REGISTRYINDEX, NOTED);
}

static void record(lua_State *L, call *c, rb_action_result *r)
{
    rb_engine *E = rb_engine_of(L);
    r->duration = rb_now() - c->t0;
    int failed = journal_action(E, L, 1, c->nargs, &c->a, r) != 0;
    if (failed || (r->status && strcmp(r->status, "declined") == 0))
        call_fields_set(L, &c->a, 0);
    if (failed)
        luaL_error(L, "audit: cannot record '%s': the run stops rather than act unrecorded",
                   c->a.words);
}

/* "file:line: " of the Lua code that made the call -- the runbook's, not
 * the engine's own Lua (db.backup calling exec): a runbook author needs the
 * line they wrote. */
void rb_where(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        /* the engine's own Lua and the embedded stdlib: the operator wants
         * the runbook's line that called them */
        if (strncmp(ar.source, "=runbook/", 9) == 0 || strncmp(ar.source, "=stdlib/", 8) == 0)
            continue;
        if (ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
        break; /* called from C (pcall): as luaL_where, no position */
    }
    lua_pushliteral(L, "");
}

/* A dry-run's child tried to write and was refused (host.c
 * rb_child_blocked): the action is recorded `blocked`.  Takes the mark. */
static int took_blocked(lua_State *L)
{
    int blocked = lua_getfield(L, LUA_REGISTRYINDEX, "runbook.blocked") != LUA_TNIL;
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.blocked");
    return blocked;
}

static int finish(lua_State *L, int status, int nargs)
{
    call *c = call_of(L, nargs);
    rb_action_result r = {0};
    if (status != LUA_OK && status != LUA_YIELD) {
        /* name the runbook line that made the call: the primitive raised
         * from C, where Lua knows no line */
        if (lua_type(L, -1) == LUA_TSTRING) {
            rb_where(L);
            const char *where = lua_tostring(L, -1);
            const char *msg = lua_tostring(L, -2);
            if (*where && strncmp(msg, where, strlen(where)) != 0) {
                lua_insert(L, -2);
                lua_concat(L, 2);
            } else {
                lua_pop(L, 1);
            }
        }
        r.status = took_blocked(L) ? "blocked" : "error";
        r.error = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object)";
        int noted = lua_getfield(L, LUA_REGISTRYINDEX, NOTED) == LUA_TTABLE ? lua_gettop(L) : 0;
        if (noted)
            read_result(L, noted, &r); /* the noted table stays on the stack */
        record(L, c, &r);
        rb_engine *E = rb_engine_of(L);
        if (E->strategy->after_action)
            E->strategy->after_action(E, L, &c->a, 0, nargs, noted, noted ? 1 : 0, r.error);
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, NOTED);
        lua_pop(L, 1);
        call_fields_set(L, &c->a, 0);
        return lua_error(L);
    }
    int nres = lua_gettop(L) - (nargs + 1);
    r.status = took_blocked(L) ? "blocked" : "ok";
    if (nres > 0)
        read_result(L, nargs + 2, &r);
    record(L, c, &r);
    rb_engine *E = rb_engine_of(L);
    if (E->strategy->after_action)
        E->strategy->after_action(E, L, &c->a, 0, nargs, nargs + 2, nres, NULL);
    call_fields_set(L, &c->a, 0);
    return nres;
}

static int funnel_k(lua_State *L, int status, lua_KContext ctx)
{
    return finish(L, status, (int)ctx);
}

/* The result of a call that was not performed: the primitive's own
 * success-shaped result, or { ok = true, dry_run = true }. */
static int push_simulated(lua_State *L, const rb_fn *row, const rb_action *a)
{
    if (row->simulate)
        return row->simulate(L, a);
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "dry_run");
    return 1;
}

/* ---- the rehearsal's world --------------------------------------------------
 * The objects a rehearsal changed only in simulation (row.object), so reads
 * that watch them answer as that world would (row.after_simulated). */
#define SIMULATED_OBJECTS "runbook.simulated_objects"

/* Push "primitive\0value\0value..." naming the object of c, or return 0. */
static int push_object_key(lua_State *L, call *c)
{
    const char *spec = c->row->object;
    if (!spec)
        return 0;
    rb_push_action_fields(L, &c->a);
    int fields = lua_gettop(L), parts = 1;
    lua_pushstring(L, c->a.primitive);
    for (const char *p = spec; *p;) {
        size_t n = strcspn(p, " ");
        if (n) {
            lua_pushlstring(L, "", 1); /* a NUL between the parts */
            lua_pushlstring(L, p, n);
            if (lua_gettable(L, fields) != LUA_TSTRING) {
                lua_pop(L, 1);
                lua_pushliteral(L, "");
            }
            parts += 2;
        }
        p += n;
        p += strspn(p, " ");
    }
    lua_concat(L, parts);
    lua_remove(L, fields);
    return 1;
}

static void remember_simulated(lua_State *L, call *c)
{
    if (!push_object_key(L, c))
        return;
    if (lua_getfield(L, LUA_REGISTRYINDEX, SIMULATED_OBJECTS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, SIMULATED_OBJECTS);
    }
    lua_insert(L, -2);
    lua_pushboolean(L, 1);
    lua_settable(L, -3);
    lua_pop(L, 1);
}

static int changed_in_rehearsal(lua_State *L, call *c)
{
    if (!c->row->after_simulated || !push_object_key(L, c))
        return 0;
    int found = lua_getfield(L, LUA_REGISTRYINDEX, SIMULATED_OBJECTS) == LUA_TTABLE &&
                (lua_pushvalue(L, -2), lua_gettable(L, -2) == LUA_TBOOLEAN);
    lua_settop(L, c->nargs + 1);
    return found;
}

/* A call not performed: recorded as simulated (with evidence, if any), told
 * to the mode; the caller pushes the result. */
static void record_simulated(lua_State *L, call *c, const char *evidence)
{
    rb_action_result r = {0};
    r.status = "simulated";
    r.simulated = 1;
    r.evidence = evidence;
    record(L, c, &r);
    lua_settop(L, c->nargs + 1);
    rb_engine *E = rb_engine_of(L);
    if (E->strategy->after_action)
        E->strategy->after_action(E, L, &c->a, 1, c->nargs, 0, 0, NULL);
    call_fields_set(L, &c->a, 0);
}

/* A read of an object the rehearsal changed: the row's answer for that world */
static int answer_rehearsed_read(lua_State *L, call *c)
{
    record_simulated(L, c, "it changed only in this rehearsal: answered as if the change was made");
    return c->row->after_simulated(L, &c->a);
}

static int simulate(lua_State *L, call *c)
{
    remember_simulated(L, c);
    record_simulated(L, c, NULL);
    return push_simulated(L, c->row, &c->a);
}

/* ---- rehearsals ------------------------------------------------------------
 * A rehearsal performs the call where nothing can change (see rb_fn).  It
 * says "this would write" with rb_rehearsed(), which leaves a flag and the
 * evidence in the registry for the continuation to read. */
#define REHEARSED "runbook.rehearsed"

void rb_rehearsed(lua_State *L, const char *evidence)
{
    if (evidence)
        lua_pushstring(L, evidence);
    else
        lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, REHEARSED);
}

enum { REHEARSE_PROBE = 1, REHEARSE_DRY_RUN = 2 };
#define CTX(nargs, why) ((lua_KContext)(nargs)*4 + (why))

static int act(lua_State *L, call *c);
static int perform(lua_State *L, call *c);

static int rehearse_k(lua_State *L, int status, lua_KContext ctx)
{
    int nargs = (int)(ctx / 4), why = (int)(ctx % 4);
    call *c = call_of(L, nargs);
    if (status != LUA_OK && status != LUA_YIELD) /* the rehearsal failed: so would the call */
        return finish(L, status, nargs);
    int t = lua_getfield(L, LUA_REGISTRYINDEX, REHEARSED);
    int wrote = t != LUA_TNIL;
    /* the evidence string stays referenced from the stack slot below the
     * results until the record is written */
    lua_insert(L, nargs + 2);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REHEARSED);
    if (why == REHEARSE_PROBE && !wrote) {
        c->a.cls = RB_READ; /* proved: it ran where writes are refused */
        lua_remove(L, nargs + 2);
        return finish(L, LUA_OK, nargs);
    }
    c->a.cls = RB_MUTATE;
    if (why == REHEARSE_PROBE) {
        /* proved a write: the probe's answer is not the call's.  act() runs
         * it live, or in dry-run rehearses it again for the evidence */
        lua_settop(L, nargs + 1);
        return act(L, c);
    }
    remember_simulated(L, c);
    rb_action_result r = {0};
    r.status = "simulated";
    r.simulated = 1;
    r.evidence = lua_type(L, nargs + 2) == LUA_TSTRING ? lua_tostring(L, nargs + 2) : NULL;
    record(L, c, &r);
    lua_remove(L, nargs + 2);
    rb_engine *E = rb_engine_of(L);
    if (E->strategy->after_action) /* what the rehearsal returned is what the run saw */
        E->strategy->after_action(E, L, &c->a, 1, nargs, nargs + 2, lua_gettop(L) - (nargs + 1),
                                  NULL);
    call_fields_set(L, &c->a, 0);
    return lua_gettop(L) - (nargs + 1);
}

static int rehearse(lua_State *L, call *c, int why)
{
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REHEARSED);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, NOTED);
    lua_pushcfunction(L, c->row->rehearse);
    for (int i = 1; i <= c->nargs; i++)
        lua_pushvalue(L, i);
    lua_KContext ctx = CTX(c->nargs, why);
    return rehearse_k(L, lua_pcallk(L, c->nargs, LUA_MULTRET, 0, ctx, rehearse_k), ctx);
}

/* A call known to mutate: the mode may ask first (the REPL's .confirm), then
 * it performs it, or rehearses or simulates it. */
static int act(lua_State *L, call *c)
{
    rb_engine *E = rb_engine_of(L);
    const rb_strategy *S = E->strategy;
    if (c->a.cls == RB_MUTATE && S->performs && S->before_action) {
        if (!S->before_action(E, L, &c->a)) {
            rb_action_result r = {0};
            r.status = "declined";
            r.answer = "n";
            record(L, c, &r);
            return luaL_error(L, "%s: declined by the operator", c->a.words);
        }
        c->t0 = rb_now(); /* the action's time is its own, not the operator's */
    }
    if (c->a.cls == RB_MUTATE && !S->performs)
        return c->row->rehearse ? rehearse(L, c, REHEARSE_DRY_RUN) : simulate(L, c);
    if (c->a.cls == RB_READ && !S->performs && changed_in_rehearsal(L, c))
        return answer_rehearsed_read(L, c);
    return perform(L, c);
}

static int perform(lua_State *L, call *c)
{
    int nargs = c->nargs;
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, NOTED);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.blocked");
    rb_engine *E = rb_engine_of(L);
    lua_CFunction answer = E->strategy->answer;
    if (answer) {
        E->answering_row = c->row;
        E->answering = &c->a;
    }
    lua_pushcfunction(L, answer ? answer : c->row->fn);
    for (int i = 1; i <= nargs; i++)
        lua_pushvalue(L, i);
    return finish(L, lua_pcallk(L, nargs, LUA_MULTRET, 0, (lua_KContext)nargs, funnel_k), nargs);
}

static int funnel_call(lua_State *L)
{
    const rb_fn *row = (const rb_fn *)lua_touserdata(L, lua_upvalueindex(1));
    const char *module = lua_tostring(L, lua_upvalueindex(2));
    rb_engine *E = rb_engine_of(L);
    int nargs = lua_gettop(L);
    if (loop_interrupted())
        return luaL_error(L, "interrupted");
    /* past the run's or the step's deadline nothing more is done: a runbook
     * that catches the timeout must not go on acting */
    const char *stop = loop_stop_reason(L);
    if (stop)
        return luaL_error(L, "%s", stop);
    if (E->purpose == PURPOSE_LIST) {
        /* list/show/check never act: the call is answered as dry-run would
         * answer a write, so the rest of the file (its steps) still loads */
        if (!E->list_refused)
            E->list_refused_what = row->name;
        E->list_refused = 1;
        lua_settop(L, nargs);
        rb_action none = {0};
        return push_simulated(L, row, &none);
    }
    /* the call's shape first: a misspelled option must not reach describe,
     * which would read around it */
    sig_check(L, lua_tostring(L, lua_upvalueindex(3)), row->sig, row->options,
              lua_toboolean(L, lua_upvalueindex(4)) ? 2 : 1, 1);
    rb_action a = {0};
    a.primitive = *module ? module : row->name;
    a.verb = row->name;
    a.target = "";
    a.words = row->name;
    a.cls = row->cls == RB_READ ? RB_READ : RB_MUTATE; /* unknown is MUTATE */
    if (row->cls == RB_BY_ARGS && row->rehearse)
        a.cls = RB_BY_ARGS; /* describe() may prove it either way, or leave it to trying */
    a.fn = row->name;
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ANCHORS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, FIELDS);
    lua_pushlightuserdata(L, (void *)row);
    lua_setfield(L, LUA_REGISTRYINDEX, DESCRIBING);
    row->describe(L, &a);
    lua_settop(L, nargs);
    call *c = (call *)lua_newuserdatauv(L, sizeof *c, 2); /* at nargs + 1 */
    memset(c, 0, sizeof *c);
    c->a = a;
    c->row = row;
    c->nargs = nargs;
    lua_getfield(L, LUA_REGISTRYINDEX, ANCHORS);
    lua_setiuservalue(L, -2, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, FIELDS);
    call_fields_set(L, &c->a, -1);
    lua_setiuservalue(L, -2, 2);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ANCHORS);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, FIELDS);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, DESCRIBING);
    int unproven = c->a.cls == RB_BY_ARGS && row->rehearse;
    if (c->a.cls != RB_READ)
        c->a.cls = RB_MUTATE;
    if (c->a.opts > 0 && c->a.opts <= nargs && lua_istable(L, c->a.opts)) {
        if (lua_getfield(L, c->a.opts, "readonly") == LUA_TBOOLEAN) {
            c->a.cls = lua_toboolean(L, -1) ? RB_READ : RB_MUTATE;
            unproven = 0;
        }
        lua_pop(L, 1);
    }
    c->t0 = rb_now();

    if (E->strategy->answer) /* a scenario: nothing is tried, the mocks answer */
        return perform(L, c);
    if (unproven)
        return rehearse(L, c, REHEARSE_PROBE);
    return act(L, c);
}

/* ---- the rows ----------------------------------------------------------------
 * runbook.rows[primitive][fn]: each row as data, for the modes that read
 * descriptions rather than know primitives (scenario mocks, --record,
 * coverage).  Built once, at registration. */
#define ROWS "runbook.rows"

static const char *const FTYPES[] = {"str", "int", "num", "bool", "list", "set", "map"};

static void push_row_table(lua_State *L, const rb_fn *f, const char *kind)
{
    lua_createtable(L, 0, 12);
    lua_pushstring(L, f->cls == RB_READ ? "read" : f->cls == RB_MUTATE ? "mutate" : "by_args");
    lua_setfield(L, -2, "class");
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_newtable(L);
    for (const rb_field *d = f->fields; d && d->name; d++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, FTYPES[d->type]);
        lua_setfield(L, -2, "type");
        lua_pushboolean(L, (d->flags & RB_MATCH) != 0);
        lua_setfield(L, -2, "match");
        lua_pushboolean(L, (d->flags & RB_KEY) == RB_KEY);
        lua_setfield(L, -2, "key");
        lua_setfield(L, -2, d->name);
    }
    lua_setfield(L, -2, "fields");
    lua_newtable(L); /* respond: { key = true } */
    const char *keys = f->respond ? f->respond : "json result error";
    for (const char *p = keys; *p;) {
        size_t n = strcspn(p, " ");
        if (n) {
            lua_pushlstring(L, p, n);
            lua_pushboolean(L, 1);
            lua_settable(L, -3);
        }
        p += n;
        p += strspn(p, " ");
    }
    lua_setfield(L, -2, "respond");
    if (f->answer) {
        lua_pushcfunction(L, f->answer);
        lua_setfield(L, -2, "answer");
    }
    if (f->recorded) {
        lua_pushcfunction(L, f->recorded);
        lua_setfield(L, -2, "recorded");
    }
    if (f->stand_in) {
        lua_pushcfunction(L, f->stand_in);
        lua_setfield(L, -2, "stand_in");
    }
    if (f->paths) {
        lua_newtable(L);
        for (int i = 0; i < 32; i++)
            if (f->paths & (1u << i)) {
                lua_pushinteger(L, i + 1);
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            }
        lua_setfield(L, -2, "paths");
    }
    lua_pushboolean(L, (f->flags & RB_NOTICE) != 0);
    lua_setfield(L, -2, "notice");
    lua_pushcfunction(L, f->fn);
    lua_setfield(L, -2, "raw");
    lua_pushlightuserdata(L, (void *)f);
    lua_setfield(L, -2, "row");
}

static void add_row(lua_State *L, const char *primitive, const rb_fn *f, const char *kind);

/* runbook.rows is built the first time a mode asks for it (a scenario,
 * --record, coverage, rb_push_raw), not at every start: registration only
 * notes each table of rows in ROWSETS, { fns, primitive or false, kind }. */
#define ROWSETS "runbook.rowsets"

static void add_rowset(lua_State *L, int set)
{
    lua_getfield(L, set, "fns");
    const rb_fn *fns = (const rb_fn *)lua_touserdata(L, -1);
    lua_getfield(L, set, "primitive");
    const char *primitive = lua_tostring(L, -1); /* NULL: globals (exec, sh) */
    lua_getfield(L, set, "kind");
    const char *kind = lua_tostring(L, -1);
    for (const rb_fn *f = fns; f->name; f++)
        if (f->cls != RB_PURE)
            add_row(L, primitive ? primitive : f->name, f, kind);
    lua_pop(L, 3);
}

void rb_push_rows(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, ROWS) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ROWS);
    if (lua_getfield(L, LUA_REGISTRYINDEX, ROWSETS) == LUA_TTABLE) {
        int sets = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, sets, i) == LUA_TTABLE; i++) {
            add_rowset(L, lua_gettop(L));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, ROWS);
}

/* Note a table of rows; added at once when runbook.rows already exists. */
static void remember_rowset(lua_State *L, const char *primitive, const rb_fn *fns, const char *kind)
{
    lua_createtable(L, 0, 3);
    int set = lua_gettop(L);
    lua_pushlightuserdata(L, (void *)fns);
    lua_setfield(L, set, "fns");
    if (primitive)
        lua_pushstring(L, primitive);
    else
        lua_pushboolean(L, 0);
    lua_setfield(L, set, "primitive");
    lua_pushstring(L, kind);
    lua_setfield(L, set, "kind");
    if (lua_getfield(L, LUA_REGISTRYINDEX, ROWS) == LUA_TTABLE)
        add_rowset(L, set);
    lua_pop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, ROWSETS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, ROWSETS);
    }
    lua_pushvalue(L, set);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 2);
}

int rb_push_row(lua_State *L, const char *primitive, const char *fn)
{
    rb_push_rows(L);
    if (lua_getfield(L, -1, primitive) != LUA_TTABLE) {
        lua_remove(L, -2);
        return LUA_TNIL;
    }
    int t = lua_getfield(L, -1, fn);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return t;
}

static void add_row(lua_State *L, const char *primitive, const rb_fn *f, const char *kind)
{
    rb_push_rows(L);
    if (lua_getfield(L, -1, primitive) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, primitive);
    }
    push_row_table(L, f, kind);
    lua_setfield(L, -2, f->name);
    lua_pop(L, 2);
}

/* A pure row: checked like an action, then the function itself (called
 * directly: a yield inside it continues as it would have). */
static int pure_call(lua_State *L)
{
    const rb_fn *row = (const rb_fn *)lua_touserdata(L, lua_upvalueindex(1));
    sig_check(L, lua_tostring(L, lua_upvalueindex(2)), row->sig, row->options,
              lua_toboolean(L, lua_upvalueindex(3)) ? 2 : 1, 1);
    return row->fn(L);
}

static void register_rows(lua_State *L, int idx, const char *primitive, const rb_fn *fns,
                          const char *kind)
{
    idx = lua_absindex(L, idx);
    int method = strcmp(kind, "method") == 0;
    for (const rb_fn *f = fns; f->name; f++) {
        /* the name calls are known by: http.get, db:query (a method), print */
        const char *qual =
            primitive ? lua_pushfstring(L, "%s%s%s", primitive, method ? ":" : ".", f->name)
                      : lua_pushstring(L, f->name);
        if (f->cls == RB_PURE && !f->sig) {
            lua_pushcfunction(L, f->fn);
        } else if (f->cls == RB_PURE) {
            lua_pushlightuserdata(L, (void *)f);
            lua_pushvalue(L, -2);
            lua_pushboolean(L, method);
            lua_pushcclosure(L, pure_call, 3);
        } else {
            if (!f->describe)
                luaL_error(L, "primitive %s.%s has no describe hook", primitive ? primitive : "",
                           f->name);
            lua_pushlightuserdata(L, (void *)f);
            lua_pushstring(L, primitive ? primitive : "");
            lua_pushvalue(L, -3);
            lua_pushboolean(L, method);
            lua_pushcclosure(L, funnel_call, 4);
        }
        if (f->sig)
            sig_declare(L, qual, f->sig, f->options, -1);
        lua_setfield(L, idx, f->name);
        lua_pop(L, 1);
    }
    remember_rowset(L, primitive, fns, kind);
}

void rb_register_at(lua_State *L, int idx, const char *primitive, const rb_fn *fns)
{
    register_rows(L, idx, primitive, fns, "method");
}

void rb_register(lua_State *L, const char *module, const rb_fn *fns)
{
    if (module) {
        if (lua_getglobal(L, module) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setglobal(L, module);
        }
    } else {
        lua_pushglobaltable(L);
    }
    register_rows(L, -1, module, fns, module ? "module" : "global");
    lua_pop(L, 1);
}
