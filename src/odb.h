/*
 * odb.h: the audit repository's object store (odb.c, packwrite.c,
 * repack.c), for the audit code (audit.h) and its unit test only;
 * programs use supervise.h.
 */
#ifndef SUPERVISE_ODB_H
#define SUPERVISE_ODB_H

#include <git2.h>

#include "supervise.h"

/*
 * Packs of this size or more are merged only off the answer path, by the
 * daemon (sv_odb_merge_start), never by a command on its way
 * (sv_odb_merge), whose merge so stays short.
 */
#define SV_PACK_MERGE_MAX	((off_t)8 << 20)
/*
 * Packs of this size or more are full: never merged again, left to `git
 * gc`.  A merge's inputs are smaller, so it writes less than
 * SV_PACK_TIER times this (typically 45-55 MB, 16,000 decisions), and
 * libgit2's indexer holds an entry in memory for each object meanwhile.
 */
#define SV_PACK_BIG		((off_t)32 << 20)
/* A pack size class holds up to this many packs before they merge. */
#define SV_PACK_TIER		8
/* Look for packs to merge after this many packs written (or when forced). */
#define SV_PACK_CHECK		4

struct sv_odb;

/*
 * Give `repo` an object database whose writes are held in memory until
 * sv_odb_flush() writes them as one pack; reads go to memory, then packs,
 * then loose objects.  The store belongs to the repository: it is freed
 * with it.
 */
/*
 * Our temporary pack and index files are objects/pack/tmp_KIND_sv-...:
 * git's own are tmp_KIND_ and six letters or digits, never a '-'.
 */
#define SV_TMP_OURS	"sv-"
/*
 * Remove the temporary files a killed committer of ours left in
 * objects/pack/ (up to a pack's size each).  Only under the committers'
 * lock, which each holds while it writes them: then none is live.
 * Never git's, whoever holds what.  And what killed merges of ours left
 * in supervise-repack/ (a pack half written, libgit2's lock on its
 * index): never a live merge's, which holds its directory's lock.
 * Returns how many files and directories went.
 */
size_t sv_odb_drop_tmp(struct sv_odb *o);
int sv_odb_attach(git_repository *repo, struct sv_odb **out,
    struct sv_err *e);

/* Write the objects held since the last flush as one pack (and index);
 * *wrote is how many.  On disk for good on return, with what d holds,
 * which is synced (and emptied) even when there is nothing to write. */
int sv_odb_flush(struct sv_odb *o, size_t *wrote, struct sv_durable *d,
    struct sv_err *e);

/*
 * Make the next flush's pack and index files now, off the way of the
 * flush (packwrite.c says why); drop them.  Spares are temporary files
 * of ours: sv_odb_drop_tmp in another process removes them, and the
 * flush then makes new files.
 */
int sv_odb_spares(struct sv_odb *o, struct sv_err *e);
void sv_odb_spares_drop(struct sv_odb *o);

/* Forget the objects held since the last flush (a batch that failed). */
void sv_odb_discard(struct sv_odb *o);

/*
 * Merge small packs, by size class, so their number stays in the tens
 * however many batches were written.  Writes the merged pack, on disk for
 * good and checked to hold every object of the packs it replaces, and
 * returns those in *old (NULL-terminated; free with sv_odb_old_free) for
 * the caller to remove with sv_odb_remove().  *old is NULL when nothing
 * needs merging.
 */
int sv_odb_merge(struct sv_odb *o, int force, char ***old,
    struct sv_err *e);
/* Would sv_odb_merge (not forced) look at the packs now? */
int sv_odb_merge_due(const struct sv_odb *o);
/*
 * sv_odb_merge in two steps, for the daemon: start builds the merged
 * pack on a thread of its own, without the committers' lock, when a
 * merge is due and none is under way; once ready, finish (under the
 * lock) puts it in place and returns *old as sv_odb_merge does.  stop
 * abandons one under way (the store's end does too).
 */
int sv_odb_merge_start(struct sv_odb *o, struct sv_err *e);
int sv_odb_merge_ready(const struct sv_odb *o);
int sv_odb_merge_finish(struct sv_odb *o, char ***old, struct sv_err *e);
void sv_odb_merge_stop(struct sv_odb *o);
int sv_odb_remove(struct sv_odb *o, char **old, struct sv_err *e);
void sv_odb_old_free(char **old);

/* How many pack files the object store has now (for tests). */
int sv_odb_count_packs(git_repository *repo, size_t *n, struct sv_err *e);

#endif
