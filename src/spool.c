/*
 * spool.c: the maildir spool of one bottle.
 *
 *   queue/SLUG/proposals/{tmp,new,cur}
 *   queue/SLUG/responses/{tmp,new,cur,bad}
 *
 * - Every path inside the spool is reached with *at() calls from directory
 *   descriptors opened O_DIRECTORY|O_NOFOLLOW, and every file is opened
 *   O_NOFOLLOW and checked to be regular, so a symlink or fifo planted in
 *   the spool is refused, never followed.
 * - A file becomes visible by one rename: written and fsync'd in tmp/,
 *   published with renameat2(RENAME_NOREPLACE) (link+unlink where the file
 *   system lacks it), then the directory is fsync'd.  Readers of new/ and
 *   cur/ never see a partial file.
 * - The no-replace publish of responses/new/ID is the instant a decision
 *   is made: of two racing deciders exactly one rename succeeds.
 * - A proposal's state is its name: new/ID, then cur/ID:2,FLAGS with the
 *   flags in ASCII order, so lookups by id probe a few names instead of
 *   scanning.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

static int
is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int
is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9');
}

/* One validator for both: what may be a single path component here. */
static int
valid_name(const char *s, size_t max, const char *what, struct sv_err *e)
{
	size_t len = strnlen(s, max + 1), i = 0;
	char *es, *ec;
	int r;

	if (len == 0)
		return sv_errf(e, 0, "invalid %s '': empty", what);
	if (len <= max && is_alnum(s[0])) {
		for (i = 1; i < len && is_name_char(s[i]); i++)
			;
		/* Valid: the common case, on every name a scan reads, so
		 * the escaped copy for a message is made only when needed. */
		if (i == len)
			return 0;
	}
	/* Echo at most 64 bytes of an over-long value. */
	es = sv_escape(s, len > 64 ? 64 : len, 0);
	if (len > max) {
		r = sv_errf(e, 0, "invalid %s '%s...': longer than %zu bytes",
		    what, es, max);
	} else if (!is_alnum(s[0])) {
		r = sv_errf(e, 0, "invalid %s '%s': must start with a letter "
		    "or digit", what, es);
	} else {
		ec = sv_escape(s + i, 1, 0);
		r = sv_errf(e, 0, "invalid %s '%s': '%s' is not allowed "
		    "(letters, digits, '.', '_', '-' only)", what, es, ec);
		free(ec);
	}
	free(es);
	return r;
}

int
sv_valid_slug(const char *s, struct sv_err *e)
{
	return valid_name(s, SV_SLUG_MAX, "bottle slug", e);
}

int
sv_valid_id(const char *s, struct sv_err *e)
{
	return valid_name(s, SV_ID_MAX, "proposal id", e);
}

int
sv_unique_name(char *buf, size_t n, struct sv_err *e)
{
	static unsigned long seq;
	unsigned char rnd[8];
	char host[256], prefix[96];
	struct timespec ts;
	size_t got = 0, i, room;
	ssize_t r;
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	while (got < sizeof rnd) {
		r = getrandom(rnd + got, sizeof rnd - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return sv_errf(e, errno, "can't get random bytes");
		}
		got += (size_t)r;
	}
	len = snprintf(prefix, sizeof prefix,
	    "%lld.M%06ldP%ldQ%luR%02x%02x%02x%02x%02x%02x%02x%02x.",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(),
	    __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED),
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if (gethostname(host, sizeof host) < 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	for (i = 0; host[i]; i++)
		if (!is_alnum(host[i]) && host[i] != '-')
			host[i] = '-';
	/* The host part gives way so that the whole name stays a valid id. */
	room = SV_ID_MAX - (size_t)len;
	if (room > 64)
		room = 64;
	if (strlen(host) > room)
		host[room] = '\0';
	if ((size_t)len + strlen(host) + 1 > n)
		return sv_errf(e, ENAMETOOLONG, "can't make a unique name");
	snprintf(buf, n, "%s%s", prefix, host);
	return 0;
}

static const char *const subdirs[] = {
	"proposals", "proposals/tmp", "proposals/new", "proposals/cur",
	"responses", "responses/tmp", "responses/new", "responses/cur",
	"responses/bad",
};

static int *
subdir_fd(struct sv_spool *s, size_t i)
{
	int *fds[] = {&s->pdir, &s->ptmp, &s->pnew, &s->pcur,
	    &s->rdir, &s->rtmp, &s->rnew, &s->rcur, &s->rbad};

	return fds[i];
}

void
sv_spool_close(struct sv_spool *s)
{
	size_t i;

	if (s->dirfd >= 0)
		close(s->dirfd);
	s->dirfd = -1;
	for (i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
		int *fd = subdir_fd(s, i);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	free(s->path);
	free(s->slug);
	s->path = s->slug = NULL;
}

int
sv_spool_open(struct sv_spool *s, const char *path, const char *slug,
    int create, struct sv_err *e)
{
	size_t i;

	s->path = s->slug = NULL;
	s->dirfd = -1;
	for (i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++)
		*subdir_fd(s, i) = -1;
	if (sv_valid_slug(slug, e) < 0)
		return -1;
	if (create && sv_mkdirs(path, e) < 0)
		return -1;
	/* The queue path may come through a symlinked root; inside it, no. */
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return sv_errf(e, errno, "can't open '%s'", path);
	s->path = sv_xstrdup(path);
	s->slug = sv_xstrdup(slug);
	for (i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
		const char *sub = subdirs[i], *slash = strchr(sub, '/');
		int parent = slash ? (i < 4 ? s->pdir : s->rdir) : s->dirfd;
		const char *leaf = slash ? slash + 1 : sub;
		int *fd = subdir_fd(s, i);

		if (create && mkdirat(parent, leaf, 0700) < 0 && errno != EEXIST) {
			sv_errf(e, errno, "can't create '%s/%s'", path, sub);
			goto fail;
		}
		*fd = openat(parent, leaf,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (*fd < 0) {
			int saved = errno;
			struct stat st;

			if ((saved == ELOOP || saved == ENOTDIR) &&
			    fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode)) {
				sv_errf(e, 0, "can't open '%s/%s': is a "
				    "symbolic link, refused", path, sub);
				if (e)
					e->errnum = ELOOP;
			} else {
				sv_errf(e, saved, "can't open '%s/%s'", path, sub);
			}
			goto fail;
		}
	}
	return 0;
fail:
	sv_spool_close(s);
	return -1;
}

int
sv_spool_open_slug(struct sv_spool *s, const char *slug, int create,
    struct sv_err *e)
{
	char *path;
	int r;

	s->path = s->slug = NULL;
	if (sv_valid_slug(slug, e) < 0)
		return -1;
	path = sv_queue_dir(slug);
	r = sv_spool_open(s, path, slug, create, e);
	free(path);
	return r;
}

/*
 * Rename without replacing: renameat2 where the file system has it, else
 * link (which never replaces) and unlink.  -1 with errno set.
 */
int
sv_rename_noreplace(int fromdir, const char *from, int todir, const char *to)
{
	if (renameat2(fromdir, from, todir, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -1;
	if (linkat(fromdir, from, todir, to, 0) < 0)
		return -1;
	if (unlinkat(fromdir, from, 0) < 0) {
		/* Both names exist; the publish happened, so it succeeded. */
		return 0;
	}
	return 0;
}

static int
fsync_dir(int dirfd)
{
	/* Some file systems refuse fsync on a directory; the rename stands. */
	if (fsync(dirfd) < 0 && errno != EINVAL && errno != EROFS)
		return -1;
	return 0;
}

/*
 * The one publish: tmpdir/tmpname (O_EXCL, 0600) -> newdir/newname.
 * `what` is the maildir's name for messages ("proposals", "responses"),
 * `newsub` the name of newdir in it ("new", "bad"), `tmpwhere` tmpdir's
 * path in the spool, for messages.  Without `flush`, the file and newdir
 * are not flushed (see sv_propose_decided).  `fd`, when not -1, is
 * tmpdir/tmpname opened already (a spare, made ahead).
 */
static int
deliver_fd(int fd, int tmpdir, const char *tmpwhere, const char *tmpname,
    int newdir, const char *newname, const char *data, size_t len,
    const char *what, const char *newsub, int flush, struct sv_err *e)
{
	int saved;

	if (fd < 0)
		fd = openat(tmpdir, tmpname, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return sv_errf(e, errno, "can't create '%s/%s'", tmpwhere,
		    tmpname);
	if (sv_write_all(fd, data, len) < 0 || (flush && fsync(fd) < 0)) {
		saved = errno;
		close(fd);
		unlinkat(tmpdir, tmpname, 0);
		return sv_errf(e, saved, "can't write '%s/%s'", tmpwhere,
		    tmpname);
	}
	if (close(fd) < 0) {
		saved = errno;
		unlinkat(tmpdir, tmpname, 0);
		return sv_errf(e, saved, "can't write '%s/%s'", tmpwhere,
		    tmpname);
	}
	if (sv_rename_noreplace(tmpdir, tmpname, newdir, newname) < 0) {
		saved = errno;
		unlinkat(tmpdir, tmpname, 0);
		return sv_errf(e, saved, "can't rename '%s/%s' to '%s/%s/%s'",
		    tmpwhere, tmpname, what, newsub, newname);
	}
	if (flush && fsync_dir(newdir) < 0)
		return sv_errf(e, errno, "can't sync '%s/%s'", what, newsub);
	return 0;
}

static int
deliver_flush(int tmpdir, const char *tmpname, int newdir,
    const char *newname, const char *data, size_t len, const char *what,
    const char *newsub, int flush, struct sv_err *e)
{
	char tmpwhere[32];

	snprintf(tmpwhere, sizeof tmpwhere, "%s/tmp", what);
	return deliver_fd(-1, tmpdir, tmpwhere, tmpname, newdir, newname, data,
	    len, what, newsub, flush, e);
}

/*
 * Spares: files made ahead, while the sidecar is idle, in SPOOL/spare/,
 * so that filing a proposal and its rule's response creates no file on
 * the way to the answer.  On this kind of file system creating a file is
 * where the time goes (ext4 walks the inodes freed lately, 0.3-0.5 ms
 * after mass deletion); a spare is emptied, written and renamed into
 * new/, like a file of tmp/.  None there: a file is created as usual.
 */
#define SPARE_DIR	"spare"

static const char *const spare_names[] = { "proposal", "response" };

int
sv_spool_spares(struct sv_spool *s, struct sv_err *e)
{
	int dir, fd;

	if (mkdirat(s->dirfd, SPARE_DIR, 0700) == -1 && errno != EEXIST)
		return sv_errf(e, errno, "can't create '%s/%s'", s->path,
		    SPARE_DIR);
	dir = openat(s->dirfd, SPARE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (dir == -1)
		return sv_errf(e, errno, "can't open '%s/%s'", s->path,
		    SPARE_DIR);
	/* Not flushed: a spare lost in a crash is made again. */
	for (size_t i = 0; i < sizeof spare_names / sizeof spare_names[0]; i++) {
		fd = openat(dir, spare_names[i], O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1 && errno != EEXIST) {
			sv_errf(e, errno, "can't create '%s/%s/%s'", s->path,
			    SPARE_DIR, spare_names[i]);
			close(dir);
			return -1;
		}
		if (fd != -1)
			close(fd);
	}
	close(dir);
	return 0;
}

/* deliver_flush, through spare/NAME when there is one. */
static int
deliver_spare(struct sv_spool *s, const char *spare, int tmpdir,
    const char *tmpname, int newdir, const char *newname, const char *data,
    size_t len, const char *what, struct sv_err *e)
{
	int dir, fd, rc;

	dir = openat(s->dirfd, SPARE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	fd = dir == -1 ? -1 : openat(dir, spare, O_WRONLY | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (dir != -1)
			close(dir);
		return deliver_flush(tmpdir, tmpname, newdir, newname, data,
		    len, what, "new", 0, e);
	}
	rc = deliver_fd(fd, dir, SPARE_DIR, spare, newdir, newname, data, len,
	    what, "new", 0, e);
	close(dir);
	return rc;
}

static int already_decided(const char *id, struct sv_err *e);

static int
deliver_as(int tmpdir, const char *tmpname, int newdir, const char *newname,
    const char *data, size_t len, const char *what, const char *newsub,
    struct sv_err *e)
{
	return deliver_flush(tmpdir, tmpname, newdir, newname, data, len, what,
	    newsub, 1, e);
}

int
sv_deliver(int tmpdir, int newdir, const char *name, const char *data,
    size_t len, const char *what, struct sv_err *e)
{
	return deliver_as(tmpdir, name, newdir, name, data, len, what, "new", e);
}

/*
 * Publish n files as deliver_as() does one, with two rounds of flushes
 * for all of them: every file is written to tmpdir, then all are
 * fsync'd at once by name (sv_durable_sync), then each is renamed into
 * newdir, then newdir is flushed once.  v[i].ok says which were
 * published, v[i].err why the others were not.
 */
struct delivery {
	const char *tmpname, *name;
	const char *data;
	size_t len;
	int written;	/* in tmp/, to be flushed and published */
	int ok;
	struct sv_err err;
};

static size_t
deliver_many(int tmpdir, int newdir, struct delivery *v, size_t n,
    const char *what, const char *newsub)
{
	size_t written = 0, published = 0, i;
	struct sv_durable d;
	struct sv_err err;
	int saved = 0;

	if (n == 1) {		/* one file: its own fsync, as ever */
		v[0].ok = deliver_as(tmpdir, v[0].tmpname, newdir, v[0].name,
		    v[0].data, v[0].len, what, newsub, &v[0].err) == 0;
		return (size_t)v[0].ok;
	}
	/* Closed as written: a batch must not need a descriptor a file. */
	sv_durable_init(&d);
	for (i = 0; i < n; i++) {
		struct delivery *d = &v[i];
		int fd;

		d->ok = 0;
		d->written = 0;
		fd = openat(tmpdir, d->tmpname,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			sv_errf(&d->err, errno, "can't create '%s/tmp/%s'", what,
			    d->tmpname);
			continue;
		}
		if (sv_write_all(fd, d->data, d->len) < 0) {
			sv_errf(&d->err, errno, "can't write '%s/tmp/%s'", what,
			    d->tmpname);
			close(fd);
			unlinkat(tmpdir, d->tmpname, 0);
			continue;
		}
		if (close(fd) < 0) {	/* never closed twice: it may be reused */
			sv_errf(&d->err, errno, "can't write '%s/tmp/%s'", what,
			    d->tmpname);
			unlinkat(tmpdir, d->tmpname, 0);
			continue;
		}
		d->written = 1;
		written++;
	}
	for (i = 0; i < n; i++)
		if (v[i].written)
			sv_durable_at(&d, tmpdir, v[i].tmpname, v[i].tmpname);
	if (written > 0 && sv_durable_sync(&d, &err) == -1)
		saved = err.errnum ? err.errnum : EIO;
	sv_durable_free(&d);
	for (i = 0; i < n; i++) {
		struct delivery *d = &v[i];

		if (!d->written)
			continue;
		d->written = 0;
		if (saved != 0) {
			sv_errf(&d->err, saved, "can't write '%s/tmp/%s'", what,
			    d->tmpname);
			unlinkat(tmpdir, d->tmpname, 0);
			continue;
		}
		if (sv_rename_noreplace(tmpdir, d->tmpname, newdir, d->name) < 0) {
			sv_errf(&d->err, errno, "can't rename '%s/tmp/%s' to "
			    "'%s/%s/%s'", what, d->tmpname, what, newsub, d->name);
			unlinkat(tmpdir, d->tmpname, 0);
			continue;
		}
		d->ok = 1;
		published++;
	}
	if (published > 0 && fsync_dir(newdir) < 0) {
		saved = errno;
		for (i = 0; i < n; i++)
			if (v[i].ok) {
				v[i].ok = 0;
				sv_errf(&v[i].err, saved, "can't sync '%s/%s'", what,
				    newsub);
			}
		published = 0;
	}
	return published;
}

/* Everything sv_propose does before the delivery: the text to deliver. */
static char *
propose_text(struct sv_spool *s, struct sv_proposal *p, struct sv_err *e)
{
	char name[SV_ID_MAX + 1], when[64];
	struct timespec now;
	json_t *j;
	char *text;
	struct sv_proposal check;
	int r;

	if (p->id == NULL) {
		if (sv_unique_name(name, sizeof name, e) < 0)
			return NULL;
		p->id = sv_xstrdup(name);
	}
	if (p->arrival_timestamp == NULL) {
		clock_gettime(CLOCK_REALTIME, &now);
		if (sv_iso8601(&now, when, sizeof when) == NULL) {
			sv_errf(e, EOVERFLOW, "can't format the time");
			return NULL;
		}
		p->arrival_timestamp = sv_xstrdup(when);
	}
	if (p->bottle_slug == NULL)
		p->bottle_slug = sv_xstrdup(s->slug);
	/* The loader's checks are the one validator, for writing too. */
	j = sv_proposal_json(p);
	if (j == NULL) {
		sv_errf(e, EILSEQ, "can't write proposal '%s': a field is "
		    "not valid UTF-8", p->id);
		return NULL;
	}
	r = sv_proposal_from_json(j, "proposal", NULL, &check, e);
	json_decref(j);
	if (r < 0)
		return NULL;
	if (strcmp(p->bottle_slug, s->slug) != 0) {
		sv_errf(e, 0, "can't propose: bottle_slug '%s' is not "
		    "this spool's '%s'", p->bottle_slug, s->slug);
		sv_proposal_free(&check);
		return NULL;
	}
	/* What the loader made of it: a time in UTC, whatever was given. */
	text = sv_proposal_dump(&check);
	sv_proposal_free(&check);
	if (text == NULL)
		sv_errf(e, ENOMEM, "can't write proposal '%s'", p->id);
	return text;
}

int
sv_propose(struct sv_spool *s, struct sv_proposal *p, struct sv_err *e)
{
	char *text = propose_text(s, p, e);
	int r;

	if (text == NULL)
		return -1;
	r = sv_deliver(s->ptmp, s->pnew, p->id, text, strlen(text),
	    "proposals", e);
	free(text);
	return r;
}

int
sv_propose_decided(struct sv_spool *s, struct sv_proposal *p,
    struct sv_response *r, struct sv_err *e)
{
	char *text = propose_text(s, p, e), tmpname[SV_ID_MAX + 1];
	int rc;

	if (text == NULL)
		return -1;
	rc = deliver_spare(s, "proposal", s->ptmp, p->id, s->pnew, p->id, text,
	    strlen(text), "proposals", e);
	free(text);
	if (rc < 0)
		return -1;
	if (r->proposal_id == NULL)
		r->proposal_id = sv_xstrdup(p->id);
	if ((text = sv_response_dump(r)) == NULL)
		return sv_errf(e, EILSEQ, "can't write the response to %s: a "
		    "field is not valid UTF-8", p->id);
	/* An operator's response may have won the name meanwhile. */
	if (sv_unique_name(tmpname, sizeof tmpname, e) == 0)
		rc = deliver_spare(s, "response", s->rtmp, tmpname, s->rnew,
		    p->id, text, strlen(text), "responses", e);
	else
		rc = -1;
	free(text);
	if (rc < 0 && e->errnum == EEXIST)
		already_decided(p->id, e);
	return rc < 0 ? -2 : 0;
}

size_t
sv_propose_many(struct sv_spool *s, struct sv_proposal **v, size_t n,
    int *ok, struct sv_err *errs)
{
	struct delivery *d = sv_xmalloc((n ? n : 1) * sizeof *d);
	char **text = sv_xmalloc((n ? n : 1) * sizeof *text);
	size_t k = 0, filed;

	for (size_t i = 0; i < n; i++) {
		ok[i] = 0;
		if ((text[i] = propose_text(s, v[i], &errs[i])) == NULL)
			continue;
		d[k].tmpname = d[k].name = v[i]->id;
		d[k].data = text[i];
		d[k].len = strlen(text[i]);
		k++;
	}
	filed = deliver_many(s->ptmp, s->pnew, d, k, "proposals", "new");
	for (size_t i = 0, j = 0; i < n; i++) {
		if (text[i] == NULL)
			continue;
		ok[i] = d[j].ok;
		if (!d[j].ok)
			errs[i] = d[j].err;
		j++;
		free(text[i]);
	}
	free(text);
	free(d);
	return filed;
}

static int
valid_flags(const char *f)
{
	for (; *f; f++)
		if (!((*f >= 'A' && *f <= 'Z') || (*f >= 'a' && *f <= 'z')))
			return 0;
	return 1;
}

/* Merge flag sets a and b into out, unique and in ASCII order. */
static void
merge_flags(const char *a, const char *b, char *out, size_t n)
{
	unsigned char seen[128] = {0};
	size_t k = 0;
	int c;

	for (; *a; a++)
		seen[(unsigned char)*a & 0x7f] = 1;
	for (; *b; b++)
		seen[(unsigned char)*b & 0x7f] = 1;
	for (c = 'A'; c <= 'z' && k + 1 < n; c++)
		if (seen[c])
			out[k++] = (char)c;
	out[k] = '\0';
}

int
sv_parse_name(const char *name, char *id, size_t idn, char *flags, size_t fn)
{
	const char *colon = strchr(name, ':');
	size_t idlen = colon ? (size_t)(colon - name) : strlen(name);
	char tmp[SV_ID_MAX + 1];

	if (idlen == 0 || idlen > SV_ID_MAX || idlen + 1 > idn)
		return -1;
	memcpy(tmp, name, idlen);
	tmp[idlen] = '\0';
	if (sv_valid_id(tmp, NULL) < 0)
		return -1;
	if (colon) {
		if (strncmp(colon, ":2,", 3) != 0 || !valid_flags(colon + 3) ||
		    strlen(colon + 3) >= fn)
			return -1;
		merge_flags(colon + 3, "", flags, fn);
	} else {
		if (fn < 1)
			return -1;
		flags[0] = '\0';
	}
	memcpy(id, tmp, idlen + 1);
	return 0;
}

/*
 * Does dirfd/name exist?  1 for a regular file, 0 when absent, -1 (with a
 * message) when something else sits there: it is refused, not followed.
 */
static int
probe(int dirfd, const char *name, const char *label, struct sv_err *e)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return sv_errf(e, errno, "can't stat '%s/%s'", label, name);
	}
	if (!S_ISREG(st.st_mode))
		return sv_errf(e, 0, "'%s/%s' is not a regular file, refused",
		    label, name);
	return 1;
}

/* Flag sets a proposal in cur/ most likely has, most likely first. */
static const char *const likely_flags[] = {
	"S", "RS", "ST", "RST", "", "R", "T", "RT",
};

static void
fill_entry(struct sv_entry *out, const char *id, enum sv_where where,
    const char *flags)
{
	memset(out, 0, sizeof *out);
	snprintf(out->id, sizeof out->id, "%s", id);
	out->where = where;
	snprintf(out->flags, sizeof out->flags, "%s", flags);
	if (where == SV_NEW)
		snprintf(out->name, sizeof out->name, "%s", id);
	else
		snprintf(out->name, sizeof out->name, "%s:2,%s", id, flags);
}

/*
 * Scan cur/ for ID:2,* with flags no probe expected. 1/0/-1; only a
 * regular file counts, and something else there is an error.
 */
static int
scan_cur(int dirfd, const char *label, const char *id, struct sv_entry *out,
    struct sv_err *e)
{
	char pid[SV_ID_MAX + 1], flags[16];
	size_t idlen = strlen(id);
	struct dirent *d;
	int fd, found = 0;
	DIR *dir;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		sv_errf(e, errno, "can't read '%s'", label);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		if (strncmp(d->d_name, id, idlen) != 0 || d->d_name[idlen] != ':')
			continue;
		if (sv_parse_name(d->d_name, pid, sizeof pid, flags,
		    sizeof flags) < 0 || strcmp(pid, id) != 0)
			continue;
		if (d->d_type != DT_REG && d->d_type != DT_UNKNOWN) {
			sv_errf(e, 0, "'%s/%s' is not a regular file, refused",
			    label, d->d_name);
			found = -1;
			break;
		}
		/* parse_name bounds it: id, ":2,", under 16 flags. */
		fill_entry(out, id, SV_CUR, flags);
		memcpy(out->name, d->d_name, strlen(d->d_name) + 1);
		found = 1;
		break;
	}
	closedir(dir);
	return found;
}

int
sv_find_proposal(struct sv_spool *s, const char *id, struct sv_entry *out,
    struct sv_err *e)
{
	char name[SV_ID_MAX + 32];
	size_t i;
	int attempt, r;

	memset(out, 0, sizeof *out);
	if (sv_valid_id(id, e) < 0)
		return -1;
	/*
	 * A proposal moves new/ -> cur/ and between flag sets while we look;
	 * each move is one rename, so a second round finds it.
	 */
	for (attempt = 0; attempt < 3; attempt++) {
		r = probe(s->pnew, id, "proposals/new", e);
		if (r != 0) {
			if (r > 0)
				fill_entry(out, id, SV_NEW, "");
			return r;
		}
		for (i = 0; i < sizeof likely_flags / sizeof likely_flags[0]; i++) {
			snprintf(name, sizeof name, "%s:2,%s", id, likely_flags[i]);
			r = probe(s->pcur, name, "proposals/cur", e);
			if (r != 0) {
				if (r > 0)
					fill_entry(out, id, SV_CUR, likely_flags[i]);
				return r;
			}
		}
		r = scan_cur(s->pcur, "proposals/cur", id, out, e);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Errors whose errno callers test, with a message that says it all. */
static int
errf_code(struct sv_err *e, int code, const char *msg, const char *arg)
{
	char *ea = sv_escape(arg, strnlen(arg, 64), 0);

	sv_errf(e, 0, msg, ea);
	free(ea);
	if (e)
		e->errnum = code;
	return -1;
}

static int
no_proposal(const char *id, struct sv_err *e)
{
	return errf_code(e, ENOENT, "no proposal '%s'", id);
}

/* Add flags to proposal `id`; `sync`: fsync proposals/cur after. */
static int
add_flags(struct sv_spool *s, const char *id, const char *flags, int sync,
    struct sv_err *e)
{
	struct sv_entry ent;
	char merged[16], to[SV_ID_MAX + 32];
	int attempt, r;

	if (!valid_flags(flags) || strlen(flags) >= sizeof merged)
		return sv_errf(e, 0, "invalid maildir flags '%s'", flags);
	for (attempt = 0; attempt < 5; attempt++) {
		r = sv_find_proposal(s, id, &ent, e);
		if (r < 0)
			return -1;
		if (r == 0)
			return no_proposal(id, e);
		merge_flags(ent.flags, flags, merged, sizeof merged);
		if (ent.where == SV_CUR && strcmp(merged, ent.flags) == 0)
			return 0;
		snprintf(to, sizeof to, "%s:2,%s", id, merged);
		if (sv_rename_noreplace(ent.where == SV_NEW ? s->pnew : s->pcur,
		    ent.name, s->pcur, to) == 0)
			return sync && fsync_dir(s->pcur) < 0 ?
			    sv_errf(e, errno, "can't sync 'proposals/cur'") : 0;
		/* Someone else moved it meanwhile: look again. */
		if (errno != ENOENT && errno != EEXIST)
			return sv_errf(e, errno, "can't rename 'proposals/%s/%s' "
			    "to 'proposals/cur/%s'", ent.where == SV_NEW ? "new" :
			    "cur", ent.name, to);
	}
	return sv_errf(e, EAGAIN, "can't flag proposal '%s': it keeps moving", id);
}

int
sv_add_flags(struct sv_spool *s, const char *id, const char *flags,
    struct sv_err *e)
{
	return add_flags(s, id, flags, 1, e);
}

int
sv_add_flags_nosync(struct sv_spool *s, const char *id, const char *flags,
    struct sv_err *e)
{
	return add_flags(s, id, flags, 0, e);
}

int
sv_mark_seen(struct sv_spool *s, const char *id, struct sv_err *e)
{
	struct sv_entry ent;
	int r;

	r = sv_find_proposal(s, id, &ent, e);
	if (r < 0)
		return -1;
	if (r == 0)
		return no_proposal(id, e);
	if (ent.where == SV_CUR)
		return 0;
	return sv_add_flags(s, id, "S", e);
}

/*
 * The maildir flag letters, in ASCII order.  A response archived in
 * responses/cur is ID:2,FLAGS with FLAGS any of these, in this order:
 * the daemon writes ID:2,S; a mail reader may add or drop the others.
 */
static const char archive_letters[] = "DFPRST";

int
sv_archived_name(const char *name)
{
	const char *colon = strchr(name, ':'), *f, *at = archive_letters;

	if (colon == NULL || strncmp(colon, ":2,", 3) != 0)
		return 0;
	for (f = colon + 3; *f; f++) {
		while (*at && *at != *f)
			at++;
		if (*at == '\0')
			return 0;	/* not a letter of ours, or out of order */
		at++;
	}
	return 1;
}

int
sv_decided(struct sv_spool *s, const char *id, struct sv_err *e)
{
	const size_t nl = sizeof archive_letters - 1;
	char name[SV_ID_MAX + 16], *f;
	struct sv_entry ent;
	struct stat st;
	int r;

	if (sv_valid_id(id, e) < 0)
		return -1;
	/* Anything at responses/new/ID blocks a decision: count it. */
	if (fstatat(s->rnew, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (errno != ENOENT)
		return sv_errf(e, errno, "can't stat 'responses/new/%s'", id);
	/*
	 * An archived response, under any of its 64 names: a look-up each,
	 * where a scan of responses/cur would cost as much as the history.
	 * ID:2,S (the daemon's) first.
	 */
	f = name + snprintf(name, sizeof name, "%s:2,", id);
	for (unsigned i = 0; i < 1u << nl; i++) {
		unsigned set = i ^ (1u << 1);	/* 0 -> S alone (bit 1 = S) */
		size_t k = 0;

		for (size_t b = 0; b < nl; b++)
			if (set & (1u << (nl - 1 - b)))
				f[k++] = archive_letters[b];
		f[k] = '\0';
		if (fstatat(s->rcur, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return 1;
		if (errno != ENOENT)
			return sv_errf(e, errno, "can't stat 'responses/cur/%s'",
			    name);
	}
	r = sv_find_proposal(s, id, &ent, e);
	if (r < 0)
		return -1;
	return r > 0 && strchr(ent.flags, 'R') != NULL;
}

static int
already_decided(const char *id, struct sv_err *e)
{
	return errf_code(e, EEXIST, "proposal %s was already decided", id);
}

int
sv_respond(struct sv_spool *s, const struct sv_response *r, struct sv_err *e)
{
	char tmpname[SV_ID_MAX + 1];
	struct sv_entry ent;
	const char *id = r->proposal_id;
	char *text;
	int rc;

	if (id == NULL)
		return sv_errf(e, 0, "can't respond: the response has no proposal_id");
	if (r->status == SV_NONE)
		return sv_errf(e, 0, "can't respond to %s: no status", id);
	rc = sv_find_proposal(s, id, &ent, e);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return no_proposal(id, e);
	rc = sv_decided(s, id, e);
	if (rc < 0)
		return -1;
	if (rc > 0)
		return already_decided(id, e);
	text = sv_response_dump(r);
	if (text == NULL)
		return sv_errf(e, EILSEQ, "can't write the response to %s: a field "
		    "is not valid UTF-8", id);
	/*
	 * The tmp name is unique so racing deciders never meet in tmp/; they
	 * meet at the no-replace rename into new/ID, where one of them wins.
	 */
	if (sv_unique_name(tmpname, sizeof tmpname, e) < 0) {
		free(text);
		return -1;
	}
	rc = deliver_as(s->rtmp, tmpname, s->rnew, id, text, strlen(text),
	    "responses", "new", e);
	free(text);
	if (rc < 0 && e && e->errnum == EEXIST)
		return already_decided(id, e);
	return rc;
}

size_t
sv_respond_many(struct sv_spool *s, const struct sv_response **v, size_t n,
    int *ok, struct sv_err *errs)
{
	struct delivery *d = sv_xmalloc((n ? n : 1) * sizeof *d);
	char **text = sv_xmalloc((n ? n : 1) * sizeof *text);
	char (*tmp)[SV_ID_MAX + 1] = sv_xmalloc((n ? n : 1) * sizeof *tmp);
	struct sv_entry ent;
	size_t k = 0, done;
	int rc;

	for (size_t i = 0; i < n; i++) {
		const char *id = v[i]->proposal_id;

		ok[i] = 0;
		text[i] = NULL;
		if (id == NULL) {
			sv_errf(&errs[i], 0, "can't respond: the response has no "
			    "proposal_id");
			continue;
		}
		if (v[i]->status == SV_NONE) {
			sv_errf(&errs[i], 0, "can't respond to %s: no status", id);
			continue;
		}
		if ((rc = sv_find_proposal(s, id, &ent, &errs[i])) <= 0) {
			if (rc == 0)
				no_proposal(id, &errs[i]);
			continue;
		}
		if ((rc = sv_decided(s, id, &errs[i])) != 0) {
			if (rc > 0)
				already_decided(id, &errs[i]);
			continue;
		}
		if ((text[i] = sv_response_dump(v[i])) == NULL) {
			sv_errf(&errs[i], EILSEQ, "can't write the response to %s: "
			    "a field is not valid UTF-8", id);
			continue;
		}
		if (sv_unique_name(tmp[k], sizeof tmp[k], &errs[i]) < 0) {
			free(text[i]);
			text[i] = NULL;
			continue;
		}
		d[k].tmpname = tmp[k];
		d[k].name = id;
		d[k].data = text[i];
		d[k].len = strlen(text[i]);
		k++;
	}
	done = deliver_many(s->rtmp, s->rnew, d, k, "responses", "new");
	for (size_t i = 0, j = 0; i < n; i++) {
		if (text[i] == NULL)
			continue;
		ok[i] = d[j].ok;
		if (!d[j].ok) {
			errs[i] = d[j].err;
			if (errs[i].errnum == EEXIST)
				already_decided(v[i]->proposal_id, &errs[i]);
		}
		j++;
		free(text[i]);
	}
	free(tmp);
	free(text);
	free(d);
	return done;
}

/* A growing array of ids, sorted later, for bsearch. */
struct idset {
	char (*v)[SV_ID_MAX + 1];
	size_t n, cap;
};

static void
idset_add(struct idset *set, const char *id)
{
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 256;
		set->v = sv_xrealloc(set->v, set->cap * sizeof *set->v);
	}
	memcpy(set->v[set->n++], id, strlen(id) + 1);
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct sv_entry *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	/* Same id in new/ and cur/ (moved during the scan): cur/ first. */
	return c ? c : (int)y->where - (int)x->where;
}

/*
 * Call fn for every valid name in dirfd that is a regular file, by
 * d_type (no per-file stat except on file systems without d_type).
 */
static int
each_name(int dirfd, const char *label,
    void (*fn)(const char *name, const char *id, const char *flags, void *),
    void *arg, struct sv_err *e)
{
	char id[SV_ID_MAX + 1], flags[16];
	struct dirent *d;
	struct stat st;
	DIR *dir;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		sv_errf(e, errno, "can't read '%s'", label);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	errno = 0;
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		if (d->d_type == DT_UNKNOWN) {
			if (fstatat(dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
		} else if (d->d_type != DT_REG) {
			continue;
		}
		if (sv_parse_name(d->d_name, id, sizeof id, flags,
		    sizeof flags) < 0)
			continue;
		fn(d->d_name, id, flags, arg);
		errno = 0;
	}
	if (errno != 0) {
		sv_errf(e, errno, "can't read '%s'", label);
		closedir(dir);
		return -1;
	}
	closedir(dir);
	return 0;
}

struct collect {
	struct sv_entry *v;
	size_t n, cap;
	enum sv_where where;
	struct idset *ids;
};

static void
collect_entry(const char *name, const char *id, const char *flags, void *arg)
{
	struct collect *c = arg;
	struct sv_entry *ent;

	/* In new/ a proposal has no flags yet. */
	if (c->where == SV_NEW && strchr(name, ':'))
		return;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->v = sv_xrealloc(c->v, c->cap * sizeof *c->v);
	}
	ent = &c->v[c->n++];
	memcpy(ent->id, id, strlen(id) + 1);
	ent->where = c->where;
	ent->gone = 0;
	memcpy(ent->flags, flags, strlen(flags) + 1);
	memcpy(ent->name, name, strlen(name) + 1);
}

static void
collect_id(const char *name, const char *id, const char *flags, void *arg)
{
	(void)name;
	(void)flags;
	idset_add(arg, id);
}

static void
collect_archived(const char *name, const char *id, const char *flags,
    void *arg)
{
	(void)flags;
	if (sv_archived_name(name))
		idset_add(arg, id);
}

/* Every proposal, decided or not, sorted by id, one entry per id. */
static int
list_all(struct sv_spool *s, struct collect *c, struct sv_err *e)
{
	size_t i, k;

	memset(c, 0, sizeof *c);
	/* new/ first: a proposal moving to cur/ meanwhile is seen twice, not missed. */
	c->where = SV_NEW;
	if (each_name(s->pnew, "proposals/new", collect_entry, c, e) < 0)
		goto fail;
	c->where = SV_CUR;
	if (each_name(s->pcur, "proposals/cur", collect_entry, c, e) < 0)
		goto fail;
	if (c->n > 1)
		qsort(c->v, c->n, sizeof *c->v, cmp_entry);
	for (i = k = 0; i < c->n; i++)
		if (k == 0 || strcmp(c->v[k - 1].id, c->v[i].id) != 0)
			c->v[k++] = c->v[i];
	c->n = k;
	return 0;
fail:
	free(c->v);
	c->v = NULL;
	return -1;
}

int
sv_list_pending(struct sv_spool *s, struct sv_entry **out, size_t *n,
    struct sv_err *e)
{
	struct idset answered = {0};
	struct collect c;
	size_t i, k;

	*out = NULL;
	*n = 0;
	if (list_all(s, &c, e) < 0)
		return -1;
	if (each_name(s->rnew, "responses/new", collect_id, &answered, e) < 0 ||
	    each_name(s->rcur, "responses/cur", collect_archived, &answered,
	    e) < 0) {
		free(c.v);
		free(answered.v);
		return -1;
	}
	if (answered.n > 1)
		qsort(answered.v, answered.n, sizeof *answered.v, cmp_id);
	for (i = k = 0; i < c.n; i++) {
		if (strchr(c.v[i].flags, 'R'))
			continue;
		if (answered.n && bsearch(c.v[i].id, answered.v, answered.n,
		    sizeof *answered.v, cmp_id))
			continue;
		if (k != i)
			c.v[k] = c.v[i];
		k++;
	}
	free(answered.v);
	if (k == 0) {
		free(c.v);
		c.v = NULL;
	}
	if (k > 0 && sv_gone_apply(s, c.v, k, e) == -1) {
		free(c.v);
		return -1;
	}
	*out = c.v;
	*n = k;
	return 0;
}

int
sv_list_unreplied(struct sv_spool *s, struct sv_entry **out, size_t *n,
    struct sv_err *e)
{
	struct collect c;
	size_t i, k;

	*out = NULL;
	*n = 0;
	if (list_all(s, &c, e) < 0)
		return -1;
	for (i = k = 0; i < c.n; i++)
		if (strchr(c.v[i].flags, 'R') == NULL)
			c.v[k++] = c.v[i];
	if (k == 0) {
		free(c.v);
		c.v = NULL;
	}
	*out = c.v;
	*n = k;
	return 0;
}

void
sv_entries_free(struct sv_entry *v)
{
	free(v);
}

/* The 16 hex digits after the 'R' of a unique name, or NULL. */
static const char *
random_part(const char *id)
{
	const char *dot = strchr(id, '.'), *r;

	if (dot == NULL || dot[1] != 'M')
		return NULL;
	r = strchr(dot, 'R');
	return r ? r + 1 : NULL;
}

static int
hex_prefix(const char *hex, const char *arg, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = arg[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) ||
		    hex[i] != c)
			return 0;
	}
	return 1;
}

int
sv_resolve_id(struct sv_spool *s, const char *arg, char *id, size_t n,
    struct sv_err *e)
{
	struct sv_entry ent;
	struct collect c;
	size_t len = strlen(arg), i, matches = 0, which = 0;
	const char *rnd;
	char *ea;
	int r;

	if (len == 0)
		return errf_code(e, ENOENT, "no proposal matches '%s'", "");
	if (sv_valid_id(arg, NULL) == 0) {
		r = sv_find_proposal(s, arg, &ent, e);
		if (r < 0)
			return -1;
		if (r > 0) {
			if (strlen(ent.id) + 1 > n)
				return sv_errf(e, ENAMETOOLONG, "can't resolve '%s'",
				    ent.id);
			memcpy(id, ent.id, strlen(ent.id) + 1);
			return 0;
		}
	}
	ea = sv_escape(arg, len > 64 ? 64 : len, 0);
	if (len > SV_ID_MAX || sv_valid_id(arg, NULL) < 0) {
		errf_code(e, ENOENT, "no proposal matches '%s'", arg);
		free(ea);
		return -1;
	}
	if (list_all(s, &c, e) < 0) {
		free(ea);
		return -1;
	}
	for (i = 0; i < c.n; i++) {
		if (strncmp(c.v[i].id, arg, len) == 0 ||
		    (len >= 4 && len <= 16 && (rnd = random_part(c.v[i].id)) &&
		    strnlen(rnd, 16) >= len && hex_prefix(rnd, arg, len))) {
			matches++;
			which = i;
		}
	}
	if (matches == 0)
		errf_code(e, ENOENT, "no proposal matches '%s'", arg);
	else if (matches > 1)
		sv_errf(e, 0, "'%s' is ambiguous: %zu proposals match", ea, matches);
	else if (strlen(c.v[which].id) + 1 > n)
		sv_errf(e, ENAMETOOLONG, "can't resolve '%s'", ea);
	free(ea);
	if (matches != 1 || strlen(c.v[which].id) + 1 > n) {
		free(c.v);
		return -1;
	}
	memcpy(id, c.v[which].id, strlen(c.v[which].id) + 1);
	free(c.v);
	return 0;
}

static int
clean_dir(int dirfd, const char *label, time_t cutoff, struct sv_err *e)
{
	struct dirent *d;
	struct stat st;
	DIR *dir;
	int fd, count = 0;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		sv_errf(e, errno, "can't read '%s'", label);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* unlinkat removes a planted symlink itself, never its target. */
		if (S_ISDIR(st.st_mode) || st.st_mtime >= cutoff)
			continue;
		if (unlinkat(dirfd, d->d_name, 0) < 0) {
			if (errno == ENOENT)
				continue;
			sv_errf(e, errno, "can't remove '%s/%s'", label, d->d_name);
			closedir(dir);
			return -1;
		}
		count++;
	}
	closedir(dir);
	return count;
}

int
sv_clean_tmp(struct sv_spool *s, time_t max_age, struct sv_err *e)
{
	time_t cutoff = time(NULL) - max_age;
	int a, b;

	a = clean_dir(s->ptmp, "proposals/tmp", cutoff, e);
	if (a < 0)
		return -1;
	b = clean_dir(s->rtmp, "responses/tmp", cutoff, e);
	if (b < 0)
		return -1;
	return a + b;
}

int
sv_refuse_response(struct sv_spool *s, const char *name, const char *reason,
    char *newname, size_t n, struct sv_err *e)
{
	/* NAME (cut to 200 bytes) ~SEC.USEC .err: within NAME_MAX. */
	char bad[240], err[sizeof bad + 4], tmpname[SV_ID_MAX + 1];
	struct timespec now;
	char *line, *text;
	int rc;

	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/'))
		return sv_errf(e, EINVAL, "can't refuse 'responses/new/%s': not a "
		    "file name", name);
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(bad, sizeof bad, "%.200s~%lld.%06ld", name,
	    (long long)now.tv_sec, now.tv_nsec / 1000);
	snprintf(err, sizeof err, "%s.err", bad);
	if (strlen(bad) + 1 > n)
		return sv_errf(e, ENAMETOOLONG, "can't refuse 'responses/new/%s'",
		    name);
	/*
	 * The reason first: once the response is in bad/, its .err is
	 * already there to say why.  One line, control characters escaped.
	 */
	line = sv_escape(reason, strlen(reason), 0);
	text = sv_xasprintf("%s\n", line);
	free(line);
	if (sv_unique_name(tmpname, sizeof tmpname, e) < 0) {
		free(text);
		return -1;
	}
	rc = deliver_as(s->rtmp, tmpname, s->rbad, err, text, strlen(text),
	    "responses", "bad", e);
	free(text);
	if (rc < 0)
		return -1;
	if (sv_rename_noreplace(s->rnew, name, s->rbad, bad) < 0) {
		rc = errno;
		unlinkat(s->rbad, err, 0);
		return sv_errf(e, rc, "can't rename 'responses/new/%s' to "
		    "'responses/bad/%s'", name, bad);
	}
	if (fsync_dir(s->rbad) < 0)
		return sv_errf(e, errno, "can't sync 'responses/bad'");
	memcpy(newname, bad, strlen(bad) + 1);
	return 0;
}
