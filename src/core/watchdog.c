/*
 * The watchdog (see watchdog.h).  Everything the thread reads from the main
 * thread is either atomic (heartbeat, waiting, the task's deadline), copied
 * under the mutex at a moment the main thread chose (the run's fields, the
 * step), or written once before the thread started (E->started, the run
 * id).  The action counters are read without a lock: the thread reads them
 * only once the main thread has been stuck for WATCHDOG_GRACE seconds, so
 * nothing writes them any more.
 */
#include "watchdog.h"
#include "audit.h"
#include "jsonw.h"
#include "loop.h"
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 250000000L

static atomic_ulong beat;
static atomic_int waiting;
static atomic_int task_depth;
static atomic_llong task_deadline_ns;
static _Atomic(const char *) task_why;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t thread;
static int running, stopping;
/* under mu: what the records need */
static rb_engine *engine;
static char *audit_file, *fields, *step_name;
static char run_id[40];
static int step_index, start_recorded;
static double step_start;

void watchdog_beat(void)
{
    atomic_fetch_add_explicit(&beat, 1, memory_order_relaxed);
}

void watchdog_waiting(int on)
{
    atomic_store_explicit(&waiting, on, memory_order_relaxed);
    watchdog_beat();
}

void watchdog_task_enter(double deadline, const char *why, watchdog_task *saved)
{
    saved->deadline_ns = atomic_load_explicit(&task_deadline_ns, memory_order_relaxed);
    saved->why = atomic_load_explicit(&task_why, memory_order_relaxed);
    saved->depth = atomic_load_explicit(&task_depth, memory_order_relaxed);
    atomic_store(&task_why, why);
    atomic_store(&task_deadline_ns, deadline > 0 ? (long long)(deadline * 1e9) : 0);
    atomic_store(&task_depth, saved->depth + 1);
    watchdog_beat();
}

void watchdog_task_leave(const watchdog_task *saved)
{
    atomic_store(&task_depth, saved->depth);
    atomic_store(&task_deadline_ns, saved->deadline_ns);
    atomic_store(&task_why, saved->why);
    watchdog_beat();
}

/* Why the main thread must stop, or NULL.  Only while it runs a task and
 * is not waiting in poll: outside tasks it runs the engine's own code, and
 * the poll wakes for every signal and deadline by itself. */
static const char *pending_stop(double now)
{
    if (atomic_load(&task_depth) == 0 || atomic_load(&waiting))
        return NULL;
    if (loop_interrupted())
        return "interrupted";
    long long d = atomic_load(&task_deadline_ns);
    if (d > 0 && now * 1e9 >= (double)d) {
        const char *why = atomic_load(&task_why);
        return why ? why : "timed out";
    }
    return NULL;
}

static char *join_json(const char *head, jsonw *tail)
{
    const char *t = jw_str_result(tail);
    size_t hn = strlen(head), tn = strlen(t);
    char *out = malloc(hn + tn + 2);
    if (!out || hn < 2 || tn < 2)
        return free(out), NULL;
    memcpy(out, head, hn - 1); /* without its '}' */
    size_t n = hn - 1;
    if (hn > 2) /* head has fields: a comma before the tail's */
        out[n++] = ',';
    memcpy(out + n, t + 1, tn); /* the tail without its '{', with its NUL */
    return out;
}

/* The step's and the run's end, as the runner would have recorded them.
 * A connection of its own: E->audit belongs to the main thread, which may
 * be anywhere (even inside SQLite, waiting for another writer), and the
 * chain is safe across connections because every append is an IMMEDIATE
 * transaction that reads the last hash it chains to. */
static void record_end(const char *outcome, int code, const char *step_err, const char *run_err)
{
    char err[512];
    audit *a = audit_open(audit_file, err, sizeof err);
    if (!a) {
        fprintf(stderr, "runbook: watchdog: cannot open the audit log: %s\n", err);
        return;
    }
    double now = rb_wallclock();
    char ts[32];
    jsonw w;
    if (!start_recorded) { /* stopped in the file's top level, before runbook{} was journaled */
        jw_init(&w);
        jw_obj(&w);
        jw_kstr(&w, "outcome", "running");
        jw_obj_end(&w);
        char *json = join_json(fields, &w);
        jw_free(&w);
        rb_time_rfc3339(ts, -1);
        /* the run's first record, unless its top-level code recorded an
         * action: then the log gave the id already (the main thread is stuck
         * in C and writes nothing while this runs) */
        int first = !engine->run_id_logged;
        if (!first)
            snprintf(run_id, sizeof run_id, "%s", engine->run_id);
        if (!json || (first ? audit_append_first(a, "run", ts, json, run_id, NULL)
                            : audit_append(a, run_id, "run", ts, json, NULL)) != 0)
            fprintf(stderr, "runbook: watchdog: audit: %s\n",
                    json ? audit_error(a) : "out of memory");
        free(json);
    }
    if (step_index > 0) {
        jw_init(&w);
        jw_obj(&w);
        jw_kint(&w, "index", step_index);
        jw_kstr(&w, "name", step_name ? step_name : "");
        jw_kstr(&w, "status", code == 130 ? "interrupted" : "failed");
        rb_time_rfc3339(ts, step_start);
        jw_kstr(&w, "start", ts);
        rb_time_rfc3339(ts, now);
        jw_kstr(&w, "end", ts);
        jw_kint(&w, "duration_ms", (long long)((now - step_start) * 1000.0 + 0.5));
        jw_kstr(&w, "error", step_err);
        jw_obj_end(&w);
        rb_time_rfc3339(ts, -1);
        if (audit_append(a, run_id, "step", ts, jw_str_result(&w), NULL) != 0)
            fprintf(stderr, "runbook: watchdog: audit: %s\n", audit_error(a));
        jw_free(&w);
    }
    jw_init(&w);
    jw_obj(&w);
    rb_time_rfc3339(ts, now);
    jw_kstr(&w, "end", ts);
    jw_kint(&w, "duration_ms", (long long)((now - engine->started) * 1000.0 + 0.5));
    jw_kstr(&w, "outcome", outcome);
    jw_kint(&w, "exit_code", code);
    jw_kstr(&w, "error", run_err);
    jw_kint(&w, "actions", engine->n_actions);
    jw_kint(&w, "mutations", engine->n_mutations);
    jw_kint(&w, "simulated_actions", engine->n_simulated);
    jw_obj_end(&w);
    char *json = join_json(fields, &w);
    jw_free(&w);
    rb_time_rfc3339(ts, -1);
    if (!json || audit_append(a, run_id, "run", ts, json, NULL) != 0)
        fprintf(stderr, "runbook: watchdog: audit: %s\n", json ? audit_error(a) : "out of memory");
    free(json);
    audit_close(a);
}

static const char STUCK[] = "stopped inside a C function that did not return (string.find, "
                            "string.rep or the like): the process was ended";

/* The main thread is stuck: end what it started, record, leave.  Called
 * with mu held; never returns. */
static void fire(const char *why)
{
    int interrupted = loop_interrupted() != 0;
    int code = interrupted ? 130 : 1;
    const char *outcome = interrupted ? "interrupted" : "failed";
    loop_kill_children();
    char step_err[1024], run_err[2048];
    snprintf(step_err, sizeof step_err, "%s; %s", why, STUCK);
    if (step_index > 0)
        snprintf(run_err, sizeof run_err, "step %d \"%s\": %s", step_index,
                 step_name ? step_name : "", step_err);
    else /* as runner_load_stopped names it */
        snprintf(run_err, sizeof run_err, "%s%s",
                 start_recorded ? "" : "top-level code: ", step_err);
    int audited = audit_file && fields;
    if (audited)
        record_end(outcome, code, step_err, run_err);
    char line[2600];
    int n = snprintf(line, sizeof line, "runbook: %s (run %s%s%s)\n", run_err, run_id,
                     audited ? ", recorded as " : ", not audited", audited ? outcome : "");
    if (n > 0) {
        size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        ssize_t r = write(STDERR_FILENO, line, len);
        (void)r;
    }
    _exit(code);
}

static void *watch(void *arg)
{
    (void)arg;
    unsigned long last = atomic_load(&beat);
    double still_since = 0;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&wake, &mu, &ts);
        if (stopping)
            break;
        double now = rb_now();
        const char *why = pending_stop(now);
        unsigned long b = atomic_load(&beat);
        if (!why || b != last || still_since <= 0) {
            last = b;
            still_since = why ? now : 0;
            continue;
        }
        if (now - still_since >= WATCHDOG_GRACE)
            fire(why);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

void watchdog_start(rb_engine *E)
{
    if (running || E->mode == MODE_SCENARIO || E->mode == MODE_REPL)
        return;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &ca);
    pthread_condattr_destroy(&ca);
    engine = E;
    snprintf(run_id, sizeof run_id, "%s", E->run_id);
    stopping = 0;
    /* signals go to the main thread: its prompt relies on EINTR, and the
     * watchdog must see the stop, not take it */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    running = pthread_create(&thread, NULL, watch, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!running) {
        pthread_cond_destroy(&wake);
        fprintf(stderr, "runbook: warning: no watchdog thread: a run stuck inside a C "
                        "function could not be stopped but by SIGKILL\n");
    }
}

int watchdog_active(void)
{
    return running;
}

void watchdog_arm(rb_engine *E, char *fields_json, int start_journaled)
{
    if (!running) {
        free(fields_json);
        return;
    }
    pthread_mutex_lock(&mu);
    free(fields);
    fields = fields_json;
    start_recorded = start_journaled;
    free(audit_file);
    audit_file = E->audit ? strdup(audit_spec(E->audit)) : NULL;
    snprintf(run_id, sizeof run_id, "%s", E->run_id);
    pthread_mutex_unlock(&mu);
}

void watchdog_step(int index, const char *name, double start)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    step_index = index;
    free(step_name);
    step_name = name ? strdup(name) : NULL;
    step_start = start;
    pthread_mutex_unlock(&mu);
}

void watchdog_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    pthread_cond_destroy(&wake);
    running = 0;
    free(fields);
    free(audit_file);
    free(step_name);
    fields = audit_file = step_name = NULL;
    step_index = 0;
    engine = NULL;
}
