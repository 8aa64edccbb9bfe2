/*
 * ref.c: moving the audit repository's branch to a new commit, as a
 * compare-and-swap (libgit2's), and making the move durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"

#define OLDREF_NAME	"supervise.oldref"	/* the ref file the branch left */

/*
 * Moving the branch renames a new ref file over the old one, and the old
 * one's inode and block are freed there and then, in the middle of the
 * commit: on a file system mounted with `discard` and no journal, freeing
 * a block is a discard request the rename waits for.  So the daemon
 * links the old file under OLDREF_NAME first, and the rename only drops
 * a link; sv_audit_sync removes the name after the agents are answered.
 * The name keeps nothing but an old inode alive: removing it at any time
 * is harmless, which is why a name left by a killed process is simply
 * removed at the next open.
 */
static void
keep_old_ref(struct sv_audit *a, const char *branch)
{
	char *from = sv_xasprintf("%s/%s", a->path, branch);
	char *to = sv_xasprintf("%s/%s", a->path, OLDREF_NAME);

	a->oldref = link(from, to) == 0;
	free(from);
	free(to);
}

void
drop_old_ref(struct sv_audit *a)
{
	char *path;

	if (!a->oldref)
		return;
	path = sv_xasprintf("%s/%s", a->path, OLDREF_NAME);
	unlink(path);
	free(path);
	a->oldref = 0;
}

/*
 * Move the branch HEAD names from `old` (NULL: the branch is unborn) to
 * `id`, as a compare-and-swap: GIT_EMODIFIED when it no longer points at
 * `old`, GIT_EEXISTS when an unborn branch was born meanwhile.
 */
int
move_branch(struct sv_audit *a, const git_oid *old, const git_oid *id)
{
	git_reference *head = NULL, *ref = NULL;
	const char *branch;
	int rc;

	if ((rc = git_reference_lookup(&head, a->repo, "HEAD")) < 0)
		return rc;
	if (git_reference_type(head) != GIT_REFERENCE_SYMBOLIC) {
		git_reference_free(head);
		git_error_set_str(GIT_ERROR_REFERENCE, "HEAD is detached");
		return -1;
	}
	branch = git_reference_symbolic_target(head);
	free(a->branch);
	a->branch = sv_xstrdup(branch);
	if (old != NULL && a->defer_sync && !a->oldref)
		keep_old_ref(a, branch);
	/* libgit2 locks BRANCH.lock, checks the branch still names `old`,
	 * renames the lock over it, and writes the reflog when
	 * core.logAllRefUpdates asks for one. */
	if (old != NULL)
		rc = git_reference_create_matching(&ref, a->repo, branch, id, 1,
		    old, "supervised: commit");
	else
		rc = git_reference_create(&ref, a->repo, branch, id, 0,
		    "supervised: commit (initial)");
	git_reference_free(ref);
	git_reference_free(head);
	return rc;
}

/*
 * Make the last move of the branch durable: its ref file, the reflog
 * when there is one, and their directories.  libgit2's own fsync is off
 * (git.c): the objects the ref names were made durable before the move.
 *
 * The daemon flushes after the committers' lock is released, so a git
 * gc (git pack-refs) may pack the branch meanwhile, before our fsync
 * opens the ref file or after.  pack-refs renames packed-refs into
 * place before it removes the loose file, so a ref file gone means
 * packed-refs names the branch (at our commit or a later one): that
 * file, its directory and the branch's directory (the removal, so no
 * unsynced loose file comes back after a power cut) are what to flush.
 */
int
ref_sync(struct sv_audit *a, struct sv_err *e)
{
	struct sv_durable d;
	const char *branch = a->branch ? a->branch : "refs/heads/main";
	char *ref, *log, *p;
	int rc = -1;

	sv_durable_init(&d);
	ref = sv_xasprintf("%s/%s", a->path, branch);
	log = sv_xasprintf("%s/logs/%s", a->path, branch);
	/* Bounded: a file gone and back means another committer moved the
	 * branch on, and flushes its own move. */
	for (int tries = 0; tries < 3; tries++) {
		sv_durable_file(&d, ref);
		if (access(log, F_OK) == 0)
			sv_durable_file(&d, log);
		rc = sv_durable_sync(&d, e);
		if (rc == -1 && e->errnum != ENOENT)
			break;
		if (access(ref, F_OK) == -1 && errno == ENOENT) {
			p = sv_xasprintf("%s/packed-refs", a->path);
			sv_durable_file(&d, p);
			free(p);
			p = sv_xasprintf("%.*s", (int)(strrchr(ref, '/') - ref),
			    ref);
			sv_durable_path(&d, p);
			free(p);
			rc = sv_durable_sync(&d, e);
			break;
		}
		if (rc == 0)
			break;
	}
	free(log);
	free(ref);
	sv_durable_free(&d);
	return rc;
}
