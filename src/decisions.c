/*
 * decisions.c: decisions as they land in responses/new, consumed in
 * batches (one chain of commits and two flushes for all of them), and
 * answered: a rejection at once, an approval once the apply hook has
 * made it take effect (hook.c).  Also what inotify may miss (rescan),
 * the look after a call attaches (recheck: a decision that landed
 * before), the pack maintenance that waits until nobody does, and
 * --expire, whose rejections are consumed like the operator's.
 *
 * Threads: all of it runs on the spool thread, which alone touches the
 * spool and the audit repository; the table of waiting calls is reached
 * through calls.c under the mutex.  The full account is in sidecar.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sidecar.h"

/* --- answering decisions (spool thread) ---------------------------------- */

static void
log_decision(const struct sv_decision *d, int answered)
{
	if (sc.cfg.drain)
		return;		/* a drain prints its decisions on stdout */
	if (d->status == SV_APPROVED || d->status == SV_MODIFIED)
		return;		/* said once applied: sd_on_applied */
	if (d->status == SV_NONE && d->error == NULL)
		return;		/* consumed elsewhere meanwhile */
	if (d->status == SV_NONE) {
		char *why = sv_escape(d->error, strlen(d->error), 0);

		if (d->late)
			sv_warnx("refused a second response to %s (moved to "
			    "responses/bad): the proposal was decided "
			    "already, and the first decision stands", d->id);
		else
			sv_warnx("refused the response to %s, the proposal "
			    "stays pending: %s", d->id, why);
		free(why);
		return;
	}
	sv_warnx("%s %s; answered %d waiting call%s", d->id,
	    sv_status_name(d->status), answered, answered == 1 ? "" : "s");
}

/* Bring the live directory up to date with main. */
void
sd_publish_live(void)
{
	struct sv_err e;

	if (sv_live_publish(sc.audit, sc.cfg.slug, sc.cfg.state_dir, NULL,
	    &e) == -1)
		sv_warn_err(&e);
}

/*
 * sv_consume_batch's callback: a decision has landed, or was refused.
 * An approval is answered once it has been applied (sd_on_applied); a
 * rejection at once.
 */
void
sd_on_decision(const struct sv_decision *d, void *arg)
{
	int n = 0;

	(void)arg;
	if (d->status == SV_APPROVED || d->status == SV_MODIFIED) {
		if (d->dc.commit[0] != '\0')
			sv_applier_add_commit(sc.applier, &d->dc);
		else
			sv_applier_add(sc.applier, d->id, 0);
		return;
	}
	sv_applier_unmark(sc.applier, d->id);
	if (d->status != SV_NONE)
		n = sd_answer_decision(d->id, d->status, NULL, d->notes,
		    d->final_file);
	log_decision(d, n);
}

/*
 * The applier's callback: an approval has taken effect, or not.  After a
 * hook, called on the applier's own thread (hook.c): what it touches is
 * under the lock (sd_answer_decision) or read-only.
 */
void
sd_on_applied(const struct sv_apply_result *res, void *arg)
{
	const struct sv_apply_note *note = res->note;
	char *line, *esc;
	int n;

	(void)arg;
	line = note->applied ? sv_xstrdup("applied: yes") :
	    sv_xasprintf("applied: no: %s", note->reason);
	n = sd_answer_decision(res->id, res->status, line, res->notes,
	    res->final_file);
	/* A drain prints its decisions on stdout; it says only failures. */
	if (sc.cfg.drain && (note->applied ||
	    strcmp(note->reason, "no hook configured") == 0)) {
		free(line);
		return;
	}
	esc = sv_escape(line, strlen(line), 0);
	sv_warnx("%s %s, %s; answered %d waiting call%s", res->id,
	    sv_status_name(res->status), esc, n, n == 1 ? "" : "s");
	free(esc);
	free(line);
}

/*
 * Answered: now keep the repository's packs few (sv_audit_maintain: a
 * pack merged off the lock since the last look is put in place, and the
 * next merge started; repack.c).  That is work for when nobody waits, so
 * while an apply hook runs, it waits until the hook's caller has its
 * answer.
 */
void
sd_maintain(void)
{
	struct sv_err e;

	if (!sv_applier_idle(sc.applier)) {
		sc.maintain_due = 1;
		return;
	}
	sc.maintain_due = 0;
	if (sv_audit_maintain(sc.audit, &e) == -1)
		sv_warn_err(&e);
}

void
sd_batch_flush(struct batch *b)
{
	struct sv_err e;

	if (b->n == 0)
		return;
	/* Before anything commits: what a crash must not let us forget. */
	if (sv_applier_mark(sc.applier, b->v, b->n,
	    sv_audit_durable(sc.audit), &e) == -1)
		sv_warnx("can't consume from 'responses/new' (will retry): %s",
		    e.msg);
	else if (sv_consume_batch(&sc.spool, sc.audit, b->v, b->n,
	    sd_on_decision, NULL, &e) == -1 && e.errnum != ENOENT)
		sv_warnx("can't consume from 'responses/new' (will retry): %s",
		    e.msg);
	/*
	 * Committed, and answered unless a hook runs: for a bottle with
	 * rules, the files the next rule's decision fills
	 * (sv_spool_spares), before the notes, so that a call sent once
	 * this batch is done finds them.
	 */
	if (sc.rules.pol.n > 0 && sv_spool_spares(&sc.spool, &e) == -1)
		sv_warn_err(&e);
	if (sv_applier_flush(sc.applier, &e) == -1)
		sv_warn_err(&e);
	/* A quick hook may have finished meanwhile: answer now. */
	sv_applier_events(sc.applier);
	sd_maintain();
	/*
	 * A big batch (a bulk approve) grew the heap by megabytes that the
	 * allocator keeps; give them back, or RSS stays at its high-water
	 * mark after a drain.
	 */
	if (b->n >= SV_CONSUME_BATCH / 4)
		malloc_trim(0);
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i]);
	b->n = 0;
}

void
sd_batch_add(struct batch *b, const char *name)
{
	if (name[0] == '.')
		return;		/* not a delivery: editors' and tools' dot files */
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->v[i], name) == 0)
			return;	/* reported twice (closed, then moved) */
	if (b->n == SV_CONSUME_BATCH)
		sd_batch_flush(b);
	b->v[b->n++] = sv_xstrdup(name);
}

/* Consume responses/new/NAME on its own. */
static void
consume_name(const char *name)
{
	struct batch b;

	b.n = 0;
	sd_batch_add(&b, name);
	sd_batch_flush(&b);
}

/* Responses that inotify did not report (other file systems, overflow). */
void
sd_rescan(int min_age)
{
	struct dirent *de;
	struct stat st;
	struct batch b;
	DIR *dir;
	int fd;
	time_t now = time(NULL);

	fd = dup(sc.spool.rnew);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		sv_warnx("can't scan 'responses/new': %s", strerror(errno));
		return;
	}
	rewinddir(dir);
	b.n = 0;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* A file written in place may still be growing; inotify
		 * reports it when it is closed. */
		if (min_age && fstatat(sc.spool.rnew, de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && now - st.st_mtime < min_age)
			continue;
		sd_batch_add(&b, de->d_name);
	}
	closedir(dir);
	sd_batch_flush(&b);
}

/* Answer the waiters of `id` from its committed record and its note. */
static void
answer_recorded(const char *id)
{
	struct sv_decision_commit dc;
	struct sv_apply_note note;
	struct sv_response resp;
	struct sv_err e;
	char *msg, *line = NULL;

	/* Being applied: answered when that is done. */
	if (sv_applier_busy(sc.applier, id))
		return;
	if (sv_decision_read(sc.audit, sc.cfg.slug, id, NULL, &resp,
	    &e) == -1) {
		msg = sv_xasprintf("can't read the decision on %s: %s", id,
		    e.msg);
		sv_warnx("%s", msg);
		sd_answer_error(id, msg);
		free(msg);
		sv_response_free(&resp);
		return;
	}
	sv_apply_note_init(&note);
	if (resp.status != SV_REJECTED) {
		if (sv_audit_find_decision(sc.audit, sc.cfg.slug, id, 100000,
		    &dc, &e) == 1 &&
		    sv_apply_note_read(sc.audit, dc.commit, &note, &e) == 1)
			line = sv_xstrdup(note.line);
		else
			line = sv_xstrdup("applied: no: no outcome is recorded");
		sv_decision_commit_free(&dc);
		sv_apply_note_free(&note);
	}
	sd_answer_decision(id, resp.status, line, resp.notes, resp.final_file);
	free(line);
	sv_response_free(&resp);
}

/*
 * After attaching a call to `id`: a decision that landed before we
 * subscribed is consumed now (added to `b` when given, for the caller to
 * flush with others), or read back from the audit repository.
 */
void
sd_recheck_into(const char *id, struct batch *b)
{
	char name[SV_ID_MAX + 8];
	struct sv_err e;
	struct stat st;

	if (fstatat(sc.spool.rnew, id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (b != NULL)
			sd_batch_add(b, id);
		else
			consume_name(id);
		return;
	}
	/*
	 * Committed by another consumer (supervised --drain)?  A consumer
	 * archives the response as responses/cur/ID:2,S, then flags the
	 * proposal R, which moves it out of proposals/new: while neither has
	 * happened nothing was committed, and the look in the repository (a
	 * walk of its trees) is saved.
	 */
	snprintf(name, sizeof name, "%s:2,S", id);
	if (fstatat(sc.spool.pnew, id, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstatat(sc.spool.rcur, name, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT)
		return;
	if (sv_audit_has_record(sc.audit, sc.cfg.slug, id, &e) == 1)
		answer_recorded(id);
}

void
sd_recheck(const char *id)
{
	sd_recheck_into(id, NULL);
}

/*
 * --expire: a proposal pending for longer is rejected, as a response
 * like the operator's (decide.c) that is committed and answered like any
 * other.  Its age counts from its arrival, so time with no sidecar
 * running counts too.  At most one batch a turn.
 */
void
sd_expire_due(void)
{
	struct sv_response resp[SV_CONSUME_BATCH];
	const struct sv_response *v[SV_CONSUME_BATCH];
	struct sv_err errs[SV_CONSUME_BATCH];
	int ok[SV_CONSUME_BATCH];
	struct pending *p;
	struct batch b;
	size_t k = 0, i;
	time_t now = time(NULL);

	if (sc.cfg.expire <= 0)
		return;
	sd_lock();
	for (i = 0; i < NBUCKETS && k < SV_CONSUME_BATCH; i++)
		for (p = sc.by_id[i]; p != NULL && k < SV_CONSUME_BATCH;
		    p = p->id_next) {
			if (p->expires == 0 || p->expiring || now < p->expires)
				continue;
			p->expiring = 1;
			sv_expiry_response(p->id, sc.cfg.expire, &resp[k]);
			v[k] = &resp[k];
			k++;
		}
	sd_unlock();
	if (k == 0)
		return;
	sv_respond_many(&sc.spool, v, k, ok, errs);
	b.n = 0;
	for (i = 0; i < k; i++) {
		if (ok[i]) {
			sv_warnx("proposal %s %s", resp[i].proposal_id,
			    resp[i].notes);
		} else {
			/* Decided meanwhile: that decision is consumed as
			 * usual.  Else try again next turn. */
			if (sv_decided(&sc.spool, resp[i].proposal_id,
			    &errs[i]) != 1) {
				sv_warnx("can't expire proposal %s: %s",
				    resp[i].proposal_id, errs[i].msg);
				sd_lock();
				if ((p = sd_pending_by_id(resp[i].proposal_id)) !=
				    NULL)
					p->expiring = 0;
				sd_unlock();
			}
		}
		sd_batch_add(&b, resp[i].proposal_id);
		sv_response_free(&resp[i]);
	}
	sd_batch_flush(&b);
}
