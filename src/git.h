/*
 * git.h: libgit2 as the library uses it (git.c): set up once per
 * process, and its errors as ours.
 */
#ifndef SUPERVISE_GIT_H
#define SUPERVISE_GIT_H

#include <git2.h>

#include "supervise.h"

int sv_git_ready(void);		/* libgit2 set up, once per process */
/* "MESSAGE: libgit2's reason", or the error code when it gave none. */
int sv_git_fail(struct sv_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
