/*
 * The modules of the runbook binary, handed to every engine it creates (as
 * Lua's linit.c hands its libraries to lua.c).  Adding a primitive is one
 * row here, its own file, and its tests: no other file names it.
 */
#include "modules.h"
#include "primitives.h"

const rb_module rb_builtin_modules[] = {
    {"json", mod_json_open, NULL},
    {"yaml", mod_yaml_open, NULL},
    {"regex", mod_regex_open, NULL},
    {"exec", mod_exec_open, NULL},
    {"fs", mod_fs_open, NULL},
    {"http", mod_http_open, mod_http_close},
    {"notify", mod_notify_open, NULL},
    {"kubectl", mod_kubectl_open, NULL},
    {"docker", mod_docker_open, NULL},
    {"db", mod_db_open, NULL},
    {NULL, NULL, NULL},
};
