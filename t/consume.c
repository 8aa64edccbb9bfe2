/*
 * consume.c: the order in which a decision is consumed (consume.c):
 * committed to main, then answered while its response is still in
 * responses/new, then flushed, then archived and flagged.  The
 * daemon's view of the same, through HTTP, is in t/03xx.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <git2.h>

#include "daemon.h"
#include "tap.h"

static char tmpdir[] = "/tmp/supervise-consume.XXXXXX";

static void
diag_err(const struct sv_err *e)
{
	printf("# %s\n", e->msg);
}

/* What the callback saw, for each decision it was given. */
struct seen {
	struct sv_spool *s;
	struct sv_audit *a;
	int calls;
	int on_main;		/* the record was on main */
	int in_new;		/* the response was still in responses/new */
	int archived;		/* ... or already in responses/cur */
	int flagged;		/* the proposal already had R */
	int oldref;		/* the ref file main left was still linked */
	const char *repo;
	enum sv_status status;
};

static int
exists_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
on_decision(const struct sv_decision *d, void *arg)
{
	struct seen *w = arg;
	struct sv_entry en;
	struct sv_err e;
	char name[SV_ID_MAX + 8];

	w->calls++;
	w->status = d->status;
	w->on_main = sv_audit_has_record(w->a, w->s->slug, d->id, &e) == 1;
	w->in_new = exists_at(w->s->rnew, d->id);
	snprintf(name, sizeof name, "%s:2,S", d->id);
	w->archived = exists_at(w->s->rcur, name);
	w->flagged = sv_find_proposal(w->s, d->id, &en, &e) == 1 &&
	    strchr(en.flags, 'R') != NULL;
	snprintf(name, sizeof name, "%s/supervise.oldref", w->repo);
	w->oldref = access(name, F_OK) == 0;
}

/* web1's spool at qdir and the repository at repo, or stop: nothing
 * after could be tested. */
static void
open_both(const char *qdir, const char *repo, struct sv_spool *s,
    struct sv_audit **a)
{
	struct sv_err e;

	if (sv_spool_open(s, qdir, "web1", 1, &e) == -1 ||
	    sv_audit_open(a, repo, &e) == -1) {
		diag_err(&e);
		exit(1);
	}
}

/* File a proposal and its response; the id into id. */
static int
propose_and_decide(struct sv_spool *s, enum sv_status st, char *id,
    size_t n)
{
	struct sv_proposal p;
	struct sv_response r;
	struct sv_err e;
	int rc;

	memset(&p, 0, sizeof p);
	p.bottle_slug = sv_xstrdup(s->slug);
	p.tool = sv_xstrdup("gitleaks-allow");
	p.proposed_file = sv_xstrdup("0123456789abcdef:src/key.pem:"
	    "generic-api-key:12");
	p.justification = sv_xstrdup("a test fixture");
	p.current_file_hash = sv_xstrdup(
	    "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
	if (sv_propose(s, &p, &e) == -1) {
		diag_err(&e);
		sv_proposal_free(&p);
		return -1;
	}
	snprintf(id, n, "%s", p.id);
	memset(&r, 0, sizeof r);
	r.proposal_id = sv_xstrdup(p.id);
	r.status = st;
	r.notes = sv_xstrdup("ok");
	r.final_file = st == SV_REJECTED ? NULL : sv_xstrdup(p.proposed_file);
	r.decided_by = sv_xstrdup("Test Operator <t@example.org>");
	rc = sv_respond(s, &r, &e);
	if (rc == -1)
		diag_err(&e);
	sv_proposal_free(&p);
	sv_response_free(&r);
	return rc;
}

static void
test_order(const char *root, int defer)
{
	struct sv_spool s;
	struct sv_audit *a;
	struct sv_err e;
	struct seen w;
	struct sv_entry en;
	char id[SV_ID_MAX + 1], name[SV_ID_MAX + 8], *qdir, *repo, *names[1];
	const char *how = defer ? "deferred flush" : "flush in the commit";

	qdir = sv_xasprintf("%s/queue/web1", root);
	repo = sv_xasprintf("%s/audit.git", root);
	if (!ok(sv_spool_open(&s, qdir, "web1", 1, &e) == 0 &&
	    sv_audit_open(&a, repo, &e) == 0, "%s: open the spool and the "
	    "repository", how)) {
		diag_err(&e);
		exit(1);
	}
	if (defer)
		sv_audit_defer_sync(a);
	ok(propose_and_decide(&s, SV_APPROVED, id, sizeof id) == 0,
	    "%s: proposed and approved", how);

	memset(&w, 0, sizeof w);
	w.s = &s;
	w.a = a;
	w.repo = repo;
	names[0] = id;
	ok(sv_consume_batch(&s, a, names, 1, on_decision, &w, &e) == 1,
	    "%s: one decision consumed", how);
	/* Deferred, the branch's old ref file outlives the move until the
	 * answer; the first commit of all has none. */
	ok(w.oldref == defer, "%s: the old ref file %s at the answer", how,
	    defer ? "still linked" : "not kept");
	ok(w.calls == 1 && w.status == SV_APPROVED, "%s: the callback got "
	    "it, approved", how);
	ok(w.on_main, "%s: answered once its commit was on main", how);
	ok(w.in_new && !w.archived && !w.flagged, "%s: answered before the "
	    "response left responses/new and before the R flag", how);
	snprintf(name, sizeof name, "%s:2,S", id);
	ok(!exists_at(s.rnew, id) && exists_at(s.rcur, name),
	    "%s: archived after the answer", how);
	memset(&en, 0, sizeof en);
	sv_find_proposal(&s, id, &en, &e);
	is_str(en.flags, "RS", "%s: the proposal is flagged RS", how);
	ok(sv_audit_sync(a, &e) == 0, "%s: nothing left to flush, or it "
	    "flushes", how);
	{
		char *old = sv_xasprintf("%s/supervise.oldref", repo);

		ok(access(old, F_OK) == -1, "%s: no old ref file left", how);
		free(old);
	}

	/* A second batch for the same id finds nothing to do. */
	memset(&w, 0, sizeof w);
	w.s = &s;
	w.a = a;
	ok(sv_consume_batch(&s, a, names, 1, on_decision, &w, &e) == 0 &&
	    w.calls == 0, "%s: consumed once only", how);

	sv_audit_close(a);
	sv_spool_close(&s);
	free(qdir);
	free(repo);
}

/* A rejection takes the same path, without a config change. */
static void
test_reject(const char *root)
{
	struct sv_spool s;
	struct sv_audit *a;
	struct sv_err e;
	struct seen w;
	char id[SV_ID_MAX + 1], *qdir, *repo, *names[1];

	qdir = sv_xasprintf("%s/queue/web1", root);
	repo = sv_xasprintf("%s/audit.git", root);
	open_both(qdir, repo, &s, &a);
	sv_audit_defer_sync(a);
	ok(propose_and_decide(&s, SV_REJECTED, id, sizeof id) == 0,
	    "reject: proposed and rejected");
	memset(&w, 0, sizeof w);
	w.s = &s;
	w.a = a;
	w.repo = repo;
	names[0] = id;
	ok(sv_consume_batch(&s, a, names, 1, on_decision, &w, &e) == 1 &&
	    w.status == SV_REJECTED && w.on_main && w.in_new && !w.archived,
	    "reject: on main, answered, then archived");
	sv_audit_close(a);
	sv_spool_close(&s);
	free(qdir);
	free(repo);
}

static double
now_s(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

static int
sh(const char *cmd)
{
	return system(cmd);
}

/* Consume one approved decision of a fresh proposal; 1 when it counted. */
static int
one_decision(struct sv_spool *s, struct sv_audit *a)
{
	char id[SV_ID_MAX + 1], *names[1];
	struct sv_err e;

	if (propose_and_decide(s, SV_APPROVED, id, sizeof id) == -1)
		return 0;
	names[0] = id;
	return sv_consume_batch(s, a, names, 1, NULL, NULL, &e) == 1;
}

/*
 * The daemon moves the branch with libgit2's compare-and-swap: the ref
 * file is written as git writes one; a lock held by someone else is
 * waited for; a wanted reflog is written.
 */
static void
test_branch(const char *root)
{
	struct sv_spool s;
	struct sv_audit *a;
	struct sv_err e;
	struct stat st;
	int lockfd;
	char *qdir, *repo, *ref, *lock, *cmd, got[64] = "", want[64];
	FILE *f;
	double t0;
	pid_t pid;

	qdir = sv_xasprintf("%s/queue/web1", root);
	repo = sv_xasprintf("%s/audit.git", root);
	ref = sv_xasprintf("%s/refs/heads/main", repo);
	lock = sv_xasprintf("%s/refs/heads/main.lock", repo);
	open_both(qdir, repo, &s, &a);
	sv_audit_defer_merges(a);
	sv_audit_defer_sync(a);
	ok(sv_audit_maintain(a, &e) == 0, "maintenance while idle");
	ok(one_decision(&s, a), "a decision");
	ok(stat(ref, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "written with git's mode under umask 022 (%o)",
	    (unsigned)(st.st_mode & 0777));
	if ((f = fopen(ref, "r")) != NULL) {
		if (fgets(got, sizeof got, f) == NULL)
			got[0] = '\0';
		fclose(f);
	}
	cmd = sv_xasprintf("git --git-dir='%s' rev-parse main", repo);
	if ((f = popen(cmd, "r")) != NULL) {
		if (fgets(want, sizeof want, f) == NULL)
			want[0] = '\0';
		pclose(f);
	}
	free(cmd);
	is_str(got, want, "it holds the new tip and a newline, as git's do");
	cmd = sv_xasprintf("git --git-dir='%s' fsck --strict 2>/dev/null",
	    repo);
	ok(sh(cmd) == 0, "git fsck --strict");
	free(cmd);

	/* Someone else holds the lock for 0.3 s: the move waits for it. */
	sv_audit_maintain(a, &e);
	lockfd = open(lock, O_CREAT | O_EXCL | O_WRONLY, 0644);
	if ((pid = fork()) == 0) {
		usleep(300000);
		unlink(lock);
		_exit(0);
	}
	t0 = now_s();
	{
		int landed = lockfd != -1 && one_decision(&s, a);
		double took = now_s() - t0;

		ok(landed && took >= 0.25, "a held lock is waited for, then "
		    "the decision lands (%.2f s)", took);
	}
	waitpid(pid, NULL, 0);
	close(lockfd);
	cmd = sv_xasprintf("test \"$(git --git-dir='%s' rev-list --count "
	    "main)\" -eq \"$(git --git-dir='%s' rev-list --count "
	    "--first-parent main)\" && git --git-dir='%s' fsck --strict "
	    ">/dev/null 2>&1", repo, repo, repo);
	ok(sh(cmd) == 0, "history still linear and whole");
	free(cmd);

	/* A reflog asked for: libgit2 moves the branch and writes it. */
	sv_audit_close(a);
	cmd = sv_xasprintf("git --git-dir='%s' config core.logAllRefUpdates "
	    "true", repo);
	sh(cmd);
	free(cmd);
	if (sv_audit_open(&a, repo, &e) == -1) {
		diag_err(&e);
		exit(1);
	}
	sv_audit_defer_sync(a);
	sv_audit_maintain(a, &e);
	ok(one_decision(&s, a), "a decision with a reflog wanted");
	cmd = sv_xasprintf("test \"$(git --git-dir='%s' reflog show main | "
	    "wc -l)\" -ge 1", repo);
	ok(sh(cmd) == 0, "the reflog has the move");
	free(cmd);
	sv_audit_close(a);
	sv_spool_close(&s);
	free(qdir);
	free(repo);
	free(ref);
	free(lock);
}

int
main(void)
{
	char *root, *cmd;

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	root = sv_xasprintf("%s/root", tmpdir);
	setenv("SUPERVISE_ROOT", root, 1);
	git_libgit2_init();
	test_order(root, 0);
	test_order(root, 1);
	test_reject(root);
	umask(022);
	test_branch(root);
	git_libgit2_shutdown();
	cmd = sv_xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "# can't remove %s\n", tmpdir);
	free(cmd);
	free(root);
	plan(tap_n);
	return done_testing();
}
