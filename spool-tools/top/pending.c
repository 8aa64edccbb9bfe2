/*
 * pending.c: the pending proposals supervise-top lists, kept up to date.
 *
 * No polling: inotify reports every rename that changes whether a
 * proposal is pending, and only the proposal named is looked up again.
 *  - proposals/new and proposals/cur: a proposal arrives, is seen,
 *    withdrawn, or flagged R (decided);
 *  - responses/new: a decision was made (by anyone: a CLI, a hand, another
 *    console) or was refused and moved aside (pending again);
 *  - gone/ (once the sidecar has made it): the agent's call hung up, or
 *    a call waits on the proposal again;
 *  - the bottle's directory: the sidecar writes (or removes) its expiry
 *    setting there when it starts, which says when each proposal expires.
 * Subscribe first, then look (as supervise-watch does): the watches are
 * placed before a bottle is read, so nothing published in between is
 * missed, and a proposal seen twice is one row.  A bottle still being
 * created, or the queue directory before the first bottle, is waited for
 * by watching the directories above it.  On an inotify overflow every
 * bottle is read again.
 */
#include <sys/inotify.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "top.h"

enum wkind { W_ANCESTOR, W_QUEUE, W_BOTTLE, W_PNEW, W_PCUR, W_RNEW, W_GONE };

struct top_watch {
	int wd;
	enum wkind kind;
	struct top_bottle *b;	/* NULL for W_ANCESTOR and W_QUEUE */
};

#define DIR_MASK (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW)
/* The bottle's directory: its expire file is renamed in, or removed. */
#define BOTTLE_MASK (DIR_MASK | IN_DELETE)
/* A link (the no-replace fallback) is an IN_CREATE of a whole file. */
#define SPOOL_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | \
    IN_CLOSE_WRITE | IN_ONLYDIR | IN_DONT_FOLLOW)

static void
set_error(struct top_pending *m, const char *msg)
{
	free(m->error);
	m->error = sv_xstrdup(msg);
}

static int
add_watch(struct top_pending *m, const char *path, enum wkind kind,
    struct top_bottle *b)
{
	int wd = inotify_add_watch(m->ifd, path, kind >= W_PNEW ? SPOOL_MASK :
	    kind == W_BOTTLE ? BOTTLE_MASK : DIR_MASK);

	if (wd < 0)
		return -1;
	for (size_t i = 0; i < m->nwatches; i++)
		if (m->watches[i].wd == wd) {
			m->watches[i].kind = kind;
			m->watches[i].b = b;
			return 0;
		}
	m->watches = sv_xrealloc(m->watches,
	    (m->nwatches + 1) * sizeof *m->watches);
	m->watches[m->nwatches++] = (struct top_watch){ wd, kind, b };
	return 0;
}

static void
row_free(struct top_row *r)
{
	free(r->tool);
	free(r->summary);
	free(r->arrival);
	free(r);
}

static int
row_cmp(const struct top_row *x, const char *arrival, const char *id)
{
	int c = strcmp(x->arrival, arrival);

	return c ? c : strcmp(x->id, id);
}

long
top_pending_find(const struct top_pending *m, const char *slug,
    const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->rows[i]->id, id) == 0 &&
		    strcmp(m->rows[i]->b->slug, slug) == 0)
			return (long)i;
	return -1;
}

static long
find_row(const struct top_pending *m, const struct top_bottle *b,
    const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->rows[i]->b == b && strcmp(m->rows[i]->id, id) == 0)
			return (long)i;
	return -1;
}

static void
remove_row(struct top_pending *m, size_t i)
{
	row_free(m->rows[i]);
	memmove(m->rows + i, m->rows + i + 1,
	    (m->n - i - 1) * sizeof *m->rows);
	m->n--;
}

/* Read the proposal at en and add its row, in order of arrival. */
static int
add_row(struct top_pending *m, struct top_bottle *b, const char *id)
{
	struct sv_proposal p;
	struct sv_entry en;
	struct sv_err e;
	struct top_row *r;
	char *summary;
	size_t lo = 0, hi = m->n;

	if (sv_cli_read_proposal(&b->s, id, &en, &p, &e) < 0) {
		/* Gone since the event (decided, moved): nothing to show. */
		if (e.errnum != ENOENT)
			set_error(m, e.msg);
		return 0;
	}
	r = sv_xmalloc(sizeof *r);
	memset(r, 0, sizeof *r);
	r->b = b;
	snprintf(r->id, sizeof r->id, "%s", id);
	r->en = en;
	r->en.gone = sv_gone_is(&b->s, id);
	r->tool = sv_escape(p.tool, strlen(p.tool), 0);
	summary = sv_payload_summary(p.tool, p.proposed_file);
	r->summary = sv_escape(summary ? summary : "",
	    summary ? strlen(summary) : 0, 0);
	free(summary);
	r->arrival = sv_xstrdup(p.arrival_timestamp);
	if (sv_time_utc(p.arrival_timestamp, &r->arrived, NULL) < 0)
		r->arrived = 0;
	sv_proposal_free(&p);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (row_cmp(m->rows[mid], r->arrival, r->id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->rows = sv_xrealloc(m->rows, m->cap * sizeof *m->rows);
	}
	memmove(m->rows + lo + 1, m->rows + lo, (m->n - lo) * sizeof *m->rows);
	m->rows[lo] = r;
	m->n++;
	return 1;
}

void
top_pending_refresh(struct top_pending *m, struct top_bottle *b,
    const char *id)
{
	struct sv_entry en;
	struct sv_err e;
	long i = find_row(m, b, id);
	int found;

	if (!b->open)
		return;
	found = sv_find_proposal(&b->s, id, &en, &e);
	if (found < 0) {
		set_error(m, e.msg);
		return;
	}
	if (found == 0 || strchr(en.flags, 'R') ||
	    sv_decided(&b->s, id, &e) != 0) {
		if (i >= 0)
			remove_row(m, (size_t)i);
		return;
	}
	en.gone = sv_gone_is(&b->s, id);
	if (i >= 0)
		m->rows[i]->en = en;
	else
		add_row(m, b, id);
}

static int
cmp_entry_id(const void *a, const void *b)
{
	return strcmp(((const struct sv_entry *)a)->id,
	    ((const struct sv_entry *)b)->id);
}

/* The sidecar's expiry setting, as supervise-list reads it. */
static void
read_expire(struct top_pending *m, struct top_bottle *b)
{
	struct sv_err e;

	if (sv_spool_expire(&b->s, &b->expire, &e) < 0)
		set_error(m, e.msg);
}

/* Read bottle b's pending proposals afresh: add, update, drop rows. */
static void
scan(struct top_pending *m, struct top_bottle *b)
{
	struct sv_entry *v, key;
	struct sv_err e;
	size_t n, i;

	read_expire(m, b);
	if (sv_list_pending(&b->s, &v, &n, &e) < 0) {
		set_error(m, e.msg);
		return;
	}
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_entry_id);
	for (i = m->n; i-- > 0; ) {
		struct sv_entry *hit;

		if (m->rows[i]->b != b)
			continue;
		snprintf(key.id, sizeof key.id, "%s", m->rows[i]->id);
		hit = n ? bsearch(&key, v, n, sizeof *v, cmp_entry_id) : NULL;
		if (!hit) {
			remove_row(m, i);
		} else {
			m->rows[i]->en = *hit;
			hit->id[0] = '\0';	/* has its row */
		}
	}
	for (i = 0; i < n; i++)
		if (v[i].id[0] != '\0')
			add_row(m, b, v[i].id);
	sv_entries_free(v);
}

/* gone/ is made by the sidecar when a caller first hangs up: watched
 * when it is there, else its creation is seen in the bottle's directory. */
static void
watch_gone(struct top_pending *m, struct top_bottle *b)
{
	char *path = sv_xasprintf("%s/gone", b->queue);

	add_watch(m, path, W_GONE, b);
	free(path);
}

/* Place bottle b's watches, then read it; quietly wait while it is
 * still being made. */
static void
establish(struct top_pending *m, struct top_bottle *b)
{
	static const struct { const char *sub; enum wkind kind; } dirs[] = {
		{ "", W_BOTTLE }, { "/proposals", W_BOTTLE },
		{ "/responses", W_BOTTLE }, { "/proposals/new", W_PNEW },
		{ "/proposals/cur", W_PCUR }, { "/responses/new", W_RNEW },
	};
	struct sv_err e;
	int complete = 1;

	if (b->watched)
		return;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		char *path = sv_xasprintf("%s%s", b->queue, dirs[i].sub);

		if (add_watch(m, path, dirs[i].kind, b) < 0) {
			if (errno != ENOENT && errno != ENOTDIR) {
				char *msg = sv_xasprintf("can't watch '%s': %s",
				    path, strerror(errno));

				set_error(m, msg);
				free(msg);
			}
			complete = 0;
		}
		free(path);
	}
	if (!complete)
		return;
	watch_gone(m, b);
	if (!b->open) {
		if (sv_spool_open(&b->s, b->queue, b->slug, 0, &e) < 0)
			return;	/* still being made: its next mkdir retries */
		b->open = 1;
	}
	b->watched = 1;
	scan(m, b);
}

static struct top_bottle *
add_bottle(struct top_pending *m, const char *slug)
{
	struct top_bottle *b;
	struct sv_err e;

	if (sv_valid_slug(slug, &e) < 0)
		return NULL;
	for (size_t i = 0; i < m->nbottles; i++)
		if (strcmp(m->bottles[i]->slug, slug) == 0)
			return m->bottles[i];
	b = sv_xmalloc(sizeof *b);
	memset(b, 0, sizeof *b);
	b->slug = sv_xstrdup(slug);
	b->queue = sv_queue_dir(slug);
	m->bottles = sv_xrealloc(m->bottles,
	    (m->nbottles + 1) * sizeof *m->bottles);
	m->bottles[m->nbottles++] = b;
	establish(m, b);
	return b;
}

/* The queue directory, or while it is missing the nearest directory
 * above it, so that its creation (and the first bottle's) is seen. */
static void
watch_queue(struct top_pending *m)
{
	char *queue = sv_xasprintf("%s/queue", sv_root());
	char *dir;

	if (add_watch(m, queue, W_QUEUE, NULL) == 0) {
		free(queue);
		if (m->all) {
			char **slugs;
			size_t n;
			struct sv_err e;

			if (sv_cli_bottles(&slugs, &n, &e) < 0) {
				set_error(m, e.msg);
				return;
			}
			for (size_t i = 0; i < n; i++)
				add_bottle(m, slugs[i]);
			sv_cli_strv_free(slugs);
		}
		return;
	}
	dir = queue;
	for (int depth = 0; depth < 64; depth++) {
		char *slash = strrchr(dir, '/');

		if (!slash || slash == dir)
			break;
		*slash = '\0';
		if (add_watch(m, dir, W_ANCESTOR, NULL) == 0 || errno != ENOENT)
			break;
	}
	free(queue);
}

int
top_pending_open(struct top_pending *m, char **slugs, size_t n,
    struct sv_err *e)
{
	memset(m, 0, sizeof *m);
	if ((m->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) < 0)
		return sv_errf(e, errno, "can't start inotify");
	m->all = n == 0;
	for (size_t i = 0; i < n; i++)
		add_bottle(m, slugs[i]);
	watch_queue(m);
	return 0;
}

void
top_pending_close(struct top_pending *m)
{
	for (size_t i = 0; i < m->n; i++)
		row_free(m->rows[i]);
	for (size_t i = 0; i < m->nbottles; i++) {
		if (m->bottles[i]->open)
			sv_spool_close(&m->bottles[i]->s);
		free(m->bottles[i]->slug);
		free(m->bottles[i]->queue);
		free(m->bottles[i]);
	}
	free(m->bottles);
	free(m->rows);
	free(m->watches);
	free(m->error);
	if (m->ifd >= 0)
		close(m->ifd);
	memset(m, 0, sizeof *m);
	m->ifd = -1;
}

size_t
top_pending_marked(const struct top_pending *m)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n; i++)
		k += m->rows[i]->marked != 0;
	return k;
}

/* A watched directory went away: forget its watch; a bottle's rows go
 * with its spool, and the bottle is waited for again. */
static void
forget(struct top_pending *m, size_t w)
{
	struct top_bottle *b = m->watches[w].b;
	enum wkind kind = m->watches[w].kind;

	m->watches[w] = m->watches[--m->nwatches];
	/* Without gone/ the bottle is whole; its marks are gone too. */
	if (kind == W_GONE && b && b->watched) {
		scan(m, b);
		return;
	}
	if (b && b->watched) {
		for (size_t i = m->n; i-- > 0; )
			if (m->rows[i]->b == b)
				remove_row(m, i);
		b->watched = 0;
		if (b->open)
			sv_spool_close(&b->s);
		b->open = 0;
	}
}

static void
handle(struct top_pending *m, const struct inotify_event *ev)
{
	char id[SV_ID_MAX + 1], flags[16];
	struct sv_err e;
	size_t w;

	if (ev->mask & IN_Q_OVERFLOW) {
		for (size_t i = 0; i < m->nbottles; i++)
			if (m->bottles[i]->watched)
				scan(m, m->bottles[i]);
		return;
	}
	for (w = 0; w < m->nwatches && m->watches[w].wd != ev->wd; w++)
		;
	if (w == m->nwatches)
		return;
	if (ev->mask & IN_IGNORED) {
		forget(m, w);
		return;
	}
	switch (m->watches[w].kind) {
	case W_ANCESTOR:
		watch_queue(m);
		break;
	case W_QUEUE:
		if (ev->len > 0 && m->all)
			add_bottle(m, ev->name);
		else if (ev->len > 0)
			for (size_t i = 0; i < m->nbottles; i++)
				if (strcmp(m->bottles[i]->slug, ev->name) == 0)
					establish(m, m->bottles[i]);
		break;
	case W_BOTTLE:
		if (m->watches[w].b->watched && ev->len > 0 &&
		    strcmp(ev->name, "gone") == 0) {
			/* Marks made before the watch: read them. */
			watch_gone(m, m->watches[w].b);
			scan(m, m->watches[w].b);
		}
		if (m->watches[w].b->open && ev->len > 0 &&
		    strcmp(ev->name, SV_EXPIRE_FILE) == 0)
			read_expire(m, m->watches[w].b);
		establish(m, m->watches[w].b);
		break;
	case W_PNEW:
	case W_PCUR:
		if (ev->len > 0 && sv_parse_name(ev->name, id, sizeof id, flags,
		    sizeof flags) == 0)
			top_pending_refresh(m, m->watches[w].b, id);
		break;
	case W_RNEW:
	case W_GONE:
		if (ev->len > 0 && sv_valid_id(ev->name, &e) == 0)
			top_pending_refresh(m, m->watches[w].b, ev->name);
		break;
	}
}

static int
one_event(const struct inotify_event *ev, void *arg)
{
	handle(arg, ev);
	return 1;
}

int
top_pending_events(struct top_pending *m)
{
	struct sv_err e;
	int n = sv_cli_inotify_each(m->ifd, one_event, m, &e);

	if (n < 0)
		set_error(m, e.msg);
	return n != 0;
}
