/*
 * daemon.h: what only the daemon (supervised) and its tests use of
 * libsupervise: the MCP protocol, the consumer of responses, and the
 * audit repository's batch commits and the controls the daemon takes
 * over (when to merge packs, when to flush).  The operator tools include
 * supervise.h alone.
 */
#ifndef SUPERVISE_DAEMON_H
#define SUPERVISE_DAEMON_H

#include "supervise.h"

/* mcp.c: JSON-RPC 2.0 and the MCP methods that answer at once */
#define SV_RPC_PARSE_ERROR	-32700
#define SV_RPC_INVALID_REQUEST	-32600
#define SV_RPC_METHOD_NOT_FOUND	-32601
#define SV_RPC_INVALID_PARAMS	-32602
#define SV_RPC_INTERNAL_ERROR	-32603
#define SV_MCP_BODY_MAX		(1 << 20)	/* bytes in a request body */
/*
 * Bytes in a string request id or progressToken: a waiting call keeps
 * both (to answer and to send progress) long after its body's share of
 * the body budget is given back, so they are bounded instead.
 */
#define SV_MCP_ID_MAX		256
/* Protocol versions, newest first, NULL-terminated. */
extern const char *const sv_mcp_versions[];
int sv_mcp_version_ok(const char *v);
enum sv_mcp_kind {
	SV_MCP_REPLY,		/* send `reply` now */
	SV_MCP_ACCEPTED,	/* a notification (or a response): 202 */
	SV_MCP_CANCEL,		/* notifications/cancelled of `cancel_id`; 202 */
	SV_MCP_CALL,		/* a tools/call for the daemon to carry out */
};
struct sv_mcp_msg {
	enum sv_mcp_kind kind;
	json_t *id;		/* the request's id; NULL in a notification */
	json_t *reply;		/* SV_MCP_REPLY: the whole JSON-RPC answer */
	int initialize;		/* the reply answers initialize */
	json_t *cancel_id;	/* SV_MCP_CANCEL: params.requestId */
	const struct sv_tool *tool;	/* SV_MCP_CALL */
	json_t *progress_token;	/* params._meta.progressToken, or NULL */
	char *payload;		/* proposing tools: from sv_tool_args */
	char *justification;
	char *proposal_id;	/* proposal-status */
	long wait_seconds;	/* proposal-status; -1 when not given */
};
/*
 * Parse one request body and answer what can be answered without I/O:
 * initialize (echoes a supported protocolVersion, else the newest), ping,
 * tools/list, every error (-32700 ... -32603 with the seed's messages),
 * and tools/call arguments (validated with sv_tool_args).  Never fails;
 * free with sv_mcp_msg_free.
 */
void sv_mcp_handle(const char *body, size_t len, struct sv_mcp_msg *m);
void sv_mcp_msg_free(struct sv_mcp_msg *m);
json_t *sv_mcp_result(json_t *id, json_t *result);	/* steals result */
json_t *sv_mcp_error(json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"content": [{"type": "text", "text": TEXT}], "isError": is_error} */
json_t *sv_mcp_text_result(const char *text, int is_error);
/*
 * The seed's format_response_text with whether the change is in effect:
 * "status: approved\napplied: yes\nnotes: ...".  applied is the apply
 * note's first line ("applied: yes", "applied: no: REASON"), NULL for a
 * rejection.
 */
char *sv_mcp_decision_text(enum sv_status status, const char *applied,
    const char *notes, const char *final_file);
/* The answer of a call that stopped waiting: names the proposal. */
char *sv_mcp_pending_text(const char *id);
/* Compact one-line JSON with a trailing newline; malloc'd. */
char *sv_mcp_dumps(const json_t *j);

/* audit.c, commit.c, durable.c: the audit repository, for the daemon */
/* sv_audit_maintain builds merged packs on a thread of its own, off the
 * committers' lock, and puts them in place at a later call. */
void sv_audit_defer_merges(struct sv_audit *a);
/*
 * Commits stop once the branch has moved, before the flush that makes
 * the move durable: the caller answers, then calls sv_audit_sync, and
 * only then treats the decisions as done for good (archives them).
 * sv_audit_close syncs what is left, silently: sv_audit_sync says why
 * it failed.
 */
void sv_audit_defer_sync(struct sv_audit *a);
/* The flush a deferred commit left to do (the ref file), if any. */
int sv_audit_sync(struct sv_audit *a, struct sv_err *e);
/* What the next commit makes durable with its objects, before the branch
 * moves: a caller hands it files it did not write itself (a response
 * the operator moved in by hand).  Emptied by the commit. */
struct sv_durable *sv_audit_durable(struct sv_audit *a);
/*
 * Work for when nobody waits.  After sv_audit_defer_sync, the next
 * commit's pack and index files are made ahead.  Keep the repository's
 * packs few, when enough were written since the
 * last look: merge them at once, under the lock; or, after
 * sv_audit_defer_merges, put in place a merged pack built since the last
 * call (under the lock, a moment) and start building the next.  -1 with
 * e set when that failed: nothing is lost, the packs stay.
 */
int sv_audit_maintain(struct sv_audit *a, struct sv_err *e);
/* One decision of a batch, and what became of it. */
struct sv_audit_decision {
	const struct sv_proposal *p;
	const struct sv_response *r;
	int committed;		/* out: 1 committed now, 0 already recorded */
	/* out, committed now: its commit (else dc.commit is ""; free) */
	struct sv_decision_commit dc;
	int failed;		/* out: not committed; err says why */
	struct sv_err err;
};
/*
 * Commit v[0..n) as a chain of commits, one a decision, in order, with one
 * move of the branch and two flushes of the repository for the batch (a
 * decision already recorded is skipped, so is one that can't be applied:
 * its failed and err say why).  -1 with e set when the repository failed:
 * then every decision has failed set and none counts.
 */
int sv_audit_commit_decisions(struct sv_audit *a, struct sv_audit_decision *v,
    size_t n, struct sv_err *e);
/* consume.c: turning responses into commits and answers */
struct sv_decision {
	char id[SV_ID_MAX + 1];
	enum sv_status status;	/* SV_NONE: the response was refused */
	char *notes;
	char *final_file;
	char *error;		/* why a response was refused, or NULL */
	int late;		/* refused: its proposal was decided before */
	/* committed now: its commit on main (dc.commit "" otherwise) */
	struct sv_decision_commit dc;
};
void sv_decision_free(struct sv_decision *d);
#define SV_CONSUME_BATCH 256	/* responses committed as one chain at most */
/*
 * Consume responses/new/NAME for each of names[0..n): load each and
 * resolve it against its proposal, commit them all as one chain of
 * commits (idempotent: a decision already on main is not committed
 * again), call cb (may be NULL), which answers, for each; then, once
 * the repository is flushed (sv_audit_sync), archive each to
 * responses/cur/ID:2,S and flag its proposal R, without syncing the
 * spool's directories: recovery redoes either rename.  A malformed response (or one
 * for an unknown or already decided proposal) is moved aside
 * (sv_refuse_response) and cb gets d->status SV_NONE with d->error set;
 * that is not a failure.  A response that vanished meanwhile is skipped.
 * Returns the number of decisions and refusals reported, or -1 when any
 * response failed (e: the first reason, and how many more): one whose
 * commit or archive failed stays in new/ and is retried later; one whose
 * R flag failed is still answered (the decision stands) and recovery
 * adds the flag.
 */
int sv_consume_batch(struct sv_spool *s, struct sv_audit *a,
    char *const *names, size_t n,
    void (*cb)(const struct sv_decision *, void *), void *arg,
    struct sv_err *e);
/*
 * Recovery and drain: finish half-done archives (response in cur/ whose
 * proposal lacks R), then consume every response in new/.  `cb` is called
 * for each decision (may be NULL).  Returns the number consumed or -1.
 */
int sv_consume_all(struct sv_spool *s, struct sv_audit *a,
    void (*cb)(const struct sv_decision *, void *), void *arg,
    struct sv_err *e);

/* egress.c: the egress proxy's live route table (libcurl, in the daemon's
 * epoll loop) */
#define SV_EGRESS_INTROSPECT_URL "http://_egress.local/allowlist"
struct sv_egress;
/* An egress proxy address: http(s)://HOST[:PORT][/], nothing more. */
int sv_egress_check_url(const char *url, struct sv_err *e);
/* A client fetching through `proxy`, its sockets and timer in `epfd`. */
int sv_egress_open(struct sv_egress **eg, const char *proxy, int epfd,
    struct sv_err *e);
/* Fetches still in flight get done(arg, 0, "...stopping") first. */
void sv_egress_close(struct sv_egress *eg);
/*
 * The answer of one fetch: ok 1 and the route table (JSON, 2-space
 * indent, sorted keys), or ok 0 and a message for the agent.  Called
 * from sv_egress_event (or at once when the fetch cannot start), on the
 * thread that runs the epoll loop.
 */
typedef void sv_egress_done(void *arg, int ok, const char *text);
/* GET http://_egress.local/allowlist through the proxy, in the background. */
void sv_egress_fetch(struct sv_egress *eg, sv_egress_done *done, void *arg);
/* An epoll event on `fd`, which is none of the loop's own: curl's. */
void sv_egress_event(struct sv_egress *eg, int fd, uint32_t events);

/* guard.c: what a request must pass before its body is read */
enum sv_host_verdict { SV_HOST_OK, SV_HOST_UNKNOWN, SV_HOST_BAD };
/* Names a Host header may carry by default (addresses always may). */
extern const char *const sv_host_defaults[];
/* A Host header (NULL: none) against the names the sidecar answers to;
 * an IP address is always OK, a malformed header SV_HOST_BAD. */
enum sv_host_verdict sv_host_check(const char *host,
    const char *const *names, size_t nnames);
int sv_origin_allowed(const char *origin);	/* loopback pages only */
#define SV_TOKEN_DIGEST 32
void sv_token_digest(const char *token, unsigned char out[SV_TOKEN_DIGEST]);
/* "Bearer TOKEN" against a digest, in constant time. */
int sv_token_ok(const unsigned char want[SV_TOKEN_DIGEST], const char *auth);
int sv_json_content_type(const char *type);	/* application/json[;...] */

/* budget.c: the memory lent to request bodies, in total */
struct sv_budget {
	size_t limit;
	size_t used;
};
void sv_budget_init(struct sv_budget *b, size_t limit);
int sv_budget_take(struct sv_budget *b, size_t n);	/* 0, or -1: over */
void sv_budget_give(struct sv_budget *b, size_t n);
size_t sv_budget_used(const struct sv_budget *b);
/* Events logged at most once a minute, with their count. */
struct sv_ratelog {
	unsigned long count;
	time_t last;
};
int sv_ratelog(struct sv_ratelog *rl, unsigned long *n);

#endif
