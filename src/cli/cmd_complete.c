/*
 * `runbook __complete WORD...`: the candidates for the last WORD of a
 * command line (the words after `runbook`; the last one possibly empty),
 * one per line, for the shell completions in completions/.
 *
 * Nothing here is a second list to keep in step: commands come from main.c's
 * table, a command's flags, their values and its positionals from its own
 * --help (run in a child), runbook names from the library roots as `runbook
 * list` scans them, and a runbook's params and steps from loading it in
 * listing mode, where no primitive runs (library_engine).  No output means
 * "a path, or nothing we know": the shells then complete file names.
 */
#include "commands.h"
#include "config.h"
#include "library.h"
#include "modules.h"
#include "rbfile.h"
#include "util.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FLAGS 64
#define MAX_POS   8
#define MAX_DEPTH 3

typedef struct {
    char name[64];  /* --dry-run, -v */
    char value[64]; /* its metavar (K=V, NAME, text|json), "" for a switch */
} flag;

/* What a command's --help says about its arguments. */
typedef struct {
    flag flags[MAX_FLAGS];
    int nflags;
    char pos[MAX_POS][64]; /* usage positionals: NAME|FILE, FILE, list|show */
    int npos;
    int last_repeats; /* the last positional ends in "..." */
} spec;

/* Candidates, printed sorted and without duplicates once collected. */
typedef struct {
    char **v;
    int n, cap;
} strs;

static const char *cur;             /* the word being completed */
static const struct command *table; /* main.c's commands */

static void add(strs *s, const char *text, size_t len)
{
    if (strncmp(text, cur, strlen(cur)) != 0 || len < strlen(cur))
        return;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        char **nv = realloc(s->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return;
        s->v = nv;
        s->cap = cap;
    }
    char *copy = strndup(text, len);
    if (copy)
        s->v[s->n++] = copy;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_free(strs *s)
{
    qsort(s->v, (size_t)s->n, sizeof *s->v, cmp);
    for (int i = 0; i < s->n; i++)
        if (i == 0 || strcmp(s->v[i], s->v[i - 1]) != 0)
            puts(s->v[i]);
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- a command's --help ------------------------------------------------ */

/* The --help text of path[0..n) (e.g. "audit" "list"), from a child so that
 * whatever the command does besides printing stays out of this process. */
static char *help_text(const struct command *c, char **path, int n)
{
    int fd[2];
    if (n > MAX_DEPTH || pipe(fd) != 0)
        return NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return NULL;
    }
    if (pid == 0) {
        char *args[MAX_DEPTH + 2];
        for (int i = 0; i < n; i++)
            args[i] = path[i];
        args[n] = "--help";
        args[n + 1] = NULL;
        int null = open("/dev/null", O_RDWR);
        dup2(fd[1], 1);
        dup2(null, 0);
        dup2(null, 2);
        close(fd[0]);
        int rc = c->fn(n + 1, args);
        fflush(stdout);
        _exit(rc & 0xff);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char *buf = in ? rb_read_stream(in, NULL) : NULL;
    if (in)
        fclose(in);
    else
        close(fd[0]);
    waitpid(pid, NULL, 0);
    return buf;
}

static flag *find_flag(spec *s, const char *name, size_t len)
{
    for (int i = 0; i < s->nflags; i++)
        if (strlen(s->flags[i].name) == len && strncmp(s->flags[i].name, name, len) == 0)
            return &s->flags[i];
    return NULL;
}

/* Record the flag at p (p[0] == '-'); a value follows after exactly one
 * space ("--env NAME", "[--tag TAG]"), where columns of help are two. */
static const char *take_flag(spec *s, const char *p)
{
    size_t n = strcspn(p, " ,]|\n");
    if (n < 2 || n >= sizeof s->flags[0].name || !isalpha((unsigned char)p[n - 1]))
        return p + n;
    flag *f = find_flag(s, p, n);
    if (!f && s->nflags < MAX_FLAGS) {
        f = &s->flags[s->nflags++];
        memcpy(f->name, p, n);
        f->name[n] = '\0';
        f->value[0] = '\0';
    }
    p += n;
    if (f && p[0] == ' ' && p[1] && !strchr(" |-[\n", p[1])) {
        size_t v = strcspn(p + 1, " ]\n");
        if (!f->value[0] && v < sizeof f->value) {
            memcpy(f->value, p + 1, v);
            f->value[v] = '\0';
        }
        p += 1 + v;
    }
    return p;
}

/* The usage line after "usage: runbook PATH...": option groups ([--x Y])
 * give flags, the rest positionals; a lone lowercase word ("[options]") is
 * prose. */
static void parse_usage(spec *s, const char *p)
{
    int group = 0;
    while (*p && *p != '\n') {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            break;
        if (p[0] == '[' && p[1] == '-')
            group = 1, p++;
        if (group || *p == '-') { /* "--emit systemd|cronjob": a flag, even bare */
            if (*p == '-')
                p = take_flag(s, p);
            else
                p += strcspn(p, " ]\n");
            while (*p == ']')
                group = 0, p++;
            continue;
        }
        size_t n = strcspn(p, " \n");
        char tok[64];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof tok; i++)
            if (p[i] != '[' && p[i] != ']' && p[i] != '.')
                tok[k++] = p[i];
        tok[k] = '\0';
        int lower_word = !strchr(tok, '|') && islower((unsigned char)tok[0]);
        if (k && !lower_word && s->npos < MAX_POS) {
            snprintf(s->pos[s->npos++], sizeof s->pos[0], "%s", tok);
            s->last_repeats = memmem(p, n, "...", 3) != NULL;
        }
        p += n;
    }
}

static void parse_help(spec *s, const char *text, int depth)
{
    memset(s, 0, sizeof *s);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "usage: runbook ", 15) == 0) {
            const char *p = line + 15;
            for (int i = 0; i < depth; i++) /* the command's own words */
                p += strcspn(p, " \n"), p += *p == ' ';
            parse_usage(s, p);
            continue;
        }
        const char *p = line + strspn(line, " ");
        if (p == line || *p != '-')
            continue; /* only an option line's leading flags, not prose */
        p = take_flag(s, p);
        if (p[0] == ',' && p[1] == ' ' && p[2] == '-')
            take_flag(s, p + 2);
    }
    if (!find_flag(s, "--help", 6) && s->nflags < MAX_FLAGS)
        snprintf(s->flags[s->nflags++].name, sizeof s->flags[0].name, "--help");
}

/* ---- values that come from the library, a runbook or the config -------- */

/* Lowercase alternatives "a|b|c" (subcommands, --output text|json). */
static int choices(const char *v, strs *out)
{
    if (!strchr(v, '|'))
        return 0;
    for (const char *c = v; *c; c++)
        if (!islower((unsigned char)*c) && *c != '|' && *c != '-')
            return 0;
    while (*v) {
        size_t n = strcspn(v, "|");
        if (out)
            add(out, v, n);
        v += n + (v[n] == '|');
    }
    return 1;
}

static int is_choice(const char *v, const char *word)
{
    size_t w = strlen(word);
    while (*v) {
        size_t n = strcspn(v, "|");
        if (n == w && strncmp(v, word, n) == 0)
            return 1;
        v += n + (v[n] == '|');
    }
    return 0;
}

/* The names `runbook run NAME` finds: each file's path under its library
 * root, without .lua.  Only directories are read; no runbook is loaded. */
static void runbook_names(strs *out)
{
    file_list roots = {0}, files = {0};
    library_roots(&roots);
    for (int r = 0; r < roots.n; r++) {
        int from = files.n;
        library_scan(roots.paths[r], &files);
        size_t rn = strlen(roots.paths[r]);
        for (int i = from; i < files.n; i++) {
            const char *rel = files.paths[i] + rn + 1;
            add(out, rel, strlen(rel) - 4);
        }
    }
    file_list_free(&roots);
    file_list_free(&files);
}

typedef void (*rb_reader)(lua_State *L, int rb, strs *out);

static void read_params(lua_State *L, int rb, strs *out)
{
    if (lua_getfield(L, rb, "meta") != LUA_TTABLE || lua_getfield(L, -1, "params") != LUA_TTABLE)
        return;
    rb_push_sorted_keys(L, lua_gettop(L));
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        char kv[256];
        int len = snprintf(kv, sizeof kv, "%s=", lua_tostring(L, -1));
        if (len > 0 && (size_t)len < sizeof kv)
            add(out, kv, (size_t)len);
        lua_pop(L, 1);
    }
}

static void read_steps(lua_State *L, int rb, strs *out)
{
    if (lua_getfield(L, rb, "steps") != LUA_TTABLE)
        return;
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_getfield(L, -1, "name") == LUA_TSTRING)
            add(out, lua_tostring(L, -1), lua_rawlen(L, -1));
        lua_pop(L, 2);
    }
}

static void read_environments(lua_State *L, const char *config, strs *out)
{
    rb_config cfg;
    char err[1024];
    if (config_load(&cfg, L, rb_builtin_modules, config, config != NULL, err, sizeof err) != 0)
        return;
    config_push(&cfg, L, NULL, "environments");
    if (lua_istable(L, -1)) {
        rb_push_sorted_keys(L, lua_gettop(L));
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) == LUA_TSTRING)
                add(out, lua_tostring(L, -1), lua_rawlen(L, -1));
            lua_pop(L, 1);
        }
    }
}

/* Load the runbook `name` in listing mode (its top level runs, but every
 * primitive call is refused, as for `runbook show`) with a short deadline, so
 * a TAB never acts nor hangs; what it prints is thrown away. */
static void with_runbook(const char *name, const char *config, rb_reader read, strs *out)
{
    char path[4096];
    if (read && (!name || rbfile_find(name, path, sizeof path) != 0))
        return;
    engine_default_limits((size_t)256 << 20, 2.0, "completion: loading took over 2 s");
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    if (saved < 0 || null < 0) {
        close(saved);
        close(null);
        return;
    }
    dup2(null, 1);
    close(null);
    rb_engine *E = library_engine(rb_builtin_modules);
    if (E) {
        lua_State *L = E->L;
        if (!read)
            read_environments(L, config, out);
        else if (rbfile_load(L, path, 0) == 0)
            read(L, lua_gettop(L), out);
        lua_settop(L, 0);
        engine_free(E);
    }
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
}

/* ---- the command line -------------------------------------------------- */

typedef struct {
    const char *first;  /* the first positional (the runbook of run/show/repl) */
    const char *config; /* --config FILE on the line */
} line_state;

static void complete_value(const flag *f, const line_state *ls, strs *out)
{
    if (strchr(f->value, '=')) {
        if (!strchr(cur, '=')) /* a key; its value is the operator's */
            with_runbook(ls->first, ls->config, read_params, out);
    } else if (strcmp(f->name, "--env") == 0) {
        with_runbook(NULL, ls->config, NULL, out);
    } else if (strcmp(f->value, "STEP") == 0) {
        with_runbook(ls->first, ls->config, read_steps, out);
    } else if (strcmp(f->name, "--runbook") == 0) { /* other NAMEs: units, secrets, teams */
        runbook_names(out);
    } else {
        choices(f->value, out);
    }
}

static void complete_positional(const char *pos, strs *out)
{
    if (choices(pos, out))
        return;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", pos);
    for (char *save = NULL, *alt = strtok_r(buf, "|", &save); alt;
         alt = strtok_r(NULL, "|", &save)) {
        if (strcmp(alt, "NAME") == 0)
            runbook_names(out);
        else if (strcmp(alt, "COMMAND") == 0)
            for (const struct command *c = table; c->name; c++)
                add(out, c->name, strlen(c->name));
    }
}

static void complete_args(const struct command *c, int n, char **w, strs *out)
{
    char *path[MAX_DEPTH] = {w[0]};
    int depth = 1, p = 0, dashdash = 0;
    spec s;
    char *text = help_text(c, path, depth);
    parse_help(&s, text ? text : "", depth);
    free(text);
    if (strcmp(c->name, "help") == 0)
        snprintf(s.pos[0], sizeof s.pos[0], "COMMAND"), s.npos = 1;
    line_state ls = {0};
    for (int i = 1; i < n - 1; i++) {
        if (!dashdash && w[i][0] == '-' && w[i][1]) {
            dashdash = strcmp(w[i], "--") == 0;
            size_t len = strcspn(w[i], "=");
            flag *f = find_flag(&s, w[i], len);
            if (!f || !f->value[0] || w[i][len] == '=')
                continue;
            if (i + 1 == n - 1) {
                complete_value(f, &ls, out);
                return;
            }
            if (strcmp(f->name, "--config") == 0)
                ls.config = w[i + 1];
            i++;
            continue;
        }
        if (p < s.npos && choices(s.pos[p], NULL) && is_choice(s.pos[p], w[i]) &&
            depth < MAX_DEPTH) {
            path[depth++] = w[i]; /* a subcommand (audit list): its own --help */
            text = help_text(c, path, depth);
            parse_help(&s, text ? text : "", depth);
            free(text);
            p = 0;
            continue;
        }
        if (!ls.first)
            ls.first = w[i];
        if (p < s.npos - 1 || !s.last_repeats)
            p++;
    }
    if (cur[0] == '-' && !dashdash) {
        for (int i = 0; i < s.nflags; i++)
            add(out, s.flags[i].name, strlen(s.flags[i].name));
    } else if (p < s.npos) {
        complete_positional(s.pos[p], out);
    }
}

int cmd_complete(int argc, char **argv, const struct command *commands)
{
    /* argv[0] is "__complete"; the words follow, the last being completed */
    int n = argc - 1;
    char **w = argv + 1;
    char *empty[] = {""};
    if (n == 0)
        n = 1, w = empty;
    cur = w[n - 1];
    table = commands;
    strs out = {0};
    if (n == 1) {
        if (cur[0] != '-')
            for (const struct command *c = commands; c->name; c++)
                add(&out, c->name, strlen(c->name));
    } else {
        for (const struct command *c = commands; c->name; c++)
            if (strcmp(c->name, w[0]) == 0)
                complete_args(c, n, w, &out);
    }
    print_free(&out);
    return 0;
}
