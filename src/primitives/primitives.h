/* The primitives' and codecs' open functions, for the embedder's module
 * table (src/cli/modules.c).  Nothing in core includes this. */
#ifndef RUNBOOK_PRIMITIVES_H
#define RUNBOOK_PRIMITIVES_H

#include <lua.h>

void mod_exec_open(lua_State *L); /* exec, sh */
void mod_fs_open(lua_State *L);
void mod_http_open(lua_State *L); /* http.*, on libcurl loaded at first use */
void mod_http_close(void);
void mod_notify_open(lua_State *L);  /* notify.slack/webhook/pagerduty/email */
void mod_kubectl_open(lua_State *L); /* kubectl.*: the kubectl CLI */
void mod_docker_open(lua_State *L);  /* docker.*: the Docker Engine API */
void mod_db_open(lua_State *L);      /* db.*: SQLite and PostgreSQL */

/* codecs: pure data, no effects (src/codecs) */
void mod_json_open(lua_State *L);
void mod_yaml_open(lua_State *L);
void mod_regex_open(lua_State *L); /* regex.match/find: POSIX ERE */

#endif
