/*
 * The one classifier of commands: is an argv a read or a change?  exec's
 * argv, ssh's remote command and anything else that runs a program ask
 * here, so a command reads the same locally and on a remote host.  An
 * allowlist of commands known to only observe, extended by the
 * `readonly_commands` of runbook.yaml (per environment first); everything
 * else is a change.  Unknown is MUTATE: a wrong READ would run a write in
 * dry-run, a wrong MUTATE only skips a read.
 *
 * The list is of programs, not of names, and of arguments, not only of
 * programs:
 *  - a program given as a path counts only if it is the very file PATH
 *    finds under its name (`./script/test` is not `test`; a relative path
 *    with a slash never counts: it depends on the call's cwd);
 *  - a wrapper (sudo env nice timeout ionice stdbuf xargs) is what it runs,
 *    its own options skipped; an option it does not know is a change;
 *    xargs's command gets words from stdin, so only a reader whose every
 *    argument is harmless (no rules below) stays a read under it;
 *  - arguments that make a reader write or run programs make it a change
 *    (git -c, find -delete, sort -o, file -C, journalctl --vacuum-*...);
 *    long options are matched by prefix as getopt_long abbreviates them;
 *  - an environment variable set outside SAFE_ENV (by `env VAR=x`, sudo's
 *    VAR=x, or exec's opts.env) is a change: GIT_EXTERNAL_DIFF, LD_PRELOAD,
 *    PATH, HOME all change what a reader runs.  Removing one is not.
 */
#include "runbook/host.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Commands that only observe.  An entry's later words must be the
 * command's subcommand (first words that are not options); an entry word
 * starting with '-' must appear anywhere.  find, sort, file, journalctl, ss,
 * git and docker compose config are reads only without the arguments
 * argument_writes() knows.  Deliberately absent: sed (-i, and its w and e
 * commands), awk (system()), tee, dd, date (-s), hostname, curl/wget (can
 * POST), redis-cli, psql. */
static const char *const READONLY[][4] = {{"cat"},
                                          {"grep"},
                                          {"egrep"},
                                          {"fgrep"},
                                          {"zcat"},
                                          {"zgrep"},
                                          {"head"},
                                          {"tail"},
                                          {"wc"},
                                          {"ls"},
                                          {"stat"},
                                          {"file"},
                                          {"find"},
                                          {"sort"},
                                          {"journalctl"},
                                          {"du"},
                                          {"df"},
                                          {"free"},
                                          {"ps"},
                                          {"pgrep"},
                                          {"ss"},
                                          {"netstat"},
                                          {"uptime"},
                                          {"iostat"},
                                          {"vmstat"},
                                          {"mpstat"},
                                          {"id"},
                                          {"whoami"},
                                          {"who"},
                                          {"w"},
                                          {"printenv"},
                                          {"uname"},
                                          {"lsblk"},
                                          {"lscpu"},
                                          {"lsof"},
                                          {"findmnt"},
                                          {"dig"},
                                          {"nslookup"},
                                          {"host"},
                                          {"jq"},
                                          {"md5sum"},
                                          {"sha1sum"},
                                          {"sha256sum"},
                                          {"sha512sum"},
                                          {"cksum"},
                                          {"b2sum"},
                                          {"diff"},
                                          {"cmp"},
                                          {"readlink"},
                                          {"realpath"},
                                          {"basename"},
                                          {"dirname"},
                                          {"pwd"},
                                          {"true"},
                                          {"false"},
                                          {"echo"},
                                          {"printf"},
                                          {"test"},
                                          {"which"},
                                          {"getent"},
                                          {"nproc"},
                                          {"pg_isready"},
                                          {"sleep"},
                                          {"kubectl", "get"},
                                          {"kubectl", "describe"},
                                          {"kubectl", "logs"},
                                          {"kubectl", "top"},
                                          {"kubectl", "explain"},
                                          {"kubectl", "version"},
                                          {"kubectl", "api-resources"},
                                          {"kubectl", "api-versions"},
                                          {"kubectl", "cluster-info"},
                                          {"kubectl", "diff"},
                                          {"kubectl", "wait"},
                                          {"kubectl", "auth", "can-i"},
                                          {"kubectl", "rollout", "status"},
                                          {"kubectl", "rollout", "history"},
                                          {"kubectl", "config", "view"},
                                          {"kubectl", "config", "current-context"},
                                          {"kubectl", "config", "get-contexts"},
                                          {"docker", "ps"},
                                          {"docker", "logs"},
                                          {"docker", "inspect"},
                                          {"docker", "stats"},
                                          {"docker", "version"},
                                          {"docker", "info"},
                                          {"docker", "images"},
                                          {"docker", "top"},
                                          {"docker", "port"},
                                          {"docker", "container", "ls"},
                                          {"docker", "container", "inspect"},
                                          {"docker", "container", "logs"},
                                          {"docker", "image", "ls"},
                                          {"docker", "compose", "ps"},
                                          {"docker", "compose", "logs"},
                                          {"docker", "compose", "config"},
                                          {"docker", "compose", "images"},
                                          {"docker-compose", "ps"},
                                          {"docker-compose", "logs"},
                                          {"docker-compose", "config"},
                                          {"systemctl", "status"},
                                          {"systemctl", "is-active"},
                                          {"systemctl", "is-enabled"},
                                          {"systemctl", "is-failed"},
                                          {"systemctl", "list-units"},
                                          {"systemctl", "show"},
                                          {"git", "status"},
                                          {"git", "log"},
                                          {"git", "diff"},
                                          {"git", "show"},
                                          {"git", "rev-parse"},
                                          {NULL}};

/* Global options of kubectl/docker that take a value: `kubectl -n x get` */
static int takes_value(const char *opt)
{
    static const char *const opts[] = {
        "-n",         "--namespace", "--context", "--kubeconfig", "--cluster", "--user",
        "-s",         "--server",    "--token",   "-H",           "--host",    "--config",
        "-l",         "--log-level", "-f",        "--file",       "-p",        "--project-name",
        "--env-file", "--profile",   "-c",        "-C",           NULL};
    if (strchr(opt, '='))
        return 0;
    for (int i = 0; opts[i]; i++)
        if (strcmp(opt, opts[i]) == 0)
            return 1;
    return 0;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Does argv (n words) match an allowlist entry of m words? */
static int matches(const char *const *argv, int n, const char *const *entry, int m)
{
    if (n < 1 || strcmp(base_name(argv[0]), entry[0]) != 0)
        return 0;
    int pos = 1; /* next argv word to look at for a subcommand */
    for (int e = 1; e < m; e++) {
        if (entry[e][0] == '-') {
            int found = 0;
            for (int i = 1; i < n && !found; i++)
                found = strcmp(argv[i], entry[e]) == 0;
            if (!found)
                return 0;
            continue;
        }
        while (pos < n && argv[pos][0] == '-')
            pos += takes_value(argv[pos]) ? 2 : 1;
        if (pos >= n || strcmp(argv[pos], entry[e]) != 0)
            return 0;
        pos++;
    }
    return 1;
}

/* Does argv match readonly_commands of runbook.yaml, a list of argv
 * prefixes?  Entries are matched like the built-in ones. */
static int configured_readonly(lua_State *L, const char *const *argv, int n)
{
    int ro = 0;
    if (rb_config_get(L, "readonly_commands", NULL) == LUA_TTABLE) {
        lua_Integer k = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= k && !ro; i++) {
            if (lua_rawgeti(L, -1, i) == LUA_TTABLE) {
                const char *entry[16];
                int m = 0;
                while (m < 16 && lua_rawgeti(L, -1, m + 1) == LUA_TSTRING) {
                    entry[m++] = lua_tostring(L, -1);
                    lua_pop(L, 1); /* the string stays referenced by the entry table */
                }
                lua_pop(L, 1);
                ro = m > 0 && matches(argv, n, entry, m);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return ro;
}

/* ---- the program: the file PATH finds, not a look-alike ------------------- */

enum { NOT_FOUND, FOUND, RELATIVE };

/* Look name up on PATH as posix_spawnp would; a relative entry ("", ".")
 * met before the name is found means the cwd decides: RELATIVE. */
static int path_lookup(const char *name, char *found, size_t size)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || p[0] != '/')
            return RELATIVE;
        struct stat st;
        if ((size_t)snprintf(found, size, "%.*s/%s", (int)len, p, name) < size &&
            stat(found, &st) == 0 && S_ISREG(st.st_mode) && access(found, X_OK) == 0)
            return FOUND;
        if (!end)
            return NOT_FOUND;
        p = end;
    }
}

/* May the allowlist judge prog by its name?  A bare name is what PATH
 * finds (not found: it will not run here, or it runs on a remote host);
 * an absolute path only if it is that same file (/usr/bin/cat, /bin/cat
 * on a merged /usr); a relative path with a slash never. */
static int trusted_program(const char *prog)
{
    const char *name = base_name(prog);
    if (!*name)
        return 0;
    char found[PATH_MAX];
    int where = path_lookup(name, found, sizeof found);
    if (name == prog)
        return where != RELATIVE;
    struct stat a, b;
    return prog[0] == '/' && where == FOUND && stat(prog, &a) == 0 && stat(found, &b) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* ---- the environment -------------------------------------------------------- */

/* Variables that change how a reader prints, never what it runs or where
 * it writes (PAGER runs only on a terminal, and a child of exec has none). */
static int safe_env_name(const char *name, size_t len)
{
    static const char *const safe[] = {"LANG",    "LANGUAGE", "TZ",    "TERM",
                                       "COLUMNS", "LINES",    "PAGER", "NO_COLOR"};
    if (len > 3 && strncmp(name, "LC_", 3) == 0)
        return 1;
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strlen(safe[i]) == len && strncmp(name, safe[i], len) == 0)
            return 1;
    return 0;
}

/* NAME=value as env and sudo read it before the command */
static int is_assignment(const char *w)
{
    const char *eq = strchr(w, '=');
    return eq && eq != w;
}

/* exec's opts.env: every variable it sets must be safe; false removes one */
static int env_table_safe(lua_State *L, int t)
{
    int safe = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int sets = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER;
        if (sets) {
            size_t len = 0;
            const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
            safe = safe && name && safe_env_name(name, len);
        }
        lua_pop(L, 1);
    }
    return safe;
}

/* ---- options ------------------------------------------------------------------ */

/* A short option cluster "-abc" against getopt's letters: 1 the next word
 * is the last option's value, 0 it is not, -1 a letter not known. */
static int short_cluster(const char *w, const char *flags, const char *valued, const char *attached)
{
    for (const char *p = w + 1; *p; p++) {
        if (strchr(valued, *p))
            return p[1] ? 0 : 1;
        if (strchr(attached, *p))
            return 0; /* an optional value, only ever attached */
        if (!strchr(flags, *p))
            return -1;
    }
    return 0;
}

/* Is the short cluster w (one dash) giving option c?  Letters in valued
 * take the rest of the word as their value, where c is not an option. */
static int short_has(const char *w, char c, const char *valued)
{
    if (w[0] != '-' || w[1] == '-')
        return 0;
    for (const char *p = w + 1; *p; p++) {
        if (*p == c)
            return 1;
        if (strchr(valued, *p))
            return 0;
    }
    return 0;
}

/* Is w "--name[=value]" with name a prefix of one of names (getopt_long
 * and git accept any unambiguous abbreviation)? */
static int long_has(const char *w, const char *const *names)
{
    if (strncmp(w, "--", 2) != 0)
        return 0;
    w += 2;
    size_t len = strcspn(w, "=");
    if (len == 0)
        return 0;
    for (int i = 0; names[i]; i++)
        if (strncmp(names[i], w, len) == 0)
            return 1;
    return 0;
}

static int in_list(const char *w, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(w, list[i]) == 0)
            return 1;
    return 0;
}

/* ---- arguments that make a reader write or run programs ------------------- */

/* git: before the subcommand only options that choose the repository
 * (-c, --config-env and --exec-path run programs of the caller's choice);
 * after it --output writes a file and --ext-diff runs diff.external. */
static int git_writes(const char *const *argv, int n)
{
    static const char *const flags[] = {"--no-pager",
                                        "-p",
                                        "-P",
                                        "--paginate",
                                        "--bare",
                                        "--no-replace-objects",
                                        "--literal-pathspecs",
                                        "--glob-pathspecs",
                                        "--noglob-pathspecs",
                                        "--icase-pathspecs",
                                        "--no-optional-locks",
                                        NULL};
    static const char *const valued[] = {"-C", "--git-dir", "--work-tree", "--namespace", NULL};
    static const char *const sub_writes[] = {"output", "ext-diff", NULL};
    int i = 1;
    for (; i < n && argv[i][0] == '-'; i++) {
        size_t len = strcspn(argv[i], "=");
        char name[32];
        if (len >= sizeof name)
            return 1;
        memcpy(name, argv[i], len);
        name[len] = '\0';
        if (in_list(argv[i], flags))
            continue;
        if (!in_list(name, valued))
            return 1;
        if (!argv[i][len]) /* the value is the next word */
            i++;
    }
    for (i++; i < n; i++)
        if (long_has(argv[i], sub_writes))
            return 1;
    return 0;
}

static int any_word(const char *const *argv, int n, int (*writes)(const char *w))
{
    for (int i = 1; i < n; i++)
        if (writes(argv[i]))
            return 1;
    return 0;
}

static int find_writes(const char *w)
{
    static const char *const actions[] = {"-delete", "-exec",    "-execdir", "-ok",  "-okdir",
                                          "-fprint", "-fprint0", "-fprintf", "-fls", NULL};
    return in_list(w, actions);
}

static int sort_writes(const char *w)
{
    static const char *const names[] = {"output", "compress-program", NULL};
    return short_has(w, 'o', "ktSTo") || long_has(w, names);
}

static int file_writes(const char *w)
{
    static const char *const names[] = {"compile", NULL};
    return short_has(w, 'C', "eFfmP") || long_has(w, names);
}

static int journalctl_writes(const char *w)
{
    static const char *const names[] = {
        "vacuum-size",    "vacuum-time", "vacuum-files",         "rotate",
        "flush",          "sync",        "relinquish-var",       "cursor-file",
        "update-catalog", "setup-keys",  "smart-relinquish-var", NULL};
    return long_has(w, names);
}

/* ss -K kills sockets, -D dumps to a file */
static int ss_writes(const char *w)
{
    static const char *const names[] = {"kill", "diag", NULL};
    return short_has(w, 'K', "fADFN") || short_has(w, 'D', "fADFN") || long_has(w, names);
}

/* docker compose config -o FILE */
static int compose_writes(const char *w)
{
    static const char *const names[] = {"output", NULL};
    return short_has(w, 'o', "") || long_has(w, names);
}

static int argument_writes(const char *name, const char *const *argv, int n)
{
    if (strcmp(name, "git") == 0)
        return git_writes(argv, n);
    if (strcmp(name, "find") == 0)
        return any_word(argv, n, find_writes);
    if (strcmp(name, "sort") == 0)
        return any_word(argv, n, sort_writes);
    if (strcmp(name, "file") == 0)
        return any_word(argv, n, file_writes);
    if (strcmp(name, "journalctl") == 0)
        return any_word(argv, n, journalctl_writes);
    if (strcmp(name, "ss") == 0)
        return any_word(argv, n, ss_writes);
    if (strcmp(name, "docker") == 0 || strcmp(name, "docker-compose") == 0) {
        static const char *const config[] = {"config", NULL};
        for (int i = 1; i < n; i++) /* `docker top c -o pid` is ps's -o */
            if (in_list(argv[i], config))
                return any_word(argv, n, compose_writes);
    }
    return 0;
}

/* Programs whose arguments are judged above, and those with subcommands:
 * under xargs, words from stdin could make them write. */
static int argument_free(const char *name, int entry_words)
{
    static const char *const judged[] = {"git", "find",   "sort",           "file", "journalctl",
                                         "ss",  "docker", "docker-compose", NULL};
    return entry_words == 1 && !in_list(name, judged);
}

/* ---- wrappers: a command that runs another -------------------------------- */

enum { BARE_CHANGE, BARE_READ };

typedef struct wrapper {
    const char *name;
    const char *flags;              /* short options without a value */
    const char *valued;             /* short options with a value, attached or the next word */
    const char *attached;           /* short options whose optional value is only attached */
    const char *const *long_flags;  /* --name */
    const char *const *long_valued; /* --name value, --name=value */
    int operands;                   /* words before the command: timeout's duration */
    int assignments;                /* NAME=value words may precede the command */
    int bare;                       /* with no command: it prints (or xargs echoes) */
    int numeric;                    /* nice -10 */
    int blind;                      /* xargs: its command gets words we cannot see */
} wrapper;

static const char *const NONE_[] = {NULL};
static const char *const SUDO_F[] = {"--non-interactive", "--preserve-env",    "--set-home",
                                     "--stdin",           "--askpass",         "--bell",
                                     "--preserve-groups", "--reset-timestamp", NULL};
static const char *const SUDO_V[] = {"--user",       "--group", "--prompt", "--close-from",
                                     "--chdir",      "--role",  "--type",   "--command-timeout",
                                     "--other-user", NULL};
static const char *const ENV_F[] = {"--ignore-environment", "--null", "--debug", NULL};
static const char *const ENV_V[] = {"--unset", "--chdir", NULL};
static const char *const NICE_V[] = {"--adjustment", NULL};
static const char *const TIMEOUT_F[] = {"--preserve-status", "--foreground", "--verbose", NULL};
static const char *const TIMEOUT_V[] = {"--signal", "--kill-after", NULL};
static const char *const IONICE_F[] = {"--ignore", NULL};
static const char *const IONICE_V[] = {"--class", "--classdata", NULL};
static const char *const STDBUF_V[] = {"--input", "--output", "--error", NULL};
static const char *const XARGS_F[] = {"--null",        "--no-run-if-empty", "--verbose", "--exit",
                                      "--interactive", "--open-tty",        NULL};
static const char *const XARGS_V[] = {
    "--arg-file",         "--delimiter", "--max-args", "--max-procs", "--max-chars",
    "--process-slot-var", "--eof",       "--replace",  "--max-lines", NULL};

/* ionice -p/-P/-u and sudo -i/-s/-e/-l are absent on purpose: they act
 * on other processes, run a shell or edit files */
static const wrapper WRAPPERS[] = {
    {"sudo", "nEHSABPk", "ugpCDrtTU", "", SUDO_F, SUDO_V, 0, 1, BARE_CHANGE, 0, 0},
    {"env", "i0v", "uC", "", ENV_F, ENV_V, 0, 1, BARE_READ, 0, 0},
    {"nice", "", "n", "", NONE_, NICE_V, 0, 0, BARE_READ, 1, 0},
    {"timeout", "fpv", "sk", "", TIMEOUT_F, TIMEOUT_V, 1, 0, BARE_CHANGE, 0, 0},
    {"ionice", "t", "cn", "", IONICE_F, IONICE_V, 0, 0, BARE_READ, 0, 0},
    {"stdbuf", "", "ioe", "", NONE_, STDBUF_V, 0, 0, BARE_CHANGE, 0, 0},
    {"xargs", "0rtxpo", "adEILnPs", "eil", XARGS_F, XARGS_V, 0, 0, BARE_READ, 0, 1},
    {NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0},
};

/* One long option of a wrapper: 1 the next word is its value, 0 not, -1 unknown. */
static int long_option(const wrapper *wr, const char *w)
{
    size_t len = strcspn(w, "=");
    for (int i = 0; wr->long_valued[i]; i++)
        if (strlen(wr->long_valued[i]) == len && strncmp(w, wr->long_valued[i], len) == 0)
            return w[len] ? 0 : 1;
    for (int i = 0; wr->long_flags[i]; i++)
        if (strlen(wr->long_flags[i]) == len && strncmp(w, wr->long_flags[i], len) == 0)
            return 0; /* --preserve-env=LIST keeps the caller's own */
    return -1;
}

/* The index of the command a wrapper runs (n: none), or -1 when the
 * wrapper itself is a change (an unknown option, an unsafe variable). */
static int wrapped_command(const wrapper *wr, const char *const *argv, int n)
{
    int i = 1;
    while (i < n) {
        const char *w = argv[i];
        if (strcmp(w, "--") == 0) {
            i++;
            break;
        }
        if (w[0] != '-' || w[1] == '\0')
            break;
        int r;
        if (w[1] == '-')
            r = long_option(wr, w);
        else if (wr->numeric && isdigit((unsigned char)w[1]))
            r = 0;
        else
            r = short_cluster(w, wr->flags, wr->valued, wr->attached);
        if (r < 0)
            return -1;
        i += 1 + r;
    }
    i += wr->operands;
    if (i > n)
        return -1;
    for (; wr->assignments && i < n && is_assignment(argv[i]); i++)
        if (!safe_env_name(argv[i], strcspn(argv[i], "=")))
            return -1;
    return i;
}

/* ---- the verdict ------------------------------------------------------------------ */

static int reads(lua_State *L, const char *const *argv, int n, int depth, int blind)
{
    if (n < 1 || depth > 8 || !trusted_program(argv[0]))
        return 0;
    const char *name = base_name(argv[0]);
    for (const wrapper *wr = WRAPPERS; wr->name; wr++) {
        if (strcmp(name, wr->name) != 0)
            continue;
        if (blind)
            return 0; /* `xargs sudo`: stdin names the command */
        int k = wrapped_command(wr, argv, n);
        if (k < 0)
            return 0;
        if (k == n)
            return wr->bare == BARE_READ;
        return reads(L, argv + k, n - k, depth + 1, wr->blind);
    }
    int ro = 0;
    for (int i = 0; READONLY[i][0] && !ro; i++) {
        int m = 0;
        while (m < 4 && READONLY[i][m])
            m++;
        ro = matches(argv, n, READONLY[i], m) && (!blind || argument_free(name, m));
    }
    if (!ro && !blind)
        ro = configured_readonly(L, argv, n);
    return ro && !argument_writes(name, argv, n);
}

#define MAX_WORDS 1024

rb_class rb_classify_argv_env(lua_State *L, int idx, int env_idx)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        return RB_MUTATE;
    if (env_idx && lua_istable(L, env_idx) && !env_table_safe(L, lua_absindex(L, env_idx)))
        return RB_MUTATE;
    int n = (int)lua_rawlen(L, idx);
    if (n < 1 || n > MAX_WORDS)
        return RB_MUTATE;
    /* the words stay on the stack while they are looked at: numbers are
     * converted on copies, the caller's table is left as it is */
    luaL_checkstack(L, n + 8, "classifying a command");
    const char *argv[MAX_WORDS + 1];
    for (int i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            lua_pop(L, i);
            return RB_MUTATE; /* not a command anyone could run */
        }
        argv[i - 1] = lua_tostring(L, -1);
    }
    argv[n] = NULL;
    int ro = reads(L, argv, n, 0, 0);
    lua_pop(L, n);
    return ro ? RB_READ : RB_MUTATE;
}

rb_class rb_classify_argv(lua_State *L, int idx)
{
    return rb_classify_argv_env(L, idx, 0);
}
