/*
 * supervise-init: create a bottle's spool and commit its starting config.
 *
 * The config files given are checked and made canonical by the library
 * (routes.json sorted by host, line lists sorted and unique) and committed
 * as one "SLUG: init config" commit.
 * Running it again is harmless: files already on main as given are left
 * alone; a file that is on main with other content is refused, since
 * changing a live config is an operator edit, not an init.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervise.h"

enum { OPT_ROUTES = 1, OPT_ALLOWLIST, OPT_DOCKERFILE, OPT_GITLEAKSIGNORE };

struct component {
	const char *relpath;
	const char *file;	/* the operator's file, or NULL */
	char *text;		/* its canonical text, to commit */
};

/* In the order of the options (OPT_ROUTES ...). */
static struct component components[] = {
	{ "egress/routes.json", NULL, NULL },
	{ "pipelock/allowlist", NULL, NULL },
	{ "capability/Dockerfile", NULL, NULL },
	{ "gitleaks/.gitleaksignore", NULL, NULL },
};
#define NCOMPONENTS (sizeof components / sizeof components[0])

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-init [--routes FILE] [--allowlist FILE] "
	    "[--dockerfile FILE] [--gitleaksignore FILE] SLUG\n");
	exit(status);
}

/* Check a file as the audit repository will, before anything is made. */
static int
normalise(struct component *c, struct sv_err *e)
{
	char *text;
	size_t len;
	int rc;

	if (sv_cli_read_file(c->file, SV_FILE_MAX, &text, &len, e) < 0)
		return -1;
	rc = sv_config_normalize(c->relpath, text, &c->text, e);
	free(text);
	if (rc < 0) {
		char *why = sv_xstrdup(e->msg);
		size_t n = strlen(c->relpath);
		const char *reason = why;

		/* The reason may name the file as well: say it once. */
		if (strncmp(why, c->relpath, n) == 0 && strncmp(why + n, ": ",
		    2) == 0)
			reason = why + n + 2;
		sv_errf(e, 0, "can't use '%s' as %s: %s", c->file, c->relpath,
		    reason);
		free(why);
	}
	return rc;
}

static int
publish_live(struct sv_audit *a, const char *slug, struct sv_err *e)
{
	char *dir = sv_state_dir(slug);
	int rc = sv_live_publish(a, slug, dir, NULL, e);

	free(dir);
	return rc;
}

/* Commit the files not yet on main; refuse to overwrite different ones;
 * bring the live directory up to date. */
static int
commit_config(const char *slug, struct sv_err *e)
{
	struct sv_config_file files[NCOMPONENTS];
	struct sv_audit *a;
	char *author, *subject, *body, *components_lines;
	char absent[41];
	size_t n = 0;
	int rc = -1;

	/* The commit itself checks the file is still absent: a race loses. */
	sv_blob_hash("", 0, absent);
	if (sv_audit_open(&a, NULL, e) < 0)
		return -1;
	components_lines = sv_xstrdup("");
	for (size_t i = 0; i < NCOMPONENTS; i++) {
		struct component *c = &components[i];
		char *current, *more;
		size_t len;

		if (!c->text)
			continue;
		if (sv_audit_read(a, slug, c->relpath, &current, &len, e) < 0)
			goto out;
		if (current && strcmp(current, c->text) == 0) {
			free(current);
			continue;
		}
		if (current) {
			free(current);
			sv_errf(e, 0, "'%s/%s' is already on main with other "
			    "content; change it with an operator edit", slug,
			    c->relpath);
			goto out;
		}
		files[n].relpath = c->relpath;
		files[n].text = c->text;
		files[n].base_hash = absent;
		n++;
		more = sv_xasprintf("%sComponent: %s\n", components_lines,
		    c->relpath);
		free(components_lines);
		components_lines = more;
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	author = sv_cli_operator();
	subject = sv_xasprintf("%s: init config", slug);
	body = sv_xasprintf("Bottle: %s\n%sAction: init\n", slug,
	    components_lines);
	rc = sv_audit_commit_config(a, slug, files, n, author, subject, body,
	    e);
	free(author);
	free(subject);
	free(body);
out:
	free(components_lines);
	if (rc == 0)
		rc = publish_live(a, slug, e);
	sv_audit_close(a);
	return rc;
}

/*
 * The live directory, which the proxies' containers bind-mount, exists
 * from init on: as main has it when there is a repository, else empty.
 */
static int
init_live(const char *slug, int have_files, struct sv_err *e)
{
	struct sv_audit *a;
	struct stat st;
	char *dir, *audit = sv_audit_dir();
	int rc;

	if (have_files || stat(audit, &st) == 0) {
		free(audit);
		if (have_files)
			return 0;	/* commit_config published */
		if (sv_audit_open(&a, NULL, e) == -1)
			return -1;
		rc = publish_live(a, slug, e);
		sv_audit_close(a);
		return rc;
	}
	free(audit);
	dir = sv_state_dir(slug);
	rc = sv_live_create(dir, e);
	free(dir);
	return rc;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "routes", required_argument, NULL, OPT_ROUTES },
		{ "allowlist", required_argument, NULL, OPT_ALLOWLIST },
		{ "dockerfile", required_argument, NULL, OPT_DOCKERFILE },
		{ "gitleaksignore", required_argument, NULL, OPT_GITLEAKSIGNORE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sv_spool s;
	struct sv_err e;
	const char *slug;
	char *eslug;
	int c, have_files = 0, status = 0;

	sv_setprog(argv[0]);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ROUTES:
		case OPT_ALLOWLIST:
		case OPT_DOCKERFILE:
		case OPT_GITLEAKSIGNORE:
			components[c - OPT_ROUTES].file = optarg;
			have_files = 1;
			break;
		case 'h':
			usage(stdout, 0);
		default:
			usage(stderr, 2);
		}
	}
	if (argc - optind != 1)
		usage(stderr, 2);
	slug = argv[optind];
	eslug = sv_escape(slug, strlen(slug), 0);

	if (sv_valid_slug(slug, &e) < 0) {
		sv_warnx("can't init '%s': %s", eslug, e.msg);
		free(eslug);
		return 1;
	}
	/* Check every file before anything is created. */
	for (size_t i = 0; i < NCOMPONENTS; i++) {
		if (components[i].file && normalise(&components[i], &e) < 0) {
			sv_warn_err(&e);
			status = 2;
			goto out;
		}
	}
	if (sv_spool_open_slug(&s, slug, 1, &e) < 0) {
		sv_warnx("can't init '%s': %s", eslug, e.msg);
		status = 1;
		goto out;
	}
	if (have_files && commit_config(slug, &e) < 0) {
		sv_warnx("can't init config of '%s': %s", eslug, e.msg);
		status = 1;
	} else if (init_live(slug, have_files, &e) < 0) {
		sv_warnx("can't init '%s': %s", eslug, e.msg);
		status = 1;
	} else {
		printf("%s\n", s.path);
		if (fflush(stdout) == EOF) {
			sv_warnx("can't write 'stdout': %s", strerror(errno));
			status = 1;
		}
	}
	sv_spool_close(&s);
out:
	for (size_t i = 0; i < NCOMPONENTS; i++)
		free(components[i].text);
	free(eslug);
	return status;
}
