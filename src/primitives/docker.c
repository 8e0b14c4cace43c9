/*
 * The docker module: the Docker Engine API spoken directly over its socket
 * (SPEC §3, §4), never by parsing `docker` CLI text.
 *
 *   reads   ps{ all, filters }, inspect(name), logs(name, { tail, since,
 *           until, timestamps }), stats(name), version(), info(), images()
 *   writes  restart/start/stop(name, { timeout }), kill(name, { signal }),
 *           update(name, { memory = "2g", cpus = 1.0, ... }),
 *           prune{ containers, images, volumes }
 *   compose docker.compose(file [, { project }]) -> an object:
 *           :ps{ all = true, service } and :restart(service, { timeout })
 *           by the Engine API and the compose labels
 *           (com.docker.compose.project/service), as docker actions
 *           (`docker compose restart calendar-api`, mutate); :pull{ services },
 *           :up{ detach = true, services, no_deps, build, force_recreate, wait },
 *           :down{ volumes, remove_orphans }, :logs(service, { tail, since })
 *           run `docker compose -f FILE [-p PROJECT] ...` through the global
 *           (funnelled) exec, so they are exec actions classified by exec's
 *           allowlist.  The project is { project }, else COMPOSE_PROJECT_NAME,
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
    V_PRUNE,
    V_COMPOSE_PS,
    V_COMPOSE_RESTART
};
static const char *const VERB[] = {"ps",   "inspect", "logs",    "stats",      "version",
                                   "info", "images",  "restart", "start",      "stop",
                                   "kill", "update",  "prune",   "compose_ps", "compose_restart"};

/* verbs whose first argument is a container */
static int takes_name(int v)
{
    return v == V_INSPECT || v == V_LOGS || v == V_STATS || (v >= V_RESTART && v <= V_UPDATE);
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
    {"project", RB_STR, RB_MATCH}, /* compose */
    {"service", RB_STR, RB_MATCH},     {NULL, RB_STR, 0},
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
DESCRIBE(d_prune, V_PRUNE)

static void d_compose_ps(lua_State *L, rb_action *a)
{
    describe_compose(L, a, V_COMPOSE_PS);
}
static void d_compose_restart(lua_State *L, rb_action *a)
{
    describe_compose(L, a, V_COMPOSE_RESTART);
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
CALL(l_prune, V_PRUNE)
CALL(l_compose_ps, V_COMPOSE_PS)
CALL(l_compose_restart, V_COMPOSE_RESTART)

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
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.exec");
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
#define ROW(n, c, r)                                                                               \
    {                                                                                              \
        .name = #n, .fn = l_##n, .cls = c, .describe = d_##n, .fields = FIELDS, .respond = r,      \
        .answer = l_answer, .recorded = l_recorded                                                 \
    }
    static const rb_fn fns[] = {
        ROW(ps, RB_READ, R_DATA),
        ROW(inspect, RB_READ, R_DATA),
        ROW(logs, RB_READ, R_DATA " stdout stderr name"),
        ROW(stats, RB_READ, R_STATS),
        ROW(version, RB_READ, R_DATA),
        ROW(info, RB_READ, R_DATA),
        ROW(images, RB_READ, R_DATA),
        ROW(restart, RB_MUTATE, R_LIFE),
        ROW(start, RB_MUTATE, R_LIFE),
        ROW(stop, RB_MUTATE, R_LIFE),
        ROW(kill, RB_MUTATE, R_LIFE),
        ROW(update, RB_MUTATE, R_DATA " ok name status warnings"),
        ROW(prune, RB_MUTATE, R_DATA " ok space_reclaimed containers images volumes"),
        {.name = "compose", .fn = l_compose, .cls = RB_PURE},
        {.name = NULL},
    };
    /* the compose object's API verbs: funnelled docker actions, kept out of
     * the docker table (they are reached through docker.compose(...)) */
    static const char *const hidden_names[] = {"compose_ps", "compose_restart"};
    static const rb_fn hidden[] = {
        ROW(compose_ps, RB_READ, R_DATA),
        ROW(compose_restart, RB_MUTATE, R_DATA " ok project service containers"),
        {.name = NULL},
    };
#undef ROW
    rb_register(L, "docker", fns);
    rb_register(L, "docker", hidden);
    lua_getglobal(L, "docker");
    for (int i = 0; i < 2; i++) {
        char key[64];
        snprintf(key, sizeof key, "runbook.docker.%s", hidden_names[i]);
        lua_getfield(L, -1, hidden_names[i]);
        lua_setfield(L, LUA_REGISTRYINDEX, key);
        lua_pushnil(L);
        lua_setfield(L, -2, hidden_names[i]);
    }
    lua_pop(L, 1);
    /* the funnelled global exec, for the compose verbs run by the CLI */
    lua_getglobal(L, "exec");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.docker.exec");
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
