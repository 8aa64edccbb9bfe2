/*
 * keys.c: key-to-screen latency of a terminal program, through a pty.
 *
 *   keys [-n COUNT] [-t SECONDS] [-k KEYS] [-w TEXT] [-o RAWFILE] -- PROG ARG...
 *
 * Runs PROG on a pseudo-terminal of 80x24 (TERM=xterm, LANG=C.UTF-8),
 * waits until its screen shows TEXT (-w) and has been quiet for 200 ms,
 * then types the characters of KEYS (default "j") in turn, COUNT times;
 * in KEYS, \r is Enter and \e Escape.
 * A sample is the time from just before the key is written to the pty to
 * the return of the read() that brings the last byte of the screen update
 * it caused: output that follows the previous read within 2 ms belongs to
 * the same update, and those 2 ms of waiting for more are not counted.
 * Prints one summary line and how many updates came in more than one
 * read; -o appends the raw samples (ns, one a line).
 *
 * With PROG `cat` (the pty put in raw mode for it) this is the floor: a
 * key through the pty and its echo back, with no program work in it.
 * Bounded by COUNT (default 400), SECONDS (default 60) and 2 s a key.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "bench.h"

static const char *prog = "keys";

/* KEYS with \r (Enter), \e (Escape) and \\ made the bytes they name. */
static char *
unescape(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
			*o++ = *s == 'r' ? '\r' : *s == 'e' ? 27 : *s;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

/* Read what is there within ms; bytes read, 0 on time-out, -1 at the end. */
static ssize_t
read_within(int fd, char *buf, size_t n, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t r;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	r = read(fd, buf, n);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	return r <= 0 ? -1 : r;
}

int
main(int argc, char **argv)
{
	struct bench_samples s = { 0 };
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };
	struct termios raw;
	const char *keys = "j", *wait_text = NULL, *out = NULL;
	long count = 400, seconds = 60, split = 0, i;
	char buf[65536], *seen = NULL;
	size_t nseen = 0;
	uint64_t start, quiet;
	int c, fd, status;
	pid_t pid;

	while ((c = getopt(argc, argv, "n:t:k:w:o:")) != -1) {
		switch (c) {
		case 'n': count = atol(optarg); break;
		case 't': seconds = atol(optarg); break;
		case 'k': keys = unescape(optarg); break;
		case 'w': wait_text = optarg; break;
		case 'o': out = optarg; break;
		default: goto usage;
		}
	}
	if (optind >= argc || !keys || !*keys)
		goto usage;
	cfmakeraw(&raw);
	pid = forkpty(&fd, NULL, strcmp(argv[optind], "cat") == 0 ? &raw : NULL,
	    &ws);
	if (pid < 0) {
		fprintf(stderr, "%s: can't make a pty: %s\n", prog,
		    strerror(errno));
		return 1;
	}
	if (pid == 0) {
		setenv("TERM", "xterm", 1);
		setenv("LANG", "C.UTF-8", 1);
		execvp(argv[optind], argv + optind);
		_exit(127);
	}

	/* Set up: the first screen, then quiet. */
	start = quiet = bench_now();
	for (;;) {
		ssize_t r = read_within(fd, buf, sizeof buf, 50);
		uint64_t now = bench_now();

		if (r < 0) {
			fprintf(stderr, "%s: '%s' ended before the first "
			    "screen\n", prog, argv[optind]);
			return 1;
		}
		if (r > 0) {
			quiet = now;
			if (wait_text && nseen < (1 << 20)) {
				seen = realloc(seen, nseen + (size_t)r + 1);
				memcpy(seen + nseen, buf, (size_t)r);
				nseen += (size_t)r;
				seen[nseen] = '\0';
			}
		}
		if ((!wait_text || (seen && strstr(seen, wait_text))) &&
		    now - quiet > 200000000ull)
			break;
		if (now - start > 10000000000ull) {
			fprintf(stderr, "%s: no first screen%s%s in 10 s\n",
			    prog, wait_text ? " showing " : "",
			    wait_text ? wait_text : "");
			kill(pid, SIGTERM);
			return 1;
		}
	}
	free(seen);

	start = bench_now();
	for (i = 0; i < count; i++) {
		char k = keys[i % (long)strlen(keys)];
		uint64_t t0, last = 0;
		int reads = 0;

		if (bench_now() - start > (uint64_t)seconds * 1000000000ull)
			break;
		t0 = bench_now();
		if (write(fd, &k, 1) != 1) {
			fprintf(stderr, "%s: can't write to the pty: %s\n", prog,
			    strerror(errno));
			break;
		}
		for (;;) {
			ssize_t r = read_within(fd, buf, sizeof buf,
			    reads ? 2 : 2000);

			if (r < 0)
				goto ended;
			if (r == 0)
				break;
			last = bench_now();
			reads++;
		}
		if (reads == 0) {
			fprintf(stderr, "%s: key %ld ('%c') changed nothing in "
			    "2 s\n", prog, i, k);
			break;
		}
		split += reads > 1;
		bench_add(&s, last - t0);
	}
ended:
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	if (s.n == 0) {
		fprintf(stderr, "%s: no samples\n", prog);
		return 1;
	}
	if (out && bench_write_raw(out, &s) < 0)
		fprintf(stderr, "%s: can't write '%s': %s\n", prog, out,
		    strerror(errno));
	printf("# %zu keys, %ld updates came in more than one read\n", s.n,
	    split);
	bench_summary(stdout, "key -> screen", &s);
	bench_samples_free(&s);
	return 0;
usage:
	fprintf(stderr, "usage: keys [-n COUNT] [-t SECONDS] [-k KEYS] "
	    "[-w TEXT] [-o RAWFILE] -- PROG ARG...\n");
	return 2;
}
