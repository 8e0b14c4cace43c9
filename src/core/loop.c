/*
 * The event loop: tasks (coroutines) waiting on ops, polled together.
 * See loop.h for the model.  Habits taken from Nmap's NSE: work that
 * completes at once does not yield; a parked coroutine stays referenced
 * (registry ref held by its task); ops that a dying coroutine leaves behind
 * are cancelled and reaped at exit, so no child outlives the run.
 */
#include "loop.h"
#include "engine.h"
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One engine's loop: its ops and tasks.  What is the process's -- signals,
 * the children to kill on a third Ctrl-C, a library's own poll (libcurl's
 * multi handle is one per process) -- stays static below. */
struct rb_loop {
    rb_op *active; /* ops in flight */
    rb_op *allops; /* ops not yet freed (in flight or awaiting their continuation) */
    rb_task *runq_head, *runq_tail; /* tasks ready to resume */
    rb_task *current;               /* the task being resumed */
};

static int sigpipe_fds[2] = {-1, -1};
static volatile sig_atomic_t sig_count;
static loop_poller_fn poller;
static int (*external_busy)(void);

rb_loop *loop_new(void)
{
    return calloc(1, sizeof(rb_loop));
}

static rb_loop *loop_of(lua_State *L)
{
    return rb_engine_of(L)->loop;
}

/* Process groups of running children, readable from the signal handler so
 * a third Ctrl-C can kill them before _exit (async-signal-safe: killpg),
 * and from the watchdog's thread (atomic: lock-free for pid_t). */
#define MAX_CHILDREN 1024
static _Atomic pid_t children[MAX_CHILDREN];

void loop_child_add(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
}

void loop_child_remove(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

/* Each slot read once: a slot emptied between a test and the kill would
 * make it killpg(0), our own group.  A pid is removed only after its
 * waitpid, in the loop's code; the watchdog calls this when the main thread
 * has been stuck elsewhere for seconds, so no pid here can have been reaped
 * and reused.  Exec starts every child as its own group's leader. */
void loop_kill_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        pid_t p = children[i];
        if (p > 0)
            kill(-p, SIGKILL);
    }
}

double rb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- signals ------------------------------------------------------------ */

static void on_signal(int sig)
{
    int saved = errno;
    sig_count++;
    if (sigpipe_fds[1] >= 0) {
        ssize_t r = write(sigpipe_fds[1], "!", 1);
        (void)r;
    }
    if (sig_count >= 3) {
        /* the operator insists: kill what we started and leave; the audit
         * database stays consistent because every record is a transaction */
        loop_kill_children();
        _exit(sig == SIGTERM ? 143 : 130);
    }
    errno = saved;
}

void loop_install_signals(void)
{
    if (sigpipe_fds[0] < 0 && pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        sigpipe_fds[0] = sigpipe_fds[1] = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a child that closes its stdin gives us EPIPE */
}

int loop_interrupted(void)
{
    return sig_count;
}

int loop_signal_fd(void)
{
    return sigpipe_fds[0];
}

void loop_clear_interrupts(void)
{
    char buf[64];
    if (sigpipe_fds[0] >= 0)
        while (read(sigpipe_fds[0], buf, sizeof buf) > 0)
            ;
    sig_count = 0;
}

/* ---- ops and tasks ------------------------------------------------------ */

static void queue(rb_loop *lp, rb_task *t)
{
    if (t->runnable || t->done)
        return;
    t->runnable = 1;
    t->next_runnable = NULL;
    if (lp->runq_tail)
        lp->runq_tail->next_runnable = t;
    else
        lp->runq_head = t;
    lp->runq_tail = t;
}

static rb_task *dequeue(rb_loop *lp)
{
    rb_task *t = lp->runq_head;
    if (t) {
        lp->runq_head = t->next_runnable;
        if (!lp->runq_head)
            lp->runq_tail = NULL;
        t->runnable = 0;
    }
    return t;
}

rb_task *loop_task_of(lua_State *L)
{
    return *(rb_task **)lua_getextraspace(L);
}

static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    watchdog_beat(); /* Lua makes progress: not stuck in a C function */
    loop_check_hook(L);
}

static const char *task_stop_reason(rb_task *t)
{
    if (sig_count)
        return "interrupted";
    if (t && t->deadline > 0 && rb_now() >= t->deadline)
        return t->deadline_why ? t->deadline_why : "timed out";
    return NULL;
}

const char *loop_stop_reason(lua_State *L)
{
    rb_task *t = loop_task_of(L);
    rb_loop *lp = loop_of(L); /* NULL while the engine is being freed */
    return task_stop_reason(t ? t : lp ? lp->current : NULL);
}

const char *loop_stop_reason_current(rb_loop *lp)
{
    return lp && lp->current ? task_stop_reason(lp->current) : NULL;
}

int loop_in_task(rb_loop *lp)
{
    return lp && lp->current;
}

void loop_check_hook(lua_State *L)
{
    const char *why = loop_stop_reason(L);
    if (why) {
        /* raise again soon: a runbook's pcall has its own copy of this error,
         * and whatever it does next must meet it again */
        lua_sethook(L, hook, LUA_MASKCOUNT, 100);
        luaL_where(L, 0); /* in a hook, level 0 is the Lua function being run */
        lua_pushstring(L, why);
        lua_concat(L, 2);
        lua_error(L);
    }
}

rb_task *loop_spawn(lua_State *L, int nargs, double deadline, const char *why)
{
    rb_task *t = calloc(1, sizeof *t);
    if (!t)
        luaL_error(L, "out of memory");
    lua_State *co = lua_newthread(L);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->co = co;
    lua_xmove(L, co, nargs + 1);
    *(rb_task **)lua_getextraspace(co) = t;
    t->nres = nargs; /* arguments for the first resume */
    rb_loop *lp = loop_of(L);
    rb_task *parent = loop_task_of(L);
    if (!parent)
        parent = lp->current;
    if (parent && parent->deadline > 0 && (deadline <= 0 || parent->deadline < deadline)) {
        deadline = parent->deadline;
        why = parent->deadline_why;
    }
    t->deadline = deadline;
    t->deadline_why = why;
    /* checks interrupts and deadlines while Lua code runs without calling
     * a primitive; every 10k instructions costs nothing measurable */
    lua_sethook(co, hook, LUA_MASKCOUNT, 10000);
    t->loop = lp;
    queue(lp, t);
    return t;
}

void loop_task_free(lua_State *L, rb_task *t)
{
    if (!t)
        return;
    if (t->runnable) { /* unlink from the run queue */
        rb_loop *lp = t->loop;
        rb_task **pp = &lp->runq_head, *prev = NULL;
        while (*pp && *pp != t) {
            prev = *pp;
            pp = &(*pp)->next_runnable;
        }
        if (*pp)
            *pp = t->next_runnable;
        if (lp->runq_tail == t)
            lp->runq_tail = prev;
    }
    *(rb_task **)lua_getextraspace(t->co) = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
    free(t);
}

/* An allocation the engine refused shows as Lua's bare "not enough memory":
 * say which limit it was, or that the run was stopping. */
static void explain_failure(rb_task *t)
{
    rb_engine *E = rb_engine_of(t->co);
    if (E->mem_exceeded) {
        size_t lim = E->mem_limit;
        char size[64];
        if (lim % (1u << 30) == 0)
            snprintf(size, sizeof size, "%zu GiB", lim >> 30);
        else if (lim % (1u << 20) == 0)
            snprintf(size, sizeof size, "%zu MiB", lim >> 20);
        else
            snprintf(size, sizeof size, "%zu bytes", lim);
        lua_pushfstring(t->co, "runbook Lua used more than the memory limit of %s (--max-memory)",
                        size);
        lua_replace(t->co, -2);
        return;
    }
    const char *why = task_stop_reason(t);
    if (E->stop_refused && why) {
        E->stop_refused = 0;
        lua_pushstring(t->co, why);
        lua_replace(t->co, -2);
    }
}

static void resume(rb_task *t)
{
    int nargs = 0;
    if (!t->done && t->nres > 0 && lua_status(t->co) == LUA_OK && !t->op) {
        nargs = t->nres; /* first resume: the arguments given to loop_spawn */
        t->nres = 0;
    }
    rb_loop *lp = t->loop;
    rb_task *prev = lp->current;
    lp->current = t;
    watchdog_task wd;
    watchdog_task_enter(t->deadline, t->deadline_why, &wd);
    int nres = 0;
    int st = lua_resume(t->co, NULL, nargs, &nres);
    watchdog_task_leave(&wd);
    lp->current = prev;
    if (st == LUA_YIELD) {
        lua_pop(t->co, nres);
        if (!t->op) /* a bare coroutine.yield() in a step: just go on */
            queue(lp, t);
        return;
    }
    if (st != LUA_OK)
        explain_failure(t);
    t->done = 1;
    t->failed = st != LUA_OK;
    t->nres = st == LUA_OK ? nres : 1;
    if (t->on_done)
        t->on_done(t, t->on_done_ud);
}

static void unlink_active(rb_op *op)
{
    rb_loop *lp = op->loop;
    if (op->prev)
        op->prev->next = op->next;
    else if (lp && lp->active == op)
        lp->active = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->next = op->prev = NULL;
}

void rb_op_done(rb_op *op)
{
    if (op->done)
        return;
    op->done = 1;
    unlink_active(op);
    if (op->waiter && op->task) {
        rb_task *t = op->task;
        t->op = NULL;
        queue(op->loop, t);
    }
}

void rb_op_free(rb_op *op)
{
    if (!op)
        return;
    if (!op->done)
        unlink_active(op);
    if (op->aprev)
        op->aprev->anext = op->anext;
    else if (op->loop && op->loop->allops == op)
        op->loop->allops = op->anext;
    if (op->anext)
        op->anext->aprev = op->aprev;
    op->vt->destroy(op);
}

void loop_cancel_all(rb_loop *lp, const char *why)
{
    for (rb_op *op = lp->active; op;) {
        rb_op *next = op->next;
        if (!op->cancelled) {
            op->cancelled = 1;
            op->vt->cancel(op, why);
        }
        op = next;
    }
}

static int any_work(rb_loop *lp)
{
    return lp->active || lp->runq_head || (external_busy && external_busy());
}

static void poll_once(rb_loop *lp)
{
    enum { MAXP = 256 };
    struct pollfd pfd[MAXP];
    rb_op *owner[MAXP];
    int index[MAXP];
    unsigned n = 0;
    if (sigpipe_fds[0] >= 0) {
        pfd[n].fd = sigpipe_fds[0];
        pfd[n].events = POLLIN;
        pfd[n].revents = 0;
        owner[n] = NULL;
        index[n] = -1;
        n++;
    }
    double now = rb_now(), wake = 0;
    for (rb_op *op = lp->active; op; op = op->next) {
        for (int i = 0; i < RB_OP_MAXFD && n < MAXP; i++) {
            if (op->fd[i] < 0)
                continue;
            pfd[n].fd = op->fd[i];
            pfd[n].events = op->events[i];
            pfd[n].revents = 0;
            owner[n] = op;
            index[n] = i;
            n++;
        }
        double d = op->deadline;
        rb_task *t = op->task;
        if (!op->cancelled && t && t->deadline > 0 && (d <= 0 || t->deadline < d))
            d = t->deadline;
        if (d > 0 && (wake <= 0 || d < wake))
            wake = d;
    }
    int timeout_ms = -1;
    if (wake > 0) {
        double ms = (wake - now) * 1000.0;
        timeout_ms = ms <= 0 ? 0 : (int)(ms + 0.999);
    }
    /* waiting here answers signals and deadlines: not stuck */
    watchdog_waiting(1);
    int r = poller ? poller(pfd, n, timeout_ms) : poll(pfd, n, timeout_ms);
    watchdog_waiting(0);
    if (r < 0 && errno != EINTR)
        r = 0;
    if (r > 0) {
        for (unsigned i = 0; i < n; i++) {
            if (!pfd[i].revents)
                continue;
            if (!owner[i]) {
                char buf[64];
                while (read(sigpipe_fds[0], buf, sizeof buf) > 0)
                    ;
                continue;
            }
            rb_op *op = owner[i];
            if (!op->done && op->fd[index[i]] == pfd[i].fd)
                op->vt->ready(op, index[i], pfd[i].revents);
        }
    }
    if (sig_count)
        loop_cancel_all(lp, "interrupted");
    now = rb_now();
    for (rb_op *op = lp->active; op;) {
        rb_op *next = op->next; /* the hooks may complete op, never another */
        rb_task *t = op->task;
        if (!op->cancelled && t && t->deadline > 0 && now >= t->deadline) {
            op->cancelled = 1;
            op->vt->cancel(op, t->deadline_why ? t->deadline_why : "timed out");
        }
        if (!op->done && op->deadline > 0 && now >= op->deadline) {
            op->deadline = 0;
            op->vt->expired(op);
        }
        op = next;
    }
}

static void run_until(rb_loop *lp, volatile int *flag)
{
    while (!*flag) {
        watchdog_beat();
        rb_task *t = dequeue(lp);
        if (t) {
            resume(t);
            continue;
        }
        if (!any_work(lp)) {
            /* nothing can make progress: a join whose tasks were lost.  Never
             * hang an operator's terminal; the caller sees the flag unset. */
            fprintf(stderr, "runbook: internal error: nothing left to wait for\n");
            return;
        }
        poll_once(lp);
    }
}

void loop_wait(lua_State *L, rb_task *t)
{
    run_until(loop_of(L), &t->done);
}

int rb_await(lua_State *L, rb_op *op, lua_KFunction k)
{
    rb_loop *lp = loop_of(L);
    op->loop = lp;
    op->done = 0;
    op->cancelled = 0;
    op->anext = lp->allops;
    op->aprev = NULL;
    if (lp->allops)
        lp->allops->aprev = op;
    lp->allops = op;
    op->prev = NULL;
    op->next = lp->active;
    if (lp->active)
        lp->active->prev = op;
    lp->active = op;
    rb_task *t = loop_task_of(L);
    op->task = t ? t : lp->current;
    if (sig_count) {
        op->cancelled = 1;
        op->vt->cancel(op, "interrupted");
    }
    if (t && lua_isyieldable(L) && !op->done) {
        op->waiter = L;
        t->op = op;
        return lua_yieldk(L, 0, (lua_KContext)op, k);
    }
    /* not in a task coroutine of ours (a user coroutine, a metamethod, a
     * table.sort comparator...): run the loop right here until op is done */
    op->waiter = NULL;
    run_until(lp, &op->done);
    return k(L, LUA_YIELD, (lua_KContext)op);
}

void loop_set_poller(loop_poller_fn fn)
{
    poller = fn;
}

void loop_set_external_busy(int (*busy)(void))
{
    external_busy = busy;
}

/* At exit: cancel whatever is still running, give it a moment to die (the
 * ops escalate TERM to KILL themselves), then free everything. */
void loop_shutdown(rb_loop *lp)
{
    if (!lp)
        return;
    loop_cancel_all(lp, "runbook is exiting");
    double give_up = rb_now() + 5.0;
    while (lp->active && rb_now() < give_up)
        poll_once(lp);
    while (lp->allops)
        rb_op_free(lp->allops);
    free(lp);
}
