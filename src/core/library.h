/* The runbook library on disk: finding runbook files, and loading one in
 * listing mode (no primitive may run) for list, show and check. */
#ifndef RUNBOOK_LIBRARY_H
#define RUNBOOK_LIBRARY_H

#include "engine.h"

typedef struct file_list {
    char **paths;
    int n, cap;
} file_list;

/* Every *.lua under dir, recursively, skipping lib/, tests/ and dot dirs,
 * sorted.  Returns -1 when dir cannot be read. */
int library_scan(const char *dir, file_list *out);
/* The library roots: ./runbooks, RUNBOOK_PATH entries, the share directory. */
void library_roots(file_list *out);
void file_list_free(file_list *l);
/* For "no runbook named X": " (did you mean 'calendar-api/restart'?)" into
 * buf when a runbook of the library (its root's runbooks/, ./runbooks,
 * RUNBOOK_PATH, the share directory) is named a typo away from name -- or
 * is name in another folder -- else "". */
const char *library_hint(const char *name, char *buf, size_t n);

/* An engine for listing: no audit, purpose LIST, text output on stdout. */
rb_engine *library_engine(const rb_module *modules);
/* The runbook files under roots (the default roots when it is empty) into
 * files, and a listing engine to read them with; NULL (both lists freed)
 * when no engine can be made. */
rb_engine *library_open(const rb_module *modules, file_list *roots, file_list *files);

#endif
