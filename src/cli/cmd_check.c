/*
 * `runbook check FILE|DIR...`: static validation without running anything.
 *   1. the file loads in listing mode: Lua syntax, runbook{} metadata, param
 *      declarations (types, defaults of the declared type), step options;
 *   2. luacheck (Debian's lua-check, a well-kept Lua linter) reads the source
 *      for reads of undefined globals and unknown fields of our modules
 *      (`htp.get`, `fs.raed`).  Its idea of "defined" is taken from the live
 *      engine's globals, so it is never out of date with the primitives.
 * Problems print as file:line:col: message; exit 1 when there are any.
 */
#include "commands.h"
#include "engine.h"
#include "jsonw.h"
#include "library.h"
#include "modules.h"
#include "rbfile.h"
#include "schedule.h"
#include "signature.h"
#include "util.h"
#include <lualib.h>

#include "judge.h"
#include "scenario.h"

#include <ctype.h>
#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int engine_is_denied(lua_State *L, int idx);

/* Runs in a plain (trusted) Lua state holding luacheck.  Arguments: the
 * source and the globals spec; returns a list of { line, column, code, msg }
 * or nil, reason. */
static const char LINT[] =
    "local src, spec = ...\n"
    "for _, v in ipairs{'5.4','5.3','5.1'} do\n"
    "  package.path = package.path .. ';/usr/share/lua/' .. v .. '/?.lua;/usr/share/lua/'\n"
    "    .. v .. '/?/init.lua'\n"
    "end\n"
    "local ok, luacheck = pcall(require, 'luacheck')\n"
    "if not ok then return nil, 'luacheck is not installed (apt-get install lua-check)' end\n"
    "local report = luacheck.check_strings({src}, { std = 'none', read_globals = spec.read,\n"
    "  globals = spec.write, max_line_length = false })\n"
    "local out = {}\n"
    "for _, ev in ipairs(report[1]) do\n"
    "  local c = ev.code\n"
    "  if c:match('^0') or c == '111' or c == '112' or c == '113' or c == '143' then\n"
    "    out[#out + 1] = { line = ev.line, column = ev.column, code = c, name = ev.name,\n"
    "      msg = luacheck.get_message(ev), error = c ~= '111' and c ~= '112' }\n"
    "  end\n"
    "end\n"
    "return out\n";

/* The globals a runbook sees, as luacheck's read_globals spec, copied from
 * the engine's global table into the lint state (one level of fields). */
static void push_spec(lua_State *E, lua_State *C)
{
    rb_internal_load(E, "db"); /* db.backup & co. are defined there, loaded on first use */
    lua_newtable(C);           /* spec */
    lua_newtable(C);           /* read */
    lua_pushglobaltable(E);
    lua_pushnil(E);
    while (lua_next(E, -2)) {
        if (lua_type(E, -2) != LUA_TSTRING || engine_is_denied(E, -1)) {
            lua_pop(E, 1);
            continue;
        }
        lua_pushstring(C, lua_tostring(E, -2));
        if (lua_istable(E, -1)) {
            lua_newtable(C);
            lua_newtable(C); /* fields */
            lua_pushnil(E);
            while (lua_next(E, -2)) {
                if (lua_type(E, -2) == LUA_TSTRING && !engine_is_denied(E, -1)) {
                    lua_pushstring(C, lua_tostring(E, -2));
                    lua_newtable(C);
                    if (lua_istable(E, -1)) { /* json.null, package.loaded...: anything below */
                        lua_pushboolean(C, 1);
                        lua_setfield(C, -2, "other_fields");
                    }
                    lua_rawset(C, -3);
                }
                lua_pop(E, 1);
            }
            lua_setfield(C, -2, "fields");
        } else {
            lua_newtable(C);
        }
        lua_rawset(C, -3);
        lua_pop(E, 1);
    }
    lua_pop(E, 1);
    static const char *const declared[] = {"runbook", "step", "params", NULL};
    for (int i = 0; declared[i]; i++) {
        lua_newtable(C);
        lua_pushboolean(C, 1);
        lua_setfield(C, -2, "other_fields");
        lua_setfield(C, -2, declared[i]);
    }
    lua_setfield(C, -2, "read");
    lua_newtable(C); /* write: state is the runbook's to fill */
    lua_newtable(C);
    lua_pushboolean(C, 1);
    lua_setfield(C, -2, "other_fields");
    lua_setfield(C, -2, "state");
    lua_setfield(C, -2, "write");
}

typedef struct problems {
    int errors, warnings, json, lint_missing;
} problems;

static void report(problems *p, const char *file, int line, int col, const char *code,
                   const char *msg, int is_error)
{
    if (is_error)
        p->errors++;
    else
        p->warnings++;
    if (p->json) {
        jsonw w;
        jw_init(&w);
        jw_obj(&w);
        jw_kstr(&w, "file", file);
        jw_kint(&w, "line", line);
        jw_kint(&w, "column", col);
        jw_kstr(&w, "code", code);
        jw_kstr(&w, "severity", is_error ? "error" : "warning");
        jw_kstr(&w, "message", msg);
        jw_obj_end(&w);
        puts(jw_str_result(&w));
        jw_free(&w);
    } else {
        printf("%s:%d:%d: %s: %s\n", file, line, col, is_error ? "error" : "warning", msg);
    }
}

/* A load error already reads "file:line: message" (or "file: message"). */
static void report_load_error(problems *p, const char *file, const char *msg, int is_error)
{
    size_t fl = strlen(file);
    int line = 1;
    const char *rest = msg;
    if (strncmp(msg, file, fl) == 0 && msg[fl] == ':') {
        rest = msg + fl + 1;
        char *end;
        long l = strtol(rest, &end, 10);
        if (end != rest && *end == ':') {
            line = (int)l;
            rest = end + 1;
        }
        while (*rest == ' ')
            rest++;
    }
    report(p, file, line, 1, "load", rest, is_error);
}

/* The rule (README, the stdlib paragraph): a stdlib module is required,
 * never a global -- so a read of the undefined global `prometheus` (luacheck's
 * 113) is a missing require, and says which line to add.  NULL otherwise. */
static const char *stdlib_hint(lua_State *E, const char *code, const char *name, char *buf,
                               size_t n)
{
    if (!code || !name || strcmp(code, "113") != 0)
        return NULL;
    int top = lua_gettop(E);
    lua_getglobal(E, "package");
    int found = lua_istable(E, -1) && lua_getfield(E, -1, "preload") == LUA_TTABLE &&
                lua_getfield(E, -1, name) != LUA_TNIL;
    lua_settop(E, top);
    if (!found || strcmp(name, "stdlib_support") == 0)
        return NULL;
    snprintf(buf, n, "'%s' is a stdlib module: local %s = require \"%s\"", name, name, name);
    return buf;
}

/* ---- unknown option keys (src/lua/lint_options.lua) ---- */
struct rb_stdlib_file {
    const char *name;
    const char *src;
    size_t len;
};
extern const struct rb_stdlib_file rb_internal_files[];
extern const struct rb_stdlib_file rb_stdlib_files[];

/* bind(sig, kinds) -> { [i] = true } for the options argument, or nil */
static int lint_bind(lua_State *C)
{
    const char *sig = luaL_checkstring(C, 1);
    int kinds[64], opts_of[64];
    int n = (int)lua_rawlen(C, 2);
    if (n > 64)
        return 0;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(C, 2, i + 1);
        kinds[i] = (int)lua_tointeger(C, -1);
        lua_pop(C, 1);
    }
    if (sig_options_arg(sig, kinds, n, opts_of) != 0)
        return 0;
    lua_newtable(C);
    for (int i = 0; i < n; i++)
        if (opts_of[i]) {
            lua_pushboolean(C, 1);
            lua_rawseti(C, -2, i + 1);
        }
    return 1;
}

/* near(word, "a b c") -> the closest, as the run-time message says it */
static int lint_near(lua_State *C)
{
    const char *word = luaL_checkstring(C, 1);
    char store[1024];
    snprintf(store, sizeof store, "%s", luaL_checkstring(C, 2));
    const char *cand[64];
    int n = 0;
    for (char *save, *k = strtok_r(store, " ", &save); k && n < 64; k = strtok_r(NULL, " ", &save))
        cand[n++] = k;
    const char *best = rb_did_you_mean(word, cand, n);
    if (!best)
        return 0;
    lua_pushstring(C, best);
    return 1;
}

/* Every signature the engine declares, the stdlib's included (its modules
 * declare theirs when required), as { name = { sig, options } } in C. */
static void require_quietly(lua_State *E, const char *name, size_t len)
{
    int top = lua_gettop(E);
    /* a module that calls a primitive as it loads is not the next file's
     * top-level code: its refusal must not be reported against that file */
    rb_engine *engine = rb_engine_of(E);
    int refused = engine->list_refused;
    lua_getglobal(E, "require");
    lua_pushlstring(E, name, len);
    (void)lua_pcall(E, 1, 0, 0); /* one that fails to load declares nothing */
    engine->list_refused = refused;
    lua_settop(E, top);
}

/* The modules the source requires by a literal name (`require "calendar"`,
 * `require("calendar")`): a library's lib/ modules declare their functions
 * with signature.wrap when they load, in the engine that lists, where the
 * primitives they call at load time only pretend. */
static void require_modules_of(lua_State *E, const char *src, size_t len)
{
    for (const char *p = src, *end = src + len; (p = memmem(p, (size_t)(end - p), "require", 7));) {
        p += 7;
        while (p < end && (*p == ' ' || *p == '('))
            p++;
        if (p >= end || (*p != '"' && *p != '\''))
            continue;
        const char *name = ++p;
        while (p < end && (isalnum((unsigned char)*p) || strchr("_.-/", *p)))
            p++;
        if (p < end && *p == name[-1] && p > name)
            require_quietly(E, name, (size_t)(p - name));
    }
}

static void push_signatures(lua_State *E, lua_State *C, const char *src, size_t len)
{
    int top = lua_gettop(E);
    for (const struct rb_stdlib_file *f = rb_stdlib_files; f->name; f++)
        require_quietly(E, f->name, strlen(f->name));
    require_modules_of(E, src, len);
    lua_newtable(C);
    sig_push_all(E);
    lua_pushnil(E);
    while (lua_next(E, -2)) {
        if (lua_type(E, -2) == LUA_TSTRING && lua_istable(E, -1)) {
            lua_createtable(C, 0, 2);
            lua_getfield(E, -1, "sig");
            lua_pushstring(C, lua_tostring(E, -1));
            lua_setfield(C, -2, "sig");
            lua_getfield(E, -2, "options");
            lua_pushstring(C, lua_tostring(E, -1));
            lua_setfield(C, -2, "options");
            lua_pop(E, 2);
            lua_setfield(C, -2, lua_tostring(E, -2));
        }
        lua_pop(E, 1);
    }
    lua_settop(E, top);
}

static void lint_options(problems *p, lua_State *E, lua_State *C, const char *file, const char *src,
                         size_t len)
{
    const struct rb_stdlib_file *f = rb_internal_files;
    while (f->name && strcmp(f->name, "lint_options") != 0)
        f++;
    if (!f->name || luaL_loadbuffer(C, f->src, f->len, "=lint_options") != LUA_OK) {
        lua_pop(C, 1);
        return;
    }
    lua_pushlstring(C, src, len);
    push_signatures(E, C, src, len);
    lua_pushcfunction(C, lint_bind);
    lua_pushcfunction(C, lint_near);
    if (lua_pcall(C, 4, 1, 0) != LUA_OK) {
        report(p, file, 1, 1, "lint", lua_tostring(C, -1), 0);
        lua_pop(C, 1);
        return;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(C, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(C, -1, i);
        lua_getfield(C, -1, "line");
        lua_getfield(C, -2, "column");
        lua_getfield(C, -3, "msg");
        report(p, file, (int)lua_tointeger(C, -3), (int)lua_tointeger(C, -2), "option",
               lua_tostring(C, -1), 1);
        lua_pop(C, 4);
    }
    lua_pop(C, 1);
}

static void lint(problems *p, lua_State *E, const char *file)
{
    size_t len;
    char *src = rb_read_file(file, &len);
    if (!src)
        return;
    lua_State *C = luaL_newstate();
    luaL_openlibs(C);
    if (luaL_loadbuffer(C, LINT, sizeof LINT - 1, "=lint") != LUA_OK) {
        lua_close(C);
        free(src);
        return;
    }
    size_t start = rb_lua_source(src, len);
    lua_pushlstring(C, src + start, len - start);
    push_spec(E, C);
    if (lua_pcall(C, 2, 2, 0) != LUA_OK) {
        report(p, file, 1, 1, "lint", lua_tostring(C, -1), 0);
    } else if (lua_isnil(C, -2)) {
        p->lint_missing = 1;
    } else {
        lua_pop(C, 1);
        lua_Integer n = (lua_Integer)lua_rawlen(C, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(C, -1, i);
            lua_getfield(C, -1, "line");
            lua_getfield(C, -2, "column");
            lua_getfield(C, -3, "code");
            lua_getfield(C, -4, "msg");
            lua_getfield(C, -5, "error");
            lua_getfield(C, -6, "name");
            char hint[512];
            const char *msg =
                stdlib_hint(E, lua_tostring(C, -4), lua_tostring(C, -1), hint, sizeof hint);
            report(p, file, (int)lua_tointeger(C, -6), (int)lua_tointeger(C, -5),
                   lua_tostring(C, -4), msg ? msg : lua_tostring(C, -3), lua_toboolean(C, -2));
            lua_pop(C, 7);
        }
        lua_pop(C, 1);
        lint_options(p, E, C, file, src + start, len - start);
    }
    free(src);
    lua_close(C);
}

/* The line of the first occurrence of needle in text (1 when absent). */
static int line_of(const char *text, const char *needle)
{
    const char *at = text ? strstr(text, needle) : NULL;
    int line = 1;
    for (const char *p = text; at && p < at; p++)
        line += *p == '\n';
    return line;
}

/* run_runbook("NAME", ...) with a literal NAME must name a runbook that exists */
static void check_run_runbook(problems *p, const char *file)
{
    size_t len;
    char *src = rb_read_file(file, &len);
    if (!src)
        return;
    for (const char *at = src; (at = strstr(at, "run_runbook")) != NULL; at += 11) {
        const char *q = at + 11;
        while (*q == ' ' || *q == '\t' || *q == '(')
            q++;
        if (*q != '"' && *q != '\'')
            continue;
        const char *end = strchr(q + 1, *q);
        if (!end || end - q > 1024)
            continue;
        char name[1100], found[4096];
        snprintf(name, sizeof name, "%.*s", (int)(end - q - 1), q + 1);
        if (rbfile_find(name, found, sizeof found) != 0) {
            int line = 1;
            const char *bol = src;
            for (const char *c = src; c < at; c++)
                if (*c == '\n') {
                    line++;
                    bol = c + 1;
                }
            char msg[1300];
            snprintf(msg, sizeof msg,
                     "run_runbook: no runbook named '%s' (looked for a file, then in ./runbooks, "
                     "RUNBOOK_PATH and the installed library)",
                     name);
            report(p, file, line, (int)(at - bol) + 1, "run_runbook", msg, 1);
        }
    }
    free(src);
}

/* runbook{ schedule = ... }: what `runbook schedule` accepts (schedule.h),
 * reported at the `schedule =` of the file.  The runbook object is at -1. */
static void check_schedule(problems *p, lua_State *L, const char *file)
{
    lua_getfield(L, -1, "meta");
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "schedule");
    rb_schedule s;
    char err[512];
    if (lua_type(L, -1) == LUA_TSTRING &&
        rb_schedule_parse(lua_tostring(L, -1), lua_tostring(L, -2), &s, err, sizeof err) < 0) {
        size_t len;
        char *src = rb_read_file(file, &len);
        /* the key: `schedule =` first on its line, or after { or , */
        const char *at = src, *bol = src;
        int line = 1;
        for (; at && *at; at++) {
            if (*at == '\n') {
                line++, bol = at + 1;
                continue;
            }
            if (strncmp(at, "schedule", 8) != 0)
                continue;
            const char *q = at + 8, *b = at;
            while (*q == ' ' || *q == '\t')
                q++;
            while (b > bol && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            if (*q == '=' && q[1] != '=' && (b == bol || b[-1] == '{' || b[-1] == ','))
                break;
        }
        if (at && !*at)
            at = NULL, line = 1;
        report(p, file, line, at ? (int)(at - bol) + 1 : 1, "schedule", err, 1);
        free(src);
    }
    lua_pop(L, 3);
}

/* expect.actions / not_actions patterns that can never match an action of
 * the runbook (the judge decides: rt.scenario_unmatchable) -- a warning, since
 * the scenario runs, but such a not_actions passes whatever the runbook does. */
/* Append the *.lua files of dir to the string on top of J, each after a
 * newline (one string: a library has more files than J's stack has slots). */
static void add_lua_files(lua_State *J, const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        size_t k = strlen(e->d_name), len;
        if (k < 5 || strcmp(e->d_name + k - 4, ".lua") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%.4000s/%.255s", dir, e->d_name);
        char *src = rb_read_file(path, &len);
        if (!src)
            continue;
        lua_pushliteral(J, "\n");
        lua_pushlstring(J, src, len);
        free(src);
        lua_concat(J, 3);
    }
    if (d)
        closedir(d);
}

static void check_patterns(problems *p, lua_State *L, lua_State *J, const char *file,
                           const char *rbpath)
{
    size_t len;
    char *src = rb_read_file(rbpath, &len);
    char why[1024];
    lua_pushstring(J, src ? src : "");
    free(src);
    /* and its library's modules (a program it runs through require "x"),
     * and the runbooks beside it (run_runbook's actions are its run's too) */
    char here[4096];
    snprintf(here, sizeof here, "%s", rbpath);
    char *slash = strrchr(here, '/');
    if (slash)
        *slash = '\0';
    add_lua_files(J, slash ? here : ".");
    if (rbfile_use_root_of(L, rbpath) == 0) {
        static const char *const libs[] = {"runbooks/lib", "lib"};
        for (int i = 0; i < 2; i++) {
            char dir[4200];
            snprintf(dir, sizeof dir, "%.4000s/%s", rbfile_root(), libs[i]);
            add_lua_files(J, dir);
        }
    }
    if (judge_call(J, "scenario_unmatchable", 1, 1, why, sizeof why) != 0) {
        report(p, file, 1, 1, "scenario", why, 0);
        return;
    }
    lua_Integer n = lua_istable(J, -1) ? (lua_Integer)lua_rawlen(J, -1) : 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(J, -1, i);
        lua_getfield(J, -1, "key");
        lua_getfield(J, -2, "pattern");
        lua_getfield(J, -3, "line");
        const char *key = lua_tostring(J, -3), *pat = lua_tostring(J, -2);
        char msg[1200];
        snprintf(msg, sizeof msg,
                 "%s pattern '%.300s' can never match: a pattern is compared from the action's "
                 "first word, which is its primitive (\"db exec URL: SQL\", \"kubectl scale "
                 "...\"), HTTP method or program (\"systemctl restart ...\"); did you mean "
                 "'*%.300s%s'?",
                 key, pat, pat, pat[0] && pat[strlen(pat) - 1] == '*' ? "" : "*");
        report(p, file, (int)lua_tointeger(J, -1), 1, "scenario", msg, 0);
        lua_pop(J, 4);
    }
    lua_pop(J, 1);
}

/* The scenario (at sc) gives only params the runbook (at -1) declares. */
static void check_params(problems *p, lua_State *L, int sc, const char *file, const char *text,
                         const char *rbpath)
{
    int rb = lua_gettop(L);
    lua_getfield(L, rb, "meta");
    lua_getfield(L, -1, "params");
    int declared = lua_gettop(L);
    lua_getfield(L, sc, "params");
    lua_pushnil(L);
    while (lua_istable(L, -2) && lua_next(L, -2)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        if (!lua_istable(L, declared) || lua_rawget(L, declared) == LUA_TNIL) {
            char msg[5000], needle[300];
            snprintf(msg, sizeof msg, "params.%s: runbook %s declares no param '%s'",
                     lua_tostring(L, -2), rbpath, lua_tostring(L, -2));
            snprintf(needle, sizeof needle, "%s:", lua_tostring(L, -2));
            report(p, file, line_of(text, needle), 1, "scenario", msg, 1);
        }
        lua_pop(L, 1);
    }
}

/* A scenario: it loads (YAML, its schema), names a runbook that exists, and
 * gives only params that runbook declares. */
static void check_scenario(problems *p, rb_engine *E, const char *file)
{
    lua_State *L = E->L;
    size_t len;
    char *text = rb_read_file(file, &len);
    rb_purpose purpose = E->purpose;
    E->purpose = PURPOSE_RUN; /* reading the scenario (yaml.load, fs.read) is reading */
    FILE *out = E->out, *quiet = fopen("/dev/null", "w"); /* ... and says nothing */
    if (quiet)
        E->out = quiet;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    /* the judge reads it, in its own state; what it made of it comes back
     * as data, or its message */
    lua_State *J = judge_new(L);
    char why[1024] = "the scenario judge could not start";
    int ok = J != NULL;
    if (ok) {
        lua_pushstring(J, dir);
        ok = judge_call(J, "scenario_dir", 1, 0, why, sizeof why) == 0;
    }
    if (ok) {
        lua_pushstring(J, file);
        ok = judge_call(J, "scenario_load", 1, 2, why, sizeof why) == 0;
    }
    if (ok) {
        judge_copy(J, -2, L, 0);
        judge_copy(J, -1, L, 0);
    } else {
        lua_pushstring(L, why);
    }
    E->purpose = purpose;
    E->out = out;
    if (quiet)
        fclose(quiet);
    if (!ok || lua_isnil(L, -2)) {
        /* "file:line: message" when the loader could place it */
        report_load_error(p, file, lua_isstring(L, -1) ? lua_tostring(L, -1) : "cannot load", 1);
    } else {
        int sc = lua_gettop(L) - 1;
        lua_getfield(L, sc, "runbook");
        char rbpath[4096];
        if (scenario_find_runbook(file, lua_tostring(L, -1), rbpath, sizeof rbpath) != 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "runbook: no runbook named '%s'", lua_tostring(L, -1));
            report(p, file, line_of(text, "runbook:"), 1, "scenario", msg, 1);
        } else {
            check_patterns(p, L, J, file, rbpath);
            if (rbfile_load(L, rbpath, 0) == 0)
                check_params(p, L, sc, file, text, rbpath);
        }
    }
    judge_free(J);
    lua_settop(L, 0);
    free(text);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_scenario(const char *path)
{
    size_t n = strlen(path), k = strlen(".scenario.yaml");
    return n > k && strcmp(path + n - k, ".scenario.yaml") == 0;
}

static file_list *scenario_walk;
static int walk_scenarios(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)f;
    if (flag == FTW_F && is_scenario(path)) {
        char **np = realloc(scenario_walk->paths, (size_t)(scenario_walk->n + 1) * sizeof *np);
        if (np) {
            scenario_walk->paths = np;
            np[scenario_walk->n++] = strdup(path);
        }
    }
    return 0;
}

int cmd_check(int argc, char **argv)
{
    file_list scenarios = {0};
    scenario_walk = &scenarios;
    problems p = {0};
    file_list files = {0};
    int explicit = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            p.json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: runbook check [--json] FILE|DIR...\n\n"
                 "Validate runbooks without running them: Lua syntax, runbook{} metadata,\n"
                 "param declarations, step options, reads of undefined globals and unknown\n"
                 "functions of the primitives (with luacheck), run_runbook targets that do\n"
                 "not exist, and scenarios (*.scenario.yaml): their YAML and keys, the\n"
                 "runbook they name and the params they give; schedule values (hourly,\n"
                 "daily, weekly, monthly, on demand, 5-field cron).  Directories are searched\n"
                 "for *.lua (lib/ and tests/ are skipped) and *.scenario.yaml.  Default:\n"
                 "./runbooks.\n"
                 "Prints file:line:col: problems; exit 1 when there is an error.\n\n"
                 "  --json      one JSON object per problem (file, line, column, code,\n"
                 "              severity, message), for CI annotations");
            file_list_free(&files);
            return 0;
        } else if (argv[i][0] == '-') {
            static const char *const known[] = {"json", "help", NULL};
            file_list_free(&files);
            return unknown_flag("check", argv[i], known);
        } else {
            explicit = 1;
            struct stat st;
            if (stat(argv[i], &st) != 0) {
                file_list_free(&files);
                return usage_error("check: %s: no such file or directory", argv[i]);
            }
            if (S_ISDIR(st.st_mode)) {
                library_scan(argv[i], &files);
                nftw(argv[i], walk_scenarios, 16, FTW_PHYS);
            } else if (is_scenario(argv[i])) {
                walk_scenarios(argv[i], &st, FTW_F, NULL);
            } else {
                char **np = realloc(files.paths, (size_t)(files.n + 1) * sizeof *np);
                char *copy = strdup(argv[i]);
                if (!np || !copy) {
                    free(copy);
                    return 2;
                }
                files.paths = np;
                files.paths[files.n++] = copy;
                files.cap = files.n;
            }
        }
    }
    if (!explicit)
        nftw("runbooks", walk_scenarios, 16, FTW_PHYS);
    if (!explicit && library_scan("runbooks", &files) != 0) {
        file_list_free(&files);
        return usage_error("check: which files? (runbook check FILE|DIR...)");
    }
    rb_engine *E = library_engine(rb_builtin_modules);
    if (!E) {
        file_list_free(&files);
        return 2;
    }
    for (int i = 0; i < files.n; i++) {
        lua_State *L = E->L;
        if (rbfile_load(L, files.paths[i], 0) != 0) {
            report_load_error(&p, files.paths[i], lua_tostring(L, -1), 1);
        } else {
            check_schedule(&p, L, files.paths[i]);
            if (lua_getfield(L, -1, "load_error") == LUA_TSTRING) /* legal, but it acts before
                                                                     any step: worth a step */
                report_load_error(&p, files.paths[i], lua_tostring(L, -1), 0);
        }
        lua_settop(L, 0);
        lint(&p, L, files.paths[i]);
        check_run_runbook(&p, files.paths[i]);
    }
    if (scenarios.n > 1)
        qsort(scenarios.paths, (size_t)scenarios.n, sizeof *scenarios.paths, by_name);
    for (int i = 0; i < scenarios.n; i++)
        check_scenario(&p, E, scenarios.paths[i]);
    if (!p.json) {
        if (p.lint_missing)
            fprintf(stderr, "runbook: note: luacheck is not installed, so undefined globals were "
                            "not checked (apt-get install lua-check)\n");
        int nf = files.n + scenarios.n;
        printf("%d file%s checked: %d error%s, %d warning%s\n", nf, nf == 1 ? "" : "s", p.errors,
               p.errors == 1 ? "" : "s", p.warnings, p.warnings == 1 ? "" : "s");
    }
    engine_free(E);
    file_list_free(&files);
    file_list_free(&scenarios);
    return p.errors ? 1 : 0;
}
