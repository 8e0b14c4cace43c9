/*
 * Landlock without libc support: Debian bookworm's <linux/landlock.h> knows
 * ABI 2 at most, so the structures and rights of later ABIs are spelled out
 * here (values from the kernel's include/uapi/linux/landlock.h; they are ABI
 * and never change).  Best effort as the kernel documentation recommends:
 * each right is handled only when the running kernel knows it, so the same
 * binary confines as much as each kernel can.
 */
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule       445
#define SYS_landlock_restrict_self  446
#endif

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH      1

#define LL_FS_EXECUTE     (1ULL << 0)
#define LL_FS_WRITE_FILE  (1ULL << 1)
#define LL_FS_READ_FILE   (1ULL << 2)
#define LL_FS_REMOVE_DIR  (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR   (1ULL << 6)
#define LL_FS_MAKE_DIR    (1ULL << 7)
#define LL_FS_MAKE_REG    (1ULL << 8)
#define LL_FS_MAKE_SOCK   (1ULL << 9)
#define LL_FS_MAKE_FIFO   (1ULL << 10)
#define LL_FS_MAKE_BLOCK  (1ULL << 11)
#define LL_FS_MAKE_SYM    (1ULL << 12)
#define LL_FS_REFER       (1ULL << 13) /* ABI 2 */
#define LL_FS_TRUNCATE    (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV   (1ULL << 15) /* ABI 5 */

#define LL_NET_BIND_TCP    (1ULL << 0) /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)

#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL               (1ULL << 1)

/* Everything that changes the file system.  Reading and executing are not
 * handled at all, so they stay allowed everywhere. */
#define LL_FS_WRITES                                                                               \
    (LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR |  \
     LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK | LL_FS_MAKE_SYM |      \
     LL_FS_REFER | LL_FS_TRUNCATE)

/* The rights that apply to a file itself (the kernel refuses the others on
 * a rule for a file that is not a directory). */
#define LL_FS_FILE_RIGHTS                                                                          \
    (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

/* Device ioctls (IOCTL_DEV, ABI 5) are handled too: on some devices they
 * write in effect (a disk's discard, TIOCSTI typing into the operator's
 * terminal), and they are granted only with the writable paths.  That
 * breaks no terminal or pipe a process already has: Landlock checks rights
 * when a file is opened, so descriptors opened before the confinement (the
 * inherited terminal, pipes, sockets) keep every right, and pipes are not
 * devices.  What it refuses is a device opened afterwards: a confined child
 * that opens /dev/tty itself (a password prompt) cannot set its modes, so
 * list /dev/tty among the writable paths where prompts must work (the
 * dry-running engine does, for confirm()). */

static int ll_abi_cached = -1;
static int ll_confined;    /* rb_landlock_confine succeeded in this process */
static char ll_error[128]; /* else why the last attempt failed */

const char *rb_landlock_why_not(void)
{
    if (ll_confined)
        return NULL;
    if (rb_landlock_abi() == 0)
        return "no Landlock";
    return ll_error[0] ? ll_error : "not confined";
}

int rb_landlock_abi(void)
{
    if (ll_abi_cached < 0) {
        long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
        ll_abi_cached = v < 0 ? 0 : (int)v;
    }
    return ll_abi_cached;
}

/* The handled file-system rights the running ABI knows, as the kernel
 * documentation's best-effort example masks them. */
static uint64_t fs_rights_for(int abi)
{
    uint64_t fs = LL_FS_WRITES | LL_FS_IOCTL_DEV;
    if (abi < 2)
        fs &= ~LL_FS_REFER;
    if (abi < 3)
        fs &= ~LL_FS_TRUNCATE;
    if (abi < 5)
        fs &= ~LL_FS_IOCTL_DEV;
    return fs;
}

/* Grants `rights` below path (only the file rights when it is a file); a
 * path that does not exist is skipped.  0, or -1 with errno set. */
static int allow_path(int ruleset, const char *path, uint64_t rights)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct ll_path_beneath_attr pb = {
        .allowed_access = S_ISDIR(st.st_mode) ? rights : rights & LL_FS_FILE_RIGHTS,
        .parent_fd = fd,
    };
    long r = pb.allowed_access
                 ? syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0)
                 : 0;
    int e = errno;
    close(fd);
    errno = e;
    return r < 0 ? -1 : 0;
}

int rb_landlock_confine(const char *const *writable, unsigned flags)
{
    int abi = rb_landlock_abi();
    if (abi <= 0) {
        errno = ENOSYS;
        return -1;
    }
    struct ll_ruleset_attr attr = {.handled_access_fs = fs_rights_for(abi)};
    if ((flags & RB_LL_NO_NET) && abi >= 4)
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    if ((flags & RB_LL_SCOPE) && abi >= 6)
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
    /* An older kernel accepts the whole structure as long as the fields it
     * does not know are zero, which the masking above ensures. */
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) {
        snprintf(ll_error, sizeof ll_error, "Landlock: %s", strerror(errno));
        return -1;
    }
    int rc = 0;
    for (const char *const *p = writable; rc == 0 && p && *p; p++)
        rc = allow_path(ruleset, *p, attr.handled_access_fs);
    if (rc == 0)
        rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -1;
    if (rc == 0)
        rc = syscall(SYS_landlock_restrict_self, ruleset, 0) == 0 ? 0 : -1;
    int e = errno;
    close(ruleset);
    if (rc == 0)
        ll_confined = 1;
    else
        snprintf(ll_error, sizeof ll_error, "Landlock: %s", strerror(e));
    errno = e;
    return rc;
}

/* ---- what Landlock leaves writable: metadata ------------------------------
 * Landlock (up to ABI 7) does not govern a file's metadata: under it, touch
 * still sets an existing file's times, chmod its mode, setfattr its
 * attributes.  A rehearsal's child gets a seccomp filter on top that fails
 * those system calls with EACCES.  Foreign-architecture calls (a 32-bit
 * program on a 64-bit kernel) are not filtered: their numbers differ. */
#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef NATIVE_ARCH
static int no_metadata_changes(void)
{
    static const long calls[] = {
#ifdef SYS_chmod
        SYS_chmod,
#endif
#ifdef SYS_chown
        SYS_chown,
#endif
#ifdef SYS_lchown
        SYS_lchown,
#endif
#ifdef SYS_utime
        SYS_utime,
#endif
#ifdef SYS_utimes
        SYS_utimes,
#endif
#ifdef SYS_futimesat
        SYS_futimesat,
#endif
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchown,
        SYS_fchownat,
        SYS_utimensat,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        452, /* fchmodat2 (Linux 6.6) */
        463, /* setxattrat (6.13) */
        466, /* removexattrat (6.13) */
    };
    enum { N = sizeof calls / sizeof calls[0] };
    struct sock_filter f[N + 6];
    unsigned k = 0;
    f[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < N; i++) /* a match jumps to the EACCES at the end */
        f[k++] =
            (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)calls[i], N - i, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
    struct sock_fprog prog = {.len = (unsigned short)k, .filter = f};
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}
#else
static int no_metadata_changes(void)
{
    return 0; /* no filter for this architecture yet: Landlock's rights only */
}
#endif

/* The environment block of descriptor fd (NUL-terminated strings), as an
 * envp array; NULL if it cannot be read. */
static char **read_env(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0)
        return NULL;
    size_t size = (size_t)st.st_size;
    char *block = malloc(size + 1);
    if (!block)
        return NULL;
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, block + got, size - got, (off_t)got);
        if (r <= 0) {
            free(block);
            return NULL;
        }
        got += (size_t)r;
    }
    block[size] = '\0';
    size_t n = 0;
    for (size_t i = 0; i < size; i++)
        n += block[i] == '\0';
    char **envp = calloc(n + 1, sizeof *envp);
    if (!envp) {
        free(block);
        return NULL;
    }
    size_t k = 0;
    for (char *p = block; p < block + size; p += strlen(p) + 1)
        envp[k++] = p;
    envp[k] = NULL;
    return envp;
}

int rb_landlock_shim(int argc, char **argv)
{
    char *end = NULL;
    long fd = argc > 4 ? strtol(argv[3], &end, 10) : -1;
    if (fd < 3 || !end || *end) {
        fprintf(stderr, "runbook __confined: FILE FD ARGV... (an engine's internal command)\n");
        return 126;
    }
    char **envp = read_env((int)fd);
    close((int)fd);
    if (!envp) {
        fprintf(stderr, "runbook: %s not started: cannot read its environment\n", argv[2]);
        return 126;
    }
    static const char *const writable[] = {"/dev/null", NULL};
    if (rb_landlock_confine(writable, RB_LL_SCOPE) != 0 || no_metadata_changes() != 0) {
        fprintf(stderr, "runbook: %s not started: cannot confine it for the dry-run: %s\n", argv[2],
                strerror(errno));
        return 126;
    }
    execvpe(argv[2], argv + 4, envp);
    int e = errno;
    fprintf(stderr, "runbook: cannot start %s: %s\n", argv[2], strerror(e));
    return e == ENOENT ? 127 : 126;
}
