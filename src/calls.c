/*
 * calls.c: the table of waiting calls.  Each HTTP request (struct
 * request) lives here from its headers to its completion; a tools/call
 * waits on a pending proposal (struct pending, found by id, and by tool
 * and payload so that an identical retry attaches to it instead of
 * filing again), and is answered here when the decision comes: finished
 * with a JSON-RPC message, its connection resumed.  Also the keep-alives
 * and --max-wait of waiting calls (sd_tick), callers that hang up
 * (sd_callers_left), and the gone/ marks of proposals nobody waits on.
 *
 * Threads: everything here runs under the one mutex (lock, unlock), from
 * libmicrohttpd's thread or the spool thread; the functions that take it
 * themselves (sd_answer_*, sd_callers_left, sd_gone_sync, sd_tick) are the spool
 * thread's.  Connections are resumed only after the mutex is dropped
 * (resume_all).  The full account is in sidecar.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <microhttpd.h>

#include "sidecar.h"

/* --- small helpers ------------------------------------------------------- */

void
sd_lock(void)
{
	pthread_mutex_lock(&sc.lock);
}

void
sd_unlock(void)
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
 * hang-up in the spool thread's loop (sd_callers_left).  Under the lock.
 */
void
sd_suspend(struct request *r)
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

void
sd_resume_all(struct resume_list *rl)
{
	size_t i;

	for (i = 0; i < rl->n; i++)
		MHD_resume_connection(rl->v[i]);
	free(rl->v);
	memset(rl, 0, sizeof *rl);
}

/* --- requests (under the lock) ------------------------------------------ */

void
sd_request_unref(struct request *r)
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
void
sd_drop_payload(struct request *r)
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

void
sd_call_unlink(struct request *r)
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

void
sd_out_append(struct request *r, const char *s, size_t n)
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
	sd_out_append(r, s, strlen(s));
	resume_add(rl, r);
}

/*
 * The final answer of a call (a JSON-RPC message; NULL ends an SSE stream
 * without one, as a cancelled request gets).  Takes `msg`.
 */
void
sd_finish(struct request *r, json_t *msg, struct resume_list *rl)
{
	char *text;

	if (r->finished) {
		json_decref(msg);
		return;
	}
	r->finished = 1;
	waiter_unlink(r);
	sd_call_unlink(r);
	if (msg != NULL) {
		text = sv_mcp_dumps(msg);
		json_decref(msg);
		if (r->sse) {
			sd_out_append(r, "event: message\ndata: ", 21);
			sd_out_append(r, text, strlen(text));
			sd_out_append(r, "\n", 1);
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

void
sd_finish_text(struct request *r, const char *text, int is_error,
    struct resume_list *rl)
{
	sd_finish(r, sv_mcp_result(r->msg.id, sv_mcp_text_result(text, is_error)),
	    rl);
}

/* --- pending proposals (under the lock) ---------------------------------- */

struct pending *
sd_pending_by_id(const char *id)
{
	struct pending *p = sc.by_id[fnv1a(id, strlen(id)) % NBUCKETS];

	while (p != NULL && strcmp(p->id, id) != 0)
		p = p->id_next;
	return p;
}

struct pending *
sd_pending_by_key(const char *key, size_t keylen)
{
	struct pending *p = sc.by_key[fnv1a(key, keylen) % NBUCKETS];

	while (p != NULL && !(p->keylen == keylen &&
	    memcmp(p->key, key, keylen) == 0))
		p = p->key_next;
	return p;
}

char *
sd_make_key(const char *tool, const char *payload, size_t *keylen)
{
	size_t t = strlen(tool), n = strlen(payload);
	char *k = sv_xmalloc(t + 1 + n + 1);

	memcpy(k, tool, t + 1);
	memcpy(k + t + 1, payload, n + 1);
	*keylen = t + 1 + n;
	return k;
}

/* Find or add the pending entry of `id`; `key` (taken) makes it dedupable. */
struct pending *
sd_pending_get(const char *id, char *key, size_t keylen)
{
	struct pending *p = sd_pending_by_id(id);
	struct pending **b;

	if (p == NULL) {
		p = sv_xmalloc(sizeof *p + strlen(id) + 1);
		memset(p, 0, sizeof *p);
		memcpy(p->id, id, strlen(id) + 1);
		b = &sc.by_id[fnv1a(id, strlen(id)) % NBUCKETS];
		p->id_next = *b;
		*b = p;
		sc.npending++;
	}
	if (key != NULL && p->key == NULL && sd_pending_by_key(key, keylen) ==
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
time_t
sd_expiry_of(const char *arrival)
{
	time_t t = sv_expires_at(arrival, sc.cfg.expire);

	return t == (time_t)-1 ? 0 : t;
}

/* Stop offering a proposal to identical retries (decided, withdrawn). */
void
sd_pending_unkey(struct pending *p)
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

void
sd_pending_drop(struct pending *p)
{
	struct pending **b;

	while (p->waiters != NULL)
		waiter_unlink(p->waiters);
	gone_queue(p, 0);
	sd_pending_unkey(p);
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
void
sd_leave(struct request *r)
{
	struct pending *p = r->pending;

	waiter_unlink(r);
	sd_call_unlink(r);
	if (p != NULL && p->waiters == NULL && !r->finished)
		gone_queue(p, 1);
}

/*
 * Can this request still be answered?  One whose connection went before
 * its job ran must not be attached: it would outlive its memory.
 */
int
sd_waiting(const struct request *r)
{
	return r->alive && !r->finished && !r->gone;
}

/*
 * Make `r` wait on `p`; 0 when its caller left before (nothing to wait
 * for, and when nobody else waits, `p` is marked gone as leave does).
 */
int
sd_attach(struct request *r, struct pending *p, struct resume_list *rl)
{
	if (!sd_waiting(r)) {
		if (p->waiters == NULL)
			gone_queue(p, 1);
		return 0;
	}
	if (p->nwaiters >= (size_t)sc.cfg.max_waiters) {
		/* Identical calls share one proposal; a flood of them must
		 * not hold every connection the sidecar has. */
		sd_finish(r, sv_mcp_error(r->msg.id, RPC_TOO_MANY, "proposal %s "
		    "already has %ld calls waiting on it (the limit); wait on "
		    "one of them, or follow it with proposal-status", p->id,
		    sc.cfg.max_waiters), rl);
		return 1;
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
	return 1;
}

/* --- answering the waiters of a proposal (spool thread) ---------------- */

/* Answer every call waiting on `id` with the decision; forget the id. */
int
sd_answer_decision(const char *id, enum sv_status status, const char *applied,
    const char *notes, const char *final_file)
{
	struct resume_list rl = {0};
	struct pending *p;
	char *text;
	int n = 0;

	text = sv_mcp_decision_text(status, applied, notes, final_file);
	sd_lock();
	p = sd_pending_by_id(id);
	if (p != NULL) {
		while (p->waiters != NULL) {
			sd_finish_text(p->waiters, text, status == SV_REJECTED, &rl);
			n++;
		}
		sd_pending_drop(p);
	}
	sd_unlock();
	sd_resume_all(&rl);
	free(text);
	return n;
}

/* Fail every call waiting on `id` (the decision can't be read). */
void
sd_answer_error(const char *id, const char *msg)
{
	struct resume_list rl = {0};
	struct pending *p;

	sd_lock();
	p = sd_pending_by_id(id);
	while (p != NULL && p->waiters != NULL)
		sd_finish(p->waiters, sv_mcp_error(p->waiters->msg.id,
		    SV_RPC_INTERNAL_ERROR, "%s", msg), &rl);
	sd_unlock();
	sd_resume_all(&rl);
}

/* --- callers that hang up (spool thread) --------------------------------- */

/*
 * Suspended calls whose client hung up: released at once, connection and
 * memory (libmicrohttpd closes the connection when it is resumed and
 * told so), the proposal kept pending and, when no other call waits on
 * it, marked gone.
 */
void
sd_callers_left(void)
{
	struct resume_list rl = {0};
	struct epoll_event evs[64];
	struct request *r;
	int n, i;

	while ((n = epoll_wait(sc.hup_ep, evs, 64, 0)) > 0) {
		sd_lock();
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
			sd_leave(r);
			resume_add(&rl, r);
		}
		sd_unlock();
		sd_resume_all(&rl);
		if (n < 64)
			break;
	}
}

/* Write and remove the gone/ marks gone_queue asked for. */
void
sd_gone_sync(void)
{
	struct sv_err e;
	char **ops;
	size_t n, i;

	sd_lock();
	ops = sc.gone_ops;
	n = sc.ngone_ops;
	sc.gone_ops = NULL;
	sc.ngone_ops = sc.gone_cap = 0;
	sd_unlock();
	for (i = 0; i < n; i++) {
		if ((ops[i][0] == '+' ? sv_gone_mark(&sc.spool, ops[i] + 1,
		    &e) : sv_gone_clear(&sc.spool, ops[i] + 1, &e)) == -1)
			sv_warn_err(&e);
		free(ops[i]);
	}
	free(ops);
}

/* --- timer: progress and --max-wait (spool thread) ----------------------- */

void
sd_tick(void)
{
	struct resume_list rl = {0};
	struct request *r, *next;
	int64_t now = sv_now_ms();
	char age[32], *line, *text;
	json_t *note;

	sd_lock();
	for (r = sc.calls; r != NULL; r = next) {
		next = r->anext;
		if (r->finished)
			continue;
		if (r->deadline_ms > 0 && now >= r->deadline_ms &&
		    r->id[0] != '\0') {
			text = sv_mcp_pending_text(r->id);
			sd_finish_text(r, text, 0, &rl);
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
	sd_unlock();
	sd_resume_all(&rl);
	sd_give_back_memory();
}

void
sd_free_pending(void)
{
	size_t i;

	for (i = 0; i < NBUCKETS; i++)
		while (sc.by_id[i] != NULL)
			sd_pending_drop(sc.by_id[i]);
}
