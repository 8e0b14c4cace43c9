/*
 * What the harnesses (fuzz/TARGET.c) share.  Each harness is one
 * LLVMFuzzerTestOneInput: libFuzzer (clang, scripts/fuzz.sh) calls it with
 * mutated inputs; fuzz/replay.c (any compiler, the normal test suite) calls
 * it with the committed regression inputs and seeds.  A harness aborts
 * (fuzz_fail) when an oracle -- a property that holds for every input --
 * does not; crashes, leaks and undefined behaviour the sanitizers report.
 */
#ifndef RUNBOOK_FUZZ_H
#define RUNBOOK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Print why (printf-style) and abort: the fuzzer saves the input. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* End of an input: the stack back to top, and collect every garbage value.  With a
 * Lua state kept across inputs (engines are costly to make), the input's
 * allocations are then freed by its end, and libFuzzer runs LeakSanitizer
 * only when they are not (it checks after any input with more mallocs than
 * frees: ten times slower if that is every input). */
#include <lua.h>
void fuzz_done(lua_State *L, int top);

/* The engine every harness that needs one shares: made on first use (engines
 * are costly to make), freed at exit. */
struct rb_engine;
struct rb_engine *fuzz_engine(void);

/* A private directory for the run (created on first use, removed at exit),
 * for the loaders that read a file by path. */
const char *fuzz_dir(void);

/* Write data to fuzz_dir()/name (replacing it); returns the path, static. */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);

#endif
