/*
 * Signatures: every function a runbook can call declares its arguments and
 * the keys of its options table once (a row's .sig and .options, or
 * signature.wrap in Lua), and one checker holds every call to it, so a
 * misspelled option or a misplaced argument raises instead of being
 * ignored (issue 16: `{ timout = 1 }` waited the default 2.5 s).
 */
#ifndef RUNBOOK_SIGNATURE_H
#define RUNBOOK_SIGNATURE_H

#include <lua.h>

/* Check the call's arguments first..top against sig and options; raises
 * "unknown option 'timout' for http.get (did you mean 'timeout'?)" or
 * "http.get: missing argument 1 (url); usage: http.get(url [, opts])" at
 * the given level (1: the caller of the running C function).  A NULL sig
 * checks nothing. */
void sig_check(lua_State *L, const char *name, const char *sig, const char *options, int first,
               int level);

/* The kinds of arguments the binder tells apart; SIG_UNKNOWN (a variable
 * in the source) fits any parameter. */
enum { SIG_NIL, SIG_STR, SIG_NUM, SIG_INT, SIG_BOOL, SIG_TABLE, SIG_FN, SIG_OTHER, SIG_UNKNOWN };
int sig_kind_of(lua_State *L, int idx);

/* Which of n arguments of these kinds is the options table (opts_of[i] =
 * 1), binding them as sig_check does; -1 when they do not bind (the static
 * check then says nothing: the call raises when it runs). */
int sig_options_arg(const char *sig, const int *kinds, int n, int *opts_of);

/* Remember name's signature in the registry (what `runbook check` and the
 * reference page read) and that fn at index fn_idx (0: none) is it. */
void sig_declare(lua_State *L, const char *name, const char *sig, const char *options, int fn_idx);

/* Push runbook.signatures: name -> { sig, options, usage }. */
void sig_push_all(lua_State *L);
/* Push the map from each declared function to its name (weak keys). */
void sig_push_by_function(lua_State *L);

/* The usage line of a signature into buf: "http.get(url [, opts])". */
const char *sig_usage(const char *name, const char *sig, char *buf, size_t n);

/* package.preload.signature: the same checker for functions written in
 * Lua (the stdlib, the primitives' Lua halves, a library's lib/ modules). */
int sig_open_module(lua_State *L);

#endif
