/*
 * durable.c: making what we wrote survive a power cut, by name.
 *
 * A caller hands a set the files and directories it wrote, then syncs
 * the set: each is fsync'd, and nothing else is (no syncfs: the file
 * system is shared, and flushing every dirty page of every other
 * program made our decisions wait on theirs, and theirs on ours).  The
 * fsyncs of one set run at once, on a few threads that stay: each waits
 * for the disk's cache flush, and flushes asked for together are merged by the
 * block layer, so a set of four costs about one.  A file must be on
 * disk before a name for it is: hand the file, sync, rename, then hand
 * the directory and sync again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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

/*
 * The fsync workers stay: started as sets first need them (never more
 * than SYNC_THREADS - 1, nor more than a set has items less one), they
 * wait for the next set.  Starting them afresh for each set cost some
 * 2.7 thread starts a decision at full speed.  Sets from several threads
 * of a process (the daemon's spool thread, its merge thread) are served
 * in the order they came; each caller syncs its own set's items too.
 */
struct job {
	struct sv_durable *d;
	size_t next;		/* the next item nobody took */
	size_t left;		/* items not yet synced */
	struct job *nx;		/* jobs with items nobody took */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t posted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t synced = PTHREAD_COND_INITIALIZER;
static struct job *jobs;
static size_t nworkers;

/* Under mu: take an item of `only` (NULL: of the oldest job). */
static struct job *
take(struct job *only, size_t *i)
{
	struct job **pp = &jobs, *j;

	while (*pp != NULL && only != NULL && *pp != only)
		pp = &(*pp)->nx;
	if ((j = *pp) == NULL)
		return NULL;
	*i = j->next++;
	if (j->next == j->d->n)
		*pp = j->nx;	/* every item taken */
	return j;
}

/* Under mu, released while syncing. */
static void
sync_taken(struct job *j, size_t i)
{
	pthread_mutex_unlock(&mu);
	sync_one(&j->d->v[i]);
	pthread_mutex_lock(&mu);
	if (--j->left == 0)
		pthread_cond_broadcast(&synced);
}

static void *
worker(void *arg)
{
	struct job *j;
	size_t i;

	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		while ((j = take(NULL, &i)) == NULL)
			pthread_cond_wait(&posted, &mu);
		sync_taken(j, i);
	}
	return NULL;
}

/* Under mu: workers up to `want`, with every signal blocked (the
 * process's own threads take them). */
static void
start_workers(size_t want)
{
	sigset_t all, old;
	pthread_attr_t at;
	pthread_t t;

	if (want > SYNC_THREADS - 1)
		want = SYNC_THREADS - 1;
	if (nworkers >= want)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64 << 10);
	while (nworkers < want && pthread_create(&t, &at, worker, NULL) == 0)
		nworkers++;
	pthread_attr_destroy(&at);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
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
	struct job j = { d, 0, d->n, NULL }, **pp;
	size_t i;
	int rc = 0;

	if (d->n == 1) {
		sync_one(&d->v[0]);
	} else if (d->n > 1) {
		pthread_mutex_lock(&mu);
		for (pp = &jobs; *pp != NULL; pp = &(*pp)->nx)
			;
		*pp = &j;
		start_workers(d->n - 1);
		pthread_cond_broadcast(&posted);
		/* This thread too; alone when no worker could start. */
		while (take(&j, &i) != NULL)
			sync_taken(&j, i);
		while (j.left > 0)
			pthread_cond_wait(&synced, &mu);
		pthread_mutex_unlock(&mu);
	}
	for (size_t k = 0; k < d->n; k++)
		if (d->v[k].err != 0) {
			rc = sv_errf(e, d->v[k].err, "can't flush '%s' to disk",
			    d->v[k].label);
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
