/*
 * `runbook audit push PATH`: upload a local log (the --audit-fallback of a
 * run made while the team's log was down) into the configured log.
 *
 * Only an intact chain is pushed: a fallback log someone edited must be
 * looked at, not laundered into the shared one.  Each run is appended as a
 * new run of the target (its records in order, a new run id allocated there,
 * so ids stay increasing in the shared log) with where it came from in every
 * record: "pushed_from": {host, log, run_id, seq, hash, origin}, origin being
 * the local log's first hash (which log) and the run id.  A run whose origin
 * is already in the target is skipped, so pushing twice, or after a push that
 * was interrupted between runs, adds nothing twice.
 */
#include "audit.h"
#include "commands.h"
#include "jsonw.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct strset {
    char **v;
    int n, cap;
} strset;

static int set_add(strset *s, const char *v)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        char **nv = realloc(s->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        s->v = nv;
        s->cap = cap;
    }
    return (s->v[s->n] = strdup(v)) ? (s->n++, 0) : -1;
}

static int set_has(const strset *s, const char *v)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->v[i], v) == 0)
            return 1;
    return 0;
}

static void set_free(strset *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* The origins of the runs pushed into the target before. */
static int pushed_origins(audit *target, strset *out, char *err, size_t n)
{
    audit_cursor *c = audit_runs(target, NULL, err, n);
    if (!c)
        return -1;
    audit_record r;
    int rc;
    while ((rc = audit_next(c, &r)) == 1) {
        audit_fields f;
        if (audit_fields_parse(target, r.data, &f) != 0)
            continue;
        const audit_field *pf = audit_field_get(&f, "pushed_from");
        if (pf && pf->type == 'o') {
            audit_fields inner;
            if (audit_fields_parse(target, pf->value, &inner) == 0) {
                const char *o = audit_field_str(&inner, "origin");
                if (o && set_add(out, o) != 0)
                    rc = -1;
            }
            audit_fields_free(&inner);
        }
        audit_fields_free(&f);
        if (rc < 0)
            break;
    }
    if (rc < 0)
        snprintf(err, n, "%s", audit_error(target));
    audit_cursor_free(c);
    return rc < 0 ? -1 : 0;
}

/* data with "pushed_from" as its first field (data is a JSON object). */
static char *with_origin(const char *data, const char *from_path, const audit_record *r,
                         const char *origin)
{
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "host", rb_hostname());
    jw_kstr(&w, "log", from_path);
    jw_kstr(&w, "run_id", r->run_id);
    jw_kint(&w, "seq", r->seq);
    jw_kstr(&w, "hash", r->hash);
    jw_kstr(&w, "origin", origin);
    jw_obj_end(&w);
    const char *pf = jw_str_result(&w);
    while (*data == ' ' || *data == '\n' || *data == '\t' || *data == '\r')
        data++;
    size_t need = strlen(pf) + strlen(data) + 32;
    char *out = malloc(need);
    if (out)
        snprintf(out, need, "{\"pushed_from\":%s%s%s", pf, data[1] == '}' ? "" : ",", data + 1);
    jw_free(&w);
    return out;
}

/* Push one run's records; 0, or -1 with err. */
static int push_run(audit *target, audit *from, const char *from_path, const char *run_id,
                    const char *origin, long long *records, char *err, size_t n)
{
    audit_cursor *c = audit_records(from, run_id, NULL, err, n);
    if (!c)
        return -1;
    char new_id[40] = "";
    audit_record r;
    int rc;
    while ((rc = audit_next(c, &r)) == 1) {
        char *data = with_origin(r.data, from_path, &r, origin);
        if (!data) {
            snprintf(err, n, "out of memory");
            rc = -1;
            break;
        }
        int ok = new_id[0] ? audit_append(target, new_id, r.kind, r.ts, data, NULL)
                 : strcmp(r.kind, "run") == 0
                     ? audit_append_first(target, "run", r.ts, data, new_id, NULL)
                     : (snprintf(err, n, "run %s does not begin with its run record", run_id), -1);
        free(data);
        if (ok != 0) {
            if (new_id[0] || strcmp(r.kind, "run") == 0)
                snprintf(err, n, "%s", audit_error(target));
            rc = -1;
            break;
        }
        (*records)++;
    }
    if (rc < 0 && !err[0])
        snprintf(err, n, "%s", audit_error(from));
    audit_cursor_free(c);
    return rc < 0 ? -1 : 0;
}

int cmd_audit_push(audit *target, const char *from_path)
{
    char err[2048] = "", msg[2048];
    if (strcmp(audit_spec(target), from_path) == 0) {
        fprintf(stderr, "runbook audit push: %s is the log it would be pushed to\n", from_path);
        return 2;
    }
    audit *from = audit_open_existing(from_path, err, sizeof err);
    if (!from) {
        fprintf(stderr, "runbook audit push: %s\n", err);
        return 2;
    }
    int rc = 1;
    strset done = {0}, runs = {0};
    long long bad = 0;
    char bad_run[40] = "";
    int v = audit_verify(from, msg, sizeof msg, &bad, bad_run);
    if (v != 0) {
        fprintf(stderr,
                "runbook audit push: %s: %s; nothing was pushed (a log whose chain is "
                "broken must be looked at, not uploaded)\n",
                from_path, msg);
        rc = v < 0 ? 2 : 1;
        goto out;
    }
    /* which log this is: the hash of its first record */
    char log_id[65] = "";
    audit_cursor *c = audit_records(from, NULL, NULL, err, sizeof err);
    audit_record r;
    if (c && audit_next(c, &r) == 1)
        snprintf(log_id, sizeof log_id, "%s", r.hash);
    audit_cursor_free(c);
    if (pushed_origins(target, &done, err, sizeof err) != 0)
        goto fail;
    /* the runs in the order they began (audit_runs is newest first) */
    if (!(c = audit_runs(from, NULL, err, sizeof err)))
        goto fail;
    while (audit_next(c, &r) == 1)
        if (set_add(&runs, r.run_id) != 0)
            break;
    audit_cursor_free(c);
    int pushed = 0, skipped = 0;
    long long records = 0;
    for (int i = runs.n - 1; i >= 0; i--) {
        char origin[128];
        snprintf(origin, sizeof origin, "%.16s/%s", log_id, runs.v[i]);
        if (set_has(&done, origin)) {
            skipped++;
            continue;
        }
        if (push_run(target, from, from_path, runs.v[i], origin, &records, err, sizeof err) != 0)
            goto fail;
        pushed++;
    }
    printf("pushed %d run%s (%lld record%s) from %s to %s", pushed, pushed == 1 ? "" : "s", records,
           records == 1 ? "" : "s", from_path, audit_path(target));
    if (skipped)
        printf("; %d already there", skipped);
    printf("\n");
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "runbook audit push: %s\n", err);
out:
    set_free(&done);
    set_free(&runs);
    audit_close(from);
    return rc;
}
