/*
 * live.c: the bottle's live config directory.
 *
 * The proxies of a bottle read their config from files, not from git:
 * ROOT/state/SLUG/ (or SUPERVISE_STATE_DIR) holds each config file as it
 * stands on main, at the same relative path as in the audit tree
 * (egress/routes.json, pipelock/allowlist, ...), bind-mounted where the
 * proxies and the agent read them.
 *
 *  - Each file is published atomically in its own directory: written
 *    to a dot file beside it, fsync'd, renamed over the old one, the
 *    directory fsync'd.  A proxy that reloads at any instant reads the
 *    old file or the new one, never a part of one.  The changed files
 *    of one publication are fsync'd together, then renamed, then their
 *    directories fsync'd together (durable.c).
 *  - A file whose text is already the same is not touched, so its mtime
 *    and inode say when it last changed; a file absent from main is
 *    removed.
 *  - Publishing reads main and writes under the audit repository's lock
 *    (the committers' flock): two publishers (the daemon, an operator's
 *    supervise-config) never interleave, and whoever publishes last read
 *    the newest main, so the directory never goes back in time.  Main is
 *    read once a publication (HEAD, the branch, the tree), every file
 *    from that one tree: it sits on an approval's way to its answer.
 *  - Files are 0644 and directories 0755: the proxies that read them run
 *    as other users, in containers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"

char *
sv_state_dir(const char *slug)
{
	const char *dir = getenv("SUPERVISE_STATE_DIR");

	if (dir != NULL && *dir != '\0')
		return sv_xstrdup(dir);
	return sv_xasprintf("%s/state/%s", sv_root(), slug);
}

size_t
sv_config_files(const char **v, size_t max)
{
	size_t n = 0, i;

	for (const struct sv_tool *t = sv_tools; t->name != NULL; t++) {
		if (t->config == NULL)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(v[i], t->config) == 0)
				break;
		if (i == n && n < max)
			v[n++] = t->config;
	}
	return n;
}

static int
fsync_dir(int dirfd, const char *path, struct sv_err *e)
{
	if (fsync(dirfd) == -1 && errno != EINVAL)
		return sv_errf(e, errno, "can't flush directory '%s'", path);
	return 0;
}

/*
 * Open directory `path`, creating it and its parents (0755) when
 * missing; each directory made is flushed into its parent.
 */
static int
open_dirs(const char *path, struct sv_err *e)
{
	char *p, *s;
	int fd, made;

	/* There already, but for a bottle's first publication. */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1 || errno != ENOENT)
		return fd != -1 ? fd : sv_errf(e, errno, "can't open '%s'", path);
	p = sv_xstrdup(path);

	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		made = mkdir(p, 0755) == 0;
		if (!made && errno != EEXIST) {
			sv_errf(e, errno, "can't create '%s'", p);
			break;
		}
		if (made) {
			char *slash = strrchr(p, '/');
			char *parent = slash == p ? sv_xstrdup("/") :
			    sv_xasprintf("%.*s", (int)(slash - p), p);
			int pfd = open(parent, O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC);
			int rc = pfd == -1 ? sv_errf(e, errno, "can't open '%s'",
			    parent) : fsync_dir(pfd, parent, e);

			if (pfd != -1)
				close(pfd);
			free(parent);
			if (rc == -1)
				break;
		}
		*s = c;
		if (c == '\0') {
			fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			    O_CLOEXEC);
			if (fd == -1)
				sv_errf(e, errno, "can't open '%s'", p);
			break;
		}
	}
	free(p);
	return fd;
}

/* Is dirfd/name a regular file holding exactly text? */
static int
same_text(int dirfd, const char *name, const char *text, size_t len)
{
	struct sv_err e;
	struct stat st;
	char *buf;
	size_t n;
	int fd, same;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size != len || (st.st_mode & 07777) != 0644) {
		close(fd);
		return 0;
	}
	same = 0;
	if (sv_read_sized(fd, name, len + 1, len, &buf, &n, &e) == 0) {
		same = n == len && memcmp(buf, text, len) == 0;
		free(buf);
	}
	close(fd);
	return same;
}

/* One file of a publication, between its write and its rename. */
struct pending {
	char *sub;		/* its directory */
	const char *name;	/* in rel */
	char *tmp;
	int dfd, fd;		/* fd: the written dot file, or -1 */
};

static void
pending_close(struct pending *pf)
{
	if (pf->fd != -1) {
		close(pf->fd);
		unlinkat(pf->dfd, pf->tmp, 0);
	}
	if (pf->dfd != -1)
		close(pf->dfd);
	free(pf->sub);
	free(pf->tmp);
	pf->sub = pf->tmp = NULL;
	pf->dfd = pf->fd = -1;
}

/*
 * Start making DIR/REL hold text (NULL: be absent).  A removal is done
 * at once (its directory handed to dirs); new text is written to the
 * dot file, which is left open in *pf for publish_all to sync and
 * rename.  1 when the file changes, 0 when it already was so, -1 on
 * error.
 */
static int
write_file(const char *dir, const char *rel, const char *text,
    struct pending *pf, struct sv_durable *dirs, struct sv_err *e)
{
	const char *slash = strrchr(rel, '/');
	size_t len = text ? strlen(text) : 0;

	pf->name = slash ? slash + 1 : rel;
	pf->sub = slash ? sv_xasprintf("%s/%.*s", dir, (int)(slash - rel),
	    rel) : sv_xstrdup(dir);
	pf->tmp = sv_xasprintf(".%s.tmp", pf->name);
	pf->dfd = pf->fd = -1;
	if (text == NULL) {
		/* The directory all the same: a container mounts it before
		 * its component's first file is approved. */
		if ((pf->dfd = open_dirs(pf->sub, e)) == -1)
			return -1;
		if (unlinkat(pf->dfd, pf->name, 0) == -1)
			return errno == ENOENT ? 0 :
			    sv_errf(e, errno, "can't remove '%s/%s'", pf->sub,
			    pf->name);
		sv_durable_path(dirs, pf->sub);
		return 1;
	}
	if ((pf->dfd = open_dirs(pf->sub, e)) == -1)
		return -1;
	if (same_text(pf->dfd, pf->name, text, len))
		return 0;
	/* Ours to overwrite: publishers hold the audit lock. */
	pf->fd = openat(pf->dfd, pf->tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0644);
	if (pf->fd == -1)
		return sv_errf(e, errno, "can't create '%s/%s'", pf->sub,
		    pf->tmp);
	if (fchmod(pf->fd, 0644) == -1 || sv_write_all(pf->fd, text,
	    len) == -1)
		return sv_errf(e, errno, "can't write '%s/%s'", pf->sub,
		    pf->tmp);
	return 1;
}

/*
 * Write every changed file, then sync them all at once, rename each
 * over its old self, and sync their directories at once: two rounds of
 * fsync a publication, however many files changed (a file a round each,
 * in turn, was four rounds on the answer's path for one approval).
 */
static int
publish_all(struct sv_audit *a, const char *slug, const char *dir,
    unsigned *changed, struct sv_err *e)
{
	struct pending pf[16];
	const char *files[16];
	size_t n = sv_config_files(files, 16), i, k = 0;
	struct sv_durable fds, dirs;
	git_commit *tip;
	git_tree *tree;
	char *text, *path;
	int rc = 0, r;

	if (sv_valid_slug(slug, e) == -1 || audit_tip(a, &tip, &tree, e) == -1)
		return -1;
	sv_durable_init(&fds);
	sv_durable_init(&dirs);
	for (i = 0; i < n && rc == 0; i++) {
		path = sv_xasprintf("%s/%s", slug, files[i]);
		r = tree_text(a, tree, path, &text, NULL, e);
		free(path);
		if (r == -1) {
			rc = -1;
			break;
		}
		r = write_file(dir, files[i], text, &pf[k], &dirs, e);
		free(text);
		if (r == -1) {
			pending_close(&pf[k]);
			rc = -1;
			break;
		}
		if (r == 1 && changed != NULL)
			*changed |= 1u << i;
		if (pf[k].fd != -1) {
			sv_durable_fd(&fds, pf[k].fd, pf[k].tmp);
			k++;
		} else {
			pending_close(&pf[k]);
		}
	}
	if (rc == 0)
		rc = sv_durable_sync(&fds, e);
	for (i = 0; i < k; i++) {
		if (rc == 0 && close(pf[i].fd) == -1)
			rc = sv_errf(e, errno, "can't write '%s/%s'", pf[i].sub,
			    pf[i].tmp);
		else if (rc == 0 && renameat(pf[i].dfd, pf[i].tmp, pf[i].dfd,
		    pf[i].name) == -1)
			rc = sv_errf(e, errno, "can't rename '%s/%s' to '%s/%s'",
			    pf[i].sub, pf[i].tmp, pf[i].sub, pf[i].name);
		else if (rc == 0) {
			pf[i].fd = -1;	/* renamed: nothing to remove */
			sv_durable_path(&dirs, pf[i].sub);
			pending_close(&pf[i]);
			continue;
		}
		pf[i].fd = -1;
		unlinkat(pf[i].dfd, pf[i].tmp, 0);
		pending_close(&pf[i]);
	}
	if (rc == 0)
		rc = sv_durable_sync(&dirs, e);
	sv_durable_free(&fds);
	sv_durable_free(&dirs);
	git_tree_free(tree);
	git_commit_free(tip);
	return rc;
}

int
sv_live_publish(struct sv_audit *a, const char *slug, const char *dir,
    unsigned *changed, struct sv_err *e)
{
	int rc;

	if (changed != NULL)
		*changed = 0;
	if (sv_audit_lock(a, e) == -1)
		return -1;
	rc = publish_all(a, slug, dir, changed, e);
	sv_audit_unlock(a);
	if (rc == -1) {
		char msg[sizeof e->msg];

		memcpy(msg, e->msg, sizeof msg);
		sv_errf(e, 0, "can't bring the live directory '%s' up to date "
		    "with main: %s", dir, msg);
	}
	return rc;
}

int
sv_live_create(const char *dir, struct sv_err *e)
{
	int fd = open_dirs(dir, e);

	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}
