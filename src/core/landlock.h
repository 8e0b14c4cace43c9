/*
 * Landlock (the kernel's unprivileged sandbox) as runbook uses it: a
 * dry-run's children and the dry-running engine itself may read and execute
 * anything but write only where they are told, and a scenario's process may
 * not reach the network nor signal processes outside.  The kernel enforces
 * it for the process and everything it starts; nothing undoes it.
 */
#ifndef RB_LANDLOCK_H
#define RB_LANDLOCK_H

/* The kernel's Landlock ABI version; 0 when it has none. */
int rb_landlock_abi(void);

#define RB_LL_NO_NET 1 /* no TCP bind or connect (ABI >= 4; ignored below) */
#define RB_LL_SCOPE  2 /* no signals to, nor abstract sockets of, processes outside (ABI >= 6) */

/* Confine this process and everything it starts, for good: read and execute
 * anywhere, write (create, remove, rename, truncate, make sockets...) only
 * below the paths in writable (NULL-terminated; a file or a directory; a path
 * that does not exist is skipped), plus flags.  Sets PR_SET_NO_NEW_PRIVS.
 * 0: enforced; -1 with errno set (ENOSYS/EOPNOTSUPP: no Landlock). */
int rb_landlock_confine(const char *const *writable, unsigned flags);

/* Why this process is not confined: "no Landlock", "Landlock: <error>" (the
 * last rb_landlock_confine's), "not confined"; NULL once it is. */
const char *rb_landlock_why_not(void);

/* `runbook __confined FILE FD ARGV...` (rb_spawnp, host.c): the child of a
 * rehearsal confines itself -- no writes but /dev/null, no signals outside,
 * no changes of metadata -- then executes FILE, found on this process's
 * PATH as posix_spawnp would, with argv ARGV and the environment read from
 * descriptor FD.  It never runs FILE unconfined: if the
 * confinement fails it exits 126. */
int rb_landlock_shim(int argc, char **argv);

#endif
