/*
 * The modules of the runbook binary, handed to every engine it creates (as
 * Lua's linit.c hands its libraries to lua.c).  Adding a primitive is its
 * own file(s) under src/primitives, one row here, and its tests: nothing
 * else names it -- the modes, the scenario judge, recording, coverage and
 * the config's sections read its rows and this table.
 */
#include "modules.h"

/* Each module's open function registers its rows (rb_register). */
#define MODULE(name) void mod_##name##_open(lua_State *L)
MODULE(json);
MODULE(yaml);
MODULE(regex);
MODULE(exec);
MODULE(fs);
MODULE(http);
MODULE(notify);
MODULE(kubectl);
MODULE(docker);
MODULE(db);
MODULE(ssh);
#undef MODULE
void mod_http_close(void); /* libcurl, loaded on first use, unloaded at exit */
/* notify's section of runbook.yaml: one mapping per service */
#define NOTIFY_CONFIG "slack:map webhook:map pagerduty:map email:map"

const rb_module rb_builtin_modules[] = {
    {"json", mod_json_open, NULL, NULL},   /* codecs: pure data (src/codecs) */
    {"yaml", mod_yaml_open, NULL, NULL},   /*   yaml.load reads a file: an action */
    {"regex", mod_regex_open, NULL, NULL}, /*   POSIX ERE */
    {"exec", mod_exec_open, NULL, NULL},   /* exec{argv}, sh(cmd) */
    {"fs", mod_fs_open, NULL, NULL},       /* files */
    {"http", mod_http_open, mod_http_close, NULL},
    {"notify", mod_notify_open, NULL, NOTIFY_CONFIG}, /* slack, webhook, pagerduty, email */
    {"kubectl", mod_kubectl_open, NULL, NULL},        /* the kubectl CLI */
    {"docker", mod_docker_open, NULL, NULL},          /* the Docker Engine API */
    {"db", mod_db_open, NULL, NULL},                  /* SQLite and PostgreSQL */
    {"ssh", mod_ssh_open, NULL, NULL},                /* OpenSSH's client */
    {NULL, NULL, NULL, NULL},
};
