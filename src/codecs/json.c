/*
 * The json module: json.decode, json.encode, json.null, json.array_mt (all
 * pure, none an action).  Decoding is lua-cjson's, from a private instance;
 * encoding is a small writer here, because Debian's lua-cjson is the
 * original 2.1.0, without the OpenResty options we need: it writes numbers
 * with %.14g (integers above 10^14 come out rounded, 2^53 as
 * 9.007199254741e+15), always escapes '/' ("http:\/\/"), encodes an empty
 * array as {} and decodes every number as a float.  So around cjson's
 * decoder this file adds: integral floats become Lua integers, arrays get
 * json.array_mt (so [] round-trips), integer literals beyond 2^53 keep
 * their exact value, and a null object member is dropped (as in yaml).
 */
#include "jsonw.h"
#include "runbook/runbook.h"
#include "yamlconv.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char CJSON_DECODE[] = "runbook.json.cjson_decode";

/* ---- decoding ----------------------------------------------------------- */

/*
 * cjson cannot report an empty array or a big integer literal, so before
 * decoding we rewrite those two value tokens as marker strings that cannot
 * come out of ordinary JSON text: "\u0000a" for [] and "\u0000i<digits>" for
 * an integer of 16 or more digits.  The scan is lexical, not a parser: it
 * tracks only whether a value may start at this point (after '[', ':', ','
 * in an array, or at the start), which is exact for every valid prefix --
 * so the rewritten text is valid exactly when the original is, and for
 * error positions we decode the original again.  A document with a string
 * that itself starts with \u0000 is decoded without the rewrite.
 */
enum { JS_VALUE, JS_KEY, JS_OTHER };

static int big_integer(const char *s, size_t n)
{
    size_t p = (n > 0 && s[0] == '-') ? 1 : 0;
    if (n - p < 16 || s[p] < '1' || s[p] > '9')
        return 0;
    for (size_t i = p; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int json_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Count (b == NULL) or write (into b) the rewrites of s. */
static size_t json_scan(const char *s, size_t len, int *nul_string, luaL_Buffer *b)
{
    char stack[DATACONV_MAX_DEPTH];
    int depth = 0, state = JS_VALUE;
    size_t i = 0, copied = 0, n = 0;
    /* cjson stops at a NUL byte, and so do we */
    while (i < len && s[i]) {
        char ch = s[i];
        if (json_ws(ch)) {
            i++;
        } else if (ch == '"') {
            size_t j = i + 1;
            if (len - j >= 6 && memcmp(s + j, "\\u0000", 6) == 0)
                *nul_string = 1;
            while (j < len && s[j] && s[j] != '"')
                j += s[j] == '\\' ? 2 : 1;
            i = j + 1;
            state = JS_OTHER;
        } else if (ch == '[' || ch == '{') {
            size_t j = i + 1;
            while (ch == '[' && j < len && json_ws(s[j]))
                j++;
            if (ch == '[' && state == JS_VALUE && j < len && s[j] == ']') {
                if (b) {
                    luaL_addlstring(b, s + copied, i - copied);
                    luaL_addstring(b, "\"\\u0000a\"");
                    copied = j + 1;
                }
                n++;
                i = j + 1;
                state = JS_OTHER;
                continue;
            }
            if (depth == DATACONV_MAX_DEPTH)
                break; /* cjson refuses this depth anyway */
            stack[depth++] = ch;
            state = ch == '{' ? JS_KEY : JS_VALUE;
            i++;
        } else if (ch == ']' || ch == '}') {
            if (depth)
                depth--;
            state = JS_OTHER;
            i++;
        } else if (ch == ':') {
            state = JS_VALUE;
            i++;
        } else if (ch == ',') {
            state = !depth ? JS_OTHER : stack[depth - 1] == '{' ? JS_KEY : JS_VALUE;
            i++;
        } else {
            /* a bare token: a number, true, false, null, or garbage */
            size_t j = i;
            while (j < len && s[j] && !json_ws(s[j]) && !strchr("{}[],:\"", s[j]))
                j++;
            if (state == JS_VALUE && big_integer(s + i, j - i)) {
                if (b) {
                    luaL_addlstring(b, s + copied, i - copied);
                    luaL_addstring(b, "\"\\u0000i");
                    luaL_addlstring(b, s + i, j - i);
                    luaL_addchar(b, '"');
                    copied = j;
                }
                n++;
            }
            state = JS_OTHER;
            i = j;
        }
    }
    if (b)
        luaL_addlstring(b, s + copied, len - copied);
    return n;
}

static void json_fix_table(lua_State *L, int markers, int depth);

/* Turn the decoded value on top into what it stands for; 1 if replaced. */
static int json_fix(lua_State *L, int markers, int depth)
{
    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
        if (!lua_isinteger(L, -1)) {
            lua_Number d = lua_tonumber(L, -1);
            /* within 2^53 a float holds the integer the text spelled */
            if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
                lua_pop(L, 1);
                lua_pushinteger(L, (lua_Integer)d);
                return 1;
            }
        }
        return 0;
    case LUA_TSTRING:
        if (markers) {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            if (n >= 2 && s[0] == '\0' && s[1] == 'a') {
                lua_pop(L, 1);
                lua_newtable(L);
                dataconv_push_array_mt(L);
                lua_setmetatable(L, -2);
                return 1;
            }
            if (n >= 3 && s[0] == '\0' && s[1] == 'i' && lua_stringtonumber(L, s + 2)) {
                lua_remove(L, -2);
                return 1;
            }
        }
        return 0;
    case LUA_TTABLE:
        json_fix_table(L, markers, depth + 1);
        return 0;
    default:
        return 0;
    }
}

static void json_fix_table(lua_State *L, int markers, int depth)
{
    if (depth > DATACONV_MAX_DEPTH)
        luaL_error(L, "json.decode: nesting deeper than %d levels", DATACONV_MAX_DEPTH);
    luaL_checkstack(L, 8, "json.decode nesting");
    int t = lua_gettop(L);
    /* cjson gives objects string keys only, arrays 1..n */
    int array = lua_rawgeti(L, t, 1) != LUA_TNIL;
    lua_pop(L, 1);
    if (array) {
        dataconv_push_array_mt(L);
        lua_setmetatable(L, t);
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (!array && dataconv_is_null(L, -1)) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, t); /* clearing a field during traversal is allowed */
        } else if (json_fix(L, markers, depth)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, t); /* t k v' -- t k */
        } else {
            lua_pop(L, 1);
        }
    }
}

/* cjson's message with its token names in words, lower-cased, prefixed */
static int json_decode_error(lua_State *L)
{
    static const char *const names[][2] = {
        {"T_OBJ_BEGIN", "'{'"},
        {"T_OBJ_END", "'}'"},
        {"T_ARR_BEGIN", "'['"},
        {"T_ARR_END", "']'"},
        {"T_STRING", "string"},
        {"T_NUMBER", "number"},
        {"T_BOOLEAN", "true/false"},
        {"T_NULL", "null"},
        {"T_COLON", "':'"},
        {"T_COMMA", "','"},
        {"T_END", "end of input"},
        {"T_WHITESPACE", "whitespace"},
        {"T_ERROR", "an invalid token"},
        {"T_UNKNOWN", "an unknown token"},
    };
    if (lua_type(L, -1) != LUA_TSTRING)
        return lua_error(L);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        luaL_gsub(L, lua_tostring(L, -1), names[i][0], names[i][1]);
        lua_remove(L, -2);
    }
    const char *msg = lua_tostring(L, -1);
    char first[2] = {msg[0] >= 'A' && msg[0] <= 'Z' ? (char)(msg[0] - 'A' + 'a') : msg[0], '\0'};
    return luaL_error(L, "json.decode: %s%s", first, msg[0] ? msg + 1 : "");
}

/* json.decode(s) -> value   raises "json.decode: <cause> at character N" */
static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    int nul_string = 0;
    int markers = json_scan(s, len, &nul_string, NULL) > 0 && !nul_string;
    lua_getfield(L, LUA_REGISTRYINDEX, CJSON_DECODE);
    if (markers) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        json_scan(s, len, &nul_string, &b);
        luaL_pushresult(&b);
    } else {
        lua_pushvalue(L, 1);
    }
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        if (!markers || lua_type(L, -1) != LUA_TSTRING)
            return json_decode_error(L);
        /* the rewritten text moved the positions: ask about the original */
        lua_pop(L, 1);
        lua_getfield(L, LUA_REGISTRYINDEX, CJSON_DECODE);
        lua_pushvalue(L, 1);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            return json_decode_error(L);
        markers = 0; /* cannot happen; the plain decoding will do */
    }
    json_fix(L, markers, 0);
    if (dataconv_is_null(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return 1;
}

/* ---- encoding ----------------------------------------------------------- */

/* The output buffer is a to-be-closed userdata, so a raise anywhere in the
 * encoder frees it. */
typedef struct jbuf {
    char *p;
    size_t len, cap;
} jbuf;

static int jbuf_close(lua_State *L)
{
    jbuf *b = (jbuf *)lua_touserdata(L, 1);
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    return 0;
}

typedef struct jenc {
    jbuf *b;
    int pretty;
} jenc;

static void jb_add(lua_State *L, jenc *e, const char *s, size_t n)
{
    jbuf *b = e->b;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        char *p = (char *)realloc(b->p, cap);
        if (!p)
            luaL_error(L, "json.encode: not enough memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void jb_str(lua_State *L, jenc *e, const char *s)
{
    jb_add(L, e, s, strlen(s));
}

static void je_newline(lua_State *L, jenc *e, int depth)
{
    if (!e->pretty)
        return;
    jb_add(L, e, "\n", 1);
    for (int i = 0; i < depth; i++)
        jb_add(L, e, "  ", 2);
}

static void je_string(lua_State *L, jenc *e, const char *s, size_t n)
{
    jb_add(L, e, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        char u[7];
        size_t len;
        const char *esc = jw_escape_at(s + i, n - i, &len, u); /* jsonw.c: one table */
        if (esc) {
            jb_add(L, e, s + start, i - start);
            jb_str(L, e, esc);
            start = i + len;
        }
        i += len;
    }
    jb_add(L, e, s + start, n - start);
    jb_add(L, e, "\"", 1);
}

static void je_number(lua_State *L, jenc *e, int idx, int as_key)
{
    char buf[48];
    if (lua_isinteger(L, idx)) {
        snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
        double d = lua_tonumber(L, idx);
        if (isnan(d) || isinf(d))
            luaL_error(L, "json.encode: cannot encode %s", isnan(d) ? "NaN" : "infinity");
        /* an integral float is written as an integer: Go and friends
         * refuse 3.0 where they want an int */
        dataconv_fmt_float(d, buf);
    }
    if (!as_key && rb_is_secret(L, buf, strlen(buf))) {
        jb_str(L, e, "\"****\""); /* a secret number: a string, so the JSON stays JSON */
        return;
    }
    if (as_key) {
        je_string(L, e, buf, strlen(buf));
    } else {
        jb_str(L, e, buf);
    }
}

static void je_value(lua_State *L, jenc *e, int idx, int depth);

static void je_table(lua_State *L, jenc *e, int idx, int depth)
{
    if (depth >= DATACONV_MAX_DEPTH)
        luaL_error(L, "json.encode: nesting deeper than %d levels (a cycle?)", DATACONV_MAX_DEPTH);
    luaL_checkstack(L, 8, "json.encode nesting");
    lua_Integer n;
    if (dataconv_table_shape(L, idx, &n, "json.encode")) {
        if (n == 0) {
            jb_str(L, e, "[]");
            return;
        }
        jb_add(L, e, "[", 1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                jb_add(L, e, ",", 1);
            je_newline(L, e, depth + 1);
            lua_rawgeti(L, idx, i);
            je_value(L, e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        je_newline(L, e, depth);
        jb_add(L, e, "]", 1);
        return;
    }
    dataconv_sorted_keys(L, idx, "json.encode");
    int keys = lua_gettop(L);
    lua_Integer count = (lua_Integer)lua_rawlen(L, keys);
    if (count == 0) {
        lua_pop(L, 1);
        jb_str(L, e, "{}");
        return;
    }
    jb_add(L, e, "{", 1);
    for (lua_Integer i = 1; i <= count; i++) {
        if (i > 1)
            jb_add(L, e, ",", 1);
        je_newline(L, e, depth + 1);
        int t = lua_rawgeti(L, keys, i);
        int k = lua_gettop(L);
        if (t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, k, &len);
            je_string(L, e, s, len);
        } else if (t == LUA_TNUMBER) {
            je_number(L, e, k, 1);
        } else {
            luaL_error(L, "json.encode: cannot encode a table key of type %s", lua_typename(L, t));
        }
        jb_str(L, e, e->pretty ? ": " : ":");
        lua_pushvalue(L, k);
        lua_rawget(L, idx);
        je_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    je_newline(L, e, depth);
    jb_add(L, e, "}", 1);
}

static void je_value(lua_State *L, jenc *e, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        jb_str(L, e, "null");
        break;
    case LUA_TBOOLEAN:
        jb_str(L, e, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        je_number(L, e, idx, 0);
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        je_string(L, e, s, len);
        break;
    }
    case LUA_TTABLE:
        je_table(L, e, idx, depth);
        break;
    default:
        if (dataconv_is_null(L, idx))
            jb_str(L, e, "null");
        else
            luaL_error(L, "json.encode: cannot encode a %s", luaL_typename(L, idx));
    }
}

/* json.encode(v [, { pretty = true }]) -> string
 * Keys sorted; pretty is indented by 2 with no trailing newline. */
static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    int pretty = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        pretty = rb_opt_bool(L, 2, "pretty", 0);
    }
    lua_settop(L, 2);
    jbuf *b = (jbuf *)lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, "runbook.json.buffer")) {
        lua_pushcfunction(L, jbuf_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, jbuf_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, 3);
    lua_toclose(L, 3);
    jenc e = {b, pretty};
    je_value(L, &e, 1, 0);
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    lua_closeslot(L, 3);
    return 1;
}

static const rb_fn json_fns[] = {
    {.name = "decode", .fn = l_json_decode, .cls = RB_PURE, .sig = "text:str"},
    {.name = "encode",
     .fn = l_json_encode,
     .cls = RB_PURE,
     .sig = "value opts?:opts",
     .options = "pretty"},
    {.name = NULL},
};

static void open_cjson(lua_State *L)
{
    /* a private cjson instance: runbooks cannot reach or reconfigure it */
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "decode_invalid_numbers"); /* no NaN, Infinity, hex */
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, DATACONV_MAX_DEPTH);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode");
    lua_setfield(L, LUA_REGISTRYINDEX, CJSON_DECODE);
    lua_pop(L, 1);
}

/* json.null and json.array_mt on the json table on top */
static void add_markers(lua_State *L)
{
    lua_pushlightuserdata(L, NULL); /* cjson's null: what its decoder returns */
    lua_setfield(L, -2, "null");
    dataconv_push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
}

void mod_json_open(lua_State *L)
{
    open_cjson(L);
    rb_register(L, "json", json_fns);
    lua_getglobal(L, "json");
    add_markers(L);
    lua_pop(L, 1);
}

void json_open_plain(lua_State *L)
{
    open_cjson(L);
    lua_newtable(L);
    lua_pushcfunction(L, l_json_decode);
    lua_setfield(L, -2, "decode");
    lua_pushcfunction(L, l_json_encode);
    lua_setfield(L, -2, "encode");
    add_markers(L);
    lua_setglobal(L, "json");
}
