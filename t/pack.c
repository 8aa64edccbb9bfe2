/*
 * pack.c: the audit repository's object store (src/odb.c, packwrite.c,
 * repack.c): objects held in memory until flushed as one pack, packs git
 * itself reads and verifies, and the merging that keeps their number
 * down.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "odb.h"
#include "tap.h"

static char tmpdir[] = "/tmp/supervise-pack.XXXXXX";
static char repo[256];

static int
sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static size_t
packs(git_repository *r)
{
	struct sv_err e;
	size_t n = 0;

	if (sv_odb_count_packs(r, &n, &e) == -1)
		return (size_t)-1;
	return n;
}

static int
blob(git_repository *r, const char *text, git_oid *id)
{
	return git_blob_create_from_buffer(id, r, text, strlen(text));
}

/* Four blobs of 20,000 bytes of `fill` that differ in one byte each
 * (the i-th at step * i): what git stores as deltas of one another. */
static void
similar_blobs(git_repository *r, char fill, size_t step, git_oid id[4])
{
	char *t = sv_xmalloc(20000);

	for (int i = 0; i < 4; i++) {
		memset(t, fill, 19999);
		t[19999] = '\0';
		t[step * i] = 'y';
		blob(r, t, &id[i]);
	}
	free(t);
}

/* Read a blob through a plain libgit2 repository: what is on disk. */
static int
on_disk(const git_oid *id, const char *want)
{
	git_repository *plain;
	git_blob *b = NULL;
	int rc = 0;

	if (git_repository_open(&plain, repo) < 0)
		return 0;
	if (git_blob_lookup(&b, plain, id) == 0)
		rc = git_blob_rawsize(b) == (git_object_size_t)strlen(want) &&
		    memcmp(git_blob_rawcontent(b), want, strlen(want)) == 0;
	git_blob_free(b);
	git_repository_free(plain);
	return rc;
}

/* Pack files this process maps or holds open though they were removed. */
static int
removed_still_held(void)
{
	char line[4096], path[64], target[4096];
	FILE *f = fopen("/proc/self/maps", "r");
	int held = 0;

	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (strstr(line, "/objects/pack/") && strstr(line, "(deleted)"))
			held++;
	if (f != NULL)
		fclose(f);
	for (int fd = 0; fd < 1024; fd++) {
		ssize_t k;

		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		if ((k = readlink(path, target, sizeof target - 1)) <= 0)
			continue;
		target[k] = '\0';
		if (strstr(target, "/objects/pack/") && strstr(target, "(deleted)"))
			held++;
	}
	return held;
}

/* git fsck --strict and git verify-pack accept the repository at dir. */
static int
git_verifies(const char *dir)
{
	return sh("git --git-dir=%s fsck --strict >/dev/null 2>&1 && "
	    "git --git-dir=%s verify-pack %s/objects/pack/*.idx", dir, dir,
	    dir) == 0;
}

static int
flush(struct sv_odb *o, size_t *n)
{
	struct sv_durable d;
	struct sv_err e;
	int rc;

	sv_durable_init(&d);
	rc = sv_odb_flush(o, n, &d, &e);
	sv_durable_free(&d);
	return rc;
}

/* count blobs "WORD I\n", a flush (so a pack) each; their ids in ids. */
static void
one_pack_each(git_repository *r, struct sv_odb *o, const char *word, int count,
    git_oid *ids)
{
	char text[64];
	git_oid id;
	size_t n;

	for (int i = 0; i < count; i++) {
		snprintf(text, sizeof text, "%s %d\n", word, i);
		blob(r, text, ids ? &ids[i] : &id);
		flush(o, &n);
	}
}

int
main(void)
{
	git_repository *r;
	struct sv_odb *o;
	struct sv_err e;
	git_oid a, b, c, many[20], big[4];
	char text[64], **old = NULL;
	size_t n = 0;

	plan(43);
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(repo, sizeof repo, "%s/r.git", tmpdir);
	git_libgit2_init();
	if (git_repository_init(&r, repo, 1) < 0)
		return 1;
	ok(sv_odb_attach(r, &o, &e) == 0, "attach");

	blob(r, "alpha\n", &a);
	blob(r, "beta\n", &b);
	ok(!on_disk(&a, "alpha\n") && packs(r) == 0,
	    "written objects stay in memory until flushed");
	{
		git_blob *x = NULL;

		char got[16] = "";

		if (git_blob_lookup(&x, r, &a) == 0 && git_blob_rawsize(x) < 16)
			memcpy(got, git_blob_rawcontent(x), git_blob_rawsize(x));
		is_str(got, "alpha\n", "... and are read back from there");
		git_blob_free(x);
	}
	ok(flush(o, &n) == 0 && n == 2 && packs(r) == 1, "a flush writes one pack");
	ok(on_disk(&a, "alpha\n") && on_disk(&b, "beta\n"),
	    "libgit2 reads the objects from it");
	ok(sh("for f in %s/objects/pack/pack-*.idx; do git verify-pack \"$f\" "
	    ">/dev/null || exit 1; done", repo) == 0, "git verify-pack accepts it");
	ok(flush(o, &n) == 0 && n == 0 && packs(r) == 1,
	    "a flush with nothing new writes nothing");

	blob(r, "gamma\n", &c);
	sv_odb_discard(o);
	ok(flush(o, &n) == 0 && n == 0 && !on_disk(&c, "gamma\n"),
	    "discarded objects are never written");
	{
		git_blob *x = NULL;

		ok(git_blob_lookup(&x, r, &c) != 0, "... nor read");
		git_blob_free(x);
	}

	/* Twenty small packs: one size class, merged into one. */
	one_pack_each(r, o, "object", 20, many);
	ok(packs(r) == 21, "twenty more flushes, twenty more packs");
	ok(sv_odb_merge(o, 0, &old, &e) == 0 && old != NULL && old[0] != NULL,
	    "a merge check after a few flushes merges");
	ok(sv_odb_remove(o, old, &e) == 0 && packs(r) == 1,
	    "removing what it replaced leaves one pack");
	sv_odb_old_free(old);
	old = NULL;
	one_pack_each(r, o, "second", 20, NULL);
	ok(sv_odb_merge(o, 1, &old, &e) == 0 && old != NULL && old[0] != NULL,
	    "so does a forced one");
	{
		size_t k = 0;

		while (old != NULL && old[k] != NULL)
			k++;
		ok(k == 21 && packs(r) == 22, "21 packs replaced by one (%zu)", k);
	}
	ok(sv_odb_remove(o, old, &e) == 0 && packs(r) == 1,
	    "removing them leaves one pack");
	sv_odb_old_free(old);
	old = NULL;
	{
		int all = on_disk(&a, "alpha\n");

		for (int i = 0; i < 20; i++) {
			snprintf(text, sizeof text, "object %d\n", i);
			all = all && on_disk(&many[i], text);
		}
		ok(all, "every object is still there");
	}
	ok(sh("git -C %s verify-pack %s/objects/pack/pack-*.idx >/dev/null",
	    repo, repo) == 0, "git verify-pack accepts the merged pack");
	ok(sv_odb_merge(o, 1, &old, &e) == 0 && old == NULL,
	    "one pack: nothing to merge");

	/*
	 * A store that has read from packs, then merged and removed them,
	 * lets go of them at once: not at its next miss, which would free
	 * their blocks on the way to a commit.
	 */
	{
		git_repository *w = NULL, *rd;
		struct sv_odb *wo = NULL, *ro;
		git_oid ids[8];
		char *m = sv_xasprintf("%s/m.git", tmpdir);
		int read = 1;

		ok(git_repository_init(&w, m, 1) == 0 &&
		    sv_odb_attach(w, &wo, &e) == 0, "another repository");
		if (wo == NULL)
			return 1;
		one_pack_each(w, wo, "mapped", 8, ids);
		git_repository_free(w);
		if (git_repository_open_bare(&rd, m) < 0 ||
		    sv_odb_attach(rd, &ro, &e) < 0)
			return 1;
		for (int i = 0; i < 8; i++) {
			git_blob *x = NULL;

			read = read && git_blob_lookup(&x, rd, &ids[i]) == 0;
			git_blob_free(x);
		}
		ok(read && packs(rd) == 8, "a second store reads eight packs");
		ok(sv_odb_merge(ro, 1, &old, &e) == 0 && old != NULL &&
		    sv_odb_remove(ro, old, &e) == 0 && packs(rd) == 1,
		    "merges them into one and removes the eight");
		sv_odb_old_free(old);
		old = NULL;
		ok(removed_still_held() == 0, "and holds none of them any more "
		    "(%d held)", removed_still_held());
		git_repository_free(rd);
		free(m);
	}

	/*
	 * A pack whose index can't be named is removed, not left behind
	 * without it.  The same blob makes the same pack (same name): learn
	 * it in one repository, then stand a directory in the index's way
	 * in another.
	 */
	{
		git_repository *w;
		struct sv_odb *wo;
		char *m1 = sv_xasprintf("%s/o1.git", tmpdir);
		char *m2 = sv_xasprintf("%s/o2.git", tmpdir);
		char *dir1 = sv_xasprintf("%s/objects/pack", m1);
		char *dir2 = sv_xasprintf("%s/objects/pack", m2);
		char name[128] = "", *in_way;
		struct dirent *de;
		DIR *d;
		git_oid id;
		int left = 0, rc;

		if (git_repository_init(&w, m1, 1) < 0 ||
		    sv_odb_attach(w, &wo, &e) < 0)
			return 1;
		blob(w, "orphan\n", &id);
		ok(flush(wo, &n) == 0 && n == 1, "a pack of one blob");
		git_repository_free(w);
		if ((d = opendir(dir1)) != NULL) {
			while ((de = readdir(d)) != NULL)
				if (strncmp(de->d_name, "pack-", 5) == 0 &&
				    strstr(de->d_name, ".pack") != NULL)
					snprintf(name, sizeof name, "%.*s",
					    (int)(strlen(de->d_name) - 5),
					    de->d_name);
			closedir(d);
		}
		if (git_repository_init(&w, m2, 1) < 0 ||
		    sv_odb_attach(w, &wo, &e) < 0)
			return 1;
		in_way = sv_xasprintf("%s/%s.idx", dir2, name);
		mkdir(dir2, 0755);
		ok(name[0] != '\0' && mkdir(in_way, 0755) == 0,
		    "a directory where the index of %s goes", name);
		blob(w, "orphan\n", &id);
		rc = flush(wo, &n);
		if ((d = opendir(dir2)) != NULL) {
			while ((de = readdir(d)) != NULL)
				if (de->d_name[0] != '.' &&
				    strcmp(strrchr(in_way, '/') + 1, de->d_name) != 0)
					left++;
			closedir(d);
		}
		ok(rc == -1 && left == 0, "the flush fails and leaves neither "
		    "the pack nor a temporary file (%d left)", left);
		git_repository_free(w);
		free(in_way);
		free(dir1);
		free(dir2);
		free(m1);
		free(m2);
	}

	/* git's own small pack, with deltas, merges too; a kept one stays. */
	similar_blobs(r, 'x', 100, big);
	flush(o, &n);
	ok(sh("git -C %s repack -a -d -k -q -f && git -C %s verify-pack -v "
	    "%s/objects/pack/pack-*.idx | grep -q 'chain length = 1'",
	    repo, repo, repo) == 0, "git repacks with deltas");
	one_pack_each(r, o, "more", 8, NULL);
	ok(sh("touch %s/objects/pack/$(cd %s/objects/pack && ls -t pack-*.pack | "
	    "head -1 | sed 's/\\.pack$/.keep/')", repo, repo) == 0, "keep one");
	{
		int merged = sv_odb_merge(o, 1, &old, &e) == 0 &&
		    sv_odb_remove(o, old, &e) == 0;
		size_t left = packs(r);

		ok(merged && left == 2, "the kept one stays, the rest merge "
		    "(%zu left)", left);
	}
	{
		int all = 1;

		for (int i = 0; i < 4; i++)
			all = all && sh("git -C %s cat-file -e %s", repo,
			    git_oid_tostr_s(&big[i])) == 0;
		ok(all && sh("git -C %s fsck --strict >/dev/null 2>&1", repo) == 0,
		    "the objects git had deltified are all there");
	}
	sv_odb_old_free(old);
	old = NULL;

	/*
	 * A damaged pack is reported and nothing is removed, by a store
	 * that holds no copy of its objects in memory.
	 */
	one_pack_each(r, o, "last", 8, NULL);
	sh("cd %s/objects/pack && f=$(ls -t pack-*.pack | head -1) && "
	    "chmod u+w $f && printf Z | dd of=$f bs=1 seek=20 conv=notrunc "
	    "2>/dev/null", repo);
	n = packs(r);
	{
		git_repository *r2;
		struct sv_odb *o2;

		if (git_repository_open_bare(&r2, repo) < 0 ||
		    sv_odb_attach(r2, &o2, &e) < 0)
			return 1;
		ok(sv_odb_merge(o2, 1, &old, &e) == -1 && e.msg[0] != '\0' &&
		    old == NULL, "a damaged entry stops the merge: %s", e.msg);
		git_repository_free(r2);
	}
	ok(packs(r) == n, "and no pack is removed");
	git_repository_free(r);

	/*
	 * An object in two packs (another writer's store did not know it
	 * was there) is copied once: libgit2's indexer refuses a pack that
	 * holds one twice.  Of two packs of git's with deltas that share an
	 * object, one is left out.
	 */
	{
		git_repository *w1, *w2;
		struct sv_odb *s1, *s2;
		git_oid d1, d2, d3;
		char *m = sv_xasprintf("%s/d.git", tmpdir);
		int all;

		if (git_repository_init(&w1, m, 1) < 0 ||
		    sv_odb_attach(w1, &s1, &e) < 0)
			return 1;
		blob(w1, "dup\n", &d1);
		blob(w1, "one\n", &d2);
		flush(s1, &n);
		/* Seven more writers, each its own store: seven more copies. */
		for (int i = 0; i < 7; i++) {
			if (git_repository_open_bare(&w2, m) < 0 ||
			    sv_odb_attach(w2, &s2, &e) < 0)
				return 1;
			snprintf(text, sizeof text, "two %d\n", i);
			blob(w2, "dup\n", &d1);
			blob(w2, text, &d3);
			flush(s2, &n);
			git_repository_free(w2);
		}
		ok(packs(w1) == 8 && sh("git --git-dir=%s verify-pack -v "
		    "%s/objects/pack/*.idx | grep -c ^%s | grep -qx 8", m, m,
		    git_oid_tostr_s(&d1)) == 0, "eight packs, one object in each");
		e.msg[0] = '\0';
		ok(sv_odb_merge(s1, 1, &old, &e) == 0 && old != NULL &&
		    sv_odb_remove(s1, old, &e) == 0 && packs(w1) == 1,
		    "they merge into one%s%s", e.msg[0] ? ": " : "", e.msg);
		sv_odb_old_free(old);
		old = NULL;
		all = sh("git --git-dir=%s cat-file -e %s && git --git-dir=%s "
		    "cat-file -e %s && git --git-dir=%s cat-file -e %s", m,
		    git_oid_tostr_s(&d1), m, git_oid_tostr_s(&d2), m,
		    git_oid_tostr_s(&d3)) == 0;
		ok(all && git_verifies(m),
		    "which holds each object once, verified by git");

		/* Two packs of git's, with deltas, sharing objects. */
		similar_blobs(w1, 'z', 50, big);
		flush(s1, &n);
		ok(sh("cd %s && git repack -a -d -k -q -f && cp objects/pack/*.pack "
		    "objects/pack/*.idx . && echo x | git hash-object -w --stdin "
		    ">/dev/null && git repack -a -d -k -q -f && mv pack-*.pack "
		    "pack-*.idx objects/pack/", m) == 0 && packs(w1) == 2,
		    "two packs of git's with deltas");
		one_pack_each(w1, s1, "extra", 6, NULL);
		{
			size_t k = 0;

			e.msg[0] = '\0';
			ok(sv_odb_merge(s1, 1, &old, &e) == 0 && old != NULL &&
			    sv_odb_remove(s1, old, &e) == 0 && packs(w1) == 2,
			    "with six of ours, one of them merges, the other "
			    "stays%s%s", e.msg[0] ? ": " : "", e.msg);
			while (old != NULL && old[k] != NULL)
				k++;
			ok(k == 7, "seven packs replaced (%zu)", k);
		}
		sv_odb_old_free(old);
		old = NULL;
		ok(git_verifies(m), "git finds every object, deltas and all");
		git_repository_free(w1);
		free(m);
	}

	/*
	 * What a killed merge left in its work directory (a half-written
	 * pack, libgit2's lock on its index) goes when the repository is next
	 * opened; a directory another live process holds stays.
	 */
	{
		git_repository *w;
		struct sv_odb *s;
		char *m, *top;
		pid_t dead[2], holder;
		int go[2], done[2];
		char c;

		for (int i = 0; i < 2; i++) {
			if ((dead[i] = fork()) == 0)
				_exit(0);
			waitpid(dead[i], NULL, 0);
		}
		m = sv_xasprintf("%s/d.git", tmpdir);
		top = sv_xasprintf("%s/supervise-repack", m);
		sh("mkdir -p %s/%ld %s/%ld %s/%ld && touch %s/%ld/pack-1.idx.lock "
		    "%s/%ld/pack_git2_Ab12Cd %s/%ld/pack-2.idx.lock "
		    "%s/%ld/pack-3.idx.lock", top, (long)dead[0], top,
		    (long)dead[1], top, (long)getppid(), top, (long)dead[0], top,
		    (long)dead[0], top, (long)dead[1], top, (long)getppid());
		if (pipe(go) == -1 || pipe(done) == -1)
			return 1;
		if ((holder = fork()) == 0) {
			char *dir = sv_xasprintf("%s/%ld", top, (long)dead[1]);
			int fd = open(dir, O_RDONLY | O_DIRECTORY);

			close(go[0]);
			close(done[1]);
			free(dir);
			free(top);
			free(m);
			if (fd != -1 && flock(fd, LOCK_EX) == 0)
				(void)!write(go[1], "1", 1);
			(void)!read(done[0], &c, 1);
			_exit(0);
		}
		close(go[1]);
		close(done[0]);
		ok(read(go[0], &c, 1) == 1, "a live process holds the "
		    "directory of a pid that is gone");
		if (git_repository_open_bare(&w, m) < 0 ||
		    sv_odb_attach(w, &s, &e) < 0)
			return 1;
		ok(sv_odb_drop_tmp(s) == 1, "a store that opens removes one "
		    "directory");
		ok(sh("test ! -e %s/%ld", top, (long)dead[0]) == 0,
		    "what a killed merge left is gone");
		ok(sh("test -e %s/%ld/pack-2.idx.lock && test -e "
		    "%s/%ld/pack-3.idx.lock", top, (long)dead[1], top,
		    (long)getppid()) == 0,
		    "what another live process holds or may hold stays");
		close(done[1]);
		waitpid(holder, NULL, 0);
		close(go[0]);
		ok(sv_odb_drop_tmp(s) == 1 && sh("test ! -e %s/%ld", top,
		    (long)dead[1]) == 0, "and goes once it is let go");
		git_repository_free(w);
		free(top);
		free(m);
	}

	if (!getenv("KEEP")) sh("rm -rf %s", tmpdir);
	git_libgit2_shutdown();
	return done_testing();
}
