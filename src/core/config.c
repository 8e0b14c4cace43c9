/*
 * runbook.yaml (config.h is the contract): parse it with yamlconv's line
 * table so every shape error names file:line, check the shape of each key,
 * fill the C fields the engine needs before Lua runs (audit, secrets_file)
 * and keep the whole document as a Lua table for the modules that own the
 * other keys (params, readonly_commands, notify, kubectl, docker,
 * environments).  Without a Lua state (`runbook audit`) the same checks run
 * in a throwaway state, so a malformed file is reported the same way
 * everywhere.  config_push(c, L, env, NULL) pushes the whole top level (or
 * the environment's table), which tells whether `--env NAME` exists.
 */
#include "config.h"
#include "audit_pg.h"
#include "util.h"
#include "yamlconv.h"

#include <errno.h>
#include <lauxlib.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VALID_TOP                                                                                  \
    "audit, audit_wait, secrets_file, params, readonly_commands, environments, operator_name"
#define VALID_ENV "params, readonly_commands, audit, audit_wait, require_plan, approvals"

typedef struct vctx {
    lua_State *L;
    const rb_module *modules; /* each may have a section of its own */
    rb_config *c;
    const char *file;
    int lines; /* stack index of the line table */
    char *err;
    size_t errlen;
} vctx;

static int vfail(vctx *v, int line, const char *fmt, ...)
{
    int n = snprintf(v->err, v->errlen, "%s:%d: ", v->file, line);
    if (n >= 0 && (size_t)n < v->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->err + n, v->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The line of key (stack index, 0 = the table itself) in table t. */
static int line_of(vctx *v, int t, int key)
{
    lua_State *L = v->L;
    int line = 1;
    lua_pushvalue(L, t);
    if (lua_rawget(L, v->lines) == LUA_TTABLE) {
        if (key) {
            lua_getfield(L, -1, "keys");
            lua_pushvalue(L, key);
            if (lua_rawget(L, -2) == LUA_TNUMBER)
                line = (int)lua_tointeger(L, -1);
            lua_pop(L, 2);
        } else if (lua_getfield(L, -1, "line") == LUA_TNUMBER) {
            line = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return line;
}

static int is_sequence(lua_State *L, int idx)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return 0;
    dataconv_push_array_mt(L);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

static int is_mapping(lua_State *L, int idx)
{
    return lua_istable(L, idx) && !is_sequence(L, idx);
}

static int is_scalar(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN;
}

/* Push the keys of mapping t ordered by line, so that the first problem
 * reported is the first one in the file. */
static void keys_in_file_order(vctx *v, int t)
{
    lua_State *L = v->L;
    dataconv_sorted_keys(L, t, v->file);
    int keys = lua_gettop(L);
    int n = (int)lua_rawlen(L, keys);
    for (int i = 2; i <= n; i++) { /* insertion sort: configs are small */
        lua_rawgeti(L, keys, i);
        int k = lua_gettop(L);
        int line = line_of(v, t, k);
        int j = i - 1;
        for (; j >= 1; j--) {
            lua_rawgeti(L, keys, j);
            int prev = line_of(v, t, lua_gettop(L));
            if (prev <= line) {
                lua_pop(L, 1);
                break;
            }
            lua_rawseti(L, keys, j + 1);
        }
        lua_rawseti(L, keys, j + 1);
    }
}

/* A key as text for messages. */
static const char *key_text(lua_State *L, int k)
{
    return lua_type(L, k) == LUA_TSTRING ? lua_tostring(L, k) : luaL_tolstring(L, k, NULL);
}

/* p with ~ expanded and, when relative, taken from the config file's
 * directory (not the working directory: --config may point elsewhere). */
static int resolve_path(vctx *v, const char *p, char *out, size_t n)
{
    char home[4096];
    rb_expand_home(p, home, sizeof home);
    const char *slash = strrchr(v->c->path, '/');
    int len;
    if (home[0] == '/' || !slash)
        len = snprintf(out, n, "%s", home);
    else
        len = snprintf(out, n, "%.*s/%s", (int)(slash - v->c->path), v->c->path, home);
    return len >= 0 && (size_t)len < n ? 0 : -1;
}

/* params: { name = scalar | { scalar... } } */
static int check_params(vctx *v, int parent, int key, const char *where)
{
    lua_State *L = v->L;
    int t = lua_gettop(L);
    if (!is_mapping(L, t))
        return vfail(v, line_of(v, parent, key), "%s must be a mapping of name: value", where);
    keys_in_file_order(v, t);
    int keys = lua_gettop(L);
    for (int i = 1; i <= (int)lua_rawlen(L, keys); i++) {
        lua_rawgeti(L, keys, i);
        int k = lua_gettop(L);
        lua_pushvalue(L, k);
        lua_rawget(L, t);
        int ok = is_scalar(L, -1);
        if (is_sequence(L, -1)) {
            ok = 1;
            for (lua_Integer j = 1; ok && j <= (lua_Integer)lua_rawlen(L, -1); j++) {
                lua_rawgeti(L, -1, j);
                ok = is_scalar(L, -1);
                lua_pop(L, 1);
            }
        }
        if (lua_type(L, k) != LUA_TSTRING)
            return vfail(v, line_of(v, t, k), "%s: a param name must be a string, not %s", where,
                         key_text(L, k));
        if (!ok)
            return vfail(v, line_of(v, t, k), "%s.%s must be a scalar or a list of scalars", where,
                         lua_tostring(L, k));
        lua_pop(L, 2);
    }
    lua_settop(L, t);
    return 0;
}

static int check_mapping(vctx *v, int parent, int key, const char *where)
{
    if (!is_mapping(v->L, -1))
        return vfail(v, line_of(v, parent, key), "%s must be a mapping", where);
    return 0;
}

/* The type the schema "key:type ..." gives key (its text up to the next
 * space, in *len), or NULL when the schema has no such key. */
static const char *schema_type(const char *schema, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (const char *p = schema; *p; p += strspn(p, " ")) {
        size_t n = strcspn(p, " ");
        const char *colon = memchr(p, ':', n);
        if (colon && (size_t)(colon - p) == kl && strncmp(p, key, kl) == 0) {
            *len = n - kl - 1;
            return colon + 1;
        }
        p += n;
    }
    return NULL;
}

/* Does the value on top have the schema type t (len bytes)?  Its words in *what. */
static int has_type(lua_State *L, const char *t, size_t len, const char **what)
{
    static const struct {
        const char *name, *what;
        int (*ok)(lua_State *, int);
    } types[] = {{"map", "a mapping", is_mapping},
                 {"list", "a list", is_sequence},
                 {"str", "a string", lua_isstring},
                 {"num", "a number", lua_isnumber},
                 {"bool", "true or false", NULL}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strlen(types[i].name) == len && strncmp(types[i].name, t, len) == 0) {
            *what = types[i].what;
            return types[i].ok ? types[i].ok(L, -1) : lua_isboolean(L, -1);
        }
    *what = "?";
    return 1;
}

/* A module's section (kubectl:, notify: ...): a mapping, and when the module
 * declares its keys (rb_module.config), only those, each of its type --
 * refused now, with the line, rather than when a call first reads it.
 * Values are never quoted: a section may hold a webhook URL with a token. */
static int check_section(vctx *v, int parent, int key, const char *where, const char *module)
{
    lua_State *L = v->L;
    if (check_mapping(v, parent, key, where) != 0)
        return -1;
    const char *schema = NULL;
    for (const rb_module *m = v->modules; m && m->name; m++)
        if (strcmp(m->name, module) == 0)
            schema = m->config;
    if (!schema)
        return 0;
    int t = lua_gettop(L);
    keys_in_file_order(v, t);
    int keys = lua_gettop(L);
    for (int i = 1; i <= (int)lua_rawlen(L, keys); i++) {
        lua_rawgeti(L, keys, i);
        int k = lua_gettop(L);
        const char *kn = key_text(L, k), *what;
        size_t len;
        const char *type = schema_type(schema, kn, &len);
        if (!type) {
            luaL_Buffer b; /* the schema's keys, without their types */
            luaL_buffinit(L, &b);
            for (const char *p = schema; *p; p += strspn(p, " ")) {
                size_t n = strcspn(p, " ");
                luaL_addstring(&b, p == schema ? "" : ", ");
                luaL_addlstring(&b, p, strcspn(p, ":"));
                p += n;
            }
            luaL_pushresult(&b);
            return vfail(v, line_of(v, t, k), "%s: unknown key '%s' (valid keys: %s)", where, kn,
                         lua_tostring(L, -1));
        }
        lua_pushvalue(L, k);
        lua_rawget(L, t);
        if (!has_type(L, type, len, &what))
            return vfail(v, line_of(v, t, k), "%s.%s must be %s, got %s", where, kn, what,
                         luaL_typename(L, -1));
        lua_settop(L, keys);
    }
    lua_settop(L, t);
    return 0;
}

/* readonly_commands: [[cmd, arg...], ...]; numbers become strings */
static int check_commands(vctx *v, int parent, int key)
{
    lua_State *L = v->L;
    int t = lua_gettop(L);
    const char *shape = "readonly_commands must be a list of commands, each a list of strings "
                        "like [redis-cli, INFO]";
    if (!is_sequence(L, t))
        return vfail(v, line_of(v, parent, key), "%s", shape);
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, t); i++) {
        lua_rawgeti(L, t, i);
        int cmd = lua_gettop(L);
        lua_pushinteger(L, i);
        int line = line_of(v, t, lua_gettop(L));
        lua_pop(L, 1);
        if (!is_sequence(L, cmd) || lua_rawlen(L, cmd) == 0)
            return vfail(v, line, "readonly_commands[%d] must be a non-empty list of strings",
                         (int)i);
        for (lua_Integer j = 1; j <= (lua_Integer)lua_rawlen(L, cmd); j++) {
            int type = lua_rawgeti(L, cmd, j);
            if (type == LUA_TNUMBER && j == 1) { /* [1, 2]: a number names no program */
                return vfail(v, line,
                             "readonly_commands[%d][1] must be a program's name (a string), got a "
                             "number",
                             (int)i);
            } else if (type == LUA_TNUMBER) { /* an argument: [redis-cli, -n, 0] */
                lua_pushstring(L, lua_tostring(L, -1));
                lua_rawseti(L, cmd, j);
            } else if (type != LUA_TSTRING) {
                return vfail(v, line, "readonly_commands[%d][%d] must be a string", (int)i, (int)j);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* A section of its own for each module the engine is made of (kubectl:,
 * ssh:, notify: ...): the config knows the module table, never a primitive. */
static int module_section(vctx *v, const char *name)
{
    for (const rb_module *m = v->modules; m && m->name; m++)
        if (strcmp(m->name, name) == 0)
            return 1;
    return 0;
}

/* "KEYS, or a module's section: db, docker, ..." for messages (pushed) */
static const char *push_valid(vctx *v, const char *keys)
{
    luaL_Buffer b;
    luaL_buffinit(v->L, &b);
    luaL_addstring(&b, keys);
    for (const rb_module *m = v->modules; m && m->name; m++) {
        luaL_addstring(&b, m == v->modules ? ", or a module's section: " : ", ");
        luaL_addstring(&b, m->name);
    }
    luaL_pushresult(&b);
    return lua_tostring(v->L, -1);
}

/* audit: a path or false; fills the C fields only at the top level */
static int check_audit(vctx *v, int parent, int key, int top)
{
    lua_State *L = v->L;
    if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        if (top) {
            v->c->audit_set = 1;
            const char *spec = lua_tostring(L, -1);
            /* a team's shared log is a URL, not a path relative to this file */
            if (audit_pg_is_url(spec)
                    ? (size_t)snprintf(v->c->audit_path, sizeof v->c->audit_path, "%s", spec) >=
                          sizeof v->c->audit_path
                    : resolve_path(v, spec, v->c->audit_path, sizeof v->c->audit_path) != 0)
                return vfail(v, line_of(v, parent, key), "audit: path too long");
        }
        return 0;
    }
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        if (top)
            v->c->audit_set = v->c->audit_off = 1;
        return 0;
    }
    return vfail(v, line_of(v, parent, key), "audit must be a path or false");
}

/* audit_wait: how long a run waits for another process's lock on the audit
 * log: seconds, or a duration such as 30s, 2m; 0 fails at once */
static int check_audit_wait(vctx *v, int parent, int key, int top)
{
    double w = config_wait_value(v->L, -1);
    if (w < 0)
        return vfail(v, line_of(v, parent, key),
                     "audit_wait must be a duration such as 30s or 2m (0 to not wait, at most "
                     "24h)");
    if (top) {
        v->c->audit_wait = w;
        v->c->audit_wait_set = 1;
    }
    return 0;
}

/* The plan policy of an environment (`runbook plan`, src/cli/cmd_plan.c):
 * require_plan: a live run there only through apply of a plan; approvals:
 * how many operators other than the planner must approve it. */
static int check_plan_policy(vctx *v, int parent, int key, const char *kn)
{
    lua_State *L = v->L;
    if (strcmp(kn, "require_plan") == 0) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            return vfail(v, line_of(v, parent, key), "require_plan must be true or false");
        return 0;
    }
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 100)
        return vfail(v, line_of(v, parent, key),
                     "approvals must be a whole number of approvals from 0 to 100");
    return 0;
}

static int check_environments(vctx *v, int parent, int key)
{
    lua_State *L = v->L;
    int envs = lua_gettop(L);
    if (!is_mapping(L, envs))
        return vfail(v, line_of(v, parent, key),
                     "environments must be a mapping of environment name to settings");
    keys_in_file_order(v, envs);
    int names = lua_gettop(L);
    for (int i = 1; i <= (int)lua_rawlen(L, names); i++) {
        lua_rawgeti(L, names, i);
        int name = lua_gettop(L);
        const char *ename = key_text(L, name);
        lua_pushvalue(L, name);
        lua_rawget(L, envs);
        int env = lua_gettop(L);
        if (!is_mapping(L, env))
            return vfail(v, line_of(v, envs, name), "environments.%s must be a mapping (keys: %s)",
                         ename, VALID_ENV);
        keys_in_file_order(v, env);
        int ekeys = lua_gettop(L);
        for (int j = 1; j <= (int)lua_rawlen(L, ekeys); j++) {
            lua_rawgeti(L, ekeys, j);
            int k = lua_gettop(L);
            const char *kn = lua_type(L, k) == LUA_TSTRING ? lua_tostring(L, k) : "";
            char where[256];
            snprintf(where, sizeof where, "environments.%s.%s", ename, kn);
            lua_pushvalue(L, k);
            lua_rawget(L, env);
            int rc;
            if (strcmp(kn, "params") == 0)
                rc = check_params(v, env, k, where);
            else if (strcmp(kn, "readonly_commands") == 0)
                rc = check_commands(v, env, k);
            else if (strcmp(kn, "audit") == 0)
                rc = check_audit(v, env, k, 0);
            else if (strcmp(kn, "audit_wait") == 0)
                rc = check_audit_wait(v, env, k, 0);
            else if (strcmp(kn, "require_plan") == 0 || strcmp(kn, "approvals") == 0)
                rc = check_plan_policy(v, env, k, kn);
            else if (module_section(v, kn))
                rc = check_section(v, env, k, where, kn);
            else
                return vfail(v, line_of(v, env, k),
                             "environments.%s: unknown key '%s' (valid keys: %s)", ename,
                             key_text(L, k), push_valid(v, VALID_ENV));
            if (rc != 0)
                return rc;
            lua_settop(L, ekeys);
        }
        lua_settop(L, names);
    }
    lua_settop(L, envs);
    return 0;
}

/* Check the document on top (with the line table at v->lines). */
static int check_config(vctx *v)
{
    lua_State *L = v->L;
    int root = lua_gettop(L);
    if (lua_isnil(L, root)) { /* an empty file */
        lua_pop(L, 1);
        lua_newtable(L);
        return 0;
    }
    if (!is_mapping(L, root))
        return vfail(v, line_of(v, root, 0), "the config must be a mapping of settings (%s)",
                     VALID_TOP);
    keys_in_file_order(v, root);
    int keys = lua_gettop(L);
    for (int i = 1; i <= (int)lua_rawlen(L, keys); i++) {
        lua_rawgeti(L, keys, i);
        int k = lua_gettop(L);
        const char *kn = lua_type(L, k) == LUA_TSTRING ? lua_tostring(L, k) : "";
        lua_pushvalue(L, k);
        lua_rawget(L, root);
        int rc;
        if (strcmp(kn, "audit") == 0) {
            rc = check_audit(v, root, k, 1);
        } else if (strcmp(kn, "audit_wait") == 0) {
            rc = check_audit_wait(v, root, k, 1);
        } else if (strcmp(kn, "operator_name") == 0) {
            /* a display name recorded as the run's claim, never its identity */
            size_t n = lua_type(L, -1) == LUA_TSTRING ? lua_rawlen(L, -1) : 0;
            const char *s = n ? lua_tostring(L, -1) : "";
            for (size_t j = 0; j < n && s; j++)
                if ((unsigned char)s[j] < 0x20 || s[j] == 0x7f)
                    s = NULL;
            if (n == 0 || n > 200 || !s)
                return vfail(v, line_of(v, root, k),
                             "operator_name must be a name of 1 to 200 characters on one line");
            rc = 0;
        } else if (strcmp(kn, "secrets_file") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
                return vfail(v, line_of(v, root, k), "secrets_file must be a path");
            if (resolve_path(v, lua_tostring(L, -1), v->c->secrets_file,
                             sizeof v->c->secrets_file) != 0)
                return vfail(v, line_of(v, root, k), "secrets_file: path too long");
            rc = 0;
        } else if (strcmp(kn, "params") == 0) {
            rc = check_params(v, root, k, "params");
        } else if (strcmp(kn, "readonly_commands") == 0) {
            rc = check_commands(v, root, k);
        } else if (strcmp(kn, "environments") == 0) {
            rc = check_environments(v, root, k);
        } else if (module_section(v, kn)) {
            rc = check_section(v, root, k, kn, kn);
        } else {
            return vfail(v, line_of(v, root, k), "unknown key '%s' (valid keys: %s)",
                         key_text(L, k), push_valid(v, VALID_TOP));
        }
        if (rc != 0)
            return rc;
        lua_settop(L, keys);
    }
    lua_settop(L, root);
    return 0;
}

/* Parse and check buf; on success the document is on top of L's stack. */
static int config_parse(rb_config *c, lua_State *L, const rb_module *modules, const char *buf,
                        size_t len, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    if (yamlconv_parse_lines(L, buf, len, c->path, err, errlen) != 0)
        return -1;
    lua_insert(L, -2); /* doc lines -- lines doc */
    vctx v = {L, modules, c, c->path, top + 1, err, errlen};
    if (check_config(&v) != 0) {
        lua_settop(L, top);
        return -1;
    }
    lua_remove(L, -2);
    return 0;
}

typedef struct load_args {
    rb_config *c;
    const rb_module *modules;
    const char *path;
    int explicit, keep;
    char *err;
    size_t errlen;
    int rc;
} load_args;

/* Under a protected call, so that a memory error reads as a message and
 * nothing leaks: the file is read into a Lua string, not a malloc'd one. */
static int config_load_body(lua_State *L)
{
    load_args *a = (load_args *)lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (fs_push_file_contents(L, a->path) != 0) {
        if (errno == ENOENT && !a->explicit)
            return 0; /* no config: built-in defaults */
        snprintf(a->err, a->errlen, "%s: %s", a->path, strerror(errno));
        a->rc = -1;
        return 0;
    }
    snprintf(a->c->path, sizeof a->c->path, "%s", a->path);
    size_t len;
    const char *buf = lua_tolstring(L, 1, &len);
    if (config_parse(a->c, L, a->modules, buf, len, a->err, a->errlen) != 0) {
        a->rc = -1;
        return 0;
    }
    if (a->keep)
        a->c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int config_load(rb_config *c, lua_State *L, const rb_module *modules, const char *path,
                int explicit, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->ref = LUA_NOREF;
    if (!path || !*path) {
        path = "runbook.yaml";
        explicit = 0;
    }
    lua_State *S = L ? L : luaL_newstate();
    if (!S) {
        snprintf(err, errlen, "%s: not enough memory", path);
        return -1;
    }
    load_args a = {c, modules, path, explicit, L != NULL, err, errlen, 0};
    int top = lua_gettop(S);
    lua_pushcfunction(S, config_load_body);
    lua_pushlightuserdata(S, &a);
    if (lua_pcall(S, 1, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "%s: %s", path,
                 lua_type(S, -1) == LUA_TSTRING ? lua_tostring(S, -1) : "not enough memory");
        a.rc = -1;
    }
    lua_settop(S, top);
    if (!L)
        lua_close(S);
    if (a.rc != 0) { /* the ref is taken last: there is none to drop */
        c->audit_set = c->audit_off = c->audit_wait_set = 0;
        c->audit_path[0] = c->secrets_file[0] = '\0';
    }
    return a.rc;
}

void config_push(const rb_config *c, lua_State *L, const char *env, const char *key)
{
    if (!c || c->ref == LUA_NOREF || c->ref == LUA_REFNIL) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    int base = lua_gettop(L);
    if (env) {
        if (lua_getfield(L, base, "environments") == LUA_TTABLE)
            lua_getfield(L, -1, env);
        else
            lua_pushnil(L);
        lua_replace(L, base); /* the environment's table, or nil */
        lua_settop(L, base);
    }
    if (key && lua_istable(L, base)) {
        lua_getfield(L, base, key);
        lua_replace(L, base);
    } else if (key) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

const char *config_audit_path(const rb_config *c, const char *flag_path, int no_audit, char *buf,
                              size_t n)
{
    if (no_audit)
        return NULL;
    if (flag_path && *flag_path)
        return rb_expand_home(flag_path, buf, n);
    const char *env = getenv("RUNBOOK_AUDIT");
    if (env && *env)
        return rb_expand_home(env, buf, n);
    if (c && c->audit_set) {
        if (c->audit_off)
            return NULL;
        snprintf(buf, n, "%s", c->audit_path);
        return buf;
    }
    /* XDG: a relative $XDG_STATE_HOME is invalid and must be ignored */
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/') {
        snprintf(buf, n, "%s/runbook/audit.db", xdg);
        return buf;
    }
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : ".";
    }
    snprintf(buf, n, "%s/.local/state/runbook/audit.db", home);
    return buf;
}

double config_wait_value(lua_State *L, int idx)
{
    double w = -1;
    if (lua_type(L, idx) == LUA_TNUMBER)
        w = lua_tonumber(L, idx);
    else if (lua_type(L, idx) == LUA_TSTRING)
        w = rb_parse_duration(lua_tostring(L, idx));
    /* written this way round so that NaN fails too */
    return w >= 0 && w <= 86400 ? w : -1;
}

double config_audit_wait(const rb_config *c, lua_State *L, const char *env)
{
    if (env) { /* checked when the file was loaded */
        config_push(c, L, env, "audit_wait");
        double w = lua_isnil(L, -1) ? -1 : config_wait_value(L, -1);
        lua_pop(L, 1);
        if (w >= 0)
            return w;
    }
    return c && c->audit_wait_set ? c->audit_wait : -1;
}
