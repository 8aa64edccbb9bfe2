/*
 * supervise-config: an operator's direct edit of one config file of a
 * bottle, as one commit in the audit repository.
 *
 * The current text from main goes into $VISUAL or $EDITOR (or comes from
 * -f FILE); the result is checked and made canonical by the library, the
 * same way a starting config is, shown as a diff and committed as
 * "SLUG: operator edit RELPATH".  The commit only lands if the file on
 * main is still what the operator started from, so an approval that
 * arrives during a long edit is never silently reverted.  A refused edit
 * is kept in its temporary file, to fix and apply with -f.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

struct component {
	const char *name;	/* on the command line */
	const char *relpath;	/* in the bottle's tree */
	const char *empty;	/* what an editor starts from when absent */
};

static const struct component components[] = {
	{ "egress", "egress/routes.json", "{\n  \"routes\": []\n}\n" },
	{ "pipelock", "pipelock/allowlist", "" },
	{ "capability", "capability/Dockerfile", "" },
	{ "gitleaks", "gitleaks/.gitleaksignore", "" },
	{ "policy", SV_POLICY_PATH,
	  "# Rules that decide this bottle's proposals when they are filed;\n"
	  "# see supervise-policy(5).  The first matching line wins.\n"
	  "#   approve egress-block host=*.pypi.org path=/simple/\n"
	  "#   reject capability-block\n" },
	{ NULL, NULL, NULL },
};

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-config [-p] [-f FILE] [-m MESSAGE] SLUG "
	    "egress|pipelock|capability|gitleaks|policy\n");
	exit(status);
}

/* Config text to stdout: raw into a pipe, escaped on a terminal (a
 * Dockerfile or a route may have come from an agent). */
static int
print_text(const char *text)
{
	char *esc;

	if (isatty(STDOUT_FILENO)) {
		esc = sv_escape(text, strlen(text), SV_ESC_NL);
		fputs(esc, stdout);
		free(esc);
	} else {
		fputs(text, stdout);
	}
	return fflush(stdout) == EOF ? -1 : 0;
}

/* Write text into a new private temporary file named after the file. */
static char *
temp_file(const char *relpath, const char *text, struct sv_err *e)
{
	const char *base = strrchr(relpath, '/'), *tmp = getenv("TMPDIR");
	char *path;
	int fd;

	base = base ? base + 1 : relpath;
	if (*base == '.')
		base++;
	path = sv_xasprintf("%s/supervise-config.XXXXXX.%s",
	    tmp && *tmp ? tmp : "/tmp", base);
	if ((fd = mkstemps(path, (int)strlen(base) + 1)) == -1) {
		sv_errf(e, errno, "can't create '%s'", path);
		free(path);
		return NULL;
	}
	if (sv_write_all(fd, text, strlen(text)) == -1 || close(fd) == -1) {
		sv_errf(e, errno, "can't write '%s'", path);
		unlink(path);
		free(path);
		return NULL;
	}
	return path;
}

int
main(int argc, char *argv[])
{
	const struct component *c;
	const char *slug, *file = NULL, *message = NULL;
	struct sv_config_file f;
	struct sv_policy pol = {0};
	struct sv_audit *a = NULL;
	struct sv_err e;
	char *cur = NULL, *text = NULL, *norm = NULL, *tmp = NULL, *diff;
	char *author, *subject, *body, *label, *dir, base[41];
	size_t len;
	int ch, print = 0, status = 1;

	sv_setprog(argv[0]);
	while ((ch = getopt(argc, argv, "f:m:ph")) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'm': message = optarg; break;
		case 'p': print = 1; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2 || (print && (file || message)))
		usage(stderr, 2);
	slug = argv[0];
	if (sv_valid_slug(slug, &e) == -1) {
		sv_warn_err(&e);
		return 2;
	}
	for (c = components; c->name != NULL; c++)
		if (strcmp(c->name, argv[1]) == 0)
			break;
	if (c->name == NULL) {
		char *q = sv_escape(argv[1], strlen(argv[1]), 0);
		sv_warnx("unknown component '%s' (egress, pipelock, capability, "
		    "gitleaks, policy)", q);
		free(q);
		return 2;
	}
	label = sv_xasprintf("%s/%s", slug, c->relpath);

	if (print) {
		/* Reading does not create the repository. */
		if (sv_cli_audit_text(slug, c->relpath, &cur, &len, &e) == -1)
			sv_warn_err(&e);
		else if (cur == NULL)
			sv_warnx("no '%s' on main", label);
		else if (print_text(cur) == -1)
			sv_warnx("can't write 'stdout': %s", strerror(errno));
		else
			status = 0;
		goto out;
	}

	if (sv_audit_open(&a, NULL, &e) == -1 ||
	    sv_audit_read(a, slug, c->relpath, &cur, &len, &e) == -1) {
		sv_warn_err(&e);
		goto out;
	}
	sv_blob_hash(cur ? cur : "", cur ? len : 0, base);
	if (file != NULL) {
		if (sv_cli_read_file(file, SV_FILE_MAX, &text, &len, &e) == -1) {
			sv_warn_err(&e);
			goto out;
		}
	} else {
		if ((tmp = temp_file(c->relpath, cur ? cur : c->empty, &e)) ==
		    NULL || sv_cli_edit(tmp, "nothing committed", &e) == -1 ||
		    sv_cli_read_file(tmp, SV_FILE_MAX, &text, &len, &e) == -1) {
			sv_warn_err(&e);
			goto out;
		}
	}
	/* A broken rule is named where the operator can fix it. */
	if (strcmp(c->relpath, SV_POLICY_PATH) == 0 &&
	    sv_policy_parse(text, len, file ? file : tmp, &pol, &e) == -1) {
		sv_warnx("%s", e.msg);
		goto keep;
	}
	sv_policy_free(&pol);
	if (sv_config_normalize(c->relpath, text, &norm, &e) == -1) {
		sv_warnx("can't use the edit of '%s': %s", label, e.msg);
		goto keep;
	}
	if (cur != NULL && strcmp(cur, norm) == 0) {
		sv_warnx("'%s' unchanged; nothing committed", label);
		status = 0;
		goto out;
	}

	f.relpath = c->relpath;
	f.text = norm;
	f.base_hash = base;
	author = sv_cli_operator();
	subject = sv_xasprintf("%s: operator edit %s", slug, c->relpath);
	body = sv_xasprintf("%s%sBottle: %s\nComponent: %s\n"
	    "Action: operator-edit\n", message ? message : "",
	    message ? "\n\n" : "", slug, c->relpath);
	if (sv_audit_commit_config(a, slug, &f, 1, author, subject, body,
	    &e) == 0)
		status = 0;
	else
		sv_warn_err(&e);

	free(author);
	free(subject);
	free(body);
	if (status != 0)
		goto keep;
	/* What changed, for the operator's eyes (and scripts). */
	diff = sv_config_diff(cur, norm, label);
	if (diff == NULL || print_text(diff) == -1) {
		sv_warnx("committed, but can't show the diff of '%s'", label);
		status = 1;
	}
	free(diff);
	/* Committed: the proxies read the live directory, not git. */
	dir = sv_state_dir(slug);
	if (sv_live_publish(a, slug, dir, NULL, &e) == -1) {
		sv_warnx("committed, but %s", e.msg);
		status = 1;
	}
	free(dir);
	goto out;
keep:
	if (tmp != NULL) {
		sv_warnx("the edit is kept in '%s'; apply it with: "
		    "supervise-config -f '%s' %s %s", tmp, tmp, slug, c->name);
		free(tmp);
		tmp = NULL;
	}
out:
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	sv_audit_close(a);
	free(label);
	free(cur);
	free(text);
	free(norm);
	return status;
}
