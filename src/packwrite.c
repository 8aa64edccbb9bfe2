/*
 * packwrite.c: writing packs.
 *
 * sv_odb_flush() writes what memory holds as one pack and its index, in
 * git's formats (pack version 2, index version 2), named by the pack's
 * checksum like every git pack: the pack is renamed into place before its
 * index, so a reader that sees the index finds the pack.  The caller then
 * flushes the disk before any ref names these objects (see commit.c).
 *
 * The daemon writes a batch's pack and index into files it made ahead,
 * after the last answer (sv_odb_spares): on ext4 without a journal,
 * after files were removed nearby, creating a file took 200-500 us, and
 * a decision made two on its way to the answer.  A spare is an empty
 * temporary file of ours, like the one mkostemp would make on the way;
 * one removed meanwhile (an opening of the repository drops our
 * temporary files under the committers' lock, git gc its old ones) is
 * seen by its link count and replaced by a new file then and there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "odbimpl.h"

#define KEEP_MAX	((size_t)4 << 20)	/* flushed bytes kept to be read */

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

static const char *const spare_kind[2] = { "pack", "idx" };

/* The spare made ahead for kind k (0: pack, 1: index) into w: 1; 0 none. */
static int
spare_take(struct sv_odb *o, int k, struct out *w)
{
	struct stat st;

	if (o == NULL || o->spare[k] == NULL)
		return 0;
	w->fd = o->spare_fd[k];
	w->tmp = o->spare[k];
	o->spare[k] = NULL;
	if (fstat(w->fd, &st) == 0 && st.st_nlink > 0 && st.st_size == 0)
		return 1;
	close(w->fd);
	free(w->tmp);
	w->tmp = NULL;
	return 0;
}

/* A new temporary file of ours in dir for kind k: its fd, *path set;
 * -1 (and *path NULL) when it can't be made. */
static int
tmp_create(const char *dir, int k, char **path, struct sv_err *e)
{
	int fd;

	*path = sv_xasprintf("%s/tmp_%s_" SV_TMP_OURS "XXXXXX", dir,
	    spare_kind[k]);
	if ((fd = mkostemp(*path, O_CLOEXEC)) == -1) {
		sv_errf(e, errno, "can't create '%s'", *path);
		free(*path);
		*path = NULL;
	}
	return fd;
}

int
sv_odb_spares(struct sv_odb *o, struct sv_err *e)
{
	for (int k = 0; k < 2; k++) {
		if (o->spare[k] != NULL)
			continue;
		o->spare_fd[k] = tmp_create(o->packdir, k, &o->spare[k], e);
		if (o->spare_fd[k] == -1)
			return -1;
	}
	return 0;
}

void
sv_odb_spares_drop(struct sv_odb *o)
{
	for (int k = 0; k < 2; k++) {
		if (o->spare[k] == NULL)
			continue;
		close(o->spare_fd[k]);
		unlink(o->spare[k]);
		free(o->spare[k]);
		o->spare[k] = NULL;
	}
}

/* A temporary file in dir for kind k: o's spare, or a new one. */
static int
out_open(struct out *w, const char *dir, struct sv_odb *o, int k,
    struct sv_err *e)
{
	w->off = 0;
	w->n = 0;
	w->sha = EVP_MD_CTX_new();
	if (w->sha == NULL || EVP_DigestInit_ex(w->sha, EVP_sha1(), NULL) != 1)
		sv_die(111, "out of memory");
	if (spare_take(o, k, w))
		return 0;
	if ((w->fd = tmp_create(dir, k, &w->tmp, e)) == -1) {
		EVP_MD_CTX_free(w->sha);
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
	return rc;
}

/* Rename the finished file into place (or remove it: the caller failed). */
static int
out_place(struct out *w, const char *final, struct sv_err *e)
{
	int rc = 0;

	if (close(w->fd) == -1)
		rc = sv_errf(e, errno, "can't write '%s'", w->tmp);
	w->fd = -1;
	if (rc == 0 && rename(w->tmp, final) == -1) {
		rc = sv_errf(e, errno, "can't rename '%s' to '%s'", w->tmp, final);
	}
	if (rc == -1)
		unlink(w->tmp);
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

void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

uint32_t
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
 * whose checksum is sum, into a temporary file in packdir (o's spare, or
 * a new one): *w, open, for write_pack to sync and name.
 */
static int
write_index(struct out *w, const char *packdir, struct sv_odb *o,
    struct entry *v, size_t n, const unsigned char sum[OID_RAW],
    struct sv_err *e)
{
	unsigned char b[8], idxsum[OID_RAW];
	uint32_t fan[256], nlarge = 0;
	size_t i;

	qsort(v, n, sizeof *v, entry_cmp);
	memset(fan, 0, sizeof fan);
	for (i = 0; i < n; i++)
		fan[v[i].id.id[0]]++;
	for (i = 1; i < 256; i++)
		fan[i] += fan[i - 1];
	if (out_open(w, packdir, o, 1, e) == -1)
		return -1;
	memcpy(b, "\377tOc", 4);
	put_be32(b + 4, 2);
	if (out_put(w, b, 8, e) == -1)
		goto out;
	for (i = 0; i < 256; i++) {
		put_be32(b, fan[i]);
		if (out_put(w, b, 4, e) == -1)
			goto out;
	}
	for (i = 0; i < n; i++)
		if (out_put(w, v[i].id.id, OID_RAW, e) == -1)
			goto out;
	for (i = 0; i < n; i++) {
		put_be32(b, v[i].crc);
		if (out_put(w, b, 4, e) == -1)
			goto out;
	}
	for (i = 0; i < n; i++) {
		if (v[i].off < 0x80000000u)
			put_be32(b, (uint32_t)v[i].off);
		else
			put_be32(b, 0x80000000u | nlarge++);
		if (out_put(w, b, 4, e) == -1)
			goto out;
	}
	for (i = 0; i < n; i++) {
		if (v[i].off < 0x80000000u)
			continue;
		put_be32(b, (uint32_t)(v[i].off >> 32));
		put_be32(b + 4, (uint32_t)v[i].off);
		if (out_put(w, b, 8, e) == -1)
			goto out;
	}
	if (out_put(w, sum, OID_RAW, e) == -1)
		goto out;
	if (out_finish(w, idxsum, e) == -1)
		goto out;
	return 0;
out:
	out_abort(w);
	return -1;
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

int
write_pack(const char *packdir, struct sv_odb *o, struct source *src,
    struct sv_durable *d, char name[2 * OID_RAW + 1], struct sv_err *e)
{
	struct entry *v = sv_xmalloc((src->n ? src->n : 1) * sizeof *v);
	unsigned char hdr[12], sum[OID_RAW];
	struct out w, wi;
	char *pack = NULL, *idx = NULL;

	wi.tmp = NULL;
	if (out_open(&w, packdir, o, 0, e) == -1) {
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
	if (out_finish(&w, sum, e) == -1 ||
	    write_index(&wi, packdir, o, v, src->n, sum, e) == -1)
		goto fail;
	/* Both on disk, with what the caller handed, before either has a
	 * name; then the names, the pack's first, so a reader that sees the
	 * index finds the pack; then the directory that holds them. */
	sv_durable_fd(d, w.fd, w.tmp);
	sv_durable_fd(d, wi.fd, wi.tmp);
	if (sv_durable_sync(d, e) == -1)
		goto fail;
	/* Named by its checksum, like every git pack. */
	hex(name, sum);
	pack = sv_xasprintf("%s/pack-%s.pack", packdir, name);
	idx = sv_xasprintf("%s/pack-%s.idx", packdir, name);
	if (out_place(&w, pack, e) == -1)
		goto fail;
	if (out_place(&wi, idx, e) == -1) {
		unlink(pack);	/* no pack without its index */
		goto fail;
	}
	free(pack);
	free(idx);
	free(v);
	sv_durable_path(d, packdir);
	return sv_durable_sync(d, e);
fail:
	out_abort(&w);
	out_abort(&wi);
	free(pack);
	free(idx);
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
sv_odb_flush(struct sv_odb *o, size_t *wrote, struct sv_durable *d,
    struct sv_err *e)
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
		return sv_durable_sync(d, e);
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
		rc = write_pack(o->packdir, o, &f.s, d, name, e);
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

size_t
sv_odb_drop_tmp(struct sv_odb *o)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(o->packdir);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if ((strncmp(de->d_name, "tmp_pack_" SV_TMP_OURS,
		    sizeof "tmp_pack_" SV_TMP_OURS - 1) == 0 ||
		    strncmp(de->d_name, "tmp_idx_" SV_TMP_OURS,
		    sizeof "tmp_idx_" SV_TMP_OURS - 1) == 0) &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n + repack_clear_dead(o);
}
