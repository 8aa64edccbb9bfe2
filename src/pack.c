/*
 * pack.c: the audit repository's object store.
 *
 * libgit2 stores every object it writes as a loose file: a temporary
 * file, a link, an unlink and the directory look-ups around them, and a
 * re-read of objects/pack/ before each new object.  A decision is seven
 * to nine objects, so that was about 200 system calls and nine new
 * inodes per decision, most of the time a commit took.
 *
 * Here the repository gets an object database of three backends:
 *
 *  - memory (highest priority): every object libgit2 writes lands here,
 *    and is read back from here while the batch is built;
 *  - libgit2's pack backend, behind a wrapper that rescans objects/pack/
 *    only when a read misses and the directory changed, or when we
 *    removed packs ourselves (sv_odb_remove), and never searches the
 *    packs for an object about to be written: a second copy in our pack
 *    is harmless (git keeps the first it finds), a search per object is
 *    not.  libgit2 "refreshes" every backend before each object it
 *    writes; the wrapper offers no refresh, so a batch written after a
 *    flush no longer rebuilds the pack list (a readdir, a stat a pack,
 *    and the unmapping of every index) on the way to its commit;
 *  - libgit2's loose backend, for objects written before (and by git).
 *
 * sv_odb_flush() writes what memory holds as one pack and its index, in
 * git's formats (pack version 2, index version 2), named by the pack's
 * checksum like every git pack: the pack is renamed into place before its
 * index, so a reader that sees the index finds the pack.  The caller then
 * flushes the disk before any ref names these objects (see commit.c).
 *
 * Packs accumulate, one a batch, so sv_odb_merge() merges them by size
 * class: when SV_PACK_TIER packs share a class, they and every smaller
 * pack become one.  An object is so rewritten once a class (a handful of
 * times however long the history), and the directory holds tens of
 * packs.  A merge copies each entry as it is (no inflating), checks its
 * CRC on the way, and drops duplicates.  Packs we did not write (with
 * deltas, from git gc), packs with a .keep and packs over
 * SV_PACK_MERGE_MAX are left alone: that is `git gc`'s job.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2/sys/odb_backend.h>
#include <git2/sys/repository.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "pack.h"

#define KEEP_MAX	((size_t)4 << 20)	/* flushed bytes kept to be read */
#define RACY_NS		50000000L	/* a directory time this close to a scan */
#define OID_RAW		20

/* --- objects in memory -------------------------------------------------- */

struct mobj {
	git_oid id;
	git_object_t type;
	size_t len;
	unsigned char *data;
	int flushed;		/* in a pack already, kept to be read back */
};

struct memstore {
	git_odb_backend parent;
	struct mobj *v;
	size_t n, cap;
	size_t *slot;		/* open addressing: index + 1; 0 is empty */
	size_t nslot;		/* a power of two, more than twice n */
};

static size_t
oid_hash(const git_oid *id)
{
	size_t h;

	memcpy(&h, id->id, sizeof h);
	return h;
}

static struct mobj *
mem_find(struct memstore *m, const git_oid *id)
{
	size_t mask, i;

	if (m->nslot == 0)
		return NULL;
	mask = m->nslot - 1;
	for (i = oid_hash(id) & mask; m->slot[i] != 0; i = (i + 1) & mask)
		if (git_oid_equal(&m->v[m->slot[i] - 1].id, id))
			return &m->v[m->slot[i] - 1];
	return NULL;
}

static void
mem_rehash(struct memstore *m)
{
	size_t ns = 64, mask, i;

	while (ns <= 2 * m->n + 2)
		ns <<= 1;
	free(m->slot);
	m->slot = sv_xmalloc(ns * sizeof *m->slot);
	memset(m->slot, 0, ns * sizeof *m->slot);
	m->nslot = ns;
	mask = ns - 1;
	for (size_t k = 0; k < m->n; k++) {
		for (i = oid_hash(&m->v[k].id) & mask; m->slot[i] != 0;
		    i = (i + 1) & mask)
			;
		m->slot[i] = k + 1;
	}
}

/* Keep the objects for which keep() says so, in order. */
static void
mem_filter(struct memstore *m, int (*keep)(const struct mobj *))
{
	size_t j = 0;

	for (size_t k = 0; k < m->n; k++) {
		if (keep(&m->v[k]))
			m->v[j++] = m->v[k];
		else
			free(m->v[k].data);
	}
	m->n = j;
	mem_rehash(m);
}

static int
is_flushed(const struct mobj *o)
{
	return o->flushed;
}

static int
is_pending(const struct mobj *o)
{
	return !o->flushed;
}

static int
mem_write(git_odb_backend *b, const git_oid *id, const void *data,
    size_t len, git_object_t type)
{
	struct memstore *m = (struct memstore *)b;
	struct mobj *o;

	if (mem_find(m, id) != NULL)
		return 0;
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->v = sv_xrealloc(m->v, m->cap * sizeof *m->v);
	}
	o = &m->v[m->n++];
	git_oid_cpy(&o->id, id);
	o->type = type;
	o->len = len;
	o->data = sv_xmalloc(len ? len : 1);
	memcpy(o->data, data, len);
	o->flushed = 0;
	if (2 * m->n + 2 >= m->nslot)
		mem_rehash(m);
	else {
		size_t mask = m->nslot - 1, i;

		for (i = oid_hash(id) & mask; m->slot[i] != 0; i = (i + 1) & mask)
			;
		m->slot[i] = m->n;
	}
	return 0;
}

static int
mem_read(void **out, size_t *len, git_object_t *type, git_odb_backend *b,
    const git_oid *id)
{
	struct mobj *o = mem_find((struct memstore *)b, id);

	if (o == NULL)
		return GIT_ENOTFOUND;
	if ((*out = git_odb_backend_data_alloc(b, o->len ? o->len : 1)) == NULL)
		return -1;
	memcpy(*out, o->data, o->len);
	*len = o->len;
	*type = o->type;
	return 0;
}

static int
mem_read_header(size_t *len, git_object_t *type, git_odb_backend *b,
    const git_oid *id)
{
	struct mobj *o = mem_find((struct memstore *)b, id);

	if (o == NULL)
		return GIT_ENOTFOUND;
	*len = o->len;
	*type = o->type;
	return 0;
}

static int
mem_exists(git_odb_backend *b, const git_oid *id)
{
	return mem_find((struct memstore *)b, id) != NULL;
}

static int
mem_freshen(git_odb_backend *b, const git_oid *id)
{
	return mem_find((struct memstore *)b, id) != NULL ? 0 : GIT_ENOTFOUND;
}

static int
mem_foreach(git_odb_backend *b, git_odb_foreach_cb cb, void *arg)
{
	struct memstore *m = (struct memstore *)b;
	int rc;

	for (size_t k = 0; k < m->n; k++)
		if ((rc = cb(&m->v[k].id, arg)) != 0)
			return rc;
	return 0;
}

/* --- libgit2's backends, wrapped ------------------------------------------ */

struct wrap {
	git_odb_backend parent;
	git_odb_backend *inner;
	char *objdir, *packdir;	/* packs only: rebuilt when packdir changes */
	struct timespec mtime;	/* packdir's when inner was built */
	int racy;		/* ... and it was too close to the scan to trust */
};

static git_odb_backend *
inner(git_odb_backend *b)
{
	struct wrap *w = (struct wrap *)b;

	w->inner->odb = w->parent.odb;
	return w->inner;
}

/* Build a new pack backend: it scans objects/pack/ and drops packs gone. */
static int
rescan(struct wrap *w, const struct timespec *mtime)
{
	git_odb_backend *n;
	struct timespec now;
	int rc;

	if ((rc = git_odb_backend_pack(&n, w->objdir)) < 0)
		return rc;
	n->odb = w->parent.odb;
	w->inner->free(w->inner);
	w->inner = n;
	w->mtime = *mtime;
	clock_gettime(CLOCK_REALTIME, &now);
	w->racy = now.tv_sec - mtime->tv_sec < 1 &&
	    (now.tv_sec - mtime->tv_sec) * 1000000000L +
	    (now.tv_nsec - mtime->tv_nsec) < RACY_NS;
	return 0;
}

static int
packdir_time(struct wrap *w, struct timespec *t)
{
	struct stat st;

	if (stat(w->packdir, &st) == -1) {
		t->tv_sec = t->tv_nsec = 0;
		return 0;
	}
	*t = st.st_mtim;
	return 0;
}

static int
same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/*
 * A read that misses: a pack another process added in the same clock
 * tick as our last scan does not change the directory's time, so look
 * again if that scan was that close.
 */
static int
missed(struct wrap *w)
{
	struct timespec t;

	if (w->packdir == NULL)
		return 0;
	packdir_time(w, &t);
	if (same_time(&t, &w->mtime) && !w->racy)
		return 0;
	return rescan(w, &t) == 0;
}

static int
wrap_read(void **out, size_t *len, git_object_t *type, git_odb_backend *b,
    const git_oid *id)
{
	int rc = inner(b)->read(out, len, type, inner(b), id);

	if (rc == GIT_ENOTFOUND && missed((struct wrap *)b))
		rc = inner(b)->read(out, len, type, inner(b), id);
	return rc;
}

static int
wrap_read_prefix(git_oid *full, void **out, size_t *len, git_object_t *type,
    git_odb_backend *b, const git_oid *id, size_t n)
{
	int rc = inner(b)->read_prefix(full, out, len, type, inner(b), id, n);

	if (rc == GIT_ENOTFOUND && missed((struct wrap *)b))
		rc = inner(b)->read_prefix(full, out, len, type, inner(b), id, n);
	return rc;
}

static int
wrap_read_header(size_t *len, git_object_t *type, git_odb_backend *b,
    const git_oid *id)
{
	int rc = inner(b)->read_header(len, type, inner(b), id);

	if (rc == GIT_ENOTFOUND && missed((struct wrap *)b))
		rc = inner(b)->read_header(len, type, inner(b), id);
	return rc;
}

static int
wrap_exists(git_odb_backend *b, const git_oid *id)
{
	int rc = inner(b)->exists(inner(b), id);

	if (rc == 0 && missed((struct wrap *)b))
		rc = inner(b)->exists(inner(b), id);
	return rc;
}

static int
wrap_exists_prefix(git_oid *full, git_odb_backend *b, const git_oid *id,
    size_t n)
{
	int rc = inner(b)->exists_prefix(full, inner(b), id, n);

	if (rc == GIT_ENOTFOUND && missed((struct wrap *)b))
		rc = inner(b)->exists_prefix(full, inner(b), id, n);
	return rc;
}

static int
wrap_foreach(git_odb_backend *b, git_odb_foreach_cb cb, void *arg)
{
	return inner(b)->foreach(inner(b), cb, arg);
}

/* Never "already there": see the top of the file. */
static int
wrap_freshen(git_odb_backend *b, const git_oid *id)
{
	(void)b;
	(void)id;
	return GIT_ENOTFOUND;
}

static void
wrap_free(git_odb_backend *b)
{
	struct wrap *w = (struct wrap *)b;

	w->inner->free(w->inner);
	free(w->objdir);
	free(w->packdir);
	free(w);
}

static struct wrap *
wrap_new(git_odb_backend *in)
{
	struct wrap *w = sv_xmalloc(sizeof *w);

	memset(w, 0, sizeof *w);
	git_odb_init_backend(&w->parent, GIT_ODB_BACKEND_VERSION);
	w->inner = in;
	if (in->read)
		w->parent.read = wrap_read;
	if (in->read_prefix)
		w->parent.read_prefix = wrap_read_prefix;
	if (in->read_header)
		w->parent.read_header = wrap_read_header;
	if (in->exists)
		w->parent.exists = wrap_exists;
	if (in->exists_prefix)
		w->parent.exists_prefix = wrap_exists_prefix;
	if (in->foreach)
		w->parent.foreach = wrap_foreach;
	w->parent.freshen = wrap_freshen;
	w->parent.free = wrap_free;
	return w;
}

/* --- the store ------------------------------------------------------------ */

struct sv_odb {
	struct memstore *mem;
	struct wrap *packs;	/* libgit2's pack backend, wrapped */
	char *objdir, *packdir;
	unsigned flushes;	/* packs written since the last merge check */
	/*
	 * The compressor and its output buffer live as long as the store:
	 * set up afresh for every flush, zlib allocated and freed a quarter
	 * of a megabyte of tables for a handful of small objects.
	 */
	z_stream z;
	int z_ready;
	unsigned char *zbuf;
	size_t zcap;
	char *sparedir;		/* see "spare files" */
	char *spare[SV_PACK_SPARES];
	int nspare;
};

/* The store hangs off the memory backend, which the odb frees. */
static struct sv_odb *the_store_of(struct memstore *m);

struct memstore_with_store {
	struct memstore m;
	struct sv_odb store;
};

static struct sv_odb *
the_store_of(struct memstore *m)
{
	return &((struct memstore_with_store *)m)->store;
}

static void
store_free(git_odb_backend *b)
{
	struct memstore *m = (struct memstore *)b;
	struct sv_odb *o = the_store_of(m);

	for (int i = 0; i < o->nspare; i++) {
		unlink(o->spare[i]);
		free(o->spare[i]);
	}
	free(o->sparedir);
	free(o->objdir);
	free(o->packdir);
	if (o->z_ready)
		deflateEnd(&o->z);
	free(o->zbuf);
	for (size_t k = 0; k < m->n; k++)
		free(m->v[k].data);
	free(m->v);
	free(m->slot);
	free(m);
}

static int
add_alternates(git_odb *odb, const char *objdir)
{
	char *path = sv_xasprintf("%s/info/alternates", objdir), *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f = fopen(path, "re");
	int rc = 0;

	free(path);
	if (f == NULL)
		return 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (line[0] == '/') {
			rc = git_odb_add_disk_alternate(odb, line);
		} else {
			char *p = sv_xasprintf("%s/%s", objdir, line);

			rc = git_odb_add_disk_alternate(odb, p);
			free(p);
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static int
fail_git(struct sv_err *e, int rc, const char *what, const char *path)
{
	const git_error *ge = git_error_last();

	if (ge != NULL && ge->message != NULL)
		return sv_errf(e, 0, "can't %s '%s': %s", what, path, ge->message);
	return sv_errf(e, 0, "can't %s '%s': libgit2 error %d", what, path, rc);
}

/* --- spare files ------------------------------------------------------------ */

/*
 * Files made ahead of time, while the daemon is idle (sv_odb_prepare),
 * for the next packs and indexes to be written into.  Creating a file
 * allocates an inode, and on ext4 without a journal the allocation walks
 * past every inode of its group freed in the last minute or so: after
 * a large removal anywhere near, 300 us and more per file, twice per
 * commit, on the way from a decision to its answer.  A spare is renamed
 * into objects/pack/ under a tmp_ name and written like a new file.
 * Spares live in SPARE_DIR beside objects/, named spare-PID-XXXXXX: a
 * process takes only those it made, removes them when done, and removes
 * those of processes that no longer run when it opens the repository.
 * Every failure here falls back to creating the file when it is needed.
 */
#define SPARE_DIR	"supervise-spare"

static void
drop_dead_spares(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	long pid;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (sscanf(de->d_name, "spare-%ld-", &pid) != 1 || pid <= 0 ||
		    (kill((pid_t)pid, 0) == -1 && errno == ESRCH))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

void
sv_odb_prepare(struct sv_odb *o)
{
	while (o->nspare < SV_PACK_SPARES) {
		char *p = sv_xasprintf("%s/spare-%ld-XXXXXX", o->sparedir,
		    (long)getpid());
		int fd = mkostemp(p, O_CLOEXEC);

		if (fd == -1 && errno == ENOENT && mkdir(o->sparedir, 0700) == 0) {
			free(p);
			continue;
		}
		if (fd == -1) {
			free(p);
			return;
		}
		close(fd);
		o->spare[o->nspare++] = p;
	}
}

char *
sv_odb_take_spare(struct sv_odb *o)
{
	return o->nspare > 0 ? o->spare[--o->nspare] : NULL;
}

void
sv_odb_return_spare(struct sv_odb *o, char *path)
{
	if (o->nspare < SV_PACK_SPARES)
		o->spare[o->nspare++] = path;
	else {
		unlink(path);
		free(path);
	}
}

/*
 * A spare renamed to DIR/tmp_KIND_PID-XXXXXX and opened to be written;
 * -1 when there is none.  It is empty: only we made it, only we write it.
 */
static int
spare_take(struct sv_odb *o, const char *dir, const char *kind, char **tmp)
{
	char *from;

	while (o != NULL && (from = sv_odb_take_spare(o)) != NULL) {
		char *to = sv_xasprintf("%s/tmp_%s_%s", dir, kind,
		    strrchr(from, '/') + sizeof "/spare-" - 1);
		int fd = -1;

		if (sv_rename_noreplace(AT_FDCWD, from, AT_FDCWD, to) == 0 &&
		    (fd = open(to, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
			unlink(to);
		free(from);
		if (fd != -1) {
			*tmp = to;
			return fd;
		}
		free(to);
	}
	return -1;
}

int
sv_odb_attach(git_repository *repo, struct sv_odb **out, struct sv_err *e)
{
	struct memstore_with_store *ms;
	git_odb_backend *loose = NULL, *pack = NULL;
	struct wrap *wl, *wp;
	git_odb *odb = NULL;
	const char *gitdir = git_repository_path(repo);
	char *objdir;
	int rc;

	*out = NULL;
	objdir = sv_xasprintf("%sobjects", gitdir);	/* path ends in '/' */
	if ((rc = git_odb_new(&odb)) < 0 ||
	    (rc = git_odb_backend_loose(&loose, objdir, -1, 0, 0, 0)) < 0 ||
	    (rc = git_odb_backend_pack(&pack, objdir)) < 0) {
		fail_git(e, rc, "open the objects of", gitdir);
		if (loose != NULL)
			loose->free(loose);
		git_odb_free(odb);
		free(objdir);
		return -1;
	}
	wl = wrap_new(loose);
	wp = wrap_new(pack);
	wp->objdir = sv_xstrdup(objdir);
	wp->packdir = sv_xasprintf("%s/pack", objdir);
	packdir_time(wp, &wp->mtime);
	wp->racy = 1;

	ms = sv_xmalloc(sizeof *ms);
	memset(ms, 0, sizeof *ms);
	git_odb_init_backend(&ms->m.parent, GIT_ODB_BACKEND_VERSION);
	ms->m.parent.read = mem_read;
	ms->m.parent.read_header = mem_read_header;
	ms->m.parent.write = mem_write;
	ms->m.parent.exists = mem_exists;
	ms->m.parent.freshen = mem_freshen;
	ms->m.parent.foreach = mem_foreach;
	ms->m.parent.free = store_free;
	ms->store.mem = &ms->m;
	ms->store.packs = wp;
	ms->store.sparedir = sv_xasprintf("%s%s", gitdir, SPARE_DIR);
	drop_dead_spares(ms->store.sparedir);
	ms->store.objdir = objdir;
	ms->store.packdir = sv_xstrdup(wp->packdir);

	/* The odb owns each backend once added, even if a later step fails. */
	if ((rc = git_odb_add_backend(odb, &wl->parent, 1)) < 0) {
		wl->parent.free(&wl->parent);
		wp->parent.free(&wp->parent);
		store_free(&ms->m.parent);
		goto fail;
	}
	if ((rc = git_odb_add_backend(odb, &wp->parent, 2)) < 0) {
		wp->parent.free(&wp->parent);
		store_free(&ms->m.parent);
		goto fail;
	}
	if ((rc = git_odb_add_backend(odb, &ms->m.parent, 3)) < 0) {
		store_free(&ms->m.parent);
		goto fail;
	}
	*out = &ms->store;
	if ((rc = add_alternates(odb, (*out)->objdir)) < 0 ||
	    (rc = git_repository_set_odb(repo, odb)) < 0) {
		*out = NULL;
		goto fail;
	}
	git_odb_free(odb);	/* the repository holds it now */
	return 0;
fail:
	fail_git(e, rc, "open the objects of", gitdir);
	git_odb_free(odb);
	return -1;
}

/* --- writing packs ---------------------------------------------------------- */

struct entry {
	git_oid id;
	uint32_t crc;
	uint64_t off;
};

struct out {
	int fd;
	char *tmp;		/* its name until renamed */
	EVP_MD_CTX *sha;
	uint64_t off;		/* bytes written so far */
	size_t n;
	unsigned char buf[1 << 16];
};

static int
out_open(struct out *w, struct sv_odb *o, const char *dir, const char *kind,
    struct sv_err *e)
{
	w->off = 0;
	w->n = 0;
	w->sha = EVP_MD_CTX_new();
	if (w->sha == NULL || EVP_DigestInit_ex(w->sha, EVP_sha1(), NULL) != 1)
		sv_die(111, "out of memory");
	if ((w->fd = spare_take(o, dir, kind, &w->tmp)) != -1)
		return 0;
	w->tmp = sv_xasprintf("%s/tmp_%s_XXXXXX", dir, kind);
	if ((w->fd = mkostemp(w->tmp, O_CLOEXEC)) == -1) {
		sv_errf(e, errno, "can't create '%s'", w->tmp);
		EVP_MD_CTX_free(w->sha);
		free(w->tmp);
		w->tmp = NULL;
		return -1;
	}
	return 0;
}

static int
out_drain(struct out *w, struct sv_err *e)
{
	if (w->n > 0 && sv_write_all(w->fd, (char *)w->buf, w->n) == -1)
		return sv_errf(e, errno, "can't write '%s'", w->tmp);
	w->n = 0;
	return 0;
}

/* Append to the file and to its checksum. */
static int
out_put(struct out *w, const void *p, size_t len, struct sv_err *e)
{
	const unsigned char *s = p;

	EVP_DigestUpdate(w->sha, p, len);
	w->off += len;
	while (len > 0) {
		size_t k = sizeof w->buf - w->n;

		if (k > len)
			k = len;
		memcpy(w->buf + w->n, s, k);
		w->n += k;
		s += k;
		len -= k;
		if (w->n == sizeof w->buf && out_drain(w, e) == -1)
			return -1;
	}
	return 0;
}

/* Write the checksum, make the file read-only and close it. */
static int
out_finish(struct out *w, unsigned char sum[OID_RAW], struct sv_err *e)
{
	unsigned int len = 0;
	int rc = 0;

	EVP_DigestFinal_ex(w->sha, sum, &len);
	if (w->n + OID_RAW > sizeof w->buf)
		rc = out_drain(w, e);
	if (rc == 0) {
		memcpy(w->buf + w->n, sum, OID_RAW);
		w->n += OID_RAW;
		rc = out_drain(w, e);
	}
	if (rc == 0 && fchmod(w->fd, 0444) == -1)
		rc = sv_errf(e, errno, "can't make '%s' read-only", w->tmp);
	if (close(w->fd) == -1 && rc == 0)
		rc = sv_errf(e, errno, "can't write '%s'", w->tmp);
	w->fd = -1;
	return rc;
}

/* Rename the finished file into place (or remove it: the caller failed). */
static int
out_place(struct out *w, const char *final, struct sv_err *e)
{
	int rc = 0;

	if (rename(w->tmp, final) == -1) {
		rc = sv_errf(e, errno, "can't rename '%s' to '%s'", w->tmp, final);
		unlink(w->tmp);
	}
	EVP_MD_CTX_free(w->sha);
	free(w->tmp);
	w->tmp = NULL;
	return rc;
}

static void
out_abort(struct out *w)
{
	if (w->tmp == NULL)
		return;
	if (w->fd != -1)
		close(w->fd);
	unlink(w->tmp);
	EVP_MD_CTX_free(w->sha);
	free(w->tmp);
	w->tmp = NULL;
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int
entry_cmp(const void *a, const void *b)
{
	return git_oid_cmp(&((const struct entry *)a)->id,
	    &((const struct entry *)b)->id);
}

static void
hex(char out[2 * OID_RAW + 1], const unsigned char sum[OID_RAW])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < OID_RAW; i++) {
		out[2 * i] = digits[sum[i] >> 4];
		out[2 * i + 1] = digits[sum[i] & 15];
	}
	out[2 * OID_RAW] = '\0';
}

/*
 * The index of a pack whose entries are v[0..n) (sorted here by id) and
 * whose checksum is sum, as packdir/pack-NAME.idx.
 */
static int
write_index(struct sv_odb *o, const char *packdir, const char *name,
    struct entry *v, size_t n, const unsigned char sum[OID_RAW],
    struct sv_err *e)
{
	struct out w;
	unsigned char b[8], idxsum[OID_RAW];
	uint32_t fan[256], nlarge = 0;
	char *final;
	size_t i;
	int rc = -1;

	qsort(v, n, sizeof *v, entry_cmp);
	memset(fan, 0, sizeof fan);
	for (i = 0; i < n; i++)
		fan[v[i].id.id[0]]++;
	for (i = 1; i < 256; i++)
		fan[i] += fan[i - 1];
	if (out_open(&w, o, packdir, "idx", e) == -1)
		return -1;
	memcpy(b, "\377tOc", 4);
	put_be32(b + 4, 2);
	if (out_put(&w, b, 8, e) == -1)
		goto out;
	for (i = 0; i < 256; i++) {
		put_be32(b, fan[i]);
		if (out_put(&w, b, 4, e) == -1)
			goto out;
	}
	for (i = 0; i < n; i++)
		if (out_put(&w, v[i].id.id, OID_RAW, e) == -1)
			goto out;
	for (i = 0; i < n; i++) {
		put_be32(b, v[i].crc);
		if (out_put(&w, b, 4, e) == -1)
			goto out;
	}
	for (i = 0; i < n; i++) {
		if (v[i].off < 0x80000000u)
			put_be32(b, (uint32_t)v[i].off);
		else
			put_be32(b, 0x80000000u | nlarge++);
		if (out_put(&w, b, 4, e) == -1)
			goto out;
	}
	for (i = 0; i < n; i++) {
		if (v[i].off < 0x80000000u)
			continue;
		put_be32(b, (uint32_t)(v[i].off >> 32));
		put_be32(b + 4, (uint32_t)v[i].off);
		if (out_put(&w, b, 8, e) == -1)
			goto out;
	}
	if (out_put(&w, sum, OID_RAW, e) == -1)
		goto out;
	if (out_finish(&w, idxsum, e) == -1)
		goto out;
	final = sv_xasprintf("%s/pack-%s.idx", packdir, name);
	rc = out_place(&w, final, e);
	free(final);
	return rc;
out:
	out_abort(&w);
	return rc;
}

/* A pack entry's header: type and inflated size, 4 then 7 bits a byte. */
static size_t
entry_header(unsigned char *h, git_object_t type, size_t len)
{
	size_t n = 0;
	unsigned c = (unsigned)type << 4 | (len & 15);

	for (len >>= 4; len != 0; len >>= 7) {
		h[n++] = (unsigned char)(c | 0x80);
		c = len & 0x7f;
	}
	h[n++] = (unsigned char)c;
	return n;
}

/* The source of a pack's entries: objects to deflate, or packed bytes. */
struct source {
	size_t n;
	/* fill *hdr..: entry i's bytes (header and zlib data) */
	int (*get)(struct source *s, size_t i, git_oid *id,
	    const unsigned char **bytes, size_t *len, struct sv_err *e);
};

static int
write_pack(struct sv_odb *o, const char *packdir, struct source *src,
    char name[2 * OID_RAW + 1], struct sv_err *e)
{
	struct entry *v = sv_xmalloc((src->n ? src->n : 1) * sizeof *v);
	unsigned char hdr[12], sum[OID_RAW];
	struct out w;
	char *final;
	int rc = -1;

	if (out_open(&w, o, packdir, "pack", e) == -1) {
		free(v);
		return -1;
	}
	memcpy(hdr, "PACK", 4);
	put_be32(hdr + 4, 2);
	put_be32(hdr + 8, (uint32_t)src->n);
	if (out_put(&w, hdr, sizeof hdr, e) == -1)
		goto fail;
	for (size_t i = 0; i < src->n; i++) {
		const unsigned char *bytes;
		size_t len;

		if (src->get(src, i, &v[i].id, &bytes, &len, e) == -1)
			goto fail;
		v[i].off = w.off;
		v[i].crc = (uint32_t)crc32(crc32(0, Z_NULL, 0), bytes, len);
		if (out_put(&w, bytes, len, e) == -1)
			goto fail;
	}
	/* Named by its checksum, like every git pack. */
	if (out_finish(&w, sum, e) == -1)
		goto fail;
	hex(name, sum);
	final = sv_xasprintf("%s/pack-%s.pack", packdir, name);
	rc = out_place(&w, final, e);
	free(final);
	if (rc == 0)
		rc = write_index(o, packdir, name, v, src->n, sum, e);
	free(v);
	return rc;
fail:
	out_abort(&w);
	free(v);
	return -1;
}

/* --- flushing memory ------------------------------------------------------ */

struct fresh {
	struct source s;
	struct mobj **objs;
	struct sv_odb *o;	/* its compressor and buffer */
};

static int
fresh_get(struct source *s, size_t i, git_oid *id, const unsigned char **bytes,
    size_t *len, struct sv_err *e)
{
	struct fresh *f = (struct fresh *)s;
	struct sv_odb *st = f->o;
	struct mobj *o = f->objs[i];
	size_t need = 16 + deflateBound(&st->z, o->len), h;

	if (need > st->zcap) {
		st->zcap = need;
		free(st->zbuf);
		st->zbuf = sv_xmalloc(st->zcap);
	}
	h = entry_header(st->zbuf, o->type, o->len);
	/*
	 * Trees are stored, not compressed: a tree is mostly object ids,
	 * which do not compress, and deflating the few trees of a commit
	 * took most of the time of writing its objects (a 256-entry tree:
	 * 54 us at level 1, 3 us stored, 18% smaller).  git gc compresses
	 * and deltifies them later anyway.
	 */
	if (deflateReset(&st->z) != Z_OK ||
	    deflateParams(&st->z, o->type == GIT_OBJECT_TREE ?
	    Z_NO_COMPRESSION : Z_BEST_SPEED, Z_DEFAULT_STRATEGY) != Z_OK)
		return sv_errf(e, 0, "can't compress an object: %s",
		    st->z.msg ? st->z.msg : "zlib error");
	st->z.next_in = o->data;
	st->z.avail_in = (uInt)o->len;
	st->z.next_out = st->zbuf + h;
	st->z.avail_out = (uInt)(st->zcap - h);
	if (deflate(&st->z, Z_FINISH) != Z_STREAM_END)
		return sv_errf(e, 0, "can't compress an object: %s",
		    st->z.msg ? st->z.msg : "zlib error");
	git_oid_cpy(id, &o->id);
	*bytes = st->zbuf;
	*len = h + st->z.total_out;
	return 0;
}

int
sv_odb_flush(struct sv_odb *o, size_t *wrote, struct sv_err *e)
{
	struct memstore *m = o->mem;
	struct fresh f;
	char name[2 * OID_RAW + 1];
	size_t n = 0, kept = 0;
	int rc;

	*wrote = 0;
	memset(&f, 0, sizeof f);
	f.objs = sv_xmalloc((m->n ? m->n : 1) * sizeof *f.objs);
	for (size_t k = 0; k < m->n; k++)
		if (!m->v[k].flushed)
			f.objs[n++] = &m->v[k];
	if (n == 0) {
		free(f.objs);
		return 0;
	}
	if (!o->z_ready) {
		if (deflateInit(&o->z, Z_BEST_SPEED) != Z_OK)
			sv_die(111, "out of memory");
		o->z_ready = 1;
	}
	f.o = o;
	f.s.n = n;
	f.s.get = fresh_get;
	if (mkdir(o->packdir, 0755) == -1 && errno != EEXIST)
		rc = sv_errf(e, errno, "can't create '%s'", o->packdir);
	else
		rc = write_pack(o, o->packdir, &f.s, name, e);
	free(f.objs);
	if (rc == -1)
		return -1;
	*wrote = n;
	o->flushes++;
	/* Keep this batch to be read back by the next, if it is small. */
	mem_filter(m, is_pending);
	for (size_t k = 0; k < m->n; k++)
		kept += m->v[k].len;
	if (kept > KEEP_MAX)
		mem_filter(m, is_flushed);	/* none are flushed: all go */
	for (size_t k = 0; k < m->n; k++)
		m->v[k].flushed = 1;
	return 0;
}

void
sv_odb_discard(struct sv_odb *o)
{
	mem_filter(o->mem, is_flushed);
}

/* --- merging packs ---------------------------------------------------------- */

struct packfile {
	char *name;		/* "pack-HEX", without the extension */
	off_t size;		/* of the .pack */
	int tier;
};

/* A pack opened to be merged: its index and data mapped. */
struct mapped {
	const unsigned char *idx, *pack;
	size_t idxlen, packlen;
	uint32_t n;
};

struct piece {
	git_oid id;
	uint32_t crc;
	uint32_t pack;		/* index into the inputs */
	uint64_t off, len;
};

struct merge {
	struct source s;
	struct mapped *in;
	struct piece *v;
	const char *dir;
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
		if (st.st_size >= SV_PACK_MERGE_MAX / SV_PACK_TIER ||
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

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
unmap(struct mapped *m)
{
	if (m->idx != NULL)
		munmap((void *)m->idx, m->idxlen);
	if (m->pack != NULL)
		munmap((void *)m->pack, m->packlen);
	memset(m, 0, sizeof *m);
}

static const void *
map_file(const char *path, size_t *len, struct sv_err *e)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd == -1) {
		sv_errf(e, errno, "can't open '%s'", path);
		return NULL;
	}
	if (fstat(fd, &st) == -1 || st.st_size < 32) {
		sv_errf(e, errno, "can't read '%s'%s", path,
		    errno ? "" : ": too short");
		close(fd);
		return NULL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		sv_errf(e, errno, "can't map '%s'", path);
		return NULL;
	}
	*len = (size_t)st.st_size;
	return p;
}

static int
damaged(struct sv_err *e, const char *dir, const char *name, const char *why)
{
	return sv_errf(e, 0, "can't merge '%s/%s.pack': %s", dir, name, why);
}

/*
 * Map pack `name` and add its entries to *v.  A pack with deltas (git's
 * own) is not ours to merge: *skip is set and nothing is added.
 */
static int
load_pack(const char *dir, const char *name, uint32_t which, struct mapped *m,
    struct piece **v, size_t *n, size_t *cap, int *skip, struct sv_err *e)
{
	char *path;
	const unsigned char *ids, *crcs, *offs, *large;
	uint64_t *sorted;
	uint32_t nlarge = 0;
	size_t first = *n, want;

	*skip = 0;
	memset(m, 0, sizeof *m);
	path = sv_xasprintf("%s/%s.idx", dir, name);
	m->idx = map_file(path, &m->idxlen, e);
	free(path);
	if (m->idx == NULL)
		return -1;
	path = sv_xasprintf("%s/%s.pack", dir, name);
	m->pack = map_file(path, &m->packlen, e);
	free(path);
	if (m->pack == NULL)
		goto fail;
	if (m->idxlen < 8 + 1024 + 40 || memcmp(m->idx, "\377tOc", 4) != 0 ||
	    get_be32(m->idx + 4) != 2) {
		damaged(e, dir, name, "its index is not version 2");
		goto fail;
	}
	m->n = get_be32(m->idx + 8 + 255 * 4);
	want = 8 + 1024 + (size_t)m->n * 28 + 40;
	if (m->idxlen < want || memcmp(m->pack, "PACK", 4) != 0 ||
	    get_be32(m->pack + 8) != m->n) {
		damaged(e, dir, name, "its index and pack disagree");
		goto fail;
	}
	ids = m->idx + 8 + 1024;
	crcs = ids + (size_t)m->n * OID_RAW;
	offs = crcs + (size_t)m->n * 4;
	large = offs + (size_t)m->n * 4;
	for (uint32_t i = 0; i < m->n; i++)
		if (get_be32(offs + 4 * i) & 0x80000000u)
			nlarge++;
	if (m->idxlen != want + (size_t)nlarge * 8) {
		damaged(e, dir, name, "its index has the wrong size");
		goto fail;
	}
	if (*n + m->n > *cap) {
		while (*n + m->n > *cap)
			*cap = *cap ? 2 * *cap : 1024;
		*v = sv_xrealloc(*v, *cap * sizeof **v);
	}
	sorted = sv_xmalloc(((size_t)m->n + 1) * sizeof *sorted);
	for (uint32_t i = 0; i < m->n; i++) {
		struct piece *p = &(*v)[*n + i];
		uint32_t o = get_be32(offs + 4 * i);

		memcpy(p->id.id, ids + (size_t)i * OID_RAW, OID_RAW);
		p->crc = get_be32(crcs + 4 * i);
		p->pack = which;
		if (o & 0x80000000u) {
			const unsigned char *q = large + 8 * (size_t)(o & 0x7fffffffu);

			if ((o & 0x7fffffffu) >= nlarge) {
				free(sorted);
				damaged(e, dir, name, "a large offset is out of range");
				goto fail;
			}
			p->off = (uint64_t)get_be32(q) << 32 | get_be32(q + 4);
		} else {
			p->off = o;
		}
		if (p->off < 12 || p->off >= m->packlen - OID_RAW) {
			free(sorted);
			damaged(e, dir, name, "an offset is out of range");
			goto fail;
		}
		sorted[i] = p->off;
	}
	/* An entry ends where the next begins, the last at the checksum. */
	qsort(sorted, m->n, sizeof *sorted, u64_cmp);
	sorted[m->n] = m->packlen - OID_RAW;
	for (uint32_t i = 0; i < m->n; i++) {
		struct piece *p = &(*v)[*n + i];
		size_t lo = 0, hi = m->n;
		unsigned type;

		while (lo < hi) {	/* the entry's place among the offsets */
			size_t mid = (lo + hi) / 2;

			if (sorted[mid] < p->off)
				lo = mid + 1;
			else
				hi = mid;
		}
		p->len = sorted[lo + 1] - p->off;
		type = (m->pack[p->off] >> 4) & 7;
		if (type < 1 || type > 4) {
			*skip = type == 6 || type == 7;
			free(sorted);
			if (*skip) {
				unmap(m);
				*n = first;
				return 0;
			}
			damaged(e, dir, name, "an entry has an unknown type");
			goto fail;
		}
	}
	free(sorted);
	*n += m->n;
	return 0;
fail:
	unmap(m);
	*n = first;
	return -1;
}

static int
piece_cmp(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;
	int c = git_oid_cmp(&x->id, &y->id);

	return c != 0 ? c : (x->pack > y->pack) - (x->pack < y->pack);
}

static int
merge_get(struct source *s, size_t i, git_oid *id, const unsigned char **bytes,
    size_t *len, struct sv_err *e)
{
	struct merge *m = (struct merge *)s;
	const struct piece *p = &m->v[i];
	const unsigned char *b = m->in[p->pack].pack + p->off;

	if ((uint32_t)crc32(crc32(0, Z_NULL, 0), b, (uInt)p->len) != p->crc)
		return sv_errf(e, 0, "can't merge packs in '%s': the entry of "
		    "object %s fails its CRC", m->dir, git_oid_tostr_s(&p->id));
	git_oid_cpy(id, &p->id);
	*bytes = b;
	*len = p->len;
	return 0;
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

int
sv_odb_merge(struct sv_odb *o, int force, char ***old, struct sv_err *e)
{
	struct packfile *packs;
	struct mapped *in = NULL;
	struct piece *v = NULL;
	struct merge m;
	char name[2 * OID_RAW + 1], **gone = NULL;
	size_t n, all, k, np = 0, cap = 0, used = 0, j;
	int rc = -1, skip;

	*old = NULL;
	if (!force && !sv_odb_merge_due(o))
		return 0;
	o->flushes = 0;
	if (list_packs(o->packdir, &packs, &n, &all, e) == -1)
		return -1;
	if ((k = choose(packs, n)) < 2) {
		packs_free(packs, n);
		return 0;
	}
	in = sv_xmalloc(k * sizeof *in);
	gone = sv_xmalloc((k + 1) * sizeof *gone);
	for (size_t i = 0; i < k; i++) {
		if (load_pack(o->packdir, packs[i].name, (uint32_t)used, &in[used],
		    &v, &np, &cap, &skip, e) == -1)
			goto out;
		if (!skip)
			gone[used++] = packs[i].name;
	}
	gone[used] = NULL;
	if (used < 2) {
		rc = 0;
		goto out;
	}
	qsort(v, np, sizeof *v, piece_cmp);
	for (size_t i = j = 0; i < np; i++)	/* one copy of each object */
		if (j == 0 || !git_oid_equal(&v[j - 1].id, &v[i].id))
			v[j++] = v[i];
	memset(&m, 0, sizeof m);
	m.s.n = j;
	m.s.get = merge_get;
	m.in = in;
	m.v = v;
	m.dir = o->packdir;
	if (write_pack(o, o->packdir, &m.s, name, e) == -1)
		goto out;
	/* The merged pack may be one of its inputs, by content: keep it. */
	for (size_t i = j = 0; gone[i] != NULL; i++) {
		if (strcmp(gone[i] + 5, name) == 0)
			continue;
		gone[j++] = gone[i];
	}
	gone[j] = NULL;
	*old = sv_xmalloc((j + 1) * sizeof **old);
	for (size_t i = 0; i <= j; i++)
		(*old)[i] = gone[i] ? sv_xasprintf("%s/%s", o->packdir,
		    gone[i]) : NULL;
	rc = 0;
out:
	for (size_t i = 0; i < used; i++)
		unmap(&in[i]);
	free(in);
	free(gone);
	free(v);
	packs_free(packs, n);
	return rc;
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
	struct timespec t;
	int rc = 0, grc;

	for (size_t i = 0; old != NULL && old[i] != NULL; i++)
		for (size_t x = 0; x < sizeof ext / sizeof ext[0]; x++) {
			char *p = sv_xasprintf("%s%s", old[i], ext[x]);

			if (unlink(p) == -1 && errno != ENOENT && rc == 0)
				rc = sv_errf(e, errno, "can't remove '%s'", p);
			free(p);
		}
	if (old == NULL || old[0] == NULL)
		return rc;
	packdir_time(o->packs, &t);
	if ((grc = rescan(o->packs, &t)) < 0 && rc == 0)
		rc = fail_git(e, grc, "list the packs of", o->objdir);
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
