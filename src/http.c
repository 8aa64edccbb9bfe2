/*
 * http.c: the HTTP side of the sidecar, on libmicrohttpd.  A request's
 * headers are checked before its body is read (path, Host, Origin, bearer
 * token, method, type, protocol version, length: guard.c's verdicts as
 * status codes); its body is read under the memory budget and its
 * deadline, parsed (mcp.c), and answered at once or handed to the spool
 * thread as a job; a waiting call gets its answer as JSON when resumed,
 * or on an SSE stream that sse_read feeds.  start_http listens.
 *
 * Threads: all of it but start_http runs on libmicrohttpd's internal
 * thread, which never touches the disk; the table of waiting calls is
 * reached under the mutex (calls.c).  The full account is in sidecar.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "sidecar.h"

/*
 * Memory per waiting call, which is what 10,000 of them cost.  Most of it
 * is libmicrohttpd's: its connection (~460 bytes) and the connection's
 * pool, allocated whole, which holds the request's headers (their text
 * and a 64-byte record each) and then our response's headers; never the
 * body.  2 KiB fits what the MCP SDK sends with a bearer token and a
 * session (12 lines, ~420 bytes: ~1.2 KiB of pool) with ~600 bytes to
 * spare (t/0429 sends 14 lines, ~720 bytes); more gets 431 from
 * libmicrohttpd.  1.5 KiB would not leave that room, and
 * with less than about 200 bytes left after a request's headers a
 * response cannot be built at all (the connection is closed).
 *
 * An SSE stream is chunked, and libmicrohttpd has the reader fill the
 * connection's own write buffer then: the response's block serves only
 * an HTTP/1.0 client, so it is small.  No Cache-Control: nothing caches
 * the answer to a POST.  Per waiting call: 3 KiB pool, 256-byte block,
 * 5.2 KiB; 2 KiB, 32 bytes and the rest in calls.c, 3.7 KiB (BENCHMARKS.md).
 */
#define CONN_MEMORY	2048
#define SSE_BLOCK	32

/*
 * What a flood leaves behind.  Big blocks are mapped apart (main), but
 * glibc keeps the small ones freed inside its heap for the process to
 * use again: so the daemon went on holding what a flood of connections
 * took (their memory pools, 2.5 KiB each) once it was over: 61 MiB,
 * idle 12, after 19,800 connections of trickled bodies.  Once many
 * connections have closed, or much of the body budget has come back,
 * since the last look, and the counts hold still for a tick, the spool
 * thread's tick gives the free pages back (malloc_trim: a few
 * milliseconds, after floods only).
 * libmicrohttpd frees the connections it closed only when its thread
 * next wakes, which may be at the next connection: so the trim is done
 * again once one has come.  Counted on libmicrohttpd's thread, read on
 * the spool thread; a race between them costs one trim too many or too
 * few, nothing else.
 */
#define TRIM_CONNS	1024
#define TRIM_BYTES	((size_t)8 << 20)

static unsigned long nconns, conns_high, nstarted;
static size_t bodies_high;

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	unsigned long n;

	(void)cls;
	(void)c;
	(void)socket_context;
	if (code != MHD_CONNECTION_NOTIFY_STARTED) {
		__atomic_sub_fetch(&nconns, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&nstarted, 1, __ATOMIC_RELAXED);
	n = __atomic_add_fetch(&nconns, 1, __ATOMIC_RELAXED);
	if (n > __atomic_load_n(&conns_high, __ATOMIC_RELAXED))
		__atomic_store_n(&conns_high, n, __ATOMIC_RELAXED);
}

/* A body took its share: note the most the bodies held. */
static void
note_bodies(void)
{
	size_t used = sv_budget_used(&sc.bodies);

	if (used > __atomic_load_n(&bodies_high, __ATOMIC_RELAXED))
		__atomic_store_n(&bodies_high, used, __ATOMIC_RELAXED);
}

void
sd_give_back_memory(void)
{
	static unsigned long last_n, armed_at;
	static size_t last_used;
	static int armed;
	unsigned long n = __atomic_load_n(&nconns, __ATOMIC_RELAXED);
	unsigned long started = __atomic_load_n(&nstarted, __ATOMIC_RELAXED);
	size_t used = sv_budget_used(&sc.bodies);
	int still = n == last_n && used == last_used;

	last_n = n;
	last_used = used;
	if (!still)
		return;
	if (__atomic_load_n(&conns_high, __ATOMIC_RELAXED) >= n + TRIM_CONNS ||
	    __atomic_load_n(&bodies_high, __ATOMIC_RELAXED) >= used +
	    TRIM_BYTES) {
		__atomic_store_n(&conns_high, n, __ATOMIC_RELAXED);
		__atomic_store_n(&bodies_high, used, __ATOMIC_RELAXED);
		armed = 1;
		armed_at = started;
	} else if (!armed || started == armed_at) {
		return;
	} else {
		armed = 0;
	}
	malloc_trim(0);
}

/* --- HTTP (libmicrohttpd's thread) ---------------------------------------- */

/*
 * libmicrohttpd reports every connection its application closes (MHD_NO
 * from on_request, END_WITH_ERROR from sse_read) as "Application
 * reported internal error" or "application error generating response".
 * Ours are on purpose and already said (a caller that left, a body too
 * slow or over the budget), so hang_up marks the close, mhd_log drops
 * the one line libmicrohttpd writes for it, and on_completed, which it
 * calls next, clears the mark.  Its thread's alone.
 */
static _Thread_local int hanging_up;

static enum MHD_Result
hang_up(void)
{
	hanging_up = 1;
	return MHD_NO;
}

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
	sd_lock();
	if (r->gone) {
		sd_unlock();
		hanging_up = 1;
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (r->out_off < r->out_len) {
		n = r->out_len - r->out_off;
		if (n > max)
			n = max;
		memcpy(buf, r->out + r->out_off, n);
		r->out_off += n;
		if (r->out_off == r->out_len) {
			/* Sent: a waiting stream holds no buffer. */
			free(r->out);
			r->out = NULL;
			r->out_len = r->out_off = r->out_cap = 0;
		}
		sd_unlock();
		return (ssize_t)n;
	}
	if (r->finished) {
		sd_unlock();
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* Nothing to say yet: sleep until sse_send or finish wakes us. */
	sd_suspend(r);
	sd_unlock();
	return 0;
}

static void
sse_free(void *cls)
{
	sd_lock();
	sd_request_unref(cls);
	sd_unlock();
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
	sd_lock();
	if (sc.stopping) {
		sd_unlock();
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
		sd_out_append(r, ": waiting for operator\n\n", 24);
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
		    SSE_BLOCK, sse_read, r, sse_free);
		if (resp == NULL) {
			sd_call_unlink(r);
			sd_unlock();
			return MHD_NO;
		}
		r->refs++;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    "text/event-stream");
		ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
		MHD_destroy_response(resp);
	} else {
		sd_suspend(r);
		ret = MHD_YES;
	}
	sd_job_push(kind, r);
	sd_unlock();
	return ret;
}

/* notifications/cancelled: find the call by (session, request id). */
static void
cancel_call(struct request *from)
{
	struct request *r;

	sd_lock();
	for (r = sc.calls; r != NULL; r = r->anext) {
		if (r->finished || r->msg.id == NULL ||
		    !json_equal(r->msg.id, from->msg.cancel_id))
			continue;
		if ((r->session == NULL) != (from->session == NULL) ||
		    (r->session && strcmp(r->session, from->session) != 0))
			continue;
		sd_job_push(JOB_CANCEL, r);
		break;
	}
	sd_unlock();
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
		sd_lock();
		sv_budget_give(&sc.bodies, r->reserved);
		r->reserved = 0;
		sd_unlock();
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
		note_bodies();
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
		sd_lock();
		sc.ncalls++;
		sd_unlock();
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
		return r->len > 16 * (size_t)SV_MCP_BODY_MAX ? hang_up() : MHD_YES;
	}
	if (*upload_size > 0 && (left = r->body_deadline_ms - sv_now_ms()) <= 0) {
		log_too_slow();
		return hang_up();	/* no response mid-body */
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
				return hang_up();
			}
			note_bodies();
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
		sd_lock();
		if (r->gone) {
			sd_unlock();
			return hang_up();	/* callers_left said so */
		}
		if (!r->finished) {
			sd_suspend(r);
			sd_unlock();
			return MHD_YES;
		}
		body = r->out;
		r->out = NULL;
		r->out_len = r->out_cap = 0;
		sd_unlock();
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
	hanging_up = 0;
	if (r == NULL)
		return;
	*con_cls = NULL;
	sd_lock();
	r->alive = 0;
	if (!r->finished && !r->gone && r->id[0] != '\0')
		sv_warnx("the caller waiting on %s left (%s); the proposal "
		    "stays pending", r->id,
		    toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" :
		    "connection closed");
	sd_leave(r);
	sc.ncalls--;
	sd_request_unref(r);
	sd_unlock();
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n;

	(void)cls;
	if (hanging_up) {
		hanging_up = 0;
		return;
	}
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	sv_warnx("libmicrohttpd: %s", line);
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

void
sd_start_http(void)
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
		sd_config_error("invalid bind address '%s': want an IPv4 or IPv6 "
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
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
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
