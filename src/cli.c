/*
 * cli.c: what the operator tools in spool-tools/ share.
 *
 * Reading operands (arguments, or ids piped in one per line), finding the
 * bottle that holds a proposal, the supervise-list line format, the
 * operator's editor, and the one routine that turns an operator's
 * decision into a response file.
 * Errors are returned as values, and the programs print them; three
 * routines print for the programs, as their comments in supervise.h say:
 * sv_cli_decide_print (the output of supervise-approve and
 * supervise-reject), sv_cli_check_slugs, and sv_cli_operator's notice.
 */
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

int
sv_cli_loop(int argc, char **argv, int nul,
    int (*fn)(const char *arg, void *ctx), void *ctx, struct sv_err *e)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int delim = nul ? '\0' : '\n';
	int failed = 0;

	e->errnum = 0;
	e->msg[0] = '\0';
	if (argc > 0) {
		for (int i = 0; i < argc; i++)
			if (fn(argv[i], ctx) < 0)
				failed++;
		return failed;
	}
	if (isatty(STDIN_FILENO))
		return -1;
	while ((len = getdelim(&line, &cap, delim, stdin)) != -1) {
		/* The id is the first field of a supervise-list line. */
		line[strcspn(line, nul ? "\t" : "\t\n")] = '\0';
		if (*line == '\0')
			continue;
		if (fn(line, ctx) < 0)
			failed++;
	}
	if (ferror(stdin)) {
		sv_errf(e, errno, "can't read 'stdin'");
		failed++;
	}
	free(line);
	return failed;
}

int
sv_cli_decide_print(const char **args, size_t n, enum sv_status status,
    const char *notes, const char *final_file, int nul, const char *verb)
{
	struct sv_cli_decision *d = sv_xmalloc((n ? n : 1) * sizeof *d);
	int failed = 0;

	for (size_t i = 0; i < n; i++)
		d[i].arg = args[i];
	sv_cli_decide_many(d, n, status, notes, final_file);
	for (size_t i = 0; i < n; i++) {
		if (!d[i].ok) {
			char *earg = sv_escape(d[i].arg, strlen(d[i].arg), 0);

			sv_warnx("can't %s '%s': %s", verb, earg, d[i].err.msg);
			free(earg);
			failed++;
			continue;
		}
		printf("%s%c", d[i].path, nul ? '\0' : '\n');
		free(d[i].path);
	}
	free(d);
	if (fflush(stdout) == EOF) {
		sv_warnx("can't write 'stdout': %s", strerror(errno));
		failed++;
	}
	return failed;
}

/*
 * Arguments, or stdin's ids, in batches: every argument at once (in
 * chunks of SV_CLI_BATCH), and from stdin whatever lines have arrived,
 * without waiting for more (so a stream, supervise-watch | ..., is
 * decided as it comes).  fn returns how many of its batch failed.
 */
#define SV_CLI_BATCH 256

struct linein {
	char buf[65536];
	size_t start, end;
	int eof, error;
};

/* More input without blocking? */
static int
more_ready(struct linein *in)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

	if (in->start < in->end)
		return 1;
	return !in->eof && poll(&pfd, 1, 0) == 1;
}

/* The next line into *line (malloc'd); 0 at the end of the input. */
static int
next_line(struct linein *in, int delim, char **line)
{
	size_t len = 0, cap = 0;
	char *out = NULL;

	for (;;) {
		char *p;
		size_t k;
		ssize_t r;

		if (in->start < in->end) {
			p = memchr(in->buf + in->start, delim, in->end - in->start);
			k = p ? (size_t)(p - (in->buf + in->start)) :
			    in->end - in->start;
			if (len + k + 1 > cap) {
				cap = len + k + 64;
				out = sv_xrealloc(out, cap);
			}
			memcpy(out + len, in->buf + in->start, k);
			len += k;
			in->start += k + (p != NULL);
			if (p != NULL)
				break;
			continue;
		}
		if (in->eof)
			break;
		r = read(STDIN_FILENO, in->buf, sizeof in->buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			in->eof = 1;
			in->error = r < 0 ? errno : 0;
			continue;
		}
		in->start = 0;
		in->end = (size_t)r;
	}
	if (out == NULL)
		return 0;
	out[len] = '\0';
	*line = out;
	return 1;
}

int
sv_cli_loop_many(int argc, char **argv, int nul,
    int (*fn)(const char **args, size_t n, void *ctx), void *ctx,
    struct sv_err *e)
{
	struct linein *in;
	const char **v;
	char *line, **own;
	size_t n = 0;
	int delim = nul ? '\0' : '\n', failed = 0;

	e->errnum = 0;
	e->msg[0] = '\0';
	if (argc > 0) {
		for (int i = 0; i < argc; i += SV_CLI_BATCH)
			failed += fn((const char **)argv + i, argc - i < SV_CLI_BATCH ?
			    (size_t)(argc - i) : SV_CLI_BATCH, ctx);
		return failed;
	}
	if (isatty(STDIN_FILENO))
		return -1;
	in = sv_xmalloc(sizeof *in);
	in->start = in->end = 0;
	in->eof = in->error = 0;
	v = sv_xmalloc(SV_CLI_BATCH * sizeof *v);
	own = sv_xmalloc(SV_CLI_BATCH * sizeof *own);
	for (;;) {
		int got = next_line(in, delim, &line);

		if (got) {
			/* The id is the first field of a supervise-list line. */
			line[strcspn(line, nul ? "\t" : "\t\n")] = '\0';
			if (*line == '\0') {
				free(line);
			} else {
				v[n] = own[n] = line;
				n++;
			}
		}
		if (n > 0 && (!got || n == SV_CLI_BATCH || !more_ready(in))) {
			failed += fn(v, n, ctx);
			while (n > 0)
				free(own[--n]);
		}
		if (!got)
			break;
	}
	if (in->error) {
		sv_errf(e, in->error, "can't read 'stdin'");
		failed++;
	}
	free(in);
	free(v);
	free(own);
	return failed;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
sv_cli_bottles(char ***slugs, size_t *n, struct sv_err *e)
{
	char *path = sv_xasprintf("%s/queue", sv_root());
	struct sv_err ignored;
	struct dirent *d;
	struct stat st;
	size_t len = 0, cap = 8;
	char **v;
	DIR *dir;
	int fd;

	*slugs = NULL;
	*n = 0;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			free(path);
			*slugs = sv_xmalloc(sizeof *v);
			**slugs = NULL;
			return 0;
		}
		sv_errf(e, errno, "can't open '%s'", path);
		free(path);
		return -1;
	}
	if (!(dir = fdopendir(fd))) {
		sv_errf(e, errno, "can't read '%s'", path);
		close(fd);
		free(path);
		return -1;
	}
	v = sv_xmalloc(cap * sizeof *v);
	errno = 0;
	while ((d = readdir(dir))) {
		/* Anything that is not a valid slug is not a bottle (dot files). */
		if (sv_valid_slug(d->d_name, &ignored) < 0)
			continue;
		if (fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (len + 1 >= cap)
			v = sv_xrealloc(v, (cap *= 2) * sizeof *v);
		v[len++] = sv_xstrdup(d->d_name);
		errno = 0;
	}
	if (errno) {
		sv_errf(e, errno, "can't read '%s'", path);
		v[len] = NULL;
		sv_cli_strv_free(v);
		closedir(dir);
		free(path);
		return -1;
	}
	closedir(dir);
	free(path);
	v[len] = NULL;
	qsort(v, len, sizeof *v, cmp_str);
	*slugs = v;
	*n = len;
	return 0;
}

int
sv_cli_check_slugs(int argc, char **argv, struct sv_err *e)
{
	struct sv_err why;

	for (int i = 0; i < argc; i++) {
		if (sv_valid_slug(argv[i], &why) < 0) {
			char *eslug = sv_escape(argv[i], strlen(argv[i]), 0);

			sv_errf(e, 0, "'%s': %s", eslug, why.msg);
			free(eslug);
			return -1;
		}
	}
	return 0;
}

void
sv_cli_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/*
 * Resolve arg to an id in the bottles `slugs`.  A bottle that can't be
 * opened is skipped (it can't hold the proposal we look for) unless it
 * is the only one asked for.
 */
static int
locate(char **slugs, size_t n, const char *idarg, struct sv_spool *s,
    char *id, size_t idn, struct sv_err *e)
{
	struct sv_spool cand;
	char candid[SV_ID_MAX + 1];
	int found = 0;

	for (size_t i = 0; i < n; i++) {
		struct sv_err oe;

		if (sv_spool_open_slug(&cand, slugs[i], 0, &oe) < 0) {
			if (n == 1) {
				*e = oe;
				return -1;
			}
			continue;
		}
		if (sv_resolve_id(&cand, idarg, candid, sizeof candid, &oe) < 0) {
			sv_spool_close(&cand);
			if (oe.errnum == ENOENT)
				continue;
			if (found)
				sv_spool_close(s);
			*e = oe;
			return -1;
		}
		if (found) {
			/* Ids are unique, so two bottles mean a short prefix. */
			sv_errf(e, 0, "'%s' is ambiguous: it matches in bottles "
			    "'%s' and '%s'", idarg, s->slug, cand.slug);
			e->errnum = EEXIST;
			sv_spool_close(&cand);
			sv_spool_close(s);
			return -1;
		}
		*s = cand;
		snprintf(id, idn, "%s", candid);
		found = 1;
	}
	if (!found) {
		sv_errf(e, 0, "no such proposal");
		e->errnum = ENOENT;
		return -1;
	}
	return 0;
}

int
sv_cli_open_proposal(const char *arg, struct sv_spool *s, struct sv_entry *en,
    struct sv_proposal *p, struct sv_err *e)
{
	char id[SV_ID_MAX + 1];
	char *slash = strchr(arg, '/');
	char **slugs = NULL;
	const char *idarg = arg;
	size_t n = 0;
	int rc;

	memset(p, 0, sizeof *p);
	if (slash) {
		char *slug = sv_xasprintf("%.*s", (int)(slash - arg), arg);

		idarg = slash + 1;
		if (sv_valid_slug(slug, e) < 0) {
			free(slug);
			return -1;
		}
		slugs = sv_xmalloc(2 * sizeof *slugs);
		slugs[0] = slug;
		slugs[1] = NULL;
		n = 1;
	} else if (sv_cli_bottles(&slugs, &n, e) < 0) {
		return -1;
	}
	/* Every prefix of a valid id is a valid id: this refuses paths. */
	if (sv_valid_id(idarg, e) < 0) {
		sv_cli_strv_free(slugs);
		return -1;
	}
	rc = locate(slugs, n, idarg, s, id, sizeof id, e);
	sv_cli_strv_free(slugs);
	if (rc < 0)
		return -1;
	if (sv_cli_read_proposal(s, id, en, p, e) < 0) {
		sv_spool_close(s);
		return -1;
	}
	return 0;
}

/* Read the proposal where `en` says it is; ENOENT when it moved since. */
static int
read_entry(struct sv_spool *s, const struct sv_entry *en,
    struct sv_proposal *p, struct sv_err *e)
{
	char *path;
	int dirfd, rc;

	memset(p, 0, sizeof *p);
	dirfd = en->where == SV_NEW ? s->pnew : s->pcur;
	path = sv_xasprintf("%s/proposals/%s/%s", s->path,
	    en->where == SV_NEW ? "new" : "cur", en->name);
	rc = sv_proposal_read(dirfd, en->name, path, p, e);
	if (rc == 0 && strcmp(p->id, en->id) != 0) {
		/* Else a response would be written for another id. */
		char *eid = sv_escape(p->id, strlen(p->id), 0);

		sv_errf(e, 0, "%s: id '%s' does not match the file name",
		    path, eid);
		free(eid);
		sv_proposal_free(p);
		rc = -1;
	}
	free(path);
	return rc;
}

int
sv_cli_read_proposal(struct sv_spool *s, const char *id, struct sv_entry *en,
    struct sv_proposal *p, struct sv_err *e)
{
	memset(p, 0, sizeof *p);
	/* The file may move from new/ to cur/ under us (someone ran show). */
	for (int tries = 0; ; tries++) {
		if (sv_find_proposal(s, id, en, e) < 0)
			return -1;
		if (en->where == SV_MISSING) {
			sv_errf(e, 0, "no such proposal");
			e->errnum = ENOENT;
			return -1;
		}
		if (read_entry(s, en, p, e) == 0)
			return 0;
		if (e->errnum != ENOENT || tries == 4)
			return -1;
	}
}

int
sv_cli_read_file(const char *path, size_t max, char **text, size_t *len,
    struct sv_err *e)
{
	int fd = STDIN_FILENO;
	int rc;

	*text = NULL;
	if (strcmp(path, "-") != 0 &&
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return sv_errf(e, errno, "can't open '%s'", path);
	rc = sv_read_all(fd, path, max, text, len, e);
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc < 0)
		return -1;
	if (strlen(*text) != *len) {
		free(*text);
		*text = NULL;
		return sv_errf(e, 0, "can't read '%s': contains a NUL byte",
		    path);
	}
	return 0;
}

int
sv_cli_audit_text(const char *slug, const char *relpath, char **text,
    size_t *len, struct sv_err *e)
{
	struct sv_audit *a;
	struct stat st;
	char *dir;
	int rc;

	*text = NULL;
	*len = 0;
	dir = sv_audit_dir();
	/* Reading must not create the repository as opening it would. */
	if (stat(dir, &st) < 0) {
		rc = errno == ENOENT ? 0 : sv_errf(e, errno, "can't open '%s'", dir);
		free(dir);
		return rc;
	}
	rc = sv_audit_open(&a, dir, e);
	free(dir);
	if (rc < 0)
		return -1;
	rc = sv_audit_read(a, slug, relpath, text, len, e);
	sv_audit_close(a);
	return rc;
}

int
sv_cli_config_text(const char *slug, const char *tool, char **text,
    size_t *len, struct sv_err *e)
{
	const struct sv_tool *t = sv_tool_find(tool);

	*text = NULL;
	*len = 0;
	if (!t || !t->config)
		return 0;
	return sv_cli_audit_text(slug, t->config, text, len, e);
}

const char *
sv_cli_state(const struct sv_entry *en)
{
	if (en->where == SV_NEW)
		return "new";
	if (strchr(en->flags, 'R'))
		return "decided";
	if (strchr(en->flags, 'T'))
		return "withdrawn";
	return "seen";
}

void
sv_cli_age(time_t secs, char *buf, size_t n)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, n, "%llds", (long long)secs);
	else if (secs < 3600)
		snprintf(buf, n, "%lldm", (long long)secs / 60);
	else if (secs < 86400)
		snprintf(buf, n, "%lldh", (long long)secs / 3600);
	else
		snprintf(buf, n, "%lldd", (long long)secs / 86400);
}

char *
sv_cli_list_line(const char *slug, const struct sv_entry *en,
    const struct sv_proposal *p, time_t now)
{
	char age[32] = "?";
	char *summary, *esummary, *etool, *line;
	time_t arrived;

	if (sv_time_utc(p->arrival_timestamp, &arrived, NULL) == 0)
		sv_cli_age(now - arrived, age, sizeof age);
	summary = sv_payload_summary(p->tool, p->proposed_file);
	esummary = sv_escape(summary ? summary : "",
	    summary ? strlen(summary) : 0, 0);
	etool = sv_escape(p->tool, strlen(p->tool), 0);
	line = sv_xasprintf("%s\t%s\t%s\t%s\t%s%s\t%s", en->id, slug, etool,
	    age, sv_cli_state(en), en->gone ? ",gone" : "", esummary);
	free(summary);
	free(esummary);
	free(etool);
	return line;
}

void
sv_cli_expiry(const char *arrival, long expire, time_t now, char *buf,
    size_t n)
{
	time_t at = sv_expires_at(arrival, expire);
	char in[32];

	if (at == (time_t)-1) {
		snprintf(buf, n, "-");
	} else if (at <= now) {
		snprintf(buf, n, "expiring");
	} else {
		sv_cli_age(at - now, in, sizeof in);
		snprintf(buf, n, "expires in %s", in);
	}
}

static int
cmp_row(const void *a, const void *b)
{
	const struct sv_cli_row *x = a, *y = b;
	int c = strcmp(x->arrival, y->arrival);

	return c ? c : strcmp(x->id, y->id);
}

/*
 * Reading and parsing every pending proposal is what supervise-list spends
 * its time on: with 100,000 of them, about 0.5 s of syscalls and as much
 * again in the JSON loader.  A big spool is read by a few threads, each
 * its own slice of the scan, into its own rows; nothing is shared but the
 * spool's directory descriptors, which are only read.
 */
#define LIST_THREAD_MIN	4096	/* proposals before a second thread pays */
#define LIST_THREADS_MAX 4

struct list_slice {
	struct sv_spool *s;
	const char *slug;
	time_t now;
	long expire;		/* the sidecar's --expire; 0: off */
	const struct sv_entry *v;	/* the slice of the scan */
	size_t nv;
	struct sv_cli_row *rows;	/* nv slots */
	size_t n;
	struct sv_cli_errs errs;	/* what could not be read */
};

/* One more error for the caller to print. */
static void
errs_add(struct sv_cli_errs *errs, const struct sv_err *e)
{
	errs->v = sv_xrealloc(errs->v, (errs->n + 1) * sizeof *errs->v);
	errs->v[errs->n++] = *e;
}

/* "can't list 'SLUG': why" */
static void
cant_list(struct sv_cli_errs *errs, const char *slug, const struct sv_err *why)
{
	struct sv_err e;

	sv_errf(&e, 0, "can't list '%s': %s", slug, why->msg);
	e.errnum = why->errnum;
	errs_add(errs, &e);
}

static void *
list_slice_read(void *arg)
{
	struct list_slice *ls = arg;

	for (size_t i = 0; i < ls->nv; i++) {
		struct sv_proposal p;
		struct sv_entry en;
		struct sv_err e;
		char when[40], *line;

		/*
		 * Read it where the scan saw it, without a second lookup per
		 * proposal (that is a syscall each, 100,000 of them in a big
		 * spool); only one that moved since is looked up again.
		 */
		en = ls->v[i];
		if (read_entry(ls->s, &en, &p, &e) < 0 && (e.errnum != ENOENT ||
		    sv_cli_read_proposal(ls->s, ls->v[i].id, &en, &p, &e) < 0)) {
			/* Decided and archived since the scan: not pending. */
			if (e.errnum != ENOENT)
				errs_add(&ls->errs, &e);
			continue;
		}
		ls->rows[ls->n].id = sv_xstrdup(en.id);
		ls->rows[ls->n].arrival = sv_xstrdup(p.arrival_timestamp);
		line = sv_cli_list_line(ls->slug, &en, &p, ls->now);
		sv_cli_expiry(p.arrival_timestamp, ls->expire, ls->now, when,
		    sizeof when);
		ls->rows[ls->n].line = sv_xasprintf("%s\t%s", line, when);
		free(line);
		ls->n++;
		sv_proposal_free(&p);
	}
	return NULL;
}

/* Add the rows of one bottle, and what could not be read to errs. */
static void
pending_bottle(const char *slug, time_t now, struct sv_cli_row **rows,
    size_t *n, size_t *cap, struct sv_cli_errs *errs)
{
	struct list_slice slice[LIST_THREADS_MAX];
	pthread_t tid[LIST_THREADS_MAX];
	int started[LIST_THREADS_MAX] = {0};
	struct sv_entry *v;
	struct sv_spool s;
	struct sv_err e;
	size_t nv, k, nthreads = 1, from = 0;
	long cpus, expire;

	if (sv_valid_slug(slug, &e) < 0 ||
	    sv_spool_open_slug(&s, slug, 0, &e) < 0) {
		char *eslug = sv_escape(slug, strlen(slug), 0);

		cant_list(errs, eslug, &e);
		free(eslug);
		return;
	}
	if (sv_list_pending(&s, &v, &nv, &e) < 0) {
		cant_list(errs, slug, &e);
		sv_spool_close(&s);
		return;
	}
	if (sv_spool_expire(&s, &expire, &e) < 0)
		errs_add(errs, &e);
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (nv >= LIST_THREAD_MIN && cpus > 1) {
		nthreads = cpus < LIST_THREADS_MAX ? (size_t)cpus :
		    LIST_THREADS_MAX;
		/* jansson seeds its hash function on first use: do it here,
		 * before the threads, as its manual asks. */
		json_object_seed(0);
	}
	for (k = 0; k < nthreads; k++) {
		size_t len = nv / nthreads + (k < nv % nthreads);

		slice[k] = (struct list_slice){ .s = &s, .slug = slug,
		    .now = now, .expire = expire, .v = len ? v + from : NULL,
		    .nv = len };
		slice[k].rows = sv_xmalloc((len ? len : 1) * sizeof *slice[k].rows);
		from += len;
		/* The last slice is ours; a thread that can't start, too. */
		if (k + 1 < nthreads && pthread_create(&tid[k], NULL,
		    list_slice_read, &slice[k]) == 0)
			started[k] = 1;
	}
	for (k = 0; k < nthreads; k++)
		if (!started[k])
			list_slice_read(&slice[k]);
	for (k = 0; k < nthreads; k++)
		if (started[k])
			pthread_join(tid[k], NULL);
	/* Slices in scan order, as one thread would have added them. */
	for (k = 0; k < nthreads; k++) {
		if (*n + slice[k].n > *cap) {
			*cap = *n + slice[k].n > 2 * *cap ? *n + slice[k].n :
			    2 * *cap;
			*rows = sv_xrealloc(*rows, *cap * sizeof **rows);
		}
		if (slice[k].n > 0)
			memcpy(*rows + *n, slice[k].rows,
			    slice[k].n * sizeof **rows);
		*n += slice[k].n;
		free(slice[k].rows);
		for (size_t i = 0; i < slice[k].errs.n; i++)
			errs_add(errs, &slice[k].errs.v[i]);
		free(slice[k].errs.v);
	}
	sv_entries_free(v);
	sv_spool_close(&s);
}

int
sv_cli_pending(char *const *slugs, size_t nslugs, time_t now,
    struct sv_cli_row **rows, size_t *n, struct sv_cli_errs *errs)
{
	size_t cap = 0;

	*rows = NULL;
	*n = 0;
	errs->v = NULL;
	errs->n = 0;
	for (size_t i = 0; i < nslugs; i++)
		pending_bottle(slugs[i], now, rows, n, &cap, errs);
	if (*n)
		qsort(*rows, *n, sizeof **rows, cmp_row);
	return errs->n > 0 ? -1 : 0;
}

void
sv_cli_rows_free(struct sv_cli_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].id);
		free(rows[i].arrival);
		free(rows[i].line);
	}
	free(rows);
}

/* Refuse what the daemon's strict loader would refuse in our own fields. */
static int
check_text(const char *what, const char *s, size_t max, struct sv_err *e)
{
	size_t len = strlen(s);
	json_t *j;

	if (len > max)
		return sv_errf(e, 0, "%s: longer than %zu bytes", what, max);
	if (!(j = json_stringn(s, len)))
		return sv_errf(e, 0, "%s: not valid UTF-8", what);
	json_decref(j);
	return 0;
}

/*
 * The response an operator's decision makes: r points into p, notes,
 * final_file, `by` (sv_cli_operator()) and `at`.  -1 when it is not a valid
 * decision.
 */
static int
make_response(const struct sv_proposal *p, enum sv_status status,
    const char *notes, const char *final_file, char *by, char at[64],
    struct sv_response *r, struct sv_err *e)
{
	struct timespec now;

	memset(r, 0, sizeof *r);
	clock_gettime(CLOCK_REALTIME, &now);
	r->proposal_id = p->id;
	r->status = status;
	r->notes = (char *)(notes ? notes : "");
	r->decided_by = by;
	r->decided_at = sv_iso8601(&now, at, 64);
	switch (status) {
	case SV_APPROVED:
	case SV_MODIFIED:
		/* An unchanged final file is an approval, as the daemon sees it. */
		if (final_file && strcmp(final_file, p->proposed_file) != 0) {
			if (sv_payload_check(p->tool, final_file, e) < 0)
				return -1;
			r->status = SV_MODIFIED;
			r->final_file = (char *)final_file;
		} else {
			r->status = SV_APPROVED;
			r->final_file = p->proposed_file;
		}
		break;
	case SV_REJECTED:
		break;
	default:
		return sv_errf(e, 0, "no decision given");
	}
	if (check_text("notes", r->notes, SV_TEXT_MAX, e) < 0 ||
	    check_text("decided_by", r->decided_by, SV_SHORT_MAX, e) < 0)
		return -1;
	return 0;
}

/* Whatever lost the race, the operator needs to hear this. */
static void
lost_race(struct sv_spool *s, const char *id, struct sv_err *e)
{
	struct sv_err de;

	if (sv_decided(s, id, &de) == 1) {
		sv_errf(e, 0, "already decided");
		e->errnum = EEXIST;
	}
}

char *
sv_cli_operator(void)
{
	static int said;
	char *note, *who = sv_operator(&note);

	if (note != NULL && !said++)
		sv_warnx("%s", note);
	free(note);
	return who;
}

int
sv_cli_respond(struct sv_spool *s, const struct sv_proposal *p,
    enum sv_status status, const char *notes, const char *final_file,
    char **path, struct sv_err *e)
{
	struct sv_response r;
	char at[64], *by = sv_cli_operator();
	int rc = -1;

	*path = NULL;
	if (make_response(p, status, notes, final_file, by, at, &r, e) < 0)
		goto out;
	if (sv_respond(s, &r, e) < 0) {
		lost_race(s, p->id, e);
		goto out;
	}
	*path = sv_xasprintf("%s/responses/new/%s", s->path, p->id);
	rc = 0;
out:
	free(by);
	return rc;
}

void
sv_cli_decide_many(struct sv_cli_decision *d, size_t n, enum sv_status status,
    const char *notes, const char *final_file)
{
	struct opened {
		struct sv_proposal p;
		struct sv_response r;
		char at[64];
		size_t spool;	/* index into sp */
		int have;
	} *op = sv_xmalloc((n ? n : 1) * sizeof *op);
	struct sv_spool *sp = sv_xmalloc((n ? n : 1) * sizeof *sp);
	const struct sv_response **rv = sv_xmalloc((n ? n : 1) * sizeof *rv);
	struct sv_err *errs = sv_xmalloc((n ? n : 1) * sizeof *errs);
	size_t *of = sv_xmalloc((n ? n : 1) * sizeof *of), nsp = 0;
	int *ok = sv_xmalloc((n ? n : 1) * sizeof *ok);
	char *by = sv_cli_operator();
	struct sv_entry en;

	for (size_t i = 0; i < n; i++) {
		struct sv_spool s;
		size_t k = 0;

		d[i].ok = 0;
		d[i].path = NULL;
		op[i].have = 0;
		if (sv_cli_open_proposal(d[i].arg, &s, &en, &op[i].p,
		    &d[i].err) < 0)
			continue;
		/* One open spool a bottle: a spool is eleven descriptors. */
		while (k < nsp && strcmp(sp[k].path, s.path) != 0)
			k++;
		if (k < nsp)
			sv_spool_close(&s);
		else
			sp[nsp++] = s;
		op[i].spool = k;
		if (make_response(&op[i].p, status, notes, final_file, by,
		    op[i].at, &op[i].r, &d[i].err) < 0) {
			sv_proposal_free(&op[i].p);
			continue;
		}
		op[i].have = 1;
	}
	/* The decisions for one bottle go out together. */
	for (size_t k = 0; k < nsp; k++) {
		size_t m = 0;

		for (size_t i = 0; i < n; i++)
			if (op[i].have && op[i].spool == k) {
				rv[m] = &op[i].r;
				of[m++] = i;
			}
		sv_respond_many(&sp[k], rv, m, ok, errs);
		for (size_t j = 0; j < m; j++) {
			struct sv_cli_decision *dj = &d[of[j]];

			if (ok[j]) {
				dj->ok = 1;
				dj->path = sv_xasprintf("%s/responses/new/%s",
				    sp[k].path, op[of[j]].p.id);
			} else {
				dj->err = errs[j];
				lost_race(&sp[k], op[of[j]].p.id, &dj->err);
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		if (op[i].have)
			sv_proposal_free(&op[i].p);
	for (size_t k = 0; k < nsp; k++)
		sv_spool_close(&sp[k]);
	free(by);
	free(op);
	free(sp);
	free(rv);
	free(errs);
	free(of);
	free(ok);
}


int
sv_cli_edit(const char *path, const char *nothing, struct sv_err *e)
{
	const char *editor = getenv("VISUAL");
	struct sigaction ign, oldint, oldquit;
	char *cmd;
	pid_t pid;
	int wstatus, rc = 0;

	if (editor == NULL || *editor == '\0')
		editor = getenv("EDITOR");
	if (editor == NULL || *editor == '\0')
		editor = "vi";
	/* "$@" keeps the path one word; the editor may carry arguments. */
	cmd = sv_xasprintf("%s \"$@\"", editor);
	fflush(NULL);
	/* The editor, not us, handles ^C while it runs. */
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, &oldint);
	sigaction(SIGQUIT, &ign, &oldquit);
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigaction(SIGINT, &oldint, NULL);
		sigaction(SIGQUIT, &oldquit, NULL);
		/* A caller that reads its signals from a descriptor blocks
		 * them; the editor must get them as usual. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "sh", "-c", cmd, "sh", path, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	if (pid == -1)
		rc = sv_errf(e, errno, "can't run the editor");
	while (rc == 0 && waitpid(pid, &wstatus, 0) == -1)
		if (errno != EINTR)
			rc = sv_errf(e, errno, "can't wait for the editor");
	sigaction(SIGINT, &oldint, NULL);
	sigaction(SIGQUIT, &oldquit, NULL);
	if (rc == 0 && (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0))
		rc = sv_errf(e, 0, "the editor '%s' failed; %s", editor,
		    nothing);
	return rc;
}

/*
 * A diff quotes agent text, so it is escaped line by line; only the
 * marker libgit2 itself writes is left as it is, else its backslash
 * would read as an escape.
 */
static void
put_diff_text(FILE *f, const char *diff)
{
	static const char marker[] = "\\ No newline at end of file";

	while (*diff) {
		size_t len = strcspn(diff, "\n");

		if (len == sizeof marker - 1 && memcmp(diff, marker, len) == 0) {
			fputs(marker, f);
		} else {
			char *esc = sv_escape(diff, len, 0);

			fputs(esc, f);
			free(esc);
		}
		putc('\n', f);
		diff += len;
		if (*diff == '\n')
			diff++;
	}
}

/*
 * The diff approving `payload` would make to the config file `relpath`
 * (the tool's own, or with `mirror` the one it mirrors onto), onto f;
 * *changed_any set when it is not empty.
 */
static int
put_file_diff(FILE *f, const char *slug, const struct sv_proposal *p,
    const char *payload, const char *relpath, int mirror, int *changed_any,
    struct sv_err *e)
{
	char *current, *changed, *label, *diff;
	char hash[41];
	size_t len;
	int rc;

	if (sv_cli_audit_text(slug, relpath, &current, &len, e) < 0)
		return -1;
	label = sv_xasprintf("%s/%s", slug, relpath);
	/* A 64-digit sha256 (the egress proxy's writer) says nothing we can
	 * compare; a blob id says which config the agent saw. */
	sv_blob_hash(current ? current : "", current ? len : 0, hash);
	if (!mirror && strlen(p->current_file_hash) == 40 &&
	    strcmp(hash, p->current_file_hash) != 0)
		fprintf(f, "Note: %s changed since the proposal was made\n",
		    label);
	rc = (mirror ? sv_config_mirror : sv_config_update)(p->tool, current,
	    payload, &changed, e);
	if (rc < 0) {
		free(current);
		free(label);
		return -1;
	}
	diff = sv_config_diff(current ? current : "",
	    changed ? changed : (current ? current : ""), label);
	free(changed);
	free(current);
	if (!diff) {
		sv_errf(e, 0, "can't make the diff of '%s'", label);
		free(label);
		return -1;
	}
	if (*diff) {
		fprintf(f, "Diff of %s:\n", label);
		put_diff_text(f, diff);
		*changed_any = 1;
	}
	free(diff);
	free(label);
	return 0;
}

int
sv_cli_diff(const char *slug, const struct sv_proposal *p,
    const char *payload, char **out, struct sv_err *e)
{
	const struct sv_tool *t = sv_tool_find(p->tool);
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int changed = 0, rc;

	*out = NULL;
	if (!payload)
		payload = p->proposed_file;
	if (!t || !t->config) {
		*out = sv_xasprintf("Diff: none, %s changes no config\n",
		    t ? t->name : "this tool");
		return 0;
	}
	if (!(f = open_memstream(&text, &len)))
		sv_die(111, "out of memory");
	rc = put_file_diff(f, slug, p, payload, t->config, 0, &changed, e);
	if (rc == 0 && t->mirror)
		rc = put_file_diff(f, slug, p, payload, t->mirror, 1, &changed,
		    e);
	if (rc == 0 && !changed)
		fprintf(f, "Diff: none, %s/%s already allows this\n", slug,
		    t->config);
	if (fclose(f) != 0)
		sv_die(111, "out of memory");
	if (rc < 0) {
		free(text);
		return -1;
	}
	*out = text;
	return 0;
}

int
sv_cli_edit_text(const char *text, char **tmp, char **edited, size_t *len,
    struct sv_err *e)
{
	const char *tmpdir;
	int fd;

	*tmp = NULL;
	*edited = NULL;
	*len = 0;
	if (!(tmpdir = getenv("TMPDIR")) || !*tmpdir)
		tmpdir = "/tmp";
	*tmp = sv_xasprintf("%s/supervise-edit.XXXXXX", tmpdir);
	/* mkstemp creates it 0600: the payload may be private. */
	if ((fd = mkstemp(*tmp)) < 0) {
		sv_errf(e, errno, "can't create '%s'", *tmp);
		free(*tmp);
		*tmp = NULL;
		return -1;
	}
	if (sv_write_all(fd, text, strlen(text)) < 0) {
		sv_errf(e, errno, "can't write '%s'", *tmp);
		close(fd);
		return -1;
	}
	if (close(fd) < 0)
		return sv_errf(e, errno, "can't write '%s'", *tmp);
	if (sv_cli_edit(*tmp, "nothing written", e) < 0)
		return -1;
	if (sv_cli_read_file(*tmp, SV_FILE_MAX, edited, len, e) < 0)
		return -1;
	if (*len == 0) {
		free(*edited);
		*edited = NULL;
		return sv_errf(e, 0, "the file is empty, aborted; nothing "
		    "written");
	}
	return 0;
}

const char *
sv_cli_caller(const struct sv_entry *en)
{
	if (strchr(en->flags, 'T'))
		return "cancelled";
	if (en->gone)
		return "gone";
	return "waiting";
}

int
sv_cli_outcome(struct sv_audit *a, const struct sv_decision_commit *d,
    char **outcome, int *noted, struct sv_err *e)
{
	struct sv_apply_note n;
	int rc;

	*noted = 0;
	if (strcmp(d->status, "approved") != 0 &&
	    strcmp(d->status, "modified") != 0) {
		*outcome = sv_xstrdup("-");
		return 0;
	}
	rc = sv_apply_note_read(a, d->commit, &n, e);
	if (rc == 1) {
		*outcome = sv_xstrdup(n.line);
		*noted = 1;
		sv_apply_note_free(&n);
		return 0;
	}
	*outcome = sv_xstrdup("applied: unknown");
	return rc < 0 ? -1 : 0;
}

char *
sv_cli_log_line(const struct sv_decision_commit *d, const char *outcome)
{
	const char *f[6] = { d->id, d->slug, d->tool, d->status, outcome,
	    d->who ? d->who : "" };
	char date[32], *ef[6], *line;
	time_t when = (time_t)d->when;
	struct tm tm;

	gmtime_r(&when, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* Each field escaped on its own: tabs separate them. */
	for (int i = 0; i < 6; i++)
		ef[i] = sv_escape(f[i], strlen(f[i]), 0);
	line = sv_xasprintf("%s\t%s\t%s\t%s\t%s\t%.12s\t%s\t%s", ef[0], ef[1],
	    ef[2], ef[3], ef[4], d->commit, date, ef[5]);
	for (int i = 0; i < 6; i++)
		free(ef[i]);
	return line;
}

/* Watch path, or while it is missing its parent: wd or -1. */
static int
watch_or_parent(int ifd, const char *path, int wd)
{
	/* Refs are renamed into place: no IN_CLOSE_WRITE, which every
	 * opener of supervise.lock (ourselves too) would set off. */
	const uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM |
	    IN_DELETE | IN_ONLYDIR;
	char *parent, *slash;
	int w;

	if ((w = inotify_add_watch(ifd, path, mask)) >= 0)
		return w;
	if (wd >= 0)
		return wd;	/* the parent, watched already */
	parent = sv_xstrdup(path);
	if ((slash = strrchr(parent, '/')) && slash != parent)
		*slash = '\0';
	w = inotify_add_watch(ifd, parent, mask);
	free(parent);
	return w;
}

void
sv_cli_watch_audit(int ifd, int wd[3])
{
	char *dir = sv_audit_dir();
	char *heads = sv_xasprintf("%s/refs/heads", dir);
	char *notes = sv_xasprintf("%s/refs/notes", dir);

	wd[0] = watch_or_parent(ifd, dir, wd[0]);
	wd[1] = watch_or_parent(ifd, heads, wd[1]);
	wd[2] = watch_or_parent(ifd, notes, wd[2]);
	free(dir);
	free(heads);
	free(notes);
}

int
sv_cli_audit_event(const struct inotify_event *ev, const int wd[3])
{
	static const char *const names[] = { "main", "apply", "packed-refs",
	    "heads", "notes", "refs", NULL };
	char *dir;
	const char *base;
	int rc = 0;

	if (ev->mask & IN_Q_OVERFLOW)
		return 1;
	if (ev->wd != wd[0] && ev->wd != wd[1] && ev->wd != wd[2])
		return 0;
	if (ev->mask & IN_IGNORED)
		return 1;
	if (ev->len == 0)
		return 0;
	for (int i = 0; names[i]; i++)
		if (strcmp(ev->name, names[i]) == 0)
			return 1;
	/* The repository itself, made after we started. */
	dir = sv_audit_dir();
	base = strrchr(dir, '/');
	rc = strcmp(ev->name, base ? base + 1 : dir) == 0;
	free(dir);
	return rc;
}

int
sv_cli_inotify_each(int fd, int (*fn)(const struct inotify_event *, void *),
    void *arg, struct sv_err *e)
{
	char buf[64 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	int n = 0;

	for (;;) {
		ssize_t len = read(fd, buf, sizeof buf);

		if (len < 0 && errno == EINTR)
			continue;
		if (len < 0 && errno == EAGAIN)
			return n;
		if (len < 0)
			return sv_errf(e, errno, "can't read inotify events");
		if (len == 0)
			return n;
		for (char *p = buf; p < buf + len; ) {
			const struct inotify_event *ev = (const void *)p;

			n += fn(ev, arg) != 0;
			p += sizeof *ev + ev->len;
		}
	}
}
