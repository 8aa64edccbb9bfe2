/*
 * supervised.c: the MCP sidecar of one bottle: start-up, the spool
 * thread's loop, shutdown, and --drain.
 *
 * An agent's tools/call becomes a proposal in the bottle's spool; the call
 * is held open until the operator's decision lands in responses/new, is
 * committed to the audit repository, and only then answered.  The parts:
 * config.c (options), http.c (libmicrohttpd's thread), calls.c (the table
 * of waiting calls), jobs.c (what the spool thread does for a call),
 * decisions.c (responses consumed and answered).
 *
 * Threads: the main thread is the spool thread; serve starts
 * libmicrohttpd's, and then runs one epoll loop over the job eventfd,
 * inotify on responses/new, a timerfd, a signalfd, the hook runner and
 * the hang-ups of suspended calls.  The full account is in sidecar.h.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "sidecar.h"

#define TICK_MS		250		/* timer resolution for progress/max-wait */
#define CLEAN_EVERY_MS	(3600 * 1000)	/* tmp/ cleaning */
#define STOP_DRAIN_MS	3000		/* flushing answers at shutdown */
#define EXPIRE_EVERY_MS	1000		/* how often expiry is looked at */

struct sidecar sc;

/* --- start-up and shutdown ----------------------------------------------- */

static void
open_stores(void)
{
	struct sv_err e;
	char *qdir = sc.cfg.queue_dir ? sv_xstrdup(sc.cfg.queue_dir) :
	    sv_queue_dir(sc.cfg.slug);

	if (sv_spool_open(&sc.spool, qdir, sc.cfg.slug, 1, &e) == -1) {
		free(qdir);
		sv_die(1, "%s", e.msg);
	}
	free(qdir);
	if (sv_audit_open(&sc.audit, sc.cfg.audit_dir, &e) == -1)
		sv_die(1, "%s", e.msg);
	sv_audit_defer_merges(sc.audit);	/* see sd_maintain (decisions.c) */
	sv_audit_defer_sync(sc.audit);		/* answer first: consume.c */
	if (sv_applier_new(&sc.applier, sc.audit, sc.cfg.slug,
	    sc.cfg.state_dir, sc.cfg.apply_hook, sc.cfg.apply_timeout,
	    sc.spool.dirfd, sd_on_applied, NULL, &e) == -1)
		sv_die(1, "%s", e.msg);
}

/*
 * Recovery: mark what responses/new holds (its apply is due once it is
 * committed), consume it, bring the live files up to date, and apply
 * again what a crash left unapplied (the markers).
 */
static int
recover(void (*cb)(const struct sv_decision *, void *))
{
	struct dirent *de;
	struct sv_err e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *dir;
	int fd, rc = 0;

	fd = dup(sc.spool.rnew);
	if (fd != -1 && (dir = fdopendir(fd)) != NULL) {
		rewinddir(dir);
		while ((de = readdir(dir)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (n == cap)
				names = sv_xrealloc(names, (cap = cap ? 2 * cap :
				    64) * sizeof *names);
			names[n++] = sv_xstrdup(de->d_name);
		}
		closedir(dir);
	} else if (fd != -1) {
		close(fd);
	}
	if (sv_applier_mark(sc.applier, names, n, NULL, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc == 0 && sv_consume_all(&sc.spool, sc.audit, cb, NULL, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	sd_publish_live();
	if (sv_applier_recover(sc.applier, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	if (sv_applier_flush(sc.applier, &e) == -1) {
		sv_warn_err(&e);
		rc = -1;
	}
	return rc;
}

static void
print_drained(const struct sv_decision *d, void *arg)
{
	char *why;

	sd_on_decision(d, arg);
	if (d->status == SV_NONE && d->error == NULL)
		return;
	if (d->status == SV_NONE) {
		why = sv_escape(d->error ? d->error : "?",
		    strlen(d->error ? d->error : "?"), 0);
		printf("%s\trefused\t%s\n", d->id, why);
		free(why);
	} else {
		printf("%s\t%s\n", d->id, sv_status_name(d->status));
	}
}

static int
drain(void)
{
	struct sv_err e;
	int n;

	open_stores();
	n = recover(print_drained);
	if (sv_applier_wait(sc.applier, &e) == -1) {
		sv_warn_err(&e);
		n = -1;
	}
	fflush(stdout);
	if (n == 0 && sv_audit_maintain(sc.audit, &e) == -1)
		sv_warn_err(&e);
	sv_applier_free(sc.applier);
	sv_audit_close(sc.audit);
	sv_spool_close(&sc.spool);
	return n == -1 ? 1 : 0;
}

/* Pending proposals become attachable again after a restart (withdrawn
 * ones are known, for expiry, but not offered to retries); `again`, with
 * --expire: those other writers filed since, quietly (ids already known
 * are not read again). */
static void
load_pending(int again)
{
	struct sv_entry *v;
	struct sv_proposal p;
	struct sv_err e;
	size_t n, i, keylen;
	char *path, *key;
	struct pending *pp;
	int known;

	if (sv_list_pending(&sc.spool, &v, &n, &e) == -1) {
		if (!again)
			sv_warn_err(&e);
		return;
	}
	for (i = 0; i < n; i++) {
		sd_lock();
		known = sd_pending_by_id(v[i].id) != NULL;
		sd_unlock();
		if (known)
			continue;
		path = sv_xasprintf("proposals/%s/%s",
		    v[i].where == SV_NEW ? "new" : "cur", v[i].name);
		if (sv_proposal_read(v[i].where == SV_NEW ? sc.spool.pnew :
		    sc.spool.pcur, v[i].name, path, &p, &e) == -1) {
			if (!again)	/* said once, not at every re-scan */
				sv_warn_err(&e);
		} else {
			/* Withdrawn: not offered to a retry, but it may expire. */
			keylen = 0;
			key = strchr(v[i].flags, 'T') != NULL ? NULL :
			    sd_make_key(p.tool, p.proposed_file, &keylen);
			sd_lock();
			pp = sd_pending_get(p.id, key, keylen);
			pp->expires = sd_expiry_of(p.arrival_timestamp);
			pp->gone_marked = v[i].gone;
			sd_unlock();
		}
		sv_proposal_free(&p);
		free(path);
	}
	sv_entries_free(v);
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			sv_warnx("can't raise the open file limit: %s",
			    strerror(errno));
	}
}

/*
 * Answer every call with a clear error (its proposal stays pending), let
 * libmicrohttpd flush those answers, then stop it: it must not be
 * stopped with a connection still suspended.
 */
static void
shutdown_calls(void)
{
	struct resume_list rl = {0};
	struct request *r;
	struct job *j;
	int64_t until;
	size_t left;

	sd_lock();
	sc.stopping = 1;
	while ((j = sc.jobs) != NULL) {
		sc.jobs = j->next;
		if (j->kind != JOB_CANCEL)
			sd_finish(j->r, sv_mcp_error(j->r->msg.id,
			    SV_RPC_INTERNAL_ERROR, "supervised is shutting "
			    "down; nothing was proposed"), &rl);
		sd_request_unref(j->r);
		free(j);
	}
	sc.jobs_tail = &sc.jobs;
	while ((r = sc.calls) != NULL) {
		if (r->id[0] != '\0')
			sd_finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
			    "supervised is shutting down; proposal %s stays "
			    "pending", r->id), &rl);
		else
			sd_finish(r, sv_mcp_error(r->msg.id, SV_RPC_INTERNAL_ERROR,
			    "supervised is shutting down"), &rl);
	}
	sd_unlock();
	sd_resume_all(&rl);
	until = sv_now_ms() + STOP_DRAIN_MS;
	for (;;) {
		sd_lock();
		left = sc.ncalls;
		sd_unlock();
		if (left == 0 || sv_now_ms() >= until)
			break;
		usleep(10000);
	}
	MHD_stop_daemon(sc.mhd);
	sc.mhd = NULL;
}

/*
 * Part of the start-up notice: when this account's operator has no email
 * (no SUPERVISE_OPERATOR, no git user.email), what their decisions are
 * recorded as, the tools' words, once, where whoever started us sees it.
 */
static void
say_operator(void)
{
	char *note, *who = sv_operator(&note);

	if (note != NULL)
		sv_warnx("%s", note);
	free(note);
	free(who);
}

static int
serve(void)
{
	struct epoll_event ev, evs[8];
	struct itimerspec its;
	char buf[64 * 1024] __attribute__((aligned(8)));
	struct signalfd_siginfo si;
	struct sv_err e;
	sigset_t sigs;
	struct batch batch;
	int ep, ino, tfd, sfd, n, i, stop = 0, overflow;
	int64_t next_rescan, next_clean, next_expire, now;
	ssize_t len;
	char *p;
	uint64_t ticks;

	pthread_mutex_init(&sc.lock, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	open_stores();
	say_operator();

	/* Subscribe before anything is proposed. */
	ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ino == -1)
		sv_die(1, "can't start inotify: %s", strerror(errno));
	p = sv_xasprintf("%s/responses/new", sc.spool.path);
	if (inotify_add_watch(ino, p, IN_MOVED_TO | IN_CLOSE_WRITE |
	    IN_ONLYDIR) == -1)
		sv_warnx("can't watch '%s' (re-scanning every %lds instead): "
		    "%s", p, sc.cfg.rescan, strerror(errno));
	free(p);

	/* Recovery: decisions that landed while no sidecar ran, and those
	 * a crash left unapplied; the live files as main has them. */
	recover(sd_on_decision);
	if (sv_audit_maintain(sc.audit, &e) == -1)
		sv_warn_err(&e);
	load_pending(0);
	if (sv_clean_tmp(&sc.spool, SV_TMP_MAX_AGE, &e) == -1)
		sv_warn_err(&e);
	/* For the operator's tools; then what expired while stopped. */
	if (sv_spool_set_expire(&sc.spool, sc.cfg.expire, &e) == -1)
		sv_warn_err(&e);
	sd_expire_due();
	sd_policy_ready();

	/*
	 * Until here a signal just ends us: recovery is safe to interrupt
	 * at any point (that is what it is for).  From now on SIGTERM and
	 * SIGINT are read from a signalfd by the loop below; blocked before
	 * libmicrohttpd's thread starts, so no other thread takes them.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd == -1)
		sv_die(1, "can't create a signalfd: %s", strerror(errno));
	sc.jobs_tail = &sc.jobs;
	sc.job_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (sc.job_fd == -1 || tfd == -1 || ep == -1)
		sv_die(1, "can't set up the event loop: %s", strerror(errno));
	memset(&its, 0, sizeof its);
	its.it_interval.tv_nsec = TICK_MS * 1000000L;
	its.it_value = its.it_interval;
	timerfd_settime(tfd, 0, &its, NULL);
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = sc.job_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sc.job_fd, &ev);
	ev.data.fd = ino;
	epoll_ctl(ep, EPOLL_CTL_ADD, ino, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	if (sc.cfg.egress_proxy != NULL &&
	    sv_egress_open(&sc.egress, sc.cfg.egress_proxy, ep, &e) == -1)
		sv_die(1, "%s", e.msg);
	ev.data.fd = sv_applier_fd(sc.applier);
	epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);

	sc.hup_ep = epoll_create1(EPOLL_CLOEXEC);
	if (sc.hup_ep == -1)
		sv_die(1, "can't set up the event loop: %s", strerror(errno));
	ev.events = EPOLLIN;
	ev.data.fd = sc.hup_ep;
	epoll_ctl(ep, EPOLL_CTL_ADD, sc.hup_ep, &ev);
	sv_budget_init(&sc.bodies, (size_t)sc.cfg.body_budget << 20);
	sd_start_http();
	batch.n = 0;
	next_rescan = sv_now_ms() + sc.cfg.rescan * 1000;
	next_clean = sv_now_ms() + CLEAN_EVERY_MS;
	next_expire = sv_now_ms() + EXPIRE_EVERY_MS;
	while (!stop) {
		n = epoll_wait(ep, evs, 8, -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			sv_die(1, "epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sfd) {
				if (read(sfd, &si, sizeof si) == sizeof si)
					sv_warnx("%s: answering waiting calls "
					    "and stopping",
					    strsignal((int)si.ssi_signo));
				stop = 1;
			} else if (fd == sc.job_fd) {
				sd_run_jobs();
			} else if (fd == sc.hup_ep) {
				sd_callers_left();
			} else if (fd == sv_applier_fd(sc.applier)) {
				sv_applier_events(sc.applier);
				if (sc.maintain_due)
					sd_maintain();
			} else if (fd == ino) {
				/* Everything reported so far is one batch. */
				overflow = 0;
				while ((len = read(ino, buf, sizeof buf)) > 0) {
					for (p = buf; p < buf + len;) {
						struct inotify_event *ie =
						    (struct inotify_event *)p;

						if (ie->mask & IN_Q_OVERFLOW)
							overflow = 1;
						else if (ie->len > 0)
							sd_batch_add(&batch,
							    ie->name);
						p += sizeof *ie + ie->len;
					}
				}
				sd_batch_flush(&batch);
				if (overflow)
					sd_rescan(0);
			} else if (fd == tfd) {
				if (read(tfd, &ticks, sizeof ticks) == -1 &&
				    errno != EAGAIN)
					sv_warnx("timerfd: %s", strerror(errno));
				sd_tick();
				now = sv_now_ms();
				if (now >= next_rescan) {
					sd_rescan(2);
					/* Proposals other writers filed. */
					if (sc.cfg.expire > 0)
						load_pending(1);
					next_rescan = now + sc.cfg.rescan * 1000;
				}
				if (now >= next_expire) {
					sd_expire_due();
					next_expire = now + EXPIRE_EVERY_MS;
				}
				if (now >= next_clean) {
					if (sv_clean_tmp(&sc.spool,
					    SV_TMP_MAX_AGE, &e) == -1)
						sv_warn_err(&e);
					next_clean = now + CLEAN_EVERY_MS;
				}
			} else if (sc.egress != NULL) {
				sv_egress_event(sc.egress, fd, evs[i].events);
			}
		}
		sd_gone_sync();
	}
	shutdown_calls();
	sd_gone_sync();
	sv_egress_close(sc.egress);
	sv_applier_free(sc.applier);
	sd_free_pending();
	sv_rules_free(&sc.rules);
	close(ep);
	close(tfd);
	close(ino);
	close(sfd);
	close(sc.job_fd);
	close(sc.hup_ep);
	sv_audit_close(sc.audit);
	sv_spool_close(&sc.spool);
	pthread_mutex_destroy(&sc.lock);
	free(sc.cfg.token);
	free(sc.cfg.state_dir);
	free(sc.cfg.apply_hook);
	return 0;
}

int
main(int argc, char **argv)
{
	int rc;

	sv_setprog(argv[0]);
	/*
	 * Blocks of 128 KiB and more (request bodies, their payloads, a
	 * batch's texts) are mapped apart and unmapped when freed.  Left
	 * alone, glibc raises this threshold after the first such free, and
	 * later big blocks come from the heap, where freeing them rarely
	 * shrinks it: a burst of large calls would leave RSS at its peak
	 * after they are all answered.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	sd_parse_config(argc, argv, &sc.cfg);
	if (sc.cfg.drain) {
		rc = drain();
		free(sc.cfg.token);
		free(sc.cfg.hosts);
		free(sc.cfg.state_dir);
		free(sc.cfg.apply_hook);
		return rc;
	}
	return serve();
}
