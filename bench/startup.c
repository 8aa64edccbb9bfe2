/*
 * startup.c: start-up time and idle footprint of supervised.
 *
 * Each run forks and execs supervised (SUPERVISE_PORT=0, so it picks a
 * free port), reads its stderr up to "listening on ADDR:PORT", and sends
 * GET /health until it is answered "ok"; the sample is exec -> health
 * answered.  Then, idle for 300 ms, VmRSS and the thread count are read
 * from /proc, and the daemon is stopped with SIGTERM.  Interleaved with
 * the runs, fork + exec + exit of /bin/true gives the floor of starting
 * any program here.
 *
 *   startup -b SUPERVISED [-n RUNS] [-o RAW] [-f FLOORRAW] [ARG...]
 *
 * The environment (SUPERVISE_ROOT, SUPERVISE_BOTTLE_SLUG, ...) is the
 * caller's.  Every wait is bounded (10 s).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static const char *prog = "startup";

/* Read stderr lines until "listening on ...:PORT"; returns the port. */
static int
wait_listening(int fd, uint64_t deadline)
{
	char buf[4096];
	size_t len = 0;

	while (bench_now() < deadline && len < sizeof buf - 1) {
		ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
		char *p, *colon;

		if (r <= 0)
			return -1;
		len += (size_t)r;
		buf[len] = '\0';
		if ((p = strstr(buf, "listening on ")) == NULL ||
		    strchr(p, '\n') == NULL)
			continue;
		*strchr(p, '\n') = '\0';
		if ((colon = strrchr(p, ':')) == NULL)
			return -1;
		return atoi(colon + 1);
	}
	return -1;
}

static int
health(int port, uint64_t deadline)
{
	while (bench_now() < deadline) {
		struct bench_http h;
		size_t len;
		char *req = bench_health_request(&len);
		int fd = bench_connect(port, 0), ok;

		bench_http_init(&h);
		ok = fd >= 0 && bench_http_send(fd, req, len) == 0 &&
		    bench_http_read(fd, &h, deadline) == 0 && h.status == 200;
		if (fd >= 0)
			close(fd);
		free(req);
		bench_http_free(&h);
		if (ok)
			return 0;
		usleep(200);
	}
	return -1;
}

static uint64_t
run_true(void)
{
	uint64_t t0 = bench_now();
	pid_t pid = fork();

	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	return bench_now() - t0;
}

int
main(int argc, char **argv)
{
	long runs = 20, i, failed = 0;
	const char *bin = NULL, *raw = NULL, *floorraw = NULL;
	struct bench_samples st = { 0 }, fl = { 0 }, rss = { 0 }, thr = { 0 };
	int c;

	while ((c = getopt(argc, argv, "b:f:n:o:")) != -1) {
		switch (c) {
		case 'b': bin = optarg; break;
		case 'f': floorraw = optarg; break;
		case 'n': runs = bench_arg_long(prog, "-n", optarg); break;
		case 'o': raw = optarg; break;
		default: goto usage;
		}
	}
	if (bin == NULL)
		goto usage;
	setenv("SUPERVISE_PORT", "0", 1);
	for (i = 0; i < runs; i++) {
		int errp[2], port, status;
		uint64_t t0, deadline;
		struct bench_proc p;
		pid_t pid;

		bench_add(&fl, run_true());
		if (pipe(errp) != 0)
			return 1;
		t0 = bench_now();
		deadline = t0 + 10000000000u;
		if ((pid = fork()) == 0) {
			char **av = calloc((size_t)(argc - optind + 2), sizeof *av);
			int j;

			av[0] = (char *)bin;
			for (j = optind; j < argc; j++)
				av[j - optind + 1] = argv[j];
			dup2(errp[1], 2);
			close(errp[0]);
			execv(bin, av);
			_exit(127);
		}
		close(errp[1]);
		if ((port = wait_listening(errp[0], deadline)) <= 0 ||
		    health(port, deadline) != 0) {
			fprintf(stderr, "%s: run %ld: supervised did not answer "
			    "/health within 10 s\n", prog, i);
			failed++;
		} else {
			bench_add(&st, bench_now() - t0);
			usleep(300000);
			if (bench_proc_read(pid, &p) == 0) {
				bench_add(&rss, (uint64_t)p.rss_kib);
				bench_add(&thr, (uint64_t)p.threads);
			}
		}
		kill(pid, SIGTERM);
		for (deadline = bench_now() + 5000000000u;
		    waitpid(pid, &status, WNOHANG) == 0;) {
			if (bench_now() > deadline) {
				fprintf(stderr, "%s: supervised ignored SIGTERM "
				    "for 5 s\n", prog);
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				failed++;
				break;
			}
			usleep(1000);
		}
		close(errp[0]);
	}
	bench_summary(stdout, "startup exec->/health", &st);
	bench_summary(stdout, "floor fork+exec /bin/true", &fl);
	if (rss.n > 0)
		printf("idle supervised: rss p50=%.1fMiB min=%.1fMiB max=%.1fMiB "
		    "threads=%llu\n", bench_pct(&rss, 50) / 1024.0,
		    bench_pct(&rss, 0.0001) / 1024.0,
		    bench_pct(&rss, 100) / 1024.0,
		    (unsigned long long)bench_pct(&thr, 50));
	if ((raw && bench_write_raw(raw, &st) != 0) ||
	    (floorraw && bench_write_raw(floorraw, &fl) != 0))
		perror(prog);
	bench_samples_free(&st);
	bench_samples_free(&fl);
	bench_samples_free(&rss);
	bench_samples_free(&thr);
	return failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: %s -b SUPERVISED [-n RUNS] [-o RAW] "
	    "[-f FLOORRAW] [ARG...]\n", prog);
	return 2;
}
