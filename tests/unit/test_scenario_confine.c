/*
 * The kernel's side of a hermetic scenario (scenario_confine, the ruleset
 * each scenario's process of `runbook test` runs under), attacked from a
 * confined child as a runbook with a bug in the judge's path checks would:
 * it writes, creates, renames and removes outside its scratch directory,
 * connects to and binds TCP on loopback, connects to an abstract socket of
 * the parent and signals it.  Every attack must fail, and the parent checks
 * that nothing changed (the victim's bytes, the listener got no connection,
 * no signal arrived); inside the scratch directory writing works.
 * Without Landlock the test says so and checks only the ENOSYS fallback.
 */
#include "child_check.h"
#include "landlock.h"
#include "scenario.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t signalled;
static void on_usr1(int sig)
{
    (void)sig;
    signalled = 1;
}

static char root[64], scratch[128], outside[128], victim[160];

static void attack(int tcp_port, const char *abstract)
{
    CHECK(scenario_confine(scratch) == 0, "confine: %s", strerror(errno));
    char p[256];
    /* inside: works */
    snprintf(p, sizeof p, "%s/inside.txt", scratch);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "write inside the scratch directory: %s", strerror(errno));
    close(fd);
    /* outside: every kind of write refused */
    CHECK(open(victim, O_WRONLY | O_TRUNC) < 0 && errno == EACCES, "overwrite outside");
    snprintf(p, sizeof p, "%s/ESCAPED", outside);
    CHECK(open(p, O_WRONLY | O_CREAT, 0644) < 0 && errno == EACCES, "create outside");
    CHECK(unlink(victim) != 0 && errno == EACCES, "remove outside");
    CHECK(rename(victim, p) != 0, "rename outside");
    CHECK(mkdir(p, 0755) != 0 && errno == EACCES, "mkdir outside");
    CHECK(truncate(victim, 0) != 0, "truncate outside");
    snprintf(p, sizeof p, "%s/moved", scratch);
    CHECK(rename(victim, p) != 0, "move a file from outside into the scratch directory");

    int abi = rb_landlock_abi();
    if (abi >= 4) { /* no TCP, either way */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno == EACCES,
              "TCP connect to loopback: %s", strerror(errno));
        close(s);
        s = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_port = 0;
        CHECK(bind(s, (struct sockaddr *)&a, sizeof a) != 0 && errno == EACCES, "TCP bind");
        close(s);
    }
    if (abi >= 6) { /* no signal, no abstract socket outside its own domain */
        CHECK(kill(getppid(), SIGUSR1) != 0 && errno == EPERM, "signal the parent");
        int u = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un ua = {.sun_family = AF_UNIX};
        memcpy(ua.sun_path + 1, abstract, strlen(abstract));
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract));
        CHECK(connect(u, (struct sockaddr *)&ua, len) != 0 && errno == EPERM,
              "abstract socket of the parent: %s", strerror(errno));
        close(u);
    }
    _exit(0);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/rb-confine.XXXXXX");
    if (!mkdtemp(root))
        return 1;
    snprintf(scratch, sizeof scratch, "%s/scratch", root);
    snprintf(outside, sizeof outside, "%s/outside", root);
    snprintf(victim, sizeof victim, "%s/victim.txt", outside);
    mkdir(scratch, 0755);
    mkdir(outside, 0755);
    FILE *f = fopen(victim, "w");
    fputs("keep me\n", f);
    fclose(f);

    if (rb_landlock_abi() == 0) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(scenario_confine(scratch) != 0 && (errno == ENOSYS || errno == EOPNOTSUPP) ? 0
                                                                                             : 1);
        int st;
        waitpid(pid, &st, 0);
        printf("no Landlock on this kernel: only the fallback was checked\n");
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
    }

    /* what the confined child attacks: a loopback listener, an abstract
     * socket, this process's signals */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0)
        return 1;
    char abstract[64];
    snprintf(abstract, sizeof abstract, "rb-confine-%d", (int)getpid());
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    memcpy(ua.sun_path + 1, abstract, strlen(abstract));
    if (bind(u, (struct sockaddr *)&ua,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract))) != 0 ||
        listen(u, 4) != 0)
        return 1;
    signal(SIGUSR1, on_usr1);

    pid_t pid = fork();
    if (pid == 0)
        attack(ntohs(a.sin_port), abstract);
    int st;
    waitpid(pid, &st, 0);
    int failed = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* and nothing happened, seen from outside */
    char buf[64] = {0};
    f = fopen(victim, "r");
    if (!f || !fgets(buf, sizeof buf, f) || strcmp(buf, "keep me\n") != 0)
        failed = 1, fprintf(stderr, "  the victim changed\n");
    if (f)
        fclose(f);
    char p[256];
    snprintf(p, sizeof p, "%s/ESCAPED", outside);
    if (access(p, F_OK) == 0)
        failed = 1, fprintf(stderr, "  a file was created outside\n");
    fcntl(l, F_SETFL, O_NONBLOCK);
    fcntl(u, F_SETFL, O_NONBLOCK);
    if (accept(l, NULL, NULL) >= 0 || accept(u, NULL, NULL) >= 0)
        failed = 1, fprintf(stderr, "  a connection reached the listener\n");
    if (signalled)
        failed = 1, fprintf(stderr, "  a signal arrived\n");
    snprintf(p, sizeof p, "rm -rf %s", root);
    if (system(p) != 0)
        fprintf(stderr, "  cannot clean %s\n", root);
    printf("%s (Landlock ABI %d)\n", failed ? "FAILED" : "ok", rb_landlock_abi());
    return failed;
}
