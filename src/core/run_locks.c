/* Run locks: see run_locks.h; the storage is the audit log's (audit.h). */
#include "run_locks.h"
#include "audit.h"
#include "jsonw.h"
#include "loop.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOCKS    16
#define MAX_LOCK_LEN 120

/* "2m10s", "45s", "3h02m" */
static void human_duration(double s, char *out, size_t n)
{
    long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t < 60)
        snprintf(out, n, "%lds", t);
    else if (t < 3600)
        snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

/* "calendar-api is held by alice@host-a, run R, step 3/5 "Restart", for 2m10s" */
static void describe_holder(audit *a, const char *name, const char *holder, char *out, size_t n)
{
    audit_fields f;
    audit_fields_parse(a, holder, &f);
    const char *op = audit_field_str(&f, "operator"), *host = audit_field_str(&f, "host");
    const char *run = audit_field_str(&f, "run_id"), *step = audit_field_str(&f, "step");
    const char *since = audit_field_str(&f, "since"), *role = audit_field_str(&f, "db_role");
    char dur[32] = "";
    double t0 = since ? rb_time_parse(since) : -1;
    if (t0 > 0)
        human_duration(rb_wallclock() - t0, dur, sizeof dur);
    /* cut, if it must be, at n: it is a message */
    int len = snprintf(out, n, "%.120s is held by %.64s@%.100s%s%.64s%s, run %.40s%s%.400s%s%s",
                       name, op ? op : "?", host ? host : "?", role ? " (db role " : "",
                       role ? role : "", role ? ")" : "", run ? run : "?", step ? ", " : "",
                       step ? step : "", dur[0] ? ", for " : "", dur);
    (void)len;
    audit_fields_free(&f);
}

/* The names runbook{ lock = ... } gives, into names[]; -1 with err. */
static int lock_names(lua_State *L, int rb, char names[][MAX_LOCK_LEN + 1], int *count, char *err,
                      size_t n)
{
    *count = 0;
    int base = lua_gettop(L);
    lua_getfield(L, rb, "meta");
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "lock") == LUA_TNIL) {
        lua_settop(L, base);
        return 0;
    }
    if (lua_isfunction(L, -1)) { /* lock = function(params) return "db:" .. params.cluster end */
        lua_getfield(L, rb, "params");
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            snprintf(err, n, "runbook{ lock = function }: %s", lua_tostring(L, -1));
            lua_settop(L, base);
            return -1;
        }
    }
    int t = lua_type(L, -1);
    int list = lua_gettop(L);
    int total = t == LUA_TTABLE ? (int)lua_rawlen(L, list) : 1;
    if ((t != LUA_TTABLE && t != LUA_TSTRING) || total > MAX_LOCKS) {
        snprintf(err, n,
                 "runbook{ lock }: expected a name, a list of at most %d names, or a "
                 "function of the params returning them; got %s",
                 MAX_LOCKS, t == LUA_TTABLE ? "a longer list" : lua_typename(L, t));
        lua_settop(L, base);
        return -1;
    }
    for (int i = 1; i <= total; i++) {
        if (t == LUA_TTABLE)
            lua_rawgeti(L, list, i);
        else
            lua_pushvalue(L, list);
        size_t len = 0;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!s || len == 0 || len > MAX_LOCK_LEN) {
            snprintf(err, n,
                     "runbook{ lock }: a lock's name is a non-empty string of at most %d "
                     "bytes (item %d is %s)",
                     MAX_LOCK_LEN, i, s ? (len ? "longer" : "empty") : luaL_typename(L, -1));
            lua_settop(L, base);
            return -1;
        }
        snprintf(names[(*count)++], MAX_LOCK_LEN + 1, "%s", s);
        lua_pop(L, 1);
    }
    lua_settop(L, base);
    return 0;
}

static char *holder_json(rb_engine *E)
{
    jsonw w;
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "run_id", E->run_id);
    jw_kstr(&w, "runbook", E->runbook_name ? E->runbook_name : "");
    jw_kstr(&w, "operator", rb_username());
    jw_kstr(&w, "host", rb_hostname());
    jw_kint(&w, "pid", (long long)getpid());
    jw_kint(&w, "pid_start", (long long)rb_pid_start(getpid()));
    char ts[32];
    rb_time_rfc3339(ts, -1);
    jw_kstr(&w, "since", ts);
    jw_kstr(&w, "step", "starting");
    jw_obj_end(&w);
    char *s = strdup(jw_str_result(&w));
    jw_free(&w);
    return s;
}

int run_locks_take(rb_engine *E, lua_State *L, int rb, char *err, size_t n)
{
    char names[MAX_LOCKS][MAX_LOCK_LEN + 1];
    int count = 0;
    /* a run that changes nothing needs no lock: dry-run, scenarios */
    if (!E->strategy->performs || E->mode == MODE_SCENARIO || E->depth > 0)
        return 0;
    if (lock_names(L, rb, names, &count, err, n) != 0)
        goto refused;
    if (count == 0)
        return 0;
    if (!E->audit) {
        snprintf(err, n,
                 "this runbook takes the lock %s, which is kept in the audit log: run it with "
                 "one (not --no-audit)",
                 names[0]);
        goto refused;
    }
    char *me = holder_json(E);
    if (!me) {
        snprintf(err, n, "out of memory");
        goto refused;
    }
    double deadline = rb_now() + E->lock_wait;
    int said = 0;
    for (int i = 0; i < count; i++) {
        for (;;) {
            char *holder = NULL;
            int rc = audit_lock_take(E->audit, names[i], E->run_id, me, &holder);
            if (rc == 0) {
                E->locks_held = 1;
                break;
            }
            if (rc < 0) {
                snprintf(err, n, "%s", audit_error(E->audit));
                free(me);
                goto refused;
            }
            char who[1024];
            describe_holder(E->audit, names[i], holder, who, sizeof who);
            free(holder);
            if (rb_now() >= deadline || loop_interrupted()) {
                int len = snprintf(err, n, "%s%s", who,
                                   E->lock_wait > 0 ? " (still, after --wait-lock)"
                                                    : " (--wait-lock 5m waits for it)");
                (void)len;
                free(me);
                goto refused;
            }
            if (!said++)
                fprintf(stderr, "runbook: waiting for lock %s: %s\n", names[i], who);
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    free(me);
    return 0;
refused:
    /* what was taken goes back: nothing of this run will happen */
    run_locks_release(E);
    fprintf(stderr, "runbook: %s; nothing was run\n", err);
    return 2;
}

void run_locks_step(rb_engine *E, int index, int total, const char *name)
{
    if (!E->locks_held || !E->audit)
        return;
    char step[600];
    snprintf(step, sizeof step, "step %d/%d \"%s\"", index, total, name);
    if (audit_lock_step(E->audit, E->run_id, step) != 0)
        fprintf(stderr, "runbook: warning: %s\n", audit_error(E->audit));
}

void run_locks_release(rb_engine *E)
{
    if (!E->locks_held || !E->audit)
        return;
    if (audit_lock_release(E->audit, E->run_id) != 0)
        fprintf(stderr, "runbook: warning: %s\n", audit_error(E->audit));
    E->locks_held = 0;
}
