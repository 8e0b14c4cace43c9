/*
 * `runbook reference [--json] [--missing]`: every function a runbook can
 * call, with its arguments and the keys its options table takes, printed
 * from the same declarations every call is checked against (signature.h),
 * so the page cannot drift from what the engine accepts.  docs/reference.md
 * is its output.  --missing lists the functions a runbook can reach that
 * declare no signature (exit 1 when there are any): the test that keeps
 * "every function checks its arguments" true.
 */
#include "commands.h"
#include "engine.h"
#include "jsonw.h"
#include "library.h"
#include "modules.h"
#include "signature.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rb_stdlib_file {
    const char *name;
    const char *src;
    size_t len;
};
extern const struct rb_stdlib_file rb_stdlib_files[];
int engine_is_denied(lua_State *L, int idx);

static const char help[] =
    "usage: runbook reference [--json] [--missing]\n"
    "\n"
    "Every function a runbook can call: its arguments and the keys its options\n"
    "table takes, from the declarations each call is checked against (an\n"
    "unknown key raises \"unknown option 'timout' for http.get (did you mean\n"
    "'timeout'?)\"; `runbook check` finds them without running).\n"
    "\n"
    "  --json      one JSON object per function: name, usage, sig, options\n"
    "  --missing   list the functions a runbook can reach that declare no\n"
    "              signature; exit 1 when there are any\n";

/* Lua's own library: it checks its arguments itself */
static const char *const LUA_OWN[] = {"assert",       "collectgarbage",
                                      "error",        "getmetatable",
                                      "ipairs",       "load",
                                      "next",         "pairs",
                                      "pcall",        "rawequal",
                                      "rawget",       "rawlen",
                                      "rawset",       "select",
                                      "setmetatable", "tonumber",
                                      "tostring",     "type",
                                      "xpcall",       "require",
                                      "string",       "table",
                                      "math",         "os",
                                      "io",           "coroutine",
                                      "utf8",         "debug",
                                      "package",      "_G",
                                      "warn",         NULL};

static int lua_own(const char *name)
{
    for (int i = 0; LUA_OWN[i]; i++)
        if (strcmp(LUA_OWN[i], name) == 0)
            return 1;
    return 0;
}

/* Load what is declared on first use: the stdlib's modules (as
 * package.loaded entries) and the primitives' Lua halves. */
static void load_everything(lua_State *L)
{
    rb_internal_load(L, "db"); /* db.backup & co., the compose object's methods */
    rb_internal_load(L, "docker");
    for (const struct rb_stdlib_file *f = rb_stdlib_files; f->name; f++) {
        if (strcmp(f->name, "stdlib_support") == 0)
            continue;
        lua_getglobal(L, "require");
        lua_pushstring(L, f->name);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK)
            fprintf(stderr, "runbook: reference: %s: %s\n", f->name, lua_tostring(L, -1));
        lua_settop(L, 0);
    }
}

/* One function at the top of the stack, reached as `name`: a line when it
 * declares nothing. */
static int missing_one(lua_State *L, int by_fn, const char *name)
{
    if (!lua_isfunction(L, -1))
        return 0;
    lua_pushvalue(L, -1);
    int declared = lua_rawget(L, by_fn) != LUA_TNIL;
    lua_pop(L, 1);
    if (!declared)
        printf("%s\n", name);
    return !declared;
}

/* The functions of table t (one level), reached as prefix.key. */
static int missing_in(lua_State *L, int by_fn, int t, const char *prefix)
{
    int n = 0;
    t = lua_absindex(L, t);
    rb_push_sorted_keys(L, t);
    int keys = lua_gettop(L);
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, keys); i++) {
        lua_rawgeti(L, keys, i);
        const char *k = lua_tostring(L, -1);
        lua_getfield(L, t, k);
        char name[256];
        snprintf(name, sizeof name, "%s.%s", prefix, k);
        if (k[0] != '_')
            n += missing_one(L, by_fn, name);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return n;
}

static int list_missing(lua_State *L)
{
    sig_push_by_function(L);
    int by_fn = lua_gettop(L);
    int n = 0;
    lua_pushglobaltable(L);
    rb_push_sorted_keys(L, -1);
    int keys = lua_gettop(L);
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, keys); i++) {
        lua_rawgeti(L, keys, i);
        const char *k = lua_tostring(L, -1);
        lua_getfield(L, keys - 1, k);
        if (!lua_own(k) && k[0] != '_' && !engine_is_denied(L, -1)) {
            if (lua_istable(L, -1))
                n += missing_in(L, by_fn, -1, k);
            else
                n += missing_one(L, by_fn, k);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 2);
    /* the stdlib's modules are required, never globals */
    for (const struct rb_stdlib_file *f = rb_stdlib_files; f->name; f++) {
        if (strcmp(f->name, "stdlib_support") == 0)
            continue;
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "loaded");
        if (lua_getfield(L, -1, f->name) == LUA_TTABLE)
            n += missing_in(L, by_fn, -1, f->name);
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    return n;
}

/* Can a runbook call name?  A row registered for a module's own use
 * (docker.compose_ps, reached through docker.compose(...):ps()) has a
 * signature but is not in the module's table. */
static int reachable(lua_State *L, const char *name)
{
    size_t ml = strcspn(name, ".");
    if (!name[ml] || strchr(name, ':'))
        return 1;
    int top = lua_gettop(L);
    lua_pushlstring(L, name, ml);
    const char *mod = lua_tostring(L, -1);
    int t = lua_getglobal(L, mod);
    if (t != LUA_TTABLE) {
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "loaded");
        t = lua_getfield(L, -1, mod);
    }
    int found = t == LUA_TTABLE && lua_getfield(L, -1, name + ml + 1) != LUA_TNIL;
    lua_settop(L, top);
    return found;
}

static void print_entry(lua_State *L, int all, const char *name, int json, char *group, size_t gn)
{
    lua_getfield(L, all, name);
    lua_getfield(L, -1, "usage");
    lua_getfield(L, -2, "options");
    lua_getfield(L, -3, "sig");
    const char *usage = lua_tostring(L, -3), *options = lua_tostring(L, -2);
    /* options without an opts parameter: a table after `...` (db:query's
     * trailing options), checked by the row itself */
    int has_opts =
        strstr(lua_tostring(L, -1), ":opts") != NULL || strstr(lua_tostring(L, -1), "...");
    if (json) {
        jsonw w;
        jw_init(&w);
        jw_obj(&w);
        jw_kstr(&w, "name", name);
        jw_kstr(&w, "usage", usage);
        jw_kstr(&w, "sig", lua_tostring(L, -1));
        jw_kstr(&w, "options", has_opts ? options : "");
        jw_obj_end(&w);
        puts(jw_str_result(&w));
        jw_free(&w);
        lua_pop(L, 4);
        return;
    }
    size_t gl = strcspn(name, ".:");
    char g[64];
    /* a module and the methods of its objects are separate sections */
    snprintf(g, sizeof g, "%.*s", name[gl] ? (int)gl + (name[gl] == ':') : 0, name);
    if (strcmp(g, group) != 0) {
        snprintf(group, gn, "%s", g);
        if (!*g)
            printf("\n## Globals\n\n");
        else if (g[strlen(g) - 1] == ':')
            printf("\n## %.*s objects (methods)\n\n", (int)strlen(g) - 1, g);
        else
            printf("\n## %s\n\n", g);
    }
    printf("- `%s`", usage);
    if (has_opts && *options) {
        printf(" — options:");
        char store[1024];
        snprintf(store, sizeof store, "%s", options);
        for (char *save, *k = strtok_r(store, " ", &save); k; k = strtok_r(NULL, " ", &save))
            printf(" `%s`", k);
    }
    printf("\n");
    lua_pop(L, 4);
}

/* name -> { sig, options, usage } as a page, grouped by what precedes the
 * first `.` or `:` (globals first). */
static void print_page(lua_State *L, int json)
{
    sig_push_all(L);
    int all = lua_gettop(L);
    rb_push_sorted_keys(L, all);
    int keys = lua_gettop(L);
    if (!json)
        printf("# Function reference\n\n"
               "Generated by `runbook reference` from the declarations every call is\n"
               "checked against: a missing or misplaced argument raises with the usage line,\n"
               "an options key not listed here raises `unknown option 'timout' for http.get\n"
               "(did you mean 'timeout'?)`, and `runbook check` reports unknown keys in\n"
               "literal option tables without running anything. `[, x]` is optional.\n"
               "Behaviour is described in the README; methods (`db:query`) are called on the\n"
               "object their module returns.\n");
    char group[64] = "\x01";
    for (int pass = 0; pass < 2; pass++) /* the globals, then each module */
        for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, keys); i++) {
            lua_rawgeti(L, keys, i);
            const char *name = lua_tostring(L, -1);
            lua_pop(L, 1); /* still referenced by the keys table */
            if ((name[strcspn(name, ".:")] != '\0') == pass && reachable(L, name))
                print_entry(L, all, name, json, group, sizeof group);
        }
    lua_pop(L, 2);
}

int cmd_reference(int argc, char **argv)
{
    int json = 0, missing = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--missing") == 0) {
            missing = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help, stdout);
            return 0;
        } else {
            static const char *const known[] = {"json", "missing", "help", NULL};
            char hint[160];
            if (*rb_flag_hint(argv[i], known, hint, sizeof hint))
                return usage_error("reference: unknown option '%s'%s", argv[i], hint);
            return usage_error("reference: unexpected argument '%s' (see runbook reference "
                               "--help)",
                               argv[i]);
        }
    }
    rb_engine *E = library_engine(rb_builtin_modules);
    if (!E)
        return 2;
    load_everything(E->L);
    int rc = 0;
    if (missing)
        rc = list_missing(E->L) ? 1 : 0;
    else
        print_page(E->L, json);
    engine_free(E);
    return rc;
}
