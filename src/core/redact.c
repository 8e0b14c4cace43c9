/*
 * Secrets: every value registered here (secret(), params marked secret,
 * config secrets) is replaced by **** in everything the program writes --
 * terminal, JSON events, audit records, error messages.  The values live in
 * one C array so redaction is a few memmem() calls per string.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void rb_secret_add(lua_State *L, const char *value)
{
    add_one(L, value);
    add_url_encoded(L, value);
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
        add_one(L, pw);
        rb_secret_add(L, plain);
        p = q;
    }
}

const char *rb_redact(lua_State *L, const char *s, size_t len)
{
    add_url_passwords(L, s, len);
    rb_secrets *sv = SECRETS(L);
    char **secrets = sv->values;
    size_t *lens = sv->lens;
    int nsecrets = sv->n;
    int hit = 0;
    for (int i = 0; i < nsecrets && !hit; i++)
        hit = memmem(s, len, secrets[i], lens[i]) != NULL;
    if (!hit)
        return lua_pushlstring(L, s, len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t pos = 0;
    while (pos < len) {
        int which = -1;
        const char *first = NULL;
        for (int i = 0; i < nsecrets; i++) {
            const char *p = memmem(s + pos, len - pos, secrets[i], lens[i]);
            if (p && (!first || p < first)) {
                first = p;
                which = i;
            }
        }
        if (!first) {
            luaL_addlstring(&b, s + pos, len - pos);
            break;
        }
        luaL_addlstring(&b, s + pos, (size_t)(first - (s + pos)));
        luaL_addstring(&b, "****");
        pos = (size_t)(first - s) + lens[which];
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}
