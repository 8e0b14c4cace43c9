/*
 * The one event loop.  Single thread: every step, `parallel` item and REPL
 * line runs in a coroutine ("task").  Primitives start their work, describe
 * it as an rb_op and yield; the loop polls the ops' file descriptors
 * together, fires deadlines, turns SIGINT into cancellations and resumes a
 * task when its op is done.  libcurl's multi interface plugs in through
 * loop_set_poller(): its curl_multi_poll() takes our descriptors as extra
 * fds, so HTTP transfers and child processes progress together.
 */
#ifndef RUNBOOK_LOOP_H
#define RUNBOOK_LOOP_H

#include "runbook/runbook.h"
#include <poll.h>

typedef struct rb_task rb_task;
typedef struct rb_loop rb_loop;

/* An engine's loop (its ops and tasks); freed by loop_shutdown. */
rb_loop *loop_new(void);
typedef void (*rb_task_done_fn)(rb_task *t, void *ud);

struct rb_task {
    lua_State *co;
    int ref; /* registry reference keeping co alive */
    int done;
    int failed;               /* finished with an error; the error value is on co's stack */
    int nres;                 /* results on co's stack when done */
    double deadline;          /* monotonic, 0 = none; inherited by tasks it starts */
    const char *deadline_why; /* "step timed out after 5 s" */
    rb_op *op;                /* the op it waits for, if any */
    rb_task_done_fn on_done;
    long long tag; /* the owner's (parallel: the item's index) */
    void *on_done_ud;
    rb_task *next_runnable;
    int runnable;
    rb_loop *loop;
};

/* Create a task running the function on top of L's stack with nargs
 * arguments below it (function and arguments are moved to the coroutine).
 * The task is queued and starts on the next loop iteration. */
rb_task *loop_spawn(lua_State *L, int nargs, double deadline, const char *why);
/* Run the loop until t is done.  May be called from inside a task (nested). */
void loop_wait(lua_State *L, rb_task *t);
/* Forget a finished task (releases the coroutine). */
void loop_task_free(lua_State *L, rb_task *t);
/* The task whose coroutine is L, or NULL. */
rb_task *loop_task_of(lua_State *L);

/* Signals: install the SIGINT/SIGTERM handlers (self-pipe). */
void loop_install_signals(void);
/* Number of SIGINTs received. */
int loop_interrupted(void);
/* The REPL: the signal self-pipe, readable after a SIGINT, to poll at the
 * prompt; and forgetting the Ctrl-Cs already dealt with (a statement
 * interrupted, a line cleared), so the next statement runs. */
int loop_signal_fd(void);
void loop_clear_interrupts(void);
/* Cancel every op in flight with `why` (interrupt, run timeout). */
void loop_cancel_all(rb_loop *lp, const char *why);

/* Pluggable poll, for libcurl: default is poll(2).  The function must poll
 * fds (filling revents) and any sources of its own, for at most timeout_ms. */
typedef int (*loop_poller_fn)(struct pollfd *fds, unsigned nfds, int timeout_ms);
void loop_set_poller(loop_poller_fn fn);
/* Work the poller owns is in flight (the loop must keep polling). */
void loop_set_external_busy(int (*busy)(void));

/* Children being run, so the third Ctrl-C can kill their process groups. */
#include <sys/types.h>
void loop_child_add(pid_t pid);
void loop_child_remove(pid_t pid);
/* SIGKILL every child's process group (the third Ctrl-C, the watchdog). */
void loop_kill_children(void);
/* Cancel and reap everything still in flight; free all ops. */
void loop_shutdown(rb_loop *lp);

/* The Lua-facing count hook checks interrupts and deadlines in busy Lua. */
void loop_check_hook(lua_State *L);
/* Why the Lua running in L must stop ("interrupted", its task's deadline
 * passed), or NULL: what the sandbox's pcall re-raises rather than catches. */
const char *loop_stop_reason(lua_State *L);
/* The same for the task being resumed, where no lua_State is at hand (the
 * allocator); NULL outside tasks.  loop_in_task: a task is being resumed. */
const char *loop_stop_reason_current(rb_loop *lp);
int loop_in_task(rb_loop *lp);

#endif
