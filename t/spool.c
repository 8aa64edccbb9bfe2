/*
 * spool.c tests: names and their validation, opening (and refusing
 * planted symlinks), delivery, the flag state machine, responses, the
 * pending list, id resolution, tmp/ cleaning and refused responses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"
#include "tap.h"

#define HASH "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"

static char top[64];

static const char *
q(const char *fmt, const char *a)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], fmt, a);
	return buf[i];
}

/* ID:2,FLAGS, in rotating buffers as q's. */
static const char *
archived(const char *id, const char *flags)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s:2,%s", id, flags);
	return buf[i];
}

static int
exists(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int
count_files(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY), n = 0;
	DIR *d = fdopendir(fd);
	struct dirent *de;

	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
touch(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || sv_write_all(fd, text, strlen(text)) < 0) {
		perror(name);
		exit(1);
	}
	close(fd);
}

static int
propose(struct sv_spool *s, const char *id, char *out, struct sv_err *e)
{
	struct sv_proposal p = {0};
	int r;

	p.id = id ? sv_xstrdup(id) : NULL;
	p.tool = sv_xstrdup("pipelock-block");
	p.proposed_file = sv_xstrdup("https://api.example.org/");
	p.justification = sv_xstrdup("needed \x1b[31m");
	p.current_file_hash = sv_xstrdup(HASH);
	r = sv_propose(s, &p, e);
	if (r == 0 && out)
		strcpy(out, p.id);
	sv_proposal_free(&p);
	return r;
}

static void
test_names(void)
{
	static const struct {
		const char *s, *slug_err, *id_err;
	} cases[] = {
		{"web1", NULL, NULL},
		{"A.b_c-9", NULL, NULL},
		{"1795370400.M123456P1Q1Rabcdef0123456789.host", NULL, NULL},
		{"", "invalid bottle slug '': empty", "invalid proposal id '': empty"},
		{"../x", "invalid bottle slug '../x': must start with a letter or digit",
		    "invalid proposal id '../x': must start with a letter or digit"},
		{"..", "invalid bottle slug '..': must start with a letter or digit",
		    "invalid proposal id '..': must start with a letter or digit"},
		{"a/b", "invalid bottle slug 'a/b': '/' is not allowed (letters, "
		    "digits, '.', '_', '-' only)", "invalid proposal id 'a/b': '/' is "
		    "not allowed (letters, digits, '.', '_', '-' only)"},
		{".hidden", "invalid bottle slug '.hidden': must start with a letter "
		    "or digit", "invalid proposal id '.hidden': must start with a "
		    "letter or digit"},
		{"x:2,S", "invalid bottle slug 'x:2,S': ':' is not allowed (letters, "
		    "digits, '.', '_', '-' only)", "invalid proposal id 'x:2,S': ':' "
		    "is not allowed (letters, digits, '.', '_', '-' only)"},
		{"-rf", "invalid bottle slug '-rf': must start with a letter or digit",
		    "invalid proposal id '-rf': must start with a letter or digit"},
		{"a\x1b[31m", "invalid bottle slug 'a\\x1b[31m': '\\x1b' is not "
		    "allowed (letters, digits, '.', '_', '-' only)",
		    "invalid proposal id 'a\\x1b[31m': '\\x1b' is not allowed "
		    "(letters, digits, '.', '_', '-' only)"},
		{"caf\xc3\xa9", "invalid bottle slug 'caf\xc3\xa9': '\\xc3' is not "
		    "allowed (letters, digits, '.', '_', '-' only)",
		    "invalid proposal id 'caf\xc3\xa9': '\\xc3' is not allowed "
		    "(letters, digits, '.', '_', '-' only)"},
	};
	char long65[66], long129[130], buf[SV_ID_MAX + 1], buf2[SV_ID_MAX + 1];
	char id[SV_ID_MAX + 1], flags[16];
	struct sv_err e;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = sv_valid_slug(cases[i].s, &e);

		if (cases[i].slug_err)
			is_str(r == 0 ? "accepted" : e.msg, cases[i].slug_err,
			    "slug refused: %s", cases[i].slug_err);
		else
			ok(r == 0, "slug accepted: %s", cases[i].s);
		r = sv_valid_id(cases[i].s, &e);
		if (cases[i].id_err)
			is_str(r == 0 ? "accepted" : e.msg, cases[i].id_err,
			    "id refused: %s", cases[i].id_err);
		else
			ok(r == 0, "id accepted: %s", cases[i].s);
	}
	memset(long65, 'a', 65);
	long65[65] = '\0';
	ok(sv_valid_slug(long65, &e) == -1, "65-byte slug refused");
	is_str(e.msg, q("invalid bottle slug '%.64s...': longer than 64 bytes",
	    long65), "... says so, value cut");
	long65[64] = '\0';
	ok(sv_valid_slug(long65, &e) == 0, "64-byte slug accepted");
	memset(long129, 'b', 129);
	long129[129] = '\0';
	ok(sv_valid_id(long129, &e) == -1, "129-byte id refused");
	long129[128] = '\0';
	ok(sv_valid_id(long129, &e) == 0, "128-byte id accepted");

	ok(sv_unique_name(buf, sizeof buf, &e) == 0 &&
	    sv_unique_name(buf2, sizeof buf2, &e) == 0, "two unique names");
	ok(strcmp(buf, buf2) != 0, "they differ");
	ok(sv_valid_id(buf, &e) == 0, "a unique name is a valid id (%s)", buf);
	{
		long long sec;
		int usec, n = 0;
		unsigned pid, seq;
		char hex[17] = "", host[80] = "";

		ok(sscanf(buf, "%lld.M%6dP%uQ%uR%16[0-9a-f].%79[A-Za-z0-9-]%n",
		    &sec, &usec, &pid, &seq, hex, host, &n) == 6 &&
		    n == (int)strlen(buf) && strlen(hex) == 16 &&
		    (unsigned)getpid() == pid &&
		    llabs(sec - (long long)time(NULL)) < 5,
		    "name is SEC.MUSECPPIDQSEQRHEX.HOST");
	}
	ok(sv_unique_name(buf, 20, &e) == -1, "unique name: small buffer refused");

	ok(sv_parse_name("abc:2,TSR", id, sizeof id, flags, sizeof flags) == 0 &&
	    strcmp(id, "abc") == 0 && strcmp(flags, "RST") == 0,
	    "parse_name splits and sorts flags");
	ok(sv_parse_name("abc", id, sizeof id, flags, sizeof flags) == 0 &&
	    strcmp(flags, "") == 0, "parse_name: bare id");
	ok(sv_parse_name("abc:2,", id, sizeof id, flags, sizeof flags) == 0 &&
	    strcmp(flags, "") == 0, "parse_name: empty flags");
	ok(sv_parse_name("abc:1,S", id, sizeof id, flags, sizeof flags) == -1,
	    "parse_name: ':1,' refused");
	ok(sv_parse_name(".abc:2,S", id, sizeof id, flags, sizeof flags) == -1,
	    "parse_name: hidden refused");
	ok(sv_parse_name("abc:2,S1", id, sizeof id, flags, sizeof flags) == -1,
	    "parse_name: non-letter flag refused");
	ok(sv_parse_name("abc:2,S", id, 3, flags, sizeof flags) == -1,
	    "parse_name: small id buffer refused");
}

static void
test_open(void)
{
	struct sv_spool s;
	struct sv_err e;
	struct stat st;
	char *path, *root, *link;
	int fd;

	root = sv_xasprintf("%s/root", top);
	path = sv_xasprintf("%s/queue/web1", root);
	ok(sv_spool_open(&s, path, "web1", 0, &e) == -1, "no spool, no create");
	is_str(e.msg, q("can't open '%s': No such file or directory", path),
	    "... names the path");
	ok(sv_spool_open(&s, path, "../x", 1, &e) == -1, "bad slug refused");
	ok(stat(root, &st) == -1, "... before anything was created");
	ok(sv_spool_open(&s, path, "web1", 1, &e) == 0, "create a spool");
	ok(s.pnew >= 0 && s.rbad >= 0 && strcmp(s.slug, "web1") == 0,
	    "every directory opened");
	ok(fstat(s.rbad, &st) == 0 && (st.st_mode & 0777) == 0700,
	    "responses/bad is 0700");
	ok(fstat(s.ptmp, &st) == 0 && (st.st_mode & 0777) == 0700,
	    "proposals/tmp is 0700");
	sv_spool_close(&s);
	ok(s.path == NULL && s.pnew == -1, "close resets");
	ok(sv_spool_open(&s, path, "web1", 0, &e) == 0, "open existing");
	sv_spool_close(&s);

	/* The queue directory may be reached through a symlinked root. */
	link = sv_xasprintf("%s/rootlink", top);
	ok(symlink(root, link) == 0, "symlinked root");
	free(path);
	path = sv_xasprintf("%s/queue/web1", link);
	ok(sv_spool_open(&s, path, "web1", 0, &e) == 0,
	    "spool opened through a symlinked root");
	sv_spool_close(&s);
	free(path);
	free(link);

	/* Inside the spool, a symlink is refused. */
	path = sv_xasprintf("%s/queue/evil", root);
	ok(sv_spool_open(&s, path, "evil", 1, &e) == 0, "create a second spool");
	sv_spool_close(&s);
	link = sv_xasprintf("%s/responses/new", path);
	ok(rename(link, q("%s.real", link)) == 0 &&
	    symlink(q("%s.real", link), link) == 0,
	    "plant a symlink at responses/new");
	ok(sv_spool_open(&s, path, "evil", 0, &e) == -1, "spool refused");
	is_str(e.msg, q("can't open '%s/responses/new': is a symbolic link, "
	    "refused", path), "... with a clear message");
	ok(e.errnum == ELOOP, "... ELOOP");
	ok(sv_spool_open(&s, path, "evil", 1, &e) == -1,
	    "refused with create too");
	unlink(link);
	fd = open(link, O_WRONLY | O_CREAT, 0600);
	close(fd);
	ok(sv_spool_open(&s, path, "evil", 1, &e) == -1,
	    "a file where a directory should be is refused");
	is_str(e.msg, q("can't open '%s/responses/new': Not a directory", path),
	    "... with a clear message");
	unlink(link);
	free(link);
	free(path);
	free(root);

	setenv("SUPERVISE_ROOT", q("%s/root", top), 1);
	ok(sv_spool_open_slug(&s, "web1", 0, &e) == 0 &&
	    strcmp(s.path, q("%s/root/queue/web1", top)) == 0,
	    "open by slug under SUPERVISE_ROOT");
	sv_spool_close(&s);
	ok(sv_spool_open_slug(&s, "a/../../b", 1, &e) == -1,
	    "open by slug: traversal refused");
	is_str(e.msg, "invalid bottle slug 'a/../../b': '/' is not allowed "
	    "(letters, digits, '.', '_', '-' only)", "... says why");
}

static void
test_deliver(struct sv_spool *s)
{
	char id[SV_ID_MAX + 1], *text;
	struct sv_proposal p;
	struct sv_err e;
	struct stat st;

	ok(propose(s, NULL, id, &e) == 0, "propose");
	ok(fstatat(s->pnew, id, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600,
	    "proposal in new/, mode 0600");
	ok(count_files(s->ptmp) == 0, "tmp/ left empty");
	ok(sv_proposal_read(s->pnew, id, "p", &p, &e) == 0 &&
	    strcmp(p.id, id) == 0 && strcmp(p.bottle_slug, "web1") == 0 &&
	    sv_time_utc(p.arrival_timestamp, NULL, NULL) == 0,
	    "proposal reads back with id, slug and arrival filled in");
	sv_proposal_free(&p);

	ok(sv_deliver(s->ptmp, s->pnew, id, "{}\n", 3, "proposals", &e) == -1,
	    "deliver onto an existing name fails");
	text = sv_xasprintf("can't rename 'proposals/tmp/%s' to "
	    "'proposals/new/%s': File exists", id, id);
	is_str(e.msg, text, "... with EEXIST said clearly");
	free(text);
	ok(e.errnum == EEXIST, "... errnum EEXIST");
	ok(!exists(s->ptmp, id), "... and tmp/ cleaned up");
	ok(sv_proposal_read(s->pnew, id, "p", &p, &e) == 0,
	    "... and the original untouched");
	sv_proposal_free(&p);

	touch(s->ptmp, "stale", "x");
	ok(sv_deliver(s->ptmp, s->pnew, "stale", "{}\n", 3, "proposals", &e) == -1,
	    "deliver refuses an existing tmp name");
	is_str(e.msg, "can't create 'proposals/tmp/stale': File exists",
	    "... O_EXCL");
	unlinkat(s->ptmp, "stale", 0);

	ok(propose(s, "../escape", NULL, &e) == -1, "propose: bad id refused");
	is_str(e.msg, "proposal: invalid proposal id '../escape': must start "
	    "with a letter or digit", "... by the record checks");
	{
		struct sv_proposal bad = {0};

		bad.bottle_slug = sv_xstrdup("other");
		bad.tool = sv_xstrdup("pipelock-block");
		bad.proposed_file = sv_xstrdup("x");
		bad.justification = sv_xstrdup("j");
		bad.current_file_hash = sv_xstrdup(HASH);
		ok(sv_propose(s, &bad, &e) == -1, "propose: other slug refused");
		is_str(e.msg, "can't propose: bottle_slug 'other' is not this "
		    "spool's 'web1'", "... says so");
		free(bad.current_file_hash);
		bad.current_file_hash = NULL;
		free(bad.bottle_slug);
		bad.bottle_slug = NULL;
		ok(sv_propose(s, &bad, &e) == -1, "propose: missing hash refused");
		is_str(e.msg, "proposal: missing required key 'current_file_hash'",
		    "... says which");
		sv_proposal_free(&bad);
	}
}

static void
test_flags(struct sv_spool *s)
{
	char id[SV_ID_MAX + 1], id2[SV_ID_MAX + 1], name[200];
	struct sv_entry ent;
	struct sv_err e;

	propose(s, NULL, id, &e);
	ok(sv_find_proposal(s, id, &ent, &e) == 1 && ent.where == SV_NEW &&
	    strcmp(ent.name, id) == 0 && strcmp(ent.flags, "") == 0,
	    "find: in new/");
	ok(sv_mark_seen(s, id, &e) == 0, "mark seen");
	snprintf(name, sizeof name, "%s:2,S", id);
	ok(exists(s->pcur, name) && !exists(s->pnew, id), "new/ID -> cur/ID:2,S");
	ok(sv_mark_seen(s, id, &e) == 0 && exists(s->pcur, name),
	    "mark seen again: left as it is");
	ok(sv_add_flags(s, id, "T", &e) == 0, "add T");
	snprintf(name, sizeof name, "%s:2,ST", id);
	ok(exists(s->pcur, name), "cur/ID:2,ST (ASCII order)");
	ok(sv_add_flags(s, id, "R", &e) == 0, "add R");
	snprintf(name, sizeof name, "%s:2,RST", id);
	ok(exists(s->pcur, name), "cur/ID:2,RST");
	ok(sv_add_flags(s, id, "SR", &e) == 0 && exists(s->pcur, name) &&
	    count_files(s->pcur) == 1, "adding flags it has: no change");
	ok(sv_find_proposal(s, id, &ent, &e) == 1 && ent.where == SV_CUR &&
	    strcmp(ent.flags, "RST") == 0, "find: in cur/ with its flags");
	ok(sv_add_flags(s, id, "R1", &e) == -1, "add_flags: bad flag refused");
	is_str(e.msg, "invalid maildir flags 'R1'", "... says so");

	/* A file moved by hand with flags no probe expects: found by a scan. */
	propose(s, NULL, id2, &e);
	snprintf(name, sizeof name, "%s:2,XA", id2);
	ok(renameat(s->pnew, id2, s->pcur, name) == 0, "hand-moved to cur/ID:2,XA");
	ok(sv_find_proposal(s, id2, &ent, &e) == 1 && strcmp(ent.flags, "AX") == 0 &&
	    strcmp(ent.name, name) == 0, "find: scan fallback, flags sorted");
	ok(sv_add_flags(s, id2, "R", &e) == 0, "add R to it");
	snprintf(name, sizeof name, "%s:2,ARX", id2);
	ok(exists(s->pcur, name), "flags merged in ASCII order: ARX");
	ok(sv_add_flags(s, id2, "a", &e) == 0 &&
	    exists(s->pcur, q("%s:2,ARXa", id2)), "lower case sorts after");
	ok(sv_mark_seen(s, id2, &e) == 0 && exists(s->pcur, q("%s:2,ARXa", id2)),
	    "mark seen leaves a cur/ proposal as it is");

	ok(sv_find_proposal(s, "1700000000.M1P1Q1Rffff.none", &ent, &e) == 0 &&
	    ent.where == SV_MISSING, "find: missing is 0");
	ok(sv_mark_seen(s, "1700000000.M1P1Q1Rffff.none", &e) == -1,
	    "mark seen: missing refused");
	is_str(e.msg, "no proposal '1700000000.M1P1Q1Rffff.none'", "... says so");
	ok(e.errnum == ENOENT, "... ENOENT");
	ok(sv_find_proposal(s, "../../etc/passwd", &ent, &e) == -1,
	    "find: traversal refused");
	ok(sv_add_flags(s, "a/b", "R", &e) == -1, "add_flags: bad id refused");
	is_str(e.msg, "invalid proposal id 'a/b': '/' is not allowed (letters, "
	    "digits, '.', '_', '-' only)", "... says so");

	/* Planted symlinks are refused, not followed. */
	ok(symlinkat("/etc/passwd", s->pnew, "planted") == 0,
	    "plant a symlink in proposals/new");
	ok(sv_find_proposal(s, "planted", &ent, &e) == -1, "find refuses it");
	is_str(e.msg, "'proposals/new/planted' is not a regular file, refused",
	    "... says so");
	ok(sv_mark_seen(s, "planted", &e) == -1 && exists(s->pnew, "planted"),
	    "mark seen refuses it, nothing moved");
	unlinkat(s->pnew, "planted", 0);
	ok(symlinkat("/etc/passwd", s->pcur, "planted2:2,S") == 0,
	    "plant a symlink in proposals/cur");
	ok(sv_find_proposal(s, "planted2", &ent, &e) == -1, "find refuses it too");
	ok(mkfifoat(s->pcur, "planted3:2,QQ", 0600) == 0 &&
	    sv_find_proposal(s, "planted3", &ent, &e) == -1,
	    "a fifo found by the scan is refused");
	unlinkat(s->pcur, "planted2:2,S", 0);
	unlinkat(s->pcur, "planted3:2,QQ", 0);
}

static void
test_respond(struct sv_spool *s)
{
	char id[SV_ID_MAX + 1], id2[SV_ID_MAX + 1];
	struct sv_response r = {0}, back;
	struct sv_err e;
	struct stat st;

	propose(s, NULL, id, &e);
	ok(sv_decided(s, id, &e) == 0, "not decided yet");
	r.proposal_id = id;
	r.status = SV_REJECTED;
	r.notes = "no";
	r.decided_by = "Op <op@example.org>";
	r.decided_at = "2026-11-22T18:00:00.000000Z";
	ok(sv_respond(s, &r, &e) == 0, "respond");
	ok(fstatat(s->rnew, id, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (st.st_mode & 0777) == 0600, "responses/new/ID, 0600");
	ok(count_files(s->rtmp) == 0, "responses/tmp left empty");
	ok(sv_response_read(s->rnew, id, "r", &back, &e) == 0 &&
	    back.status == SV_REJECTED && strcmp(back.notes, "no") == 0,
	    "the response reads back");
	sv_response_free(&back);
	ok(sv_decided(s, id, &e) == 1, "decided");
	r.status = SV_APPROVED;
	ok(sv_respond(s, &r, &e) == -1, "a second decision is refused");
	is_str(e.msg, q("proposal %s was already decided", id), "... clearly");
	ok(e.errnum == EEXIST, "... EEXIST");
	ok(sv_response_read(s->rnew, id, "r", &back, &e) == 0 &&
	    back.status == SV_REJECTED, "the first decision stands");
	sv_response_free(&back);

	/* The daemon archives it: still decided. */
	ok(renameat(s->rnew, id, s->rcur, q("%s:2,S", id)) == 0,
	    "archive the response");
	ok(sv_decided(s, id, &e) == 1, "decided with the response in cur/");
	ok(sv_respond(s, &r, &e) == -1 && strstr(e.msg, "already decided"),
	    "and still refused");
	ok(renameat(s->rcur, q("%s:2,S", id), s->rcur, q("%s:2,FS", id)) == 0 &&
	    sv_decided(s, id, &e) == 1, "decided: response with other flags");
	{
		static const char *const counted[] = { "", "RS", "T",
		    "DFPRST", "PT", "D" };
		static const char *const not_counted[] = { "SF", "a", "Sx",
		    "SS", "1" };
		const char *old = "FS";

		for (size_t i = 0; i < sizeof counted / sizeof *counted; i++) {
			ok(renameat(s->rcur, archived(id, old), s->rcur,
			    archived(id, counted[i])) == 0 &&
			    sv_decided(s, id, &e) == 1,
			    "decided: archived as ID:2,%s", counted[i]);
			old = counted[i];
		}
		for (size_t i = 0; i < sizeof not_counted / sizeof *not_counted;
		    i++) {
			ok(renameat(s->rcur, archived(id, old), s->rcur,
			    archived(id, not_counted[i])) == 0 &&
			    sv_decided(s, id, &e) == 0,
			    "not an archived name: ID:2,%s", not_counted[i]);
			old = not_counted[i];
		}
		ok(renameat(s->rcur, archived(id, old), s->rcur, id) == 0 &&
		    sv_decided(s, id, &e) == 0, "not an archived name: ID");
		unlinkat(s->rcur, id, 0);
	}
	ok(sv_archived_name("x:2,S") && sv_archived_name("x:2,") &&
	    sv_archived_name("x:2,DFPRST") && !sv_archived_name("x") &&
	    !sv_archived_name("x:1,S") && !sv_archived_name("x:2,TS") &&
	    !sv_archived_name("x:2,s"), "sv_archived_name");
	ok(sv_decided(s, id, &e) == 0, "no response anywhere: not decided");
	sv_add_flags(s, id, "R", &e);
	ok(sv_decided(s, id, &e) == 1, "decided by the proposal's R flag");

	/* A bare race on the publish: the file appears after the check. */
	propose(s, NULL, id2, &e);
	touch(s->rnew, id2, "{\"status\": \"approved\"}\n");
	r.proposal_id = id2;
	ok(sv_respond(s, &r, &e) == -1 &&
	    strcmp(e.msg, q("proposal %s was already decided", id2)) == 0,
	    "a hand-written response counts as a decision");
	r.proposal_id = "1700000000.M1P1Q1Rffff.none";
	ok(sv_respond(s, &r, &e) == -1, "respond to a missing proposal");
	is_str(e.msg, "no proposal '1700000000.M1P1Q1Rffff.none'", "... refused");
	r.proposal_id = "../../x";
	ok(sv_respond(s, &r, &e) == -1 && strstr(e.msg, "invalid proposal id"),
	    "respond: traversal refused");
	ok(count_files(s->rtmp) == 0, "responses/tmp still empty");
}

static const char *const ids[] = {
	"1700000000.M000001P1Q1Rabcdef0123456789.host",
	"1700000000.M000002P1Q2Rabcd990000000000.host",
	"1700000001.M000001P1Q1R1234567890abcdef.host",
	"1700000002.M000001P1Q1R5555555555555555.host",
	"1700000003.M000001P1Q1R6666666666666666.host",
	"1700000004.M000001P1Q1R7777777777777777.host",
};

static void
test_pending_and_resolve(struct sv_spool *s)
{
	struct sv_entry *v;
	struct sv_err e;
	char id[SV_ID_MAX + 1];
	size_t n, i;

	for (i = 0; i < 6; i++)
		propose(s, ids[i], NULL, &e);
	sv_mark_seen(s, ids[1], &e);
	sv_add_flags(s, ids[2], "RS", &e);		/* decided */
	touch(s->rnew, ids[3], "{}");			/* response waiting */
	touch(s->rcur, q("%s:2,S", ids[4]), "{}");	/* response archived */
	sv_add_flags(s, ids[5], "T", &e);		/* withdrawn */
	/* Junk the list must skip. */
	touch(s->pnew, ".hidden", "{}");
	touch(s->pnew, "bad name", "{}");
	touch(s->pnew, "x:2,S", "{}");
	symlinkat("/etc/passwd", s->pnew, "1700000005.M1P1Q1Rffff.link");
	mkdirat(s->pnew, "1700000006.M1P1Q1Rffff.dir", 0700);

	ok(sv_list_pending(s, &v, &n, &e) == 0, "list pending");
	ok(n == 3, "three pending (got %zu)", n);
	ok(n == 3 && strcmp(v[0].id, ids[0]) == 0 && v[0].where == SV_NEW &&
	    strcmp(v[1].id, ids[1]) == 0 && v[1].where == SV_CUR &&
	    strcmp(v[1].flags, "S") == 0 && strcmp(v[1].name, q("%s:2,S",
	    ids[1])) == 0 && strcmp(v[2].id, ids[5]) == 0 &&
	    strcmp(v[2].flags, "T") == 0,
	    "new, seen and withdrawn, sorted; decided and answered left out");
	sv_entries_free(v);
	unlinkat(s->pnew, ".hidden", 0);
	unlinkat(s->pnew, "bad name", 0);
	unlinkat(s->pnew, "x:2,S", 0);
	unlinkat(s->pnew, "1700000005.M1P1Q1Rffff.link", 0);
	unlinkat(s->pnew, "1700000006.M1P1Q1Rffff.dir", AT_REMOVEDIR);

	const struct {
		const char *arg, *want;
	} cases[] = {
		{ids[0], ids[0]},
		{"1700000001", ids[2]},
		{"1700000000.M000002", ids[1]},
		{"abcdef", ids[0]},
		{"ABCDEF01", ids[0]},
		{"1234", ids[2]},
		{"1234567890abcdef", ids[2]},
		{"7777", ids[5]},
		{"abcd", "'abcd' is ambiguous: 2 proposals match"},
		{"1700000000", "'1700000000' is ambiguous: 2 proposals match"},
		{"17", NULL},	/* ambiguous with every proposal so far */
		{"123", "no proposal matches '123'"},
		{"zzzz", "no proposal matches 'zzzz'"},
		{"1234567890abcdef0", "no proposal matches '1234567890abcdef0'"},
		{"", "no proposal matches ''"},
		{"../x", "no proposal matches '../x'"},
		{"a/b", "no proposal matches 'a/b'"},
		{"\x1b[31m", "no proposal matches '\\x1b[31m'"},
	};
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = sv_resolve_id(s, cases[i].arg, id, sizeof id, &e);

		if (cases[i].want == NULL)
			ok(r == -1 && strstr(e.msg, "is ambiguous: ") &&
			    strstr(e.msg, "proposals match"),
			    "resolve '%s': ambiguous (%s)", cases[i].arg, e.msg);
		else
			is_str(r == 0 ? id : e.msg, cases[i].want, "resolve '%s'",
			    cases[i].arg);
	}
	ok(sv_resolve_id(s, ids[2], id, 10, &e) == -1,
	    "resolve: small buffer refused");
}

static void
test_clean(struct sv_spool *s)
{
	struct timespec old[2], young[2];
	time_t now = time(NULL);
	struct sv_err e;

	old[0].tv_sec = old[1].tv_sec = now - 37 * 3600;
	young[0].tv_sec = young[1].tv_sec = now - 35 * 3600;
	old[0].tv_nsec = old[1].tv_nsec = young[0].tv_nsec = young[1].tv_nsec = 0;
	touch(s->ptmp, "old1", "x");
	touch(s->ptmp, "young1", "x");
	touch(s->rtmp, "old2", "x");
	touch(s->rtmp, "young2", "x");
	touch(s->pnew, "1700000007.M1P1Q1Rffff.keep", "x");
	utimensat(s->ptmp, "old1", old, 0);
	utimensat(s->ptmp, "young1", young, 0);
	utimensat(s->rtmp, "old2", old, 0);
	utimensat(s->rtmp, "young2", young, 0);
	utimensat(s->pnew, "1700000007.M1P1Q1Rffff.keep", old, 0);
	symlinkat(q("%s/target", top), s->ptmp, "oldlink");
	touch(AT_FDCWD, q("%s/target", top), "precious");
	utimensat(s->ptmp, "oldlink", old, AT_SYMLINK_NOFOLLOW);
	mkdirat(s->ptmp, "olddir", 0700);
	utimensat(s->ptmp, "olddir", old, 0);

	ok(sv_clean_tmp(s, SV_TMP_MAX_AGE, &e) == 3, "three old files removed");
	ok(!exists(s->ptmp, "old1") && !exists(s->rtmp, "old2") &&
	    !exists(s->ptmp, "oldlink"), "the old ones are gone");
	ok(exists(s->ptmp, "young1") && exists(s->rtmp, "young2"),
	    "files younger than 36 hours stay");
	ok(exists(AT_FDCWD, q("%s/target", top)),
	    "an old symlink is removed, its target is not");
	ok(exists(s->ptmp, "olddir"), "directories are left alone");
	ok(exists(s->pnew, "1700000007.M1P1Q1Rffff.keep"), "new/ untouched");
	ok(sv_clean_tmp(s, SV_TMP_MAX_AGE, &e) == 0, "nothing more to remove");
	unlinkat(s->ptmp, "young1", 0);
	unlinkat(s->rtmp, "young2", 0);
	unlinkat(s->ptmp, "olddir", AT_REMOVEDIR);
	unlinkat(s->pnew, "1700000007.M1P1Q1Rffff.keep", 0);
}

static void
test_refuse(struct sv_spool *s)
{
	char newname[300], *text = NULL;
	const char *name = "1700000008.M1P1Q1Rffff.bad";
	struct sv_err e;
	int fd;
	size_t len;

	touch(s->rnew, name, "{\"status\": \"maybe\"}\n");
	ok(sv_refuse_response(s, name, "r.json:1:2: 'status' must be approved, "
	    "modified or rejected, not 'maybe\x1b[2J'\nsecond line", newname,
	    sizeof newname, &e) == 0, "refuse a response");
	ok(strncmp(newname, name, strlen(name)) == 0 &&
	    newname[strlen(name)] == '~' &&
	    strspn(newname + strlen(name) + 1, "0123456789.") ==
	    strlen(newname + strlen(name) + 1) &&
	    strchr(newname + strlen(name), '.') != NULL,
	    "moved to NAME~SEC.USEC (%s)", newname);
	ok(!exists(s->rnew, name), "gone from responses/new");
	fd = openat(s->rbad, newname, O_RDONLY);
	ok(fd >= 0 && sv_read_all(fd, "bad", 100, &text, &len, &e) == 0 &&
	    strcmp(text, "{\"status\": \"maybe\"}\n") == 0,
	    "kept in responses/bad, unchanged");
	close(fd);
	free(text);
	text = NULL;
	fd = openat(s->rbad, q("%s.err", newname), O_RDONLY);
	ok(fd >= 0 && sv_read_all(fd, "err", 1000, &text, &len, &e) == 0,
	    "the reason is in NAME~SEC.USEC.err");
	is_str(text, "r.json:1:2: 'status' must be approved, modified or "
	    "rejected, not 'maybe\\x1b[2J'\\nsecond line\n",
	    "... one line, escaped");
	close(fd);
	free(text);
	ok(count_files(s->rtmp) == 0, "responses/tmp left empty");
	ok(sv_refuse_response(s, name, "again", newname, sizeof newname, &e) == -1,
	    "refusing a missing response fails");
	ok(strstr(e.msg, q("can't rename 'responses/new/%s' to 'responses/bad/",
	    name)) != NULL && strstr(e.msg, "No such file or directory"),
	    "... says so");
	ok(count_files(s->rbad) == 2, "... and leaves no stray .err behind");
	ok(sv_refuse_response(s, "../../x", "r", newname, sizeof newname, &e) == -1,
	    "refuse: traversal refused");
}

/*
 * Many pending proposals (empty files: the list does not read them).
 */
/* Several publishes with two flushes: each is a whole file or absent. */
static void
test_batched(struct sv_spool *s)
{
	struct sv_proposal p[4], *v[4];
	struct sv_response r[4];
	const struct sv_response *rv[4];
	struct sv_err errs[4], e;
	char taken[SV_ID_MAX + 1];
	int okv[4];
	struct sv_proposal back;

	propose(s, NULL, taken, &e);
	memset(p, 0, sizeof p);
	for (int i = 0; i < 4; i++) {
		p[i].id = i == 2 ? sv_xstrdup(taken) : NULL;
		p[i].tool = sv_xstrdup("pipelock-block");
		p[i].proposed_file = sv_xasprintf("https://h%d.example/", i);
		p[i].justification = sv_xstrdup("batch");
		/* the last is invalid: no hash */
		p[i].current_file_hash = i == 3 ? NULL : sv_xstrdup(HASH);
		v[i] = &p[i];
	}
	ok(sv_propose_many(s, v, 4, okv, errs) == 2 && okv[0] && okv[1] &&
	    !okv[2] && !okv[3], "propose_many: two filed, a taken id and an "
	    "invalid one refused");
	ok(errs[2].errnum == EEXIST && strstr(errs[2].msg, taken) != NULL,
	    "... the taken id by name: %s", errs[2].msg);
	ok(strstr(errs[3].msg, "current_file_hash") != NULL,
	    "... the invalid one says why: %s", errs[3].msg);
	ok(sv_proposal_read(s->pnew, p[1].id, "p", &back, &e) == 0 &&
	    strcmp(back.proposed_file, "https://h1.example/") == 0,
	    "a filed proposal reads back");
	sv_proposal_free(&back);
	ok(count_files(s->ptmp) == 0, "proposals/tmp left empty");

	memset(r, 0, sizeof r);
	for (int i = 0; i < 4; i++) {
		r[i].proposal_id = i < 2 ? p[i].id : i == 2 ? taken : "1.nope";
		r[i].status = SV_REJECTED;
		r[i].notes = "batch";
		r[i].decided_by = "Op <op@example.org>";
		r[i].decided_at = "2026-11-22T18:00:00.000000Z";
		rv[i] = &r[i];
	}
	r[1].proposal_id = p[0].id;	/* the same proposal twice */
	ok(sv_respond_many(s, rv, 4, okv, errs) == 2 && okv[0] && !okv[1] &&
	    okv[2] && !okv[3], "respond_many: the first of two decisions wins");
	ok(errs[1].errnum == EEXIST && strstr(errs[1].msg, "already decided"),
	    "... the second is refused: %s", errs[1].msg);
	ok(strstr(errs[3].msg, "1.nope") != NULL, "... so is an unknown id: %s",
	    errs[3].msg);
	ok(sv_decided(s, p[0].id, &e) == 1 && sv_decided(s, taken, &e) == 1 &&
	    sv_decided(s, p[1].id, &e) == 0, "decided are the ones delivered");
	ok(count_files(s->rtmp) == 0, "responses/tmp left empty");
	for (int i = 0; i < 4; i++)
		sv_proposal_free(&p[i]);
}

static void
test_many(void)
{
	struct sv_spool s;
	struct sv_entry *v, ent;
	struct sv_err e;
	struct timespec t0, t1;
	char name[SV_ID_MAX + 1];
	size_t n, i, total = 100000;
	double secs;
	int fd, sorted = 1;
	char dir[96], *cmd;

	/*
	 * The list's cost is ours, not the disk's: make the files in memory
	 * (/dev/shm) when we can, where creating them is quick.
	 */
	snprintf(dir, sizeof dir, "/dev/shm/supervise-many.XXXXXX");
	if (mkdtemp(dir) == NULL)
		snprintf(dir, sizeof dir, "%s/many", top);
	if (sv_spool_open(&s, q("%s/queue/many", dir), "many", 1, &e) < 0) {
		ok(0, "open: %s", e.msg);
		return;
	}
	for (i = 0; i < total; i++) {
		snprintf(name, sizeof name, "1700%06zu.M000000P1Q1R%016zx.h", i, i);
		fd = openat(i % 2 ? s.pnew : s.pcur, i % 2 ? name :
		    q("%s:2,S", name), O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			break;
		close(fd);
		/* One in ten has a response waiting. */
		if (i % 10 == 0) {
			fd = openat(s.rnew, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
			close(fd);
		}
	}
	ok(i == total, "made %zu proposals", i);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ok(sv_list_pending(&s, &v, &n, &e) == 0, "list %zu", total);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(n == total - total / 10, "nine in ten pending (got %zu)", n);
	for (i = 1; i < n; i++)
		if (strcmp(v[i - 1].id, v[i].id) >= 0)
			sorted = 0;
	ok(sorted, "sorted, no duplicates");
	/* Loose enough for valgrind; a quadratic list takes minutes. */
	ok(secs < 3.0, "listed in %.3f s", secs);
	sv_entries_free(v);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "1700%06zu.M000000P1Q1R%016zx.h",
		    i * 97, i * 97);
		if (sv_find_proposal(&s, name, &ent, &e) != 1)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(i == 1000 && secs < 0.5, "1000 lookups by id without a scan: %.3f s",
	    secs);
	sv_spool_close(&s);
	cmd = sv_xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(cmd);
}

int
main(void)
{
	struct sv_spool s;
	struct sv_err e;
	char *cmd;

	snprintf(top, sizeof top, "/tmp/supervise-spool.XXXXXX");
	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	umask(022);
	plan(203);
	test_names();
	test_open();
	if (sv_spool_open(&s, q("%s/root/queue/web1", top), "web1", 1, &e) < 0) {
		printf("Bail out! %s\n", e.msg);
		return 1;
	}
	test_deliver(&s);
	test_flags(&s);
	test_respond(&s);
	test_batched(&s);
	sv_spool_close(&s);
	sv_spool_open(&s, q("%s/root/queue/list", top), "list", 1, &e);
	test_pending_and_resolve(&s);
	test_clean(&s);
	test_refuse(&s);
	sv_spool_close(&s);
	test_many();
	cmd = sv_xasprintf("rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	free(cmd);
	return done_testing();
}
