/*
 * http.*: HTTP (and, for notify.email, SMTP) through libcurl's multi
 * interface, driven by the engine's event loop: a request is an rb_op with
 * no descriptors of its own; the loop's poll is replaced by
 * curl_multi_poll(), which waits on curl's sockets and on the loop's
 * descriptors (child pipes, the signal pipe) together, so transfers,
 * child processes and timers all progress in one thread.  One multi handle
 * for the whole run keeps connections alive between requests.
 * Classification: GET/HEAD/OPTIONS read, everything else mutate.
 *
 * Each row describes its call as fields (method, url with its query,
 * headers -- credentials registered as secrets --, json, body) that scenario mocks match
 * and recordings key on; a mock's answer is built into the very response
 * object a live call returns (push_response), and fails as a transfer does.
 */
#include "curl_lazy.h"
#include "runbook/host.h"
#include "runbook/runbook.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT         30.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_REDIRECTS       10
#define BODY_LIMIT              (512u << 20) /* bytes kept of a response body */
#define PREVIEW                 160          /* bytes of a request body shown in `words` */

static const rb_curl *C;
static CURLM *multi;
static int in_flight; /* easy handles in the multi */

typedef struct buf {
    char *p;
    size_t len, cap;
    int overflow;
} buf;

typedef struct http_op {
    rb_op op;
    CURL *easy;
    struct curl_slist *headers, *rcpt;
    char *body; /* request body, owned */
    size_t body_len, body_off;
    buf resp, hdrs;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode rc;
    long status;
    int in_multi, waiting_retry, retries_left, can_retry;
    double backoff, timeout, connect_timeout;
} http_op;

static void buf_add(buf *b, const char *p, size_t n)
{
    if (b->len + n > BODY_LIMIT) {
        b->overflow = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->overflow = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    buf_add(&((http_op *)ud)->resp, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    http_op *h = ud;
    /* a new status line (after a redirect or 100 Continue): the headers
     * that matter are the final response's */
    if (size * n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        h->hdrs.len = 0;
    buf_add(&h->hdrs, p, size * n);
    return size * n;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    http_op *h = ud;
    size_t left = h->body_len - h->body_off, want = size * n;
    if (want > left)
        want = left;
    memcpy(p, h->body + h->body_off, want);
    h->body_off += want;
    return want;
}

/* ---- the op --------------------------------------------------------------- */

static void start_transfer(http_op *h)
{
    h->resp.len = h->hdrs.len = 0;
    h->resp.overflow = h->hdrs.overflow = 0;
    h->body_off = 0;
    h->errbuf[0] = '\0';
    C->multi_add_handle(multi, h->easy);
    h->in_multi = 1;
    in_flight++;
}

static void stop_transfer(http_op *h)
{
    if (h->in_multi) {
        C->multi_remove_handle(multi, h->easy);
        h->in_multi = 0;
        in_flight--;
    }
}

static int retryable(http_op *h)
{
    if (!h->can_retry || h->retries_left <= 0)
        return 0;
    switch (h->rc) {
    case CURLE_OK:
        return h->status == 429 || h->status == 502 || h->status == 503 || h->status == 504;
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
        return 1;
    default:
        return 0;
    }
}

static void attempt_done(http_op *h, CURLcode rc)
{
    stop_transfer(h);
    h->rc = rc;
    h->status = 0;
    C->easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
    if (retryable(h)) {
        h->retries_left--;
        h->waiting_retry = 1;
        h->op.deadline = rb_now() + h->backoff;
        h->backoff *= 2;
        return;
    }
    rb_op_done(&h->op);
}

static void http_ready(rb_op *op, int i, short revents)
{
    (void)op, (void)i, (void)revents; /* curl owns the sockets */
}

static void http_cancel(rb_op *op, const char *why)
{
    http_op *h = (http_op *)op;
    stop_transfer(h);
    snprintf(op->error, sizeof op->error, "%s", why);
    rb_op_done(op);
}

static void http_expired(rb_op *op)
{
    http_op *h = (http_op *)op;
    if (h->waiting_retry) {
        h->waiting_retry = 0;
        op->deadline = 0;
        start_transfer(h);
    }
}

static void http_destroy(rb_op *op)
{
    http_op *h = (http_op *)op;
    stop_transfer(h);
    if (h->easy)
        C->easy_cleanup(h->easy);
    C->slist_free_all(h->headers);
    C->slist_free_all(h->rcpt);
    free(h->body);
    free(h->resp.p);
    free(h->hdrs.p);
    free(h);
}

static const rb_op_vtable http_vt = {http_ready, http_cancel, http_expired, http_destroy};

/* Finished transfers: hand them to their ops. */
static int collect(void)
{
    int done = 0, left;
    CURLMsg *m;
    while ((m = C->multi_info_read(multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        http_op *h = NULL;
        C->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
        if (h) {
            attempt_done(h, m->data.result);
            done++;
        }
    }
    return done;
}

/* The loop's poll while transfers are in flight (see rb_set_poller). */
static int http_poll(struct pollfd *fds, unsigned n, int timeout_ms)
{
    if (!in_flight)
        return poll(fds, n, timeout_ms);
    int running;
    C->multi_perform(multi, &running);
    if (collect())
        timeout_ms = 0; /* a task can go on: do not sleep */
    enum { MAXW = 256 };
    struct curl_waitfd w[MAXW];
    unsigned k = n < MAXW ? n : MAXW;
    for (unsigned i = 0; i < k; i++) {
        w[i].fd = fds[i].fd;
        w[i].events = fds[i].events;
        w[i].revents = 0;
    }
    int wait = timeout_ms < 0 || timeout_ms > 1000 ? 1000 : timeout_ms;
    C->multi_poll(multi, w, k, wait, NULL);
    int ready = 0;
    for (unsigned i = 0; i < k; i++) {
        fds[i].revents = w[i].revents;
        ready += w[i].revents != 0;
    }
    C->multi_perform(multi, &running);
    collect();
    return ready;
}

static void load_curl(lua_State *L)
{
    if (C)
        return;
    char err[256];
    C = rb_curl_get(err, sizeof err);
    if (!C)
        luaL_error(L, "http: %s", err);
    multi = C->multi_init();
    if (!multi)
        luaL_error(L, "http: cannot create a curl multi handle");
    /* one connection pool for the run; pipelined HTTP/2 when a server offers it */
    C->multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);
    rb_set_poller(http_poll);
}

/* ---- building a transfer from a request table ------------------------------ */

static const char *upper_method(lua_State *L, int req)
{
    const char *m = "GET";
    if (lua_getfield(L, req, "method") == LUA_TSTRING)
        m = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "http: method must be a string");
    lua_pop(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *p = m; *p; p++)
        luaL_addchar(&b, (char)toupper((unsigned char)*p));
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* s percent-encoded as curl_easy_escape does: all but RFC 3986's unreserved */
static void add_escaped(luaL_Buffer *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            luaL_addchar(b, (char)c);
        } else {
            luaL_addchar(b, '%');
            luaL_addchar(b, hex[c >> 4]);
            luaL_addchar(b, hex[c & 15]);
        }
    }
}

/* url (at index url) with the query table at index query appended,
 * percent-encoded, keys sorted: the same call gives the same URL, in the
 * request and in the action's words (so audit, dry-run and mocks see it) */
static const char *with_query(lua_State *L, int url, int query)
{
    url = lua_absindex(L, url);
    query = lua_absindex(L, query);
    const char *base = lua_tostring(L, url);
    char sep = strchr(base, '?') ? '&' : '?';
    rb_push_sorted_keys(L, query);
    int keys = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, base);
    lua_Integer nk = (lua_Integer)lua_rawlen(L, keys);
    for (lua_Integer i = 1; i <= nk; i++) {
        luaL_addchar(&b, sep);
        sep = '&';
        lua_rawgeti(L, keys, i);
        add_escaped(&b, luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1); /* the string; the key stays for the lookup */
        lua_gettable(L, query);
        luaL_addchar(&b, '=');
        add_escaped(&b, luaL_tolstring(L, -1, NULL));
        lua_pop(L, 2);
    }
    luaL_pushresult(&b);
    lua_remove(L, keys);
    return lua_tostring(L, -1);
}

/* the request's url with its query table appended */
static const char *full_url(lua_State *L, int req)
{
    if (lua_getfield(L, req, "url") != LUA_TSTRING)
        luaL_error(L, "http: url must be a string");
    if (lua_getfield(L, req, "query") != LUA_TTABLE) {
        lua_pop(L, 1);
        return lua_tostring(L, -1);
    }
    return with_query(L, -2, -1);
}

/* the request body: `body` string, or `json` table encoded (sets *is_json) */
static const char *request_body(lua_State *L, int req, size_t *len, int *is_json)
{
    *is_json = 0;
    if (lua_getfield(L, req, "json") != LUA_TNIL) {
        lua_getglobal(L, "json");
        lua_getfield(L, -1, "encode");
        lua_pushvalue(L, -3);
        lua_call(L, 1, 1);
        *is_json = 1;
        return lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1);
    int t = lua_getfield(L, req, "body");
    if (t == LUA_TNIL) {
        *len = 0;
        return NULL;
    }
    if (t != LUA_TSTRING)
        luaL_error(L, "http: body must be a string (use json = {...} for a table)");
    return lua_tolstring(L, -1, len);
}

static int idempotent(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS") || !strcmp(m, "PUT") ||
           !strcmp(m, "DELETE");
}

static int http_k(lua_State *L, int status, lua_KContext ctx);

/* Everything read from a request table, before anything is allocated: all
 * the raising happens here, so a half-built transfer never leaks. */
typedef struct req_params {
    const char *method, *url, *body, *cacert, *bearer, *user, *pass, *userpwd, *unix_socket;
    const char *mail_from, *smtp_user, *smtp_pass, *use_ssl;
    size_t body_len;
    int is_json, smtp, insecure, can_retry, retries, headers, rcpt, has_ctype;
    double timeout, connect_timeout, backoff;
    long redirects;
} req_params;

/* Stack after: 1 req, 2 method, 3 url, 4 header lines, 5 recipients, 6 body */
static void read_request(lua_State *L, req_params *p)
{
    memset(p, 0, sizeof *p);
    p->method = upper_method(L, 1); /* 2 */
    p->url = full_url(L, 1);
    lua_pushstring(L, p->url);
    lua_replace(L, 3);
    lua_settop(L, 3);
    p->url = lua_tostring(L, 3);
    p->smtp = strncmp(p->url, "smtp://", 7) == 0 || strncmp(p->url, "smtps://", 8) == 0;
    p->timeout = rb_opt_number(L, 1, "timeout", DEFAULT_TIMEOUT);
    p->connect_timeout = rb_opt_number(L, 1, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    p->retries = (int)rb_opt_number(L, 1, "retries", 0);
    p->backoff = rb_opt_number(L, 1, "backoff", 0.5);
    p->can_retry = !p->smtp && (idempotent(p->method) || rb_opt_bool(L, 1, "retry_unsafe", 0));
    p->redirects = (long)rb_opt_number(L, 1, "redirects", DEFAULT_REDIRECTS);
    p->insecure = rb_opt_bool(L, 1, "insecure", 0);
    p->cacert = rb_opt_string(L, 1, "cacert");
    p->unix_socket = rb_opt_string(L, 1, "unix_socket"); /* the Docker Engine API */
    /* credentials are secrets wherever they came from */
    int t = lua_getfield(L, 1, "auth");
    if (t == LUA_TTABLE) {
        p->bearer = rb_opt_string(L, -1, "bearer");
        p->user = rb_opt_string(L, -1, "user");
        p->pass = rb_opt_string(L, -1, "password");
        if (p->bearer)
            rb_secret_add(L, p->bearer);
        if (p->pass) {
            rb_secret_add(L, p->pass);
            /* Basic auth sends base64(user:password): that whole is a secret */
            lua_pushfstring(L, "%s:%s", p->user ? p->user : "", p->pass);
            rb_secret_add(L, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    } else if (t == LUA_TSTRING) {
        p->userpwd = lua_tostring(L, -1);
        const char *colon = strchr(p->userpwd, ':');
        if (colon && colon[1]) {
            rb_secret_add(L, colon + 1);
            rb_secret_add(L, p->userpwd);
        }
    } else if (t != LUA_TNIL) {
        luaL_error(L, "http: auth must be { user =, password = }, { bearer = } or \"user:pass\"");
    }
    lua_pop(L, 1);   /* the strings stay referenced by the request table */
    lua_newtable(L); /* 4: "Name: value" lines */
    if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            const char *k = luaL_tolstring(L, -2, NULL);
            const char *v = luaL_tolstring(L, -2, NULL);
            if (strcasecmp(k, "content-type") == 0)
                p->has_ctype = 1;
            if (strcasecmp(k, "authorization") == 0) {
                const char *sp = strchr(v, ' ');
                rb_secret_add(L, sp ? sp + 1 : v);
            }
            lua_pushfstring(L, "%s: %s", k, v);
            lua_rawseti(L, 4, ++p->headers);
            lua_pop(L, 3);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "http: headers must be a table");
    }
    lua_pop(L, 1);
    lua_newtable(L); /* 5: recipients */
    if (p->smtp) {
        p->mail_from = rb_opt_string(L, 1, "mail_from");
        p->smtp_user = rb_opt_string(L, 1, "username");
        p->smtp_pass = rb_opt_string(L, 1, "password");
        p->use_ssl = rb_opt_string(L, 1, "use_ssl");
        if (p->smtp_pass)
            rb_secret_add(L, p->smtp_pass);
        if (lua_getfield(L, 1, "mail_rcpt") == LUA_TTABLE) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_rawgeti(L, -1, i) == LUA_TSTRING)
                    lua_rawseti(L, 5, ++p->rcpt);
                else
                    lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    p->body = request_body(L, 1, &p->body_len, &p->is_json); /* 6 (or nil) */
    lua_settop(L, 6);
}

/* raw(req) -> response; not funnelled: the rows call it, and notify and
 * docker through http.request's raw effect (rb_push_raw) */
static int l_http_raw(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    load_curl(L);
    req_params p;
    read_request(L, &p);

    CURL *e = C->easy_init();
    http_op *h = e ? calloc(1, sizeof *h) : NULL;
    char *body = p.body ? malloc(p.body_len ? p.body_len : 1) : NULL;
    if (!e || !h || (p.body && !body)) {
        if (e)
            C->easy_cleanup(e);
        free(h);
        free(body);
        return luaL_error(L, "http %s %s: out of memory", p.method, p.url);
    }
    /* nothing below raises until rb_await */
    h->easy = e;
    h->op.vt = &http_vt;
    for (int i = 0; i < RB_OP_MAXFD; i++)
        h->op.fd[i] = -1;
    if (body)
        memcpy(body, p.body, p.body_len);
    h->body = body;
    h->body_len = p.body_len;
    h->timeout = p.timeout;
    h->connect_timeout = p.connect_timeout;
    h->retries_left = p.retries;
    h->backoff = p.backoff;
    h->can_retry = p.can_retry;

    C->easy_setopt(e, CURLOPT_URL, p.url); /* curl copies string options */
    C->easy_setopt(e, CURLOPT_PRIVATE, (char *)h);
    C->easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    C->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    C->easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(p.timeout * 1000));
    C->easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(p.connect_timeout * 1000));
    C->easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    C->easy_setopt(e, CURLOPT_WRITEDATA, h);
    C->easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    C->easy_setopt(e, CURLOPT_HEADERDATA, h);
    C->easy_setopt(e, CURLOPT_USERAGENT, "runbook/" RB_VERSION);
    if (p.insecure) {
        C->easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        C->easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (p.cacert)
        C->easy_setopt(e, CURLOPT_CAINFO, p.cacert);
    if (p.unix_socket)
        C->easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, p.unix_socket);
    if (p.bearer) {
        C->easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        C->easy_setopt(e, CURLOPT_XOAUTH2_BEARER, p.bearer);
    } else if (p.user) {
        C->easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        C->easy_setopt(e, CURLOPT_USERNAME, p.user);
        C->easy_setopt(e, CURLOPT_PASSWORD, p.pass ? p.pass : "");
    } else if (p.userpwd) {
        C->easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        C->easy_setopt(e, CURLOPT_USERPWD, p.userpwd);
    }
    for (int i = 1; i <= p.headers; i++) {
        lua_rawgeti(L, 4, i);
        h->headers = C->slist_append(h->headers, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    if (p.is_json && !p.has_ctype)
        h->headers = C->slist_append(h->headers, "Content-Type: application/json");

    if (p.smtp) {
        if (p.mail_from)
            C->easy_setopt(e, CURLOPT_MAIL_FROM, p.mail_from);
        for (int i = 1; i <= p.rcpt; i++) {
            lua_rawgeti(L, 5, i);
            h->rcpt = C->slist_append(h->rcpt, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        C->easy_setopt(e, CURLOPT_MAIL_RCPT, h->rcpt);
        if (p.smtp_user)
            C->easy_setopt(e, CURLOPT_USERNAME, p.smtp_user);
        if (p.smtp_pass)
            C->easy_setopt(e, CURLOPT_PASSWORD, p.smtp_pass);
        if (p.use_ssl)
            C->easy_setopt(e, CURLOPT_USE_SSL,
                           strcmp(p.use_ssl, "all") == 0 ? (long)CURLUSESSL_ALL
                                                         : (long)CURLUSESSL_TRY);
        C->easy_setopt(e, CURLOPT_UPLOAD, 1L);
        C->easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        C->easy_setopt(e, CURLOPT_READDATA, h);
        C->easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)h->body_len);
    } else {
        if (p.redirects > 0) {
            C->easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
            C->easy_setopt(e, CURLOPT_MAXREDIRS, p.redirects);
        }
        /* POST is curl's own (POSTFIELDS), so a 302/303 turns it into a GET
         * as browsers do; a custom method would be kept on every hop */
        if (strcmp(p.method, "HEAD") == 0)
            C->easy_setopt(e, CURLOPT_NOBODY, 1L);
        else if (strcmp(p.method, "POST") != 0 && (strcmp(p.method, "GET") != 0 || h->body))
            C->easy_setopt(e, CURLOPT_CUSTOMREQUEST, p.method);
        if (h->body) {
            C->easy_setopt(e, CURLOPT_POSTFIELDS, h->body);
            C->easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
        } else if (strcmp(p.method, "POST") == 0) {
            C->easy_setopt(e, CURLOPT_POSTFIELDS, "");
        }
        h->headers = C->slist_append(h->headers, "Expect:"); /* no 100-continue round trip */
    }
    if (h->headers)
        C->easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    start_transfer(h);
    return rb_await(L, &h->op, http_k);
}

static const char *transport_error(lua_State *L, http_op *h)
{
    switch (h->rc) {
    case CURLE_COULDNT_CONNECT:
        return "connection refused";
    case CURLE_OPERATION_TIMEDOUT: {
        /* name the limit that fired: never connected means connect_timeout */
        double connected = 0;
        C->easy_getinfo(h->easy, CURLINFO_CONNECT_TIME, &connected);
        char msg[64]; /* lua_pushfstring has no precision */
        if (connected <= 0 && h->connect_timeout < h->timeout)
            snprintf(msg, sizeof msg, "connect timed out after %.1f s", h->connect_timeout);
        else
            snprintf(msg, sizeof msg, "timed out after %.1f s", h->timeout);
        return lua_pushstring(L, msg);
    }
    case CURLE_PEER_FAILED_VERIFICATION:
        return lua_pushfstring(L, "certificate verify failed (%s)", h->errbuf);
    case CURLE_COULDNT_RESOLVE_HOST:
        return lua_pushfstring(L, "could not resolve host (%s)", h->errbuf);
    case CURLE_TOO_MANY_REDIRECTS:
        return lua_pushfstring(L, "too many redirects (%s)", h->errbuf);
    default:
        return lua_pushfstring(L, "%s", h->errbuf[0] ? h->errbuf : C->easy_strerror(h->rc));
    }
}

/* "content-type: x\r\n..." -> { ["content-type"] = "x" }; repeated names join with ", " */
static void push_headers(lua_State *L, const buf *b)
{
    lua_newtable(L);
    const char *p = b->p, *end = b->p + b->len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        if (colon && !(stop - p >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
            luaL_Buffer k;
            luaL_buffinit(L, &k);
            for (const char *c = p; c < colon; c++)
                luaL_addchar(&k, (char)tolower((unsigned char)*c));
            luaL_pushresult(&k);
            const char *v = colon + 1, *ve = stop;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) == LUA_TSTRING) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, -3);
        }
        p = eol ? eol + 1 : NULL;
    }
}

static void set_response_mt(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.http_response");
    lua_setmetatable(L, -2);
}

/* A response, pushed: every field but body and headers, which the caller
 * sets.  Live calls and scenario mocks build it here, so a runbook sees the
 * same object from both. */
static int push_response(lua_State *L, lua_Integer status, int ok, double time, const char *url,
                         const char *method)
{
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushboolean(L, ok);
    lua_setfield(L, -2, "ok");
    lua_pushnumber(L, time);
    lua_setfield(L, -2, "time");
    lua_pushstring(L, url);
    lua_setfield(L, -2, "url");
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    set_response_mt(L);
    return lua_gettop(L);
}

/* libcurl's phases of this transfer, in ms from its own start (not from
 * when a batch began): { connect, tls, sent, first_byte, total }.  sent is
 * when the request was about to go out, so total - sent is the server's
 * answer time: health uses it, because a stall of the one loop thread
 * (another transfer loading its CA bundle) while this one connects is in
 * total but not in that. */
static void push_timing(lua_State *L, CURL *e)
{
    static const struct {
        const char *name;
        CURLINFO info;
    } phases[] = {{"connect", CURLINFO_CONNECT_TIME_T},
                  {"tls", CURLINFO_APPCONNECT_TIME_T},
                  {"sent", CURLINFO_PRETRANSFER_TIME_T},
                  {"first_byte", CURLINFO_STARTTRANSFER_TIME_T},
                  {"total", CURLINFO_TOTAL_TIME_T}};
    lua_createtable(L, 0, 5);
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
        curl_off_t us = 0; /* curl_easy_getinfo is variadic: the pointer's type must be exact */
        C->easy_getinfo(e, phases[i].info, &us);
        lua_pushnumber(L, (lua_Number)us / 1000.0);
        lua_setfield(L, -2, phases[i].name);
    }
}

/* A failed transfer, its message on top: raised, or with check = false in
 * the request at req (0: none) the result { ok = false, status = 0,
 * error = message }. */
static int transfer_failed(lua_State *L, int req)
{
    if (rb_opt_bool(L, req, "check", 1))
        return lua_error(L);
    lua_createtable(L, 0, 4);
    lua_insert(L, -2);
    lua_setfield(L, -2, "error");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "ok");
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "status");
    set_response_mt(L);
    return 1;
}

static int http_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    http_op *h = (http_op *)ctx;
    const char *method = lua_tostring(L, 2), *url = lua_tostring(L, 3);
    int smtp = strncmp(url, "smtp", 4) == 0;
    const char *what = smtp ? "smtp" : "http";
    if (h->op.error[0] || h->rc != CURLE_OK) {
        const char *cause = h->op.error[0] ? lua_pushstring(L, h->op.error) : transport_error(L, h);
        lua_pushfstring(L, "%s %s %s: %s", what, smtp ? "send" : method, url, cause);
        rb_op_free(&h->op);
        return transfer_failed(L, 1);
    }
    if (h->resp.overflow) {
        lua_pushfstring(L, "%s %s %s: response body over %d MiB", what, method, url,
                        (int)(BODY_LIMIT >> 20));
        rb_op_free(&h->op);
        return lua_error(L);
    }
    double t = 0;
    C->easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &t);
    char *eff = NULL;
    C->easy_getinfo(h->easy, CURLINFO_EFFECTIVE_URL, &eff);
    push_response(L, h->status, smtp || (h->status > 0 && h->status < 400), t, eff ? eff : url,
                  method);
    push_timing(L, h->easy);
    lua_setfield(L, -2, "timing");
    lua_pushlstring(L, h->resp.p ? h->resp.p : "", h->resp.len);
    lua_setfield(L, -2, "body");
    push_headers(L, &h->hdrs);
    lua_setfield(L, -2, "headers");
    rb_op_free(&h->op);
    return 1;
}

/* r:json() */
static int l_response_json(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "decode");
    if (lua_getfield(L, 1, "body") != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_call(L, 1, 1);
    return 1;
}

/* ---- the funnelled functions ------------------------------------------------ */

/* http.request{...}: the table is the request */
static int l_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return l_http_raw(L);
}

/* method(url [, opts | body]) -> request table at 1, then raw */
static int call_method(lua_State *L, const char *method)
{
    const char *url = luaL_checkstring(L, 1);
    lua_createtable(L, 0, 8);
    int req = lua_gettop(L);
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, req);
        }
    } else if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_setfield(L, req, "body");
    }
    lua_pushstring(L, url);
    lua_setfield(L, req, "url");
    lua_pushstring(L, method);
    lua_setfield(L, req, "method");
    lua_replace(L, 1);
    lua_settop(L, 1);
    return l_http_raw(L);
}

#define METHOD(fn, m)                                                                              \
    static int fn(lua_State *L)                                                                    \
    {                                                                                              \
        return call_method(L, m);                                                                  \
    }
METHOD(l_get, "GET")
METHOD(l_head, "HEAD")
METHOD(l_options, "OPTIONS")
METHOD(l_delete, "DELETE")
METHOD(l_post, "POST")
METHOD(l_put, "PUT")
METHOD(l_patch, "PATCH")

/* Request headers whose values are credentials: secrets from the moment
 * the call is described (a dry-run
 * never gets to read_request, yet records the call's arguments). */
static const char *const CREDENTIAL_HEADERS[] = {"authorization", "proxy-authorization", "cookie",
                                                 "x-api-key",     "x-auth-token",        NULL};

static int credential_header(const char *name)
{
    for (int i = 0; CREDENTIAL_HEADERS[i]; i++)
        if (strcasecmp(name, CREDENTIAL_HEADERS[i]) == 0)
            return 1;
    return 0;
}

/* The options' credentials (auth, credential headers) registered as
 * secrets; the "headers" field: the headers with lower-cased names. */
static void describe_headers(lua_State *L, int opts)
{
    int t = lua_getfield(L, opts, "auth");
    if (t == LUA_TTABLE) {
        for (int i = 0; i < 2; i++)
            if (lua_getfield(L, -1 - i, i ? "password" : "bearer") == LUA_TSTRING)
                rb_secret_add(L, lua_tostring(L, -1));
        if (lua_type(L, -1) == LUA_TSTRING) { /* base64(user:password) on the wire */
            lua_getfield(L, -3, "user");
            lua_pushfstring(L, "%s:%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "",
                            lua_tostring(L, -2));
            rb_secret_add(L, lua_tostring(L, -1));
            lua_pop(L, 2);
        }
        lua_pop(L, 2);
    } else if (t == LUA_TSTRING) {
        const char *colon = strchr(lua_tostring(L, -1), ':');
        if (colon && colon[1]) {
            rb_secret_add(L, colon + 1);
            rb_secret_add(L, lua_tostring(L, -1));
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, opts, "headers") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    int h = lua_gettop(L);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {
        const char *k = luaL_tolstring(L, -2, NULL);
        const char *v = luaL_tolstring(L, -2, NULL);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *p = k; *p; p++)
            luaL_addchar(&b, (char)tolower((unsigned char)*p));
        luaL_pushresult(&b);
        if (credential_header(k)) {
            /* "Bearer <token>": the token is the secret, so whatever writes
             * the field (a recording, a scenario's report) writes **** for
             * it, while a mock can still tell one credential from another */
            const char *sp = strcasestr(k, "authorization") ? strchr(v, ' ') : NULL;
            rb_secret_add(L, sp && sp[1] ? sp + 1 : v);
        }
        lua_pushvalue(L, -2);
        lua_settable(L, h + 1);
        lua_pop(L, 3); /* the value and both strings: the key stays for lua_next */
    }
    rb_field_set(L, "headers");
    lua_pop(L, 1);
}

/* words: "POST https://x/y {"a":1}" (the body cut to PREVIEW bytes) */
static void describe_common(lua_State *L, rb_action *a, const char *method, const char *url,
                            int opts)
{
    if (opts && lua_getfield(L, opts, "query") == LUA_TTABLE) {
        lua_pushstring(L, url);
        url = with_query(L, -1, -2);
    }
    rb_action_set(L, a, "verb", "%s", method);
    rb_action_set(L, a, "target", "%s", url);
    rb_field_str(L, "method", method);
    rb_field_str(L, "url", url);
    const char *preview = NULL;
    size_t n = 0;
    if (opts) {
        describe_headers(L, opts);
        if (lua_getfield(L, opts, "json") != LUA_TNIL) {
            lua_pushvalue(L, -1);
            rb_field_set(L, "json");
            lua_getglobal(L, "json");
            lua_getfield(L, -1, "encode");
            lua_pushvalue(L, -3);
            if (lua_pcall(L, 1, 1, 0) == LUA_OK)
                preview = lua_tolstring(L, -1, &n);
        } else if (lua_getfield(L, opts, "body") == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            rb_field_set(L, "body");
            preview = lua_tolstring(L, -1, &n);
        }
    }
    if (preview && n > 0)
        rb_action_set(L, a, "words", "%s %s %s%s", method, url,
                      lua_pushlstring(L, preview, n > PREVIEW ? PREVIEW : n),
                      n > PREVIEW ? "…" : "");
    else
        rb_action_set(L, a, "words", "%s %s", method, url);
    a->cls = (!strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "OPTIONS"))
                 ? RB_READ
                 : RB_MUTATE;
}

static void d_request(lua_State *L, rb_action *a)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *method = upper_method(L, 1);
    if (lua_getfield(L, 1, "url") != LUA_TSTRING)
        luaL_error(L, "http.request: url must be a string");
    const char *url = lua_tostring(L, -1);
    describe_common(L, a, method, url, 1);
    a->opts = 1;
}

static void describe_method(lua_State *L, rb_action *a, const char *method)
{
    const char *url = luaL_checkstring(L, 1);
    int opts = 0;
    if (lua_istable(L, 2)) {
        opts = 2;
    } else if (lua_type(L, 2) == LUA_TSTRING) {
        lua_createtable(L, 0, 1); /* the body, seen as options for the preview */
        lua_pushvalue(L, 2);
        lua_setfield(L, -2, "body");
        opts = lua_gettop(L);
    } else if (!lua_isnoneornil(L, 2)) {
        /* a number passes the signature's str (Lua converts it), but no
         * method sends one: it is an argument in the wrong place */
        char fn[16];
        size_t i = 0;
        for (; method[i] && i < sizeof fn - 1; i++)
            fn[i] = (char)tolower((unsigned char)method[i]);
        fn[i] = '\0';
        luaL_error(L,
                   "http.%s: argument 2 (body) must be a string or an options table, got %s; "
                   "usage: http.%s(url [, body])",
                   fn, luaL_typename(L, 2), fn);
    }
    describe_common(L, a, method, url, opts);
    a->opts = lua_istable(L, 2) ? 2 : 0;
}

#define DESCRIBE(fn, m)                                                                            \
    static void fn(lua_State *L, rb_action *a)                                                     \
    {                                                                                              \
        describe_method(L, a, m);                                                                  \
    }
DESCRIBE(d_get, "GET")
DESCRIBE(d_head, "HEAD")
DESCRIBE(d_options, "OPTIONS")
DESCRIBE(d_delete, "DELETE")
DESCRIBE(d_post, "POST")
DESCRIBE(d_put, "PUT")
DESCRIBE(d_patch, "PATCH")

static int simulate_response(lua_State *L, const rb_action *a)
{
    lua_createtable(L, 0, 8);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "dry_run");
    lua_pushinteger(L, 200);
    lua_setfield(L, -2, "status");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "body");
    lua_newtable(L);
    lua_setfield(L, -2, "headers");
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "time");
    lua_pushstring(L, a->target ? a->target : "");
    lua_setfield(L, -2, "url");
    set_response_mt(L);
    return 1;
}

/* ---- scenarios and recordings --------------------------------------------- */

/* The request table among a call's arguments from index first on:
 * http.request{...}'s, or the options of http.get(url, opts); 0 if none. */
static int request_of(lua_State *L, int first)
{
    for (int i = first; i <= first + 1 && i <= lua_gettop(L); i++)
        if (lua_istable(L, i))
            return i;
    return 0;
}

/* answer(respond, info, args...): a mock's { status, body, json, headers,
 * error } as the response a live call returns: status 200 when not given,
 * the body or the JSON encoded (content-type application/json then), header
 * names lower-cased; respond.error fails as a transfer does. */
static int answer(lua_State *L)
{
    int req = request_of(L, 3);
    lua_getfield(L, 2, "verb");
    lua_getfield(L, 2, "target");
    const char *method = luaL_optstring(L, -2, "GET"), *url = luaL_optstring(L, -1, "");
    if (lua_getfield(L, 1, "error") != LUA_TNIL) {
        lua_pushfstring(L, "http %s %s: %s", method, url, luaL_tolstring(L, -1, NULL));
        return transfer_failed(L, req);
    }
    lua_pop(L, 1);
    int isnum;
    lua_getfield(L, 1, "status");
    lua_Integer status = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum)
        status = 200;
    int res = push_response(L, status, status > 0 && status < 400, 0.0, url, method);
    int has_json = lua_getfield(L, 1, "json") != LUA_TNIL;
    if (lua_getfield(L, 1, "body") != LUA_TSTRING) {
        lua_pop(L, 1);
        if (has_json) {
            lua_getglobal(L, "json");
            lua_getfield(L, -1, "encode");
            lua_pushvalue(L, -3);
            lua_call(L, 1, 1);
            lua_remove(L, -2);
        } else {
            lua_pushliteral(L, "");
        }
    }
    lua_setfield(L, res, "body");
    lua_pop(L, 1); /* json */
    lua_newtable(L);
    if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            const char *k = luaL_tolstring(L, -2, NULL);
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *p = k; *p; p++)
                luaL_addchar(&b, (char)tolower((unsigned char)*p));
            luaL_pushresult(&b);
            lua_pushvalue(L, -3);
            lua_settable(L, res + 1);
            lua_pop(L, 2); /* the key's string and the value */
        }
    }
    lua_pop(L, 1);
    if (has_json && lua_getfield(L, -1, "content-type") == LUA_TNIL) {
        lua_pushliteral(L, "application/json");
        lua_setfield(L, -3, "content-type");
    }
    lua_settop(L, res + 1);
    lua_setfield(L, res, "headers");
    return 1;
}

/* The cause of a failure: the message after "http METHOD URL: " */
static void push_cause(lua_State *L, int info, const char *msg)
{
    lua_getfield(L, info, "verb");
    lua_getfield(L, info, "target");
    const char *head =
        lua_pushfstring(L, "http %s %s: ", luaL_optstring(L, -2, ""), luaL_optstring(L, -1, ""));
    const char *at = strstr(msg, head);
    lua_pushstring(L, at ? at + strlen(head) : msg);
    lua_replace(L, -4);
    lua_pop(L, 2);
}

/* recorded(info, error, response): { status, headers = { content-type },
 * body } or { error = cause } -- what answer() turns back into the same
 * response. */
static int recorded(lua_State *L)
{
    lua_newtable(L);
    int out = lua_gettop(L);
    const char *failure = NULL;
    if (!lua_isnoneornil(L, 2))
        failure = luaL_tolstring(L, 2, NULL);
    else if (lua_istable(L, 3) && lua_getfield(L, 3, "error") == LUA_TSTRING)
        failure = lua_tostring(L, -1); /* check = false: the failure as a result */
    if (failure) {
        push_cause(L, 1, failure);
        lua_setfield(L, out, "error");
        lua_settop(L, out);
        return 1;
    }
    lua_settop(L, out);
    if (!lua_istable(L, 3))
        return 1;
    if (lua_getfield(L, 3, "status") == LUA_TNUMBER)
        lua_setfield(L, out, "status");
    else
        lua_pop(L, 1);
    if (lua_getfield(L, 3, "headers") == LUA_TTABLE &&
        lua_getfield(L, -1, "content-type") == LUA_TSTRING) {
        lua_createtable(L, 0, 1);
        lua_insert(L, -2);
        lua_setfield(L, -2, "content-type");
        lua_setfield(L, out, "headers");
    }
    lua_settop(L, out);
    if (lua_getfield(L, 3, "body") == LUA_TSTRING && lua_rawlen(L, -1) > 0)
        lua_setfield(L, out, "body");
    lua_settop(L, out);
    return 1;
}

void mod_http_open(lua_State *L)
{
    /* what a scenario mock matches and a recording keys on (the mocks of
     * existing scenarios use these names) */
    static const rb_field fields[] = {
        {"method", RB_STR, RB_KEY},
        {"url", RB_STR, RB_KEY},       /* the full URL, query included, as in the words */
        {"headers", RB_MAP, RB_MATCH}, /* credentials registered as secrets */
        {"json", RB_MAP, RB_MATCH},    /* the JSON body */
        {"body", RB_STR, RB_MATCH},    /* a raw body */
        {NULL, 0, 0}};
/* The options read_request and transfer_failed read from the request (a
 * method's opts are copied into it, its method and url set by the call);
 * readonly: the funnel's (a->opts is that table).  The SMTP keys of the
 * raw transfer are notify.email's, not a runbook's. */
#define HTTP_OPTIONS                                                                               \
    "headers query body json auth timeout connect_timeout retries backoff retry_unsafe "           \
    "redirects insecure cacert unix_socket check readonly"
#define HTTP_ROW(n, c, signature, opts)                                                            \
    {                                                                                              \
        .name = #n, .fn = l_##n, .cls = c, .describe = d_##n, .simulate = simulate_response,       \
        .fields = fields, .respond = "status body json headers error", .answer = answer,           \
        .recorded = recorded, .sig = signature, .options = opts                                    \
    }
    /* http.request's one table is both the request and its options */
    static const rb_fn fns[] = {
        HTTP_ROW(request, RB_BY_ARGS, "req:opts", "method url " HTTP_OPTIONS),
        HTTP_ROW(get, RB_READ, "url:str opts?:opts", HTTP_OPTIONS),
        HTTP_ROW(head, RB_READ, "url:str opts?:opts", HTTP_OPTIONS),
        HTTP_ROW(options, RB_READ, "url:str opts?:opts", HTTP_OPTIONS),
        HTTP_ROW(delete, RB_MUTATE, "url:str opts?:opts", HTTP_OPTIONS),
        HTTP_ROW(post, RB_MUTATE, "url:str body?:opts|str", HTTP_OPTIONS),
        HTTP_ROW(put, RB_MUTATE, "url:str body?:opts|str", HTTP_OPTIONS),
        HTTP_ROW(patch, RB_MUTATE, "url:str body?:opts|str", HTTP_OPTIONS),
        {.name = NULL}};
#undef HTTP_ROW
#undef HTTP_OPTIONS
    rb_register(L, "http", fns);
    /* responses: r:json(), a method with a signature like every function */
    static const rb_fn response_fns[] = {
        {.name = "json", .fn = l_response_json, .cls = RB_PURE, .sig = ""}, {.name = NULL}};
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 1);
    rb_register_at(L, -1, "http.response", response_fns);
    lua_setfield(L, -2, "__index");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.http_response");
    /* http.get_all: the Lua half (src/primitives/http.lua) */
    if (lua_getglobal(L, "http") == LUA_TTABLE) {
        rb_push_lua(L, "http", "http_get_all");
        lua_setfield(L, -2, "get_all");
    }
    lua_pop(L, 1);
}

void mod_http_close(void)
{
    if (multi)
        C->multi_cleanup(multi);
    multi = NULL;
    rb_curl_unload();
}
