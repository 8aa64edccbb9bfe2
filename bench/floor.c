/*
 * floor.c: the physical floor of "decision to agent" on this machine.
 *
 * One process renames a file from tmp/ into new/ (the publish of a
 * response); another process, blocked in epoll on an inotify watch of
 * new/, sees it.  The latency is from just before rename() in the first
 * process to the return of the watcher's read() of the event.  With -s the
 * watcher also writes a small HTTP-sized answer to a loopback TCP socket
 * and the latency ends when the first process has read it: the floor of
 * the whole path (publish -> inotify -> TCP -> agent) with no parsing, no
 * commit and no HTTP server in it.  -i MS waits MS milliseconds between
 * samples, both processes idle meanwhile, as calls decided by hand are
 * (latency -i): what waking up after idling costs this machine.
 *
 *   floor [-s] [-i MS] [-n COUNT] [-t SECONDS] [-o RAWFILE] DIR
 *   floor -f [-n COUNT] [-t SECONDS] [-o RAWFILE] DIR
 *   floor -r K [-n COUNT] [-t SECONDS] [-o RAWFILE] DIR
 *
 * -f measures the other floor, the disk's: one small write to a file
 * already there and its fsync, then an fsync of the directory, which is
 * what every durable step of the spool and of a git object costs at
 * least.  This disk is shared and its flush time varies by 10x from one
 * minute to the next, so the figures that depend on it are run next to
 * this one.
 *
 * -r K measures the disk's floor of the two rounds of fsync an approval
 * waits for before its branch may move (durable.c; supervise-spool(5)):
 * K fsyncs at once, each on a thread of its own, of K-1 small files
 * just rewritten and of their directory, then one more of the directory
 * (the pack's name).  The daemon's files are new and larger (the pack,
 * its index, the response); these exist already, so this is a floor.
 * Prints one summary line; -o appends the raw samples (ns, one a line).
 * Bounded by COUNT (default 2000) and SECONDS (default 30).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static const char *prog = "floor";

/* What the watcher writes back in -s mode: the size of a small answer. */
static const char answer[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 120\r\n\r\n"
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":"
    "\"text\",\"text\":\"status: approved\\nnotes: \"}],\"isError\":false}}";

static void
die(const char *what, const char *path)
{
	fprintf(stderr, "%s: can't %s '%s': %s\n", prog, what, path,
	    strerror(errno));
	exit(1);
}

/*
 * The watcher: report each IN_MOVED_TO in new/ either as its own
 * timestamp on `out` (a pipe) or as an answer on `out` (a TCP socket).
 */
static _Noreturn void
watcher(int ino, int out, int tcp)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	char buf[4096] __attribute__((aligned(8)));

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ino, &ev) != 0)
		die("watch", "inotify");
	for (;;) {
		struct epoll_event got;
		ssize_t r;
		char *p;

		/* a silent parent for 10 s means it is gone */
		if (epoll_wait(ep, &got, 1, 10000) <= 0)
			_exit(0);
		r = read(ino, buf, sizeof buf);
		if (r <= 0)
			continue;
		for (p = buf; p < buf + r;) {
			struct inotify_event *ie = (struct inotify_event *)p;

			p += sizeof *ie + ie->len;
			if (!(ie->mask & IN_MOVED_TO))
				continue;
			if (tcp) {
				if (bench_http_send(out, answer,
				    sizeof answer - 1) != 0)
					_exit(1);
			} else {
				uint64_t t1 = bench_now();

				if (write(out, &t1, sizeof t1) != sizeof t1)
					_exit(1);
			}
		}
	}
}

/* -f: write + fsync of a small file, then fsync of its directory. */
static int
fsync_floor(int dfd, long count, double seconds, const char *raw)
{
	struct bench_samples s = { 0 };
	uint64_t stop = bench_now() + (uint64_t)(seconds * 1e9);
	int fd = openat(dfd, "fsync-floor", O_CREAT | O_WRONLY, 0600);
	long i;

	if (fd < 0)
		die("create", "fsync-floor");
	for (i = 0; i < count && bench_now() < stop; i++) {
		uint64_t t0 = bench_now();

		if (pwrite(fd, answer, 64, (off_t)(i % 64) * 64) != 64 ||
		    fsync(fd) != 0 || fsync(dfd) != 0)
			die("write", "fsync-floor");
		bench_add(&s, bench_now() - t0);
	}
	close(fd);
	bench_summary(stdout, "floor write+fsync+dir fsync", &s);
	if (raw != NULL && bench_write_raw(raw, &s) != 0)
		die("write", raw);
	bench_samples_free(&s);
	return 0;
}

/* -r: K threads, each fsyncing its descriptor once a sample. */
struct round {
	pthread_barrier_t go, done;
	int *fds;
	int stop;
};
struct worker {
	struct round *r;
	int i;
};

static void *
round_worker(void *arg)
{
	struct worker *w = arg;
	struct round *r = w->r;

	for (;;) {
		pthread_barrier_wait(&r->go);
		if (r->stop)
			return NULL;
		if (fsync(r->fds[w->i]) != 0)
			die("fsync", "a file of the round");
		pthread_barrier_wait(&r->done);
	}
}

/* -r K: K-1 small writes, K fsyncs at once (the files, the directory),
 * then the directory again. */
static int
round_floor(int dfd, int k, long count, double seconds, const char *raw)
{
	struct bench_samples s = { 0 };
	uint64_t stop = bench_now() + (uint64_t)(seconds * 1e9);
	struct round r = { 0 };
	struct worker *w = calloc((size_t)k, sizeof *w);
	pthread_t *tid = calloc((size_t)k, sizeof *tid);
	char label[96];
	long i;
	int j;

	r.fds = calloc((size_t)k, sizeof *r.fds);
	if (w == NULL || tid == NULL || r.fds == NULL)
		die("allocate", "the round");
	for (j = 0; j < k - 1; j++) {
		char name[32];

		snprintf(name, sizeof name, "round-floor-%d", j);
		if ((r.fds[j] = openat(dfd, name, O_CREAT | O_WRONLY,
		    0600)) < 0)
			die("create", name);
	}
	r.fds[k - 1] = dfd;
	if (pthread_barrier_init(&r.go, NULL, (unsigned)k + 1) != 0 ||
	    pthread_barrier_init(&r.done, NULL, (unsigned)k + 1) != 0)
		die("start", "barriers");
	for (j = 0; j < k; j++) {
		w[j].r = &r;
		w[j].i = j;
		if (pthread_create(&tid[j], NULL, round_worker, &w[j]) != 0)
			die("start", "a thread");
	}
	for (i = 0; i < count && bench_now() < stop; i++) {
		uint64_t t0 = bench_now();

		for (j = 0; j < k - 1; j++)
			if (pwrite(r.fds[j], answer, 64,
			    (off_t)(i % 64) * 64) != 64)
				die("write", "a file of the round");
		pthread_barrier_wait(&r.go);
		pthread_barrier_wait(&r.done);
		if (fsync(dfd) != 0)
			die("fsync", "the round's directory");
		bench_add(&s, bench_now() - t0);
	}
	r.stop = 1;
	pthread_barrier_wait(&r.go);
	for (j = 0; j < k; j++)
		pthread_join(tid[j], NULL);
	for (j = 0; j < k - 1; j++)
		close(r.fds[j]);
	snprintf(label, sizeof label, "floor %d fsyncs at once + dir fsync",
	    k);
	bench_summary(stdout, label, &s);
	if (raw != NULL && bench_write_raw(raw, &s) != 0)
		die("write", raw);
	bench_samples_free(&s);
	free(w);
	free(tid);
	free(r.fds);
	return 0;
}

int
main(int argc, char **argv)
{
	long count = 2000, pace_ms = 0;
	double seconds = 30;
	int tcp = 0, disk = 0, round = 0, c, dfd, tmpfd, newfd, ino, fds[2], lfd = -1, fd;
	char name[128];
	const char *raw = NULL, *dir;
	struct bench_samples s = { 0 };
	uint64_t stop;
	pid_t pid;
	long i;

	while ((c = getopt(argc, argv, "fi:n:o:r:st:")) != -1) {
		switch (c) {
		case 'f': disk = 1; break;
		case 'i': pace_ms = bench_arg_long(prog, "-i", optarg); break;
		case 'r':
			round = (int)bench_arg_long(prog, "-r", optarg);
			if (round < 2 || round > 64) {
				fprintf(stderr, "%s: -r %s: not a number of "
				    "fsyncs from 2 to 64\n", prog, optarg);
				return 2;
			}
			break;
		case 'n': count = bench_arg_long(prog, "-n", optarg); break;
		case 'o': raw = optarg; break;
		case 's': tcp = 1; break;
		case 't': seconds = bench_arg_double(prog, "-t", optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || disk + tcp + (round > 0) > 1 ||
	    (pace_ms > 0 && (disk || round)))
		goto usage;
	dir = argv[optind];
	mkdir(dir, 0700);
	if ((dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC)) < 0)
		die("open", dir);
	mkdirat(dfd, "tmp", 0700);
	mkdirat(dfd, "new", 0700);
	if ((tmpfd = openat(dfd, "tmp", O_DIRECTORY | O_RDONLY)) < 0)
		die("open", "tmp");
	if ((newfd = openat(dfd, "new", O_DIRECTORY | O_RDONLY)) < 0)
		die("open", "new");
	if (disk)
		return fsync_floor(dfd, count, seconds, raw);
	if (round)
		return round_floor(dfd, round, count, seconds, raw);
	if ((ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		die("start", "inotify");
	{
		char p[4096];

		snprintf(p, sizeof p, "%s/new", dir);
		if (inotify_add_watch(ino, p, IN_MOVED_TO) < 0)
			die("watch", p);
	}

	if (tcp) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		socklen_t sl = sizeof sa;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    bind(lfd, (struct sockaddr *)&sa, sl) != 0 ||
		    listen(lfd, 1) != 0 ||
		    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
			die("listen on", "127.0.0.1");
		if ((fds[0] = bench_connect(ntohs(sa.sin_port), 0)) < 0)
			die("connect to", "127.0.0.1");
		if ((fds[1] = accept(lfd, NULL, NULL)) < 0)
			die("accept on", "127.0.0.1");
	} else if (pipe(fds) != 0)
		die("create", "pipe");

	if ((pid = fork()) < 0)
		die("fork", "watcher");
	if (pid == 0) {
		close(fds[0]);
		watcher(ino, fds[1], tcp);
	}
	close(fds[1]);
	close(ino);

	/*
	 * One file, a name as long as a real proposal id, moved back and
	 * forth: creating and deleting a file per sample would leave
	 * thousands of recently deleted inodes, which ext4 without a journal
	 * skips one by one when it next allocates one, and that would slow
	 * whatever runs next (the daemon) rather than this floor.
	 */
	snprintf(name, sizeof name,
	    "1763834400.M000000P%dQ1R0123456789abcdef.floor-host", (int)getpid());
	unlinkat(tmpfd, name, 0);
	fd = openat(tmpfd, name, O_CREAT | O_EXCL | O_WRONLY, 0600);
	if (fd < 0 || write(fd, answer, 64) != 64 || close(fd) != 0)
		die("write", name);
	stop = bench_now() + (uint64_t)(seconds * 1e9);
	for (i = 0; i < count && bench_now() < stop; i++) {
		char got[512];
		uint64_t t0, t1;
		size_t have = 0;

		t0 = bench_now();
		if (renameat(tmpfd, name, newfd, name) != 0)
			die("rename", name);
		if (tcp) {
			while (have < sizeof answer - 1) {
				ssize_t r = read(fds[0], got + have,
				    sizeof got - have);

				if (r <= 0)
					die("read from", "watcher");
				have += (size_t)r;
			}
			t1 = bench_now();
		} else if (read(fds[0], &t1, sizeof t1) != sizeof t1)
			die("read from", "watcher");
		bench_add(&s, t1 - t0);
		/* back to tmp/: seen by the watcher as IN_MOVED_FROM, ignored */
		if (renameat(newfd, name, tmpfd, name) != 0)
			die("rename", name);
		bench_pause_ms(pace_ms);
	}
	unlinkat(tmpfd, name, 0);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	bench_summary(stdout, tcp ? "floor rename->inotify->tcp" :
	    "floor rename->inotify", &s);
	if (raw != NULL && bench_write_raw(raw, &s) != 0)
		die("write", raw);
	bench_samples_free(&s);
	return 0;
usage:
	fprintf(stderr, "usage: %s [-f | -r K | -s] [-i MS] [-n COUNT] "
	    "[-t SECONDS] [-o RAW] DIR\n", prog);
	return 2;
}
