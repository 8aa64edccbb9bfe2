/*
 * latency.c: decision-to-agent latency of a running supervised, and, next
 * to it in the same run, call-to-answer of a call the bottle's policy
 * decides.
 *
 * An operator's call (-p, -d): connect, send an egress-block tools/call,
 * wait (inotify on proposals/new) for its proposal, write the approval
 * into responses/tmp/ID and fsync it, then take the clock, rename it into
 * responses/new/ID (the publish), and read the HTTP answer to its end.
 * The sample is publish -> answer complete, the same interval as floor(1)
 * measures for a bare rename seen through inotify.  The response is made
 * by the library (sv_response_dump); only the final rename is done here,
 * because the instant of the publish is what is being measured.
 *
 * A rule's call (-r, -q: a second sidecar whose policy approves the calls,
 * supervise-policy(5)): nothing is written here; the sample is call sent
 * -> answer complete, filing, the rule's response, its commit and the
 * answer together.  The rule decides as the call arrives, so "call sent"
 * is the rule's decision as "publish" is the operator's.
 *
 * With both, each iteration makes one call of each kind, in turns (the
 * operator's first in even iterations, the rule's first in odd ones), so
 * the two figures see the same machine at the same moments.  Each sample
 * starts from an idle sidecar: after an answer, the next call waits until
 * the sidecar has finished with the decision (its apply marker,
 * QUEUE/apply/ID, is removed once the decision's note is on disk, the
 * last step after the answer).  Without that wait, a call sent at once
 * would time the previous decision's note and flush as well, which an
 * operator's publish, coming later, never does.
 *
 * The calls propose egress-block for 64 hosts in turn, so each bottle's
 * routes.json stays at 64 routes and what grows is only the history.
 *
 *   latency -p PORT -d QUEUEDIR [-r PORT -q QUEUEDIR] [-j] [-n COUNT]
 *           [-w WARMUP] [-i MS] [-t SECONDS] [-o RAW] [-P RAW] [-R RAW]
 *           [-C RAW] [-k TOKEN] [-a TEXT]
 *
 * -i MS paces the calls: MS milliseconds between one call's end (its
 * sidecar idle) and the next, as an operator deciding by hand spaces
 * them.  Back to back (the default), each decision also meets what the
 * last ones left: the files they freed (which ext4 without a journal
 * skips when it next creates one, for a minute), a pack merge under way.
 *
 * -o appends the operator's publish -> answer samples, -P its call ->
 * proposal visible, -C its call -> answer less the time the proposal
 * waited for the operator (call -> visible plus publish -> answer: the
 * sidecar's part of the whole call, from the same start and end events
 * as the rule's), -R the rule's call -> answer.
 *
 * -a TEXT: an answer counts only when it holds TEXT (e.g. "applied: yes",
 * to be sure the apply hook ran for it).
 *
 * -j asks for a plain JSON answer (Accept: application/json) instead of
 * the SSE stream real clients ask for.  Exits 1 when a call failed or was
 * not approved.
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

#define SEC	1000000000u

static const char *prog = "latency";

/* One sidecar: its spool, a watch on proposals/new, one on apply/. */
struct side {
	int port;
	const char *dir;
	struct sv_spool sp;
	int ino;		/* proposals/new */
	int applyfd, aino;	/* QUEUE/apply, or -1 (an older sidecar) */
};

static int
side_open(struct side *s, int port, const char *dir)
{
	const char *slug = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	char path[PATH_MAX];
	struct sv_err e;

	s->port = port;
	s->dir = dir;
	if (sv_spool_open(&s->sp, dir, slug, 0, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return -1;
	}
	snprintf(path, sizeof path, "%s/proposals/new", dir);
	if ((s->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(s->ino, path, IN_MOVED_TO | IN_CREATE) < 0)
		goto watch;
	snprintf(path, sizeof path, "%s/apply", dir);
	s->aino = -1;
	if ((s->applyfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	if ((s->aino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(s->aino, path, IN_DELETE | IN_MOVED_FROM) < 0)
		goto watch;
	return 0;
watch:
	fprintf(stderr, "%s: can't watch '%s': %s\n", prog, path,
	    strerror(errno));
	return -1;
}

static void
side_close(struct side *s)
{
	sv_spool_close(&s->sp);
	close(s->ino);
	if (s->applyfd >= 0) {
		close(s->applyfd);
		close(s->aino);
	}
}

static void
drain(int ino)
{
	char buf[8192] __attribute__((aligned(8)));

	while (read(ino, buf, sizeof buf) > 0)
		;
}

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

/* Wait until the sidecar is done with decision id: its marker gone. */
static int
wait_idle(struct side *s, const char *id, uint64_t deadline)
{
	if (s->applyfd < 0)
		return 0;
	for (;;) {
		struct pollfd pfd = { .fd = s->aino, .events = POLLIN };
		uint64_t now = bench_now();

		drain(s->aino);
		if (faccessat(s->applyfd, id, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
			return errno == ENOENT ? 0 : -1;
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
	}
}

struct run {
	int sse;
	const char *token, *want;
	long failed;
	struct bench_samples lat, prop, opcall, rule;
};

static int
answer_ok(const struct run *ru, const struct bench_http *h)
{
	return bench_http_approved(h) && (ru->want == NULL ||
	    strstr(h->buf + h->hdr_end, ru->want) != NULL);
}

static void
say_failed(const char *what, long i, const char *id,
    const struct bench_http *h)
{
	fprintf(stderr, "%s: %s call %ld (%s): %s (status %d)\n", prog, what,
	    i, id, errno == ETIMEDOUT ? "no answer within 30 s" :
	    "not approved, or not as wanted", h->status);
	if (h->len > 0)
		fprintf(stderr, "%.*s\n", (int)h->len, h->buf);
}

/* Connect for call i to s: the request into *req. */
static int
call_connect(const struct run *ru, struct side *s, long i, char **req,
    size_t *len)
{
	char host[128];
	int fd;

	drain(s->ino);
	/* 64 hosts in turn: calls are one at a time, so a repeated payload
	 * is a new proposal, and routes.json stays small */
	snprintf(host, sizeof host, "lat%ld.example.com", i % 64);
	*req = bench_call_request(i + 1, host, NULL, ru->sse, ru->token, len);
	if ((fd = bench_connect(s->port, 0)) < 0)
		fprintf(stderr, "%s: can't connect to 127.0.0.1:%d: %s\n", prog,
		    s->port, strerror(errno));
	return fd;
}

/* After decision id's answer: wait until s is done with it. */
static int
settle(struct side *s, const char *id)
{
	if (wait_idle(s, id, bench_now() + 30 * SEC) == 0)
		return 0;
	fprintf(stderr, "%s: 'apply/%s' still there 30 s after its answer: "
	    "%s\n", prog, id, strerror(errno));
	return -1;
}

/* An operator's call: the operator (this program) approves it. */
static int
operator_call(struct run *ru, struct side *s, long i, int keep)
{
	char id[SV_ID_MAX + 1], *req, *text;
	struct bench_http h;
	uint64_t t_send, t_prop, t0, t1;
	struct sv_err e;
	size_t len;
	int fd, tfd;

	if ((fd = call_connect(ru, s, i, &req, &len)) < 0)
		return -1;
	t_send = bench_now();
	if (bench_http_send(fd, req, len) != 0 ||
	    wait_proposal(s->ino, id, sizeof id, t_send + 30 * SEC)) {
		fprintf(stderr, "%s: call %ld: no proposal within 30 s\n", prog,
		    i);
		return -1;
	}
	t_prop = bench_now();
	free(req);
	if ((text = bench_approval_text(&s->sp, id, &e)) == NULL) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return -1;
	}
	tfd = openat(s->sp.rtmp, id, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (tfd < 0 || sv_write_all(tfd, text, strlen(text)) != 0 ||
	    fsync(tfd) != 0 || close(tfd) != 0) {
		fprintf(stderr, "%s: can't write 'responses/tmp/%s': %s\n", prog,
		    id, strerror(errno));
		return -1;
	}
	free(text);
	bench_http_init(&h);
	t0 = bench_now();
	if (renameat2(s->sp.rtmp, id, s->sp.rnew, id, RENAME_NOREPLACE) != 0) {
		fprintf(stderr, "%s: can't rename 'responses/tmp/%s': %s\n", prog,
		    id, strerror(errno));
		return -1;
	}
	if (bench_http_read(fd, &h, t0 + 30 * SEC) != 0 || !answer_ok(ru, &h)) {
		say_failed("operator's", i, id, &h);
		ru->failed++;
	}
	t1 = bench_now();
	close(fd);
	bench_http_free(&h);
	if (keep) {
		bench_add(&ru->lat, t1 - t0);
		bench_add(&ru->prop, t_prop - t_send);
		bench_add(&ru->opcall, (t_prop - t_send) + (t1 - t0));
	}
	return settle(s, id);
}

/* A call the sidecar's policy approves: nothing to write. */
static int
rule_call(struct run *ru, struct side *s, long i, int keep)
{
	char id[SV_ID_MAX + 1] = "?", *req;
	struct bench_http h;
	uint64_t t_send, t1;
	size_t len;
	int fd, ok;

	if ((fd = call_connect(ru, s, i, &req, &len)) < 0)
		return -1;
	bench_http_init(&h);
	t_send = bench_now();
	ok = bench_http_send(fd, req, len) == 0 &&
	    bench_http_read(fd, &h, t_send + 30 * SEC) == 0 && answer_ok(ru, &h);
	t1 = bench_now();
	close(fd);
	free(req);
	/* Filed before it was answered: its name is in the queue already. */
	if (wait_proposal(s->ino, id, sizeof id, bench_now() + 5 * SEC) != 0) {
		fprintf(stderr, "%s: rule's call %ld: no proposal filed\n", prog,
		    i);
		ok = 0;
	}
	if (!ok) {
		say_failed("rule's", i, id, &h);
		ru->failed++;
	}
	bench_http_free(&h);
	if (keep && ok)
		bench_add(&ru->rule, t1 - t_send);
	return ok ? settle(s, id) : 0;
}

int
main(int argc, char **argv)
{
	long count = 1000, warmup = 20, pace_ms = 0, i;
	double seconds = 120;
	int port = 0, rport = 0, c, rc;
	const char *dir = NULL, *rdir = NULL;
	const char *raw = NULL, *raw2 = NULL, *rawr = NULL, *rawc = NULL;
	struct run ru = { .sse = 1 };
	struct side op, rule;
	uint64_t stop;

	while ((c = getopt(argc, argv, "a:C:d:i:jk:n:o:p:P:q:r:R:t:w:")) != -1) {
		switch (c) {
		case 'a': ru.want = optarg; break;
		case 'C': rawc = optarg; break;
		case 'd': dir = optarg; break;
		case 'i': pace_ms = bench_arg_long(prog, "-i", optarg); break;
		case 'j': ru.sse = 0; break;
		case 'k': ru.token = optarg; break;
		case 'n': count = bench_arg_long(prog, "-n", optarg); break;
		case 'o': raw = optarg; break;
		case 'p': port = (int)bench_arg_long(prog, "-p", optarg); break;
		case 'P': raw2 = optarg; break;
		case 'q': rdir = optarg; break;
		case 'r': rport = (int)bench_arg_long(prog, "-r", optarg); break;
		case 'R': rawr = optarg; break;
		case 't': seconds = bench_arg_double(prog, "-t", optarg); break;
		case 'w': warmup = bench_arg_long(prog, "-w", optarg); break;
		default: goto usage;
		}
	}
	if (dir == NULL || port <= 0 || optind != argc ||
	    (rport > 0) != (rdir != NULL))
		goto usage;
	if (side_open(&op, port, dir) != 0 ||
	    (rdir != NULL && side_open(&rule, rport, rdir) != 0))
		return 1;

	stop = bench_now() + (uint64_t)(seconds * 1e9);
	for (i = 0; i < warmup + count && bench_now() < stop; i++) {
		int keep = i >= warmup;

		if (rdir == NULL)
			rc = operator_call(&ru, &op, i, keep);
		else if (i % 2 == 0)
			rc = operator_call(&ru, &op, i, keep) ||
			    rule_call(&ru, &rule, i, keep);
		else
			rc = rule_call(&ru, &rule, i, keep) ||
			    operator_call(&ru, &op, i, keep);
		if (rc != 0)
			return 1;
		bench_pause_ms(pace_ms);
	}
	bench_summary(stdout, ru.sse ? "decision->agent (sse)" :
	    "decision->agent (json)", &ru.lat);
	bench_summary(stdout, "call->proposal visible", &ru.prop);
	if (rdir != NULL) {
		bench_summary(stdout, ru.sse ? "call->agent by rule (sse)" :
		    "call->agent by rule (json)", &ru.rule);
		bench_summary(stdout, "call->agent by operator, less the "
		    "operator's time", &ru.opcall);
		if (ru.lat.n > 0 && ru.rule.n > 0)
			printf("rule call->agent vs operator decision->agent: "
			    "p50 x%.2f\n", (double)bench_pct(&ru.rule, 50) /
			    (double)bench_pct(&ru.lat, 50));
	}
	if (ru.failed)
		printf("failed=%ld\n", ru.failed);
	if ((raw && bench_write_raw(raw, &ru.lat) != 0) ||
	    (raw2 && bench_write_raw(raw2, &ru.prop) != 0) ||
	    (rawr && bench_write_raw(rawr, &ru.rule) != 0) ||
	    (rawc && bench_write_raw(rawc, &ru.opcall) != 0)) {
		perror(prog);
		return 1;
	}
	bench_samples_free(&ru.lat);
	bench_samples_free(&ru.prop);
	bench_samples_free(&ru.rule);
	bench_samples_free(&ru.opcall);
	side_close(&op);
	if (rdir != NULL)
		side_close(&rule);
	return ru.failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: %s -p PORT -d QUEUEDIR [-r PORT -q QUEUEDIR] "
	    "[-j] [-n COUNT] [-w WARMUP] [-i MS] [-t SECONDS] [-o RAW] [-P RAW] "
	    "[-R RAW] [-C RAW] [-k TOKEN] [-a TEXT]\n", prog);
	return 2;
}
