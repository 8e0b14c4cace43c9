/*
 * The yaml module and the YAML <-> Lua conversion behind it (yamlconv.h):
 * yaml.decode/encode (pure) and yaml.load(path) (a read action).  Parsing
 * uses libyaml's document API, so anchors and aliases come resolved and
 * every node carries its line for error messages and config validation;
 * encoding uses libyaml's emitter.  This file also owns the helpers both
 * encoders share (array metatable, table shape, sorted keys, float format),
 * so json and yaml agree on what an array is and in which order keys go.
 */
#include "runbook/runbook.h"
#include "yamlconv.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- helpers shared by the encoders ------------------------------------- */

static const char ARRAY_MT[] = "runbook.array_mt";

void dataconv_push_array_mt(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, ARRAY_MT) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, ARRAY_MT);
}

static int has_array_mt(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    dataconv_push_array_mt(L);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

int dataconv_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

int dataconv_table_shape(lua_State *L, int idx, lua_Integer *len, const char *who)
{
    idx = lua_absindex(L, idx);
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* t k v -- t k */
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        lua_Integer k = lua_tointeger(L, -1);
        count++;
        if (k > max)
            max = k;
    }
    *len = max;
    if (count == 0)
        return has_array_mt(L, idx);
    /* a few holes become nulls; a table like {[1000000] = x} is a mistake,
     * not a million-element array */
    if (max > 10 && max - count > count)
        luaL_error(L, "%s: excessively sparse array (%I elements, highest index %I)", who,
                   (LUAI_UACINT)count, (LUAI_UACINT)max);
    return 1;
}

typedef struct sortkey {
    int rank; /* 0 false, 1 true, 2 number, 3 string */
    int isint;
    lua_Integer i;
    lua_Number n;
    const char *s;
    size_t len;
    lua_Integer pos;
} sortkey;

static int sortkey_cmp(const void *pa, const void *pb)
{
    const sortkey *a = pa, *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    if (a->rank == 2) {
        if (a->isint && b->isint)
            return (a->i > b->i) - (a->i < b->i);
        return (a->n > b->n) - (a->n < b->n);
    }
    if (a->rank == 3) {
        int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
        if (c)
            return c;
        return (a->len > b->len) - (a->len < b->len);
    }
    return 0;
}

void dataconv_sorted_keys(lua_State *L, int idx, const char *who)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L); /* the keys in traversal order; anchors the strings */
    int keys = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    sortkey *e = (sortkey *)lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *e, 0);
    for (lua_Integer i = 0; i < n; i++) {
        sortkey *k = &e[i];
        memset(k, 0, sizeof *k);
        k->pos = i + 1;
        switch (lua_rawgeti(L, keys, i + 1)) {
        case LUA_TBOOLEAN:
            k->rank = lua_toboolean(L, -1);
            break;
        case LUA_TNUMBER:
            k->rank = 2;
            k->isint = lua_isinteger(L, -1);
            k->i = k->isint ? lua_tointeger(L, -1) : 0;
            k->n = lua_tonumber(L, -1);
            break;
        case LUA_TSTRING:
            k->rank = 3;
            k->s = lua_tolstring(L, -1, &k->len);
            break;
        default:
            luaL_error(L, "%s: cannot encode a table key of type %s", who, luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    qsort(e, (size_t)n, sizeof *e, sortkey_cmp);
    lua_createtable(L, n < INT_MAX ? (int)n : 0, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, keys, e[i].pos);
        lua_rawseti(L, -2, i + 1);
    }
    lua_replace(L, keys);
    lua_settop(L, keys);
}

const char *dataconv_fmt_float(double d, char buf[40])
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return buf;
}

/* ---- plain scalar resolution (YAML 1.2 core schema) --------------------- */

enum { YS_NULL, YS_BOOL, YS_INT, YS_FLOAT, YS_STR };

typedef struct yscalar {
    int type;
    int b;
    int from_int; /* a float because the integer did not fit */
    lua_Integer i;
    double d;
} yscalar;

static int is_one_of(const char *s, size_t len, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == len && memcmp(s, *words, len) == 0)
            return 1;
    return 0;
}

static size_t count_digits(const char *s, size_t len, size_t p, int base)
{
    size_t q = p;
    for (; q < len; q++) {
        int c = (unsigned char)s[q], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (d >= base)
            break;
    }
    return q - p;
}

/* digits s[p..len) in base, all valid; an integer, or a float when too big */
static void int_value(const char *s, size_t len, size_t p, int base, int neg, yscalar *v)
{
    unsigned long long u = 0;
    double d = 0;
    int overflow = 0;
    for (; p < len; p++) {
        int c = (unsigned char)s[p];
        unsigned dig = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
        d = d * base + dig;
        if (u > (ULLONG_MAX - dig) / (unsigned)base)
            overflow = 1;
        else
            u = u * (unsigned)base + dig;
    }
    unsigned long long lim =
        neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    if (!overflow && u <= lim) {
        v->type = YS_INT;
        v->i = neg ? (lua_Integer)(0 - u) : (lua_Integer)u;
    } else {
        v->type = YS_FLOAT;
        v->from_int = 1;
        /* strtod rounds once; the running sum above rounds at every digit */
        v->d = base == 8 ? (neg ? -d : d) : strtod(s, NULL);
    }
}

/* Resolve a plain scalar; s[len] must be '\0'. */
static int resolve_plain(const char *s, size_t len, yscalar *v)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    memset(v, 0, sizeof *v);
    v->type = YS_STR;
    if (memchr(s, '\0', len))
        return v->type;
    if (is_one_of(s, len, nulls))
        return v->type = YS_NULL;
    if (is_one_of(s, len, trues) || is_one_of(s, len, falses)) {
        v->b = s[0] == 't' || s[0] == 'T';
        return v->type = YS_BOOL;
    }
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        int base = s[1] == 'x' ? 16 : 8;
        if (count_digits(s, len, 2, base) == len - 2)
            int_value(s, len, 2, base, 0, v);
        return v->type;
    }
    size_t p = 0;
    int neg = 0;
    if (p < len && (s[p] == '-' || s[p] == '+'))
        neg = s[p++] == '-';
    size_t d1 = count_digits(s, len, p, 10);
    if (d1 > 0 && p + d1 == len) {
        int_value(s, len, p, 10, neg, v);
        return v->type;
    }
    if (is_one_of(s + p, len - p, infs)) {
        v->d = neg ? -HUGE_VAL : HUGE_VAL;
        return v->type = YS_FLOAT;
    }
    if (is_one_of(s, len, nans)) {
        v->d = NAN;
        return v->type = YS_FLOAT;
    }
    /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    size_t q = p + d1, d2 = 0;
    int frac = q < len && s[q] == '.';
    if (frac) {
        d2 = count_digits(s, len, q + 1, 10);
        q += 1 + d2;
    }
    if (d1 == 0 && d2 == 0)
        return v->type;
    if (q < len && (s[q] == 'e' || s[q] == 'E')) {
        q++;
        if (q < len && (s[q] == '-' || s[q] == '+'))
            q++;
        size_t d3 = count_digits(s, len, q, 10);
        if (d3 == 0)
            return v->type;
        q += d3;
    }
    if (q != len)
        return v->type;
    v->d = strtod(s, NULL);
    return v->type = YS_FLOAT;
}

/* ---- YAML -> Lua -------------------------------------------------------- */

typedef struct yconv {
    const char *buf;
    size_t len;
    int want_lines;
    int cache; /* stack index: node id -> converted table (aliases share it) */
    int lines; /* stack index of the line table, 0 without */
    yaml_document_t *doc;
    char problem[256];
    char context[160];
    int line, column; /* 1-based */
} yconv;

static int yc_fail(lua_State *L, yconv *c, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->problem, sizeof c->problem, fmt, ap);
    va_end(ap);
    c->line = (int)m.line + 1;
    c->column = (int)m.column + 1;
    lua_pushstring(L, c->problem);
    return lua_error(L);
}

/* libyaml's reader reports a byte offset, not a mark */
static void offset_to_mark(const char *buf, size_t len, size_t off, yaml_mark_t *m)
{
    m->line = m->column = 0;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            m->line++;
            m->column = 0;
        } else {
            m->column++;
        }
    }
}

static int yc_parser_fail(lua_State *L, yconv *c, yaml_parser_t *p)
{
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_MEMORY_ERROR) {
        m.line = m.column = 0;
        return yc_fail(L, c, m, "not enough memory");
    }
    if (p->error == YAML_READER_ERROR)
        offset_to_mark(c->buf, c->len, p->problem_offset, &m);
    else if (p->context)
        snprintf(c->context, sizeof c->context, "%s at line %d", p->context,
                 (int)p->context_mark.line + 1);
    return yc_fail(L, c, m, "%s", p->problem ? p->problem : "invalid YAML");
}

static void yc_push(lua_State *L, yconv *c, int id, int depth);

static int tag_is(const yaml_node_t *n, const char *tag)
{
    return n->tag && strcmp((const char *)n->tag, tag) == 0;
}

static void yc_scalar(lua_State *L, yconv *c, yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    yscalar v;
    if (tag_is(n, YAML_NULL_TAG) || tag_is(n, YAML_BOOL_TAG) || tag_is(n, YAML_INT_TAG) ||
        tag_is(n, YAML_FLOAT_TAG)) {
        /* an explicit tag applies to quoted scalars too */
        int t = resolve_plain(s, len, &v);
        const char *want = NULL;
        if (tag_is(n, YAML_NULL_TAG) && t != YS_NULL)
            want = "!!null";
        else if (tag_is(n, YAML_BOOL_TAG) && t != YS_BOOL)
            want = "!!bool";
        else if (tag_is(n, YAML_INT_TAG) && t != YS_INT && !v.from_int)
            want = "!!int";
        else if (tag_is(n, YAML_FLOAT_TAG) && t != YS_FLOAT && t != YS_INT)
            want = "!!float";
        if (want)
            yc_fail(L, c, n->start_mark, "invalid %s value '%s'", want, s);
        if (tag_is(n, YAML_FLOAT_TAG) && t == YS_INT) {
            v.type = YS_FLOAT;
            v.d = (double)v.i;
        }
    } else if (plain) {
        /* !!str on a plain scalar cannot be told from no tag here: the
         * document API fills in the default tag */
        resolve_plain(s, len, &v);
    } else {
        v.type = YS_STR;
    }
    switch (v.type) {
    case YS_NULL:
        lua_pushnil(L);
        break;
    case YS_BOOL:
        lua_pushboolean(L, v.b);
        break;
    case YS_INT:
        lua_pushinteger(L, v.i);
        break;
    case YS_FLOAT:
        lua_pushnumber(L, v.d);
        break;
    default:
        lua_pushlstring(L, s, len);
    }
}

static int node_line(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

/* lines[t] = { line = N, keys = {} }; returns the index of keys, or 0 */
static int yc_lines_entry(lua_State *L, yconv *c, int t, yaml_node_t *n)
{
    if (!c->lines)
        return 0;
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, node_line(n));
    lua_setfield(L, -2, "line");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "keys"); /* entry keys */
    lua_pushvalue(L, t);
    lua_pushvalue(L, -3);
    lua_rawset(L, c->lines); /* lines[t] = entry */
    lua_remove(L, -2);
    return lua_gettop(L);
}

static int is_merge_key(const yaml_node_t *k)
{
    if (k->type != YAML_SCALAR_NODE)
        return 0;
    if (tag_is(k, "tag:yaml.org,2002:merge"))
        return 1;
    return k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && k->data.scalar.length == 2 &&
           memcmp(k->data.scalar.value, "<<", 2) == 0;
}

/* t[k] = v for every k of the table on top that t lacks (a `<<` merge) */
static void yc_merge_from(lua_State *L, int t, int keys, int line)
{
    int src = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, src)) {
        lua_pushvalue(L, -2);
        if (lua_rawget(L, t) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, t); /* src k v -- src k */
            if (keys) {
                lua_pushvalue(L, -1);
                if (lua_rawget(L, keys) == LUA_TNIL) {
                    lua_pushvalue(L, -2);
                    lua_pushinteger(L, line);
                    lua_rawset(L, keys);
                }
                lua_pop(L, 1);
            }
        } else {
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
}

static void yc_mapping(lua_State *L, yconv *c, int id, yaml_node_t *n, int depth)
{
    yaml_node_pair_t *start = n->data.mapping.pairs.start, *end = n->data.mapping.pairs.top;
    lua_createtable(L, 0, (int)(end - start));
    int t = lua_gettop(L);
    lua_pushvalue(L, t);
    lua_rawseti(L, c->cache, id);
    int keys = yc_lines_entry(L, c, t, n);
    int merges = 0;
    for (yaml_node_pair_t *p = start; p < end; p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        if (is_merge_key(kn)) {
            merges++;
            continue;
        }
        if (kn->type != YAML_SCALAR_NODE)
            yc_fail(L, c, kn->start_mark, "mapping keys must be scalars");
        /* keys are their text, as in JSON: {200: ok} must not turn into an
         * array, and t["200"] is what a JSON document would give */
        lua_pushlstring(L, (const char *)kn->data.scalar.value, kn->data.scalar.length);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, t) != LUA_TNIL)
            yc_fail(L, c, kn->start_mark, "duplicate key '%s'",
                    (const char *)kn->data.scalar.value);
        lua_pop(L, 1);
        if (keys) {
            lua_pushvalue(L, -1);
            lua_pushinteger(L, node_line(kn));
            lua_rawset(L, keys);
        }
        yc_push(L, c, p->value, depth + 1);
        if (lua_isnil(L, -1))
            lua_pop(L, 2); /* a null value: the key is omitted */
        else
            lua_rawset(L, t);
    }
    /* explicit keys win over merged ones, earlier merges over later ones */
    for (yaml_node_pair_t *p = start; merges && p < end; p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        if (!is_merge_key(kn))
            continue;
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        if (vn->type == YAML_MAPPING_NODE) {
            yc_push(L, c, p->value, depth + 1);
            yc_merge_from(L, t, keys, node_line(kn));
            continue;
        }
        if (vn->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = vn->data.sequence.items.start;
                 it < vn->data.sequence.items.top; it++) {
                yaml_node_t *in = yaml_document_get_node(c->doc, *it);
                if (in->type != YAML_MAPPING_NODE)
                    yc_fail(L, c, in->start_mark, "a << merge takes mappings");
                yc_push(L, c, *it, depth + 1);
                yc_merge_from(L, t, keys, node_line(kn));
            }
            continue;
        }
        yc_fail(L, c, vn->start_mark, "a << merge takes a mapping or a list of mappings");
    }
    lua_settop(L, t);
}

static void yc_push(lua_State *L, yconv *c, int id, int depth)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, id);
    if (!n) {
        lua_pushnil(L);
        return;
    }
    if (n->type == YAML_SCALAR_NODE) {
        yc_scalar(L, c, n);
        return;
    }
    if (lua_rawgeti(L, c->cache, id) != LUA_TNIL)
        return; /* an alias of a node already converted: the same table */
    lua_pop(L, 1);
    if (depth >= DATACONV_MAX_DEPTH)
        yc_fail(L, c, n->start_mark, "nesting deeper than %d levels", DATACONV_MAX_DEPTH);
    luaL_checkstack(L, 12, "YAML nesting");
    if (n->type == YAML_MAPPING_NODE) {
        yc_mapping(L, c, id, n, depth);
        return;
    }
    yaml_node_item_t *it = n->data.sequence.items.start, *end = n->data.sequence.items.top;
    lua_createtable(L, (int)(end - it), 0);
    int t = lua_gettop(L);
    dataconv_push_array_mt(L);
    lua_setmetatable(L, t);
    lua_pushvalue(L, t);
    lua_rawseti(L, c->cache, id);
    int keys = yc_lines_entry(L, c, t, n);
    for (lua_Integer i = 1; it < end; it++, i++) {
        yc_push(L, c, *it, depth + 1);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlightuserdata(L, NULL); /* json.null keeps the sequence whole */
        }
        lua_rawseti(L, t, i);
        if (keys) {
            lua_pushinteger(L, node_line(yaml_document_get_node(c->doc, *it)));
            lua_rawseti(L, keys, i);
        }
    }
    lua_settop(L, t);
}

/* The parser and its document live in a to-be-closed userdata, so they are
 * freed however the conversion ends. */
typedef struct ydoc {
    yaml_parser_t parser;
    yaml_document_t doc;
    int parser_ok, doc_ok;
} ydoc;

static int ydoc_close(lua_State *L)
{
    ydoc *y = (ydoc *)lua_touserdata(L, 1);
    if (y->doc_ok) {
        yaml_document_delete(&y->doc);
        y->doc_ok = 0;
    }
    if (y->parser_ok) {
        yaml_parser_delete(&y->parser);
        y->parser_ok = 0;
    }
    return 0;
}

static void push_closer_mt(lua_State *L, const char *name, lua_CFunction close)
{
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__close");
    }
}

/* ---- aliases ---------------------------------------------------------------
 * Aliases share the converted table, so converting is linear; but what the
 * document MEANS, walked as data (an expectation compared, a mock printed,
 * JSON encoded), is its expansion: nine nested aliases of ten make a
 * billion nodes from a 1 KB file.  A document whose aliases expand to more
 * than EXPANDED_MAX nodes, and to ten times its own size, is refused. */
#define EXPANDED_MAX 1000000ULL
#define IN_PROGRESS  UINT64_MAX

static uint64_t expanded(yaml_document_t *doc, uint64_t *memo, int id)
{
    yaml_node_t *n = yaml_document_get_node(doc, id);
    if (!n || n->type == YAML_SCALAR_NODE)
        return 1;
    if (memo[id] == IN_PROGRESS) /* a node that contains itself: counted once */
        return 1;
    if (memo[id])
        return memo[id];
    memo[id] = IN_PROGRESS;
    uint64_t total = 1;
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++)
            total += expanded(doc, memo, *it);
    } else {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
            total += expanded(doc, memo, p->key) + expanded(doc, memo, p->value);
    }
    if (total > EXPANDED_MAX * 16) /* saturate well above the limit: no overflow */
        total = EXPANDED_MAX * 16;
    memo[id] = total;
    return total;
}

static void yc_check_aliases(lua_State *L, yconv *c, yaml_document_t *doc)
{
    size_t nodes = (size_t)(doc->nodes.top - doc->nodes.start);
    uint64_t *memo = (uint64_t *)lua_newuserdatauv(L, (nodes + 1) * sizeof *memo, 0);
    memset(memo, 0, (nodes + 1) * sizeof *memo);
    uint64_t total = expanded(doc, memo, 1);
    lua_pop(L, 1);
    if (total > EXPANDED_MAX && total > (uint64_t)nodes * 10)
        yc_fail(L, c, doc->nodes.start->start_mark,
                "its aliases expand to more than %llu nodes (from %zu): refused",
                (unsigned long long)EXPANDED_MAX, nodes);
}

/* yc_body(yconv) -> value [, lines]; raises with c->problem set */
static int yc_body(lua_State *L)
{
    yconv *c = (yconv *)lua_touserdata(L, 1);
    lua_settop(L, 0);
    ydoc *y = (ydoc *)lua_newuserdatauv(L, sizeof *y, 0);
    memset(y, 0, sizeof *y);
    push_closer_mt(L, "runbook.yaml.doc", ydoc_close);
    lua_setmetatable(L, 1);
    lua_toclose(L, 1);
    yaml_mark_t none = {0, 0, 0};
    if (!yaml_parser_initialize(&y->parser))
        return yc_fail(L, c, none, "not enough memory");
    y->parser_ok = 1;
    yaml_parser_set_input_string(&y->parser, (const unsigned char *)c->buf, c->len);
    if (!yaml_parser_load(&y->parser, &y->doc))
        return yc_parser_fail(L, c, &y->parser);
    y->doc_ok = 1;
    c->doc = &y->doc;
    lua_newtable(L);
    c->cache = 2;
    lua_newtable(L);
    c->lines = c->want_lines ? 3 : 0;
    if (yaml_document_get_root_node(&y->doc)) {
        yc_check_aliases(L, c, &y->doc);
        yc_push(L, c, 1, 0);
    } else
        lua_pushnil(L); /* an empty stream */
    if (dataconv_is_null(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    if (!c->want_lines)
        return 1;
    lua_pushvalue(L, 3);
    return 2;
}

static int yc_run(lua_State *L, yconv *c)
{
    lua_pushcfunction(L, yc_body);
    lua_pushlightuserdata(L, c);
    return lua_pcall(L, 1, c->want_lines ? 2 : 1, 0);
}

static int yc_parse(lua_State *L, const char *buf, size_t len, const char *name, char *err,
                    size_t errlen, int want_lines)
{
    yconv c;
    memset(&c, 0, sizeof c);
    c.buf = buf;
    c.len = len;
    c.want_lines = want_lines;
    if (yc_run(L, &c) == LUA_OK)
        return 0;
    if (c.problem[0])
        snprintf(err, errlen, "%s:%d: %s%s%s%s", name, c.line, c.problem, c.context[0] ? " (" : "",
                 c.context, c.context[0] ? ")" : "");
    else
        snprintf(err, errlen, "%s: %s", name,
                 lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "cannot read YAML");
    lua_pop(L, 1);
    return -1;
}

int yamlconv_parse(lua_State *L, const char *buf, size_t len, const char *name, char *err,
                   size_t errlen)
{
    return yc_parse(L, buf, len, name, err, errlen, 0);
}

int yamlconv_parse_lines(lua_State *L, const char *buf, size_t len, const char *name, char *err,
                         size_t errlen)
{
    return yc_parse(L, buf, len, name, err, errlen, 1);
}

/* yaml.decode(s) -> value   raises "yaml.decode: <problem> at line L, column C" */
static int l_yaml_decode(lua_State *L)
{
    yconv c;
    memset(&c, 0, sizeof c);
    c.buf = luaL_checklstring(L, 1, &c.len);
    if (yc_run(L, &c) == LUA_OK)
        return 1;
    if (!c.problem[0])
        return lua_error(L);
    return luaL_error(L, "yaml.decode: %s at line %d, column %d%s%s%s", c.problem, c.line, c.column,
                      c.context[0] ? " (" : "", c.context, c.context[0] ? ")" : "");
}

/* yaml.load(path) -> value   raises "yaml.load PATH: cause" or "yaml.load PATH:LINE: problem" */
static int l_yaml_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    if (fs_push_file_contents(L, path) != 0)
        return luaL_error(L, "yaml.load %s: %s", path, strerror(errno));
    char err[512];
    size_t len;
    const char *buf = lua_tolstring(L, 2, &len);
    if (yamlconv_parse(L, buf, len, path, err, sizeof err) != 0)
        return luaL_error(L, "yaml.load %s", err);
    return 1;
}

static void yaml_load_describe(lua_State *L, rb_action *a)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "yaml load ");
    rb_quote_arg(&b, path);
    luaL_pushresult(&b);
    rb_action_set(L, a, "verb", "load");
    rb_action_set(L, a, "target", "%s", path);
    rb_action_set(L, a, "words", "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    rb_field_str(L, "path", path);
}

/* ---- Lua -> YAML -------------------------------------------------------- */

typedef struct yemit {
    yaml_emitter_t em;
    int em_ok;
    char *buf;
    size_t len, cap;
} yemit;

static int yemit_close(lua_State *L)
{
    yemit *y = (yemit *)lua_touserdata(L, 1);
    if (y->em_ok) {
        yaml_emitter_delete(&y->em);
        y->em_ok = 0;
    }
    free(y->buf);
    y->buf = NULL;
    y->len = y->cap = 0;
    return 0;
}

static int yemit_write(void *data, unsigned char *s, size_t n)
{
    yemit *y = (yemit *)data;
    if (y->cap - y->len < n) {
        size_t cap = y->cap ? y->cap : 1024;
        while (cap - y->len < n)
            cap *= 2;
        char *p = (char *)realloc(y->buf, cap);
        if (!p)
            return 0;
        y->buf = p;
        y->cap = cap;
    }
    memcpy(y->buf + y->len, s, n);
    y->len += n;
    return 1;
}

static void ye_emit(lua_State *L, yemit *y, yaml_event_t *ev)
{
    if (!yaml_emitter_emit(&y->em, ev))
        luaL_error(L, "yaml.encode: %s", y->em.problem ? y->em.problem : "not enough memory");
}

/* the rules yaml_scalar_event_initialize applies, checked first so the
 * error says what is wrong */
static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k;
        unsigned long v;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            k = 1;
            v = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            v = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            v = c & 0x07;
        } else {
            return 0;
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            v = (v << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && v < 0x80) || (k == 2 && v < 0x800) || (k == 3 && v < 0x10000) ||
            v > 0x10FFFF)
            return 0; /* overlong or out of range */
        i += k + 1;
    }
    return 1;
}

static void ye_scalar(lua_State *L, yemit *y, const char *s, size_t len, yaml_scalar_style_t style,
                      int plain_implicit, int quoted_implicit)
{
    if (len > INT_MAX)
        luaL_error(L, "yaml.encode: string too long");
    if (!valid_utf8((const unsigned char *)s, len))
        luaL_error(L, "yaml.encode: string is not valid UTF-8");
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, plain_implicit,
                                      quoted_implicit, style))
        luaL_error(L, "yaml.encode: not enough memory");
    ye_emit(L, y, &ev);
}

static void ye_plain(lua_State *L, yemit *y, const char *s)
{
    ye_scalar(L, y, s, strlen(s), YAML_PLAIN_SCALAR_STYLE, 1, 0);
}

/* Strings a YAML 1.1 reader (PyYAML, older tools) would not read back as
 * strings: quote them too, so the output means the same everywhere. */
static int yaml11_special(const char *s, size_t len)
{
    static const char *const words[] = {"y",   "Y",   "yes", "Yes", "YES", "n",  "N",
                                        "no",  "No",  "NO",  "on",  "On",  "ON", "off",
                                        "Off", "OFF", "<<",  "=",   NULL};
    if (is_one_of(s, len, words))
        return 1;
    size_t p = (len > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    if (p >= len || !((s[p] >= '0' && s[p] <= '9') || (s[p] == '.' && p + 1 < len)))
        return 0;
    for (size_t i = p; i < len; i++)
        if (s[i] == '\0' || !strchr("0123456789abcdefABCDEFxXoO_:.+-", s[i]))
            return 0;
    return 1; /* number-like: 0644, 1_000, 12:30, 1.0.0 */
}

static void ye_string(lua_State *L, yemit *y, const char *s, size_t len)
{
    yscalar v;
    yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
    if (resolve_plain(s, len, &v) != YS_STR || yaml11_special(s, len))
        style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
    else if (memchr(s, '\n', len))
        style = YAML_LITERAL_SCALAR_STYLE; /* libyaml falls back when it cannot */
    ye_scalar(L, y, s, len, style, 1, 1);
}

static void ye_number(lua_State *L, yemit *y, int idx)
{
    char buf[48];
    if (lua_isinteger(L, idx)) {
        snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
        double d = lua_tonumber(L, idx);
        if (isnan(d)) {
            strcpy(buf, ".nan");
        } else if (isinf(d)) {
            strcpy(buf, d > 0 ? ".inf" : "-.inf");
        } else {
            char f[40];
            dataconv_fmt_float(d, f);
            /* keep it a float for readers that want a dot: 1.0, 1.0e+20 */
            char *e = strchr(f, 'e');
            if (strchr(f, '.'))
                snprintf(buf, sizeof buf, "%s", f);
            else if (e)
                snprintf(buf, sizeof buf, "%.*s.0%s", (int)(e - f), f, e);
            else
                snprintf(buf, sizeof buf, "%s.0", f);
        }
    }
    ye_plain(L, y, buf);
}

static void ye_value(lua_State *L, yemit *y, int idx, int depth);

static void ye_table(lua_State *L, yemit *y, int idx, int depth)
{
    if (depth >= DATACONV_MAX_DEPTH)
        luaL_error(L, "yaml.encode: nesting deeper than %d levels (a cycle?)", DATACONV_MAX_DEPTH);
    luaL_checkstack(L, 8, "yaml.encode nesting");
    yaml_event_t ev;
    lua_Integer n;
    if (dataconv_table_shape(L, idx, &n, "yaml.encode")) {
        yaml_sequence_start_event_initialize(
            &ev, NULL, NULL, 1, n ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE);
        ye_emit(L, y, &ev);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            ye_value(L, y, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        yaml_sequence_end_event_initialize(&ev);
        ye_emit(L, y, &ev);
        return;
    }
    dataconv_sorted_keys(L, idx, "yaml.encode");
    int keys = lua_gettop(L);
    lua_Integer count = (lua_Integer)lua_rawlen(L, keys);
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                        count ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE);
    ye_emit(L, y, &ev);
    for (lua_Integer i = 1; i <= count; i++) {
        lua_rawgeti(L, keys, i);
        int k = lua_gettop(L);
        if (lua_type(L, k) == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, k, &len);
            ye_string(L, y, s, len);
        } else if (lua_type(L, k) == LUA_TNUMBER) {
            ye_number(L, y, k);
        } else {
            ye_plain(L, y, lua_toboolean(L, k) ? "true" : "false");
        }
        lua_pushvalue(L, k);
        lua_rawget(L, idx);
        ye_value(L, y, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    yaml_mapping_end_event_initialize(&ev);
    ye_emit(L, y, &ev);
}

static void ye_value(lua_State *L, yemit *y, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        ye_plain(L, y, "null");
        break;
    case LUA_TBOOLEAN:
        ye_plain(L, y, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        ye_number(L, y, idx);
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        ye_string(L, y, s, len);
        break;
    }
    case LUA_TTABLE:
        ye_table(L, y, idx, depth);
        break;
    default:
        if (dataconv_is_null(L, idx))
            ye_plain(L, y, "null");
        else
            luaL_error(L, "yaml.encode: cannot encode a %s", luaL_typename(L, idx));
    }
}

/* yaml.encode(v) -> string   block style, keys sorted, arrays as sequences */
static int l_yaml_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    yemit *y = (yemit *)lua_newuserdatauv(L, sizeof *y, 0);
    memset(y, 0, sizeof *y);
    push_closer_mt(L, "runbook.yaml.emitter", yemit_close);
    lua_setmetatable(L, 2);
    lua_toclose(L, 2);
    if (!yaml_emitter_initialize(&y->em))
        return luaL_error(L, "yaml.encode: not enough memory");
    y->em_ok = 1;
    yaml_emitter_set_output(&y->em, yemit_write, y);
    yaml_emitter_set_unicode(&y->em, 1);
    yaml_emitter_set_indent(&y->em, 2);
    yaml_emitter_set_width(&y->em, -1); /* never fold long strings */
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ye_emit(L, y, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ye_emit(L, y, &ev);
    ye_value(L, y, 1, 0);
    yaml_document_end_event_initialize(&ev, 1);
    ye_emit(L, y, &ev);
    yaml_stream_end_event_initialize(&ev);
    ye_emit(L, y, &ev);
    if (!yaml_emitter_flush(&y->em))
        return luaL_error(L, "yaml.encode: not enough memory");
    lua_pushlstring(L, y->buf ? y->buf : "", y->len);
    lua_closeslot(L, 2);
    return 1;
}

static const rb_field load_fields[] = {{"path", RB_STR, RB_KEY}, {NULL, 0, 0}};

static const rb_fn yaml_fns[] = {
    {.name = "decode", .fn = l_yaml_decode, .cls = RB_PURE, .sig = "text:str"},
    {.name = "encode", .fn = l_yaml_encode, .cls = RB_PURE, .sig = "value"},
    /* reads a file: in a scenario, the scratch directory's */
    {.name = "load",
     .fn = l_yaml_load,
     .cls = RB_READ,
     .describe = yaml_load_describe,
     .fields = load_fields,
     .paths = 1u,
     .sig = "path:str"},
    {.name = NULL},
};

void mod_yaml_open(lua_State *L)
{
    rb_register(L, "yaml", yaml_fns);
    lua_getglobal(L, "yaml");
    lua_pushlightuserdata(L, NULL); /* the same sentinel as json.null */
    lua_setfield(L, -2, "null");
    lua_pop(L, 1);
}
