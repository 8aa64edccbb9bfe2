/*
 * audit.c: the audit repository, a bare git repository in which every
 * decision is one commit, written with libgit2 from memory (no work tree,
 * no index).
 *
 * The tree holds each bottle's current config and one record per
 * decision, at SLUG/decisions/X/Y/Z/W/ID.json (one level per hex digit of
 * the blob id of the id), so a commit rewrites a handful of small trees
 * however long the history grows, and "is this decision committed?" is
 * one path lookup (two in a repository that also holds records of the
 * earlier layout, decisions/XX/YY/ID.json).
 *
 * Here: opening (and creating) the repository, reading it, and what
 * a decision and a config edit change in its tree.  The commit itself
 * is commit.c's; see audit.h for the other parts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

#define INIT_MARKER	"supervise.init"	/* a creation under way */

/* Is `path` empty but for our lock file?  (Never turn a full directory
 * into a repository because a variable pointed at the wrong place.) */
static int
only_lock_file(const char *path)
{
	struct dirent *de;
	DIR *d;
	int fd, ok = 1;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, LOCK_NAME) != 0)
			ok = 0;
	closedir(d);
	return ok;
}

/*
 * A creation killed half way can leave libgit2's lock on the files it was
 * writing (config, HEAD), and a second init stops at them.  Nobody else
 * can hold them: creation runs under our lock, and git has no reason to
 * write a repository that does not exist yet.
 */
static int
drop_init_locks(struct sv_audit *a, struct sv_err *e)
{
	static const char *const names[] = { "config.lock", "HEAD.lock",
	    "description.lock" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *p = sv_xasprintf("%s/%s", a->path, names[i]);

		if (unlink(p) == -1 && errno != ENOENT) {
			sv_errf(e, errno, "can't remove '%s'", p);
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

/*
 * A new repository on disk before the marker goes: what git needs to
 * see a repository (HEAD, config, the object and ref directories), the
 * directory itself and its parent's entry for it.
 */
static int
init_sync(struct sv_audit *a, struct sv_err *e)
{
	static const char *const made[] = { "HEAD", "config", "objects/pack",
	    "objects", "refs/heads", "refs", ".", ".." };
	struct sv_durable d;
	int rc;

	sv_durable_init(&d);
	for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
		char *p = sv_xasprintf("%s/%s", a->path, made[i]);

		sv_durable_path(&d, p);
		free(p);
	}
	rc = sv_durable_sync(&d, e);
	sv_durable_free(&d);
	return rc;
}

/*
 * Open the repository, creating it first when needed; called under the
 * lock.  A creation killed half way would leave a directory that is
 * neither empty nor a repository, so it is bracketed by a marker file:
 * while AUDIT/supervise.init exists, (re)initialising is what to do, and
 * libgit2 completes a partial repository on a second init.
 */
static int
audit_init(struct sv_audit *a, struct sv_err *e)
{
	git_repository_init_options io;
	struct stat st;
	char *marker = sv_xasprintf("%s/%s", a->path, INIT_MARKER);
	int rc, fd, interrupted;

	interrupted = lstat(marker, &st) == 0;
	rc = git_repository_open_ext(&a->repo, a->path,
	    GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE, NULL);
	if (rc == 0 && !interrupted)
		goto attach;
	if (rc < 0 && rc != GIT_ENOTFOUND) {
		sv_git_fail(e, rc, "can't open the audit repository '%s'", a->path);
		goto out;
	}
	if (rc == GIT_ENOTFOUND && !interrupted && !only_lock_file(a->path)) {
		rc = sv_errf(e, 0, "can't use '%s' as the audit repository: it "
		    "is not a git repository and not empty", a->path);
		goto out;
	}
	git_repository_free(a->repo);
	a->repo = NULL;
	if (interrupted && drop_init_locks(a, e) == -1) {
		rc = -1;
		goto out;
	}
	fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1 || fsync(fd) == -1) {
		rc = sv_errf(e, errno, "can't create '%s'", marker);
		if (fd != -1)
			close(fd);
		goto out;
	}
	close(fd);
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	io.initial_head = "main";
	rc = git_repository_init_ext(&a->repo, a->path, &io);
	if (rc < 0) {
		sv_git_fail(e, rc, "can't create the audit repository '%s'",
		    a->path);
		goto out;
	}
	if ((rc = init_sync(a, e)) < 0)
		goto out;
	if (unlink(marker) == -1) {
		rc = sv_errf(e, errno, "can't remove '%s'", marker);
		goto out;
	}
attach:
	rc = sv_odb_attach(a->repo, &a->odb, e);
	/* Under the lock: no committer of ours is writing one now. */
	if (rc == 0)
		sv_odb_drop_tmp(a->odb);
out:
	free(marker);
	return rc < 0 ? -1 : 0;
}

int
sv_audit_open(struct sv_audit **out, const char *path, struct sv_err *e)
{
	struct sv_audit *a;
	char *lockpath;
	int rc;

	*out = NULL;
	if ((rc = sv_git_ready()) < 0)
		return sv_git_fail(e, rc, "can't initialise libgit2");
	a = sv_xmalloc(sizeof *a);
	memset(a, 0, sizeof *a);
	a->lockfd = -1;
	a->path = path ? sv_xstrdup(path) : sv_audit_dir();
	host_name(a->host, sizeof a->host);
	identify_self(a);
	if (sv_mkdirs(a->path, e) == -1)
		goto fail;
	lockpath = sv_xasprintf("%s/%s", a->path, LOCK_NAME);
	a->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (a->lockfd == -1) {
		sv_errf(e, errno, "can't open '%s'", lockpath);
		free(lockpath);
		goto fail;
	}
	free(lockpath);
	a->oldref = 1;		/* one left by a killed process goes now */
	drop_old_ref(a);

	/* Under the lock, so two first users do not both initialise. */
	if (sv_audit_lock(a, e) == -1)
		goto fail;
	rc = audit_init(a, e);
	sv_audit_unlock(a);
	if (rc < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	sv_audit_close(a);
	return -1;
}

void
sv_audit_close(struct sv_audit *a)
{
	struct sv_err e;

	if (a == NULL)
		return;
	sv_audit_sync(a, &e);	/* best effort: its caller learnt of a failure */
	git_repository_free(a->repo);
	if (a->lockfd != -1)
		close(a->lockfd);
	sv_durable_free(&a->durable);
	free(a->branch);
	free(a->path);
	free(a);
}

/* A relative path that stays inside the bottle's directory. */
static int
valid_relpath(const char *rel, struct sv_err *e)
{
	const char *p = rel;

	if (*rel == '\0' || *rel == '/')
		goto bad;
	for (;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
bad:
	return sv_errf(e, 0, "'%s' is not a path inside a bottle's config", rel);
}

int
sv_audit_read(struct sv_audit *a, const char *slug, const char *relpath,
    char **text, size_t *len, struct sv_err *e)
{
	git_commit *tip;
	git_tree *tree;
	char *path;
	int rc;

	*text = NULL;
	if (len != NULL)
		*len = 0;
	if (sv_valid_slug(slug, e) == -1 || valid_relpath(relpath, e) == -1)
		return -1;
	if (audit_tip(a, &tip, &tree, e) == -1)
		return -1;
	path = sv_xasprintf("%s/%s", slug, relpath);
	rc = tree_text(a, tree, path, text, len, e);
	free(path);
	git_tree_free(tree);
	git_commit_free(tip);
	return rc;
}

/* The blob id of `path` in commit c's tree into *id; 0 when absent. */
static int
commit_entry(struct sv_audit *a, git_commit *c, const char *path,
    git_oid *id, struct sv_err *e)
{
	git_tree *tree;
	git_tree_entry *ent;
	int rc;

	if ((rc = git_commit_tree(&tree, c)) < 0)
		return sv_git_fail(e, rc, "can't read a tree of '%s'", a->path);
	rc = git_tree_entry_bypath(&ent, tree, path);
	git_tree_free(tree);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return sv_git_fail(e, rc, "can't look up '%s' in '%s'", path,
		    a->path);
	git_oid_cpy(id, git_tree_entry_id(ent));
	git_tree_entry_free(ent);
	return 1;
}

/*
 * The tip of main and the id of SLUG/RELPATH in it: 1 found, 0 not (no
 * tip, or no such file), -1 on error.  *c and *path are the caller's to
 * free (NULL when there is no tip).
 */
static int
tip_entry(struct sv_audit *a, const char *slug, const char *relpath,
    git_commit **c, char **path, git_oid *id, struct sv_err *e)
{
	git_tree *tree;

	*c = NULL;
	*path = NULL;
	if (sv_valid_slug(slug, e) == -1 || valid_relpath(relpath, e) == -1)
		return -1;
	if (audit_tip(a, c, &tree, e) == -1)
		return -1;
	git_tree_free(tree);
	if (*c == NULL)
		return 0;
	*path = sv_xasprintf("%s/%s", slug, relpath);
	return commit_entry(a, *c, *path, id, e);
}

int
sv_audit_blob_id(struct sv_audit *a, const char *slug, const char *relpath,
    char hex[41], struct sv_err *e)
{
	git_commit *c;
	git_oid id;
	char *path;
	int rc;

	hex[0] = '\0';
	rc = tip_entry(a, slug, relpath, &c, &path, &id, e);
	if (rc == 1)
		git_oid_tostr(hex, 41, &id);
	git_commit_free(c);
	free(path);
	return rc == -1 ? -1 : 0;
}

int
sv_audit_last_change(struct sv_audit *a, const char *slug,
    const char *relpath, char hex[41], struct sv_err *e)
{
	git_commit *c, *parent;
	git_oid want, had;
	char *path;
	int rc, found;

	hex[0] = '\0';
	rc = found = tip_entry(a, slug, relpath, &c, &path, &want, e);
	/* Down the first parents while the file is the same. */
	while (rc == 1) {
		if (git_commit_parentcount(c) == 0)
			break;
		if ((rc = git_commit_parent(&parent, c, 0)) < 0) {
			rc = sv_git_fail(e, rc, "can't read a parent of %s in '%s'",
			    git_oid_tostr_s(git_commit_id(c)), a->path);
			break;
		}
		rc = commit_entry(a, parent, path, &had, e);
		if (rc == -1 || rc == 0 || !git_oid_equal(&had, &want)) {
			git_commit_free(parent);
			rc = rc == -1 ? -1 : 1;
			break;
		}
		git_commit_free(c);
		c = parent;
	}
	if (rc == 1 && found == 1)
		git_oid_tostr(hex, 41, git_commit_id(c));
	git_commit_free(c);
	free(path);
	return rc == -1 ? -1 : 0;
}


int
sv_audit_has_record(struct sv_audit *a, const char *slug, const char *id,
    struct sv_err *e)
{
	git_commit *tip;
	git_tree *tree;
	int rc;

	if (sv_valid_slug(slug, e) == -1 || sv_valid_id(id, e) == -1)
		return -1;
	if (audit_tip(a, &tip, &tree, e) == -1)
		return -1;
	rc = record_find(a, tree, slug, id, NULL, e);
	git_tree_free(tree);
	git_commit_free(tip);
	return rc;
}

int
sv_audit_read_record(struct sv_audit *a, const char *slug, const char *id,
    char **text, size_t *len, char **rel, struct sv_err *e)
{
	git_commit *tip;
	git_tree *tree;
	char *path;
	int rc;

	*text = NULL;
	*rel = NULL;
	*len = 0;
	if (sv_valid_slug(slug, e) == -1 || sv_valid_id(id, e) == -1)
		return -1;
	if (audit_tip(a, &tip, &tree, e) == -1)
		return -1;
	if ((rc = record_find(a, tree, slug, id, rel, e)) == 1) {
		path = sv_xasprintf("%s/%s", slug, *rel);
		rc = tree_text(a, tree, path, text, len, e);
		free(path);
	}
	git_tree_free(tree);
	git_commit_free(tip);
	return rc < 0 ? -1 : 0;
}

/* --- decisions ---------------------------------------------------------- */

struct decision_ctx {
	const struct sv_proposal *p;
	const struct sv_response *r;
	const struct sv_tool *tool;	/* its config files, if any */
	char *record_path;
	char *record;
	char *message;
	struct ident who;
	git_signature author;
};

/*
 * Put the new text of one config file of the decision's bottle into the
 * plan: `file` is the tool's config or its mirror, `apply` the merge.
 */
static int
plan_config_file(struct sv_audit *a, git_tree *tip, struct decision_ctx *c,
    const char *file, int (*apply)(const char *, const char *, const char *,
    char **, struct sv_err *), struct plan *pl, struct sv_err *e)
{
	char *path, *cur = NULL, *next = NULL, msg[sizeof e->msg];
	int rc;

	path = sv_xasprintf("%s/%s", c->p->bottle_slug, file);
	rc = tree_text(a, tip, path, &cur, NULL, e);
	if (rc == 0 && apply(c->p->tool, cur, c->r->final_file, &next,
	    e) == -1) {
		memcpy(msg, e->msg, sizeof msg);
		sv_errf(e, 0, "can't apply the decision on '%s' to '%s': %s",
		    c->p->id, path, msg);
		rc = -1;
	}
	if (rc == 0 && next != NULL && (cur == NULL || strcmp(cur, next) != 0))
		rc = plan_put(a, pl, path, next, e);
	free(path);
	free(cur);
	free(next);
	return rc;
}

static int
plan_decision(struct sv_audit *a, git_tree *tip, void *arg, struct plan *pl,
    struct sv_err *e)
{
	struct decision_ctx *c = arg;
	int rc;

	if ((rc = record_find(a, tip, c->p->bottle_slug, c->p->id, NULL,
	    e)) != 0) {
		pl->nothing = rc == 1;
		return rc == 1 ? 0 : -1;
	}
	if (c->r->status != SV_REJECTED) {
		/* The route and its host on pipelock's allowlist: one commit. */
		if (c->tool->config != NULL && plan_config_file(a, tip, c,
		    c->tool->config, sv_config_update, pl, e) == -1)
			return -1;
		if (c->tool->mirror != NULL && plan_config_file(a, tip, c,
		    c->tool->mirror, sv_config_mirror, pl, e) == -1)
			return -1;
	}
	return plan_put(a, pl, c->record_path, c->record, e);
}

/* Check a decision and make everything its commit needs but the trees. */
static int
decision_prepare(struct decision_ctx *c, const struct sv_proposal *p,
    const struct sv_response *r, const char *host, struct sv_err *e)
{
	const struct sv_tool *t;
	time_t decided;

	memset(c, 0, sizeof *c);
	if (sv_valid_id(p->id, e) == -1 || sv_valid_slug(p->bottle_slug, e) == -1)
		return -1;
	t = sv_tool_find(p->tool);
	if (t == NULL || !t->proposes)
		return sv_errf(e, 0, "can't commit the decision on '%s': unknown "
		    "tool '%s'", p->id, p->tool ? p->tool : "");
	if (r->status != SV_APPROVED && r->status != SV_MODIFIED &&
	    r->status != SV_REJECTED)
		return sv_errf(e, 0, "can't commit the decision on '%s': no "
		    "status", p->id);
	if (r->proposal_id != NULL && strcmp(r->proposal_id, p->id) != 0)
		return sv_errf(e, 0, "can't commit the decision on '%s': the "
		    "response is for '%s'", p->id, r->proposal_id);
	if (r->status != SV_REJECTED && r->final_file == NULL)
		return sv_errf(e, 0, "can't commit the decision on '%s': %s "
		    "without a final file", p->id, sv_status_name(r->status));
	if (r->decided_by == NULL || r->decided_at == NULL)
		return sv_errf(e, 0, "can't commit the decision on '%s': the "
		    "response is not resolved (decided_by, decided_at)", p->id);
	if ((c->record = record_text(p, r)) == NULL)
		return sv_errf(e, EILSEQ, "can't commit the decision on '%s': "
		    "a field is not valid UTF-8", p->id);
	c->p = p;
	c->r = r;
	c->tool = t;
	c->record_path = record_path(p->bottle_slug, p->id);
	c->message = decision_message(p, r);
	ident_parse(r->decided_by, host, &c->who);
	/* The author date is when the operator decided, not when we commit. */
	if (sv_time_utc(r->decided_at, &decided, NULL) == -1)
		decided = time(NULL);
	signature_at(&c->author, &c->who, decided);
	return 0;
}

static void
decision_release(struct decision_ctx *c)
{
	if (c->record_path != NULL)
		ident_free(&c->who);
	free(c->message);
	free(c->record);
	free(c->record_path);
}

/*
 * The decision commit just made, as a walk of main would read it: the
 * applier is handed it and need not walk.  Left empty when it can't be
 * read back; the applier walks then.
 */
static void
made_decision(struct sv_audit *a, const git_oid *id,
    struct sv_decision_commit *dc)
{
	git_commit *c;

	if (git_commit_lookup(&c, a->repo, id) < 0)
		return;
	if (!decision_of(c, dc))
		memset(dc, 0, sizeof *dc);
	git_commit_free(c);
}

int
sv_audit_commit_decisions(struct sv_audit *a, struct sv_audit_decision *v,
    size_t n, struct sv_err *e)
{
	struct decision_ctx *ctx = sv_xmalloc((n ? n : 1) * sizeof *ctx);
	struct item *items = sv_xmalloc((n ? n : 1) * sizeof *items);
	size_t *of = sv_xmalloc((n ? n : 1) * sizeof *of);
	size_t i, k = 0;
	int rc;

	for (i = 0; i < n; i++) {
		v[i].committed = v[i].failed = 0;
		memset(&v[i].dc, 0, sizeof v[i].dc);
		if (decision_prepare(&ctx[i], v[i].p, v[i].r, a->host,
		    &v[i].err) == -1) {
			v[i].failed = 1;
			continue;
		}
		memset(&items[k], 0, sizeof items[k]);
		items[k].build = plan_decision;
		items[k].ctx = &ctx[i];
		items[k].author = &ctx[i].author;
		items[k].message = ctx[i].message;
		of[k++] = i;
	}
	if (k > 0)
		rc = audit_commit(a, items, k, e);
	else {
		rc = 0;
		sv_durable_free(&a->durable);	/* nothing to make durable with */
	}
	for (size_t j = 0; j < k; j++) {
		struct sv_audit_decision *d = &v[of[j]];

		if (rc == -1) {
			d->failed = 1;
			d->err = *e;
		} else if (items[j].state == ITEM_FAILED) {
			d->failed = 1;
			d->err = items[j].err;
		} else {
			d->committed = items[j].state == ITEM_NEW;
			if (d->committed)
				made_decision(a, &items[j].made, &d->dc);
		}
	}
	for (i = 0; i < n; i++)
		decision_release(&ctx[i]);
	free(ctx);
	free(items);
	free(of);
	return rc;
}

int
sv_audit_commit_decision(struct sv_audit *a, const struct sv_proposal *p,
    const struct sv_response *r, int *committed, struct sv_err *e)
{
	struct sv_audit_decision d;

	*committed = 0;
	memset(&d, 0, sizeof d);
	d.p = p;
	d.r = r;
	if (sv_audit_commit_decisions(a, &d, 1, e) == -1)
		return -1;
	sv_decision_commit_free(&d.dc);
	if (d.failed) {
		*e = d.err;
		return -1;
	}
	*committed = d.committed;
	return 0;
}

/* --- config commits (init, operator edits) ------------------------------ */

struct config_ctx {
	const char *slug;
	const struct sv_config_file *files;
	char **texts;		/* canonical texts, NULL: remove */
	size_t n;
};

static int
plan_config(struct sv_audit *a, git_tree *tip, void *arg, struct plan *pl,
    struct sv_err *e)
{
	struct config_ctx *c = arg;
	char *path, *cur, hex[41];
	int rc = 0;

	for (size_t i = 0; i < c->n && rc == 0; i++) {
		path = sv_xasprintf("%s/%s", c->slug, c->files[i].relpath);
		rc = tree_text(a, tip, path, &cur, NULL, e);
		if (rc == 0 && c->files[i].base_hash != NULL) {
			sv_blob_hash(cur ? cur : "", cur ? strlen(cur) : 0, hex);
			if (strcmp(hex, c->files[i].base_hash) != 0)
				rc = sv_errf(e, 0, "'%s' changed on main since it "
				    "was read (it is now blob %.12s, not %.12s); "
				    "nothing was committed", path, hex,
				    c->files[i].base_hash);
		}
		if (rc == 0 && c->texts[i] == NULL && cur != NULL)
			rc = plan_put(a, pl, path, NULL, e);
		else if (rc == 0 && c->texts[i] != NULL &&
		    (cur == NULL || strcmp(cur, c->texts[i]) != 0))
			rc = plan_put(a, pl, path, c->texts[i], e);
		free(cur);
		free(path);
	}
	if (rc == 0 && pl->n == 0)
		pl->nothing = 1;
	return rc;
}

/* Is relpath the config file of some tool, or the bottle's policy? */
static int
config_known(const char *relpath)
{
	if (strcmp(relpath, SV_POLICY_PATH) == 0)
		return 1;
	for (const struct sv_tool *t = sv_tools; t->name != NULL; t++)
		if (t->config != NULL && strcmp(t->config, relpath) == 0)
			return 1;
	return 0;
}

int
sv_audit_commit_config(struct sv_audit *a, const char *slug,
    const struct sv_config_file *files, size_t n, const char *author,
    const char *subject, const char *body, struct sv_err *e)
{
	struct config_ctx c = { slug, files, NULL, n };
	struct ident who;
	git_signature sig;
	struct item it;
	char *message = NULL;
	size_t i;
	int rc = -1;

	if (sv_valid_slug(slug, e) == -1)
		return -1;
	if (n == 0 || n > PLAN_MAX)
		return sv_errf(e, 0, "can't commit %zu config files at once", n);
	c.texts = sv_xmalloc(n * sizeof *c.texts);
	memset(c.texts, 0, n * sizeof *c.texts);
	for (i = 0; i < n; i++) {
		if (!config_known(files[i].relpath)) {
			sv_errf(e, 0, "'%s' is not a config file of a bottle",
			    files[i].relpath);
			goto out;
		}
		if (files[i].text != NULL && sv_config_normalize(files[i].relpath,
		    files[i].text, &c.texts[i], e) == -1)
			goto out;
	}

	message = config_message(subject, body);
	ident_parse(author, a->host, &who);
	signature_at(&sig, &who, time(NULL));
	memset(&it, 0, sizeof it);
	it.build = plan_config;
	it.ctx = &c;
	it.author = &sig;
	it.message = message;
	rc = audit_commit(a, &it, 1, e);
	if (rc == 0 && it.state == ITEM_FAILED) {
		*e = it.err;
		rc = -1;
	}
	ident_free(&who);
out:
	for (i = 0; i < n; i++)
		free(c.texts[i]);
	free(c.texts);
	free(message);
	return rc;
}
