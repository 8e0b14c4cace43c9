/* The git commit and dirty flag of a runbook's library (provenance.h). */
#include "provenance.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Is there a .git (a directory, or the file of a worktree) in dir or above?
 * A few stat calls: a run outside git starts no process. */
static int in_checkout(const char *dir)
{
    char d[PATH_MAX], probe[PATH_MAX + 8];
    snprintf(d, sizeof d, "%s", dir);
    for (;;) {
        struct stat st;
        snprintf(probe, sizeof probe, "%s/.git", d);
        if (stat(probe, &st) == 0)
            return 1;
        char *slash = strrchr(d, '/');
        if (!slash || slash == d)
            return stat("/.git", &st) == 0;
        *slash = '\0';
    }
}

/* The environment without what would point git at another repository than
 * the one around dir (the operator's shell may have GIT_DIR set). */
static char **git_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "GIT_DIR=", 8) != 0 &&
            strncmp(environ[i], "GIT_WORK_TREE=", 14) != 0 &&
            strncmp(environ[i], "GIT_INDEX_FILE=", 15) != 0)
            env[k++] = environ[i];
    return env;
}

/* Run `git -C dir ARGS...` and read up to n-1 bytes of its stdout into out.
 * --no-optional-locks: a dry-run is confined to write nothing, and status
 * must not try to refresh the index; core.fsmonitor off: no hook of the
 * repository's config runs.  Its exit status, or -1. */
static int git(const char *dir, const char *const *args, char *out, size_t n)
{
    const char *argv[16] = {"git", "-C", dir, "--no-optional-locks", "-c", "core.fsmonitor=false"};
    int argc = 6;
    for (; *args && argc < 15; args++)
        argv[argc++] = *args;
    argv[argc] = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char **env = git_env();
    pid_t pid;
    int rc = env ? posix_spawnp(&pid, "git", &fa, NULL, (char *const *)argv, env) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    size_t len = 0;
    char sink[512];
    for (;;) { /* read to the end, keeping what fits: git must not block on a full pipe */
        ssize_t r =
            len + 1 < n ? read(fds[0], out + len, n - 1 - len) : read(fds[0], sink, sizeof sink);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (len + 1 < n)
            len += (size_t)r;
    }
    out[len] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The directories asked about in this process (a run and the runbooks it
 * runs), most recent first. */
#define CACHED 8
static struct known {
    char dir[PATH_MAX];
    char commit[65];
    int rc, dirty;
} known[CACHED];
static int n_known;

static struct known *look_up(const char *dir)
{
    for (int i = 0; i < n_known; i++)
        if (strcmp(known[i].dir, dir) == 0)
            return &known[i];
    if (n_known < CACHED)
        n_known++;
    memmove(&known[1], &known[0], sizeof known[0] * (size_t)(n_known - 1));
    struct known *k = &known[0];
    snprintf(k->dir, sizeof k->dir, "%s", dir);
    k->rc = -1;
    k->dirty = 0;
    char out[4096];
    static const char *const head[] = {"rev-parse", "--verify", "-q", "HEAD", NULL};
    static const char *const status[] = {"status", "--porcelain", NULL};
    if (in_checkout(dir) && git(dir, head, out, sizeof out) == 0) {
        size_t n = strspn(out, "0123456789abcdef");
        if (n == 40 || n == 64) {
            snprintf(k->commit, sizeof k->commit, "%.*s", (int)n, out);
            if (git(dir, status, out, sizeof out) == 0) {
                k->dirty = out[0] != '\0';
                k->rc = 0;
            }
        }
    }
    return k;
}

int rb_git_provenance(const char *path, char commit[65], int *dirty)
{
    if (!path || path[0] != '/')
        return -1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    struct known *k = look_up(dir);
    if (k->rc == 0) {
        memcpy(commit, k->commit, sizeof k->commit);
        *dirty = k->dirty;
    }
    return k->rc;
}
