/*
 * approver.c: an operator who approves everything at once.
 *
 * Watches proposals/new with inotify and, for each proposal that arrives,
 * delivers an approval through the library, as supervise-approve would:
 * the proposals one read of inotify reports are approved together
 * (sv_respond_many: each response written to tmp, one flush, each
 * published with a no-replace rename, one flush of the directory).
 * If the inotify queue overflows it falls back to a scan of the pending
 * proposals.  Runs until SIGTERM, or SECONDS (default 600) have passed,
 * then prints how many it approved.
 *
 *   approver -d QUEUEDIR [-t SECONDS]
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "bench.h"
#include "supervise.h"

static const char *prog = "approver";
static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Approve one id; a proposal already decided is not an error here. */
static long
approve(struct sv_spool *sp, const char *id)
{
	struct sv_err e;

	if (bench_approve(sp, id, &e) == 0)
		return 1;
	if (sv_decided(sp, id, &e) != 1)
		fprintf(stderr, "%s: %s\n", prog, e.msg);
	return 0;
}

static long
approve_pending(struct sv_spool *sp)
{
	struct sv_entry *v;
	struct sv_err e;
	size_t n, i;
	long done = 0;

	if (sv_list_pending(sp, &v, &n, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return 0;
	}
	for (i = 0; i < n && !stopping; i++)
		done += approve(sp, v[i].id);
	sv_entries_free(v);
	return done;
}

int
main(int argc, char **argv)
{
	double seconds = 600;
	const char *dir = NULL, *slug;
	char path[PATH_MAX];
	struct sv_spool sp;
	struct sv_err e;
	struct sigaction sa = { .sa_handler = on_term };
	uint64_t stop;
	long approved = 0;
	int c, ino;

	while ((c = getopt(argc, argv, "d:t:")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 't': seconds = bench_arg_double(prog, "-t", optarg); break;
		default: goto usage;
		}
	}
	if (dir == NULL || optind != argc)
		goto usage;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	slug = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	if (sv_spool_open(&sp, dir, slug, 0, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return 1;
	}
	snprintf(path, sizeof path, "%s/proposals/new", dir);
	if ((ino = inotify_init1(IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(ino, path, IN_MOVED_TO | IN_CREATE) < 0) {
		fprintf(stderr, "%s: can't watch '%s': %s\n", prog, path,
		    strerror(errno));
		return 1;
	}
	/* subscribed first; now take what was already waiting */
	approved += approve_pending(&sp);
	stop = bench_now() + (uint64_t)(seconds * 1e9);
	while (!stopping && bench_now() < stop) {
		char buf[65536] __attribute__((aligned(8)));
		char *ids[sizeof buf / sizeof(struct inotify_event)];
		size_t nids;
		struct pollfd pfd = { .fd = ino, .events = POLLIN };
		ssize_t r;
		char *p;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		if ((r = read(ino, buf, sizeof buf)) <= 0)
			continue;
		/* What arrived together is approved together. */
		nids = 0;
		for (p = buf; p < buf + r && !stopping;) {
			struct inotify_event *ie = (struct inotify_event *)p;

			p += sizeof *ie + ie->len;
			if (ie->mask & IN_Q_OVERFLOW)
				approved += approve_pending(&sp);
			else if (ie->len > 0 && sv_valid_id(ie->name, &e) == 0)
				ids[nids++] = ie->name;
		}
		if (nids > 0)
			approved += bench_approve_many(&sp, ids, nids, prog);
	}
	printf("approver: approved %ld\n", approved);
	sv_spool_close(&sp);
	close(ino);
	return 0;
usage:
	fprintf(stderr, "usage: %s -d QUEUEDIR [-t SECONDS]\n", prog);
	return 2;
}
