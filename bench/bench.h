/*
 * bench.h: what the benchmark programs in bench/ share.
 *
 * A clock, a sample set with percentiles, a minimal HTTP/1.1 client for
 * talking to supervised over loopback, and readers of /proc.  The client
 * side is hand-rolled on purpose: it sends a fixed request and finds the
 * end of the response (Content-Length, chunked or EOF), nothing more, so
 * that what is measured is the daemon and not a client library.
 *
 * Every sample is in nanoseconds.  Summaries print milliseconds.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in nanoseconds: comparable across processes. */
uint64_t bench_now(void);
/* Idle for ms milliseconds: a pace between samples (-i). */
void bench_pause_ms(long ms);

struct bench_samples {
	uint64_t *v;
	size_t n, cap;
};
void bench_add(struct bench_samples *s, uint64_t ns);
void bench_samples_free(struct bench_samples *s);
/* The p-th percentile (nearest rank, 0 < p <= 100); sorts in place. */
uint64_t bench_pct(struct bench_samples *s, double p);
/*
 * One line: "LABEL n=N p50=X p95=X p99=X min=X max=X mean=X (ms)".
 * Sorts the samples.
 */
void bench_summary(FILE *f, const char *label, struct bench_samples *s);
/* Append the raw samples, one nanosecond count a line. */
int bench_write_raw(const char *path, const struct bench_samples *s);
/* Read a file of raw samples (as written above); -1 on error. */
int bench_read_raw(const char *path, struct bench_samples *s);

/* Raise RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
long bench_raise_nofile(void);

/* VmRSS and VmHWM in KiB, Threads, open fds of a process; -1 if unknown. */
struct bench_proc {
	long rss_kib, hwm_kib, threads, fds;
};
int bench_proc_read(pid_t pid, struct bench_proc *p);

/*
 * The MCP tools/call request for egress-block of HOST (with one path
 * prefix PATH when not NULL), as a full HTTP/1.1 POST to /mcp.  `sse`
 * selects the Accept header real clients send ("application/json,
 * text/event-stream") over plain "application/json".  malloc'd.
 */
char *bench_call_request(long rpcid, const char *host, const char *path,
    int sse, const char *token, size_t *len);
/* The same for pipelock-block of URL: approving it adds only the URL's
 * host to the allowlist, so many distinct calls leave the config small. */
char *bench_call_pipelock(long rpcid, const char *url, int sse,
    const char *token, size_t *len);
/* The same for capability-block of DOCKERFILE (any text, up to the body
 * limit): the largest payload an agent can make the daemon hold. */
char *bench_call_capability(long rpcid, const char *dockerfile, int sse,
    const char *token, size_t *len);
/* GET /health. malloc'd. */
char *bench_health_request(size_t *len);

/* A connected (or connecting, when nonblock) TCP socket to 127.0.0.1. */
int bench_connect(int port, int nonblock);

/*
 * Incremental reader of one HTTP response.  Feed it what read() returned;
 * it says when the response has ended.  The body is kept (capped) so the
 * caller can check it for the tool's answer.
 */
struct bench_http {
	char *buf;
	size_t len, cap;
	size_t hdr_end;		/* offset of the body, 0 until headers seen */
	long content_length;	/* -1: none */
	int chunked;
	size_t chunk_pos;	/* parse position in the chunked body */
	int status;		/* HTTP status code, 0 until seen */
	int done;
};
void bench_http_init(struct bench_http *h);
void bench_http_free(struct bench_http *h);
/* Feed n bytes (n == 0 means EOF).  Returns 1 when the response ended. */
int bench_http_feed(struct bench_http *h, const char *p, size_t n);
/* Did the response carry the tool result "status: approved"? */
int bench_http_approved(const struct bench_http *h);

/*
 * Send req on a blocking socket and read the response to its end, with a
 * deadline in nanoseconds (absolute, bench_now() clock).  0 when the
 * response ended, -1 on error or timeout (errno ETIMEDOUT).
 */
int bench_http_send(int fd, const char *req, size_t len);
int bench_http_read(int fd, struct bench_http *h, uint64_t deadline);

/*
 * benchsv.c: approve proposal ID as supervise-approve does.  The text
 * (malloc'd) for callers that publish it themselves, or delivered.
 */
struct sv_spool;
struct sv_err;
char *bench_approval_text(struct sv_spool *sp, const char *id,
    struct sv_err *e);
int bench_approve(struct sv_spool *sp, const char *id, struct sv_err *e);
/* Approve ids[0..n) together (sv_respond_many: two flushes for all);
 * returns how many; problems other than "already decided" on stderr. */
long bench_approve_many(struct sv_spool *sp, char **ids, size_t n,
    const char *prog);

/* Parse a positive count or a duration; exit 2 with a message if bad. */
long bench_arg_long(const char *prog, const char *opt, const char *s);
double bench_arg_double(const char *prog, const char *opt, const char *s);

#endif
