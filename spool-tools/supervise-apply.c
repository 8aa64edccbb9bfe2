/*
 * supervise-apply: make a bottle's approved config take effect again.
 *
 * After the operator has fixed what made an apply fail (a proxy that was
 * down, a hook with a bug), this does what the sidecar did for the
 * bottle's latest approved decision (or the one named): brings the live
 * directory up to date with main, runs the apply hook with that
 * decision, and records the outcome as the decision's note under
 * refs/notes/apply, replacing the old one (the notes ref keeps it in its
 * history).  Running it twice does the same thing twice: hooks reload,
 * they do not add.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-apply [--apply-hook PATH] "
	    "[--apply-timeout SEC] SLUG [ID]\n");
	exit(status);
}

struct latest {
	char id[SV_ID_MAX + 1];
};

static int
latest_approved(const struct sv_decision_commit *d, void *arg)
{
	struct latest *l = arg;

	if (strcmp(d->status, "approved") != 0 &&
	    strcmp(d->status, "modified") != 0)
		return 0;
	snprintf(l->id, sizeof l->id, "%s", d->id);
	return 1;
}

struct outcome {
	char *line;
};

static void
on_applied(const struct sv_apply_result *res, void *arg)
{
	struct outcome *o = arg;

	free(o->line);
	o->line = res->note->applied ? sv_xstrdup("applied: yes") :
	    sv_xasprintf("applied: no: %s", res->note->reason);
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "apply-hook", required_argument, NULL, 'H' },
		{ "apply-timeout", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *hookarg = getenv("SUPERVISE_APPLY_HOOK");
	const char *tmo = getenv("SUPERVISE_APPLY_TIMEOUT"), *slug;
	struct sv_decision_commit dc;
	struct sv_applier *ap = NULL;
	struct sv_audit *a = NULL;
	struct outcome o = { NULL };
	struct latest l;
	struct sv_err e;
	char *hook = NULL, *dir = NULL, *end, *esc;
	long timeout = SV_HOOK_TIMEOUT;
	int c, rc, status = 1;

	sv_setprog(argv[0]);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'H': hookarg = optarg; break;
		case 'A': tmo = optarg; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > 2)
		usage(stderr, 2);
	slug = argv[0];
	if (sv_valid_slug(slug, &e) == -1 ||
	    (argc == 2 && sv_valid_id(argv[1], &e) == -1)) {
		sv_warn_err(&e);
		return 2;
	}
	if (tmo != NULL && tmo[0] != '\0') {
		errno = 0;
		timeout = strtol(tmo, &end, 10);
		if (errno != 0 || end == tmo || *end != '\0' || timeout < 1 ||
		    timeout > 86400) {
			sv_warnx("invalid --apply-timeout '%s': want a whole "
			    "number from 1 to 86400", tmo);
			return 2;
		}
	}
	if (sv_hook_find(hookarg, &hook, &e) == -1) {
		sv_warn_err(&e);
		return 2;
	}
	if (sv_audit_open(&a, NULL, &e) == -1)
		goto fail;
	memset(&l, 0, sizeof l);
	if (argc == 2) {
		rc = sv_audit_find_decision(a, slug, argv[1], (size_t)-1, &dc,
		    &e);
		if (rc == 1 && strcmp(dc.status, "approved") != 0 &&
		    strcmp(dc.status, "modified") != 0) {
			sv_errf(&e, 0, "the decision on %s was %s: nothing to "
			    "apply", argv[1], dc.status);
			rc = -1;
		}
		sv_decision_commit_free(&dc);
		if (rc == -1)
			goto fail;
		if (rc == 0) {
			sv_errf(&e, 0, "no decision on %s of bottle %s on main",
			    argv[1], slug);
			goto fail;
		}
		snprintf(l.id, sizeof l.id, "%s", argv[1]);
	} else if (sv_audit_decisions(a, slug, (size_t)-1, latest_approved,
	    &l, &e) == -1) {
		goto fail;
	}
	dir = sv_state_dir(slug);
	if (l.id[0] == '\0') {
		/* Nothing was ever approved: the live files, no hook. */
		if (sv_live_publish(a, slug, dir, NULL, &e) == -1)
			goto fail;
		sv_warnx("%s has no approved decision; the live directory is "
		    "up to date with main", slug);
		status = 0;
		goto out;
	}
	if (sv_applier_new(&ap, a, slug, dir, hook, timeout, -1, on_applied,
	    &o, &e) == -1)
		goto fail;
	sv_applier_add(ap, l.id, 1);
	rc = sv_applier_wait(ap, &e);
	if (o.line == NULL) {
		sv_warnx("can't apply the decision on %s (see above)", l.id);
		goto out;
	}
	esc = sv_escape(o.line, strlen(o.line), 0);
	printf("%s\t%s\n", l.id, esc);
	free(esc);
	if (fflush(stdout) == EOF)
		sv_warnx("can't write 'stdout': %s", strerror(errno));
	else if (rc == -1)
		sv_warnx("can't record the outcome: %s", e.msg);
	else if (strcmp(o.line, "applied: yes") == 0)
		status = 0;
	goto out;
fail:
	sv_warn_err(&e);
out:
	sv_applier_free(ap);
	sv_audit_close(a);
	free(o.line);
	free(dir);
	free(hook);
	return status;
}
