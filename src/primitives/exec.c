/*
 * exec(argv [, opts]) and sh(command [, opts]): child processes on the event
 * loop.  Programs are spawned directly with posix_spawn (never through
 * /bin/sh for exec), each in its own process group so a timeout or Ctrl-C
 * can terminate the whole tree: TERM, then KILL after a grace period.
 * Classification: exec is READ only for what the one classifier
 * (rb_classify_argv, src/core/classify.c) knows to only observe; sh is
 * always MUTATE unless the call says readonly = true.
 */
#include "runbook/host.h"
#include "runbook/runbook.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define EXEC_DEFAULT_TIMEOUT 600.0        /* seconds; every primitive has one */
#define KILL_GRACE           2.0          /* seconds between TERM and KILL */
#define OUTPUT_LIMIT         (256u << 20) /* bytes kept per stream */

/* ---- the child process op ------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

typedef struct proc_op {
    rb_op op;
    pid_t pid;
    int status; /* from waitpid */
    int reaped;
    int killing;    /* TERM sent; KILL at kill_at */
    int sent_kill;  /* KILL sent too */
    int group_gone; /* killing: nothing is left of the child's process group */
    double started;
    double timeout;
    /* the op's deadline is the earliest of these (0 = unset) */
    double timeout_at; /* the exec's own timeout */
    double kill_at;    /* TERM was sent: KILL then */
    double poll_at;    /* no pidfd (old kernel, valgrind): look for the exit then */
    double poll_every;
    buf out, err;
    const char *in; /* stdin data (kept alive by the Lua stack of the caller) */
    size_t in_len, in_off;
    char *in_copy;
    int confined; /* started under a rehearsal's no-write confinement */
} proc_op;

enum { FD_PID, FD_OUT, FD_ERR, FD_IN };

static void close_fd(rb_op *op, int i)
{
    if (op->fd[i] >= 0) {
        close(op->fd[i]);
        op->fd[i] = -1;
    }
}

static void set_deadline(proc_op *p)
{
    double d = 0;
    double c[3] = {p->timeout_at, p->kill_at, p->poll_at};
    for (int i = 0; i < 3; i++)
        if (c[i] > 0 && (d <= 0 || c[i] < d))
            d = c[i];
    p->op.deadline = d;
}

static void maybe_done(proc_op *p)
{
    if (p->killing && !p->group_gone)
        return;
    if (p->reaped && p->op.fd[FD_OUT] < 0 && p->op.fd[FD_ERR] < 0) {
        close_fd(&p->op, FD_IN);
        rb_op_done(&p->op);
    }
}

static void drain(proc_op *p, int i, buf *b)
{
    for (;;) {
        if (b->cap - b->len < 65536) {
            size_t cap = b->cap ? b->cap * 2 : 65536;
            char *np = realloc(b->p, cap);
            if (!np) {
                close_fd(&p->op, i);
                return;
            }
            b->p = np;
            b->cap = cap;
        }
        ssize_t r = read(p->op.fd[i], b->p + b->len, b->cap - b->len);
        if (r > 0) {
            if (b->len + (size_t)r <= OUTPUT_LIMIT)
                b->len += (size_t)r;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close_fd(&p->op, i); /* EOF or error */
        return;
    }
}

static void reap(proc_op *p)
{
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->status = st;
        p->reaped = 1;
        p->poll_at = p->timeout_at = 0;
        if (!p->killing)
            p->kill_at = 0;
        else /* the rest of its group got the signal too: see it go */
            p->poll_at = rb_now() + 0.002;
        set_deadline(p);
        rb_child_ended(p->pid);
        close_fd(&p->op, FD_PID);
    }
}

/* Killing: the op ends when the child's whole process group is gone (the
 * grandchildren got the same TERM, then KILL), so nothing outlives a
 * cancelled step.  A process that left the group, or a zombie nobody reaps,
 * does not keep the runbook waiting past the second grace period. */
static void watch_group(proc_op *p, double now)
{
    if (killpg(p->pid, 0) != 0 && errno == ESRCH) {
        p->group_gone = 1;
    } else if (p->kill_at > 0 && now >= p->kill_at) {
        if (!p->sent_kill) {
            killpg(p->pid, SIGKILL);
            p->sent_kill = 1;
            p->kill_at = now + KILL_GRACE;
        } else {
            p->group_gone = 1; /* give up: what is left escaped us */
        }
    }
    if (p->group_gone) {
        p->kill_at = p->poll_at = 0;
        close_fd(&p->op, FD_OUT); /* a straggler may still hold them */
        close_fd(&p->op, FD_ERR);
    } else {
        p->poll_at = now + 0.01;
    }
}

static void proc_ready(rb_op *op, int i, short revents)
{
    proc_op *p = (proc_op *)op;
    if (i == FD_OUT)
        drain(p, i, &p->out);
    else if (i == FD_ERR)
        drain(p, i, &p->err);
    else if (i == FD_PID)
        reap(p);
    else if (i == FD_IN) {
        if (revents & (POLLERR | POLLHUP)) {
            close_fd(op, FD_IN);
        } else {
            ssize_t w = write(op->fd[FD_IN], p->in + p->in_off, p->in_len - p->in_off);
            if (w > 0)
                p->in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || p->in_off >= p->in_len)
                close_fd(op, FD_IN);
        }
    }
    maybe_done(p);
}

static void proc_cancel(rb_op *op, const char *why)
{
    proc_op *p = (proc_op *)op;
    if (!op->error[0])
        snprintf(op->error, sizeof op->error, "%s", why);
    if (!p->reaped && !p->killing) {
        killpg(p->pid, SIGTERM);
        p->killing = 1;
        p->timeout_at = 0;
        p->kill_at = rb_now() + KILL_GRACE;
        set_deadline(p);
    }
    maybe_done(p);
}

static void proc_expired(rb_op *op)
{
    proc_op *p = (proc_op *)op;
    double now = rb_now();
    if (p->reaped) {
        if (p->killing && !p->group_gone)
            watch_group(p, now);
        set_deadline(p);
        maybe_done(p);
        return;
    }
    if (p->poll_at > 0 && now >= p->poll_at) {
        reap(p);
        if (!p->reaped) {
            p->poll_every = p->poll_every < 0.05 ? p->poll_every * 2 : 0.05;
            p->poll_at = now + p->poll_every;
        }
    }
    if (!p->reaped && p->timeout_at > 0 && now >= p->timeout_at) {
        char why[64];
        snprintf(why, sizeof why, "timed out after %.1f s", p->timeout);
        op->cancelled = 1;
        proc_cancel(op, why);
    }
    if (!p->reaped && p->kill_at > 0 && now >= p->kill_at) {
        killpg(p->pid, SIGKILL);
        p->sent_kill = 1;
        p->kill_at = now + KILL_GRACE; /* and look again */
    }
    set_deadline(p);
    maybe_done(p);
}

static void proc_destroy(rb_op *op)
{
    proc_op *p = (proc_op *)op;
    if (!p->reaped) { /* the run is ending with the child still alive */
        killpg(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
        rb_child_ended(p->pid);
    }
    for (int i = 0; i < RB_OP_MAXFD; i++)
        close_fd(op, i);
    free(p->out.p);
    free(p->err.p);
    free(p->in_copy);
    free(p);
}

static const rb_op_vtable proc_vt = {proc_ready, proc_cancel, proc_expired, proc_destroy};

/* ---- exec / sh ------------------------------------------------------------ */

/* argv from the table at idx, as Lua strings kept on the stack in a table */
static int collect_argv(lua_State *L, int idx, const char **argv, int max)
{
    int n = (int)luaL_len(L, idx);
    if (n < 1)
        luaL_argerror(L, idx, "argv must have at least the program name");
    if (n >= max)
        luaL_argerror(L, idx, "too many arguments");
    for (int i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_argerror(
                L, idx,
                lua_pushfstring(L, "argv[%d] must be a string, got %s", i, luaL_typename(L, -1)));
        /* numbers are converted in place in the table so the pointer stays valid */
        if (t == LUA_TNUMBER) {
            lua_tostring(L, -1);
            lua_pushvalue(L, -1);
            lua_rawseti(L, idx, i);
        }
        argv[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    argv[n] = NULL;
    return n;
}

static int exec_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    proc_op *p = (proc_op *)ctx;
    int code = -1, sig = 0;
    if (p->reaped) {
        if (WIFEXITED(p->status))
            code = WEXITSTATUS(p->status);
        else if (WIFSIGNALED(p->status)) {
            sig = WTERMSIG(p->status);
            code = 128 + sig;
        }
    }
    char error[sizeof p->op.error];
    memcpy(error, p->op.error, sizeof error);
    int confined = p->confined;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    lua_pushlstring(L, p->out.p ? p->out.p : "", p->out.len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, p->err.p ? p->err.p : "", p->err.len);
    lua_setfield(L, -2, "stderr");
    lua_pushnumber(L, rb_now() - p->started);
    lua_setfield(L, -2, "time");
    lua_pushboolean(L, code == 0);
    lua_setfield(L, -2, "ok");
    if (sig) {
        lua_pushstring(L, strsignal(sig));
        lua_setfield(L, -2, "signal");
    }
    rb_op_free(&p->op);
    /* the command's words sit at index 3 (see spawn_and_wait) */
    const char *words = lua_tostring(L, 3);
    int check_opt = lua_toboolean(L, 4);
    if (error[0])
        return luaL_error(L, "%s: %s", words, error);
    /* a write the confinement refused: recorded `blocked`, the result says
     * what was refused (.blocked), and it raises as a failed command would */
    if (confined && code != 0 && !sig) {
        int res = lua_gettop(L);
        size_t err_len = 0;
        lua_getfield(L, res, "stderr");
        const char *err = lua_tolstring(L, -1, &err_len);
        const char *cwd = rb_opt_string(L, lua_istable(L, 2) ? 2 : 0, "cwd");
        if (rb_child_blocked(L, words, err, err_len, cwd)) {
            lua_pushvalue(L, -1);
            lua_setfield(L, res, "blocked");
            if (check_opt) {
                rb_note_result(L, res);
                return luaL_error(L, "%s: blocked: tried to write %s during a dry-run", words,
                                  lua_tostring(L, -1));
            }
        }
        lua_settop(L, res);
    }
    if (check_opt && code != 0) {
        if (!sig)
            return rb_raise_exit(L, words, -1);
        rb_note_result(L, -1);
        return luaL_error(L, "%s: killed by signal %d (%s)", words, sig, strsignal(sig));
    }
    return 1;
}

static void set_nonblock(int fd)
{
    int on = 1;
    ioctl(fd, FIONBIO, &on); /* one syscall where F_GETFL + F_SETFL take two */
}

/* spawn argv (strings owned by the values at 1..3); stack: 1 argv or
 * command, 2 opts, 3 the command's words (for messages) */
static int spawn_and_wait(lua_State *L, const char **argv)
{
    const char *words = lua_tostring(L, 3);
    int opts = lua_istable(L, 2) ? 2 : 0;
    double timeout = rb_opt_number(L, opts, "timeout", EXEC_DEFAULT_TIMEOUT);
    int check = rb_opt_bool(L, opts, "check", 1);
    lua_pushboolean(L, check); /* 4: for the continuation */
    const char *cwd = rb_opt_string(L, opts, "cwd");
    size_t in_len = 0;
    const char *in = NULL;
    if (opts && lua_getfield(L, opts, "stdin") != LUA_TNIL) {
        in = lua_tolstring(L, -1, &in_len);
        if (!in)
            return luaL_error(L, "%s: option 'stdin' must be a string", words);
    }
    int stdin_idx = lua_gettop(L);
    /* environment: the runbook's additions on top of ours; false removes */
    char **envp = environ;
    char **own_env = NULL;
    if (opts && lua_getfield(L, opts, "env") == LUA_TTABLE) {
        int envt = lua_gettop(L);
        size_t n = 0;
        while (environ[n])
            n++;
        lua_pushnil(L);
        size_t extra = 0;
        while (lua_next(L, envt)) {
            extra++;
            lua_pop(L, 1);
        }
        own_env = calloc(n + extra + 1, sizeof *own_env);
        if (!own_env)
            return luaL_error(L, "%s: out of memory", words);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            const char *eq = strchr(environ[i], '=');
            size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
            lua_pushlstring(L, environ[i], nl);
            int overridden = lua_rawget(L, envt) != LUA_TNIL;
            lua_pop(L, 1);
            if (!overridden)
                own_env[k++] = environ[i];
        }
        lua_pushnil(L);
        while (lua_next(L, envt)) {
            if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
                lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
                own_env[k++] = (char *)lua_tostring(L, -1);
                lua_insert(L, envt); /* keep the string alive below the iteration */
                envt++;
            }
            lua_pop(L, 1);
        }
        own_env[k] = NULL;
        envp = own_env;
    }
    (void)stdin_idx;

    int out[2] = {-1, -1}, err[2] = {-1, -1}, inp[2] = {-1, -1}, pidfd = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = 0;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
        (in && pipe2(inp, O_CLOEXEC) != 0)) {
        rc = errno;
        goto fail_pipes;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (in)
        posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int confined = rb_children_confined(L);
    rc = rb_spawnp(L, &pid, argv[0], &fa, &attr, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(own_env);
    own_env = NULL;
    close(out[1]);
    close(err[1]);
    if (in)
        close(inp[0]);
    if (rc != 0)
        goto fail_spawned;
    /* a pidfd makes the exit pollable with the pipes; without one (kernels
     * before 5.3, valgrind) the op looks for the exit on a short timer */
    static int no_pidfd; /* ENOSYS once: do not ask again for every exec */
    pidfd = no_pidfd ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno == ENOSYS)
        no_pidfd = 1;
    rb_child_started(pid);
    proc_op *p = calloc(1, sizeof *p);
    if (!p) {
        killpg(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        rb_child_ended(pid);
        rc = ENOMEM;
        if (pidfd >= 0)
            close(pidfd);
        goto fail_spawned;
    }
    p->op.vt = &proc_vt;
    p->pid = pid;
    p->confined = confined;
    p->started = rb_now();
    p->timeout = timeout;
    p->timeout_at = timeout > 0 ? p->started + timeout : 0;
    p->op.fd[FD_PID] = pidfd;
    p->op.events[FD_PID] = POLLIN;
    if (pidfd < 0) {
        p->poll_every = 0.001;
        p->poll_at = p->started + p->poll_every;
    }
    set_deadline(p);
    set_nonblock(out[0]);
    set_nonblock(err[0]);
    p->op.fd[FD_OUT] = out[0];
    p->op.events[FD_OUT] = POLLIN;
    p->op.fd[FD_ERR] = err[0];
    p->op.events[FD_ERR] = POLLIN;
    p->op.fd[FD_IN] = -1;
    if (in) {
        /* copy: the continuation may run after the caller's stack moved on */
        p->in_copy = malloc(in_len ? in_len : 1);
        if (p->in_copy)
            memcpy(p->in_copy, in, in_len);
        p->in = p->in_copy;
        p->in_len = p->in_copy ? in_len : 0;
        set_nonblock(inp[1]);
        p->op.fd[FD_IN] = inp[1];
        p->op.events[FD_IN] = POLLOUT;
        if (p->in_len == 0)
            close_fd(&p->op, FD_IN);
    }
    lua_settop(L, 4);
    return rb_await(L, &p->op, exec_k);

fail_spawned:
    close(out[0]);
    close(err[0]);
    if (in)
        close(inp[1]);
    if (rc == ENOENT)
        return luaL_error(L, "%s: command not found: %s", words, argv[0]);
    return luaL_error(L, "%s: cannot start %s: %s", words, argv[0], strerror(rc));
fail_pipes:
    free(own_env);
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
        if (inp[i] >= 0)
            close(inp[i]);
    }
    return luaL_error(L, "%s: cannot create pipes: %s", words, strerror(rc));
}

static const char *argv_words(lua_State *L, int idx)
{
    int n = (int)luaL_len(L, idx);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1);
        if (i > 1)
            luaL_addchar(&b, ' ');
        rb_quote_arg(&b, s ? s : "");
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* exec(argv [, opts]) -> { code, stdout, stderr, time, ok } */
static int l_exec(lua_State *L)
{
    const char *argv[1024];
    lua_settop(L, 2);
    collect_argv(L, 1, argv, 1024); /* the strings live in the argv table */
    argv_words(L, 1);
    lua_pushfstring(L, "exec %s", lua_tostring(L, 3));
    lua_replace(L, 3); /* "exec ls -l": what messages call the command */
    return spawn_and_wait(L, argv);
}

/* The names of the variables opts.env passes (never their values: they
 * are often credentials), sorted so the audit reads the same every run. */
static void push_env_names(lua_State *L, int env)
{
    lua_newtable(L);
    int names = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, env)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue;
        /* insertion sort: a handful of names */
        lua_Integer i = n;
        for (; i > 0; i--) {
            lua_rawgeti(L, names, i);
            int later = strcmp(lua_tostring(L, -1), lua_tostring(L, -2)) > 0;
            if (!later) {
                lua_pop(L, 1);
                break;
            }
            lua_rawseti(L, names, i + 1);
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, names, i + 1);
        n++;
    }
}

/* The fields both rows share: where the command runs and with what. */
static void describe_opts(lua_State *L, int opts)
{
    if (!opts)
        return;
    if (lua_getfield(L, opts, "cwd") == LUA_TSTRING)
        rb_field_set(L, "cwd");
    else
        lua_pop(L, 1);
    if (lua_getfield(L, opts, "env") == LUA_TTABLE) {
        push_env_names(L, lua_gettop(L));
        rb_field_set(L, "env");
    }
    lua_pop(L, 1);
}

static void exec_describe(lua_State *L, rb_action *a)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    const char *argv[1024];
    int n = collect_argv(L, 1, argv, 1024);
    const char *words = argv_words(L, 1);
    rb_action_set(L, a, "verb", "run");
    rb_action_set(L, a, "target", "%s", argv[0]);
    rb_action_set(L, a, "words", "%s", words);
    a->opts = lua_istable(L, 2) ? 2 : 0;
    /* what the environment adds counts too: GIT_EXTERNAL_DIFF makes git diff a change */
    int env = a->opts && lua_getfield(L, 2, "env") == LUA_TTABLE ? lua_gettop(L) : 0;
    a->cls = rb_classify_argv_env(L, 1, env);
    if (a->opts)
        lua_pop(L, 1);
    /* a copy: the runbook may change its table after the call */
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    rb_field_set(L, "argv");
    rb_field_str(L, "command", words);
    describe_opts(L, a->opts);
}

/* sh(command [, opts]) -- /bin/sh -c command */
static int l_sh(lua_State *L)
{
    const char *cmd = luaL_checkstring(L, 1);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    lua_settop(L, 2);
    lua_pushfstring(L, "sh -c %s", cmd); /* 3 */
    return spawn_and_wait(L, argv);
}

static void sh_describe(lua_State *L, rb_action *a)
{
    const char *cmd = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    rb_action_set(L, a, "verb", "sh");
    rb_action_set(L, a, "target", "/bin/sh");
    rb_action_set(L, a, "words", "sh -c %s", cmd);
    a->cls = RB_MUTATE;
    a->opts = lua_istable(L, 2) ? 2 : 0;
    rb_field_str(L, "command", cmd);
    describe_opts(L, a->opts);
}

/* ---- scenarios and recordings ------------------------------------------------
 * A mock answers as the process would have, and a recording writes what it
 * did: the host's rb_process_answer / rb_process_recorded, which ssh shares.
 * Messages are the live ones, "exec ARGV: exit code N: <last line of stderr>". */

static const rb_field exec_fields[] = {{"argv", RB_LIST, RB_KEY},
                                       {"command", RB_STR, RB_MATCH},
                                       {"cwd", RB_STR, RB_MATCH},
                                       {"env", RB_SET, RB_MATCH},
                                       {NULL}};
static const rb_field sh_fields[] = {
    {"command", RB_STR, RB_KEY}, {"cwd", RB_STR, RB_MATCH}, {"env", RB_SET, RB_MATCH}, {NULL}};
#define RESPOND "code stdout stderr error"
/* what spawn_and_wait and describe_opts read; readonly: a->opts is the
 * options table, so the funnel honours it */
#define EXEC_OPTIONS "cwd env stdin timeout check readonly"

void mod_exec_open(lua_State *L)
{
    static const rb_fn fns[] = {{.name = "exec",
                                 .fn = l_exec,
                                 .cls = RB_BY_ARGS,
                                 .describe = exec_describe,
                                 .simulate = rb_process_simulated,
                                 .fields = exec_fields,
                                 .respond = RESPOND,
                                 .answer = rb_process_answer,
                                 .recorded = rb_process_recorded,
                                 .sig = "argv:table opts?:opts",
                                 .options = EXEC_OPTIONS},
                                {.name = "sh",
                                 .fn = l_sh,
                                 .cls = RB_MUTATE,
                                 .describe = sh_describe,
                                 .simulate = rb_process_simulated,
                                 .fields = sh_fields,
                                 .respond = RESPOND,
                                 .answer = rb_process_answer,
                                 .recorded = rb_process_recorded,
                                 .sig = "command:str opts?:opts",
                                 .options = EXEC_OPTIONS},
                                {.name = NULL}};
    rb_register(L, NULL, fns);
}
