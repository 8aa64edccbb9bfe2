/*
 * timeit.c: run a command a bounded number of times and summarise its
 * wall-clock time (fork to exit), as hyperfine would but with the same
 * percentiles as the other bench programs.
 *
 *   timeit [-n RUNS] [-t SECONDS] [-o RAWFILE] [-q] LABEL -- CMD [ARG...]
 *
 * The command's stdout goes to /dev/null (-q also silences stderr).  A run
 * that exits non-zero is reported and makes timeit exit 1.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

int
main(int argc, char **argv)
{
	long runs = 5;
	double seconds = 120;
	const char *raw = NULL, *label;
	struct bench_samples s = { 0 };
	int c, quiet = 0, failed = 0;
	uint64_t stop;
	long i;

	while ((c = getopt(argc, argv, "+n:o:qt:")) != -1) {
		switch (c) {
		case 'n': runs = bench_arg_long("timeit", "-n", optarg); break;
		case 'o': raw = optarg; break;
		case 'q': quiet = 1; break;
		case 't': seconds = bench_arg_double("timeit", "-t", optarg); break;
		default: goto usage;
		}
	}
	if (argc - optind < 3 || strcmp(argv[optind + 1], "--") != 0)
		goto usage;
	label = argv[optind];
	argv += optind + 2;
	stop = bench_now() + (uint64_t)(seconds * 1e9);
	for (i = 0; i < runs && (i == 0 || bench_now() < stop); i++) {
		uint64_t t0 = bench_now();
		int st;
		pid_t pid = fork();

		if (pid < 0) {
			perror("timeit: can't fork");
			return 1;
		}
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 1);
			if (quiet)
				dup2(null, 2);
			execvp(argv[0], argv);
			fprintf(stderr, "timeit: can't run '%s'\n", argv[0]);
			_exit(127);
		}
		waitpid(pid, &st, 0);
		bench_add(&s, bench_now() - t0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "timeit: '%s' failed (status %d)\n",
			    argv[0], st);
			failed = 1;
		}
	}
	bench_summary(stdout, label, &s);
	if (raw != NULL && bench_write_raw(raw, &s) != 0) {
		perror(raw);
		return 1;
	}
	bench_samples_free(&s);
	return failed;
usage:
	fprintf(stderr, "usage: timeit [-n RUNS] [-t SECONDS] [-o RAW] [-q] "
	    "LABEL -- CMD [ARG...]\n");
	return 2;
}
