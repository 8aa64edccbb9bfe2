/*
 * jobs.c: the job queue, and what the spool thread does for each call
 * libmicrohttpd's thread hands it: file proposals (together, as they came;
 * an identical call still pending is attached to instead; the bottle's
 * policy may decide at once), proposal-status, list-egress-routes, and
 * notifications/cancelled.
 *
 * Threads: job_push runs on libmicrohttpd's thread under the mutex;
 * everything else on the spool thread, which takes the mutex only around
 * the table of waiting calls, never around disk or git work.  The full
 * account is in sidecar.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sidecar.h"

#define RPC_CANCELLED	-32800		/* the request was cancelled */

/* --- jobs (spool thread) -------------------------------------------------- */

/*
 * Filing proposals.  Calls that arrive together are filed together
 * (sv_propose_many: two flushes for all of them), in three steps: begin
 * (an identical call still pending is attached to instead; the config's
 * hash), the batch, end (log, remember, attach the caller).
 */
#define FILE_BATCH 64

struct filing {
	struct job *job;
	char *key;
	size_t keylen;
	struct sv_proposal prop;
	char hash[41];
	int follows;		/* an earlier filing of the batch, same call */
	int ruled;		/* filed by decide_by_rule: 1 decided, 2 not */
	int ok;
	struct sv_err err;
};

/*
 * Would one more proposal pass --max-pending?  Counts those pending and
 * those of the batch about to be filed; an identical call attaches and
 * is not counted.
 */
static int
over_limit(const struct filing *batch, size_t nbatch)
{
	size_t n;

	sd_lock();
	n = sc.npending;
	sd_unlock();
	for (size_t k = 0; k < nbatch; k++)
		if (batch[k].follows == -1)
			n++;
	return (long)n >= sc.cfg.max_pending;
}

/* What became of an identical call: attached, or its caller had left. */
static void
say_attached(const char *id, int attached)
{
	if (attached)
		sv_warnx("identical call attached to pending proposal %s", id);
	else
		sv_warnx("the caller of a call identical to pending proposal "
		    "%s left before it was attached", id);
}

/* 1: f is to be filed (or follows one that is); 0: the call is handled. */
static int
propose_begin(struct request *r, struct filing *f, struct filing *batch,
    size_t nbatch)
{
	struct resume_list rl = {0};
	const struct sv_tool *tool = r->msg.tool;
	struct sv_entry en;
	struct pending *p;
	struct sv_err e;
	char *text = NULL;
	size_t len = 0;
	int live;

	memset(&f->prop, 0, sizeof f->prop);
	f->follows = -1;
	f->ok = 0;
	f->key = sd_make_key(tool->name, r->msg.payload, &f->keylen);
	sd_lock();
	if (r->finished) {
		sd_unlock();
		free(f->key);
		return 0;
	}
	p = sd_pending_by_key(f->key, f->keylen);
	if (p != NULL) {
		char id[SV_ID_MAX + 1];

		snprintf(id, sizeof id, "%s", p->id);
		sd_unlock();
		/* Offered only while still pending here. */
		live = sv_find_proposal(&sc.spool, id, &en, &e) == 1 &&
		    strchr(en.flags, 'T') == NULL && strchr(en.flags, 'R') ==
		    NULL && sv_audit_has_record(sc.audit, sc.cfg.slug, id,
		    &e) == 0;
		sd_lock();
		p = sd_pending_by_id(id);
		if (p != NULL && live) {
			/* A caller gone before we got here has nothing to
			 * wait for; its proposal is already filed. */
			int attached = sd_attach(r, p, &rl);

			sd_unlock();
			sd_resume_all(&rl);
			free(f->key);
			say_attached(id, attached);
			sd_recheck(id);
			return 0;
		}
		if (p != NULL)
			sd_pending_unkey(p);
	}
	sd_unlock();
	for (size_t k = 0; k < nbatch; k++)
		if (batch[k].follows == -1 && batch[k].keylen == f->keylen &&
		    memcmp(batch[k].key, f->key, f->keylen) == 0) {
			f->follows = (int)k;	/* filed once, for both */
			return 1;
		}
	if (over_limit(batch, nbatch)) {
		free(f->key);
		sd_lock();
		sd_finish(r, sv_mcp_error(r->msg.id, RPC_TOO_MANY, "%s: bottle "
		    "'%s' has too many pending proposals (%ld, the limit); "
		    "nothing was filed: wait for the operator to decide, or "
		    "follow one with proposal-status", tool->name, sc.cfg.slug,
		    sc.cfg.max_pending), &rl);
		sd_unlock();
		sd_resume_all(&rl);
		return 0;
	}

	if (tool->config != NULL && sv_audit_read(sc.audit, sc.cfg.slug,
	    tool->config, &text, &len, &e) == -1) {
		sv_warn_err(&e);
		free(f->key);
		sd_lock();
		sd_finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
		    "%s: can't file the proposal: %s", tool->name, e.msg), &rl);
		sd_unlock();
		sd_resume_all(&rl);
		return 0;
	}
	sv_blob_hash(text ? text : "", text ? len : 0, f->hash);
	free(text);
	f->prop.bottle_slug = (char *)sc.cfg.slug;
	f->prop.tool = (char *)tool->name;
	f->prop.proposed_file = r->msg.payload;
	f->prop.justification = r->msg.justification;
	f->prop.current_file_hash = f->hash;
	return 1;
}

static void
propose_end(struct filing *f, struct filing *batch)
{
	struct request *r = f->job->r;
	const struct sv_tool *tool = r->msg.tool;
	struct resume_list rl = {0};
	struct filing *lead = f->follows >= 0 ? &batch[f->follows] : f;
	struct pending *p;
	char *sum, *esum;
	int attached;

	if (!lead->ok) {
		if (f == lead)
			sv_warn_err(&f->err);
		sd_lock();
		sd_finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
		    "%s: can't file the proposal: %s", tool->name,
		    lead->err.msg), &rl);
		sd_unlock();
		sd_resume_all(&rl);
	} else if (f != lead) {
		sd_lock();
		p = sd_pending_by_id(lead->prop.id);
		attached = p != NULL && sd_attach(r, p, &rl);
		sd_unlock();
		sd_resume_all(&rl);
		say_attached(lead->prop.id, attached);
	} else {
		sum = sv_payload_summary(tool->name, r->msg.payload);
		esum = sv_escape(sum, strlen(sum), 0);
		sv_warnx("proposal %s (%s %s) %s", f->prop.id, tool->name,
		    esum, f->ruled == 1 ? "filed, decided by rule" :
		    "waiting for the operator");
		free(sum);
		free(esum);
		sd_lock();
		p = sd_pending_get(f->prop.id, f->key, f->keylen);
		f->key = NULL;
		p->expires = sd_expiry_of(f->prop.arrival_timestamp);
		attached = sd_attach(r, p, &rl);
		sd_unlock();
		if (!attached)
			sv_warnx("the caller of proposal %s left before it was "
			    "filed; the proposal stays pending", f->prop.id);
	}
	sd_resume_all(&rl);
	free(f->key);		/* NULL once the pending proposal took it */
}

/*
 * Read the bottle's policy from main when it changed and say what it is
 * (at start-up, on a change), and loudly, each time it is asked, that it
 * is broken.  1 when rules may decide.
 */
int
sd_policy_ready(void)
{
	struct sv_err e;
	char *esc;
	int changed;

	changed = sv_rules_refresh(&sc.rules, sc.audit, sc.cfg.slug, &e);
	if (changed == -1) {
		sv_warnx("can't read %s/%s, no rule decides: %s", sc.cfg.slug,
		    SV_POLICY_PATH, e.msg);
		return 0;
	}
	if (sc.rules.broken) {
		esc = sv_escape(sc.rules.error, strlen(sc.rules.error), 0);
		sv_warnx("POLICY BROKEN: %s/%s on main does not parse, so no "
		    "rule decides and every proposal waits for the operator: "
		    "%s", sc.cfg.slug, SV_POLICY_PATH, esc);
		free(esc);
		return 0;
	}
	if (changed == 1 && sc.rules.hash[0] != '\0')
		sv_warnx("%s/%s of commit %.12s: %zu rule%s", sc.cfg.slug,
		    SV_POLICY_PATH, sc.rules.commit, sc.rules.pol.n,
		    sc.rules.pol.n == 1 ? "" : "s");
	return sc.rules.pol.n > 0;
}

/*
 * The bottle's policy decides what its rules match, as the proposal is
 * filed: the proposal and a response like the operator's are written
 * together (sv_propose_decided: no flush, the commit is the record), and
 * consumed with the batch's other decisions.  A broken policy decides
 * nothing, and each filing says so.  Sets each leader's `ruled`.
 */
static void
decide_by_rule(struct filing *batch, size_t n, struct batch *decided)
{
	struct sv_response resp;
	size_t i;
	char *esc;
	int rc;

	for (i = 0; i < n; i++)
		batch[i].ruled = 0;
	if (!sd_policy_ready())
		return;
	for (i = 0; i < n; i++) {
		struct filing *f = &batch[i];

		if (f->follows != -1 ||
		    sv_rules_decide(&sc.rules, &f->prop, &resp) != 1)
			continue;
		f->ruled = 1;
		rc = sv_propose_decided(&sc.spool, &f->prop, &resp, &f->err);
		f->ok = rc != -1;
		esc = sv_escape(resp.rule, strlen(resp.rule), 0);
		if (rc == 0) {
			sv_warnx("proposal %s %s by rule %s", f->prop.id,
			    sv_status_name(resp.status), esc);
			sd_batch_add(decided, f->prop.id);
		} else if (rc == -2) {
			f->ruled = 2;
			sv_warnx("proposal %s left to the operator: can't respond "
			    "by rule %s: %s", f->prop.id, esc, f->err.msg);
		}
		free(esc);
		sv_response_free(&resp);
	}
}

static void
job_done(struct job *j)
{
	sd_lock();
	if (j->kind == JOB_PROPOSE)
		sd_drop_payload(j->r);
	sd_request_unref(j->r);
	sd_unlock();
	free(j);
}

/* File what propose_begin gathered, then end each call. */
static void
propose_batch(struct filing *batch, size_t n)
{
	struct sv_proposal *v[FILE_BATCH];
	struct sv_err errs[FILE_BATCH];
	struct batch decided;
	int ok[FILE_BATCH];
	size_t k = 0;

	decided.n = 0;
	if (n > 0)
		decide_by_rule(batch, n, &decided);
	for (size_t i = 0; i < n; i++)
		if (batch[i].follows == -1 && !batch[i].ruled)
			v[k++] = &batch[i].prop;
	if (k > 0)
		sv_propose_many(&sc.spool, v, k, ok, errs);
	for (size_t i = 0, j = 0; i < n; i++) {
		if (batch[i].follows != -1 || batch[i].ruled)
			continue;
		batch[i].ok = ok[j];
		if (!ok[j])
			batch[i].err = errs[j];
		j++;
	}
	for (size_t i = 0; i < n; i++)
		propose_end(&batch[i], batch);
	/*
	 * The leaders' proposals may have been decided already (an approver
	 * watching proposals/new is often quicker than our last flush): those
	 * decisions are consumed together, as one batch.
	 */
	for (size_t i = 0; i < n; i++)
		if (batch[i].follows == -1 && batch[i].ok && !batch[i].ruled)
			sd_recheck_into(batch[i].prop.id, &decided);
	sd_batch_flush(&decided);
	for (size_t i = 0; i < n; i++) {
		/* Filing filled in id and arrival time. */
		free(batch[i].prop.id);
		free(batch[i].prop.arrival_timestamp);
		job_done(batch[i].job);
	}
}

static void
job_status(struct request *r)
{
	struct resume_list rl = {0};
	const char *id = r->msg.proposal_id;
	struct sv_entry en;
	struct pending *p;
	struct sv_err e;
	long wait = r->msg.wait_seconds;
	int found, waits;
	char *text;

	found = sv_find_proposal(&sc.spool, id, &en, &e);
	sd_lock();
	if (found != 1) {
		if (found == 0)
			sd_finish(r, sv_mcp_error(r->msg.id, SV_RPC_INVALID_PARAMS,
			    "%s: no proposal '%s' in bottle %s",
			    SV_TOOL_PROPOSAL_STATUS, id, sc.cfg.slug), &rl);
		else
			sd_finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
			    "%s: %s", SV_TOOL_PROPOSAL_STATUS, e.msg), &rl);
		sd_unlock();
		sd_resume_all(&rl);
		return;
	}
	if (!sd_waiting(r)) {
		sd_unlock();
		return;
	}
	p = sd_pending_get(id, NULL, 0);
	(void)sd_attach(r, p, &rl);
	if (sc.cfg.max_wait > 0 && (wait < 0 || wait > sc.cfg.max_wait))
		wait = sc.cfg.max_wait;
	if (wait >= 0)
		r->deadline_ms = r->start_ms + wait * 1000;
	sd_unlock();
	sd_recheck(id);
	sd_lock();
	if (!r->finished && wait == 0) {
		text = sv_mcp_pending_text(id);
		sd_finish_text(r, text, 0, &rl);
		free(text);
	}
	p = sd_pending_by_id(id);
	if (p != NULL && p->waiters == NULL && p->key == NULL)
		sd_pending_drop(p);
	waits = !r->finished;
	sd_unlock();
	sd_resume_all(&rl);
	if (waits)
		sv_warnx("proposal-status call waiting on %s", id);
}

/* The route table as the answer's first text, where it came from as the
 * second: an agent (or a script) reads the JSON alone. */
static void
finish_routes(struct request *r, const char *table, const char *source,
    struct resume_list *rl)
{
	sd_finish(r, sv_mcp_result(r->msg.id, json_pack("{s:[{s:s, s:s}, {s:s, "
	    "s:s}], s:b}", "content", "type", "text", "text", table, "type",
	    "text", "text", source, "isError", 0)), rl);
}

/* sv_egress_fetch's answer, on the spool thread. */
static void
routes_fetched(void *arg, int ok, const char *text)
{
	struct request *r = arg;
	struct resume_list rl = {0};
	char *source;

	sd_lock();
	if (!ok) {
		sd_finish_text(r, text, 1, &rl);
	} else {
		source = sv_xasprintf("source: the egress proxy's live route "
		    "table, GET %s via %s", SV_EGRESS_INTROSPECT_URL,
		    sc.cfg.egress_proxy);
		finish_routes(r, text, source, &rl);
		free(source);
	}
	sd_request_unref(r);
	sd_unlock();
	sd_resume_all(&rl);
}

/*
 * list-egress-routes: what the egress proxy enforces, asked of it when
 * its address is known (the fetch runs in this thread's epoll loop and
 * answers later); else the live file it reads, saying so.
 */
static void
job_routes(struct request *r)
{
	struct resume_list rl = {0};
	struct sv_err e;
	char *path, *text = NULL, *source;
	size_t len;
	int fd, rc = 0;

	if (sc.egress != NULL) {
		sd_lock();
		r->refs++;		/* routes_fetched's */
		sd_unlock();
		sv_egress_fetch(sc.egress, routes_fetched, r);
		return;
	}
	path = sv_xasprintf("%s/egress/routes.json", sc.cfg.state_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1 && errno != ENOENT)
		rc = sv_errf(&e, errno, "can't open '%s'", path);
	else if (fd != -1)
		rc = sv_read_all(fd, path, SV_FILE_MAX, &text, &len, &e);
	if (fd != -1)
		close(fd);
	sd_lock();
	if (rc == -1) {
		sd_finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
		    "%s: %s", SV_TOOL_LIST_EGRESS_ROUTES, e.msg), &rl);
	} else {
		source = sv_xasprintf("source: the live file %s%s, which the "
		    "egress proxy reads; it may not have reloaded it yet (the "
		    "sidecar has no egress proxy address to ask: "
		    "--egress-proxy, SUPERVISE_EGRESS_PROXY)", path,
		    text ? "" : " (absent: no routes)");
		finish_routes(r, text ? text : "{\"routes\": []}\n", source,
		    &rl);
		free(source);
	}
	sd_unlock();
	sd_resume_all(&rl);
	free(text);
	free(path);
}

/* notifications/cancelled: end the call; withdraw its proposal (flag T)
 * unless another caller still waits on it. */
static void
job_cancel(struct request *r)
{
	struct resume_list rl = {0};
	struct sv_err e;
	char id[SV_ID_MAX + 1] = "";
	int withdraw = 0;

	sd_lock();
	if (!r->finished) {
		if (r->pending != NULL && r->msg.tool->proposes) {
			snprintf(id, sizeof id, "%s", r->id);
			withdraw = r->pending->waiters == r && r->wnext == NULL;
			if (withdraw)
				sd_pending_unkey(r->pending);
		}
		if (r->sse)
			sd_finish(r, NULL, &rl);
		else
			sd_finish(r, sv_mcp_error(r->msg.id, RPC_CANCELLED,
			    "request cancelled%s%s%s", id[0] ? "; proposal " :
			    "", id, withdraw ? " withdrawn" : ""), &rl);
	}
	sd_unlock();
	sd_resume_all(&rl);
	if (withdraw) {
		if (sv_add_flags(&sc.spool, id, "T", &e) == -1)
			sv_warn_err(&e);
		else
			sv_warnx("proposal %s withdrawn by its caller", id);
	}
}

void
sd_run_jobs(void)
{
	struct filing batch[FILE_BATCH];
	size_t nb = 0;
	struct job *j;
	uint64_t n;

	if (read(sc.job_fd, &n, sizeof n) == -1 && errno != EAGAIN)
		sv_warnx("can't read the job queue: %s", strerror(errno));
	for (;;) {
		sd_lock();
		j = sc.jobs;
		if (j != NULL) {
			sc.jobs = j->next;
			if (sc.jobs == NULL)
				sc.jobs_tail = &sc.jobs;
		}
		sd_unlock();
		if (j == NULL)
			break;
		if (j->kind == JOB_PROPOSE) {
			if (!propose_begin(j->r, &batch[nb], batch, nb)) {
				job_done(j);
				continue;
			}
			batch[nb++].job = j;
			if (nb == FILE_BATCH) {
				propose_batch(batch, nb);
				nb = 0;
			}
			continue;
		}
		/* Jobs run in the order they came: file what came before. */
		propose_batch(batch, nb);
		nb = 0;
		switch (j->kind) {
		case JOB_PROPOSE: break;
		case JOB_STATUS: job_status(j->r); break;
		case JOB_ROUTES: job_routes(j->r); break;
		case JOB_CANCEL: job_cancel(j->r); break;
		}
		job_done(j);
	}
	propose_batch(batch, nb);
}

/* Under the lock: hand a request to the spool thread. */
void
sd_job_push(enum job_kind kind, struct request *r)
{
	struct job *j = sv_xmalloc(sizeof *j);
	uint64_t one = 1;

	j->kind = kind;
	j->r = r;
	j->next = NULL;
	r->refs++;
	*sc.jobs_tail = j;
	sc.jobs_tail = &j->next;
	if (write(sc.job_fd, &one, sizeof one) == -1 && errno != EAGAIN)
		sv_warnx("can't wake the spool thread: %s", strerror(errno));
}
