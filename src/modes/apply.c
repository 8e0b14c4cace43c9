/*
 * apply: a decorator over live that carries out a plan (`runbook apply`,
 * src/cli/cmd_plan.c) and nothing else.  Before each call that changes
 * something it compares the call with the next change of the plan -- same
 * primitive, function, verb, target, words and structured fields, as the
 * plan's dry-run described them (src/modes/dry_run.c), redacted alike: the
 * words too, since a row's fields may not hold all of it (fs.write's content
 * shows only as its size there) -- and lets
 * it happen only then.  The first difference, a different change or one
 * more than planned, is refused before anything of it is done, shown beside
 * the planned one, and every change after it is refused too: a runbook that
 * catches the error must not go on changing the world off the plan.
 */
#include "audit.h"
#include "dry_run.h"
#include "engine.h"
#include "jsonw.h"
#include "util.h"
#include "yamlconv.h"

#include <stdio.h>
#include <string.h>

#define APPLY_CHANGES "runbook.apply.changes"
#define APPLY_READS   "runbook.apply.reads"
#define APPLY_SEEN    "runbook.apply.seen"
#define APPLY_PLAN    "runbook.apply_plan" /* journal.c records it in the run's records */

static struct {
    int next;     /* changes of the plan made so far */
    int n;        /* changes in the plan */
    int diverged; /* 1-based index of the change refused, 0 while on the plan */
    int extra;    /* the refused one came after every planned change */
} st;

void apply_begin(lua_State *L, int changes, int reads, const char *plan_id)
{
    memset(&st, 0, sizeof st);
    lua_pushvalue(L, changes);
    lua_setfield(L, LUA_REGISTRYINDEX, APPLY_CHANGES);
    lua_pushvalue(L, reads);
    lua_setfield(L, LUA_REGISTRYINDEX, APPLY_READS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, APPLY_SEEN);
    lua_pushstring(L, plan_id);
    lua_setfield(L, LUA_REGISTRYINDEX, APPLY_PLAN);
    st.n = (int)lua_rawlen(L, changes);
}

static FILE *out_of(rb_engine *E)
{
    return E->output == OUT_JSON ? stderr : E->out; /* JSON events stay JSON */
}

/* Push what the entry at idx has under key, as text for the side by side */
static const char *push_shown(lua_State *L, int idx, const char *key)
{
    int t = idx ? lua_getfield(L, idx, key) : LUA_TNIL;
    if (t == LUA_TNIL) {
        if (idx)
            lua_pop(L, 1);
        lua_pushliteral(L, "");
        return "";
    }
    if (t == LUA_TSTRING)
        return lua_tostring(L, -1);
    plan_encode(L, -1, 0);
    lua_remove(L, -2);
    return lua_tostring(L, -1);
}

static void row(FILE *f, int width, const char *name, const char *planned, const char *actual)
{
    int same = strcmp(planned, actual) == 0;
    fprintf(f, "%s %-16s %-*s  %s\n", same ? " " : "!", name, width, planned, actual);
}

/* The keys of two tables (or nils) at a and b, sorted, as an array pushed. */
static void push_union_keys(lua_State *L, int a, int b)
{
    lua_newtable(L);
    int u = lua_gettop(L);
    for (int side = 0; side < 2; side++) {
        int t = side ? b : a;
        if (!lua_istable(L, t))
            continue;
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushboolean(L, 1);
            lua_rawset(L, u);
        }
    }
    rb_push_sorted_keys(L, u);
    lua_remove(L, u);
}

/* The first read that answered otherwise than when the plan was made: the
 * likely reason the changes differ. */
static void explain(FILE *f, lua_State *L)
{
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, APPLY_READS);
    int planned = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, APPLY_SEEN);
    int seen = lua_gettop(L);
    lua_Integer np = lua_istable(L, planned) ? (lua_Integer)lua_rawlen(L, planned) : 0;
    lua_Integer ns = lua_istable(L, seen) ? (lua_Integer)lua_rawlen(L, seen) : 0;
    for (lua_Integer i = 1; i <= ns; i++) {
        lua_settop(L, seen);
        lua_rawgeti(L, seen, i);
        int s = lua_gettop(L);
        const char *dp = NULL;
        if (i <= np && lua_rawgeti(L, planned, i) == LUA_TTABLE) {
            lua_getfield(L, -1, "digest");
            dp = lua_tostring(L, -1);
        }
        lua_getfield(L, s, "digest");
        const char *ds = lua_tostring(L, -1);
        if (dp && ds && strcmp(dp, ds) == 0)
            continue;
        lua_getfield(L, s, "step");
        lua_getfield(L, s, "primitive");
        lua_getfield(L, s, "verb");
        lua_getfield(L, s, "target");
        const char *target = lua_tostring(L, -1), *verb = lua_tostring(L, -2),
                   *prim = lua_tostring(L, -3);
        fprintf(f,
                "  read %lld (step %lld: %s %s %s) answered differently than when the plan was "
                "made%s\n",
                (long long)i, (long long)lua_tointeger(L, -4), prim ? prim : "?", verb ? verb : "?",
                target ? target : "", dp ? "" : " (the plan has no such read)");
        break;
    }
    lua_settop(L, top);
}

/* planned (0: none) and actual side by side, the lines that differ marked */
static void side_by_side(rb_engine *E, lua_State *L, int planned, int actual)
{
    FILE *f = out_of(E);
    int top = lua_gettop(L);
    if (planned)
        fprintf(f,
                "\napply: stopped before change %d of %d: it is not the planned one; nothing "
                "of it was done\n\n",
                st.next + 1, st.n);
    else
        fprintf(f,
                "\napply: stopped before a change the plan does not have (all %d planned "
                "changes were made); nothing of it was done\n\n",
                st.n);
    /* the planned column as wide as its longest value, within reason */
    static const char *const keys[] = {"primitive", "fn", "verb", "target", NULL};
    int width = 7;
    for (int i = 0; keys[i] && planned; i++) {
        int n = (int)strlen(push_shown(L, planned, keys[i]));
        width = n > width ? n : width;
        lua_pop(L, 1);
    }
    if (planned && lua_getfield(L, planned, "fields") == LUA_TTABLE) {
        int fields = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, fields)) {
            int n = (int)strlen(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                               : plan_encode(L, -1, 0));
            width = n > width ? n : width;
            lua_settop(L, fields + 1); /* the key */
        }
    }
    lua_settop(L, top);
    width = width > 48 ? 48 : width;
    fprintf(f, "  %-16s %-*s  %s\n", "", width, "planned", "actual");
    const char *ps = lua_pushfstring(L, "%s \"%s\"", push_shown(L, planned, "step"),
                                     push_shown(L, planned, "step_name"));
    const char *as = lua_pushfstring(L, "%s \"%s\"", push_shown(L, actual, "step"),
                                     push_shown(L, actual, "step_name"));
    fprintf(f, "  %-16s %-*s  %s\n", "step", width, planned ? ps : "(none)", as);
    lua_settop(L, top);
    for (int i = 0; keys[i]; i++) {
        row(f, width, keys[i], push_shown(L, planned, keys[i]), push_shown(L, actual, keys[i]));
        lua_settop(L, top);
    }
    if (planned)
        lua_getfield(L, planned, "fields");
    else
        lua_pushnil(L);
    int pf = lua_gettop(L);
    lua_getfield(L, actual, "fields");
    int af = lua_gettop(L);
    push_union_keys(L, pf, af);
    int keyset = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, keyset, i) == LUA_TSTRING; i++) {
        const char *k = lua_tostring(L, -1);
        int below = lua_gettop(L);
        const char *p = lua_istable(L, pf) ? push_shown(L, pf, k) : (lua_pushliteral(L, ""), "");
        const char *a = lua_istable(L, af) ? push_shown(L, af, k) : (lua_pushliteral(L, ""), "");
        char name[64];
        snprintf(name, sizeof name, "fields.%s", k);
        row(f, width, name, p, a);
        lua_settop(L, below - 1);
    }
    lua_settop(L, top);
    const char *pw = push_shown(L, planned, "words"), *aw = push_shown(L, actual, "words");
    const char *mark = strcmp(pw, aw) == 0 ? " " : "!";
    fprintf(f, "%s %-16s %s\n%s %-16s %s\n", mark, "planned:", pw, mark, "actual:", aw);
    lua_settop(L, top);
    explain(f, L);
    fputc('\n', f);
    fflush(f);
}

static int before_action(rb_engine *E, lua_State *L, const rb_action *a)
{
    int top = lua_gettop(L);
    if (st.diverged) {
        fprintf(out_of(E), "apply: refused %s: the apply stopped at change %d\n", a->words,
                st.diverged);
        return 0;
    }
    plan_push_action(L, a);
    int actual = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, APPLY_CHANGES);
    int planned = 0;
    if (lua_istable(L, -1) && lua_rawgeti(L, -1, st.next + 1) == LUA_TTABLE)
        planned = lua_gettop(L);
    int same = 0;
    if (planned) {
        const char *want = plan_action_key(L, planned);
        const char *got = plan_action_key(L, actual);
        same = strcmp(want, got) == 0;
    }
    if (same) {
        st.next++;
        lua_settop(L, top);
        return 1;
    }
    st.diverged = st.next + 1;
    st.extra = !planned;
    side_by_side(E, L, planned, actual);
    lua_settop(L, top);
    return 0;
}

static void after_action(rb_engine *E, lua_State *L, const rb_action *a, int simulated, int nargs,
                         int res, int nres, const char *error)
{
    (void)E, (void)nargs;
    if (a->cls == RB_MUTATE)
        return;
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, APPLY_SEEN);
    plan_push_read(L, a, simulated, res, nres, error);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_settop(L, top);
}

const rb_strategy rb_mode_apply = {
    .name = "apply",
    .performs = 1,
    .before_action = before_action,
    .after_action = after_action,
};

/* The apply's own record, beside the run's: how far the plan got. */
static void record_outcome(rb_engine *E, const char *outcome)
{
    if (!E->audit)
        return;
    lua_State *L = E->L;
    lua_getfield(L, LUA_REGISTRYINDEX, APPLY_PLAN);
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "plan", lua_tostring(L, -1));
    jw_kstr(&w, "outcome", outcome);
    jw_kint(&w, "changes_planned", st.n);
    jw_kint(&w, "changes_made", st.next);
    if (st.diverged)
        jw_kint(&w, "stopped_before", st.diverged);
    jw_kstr(&w, "operator", rb_username());
    jw_obj_end(&w);
    lua_pop(L, 1);
    char ts[32];
    rb_time_rfc3339(ts, -1);
    if (audit_append(E->audit, E->run_id, "apply", ts, jw_str_result(&w), NULL) != 0)
        fprintf(stderr, "runbook: audit: %s\n", audit_error(E->audit));
    jw_free(&w);
}

int apply_finish(rb_engine *E, lua_State *L, int exit_code)
{
    FILE *f = out_of(E);
    if (st.diverged) {
        fprintf(f, "apply: stopped before change %d%s; %d of the %d planned change%s made\n",
                st.diverged, st.extra ? " (not in the plan)" : "", st.next, st.n,
                st.n == 1 ? " was" : "s were");
        record_outcome(E, "stopped");
        fflush(f);
        return exit_code == 130 ? 130 : 1;
    }
    if (st.next < st.n) {
        int top = lua_gettop(L);
        int left = st.n - st.next;
        fprintf(f, "apply: %d of the %d planned change%s %s not made:\n", left, st.n,
                st.n == 1 ? "" : "s", left == 1 ? "was" : "were");
        lua_getfield(L, LUA_REGISTRYINDEX, APPLY_CHANGES);
        for (int i = st.next + 1; i <= st.n; i++) {
            lua_rawgeti(L, top + 1, i);
            int e = lua_gettop(L);
            const char *step = push_shown(L, e, "step");
            const char *name = push_shown(L, e, "step_name");
            const char *words = push_shown(L, e, "words");
            fprintf(f, "  %d. step %s \"%s\": %s\n", i, step, name, words);
            lua_settop(L, top + 1);
        }
        lua_settop(L, top);
        record_outcome(E, "incomplete");
        fflush(f);
        return exit_code ? exit_code : 1;
    }
    record_outcome(E, exit_code == 0 ? "complete" : "failed");
    return exit_code;
}
