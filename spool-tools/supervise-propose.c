/*
 * supervise-propose: file a proposal into a bottle's spool from the shell.
 *
 * This is what an agent's tool call does through supervised, without the
 * HTTP: other components and the tests enqueue with it.  The payload is
 * checked with the same rules the daemon applies, and the proposal records
 * which version of the bottle's config it was made against.
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
	fprintf(f, "usage: supervise-propose [-s SLUG] -t TOOL -j JUSTIFICATION "
	    "[-f FILE | PAYLOAD]\n");
	exit(status);
}

int
main(int argc, char *argv[])
{
	struct sv_proposal p;
	struct sv_spool s;
	struct sv_err e;
	const struct sv_tool *t;
	const char *slug = getenv("SUPERVISE_BOTTLE_SLUG");
	const char *tool = NULL, *justification = NULL, *file = NULL;
	char *payload = NULL, *current = NULL, *eslug;
	char hash[41];
	size_t len = 0;
	int c, status = 1;

	sv_setprog(argv[0]);
	while ((c = getopt(argc, argv, "s:t:j:f:h")) != -1) {
		switch (c) {
		case 's': slug = optarg; break;
		case 't': tool = optarg; break;
		case 'j': justification = optarg; break;
		case 'f': file = optarg; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;
	/* With no payload given, a terminal on stdin would just sit there. */
	if (!tool || !justification || argc > 1 || (file && argc == 1) ||
	    (!file && argc == 0 && isatty(STDIN_FILENO)))
		usage(stderr, 2);
	if (!slug || !*slug) {
		sv_warnx("no bottle: give -s SLUG or set SUPERVISE_BOTTLE_SLUG");
		return 2;
	}
	if (!(t = sv_tool_find(tool)) || !t->proposes) {
		char *etool = sv_escape(tool, strlen(tool), 0);

		sv_warnx("can't propose '%s': not a proposing tool", etool);
		free(etool);
		return 2;
	}
	if (!*justification) {
		sv_warnx("can't propose: the justification is empty");
		return 2;
	}
	if (strlen(justification) > SV_TEXT_MAX) {
		sv_warnx("can't propose: the justification is longer than %d "
		    "bytes", SV_TEXT_MAX);
		return 2;
	}

	if (argc == 1) {
		payload = sv_xstrdup(argv[0]);
	} else if (sv_cli_read_file(file ? file : "-", SV_FILE_MAX, &payload,
	    &len, &e) < 0) {
		sv_warn_err(&e);
		return 2;
	}
	if (sv_payload_check(tool, payload, &e) < 0) {
		sv_warnx("can't propose: %s", e.msg);
		free(payload);
		return 1;
	}

	eslug = sv_escape(slug, strlen(slug), 0);
	memset(&p, 0, sizeof p);
	if (sv_valid_slug(slug, &e) < 0 ||
	    sv_spool_open_slug(&s, slug, 0, &e) < 0) {
		sv_warnx("can't propose to '%s': %s", eslug, e.msg);
		goto out;
	}
	if (sv_cli_config_text(slug, tool, &current, &len, &e) < 0) {
		sv_warnx("can't propose to '%s': %s", eslug, e.msg);
		goto close;
	}
	sv_blob_hash(current ? current : "", current ? len : 0, hash);
	p.bottle_slug = (char *)slug;
	p.tool = (char *)tool;
	p.proposed_file = payload;
	p.justification = (char *)justification;
	p.current_file_hash = hash;
	if (sv_propose(&s, &p, &e) < 0) {
		sv_warnx("can't propose to '%s': %s", eslug, e.msg);
		goto close;
	}
	printf("%s\n", p.id);
	if (fflush(stdout) == EOF)
		sv_warnx("can't write 'stdout': %s", strerror(errno));
	else
		status = 0;
close:
	sv_spool_close(&s);
out:
	/* sv_propose filled in id and arrival_timestamp; the rest is ours. */
	free(p.id);
	free(p.arrival_timestamp);
	free(current);
	free(payload);
	free(eslug);
	return status;
}
