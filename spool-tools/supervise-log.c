/*
 * supervise-log: the recent decisions, and whether each took effect.
 *
 * One line a decision, newest first, read from main's history and the
 * notes under refs/notes/apply: id, bottle, tool, status, what became of
 * it ("applied: yes", "applied: no: REASON", "-" for a rejection, which
 * changes nothing, or "applied: unknown" when no outcome is recorded),
 * the commit, when it was made and who decided (sv_cli_log_line, the
 * format supervise-watch -d prints too).  The id comes first so that a
 * line can be handed to supervise-apply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-log [-0u] [-n COUNT] [SLUG]\n");
	exit(status);
}

struct ctx {
	struct sv_audit *a;
	long left;
	int unapplied, nul, failed;
};

static int
print_one(const struct sv_decision_commit *d, void *arg)
{
	struct ctx *c = arg;
	struct sv_err e;
	char *outcome, *line;
	int noted;

	if (sv_cli_outcome(c->a, d, &outcome, &noted, &e) == -1) {
		sv_warn_err(&e);
		c->failed = 1;
	}
	if (c->unapplied && (strcmp(outcome, "-") == 0 ||
	    strcmp(outcome, "applied: yes") == 0)) {
		free(outcome);
		return 0;
	}
	line = sv_cli_log_line(d, outcome);
	fputs(line, stdout);
	putchar(c->nul ? '\0' : '\n');
	free(line);
	free(outcome);
	return --c->left <= 0;
}

int
main(int argc, char *argv[])
{
	struct ctx c = { NULL, 20, 0, 0, 0 };
	struct sv_err e;
	struct stat st;
	char *audit, *end;
	int ch, status = 0;

	sv_setprog(argv[0]);
	while ((ch = getopt(argc, argv, "0n:uh")) != -1) {
		switch (ch) {
		case '0': c.nul = 1; break;
		case 'n':
			errno = 0;
			c.left = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    c.left < 1) {
				sv_warnx("invalid count '%s': want a whole "
				    "number from 1", optarg);
				return 2;
			}
			break;
		case 'u': c.unapplied = 1; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1)
		usage(stderr, 2);
	if (argc == 1 && sv_valid_slug(argv[0], &e) == -1) {
		sv_warn_err(&e);
		return 2;
	}
	/* No repository, no decisions: nothing to show, nothing created. */
	audit = sv_audit_dir();
	if (stat(audit, &st) == -1) {
		free(audit);
		return 0;
	}
	free(audit);
	if (sv_audit_open(&c.a, NULL, &e) == -1) {
		sv_warn_err(&e);
		return 1;
	}
	if (sv_audit_decisions(c.a, argc == 1 ? argv[0] : NULL, (size_t)-1,
	    print_one, &c, &e) == -1) {
		sv_warn_err(&e);
		status = 1;
	}
	if (c.failed)
		status = 1;
	if (fflush(stdout) == EOF) {
		sv_warnx("can't write 'stdout': %s", strerror(errno));
		status = 1;
	}
	sv_audit_close(c.a);
	return status;
}
