/*
 * latency.c: decision-to-agent latency of a running supervised.
 *
 * One call at a time: connect, send an egress-block tools/call, wait
 * (inotify on proposals/new) for its proposal, write the approval into
 * responses/tmp/ID and fsync it, then take the clock, rename it into
 * responses/new/ID (the publish), and read the HTTP answer to its end.
 * The calls propose egress-block for 64 hosts in turn, so the bottle's
 * routes.json stays at 64 routes and what grows is only the history.
 * The sample is publish -> answer complete, the same interval as floor(1)
 * measures for a bare rename seen through inotify.  The response is made
 * by the library (sv_response_dump); only the final rename is done here,
 * because the instant of the publish is what is being measured.
 *
 *   latency -p PORT -d QUEUEDIR [-j] [-r] [-n COUNT] [-w WARMUP]
 *           [-t SECONDS] [-o RAW] [-P RAW2] [-k TOKEN] [-a TEXT]
 *
 * -r: the bottle's policy approves the calls (supervise-policy(5)), so
 * nothing is written here; the sample is call sent -> answer complete,
 * filing, the rule's response, its commit and the answer together.
 *
 * -a TEXT: an answer counts only when it holds TEXT (e.g. "applied: yes",
 * to be sure the apply hook ran for it).
 *
 * -j asks for a plain JSON answer (Accept: application/json) instead of
 * the SSE stream real clients ask for.  -o appends the decision->agent
 * samples, -P the call->proposal-visible samples.  Exits 1 when a call
 * failed or was not approved.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "bench.h"
#include "supervise.h"

static const char *prog = "latency";

/* Wait for the next proposal to be published; its id into id. */
static int
wait_proposal(int ino, char *id, size_t n, uint64_t deadline)
{
	char buf[8192] __attribute__((aligned(8)));

	for (;;) {
		struct pollfd pfd = { .fd = ino, .events = POLLIN };
		uint64_t now = bench_now();
		ssize_t r;
		char *p;

		if (now >= deadline)
			return -1;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
			continue;
		if ((r = read(ino, buf, sizeof buf)) <= 0)
			continue;
		for (p = buf; p < buf + r;) {
			struct inotify_event *ie = (struct inotify_event *)p;

			p += sizeof *ie + ie->len;
			if (ie->len > 0 && (ie->mask & (IN_MOVED_TO | IN_CREATE))) {
				snprintf(id, n, "%s", ie->name);
				return 0;
			}
		}
	}
}

static void
drain(int ino)
{
	char buf[8192] __attribute__((aligned(8)));

	while (read(ino, buf, sizeof buf) > 0)
		;
}

int
main(int argc, char **argv)
{
	long count = 1000, warmup = 20, i, failed = 0;
	double seconds = 120;
	int port = 0, sse = 1, by_rule = 0, c, ino;
	const char *dir = NULL, *raw = NULL, *raw2 = NULL, *token = NULL;
	const char *want = NULL;
	const char *slug;
	struct bench_samples lat = { 0 }, prop = { 0 };
	struct sv_spool sp;
	struct sv_err e;
	char path[PATH_MAX];
	uint64_t stop;

	while ((c = getopt(argc, argv, "a:d:jk:n:o:p:P:rt:w:")) != -1) {
		switch (c) {
		case 'a': want = optarg; break;
		case 'd': dir = optarg; break;
		case 'j': sse = 0; break;
		case 'r': by_rule = 1; break;
		case 'k': token = optarg; break;
		case 'n': count = bench_arg_long(prog, "-n", optarg); break;
		case 'o': raw = optarg; break;
		case 'p': port = (int)bench_arg_long(prog, "-p", optarg); break;
		case 'P': raw2 = optarg; break;
		case 't': seconds = bench_arg_double(prog, "-t", optarg); break;
		case 'w': warmup = bench_arg_long(prog, "-w", optarg); break;
		default: goto usage;
		}
	}
	if (dir == NULL || port <= 0 || optind != argc)
		goto usage;
	slug = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	if (sv_spool_open(&sp, dir, slug, 0, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return 1;
	}
	snprintf(path, sizeof path, "%s/proposals/new", dir);
	if ((ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(ino, path, IN_MOVED_TO | IN_CREATE) < 0) {
		fprintf(stderr, "%s: can't watch '%s': %s\n", prog, path,
		    strerror(errno));
		return 1;
	}

	stop = bench_now() + (uint64_t)(seconds * 1e9);
	for (i = 0; i < warmup + count && bench_now() < stop; i++) {
		char host[128], id[SV_ID_MAX + 1], *req, *text;
		struct bench_http h;
		uint64_t t_send, t_prop, t0, t1;
		size_t len;
		int fd, tfd;

		drain(ino);
		/* 64 hosts in turn: calls are one at a time, so a repeated
		 * payload is a new proposal, and routes.json stays small */
		snprintf(host, sizeof host, "lat%ld.example.com", i % 64);
		req = bench_call_request(i + 1, host, NULL, sse, token, &len);
		if ((fd = bench_connect(port, 0)) < 0) {
			fprintf(stderr, "%s: can't connect to 127.0.0.1:%d: %s\n",
			    prog, port, strerror(errno));
			return 1;
		}
		t_send = bench_now();
		if (by_rule) {
			bench_http_init(&h);
			if (bench_http_send(fd, req, len) != 0 ||
			    bench_http_read(fd, &h, t_send + 30000000000u) != 0 ||
			    !bench_http_approved(&h)) {
				fprintf(stderr, "%s: call %ld: not approved by "
				    "rule within 30 s (status %d)\n", prog, i,
				    h.status);
				if (h.len > 0)
					fprintf(stderr, "%.*s\n", (int)h.len,
					    h.buf);
				failed++;
			}
			t1 = bench_now();
			close(fd);
			free(req);
			bench_http_free(&h);
			if (i >= warmup)
				bench_add(&lat, t1 - t_send);
			continue;
		}
		if (bench_http_send(fd, req, len) != 0 ||
		    wait_proposal(ino, id, sizeof id, t_send + 30000000000u)) {
			fprintf(stderr, "%s: call %ld: no proposal within 30 s\n",
			    prog, i);
			return 1;
		}
		t_prop = bench_now();
		free(req);
		if ((text = bench_approval_text(&sp, id, &e)) == NULL) {
			fprintf(stderr, "%s: %s\n", prog, e.msg);
			return 1;
		}
		tfd = openat(sp.rtmp, id, O_CREAT | O_EXCL | O_WRONLY |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (tfd < 0 || sv_write_all(tfd, text, strlen(text)) != 0 ||
		    fsync(tfd) != 0 || close(tfd) != 0) {
			fprintf(stderr, "%s: can't write 'responses/tmp/%s': %s\n",
			    prog, id, strerror(errno));
			return 1;
		}
		free(text);
		bench_http_init(&h);
		t0 = bench_now();
		if (renameat2(sp.rtmp, id, sp.rnew, id, RENAME_NOREPLACE) != 0) {
			fprintf(stderr, "%s: can't rename 'responses/tmp/%s': %s\n",
			    prog, id, strerror(errno));
			return 1;
		}
		if (bench_http_read(fd, &h, t0 + 30000000000u) != 0 ||
		    !bench_http_approved(&h) || (want != NULL &&
		    strstr(h.buf + h.hdr_end, want) == NULL)) {
			fprintf(stderr, "%s: call %ld (%s): %s (status %d)\n", prog,
			    i, id, errno == ETIMEDOUT ? "no answer within 30 s" :
			    want ? "not approved, or not as wanted" :
			    "not approved", h.status);
			if (h.len > 0)
				fprintf(stderr, "%.*s\n", (int)h.len, h.buf);
			failed++;
		}
		t1 = bench_now();
		close(fd);
		bench_http_free(&h);
		if (i >= warmup) {
			bench_add(&lat, t1 - t0);
			bench_add(&prop, t_prop - t_send);
		}
	}
	bench_summary(stdout, by_rule ? (sse ? "call->agent by rule (sse)" :
	    "call->agent by rule (json)") : sse ? "decision->agent (sse)" :
	    "decision->agent (json)", &lat);
	if (!by_rule)
		bench_summary(stdout, "call->proposal visible", &prop);
	if (failed)
		printf("failed=%ld\n", failed);
	if ((raw && bench_write_raw(raw, &lat) != 0) ||
	    (raw2 && bench_write_raw(raw2, &prop) != 0)) {
		perror(prog);
		return 1;
	}
	bench_samples_free(&lat);
	bench_samples_free(&prop);
	sv_spool_close(&sp);
	close(ino);
	return failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: %s -p PORT -d QUEUEDIR [-j] [-r] [-n COUNT] "
	    "[-w WARMUP] [-t SECONDS] [-o RAW] [-P RAW] [-k TOKEN] "
	    "[-a TEXT]\n", prog);
	return 2;
}
