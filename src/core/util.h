/* Small helpers shared by the engine, the audit log and the commands. */
#ifndef RUNBOOK_UTIL_H
#define RUNBOOK_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* Wall clock, seconds since the epoch. */
double rb_wallclock(void);
/* RFC 3339 UTC with milliseconds, "2026-11-23T13:35:12.123Z"; t < 0 = now. */
void rb_time_rfc3339(char out[32], double t);
/* Parse what rb_time_rfc3339 writes (and whole seconds); -1 on failure. */
double rb_time_parse(const char *s);
/* "24h", "30m", "7d", "90s" -> seconds; -1 on failure. */
double rb_parse_duration(const char *s);
/* A time-sortable run id: "20261123-133512-a3f9c1". */
void rb_new_run_id(char out[40]);
/* sha256 of a buffer as 64 hex characters + NUL. */
void rb_sha256_hex(const void *data, size_t len, char out[65]);
/* mkdir -p of the directory that will hold `path` (a file path). 0 or -1/errno. */
int rb_mkdir_parents(const char *path);
/* This machine's host name (cached). */
const char *rb_hostname(void);
/* The operator: the login name of the real uid (cached). */
const char *rb_username(void);
/* Start time of process pid in clock ticks since boot (/proc/PID/stat field 22),
 * 0 when unknown: used to tell a live run's pid from a reused one. */
unsigned long long rb_pid_start(pid_t pid);
/* Read a whole file; malloc'd, NUL-terminated; NULL with errno on failure. */
char *rb_read_file(const char *path, size_t *len);
/* A runbook's text made Lua, in place: a UTF-8 byte order mark (editors on
 * Windows write one) is skipped and a shebang line becomes a comment, lines
 * keeping their numbers.  Returns where the Lua source starts in src. */
size_t rb_lua_source(char *src, size_t len);
/* The rest of stream f, as rb_read_file reads a file (the caller closes f). */
char *rb_read_stream(FILE *f, size_t *len);
/* Expand a leading "~/" with $HOME into buf. */
const char *rb_expand_home(const char *path, char *buf, size_t n);
/* "512M", "2G", "65536": a size in bytes (K, M, G are powers of 1024; a
 * trailing "iB" or "B" is allowed), or 0 when s is no such size.  For
 * --max-memory on run, repl and test. */
size_t rb_parse_size(const char *s);

/* rm -rf path (keep_root: only what is inside it, as a process confined to
 * path must); nftw's result. */
int rb_remove_tree(const char *path, int keep_root);

/* Edit distance of a and b (optimal string alignment: an insertion, a
 * deletion, a substitution or a swap of two neighbours each costs 1; case
 * is ignored), or max + 1 when it is more than max. */
int rb_edit_distance(const char *a, const char *b, int max);
/* The candidate closest to word, within distance 2 and less than word's
 * length (so "x" does not suggest every one-letter name), for "did you
 * mean ...?", else the one candidate that word (3 letters or more) begins
 * (`prev` -> `previous`); NULL when none is that close.  n candidates, or
 * up to the first NULL when n < 0; NULL entries are skipped; ties go to
 * the first. */
const char *rb_did_you_mean(const char *word, const char *const *candidates, int n);
/* For a command's "unknown option" error: " (did you mean '--dry-run'?)"
 * into buf when arg ("--dry-rn", "--dry-rn=x") is a typo of one of the long
 * options (names without their dashes, up to a NULL), else "". */
const char *rb_flag_hint(const char *arg, const char *const *names, char *buf, size_t n);
/* The same for a getopt_long table (up to its all-zero row). */
struct option;
const char *rb_getopt_hint(const char *arg, const struct option *opts, char *buf, size_t n);

#endif
