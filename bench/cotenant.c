/*
 * cotenant.c: another program on the same file system, writing large
 * files: what a container build or a cache filling up does to a user's
 * disk while supervised works there.
 *
 *   cotenant -d DIR [-s MB] [-t SECONDS] [-r READY]
 *
 * Writes DIR/cotenant.N, MB megabytes each (default 400), in 1 MiB
 * writes of one block of random bytes made at the start (the writer
 * must load the disk, not the CPU), never fsync'd (the page cache
 * and the kernel's writeback carry them, as they carry any program's),
 * and removes each file once the next is written, so at most two exist.
 * Loops until SECONDS have passed (default 60) or it is killed
 * (SIGTERM: the files are removed).  With -r, creates READY once the
 * first 64 MiB are written, so a measurement can start under load.
 * Prints the MiB written and the rate.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const char *prog = "cotenant";
static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	const char *dir = NULL, *ready = NULL;
	long mb = 400, secs = 60, total = 0;
	unsigned char *buf;
	uint64_t t0, deadline;
	uint32_t x = 2463534242u;
	char path[2][4096];
	struct sigaction sa;
	int c, n = 0;

	while ((c = getopt(argc, argv, "d:s:t:r:")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 's': mb = bench_arg_long(prog, "-s", optarg); break;
		case 't': secs = bench_arg_long(prog, "-t", optarg); break;
		case 'r': ready = optarg; break;
		default: goto usage;
		}
	}
	if (dir == NULL || optind != argc || mb < 1 || secs < 1)
		goto usage;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if ((buf = malloc(1 << 20)) == NULL)
		return 1;
	for (size_t i = 0; i < (1 << 20); i += 4) {
		x ^= x << 13;	/* xorshift */
		x ^= x >> 17;
		x ^= x << 5;
		memcpy(buf + i, &x, 4);
	}
	t0 = bench_now();
	deadline = t0 + (uint64_t)secs * 1000000000u;
	path[0][0] = path[1][0] = '\0';
	while (!stop && bench_now() < deadline) {
		char *p = path[n % 2];
		int fd;

		snprintf(p, sizeof path[0], "%s/cotenant.%d", dir, n);
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd == -1) {
			fprintf(stderr, "%s: can't create '%s': %s\n", prog, p,
			    strerror(errno));
			return 1;
		}
		for (long m = 0; m < mb && !stop && bench_now() < deadline;
		    m++) {
			memcpy(buf, &m, sizeof m);	/* no two blocks alike */
			if (write(fd, buf, 1 << 20) != 1 << 20) {
				fprintf(stderr, "%s: can't write '%s': %s\n", prog,
				    p, strerror(errno));
				close(fd);
				unlink(p);
				return 1;
			}
			if (++total == 64 && ready != NULL)
				close(open(ready, O_WRONLY | O_CREAT, 0600));
		}
		close(fd);
		n++;
		if (path[n % 2][0] != '\0')
			unlink(path[n % 2]);	/* the one before last */
	}
	unlink(path[0]);
	unlink(path[1]);
	free(buf);
	printf("cotenant: %ld MiB written in %.1f s (%.0f MiB/s)\n", total,
	    (bench_now() - t0) / 1e9, total / ((bench_now() - t0) / 1e9));
	return 0;
usage:
	fprintf(stderr, "usage: %s -d DIR [-s MB] [-t SECONDS] [-r READY]\n",
	    prog);
	return 2;
}
