/*
 * burst.c: many blocked calls at once, then one bulk approve.
 *
 * Opens N connections in one burst (non-blocking connects, all issued
 * before any is waited on), sends one pipelock-block call on each (N
 * distinct URLs on 64 hosts: no call attaches to another's proposal, and
 * approving them all adds only 64 hosts to the allowlist), waits until N proposals are in the spool, samples the daemon's
 * VmRSS, VmHWM, thread and fd counts from /proc while the N calls wait,
 * then approves them all from a child process (the library's
 * sv_respond_many, 256 at a time, as supervise-approve does with a list,
 * or the shell command given with -a) and reads every answer.  Reports calls lost, time to connect and
 * propose, memory and threads, and the drain: the time from the start of
 * the bulk approve to each answer.
 *
 *   burst -p PORT -d QUEUEDIR -P DAEMONPID -n N [-t SECONDS] [-a CMD] [-j]
 *         [-w]
 *
 * -w stops after the sample of the waiting daemon (no approve, the calls
 * are dropped), for looking at memory alone.
 * The whole run is bounded by SECONDS (default 300).  A call is lost when
 * its connection failed or closed without an approval; calls still
 * waiting when time runs out are reported apart.  Exits 1 unless every
 * call was answered with its approval.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "supervise.h"

static const char *prog = "burst";

enum { CONNECTING, WAITING, DONE, LOST };

struct call {
	int fd, state;
	size_t sent;
	uint64_t t_done;
	struct bench_http h;
};

static long
count_entries(const char *dir, const char *sub)
{
	char path[4096];
	DIR *d;
	struct dirent *de;
	long n = 0;

	snprintf(path, sizeof path, "%s/%s", dir, sub);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The bulk approve, in a child: every pending proposal of the queue. */
static _Noreturn void
bulk_approve(const char *dir, const char *cmd)
{
	const char *slug = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	struct sv_spool sp;
	struct sv_entry *v;
	struct sv_err e;
	char **ids;
	size_t n, i;
	int bad = 0;

	if (cmd != NULL) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (sv_spool_open(&sp, dir, slug, 0, &e) != 0 ||
	    sv_list_pending(&sp, &v, &n, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		_exit(1);
	}
	/* As supervise-approve does with a list: 256 ids at a time. */
	ids = sv_xmalloc((n ? n : 1) * sizeof *ids);
	for (i = 0; i < n; i++)
		ids[i] = v[i].id;
	for (i = 0; i < n; i += 256) {
		size_t k = n - i < 256 ? n - i : 256;

		if (bench_approve_many(&sp, ids + i, k, prog) != (long)k)
			bad++;
	}
	free(ids);
	sv_entries_free(v);
	sv_spool_close(&sp);
	_exit(bad ? 1 : 0);
}

static void
report_proc(const char *when, pid_t pid, long n)
{
	struct bench_proc p;

	if (bench_proc_read(pid, &p) != 0) {
		printf("daemon %s: can't read /proc/%d\n", when, (int)pid);
		return;
	}
	printf("daemon %s: calls=%ld rss=%.1fMiB hwm=%.1fMiB threads=%ld "
	    "fds=%ld\n", when, n, p.rss_kib / 1024.0, p.hwm_kib / 1024.0,
	    p.threads, p.fds);
}

int
main(int argc, char **argv)
{
	long n = 1000, i, connected = 0, lost = 0, done = 0, bad = 0;
	long unanswered = 0;	/* still waiting when time ran out */
	double seconds = 300;
	int port = 0, sse = 1, c, ep, st, wait_only = 0;
	pid_t dpid = 0, child;
	const char *dir = NULL, *cmd = NULL;
	struct call *calls;
	char **reqs;
	size_t *lens;
	struct bench_samples drain = { 0 };
	uint64_t t0, t_sent = 0, t_proposed, t_approve, t_approved = 0, stop;
	uint64_t t_count = 0;
	long nofile, base;

	while ((c = getopt(argc, argv, "a:d:jn:p:P:t:w")) != -1) {
		switch (c) {
		case 'w': wait_only = 1; break;
		case 'a': cmd = optarg; break;
		case 'd': dir = optarg; break;
		case 'j': sse = 0; break;
		case 'n': n = bench_arg_long(prog, "-n", optarg); break;
		case 'p': port = (int)bench_arg_long(prog, "-p", optarg); break;
		case 'P': dpid = (pid_t)bench_arg_long(prog, "-P", optarg); break;
		case 't': seconds = bench_arg_double(prog, "-t", optarg); break;
		default: goto usage;
		}
	}
	if (dir == NULL || port <= 0 || dpid <= 0 || n < 1 || optind != argc)
		goto usage;
	nofile = bench_raise_nofile();
	if (nofile < n + 64) {
		fprintf(stderr, "%s: %ld calls need %ld fds, the limit is %ld "
		    "(raise ulimit -n)\n", prog, n, n + 64, nofile);
		return 2;
	}
	calls = calloc((size_t)n, sizeof *calls);
	reqs = calloc((size_t)n, sizeof *reqs);
	lens = calloc((size_t)n, sizeof *lens);
	for (i = 0; i < n; i++) {
		char url[128];

		snprintf(url, sizeof url, "https://b%ld.example.com/%d/%ld",
		    i % 64, (int)getpid(), i);
		reqs[i] = bench_call_pipelock(i + 1, url, sse, NULL, &lens[i]);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	/* proposals already in the spool do not count towards the burst */
	base = count_entries(dir, "proposals/new") +
	    count_entries(dir, "proposals/cur");
	report_proc("before", dpid, 0);

	/* the burst: every connect issued before any is waited on */
	t0 = bench_now();
	for (i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN,
		    .data.u64 = (uint64_t)i };

		bench_http_init(&calls[i].h);
		if ((calls[i].fd = bench_connect(port, 1)) < 0) {
			calls[i].state = LOST;
			lost++;
			continue;
		}
		calls[i].state = CONNECTING;
		epoll_ctl(ep, EPOLL_CTL_ADD, calls[i].fd, &ev);
	}
	stop = t0 + (uint64_t)(seconds * 1e9);
	t_proposed = 0;
	t_approve = 0;
	child = -1;
	while (done + lost < n && bench_now() < stop) {
		struct epoll_event evs[512];
		int got = epoll_wait(ep, evs, 512, 50), j;

		for (j = 0; j < got; j++) {
			struct call *k = &calls[evs[j].data.u64];
			long idx = (long)evs[j].data.u64;
			char buf[8192];
			ssize_t r;

			if (k->state == CONNECTING) {
				int err = 0;
				socklen_t el = sizeof err;

				getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err != 0 || (evs[j].events & (EPOLLERR | EPOLLHUP))) {
					if (lost++ < 3)
						fprintf(stderr, "%s: connect: %s\n",
						    prog, strerror(err));
					k->state = LOST;
					epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL);
					close(k->fd);
					continue;
				}
				if (!(evs[j].events & EPOLLOUT))
					continue;
				r = write(k->fd, reqs[idx] + k->sent,
				    lens[idx] - k->sent);
				if (r > 0)
					k->sent += (size_t)r;
				if (k->sent < lens[idx])
					continue;
				k->state = WAITING;
				if (++connected == n)
					t_sent = bench_now();
				{
					struct epoll_event ev = { .events = EPOLLIN,
					    .data.u64 = (uint64_t)idx };

					epoll_ctl(ep, EPOLL_CTL_MOD, k->fd, &ev);
				}
				continue;
			}
			if (k->state != WAITING)
				continue;
			r = read(k->fd, buf, sizeof buf);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (!bench_http_feed(&k->h, buf, r < 0 ? 0 : (size_t)r))
				continue;
			k->t_done = bench_now();
			epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL);
			close(k->fd);
			if (bench_http_approved(&k->h)) {
				k->state = DONE;
				done++;
				if (t_approve)
					bench_add(&drain, k->t_done - t_approve);
			} else {
				k->state = LOST;
				if (bad++ < 3)
					fprintf(stderr, "%s: call %ld answered "
					    "without approval (status %d): %.*s\n",
					    prog, idx, k->h.status,
					    (int)(k->h.len < 300 ? k->h.len : 300),
					    k->h.buf ? k->h.buf : "");
				lost++;
			}
		}
		/* all proposed?  then measure, then approve them all */
		if (t_approve == 0 && connected + lost == n &&
		    bench_now() - t_count > 50000000u &&
		    (t_count = bench_now(),
		    count_entries(dir, "proposals/new") +
		    count_entries(dir, "proposals/cur") - base >= n - lost)) {
			t_proposed = bench_now();
			printf("burst n=%ld connected+sent=%.3fs proposed=%.3fs "
			    "lost=%ld\n", n, (t_sent ? t_sent - t0 : 0) / 1e9,
			    (t_proposed - t0) / 1e9, lost);
			report_proc("waiting", dpid, connected);
			usleep(500000);
			report_proc("waiting+0.5s", dpid, connected);
			fflush(stdout);
			if (wait_only)
				return 0;
			t_approve = bench_now();
			if ((child = fork()) == 0)
				bulk_approve(dir, cmd);
		}
		if (child > 0 && t_approved == 0 &&
		    waitpid(child, &st, WNOHANG) == child) {
			t_approved = bench_now();
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				fprintf(stderr, "%s: the bulk approve failed\n",
				    prog);
		}
	}
	if (child > 0 && t_approved == 0) {
		/* Every call answered first: the approver is finishing up. */
		if (done + lost < n)
			kill(child, SIGTERM);
		waitpid(child, &st, 0);
		if (done + lost == n)
			t_approved = bench_now();
	}
	for (i = 0; i < n; i++) {
		if (calls[i].state == CONNECTING || calls[i].state == WAITING) {
			unanswered++;
			close(calls[i].fd);
		}
		bench_http_free(&calls[i].h);
		free(reqs[i]);
	}
	report_proc("after", dpid, 0);
	if (t_approve) {
		char label[64];

		printf("bulk approve n=%ld published=%.3fs drained=%.3fs "
		    "answered=%ld lost=%ld unanswered after %.0fs=%ld\n", n,
		    t_approved ? (t_approved - t_approve) / 1e9 : -1.0,
		    drain.n ? bench_pct(&drain, 100) / 1e9 : -1.0, done, lost,
		    seconds, unanswered);
		snprintf(label, sizeof label, "approve->answer n=%ld", n);
		bench_summary(stdout, label, &drain);
	} else
		printf("burst n=%ld: only %ld of %ld proposals arrived within "
		    "%.0fs; lost=%ld\n", n, count_entries(dir, "proposals/new") +
		    count_entries(dir, "proposals/cur") - base, n, seconds,
		    lost);
	bench_samples_free(&drain);
	free(calls);
	free(reqs);
	free(lens);
	return lost || unanswered || done < n ? 1 : 0;
usage:
	fprintf(stderr, "usage: %s -p PORT -d QUEUEDIR -P DAEMONPID -n N "
	    "[-t SECONDS] [-a CMD] [-j] [-w]\n", prog);
	return 2;
}
