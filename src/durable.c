/*
 * durable.c: making what we wrote survive a power cut, by name.
 *
 * A caller hands a set the files and directories it wrote, then syncs
 * the set: each is fsync'd, and nothing else is (no syncfs: the file
 * system is shared, and flushing every dirty page of every other
 * program made our decisions wait on theirs, and theirs on ours).  The
 * fsyncs of one set run at once, on a few threads: each waits for the
 * disk's cache flush, and flushes asked for together are merged by the
 * block layer, so a set of four costs about one.  A file must be on
 * disk before a name for it is: hand the file, sync, rename, then hand
 * the directory and sync again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

#define SYNC_THREADS	16	/* fsyncs under way at once, at most */

struct sv_durable_item {
	int fd;			/* borrowed; -1: open dirfd/name */
	int dirfd;
	char *name;
	char *label;		/* for messages */
	int err;		/* errno of its failure, or 0 */
};

void
sv_durable_init(struct sv_durable *d)
{
	memset(d, 0, sizeof *d);
}

static void
add(struct sv_durable *d, int fd, int dirfd, const char *name,
    const char *label)
{
	struct sv_durable_item *it;

	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 8;
		d->v = sv_xrealloc(d->v, d->cap * sizeof *d->v);
	}
	it = &d->v[d->n++];
	it->fd = fd;
	it->dirfd = dirfd;
	it->name = name ? sv_xstrdup(name) : NULL;
	it->label = sv_xstrdup(label);
	it->err = 0;
}

void
sv_durable_fd(struct sv_durable *d, int fd, const char *label)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].fd == fd)
			return;		/* a directory handed for each file */
	add(d, fd, -1, NULL, label);
}

void
sv_durable_at(struct sv_durable *d, int dirfd, const char *name,
    const char *label)
{
	add(d, -1, dirfd, name, label);
}

void
sv_durable_path(struct sv_durable *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].fd == -1 && d->v[i].dirfd == AT_FDCWD &&
		    strcmp(d->v[i].name, path) == 0)
			return;
	add(d, -1, AT_FDCWD, path, path);
}

void
sv_durable_file(struct sv_durable *d, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;

	sv_durable_path(d, path);
	if (slash == NULL)
		dir = sv_xstrdup(".");
	else if (slash == path)
		dir = sv_xstrdup("/");
	else
		dir = sv_xasprintf("%.*s", (int)(slash - path), path);
	sv_durable_path(d, dir);
	free(dir);
}

static void
sync_one(struct sv_durable_item *it)
{
	int fd = it->fd;

	if (fd == -1 && (fd = openat(it->dirfd, it->name, O_RDONLY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1) {
		it->err = errno;
		return;
	}
	/* Some file systems refuse fsync on a directory; the rename stands. */
	if (fsync(fd) == -1 && errno != EINVAL && errno != EROFS)
		it->err = errno;
	if (fd != it->fd)
		close(fd);
}

struct worker {
	struct sv_durable *d;
	atomic_size_t next;
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	size_t i;

	while ((i = atomic_fetch_add(&w->next, 1)) < w->d->n)
		sync_one(&w->d->v[i]);
	return NULL;
}

static void
forget(struct sv_durable *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].name);
		free(d->v[i].label);
	}
	d->n = 0;
}

int
sv_durable_sync(struct sv_durable *d, struct sv_err *e)
{
	pthread_t th[SYNC_THREADS - 1];
	struct worker w;
	size_t nth = 0;
	int rc = 0;

	w.d = d;
	atomic_init(&w.next, 0);
	while (nth + 1 < d->n && nth < SYNC_THREADS - 1 &&
	    pthread_create(&th[nth], NULL, work, &w) == 0)
		nth++;
	work(&w);		/* this thread too; alone when threads fail */
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].err != 0) {
			rc = sv_errf(e, d->v[i].err, "can't flush '%s' to disk",
			    d->v[i].label);
			break;
		}
	forget(d);
	return rc;
}

void
sv_durable_free(struct sv_durable *d)
{
	forget(d);
	free(d->v);
	memset(d, 0, sizeof *d);
}
