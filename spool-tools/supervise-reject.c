/*
 * supervise-reject: reject proposals, each by writing its response file.
 *
 * The notes are what the agent reads back as the reason, so they are
 * worth giving.  One id failing does not stop the others; it only makes
 * the exit status 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

struct rejection {
	const char *notes;
	int nul;
};

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-reject [-0] [-n NOTES] [ID ...]\n");
	exit(status);
}

static int
reject(const char *arg, void *ctx)
{
	const struct rejection *r = ctx;
	struct sv_err e;
	char *path, *earg;

	if (sv_cli_decide(arg, SV_REJECTED, r->notes, NULL, &path, &e) < 0) {
		earg = sv_escape(arg, strlen(arg), 0);
		sv_warnx("can't reject '%s': %s", earg, e.msg);
		free(earg);
		return -1;
	}
	printf("%s%c", path, r->nul ? '\0' : '\n');
	free(path);
	if (fflush(stdout) == EOF) {
		sv_warnx("can't write 'stdout': %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	struct rejection r = { NULL, 0 };
	int c, failed;

	sv_setprog(argv[0]);
	while ((c = getopt(argc, argv, "0n:h")) != -1) {
		switch (c) {
		case '0': r.nul = 1; break;
		case 'n': r.notes = optarg; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	failed = sv_cli_loop(argc - optind, argv + optind, r.nul, reject, &r);
	if (failed < 0)
		usage(stderr, 2);
	return failed ? 1 : 0;
}
