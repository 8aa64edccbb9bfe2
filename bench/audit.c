/*
 * audit.c: audit commits on their own, and as history grows.
 *
 * Calls sv_audit_commit_decision() in a loop on one bare repository, as
 * the daemon's consumer does, with decisions shaped like real ones: three
 * approvals of an egress-block route for one in four rejections, over 64
 * hosts and 8 path prefixes, so the bottle's routes.json stays small and
 * only the history (commits, decision records) grows.
 *
 *   audit -r REPO [-n TOTAL] [-s EVERY] [-k SAMPLE] [-F] [-u] [-o RAW]
 *
 * -u approves a new host every time instead (no rejections), so
 * routes.json grows by one route a decision: the cost of a commit as the
 * bottle's config grows, apart from its history.
 *
 * -S N is a what-if for a group commit: libgit2's fsync off and one
 * syncfs(2) of the repository's file system after every N commits, the
 * barrier a batching consumer would pay once per batch.  It measures the
 * lower bound of such a design (a real one needs a second barrier for
 * the ref, after the objects); it is not how the audit code works.
 * Prints commits/s and the per-commit time.  With -s, one line per
 * window of EVERY decisions, so growth with history shows.  -F turns
 * libgit2's fsync off while filling history and back on for SAMPLE
 * (default 200) commits at the end of each window: the growth of the
 * durable commit time is measured at each point without paying for
 * fsync on every one of TOTAL commits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <jansson.h>

#include "bench.h"
#include "supervise.h"

static const char *prog = "audit";
static int unique_hosts;

/* One decision number i: commit it and return the time it took. */
static uint64_t
commit_one(struct sv_audit *a, long i)
{
	struct sv_proposal p = { 0 };
	struct sv_response r = { 0 };
	struct sv_err e;
	struct timespec ts;
	char id[SV_ID_MAX + 1], when[64], host[64], path[16], hash[41];
	json_t *route;
	char *payload, *text;
	uint64_t t0, t1;
	int committed = 0;

	if (sv_unique_name(id, sizeof id, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		exit(1);
	}
	snprintf(host, sizeof host, "h%ld.example.com",
	    unique_hosts ? i : i % 64);
	snprintf(path, sizeof path, "/p%ld", (i / 64) % 8);
	route = json_pack("{s:s, s:[s]}", "host", host, "path_allowlist", path);
	text = json_dumps(route, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text == NULL || asprintf(&payload, "%s\n", text) < 0)
		exit(1);
	free(text);
	json_decref(route);
	clock_gettime(CLOCK_REALTIME, &ts);
	sv_iso8601(&ts, when, sizeof when);
	sv_blob_hash("", 0, hash);

	p.id = id;
	p.bottle_slug = (char *)"bench";
	p.tool = (char *)SV_TOOL_EGRESS_BLOCK;
	p.proposed_file = payload;
	p.justification = (char *)"benchmark: reach the package mirror";
	p.arrival_timestamp = when;
	p.current_file_hash = hash;
	r.proposal_id = id;
	r.status = i % 4 == 3 && !unique_hosts ? SV_REJECTED : SV_APPROVED;
	r.notes = (char *)"benchmark";
	r.final_file = r.status == SV_APPROVED ? payload : NULL;
	r.decided_by = (char *)"Bench Operator <bench@localhost>";
	r.decided_at = when;

	t0 = bench_now();
	if (sv_audit_commit_decision(a, &p, &r, &committed, &e) != 0) {
		fprintf(stderr, "%s: decision %ld: %s\n", prog, i, e.msg);
		exit(1);
	}
	t1 = bench_now();
	if (!committed) {
		fprintf(stderr, "%s: decision %ld (%s) was not committed\n",
		    prog, i, id);
		exit(1);
	}
	free(payload);
	return t1 - t0;
}

static void
set_fsync(int on)
{
	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, on);
}

int
main(int argc, char **argv)
{
	long total = 2000, every = 0, sample = 200, i = 0;
	int fill_nofsync = 0, c, repofd = -1;
	long group = 0;
	const char *repo = NULL, *raw = NULL;
	struct bench_samples all = { 0 }, win = { 0 }, dur = { 0 };
	struct sv_audit *a;
	struct sv_err e;
	uint64_t t_begin, t_busy = 0;

	while ((c = getopt(argc, argv, "Fk:n:o:r:S:s:u")) != -1) {
		switch (c) {
		case 'u': unique_hosts = 1; break;
		case 'S': group = bench_arg_long(prog, "-S", optarg); break;
		case 'F': fill_nofsync = 1; break;
		case 'k': sample = bench_arg_long(prog, "-k", optarg); break;
		case 'n': total = bench_arg_long(prog, "-n", optarg); break;
		case 'o': raw = optarg; break;
		case 'r': repo = optarg; break;
		case 's': every = bench_arg_long(prog, "-s", optarg); break;
		default: goto usage;
		}
	}
	if (repo == NULL || optind != argc || (fill_nofsync && every == 0) ||
	    (group && fill_nofsync))
		goto usage;
	if (sv_audit_open(&a, repo, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return 1;
	}
	if (fill_nofsync || group)
		set_fsync(0);
	if (group && (repofd = open(repo, O_RDONLY | O_DIRECTORY)) < 0) {
		fprintf(stderr, "%s: can't open '%s': %s\n", prog, repo,
		    strerror(errno));
		return 1;
	}
	t_begin = bench_now();
	while (i < total) {
		long end = every ? i + every : total;
		char label[96];

		if (end > total)
			end = total;
		for (; i < end; i++) {
			uint64_t t = commit_one(a, i);

			if (group && (i + 1) % group == 0) {
				uint64_t t0 = bench_now();

				if (syncfs(repofd) != 0) {
					perror("syncfs");
					return 1;
				}
				t += bench_now() - t0;
			}
			bench_add(&win, t);
			bench_add(&all, t);
			t_busy += t;
		}
		if (every == 0)
			break;
		snprintf(label, sizeof label, "commit at %7ld %s%s", i,
		    unique_hosts ? "routes   " : "decisions",
		    fill_nofsync ? " (fsync off)" : "");
		bench_summary(stdout, label, &win);
		bench_samples_free(&win);
		if (fill_nofsync) {
			long j;

			set_fsync(1);
			for (j = 0; j < sample; j++, i++)
				bench_add(&dur, commit_one(a, i));
			set_fsync(0);
			snprintf(label, sizeof label,
			    "commit at %7ld decisions (fsync on) ", i);
			bench_summary(stdout, label, &dur);
			bench_samples_free(&dur);
		}
		fflush(stdout);
	}
	{
		double secs = (bench_now() - t_begin) / 1e9;

		printf("audit commits=%ld seconds=%.2f rate=%.1f/s "
		    "(in sv_audit_commit_decision: %.1f/s)\n", i, secs,
		    i / secs, all.n / (t_busy / 1e9));
	}
	if (every == 0)
		bench_summary(stdout, group ? "audit commit (what-if: syncfs "
		    "barrier)" : "audit commit", &all);
	if (repofd >= 0)
		close(repofd);
	if (raw != NULL && bench_write_raw(raw, &all) != 0)
		perror(raw);
	bench_samples_free(&all);
	sv_audit_close(a);
	return 0;
usage:
	fprintf(stderr, "usage: %s -r REPO [-n TOTAL] [-s EVERY] [-k SAMPLE] "
	    "[-F] [-u] [-S N] [-o RAW]\n", prog);
	return 2;
}
