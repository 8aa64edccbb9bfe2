/*
 * odb.c: the audit repository's object store.
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
 * Writing packs is packwrite.c's, merging them repack.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2/sys/repository.h>

#include "odbimpl.h"

#define RACY_NS		50000000L	/* a directory time this close to a scan */

/* --- objects in memory -------------------------------------------------- */

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
void
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

int
is_flushed(const struct mobj *o)
{
	return o->flushed;
}

int
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

/* The store hangs off the memory backend, which the odb frees. */
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

	sv_odb_merge_stop(o);
	sv_odb_spares_drop(o);
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
		sv_git_fail(e, rc, "can't open the objects of '%s'", gitdir);
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
	ms->store.repo = repo;
	ms->store.mem = &ms->m;
	ms->store.packs = wp;
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
	sv_git_fail(e, rc, "can't open the objects of '%s'", gitdir);
	git_odb_free(odb);
	return -1;
}

void
sv_odb_discard(struct sv_odb *o)
{
	mem_filter(o->mem, is_flushed);
}

int
odb_rescan_packs(struct sv_odb *o, struct sv_err *e)
{
	struct timespec t;
	int rc;

	packdir_time(o->packs, &t);
	if ((rc = rescan(o->packs, &t)) < 0)
		return sv_git_fail(e, rc, "can't list the packs of '%s'", o->objdir);
	return 0;
}
