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

/* The ids that came together are decided together (two flushes). */
static int
reject(const char **args, size_t n, void *ctx)
{
	const struct rejection *r = ctx;

	return sv_cli_decide_print(args, n, SV_REJECTED, r->notes, NULL, r->nul,
	    "reject");
}

int
main(int argc, char *argv[])
{
	struct rejection r = { NULL, 0 };
	struct sv_err e;
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
	failed = sv_cli_loop_many(argc - optind, argv + optind, r.nul, reject,
	    &r, &e);
	if (failed < 0)
		usage(stderr, 2);
	if (e.msg[0] != '\0')
		sv_warn_err(&e);
	return failed ? 1 : 0;
}
