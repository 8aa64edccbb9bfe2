/*
 * git.c: libgit2 for the whole process: set up once, its errors as ours,
 * and what needs no repository (a diff of two texts, a blob's id).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

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
	/*
	 * We flush what we wrote by name (durable.c) once per batch, where
	 * libgit2 would flush each object and ref one by one.
	 */
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
	 * The objects are in packs (odb.c), which libgit2 reads through
	 * mmap windows of up to 1 GiB, kept up to 8 GiB mapped: a daemon
	 * that had drained 10,000 decisions held 60 MiB of pack pages.
	 * Small windows, a small total, a bounded number of open packs.
	 */
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_SIZE, (size_t)4 << 20);
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT, (size_t)16 << 20);
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_FILE_LIMIT, (size_t)128);
}

int
sv_git_ready(void)
{
	pthread_once(&git_once, git_init_once);
	return git_once_rc;
}

int __attribute__((format(printf, 3, 4)))
sv_git_fail(struct sv_err *e, int code, const char *fmt, ...)
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

char *
sv_config_diff(const char *old, const char *new, const char *path)
{
	git_diff_options opts;
	git_patch *patch = NULL;
	git_buf buf = { NULL, 0, 0 };
	char *out = NULL;

	if (strcmp(old ? old : "", new ? new : "") == 0)
		return sv_xstrdup("");
	if (sv_git_ready() < 0)
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
	if (sv_git_ready() < 0)
		return;
	if (git_odb_hash(&oid, text, len, GIT_OBJECT_BLOB) == 0)
		git_oid_tostr(hex, 41, &oid);
}
