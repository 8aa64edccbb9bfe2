/*
 * audit.c: audit commits on their own, and as history grows.
 *
 * Calls sv_audit_commit_decisions() in a loop on one bare repository, as
 * the daemon's consumer does (packs merged by sv_audit_maintain after
 * each batch, off the commit, whose time alone is recorded), with decisions shaped like real ones: three
 * approvals of an egress-block route for one in four rejections, over 64
 * hosts and 8 path prefixes, so the bottle's routes.json stays small and
 * only the history (commits, decision records) grows.
 *
 *   audit -r REPO [-n TOTAL] [-s EVERY] [-k SAMPLE] [-F] [-u] [-b N] [-o RAW]
 *         [-M] [-m]
 *
 * -u approves a new host every time instead (no rejections), so
 * routes.json grows by one route a decision: the cost of a commit as the
 * bottle's config grows, apart from its history.
 *
 * -b N commits N decisions at a time (sv_audit_commit_decisions: one
 * chain of N commits, one move of the branch, two flushes), as the
 * daemon does when N responses arrive together; the time of a batch is
 * recorded over N, the cost of one decision in it.
 * Prints commits/s and the per-commit time.  With -s, one line per
 * window of EVERY decisions, so growth with history shows.  -F fills
 * the history in batches of 256 and then times SAMPLE (default 200)
 * single commits at the end of each window: the growth of a lone
 * commit's time is measured at each point without paying for one
 * lone commit per decision of TOTAL.
 *
 * At the end it counts the packs and files in objects/pack, as they are
 * right after the last batch (a merge may be under way).  -M merges
 * nothing (the packs pile up, one a batch); -m then times one merge of
 * them all, forced, by a store that holds none of their objects in
 * memory (sv_odb_merge, then sv_odb_remove): the cost of merging apart
 * from committing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <jansson.h>

#include "bench.h"
#include "daemon.h"
#include "odb.h"

static const char *prog = "audit";
static int unique_hosts, no_merges;

/* Decision number i, shaped like a real one. */
struct dec {
	struct sv_proposal p;
	struct sv_response r;
	char id[SV_ID_MAX + 1], when[64], hash[41];
	char *payload;
};

static void
make_decision(struct dec *d, long i)
{
	struct sv_err e;
	struct timespec ts;
	char host[64], path[16];
	json_t *route;
	char *text;

	memset(d, 0, sizeof *d);
	if (sv_unique_name(d->id, sizeof d->id, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		exit(1);
	}
	snprintf(host, sizeof host, "h%ld.example.com",
	    unique_hosts ? i : i % 64);
	snprintf(path, sizeof path, "/p%ld", (i / 64) % 8);
	route = json_pack("{s:s, s:[s]}", "host", host, "path_allowlist", path);
	text = json_dumps(route, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text == NULL || asprintf(&d->payload, "%s\n", text) < 0)
		exit(1);
	free(text);
	json_decref(route);
	clock_gettime(CLOCK_REALTIME, &ts);
	sv_iso8601(&ts, d->when, sizeof d->when);
	sv_blob_hash("", 0, d->hash);

	d->p.id = d->id;
	d->p.bottle_slug = (char *)"bench";
	d->p.tool = (char *)SV_TOOL_EGRESS_BLOCK;
	d->p.proposed_file = d->payload;
	d->p.justification = (char *)"benchmark: reach the package mirror";
	d->p.arrival_timestamp = d->when;
	d->p.current_file_hash = d->hash;
	/* Three approvals for one rejection, unless every host is new. */
	d->r.status = unique_hosts || i % 4 ? SV_APPROVED : SV_REJECTED;
	d->r.notes = (char *)"benchmark";
	d->r.final_file = d->r.status == SV_APPROVED ? d->payload : NULL;
	d->r.decided_by = (char *)"Bench Operator <bench@localhost>";
	d->r.decided_at = d->when;
}

/* Decisions i..i+n-1 as one batch: the time it took, over n. */
static uint64_t
commit_batch(struct sv_audit *a, long i, long n)
{
	struct dec *d = calloc((size_t)n, sizeof *d);
	struct sv_audit_decision *v = calloc((size_t)n, sizeof *v);
	struct sv_err e;
	uint64_t t0, t1;
	long k;

	if (d == NULL || v == NULL)
		exit(1);
	for (k = 0; k < n; k++) {
		make_decision(&d[k], i + k);
		v[k].p = &d[k].p;
		v[k].r = &d[k].r;
	}
	t0 = bench_now();
	if (sv_audit_commit_decisions(a, v, (size_t)n, &e) != 0) {
		fprintf(stderr, "%s: decisions %ld..%ld: %s\n", prog, i,
		    i + n - 1, e.msg);
		exit(1);
	}
	t1 = bench_now();
	/* As the daemon: merges are built off the commit, between batches. */
	if (!no_merges && sv_audit_maintain(a, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		exit(1);
	}
	for (k = 0; k < n; k++) {
		if (v[k].failed || !v[k].committed) {
			fprintf(stderr, "%s: decision %ld (%s) was not committed"
			    "%s%s\n", prog, i + k, d[k].id, v[k].failed ? ": " :
			    "", v[k].failed ? v[k].err.msg : "");
			exit(1);
		}
		sv_decision_commit_free(&v[k].dc);
		free(d[k].payload);
	}
	free(d);
	free(v);
	return (t1 - t0) / (uint64_t)n;
}

/* Packs and files in REPO/objects/pack. */
static void
count_packs(const char *repo, long *packs, long *files)
{
	char *dir;
	struct dirent *de;
	DIR *d;

	*packs = *files = 0;
	if (asprintf(&dir, "%s/objects/pack", repo) < 0)
		exit(1);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
		exit(1);
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		(*files)++;
		if (len > 5 && strcmp(de->d_name + len - 5, ".pack") == 0)
			(*packs)++;
	}
	closedir(d);
	free(dir);
}

/* One forced merge of every pack, by a store of its own; timed. */
static void
merge_all(const char *repo)
{
	git_repository *r;
	struct sv_odb *o;
	struct sv_err e;
	char **old = NULL;
	long packs, files, after, k = 0;
	uint64_t t0, t1;

	count_packs(repo, &packs, &files);
	if (git_repository_open_bare(&r, repo) < 0 ||
	    sv_odb_attach(r, &o, &e) != 0) {
		fprintf(stderr, "%s: can't open '%s'\n", prog, repo);
		exit(1);
	}
	t0 = bench_now();
	if (sv_odb_merge(o, 1, &old, &e) != 0 ||
	    sv_odb_remove(o, old, &e) != 0) {
		fprintf(stderr, "%s: merge: %s\n", prog, e.msg);
		exit(1);
	}
	t1 = bench_now();
	while (old != NULL && old[k] != NULL)
		k++;
	count_packs(repo, &after, &files);
	printf("merge of %ld packs (of %ld): %.3f s; %ld packs left\n", k,
	    packs, (t1 - t0) / 1e9, after);
	sv_odb_old_free(old);
	git_repository_free(r);
}

int
main(int argc, char **argv)
{
	long total = 2000, every = 0, sample = 200, i = 0, group = 1;
	int fill = 0, merge = 0, c;
	const char *repo = NULL, *raw = NULL;
	struct bench_samples all = { 0 }, win = { 0 }, dur = { 0 };
	struct sv_audit *a;
	struct sv_err e;
	uint64_t t_begin, t_busy = 0;

	while ((c = getopt(argc, argv, "b:Fk:Mmn:o:r:s:u")) != -1) {
		switch (c) {
		case 'M': no_merges = 1; break;
		case 'm': merge = 1; break;
		case 'u': unique_hosts = 1; break;
		case 'b': group = bench_arg_long(prog, "-b", optarg); break;
		case 'F': fill = 1; break;
		case 'k': sample = bench_arg_long(prog, "-k", optarg); break;
		case 'n': total = bench_arg_long(prog, "-n", optarg); break;
		case 'o': raw = optarg; break;
		case 'r': repo = optarg; break;
		case 's': every = bench_arg_long(prog, "-s", optarg); break;
		default: goto usage;
		}
	}
	if (repo == NULL || optind != argc || (fill && every == 0) ||
	    group < 1 || (group > 1 && fill))
		goto usage;
	if (fill)
		group = 256;
	if (sv_audit_open(&a, repo, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return 1;
	}
	sv_audit_defer_merges(a);
	t_begin = bench_now();
	while (i < total) {
		long end = every ? i + every : total;
		char label[96];

		if (end > total)
			end = total;
		while (i < end) {
			long n = end - i < group ? end - i : group;
			uint64_t t = commit_batch(a, i, n);

			bench_add(&win, t);
			bench_add(&all, t);
			t_busy += t * (uint64_t)n;
			i += n;
		}
		if (every == 0)
			break;
		snprintf(label, sizeof label, "commit at %7ld %s%s", i,
		    unique_hosts ? "routes   " : "decisions",
		    fill ? " (256 a batch)" : "");
		bench_summary(stdout, label, &win);
		bench_samples_free(&win);
		if (fill) {
			long j;

			for (j = 0; j < sample; j++, i++)
				bench_add(&dur, commit_batch(a, i, 1));
			snprintf(label, sizeof label,
			    "commit at %7ld decisions (one at a time)", i);
			bench_summary(stdout, label, &dur);
			bench_samples_free(&dur);
		}
		fflush(stdout);
	}
	{
		double secs = (bench_now() - t_begin) / 1e9;

		printf("audit commits=%ld batch=%ld seconds=%.2f rate=%.1f/s "
		    "(in sv_audit_commit_decisions: %.1f/s)\n", i, group, secs,
		    i / secs, i / (t_busy / 1e9));
	}
	if (every == 0)
		bench_summary(stdout, group > 1 ? "audit commit (per decision "
		    "of a batch)" : "audit commit", &all);
	if (raw != NULL && bench_write_raw(raw, &all) != 0)
		perror(raw);
	bench_samples_free(&all);
	bench_samples_free(&win);
	{
		long packs, files;

		count_packs(repo, &packs, &files);
		printf("objects/pack right after the last batch: %ld packs, "
		    "%ld files\n", packs, files);
	}
	sv_audit_close(a);
	if (merge)
		merge_all(repo);
	return 0;
usage:
	fprintf(stderr, "usage: %s -r REPO [-n TOTAL] [-s EVERY] [-k SAMPLE] "
	    "[-F] [-u] [-b N] [-o RAW] [-M] [-m]\n", prog);
	return 2;
}
