/*
 * `runbook repl`: the incident console.  Lua as lua.c runs it (an
 * expression prints its values, an incomplete chunk continues on the next
 * line, an error prints a short traceback and the session goes on), with
 * every primitive at hand and safe by default: mutating actions ask y/n
 * (unless --yes or .confirm off), `.dry on` simulates them, and every
 * action is recorded under one audit run of mode `repl`.
 *
 * On a terminal the line editor is libedit (edit_lazy.h) through its
 * callback interface: the REPL polls the terminal and the Ctrl-C self-pipe
 * together, so Ctrl-C at the prompt clears the line, and Ctrl-C while a
 * statement runs cancels what it waits for (the loop kills children, aborts
 * transfers) and comes back to the prompt.  Without a terminal it reads
 * statements from stdin, with no prompts and no colours.
 */
#include "audit.h"
#include "commands.h"
#include "edit_lazy.h"
#include "journal.h"
#include "landlock.h"
#include "loop.h"
#include "modules.h"
#include "prompt.h"
#include "rbfile.h"
#include "session.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char REPL_HELP[] =
    "usage: runbook repl [FILE] [options]\n"
    "\n"
    "An interactive Lua console with every primitive, for poking around during an\n"
    "incident.  Mutating actions ask first; every action is recorded in the audit\n"
    "log under one run of mode `repl`.  With stdin not a terminal, statements are\n"
    "read from stdin (`echo 'print(1+1)' | runbook repl`).\n"
    "\n"
    "  FILE                load this runbook first (as .load FILE)\n"
    "  --dry-run           start with .dry on: mutating actions are only shown\n"
    "  --strict            refuse a dry-run (--dry-run, .dry on) the kernel cannot enforce\n"
    "  --yes               do not ask before mutating actions (.confirm off)\n"
    "  --param K=V         a param for the loaded runbook (or params.K without one)\n"
    "  --env NAME          use the `environments: NAME` section of runbook.yaml\n"
    "  --config FILE       read FILE instead of ./runbook.yaml\n"
    "  --audit PATH|URL    audit database (default $XDG_STATE_HOME/runbook/audit.db),\n"
    "                      or a team's shared log: postgres://user@host/db\n"
    "  --no-audit          do not record the session\n"
    "  --audit-fallback P  a local log for when the shared (postgres://) log is down\n"
    "  --audit-wait D      wait up to D (30s, 2m; default 30s) for another process's\n"
    "                      lock on the audit log, then exit 1 naming it\n"
    "  --max-memory SIZE   limit Lua's memory to SIZE (512M, 2G; default 1G)\n"
    "  -v, --verbose       show read actions too\n"
    "\n"
    "Inside, .help lists the dot-commands.  History: $XDG_STATE_HOME/runbook/history.\n";

static const char DOT_HELP[] =
    "  .help              this list\n"
    "  .dry on|off        simulate mutating actions (the prompt says runbook[dry]>)\n"
    "  .confirm on|off    ask before each mutating action (default on)\n"
    "  .params            the params in scope\n"
    "  .load FILE         load a runbook: its params, helpers and steps, without running them\n"
    "  .steps             the loaded runbook's steps\n"
    "  .step N|NAME       run one step of it (asks first)\n"
    "  .audit             this session's actions so far\n"
    "  .save FILE         write the session's statements that acted as a runbook\n"
    "  .quit              leave (or Ctrl-D)\n"
    "Ctrl-C cancels a running statement, or clears the line at the prompt.\n";

#define ENV_KEY     "runbook.repl.env"     /* the session's globals */
#define STMTS_KEY   "runbook.repl.stmts"   /* { {src, actions, expr}, ... } that succeeded */
#define ACTIONS_KEY "runbook.repl.actions" /* { {stmt, words, class, status}, ... } */
#define RB_KEY      "runbook.repl.runbook" /* the loaded runbook object */

typedef struct repl {
    rb_engine *E;
    lua_State *L;
    const run_args *a;
    const rb_edit *ed; /* NULL: not a terminal */
    char *line;        /* the line the editor finished */
    int line_done, eof;
    int failed; /* a statement failed (piped mode's exit code) */
    int nstmt;
    int stmt_actions;      /* actions of the statement running */
    char last_error[512];  /* of the last statement or step that failed */
    char first_words[256]; /* what the running statement did first: its step's name in .save */
    char history[4096];
} repl;

static repl *the_repl; /* for the editor's callbacks */

/* ---- reading lines ----------------------------------------------------------- */

static void on_line(char *line)
{
    the_repl->line = line;
    the_repl->line_done = 1;
    if (!line)
        the_repl->eof = 1;
    the_repl->ed->handler_remove(); /* the terminal goes back to normal for the statement */
}

/* One line without its newline (malloc'd), or NULL at end of input.
 * *interrupted is set when Ctrl-C cleared the line instead. */
static char *read_line(repl *R, const char *prompt, int *interrupted)
{
    *interrupted = 0;
    if (!R->ed) {
        char *buf = NULL;
        size_t cap = 0;
        ssize_t n = getline(&buf, &cap, stdin);
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n > 0 && buf[n - 1] == '\n')
            buf[n - 1] = '\0';
        return buf;
    }
    R->line = NULL;
    R->line_done = 0;
    R->ed->handler_install(prompt, on_line);
    while (!R->line_done) {
        struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {loop_signal_fd(), POLLIN, 0}};
        if (poll(p, p[1].fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
            break;
        if (loop_interrupted()) { /* Ctrl-C at the prompt: drop the line */
            loop_clear_interrupts();
            R->ed->replace_line("", 0);
            fputs("^C\n", stdout);
            fflush(stdout);
            R->ed->handler_remove();
            *interrupted = 1;
            return NULL;
        }
        if (p[0].revents)
            R->ed->read_char();
    }
    if (R->eof)
        fputc('\n', stdout);
    return R->line;
}

/* ---- running a chunk ---------------------------------------------------------- */

/* Compile src in the session's environment; pushes the function, or the
 * error message (returns the load status). */
static int compile(lua_State *L, const char *src, size_t len, const char *name)
{
    int rc = luaL_loadbufferx(L, src, len, name, "t");
    if (rc == LUA_OK) {
        lua_getfield(L, LUA_REGISTRYINDEX, ENV_KEY);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return rc;
}

/* A chunk that only lacks its end ("function f()") */
static int incomplete(lua_State *L, int status)
{
    if (status != LUA_ERRSYNTAX)
        return 0;
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    return n >= 5 && strcmp(msg + n - 5, "<eof>") == 0;
}

/* The error and the runbook-side frames of its traceback (the engine's own
 * Lua and C frames say nothing to an operator). */
static void print_error(repl *R, lua_State *co, const char *msg)
{
    lua_State *L = R->L;
    luaL_traceback(L, co, msg, 0);
    const char *tb = lua_tostring(L, -1);
    const char *red = R->E->color ? "\033[31m" : "", *off = R->E->color ? "\033[0m" : "";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int frames = 0;
    for (const char *p = tb; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        int frame = n > 1 && p[0] == '\t';
        int keep = !frame || (frames < 4 && !memmem(p, n, "[C]", 3) &&
                              !memmem(p, n, "runbook/", 8) && !memmem(p, n, "(...tail", 8));
        if (frame && keep)
            frames++;
        if (keep && !(n == 16 && strncmp(p, "stack traceback:", 16) == 0)) {
            luaL_addlstring(&b, p, n);
            luaL_addchar(&b, '\n');
        }
        p = nl ? nl + 1 : p + n;
    }
    luaL_pushresult(&b);
    const char *out = lua_tostring(L, -1);
    fprintf(stderr, "%s%s%s", red, rb_redact(L, out, strlen(out)), off);
    lua_pop(L, 3);
    fflush(stderr);
}

/* Show the task's results with rt.repl_show */
static void print_results(repl *R, lua_State *co, int nres)
{
    lua_State *L = R->L;
    if (nres <= 0)
        return;
    rb_push_internal(L, "repl", "repl_show");
    lua_pushinteger(L, nres);
    lua_xmove(co, L, nres);
    if (lua_pcall(L, nres + 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "(cannot show the value: %s)\n", lua_tostring(L, -1));
    } else {
        const char *s = lua_tostring(L, -1);
        const char *red = rb_redact(L, s, strlen(s));
        fprintf(stdout, "%s\n", red);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    fflush(stdout);
}

/* Run the function on top of L as a task on the loop; prints its results
 * or its error.  Returns 1 when it succeeded. */
static int run_function(repl *R, int show)
{
    lua_State *L = R->L;
    rb_task *t = loop_spawn(L, 0, 0, NULL);
    loop_wait(L, t);
    int ok = t->done && !t->failed;
    if (!t->done) {
        fputs("the statement did not finish\n", stderr);
    } else if (t->failed) {
        const char *msg = engine_errmsg(t->co, -1);
        snprintf(R->last_error, sizeof R->last_error, "%s", msg);
        print_error(R, t->co, msg);
    } else if (show) {
        print_results(R, t->co, t->nres);
    }
    loop_task_free(L, t);
    loop_clear_interrupts(); /* a Ctrl-C ended this statement, not the session */
    return ok;
}

/* Counts the actions of the statement running, and keeps them for .audit */
static void on_action(rb_engine *E, lua_State *co, const rb_action *a, const rb_action_result *r)
{
    (void)co;
    repl *R = the_repl;
    lua_State *L = E->L;
    if (R->stmt_actions++ == 0) {
        const char *w = rb_redact(L, a->words, strlen(a->words));
        snprintf(R->first_words, sizeof R->first_words, "%s", w);
        lua_pop(L, 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, ACTIONS_KEY);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, R->nstmt);
    lua_setfield(L, -2, "stmt");
    rb_redact(L, a->words, strlen(a->words));
    lua_setfield(L, -2, "words");
    lua_pushstring(L, a->cls == RB_READ ? "read" : "mutate");
    lua_setfield(L, -2, "class");
    lua_pushstring(L, r->status);
    lua_setfield(L, -2, "status");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

static void remember_statement(repl *R, const char *src, int expr)
{
    lua_State *L = R->L;
    lua_getfield(L, LUA_REGISTRYINDEX, STMTS_KEY);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, src);
    lua_setfield(L, -2, "src");
    lua_pushinteger(L, R->stmt_actions);
    lua_setfield(L, -2, "actions");
    lua_pushboolean(L, expr);
    lua_setfield(L, -2, "expr");
    if (R->stmt_actions > 0) {
        lua_pushstring(L, R->first_words);
        lua_setfield(L, -2, "title");
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/* One statement: as an expression first (its values are printed), else as
 * a chunk; more lines while it is incomplete. */
static void statement(repl *R, char *first)
{
    lua_State *L = R->L;
    int top = lua_gettop(L);
    char name[32];
    snprintf(name, sizeof name, "=stdin:%d", R->nstmt + 1);
    luaL_Buffer b;
    lua_pushfstring(L, "return %s;", first);
    int expr = 1;
    int st = compile(L, lua_tostring(L, -1), lua_rawlen(L, -1), name);
    lua_remove(L, -2);
    if (st != LUA_OK) {
        expr = 0;
        lua_pop(L, 1);
        luaL_buffinit(L, &b);
        luaL_addstring(&b, first);
        luaL_pushresult(&b);
        for (;;) {
            size_t n;
            const char *src = lua_tolstring(L, -1, &n);
            st = compile(L, src, n, name);
            if (!incomplete(L, st))
                break;
            lua_pop(L, 1);
            int intr;
            char *more = read_line(R, ">> ", &intr);
            if (!more) {
                lua_settop(L, top);
                if (!intr)
                    fputs("(incomplete statement dropped)\n", stderr);
                return;
            }
            lua_pushfstring(L, "%s\n%s", lua_tostring(L, -1), more);
            lua_remove(L, -2);
            free(more);
        }
        /* the source below the function (or the error) */
    } else {
        lua_pushstring(L, first);
        lua_insert(L, -2);
    }
    const char *src = lua_tostring(L, -2);
    if (st != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        R->failed = 1;
        lua_settop(L, top);
        return;
    }
    R->nstmt++;
    R->stmt_actions = 0;
    char stepname[80];
    snprintf(stepname, sizeof stepname, "%.*s", 60, src);
    for (char *p = stepname; *p; p++)
        if (*p == '\n')
            *p = ' ';
    R->E->step_index = R->nstmt;
    R->E->step_name = stepname;
    int ok = run_function(R, 1);
    R->E->step_index = 0;
    R->E->step_name = NULL;
    if (ok)
        remember_statement(R, src, expr);
    else
        R->failed = 1;
    lua_settop(L, top);
}

/* ---- dot-commands ------------------------------------------------------------ */

static int on_off(const char *arg, int *flag, const char *what)
{
    if (strcmp(arg, "on") == 0)
        *flag = 1;
    else if (strcmp(arg, "off") == 0)
        *flag = 0;
    else if (*arg)
        return fprintf(stderr, "%s: say on or off\n", what), 0;
    printf("%s is %s\n", what, *flag ? "on" : "off");
    return 1;
}

/* Copy the fields of the table at from into the table at to (not over
 * names to already has) */
static void merge_into(lua_State *L, int from, int to)
{
    from = lua_absindex(L, from);
    to = lua_absindex(L, to);
    lua_pushnil(L);
    while (lua_next(L, from)) {
        lua_pushvalue(L, -2);
        if (lua_rawget(L, to) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, to);
        } else {
            lua_pop(L, 2);
        }
    }
}

static int do_load(repl *R, const char *file)
{
    lua_State *L = R->L;
    int top = lua_gettop(L);
    char path[4096];
    if (rbfile_find(file, path, sizeof path) != 0) {
        fprintf(stderr, ".load: no runbook named '%s'\n", file);
        return 0;
    }
    int in = push_params_input(R->E, L, R->a);
    if (rbfile_load(L, path, in) != 0) {
        fprintf(stderr, ".load %s: %s\n", file, lua_tostring(L, -1));
        lua_settop(L, top);
        return 0;
    }
    int rb = lua_gettop(L);
    /* the runbook's environment becomes the session's: its params, state
     * and helpers; what the session defined so far comes along */
    lua_getfield(L, rb, "env");
    lua_getfield(L, LUA_REGISTRYINDEX, ENV_KEY);
    merge_into(L, -1, -2);
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, ENV_KEY);
    lua_pushvalue(L, rb);
    lua_setfield(L, LUA_REGISTRYINDEX, RB_KEY);
    lua_getfield(L, rb, "steps");
    lua_getfield(L, rb, "meta");
    lua_getfield(L, -1, "name");
    printf("loaded %s (%d step%s): .steps lists them, .step N runs one\n",
           lua_isstring(L, -1) ? lua_tostring(L, -1) : path, (int)lua_rawlen(L, -3),
           lua_rawlen(L, -3) == 1 ? "" : "s");
    lua_settop(L, top);
    return 1;
}

static int loaded_steps(repl *R)
{
    lua_State *L = R->L;
    if (lua_getfield(L, LUA_REGISTRYINDEX, RB_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        fputs("no runbook loaded (.load FILE)\n", stderr);
        return 0;
    }
    lua_getfield(L, -1, "steps");
    lua_remove(L, -2);
    return lua_gettop(L);
}

static void do_steps(repl *R)
{
    lua_State *L = R->L;
    int steps = loaded_steps(R);
    if (!steps)
        return;
    lua_Integer n = (lua_Integer)lua_rawlen(L, steps);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, steps, i);
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "opts");
        lua_getfield(L, -1, "description");
        printf("%3d. %s\n", (int)i, lua_tostring(L, -3));
        if (lua_isstring(L, -1))
            printf("     %s\n", lua_tostring(L, -1));
        lua_pop(L, 4);
    }
    lua_pop(L, 1);
}

static void do_step(repl *R, const char *which)
{
    lua_State *L = R->L;
    int steps = loaded_steps(R);
    if (!steps)
        return;
    lua_Integer n = (lua_Integer)lua_rawlen(L, steps), found = 0;
    char *end;
    long idx = strtol(which, &end, 10);
    for (lua_Integer i = 1; i <= n && !found; i++) {
        lua_rawgeti(L, steps, i);
        lua_getfield(L, -1, "name");
        if ((*end == '\0' && *which && idx == i) || strcmp(lua_tostring(L, -1), which) == 0)
            found = i;
        lua_pop(L, 2);
    }
    if (!found) {
        fprintf(stderr, ".step %s: no such step (.steps lists them)\n", which);
        lua_pop(L, 1);
        return;
    }
    lua_rawgeti(L, steps, found);
    int step = lua_gettop(L);
    lua_getfield(L, step, "name");
    char name[512];
    snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!R->E->assume_yes) {
        char q[600];
        snprintf(q, sizeof q, "run step %d (%s)", (int)found, name);
        if (prompt_open_tty(R->E) != 0 || !prompt_yes_no(R->E, L, q)) {
            puts("not run");
            lua_settop(L, steps - 1);
            return;
        }
    }
    journal_step_start(R->E, L, (int)found, (int)n, name, NULL);
    R->E->step_index = (int)found;
    R->E->step_name = name;
    double t0 = rb_wallclock();
    lua_getfield(L, step, "fn");
    R->stmt_actions = 0;
    /* the operator approved the step: its actions do not ask one by one */
    int confirm = R->E->confirm_actions;
    R->E->confirm_actions = 0;
    int ok = run_function(R, 0);
    R->E->confirm_actions = confirm;
    journal_step(R->E, L, (int)found, (int)n, name, ok ? "ok" : "failed", t0, rb_wallclock(),
                 ok ? NULL : R->last_error, 0);
    R->E->step_index = 0;
    R->E->step_name = NULL;
    lua_settop(L, steps - 1);
}

static void do_audit(repl *R)
{
    lua_State *L = R->L;
    lua_getfield(L, LUA_REGISTRYINDEX, ACTIONS_KEY);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n == 0)
        puts("no actions yet");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "stmt");
        lua_getfield(L, -2, "class");
        lua_getfield(L, -3, "status");
        lua_getfield(L, -4, "words");
        printf("[%s] %-6s %-9s %s\n", lua_tostring(L, -4), lua_tostring(L, -3), lua_tostring(L, -2),
               lua_tostring(L, -1));
        lua_pop(L, 5);
    }
    lua_pop(L, 1);
    if (R->E->audit)
        printf("(audit run %s: runbook audit show %s)\n", R->E->run_id, R->E->run_id);
}

static void do_save(repl *R, const char *file)
{
    lua_State *L = R->L;
    if (!*file) {
        fputs(".save FILE: where to write the runbook\n", stderr);
        return;
    }
    rb_push_internal(L, "repl", "repl_save");
    lua_getfield(L, LUA_REGISTRYINDEX, STMTS_KEY);
    lua_pushstring(L, R->E->run_id);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        fprintf(stderr, ".save: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    size_t n;
    const char *text = lua_tolstring(L, -1, &n);
    /* what the operator typed may hold a secret's value: never on disk */
    text = rb_redact(L, text, n);
    n = lua_rawlen(L, -1);
    FILE *f = fopen(file, "wx");
    if (!f && errno == EEXIST) {
        fprintf(stderr, ".save %s: the file exists; choose another name\n", file);
    } else if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, ".save %s: %s\n", file, strerror(errno));
    } else {
        printf("saved to %s: review it, then `runbook check %s`\n", file, file);
    }
    lua_pop(L, 2);
}

static void show_params(repl *R)
{
    lua_State *L = R->L;
    lua_getfield(L, LUA_REGISTRYINDEX, ENV_KEY);
    lua_getfield(L, -1, "params");
    lua_remove(L, -2);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, -2);
    lua_xmove(L, co, 1);
    print_results(R, co, 1);
    lua_pop(L, 2);
}

/* Returns 0 to leave the REPL. */
static int dot_command(repl *R, char *line)
{
    char *cmd = line + 1, *arg = cmd;
    while (*arg && *arg != ' ')
        arg++;
    if (*arg)
        *arg++ = '\0';
    while (*arg == ' ')
        arg++;
    for (char *e = arg + strlen(arg); e > arg && e[-1] == ' ';)
        *--e = '\0';
    if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0 || strcmp(cmd, "q") == 0)
        return 0;
    if (strcmp(cmd, "help") == 0)
        fputs(DOT_HELP, stdout);
    else if (strcmp(cmd, "dry") == 0) {
        int dry = R->E->dry_run;
        if (strcmp(arg, "on") == 0 && R->a->strict && rb_landlock_abi() == 0)
            fputs("runbook: --strict: a dry-run cannot be enforced by the kernel here (no "
                  "Landlock); .dry stays off\n",
                  stderr);
        else if (strcmp(arg, "off") == 0 && R->E->dry_run &&
                 plan_gate_run(R->E, R->a->env, NULL) != 0)
            fputs("runbook: .dry stays on\n", stderr); /* reviewed plans only, here */
        else if (on_off(arg, &dry, "dry-run"))
            engine_use(R->E, dry ? &rb_mode_dry_run : &rb_mode_repl);
    } else if (strcmp(cmd, "confirm") == 0)
        on_off(arg, &R->E->confirm_actions, "confirm");
    else if (strcmp(cmd, "params") == 0)
        show_params(R);
    else if (strcmp(cmd, "load") == 0)
        do_load(R, arg);
    else if (strcmp(cmd, "steps") == 0)
        do_steps(R);
    else if (strcmp(cmd, "step") == 0)
        do_step(R, arg);
    else if (strcmp(cmd, "audit") == 0)
        do_audit(R);
    else if (strcmp(cmd, "save") == 0)
        do_save(R, arg);
    else
        fprintf(stderr, "unknown command .%s (.help lists them)\n", cmd);
    fflush(stdout);
    return 1;
}

/* ---- completion and history ------------------------------------------------- */

static lua_State *complete_L;
static int complete_ref = LUA_NOREF;

static char *complete_next(const char *text, int state)
{
    (void)text;
    lua_State *L = complete_L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, complete_ref);
    lua_rawgeti(L, -1, state + 1);
    char *s = lua_isstring(L, -1) ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 2);
    return s;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    lua_State *L = complete_L;
    *the_repl->ed->attempted_completion_over = 1; /* never file names */
    rb_push_internal(L, "repl", "repl_complete");
    lua_pushstring(L, text);
    lua_getfield(L, LUA_REGISTRYINDEX, ENV_KEY);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, complete_ref);
    complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return the_repl->ed->completion_matches(text, complete_next);
}

static void history_open(repl *R)
{
    const char *state = getenv("XDG_STATE_HOME");
    char base[2048];
    if (state && *state)
        snprintf(base, sizeof base, "%s", state);
    else
        rb_expand_home("~/.local/state", base, sizeof base);
    snprintf(R->history, sizeof R->history, "%.2047s/runbook/history", base);
    rb_mkdir_parents(R->history);
    R->ed->using_history();
    R->ed->stifle_history(1000);
    R->ed->read_history(R->history);
}

/* A line goes into the history with every secret's value replaced. */
static void history_add(repl *R, const char *line)
{
    if (!R->ed || !*line)
        return;
    const char *red = rb_redact(R->L, line, strlen(line));
    R->ed->add_history(red);
    lua_pop(R->L, 1);
    /* written at once: a session that is killed keeps its history */
    mode_t old = umask(077);
    R->ed->write_history(R->history);
    umask(old);
}

/* ---- the session --------------------------------------------------------------- */

static const char *prompt_of(repl *R)
{
    return R->E->dry_run ? "runbook[dry]> " : "runbook> ";
}

static int prepl(lua_State *L)
{
    repl *R = lua_touserdata(L, 1);
    rb_engine *E = R->E;
    rb_internal_load(L, "repl");
    rb_internal_load(L, "db"); /* so db.backup & co. complete before first use */
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, STMTS_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ACTIONS_KEY);
    /* the session's globals: a table over the sandboxed globals, with the
     * command line's params */
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_newtable(L);
    for (int i = 0; i < R->a->n_params; i++) {
        const char *eq = strchr(R->a->params[i], '=');
        lua_pushlstring(L, R->a->params[i], (size_t)(eq - R->a->params[i]));
        lua_pushstring(L, eq + 1);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "params");
    lua_newtable(L);
    lua_setfield(L, -2, "state");
    lua_setfield(L, LUA_REGISTRYINDEX, ENV_KEY);

    E->runbook_name = "repl";
    E->runbook_title = "interactive session";
    E->params_json = strdup("{}");
    E->started = rb_wallclock();
    E->started_mono = rb_now();
    if (journal_run_start(E, L) != 0) {
        fprintf(stderr, "runbook: cannot write the audit log\n");
        return 0;
    }
    if (R->a->target)
        do_load(R, R->a->target);
    if (R->ed) {
        printf("runbook %s REPL, run %s%s: Lua with every primitive; mutating actions %s. "
               ".help for commands, Ctrl-D to leave.\n",
               RB_VERSION, E->run_id, E->audit ? " (audited)" : " (not audited)",
               E->dry_run      ? "are only shown (.dry off to act)"
               : E->assume_yes ? "run without asking"
                               : "ask first");
        fflush(stdout);
    }
    for (;;) {
        int intr;
        char *line = read_line(R, prompt_of(R), &intr);
        if (!line) {
            if (intr)
                continue;
            break;
        }
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '.' && p[1] >= 'a' && p[1] <= 'z') {
            history_add(R, line);
            int go = dot_command(R, (char *)p);
            free(line);
            if (!go)
                break;
            continue;
        }
        if (*p)
            statement(R, line);
        /* after the statement: a secret it registered (secret.register("..."))
         * is redacted from its own line too */
        history_add(R, line);
        free(line);
    }
    const char *outcome = R->ed || !R->failed ? "success" : "failed";
    journal_run_end(E, L, outcome, R->ed || !R->failed ? 0 : 1, NULL, 0);
    if (R->ed)
        printf("%d action%s in this session, run %s%s\n", E->n_actions,
               E->n_actions == 1 ? "" : "s", E->run_id, E->audit ? " (runbook audit show it)" : "");
    return 0;
}

int cmd_repl(int argc, char **argv)
{
    run_args a;
    int rc = run_args_parse(argc, argv, &a, "repl", REPL_HELP);
    if (rc != 0) {
        free(a.params);
        return rc < 0 ? 0 : rc;
    }
    if (a.strict && a.dry_run && rb_landlock_abi() == 0) {
        free(a.params);
        return usage_error("repl --strict: a dry-run cannot be enforced by the kernel here (no "
                           "Landlock); nothing was run");
    }
    if (a.confirm || a.from || a.resume || a.rollback || a.timeout > 0 || a.json || a.record) {
        free(a.params);
        return usage_error("repl: --confirm, --from, --resume, --rollback, --timeout, --record "
                           "and --output are for `runbook run`");
    }
    char err[4096];
    rb_engine *E = engine_new(rb_builtin_modules, err, sizeof err);
    if (!E) {
        free(a.params);
        return usage_error("%s", err);
    }
    rb_config cfg;
    int exit_code = 2;
    repl R;
    memset(&R, 0, sizeof R);
    R.E = E;
    R.L = E->L;
    R.a = &a;
    the_repl = &R;
    if ((exit_code = session_open(E, &cfg, &a)) != 0)
        goto out;
    /* an environment that takes reviewed plans only takes no live console
     * either (a dry one is fine) */
    if (!a.dry_run && (exit_code = plan_gate_run(E, a.env, NULL)) != 0)
        goto out;
    exit_code = 2;
    int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (tty) {
        R.ed = rb_edit_get(err, sizeof err);
        if (!R.ed)
            fprintf(stderr, "runbook: %s; no line editing\n", err);
    }
    E->mode = MODE_REPL;
    engine_use(E, a.dry_run ? &rb_mode_dry_run : &rb_mode_repl);
    E->purpose = PURPOSE_RUN;
    E->output = OUT_TEXT;
    E->assume_yes = a.yes;
    E->confirm_actions = !a.yes;
    E->verbose = a.verbose;
    E->color = tty && !getenv("NO_COLOR");
    E->on_action = on_action;
    rb_new_run_id(E->run_id);
    loop_install_signals();
    if (R.ed) {
        complete_L = E->L;
        *R.ed->readline_name = "runbook";
        *R.ed->attempted_completion_function = complete;
        *R.ed->completer_word_break_characters = (char *)" \t\n\"'`@$><=;|&{(,+-*/%^~#[";
        *R.ed->completion_append_character = '\0';
        history_open(&R);
    }
    lua_pushcfunction(E->L, prepl);
    lua_pushlightuserdata(E->L, &R);
    if (lua_pcall(E->L, 1, 0, 0) != LUA_OK)
        usage_error("%s", engine_errmsg(E->L, -1));
    exit_code = R.ed || !R.failed ? 0 : 1;
out:
    if (E->audit)
        audit_close(E->audit);
    E->audit = NULL;
    the_repl = NULL;
    engine_free(E);
    free(a.params);
    return exit_code;
}
