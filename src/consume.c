/*
 * consume.c: turning operators' responses into commits and answers.
 *
 * The order of the steps:
 *   1. read responses/new/ID and resolve it against proposal ID;
 *   2. commit the decision to the audit repository, unless its record is
 *      already on main (so a re-run never commits twice): the objects,
 *      a flush of them and of the response, the move of the branch;
 *   3. answer (the caller's callback);
 *   4. flush again: the move of the branch (its ref file) is on disk;
 *   5. rename responses/new/ID to responses/cur/ID:2,S;
 *   6. flag the proposal R (decided).
 * Responses are taken in batches: every response of a batch is read,
 * then all are committed as one chain of commits (one move of the
 * branch), then each is answered, then one flush, then each is archived
 * and flagged.
 *
 * Why the answer may come before the second flush: a decision counts
 * once its commit is on main, and it is, for every reader, from the
 * instant the branch moves.  What a power cut could still undo is the
 * move, and the response that the decision came from is then still in
 * responses/new, on disk: the first flush syncs each response and
 * responses/new by name with the commit's objects (one the operator
 * moved in by hand was never synced), and the response leaves new/ only
 * after the second flush.  So the next start
 * commits the same decision again; it is never lost, never doubled.
 * Steps 5 and 6 need not be durable, so the spool's directories are not
 * synced after them (the kernel writes them back in its own
 * time): a crash before 5 leaves the response in new/, and the next
 * run finds its commit and goes on; a crash between 5 and 6 leaves a
 * response in cur/ and a proposal without R, and sv_consume_all's
 * recovery adds the R.  Either rename reaches the disk only after the
 * second flush made the commit durable, which is the one order that
 * matters: never an archived response whose commit could be lost.
 * Nothing is ever
 * deleted, and a response that can't be used is moved to responses/bad/
 * with its reason, leaving the proposal pending.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

void
sv_decision_free(struct sv_decision *d)
{
	if (d == NULL)
		return;
	free(d->notes);
	free(d->final_file);
	free(d->error);
	d->notes = d->final_file = d->error = NULL;
	d->late = 0;
	sv_decision_commit_free(&d->dc);
}

/* Errors worth a retry later, as opposed to a response we can't use. */
static int
transient(int errnum)
{
	switch (errnum) {
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case EIO:
	case EINTR:
	case EAGAIN:
	case ENOSPC:
	case EDQUOT:
		return 1;
	default:
		return 0;
	}
}

/*
 * Who decided, for a response that does not say: the file's owner.  The
 * last answer is kept (an operator decides many in a row; getpwuid reads
 * /etc/passwd each time), for a minute, so a renamed account shows soon.
 */
static char *
owner_name(uid_t uid)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static char last[256];
	static uid_t last_uid;
	static time_t last_at;
	struct passwd pw, *res = NULL;
	char buf[4096], *name;
	time_t now = time(NULL);

	pthread_mutex_lock(&lock);
	if (last[0] != '\0' && last_uid == uid && now - last_at < 60) {
		name = sv_xstrdup(last);
		pthread_mutex_unlock(&lock);
		return name;
	}
	pthread_mutex_unlock(&lock);
	if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL)
		name = sv_xstrdup(pw.pw_name);
	else
		name = sv_xasprintf("uid %ld", (long)uid);
	pthread_mutex_lock(&lock);
	snprintf(last, sizeof last, "%s", name);
	last_uid = uid;
	last_at = now;
	pthread_mutex_unlock(&lock);
	return name;
}

/* Move the response aside with `reason`; d records the refusal. */
static int
refuse(struct sv_spool *s, const char *name, struct sv_decision *d,
    struct sv_err *e, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
refuse(struct sv_spool *s, const char *name, struct sv_decision *d,
    struct sv_err *e, const char *fmt, ...)
{
	char newname[256], reason[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	d->status = SV_NONE;
	free(d->error);
	d->error = NULL;
	if (sv_refuse_response(s, name, reason, newname, sizeof newname,
	    e) == -1)
		return -1;	/* still in new/: tried again next time */
	d->error = sv_xstrdup(reason);
	return 0;
}

/* Has an earlier response for `id` been archived? */
static int
archived(struct sv_spool *s, const char *id)
{
	char name[SV_ID_MAX + 8];
	struct stat st;

	snprintf(name, sizeof name, "%s:2,S", id);
	return fstatat(s->rcur, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* responses/new/ID -> responses/cur/ID:2,S, never replacing; not synced. */
static int
archive(struct sv_spool *s, const char *id, struct sv_err *e)
{
	char to[SV_ID_MAX + 8];

	snprintf(to, sizeof to, "%s:2,S", id);
	if (sv_rename_noreplace(s->rnew, id, s->rcur, to) == -1) {
		if (errno == ENOENT && archived(s, id))
			return 0;	/* another consumer archived it */
		return sv_errf(e, errno, "can't rename '%s/responses/new/%s' to "
		    "'%s/responses/cur/%s'", s->path, id, s->path, to);
	}
	return 0;
}

/*
 * Find and read proposal `id`.  1 when read, 0 when there is none, -1 on
 * error (why says it; why->errnum tells a transient error).  A proposal
 * moves while we look (new/ -> cur/ when an operator views it): look again.
 */
static int
read_proposal(struct sv_spool *s, const char *id, struct sv_entry *en,
    struct sv_proposal *p, struct sv_err *why)
{
	char *path;
	int found, rc = -1;

	for (int attempt = 0; attempt < 3; attempt++) {
		if ((found = sv_find_proposal(s, id, en, why)) <= 0)
			return found;
		path = sv_xasprintf("%s/proposals/%s/%s", s->path,
		    en->where == SV_NEW ? "new" : "cur", en->name);
		rc = sv_proposal_read(en->where == SV_NEW ? s->pnew : s->pcur,
		    en->name, path, p, why);
		free(path);
		if (rc == 0)
			return 1;
		sv_proposal_free(p);
		if (why->errnum != ENOENT)
			return -1;
	}
	return rc;
}

/* One response of a batch on its way to a commit. */
enum { SLOT_GONE, SLOT_REFUSED, SLOT_ERROR, SLOT_READY };
struct slot {
	int state;
	struct sv_proposal p;
	struct sv_response r;
	struct sv_decision d;
	struct sv_err err;	/* SLOT_ERROR: why, to retry later */
};

/*
 * Steps 1 and the checks: read responses/new/NAME and resolve it against
 * its proposal.  The slot ends READY, REFUSED (moved aside, d.error says
 * why), GONE (consumed by someone else meanwhile) or ERROR (err says why;
 * the response stays in new/ for a later try).
 */
static void
prepare(struct sv_spool *s, const char *name, struct slot *sl)
{
	struct sv_proposal *p = &sl->p;
	struct sv_response *r = &sl->r;
	struct sv_decision *d = &sl->d;
	struct sv_err *e = &sl->err, why;
	struct sv_entry en;
	struct stat st, qst;
	const struct sv_tool *t;
	char *path, *owner = NULL;
	int rc = -1, found;

	memset(sl, 0, sizeof *sl);
	snprintf(d->id, sizeof d->id, "%s", name);
	path = sv_xasprintf("%s/responses/new/%s", s->path, name);

	if (sv_valid_id(name, &why) == -1) {
		rc = refuse(s, name, d, e, "%s: not named after a proposal: %s",
		    path, why.msg);
		goto out;
	}
	if (fstatat(s->rnew, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT) {
			rc = 0;		/* consumed by someone else meanwhile */
			goto out;
		}
		sv_errf(e, errno, "can't stat '%s'", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = refuse(s, name, d, e, "%s: not a regular file", path);
		goto out;
	}
	/* Only the spool's owner (or root) decides for this bottle. */
	if (fstat(s->dirfd, &qst) == -1) {
		sv_errf(e, errno, "can't stat '%s'", s->path);
		goto out;
	}
	if (st.st_uid != qst.st_uid && st.st_uid != 0) {
		rc = refuse(s, name, d, e, "%s: owned by uid %ld, not by the "
		    "queue's owner (uid %ld) or root", path, (long)st.st_uid,
		    (long)qst.st_uid);
		goto out;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		rc = refuse(s, name, d, e, "%s: writable by group or others "
		    "(mode %04o)", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (sv_response_read(s->rnew, name, path, r, &why) == -1) {
		if (why.errnum == ENOENT)
			rc = 0;
		else if (transient(why.errnum))
			*e = why;
		else
			rc = refuse(s, name, d, e, "%s", why.msg);
		goto out;
	}

	found = read_proposal(s, name, &en, p, &why);
	if (found == -1 && transient(why.errnum)) {
		*e = why;
		goto out;
	}
	if (found == -1) {
		rc = refuse(s, name, d, e, "%s: can't use its proposal: %s",
		    path, why.msg);
		goto out;
	}
	if (found == 0) {
		rc = refuse(s, name, d, e, "%s: there is no proposal '%s' in "
		    "'%s'", path, name, s->path);
		goto out;
	}
	if (strchr(en.flags, 'R') != NULL || archived(s, name)) {
		rc = refuse(s, name, d, e, "%s: proposal '%s' was already "
		    "decided; the first decision stands", path, name);
		d->late = d->error != NULL;
		goto out;
	}
	if (strcmp(p->id, name) != 0 || strcmp(p->bottle_slug, s->slug) != 0) {
		rc = refuse(s, name, d, e, "%s: its proposal says it is '%s' of "
		    "bottle '%s', not '%s' of '%s'", path, p->id, p->bottle_slug,
		    name, s->slug);
		goto out;
	}
	t = sv_tool_find(p->tool);
	if (t == NULL || !t->proposes) {
		rc = refuse(s, name, d, e, "%s: its proposal names an unknown "
		    "tool '%s'", path, p->tool);
		goto out;
	}
	owner = owner_name(st.st_uid);
	if (sv_response_resolve(r, p, owner, &st.st_mtim, path, &why) == -1) {
		rc = refuse(s, name, d, e, "%s", why.msg);
		goto out;
	}
	/* What gets applied must pass the tool's check, whoever wrote it. */
	if (r->status != SV_REJECTED &&
	    sv_payload_check(p->tool, r->final_file, &why) == -1) {
		rc = refuse(s, name, d, e, "%s: final file refused: %s", path,
		    why.msg);
		goto out;
	}
	free(owner);
	free(path);
	sl->state = SLOT_READY;
	return;
out:
	free(owner);
	free(path);
	if (rc == -1)
		sl->state = SLOT_ERROR;
	else
		sl->state = d->error != NULL ? SLOT_REFUSED : SLOT_GONE;
}

static void
slot_free(struct slot *sl)
{
	sv_proposal_free(&sl->p);
	sv_response_free(&sl->r);
	sv_decision_free(&sl->d);
}

/* The first error of a batch is the one reported; the rest are counted. */
static void
note_error(struct sv_err *first, size_t *failed, const struct sv_err *e)
{
	if ((*failed)++ == 0)
		*first = *e;
}

/* Steps 2 to 6 for the READY slots of a batch; the rest are reported. */
static int
consume_slots(struct sv_spool *s, struct sv_audit *a, struct slot *v,
    size_t n, void (*cb)(const struct sv_decision *, void *), void *arg,
    struct sv_err *e)
{
	struct sv_audit_decision *dv = sv_xmalloc((n ? n : 1) * sizeof *dv);
	size_t *of = sv_xmalloc((n ? n : 1) * sizeof *of);
	size_t i, k = 0, failed = 0, landed = 0;
	struct sv_err err;
	int count = 0, batch_failed = 0;

	for (i = 0; i < n; i++) {
		if (v[i].state == SLOT_ERROR)
			note_error(e, &failed, &v[i].err);
		if (v[i].state == SLOT_REFUSED) {
			count++;
			if (cb != NULL)
				cb(&v[i].d, arg);
		}
		if (v[i].state != SLOT_READY)
			continue;
		memset(&dv[k], 0, sizeof dv[k]);
		dv[k].p = &v[i].p;
		dv[k].r = &v[i].r;
		of[k++] = i;
	}
	/*
	 * Each response on disk before the branch moves, with the commit's
	 * objects: one the operator moved in by hand was never synced, and
	 * a move that a power cut undoes must find its response in new/.
	 */
	for (size_t j = 0; j < k; j++) {
		char *label = sv_xasprintf("%s/responses/new/%s", s->path,
		    v[of[j]].d.id);

		sv_durable_at(sv_audit_durable(a), s->rnew, v[of[j]].d.id,
		    label);
		free(label);
	}
	if (k > 0) {
		char *label = sv_xasprintf("%s/responses/new", s->path);

		sv_durable_fd(sv_audit_durable(a), s->rnew, label);
		free(label);
	}
	/* When the repository failed, each dv has failed set: say it once. */
	if (k > 0 && (batch_failed = sv_audit_commit_decisions(a, dv, k,
	    &err) == -1))
		note_error(e, &failed, &err);
	for (size_t j = 0; j < k; j++)
		if (dv[j].failed && !batch_failed)
			note_error(e, &failed, &dv[j].err);
		else if (!dv[j].failed)
			landed++;
	/* On main: answer. */
	for (size_t j = 0; j < k; j++) {
		struct slot *sl = &v[of[j]];

		if (dv[j].failed)
			continue;
		sl->d.status = sl->r.status;
		sl->d.notes = sv_xstrdup(sl->r.notes ? sl->r.notes : "");
		sl->d.final_file = sl->r.final_file ?
		    sv_xstrdup(sl->r.final_file) : NULL;
		sl->d.dc = dv[j].dc;	/* now the slot's to free */
		count++;
		if (cb != NULL)
			cb(&sl->d, arg);
	}
	/* On disk: archive.  Until then a response stays in new/, and a
	 * failed flush leaves it there for the next try. */
	if (landed > 0 && sv_audit_sync(a, &err) == -1) {
		note_error(e, &failed, &err);
		landed = 0;
	}
	for (size_t j = 0; j < k && landed > 0; j++) {
		struct slot *sl = &v[of[j]];

		if (dv[j].failed)
			continue;
		if (archive(s, sl->d.id, &err) == -1) {
			note_error(e, &failed, &err);
			continue;
		}
		/* The decision stands without the R: recovery adds it. */
		if (sv_add_flags_nosync(s, sl->d.id, "RS", &err) == -1)
			note_error(e, &failed, &err);
	}
	free(dv);
	free(of);
	if (failed > 1) {
		size_t len = strlen(e->msg);
		snprintf(e->msg + len, sizeof e->msg - len,
		    " (and %zu more responses failed)", failed - 1);
	}
	return failed ? -1 : count;
}

int
sv_consume_batch(struct sv_spool *s, struct sv_audit *a,
    char *const *names, size_t n,
    void (*cb)(const struct sv_decision *, void *), void *arg,
    struct sv_err *e)
{
	struct slot *v = sv_xmalloc((n ? n : 1) * sizeof *v);
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		prepare(s, names[i], &v[i]);
	rc = consume_slots(s, a, v, n, cb, arg, e);
	for (i = 0; i < n; i++)
		slot_free(&v[i]);
	free(v);
	return rc;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a spool directory (not dot files), sorted: oldest first. */
static int
list_names(int dirfd, const char *label, char ***out, size_t *n,
    struct sv_err *e)
{
	struct dirent *de;
	size_t cap = 0;
	char **v = NULL;
	DIR *dir;
	int fd;

	*out = NULL;
	*n = 0;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		sv_errf(e, errno, "can't read '%s'", label);
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == cap)
			v = sv_xrealloc(v, (cap = cap ? 2 * cap : 64) * sizeof *v);
		v[(*n)++] = sv_xstrdup(de->d_name);
	}
	closedir(dir);
	if (*n > 1)
		qsort(v, *n, sizeof *v, cmp_name);
	*out = v;
	return 0;
}

static void
names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * A response archived before a crash whose proposal did not get its R:
 * add the R.  Two directory reads (the proposals without R, then, if
 * there are any, the archived responses), not a look-up per archived
 * response: a restart must not cost as much as the history.
 */
static int
recover(struct sv_spool *s, struct sv_err *e)
{
	char id[SV_ID_MAX + 1], flags[16], *label, **v, **ids;
	struct sv_entry *u;
	size_t nu, n, k = 0, i;
	int rc = 0;

	if (sv_list_unreplied(s, &u, &nu, e) == -1)
		return -1;
	if (nu == 0)
		return 0;
	label = sv_xasprintf("%s/responses/cur", s->path);
	if (list_names(s->rcur, label, &v, &n, e) == -1) {
		free(label);
		sv_entries_free(u);
		return -1;
	}
	free(label);
	ids = sv_xmalloc((n ? n : 1) * sizeof *ids);
	for (i = 0; i < n; i++)
		if (sv_archived_name(v[i]) &&
		    sv_parse_name(v[i], id, sizeof id, flags, sizeof flags) == 0)
			ids[k++] = sv_xstrdup(id);
	if (k > 1)
		qsort(ids, k, sizeof *ids, cmp_name);
	for (i = 0; i < nu && rc == 0; i++) {
		const char *key = u[i].id;

		if (k > 0 && bsearch(&key, ids, k, sizeof *ids, cmp_name) != NULL)
			rc = sv_add_flags(s, u[i].id, "RS", e);
	}
	names_free(ids, k);
	names_free(v, n);
	sv_entries_free(u);
	return rc;
}

int
sv_consume_all(struct sv_spool *s, struct sv_audit *a,
    void (*cb)(const struct sv_decision *, void *), void *arg,
    struct sv_err *e)
{
	struct sv_err err;
	char **v, *label;
	size_t n, i, m, failed = 0;
	int count = 0, rc;

	if (recover(s, e) == -1)
		return -1;
	label = sv_xasprintf("%s/responses/new", s->path);
	if (list_names(s->rnew, label, &v, &n, e) == -1) {
		free(label);
		return -1;
	}
	free(label);
	/* One response that can't be committed does not hold up the rest. */
	for (i = 0; i < n; i += m) {
		m = n - i < SV_CONSUME_BATCH ? n - i : SV_CONSUME_BATCH;
		rc = sv_consume_batch(s, a, v + i, m, cb, arg, &err);
		if (rc == -1 && failed++ == 0)
			*e = err;
		else if (rc > 0)
			count += rc;
	}
	names_free(v, n);
	return failed ? -1 : count;
}
