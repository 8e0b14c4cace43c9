/* CHECK for a forked child that attacks something: the first failed check
 * says where and why, and ends the child with 1 (the parent sees it). */
#ifndef RUNBOOK_TEST_CHILD_CHECK_H
#define RUNBOOK_TEST_CHILD_CHECK_H

#include <stdio.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

#endif
