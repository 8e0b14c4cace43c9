/*
 * The scenario loader: a scenario file read as `runbook test` reads it --
 * the judge (src/modes/judge.c, a Lua state of its own running
 * src/lua/scenario.lua) loads the YAML, checks every key against the
 * primitives' rows and reads the files it names (body_file, json_file...)
 * beside it.  The harness makes one engine and one judge, as a `runbook
 * test` worker does, writes each input beside nothing else in a private
 * directory and calls scenario_dir + scenario_load, the calls prun()
 * (src/modes/scenario.c) makes before the runbook runs.
 *
 * Oracle: a malformed scenario comes back as (nil, message), the message
 * naming no engine-internal file.  A judge that raises instead gives an
 * engine-internal message ("scenario.lua:N: attempt to ...") where a
 * user's mistake should be named (issue 15 item 3); RUNBOOK_FUZZ_STRICT=0
 * tolerates that, to look for crashes only.
 */
#include "engine.h"
#include "fuzz.h"
#include "judge.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rb_engine *engine; /* kept while the judge lives: it was copied from it */
static lua_State *the_judge;

/* at exit, before the shared engine it was made from (atexit runs in
 * reverse order) */
static void free_judge(void)
{
    judge_free(the_judge);
}

static lua_State *judge(void)
{
    if (!the_judge) {
        engine = fuzz_engine();
        the_judge = judge_new(engine->L);
        if (!the_judge)
            exit(1);
        atexit(free_judge);
    }
    return the_judge;
}

/* Does msg name one of the engine's own Lua files -- that the input does not
 * name itself (a bad file name is echoed, rightly)? */
static int internal_file(const char *msg, const uint8_t *data, size_t size)
{
    static const char *const files[] = {"scenario.lua:", "prelude.lua:", "record.lua:", NULL};
    for (int i = 0; files[i]; i++)
        if (strstr(msg, files[i]) && !memmem(data, size, files[i], strlen(files[i]) - 1))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int strict = -1;
    if (strict < 0)
        strict = !getenv("RUNBOOK_FUZZ_STRICT") || strcmp(getenv("RUNBOOK_FUZZ_STRICT"), "0") != 0;
    lua_State *J = judge();
    const char *path = fuzz_write("fuzz.scenario.yaml", data, size);
    char err[2048];
    lua_pushstring(J, fuzz_dir());
    if (judge_call(J, "scenario_dir", 1, 0, err, sizeof err) != 0)
        fuzz_fail("%s", err);
    lua_pushstring(J, path);
    if (judge_call(J, "scenario_load", 1, 2, err, sizeof err) != 0) {
        if (strict)
            fuzz_fail("an engine-internal error for a scenario file: %s", err);
        fuzz_done(J, 0);
        return 0;
    }
    if (lua_isnil(J, -2) && !lua_isstring(J, -1))
        fuzz_fail("scenario_load refused the file without a message");
    if (lua_isnil(J, -2) && strict && internal_file(lua_tostring(J, -1), data, size))
        fuzz_fail("a scenario error names an engine-internal file: %s", lua_tostring(J, -1));
    if (!lua_isnil(J, -2) && !lua_istable(J, -2))
        fuzz_fail("scenario_load returned a %s", luaL_typename(J, -2));
    fuzz_done(J, 0);
    return 0;
}
