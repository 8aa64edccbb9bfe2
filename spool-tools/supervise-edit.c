/*
 * supervise-edit: decide a proposal by editing its proposed file.
 *
 * The proposed file goes into a private temporary file; the operator's
 * editor runs on it; what comes back decides: the same text approves,
 * other text modifies (checked with the tool's payload rules), an empty
 * file aborts like an empty commit message does in git.  Nothing is
 * written to the spool unless the edit is good.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-edit [-n NOTES] ID\n");
	exit(status);
}

int
main(int argc, char *argv[])
{
	struct sv_spool s;
	struct sv_entry en;
	struct sv_proposal p;
	struct sv_err e;
	const char *notes = NULL;
	char *earg, *tmp = NULL, *edited = NULL, *path = NULL;
	size_t len;
	int c, keep = 0, status = 1;

	sv_setprog(argv[0]);
	while ((c = getopt(argc, argv, "n:h")) != -1) {
		switch (c) {
		case 'n': notes = optarg; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	if (argc - optind != 1)
		usage(stderr, 2);
	earg = sv_escape(argv[optind], strlen(argv[optind]), 0);

	if (sv_cli_open_proposal(argv[optind], &s, &en, &p, &e) < 0) {
		sv_warnx("can't edit '%s': %s", earg, e.msg);
		free(earg);
		return 1;
	}
	if (sv_decided(&s, en.id, &e) == 1) {
		sv_warnx("can't edit '%s': already decided", earg);
		goto out;
	}
	if (sv_cli_edit_text(p.proposed_file, &tmp, &edited, &len, &e) < 0) {
		sv_warnx("can't edit '%s': %s", earg, e.msg);
		goto out;
	}
	if (sv_cli_respond(&s, &p, SV_MODIFIED, notes, edited, &path,
	    &e) < 0) {
		/* Keep the operator's work when only the text was wrong. */
		keep = e.errnum != EEXIST;
		if (keep)
			sv_warnx("can't edit '%s': %s (the edit is kept in "
			    "'%s')", earg, e.msg, tmp);
		else
			sv_warnx("can't edit '%s': %s", earg, e.msg);
		goto out;
	}
	printf("%s\n", path);
	if (fflush(stdout) == EOF)
		sv_warnx("can't write 'stdout': %s", strerror(errno));
	else
		status = 0;
out:
	if (tmp && !keep)
		unlink(tmp);
	free(tmp);
	free(edited);
	free(path);
	free(earg);
	sv_proposal_free(&p);
	sv_spool_close(&s);
	return status;
}
