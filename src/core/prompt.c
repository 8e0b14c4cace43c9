/*
 * Prompts on the controlling terminal.  Answers are read from /dev/tty so
 * that `--confirm` works while stdin is a pipe, and so that a CI job with no
 * terminal fails up front instead of waiting forever.
 */
#include "prompt.h"
#include "loop.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

int prompt_open_tty(rb_engine *E)
{
    if (E->tty)
        return 0;
    E->tty = fopen("/dev/tty", "r+e");
    return E->tty ? 0 : -1;
}

/* One line from the terminal, first non-space character lower-cased; 0 on
 * EOF or interrupt. */
static int read_answer(rb_engine *E)
{
    char line[256];
    fflush(E->tty);
    for (;;) {
        if (loop_interrupted())
            return 0;
        errno = 0;
        if (fgets(line, sizeof line, E->tty))
            break;
        if (errno == EINTR && !loop_interrupted()) {
            clearerr(E->tty);
            continue;
        }
        return 0;
    }
    for (char *p = line; *p; p++)
        if (!isspace((unsigned char)*p))
            return tolower((unsigned char)*p);
    return '\n';
}

int prompt_yes_no(rb_engine *E, lua_State *L, const char *question)
{
    if (prompt_open_tty(E) != 0)
        return luaL_error(L,
                          "confirm: no terminal to ask \"%s\" (run from a terminal, or pass "
                          "--yes to approve in advance)",
                          question);
    for (;;) {
        fprintf(E->tty, "%s? %s [y/N] ", E->color ? "\033[1;33m" : "", question);
        if (E->color)
            fputs("\033[0m", E->tty);
        int c = read_answer(E);
        if (c == 'y')
            return 1;
        if (c == 'n' || c == '\n' || c == 0)
            return 0;
        fputs("please answer y or n\n", E->tty);
    }
}

int prompt_step(rb_engine *E, int index, int total, const char *name, const char *description)
{
    if (prompt_open_tty(E) != 0)
        return 'q';
    const char *b = E->color ? "\033[1m" : "", *r = E->color ? "\033[0m" : "";
    fprintf(E->tty, "\n%s[%d/%d] %s%s\n", b, index, total, name, r);
    if (description && *description)
        fprintf(E->tty, "    %s\n", description);
    for (;;) {
        fputs("Run this step? [y]es, [s]kip, [a]ll remaining, [q]uit: ", E->tty);
        int c = read_answer(E);
        if (c == 0)
            return 'q';
        if (c == 'y' || c == 's' || c == 'a' || c == 'q')
            return c;
        fputs("please answer y, s, a or q\n", E->tty);
    }
}
