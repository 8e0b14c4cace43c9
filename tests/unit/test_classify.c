/*
 * Table-driven tests of the one classifier (src/core/classify.c): which
 * argv is a read and which a change, for exec and for ssh's remote
 * commands.  Rows are { argv, expected class, config }: the argv as words
 * separated by single spaces, the config one of
 *   NONE  no runbook.yaml (readonly_commands not configured)
 *   TOP   runbook.yaml with top-level readonly_commands
 *   ENV   a config whose environments.prod has its own list, run with
 *         --env prod (the environment's list replaces the top-level one)
 * Prints "N passed, N failed".
 */
#include "config.h"
#include "engine.h"
#include "runbook/host.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NONE, TOP, ENV };

typedef struct row {
    const char *argv;
    rb_class expect;
    int config;
} row;

#define R RB_READ
#define M RB_MUTATE

static const row rows[] = {
    /* plain reads, with and without arguments */
    {"cat /etc/hosts", R, NONE},
    {"ls -la /var/log", R, NONE},
    {"grep -rn ERROR /var/log/app.log", R, NONE},
    {"df -P /", R, NONE},
    {"free -h", R, NONE},
    {"uptime", R, NONE},
    {"true", R, NONE},
    {"sha256sum backup.tar.gz", R, NONE},
    {"jq .items file.json", R, NONE},
    {"pg_isready -h db", R, NONE},
    {"sleep 1", R, NONE},
    /* a path to the program is its base name */
    {"/usr/bin/cat /etc/hosts", R, NONE},
    {"/bin/ls", R, NONE},
    /* writes, and commands deliberately left off the list */
    {"rm -rf /tmp/x", M, NONE},
    {"touch /tmp/x", M, NONE},
    {"find / -delete", M, NONE},
    {"sed -i s/a/b/ f", M, NONE},
    {"awk {print} f", M, NONE},
    {"tee /etc/motd", M, NONE},
    {"curl http://example", M, NONE},
    {"redis-cli FLUSHALL", M, NONE},
    {"psql -c select", M, NONE},
    {"journalctl --vacuum-time=1d", M, NONE},
    {"date -s 2020-01-01", M, NONE},
    {"catx /etc/hosts", M, NONE},
    {"/usr/bin/rm x", M, NONE},
    /* subcommands */
    {"systemctl status nginx", R, NONE},
    {"systemctl is-active nginx", R, NONE},
    {"systemctl restart nginx", M, NONE},
    {"systemctl stop nginx", M, NONE},
    {"systemctl", M, NONE},
    {"kubectl get pods", R, NONE},
    {"kubectl delete pod x", M, NONE},
    {"kubectl rollout status deployment/x", R, NONE},
    {"kubectl rollout restart deployment/x", M, NONE},
    {"kubectl auth can-i get pods", R, NONE},
    {"kubectl config view", R, NONE},
    {"kubectl config use-context prod", M, NONE},
    {"docker ps -a", R, NONE},
    {"docker restart web", M, NONE},
    {"docker compose ps", R, NONE},
    {"docker compose up -d", M, NONE},
    {"docker container ls", R, NONE},
    {"docker container rm x", M, NONE},
    {"git status", R, NONE},
    {"git push", M, NONE},
    /* global options before the subcommand, with and without values */
    {"kubectl -n kube-system get pods", R, NONE},
    {"kubectl --namespace kube-system get pods", R, NONE},
    {"kubectl --namespace=kube-system get pods", R, NONE},
    {"kubectl --context prod -n x delete pod y", M, NONE},
    {"kubectl --context prod -n x logs pod-y", R, NONE},
    {"docker -H tcp://h:2375 ps", R, NONE},
    {"docker --host tcp://h:2375 restart web", M, NONE},
    {"docker compose -f prod.yml logs web", R, NONE},
    {"docker compose -f prod.yml restart web", M, NONE},
    {"docker compose --project-name p ps", R, NONE},
    {"git -C /srv/app status", R, NONE},
    {"git -C /srv/app reset --hard", M, NONE},
    /* a global option's value that looks like a subcommand is skipped */
    {"kubectl -n get delete pod x", M, NONE},
    {"kubectl -n delete get pods", R, NONE},
    /* a flag without a value does not swallow the subcommand */
    {"kubectl --insecure-skip-tls-verify get pods", R, NONE},
    /* the subcommand must be the first word that is not an option */
    {"kubectl apply get", M, NONE},
    {"systemctl --no-pager status nginx", R, NONE},
    /* readonly_commands of runbook.yaml */
    {"myctl status", M, NONE},
    {"myctl status", R, TOP},
    {"myctl -v status all", R, TOP},
    {"myctl restart", M, TOP},
    {"deploy-tool --dry-run apply", R, TOP},
    {"deploy-tool apply", M, TOP},
    {"cat /etc/hosts", R, TOP},
    {"rm x", M, TOP},
    /* --env prod: the environment's list, not the top-level one */
    {"prodtool show x", R, ENV},
    {"prodtool delete x", M, ENV},
    {"myctl status", M, ENV},
    {"ls", R, ENV},
    {NULL, 0, 0},
};

static int passed, failed;

/* The argv of a row as a Lua table on top of the stack. */
static void push_argv(lua_State *L, const char *words)
{
    lua_newtable(L);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", words);
    int n = 0;
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        lua_pushstring(L, w);
        lua_rawseti(L, -2, ++n);
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
        push_argv(L, r->argv);
        rb_class got = rb_classify_argv(L, -1);
        if (lua_gettop(L) != top + 1) {
            failed++;
            fprintf(stderr, "FAIL %s: the stack moved by %d\n", r->argv, lua_gettop(L) - top - 1);
        } else if (got != r->expect) {
            failed++;
            fprintf(stderr, "FAIL %s (%s): got %s, want %s\n", r->argv, config_name(r->config),
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

/* The classifier is the core's: an engine with no modules at all. */
static const rb_module stub_modules[] = {{NULL, NULL, NULL}};

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

    run_rows(E, &top, &env);
    edge_cases(E);
    E->config = NULL;
    E->env_name = NULL;
    engine_free(E);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
