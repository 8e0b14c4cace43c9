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
    const char *fn;        /* the row's name: "get", "rollout_restart" (set by the funnel) */
    const char *verb;      /* "run", "write", "GET", "restart" */
    const char *target;    /* a path, a URL, a container, argv[0] */
    const char *words;     /* the action in an operator's words, as printed
                              after "would: " and matched by scenarios:
                              "kubectl scale deployment/x --replicas=5" */
    rb_class cls;          /* RB_READ or RB_MUTATE after describe() */
    int opts;              /* stack index of the options table, 0 if none:
                              the funnel honours opts.readonly there */
} rb_action;

/* Fill a->verb/target/words/cls (and a->opts) from the arguments at 1..top,
 * and the action's structured fields with rb_field_*().  May raise with
 * luaL_argerror for misuse; must not yield. */
typedef void (*rb_describe_fn)(lua_State *L, rb_action *a);

/* Push the result a mutating call returns in dry-run; return the count.
 * NULL means { ok = true, dry_run = true }. */
typedef int (*rb_simulate_fn)(lua_State *L, const rb_action *a);

/* ---- the structured fields of an action ---------------------------------
 * A row lists the fields its describe() sets.  Every mode reads them: the
 * audit and JSON events carry them, a scenario mock matches on the ones
 * flagged RB_MATCH (by type: RB_STR a glob, RB_LIST element by element,
 * RB_SET every wanted element present, RB_MAP a subset with keys compared
 * without case, numbers and booleans equal; "****" matches any value), and
 * --record writes the RB_KEY ones as the mock that answers the call. */
typedef enum rb_ftype { RB_STR, RB_INT, RB_NUM, RB_BOOL, RB_LIST, RB_SET, RB_MAP } rb_ftype;
enum { RB_MATCH = 1, RB_KEY = 2 | 1 };

typedef struct rb_field {
    const char *name;
    rb_ftype type;
    int flags; /* RB_MATCH, RB_KEY (a recording matches on it; implies RB_MATCH) */
} rb_field;

/* In a describe hook: set field `name` of the action being described to the
 * value on top of the stack (popped).  The name must be one of the row's
 * fields.  The helpers push and set in one call. */
void rb_field_set(lua_State *L, const char *name);
void rb_field_str(lua_State *L, const char *name, const char *value); /* NULL: not set */
void rb_field_int(lua_State *L, const char *name, lua_Integer value);

/* Row flags */
enum {
    RB_NOTICE = 1, /* a notification: a scenario's expect.notifications judges it
                      (field "channel", else the verb; field "text") */
    /* the call's argument 1 is a file, argument 2 its new content (replaces
     * it; with RB_CONTENT_APPEND, added at its end): `run --dry-run --diff`
     * shows the change as a diff against the file as it is */
    RB_CONTENT = 2,
    RB_CONTENT_APPEND = 4,
};

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

    /* ---- what every mode reads (Terraform's schema: modes never know a
     * primitive by name) ---- */
    const rb_field *fields; /* the structured fields of its action, {NULL}-ended */
    /* What a scenario mock may answer with, space-separated ("status body
     * json headers error"); a key K also accepts K_file (read beside the
     * scenario; json_file is decoded).  NULL: "json result error". */
    const char *respond;
    /* A mock's answer -> the call's results.  Called as
     * answer(respond, info, args...) where info is the action
     * { primitive, fn, verb, target, words, class, fields }; returns the
     * results or raises as the real call would (respond.error, a failed
     * exit code with check).  NULL: respond.error raises "<words>: <error>",
     * respond.json or respond.result is the result, else a copy of respond. */
    lua_CFunction answer;
    /* The call's real outcome -> the respond table a recording writes.
     * Called as recorded(info, error_or_nil, results...); returns one table.
     * NULL: { error = cause } or { json = result } (a table) or
     * { result = result } (a string). */
    lua_CFunction recorded;
    /* Arguments that are paths, as a bit mask (bit 0: argument 1): a row with
     * paths runs for real in a scenario, inside the scenario's scratch
     * directory, those arguments re-rooted there. */
    unsigned paths;
    /* Where the world is replaced by mocks, the call's result when it is an
     * object rather than data (db.open's stand-in connection). */
    lua_CFunction stand_in;
    int flags; /* RB_NOTICE, RB_CONTENT, RB_CONTENT_APPEND */
    /* The fields that name what the action acts on, space-separated ("kind
     * name namespace"): a change to it that a rehearsal only simulated is
     * remembered for the rest of the run, and a later read of the same
     * object with an after_simulated hook is answered by that hook -- as the
     * rehearsal's world, where the change happened, would answer -- instead
     * of watching the real one for a change that never came (a
     * rollout_status after a simulated scale). */
    const char *object;
    rb_simulate_fn after_simulated;
    /* The call's shape, checked before anything else is done with it (the
     * describe hook included), by the same checker for every row, so that a
     * mistake raises instead of being ignored: sig lists the parameters in
     * order, "url opts?:opts" -- `?` optional, after `:` the types (str num
     * int bool table fn any opts, `|` between them; default any), `...`
     * last for any more; options lists the keys the parameter of type opts
     * accepts ("timeout headers check readonly"), so `{ timout = 1 }` raises
     * "unknown option 'timout' for http.get (did you mean 'timeout'?)".
     * `runbook check` reads both to find unknown keys without running, and
     * `runbook reference` prints them.  A method's sig leaves out self. */
    const char *sig;
    const char *options;
    /* Optional, for `run --dry-run --diff`: what the simulated call would
     * change, as `kubectl diff` shows it.  Called with the call's arguments
     * once the call was simulated; returns the unified diff ("" when it
     * would change nothing), or nil and why there is none.  It must change
     * nothing: it may read, and ask a server to rehearse the change (a
     * server-side dry run); its processes run confined like every process
     * of a rehearsal.  (A file write declares RB_CONTENT instead.) */
    lua_CFunction diff;
} rb_fn;

/* The modules an engine is created with (Lua's linit.c is the model): the
 * embedder's table, {NULL}-ended.  open registers the module's rows. */
typedef struct rb_module {
    const char *name;
    void (*open)(lua_State *L);
    void (*close)(void); /* optional: process-wide resources (libcurl) */
    /* Optional: the keys of the module's section of runbook.yaml and the
     * type of each, "key:type ..." (type: map, list, str, num, bool), so
     * that a mistyped or misshapen setting is refused with its file and line
     * when the config loads, not when a call first reads it.  NULL: any
     * mapping. */
    const char *config;
} rb_module;

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

/* Push an array of the string keys of table t, sorted: a table's own order
 * is no order, and output and URLs should not change from run to run. */
void rb_push_sorted_keys(lua_State *L, int t);

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
    int cancelled;        /* cancel() was called: the loop calls it at most once */
    void *task;           /* the task (coroutine) waiting for it */
    struct rb_loop *loop; /* the engine's loop it runs on */
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
/* 1 when s is exactly a registered secret: a number whose text is one is
 * written as "****" (a secret param of type number). */
int rb_is_secret(lua_State *L, const char *s, size_t len);

#endif
