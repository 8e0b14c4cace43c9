/*
 * `runbook audit list|show|export|verify`: reading the audit log for people
 * (list, show), for log shippers (export, a stable JSON Lines / CSV
 * interface) and for auditors (verify, the hash chain).  This file owns the
 * argument parsing and the output formats; the database work is audit.c's,
 * so SQLite stays behind audit.h.  The log is opened read-only in spirit:
 * nothing here creates a database or writes a record.
 */
#include "audit.h"
#include "config.h"
#include "jsonw.h"
#include "modules.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    O_AUDIT = 1 << 0,
    O_CONFIG = 1 << 1,
    O_SINCE = 1 << 2,
    O_RUNBOOK = 1 << 3,
    O_RUN = 1 << 4,
    O_FORMAT = 1 << 5,
    O_JSON = 1 << 6,
    O_LIMIT = 1 << 7,
    O_ALL = 1 << 8,
    O_OPERATOR = 1 << 9,
};

/* list shows this many runs unless told otherwise: a shared log holds years */
#define LIST_DEFAULT_LIMIT 20
/* past the limit, list counts the runs it does not show, but reads no more
 * than this many: the count must not cost a walk through years of runs */
#define LIST_COUNT_CAP 1000

typedef struct opts {
    const char *audit_path, *config_file, *since, *runbook, *run, *format, *operator_;
    const char *limit_arg;
    int json, all;
    long limit;        /* --limit, 0 when not given */
    const char *arg;   /* show's RUN_ID */
    char since_ts[32]; /* --since as an RFC 3339 lower bound */
} opts;

static const struct option_def {
    const char *name;
    unsigned bit;
    int takes_value;
} option_defs[] = {
    {"--audit", O_AUDIT, 1},       {"--config", O_CONFIG, 1}, {"--since", O_SINCE, 1},
    {"--runbook", O_RUNBOOK, 1},   {"--run", O_RUN, 1},       {"--format", O_FORMAT, 1},
    {"--json", O_JSON, 0},         {"--limit", O_LIMIT, 1},   {"--all", O_ALL, 0},
    {"--operator", O_OPERATOR, 1},
};

static int cmd_list(audit *a, opts *o);
static int cmd_show(audit *a, opts *o);
static int cmd_export(audit *a, opts *o);
static int cmd_verify(audit *a, opts *o);
static int cmd_push(audit *a, opts *o)
{
    return cmd_audit_push(a, o->arg);
}

#define COMMON_HELP                                                                                \
    "  --audit PATH     the audit database (default: RUNBOOK_AUDIT, then `audit:` in\n"            \
    "                   runbook.yaml, then $XDG_STATE_HOME/runbook/audit.db)\n"                    \
    "  --config FILE    read FILE instead of ./runbook.yaml\n"

static const struct subcmd {
    const char *name;
    int (*fn)(audit *a, opts *o);
    unsigned flags;
    int takes_arg;
    const char *help;
} subcmds[] = {
    {"list", cmd_list,
     O_AUDIT | O_CONFIG | O_SINCE | O_RUNBOOK | O_OPERATOR | O_LIMIT | O_ALL | O_JSON, 0,
     "usage: runbook audit list [--limit N | --all] [--since 24h] [--runbook NAME]\n"
     "                          [--operator NAME] [--json]\n"
     "\n"
     "The most recent runs (20 unless told otherwise), one line each, newest first:\n"
     "run id, start time (UTC), runbook, mode, operator, outcome, duration; then how\n"
     "many older runs are not shown.  A run still recorded as running whose process\n"
     "on this host is gone is shown as interrupted.\n"
     "\n"
     "  --limit N        the N most recent runs that match (default 20)\n"
     "  --all            every run that matches\n"
     "  --since T        runs started since T: a duration ago (90s, 30m, 24h, 7d), an\n"
     "                   RFC 3339 time (2026-12-01T08:00:00Z, 2026-12-01T09:00:00+01:00)\n"
     "                   or a date (2026-12-01: its midnight UTC)\n"
     "  --runbook NAME   runs of NAME (or of the runbooks under NAME/)\n"
     "  --operator NAME  runs of the account NAME: the operator, whoever elevated it\n"
     "                   with sudo or pkexec, or the database role that wrote it\n"
     "                   (never the operator_name a run claims)\n"
     "  --json           one JSON object per line, written as each run is read,\n"
     "                   fields as in `audit export`\n" COMMON_HELP},
    {"show", cmd_show, O_AUDIT | O_CONFIG | O_JSON, 1,
     "usage: runbook audit show RUN_ID [--json]\n"
     "\n"
     "The run (a unique prefix of its id is enough): its header, then its steps\n"
     "and actions in the order they were recorded.  Times are UTC.\n"
     "\n"
     "  --json           the run's records, one JSON object per line\n" COMMON_HELP},
    {"export", cmd_export, O_AUDIT | O_CONFIG | O_SINCE | O_RUN | O_FORMAT, 0,
     "usage: runbook audit export [--format jsonl|csv] [--run RUN_ID] [--since 24h]\n"
     "\n"
     "Every record in order, for log shippers.  jsonl (the default): one object per\n"
     "record with kind, run_id, seq, ts, hash, prev_hash and the record's fields.\n"
     "csv: a header row and the columns\n"
     "  kind,run_id,seq,ts,hash,prev_hash,runbook,mode,operator,outcome,exit_code,\n"
     "  index,name,status,step,primitive,verb,target,class,simulated,duration_ms,answer\n"
     "\n"
     "  --format F       jsonl or csv\n"
     "  --run RUN_ID     only this run's records (a unique prefix is enough)\n"
     "  --since D        records of the last D (90s, 30m, 24h, 7d)\n" COMMON_HELP},
    {"push", cmd_push, O_AUDIT | O_CONFIG, 1,
     "usage: runbook audit push PATH\n"
     "\n"
     "Upload the local log at PATH (written with --audit-fallback while the shared\n"
     "log could not be reached) into the configured log.  Its chain is verified\n"
     "first: a broken one is not pushed (exit 1).  Each run becomes a new run of\n"
     "the shared log, every record carrying pushed_from (host, log, run_id, seq,\n"
     "hash); runs pushed before are skipped.\n"
     "\n" COMMON_HELP},
    {"verify", cmd_verify, O_AUDIT | O_CONFIG, 0,
     "usage: runbook audit verify\n"
     "\n"
     "Check the hash chain of every record.  Exit 0 when it is intact; exit 1 naming\n"
     "the run and seq of the first record that was altered, inserted or follows a\n"
     "deleted one.\n"
     "\n" COMMON_HELP},
};

#define N_SUBCMDS (sizeof subcmds / sizeof subcmds[0])

static const char top_help[] = "usage: runbook audit list|show|export|verify|push [options]\n"
                               "\n"
                               "  list     runs, newest first\n"
                               "  show     one run, step by step\n"
                               "  export   every record as JSON Lines or CSV\n"
                               "  verify   check the hash chain\n"
                               "  push     upload a fallback log into the configured one\n"
                               "\n"
                               "`runbook audit COMMAND --help` for the options of each.\n";

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("runbook audit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* " (did you mean '--json'?)" for a typo of an option sc takes, else "" */
static const char *option_hint(const struct subcmd *sc, const char *arg, char *buf, size_t n)
{
    const char *names[sizeof option_defs / sizeof option_defs[0] + 2];
    size_t k = 0;
    for (size_t i = 0; i < sizeof option_defs / sizeof option_defs[0]; i++)
        if (sc->flags & option_defs[i].bit)
            names[k++] = option_defs[i].name + 2;
    names[k++] = "help";
    names[k] = NULL;
    return rb_flag_hint(arg, names, buf, n);
}

/* --name VALUE, --name=VALUE and flags; anything else is a usage error
 * naming it, so a typo never silently widens an export. */
static int parse_args(const struct subcmd *sc, int argc, char **argv, opts *o, int *help)
{
    int only_args = 0;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_args && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            *help = 1;
            return 0;
        }
        if (!only_args && strcmp(arg, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (only_args || arg[0] != '-' || arg[1] == '\0') {
            if (!sc->takes_arg || o->arg)
                return usage_error(
                    "unexpected argument '%s' for '%s' (see runbook audit %s --help)", arg,
                    sc->name, sc->name);
            o->arg = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct option_def *def = NULL;
        for (size_t k = 0; k < sizeof option_defs / sizeof option_defs[0]; k++)
            if (strlen(option_defs[k].name) == nlen &&
                strncmp(option_defs[k].name, arg, nlen) == 0 && (sc->flags & option_defs[k].bit))
                def = &option_defs[k];
        if (!def) {
            char hint[160];
            if (*option_hint(sc, arg, hint, sizeof hint))
                return usage_error("unknown option '%.*s' for '%s'%s", (int)nlen, arg, sc->name,
                                   hint);
            return usage_error("unknown option '%.*s' for '%s' (see runbook audit %s --help)",
                               (int)nlen, arg, sc->name, sc->name);
        }
        const char *value = NULL;
        if (def->takes_value) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                value = argv[++i];
            else if (i + 1 < argc) /* `--operator --json`: a forgotten value */
                return usage_error("%s needs a value (give %s=%s if that is it)", def->name,
                                   def->name, argv[i + 1]);
            else
                return usage_error("%s needs a value", def->name);
            if (!*value)
                return usage_error("%s needs a value", def->name);
        } else if (eq) {
            return usage_error("%s takes no value", def->name);
        }
        switch (def->bit) {
        case O_AUDIT:
            o->audit_path = value;
            break;
        case O_CONFIG:
            o->config_file = value;
            break;
        case O_SINCE:
            o->since = value;
            break;
        case O_RUNBOOK:
            o->runbook = value;
            break;
        case O_RUN:
            o->run = value;
            break;
        case O_FORMAT:
            o->format = value;
            break;
        case O_JSON:
            o->json = 1;
            break;
        case O_LIMIT:
            o->limit_arg = value;
            break;
        case O_ALL:
            o->all = 1;
            break;
        case O_OPERATOR:
            o->operator_ = value;
            break;
        }
    }
    return 0;
}

/* n digits at *p into *v; *p moves past them */
static int digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        *v = *v * 10 + (**p - '0');
    }
    return 0;
}

/* the character c at *p, moving past it; never past the end */
static int lit(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

/* An RFC 3339 time as the log writes its own (UTC, milliseconds), so that
 * it compares with recorded times as a string: "2026-12-01T09:00:00+01:00"
 * -> "2026-12-01T08:00:00.000Z".  A date alone is its midnight UTC; 't' and
 * a space may stand for 'T'.  Fractions beyond milliseconds round up, which
 * keeps "at or after" exact.  -1 when s is no such time, -2 when it has
 * no zone. */
static int parse_rfc3339(const char *s, char out[32])
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    long offset = 0;
    if (digits(&p, 4, &y) || lit(&p, '-') || digits(&p, 2, &mo) || lit(&p, '-') ||
        digits(&p, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
        return -1;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return -1;
        p++;
        if (digits(&p, 2, &h) || lit(&p, ':') || digits(&p, 2, &mi) || lit(&p, ':') ||
            digits(&p, 2, &sec) || h > 23 || mi > 59 || sec > 60)
            return -1;
        if (sec == 60) /* a leap second: the log's clock never shows one */
            sec = 59, ms = 999;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9')
                return -1;
            int scale = 100, rest = 0;
            ms = 0;
            for (; *p >= '0' && *p <= '9'; p++) {
                if (scale)
                    ms += (*p - '0') * scale, scale /= 10;
                else if (*p != '0')
                    rest = 1;
            }
            ms += rest;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) || lit(&p, ':') || digits(&p, 2, &om) || oh > 23 || om > 59)
                return -1;
            offset = sign * (oh * 3600L + om * 60L);
        } else if (!*p) {
            return -2; /* RFC 3339 names the zone; guessing one could hide runs */
        } else {
            return -1;
        }
        if (*p)
            return -1;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm) - offset;
    if (ms >= 1000)
        t += 1, ms -= 1000;
    if (t < 0) /* before any run: every run is since then */
        t = 0, ms = 0;
    struct tm utc;
    if (!gmtime_r(&t, &utc))
        return -1;
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(out, 32, "%.19s.%03dZ", base, ms % 1000);
    return 0;
}

/* --since: a duration ago, or an RFC 3339 time */
static int parse_since(const char *s, char out[32])
{
    double d = rb_parse_duration(s);
    if (d >= 0) {
        double t = rb_wallclock() - d;
        rb_time_rfc3339(out, t > 0 ? t : 0);
        return 0;
    }
    return parse_rfc3339(s, out);
}

/* --limit: digits only (no sign, no 1e3, no 0x10), 1 or more */
static int parse_limit(const char *s, long *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno == ERANGE || v < 1)
        return -1;
    *out = v;
    return 0;
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command: list, show, export, verify or push (see runbook "
                           "audit --help)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0)
        return fputs(top_help, stdout), 0;
    const struct subcmd *sc = NULL;
    for (size_t i = 0; i < N_SUBCMDS; i++)
        if (strcmp(argv[1], subcmds[i].name) == 0)
            sc = &subcmds[i];
    if (!sc) {
        const char *names[N_SUBCMDS];
        for (size_t i = 0; i < N_SUBCMDS; i++)
            names[i] = subcmds[i].name;
        const char *near = rb_did_you_mean(argv[1], names, (int)N_SUBCMDS);
        if (near)
            return usage_error("unknown command '%s' (did you mean '%s'?)", argv[1], near);
        return usage_error("unknown command '%s' (list, show, export, verify, push)", argv[1]);
    }

    opts o;
    memset(&o, 0, sizeof o);
    int help = 0;
    if (parse_args(sc, argc, argv, &o, &help) != 0)
        return 2;
    if (help)
        return fputs(sc->help, stdout), 0;
    if (sc->takes_arg && !o.arg)
        return usage_error("%s needs a RUN_ID (see runbook audit %s --help)", sc->name, sc->name);
    int since_rc = o.since ? parse_since(o.since, o.since_ts) : 0;
    if (since_rc == -2)
        return usage_error("bad --since '%s': say which zone the time is in (Z for UTC, or an "
                           "offset such as +01:00)",
                           o.since);
    if (since_rc != 0)
        return usage_error("bad --since '%s': expected a duration like 90s, 30m, 24h, 7d or an "
                           "RFC 3339 time like 2026-12-01T08:00:00Z",
                           o.since);
    if (o.limit_arg && parse_limit(o.limit_arg, &o.limit) != 0)
        return usage_error("bad --limit '%s': expected a whole number of runs, 1 or more "
                           "(--all for every run)",
                           o.limit_arg);
    if (o.limit_arg && o.all)
        return usage_error("--limit and --all contradict each other: give one");
    if (o.format && strcmp(o.format, "jsonl") != 0 && strcmp(o.format, "csv") != 0)
        return usage_error("bad --format '%s': jsonl or csv", o.format);

    /* no Lua state: config_load only reads the audit and secrets keys */
    rb_config cfg;
    char err[4096 + 256], pathbuf[4096];
    memset(&cfg, 0, sizeof cfg);
    if (config_load(&cfg, NULL, rb_builtin_modules, o.config_file, o.config_file != NULL, err,
                    sizeof err) != 0)
        return usage_error("%s", err);
    const char *path = config_audit_path(&cfg, o.audit_path, 0, pathbuf, sizeof pathbuf);
    if (!path) {
        if (cfg.audit_off)
            return usage_error("auditing is off (audit: false in %s): there is no log to read",
                               cfg.path[0] ? cfg.path : "runbook.yaml");
        return usage_error("auditing is off: there is no log to read (use --audit PATH)");
    }
    /* push writes: into a log that may not exist yet */
    audit *a = sc->fn == cmd_push ? audit_open(path, err, sizeof err)
                                  : audit_open_existing(path, err, sizeof err);
    if (!a)
        return usage_error("%s", err);
    int rc = sc->fn(a, &o);
    audit_close(a);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        usage_error("cannot write the output: %s", strerror(errno));
        return 2;
    }
    return rc;
}

/* ---- output helpers -------------------------------------------------------- */

/* Text from the log goes to a terminal: an edited row must not be able to
 * send escape sequences, so control characters other than newline and tab
 * are shown as '?'.  Lines after the first are indented by indent. */
static void put_text(const char *s, int indent)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n')
            printf("\n%*s", indent, "");
        else if (c < 0x20 && c != '\t')
            putchar('?');
        else if (c == 0x7f)
            putchar('?');
        else
            putchar(c);
    }
}

/* One column of a table: control characters (newlines included) as '?',
 * padded to width and followed by two spaces, or ending the line (width -1). */
static void put_cell(const char *s, int width)
{
    int n = 0;
    for (; *s; s++, n++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
    if (width < 0) {
        putchar('\n');
        return;
    }
    printf("%*s", width - n + 2, "");
}

static void fmt_duration(char *out, size_t n, double s)
{
    if (s < 0)
        snprintf(out, n, "-");
    else if (s < 1)
        snprintf(out, n, "%dms", (int)(s * 1000 + 0.5));
    else if (s < 60)
        snprintf(out, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)s % 3600 / 60);
}

/* 2026-11-23T13:35:12.123Z -> 2026-11-23 13:35:12 */
static void fmt_start(char *out, size_t n, const char *ts)
{
    if (!ts || strlen(ts) < 19) {
        snprintf(out, n, "%s", ts && *ts ? ts : "-");
        return;
    }
    snprintf(out, n, "%.10s %.8s", ts, ts + 11);
}

/* seconds between two recorded times, -1 when either is missing or unreadable */
static double span(const char *start, const char *end)
{
    if (!start || !end)
        return -1;
    double s = rb_time_parse(start), e = rb_time_parse(end);
    return s < 0 || e < 0 || e < s ? -1 : e - s;
}

static int print_record_json(audit *a, const audit_record *r)
{
    char *line = audit_record_json(a, r);
    if (!line)
        return usage_error("out of memory");
    puts(line);
    free(line);
    return 0;
}

static int cursor_error(audit *a)
{
    return usage_error("%s", audit_error(a));
}

/* ---- list ----------------------------------------------------------------- */

enum { L_ID, L_START, L_RUNBOOK, L_MODE, L_OPERATOR, L_OUTCOME, L_DURATION, L_COLS };
static const char *const list_head[L_COLS] = {"RUN ID",   "STARTED (UTC)", "RUNBOOK", "MODE",
                                              "OPERATOR", "OUTCOME",       "DURATION"};

static int runbook_matches(const char *filter, const char *runbook)
{
    if (!filter)
        return 1;
    if (!runbook)
        return 0;
    size_t n = strlen(filter);
    /* a library directory selects the runbooks under it */
    return strcmp(filter, runbook) == 0 || (n > 0 && strncmp(filter, runbook, n) == 0 &&
                                            (runbook[n] == '/' || filter[n - 1] == '/'));
}

/* "root (sudo from alice)": the account, and who elevated it when the run
 * was elevated (sudo_user alone in records written before elevated_by) */
static void operator_text(const audit_fields *f, char *buf, size_t n)
{
    const char *op = audit_field_str(f, "operator");
    const char *by = audit_field_str(f, "elevated_by"), *via = audit_field_str(f, "elevated_via");
    if (!by || !*by) {
        by = audit_field_str(f, "sudo_user");
        via = "sudo";
    }
    if (by && *by)
        snprintf(buf, n, "%s (%s from %s)", op ? op : "?", via && *via ? via : "elevated", by);
    else
        snprintf(buf, n, "%s", op ? op : "-");
}

static int field_is(const audit_fields *f, const char *key, const char *want)
{
    const char *v = audit_field_str(f, key);
    return v && strcmp(v, want) == 0;
}

/* --operator: the accounts a run can vouch for -- never operator_claim,
 * which is whatever runbook.yaml said */
static int operator_matches(const char *filter, const audit_fields *f, const char *role)
{
    if (!filter)
        return 1;
    /* records from before elevated_by carry SUDO_USER from any account:
     * it tells who elevated only when the operator was root */
    int legacy_sudo = !audit_field_str(f, "elevated_by") && field_is(f, "operator", "root") &&
                      field_is(f, "sudo_user", filter);
    return field_is(f, "operator", filter) || field_is(f, "elevated_by", filter) || legacy_sudo ||
           (role && strcmp(role, filter) == 0);
}

/* A run without run records (the log was edited) has no fields: it matches
 * no --runbook or --operator, and is known by its id and time only. */
static int run_matches(const opts *o, const audit_fields *f, const audit_record *r)
{
    return runbook_matches(o->runbook, audit_field_str(f, "runbook")) &&
           operator_matches(o->operator_, f, r->role);
}

/* Each line leaves as its run is read (flushed: a reader of a slow shared
 * log sees runs as they come, not when a buffer fills). */
static int list_json(audit *a, const audit_record *r)
{
    if (r->seq > 0) {
        int rc = print_record_json(a, r);
        return rc ? rc : fflush(stdout) ? 2 : 0; /* a closed pipe: stop reading */
    }
    /* a run whose run records were deleted: what is known of it */
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "kind", "run");
    jw_kstr(&w, "run_id", r->run_id);
    jw_kstr(&w, "ts", r->ts);
    jw_kstr(&w, "outcome", "unknown");
    jw_obj_end(&w);
    puts(jw_str_result(&w));
    jw_free(&w);
    return fflush(stdout) ? 2 : 0;
}

typedef struct list_table {
    char *(*rows)[L_COLS];
    size_t n, cap;
    int width[L_COLS];
} list_table;

/* One run as a table row (kept: the columns are as wide as their widest). */
static int list_row(list_table *t, const audit_record *r, const audit_fields *f)
{
    const char *outcome = r->seq > 0 ? audit_fields_outcome(f) : NULL;
    const char *start = audit_field_str(f, "start");
    if (!start)
        start = r->run_start;
    char startbuf[64], dur[32], opbuf[256];
    fmt_start(startbuf, sizeof startbuf, start);
    double d = span(start, audit_field_str(f, "end"));
    if (d < 0 && outcome && strcmp(outcome, "running") == 0) {
        /* still going: how long so far */
        char so_far[24];
        double s = rb_time_parse(start ? start : "");
        fmt_duration(so_far, sizeof so_far, s < 0 ? -1 : rb_wallclock() - s);
        snprintf(dur, sizeof dur, "(%s)", so_far);
    } else {
        fmt_duration(dur, sizeof dur, d);
    }
    operator_text(f, opbuf, sizeof opbuf);
    const char *rbname = audit_field_str(f, "runbook"), *mode = audit_field_str(f, "mode");
    const char *cols[L_COLS] = {r->run_id,
                                startbuf,
                                rbname ? rbname : "-",
                                mode ? mode : "-",
                                opbuf,
                                outcome ? outcome : "unknown",
                                dur};
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 32;
        void *nr = realloc(t->rows, ncap * sizeof *t->rows);
        if (!nr)
            return usage_error("out of memory");
        t->rows = nr;
        t->cap = ncap;
    }
    for (int k = 0; k < L_COLS; k++) {
        t->rows[t->n][k] = strdup(cols[k]);
        int w = t->rows[t->n][k] ? (int)strlen(t->rows[t->n][k]) : 0;
        if (w > t->width[k])
            t->width[k] = w;
    }
    t->n++;
    return 0;
}

/* "… 37 older runs not shown (--limit N, --all)", to stdout under the table,
 * or to stderr under JSON lines so that stdout stays one object a line */
static void list_older(const opts *o, long older, int capped)
{
    if (older == 0)
        return;
    FILE *out = o->json ? stderr : stdout;
    fprintf(out, "%s%s%ld older run%s not shown (--limit N, --all)\n",
            o->json ? "runbook audit: " : "... ", capped ? "more than " : "", older,
            older == 1 && !capped ? "" : "s");
}

static void list_none(audit *a, const opts *o)
{
    printf("no runs recorded");
    if (o->since)
        printf(" since %s", o->since_ts);
    if (o->runbook)
        printf(" of runbook %s", o->runbook);
    if (o->operator_)
        printf(" by operator %s", o->operator_);
    printf(" in %s\n", audit_path(a));
}

/* Newest first through audit_runs(), filtered here so that every backend
 * behind audit.h lists the same way; each JSON line is written as its run
 * is read, and reading stops at the limit (past it only a bounded count of
 * what is not shown). */
static int cmd_list(audit *a, opts *o)
{
    char err[1024];
    long limit = o->all ? -1 : o->limit > 0 ? o->limit : LIST_DEFAULT_LIMIT;
    audit_cursor *c = audit_runs(a, o->since ? o->since_ts : NULL, err, sizeof err);
    if (!c)
        return usage_error("%s", err);
    list_table t;
    memset(&t, 0, sizeof t);
    for (int k = 0; k < L_COLS; k++)
        t.width[k] = (int)strlen(list_head[k]);
    long shown = 0, older = 0;
    int rc, status = 0, capped = 0;
    audit_record r;
    memset(&r, 0, sizeof r); /* a backend that has no role leaves it NULL */
    while ((rc = audit_next(c, &r)) == 1) {
        int full = limit >= 0 && shown >= limit;
        audit_fields f = {NULL, 0};
        if (!full || o->runbook || o->operator_)
            audit_fields_parse(a, r.data, &f);
        int match = run_matches(o, &f, &r);
        if (match && full) {
            audit_fields_free(&f);
            if (older == LIST_COUNT_CAP) { /* one more than it will count */
                capped = 1;
                break;
            }
            older++;
            continue;
        }
        if (match) {
            status = o->json ? list_json(a, &r) : list_row(&t, &r, &f);
            shown++;
        }
        audit_fields_free(&f);
        if (status)
            break;
        memset(&r, 0, sizeof r);
    }
    if (rc < 0 && !status)
        status = cursor_error(a);
    audit_cursor_free(c);

    if (!status && !o->json) {
        if (t.n == 0) {
            list_none(a, o);
        } else {
            for (int k = 0; k < L_COLS; k++)
                put_cell(list_head[k], k == L_COLS - 1 ? -1 : t.width[k]);
            for (size_t i = 0; i < t.n; i++)
                for (int k = 0; k < L_COLS; k++)
                    put_cell(t.rows[i][k] ? t.rows[i][k] : "?", k == L_COLS - 1 ? -1 : t.width[k]);
        }
    }
    if (!status)
        list_older(o, older, capped);
    for (size_t i = 0; i < t.n; i++)
        for (int k = 0; k < L_COLS; k++)
            free(t.rows[i][k]);
    free(t.rows);
    return status;
}

/* ---- show ----------------------------------------------------------------- */

/* "label     value" with the value's later lines aligned under the first */
static void header_line(const char *label, const char *value)
{
    if (!value || !*value)
        return;
    printf("%-10s", label);
    put_text(value, 10);
    putchar('\n');
}

static void show_header(const char *run_id, const audit_fields *f, int have_run, const char *role)
{
    header_line("run", run_id);
    if (!have_run) {
        printf("          (no run record: the log was edited, see runbook audit verify)\n");
        return;
    }
    const char *rb = audit_field_str(f, "runbook"), *title = audit_field_str(f, "title");
    char buf[1024];
    if (rb && title && *title) {
        snprintf(buf, sizeof buf, "%s  (%s)", rb, title);
        header_line("runbook", buf);
    } else {
        header_line("runbook", rb);
    }
    header_line("path", audit_field_str(f, "path"));
    header_line("sha256", audit_field_str(f, "sha256"));
    /* provenance: the library checkout's commit, and whether it had changes */
    const char *commit = audit_field_str(f, "git_commit"), *dirty = audit_field_str(f, "git_dirty");
    if (commit) {
        snprintf(buf, sizeof buf, "git %s%s", commit,
                 dirty && strcmp(dirty, "true") == 0 ? " (dirty: uncommitted changes)" : "");
        header_line("library", buf);
    }
    header_line("plan", audit_field_str(f, "plan")); /* runbook apply */
    header_line("mode", audit_field_str(f, "mode"));
    /* who the system vouches for, then what the run said about itself */
    if (audit_field_str(f, "operator") || audit_field_str(f, "sudo_user")) {
        operator_text(f, buf, sizeof buf);
        header_line("operator", buf);
    }
    if (role && *role) {
        snprintf(buf, sizeof buf, "db role %s", role);
        header_line("", buf);
    }
    const char *claim = audit_field_str(f, "operator_claim");
    if (claim && *claim) {
        snprintf(buf, sizeof buf,
                 "claims to be \"%s\" (operator_name in runbook.yaml, not verified)", claim);
        header_line("", buf);
    }
    const char *host = audit_field_str(f, "host"), *pid = audit_field_str(f, "pid");
    if (host || pid) {
        snprintf(buf, sizeof buf, "%s%s%s", host ? host : "", host && pid ? ", pid " : "",
                 pid ? pid : "");
        header_line("host", buf);
    }
    header_line("env", audit_field_str(f, "env"));
    header_line("params", audit_field_str(f, "params"));
    header_line("parent", audit_field_str(f, "parent_run"));
    header_line("resumes", audit_field_str(f, "resumed_from"));
    header_line("start", audit_field_str(f, "start"));
    const char *start = audit_field_str(f, "start"), *end = audit_field_str(f, "end");
    if (end) {
        char d[32];
        fmt_duration(d, sizeof d, span(start, end));
        snprintf(buf, sizeof buf, "%s  (%s)", end, d);
        header_line("end", buf);
    }
    const char *outcome = audit_fields_outcome(f), *code = audit_field_str(f, "exit_code");
    const char *recorded = audit_field_str(f, "outcome");
    if (outcome && recorded && strcmp(outcome, recorded) != 0)
        snprintf(buf, sizeof buf, "%s (recorded as %s; its process is gone)", outcome, recorded);
    else if (code)
        snprintf(buf, sizeof buf, "%s, exit code %s", outcome ? outcome : "unknown", code);
    else
        snprintf(buf, sizeof buf, "%s", outcome ? outcome : "unknown");
    header_line("outcome", buf);
    header_line("error", audit_field_str(f, "error"));
}

/* one action: class, `would:` when simulated, what, result, duration */
static void show_action(const audit_fields *f)
{
    const char *cls = audit_field_str(f, "class"), *words = audit_field_str(f, "words");
    const char *sim = audit_field_str(f, "simulated");
    const char *prim = audit_field_str(f, "primitive");
    char what[1024];
    if (prim && strcmp(prim, "confirm") == 0) {
        const char *q = words ? words : audit_field_str(f, "target");
        snprintf(what, sizeof what, "confirm: %s", q ? q : "?");
    } else if (words && *words) {
        snprintf(what, sizeof what, "%s", words);
    } else {
        const char *p = audit_field_str(f, "primitive"), *v = audit_field_str(f, "verb"),
                   *t = audit_field_str(f, "target");
        snprintf(what, sizeof what, "%s%s%s%s%s", p ? p : "?", v ? " " : "", v ? v : "",
                 t ? " " : "", t ? t : "");
    }
    printf("      %-6s  %s", cls ? cls : "?", sim && strcmp(sim, "true") == 0 ? "would: " : "");
    put_text(what, 14);
    const char *status = audit_field_str(f, "status"), *code = audit_field_str(f, "exit_code");
    const char *ms = audit_field_str(f, "duration_ms"), *answer = audit_field_str(f, "answer");
    if (status) {
        printf("  -> ");
        put_text(status, 14);
    }
    const char *http = audit_field_str(f, "http_status");
    if (http)
        printf("  HTTP %s", http);
    if (code)
        printf("  exit %s", code);
    if (ms) {
        char d[32];
        fmt_duration(d, sizeof d, strtod(ms, NULL) / 1000.0);
        printf("  %s", d);
    }
    putchar('\n');
    if (answer) {
        printf("              answer: ");
        put_text(answer, 22);
        putchar('\n');
    }
    const char *error = audit_field_str(f, "error");
    if (error) {
        printf("              error: ");
        put_text(error, 21);
        putchar('\n');
    }
}

static int is_step_end(const char *status)
{
    static const char *const ends[] = {"ok",      "failed",      "skipped",  "declined",
                                       "aborted", "interrupted", "timed out"};
    for (size_t i = 0; status && i < sizeof ends / sizeof ends[0]; i++)
        if (strcmp(status, ends[i]) == 0)
            return 1;
    return 0;
}

static void step_title(const char *index, const char *name)
{
    printf("[%s] ", index ? index : "?");
    put_text(name ? name : "", 4);
}

static int cmd_show(audit *a, opts *o)
{
    char id[40], err[1024];
    if (audit_resolve_run(a, o->arg, id, err, sizeof err) != 0)
        return usage_error("%s", err);
    audit_cursor *c = audit_records(a, id, NULL, err, sizeof err);
    if (!c)
        return usage_error("%s", err);
    audit_record r;
    int rc, status = 0;
    if (o->json) {
        while ((rc = audit_next(c, &r)) == 1)
            if ((status = print_record_json(a, &r)) != 0)
                break;
        if (rc < 0 && !status)
            status = cursor_error(a);
        audit_cursor_free(c);
        return status;
    }

    /* the header is the run's latest run record, which comes last: find it
     * first, then walk the records again */
    audit_fields head = {NULL, 0};
    int have_run = 0;
    char *role = NULL; /* the database role that wrote the run record */
    memset(&r, 0, sizeof r);
    while ((rc = audit_next(c, &r)) == 1) {
        if (r.latest_run) {
            audit_fields_free(&head);
            audit_fields_parse(a, r.data, &head);
            have_run = 1;
            free(role);
            role = r.role ? strdup(r.role) : NULL;
        }
        memset(&r, 0, sizeof r);
    }
    audit_cursor_free(c);
    if (rc < 0) {
        audit_fields_free(&head);
        free(role);
        return cursor_error(a);
    }
    show_header(id, &head, have_run, role);
    audit_fields_free(&head);
    free(role);
    putchar('\n');

    if (!(c = audit_records(a, id, NULL, err, sizeof err)))
        return usage_error("%s", err);
    /* step records are written when a step ends; its actions come before
     * it.  A step's title is printed when its first action (or its end)
     * shows up, so a step killed midway still has one. */
    char open_step[32] = "";
    while ((rc = audit_next(c, &r)) == 1) {
        if (strcmp(r.kind, "run") == 0)
            continue;
        audit_fields f;
        if (audit_fields_parse(a, r.data, &f) != 0) {
            printf("  seq %lld: %s record with malformed data (see runbook audit verify)\n", r.seq,
                   r.kind);
            continue;
        }
        if (strcmp(r.kind, "action") == 0) {
            const char *step = audit_field_str(&f, "step");
            if (step && strcmp(step, "0") != 0 && strcmp(step, open_step) != 0) {
                step_title(step, audit_field_str(&f, "step_name"));
                putchar('\n');
                snprintf(open_step, sizeof open_step, "%s", step);
            }
            show_action(&f);
        } else if (strcmp(r.kind, "step") == 0) {
            const char *index = audit_field_str(&f, "index"), *st = audit_field_str(&f, "status");
            const char *ms = audit_field_str(&f, "duration_ms");
            char d[32] = "";
            if (ms)
                fmt_duration(d, sizeof d, strtod(ms, NULL) / 1000.0);
            else
                fmt_duration(d, sizeof d,
                             span(audit_field_str(&f, "start"), audit_field_str(&f, "end")));
            if (!is_step_end(st)) {
                /* a step-start record, if the engine writes one */
                step_title(index, audit_field_str(&f, "name"));
                putchar('\n');
                snprintf(open_step, sizeof open_step, "%s", index ? index : "");
            } else {
                if (index && strcmp(index, open_step) == 0) {
                    printf("    ");
                } else {
                    step_title(index, audit_field_str(&f, "name"));
                    printf("  ");
                }
                put_text(st, 4);
                if (strcmp(d, "-") != 0)
                    printf("  %s", d);
                putchar('\n');
                const char *error = audit_field_str(&f, "error");
                if (error) {
                    printf("    error: ");
                    put_text(error, 11);
                    putchar('\n');
                }
                open_step[0] = '\0';
            }
        } else if (audit_field_str(&f, "plan")) { /* plan, approval, apply (cmd_plan.c) */
            const char *who = audit_field_str(&f, "planner") && strcmp(r.kind, "plan") == 0
                                  ? audit_field_str(&f, "planner")
                              : audit_field_str(&f, "approver") ? audit_field_str(&f, "approver")
                                                                : audit_field_str(&f, "operator");
            const char *what = audit_field_str(&f, "outcome");
            int is_plan = strcmp(r.kind, "plan") == 0;
            printf("  seq %lld: %s%s %.12s %s %s%s%s%s\n", r.seq, r.kind, is_plan ? "" : " of plan",
                   audit_field_str(&f, "plan"), is_plan ? "made by" : "by", who ? who : "?",
                   r.role ? " (db role " : "", r.role ? r.role : "", r.role ? ")" : "");
            if (what)
                printf(
                    "    %s: %s of %s planned changes made\n", what,
                    audit_field_str(&f, "changes_made") ? audit_field_str(&f, "changes_made") : "?",
                    audit_field_str(&f, "changes_planned") ? audit_field_str(&f, "changes_planned")
                                                           : "?");
        } else {
            printf("  seq %lld: %s record\n", r.seq, r.kind);
        }
        audit_fields_free(&f);
    }
    if (rc < 0)
        status = cursor_error(a);
    audit_cursor_free(c);
    return status;
}

/* ---- export --------------------------------------------------------------- */

static const char *const csv_cols[] = {"kind",        "run_id",  "seq",    "ts",       "hash",
                                       "prev_hash",   "runbook", "mode",   "operator", "outcome",
                                       "exit_code",   "index",   "name",   "status",   "step",
                                       "primitive",   "verb",    "target", "class",    "simulated",
                                       "duration_ms", "answer"};
#define N_CSV_COLS (sizeof csv_cols / sizeof csv_cols[0])

/* RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled */
static void csv_field(const char *s, int last)
{
    if (s && strpbrk(s, ",\"\r\n")) {
        putchar('"');
        for (; *s; s++) {
            if (*s == '"')
                putchar('"');
            putchar(*s);
        }
        putchar('"');
    } else if (s) {
        fputs(s, stdout);
    }
    fputs(last ? "\r\n" : ",", stdout);
}

static void csv_record(audit *a, const audit_record *r)
{
    audit_fields f;
    audit_fields_parse(a, r->data, &f); /* malformed data: empty columns */
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", r->seq);
    const char *base[] = {r->kind, r->run_id, seq, r->ts, r->hash, r->prev_hash};
    for (size_t k = 0; k < N_CSV_COLS; k++) {
        const char *v;
        if (k < sizeof base / sizeof base[0])
            v = base[k];
        else if (strcmp(csv_cols[k], "outcome") == 0 && r->latest_run)
            v = audit_fields_outcome(&f);
        else
            v = audit_field_str(&f, csv_cols[k]);
        csv_field(v, k == N_CSV_COLS - 1);
    }
    audit_fields_free(&f);
}

static int cmd_export(audit *a, opts *o)
{
    char id[40], err[1024];
    if (o->run && audit_resolve_run(a, o->run, id, err, sizeof err) != 0)
        return usage_error("%s", err);
    int csv = o->format && strcmp(o->format, "csv") == 0;
    audit_cursor *c =
        audit_records(a, o->run ? id : NULL, o->since ? o->since_ts : NULL, err, sizeof err);
    if (!c)
        return usage_error("%s", err);
    if (csv)
        for (size_t k = 0; k < N_CSV_COLS; k++)
            csv_field(csv_cols[k], k == N_CSV_COLS - 1);
    audit_record r;
    int rc, status = 0;
    while ((rc = audit_next(c, &r)) == 1) {
        if (csv)
            csv_record(a, &r);
        else if ((status = print_record_json(a, &r)) != 0)
            break;
    }
    if (rc < 0 && !status)
        status = cursor_error(a);
    audit_cursor_free(c);
    return status;
}

/* ---- verify --------------------------------------------------------------- */

static int cmd_verify(audit *a, opts *o)
{
    char msg[1024];
    int rc = audit_verify(a, msg, sizeof msg, NULL, NULL);
    if (rc < 0)
        return usage_error("%s", msg);
    printf("audit: %s\n", msg);
    return rc == 0 ? 0 : 1;
}
