/*
 * spoolcheck: what the hardening tests (t/04xx) assert about a spool after
 * a crash, a full disk or a load run.  Not a test itself (no .t runs it):
 * the shell tests call $SUPERVISE_BUILD/t/spoolcheck.
 *
 *   spoolcheck [-c] [-v] [-a AUDIT] QUEUE-DIR SLUG
 *
 * Always checked (exit 1 and one line on stderr per problem):
 *  - every file visible in proposals/{new,cur} and responses/{new,cur} is
 *    a regular file with a valid maildir name that loads with the
 *    library's strict loader (nothing half-written is visible);
 *  - a proposal's id is its file name and its bottle is SLUG;
 *  - no id is in proposals/new and proposals/cur at once, and no
 *    response is in responses/new and responses/cur at once (every
 *    proposal and decision present exactly once);
 *  - a response in cur/ belongs to a proposal that exists.
 * With -c (consistent: after a drain or a clean stop), also:
 *  - responses/new is empty;
 *  - a proposal is flagged R exactly when its response is in
 *    responses/cur;
 *  - with -a, every decided proposal has its record in the audit
 *    repository and no pending one has.
 * -v prints one line per proposal: ID WHERE FLAGS RESPONSE [AUDIT].
 * The last line on stdout is a summary of counts, key=value.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervise.h"

struct item {
	char id[SV_ID_MAX + 1];
	char flags[16];
	int where;		/* 1 new, 2 cur */
	int response;		/* 0 none, 1 new, 2 cur */
};

static int problems;

static void __attribute__((format(printf, 1, 2)))
problem(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("spoolcheck: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	problems++;
}

static int
by_id(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->id, ((const struct item *)b)->id);
}

/* Names in dir (a descriptor we keep), "." entries skipped. */
static char **
names_in(int dirfd, const char *label, size_t *n)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **v = NULL;

	*n = 0;
	if (d == NULL) {
		problem("can't read '%s': %s", label, strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		v = sv_xrealloc(v, (*n + 1) * sizeof *v);
		v[(*n)++] = sv_xstrdup(de->d_name);
	}
	closedir(d);
	return v;
}

static void
names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
regular(int dirfd, const char *name, const char *label)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		problem("can't stat '%s/%s': %s", label, name, strerror(errno));
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		problem("'%s/%s' is not a regular file", label, name);
		return 0;
	}
	if (st.st_mode & 077)
		problem("'%s/%s' has mode %o", label, name,
		    (unsigned)st.st_mode & 07777);
	return 1;
}

static void
scan_proposals(int dirfd, int where, const char *label, const char *slug,
    struct item **items, size_t *nitems)
{
	size_t n;
	char **v = names_in(dirfd, label, &n);
	struct sv_proposal p;
	struct sv_err e;
	char path[512];

	for (size_t i = 0; i < n; i++) {
		struct item it;

		memset(&it, 0, sizeof it);
		it.where = where;
		if (sv_parse_name(v[i], it.id, sizeof it.id, it.flags,
		    sizeof it.flags) < 0 || (where == 1 && strcmp(it.id, v[i]))) {
			problem("'%s/%s': not a valid name", label, v[i]);
			continue;
		}
		if (!regular(dirfd, v[i], label))
			continue;
		snprintf(path, sizeof path, "%s/%s", label, v[i]);
		memset(&p, 0, sizeof p);
		if (sv_proposal_read(dirfd, v[i], path, &p, &e) < 0) {
			problem("%s", e.msg);
			continue;
		}
		if (strcmp(p.id, it.id) != 0)
			problem("'%s': id '%s' is not the file name", path, p.id);
		if (strcmp(p.bottle_slug, slug) != 0)
			problem("'%s': bottle '%s', not '%s'", path,
			    p.bottle_slug, slug);
		sv_proposal_free(&p);
		*items = sv_xrealloc(*items, (*nitems + 1) * sizeof **items);
		(*items)[(*nitems)++] = it;
	}
	names_free(v, n);
}

static struct item *
find(struct item *items, size_t n, const char *id)
{
	struct item key;

	snprintf(key.id, sizeof key.id, "%s", id);
	return bsearch(&key, items, n, sizeof *items, by_id);
}

static void
scan_responses(int dirfd, int where, const char *label, struct item *items,
    size_t nitems, size_t *count)
{
	size_t n;
	char **v = names_in(dirfd, label, &n);
	struct sv_response r;
	struct sv_err e;
	char id[SV_ID_MAX + 1], flags[16], path[512];
	struct item *it;

	*count = 0;
	for (size_t i = 0; i < n; i++) {
		if (sv_parse_name(v[i], id, sizeof id, flags, sizeof flags) < 0 ||
		    (where == 1 && strcmp(id, v[i]) != 0)) {
			problem("'%s/%s': not a valid name", label, v[i]);
			continue;
		}
		if (!regular(dirfd, v[i], label))
			continue;
		snprintf(path, sizeof path, "%s/%s", label, v[i]);
		memset(&r, 0, sizeof r);
		if (sv_response_read(dirfd, v[i], path, &r, &e) < 0)
			problem("%s", e.msg);
		sv_response_free(&r);
		(*count)++;
		it = find(items, nitems, id);
		if (it == NULL) {
			if (where == 2)
				problem("'%s': no such proposal", path);
			continue;
		}
		if (it->response)
			problem("'%s': a second response for '%s'", path, id);
		it->response = where;
	}
	names_free(v, n);
}

static size_t
count_names(int dirfd, const char *label)
{
	size_t n;
	char **v = names_in(dirfd, label, &n);

	names_free(v, n);
	return n;
}

int
main(int argc, char **argv)
{
	struct sv_spool s;
	struct sv_audit *a = NULL;
	struct sv_err e;
	struct item *items = NULL;
	size_t nitems = 0, nrnew, nrcur, ndecided = 0, nwithdrawn = 0, nnew = 0;
	const char *audit = NULL;
	int c, consistent = 0, verbose = 0;

	sv_setprog("spoolcheck");
	while ((c = getopt(argc, argv, "a:cv")) != -1) {
		switch (c) {
		case 'a': audit = optarg; break;
		case 'c': consistent = 1; break;
		case 'v': verbose = 1; break;
		default: goto usage;
		}
	}
	if (argc - optind != 2) {
usage:
		fprintf(stderr, "usage: spoolcheck [-cv] [-a AUDIT] QUEUE SLUG\n");
		return 2;
	}
	if (sv_spool_open(&s, argv[optind], argv[optind + 1], 0, &e) < 0) {
		sv_warn_err(&e);
		return 2;
	}
	if (audit && sv_audit_open(&a, audit, &e) < 0) {
		sv_warn_err(&e);
		return 2;
	}

	scan_proposals(s.pnew, 1, "proposals/new", s.slug, &items, &nitems);
	scan_proposals(s.pcur, 2, "proposals/cur", s.slug, &items, &nitems);
	qsort(items, nitems, sizeof *items, by_id);
	for (size_t i = 1; i < nitems; i++)
		if (strcmp(items[i - 1].id, items[i].id) == 0)
			problem("proposal '%s' is there twice", items[i].id);
	scan_responses(s.rnew, 1, "responses/new", items, nitems, &nrnew);
	scan_responses(s.rcur, 2, "responses/cur", items, nitems, &nrcur);

	for (size_t i = 0; i < nitems; i++) {
		struct item *it = &items[i];
		int decided = strchr(it->flags, 'R') != NULL, recorded = -1;

		ndecided += decided;
		nnew += it->where == 1;
		nwithdrawn += strchr(it->flags, 'T') != NULL;
		if (a && (recorded = sv_audit_has_record(a, s.slug, it->id,
		    &e)) < 0)
			problem("%s", e.msg);
		if (decided && it->response == 0)
			problem("'%s' is flagged R but its response is gone",
			    it->id);
		if (consistent && decided != (it->response == 2))
			problem("'%s': flags '%s' but response %s", it->id,
			    it->flags, it->response == 2 ? "in cur/" :
			    it->response == 1 ? "in new/" : "none");
		if (consistent && a && recorded >= 0 && recorded != decided)
			problem("'%s': decided %d but audit record %d", it->id,
			    decided, recorded);
		if (verbose)
			printf("%s %s %s %s %d\n", it->id,
			    it->where == 1 ? "new" : "cur",
			    *it->flags ? it->flags : "-",
			    it->response == 2 ? "cur" : it->response == 1 ?
			    "new" : "none", recorded);
	}
	if (consistent && nrnew)
		problem("%zu responses still in responses/new", nrnew);

	printf("proposals=%zu new=%zu decided=%zu withdrawn=%zu "
	    "responses_new=%zu responses_cur=%zu bad=%zu ptmp=%zu rtmp=%zu "
	    "problems=%d\n", nitems, nnew, ndecided, nwithdrawn, nrnew, nrcur,
	    count_names(s.rbad, "responses/bad"),
	    count_names(s.ptmp, "proposals/tmp"),
	    count_names(s.rtmp, "responses/tmp"), problems);
	free(items);
	if (a)
		sv_audit_close(a);
	sv_spool_close(&s);
	return problems ? 1 : 0;
}
