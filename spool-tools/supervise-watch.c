/*
 * supervise-watch: print each new proposal as it arrives, until stopped.
 *
 * How it avoids missing one (s6's subscribe, then look):
 *  - an inotify watch is placed on proposals/new of every bottle first,
 *    and only then is the directory read, so a proposal published in
 *    between is seen by the read, the event, or both;
 *  - what was printed is remembered by id, so seeing it twice prints once;
 *  - a directory that does not exist yet (a bottle not yet initialised)
 *    is waited for by watching its nearest existing ancestor and trying
 *    again on every creation there;
 *  - on an inotify queue overflow every bottle is read again.
 * Without SLUG arguments the queue directory itself is watched too, so
 * bottles created later are followed.
 *
 * With -d it follows decisions instead, once committed, in the format of
 * supervise-log: the refs of the audit repository are watched (main
 * moves at each decision, refs/notes/apply when an outcome is noted);
 * at each move the new decision commits of main are read back to the
 * last one seen.  A rejection is printed at once; an approval once its
 * outcome is noted (the apply hook has run), or after DECISION_WAIT
 * seconds as "applied: unknown" when none comes.
 */
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

/* One mask for every watch: a second add on the same inode replaces it. */
#define WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW)

struct target {
	char *path;	/* the directory we want to watch */
	char *slug;	/* its bottle, or NULL for the queue directory */
	int wd;		/* the watch on path, or -1 while it is missing */
	int open;	/* s is open */
	struct sv_spool s;
};

static struct target *targets;
static size_t ntargets;
static int ifd = -1;
static int nul;
static int ready;	/* set up: newly established watches print */
static void *printed;	/* tsearch set of printed (or known) ids */
static int status;

#define DECISION_WAIT 900	/* seconds an approval's outcome is waited for */

static _Noreturn void
usage(FILE *f, int st)
{
	fprintf(f, "usage: supervise-watch [-0n] [SLUG ...]\n"
	    "       supervise-watch -d [-0] [SLUG ...]\n");
	exit(st);
}

static int
seen_before(const char *id)
{
	char *key = sv_xstrdup(id);
	char **found = tsearch(key, &printed, (int (*)(const void *,
	    const void *))strcmp);

	if (!found)
		sv_die(1, "out of memory");
	if (*found != key) {
		free(key);
		return 1;
	}
	return 0;
}

static void
emit(const char *line)
{
	fputs(line, stdout);
	putchar(nul ? '\0' : '\n');
	if (fflush(stdout) == EOF) {
		/* The reader went away: nothing left to do. */
		sv_warnx("can't write 'stdout': %s", strerror(errno));
		exit(1);
	}
}

static int
open_spool(struct target *t)
{
	struct sv_err e;

	if (t->open)
		return 0;
	if (sv_spool_open_slug(&t->s, t->slug, 0, &e) < 0)
		return -1;	/* still being created: retried on the next event */
	t->open = 1;
	return 0;
}

/* Print proposal ID of bottle t, once, if `print` (else only remember). */
static void
announce(struct target *t, const char *id, int print)
{
	struct sv_proposal p;
	struct sv_entry en;
	struct sv_err e;
	char *line;

	if (seen_before(id) || !print)
		return;
	if (open_spool(t) < 0)
		return;
	if (sv_cli_read_proposal(&t->s, id, &en, &p, &e) < 0) {
		if (e.errnum != ENOENT)
			sv_warn_err(&e);
		return;
	}
	line = sv_cli_list_line(t->slug, &en, &p, time(NULL));
	emit(line);
	free(line);
	sv_proposal_free(&p);
}

/* The proposals now in new/ of bottle t. */
static void
scan(struct target *t, int print)
{
	struct sv_entry *v;
	struct sv_err e;
	size_t n;

	if (open_spool(t) < 0)
		return;
	if (sv_list_pending(&t->s, &v, &n, &e) < 0) {
		sv_warn_err(&e);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i].where == SV_NEW)
			announce(t, v[i].id, print);
	sv_entries_free(v);
}

static void add_bottle(const char *slug);

/* The entries of the queue directory: each a bottle to follow. */
static void
scan_queue(void)
{
	char **slugs;
	struct sv_err e;
	size_t n;

	if (sv_cli_bottles(&slugs, &n, &e) < 0) {
		sv_warn_err(&e);
		return;
	}
	for (size_t i = 0; i < n; i++)
		add_bottle(slugs[i]);
	sv_cli_strv_free(slugs);
}

/*
 * Watch t->path, or its nearest existing ancestor until it exists.  The
 * ancestor is watched after t->path was found missing, so the directory
 * below it may have been made in between, with no event to say so: look
 * again once the watch is in place, and go one level down if so.
 */
static void
establish(struct target *t)
{
	char *dir, *slash;
	size_t len;
	int wd, tries;

	if (t->wd >= 0)
		return;
	for (tries = 0; tries < 64; tries++) {
		if ((wd = inotify_add_watch(ifd, t->path, WATCH_MASK)) >= 0) {
			t->wd = wd;
			/* Subscribed; now look (after set-up: all is new). */
			if (ready) {
				if (t->slug)
					scan(t, 1);
				else
					scan_queue();
			}
			return;
		}
		if (errno != ENOENT && errno != ENOTDIR) {
			sv_warnx("can't watch '%s': %s", t->path,
			    strerror(errno));
			status = 1;
			return;
		}
		dir = sv_xstrdup(t->path);
		while ((slash = strrchr(dir, '/')) && slash != dir) {
			*slash = '\0';
			if (inotify_add_watch(ifd, dir, WATCH_MASK) >= 0 ||
			    errno != ENOENT)
				break;
		}
		/* The next directory down: made since we looked? */
		len = strlen(dir);
		slash = strchr(t->path + len + 1, '/');
		if (slash != NULL)
			len = (size_t)(slash - t->path);
		else
			len = strlen(t->path);
		free(dir);
		dir = sv_xasprintf("%.*s", (int)len, t->path);
		if (access(dir, F_OK) != 0) {
			free(dir);
			return;		/* its creation will be reported */
		}
		free(dir);
	}
}

static void
establish_all(void)
{
	/* establish() may add targets (new bottles): index, not pointer. */
	for (size_t i = 0; i < ntargets; i++)
		establish(&targets[i]);
}

static struct target *
add_target(char *path, const char *slug)
{
	struct target *t;

	targets = sv_xrealloc(targets, (ntargets + 1) * sizeof *targets);
	t = &targets[ntargets++];
	memset(t, 0, sizeof *t);
	t->path = path;
	t->slug = slug ? sv_xstrdup(slug) : NULL;
	t->wd = -1;
	return t;
}

static void
add_bottle(const char *slug)
{
	struct sv_err e;
	size_t i;
	char *q;

	if (sv_valid_slug(slug, &e) < 0)
		return;
	for (i = 0; i < ntargets; i++)
		if (targets[i].slug && strcmp(targets[i].slug, slug) == 0)
			return;
	q = sv_queue_dir(slug);
	add_target(sv_xasprintf("%s/proposals/new", q), slug);
	free(q);
	establish(&targets[ntargets - 1]);
}

static int
handle(const struct inotify_event *ev, void *arg)
{
	char id[SV_ID_MAX + 1], flags[16];

	(void)arg;

	if (ev->mask & IN_Q_OVERFLOW) {
		for (size_t i = 0; i < ntargets; i++) {
			if (targets[i].wd < 0)
				continue;
			if (targets[i].slug)
				scan(&targets[i], 1);
			else
				scan_queue();
		}
		return 1;
	}
	for (size_t i = 0; i < ntargets; i++) {
		struct target *t = &targets[i];

		if (t->wd != ev->wd)
			continue;
		if (ev->mask & IN_IGNORED) {
			/* The directory went away: wait for it to come back. */
			t->wd = -1;
			if (t->open)
				sv_spool_close(&t->s);
			t->open = 0;
		} else if (ev->len == 0) {
			continue;
		} else if (!t->slug) {
			add_bottle(ev->name);
		} else if (sv_parse_name(ev->name, id, sizeof id, flags,
		    sizeof flags) == 0) {
			announce(t, id, 1);
		}
	}
	/* Any creation may be a missing directory appearing. */
	establish_all();
	return 1;
}

/* --- -d: decisions as they are committed ----------------------------- */

struct waiting {
	struct sv_decision_commit d;
	time_t until;
};

struct follow {
	char **slugs;		/* NULL: every bottle */
	int nslugs;
	char last[41];		/* the newest decision commit seen */
	struct sv_decision_commit *fresh;	/* newest first */
	size_t nfresh;
	struct waiting *w;	/* approvals waiting for their outcome */
	size_t nw;
};

/* sv_audit_decisions: everything newer than f->last. */
static int
collect(const struct sv_decision_commit *d, void *arg)
{
	struct follow *f = arg;

	if (strcmp(d->commit, f->last) == 0)
		return 1;
	f->fresh = sv_xrealloc(f->fresh, (f->nfresh + 1) * sizeof *f->fresh);
	sv_decision_commit_copy(&f->fresh[f->nfresh++], d);
	return 0;
}

static int
followed(const struct follow *f, const char *slug)
{
	if (!f->slugs)
		return 1;
	for (int i = 0; i < f->nslugs; i++)
		if (strcmp(f->slugs[i], slug) == 0)
			return 1;
	return 0;
}

static void
print_decision(const struct sv_decision_commit *d, const char *outcome)
{
	char *line = sv_cli_log_line(d, outcome);

	emit(line);
	free(line);
}

/* Read main back to the last decision seen; print what is known. */
static void
follow_look(struct follow *f, int first)
{
	struct sv_audit *a;
	struct sv_err e;
	struct stat st;
	char *dir = sv_audit_dir();
	time_t now = time(NULL);
	int exists = stat(dir, &st) == 0;

	free(dir);
	if (!exists)
		return;		/* no decision yet; its creation is watched */
	/* A fresh handle each time: another process wrote the objects. */
	if (sv_audit_open(&a, NULL, &e) < 0) {
		sv_warn_err(&e);
		status = 1;
		return;
	}
	if (sv_audit_decisions(a, NULL, (size_t)-1, collect, f, &e) < 0) {
		sv_warn_err(&e);
		status = 1;
	}
	if (f->nfresh > 0)
		memcpy(f->last, f->fresh[0].commit, sizeof f->last);
	/* Oldest first; at start-up only remembered. */
	for (size_t i = f->nfresh; i-- > 0; ) {
		struct sv_decision_commit *d = &f->fresh[i];

		if (first || !followed(f, d->slug)) {
			sv_decision_commit_free(d);
			continue;
		}
		f->w = sv_xrealloc(f->w, (f->nw + 1) * sizeof *f->w);
		f->w[f->nw].d = *d;
		f->w[f->nw++].until = now + DECISION_WAIT;
	}
	f->nfresh = 0;
	/* Each waiting decision whose outcome is known (or waited for long
	 * enough), in the order of their commits. */
	for (size_t i = 0; i < f->nw; ) {
		char *outcome;
		int noted;

		if (sv_cli_outcome(a, &f->w[i].d, &outcome, &noted, &e) < 0) {
			sv_warn_err(&e);
			status = 1;
		}
		if (noted || strcmp(outcome, "-") == 0 || now >= f->w[i].until) {
			print_decision(&f->w[i].d, outcome);
			sv_decision_commit_free(&f->w[i].d);
			memmove(f->w + i, f->w + i + 1,
			    (f->nw - i - 1) * sizeof *f->w);
			f->nw--;
		} else {
			i++;
		}
		free(outcome);
	}
	sv_audit_close(a);
}

/* Milliseconds until the first approval stops waiting; -1: none waits. */
static int
follow_timeout(const struct follow *f)
{
	time_t now = time(NULL), first = 0;

	for (size_t i = 0; i < f->nw; i++)
		if (first == 0 || f->w[i].until < first)
			first = f->w[i].until;
	if (first == 0)
		return -1;
	return first <= now ? 0 : (int)(first - now) * 1000;
}

static int
audit_event(const struct inotify_event *ev, void *arg)
{
	return sv_cli_audit_event(ev, arg);
}

static int
follow_decisions(int argc, char **argv, int sfd)
{
	struct follow f;
	struct sv_err e;
	struct pollfd pfd[2];
	int wd[3] = { -1, -1, -1 }, look;

	memset(&f, 0, sizeof f);
	if (argc > 0) {
		f.slugs = argv;
		f.nslugs = argc;
	}
	/* Subscribe, then look. */
	sv_cli_watch_audit(ifd, wd);
	follow_look(&f, 1);
	pfd[0].fd = ifd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sfd;
	pfd[1].events = POLLIN;
	for (;;) {
		int n = poll(pfd, 2, follow_timeout(&f));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			sv_die(1, "can't wait for events: %s", strerror(errno));
		}
		if (pfd[1].revents)
			break;
		if (n == 0) {
			follow_look(&f, 0);
			continue;
		}
		if (!(pfd[0].revents & POLLIN))
			continue;
		/* A move of a ref: follow new directories, then look once. */
		if ((look = sv_cli_inotify_each(ifd, audit_event, wd, &e)) < 0)
			sv_die(1, "%s", e.msg);
		if (look) {
			sv_cli_watch_audit(ifd, wd);
			follow_look(&f, 0);
		}
	}
	for (size_t i = 0; i < f.nw; i++)
		sv_decision_commit_free(&f.w[i].d);
	free(f.w);
	free(f.fresh);
	return status;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "existing", no_argument, NULL, 'n' },
		{ "decisions", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pollfd pfd[2];
	struct sv_err e;
	sigset_t stop;
	char **slugs = NULL;
	size_t nslugs;
	int c, existing = 0, decisions = 0, sfd;

	sv_setprog(argv[0]);
	while ((c = getopt_long(argc, argv, "0dnh", longopts, NULL)) != -1) {
		switch (c) {
		case '0': nul = 1; break;
		case 'd': decisions = 1; break;
		case 'n': existing = 1; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;
	if (sv_cli_check_slugs(argc, argv, &e) < 0) {
		sv_warnx("can't watch %s", e.msg);
		return 2;
	}
	if (decisions && existing)
		usage(stderr, 2);
	/* Stop cleanly on INT and TERM: read them from a descriptor. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0 ||
	    (sfd = signalfd(-1, &stop, SFD_CLOEXEC)) < 0)
		sv_die(1, "can't catch signals: %s", strerror(errno));
	if ((ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) < 0)
		sv_die(1, "can't start inotify: %s", strerror(errno));
	if (decisions) {
		int rc = follow_decisions(argc, argv, sfd);

		close(ifd);
		close(sfd);
		return rc;
	}
	if (argc > 0) {
		nslugs = (size_t)argc;
	} else if (sv_cli_bottles(&slugs, &nslugs, &e) < 0) {
		sv_warn_err(&e);
		return 1;
	}

	/*
	 * What is there before we subscribe is remembered (or, with -n,
	 * printed); what the first read after subscribing finds besides
	 * arrived in between and is printed.
	 */
	if (existing) {
		struct sv_cli_row *rows;
		struct sv_cli_errs errs;
		size_t n;

		if (sv_cli_pending(slugs ? slugs : argv, nslugs, time(NULL),
		    &rows, &n, &errs) < 0)
			status = 1;
		for (size_t i = 0; i < errs.n; i++)
			sv_warn_err(&errs.v[i]);
		free(errs.v);
		for (size_t i = 0; i < n; i++) {
			seen_before(rows[i].id);
			emit(rows[i].line);
		}
		sv_cli_rows_free(rows, n);
	}
	for (size_t i = 0; i < nslugs; i++) {
		const char *slug = slugs ? slugs[i] : argv[i];
		char *q = sv_queue_dir(slug);
		struct target *t;

		t = add_target(sv_xasprintf("%s/proposals/new", q), slug);
		free(q);
		if (!existing)
			scan(t, 0);
	}
	sv_cli_strv_free(slugs);
	ready = 1;
	if (argc == 0)
		add_target(sv_xasprintf("%s/queue", sv_root()), NULL);
	establish_all();

	pfd[0].fd = ifd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sfd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			sv_die(1, "can't wait for events: %s", strerror(errno));
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (sv_cli_inotify_each(ifd, handle, NULL, &e) < 0)
			sv_die(1, "%s", e.msg);
	}

	for (size_t i = 0; i < ntargets; i++) {
		if (targets[i].open)
			sv_spool_close(&targets[i].s);
		free(targets[i].path);
		free(targets[i].slug);
	}
	free(targets);
	tdestroy(printed, free);
	close(ifd);
	close(sfd);
	return status;
}
