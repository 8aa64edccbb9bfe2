/*
 * repack.c: merging the audit repository's small packs.
 *
 * Packs accumulate, one a batch, so sv_odb_merge() merges them by size
 * class: when SV_PACK_TIER packs share a class, they and every smaller
 * pack become one.  An object is so rewritten once a class (a handful of
 * times however long the history), and the directory holds tens of
 * packs.  The merge itself is libgit2's (its packbuilder writes the one
 * pack, its indexer indexes it, its reader of that pack checks it holds
 * every object before anything is removed): nothing here reads a pack's
 * bytes.  Packs with a .keep or .promisor and packs of SV_PACK_MERGE_MAX
 * or more (git gc's) are left alone: that is `git gc`'s job.  The
 * daemon merges after it has answered (sv_audit_maintain), under the
 * committers' lock.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2/sys/config.h>
#include <git2/sys/odb_backend.h>
#include <git2/sys/repository.h>

#include "odbimpl.h"

#define REPACK_DIR	"supervise-repack"	/* beside objects/: git ignores it */

/* Object ids, in the order found. */
struct ids {
	git_oid *v;
	size_t n, cap;
};

/* A merge: the packs it replaces, and the pack built for them. */
struct merge {
	char *gitdir, *packdir, *work;
	char **names;		/* "pack-HEX" of the packs it replaces */
	size_t k;
	pthread_t thread;
	atomic_int stop, done;
	int rc;			/* of the build */
	struct sv_err err;
	char name[GIT_OID_HEXSZ + 1];	/* the built pack's */
};

struct packfile {
	char *name;		/* "pack-HEX", without the extension */
	off_t size;		/* of the .pack */
	int tier;
};

static int
tier_of(off_t size)
{
	int t = 0;

	for (size /= 65536; size >= SV_PACK_TIER; size /= SV_PACK_TIER)
		t++;
	return t;
}

static int
packfile_cmp(const void *a, const void *b)
{
	off_t x = ((const struct packfile *)a)->size;
	off_t y = ((const struct packfile *)b)->size;

	return x < y ? -1 : x > y;
}

static int
exists_with(const char *dir, const char *name, const char *ext)
{
	char *p = sv_xasprintf("%s/%s%s", dir, name, ext);
	struct stat st;
	int rc = lstat(p, &st) == 0;

	free(p);
	return rc;
}

/* Packs in dir small enough to merge: named, sized, sorted by size. */
static int
list_packs(const char *dir, struct packfile **out, size_t *n, size_t *all,
    struct sv_err *e)
{
	struct packfile *v = NULL;
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	*out = NULL;
	*n = *all = 0;
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		return sv_errf(e, errno, "can't read '%s'", dir);
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		struct stat st;
		char *name, *path;

		if (len != 5 + 2 * OID_RAW + 4 ||
		    strncmp(de->d_name, "pack-", 5) != 0 ||
		    strcmp(de->d_name + len - 4, ".idx") != 0)
			continue;
		name = sv_xstrdup(de->d_name);
		name[len - 4] = '\0';
		path = sv_xasprintf("%s/%s.pack", dir, name);
		if (stat(path, &st) == -1 || !S_ISREG(st.st_mode)) {
			free(path);
			free(name);
			continue;	/* git ignores an index without a pack */
		}
		free(path);
		(*all)++;
		if (st.st_size >= SV_PACK_MERGE_MAX ||
		    exists_with(dir, name, ".keep") ||
		    exists_with(dir, name, ".promisor")) {
			free(name);
			continue;
		}
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			v = sv_xrealloc(v, cap * sizeof *v);
		}
		v[*n].name = name;
		v[*n].size = st.st_size;
		v[*n].tier = tier_of(st.st_size);
		(*n)++;
	}
	closedir(d);
	if (*n > 1)
		qsort(v, *n, sizeof *v, packfile_cmp);
	*out = v;
	return 0;
}

static void
packs_free(struct packfile *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/*
 * Which packs to merge: the smallest size class holding SV_PACK_TIER
 * packs, with every pack of the classes below it.  *k packs from the
 * start of v (sorted by size), 0 for none.
 */
static size_t
choose(const struct packfile *v, size_t n)
{
	size_t i = 0, k = 0;

	while (i < n) {
		size_t j = i;
		int t = v[i].tier;

		while (j < n && v[j].tier == t)
			j++;
		if (j - i >= SV_PACK_TIER)
			k = j;
		i = j;
		if (k > 0)
			break;
	}
	return k;
}

int
sv_odb_merge_due(const struct sv_odb *o)
{
	/* Listing costs a stat a pack: look every few packs written. */
	return o->flushes >= SV_PACK_CHECK;
}

/* The ids of the objects of packdir/NAME, as libgit2 reads that pack. */
static int
add_id(const git_oid *id, void *arg)
{
	struct ids *ids = arg;

	if (ids->n == ids->cap) {
		ids->cap = ids->cap ? 2 * ids->cap : 1024;
		ids->v = sv_xrealloc(ids->v, ids->cap * sizeof *ids->v);
	}
	git_oid_cpy(&ids->v[ids->n++], id);
	return 0;
}

static int
pack_ids(const char *dir, const char *name, struct ids *ids, struct sv_err *e)
{
	git_odb_backend *b = NULL;
	char *idx = sv_xasprintf("%s/%s.idx", dir, name);
	int rc;

	if ((rc = git_odb_backend_one_pack(&b, idx)) == 0)
		rc = b->foreach(b, add_id, ids);
	if (b != NULL)
		b->free(b);
	if (rc < 0)
		sv_git_fail(e, rc, "can't read the pack '%s'", idx);
	free(idx);
	return rc < 0 ? -1 : 0;
}

/* Does the pack whose index is `idx` hold every one of ids? */
static int
holds_all(const char *idx, const struct ids *ids, struct sv_err *e)
{
	git_odb_backend *b = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc;

	if ((rc = git_odb_backend_one_pack(&b, idx)) < 0)
		return sv_git_fail(e, rc, "can't read the pack '%s'", idx);
	rc = 0;
	for (size_t i = 0; i < ids->n && rc == 0; i++)
		if (!b->exists(b, &ids->v[i]))
			rc = sv_errf(e, 0, "'%s' lacks object %s of the packs it "
			    "merges; nothing removed", idx,
			    git_oid_tostr(hex, sizeof hex, &ids->v[i]));
	b->free(b);
	return rc;
}

static void
empty_dir(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/*
 * The merge's work directory, one a process: AUDIT/supervise-repack/PID.
 * Emptied (what a killed merge left) or made; the directories of
 * processes that no longer run are removed on the way.
 */
static int
work_dir(const char *top, char **out, struct sv_err *e)
{
	struct dirent *de;
	DIR *d;
	char *dir;
	long pid;

	*out = NULL;
	if (mkdir(top, 0755) == -1 && errno != EEXIST)
		return sv_errf(e, errno, "can't create '%s'", top);
	if ((d = opendir(top)) == NULL)
		return sv_errf(e, errno, "can't read '%s'", top);
	while ((de = readdir(d)) != NULL) {
		if (sscanf(de->d_name, "%ld", &pid) != 1 || pid <= 0 ||
		    (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)))
			continue;
		dir = sv_xasprintf("%s/%s", top, de->d_name);
		empty_dir(dir);
		if (pid != (long)getpid())
			rmdir(dir);
		free(dir);
	}
	closedir(d);
	dir = sv_xasprintf("%s/%ld", top, (long)getpid());
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		sv_errf(e, errno, "can't create '%s'", dir);
		free(dir);
		return -1;
	}
	*out = dir;
	return 0;
}

/*
 * The merge's own repository: the packs it merges and nothing else (so
 * an object missing from them fails the merge rather than being taken
 * from elsewhere), and a configuration of its own, in a file in the
 * work directory read by this handle alone:
 *  - no deltas: libgit2's packbuilder tries none for objects over its
 *    big-file threshold, which libgit2 1.5 reads from pack.deltaCacheSize
 *    (core.bigFileThreshold is what it means, and what later versions
 *    read: both are set).  Trying each object against the ten before it
 *    took 2.8 s a merge of 16 batches here and fell far behind a steady
 *    stream of decisions; `git gc` deltifies later;
 *  - zlib level 1 (pack.compression), as the packs we write: level 6
 *    took half as long again.
 */
static int
open_undeltified(git_repository **repo, struct merge *m, struct sv_err *e)
{
	static const char text[] = "[core]\n\tbigFileThreshold = 1\n"
	    "[pack]\n\tdeltaCacheSize = 1\n\tcompression = 1\n";
	git_config *cfg = NULL;
	git_odb *odb = NULL;
	git_odb_backend *b = NULL;
	char *path = sv_xasprintf("%s/config", m->work);
	int fd, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1 || sv_write_all(fd, text, sizeof text - 1) == -1) {
		rc = sv_errf(e, errno, "can't write '%s'", path);
		if (fd != -1)
			close(fd);
		free(path);
		return rc;
	}
	close(fd);
	if ((rc = git_odb_new(&odb)) < 0)
		goto fail;
	for (size_t i = 0; i < m->k; i++) {
		char *idx = sv_xasprintf("%s/%s.idx", m->packdir, m->names[i]);

		rc = git_odb_backend_one_pack(&b, idx);
		free(idx);
		if (rc < 0 || (rc = git_odb_add_backend(odb, b, 1)) < 0) {
			if (b != NULL)
				b->free(b);
			goto fail;
		}
		b = NULL;
	}
	if ((rc = git_repository_wrap_odb(repo, odb)) < 0 ||
	    (rc = git_config_new(&cfg)) < 0 ||
	    (rc = git_config_add_file_ondisk(cfg, path, GIT_CONFIG_LEVEL_APP,
	    *repo, 0)) < 0 ||
	    (rc = git_repository_set_config(*repo, cfg)) < 0)
		goto fail;
	git_config_free(cfg);
	git_odb_free(odb);	/* the repository holds it */
	free(path);
	return 0;
fail:
	sv_git_fail(e, rc, "can't merge the packs of '%s'", m->gitdir);
	git_config_free(cfg);
	git_odb_free(odb);
	free(path);
	return -1;
}

/* Stop a merge under way: libgit2 checks between objects. */
static int
stopping(const git_indexer_progress *stats, void *arg)
{
	(void)stats;
	return atomic_load(&((struct merge *)arg)->stop) ? -1 : 0;
}

/*
 * libgit2's packbuilder rewrites the objects of the chosen packs as one
 * pack (deltas and all), in the work directory, through a repository
 * handle of its own; libgit2's indexer indexes it as it is written, and
 * libgit2's reader of that pack alone must then find every object of the
 * packs it replaces.  Then both files are made durable.  No lock: packs
 * are never rewritten in place, and nothing is installed here.
 */
static void
build(struct merge *m)
{
	git_repository *repo = NULL;
	git_packbuilder *pb = NULL;
	struct sv_durable d;
	struct ids ids = { NULL, 0, 0 };
	struct sv_err *e = &m->err;
	char *idx = NULL;
	int grc;

	m->rc = -1;
	sv_durable_init(&d);
	for (size_t i = 0; i < m->k; i++)
		if (pack_ids(m->packdir, m->names[i], &ids, e) == -1)
			goto out;
	if (open_undeltified(&repo, m, e) < 0)
		goto out;
	if ((grc = git_packbuilder_new(&pb, repo)) < 0) {
		sv_git_fail(e, grc, "can't merge the packs of '%s'", m->gitdir);
		goto out;
	}
	git_packbuilder_set_threads(pb, 1);
	for (size_t i = 0; i < ids.n; i++) {
		if (atomic_load(&m->stop)) {
			sv_errf(e, 0, "the merge of the packs of '%s' was stopped",
			    m->gitdir);
			goto out;
		}
		if ((grc = git_packbuilder_insert(pb, &ids.v[i], NULL)) < 0) {
			sv_git_fail(e, grc, "can't merge the packs of '%s'",
			    m->gitdir);
			goto out;
		}
	}
	if ((grc = git_packbuilder_write(pb, m->work, 0, stopping, m)) < 0) {
		sv_git_fail(e, grc, "can't write a merged pack into '%s'",
		    m->work);
		goto out;
	}
	snprintf(m->name, sizeof m->name, "%s", git_packbuilder_name(pb));
	idx = sv_xasprintf("%s/pack-%s.idx", m->work, m->name);
	if (holds_all(idx, &ids, e) == -1)
		goto out;
	sv_durable_path(&d, idx);
	free(idx);
	idx = sv_xasprintf("%s/pack-%s.pack", m->work, m->name);
	sv_durable_path(&d, idx);
	if (sv_durable_sync(&d, e) == -1)
		goto out;
	m->rc = 0;
out:
	free(idx);
	git_packbuilder_free(pb);
	git_repository_free(repo);
	sv_durable_free(&d);
	free(ids.v);
}

static void *
build_thread(void *arg)
{
	struct merge *m = arg;

	build(m);
	atomic_store(&m->done, 1);
	return NULL;
}

static void
merge_free(struct merge *m)
{
	if (m == NULL)
		return;
	if (m->work != NULL) {
		empty_dir(m->work);
		rmdir(m->work);
	}
	for (size_t i = 0; i < m->k; i++)
		free(m->names[i]);
	free(m->names);
	free(m->gitdir);
	free(m->packdir);
	free(m->work);
	free(m);
}

/* The packs to merge now, if any: NULL when none is due. */
static struct merge *
merge_plan(struct sv_odb *o, struct sv_err *e, int *rc)
{
	struct packfile *packs;
	struct merge *m = NULL;
	size_t n, all, k;

	*rc = 0;
	o->flushes = 0;
	if (list_packs(o->packdir, &packs, &n, &all, e) == -1) {
		*rc = -1;
		return NULL;
	}
	if ((k = choose(packs, n)) >= 2) {
		m = sv_xmalloc(sizeof *m);
		memset(m, 0, sizeof *m);
		atomic_init(&m->stop, 0);
		atomic_init(&m->done, 0);
		m->gitdir = sv_xstrdup(git_repository_path(o->repo));
		m->packdir = sv_xstrdup(o->packdir);
		m->names = sv_xmalloc(k * sizeof *m->names);
		for (size_t i = 0; i < k; i++)
			m->names[m->k++] = sv_xstrdup(packs[i].name);
		{
			char *top = sv_xasprintf("%s%s", m->gitdir, REPACK_DIR);

			*rc = work_dir(top, &m->work, e);
			free(top);
		}
		if (*rc == -1) {
			merge_free(m);
			m = NULL;
		}
	}
	packs_free(packs, n);
	return m;
}

/*
 * Put a built pack in objects/pack (the pack before its index), make
 * the directory durable, and list the packs it replaces in *old (the
 * merged pack may be one of its inputs, by content: that one stays).
 * Under the committers' lock.
 */
static int
install(struct sv_odb *o, struct merge *m, char ***old, struct sv_err *e)
{
	struct sv_durable d;
	size_t j = 0;
	int rc = 0;

	*old = NULL;
	for (int x = 0; x < 2 && rc == 0; x++) {
		const char *ext = x == 0 ? "pack" : "idx";
		char *from = sv_xasprintf("%s/pack-%s.%s", m->work, m->name, ext);
		char *to = sv_xasprintf("%s/pack-%s.%s", o->packdir, m->name,
		    ext);

		if (rename(from, to) == -1)
			rc = sv_errf(e, errno, "can't rename '%s' to '%s'", from,
			    to);
		free(from);
		free(to);
	}
	if (rc == -1)
		return -1;
	sv_durable_init(&d);
	sv_durable_path(&d, o->packdir);
	rc = sv_durable_sync(&d, e);
	sv_durable_free(&d);
	if (rc == -1)
		return -1;
	*old = sv_xmalloc((m->k + 1) * sizeof **old);
	for (size_t i = 0; i < m->k; i++)
		if (strcmp(m->names[i] + 5, m->name) != 0)
			(*old)[j++] = sv_xasprintf("%s/%s", o->packdir,
			    m->names[i]);
	(*old)[j] = NULL;
	return 0;
}

int
sv_odb_merge(struct sv_odb *o, int force, char ***old, struct sv_err *e)
{
	struct merge *m;
	int rc;

	*old = NULL;
	if (!force && !sv_odb_merge_due(o))
		return 0;
	if ((m = merge_plan(o, e, &rc)) == NULL)
		return rc;
	build(m);
	if ((rc = m->rc) == -1)
		*e = m->err;
	else
		rc = install(o, m, old, e);
	merge_free(m);
	return rc;
}

int
sv_odb_merge_start(struct sv_odb *o, struct sv_err *e)
{
	struct merge *m;
	int rc;

	if (o->merge != NULL || !sv_odb_merge_due(o))
		return 0;
	if ((m = merge_plan(o, e, &rc)) == NULL)
		return rc;
	if ((errno = pthread_create(&m->thread, NULL, build_thread, m)) != 0) {
		merge_free(m);
		return sv_errf(e, errno, "can't start merging the packs of "
		    "'%s'", o->objdir);
	}
	o->merge = m;
	return 0;
}

int
sv_odb_merge_ready(const struct sv_odb *o)
{
	return o->merge != NULL && atomic_load(&o->merge->done);
}

int
sv_odb_merge_finish(struct sv_odb *o, char ***old, struct sv_err *e)
{
	struct merge *m = o->merge;
	int rc;

	*old = NULL;
	if (m == NULL)
		return 0;
	pthread_join(m->thread, NULL);
	o->merge = NULL;
	if ((rc = m->rc) == -1)
		*e = m->err;
	else
		rc = install(o, m, old, e);
	merge_free(m);
	return rc;
}

void
sv_odb_merge_stop(struct sv_odb *o)
{
	if (o->merge == NULL)
		return;
	atomic_store(&o->merge->stop, 1);
	pthread_join(o->merge->thread, NULL);
	merge_free(o->merge);
	o->merge = NULL;
}

/*
 * Remove merged packs: the index first, so no reader finds it alone.
 * Then list the packs again: libgit2 still maps the removed ones, and
 * the last unmapping is what frees their blocks, which is better done
 * now, after the answers, than on the way to the next commit.
 */
int
sv_odb_remove(struct sv_odb *o, char **old, struct sv_err *e)
{
	static const char *const ext[] = { ".idx", ".pack", ".rev", ".bitmap",
	    ".mtimes" };
	struct sv_err ignored;
	int rc = 0;

	for (size_t i = 0; old != NULL && old[i] != NULL; i++)
		for (size_t x = 0; x < sizeof ext / sizeof ext[0]; x++) {
			char *p = sv_xasprintf("%s%s", old[i], ext[x]);

			if (unlink(p) == -1 && errno != ENOENT && rc == 0)
				rc = sv_errf(e, errno, "can't remove '%s'", p);
			free(p);
		}
	if (old == NULL || old[0] == NULL)
		return rc;
	if (odb_rescan_packs(o, rc == 0 ? e : &ignored) == -1)
		rc = -1;
	return rc;
}

void
sv_odb_old_free(char **old)
{
	for (size_t i = 0; old != NULL && old[i] != NULL; i++)
		free(old[i]);
	free(old);
}

int
sv_odb_count_packs(git_repository *repo, size_t *n, struct sv_err *e)
{
	char *dir = sv_xasprintf("%sobjects/pack", git_repository_path(repo));
	struct packfile *v;
	size_t k;
	int rc = list_packs(dir, &v, &k, n, e);

	if (rc == 0)
		packs_free(v, k);
	free(dir);
	return rc;
}
