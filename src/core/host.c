/*
 * The host API (include/runbook/host.h): what primitives may use of the
 * engine, implemented over the core's own pieces so that primitives never
 * include them.
 */
#include "runbook/host.h"
#include "config.h"
#include "engine.h"
#include "journal.h"
#include "landlock.h"
#include "loop.h"
#include "signature.h"
#include "strategy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int rb_config_get(lua_State *L, const char *section, const char *key)
{
    for (int level = 1; level >= 0; level--) { /* the environment's, then the top level's */
        int t = rb_config_at(L, level, section, key);
        if (t != LUA_TNIL)
            return t;
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return LUA_TNIL;
}

void rb_log(lua_State *L, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    rb_engine *E = rb_engine_of(L);
    if (E)
        journal_log(E, L, level, msg);
    lua_pop(L, 1);
}

int rb_missing(lua_State *L, const char *what)
{
    rb_engine *E = rb_engine_of(L);
    return E && E->strategy && E->strategy->missing ? E->strategy->missing(E, L, what) : 0;
}

void rb_push_raw(lua_State *L, const char *primitive, const char *fn)
{
    if (rb_push_row(L, primitive, fn) != LUA_TTABLE)
        luaL_error(L, "internal: no primitive %s.%s", primitive, fn);
    lua_getfield(L, -1, "raw");
    lua_remove(L, -2);
}

const char *rb_runtime_dir(lua_State *L)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    const char *dir;
    if (xdg && *xdg)
        dir = lua_pushfstring(L, "%s/runbook", xdg);
    else
        dir = lua_pushfstring(L, "/tmp/runbook-%d", (int)getuid());
    struct stat there;
    if (rb_children_confined(L) && lstat(dir, &there) != 0) {
        lua_pop(L, 1); /* a rehearsal creates nothing: there is no master to reuse either */
        return NULL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        luaL_error(L, "cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
        luaL_error(L, "%s is not a private directory of this user (mode 0700)", dir);
    /* anchored for the run: the registry keeps the string alive */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.runtime_dir");
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.runtime_dir");
    dir = lua_tostring(L, -1);
    lua_pop(L, 1);
    return dir;
}

int rb_interrupted(lua_State *L)
{
    (void)L;
    return loop_interrupted();
}

void rb_child_started(pid_t pid)
{
    loop_child_add(pid);
}

void rb_child_ended(pid_t pid)
{
    loop_child_remove(pid);
}

void rb_set_poller(rb_poller_fn fn)
{
    loop_set_poller(fn);
}

void rb_push_lua(lua_State *L, const char *name, const char *fn)
{
    rb_push_internal(L, name, fn);
}

/* One level of runbook.yaml, a dotted section walked part by part: notify
 * resolves its credentials level by level (host.h says why). */
int rb_config_at(lua_State *L, int level, const char *section, const char *key)
{
    rb_engine *E = rb_engine_of(L);
    const char *env = level ? (E ? E->env_name : NULL) : NULL;
    if (!E || !E->config || (level && !env)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    config_push(E->config, L, env, NULL);
    const char *p = section;
    while (p && *p) {
        size_t n = strcspn(p, ".");
        if (!lua_istable(L, -1)) {
            if (!lua_isnil(L, -1) && p != section)
                luaL_error(L, "runbook.yaml: %s%s%s%.*s must be a mapping, got %s",
                           env ? "environments." : "", env ? env : "", env ? "." : "",
                           (int)(p - section - 1), section, luaL_typename(L, -1));
            lua_pop(L, 1);
            lua_pushnil(L);
            return LUA_TNIL;
        }
        lua_pushlstring(L, p, n);
        lua_gettable(L, -2);
        lua_remove(L, -2);
        p += n;
        p += *p == '.';
    }
    if (key && !lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            luaL_error(L, "runbook.yaml: %s%s%s%s must be a mapping, got %s",
                       env ? "environments." : "", env ? env : "", env ? "." : "", section,
                       luaL_typename(L, -1));
        lua_getfield(L, -1, key);
        lua_remove(L, -2);
    }
    return lua_type(L, -1);
}

/* ---- a process's result --------------------------------------------------------- */

/* Push what messages call the action: its words, after the primitive's name
 * unless they begin with it ("exec ls -l", "sh -c 'x'", "ssh web1 uptime"). */
static const char *push_message_words(lua_State *L, int info)
{
    lua_getfield(L, info, "primitive");
    lua_getfield(L, info, "words");
    const char *prim = luaL_optstring(L, -2, ""), *words = luaL_optstring(L, -1, "");
    size_t n = strlen(prim);
    int named = strncmp(words, prim, n) == 0 && words[n] == ' ';
    const char *w = lua_pushfstring(L, "%s%s%s", named ? "" : prim, named ? "" : " ", words);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return w;
}

/* answer(respond, info, args...) */
int rb_process_answer(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "opts");
    int opts = lua_isinteger(L, -1) ? 2 + (int)lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    int checked = 1;
    if (opts && lua_istable(L, opts)) {
        checked = !(lua_getfield(L, opts, "check") == LUA_TBOOLEAN && !lua_toboolean(L, -1));
        lua_pop(L, 1);
    }
    const char *words = push_message_words(L, 2);
    int top = lua_gettop(L);
    if (lua_getfield(L, 1, "error") != LUA_TNIL)
        return luaL_error(L, "%s: %s", words, luaL_tolstring(L, -1, NULL));
    lua_settop(L, top);
    lua_getfield(L, 1, "code");
    lua_Integer code = lua_isnil(L, -1) ? 0 : lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_createtable(L, 0, 5);
    int res = lua_gettop(L);
    lua_pushinteger(L, code);
    lua_setfield(L, res, "code");
    lua_pushboolean(L, code == 0);
    lua_setfield(L, res, "ok");
    const char *streams[] = {"stdout", "stderr"};
    for (int i = 0; i < 2; i++) {
        if (lua_getfield(L, 1, streams[i]) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushliteral(L, "");
        } else if (!lua_isstring(L, -1)) {
            return luaL_error(L, "%s: respond.%s must be a string", words, streams[i]);
        }
        lua_setfield(L, res, streams[i]);
    }
    lua_pushnumber(L, 0.0);
    lua_setfield(L, res, "time");
    if (code == 0 || !checked)
        return 1;
    return rb_raise_exit(L, words, res); /* as the live call */
}

int rb_raise_exit(lua_State *L, const char *words, int res)
{
    res = lua_absindex(L, res);
    rb_note_result(L, res);
    lua_getfield(L, res, "code");
    int code = (int)lua_tointeger(L, -1);
    lua_getfield(L, res, "stderr");
    size_t n = 0;
    const char *e = lua_tolstring(L, -1, &n);
    if (!e)
        e = "";
    /* the last non-empty line of stderr says most about a failure */
    while (n > 0 && (e[n - 1] == '\n' || e[n - 1] == '\r' || e[n - 1] == ' '))
        n--;
    size_t start = n;
    while (start > 0 && e[start - 1] != '\n')
        start--;
    lua_pushfstring(L, "%s: exit code %d", words, code);
    if (n > start) {
        lua_pushliteral(L, ": ");
        lua_pushlstring(L, e + start, n - start);
        lua_concat(L, 3);
    }
    return lua_error(L);
}

/* recorded(info, error_or_nil, result): { code, stdout, stderr } without the
 * empty outputs, or { error = cause } when it failed before an exit code. */
int rb_process_simulated(lua_State *L, const rb_action *a)
{
    (void)a;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "code");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "stdout");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "stderr");
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "time");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "dry_run");
    return 1;
}

int rb_process_recorded(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 3);
    lua_newtable(L); /* 4 */
    /* a result, or none and no error (a simulated change): what it returned */
    if (lua_istable(L, 3) || lua_isnil(L, 2)) {
        lua_Integer code = 0;
        if (lua_istable(L, 3) && lua_getfield(L, 3, "code") == LUA_TNUMBER)
            code = lua_tointeger(L, -1);
        lua_settop(L, 4);
        lua_pushinteger(L, code);
        lua_setfield(L, 4, "code");
        const char *streams[] = {"stdout", "stderr"};
        for (int i = 0; i < 2 && lua_istable(L, 3); i++) {
            size_t n = 0;
            if (lua_getfield(L, 3, streams[i]) == LUA_TSTRING && (lua_tolstring(L, -1, &n), n))
                lua_setfield(L, 4, streams[i]);
            else
                lua_pop(L, 1);
        }
        return 1;
    }
    /* the cause: the message after "file:line: <words>: " */
    const char *msg = luaL_tolstring(L, 2, NULL);
    const char *words = push_message_words(L, 1);
    const char *at = strstr(msg, words);
    if (!at) { /* the words without the primitive's name */
        lua_getfield(L, 1, "words");
        words = luaL_optstring(L, -1, "");
        at = *words ? strstr(msg, words) : NULL;
    }
    if (at) {
        msg = at + strlen(words);
        if (strncmp(msg, ": ", 2) == 0)
            msg += 2;
    }
    lua_pushstring(L, msg);
    lua_setfield(L, 4, "error");
    lua_settop(L, 4);
    return 1;
}

/* ---- children of a rehearsal (host.h) ----------------------------------------
 * posix_spawn runs no code of ours between fork and exec, so the child is
 * first the engine's own binary: `runbook __confined FILE FD ARGV...`
 * (rb_landlock_shim, src/core/landlock.c) confines itself, then executes
 * FILE with the environment read from descriptor FD as posix_spawnp would
 * have.  The shim itself starts with the engine's environment, so nothing
 * the runbook sets for the child (LD_PRELOAD) runs before the confinement. */

int rb_children_confined(lua_State *L)
{
    rb_engine *E = rb_engine_of(L);
    return E && E->strategy && !E->strategy->performs && rb_landlock_abi() > 0;
}

/* A bare name that PATH cannot find: the ENOENT posix_spawnp would give,
 * here in the engine, where the error can say "command not found".  With a
 * relative PATH entry the child's cwd decides: the shim finds out. */
static int surely_missing(const char *file)
{
    if (strchr(file, '/'))
        return 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    char cand[4096];
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || p[0] != '/')
            return 0;
        if ((size_t)snprintf(cand, sizeof cand, "%.*s/%s", (int)len, p, file) < sizeof cand &&
            access(cand, F_OK) == 0)
            return 0;
        if (!end)
            return 1;
        p = end;
    }
}

/* The child's environment as NUL-terminated strings in a memory file the
 * shim inherits: on its command line, readable by every user in /proc, the
 * values (credentials, often) would leak.  A descriptor from 3 up, not
 * close-on-exec: the spawn's own dup2()s onto 0-2 leave it alone. */
static int env_memfd(char *const envp[])
{
    int fd = memfd_create("runbook-env", 0);
    if (fd >= 0 && fd < 3) {
        int high = fcntl(fd, F_DUPFD, 3);
        close(fd);
        fd = high;
    }
    if (fd < 0)
        return -1;
    for (size_t i = 0; envp && envp[i]; i++) {
        size_t n = strlen(envp[i]) + 1;
        for (const char *p = envp[i]; n > 0;) {
            ssize_t w = write(fd, p, n);
            if (w <= 0) {
                close(fd);
                return -1;
            }
            p += w;
            n -= (size_t)w;
        }
    }
    return fd;
}

int rb_spawnp(lua_State *L, pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
              const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    extern char **environ;
    if (!rb_children_confined(L))
        return posix_spawnp(pid, file, fa, attr, argv, envp);
    if (surely_missing(file))
        return ENOENT;
    size_t na = 0;
    while (argv[na])
        na++;
    char **shim = calloc(na + 5, sizeof *shim);
    int fd = shim ? env_memfd(envp) : -1;
    if (fd < 0) {
        int e = shim ? errno : ENOMEM;
        free(shim);
        return e;
    }
    char fdarg[24];
    snprintf(fdarg, sizeof fdarg, "%d", fd);
    size_t k = 0;
    shim[k++] = "runbook";
    shim[k++] = "__confined";
    shim[k++] = (char *)file;
    shim[k++] = fdarg;
    for (size_t i = 0; i < na; i++)
        shim[k++] = argv[i];
    shim[k] = NULL;
    /* /proc/self/exe in the new child is still this binary, even if the
     * installed file was replaced during the run */
    int rc = posix_spawn(pid, "/proc/self/exe", fa, attr, shim, environ);
    close(fd);
    free(shim);
    return rc;
}

/* The path a "Permission denied" line of stderr names, tried in turn by
 * refused_write(): a quoted name ('x', "x", `x', ‘x’) -- "touch: cannot touch
 * '/x': Permission denied", Python's "Permission denied: '/x'" -- else the
 * last word before the message ("sh: 1: cannot create /x: Permission
 * denied", Go's "open /x: permission denied"), else the word after it. */
static int refused_write(const char *path, const char *cwd);

static int try_candidate(const char *s, size_t n, const char *cwd, char *out, size_t size)
{
    if (n == 0 || n >= size)
        return 0;
    snprintf(out, size, "%.*s", (int)n, s);
    return refused_write(out, cwd);
}

static int find_denied_path(const char *text, size_t n, const char *cwd, char *out, size_t size)
{
    char line[2048];
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), text);
    char *hit = strcasestr(line, "permission denied");
    if (!hit)
        return 0;
    char *end = line + strlen(line);
    /* ASCII quotes, and the typographic ones of UTF-8 locales (‘x’, “x”) */
    static const char *const quotes[][2] = {{"'", "'"},
                                            {"\"", "\""},
                                            {"`", "'"},
                                            {"\xe2\x80\x98", "\xe2\x80\x99"},
                                            {"\xe2\x80\x9c", "\xe2\x80\x9d"}};
    for (char *q = line; q < end; q++) {
        for (size_t i = 0; i < sizeof quotes / sizeof quotes[0]; i++) {
            size_t ol = strlen(quotes[i][0]);
            if (strncmp(q, quotes[i][0], ol) != 0)
                continue;
            char *e = strstr(q + ol, quotes[i][1]);
            if (!e)
                break;
            if (try_candidate(q + ol, (size_t)(e - q - ol), cwd, out, size))
                return 1;
            q = e + strlen(quotes[i][1]) - 1;
            break;
        }
    }
    char *be = hit;
    while (be > line && (be[-1] == ' ' || be[-1] == ':'))
        be--;
    char *w = be;
    while (w > line && w[-1] != ' ')
        w--;
    if (try_candidate(w, (size_t)(be - w), cwd, out, size))
        return 1;
    char *a = hit + strlen("permission denied");
    while (*a == ' ' || *a == ':')
        a++;
    return try_candidate(a, strcspn(a, " "), cwd, out, size);
}

/* Could the user write path, were it not for the confinement?  access(2)
 * asks the permission bits and not Landlock, so a yes means the refusal came
 * from the confinement: an existing path the user may write, or a new
 * name in a directory the user may write. */
static int refused_write(const char *path, const char *cwd)
{
    char full[4096];
    if (path[0] != '/' && cwd)
        snprintf(full, sizeof full, "%s/%s", cwd, path);
    else
        snprintf(full, sizeof full, "%s", path);
    if (access(full, F_OK) == 0)
        return access(full, W_OK) == 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", full);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    return access(dir, W_OK | X_OK) == 0;
}

int rb_child_blocked(lua_State *L, const char *words, const char *err, size_t len, const char *cwd)
{
    /* Landlock says nothing to the engine when it refuses (its denial log,
     * ABI 7, goes to the kernel's audit, which needs privileges), so this
     * reads the child's stderr: a "Permission denied" naming a path the
     * permission bits would let this user write.  A program that refuses
     * silently, or names no path, fails as an ordinary command (its exit
     * code): nothing was written either way, only the report is plainer. */
    char path[1024];
    const char *p = err, *end = err + len;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (find_denied_path(p, n, cwd, path, sizeof path)) {
            rb_log(L, "warn", "blocked: %s tried to write %s during a dry-run", words, path);
            lua_pushboolean(L, 1);
            lua_setfield(L, LUA_REGISTRYINDEX, "runbook.blocked");
            lua_pushstring(L, path);
            return 1;
        }
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* A signature's `...` takes any number of arguments, so the options table
 * after them cannot be a parameter of its own: db's conn:query(sql,
 * params..., opts) finds its trailing table itself and has it checked here,
 * by the same checker as every row's options (host.h says why). */
void rb_check_options(lua_State *L, const char *name, const char *options, int idx)
{
    idx = lua_absindex(L, idx);
    int top = lua_gettop(L);
    lua_pushvalue(L, idx);
    sig_check(L, name, "opts:opts", options, top + 1, 1);
    lua_settop(L, top);
}
