/*
 * `runbook list` and `runbook show`: read metadata and step names without
 * running a single primitive (the engine is in listing mode: any action
 * raises instead of acting).
 */
#include "commands.h"
#include "jsonw.h"
#include "library.h"
#include "modules.h"
#include "rbfile.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void tags_string(lua_State *L, int meta, char *buf, size_t n)
{
    buf[0] = '\0';
    size_t used = 0;
    if (lua_getfield(L, meta, "tags") == LUA_TTABLE) {
        lua_Integer k = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= k; i++) {
            lua_rawgeti(L, -1, i);
            used += (size_t)snprintf(buf + used, used < n ? n - used : 0, "%s%s", i > 1 ? ", " : "",
                                     lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static int has_tag(lua_State *L, int meta, const char *tag)
{
    int found = 0;
    if (lua_getfield(L, meta, "tags") == LUA_TTABLE) {
        lua_Integer k = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= k && !found; i++) {
            lua_rawgeti(L, -1, i);
            found = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), tag) == 0;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return found;
}

static const char *field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* still referenced by t */
    return s;
}

/* A Markdown table cell: one line, pipes escaped. */
static void md_cell(const char *s)
{
    fputs("| ", stdout);
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", stdout);
        else if (*s == '\n' || *s == '\r')
            putchar(' ');
        else
            putchar(*s);
    }
    putchar(' ');
}

/* One row of `list --markdown`: name (linked to the file, relative to the
 * root it was found under), title, reference section, severity or
 * schedule, and what it mutates -- all from the metadata, so the table in
 * runbooks/README.md is regenerated rather than kept in step by hand. */
static void markdown_row(lua_State *L, int meta, const char *path, const char *root)
{
    const char *name = field(L, meta, "name"), *rel = path;
    size_t n = strlen(root);
    if (strncmp(path, root, n) == 0 && path[n] == '/')
        rel = path + n + 1;
    printf("| [%s](%s) ", name, rel);
    md_cell(field(L, meta, "title"));
    md_cell(field(L, meta, "source") ? field(L, meta, "source") : "—");
    const char *sev = field(L, meta, "severity"), *sched = field(L, meta, "schedule");
    char when[256];
    snprintf(when, sizeof when, "%s%s%s", sev ? sev : "", sev && sched ? ", " : "",
             sched ? sched : "");
    md_cell(when[0] ? when : "—");
    int t = lua_getfield(L, meta, "mutates"), list = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (t == LUA_TTABLE) {
        lua_Integer k = (lua_Integer)lua_rawlen(L, list);
        for (lua_Integer i = 1; i <= k; i++) {
            if (i > 1)
                luaL_addstring(&b, "; ");
            lua_rawgeti(L, list, i);
            luaL_addvalue(&b);
        }
        if (k == 0)
            luaL_addstring(&b, "nothing (reads only)");
    } else {
        luaL_addstring(&b, "not declared");
    }
    luaL_pushresult(&b);
    md_cell(lua_tostring(L, -1));
    lua_pop(L, 2);
    puts("|");
}

/* The root a scanned file was found under (for a relative link). */
static const char *root_of(const file_list *roots, const char *path)
{
    for (int i = 0; i < roots->n; i++) {
        size_t n = strlen(roots->paths[i]);
        if (strncmp(path, roots->paths[i], n) == 0 && path[n] == '/')
            return roots->paths[i];
    }
    return "";
}

/* ---- the text table of `list`, fitted to the terminal ------------------- */

typedef struct row {
    char *cell[4]; /* name, title, tags, path */
} row;

enum { COL_NAME, COL_TITLE, COL_TAGS, COL_PATH };

/* Columns a UTF-8 string takes: one per character (titles have dashes and
 * accents, rarely double-width characters). */
static size_t columns_of(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The terminal's width, 0 when stdout is not a terminal: a pipe gets whole
 * titles (grep, awk), a terminal a table that does not wrap.  COLUMNS, set
 * by the shell or the operator, beats the window size. */
static size_t terminal_width(void)
{
    if (!isatty(STDOUT_FILENO))
        return 0;
    const char *env = getenv("COLUMNS");
    long c = env ? strtol(env, NULL, 10) : 0;
    if (c > 0 && c < 10000)
        return (size_t)c;
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* s in w columns: padded unless last, cut with "…" when longer */
static void print_cell(const char *s, size_t w, int last)
{
    size_t cols = columns_of(s);
    if (cols > w) {
        size_t keep = w ? w - 1 : 0, seen = 0;
        const char *p = s;
        for (; *p; p++) {
            if (((unsigned char)*p & 0xC0) != 0x80 && seen++ == keep)
                break;
        }
        fwrite(s, 1, (size_t)(p - s), stdout);
        if (w)
            fputs("…", stdout);
        cols = w;
    } else {
        fputs(s, stdout);
    }
    if (!last)
        printf("%*s", (int)(w - cols + 2), "");
}

/* The table: names and paths whole (they are what one types), the title
 * and then the tags cut to what the terminal leaves them. */
static void print_table(row *rows, int n, int with_path)
{
    static const char *const heads[] = {"NAME", "TITLE", "TAGS", "PATH"};
    int ncol = with_path ? 4 : 3;
    size_t w[4];
    for (int c = 0; c < ncol; c++) {
        w[c] = columns_of(heads[c]);
        for (int i = 0; i < n; i++)
            if (columns_of(rows[i].cell[c]) > w[c])
                w[c] = columns_of(rows[i].cell[c]);
    }
    size_t width = terminal_width(), total = 2 * (size_t)(ncol - 1);
    for (int c = 0; c < ncol; c++)
        total += w[c];
    static const int shrink[] = {COL_TITLE, COL_TAGS};
    static const size_t least[] = {8, 4};
    for (int k = 0; k < 2 && width && total > width; k++) {
        size_t col = (size_t)shrink[k], over = total - width;
        size_t can = w[col] > least[k] ? w[col] - least[k] : 0;
        size_t cut = over < can ? over : can;
        w[col] -= cut;
        total -= cut;
    }
    for (int c = 0; c < ncol; c++)
        print_cell(heads[c], w[c], c == ncol - 1);
    putchar('\n');
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < ncol; c++)
            print_cell(rows[i].cell[c], w[c], c == ncol - 1);
        putchar('\n');
    }
}

int cmd_list(int argc, char **argv)
{
    const char *tag = NULL;
    int json = 0, markdown = 0, with_path = 0;
    file_list roots = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--markdown") == 0)
            markdown = 1;
        else if (strcmp(argv[i], "-l") == 0 || strcmp(argv[i], "--long") == 0)
            with_path = 1;
        else if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc)
            tag = argv[++i];
        else if (strncmp(argv[i], "--tag=", 6) == 0)
            tag = argv[i] + 6;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: runbook list [-l] [--tag TAG] [--json | --markdown] [DIR...]\n\n"
                 "List the runbooks found in DIR... (default: ./runbooks, each directory of\n"
                 "RUNBOOK_PATH, and the installed library).  No primitive runs.  On a\n"
                 "terminal the table fits its width (COLUMNS, else the window's): long\n"
                 "titles are cut with ...; into a pipe nothing is cut.\n\n"
                 "  -l, --long  add a PATH column: the file each runbook is read from\n"
                 "  --tag TAG   only the runbooks tagged TAG\n"
                 "  --json      one JSON object per runbook (name, title, tags, path, steps)\n"
                 "  --markdown  a Markdown table from the metadata: name (linked), title,\n"
                 "              reference section (source), severity/schedule, and what it\n"
                 "              mutates (mutates) -- runbooks/README.md is generated this way");
            file_list_free(&roots);
            return 0;
        } else if (argv[i][0] == '-') {
            static const char *const known[] = {"json", "markdown", "long", "tag", "help", NULL};
            file_list_free(&roots);
            return unknown_flag("list", argv[i], known);
        } else {
            /* explicit directories replace the default roots */
            char **np = realloc(roots.paths, (size_t)(roots.n + 1) * sizeof *np);
            char *dir = strdup(argv[i]);
            if (!np || !dir) {
                free(dir);
                return 2;
            }
            roots.paths = np;
            roots.paths[roots.n++] = dir;
            roots.cap = roots.n;
        }
    }
    file_list files = {0};
    rb_engine *E = library_open(rb_builtin_modules, &roots, &files);
    if (!E)
        return 2;
    lua_State *L = E->L;
    int bad = 0, shown = 0;
    if (json && markdown) {
        engine_free(E);
        file_list_free(&roots);
        file_list_free(&files);
        return usage_error("list: --json and --markdown are exclusive");
    }
    if (markdown && files.n)
        puts("| Runbook | Title | Reference section | Severity | Mutates |\n"
             "|---|---|---|---|---|");
    row *rows = calloc((size_t)files.n + 1, sizeof *rows);
    int nrows = 0;
    for (int i = 0; i < files.n; i++) {
        if (rbfile_load(L, files.paths[i], 0) != 0) {
            fprintf(stderr, "runbook: skipping %s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
            bad++;
            continue;
        }
        lua_getfield(L, -1, "meta");
        int meta = lua_gettop(L);
        if (tag && !has_tag(L, meta, tag)) {
            lua_settop(L, 0);
            continue;
        }
        char tags[512];
        tags_string(L, meta, tags, sizeof tags);
        const char *name = field(L, meta, "name"), *title = field(L, meta, "title");
        lua_getfield(L, -2, "steps");
        int nsteps = (int)lua_rawlen(L, -1);
        lua_pop(L, 1);
        if (markdown) {
            markdown_row(L, meta, files.paths[i], root_of(&roots, files.paths[i]));
        } else if (json) {
            jsonw w;
            jw_init(&w);
            jw_obj(&w);
            jw_kstr(&w, "name", name);
            jw_kstr(&w, "title", title);
            jw_key(&w, "tags");
            if (lua_getfield(L, meta, "tags") == LUA_TTABLE)
                jw_lua(&w, L, -1);
            else
                jw_raw(&w, "[]");
            lua_pop(L, 1);
            jw_kstr(&w, "path", files.paths[i]);
            jw_kint(&w, "steps", nsteps);
            jw_obj_end(&w);
            puts(jw_str_result(&w));
            jw_free(&w);
        } else if (rows) {
            /* printed at the end: the widths depend on every row */
            row *r = &rows[nrows++];
            r->cell[COL_NAME] = strdup(name ? name : "");
            r->cell[COL_TITLE] = strdup(title ? title : "");
            r->cell[COL_TAGS] = strdup(tags);
            r->cell[COL_PATH] = strdup(files.paths[i]);
            for (int c = 0; c < 4; c++)
                if (!r->cell[c])
                    r->cell[c] = strdup("");
        }
        shown++;
        lua_settop(L, 0);
    }
    if (!json && !markdown && nrows)
        print_table(rows, nrows, with_path);
    for (int i = 0; i < nrows; i++)
        for (int c = 0; c < 4; c++)
            free(rows[i].cell[c]);
    free(rows);
    if (!json && files.n == 0)
        fprintf(stderr, "runbook: no runbooks found (looked in ./runbooks, RUNBOOK_PATH and the "
                        "installed library)\n");
    engine_free(E);
    file_list_free(&roots);
    file_list_free(&files);
    return bad ? 2 : 0;
}

static void print_value(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        printf("\"%s\"", lua_tostring(L, idx));
    else if (lua_type(L, idx) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        printf("{");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            printf("%s%s", i > 1 ? ", " : "", luaL_tolstring(L, -1, NULL));
            lua_pop(L, 2);
        }
        printf("}");
    } else {
        printf("%s", luaL_tolstring(L, idx, NULL));
        lua_pop(L, 1);
    }
}

/* the items of the list at idx, as tostring writes them */
static void print_list(lua_State *L, int idx, const char *sep)
{
    idx = lua_absindex(L, idx);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        printf("%s%s", i > 1 ? sep : "", luaL_tolstring(L, -1, NULL));
        lua_pop(L, 2);
    }
}

/* What an on-call engineer asks before running it: who owns it, how
 * urgent, where it comes from, when it runs, what it may change, what it
 * locks. */
static void show_about(lua_State *L, int meta)
{
    static const char *const strings[] = {"owner",  "version",  "severity",
                                          "source", "schedule", NULL};
    for (int i = 0; strings[i]; i++) {
        const char *v = field(L, meta, strings[i]);
        if (v)
            printf("  %s: %s\n", strings[i], v);
    }
    int t = lua_getfield(L, meta, "lock");
    if (t == LUA_TSTRING)
        printf("  lock: %s\n", lua_tostring(L, -1));
    else if (t == LUA_TTABLE) {
        printf("  lock: ");
        print_list(L, -1, ", ");
        printf("\n");
    } else if (t == LUA_TFUNCTION)
        printf("  lock: computed from the params when a run takes it\n");
    lua_pop(L, 1);
    t = lua_getfield(L, meta, "mutates");
    if (t == LUA_TTABLE && lua_rawlen(L, -1) == 0)
        printf("  mutates: nothing (reads only)\n");
    else if (t == LUA_TTABLE) {
        printf("  mutates: ");
        print_list(L, -1, "; ");
        printf("\n");
    }
    lua_pop(L, 1);
}

int cmd_show(int argc, char **argv)
{
    int json = 0;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: runbook show NAME|FILE [--json]\n\n"
                 "Show a runbook's metadata -- owner, severity, source, schedule, lock, what\n"
                 "it mutates --, its params (type, default, choices, help) and its steps.\n"
                 "No primitive runs.\n\n"
                 "  --json      one JSON object: path, meta (the whole runbook{} table, params\n"
                 "              with their choices) and steps (index, name, description,\n"
                 "              conditional, undo)");
            return 0;
        } else if (argv[i][0] == '-') {
            static const char *const known[] = {"json", "help", NULL};
            return unknown_flag("show", argv[i], known);
        } else if (name)
            return usage_error("show: one runbook at a time");
        else
            name = argv[i];
    }
    if (!name)
        return usage_error("show: which runbook? (runbook show NAME; see runbook list)");
    char path[4096];
    if (rbfile_find(name, path, sizeof path) != 0) {
        char hint[4200];
        library_hint(name, hint, sizeof hint);
        return usage_error("no runbook named '%s'%s", name, hint[0] ? hint : " (see runbook list)");
    }
    rb_engine *E = library_engine(rb_builtin_modules);
    if (!E)
        return 2;
    lua_State *L = E->L;
    if (rbfile_load(L, path, 0) != 0) {
        usage_error("%s", lua_tostring(L, -1));
        engine_free(E);
        return 2;
    }
    int rb = lua_gettop(L);
    lua_getfield(L, rb, "meta");
    int meta = lua_gettop(L);
    lua_getfield(L, rb, "steps");
    int steps = lua_gettop(L);
    lua_getfield(L, meta, "params");
    int params = lua_gettop(L);
    if (json) {
        jsonw w;
        jw_init(&w);
        jw_obj(&w);
        jw_kstr(&w, "path", path);
        jw_key(&w, "meta");
        jw_lua(&w, L, meta);
        jw_key(&w, "steps");
        jw_arr(&w);
        lua_Integer n = (lua_Integer)lua_rawlen(L, steps);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, steps, i);
            jw_obj(&w);
            jw_kint(&w, "index", i);
            jw_kstr(&w, "name", field(L, -1, "name"));
            lua_getfield(L, -1, "opts");
            jw_kstr(&w, "description", field(L, -1, "description"));
            lua_getfield(L, -1, "when");
            jw_kbool(&w, "conditional", !lua_isnil(L, -1));
            lua_getfield(L, -2, "undo");
            jw_kbool(&w, "undo", !lua_isnil(L, -1));
            lua_pop(L, 4);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_obj_end(&w);
        puts(jw_str_result(&w));
        jw_free(&w);
    } else {
        const char *title = field(L, meta, "title"), *desc = field(L, meta, "description");
        printf("%s%s%s\n", field(L, meta, "name"), title ? " — " : "", title ? title : "");
        printf("  file: %s\n", path);
        char tags[512];
        tags_string(L, meta, tags, sizeof tags);
        if (tags[0])
            printf("  tags: %s\n", tags);
        show_about(L, meta);
        if (desc)
            printf("\n%s\n", desc);
        if (lua_istable(L, params)) {
            printf("\nparams:\n");
            rb_push_sorted_keys(L, params);
            int names = lua_gettop(L);
            lua_Integer np = (lua_Integer)lua_rawlen(L, names);
            for (lua_Integer k = 1; k <= np; k++) {
                lua_rawgeti(L, names, k);
                lua_pushvalue(L, -1);
                lua_gettable(L, params);
                int spec = lua_gettop(L);
                const char *type = field(L, spec, "type");
                printf("  --param %s=<%s>", lua_tostring(L, -2), type ? type : "string");
                if (lua_getfield(L, spec, "default") != LUA_TNIL) {
                    printf("  default ");
                    print_value(L, -1);
                }
                lua_pop(L, 1);
                if (rb_opt_bool(L, spec, "required", 0))
                    printf("  required");
                if (rb_opt_bool(L, spec, "secret", 0))
                    printf("  secret");
                if (lua_getfield(L, spec, "choices") == LUA_TTABLE) {
                    printf("\n      choices: ");
                    print_list(L, -1, ", ");
                }
                lua_pop(L, 1);
                if (lua_getfield(L, spec, "example") != LUA_TNIL) {
                    printf("\n      example: ");
                    print_value(L, -1);
                }
                lua_pop(L, 1);
                const char *help = field(L, spec, "help");
                if (help)
                    printf("\n      %s", help);
                printf("\n");
                lua_pop(L, 2);
            }
            lua_pop(L, 1);
        }
        lua_Integer n = (lua_Integer)lua_rawlen(L, steps);
        printf("\nsteps:\n");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, steps, i);
            lua_getfield(L, -1, "opts");
            const char *d = field(L, -1, "description");
            lua_getfield(L, -1, "when");
            int cond = !lua_isnil(L, -1);
            lua_getfield(L, -2, "undo");
            int undo = !lua_isnil(L, -1);
            printf("  %2lld. %s%s%s\n", (long long)i, field(L, -4, "name"),
                   cond ? "  (conditional)" : "", undo ? "  (has undo)" : "");
            if (d)
                printf("      %s\n", d);
            lua_pop(L, 4);
        }
    }
    engine_free(E);
    return 0;
}
