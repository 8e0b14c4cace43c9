/*
 * The floor for spawning a program: N times posix_spawnp("true") + waitpid,
 * nothing else (no pipes, no process group, no bookkeeping).  What
 * `exec{"true"}` in a runbook is compared with by bench/run.sh.
 *
 *   cc -O2 -o spawn_floor bench/spawn_floor.c && ./spawn_floor 1000
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    char *child[] = {"true", NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid;
        int rc = posix_spawnp(&pid, child[0], NULL, NULL, child, environ);
        if (rc != 0) {
            fprintf(stderr, "spawn_floor: posix_spawnp true: %s\n", strerror(rc));
            return 1;
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "spawn_floor: true failed\n");
            return 1;
        }
    }
    return 0;
}
