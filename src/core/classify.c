/*
 * The one classifier of commands: is an argv a read or a change?  exec's
 * argv, ssh's remote command and anything else that runs a program ask
 * here, so a command reads the same locally and on a remote host.  An
 * allowlist of commands known to only observe, extended by the
 * `readonly_commands` of runbook.yaml (per environment first); everything
 * else is a change.  Unknown is MUTATE: a wrong READ would run a write in
 * dry-run, a wrong MUTATE only skips a read.
 */
#include "runbook/host.h"

#include <string.h>

/* Commands that only observe.  An entry's later words must be the
 * command's subcommand (first words that are not options); an entry word
 * starting with '-' must appear anywhere.  Deliberately absent: find (-delete,
 * -exec), sed (-i), awk (system()), sort (-o), tee, dd, date (-s), hostname,
 * curl/wget (can POST), journalctl (--vacuum-*), redis-cli, psql. */
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

#define MAX_WORDS 1024

rb_class rb_classify_argv(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
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
    int ro = 0;
    for (int i = 0; READONLY[i][0] && !ro; i++) {
        int m = 0;
        while (m < 4 && READONLY[i][m])
            m++;
        ro = matches(argv, n, READONLY[i], m);
    }
    if (!ro)
        ro = configured_readonly(L, argv, n);
    lua_pop(L, n);
    return ro ? RB_READ : RB_MUTATE;
}
