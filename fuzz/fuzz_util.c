/* fuzz.h's helpers, linked into every harness. */
#include "engine.h"
#include "fuzz.h"
#include "modules.h"

#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: oracle failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void fuzz_done(lua_State *L, int top)
{
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0);
}

static char dir[PATH_MAX];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(void)
{
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void)
{
    if (dir[0])
        return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/runbook-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("fuzz: mkdtemp");
        exit(1);
    }
    atexit(remove_dir);
    return dir;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t size)
{
    static char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%.200s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    return path;
}

static rb_engine *the_engine;

static void free_engine(void)
{
    engine_free(the_engine);
}

rb_engine *fuzz_engine(void)
{
    if (!the_engine) {
        char err[1024];
        the_engine = engine_new(rb_builtin_modules, err, sizeof err);
        if (!the_engine) {
            fprintf(stderr, "fuzz: engine_new: %s\n", err);
            exit(1);
        }
        /* freed at exit (LeakSanitizer); a harness's own atexit runs first */
        atexit(free_engine);
    }
    return the_engine;
}
