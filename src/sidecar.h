/*
 * sidecar.h: what the parts of supervised, the MCP sidecar of one bottle,
 * share: its configuration, the requests and pending proposals of the
 * table of waiting calls, the job queue, and the one `sc` that holds them.
 * Only supervised's own files include it (supervised.c, config.c,
 * http.c, calls.c, jobs.c, decisions.c); the library's parts it uses
 * are in daemon.h.  The functions they share are named sd_ (the
 * library's are sv_), so that none is taken for a namesake of another
 * file's own.
 *
 * Threads, and who may touch what:
 *  - libmicrohttpd's internal epoll thread speaks HTTP and JSON-RPC
 *    (http.c, mcp.c).  It never touches the disk: a call that needs the
 *    spool or the audit repository becomes a job for the spool thread
 *    (jobs.c), and its connection is suspended (MHD_suspend_connection),
 *    so a waiting call holds a socket and a few hundred bytes, never a
 *    thread.
 *  - The main thread is the spool thread (supervised.c's serve): one
 *    epoll loop over the job eventfd, inotify on responses/new (watched
 *    from start-up, so every decision after a proposal is published is
 *    seen: subscribe, publish, re-check by name, wait), a timerfd
 *    (progress, --max-wait, the slow re-scan, tmp/ cleaning) and a
 *    signalfd.  It alone opens the audit repository, so libgit2 is never
 *    shared between threads.
 *  - One mutex (lock, unlock) guards the requests, the job queue and the
 *    table of pending proposals (calls.c); disk and git work happen
 *    outside it.  Whoever clears a request's `suspended` flag (under the
 *    mutex) resumes its connection, after dropping the mutex; a suspended
 *    connection cannot go away, so the pointer stays good until then.
 *
 * On an SSE stream the reader callback (http.c) hands out what the spool
 * thread queued, and suspends the connection when there is nothing to
 * send (the pattern libmicrohttpd prescribes for "no data yet"); queueing
 * data resumes it.
 */
#ifndef SUPERVISE_SIDECAR_H
#define SUPERVISE_SIDECAR_H

#include <pthread.h>
#include <stdio.h>

#include "daemon.h"

#define RPC_TOO_MANY	-32001		/* --max-pending reached: not filed */
#define NBUCKETS	4096		/* of each table of pending proposals */

struct MHD_Connection;
struct MHD_Daemon;

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
	/* Flags: a byte each, never bits, as two threads set them. */
	unsigned char alive;	/* the request is not completed yet */
	unsigned char suspended;	/* suspended by us and not resumed yet */
	unsigned char sse;	/* answered on an SSE stream */
	unsigned char in_flight;	/* on the sidecar's list of calls */
	unsigned char finished;	/* the final answer is queued */
	unsigned char rejected;	/* an early error response was queued */
	unsigned char gone;	/* its client hung up while it waited */
	unsigned char watched;	/* fd is in sc.hup_ep */
	unsigned char parsed;	/* the body went through sv_mcp_handle */
	int fd;			/* the connection's socket, once watched */
	char *body;
	size_t len, cap;
	size_t reserved;	/* taken from the body budget, until freed */
	int64_t body_deadline_ms;	/* the body must be in by then */
	char *out;		/* SSE bytes to send, or the JSON answer */
	size_t out_len, out_off, out_cap;
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
	char *key;		/* tool NUL payload; NULL: not deduplicated */
	size_t keylen;
	struct request *waiters;
	size_t nwaiters;
	int gone_marked;	/* gone/ID exists (gone.c) */
	struct pending *id_next, *key_next;
	time_t expires;		/* when it is rejected; 0: never or unknown */
	int expiring;		/* its rejection is on the way */
	char id[];		/* as long as it is: one per waiting call */
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

extern struct sidecar sc;

/*
 * Names seen in responses/new, consumed together: one chain of commits
 * and two flushes for all of them, however many arrived at once.
 */
struct batch {
	char *v[SV_CONSUME_BATCH];
	size_t n;
};

/* config.c: the command line and the environment */
_Noreturn void sd_config_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void sd_parse_config(int argc, char **argv, struct config *cfg);

/* http.c: the HTTP side (libmicrohttpd's thread) */
void sd_start_http(void);
void sd_give_back_memory(void);	/* spool thread: after a flood */

/* calls.c: the table of waiting calls and pending proposals; under the
 * lock unless said */
void sd_lock(void);
void sd_unlock(void);
void sd_suspend(struct request *r);
void sd_resume_all(struct resume_list *rl);	/* after unlock */
void sd_request_unref(struct request *r);
void sd_drop_payload(struct request *r);
void sd_call_unlink(struct request *r);
void sd_out_append(struct request *r, const char *s, size_t n);
void sd_finish(struct request *r, json_t *msg, struct resume_list *rl);
void sd_finish_text(struct request *r, const char *text, int is_error,
    struct resume_list *rl);
struct pending *sd_pending_by_id(const char *id);
struct pending *sd_pending_by_key(const char *key, size_t keylen);
char *sd_make_key(const char *tool, const char *payload, size_t *keylen);
struct pending *sd_pending_get(const char *id, char *key, size_t keylen);
time_t sd_expiry_of(const char *arrival);
void sd_pending_unkey(struct pending *p);
void sd_pending_drop(struct pending *p);
void sd_leave(struct request *r);
int sd_waiting(const struct request *r);
int sd_attach(struct request *r, struct pending *p, struct resume_list *rl);
/* Spool thread, taking the lock themselves: */
int sd_answer_decision(const char *id, enum sv_status status,
    const char *applied, const char *notes, const char *final_file);
void sd_answer_error(const char *id, const char *msg);
void sd_callers_left(void);
void sd_gone_sync(void);
void sd_tick(void);
void sd_free_pending(void);

/* jobs.c: the job queue, carried out by the spool thread */
int sd_policy_ready(void);
void sd_run_jobs(void);
void sd_job_push(enum job_kind kind, struct request *r);	/* under the lock */

/* decisions.c: responses consumed, committed and answered (spool thread) */
void sd_publish_live(void);
void sd_on_decision(const struct sv_decision *d, void *arg);
void sd_on_applied(const struct sv_apply_result *res, void *arg);
void sd_maintain(void);
void sd_batch_flush(struct batch *b);
void sd_batch_add(struct batch *b, const char *name);
void sd_rescan(int min_age);
void sd_recheck_into(const char *id, struct batch *b);
void sd_recheck(const char *id);
void sd_expire_due(void);

#endif
