/*
 * drain.c: a test driver that consumes every waiting decision of one
 * bottle, as `supervised --drain` does, without the HTTP side.  Used by
 * the audit tests where the daemon's own --drain is not the point (the
 * crash loop kills it at random instants, several run at once).
 *
 *   SUPERVISE_BOTTLE_SLUG=web1 [SUPERVISE_QUEUE_DIR=...]
 *   [SUPERVISE_AUDIT_DIR=...] drain
 *
 * Prints "ID STATUS" (or "ID refused: REASON") per decision; exit 0, or 1
 * when a decision could not be committed or archived, 2 on a config error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "supervise.h"

static void
print_decision(const struct sv_decision *d, void *arg)
{
	(void)arg;
	if (d->status == SV_NONE)
		printf("%s refused: %s\n", d->id, d->error ? d->error : "");
	else
		printf("%s %s\n", d->id, sv_status_name(d->status));
}

int
main(int argc, char **argv)
{
	const char *slug = getenv("SUPERVISE_BOTTLE_SLUG");
	const char *qdir = getenv("SUPERVISE_QUEUE_DIR");
	const char *adir = getenv("SUPERVISE_AUDIT_DIR");
	struct sv_spool s;
	struct sv_audit *a;
	struct sv_err e;
	char *qpath;
	int n;

	(void)argc;
	sv_setprog(argv[0]);
	if (slug == NULL || sv_valid_slug(slug, &e) == -1)
		sv_die(2, "SUPERVISE_BOTTLE_SLUG must name a bottle");
	qpath = qdir && *qdir ? sv_xstrdup(qdir) : sv_queue_dir(slug);
	if (sv_spool_open(&s, qpath, slug, 1, &e) == -1) {
		sv_warn_err(&e);
		free(qpath);
		return 2;
	}
	free(qpath);
	if (sv_audit_open(&a, adir && *adir ? adir : NULL, &e) == -1) {
		sv_warn_err(&e);
		sv_spool_close(&s);
		return 2;
	}
	n = sv_consume_all(&s, a, print_decision, NULL, &e);
	fflush(stdout);
	if (n == -1)
		sv_warn_err(&e);
	sv_audit_close(a);
	sv_spool_close(&s);
	return n == -1 ? 1 : 0;
}
