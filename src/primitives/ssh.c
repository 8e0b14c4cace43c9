/*
 * ssh.run(host, argv [, opts]), ssh.copy(src, host, dest [, opts]),
 * ssh.each(hosts, fn [, opts]) and ssh.hosts(group): remote hosts through
 * OpenSSH's own client, which owns keys, ~/.ssh/config, known_hosts,
 * agents and ProxyJump -- we add nothing to trust or to configure.
 *
 * Every connection shares one master per host (ControlMaster=auto, the
 * socket in the runtime directory, kept for 60 s after the run), so a
 * runbook that runs ten commands on a host pays one handshake, and a second
 * run soon after pays none.  BatchMode: a run never stops at a password
 * prompt nobody sees.  The processes run through exec's raw effect, on the
 * event loop, killed with their process group on a timeout or Ctrl-C.
 *
 * The remote command is classified by the one classifier exec uses
 * (rb_classify_argv): `systemctl status x` is a read and runs in dry-run,
 * `systemctl restart x` is a change and does not.
 *
 * runbook.yaml, top level or per environment:
 *     ssh:
 *       config: ops/ssh_config        # passed as ssh -F
 *       inventory:                    # ssh.hosts("web")
 *         web: [web1, web2]
 */
#include "runbook/host.h"
#include "runbook/runbook.h"

#include <stdio.h>
#include <string.h>

#define PARALLEL_KEY "runbook.ssh.parallel"
/* A unix socket path holds 107 bytes; OpenSSH expands %C to 40 hex digits
 * and adds a 17-byte random suffix while it creates the socket. */
#define MAX_CONTROL_DIR 44

/* ---- the local command line ------------------------------------------------ */

/* The remote argv at idx as a new table of strings (numbers converted),
 * on top of the stack; raises for what no program could be given. */
static int push_remote_argv(lua_State *L, int idx, const char *fn)
{
    if (!lua_istable(L, idx))
        luaL_error(L, "ssh.%s: argv must be a table of strings, got %s", fn, luaL_typename(L, idx));
    int n = (int)lua_rawlen(L, idx);
    if (n < 1) /* ssh without a command would open a login shell */
        luaL_error(L, "ssh.%s: argv must have at least the program name", fn);
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_error(L, "ssh.%s: argv[%d] must be a string, got %s", fn, i, luaL_typename(L, -1));
        lua_pushstring(L, lua_tostring(L, -1));
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    return n;
}

static const char *check_host(lua_State *L, int idx, const char *fn)
{
    const char *host = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
    if (!host)
        luaL_error(L, "ssh.%s: the host must be a string, got %s", fn, luaL_typename(L, idx));
    /* `--` already stops ssh reading it as an option; an empty or dashed
     * name is a mistake worth naming */
    if (!*host || *host == '-')
        luaL_error(L, "ssh.%s: not a host name: '%s'", fn, host);
    return host;
}

/* Join the strings of the table at idx: each word through quote. */
static const char *push_joined(lua_State *L, int idx, void (*quote)(luaL_Buffer *, const char *))
{
    int n = (int)lua_rawlen(L, idx);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays referenced by the table */
        if (i > 1)
            luaL_addchar(&b, ' ');
        quote(&b, s);
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* The remote shell parses the command line ssh sends it: every word is
 * single-quoted, whatever it holds, so nothing in it is ever syntax. */
static void quote_always(luaL_Buffer *b, const char *s)
{
    luaL_addchar(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            luaL_addstring(b, "'\\''");
        else
            luaL_addchar(b, *s);
    }
    luaL_addchar(b, '\'');
}

static void add_word(lua_State *L, int t, const char *s)
{
    t = lua_absindex(L, t);
    lua_pushstring(L, s);
    lua_rawseti(L, t, (lua_Integer)lua_rawlen(L, t) + 1);
}

/* Push a new argv table {program, [-F config], -o ..., --} for ssh or scp. */
static int push_client_argv(lua_State *L, const char *program)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    add_word(L, t, program);
    if (strcmp(program, "scp") == 0)
        add_word(L, t, "-q"); /* no progress meter: nobody reads it */
    int type = rb_config_get(L, "ssh", "config");
    if (type == LUA_TSTRING) {
        add_word(L, t, "-F");
        add_word(L, t, lua_tostring(L, -1));
    } else if (type != LUA_TNIL) {
        return luaL_error(L, "runbook.yaml: ssh.config must be the path of an ssh_config, got %s",
                          luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    /* a confined client (a dry-run's) cannot create the master's socket:
     * it uses a live run's master if one is up, else connects alone */
    int confined = rb_children_confined(L);
    const char *dir = rb_runtime_dir(L);
    if (!dir) {
        /* confined, and no runtime directory: no master to share */
    } else if (strlen(dir) <= MAX_CONTROL_DIR) {
        add_word(L, t, "-o");
        add_word(L, t, confined ? "ControlMaster=no" : "ControlMaster=auto");
        add_word(L, t, "-o");
        lua_pushfstring(L, "ControlPath=%s/ssh-%%C", dir);
        lua_rawseti(L, t, (lua_Integer)lua_rawlen(L, t) + 1);
        if (!confined) {
            add_word(L, t, "-o");
            add_word(L, t, "ControlPersist=60");
        }
    } else {
        rb_log(L, "warn",
               "ssh: %s is too long a path for control sockets: one connection per "
               "command (set XDG_RUNTIME_DIR to a shorter directory)",
               dir);
    }
    add_word(L, t, "-o");
    add_word(L, t, "BatchMode=yes");
    add_word(L, t, "--");
    return t;
}

/* ---- running the client through exec's raw effect ---------------------------
 * The stack of a call, once prepared: 1..4 the caller's arguments (run:
 * host, argv, opts, then the remote argv as strings; copy: src, host, dest,
 * opts), then WORDS the action's words ("ssh web1 systemctl restart x"),
 * CLIENT the local argv, EXEC_WORDS how exec names that command in its
 * messages, CHECK opts.check. */
enum { WORDS = 5, CLIENT, EXEC_WORDS, CHECK };

static void quote_plain(luaL_Buffer *b, const char *s)
{
    rb_quote_arg(b, s);
}

/* After exec's answer: its errors in our words, a failed exit code raised
 * with check, as exec does it. */
static int client_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    const char *words = lua_tostring(L, WORDS);
    if (status != LUA_OK && status != LUA_YIELD) {
        /* "exec ssh -F ... -- web1 'true': timed out after 5.0 s" */
        const char *msg = lua_tostring(L, -1);
        const char *ew = lua_tostring(L, EXEC_WORDS);
        size_t n = strlen(ew);
        if (msg && strncmp(msg, ew, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
            msg += n + 2;
        return luaL_error(L, "%s: %s", words, msg ? msg : "(error object)");
    }
    int res = lua_gettop(L);
    lua_getfield(L, res, "code");
    lua_Integer code = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (code == 0 || !lua_toboolean(L, CHECK))
        return 1;
    return rb_raise_exit(L, words, res);
}

/* Run the client argv at CLIENT with the caller's options at opts (0: none). */
static int run_client(lua_State *L, int opts)
{
    lua_settop(L, CLIENT);
    push_joined(L, CLIENT, quote_plain);
    lua_pushfstring(L, "exec %s", lua_tostring(L, -1));
    lua_remove(L, -2);                                    /* EXEC_WORDS */
    lua_pushboolean(L, rb_opt_bool(L, opts, "check", 1)); /* CHECK */
    rb_push_raw(L, "exec", "exec");
    lua_pushvalue(L, CLIENT);
    /* exec's options: what applies to the local client; the exit code is
     * judged here, in the action's words */
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "check");
    if (opts) {
        static const char *const pass[] = {"timeout", "stdin", NULL};
        for (int i = 0; pass[i]; i++) {
            lua_getfield(L, opts, pass[i]);
            lua_setfield(L, -2, pass[i]);
        }
    }
    return client_k(L, lua_pcallk(L, 2, 1, 0, 0, client_k), 0);
}

static int opts_at(lua_State *L, int idx, const char *fn)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    if (!lua_istable(L, idx))
        luaL_error(L, "ssh.%s: options must be a table, got %s", fn, luaL_typename(L, idx));
    return idx;
}

static const char *check_path(lua_State *L, int idx, const char *what)
{
    const char *p = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
    if (!p || !*p)
        luaL_error(L, "ssh.copy: %s must be a path, got %s", what,
                   p ? "an empty string" : luaL_typename(L, idx));
    return p;
}

/* "systemctl restart x": the remote argv at idx in an operator's words */
static const char *push_words(lua_State *L, int idx)
{
    return push_joined(L, idx, quote_plain);
}

/* ssh.run(host, argv [, opts]) -> { code, ok, stdout, stderr, time } */
static int l_run(lua_State *L)
{
    const char *host = check_host(L, 1, "run");
    int opts = opts_at(L, 3, "run");
    lua_settop(L, 3);
    push_remote_argv(L, 2, "run"); /* 4 */
    lua_pushfstring(L, "ssh %s %s", host, push_words(L, 4));
    lua_remove(L, -2); /* WORDS */
    const char *command = push_joined(L, 4, quote_always);
    push_client_argv(L, "ssh");
    add_word(L, -1, host);
    add_word(L, -1, command);
    lua_remove(L, -2); /* CLIENT */
    return run_client(L, opts);
}

/* ssh.copy(src, host, dest [, opts]) -> { code, ok, stdout, stderr, time }
 * through scp: the file streams (nothing of it is held in memory), and in
 * OpenSSH's SFTP mode (the default since 9.0) dest is a path, never parsed
 * by a remote shell.  It shares the master ssh.run opened. */
static int l_copy(lua_State *L)
{
    const char *src = check_path(L, 1, "src");
    const char *host = check_host(L, 2, "copy");
    const char *dest = check_path(L, 3, "dest");
    int opts = opts_at(L, 4, "copy");
    lua_settop(L, 4);
    lua_pushfstring(L, "scp %s %s:%s", src, host, dest); /* WORDS */
    push_client_argv(L, "scp");                          /* CLIENT */
    /* a relative path with a colon would name a host: anchor it */
    if (*src != '/')
        lua_pushfstring(L, "./%s", src);
    else
        lua_pushstring(L, src);
    lua_rawseti(L, CLIENT, (lua_Integer)lua_rawlen(L, CLIENT) + 1);
    lua_pushfstring(L, "%s:%s", host, dest);
    lua_rawseti(L, CLIENT, (lua_Integer)lua_rawlen(L, CLIENT) + 1);
    return run_client(L, opts);
}

/* ---- descriptions ------------------------------------------------------------ */

static void run_describe(lua_State *L, rb_action *a)
{
    const char *host = check_host(L, 1, "run");
    a->opts = opts_at(L, 3, "run");
    push_remote_argv(L, 2, "run");
    int remote = lua_gettop(L);
    const char *words = push_words(L, remote);
    rb_action_set(L, a, "verb", "run");
    rb_action_set(L, a, "target", "%s", host);
    rb_action_set(L, a, "words", "ssh %s %s", host, words);
    a->cls = rb_classify_argv(L, remote);
    rb_field_str(L, "host", host);
    rb_field_str(L, "command", words);
    lua_pushvalue(L, remote);
    rb_field_set(L, "argv");
}

static void copy_describe(lua_State *L, rb_action *a)
{
    const char *src = check_path(L, 1, "src");
    const char *host = check_host(L, 2, "copy");
    const char *dest = check_path(L, 3, "dest");
    a->opts = opts_at(L, 4, "copy");
    rb_action_set(L, a, "verb", "copy");
    rb_action_set(L, a, "target", "%s", host);
    rb_action_set(L, a, "words", "scp %s %s:%s", src, host, dest);
    a->cls = RB_MUTATE;
    rb_field_str(L, "src", src);
    rb_field_str(L, "host", host);
    rb_field_str(L, "dest", dest);
}

/* ---- fan-out and inventory ------------------------------------------------------ */

/* Push the hosts of inventory group `group` (a new list). */
static void push_group(lua_State *L, const char *group)
{
    int type = rb_config_get(L, "ssh", "inventory");
    if (type == LUA_TNIL)
        luaL_error(L, "ssh.hosts: no inventory: runbook.yaml has no ssh.inventory "
                      "(a mapping of group name -> list of hosts)");
    if (type != LUA_TTABLE)
        luaL_error(L,
                   "runbook.yaml: ssh.inventory must be a mapping of group name -> list of "
                   "hosts, got %s",
                   luaL_typename(L, -1));
    int inv = lua_gettop(L);
    if (lua_getfield(L, inv, group) != LUA_TTABLE) {
        /* name the groups there are: the likely typo is in sight */
        luaL_Buffer b;
        lua_newtable(L);
        int names = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, inv)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, names, (lua_Integer)lua_rawlen(L, names) + 1);
            }
        }
        luaL_buffinit(L, &b);
        for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, names); i++) {
            lua_rawgeti(L, names, i);
            if (i > 1)
                luaL_addstring(&b, ", ");
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        luaL_error(L, "ssh.hosts: no group '%s' in runbook.yaml ssh.inventory (groups: %s)", group,
                   lua_tostring(L, -1));
    }
    int list = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, list, i) != LUA_TSTRING)
            luaL_error(L, "runbook.yaml: ssh.inventory.%s[%d] must be a host name, got %s", group,
                       (int)i, luaL_typename(L, -1));
        lua_rawseti(L, -2, i);
    }
    lua_replace(L, inv);
    lua_settop(L, inv);
}

/* ssh.hosts(group) -> { host, ... } from runbook.yaml's ssh.inventory */
static int l_hosts(lua_State *L)
{
    push_group(L, luaL_checkstring(L, 1));
    return 1;
}

static int each_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status, (void)ctx;
    return 1;
}

/* ssh.each(hosts_or_group, fn [, { concurrency, check }]) -> results in
 * order: fn(host) for every host as tasks on the event loop (parallel()). */
static int l_each(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        push_group(L, lua_tostring(L, 1));
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    opts_at(L, 3, "each");
    lua_settop(L, 3);
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, 1); i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
            luaL_argerror(L, 1,
                          lua_pushfstring(L, "hosts[%d] must be a host name, got %s", (int)i,
                                          luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, PARALLEL_KEY);
    lua_insert(L, 1);
    lua_callk(L, 3, 1, 0, each_k);
    return each_k(L, LUA_OK, 0);
}

/* ---- the rows ------------------------------------------------------------------- */

static const rb_field run_fields[] = {
    {"host", RB_STR, RB_KEY}, {"argv", RB_LIST, RB_KEY}, {"command", RB_STR, RB_MATCH}, {NULL}};
static const rb_field copy_fields[] = {
    {"src", RB_STR, RB_MATCH}, {"host", RB_STR, RB_KEY}, {"dest", RB_STR, RB_KEY}, {NULL}};
#define RESPOND "code stdout stderr error"

void mod_ssh_open(lua_State *L)
{
    /* the options run_client passes on (check; timeout and stdin to the
     * client); readonly for run only: a copy is always a change */
    static const rb_fn fns[] = {
        {.name = "run",
         .fn = l_run,
         .cls = RB_BY_ARGS,
         .describe = run_describe,
         .simulate = rb_process_simulated,
         .fields = run_fields,
         .respond = RESPOND,
         .answer = rb_process_answer,
         .recorded = rb_process_recorded,
         .sig = "host:str argv:table opts?:opts",
         .options = "check timeout stdin readonly"},
        {.name = "copy",
         .fn = l_copy,
         .cls = RB_MUTATE,
         .describe = copy_describe,
         .simulate = rb_process_simulated,
         .fields = copy_fields,
         .respond = RESPOND,
         .answer = rb_process_answer,
         .recorded = rb_process_recorded,
         .sig = "src:str host:str dest:str opts?:opts",
         .options = "check timeout"},
        /* each's options are parallel()'s */
        {.name = "each",
         .fn = l_each,
         .cls = RB_PURE,
         .sig = "hosts:table|str fn:fn opts?:opts",
         .options = "concurrency check"},
        {.name = "hosts", .fn = l_hosts, .cls = RB_PURE, .sig = "group:str"},
        {.name = NULL}};
    rb_register(L, "ssh", fns);
    /* the engine's parallel(), as it is now: a runbook may shadow the global */
    lua_getglobal(L, "parallel");
    lua_setfield(L, LUA_REGISTRYINDEX, PARALLEL_KEY);
}
