/* One function per subcommand (src/cmd_*.c); argv[0] is the subcommand. */
#ifndef RUNBOOK_COMMANDS_H
#define RUNBOOK_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_repl(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_locks(int argc, char **argv);
int cmd_reference(int argc, char **argv);
int cmd_plan(int argc, char **argv); /* src/cli/cmd_plan.c: plan, approve, apply */
int cmd_approve(int argc, char **argv);
int cmd_apply(int argc, char **argv);

/* A live run in environment env (NULL: none) when its runbook.yaml policy
 * says `require_plan: true`: 2 after naming the plan commands (target: the
 * runbook as given), else 0.  E has the config loaded (session_open). */
struct rb_engine;
int plan_gate_run(struct rb_engine *E, const char *env, const char *target);

/* A row of main.c's command table (NULL name ends it). */
struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
};
/* `runbook __complete WORD...`: completion candidates from that table. */
int cmd_complete(int argc, char **argv, const struct command *commands);

/* "runbook: " + message on stderr; returns 2 (usage / invalid input) */
int usage_error(const char *fmt, ...);
/* A flag the command does not take: "CMD: unknown option '--dry-rn' (did
 * you mean '--dry-run'?)" when arg is a typo of one of names (without
 * dashes, up to a NULL), else "... (see runbook CMD --help)"; returns 2. */
int unknown_flag(const char *cmd, const char *arg, const char *const *names);
/* The same for a getopt_long table (up to its all-zero row). */
struct option;
int unknown_getopt_flag(const char *cmd, const char *arg, const struct option *opts);
/* A runbook name or file run and plan could not find: "no runbook named
 * 'X' (did you mean 'Y'?)", else where it was looked for; returns 2. */
int no_such_runbook(const char *name);

#endif
