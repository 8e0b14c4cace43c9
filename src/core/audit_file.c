/*
 * The audit log as a file, apart from what is in it: whose file is at a path
 * (found without writing a byte to it or taking a lock: another program's
 * database is refused untouched), the temporary files a creation killed
 * before its rename leaves, and who holds the lock that keeps a run
 * waiting, as /proc/locks shows it.  audit.c owns the schema and the
 * records; this file only looks.
 */
#include "audit_file.h"
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The command line of pid, printable, cut at about 80 bytes. */
static void proc_command(int pid, char *out, size_t n)
{
    char p[64], buf[96];
    snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
    out[0] = '\0';
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (len <= 0) {
        snprintf(p, sizeof p, "/proc/%d/comm", pid);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (len <= 0)
            return;
    }
    int cut = len == (ssize_t)sizeof buf - 1;
    while (len > 0 && (buf[len - 1] == '\0' || buf[len - 1] == '\n'))
        len--;
    for (ssize_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] == 0x7f)
            buf[i] = buf[i] == '\0' ? ' ' : '?';
    buf[len] = '\0';
    snprintf(out, n, "%s%s", buf, cut ? "..." : "");
}

/* Who holds the lock that stops us, as SQLite placed it: POSIX record
 * locks, which /proc/locks lists with their holder's pid.  In WAL mode the
 * write lock is byte 120 of the -shm file (121 the checkpointer's, 122
 * recovery's); in rollback mode, or with locking_mode=EXCLUSIVE, it is on
 * the database file from byte 0x40000000 (pending, reserved, then the
 * shared range taken exclusively).  Matched by inode: st_dev and the
 * device /proc/locks prints differ on overlay file systems.  Fills out
 * with "pid N (command) holds its write lock, ..." and returns the first
 * holder's pid, or returns 0 with out empty. */
int audit_lock_holders(const char *path, char *out, size_t n)
{
    char shm_path[4200];
    struct stat db, shm;
    snprintf(shm_path, sizeof shm_path, "%s-shm", path);
    int have_db = stat(path, &db) == 0, have_shm = stat(shm_path, &shm) == 0;
    out[0] = '\0';
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return 0;
    char line[256];
    size_t used = 0;
    int first = 0, count = 0;
    while (fgets(line, sizeof line, f) && count < 4) {
        char type[16], mode[16], rw[16], start_s[32];
        int pid = 0;
        unsigned maj = 0, min = 0;
        unsigned long ino = 0;
        if (strstr(line, "->") || /* a waiter, not a holder */
            sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%lu %31s", type, mode, rw, &pid, &maj, &min,
                   &ino, start_s) != 8 ||
            strcmp(rw, "WRITE") != 0)
            continue;
        unsigned long long start = strtoull(start_s, NULL, 10);
        const char *what = NULL;
        if (have_shm && ino == (unsigned long)shm.st_ino)
            what = start == 120   ? "its write lock (a write transaction is open)"
                   : start == 121 ? "its checkpoint lock"
                   : start == 122 ? "its recovery lock"
                                  : NULL;
        else if (have_db && ino == (unsigned long)db.st_ino)
            what = start == 0x40000000ULL   ? "a pending lock on it"
                   : start == 0x40000001ULL ? "its reserved (write) lock"
                   : start >= 0x40000002ULL ? "an exclusive lock on it"
                                            : NULL;
        if (!what)
            continue;
        char cmd[128] = "";
        if (pid > 0)
            proc_command(pid, cmd, sizeof cmd);
        char who[200];
        if (pid == (int)getpid()) /* another connection of ours (a thread) */
            snprintf(who, sizeof who, "this process itself (pid %d)", pid);
        else if (pid > 0)
            snprintf(who, sizeof who, "pid %d%s%s%s", pid, cmd[0] ? " (" : "", cmd,
                     cmd[0] ? ")" : "");
        else
            snprintf(who, sizeof who, "a process (an open file description lock: no pid)");
        int w = snprintf(out + used, n - used, "%s%s holds %s", count ? "; " : "", who, what);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
        if (!first && pid > 0 && pid != (int)getpid())
            first = pid;
        count++;
    }
    fclose(f);
    return first;
}

typedef struct look {
    int notadb, app_id, user_version, objects, records;
    char tables[256]; /* the first few, for the message */
} look;

/* Read the header fields and the schema of path.  immutable: the main file
 * only, through SQLite's VFS (which keeps this process's other locks on
 * the file, unlike an open() and close() of our own), no lock taken and no
 * -wal, -shm or -journal created.  Otherwise a normal connection that never
 * checkpoints: it reads what a WAL holds and writes nothing but the -shm
 * index SQLite keeps next to a WAL. */
static int peek(const char *path, int immutable, look *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    char uri[3 * 4096 + 32];
    size_t u = (size_t)snprintf(uri, sizeof uri, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p && u + 4 < sizeof uri; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/._-~", *p))
            uri[u++] = (char)*p;
        else
            u += (size_t)snprintf(uri + u, sizeof uri - u, "%%%02X", *p);
    }
    snprintf(uri + u, sizeof uri - u, "%s", immutable ? "?immutable=1" : "");
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(uri, &db,
                             (immutable ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                                 SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
        sqlite3_busy_timeout(db, 2000);
    }
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db,
            "SELECT (SELECT application_id FROM pragma_application_id()),"
            " (SELECT user_version FROM pragma_user_version()),"
            " (SELECT count(*) FROM sqlite_master),"
            " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'),"
            " (SELECT group_concat(name, ', ') FROM (SELECT name FROM sqlite_master"
            " WHERE type = 'table' ORDER BY name LIMIT 5))",
            -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        l->app_id = sqlite3_column_int(st, 0);
        l->user_version = sqlite3_column_int(st, 1);
        l->objects = sqlite3_column_int(st, 2);
        l->records = sqlite3_column_int(st, 3);
        snprintf(l->tables, sizeof l->tables, "%s",
                 (const char *)(sqlite3_column_text(st, 4) ? sqlite3_column_text(st, 4)
                                                           : (const unsigned char *)""));
        rc = SQLITE_OK;
    }
    if ((rc & 0xff) == SQLITE_NOTADB) {
        l->notadb = 1;
        rc = SQLITE_OK;
    } else if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* What is at path, found without writing to it: AUDIT_FILE_NONE, AUDIT_FILE_BLANK (nothing
 * of anyone's in it), AUDIT_FILE_OURS, or -1 with err (AUDIT_FILE_FOREIGN in *kind when it is
 * not a runbook audit log). */
int audit_file_kind(const char *path, int *kind, char *err, size_t errlen)
{
    struct stat sb;
    *kind = AUDIT_FILE_NONE;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a file", path);
        return -1;
    }
    *kind = AUDIT_FILE_BLANK;
    if (sb.st_size == 0)
        return 0;
    look l;
    /* the lock-free read can catch a page half-written by another process's
     * checkpoint ("malformed"): then read it again, with SQLite's locks */
    if (peek(path, 1, &l, err, errlen) != 0 && peek(path, 0, &l, err, errlen) != 0)
        return -1;
    if (!l.notadb && l.app_id == 0 && l.objects == 0) {
        /* the main file holds no schema; a WAL not yet checkpointed may
         * (a log of an older runbook, or another program's new database) */
        char wal[4200];
        struct stat ws;
        snprintf(wal, sizeof wal, "%s-wal", path);
        if (stat(wal, &ws) == 0 && ws.st_size > 0 && peek(path, 0, &l, err, errlen) != 0)
            return -1;
    }
    *kind = AUDIT_FILE_FOREIGN;
    if (l.notadb)
        snprintf(err, errlen,
                 "%s is not a runbook audit log: it is not an SQLite database (left untouched; "
                 "give --audit the path of a log, or of a file that does not exist yet)",
                 path);
    else if (l.app_id != 0 && l.app_id != AUDIT_APPLICATION_ID)
        snprintf(err, errlen,
                 "%s is not a runbook audit log: it is the SQLite database of another "
                 "application (application_id 0x%08x; a log has 0x%08x); left untouched",
                 path, (unsigned)l.app_id, (unsigned)AUDIT_APPLICATION_ID);
    else if (l.records || l.app_id == AUDIT_APPLICATION_ID)
        *kind = AUDIT_FILE_OURS;
    else if (l.objects || l.user_version)
        snprintf(err, errlen,
                 "%s is not a runbook audit log: it is an SQLite database of another "
                 "application (tables: %s; no runbook records table); left untouched",
                 path, l.tables[0] ? l.tables : "none, but indexes, views or a user_version");
    else
        *kind = AUDIT_FILE_BLANK;
    return *kind == AUDIT_FILE_FOREIGN ? -1 : 0;
}

void audit_split_path(const char *path, char *dir, size_t n, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, n, ".");
        *base = path;
    } else {
        snprintf(dir, n, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        *base = slash + 1;
    }
}

/* Remove the temporary files a creation killed before its rename left:
 * ".BASE.PID.XXXXXXXX.tmp" (and -journal/-wal/-shm of it) whose process is
 * gone.  A pid alive again (reused) keeps its file until a later run. */
void audit_clean_stale_temps(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name, *p = nm + 2 + bl;
        if (nm[0] != '.' || strncmp(nm + 1, base, bl) != 0 || nm[1 + bl] != '.' || *p < '1' ||
            *p > '9')
            continue;
        char *end;
        long pid = strtol(p, &end, 10);
        if (*end != '.' || strspn(end + 1, "0123456789abcdef") != 8 ||
            strncmp(end + 9, ".tmp", 4) != 0)
            continue;
        const char *suffix = end + 13;
        if (*suffix && strcmp(suffix, "-journal") != 0 && strcmp(suffix, "-wal") != 0 &&
            strcmp(suffix, "-shm") != 0)
            continue;
        if (pid == (long)getpid() || pid != (long)(pid_t)pid || kill((pid_t)pid, 0) == 0 ||
            errno != ESRCH)
            continue;
        unlinkat(dirfd(d), nm, 0);
    }
    closedir(d);
}

void audit_unlink_temp(const char *tmp)
{
    static const char *const sfx[] = {"", "-journal", "-wal", "-shm"};
    char p[4200];
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        snprintf(p, sizeof p, "%s%s", tmp, sfx[i]);
        unlink(p);
    }
}

void audit_fsync_path(const char *p, int flags)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC | flags);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}
