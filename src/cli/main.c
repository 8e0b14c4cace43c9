/*
 * runbook: executable runbooks in Lua.  main() maps argv[1] to a command
 * through one table (git style); each command lives in src/cmd_*.c.
 */
#include "commands.h"
#include "landlock.h"
#include "library.h"
#include "runbook/runbook.h"
#include "util.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* `git describe` of the commit the binary was built from: written at every
 * build by cmake/version.cmake into the build directory's rb_build_version.c */
extern const char rb_git_describe[];

static int cmd_version(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("runbook %s (git %s, %s)\n", RB_VERSION, rb_git_describe, LUA_RELEASE);
    return 0;
}

static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
    {"run", cmd_run, "run a runbook: live, --dry-run, or --confirm step by step"},
    {"repl", cmd_repl,
     "an interactive console: every primitive at hand, actions confirmed and audited"},
    {"test", cmd_test,
     "run scenario tests (*.scenario.yaml): runbooks against mocks, no real actions"},
    {"check", cmd_check, "validate runbooks without running them (syntax, metadata, globals)"},
    {"list", cmd_list, "list the runbooks of the library"},
    {"show", cmd_show, "show a runbook's metadata, params and steps"},
    {"plan", cmd_plan, "dry-run a runbook into a plan of its changes, for approve and apply"},
    {"approve", cmd_approve, "approve another operator's plan (recorded in the audit log)"},
    {"apply", cmd_apply, "run a plan live: only its changes, in order, or stop before"},
    {"audit", cmd_audit, "list, show, export and verify the audit log"},
    {"locks", cmd_locks, "the run locks held now, and by whom"},
    {"reference", cmd_reference,
     "every function a runbook can call: arguments and option keys (docs/reference.md)"},
    {"schedule", cmd_schedule,
     "run a runbook on its schedule: systemd timer or Kubernetes CronJob, --list"},
    {"init", cmd_init, "start a team library: runbook.yaml, a runbook, its scenarios, CI files"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "this help, or `runbook help COMMAND`"},
    {NULL, NULL, NULL},
};

/* `runbook rnu`: the command meant, when one is a typo away ("" when none is) */
static const char *near_command(const char *name, char *buf, size_t n)
{
    const char *names[sizeof commands / sizeof *commands];
    int k = 0;
    for (const struct command *c = commands; c->name; c++)
        names[k++] = c->name;
    const char *near = rb_did_you_mean(name, names, k);
    if (near)
        snprintf(buf, n, " (did you mean '%s'?)", near);
    else
        buf[0] = '\0';
    return buf;
}

static int cmd_help(int argc, char **argv)
{
    /* every command answers --help (the man page test asks each one) */
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: runbook help [COMMAND]\n\n"
               "Without COMMAND: the commands and the exit codes.  With it: the same\n"
               "as `runbook COMMAND --help`.\n");
        return 0;
    }
    if (argc > 1) {
        for (const struct command *c = commands; c->name; c++)
            if (strcmp(c->name, argv[1]) == 0 && c->fn != cmd_help) {
                char *args[] = {argv[1], "--help", NULL};
                return c->fn(2, args);
            }
        char hint[64];
        return usage_error("help: unknown command '%s'%s", argv[1],
                           near_command(argv[1], hint, sizeof hint));
    }
    printf("runbook %s: executable runbooks in Lua\n\n"
           "usage: runbook COMMAND [ARGS]\n\n",
           RB_VERSION);
    for (const struct command *c = commands; c->name; c++)
        printf("  %-8s %s\n", c->name, c->summary);
    printf("\nEvery command takes --help.  Exit codes: 0 success, 1 a step or check failed,\n"
           "2 usage or invalid input, 3 aborted by the operator, 130 interrupted.\n");
    return 0;
}

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("runbook: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int unknown_flag(const char *cmd, const char *arg, const char *const *names)
{
    char hint[160];
    if (*rb_flag_hint(arg, names, hint, sizeof hint))
        return usage_error("%s: unknown option '%s'%s", cmd, arg, hint);
    return usage_error("%s: unknown option '%s' (see runbook %s --help)", cmd, arg, cmd);
}

int unknown_getopt_flag(const char *cmd, const char *arg, const struct option *opts)
{
    const char *names[128];
    size_t k = 0;
    for (; opts[k].name && k < sizeof names / sizeof *names - 1; k++)
        names[k] = opts[k].name;
    names[k] = NULL;
    return unknown_flag(cmd, arg, names);
}

int no_such_runbook(const char *name)
{
    char hint[4200];
    if (*library_hint(name, hint, sizeof hint))
        return usage_error("no runbook named '%s'%s", name, hint);
    return usage_error("no runbook named '%s' (looked for a file, then in ./runbooks, "
                       "RUNBOOK_PATH and the installed library; see runbook list)",
                       name);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cmd_help(0, argv) == 0 ? 2 : 2;
    const char *name = argv[1];
    /* a dry-run's child, confined before it becomes the program (host.c rb_spawnp) */
    if (strcmp(name, "__confined") == 0)
        return rb_landlock_shim(argc, argv);
    /* hidden: the candidates for a shell's TAB (completions/) */
    if (strcmp(name, "__complete") == 0)
        return cmd_complete(argc - 1, argv + 1, commands);
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return cmd_help(1, argv + 1);
    if (strcmp(name, "--version") == 0)
        return cmd_version(1, argv + 1);
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->fn(argc - 1, argv + 1);
    char hint[64];
    near_command(name, hint, sizeof hint);
    return usage_error("unknown command '%s'%s", name, hint[0] ? hint : " (see runbook help)");
}
