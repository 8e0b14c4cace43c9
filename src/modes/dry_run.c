/*
 * dry-run: reads run for real, so the rehearsal shows today's state; calls
 * that change something are rehearsed where the primitive can prove it
 * harmlessly (a database's rolled-back savepoint) and otherwise simulated.
 * An endpoint configured nowhere does not stop the rehearsal: it warns that
 * a live run would fail there, and goes on with a stand-in.
 */
#include "dry_run.h"
#include "audit.h"
#include "engine.h"
#include "journal.h"
#include "landlock.h"

#include "util.h"
#include "yamlconv.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int missing(rb_engine *E, lua_State *L, const char *what)
{
    lua_pushfstring(L, "%s: a live run would fail here", what);
    journal_log(E, L, "warn", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
}

const rb_strategy rb_mode_dry_run = {
    .name = "dry-run",
    .performs = 0,
    .missing = missing,
};

/* The directory that holds path (which may not exist yet), resolved. */
static const char *dir_of(const char *path, char *out)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    return realpath(dirname(copy), out);
}

int dry_run_confine(rb_engine *E, const char *record)
{
    /* The audit database writes its -wal/-shm/-journal files beside it and
     * --record writes FILE.partial then renames it: Landlock grants those
     * by directory, so those two directories stay writable for the engine
     * (never for its children: they get /dev/null only, host.c).
     * /dev/tty: confine() and --confirm talk to the operator there. */
    char audit_dir[PATH_MAX], record_dir[PATH_MAX];
    const char *writable[5];
    int n = 0;
    if (E->audit && *audit_path(E->audit) && dir_of(audit_path(E->audit), audit_dir))
        writable[n++] = audit_dir;
    if (record && dir_of(record, record_dir))
        writable[n++] = record_dir;
    writable[n++] = "/dev/null";
    writable[n++] = "/dev/tty";
    writable[n] = NULL;
    return rb_landlock_confine(writable, 0);
}

/* ---- the plan (`runbook plan`, src/cli/cmd_plan.c) --------------------------
 * A decorator over dry-run that writes down, in order, every change the
 * rehearsal would make and a digest of every read's answer, redacted as the
 * audit is: what `runbook apply` holds a live run to. */

#define PLAN_JSON    "runbook.plan.json"
#define PLAN_CHANGES "runbook.plan.changes"
#define PLAN_READS   "runbook.plan.reads"

void plan_capture_json(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "encode");
    lua_setfield(L, -3, "encode");
    lua_getfield(L, -1, "decode");
    lua_setfield(L, -3, "decode");
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, PLAN_JSON);
}

static int push_json_fn(lua_State *L, const char *fn)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, PLAN_JSON) != LUA_TTABLE) {
        lua_pop(L, 1);
        plan_capture_json(L); /* before any runbook code: the engine's own */
        lua_getfield(L, LUA_REGISTRYINDEX, PLAN_JSON);
    }
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    return lua_isfunction(L, -1);
}

const char *plan_encode(lua_State *L, int idx, int pretty)
{
    idx = lua_absindex(L, idx);
    if (push_json_fn(L, "encode")) {
        lua_pushvalue(L, idx);
        if (pretty) {
            lua_createtable(L, 0, 1);
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "pretty");
        }
        if (lua_pcall(L, pretty ? 2 : 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
            return lua_tostring(L, -1);
    }
    /* NaN, a sparse table: still a value that compares and prints */
    const char *why = lua_tostring(L, -1);
    lua_pushfstring(L, "\"<not JSON: %s>\"", why ? why : "?");
    lua_remove(L, -2);
    return lua_tostring(L, -1);
}

int plan_decode(lua_State *L, const char *text, size_t len)
{
    if (!push_json_fn(L, "decode"))
        return -1;
    lua_pushlstring(L, text, len);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        return -1;
    return 0;
}

/* A copy of the value at idx with every secret's value as ****: strings
 * redacted, a number that is a secret's text written "****", what JSON
 * cannot hold named.  Tables keep the array mark, so [] stays []. */
static void push_redacted(lua_State *L, int idx, int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        rb_redact(L, s, n);
        return;
    }
    case LUA_TNUMBER: {
        size_t n;
        lua_pushvalue(L, idx);
        const char *s = lua_tolstring(L, -1, &n);
        int secret = rb_is_secret(L, s, n);
        lua_pop(L, 1);
        if (secret)
            lua_pushliteral(L, "****");
        else
            lua_pushvalue(L, idx);
        return;
    }
    case LUA_TBOOLEAN:
        lua_pushvalue(L, idx);
        return;
    case LUA_TTABLE:
        break;
    default:
        lua_pushfstring(L, "<%s>", luaL_typename(L, idx));
        return;
    }
    if (depth > 16) {
        lua_pushliteral(L, "<nested too deep>");
        return;
    }
    luaL_checkstack(L, 6, "plan: nesting");
    lua_newtable(L);
    int out = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING || kt == LUA_TNUMBER) {
            lua_pushvalue(L, -2);
            push_redacted(L, -2, depth + 1);
            lua_rawset(L, out);
        }
        lua_pop(L, 1);
    }
    if (lua_getmetatable(L, idx)) {
        dataconv_push_array_mt(L);
        if (lua_rawequal(L, -1, -2))
            lua_setmetatable(L, out);
        else
            lua_pop(L, 1);
        lua_pop(L, 1);
    }
}

static void set_str(lua_State *L, const char *key, const char *value)
{
    if (!value)
        return;
    rb_redact(L, value, strlen(value));
    lua_setfield(L, -2, key);
}

/* where the run is: the step (of the runbook run_runbook() is in, too) */
static void set_step(rb_engine *E, lua_State *L)
{
    if (!E->step_index)
        return;
    lua_pushinteger(L, E->step_index);
    lua_setfield(L, -2, "step");
    set_str(L, "step_name", E->step_name);
}

void plan_push_action(lua_State *L, const rb_action *a)
{
    rb_engine *E = rb_engine_of(L);
    lua_createtable(L, 0, 8);
    set_step(E, L);
    set_str(L, "primitive", a->primitive);
    set_str(L, "fn", a->fn);
    set_str(L, "verb", a->verb);
    set_str(L, "target", a->target);
    set_str(L, "words", a->words);
    rb_push_action_fields(L, a);
    push_redacted(L, -1, 0);
    lua_setfield(L, -3, "fields");
    lua_pop(L, 1);
}

const char *plan_action_key(lua_State *L, int entry)
{
    entry = lua_absindex(L, entry);
    lua_createtable(L, 0, 5);
    static const char *const keys[] = {"primitive", "fn",     "verb", "target",
                                       "words",     "fields", NULL};
    for (int i = 0; keys[i]; i++) {
        lua_getfield(L, entry, keys[i]);
        lua_setfield(L, -2, keys[i]);
    }
    const char *s = plan_encode(L, -1, 0);
    lua_remove(L, -2);
    return s;
}

/* What the read answered, as its row says a recording would write it
 * (rb_fn.recorded: the answer without what changes at every call, such as
 * an HTTP response's Date or its time), redacted: its sha256. */
static void read_digest(lua_State *L, const rb_action *a, int res, int nres, const char *error,
                        char out[65])
{
    int top = lua_gettop(L);
    int have = 0;
    if (rb_push_row(L, a->primitive, a->fn) == LUA_TTABLE &&
        lua_getfield(L, -1, "recorded") == LUA_TFUNCTION) {
        rb_push_action_info(L, a);
        if (error)
            lua_pushstring(L, error);
        else
            lua_pushnil(L);
        for (int i = 0; i < nres; i++)
            lua_pushvalue(L, res + i);
        have = lua_pcall(L, 2 + nres, 1, 0) == LUA_OK;
    }
    if (!have) { /* record.lua's default_recorded */
        lua_settop(L, top);
        lua_newtable(L);
        if (error) {
            lua_pushstring(L, error);
            lua_setfield(L, -2, "error");
        } else if (nres > 0 && (lua_istable(L, res) || lua_type(L, res) == LUA_TSTRING)) {
            lua_pushvalue(L, res);
            lua_setfield(L, -2, lua_istable(L, res) ? "json" : "result");
        }
    }
    push_redacted(L, -1, 0);
    size_t n;
    const char *json = (plan_encode(L, -1, 0), lua_tolstring(L, -1, &n));
    rb_sha256_hex(json, n, out);
    lua_settop(L, top);
}

void plan_push_read(lua_State *L, const rb_action *a, int simulated, int res, int nres,
                    const char *error)
{
    char digest[65];
    read_digest(L, a, res, nres, simulated ? NULL : error, digest);
    lua_createtable(L, 0, 7);
    set_step(rb_engine_of(L), L);
    set_str(L, "primitive", a->primitive);
    set_str(L, "verb", a->verb);
    set_str(L, "target", a->target);
    lua_pushstring(L, digest);
    lua_setfield(L, -2, "digest");
    if (simulated) { /* answered as the rehearsal's world would: not the world's answer */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "simulated");
    }
}

static void append(lua_State *L, const char *list)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, list) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        dataconv_push_array_mt(L);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, list);
    }
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

static void plan_after_action(rb_engine *E, lua_State *L, const rb_action *a, int simulated,
                              int nargs, int res, int nres, const char *error)
{
    (void)E, (void)nargs;
    int top = lua_gettop(L);
    /* every change the live run would attempt, rehearsed or failed alike:
     * apply meets each of them in its before_action */
    if (a->cls == RB_MUTATE) {
        plan_push_action(L, a);
        append(L, PLAN_CHANGES);
    } else {
        plan_push_read(L, a, simulated, res, nres, error);
        append(L, PLAN_READS);
    }
    lua_settop(L, top);
}

const rb_strategy rb_mode_plan = {
    .name = "plan",
    .after_action = plan_after_action,
};

void plan_push_collected(lua_State *L, const char *which)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX,
                     strcmp(which, "reads") == 0 ? PLAN_READS : PLAN_CHANGES) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        dataconv_push_array_mt(L);
        lua_setmetatable(L, -2);
    }
}

/* ---- `runbook run --dry-run`: the plan at the end, --diff ------------------------
 * The same collection as `runbook plan`'s (its changes, not the reads'
 * digests a run never checks), over whatever the run already decorates
 * (--record, --confirm): the layer below is kept and called first. */

#define RUN_BELOW "runbook.dry_run.below"
#define RUN_DIFF  "runbook.dry_run.diff"

/* Past these a diff says why it is not shown rather than take the memory
 * (the LCS table of the changed middle is lines x lines). */
#define DIFF_MAX_BYTES (4u << 20)
#define DIFF_MAX_CELLS (4u << 20)
#define DIFF_CONTEXT   3

typedef struct dline {
    const char *p;
    size_t n; /* with its '\n', if it has one: a last line without differs */
} dline;

static dline *split_lines(const char *s, size_t len, size_t *count)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    n += len > 0 && s[len - 1] != '\n';
    dline *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (const char *p = s, *end = s + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t m = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        v[k++] = (dline){p, m};
        p += m;
    }
    *count = n;
    return v;
}

static int same(const dline *a, const dline *b)
{
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

/* The edit script from a to b: ops[] of ' ', '-', '+' (one per line of
 * either).  Common head and tail first; the middle by LCS when it fits,
 * else all of a's middle out and b's in (a correct diff, not a minimal
 * one). */
static char *edit_script(const dline *a, size_t na, const dline *b, size_t nb, size_t *nops)
{
    char *ops = malloc(na + nb + 1);
    if (!ops)
        return NULL;
    size_t pre = 0, suf = 0, k = 0;
    while (pre < na && pre < nb && same(&a[pre], &b[pre]))
        pre++;
    while (suf < na - pre && suf < nb - pre && same(&a[na - 1 - suf], &b[nb - 1 - suf]))
        suf++;
    memset(ops, ' ', pre);
    k = pre;
    size_t ma = na - pre - suf, mb = nb - pre - suf;
    const dline *A = a + pre, *B = b + pre;
    uint32_t *t = NULL;
    if ((ma + 1) * (mb + 1) <= DIFF_MAX_CELLS)
        t = calloc((ma + 1) * (mb + 1), sizeof *t);
    if (t) {
#define T(i, j) t[(i) * (mb + 1) + (j)]
        for (size_t i = ma; i-- > 0;)
            for (size_t j = mb; j-- > 0;)
                T(i, j) = same(&A[i], &B[j])           ? T(i + 1, j + 1) + 1
                          : T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j)
                                                       : T(i, j + 1);
        size_t i = 0, j = 0;
        while (i < ma || j < mb) {
            if (i < ma && j < mb && same(&A[i], &B[j]))
                ops[k++] = ' ', i++, j++;
            else if (i < ma && (j == mb || T(i + 1, j) >= T(i, j + 1)))
                ops[k++] = '-', i++;
            else
                ops[k++] = '+', j++;
        }
#undef T
        free(t);
    } else {
        memset(ops + k, '-', ma);
        k += ma;
        memset(ops + k, '+', mb);
        k += mb;
    }
    memset(ops + k, ' ', suf);
    k += suf;
    *nops = k;
    return ops;
}

static void add_line(luaL_Buffer *buf, char mark, const dline *l)
{
    luaL_addchar(buf, mark);
    int nl = l->n > 0 && l->p[l->n - 1] == '\n';
    luaL_addlstring(buf, l->p, l->n - (size_t)nl);
    luaL_addstring(buf, nl ? "\n" : "\n\\ No newline at end of file\n");
}

static void add_range(luaL_Buffer *buf, char side, size_t start, size_t len)
{
    char r[64];
    if (len == 1) /* as diff -u writes them */
        snprintf(r, sizeof r, "%c%zu", side, start + 1);
    else
        snprintf(r, sizeof r, "%c%zu,%zu", side, len ? start + 1 : start, len);
    luaL_addstring(buf, r);
}

/* Push the unified diff (diff -u's format, 3 lines of context) of old to
 * new, headed with the two names; an empty string when they are equal. */
static void push_unified(lua_State *L, const char *from, const char *to, const char *old,
                         size_t nold, const char *new, size_t nnew)
{
    size_t na = 0, nb = 0, nops = 0;
    dline *a = split_lines(old, nold, &na), *b = split_lines(new, nnew, &nb);
    char *ops = a && b ? edit_script(a, na, b, nb, &nops) : NULL;
    if (!ops) {
        free(a), free(b);
        luaL_error(L, "--diff: out of memory");
        return;
    }
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    /* ia[k], ib[k]: the line of a and of b that op k is at */
    size_t k = 0, ia = 0, ib = 0;
    int headed = 0;
    while (k < nops) {
        size_t c = k, ca = ia, cb = ib; /* the next change */
        while (c < nops && ops[c] == ' ')
            c++, ca++, cb++;
        if (c == nops)
            break;
        size_t back = c - k < DIFF_CONTEXT ? c - k : DIFF_CONTEXT;
        size_t hs = c - back, ha = ca - back, hb = cb - back;
        /* the hunk's end: past the last change whose next is more than
         * 2 x context away */
        size_t e = c, ea = ca, eb = cb, run = 0;
        for (size_t x = c, xa = ca, xb = cb; x < nops; x++) {
            if (ops[x] == ' ') {
                if (++run > 2 * DIFF_CONTEXT)
                    break;
                xa++, xb++;
                continue;
            }
            run = 0;
            xa += ops[x] == '-';
            xb += ops[x] == '+';
            e = x + 1, ea = xa, eb = xb;
        }
        size_t fwd = 0;
        while (e + fwd < nops && fwd < DIFF_CONTEXT && ops[e + fwd] == ' ')
            fwd++;
        if (!headed) {
            luaL_addstring(&buf, "--- ");
            luaL_addstring(&buf, from);
            luaL_addstring(&buf, "\n+++ ");
            luaL_addstring(&buf, to);
            luaL_addchar(&buf, '\n');
            headed = 1;
        }
        luaL_addstring(&buf, "@@ ");
        add_range(&buf, '-', ha, ea + fwd - ha);
        luaL_addchar(&buf, ' ');
        add_range(&buf, '+', hb, eb + fwd - hb);
        luaL_addstring(&buf, " @@\n");
        for (size_t x = hs, xa = ha, xb = hb; x < e + fwd; x++) {
            if (ops[x] == '+')
                add_line(&buf, '+', &b[xb++]);
            else if (ops[x] == '-')
                add_line(&buf, '-', &a[xa++]);
            else
                add_line(&buf, ' ', &a[xa++]), xb++;
        }
        k = e + fwd, ia = ea + fwd, ib = eb + fwd;
    }
    free(ops), free(a), free(b);
    luaL_pushresult(&buf);
}

/* Push the whole content of path; 0, or -1 with errno set. */
static int push_file(lua_State *L, const char *path, size_t limit, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    size_t total = 0, got;
    char chunk[1 << 14];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        total += got;
        if (total <= limit)
            luaL_addlstring(&buf, chunk, got);
    }
    int bad = ferror(f);
    fclose(f);
    luaL_pushresult(&buf);
    *len = total;
    if (bad) {
        lua_pop(L, 1);
        errno = EIO;
        return -1;
    }
    return 0;
}

/* A write whose effect --diff can show: its row says so (RB_CONTENT): the
 * path is argument 1, the data argument 2 (RB_CONTENT_APPEND: added at the
 * end). */
static void show_diff(rb_engine *E, lua_State *L, const rb_action *a, int nargs)
{
    int flags = 0, base = lua_gettop(L);
    if (rb_push_row(L, a->primitive, a->fn) == LUA_TTABLE &&
        lua_getfield(L, -1, "row") == LUA_TLIGHTUSERDATA)
        flags = ((const rb_fn *)lua_touserdata(L, -1))->flags;
    lua_settop(L, base);
    int appends = (flags & RB_CONTENT_APPEND) != 0;
    if (!(flags & RB_CONTENT) || nargs < 2 || lua_type(L, 1) != LUA_TSTRING ||
        (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER))
        return;
    int top = lua_gettop(L);
    const char *path = lua_tostring(L, 1);
    size_t ndata;
    lua_pushvalue(L, 2); /* a number is converted on the copy */
    const char *data = lua_tolstring(L, -1, &ndata);
    size_t nold = 0;
    int missing = 0;
    char note[512];
    if (push_file(L, path, DIFF_MAX_BYTES, &nold) != 0) {
        if (errno != ENOENT) {
            snprintf(note, sizeof note, "(no diff: the current content cannot be read: %s)",
                     strerror(errno));
            journal_diff(E, L, a, path, NULL, note);
            lua_settop(L, top);
            return;
        }
        lua_pushliteral(L, "");
        missing = 1;
    }
    const char *old = lua_tostring(L, -1);
    size_t nnew = appends ? nold + ndata : ndata;
    if (nold > DIFF_MAX_BYTES || nnew > DIFF_MAX_BYTES) {
        snprintf(note, sizeof note, "(no diff: %zu bytes now, %zu after; larger than %u MiB)", nold,
                 nnew, DIFF_MAX_BYTES >> 20);
        journal_diff(E, L, a, path, NULL, note);
        lua_settop(L, top);
        return;
    }
    if (appends) {
        lua_pushvalue(L, -1);
        lua_pushvalue(L, -3);
        lua_concat(L, 2);
        data = lua_tolstring(L, -1, &ndata);
    }
    if (memchr(old, '\0', nold) || memchr(data, '\0', ndata)) {
        snprintf(note, sizeof note, "(no diff: binary content, %zu bytes now, %zu after)", nold,
                 ndata);
        journal_diff(E, L, a, path, NULL, note);
    } else if (!missing && nold == ndata && memcmp(old, data, nold) == 0) {
        journal_diff(E, L, a, path, NULL, "(no change: the file already has this content)");
    } else {
        lua_pushfstring(L, "%s\t(after %s %s)", path, a->primitive, a->verb);
        push_unified(L, missing ? "/dev/null" : path, lua_tostring(L, -1), old, nold, data, ndata);
        journal_diff(E, L, a, path, lua_tostring(L, -1), NULL);
    }
    lua_settop(L, top);
}

static void run_after_action(rb_engine *E, lua_State *L, const rb_action *a, int simulated,
                             int nargs, int res, int nres, const char *error)
{
    int top = lua_gettop(L);
    const rb_strategy *below = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, RUN_BELOW) == LUA_TLIGHTUSERDATA)
        below = lua_touserdata(L, -1);
    int diff = (lua_getfield(L, LUA_REGISTRYINDEX, RUN_DIFF), lua_toboolean(L, -1));
    lua_settop(L, top);
    if (below && below->after_action)
        below->after_action(E, L, a, simulated, nargs, res, nres, error);
    if (a->cls != RB_MUTATE)
        return;
    plan_push_action(L, a);
    if (E->step_index) { /* [2/4 ...]; a change of the top-level code has no step */
        if (lua_getfield(L, LUA_REGISTRYINDEX, JOURNAL_STEP_TOTAL) == LUA_TNUMBER)
            lua_setfield(L, -2, "total");
        else
            lua_pop(L, 1);
    }
    append(L, PLAN_CHANGES);
    lua_settop(L, top);
    if (diff && simulated && !error)
        show_diff(E, L, a, nargs);
}

static const rb_strategy rb_mode_dry_run_plan = {
    .name = "dry-run",
    .after_action = run_after_action,
};

int dry_run_collect(rb_engine *E, int diff)
{
    lua_State *L = E->L;
    lua_pushlightuserdata(L, (void *)E->strategy);
    lua_setfield(L, LUA_REGISTRYINDEX, RUN_BELOW);
    lua_pushboolean(L, diff);
    lua_setfield(L, LUA_REGISTRYINDEX, RUN_DIFF);
    return engine_decorate(E, &rb_mode_dry_run_plan);
}

void dry_run_show_plan(rb_engine *E, lua_State *L, int exit_code)
{
    plan_push_collected(L, "changes");
    journal_plan(E, L, -1, exit_code == 0);
    lua_pop(L, 1);
}
