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

#endif
