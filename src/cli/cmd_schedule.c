/*
 * `runbook schedule`: a runbook's `schedule` metadata turned into what the
 * schedulers teams already operate read -- a systemd service + timer pair,
 * or a Kubernetes CronJob -- and `--list`, every scheduled runbook of the
 * library with its next run.  Like list and show, nothing runs: runbooks
 * are loaded in listing mode.
 */
#include "commands.h"
#include "config.h"
#include "jsonw.h"
#include "library.h"
#include "modules.h"
#include "rbfile.h"
#include "schedule.h"
#include "session.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char HELP[] =
    "usage: runbook schedule NAME --emit systemd|cronjob [options]\n"
    "       runbook schedule --list [--from TIME] [--json] [DIR...]\n"
    "\n"
    "Turn a runbook's `schedule` metadata (hourly, daily, weekly, monthly, a 5-field\n"
    "cron expression or @daily & co.) into a systemd service + timer pair or a\n"
    "Kubernetes CronJob that runs `runbook run NAME --yes`.  hourly/daily/weekly/\n"
    "monthly run at a minute and hour (00:00-05:59) derived from the runbook's name;\n"
    "write a cron expression for an exact time.  Nothing runs.\n"
    "\n"
    "  --emit systemd|cronjob  what to write: runbook-NAME.service + .timer, or a\n"
    "                          batch/v1 CronJob manifest\n"
    "  --env E                 run in environment E of runbook.yaml\n"
    "  --param NAME=VALUE      a param of the scheduled run (repeatable)\n"
    "  --out DIR               write the files into DIR (default: standard output)\n"
    "  --name NAME             the unit / CronJob name (default: runbook-NAME)\n"
    "  --time-zone TZ          run in time zone TZ (default: the host's; a CronJob's\n"
    "                          controller runs in UTC)\n"
    "  --bin PATH              systemd: the runbook binary (default: /usr/bin/runbook)\n"
    "  --user USER             systemd: run as USER (default: root, as system services)\n"
    "  --workdir DIR           systemd: the library directory, holding runbook.yaml\n"
    "                          (default: the current directory)\n"
    "  --image IMAGE           cronjob: the container image (default: runbook:" RB_VERSION ")\n"
    "  --secret NAME           cronjob: environment variables from Secret NAME (envFrom)\n"
    "  --namespace NS          cronjob: the namespace of the CronJob\n"
    "  --audit-pvc CLAIM       cronjob: keep the SQLite audit log on this\n"
    "                          PersistentVolumeClaim (default: an emptyDir, lost with\n"
    "                          the pod) unless runbook.yaml logs to PostgreSQL\n"
    "  --list                  every runbook with a schedule, its cron form and its\n"
    "                          next run in local time\n"
    "  --from TIME             --list: next runs after TIME (YYYY-MM-DD HH:MM in local\n"
    "                          time, or @EPOCH seconds)\n"
    "  --json                  --list: one JSON object per runbook\n"
    "\n"
    "Exit codes: 0 written, 1 a runbook of --list has an invalid schedule, 2 usage,\n"
    "unknown runbook, no or invalid schedule.\n";

/* The image's audit volume (Dockerfile: VOLUME, the default XDG state
 * directory of its user runbook, uid 10001) */
#define AUDIT_DIR  "/home/runbook/.local/state/runbook"
#define IMAGE_UID  "10001"
#define MAX_PARAMS 256 /* --param flags of one scheduled run */

typedef struct sched_args {
    const char *name, *emit, *env, *out, *unit, *tz, *bin, *user, *workdir, *image, *secret, *ns,
        *pvc, *from;
    char **params;
    int n_params, list, json;
    char **dirs;
    int n_dirs;
} sched_args;

/* ---- quoting ------------------------------------------------------------ */

/* systemd.syntax(7): specifiers (%) and, in ExecStart=, variables ($) are
 * expanded in every word, so both are doubled; a word with anything but
 * plain characters is double-quoted with C escapes. */
static void sd_word(FILE *f, const char *s, int exec)
{
    int plain = *s != '\0';
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,@+-", *p))
            plain = 0;
    if (!plain)
        fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '%')
            fputs("%%", f);
        else if (*p == '$' && exec)
            fputs("$$", f);
        else if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    if (!plain)
        fputc('"', f);
}

/* A free-text setting value (Description=): one line, specifiers escaped. */
static void sd_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '%')
            fputs("%%", f);
        else if (*s == '\n' || *s == '\r' || *s == '\\')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

/* A YAML double-quoted scalar (JSON's escapes are YAML's). */
static void yq(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* ---- the runbook -------------------------------------------------------- */

typedef struct scheduled {
    char path[PATH_MAX], ref[PATH_MAX]; /* the file; how `runbook run` names it */
    char name[512], title[512], schedule[256];
    rb_schedule s;
} scheduled;

/* runbook-skafu-daily-cost-check: '/' becomes '-', the rest of what unit
 * and object names refuse '-' too; Kubernetes wants it lower case. */
static void unit_name(const char *name, int k8s, char *out, size_t n)
{
    size_t used = (size_t)snprintf(out, n, "runbook-");
    for (const char *p = name; *p && used + 1 < n; p++) {
        char c = *p;
        if (k8s && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                 (!k8s && ((c >= 'A' && c <= 'Z') || c == '_'));
        out[used++] = ok ? c : '-';
    }
    out[used] = '\0';
}

/* Load the runbook and check the params of the scheduled run against it. */
static int load_scheduled(rb_engine *E, const sched_args *a, scheduled *r)
{
    lua_State *L = E->L;
    if (rbfile_find(a->name, r->path, sizeof r->path) != 0) {
        char hint[4200];
        library_hint(a->name, hint, sizeof hint);
        return usage_error("schedule: no runbook named '%s'%s", a->name,
                           hint[0] ? hint : " (see runbook list)");
    }
    run_args ra = {0};
    ra.env = a->env;
    ra.params = a->params;
    ra.n_params = a->n_params;
    int in = push_params_input(E, L, &ra);
    if (rbfile_load(L, r->path, in) != 0)
        return usage_error("schedule: %s", lua_tostring(L, -1));
    int rb = lua_gettop(L);
    lua_getfield(L, rb, "meta");
    int meta = lua_gettop(L);
    lua_getfield(L, meta, "name");
    lua_getfield(L, meta, "title");
    lua_getfield(L, meta, "schedule");
    snprintf(r->name, sizeof r->name, "%s", lua_tostring(L, -3));
    snprintf(r->title, sizeof r->title, "%s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "");
    int has_schedule = lua_isstring(L, -1);
    snprintf(r->schedule, sizeof r->schedule, "%s", has_schedule ? lua_tostring(L, -1) : "");
    lua_pop(L, 3);
    /* every --param must be one the runbook declares, every required one given */
    lua_getfield(L, meta, "params");
    int spec = lua_gettop(L);
    for (int i = 0; i < a->n_params; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(strchr(a->params[i], '=') - a->params[i]),
                 a->params[i]);
        if (!lua_istable(L, spec) || lua_getfield(L, spec, key) != LUA_TTABLE)
            return usage_error("schedule: --param %s: %s declares no param '%s'", a->params[i],
                               r->name, key);
        lua_pop(L, 1);
    }
    lua_getfield(L, rb, "params"); /* resolved: a required param without value is nil */
    int resolved = lua_gettop(L);
    if (lua_istable(L, spec)) {
        lua_pushnil(L);
        while (lua_next(L, spec)) {
            int required = lua_istable(L, -1) && rb_opt_bool(L, lua_gettop(L), "required", 0);
            lua_pop(L, 1);
            if (!required || lua_type(L, -1) != LUA_TSTRING)
                continue;
            int missing = lua_getfield(L, resolved, lua_tostring(L, -1)) == LUA_TNIL;
            lua_pop(L, 1);
            if (missing)
                return usage_error("schedule: %s needs --param %s=VALUE (a required param with "
                                   "no default, in runbook.yaml neither)",
                                   r->name, lua_tostring(L, -1));
        }
    }
    if (!has_schedule)
        return usage_error("schedule: %s declares no schedule (runbook{ schedule = \"daily\" } "
                           "or a cron expression)",
                           r->name);
    char err[512];
    int rc = rb_schedule_parse(r->schedule, r->name, &r->s, err, sizeof err);
    if (rc == RB_SCHEDULE_NONE)
        return usage_error("schedule: %s is run on demand (schedule = \"%s\"): nothing to "
                           "schedule",
                           r->name, r->schedule);
    if (rc != 0)
        return usage_error("schedule: %s: %s", r->path, err);
    /* `runbook run` takes the name when the library directory's runbooks/
     * holds this very file (a service sees no RUNBOOK_PATH), else the
     * absolute path */
    char dir[PATH_MAX], cand[PATH_MAX + 600], real_cand[PATH_MAX], real_path[PATH_MAX];
    if (a->workdir)
        snprintf(dir, sizeof dir, "%s", a->workdir);
    else if (!getcwd(dir, sizeof dir))
        snprintf(dir, sizeof dir, ".");
    snprintf(cand, sizeof cand, "%s/runbooks/%s.lua", dir, r->name);
    if (realpath(cand, real_cand) && realpath(r->path, real_path) &&
        strcmp(real_cand, real_path) == 0)
        snprintf(r->ref, sizeof r->ref, "%s", r->name);
    else if (!realpath(r->path, r->ref))
        snprintf(r->ref, sizeof r->ref, "%s", r->path);
    return 0;
}

/* The words after `runbook`: run NAME --yes [--env E] [--param k=v]... */
static int run_words(const sched_args *a, const scheduled *r, const char *extra[2], const char **w)
{
    int n = 0;
    w[n++] = "run";
    w[n++] = r->ref;
    w[n++] = "--yes";
    if (a->env) {
        w[n++] = "--env";
        w[n++] = a->env;
    }
    for (int i = 0; i < a->n_params; i++) {
        w[n++] = "--param";
        w[n++] = a->params[i];
    }
    for (int i = 0; i < 2 && extra[i]; i++)
        w[n++] = extra[i];
    return n;
}

/* ---- output files ------------------------------------------------------- */

/* An output file: DIR/name written whole (a temporary, then renamed), or a
 * section of standard output. */
typedef struct outfile {
    FILE *f;
    char path[PATH_MAX], tmp[PATH_MAX + 8];
} outfile;

static int out_open(outfile *o, const char *dir, const char *name)
{
    if (!dir) {
        o->f = stdout;
        o->path[0] = '\0';
        return 0;
    }
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    o->f = fopen(o->tmp, "w");
    if (!o->f)
        return usage_error("schedule: cannot write %s: %s", o->tmp, strerror(errno));
    return 0;
}

static int out_close(outfile *o)
{
    if (o->f == stdout)
        return fflush(stdout) == 0 ? 0 : 1;
    int bad = ferror(o->f) | (fclose(o->f) != 0);
    if (bad || rename(o->tmp, o->path) != 0) {
        unlink(o->tmp);
        fprintf(stderr, "runbook: schedule: cannot write %s: %s\n", o->path, strerror(errno));
        return 1;
    }
    fprintf(stderr, "wrote %s\n", o->path);
    return 0;
}

static int emit_systemd(const sched_args *a, const scheduled *r)
{
    char unit[600], cal[2][512], cwd[PATH_MAX];
    if (a->unit)
        snprintf(unit, sizeof unit, "%s", a->unit);
    else
        unit_name(r->name, 0, unit, sizeof unit);
    const char *bin = a->bin ? a->bin : "/usr/bin/runbook";
    if (bin[0] != '/')
        return usage_error("schedule: --bin %s: systemd needs an absolute path", bin);
    const char *workdir = a->workdir;
    if (!workdir) {
        if (!getcwd(cwd, sizeof cwd))
            return usage_error("schedule: cannot read the current directory: %s", strerror(errno));
        workdir = cwd;
    }
    int ncal = rb_schedule_oncalendar(&r->s, a->tz, cal);
    if (ncal < 0)
        return usage_error("schedule: %s: '%s' is too long for a systemd OnCalendar= value",
                           r->name, r->schedule);
    char svc[700], tmr[700];
    snprintf(svc, sizeof svc, "%s.service", unit);
    snprintf(tmr, sizeof tmr, "%s.timer", unit);

    outfile o;
    if (out_open(&o, a->out, svc) != 0)
        return 2;
    FILE *f = o.f;
    fprintf(f, "# %s: runbook %s, started by %s (runbook schedule --emit systemd)\n", svc, r->name,
            tmr);
    fputs("[Unit]\nDescription=runbook ", f);
    sd_text(f, r->name);
    if (r->title[0]) {
        fputs(": ", f);
        sd_text(f, r->title);
    }
    fputs("\nWants=network-online.target\nAfter=network-online.target\n\n"
          "[Service]\nType=oneshot\n",
          f);
    if (a->user) {
        fputs("User=", f);
        sd_text(f, a->user);
        fputc('\n', f);
    }
    fputs("WorkingDirectory=", f);
    sd_word(f, workdir, 0);
    fputs("\nExecStart=", f);
    sd_word(f, bin, 1);
    const char *w[8 + 2 * MAX_PARAMS], *extra[2] = {NULL, NULL};
    int n = run_words(a, r, extra, w);
    for (int i = 0; i < n; i++) {
        fputc(' ', f);
        sd_word(f, w[i], 1);
    }
    fputc('\n', f);
    if (out_close(&o) != 0)
        return 1;

    if (out_open(&o, a->out, tmr) != 0)
        return 2;
    f = o.f;
    fprintf(f, "# %s: when %s runs (schedule \"%s\", cron \"%s\")\n", tmr, svc, r->schedule,
            r->s.cron);
    fputs("[Unit]\nDescription=schedule of runbook ", f);
    sd_text(f, r->name);
    fputs(" (", f);
    sd_text(f, r->schedule);
    fputs(")\n\n[Timer]\n", f);
    for (int i = 0; i < ncal; i++)
        fprintf(f, "OnCalendar=%s\n", cal[i]);
    fputs("# a run missed while the machine was off starts at the next boot\n"
          "Persistent=true\nUnit=",
          f);
    fputs(svc, f);
    fputs("\n\n[Install]\nWantedBy=timers.target\n", f);
    return out_close(&o);
}

/* "postgres://user:secret@host/db" without its password, for a comment */
static void without_password(const char *url, char *out, size_t n)
{
    const char *scheme = strstr(url, "://"), *at = strchr(url, '@');
    const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (scheme && at && colon && colon < at)
        snprintf(out, n, "%.*s:****%s", (int)(colon - url), url, at);
    else
        snprintf(out, n, "%s", url);
}

static int emit_cronjob(const sched_args *a, const scheduled *r, rb_engine *E, rb_config *cfg)
{
    lua_State *L = E->L;
    char name[600];
    if (a->unit)
        snprintf(name, sizeof name, "%s", a->unit);
    else
        unit_name(r->name, 1, name, sizeof name);
    if (strlen(name) > 52)
        return usage_error("schedule: '%s' is longer than the 52 characters of a CronJob name "
                           "(pass --name NAME)",
                           name);
    char image[512];
    snprintf(image, sizeof image, "%s", a->image ? a->image : "runbook:" RB_VERSION);
    /* the audit log: the environment's `audit:` (it beats RUNBOOK_AUDIT),
     * else the top level's */
    char audit_url[4096] = "";
    int audit_off = 0;
    for (int pass = 0; pass < 2 && !audit_url[0] && !audit_off; pass++) {
        if (pass == 0 && !a->env)
            continue;
        config_push(cfg, L, pass == 0 ? a->env : NULL, "audit");
        if (lua_type(L, -1) == LUA_TSTRING)
            snprintf(audit_url, sizeof audit_url, "%s", lua_tostring(L, -1));
        else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            audit_off = 1;
        lua_pop(L, 1);
    }
    if (cfg->audit_off && !audit_url[0]) /* the top level's `audit: false` */
        audit_off = 1;
    int postgres =
        strncmp(audit_url, "postgres://", 11) == 0 || strncmp(audit_url, "postgresql://", 13) == 0;
    const char *extra[2] = {NULL, NULL};
    if (!postgres && !audit_off) {
        extra[0] = "--audit";
        extra[1] = AUDIT_DIR "/audit.db";
    }
    outfile o;
    char file[700];
    snprintf(file, sizeof file, "%s.yaml", name);
    if (out_open(&o, a->out, file) != 0)
        return 2;
    FILE *f = o.f;
    fprintf(f,
            "# runbook %s on schedule \"%s\" (cron \"%s\"), written by runbook schedule "
            "--emit cronjob.\n"
            "# The image must hold the library (runbooks/ and runbook.yaml in its working "
            "directory).\n",
            r->name, r->schedule, r->s.cron);
    if (postgres) {
        char shown[4096];
        without_password(audit_url, shown, sizeof shown);
        fprintf(f,
                "# Audit log: the team's PostgreSQL log from runbook.yaml (%s); a password "
                "not in the URL\n# comes from the Secret as PGPASSWORD.\n",
                shown);
    } else if (audit_off) {
        fputs("# Audit log: off (audit: false in runbook.yaml).\n", f);
    } else {
        fprintf(f,
                "# Audit log: SQLite on the volume `audit` (%s); runbook.yaml can name a "
                "PostgreSQL log\n# (audit: postgres://...) that every run shares.\n",
                a->pvc ? "a PersistentVolumeClaim"
                       : "an emptyDir: lost with the pod unless "
                         "--audit-pvc names a claim");
    }
    fputs("apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: ", f);
    yq(f, name);
    if (a->ns) {
        fputs("\n  namespace: ", f);
        yq(f, a->ns);
    }
    fputs("\n  labels:\n    app.kubernetes.io/name: runbook\n    app.kubernetes.io/instance: ", f);
    yq(f, name);
    fputs("\n  annotations:\n    runbook/runbook: ", f);
    yq(f, r->name);
    fputs("\n    runbook/schedule: ", f);
    yq(f, r->schedule);
    fputs("\nspec:\n  schedule: ", f);
    yq(f, r->s.cron);
    if (a->tz) {
        fputs("\n  timeZone: ", f);
        yq(f, a->tz);
    }
    fputs("\n  # a run still going when the next is due: the next one is skipped\n"
          "  concurrencyPolicy: Forbid\n"
          "  successfulJobsHistoryLimit: 3\n  failedJobsHistoryLimit: 3\n"
          "  jobTemplate:\n    spec:\n"
          "      # a failed run is reported, not retried: its steps acted already\n"
          "      backoffLimit: 0\n"
          "      template:\n        metadata:\n          labels:\n"
          "            app.kubernetes.io/name: runbook\n"
          "            app.kubernetes.io/instance: ",
          f);
    yq(f, name);
    fputs("\n        spec:\n          restartPolicy: Never\n"
          "          # the image's user; fsGroup makes the audit volume writable to it\n"
          "          securityContext:\n            runAsNonRoot: true\n"
          "            runAsUser: " IMAGE_UID "\n            fsGroup: " IMAGE_UID "\n"
          "          containers:\n"
          "            - name: runbook\n              image: ",
          f);
    yq(f, image);
    fputs("\n              args:\n", f);
    const char *w[8 + 2 * MAX_PARAMS];
    int n = run_words(a, r, extra, w);
    for (int i = 0; i < n; i++) {
        fputs("                - ", f);
        yq(f, w[i]);
        fputc('\n', f);
    }
    if (a->secret) {
        fputs("              envFrom:\n                - secretRef:\n                    name: ",
              f);
        yq(f, a->secret);
        fputc('\n', f);
    }
    if (!postgres && !audit_off) {
        fputs("              volumeMounts:\n                - name: audit\n"
              "                  mountPath: " AUDIT_DIR "\n"
              "          volumes:\n            - name: audit\n",
              f);
        if (a->pvc) {
            fputs("              persistentVolumeClaim:\n                claimName: ", f);
            yq(f, a->pvc);
            fputc('\n', f);
        } else {
            fputs("              emptyDir: {}\n", f);
        }
    }
    return out_close(&o);
}

/* ---- --list ------------------------------------------------------------- */

static int parse_from(const char *s, time_t *out)
{
    if (s[0] == '@') { /* @EPOCH, as date(1) and systemd read it */
        char *end;
        long long v = strtoll(s + 1, &end, 10);
        *out = (time_t)v;
        return end != s + 1 && !*end ? 0 : -1;
    }
    struct tm t = {0};
    const char *end = strptime(s, "%Y-%m-%d %H:%M", &t);
    if (!end || *end)
        end = strptime(s, "%Y-%m-%dT%H:%M", &t);
    if (!end || *end)
        return -1;
    t.tm_isdst = -1;
    *out = mktime(&t);
    return *out == (time_t)-1 ? -1 : 0;
}

static int list_schedules(const sched_args *a)
{
    time_t from = time(NULL);
    if (a->from && parse_from(a->from, &from) != 0)
        return usage_error("schedule: --from %s: expected YYYY-MM-DD HH:MM (local time) or @EPOCH",
                           a->from);
    file_list roots = {0}, files = {0};
    for (int i = 0; i < a->n_dirs; i++) {
        char **np = realloc(roots.paths, (size_t)(roots.n + 1) * sizeof *np);
        if (!np)
            return 2;
        roots.paths = np;
        roots.paths[roots.n++] = strdup(a->dirs[i]);
    }
    rb_engine *E = library_open(rb_builtin_modules, &roots, &files);
    if (!E)
        return 2;
    lua_State *L = E->L;
    int bad = 0, header = 0;
    for (int i = 0; i < files.n; i++) {
        if (rbfile_load(L, files.paths[i], 0) != 0) {
            fprintf(stderr, "runbook: skipping %s\n", lua_tostring(L, -1));
            lua_settop(L, 0);
            continue;
        }
        lua_getfield(L, -1, "meta");
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "schedule");
        const char *name = lua_tostring(L, -2), *text = lua_tostring(L, -1);
        rb_schedule s;
        char err[512];
        int rc = text ? rb_schedule_parse(text, name, &s, err, sizeof err) : RB_SCHEDULE_NONE;
        if (rc == RB_SCHEDULE_NONE) {
            lua_settop(L, 0);
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "runbook: %s: %s\n", files.paths[i], err);
            bad++;
            lua_settop(L, 0);
            continue;
        }
        time_t next = rb_schedule_next(&s, from);
        char when[64];
        struct tm tm;
        localtime_r(&next, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M %Z", &tm);
        if (a->json) {
            jsonw w;
            jw_init(&w);
            jw_obj(&w);
            jw_kstr(&w, "name", name);
            jw_kstr(&w, "schedule", text);
            jw_kstr(&w, "cron", s.cron);
            jw_kstr(&w, "next", when);
            jw_kint(&w, "next_epoch", (long long)next);
            jw_kstr(&w, "path", files.paths[i]);
            jw_obj_end(&w);
            puts(jw_str_result(&w));
            jw_free(&w);
        } else {
            if (!header++)
                printf("%-40s %-14s %-16s %s\n", "NAME", "SCHEDULE", "CRON", "NEXT RUN");
            printf("%-40s %-14s %-16s %s\n", name, text, s.cron, when);
        }
        lua_settop(L, 0);
    }
    if (!header && !a->json)
        fprintf(stderr, "runbook: no scheduled runbooks in the library\n");
    engine_free(E);
    file_list_free(&roots);
    file_list_free(&files);
    return bad ? 1 : 0;
}

/* ---- argv --------------------------------------------------------------- */

static int parse_args(int argc, char **argv, sched_args *a)
{
    static const struct {
        const char *flag;
        size_t off;
    } valued[] = {
        {"--emit", offsetof(sched_args, emit)},    {"--env", offsetof(sched_args, env)},
        {"--out", offsetof(sched_args, out)},      {"--name", offsetof(sched_args, unit)},
        {"--time-zone", offsetof(sched_args, tz)}, {"--bin", offsetof(sched_args, bin)},
        {"--user", offsetof(sched_args, user)},    {"--workdir", offsetof(sched_args, workdir)},
        {"--image", offsetof(sched_args, image)},  {"--secret", offsetof(sched_args, secret)},
        {"--namespace", offsetof(sched_args, ns)}, {"--audit-pvc", offsetof(sched_args, pvc)},
        {"--from", offsetof(sched_args, from)},
    };
    a->params = calloc((size_t)argc + 1, sizeof *a->params);
    a->dirs = calloc((size_t)argc + 1, sizeof *a->dirs);
    if (!a->params || !a->dirs)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(HELP, stdout);
            return -1;
        }
        if (strcmp(arg, "--list") == 0) {
            a->list = 1;
            continue;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = 1;
            continue;
        }
        int matched = 0;
        for (size_t k = 0; k < sizeof valued / sizeof *valued && !matched; k++) {
            size_t fl = strlen(valued[k].flag);
            const char *val = NULL;
            if (strcmp(arg, valued[k].flag) == 0) {
                if (i + 1 >= argc)
                    return usage_error("schedule: %s needs a value (see runbook schedule --help)",
                                       arg);
                val = argv[++i];
            } else if (strncmp(arg, valued[k].flag, fl) == 0 && arg[fl] == '=') {
                val = arg + fl + 1;
            } else {
                continue;
            }
            matched = 1;
            *(const char **)((char *)a + valued[k].off) = val;
        }
        if (matched)
            continue;
        if (strcmp(arg, "--param") == 0 || strncmp(arg, "--param=", 8) == 0) {
            const char *p = arg[7] == '=' ? arg + 8 : i + 1 < argc ? argv[++i] : NULL;
            if (!p || !strchr(p, '=') || p[0] == '=')
                return usage_error("schedule: --param %s: expected NAME=VALUE", p ? p : "");
            if (a->n_params == MAX_PARAMS)
                return usage_error("schedule: more than %d --param", MAX_PARAMS);
            a->params[a->n_params++] = (char *)p;
        } else if (arg[0] == '-') {
            /* the flags above, without their dashes, up to the NULL that ends them */
            const char *known[sizeof valued / sizeof *valued + 5] = {"list", "json", "param",
                                                                     "help"};
            for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
                known[4 + k] = valued[k].flag + 2;
            return unknown_flag("schedule", arg, known);
        } else {
            a->dirs[a->n_dirs++] = (char *)arg;
        }
    }
    return 0;
}

int cmd_schedule(int argc, char **argv)
{
    sched_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.params);
        free(a.dirs);
        return rc < 0 ? 0 : rc;
    }
    if (a.list) {
        if (a.emit)
            rc = usage_error("schedule: --list and --emit are exclusive");
        else
            rc = list_schedules(&a);
        free(a.params);
        free(a.dirs);
        return rc;
    }
    if (a.json || a.from) {
        free(a.params);
        free(a.dirs);
        return usage_error("schedule: %s goes with --list", a.json ? "--json" : "--from");
    }
    if (a.n_dirs != 1 || !a.emit) {
        free(a.params);
        free(a.dirs);
        return usage_error(a.n_dirs > 1 ? "schedule: one runbook at a time"
                                        : "schedule: which runbook and what? (runbook schedule "
                                          "NAME --emit systemd|cronjob, or --list)");
    }
    a.name = a.dirs[0];
    int systemd = strcmp(a.emit, "systemd") == 0, cronjob = strcmp(a.emit, "cronjob") == 0;
    if (!systemd && !cronjob)
        rc = usage_error("schedule: --emit %s: expected systemd or cronjob", a.emit);
    struct stat st;
    if (!rc && a.out && (stat(a.out, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = usage_error("schedule: --out %s: not a directory", a.out);
    rb_engine *E = rc ? NULL : library_engine(rb_builtin_modules);
    rb_config cfg = {0};
    char err[4096];
    if (!rc && !E)
        rc = 2;
    if (!rc) {
        E->config = &cfg;
        if (config_load(&cfg, E->L, E->modules, NULL, 0, err, sizeof err) != 0) {
            E->config = NULL;
            rc = usage_error("%s", err);
        }
    }
    if (!rc && a.env) {
        lua_State *L = E->L;
        config_push(&cfg, L, NULL, "environments");
        int ok = lua_istable(L, -1) && (lua_pushstring(L, a.env), lua_rawget(L, -2)) == LUA_TTABLE;
        lua_settop(L, 0);
        if (!ok)
            rc = usage_error("schedule: --env %s: no such environment in %s", a.env,
                             cfg.path[0] ? cfg.path : "runbook.yaml (there is none here)");
    }
    scheduled *r = rc ? NULL : calloc(1, sizeof *r);
    if (!rc && !r)
        rc = 2;
    if (!rc)
        rc = load_scheduled(E, &a, r);
    if (!rc) {
        lua_settop(E->L, 0);
        rc = systemd ? emit_systemd(&a, r) : emit_cronjob(&a, r, E, &cfg);
    }
    free(r);
    if (E) {
        E->config = NULL;
        engine_free(E);
    }
    free(a.params);
    free(a.dirs);
    return rc;
}
