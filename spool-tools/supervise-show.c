/*
 * supervise-show: a proposal for a human to decide, then mark it seen.
 *
 * Everything the agent wrote (justification, proposed file, and the diff,
 * which quotes the proposed file) goes through sv_escape, so an agent
 * cannot move the cursor, retitle the terminal or reverse text to make a
 * request look like something else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

static int quiet;
static int shown;

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-show [-q] [ID ...]\n");
	exit(status);
}

/* Agent text, escaped, ending in exactly one newline. */
static void
print_text(const char *text)
{
	size_t len = strlen(text);
	char *esc = sv_escape(text, len, SV_ESC_NL);

	fputs(esc, stdout);
	if (len == 0 || text[len - 1] != '\n')
		putchar('\n');
	free(esc);
}

/* The change approving the proposal as it stands would make. */
static int
print_diff(const char *slug, const struct sv_proposal *p, struct sv_err *e)
{
	char *text;

	if (sv_cli_diff(slug, p, NULL, &text, e) < 0)
		return -1;
	fputs(text, stdout);
	free(text);
	return 0;
}

/* Which rule of the bottle's policy would decide the proposal, and why
 * each other rule of its tool does not. */
static int
print_policy(const char *slug, const struct sv_proposal *p, struct sv_err *e)
{
	struct sv_policy pol;
	struct sv_err why;
	char *text, *label, *explain, *esc;
	size_t len;

	if (sv_cli_audit_text(slug, SV_POLICY_PATH, &text, &len, e) < 0)
		return -1;
	label = sv_xasprintf("%s/%s", slug, SV_POLICY_PATH);
	if (text == NULL) {
		printf("Policy: none, no %s on main\n", label);
	} else if (sv_policy_parse(text, len, label, &pol, &why) < 0) {
		esc = sv_escape(why.msg, strlen(why.msg), 0);
		printf("Policy: broken, no rule decides: %s\n", esc);
		free(esc);
	} else {
		sv_policy_match(&pol, p->tool, p->proposed_file, &explain);
		printf("Policy of %s:\n", label);
		/* Rule text is the operator's, but a payload is the agent's. */
		print_text(explain);
		free(explain);
		sv_policy_free(&pol);
	}
	free(text);
	free(label);
	return 0;
}

static int
show(const char *arg, void *ctx)
{
	struct sv_spool s;
	struct sv_entry en;
	struct sv_proposal p;
	struct sv_err e;
	char *earg;
	int decided, rc = 0;

	(void)ctx;
	if (sv_cli_open_proposal(arg, &s, &en, &p, &e) < 0) {
		earg = sv_escape(arg, strlen(arg), 0);
		sv_warnx("can't show '%s': %s", earg, e.msg);
		free(earg);
		return -1;
	}
	if (!quiet) {
		char *etool = sv_escape(p.tool, strlen(p.tool), 0);
		char *earrived = sv_escape(p.arrival_timestamp,
		    strlen(p.arrival_timestamp), 0);
		const char *state = sv_cli_state(&en);

		/* A response waiting for the daemon counts as decided too. */
		decided = sv_decided(&s, en.id, &e);
		if (decided == 1)
			state = "decided";
		if (shown++)
			putchar('\n');
		printf("Id: %s\nBottle: %s\nTool: %s\nArrived: %s\nState: %s\n",
		    en.id, s.slug, etool, earrived, state);
		free(etool);
		free(earrived);
		printf("\nJustification:\n");
		print_text(p.justification);
		printf("\nProposed file:\n");
		print_text(p.proposed_file);
		putchar('\n');
		if (decided == 1)
			printf("Diff: none, the proposal is decided\n");
		else if (decided < 0 || print_diff(s.slug, &p, &e) < 0) {
			sv_warnx("can't diff '%s/%s': %s", s.slug, en.id, e.msg);
			rc = -1;
		}
		putchar('\n');
		if (print_policy(s.slug, &p, &e) < 0) {
			sv_warnx("can't read the policy of '%s': %s", s.slug,
			    e.msg);
			rc = -1;
		}
		if (fflush(stdout) == EOF) {
			sv_warnx("can't write 'stdout': %s", strerror(errno));
			rc = -1;
		}
	}
	/* Seen only once it was shown. */
	if (rc == 0 && sv_mark_seen(&s, en.id, &e) < 0) {
		sv_warnx("can't mark '%s/%s' seen: %s", s.slug, en.id, e.msg);
		rc = -1;
	}
	sv_proposal_free(&p);
	sv_spool_close(&s);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct sv_err e;
	int c, failed;

	sv_setprog(argv[0]);
	while ((c = getopt(argc, argv, "qh")) != -1) {
		switch (c) {
		case 'q': quiet = 1; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	failed = sv_cli_loop(argc - optind, argv + optind, 0, show, NULL, &e);
	if (failed < 0)
		usage(stderr, 2);
	if (e.msg[0] != '\0')
		sv_warn_err(&e);
	return failed ? 1 : 0;
}
