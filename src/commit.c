/*
 * commit.c: committing to the audit repository: a batch of changes as a
 * chain of commits on the tip of main, under our lock, with one
 * compare-and-swap of the branch.
 *
 * Committing, and why it never loses or doubles a commit:
 *  - Our own committers (every supervised, every CLI, any process) take
 *    an exclusive flock on AUDIT/supervise.lock for the whole
 *    read-tip/build/commit step.  The kernel drops it when a process dies.
 *  - Inside the lock we read the tip, check the decision is not recorded
 *    yet (idempotence), build blobs and trees on the tip's tree and commit
 *    with the tip as the only parent.  The branch then moves only if it
 *    still points at that parent (git_reference_create_matching, a
 *    compare-and-swap: ref.c); the first commit creates the branch with a
 *    no-force git_reference_create, the same thing for an unborn branch.
 *    So a writer that ignores our flock (git itself) costs us a retry,
 *    never a lost commit or a merge: history stays linear.
 *  - A ref's .lock file is git's own lock (libgit2 takes it too, for the
 *    instant of the ref update, so a killed supervised can leave one just
 *    as a killed git can).  One left by our own committer is known by the
 *    mark in supervise.lock (mark_moving) and removed; any other we retry
 *    a few seconds, then report with its path and age (past a minute:
 *    stale) and leave alone, because removing a live lock breaks the
 *    writer that holds it.
 *  - Durability: a decision counts once its commit landed, and it must
 *    still be there after a power cut.  A batch of decisions is written
 *    as a chain of commits, its objects as one pack (packwrite.c), which
 *    is flushed by name with what the caller handed (sv_audit_durable),
 *    then the branch moves once, then its ref file is flushed (ref_sync):
 *    each flush an fsync of exactly what was written (durable.c).  The
 *    daemon takes the second flush out of the commit
 *    (sv_audit_defer_sync) to answer the agents first: see consume.c for
 *    why that loses nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

#define CAS_TRIES	60	/* compare-and-swap attempts per commit */
#define WRITE_TRIES	3	/* attempts at writing a batch's objects */
#define STALE_LOCK_SECS	60	/* a git .lock older than this is stale */

void
plan_free(struct plan *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->paths[i]);
	memset(pl, 0, sizeof *pl);
}

/* Write `text` as a blob and plan it at `path` (NULL text: remove). */
int
plan_put(struct sv_audit *a, struct plan *pl, const char *path,
    const char *text, struct sv_err *e)
{
	git_tree_update *u = &pl->up[pl->n];
	int rc;

	if (pl->n == PLAN_MAX)
		return sv_errf(e, 0, "too many files in one commit");
	memset(u, 0, sizeof *u);
	if (text != NULL) {
		rc = git_blob_create_from_buffer(&u->id, a->repo, text,
		    strlen(text));
		if (rc < 0) {
			pl->store_failed = 1;
			return sv_git_fail(e, rc, "can't write '%s' into '%s'", path,
			    a->path);
		}
		u->action = GIT_TREE_UPDATE_UPSERT;
	} else {
		u->action = GIT_TREE_UPDATE_REMOVE;
	}
	u->filemode = GIT_FILEMODE_BLOB;
	pl->paths[pl->n] = sv_xstrdup(path);
	u->path = pl->paths[pl->n];
	pl->n++;
	return 0;
}

/*
 * Build items[0..n) as a chain of commits on the tip, one an item, and
 * put each in state NEW, DONE (its change is on the tip already) or
 * FAILED (its own build failed).  *head is the last commit made (NULL:
 * none).  -1 with e set when the repository itself failed.
 */
static int
build_chain(struct sv_audit *a, git_commit *tip, git_tree *tree,
    struct item *items, size_t n, const git_signature *committer,
    git_commit **head, struct sv_err *e)
{
	git_commit *parent = tip, *made = NULL;
	git_tree *cur = tree, *newtree = NULL;
	git_oid tree_id, commit_id;
	struct plan pl;
	int rc = 0, grc;

	memset(&pl, 0, sizeof pl);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct item *it = &items[i];

		plan_free(&pl);
		it->state = ITEM_TODO;
		if (it->build(a, cur, it->ctx, &pl, &it->err) == -1) {
			if (pl.store_failed) {
				*e = it->err;	/* the batch, not this item */
				rc = -1;
				break;
			}
			it->state = ITEM_FAILED;
			continue;
		}
		if (pl.nothing) {
			it->state = ITEM_DONE;
			continue;
		}
		grc = git_tree_create_updated(&tree_id, a->repo, cur, pl.n, pl.up);
		if (grc < 0) {
			rc = sv_git_fail(e, grc, "can't build the tree to commit in "
			    "'%s'", a->path);
			break;
		}
		if (cur != NULL && git_oid_equal(&tree_id, git_tree_id(cur))) {
			it->state = ITEM_DONE;	/* nothing would change */
			continue;
		}
		if ((grc = git_tree_lookup(&newtree, a->repo, &tree_id)) < 0) {
			rc = sv_git_fail(e, grc, "can't read back the new tree in "
			    "'%s'", a->path);
			break;
		}
		{
			const git_commit *parents[1] = { parent };

			grc = git_commit_create(&commit_id, a->repo, NULL,
			    it->author, committer, NULL, it->message, newtree,
			    parent != NULL, parents);
		}
		if (grc == 0)
			grc = git_commit_lookup(&made, a->repo, &commit_id);
		if (grc < 0) {
			git_tree_free(newtree);
			rc = sv_git_fail(e, grc, "can't commit to '%s'", a->path);
			break;
		}
		if (cur != tree)
			git_tree_free(cur);
		if (parent != tip)
			git_commit_free(parent);
		cur = newtree;
		parent = made;
		it->made = commit_id;
		it->state = ITEM_NEW;
	}
	plan_free(&pl);
	if (cur != tree)
		git_tree_free(cur);
	if (rc == 0 && parent != tip) {
		*head = parent;
		return 0;
	}
	if (parent != tip)
		git_commit_free(parent);
	*head = NULL;
	return rc;
}

/*
 * Commit items[0..n) on main, one commit each, in order: the whole batch
 * under our flock, with one compare-and-swap of the branch and two
 * flushes (the objects, then the ref).  Returns 0 when the repository took the batch:
 * each item then says NEW, DONE or FAILED (with its reason).  -1 with e
 * set when the repository failed: nothing of the batch counts.
 */
int
audit_commit(struct sv_audit *a, struct item *items, size_t n,
    struct sv_err *e)
{
	struct ident cid = { sv_xstrdup("supervised"), NULL };
	git_signature committer;
	git_commit *tip = NULL, *head = NULL;
	git_tree *tree = NULL;
	char *lock = NULL, prior[160];
	long age = 0;
	size_t wrote;
	int rc = -1, grc, branch_lock;

	cid.email = sv_xasprintf("supervised@%s", a->host);
	if (sv_audit_lock(a, e) == -1)
		goto out;
	read_mark(a, prior, sizeof prior);
	for (int attempt = 1;; attempt++) {
		git_commit_free(head);
		git_tree_free(tree);
		git_commit_free(tip);
		head = NULL;
		if (audit_tip(a, &tip, &tree, e) == -1)
			break;
		signature_at(&committer, &cid, time(NULL));
		if (build_chain(a, tip, tree, items, n, &committer, &head,
		    e) == -1) {
			sv_odb_discard(a->odb);
			/*
			 * Writing an object can fail for a moment: a git gc
			 * run without our lock removes an empty objects/XX
			 * between libgit2's mkdir and its rename.  Try again
			 * a few times before giving up on the batch.
			 */
			if (attempt >= WRITE_TRIES)
				break;
			sv_sleep_us(1000L << attempt);
			continue;
		}
		if (head == NULL) {
			/*
			 * Nothing to commit.  A decision found already on
			 * main may be there because a committer was killed
			 * between moving the branch and its last flush: flush
			 * before it counts, as if we had made it (also when
			 * the flush is deferred: no first flush wrote the
			 * response it came from).
			 */
			size_t i = 0;

			sv_odb_discard(a->odb);
			while (i < n && items[i].state != ITEM_DONE)
				i++;
			rc = sv_durable_sync(&a->durable, e);
			if (rc == 0 && i < n)
				rc = ref_sync(a, e);
			break;
		}
		/* The batch's objects as one pack, on disk for good with what
		 * the caller handed (sv_audit_durable). */
		if (sv_odb_flush(a->odb, &wrote, &a->durable, e) == -1) {
			sv_odb_discard(a->odb);
			break;
		}
		mark_moving(a, 1);
		grc = move_branch(a, tip ? git_commit_id(tip) : NULL,
		    git_commit_id(head));
		mark_moving(a, 0);
		if (grc == 0 && a->defer_sync) {
			a->unsynced = 1;	/* sv_audit_sync flushes */
			rc = 0;
			break;
		}
		if (grc == 0) {
			rc = ref_sync(a, e);
			break;
		}
		if (grc != GIT_EMODIFIED && grc != GIT_ELOCKED &&
		    grc != GIT_EEXISTS) {
			sv_git_fail(e, grc, "can't commit to '%s'", a->path);
			break;
		}
		if (grc == GIT_ELOCKED && oldest_lock(a, &lock, &age,
		    &branch_lock)) {
			/* A second old: a live git holds a ref lock for less. */
			if (age >= 1 && branch_lock &&
			    left_by_dead_committer(prior) && unlink(lock) == 0) {
				prior[0] = '\0';
				free(lock);
				lock = NULL;
				continue;	/* ours, from a killed committer */
			}
			if (age >= STALE_LOCK_SECS) {
				sv_errf(e, 0, "can't commit to '%s': '%s' is %ld s "
				    "old: a git process died holding it; remove "
				    "it once no git process uses the repository",
				    a->path, lock, age);
				break;
			}
			if (attempt >= CAS_TRIES) {
				sv_errf(e, 0, "can't commit to '%s': '%s' has been "
				    "locked for %ld s", a->path, lock, age);
				break;
			}
			free(lock);
			lock = NULL;
		}
		if (attempt >= CAS_TRIES) {
			sv_git_fail(e, grc, "can't commit to '%s' after %d attempts",
			    a->path, attempt);
			break;
		}
		/* Someone else moved or holds the branch: back off, rebuild. */
		sv_sleep_us(attempt < 7 ? 1000L << attempt : 100000L);
	}
	sv_audit_unlock(a);
out:
	sv_durable_free(&a->durable);	/* synced, or the batch failed */
	free(lock);
	git_commit_free(head);
	git_tree_free(tree);
	git_commit_free(tip);
	ident_free(&cid);
	return rc;
}

void
sv_audit_defer_merges(struct sv_audit *a)
{
	a->defer_merges = 1;
}

int
sv_audit_maintain(struct sv_audit *a, struct sv_err *e)
{
	struct sv_err why;
	char **old = NULL;
	int rc = 0;

	/* The daemon, answered and its notes written: the next commit's
	 * pack and index files, made now rather than on its way (without
	 * them it makes its own there). */
	if (a->defer_sync)
		sv_odb_spares(a->odb, &why);
	if (!a->defer_merges) {
		/* At once, under the lock: a merge if enough packs were
		 * written, then the removal of what it replaces. */
		if (!sv_odb_merge_due(a->odb))
			return 0;
		if (sv_audit_lock(a, e) == -1)
			return -1;
		if ((rc = sv_odb_merge(a->odb, 0, &old, e)) == 0 && old != NULL)
			rc = sv_odb_remove(a->odb, old, e);
		sv_audit_unlock(a);
		sv_odb_old_free(old);
		return rc;
	}
	/* A merged pack built meanwhile: in place, and the packs it
	 * replaces gone, under the lock (a moment: renames and unlinks). */
	if (sv_odb_merge_ready(a->odb)) {
		if (sv_audit_lock(a, e) == -1)
			return -1;
		if ((rc = sv_odb_merge_finish(a->odb, &old, e)) == 0 &&
		    old != NULL)
			rc = sv_odb_remove(a->odb, old, e);
		sv_audit_unlock(a);
		sv_odb_old_free(old);
	}
	/* Not even a look at the packs unless enough were written. */
	if (rc == 0)
		rc = sv_odb_merge_start(a->odb, e);
	return rc;
}

struct sv_durable *
sv_audit_durable(struct sv_audit *a)
{
	return &a->durable;
}

void
sv_audit_defer_sync(struct sv_audit *a)
{
	a->defer_sync = 1;
}

int
sv_audit_sync(struct sv_audit *a, struct sv_err *e)
{
	if (a->unsynced) {
		if (ref_sync(a, e) == -1)
			return -1;
		a->unsynced = 0;
	}
	drop_old_ref(a);
	return 0;
}
