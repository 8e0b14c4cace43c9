/* The runbook library on disk (see library.h). */
#include "library.h"
#include "rbfile.h"
#include "util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef RUNBOOK_SHARE_DIR
#define RUNBOOK_SHARE_DIR "/usr/local/share/runbook"
#endif

static void add(file_list *l, const char *p)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **np = realloc(l->paths, (size_t)cap * sizeof *np);
        if (!np)
            return;
        l->paths = np;
        l->cap = cap;
    }
    char *copy = strdup(p);
    if (copy)
        l->paths[l->n++] = copy;
}

void file_list_free(file_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *dir, file_list *out, int depth)
{
    if (depth > 16)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (strcmp(e->d_name, "lib") != 0 && strcmp(e->d_name, "tests") != 0)
                walk(p, out, depth + 1);
        } else {
            size_t n = strlen(e->d_name);
            if (n > 4 && strcmp(e->d_name + n - 4, ".lua") == 0)
                add(out, p);
        }
    }
    closedir(d);
    return 0;
}

int library_scan(const char *dir, file_list *out)
{
    int start = out->n;
    if (walk(dir, out, 0) != 0)
        return -1;
    qsort(out->paths + start, (size_t)(out->n - start), sizeof *out->paths, cmp);
    return 0;
}

void library_roots(file_list *out)
{
    add(out, "runbooks");
    const char *rp = getenv("RUNBOOK_PATH");
    if (rp) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", rp);
        for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save))
            if (*d)
                add(out, d);
    }
    add(out, RUNBOOK_SHARE_DIR "/runbooks");
}

rb_engine *library_engine(const rb_module *modules)
{
    char err[1024];
    rb_engine *E = engine_new(modules, err, sizeof err);
    if (!E) {
        fprintf(stderr, "runbook: %s\n", err);
        return NULL;
    }
    E->purpose = PURPOSE_LIST;
    E->mode = MODE_DRY_RUN; /* belt and braces: nothing may change */
    engine_use(E, &rb_mode_dry_run);
    snprintf(E->run_id, sizeof E->run_id, "listing");
    return E;
}

rb_engine *library_open(const rb_module *modules, file_list *roots, file_list *files)
{
    if (roots->n == 0)
        library_roots(roots);
    for (int i = 0; i < roots->n; i++)
        library_scan(roots->paths[i], files);
    rb_engine *E = library_engine(modules);
    if (!E) {
        file_list_free(roots);
        file_list_free(files);
    }
    return E;
}

/* The runbooks' names under one root: their paths there, without ".lua" */
static void names_under(const char *root, file_list *names)
{
    file_list files = {0};
    library_scan(root, &files);
    size_t rl = strlen(root);
    for (int i = 0; i < files.n; i++) {
        const char *rel = files.paths[i] + rl + 1;
        char name[4096];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(rel) - 4), rel);
        add(names, name);
    }
    file_list_free(&files);
}

const char *library_hint(const char *name, char *buf, size_t n)
{
    buf[0] = '\0';
    file_list roots = {0}, names = {0};
    const char *root = rbfile_root();
    if (root[0]) {
        char lib[4096];
        snprintf(lib, sizeof lib, "%s/runbooks", root);
        add(&roots, lib);
    }
    library_roots(&roots);
    for (int i = 0; i < roots.n; i++)
        names_under(roots.paths[i], &names);
    char want[4096];
    size_t wl = strlen(name);
    if (wl > 4 && strcmp(name + wl - 4, ".lua") == 0)
        wl -= 4;
    snprintf(want, sizeof want, "%.*s", (int)wl, name);
    const char *near = rb_did_you_mean(want, (const char *const *)names.paths, names.n);
    if (!near && !strchr(want, '/')) {
        /* "restrat" for calendar-api/restart: the last part alone */
        const char **bases = calloc((size_t)names.n + 1, sizeof *bases);
        for (int i = 0; bases && i < names.n; i++) {
            const char *slash = strrchr(names.paths[i], '/');
            bases[i] = slash ? slash + 1 : names.paths[i];
        }
        const char *b = bases ? rb_did_you_mean(want, bases, names.n) : NULL;
        for (int i = 0; b && i < names.n; i++)
            if (bases[i] == b)
                near = names.paths[i];
        free(bases);
    }
    if (near && strcmp(near, want) != 0)
        snprintf(buf, n, " (did you mean '%s'?)", near);
    file_list_free(&roots);
    file_list_free(&names);
    return buf;
}
