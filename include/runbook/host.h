/*
 * What a primitive may use of the engine that hosts it -- and all it may
 * use: a primitive includes runbook/runbook.h, this file, its siblings in
 * src/primitives and the codecs, never the core's own headers
 * (scripts/check-includes.sh).  The modes stay out of sight: a primitive asks
 * for configuration, logs, registers secrets, reports what is missing and
 * builds on other primitives' raw effects; whether the run is live, a
 * rehearsal or a scenario is the funnel's business.
 */
#ifndef RUNBOOK_HOST_H
#define RUNBOOK_HOST_H

#include "runbook/runbook.h"

#include <poll.h>
#include <spawn.h>
#include <sys/types.h>

/* ---- configuration (runbook.yaml) ----------------------------------------
 * Push section.key from the --env environment's section first, then from the
 * top level (environments.<env>.kubectl.namespace, then kubectl.namespace);
 * nil when set in neither.  key NULL: the top-level key `section` itself
 * (readonly_commands), from the environment first.  Returns the type. */
int rb_config_get(lua_State *L, const char *section, const char *key);

/* ---- the journal ----------------------------------------------------------
 * A line in the run's journal (terminal, JSON events, audit log);
 * level "info" or "warn".  Secrets are redacted. */
void rb_log(lua_State *L, const char *level, const char *fmt, ...);

/* An endpoint, credential or setting configured nowhere ("notify.slack: no
 * webhook configured (notify.slack.webhook)").  1: the mode goes on with a
 * stand-in -- a scenario (its mocks answer the call), a dry-run (after
 * warning "<what>: a live run would fail here"); 0: the caller raises. */
int rb_missing(lua_State *L, const char *what);

/* ---- building on other primitives -----------------------------------------
 * Push the raw effect of another primitive's row, without the funnel (ssh
 * runs the `ssh` client through exec's): the caller's own row is the action
 * that is classified, confirmed and audited.  Raises if there is none. */
void rb_push_raw(lua_State *L, const char *primitive, const char *fn);

/* A primitive's Lua half (src/primitives/NAME.lua, embedded at build time):
 * the chunk runs once, when first needed, with the engine's internal table
 * `rt` as its argument (`local rt = ...`); push rt[fn] (nil if absent). */
void rb_push_lua(lua_State *L, const char *name, const char *fn);

/* The one classifier of commands (exec's argv, sh, ssh's remote command):
 * the argv table at idx (strings) -> RB_READ or RB_MUTATE.  Honours the
 * readonly_commands of runbook.yaml.  Judges the program (a path must be
 * the file PATH finds), what wrappers run (sudo, env, timeout, xargs...)
 * and arguments that make a reader write (git -c, find -delete, sort -o). */
rb_class rb_classify_argv(lua_State *L, int idx);
/* The same with the environment the command gets (exec's opts.env: a table
 * at env_idx, 0 for none): a variable set outside the safe few (LANG, LC_*,
 * TZ, TERM, PAGER...) makes it a change: GIT_EXTERNAL_DIFF, LD_PRELOAD. */
rb_class rb_classify_argv_env(lua_State *L, int idx, int env_idx);

/* ---- a process's result: exec, sh, ssh ------------------------------------
 * Rows whose result is a process's, { ok, code, stdout, stderr, time }, share
 * what a scenario mock answers and what a recording writes: .answer =
 * rb_process_answer (a non-zero code raises "<words>: exit code N: <last
 * line of stderr>" unless the call's options say check = false; error
 * raises "<words>: <error>"; the words begin with the primitive's name) and
 * .recorded = rb_process_recorded ({ code, stdout, stderr } or { error }),
 * and .simulate = rb_process_simulated (a success that says so: code 0,
 * empty output, dry_run = true). */
int rb_process_answer(lua_State *L);
int rb_process_recorded(lua_State *L);
int rb_process_simulated(lua_State *L, const rb_action *a);
/* A process's failed exit code, as every such primitive says it: the result
 * at res is noted for the audit, then "<words>: exit code N: <the last line
 * of stderr>" is raised. */
int rb_raise_exit(lua_State *L, const char *words, int res);

/* ---- the process -----------------------------------------------------------
 * A private directory for the user's sockets and state of this run's tools
 * ($XDG_RUNTIME_DIR/runbook, else /tmp/runbook-<uid>, created 0700).
 * NULL while children are confined (rb_children_confined) and it does not
 * exist yet: a rehearsal creates nothing. */
const char *rb_runtime_dir(lua_State *L);

/* 1 once the run was interrupted (Ctrl-C, SIGTERM). */
int rb_interrupted(lua_State *L);

/* A child process group the engine must end when the run is interrupted or
 * exits (exec's children). */
void rb_child_started(pid_t pid);
void rb_child_ended(pid_t pid);

/* A library with its own poll (libcurl's curl_multi_poll) polls the loop's
 * descriptors too: it is called instead of poll(2) while it has work. */
typedef int (*rb_poller_fn)(struct pollfd *fds, unsigned nfds, int timeout_ms);
void rb_set_poller(rb_poller_fn fn);

/* rb_config_get at one level of runbook.yaml only: level 1 the --env
 * environment's section (nil without --env), level 0 the top level; section
 * may be a dotted path ("notify.slack"), each part a mapping (else it
 * raises, naming the path).  For settings resolved key by key where the
 * level matters: notify takes an environment's literal `webhook` before the
 * top level's `webhook_secret`, which rb_config_get cannot tell apart. */
int rb_config_at(lua_State *L, int level, const char *section, const char *key);

/* ---- children of a rehearsal -------------------------------------------------
 * While the strategy only rehearses (--dry-run, the REPL's .dry) the kernel
 * keeps the engine's children from writing: no file-system write rights but
 * /dev/null (inherited pipes and terminals still work), no signals to
 * processes outside their own (Landlock, src/core/landlock.c).  A primitive
 * never learns the mode, only this. */

/* 1 while the processes the engine starts may not write (and Landlock is
 * there to see to it): ssh then opens no ControlMaster socket of its own. */
int rb_children_confined(lua_State *L);

/* posix_spawnp for primitives, same arguments and errors (ENOENT: not
 * found).  While children are confined, file runs through the engine's own
 * binary (`runbook __confined`), which confines itself and then executes
 * it with envp as posix_spawnp would; else it is posix_spawnp. */
int rb_spawnp(lua_State *L, pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
              const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);

/* A confined child failed: when its stderr (err, len) shows that a write
 * was refused, journal "blocked: <words> tried to write <path> during a
 * dry-run", mark the action `blocked` for the audit, push the path (or
 * what is known of it) and return 1; else return 0.  cwd: the child's
 * working directory (NULL: the engine's), for relative paths. */
int rb_child_blocked(lua_State *L, const char *words, const char *err, size_t len, const char *cwd);

/* ---- strict calls ------------------------------------------------------------
 * Check the options table at idx against options (space-separated keys), as
 * a row's .options are checked, raising "unknown option 'timout' for NAME
 * (did you mean 'timeout'?)" at the runbook's line.  For a call whose
 * options come after a variable number of arguments, which a .sig cannot
 * place (db's conn:query(sql, params..., opts)): its describe hook calls it. */
void rb_check_options(lua_State *L, const char *name, const char *options, int idx);

#endif
