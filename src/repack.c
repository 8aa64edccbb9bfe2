/*
 * repack.c: merging the audit repository's small packs.
 *
 * Packs accumulate, one a batch, so sv_odb_merge() merges them by size
 * class: when SV_PACK_TIER packs share a class, they and every smaller
 * pack become one.  An object is so rewritten once a class (a handful of
 * times however long the history), and the directory holds tens of
 * packs.
 *
 * A merge copies the entries of the packs it replaces as they are, one
 * copy of each object, into one stream that libgit2's indexer parses:
 * it inflates and hashes every object (so each is what its id says,
 * whatever this file handed it), checks the stream's checksum, and
 * writes the pack and its index.  Then libgit2's reader of that pack
 * must find every object that libgit2's reader of each replaced pack
 * lists, and both files must be on disk, before anything is removed.
 * What comes from here, where each entry starts (from the replaced
 * packs' indexes), can so fail a merge, never lose or change an object.
 * libgit2's packbuilder did the same job and was correct by itself too,
 * but it looks up, inflates and deflates each object again: 42-53 us an
 * object here against 5-10 for the copy, whose merges keep up with a
 * stream of decisions at full speed (BENCHMARKS.md, 4.).
 *
 * Packs with a .keep or .promisor, and full packs (SV_PACK_BIG), are
 * left alone: that is `git gc`'s job.  The daemon builds a merge on a
 * thread of its own, off the answer path and the committers' lock, and
 * puts it in place under the lock (sv_audit_maintain); a command merges
 * packs under SV_PACK_MERGE_MAX at once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2/sys/odb_backend.h>
#include <openssl/evp.h>

#include "odbimpl.h"

#define REPACK_DIR	"supervise-repack"	/* beside objects/: git ignores it */

/* Object ids, in the order found. */
struct ids {
	git_oid *v;
	size_t n, cap;
};

/* A pack to merge, mapped: where each of its entries starts. */
struct input {
	const unsigned char *idx, *pack;
	size_t idxlen, packlen;
	uint32_t n;
	struct at {
		uint64_t off;	/* in the pack */
		uint32_t i;	/* in the index: its id */
	} *at;			/* by offset */
	unsigned char *keep;	/* by offset: entry copied into the merge */
	int out;		/* left out of this merge */
};

/* A merge: the packs it replaces, and the pack built for them. */
struct merge {
	char *gitdir, *packdir, *work;
	char **names;		/* "pack-HEX" of the packs it replaces */
	size_t k;
	int workfd;		/* work, locked while the merge lives */
	pthread_t thread;
	atomic_int stop, done;
	int rc;			/* of the build */
	struct sv_err err;
	char name[GIT_OID_HEXSZ + 1];	/* the built pack's; "" for none */
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

/*
 * Packs in dir to merge, smaller than max: named, sized, sorted by size.
 * *all counts every pack.
 */
static int
list_packs(const char *dir, off_t max, struct packfile **out, size_t *n,
    size_t *all, struct sv_err *e)
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
		if (st.st_size >= max ||
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
 * Is AUDIT/supervise-repack/NAME what a merge of ours that no longer runs
 * left?  Its process is gone (or is this one, which merges one at a
 * time), and nobody holds the directory's lock, which a merge takes
 * as it starts and the kernel lets go of when its process dies, however
 * it dies: a directory of another live process (in another pid
 * namespace, or a pid used again) is never taken.
 */
static int
dead_merge(int topfd, const char *name)
{
	long pid;
	int fd, dead;

	if (sscanf(name, "%ld", &pid) != 1 || pid <= 0 ||
	    (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 ||
	    errno != ESRCH)))
		return 0;
	fd = openat(topfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW);
	if (fd == -1)
		return 0;
	dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);		/* and its lock */
	return dead;
}

/*
 * Remove what merges of ours that were killed left in top (a pack and
 * index half written, libgit2's lock on the index, ...).  Returns how
 * many directories went.
 */
static size_t
clear_dead(const char *top)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(top);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char *dir;

		if (de->d_name[0] == '.' || !dead_merge(dirfd(d), de->d_name))
			continue;
		dir = sv_xasprintf("%s/%s", top, de->d_name);
		empty_dir(dir);
		if (rmdir(dir) == 0)
			n++;
		free(dir);
	}
	closedir(d);
	return n;
}

size_t
repack_clear_dead(struct sv_odb *o)
{
	char *top = sv_xasprintf("%s" REPACK_DIR, git_repository_path(o->repo));
	size_t n = clear_dead(top);

	free(top);
	return n;
}

/*
 * The merge's work directory, one a process: AUDIT/supervise-repack/PID,
 * made and locked (*fd) for as long as the merge lives; what dead merges
 * left is removed first.
 */
static int
work_dir(const char *top, char **out, int *fd, struct sv_err *e)
{
	char *dir;

	*out = NULL;
	*fd = -1;
	if (mkdir(top, 0755) == -1 && errno != EEXIST)
		return sv_errf(e, errno, "can't create '%s'", top);
	clear_dead(top);
	dir = sv_xasprintf("%s/%ld", top, (long)getpid());
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		sv_errf(e, errno, "can't create '%s'", dir);
		free(dir);
		return -1;
	}
	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd == -1 || flock(*fd, LOCK_EX | LOCK_NB) == -1) {
		sv_errf(e, errno, "can't lock '%s'", dir);
		if (*fd != -1)
			close(*fd);
		*fd = -1;
		free(dir);
		return -1;
	}
	*out = dir;
	return 0;
}

/* --- the bytes to copy ----------------------------------------------------- */

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

static void
input_free(struct input *in)
{
	if (in->idx != NULL)
		munmap((void *)in->idx, in->idxlen);
	if (in->pack != NULL)
		munmap((void *)in->pack, in->packlen);
	free(in->at);
	free(in->keep);
	memset(in, 0, sizeof *in);
}

static int
at_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct at *)a)->off, y = ((const struct at *)b)->off;

	return x < y ? -1 : x > y;
}

static const unsigned char *
id_of(const struct input *in, uint32_t i)
{
	return in->idx + 8 + 1024 + (size_t)i * OID_RAW;
}

/*
 * Map pack NAME and learn where each entry starts, from its index
 * (version 2).  Only the layout of the stream handed to libgit2's
 * indexer comes from here: it parses and hashes every object itself, so
 * a wrong offset fails the merge, it cannot change an object.
 */
static int
input_open(struct input *in, const char *dir, const char *name,
    struct sv_err *e)
{
	const unsigned char *offs, *large;
	char *path;
	uint32_t nlarge = 0;
	size_t want;

	memset(in, 0, sizeof *in);
	path = sv_xasprintf("%s/%s.idx", dir, name);
	in->idx = map_file(path, &in->idxlen, e);
	free(path);
	if (in->idx == NULL)
		return -1;
	path = sv_xasprintf("%s/%s.pack", dir, name);
	in->pack = map_file(path, &in->packlen, e);
	free(path);
	if (in->pack == NULL)
		return -1;
	if (in->idxlen < 8 + 1024 + 40 || memcmp(in->idx, "\377tOc", 4) != 0 ||
	    get_be32(in->idx + 4) != 2)
		return sv_errf(e, 0, "can't merge '%s/%s': its index is not "
		    "version 2", dir, name);
	in->n = get_be32(in->idx + 8 + 255 * 4);
	want = 8 + 1024 + (size_t)in->n * 28 + 40;
	if (in->idxlen < want || memcmp(in->pack, "PACK", 4) != 0 ||
	    get_be32(in->pack + 8) != in->n)
		return sv_errf(e, 0, "can't merge '%s/%s': its index and pack "
		    "disagree", dir, name);
	offs = in->idx + 8 + 1024 + (size_t)in->n * 24;
	large = offs + (size_t)in->n * 4;
	for (uint32_t i = 0; i < in->n; i++)
		if (get_be32(offs + 4 * (size_t)i) & 0x80000000u)
			nlarge++;
	if (in->idxlen != want + (size_t)nlarge * 8)
		return sv_errf(e, 0, "can't merge '%s/%s': its index has the "
		    "wrong size", dir, name);
	in->at = sv_xmalloc((in->n ? in->n : 1) * sizeof *in->at);
	in->keep = sv_xmalloc(in->n ? in->n : 1);
	for (uint32_t i = 0; i < in->n; i++) {
		uint32_t o = get_be32(offs + 4 * (size_t)i);
		uint64_t off = o;

		if (o & 0x80000000u) {
			const unsigned char *l = large + 8 * (size_t)(o &
			    0x7fffffffu);

			if ((o & 0x7fffffffu) >= nlarge)
				return sv_errf(e, 0, "can't merge '%s/%s': its "
				    "index is damaged", dir, name);
			off = (uint64_t)get_be32(l) << 32 | get_be32(l + 4);
		}
		in->at[i].off = off;
		in->at[i].i = i;
	}
	qsort(in->at, in->n, sizeof *in->at, at_cmp);
	for (uint32_t k = 0; k < in->n; k++) {
		uint64_t off = in->at[k].off;
		uint64_t end = k + 1 < in->n ? in->at[k + 1].off :
		    in->packlen - OID_RAW;

		if (off < 12 || off >= end || end > in->packlen - OID_RAW)
			return sv_errf(e, 0, "can't merge '%s/%s': its index "
			    "is damaged", dir, name);
	}
	return 0;
}

/*
 * The pages of a pack read through, let go: they are in the page cache
 * for whoever reads them next, not in this process's memory (a merge
 * reads tens of megabytes of packs).
 */
static void
let_go(const unsigned char *p, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = (uintptr_t)p / page * page;
	uintptr_t to = ((uintptr_t)p + len + page - 1) / page * page;

	madvise((void *)from, to - from, MADV_DONTNEED);
}

/* Does the pack hold a delta (git's own may)?  Read only when needed. */
static int
has_deltas(const struct input *in)
{
	int deltas = 0;

	for (uint32_t k = 0; k < in->n && !deltas; k++) {
		unsigned type = in->pack[in->at[k].off] >> 4 & 7;

		deltas = type == GIT_OBJECT_OFS_DELTA ||
		    type == GIT_OBJECT_REF_DELTA;
	}
	let_go(in->pack, in->packlen);
	return deltas;
}

/* The ids already in the merge: a set of pointers into mapped indexes. */
struct seen {
	const unsigned char **slot;
	size_t mask;
};

static size_t
seen_at(const struct seen *s, const unsigned char *id)
{
	size_t h;

	memcpy(&h, id, sizeof h);
	for (h &= s->mask; s->slot[h] != NULL; h = (h + 1) & s->mask)
		if (memcmp(s->slot[h], id, OID_RAW) == 0)
			break;
	return h;
}

/*
 * Which entries to copy, each object once, the packs in the order given
 * (smallest first).  A pack that holds deltas (git's own may) keeps its
 * entries' distances only if copied whole: one that shares an object
 * with a pack before it is left out.  Returns how many entries are
 * copied.
 */
static size_t
select_entries(struct input *in, size_t k)
{
	struct seen s;
	size_t total = 0, ns = 64, n = 0;

	for (size_t j = 0; j < k; j++)
		total += in[j].n;
	while (ns <= 2 * total)
		ns <<= 1;
	s.slot = sv_xmalloc(ns * sizeof *s.slot);
	memset(s.slot, 0, ns * sizeof *s.slot);
	s.mask = ns - 1;
	for (size_t j = 0; j < k; j++) {
		struct input *p = &in[j];
		int shared = 0;

		for (uint32_t x = 0; x < p->n && !shared; x++)
			shared = s.slot[seen_at(&s, id_of(p, x))] != NULL;
		if (shared && has_deltas(p)) {
			p->out = 1;
			continue;
		}
		for (uint32_t x = 0; x < p->n; x++) {
			const unsigned char *id = id_of(p, p->at[x].i);
			size_t h = seen_at(&s, id);

			p->keep[x] = s.slot[h] == NULL;
			if (p->keep[x])
				s.slot[h] = id;
			n += p->keep[x];
		}
	}
	free(s.slot);
	return n;
}

/* --- building the merged pack ---------------------------------------------- */

/* Stop a merge under way: libgit2 checks between objects. */
static int
stopping(const git_indexer_progress *stats, void *arg)
{
	(void)stats;
	return atomic_load(&((struct merge *)arg)->stop) ? -1 : 0;
}

#define CHUNK	((size_t)1 << 20)	/* handed to the indexer at a time */

/* The indexer, the pack's checksum, and the indexer's count so far. */
struct feeder {
	git_indexer *ix;
	EVP_MD_CTX *sha;
	git_indexer_progress st;	/* the indexer's own, kept between calls */
};

/* Hand bytes to the indexer, and to the pack's checksum. */
static int
feed(struct feeder *f, const unsigned char *p, size_t len, struct merge *m)
{
	int rc;

	while (len > 0) {
		size_t n = len < CHUNK ? len : CHUNK;

		if (atomic_load(&m->stop))
			return sv_errf(&m->err, 0, "the merge of the packs of "
			    "'%s' was stopped", m->gitdir);
		EVP_DigestUpdate(f->sha, p, n);
		if ((rc = git_indexer_append(f->ix, p, n, &f->st)) < 0)
			return sv_git_fail(&m->err, rc, "can't merge the packs of "
			    "'%s'", m->gitdir);
		p += n;
		len -= n;
	}
	return 0;
}

/* Every entry kept, runs of neighbours at once. */
static int
feed_entries(struct feeder *f, const struct input *in, struct merge *m)
{
	uint32_t x = 0;

	while (x < in->n) {
		uint32_t y;
		uint64_t from, to;

		if (!in->keep[x]) {
			x++;
			continue;
		}
		for (y = x + 1; y < in->n && in->keep[y]; y++)
			;
		from = in->at[x].off;
		to = y < in->n ? in->at[y].off : in->packlen - OID_RAW;
		while (from < to) {
			size_t len = to - from < CHUNK ? (size_t)(to - from) : CHUNK;

			if (feed(f, in->pack + from, len, m) == -1)
				return -1;
			let_go(in->pack + from, len);
			from += len;
		}
		x = y;
	}
	return 0;
}

/*
 * One pack of the chosen packs' entries, copied as they are, one copy of
 * each object, into libgit2's indexer, which parses, inflates and hashes
 * every object (so the new pack holds what its id says, whatever we
 * handed it), checks the pack's checksum and writes the pack and its
 * index in the work directory.  libgit2's reader of that pack alone must
 * then find every object libgit2's reader of each replaced pack lists;
 * then both files are made durable.  No lock: packs are never rewritten
 * in place, and nothing is installed here.
 */
static void
build(struct merge *m)
{
	struct feeder f;
	git_indexer_options opts;
	struct input *in = sv_xmalloc(m->k * sizeof *in);
	struct sv_durable d;
	struct ids ids = { NULL, 0, 0 };
	struct sv_err *e = &m->err;
	unsigned char hdr[12], sum[OID_RAW];
	unsigned int sumlen = 0;
	char *idx = NULL;
	size_t n, j;
	int grc;

	m->rc = -1;
	m->name[0] = '\0';
	memset(&f, 0, sizeof f);
	sv_durable_init(&d);
	memset(in, 0, m->k * sizeof *in);
	for (size_t i = 0; i < m->k; i++)
		if (input_open(&in[i], m->packdir, m->names[i], e) == -1)
			goto out;
	n = select_entries(in, m->k);
	/* The packs left out stay as they are. */
	for (size_t i = j = 0; i < m->k; i++) {
		if (in[i].out) {
			free(m->names[i]);
			input_free(&in[i]);
			continue;
		}
		m->names[j] = m->names[i];
		in[j++] = in[i];
	}
	m->k = j;
	if (m->k < 2) {
		m->rc = 0;	/* nothing to merge */
		goto out;
	}
	for (size_t i = 0; i < m->k; i++)
		if (pack_ids(m->packdir, m->names[i], &ids, e) == -1)
			goto out;
	git_indexer_options_init(&opts, GIT_INDEXER_OPTIONS_VERSION);
	opts.progress_cb = stopping;
	opts.progress_cb_payload = m;
	if ((grc = git_indexer_new(&f.ix, m->work, 0, NULL, &opts)) < 0) {
		sv_git_fail(e, grc, "can't merge the packs of '%s'", m->gitdir);
		goto out;
	}
	if ((f.sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(f.sha, EVP_sha1(), NULL) != 1)
		sv_die(111, "out of memory");
	memcpy(hdr, "PACK", 4);
	put_be32(hdr + 4, 2);
	put_be32(hdr + 8, (uint32_t)n);
	if (feed(&f, hdr, sizeof hdr, m) == -1)
		goto out;
	for (size_t i = 0; i < m->k; i++)
		if (feed_entries(&f, &in[i], m) == -1)
			goto out;
	EVP_DigestFinal_ex(f.sha, sum, &sumlen);
	if ((grc = git_indexer_append(f.ix, sum, OID_RAW, &f.st)) < 0 ||
	    (grc = git_indexer_commit(f.ix, &f.st)) < 0) {
		sv_git_fail(e, grc, "can't merge the packs of '%s'", m->gitdir);
		goto out;
	}
	snprintf(m->name, sizeof m->name, "%s", git_indexer_name(f.ix));
	idx = sv_xasprintf("%s/pack-%s.idx", m->work, m->name);
	if (holds_all(idx, &ids, e) == -1) {
		m->name[0] = '\0';
		goto out;
	}
	sv_durable_path(&d, idx);
	free(idx);
	idx = sv_xasprintf("%s/pack-%s.pack", m->work, m->name);
	sv_durable_path(&d, idx);
	if (sv_durable_sync(&d, e) == -1) {
		m->name[0] = '\0';
		goto out;
	}
	m->rc = 0;
out:
	free(idx);
	EVP_MD_CTX_free(f.sha);
	git_indexer_free(f.ix);
	for (size_t i = 0; i < m->k; i++)
		input_free(&in[i]);
	free(in);
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
	if (m->workfd != -1)
		close(m->workfd);	/* the lock goes last */
	for (size_t i = 0; i < m->k; i++)
		free(m->names[i]);
	free(m->names);
	free(m->gitdir);
	free(m->packdir);
	free(m->work);
	free(m);
}

/* The packs under max to merge now, if any: NULL when none is due. */
static struct merge *
merge_plan(struct sv_odb *o, off_t max, struct sv_err *e, int *rc)
{
	struct packfile *packs;
	struct merge *m = NULL;
	size_t n, all, k;

	*rc = 0;
	o->flushes = 0;
	if (list_packs(o->packdir, max, &packs, &n, &all, e) == -1) {
		*rc = -1;
		return NULL;
	}
	if ((k = choose(packs, n)) >= 2) {
		m = sv_xmalloc(sizeof *m);
		memset(m, 0, sizeof *m);
		atomic_init(&m->stop, 0);
		atomic_init(&m->done, 0);
		m->workfd = -1;
		m->gitdir = sv_xstrdup(git_repository_path(o->repo));
		m->packdir = sv_xstrdup(o->packdir);
		m->names = sv_xmalloc(k * sizeof *m->names);
		for (size_t i = 0; i < k; i++)
			m->names[m->k++] = sv_xstrdup(packs[i].name);
		{
			char *top = sv_xasprintf("%s%s", m->gitdir, REPACK_DIR);

			*rc = work_dir(top, &m->work, &m->workfd, e);
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
	char *pack, *idx, *from;
	size_t j = 0;
	int rc = 0, was = 0;

	*old = NULL;
	if (m->name[0] == '\0')
		return 0;	/* nothing was worth merging */
	for (size_t i = 0; i < m->k; i++)
		was = was || strcmp(m->names[i] + 5, m->name) == 0;
	pack = sv_xasprintf("%s/pack-%s.pack", o->packdir, m->name);
	idx = sv_xasprintf("%s/pack-%s.idx", o->packdir, m->name);
	from = sv_xasprintf("%s/pack-%s.pack", m->work, m->name);
	if (rename(from, pack) == -1)
		rc = sv_errf(e, errno, "can't rename '%s' to '%s'", from, pack);
	free(from);
	from = sv_xasprintf("%s/pack-%s.idx", m->work, m->name);
	if (rc == 0 && rename(from, idx) == -1) {
		rc = sv_errf(e, errno, "can't rename '%s' to '%s'", from, idx);
		if (!was)
			unlink(pack);	/* no pack without its index */
	}
	free(from);
	free(pack);
	free(idx);
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
	/* On a command's way: small packs only, a merge stays short. */
	if ((m = merge_plan(o, SV_PACK_MERGE_MAX, e, &rc)) == NULL)
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
	if ((m = merge_plan(o, SV_PACK_BIG, e, &rc)) == NULL)
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
	int rc = list_packs(dir, SV_PACK_BIG, &v, &k, n, e);

	if (rc == 0)
		packs_free(v, k);
	free(dir);
	return rc;
}
