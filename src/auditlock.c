/*
 * auditlock.c: the committers' lock of the audit repository
 * (AUDIT/supervise.lock, an flock), and telling a ref lock left by one
 * of our committers that died from a lock a live git holds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

#define LOCK_WAIT_MS	30000	/* how long to wait for another committer */

/*
 * Wait for the committers' flock, bounded: a committer holds it for
 * milliseconds, so half a minute means something is wrong (a stopped
 * process), and saying so beats hanging a daemon.  flock has no timeout,
 * so poll; short naps keep the lock busy when committers queue up.
 */
int
sv_audit_lock(struct sv_audit *a, struct sv_err *e)
{
	int64_t start = sv_now_ms();
	long delay = 100;

	for (;;) {
		if (flock(a->lockfd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return sv_errf(e, errno, "can't lock '%s/%s'", a->path,
			    LOCK_NAME);
		if (sv_now_ms() - start > LOCK_WAIT_MS)
			return sv_errf(e, 0, "can't lock '%s/%s': another "
			    "committer has held it for %d s", a->path, LOCK_NAME,
			    LOCK_WAIT_MS / 1000);
		sv_sleep_us(delay);
		if (delay < 2000)
			delay *= 2;
	}
}

void
sv_audit_unlock(struct sv_audit *a)
{
	flock(a->lockfd, LOCK_UN);
}

/* The oldest lock file a commit can run into: HEAD's, the branch's (then
 * *branch_lock is set) or packed-refs'. */
int
oldest_lock(struct sv_audit *a, char **path, long *age, int *branch_lock)
{
	git_reference *head = NULL;
	const char *branch = "refs/heads/main";
	char *cand[3];
	struct stat st;
	time_t now = time(NULL);
	int found = 0, symbolic = 0;

	if (git_reference_lookup(&head, a->repo, "HEAD") == 0 &&
	    git_reference_type(head) == GIT_REFERENCE_SYMBOLIC) {
		branch = git_reference_symbolic_target(head);
		symbolic = 1;
	}
	cand[0] = sv_xasprintf("%s/HEAD.lock", a->path);
	cand[1] = sv_xasprintf("%s/%s.lock", a->path, branch);
	cand[2] = sv_xasprintf("%s/packed-refs.lock", a->path);
	git_reference_free(head);
	*path = NULL;
	*branch_lock = 0;
	for (int i = 0; i < 3; i++) {
		if (lstat(cand[i], &st) == 0 &&
		    (!found || now - st.st_mtime > *age)) {
			free(*path);
			*path = sv_xstrdup(cand[i]);
			*age = (long)(now - st.st_mtime);
			*branch_lock = i == 1 && symbolic;
			found = 1;
		}
		free(cand[i]);
	}
	return found;
}

/*
 * Who is moving the branch.  While libgit2 holds refs/heads/BRANCH.lock
 * for us, AUDIT/supervise.lock (whose flock we hold) says "PID START
 * BOOT" of this process; it is emptied when the move is over.  So a lock
 * file found later, with that mark naming a process that no longer runs,
 * was left by one of our committers that died inside the move (a kill -9
 * hits that window about one time in twenty), and can be removed: no
 * other committer of ours can be in the move while we hold the flock.
 * Any other lock is git's own and is left alone.
 */
static void
read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (f != NULL) {
		if (fgets(buf, (int)n, f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

/* Field 22 of /proc/PID/stat, the start time, as text; "" when gone. */
static void
start_time(long pid, char *buf, size_t n)
{
	char path[64], stat[1024], *p;
	int field;

	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	read_line(path, stat, sizeof stat);
	buf[0] = '\0';
	/* The command name, field 2, may hold blanks: count after its ')'. */
	if ((p = strrchr(stat, ')')) == NULL)
		return;
	for (field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p != NULL)
		snprintf(buf, n, "%.*s", (int)strcspn(p + 1, " "), p + 1);
}

void
identify_self(struct sv_audit *a)
{
	char start[32], boot[64];

	start_time((long)getpid(), start, sizeof start);
	read_line("/proc/sys/kernel/random/boot_id", boot, sizeof boot);
	snprintf(a->self, sizeof a->self, "%ld %s %s", (long)getpid(),
	    start[0] ? start : "?", boot[0] ? boot : "?");
}

void
mark_moving(struct sv_audit *a, int moving)
{
	size_t n = moving ? strlen(a->self) : 0;

	/* Best effort: without the mark a lock is only reported, as git's. */
	if (n > 0 && pwrite(a->lockfd, a->self, n, 0) != (ssize_t)n)
		n = 0;
	if (ftruncate(a->lockfd, (off_t)n) == -1)
		return;
}

/* The mark the last holder of the flock left: read before we move. */
void
read_mark(struct sv_audit *a, char *mark, size_t n)
{
	ssize_t len = pread(a->lockfd, mark, n - 1, 0);

	mark[len > 0 ? len : 0] = '\0';
}

/* Does `mark` name a committer that died inside the move? */
int
left_by_dead_committer(const char *mark)
{
	char start[32], boot[64], now_start[32], now_boot[64];
	long pid;

	if (sscanf(mark, "%ld %31s %63s", &pid, start, boot) != 3 || pid <= 0)
		return 0;
	read_line("/proc/sys/kernel/random/boot_id", now_boot, sizeof now_boot);
	if (now_boot[0] == '\0')
		return 0;	/* can't tell: leave it */
	if (strcmp(boot, now_boot) != 0)
		return 1;	/* marked before the last boot */
	if (pid == (long)getpid())
		return 0;
	start_time(pid, now_start, sizeof now_start);
	return now_start[0] == '\0' || strcmp(now_start, start) != 0;
}
