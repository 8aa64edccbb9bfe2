/*
 * supervise-list: the pending proposals of some or all bottles, one a line.
 *
 * Lines are sorted by arrival across bottles, so the oldest question is
 * on top; the id comes first so that the output can be piped into
 * supervise-approve, supervise-reject and supervise-show.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-list [-0] [SLUG ...]\n");
	exit(status);
}

int
main(int argc, char *argv[])
{
	struct sv_cli_row *rows;
	struct sv_cli_errs errs;
	struct sv_err e;
	char **slugs = NULL;
	size_t n, nslugs;
	int c, nul = 0, status = 0;

	sv_setprog(argv[0]);
	while ((c = getopt(argc, argv, "0h")) != -1) {
		switch (c) {
		case '0': nul = 1; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;

	if (argc > 0) {
		nslugs = (size_t)argc;
	} else if (sv_cli_bottles(&slugs, &nslugs, &e) < 0) {
		sv_warn_err(&e);
		return 1;
	}
	if (sv_cli_pending(slugs ? slugs : argv, nslugs, time(NULL), &rows,
	    &n, &errs) < 0)
		status = 1;
	for (size_t i = 0; i < errs.n; i++)
		sv_warn_err(&errs.v[i]);
	free(errs.v);
	for (size_t i = 0; i < n; i++) {
		fputs(rows[i].line, stdout);
		putchar(nul ? '\0' : '\n');
	}
	sv_cli_rows_free(rows, n);
	sv_cli_strv_free(slugs);
	if (fflush(stdout) == EOF) {
		sv_warnx("can't write 'stdout': %s", strerror(errno));
		status = 1;
	}
	return status;
}
