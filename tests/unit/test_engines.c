/*
 * Two engines in one process (include/runbook/runbook.h promises an
 * embedding API): each has its own Lua state, globals, strategy, secrets and
 * event loop, and work in flight in one does not move or disturb the other.
 * Both are created from the module table the binary uses, as an embedder
 * would, and their coroutines wait on their own loops interleaved.
 */
#include "engine.h"
#include "loop.h"
#include "modules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static rb_engine *make(void)
{
    char err[512];
    rb_engine *E = engine_new(rb_builtin_modules, err, sizeof err);
    if (!E) {
        fprintf(stderr, "engine_new: %s\n", err);
        exit(1);
    }
    return E;
}

/* Run Lua source in E's main state; returns its one result as a string
 * (static buffer) or the error. */
static const char *eval(rb_engine *E, const char *src)
{
    static char out[1024];
    lua_State *L = E->L;
    if (luaL_loadstring(L, src) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        snprintf(out, sizeof out, "error: %s", lua_tostring(L, -1));
    } else {
        const char *s = luaL_tolstring(L, -1, NULL);
        snprintf(out, sizeof out, "%s", s);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return out;
}

/* A task on E's loop running src (a chunk that may sleep: it yields). */
static rb_task *spawn(rb_engine *E, const char *src)
{
    lua_State *L = E->L;
    if (luaL_loadstring(L, src) != LUA_OK) {
        fprintf(stderr, "load: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    return loop_spawn(L, 0, 0, NULL);
}

static void test_separate_states(void)
{
    rb_engine *a = make(), *b = make();
    CHECK(rb_engine_of(a->L) == a && rb_engine_of(b->L) == b, "each state finds its own engine");
    eval(a, "shared = 'from a'");
    CHECK(strcmp(eval(b, "return tostring(shared)"), "nil") == 0, "a global of one is not the "
                                                                  "other's");
    /* a strategy is the engine's: one rehearses while the other acts */
    engine_use(a, &rb_mode_dry_run);
    engine_use(b, &rb_mode_live);
    CHECK(strcmp(eval(a, "return tostring(dry_run())"), "true") == 0, "a is a dry-run");
    CHECK(strcmp(eval(b, "return tostring(dry_run())"), "false") == 0, "b is live");
    /* secrets are the engine's: what a registers, b does not redact */
    lua_State *L = a->L;
    rb_secret_add(L, "hunter2-of-a");
    const char *ra = rb_redact(a->L, "pw=hunter2-of-a", 15);
    CHECK(strcmp(ra, "pw=****") == 0, "a redacts its secret, got %s", ra);
    lua_pop(a->L, 1);
    const char *rb = rb_redact(b->L, "pw=hunter2-of-a", 15);
    CHECK(strcmp(rb, "pw=hunter2-of-a") == 0, "b has no such secret, got %s", rb);
    lua_pop(b->L, 1);
    engine_free(a);
    /* b outlives a and still works */
    CHECK(strcmp(eval(b, "return tostring(1 + 1)"), "2") == 0, "b works after a is freed");
    engine_free(b);
}

static void test_interleaved_loops(void)
{
    rb_engine *a = make(), *b = make();
    /* each task sleeps on its own engine's loop, then records the order */
    rb_task *ta = spawn(a, "sleep(0.05); done = 'a'");
    rb_task *tb = spawn(b, "sleep(0.01); done = 'b'");
    /* waiting on a runs a's loop only: b's task, though its sleep ends
     * first, must not be resumed by a's loop */
    loop_wait(a->L, ta);
    CHECK(ta->done && !ta->failed, "a's task finished");
    CHECK(!tb->done, "b's task did not run on a's loop");
    CHECK(strcmp(eval(b, "return tostring(done)"), "nil") == 0, "b has not resumed");
    loop_wait(b->L, tb);
    CHECK(tb->done && !tb->failed, "b's task finished on its own loop");
    CHECK(strcmp(eval(a, "return done"), "a") == 0 && strcmp(eval(b, "return done"), "b") == 0,
          "each task changed its own state");
    loop_task_free(a->L, ta);
    loop_task_free(b->L, tb);
    engine_free(b);
    engine_free(a);
}

int main(void)
{
    test_separate_states();
    test_interleaved_loops();
    if (failures) {
        fprintf(stderr, "test_engines: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_engines: two engines in one process: ok\n");
    return 0;
}
