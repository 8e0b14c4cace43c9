/*
 * The notify module: notify.slack, notify.webhook, notify.pagerduty and
 * notify.email.  Every call is a mutation (SPEC §3: notify has no reads), so
 * dry-run shows the message it would send -- `notify slack #oncall: "..."`
 * -- and sends nothing.  There is no `readonly` override: a notification is
 * the one thing a rehearsal must never emit.
 *
 * A call is resolved the same way in describe() and in the call itself:
 * arguments first, then the `notify:` section of runbook.yaml (the --env
 * environment's section before the top level, key by key -- a credential
 * given either way, `webhook_secret` or `webhook`, by section), then the
 * built-in default endpoint.  Webhook URLs, routing keys, SMTP passwords
 * and credential headers are registered as secrets while resolving, that
 * is before the funnel writes anything about the call, so they are redacted
 * everywhere even when a runbook passes them literally.
 *
 * The request goes out through http.request's raw effect (rb_push_raw),
 * the un-funnelled transfer function: the funnel has already described,
 * confirmed and will record this action, so the HTTP request must not be a
 * second action.  raw() yields; it is called with lua_pcallk so transport
 * errors are reworded to name the notification rather than the URL, which
 * is a secret.  A non-2xx answer raises "notify slack: HTTP 500: <first
 * line of the body>" after noting the response for the audit record.
 * JSON bodies are written by json.encode (captured when the module opens),
 * e-mail is an RFC 5322 message built here: Date, From, To, Cc, Subject
 * (RFC 2047 when not ASCII), Message-ID, MIME-Version, text/plain UTF-8 in
 * 7bit or quoted-printable.
 */
#include "runbook/host.h"
#include "runbook/runbook.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define SECRET_KEY     "runbook.notify.secret"
#define ENCODE_KEY     "runbook.notify.encode"
#define DECODE_KEY     "runbook.notify.decode"
#define PD_DEFAULT_URL "https://events.pagerduty.com/v2/enqueue"
#define PD_SUMMARY_MAX 1024 /* Events API v2 limit */
#define WORDS_TEXT_MAX 300  /* bytes of a message shown in `would:` lines */
#define BODY_LINE_MAX  200  /* bytes of a failed answer quoted in the error */

enum kind { K_SLACK, K_WEBHOOK, K_PAGERDUTY, K_EMAIL };
static const char *const KIND[] = {"slack", "webhook", "pagerduty", "email"};

/* Stack layout of a call once resolved (arguments normalised to 3). */
enum { S_REQ = 4, S_TARGET, S_WORDS, S_RESULT };

/* ---- small helpers ------------------------------------------------------- */

/* args[key] pushed; raises unless it is nil or of type `want` (LUA_TNONE:
 * anything).  Returns the type. */
static int arg_push(lua_State *L, int t, int kind, const char *key, int want)
{
    if (!t) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    int ty = lua_getfield(L, t, key);
    if (ty != LUA_TNIL && want != LUA_TNONE && ty != want)
        luaL_error(L, "notify.%s: '%s' must be a %s, got %s", KIND[kind], key,
                   lua_typename(L, want), luaL_typename(L, -1));
    return ty;
}

/* args[key] as a string, or NULL.  The string stays referenced by args. */
static const char *arg_str(lua_State *L, int t, int kind, const char *key)
{
    const char *s =
        arg_push(L, t, kind, key, LUA_TSTRING) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return s;
}

/* Push runbook.yaml notify.<service>.<key> at one level (1: the --env
 * environment's section, 0: the top level); nil when absent.  Returns the
 * type. */
static int conf_at(lua_State *L, int level, const char *service, const char *key)
{
    char path[64];
    snprintf(path, sizeof path, "notify.%s", service);
    return rb_config_at(L, level, path, key);
}

/* Push runbook.yaml notify.<service>.<key>: the --env environment's section
 * first, then the top level, key by key; nil when absent.  Returns the type. */
static int conf_push(lua_State *L, const char *service, const char *key)
{
    for (int level = 1; level >= 0; level--) {
        int ty = conf_at(L, level, service, key);
        if (ty != LUA_TNIL)
            return ty;
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return LUA_TNIL;
}

/* A string from runbook.yaml notify.<service>.<key>, or NULL (the config
 * table keeps it alive). */
static const char *conf_str(lua_State *L, const char *service, const char *key)
{
    int ty = conf_push(L, service, key);
    if (ty != LUA_TNIL && ty != LUA_TSTRING)
        luaL_error(L, "runbook.yaml: notify.%s.%s must be a string, got %s", service, key,
                   luaL_typename(L, -1));
    const char *s = ty == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return s;
}

/* Push a registered helper (captured at open time), else global[a][b]. */
/* a function, or a table with __call (secret is one: secret(name), secret.register) */
static int callable(lua_State *L, int idx)
{
    if (lua_isfunction(L, idx))
        return 1;
    if (!lua_istable(L, idx) || luaL_getmetafield(L, idx, "__call") == LUA_TNIL)
        return 0;
    lua_pop(L, 1);
    return 1;
}

static void push_helper(lua_State *L, const char *key, const char *global, const char *field)
{
    lua_getfield(L, LUA_REGISTRYINDEX, key);
    if (callable(L, -1))
        return;
    lua_pop(L, 1);
    lua_getglobal(L, global);
    if (field && lua_istable(L, -1)) {
        lua_getfield(L, -1, field);
        lua_remove(L, -2);
    }
    if (!callable(L, -1))
        luaL_error(L, "notify: %s%s%s is not available", global, field ? "." : "",
                   field ? field : "");
}

/* Set the value on top as req[key]; return it as a string (NULL if it is
 * not one), alive as long as req is. */
static const char *keep(lua_State *L, int req, const char *key)
{
    lua_setfield(L, req, key);
    lua_getfield(L, req, key);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return s;
}

/* secret(name) -> req[key] */
static const char *secret_into(lua_State *L, int req, const char *key, const char *name)
{
    push_helper(L, SECRET_KEY, "secret", NULL);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "notify: secret '%s' is not a string", name);
    return keep(L, req, key);
}

/* A value that may be given as a secret's name or literally, by the same
 * section of runbook.yaml: notify.<service>.<secret_key> (resolved with
 * secret()) or .<plain_key>, the --env environment's section before the top
 * level, so an environment's literal beats the top level's secret.  The
 * value is stored as req[field] and returned, NULL when neither is set. */
static const char *conf_secret_or_plain(lua_State *L, const char *service, const char *secret_key,
                                        const char *plain_key, int req, const char *field)
{
    for (int level = 1; level >= 0; level--) {
        for (int i = 0; i < 2; i++) {
            const char *key = i == 0 ? secret_key : plain_key;
            int ty = conf_at(L, level, service, key);
            if (ty == LUA_TNIL) {
                lua_pop(L, 1);
                continue;
            }
            if (ty != LUA_TSTRING)
                luaL_error(L, "runbook.yaml: notify.%s.%s must be a string, got %s", service, key,
                           luaL_typename(L, -1));
            if (i == 0) {
                const char *v = secret_into(L, req, field, lua_tostring(L, -1));
                lua_pop(L, 1);
                return v;
            }
            return keep(L, req, field);
        }
    }
    return NULL;
}

static void add_secret(lua_State *L, const char *s)
{
    if (s && *s)
        rb_secret_add(L, s);
}

/* Push host[:port] of a URL ("hooks.slack.com"), without any user info. */
static const char *push_host(lua_State *L, const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    while (at) { /* the last '@' of the authority ends the user info */
        n -= (size_t)(at + 1 - p);
        p = at + 1;
        at = memchr(p, '@', n);
    }
    return lua_pushlstring(L, p, n);
}

/* The user info password of a URL (smtp://user:pw@host), pushed, or NULL. */
static const char *push_url_password(lua_State *L, const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return NULL;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@')
            at = p + i;
    if (!at)
        return NULL;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon || colon + 1 == at)
        return NULL;
    return lua_pushlstring(L, colon + 1, (size_t)(at - colon - 1));
}

/* Length of the longest prefix of s (at most max bytes) that does not cut a
 * UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Append s as a one-line double-quoted excerpt of at most max bytes. */
static void add_quoted(luaL_Buffer *b, const char *s, size_t len, size_t max)
{
    size_t n = utf8_cut(s, len, max);
    luaL_addchar(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            luaL_addchar(b, '\\');
            luaL_addchar(b, (char)c);
        } else if (c == '\n') {
            luaL_addstring(b, "\\n");
        } else if (c == '\r' || c == '\t') {
            luaL_addchar(b, ' ');
        } else if (c < 32 || c == 127) {
            luaL_addchar(b, '?');
        } else {
            luaL_addchar(b, (char)c);
        }
    }
    luaL_addchar(b, '"');
    if (n < len) {
        char more[48];
        snprintf(more, sizeof more, "... (%zu bytes)", len);
        luaL_addstring(b, more);
    }
}

/* json.encode(value at idx) pushed */
static const char *push_json(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    push_helper(L, ENCODE_KEY, "json", "encode");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    return lua_tostring(L, -1);
}

/* Copy args[key] into payload[key] when present (any type, or `want`). */
static void pass(lua_State *L, int args, int payload, int kind, const char *key, int want)
{
    if (arg_push(L, args, kind, key, want) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_setfield(L, payload, key);
}

/* The options every transfer takes: timeout, connect_timeout, retries,
 * backoff (numbers), insecure (boolean), cacert (string), from the call,
 * then from notify.<service> in runbook.yaml.  Redirects are not followed:
 * a POST must not turn into a GET somewhere else and still look delivered. */
static void transfer_opts(lua_State *L, int args, int req, int kind)
{
    static const struct {
        const char *key;
        int type;
    } opts[] = {{"timeout", LUA_TNUMBER},
                {"connect_timeout", LUA_TNUMBER},
                {"retries", LUA_TNUMBER},
                {"backoff", LUA_TNUMBER},
                {"insecure", LUA_TBOOLEAN},
                {"cacert", LUA_TSTRING},
                {NULL, 0}};
    for (int i = 0; opts[i].key; i++) {
        int ty = arg_push(L, args, kind, opts[i].key, LUA_TNONE);
        if (ty == LUA_TNIL) {
            lua_pop(L, 1);
            ty = conf_push(L, KIND[kind], opts[i].key);
        }
        if (ty == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        if (ty != opts[i].type)
            luaL_error(L, "notify.%s: '%s' must be a %s, got %s", KIND[kind], opts[i].key,
                       lua_typename(L, opts[i].type), luaL_typename(L, -1));
        lua_setfield(L, req, opts[i].key);
    }
    if (kind != K_EMAIL) {
        lua_pushinteger(L, 0);
        lua_setfield(L, req, "redirects");
        /* retries were asked for by name: a repeated notification is wanted */
        if (lua_getfield(L, req, "retries") != LUA_TNIL) {
            lua_pushboolean(L, 1);
            lua_setfield(L, req, "retry_unsafe");
        }
        lua_pop(L, 1);
    }
}

/* req.headers = { ["content-type"] = ctype } (creating it) */
static void set_content_type(lua_State *L, int req, const char *ctype)
{
    if (lua_getfield(L, req, "headers") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, req, "headers");
    }
    lua_pushstring(L, ctype);
    lua_setfield(L, -2, "content-type");
    lua_pop(L, 1);
}

/* ---- resolution: arguments + config -> request, target, words ----------- */

/* Each resolver reads the call's arguments (1..3), pushes the request table
 * for raw() at S_REQ, the target at S_TARGET and the words at S_WORDS. */

/* An endpoint configured nowhere: the mode decides (rb_missing).  A
 * scenario is hermetic and runs in CI without the team's runbook.yaml: it
 * gets a stand-in (as secret() does) that no request ever reaches -- the
 * scenario's mock answers the call.  A dry-run sends nothing either: it goes
 * on with the stand-in, so the rest of the rehearsal is seen, and warns that
 * a live run would fail here.  Live, the caller raises. */
static int stand_in(lua_State *L, const char *missing)
{
    return rb_missing(L, missing);
}

static void resolve_slack(lua_State *L)
{
    const int k = K_SLACK;
    luaL_checktype(L, 1, LUA_TTABLE);
    const int args = 1;
    lua_settop(L, 3);
    lua_newtable(L); /* S_REQ */
    const char *url = arg_str(L, args, k, "url");
    if (!url)
        url = arg_str(L, args, k, "webhook");
    if (url) {
        lua_pushstring(L, url);
        url = keep(L, S_REQ, "url");
    } else {
        url = conf_secret_or_plain(L, "slack", "webhook_secret", "webhook", S_REQ, "url");
    }
    if (!url && stand_in(L, "notify.slack: no webhook configured (notify.slack."
                            "webhook_secret in runbook.yaml)")) {
        lua_pushliteral(L, "https://slack-webhook.not-configured.invalid/");
        url = keep(L, S_REQ, "url");
    }
    if (!url)
        luaL_error(L, "notify.slack: no webhook: pass webhook = URL, or set notify.slack."
                      "webhook_secret (or webhook) in runbook.yaml");
    add_secret(L, url);
    lua_pushliteral(L, "POST");
    lua_setfield(L, S_REQ, "method");

    int payload = lua_gettop(L) + 1;
    lua_newtable(L);
    const char *text = arg_str(L, args, k, "text");
    pass(L, args, payload, k, "text", LUA_TSTRING);
    pass(L, args, payload, k, "blocks", LUA_TTABLE);
    pass(L, args, payload, k, "attachments", LUA_TTABLE);
    const char *channel = arg_str(L, args, k, "channel");
    if (!channel)
        channel = conf_str(L, "slack", "channel");
    if (channel) {
        lua_pushstring(L, channel);
        lua_setfield(L, payload, "channel");
    }
    static const char *const extra[] = {"username", "icon_emoji", "icon_url", "thread_ts", NULL};
    for (int i = 0; extra[i]; i++) {
        const char *v = arg_str(L, args, k, extra[i]);
        if (!v)
            v = conf_str(L, "slack", extra[i]);
        if (v) {
            lua_pushstring(L, v);
            lua_setfield(L, payload, extra[i]);
        }
    }
    pass(L, args, payload, k, "mrkdwn", LUA_TBOOLEAN);
    pass(L, args, payload, k, "unfurl_links", LUA_TBOOLEAN);
    pass(L, args, payload, k, "unfurl_media", LUA_TBOOLEAN);
    int nblocks = 0;
    if (lua_getfield(L, payload, "blocks") == LUA_TTABLE)
        nblocks = (int)lua_rawlen(L, -1);
    int has_blocks = !lua_isnil(L, -1);
    lua_pop(L, 1);
    int has_att = lua_getfield(L, payload, "attachments") != LUA_TNIL;
    lua_pop(L, 1);
    if (!text && !has_blocks && !has_att)
        luaL_error(L, "notify.slack: nothing to send: give text (or blocks)");
    push_json(L, payload);
    lua_setfield(L, S_REQ, "body");
    lua_pop(L, 1); /* payload */
    set_content_type(L, S_REQ, "application/json; charset=utf-8");
    transfer_opts(L, args, S_REQ, k);

    if (channel)
        lua_pushstring(L, channel);
    else
        push_host(L, url); /* S_TARGET */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "notify slack ");
    luaL_addstring(&b, lua_tostring(L, S_TARGET));
    luaL_addstring(&b, ": ");
    if (text) {
        add_quoted(&b, text, strlen(text), WORDS_TEXT_MAX);
        if (nblocks > 0)
            luaL_addstring(&b, " + ");
    }
    if (nblocks > 0 || (!text && has_blocks)) {
        char n[48];
        snprintf(n, sizeof n, "(%d block%s)", nblocks, nblocks == 1 ? "" : "s");
        luaL_addstring(&b, n);
    } else if (!text) {
        luaL_addstring(&b, "(attachments)");
    }
    luaL_pushresult(&b); /* S_WORDS */
}

/* Header names whose values are credentials. */
static int credential_header(const char *name)
{
    static const char *const words[] = {"authorization", "token", "key",    "secret",
                                        "signature",     "auth",  "cookie", NULL};
    char low[128];
    size_t n = strlen(name);
    if (n >= sizeof low)
        n = sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    low[n] = '\0';
    for (int i = 0; words[i]; i++)
        if (strstr(low, words[i]))
            return 1;
    return 0;
}

static void resolve_webhook(lua_State *L)
{
    const int k = K_WEBHOOK;
    const char *url = luaL_checkstring(L, 1);
    int ty = lua_type(L, 2);
    if (ty != LUA_TTABLE && ty != LUA_TSTRING)
        luaL_typeerror(L, 2, "table (sent as JSON) or string");
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    const int opts = lua_istable(L, 3) ? 3 : 0;
    lua_newtable(L); /* S_REQ */
    lua_pushvalue(L, 1);
    lua_setfield(L, S_REQ, "url");
    add_secret(L, url);

    const char *method = arg_str(L, opts, k, "method");
    luaL_Buffer mb;
    luaL_buffinit(L, &mb);
    for (const char *p = method ? method : "POST"; *p; p++)
        luaL_addchar(&mb, (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p));
    luaL_pushresult(&mb);
    method = keep(L, S_REQ, "method");

    /* headers: copied (names lower-cased), credentials registered as secrets */
    int has_ctype = 0;
    if (arg_push(L, opts, k, "headers", LUA_TTABLE) == LUA_TTABLE) {
        int h = lua_gettop(L);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, h)) {
            int vt = lua_type(L, -1);
            if (lua_type(L, -2) != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER))
                luaL_error(L, "notify.webhook: headers must map names to strings");
            const char *name = lua_tostring(L, -2);
            if (credential_header(name))
                add_secret(L, lua_tostring(L, -1));
            char low[256];
            snprintf(low, sizeof low, "%s", name);
            for (char *p = low; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p + 32);
            has_ctype |= strcmp(low, "content-type") == 0;
            lua_setfield(L, h + 1, low);
        }
        lua_setfield(L, S_REQ, "headers");
    }
    lua_pop(L, 1);
    if (arg_push(L, opts, k, "auth", LUA_TTABLE) == LUA_TTABLE) {
        add_secret(L, arg_str(L, lua_gettop(L), k, "password"));
        add_secret(L, arg_str(L, lua_gettop(L), k, "bearer"));
        lua_setfield(L, S_REQ, "auth");
    } else {
        lua_pop(L, 1);
    }
    if (arg_push(L, opts, k, "query", LUA_TTABLE) == LUA_TTABLE)
        lua_setfield(L, S_REQ, "query");
    else
        lua_pop(L, 1);

    if (ty == LUA_TTABLE) {
        push_json(L, 2);
        if (!has_ctype)
            set_content_type(L, S_REQ, "application/json");
    } else {
        lua_pushvalue(L, 2);
        if (!has_ctype)
            set_content_type(L, S_REQ, "text/plain; charset=utf-8");
    }
    lua_setfield(L, S_REQ, "body");
    transfer_opts(L, opts, S_REQ, k);

    lua_settop(L, S_REQ);
    push_host(L, url); /* S_TARGET */
    size_t blen;
    lua_getfield(L, S_REQ, "body");
    const char *body = lua_tolstring(L, -1, &blen);
    lua_pop(L, 1); /* the request keeps it */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "notify webhook ");
    luaL_addstring(&b, lua_tostring(L, S_TARGET));
    luaL_addstring(&b, ": ");
    if (strcmp(method, "POST") != 0) {
        luaL_addstring(&b, method);
        luaL_addchar(&b, ' ');
    }
    size_t n = utf8_cut(body, blen, WORDS_TEXT_MAX);
    for (size_t i = 0; i < n; i++)
        luaL_addchar(&b, (body[i] == '\n' || body[i] == '\r') ? ' ' : body[i]);
    if (n < blen) {
        char more[48];
        snprintf(more, sizeof more, "... (%zu bytes)", blen);
        luaL_addstring(&b, more);
    }
    luaL_pushresult(&b); /* S_WORDS */
}

static void resolve_pagerduty(lua_State *L)
{
    const int k = K_PAGERDUTY;
    luaL_checktype(L, 1, LUA_TTABLE);
    const int args = 1;
    lua_settop(L, 3);
    lua_newtable(L); /* S_REQ */
    const char *url = arg_str(L, args, k, "url");
    if (!url)
        url = conf_str(L, "pagerduty", "url");
    lua_pushstring(L, url ? url : PD_DEFAULT_URL);
    url = keep(L, S_REQ, "url");
    lua_pushliteral(L, "POST");
    lua_setfield(L, S_REQ, "method");

    int event = lua_gettop(L) + 1;
    lua_newtable(L);
    const char *key = arg_str(L, args, k, "routing_key");
    if (key) {
        lua_pushstring(L, key);
        key = keep(L, event, "routing_key");
    } else {
        key = conf_secret_or_plain(L, "pagerduty", "routing_key_secret", "routing_key", event,
                                   "routing_key");
    }
    if (!key && stand_in(L, "notify.pagerduty: no routing key configured (notify."
                            "pagerduty.routing_key_secret in runbook.yaml)")) {
        lua_pushliteral(L, "routing-key-not-configured");
        key = keep(L, event, "routing_key");
    }
    if (!key || !*key)
        luaL_error(L, "notify.pagerduty: no routing_key: pass routing_key = ..., or set "
                      "notify.pagerduty.routing_key_secret in runbook.yaml");
    add_secret(L, key);

    const char *action = arg_str(L, args, k, "action");
    action = action ? action : "trigger";
    if (strcmp(action, "trigger") != 0 && strcmp(action, "acknowledge") != 0 &&
        strcmp(action, "resolve") != 0)
        luaL_error(L, "notify.pagerduty: action must be trigger, acknowledge or resolve, not '%s'",
                   action);
    lua_pushstring(L, action);
    lua_setfield(L, event, "event_action");
    const char *dedup = arg_str(L, args, k, "dedup_key");
    if (dedup) {
        lua_pushstring(L, dedup);
        lua_setfield(L, event, "dedup_key");
    } else if (strcmp(action, "trigger") != 0) {
        luaL_error(L, "notify.pagerduty: %s needs the dedup_key of the incident", action);
    }
    const int trigger = strcmp(action, "trigger") == 0;
    const char *summary = arg_str(L, args, k, "summary");
    const char *severity = arg_str(L, args, k, "severity");
    if (trigger) {
        if (!summary || !*summary)
            luaL_error(L, "notify.pagerduty: trigger needs a summary");
        severity = severity ? severity : "error";
        if (strcmp(severity, "critical") != 0 && strcmp(severity, "error") != 0 &&
            strcmp(severity, "warning") != 0 && strcmp(severity, "info") != 0)
            luaL_error(L,
                       "notify.pagerduty: severity must be critical, error, warning or info, "
                       "not '%s'",
                       severity);
        int payload = lua_gettop(L) + 1;
        lua_newtable(L);
        size_t slen = strlen(summary);
        lua_pushlstring(L, summary, utf8_cut(summary, slen, PD_SUMMARY_MAX));
        lua_setfield(L, payload, "summary");
        const char *source = arg_str(L, args, k, "source");
        if (!source)
            source = conf_str(L, "pagerduty", "source");
        char host[256] = "runbook";
        if (!source && gethostname(host, sizeof host) == 0)
            host[sizeof host - 1] = '\0';
        lua_pushstring(L, source ? source : host);
        lua_setfield(L, payload, "source");
        lua_pushstring(L, severity);
        lua_setfield(L, payload, "severity");
        pass(L, args, payload, k, "component", LUA_TSTRING);
        pass(L, args, payload, k, "group", LUA_TSTRING);
        pass(L, args, payload, k, "class", LUA_TSTRING);
        pass(L, args, payload, k, "timestamp", LUA_TSTRING);
        pass(L, args, payload, k, "custom_details", LUA_TNONE);
        lua_setfield(L, event, "payload");
        pass(L, args, event, k, "client", LUA_TSTRING);
        pass(L, args, event, k, "client_url", LUA_TSTRING);
        pass(L, args, event, k, "links", LUA_TTABLE);
        pass(L, args, event, k, "images", LUA_TTABLE);
    }
    push_json(L, event);
    lua_setfield(L, S_REQ, "body");
    lua_settop(L, S_REQ);
    set_content_type(L, S_REQ, "application/json");
    transfer_opts(L, args, S_REQ, k);

    push_host(L, url); /* S_TARGET */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "notify pagerduty ");
    luaL_addstring(&b, action);
    luaL_addchar(&b, ' ');
    if (trigger) {
        luaL_addstring(&b, severity);
        luaL_addstring(&b, ": ");
        add_quoted(&b, summary, strlen(summary), WORDS_TEXT_MAX);
    } else {
        luaL_addstring(&b, dedup);
    }
    luaL_pushresult(&b); /* S_WORDS */
}

/* ---- e-mail -------------------------------------------------------------- */

static void no_newlines(lua_State *L, const char *what, const char *s)
{
    if (strpbrk(s, "\r\n"))
        luaL_error(L, "notify.email: %s must be one line (no CR or LF): %s", what, s);
}

/* The addr-spec of "Name <a@x>" or "a@x", pushed. */
static const char *push_addr(lua_State *L, const char *s, size_t n, const char *what)
{
    const char *lt = memchr(s, '<', n);
    if (lt) {
        const char *gt = memchr(lt, '>', n - (size_t)(lt - s));
        if (!gt)
            luaL_error(L, "notify.email: bad address in %s: %s", what, s);
        s = lt + 1;
        n = (size_t)(gt - s);
    }
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || !memchr(s, '@', n))
        luaL_error(L, "notify.email: bad address in %s: '%s'", what, s);
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || s[i] == '<' || s[i] == '>' || s[i] == ',' || (unsigned char)s[i] < 32)
            luaL_error(L, "notify.email: bad address in %s: '%s'", what, s);
    return lua_pushlstring(L, s, n);
}

/* Add the addresses of args[key] (a string, possibly "a@x, B <b@y>", or a
 * list of them) to the list at rcpt; push the header value ("a@x, B <b@y>")
 * or nil when absent.  Returns the number of addresses. */
static int collect_addrs(lua_State *L, int args, const char *key, int rcpt)
{
    int ty = arg_push(L, args, K_EMAIL, key, LUA_TNONE);
    if (ty == LUA_TNIL)
        return 0;
    if (ty != LUA_TSTRING && ty != LUA_TTABLE)
        luaL_error(L, "notify.email: '%s' must be an address or a list of them", key);
    int v = lua_gettop(L);
    int count = 0;
    luaL_Buffer hb;
    luaL_buffinit(L, &hb);
    lua_Integer nitems = ty == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, v) : 1;
    for (lua_Integer i = 1; i <= nitems; i++) {
        size_t len;
        const char *s;
        if (ty == LUA_TTABLE) {
            if (lua_rawgeti(L, v, i) != LUA_TSTRING)
                luaL_error(L, "notify.email: '%s' must list addresses as strings", key);
            s = lua_tolstring(L, -1, &len);
            lua_pop(L, 1); /* still referenced by the list */
        } else {
            s = lua_tolstring(L, v, &len);
        }
        no_newlines(L, key, s);
        /* split on commas outside quotes and angle brackets */
        size_t start = 0;
        int quoted = 0, angle = 0;
        for (size_t j = 0; j <= len; j++) {
            char c = j < len ? s[j] : ',';
            if (c == '"' && (j == 0 || s[j - 1] != '\\'))
                quoted = !quoted;
            else if (c == '<' && !quoted)
                angle = 1;
            else if (c == '>' && !quoted)
                angle = 0;
            if (c != ',' || quoted || angle)
                continue;
            size_t a = start, e = j;
            while (a < e && (s[a] == ' ' || s[a] == '\t'))
                a++;
            while (e > a && (s[e - 1] == ' ' || s[e - 1] == '\t'))
                e--;
            start = j + 1;
            if (a == e)
                continue;
            push_addr(L, s + a, e - a, key);
            lua_rawseti(L, rcpt, (lua_Integer)lua_rawlen(L, rcpt) + 1);
            /* the header keeps the address as written */
            lua_pushlstring(L, s + a, e - a);
            if (count++ > 0)
                lua_pushliteral(L, ", "), lua_insert(L, -2), lua_concat(L, 2);
            luaL_addvalue(&hb);
        }
    }
    luaL_pushresult(&hb);
    lua_remove(L, v);
    if (count == 0) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return count;
}

static void add_date(luaL_Buffer *b)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    char buf[64];
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
             sign, off / 60, off % 60);
    luaL_addstring(b, buf);
}

static void add_message_id(luaL_Buffer *b, const char *from_addr)
{
    unsigned int r[2] = {0, 0};
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        r[0] = (unsigned int)time(NULL);
        r[1] = (unsigned int)getpid() ^ (unsigned int)clock();
    }
    char buf[64];
    snprintf(buf, sizeof buf, "<%lld.%08x%08x@", (long long)time(NULL), r[0], r[1]);
    luaL_addstring(b, buf);
    const char *at = strrchr(from_addr, '@');
    int any = 0;
    for (const char *p = at ? at + 1 : ""; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '-') {
            luaL_addchar(b, *p);
            any = 1;
        }
    if (!any)
        luaL_addstring(b, "runbook.invalid");
    luaL_addchar(b, '>');
}

static int is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void add_base64(luaL_Buffer *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        luaL_addchar(b, B64[(v >> 18) & 63]);
        luaL_addchar(b, B64[(v >> 12) & 63]);
        luaL_addchar(b, i + 1 < n ? B64[(v >> 6) & 63] : '=');
        luaL_addchar(b, i + 2 < n ? B64[v & 63] : '=');
    }
}

/* Subject: plain when ASCII, else RFC 2047 encoded words (UTF-8, base64) of
 * at most 75 characters, folded, never cutting a UTF-8 sequence. */
static void add_subject(luaL_Buffer *b, const char *s)
{
    size_t n = strlen(s);
    if (is_ascii(s, n)) {
        for (size_t i = 0; i < n; i++)
            luaL_addchar(b, (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i]);
        return;
    }
    size_t pos = 0;
    while (pos < n) {
        size_t take = utf8_cut(s + pos, n - pos, 42); /* 42 bytes -> 56 base64 chars */
        if (take == 0)
            take = n - pos < 42 ? n - pos : 42;
        if (pos > 0)
            luaL_addstring(b, "\r\n ");
        luaL_addstring(b, "=?UTF-8?B?");
        add_base64(b, (const unsigned char *)s + pos, take);
        luaL_addstring(b, "?=");
        pos += take;
    }
}

/* The body with CRLF line ends; 7bit when it is ASCII with lines of at most
 * 998 bytes, else quoted-printable (soft breaks at 76). */
static void add_body(luaL_Buffer *b, const char *s, size_t n, int qp)
{
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\n' && s[e] != '\r')
            e++;
        if (!qp) {
            luaL_addlstring(b, s + i, e - i);
        } else {
            int col = 0;
            for (size_t j = i; j < e; j++) {
                unsigned char c = (unsigned char)s[j];
                char enc[4];
                int len;
                int last = j + 1 == e;
                if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) {
                    enc[0] = (char)c;
                    len = 1;
                } else {
                    snprintf(enc, sizeof enc, "=%02X", c);
                    len = 3;
                }
                if (col + len > 75) {
                    luaL_addstring(b, "=\r\n");
                    col = 0;
                }
                luaL_addlstring(b, enc, (size_t)len);
                col += len;
            }
        }
        luaL_addstring(b, "\r\n");
        if (e < n && s[e] == '\r' && e + 1 < n && s[e + 1] == '\n')
            e++;
        i = e + 1;
    }
}

static int needs_qp(const char *s, size_t n)
{
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c == 0)
            return 1;
        line = (c == '\n' || c == '\r') ? 0 : line + 1;
        if (line > 998)
            return 1;
    }
    return 0;
}

static void resolve_email(lua_State *L)
{
    const int k = K_EMAIL;
    luaL_checktype(L, 1, LUA_TTABLE);
    const int args = 1;
    lua_settop(L, 3);
    lua_newtable(L); /* S_REQ */
    const char *url = arg_str(L, args, k, "smtp");
    if (!url)
        url = arg_str(L, args, k, "url");
    if (!url)
        url = conf_str(L, "email", "smtp");
    if (!url && stand_in(L, "notify.email: no SMTP server configured (notify.email.smtp)"))
        url = "smtp://smtp.not-configured.invalid";
    if (!url)
        luaL_error(L, "notify.email: no SMTP server: pass smtp = \"smtp://host:port\", or set "
                      "notify.email.smtp in runbook.yaml");
    if (strncmp(url, "smtp://", 7) != 0 && strncmp(url, "smtps://", 8) != 0)
        luaL_error(L, "notify.email: smtp must be an smtp:// or smtps:// URL, not '%s'", url);
    lua_pushstring(L, url);
    url = keep(L, S_REQ, "url");
    if (push_url_password(L, url)) {
        add_secret(L, lua_tostring(L, -1));
        lua_pop(L, 1);
    }

    const char *from = arg_str(L, args, k, "from");
    if (!from)
        from = conf_str(L, "email", "from");
    if (!from && stand_in(L, "notify.email: no sender configured (notify.email.from)"))
        from = "runbook@not-configured.invalid";
    if (!from)
        luaL_error(L, "notify.email: no sender: pass from = \"oncall@example.com\", or set "
                      "notify.email.from in runbook.yaml");
    no_newlines(L, "from", from);
    size_t flen = strlen(from);
    push_addr(L, from, flen, "from");
    const char *from_addr = keep(L, S_REQ, "mail_from");

    int rcpt = lua_gettop(L) + 1;
    lua_newtable(L);
    int hdr = rcpt + 1; /* the To header, then the Cc header (or nil) */
    int nto = collect_addrs(L, args, "to", rcpt);
    if (nto == 0) {
        lua_pop(L, 1);
        if (conf_push(L, "email", "to") != LUA_TNIL) { /* default recipients */
            lua_newtable(L);
            lua_insert(L, -2);
            lua_setfield(L, -2, "to");
            int t = lua_gettop(L);
            nto = collect_addrs(L, t, "to", rcpt);
            lua_remove(L, t);
        }
    }
    if (nto == 0 && stand_in(L, "notify.email: no recipients (to, or notify.email.to "
                                "in runbook.yaml)")) {
        lua_settop(L, rcpt); /* drop the nil of the missing `to` */
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "oncall@not-configured.invalid");
        lua_setfield(L, -2, "to");
        int t = lua_gettop(L);
        nto = collect_addrs(L, t, "to", rcpt);
        lua_remove(L, t);
    }
    if (nto == 0)
        luaL_error(L, "notify.email: no recipient: pass to = \"a@example.com\" (or a list)");
    int ncc = collect_addrs(L, args, "cc", rcpt);
    collect_addrs(L, args, "bcc", rcpt); /* envelope only: Bcc is not a header */
    lua_settop(L, hdr + 1);
    lua_pushvalue(L, rcpt);
    lua_setfield(L, S_REQ, "mail_rcpt");

    const char *subject = arg_str(L, args, k, "subject");
    subject = subject ? subject : "";
    size_t blen = 0;
    const char *body = "";
    if (arg_push(L, args, k, "body", LUA_TSTRING) == LUA_TSTRING)
        body = lua_tolstring(L, -1, &blen);
    lua_pop(L, 1);
    const char *reply_to = arg_str(L, args, k, "reply_to");
    if (reply_to)
        no_newlines(L, "reply_to", reply_to);

    const char *username = arg_str(L, args, k, "username");
    if (!username)
        username = conf_str(L, "email", "username");
    if (username) {
        lua_pushstring(L, username);
        lua_setfield(L, S_REQ, "username");
    }
    const char *password = arg_str(L, args, k, "password");
    if (password) {
        lua_pushstring(L, password);
        password = keep(L, S_REQ, "password");
    } else {
        password =
            conf_secret_or_plain(L, "email", "password_secret", "password", S_REQ, "password");
    }
    add_secret(L, password);
    int ty = arg_push(L, args, k, "starttls", LUA_TBOOLEAN);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        ty = conf_push(L, "email", "starttls");
        if (ty != LUA_TNIL && ty != LUA_TBOOLEAN)
            luaL_error(L, "runbook.yaml: notify.email.starttls must be true or false");
    }
    if (strncmp(url, "smtp://", 7) == 0) {
        /* true: required; false: never; unset: when the server offers it */
        if (ty == LUA_TNIL)
            lua_pushliteral(L, "try");
        else if (lua_toboolean(L, -1))
            lua_pushliteral(L, "all");
        else
            lua_pushnil(L);
        lua_setfield(L, S_REQ, "use_ssl");
    }
    lua_pop(L, 1);
    transfer_opts(L, args, S_REQ, k);

    /* the message */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "Date: ");
    add_date(&b);
    luaL_addstring(&b, "\r\nFrom: ");
    luaL_addstring(&b, from);
    luaL_addstring(&b, "\r\nTo: ");
    luaL_addstring(&b, lua_tostring(L, hdr));
    if (ncc > 0) {
        luaL_addstring(&b, "\r\nCc: ");
        luaL_addstring(&b, lua_tostring(L, hdr + 1));
    }
    if (reply_to) {
        luaL_addstring(&b, "\r\nReply-To: ");
        luaL_addstring(&b, reply_to);
    }
    luaL_addstring(&b, "\r\nSubject: ");
    add_subject(&b, subject);
    luaL_addstring(&b, "\r\nMessage-ID: ");
    add_message_id(&b, from_addr);
    int qp = needs_qp(body, blen);
    luaL_addstring(&b, "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                       "Content-Transfer-Encoding: ");
    luaL_addstring(&b, qp ? "quoted-printable" : "7bit");
    luaL_addstring(&b, "\r\nX-Mailer: runbook " RB_VERSION "\r\n\r\n");
    add_body(&b, body, blen, qp);
    luaL_pushresult(&b);
    lua_setfield(L, S_REQ, "body");

    /* target: the To recipients; words: `notify email a@x: "subject"` */
    lua_pushvalue(L, hdr);
    lua_replace(L, S_TARGET);
    lua_settop(L, S_TARGET);
    luaL_Buffer w;
    luaL_buffinit(L, &w);
    luaL_addstring(&w, "notify email ");
    luaL_addstring(&w, lua_tostring(L, S_TARGET));
    if (ncc > 0) {
        char more[32];
        snprintf(more, sizeof more, " (+%d cc)", ncc);
        luaL_addstring(&w, more);
    }
    luaL_addstring(&w, ": ");
    add_quoted(&w, subject, strlen(subject), WORDS_TEXT_MAX);
    luaL_pushresult(&w); /* S_WORDS */
}

typedef void (*resolver)(lua_State *L);
static const resolver RESOLVE[] = {resolve_slack, resolve_webhook, resolve_pagerduty,
                                   resolve_email};

/* ---- describe / simulate / call ------------------------------------------ */

/* args[key] when it is a string, else NULL (args keeps it alive) */
static const char *arg_text(lua_State *L, int args, const char *key)
{
    if (!args)
        return NULL;
    const char *s = lua_getfield(L, args, key) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return s;
}

/* The structured fields (see the rows): which channel, the message as a
 * scenario's expect.notifications judges it (empty when there is none:
 * Slack blocks only), and where it goes. */
static void set_fields(lua_State *L, int kind)
{
    const int args = lua_istable(L, 1) ? 1 : 0;
    const char *text = NULL;
    rb_field_str(L, "channel", KIND[kind]);
    if (kind != K_PAGERDUTY)
        rb_field_str(L, "to", lua_tostring(L, S_TARGET));
    switch (kind) {
    case K_SLACK:
        text = arg_text(L, args, "text");
        break;
    case K_WEBHOOK: /* the payload as sent: JSON-encoded, or the string given */
        lua_getfield(L, S_REQ, "body");
        text = lua_tostring(L, -1);
        lua_pop(L, 1); /* the request keeps it */
        break;
    case K_PAGERDUTY:
        text = arg_text(L, args, "summary");
        rb_field_str(L, "dedup_key", arg_text(L, args, "dedup_key"));
        /* action and severity as resolved (the defaults), from the event */
        lua_getfield(L, S_REQ, "body");
        push_helper(L, DECODE_KEY, "json", "decode");
        lua_insert(L, -2);
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "event_action");
        rb_field_set(L, "action");
        if (lua_getfield(L, -1, "payload") == LUA_TTABLE) {
            lua_getfield(L, -1, "severity");
            rb_field_set(L, "severity");
        }
        lua_pop(L, 2);
        break;
    case K_EMAIL: /* the subject; a mail without one, its body */
        text = arg_text(L, args, "subject");
        if (!text || !*text)
            text = arg_text(L, args, "body");
        break;
    }
    rb_field_str(L, "text", text ? text : "");
}

static void describe(lua_State *L, rb_action *a, int kind)
{
    RESOLVE[kind](L);
    rb_action_set(L, a, "verb", "%s", KIND[kind]);
    rb_action_set(L, a, "target", "%s", lua_tostring(L, S_TARGET));
    rb_action_set(L, a, "words", "%s", lua_tostring(L, S_WORDS));
    set_fields(L, kind);
    a->cls = RB_MUTATE;
    a->opts = 0; /* no readonly override: see the top of the file */
}

static void describe_slack(lua_State *L, rb_action *a)
{
    describe(L, a, K_SLACK);
}
static void describe_webhook(lua_State *L, rb_action *a)
{
    describe(L, a, K_WEBHOOK);
}
static void describe_pagerduty(lua_State *L, rb_action *a)
{
    describe(L, a, K_PAGERDUTY);
}
static void describe_email(lua_State *L, rb_action *a)
{
    describe(L, a, K_EMAIL);
}

static int simulate(lua_State *L, int status)
{
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "dry_run");
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "body");
    return 1;
}

static int simulate_http(lua_State *L, const rb_action *a)
{
    (void)a;
    return simulate(L, 200);
}

static int simulate_pagerduty(lua_State *L, const rb_action *a)
{
    (void)a;
    simulate(L, 202);
    /* the dedup_key the call gave, so a dry run can "resolve" it later */
    if (lua_istable(L, 1) && lua_getfield(L, 1, "dedup_key") == LUA_TSTRING)
        lua_setfield(L, -2, "dedup_key");
    else if (lua_istable(L, 1))
        lua_pop(L, 1);
    return 1;
}

static int simulate_email(lua_State *L, const rb_action *a)
{
    (void)a;
    return simulate(L, 250);
}

/* The cause of a transport error raised by raw(): the text after the URL
 * ("connection refused"), else the whole message. */
static const char *cause_of(const char *msg, const char *url)
{
    const char *p = url && *url ? strstr(msg, url) : NULL;
    if (p && strncmp(p + strlen(url), ": ", 2) == 0)
        return p + strlen(url) + 2;
    return msg;
}

/* The service's answer at res (a response table) as the call's result: a
 * status it refused raises ("notify slack: HTTP 500: <first line>"), after
 * noting the response for the audit record; else ok = true and, for
 * PagerDuty, the dedup_key it answered with (else the call's, args[1]'s). */
static int judge(lua_State *L, int kind, int res, int args)
{
    lua_getfield(L, res, "status");
    lua_Integer code = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (kind == K_EMAIL ? code >= 400 : (code < 200 || code > 299)) {
        rb_note_result(L, res);
        size_t n = 0;
        const char *body = "";
        if (lua_getfield(L, res, "body") == LUA_TSTRING)
            body = lua_tolstring(L, -1, &n);
        size_t line = strcspn(body, "\r\n");
        line = utf8_cut(body, line, BODY_LINE_MAX);
        if (kind == K_EMAIL)
            return luaL_error(L, "notify email: SMTP %d", (int)code);
        lua_pushlstring(L, body, line);
        return luaL_error(L, "notify %s: HTTP %d%s%s", KIND[kind], (int)code, line ? ": " : "",
                          lua_tostring(L, -1));
    }
    lua_settop(L, res);
    lua_pushboolean(L, 1);
    lua_setfield(L, res, "ok");
    if (kind == K_PAGERDUTY) {
        /* { status = "success", message = "Event processed", dedup_key = "..." } */
        if (lua_getfield(L, res, "body") == LUA_TSTRING) {
            push_helper(L, DECODE_KEY, "json", "decode");
            lua_insert(L, -2);
            if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1) &&
                lua_getfield(L, -1, "dedup_key") == LUA_TSTRING)
                lua_setfield(L, res, "dedup_key");
        }
        lua_settop(L, res);
        if (lua_getfield(L, res, "dedup_key") == LUA_TNIL && lua_istable(L, args) &&
            lua_getfield(L, args, "dedup_key") == LUA_TSTRING)
            lua_setfield(L, res, "dedup_key");
        lua_settop(L, res);
    }
    return 1;
}

static int notify_k(lua_State *L, int status, lua_KContext ctx)
{
    int kind = (int)ctx;
    lua_getfield(L, S_REQ, "url");
    const char *url = lua_tostring(L, -1);
    const char *host = push_host(L, url ? url : "");
    if (status != LUA_OK && status != LUA_YIELD) {
        if (lua_type(L, S_RESULT) != LUA_TSTRING) {
            lua_settop(L, S_RESULT);
            return lua_error(L);
        }
        return luaL_error(L, "notify %s: %s (%s)", KIND[kind],
                          cause_of(lua_tostring(L, S_RESULT), url), host);
    }
    lua_settop(L, S_RESULT);
    if (!lua_istable(L, S_RESULT))
        return luaL_error(L, "notify %s: no response from the transfer", KIND[kind]);
    return judge(L, kind, S_RESULT, 1);
}

static int notify_call(lua_State *L, int kind)
{
    RESOLVE[kind](L); /* 1..3 args, S_REQ, S_TARGET, S_WORDS */
    lua_settop(L, S_WORDS);
    rb_push_raw(L, "http", "request");
    lua_pushvalue(L, S_REQ);
    int st = lua_pcallk(L, 1, 1, 0, (lua_KContext)kind, notify_k);
    return notify_k(L, st, (lua_KContext)kind);
}

/* ---- scenarios and recordings --------------------------------------------- */

/* What each service answers when all is well */
static const int OK_STATUS[] = {200, 200, 202, 250};

/* answer(respond, info, args...): a mock's respond { status, body, json,
 * error, ok } as the live call's result -- a response whose status the service
 * refused raises as live does, respond.error as a failed transfer does. */
static int answer(lua_State *L, int kind)
{
    if (lua_getfield(L, 1, "error") != LUA_TNIL)
        return luaL_error(L, "notify %s: %s", KIND[kind], luaL_tolstring(L, -1, NULL));
    /* ok: true says what every answer is (older scenarios write it); a
     * notification that fails raises, so ok: false cannot be answered */
    if (lua_getfield(L, 1, "ok") != LUA_TNIL && !lua_toboolean(L, -1))
        return luaL_error(L,
                          "notify %s: a mock cannot answer ok: false (a failed notification "
                          "raises): give error, or a status the service refuses",
                          KIND[kind]);
    lua_pop(L, 2);
    int res = lua_gettop(L) + 1;
    lua_createtable(L, 0, 6);
    int isnum;
    lua_getfield(L, 1, "status");
    lua_Integer status = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    lua_pushinteger(L, isnum ? status : OK_STATUS[kind]);
    lua_setfield(L, res, "status");
    if (lua_getfield(L, 1, "body") != LUA_TSTRING) {
        lua_pop(L, 1);
        if (lua_getfield(L, 1, "json") != LUA_TNIL)
            push_json(L, -1);
        else
            lua_pushliteral(L, "");
        lua_remove(L, -2);
    }
    lua_setfield(L, res, "body");
    lua_newtable(L);
    lua_setfield(L, res, "headers");
    lua_pushnumber(L, 0.0);
    lua_setfield(L, res, "time");
    /* r:json() as on a live response (the http primitive's metatable) */
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.http_response");
    lua_setmetatable(L, res);
    return judge(L, kind, res, 3);
}

static int answer_slack(lua_State *L)
{
    return answer(L, K_SLACK);
}
static int answer_webhook(lua_State *L)
{
    return answer(L, K_WEBHOOK);
}
static int answer_pagerduty(lua_State *L)
{
    return answer(L, K_PAGERDUTY);
}
static int answer_email(lua_State *L)
{
    return answer(L, K_EMAIL);
}

/* recorded(info, error, result): { status } (and PagerDuty's dedup_key as
 * json, which answer() hands back) or { error = cause }.  The rest of a
 * live response -- the webhook URL, a secret, among it -- has no use in a
 * mock. */
static int recorded(lua_State *L)
{
    lua_newtable(L);
    int out = lua_gettop(L);
    if (!lua_isnoneornil(L, 2)) {
        const char *msg = luaL_tolstring(L, 2, NULL);
        lua_getfield(L, 1, "verb");
        const char *prefix = lua_pushfstring(L, "notify %s: ", luaL_optstring(L, -1, ""));
        const char *at = strstr(msg, prefix);
        lua_pushstring(L, at ? at + strlen(prefix) : msg);
        lua_setfield(L, out, "error");
        lua_settop(L, out);
        return 1;
    }
    if (!lua_istable(L, 3))
        return 1;
    if (lua_getfield(L, 3, "status") == LUA_TNUMBER)
        lua_setfield(L, out, "status");
    else
        lua_pop(L, 1);
    if (lua_getfield(L, 3, "dedup_key") == LUA_TSTRING) {
        lua_createtable(L, 0, 1);
        lua_insert(L, -2);
        lua_setfield(L, -2, "dedup_key");
        lua_setfield(L, out, "json");
    } else {
        lua_pop(L, 1);
    }
    return 1;
}

static int l_slack(lua_State *L)
{
    return notify_call(L, K_SLACK);
}
static int l_webhook(lua_State *L)
{
    return notify_call(L, K_WEBHOOK);
}
static int l_pagerduty(lua_State *L)
{
    return notify_call(L, K_PAGERDUTY);
}
static int l_email(lua_State *L)
{
    return notify_call(L, K_EMAIL);
}

void mod_notify_open(lua_State *L)
{
    static const rb_field fields[] = {
        {"channel", RB_STR, RB_KEY}, /* slack, webhook, pagerduty, email */
        {"text", RB_STR, RB_MATCH},  /* the message: text, payload, summary, subject */
        {"to", RB_STR, RB_MATCH},    /* Slack's channel (else the host), the webhook's host,
                                        the mail's To */
        {NULL, 0, 0}};
    static const rb_field pd_fields[] = {
        {"channel", RB_STR, RB_KEY},     {"text", RB_STR, RB_MATCH},
        {"action", RB_STR, RB_MATCH},    {"severity", RB_STR, RB_MATCH},
        {"dedup_key", RB_STR, RB_MATCH}, {NULL, 0, 0}};
/* The keys each resolver reads (transfer_opts' for all of them); no
 * readonly, see the top of the file.  slack, pagerduty and email take one
 * table, the message and its options at once. */
#define TRANSFER "timeout connect_timeout retries backoff insecure cacert"
#define NOTIFY_ROW(n, sim, f, signature, opts)                                                     \
    {                                                                                              \
        .name = #n, .fn = l_##n, .cls = RB_MUTATE, .describe = describe_##n, .simulate = sim,      \
        .fields = f, .respond = "status body json error ok", .answer = answer_##n,                 \
        .recorded = recorded, .flags = RB_NOTICE, .sig = signature, .options = opts TRANSFER       \
    }
    static const rb_fn fns[] = {
        NOTIFY_ROW(slack, simulate_http, fields, "message:opts",
                   "text blocks attachments channel url webhook username icon_emoji icon_url "
                   "thread_ts mrkdwn unfurl_links unfurl_media "),
        NOTIFY_ROW(webhook, simulate_http, fields, "url:str payload:table|str opts?:opts",
                   "method headers auth query "),
        NOTIFY_ROW(pagerduty, simulate_pagerduty, pd_fields, "event:opts",
                   "summary severity source action dedup_key routing_key url component group "
                   "class timestamp custom_details client client_url links images "),
        NOTIFY_ROW(email, simulate_email, fields, "message:opts",
                   "to cc bcc subject body from reply_to smtp url username password starttls "),
        {.name = NULL},
    };
#undef NOTIFY_ROW
#undef TRANSFER
    rb_register(L, "notify", fns);
    /* the helpers a runbook could shadow: taken now, while they are ours */
    int st = lua_getglobal(L, "secret"); /* callable: a table with register() */
    if (st == LUA_TFUNCTION || st == LUA_TTABLE)
        lua_setfield(L, LUA_REGISTRYINDEX, SECRET_KEY);
    else
        lua_pop(L, 1);
    if (lua_getglobal(L, "json") == LUA_TTABLE) {
        if (lua_getfield(L, -1, "encode") == LUA_TFUNCTION)
            lua_setfield(L, LUA_REGISTRYINDEX, ENCODE_KEY);
        else
            lua_pop(L, 1);
        if (lua_getfield(L, -1, "decode") == LUA_TFUNCTION)
            lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
}
