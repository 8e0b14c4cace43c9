/*
 * Provenance of a runbook (issue 17 item 4): the git commit of the library
 * checkout it lives in and whether that tree had changes nobody committed,
 * recorded next to its sha256 in every run record and in a plan.
 */
#ifndef RUNBOOK_PROVENANCE_H
#define RUNBOOK_PROVENANCE_H

/* The commit checked out where the file at path lives (hex into commit) and
 * whether `git status --porcelain` lists anything there (*dirty).  0, or -1
 * when path is in no git checkout (found by looking for .git upwards, with
 * no process started) or git cannot tell.  Cached per directory: a run's
 * start and end records cost one lookup. */
int rb_git_provenance(const char *path, char commit[65], int *dirty);

#endif
