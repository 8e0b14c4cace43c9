/*
 * The docker module: the Docker Engine API spoken directly over its socket
 * (SPEC §3, §4), never by parsing `docker` CLI text.
 *
 *   reads   ps{ all, filters }, inspect(name), logs(name, { tail, since,
 *           until, timestamps }), stats(name), version(), info(), images()
 *   writes  restart/start/stop(name, { timeout }), kill(name, { signal }),
 *           update(name, { memory = "2g", cpus = 1.0, ... }),
 *           rm(name, { force, volumes }), prune{ containers, images, volumes }
 *   compose docker.compose(file [, { project }]) -> an object:
 *           :ps{ all = true, service } and :restart(service, { timeout })
 *           by the Engine API and the compose labels
 *           (com.docker.compose.project/service), as docker actions
 *           (`docker compose restart calendar-api`, mutate); :pull{ services },
 *           :up{ detach = true, services, no_deps, build, force_recreate, wait },
 *           :stop{ services, stop_timeout }, :down{ volumes, remove_orphans },
 *           :logs(service, { tail, since }) are the docker action
 *           `docker compose -f FILE [-p PROJECT] ...` (logs reads, the rest
 *           mutate), performed by the Compose CLI the host has: the docker
 *           CLI's compose plugin, else docker-compose (Debian ships 1.29).
 *           The project is { project }, else COMPOSE_PROJECT_NAME,
 *           else the file's top-level `name:`, else its directory's name,
 *           normalised as docker compose does; `-p` is passed to the CLI
 *           only when the project was given.
 *
 * The daemon is found as DOCKER_HOST (unix:///path or tcp://host:port), else
 * runbook.yaml `docker: { host: ... }` (the --env environment first), else
 * unix:///var/run/docker.sock.  The API version is negotiated once per host
 * with GET /_ping (its Api-Version header; /version as a fallback), capped at
 * the newest version this module was written against, and every request is
 * then sent to /v<version>/....
 *
 * The requests go out through http's raw effect (rb_push_raw), the
 * un-funnelled transfer with `unix_socket`: the funnel has already described,
 * classified, confirmed and will record the docker action, so the HTTP
 * requests under it are not actions of their own.  The C part is the rb_fn
 * rows and their describe hooks (verb, target, the operator's words
 * `docker update calendar-api --memory 2g --cpus 1`, and the fields a mock
 * matches: verb, name, signal, memory, cpus, prune's kinds, compose's
 * project and service); the request building and the decoding (the
 * 8-byte-header multiplexed log stream, the CPU and memory figures of
 * `docker stats --no-stream`), the compose object, and what a scenario mock
 * or a recording makes of a call live in src/primitives/docker.lua, loaded
 * the first time it is needed, handed the transfer and json.encode/decode
 * taken when the module opened so a runbook cannot shadow them.  The client
 * yields inside the transfer; the C entry calls it with lua_pcallk and a
 * continuation.
 *
 * Errors name the action and quote the daemon (`docker restart calendar-api:
 * no such container: calendar-api`, after noting the response for the audit
 * record); a daemon that cannot be reached gives one line: `cannot reach
 * Docker at unix:///var/run/docker.sock: <cause>`.
 */
#include "runbook/host.h"
#include "runbook/runbook.h"

#include <ctype.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMPL_KEY     "runbook.docker.impl"
#define DEFAULT_HOST "unix:///var/run/docker.sock"

/* ---- describe ------------------------------------------------------------ */

enum verb {
    V_PS,
    V_INSPECT,
    V_LOGS,
    V_STATS,
    V_VERSION,
    V_INFO,
    V_IMAGES,
    V_RESTART,
    V_START,
    V_STOP,
    V_KILL,
    V_UPDATE,
    V_RM,
    V_PRUNE,
    V_COMPOSE_PS,
    V_COMPOSE_RESTART,
    V_COMPOSE_CLI
};
static const char *const VERB[] = {
    "ps",         "inspect",         "logs",       "stats", "version", "info", "images",
    "restart",    "start",           "stop",       "kill",  "update",  "rm",   "prune",
    "compose_ps", "compose_restart", "compose_cli"};

/* verbs whose first argument is a container */
static int takes_name(int v)
{
    return v == V_INSPECT || v == V_LOGS || v == V_STATS || (v >= V_RESTART && v <= V_RM);
}

/* The options table at idx (nil/none allowed): its index, or 0. */
static int opts_at(lua_State *L, int idx, int v)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNONE || t == LUA_TNIL)
        return 0;
    if (t != LUA_TTABLE)
        luaL_argerror(L, idx, lua_pushfstring(L, "docker.%s: options must be a table", VERB[v]));
    return idx;
}

/* A number or a string option shown as `--flag value`; pushes the piece
 * and returns 1, or 0 when absent. */
static int flag_piece(lua_State *L, int opts, const char *key, const char *flag, int v)
{
    if (!opts)
        return 0;
    int t = lua_getfield(L, opts, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t == LUA_TNUMBER) {
        char num[64];
        snprintf(num, sizeof num, "%.15g", (double)lua_tonumber(L, -1));
        lua_pop(L, 1);
        lua_pushfstring(L, " %s %s", flag, num);
        return 1;
    }
    if (t == LUA_TSTRING) {
        luaL_Buffer b;
        const char *s = lua_tostring(L, -1);
        luaL_buffinit(L, &b);
        luaL_addchar(&b, ' ');
        luaL_addstring(&b, flag);
        luaL_addchar(&b, ' ');
        rb_quote_arg(&b, s);
        luaL_pushresult(&b);
        lua_remove(L, -2);
        return 1;
    }
    return luaL_error(L, "docker.%s: '%s' must be a number or a string, got %s", VERB[v], key,
                      luaL_typename(L, -1));
}

/* The fields every docker row may set: what a scenario mock matches and a
 * recording writes.  name is the container (for `compose restart` the
 * service, as scenarios have always named it). */
static const rb_field FIELDS[] = {
    {"verb", RB_STR, RB_KEY},          {"name", RB_STR, RB_KEY},
    {"signal", RB_STR, RB_MATCH},      /* kill */
    {"memory", RB_STR, RB_MATCH},      /* update: as given, "2g" */
    {"cpus", RB_NUM, RB_MATCH},        /* update */
    {"containers", RB_BOOL, RB_MATCH}, /* prune: what it prunes */
    {"images", RB_BOOL, RB_MATCH},     {"volumes", RB_BOOL, RB_MATCH},
    {"force", RB_BOOL, RB_MATCH},  /* rm */
    {"project", RB_STR, RB_MATCH}, /* compose */
    {"service", RB_STR, RB_MATCH},     {"file", RB_STR, RB_MATCH},
    {"services", RB_SET, RB_MATCH},    {NULL, RB_STR, 0},
};

/* Field `field` from opts[key] as text (a number or a string), if given. */
static void field_text(lua_State *L, int opts, const char *key, const char *field)
{
    if (!opts)
        return;
    int t = lua_getfield(L, opts, key);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_tostring(L, -1); /* a copy on the stack: converting it is harmless */
        rb_field_set(L, field);
        return;
    }
    lua_pop(L, 1);
}

/* The fields of a container verb; opts is 0 or the options' index. */
static void set_fields(lua_State *L, int v, const char *name, int opts)
{
    rb_field_str(L, "verb", VERB[v]);
    rb_field_str(L, "name", name);
    if (v == V_KILL)
        field_text(L, opts, "signal", "signal");
    if (v == V_UPDATE) {
        field_text(L, opts, "memory", "memory");
        int isnum = 0;
        if (opts && lua_getfield(L, opts, "cpus") != LUA_TNIL) {
            lua_Number cpus = lua_tonumberx(L, -1, &isnum);
            lua_pop(L, 1);
            lua_pushnumber(L, cpus);
            if (isnum)
                rb_field_set(L, "cpus");
            else
                lua_pop(L, 1); /* not a number: the call itself says so */
        } else if (opts) {
            lua_pop(L, 1);
        }
    }
    if (v == V_PRUNE) {
        static const char *const kinds[] = {"containers", "images", "volumes"};
        for (int i = 0; i < 3; i++) {
            lua_pushboolean(L, rb_opt_bool(L, opts, kinds[i], 0));
            rb_field_set(L, kinds[i]);
        }
    }
    if (v == V_RM) {
        lua_pushboolean(L, rb_opt_bool(L, opts, "force", 0));
        rb_field_set(L, "force");
    }
}

static void describe(lua_State *L, rb_action *a, int v)
{
    int top = lua_gettop(L);
    int opts;
    const char *name = NULL;
    if (takes_name(v)) {
        name = luaL_checkstring(L, 1);
        if (!*name)
            luaL_argerror(L, 1, "docker: the container name is empty");
        opts = opts_at(L, 2, v);
    } else {
        opts = opts_at(L, 1, v);
    }
    int n = 1;
    lua_pushfstring(L, "docker %s", VERB[v]);
    if (name) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, ' ');
        rb_quote_arg(&b, name);
        luaL_pushresult(&b);
        n++;
    }
    switch (v) {
    case V_PS:
    case V_IMAGES:
        if (rb_opt_bool(L, opts, "all", 0)) {
            lua_pushliteral(L, " --all");
            n++;
        }
        if (opts && lua_getfield(L, opts, "filters") == LUA_TTABLE) {
            lua_pop(L, 1);
            lua_pushliteral(L, " --filter ...");
            n++;
        } else if (opts) {
            lua_pop(L, 1);
        }
        break;
    case V_LOGS:
        n += flag_piece(L, opts, "tail", "--tail", v);
        n += flag_piece(L, opts, "since", "--since", v);
        n += flag_piece(L, opts, "until", "--until", v);
        if (rb_opt_bool(L, opts, "timestamps", 0)) {
            lua_pushliteral(L, " --timestamps");
            n++;
        }
        break;
    case V_STATS:
        lua_pushliteral(L, " --no-stream");
        n++;
        break;
    case V_RESTART:
    case V_STOP:
        n += flag_piece(L, opts, "timeout", "--time", v);
        break;
    case V_KILL:
        n += flag_piece(L, opts, "signal", "--signal", v);
        break;
    case V_RM:
        if (rb_opt_bool(L, opts, "force", 0)) {
            lua_pushliteral(L, " --force");
            n++;
        }
        if (rb_opt_bool(L, opts, "volumes", 0)) {
            lua_pushliteral(L, " --volumes");
            n++;
        }
        break;
    case V_UPDATE:
        n += flag_piece(L, opts, "memory", "--memory", v);
        n += flag_piece(L, opts, "memory_swap", "--memory-swap", v);
        n += flag_piece(L, opts, "memory_reservation", "--memory-reservation", v);
        n += flag_piece(L, opts, "cpus", "--cpus", v);
        n += flag_piece(L, opts, "cpu_shares", "--cpu-shares", v);
        n += flag_piece(L, opts, "pids_limit", "--pids-limit", v);
        n += flag_piece(L, opts, "restart", "--restart", v);
        break;
    case V_PRUNE: {
        static const char *const kinds[] = {"containers", "images", "volumes"};
        int any = 0;
        for (int i = 0; i < 3; i++) {
            if (opts && lua_getfield(L, opts, kinds[i]) != LUA_TNIL && lua_toboolean(L, -1)) {
                lua_pop(L, 1);
                lua_pushfstring(L, " %s", kinds[i]);
                n++;
                any = 1;
            } else if (opts) {
                lua_pop(L, 1);
            }
        }
        if (!any)
            luaL_argerror(L, 1,
                          "docker.prune: say what to prune: { containers = true, images = true, "
                          "volumes = true }");
        break;
    }
    default:
        break;
    }
    lua_concat(L, n);
    rb_action_set(L, a, "verb", "%s", VERB[v]);
    rb_action_set(L, a, "target", "%s", name ? name : "docker");
    rb_action_set(L, a, "words", "%s", lua_tostring(L, -1));
    a->cls = v >= V_RESTART && v <= V_PRUNE ? RB_MUTATE : RB_READ;
    a->opts = opts;
    set_fields(L, v, name, opts);
    lua_settop(L, top);
}

/* The hidden compose rows: (project, opts) for ps, (project, service, opts)
 * for restart; the words are the `docker compose` command an operator would
 * type in the project's directory. */
static void describe_compose(lua_State *L, rb_action *a, int v)
{
    int top = lua_gettop(L);
    const char *project = luaL_checkstring(L, 1);
    const char *service = NULL;
    int opts;
    luaL_Buffer b;
    if (v == V_COMPOSE_RESTART) {
        service = luaL_checkstring(L, 2);
        if (!*service)
            luaL_argerror(L, 2, "docker compose restart: the service name is empty");
        opts = opts_at(L, 3, v);
    } else {
        opts = opts_at(L, 2, v);
    }
    int n = 1;
    lua_pushstring(L, v == V_COMPOSE_PS ? "docker compose ps" : "docker compose restart");
    if (v == V_COMPOSE_PS) {
        if (rb_opt_bool(L, opts, "all", 1)) {
            lua_pushliteral(L, " --all");
            n++;
        }
        if (opts && lua_getfield(L, opts, "service") == LUA_TSTRING) {
            const char *svc = lua_tostring(L, -1);
            luaL_buffinit(L, &b);
            luaL_addchar(&b, ' ');
            rb_quote_arg(&b, svc);
            luaL_pushresult(&b);
            lua_remove(L, -2);
            n++;
        } else if (opts) {
            lua_pop(L, 1);
        }
    } else {
        n += flag_piece(L, opts, "timeout", "--timeout", v);
        luaL_buffinit(L, &b);
        luaL_addchar(&b, ' ');
        rb_quote_arg(&b, service);
        luaL_pushresult(&b);
        n++;
    }
    lua_concat(L, n);
    rb_action_set(L, a, "verb", "%s", v == V_COMPOSE_PS ? "compose ps" : "compose restart");
    rb_action_set(L, a, "target", "%s", service ? service : project);
    rb_action_set(L, a, "words", "%s", lua_tostring(L, -1));
    a->cls = v == V_COMPOSE_RESTART ? RB_MUTATE : RB_READ;
    a->opts = opts;
    rb_field_str(L, "verb", v == V_COMPOSE_PS ? "compose ps" : "compose restart");
    rb_field_str(L, "project", project);
    rb_field_str(L, "name", service);
    if (service)
        rb_field_str(L, "service", service);
    else
        field_text(L, opts, "service", "service");
    lua_settop(L, top);
}

#define DESCRIBE(fn, v)                                                                            \
    static void fn(lua_State *L, rb_action *a)                                                     \
    {                                                                                              \
        describe(L, a, v);                                                                         \
    }
DESCRIBE(d_ps, V_PS)
DESCRIBE(d_inspect, V_INSPECT)
DESCRIBE(d_logs, V_LOGS)
DESCRIBE(d_stats, V_STATS)
DESCRIBE(d_version, V_VERSION)
DESCRIBE(d_info, V_INFO)
DESCRIBE(d_images, V_IMAGES)
DESCRIBE(d_restart, V_RESTART)
DESCRIBE(d_start, V_START)
DESCRIBE(d_stop, V_STOP)
DESCRIBE(d_kill, V_KILL)
DESCRIBE(d_update, V_UPDATE)
DESCRIBE(d_rm, V_RM)
DESCRIBE(d_prune, V_PRUNE)

static void d_compose_ps(lua_State *L, rb_action *a)
{
    describe_compose(L, a, V_COMPOSE_PS);
}
static void d_compose_restart(lua_State *L, rb_action *a)
{
    describe_compose(L, a, V_COMPOSE_RESTART);
}

/* ---- compose verbs through the Compose CLI --------------------------------
 * pull, up, down, stop and logs need the compose file read and acted on, the
 * Compose CLI's work: the hidden row compose_cli(spec, opts), spec = { file,
 * project, explicit, verb, args, services } built by docker.lua.  Its words
 * are the logical `docker compose -f FILE [-p P] VERB ARGS...` whichever
 * Compose the host has, so a scenario mock, a plan and an audit record mean
 * the same on a host with the docker CLI's compose plugin and on one with
 * Debian's docker-compose 1.29; which program runs is found only when the
 * action is performed (push_compose_argv). */

static const char *spec_string(lua_State *L, int spec, const char *key)
{
    lua_getfield(L, spec, key);
    const char *s = lua_tostring(L, -1);
    if (!s)
        luaL_error(L, "internal: docker.compose call without %s", key);
    return s; /* left on the stack */
}

static int spec_explicit(lua_State *L, int spec)
{
    int t = lua_getfield(L, spec, "explicit");
    int yes = t == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* Push the words of a compose_cli call; returns them. */
static const char *push_cli_words(lua_State *L, int spec)
{
    int top = lua_gettop(L);
    const char *file = spec_string(L, spec, "file");
    const char *project = spec_string(L, spec, "project");
    const char *verb = spec_string(L, spec, "verb");
    int explicit = spec_explicit(L, spec);
    int args = lua_getfield(L, spec, "args") == LUA_TTABLE ? lua_gettop(L) : 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "docker compose -f ");
    rb_quote_arg(&b, file);
    if (explicit) {
        luaL_addstring(&b, " -p ");
        rb_quote_arg(&b, project);
    }
    luaL_addchar(&b, ' ');
    luaL_addstring(&b, verb);
    for (lua_Integer i = 1; args; i++) {
        int t = lua_rawgeti(L, args, i);
        if (t == LUA_TSTRING) {
            luaL_addchar(&b, ' ');
            rb_quote_arg(&b, lua_tostring(L, -1));
        }
        lua_pop(L, 1); /* balanced between buffer calls */
        if (t != LUA_TSTRING)
            break;
    }
    luaL_pushresult(&b);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return lua_tostring(L, -1);
}

/* The verbs that only look (everything else changes the project). */
static int cli_reads(const char *verb)
{
    static const char *const READS[] = {"logs", "ps", "config", "images", "top", NULL};
    for (int i = 0; READS[i]; i++)
        if (strcmp(verb, READS[i]) == 0)
            return 1;
    return 0;
}

static void d_compose_cli(lua_State *L, rb_action *a)
{
    int top = lua_gettop(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    int opts = opts_at(L, 2, V_COMPOSE_CLI);
    const char *words = push_cli_words(L, 1);
    const char *verb = spec_string(L, 1, "verb");
    const char *project = spec_string(L, 1, "project");
    rb_action_set(L, a, "verb", "compose %s", verb);
    rb_action_set(L, a, "target", "%s", project);
    rb_action_set(L, a, "words", "%s", words);
    a->cls = cli_reads(verb) ? RB_READ : RB_MUTATE;
    a->opts = opts;
    lua_pushfstring(L, "compose %s", verb);
    rb_field_set(L, "verb");
    rb_field_str(L, "name", project);
    rb_field_str(L, "project", project);
    rb_field_str(L, "file", spec_string(L, 1, "file"));
    if (lua_getfield(L, 1, "services") == LUA_TTABLE)
        rb_field_set(L, "services");
    lua_settop(L, top);
}

/* ---- the call ------------------------------------------------------------ */

/* Push the daemon's address: DOCKER_HOST, runbook.yaml docker.host (the
 * --env environment's section first), the default socket. */
static void push_host(lua_State *L)
{
    const char *h = getenv("DOCKER_HOST");
    if (h && *h) {
        lua_pushstring(L, h);
        return;
    }
    int t = rb_config_get(L, "docker", "host");
    if (t == LUA_TSTRING)
        return;
    if (t != LUA_TNIL)
        luaL_error(L,
                   "runbook.yaml: docker.host must be a string (unix:///path or "
                   "tcp://host:port), got %s",
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    lua_pushliteral(L, DEFAULT_HOST);
}

static int docker_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    if (status != LUA_OK && status != LUA_YIELD)
        return lua_error(L);
    return 1;
}

static int push_impl(lua_State *L);

static int docker_call(lua_State *L, int v)
{
    lua_settop(L, 3);
    push_impl(L);
    lua_pushstring(L, VERB[v]);
    push_host(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    int st = lua_pcallk(L, 5, 1, 0, 0, docker_k);
    return docker_k(L, st, 0);
}

#define CALL(fn, v)                                                                                \
    static int fn(lua_State *L)                                                                    \
    {                                                                                              \
        return docker_call(L, v);                                                                  \
    }
CALL(l_ps, V_PS)
CALL(l_inspect, V_INSPECT)
CALL(l_logs, V_LOGS)
CALL(l_stats, V_STATS)
CALL(l_version, V_VERSION)
CALL(l_info, V_INFO)
CALL(l_images, V_IMAGES)
CALL(l_restart, V_RESTART)
CALL(l_start, V_START)
CALL(l_stop, V_STOP)
CALL(l_kill, V_KILL)
CALL(l_update, V_UPDATE)
CALL(l_rm, V_RM)
CALL(l_prune, V_PRUNE)
CALL(l_compose_ps, V_COMPOSE_PS)
CALL(l_compose_restart, V_COMPOSE_RESTART)

/* A program PATH finds (as posix_spawnp would), or 0. */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *colon = strchr(p, ':');
        int n = colon ? (int)(colon - p) : (int)strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", n ? n : 1, n ? p : ".", prog);
        if (access(buf, X_OK) == 0)
            return 1;
        if (!colon)
            return 0;
        p = colon + 1;
    }
}

/* 1 when the docker CLI has its compose plugin, looked for where the docker
 * CLI looks (its documented plugin directories). */
static int compose_plugin(void)
{
    char buf[PATH_MAX];
    const char *cfg = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
    if (cfg && *cfg)
        snprintf(buf, sizeof buf, "%s/cli-plugins/docker-compose", cfg);
    else
        snprintf(buf, sizeof buf, "%s/.docker/cli-plugins/docker-compose", home ? home : "");
    if (access(buf, X_OK) == 0)
        return 1;
    static const char *const DIRS[] = {"/usr/local/lib", "/usr/local/libexec", "/usr/lib",
                                       "/usr/libexec", NULL};
    for (int i = 0; DIRS[i]; i++) {
        snprintf(buf, sizeof buf, "%s/docker/cli-plugins/docker-compose", DIRS[i]);
        if (access(buf, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* Push the argv that performs a compose_cli call (spec at 1): the docker
 * CLI's plugin (`docker compose`) when it has one, else `docker-compose` on
 * PATH -- Compose v2 standalone, or Debian's docker-compose 1.29, which
 * takes the same -f, -p and verbs for what docker.compose asks. */
static void push_compose_argv(lua_State *L, const char *words)
{
    int top = lua_gettop(L);
    lua_newtable(L);
    int argv = top + 1, n = 0;
    if (compose_plugin() && on_path("docker")) {
        lua_pushliteral(L, "docker");
        lua_rawseti(L, argv, ++n);
        lua_pushliteral(L, "compose");
        lua_rawseti(L, argv, ++n);
    } else if (on_path("docker-compose")) {
        lua_pushliteral(L, "docker-compose");
        lua_rawseti(L, argv, ++n);
    } else {
        luaL_error(L,
                   "%s: Compose is not installed: neither the docker CLI's compose plugin nor "
                   "docker-compose on PATH (on Debian: apt install docker-compose)",
                   words);
    }
    lua_pushliteral(L, "-f");
    lua_rawseti(L, argv, ++n);
    spec_string(L, 1, "file");
    lua_rawseti(L, argv, ++n);
    if (spec_explicit(L, 1)) {
        lua_pushliteral(L, "-p");
        lua_rawseti(L, argv, ++n);
        spec_string(L, 1, "project");
        lua_rawseti(L, argv, ++n);
    }
    spec_string(L, 1, "verb");
    lua_rawseti(L, argv, ++n);
    if (lua_getfield(L, 1, "args") == LUA_TTABLE)
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++)
            lua_rawseti(L, argv, ++n);
    lua_settop(L, argv);
}

/* stack: 1 spec, 2 opts, 3 words, then the process's result */
static int cli_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    if (status != LUA_OK && status != LUA_YIELD)
        return lua_error(L);
    int res = lua_gettop(L);
    lua_getfield(L, res, "code");
    int failed = lua_tointeger(L, -1) != 0;
    lua_pop(L, 1);
    if (failed && rb_opt_bool(L, lua_istable(L, 2) ? 2 : 0, "check", 1))
        return rb_raise_exit(L, lua_tostring(L, 3), res);
    lua_settop(L, res);
    return 1;
}

/* Performed through exec's raw effect: the funnel has described,
 * classified, confirmed and will record the compose action. */
static int l_compose_cli(lua_State *L)
{
    lua_settop(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *words = push_cli_words(L, 1); /* 3 */
    rb_push_raw(L, "exec", "exec");           /* 4 */
    push_compose_argv(L, words);              /* 5 */
    lua_createtable(L, 0, 3);                 /* 6: exec's options */
    lua_pushboolean(L, 0);
    lua_setfield(L, 6, "check");
    if (lua_istable(L, 2) && lua_getfield(L, 2, "timeout") != LUA_TNIL)
        lua_setfield(L, 6, "timeout");
    else
        lua_settop(L, 6);
    /* the engine runbook.yaml names, for the CLI as for the API */
    const char *env_host = getenv("DOCKER_HOST");
    if (!(env_host && *env_host)) {
        lua_createtable(L, 0, 1);
        push_host(L);
        lua_setfield(L, -2, "DOCKER_HOST");
        lua_setfield(L, 6, "env");
    }
    int st = lua_pcallk(L, 2, 1, 0, 0, cli_k);
    return cli_k(L, st, 0);
}

/* note(response): keep a failed answer for the audit record */
static int l_note(lua_State *L)
{
    rb_note_result(L, 1);
    return 0;
}

/* ---- docker.compose(file [, { project }]) -------------------------------- */

#define COMPOSE_KEY "runbook.docker.compose"

/* Push name the way docker compose normalises a project name: lower case,
 * only [a-z0-9_-], no leading '_' or '-'. */
static void push_project_name(lua_State *L, const char *name, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        int c = tolower((unsigned char)name[i]);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            ((c == '_' || c == '-') && luaL_bufflen(&b) > 0))
            luaL_addchar(&b, (char)c);
    }
    luaL_pushresult(&b);
}

/* A top-level `name:` in the compose file, or 0. */
static int push_file_name(lua_State *L, const char *file)
{
    FILE *f = fopen(file, "r");
    char line[512];
    int found = 0;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, "name:", 5) != 0)
            continue;
        char *v = line + 5;
        v += strspn(v, " \t\"'");
        size_t n = strcspn(v, " \t\r\n\"'#");
        if (n > 0) {
            push_project_name(L, v, n);
            found = lua_rawlen(L, -1) > 0;
            if (!found)
                lua_pop(L, 1);
        }
    }
    fclose(f);
    return found;
}

/* The project docker compose would use for file: COMPOSE_PROJECT_NAME, the
 * file's top-level `name:`, else the name of the directory holding it. */
static void push_default_project(lua_State *L, const char *file)
{
    const char *env = getenv("COMPOSE_PROJECT_NAME");
    if (env && *env) {
        push_project_name(L, env, strlen(env));
        return;
    }
    if (push_file_name(L, file))
        return;
    const char *slash = strrchr(file, '/');
    char dir[PATH_MAX], real[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == file)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
    /* a directory that does not exist (yet) is named from the path */
    const char *d = realpath(dir, real) ? real : dir;
    size_t len = strlen(d);
    while (len > 1 && d[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && d[start - 1] != '/')
        start--;
    push_project_name(L, d + start, len - start);
}

static int l_compose(lua_State *L)
{
    const char *file = luaL_checkstring(L, 1);
    if (!*file)
        luaL_argerror(L, 1, "docker.compose: the compose file is empty");
    int t = lua_type(L, 2);
    if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TTABLE)
        luaL_argerror(L, 2, "docker.compose: options must be a table");
    const char *project = t == LUA_TTABLE ? rb_opt_string(L, 2, "project") : NULL;
    if (project && !*project)
        luaL_argerror(L, 2, "docker.compose: the project name is empty");
    if (lua_getfield(L, LUA_REGISTRYINDEX, COMPOSE_KEY) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        rb_push_lua(L, "docker", "docker_compose");
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.compose_ps");
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.compose_restart");
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.compose_cli");
        lua_call(L, 3, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, COMPOSE_KEY);
    }
    lua_pushvalue(L, 1);
    if (project)
        lua_pushstring(L, project);
    else
        push_default_project(L, file);
    if (lua_rawlen(L, -1) == 0)
        return luaL_error(L,
                          "docker.compose: cannot tell the project name of %s (give { "
                          "project = ... })",
                          file);
    lua_pushboolean(L, project != NULL);
    lua_call(L, 3, 1);
    return 1;
}

/* Push json[field] captured now, or a function raising that it is missing. */
static void push_json(lua_State *L, const char *field)
{
    if (lua_getglobal(L, "json") == LUA_TTABLE && lua_getfield(L, -1, field) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        return;
    }
    luaL_error(L, "docker: json.%s is not available", field);
}

/* ---- scenarios and recordings ----------------------------------------------
 * docker.lua says what a mock's respond makes of a call and what a recording
 * writes; these hand it the arguments as they come. */

static int call_lua(lua_State *L, const char *fn)
{
    rb_push_lua(L, "docker", fn);
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_answer(lua_State *L)
{
    return call_lua(L, "docker_answer");
}

static int l_recorded(lua_State *L)
{
    return call_lua(L, "docker_recorded");
}

/* What a mock may answer with: json (the result), result (a text), error,
 * and the fields of the result a live call returns. */
#define R_DATA "json result error"
#define R_LIFE R_DATA " ok name status changed"
#define R_STATS                                                                                    \
    R_DATA " name cpu_percent memory_usage memory_limit memory_percent net_rx net_tx block_read "  \
           "block_write pids online_cpus"

void mod_docker_open(lua_State *L)
{
    /* .options: what docker.lua reads of each call's table, and readonly,
     * which the funnel honours (describe points a->opts at it) */
#define ROW(n, c, r, s, o)                                                                         \
    {                                                                                              \
        .name = #n, .fn = l_##n, .cls = c, .describe = d_##n, .fields = FIELDS, .respond = r,      \
        .answer = l_answer, .recorded = l_recorded, .sig = s, .options = o                         \
    }
#define NAMED "name:str opts?:opts"
    static const rb_fn fns[] = {
        ROW(ps, RB_READ, R_DATA, "opts?:opts", "all filters limit readonly"),
        ROW(inspect, RB_READ, R_DATA, NAMED, "readonly"),
        ROW(logs, RB_READ, R_DATA " stdout stderr name", NAMED,
            "tail since until timestamps readonly"),
        ROW(stats, RB_READ, R_STATS, NAMED, "readonly"),
        ROW(version, RB_READ, R_DATA, "opts?:opts", "readonly"),
        ROW(info, RB_READ, R_DATA, "opts?:opts", "readonly"),
        ROW(images, RB_READ, R_DATA, "opts?:opts", "all filters readonly"),
        ROW(restart, RB_MUTATE, R_LIFE, NAMED, "timeout readonly"),
        ROW(start, RB_MUTATE, R_LIFE, NAMED, "readonly"),
        ROW(stop, RB_MUTATE, R_LIFE, NAMED, "timeout readonly"),
        ROW(kill, RB_MUTATE, R_LIFE, NAMED, "signal readonly"),
        ROW(update, RB_MUTATE, R_DATA " ok name status warnings", NAMED,
            "memory memory_swap memory_reservation cpus cpu_shares pids_limit restart readonly"),
        ROW(rm, RB_MUTATE, R_DATA " ok name status", NAMED, "force volumes readonly"),
        ROW(prune, RB_MUTATE, R_DATA " ok space_reclaimed containers images volumes", "opts?:opts",
            "containers images volumes readonly"),
        {.name = "compose",
         .fn = l_compose,
         .cls = RB_PURE,
         .sig = "file:str opts?:opts",
         .options = "project"},
        {.name = NULL},
    };
    /* the compose object's API verbs: funnelled docker actions, kept out of
     * the docker table (they are reached through docker.compose(...), whose
     * methods check the runbook's call first, under their own names) */
    static const char *const hidden_names[] = {"compose_ps", "compose_restart", "compose_cli"};
    static const rb_fn hidden[] = {
        ROW(compose_ps, RB_READ, R_DATA, "project:str opts?:opts", "all service readonly"),
        ROW(compose_restart, RB_MUTATE, R_DATA " ok project service containers",
            "project:str service:str opts?:opts", "timeout readonly"),
        /* a process's result, like exec's: the CLI's code, stdout, stderr */
        {.name = "compose_cli",
         .fn = l_compose_cli,
         .cls = RB_BY_ARGS,
         .describe = d_compose_cli,
         .fields = FIELDS,
         .respond = "code stdout stderr error",
         .answer = rb_process_answer,
         .recorded = rb_process_recorded,
         .simulate = rb_process_simulated,
         .sig = "spec:table opts?:opts",
         .options = "timeout check readonly"},
        {.name = NULL},
    };
#undef NAMED
#undef ROW
    rb_register(L, "docker", fns);
    rb_register(L, "docker", hidden);
    lua_getglobal(L, "docker");
    for (int i = 0; i < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "runbook.docker.%s", hidden_names[i]);
        lua_getfield(L, -1, hidden_names[i]);
        lua_setfield(L, LUA_REGISTRYINDEX, key);
        lua_pushnil(L);
        lua_setfield(L, -2, hidden_names[i]);
    }
    lua_pop(L, 1);
    /* the json functions are taken now, before a runbook could shadow them;
     * the client itself is compiled on first use (start-up stays cheap) */
    push_json(L, "encode");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.docker.encode");
    push_json(L, "decode");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.docker.decode");
}

/* Push the client: rt.docker_client of docker.lua, set up the first time on
 * http's raw transfer and the json functions taken at open. */
static int push_impl(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, IMPL_KEY) == LUA_TFUNCTION)
        return 1;
    lua_pop(L, 1);
    rb_push_lua(L, "docker", "docker_client");
    rb_push_raw(L, "http", "request");
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.encode");
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.decode");
    lua_pushcfunction(L, l_note);
    lua_call(L, 4, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, IMPL_KEY);
    return 1;
}
