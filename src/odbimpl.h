/*
 * odbimpl.h: what the three parts of the object store share: odb.c (the
 * object database: memory, packs, loose), packwrite.c (writing packs
 * and their indexes) and repack.c (merging small packs).  Only they
 * include it; audit code uses odb.h.
 */
#ifndef SUPERVISE_ODBIMPL_H
#define SUPERVISE_ODBIMPL_H

#include <git2/sys/odb_backend.h>
#include <zlib.h>

#include "git.h"
#include "odb.h"

#define OID_RAW		20

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

struct sv_odb {
	git_repository *repo;	/* which owns the store: not a reference */
	struct memstore *mem;
	struct wrap *packs;	/* libgit2's pack backend, wrapped */
	char *objdir, *packdir;
	unsigned flushes;	/* packs written since the last merge check */
	struct merge *merge;	/* being built off the lock (repack.c) */
	/*
	 * The compressor and its output buffer live as long as the store:
	 * set up afresh for every flush, zlib allocated and freed a quarter
	 * of a megabyte of tables for a handful of small objects.
	 */
	z_stream z;
	int z_ready;
	unsigned char *zbuf;
	size_t zcap;
	/* The next flush's pack and index files, made ahead, or NULL. */
	char *spare[2];
	int spare_fd[2];
};

/* odb.c */
void mem_filter(struct memstore *m, int (*keep)(const struct mobj *));
int is_flushed(const struct mobj *o);
int is_pending(const struct mobj *o);
/* Read objects/pack/ again, dropping the packs that are gone. */
int odb_rescan_packs(struct sv_odb *o, struct sv_err *e);

/* packwrite.c */
/* The source of a pack's entries: objects to deflate, or packed bytes. */
struct source {
	size_t n;
	/* fill *hdr..: entry i's bytes (header and zlib data) */
	int (*get)(struct source *s, size_t i, git_oid *id,
	    const unsigned char **bytes, size_t *len, struct sv_err *e);
};

/*
 * A pack of src's entries in packdir, and its index, named by the pack's
 * checksum (*name), durable with what d holds, and their directory;
 * written into o's spares when it has them (o may be NULL).
 */
int write_pack(const char *packdir, struct sv_odb *o, struct source *src,
    struct sv_durable *d, char name[2 * OID_RAW + 1], struct sv_err *e);
uint32_t get_be32(const unsigned char *p);
void put_be32(unsigned char *p, uint32_t v);

/* repack.c */
/* Remove what merges of ours that were killed left; how many went. */
size_t repack_clear_dead(struct sv_odb *o);

#endif
