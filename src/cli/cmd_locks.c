/*
 * `runbook locks`: the run locks held now in the audit log (run_locks.h),
 * who holds each, in which run and step, and since when.
 */
#include "audit.h"
#include "commands.h"
#include "config.h"
#include "modules.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: runbook locks [--audit PATH|URL] [--config FILE] [--json]\n"
    "\n"
    "The run locks held now (runbook{ lock = ... }): the lock, who holds it\n"
    "(operator@host, and the database role on a PostgreSQL log), the run, the\n"
    "step it is at and for how long.  A lock whose holder is gone (killed) is\n"
    "not held.\n"
    "\n"
    "  --audit PATH|URL the audit log the locks are kept in (default: RUNBOOK_AUDIT,\n"
    "                   then `audit:` in runbook.yaml, then\n"
    "                   $XDG_STATE_HOME/runbook/audit.db)\n"
    "  --config FILE    read FILE instead of ./runbook.yaml\n"
    "  --json           one JSON object per lock and line: name and holder fields\n";

typedef struct shown {
    audit *a;
    int json, n;
} shown;

static int show(void *ud, const char *name, const char *holder)
{
    shown *s = ud;
    s->n++;
    if (s->json) {
        printf("{\"name\":\"");
        for (const char *p = name; *p; p++) /* names are text a runbook chose */
            printf(*p == '"' || *p == '\\' ? "\\%c" : (unsigned char)*p < 0x20 ? "?" : "%c", *p);
        printf("\",\"holder\":%s}\n", holder);
        return 0;
    }
    audit_fields f;
    audit_fields_parse(s->a, holder, &f);
    const char *op = audit_field_str(&f, "operator"), *host = audit_field_str(&f, "host");
    const char *role = audit_field_str(&f, "db_role"), *since = audit_field_str(&f, "since");
    char who[256], dur[32] = "";
    snprintf(who, sizeof who, "%.64s@%.100s%s%.64s%s", op ? op : "?", host ? host : "?",
             role ? " (db role " : "", role ? role : "", role ? ")" : "");
    double t0 = since ? rb_time_parse(since) : -1;
    if (t0 > 0) {
        long t = (long)(rb_wallclock() - t0 + 0.5);
        snprintf(dur, sizeof dur,
                 t < 60     ? "%lds"
                 : t < 3600 ? "%ldm%02lds"
                            : "%ldh%02ldm",
                 t < 60     ? t
                 : t < 3600 ? t / 60
                            : t / 3600,
                 t < 3600 ? t % 60 : (t % 3600) / 60);
    }
    if (s->n == 1)
        printf("%-24s %-36s %-24s %-8s %s\n", "LOCK", "HELD BY", "RUN", "FOR", "STEP");
    const char *run = audit_field_str(&f, "run_id"), *step = audit_field_str(&f, "step");
    printf("%-24s %-36s %-24s %-8s %s\n", name, who, run ? run : "?", dur, step ? step : "");
    audit_fields_free(&f);
    return 0;
}

int cmd_locks(int argc, char **argv)
{
    static const struct option opts[] = {{"audit", required_argument, NULL, 'a'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *audit_flag = NULL, *config_file = NULL;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            audit_flag = optarg;
            break;
        case 'c':
            config_file = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        case ':':
            return usage_error("locks: %s needs a value (see runbook locks --help)",
                               argv[optind - 1]);
        default: {
            return unknown_getopt_flag("locks", argv[optind - 1], opts);
        }
        }
    }
    if (optind < argc)
        return usage_error("locks: unexpected argument '%s' (see runbook locks --help)",
                           argv[optind]);
    rb_config cfg;
    char err[4096 + 256], pathbuf[4096];
    memset(&cfg, 0, sizeof cfg);
    if (config_load(&cfg, NULL, rb_builtin_modules, config_file, config_file != NULL, err,
                    sizeof err) != 0)
        return usage_error("%s", err);
    const char *path = config_audit_path(&cfg, audit_flag, 0, pathbuf, sizeof pathbuf);
    if (!path)
        return usage_error("locks: auditing is off, and run locks are kept in the audit log");
    audit *a = audit_open_existing(path, err, sizeof err);
    if (!a) {
        /* no log yet: nobody has taken a lock in it */
        if (strstr(err, "nothing recorded") && !json)
            printf("no run locks are held (%s)\n", err);
        return strstr(err, "nothing recorded") ? 0 : usage_error("locks: %s", err);
    }
    shown s = {a, json, 0};
    int rc = audit_locks(a, show, &s);
    if (rc != 0)
        fprintf(stderr, "runbook locks: %s\n", audit_error(a));
    else if (s.n == 0 && !json)
        printf("no run locks are held in %s\n", audit_path(a));
    audit_close(a);
    return rc != 0 ? 1 : 0;
}
