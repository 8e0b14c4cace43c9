/*
 * The journal: records of runs, steps and actions, built once as JSON and
 * sent to the audit log and (with --output json) to stdout as events with
 * the export's field names; the human view is printed here as well.
 * Everything passes through redaction on the way out.
 */
#include "journal.h"
#include "audit.h"
#include "config.h"
#include "jsonw.h"
#include "landlock.h"
#include "provenance.h"
#include "util.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXCERPT 4096

static const char *c_(rb_engine *E, const char *code)
{
    return E->color ? code : "";
}
#define BOLD   "\033[1m"
#define DIM    "\033[2m"
#define RED    "\033[31m"
#define GREEN  "\033[32m"
#define YELLOW "\033[33m"
#define CYAN   "\033[36m"
#define RESET  "\033[0m"

/* Write a record: to the audit log, and as an event line in JSON mode. */
static int emit(rb_engine *E, const char *event, const char *kind, jsonw *data)
{
    char ts[32];
    rb_time_rfc3339(ts, -1);
    const char *json = jw_str_result(data);
    long long seq = 0;
    int rc = 0;
    if (E->audit && kind && !E->run_id_logged) {
        /* the log allocates the id with the run's first record (its run
         * record, or an action of the file's top-level code): ids then
         * increase strictly within a log, in the order runs began */
        rc = audit_append_first(E->audit, kind, ts, json, E->run_id, &seq);
        if (rc != 0)
            fprintf(stderr, "runbook: audit: %s\n", audit_error(E->audit));
        E->run_id_logged = rc == 0;
    } else if (E->audit && kind) {
        rc = audit_append(E->audit, E->run_id, kind, ts, json, &seq);
        if (rc != 0)
            fprintf(stderr, "runbook: audit: %s\n", audit_error(E->audit));
    }
    if (E->output == OUT_JSON) {
        fprintf(E->out, "{\"event\":\"%s\",", event);
        if (kind)
            fprintf(E->out, "\"kind\":\"%s\",", kind);
        fprintf(E->out, "\"run_id\":\"%s\",", E->run_id);
        if (seq)
            fprintf(E->out, "\"seq\":%lld,", seq);
        fprintf(E->out, "\"ts\":\"%s\"%s%s\n", ts, json[1] == '}' ? "" : ",", json + 1);
        fflush(E->out);
    }
    return rc;
}

/* An excerpt of output for a record: redacted whole, then its first EXCERPT
 * bytes -- cut first, a secret across the cut would keep its first bytes. */
static void excerpt(jsonw *w, lua_State *L, const char *key, const char *s, size_t n)
{
    if (!s || n == 0)
        return;
    const char *red = rb_redact(L, s, n);
    size_t rn = lua_rawlen(L, -1), keep = rn > EXCERPT ? EXCERPT : rn;
    while (keep < rn && keep > 0 && ((unsigned char)red[keep] & 0xC0) == 0x80)
        keep--; /* not inside a UTF-8 character */
    jw_key(w, key);
    jw_stringn(w, red, keep);
    lua_pop(L, 1);
    if (rn > keep)
        jw_kint(w, key[3] == 'o' ? "stdout_bytes" : "stderr_bytes", (long long)n);
}

static void redacted_str(jsonw *w, lua_State *L, const char *key, const char *s)
{
    if (!s)
        return;
    const char *red = rb_redact(L, s, strlen(s));
    jw_kstr(w, key, red);
    lua_pop(L, 1);
}

static void human(rb_engine *E, lua_State *L, const char *prefix_color, const char *prefix,
                  const char *text, const char *suffix)
{
    const char *red = rb_redact(L, text, strlen(text));
    fprintf(E->out, "  %s%s%s %s%s%s%s\n", c_(E, prefix_color), prefix, c_(E, RESET), red,
            suffix ? c_(E, DIM) : "", suffix ? suffix : "", suffix ? c_(E, RESET) : "");
    lua_pop(L, 1);
    fflush(E->out);
}

static void fmt_duration(char *buf, size_t n, double s)
{
    if (s < 1.0)
        snprintf(buf, n, "%.0f ms", s * 1000.0);
    else if (s < 120)
        snprintf(buf, n, "%.2f s", s);
    else
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
}

/* Opens w with the fields every action record starts with. */
static void action_header(rb_engine *E, lua_State *L, jsonw *w, const char *primitive,
                          const char *verb, const char *target, const char *words)
{
    jw_init(w);
    jw_obj(w);
    if (E->step_index)
        jw_kint(w, "step", E->step_index);
    redacted_str(w, L, "step_name", E->step_name);
    jw_kstr(w, "primitive", primitive);
    jw_kstr(w, "verb", verb);
    redacted_str(w, L, "target", target);
    redacted_str(w, L, "words", words);
}

static int action_record(rb_engine *E, lua_State *L, int args, int nargs, const rb_action *a,
                         const rb_action_result *r)
{
    jsonw w;
    action_header(E, L, &w, a->primitive, a->verb, a->target, a->words);
    if (nargs > 0) {
        jw_key(&w, "args");
        jw_arr(&w);
        for (int i = 0; i < nargs; i++)
            jw_lua(&w, L, args + i);
        jw_arr_end(&w);
    }
    jw_kstr(&w, "class", a->cls == RB_READ ? "read" : "mutate");
    jw_kbool(&w, "simulated", r->simulated);
    jw_kstr(&w, "status", r->status);
    if (r->has_exit_code)
        jw_kint(&w, "exit_code", r->exit_code);
    if (r->has_http_status)
        jw_kint(&w, "http_status", r->http_status);
    jw_kint(&w, "duration_ms", (long long)(r->duration * 1000.0 + 0.5));
    excerpt(&w, L, "stdout", r->out, r->out_len);
    excerpt(&w, L, "stderr", r->err, r->err_len);
    jw_kstr(&w, "answer", r->answer);
    redacted_str(&w, L, "evidence", r->evidence);
    redacted_str(&w, L, "error", r->error);
    jw_obj_end(&w);
    int rc = emit(E, "action", "action", &w);
    jw_free(&w);
    return rc;
}

/* A change only because the one classifier could not prove that the
 * command it runs only reads (exec's, sh's, ssh's argv): the rehearsal
 * skipped it and answered with a placeholder, and the decisions after it
 * rest on that, so the line says so and how to mark a command that only
 * reads.  Not for a call that said readonly = false, nor for one a
 * rehearsal proved to write. */
static int classified_change(lua_State *L, int args, const rb_action *a, const rb_action_result *r)
{
    if (a->cls != RB_MUTATE || r->evidence || !a->primitive || !a->fn)
        return 0;
    int top = lua_gettop(L);
    int said = a->opts > 0 && lua_istable(L, args + a->opts - 1) &&
               lua_getfield(L, args + a->opts - 1, "readonly") == LUA_TBOOLEAN;
    lua_settop(L, top);
    if (said)
        return 0;
    /* only a call the runbook wrote can take readonly: not one the engine's
     * own Lua or the stdlib makes (db.backup's pg_dump writes its file) */
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "S", &ar);
        if (strcmp(ar.what, "C") == 0)
            continue;
        if (strncmp(ar.source, "=runbook/", 9) == 0 || strncmp(ar.source, "=stdlib/", 8) == 0)
            return 0;
        break;
    }
    int runs_command = 0;
    if (rb_push_row(L, a->primitive, a->fn) == LUA_TTABLE &&
        lua_getfield(L, -1, "row") == LUA_TLIGHTUSERDATA) {
        const rb_fn *row = lua_touserdata(L, -1);
        rb_push_action_fields(L, a);
        runs_command = !row->rehearse && (lua_getfield(L, -1, "argv") != LUA_TNIL ||
                                          lua_getfield(L, -2, "command") != LUA_TNIL);
    }
    lua_settop(L, top);
    return runs_command;
}

int journal_action(rb_engine *E, lua_State *L, int args, int nargs, const rb_action *a,
                   const rb_action_result *r)
{
    E->n_actions++;
    if (a->cls == RB_MUTATE)
        E->n_mutations++;
    if (r->simulated)
        E->n_simulated++;
    int rc = 0;
    if (E->audit || E->output == OUT_JSON) /* with neither, there is no record to build */
        rc = action_record(E, L, args, nargs, a, r);
    if (E->strategy->journaled)
        E->strategy->journaled(E, L, a, r);
    if (E->on_action)
        E->on_action(E, L, a, r);
    if (E->output == OUT_TEXT) {
        char d[32], suffix[64];
        fmt_duration(d, sizeof d, r->duration);
        if (r->simulated) {
            const char *ev =
                r->evidence ? lua_pushfstring(L, "  (%s)", r->evidence)
                : classified_change(L, args, a, r)
                    ? lua_pushstring(
                          L, "  (classified as a change; mark it readonly = true if it only reads)")
                    : NULL;
            human(E, L, YELLOW, "would:", a->words, ev);
            if (ev)
                lua_pop(L, 1);
        } else if (strcmp(r->status, "error") == 0) {
            snprintf(suffix, sizeof suffix, "  (%s)", d);
            human(E, L, RED, "✗", a->words, suffix);
        } else if (strcmp(r->status, "declined") == 0) {
            human(E, L, YELLOW, "declined:", a->words, NULL);
        } else if (a->cls == RB_MUTATE || E->verbose) {
            if (r->has_exit_code && r->exit_code != 0)
                snprintf(suffix, sizeof suffix, "  (exit %lld, %s)", r->exit_code, d);
            else
                snprintf(suffix, sizeof suffix, "  (%s)", d);
            human(E, L, a->cls == RB_MUTATE ? CYAN : DIM, a->cls == RB_MUTATE ? "→" : "·", a->words,
                  suffix);
        }
    }
    return rc;
}

int journal_answer(rb_engine *E, lua_State *L, const char *verb, const char *question,
                   const char *answer)
{
    jsonw w;
    action_header(E, L, &w, "confirm", verb, question, question);
    jw_kstr(&w, "class", "read");
    jw_kbool(&w, "simulated", 0);
    jw_kstr(&w, "status", "ok");
    jw_kstr(&w, "answer", answer);
    jw_kstr(&w, "operator", rb_username());
    jw_obj_end(&w);
    int rc = emit(E, "action", "action", &w);
    jw_free(&w);
    return rc;
}

/* Who elevated a run, recorded only when the real uid is root: then
 * SUDO_USER and PKEXEC_UID were set by sudo and pkexec (and root could
 * claim anything anyway); from anyone else they are just variables. */
static void elevation_fields(jsonw *w)
{
    if (getuid() != 0)
        return;
    const char *sudo = getenv("SUDO_USER");
    if (sudo && *sudo) {
        jw_kstr(w, "sudo_user", sudo);
        jw_kstr(w, "elevated_by", sudo);
        jw_kstr(w, "elevated_via", "sudo");
        return;
    }
    const char *pk = getenv("PKEXEC_UID");
    if (pk && *pk && strspn(pk, "0123456789") == strlen(pk) && strlen(pk) < 11) {
        unsigned long uid = strtoul(pk, NULL, 10);
        if (uid >= 0xffffffffUL) /* (uid_t)-1 is no account, and beyond is none */
            return;
        /* resolved once: the start and end records of a run name the same
         * account even if the passwd database cannot be read later */
        static char name[64];
        if (!name[0]) {
            struct passwd *pw = getpwuid((uid_t)uid);
            if (pw && pw->pw_name && *pw->pw_name)
                snprintf(name, sizeof name, "%s", pw->pw_name);
            else
                snprintf(name, sizeof name, "uid %lu", uid);
        }
        jw_kstr(w, "elevated_by", name);
        jw_kstr(w, "elevated_via", "pkexec");
    }
}

/* operator_name from runbook.yaml: a display name the file claims, kept
 * apart from the operator and never used to decide anything */
static void operator_claim(rb_engine *E, lua_State *L, jsonw *w)
{
    config_push(E->config, L, NULL, "operator_name");
    if (lua_type(L, -1) == LUA_TSTRING)
        redacted_str(w, L, "operator_claim", lua_tostring(L, -1));
    lua_pop(L, 1);
}

static void run_fields(rb_engine *E, lua_State *L, jsonw *w)
{
    redacted_str(w, L, "runbook", E->runbook_name);
    redacted_str(w, L, "title", E->runbook_title);
    jw_kstr(w, "path", E->path);
    jw_kstr(w, "sha256", E->sha256);
    char commit[65];
    int dirty;
    /* the library's checkout; not for a record nobody keeps (a scenario's) */
    if ((E->audit || E->output == OUT_JSON) && E->mode != MODE_SCENARIO &&
        rb_git_provenance(E->path, commit, &dirty) == 0) {
        jw_kstr(w, "git_commit", commit);
        jw_kbool(w, "git_dirty", dirty);
    }
    /* the plan an apply carries out (src/modes/apply.c) */
    if (lua_getfield(L, LUA_REGISTRYINDEX, "runbook.apply_plan") == LUA_TSTRING)
        jw_kstr(w, "plan", lua_tostring(L, -1));
    lua_pop(L, 1);
    jw_key(w, "params");
    jw_raw(w, E->params_json ? E->params_json : "{}");
    jw_kstr(w, "mode", mode_name(E->mode));
    jw_kstr(w, "operator", rb_username());
    elevation_fields(w);
    operator_claim(E, L, w);
    jw_kstr(w, "host", rb_hostname());
    jw_kint(w, "pid", (long long)getpid());
    jw_kint(w, "pid_start", (long long)rb_pid_start(getpid()));
    jw_kstr(w, "env", E->env_name);
    if (E->resumed_from[0])
        jw_kstr(w, "resumed_from", E->resumed_from);
    char ts[32];
    rb_time_rfc3339(ts, E->started);
    jw_kstr(w, "start", ts);
}

int journal_run_start(rb_engine *E, lua_State *L)
{
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    run_fields(E, L, &w);
    jw_kstr(&w, "outcome", "running");
    jw_obj_end(&w);
    int rc = emit(E, "run_start", "run", &w);
    jw_free(&w);
    if (E->output == OUT_TEXT && E->depth == 0 && E->mode != MODE_REPL) {
        const char *mode = E->dry_run ? "  [dry-run: nothing will be changed]" : "";
        fprintf(E->out, "%s▶ %s%s%s%s%s\n", c_(E, BOLD), E->runbook_name,
                E->runbook_title ? " — " : "", E->runbook_title ? E->runbook_title : "",
                c_(E, RESET), mode);
        fprintf(E->out, "%s  run %s%s%s\n", c_(E, DIM), E->run_id, E->audit ? "" : " (not audited)",
                c_(E, RESET));
        fflush(E->out);
    }
    /* the engine confines itself for a dry-run (src/modes/dry_run.c) */
    if (E->dry_run && E->depth == 0 && E->mode != MODE_REPL && rb_landlock_why_not()) {
        char msg[160];
        snprintf(msg, sizeof msg, "dry-run not kernel-enforced (%s)", rb_landlock_why_not());
        journal_log(E, L, "warn", msg);
    }
    return rc;
}

void journal_step_start(rb_engine *E, lua_State *L, int index, int total, const char *name,
                        const char *description)
{
    if (E->dry_run) { /* the plan's [2/4 Drain] (src/modes/dry_run.c) */
        lua_pushinteger(L, total);
        lua_setfield(L, LUA_REGISTRYINDEX, JOURNAL_STEP_TOTAL);
    }
    if (E->output == OUT_JSON) {
        jsonw w;
        jw_init(&w);
        jw_obj(&w);
        jw_kint(&w, "index", index);
        jw_kint(&w, "total", total);
        redacted_str(&w, L, "name", name);
        redacted_str(&w, L, "description", description);
        jw_obj_end(&w);
        emit(E, "step_start", NULL, &w);
        jw_free(&w);
        return;
    }
    if (E->prompted) {
        E->prompted = 0;
        return;
    }
    const char *red = rb_redact(L, name, strlen(name));
    if (total > 0)
        fprintf(E->out, "%s[%d/%d] %s%s\n", c_(E, BOLD), index, total, red, c_(E, RESET));
    else
        fprintf(E->out, "%s[%d] %s%s\n", c_(E, BOLD), index, red, c_(E, RESET));
    lua_pop(L, 1);
    fflush(E->out);
}

int journal_step(rb_engine *E, lua_State *L, int index, int total, const char *name,
                 const char *status, double start, double end, const char *error, int state)
{
    if (E->strategy->step_done && E->depth == 0)
        E->strategy->step_done(E, index, name, status);
    char ts[32];
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kint(&w, "index", index);
    redacted_str(&w, L, "name", name);
    jw_kstr(&w, "status", status);
    if (start > 0) {
        rb_time_rfc3339(ts, start);
        jw_kstr(&w, "start", ts);
        rb_time_rfc3339(ts, end);
        jw_kstr(&w, "end", ts);
        jw_kint(&w, "duration_ms", (long long)((end - start) * 1000.0 + 0.5));
    }
    redacted_str(&w, L, "error", error);
    if (state) {
        jw_key(&w, "state");
        jw_lua(&w, L, state);
    }
    jw_obj_end(&w);
    int rc = emit(E, "step_end", "step", &w);
    jw_free(&w);
    if (E->output == OUT_TEXT) {
        char d[32] = "";
        if (start > 0)
            fmt_duration(d, sizeof d, end - start);
        const char *red = rb_redact(L, name, strlen(name));
        if (strcmp(status, "ok") == 0)
            fprintf(E->out, "%s✓%s [%d/%d] %s %s(%s)%s\n", c_(E, GREEN), c_(E, RESET), index, total,
                    red, c_(E, DIM), d, c_(E, RESET));
        else if (strcmp(status, "failed") == 0 || strcmp(status, "interrupted") == 0)
            fprintf(E->out, "%s✗%s [%d/%d] %s %s(%s)%s\n", c_(E, RED), c_(E, RESET), index, total,
                    red, c_(E, DIM), d, c_(E, RESET));
        else
            fprintf(E->out, "%s-%s [%d/%d] %s %s(%s%s%s)%s\n", c_(E, YELLOW), c_(E, RESET), index,
                    total, red, c_(E, DIM), status, error ? ": " : "", error ? error : "",
                    c_(E, RESET));
        lua_pop(L, 1);
        if (error && (strcmp(status, "failed") == 0 || strcmp(status, "interrupted") == 0)) {
            const char *e = rb_redact(L, error, strlen(error));
            fprintf(E->out, "    %s%s%s\n", c_(E, RED), e, c_(E, RESET));
            lua_pop(L, 1);
        }
        fflush(E->out);
    }
    return rc;
}

int journal_run_end(rb_engine *E, lua_State *L, const char *outcome, int exit_code,
                    const char *error, int state)
{
    double now = rb_wallclock();
    char ts[32];
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    run_fields(E, L, &w);
    rb_time_rfc3339(ts, now);
    jw_kstr(&w, "end", ts);
    jw_kint(&w, "duration_ms", (long long)((now - E->started) * 1000.0 + 0.5));
    jw_kstr(&w, "outcome", outcome);
    jw_kint(&w, "exit_code", exit_code);
    redacted_str(&w, L, "error", error);
    jw_kint(&w, "actions", E->n_actions);
    jw_kint(&w, "mutations", E->n_mutations);
    jw_kint(&w, "simulated_actions", E->n_simulated);
    if (state) {
        jw_key(&w, "state");
        jw_lua(&w, L, state);
    }
    jw_obj_end(&w);
    int rc = emit(E, "run_end", "run", &w);
    jw_free(&w);
    if (E->output == OUT_TEXT && E->depth == 0 && E->mode != MODE_REPL) {
        char d[32];
        fmt_duration(d, sizeof d, now - E->started);
        const char *col = strcmp(outcome, "success") == 0 ? GREEN : RED;
        fprintf(E->out, "%s%s%s%s — %d action%s", c_(E, BOLD), c_(E, col), outcome, c_(E, RESET),
                E->n_actions, E->n_actions == 1 ? "" : "s");
        if (E->n_simulated)
            fprintf(E->out, " (%d would change something, not performed)", E->n_simulated);
        fprintf(E->out, ", %s — run %s\n", d, E->run_id);
        if (error) {
            const char *e = rb_redact(L, error, strlen(error));
            fprintf(E->out, "%s%s%s\n", c_(E, RED), e, c_(E, RESET));
            lua_pop(L, 1);
        }
        fflush(E->out);
    }
    return rc;
}

void journal_log(rb_engine *E, lua_State *L, const char *level, const char *msg)
{
    const char *red = rb_redact(L, msg, strlen(msg));
    if (E->output == OUT_JSON) {
        jsonw w;
        jw_init(&w);
        jw_obj(&w);
        jw_kstr(&w, "level", level);
        jw_kstr(&w, "message", red);
        if (E->step_index)
            jw_kint(&w, "step", E->step_index);
        jw_obj_end(&w);
        emit(E, "log", NULL, &w);
        jw_free(&w);
    } else {
        const char *col = strcmp(level, "error") == 0   ? RED
                          : strcmp(level, "warn") == 0  ? YELLOW
                          : strcmp(level, "debug") == 0 ? DIM
                                                        : "";
        if (strcmp(level, "print") == 0)
            fprintf(E->out, "%s\n", red);
        else
            fprintf(E->out, "  %s%s%s %s\n", c_(E, col), level, c_(E, RESET), red);
        fflush(E->out);
    }
    lua_pop(L, 1);
}

/* The run record's fields as journal_run_end writes them (redacted), for
 * the watchdog (watchdog.c), which records the run's end without the Lua
 * state when the main thread is stuck in a C function.  malloc'd. */
char *journal_run_fields(rb_engine *E, lua_State *L)
{
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    run_fields(E, L, &w);
    jw_obj_end(&w);
    char *s = strdup(jw_str_result(&w));
    jw_free(&w);
    return s;
}

/* ---- the dry-run's plan and diffs (src/modes/dry_run.c) ---------------------------- */

void journal_plan(rb_engine *E, lua_State *L, int changes, int complete)
{
    changes = lua_absindex(L, changes);
    int n = (int)lua_rawlen(L, changes);
    if (E->output == OUT_JSON) {
        jsonw w;
        jw_init(&w);
        jw_obj(&w);
        jw_kbool(&w, "complete", complete);
        jw_key(&w, "changes");
        jw_arr(&w);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, changes, i);
            jw_obj(&w);
            jw_kint(&w, "n", i);
            static const char *const ints[] = {"step", "total", NULL};
            for (int k = 0; ints[k]; k++) {
                if (lua_getfield(L, -1, ints[k]) == LUA_TNUMBER)
                    jw_kint(&w, ints[k], (long long)lua_tointeger(L, -1));
                lua_pop(L, 1);
            }
            static const char *const strs[] = {"step_name", "primitive", "fn", "verb",
                                               "target",    "words",     NULL};
            for (int k = 0; strs[k]; k++) { /* redacted when collected */
                if (lua_getfield(L, -1, strs[k]) == LUA_TSTRING)
                    jw_kstr(&w, strs[k], lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            if (lua_getfield(L, -1, "fields") == LUA_TTABLE) {
                jw_key(&w, "fields");
                jw_lua(&w, L, lua_gettop(L));
            }
            lua_pop(L, 2);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_obj_end(&w);
        emit(E, "plan", NULL, &w);
        jw_free(&w);
        return;
    }
    fprintf(E->out, "%sPlan:%s ", c_(E, BOLD), c_(E, RESET));
    if (n == 0)
        fprintf(E->out, "no changes");
    else
        fprintf(E->out, "%d change%s", n, n == 1 ? "" : "s");
    fprintf(E->out, "%s\n", complete ? "" : " (so far: the rehearsal did not finish)");
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, changes, i);
        lua_getfield(L, -1, "step");
        lua_getfield(L, -2, "total");
        lua_getfield(L, -3, "step_name");
        lua_getfield(L, -4, "words");
        const char *name = lua_tostring(L, -2), *words = lua_tostring(L, -1);
        fprintf(E->out, "  %d. ", i);
        if (lua_isinteger(L, -4) && lua_isinteger(L, -3))
            fprintf(E->out, "%s[%lld/%lld %s]%s ", c_(E, DIM), (long long)lua_tointeger(L, -4),
                    (long long)lua_tointeger(L, -3), name ? name : "", c_(E, RESET));
        else if (lua_isinteger(L, -4))
            fprintf(E->out, "%s[%lld %s]%s ", c_(E, DIM), (long long)lua_tointeger(L, -4),
                    name ? name : "", c_(E, RESET));
        else
            fprintf(E->out, "%s[top level]%s ", c_(E, DIM), c_(E, RESET));
        fprintf(E->out, "%s\n", words ? words : "?");
        lua_pop(L, 5);
    }
    fflush(E->out);
}

void journal_diff(rb_engine *E, lua_State *L, const rb_action *a, const char *path,
                  const char *diff, const char *note)
{
    if (E->output == OUT_JSON) {
        jsonw w;
        jw_init(&w);
        jw_obj(&w);
        if (E->step_index)
            jw_kint(&w, "step", E->step_index);
        jw_kstr(&w, "primitive", a->primitive);
        jw_kstr(&w, "verb", a->verb);
        redacted_str(&w, L, "path", path);
        redacted_str(&w, L, "diff", diff);
        redacted_str(&w, L, "note", note);
        jw_obj_end(&w);
        emit(E, "diff", NULL, &w);
        jw_free(&w);
        return;
    }
    if (note) {
        const char *red = rb_redact(L, note, strlen(note));
        fprintf(E->out, "    %s%s%s\n", c_(E, DIM), red, c_(E, RESET));
        lua_pop(L, 1);
    }
    if (diff) {
        const char *red = rb_redact(L, diff, strlen(diff));
        for (const char *p = red; *p;) {
            size_t len = strcspn(p, "\n");
            const char *col = strncmp(p, "---", 3) == 0 || strncmp(p, "+++", 3) == 0 ? BOLD
                              : *p == '@'                                            ? CYAN
                              : *p == '-'                                            ? RED
                              : *p == '+'                                            ? GREEN
                                                                                     : "";
            fprintf(E->out, "    %s%.*s%s\n", c_(E, col), (int)len, p, *col ? c_(E, RESET) : "");
            p += len + (p[len] == '\n');
        }
        lua_pop(L, 1);
    }
    fflush(E->out);
}
