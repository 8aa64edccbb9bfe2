/*
 * stats.c: summarise raw samples (nanoseconds, one a line) written by the
 * other bench programs with -o, so that samples from several interleaved
 * rounds are summarised together.
 *
 *   stats [-f FLOORFILE [-n NAME]] LABEL FILE...
 *
 * Prints the summary line of bench_summary(); with -f, also the ratio of
 * each percentile to the same percentile of the floor's samples (or of
 * any other figure's: -n names it in the line, "floor" by default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

int
main(int argc, char **argv)
{
	struct bench_samples s = { 0 }, fl = { 0 };
	const char *floor = NULL, *name = "floor";
	int c, i;

	while ((c = getopt(argc, argv, "f:n:")) != -1) {
		if (c == 'f')
			floor = optarg;
		else if (c == 'n')
			name = optarg;
		else
			goto usage;
	}
	if (argc - optind < 2)
		goto usage;
	for (i = optind + 1; i < argc; i++)
		if (bench_read_raw(argv[i], &s) != 0) {
			perror(argv[i]);
			return 1;
		}
	bench_summary(stdout, argv[optind], &s);
	if (floor != NULL && s.n > 0) {
		if (bench_read_raw(floor, &fl) != 0 || fl.n == 0) {
			fprintf(stderr, "stats: can't read '%s'\n", floor);
			return 1;
		}
		printf("%s vs %s: p50 x%.1f p95 x%.1f p99 x%.1f "
		    "(%+.3f ms at p50)\n", argv[optind], name,
		    (double)bench_pct(&s, 50) / (double)bench_pct(&fl, 50),
		    (double)bench_pct(&s, 95) / (double)bench_pct(&fl, 95),
		    (double)bench_pct(&s, 99) / (double)bench_pct(&fl, 99),
		    ((double)bench_pct(&s, 50) - (double)bench_pct(&fl, 50)) /
		    1e6);
	}
	bench_samples_free(&s);
	bench_samples_free(&fl);
	return 0;
usage:
	fprintf(stderr, "usage: stats [-f FLOORFILE [-n NAME]] LABEL "
	    "FILE...\n");
	return 2;
}
