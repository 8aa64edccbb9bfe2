/*
 * audit.c: the audit repository through the library: commits, records,
 * idempotence, config commits, locks, and the helpers that need no
 * repository.  The git CLI view is in t/0200-0299.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

static char tmpdir[] = "/tmp/supervise-audit.XXXXXX";

static void
proposal(struct sv_proposal *p, const char *id, const char *slug,
    const char *tool, const char *payload)
{
	memset(p, 0, sizeof *p);
	p->id = sv_xstrdup(id);
	p->bottle_slug = sv_xstrdup(slug);
	p->tool = sv_xstrdup(tool);
	p->proposed_file = sv_xstrdup(payload);
	p->justification = sv_xstrdup("need it\nfor \x1b[31mbuilds\x1b[0m");
	p->arrival_timestamp = sv_xstrdup("2026-11-22T18:00:00.000001Z");
	p->current_file_hash = sv_xstrdup(
	    "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
}

static void
response(struct sv_response *r, const char *id, enum sv_status st,
    const char *final_file, const char *who)
{
	memset(r, 0, sizeof *r);
	r->proposal_id = sv_xstrdup(id);
	r->status = st;
	r->notes = sv_xstrdup("ok");
	r->final_file = final_file ? sv_xstrdup(final_file) : NULL;
	r->decided_by = sv_xstrdup(who);
	r->decided_at = sv_xstrdup("2026-11-22T18:05:00.000000Z");
}

/* Commits on main, by walking from HEAD. */
static int
count_commits(const char *path)
{
	git_repository *repo;
	git_revwalk *walk;
	git_oid oid;
	int n = 0;

	if (git_repository_open_bare(&repo, path) < 0)
		return -1;
	git_revwalk_new(&walk, repo);
	if (git_revwalk_push_head(walk) == 0)
		while (git_revwalk_next(&oid, walk) == 0)
			n++;
	git_revwalk_free(walk);
	git_repository_free(repo);
	return n;
}

/* The tip's id, in hex ("" for none). */
static void
tip_hex(const char *path, char hex[41])
{
	git_repository *repo;
	git_oid oid;

	hex[0] = '\0';
	if (git_repository_open_bare(&repo, path) < 0)
		return;
	if (git_reference_name_to_id(&oid, repo, "HEAD") == 0)
		git_oid_tostr(hex, 41, &oid);
	git_repository_free(repo);
}

/* Do two decision commits read the same, field by field? */
static int
same_commit(const struct sv_decision_commit *x,
    const struct sv_decision_commit *y)
{
	return strcmp(x->commit, y->commit) == 0 &&
	    strcmp(x->parent, y->parent) == 0 && x->when == y->when &&
	    x->id && y->id && strcmp(x->id, y->id) == 0 &&
	    x->slug && y->slug && strcmp(x->slug, y->slug) == 0 &&
	    x->tool && y->tool && strcmp(x->tool, y->tool) == 0 &&
	    x->status && y->status && strcmp(x->status, y->status) == 0 &&
	    x->subject && y->subject && strcmp(x->subject, y->subject) == 0 &&
	    x->who && y->who && strcmp(x->who, y->who) == 0;
}

/* The tip's message, author and parent count. */
static char *
tip_info(const char *path, char *author, size_t n, int *parents)
{
	git_repository *repo;
	git_commit *c;
	git_oid oid;
	char *msg = NULL;

	if (git_repository_open_bare(&repo, path) < 0)
		return NULL;
	if (git_reference_name_to_id(&oid, repo, "HEAD") == 0 &&
	    git_commit_lookup(&c, repo, &oid) == 0) {
		msg = sv_xstrdup(git_commit_message(c));
		snprintf(author, n, "%s <%s>", git_commit_author(c)->name,
		    git_commit_author(c)->email);
		*parents = (int)git_commit_parentcount(c);
		git_commit_free(c);
	}
	git_repository_free(repo);
	return msg;
}

static void
test_helpers(void)
{
	char hex[41], *d, *op, *note;

	sv_blob_hash("", 0, hex);
	is_str(hex, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
	    "blob id of the empty text (git hash-object)");
	sv_blob_hash("hello\n", 6, hex);
	is_str(hex, "ce013625030ba8dba906f756967f9e9ca394464a",
	    "blob id of hello\\n");

	d = sv_config_diff("a\nb\n", "a\nc\n", "web1/pipelock/allowlist");
	ok(d && strstr(d, "--- a/web1/pipelock/allowlist\n") &&
	    strstr(d, "+++ b/web1/pipelock/allowlist\n") &&
	    strstr(d, "\n-b\n") && strstr(d, "\n+c\n") && strstr(d, "@@"),
	    "diff of a change is a unified diff");
	free(d);
	d = sv_config_diff(NULL, "x\n", "f");
	ok(d && strstr(d, "--- /dev/null\n") && strstr(d, "\n+x\n"),
	    "diff from an absent file");
	free(d);
	d = sv_config_diff("same\n", "same\n", "f");
	is_str(d, "", "equal texts: empty diff");
	free(d);

	setenv("SUPERVISE_OPERATOR", "Ann Operator <ann@example.org>", 1);
	op = sv_operator(&note);
	is_str(op, "Ann Operator <ann@example.org>", "$SUPERVISE_OPERATOR wins");
	ok(note == NULL, "and needs no note");
	free(op);
	setenv("SUPERVISE_OPERATOR", "ann@example.org", 1);
	op = sv_operator(&note);
	is_str(op, "ann@example.org", "a bare address is an email");
	ok(note == NULL, "and needs no note");
	free(op);
	setenv("SUPERVISE_OPERATOR", "Ann Operator", 1);
	op = sv_operator(&note);
	ok(op && strncmp(op, "Ann Operator <", 14) == 0 && strchr(op, '@') &&
	    op[strlen(op) - 1] == '>', "a bare name gets login@host: %s", op);
	ok(note && strstr(note, "no email") && strstr(note, op),
	    "and a note that says so: %s", note);
	free(op);
	free(note);
	unsetenv("SUPERVISE_OPERATOR");
	{
		char *home = sv_xasprintf("%s/home", tmpdir), *cfg;
		FILE *f;

		mkdir(home, 0700);
		cfg = sv_xasprintf("%s/.gitconfig", home);
		f = fopen(cfg, "w");
		fputs("[user]\n\tname = Git User\n\temail = git@example.org\n", f);
		fclose(f);
		setenv("HOME", home, 1);
		setenv("XDG_CONFIG_HOME", home, 1);
		op = sv_operator(&note);
		is_str(op, "Git User <git@example.org>", "then git's user.name "
		    "and user.email");
		ok(note == NULL, "and needs no note");
		free(op);
		f = fopen(cfg, "w");
		fputs("[user]\n\tname = Git User\n", f);
		fclose(f);
		op = sv_operator(&note);
		ok(op && strncmp(op, "Git User <", 10) == 0 &&
		    strchr(op, '@') && op[strlen(op) - 1] == '>',
		    "git's user.name alone: login@host as the email: %s", op);
		ok(note && strstr(note, op), "and a note: %s", note);
		free(op);
		free(note);
		unlink(cfg);
		op = sv_operator(&note);
		ok(op && strchr(op, '@') && strchr(op, '<') &&
		    !strstr(op, "<>") && op[strlen(op) - 1] == '>',
		    "then login <login@host>: %s", op);
		ok(note && strstr(note, op), "and a note: %s", note);
		free(op);
		free(note);
		op = sv_operator(NULL);
		ok(op && strchr(op, '@'), "the note is optional");
		free(op);
		rmdir(home);
		free(cfg);
		free(home);
	}
}

static void
test_commits(const char *repo)
{
	struct sv_audit *a;
	struct sv_proposal p;
	struct sv_response r;
	struct sv_err e;
	char *text, author[256];
	size_t len;
	int committed, parents = -1;
	char *msg;

	ok(sv_audit_open(&a, repo, &e) == 0, "open creates the repository");
	{
		struct stat st;
		char *head = sv_xasprintf("%s/HEAD", repo), *buf = NULL;
		size_t blen;
		int fd = open(head, O_RDONLY);

		ok(stat(repo, &st) == 0 && fd >= 0 &&
		    sv_read_all(fd, head, 100, &buf, &blen, &e) == 0 &&
		    strcmp(buf, "ref: refs/heads/main\n") == 0,
		    "bare, HEAD on refs/heads/main");
		if (fd >= 0)
			close(fd);
		free(buf);
		free(head);
	}
	ok(sv_audit_read(a, "web1", "egress/routes.json", &text, &len, &e) == 0
	    && text == NULL, "nothing on an unborn main");
	ok(sv_audit_has_record(a, "web1", "1.M1P1Q1R01.h", &e) == 0,
	    "no record yet");

	proposal(&p, "1.M1P1Q1R01.h", "web1", SV_TOOL_EGRESS_BLOCK,
	    "{\n  \"host\": \"api.github.com\"\n}\n");
	response(&r, p.id, SV_APPROVED, p.proposed_file,
	    "Ann Operator <ann@example.org>");
	ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == 0 &&
	    committed == 1, "first decision committed");
	ok(sv_audit_has_record(a, "web1", p.id, &e) == 1, "record on main");
	ok(sv_audit_read(a, "web1", "egress/routes.json", &text, &len, &e) == 0
	    && text && strstr(text, "\"api.github.com\"") && len == strlen(text),
	    "routes.json holds the approved host");
	free(text);
	ok(sv_audit_read(a, "web1", "pipelock/allowlist", &text, &len, &e) == 0
	    && text && strcmp(text, "api.github.com\n") == 0 &&
	    count_commits(repo) == 1, "the route's host is on pipelock's "
	    "allowlist, in the same commit");
	free(text);
	msg = tip_info(repo, author, sizeof author, &parents);
	ok(msg && strncmp(msg, "web1: approve egress-block api.github.com\n\n",
	    43) == 0, "subject");
	ok(msg && strstr(msg, "\n\nJustification:\n> need it\n> for "
	    "\\x1b[31mbuilds\\x1b[0m\n\nNotes:\n> ok\n\n"), "body: justification "
	    "escaped and quoted, notes");
	ok(msg && strstr(msg, "\n\nProposal-Id: 1.M1P1Q1R01.h\nBottle: web1\n"
	    "Tool: egress-block\nStatus: approved\n"
	    "Arrived: 2026-11-22T18:00:00.000001Z\n"
	    "Decided: 2026-11-22T18:05:00.000000Z\n"), "trailers");
	is_str(author, "Ann Operator <ann@example.org>", "author is decided_by");
	ok(parents == 0, "the first commit is a root commit");
	free(msg);

	/* The same decision again: recorded, so no second commit. */
	ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == 0 &&
	    committed == 0, "same decision again: no commit");
	ok(count_commits(repo) == 1, "still one commit");
	sv_proposal_free(&p);
	sv_response_free(&r);

	/* A rejection records, changes no config; a bare login author. */
	proposal(&p, "2.M1P1Q1R02.h", "web1", SV_TOOL_EGRESS_BLOCK,
	    "{\n  \"host\": \"evil.example\"\n}\n");
	response(&r, p.id, SV_REJECTED, NULL, "alice");
	ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == 0 &&
	    committed == 1, "rejection committed");
	ok(sv_audit_read(a, "web1", "egress/routes.json", &text, &len, &e) == 0
	    && text && !strstr(text, "evil"), "rejection left routes alone");
	free(text);
	ok(sv_audit_read(a, "web1", "pipelock/allowlist", &text, &len, &e) == 0
	    && text && !strstr(text, "evil"), "and pipelock's allowlist");
	free(text);
	msg = tip_info(repo, author, sizeof author, &parents);
	ok(msg && strncmp(msg, "web1: reject egress-block evil.example\n", 39)
	    == 0 && strstr(msg, "\nStatus: rejected\n"), "reject subject");
	ok(strncmp(author, "alice <alice@", 13) == 0 && author[13] != '>' &&
	    strchr(author + 13, '@') == NULL && author[strlen(author) - 1] == '>',
	    "a login without email: login@host as the email: %s", author);
	ok(parents == 1, "second commit has one parent");
	free(msg);
	sv_proposal_free(&p);
	sv_response_free(&r);

	/* Modified: the final file is what gets merged. */
	proposal(&p, "3.M1P1Q1R03.h", "web1", SV_TOOL_PIPELOCK_BLOCK,
	    "https://wide.example/x");
	response(&r, p.id, SV_MODIFIED, "https://narrow.example/y", "bob <b@x>");
	ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == 0 &&
	    committed == 1, "modified committed");
	ok(sv_audit_read(a, "web1", "pipelock/allowlist", &text, &len, &e) == 0
	    && text && strcmp(text, "api.github.com\nnarrow.example\n") == 0,
	    "the final file's host went in, not the proposal's");
	free(text);
	msg = tip_info(repo, author, sizeof author, &parents);
	ok(msg && strncmp(msg, "web1: modify pipelock-block narrow.example\n",
	    43) == 0, "modify subject names the final host");
	free(msg);
	sv_proposal_free(&p);
	sv_response_free(&r);

	/* A modified route: the final host is mirrored, not the proposal's. */
	proposal(&p, "3.M1P1Q1R05.h", "web1", SV_TOOL_EGRESS_ALLOW,
	    "{\n  \"host\": \"wide.example\"\n}\n");
	response(&r, p.id, SV_MODIFIED, "{\"host\": \"Narrow.Example\", "
	    "\"path_allowlist\": [\"/v1/\"]}", "bob <b@x>");
	ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == 0 &&
	    committed == 1, "modified route committed");
	ok(sv_audit_read(a, "web1", "pipelock/allowlist", &text, &len, &e) == 0
	    && text && strcmp(text, "api.github.com\nnarrow.example\n") == 0,
	    "a host already on the allowlist stays once, lower case");
	free(text);
	ok(sv_audit_read(a, "web1", "egress/routes.json", &text, &len, &e) == 0
	    && text && strstr(text, "\"narrow.example\"") &&
	    !strstr(text, "wide"), "routes.json has the final route");
	free(text);
	sv_proposal_free(&p);
	sv_response_free(&r);

	/* A subject is cut to 72 columns. */
	proposal(&p, "4.M1P1Q1R04.h", "web1", SV_TOOL_GITLEAKS_ALLOW,
	    "0123456789abcdef0123456789abcdef0123456789abcdef:config/"
	    "a-very-long-file-name.env:generic-api-key:12");
	response(&r, p.id, SV_APPROVED, p.proposed_file, "bob <b@x>");
	ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == 0,
	    "long fingerprint committed");
	msg = tip_info(repo, author, sizeof author, &parents);
	ok(msg && strchr(msg, '\n') - msg == 72 &&
	    strncmp(msg + 69, "...", 3) == 0, "subject cut to 72 columns");
	free(msg);
	sv_proposal_free(&p);
	sv_response_free(&r);

	/* Config commits. */
	{
		struct sv_config_file f[2] = {
			{ "pipelock/allowlist", "b.example\n A.example\n", NULL },
			{ "capability/Dockerfile", "FROM debian:12\n", NULL },
		};
		char hex[41];
		int before = count_commits(repo);

		ok(sv_audit_commit_config(a, "web1", f, 2, "Op <op@x>",
		    "web1: operator edit pipelock/allowlist",
		    "Bottle: web1\nComponent: pipelock\nAction: operator-edit\n",
		    &e) == 0, "config commit");
		ok(sv_audit_read(a, "web1", "pipelock/allowlist", &text, &len,
		    &e) == 0 && text && strcmp(text, "a.example\nb.example\n")
		    == 0, "config text normalised");
		free(text);
		ok(count_commits(repo) == before + 1, "one commit for two files");
		msg = tip_info(repo, author, sizeof author, &parents);
		is_str(msg, "web1: operator edit pipelock/allowlist\n\n"
		    "Bottle: web1\nComponent: pipelock\nAction: operator-edit\n",
		    "config commit message");
		free(msg);
		ok(sv_audit_commit_config(a, "web1", f, 2, "Op <op@x>", "again",
		    NULL, &e) == 0 && count_commits(repo) == before + 1,
		    "unchanged config: no commit");
		sv_blob_hash("", 0, hex);
		f[0].text = "c.example\n";
		f[0].base_hash = hex;
		ok(sv_audit_commit_config(a, "web1", f, 1, "Op <op@x>", "stale",
		    NULL, &e) == -1 && strstr(e.msg, "changed on main"),
		    "edit of a stale base refused: %s", e.msg);
		ok(count_commits(repo) == before + 1, "and nothing committed");
		f[0].text = "not a host!\n";
		f[0].base_hash = NULL;
		ok(sv_audit_commit_config(a, "web1", f, 1, "Op", "bad", NULL,
		    &e) == -1, "invalid config refused: %s", e.msg);
		f[0].relpath = "../../x";
		ok(sv_audit_commit_config(a, "web1", f, 1, "Op", "bad", NULL,
		    &e) == -1, "unknown path refused: %s", e.msg);
	}
	ok(sv_audit_read(a, "web1", "../x", &text, &len, &e) == -1,
	    "reading outside the bottle refused");
	ok(sv_audit_read(a, "../x", "egress/routes.json", &text, &len, &e) == -1,
	    "a bad slug refused");
	sv_audit_close(a);
}

/* Remove `path` after `ms` milliseconds: a git that holds a lock briefly. */
struct unlock_later {
	const char *path;
	long ms;
};

static void *
unlock_later(void *arg)
{
	struct unlock_later *u = arg;

	usleep((useconds_t)u->ms * 1000);
	unlink(u->path);
	return NULL;
}

static void
test_locks(const char *repo)
{
	struct sv_audit *a;
	struct sv_proposal p;
	struct sv_response r;
	struct sv_err e;
	struct timeval old[2];
	char *lock = sv_xasprintf("%s/refs/heads/main.lock", repo);
	int committed, fd, before;

	ok(sv_audit_open(&a, repo, &e) == 0, "reopen");
	before = count_commits(repo);
	fd = open(lock, O_CREAT | O_WRONLY, 0644);
	close(fd);
	gettimeofday(&old[0], NULL);
	old[0].tv_sec -= 125;
	old[1] = old[0];
	utimes(lock, old);
	proposal(&p, "5.M1P1Q1R05.h", "web2", SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"x.example\"}");
	response(&r, p.id, SV_APPROVED, p.proposed_file, "op");
	ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == -1,
	    "a stale ref lock stops the commit");
	ok(strstr(e.msg, lock) != NULL && strstr(e.msg, " s old") != NULL,
	    "the error names the lock and its age: %s", e.msg);
	ok(access(lock, F_OK) == 0, "the lock is left in place");
	ok(count_commits(repo) == before, "nothing committed");
	ok(sv_audit_has_record(a, "web2", p.id, &e) == 0, "no record");

	/* A fresh lock that goes away: the commit retries and lands. */
	utimes(lock, NULL);
	{
		pthread_t th;
		struct unlock_later u = { lock, 150 };

		pthread_create(&th, NULL, unlock_later, &u);
		ok(sv_audit_commit_decision(a, &p, &r, &committed, &e) == 0 &&
		    committed == 1, "a live lock is waited out");
		pthread_join(th, NULL);
	}
	ok(count_commits(repo) == before + 1, "one commit");
	sv_proposal_free(&p);
	sv_response_free(&r);
	sv_audit_close(a);
	free(lock);
}

/* N processes, M decisions each, one repository: N*M commits, linear. */
static void
test_concurrent(const char *repo)
{
	enum { N = 4, M = 25 };
	struct sv_err e;
	struct sv_audit *a;
	int status, failed = 0, before = count_commits(repo);
	pid_t pids[N];

	for (int i = 0; i < N; i++) {
		if ((pids[i] = fork()) == 0) {
			char slug[16], id[64];
			int bad = 0, committed;

			snprintf(slug, sizeof slug, "bottle%d", i);
			if (sv_audit_open(&a, repo, &e) == -1)
				_exit(2);
			for (int k = 0; k < M; k++) {
				struct sv_proposal p;
				struct sv_response r;

				snprintf(id, sizeof id, "%d.M%dP%dQ1R0%d.h", k, k,
				    i, i);
				proposal(&p, id, slug, SV_TOOL_PIPELOCK_BLOCK,
				    "https://h.example/");
				response(&r, id, SV_APPROVED, p.proposed_file,
				    "op");
				if (sv_audit_commit_decision(a, &p, &r,
				    &committed, &e) == -1 || !committed) {
					fprintf(stderr, "# %s\n", e.msg);
					bad = 1;
				}
				sv_proposal_free(&p);
				sv_response_free(&r);
			}
			sv_audit_close(a);
			_exit(bad);
		}
	}
	for (int i = 0; i < N; i++)
		if (waitpid(pids[i], &status, 0) == -1 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			failed++;
	ok(failed == 0, "%d concurrent committers succeeded", N);
	ok(count_commits(repo) == before + N * M, "%d x %d = %d new commits",
	    N, M, N * M);
}

/* Several decisions in one call: a chain of commits, one each. */
static void
test_batch(const char *repo)
{
	struct sv_audit *a;
	struct sv_proposal p[5];
	struct sv_response r[5];
	struct sv_audit_decision v[5];
	struct sv_err e;
	char author[256], *text = NULL, *msg, first_parent[41], tip[41];
	struct sv_decision_commit found;
	const char *ids[5] = { "1.b0", "1.b1", "1.b0", "1.b3", "1.b4" };
	int before, parents = -1;
	size_t i;

	if (!ok(sv_audit_open(&a, repo, &e) == 0, "batch: the repository opens"))
		return;
	before = count_commits(repo);
	proposal(&p[0], ids[0], "web2", SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"a.example\"}");
	response(&r[0], ids[0], SV_APPROVED, "{\"host\": \"a.example\"}",
	    "Op <op@x>");
	proposal(&p[1], ids[1], "web2", SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"b.example\"}");
	response(&r[1], ids[1], SV_APPROVED, "{\"host\": \"b.example\"}",
	    "Op <op@x>");
	proposal(&p[2], ids[2], "web2", SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"a.example\"}");
	response(&r[2], ids[2], SV_APPROVED, "{\"host\": \"a.example\"}",
	    "Op <op@x>");
	proposal(&p[3], ids[3], "web2", SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"c.example\"}");
	response(&r[3], ids[3], SV_REJECTED, NULL, "Op <op@x>");
	proposal(&p[4], ids[4], "web2", SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"d.example\"}");
	response(&r[4], ids[4], SV_APPROVED, NULL, "Op <op@x>");
	memset(v, 0, sizeof v);
	for (i = 0; i < 5; i++) {
		v[i].p = &p[i];
		v[i].r = &r[i];
	}
	tip_hex(repo, first_parent);
	ok(sv_audit_commit_decisions(a, v, 5, &e) == 0, "batch of five "
	    "taken");
	ok(v[0].committed && v[1].committed && v[3].committed,
	    "the two approvals and the rejection are committed");
	ok(!v[2].committed && !v[2].failed, "the same decision twice in a "
	    "batch: committed once");
	ok(v[4].failed && strstr(v[4].err.msg, "without a final file") &&
	    strstr(v[4].err.msg, "1.b4"), "a decision that can't be "
	    "committed fails alone: %s", v[4].err.msg);
	ok(count_commits(repo) == before + 3, "three commits for three "
	    "decisions: %d", count_commits(repo) - before);
	msg = tip_info(repo, author, sizeof author, &parents);
	ok(msg && strstr(msg, "Proposal-Id: 1.b3") && parents == 1,
	    "the last decision is the tip, with one parent");
	free(msg);
	/* Each commit made is handed back as a walk of main reads it. */
	tip_hex(repo, tip);
	ok(strcmp(v[3].dc.commit, tip) == 0 &&
	    strcmp(v[3].dc.parent, v[1].dc.commit) == 0 &&
	    strcmp(v[1].dc.parent, v[0].dc.commit) == 0 &&
	    strcmp(v[0].dc.parent, first_parent) == 0,
	    "each decision's commit is handed back, a chain on the old tip");
	ok(v[2].dc.commit[0] == '\0' && v[4].dc.commit[0] == '\0' &&
	    v[2].dc.id == NULL && v[4].dc.id == NULL,
	    "none for the decision already committed, or the failed one");
	for (i = 0; i < 5; i++) {
		if (!v[i].committed)
			continue;
		ok(sv_audit_find_decision(a, "web2", ids[i], 16, &found,
		    &e) == 1 && same_commit(&v[i].dc, &found),
		    "%s: what is handed back is what a walk of main finds "
		    "(%s %s %s)", ids[i], v[i].dc.commit,
		    v[i].dc.status ? v[i].dc.status : "-",
		    v[i].dc.who ? v[i].dc.who : "-");
		sv_decision_commit_free(&found);
	}
	for (i = 0; i < 5; i++)
		sv_decision_commit_free(&v[i].dc);
	ok(sv_audit_read(a, "web2", "egress/routes.json", &text, NULL,
	    &e) == 0 && text && strstr(text, "a.example") &&
	    strstr(text, "b.example") && !strstr(text, "c.example") &&
	    !strstr(text, "d.example"), "routes.json has both approvals "
	    "and nothing else");
	free(text);
	for (i = 0; i < 5; i++)
		v[i].committed = v[i].failed = 7;
	ok(sv_audit_commit_decisions(a, v, 4, &e) == 0 &&
	    v[0].committed == 0 && v[1].committed == 0 && v[2].committed == 0 &&
	    v[3].committed == 0 && v[0].failed == 0 &&
	    count_commits(repo) == before + 3 &&
	    v[0].dc.commit[0] == '\0' && v[3].dc.commit[0] == '\0',
	    "the batch again: nothing committed twice, no commit handed "
	    "back");
	for (i = 0; i < 5; i++) {
		sv_proposal_free(&p[i]);
		sv_response_free(&r[i]);
	}
	sv_audit_close(a);
}

int
main(void)
{
	static char repo[256];	/* static: forked children exit without freeing */

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	test_helpers();		/* before our own init: libgit2 reads HOME then */
	git_libgit2_init();
	snprintf(repo, sizeof repo, "%s/root/audit.git", tmpdir);
	test_commits(repo);
	test_batch(repo);
	test_locks(repo);
	test_concurrent(repo);
	{
		struct sv_audit *a;
		struct sv_err e;
		char *full = sv_xasprintf("%s/full", tmpdir), *f;

		mkdir(full, 0700);
		f = sv_xasprintf("%s/data", full);
		close(open(f, O_CREAT | O_WRONLY, 0600));
		ok(sv_audit_open(&a, full, &e) == -1 &&
		    strstr(e.msg, "not empty"), "a full directory is not "
		    "made a repository: %s", e.msg);
		unlink(f);
		free(f);
		f = sv_xasprintf("%s/supervise.lock", full);
		unlink(f);
		rmdir(full);
		free(f);
		free(full);
	}
	git_libgit2_shutdown();
	{
		char *cmd = sv_xasprintf("rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "# can't remove %s\n", tmpdir);
		free(cmd);
	}
	plan(tap_n);
	return done_testing();
}
