/*
 * The public C API of runbook: what an embedder or a new primitive needs.
 *
 * A primitive is a Lua module whose functions are registered as rows of an
 * rb_fn table.  Every row states its effect class next to the function, so a
 * primitive cannot be added without saying whether it reads or mutates.  All
 * rows except RB_PURE ones are wrapped by the action funnel (src/funnel.c):
 *
 *     describe -> classify (readonly= override) -> redact -> confirm
 *              -> execute or simulate -> audit
 *
 * The modes (live, dry-run, confirm, scenario, repl) live in the funnel and
 * the runner; a primitive never looks at them.
 */
#ifndef RUNBOOK_RUNBOOK_H
#define RUNBOOK_RUNBOOK_H

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>

#define RB_VERSION "0.1.0"

typedef enum rb_class {
    RB_READ = 0,    /* observes the world; runs for real in dry-run */
    RB_MUTATE = 1,  /* changes the world; simulated in dry-run */
    RB_BY_ARGS = 2, /* describe() decides from the arguments (unknown: MUTATE) */
    RB_PURE = 3     /* touches nothing outside the process: not an action */
} rb_class;

/*
 * What the funnel knows about one call.  describe() fills it; every string
 * must stay alive for the duration of the call, so a describe hook pushes the
 * strings it builds with rb_action_set() (which anchors them) rather than
 * pointing at C buffers.
 */
typedef struct rb_action {
    const char *primitive; /* "exec", "fs" (set by the funnel) */
    const char *verb;      /* "run", "write", "GET", "restart" */
    const char *target;    /* a path, a URL, a container, argv[0] */
    const char *words;     /* the action in an operator's words, as printed
                              after "would: " and matched by scenarios:
                              "kubectl scale deployment/x --replicas=5" */
    rb_class cls;          /* RB_READ or RB_MUTATE after describe() */
    int opts;              /* stack index of the options table, 0 if none:
                              the funnel honours opts.readonly there */
} rb_action;

/* Fill a->verb/target/words/cls (and a->opts) from the arguments at 1..top.
 * May raise with luaL_argerror for misuse; must not yield. */
typedef void (*rb_describe_fn)(lua_State *L, rb_action *a);

/* Push the result a mutating call returns in dry-run; return the count.
 * NULL means { ok = true, dry_run = true }. */
typedef int (*rb_simulate_fn)(lua_State *L, const rb_action *a);

typedef struct rb_fn {
    const char *name;
    lua_CFunction fn;        /* the effect; may yield through rb_await() */
    rb_class cls;            /* fixed class, RB_BY_ARGS, or RB_PURE */
    rb_describe_fn describe; /* required unless RB_PURE */
    rb_simulate_fn simulate; /* optional */
    /* Optional: perform the call in a way that cannot change anything (a
     * database's read-only transaction, a rolled-back savepoint).  Called
     * with the call's arguments (a) when describe() left a->cls RB_BY_ARGS
     * because only trying can tell: if the rehearsal returns without
     * calling rb_rehearsed() the call was a read and its results are the
     * call's results; if it calls rb_rehearsed() the call is a write, which
     * the mode then performs or rehearses again as (b); and (b) in dry-run
     * for a MUTATE call, instead of simulate, so dry-run shows evidence
     * (rows that would change) rather than a canned answer.  May yield
     * through rb_await(). */
    lua_CFunction rehearse;
} rb_fn;

/* Register fns as fields of global table `module` (created if missing), or as
 * globals when module is NULL.  Non-pure rows are wrapped by the funnel. */
void rb_register(lua_State *L, const char *module, const rb_fn *fns);
/* Register fns as fields of the table at idx (an object's methods), wrapped
 * by the funnel as actions of `primitive`. */
void rb_register_at(lua_State *L, int idx, const char *primitive, const rb_fn *fns);

/* Called by a rehearse hook that found the call would change something:
 * what it returns is the dry-run result, and evidence (may be NULL) says
 * what would happen ("3 rows would change"); it is printed after `would:`
 * and recorded. */
void rb_rehearsed(lua_State *L, const char *evidence);

/* Set one string field of an action being described: which is one of
 * "verb", "target", "words".  The string is formatted like lua_pushfstring
 * and anchored for the duration of the call. */
void rb_action_set(lua_State *L, rb_action *a, const char *which, const char *fmt, ...);

/* Quote one argument the way a POSIX shell would need it, appended to b:
 * used to build `words` for argv-style commands. */
void rb_quote_arg(luaL_Buffer *b, const char *s);

/* A primitive about to raise for a failed result (a non-zero exit code, say)
 * notes the result table at idx first, so the audit record of the failed
 * action still carries its exit code and output. */
void rb_note_result(lua_State *L, int idx);

/* Boolean option helper: opts[key] if opts is a table at index opts, else dflt. */
int rb_opt_bool(lua_State *L, int opts, const char *key, int dflt);
/* Number option helper (seconds etc.); raises if present but not a number. */
double rb_opt_number(lua_State *L, int opts, const char *key, double dflt);
/* String option helper; returns NULL when absent; raises if not a string. */
const char *rb_opt_string(lua_State *L, int opts, const char *key);

/* ---- asynchronous work on the event loop (src/loop.c) -------------------
 * A primitive that waits for the outside world starts the work, describes
 * it as an rb_op and calls rb_await(), which yields the running coroutine
 * (or, where Lua cannot yield, runs the loop until the op is done).  When the
 * op completes, k is called with the op as its context. */
typedef struct rb_op rb_op;

typedef struct rb_op_vtable {
    /* fd i of the op is ready with revents; the op calls rb_op_done() when finished */
    void (*ready)(rb_op *op, int i, short revents);
    /* stop the work (kill the child, abort the transfer); why is "timed out
     * after 5.0 s" or "interrupted".  The op still calls rb_op_done(). */
    void (*cancel)(rb_op *op, const char *why);
    /* the op's own deadline passed (set with rb_op_deadline) */
    void (*expired)(rb_op *op);
    /* release resources and free the op; called exactly once, by rb_op_free
     * (or by the loop at exit for an op whose coroutine was abandoned) */
    void (*destroy)(rb_op *op);
} rb_op_vtable;

#define RB_OP_MAXFD 4
struct rb_op {
    const rb_op_vtable *vt;
    int fd[RB_OP_MAXFD]; /* -1 for unused */
    short events[RB_OP_MAXFD];
    double deadline; /* monotonic seconds, 0 = none (the loop also applies
                        step and run deadlines and cancels on expiry) */
    int done;
    char error[256]; /* non-empty: the op failed (cancelled, timed out) */
    /* owned by the loop */
    int cancelled; /* cancel() was called: the loop calls it at most once */
    void *task;    /* the task (coroutine) waiting for it */
    lua_State *waiter;
    rb_op *next, *prev;   /* the loop's list of ops in flight */
    rb_op *anext, *aprev; /* the loop's list of ops not yet freed */
};

/* Start waiting for op (malloc'd by the primitive; nothing may raise between
 * its allocation and this call).  When the op is done, k(L, LUA_YIELD, op) is
 * called -- in the same C frame when Lua could not yield -- and k must push
 * the results (or raise with op->error), after rb_op_free(op): copy what is
 * needed to the Lua stack first. */
int rb_await(lua_State *L, rb_op *op, lua_KFunction k);
/* Release an op after its continuation has used it (calls vt->destroy). */
void rb_op_free(rb_op *op);
/* Mark op finished (from its ready/cancel/expired hook). */
void rb_op_done(rb_op *op);
/* Monotonic clock in seconds. */
double rb_now(void);

/* ---- secrets ------------------------------------------------------------- */
/* Register a value that must never be written anywhere (redacted as ****). */
void rb_secret_add(lua_State *L, const char *value);
/* Push a copy of s with every registered secret replaced by ****. */
const char *rb_redact(lua_State *L, const char *s, size_t len);

#endif
