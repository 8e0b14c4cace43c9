/* The primitives and helpers registered into every engine. */
#ifndef RUNBOOK_MODULES_H
#define RUNBOOK_MODULES_H

#include <lua.h>

void mod_base_open(
    lua_State *L); /* log, print, sleep, now, env, secret, check, confirm, parallel */
void mod_exec_open(lua_State *L); /* exec, sh */
void mod_fs_open(lua_State *L);
void mod_json_open(lua_State *L);
void mod_yaml_open(lua_State *L);
void mod_http_open(lua_State *L); /* http.*, on libcurl loaded at first use */
void mod_http_close(void);
void mod_regex_open(lua_State *L);   /* regex.match/find: POSIX ERE */
void mod_notify_open(lua_State *L);  /* notify.slack/webhook/pagerduty/email */
void mod_kubectl_open(lua_State *L); /* kubectl.*: the kubectl CLI */
void mod_docker_open(lua_State *L);  /* docker.*: the Docker Engine API */
void mod_db_open(lua_State *L);      /* db.*: SQLite and PostgreSQL */
void rbfile_open(lua_State *L);      /* runbook{}, step() */

#endif
