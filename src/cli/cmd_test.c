/*
 * `runbook test [PATH...]`: find *.scenario.yaml files, run each one in
 * its own process (`runbook test --one FILE`, scenario.c) so scenarios
 * cannot leak state into each other and run in parallel, print one line per
 * scenario and `N passed, N failed`, optionally JUnit XML for CI.
 */
#include "commands.h"
#include "modules.h"
#include "engine.h"
#include "scenario.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char TEST_HELP[] =
    "usage: runbook test [PATH...] [options]\n"
    "\n"
    "Run the scenarios (*.scenario.yaml) under PATH (default: runbooks/ and tests/):\n"
    "each runbook runs against its scenario's mocks -- no action reaches the outside\n"
    "world, sleep is virtual -- and is judged against the scenario's expectations.\n"
    "\n"
    "  --junit FILE        also write JUnit XML (for CI test reports)\n"
    "  --filter PATTERN    only scenarios whose path contains PATTERN (or matches it as a glob)\n"
    "  -j, --jobs N        scenarios run at once (default: the number of CPUs)\n"
    "  --coverage          then, per runbook: the steps no scenario ran, and the calls\n"
    "                      that may change something that no scenario exercised\n"
    "  --require-coverage  as --coverage, and fail (exit 1) when such a call or a step\n"
    "                      was never exercised: every mutation a runbook can make is tested\n"
    "\n"
    "Exit codes: 0 every scenario passed, 1 one failed (or is malformed), 2 bad usage.\n";

typedef struct result {
    char *path;
    int status; /* 0 passed, 1 failed, 2 malformed, 3 skipped */
    long long ms;
    char *failures; /* newline-separated */
    char out_path[PATH_MAX];
    pid_t pid;
} result;

static result *found;
static size_t n_found, cap_found;
static const char *filter;
static int coverage; /* 1: report, 2: and require */

static int wanted(const char *path)
{
    size_t n = strlen(path);
    const char *suffix = ".scenario.yaml";
    if (n < strlen(suffix) || strcmp(path + n - strlen(suffix), suffix) != 0)
        return 0;
    return !filter || strstr(path, filter) || fnmatch(filter, path, 0) == 0;
}

static void add(const char *path)
{
    if (n_found == cap_found) {
        cap_found = cap_found ? cap_found * 2 : 16;
        found = realloc(found, cap_found * sizeof *found);
        if (!found) {
            fprintf(stderr, "runbook: out of memory\n");
            exit(2);
        }
    }
    memset(&found[n_found], 0, sizeof *found);
    found[n_found++].path = strdup(path);
}

static int visit(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)f;
    if (flag == FTW_F && wanted(p))
        add(p);
    return 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const result *)a)->path, ((const result *)b)->path);
}

/* Start `runbook test --one PATH` with stdout into a temporary file */
static int start(result *r, const char *self, const char *tmpdir, size_t i)
{
    snprintf(r->out_path, sizeof r->out_path, "%.4000s/%zu.json", tmpdir, i);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, r->out_path, O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    char *argv[] = {(char *)"runbook", (char *)"test", (char *)"--one", r->path, NULL};
    int rc = posix_spawn(&r->pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Read the child's verdict line with a small Lua state (json.decode) */
static void collect(rb_engine *E, result *r, int wstatus)
{
    lua_State *L = E->L;
    size_t len = 0;
    char *data = rb_read_file(r->out_path, &len);
    unlink(r->out_path);
    r->status = 1;
    int decoded = 0;
    if (data && len > 0) {
        lua_getglobal(L, "json");
        lua_getfield(L, -1, "decode");
        lua_pushlstring(L, data, len);
        decoded = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1);
        if (decoded) {
            lua_getfield(L, -1, "status");
            const char *st = lua_tostring(L, -1);
            r->status = !st                            ? 1
                        : strcmp(st, "passed") == 0    ? 0
                        : strcmp(st, "malformed") == 0 ? 2
                        : strcmp(st, "skipped") == 0   ? 3
                                                       : 1;
            if (coverage) {
                int doc = lua_gettop(L) - 1;
                rb_push_internal(L, "scenario", "coverage_merge");
                lua_getfield(L, doc, "coverage");
                if (lua_istable(L, -1))
                    lua_pcall(L, 1, 0, 0);
                else
                    lua_pop(L, 2);
            }
            lua_getfield(L, -2, "duration_ms");
            r->ms = (long long)lua_tointeger(L, -1);
            lua_getfield(L, -3, "failures");
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            lua_Integer n = lua_istable(L, -2) ? (lua_Integer)lua_rawlen(L, -2) : 0;
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -2, i);
                luaL_addvalue(&b);
                luaL_addchar(&b, '\n');
            }
            luaL_pushresult(&b);
            r->failures = strdup(lua_tostring(L, -1));
            lua_pop(L, 4);
        }
        lua_settop(L, 0);
    }
    if (!decoded) {
        char buf[160];
        snprintf(buf, sizeof buf, "the scenario runner crashed (status %d)\n", wstatus);
        r->failures = strdup(buf);
    }
    free(data);
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
                fputc(' ', f);
            else
                fputc(*s, f);
        }
    }
}

static int write_junit(const char *file, int failed, double total_s)
{
    FILE *f = fopen(file, "w");
    if (!f)
        return usage_error("--junit %s: %s", file, strerror(errno));
    int skipped = 0;
    for (size_t i = 0; i < n_found; i++)
        skipped += found[i].status == 3;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<testsuites>\n<testsuite name=\"runbook scenarios\" tests=\"%zu\" failures=\"%d\" "
            "skipped=\"%d\" errors=\"0\" time=\"%.3f\">\n",
            n_found, failed, skipped, total_s);
    for (size_t i = 0; i < n_found; i++) {
        result *r = &found[i];
        fputs("  <testcase classname=\"runbook.scenario\" name=\"", f);
        xml_text(f, r->path);
        fprintf(f, "\" time=\"%.3f\"", r->ms / 1000.0);
        if (r->status == 0) {
            fputs("/>\n", f);
            continue;
        }
        fputs(">\n", f);
        if (r->status == 3) {
            const char *why = r->failures ? r->failures : "";
            char msg[512];
            snprintf(msg, sizeof msg, "%.*s", (int)strcspn(why, "\n"), why);
            fputs("    <skipped message=\"", f);
            xml_text(f, msg);
            fputs("\"/>\n", f);
        } else {
            const char *first = r->failures ? r->failures : "failed";
            char msg[512];
            snprintf(msg, sizeof msg, "%.*s", (int)strcspn(first, "\n"), first);
            fputs(r->status == 2 ? "    <failure type=\"malformed\" message=\""
                                 : "    <failure message=\"",
                  f);
            xml_text(f, msg);
            fputs("\">", f);
            xml_text(f, r->failures ? r->failures : "");
            fputs("</failure>\n", f);
        }
        fputs("  </testcase>\n", f);
    }
    fputs("</testsuite>\n</testsuites>\n", f);
    return fclose(f) == 0 ? 0 : usage_error("--junit %s: %s", file, strerror(errno));
}

int cmd_test(int argc, char **argv)
{
    static const struct option opts[] = {
        {"junit", required_argument, NULL, 'J'}, {"filter", required_argument, NULL, 'F'},
        {"jobs", required_argument, NULL, 'j'},  {"one", required_argument, NULL, 'O'},
        {"coverage", no_argument, NULL, 'C'},    {"require-coverage", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *junit = NULL;
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:", opts, NULL)) != -1) {
        switch (c) {
        case 'J':
            junit = optarg;
            break;
        case 'F':
            filter = optarg;
            break;
        case 'j':
            jobs = strtol(optarg, NULL, 10);
            if (jobs < 1)
                return usage_error("test: --jobs %s: a number >= 1", optarg);
            break;
        case 'O':
            return scenario_run_one(rb_builtin_modules, optarg);
        case 'C':
            coverage = coverage ? coverage : 1;
            break;
        case 'R':
            coverage = 2;
            break;
        case 'h':
            fputs(TEST_HELP, stdout);
            return 0;
        case ':':
            return usage_error("test: %s needs a value (see runbook test --help)",
                               argv[optind - 1]);
        default:
            return usage_error("test: unknown option '%s' (see runbook test --help)",
                               argv[optind - 1]);
        }
    }
    if (jobs < 1)
        jobs = 1;
    if (optind == argc) {
        const char *defaults[] = {"runbooks", "tests"};
        for (int i = 0; i < 2; i++)
            if (access(defaults[i], F_OK) == 0)
                nftw(defaults[i], visit, 16, FTW_PHYS);
    }
    for (int i = optind; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0)
            return usage_error("test: %s: %s", argv[i], strerror(errno));
        if (S_ISDIR(st.st_mode))
            nftw(argv[i], visit, 16, FTW_PHYS);
        else if (!filter || wanted(argv[i]))
            add(argv[i]);
    }
    if (n_found == 0) {
        printf("no scenarios (*.scenario.yaml) found%s\n", filter ? " matching the filter" : "");
        return 0;
    }
    qsort(found, n_found, sizeof *found, by_path);

    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        return usage_error("test: cannot find the runbook binary (/proc/self/exe)");
    self[sl] = '\0';
    char tmpdir[PATH_MAX];
    snprintf(tmpdir, sizeof tmpdir, "%s/runbook-test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return usage_error("test: cannot create a temporary directory: %s", strerror(errno));
    char err[512];
    rb_engine *E = engine_new(rb_builtin_modules, err, sizeof err);
    if (!E)
        return usage_error("%s", err);

    double t0 = rb_now();
    size_t next = 0, done = 0;
    long running = 0;
    int passed = 0, failed = 0, skipped = 0;
    int color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    const char *green = color ? "\033[32m" : "", *red = color ? "\033[31m" : "",
               *dim = color ? "\033[2m" : "", *off = color ? "\033[0m" : "";
    /* lines are printed in path order, as soon as every earlier one is known */
    size_t printed = 0;
    while (done < n_found) {
        while (running < jobs && next < n_found) {
            if (start(&found[next], self, tmpdir, next) != 0) {
                found[next].status = 1;
                found[next].failures = strdup("cannot start the scenario runner\n");
                found[next].pid = -1;
                done++;
            } else {
                running++;
            }
            next++;
        }
        int ws;
        pid_t pid = wait(&ws);
        if (pid < 0)
            break;
        for (size_t i = 0; i < n_found; i++)
            if (found[i].pid == pid) {
                collect(E, &found[i], ws);
                found[i].pid = -1;
                running--;
                done++;
            }
        for (; printed < n_found && found[printed].pid == -1; printed++) {
            result *r = &found[printed];
            if (r->status == 0) {
                passed++;
                printf("%s✓%s %s %s(%lld ms)%s\n", green, off, r->path, dim, r->ms, off);
            } else if (r->status == 3) {
                skipped++;
                const char *why = r->failures ? r->failures : "";
                printf("- %s (skipped: %.*s)\n", r->path, (int)strcspn(why, "\n"), why);
            } else {
                failed++;
                printf("%s✗%s %s %s(%lld ms)%s\n", red, off, r->path, dim, r->ms, off);
                for (char *p = r->failures; p && *p;) {
                    char *nl = strchr(p, '\n');
                    printf("    %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
                    p = nl ? nl + 1 : p + strlen(p);
                }
            }
        }
    }
    double total = rb_now() - t0;
    printf("%d passed, %d failed", passed, failed);
    if (skipped)
        printf(", %d skipped", skipped);
    printf(" (%.2f s)\n", total);
    int uncovered = 0;
    if (coverage) {
        lua_State *L = E->L;
        rb_push_internal(L, "scenario", "coverage_report");
        if (lua_pcall(L, 0, 2, 0) == LUA_OK) {
            printf("%s\n", lua_tostring(L, -2));
            uncovered = (int)lua_tointeger(L, -1);
        }
        lua_settop(L, 0);
        if (coverage == 2 && uncovered)
            printf("coverage required: %d runbook(s) with calls or steps no scenario exercised\n",
                   uncovered);
    }
    rmdir(tmpdir);
    int rc = 0;
    if (junit && write_junit(junit, failed, total) != 0)
        rc = 2;
    for (size_t i = 0; i < n_found; i++) {
        free(found[i].path);
        free(found[i].failures);
    }
    free(found);
    engine_free(E);
    return rc ? rc : failed || (coverage == 2 && uncovered) ? 1 : 0;
}
