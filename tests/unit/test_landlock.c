/*
 * Tests of src/core/landlock.c: a confined child writes only where it was
 * allowed, whatever the path (a file rule, a directory rule, outside both),
 * cannot create, remove or rename outside, and with RB_LL_NO_NET cannot
 * connect to a TCP listener on loopback.  Each case runs in a forked child so
 * the test process itself stays free.  Without Landlock the test says so and
 * checks only that confine fails with ENOSYS/EOPNOTSUPP.
 */
#include "child_check.h"
#include "landlock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static int failures;

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static void touch(const char *name)
{
    char p[128];
    path_of(p, sizeof p, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "x", 1) != 1) {
        perror(p);
        exit(2);
    }
    close(fd);
}

/* errno of open(name, flags), 0 when it worked */
static int open_errno(const char *name, int flags)
{
    char p[128];
    path_of(p, sizeof p, name);
    int fd = open(p, flags, 0644);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

/* Runs body in a child; reports its name when it failed. */
static void in_child(const char *name, void (*body)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        body();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
    failures += !ok;
}

static void confine_or_die(const char *const *writable, unsigned flags)
{
    CHECK(rb_landlock_confine(writable, flags) == 0, "confine: %s", strerror(errno));
}

static void writes_only_where_allowed(void)
{
    char inside[128], file[128];
    path_of(inside, sizeof inside, "in");
    path_of(file, sizeof file, "one-file");
    const char *const writable[] = {inside, file, "/nonexistent/skipped", NULL};
    confine_or_die(writable, 0);
    CHECK(open_errno("outside", O_WRONLY) == EACCES, "write outside: %s",
          strerror(open_errno("outside", O_WRONLY)));
    CHECK(open_errno("new-outside", O_WRONLY | O_CREAT) == EACCES, "create outside");
    CHECK(open_errno("outside", O_RDONLY) == 0, "read outside must work");
    CHECK(open_errno("outside", O_RDONLY | O_TRUNC) == EACCES, "truncate outside");
    char p[128], q[128];
    path_of(p, sizeof p, "outside");
    CHECK(unlink(p) != 0 && errno == EACCES, "unlink outside: %s", strerror(errno));
    path_of(q, sizeof q, "in/moved");
    CHECK(rename(p, q) != 0, "rename out of the outside dir");
    path_of(q, sizeof q, "newdir");
    CHECK(mkdir(q, 0755) != 0 && errno == EACCES, "mkdir outside");
    CHECK(open_errno("in/file", O_WRONLY) == 0, "write inside: %s",
          strerror(open_errno("in/file", O_WRONLY)));
    CHECK(open_errno("in/created", O_WRONLY | O_CREAT) == 0, "create inside");
    CHECK(open_errno("one-file", O_WRONLY | O_TRUNC) == 0, "write the allowed file");
    CHECK(open_errno("sibling-of-file", O_WRONLY) == EACCES, "file rule stays a file");
}

static void null_only(void)
{
    const char *const writable[] = {"/dev/null", NULL};
    confine_or_die(writable, 0);
    int fd = open("/dev/null", O_WRONLY);
    CHECK(fd >= 0, "/dev/null: %s", strerror(errno));
    close(fd);
    CHECK(open_errno("in/file", O_WRONLY) == EACCES, "nothing else is writable");
    /* stdout, opened before, still works */
    CHECK(write(1, "", 0) == 0, "inherited stdout");
}

static int listener_port;

static int connect_errno(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)listener_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    int e = r == 0 ? 0 : errno;
    close(s);
    return e;
}

static void no_net(void)
{
    CHECK(connect_errno() == 0, "connect before confinement: %s", strerror(connect_errno()));
    confine_or_die(NULL, RB_LL_NO_NET);
    int e = connect_errno();
    CHECK(e == EACCES, "connect under RB_LL_NO_NET: %s", strerror(e));
}

static void net_kept_without_flag(void)
{
    confine_or_die(NULL, 0);
    CHECK(connect_errno() == 0, "connect without RB_LL_NO_NET: %s", strerror(connect_errno()));
}

static void children_inherit(void)
{
    const char *const writable[] = {"/dev/null", NULL};
    confine_or_die(writable, 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "{ echo x > %s/outside; } 2>/dev/null", dir);
    CHECK(system(cmd) != 0, "a child's shell wrote outside");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/rb-landlock-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    char p[128];
    path_of(p, sizeof p, "in");
    mkdir(p, 0755);
    touch("outside");
    touch("in/file");
    touch("one-file");
    touch("sibling-of-file");

    int abi = rb_landlock_abi();
    printf("Landlock ABI %d\n", abi);
    if (abi == 0) {
        int r = rb_landlock_confine(NULL, 0);
        int ok = r == -1 && (errno == ENOSYS || errno == EOPNOTSUPP);
        printf("%s confine without Landlock fails with ENOSYS/EOPNOTSUPP\n", ok ? "ok  " : "FAIL");
        failures += !ok;
    } else {
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t al = sizeof a;
        if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
            getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
            perror("listener");
            return 2;
        }
        listener_port = ntohs(a.sin_port);
        in_child("writes only below the writable paths", writes_only_where_allowed);
        in_child("/dev/null only", null_only);
        in_child("children inherit the confinement", children_inherit);
        if (abi >= 4) {
            in_child("RB_LL_NO_NET refuses a loopback connect", no_net);
            in_child("without RB_LL_NO_NET the network stays", net_kept_without_flag);
        } else {
            printf("skip network (ABI %d < 4)\n", abi);
        }
        close(ls);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failures ? 1 : 0;
}
