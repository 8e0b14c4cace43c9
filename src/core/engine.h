/*
 * The engine: one Lua state, its sandbox, the run being executed and the
 * options that shape it.  The engine is the Lua state's allocator data:
 * rb_engine_of(L) from any coroutine.
 */
#ifndef RUNBOOK_ENGINE_H
#define RUNBOOK_ENGINE_H

#include "runbook/runbook.h"
#include "strategy.h"
#include <stdio.h>

typedef struct audit audit;
typedef struct rb_config rb_config;

typedef enum rb_mode { MODE_LIVE, MODE_DRY_RUN, MODE_SCENARIO, MODE_REPL } rb_mode;

/* What the runbook file may do while it is being loaded. */
typedef enum rb_purpose {
    PURPOSE_RUN, /* primitives work everywhere */
    PURPOSE_LIST /* list/show/check: any action raises; nothing may touch the world */
} rb_purpose;

typedef enum rb_output { OUT_TEXT, OUT_JSON } rb_output;

/* The values redacted as **** from everything written (src/core/redact.c). */
typedef struct rb_secrets {
    char **values; /* longest first */
    size_t *lens;
    int n;
} rb_secrets;
void rb_secrets_clear(rb_secrets *sv);
/* rb_secret_add, saying (once, as a warning naming what) that a value
 * shorter than 4 bytes is not searched for; returns 1 if registered. */
int rb_secret_add_named(lua_State *L, const char *value, const char *what);
/* The resolved params at resolved whose declaration in spec says secret:
 * their values registered by type (strings and numbers by their text, lists
 * and tables value by value) and their names kept for rb_params_json. */
void rb_secret_params(lua_State *L, int spec, int resolved);
/* The params table at idx as JSON, the secret params' values written ****
 * whatever their type (by declaration: a boolean or a short value too). */
struct jsonw;
void rb_params_json(struct jsonw *w, lua_State *L, int idx);

struct rb_engine {
    lua_State *L;
    const rb_strategy *strategy; /* the mode (src/modes): what the funnel does with actions */
    struct rb_loop *loop;        /* its event loop: ops and tasks (src/core/loop.c) */
    rb_secrets secrets;
    rb_strategy layers[3]; /* strategies composed for this engine (record over dry-run) */
    int n_layers;
    const rb_module *modules; /* the embedder's table (src/cli/modules.c) */
    rb_mode mode;             /* what the run record calls it: live, dry-run, repl */
    int dry_run;              /* mutating actions are simulated (--dry-run, the REPL's .dry on) */
    rb_purpose purpose;
    rb_output output;
    int confirm_steps;   /* --confirm */
    int assume_yes;      /* --yes */
    int confirm_actions; /* the REPL's .confirm: ask before every mutating action */
    int color;           /* colour on the human view */
    int verbose;         /* show read actions too */
    int prompted;        /* the step-confirm prompt already showed this step's header */
    FILE *out;           /* the human view / JSON events (stdout) */
    FILE *tty;           /* controlling terminal for prompts, or NULL */

    rb_config *config;
    audit *audit; /* NULL with --no-audit */

    /* the run */
    char run_id[40];   /* provisional until the log allocates it (run_id_logged) */
    int run_id_logged; /* the audit log gave run_id with the run's first record */
    int locks_held;    /* run locks taken in the audit log (run_locks.c) */
    double lock_wait;  /* --wait-lock: seconds to wait for a held run lock */
    char resumed_from[40];
    const char *runbook_name; /* from runbook{} metadata (anchored in the registry) */
    const char *runbook_title;
    char path[4096];
    char sha256[65];
    char *params_json; /* redacted, malloc'd */
    double started;    /* wall clock */
    double started_mono;
    const char *env_name; /* --env */
    int step_index;       /* 1-based index of the running step, 0 outside */
    const char *step_name;
    double run_deadline; /* monotonic, 0 = none (--timeout) */
    char run_why[128];   /* the error run_deadline raises: "run timed out after 2 s (--timeout)" */
    double step_deadline;

    /* set asynchronously by SIGINT; the loop turns it into cancellations */
    volatile int interrupted;
    int timed_out; /* the run deadline passed (the run's, not a step's: set by the runner) */

    /* the `would:`/action counters of this run, for the summary */
    int n_actions, n_mutations, n_simulated;
    /* a runbook's load failed for a reason that is the user's input
     * (bad param, missing declaration): exit 2, not 1 */
    int input_error;
    /* listing refused to run a primitive (top-level code that acts) */
    int list_refused;
    const char *list_refused_what; /* the first primitive refused */
    /* the row and action a strategy's answer hook is answering (a scenario) */
    const rb_fn *answering_row;
    const rb_action *answering;
    /* what the strategy keeps for the run (a scenario's judge), its own */
    void *strategy_data;
    /* the clock offset: a scenario's virtual sleeps move now() and os.time */
    double vclock; /* seconds slept so far */
    /* the REPL's view: told of every action once it is recorded */
    void (*on_action)(struct rb_engine *E, lua_State *L, const rb_action *a,
                      const rb_action_result *r);
    /* the step that failed the run (scenario expectations) */
    int failed_index;
    char failed_step[512];
    char failed_error[1024];
    /* nesting of run_runbook(), for record names */
    int depth;
    /* runbook Lua's memory: bytes in use and the limit (--max-memory, 0 =
     * none); mem_exceeded: the limit refused an allocation, so the sandbox's
     * pcall re-raises and the task's error names the limit; stop_refused: a
     * large allocation was refused because the run is stopping */
    size_t mem_used, mem_limit;
    int mem_exceeded;
    int stop_refused;
};

rb_engine *rb_engine_of(lua_State *L);

/* The engine's own functions (src/core/base.c, src/core/rbfile.c). */
void mod_base_open(
    lua_State *L);              /* log, print, sleep, now, env, secret, check, confirm, parallel */
void rbfile_open(lua_State *L); /* runbook{}, step() */

/* Create the Lua state with the sandboxed standard library and every
 * primitive registered.  Returns NULL (with a message in err) on failure. */
rb_engine *engine_new(const rb_module *modules, char *err, size_t errlen);
/* Limits for every engine made from now on: `runbook test` sets them once
 * for all its scenarios, each of which gets a fresh engine.  max_memory 0
 * keeps the default (1 GiB); timeout > 0 gives each engine a run deadline
 * that long after it is made, raising why. */
void engine_default_limits(size_t max_memory, double timeout, const char *why);
void engine_free(rb_engine *E);

const char *mode_name(rb_mode m);

/* Run under strategy S from now on (the session picks it; the REPL's .dry
 * switches).  E->dry_run follows: changes are only rehearsed. */
void engine_use(rb_engine *E, const rb_strategy *S);
/* A strategy made of base with decorator's hooks on top (record, confirm):
 * every hook decorator sets replaces base's. */
void strategy_compose(rb_strategy *out, const rb_strategy *base, const rb_strategy *decorator);
/* Put decorator's hooks over the engine's current strategy (--record,
 * --confirm); -1 when too many are stacked. */
int engine_decorate(rb_engine *E, const rb_strategy *decorator);

/* The engine's own Lua (src/lua/NAME.lua): run it once, when first needed;
 * push its function rt[fn] (loading NAME first). */
void rb_internal_load(lua_State *L, const char *name);
void rb_push_internal(lua_State *L, const char *name, const char *fn);
/* Push { name = source } of the embedded Lua (stdlib and the engine's
 * own): what coverage reads `-- mutates:` lines from.  A lua_CFunction. */
int rb_embedded_sources(lua_State *L);
/* Push { primitive, verb, target, words, class } of an action, for the Lua
 * that answers (scenarios) or writes down (recording) actions. */
void rb_push_action_info(lua_State *L, const rb_action *a);
/* Push the structured fields of an action in flight (an empty table if none). */
void rb_push_action_fields(lua_State *L, const rb_action *a);

/* Push "file:line: " of the runbook code that made the current call, past
 * the engine's own Lua (wait_until calling sleep): for error messages. */
void rb_where(lua_State *L);

/* Print an error value (string, or anything with __tostring) with redaction. */
const char *engine_errmsg(lua_State *L, int idx);

#endif
