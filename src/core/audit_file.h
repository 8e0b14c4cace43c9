/* The audit log as a file: whose it is, stray temporaries, lock holders
 * (audit_file.c). */
#ifndef RUNBOOK_AUDIT_FILE_H
#define RUNBOOK_AUDIT_FILE_H

#include <stddef.h>

/* What is at a path */
enum { AUDIT_FILE_NONE, AUDIT_FILE_BLANK, AUDIT_FILE_OURS, AUDIT_FILE_FOREIGN };

/* What is at path, found without writing to it or locking it:
 * AUDIT_FILE_NONE (nothing), _BLANK (nothing of anyone's in it), _OURS, or
 * -1 with err (_FOREIGN in *kind when it is not a runbook audit log). */
int audit_file_kind(const char *path, int *kind, char *err, size_t errlen);

/* Who holds the write lock on the log at path (its -shm in WAL mode):
 * "pid N (command) holds its write lock, ..." into out; returns the first
 * holder's pid, or 0 with out empty. */
int audit_lock_holders(const char *path, char *out, size_t n);

/* path as its directory (into dir) and its base name (in path). */
void audit_split_path(const char *path, char *dir, size_t n, const char **base);
/* Remove the ".BASE.PID.XXXXXXXX.tmp" files of creations whose process is
 * gone. */
void audit_clean_stale_temps(const char *dir, const char *base);
/* Remove a temporary log and its -journal, -wal and -shm. */
void audit_unlink_temp(const char *tmp);
/* fsync the file or directory at p (flags: O_DIRECTORY for a directory). */
void audit_fsync_path(const char *p, int flags);

#endif
