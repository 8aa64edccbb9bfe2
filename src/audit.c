/*
 * audit.c: the audit repository, a bare git repository in which every
 * decision is one commit, written with libgit2 from memory (no work tree,
 * no index).
 *
 * The tree holds each bottle's current config and one record per
 * decision, at SLUG/decisions/X/Y/Z/W/ID.json (one level per hex digit of
 * the blob id of the id), so a commit rewrites a handful of small trees
 * however long the history grows, and "is this decision committed?" is
 * one path lookup (two in a repository that also holds records of the
 * earlier layout, decisions/XX/YY/ID.json).
 *
 * Committing, and why it never loses or doubles a commit:
 *  - Our own committers (every supervised, every CLI, any process) take
 *    an exclusive flock on AUDIT/supervise.lock for the whole
 *    read-tip/build/commit step.  The kernel drops it when a process dies.
 *  - Inside the lock we read the tip, check the decision is not recorded
 *    yet (idempotence), build blobs and trees on the tip's tree and commit
 *    with the tip as the only parent.  git_commit_create with update_ref
 *    "HEAD" moves the branch only if it still points at that parent (a
 *    compare-and-swap); the first commit creates the branch with a
 *    no-force git_reference_create, the same thing for an unborn branch.
 *    So a writer that ignores our flock (git itself) costs us a retry,
 *    never a lost commit or a merge: history stays linear.
 *  - A ref's .lock file is git's own lock (libgit2 takes it too, for the
 *    instant of the ref update, so a killed supervised can leave one just
 *    as a killed git can).  One left by our own committer is known by the
 *    mark in supervise.lock (mark_moving) and removed; any other we retry
 *    a few seconds, then report with its path and age (past a minute:
 *    stale) and leave alone, because removing a live lock breaks the
 *    writer that holds it.
 *  - Durability: a decision counts once its commit landed, and it must
 *    still be there after a power cut.  A batch of decisions is written
 *    as a chain of commits, its objects as one pack (pack.c), then
 *    flushed (syncfs), then the branch moves once, then flushed again:
 *    see barrier().  The daemon takes the second flush out of the
 *    commit (sv_audit_defer_sync) to answer the agents first: see
 *    consume.c for why that loses nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#include "daemon.h"
#include "pack.h"

#define LOCK_NAME	"supervise.lock"
#define OLDREF_NAME	"supervise.oldref"	/* the ref file the branch left */
#define INIT_MARKER	"supervise.init"	/* a creation under way */
#define LOCK_WAIT_MS	30000	/* how long to wait for another committer */
#define CAS_TRIES	60	/* compare-and-swap attempts per commit */
#define WRITE_TRIES	3	/* attempts at writing a batch's objects */
#define STALE_LOCK_SECS	60	/* a git .lock older than this is stale */
#define SUBJECT_COLS	72

struct sv_audit {
	git_repository *repo;
	struct sv_odb *odb;	/* the repository's objects: see pack.c */
	int defer_merges;	/* sv_audit_maintain merges, not commits */
	int defer_sync;		/* sv_audit_sync makes the branch durable */
	int unsynced;		/* the branch moved; not flushed since */
	int oldref;		/* OLDREF_NAME is ours to remove */
	int ref_known;		/* reflog and refmode are read */
	int reflog;		/* core.logAllRefUpdates asks for reflogs */
	mode_t refmode;		/* a new ref file's, as git makes it */
	char *path;
	int lockfd;
	char host[256];
	char self[128];		/* "PID START BOOT": this process, for mark_moving */
};

static void identify_self(struct sv_audit *a);
static void drop_old_ref(struct sv_audit *a);

/*
 * libgit2 is set up once per process and left up until exit.  Its set-up
 * loads the TLS back end's CA bundle (about 5 ms with Debian's mbedtls
 * build), and a git_libgit2_init/shutdown pair around each helper call
 * paid that every time: sv_operator() once per approval made 200
 * approvals take 1.15 s instead of 0.10 s.
 */
static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static int git_once_rc;

static void
git_shutdown_at_exit(void)
{
	git_libgit2_shutdown();
}

static void
git_init_once(void)
{
	git_once_rc = git_libgit2_init();
	if (git_once_rc < 0)
		return;
	atexit(git_shutdown_at_exit);
	/* Our barrier() flushes instead of libgit2, once per batch. */
	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 0);
	/*
	 * Every tree entry and parent we commit is an object we just wrote
	 * or read: libgit2's check that each exists (a look-up per entry)
	 * only costs time here.
	 */
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
	/*
	 * Each commit reads the trees on the path to a decision record and
	 * the bottle's config file; libgit2 caches trees of up to 4 KiB and
	 * no blobs by default, so the big trees (256 entries) and the
	 * config were inflated from disk on every commit.  Cache them, in
	 * a bounded cache: the daemon's memory must not grow with history.
	 */
	git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE,
	    (size_t)64 * 1024);
	git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_BLOB,
	    (size_t)SV_FILE_MAX);
	git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)4 * 1024 * 1024);
	/*
	 * The objects are in packs (pack.c), which libgit2 reads through
	 * mmap windows of up to 1 GiB, kept up to 8 GiB mapped: a daemon
	 * that had drained 10,000 decisions held 60 MiB of pack pages.
	 * Small windows, a small total, a bounded number of open packs.
	 */
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_SIZE, (size_t)4 << 20);
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT, (size_t)16 << 20);
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_FILE_LIMIT, (size_t)128);
}

static int
git_ready(void)
{
	pthread_once(&git_once, git_init_once);
	return git_once_rc;
}

/* "MESSAGE: libgit2's reason", or the error code when it gave none. */
static int __attribute__((format(printf, 3, 4)))
git_fail(struct sv_err *e, int code, const char *fmt, ...)
{
	const git_error *ge = git_error_last();
	char msg[sizeof e->msg];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (ge != NULL && ge->message != NULL)
		return sv_errf(e, 0, "%s: %s", msg, ge->message);
	return sv_errf(e, 0, "%s: libgit2 error %d", msg, code);
}

static void
sleep_us(long us)
{
	struct timespec ts = { us / 1000000L, (us % 1000000L) * 1000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Our hostname, as a mail domain: bytes outside [A-Za-z0-9.-] become '-'. */
static void
host_name(char *buf, size_t n)
{
	if (gethostname(buf, n) == -1 || buf[0] == '\0')
		snprintf(buf, n, "localhost");
	buf[n - 1] = '\0';
	for (char *p = buf; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			*p = '-';
}

/*
 * Wait for the committers' flock, bounded: a committer holds it for
 * milliseconds, so half a minute means something is wrong (a stopped
 * process), and saying so beats hanging a daemon.  flock has no timeout,
 * so poll; short naps keep the lock busy when committers queue up.
 */
static int
audit_lock(struct sv_audit *a, struct sv_err *e)
{
	int64_t start = sv_now_ms();
	long delay = 100;

	for (;;) {
		if (flock(a->lockfd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return sv_errf(e, errno, "can't lock '%s/%s'", a->path,
			    LOCK_NAME);
		if (sv_now_ms() - start > LOCK_WAIT_MS)
			return sv_errf(e, 0, "can't lock '%s/%s': another "
			    "committer has held it for %d s", a->path, LOCK_NAME,
			    LOCK_WAIT_MS / 1000);
		sleep_us(delay);
		if (delay < 2000)
			delay *= 2;
	}
}

static void
audit_unlock(struct sv_audit *a)
{
	flock(a->lockfd, LOCK_UN);
}

/*
 * The write barrier.  libgit2's own fsync is off (sv_audit_open): it
 * would flush each loose object, its directory and the ref one by one,
 * sixteen flushes a commit, in series.  Instead a whole batch of commits
 * is written, then one syncfs(2) makes every object durable, then the
 * branch moves, then a second syncfs makes the ref durable.  Two flushes
 * however many decisions, in the order git's own fsync relies on: a ref
 * never survives a power cut that the objects it names did not.
 */
static int
barrier(struct sv_audit *a, struct sv_err *e)
{
	if (syncfs(a->lockfd) == -1)
		return sv_errf(e, errno, "can't flush '%s' to disk", a->path);
	return 0;
}

/* Is `path` empty but for our lock file?  (Never turn a full directory
 * into a repository because a variable pointed at the wrong place.) */
static int
only_lock_file(const char *path)
{
	struct dirent *de;
	DIR *d;
	int fd, ok = 1;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, LOCK_NAME) != 0)
			ok = 0;
	closedir(d);
	return ok;
}

/*
 * A creation killed half way can leave libgit2's lock on the files it was
 * writing (config, HEAD), and a second init stops at them.  Nobody else
 * can hold them: creation runs under our lock, and git has no reason to
 * write a repository that does not exist yet.
 */
static int
drop_init_locks(struct sv_audit *a, struct sv_err *e)
{
	static const char *const names[] = { "config.lock", "HEAD.lock",
	    "description.lock" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *p = sv_xasprintf("%s/%s", a->path, names[i]);

		if (unlink(p) == -1 && errno != ENOENT) {
			sv_errf(e, errno, "can't remove '%s'", p);
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

/*
 * Open the repository, creating it first when needed; called under the
 * lock.  A creation killed half way would leave a directory that is
 * neither empty nor a repository, so it is bracketed by a marker file:
 * while AUDIT/supervise.init exists, (re)initialising is what to do, and
 * libgit2 completes a partial repository on a second init.
 */
static int
audit_init(struct sv_audit *a, struct sv_err *e)
{
	git_repository_init_options io;
	struct stat st;
	char *marker = sv_xasprintf("%s/%s", a->path, INIT_MARKER);
	int rc, fd, interrupted;

	interrupted = lstat(marker, &st) == 0;
	rc = git_repository_open_ext(&a->repo, a->path,
	    GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE, NULL);
	if (rc == 0 && !interrupted)
		goto attach;
	if (rc < 0 && rc != GIT_ENOTFOUND) {
		git_fail(e, rc, "can't open the audit repository '%s'", a->path);
		goto out;
	}
	if (rc == GIT_ENOTFOUND && !interrupted && !only_lock_file(a->path)) {
		rc = sv_errf(e, 0, "can't use '%s' as the audit repository: it "
		    "is not a git repository and not empty", a->path);
		goto out;
	}
	git_repository_free(a->repo);
	a->repo = NULL;
	if (interrupted && drop_init_locks(a, e) == -1) {
		rc = -1;
		goto out;
	}
	fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1 || fsync(fd) == -1) {
		rc = sv_errf(e, errno, "can't create '%s'", marker);
		if (fd != -1)
			close(fd);
		goto out;
	}
	close(fd);
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	io.initial_head = "main";
	rc = git_repository_init_ext(&a->repo, a->path, &io);
	if (rc < 0) {
		git_fail(e, rc, "can't create the audit repository '%s'",
		    a->path);
		goto out;
	}
	if ((rc = barrier(a, e)) < 0)
		goto out;
	if (unlink(marker) == -1) {
		rc = sv_errf(e, errno, "can't remove '%s'", marker);
		goto out;
	}
attach:
	rc = sv_odb_attach(a->repo, &a->odb, e);
out:
	free(marker);
	return rc < 0 ? -1 : 0;
}

int
sv_audit_open(struct sv_audit **out, const char *path, struct sv_err *e)
{
	struct sv_audit *a;
	char *lockpath;
	int rc;

	*out = NULL;
	if ((rc = git_ready()) < 0)
		return git_fail(e, rc, "can't initialise libgit2");
	a = sv_xmalloc(sizeof *a);
	memset(a, 0, sizeof *a);
	a->lockfd = -1;
	a->path = path ? sv_xstrdup(path) : sv_audit_dir();
	host_name(a->host, sizeof a->host);
	identify_self(a);
	if (sv_mkdirs(a->path, e) == -1)
		goto fail;
	lockpath = sv_xasprintf("%s/%s", a->path, LOCK_NAME);
	a->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (a->lockfd == -1) {
		sv_errf(e, errno, "can't open '%s'", lockpath);
		free(lockpath);
		goto fail;
	}
	free(lockpath);
	a->oldref = 1;		/* one left by a killed process goes now */
	drop_old_ref(a);

	/* Under the lock, so two first users do not both initialise. */
	if (audit_lock(a, e) == -1)
		goto fail;
	rc = audit_init(a, e);
	audit_unlock(a);
	if (rc < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	sv_audit_close(a);
	return -1;
}

void
sv_audit_close(struct sv_audit *a)
{
	struct sv_err e;

	if (a == NULL)
		return;
	if (sv_audit_sync(a, &e) == -1)
		sv_warn_err(&e);
	git_repository_free(a->repo);
	if (a->lockfd != -1)
		close(a->lockfd);
	free(a->path);
	free(a);
}

/* The commit main points at, and its tree; both NULL while main is unborn. */
static int
audit_tip(struct sv_audit *a, git_commit **commit, git_tree **tree,
    struct sv_err *e)
{
	git_oid oid;
	int rc;

	*commit = NULL;
	*tree = NULL;
	rc = git_reference_name_to_id(&oid, a->repo, "HEAD");
	if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH)
		return 0;
	if (rc < 0)
		return git_fail(e, rc, "can't read HEAD of '%s'", a->path);
	if ((rc = git_commit_lookup(commit, a->repo, &oid)) < 0)
		return git_fail(e, rc, "can't read the tip of '%s'", a->path);
	if ((rc = git_commit_tree(tree, *commit)) < 0) {
		git_commit_free(*commit);
		*commit = NULL;
		return git_fail(e, rc, "can't read the tree of the tip of '%s'",
		    a->path);
	}
	return 0;
}

/* Text of the file at `path` in `tree`; *text NULL when absent. */
static int
tree_text(struct sv_audit *a, git_tree *tree, const char *path, char **text,
    size_t *len, struct sv_err *e)
{
	git_tree_entry *ent = NULL;
	git_blob *blob = NULL;
	const char *raw;
	size_t size;
	int rc;

	*text = NULL;
	if (len != NULL)
		*len = 0;
	if (tree == NULL)
		return 0;
	rc = git_tree_entry_bypath(&ent, tree, path);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return git_fail(e, rc, "can't look up '%s' in '%s'", path,
		    a->path);
	if (git_tree_entry_type(ent) != GIT_OBJECT_BLOB) {
		git_tree_entry_free(ent);
		return sv_errf(e, 0, "'%s' in '%s' is not a file", path,
		    a->path);
	}
	rc = git_blob_lookup(&blob, a->repo, git_tree_entry_id(ent));
	git_tree_entry_free(ent);
	if (rc < 0)
		return git_fail(e, rc, "can't read '%s' in '%s'", path, a->path);
	size = (size_t)git_blob_rawsize(blob);
	raw = git_blob_rawcontent(blob);
	if (memchr(raw, '\0', size) != NULL) {
		git_blob_free(blob);
		return sv_errf(e, 0, "'%s' in '%s' holds a NUL byte", path,
		    a->path);
	}
	*text = sv_xmalloc(size + 1);
	memcpy(*text, raw, size);
	(*text)[size] = '\0';
	if (len != NULL)
		*len = size;
	git_blob_free(blob);
	return 0;
}

/* A relative path that stays inside the bottle's directory. */
static int
valid_relpath(const char *rel, struct sv_err *e)
{
	const char *p = rel;

	if (*rel == '\0' || *rel == '/')
		goto bad;
	for (;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
bad:
	return sv_errf(e, 0, "'%s' is not a path inside a bottle's config", rel);
}

int
sv_audit_read(struct sv_audit *a, const char *slug, const char *relpath,
    char **text, size_t *len, struct sv_err *e)
{
	git_commit *tip;
	git_tree *tree;
	char *path;
	int rc;

	*text = NULL;
	if (len != NULL)
		*len = 0;
	if (sv_valid_slug(slug, e) == -1 || valid_relpath(relpath, e) == -1)
		return -1;
	if (audit_tip(a, &tip, &tree, e) == -1)
		return -1;
	path = sv_xasprintf("%s/%s", slug, relpath);
	rc = tree_text(a, tree, path, text, len, e);
	free(path);
	git_tree_free(tree);
	git_commit_free(tip);
	return rc;
}

/*
 * Where the record of a decision lives, under its bottle's directory:
 * decisions/X/Y/Z/W/ID.json, the first four hex digits of the blob id of
 * the id, one a level.  65,536 leaves, like the two levels of 256 that
 * records had first (decisions/XX/YY/ID.json, still read: see
 * record_find), but a commit rewrites four trees of at most 16 entries
 * above its leaf instead of two of up to 256, which libgit2 built entry
 * by entry and hashed, and the pack stored, for every decision.
 */
static char *
record_relpath(const char *id)
{
	char hex[41];

	sv_blob_hash(id, strlen(id), hex);
	return sv_xasprintf("decisions/%c/%c/%c/%c/%s.json", hex[0], hex[1],
	    hex[2], hex[3], id);
}

/* The first layout: decisions/XX/YY/ID.json. */
static char *
record_relpath_v1(const char *id)
{
	char hex[41];

	sv_blob_hash(id, strlen(id), hex);
	return sv_xasprintf("decisions/%.2s/%.2s/%s.json", hex, hex + 2, id);
}

/* SLUG/decisions/X/Y/Z/W/ID.json: {"proposal": ..., "response": ...} */
static char *
record_path(const char *slug, const char *id)
{
	char *rel = record_relpath(id), *path;

	path = sv_xasprintf("%s/%s", slug, rel);
	free(rel);
	return path;
}

/* 1 when `path` exists in `tree`, 0 when not, -1 on error. */
static int
tree_has(struct sv_audit *a, git_tree *tree, const char *path,
    struct sv_err *e)
{
	git_tree_entry *ent;
	int rc;

	if (tree == NULL)
		return 0;
	rc = git_tree_entry_bypath(&ent, tree, path);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return git_fail(e, rc, "can't look up '%s' in '%s'", path,
		    a->path);
	git_tree_entry_free(ent);
	return 1;
}

/*
 * Is the decision on `id` recorded in `tree`, at either layout?  1 (with
 * its path under SLUG/ in *rel when rel is not NULL), 0, or -1.
 */
static int
record_find(struct sv_audit *a, git_tree *tree, const char *slug,
    const char *id, char **rel, struct sv_err *e)
{
	char *(*const layouts[])(const char *) = { record_relpath,
	    record_relpath_v1 };
	int rc = 0;

	for (size_t i = 0; i < 2 && rc == 0; i++) {
		char *r = layouts[i](id), *path = sv_xasprintf("%s/%s", slug, r);

		rc = tree_has(a, tree, path, e);
		free(path);
		if (rc == 1 && rel != NULL)
			*rel = r;
		else
			free(r);
	}
	return rc;
}

int
sv_audit_has_record(struct sv_audit *a, const char *slug, const char *id,
    struct sv_err *e)
{
	git_commit *tip;
	git_tree *tree;
	int rc;

	if (sv_valid_slug(slug, e) == -1 || sv_valid_id(id, e) == -1)
		return -1;
	if (audit_tip(a, &tip, &tree, e) == -1)
		return -1;
	rc = record_find(a, tree, slug, id, NULL, e);
	git_tree_free(tree);
	git_commit_free(tip);
	return rc;
}

int
sv_audit_read_record(struct sv_audit *a, const char *slug, const char *id,
    char **text, size_t *len, char **rel, struct sv_err *e)
{
	git_commit *tip;
	git_tree *tree;
	char *path;
	int rc;

	*text = NULL;
	*rel = NULL;
	*len = 0;
	if (sv_valid_slug(slug, e) == -1 || sv_valid_id(id, e) == -1)
		return -1;
	if (audit_tip(a, &tip, &tree, e) == -1)
		return -1;
	if ((rc = record_find(a, tree, slug, id, rel, e)) == 1) {
		path = sv_xasprintf("%s/%s", slug, *rel);
		rc = tree_text(a, tree, path, text, len, e);
		free(path);
	}
	git_tree_free(tree);
	git_commit_free(tip);
	return rc < 0 ? -1 : 0;
}

/* --- commit messages and identities ------------------------------------- */

struct ident {
	char *name;
	char *email;
};

/* Text for one side of "Name <email>" in a commit header: control
 * characters made visible, no angle brackets, no surrounding blanks. */
static char *
ident_part(const char *s, size_t n)
{
	char *esc, *out;
	size_t len;

	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	esc = sv_escape(s, n, 0);
	for (char *p = esc; *p != '\0'; p++)
		if (*p == '<' || *p == '>')
			*p = '?';
	len = strlen(esc);
	out = sv_xmalloc(len + 1);
	memcpy(out, esc, len + 1);
	free(esc);
	return out;
}

/* "Name <email>" or a bare name (email empty, as the contract says). */
static void
ident_parse(const char *who, struct ident *id)
{
	const char *lt = who ? strrchr(who, '<') : NULL;
	size_t n = who ? strlen(who) : 0;

	if (lt != NULL && n > 0 && who[n - 1] == '>') {
		id->name = ident_part(who, (size_t)(lt - who));
		id->email = ident_part(lt + 1, (size_t)(who + n - 1 - lt - 1));
	} else {
		id->name = ident_part(who ? who : "", n);
		id->email = sv_xstrdup("");
	}
	if (id->name[0] == '\0') {
		free(id->name);
		id->name = sv_xstrdup(id->email[0] ? id->email : "unknown");
	}
}

static void
ident_free(struct ident *id)
{
	free(id->name);
	free(id->email);
}

/*
 * A git_signature over our own strings.  Built by hand because libgit2's
 * git_signature_new refuses an empty email, and a hand-written response's
 * decided_by is a login name without one.
 */
static void
signature_at(git_signature *sig, struct ident *id, time_t when)
{
	sig->name = id->name;
	sig->email = id->email;
	sig->when.time = (git_time_t)when;
	sig->when.offset = 0;
	sig->when.sign = '+';
}

static const char *
status_verb(enum sv_status s)
{
	switch (s) {
	case SV_APPROVED:
		return "approve";
	case SV_MODIFIED:
		return "modify";
	case SV_REJECTED:
		return "reject";
	default:
		return "decide";
	}
}

/* One line, control characters escaped, at most SUBJECT_COLS characters. */
static char *
subject_line(const char *raw)
{
	char *s = sv_escape(raw, strlen(raw), 0);
	size_t cols = 0, i, cut = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xc0) == 0x80)
			continue;
		if (cols == SUBJECT_COLS - 3)
			cut = i;
		cols++;
	}
	if (cols > SUBJECT_COLS)
		memcpy(s + cut, "...", 4);
	return s;
}

/* A paragraph of agent or operator text: escaped, lines kept, trimmed. */
static void
put_paragraph(FILE *f, const char *label, const char *text)
{
	char *esc;
	size_t n;
	const char *s = text ? text : "";

	while (*s == '\n' || *s == ' ' || *s == '\t' || *s == '\r')
		s++;
	esc = sv_escape(s, strlen(s), SV_ESC_NL);
	n = strlen(esc);
	while (n > 0 && (esc[n - 1] == '\n' || esc[n - 1] == ' ' ||
	    esc[n - 1] == '\t'))
		n--;
	esc[n] = '\0';
	fprintf(f, "%s:\n%s\n\n", label, n ? esc : "(none)");
	free(esc);
}

static void
put_trailer(FILE *f, const char *key, const char *value)
{
	char *esc = sv_escape(value ? value : "", value ? strlen(value) : 0, 0);

	fprintf(f, "%s: %s\n", key, esc);
	free(esc);
}

static char *
decision_message(const struct sv_proposal *p, const struct sv_response *r)
{
	const char *payload = r->status != SV_REJECTED && r->final_file ?
	    r->final_file : p->proposed_file;
	char *summary, *raw, *subject, *msg = NULL;
	size_t len = 0;
	FILE *f;

	summary = sv_payload_summary(p->tool, payload);
	raw = sv_xasprintf("%s: %s %s %s", p->bottle_slug,
	    status_verb(r->status), p->tool, summary);
	subject = subject_line(raw);
	if ((f = open_memstream(&msg, &len)) == NULL)
		sv_die(111, "out of memory");
	fprintf(f, "%s\n\n", subject);
	put_paragraph(f, "Justification", p->justification);
	put_paragraph(f, "Notes", r->notes);
	put_trailer(f, "Proposal-Id", p->id);
	put_trailer(f, "Bottle", p->bottle_slug);
	put_trailer(f, "Tool", p->tool);
	put_trailer(f, "Status", sv_status_name(r->status));
	put_trailer(f, "Arrived", p->arrival_timestamp);
	put_trailer(f, "Decided", r->decided_at);
	if (fclose(f) != 0)
		sv_die(111, "out of memory");
	free(summary);
	free(raw);
	free(subject);
	return msg;
}

/* --- the compare-and-swap commit loop ----------------------------------- */

#define PLAN_MAX 8

/* What one commit changes, built afresh on the tip of each attempt. */
struct plan {
	git_tree_update up[PLAN_MAX];
	char *paths[PLAN_MAX];
	size_t n;
	int nothing;		/* already done: no commit */
	int store_failed;	/* the repository failed, not the plan */
};

static void
plan_free(struct plan *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->paths[i]);
	memset(pl, 0, sizeof *pl);
}

/* Write `text` as a blob and plan it at `path` (NULL text: remove). */
static int
plan_put(struct sv_audit *a, struct plan *pl, const char *path,
    const char *text, struct sv_err *e)
{
	git_tree_update *u = &pl->up[pl->n];
	int rc;

	if (pl->n == PLAN_MAX)
		return sv_errf(e, 0, "too many files in one commit");
	memset(u, 0, sizeof *u);
	if (text != NULL) {
		rc = git_blob_create_from_buffer(&u->id, a->repo, text,
		    strlen(text));
		if (rc < 0) {
			pl->store_failed = 1;
			return git_fail(e, rc, "can't write '%s' into '%s'", path,
			    a->path);
		}
		u->action = GIT_TREE_UPDATE_UPSERT;
	} else {
		u->action = GIT_TREE_UPDATE_REMOVE;
	}
	u->filemode = GIT_FILEMODE_BLOB;
	pl->paths[pl->n] = sv_xstrdup(path);
	u->path = pl->paths[pl->n];
	pl->n++;
	return 0;
}

typedef int (*plan_fn)(struct sv_audit *a, git_tree *tip, void *ctx,
    struct plan *pl, struct sv_err *e);

/* The oldest lock file a commit can run into: HEAD's, the branch's (then
 * *branch_lock is set) or packed-refs'. */
static int
oldest_lock(struct sv_audit *a, char **path, long *age, int *branch_lock)
{
	git_reference *head = NULL;
	const char *branch = "refs/heads/main";
	char *cand[3];
	struct stat st;
	time_t now = time(NULL);
	int found = 0, symbolic = 0;

	if (git_reference_lookup(&head, a->repo, "HEAD") == 0 &&
	    git_reference_type(head) == GIT_REFERENCE_SYMBOLIC) {
		branch = git_reference_symbolic_target(head);
		symbolic = 1;
	}
	cand[0] = sv_xasprintf("%s/HEAD.lock", a->path);
	cand[1] = sv_xasprintf("%s/%s.lock", a->path, branch);
	cand[2] = sv_xasprintf("%s/packed-refs.lock", a->path);
	git_reference_free(head);
	*path = NULL;
	*branch_lock = 0;
	for (int i = 0; i < 3; i++) {
		if (lstat(cand[i], &st) == 0 &&
		    (!found || now - st.st_mtime > *age)) {
			free(*path);
			*path = sv_xstrdup(cand[i]);
			*age = (long)(now - st.st_mtime);
			*branch_lock = i == 1 && symbolic;
			found = 1;
		}
		free(cand[i]);
	}
	return found;
}

/*
 * Who is moving the branch.  While libgit2 holds refs/heads/BRANCH.lock
 * for us, AUDIT/supervise.lock (whose flock we hold) says "PID START
 * BOOT" of this process; it is emptied when the move is over.  So a lock
 * file found later, with that mark naming a process that no longer runs,
 * was left by one of our committers that died inside the move (a kill -9
 * hits that window about one time in twenty), and can be removed: no
 * other committer of ours can be in the move while we hold the flock.
 * Any other lock is git's own and is left alone.
 */
static void
read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (f != NULL) {
		if (fgets(buf, (int)n, f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

/* Field 22 of /proc/PID/stat, the start time, as text; "" when gone. */
static void
start_time(long pid, char *buf, size_t n)
{
	char path[64], stat[1024], *p;
	int field;

	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	read_line(path, stat, sizeof stat);
	buf[0] = '\0';
	/* The command name, field 2, may hold blanks: count after its ')'. */
	if ((p = strrchr(stat, ')')) == NULL)
		return;
	for (field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p != NULL)
		snprintf(buf, n, "%.*s", (int)strcspn(p + 1, " "), p + 1);
}

static void
identify_self(struct sv_audit *a)
{
	char start[32], boot[64];

	start_time((long)getpid(), start, sizeof start);
	read_line("/proc/sys/kernel/random/boot_id", boot, sizeof boot);
	snprintf(a->self, sizeof a->self, "%ld %s %s", (long)getpid(),
	    start[0] ? start : "?", boot[0] ? boot : "?");
}

static void
mark_moving(struct sv_audit *a, int moving)
{
	size_t n = moving ? strlen(a->self) : 0;

	/* Best effort: without the mark a lock is only reported, as git's. */
	if (n > 0 && pwrite(a->lockfd, a->self, n, 0) != (ssize_t)n)
		n = 0;
	if (ftruncate(a->lockfd, (off_t)n) == -1)
		return;
}

/* The mark the last holder of the flock left: read before we move. */
static void
read_mark(struct sv_audit *a, char *mark, size_t n)
{
	ssize_t len = pread(a->lockfd, mark, n - 1, 0);

	mark[len > 0 ? len : 0] = '\0';
}

/* Does `mark` name a committer that died inside the move? */
static int
left_by_dead_committer(const char *mark)
{
	char start[32], boot[64], now_start[32], now_boot[64];
	long pid;

	if (sscanf(mark, "%ld %31s %63s", &pid, start, boot) != 3 || pid <= 0)
		return 0;
	read_line("/proc/sys/kernel/random/boot_id", now_boot, sizeof now_boot);
	if (now_boot[0] == '\0')
		return 0;	/* can't tell: leave it */
	if (strcmp(boot, now_boot) != 0)
		return 1;	/* marked before the last boot */
	if (pid == (long)getpid())
		return 0;
	start_time(pid, now_start, sizeof now_start);
	return now_start[0] == '\0' || strcmp(now_start, start) != 0;
}

/*
 * Moving the branch renames a new ref file over the old one, and the old
 * one's inode and block are freed there and then, in the middle of the
 * commit: on a file system mounted with `discard` and no journal, freeing
 * a block is a discard request the rename waits for.  So the daemon
 * links the old file under OLDREF_NAME first, and the rename only drops
 * a link; sv_audit_sync removes the name after the agents are answered.
 * The name keeps nothing but an old inode alive: removing it at any time
 * is harmless, which is why a name left by a killed process is simply
 * removed at the next open.
 */
static void
keep_old_ref(struct sv_audit *a, const char *branch)
{
	char *from = sv_xasprintf("%s/%s", a->path, branch);
	char *to = sv_xasprintf("%s/%s", a->path, OLDREF_NAME);

	a->oldref = link(from, to) == 0;
	free(from);
	free(to);
}

static void
drop_old_ref(struct sv_audit *a)
{
	char *path;

	if (!a->oldref)
		return;
	path = sv_xasprintf("%s/%s", a->path, OLDREF_NAME);
	unlink(path);
	free(path);
	a->oldref = 0;
}

/*
 * What move_branch_spare must do as libgit2 would: whether a reflog is
 * wanted (a bare repository keeps none unless core.logAllRefUpdates says
 * so), and the mode of a ref file, 0666 less the umask, read from
 * /proc (umask(2) would change it for every thread while it looks).
 */
static void
ref_settings(struct sv_audit *a)
{
	git_config *cfg = NULL;
	const char *v;
	char line[128];
	unsigned mask = 022;
	int b;
	FILE *f;

	a->reflog = 0;
	if (git_repository_config_snapshot(&cfg, a->repo) == 0 &&
	    git_config_get_string(&v, cfg, "core.logallrefupdates") == 0)
		a->reflog = strcasecmp(v, "always") == 0 ||
		    (git_config_parse_bool(&b, v) == 0 && b);
	git_config_free(cfg);
	if ((f = fopen("/proc/self/status", "re")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL)
			if (sscanf(line, "Umask: %o", &mask) == 1)
				break;
		fclose(f);
	}
	a->refmode = 0666 & ~(mode_t)mask;
	a->ref_known = 1;
}

/*
 * The compare-and-swap of git_reference_create_matching, done the way
 * git and libgit2 do it (take BRANCH.lock, check the branch still names
 * `old`, write the new id into the lock, rename it over the branch), but
 * with a file made ahead of time (pack.c's spares) as the lock.  Taking
 * the lock is link(2) of that file to BRANCH.lock, which fails with
 * EEXIST when someone holds it, as the O_EXCL creation it stands for
 * does.  The difference is that no inode is allocated on the way to the
 * answer: on ext4 without a journal, after a large removal, creating the
 * lock took 400 us and more.  1 when it can't be done so (no spare, a
 * reflog to write): libgit2 then moves the branch.
 */
static int
move_branch_spare(struct sv_audit *a, const char *branch, const git_oid *old,
    const git_oid *id)
{
	char *spare, *lock, *ref, *logs, hex[GIT_OID_HEXSZ + 2];
	git_oid cur;
	int rc, fd, err;

	if ((spare = sv_odb_take_spare(a->odb)) == NULL)
		return 1;	/* not the daemon, or it has none ready */
	if (!a->ref_known)
		ref_settings(a);
	logs = sv_xasprintf("%s/logs/%s", a->path, branch);
	rc = a->reflog || access(logs, F_OK) == 0;
	free(logs);
	if (rc) {
		sv_odb_return_spare(a->odb, spare);
		return 1;
	}
	lock = sv_xasprintf("%s/%s.lock", a->path, branch);
	ref = sv_xasprintf("%s/%s", a->path, branch);
	if (link(spare, lock) == -1) {
		err = errno;
		sv_odb_return_spare(a->odb, spare);
		rc = 1;
		if (err == EEXIST) {
			git_error_set_str(GIT_ERROR_REFERENCE, "the branch is "
			    "locked");
			rc = GIT_ELOCKED;
		}
		goto out;
	}
	unlink(spare);
	free(spare);
	/* Under the lock: does the branch still name `old`? */
	if ((rc = git_reference_name_to_id(&cur, a->repo, branch)) < 0 ||
	    !git_oid_equal(&cur, old)) {
		unlink(lock);
		if (rc == 0) {
			git_error_set_str(GIT_ERROR_REFERENCE, "the branch "
			    "moved meanwhile");
			rc = GIT_EMODIFIED;
		}
		goto out;
	}
	git_oid_fmt(hex, id);
	hex[GIT_OID_HEXSZ] = '\n';
	hex[GIT_OID_HEXSZ + 1] = '\0';
	fd = open(lock, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1 || write(fd, hex, GIT_OID_HEXSZ + 1) != GIT_OID_HEXSZ + 1 ||
	    fchmod(fd, a->refmode) == -1 || close(fd) == -1) {
		err = errno;
		if (fd != -1)
			close(fd);
		unlink(lock);
		git_error_set_str(GIT_ERROR_OS, strerror(err));
		rc = -1;
		goto out;
	}
	if (rename(lock, ref) == -1) {
		git_error_set_str(GIT_ERROR_OS, strerror(errno));
		unlink(lock);
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	free(lock);
	free(ref);
	return rc;
}

/*
 * Move the branch HEAD names from `old` (NULL: the branch is unborn) to
 * `id`, as a compare-and-swap: GIT_EMODIFIED when it no longer points at
 * `old`, GIT_EEXISTS when an unborn branch was born meanwhile.
 */
static int
move_branch(struct sv_audit *a, const git_oid *old, const git_oid *id)
{
	git_reference *head = NULL, *ref = NULL;
	const char *branch;
	int rc;

	if ((rc = git_reference_lookup(&head, a->repo, "HEAD")) < 0)
		return rc;
	if (git_reference_type(head) != GIT_REFERENCE_SYMBOLIC) {
		git_reference_free(head);
		git_error_set_str(GIT_ERROR_REFERENCE, "HEAD is detached");
		return -1;
	}
	branch = git_reference_symbolic_target(head);
	if (old != NULL && a->defer_sync && !a->oldref)
		keep_old_ref(a, branch);
	if (old != NULL && (rc = move_branch_spare(a, branch, old, id)) != 1) {
		git_reference_free(head);
		return rc;
	}
	if (old != NULL)
		rc = git_reference_create_matching(&ref, a->repo, branch, id, 1,
		    old, "supervised: commit");
	else
		rc = git_reference_create(&ref, a->repo, branch, id, 0,
		    "supervised: commit (initial)");
	git_reference_free(ref);
	git_reference_free(head);
	return rc;
}

/*
 * Keep the number of packs down (pack.c), under our lock: merge, flush
 * the merged pack to disk, and only then remove what it replaces.  A
 * failure here loses nothing (the packs stay as they were), so it is
 * reported and the commit stands.
 */
static void
merge_packs(struct sv_audit *a)
{
	struct sv_err me;
	char **old = NULL;

	if (sv_odb_merge(a->odb, 0, &old, &me) == -1 ||
	    (old != NULL && (barrier(a, &me) == -1 ||
	    sv_odb_remove(a->odb, old, &me) == -1)))
		sv_warn_err(&me);
	sv_odb_old_free(old);
}

void
sv_audit_defer_merges(struct sv_audit *a)
{
	a->defer_merges = 1;
}

void
sv_audit_defer_sync(struct sv_audit *a)
{
	a->defer_sync = 1;
}

int
sv_audit_sync(struct sv_audit *a, struct sv_err *e)
{
	if (a->unsynced) {
		if (barrier(a, e) == -1)
			return -1;
		a->unsynced = 0;
	}
	drop_old_ref(a);
	return 0;
}

int
sv_audit_same_fs(struct sv_audit *a, int fd)
{
	struct stat sa, sb;

	return fstat(a->lockfd, &sa) == 0 && fstat(fd, &sb) == 0 &&
	    sa.st_dev == sb.st_dev;
}

int
sv_audit_maintain(struct sv_audit *a, struct sv_err *e)
{
	int rc = 0;

	/* Not even the lock unless there are packs to look at. */
	if (sv_odb_merge_due(a->odb)) {
		if (audit_lock(a, e) == -1)
			rc = -1;
		else {
			merge_packs(a);
			audit_unlock(a);
		}
	}
	/* The next batch's pack files, made while nobody waits. */
	sv_odb_prepare(a->odb);
	return rc;
}

/* One commit of a batch: what to change, by whom, and what became of it. */
enum { ITEM_TODO, ITEM_NEW, ITEM_DONE, ITEM_FAILED };
struct item {
	plan_fn build;
	void *ctx;
	const git_signature *author;
	const char *message;
	int state;		/* NEW: committed now; DONE: it already was */
	struct sv_err err;	/* ITEM_FAILED: why */
};

/*
 * Build items[0..n) as a chain of commits on the tip, one an item, and
 * put each in state NEW, DONE (its change is on the tip already) or
 * FAILED (its own build failed).  *head is the last commit made (NULL:
 * none).  -1 with e set when the repository itself failed.
 */
static int
build_chain(struct sv_audit *a, git_commit *tip, git_tree *tree,
    struct item *items, size_t n, const git_signature *committer,
    git_commit **head, struct sv_err *e)
{
	git_commit *parent = tip, *made = NULL;
	git_tree *cur = tree, *newtree = NULL;
	git_oid tree_id, commit_id;
	struct plan pl;
	int rc = 0, grc;

	memset(&pl, 0, sizeof pl);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct item *it = &items[i];

		plan_free(&pl);
		it->state = ITEM_TODO;
		if (it->build(a, cur, it->ctx, &pl, &it->err) == -1) {
			if (pl.store_failed) {
				*e = it->err;	/* the batch, not this item */
				rc = -1;
				break;
			}
			it->state = ITEM_FAILED;
			continue;
		}
		if (pl.nothing) {
			it->state = ITEM_DONE;
			continue;
		}
		grc = git_tree_create_updated(&tree_id, a->repo, cur, pl.n, pl.up);
		if (grc < 0) {
			rc = git_fail(e, grc, "can't build the tree to commit in "
			    "'%s'", a->path);
			break;
		}
		if (cur != NULL && git_oid_equal(&tree_id, git_tree_id(cur))) {
			it->state = ITEM_DONE;	/* nothing would change */
			continue;
		}
		if ((grc = git_tree_lookup(&newtree, a->repo, &tree_id)) < 0) {
			rc = git_fail(e, grc, "can't read back the new tree in "
			    "'%s'", a->path);
			break;
		}
		{
			const git_commit *parents[1] = { parent };

			grc = git_commit_create(&commit_id, a->repo, NULL,
			    it->author, committer, NULL, it->message, newtree,
			    parent != NULL, parents);
		}
		if (grc == 0)
			grc = git_commit_lookup(&made, a->repo, &commit_id);
		if (grc < 0) {
			git_tree_free(newtree);
			rc = git_fail(e, grc, "can't commit to '%s'", a->path);
			break;
		}
		if (cur != tree)
			git_tree_free(cur);
		if (parent != tip)
			git_commit_free(parent);
		cur = newtree;
		parent = made;
		it->state = ITEM_NEW;
	}
	plan_free(&pl);
	if (cur != tree)
		git_tree_free(cur);
	if (rc == 0 && parent != tip) {
		*head = parent;
		return 0;
	}
	if (parent != tip)
		git_commit_free(parent);
	*head = NULL;
	return rc;
}

/*
 * Commit items[0..n) on main, one commit each, in order: the whole batch
 * under our flock, with one compare-and-swap of the branch and two
 * flushes (barrier()).  Returns 0 when the repository took the batch:
 * each item then says NEW, DONE or FAILED (with its reason).  -1 with e
 * set when the repository failed: nothing of the batch counts.
 */
static int
audit_commit(struct sv_audit *a, struct item *items, size_t n,
    struct sv_err *e)
{
	struct ident cid = { sv_xstrdup("supervised"), NULL };
	git_signature committer;
	git_commit *tip = NULL, *head = NULL;
	git_tree *tree = NULL;
	char *lock = NULL, prior[160];
	long age = 0;
	size_t wrote;
	int rc = -1, grc, branch_lock;

	cid.email = sv_xasprintf("supervised@%s", a->host);
	if (audit_lock(a, e) == -1)
		goto out;
	read_mark(a, prior, sizeof prior);
	for (int attempt = 1;; attempt++) {
		git_commit_free(head);
		git_tree_free(tree);
		git_commit_free(tip);
		head = NULL;
		if (audit_tip(a, &tip, &tree, e) == -1)
			break;
		signature_at(&committer, &cid, time(NULL));
		if (build_chain(a, tip, tree, items, n, &committer, &head,
		    e) == -1) {
			sv_odb_discard(a->odb);
			/*
			 * Writing an object can fail for a moment: a git gc
			 * run without our lock removes an empty objects/XX
			 * between libgit2's mkdir and its rename.  Try again
			 * a few times before giving up on the batch.
			 */
			if (attempt >= WRITE_TRIES)
				break;
			sleep_us(1000L << attempt);
			continue;
		}
		if (head == NULL) {
			/*
			 * Nothing to commit.  A decision found already on
			 * main may be there because a committer was killed
			 * between moving the branch and its last flush: flush
			 * before it counts, as if we had made it (also when
			 * the flush is deferred: no first flush wrote the
			 * response it came from).
			 */
			size_t i = 0;

			sv_odb_discard(a->odb);
			while (i < n && items[i].state != ITEM_DONE)
				i++;
			rc = i < n ? barrier(a, e) : 0;
			break;
		}
		/* The batch's objects as one pack, then on disk for good. */
		if (sv_odb_flush(a->odb, &wrote, e) == -1) {
			sv_odb_discard(a->odb);
			break;
		}
		if (barrier(a, e) == -1)
			break;
		mark_moving(a, 1);
		grc = move_branch(a, tip ? git_commit_id(tip) : NULL,
		    git_commit_id(head));
		mark_moving(a, 0);
		if (grc == 0 && a->defer_sync) {
			a->unsynced = 1;	/* sv_audit_sync flushes */
			rc = 0;
			break;
		}
		if (grc == 0) {
			if ((rc = barrier(a, e)) == 0 && !a->defer_merges)
				merge_packs(a);
			break;
		}
		if (grc != GIT_EMODIFIED && grc != GIT_ELOCKED &&
		    grc != GIT_EEXISTS) {
			git_fail(e, grc, "can't commit to '%s'", a->path);
			break;
		}
		if (grc == GIT_ELOCKED && oldest_lock(a, &lock, &age,
		    &branch_lock)) {
			/* A second old: a live git holds a ref lock for less. */
			if (age >= 1 && branch_lock &&
			    left_by_dead_committer(prior) && unlink(lock) == 0) {
				prior[0] = '\0';
				free(lock);
				lock = NULL;
				continue;	/* ours, from a killed committer */
			}
			if (age >= STALE_LOCK_SECS) {
				sv_errf(e, 0, "can't commit to '%s': '%s' is %ld s "
				    "old: a git process died holding it; remove "
				    "it once no git process uses the repository",
				    a->path, lock, age);
				break;
			}
			if (attempt >= CAS_TRIES) {
				sv_errf(e, 0, "can't commit to '%s': '%s' has been "
				    "locked for %ld s", a->path, lock, age);
				break;
			}
			free(lock);
			lock = NULL;
		}
		if (attempt >= CAS_TRIES) {
			git_fail(e, grc, "can't commit to '%s' after %d attempts",
			    a->path, attempt);
			break;
		}
		/* Someone else moved or holds the branch: back off, rebuild. */
		sleep_us(attempt < 7 ? 1000L << attempt : 100000L);
	}
	audit_unlock(a);
out:
	free(lock);
	git_commit_free(head);
	git_tree_free(tree);
	git_commit_free(tip);
	ident_free(&cid);
	return rc;
}

/* --- decisions ---------------------------------------------------------- */

struct decision_ctx {
	const struct sv_proposal *p;
	const struct sv_response *r;
	const char *config;	/* the tool's config file, or NULL */
	char *record_path;
	char *record;
	char *message;
	struct ident who;
	git_signature author;
};

static int
plan_decision(struct sv_audit *a, git_tree *tip, void *arg, struct plan *pl,
    struct sv_err *e)
{
	struct decision_ctx *c = arg;
	char *path, *cur = NULL, *next = NULL, msg[sizeof e->msg];
	int rc;

	if ((rc = record_find(a, tip, c->p->bottle_slug, c->p->id, NULL,
	    e)) != 0) {
		pl->nothing = rc == 1;
		return rc == 1 ? 0 : -1;
	}
	if (c->config != NULL && c->r->status != SV_REJECTED) {
		path = sv_xasprintf("%s/%s", c->p->bottle_slug, c->config);
		rc = tree_text(a, tip, path, &cur, NULL, e);
		if (rc == 0 && sv_config_update(c->p->tool, cur, c->r->final_file,
		    &next, e) == -1) {
			memcpy(msg, e->msg, sizeof msg);
			sv_errf(e, 0, "can't apply the decision on '%s' to '%s': "
			    "%s", c->p->id, path, msg);
			rc = -1;
		}
		if (rc == 0 && next != NULL &&
		    (cur == NULL || strcmp(cur, next) != 0))
			rc = plan_put(a, pl, path, next, e);
		free(path);
		free(cur);
		free(next);
		if (rc == -1)
			return -1;
	}
	return plan_put(a, pl, c->record_path, c->record, e);
}

static char *
record_text(const struct sv_proposal *p, const struct sv_response *r)
{
	json_t *pj = sv_proposal_json(p), *rj = sv_response_json(r), *j;
	char *s, *out, *o;
	const char *q;
	size_t ndel;

	/* NULL only for text that is not valid UTF-8: never from the loader. */
	if (pj == NULL || rj == NULL) {
		json_decref(pj);
		json_decref(rj);
		return NULL;
	}
	/*
	 * ASCII only: `git show` and `git log -p` print the record raw, and
	 * agent text may carry bidi or invisible characters; as \uXXXX they
	 * are visible (jansson escapes C0 controls, but not DEL, which JSON
	 * allows raw: a DEL byte can only be inside a string, so it becomes
	 * \u007f here).
	 */
	j = json_pack("{s:o, s:o}", "proposal", pj, "response", rj);
	if (j == NULL || (s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS |
	    JSON_ENSURE_ASCII)) == NULL)
		sv_die(111, "out of memory");
	ndel = 0;
	for (q = s; *q != '\0'; q++)
		ndel += *q == 0x7f;
	out = sv_xmalloc(strlen(s) + 5 * ndel + 2);
	for (q = s, o = out; *q != '\0'; q++) {
		if (*q == 0x7f) {
			memcpy(o, "\\u007f", 6);
			o += 6;
		} else {
			*o++ = *q;
		}
	}
	*o++ = '\n';
	*o = '\0';
	free(s);
	json_decref(j);
	return out;
}

/* Check a decision and make everything its commit needs but the trees. */
static int
decision_prepare(struct decision_ctx *c, const struct sv_proposal *p,
    const struct sv_response *r, struct sv_err *e)
{
	const struct sv_tool *t;
	time_t decided;

	memset(c, 0, sizeof *c);
	if (sv_valid_id(p->id, e) == -1 || sv_valid_slug(p->bottle_slug, e) == -1)
		return -1;
	t = sv_tool_find(p->tool);
	if (t == NULL || !t->proposes)
		return sv_errf(e, 0, "can't commit the decision on '%s': unknown "
		    "tool '%s'", p->id, p->tool ? p->tool : "");
	if (r->status != SV_APPROVED && r->status != SV_MODIFIED &&
	    r->status != SV_REJECTED)
		return sv_errf(e, 0, "can't commit the decision on '%s': no "
		    "status", p->id);
	if (r->proposal_id != NULL && strcmp(r->proposal_id, p->id) != 0)
		return sv_errf(e, 0, "can't commit the decision on '%s': the "
		    "response is for '%s'", p->id, r->proposal_id);
	if (r->status != SV_REJECTED && r->final_file == NULL)
		return sv_errf(e, 0, "can't commit the decision on '%s': %s "
		    "without a final file", p->id, sv_status_name(r->status));
	if (r->decided_by == NULL || r->decided_at == NULL)
		return sv_errf(e, 0, "can't commit the decision on '%s': the "
		    "response is not resolved (decided_by, decided_at)", p->id);
	if ((c->record = record_text(p, r)) == NULL)
		return sv_errf(e, EILSEQ, "can't commit the decision on '%s': "
		    "a field is not valid UTF-8", p->id);
	c->p = p;
	c->r = r;
	c->config = t->config;
	c->record_path = record_path(p->bottle_slug, p->id);
	c->message = decision_message(p, r);
	ident_parse(r->decided_by, &c->who);
	/* The author date is when the operator decided, not when we commit. */
	if (sv_parse_iso8601(r->decided_at, &decided) == -1)
		decided = time(NULL);
	signature_at(&c->author, &c->who, decided);
	return 0;
}

static void
decision_release(struct decision_ctx *c)
{
	if (c->record_path != NULL)
		ident_free(&c->who);
	free(c->message);
	free(c->record);
	free(c->record_path);
}

int
sv_audit_commit_decisions(struct sv_audit *a, struct sv_audit_decision *v,
    size_t n, struct sv_err *e)
{
	struct decision_ctx *ctx = sv_xmalloc((n ? n : 1) * sizeof *ctx);
	struct item *items = sv_xmalloc((n ? n : 1) * sizeof *items);
	size_t *of = sv_xmalloc((n ? n : 1) * sizeof *of);
	size_t i, k = 0;
	int rc;

	for (i = 0; i < n; i++) {
		v[i].committed = v[i].failed = 0;
		if (decision_prepare(&ctx[i], v[i].p, v[i].r, &v[i].err) == -1) {
			v[i].failed = 1;
			continue;
		}
		memset(&items[k], 0, sizeof items[k]);
		items[k].build = plan_decision;
		items[k].ctx = &ctx[i];
		items[k].author = &ctx[i].author;
		items[k].message = ctx[i].message;
		of[k++] = i;
	}
	rc = k > 0 ? audit_commit(a, items, k, e) : 0;
	for (size_t j = 0; j < k; j++) {
		struct sv_audit_decision *d = &v[of[j]];

		if (rc == -1) {
			d->failed = 1;
			d->err = *e;
		} else if (items[j].state == ITEM_FAILED) {
			d->failed = 1;
			d->err = items[j].err;
		} else {
			d->committed = items[j].state == ITEM_NEW;
		}
	}
	for (i = 0; i < n; i++)
		decision_release(&ctx[i]);
	free(ctx);
	free(items);
	free(of);
	return rc;
}

int
sv_audit_commit_decision(struct sv_audit *a, const struct sv_proposal *p,
    const struct sv_response *r, int *committed, struct sv_err *e)
{
	struct sv_audit_decision d;

	*committed = 0;
	memset(&d, 0, sizeof d);
	d.p = p;
	d.r = r;
	if (sv_audit_commit_decisions(a, &d, 1, e) == -1)
		return -1;
	if (d.failed) {
		*e = d.err;
		return -1;
	}
	*committed = d.committed;
	return 0;
}

/* --- config commits (init, operator edits) ------------------------------ */

struct config_ctx {
	const char *slug;
	const struct sv_config_file *files;
	char **texts;		/* canonical texts, NULL: remove */
	size_t n;
};

static int
plan_config(struct sv_audit *a, git_tree *tip, void *arg, struct plan *pl,
    struct sv_err *e)
{
	struct config_ctx *c = arg;
	char *path, *cur, hex[41];
	int rc = 0;

	for (size_t i = 0; i < c->n && rc == 0; i++) {
		path = sv_xasprintf("%s/%s", c->slug, c->files[i].relpath);
		rc = tree_text(a, tip, path, &cur, NULL, e);
		if (rc == 0 && c->files[i].base_hash != NULL) {
			sv_blob_hash(cur ? cur : "", cur ? strlen(cur) : 0, hex);
			if (strcmp(hex, c->files[i].base_hash) != 0)
				rc = sv_errf(e, 0, "'%s' changed on main since it "
				    "was read (it is now blob %.12s, not %.12s); "
				    "nothing was committed", path, hex,
				    c->files[i].base_hash);
		}
		if (rc == 0 && c->texts[i] == NULL && cur != NULL)
			rc = plan_put(a, pl, path, NULL, e);
		else if (rc == 0 && c->texts[i] != NULL &&
		    (cur == NULL || strcmp(cur, c->texts[i]) != 0))
			rc = plan_put(a, pl, path, c->texts[i], e);
		free(cur);
		free(path);
	}
	if (rc == 0 && pl->n == 0)
		pl->nothing = 1;
	return rc;
}

/* Is relpath the config file of some tool, or the bottle's policy? */
static int
config_known(const char *relpath)
{
	if (strcmp(relpath, SV_POLICY_PATH) == 0)
		return 1;
	for (const struct sv_tool *t = sv_tools; t->name != NULL; t++)
		if (t->config != NULL && strcmp(t->config, relpath) == 0)
			return 1;
	return 0;
}

int
sv_audit_commit_config(struct sv_audit *a, const char *slug,
    const struct sv_config_file *files, size_t n, const char *author,
    const char *subject, const char *body, struct sv_err *e)
{
	struct config_ctx c = { slug, files, NULL, n };
	struct ident who;
	git_signature sig;
	struct item it;
	char *message = NULL, *esc, *bodyesc;
	size_t i, len;
	int rc = -1;

	if (sv_valid_slug(slug, e) == -1)
		return -1;
	if (n == 0 || n > PLAN_MAX)
		return sv_errf(e, 0, "can't commit %zu config files at once", n);
	c.texts = sv_xmalloc(n * sizeof *c.texts);
	memset(c.texts, 0, n * sizeof *c.texts);
	for (i = 0; i < n; i++) {
		if (!config_known(files[i].relpath)) {
			sv_errf(e, 0, "'%s' is not a config file of a bottle",
			    files[i].relpath);
			goto out;
		}
		if (files[i].text != NULL && sv_config_normalize(files[i].relpath,
		    files[i].text, &c.texts[i], e) == -1)
			goto out;
	}

	esc = subject_line(subject ? subject : "");
	bodyesc = sv_escape(body ? body : "", body ? strlen(body) : 0,
	    SV_ESC_NL);
	len = strlen(bodyesc);
	while (len > 0 && (bodyesc[len - 1] == '\n' || bodyesc[len - 1] == ' '))
		bodyesc[--len] = '\0';
	message = len ? sv_xasprintf("%s\n\n%s\n", esc, bodyesc) :
	    sv_xasprintf("%s\n", esc);
	free(esc);
	free(bodyesc);

	ident_parse(author, &who);
	signature_at(&sig, &who, time(NULL));
	memset(&it, 0, sizeof it);
	it.build = plan_config;
	it.ctx = &c;
	it.author = &sig;
	it.message = message;
	rc = audit_commit(a, &it, 1, e);
	if (rc == 0 && it.state == ITEM_FAILED) {
		*e = it.err;
		rc = -1;
	}
	ident_free(&who);
out:
	for (i = 0; i < n; i++)
		free(c.texts[i]);
	free(c.texts);
	free(message);
	return rc;
}

/* --- helpers that need no repository ------------------------------------ */

char *
sv_config_diff(const char *old, const char *new, const char *path)
{
	git_diff_options opts;
	git_patch *patch = NULL;
	git_buf buf = { NULL, 0, 0 };
	char *out = NULL;

	if (strcmp(old ? old : "", new ? new : "") == 0)
		return sv_xstrdup("");
	if (git_ready() < 0)
		return NULL;
	git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
	if (git_patch_from_buffers(&patch, old, old ? strlen(old) : 0, path,
	    new, new ? strlen(new) : 0, path, &opts) == 0 &&
	    git_patch_to_buf(&buf, patch) == 0) {
		out = sv_xmalloc(buf.size + 1);
		memcpy(out, buf.ptr ? buf.ptr : "", buf.size);
		out[buf.size] = '\0';
	}
	git_buf_dispose(&buf);
	git_patch_free(patch);
	return out;
}

void
sv_blob_hash(const char *text, size_t len, char hex[41])
{
	git_oid oid;

	memset(hex, '0', 40);
	hex[40] = '\0';
	if (git_ready() < 0)
		return;
	if (git_odb_hash(&oid, text, len, GIT_OBJECT_BLOB) == 0)
		git_oid_tostr(hex, 41, &oid);
}

char *
sv_operator(void)
{
	const char *env = getenv("SUPERVISE_OPERATOR");
	git_config *cfg = NULL;
	git_buf name = { NULL, 0, 0 }, email = { NULL, 0, 0 };
	struct passwd *pw;
	char host[256], *out = NULL;
	const char *login;

	if (env != NULL && *env != '\0')
		return sv_xstrdup(env);
	if (git_ready() >= 0) {
		/* libgit2 stays up: have it find ~/.gitconfig from $HOME
		 * and $XDG_CONFIG_HOME as they are now, not at its set-up. */
		git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH,
		    GIT_CONFIG_LEVEL_GLOBAL, NULL);
		git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH,
		    GIT_CONFIG_LEVEL_XDG, NULL);
		if (git_config_open_default(&cfg) == 0 &&
		    git_config_get_string_buf(&name, cfg, "user.name") == 0 &&
		    name.size > 0) {
			if (git_config_get_string_buf(&email, cfg,
			    "user.email") == 0 && email.size > 0)
				out = sv_xasprintf("%s <%s>", name.ptr, email.ptr);
			else
				out = sv_xstrdup(name.ptr);
		}
		git_buf_dispose(&name);
		git_buf_dispose(&email);
		git_config_free(cfg);
	}
	if (out != NULL)
		return out;
	pw = getpwuid(geteuid());
	login = pw ? pw->pw_name : getenv("LOGNAME");
	if (login == NULL || *login == '\0')
		login = getenv("USER");
	host_name(host, sizeof host);
	if (login == NULL || *login == '\0')
		return sv_xasprintf("uid%ld@%s", (long)geteuid(), host);
	return sv_xasprintf("%s@%s", login, host);
}

/* --- the committers' lock, for those who act on main (live.c) ----------- */

int
sv_audit_lock(struct sv_audit *a, struct sv_err *e)
{
	return audit_lock(a, e);
}

void
sv_audit_unlock(struct sv_audit *a)
{
	audit_unlock(a);
}
