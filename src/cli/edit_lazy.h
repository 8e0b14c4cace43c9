/*
 * libedit (BSD-licensed line editing: history, Ctrl-R, completion), loaded
 * when `runbook repl` runs on a terminal.  Linking it would cost every
 * start of every runbook about 0.25 ms (libedit, libtinfo, libbsd) for a
 * feature only the interactive console uses.  Its readline-compatible API
 * is used through the callback interface, so the REPL polls the terminal
 * and the Ctrl-C self-pipe itself.
 */
#ifndef RUNBOOK_EDIT_LAZY_H
#define RUNBOOK_EDIT_LAZY_H

#include <editline/readline.h>
#include <stddef.h>
#include <stdio.h>

typedef struct rb_edit {
    void (*handler_install)(const char *, rl_vcpfunc_t *);
    void (*read_char)(void);
    void (*handler_remove)(void);
    void (*replace_line)(const char *, int);
    void (*forced_update_display)(void);
    int (*on_new_line)(void);
    char **(*completion_matches)(const char *, rl_compentry_func_t *);
    void (*using_history)(void);
    int (*add_history)(const char *);
    int (*read_history)(const char *);
    int (*write_history)(const char *);
    void (*stifle_history)(int);
    /* variables */
    rl_completion_func_t **attempted_completion_function;
    int *attempted_completion_over;
    char **completer_word_break_characters;
    int *completion_append_character;
    const char **readline_name;
    FILE **instream, **outstream;
} rb_edit;

/* The loaded library, or NULL with the reason in err. */
const rb_edit *rb_edit_get(char *err, size_t errlen);

#endif
