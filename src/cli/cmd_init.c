/*
 * `runbook init [DIR] [--team NAME]`: write a team library skeleton into DIR
 * -- runbook.yaml with two environments, one diagnosis runbook with its
 * scenarios, a shared lib/ module, CI for GitHub and GitLab.  They are the
 * files under templates/init/, embedded at build time (see
 * cmake/init_templates.cmake), so an installed binary needs nothing on disk;
 * "{{team}}" in a path or a text becomes the team's name.
 *
 * It never overwrites: every file is created with O_EXCL, so a file that
 * exists (even one that appears between two runs, or a dangling symlink) is
 * kept byte for byte and reported.  Running it twice changes nothing.
 */
#include "commands.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rb_init_template {
    const char *path;
    const char *text;
    size_t len;
};
extern const struct rb_init_template rb_init_templates[];

#define TEAM_MARK "{{team}}"
#define TEAM_MAX  64

static const char HELP[] =
    "usage: runbook init [DIR] [--team NAME]\n\n"
    "Write a team library skeleton into DIR (default: the current directory;\n"
    "created when missing):\n\n"
    "  runbook.yaml                      params, and the environments staging and production\n"
    "  runbooks/NAME/service-health.lua  a read-only diagnosis runbook (health endpoint, disk)\n"
    "  runbooks/NAME/tests/              its scenarios: healthy and unhealthy\n"
    "  runbooks/lib/common.lua           a module the runbooks share (require \"common\")\n"
    "  .github/workflows/runbooks.yml    CI: runbook check, runbook test (JUnit), a dry-run\n"
    "  .gitlab-ci.yml                    the same for GitLab CI\n"
    "  README.md                         how to use the library\n\n"
    "  --team NAME   the team's folder under runbooks/ and its runbooks' prefix\n"
    "                (default: ops; letters, digits, - and _)\n\n"
    "A file that exists is never overwritten: it is kept and reported, so init can\n"
    "run again to add what is missing.  Then: runbook check && runbook test.\n\n"
    "Exit codes: 0 done (files created or kept), 1 a file could not be written,\n"
    "2 bad usage, or DIR is not a directory.\n";

static int valid_team(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TEAM_MAX || t[0] == '-' || t[0] == '_')
        return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

/* s (len bytes) with every TEAM_MARK replaced by team; *out_len its length. */
static char *expand(const char *s, size_t len, const char *team, size_t *out_len)
{
    size_t ml = strlen(TEAM_MARK), tl = strlen(team), count = 0;
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), TEAM_MARK, ml)); p += ml)
        count++;
    size_t n = len + count * tl; /* tl <= TEAM_MAX: no overflow, marks only shrink */
    char *out = malloc(n + 1), *w = out;
    if (!out)
        return NULL;
    const char *p = s, *end = s + len, *m;
    while ((m = memmem(p, (size_t)(end - p), TEAM_MARK, ml))) {
        memcpy(w, p, (size_t)(m - p));
        w += m - p;
        memcpy(w, team, tl);
        w += tl;
        p = m + ml;
    }
    memcpy(w, p, (size_t)(end - p));
    w += end - p;
    *w = '\0';
    *out_len = (size_t)(w - out);
    return out;
}

/* mkdir -p of path's parent directories (path itself is a file). */
static int make_parents(char *path)
{
    for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        int rc = mkdir(path, 0755);
        int saved = errno;
        struct stat st;
        if (rc != 0 && !(saved == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
            fprintf(stderr, "runbook: init: cannot create directory %s: %s\n", path,
                    saved == EEXIST ? "a file of that name exists" : strerror(saved));
            *s = '/';
            return -1;
        }
        *s = '/';
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

enum outcome { CREATED, KEPT, FAILED };

/* Create dir/rel with text, only if nothing is there (O_EXCL: no window in
 * which an existing file could be truncated; O_NOFOLLOW: nor a symlink's
 * target written through). */
static enum outcome create_file(const char *dir, const char *rel, const char *text, size_t len)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path) {
        fprintf(stderr, "runbook: init: %s/%s: path too long\n", dir, rel);
        return FAILED;
    }
    if (make_parents(path) != 0)
        return FAILED;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST)
        return KEPT;
    if (fd < 0) {
        fprintf(stderr, "runbook: init: cannot create %s: %s\n", path, strerror(errno));
        return FAILED;
    }
    int bad = write_all(fd, text, len) != 0;
    int saved = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (bad) {
        unlink(path); /* ours, just created: a half file would be kept by the next init */
        fprintf(stderr, "runbook: init: cannot write %s: %s\n", path, strerror(saved));
        return FAILED;
    }
    return CREATED;
}

/* DIR must be a directory; created (with its parents) when missing. */
static int prepare_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return usage_error("init: %s is not a directory", dir);
        return 0;
    }
    if (errno != ENOENT)
        return usage_error("init: %s: %s", dir, strerror(errno));
    char path[4096];
    if (snprintf(path, sizeof path, "%s/", dir) >= (int)sizeof path)
        return usage_error("init: %s: path too long", dir);
    if (make_parents(path) != 0)
        return 2;
    return 0;
}

int cmd_init(int argc, char **argv)
{
    const char *dir = NULL, *team = "ops";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(HELP, stdout);
            return 0;
        } else if (strcmp(argv[i], "--team") == 0) {
            if (++i >= argc)
                return usage_error("init: --team needs a NAME");
            team = argv[i];
        } else if (strncmp(argv[i], "--team=", 7) == 0) {
            team = argv[i] + 7;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            const char *known[] = {"team", "help", NULL};
            return unknown_flag("init", argv[i], known);
        } else if (dir) {
            return usage_error("init: one DIR only ('%s' and '%s')", dir, argv[i]);
        } else {
            dir = argv[i];
        }
    }
    if (!valid_team(team))
        return usage_error("init: --team '%s': use letters, digits, - and _ (at most %d, "
                           "starting with a letter or digit)",
                           team, TEAM_MAX);
    if (!dir)
        dir = ".";
    int rc = prepare_dir(dir);
    if (rc != 0)
        return rc;

    int created = 0, kept = 0, failed = 0;
    for (const struct rb_init_template *t = rb_init_templates; t->path; t++) {
        size_t plen, tlen;
        char *rel = expand(t->path, strlen(t->path), team, &plen);
        char *text = expand(t->text, t->len, team, &tlen);
        if (!rel || !text) {
            free(rel);
            free(text);
            fprintf(stderr, "runbook: init: out of memory\n");
            return 1;
        }
        switch (create_file(dir, rel, text, tlen)) {
        case CREATED:
            printf("created %s\n", rel);
            created++;
            break;
        case KEPT:
            printf("kept %s (exists)\n", rel);
            kept++;
            break;
        case FAILED:
            failed++;
            break;
        }
        free(rel);
        free(text);
    }
    printf("%d created, %d kept%s in %s (team %s)\n", created, kept,
           failed ? ", some not written" : "", dir, team);
    if (created && !failed)
        printf("next: %s%s%srunbook check && runbook test\n", strcmp(dir, ".") ? "cd " : "",
               strcmp(dir, ".") ? dir : "", strcmp(dir, ".") ? " && " : "");
    return failed ? 1 : 0;
}
