/*
 * `runbook test [PATH...]`: find *.scenario.yaml files, run each against its
 * mocks (scenario.c) in worker processes forked from here, --jobs of them,
 * print one line per scenario in path order and `N passed, N failed`,
 * optionally JUnit XML for CI.  `--one FILE` runs one scenario in this
 * process and prints its verdict line (what CI runs under valgrind).
 */
#include "audit.h"
#include "commands.h"
#include "engine.h"
#include "jsonw.h"
#include "judge.h"
#include "landlock.h"
#include "loop.h"
#include "modules.h"
#include "scenario.h"
#include "util.h"
#include "yamlconv.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char TEST_HELP[] =
    "usage: runbook test [PATH...] [options]\n"
    "\n"
    "Run the scenarios (*.scenario.yaml) under PATH (default: runbooks/ and tests/):\n"
    "each runbook runs against its scenario's mocks -- no action reaches the outside\n"
    "world, sleep is virtual -- and is judged against the scenario's expectations.\n"
    "\n"
    "  --junit FILE        also write JUnit XML (for CI test reports): a <testsuite> per\n"
    "                      runbook (classname = the runbook's name, name = the scenario's\n"
    "                      name: or file name); <failure> when expectations failed, <error>\n"
    "                      when the scenario is malformed or could not finish; what each\n"
    "                      run printed (secrets redacted) in its <system-out>\n"
    "  --junit-format testsuites|ant\n"
    "                      testsuites (default): a <testsuites> root, as Jenkins, GitLab\n"
    "                      and junitparser read it; ant: a single <testsuite> root, as\n"
    "                      Ant's junitreport merges it (the runs' output in its <system-out>)\n"
    "  -v, --verbose       print what each scenario's run printed under its result line\n"
    "  --audit PATH        record each scenario's run in the audit log PATH (a file or a\n"
    "                      postgres:// URL): mode scenario, with its mocked actions; off\n"
    "                      by default, so CI runs do not fill an operator's log\n"
    "  --filter PATTERN    only scenarios whose path contains PATTERN (or matches it as a glob)\n"
    "  -j, --jobs N        scenarios run at once (default: the number of CPUs)\n"
    "  --scenario-timeout DURATION\n"
    "                      stop a scenario whose runbook runs longer than DURATION (90s,\n"
    "                      5m; default 30s; a scenario's own `timeout:` wins): it is\n"
    "                      reported as an error, timed out, and the others go on\n"
    "  --max-memory SIZE   limit each scenario's runbook Lua to SIZE (512M, 2G; default\n"
    "                      1G): past it the scenario fails, naming the limit\n"
    "  --coverage          then, per runbook: the steps no scenario ran, and the calls\n"
    "                      that may change something that no scenario exercised\n"
    "  --require-coverage  as --coverage, and fail (exit 1) when such a call or a step\n"
    "                      was never exercised: every mutation a runbook can make is tested\n"
    "  --coverage-json FILE\n"
    "                      also write the coverage as JSON: per runbook, its steps, the\n"
    "                      calls that may change something, the actions taken (line, class)\n"
    "\n"
    "A scenario passes, fails (its expectations did not hold), is skipped (skip:), or is\n"
    "an error: malformed (the scenario itself is wrong) or it could not finish (timed\n"
    "out, crashed).  The summary counts each, as --junit does.\n"
    "\n"
    "Exit codes: 0 every scenario passed, 1 one failed (or is malformed, or an error),\n"
    "2 bad usage.\n";

/* runbook test --scenario-timeout: a scenario is quick (sleep is virtual);
 * the limit is there so that a runbook that loops cannot hang CI */
#define DEFAULT_SCENARIO_TIMEOUT 30.0

typedef struct result {
    char *path;
    int status; /* 0 passed, 1 failed, 2 malformed, 3 skipped, 4 error (timed out, crashed) */
    long long ms;
    char *failures; /* newline-separated */
    char *output;   /* what the run printed, redacted (kept for -v and --junit) */
    size_t output_len;
    int done;
} result;

static result *found;
static size_t n_found, cap_found;
static const char *filter;
static int coverage;              /* 1: report, 2: and require */
static const char *coverage_json; /* --coverage-json FILE */
static int verbose;               /* -v: each scenario's run output under its line */
static int keep_output;           /* -v or --junit */
static const char *audit_to;      /* --audit PATH: the scenario runs are recorded there */
static audit *audit_target;       /* the parent's handle on it */
static int audit_failed;          /* a run could not be recorded: exit 2 */

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

/* ---- workers ---------------------------------------------------------------
 * A process per scenario costs its start-up, page faults and the engine's Lua
 * compiled again: most of a scenario's time.  So --jobs workers, forked from
 * here (no exec, nothing loaded again), run scenario after scenario, each in
 * a fresh engine (its own Lua state: no global or module leaks into the
 * next); after each one the worker puts back its directory and umask and
 * closes what the scenario left open.  A worker that dies (a crash, a kill)
 * fails the scenario it was running, with its wait status, as a process of
 * its own would, and another worker takes its place.
 *
 * The parent sends a scenario's index on its socket to the worker; the
 * worker writes the verdict line to tmpdir/INDEX.json (its stdout, as
 * `--one` prints it) and answers {index, exit code}. */

typedef struct worker {
    pid_t pid;    /* 0: none */
    int sock;     /* the parent's end */
    long current; /* the scenario it runs, -1: idle */
} worker;

static worker *workers;
static lua_State *judge; /* the parent's: verdicts read, coverage merged (judge.h) */
static long n_workers;
static char tmpdir[PATH_MAX];

typedef struct done_msg {
    uint32_t index;
    int32_t code;
} done_msg;

/* A worker's verdict file, and its scratch directory, in tmpdir */
static void out_path(char *out, size_t n, pid_t pid)
{
    snprintf(out, n, "%.4000s/verdict-%d.json", tmpdir, (int)pid);
}

static void scratch_path(char *out, size_t n, pid_t pid)
{
    snprintf(out, n, "%.4000s/scratch-%d", tmpdir, (int)pid);
}

/* --audit: the worker journals each scenario's run into a log of its own,
 * one per scenario, in a directory the kernel lets it write besides its
 * scratch directory (which is the runbook's fs root: the runbook cannot
 * reach this one).  The parent, the only writer of the operator's log,
 * copies each run in when the scenario is done, after checking the worker's
 * chain -- so the workers never contend for the operator's log, and what
 * reaches it was hash-chained as it was written. */
static void audit_dir(char *out, size_t n, pid_t pid)
{
    snprintf(out, n, "%.4000s/audit-%d", tmpdir, (int)pid);
}

static void audit_log(char *out, size_t n, pid_t pid, size_t i)
{
    snprintf(out, n, "%.4000s/audit-%d/%zu.db", tmpdir, (int)pid, i);
}

/* All n bytes; -1 at the end of the stream or on an error.  Sending never
 * raises SIGPIPE: a worker that is gone is seen as one. */
static int full_io(int send_it, int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = send_it ? send(fd, p, n, MSG_NOSIGNAL) : read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

/* One scenario in the worker, its verdict line on fd 1 into the worker's
 * file (opened before the worker was confined: emptied, not re-opened). */
static int worker_one(size_t i, int verdict, const char *scratch)
{
    if (ftruncate(verdict, 0) != 0 || lseek(verdict, 0, SEEK_SET) != 0 ||
        dup2(verdict, STDOUT_FILENO) < 0)
        return 2;
    loop_clear_interrupts(); /* a Ctrl-C during the previous one is not this one's */
    char err[512];
    rb_engine *E = scenario_engine(rb_builtin_modules, err, sizeof err);
    if (!E) {
        fprintf(stderr, "runbook: %s\n", err);
        return 2;
    }
    if (audit_to) {
        char log[PATH_MAX];
        audit_log(log, sizeof log, getpid(), i);
        if (!(E->audit = audit_open(log, err, sizeof err))) {
            fprintf(stderr, "runbook: test: %s: the run's audit log: %s\n", found[i].path, err);
            engine_free(E);
            return 2;
        }
    }
    int rc = scenario_run(E, found[i].path, coverage || coverage_json, scratch);
    audit *log = E->audit;
    engine_free(E);
    if (log)
        audit_close(log);
    fflush(stdout);
    return rc;
}

/* The descriptors open before any scenario (stdio, the worker's socket,
 * the loop's signal pipe...), ascending; -1 ends the list. */
static int open_fds(int *keep, int max)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int self = dirfd(d);
    for (struct dirent *e; (e = readdir(d)) && n < max - 1;)
        if (e->d_name[0] != '.' && atoi(e->d_name) != self)
            keep[n++] = atoi(e->d_name);
    closedir(d);
    for (int a = 1; a < n; a++) /* a handful: insertion sort */
        for (int b = a; b > 0 && keep[b - 1] > keep[b]; b--) {
            int t = keep[b];
            keep[b] = keep[b - 1], keep[b - 1] = t;
        }
    keep[n] = -1;
    return n;
}

/* Close every descriptor not in keep: what a scenario left open. */
static void close_others(const int *keep)
{
    unsigned from = 0;
    for (; *keep >= 0; keep++) {
        if ((unsigned)*keep > from)
            close_range(from, (unsigned)*keep - 1, 0);
        from = (unsigned)*keep + 1;
    }
    close_range(from, ~0U, 0);
}

/* A worker: confined by the kernel, for good, to its scratch directory
 * (scenario_confine) before its first scenario -- each scenario there in
 * turn, emptied after each -- and its verdict file, open before. */
static void worker_main(int sock)
{
    int home = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mode_t mask = umask(022);
    umask(mask);
    char path[PATH_MAX], scratch[PATH_MAX], logs[PATH_MAX];
    out_path(path, sizeof path, getpid());
    scratch_path(scratch, sizeof scratch, getpid());
    audit_dir(logs, sizeof logs, getpid());
    int verdict = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (verdict < 0 || mkdir(scratch, 0700) != 0) {
        fprintf(stderr, "runbook: test: %s: %s\n", verdict < 0 ? path : scratch, strerror(errno));
        _exit(2);
    }
    if (audit_to && mkdir(logs, 0700) != 0) {
        fprintf(stderr, "runbook: test: %s: %s\n", logs, strerror(errno));
        _exit(2);
    }
    if (scenario_confine_also(scratch, audit_to ? logs : NULL) != 0 && rb_landlock_abi() > 0) {
        fprintf(stderr, "runbook: test: cannot confine the scenarios: %s\n", rb_landlock_why_not());
        _exit(2);
    }
    loop_install_signals(); /* its pipe is the process's, kept from here on */
    int keep[64];
    int have_fds = open_fds(keep, 64) >= 0;
    uint32_t i;
    while (full_io(0, sock, &i, sizeof i) == 0 && i < n_found) {
        done_msg m = {i, worker_one(i, verdict, scratch)};
        if (home >= 0 && fchdir(home) != 0)
            _exit(2);
        umask(mask);
        if (have_fds)
            close_others(keep);
        if (full_io(1, sock, &m, sizeof m) != 0)
            break;
    }
    _exit(0);
}

static int worker_start(worker *w)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    fflush(stdout); /* or the worker would print what is buffered again */
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* the other workers' sockets: holding them would keep those
         * workers from seeing the end of their requests */
        for (long k = 0; k < n_workers; k++)
            if (workers[k].pid > 0)
                close(workers[k].sock);
        close(sv[0]);
        worker_main(sv[1]);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -1;
    }
    w->pid = pid, w->sock = sv[0], w->current = -1;
    return 0;
}

static void worker_stop(worker *w, int *wstatus)
{
    close(w->sock);
    while (waitpid(w->pid, wstatus, 0) < 0 && errno == EINTR)
        ;
    w->pid = 0;
}

/* Copy the runs of a worker's log into the operator's (--audit), each as a
 * new run there (its id allocated there, in order); only an intact chain. */
static int copy_runs(const char *from_path, char *err, size_t n)
{
    audit *from = audit_open_existing(from_path, err, n);
    if (!from)
        return -1;
    char msg[1024];
    long long bad = 0;
    char bad_run[40] = "";
    if (audit_verify(from, msg, sizeof msg, &bad, bad_run) != 0) {
        snprintf(err, n, "the worker's log does not verify: %s", msg);
        audit_close(from);
        return -1;
    }
    audit_cursor *c = audit_records(from, NULL, NULL, err, n);
    if (!c) {
        audit_close(from);
        return -1;
    }
    char from_run[40] = "", new_id[40] = "";
    audit_record r;
    int rc;
    while ((rc = audit_next(c, &r)) == 1) {
        if (r.seq == 0)
            continue;
        if (strcmp(r.run_id, from_run) != 0) {
            snprintf(from_run, sizeof from_run, "%s", r.run_id);
            new_id[0] = '\0';
        }
        /* an action a mock answered says so itself, not only through its
         * run's mode: whoever queries actions alone must not take it for a
         * change made in the world */
        char *mocked = NULL;
        const char *data = r.data;
        if (strcmp(r.kind, "action") == 0 && r.data[0] == '{') {
            size_t len = strlen(r.data);
            if ((mocked = malloc(len + 16)) != NULL) {
                snprintf(mocked, len + 16, "{\"mocked\":true%s%s", r.data[1] == '}' ? "" : ",",
                         r.data + 1);
                data = mocked;
            }
        }
        int ok = new_id[0] ? audit_append(audit_target, new_id, r.kind, r.ts, data, NULL)
                           : audit_append_first(audit_target, r.kind, r.ts, data, new_id, NULL);
        free(mocked);
        if (ok != 0) {
            snprintf(err, n, "%s", audit_error(audit_target));
            rc = -1;
            break;
        }
    }
    if (rc < 0 && !err[0])
        snprintf(err, n, "%s", audit_error(from));
    audit_cursor_free(c);
    audit_close(from);
    return rc < 0 ? -1 : 0;
}

/* --audit: scenario i's run, from worker pid's log of it, into the
 * operator's; a run a dead worker left unfinished is copied as it stands */
static void record_run(size_t i, pid_t pid)
{
    char log[PATH_MAX], err[2048] = "";
    audit_log(log, sizeof log, pid, i);
    if (!audit_target || access(log, F_OK) != 0)
        return;
    if (copy_runs(log, err, sizeof err) != 0) {
        fprintf(stderr, "runbook: test: --audit %s: %s: %s\n", audit_to, found[i].path, err);
        audit_failed = 1;
    }
    static const char *const sidecar[] = {"", "-journal", "-wal", "-shm"};
    for (size_t k = 0; k < sizeof sidecar / sizeof *sidecar; k++) {
        char p[PATH_MAX + 16];
        snprintf(p, sizeof p, "%s%s", log, sidecar[k]);
        unlink(p);
    }
}

/* Read a worker's verdict line with the parent's Lua state (json.decode);
 * wstatus: how a process running it alone would have ended. */
static void collect(size_t i, pid_t pid, int wstatus)
{
    lua_State *L = judge;
    result *r = &found[i];
    char out[PATH_MAX];
    out_path(out, sizeof out, pid);
    size_t len = 0;
    char *data = rb_read_file(out, &len);
    r->status = 1;
    int decoded = 0;
    if (data && len > 0) {
        lua_getglobal(L, "json");
        lua_getfield(L, -1, "decode");
        lua_pushlstring(L, data, len);
        decoded = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1);
        if (decoded && keep_output) {
            size_t n = 0;
            const char *text =
                lua_getfield(L, -1, "output") == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "";
            r->output = malloc(n + 1);
            if (r->output) {
                memcpy(r->output, text, n + 1);
                r->output_len = n;
            }
            lua_pop(L, 1);
        }
        if (decoded) {
            lua_getfield(L, -1, "status");
            const char *st = lua_tostring(L, -1);
            r->status = !st                            ? 1
                        : strcmp(st, "passed") == 0    ? 0
                        : strcmp(st, "malformed") == 0 ? 2
                        : strcmp(st, "skipped") == 0   ? 3
                        : strcmp(st, "error") == 0     ? 4
                                                       : 1;
            if (coverage || coverage_json) {
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
            for (lua_Integer k = 1; k <= n; k++) {
                lua_rawgeti(L, -2, k);
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
        if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGALRM) /* scenario.c's backstop */
            snprintf(buf, sizeof buf,
                     "timed out, stuck where the time limit could not stop it (in C code): its "
                     "process was ended\n");
        else
            snprintf(buf, sizeof buf, "the scenario runner crashed (status %d)\n", wstatus);
        r->failures = strdup(buf);
        r->status = 4;
    }
    free(data);
}

/* ---- JUnit -----------------------------------------------------------------
 * What CI tools render (Jenkins, GitLab, junitparser): a <testsuites> root
 * holding one <testsuite> per runbook, each scenario a <testcase> whose
 * classname is the runbook's name, so that CI views group by runbook; a
 * scenario whose expectations failed has a <failure>, one that is malformed
 * or could not finish (timed out, crashed) an <error>, and what its run
 * printed is its <system-out>.  Valid against the Jenkins JUnit schema
 * (tests/fixtures/junit.xsd).  --junit-format ant writes what Ant's
 * junitreport merges instead: one <testsuite> root, valid against Ant's
 * schema (tests/fixtures/junit-ant.xsd), which has no output per test case:
 * the runs' output is the suite's <system-out>, each under its scenario. */

/* Text for XML 1.0: markup escaped, the characters XML forbids (C0
 * controls, U+FFFE, U+FFFF) as spaces, and a byte that is not valid UTF-8
 * as U+FFFD, so strict parsers accept the file whatever a runbook printed. */
static void xml_textn(FILE *f, const char *s, size_t len)
{
    const char *end = s + len;
    for (; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x80) {
            size_t n = jw_utf8_len(s, (size_t)(end - s));
            if (n == 0) {
                fputs("\xEF\xBF\xBD", f);
            } else if (n == 3 && c == 0xEF && (unsigned char)s[1] == 0xBF &&
                       (unsigned char)s[2] >= 0xBE) {
                fputc(' ', f);
                s += 2;
            } else {
                fwrite(s, 1, n, f);
                s += n - 1;
            }
            continue;
        }
        switch (c) {
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
            fputc(c < 0x20 && c != '\n' && c != '\t' ? ' ' : c, f);
        }
    }
}

static void xml_text(FILE *f, const char *s)
{
    xml_textn(f, s, strlen(s));
}

/* A scenario as a test case: its name, and the runbook it tests */
typedef struct junit_case {
    char *name;    /* the scenario's `name:`, else its file name without .scenario.yaml */
    int same_name; /* another case of its suite has that name: the path tells them apart */
    size_t suite;
} junit_case;

typedef struct junit_suite {
    char *key;      /* the runbook file (real path), or what the scenario names */
    char *name;     /* the runbook's name as its run announced it, else as its file
                       declares it (none of its scenarios ran it: skipped, malformed...) */
    char *fallback; /* neither: the runbook as the scenario names it, else the
                       scenario's directory */
    char *file;     /* the runbook file as found, NULL if none */
    int tests, failures, errors, skipped;
    long long ms;
} junit_suite;

/* The scenario file's `name:` and `runbook:` (strings, else nil), read
 * again here: the worker's copy is gone.  Protected (the YAML decoder may
 * raise when out of memory). */
static int scenario_keys(lua_State *L)
{
    const char *path = lua_tostring(L, 1);
    size_t len = 0;
    char *text = rb_read_file(path, &len);
    lua_pushlstring(L, text ? text : "", text ? len : 0);
    free(text);
    char err[256];
    size_t n;
    const char *buf = lua_tolstring(L, -1, &n);
    if (yamlconv_parse(L, buf, n, path, err, sizeof err) != 0 || !lua_istable(L, -1)) {
        lua_pushnil(L);
        lua_pushnil(L);
        return 2;
    }
    int doc = lua_gettop(L);
    const char *keys[] = {"name", "runbook"};
    for (int k = 0; k < 2; k++)
        if (lua_getfield(L, doc, keys[k]) != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
            lua_pop(L, 1);
            lua_pushnil(L);
        }
    return 2;
}

/* The runbook's name as its run announced it: the journal's first line,
 * "▶ NAME[ — TITLE]"; NULL when the run never started. */
static char *announced_name(const result *r)
{
    static const char mark[] = "\xE2\x96\xB6 ", title[] = " \xE2\x80\x94 ";
    for (const char *p = r->output; p && *p;) {
        size_t n = strcspn(p, "\n");
        if (n > strlen(mark) && strncmp(p, mark, strlen(mark)) == 0) {
            p += strlen(mark), n -= strlen(mark);
            for (size_t k = 0; k + strlen(title) <= n; k++)
                if (strncmp(p + k, title, strlen(title)) == 0) {
                    n = k;
                    break;
                }
            return n ? strndup(p, n) : NULL;
        }
        p = p[n] ? p + n + 1 : p + n;
    }
    return NULL;
}

/* The name a runbook file declares, read, not run -- `runbook { name =
 * "..."` -- for a runbook none of whose scenarios ran it (skipped,
 * malformed, stopped while loading); NULL if not found so. */
static char *declared_name(const char *file)
{
    size_t len = 0;
    char *text = rb_read_file(file, &len);
    char *name = NULL;
    for (char *p = text; p && !name && (p = strstr(p, "runbook"));) {
        int word = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '.');
        p += strlen("runbook");
        p += strspn(p, " \t\r\n(");
        if (!word || *p != '{')
            continue;
        for (char *q = p; (q = strstr(q, "name")) && q < p + 4096; q += 4) {
            if (isalnum((unsigned char)q[-1]) || q[-1] == '_')
                continue;
            char *v = q + 4 + strspn(q + 4, " \t");
            if (*v != '=')
                continue;
            v += 1 + strspn(v + 1, " \t");
            char quote = *v;
            char *close = quote == '"' || quote == '\'' ? strchr(v + 1, quote) : NULL;
            if (close && close > v + 1 && !memchr(v + 1, '\n', (size_t)(close - v - 1)))
                name = strndup(v + 1, (size_t)(close - v - 1));
            break;
        }
    }
    free(text);
    return name;
}

/* A file as the operator names it: relative to here when it is below,
 * else its real path */
static const char *as_named(const char *real)
{
    static char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return real;
    size_t n = strlen(cwd);
    return strncmp(real, cwd, n) == 0 && real[n] == '/' ? real + n + 1 : real;
}

/* Which suite (runbook) scenario i tests, found or added; its case named */
static void junit_place(lua_State *L, size_t i, junit_case *c, junit_suite *s, size_t *n_suites)
{
    result *r = &found[i];
    int top = lua_gettop(L);
    lua_pushcfunction(L, scenario_keys);
    lua_pushstring(L, r->path);
    int read = lua_pcall(L, 1, 2, 0) == LUA_OK;
    const char *named = read ? lua_tostring(L, -2) : NULL;
    const char *runbook = read ? lua_tostring(L, -1) : NULL;

    char *base = strdup(r->path);
    const char *file = base ? basename(base) : r->path;
    size_t flen = strlen(file), slen = strlen(".scenario.yaml");
    c->name = named
                  ? strdup(named)
                  : strndup(file, flen > slen ? flen - slen : flen); /* wanted() kept only those */
    free(base);

    /* its suite's key: the runbook file; else ?what it names, else ?its directory */
    char rbpath[PATH_MAX], real[PATH_MAX], key[PATH_MAX + 2];
    char *dir = strdup(r->path);
    const char *fallback = runbook ? runbook : dir ? dirname(dir) : ".";
    int known = runbook && scenario_find_runbook(r->path, runbook, rbpath, sizeof rbpath) == 0;
    if (known)
        snprintf(key, sizeof key, "%s", realpath(rbpath, real) ? real : rbpath);
    else
        snprintf(key, sizeof key, "?%s", fallback);
    size_t k = 0;
    while (k < *n_suites && strcmp(s[k].key, key) != 0)
        k++;
    if (k == *n_suites) {
        s[k].key = strdup(key);
        s[k].fallback = strdup(fallback);
        s[k].file = known ? strdup(as_named(key)) : NULL;
        (*n_suites)++;
    }
    free(dir);
    lua_settop(L, top);
    if (!s[k].name)
        s[k].name = announced_name(r);
    c->suite = k;
    s[k].tests++;
    s[k].failures += r->status == 1;
    s[k].errors += r->status == 2 || r->status == 4;
    s[k].skipped += r->status == 3;
    s[k].ms += r->ms;
}

static const char *suite_name(junit_suite *s)
{
    if (!s->name && s->file)
        s->name = declared_name(s->file);
    return s->name ? s->name : s->fallback ? s->fallback : "?";
}

/* The first line of text, at most 512 bytes: a message attribute */
static void first_line(FILE *f, const char *text)
{
    size_t n = strcspn(text, "\n");
    xml_textn(f, text, n < 512 ? n : 512);
}

static void case_name(FILE *f, const result *r, const junit_case *c)
{
    xml_text(f, c->name ? c->name : r->path);
    if (c->same_name) {
        fputs(" (", f);
        xml_text(f, r->path);
        fputc(')', f);
    }
}

/* A <testcase>; its output inside it, unless ant (then the suite holds it) */
static void write_case(FILE *f, const result *r, const junit_case *c, const char *classname,
                       int ant)
{
    fputs("  <testcase classname=\"", f);
    xml_text(f, classname);
    fputs("\" name=\"", f);
    case_name(f, r, c);
    fprintf(f, "\" time=\"%.3f\"", r->ms / 1000.0);
    int output = !ant && r->output_len > 0;
    if (r->status == 0 && !output) {
        fputs("/>\n", f);
        return;
    }
    fputs(">\n", f);
    const char *why = r->failures ? r->failures : "";
    if (r->status == 3) {
        fputs("    <skipped message=\"", f);
        first_line(f, why);
        fputs("\"/>\n", f);
    } else if (r->status != 0) {
        /* message first: readers (and tests) look for <error message="... */
        const char *tag = r->status == 1 ? "failure" : "error";
        const char *type = r->status == 1                      ? "expectations"
                           : r->status == 2                    ? "malformed"
                           : strncmp(why, "timed out", 9) == 0 ? "timeout"
                                                               : "error";
        fprintf(f, "    <%s message=\"", tag);
        first_line(f, *why ? why : "failed");
        fprintf(f, "\" type=\"%s\">", type);
        xml_text(f, why);
        fputs("scenario: ", f);
        xml_text(f, r->path);
        fprintf(f, "\n</%s>\n", tag);
    }
    if (output) {
        fputs("    <system-out>", f);
        xml_textn(f, r->output, r->output_len);
        fputs("</system-out>\n", f);
    }
    fputs("  </testcase>\n", f);
}

/* The attributes every <testsuite> has: counts, time, when and where */
static void suite_attrs(FILE *f, const char *name, const junit_suite *s, double time_s,
                        const char *stamp, const char *host)
{
    fputs("name=\"", f);
    xml_text(f, name);
    fprintf(f, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" time=\"%.3f\" ",
            s->tests, s->failures, s->errors, s->skipped, time_s);
    fprintf(f, "timestamp=\"%s\" hostname=\"", stamp);
    xml_text(f, host);
    fputc('"', f);
}

/* --junit-format ant: one <testsuite> root, in the order Ant's schema
 * wants (properties, test cases, system-out, system-err) */
static void write_ant(FILE *f, const junit_case *cases, junit_suite *suites, const junit_suite *all,
                      double total_s, const char *stamp, const char *host)
{
    fputs("<testsuite ", f);
    suite_attrs(f, "runbook scenarios", all, total_s, stamp, host);
    fputs(">\n  <properties/>\n", f);
    for (size_t i = 0; i < n_found; i++)
        write_case(f, &found[i], &cases[i], suite_name(&suites[cases[i].suite]), 1);
    fputs("  <system-out>", f);
    for (size_t i = 0; i < n_found; i++) {
        if (found[i].output_len == 0)
            continue;
        fputs("=== ", f);
        xml_text(f, suite_name(&suites[cases[i].suite]));
        fputs(": ", f);
        case_name(f, &found[i], &cases[i]);
        fputs(" (", f);
        xml_text(f, found[i].path);
        fputs(") ===\n", f);
        xml_textn(f, found[i].output, found[i].output_len);
        if (found[i].output[found[i].output_len - 1] != '\n')
            fputc('\n', f);
    }
    fputs("</system-out>\n  <system-err></system-err>\n</testsuite>\n", f);
}

static int write_junit(lua_State *L, const char *file, int ant, double started, double total_s)
{
    junit_case *cases = calloc(n_found, sizeof *cases);
    junit_suite *suites = calloc(n_found, sizeof *suites);
    if (!cases || !suites) {
        free(cases);
        free(suites);
        return usage_error("--junit %s: out of memory", file);
    }
    size_t n_suites = 0;
    junit_suite all = {0};
    for (size_t i = 0; i < n_found; i++) {
        junit_place(L, i, &cases[i], suites, &n_suites);
        const result *r = &found[i];
        all.tests++;
        all.failures += r->status == 1;
        all.errors += r->status == 2 || r->status == 4;
        all.skipped += r->status == 3;
    }
    for (size_t i = 0; i < n_found; i++)
        for (size_t j = i + 1; j < n_found; j++)
            if (cases[i].suite == cases[j].suite && cases[i].name && cases[j].name &&
                strcmp(cases[i].name, cases[j].name) == 0)
                cases[i].same_name = cases[j].same_name = 1;

    char stamp[32], host[256];
    time_t t = (time_t)started;
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm)); /* Ant: no zone */
    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';

    FILE *f = fopen(file, "w");
    int rc = f ? 0 : usage_error("--junit %s: %s", file, strerror(errno));
    if (f) {
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
        if (ant) {
            write_ant(f, cases, suites, &all, total_s, stamp, host);
        } else {
            /* Jenkins' schema has no skipped count on the root */
            fprintf(f,
                    "<testsuites name=\"runbook scenarios\" tests=\"%d\" failures=\"%d\" "
                    "errors=\"%d\" time=\"%.3f\">\n",
                    all.tests, all.failures, all.errors, total_s);
            for (size_t k = 0; k < n_suites; k++) {
                fputs("<testsuite ", f);
                /* a suite's time: its scenarios', which ran side by side */
                suite_attrs(f, suite_name(&suites[k]), &suites[k], suites[k].ms / 1000.0, stamp,
                            host);
                if (suites[k].file) {
                    fputs(" file=\"", f);
                    xml_text(f, suites[k].file);
                    fputc('"', f);
                }
                fputs(">\n", f);
                for (size_t i = 0; i < n_found; i++)
                    if (cases[i].suite == k)
                        write_case(f, &found[i], &cases[i], suite_name(&suites[k]), 0);
                fputs("</testsuite>\n", f);
            }
            fputs("</testsuites>\n", f);
        }
        if (fclose(f) != 0)
            rc = usage_error("--junit %s: %s", file, strerror(errno));
    }
    for (size_t i = 0; i < n_found; i++)
        free(cases[i].name);
    for (size_t k = 0; k < n_suites; k++) {
        free(suites[k].key);
        free(suites[k].name);
        free(suites[k].fallback);
        free(suites[k].file);
    }
    free(cases);
    free(suites);
    return rc;
}

static int n_passed, n_failed, n_skipped, n_errors;
static size_t n_printed;

/* -v: what the run printed, under the scenario's lines, marked off from
 * them (failure lines are indented by four spaces) */
static void print_output(const result *r, const char *dim, const char *off)
{
    for (const char *p = r->output, *end = p + r->output_len; p && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        printf("  %s│%s %.*s\n", dim, off, (int)n, p);
        p += n + 1;
    }
}

/* Print the lines of the scenarios done, in path order, as soon as every
 * earlier one is known.  A malformed scenario counts as an error, as
 * --junit reports it: the scenario, not the runbook, is wrong. */
static void print_ready(int color)
{
    const char *green = color ? "\033[32m" : "", *red = color ? "\033[31m" : "",
               *dim = color ? "\033[2m" : "", *off = color ? "\033[0m" : "";
    for (; n_printed < n_found && found[n_printed].done; n_printed++) {
        result *r = &found[n_printed];
        if (r->status == 0) {
            n_passed++;
            printf("%s✓%s %s %s(%lld ms)%s\n", green, off, r->path, dim, r->ms, off);
        } else if (r->status == 3) {
            n_skipped++;
            const char *why = r->failures ? r->failures : "";
            printf("- %s (skipped: %.*s)\n", r->path, (int)strcspn(why, "\n"), why);
        } else {
            *(r->status == 4 || r->status == 2 ? &n_errors : &n_failed) += 1;
            printf("%s✗%s %s %s(%lld ms)%s%s\n", red, off, r->path, dim, r->ms, off,
                   r->status == 4   ? " error"
                   : r->status == 2 ? " malformed"
                                    : "");
            for (char *p = r->failures; p && *p;) {
                char *nl = strchr(p, '\n');
                printf("    %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
                p = nl ? nl + 1 : p + strlen(p);
            }
        }
        if (verbose)
            print_output(r, dim, off);
    }
}

static void not_started(result *r)
{
    r->status = 1;
    r->failures = strdup("cannot start the scenario runner\n");
    r->done = 1;
}

/* Give worker w scenario *next, if any is left; else let it go. */
static void dispatch(worker *w, size_t *next, int *wstatus)
{
    if (*next == n_found) {
        worker_stop(w, wstatus);
        return;
    }
    uint32_t i = (uint32_t)*next;
    if (full_io(1, w->sock, &i, sizeof i) == 0) { /* else it is gone: its socket closes */
        w->current = (long)i;
        (*next)++;
    }
}

static void run_workers(rb_engine *E, long jobs, int color)
{
    n_workers = jobs < (long)n_found ? jobs : (long)n_found;
    workers = calloc((size_t)n_workers, sizeof *workers);
    struct pollfd *pfd = calloc((size_t)n_workers, sizeof *pfd);
    if (!workers || !pfd) {
        fprintf(stderr, "runbook: out of memory\n");
        exit(2);
    }
    size_t next = 0, done = 0;
    int ws;
    for (long k = 0; k < n_workers; k++)
        if (worker_start(&workers[k]) == 0)
            dispatch(&workers[k], &next, &ws);
    while (done < n_found) {
        int nfds = 0;
        for (long k = 0; k < n_workers; k++)
            if (workers[k].pid > 0) {
                pfd[nfds].fd = workers[k].sock;
                pfd[nfds].events = POLLIN;
                nfds++;
            }
        if (nfds == 0) { /* no worker could be started */
            for (; next < n_found; next++, done++)
                not_started(&found[next]);
            break;
        }
        if (poll(pfd, (nfds_t)nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "runbook: test: poll: %s\n", strerror(errno));
            exit(2);
        }
        for (int j = 0; j < nfds; j++) {
            if (!pfd[j].revents)
                continue;
            worker *w = NULL;
            for (long k = 0; k < n_workers && !w; k++)
                if (workers[k].pid > 0 && workers[k].sock == pfd[j].fd)
                    w = &workers[k];
            if (!w)
                continue;
            done_msg m;
            if (full_io(0, w->sock, &m, sizeof m) == 0 && (long)m.index == w->current) {
                /* as a process of its own would have exited */
                collect(m.index, w->pid, (m.code & 0xff) << 8);
                record_run(m.index, w->pid);
                found[m.index].done = 1;
                done++;
                w->current = -1;
                dispatch(w, &next, &ws);
                continue;
            }
            /* it died: its scenario fails with how it died, and another
             * worker takes over what is left (not for one that died
             * idle: that one would, again) */
            long cur = w->current;
            pid_t dead = w->pid;
            worker_stop(w, &ws);
            if (cur < 0)
                continue;
            collect((size_t)cur, dead, ws);
            record_run((size_t)cur, dead);
            found[cur].done = 1;
            done++;
            if (next < n_found && worker_start(w) == 0)
                dispatch(w, &next, &ws);
        }
        print_ready(color);
    }
    print_ready(color);
    for (long k = 0; k < n_workers; k++)
        if (workers[k].pid > 0)
            worker_stop(&workers[k], &ws);
    free(pfd);
    free(workers);
    workers = NULL;
}

static int coverage_json_text(lua_State *L)
{
    rb_push_internal(L, "scenario", "coverage_json");
    lua_call(L, 0, 1);
    return 1;
}

static int write_coverage_json(const char *file)
{
    lua_State *L = judge;
    lua_pushcfunction(L, coverage_json_text);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
        int rc = usage_error("--coverage-json %s: %s", file, lua_tostring(L, -1));
        lua_settop(L, 0);
        return rc;
    }
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    FILE *f = fopen(file, "w");
    int ok = f && fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = 0;
    lua_settop(L, 0);
    return ok ? 0 : usage_error("--coverage-json %s: %s", file, strerror(errno));
}

int cmd_test(int argc, char **argv)
{
    static const struct option opts[] = {{"junit", required_argument, NULL, 'J'},
                                         {"filter", required_argument, NULL, 'F'},
                                         {"jobs", required_argument, NULL, 'j'},
                                         {"one", required_argument, NULL, 'O'},
                                         {"coverage", no_argument, NULL, 'C'},
                                         {"require-coverage", no_argument, NULL, 'R'},
                                         {"coverage-json", required_argument, NULL, 'K'},
                                         {"scenario-timeout", required_argument, NULL, 'T'},
                                         {"max-memory", required_argument, NULL, 'M'},
                                         {"junit-format", required_argument, NULL, 'G'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"audit", required_argument, NULL, 'A'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *junit = NULL;
    int ant = 0; /* --junit-format ant */
    const char *one = NULL;
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    double timeout = DEFAULT_SCENARIO_TIMEOUT;
    const char *timeout_text = "30s";
    size_t max_memory = 0; /* the engine's default */
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:v", opts, NULL)) != -1) {
        switch (c) {
        case 'J':
            junit = optarg;
            break;
        case 'G':
            if (strcmp(optarg, "ant") != 0 && strcmp(optarg, "testsuites") != 0)
                return usage_error("test: --junit-format %s: expected testsuites (one <testsuite> "
                                   "per runbook, the default) or ant (one <testsuite> root)",
                                   optarg);
            ant = strcmp(optarg, "ant") == 0;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'A':
            audit_to = optarg;
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
            one = optarg;
            break;
        case 'T':
            timeout = rb_parse_duration(optarg);
            timeout_text = optarg;
            if (timeout <= 0)
                return usage_error("test: --scenario-timeout %s: expected a duration (90s, 5m, 1h)",
                                   optarg);
            break;
        case 'M':
            max_memory = rb_parse_size(optarg);
            if (max_memory < ((size_t)1 << 20))
                return usage_error("test: --max-memory %s: expected a size of at least 1M (512M, "
                                   "2G)",
                                   optarg);
            break;
        case 'C':
            coverage = coverage ? coverage : 1;
            break;
        case 'R':
            coverage = 2;
            break;
        case 'K':
            coverage_json = optarg;
            break;
        case 'h':
            fputs(TEST_HELP, stdout);
            return 0;
        case ':':
            return usage_error("test: %s needs a value (see runbook test --help)",
                               argv[optind - 1]);
        default: {
            return unknown_getopt_flag("test", argv[optind - 1], opts);
        }
        }
    }
    if (jobs < 1)
        jobs = 1;
    /* every scenario's engine, in a worker or alone (--one), starts with them */
    char why[128];
    snprintf(why, sizeof why, "timed out after %s (runbook test --scenario-timeout)", timeout_text);
    engine_default_limits(max_memory, timeout, why);
    if (one)
        return scenario_run_one(rb_builtin_modules, one);
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

    snprintf(tmpdir, sizeof tmpdir, "%s/runbook-test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return usage_error("test: cannot create a temporary directory: %s", strerror(errno));
    char err[2048];
    if (audit_to && !(audit_target = audit_open(audit_to, err, sizeof err))) {
        rb_remove_tree(tmpdir, 0);
        return usage_error("test: --audit %s: %s", audit_to, err);
    }
    rb_engine *E = engine_new(rb_builtin_modules, err, sizeof err);
    if (!E)
        return usage_error("%s", err);
    judge = judge_new(E->L); /* reads the verdicts, merges coverage */
    if (!judge)
        return usage_error("test: the scenario judge could not start");
    if (rb_landlock_abi() == 0)
        fprintf(stderr, "runbook: test: scenarios not kernel-confined (no Landlock): only the "
                        "judge's path checks keep them hermetic\n");

    keep_output = verbose || junit;
    double t0 = rb_now(), started = rb_wallclock();
    int color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    run_workers(E, jobs, color);
    double total = rb_now() - t0;
    printf("%d passed, %d failed", n_passed, n_failed);
    if (n_errors)
        printf(", %d error%s", n_errors, n_errors == 1 ? "" : "s");
    if (n_skipped)
        printf(", %d skipped", n_skipped);
    printf(" (%.2f s)\n", total);
    int uncovered = 0;
    if (coverage) {
        lua_State *L = judge;
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
    rb_remove_tree(tmpdir, 0); /* verdict files, the workers' scratch directories */
    int rc = 0;
    if (junit && write_junit(E->L, junit, ant, started, total) != 0)
        rc = 2;
    if (coverage_json && write_coverage_json(coverage_json) != 0)
        rc = 2;
    for (size_t i = 0; i < n_found; i++) {
        free(found[i].path);
        free(found[i].failures);
        free(found[i].output);
    }
    free(found);
    judge_free(judge);
    engine_free(E);
    if (audit_target)
        audit_close(audit_target);
    if (audit_failed)
        rc = 2;
    return rc ? rc : n_failed || n_errors || (coverage == 2 && uncovered) ? 1 : 0;
}
