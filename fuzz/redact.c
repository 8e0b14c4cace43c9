/*
 * The redactor (src/core/redact.c): registered secrets, their
 * percent-encoded forms and the passwords of URLs seen in the text are
 * replaced by **** in everything written.  Input: secrets, one a line, up
 * to the first NUL byte; the text to redact after it (without a NUL: no
 * secrets, the text alone -- URL passwords are still found).  Oracles: no
 * secret that could not be made of the **** themselves (one without '*')
 * is left in the redacted text, and redacting it again changes nothing
 * (when no secret has a '*').
 */
#include "engine.h"
#include "fuzz.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SECRETS 64 /* each one is a memmem over the text: keep runs fast */

static int add_secrets(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, 1, &n), *end = s + n;
    for (int k = 0; s < end && k < MAX_SECRETS; k++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eol = nl ? nl : end;
        lua_pushlstring(L, s, (size_t)(eol - s));
        rb_secret_add(L, lua_tostring(L, -1));
        lua_pop(L, 1);
        s = eol + 1;
    }
    return 0;
}

static int redact(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    rb_redact(L, s, n);
    return 1;
}

static void no_secret_left(rb_engine *E, const char *s, size_t n)
{
    for (int i = 0; i < E->secrets.n; i++) {
        const char *v = E->secrets.values[i];
        size_t len = E->secrets.lens[i];
        if (!memchr(v, '*', len) && memmem(s, n, v, len))
            fuzz_fail("secret '%s' is left in the redacted text: %.*s", v, (int)n, s);
    }
}

/* Is there a secret with a '*'?  **** can complete one, so redacting again
 * may then change the text, rightly. */
static int starred(rb_engine *E)
{
    for (int i = 0; i < E->secrets.n; i++)
        if (memchr(E->secrets.values[i], '*', E->secrets.lens[i]))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_engine *E = fuzz_engine();
    lua_State *L = E->L;
    int top = lua_gettop(L);
    const uint8_t *nul = memchr(data, 0, size);
    const char *text = (const char *)(nul ? nul + 1 : data);
    size_t tlen = nul ? size - (size_t)(nul + 1 - data) : size;
    lua_pushcfunction(L, add_secrets);
    lua_pushlstring(L, (const char *)data, nul ? (size_t)(nul - data) : 0);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        fuzz_fail("registering secrets: %s", lua_tostring(L, -1));
    lua_pushcfunction(L, redact);
    lua_pushlstring(L, text, tlen);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fuzz_fail("rb_redact raised: %s", lua_tostring(L, -1));
    size_t n;
    const char *once = lua_tolstring(L, -1, &n);
    no_secret_left(E, once, n);
    lua_pushcfunction(L, redact);
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fuzz_fail("rb_redact raised: %s", lua_tostring(L, -1));
    if (!starred(E) && !lua_rawequal(L, -1, -2))
        fuzz_fail("redacting twice changed the text:\n  %s\n  %s", once, lua_tostring(L, -1));
    fuzz_done(L, top);
    rb_secrets_clear(&E->secrets);
    return 0;
}
