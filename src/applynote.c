/*
 * applynote.c: what became of each approved decision, as a git note.
 *
 * A decision is a commit on main; whether it took effect (the live files
 * written, the apply hook run) is known only later, and history is not
 * rewritten for it.  So the outcome is a note on the decision's commit
 * under refs/notes/apply, and `git log --notes=apply` shows both.  The
 * note's text:
 *
 *	applied: yes                     (or "applied: no: REASON")
 *	Hook: /path/to/hook              Key: value lines
 *	Exit: 0                          (or Signal: N, or Timeout: SEC)
 *	Duration-Ms: 12
 *	Files: egress/routes.json
 *	Commit: 40 hex digits
 *	Output-Bytes: 1234
 *	                                 a blank line
 *	the tail of the hook's output
 *
 * The first line is the line the agent got.  This file is the one writer
 * and the one reader of that text, and walks main for the decision
 * commits (their trailers) that the notes are attached to.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

#define NOTES_REF	"refs/notes/apply"

static int
git_err(struct sv_err *e, int code, const char *what, struct sv_audit *a)
{
	return sv_git_fail(e, code, "can't %s in '%s'", what, a->path);
}

/*
 * Under our lock: the objects made since the last flush (held in memory:
 * odb.c) written as a pack and flushed, then ref `name` moved from `old`
 * (NULL: it must not exist) to `id` as a compare-and-swap, then flushed.
 */
static int
set_ref(struct sv_audit *a, const char *name, const git_oid *old,
    const git_oid *id, const char *log, struct sv_err *e)
{
	git_reference *ref = NULL;
	struct sv_durable d;
	size_t wrote;
	char *p;
	int rc;

	sv_durable_init(&d);
	rc = sv_odb_flush(a->odb, &wrote, &d, e);
	sv_durable_free(&d);
	if (rc == -1) {
		sv_odb_discard(a->odb);
		return -1;
	}
	if (old != NULL)
		rc = git_reference_create_matching(&ref, a->repo, name, id, 1,
		    old, log);
	else
		rc = git_reference_create(&ref, a->repo, name, id, 0, log);
	git_reference_free(ref);
	if (rc < 0)
		return git_err(e, rc, "move " NOTES_REF, a);
	/* The ref file and its directory, by name. */
	sv_durable_init(&d);
	p = sv_xasprintf("%s/%s", a->path, name);
	sv_durable_file(&d, p);
	free(p);
	rc = sv_durable_sync(&d, e);
	sv_durable_free(&d);
	return rc;
}

void
sv_apply_note_free(struct sv_apply_note *n)
{
	if (n == NULL)
		return;
	free(n->line);
	free(n->reason);
	free(n->hook);
	free(n->files);
	free(n->commit);
	free(n->output);
	memset(n, 0, sizeof *n);
}

void
sv_apply_note_init(struct sv_apply_note *n)
{
	memset(n, 0, sizeof *n);
	n->exit_status = -1;
	n->duration_ms = -1;
	n->output_bytes = -1;
}

char *
sv_apply_note_text(const struct sv_apply_note *n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&text, &len)) == NULL)
		sv_die(111, "out of memory");
	if (n->applied)
		fputs("applied: yes\n", f);
	else
		fprintf(f, "applied: no: %s\n", n->reason ? n->reason : "unknown");
	if (n->hook != NULL)
		fprintf(f, "Hook: %s\n", n->hook);
	if (n->timeout_s > 0)
		fprintf(f, "Timeout: %ld\n", n->timeout_s);
	else if (n->signal > 0)
		fprintf(f, "Signal: %d\n", n->signal);
	else if (n->exit_status >= 0)
		fprintf(f, "Exit: %d\n", n->exit_status);
	if (n->duration_ms >= 0)
		fprintf(f, "Duration-Ms: %ld\n", n->duration_ms);
	fprintf(f, "Files: %s\n", n->files ? n->files : "");
	if (n->commit != NULL)
		fprintf(f, "Commit: %s\n", n->commit);
	if (n->output_bytes >= 0)
		fprintf(f, "Output-Bytes: %lld\n", n->output_bytes);
	if (n->output != NULL && n->output[0] != '\0') {
		size_t k = strlen(n->output);

		fprintf(f, "\n%s%s", n->output,
		    n->output[k - 1] == '\n' ? "" : "\n");
	}
	if (fclose(f) != 0)
		sv_die(111, "out of memory");
	return text;
}

static int
parse_long(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

int
sv_apply_note_parse(const char *text, struct sv_apply_note *n,
    struct sv_err *e)
{
	const char *p = text, *nl, *colon;
	long long v;
	int lineno = 1;

	sv_apply_note_init(n);
	nl = strchr(p, '\n');
	n->line = nl ? sv_xasprintf("%.*s", (int)(nl - p), p) : sv_xstrdup(p);
	if (strcmp(n->line, "applied: yes") == 0)
		n->applied = 1;
	else if (strncmp(n->line, "applied: no: ", 13) == 0)
		n->reason = sv_xstrdup(n->line + 13);
	else {
		sv_errf(e, 0, "apply note:1: not 'applied: yes' or 'applied: "
		    "no: REASON'");
		sv_apply_note_free(n);
		return -1;
	}
	for (p = nl ? nl + 1 : p + strlen(p); *p != '\0' && *p != '\n';
	    p = nl ? nl + 1 : p + strlen(p)) {
		char *key, *val;

		lineno++;
		nl = strchr(p, '\n');
		colon = strchr(p, ':');
		if (colon == NULL || (nl != NULL && colon > nl) ||
		    colon[1] != ' ') {
			sv_errf(e, 0, "apply note:%d: not 'Key: value'", lineno);
			sv_apply_note_free(n);
			return -1;
		}
		key = sv_xasprintf("%.*s", (int)(colon - p), p);
		val = nl ? sv_xasprintf("%.*s", (int)(nl - colon - 2), colon + 2) :
		    sv_xstrdup(colon + 2);
		if (strcmp(key, "Hook") == 0) {
			free(n->hook);
			n->hook = val;
			val = NULL;
		} else if (strcmp(key, "Files") == 0) {
			free(n->files);
			n->files = val;
			val = NULL;
		} else if (strcmp(key, "Commit") == 0) {
			free(n->commit);
			n->commit = val;
			val = NULL;
		} else if (parse_long(val, &v) == 0) {
			if (strcmp(key, "Exit") == 0)
				n->exit_status = (int)v;
			else if (strcmp(key, "Signal") == 0)
				n->signal = (int)v;
			else if (strcmp(key, "Timeout") == 0)
				n->timeout_s = (long)v;
			else if (strcmp(key, "Duration-Ms") == 0)
				n->duration_ms = (long)v;
			else if (strcmp(key, "Output-Bytes") == 0)
				n->output_bytes = v;
		}
		/* Other keys (and values) are for people: kept in the text. */
		free(key);
		free(val);
	}
	n->output = sv_xstrdup(*p == '\n' ? p + 1 : p);
	return 0;
}

static int
oid_of(struct sv_audit *a, const char *hex, git_oid *oid, struct sv_err *e)
{
	(void)a;
	if (strlen(hex) != GIT_OID_HEXSZ || git_oid_fromstr(oid, hex) < 0)
		return sv_errf(e, 0, "'%s' is not a commit id", hex);
	return 0;
}

int
sv_apply_note_read(struct sv_audit *a, const char *commit,
    struct sv_apply_note *n, struct sv_err *e)
{
	git_note *note = NULL;
	git_oid oid;
	int rc;

	sv_apply_note_init(n);
	if (oid_of(a, commit, &oid, e) == -1)
		return -1;
	rc = git_note_read(&note, a->repo, NOTES_REF, &oid);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return git_err(e, rc, "read the apply note", a);
	rc = sv_apply_note_parse(git_note_message(note), n, e);
	git_note_free(note);
	if (rc == -1) {
		char msg[sizeof e->msg];

		memcpy(msg, e->msg, sizeof msg);
		return sv_errf(e, 0, "%s of commit %s in '%s': %s", NOTES_REF,
		    commit, a->path, msg);
	}
	return 1;
}

/*
 * Notes are stored as git stores many of them: under a fan-out of the
 * first two hex digits (ab/cdef...), so that adding one rewrites a tree
 * of 256 entries and one of 1/256th of the notes, not one tree of all of
 * them (libgit2's git_note_create writes them flat).  git and libgit2
 * read either layout.
 */
/*
 * Only supervise's programs write the notes ref, and only under
 * sv_audit_lock, which the caller holds: a lock file on it was left by
 * one that was killed.
 */
static void
drop_stale_lock(struct sv_audit *a)
{
	char *lockpath = sv_xasprintf("%s/" NOTES_REF ".lock", a->path);

	if (unlink(lockpath) == 0)
		sv_warnx("removed '%s', left by a killed writer", lockpath);
	free(lockpath);
}

int
sv_apply_notes_unlock(struct sv_audit *a, struct sv_err *e)
{
	if (sv_audit_lock(a, e) == -1)
		return -1;
	drop_stale_lock(a);
	sv_audit_unlock(a);
	return 0;
}

int
sv_apply_notes_write(struct sv_audit *a, const char *const *commits,
    const char *const *texts, size_t n, struct sv_err *e)
{
	git_repository *repo = a->repo;
	git_tree_update *up = NULL;
	git_commit *parent = NULL;
	git_tree *base = NULL, *tree = NULL;
	git_signature *sig = NULL;
	git_oid old, made, tree_id;
	char host[256], *email, **paths = NULL;
	size_t k = 0;
	int rc, have_old;

	if (n == 0)
		return 0;
	if (gethostname(host, sizeof host) == -1)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	email = sv_xasprintf("supervised@%s", host);
	rc = git_signature_now(&sig, "supervised", email);
	free(email);
	if (rc < 0)
		return git_err(e, rc, "make a signature", a);
	up = sv_xmalloc(n * sizeof *up);
	paths = sv_xmalloc(n * sizeof *paths);
	memset(up, 0, n * sizeof *up);
	for (size_t i = 0; i < n; i++) {
		git_oid target;
		size_t j;

		if (oid_of(a, commits[i], &target, e) == -1) {
			rc = -1;
			goto free;
		}
		/* The same commit twice: the later note wins. */
		for (j = i + 1; j < n; j++)
			if (strcmp(commits[j], commits[i]) == 0)
				break;
		if (j < n)
			continue;
		paths[k] = sv_xasprintf("%.2s/%s", commits[i], commits[i] + 2);
		rc = git_blob_create_from_buffer(&up[k].id, repo, texts[i],
		    strlen(texts[i]));
		if (rc < 0) {
			rc = git_err(e, rc, "write an apply note", a);
			k++;
			goto free;
		}
		up[k].action = GIT_TREE_UPDATE_UPSERT;
		up[k].filemode = GIT_FILEMODE_BLOB;
		up[k].path = paths[k];
		k++;
	}
	if (sv_audit_lock(a, e) == -1) {
		rc = -1;
		goto free;
	}
	drop_stale_lock(a);
	rc = git_reference_name_to_id(&old, repo, NOTES_REF);
	have_old = rc == 0;
	if (rc < 0 && rc != GIT_ENOTFOUND) {
		rc = git_err(e, rc, "read " NOTES_REF, a);
		goto out;
	}
	if (have_old && ((rc = git_commit_lookup(&parent, repo, &old)) < 0 ||
	    (rc = git_commit_tree(&base, parent)) < 0)) {
		rc = git_err(e, rc, "read " NOTES_REF, a);
		goto out;
	}
	if ((rc = git_tree_create_updated(&tree_id, repo, base, k, up)) < 0 ||
	    (rc = git_tree_lookup(&tree, repo, &tree_id)) < 0) {
		rc = git_err(e, rc, "build the tree of " NOTES_REF, a);
		goto out;
	}
	{
		const git_commit *parents[1] = { parent };

		rc = git_commit_create(&made, repo, NULL, sig, sig, NULL,
		    k == 1 ? "supervised: apply note\n" :
		    "supervised: apply notes\n", tree, parent != NULL ? 1 : 0,
		    parents);
	}
	if (rc < 0) {
		rc = git_err(e, rc, "commit to " NOTES_REF, a);
		goto out;
	}
	rc = set_ref(a, NOTES_REF, have_old ? &old : NULL, &made,
	    "supervised: apply notes", e);
out:
	if (rc < 0)
		sv_odb_discard(a->odb);
	sv_audit_unlock(a);
free:
	for (size_t i = 0; i < k; i++)
		free(paths[i]);
	free(paths);
	free(up);
	git_tree_free(tree);
	git_tree_free(base);
	git_commit_free(parent);
	git_signature_free(sig);
	return rc < 0 ? -1 : 0;
}

int
sv_apply_note_write(struct sv_audit *a, const char *commit,
    const struct sv_apply_note *n, struct sv_err *e)
{
	char *text = sv_apply_note_text(n);
	const char *texts[1] = { text };
	int rc = sv_apply_notes_write(a, &commit, texts, 1, e);

	free(text);
	return rc;
}

/* --- decision commits ---------------------------------------------------- */

void
sv_decision_commit_free(struct sv_decision_commit *d)
{
	if (d == NULL)
		return;
	free(d->slug);
	free(d->id);
	free(d->tool);
	free(d->status);
	free(d->subject);
	free(d->who);
	memset(d, 0, sizeof *d);
}

void
sv_decision_commit_copy(struct sv_decision_commit *to,
    const struct sv_decision_commit *d)
{
	*to = *d;
	to->slug = sv_xstrdup(d->slug);
	to->id = sv_xstrdup(d->id);
	to->tool = sv_xstrdup(d->tool);
	to->status = sv_xstrdup(d->status);
	to->subject = sv_xstrdup(d->subject);
	to->who = sv_xstrdup(d->who ? d->who : "");
}

/* Fill d from a commit's trailers; 0 when it is not a decision. */
int
decision_of(git_commit *c, struct sv_decision_commit *d)
{
	git_message_trailer_array arr;
	const char *msg = git_commit_message(c), *nl;
	const git_signature *who;
	const git_oid *p;

	memset(d, 0, sizeof *d);
	if (msg == NULL || strstr(msg, "\nProposal-Id: ") == NULL)
		return 0;
	if (git_message_trailers(&arr, msg) < 0)
		return 0;
	for (size_t i = 0; i < arr.count; i++) {
		const char *k = arr.trailers[i].key, *v = arr.trailers[i].value;
		char **to = strcmp(k, "Proposal-Id") == 0 ? &d->id :
		    strcmp(k, "Bottle") == 0 ? &d->slug :
		    strcmp(k, "Tool") == 0 ? &d->tool :
		    strcmp(k, "Status") == 0 ? &d->status : NULL;

		if (to != NULL && *to == NULL)
			*to = sv_xstrdup(v);
	}
	git_message_trailer_array_free(&arr);
	if (d->id == NULL || d->slug == NULL || d->tool == NULL ||
	    d->status == NULL) {
		sv_decision_commit_free(d);
		return 0;
	}
	git_oid_tostr(d->commit, sizeof d->commit, git_commit_id(c));
	if ((p = git_commit_parent_id(c, 0)) != NULL)
		git_oid_tostr(d->parent, sizeof d->parent, p);
	nl = strchr(msg, '\n');
	d->subject = nl ? sv_xasprintf("%.*s", (int)(nl - msg), msg) :
	    sv_xstrdup(msg);
	d->when = (int64_t)git_commit_time(c);
	/* The author is the operator who decided (the committer, the
	 * daemon that committed it). */
	if ((who = git_commit_author(c)) != NULL)
		d->who = who->email && *who->email ?
		    sv_xasprintf("%s <%s>", who->name, who->email) :
		    sv_xstrdup(who->name ? who->name : "");
	else
		d->who = sv_xstrdup("");
	return 1;
}

int
sv_audit_decisions(struct sv_audit *a, const char *slug, size_t max,
    int (*fn)(const struct sv_decision_commit *, void *), void *arg,
    struct sv_err *e)
{
	git_repository *repo = a->repo;
	git_revwalk *w = NULL;
	git_commit *c;
	git_oid oid;
	size_t seen = 0;
	int rc;

	if ((rc = git_revwalk_new(&w, repo)) < 0)
		return git_err(e, rc, "walk main", a);
	git_revwalk_simplify_first_parent(w);
	/* A repository made but not committed to yet has no main: libgit2
	 * 1.5.1's git_revwalk_push_head says so with -1, not ENOTFOUND. */
	rc = git_reference_name_to_id(&oid, repo, "HEAD");
	if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH) {
		git_revwalk_free(w);
		return 0;
	}
	if (rc == 0)
		rc = git_revwalk_push(w, &oid);
	if (rc < 0) {
		git_revwalk_free(w);
		return git_err(e, rc, "walk main", a);
	}
	rc = 0;
	while (seen++ < max && git_revwalk_next(&oid, w) == 0) {
		struct sv_decision_commit d;
		int found, stop = 0;

		if ((rc = git_commit_lookup(&c, repo, &oid)) < 0) {
			rc = git_err(e, rc, "read a commit of main", a);
			break;
		}
		found = decision_of(c, &d);
		git_commit_free(c);
		rc = 0;
		if (!found)
			continue;
		if (slug == NULL || strcmp(d.slug, slug) == 0)
			stop = fn(&d, arg);
		sv_decision_commit_free(&d);
		if (stop)
			break;
	}
	git_revwalk_free(w);
	return rc < 0 ? -1 : 0;
}

struct find {
	const char *id;
	struct sv_decision_commit *out;
	int found;
};

static int
find_one(const struct sv_decision_commit *d, void *arg)
{
	struct find *f = arg;

	if (strcmp(d->id, f->id) != 0)
		return 0;
	sv_decision_commit_copy(f->out, d);
	f->found = 1;
	return 1;
}

int
sv_audit_find_decision(struct sv_audit *a, const char *slug, const char *id,
    size_t max, struct sv_decision_commit *out, struct sv_err *e)
{
	struct find f = { id, out, 0 };

	memset(out, 0, sizeof *out);
	if (sv_audit_decisions(a, slug, max, find_one, &f, e) == -1)
		return -1;
	return f.found;
}

/* The blob id of slug/rel in a commit's tree; zero when absent. */
static int
blob_at(git_repository *repo, const git_oid *commit, const char *path,
    git_oid *out)
{
	git_commit *c = NULL;
	git_tree *t = NULL;
	git_tree_entry *ent = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = git_commit_lookup(&c, repo, commit)) < 0 ||
	    (rc = git_commit_tree(&t, c)) < 0)
		goto out;
	rc = git_tree_entry_bypath(&ent, t, path);
	if (rc == GIT_ENOTFOUND)
		rc = 0;
	else if (rc == 0)
		git_oid_cpy(out, git_tree_entry_id(ent));
out:
	git_tree_entry_free(ent);
	git_tree_free(t);
	git_commit_free(c);
	return rc;
}

int
sv_audit_commit_changes(struct sv_audit *a,
    const struct sv_decision_commit *d, unsigned *changed, struct sv_err *e)
{
	git_repository *repo = a->repo;
	const char *files[16];
	size_t n = sv_config_files(files, 16);
	git_oid c, p, before, after;
	int rc;

	*changed = 0;
	if (oid_of(a, d->commit, &c, e) == -1)
		return -1;
	if (d->parent[0] != '\0' && oid_of(a, d->parent, &p, e) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char *path = sv_xasprintf("%s/%s", d->slug, files[i]);

		rc = blob_at(repo, &c, path, &after);
		if (rc == 0 && d->parent[0] != '\0')
			rc = blob_at(repo, &p, path, &before);
		else
			memset(&before, 0, sizeof before);
		free(path);
		if (rc < 0)
			return git_err(e, rc, "read the trees of a decision", a);
		if (!git_oid_equal(&before, &after))
			*changed |= 1u << i;
	}
	return 0;
}
