/*
 * The fs module: the only way a runbook touches files (the sandbox removes
 * io.open for writing and os.remove).  Reads -- read, exists, list, glob,
 * stat -- run in every mode; mutations -- write, append, remove, mkdir,
 * copy, move -- are simulated in dry-run by the funnel with its default
 * result { ok = true, dry_run = true }: live they return true, and both are
 * truthy, which is all a runbook can sensibly test (the table also tells a
 * runbook it is rehearsing).  Every row describes itself as `fs VERB
 * [FLAGS] PATH [PATH2] [(DETAIL)]` with the first path as the target.
 * write and copy are atomic (a temporary file in the same directory, fsync,
 * rename), because a half-written config file is worse than none.  Failures
 * raise "fs.VERB PATH: strerror".  File descriptors, directory streams and
 * temporary files live in a to-be-closed guard, so a raise never leaks them.
 */
#include "runbook/runbook.h"
#include "yamlconv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <lauxlib.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the resource guard ------------------------------------------------- */

typedef struct fsguard {
    int fd, fd2;
    DIR *dir;
    glob_t gl;
    int gl_ok;
    int unlink_tmp; /* the temporary file was not renamed into place */
    char tmp[PATH_MAX];
} fsguard;

static int fsguard_close(lua_State *L)
{
    fsguard *g = (fsguard *)lua_touserdata(L, 1);
    if (g->fd >= 0)
        close(g->fd);
    if (g->fd2 >= 0)
        close(g->fd2);
    if (g->dir)
        closedir(g->dir);
    if (g->gl_ok)
        globfree(&g->gl);
    if (g->unlink_tmp)
        unlink(g->tmp);
    g->fd = g->fd2 = -1;
    g->dir = NULL;
    g->gl_ok = g->unlink_tmp = 0;
    return 0;
}

/* Push a guard, marked to be closed; returns it, its index in *idx. */
static fsguard *fsguard_new(lua_State *L, int *idx)
{
    fsguard *g = (fsguard *)lua_newuserdatauv(L, sizeof *g, 0);
    memset(g, 0, sizeof *g);
    g->fd = g->fd2 = -1;
    if (luaL_newmetatable(L, "runbook.fs.guard")) {
        lua_pushcfunction(L, fsguard_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, fsguard_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    *idx = lua_gettop(L);
    lua_toclose(L, *idx);
    return g;
}

/* Close the guard at idx and take it off the stack, keeping what is above. */
static void fsguard_done(lua_State *L, int idx)
{
    lua_closeslot(L, idx);
    lua_remove(L, idx);
}

/* ---- helpers ------------------------------------------------------------ */

static int fs_fail(lua_State *L, const char *verb, const char *path, int err)
{
    return luaL_error(L, "fs.%s %s: %s", verb, path, strerror(err));
}

/* The options table at argument i, or 0 when the call has none.  describe()
 * sees exactly the call's arguments, so misuse is refused in dry-run too. */
static int fs_opts(lua_State *L, int i)
{
    if (lua_isnoneornil(L, i))
        return 0;
    luaL_checktype(L, i, LUA_TTABLE);
    return i;
}

/* opts.mode: an octal string such as "0644"; -1 when absent.  A number is
 * refused: Lua has no octal literals, so mode = 644 would mean 01204. */
static int fs_mode_opt(lua_State *L, int opts, const char *verb)
{
    if (!opts)
        return -1;
    int t = lua_getfield(L, opts, "mode");
    int mode = -1;
    if (t != LUA_TNIL) {
        const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        char *end = NULL;
        long v = s ? strtol(s, &end, 8) : -1;
        if (!s || !*s || *end || v < 0 || v > 07777 || strspn(s, "01234567") != strlen(s))
            luaL_error(L, "fs.%s: option 'mode' must be an octal string like \"0644\"", verb);
        mode = (int)v;
    }
    lua_pop(L, 1);
    return mode;
}

static mode_t current_umask(void)
{
    mode_t m = umask(022);
    umask(m);
    return m;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* "dir/base" when dst is an existing directory (cp and mv do that), else dst */
static const char *into_dir(lua_State *L, const char *src, const char *dst)
{
    struct stat st;
    if (stat(dst, &st) != 0 || !S_ISDIR(st.st_mode))
        return dst;
    const char *base = strrchr(src, '/');
    base = base ? base + 1 : src;
    size_t n = strlen(dst);
    return lua_pushfstring(L, "%s%s%s", dst, n && dst[n - 1] == '/' ? "" : "/", base);
}

/* Create the temporary file for an atomic replacement of path, next to it:
 * the same directory, so rename() stays on one file system. */
static int open_temp(fsguard *g, const char *path)
{
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    if (snprintf(g->tmp, sizeof g->tmp, "%.*s.%s.rb-XXXXXX", dirlen, path, base) >=
        (int)sizeof g->tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    g->fd = mkostemp(g->tmp, O_CLOEXEC);
    if (g->fd < 0)
        return -1;
    g->unlink_tmp = 1;
    return 0;
}

static void sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the rename is durable once its directory is */
        close(fd);
    }
}

/* Finish an atomic replacement: mode, data on disk, rename into place. */
static int commit_temp(fsguard *g, const char *path, mode_t mode)
{
    if (fchmod(g->fd, mode) != 0 || fsync(g->fd) != 0)
        return -1;
    int fd = g->fd;
    g->fd = -1;
    if (close(fd) != 0)
        return -1;
    if (rename(g->tmp, path) != 0)
        return -1;
    g->unlink_tmp = 0;
    sync_dir_of(path);
    return 0;
}

int fs_push_file_contents(lua_State *L, const char *path)
{
    int gi;
    fsguard *g = fsguard_new(L, &gi);
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->fd < 0) {
        int e = errno;
        lua_closeslot(L, gi);
        lua_pop(L, 1);
        errno = e;
        return -1;
    }
    struct stat st;
    size_t hint = fstat(g->fd, &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size : 0;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, hint + 1);
    size_t room = hint + 1;
    for (;;) {
        ssize_t n = read(g->fd, p, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            luaL_pushresult(&b);
            lua_closeslot(L, gi);
            lua_settop(L, gi - 1);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        luaL_addsize(&b, (size_t)n);
        room = 65536;
        p = luaL_prepbuffsize(&b, room);
    }
    luaL_pushresult(&b);
    fsguard_done(L, gi);
    return 0;
}

/* ---- describe hooks ----------------------------------------------------- */

/* verb, target and words `fs VERB [FLAGS] P1 [P2] [(DETAIL)]` */
static void fs_describe(lua_State *L, rb_action *a, const char *verb, const char *flags,
                        const char *p1, const char *p2, const char *detail)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "fs ");
    luaL_addstring(&b, verb);
    if (flags) {
        luaL_addchar(&b, ' ');
        luaL_addstring(&b, flags);
    }
    luaL_addchar(&b, ' ');
    rb_quote_arg(&b, p1);
    if (p2) {
        luaL_addchar(&b, ' ');
        rb_quote_arg(&b, p2);
    }
    if (detail) {
        luaL_addstring(&b, " (");
        luaL_addstring(&b, detail);
        luaL_addchar(&b, ')');
    }
    luaL_pushresult(&b);
    rb_action_set(L, a, "verb", "%s", verb);
    rb_action_set(L, a, "target", "%s", p1);
    rb_action_set(L, a, "words", "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    rb_field_str(L, "path", p1);
    rb_field_str(L, "dest", p2);
}

static void describe_path(lua_State *L, rb_action *a, const char *verb)
{
    const char *path = luaL_checkstring(L, 1);
    a->opts = fs_opts(L, 2);
    fs_describe(L, a, verb, NULL, path, NULL, NULL);
}

static void describe_read(lua_State *L, rb_action *a)
{
    describe_path(L, a, "read");
}

static void describe_exists(lua_State *L, rb_action *a)
{
    describe_path(L, a, "exists");
}

static void describe_list(lua_State *L, rb_action *a)
{
    describe_path(L, a, "list");
}

static void describe_glob(lua_State *L, rb_action *a)
{
    describe_path(L, a, "glob");
}

static void describe_stat(lua_State *L, rb_action *a)
{
    describe_path(L, a, "stat");
}

static void describe_sha256(lua_State *L, rb_action *a)
{
    describe_path(L, a, "sha256");
}

static void describe_data(lua_State *L, rb_action *a, const char *verb)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    luaL_checklstring(L, 2, &len);
    a->opts = fs_opts(L, 3);
    int mode = fs_mode_opt(L, a->opts, verb);
    char detail[64];
    if (mode >= 0)
        snprintf(detail, sizeof detail, "%zu bytes, mode %04o", len, (unsigned)mode);
    else
        snprintf(detail, sizeof detail, "%zu bytes", len);
    fs_describe(L, a, verb, NULL, path, NULL, detail);
}

static void describe_write(lua_State *L, rb_action *a)
{
    describe_data(L, a, "write");
}

static void describe_append(lua_State *L, rb_action *a)
{
    describe_data(L, a, "append");
}

static void describe_remove(lua_State *L, rb_action *a)
{
    const char *path = luaL_checkstring(L, 1);
    a->opts = fs_opts(L, 2);
    fs_describe(L, a, "remove", rb_opt_bool(L, a->opts, "recursive", 0) ? "-r" : NULL, path, NULL,
                NULL);
}

static void describe_mkdir(lua_State *L, rb_action *a)
{
    const char *path = luaL_checkstring(L, 1);
    a->opts = fs_opts(L, 2);
    int mode = fs_mode_opt(L, a->opts, "mkdir");
    char detail[32];
    snprintf(detail, sizeof detail, "mode %04o", (unsigned)(mode >= 0 ? mode : 0));
    fs_describe(L, a, "mkdir", rb_opt_bool(L, a->opts, "parents", 0) ? "-p" : NULL, path, NULL,
                mode >= 0 ? detail : NULL);
}

static void describe_copy(lua_State *L, rb_action *a)
{
    const char *src = luaL_checkstring(L, 1), *dst = luaL_checkstring(L, 2);
    a->opts = fs_opts(L, 3);
    fs_describe(L, a, "copy", NULL, src, dst, NULL);
}

static void describe_move(lua_State *L, rb_action *a)
{
    const char *src = luaL_checkstring(L, 1), *dst = luaL_checkstring(L, 2);
    a->opts = fs_opts(L, 3);
    fs_describe(L, a, "move", NULL, src, dst, NULL);
}

/* ---- reads -------------------------------------------------------------- */

/* fs.read(path) -> string */
static int l_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (fs_push_file_contents(L, path) != 0)
        return fs_fail(L, "read", path, errno);
    return 1;
}

/* fs.sha256(path) -> 64 hex digits   the file is streamed, never held whole:
 * backups are checked against their manifests with it */
static int l_sha256(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fs_fail(L, "sha256", path, errno);
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return fs_fail(L, "sha256", path, e);
        }
        sha256_update(&ctx, (size_t)n, (const uint8_t *)buf);
    }
    close(fd);
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof digest, digest);
    char hex[2 * SHA256_DIGEST_SIZE + 1];
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    lua_pushstring(L, hex);
    return 1;
}

/* fs.exists(path) -> boolean   follows symlinks (a dangling link is false);
 * raises when it cannot tell (EACCES), rather than answer false */
static int l_exists(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (errno != ENOENT && errno != ENOTDIR)
        return fs_fail(L, "exists", path, errno);
    lua_pushboolean(L, 0);
    return 1;
}

/* Replace the set {name = true} on top with its sorted array of names. */
static void sorted_names(lua_State *L)
{
    dataconv_sorted_keys(L, -1, "fs");
    lua_remove(L, -2);
    dataconv_push_array_mt(L);
    lua_setmetatable(L, -2);
}

/* fs.list(dir) -> { names... }   sorted, without . and .. */
static int l_list(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int gi;
    fsguard *g = fsguard_new(L, &gi);
    g->dir = opendir(path);
    if (!g->dir)
        return fs_fail(L, "list", path, errno);
    lua_newtable(L);
    for (;;) {
        errno = 0;
        struct dirent *d = readdir(g->dir);
        if (!d) {
            if (errno)
                return fs_fail(L, "list", path, errno);
            break;
        }
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
            continue;
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, d->d_name);
    }
    sorted_names(L);
    fsguard_done(L, gi);
    return 1;
}

/* fs.glob(pattern) -> { paths... }   sorted; no match is an empty list */
static int l_glob(lua_State *L)
{
    const char *pattern = luaL_checkstring(L, 1);
    int gi;
    fsguard *g = fsguard_new(L, &gi);
    int rc = glob(pattern, GLOB_NOSORT, NULL, &g->gl);
    g->gl_ok = 1; /* glob() set gl up whatever it returned */
    if (rc == GLOB_NOSPACE)
        return luaL_error(L, "fs.glob %s: not enough memory", pattern);
    if (rc == GLOB_ABORTED)
        return luaL_error(L, "fs.glob %s: cannot read a directory", pattern);
    lua_newtable(L);
    for (size_t i = 0; rc == 0 && i < g->gl.gl_pathc; i++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, g->gl.gl_pathv[i]);
    }
    sorted_names(L);
    fsguard_done(L, gi);
    return 1;
}

/* fs.stat(path [, { check = false }]) -> { size, mtime, mode = "0644", type } | nil
 * Does not follow a final symlink: type = "link".  Missing: raises, or nil
 * with check = false. */
static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int opts = fs_opts(L, 2);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if ((errno == ENOENT || errno == ENOTDIR) && !rb_opt_bool(L, opts, "check", 1)) {
            lua_pushnil(L);
            return 1;
        }
        return fs_fail(L, "stat", path, errno);
    }
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushfstring(L, "0%d%d%d", (int)((st.st_mode >> 6) & 7), (int)((st.st_mode >> 3) & 7),
                    (int)(st.st_mode & 7));
    if (st.st_mode & 07000) { /* setuid, setgid, sticky: four octal digits */
        lua_pop(L, 1);
        lua_pushfstring(L, "%d%d%d%d", (int)((st.st_mode >> 9) & 7), (int)((st.st_mode >> 6) & 7),
                        (int)((st.st_mode >> 3) & 7), (int)(st.st_mode & 7));
    }
    lua_setfield(L, -2, "mode");
    lua_pushstring(L, S_ISREG(st.st_mode)   ? "file"
                      : S_ISDIR(st.st_mode) ? "directory"
                      : S_ISLNK(st.st_mode) ? "link"
                                            : "other");
    lua_setfield(L, -2, "type");
    return 1;
}

/* ---- mutations ---------------------------------------------------------- */

/* fs.write(path, data [, { mode = "0600" }]) -> true
 * Atomic.  Without mode an existing file keeps its mode (and, when we may,
 * its owner); a new one gets 0666 less the umask.  A symlink is written
 * through, not replaced. */
static int l_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int mode = fs_mode_opt(L, fs_opts(L, 3), "write");
    const char *dest = path;
    char real[PATH_MAX];
    struct stat st;
    int exists = 0;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode) && realpath(path, real))
            dest = real;
        exists = stat(dest, &st) == 0;
        if (exists && S_ISDIR(st.st_mode))
            return fs_fail(L, "write", path, EISDIR);
    }
    if (mode < 0)
        mode = exists ? (int)(st.st_mode & 07777) : (int)(0666 & ~current_umask());
    int gi;
    fsguard *g = fsguard_new(L, &gi);
    if (open_temp(g, dest) != 0)
        return fs_fail(L, "write", path, errno);
    if (exists && (st.st_uid != geteuid() || st.st_gid != getegid()))
        (void)!fchown(g->fd, st.st_uid, st.st_gid); /* only root can, and only root needs to */
    if (write_all(g->fd, data, len) != 0 || commit_temp(g, dest, (mode_t)mode) != 0)
        return fs_fail(L, "write", path, errno);
    fsguard_done(L, gi);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.append(path, data [, { mode = "0600" }]) -> true   (mode for a new file) */
static int l_append(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int mode = fs_mode_opt(L, fs_opts(L, 3), "append");
    int gi;
    fsguard *g = fsguard_new(L, &gi);
    g->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode >= 0 ? mode : 0666);
    if (g->fd < 0 || write_all(g->fd, data, len) != 0 || fsync(g->fd) != 0)
        return fs_fail(L, "append", path, errno);
    fsguard_done(L, gi);
    lua_pushboolean(L, 1);
    return 1;
}

/* nftw has no user pointer: the failure of the walk in progress */
static struct {
    int err;
    char path[PATH_MAX];
} rm_failure;

static int rm_one(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if ((typeflag == FTW_DP ? rmdir(fpath) : unlink(fpath)) == 0)
        return 0;
    rm_failure.err = errno;
    snprintf(rm_failure.path, sizeof rm_failure.path, "%s", fpath);
    return 1;
}

/* fs.remove(path [, { recursive = true, check = false }]) -> true | false
 * A directory needs recursive = true unless empty; symlinks are removed,
 * never followed.  Missing: raises, or false with check = false. */
static int l_remove(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int opts = fs_opts(L, 2);
    int recursive = rb_opt_bool(L, opts, "recursive", 0);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT && !rb_opt_bool(L, opts, "check", 1)) {
            lua_pushboolean(L, 0);
            return 1;
        }
        return fs_fail(L, "remove", path, errno);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0)
            return fs_fail(L, "remove", path, errno);
    } else if (!recursive) {
        if (rmdir(path) != 0) {
            if (errno == ENOTEMPTY || errno == EEXIST)
                return luaL_error(L, "fs.remove %s: %s (use { recursive = true })", path,
                                  strerror(errno));
            return fs_fail(L, "remove", path, errno);
        }
    } else {
        char real[PATH_MAX];
        if (realpath(path, real) && strcmp(real, "/") == 0)
            return luaL_error(L, "fs.remove %s: refusing to remove the root directory", path);
        rm_failure.err = 0;
        if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            if (rm_failure.err)
                return luaL_error(L, "fs.remove %s: %s: %s", path, rm_failure.path,
                                  strerror(rm_failure.err));
            return fs_fail(L, "remove", path, errno);
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.mkdir(path [, { parents = true, mode = "0755" }]) -> true
 * With parents, an existing directory is fine (mkdir -p); mode applies to
 * the last component, before the umask as with mkdir(2). */
static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int opts = fs_opts(L, 2);
    int mode = fs_mode_opt(L, opts, "mkdir");
    mode_t m = mode >= 0 ? (mode_t)mode : 0777;
    if (!rb_opt_bool(L, opts, "parents", 0)) {
        if (mkdir(path, m) != 0)
            return fs_fail(L, "mkdir", path, errno);
        lua_pushboolean(L, 1);
        return 1;
    }
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return fs_fail(L, "mkdir", path, ENAMETOOLONG);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return fs_fail(L, "mkdir", buf, errno);
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return fs_fail(L, "mkdir", buf, ENOTDIR);
        *p = '/';
    }
    struct stat st;
    if (mkdir(buf, m) != 0) {
        int e = errno;
        if (e != EEXIST || stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return fs_fail(L, "mkdir", path, e);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Copy the regular file src to dst atomically, keeping src's mode. */
static int copy_file(lua_State *L, const char *verb, const char *src, const char *dst)
{
    int gi;
    fsguard *g = fsguard_new(L, &gi);
    struct stat st, dst_st;
    g->fd2 = open(src, O_RDONLY | O_CLOEXEC);
    if (g->fd2 < 0 || fstat(g->fd2, &st) != 0)
        return fs_fail(L, verb, src, errno);
    if (S_ISDIR(st.st_mode))
        return fs_fail(L, verb, src, EISDIR);
    if (!S_ISREG(st.st_mode))
        return luaL_error(L, "fs.%s %s: not a regular file", verb, src);
    if (stat(dst, &dst_st) == 0 && dst_st.st_dev == st.st_dev && dst_st.st_ino == st.st_ino)
        return luaL_error(L, "fs.%s %s: %s is the same file", verb, src, dst);
    if (open_temp(g, dst) != 0)
        return fs_fail(L, verb, dst, errno);
    char buf[65536];
    for (;;) {
        ssize_t n = read(g->fd2, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fs_fail(L, verb, src, errno);
        if (n == 0)
            break;
        if (write_all(g->fd, buf, (size_t)n) != 0)
            return fs_fail(L, verb, dst, errno);
    }
    if (commit_temp(g, dst, st.st_mode & 07777) != 0)
        return fs_fail(L, verb, dst, errno);
    fsguard_done(L, gi);
    return 0;
}

/* fs.copy(src, dst) -> true   a regular file; into dst when it is a directory */
static int l_copy(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = into_dir(L, src, luaL_checkstring(L, 2));
    copy_file(L, "copy", src, dst);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.move(src, dst) -> true   rename(2); into dst when it is a directory;
 * across file systems a regular file is copied, then removed. */
static int l_move(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = into_dir(L, src, luaL_checkstring(L, 2));
    struct stat st;
    if (lstat(src, &st) != 0)
        return fs_fail(L, "move", src, errno);
    if (rename(src, dst) != 0) {
        if (errno != EXDEV)
            return luaL_error(L, "fs.move %s -> %s: %s", src, dst, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return luaL_error(L,
                              "fs.move %s -> %s: only a regular file can move across file "
                              "systems",
                              src, dst);
        copy_file(L, "move", src, dst);
        if (unlink(src) != 0)
            return fs_fail(L, "move", src, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Every fs call names the file it acts on; in a scenario those arguments
 * are re-rooted in the scratch directory (.paths) and the call runs there. */
static const rb_field path_fields[] = {{"path", RB_STR, RB_KEY}, {NULL, 0, 0}};
static const rb_field two_paths[] = {
    {"path", RB_STR, RB_KEY}, {"dest", RB_STR, RB_KEY}, {NULL, 0, 0}};
#define ONE_PATH  .fields = path_fields, .paths = 1u
#define TWO_PATHS .fields = two_paths, .paths = 3u

/* The call's shape (.sig, .options): the path (two for copy and move), a
 * write's data, and the options each function reads -- nothing else, so a
 * misspelled option raises before the file is touched.  No `readonly`: a
 * read needs no override, and a change that claimed to be a read would run
 * during a rehearsal. */
#define READ_ROW(n, param)                                                                         \
    {                                                                                              \
        .name = #n, .fn = l_##n, .cls = RB_READ, .describe = describe_##n, ONE_PATH,               \
        .sig = param ":str"                                                                        \
    }

static const rb_fn fs_fns[] = {
    READ_ROW(read, "path"),
    READ_ROW(exists, "path"),
    READ_ROW(list, "dir"),
    READ_ROW(glob, "pattern"),
    READ_ROW(sha256, "path"),
    {.name = "stat",
     .fn = l_stat,
     .cls = RB_READ,
     .describe = describe_stat,
     ONE_PATH,
     .sig = "path:str opts?:opts",
     .options = "check"},
    {.name = "write",
     .fn = l_write,
     .cls = RB_MUTATE,
     .describe = describe_write,
     ONE_PATH,
     .flags = RB_CONTENT,
     .sig = "path:str data:str opts?:opts",
     .options = "mode"},
    {.name = "append",
     .fn = l_append,
     .cls = RB_MUTATE,
     .describe = describe_append,
     ONE_PATH,
     .flags = RB_CONTENT | RB_CONTENT_APPEND,
     .sig = "path:str data:str opts?:opts",
     .options = "mode"},
    {.name = "remove",
     .fn = l_remove,
     .cls = RB_MUTATE,
     .describe = describe_remove,
     ONE_PATH,
     .sig = "path:str opts?:opts",
     .options = "recursive check"},
    {.name = "mkdir",
     .fn = l_mkdir,
     .cls = RB_MUTATE,
     .describe = describe_mkdir,
     ONE_PATH,
     .sig = "path:str opts?:opts",
     .options = "parents mode"},
    {.name = "copy",
     .fn = l_copy,
     .cls = RB_MUTATE,
     .describe = describe_copy,
     TWO_PATHS,
     .sig = "src:str dest:str"},
    {.name = "move",
     .fn = l_move,
     .cls = RB_MUTATE,
     .describe = describe_move,
     TWO_PATHS,
     .sig = "src:str dest:str"},
    {.name = NULL},
};
#undef READ_ROW

void mod_fs_open(lua_State *L)
{
    rb_register(L, "fs", fs_fns);
}
