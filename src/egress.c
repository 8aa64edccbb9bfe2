/*
 * egress.c: the egress proxy's live route table, for list-egress-routes.
 *
 * The egress proxy answers GET http://_egress.local/allowlist, asked
 * through it as a forward proxy, with the route table it enforces now:
 * what the agent can reach, which may differ from the files if the proxy
 * has not reloaded them.  The fetch is libcurl's multi interface driven
 * by the daemon's own epoll loop (the spool thread), not a thread of its
 * own:
 *  - curl's sockets are added to that epoll set as curl asks
 *    (CURLMOPT_SOCKETFUNCTION), and its one timer is a timerfd in the
 *    same set (CURLMOPT_TIMERFUNCTION); sv_egress_event hands each
 *    readiness to curl_multi_socket_action.  Nothing ever blocks: a proxy
 *    that does not answer costs a socket and a timer, not the loop.
 *  - Each call has its own transfer, bounded by EGRESS_TIMEOUT_MS in all
 *    (the connection by EGRESS_CONNECT_MS), and its body by
 *    EGRESS_BODY_MAX: many calls, and a proxy that hangs, never hold up
 *    decisions for more than a callback.
 *  - The proxy is the only way out: no proxy from the environment, no
 *    redirects, http only for the request itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "daemon.h"

#define EGRESS_CONNECT_MS	2000
#define EGRESS_TIMEOUT_MS	5000
#define EGRESS_BODY_MAX		(1 << 20)

struct fetch;

struct sv_egress {
	CURLM *multi;
	char *proxy;
	int epfd;
	int tfd;		/* curl's timer */
	struct fetch *fetches;	/* in flight */
};

struct fetch {
	struct fetch *prev, *next;
	CURL *easy;
	char *buf;
	size_t len;
	int too_big;
	char err[CURL_ERROR_SIZE];
	sv_egress_done *done;
	void *arg;
};

int
sv_egress_check_url(const char *url, struct sv_err *e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL;
	int rc = -1;

	if (u == NULL)
		sv_die(111, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		sv_errf(e, 0, "invalid egress proxy '%s': want a URL like "
		    "http://127.0.0.1:9099", url);
	else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		sv_errf(e, 0, "invalid egress proxy '%s': the scheme must be "
		    "http or https", url);
	else if ((curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
	    strcmp(path, "/") != 0) ||
	    curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
		sv_errf(e, 0, "invalid egress proxy '%s': a proxy address has "
		    "no path or query", url);
	else
		rc = 0;
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

/* curl's timer: -1 stops it, 0 means "act now", on the next loop turn. */
static int
timer_cb(CURLM *multi, long ms, void *arg)
{
	struct sv_egress *eg = arg;
	struct itimerspec its;

	(void)multi;
	memset(&its, 0, sizeof its);
	if (ms >= 0) {
		its.it_value.tv_sec = ms / 1000;
		its.it_value.tv_nsec = (ms % 1000) * 1000000L;
		if (ms == 0)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(eg->tfd, 0, &its, NULL);
	return 0;
}

/* curl's sockets, in the daemon's epoll set while curl wants them. */
static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct sv_egress *eg = arg;
	struct epoll_event ev;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(eg->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(eg->multi, s, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof ev);
	ev.data.fd = s;
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
	    (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (sockp == NULL) {
		if (epoll_ctl(eg->epfd, EPOLL_CTL_ADD, s, &ev) == -1)
			return -1;
		curl_multi_assign(eg->multi, s, eg);
	} else if (epoll_ctl(eg->epfd, EPOLL_CTL_MOD, s, &ev) == -1) {
		return -1;
	}
	return 0;
}

int
sv_egress_open(struct sv_egress **out, const char *proxy, int epfd,
    struct sv_err *e)
{
	struct sv_egress *eg;
	struct epoll_event ev;

	*out = NULL;
	if (sv_egress_check_url(proxy, e) == -1)
		return -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return sv_errf(e, 0, "can't start libcurl");
	eg = sv_xmalloc(sizeof *eg);
	memset(eg, 0, sizeof *eg);
	eg->epfd = epfd;
	eg->proxy = sv_xstrdup(proxy);
	eg->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	eg->multi = curl_multi_init();
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = eg->tfd;
	if (eg->tfd == -1 || eg->multi == NULL ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, eg->tfd, &ev) == -1) {
		sv_errf(e, errno, "can't set up the egress proxy client");
		sv_egress_close(eg);
		return -1;
	}
	curl_multi_setopt(eg->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(eg->multi, CURLMOPT_SOCKETDATA, eg);
	curl_multi_setopt(eg->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(eg->multi, CURLMOPT_TIMERDATA, eg);
	*out = eg;
	return 0;
}

static void
fetch_free(struct sv_egress *eg, struct fetch *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		eg->fetches = f->next;
	if (f->next)
		f->next->prev = f->prev;
	curl_multi_remove_handle(eg->multi, f->easy);
	curl_easy_cleanup(f->easy);
	free(f->buf);
	free(f);
}

void
sv_egress_close(struct sv_egress *eg)
{
	if (eg == NULL)
		return;
	/* Calls still fetching are answered now: the sidecar is stopping. */
	while (eg->fetches != NULL) {
		struct fetch *f = eg->fetches;

		f->done(f->arg, 0, SV_TOOL_LIST_EGRESS_ROUTES ": the sidecar is "
		    "stopping");
		fetch_free(eg, f);
	}
	if (eg->multi != NULL)
		curl_multi_cleanup(eg->multi);
	if (eg->tfd != -1)
		close(eg->tfd);
	free(eg->proxy);
	free(eg);
	curl_global_cleanup();
}

static size_t
body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;

	n *= size;
	if (f->len + n > EGRESS_BODY_MAX) {
		f->too_big = 1;
		return 0;	/* CURLE_WRITE_ERROR */
	}
	f->buf = sv_xrealloc(f->buf, f->len + n + 1);
	memcpy(f->buf + f->len, data, n);
	f->len += n;
	f->buf[f->len] = '\0';
	return n;
}

void
sv_egress_fetch(struct sv_egress *eg, sv_egress_done *done, void *arg)
{
	struct fetch *f = sv_xmalloc(sizeof *f);
	CURL *c = curl_easy_init();

	memset(f, 0, sizeof *f);
	f->done = done;
	f->arg = arg;
	f->easy = c;
	if (c == NULL) {
		done(arg, 0, "list-egress-routes: can't start a request");
		free(f);
		return;
	}
	curl_easy_setopt(c, CURLOPT_URL, SV_EGRESS_INTROSPECT_URL);
	curl_easy_setopt(c, CURLOPT_PROXY, eg->proxy);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "");	/* not from no_proxy */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)EGRESS_CONNECT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)EGRESS_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->err);
	curl_easy_setopt(c, CURLOPT_PRIVATE, f);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "supervised");
	if (curl_multi_add_handle(eg->multi, c) != CURLM_OK) {
		done(arg, 0, "list-egress-routes: can't start a request");
		curl_easy_cleanup(c);
		free(f);
		return;
	}
	f->next = eg->fetches;
	if (f->next)
		f->next->prev = f;
	eg->fetches = f;
}

/* The answer of a finished transfer: the table, canonical, or why not. */
static void
fetch_finish(struct sv_egress *eg, struct fetch *f, CURLcode rc)
{
	json_error_t je;
	json_t *j = NULL;
	long status = 0;
	char *msg = NULL, *text;

	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK && f->too_big)
		msg = sv_xasprintf("the egress proxy at %s answered more than "
		    "%d bytes", eg->proxy, EGRESS_BODY_MAX);
	else if (rc != CURLE_OK)
		msg = sv_xasprintf("could not reach '%s' via '%s': %s",
		    SV_EGRESS_INTROSPECT_URL, eg->proxy,
		    f->err[0] ? f->err : curl_easy_strerror(rc));
	else if (status != 200)
		msg = sv_xasprintf("the egress proxy at %s answered HTTP %ld to "
		    "GET %s", eg->proxy, status, SV_EGRESS_INTROSPECT_URL);
	else if ((j = json_loadb(f->buf ? f->buf : "", f->len,
	    JSON_REJECT_DUPLICATES, &je)) == NULL || !json_is_object(j))
		msg = sv_xasprintf("the egress proxy at %s answered GET %s with "
		    "something that is not a JSON object", eg->proxy,
		    SV_EGRESS_INTROSPECT_URL);
	if (msg != NULL) {
		text = sv_xasprintf("%s: %s", SV_TOOL_LIST_EGRESS_ROUTES, msg);
		f->done(f->arg, 0, text);
	} else {
		char *dump = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

		if (dump == NULL)
			sv_die(111, "out of memory");
		text = sv_xasprintf("%s\n", dump);
		free(dump);
		f->done(f->arg, 1, text);
	}
	free(text);
	free(msg);
	json_decref(j);
}

void
sv_egress_event(struct sv_egress *eg, int fd, uint32_t events)
{
	CURLMsg *m;
	uint64_t ticks;
	int running, left, flags = 0;

	if (fd == eg->tfd) {
		if (read(eg->tfd, &ticks, sizeof ticks) == -1 && errno != EAGAIN)
			sv_warnx("timerfd: %s", strerror(errno));
		curl_multi_socket_action(eg->multi, CURL_SOCKET_TIMEOUT, 0,
		    &running);
	} else {
		if (events & EPOLLIN)
			flags |= CURL_CSELECT_IN;
		if (events & EPOLLOUT)
			flags |= CURL_CSELECT_OUT;
		if (events & (EPOLLERR | EPOLLHUP))
			flags |= CURL_CSELECT_ERR;
		curl_multi_socket_action(eg->multi, fd, flags, &running);
	}
	while ((m = curl_multi_info_read(eg->multi, &left)) != NULL) {
		struct fetch *f = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		fetch_finish(eg, f, m->data.result);
		fetch_free(eg, f);
	}
}
