/*
 * supervised.c: the MCP sidecar of one bottle.
 *
 * An agent's tools/call becomes a proposal in the bottle's spool; the call
 * is held open until the operator's decision lands in responses/new, is
 * committed to the audit repository, and only then answered.
 *
 * Threads, and who may touch what:
 *  - libmicrohttpd's internal epoll thread speaks HTTP and JSON-RPC
 *    (mcp.c).  It never touches the disk: a call that needs the spool or
 *    the audit repository becomes a job for the spool thread, and its
 *    connection is suspended (MHD_suspend_connection), so a waiting call
 *    holds a socket and a few hundred bytes, never a thread.
 *  - The main thread is the spool thread: one epoll loop over the job
 *    eventfd, inotify on responses/new (watched from start-up, so every
 *    decision after a proposal is published is seen: subscribe, publish,
 *    re-check by name, wait), a timerfd (progress, --max-wait, the slow
 *    re-scan, tmp/ cleaning) and a signalfd.  It alone opens the audit
 *    repository, so libgit2 is never shared between threads.
 *  - One mutex guards the requests, the job queue and the table of
 *    pending proposals; disk and git work happen outside it.  Whoever
 *    clears a request's `suspended` flag (under the mutex) resumes its
 *    connection, after dropping the mutex; a suspended connection cannot
 *    go away, so the pointer stays good until then.
 *
 * On an SSE stream the reader callback hands out what the spool thread
 * queued, and suspends the connection when there is nothing to send (the
 * pattern libmicrohttpd prescribes for "no data yet"); queueing data
 * resumes it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <uriparser/Uri.h>

#include "daemon.h"

#define TICK_MS		250		/* timer resolution for progress/max-wait */
#define CLEAN_EVERY_MS	(3600 * 1000)	/* tmp/ cleaning */
#define STOP_DRAIN_MS	3000		/* flushing answers at shutdown */
#define RPC_CANCELLED	-32800		/* the request was cancelled */
#define RPC_TOO_MANY	-32001		/* --max-pending reached: not filed */
#define MAX_PENDING	100000		/* --max-pending by default */
#define EXPIRE_EVERY_MS	1000		/* how often expiry is looked at */
#define NBUCKETS	4096
/*
 * Memory per waiting call, which is what 10,000 of them cost: the
 * connection's pool holds the request's headers (up to about 2 KiB of
 * them fit in 3 KiB; more gets 431) and never the body; an SSE
 * response's block is its write buffer, and events are small (a long
 * result just takes more calls of sse_read).  With libmicrohttpd's
 * defaults (32 KiB and our 16 KiB block) a waiting call cost 38 KiB;
 * with 3 KiB and 512 bytes, 5.3 KiB; the block is allocated with the
 * response, so 256 bytes less is 2.5 MiB less for 10,000 calls.
 */
#define CONN_MEMORY	3072
#define SSE_BLOCK	256

struct config {
	const char *slug;
	const char *queue_dir;
	const char *audit_dir;
	const char *bind;
	const char *port_file;
	char *state_dir;	/* the bottle's live config directory */
	const char *egress_proxy;	/* list-egress-routes asks it; or NULL */
	char *apply_hook;	/* the apply hook, or NULL */
	long apply_timeout;	/* seconds */
	char *token;		/* required bearer token, or NULL */
	unsigned char token_digest[SV_TOKEN_DIGEST];
	const char **hosts;	/* names a Host header may carry */
	size_t nhosts;
	long port;
	long max_wait;		/* seconds; 0: wait for ever */
	long rescan;		/* seconds between re-scans of responses/new */
	long progress;		/* seconds between keep-alives on SSE */
	long idle_timeout;	/* seconds before an idle connection is closed */
	long body_budget;	/* MiB of request bodies held at once */
	long body_timeout;	/* seconds a body may take to arrive */
	long max_waiters;	/* calls waiting on one proposal at most */
	long max_pending;	/* pending proposals at most */
	long expire;		/* seconds before a proposal expires; 0: never */
	int drain;
};

struct pending;

/* One HTTP request; a tools/call also waits here for its answer. */
struct request {
	int refs;		/* MHD's, each job's, an SSE response's */
	struct MHD_Connection *conn;
	int alive;		/* the request is not completed yet */
	int suspended;		/* suspended by us and not resumed yet */
	int sse;		/* answered on an SSE stream */
	int in_flight;		/* on the sidecar's list of calls */
	int finished;		/* the final answer is queued */
	int rejected;		/* an early error response was queued */
	int gone;		/* its client hung up while it waited */
	int watched;		/* fd is in sc.hup_ep */
	int fd;			/* the connection's socket, once watched */
	char *body;
	size_t len, cap;
	size_t reserved;	/* taken from the body budget, until freed */
	int64_t body_deadline_ms;	/* the body must be in by then */
	char *out;		/* SSE bytes to send, or the JSON answer */
	size_t out_len, out_off, out_cap;
	int parsed;		/* the body went through sv_mcp_handle */
	struct sv_mcp_msg msg;
	char *session;		/* Mcp-Session-Id, or NULL */
	char id[SV_ID_MAX + 1];	/* the proposal waited on, once known */
	struct pending *pending;
	struct request *wprev, *wnext;	/* the pending proposal's waiters */
	struct request *aprev, *anext;	/* calls in flight */
	int64_t start_ms, next_progress_ms, deadline_ms;
	long nprogress;
};

/* A proposal known to be pending: who waits on it, and its dedupe key. */
struct pending {
	char id[SV_ID_MAX + 1];
	char *key;		/* tool NUL payload; NULL: not deduplicated */
	size_t keylen;
	struct request *waiters;
	size_t nwaiters;
	int gone_marked;	/* gone/ID exists (gone.c) */
	struct pending *id_next, *key_next;
	time_t expires;		/* when it is rejected; 0: never or unknown */
	int expiring;		/* its rejection is on the way */
};

enum job_kind { JOB_PROPOSE, JOB_STATUS, JOB_ROUTES, JOB_CANCEL };
struct job {
	enum job_kind kind;
	struct request *r;
	struct job *next;
};

/* Connections to resume once the mutex is dropped. */
struct resume_list {
	struct MHD_Connection **v;
	size_t n, cap;
};

struct sidecar {
	struct config cfg;
	struct sv_spool spool;
	struct sv_audit *audit;
	struct sv_egress *egress;	/* with --egress-proxy */
	struct sv_applier *applier;	/* hook.c: decisions take effect */
	int maintain_due;	/* sv_audit_maintain waits for a hook */
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock;
	int job_fd;		/* eventfd: jobs are queued */
	struct job *jobs, **jobs_tail;
	struct request *calls;	/* in flight */
	size_t ncalls;		/* in flight or not yet completed */
	struct pending *by_id[NBUCKETS], *by_key[NBUCKETS];
	size_t npending;	/* entries in by_id */
	struct sv_rules rules;	/* the bottle's policy (decide.c) */
	struct sv_budget bodies;	/* request bodies, in total */
	struct sv_ratelog over_budget, too_slow;
	int hup_ep;		/* epoll: suspended calls' sockets, for hang-up */
	/* gone/ marks to write or remove, by the spool thread, outside the
	 * lock: "+ID" or "-ID". */
	char **gone_ops;
	size_t ngone_ops, gone_cap;
	int stopping;
};

static struct sidecar sc;

/* --- small helpers ------------------------------------------------------- */

static void
lock(void)
{
	pthread_mutex_lock(&sc.lock);
}

static void
unlock(void)
{
	pthread_mutex_unlock(&sc.lock);
}

static uint64_t
fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	while (n-- > 0) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

/*
 * A suspended connection is out of libmicrohttpd's sight: a client that
 * hangs up then would hold its socket (CLOSE-WAIT) and its memory until
 * the operator decides.  So while suspended its socket is watched for
 * hang-up in the spool thread's loop (callers_left).  Under the lock.
 */
static void
suspend(struct request *r)
{
	const union MHD_ConnectionInfo *ci;
	struct epoll_event ev;

	r->suspended = 1;
	MHD_suspend_connection(r->conn);
	if (r->watched || sc.hup_ep <= 0)
		return;
	ci = MHD_get_connection_info(r->conn,
	    MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLRDHUP;
	ev.data.ptr = r;
	r->fd = ci->connect_fd;
	if (epoll_ctl(sc.hup_ep, EPOLL_CTL_ADD, r->fd, &ev) == 0)
		r->watched = 1;
}

static void
unwatch(struct request *r)
{
	if (!r->watched)
		return;
	epoll_ctl(sc.hup_ep, EPOLL_CTL_DEL, r->fd, NULL);
	r->watched = 0;
}

/* Queue a change of gone/ID for gone_sync; under the lock. */
static void
gone_queue(struct pending *p, int mark)
{
	if (p->gone_marked == mark)
		return;
	p->gone_marked = mark;
	if (sc.ngone_ops == sc.gone_cap) {
		sc.gone_cap = sc.gone_cap ? 2 * sc.gone_cap : 16;
		sc.gone_ops = sv_xrealloc(sc.gone_ops, sc.gone_cap *
		    sizeof *sc.gone_ops);
	}
	sc.gone_ops[sc.ngone_ops++] = sv_xasprintf("%c%s", mark ? '+' : '-',
	    p->id);
}

static void
resume_add(struct resume_list *rl, struct request *r)
{
	if (!r->suspended)
		return;
	unwatch(r);
	r->suspended = 0;
	if (rl->n == rl->cap) {
		rl->cap = rl->cap ? rl->cap * 2 : 16;
		rl->v = sv_xrealloc(rl->v, rl->cap * sizeof *rl->v);
	}
	rl->v[rl->n++] = r->conn;
}

static void
resume_all(struct resume_list *rl)
{
	size_t i;

	for (i = 0; i < rl->n; i++)
		MHD_resume_connection(rl->v[i]);
	free(rl->v);
	memset(rl, 0, sizeof *rl);
}

/* --- requests (under the lock) ------------------------------------------ */

static void
request_unref(struct request *r)
{
	if (--r->refs > 0)
		return;
	free(r->body);
	free(r->out);
	free(r->session);
	sv_mcp_msg_free(&r->msg);
	sv_budget_give(&sc.bodies, r->reserved);
	free(r);
}

/*
 * Filed, or attached to an identical call's proposal: the payload is on
 * disk and in the pending entry's key, so the call lets go of its copy
 * and of its share of the body budget.  Under the lock.
 */
static void
drop_payload(struct request *r)
{
	free(r->msg.payload);
	free(r->msg.justification);
	r->msg.payload = r->msg.justification = NULL;
	sv_budget_give(&sc.bodies, r->reserved);
	r->reserved = 0;
}

static void
waiter_unlink(struct request *r)
{
	if (r->pending == NULL)
		return;
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		r->pending->waiters = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	r->wprev = r->wnext = NULL;
	r->pending->nwaiters--;
	r->pending = NULL;
}

static void
call_unlink(struct request *r)
{
	if (!r->in_flight)
		return;
	if (r->aprev)
		r->aprev->anext = r->anext;
	else
		sc.calls = r->anext;
	if (r->anext)
		r->anext->aprev = r->aprev;
	r->aprev = r->anext = NULL;
	r->in_flight = 0;
}

static void
out_append(struct request *r, const char *s, size_t n)
{
	if (r->out_off > 0 && r->out_off == r->out_len)
		r->out_off = r->out_len = 0;
	if (r->out_len + n > r->out_cap) {
		/* Most streams only ever hold one comment and one answer. */
		r->out_cap = r->out_len + n > 2 * r->out_cap ?
		    r->out_len + n : 2 * r->out_cap;
		r->out = sv_xrealloc(r->out, r->out_cap);
	}
	memcpy(r->out + r->out_len, s, n);
	r->out_len += n;
}

/* Queue bytes on an SSE stream, waking the connection if it sleeps. */
static void
sse_send(struct request *r, const char *s, struct resume_list *rl)
{
	out_append(r, s, strlen(s));
	resume_add(rl, r);
}

/*
 * The final answer of a call (a JSON-RPC message; NULL ends an SSE stream
 * without one, as a cancelled request gets).  Takes `msg`.
 */
static void
finish(struct request *r, json_t *msg, struct resume_list *rl)
{
	char *text;

	if (r->finished) {
		json_decref(msg);
		return;
	}
	r->finished = 1;
	waiter_unlink(r);
	call_unlink(r);
	if (msg != NULL) {
		text = sv_mcp_dumps(msg);
		json_decref(msg);
		if (r->sse) {
			out_append(r, "event: message\ndata: ", 21);
			out_append(r, text, strlen(text));
			out_append(r, "\n", 1);
			free(text);
		} else {
			free(r->out);
			r->out = text;
			r->out_len = r->out_cap = strlen(text);
			r->out_off = 0;
		}
	}
	resume_add(rl, r);
}

static void
finish_text(struct request *r, const char *text, int is_error,
    struct resume_list *rl)
{
	finish(r, sv_mcp_result(r->msg.id, sv_mcp_text_result(text, is_error)),
	    rl);
}

/* --- pending proposals (under the lock) ---------------------------------- */

static struct pending *
pending_by_id(const char *id)
{
	struct pending *p = sc.by_id[fnv1a(id, strlen(id)) % NBUCKETS];

	while (p != NULL && strcmp(p->id, id) != 0)
		p = p->id_next;
	return p;
}

static struct pending *
pending_by_key(const char *key, size_t keylen)
{
	struct pending *p = sc.by_key[fnv1a(key, keylen) % NBUCKETS];

	while (p != NULL && !(p->keylen == keylen &&
	    memcmp(p->key, key, keylen) == 0))
		p = p->key_next;
	return p;
}

static char *
make_key(const char *tool, const char *payload, size_t *keylen)
{
	size_t t = strlen(tool), n = strlen(payload);
	char *k = sv_xmalloc(t + 1 + n + 1);

	memcpy(k, tool, t + 1);
	memcpy(k + t + 1, payload, n + 1);
	*keylen = t + 1 + n;
	return k;
}

/* Find or add the pending entry of `id`; `key` (taken) makes it dedupable. */
static struct pending *
pending_get(const char *id, char *key, size_t keylen)
{
	struct pending *p = pending_by_id(id);
	struct pending **b;

	if (p == NULL) {
		p = sv_xmalloc(sizeof *p);
		memset(p, 0, sizeof *p);
		snprintf(p->id, sizeof p->id, "%s", id);
		b = &sc.by_id[fnv1a(id, strlen(id)) % NBUCKETS];
		p->id_next = *b;
		*b = p;
		sc.npending++;
	}
	if (key != NULL && p->key == NULL && pending_by_key(key, keylen) ==
	    NULL) {
		p->key = key;
		p->keylen = keylen;
		b = &sc.by_key[fnv1a(key, keylen) % NBUCKETS];
		p->key_next = *b;
		*b = p;
	} else {
		free(key);
	}
	return p;
}

/* When a proposal that arrived at `arrival` expires; 0: never. */
static time_t
expiry_of(const char *arrival)
{
	time_t t = sv_expires_at(arrival, sc.cfg.expire);

	return t == (time_t)-1 ? 0 : t;
}

/* Stop offering a proposal to identical retries (decided, withdrawn). */
static void
pending_unkey(struct pending *p)
{
	struct pending **b;

	if (p->key == NULL)
		return;
	for (b = &sc.by_key[fnv1a(p->key, p->keylen) % NBUCKETS]; *b != NULL;
	    b = &(*b)->key_next) {
		if (*b == p) {
			*b = p->key_next;
			break;
		}
	}
	free(p->key);
	p->key = NULL;
	p->key_next = NULL;
}

static void
pending_drop(struct pending *p)
{
	struct pending **b;

	while (p->waiters != NULL)
		waiter_unlink(p->waiters);
	gone_queue(p, 0);
	pending_unkey(p);
	for (b = &sc.by_id[fnv1a(p->id, strlen(p->id)) % NBUCKETS]; *b != NULL;
	    b = &(*b)->id_next) {
		if (*b == p) {
			*b = p->id_next;
			break;
		}
	}
	sc.npending--;
	free(p);
}

/*
 * A call stops waiting without an answer: the last caller of a pending
 * proposal to go marks it gone (gone.c).  Under the lock.
 */
static void
leave(struct request *r)
{
	struct pending *p = r->pending;

	waiter_unlink(r);
	call_unlink(r);
	if (p != NULL && p->waiters == NULL && !r->finished)
		gone_queue(p, 1);
}

/*
 * Can this request still be answered?  One whose connection went before
 * its job ran must not be attached: it would outlive its memory.
 */
static int
waiting(const struct request *r)
{
	return r->alive && !r->finished && !r->gone;
}

static void
attach(struct request *r, struct pending *p, struct resume_list *rl)
{
	if (p->nwaiters >= (size_t)sc.cfg.max_waiters) {
		/* Identical calls share one proposal; a flood of them must
		 * not hold every connection the sidecar has. */
		finish(r, sv_mcp_error(r->msg.id, RPC_TOO_MANY, "proposal %s "
		    "already has %ld calls waiting on it (the limit); wait on "
		    "one of them, or follow it with proposal-status", p->id,
		    sc.cfg.max_waiters), rl);
		return;
	}
	snprintf(r->id, sizeof r->id, "%s", p->id);
	r->pending = p;
	r->wprev = NULL;
	r->wnext = p->waiters;
	if (p->waiters)
		p->waiters->wprev = r;
	p->waiters = r;
	p->nwaiters++;
	gone_queue(p, 0);
}

/* --- answering decisions (spool thread) ---------------------------------- */

/* Answer every call waiting on `id` with the decision; forget the id. */
static int
answer_decision(const char *id, enum sv_status status, const char *applied,
    const char *notes, const char *final_file)
{
	struct resume_list rl = {0};
	struct pending *p;
	char *text;
	int n = 0;

	text = sv_mcp_decision_text(status, applied, notes, final_file);
	lock();
	p = pending_by_id(id);
	if (p != NULL) {
		while (p->waiters != NULL) {
			finish_text(p->waiters, text, status == SV_REJECTED, &rl);
			n++;
		}
		pending_drop(p);
	}
	unlock();
	resume_all(&rl);
	free(text);
	return n;
}

/* Fail every call waiting on `id` (the decision can't be read). */
static void
answer_error(const char *id, const char *msg)
{
	struct resume_list rl = {0};
	struct pending *p;

	lock();
	p = pending_by_id(id);
	while (p != NULL && p->waiters != NULL)
		finish(p->waiters, sv_mcp_error(p->waiters->msg.id,
		    SV_RPC_INTERNAL_ERROR, "%s", msg), &rl);
	unlock();
	resume_all(&rl);
}

static void
log_decision(const struct sv_decision *d, int answered)
{
	if (sc.cfg.drain)
		return;		/* a drain prints its decisions on stdout */
	if (d->status == SV_APPROVED || d->status == SV_MODIFIED)
		return;		/* said once applied: on_applied */
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
static void
publish_live(void)
{
	struct sv_err e;

	if (sv_live_publish(sc.audit, sc.cfg.slug, sc.cfg.state_dir, NULL,
	    &e) == -1)
		sv_warn_err(&e);
}

/*
 * sv_consume_batch's callback: a decision has landed, or was refused.
 * An approval is answered once it has been applied (on_applied); a
 * rejection at once.
 */
static void
on_decision(const struct sv_decision *d, void *arg)
{
	int n = 0;

	(void)arg;
	if (d->status == SV_APPROVED || d->status == SV_MODIFIED) {
		sv_applier_add(sc.applier, d->id, 0);
		return;
	}
	sv_applier_unmark(sc.applier, d->id);
	if (d->status != SV_NONE)
		n = answer_decision(d->id, d->status, NULL, d->notes,
		    d->final_file);
	log_decision(d, n);
}

/* The applier's callback: an approval has taken effect, or not. */
static void
on_applied(const struct sv_apply_result *res, void *arg)
{
	const struct sv_apply_note *note = res->note;
	char *line, *esc;
	int n;

	(void)arg;
	line = note->applied ? sv_xstrdup("applied: yes") :
	    sv_xasprintf("applied: no: %s", note->reason);
	n = answer_decision(res->id, res->status, line, res->notes,
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
 * Answered: now keep the repository's packs few and make the files the
 * next commit will use (odb.c).  That is work for when nobody waits, so
 * while an apply hook runs, it waits until the hook's caller has its
 * answer.
 */
static void
maintain(void)
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

/*
 * Names seen in responses/new, consumed together: one chain of commits
 * and two flushes for all of them, however many arrived at once.
 */
struct batch {
	char *v[SV_CONSUME_BATCH];
	size_t n;
};

static void
batch_flush(struct batch *b)
{
	struct sv_err e;

	if (b->n == 0)
		return;
	/* Before anything commits: what a crash must not let us forget. */
	if (sv_applier_mark(sc.applier, b->v, b->n, &e) == -1)
		sv_warnx("can't consume from 'responses/new' (will retry): %s",
		    e.msg);
	else if (sv_consume_batch(&sc.spool, sc.audit, b->v, b->n,
	    on_decision, NULL, &e) == -1 && e.errnum != ENOENT)
		sv_warnx("can't consume from 'responses/new' (will retry): %s",
		    e.msg);
	if (sv_applier_flush(sc.applier, &e) == -1)
		sv_warn_err(&e);
	/* A quick hook may have finished meanwhile: answer now. */
	sv_applier_events(sc.applier);
	maintain();
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

static void
batch_add(struct batch *b, const char *name)
{
	if (name[0] == '.')
		return;		/* not a delivery: editors' and tools' dot files */
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->v[i], name) == 0)
			return;	/* reported twice (closed, then moved) */
	if (b->n == SV_CONSUME_BATCH)
		batch_flush(b);
	b->v[b->n++] = sv_xstrdup(name);
}

/* Consume responses/new/NAME on its own. */
static void
consume_name(const char *name)
{
	struct batch b;

	b.n = 0;
	batch_add(&b, name);
	batch_flush(&b);
}

/* Responses that inotify did not report (other file systems, overflow). */
static void
rescan(int min_age)
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
		batch_add(&b, de->d_name);
	}
	closedir(dir);
	batch_flush(&b);
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
		answer_error(id, msg);
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
	answer_decision(id, resp.status, line, resp.notes, resp.final_file);
	free(line);
	sv_response_free(&resp);
}

/*
 * After attaching a call to `id`: a decision that landed before we
 * subscribed is consumed now (added to `b` when given, for the caller to
 * flush with others), or read back from the audit repository.
 */
static void
recheck_into(const char *id, struct batch *b)
{
	char name[SV_ID_MAX + 8];
	struct sv_err e;
	struct stat st;

	if (fstatat(sc.spool.rnew, id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (b != NULL)
			batch_add(b, id);
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

static void
recheck(const char *id)
{
	recheck_into(id, NULL);
}

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

	lock();
	n = sc.npending;
	unlock();
	for (size_t k = 0; k < nbatch; k++)
		if (batch[k].follows == -1)
			n++;
	return (long)n >= sc.cfg.max_pending;
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
	f->key = make_key(tool->name, r->msg.payload, &f->keylen);
	lock();
	if (r->finished) {
		unlock();
		free(f->key);
		return 0;
	}
	p = pending_by_key(f->key, f->keylen);
	if (p != NULL) {
		char id[SV_ID_MAX + 1];

		snprintf(id, sizeof id, "%s", p->id);
		unlock();
		/* Offered only while still pending here. */
		live = sv_find_proposal(&sc.spool, id, &en, &e) == 1 &&
		    strchr(en.flags, 'T') == NULL && strchr(en.flags, 'R') ==
		    NULL && sv_audit_has_record(sc.audit, sc.cfg.slug, id,
		    &e) == 0;
		lock();
		p = pending_by_id(id);
		if (p != NULL && live) {
			/* A caller gone before we got here has nothing to
			 * wait for; its proposal is already filed. */
			if (waiting(r))
				attach(r, p, &rl);
			unlock();
			resume_all(&rl);
			free(f->key);
			sv_warnx("identical call attached to pending proposal %s",
			    id);
			recheck(id);
			return 0;
		}
		if (p != NULL)
			pending_unkey(p);
	}
	unlock();
	for (size_t k = 0; k < nbatch; k++)
		if (batch[k].follows == -1 && batch[k].keylen == f->keylen &&
		    memcmp(batch[k].key, f->key, f->keylen) == 0) {
			f->follows = (int)k;	/* filed once, for both */
			return 1;
		}
	if (over_limit(batch, nbatch)) {
		free(f->key);
		lock();
		finish(r, sv_mcp_error(r->msg.id, RPC_TOO_MANY, "%s: bottle "
		    "'%s' has too many pending proposals (%ld, the limit); "
		    "nothing was filed: wait for the operator to decide, or "
		    "follow one with proposal-status", tool->name, sc.cfg.slug,
		    sc.cfg.max_pending), &rl);
		unlock();
		resume_all(&rl);
		return 0;
	}

	if (tool->config != NULL && sv_audit_read(sc.audit, sc.cfg.slug,
	    tool->config, &text, &len, &e) == -1) {
		sv_warn_err(&e);
		free(f->key);
		lock();
		finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
		    "%s: can't file the proposal: %s", tool->name, e.msg), &rl);
		unlock();
		resume_all(&rl);
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

	if (!lead->ok) {
		if (f == lead)
			sv_warn_err(&f->err);
		lock();
		finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
		    "%s: can't file the proposal: %s", tool->name,
		    lead->err.msg), &rl);
		unlock();
		resume_all(&rl);
	} else if (f != lead) {
		lock();
		p = pending_by_id(lead->prop.id);
		if (p != NULL && waiting(r))
			attach(r, p, &rl);
		unlock();
		resume_all(&rl);
		sv_warnx("identical call attached to pending proposal %s",
		    lead->prop.id);
	} else {
		sum = sv_payload_summary(tool->name, r->msg.payload);
		esum = sv_escape(sum, strlen(sum), 0);
		sv_warnx("proposal %s (%s %s) %s", f->prop.id, tool->name,
		    esum, f->ruled == 1 ? "filed, decided by rule" :
		    "waiting for the operator");
		free(sum);
		free(esum);
		lock();
		p = pending_get(f->prop.id, f->key, f->keylen);
		f->key = NULL;
		p->expires = expiry_of(f->prop.arrival_timestamp);
		if (waiting(r))
			attach(r, p, &rl);
		unlock();
	}
	resume_all(&rl);
	free(f->key);		/* NULL once the pending proposal took it */
}

/*
 * Read the bottle's policy from main when it changed and say what it is
 * (at start-up, on a change), and loudly, each time it is asked, that it
 * is broken.  1 when rules may decide.
 */
static int
policy_ready(void)
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
	if (!policy_ready())
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
			batch_add(decided, f->prop.id);
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
	lock();
	if (j->kind == JOB_PROPOSE)
		drop_payload(j->r);
	request_unref(j->r);
	unlock();
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
			recheck_into(batch[i].prop.id, &decided);
	batch_flush(&decided);
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
	lock();
	if (found != 1) {
		if (found == 0)
			finish(r, sv_mcp_error(r->msg.id, SV_RPC_INVALID_PARAMS,
			    "%s: no proposal '%s' in bottle %s",
			    SV_TOOL_PROPOSAL_STATUS, id, sc.cfg.slug), &rl);
		else
			finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
			    "%s: %s", SV_TOOL_PROPOSAL_STATUS, e.msg), &rl);
		unlock();
		resume_all(&rl);
		return;
	}
	if (!waiting(r)) {
		unlock();
		return;
	}
	p = pending_get(id, NULL, 0);
	attach(r, p, &rl);
	if (sc.cfg.max_wait > 0 && (wait < 0 || wait > sc.cfg.max_wait))
		wait = sc.cfg.max_wait;
	if (wait >= 0)
		r->deadline_ms = r->start_ms + wait * 1000;
	unlock();
	recheck(id);
	lock();
	if (!r->finished && wait == 0) {
		text = sv_mcp_pending_text(id);
		finish_text(r, text, 0, &rl);
		free(text);
	}
	p = pending_by_id(id);
	if (p != NULL && p->waiters == NULL && p->key == NULL)
		pending_drop(p);
	waits = !r->finished;
	unlock();
	resume_all(&rl);
	if (waits)
		sv_warnx("proposal-status call waiting on %s", id);
}

/* The route table as the answer's first text, where it came from as the
 * second: an agent (or a script) reads the JSON alone. */
static void
finish_routes(struct request *r, const char *table, const char *source,
    struct resume_list *rl)
{
	finish(r, sv_mcp_result(r->msg.id, json_pack("{s:[{s:s, s:s}, {s:s, "
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

	lock();
	if (!ok) {
		finish_text(r, text, 1, &rl);
	} else {
		source = sv_xasprintf("source: the egress proxy's live route "
		    "table, GET %s via %s", SV_EGRESS_INTROSPECT_URL,
		    sc.cfg.egress_proxy);
		finish_routes(r, text, source, &rl);
		free(source);
	}
	request_unref(r);
	unlock();
	resume_all(&rl);
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
		lock();
		r->refs++;		/* routes_fetched's */
		unlock();
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
	lock();
	if (rc == -1) {
		finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
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
	unlock();
	resume_all(&rl);
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

	lock();
	if (!r->finished) {
		if (r->pending != NULL && r->msg.tool->proposes) {
			snprintf(id, sizeof id, "%s", r->id);
			withdraw = r->pending->waiters == r && r->wnext == NULL;
			if (withdraw)
				pending_unkey(r->pending);
		}
		if (r->sse)
			finish(r, NULL, &rl);
		else
			finish(r, sv_mcp_error(r->msg.id, RPC_CANCELLED,
			    "request cancelled%s%s%s", id[0] ? "; proposal " :
			    "", id, withdraw ? " withdrawn" : ""), &rl);
	}
	unlock();
	resume_all(&rl);
	if (withdraw) {
		if (sv_add_flags(&sc.spool, id, "T", &e) == -1)
			sv_warn_err(&e);
		else
			sv_warnx("proposal %s withdrawn by its caller", id);
	}
}

static void
run_jobs(void)
{
	struct filing batch[FILE_BATCH];
	size_t nb = 0;
	struct job *j;
	uint64_t n;

	if (read(sc.job_fd, &n, sizeof n) == -1 && errno != EAGAIN)
		sv_warnx("can't read the job queue: %s", strerror(errno));
	for (;;) {
		lock();
		j = sc.jobs;
		if (j != NULL) {
			sc.jobs = j->next;
			if (sc.jobs == NULL)
				sc.jobs_tail = &sc.jobs;
		}
		unlock();
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
static void
job_push(enum job_kind kind, struct request *r)
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

/* --- callers that hang up (spool thread) --------------------------------- */

/*
 * Suspended calls whose client hung up: released at once, connection and
 * memory (libmicrohttpd closes the connection when it is resumed and
 * told so), the proposal kept pending and, when no other call waits on
 * it, marked gone.
 */
static void
callers_left(void)
{
	struct resume_list rl = {0};
	struct epoll_event evs[64];
	struct request *r;
	int n, i;

	while ((n = epoll_wait(sc.hup_ep, evs, 64, 0)) > 0) {
		lock();
		for (i = 0; i < n; i++) {
			r = evs[i].data.ptr;
			/* Watched means suspended, so not freed: only this
			 * thread resumes. */
			if (!r->watched)
				continue;
			r->gone = 1;
			if (!r->finished && r->id[0] != '\0')
				sv_warnx("the caller waiting on %s left "
				    "(connection closed); the proposal stays "
				    "pending", r->id);
			leave(r);
			resume_add(&rl, r);
		}
		unlock();
		resume_all(&rl);
		if (n < 64)
			break;
	}
}

/* Write and remove the gone/ marks gone_queue asked for. */
static void
gone_sync(void)
{
	struct sv_err e;
	char **ops;
	size_t n, i;

	lock();
	ops = sc.gone_ops;
	n = sc.ngone_ops;
	sc.gone_ops = NULL;
	sc.ngone_ops = sc.gone_cap = 0;
	unlock();
	for (i = 0; i < n; i++) {
		if ((ops[i][0] == '+' ? sv_gone_mark(&sc.spool, ops[i] + 1,
		    &e) : sv_gone_clear(&sc.spool, ops[i] + 1, &e)) == -1)
			sv_warn_err(&e);
		free(ops[i]);
	}
	free(ops);
}

/* --- timer: progress and --max-wait (spool thread) ----------------------- */

static void
tick(void)
{
	struct resume_list rl = {0};
	struct request *r, *next;
	int64_t now = sv_now_ms();
	char age[32], *line, *text;
	json_t *note;

	lock();
	for (r = sc.calls; r != NULL; r = next) {
		next = r->anext;
		if (r->finished)
			continue;
		if (r->deadline_ms > 0 && now >= r->deadline_ms &&
		    r->id[0] != '\0') {
			text = sv_mcp_pending_text(r->id);
			finish_text(r, text, 0, &rl);
			free(text);
			continue;
		}
		if (!r->sse || now < r->next_progress_ms)
			continue;
		r->next_progress_ms = now + sc.cfg.progress * 1000;
		sv_cli_age((time_t)((now - r->start_ms) / 1000), age,
		    sizeof age);
		if (r->msg.progress_token != NULL) {
			note = json_pack("{s:s, s:s, s:{s:O, s:i, s:s++}}",
			    "jsonrpc", "2.0",
			    "method", "notifications/progress",
			    "params", "progressToken", r->msg.progress_token,
			    "progress", (int)++r->nprogress,
			    "message", "waiting for operator (", age, ")");
			text = sv_mcp_dumps(note);
			json_decref(note);
			line = sv_xasprintf("event: message\ndata: %s\n", text);
			free(text);
		} else {
			line = sv_xasprintf(": waiting for operator (%s)\n\n",
			    age);
		}
		sse_send(r, line, &rl);
		free(line);
	}
	unlock();
	resume_all(&rl);
}

/*
 * --expire: a proposal pending for longer is rejected, as a response
 * like the operator's (decide.c) that is committed and answered like any
 * other.  Its age counts from its arrival, so time with no sidecar
 * running counts too.  At most one batch a turn.
 */
static void
expire_due(void)
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
	lock();
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
	unlock();
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
				lock();
				if ((p = pending_by_id(resp[i].proposal_id)) !=
				    NULL)
					p->expiring = 0;
				unlock();
			}
		}
		batch_add(&b, resp[i].proposal_id);
		sv_response_free(&resp[i]);
	}
	batch_flush(&b);
}

/* --- HTTP (libmicrohttpd's thread) ---------------------------------------- */

static enum MHD_Result
queue_body(struct MHD_Connection *c, unsigned status, const char *type,
    const char *body, size_t len, const char *hname, const char *hvalue)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (hname != NULL)
		MHD_add_response_header(resp, hname, hvalue);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
queue_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return queue_body(c, status, "text/plain; charset=utf-8", text,
	    strlen(text), NULL, NULL);
}

static enum MHD_Result
queue_json(struct MHD_Connection *c, unsigned status, json_t *msg,
    const char *hname, const char *hvalue)
{
	char *text = sv_mcp_dumps(msg);
	enum MHD_Result ret;

	json_decref(msg);
	ret = queue_body(c, status, "application/json", text, strlen(text),
	    hname, hvalue);
	free(text);
	return ret;
}

static const char *
header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static int
accepts_sse(struct MHD_Connection *c)
{
	const char *accept = header(c, MHD_HTTP_HEADER_ACCEPT);

	return accept != NULL && strcasestr(accept, "text/event-stream") != NULL;
}

/* First look at a request: everything that can be refused before its body. */
static enum MHD_Result
check_headers(struct MHD_Connection *c, const char *url, const char *method,
    int *handled)
{
	const char *v, *te;
	char *msg;
	enum MHD_Result ret;
	unsigned long long clen;

	*handled = 1;
	if (strcmp(url, "/health") == 0) {
		if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
			return queue_text(c, MHD_HTTP_OK, "ok\n");
		return queue_body(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "text/plain; charset=utf-8", "use GET for /health\n", 20,
		    MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	}
	if (strcmp(url, "/mcp") != 0 && strcmp(url, "/") != 0)
		return queue_text(c, MHD_HTTP_NOT_FOUND,
		    "not found: the MCP endpoint is /mcp\n");
	v = header(c, MHD_HTTP_HEADER_HOST);
	switch (sv_host_check(v, sc.cfg.hosts, sc.cfg.nhosts)) {
	case SV_HOST_OK:
		break;
	case SV_HOST_UNKNOWN:
		/* Defence in depth behind Origin: a name that resolves to
		 * us but is not ours is DNS rebinding, or a mistake. */
		return queue_text(c, MHD_HTTP_MISDIRECTED_REQUEST,
		    "this sidecar does not answer to that Host name "
		    "(see supervised --allow-host)\n");
	case SV_HOST_BAD:
		return queue_text(c, MHD_HTTP_BAD_REQUEST,
		    "malformed Host header\n");
	}
	v = header(c, "Origin");
	if (v != NULL && !sv_origin_allowed(v))
		return queue_text(c, MHD_HTTP_FORBIDDEN,
		    "origin not allowed\n");
	if (sc.cfg.token != NULL && !sv_token_ok(sc.cfg.token_digest,
	    header(c, MHD_HTTP_HEADER_AUTHORIZATION)))
		return queue_body(c, MHD_HTTP_UNAUTHORIZED,
		    "text/plain; charset=utf-8", "bearer token required\n", 22,
		    MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (strcmp(method, "POST") != 0)
		return queue_body(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "text/plain; charset=utf-8", "use POST for MCP requests\n",
		    26, MHD_HTTP_HEADER_ALLOW, "POST");
	if (!sv_json_content_type(header(c, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return queue_text(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    "Content-Type must be application/json\n");
	v = header(c, "MCP-Protocol-Version");
	if (v != NULL && !sv_mcp_version_ok(v)) {
		msg = sv_escape(v, strlen(v), 0);
		ret = queue_json(c, MHD_HTTP_BAD_REQUEST, sv_mcp_error(NULL,
		    SV_RPC_INVALID_REQUEST, "unsupported MCP-Protocol-Version "
		    "'%.100s' (supported: %s, %s, %s, %s)", msg,
		    sv_mcp_versions[0], sv_mcp_versions[1], sv_mcp_versions[2],
		    sv_mcp_versions[3]), NULL, NULL);
		free(msg);
		return ret;
	}
	v = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = header(c, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (v != NULL) {
		errno = 0;
		clen = strtoull(v, NULL, 10);
		if (errno != 0 || clen > SV_MCP_BODY_MAX)
			return queue_text(c, MHD_HTTP_CONTENT_TOO_LARGE,
			    "request body too large (limit 1 MiB)\n");
	} else if (te == NULL || strcasestr(te, "chunked") == NULL) {
		return queue_text(c, MHD_HTTP_LENGTH_REQUIRED,
		    "Content-Length required\n");
	}
	*handled = 0;
	return MHD_YES;
}

/* 32 hex digits from getrandom; NULL when it fails (never a guessable
 * id such as all zeros). */
static char *
new_session_id(void)
{
	unsigned char b[16];
	char *s;
	size_t got = 0;
	ssize_t n;
	int i;

	while (got < sizeof b) {
		n = getrandom(b + got, sizeof b - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		got += (size_t)n;
	}
	s = sv_xmalloc(33);
	for (i = 0; i < 16; i++)
		snprintf(s + 2 * i, 3, "%02x", b[i]);
	return s;
}

static ssize_t
sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct request *r = cls;
	size_t n;

	(void)pos;
	lock();
	if (r->gone) {
		unlock();
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (r->out_off < r->out_len) {
		n = r->out_len - r->out_off;
		if (n > max)
			n = max;
		memcpy(buf, r->out + r->out_off, n);
		r->out_off += n;
		unlock();
		return (ssize_t)n;
	}
	if (r->finished) {
		unlock();
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* Nothing to say yet: sleep until sse_send or finish wakes us. */
	suspend(r);
	unlock();
	return 0;
}

static void
sse_free(void *cls)
{
	lock();
	request_unref(cls);
	unlock();
}

/* A tools/call the spool thread must carry out. */
static enum MHD_Result
start_call(struct MHD_Connection *c, struct request *r)
{
	const struct sv_tool *t = r->msg.tool;
	struct MHD_Response *resp;
	enum job_kind kind;
	enum MHD_Result ret;
	int may_wait;

	kind = t->proposes ? JOB_PROPOSE :
	    strcmp(t->name, SV_TOOL_PROPOSAL_STATUS) == 0 ? JOB_STATUS :
	    JOB_ROUTES;
	may_wait = kind != JOB_ROUTES && r->msg.wait_seconds != 0;
	lock();
	if (sc.stopping) {
		unlock();
		return queue_json(c, MHD_HTTP_OK, sv_mcp_error(r->msg.id,
		    SV_RPC_INTERNAL_ERROR, "supervised is shutting down; "
		    "nothing was proposed"), NULL, NULL);
	}
	r->start_ms = sv_now_ms();
	r->next_progress_ms = r->start_ms + sc.cfg.progress * 1000;
	if (kind == JOB_PROPOSE && sc.cfg.max_wait > 0)
		r->deadline_ms = r->start_ms + sc.cfg.max_wait * 1000;
	r->in_flight = 1;
	r->anext = sc.calls;
	if (sc.calls)
		sc.calls->aprev = r;
	sc.calls = r;
	if (may_wait && accepts_sse(c)) {
		/* Headers now: clients give up on a call whose response
		 * headers take more than a minute. */
		r->sse = 1;
		out_append(r, ": waiting for operator\n\n", 24);
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
		    SSE_BLOCK, sse_read, r, sse_free);
		if (resp == NULL) {
			call_unlink(r);
			unlock();
			return MHD_NO;
		}
		r->refs++;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    "text/event-stream");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
		    "no-cache");
		ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
		MHD_destroy_response(resp);
	} else {
		suspend(r);
		ret = MHD_YES;
	}
	job_push(kind, r);
	unlock();
	return ret;
}

/* notifications/cancelled: find the call by (session, request id). */
static void
cancel_call(struct request *from)
{
	struct request *r;

	lock();
	for (r = sc.calls; r != NULL; r = r->anext) {
		if (r->finished || r->msg.id == NULL ||
		    !json_equal(r->msg.id, from->msg.cancel_id))
			continue;
		if ((r->session == NULL) != (from->session == NULL) ||
		    (r->session && strcmp(r->session, from->session) != 0))
			continue;
		job_push(JOB_CANCEL, r);
		break;
	}
	unlock();
}

/* The Content-Length check_headers let through; 0 when chunked. */
static size_t
body_length(struct MHD_Connection *c)
{
	const char *v = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);

	return v != NULL ? (size_t)strtoull(v, NULL, 10) : 0;
}

/* libmicrohttpd's timeout of one connection, in whole seconds, at least 1. */
static void
set_timeout(struct MHD_Connection *c, int64_t ms)
{
	MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
	    (unsigned)((ms + 999) / 1000 > 0 ? (ms + 999) / 1000 : 1));
}

/* A flood makes one line a minute: "VERB N NOUN(s) WHY VALUE UNIT". */
static void
log_flood(struct sv_ratelog *rl, const char *verb, const char *noun,
    const char *why, long value, const char *unit)
{
	unsigned long n;

	if (sv_ratelog(rl, &n))
		sv_warnx("%s %lu %s%s%s%ld%s", verb, n, noun, n == 1 ? "" : "s",
		    why, value, unit);
}

static void
log_over_budget(void)
{
	log_flood(&sc.over_budget, "refused", "request",
	    ": request bodies hold the whole budget of ", sc.cfg.body_budget,
	    " MiB (--body-budget)");
}

static void
log_too_slow(void)
{
	log_flood(&sc.too_slow, "closed", "connection",
	    " whose body took longer than ", sc.cfg.body_timeout,
	    "s (--body-timeout)");
}

static enum MHD_Result
refuse_over_budget(struct MHD_Connection *c)
{
	static const char text[] = "request bodies hold all the memory the "
	    "sidecar lends them; try again shortly\n";

	log_over_budget();
	return queue_body(c, MHD_HTTP_SERVICE_UNAVAILABLE,
	    "text/plain; charset=utf-8", text, sizeof text - 1,
	    MHD_HTTP_HEADER_RETRY_AFTER, "5");
}

static enum MHD_Result
handle_body(struct MHD_Connection *c, struct request *r)
{
	char *sid;
	enum MHD_Result ret;

	sv_mcp_handle(r->body ? r->body : "", r->len, &r->msg);
	r->parsed = 1;
	/* Parsed into r->msg: a waiting call need not keep the text. */
	free(r->body);
	r->body = NULL;
	r->cap = 0;
	set_timeout(c, sc.cfg.idle_timeout * 1000);
	if (r->msg.kind != SV_MCP_CALL || !r->msg.tool->proposes) {
		/* Only a proposal's payload outlives the parse. */
		lock();
		sv_budget_give(&sc.bodies, r->reserved);
		r->reserved = 0;
		unlock();
	}
	switch (r->msg.kind) {
	case SV_MCP_REPLY:
		if (r->msg.initialize) {
			if ((sid = new_session_id()) == NULL) {
				sv_warnx("can't make a session id: getrandom: %s",
				    strerror(errno));
				return queue_json(c,
				    MHD_HTTP_INTERNAL_SERVER_ERROR,
				    sv_mcp_error(r->msg.id,
				    SV_RPC_INTERNAL_ERROR, "can't make a "
				    "session id; try again"), NULL, NULL);
			}
			ret = queue_json(c, MHD_HTTP_OK, json_incref(r->msg.reply),
			    "Mcp-Session-Id", sid);
			free(sid);
			return ret;
		}
		return queue_json(c, MHD_HTTP_OK, json_incref(r->msg.reply),
		    NULL, NULL);
	case SV_MCP_CANCEL:
		cancel_call(r);
		/* FALLTHROUGH */
	case SV_MCP_ACCEPTED:
		return queue_body(c, MHD_HTTP_ACCEPTED, "text/plain", "", 0,
		    NULL, NULL);
	case SV_MCP_CALL:
		return start_call(c, r);
	}
	return MHD_NO;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct request *r = *con_cls;
	enum MHD_Result ret;
	const char *v;
	int handled;
	char *body;
	size_t clen;
	int64_t left;

	(void)cls;
	(void)version;
	if (r == NULL) {
		ret = check_headers(c, url, method, &handled);
		if (handled)
			return ret;
		/* A body of known length takes its share now, before a byte
		 * of it is held: refused at once when there is none. */
		clen = body_length(c);
		if (clen > 0 && sv_budget_take(&sc.bodies, clen) == -1)
			return refuse_over_budget(c);
		r = sv_xmalloc(sizeof *r);
		memset(r, 0, sizeof *r);
		r->refs = 1;
		r->alive = 1;
		r->conn = c;
		r->reserved = clen;
		r->body_deadline_ms = sv_now_ms() + sc.cfg.body_timeout * 1000;
		set_timeout(c, sc.cfg.body_timeout * 1000);
		v = header(c, "Mcp-Session-Id");
		if (v != NULL)
			r->session = sv_xstrdup(v);
		lock();
		sc.ncalls++;
		unlock();
		*con_cls = r;
		return MHD_YES;
	}
	if (r->rejected) {
		/*
		 * libmicrohttpd takes no response in the middle of a body:
		 * read the rest of an oversized chunked body and throw it
		 * away, then answer 413; past a bound, just hang up.
		 */
		if (*upload_size == 0)
			return queue_text(c, MHD_HTTP_CONTENT_TOO_LARGE,
			    "request body too large (limit 1 MiB)\n");
		r->len += *upload_size;
		*upload_size = 0;
		return r->len > 16 * (size_t)SV_MCP_BODY_MAX ? MHD_NO : MHD_YES;
	}
	if (*upload_size > 0 && (left = r->body_deadline_ms - sv_now_ms()) <= 0) {
		log_too_slow();
		return MHD_NO;		/* hang up: no response mid-body */
	}
	if (*upload_size > 0) {
		/* The rest must come by the deadline, not by one more idle
		 * timeout after each byte. */
		set_timeout(c, left);
		if (r->len + *upload_size > SV_MCP_BODY_MAX) {
			/* A chunked body (its length was not known). */
			r->rejected = 1;
			r->len += *upload_size;
			*upload_size = 0;
			free(r->body);
			r->body = NULL;
			r->cap = 0;
			return MHD_YES;
		}
		if (r->len + *upload_size > r->reserved) {
			/* A chunked body takes its share as it grows. */
			if (sv_budget_take(&sc.bodies, r->len + *upload_size -
			    r->reserved) == -1) {
				log_over_budget();
				return MHD_NO;
			}
			r->reserved = r->len + *upload_size;
		}
		if (r->len + *upload_size > r->cap) {
			/* Its length when known (pages are touched only as
			 * bytes arrive), else exact, doubling after. */
			r->cap = r->len + *upload_size > 2 * r->cap ?
			    r->len + *upload_size : 2 * r->cap;
			if (r->cap < r->reserved)
				r->cap = r->reserved;
			if (r->cap > SV_MCP_BODY_MAX)
				r->cap = SV_MCP_BODY_MAX;
			r->body = sv_xrealloc(r->body, r->cap);
		}
		memcpy(r->body + r->len, upload, *upload_size);
		r->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->parsed) {
		/* Resumed: the JSON answer is ready, or its caller left. */
		lock();
		if (r->gone) {
			unlock();
			return MHD_NO;
		}
		if (!r->finished) {
			suspend(r);
			unlock();
			return MHD_YES;
		}
		body = r->out;
		r->out = NULL;
		r->out_len = r->out_cap = 0;
		unlock();
		ret = queue_body(c, MHD_HTTP_OK, "application/json",
		    body ? body : "", body ? strlen(body) : 0, NULL, NULL);
		free(body);
		return ret;
	}
	return handle_body(c, r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;

	(void)cls;
	(void)c;
	if (r == NULL)
		return;
	*con_cls = NULL;
	lock();
	r->alive = 0;
	if (!r->finished && !r->gone && r->id[0] != '\0')
		sv_warnx("the caller waiting on %s left (%s); the proposal "
		    "stays pending", r->id,
		    toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" :
		    "connection closed");
	leave(r);
	sc.ncalls--;
	request_unref(r);
	unlock();
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	sv_warnx("libmicrohttpd: %s", line);
}

/* --- start-up and shutdown ----------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: supervised [-s SLUG] [-q QUEUE_DIR] [-a AUDIT_DIR] "
	    "[-r ROOT]\n"
	    "                  [-p PORT] [-b ADDR] [--token-file FILE] "
	    "[--max-wait SEC]\n"
	    "                  [--progress SEC] [--rescan SEC] "
	    "[--idle-timeout SEC]\n"
	    "                  [--port-file FILE] [--state-dir DIR]\n"
	    "                  [--max-pending N] [--expire DURATION] "
	    "[--egress-proxy URL]\n"
	    "                  [--allow-host NAME]... [--body-budget MIB] "
	    "[--body-timeout SEC]\n"
	    "                  [--max-waiters N]\n"
	    "                  [--apply-hook PATH] [--apply-timeout SEC]\n"
	    "       supervised --drain [-s SLUG] [-q QUEUE_DIR] [-a AUDIT_DIR] "
	    "[-r ROOT]\n"
	    "                  [--state-dir DIR] [--apply-hook PATH] "
	    "[--apply-timeout SEC]\n"
	    "       supervised -h\n"
	    "Serve the MCP tools of one bottle on http://ADDR:PORT/mcp; each "
	    "call files a\nproposal and waits for the operator's decision.\n");
}

static _Noreturn void
config_error(const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", sv_prog, msg);
	exit(2);
}

static long
parse_seconds(const char *what, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		config_error("invalid %s '%s': want a whole number from %ld to "
		    "%ld", what, s, min, max);
	return v;
}

static char *
read_token_file(const char *path)
{
	struct sv_err e;
	char *buf;
	size_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		config_error("can't open token file '%s': %s", path,
		    strerror(errno));
	if (sv_read_all(fd, path, 4096, &buf, &len, &e) == -1)
		config_error("%s", e.msg);
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0 || strlen(buf) != len)
		config_error("token file '%s' holds no token", path);
	return buf;
}

/* One more name a Host header may carry (--allow-host). */
static void
add_host(struct config *cfg, const char *name)
{
	struct sv_err e;

	if (sv_valid_host(name, &e) == -1)
		config_error("invalid --allow-host: %s", e.msg);
	cfg->hosts = sv_xrealloc(cfg->hosts, (cfg->nhosts + 1) *
	    sizeof *cfg->hosts);
	cfg->hosts[cfg->nhosts++] = name;
}

/* SUPERVISE_ALLOW_HOSTS: names separated by commas or blanks. */
static void
add_hosts_env(struct config *cfg, const char *list)
{
	static char *copy;
	char *tok, *save;

	free(copy);
	copy = sv_xstrdup(list);
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save))
		add_host(cfg, tok);
}

/* Long options with no letter. */
enum { OPT_APPLY_HOOK = 1000, OPT_APPLY_TIMEOUT };

static void
parse_config(int argc, char **argv, struct config *cfg)
{
	static const struct option opts[] = {
		{ "slug", required_argument, NULL, 's' },
		{ "queue-dir", required_argument, NULL, 'q' },
		{ "audit-dir", required_argument, NULL, 'a' },
		{ "root", required_argument, NULL, 'r' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "max-wait", required_argument, NULL, 'W' },
		{ "rescan", required_argument, NULL, 'R' },
		{ "progress", required_argument, NULL, 'P' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "body-budget", required_argument, NULL, 'B' },
		{ "body-timeout", required_argument, NULL, 'Y' },
		{ "max-waiters", required_argument, NULL, 'K' },
		{ "port-file", required_argument, NULL, 'F' },
		{ "allow-host", required_argument, NULL, 'H' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "max-pending", required_argument, NULL, 'M' },
		{ "expire", required_argument, NULL, 'E' },
		{ "egress-proxy", required_argument, NULL, 'G' },
		{ "apply-hook", required_argument, NULL, OPT_APPLY_HOOK },
		{ "apply-timeout", required_argument, NULL, OPT_APPLY_TIMEOUT },
		{ "drain", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *port = getenv("SUPERVISE_PORT"), *token_file = NULL;
	const char *max_pending = getenv("SUPERVISE_MAX_PENDING");
	const char *expire = getenv("SUPERVISE_EXPIRE");
	const char *hook = getenv("SUPERVISE_APPLY_HOOK");
	const char *hook_timeout = getenv("SUPERVISE_APPLY_TIMEOUT");
	const char *v;
	struct sv_err e;
	int ch;

	memset(cfg, 0, sizeof *cfg);
	cfg->slug = getenv("SUPERVISE_BOTTLE_SLUG");
	cfg->queue_dir = getenv("SUPERVISE_QUEUE_DIR");
	cfg->audit_dir = getenv("SUPERVISE_AUDIT_DIR");
	cfg->bind = getenv("SUPERVISE_BIND");
	cfg->egress_proxy = getenv("SUPERVISE_EGRESS_PROXY");
	cfg->rescan = 5;
	cfg->progress = 25;
	cfg->idle_timeout = 60;
	cfg->body_budget = 64;
	cfg->body_timeout = 30;
	cfg->max_waiters = 64;
	while ((ch = getopt_long(argc, argv, "s:q:a:r:p:b:h", opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 's': cfg->slug = optarg; break;
		case 'q': cfg->queue_dir = optarg; break;
		case 'a': cfg->audit_dir = optarg; break;
		case 'r':
			if (optarg[0] == '\0')
				config_error("invalid root ''");
			setenv("SUPERVISE_ROOT", optarg, 1);
			break;
		case 'p': port = optarg; break;
		case 'b': cfg->bind = optarg; break;
		case 'T': token_file = optarg; break;
		case 'W':
			cfg->max_wait = parse_seconds("--max-wait", optarg, 0,
			    86400 * 365);
			break;
		case 'R':
			cfg->rescan = parse_seconds("--rescan", optarg, 1, 86400);
			break;
		case 'P':
			cfg->progress = parse_seconds("--progress", optarg, 1,
			    3600);
			break;
		case 'I':
			cfg->idle_timeout = parse_seconds("--idle-timeout",
			    optarg, 1, 86400);
			break;
		case 'B':
			cfg->body_budget = parse_seconds("--body-budget",
			    optarg, 1, 65536);
			break;
		case 'K':
			cfg->max_waiters = parse_seconds("--max-waiters",
			    optarg, 1, 1000000);
			break;
		case 'Y':
			cfg->body_timeout = parse_seconds("--body-timeout",
			    optarg, 1, 3600);
			break;
		case 'F': cfg->port_file = optarg; break;
		case 'H': add_host(cfg, optarg); break;
		case 'S':
			if (optarg[0] == '\0')
				config_error("invalid state directory ''");
			free(cfg->state_dir);
			cfg->state_dir = sv_xstrdup(optarg);
			break;
		case 'M': max_pending = optarg; break;
		case 'E': expire = optarg; break;
		case 'G': cfg->egress_proxy = optarg; break;
		case OPT_APPLY_HOOK: hook = optarg; break;
		case OPT_APPLY_TIMEOUT: hook_timeout = optarg; break;
		case 'D': cfg->drain = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		config_error("unexpected argument '%s' (see supervised -h)",
		    argv[optind]);
	if (cfg->slug == NULL || cfg->slug[0] == '\0')
		config_error("no bottle: set SUPERVISE_BOTTLE_SLUG or use -s "
		    "SLUG");
	if (sv_valid_slug(cfg->slug, &e) == -1)
		config_error("%s", e.msg);
	if (cfg->queue_dir != NULL && cfg->queue_dir[0] == '\0')
		cfg->queue_dir = NULL;
	if (cfg->audit_dir != NULL && cfg->audit_dir[0] == '\0')
		cfg->audit_dir = NULL;
	if (cfg->bind == NULL || cfg->bind[0] == '\0')
		cfg->bind = "127.0.0.1";
	if (cfg->state_dir == NULL)
		cfg->state_dir = sv_state_dir(cfg->slug);
	if (cfg->egress_proxy != NULL && cfg->egress_proxy[0] == '\0')
		cfg->egress_proxy = NULL;
	if (cfg->egress_proxy != NULL &&
	    sv_egress_check_url(cfg->egress_proxy, &e) == -1)
		config_error("%s", e.msg);
	/* A hook that can't run is a configuration error, not a surprise at
	 * the first approval. */
	if (sv_hook_find(hook, &cfg->apply_hook, &e) == -1)
		config_error("%s", e.msg);
	cfg->apply_timeout = SV_HOOK_TIMEOUT;
	if (hook_timeout != NULL && hook_timeout[0] != '\0')
		cfg->apply_timeout = parse_seconds("--apply-timeout",
		    hook_timeout, 1, 86400);
	cfg->port = parse_seconds("port", port && *port ? port : "9100", 0,
	    65535);
	cfg->max_pending = MAX_PENDING;
	if (max_pending != NULL && *max_pending != '\0')
		cfg->max_pending = parse_seconds("--max-pending", max_pending,
		    1, 100000000);
	if (expire != NULL && *expire != '\0' && strcmp(expire, "off") != 0 &&
	    sv_parse_duration(expire, &cfg->expire) == -1)
		config_error("invalid --expire '%s': want a duration such as "
		    "90s, 30m, 24h or 7d, or off", expire);
	if (token_file != NULL)
		cfg->token = read_token_file(token_file);
	else if ((v = getenv("SUPERVISE_TOKEN")) != NULL && v[0] != '\0')
		cfg->token = sv_xstrdup(v);
	if (cfg->token != NULL)
		sv_token_digest(cfg->token, cfg->token_digest);
	for (size_t i = 0; sv_host_defaults[i] != NULL; i++)
		add_host(cfg, sv_host_defaults[i]);
	if ((v = getenv("SUPERVISE_ALLOW_HOSTS")) != NULL)
		add_hosts_env(cfg, v);
}

static void
open_stores(void)
{
	struct sv_err e;
	char *qdir = sc.cfg.queue_dir ? sv_xstrdup(sc.cfg.queue_dir) :
	    sv_queue_dir(sc.cfg.slug);

	if (sv_spool_open(&sc.spool, qdir, sc.cfg.slug, 1, &e) == -1) {
		free(qdir);
		sv_die(1, "%s", e.msg);
	}
	free(qdir);
	if (sv_audit_open(&sc.audit, sc.cfg.audit_dir, &e) == -1)
		sv_die(1, "%s", e.msg);
	sv_audit_defer_merges(sc.audit);	/* see batch_flush */
	sv_audit_defer_sync(sc.audit);		/* answer first: consume.c */
	if (sv_applier_new(&sc.applier, sc.audit, sc.cfg.slug,
	    sc.cfg.state_dir, sc.cfg.apply_hook, sc.cfg.apply_timeout,
	    sc.spool.dirfd, on_applied, NULL, &e) == -1)
		sv_die(1, "%s", e.msg);
}

/*
 * Recovery: mark what responses/new holds (its apply is due once it is
 * committed), consume it, bring the live files up to date, and apply
 * again what a crash left unapplied (the markers).
 */
static int
recover(void (*cb)(const struct sv_decision *, void *))
{
	struct dirent *de;
	struct sv_err e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *dir;
	int fd, rc = 0;

	fd = dup(sc.spool.rnew);
	if (fd != -1 && (dir = fdopendir(fd)) != NULL) {
		rewinddir(dir);
		while ((de = readdir(dir)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (n == cap)
				names = sv_xrealloc(names, (cap = cap ? 2 * cap :
				    64) * sizeof *names);
			names[n++] = sv_xstrdup(de->d_name);
		}
		closedir(dir);
	} else if (fd != -1) {
		close(fd);
	}
	if (sv_applier_mark(sc.applier, names, n, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc == 0 && sv_consume_all(&sc.spool, sc.audit, cb, NULL, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	publish_live();
	if (sv_applier_recover(sc.applier, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	if (sv_applier_flush(sc.applier, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	return rc;
}

static void
print_drained(const struct sv_decision *d, void *arg)
{
	char *why;

	on_decision(d, arg);
	if (d->status == SV_NONE && d->error == NULL)
		return;
	if (d->status == SV_NONE) {
		why = sv_escape(d->error ? d->error : "?",
		    strlen(d->error ? d->error : "?"), 0);
		printf("%s\trefused\t%s\n", d->id, why);
		free(why);
	} else {
		printf("%s\t%s\n", d->id, sv_status_name(d->status));
	}
}

static int
drain(void)
{
	struct sv_err e;
	int n;

	open_stores();
	n = recover(print_drained);
	if (sv_applier_wait(sc.applier, &e) == -1) {
		sv_warn_err(&e);
		n = -1;
	}
	fflush(stdout);
	if (n == 0 && sv_audit_maintain(sc.audit, &e) == -1)
		sv_warn_err(&e);
	sv_applier_free(sc.applier);
	sv_audit_close(sc.audit);
	sv_spool_close(&sc.spool);
	return n == -1 ? 1 : 0;
}

/* Pending proposals become attachable again after a restart (withdrawn
 * ones are known, for expiry, but not offered to retries); `again`, with
 * --expire: those other writers filed since, quietly (ids already known
 * are not read again). */
static void
load_pending(int again)
{
	struct sv_entry *v;
	struct sv_proposal p;
	struct sv_err e;
	size_t n, i, keylen;
	char *path, *key;
	struct pending *pp;
	int known;

	if (sv_list_pending(&sc.spool, &v, &n, &e) == -1) {
		if (!again)
			sv_warn_err(&e);
		return;
	}
	for (i = 0; i < n; i++) {
		lock();
		known = pending_by_id(v[i].id) != NULL;
		unlock();
		if (known)
			continue;
		path = sv_xasprintf("proposals/%s/%s",
		    v[i].where == SV_NEW ? "new" : "cur", v[i].name);
		if (sv_proposal_read(v[i].where == SV_NEW ? sc.spool.pnew :
		    sc.spool.pcur, v[i].name, path, &p, &e) == -1) {
			if (!again)	/* said once, not at every re-scan */
				sv_warn_err(&e);
		} else {
			/* Withdrawn: not offered to a retry, but it may expire. */
			keylen = 0;
			key = strchr(v[i].flags, 'T') != NULL ? NULL :
			    make_key(p.tool, p.proposed_file, &keylen);
			lock();
			pp = pending_get(p.id, key, keylen);
			pp->expires = expiry_of(p.arrival_timestamp);
			pp->gone_marked = v[i].gone;
			unlock();
		}
		sv_proposal_free(&p);
		free(path);
	}
	sv_entries_free(v);
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			sv_warnx("can't raise the open file limit: %s",
			    strerror(errno));
	}
}

/* Connections we can carry: the file limit less a reserve for the spool,
 * the audit repository and libmicrohttpd's own descriptors. */
static unsigned
connection_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return 65536;
	if (rl.rlim_cur < 128)
		return 16;
	return rl.rlim_cur - 64 > 1000000 ? 1000000 :
	    (unsigned)(rl.rlim_cur - 64);
}

static void
write_port_file(const char *path, unsigned port)
{
	char *tmp = sv_xasprintf("%s.tmp", path), line[16];
	int fd, n;

	n = snprintf(line, sizeof line, "%u\n", port);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1 || sv_write_all(fd, line, (size_t)n) == -1 ||
	    close(fd) == -1 || rename(tmp, path) == -1)
		sv_die(1, "can't write port file '%s': %s", path,
		    strerror(errno));
	free(tmp);
}

static void
start_http(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	const union MHD_DaemonInfo *info;
	unsigned flags, port;
	int v6 = 0;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, sc.cfg.bind, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)sc.cfg.port);
	} else if (inet_pton(AF_INET6, sc.cfg.bind, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)sc.cfg.port);
		v6 = 1;
	} else {
		config_error("invalid bind address '%s': want an IPv4 or IPv6 "
		    "address", sc.cfg.bind);
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	    (v6 ? MHD_USE_IPv6 : 0);
	sc.mhd = MHD_start_daemon(flags, (uint16_t)sc.cfg.port, NULL, NULL,
	    on_request, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)sc.cfg.idle_timeout,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
	    MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)512,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_END);
	if (sc.mhd == NULL)
		sv_die(1, "can't listen on %s%s%s:%ld", v6 ? "[" : "",
		    sc.cfg.bind, v6 ? "]" : "", sc.cfg.port);
	info = MHD_get_daemon_info(sc.mhd, MHD_DAEMON_INFO_BIND_PORT);
	port = info ? info->port : (unsigned)sc.cfg.port;
	if (sc.cfg.port_file != NULL)
		write_port_file(sc.cfg.port_file, port);
	fprintf(stderr, "%s: listening on %s%s%s:%u\n", sv_prog, v6 ? "[" : "",
	    sc.cfg.bind, v6 ? "]" : "", port);
}

/*
 * Answer every call with a clear error (its proposal stays pending), let
 * libmicrohttpd flush those answers, then stop it: it must not be
 * stopped with a connection still suspended.
 */
static void
shutdown_calls(void)
{
	struct resume_list rl = {0};
	struct request *r;
	struct job *j;
	int64_t until;
	size_t left;

	lock();
	sc.stopping = 1;
	while ((j = sc.jobs) != NULL) {
		sc.jobs = j->next;
		if (j->kind != JOB_CANCEL)
			finish(j->r, sv_mcp_error(j->r->msg.id,
			    SV_RPC_INTERNAL_ERROR, "supervised is shutting "
			    "down; nothing was proposed"), &rl);
		request_unref(j->r);
		free(j);
	}
	sc.jobs_tail = &sc.jobs;
	while ((r = sc.calls) != NULL) {
		if (r->id[0] != '\0')
			finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
			    "supervised is shutting down; proposal %s stays "
			    "pending", r->id), &rl);
		else
			finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
			    "supervised is shutting down"), &rl);
	}
	unlock();
	resume_all(&rl);
	until = sv_now_ms() + STOP_DRAIN_MS;
	for (;;) {
		lock();
		left = sc.ncalls;
		unlock();
		if (left == 0 || sv_now_ms() >= until)
			break;
		usleep(10000);
	}
	MHD_stop_daemon(sc.mhd);
	sc.mhd = NULL;
}

static void
free_pending(void)
{
	size_t i;

	for (i = 0; i < NBUCKETS; i++)
		while (sc.by_id[i] != NULL)
			pending_drop(sc.by_id[i]);
}

/*
 * Part of the start-up notice: when this account's operator has no email
 * (no SUPERVISE_OPERATOR, no git user.email), what their decisions are
 * recorded as, the tools' words, once, where whoever started us sees it.
 */
static void
say_operator(void)
{
	char *note, *who = sv_operator(&note);

	if (note != NULL)
		sv_warnx("%s", note);
	free(note);
	free(who);
}

static int
serve(void)
{
	struct epoll_event ev, evs[8];
	struct itimerspec its;
	char buf[64 * 1024] __attribute__((aligned(8)));
	struct signalfd_siginfo si;
	struct sv_err e;
	sigset_t sigs;
	struct batch batch;
	int ep, ino, tfd, sfd, n, i, stop = 0, overflow;
	int64_t next_rescan, next_clean, next_expire, now;
	ssize_t len;
	char *p;
	uint64_t ticks;

	pthread_mutex_init(&sc.lock, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	open_stores();
	say_operator();

	/* Subscribe before anything is proposed. */
	ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ino == -1)
		sv_die(1, "can't start inotify: %s", strerror(errno));
	p = sv_xasprintf("%s/responses/new", sc.spool.path);
	if (inotify_add_watch(ino, p, IN_MOVED_TO | IN_CLOSE_WRITE |
	    IN_ONLYDIR) == -1)
		sv_warnx("can't watch '%s' (re-scanning every %lds instead): "
		    "%s", p, sc.cfg.rescan, strerror(errno));
	free(p);

	/* Recovery: decisions that landed while no sidecar ran, and those
	 * a crash left unapplied; the live files as main has them. */
	recover(on_decision);
	if (sv_audit_maintain(sc.audit, &e) == -1)
		sv_warn_err(&e);
	load_pending(0);
	if (sv_clean_tmp(&sc.spool, SV_TMP_MAX_AGE, &e) == -1)
		sv_warn_err(&e);
	/* For the operator's tools; then what expired while stopped. */
	if (sv_spool_set_expire(&sc.spool, sc.cfg.expire, &e) == -1)
		sv_warn_err(&e);
	expire_due();
	policy_ready();

	/*
	 * Until here a signal just ends us: recovery is safe to interrupt
	 * at any point (that is what it is for).  From now on SIGTERM and
	 * SIGINT are read from a signalfd by the loop below; blocked before
	 * libmicrohttpd's thread starts, so no other thread takes them.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd == -1)
		sv_die(1, "can't create a signalfd: %s", strerror(errno));
	sc.jobs_tail = &sc.jobs;
	sc.job_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (sc.job_fd == -1 || tfd == -1 || ep == -1)
		sv_die(1, "can't set up the event loop: %s", strerror(errno));
	memset(&its, 0, sizeof its);
	its.it_interval.tv_nsec = TICK_MS * 1000000L;
	its.it_value = its.it_interval;
	timerfd_settime(tfd, 0, &its, NULL);
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = sc.job_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sc.job_fd, &ev);
	ev.data.fd = ino;
	epoll_ctl(ep, EPOLL_CTL_ADD, ino, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	if (sc.cfg.egress_proxy != NULL &&
	    sv_egress_open(&sc.egress, sc.cfg.egress_proxy, ep, &e) == -1)
		sv_die(1, "%s", e.msg);
	ev.data.fd = sv_applier_fd(sc.applier);
	epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);

	sc.hup_ep = epoll_create1(EPOLL_CLOEXEC);
	if (sc.hup_ep == -1)
		sv_die(1, "can't set up the event loop: %s", strerror(errno));
	ev.events = EPOLLIN;
	ev.data.fd = sc.hup_ep;
	epoll_ctl(ep, EPOLL_CTL_ADD, sc.hup_ep, &ev);
	sv_budget_init(&sc.bodies, (size_t)sc.cfg.body_budget << 20);
	start_http();
	batch.n = 0;
	next_rescan = sv_now_ms() + sc.cfg.rescan * 1000;
	next_clean = sv_now_ms() + CLEAN_EVERY_MS;
	next_expire = sv_now_ms() + EXPIRE_EVERY_MS;
	while (!stop) {
		n = epoll_wait(ep, evs, 8, -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			sv_die(1, "epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sfd) {
				if (read(sfd, &si, sizeof si) == sizeof si)
					sv_warnx("%s: answering waiting calls "
					    "and stopping",
					    strsignal((int)si.ssi_signo));
				stop = 1;
			} else if (fd == sc.job_fd) {
				run_jobs();
			} else if (fd == sc.hup_ep) {
				callers_left();
			} else if (fd == sv_applier_fd(sc.applier)) {
				sv_applier_events(sc.applier);
				if (sc.maintain_due)
					maintain();
			} else if (fd == ino) {
				/* Everything reported so far is one batch. */
				overflow = 0;
				while ((len = read(ino, buf, sizeof buf)) > 0) {
					for (p = buf; p < buf + len;) {
						struct inotify_event *ie =
						    (struct inotify_event *)p;

						if (ie->mask & IN_Q_OVERFLOW)
							overflow = 1;
						else if (ie->len > 0)
							batch_add(&batch,
							    ie->name);
						p += sizeof *ie + ie->len;
					}
				}
				batch_flush(&batch);
				if (overflow)
					rescan(0);
			} else if (fd == tfd) {
				if (read(tfd, &ticks, sizeof ticks) == -1 &&
				    errno != EAGAIN)
					sv_warnx("timerfd: %s", strerror(errno));
				tick();
				now = sv_now_ms();
				if (now >= next_rescan) {
					rescan(2);
					/* Proposals other writers filed. */
					if (sc.cfg.expire > 0)
						load_pending(1);
					next_rescan = now + sc.cfg.rescan * 1000;
				}
				if (now >= next_expire) {
					expire_due();
					next_expire = now + EXPIRE_EVERY_MS;
				}
				if (now >= next_clean) {
					if (sv_clean_tmp(&sc.spool,
					    SV_TMP_MAX_AGE, &e) == -1)
						sv_warn_err(&e);
					next_clean = now + CLEAN_EVERY_MS;
				}
			} else if (sc.egress != NULL) {
				sv_egress_event(sc.egress, fd, evs[i].events);
			}
		}
		gone_sync();
	}
	shutdown_calls();
	gone_sync();
	sv_egress_close(sc.egress);
	sv_applier_free(sc.applier);
	free_pending();
	sv_rules_free(&sc.rules);
	close(ep);
	close(tfd);
	close(ino);
	close(sfd);
	close(sc.job_fd);
	close(sc.hup_ep);
	sv_audit_close(sc.audit);
	sv_spool_close(&sc.spool);
	pthread_mutex_destroy(&sc.lock);
	free(sc.cfg.token);
	free(sc.cfg.state_dir);
	free(sc.cfg.apply_hook);
	return 0;
}

int
main(int argc, char **argv)
{
	int rc;

	sv_setprog(argv[0]);
	parse_config(argc, argv, &sc.cfg);
	if (sc.cfg.drain) {
		rc = drain();
		free(sc.cfg.token);
		free(sc.cfg.hosts);
		free(sc.cfg.state_dir);
		free(sc.cfg.apply_hook);
		return rc;
	}
	return serve();
}
