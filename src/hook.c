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
 * The caller's thread starts the hook and waits for it a little
 * itself (wait_inline: at most INLINE_MS of every WINDOW_MS): a hook
 * that sends a signal is over by then, and is answered there and then,
 * before the caller goes on to flush the commit its decision came with
 * and archive its response.  A hook that runs longer is handed to a
 * thread of the applier's own (the runner): it reads the child's
 * output, kills it at its deadline, and answers (the caller's callback)
 * the moment the child's pidfd says it has exited, whatever the
 * caller's thread is doing then.  (Handing every hook over cost a
 * thread's wake-up, on two shared cores often longer than the hook;
 * answering only once the caller was back from its flush cost twice
 * what starting the hook costs.)  Everything that touches the audit
 * repository (finding the decision, the live files, the note) stays on
 * the caller's thread, the one that owns libgit2's repository: the
 * runner's part is the child alone.  It hands the outcome back through
 * an eventfd in an epoll set that the daemon nests in its event loop,
 * so a hook that runs for a minute holds up no other call.  Hooks run
 * one at a time, in the order the decisions landed.
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
 * decisions approved together with no hook, or with hooks over within
 * the caller's wait, get one notes commit; after a hook the runner
 * watched, its note is written once the agent has its answer and before
 * the next hook starts.  A decision committed since start-up has no note
 * to look for; one found at start-up (a marker, a response consumed
 * again) is applied only when it has none.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

extern char **environ;

#define READ_CHUNK	(64 << 10)
#define POLL_MS		2		/* without pidfd: how often to look */
#define INLINE_MS	5		/* the caller waits for a hook itself... */
#define WINDOW_MS	50		/* ...this long in every window of this */
#define FIND_MAX	100000		/* commits looked through for one */
#define CACHE_MAX	4096		/* decision commits remembered */

struct job {
	char id[SV_ID_MAX + 1];
	int again;		/* apply even when already noted */
	int fresh;		/* committed since start-up: can't be noted */
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
	int recovered;		/* sv_applier_recover has run */
	int newfd;		/* SPOOL/responses/new, or -1 */
	int ep;			/* for the caller's loop: holds donefd */
	int donefd;		/* eventfd: the runner has an outcome */
	int wakefd;		/* eventfd: the runner has a child to watch,
				 * or is to stop */
	struct job *head, **tail;
	struct outcome *notes, **notes_tail;
	/* the job under way (set by the caller's thread, read by the
	 * runner between RUN_START and RUN_DONE) */
	struct job *cur;
	struct sv_decision_commit dc;
	struct sv_response resp;
	char *record;
	unsigned changed;
	char **env;		/* the hook's environment */
	int in;			/* its stdin (a memfd) */
	/* the runner's, until RUN_DONE */
	pthread_t runner;
	int have_runner;
	pid_t pid;
	int pidfd, out;
	int64_t start_ms;
	int timed_out;
	char *ring;		/* the output's tail */
	size_t ring_len;
	long long out_bytes;
	struct sv_apply_note ended;	/* the outcome, answered */
	/* the caller's waits for hooks in this window (wait_inline) */
	int64_t window_start, window_spent;
	/* under mu */
	pthread_mutex_t mu;
	enum { RUN_IDLE, RUN_START, RUN_WATCH, RUN_ANSWER, RUN_DONE } run;
	int stop;
	int asked;		/* busy() said yes once the answer was out */
	/* Decision commits on main: handed over by the committer
	 * (sv_applier_add_commit), or seen walking main, so that a batch
	 * of decisions applied oldest first walks main once, not once each. */
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
	ap->markfd = ap->newfd = ap->pidfd = ap->out = ap->in = -1;
	ap->tail = &ap->head;
	ap->notes_tail = &ap->notes;
	ap->ring = sv_xmalloc(SV_HOOK_OUTPUT_MAX);
	sv_apply_note_init(&ap->ended);
	pthread_mutex_init(&ap->mu, NULL);
	ap->ep = epoll_create1(EPOLL_CLOEXEC);
	ap->donefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ap->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ap->ep == -1 || ap->donefd == -1 || ap->wakefd == -1) {
		sv_errf(e, errno, "can't set up the apply hook's event loop");
		goto fail;
	}
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = ap->donefd;
	if (epoll_ctl(ap->ep, EPOLL_CTL_ADD, ap->donefd, &ev) == -1) {
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
sv_applier_busy(struct sv_applier *ap, const char *id)
{
	if (ap->cur != NULL && strcmp(ap->cur->id, id) == 0) {
		/* Answered already by the runner: whoever asks now waits
		 * for the answer again, given once the outcome is back. */
		pthread_mutex_lock(&ap->mu);
		if (ap->run == RUN_ANSWER || ap->run == RUN_DONE)
			ap->asked = 1;
		pthread_mutex_unlock(&ap->mu);
		return 1;
	}
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
 * It must be on disk before the branch moves, not before anything else:
 * handed to d, the directory is flushed with the commit's objects, in
 * the same round of fsyncs.
 */
int
sv_applier_mark(struct sv_applier *ap, char *const *ids, size_t n,
    struct sv_durable *d, struct sv_err *e)
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
	if (made > 0 && d != NULL)
		sv_durable_fd(d, ap->markfd, "the spool's 'apply' directory");
	else if (made > 0 && fsync(ap->markfd) == -1)
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

/* Remember d, a decision commit on main, unless it is known already. */
static void
cache_add(struct sv_applier *ap, const struct sv_decision_commit *d)
{
	for (size_t i = 0; i < ap->ncache; i++)
		if (strcmp(ap->cache[i].commit, d->commit) == 0)
			return;
	if (ap->ncache == CACHE_MAX)
		cache_clear(ap);
	if (ap->cache == NULL)
		ap->cache = sv_xmalloc(CACHE_MAX * sizeof *ap->cache);
	sv_decision_commit_copy(&ap->cache[ap->ncache++], d);
}

static int
cache_one(const struct sv_decision_commit *d, void *arg)
{
	struct walk *w = arg;

	cache_add(w->ap, d);
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
	/* Applied, its note not yet written (a marker read at start-up
	 * for a decision its re-consumed response applied just before). */
	for (struct outcome *o = ap->notes; o != NULL; o = o->next)
		if (strcmp(o->id, id) == 0)
			return;
	j = sv_xmalloc(sizeof *j);
	memset(j, 0, sizeof *j);
	snprintf(j->id, sizeof j->id, "%s", id);
	j->again = again;
	/* A decision consumed once start-up's recovery is done was
	 * committed just now, not found on main: no note to look for. */
	j->fresh = ap->recovered;
	*ap->tail = j;
	ap->tail = &j->next;
	if (ap->cur == NULL)
		start_next(ap);
}

void
sv_applier_add_commit(struct sv_applier *ap,
    const struct sv_decision_commit *dc)
{
	cache_add(ap, dc);
	sv_applier_add(ap, dc->id, 0);
}

int
sv_applier_recover(struct sv_applier *ap, struct sv_err *e)
{
	int fd = -1;
	DIR *d;
	struct dirent *de;
	struct sv_err why;

	if (sv_apply_notes_unlock(ap->a, e) == -1)
		return -1;
	if (ap->markfd == -1) {
		ap->recovered = 1;
		return 0;
	}
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
	ap->recovered = 1;
	return 0;
}


static void
env_free(char **env)
{
	if (env == NULL)
		return;
	for (char **e = env; *e != NULL; e++)
		free(*e);
	free(env);
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
	env_free(ap->env);
	ap->env = NULL;
	if (ap->in != -1)
		close(ap->in);
	ap->in = -1;
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

/* Tell the caller the job's outcome (from either thread). */
static void
answer(struct sv_applier *ap, const struct sv_apply_note *note)
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
}

/* Answered: queue the note (or drop the marker), and go on. */
static void
settle(struct sv_applier *ap, const struct sv_apply_note *note, int noted)
{
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

/* The job ends without a hook run: said, noted. */
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
	answer(ap, &n);
	settle(ap, &n, 1);
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

/* --- the runner: the hook's child, on a thread of its own ---------------- */

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
		close(ap->out);
		ap->out = -1;
	}
}

static void
set_run(struct sv_applier *ap, int run)
{
	pthread_mutex_lock(&ap->mu);
	ap->run = run;
	pthread_mutex_unlock(&ap->mu);
}

static int
stopping(struct sv_applier *ap)
{
	int stop;

	pthread_mutex_lock(&ap->mu);
	stop = ap->stop;
	pthread_mutex_unlock(&ap->mu);
	return stop;
}

static void
kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof one) == -1 && errno != EAGAIN)
		sv_warnx("can't wake the apply hook's thread: %s",
		    strerror(errno));
}

/* The outcome is out (ap->ended): answer, then hand it back. */
static void
runner_done(struct sv_applier *ap)
{
	set_run(ap, RUN_ANSWER);
	answer(ap, &ap->ended);
	set_run(ap, RUN_DONE);
	kick(ap->donefd);
}

/* Start the hook; -1 with e set when it could not be started. */
static int
spawn_hook(struct sv_applier *ap, struct sv_err *e)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	char *argv[2];
	int pipefd[2], rc;

	if (pipe2(pipefd, O_CLOEXEC) == -1)
		return sv_errf(e, errno, "can't make the hook's output pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, ap->in, 0);
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
	ap->start_ms = now_ms();
	rc = posix_spawn(&ap->pid, ap->hook, &fa, &at, argv, ap->env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pipefd[1]);
	if (rc != 0) {
		ap->pid = 0;
		close(pipefd[0]);
		return sv_errf(e, rc, "can't run the hook '%s'", ap->hook);
	}
	ap->out = pipefd[0];
	fcntl(ap->out, F_SETFL, fcntl(ap->out, F_GETFL) | O_NONBLOCK);
	ap->pidfd = (int)syscall(SYS_pidfd_open, ap->pid, 0);
	if (ap->pidfd != -1)
		fcntl(ap->pidfd, F_SETFD, FD_CLOEXEC);
	return 0;
}

/* The hook has exited (status from waitpid): its outcome, ap->ended. */
static void
hook_ended(struct sv_applier *ap, int status)
{
	struct sv_apply_note *n = &ap->ended;
	const char *tail;
	size_t len;

	/* What it wrote before it exited; a child it left may hold the
	 * pipe open, so take what is there, not the end of file. */
	read_output(ap, SV_HOOK_OUTPUT_MAX * 4);
	if (ap->out != -1) {
		close(ap->out);
		ap->out = -1;
	}
	if (ap->pidfd != -1) {
		close(ap->pidfd);
		ap->pidfd = -1;
	}
	sv_apply_note_init(n);
	n->hook = sv_xstrdup(ap->hook);
	n->duration_ms = (long)(now_ms() - ap->start_ms);
	n->files = files_list(ap, ap->changed, 0);
	n->commit = sv_xstrdup(ap->dc.commit);
	n->output_bytes = ap->out_bytes;
	if (ap->timed_out) {
		n->timeout_s = ap->timeout_s;
		n->reason = sv_xasprintf("the hook timed out after %ld s",
		    ap->timeout_s);
	} else if (WIFSIGNALED(status)) {
		n->signal = WTERMSIG(status);
		n->reason = sv_xasprintf("the hook was killed by signal %d",
		    n->signal);
	} else {
		n->exit_status = WEXITSTATUS(status);
		if (n->exit_status == 0)
			n->applied = 1;
		else
			n->reason = sv_xasprintf("the hook failed with status "
			    "%d", n->exit_status);
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
	n->output = sv_escape(tail, len, SV_ESC_NL);
}

/* Kill the hook's process group (and the hook, if it left it). */
static void
kill_hook(struct sv_applier *ap)
{
	kill(-ap->pid, SIGKILL);
	kill(ap->pid, SIGKILL);
}

/*
 * Watch the child until it exits: its output read as it comes, killed at
 * its deadline.  0 when it exited (status set), -1 when told to stop
 * (the child killed and reaped, nothing answered).
 */
static int
watch(struct sv_applier *ap, int *status)
{
	struct pollfd pfd[3];
	int64_t deadline = ap->start_ms + ap->timeout_s * 1000, left;
	uint64_t v;
	pid_t r;
	int ms;

	for (;;) {
		pfd[0].fd = ap->wakefd;
		pfd[1].fd = ap->pidfd;
		pfd[2].fd = ap->out;
		for (int i = 0; i < 3; i++) {
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		ms = -1;
		if (!ap->timed_out) {
			left = deadline - now_ms();
			ms = left < 0 ? 0 : left > INT32_MAX ? INT32_MAX :
			    (int)left;
		}
		if (ap->pidfd == -1 && (ms == -1 || ms > POLL_MS))
			ms = POLL_MS;	/* an old kernel: look now and then */
		if (poll(pfd, 3, ms) == -1 && errno != EINTR) {
			sv_warnx("can't wait for the apply hook: %s",
			    strerror(errno));
			ms = POLL_MS;
		}
		if (pfd[0].revents & POLLIN) {
			/* A wake-up either way: what for is under mu. */
			(void)!read(ap->wakefd, &v, sizeof v);
			if (stopping(ap)) {
				kill_hook(ap);
				while (waitpid(ap->pid, status, 0) == -1 &&
				    errno == EINTR)
					;
				ap->pid = 0;
				return -1;
			}
		}
		if (pfd[2].revents != 0)
			read_output(ap, SIZE_MAX);
		if (!ap->timed_out && now_ms() >= deadline) {
			ap->timed_out = 1;
			kill_hook(ap);
		}
		if (ap->pidfd == -1 || pfd[1].revents != 0) {
			r = waitpid(ap->pid, status, WNOHANG);
			if (r == ap->pid)
				return 0;
			if (r == -1 && errno != EINTR) {
				/* Not ours to wait for any more: say so. */
				sv_warnx("can't wait for the apply hook: %s",
				    strerror(errno));
				*status = 127 << 8;
				return 0;
			}
		}
	}
}

/* The runner: watches each hook it is given, answers. */
static void *
runner(void *arg)
{
	struct sv_applier *ap = arg;
	struct pollfd pfd;
	uint64_t v;
	int status, go;

	for (;;) {
		pthread_mutex_lock(&ap->mu);
		if (ap->stop) {
			pthread_mutex_unlock(&ap->mu);
			return NULL;
		}
		go = ap->run == RUN_START;
		if (go)
			ap->run = RUN_WATCH;
		pthread_mutex_unlock(&ap->mu);
		if (!go) {
			pfd.fd = ap->wakefd;
			pfd.events = POLLIN;
			if (poll(&pfd, 1, -1) == 1 && read(ap->wakefd, &v,
			    sizeof v) == -1 && errno != EAGAIN)
				sv_warnx("can't read the apply hook's eventfd: "
				    "%s", strerror(errno));
			continue;
		}
		if (watch(ap, &status) == -1) {
			if (ap->out != -1)
				close(ap->out);
			if (ap->pidfd != -1)
				close(ap->pidfd);
			ap->out = ap->pidfd = -1;
			return NULL;
		}
		hook_ended(ap, status);
		runner_done(ap);
	}
}

/*
 * Wait for the hook on the caller's thread, as long as this window's
 * allowance lasts: 1 when it has exited (its outcome in ap->ended), 0
 * when it runs on.  A hook that does little (a signal sent, a file
 * copied) is over within a millisecond or two; seen here, its answer
 * needs no other thread to wake, on a machine where each wake-up may
 * wait for a core.  The allowance, INLINE_MS in every WINDOW_MS, bounds
 * what the daemon's other work waits for, however many hooks run.
 */
static int
wait_inline(struct sv_applier *ap)
{
	struct pollfd pfd[2];
	int64_t start = now_ms(), now = start, until;
	int status;
	pid_t r;

	if (ap->pidfd == -1)
		return 0;	/* an old kernel: the runner looks now and then */
	if (start - ap->window_start >= WINDOW_MS) {
		ap->window_start = start;
		ap->window_spent = 0;
	}
	until = start + INLINE_MS - ap->window_spent;
	while (now < until) {
		pfd[0].fd = ap->pidfd;
		pfd[1].fd = ap->out;	/* -1 once at end of file: ignored */
		pfd[0].events = pfd[1].events = POLLIN;
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, (int)(until - now)) == -1 && errno != EINTR)
			break;
		if (pfd[1].revents != 0)
			read_output(ap, SIZE_MAX);
		if (pfd[0].revents != 0) {
			r = waitpid(ap->pid, &status, WNOHANG);
			if (r == ap->pid) {
				ap->window_spent += now_ms() - start;
				hook_ended(ap, status);
				return 1;
			}
			if (r == -1 && errno != EINTR)
				break;	/* the runner says why */
		}
		now = now_ms();
	}
	ap->window_spent += now_ms() - start;
	return 0;
}

/*
 * Start the job's hook: 1 when it is over already (ap->ended), 0 when it
 * was handed to the runner (started on first use, with every signal
 * blocked: they are the daemon's thread's to take), -1 when it could not
 * be started.  The spawn is here, not on the runner: posix_spawn holds
 * its caller only until the child has exec'd, and a hand-over before it
 * would put a thread's wake-up on the path of every hook.
 */
static int
start_hook(struct sv_applier *ap, struct sv_err *e)
{
	sigset_t all, old;
	int rc;

	ap->in = memfd_create("supervise-decision", MFD_CLOEXEC);
	if (ap->in == -1)
		return sv_errf(e, errno, "can't make the hook's stdin");
	if (sv_write_all(ap->in, ap->record, strlen(ap->record)) == -1 ||
	    lseek(ap->in, 0, SEEK_SET) == -1)
		return sv_errf(e, errno, "can't write the hook's stdin");
	ap->env = hook_env(ap);
	if (!ap->have_runner) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&ap->runner, NULL, runner, ap);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0)
			return sv_errf(e, rc, "can't start the apply hook's "
			    "thread");
		ap->have_runner = 1;
	}
	if (spawn_hook(ap, e) == -1)
		return -1;
	if (wait_inline(ap))
		return 1;
	set_run(ap, RUN_START);
	kick(ap->wakefd);
	return 0;
}

/* --- the caller's side ----------------------------------------------------- */

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
		if (!ap->cur->again && !ap->cur->fresh) {
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
		rc = start_hook(ap, &e);
		if (rc == -1) {
			sv_warn_err(&e);
			finish_no(ap, "%s", e.msg);
			continue;
		}
		if (rc == 1) {
			/* Over already: answered here, noted with the batch. */
			answer(ap, &ap->ended);
			settle(ap, &ap->ended, 1);
			sv_apply_note_free(&ap->ended);
			sv_apply_note_init(&ap->ended);
		}
	}
}

void
sv_applier_events(struct sv_applier *ap)
{
	struct sv_err e;
	uint64_t v;
	int run, asked;

	if (read(ap->donefd, &v, sizeof v) == -1 && errno != EAGAIN)
		sv_warnx("can't read the apply hook's eventfd: %s",
		    strerror(errno));
	pthread_mutex_lock(&ap->mu);
	run = ap->run;
	asked = ap->asked;
	if (run == RUN_DONE) {
		ap->run = RUN_IDLE;
		ap->asked = 0;
	}
	pthread_mutex_unlock(&ap->mu);
	if (ap->cur != NULL && run == RUN_DONE) {
		/* A caller that came after the answer and found the
		 * decision still being applied gets it now. */
		if (asked)
			answer(ap, &ap->ended);
		/* Answered, then the note (off the answer's path, and
		 * before the next hook, however long that one runs). */
		settle(ap, &ap->ended, 1);
		sv_apply_note_free(&ap->ended);
		sv_apply_note_init(&ap->ended);
		if (sv_applier_flush(ap, &e) == -1)
			sv_warn_err(&e);
		start_next(ap);
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

	if (ap == NULL)
		return;
	/* A hook still running is stopped; its marker stays, so the next
	 * start runs it again. */
	if (ap->have_runner) {
		pthread_mutex_lock(&ap->mu);
		ap->stop = 1;
		pthread_mutex_unlock(&ap->mu);
		kick(ap->wakefd);
		pthread_join(ap->runner, NULL);
	}
	/* Handed over too late for the runner to see it. */
	if (ap->cur != NULL && ap->pid > 0 && ap->run == RUN_START) {
		int status;

		kill_hook(ap);
		while (waitpid(ap->pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	/* An outcome answered but not yet taken back: noted now. */
	if (ap->cur != NULL && ap->run == RUN_DONE) {
		settle(ap, &ap->ended, 1);
		sv_apply_note_free(&ap->ended);
	}
	if (ap->notes != NULL && sv_applier_flush(ap, &e) == -1)
		sv_warn_err(&e);
	for (j = ap->head; j != NULL; j = next) {
		next = j->next;
		free(j);
	}
	if (ap->cur != NULL)
		job_reset(ap);
	cache_clear(ap);
	free(ap->cache);
	if (ap->ep != -1)
		close(ap->ep);
	if (ap->donefd != -1)
		close(ap->donefd);
	if (ap->wakefd != -1)
		close(ap->wakefd);
	if (ap->markfd != -1)
		close(ap->markfd);
	if (ap->newfd != -1)
		close(ap->newfd);
	pthread_mutex_destroy(&ap->mu);
	free(ap->ring);
	free(ap->slug);
	free(ap->state_dir);
	free(ap->hook);
	free(ap);
}
