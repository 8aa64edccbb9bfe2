/*
 * ref.c: moving the audit repository's branch to a new commit, as a
 * compare-and-swap.
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
 * What move_branch_spare must do as libgit2 would: whether a reflog is
 * wanted (a bare repository keeps none unless core.logAllRefUpdates says
 * so), and the mode of a ref file, 0666 less the umask, read from
 * /proc (umask(2) would change it for every thread while it looks).
 */
static void
ref_settings(struct sv_audit *a)
{
	git_config *cfg = NULL;
	const char *v;
	char line[128];
	unsigned mask = 022;
	int b;
	FILE *f;

	a->reflog = 0;
	if (git_repository_config_snapshot(&cfg, a->repo) == 0 &&
	    git_config_get_string(&v, cfg, "core.logallrefupdates") == 0)
		a->reflog = strcasecmp(v, "always") == 0 ||
		    (git_config_parse_bool(&b, v) == 0 && b);
	git_config_free(cfg);
	if ((f = fopen("/proc/self/status", "re")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL)
			if (sscanf(line, "Umask: %o", &mask) == 1)
				break;
		fclose(f);
	}
	a->refmode = 0666 & ~(mode_t)mask;
	a->ref_known = 1;
}

/*
 * The compare-and-swap of git_reference_create_matching, done the way
 * git and libgit2 do it (take BRANCH.lock, check the branch still names
 * `old`, write the new id into the lock, rename it over the branch), but
 * with a file made ahead of time (odb.c's spares) as the lock.  Taking
 * the lock is link(2) of that file to BRANCH.lock, which fails with
 * EEXIST when someone holds it, as the O_EXCL creation it stands for
 * does.  The difference is that no inode is allocated on the way to the
 * answer: on ext4 without a journal, after a large removal, creating the
 * lock took 400 us and more.  1 when it can't be done so (no spare, a
 * reflog to write): libgit2 then moves the branch.
 */
static int
move_branch_spare(struct sv_audit *a, const char *branch, const git_oid *old,
    const git_oid *id)
{
	char *spare, *lock, *ref, *logs, hex[GIT_OID_HEXSZ + 2];
	git_oid cur;
	int rc, fd, err;

	if ((spare = sv_odb_take_spare(a->odb)) == NULL)
		return 1;	/* not the daemon, or it has none ready */
	if (!a->ref_known)
		ref_settings(a);
	logs = sv_xasprintf("%s/logs/%s", a->path, branch);
	rc = a->reflog || access(logs, F_OK) == 0;
	free(logs);
	if (rc) {
		sv_odb_return_spare(a->odb, spare);
		return 1;
	}
	lock = sv_xasprintf("%s/%s.lock", a->path, branch);
	ref = sv_xasprintf("%s/%s", a->path, branch);
	if (link(spare, lock) == -1) {
		err = errno;
		sv_odb_return_spare(a->odb, spare);
		rc = 1;
		if (err == EEXIST) {
			git_error_set_str(GIT_ERROR_REFERENCE, "the branch is "
			    "locked");
			rc = GIT_ELOCKED;
		}
		goto out;
	}
	unlink(spare);
	free(spare);
	/* Under the lock: does the branch still name `old`? */
	if ((rc = git_reference_name_to_id(&cur, a->repo, branch)) < 0 ||
	    !git_oid_equal(&cur, old)) {
		unlink(lock);
		if (rc == 0) {
			git_error_set_str(GIT_ERROR_REFERENCE, "the branch "
			    "moved meanwhile");
			rc = GIT_EMODIFIED;
		}
		goto out;
	}
	git_oid_fmt(hex, id);
	hex[GIT_OID_HEXSZ] = '\n';
	hex[GIT_OID_HEXSZ + 1] = '\0';
	fd = open(lock, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1 || write(fd, hex, GIT_OID_HEXSZ + 1) != GIT_OID_HEXSZ + 1 ||
	    fchmod(fd, a->refmode) == -1 || close(fd) == -1) {
		err = errno;
		if (fd != -1)
			close(fd);
		unlink(lock);
		git_error_set_str(GIT_ERROR_OS, strerror(err));
		rc = -1;
		goto out;
	}
	if (rename(lock, ref) == -1) {
		git_error_set_str(GIT_ERROR_OS, strerror(errno));
		unlink(lock);
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	free(lock);
	free(ref);
	return rc;
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
	if (old != NULL && a->defer_sync && !a->oldref)
		keep_old_ref(a, branch);
	if (old != NULL && (rc = move_branch_spare(a, branch, old, id)) != 1) {
		git_reference_free(head);
		return rc;
	}
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
