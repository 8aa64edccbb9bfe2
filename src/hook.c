/*
 * hook.c: making approved decisions take effect.
 *
 * For each approved (or modified) decision, once its commit is on main:
 *   1. the bottle's live directory is brought up to date with main
 *      (live.c);
 *   2. the apply hook, when there is one, runs: an executable, never a
 *      shell, with the decision record on stdin, SUPERVISE_* variables
 *      saying what changed, in its own process group, stdout and stderr
 *      into one pipe of which the last SV_HOOK_OUTPUT_MAX bytes are kept,
 *      killed (the whole group) at its timeout;
 *   3. the caller is told the outcome (the daemon answers the agent);
 *   4. the outcome is noted on the decision's commit (applynote.c).
 *
 * The hook is a child process watched from an epoll set of our own (its
 * pidfd, its output pipe, a timerfd for its deadline) that the daemon
 * nests in its event loop: a hook that runs for a minute holds up no
 * other call, and libgit2 stays on the one thread that owns the audit
 * repository, which a thread per hook would have had to share.  Hooks
 * run one at a time, in the order the decisions landed.
 *
 * Crashes.  Before a batch of responses is consumed, a marker
 * SPOOL/apply/ID, a link to the response, is made for each (and its
 * directory flushed once); it
 * goes once the outcome's note is on disk, or once the decision turns
 * out to need no apply (a rejection, a refused response).  At start-up
 * every marker left is applied again unless its decision already has a
 * note, so a kill between the commit and the hook loses nothing: the
 * hook runs (again) for that decision.  Hooks must therefore be
 * idempotent, as reloading a proxy is.
 *
 * Notes are written after the answers, in batches (sv_applier_flush):
 * decisions approved together with no hook to wait for get one notes
 * commit; with a hook, each outcome's note is written once the agent has
 * its answer and before the next hook starts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

extern char **environ;

#define READ_CHUNK	(64 << 10)
#define READ_PER_EVENT	(1 << 20)	/* then back to the daemon's loop */
#define POLL_MS		2		/* without pidfd: how often to look */
#define FIND_MAX	100000		/* commits looked through for one */
#define CACHE_MAX	4096		/* decision commits remembered */

struct job {
	char id[SV_ID_MAX + 1];
	int again;		/* apply even when already noted */
	struct job *next;
};

/* An outcome waiting for its note to be written. */
struct outcome {
	char id[SV_ID_MAX + 1];
	char commit[41];
	char *text;
	struct outcome *next;
};

struct sv_applier {
	struct sv_audit *a;
	char *slug, *state_dir, *hook;
	long timeout_s;
	void (*done)(const struct sv_apply_result *, void *);
	void *arg;
	int markfd;		/* SPOOL/apply, or -1 */
	int newfd;		/* SPOOL/responses/new, or -1 */
	int ep, tfd;
	struct job *head, **tail;
	struct outcome *notes, **notes_tail;
	/* the job under way */
	struct job *cur;
	pid_t pid;
	int pidfd, out;
	int64_t start_ms;
	int timed_out;
	char *ring;		/* the output's tail */
	size_t ring_len;
	long long out_bytes;
	struct sv_decision_commit dc;
	struct sv_response resp;
	char *record;
	unsigned changed;
	/* Decision commits seen walking main, newest first: a batch of
	 * decisions applied oldest first walks main once, not once each. */
	struct sv_decision_commit *cache;
	size_t ncache;
	char published[41];	/* main's tip when the live files were written */
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
sv_hook_find(const char *configured, char **path, struct sv_err *e)
{
	struct stat st;
	char *p;

	*path = NULL;
	if (configured != NULL && configured[0] != '\0') {
		if (configured[0] != '/')
			return sv_errf(e, 0, "apply hook '%s': not an absolute "
			    "path", configured);
		if (stat(configured, &st) == -1)
			return sv_errf(e, errno, "apply hook '%s'", configured);
		if (!S_ISREG(st.st_mode) || access(configured, X_OK) == -1)
			return sv_errf(e, 0, "apply hook '%s': not an executable "
			    "file", configured);
		*path = sv_xstrdup(configured);
		return 0;
	}
	/* Like git's hooks: there when it exists and may be run. */
	p = sv_xasprintf("%s/hooks/apply", sv_root());
	if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0) {
		if (p[0] != '/') {
			char cwd[4096], *abs;

			if (getcwd(cwd, sizeof cwd) == NULL) {
				free(p);
				return sv_errf(e, errno, "can't find the current "
				    "directory");
			}
			abs = sv_xasprintf("%s/%s", cwd, p);
			free(p);
			p = abs;
		}
		*path = p;
		return 0;
	}
	free(p);
	return 0;
}

int
sv_decision_read(struct sv_audit *a, const char *slug, const char *id,
    char **text, struct sv_response *r, struct sv_err *e)
{
	char *rel = NULL, *t = NULL;
	size_t len;
	json_t *j = NULL;
	int rc = -1;

	memset(r, 0, sizeof *r);
	if (text != NULL)
		*text = NULL;
	if (sv_audit_read_record(a, slug, id, &t, &len, &rel, e) == -1)
		goto out;
	if (t == NULL) {
		sv_errf(e, 0, "no record of proposal '%s' in the audit "
		    "repository", id);
		goto out;
	}
	if (sv_record_loadb(t, len, rel, &j, e) == -1)
		goto out;
	if (sv_response_from_json(json_object_get(j, "response"), rel, t, r,
	    e) == -1)
		goto out;
	rc = 0;
	if (text != NULL) {
		*text = t;
		t = NULL;
	}
out:
	json_decref(j);
	free(t);
	free(rel);
	return rc;
}

int
sv_applier_new(struct sv_applier **out, struct sv_audit *a, const char *slug,
    const char *state_dir, const char *hook, long timeout_s, int spooldir,
    void (*done)(const struct sv_apply_result *, void *), void *arg,
    struct sv_err *e)
{
	struct sv_applier *ap = sv_xmalloc(sizeof *ap);
	struct epoll_event ev;

	memset(ap, 0, sizeof *ap);
	ap->a = a;
	ap->slug = sv_xstrdup(slug);
	ap->state_dir = sv_xstrdup(state_dir);
	ap->hook = hook ? sv_xstrdup(hook) : NULL;
	ap->timeout_s = timeout_s;
	ap->done = done;
	ap->arg = arg;
	ap->markfd = ap->newfd = ap->pidfd = ap->out = -1;
	ap->tail = &ap->head;
	ap->notes_tail = &ap->notes;
	ap->ring = sv_xmalloc(SV_HOOK_OUTPUT_MAX);
	ap->ep = epoll_create1(EPOLL_CLOEXEC);
	ap->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ap->ep == -1 || ap->tfd == -1) {
		sv_errf(e, errno, "can't set up the apply hook's event loop");
		goto fail;
	}
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = ap->tfd;
	if (epoll_ctl(ap->ep, EPOLL_CTL_ADD, ap->tfd, &ev) == -1) {
		sv_errf(e, errno, "can't set up the apply hook's event loop");
		goto fail;
	}
	if (spooldir != -1) {
		if (mkdirat(spooldir, "apply", 0700) == -1 && errno != EEXIST) {
			sv_errf(e, errno, "can't create the spool's 'apply' "
			    "directory");
			goto fail;
		}
		ap->markfd = openat(spooldir, "apply", O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		ap->newfd = openat(spooldir, "responses/new", O_RDONLY |
		    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (ap->markfd == -1 || ap->newfd == -1) {
			sv_errf(e, errno, "can't open the spool's 'apply' "
			    "directory");
			goto fail;
		}
	}
	*out = ap;
	return 0;
fail:
	sv_applier_free(ap);
	return -1;
}

int
sv_applier_fd(const struct sv_applier *ap)
{
	return ap->ep;
}

int
sv_applier_idle(const struct sv_applier *ap)
{
	return ap->cur == NULL && ap->head == NULL;
}

int
sv_applier_busy(const struct sv_applier *ap, const char *id)
{
	if (ap->cur != NULL && strcmp(ap->cur->id, id) == 0)
		return 1;
	for (struct job *j = ap->head; j != NULL; j = j->next)
		if (strcmp(j->id, id) == 0)
			return 1;
	return 0;
}

/* --- markers -------------------------------------------------------------- */

/*
 * A marker is a second link to the response: a directory entry, no new
 * inode.  (Creating a file each time, on ext4 after the markers of the
 * last batches were removed, cost more than the rest of the decision:
 * its inode allocator steps over recently freed inodes one by one.)
 */
int
sv_applier_mark(struct sv_applier *ap, char *const *ids, size_t n,
    struct sv_err *e)
{
	struct sv_err why;
	size_t made = 0;

	if (ap->markfd == -1)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (sv_valid_id(ids[i], &why) == -1)
			continue;
		if (linkat(ap->newfd, ids[i], ap->markfd, ids[i], 0) == 0) {
			made++;
			continue;
		}
		if (errno == EEXIST || errno == ENOENT)
			continue;	/* marked already; consumed meanwhile */
		return sv_errf(e, errno, "can't link 'responses/new/%s' to "
		    "'apply/%s' in the spool", ids[i], ids[i]);
	}
	if (made > 0 && fsync(ap->markfd) == -1)
		return sv_errf(e, errno, "can't flush the spool's 'apply' "
		    "directory");
	return 0;
}

void
sv_applier_unmark(struct sv_applier *ap, const char *id)
{
	/* Not flushed: a marker that comes back is dropped at start-up. */
	if (ap->markfd != -1 && unlinkat(ap->markfd, id, 0) == -1 &&
	    errno != ENOENT)
		sv_warnx("can't remove 'apply/%s' from the spool: %s", id,
		    strerror(errno));
}

/* --- jobs ------------------------------------------------------------------ */

static void start_next(struct sv_applier *ap);

static void
cache_clear(struct sv_applier *ap)
{
	for (size_t i = 0; i < ap->ncache; i++)
		sv_decision_commit_free(&ap->cache[i]);
	ap->ncache = 0;
}

struct walk {
	struct sv_applier *ap;
	const char *id;
	int found;
};

static int
cache_one(const struct sv_decision_commit *d, void *arg)
{
	struct walk *w = arg;
	struct sv_applier *ap = w->ap;
	struct sv_decision_commit *c;

	for (size_t i = 0; i < ap->ncache; i++)
		if (strcmp(ap->cache[i].commit, d->commit) == 0)
			return strcmp(d->id, w->id) == 0 ? (w->found = 1) : 0;
	if (ap->ncache == CACHE_MAX)
		cache_clear(ap);
	if (ap->cache == NULL)
		ap->cache = sv_xmalloc(CACHE_MAX * sizeof *ap->cache);
	c = &ap->cache[ap->ncache++];
	sv_decision_commit_copy(c, d);
	if (strcmp(d->id, w->id) == 0)
		w->found = 1;
	return w->found;
}

/* The decision commit of id: from the cache, else walking main (and
 * remembering what the walk passes).  1, 0 (not on main), -1. */
static int
find_decision(struct sv_applier *ap, const char *id,
    struct sv_decision_commit *out, struct sv_err *e)
{
	struct walk w = { ap, id, 0 };
	size_t i;

	memset(out, 0, sizeof *out);
	/* A look in the cache, a walk that adds what it passes, a look. */
	for (int pass = 0; pass < 2; pass++) {
		for (i = 0; i < ap->ncache; i++)
			if (strcmp(ap->cache[i].id, id) == 0)
				break;
		if (i < ap->ncache) {
			sv_decision_commit_copy(out, &ap->cache[i]);
			return 1;
		}
		if (pass == 1)
			break;
		if (sv_audit_decisions(ap->a, ap->slug, FIND_MAX, cache_one, &w,
		    e) == -1)
			return -1;
		if (!w.found)
			return 0;
	}
	return sv_errf(e, 0, "lost the commit of the decision on %s", id);
}

/* Write the live files, unless main has not moved since we last did. */
static int
publish(struct sv_applier *ap, struct sv_err *e)
{
	git_oid tip;
	char hex[41];

	if (git_reference_name_to_id(&tip, ap->a->repo, "HEAD") == 0) {
		git_oid_tostr(hex, sizeof hex, &tip);
		if (strcmp(hex, ap->published) == 0)
			return 0;
	} else {
		hex[0] = '\0';
	}
	if (sv_live_publish(ap->a, ap->slug, ap->state_dir, NULL, e) == -1)
		return -1;
	/* Read before publishing: a later move publishes again. */
	snprintf(ap->published, sizeof ap->published, "%s", hex);
	return 0;
}

void
sv_applier_add(struct sv_applier *ap, const char *id, int again)
{
	struct job *j;

	if (sv_applier_busy(ap, id))
		return;
	j = sv_xmalloc(sizeof *j);
	memset(j, 0, sizeof *j);
	snprintf(j->id, sizeof j->id, "%s", id);
	j->again = again;
	*ap->tail = j;
	ap->tail = &j->next;
	if (ap->cur == NULL)
		start_next(ap);
}

int
sv_applier_recover(struct sv_applier *ap, struct sv_err *e)
{
	int fd = -1;
	DIR *d;
	struct dirent *de;
	struct sv_err why;

	if (ap->markfd == -1)
		return 0;
	if ((fd = openat(ap->markfd, ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return sv_errf(e, errno, "can't read the spool's 'apply' "
		    "directory");
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (sv_valid_id(de->d_name, &why) == -1)
			continue;
		sv_applier_add(ap, de->d_name, 0);
	}
	closedir(d);
	return 0;
}

static void
job_reset(struct sv_applier *ap)
{
	free(ap->cur);
	ap->cur = NULL;
	sv_decision_commit_free(&ap->dc);
	sv_response_free(&ap->resp);
	free(ap->record);
	ap->record = NULL;
	ap->pid = 0;
	ap->timed_out = 0;
	ap->ring_len = 0;
	ap->out_bytes = 0;
	ap->changed = 0;
}

/* "egress/routes.json pipelock/allowlist" for the note, or with each
 * path under the live directory for SUPERVISE_FILES. */
static char *
files_list(const struct sv_applier *ap, unsigned changed, int absolute)
{
	const char *files[16];
	size_t n = sv_config_files(files, 16);
	char *s = sv_xstrdup(""), *t;

	for (size_t i = 0; i < n; i++) {
		if (!(changed & (1u << i)))
			continue;
		t = sv_xasprintf("%s%s%s%s%s", s, s[0] ? " " : "",
		    absolute ? ap->state_dir : "", absolute ? "/" : "",
		    files[i]);
		free(s);
		s = t;
	}
	return s;
}

/* The job's outcome: tell the caller, queue the note, go on. */
static void
finish(struct sv_applier *ap, struct sv_apply_note *note, int noted)
{
	struct sv_apply_result res;

	memset(&res, 0, sizeof res);
	res.id = ap->cur->id;
	res.note = note;
	res.status = ap->resp.status;
	res.notes = ap->resp.notes;
	res.final_file = ap->resp.final_file;
	if (ap->done != NULL)
		ap->done(&res, ap->arg);
	if (noted && ap->dc.commit[0] != '\0') {
		struct outcome *o = sv_xmalloc(sizeof *o);

		memset(o, 0, sizeof *o);
		snprintf(o->id, sizeof o->id, "%s", ap->cur->id);
		snprintf(o->commit, sizeof o->commit, "%s", ap->dc.commit);
		o->text = sv_apply_note_text(note);
		*ap->notes_tail = o;
		ap->notes_tail = &o->next;
	} else if (!noted) {
		sv_applier_unmark(ap, ap->cur->id);
	}
	job_reset(ap);
}

static void
finish_no(struct sv_applier *ap, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
finish_no(struct sv_applier *ap, const char *fmt, ...)
{
	struct sv_apply_note n;
	char buf[2048];
	va_list va;

	va_start(va, fmt);
	vsnprintf(buf, sizeof buf, fmt, va);
	va_end(va);
	sv_apply_note_init(&n);
	n.reason = sv_xstrdup(buf);
	n.files = files_list(ap, ap->changed, 0);
	if (ap->dc.commit[0] != '\0')
		n.commit = sv_xstrdup(ap->dc.commit);
	finish(ap, &n, 1);
	sv_apply_note_free(&n);
}

/* Keep the last SV_HOOK_OUTPUT_MAX bytes of the hook's output. */
static void
ring_add(struct sv_applier *ap, const char *buf, size_t n)
{
	size_t max = SV_HOOK_OUTPUT_MAX;

	ap->out_bytes += (long long)n;
	if (n >= max) {
		memcpy(ap->ring, buf + n - max, max);
		ap->ring_len = max;
		return;
	}
	if (ap->ring_len + n > max) {
		size_t keep = max - n;

		memmove(ap->ring, ap->ring + ap->ring_len - keep, keep);
		ap->ring_len = keep;
	}
	memcpy(ap->ring + ap->ring_len, buf, n);
	ap->ring_len += n;
}

/* Read what the hook wrote, up to `budget` bytes; close at end of file. */
static void
read_output(struct sv_applier *ap, size_t budget)
{
	char buf[READ_CHUNK];
	ssize_t r;

	while (ap->out != -1 && budget > 0) {
		r = read(ap->out, buf, sizeof buf);
		if (r > 0) {
			ring_add(ap, buf, (size_t)r);
			budget -= (size_t)r < budget ? (size_t)r : budget;
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == EAGAIN)
			return;
		/* End of file, or an error: no more output either way. */
		epoll_ctl(ap->ep, EPOLL_CTL_DEL, ap->out, NULL);
		close(ap->out);
		ap->out = -1;
	}
}

static void
disarm(struct sv_applier *ap)
{
	struct itimerspec its;

	memset(&its, 0, sizeof its);
	timerfd_settime(ap->tfd, 0, &its, NULL);
}

static void
arm(struct sv_applier *ap, long ms, int repeat)
{
	struct itimerspec its;

	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000L;
	if (repeat)
		its.it_interval = its.it_value;
	timerfd_settime(ap->tfd, 0, &its, NULL);
}

/* The hook has exited (status from waitpid): its outcome. */
static void
hook_ended(struct sv_applier *ap, int status)
{
	struct sv_apply_note n;
	char *esc;
	const char *tail;
	size_t len;

	disarm(ap);
	/* What it wrote before it exited; a child it left may hold the
	 * pipe open, so take what is there, not the end of file. */
	read_output(ap, SV_HOOK_OUTPUT_MAX * 4);
	if (ap->out != -1) {
		epoll_ctl(ap->ep, EPOLL_CTL_DEL, ap->out, NULL);
		close(ap->out);
		ap->out = -1;
	}
	if (ap->pidfd != -1) {
		epoll_ctl(ap->ep, EPOLL_CTL_DEL, ap->pidfd, NULL);
		close(ap->pidfd);
		ap->pidfd = -1;
	}
	sv_apply_note_init(&n);
	n.hook = sv_xstrdup(ap->hook);
	n.duration_ms = (long)(now_ms() - ap->start_ms);
	n.files = files_list(ap, ap->changed, 0);
	n.commit = sv_xstrdup(ap->dc.commit);
	n.output_bytes = ap->out_bytes;
	if (ap->timed_out) {
		n.timeout_s = ap->timeout_s;
		n.reason = sv_xasprintf("the hook timed out after %ld s",
		    ap->timeout_s);
	} else if (WIFSIGNALED(status)) {
		n.signal = WTERMSIG(status);
		n.reason = sv_xasprintf("the hook was killed by signal %d",
		    n.signal);
	} else {
		n.exit_status = WEXITSTATUS(status);
		if (n.exit_status == 0)
			n.applied = 1;
		else
			n.reason = sv_xasprintf("the hook failed with status %d",
			    n.exit_status);
	}
	/* A tail cut from a longer output starts at a line. */
	tail = ap->ring;
	len = ap->ring_len;
	if (ap->out_bytes > (long long)len) {
		const char *nl = memchr(tail, '\n', len);

		if (nl != NULL) {
			len -= (size_t)(nl + 1 - tail);
			tail = nl + 1;
		}
	}
	esc = sv_escape(tail, len, SV_ESC_NL);
	n.output = esc;
	finish(ap, &n, 1);
	sv_apply_note_free(&n);
}

/* The hook's environment: ours, less the variables we set, plus them. */
static char **
hook_env(struct sv_applier *ap)
{
	const struct sv_tool *t = sv_tool_find(ap->dc.tool);
	char *component = NULL, *files, **env;
	size_t n = 0, k = 0;
	static const char *const ours[] = { "SUPERVISE_BOTTLE_SLUG=",
	    "SUPERVISE_TOOL=", "SUPERVISE_COMPONENT=", "SUPERVISE_FILES=",
	    "SUPERVISE_STATE_DIR=", "SUPERVISE_COMMIT=",
	    "SUPERVISE_PROPOSAL_ID=", "SUPERVISE_STATUS=",
	    "SUPERVISE_AUDIT_DIR=", NULL };

	if (t != NULL && t->config != NULL)
		component = sv_xasprintf("%.*s",
		    (int)strcspn(t->config, "/"), t->config);
	for (char **e = environ; *e != NULL; e++)
		n++;
	env = sv_xmalloc((n + 16) * sizeof *env);
	for (char **e = environ; *e != NULL; e++) {
		int skip = 0;

		for (size_t i = 0; ours[i] != NULL; i++)
			if (strncmp(*e, ours[i], strlen(ours[i])) == 0)
				skip = 1;
		if (!skip)
			env[k++] = sv_xstrdup(*e);
	}
	files = files_list(ap, ap->changed, 1);
	env[k++] = sv_xasprintf("SUPERVISE_BOTTLE_SLUG=%s", ap->slug);
	env[k++] = sv_xasprintf("SUPERVISE_TOOL=%s", ap->dc.tool);
	env[k++] = sv_xasprintf("SUPERVISE_COMPONENT=%s",
	    component ? component : "");
	env[k++] = sv_xasprintf("SUPERVISE_FILES=%s", files);
	env[k++] = sv_xasprintf("SUPERVISE_STATE_DIR=%s", ap->state_dir);
	env[k++] = sv_xasprintf("SUPERVISE_COMMIT=%s", ap->dc.commit);
	env[k++] = sv_xasprintf("SUPERVISE_PROPOSAL_ID=%s", ap->cur->id);
	env[k++] = sv_xasprintf("SUPERVISE_STATUS=%s",
	    sv_status_name(ap->resp.status));
	env[k++] = sv_xasprintf("SUPERVISE_AUDIT_DIR=%s",
	    ap->a->path);
	env[k] = NULL;
	free(files);
	free(component);
	return env;
}

static void
env_free(char **env)
{
	for (char **e = env; *e != NULL; e++)
		free(*e);
	free(env);
}

/* Start the hook; -1 with e set when it could not be started. */
static int
spawn_hook(struct sv_applier *ap, struct sv_err *e)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct epoll_event ev;
	sigset_t none, dfl;
	char *argv[2], **env;
	int in, pipefd[2], rc;

	in = memfd_create("supervise-decision", MFD_CLOEXEC);
	if (in == -1)
		return sv_errf(e, errno, "can't make the hook's stdin");
	if (sv_write_all(in, ap->record, strlen(ap->record)) == -1 ||
	    lseek(in, 0, SEEK_SET) == -1) {
		close(in);
		return sv_errf(e, errno, "can't write the hook's stdin");
	}
	if (pipe2(pipefd, O_CLOEXEC) == -1) {
		close(in);
		return sv_errf(e, errno, "can't make the hook's output pipe");
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addchdir_np(&fa, ap->state_dir);
	posix_spawnattr_init(&at);
	/* Its own process group, to be killed whole at the timeout; none
	 * of the daemon's blocked or ignored signals. */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	argv[0] = ap->hook;
	argv[1] = NULL;
	env = hook_env(ap);
	ap->start_ms = now_ms();
	rc = posix_spawn(&ap->pid, ap->hook, &fa, &at, argv, env);
	env_free(env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(in);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		return sv_errf(e, rc, "can't run the hook '%s'", ap->hook);
	}
	ap->out = pipefd[0];
	fcntl(ap->out, F_SETFL, fcntl(ap->out, F_GETFL) | O_NONBLOCK);
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = ap->out;
	epoll_ctl(ap->ep, EPOLL_CTL_ADD, ap->out, &ev);
	ap->pidfd = (int)syscall(SYS_pidfd_open, ap->pid, 0);
	if (ap->pidfd != -1) {
		fcntl(ap->pidfd, F_SETFD, FD_CLOEXEC);
		ev.data.fd = ap->pidfd;
		epoll_ctl(ap->ep, EPOLL_CTL_ADD, ap->pidfd, &ev);
		arm(ap, ap->timeout_s * 1000, 0);
	} else {
		arm(ap, POLL_MS, 1);	/* an old kernel: look now and then */
	}
	return 0;
}

/* Start jobs until one is waiting on its hook, or none is left. */
static void
start_next(struct sv_applier *ap)
{
	struct sv_apply_note old;
	struct sv_err e;
	int rc;

	while (ap->cur == NULL && ap->head != NULL) {
		ap->cur = ap->head;
		ap->head = ap->cur->next;
		if (ap->head == NULL)
			ap->tail = &ap->head;
		ap->cur->next = NULL;

		rc = find_decision(ap, ap->cur->id, &ap->dc, &e);
		if (rc == 0) {
			/* Never committed (a marker left by a crash before
			 * the commit): its response is consumed again. */
			sv_applier_unmark(ap, ap->cur->id);
			job_reset(ap);
			continue;
		}
		if (rc == -1 || sv_decision_read(ap->a, ap->slug, ap->cur->id,
		    &ap->record, &ap->resp, &e) == -1) {
			sv_warnx("can't apply the decision on %s: %s",
			    ap->cur->id, e.msg);
			job_reset(ap);	/* the marker stays: next start */
			continue;
		}
		if (ap->resp.status != SV_APPROVED &&
		    ap->resp.status != SV_MODIFIED) {
			sv_applier_unmark(ap, ap->cur->id);
			job_reset(ap);
			continue;
		}
		if (!ap->cur->again) {
			rc = sv_apply_note_read(ap->a, ap->dc.commit, &old, &e);
			sv_apply_note_free(&old);
			if (rc == 1) {
				sv_applier_unmark(ap, ap->cur->id);
				job_reset(ap);
				continue;
			}
		}
		if (sv_audit_commit_changes(ap->a, &ap->dc, &ap->changed,
		    &e) == -1) {
			sv_warn_err(&e);
			ap->changed = 0;
		}
		if (publish(ap, &e) == -1) {
			sv_warn_err(&e);
			finish_no(ap, "%s", e.msg);
			continue;
		}
		if (ap->hook == NULL) {
			finish_no(ap, "no hook configured");
			continue;
		}
		if (spawn_hook(ap, &e) == -1) {
			sv_warn_err(&e);
			finish_no(ap, "%s", e.msg);
			continue;
		}
	}
}

void
sv_applier_events(struct sv_applier *ap)
{
	struct epoll_event evs[4];
	struct sv_err e;
	uint64_t ticks;
	int n, status;
	pid_t r;

	n = epoll_wait(ap->ep, evs, 4, 0);
	for (int i = 0; i < n && ap->cur != NULL; i++) {
		int fd = evs[i].data.fd;

		if (fd == ap->out) {
			read_output(ap, READ_PER_EVENT);
		} else if (fd == ap->tfd) {
			if (read(ap->tfd, &ticks, sizeof ticks) == -1 &&
			    errno != EAGAIN)
				continue;
			if (ap->pid > 0 && !ap->timed_out &&
			    now_ms() - ap->start_ms >= ap->timeout_s * 1000) {
				ap->timed_out = 1;
				kill(-ap->pid, SIGKILL);
				kill(ap->pid, SIGKILL);
			}
		}
	}
	/* Whichever woke us: has the hook exited? */
	if (ap->cur != NULL && ap->pid > 0) {
		r = waitpid(ap->pid, &status, WNOHANG);
		if (r == ap->pid) {
			/* Answered, then the note (off the answer's path, and
			 * before the next hook, however long that one runs). */
			hook_ended(ap, status);
			if (sv_applier_flush(ap, &e) == -1)
				sv_warn_err(&e);
			start_next(ap);
		} else if (r == -1 && errno != EINTR) {
			sv_warnx("can't wait for the apply hook: %s",
			    strerror(errno));
		}
	}
	if (ap->cur == NULL && sv_applier_flush(ap, &e) == -1)
		sv_warn_err(&e);
}

int
sv_applier_flush(struct sv_applier *ap, struct sv_err *e)
{
	struct outcome *o, *next;
	const char **commits, **texts;
	size_t n = 0, i = 0;
	int rc;

	if (ap->notes == NULL)
		return 0;
	for (o = ap->notes; o != NULL; o = o->next)
		n++;
	commits = sv_xmalloc(n * sizeof *commits);
	texts = sv_xmalloc(n * sizeof *texts);
	for (o = ap->notes; o != NULL; o = o->next, i++) {
		commits[i] = o->commit;
		texts[i] = o->text;
	}
	rc = sv_apply_notes_write(ap->a, commits, texts, n, e);
	/* On disk: the markers go.  Notes that failed keep their markers,
	 * so the next start applies those decisions again. */
	for (o = ap->notes; o != NULL; o = next) {
		next = o->next;
		if (rc == 0)
			sv_applier_unmark(ap, o->id);
		free(o->text);
		free(o);
	}
	free(commits);
	free(texts);
	ap->notes = NULL;
	ap->notes_tail = &ap->notes;
	return rc;
}

int
sv_applier_wait(struct sv_applier *ap, struct sv_err *e)
{
	struct epoll_event ev;

	while (ap->cur != NULL) {
		if (epoll_wait(ap->ep, &ev, 1, -1) == -1 && errno != EINTR)
			return sv_errf(e, errno, "can't wait for the apply hook");
		sv_applier_events(ap);
	}
	return sv_applier_flush(ap, e);
}

void
sv_applier_free(struct sv_applier *ap)
{
	struct job *j, *next;
	struct sv_err e;
	int status;

	if (ap == NULL)
		return;
	/* A hook still running is stopped; its marker stays, so the next
	 * start runs it again. */
	if (ap->cur != NULL && ap->pid > 0) {
		kill(-ap->pid, SIGKILL);
		kill(ap->pid, SIGKILL);
		while (waitpid(ap->pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	if (ap->notes != NULL && sv_applier_flush(ap, &e) == -1)
		sv_warn_err(&e);
	for (j = ap->head; j != NULL; j = next) {
		next = j->next;
		free(j);
	}
	if (ap->out != -1)
		close(ap->out);
	if (ap->pidfd != -1)
		close(ap->pidfd);
	job_reset(ap);
	cache_clear(ap);
	free(ap->cache);
	if (ap->ep != -1)
		close(ap->ep);
	if (ap->tfd != -1)
		close(ap->tfd);
	if (ap->markfd != -1)
		close(ap->markfd);
	if (ap->newfd != -1)
		close(ap->newfd);
	free(ap->ring);
	free(ap->slug);
	free(ap->state_dir);
	free(ap->hook);
	free(ap);
}
