/*
 * supervise-approve: approve proposals, each by writing its response file.
 *
 * The daemon picks the response up, commits the decision and answers the
 * agent.  With -f the operator's own file replaces the proposed one and
 * the decision becomes "modified".  One id failing does not stop the
 * others; it only makes the exit status 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

struct approval {
	const char *notes;
	const char *final_file;	/* -f FILE's text, or NULL */
	int nul;
};

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-approve [-0] [-n NOTES] [-f FINAL_FILE] "
	    "[ID ...]\n");
	exit(status);
}

/* The ids that came together are decided together (two flushes). */
static int
approve(const char **args, size_t n, void *ctx)
{
	const struct approval *a = ctx;

	return sv_cli_decide_print(args, n, SV_APPROVED, a->notes, a->final_file, a->nul,
	    "approve");
}

int
main(int argc, char *argv[])
{
	struct approval a = { NULL, NULL, 0 };
	struct sv_err e;
	const char *file = NULL;
	char *final_file = NULL;
	size_t len;
	int c, failed;

	sv_setprog(argv[0]);
	while ((c = getopt(argc, argv, "0n:f:h")) != -1) {
		switch (c) {
		case '0': a.nul = 1; break;
		case 'n': a.notes = optarg; break;
		case 'f': file = optarg; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	/* Ids may come on stdin, so the final file can't. */
	if (file && strcmp(file, "-") == 0 && optind == argc)
		usage(stderr, 2);
	if (file) {
		if (sv_cli_read_file(file, SV_FILE_MAX, &final_file, &len,
		    &e) < 0) {
			sv_warn_err(&e);
			return 2;
		}
		a.final_file = final_file;
	}
	failed = sv_cli_loop_many(argc - optind, argv + optind, a.nul, approve,
	    &a, &e);
	free(final_file);
	if (failed < 0)
		usage(stderr, 2);
	if (e.msg[0] != '\0')
		sv_warn_err(&e);
	return failed ? 1 : 0;
}
