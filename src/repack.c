/*
 * repack.c: merging the audit repository's small packs.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "odbimpl.h"

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
	struct sv_durable d;
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
	sv_durable_init(&d);
	rc = write_pack(o->packdir, &m.s, &d, name, e);
	sv_durable_free(&d);
	if (rc == -1)
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
