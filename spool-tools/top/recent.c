/*
 * recent.c: the recent decisions supervise-top shows on its second tab,
 * and whether each took effect.
 *
 * Read from the audit repository's main (sv_audit_decisions, newest
 * first) and the notes the apply hook's outcomes are under
 * (sv_cli_outcome), as supervise-log reads them.  The refs are watched
 * with inotify (sv_cli_watch_audit): the list is read again when main or
 * the notes move, at most a few times a second, and only while it is on
 * screen.  A fresh handle on the repository each time, because another
 * process wrote what is new.
 */
#include <sys/inotify.h>
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "top.h"

void
top_recent_open(struct top_recent *r, char **slugs, size_t nslugs)
{
	memset(r, 0, sizeof *r);
	r->slugs = slugs;
	r->nslugs = nslugs;
	r->wd[0] = r->wd[1] = r->wd[2] = -1;
	r->dirty = 1;
	if ((r->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) >= 0)
		sv_cli_watch_audit(r->ifd, r->wd);
}

static void
rows_free(struct top_recent *r)
{
	for (size_t i = 0; i < r->n; i++) {
		sv_decision_commit_free(&r->rows[i].d);
		free(r->rows[i].outcome);
	}
	free(r->rows);
	r->rows = NULL;
	r->n = 0;
}

void
top_recent_close(struct top_recent *r)
{
	rows_free(r);
	free(r->error);
	if (r->ifd >= 0)
		close(r->ifd);
	memset(r, 0, sizeof *r);
	r->ifd = -1;
}

static int
audit_event(const struct inotify_event *ev, void *arg)
{
	return sv_cli_audit_event(ev, ((struct top_recent *)arg)->wd);
}

int
top_recent_events(struct top_recent *r)
{
	struct sv_err e;
	int look = sv_cli_inotify_each(r->ifd, audit_event, r, &e);

	if (look < 0 && !r->error)
		r->error = sv_xstrdup(e.msg);
	if (look != 0) {
		sv_cli_watch_audit(r->ifd, r->wd);
		r->dirty = 1;
	}
	return look != 0;
}

struct gather {
	struct top_recent *r;
	struct sv_audit *a;
	size_t cap;
};

static int
gather_one(const struct sv_decision_commit *d, void *arg)
{
	struct gather *g = arg;
	struct top_recent *r = g->r;
	struct top_decision *t;
	struct sv_err e;
	int followed = r->nslugs == 0;

	for (size_t i = 0; i < r->nslugs && !followed; i++)
		followed = strcmp(r->slugs[i], d->slug) == 0;
	if (!followed)
		return 0;
	if (r->n == g->cap)
		r->rows = sv_xrealloc(r->rows,
		    (g->cap = g->cap ? 2 * g->cap : 64) * sizeof *r->rows);
	t = &r->rows[r->n++];
	memset(t, 0, sizeof *t);
	sv_decision_commit_copy(&t->d, d);
	if (sv_cli_outcome(g->a, d, &t->outcome, &t->noted, &e) < 0 &&
	    !r->error)
		r->error = sv_xstrdup(e.msg);
	return r->n >= TOP_RECENT_MAX;
}

void
top_recent_load(struct top_recent *r)
{
	struct gather g = { r, NULL, 0 };
	struct sv_err e;
	struct stat st;
	char *dir = sv_audit_dir();
	int exists = stat(dir, &st) == 0;

	free(dir);
	rows_free(r);
	free(r->error);
	r->error = NULL;
	r->dirty = 0;
	/* No repository: no decision yet, and nothing to create. */
	if (!exists)
		return;
	if (sv_audit_open(&g.a, NULL, &e) < 0) {
		r->error = sv_xstrdup(e.msg);
		return;
	}
	if (sv_audit_decisions(g.a, NULL, (size_t)-1, gather_one, &g, &e) < 0)
		r->error = sv_xstrdup(e.msg);
	sv_audit_close(g.a);
}

char *
top_recent_doc(const struct top_decision *t)
{
	struct sv_apply_note n;
	struct sv_audit *a;
	struct sv_err e;
	char when[32], *note = NULL, *enote = NULL, *doc, *f[6];
	const char *raw[6] = { t->d.id, t->d.slug, t->d.tool, t->d.status,
	    t->d.who ? t->d.who : "", t->d.subject };
	time_t w = (time_t)t->d.when;
	struct tm tm;
	int rc = 0;

	gmtime_r(&w, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (t->noted && sv_audit_open(&a, NULL, &e) == 0) {
		rc = sv_apply_note_read(a, t->d.commit, &n, &e);
		if (rc == 1) {
			note = sv_apply_note_text(&n);
			sv_apply_note_free(&n);
		}
		sv_audit_close(a);
	}
	if (rc < 0)
		note = sv_xasprintf("can't read the note: %s", e.msg);
	/* The note holds the hook's output: escaped like agent text. */
	if (note)
		enote = sv_escape(note, strlen(note), SV_ESC_NL);
	for (int i = 0; i < 6; i++)
		f[i] = sv_escape(raw[i], strlen(raw[i]), 0);
	doc = sv_xasprintf("Id: %s\nBottle: %s\nTool: %s\nStatus: %s\n"
	    "Decided by: %s\nCommitted: %s\nCommit: %s\nSubject: %s\n"
	    "Outcome: %s\n\n%s%s", f[0], f[1], f[2], f[3], f[4], when,
	    t->d.commit, f[5], t->outcome,
	    enote ? "Note (refs/notes/apply):\n" : "",
	    enote ? enote : (strcmp(t->outcome, "-") == 0 ?
	    "A rejection changes nothing: there is nothing to apply.\n" :
	    "No outcome is recorded for this decision (yet).\n"));
	for (int i = 0; i < 6; i++)
		free(f[i]);
	free(note);
	free(enote);
	return doc;
}
