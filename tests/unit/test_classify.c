/*
 * Table-driven tests of the one classifier (src/core/classify.c): which
 * argv is a read and which a change, for exec and for ssh's remote
 * commands.  Rows are { argv, expected class, config }: the argv as words
 * separated by single spaces, the config one of
 *   NONE  no runbook.yaml (readonly_commands not configured)
 *   TOP   runbook.yaml with top-level readonly_commands
 *   ENV   a config whose environments.prod has its own list, run with
 *         --env prod (the environment's list replaces the top-level one)
 * A row may add the environment exec's opts.env gives ("NAME=value" words;
 * "-NAME" removes one); "~" in a word is a space.  "@T" in an argv is a scratch directory holding
 * look-alikes (@T/other/cat, @T/script/test: scripts; @T/link/cat: a link
 * to PATH's cat) and "@CAT" the cat PATH finds; PATH is /usr/bin:/bin.
 * Prints "N passed, N failed".
 */
#include "config.h"
#include "engine.h"
#include "runbook/host.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NONE, TOP, ENV };

typedef struct row {
    const char *argv;
    rb_class expect;
    int config;
    const char *env; /* exec's opts.env, or NULL */
} row;

#define R RB_READ
#define M RB_MUTATE

static const row rows[] = {
    /* plain reads, with and without arguments */
    {"cat /etc/hosts", R, NONE, NULL},
    {"ls -la /var/log", R, NONE, NULL},
    {"grep -rn ERROR /var/log/app.log", R, NONE, NULL},
    {"df -P /", R, NONE, NULL},
    {"free -h", R, NONE, NULL},
    {"uptime", R, NONE, NULL},
    {"true", R, NONE, NULL},
    {"sha256sum backup.tar.gz", R, NONE, NULL},
    {"jq .items file.json", R, NONE, NULL},
    {"pg_isready -h db", R, NONE, NULL},
    {"sleep 1", R, NONE, NULL},
    /* a path to the program is its base name */
    {"/usr/bin/cat /etc/hosts", R, NONE, NULL},
    {"/bin/ls", R, NONE, NULL},
    /* writes, and commands deliberately left off the list */
    {"rm -rf /tmp/x", M, NONE, NULL},
    {"touch /tmp/x", M, NONE, NULL},
    {"find / -delete", M, NONE, NULL},
    {"sed -i s/a/b/ f", M, NONE, NULL},
    {"awk {print} f", M, NONE, NULL},
    {"tee /etc/motd", M, NONE, NULL},
    {"curl http://example", M, NONE, NULL},
    {"redis-cli FLUSHALL", M, NONE, NULL},
    {"psql -c select", M, NONE, NULL},
    {"journalctl --vacuum-time=1d", M, NONE, NULL},
    {"date -s 2020-01-01", M, NONE, NULL},
    {"catx /etc/hosts", M, NONE, NULL},
    {"/usr/bin/rm x", M, NONE, NULL},
    /* subcommands */
    {"systemctl status nginx", R, NONE, NULL},
    {"systemctl is-active nginx", R, NONE, NULL},
    {"systemctl restart nginx", M, NONE, NULL},
    {"systemctl stop nginx", M, NONE, NULL},
    {"systemctl", M, NONE, NULL},
    {"kubectl get pods", R, NONE, NULL},
    {"kubectl delete pod x", M, NONE, NULL},
    {"kubectl rollout status deployment/x", R, NONE, NULL},
    {"kubectl rollout restart deployment/x", M, NONE, NULL},
    {"kubectl auth can-i get pods", R, NONE, NULL},
    {"kubectl config view", R, NONE, NULL},
    {"kubectl config use-context prod", M, NONE, NULL},
    {"docker ps -a", R, NONE, NULL},
    {"docker restart web", M, NONE, NULL},
    {"docker compose ps", R, NONE, NULL},
    {"docker compose up -d", M, NONE, NULL},
    {"docker container ls", R, NONE, NULL},
    {"docker container rm x", M, NONE, NULL},
    {"git status", R, NONE, NULL},
    {"git push", M, NONE, NULL},
    /* global options before the subcommand, with and without values */
    {"kubectl -n kube-system get pods", R, NONE, NULL},
    {"kubectl --namespace kube-system get pods", R, NONE, NULL},
    {"kubectl --namespace=kube-system get pods", R, NONE, NULL},
    {"kubectl --context prod -n x delete pod y", M, NONE, NULL},
    {"kubectl --context prod -n x logs pod-y", R, NONE, NULL},
    {"docker -H tcp://h:2375 ps", R, NONE, NULL},
    {"docker --host tcp://h:2375 restart web", M, NONE, NULL},
    {"docker compose -f prod.yml logs web", R, NONE, NULL},
    {"docker compose -f prod.yml restart web", M, NONE, NULL},
    {"docker compose --project-name p ps", R, NONE, NULL},
    {"git -C /srv/app status", R, NONE, NULL},
    {"git -C /srv/app reset --hard", M, NONE, NULL},
    /* a global option's value that looks like a subcommand is skipped */
    {"kubectl -n get delete pod x", M, NONE, NULL},
    {"kubectl -n delete get pods", R, NONE, NULL},
    /* a flag without a value does not swallow the subcommand */
    {"kubectl --insecure-skip-tls-verify get pods", R, NONE, NULL},
    /* the subcommand must be the first word that is not an option */
    {"kubectl apply get", M, NONE, NULL},
    {"systemctl --no-pager status nginx", R, NONE, NULL},
    /* readonly_commands of runbook.yaml */
    {"myctl status", M, NONE, NULL},
    {"myctl status", R, TOP, NULL},
    {"myctl -v status all", R, TOP, NULL},
    {"myctl restart", M, TOP, NULL},
    {"deploy-tool --dry-run apply", R, TOP, NULL},
    {"deploy-tool apply", M, TOP, NULL},
    {"cat /etc/hosts", R, TOP, NULL},
    {"rm x", M, TOP, NULL},
    /* --env prod: the environment's list, not the top-level one */
    {"prodtool show x", R, ENV, NULL},
    {"prodtool delete x", M, ENV, NULL},
    {"myctl status", M, ENV, NULL},
    {"ls", R, ENV, NULL},
    /* a path is judged by the file it names, not by its last word */
    {"@CAT /etc/hosts", R, NONE, NULL},
    {"@T/link/cat /etc/hosts", R, NONE, NULL},
    {"@T/other/cat /etc/hosts", M, NONE, NULL},
    {"@T/script/test", M, NONE, NULL},
    {"./script/test", M, NONE, NULL},
    {"script/test -f x", M, NONE, NULL},
    {"./cat /etc/hosts", M, NONE, NULL},
    {"../bin/ls", M, NONE, NULL},
    {"/tmp/no-such-dir/cat x", M, NONE, NULL},
    {"/usr/bin/", M, NONE, NULL},
    {"test -f x", R, NONE, NULL},
    {"@T/other/cat", M, TOP, NULL},
    {"./myctl status", M, TOP, NULL},
    /* git: options that run programs or write files */
    {"git -c diff.external=touch~PWN diff", M, NONE, NULL},
    {"git -c core.pager=x log", M, NONE, NULL},
    {"git --config-env=diff.external=E diff", M, NONE, NULL},
    {"git --exec-path=/tmp/x status", M, NONE, NULL},
    {"git --exec-path /tmp/x status", M, NONE, NULL},
    {"git diff --output=/tmp/f", M, NONE, NULL},
    {"git diff --output /tmp/f", M, NONE, NULL},
    {"git diff --outp=/tmp/f", M, NONE, NULL},
    {"git log -p --output=/tmp/f", M, NONE, NULL},
    {"git show HEAD --output=/tmp/f", M, NONE, NULL},
    {"git diff --ext-diff", M, NONE, NULL},
    {"git log --ext-diff -p", M, NONE, NULL},
    {"git --no-pager -c x=y log", M, NONE, NULL},
    {"git --unknown-global status", M, NONE, NULL},
    {"git diff", R, NONE, NULL},
    {"git diff --stat HEAD~1", R, NONE, NULL},
    {"git diff --no-ext-diff", R, NONE, NULL},
    {"git diff --output-indicator-new=+", R, NONE, NULL},
    {"git log -c -p", R, NONE, NULL},
    {"git log --oneline -n 5", R, NONE, NULL},
    {"git show HEAD:README.md", R, NONE, NULL},
    {"git --no-pager log", R, NONE, NULL},
    {"git --git-dir=/srv/app/.git status", R, NONE, NULL},
    {"git -C /srv/app --no-pager diff", R, NONE, NULL},
    {"git rev-parse HEAD", R, NONE, NULL},
    {"git checkout main", M, NONE, NULL},
    /* find: reads, unless an action writes or runs */
    {"find . -name x", R, NONE, NULL},
    {"find /var/log -name *.log -mtime +7 -type f", R, NONE, NULL},
    {"find . -print0", R, NONE, NULL},
    {"find . -delete", M, NONE, NULL},
    {"find . -name x -exec rm {} ;", M, NONE, NULL},
    {"find . -execdir touch x ;", M, NONE, NULL},
    {"find . -ok rm {} ;", M, NONE, NULL},
    {"find . -okdir rm {} ;", M, NONE, NULL},
    {"find . -fprint /tmp/out", M, NONE, NULL},
    {"find . -fprint0 /tmp/out", M, NONE, NULL},
    {"find . -fprintf /tmp/out %p", M, NONE, NULL},
    {"find . -fls /tmp/out", M, NONE, NULL},
    /* sed, sort, file, tee */
    {"sed -i s/a/b/ f", M, NONE, NULL},
    {"sed -n 1p f", M, NONE, NULL},
    {"sort f", R, NONE, NULL},
    {"sort -u -k2 f", R, NONE, NULL},
    {"sort -t o f", R, NONE, NULL},
    {"sort -to f", R, NONE, NULL},
    {"sort -o out f", M, NONE, NULL},
    {"sort -uo out f", M, NONE, NULL},
    {"sort f -o out", M, NONE, NULL},
    {"sort --output=out f", M, NONE, NULL},
    {"sort --out=out f", M, NONE, NULL},
    {"sort --compress-program=sh f", M, NONE, NULL},
    {"file /bin/ls", R, NONE, NULL},
    {"file -b -i /bin/ls", R, NONE, NULL},
    {"file -C", M, NONE, NULL},
    {"file -C -m magic", M, NONE, NULL},
    {"file -zC", M, NONE, NULL},
    {"file --compile -m magic", M, NONE, NULL},
    {"file -m magic /bin/ls", R, NONE, NULL},
    {"tee out", M, NONE, NULL},
    {"tee -a out", M, NONE, NULL},
    /* journalctl: reads, except what rotates, vacuums or writes */
    {"journalctl --disk-usage", R, NONE, NULL},
    {"journalctl -u nginx --since today", R, NONE, NULL},
    {"journalctl -o json -n 100", R, NONE, NULL},
    {"journalctl --output=json", R, NONE, NULL},
    {"journalctl --vacuum-size=1G", M, NONE, NULL},
    {"journalctl --vacuum-files=5", M, NONE, NULL},
    {"journalctl --vacuum-time=1d", M, NONE, NULL},
    {"journalctl --vac=1d", M, NONE, NULL},
    {"journalctl --rotate", M, NONE, NULL},
    {"journalctl --flush", M, NONE, NULL},
    {"journalctl --sync", M, NONE, NULL},
    {"journalctl --relinquish-var", M, NONE, NULL},
    {"journalctl --cursor-file=/tmp/c", M, NONE, NULL},
    {"journalctl --setup-keys", M, NONE, NULL},
    {"journalctl --update-catalog", M, NONE, NULL},
    /* other readers with a writing option */
    {"ss -tlnp", R, NONE, NULL},
    {"ss -K dst 10.0.0.1", M, NONE, NULL},
    {"ss -tK", M, NONE, NULL},
    {"ss --kill", M, NONE, NULL},
    {"ss -D /tmp/dump", M, NONE, NULL},
    {"docker compose config", R, NONE, NULL},
    {"docker compose config -o out.yml", M, NONE, NULL},
    {"docker compose -f a.yml config --output=out.yml", M, NONE, NULL},
    {"docker-compose config -o out.yml", M, NONE, NULL},
    {"docker top web -o pid,cmd", R, NONE, NULL},
    {"du -sh /var/log", R, NONE, NULL},
    {"du --max-depth=1 /", R, NONE, NULL},
    /* wrappers are what they run */
    {"timeout 5 cat f", R, NONE, NULL},
    {"timeout 5 touch F", M, NONE, NULL},
    {"timeout -s KILL 5 cat f", R, NONE, NULL},
    {"timeout -s KILL 5 rm f", M, NONE, NULL},
    {"timeout -sKILL -k 2 5 cat f", R, NONE, NULL},
    {"timeout --signal=KILL 5 cat f", R, NONE, NULL},
    {"timeout --signal KILL 5 cat f", R, NONE, NULL},
    {"timeout --preserve-status 5 ls", R, NONE, NULL},
    {"timeout 5", M, NONE, NULL},
    {"timeout --sig KILL 5 cat f", M, NONE, NULL},
    {"timeout 5 find . -delete", M, NONE, NULL},
    {"nice -n 10 cat f", R, NONE, NULL},
    {"nice -n10 cat f", R, NONE, NULL},
    {"nice -10 du -sh /", R, NONE, NULL},
    {"nice --adjustment=5 cat f", R, NONE, NULL},
    {"nice -n 10 rm f", M, NONE, NULL},
    {"nice", R, NONE, NULL},
    {"ionice -c 3 du -sh /", R, NONE, NULL},
    {"ionice -c3 -n7 cat f", R, NONE, NULL},
    {"ionice -c 3 -p 123", M, NONE, NULL},
    {"ionice -c 3 rm f", M, NONE, NULL},
    {"stdbuf -oL grep x f", R, NONE, NULL},
    {"stdbuf -o L tail -n 5 f", R, NONE, NULL},
    {"stdbuf -oL sed -i s/a/b/ f", M, NONE, NULL},
    {"stdbuf", M, NONE, NULL},
    {"sudo cat /etc/shadow", R, NONE, NULL},
    {"sudo -n cat /etc/shadow", R, NONE, NULL},
    {"sudo -u postgres psql", M, NONE, NULL},
    {"sudo -u postgres pg_isready", R, NONE, NULL},
    {"sudo -nu root ls /root", R, NONE, NULL},
    {"sudo --user=root ls", R, NONE, NULL},
    {"sudo -- journalctl --disk-usage", R, NONE, NULL},
    {"sudo journalctl --vacuum-size=1G", M, NONE, NULL},
    {"sudo rm -rf /", M, NONE, NULL},
    {"sudo -i cat f", M, NONE, NULL},
    {"sudo -s", M, NONE, NULL},
    {"sudo -e /etc/hosts", M, NONE, NULL},
    {"sudo", M, NONE, NULL},
    {"sudo LANG=C cat f", R, NONE, NULL},
    {"sudo LD_PRELOAD=/tmp/x.so cat f", M, NONE, NULL},
    {"sudo @T/other/cat f", M, NONE, NULL},
    {"sudo -n systemctl status nginx", R, NONE, NULL},
    {"sudo -n systemctl restart nginx", M, NONE, NULL},
    {"sudo nice -n 5 timeout 10 du -sh /", R, NONE, NULL},
    {"sudo timeout 10 sudo rm x", M, NONE, NULL},
    {"sudo myctl status", R, TOP, NULL},
    {"./sudo cat f", M, NONE, NULL},
    {"xargs -0 rm", M, NONE, NULL},
    {"xargs rm", M, NONE, NULL},
    {"xargs cat", R, NONE, NULL},
    {"xargs -0 -n 1 grep -l x", R, NONE, NULL},
    {"xargs -I{} cat {}", R, NONE, NULL},
    {"xargs", R, NONE, NULL},
    {"xargs find", M, NONE, NULL},
    {"xargs git status", M, NONE, NULL},
    {"xargs sort", M, NONE, NULL},
    {"xargs sudo cat", M, NONE, NULL},
    {"xargs timeout 5 cat", M, NONE, NULL},
    {"xargs myctl status", M, TOP, NULL},
    {"xargs -Z cat", M, NONE, NULL},
    /* env: the variables it sets, then what it runs */
    {"env", R, NONE, NULL},
    {"env cat f", R, NONE, NULL},
    {"env -i cat f", R, NONE, NULL},
    {"env -u HOME cat f", R, NONE, NULL},
    {"env LANG=C LC_ALL=C sort f", R, NONE, NULL},
    {"env TZ=UTC NO_COLOR=1 TERM=dumb COLUMNS=200 ls", R, NONE, NULL},
    {"env X=1 touch F", M, NONE, NULL},
    {"env X=1 cat f", M, NONE, NULL},
    {"env GIT_EXTERNAL_DIFF=sh git diff", M, NONE, NULL},
    {"env PATH=/tmp cat f", M, NONE, NULL},
    {"env LD_PRELOAD=/tmp/x.so cat f", M, NONE, NULL},
    {"env -S cat~f", M, NONE, NULL},
    {"env -P /tmp cat f", M, NONE, NULL},
    {"env --split-string=rm cat", M, NONE, NULL},
    {"env HOME=/tmp git log", M, NONE, NULL},
    {"env LANG=C rm f", M, NONE, NULL},
    {"env -- LANG=C cat f", R, NONE, NULL},
    /* exec's opts.env */
    {"git diff", M, NONE, "GIT_EXTERNAL_DIFF=touch"},
    {"git log", M, NONE, "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.pager"},
    {"cat f", M, NONE, "LD_PRELOAD=/tmp/x.so"},
    {"cat f", M, NONE, "PATH=/tmp"},
    {"ls", M, NONE, "LANG=C HOME=/tmp"},
    {"cat f", R, NONE, "LANG=C LC_ALL=C TZ=UTC"},
    {"git diff", R, NONE, "PAGER=cat TERM=dumb NO_COLOR=1"},
    {"cat f", R, NONE, "-LD_PRELOAD -HOME"},
    {"rm f", M, NONE, "LANG=C"},
    {"myctl status", M, TOP, "MYCTL_CONF=/tmp/x"},
    {"myctl status", R, TOP, "LANG=C"},
    {NULL, 0, 0, NULL},
};

static int passed, failed;

static char scratch[64];    /* @T */
static char path_cat[4200]; /* @CAT */

/* A row's word with @T, @CAT and ~ replaced, pushed. */
static void push_word(lua_State *L, const char *w)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; *w; w++) {
        if (strncmp(w, "@CAT", 4) == 0) {
            luaL_addstring(&b, path_cat);
            w += 3;
        } else if (strncmp(w, "@T", 2) == 0) {
            luaL_addstring(&b, scratch);
            w += 1;
        } else {
            luaL_addchar(&b, *w == '~' ? ' ' : *w);
        }
    }
    luaL_pushresult(&b);
}

/* The argv of a row as a Lua table on top of the stack. */
static void push_argv(lua_State *L, const char *words)
{
    lua_newtable(L);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", words);
    int n = 0;
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        push_word(L, w);
        lua_rawseti(L, -2, ++n);
    }
}

/* A row's opts.env as a table on top of the stack: NAME=value, -NAME = false */
static void push_env(lua_State *L, const char *words)
{
    lua_newtable(L);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", words);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        if (w[0] == '-') {
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, w + 1);
        } else if (eq) {
            *eq = '\0';
            lua_pushstring(L, eq + 1);
            lua_setfield(L, -2, w);
        }
    }
}

static const char *config_name(int c)
{
    return c == NONE ? "no runbook.yaml" : c == TOP ? "readonly_commands" : "--env prod";
}

static void run_rows(rb_engine *E, rb_config *top_cfg, rb_config *env_cfg)
{
    lua_State *L = E->L;
    for (const row *r = rows; r->argv; r++) {
        E->config = r->config == NONE ? NULL : r->config == TOP ? top_cfg : env_cfg;
        E->env_name = r->config == ENV ? "prod" : NULL;
        int top = lua_gettop(L);
        int env = 0;
        if (r->env) {
            push_env(L, r->env);
            env = lua_gettop(L);
        }
        push_argv(L, r->argv);
        rb_class got = env ? rb_classify_argv_env(L, -1, env) : rb_classify_argv(L, -1);
        if (lua_gettop(L) != top + 1 + (env != 0)) {
            failed++;
            fprintf(stderr, "FAIL %s: the stack moved by %d\n", r->argv, lua_gettop(L) - top - 1);
        } else if (got != r->expect) {
            failed++;
            fprintf(stderr, "FAIL %s%s%s (%s): got %s, want %s\n", r->env ? r->env : "",
                    r->env ? " " : "", r->argv, config_name(r->config),
                    got == RB_READ ? "read" : "mutate", r->expect == RB_READ ? "read" : "mutate");
        } else {
            passed++;
        }
        lua_settop(L, top);
    }
}

/* Rows the word-splitting above cannot express. */
static void edge_cases(rb_engine *E)
{
    lua_State *L = E->L;
    E->config = NULL;
    struct {
        const char *what;
        const char *chunk;
        rb_class expect;
    } cases[] = {
        {"empty argv", "return {}", M},
        {"not a table", "return 'cat /etc/hosts'", M},
        {"a number argument", "return { 'sleep', 5 }", R},
        {"a table argument", "return { 'cat', {} }", M},
        {"an empty program name", "return { '' }", M},
        {"a space inside an argument", "return { 'grep', 'a b', 'f' }", R},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int top = lua_gettop(L);
        if (luaL_dostring(L, cases[i].chunk) != LUA_OK) {
            failed++;
            fprintf(stderr, "FAIL %s: %s\n", cases[i].what, lua_tostring(L, -1));
            lua_settop(L, top);
            continue;
        }
        lua_pushvalue(L, -1);
        rb_class got = rb_classify_argv(L, -1);
        /* the caller's table is not changed (numbers are not converted in it) */
        int untouched = lua_gettop(L) == top + 2 && lua_rawequal(L, -1, -2);
        if (lua_istable(L, -1) && lua_rawlen(L, -1) >= 2) {
            lua_rawgeti(L, -1, 2);
            if (strcmp(cases[i].what, "a number argument") == 0)
                untouched = untouched && lua_type(L, -1) == LUA_TNUMBER;
            lua_pop(L, 1);
        }
        if (got != cases[i].expect || !untouched) {
            failed++;
            fprintf(stderr, "FAIL %s: got %s%s\n", cases[i].what,
                    got == RB_READ ? "read" : "mutate",
                    untouched ? "" : ", table or stack changed");
        } else {
            passed++;
        }
        lua_settop(L, top);
    }
}

/* An executable script at path that creates a file: a look-alike. */
static int write_script(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("#!/bin/sh\ntouch PWNED\n", f);
    fclose(f);
    return chmod(path, 0755);
}

/* @T: look-alikes of cat and test, and a link to the real cat; PATH is
 * fixed so the rows do not depend on the caller's. */
static int setup_scratch(void)
{
    setenv("PATH", "/usr/bin:/bin", 1);
    snprintf(path_cat, sizeof path_cat, "%s",
             access("/usr/bin/cat", X_OK) == 0 ? "/usr/bin/cat" : "/bin/cat");
    snprintf(scratch, sizeof scratch, "/tmp/runbook-classify-T-XXXXXX");
    if (!mkdtemp(scratch))
        return -1;
    char p[256];
    const char *dirs[] = {"other", "script", "link"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", scratch, dirs[i]);
        if (mkdir(p, 0755) != 0)
            return -1;
    }
    snprintf(p, sizeof p, "%s/other/cat", scratch);
    if (write_script(p) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/script/test", scratch);
    if (write_script(p) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/link/cat", scratch);
    return symlink(path_cat, p);
}

static void cleanup_scratch(void)
{
    const char *files[] = {"other/cat", "script/test", "link/cat", "other", "script", "link", ""};
    char p[256];
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", scratch, files[i]);
        if (i < 3)
            unlink(p);
        else
            rmdir(p);
    }
}

/* A PATH with a relative entry before the program: the cwd decides which
 * file runs, so no name on it can be trusted. */
static void relative_path_cases(rb_engine *E)
{
    lua_State *L = E->L;
    E->config = NULL;
    struct {
        const char *path, *argv;
        rb_class expect;
    } cases[] = {
        {":/usr/bin:/bin", "cat f", M},          {".:/usr/bin:/bin", "ls", M},
        {"bin:/usr/bin:/bin", "ls", M},          {".:/usr/bin:/bin", "@CAT f", M},
        {"/usr/bin:/bin:.", "cat f", R},         {"/usr/bin:/bin:.", "@CAT f", R},
        {"@T/other:/usr/bin:/bin", "cat f", R}, /* PATH's own choice: the caller's */
        {"@T/other:/usr/bin:/bin", "@CAT f", M},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int top = lua_gettop(L);
        push_word(L, cases[i].path);
        setenv("PATH", lua_tostring(L, -1), 1);
        push_argv(L, cases[i].argv);
        rb_class got = rb_classify_argv(L, -1);
        if (got != cases[i].expect) {
            failed++;
            fprintf(stderr, "FAIL PATH=%s %s: got %s\n", cases[i].path, cases[i].argv,
                    got == RB_READ ? "read" : "mutate");
        } else {
            passed++;
        }
        lua_settop(L, top);
    }
    setenv("PATH", "/usr/bin:/bin", 1);
}

/* The classifier is the core's: an engine with no modules at all. */
static const rb_module stub_modules[] = {{NULL, NULL, NULL, NULL}};

int main(void)
{
    char err[512];
    rb_engine *E = engine_new(stub_modules, err, sizeof err);
    if (!E) {
        fprintf(stderr, "engine_new: %s\n", err);
        return 1;
    }
    /* TOP: a real runbook.yaml, loaded and checked as the CLI does */
    char dir[] = "/tmp/runbook-classify-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/runbook.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fputs("readonly_commands:\n"
          "  - [myctl, status]\n"
          "  - [deploy-tool, --dry-run]\n",
          f);
    fclose(f);
    rb_config top;
    memset(&top, 0, sizeof top);
    int rc = config_load(&top, E->L, E->modules, path, 1, err, sizeof err);
    unlink(path);
    rmdir(dir);
    if (rc != 0) {
        fprintf(stderr, "config_load: %s\n", err);
        return 1;
    }
    /* ENV: the document as a table, because config.c does not (yet) accept
     * readonly_commands under environments.NAME; rb_config_get looks there
     * first all the same */
    rb_config env;
    memset(&env, 0, sizeof env);
    if (luaL_dostring(E->L, "return { readonly_commands = { { 'myctl', 'status' } },\n"
                            "  environments = { prod = {\n"
                            "    readonly_commands = { { 'prodtool', 'show' } } } } }") != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(E->L, -1));
        return 1;
    }
    env.ref = luaL_ref(E->L, LUA_REGISTRYINDEX);

    if (setup_scratch() != 0) {
        perror("scratch directory");
        return 1;
    }
    run_rows(E, &top, &env);
    edge_cases(E);
    relative_path_cases(E);
    cleanup_scratch();
    E->config = NULL;
    E->env_name = NULL;
    engine_free(E);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
