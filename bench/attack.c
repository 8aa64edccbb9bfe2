/*
 * attack.c: the daemon's memory under the worst an agent can do to it.
 *
 *   attack -p PORT -P DAEMONPID -m trickle -n N [-t SECONDS]
 *   attack -p PORT -P DAEMONPID -m abandon -n N -s BYTES [-t SECONDS]
 *
 * trickle: N connections at once (run.sh gives the fd limit, less a
 * margin), each the headers of a POST with a 1 MiB body; those the daemon
 * does not refuse at once get all but 100 bytes of their body, then a
 * byte a second, until the daemon closes them or time runs out.  Refused
 * connections are held open as long as the daemon lets them be: an agent
 * that wants the daemon to hold as much as it can, for as long as it can.
 *
 * abandon: N identical capability-block calls (plain JSON) whose payload
 * is BYTES long (lines of "RUN true": about 11% more once JSON-escaped), 64 in flight at a time, each connection closed as soon
 * as its request is sent: calls the daemon files once and attaches the
 * rest to, then must notice that their callers left.
 *
 * Samples the daemon's VmRSS and open fds every 50 ms and prints them
 * idle (before), at their peak, and after: once its fds are back to the
 * idle count (or SECONDS ran out), with how long /health then takes, and
 * 2 s later.
 * Everything is on loopback and bounded by SECONDS (default 120).  Exits
 * 1 when the daemon died, did not come back to its idle fds in time, or
 * did not answer /health.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

static const char *prog = "attack";
static pid_t dpid;
static struct bench_proc idle, peak;
static uint64_t last_sample;

#define BODY	1048576		/* the trickled bodies' Content-Length */
#define KEEP	100		/* bytes of it left to trickle */
#define INFLIGHT 64		/* abandoned calls being sent at once */

/* Sample the daemon at most every 50 ms; -1 when it is gone. */
static int
sample(int force)
{
	struct bench_proc p;

	if (!force && bench_now() - last_sample < 50000000u)
		return 0;
	last_sample = bench_now();
	if (bench_proc_read(dpid, &p) != 0)
		return -1;
	if (p.rss_kib > peak.rss_kib)
		peak.rss_kib = p.rss_kib;
	if (p.fds > peak.fds)
		peak.fds = p.fds;
	return 0;
}

static void
report(const char *when, const struct bench_proc *p)
{
	printf("daemon %s: rss=%.1fMiB fds=%ld\n", when, p->rss_kib / 1024.0,
	    p->fds);
}

/* Wait for the daemon's fds to come back to idle; then /health. */
static int
settle(int port, uint64_t stop)
{
	struct bench_proc p = { 0 };
	struct bench_http h;
	uint64_t t0 = bench_now(), t;
	char *req;
	size_t len;
	int fd, rc = 0;

	while (bench_proc_read(dpid, &p) == 0 && p.fds > idle.fds + 2 &&
	    bench_now() < stop)
		usleep(50000);
	if (bench_proc_read(dpid, &p) != 0) {
		printf("daemon died\n");
		return -1;
	}
	t = bench_now();
	printf("fds back to idle after %.2fs%s\n", (t - t0) / 1e9,
	    p.fds > idle.fds + 2 ? " (NOT: time ran out)" : "");
	if (p.fds > idle.fds + 2)
		rc = -1;
	report("after", &p);
	req = bench_health_request(&len);
	bench_http_init(&h);
	if ((fd = bench_connect(port, 0)) < 0 ||
	    bench_http_send(fd, req, len) != 0 ||
	    bench_http_read(fd, &h, bench_now() + 5000000000u) != 0 ||
	    h.status != 200) {
		printf("/health after: no answer within 5 s\n");
		rc = -1;
	} else
		printf("/health after: %.1f ms\n", (bench_now() - t) / 1e6);
	if (fd >= 0)
		close(fd);
	bench_http_free(&h);
	free(req);
	/* What the daemon gives back once the flood is over (its tick
	 * trims the heap within a second); 2 s after the fds. */
	while (bench_now() < t + 2000000000u)
		usleep(50000);
	if (bench_proc_read(dpid, &p) == 0)
		report("2s later", &p);
	return rc;
}

enum { HEAD, WAIT, SEND, TRICKLE, REFUSED, DONE };

struct conn {
	int fd, state;
	size_t off;
};

static void
conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->state = DONE;
}

static void
watch(int ep, struct conn *c, long i, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)i };

	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int
trickle(int port, long n, uint64_t stop)
{
	static char fill[65536];
	static const char head[] = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
	struct conn *c = calloc((size_t)n, sizeof *c);
	long i, failed = 0, refused = 0, admitted = 0, closed = 0, open;
	uint64_t quiet, next_byte = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC), phase = 1, got, j;

	memset(fill, 'x', sizeof fill);
	for (i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLOUT, .data.u64 =
		    (uint64_t)i };

		if ((c[i].fd = bench_connect(port, 1)) < 0) {
			c[i].state = DONE;
			failed++;
			continue;
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
	}
	quiet = bench_now() + 500000000u;
	while (bench_now() < stop) {
		struct epoll_event evs[512];

		if (sample(0) == -1) {
			printf("daemon died\n");
			return -1;
		}
		got = epoll_wait(ep, evs, 512, 50);
		for (j = 0; j < got; j++) {
			struct conn *k = &c[evs[j].data.u64];
			char buf[512];
			ssize_t r;

			i = (long)evs[j].data.u64;
			if (k->state == DONE)
				continue;
			if (evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				r = read(k->fd, buf, sizeof buf - 1);
				if (r < 0 && errno == EAGAIN)
					continue;
				quiet = bench_now() + 500000000u;
				if (r > 0 && k->state != REFUSED) {
					buf[r] = '\0';
					if (strncmp(buf, "HTTP/1.1 503", 12) != 0)
						fprintf(stderr, "%s: unexpected "
						    "answer: %.60s\n", prog, buf);
					if (k->state >= SEND)
						admitted--;
					refused++;
					k->state = REFUSED;
					watch(ep, k, i, EPOLLIN | EPOLLRDHUP);
					continue;
				}
				if (r > 0)
					continue;
				/* The daemon hung up: on a refused one, or
				 * on a body that came too slowly. */
				if (k->state >= SEND && k->state != REFUSED)
					closed++;
				else if (k->state < SEND)
					failed++;
				conn_close(ep, k);
				continue;
			}
			if (k->state == HEAD) {
				/* Headers first, all of them: the daemon
				 * refuses what its budget cannot take. */
				r = write(k->fd, head + k->off,
				    sizeof head - 1 - k->off);
				if (r > 0 && (k->off += (size_t)r) ==
				    sizeof head - 1) {
					k->state = WAIT;
					k->off = 0;
					watch(ep, k, i, EPOLLIN | EPOLLRDHUP);
				}
				quiet = bench_now() + 500000000u;
			} else if (k->state == SEND) {
				size_t want = BODY - KEEP - k->off;

				r = write(k->fd, fill, want < sizeof fill ?
				    want : sizeof fill);
				if (r > 0 && (k->off += (size_t)r) ==
				    BODY - KEEP) {
					k->state = TRICKLE;
					watch(ep, k, i, EPOLLIN | EPOLLRDHUP);
				}
			}
		}
		if (phase == 1 && bench_now() > quiet) {
			/* Refusals are in: the rest get their bodies. */
			phase = 2;
			for (i = 0; i < n; i++)
				if (c[i].state == WAIT) {
					c[i].state = SEND;
					admitted++;
					watch(ep, &c[i], i, EPOLLOUT | EPOLLIN |
					    EPOLLRDHUP);
				}
			printf("trickle n=%ld connected=%ld refused at once=%ld "
			    "sending bodies=%ld\n", n, n - failed, refused,
			    admitted);
			fflush(stdout);
		}
		if (phase == 2 && bench_now() >= next_byte) {
			next_byte = bench_now() + 1000000000u;
			for (i = 0; i < n; i++)
				if (c[i].state == TRICKLE &&
				    write(c[i].fd, "x", 1) < 0 &&
				    errno != EAGAIN) {
					closed++;
					conn_close(ep, &c[i]);
				}
		}
		for (open = 0, i = 0; i < n; i++)
			if (c[i].state >= SEND && c[i].state <= TRICKLE)
				open++;
		if (phase == 2 && open == 0)
			break;
	}
	sample(1);
	for (open = 0, i = 0; i < n; i++) {
		if (c[i].state != DONE) {
			open += c[i].state != REFUSED;
			close(c[i].fd);
		}
	}
	printf("trickle n=%ld refused=%ld bodies closed by the daemon=%ld "
	    "still trickling when time ran out=%ld connect failed=%ld\n", n,
	    refused, closed, open, failed);
	close(ep);
	free(c);
	return open > 0 ? -1 : 0;
}

static int
abandon(int port, long n, long bytes, uint64_t stop)
{
	struct conn c[INFLIGHT];
	long started = 0, sent = 0, failed = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC), j, got, live = 0;
	char *payload = malloc((size_t)bytes + 1), *req;
	size_t len;

	/* A Dockerfile of BYTES: lines of "RUN true". */
	for (j = 0; j < bytes; j++)
		payload[j] = "RUN true\n"[j % 9];
	payload[bytes] = '\0';
	req = bench_call_capability(1, payload, 0, NULL, &len);
	free(payload);
	for (j = 0; j < INFLIGHT; j++)
		c[j].state = DONE;
	while (sent + failed < n && bench_now() < stop) {
		struct epoll_event evs[INFLIGHT];

		if (sample(0) == -1) {
			printf("daemon died\n");
			return -1;
		}
		for (j = 0; j < INFLIGHT && started < n; j++) {
			struct epoll_event ev = { .events = EPOLLOUT,
			    .data.u64 = (uint64_t)j };

			if (c[j].state != DONE)
				continue;
			started++;
			if ((c[j].fd = bench_connect(port, 1)) < 0) {
				failed++;
				continue;
			}
			c[j].state = SEND;
			c[j].off = 0;
			epoll_ctl(ep, EPOLL_CTL_ADD, c[j].fd, &ev);
			live++;
		}
		got = epoll_wait(ep, evs, INFLIGHT, 50);
		for (j = 0; j < got; j++) {
			struct conn *k = &c[evs[j].data.u64];
			ssize_t r = write(k->fd, req + k->off, len - k->off);

			if (r < 0 && errno == EAGAIN)
				continue;
			if (r < 0) {
				failed++;
			} else if ((k->off += (size_t)r) < len)
				continue;
			else
				sent++;
			/* Sent: hang up without waiting for the answer. */
			conn_close(ep, k);
			live--;
		}
	}
	for (j = 0; j < INFLIGHT; j++)
		if (c[j].state != DONE)
			close(c[j].fd);
	sample(1);
	printf("abandon n=%ld payload=%ld bytes sent and closed=%ld "
	    "failed=%ld\n", n, bytes, sent, failed);
	free(req);
	close(ep);
	return sent + failed < n ? -1 : 0;
}

int
main(int argc, char **argv)
{
	const char *mode = NULL;
	long n = 0, bytes = 0;
	double seconds = 120;
	int port = 0, ch, rc;
	uint64_t stop;

	while ((ch = getopt(argc, argv, "m:n:p:P:s:t:")) != -1) {
		switch (ch) {
		case 'm': mode = optarg; break;
		case 'n': n = bench_arg_long(prog, "-n", optarg); break;
		case 'p': port = (int)bench_arg_long(prog, "-p", optarg); break;
		case 'P': dpid = (pid_t)bench_arg_long(prog, "-P", optarg); break;
		case 's': bytes = bench_arg_long(prog, "-s", optarg); break;
		case 't': seconds = bench_arg_double(prog, "-t", optarg); break;
		default: goto usage;
		}
	}
	if (mode == NULL || port <= 0 || dpid <= 0 || n < 1 || optind != argc ||
	    (strcmp(mode, "trickle") != 0 && strcmp(mode, "abandon") != 0) ||
	    (strcmp(mode, "abandon") == 0 && bytes < 1))
		goto usage;
	if (bench_raise_nofile() < n + 64 && strcmp(mode, "trickle") == 0) {
		fprintf(stderr, "%s: %ld connections need %ld fds (raise "
		    "ulimit -n)\n", prog, n, n + 64);
		return 2;
	}
	/* The daemon hangs up on what it refuses, mid-body. */
	signal(SIGPIPE, SIG_IGN);
	if (bench_proc_read(dpid, &idle) != 0) {
		fprintf(stderr, "%s: can't read /proc/%d\n", prog, (int)dpid);
		return 2;
	}
	report("idle", &idle);
	peak = idle;
	stop = bench_now() + (uint64_t)(seconds * 1e9);
	rc = strcmp(mode, "trickle") == 0 ? trickle(port, n, stop) :
	    abandon(port, n, bytes, stop);
	printf("daemon peak: rss=%.1fMiB fds=%ld\n", peak.rss_kib / 1024.0,
	    peak.fds);
	if (settle(port, stop + 30000000000u) != 0)
		rc = -1;
	return rc == 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: %s -p PORT -P DAEMONPID -m trickle|abandon -n N "
	    "[-s BYTES] [-t SECONDS]\n", prog);
	return 2;
}
