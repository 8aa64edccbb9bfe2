/*
 * gone.c: the mark of a pending proposal whose caller left.
 *
 * When the last call waiting on a proposal goes (its client closed the
 * connection: a timeout, a crash, a user who gave up), the daemon
 * creates the empty file queue/SLUG/gone/ID; when a call waits on it
 * again (an identical retry, proposal-status) or it is decided, the file
 * goes.  An operator sees it with `ls gone/`, supervise-list shows
 * `,gone` after the state, the console says "gone".  A mark is advice
 * for the operator, never part of a decision: a lost or stale one
 * changes nothing else, which is why it is not made durable.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervise.h"

#define GONE_DIR "gone"

int
sv_gone_mark(struct sv_spool *s, const char *id, struct sv_err *e)
{
	char *path = sv_xasprintf(GONE_DIR "/%s", id);
	int fd, rc = 0;

	if (sv_valid_id(id, e) == -1)
		goto out;
	fd = openat(s->dirfd, path, O_WRONLY | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1 && errno == ENOENT && mkdirat(s->dirfd, GONE_DIR,
	    0700) == 0)
		fd = openat(s->dirfd, path, O_WRONLY | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
	if (fd == -1)
		rc = sv_errf(e, errno, "can't create '%s/%s'", s->path, path);
	else
		close(fd);
out:
	free(path);
	return rc;
}

int
sv_gone_clear(struct sv_spool *s, const char *id, struct sv_err *e)
{
	char *path = sv_xasprintf(GONE_DIR "/%s", id);
	int rc = 0;

	if (unlinkat(s->dirfd, path, 0) == -1 && errno != ENOENT &&
	    errno != ENOTDIR)
		rc = sv_errf(e, errno, "can't remove '%s/%s'", s->path, path);
	free(path);
	return rc;
}

int
sv_gone_is(struct sv_spool *s, const char *id)
{
	char *path = sv_xasprintf(GONE_DIR "/%s", id);
	struct stat st;
	int rc = fstatat(s->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;

	free(path);
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Mark each of v[0..n) whose id has a file in gone/: one read of the
 * directory however many entries (a look-up each would be a syscall
 * each, and a spool can hold 100,000).
 */
int
sv_gone_apply(struct sv_spool *s, struct sv_entry *v, size_t n,
    struct sv_err *e)
{
	struct dirent *de;
	char **ids = NULL;
	size_t nids = 0, cap = 0, i;
	DIR *d;
	int fd;

	for (i = 0; i < n; i++)
		v[i].gone = 0;
	fd = openat(s->dirfd, GONE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 0 : sv_errf(e, errno, "can't open "
		    "'%s/" GONE_DIR "'", s->path);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return sv_errf(e, errno, "can't read '%s/" GONE_DIR "'",
		    s->path);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (nids == cap) {
			cap = cap ? 2 * cap : 64;
			ids = sv_xrealloc(ids, cap * sizeof *ids);
		}
		ids[nids++] = sv_xstrdup(de->d_name);
	}
	closedir(d);
	if (nids > 1)
		qsort(ids, nids, sizeof *ids, cmp_str);
	for (i = 0; i < n && nids > 0; i++) {
		const char *key = v[i].id;

		v[i].gone = bsearch(&key, ids, nids, sizeof *ids,
		    cmp_str) != NULL;
	}
	for (i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	return 0;
}
