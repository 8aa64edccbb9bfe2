/*
 * deliverstress: the spool under concurrency.
 *
 * - 8 processes deliver 500 proposals each, all at once, while another
 *   process keeps scanning proposals/new and fully parsing every file it
 *   sees: a partial file must never be visible.  Afterwards there are
 *   exactly 4000 distinct valid proposals, each writer's 500 all there.
 * - Deciders race sv_respond on one id: exactly one wins, every other
 *   one gets "proposal ID was already decided", and the winner's
 *   response is the one on disk.
 * - Processes add different flags to the same proposals at once: every
 *   flag lands, in ASCII order, one file per proposal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervise.h"
#include "tap.h"

#define WRITERS 8
#define EACH 500
#define ROUNDS 30
#define RACERS 4
#define FLAGGED 50

static char top[64], qdir[128];

static void
open_spool(struct sv_spool *s)
{
	struct sv_err e;

	if (sv_spool_open(s, qdir, "stress", 0, &e) < 0) {
		fprintf(stderr, "# %s\n", e.msg);
		_exit(3);
	}
}

/* Block until the parent closes the write end: everyone starts at once. */
static void
wait_start(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	close(fd);
}

static void
writer(int w, int start)
{
	struct sv_spool s;
	struct sv_err e;
	int k;

	open_spool(&s);
	wait_start(start);
	for (k = 0; k < EACH; k++) {
		struct sv_proposal p = {0};

		p.tool = sv_xstrdup("pipelock-block");
		p.proposed_file = sv_xasprintf("https://w%d-k%d.example.org/", w, k);
		/* Long enough that a write could be seen half done. */
		p.justification = sv_xasprintf("writer %d proposal %d %0*d", w, k,
		    4000, 0);
		p.current_file_hash = sv_xstrdup(
		    "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
		if (sv_propose(&s, &p, &e) < 0) {
			fprintf(stderr, "# writer %d: %s\n", w, e.msg);
			_exit(1);
		}
		sv_proposal_free(&p);
	}
	sv_spool_close(&s);
	_exit(0);
}

/* Scan new/ until told to stop; report "reads failures scans". */
static void
scanner(int start, int stop, int report)
{
	long reads = 0, failures = 0, scans = 0;
	struct sv_spool s;
	struct sv_err e;
	int again = 1;
	char buf[128];

	open_spool(&s);
	wait_start(start);
	while (again) {
		struct dirent *d;
		DIR *dir;
		int fd;

		/* One last full scan after the writers are done. */
		if (read(stop, buf, 1) == 0)
			again = 0;
		fd = openat(s.pnew, ".", O_RDONLY | O_DIRECTORY);
		dir = fdopendir(fd);
		while ((d = readdir(dir)) != NULL) {
			struct sv_proposal p;

			if (d->d_name[0] == '.')
				continue;
			if (sv_proposal_read(s.pnew, d->d_name, d->d_name, &p,
			    &e) < 0) {
				if (failures++ == 0)
					fprintf(stderr, "# scanner: %s\n", e.msg);
				continue;
			}
			reads++;
			sv_proposal_free(&p);
		}
		closedir(dir);
		scans++;
	}
	snprintf(buf, sizeof buf, "%ld %ld %ld", reads, failures, scans);
	if (write(report, buf, strlen(buf)) < 0)
		_exit(2);
	sv_spool_close(&s);
	_exit(0);
}

static int
exited(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
test_deliveries(void)
{
	int start[2], stop[2], report[2], w, k, bad = 0, failed = 0;
	static unsigned char seen[WRITERS][EACH];
	pid_t pids[WRITERS], scan;
	long reads = 0, failures = -1, scans = 0;
	struct sv_spool s;
	struct sv_entry *v;
	struct sv_err e;
	char buf[128];
	size_t n, i;
	ssize_t got;

	if (pipe(start) < 0 || pipe(stop) < 0 || pipe(report) < 0)
		exit(1);
	fcntl(stop[0], F_SETFL, O_NONBLOCK);
	for (w = 0; w < WRITERS; w++) {
		if ((pids[w] = fork()) == 0) {
			close(start[1]);
			writer(w, start[0]);
		}
	}
	if ((scan = fork()) == 0) {
		close(start[1]);
		close(stop[1]);
		close(report[0]);
		scanner(start[0], stop[0], report[1]);
	}
	close(start[0]);
	close(stop[0]);
	close(report[1]);
	close(start[1]);	/* go */
	for (w = 0; w < WRITERS; w++)
		if (exited(pids[w]) != 0)
			failed++;
	close(stop[1]);
	got = read(report[0], buf, sizeof buf - 1);
	close(report[0]);
	ok(exited(scan) == 0, "scanner finished");
	ok(failed == 0, "all %d writers delivered their %d proposals", WRITERS,
	    EACH);
	if (got > 0) {
		buf[got] = '\0';
		sscanf(buf, "%ld %ld %ld", &reads, &failures, &scans);
	}
	ok(failures == 0, "no partial or invalid file ever seen in new/ "
	    "(%ld parsed in %ld scans)", reads, scans);
	ok(reads > 0 && scans > 1, "the scanner read files while they arrived");

	open_spool(&s);
	ok(sv_list_pending(&s, &v, &n, &e) == 0, "list pending");
	ok(n == WRITERS * EACH, "exactly %d proposals (got %zu)", WRITERS * EACH,
	    n);
	for (i = 0; i < n; i++) {
		struct sv_proposal p;

		if (i > 0 && strcmp(v[i - 1].id, v[i].id) >= 0)
			bad++;
		if (sv_proposal_read(s.pnew, v[i].name, v[i].name, &p, &e) < 0) {
			bad++;
			continue;
		}
		if (sscanf(p.justification, "writer %d proposal %d", &w, &k) == 2 &&
		    w >= 0 && w < WRITERS && k >= 0 && k < EACH &&
		    strcmp(p.id, v[i].id) == 0)
			seen[w][k]++;
		else
			bad++;
		sv_proposal_free(&p);
	}
	for (w = 0; w < WRITERS; w++)
		for (k = 0; k < EACH; k++)
			if (seen[w][k] != 1)
				bad++;
	ok(bad == 0, "all distinct, valid, each writer's %d present once", EACH);
	sv_entries_free(v);
	{
		DIR *d = fdopendir(openat(s.ptmp, ".", O_RDONLY | O_DIRECTORY));
		struct dirent *de;
		int left = 0;

		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				left++;
		closedir(d);
		ok(left == 0, "proposals/tmp is empty");
	}
	sv_spool_close(&s);
}

/* 0 won, 1 lost with the clear message, 2 anything else. */
static void
racer(const char *id, int who, int start)
{
	struct sv_response r = {0};
	struct sv_spool s;
	struct sv_err e;
	char want[256];

	open_spool(&s);
	r.proposal_id = (char *)id;
	r.status = who % 2 ? SV_REJECTED : SV_APPROVED;
	r.notes = sv_xasprintf("racer %d", who);
	r.decided_by = "racer";
	r.decided_at = "2026-11-22T18:00:00.000000Z";
	wait_start(start);
	if (sv_respond(&s, &r, &e) == 0)
		_exit(0);
	snprintf(want, sizeof want, "proposal %s was already decided", id);
	if (strcmp(e.msg, want) == 0)
		_exit(1);
	fprintf(stderr, "# racer %d: %s\n", who, e.msg);
	_exit(2);
}

static void
test_races(void)
{
	int round, who, winners_ok = 0, losers_ok = 0, disk_ok = 0;
	char last[SV_ID_MAX + 1] = "";
	struct sv_spool s;
	struct sv_err e;

	open_spool(&s);
	for (round = 0; round < ROUNDS; round++) {
		struct sv_proposal p = {0};
		struct sv_response back;
		pid_t pids[RACERS];
		int start[2], won = 0, lost = 0, winner = -1;
		char notes[32];

		p.tool = sv_xstrdup("pipelock-block");
		p.proposed_file = sv_xstrdup("https://race.example.org/");
		p.justification = sv_xstrdup("race");
		p.current_file_hash = sv_xstrdup(
		    "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
		if (sv_propose(&s, &p, &e) < 0 || pipe(start) < 0) {
			printf("# %s\n", e.msg);
			break;
		}
		/* Two racers on most rounds, four on some. */
		int nr = round % 3 == 0 ? RACERS : 2;
		for (who = 0; who < nr; who++) {
			if ((pids[who] = fork()) == 0) {
				close(start[1]);
				racer(p.id, who, start[0]);
			}
		}
		close(start[0]);
		close(start[1]);
		for (who = 0; who < nr; who++) {
			int st = exited(pids[who]);

			if (st == 0)
				won++, winner = who;
			else if (st == 1)
				lost++;
		}
		if (won == 1)
			winners_ok++;
		if (lost == nr - 1)
			losers_ok++;
		snprintf(notes, sizeof notes, "racer %d", winner);
		if (sv_response_read(s.rnew, p.id, "r", &back, &e) == 0) {
			if (strcmp(back.notes, notes) == 0)
				disk_ok++;
			sv_response_free(&back);
		}
		snprintf(last, sizeof last, "%s", p.id);
		sv_proposal_free(&p);
	}
	ok(winners_ok == ROUNDS, "racing sv_respond: exactly one winner in "
	    "each of %d rounds (%d)", ROUNDS, winners_ok);
	ok(losers_ok == ROUNDS, "every loser got \"proposal ID was already "
	    "decided\" (%d)", losers_ok);
	ok(disk_ok == ROUNDS, "the winner's response is the one on disk (%d)",
	    disk_ok);
	{
		struct sv_response r = {0};
		char *want;

		r.proposal_id = last;
		r.status = SV_APPROVED;
		sv_respond(&s, &r, &e);
		want = sv_xasprintf("proposal %s was already decided", last);
		is_str(e.msg, want, "a later decision is refused too");
		free(want);
	}
	{
		DIR *d = fdopendir(openat(s.rtmp, ".", O_RDONLY | O_DIRECTORY));
		struct dirent *de;
		int left = 0;

		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				left++;
		closedir(d);
		ok(left == 0, "responses/tmp is empty after the races");
	}
	sv_spool_close(&s);
}

/*
 * Processes add different flags to the same proposals at once: a rename
 * that loses (its source name is gone) looks again, so no flag is lost.
 */
static void
test_flag_races(void)
{
	static const char *const flags[] = {"F", "P", "R", "T"};
	char ids[FLAGGED][SV_ID_MAX + 1];
	int i, f, start[2], failed = 0, complete = 0, single = 0;
	pid_t pids[4];
	struct sv_spool s;
	struct sv_err e;

	open_spool(&s);
	for (i = 0; i < FLAGGED; i++) {
		struct sv_proposal p = {0};

		p.tool = sv_xstrdup("pipelock-block");
		p.proposed_file = sv_xstrdup("https://flags.example.org/");
		p.justification = sv_xstrdup("flags");
		p.current_file_hash = sv_xstrdup(
		    "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
		if (sv_propose(&s, &p, &e) < 0)
			printf("# %s\n", e.msg);
		snprintf(ids[i], sizeof ids[i], "%s", p.id ? p.id : "");
		sv_proposal_free(&p);
	}
	if (pipe(start) < 0)
		exit(1);
	for (f = 0; f < 4; f++) {
		if ((pids[f] = fork()) == 0) {
			struct sv_spool cs;

			close(start[1]);
			open_spool(&cs);
			wait_start(start[0]);
			for (i = 0; i < FLAGGED; i++) {
				if (sv_add_flags(&cs, ids[i], flags[f], &e) < 0) {
					fprintf(stderr, "# flag %s: %s\n", flags[f],
					    e.msg);
					_exit(1);
				}
			}
			_exit(0);
		}
	}
	close(start[0]);
	close(start[1]);
	for (f = 0; f < 4; f++)
		if (exited(pids[f]) != 0)
			failed++;
	ok(failed == 0, "4 processes flagged %d proposals at once", FLAGGED);
	for (i = 0; i < FLAGGED; i++) {
		struct sv_entry en;
		char name[SV_ID_MAX + 32];
		struct stat st;

		if (sv_find_proposal(&s, ids[i], &en, &e) == 1 &&
		    strcmp(en.flags, "FPRT") == 0)
			complete++;
		/* One file per proposal: not left in new/ too. */
		snprintf(name, sizeof name, "%.128s:2,FPRT", ids[i]);
		if (fstatat(s.pcur, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    fstatat(s.pnew, ids[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			single++;
	}
	ok(complete == FLAGGED, "every proposal has all four flags, in order "
	    "(%d)", complete);
	ok(single == FLAGGED, "each is one file, cur/ID:2,FPRT (%d)", single);
	sv_spool_close(&s);
}

int
main(void)
{
	struct sv_spool s;
	struct sv_err e;
	char *cmd;

	snprintf(top, sizeof top, "%s/supervise-stress.XXXXXX",
	    getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 30 ?
	    getenv("TMPDIR") : "/tmp");
	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(qdir, sizeof qdir, "%s/queue/stress", top);
	if (sv_spool_open(&s, qdir, "stress", 1, &e) < 0) {
		printf("Bail out! %s\n", e.msg);
		return 1;
	}
	sv_spool_close(&s);
	plan(16);
	fflush(stdout);
	test_deliveries();
	test_races();
	test_flag_races();
	cmd = sv_xasprintf("rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	free(cmd);
	return done_testing();
}
