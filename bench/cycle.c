/*
 * cycle.c: throughput of propose -> approve -> audit commit -> answer.
 *
 * CONC connections each make one blocking egress-block call at a time, in
 * a closed loop (a new call as soon as the previous one is answered); an
 * approver(1) running beside it answers every proposal at once.  Slot k
 * always proposes host ck.example.com with one of 8 path prefixes, so no
 * two calls in flight are identical (an identical call would attach to
 * the pending proposal) and the bottle's routes.json stays small: what
 * grows is only the history.
 *
 *   cycle -p PORT [-c CONC] [-n CYCLES] [-t SECONDS] [-j] [-o RAW] [-k TOKEN]
 *
 * Prints cycles/s over the run and the per-call latency.  Stops issuing
 * calls after CYCLES or SECONDS, then waits at most 60 s for those in
 * flight.  Exits 1 when a call failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

static const char *prog = "cycle";

struct slot {
	int fd;
	uint64_t t_start;
	long seq;
	struct bench_http h;
};

static int port, sse = 1, ep;
static const char *token;

static int
start_call(struct slot *s, int k)
{
	char host[64], path[16], *req;
	size_t len;

	snprintf(host, sizeof host, "c%d.example.com", k);
	snprintf(path, sizeof path, "/p%ld", s->seq % 8);
	req = bench_call_request(s->seq + 1, host, path, sse, token, &len);
	s->t_start = bench_now();
	if ((s->fd = bench_connect(port, 0)) < 0 ||
	    bench_http_send(s->fd, req, len) != 0) {
		fprintf(stderr, "%s: can't call 127.0.0.1:%d: %s\n", prog,
		    port, strerror(errno));
		free(req);
		return -1;
	}
	free(req);
	bench_http_init(&s->h);
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)k };

		epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	long conc = 16, cycles = 100000, started = 0, done = 0, failed = 0;
	long inflight = 0;
	double seconds = 20;
	const char *raw = NULL;
	struct bench_samples lat = { 0 };
	struct slot *slots;
	uint64_t t_begin, stop, hard_stop, t_end;
	int c, k;

	while ((c = getopt(argc, argv, "c:jk:n:o:p:t:")) != -1) {
		switch (c) {
		case 'c': conc = bench_arg_long(prog, "-c", optarg); break;
		case 'j': sse = 0; break;
		case 'k': token = optarg; break;
		case 'n': cycles = bench_arg_long(prog, "-n", optarg); break;
		case 'o': raw = optarg; break;
		case 'p': port = (int)bench_arg_long(prog, "-p", optarg); break;
		case 't': seconds = bench_arg_double(prog, "-t", optarg); break;
		default: goto usage;
		}
	}
	if (port <= 0 || conc < 1 || optind != argc)
		goto usage;
	bench_raise_nofile();
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return 1;
	slots = calloc((size_t)conc, sizeof *slots);
	t_begin = bench_now();
	stop = t_begin + (uint64_t)(seconds * 1e9);
	hard_stop = stop + 60000000000u;
	for (k = 0; k < conc && started < cycles; k++) {
		slots[k].seq = 0;
		if (start_call(&slots[k], k) != 0)
			return 1;
		started++;
		inflight++;
	}
	while (inflight > 0 && bench_now() < hard_stop) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 1000), i;

		for (i = 0; i < n; i++) {
			struct slot *s = &slots[evs[i].data.u32];
			char buf[16384];
			ssize_t r = read(s->fd, buf, sizeof buf);

			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (!bench_http_feed(&s->h, buf, r < 0 ? 0 : (size_t)r))
				continue;
			/* answered (or dropped): count it, start the next */
			if (bench_http_approved(&s->h)) {
				bench_add(&lat, bench_now() - s->t_start);
				done++;
			} else {
				if (failed++ < 3)
					fprintf(stderr, "%s: call failed (status "
					    "%d): %.*s\n", prog, s->h.status,
					    (int)(s->h.len < 400 ? s->h.len : 400),
					    s->h.buf ? s->h.buf : "");
			}
			epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
			close(s->fd);
			bench_http_free(&s->h);
			inflight--;
			if (started < cycles && bench_now() < stop) {
				s->seq++;
				if (start_call(s, (int)evs[i].data.u32) != 0)
					return 1;
				started++;
				inflight++;
			}
		}
	}
	t_end = bench_now();
	printf("cycles conc=%ld done=%ld failed=%ld lost=%ld seconds=%.2f "
	    "rate=%.1f/s\n", conc, done, failed, inflight,
	    (t_end - t_begin) / 1e9, done / ((t_end - t_begin) / 1e9));
	{
		char label[64];

		snprintf(label, sizeof label, "cycle latency conc=%ld", conc);
		bench_summary(stdout, label, &lat);
	}
	if (raw != NULL && bench_write_raw(raw, &lat) != 0)
		perror(raw);
	bench_samples_free(&lat);
	free(slots);
	return failed || inflight ? 1 : 0;
usage:
	fprintf(stderr, "usage: %s -p PORT [-c CONC] [-n CYCLES] [-t SECONDS] "
	    "[-j] [-o RAW] [-k TOKEN]\n", prog);
	return 2;
}
