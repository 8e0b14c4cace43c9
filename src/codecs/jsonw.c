/* A small JSON writer for audit records and --output json events. */
#include "jsonw.h"
#include "runbook/runbook.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(jsonw *w)
{
    memset(w, 0, sizeof *w);
    w->first[0] = 1;
}

void jw_free(jsonw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void jw_reset(jsonw *w)
{
    w->len = 0;
    w->depth = 0;
    w->first[0] = 1;
    w->oom = 0;
    if (w->buf)
        w->buf[0] = '\0';
}

static void put(jsonw *w, const char *s, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = 1;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

const char *jw_str_result(jsonw *w)
{
    return (w->oom || !w->buf) ? "" : w->buf;
}

/* a comma before every element but the first of its container */
static void sep(jsonw *w)
{
    if (w->first[w->depth])
        w->first[w->depth] = 0;
    else
        put(w, ",", 1);
}

static void open_(jsonw *w, const char *c)
{
    sep(w);
    put(w, c, 1);
    if (w->depth < 63)
        w->depth++;
    w->first[w->depth] = 1;
}

static void close_(jsonw *w, const char *c)
{
    put(w, c, 1);
    if (w->depth > 0)
        w->depth--;
}

void jw_obj(jsonw *w)
{
    open_(w, "{");
}
void jw_obj_end(jsonw *w)
{
    close_(w, "}");
}
void jw_arr(jsonw *w)
{
    open_(w, "[");
}
void jw_arr_end(jsonw *w)
{
    close_(w, "]");
}

const char *jw_escape(unsigned char c, char buf[7])
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    }
    if (c >= 0x20) /* JSON escapes only the C0 controls */
        return NULL;
    snprintf(buf, 7, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
    return buf;
}

/* The length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0:
 * a stray continuation byte, an overlong form, a surrogate, a code point
 * beyond U+10FFFF or a sequence cut short (RFC 3629). */
size_t jw_utf8_len(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0], cp;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4, cp = c & 0x07;
    else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
        return 0;
    if (need == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        return 0;
    return need;
}

const char *jw_escape_at(const char *s, size_t n, size_t *len, char buf[7])
{
    unsigned char c = (unsigned char)s[0];
    if (c < 0x80) {
        *len = 1;
        return jw_escape(c, buf);
    }
    *len = jw_utf8_len(s, n);
    if (*len)
        return NULL;
    *len = 1;
    return "\\ufffd";
}

static void quoted(jsonw *w, const char *s, size_t n)
{
    put(w, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        char ubuf[7];
        size_t len;
        const char *esc = jw_escape_at(s + i, n - i, &len, ubuf);
        if (esc) {
            put(w, s + start, i - start);
            put(w, esc, strlen(esc));
            start = i + len;
        }
        i += len;
    }
    put(w, s + start, n - start);
    put(w, "\"", 1);
}

void jw_key(jsonw *w, const char *k)
{
    sep(w);
    quoted(w, k, strlen(k));
    put(w, ":", 1);
    /* the value that follows must not write a comma */
    w->first[w->depth] = 1;
}

/* after a value inside a container the next element needs a comma */
static void value_written(jsonw *w)
{
    w->first[w->depth] = 0;
}

void jw_stringn(jsonw *w, const char *s, size_t n)
{
    sep(w);
    quoted(w, s, n);
    value_written(w);
}

void jw_string(jsonw *w, const char *s)
{
    jw_stringn(w, s, strlen(s));
}

void jw_int(jsonw *w, long long v)
{
    char b[32];
    sep(w);
    put(w, b, (size_t)snprintf(b, sizeof b, "%lld", v));
    value_written(w);
}

void jw_num(jsonw *w, double v)
{
    char b[40];
    sep(w);
    if (!isfinite(v))
        put(w, "null", 4);
    /* the range first: casting a larger one to long long is undefined */
    else if (fabs(v) < 1e15 && v == (double)(long long)v)
        put(w, b, (size_t)snprintf(b, sizeof b, "%lld", (long long)v));
    else
        put(w, b, (size_t)snprintf(b, sizeof b, "%.14g", v));
    value_written(w);
}

void jw_bool(jsonw *w, int v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
    value_written(w);
}

void jw_null(jsonw *w)
{
    sep(w);
    put(w, "null", 4);
    value_written(w);
}

void jw_raw(jsonw *w, const char *json)
{
    sep(w);
    put(w, json, strlen(json));
    value_written(w);
}

void jw_kstr(jsonw *w, const char *k, const char *s)
{
    if (!s)
        return;
    jw_key(w, k);
    jw_string(w, s);
}

void jw_kint(jsonw *w, const char *k, long long v)
{
    jw_key(w, k);
    jw_int(w, v);
}

void jw_knum(jsonw *w, const char *k, double v)
{
    jw_key(w, k);
    jw_num(w, v);
}

void jw_kbool(jsonw *w, const char *k, int v)
{
    jw_key(w, k);
    jw_bool(w, v);
}

/* Is the table at idx a sequence 1..n with nothing else? */
static int is_array(lua_State *L, int idx, lua_Integer *n)
{
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    *n = count;
    return count == (lua_Integer)lua_rawlen(L, idx);
}

/* A value whose metatable has __tostring (a db connection) is what it says
 * it is, redacted like any string: the record then names the object (its
 * URL, password as ****), where "<userdata>" named nothing.  Called
 * protected, so a failing __tostring writes the type instead of raising
 * halfway through a record.  1 when written. */
static int tostring_value(jsonw *w, lua_State *L, int idx)
{
    if (!lua_checkstack(L, 3) || luaL_getmetafield(L, idx, "__tostring") == LUA_TNIL)
        return 0;
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return 0;
    }
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    jw_string(w, rb_redact(L, s, n));
    lua_pop(L, 2);
    return 1;
}

static void lua_value(jsonw *w, lua_State *L, int idx, int depth, int seen)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        jw_null(w);
        break;
    case LUA_TBOOLEAN:
        jw_bool(w, lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER: {
        /* its text as tostring gives it, to compare with the secrets: an
         * integer formatted here (no string made for every count written),
         * a float by Lua (its "%.14g" and ".0" rules) */
        char ib[32];
        int hidden;
        if (lua_isinteger(L, idx)) {
            int n = snprintf(ib, sizeof ib, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
            hidden = rb_is_secret(L, ib, (size_t)n);
        } else {
            size_t n;
            lua_pushvalue(L, idx);
            const char *text = lua_tolstring(L, -1, &n); /* the copy becomes its text */
            hidden = rb_is_secret(L, text, n);
            lua_pop(L, 1);
        }
        if (hidden)
            jw_string(w, "****");
        else if (lua_isinteger(L, idx))
            jw_int(w, (long long)lua_tointeger(L, idx));
        else
            jw_num(w, lua_tonumber(L, idx));
        break;
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        s = rb_redact(L, s, n);
        jw_string(w, s);
        lua_pop(L, 1);
        break;
    }
    case LUA_TTABLE: {
        if (depth >= 16) {
            jw_string(w, "<depth>");
            break;
        }
        lua_pushvalue(L, idx);
        if (lua_rawget(L, seen) != LUA_TNIL) {
            lua_pop(L, 1);
            jw_string(w, "<cycle>");
            break;
        }
        lua_pop(L, 1);
        lua_pushvalue(L, idx);
        lua_pushboolean(L, 1);
        lua_rawset(L, seen);
        lua_Integer n;
        if (!lua_checkstack(L, 6)) {
            jw_string(w, "<depth>");
        } else if (is_array(L, idx, &n) && n > 0) { /* an empty table is {} */
            jw_arr(w);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, i);
                lua_value(w, L, -1, depth + 1, seen);
                lua_pop(L, 1);
            }
            jw_arr_end(w);
        } else {
            jw_obj(w);
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                const char *k;
                char kb[64];
                if (lua_type(L, -2) == LUA_TSTRING) {
                    k = lua_tostring(L, -2);
                } else if (lua_type(L, -2) == LUA_TNUMBER) {
                    if (lua_isinteger(L, -2))
                        snprintf(kb, sizeof kb, "%lld", (long long)lua_tointeger(L, -2));
                    else
                        snprintf(kb, sizeof kb, "%.14g", lua_tonumber(L, -2));
                    k = kb;
                } else {
                    snprintf(kb, sizeof kb, "<%s>", luaL_typename(L, -2));
                    k = kb;
                }
                jw_key(w, k);
                lua_value(w, L, -1, depth + 1, seen);
                lua_pop(L, 1);
            }
            jw_obj_end(w);
        }
        lua_pushvalue(L, idx);
        lua_pushnil(L);
        lua_rawset(L, seen);
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { /* json.null (db.null): SQL NULL */
            jw_null(w);
            break;
        }
        /* fall through */
    default:
        if (!tostring_value(w, L, idx)) {
            char b[32];
            snprintf(b, sizeof b, "<%s>", luaL_typename(L, idx));
            jw_string(w, b);
        }
    }
}

void jw_lua(jsonw *w, lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L); /* tables being written, to mark cycles */
    lua_value(w, L, idx, 0, lua_gettop(L));
    lua_pop(L, 1);
}
