/*
 * Secrets: every value registered here (secret(), params marked secret,
 * secret.register, credentials a primitive sees) is replaced by **** in
 * everything the program writes -- terminal, JSON events, audit records,
 * recordings, error messages -- and so are the forms it travels in: percent-
 * encoded, JSON-escaped and base64 (at each of the three alignments it can
 * have inside a longer base64 text, as in `Basic base64(user:password)`).
 * The values live in one C array so redaction is a few memmem() calls per
 * string.
 *
 * A value shorter than RB_SECRET_MIN bytes is not searched for: redacting
 * "1" or "on" everywhere would mangle unrelated output (every "1" in a
 * count, a date, a JSON document).  The run says so, naming where the value
 * came from, and a short secret param is still written as **** wherever the
 * params are written (they are redacted by declaration, rb_params_json).
 */
#include "engine.h"
#include "jsonw.h"
#include "runbook/host.h"

#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RB_SECRET_MIN 4

/* The engine's secrets; a Lua state made without an engine (a codec's unit
 * test) has none, and cannot register any. */
static rb_secrets *SECRETS(lua_State *L)
{
    static rb_secrets none;
    rb_engine *E = rb_engine_of(L);
    if (!E) {
        if (none.n)
            luaL_error(L, "internal: secrets outside an engine");
        return &none;
    }
    return &E->secrets;
}

/* longest first, so a secret containing another is replaced whole */
static void sort_by_length(rb_secrets *sv)
{
    char **secrets = sv->values;
    size_t *lens = sv->lens;
    int nsecrets = sv->n;
    for (int i = 1; i < nsecrets; i++)
        for (int j = i; j > 0 && lens[j] > lens[j - 1]; j--) {
            char *s = secrets[j];
            secrets[j] = secrets[j - 1];
            secrets[j - 1] = s;
            size_t l = lens[j];
            lens[j] = lens[j - 1];
            lens[j - 1] = l;
        }
}

static void add_one(lua_State *L, const char *value);

/* A secret travels percent-encoded in URLs and query strings (a base64
 * token's + / =): that form is a secret too. */
static void add_url_encoded(lua_State *L, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(value);
    char *enc = malloc(3 * n + 1);
    if (!enc)
        luaL_error(L, "out of memory registering a secret");
    size_t o = 0;
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            enc[o++] = (char)c;
        } else {
            enc[o++] = '%';
            enc[o++] = hex[c >> 4];
            enc[o++] = hex[c & 15];
            changed = 1;
        }
    }
    enc[o] = '\0';
    if (changed) {
        lua_pushstring(L, enc); /* add_one may raise: do not leak enc */
        free(enc);
        add_one(L, lua_tostring(L, -1));
        lua_pop(L, 1);
    } else {
        free(enc);
    }
}

/* A secret written inside a JSON string: its escaped form (a password with
 * a quote or a backslash). */
static void add_json_escaped(lua_State *L, const char *value)
{
    jsonw w;
    jw_init(&w);
    jw_string(&w, value);
    const char *enc = jw_str_result(&w);
    size_t n = strlen(enc);
    if (n >= 2 && (n - 2 != strlen(value) || memcmp(enc + 1, value, n - 2) != 0)) {
        lua_pushlstring(L, enc + 1, n - 2);
        jw_free(&w);
        add_one(L, lua_tostring(L, -1));
        lua_pop(L, 1);
    } else {
        jw_free(&w);
    }
}

/* base64 of value preceded by `shift` bytes (0, 1, 2), cut to the characters
 * that only the value's bits make: what appears wherever the value sits at
 * that alignment inside a longer base64 text.  Standard and URL-safe
 * alphabets; at shift 0 also the whole padded encoding. */
static void add_base64(lua_State *L, const char *value)
{
    size_t n = strlen(value);
    for (int shift = 0; shift < 3; shift++) {
        size_t in = n + (size_t)shift;
        uint8_t *raw = calloc(in, 1);
        char *enc = malloc(BASE64_ENCODE_RAW_LENGTH(in) + 1);
        if (!raw || !enc) {
            free(raw);
            free(enc);
            luaL_error(L, "out of memory registering a secret");
            return;
        }
        memcpy(raw + shift, value, n);
        size_t elen = BASE64_ENCODE_RAW_LENGTH(in);
        base64_encode_raw(enc, in, raw);
        enc[elen] = '\0';
        free(raw);
        /* character j covers bits [6j, 6j + 6) of the bit stream */
        size_t first = ((size_t)shift * 8 + 5) / 6, end = ((size_t)shift * 8 + n * 8) / 6;
        lua_pushstring(L, enc); /* add_one may raise: do not leak enc */
        free(enc);
        const char *e = lua_tostring(L, -1);
        for (int urlsafe = 0; urlsafe < 2; urlsafe++) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (size_t j = first; j < end; j++) {
                char c = e[j];
                if (urlsafe)
                    c = c == '+' ? '-' : c == '/' ? '_' : c;
                luaL_addchar(&b, c);
            }
            luaL_pushresult(&b);
            if (lua_rawlen(L, -1) >= RB_SECRET_MIN)
                add_one(L, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        if (shift == 0)
            add_one(L, e); /* padded: "Basic dTpwYXNz" is redacted whole */
        lua_pop(L, 1);
    }
}

/* Said once per value and source: a URL is redacted every time it is
 * written, and its short password would be warned about as often. */
static void short_secret(lua_State *L, const char *what, const char *value)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.short_secrets") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "runbook.short_secrets");
    }
    lua_pushfstring(L, "%s\n%s", what, value);
    int seen = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
    if (!seen) {
        lua_pushfstring(L, "%s\n%s", what, value);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    if (seen)
        return;
    char msg[300];
    int param = strncmp(what, "param '", 7) == 0;
    snprintf(msg, sizeof msg,
             "%s is a secret shorter than %d bytes: it is not searched for in the output "
             "(that would mangle unrelated text)%s",
             what, RB_SECRET_MIN, param ? "; where params are written it is still ****" : "");
    rb_engine *E = rb_engine_of(L);
    if (E && E->run_id[0]) /* the run has begun: its journal */
        rb_log(L, "warn", "%s", msg);
    else
        fprintf(stderr, "runbook: warning: %s\n", msg);
}

int rb_secret_add_named(lua_State *L, const char *value, const char *what)
{
    if (strlen(value) < RB_SECRET_MIN) {
        if (*value)
            short_secret(L, what, value);
        return 0;
    }
    add_one(L, value);
    add_url_encoded(L, value);
    add_json_escaped(L, value);
    add_base64(L, value);
    return 1;
}

void rb_secret_add(lua_State *L, const char *value)
{
    rb_secret_add_named(L, value, "a credential");
}

/* The value at idx of a param declared secret, by type: a string or a
 * number by its text, a list's or a table's values each (booleans and short
 * values are hidden only by declaration). */
static void add_value(lua_State *L, int idx, const char *what, int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
        lua_pushvalue(L, idx);
        rb_secret_add_named(L, lua_tostring(L, -1), what);
        lua_pop(L, 1);
        break;
    case LUA_TTABLE:
        if (depth > 8)
            break;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            add_value(L, -1, what, depth + 1);
            lua_pop(L, 1);
        }
        break;
    default:
        break;
    }
}

void rb_secret_params(lua_State *L, int spec, int resolved)
{
    spec = lua_absindex(L, spec);
    resolved = lua_absindex(L, resolved);
    if (!lua_istable(L, spec))
        return;
    lua_newtable(L); /* the names, for rb_params_json */
    int names = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, spec)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1) &&
            rb_opt_bool(L, lua_gettop(L), "secret", 0)) {
            const char *name = lua_tostring(L, -2);
            char what[200];
            snprintf(what, sizeof what, "param '%s'", name);
            lua_getfield(L, resolved, name);
            add_value(L, -1, what, 0);
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
            lua_setfield(L, names, name);
        }
        lua_pop(L, 1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.secret_params");
}

void rb_params_json(jsonw *w, lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) {
        jw_raw(w, "{}");
        return;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.secret_params");
    int names = lua_gettop(L);
    lua_newtable(L); /* a shallow copy with the secret ones hidden */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pushvalue(L, -2);
        if (lua_istable(L, names) && lua_type(L, -1) == LUA_TSTRING &&
            lua_getfield(L, names, lua_tostring(L, -1)) == LUA_TBOOLEAN) {
            lua_pop(L, 1);
            lua_pushliteral(L, "****");
        } else {
            if (lua_istable(L, names))
                lua_pop(L, 1);
            lua_pushvalue(L, -2);
        }
        lua_settable(L, names + 1);
        lua_pop(L, 1);
    }
    jw_lua(w, L, names + 1);
    lua_settop(L, names - 1);
}

int rb_is_secret(lua_State *L, const char *s, size_t len)
{
    rb_secrets *sv = SECRETS(L);
    for (int i = 0; i < sv->n; i++)
        if (sv->lens[i] == len && memcmp(sv->values[i], s, len) == 0)
            return 1;
    return 0;
}

static void add_one(lua_State *L, const char *value)
{
    if (!rb_engine_of(L))
        luaL_error(L, "internal: a secret registered outside an engine");
    rb_secrets *sv = SECRETS(L);
    size_t n = strlen(value);
    if (n == 0)
        return;
    for (int i = 0; i < sv->n; i++)
        if (sv->lens[i] == n && memcmp(sv->values[i], value, n) == 0)
            return;
    char **ns = realloc(sv->values, (size_t)(sv->n + 1) * sizeof *ns);
    if (ns)
        sv->values = ns;
    size_t *nl = realloc(sv->lens, (size_t)(sv->n + 1) * sizeof *nl);
    if (nl)
        sv->lens = nl;
    char *copy = strdup(value);
    if (!ns || !nl || !copy) {
        free(copy);
        luaL_error(L, "out of memory registering a secret");
    }
    sv->values[sv->n] = copy;
    sv->lens[sv->n] = n;
    sv->n++;
    sort_by_length(sv);
}

void rb_secrets_clear(rb_secrets *sv)
{
    for (int i = 0; i < sv->n; i++)
        free(sv->values[i]);
    free(sv->values);
    free(sv->lens);
    memset(sv, 0, sizeof *sv);
}

/* A password in a URL's userinfo (postgres://user:PASSWORD@host) is a
 * secret wherever the URL comes from -- a param, a config value, a literal:
 * it is registered the first time a URL carrying it is written out, in the
 * URL's form and percent-decoded (the form a PGPASSWORD would carry). */
static void add_url_passwords(lua_State *L, const char *s, size_t len)
{
    const char *end = s + len;
    for (const char *p = s; (p = memmem(p, (size_t)(end - p), "://", 3)) != NULL;) {
        p += 3;
        const char *colon = NULL, *q = p;
        while (q < end && *q != '@' && !strchr("/?#\"' \t\n", *q)) {
            if (*q == ':' && !colon)
                colon = q;
            q++;
        }
        if (q >= end || *q != '@' || !colon || q - colon < 2)
            continue;
        char pw[512], plain[512];
        size_t n = (size_t)(q - colon - 1), k = 0;
        if (n >= sizeof pw)
            continue;
        memcpy(pw, colon + 1, n);
        pw[n] = '\0';
        for (size_t i = 0; i < n; i++) {
            unsigned hi, lo;
            if (pw[i] == '%' && i + 2 < n + 1 && sscanf(pw + i + 1, "%1x%1x", &hi, &lo) == 2) {
                plain[k++] = (char)(hi * 16 + lo);
                i += 2;
            } else {
                plain[k++] = pw[i];
            }
        }
        plain[k] = '\0';
        rb_secret_add_named(L, pw, "a password in a URL");
        if (strcmp(pw, plain) != 0)
            rb_secret_add_named(L, plain, "a password in a URL");
        p = q;
    }
}

/* Every byte inside any occurrence of any secret is covered, and each run of
 * covered bytes becomes one ****: secrets that overlap each other (or a
 * URL's password that starts inside its user name: x://appp:pp:p@h) leave
 * no part of either behind. */
static const char *redact_once(lua_State *L, const char *s, size_t len)
{
    rb_secrets *sv = SECRETS(L);
    int hit = 0;
    for (int i = 0; i < sv->n && !hit; i++)
        hit = memmem(s, len, sv->values[i], sv->lens[i]) != NULL;
    if (!hit)
        return lua_pushlstring(L, s, len);
    unsigned char *covered = lua_newuserdatauv(L, len, 0); /* freed by the GC, even on error */
    memset(covered, 0, len);
    for (int i = 0; i < sv->n; i++) {
        const char *v = sv->values[i];
        size_t n = sv->lens[i];
        for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), v, n)) != NULL; p++)
            memset(covered + (p - s), 1, n);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t pos = 0; pos < len;) {
        size_t run = pos;
        while (run < len && covered[run] == covered[pos])
            run++;
        if (covered[pos])
            luaL_addstring(&b, "****");
        else
            luaL_addlstring(&b, s + pos, run - pos);
        pos = run;
    }
    luaL_pushresult(&b);
    lua_remove(L, -2);
    return lua_tostring(L, -1);
}

/* Until nothing new is found: taking a secret out can join what is left
 * into a URL whose password was not one before ("a://u/S:pw@h" without
 * the secret "/S"), and what we write must show no URL's password.  Each
 * round registers at least one more secret, and there are few. */
const char *rb_redact(lua_State *L, const char *s, size_t len)
{
    add_url_passwords(L, s, len);
    redact_once(L, s, len);
    for (int round = 0; round < 8; round++) {
        int before = SECRETS(L)->n;
        size_t rl;
        const char *r = lua_tolstring(L, -1, &rl);
        add_url_passwords(L, r, rl);
        if (SECRETS(L)->n == before)
            break;
        lua_pop(L, 1);
        redact_once(L, s, len);
    }
    return lua_tostring(L, -1);
}
