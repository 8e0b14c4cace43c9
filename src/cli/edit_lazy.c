/* libedit through dlopen when the REPL runs on a terminal: see edit_lazy.h. */
#include "edit_lazy.h"

#include <dlfcn.h>

static rb_edit api;
static int loaded;

#define SYM(field, name)                                                                           \
    do {                                                                                           \
        *(void **)(&api.field) = dlsym(lib, name);                                                 \
        if (!api.field) {                                                                          \
            snprintf(err, errlen, "libedit has no %s", name);                                      \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)

const rb_edit *rb_edit_get(char *err, size_t errlen)
{
    if (loaded)
        return &api;
    void *lib = dlopen("libedit.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "cannot load libedit (apt-get install libedit2): %s", dlerror());
        return NULL;
    }
    SYM(handler_install, "rl_callback_handler_install");
    SYM(read_char, "rl_callback_read_char");
    SYM(handler_remove, "rl_callback_handler_remove");
    SYM(replace_line, "rl_replace_line");
    SYM(forced_update_display, "rl_forced_update_display");
    SYM(on_new_line, "rl_on_new_line");
    SYM(completion_matches, "rl_completion_matches");
    SYM(using_history, "using_history");
    SYM(add_history, "add_history");
    SYM(read_history, "read_history");
    SYM(write_history, "write_history");
    SYM(stifle_history, "stifle_history");
    SYM(attempted_completion_function, "rl_attempted_completion_function");
    SYM(attempted_completion_over, "rl_attempted_completion_over");
    SYM(completer_word_break_characters, "rl_completer_word_break_characters");
    SYM(completion_append_character, "rl_completion_append_character");
    SYM(readline_name, "rl_readline_name");
    SYM(instream, "rl_instream");
    SYM(outstream, "rl_outstream");
    loaded = 1; /* stays mapped for the life of the process */
    return &api;
}
