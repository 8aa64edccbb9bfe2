/*
 * durable.c: making what the audit repository wrote survive a power cut,
 * and the flush the daemon defers until it has answered.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"

/*
 * The write barrier.  libgit2's own fsync is off (sv_audit_open): it
 * would flush each loose object, its directory and the ref one by one,
 * sixteen flushes a commit, in series.  Instead a whole batch of commits
 * is written, then one syncfs(2) makes every object durable, then the
 * branch moves, then a second syncfs makes the ref durable.  Two flushes
 * however many decisions, in the order git's own fsync relies on: a ref
 * never survives a power cut that the objects it names did not.
 */
int
barrier(struct sv_audit *a, struct sv_err *e)
{
	if (syncfs(a->lockfd) == -1)
		return sv_errf(e, errno, "can't flush '%s' to disk", a->path);
	return 0;
}

void
sv_audit_defer_sync(struct sv_audit *a)
{
	a->defer_sync = 1;
}

int
sv_audit_sync(struct sv_audit *a, struct sv_err *e)
{
	if (a->unsynced) {
		if (barrier(a, e) == -1)
			return -1;
		a->unsynced = 0;
	}
	drop_old_ref(a);
	return 0;
}

int
sv_audit_same_fs(struct sv_audit *a, int fd)
{
	struct stat sa, sb;

	return fstat(a->lockfd, &sa) == 0 && fstat(fd, &sb) == 0 &&
	    sa.st_dev == sb.st_dev;
}
