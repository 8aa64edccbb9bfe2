/*
 * supervise-top: the operator's live console.
 *
 * One loop waits (poll, no timer but the one that ages the rows) on the
 * terminal, on inotify (top/pending.c keeps the pending proposals) and on
 * a signalfd (INT, TERM, HUP: leave the terminal as it was found and
 * exit; WINCH: follow the new size).  Every decision goes through
 * sv_cli_decide_many, the code supervise-approve and supervise-reject
 * use, so the first decision wins and one made elsewhere a moment
 * earlier is reported, not written twice.  Opening a proposal marks it
 * seen, as supervise-show does.
 */
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wctype.h>

#include "top.h"

static struct top_pending model;
static struct top_recent recent;
static struct top_ui ui;
static uint64_t recent_loaded;	/* when (ms, monotonic) */

#define RECENT_EVERY 250	/* ms between two loads of the recent tab */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static _Noreturn void
usage(FILE *f, int status)
{
	fprintf(f, "usage: supervise-top [-n] [SLUG ...]\n");
	exit(status);
}

static void
say(int bad, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(int bad, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(ui.message);
	/* Messages may quote what the spool holds: escape them too. */
	ui.message = msg ? sv_escape(msg, strlen(msg), 0) : NULL;
	ui.message_bad = bad;
	free(msg);
}

/* --- the cursor follows its proposal across changes ---------------------- */

static void
cursor_remember(void)
{
	struct top_row *r = scr_row(&ui, ui.cur);

	if (r) {
		snprintf(ui.cur_slug, sizeof ui.cur_slug, "%s", r->b->slug);
		snprintf(ui.cur_id, sizeof ui.cur_id, "%s", r->id);
	} else {
		ui.cur_slug[0] = ui.cur_id[0] = '\0';
	}
}

static void
cursor_follow(void)
{
	long i = ui.cur_id[0] ? top_pending_find(&model, ui.cur_slug,
	    ui.cur_id) : -1;

	if (i >= 0)
		ui.cur = ui.newest_first ? model.n - 1 - (size_t)i : (size_t)i;
	else if (ui.cur >= model.n)
		ui.cur = model.n ? model.n - 1 : 0;
	cursor_remember();
	/* The open proposal was decided (or withdrawn) elsewhere. */
	if ((ui.view == V_DETAIL || ui.view == V_CONFIRM) && !ui.d_gone &&
	    top_pending_find(&model, ui.d_slug, ui.d_id) < 0) {
		ui.d_gone = 1;
		say(1, "decided elsewhere or gone: %s/%s", ui.d_slug, ui.d_id);
	}
}

static struct top_bottle *
bottle_of(const char *slug)
{
	for (size_t i = 0; i < model.nbottles; i++)
		if (strcmp(model.bottles[i]->slug, slug) == 0)
			return model.bottles[i];
	return NULL;
}

/* --- deciding ------------------------------------------------------------ */

static void
targets_free(void)
{
	for (size_t i = 0; i < ui.ntargets; i++)
		free(ui.targets[i]);
	free(ui.targets);
	ui.targets = NULL;
	ui.ntargets = 0;
	free(ui.final_file);
	ui.final_file = NULL;
	if (ui.edit_tmp) {
		unlink(ui.edit_tmp);
		free(ui.edit_tmp);
		ui.edit_tmp = NULL;
	}
	ui.act = ACT_NONE;
	ui.ninput = 0;
}

static void
target_add(const char *slug, const char *id)
{
	ui.targets = sv_xrealloc(ui.targets,
	    (ui.ntargets + 1) * sizeof *ui.targets);
	ui.targets[ui.ntargets++] = sv_xasprintf("%s/%s", slug, id);
}

/* Ask for notes, then decide: the selected rows, else the one under the
 * cursor (the open one in a proposal's view). */
static void
ask(enum top_act act)
{
	targets_free();
	if (ui.view == V_DETAIL) {
		target_add(ui.d_slug, ui.d_id);
	} else {
		for (size_t i = 0; i < model.n; i++) {
			struct top_row *r = scr_row(&ui, i);

			if (r->marked)
				target_add(r->b->slug, r->id);
		}
		if (ui.ntargets == 0) {
			struct top_row *r = scr_row(&ui, ui.cur);

			if (!r) {
				say(1, "nothing to decide");
				return;
			}
			target_add(r->b->slug, r->id);
		}
	}
	ui.act = act;
	ui.ninput = 0;
}

static void
decide(const char *notes)
{
	enum sv_status st = ui.act == ACT_REJECT ? SV_REJECTED :
	    ui.act == ACT_MODIFY ? SV_MODIFIED : SV_APPROVED;
	const char *verb = ui.act == ACT_REJECT ? "reject" : "approve";
	struct sv_cli_decision *d = sv_xmalloc(ui.ntargets * sizeof *d);
	size_t ok = 0, bad = 0, firstbad = 0;

	for (size_t i = 0; i < ui.ntargets; i++)
		d[i].arg = ui.targets[i];
	sv_cli_decide_many(d, ui.ntargets, st, notes, ui.final_file);
	for (size_t i = 0; i < ui.ntargets; i++) {
		char *slash = strchr(ui.targets[i], '/');
		struct top_bottle *b;
		long k;

		*slash = '\0';
		if (d[i].ok) {
			ok++;
			free(d[i].path);
		} else if (bad++ == 0) {
			firstbad = i;
		}
		if ((k = top_pending_find(&model, ui.targets[i],
		    slash + 1)) >= 0)
			model.rows[k]->marked = 0;
		/* Gone at once, without waiting for the event. */
		if ((b = bottle_of(ui.targets[i])))
			top_pending_refresh(&model, b, slash + 1);
		*slash = '/';
	}
	if (bad == 0 && ui.ntargets == 1) {
		say(0, "%s %s", st == SV_REJECTED ? "rejected" :
		    st == SV_MODIFIED ? "approved as modified" : "approved",
		    ui.targets[0]);
	} else if (bad == 0) {
		say(0, "%s %zu proposals", st == SV_REJECTED ? "rejected" :
		    "approved", ok);
	} else {
		const struct sv_cli_decision *f = &d[firstbad];

		/* The reason first: an id fills most of a line. */
		if (f->err.errnum == EEXIST)
			say(1, "already decided elsewhere, nothing written%s: %s",
			    bad > 1 ? " (and more)" : "", f->arg);
		else
			say(1, "can't %s%s: %s: %s", verb,
			    bad > 1 ? " (and more)" : "", f->err.msg, f->arg);
		if (ok) {
			char *both = sv_xasprintf("%s; %zu of %zu %s",
			    ui.message, ok, ui.ntargets,
			    st == SV_REJECTED ? "rejected" : "approved");

			free(ui.message);
			ui.message = both;
		}
	}
	free(d);
	if (ui.view != V_LIST && (bad == 0 || ui.ntargets == 1)) {
		ui.view = V_LIST;
	}
	targets_free();
	cursor_follow();
}

/* --- a proposal's view --------------------------------------------------- */

static void
doc_set(char *doc)
{
	free(ui.doc);
	ui.doc = doc;
	ui.doc_cols = -1;
	ui.scroll = 0;
}

/* When proposal p expires, for its view: "never", "in 2h
 * (2026-12-05T03:00:00Z)" or "due since ...; rejected at the sidecar's
 * next look"; malloc'd. */
static char *
expiry_text(const char *slug, const struct sv_proposal *p, time_t now)
{
	struct top_bottle *b = bottle_of(slug);
	long expire = b ? b->expire : 0;
	time_t at = sv_expires_at(p->arrival_timestamp, expire);
	char in[32], date[32];
	struct tm tm;

	if (at == (time_t)-1)
		return sv_xstrdup("never");
	gmtime_r(&at, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (at <= now)
		return sv_xasprintf("due since %s; rejected at the "
		    "sidecar's next look", date);
	sv_cli_age(at - now, in, sizeof in);
	return sv_xasprintf("in %s (%s)", in, date);
}

static char *
proposal_doc(const char *slug, const struct sv_entry *en,
    const struct sv_proposal *p, const char *payload)
{
	char *expires = expiry_text(slug, p, time(NULL));
	char *ejust = sv_escape(p->justification, strlen(p->justification),
	    SV_ESC_NL);
	char *efile = sv_escape(payload, strlen(payload), SV_ESC_NL);
	char *etool = sv_escape(p->tool, strlen(p->tool), 0);
	char *earr = sv_escape(p->arrival_timestamp,
	    strlen(p->arrival_timestamp), 0);
	char *diff = NULL, *doc;
	struct sv_err e;

	if (sv_cli_diff(slug, p, payload, &diff, &e) < 0)
		diff = sv_xasprintf("Diff: can't make it: %s\n", e.msg);
	doc = sv_xasprintf("Id: %s\nBottle: %s\nTool: %s\nArrived: %s\n"
	    "Expires: %s\nState: %s\nCaller: %s\n\nJustification:\n%s\n\n"
	    "%s:\n%s\n\n%s", p->id, slug, etool, earr, expires,
	    sv_cli_state(en), sv_cli_caller(en), ejust, payload == p->proposed_file ? "Proposed file" :
	    "Final file (edited)", efile, diff);
	free(ejust);
	free(efile);
	free(etool);
	free(earr);
	free(expires);
	free(diff);
	return doc;
}

static void
open_detail(void)
{
	struct top_row *r = scr_row(&ui, ui.cur);
	struct sv_proposal p;
	struct sv_entry en;
	struct sv_err e;

	if (!r)
		return;
	if (sv_cli_read_proposal(&r->b->s, r->id, &en, &p, &e) < 0) {
		say(1, "can't show '%s/%s': %s", r->b->slug, r->id, e.msg);
		return;
	}
	snprintf(ui.d_slug, sizeof ui.d_slug, "%s", r->b->slug);
	snprintf(ui.d_id, sizeof ui.d_id, "%s", r->id);
	ui.d_gone = 0;
	doc_set(proposal_doc(r->b->slug, &en, &p, p.proposed_file));
	ui.view = V_DETAIL;
	free(ui.message);
	ui.message = NULL;
	/* Seen once shown, as supervise-show does. */
	if (sv_mark_seen(&r->b->s, r->id, &e) < 0)
		say(1, "can't mark '%s/%s' seen: %s", r->b->slug, r->id, e.msg);
	sv_proposal_free(&p);
}

/* e: the payload in $EDITOR, then the diff it will commit, then notes. */
static void
edit(void)
{
	struct top_row *r = scr_row(&ui, ui.cur);
	struct sv_spool s;
	struct sv_proposal p;
	struct sv_entry en;
	struct sv_err e;
	char arg[SV_SLUG_MAX + SV_ID_MAX + 2], *tmp, *edited;
	size_t len;
	int rc;

	if (ui.view == V_DETAIL)
		snprintf(arg, sizeof arg, "%s/%s", ui.d_slug, ui.d_id);
	else if (r)
		snprintf(arg, sizeof arg, "%s/%s", r->b->slug, r->id);
	else
		return;
	if (sv_cli_open_proposal(arg, &s, &en, &p, &e) < 0) {
		say(1, "can't edit '%s': %s", arg, e.msg);
		return;
	}
	if (sv_decided(&s, en.id, &e) == 1) {
		say(1, "can't edit '%s': already decided elsewhere", arg);
		goto out;
	}
	def_prog_mode();
	scr_stop();
	rc = sv_cli_edit_text(p.proposed_file, &tmp, &edited, &len, &e);
	reset_prog_mode();
	clearok(curscr, TRUE);
	if (rc < 0) {
		say(1, "can't edit '%s': %s", arg, e.msg);
		if (tmp)
			unlink(tmp);
		free(tmp);
		goto out;
	}
	if (sv_payload_check(p.tool, edited, &e) < 0) {
		say(1, "can't edit '%s': %s (the edit is kept in '%s')", arg,
		    e.msg, tmp);
		free(tmp);
		free(edited);
		goto out;
	}
	targets_free();
	target_add(s.slug, en.id);
	ui.final_file = edited;
	ui.edit_tmp = tmp;
	ui.act = ACT_MODIFY;
	snprintf(ui.d_slug, sizeof ui.d_slug, "%s", s.slug);
	snprintf(ui.d_id, sizeof ui.d_id, "%s", en.id);
	ui.d_gone = 0;
	doc_set(proposal_doc(s.slug, &en, &p, edited));
	ui.view = V_CONFIRM;
	free(ui.message);
	ui.message = NULL;
out:
	sv_proposal_free(&p);
	sv_spool_close(&s);
}

/* --- the recent tab ------------------------------------------------------ */

static void
recent_refresh(int force)
{
	if (!force && (!recent.dirty || now_ms() - recent_loaded < RECENT_EVERY))
		return;
	top_recent_load(&recent);
	recent_loaded = now_ms();
	if (recent.error)
		say(1, "%s", recent.error);
}

static void
open_decision(void)
{
	const struct top_decision *t = ui.rcur < recent.n ?
	    &recent.rows[ui.rcur] : NULL;

	if (!t)
		return;
	snprintf(ui.d_slug, sizeof ui.d_slug, "%s", t->d.slug);
	snprintf(ui.d_id, sizeof ui.d_id, "%s", t->d.id);
	ui.d_gone = 0;
	doc_set(top_recent_doc(t));
	ui.view = V_DECISION;
}

/* supervise-apply beside this program, else on PATH. */
static void
exec_apply(const char *slug, const char *id)
{
	char self[4096], *slash, *path;
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			path = sv_xasprintf("%s/supervise-apply", self);
			if (access(path, X_OK) == 0)
				execl(path, "supervise-apply", slug, id,
				    (char *)NULL);
			free(path);
		}
	}
	execlp("supervise-apply", "supervise-apply", slug, id, (char *)NULL);
}

/* A: run supervise-apply SLUG ID for the decision under the cursor (or
 * the open one), its output to us; the loop reads it. */
static void
apply_again(void)
{
	const struct top_decision *t = NULL;
	sigset_t none;
	int p[2];
	pid_t pid;

	if (ui.view == V_DECISION) {
		for (size_t i = 0; i < recent.n && !t; i++)
			if (strcmp(recent.rows[i].d.id, ui.d_id) == 0 &&
			    strcmp(recent.rows[i].d.slug, ui.d_slug) == 0)
				t = &recent.rows[i];
	} else if (ui.rcur < recent.n) {
		t = &recent.rows[ui.rcur];
	}
	if (!t)
		return;
	if (ui.apply_pid) {
		say(1, "an apply is running already: %s", ui.apply_what);
		return;
	}
	if (strcmp(t->d.status, "approved") != 0 &&
	    strcmp(t->d.status, "modified") != 0) {
		say(1, "a %s decision changes nothing: nothing to apply",
		    t->d.status);
		return;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		say(1, "can't run supervise-apply: %s", strerror(errno));
		return;
	}
	if ((pid = fork()) < 0) {
		say(1, "can't run supervise-apply: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		exec_apply(t->d.slug, t->d.id);
		dprintf(STDERR_FILENO, "supervise-top: can't run "
		    "supervise-apply: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	ui.apply_pid = pid;
	ui.apply_fd = p[0];
	ui.apply_len = 0;
	snprintf(ui.apply_what, sizeof ui.apply_what, "%s/%s", t->d.slug,
	    t->d.id);
	say(0, "applying again: %s", ui.apply_what);
}

/* Output of the running supervise-apply; at its end, what it said. */
static void
apply_output(void)
{
	char buf[4096];
	ssize_t n;
	int wstatus;

	while ((n = read(ui.apply_fd, buf, sizeof buf)) > 0) {
		/* Keep the end: the last line says what happened. */
		if ((size_t)n >= sizeof ui.apply_out) {
			memcpy(ui.apply_out, buf + n - (sizeof ui.apply_out - 1),
			    sizeof ui.apply_out - 1);
			ui.apply_len = sizeof ui.apply_out - 1;
			continue;
		}
		if (ui.apply_len + (size_t)n >= sizeof ui.apply_out) {
			size_t drop = ui.apply_len + (size_t)n -
			    (sizeof ui.apply_out - 1);

			memmove(ui.apply_out, ui.apply_out + drop,
			    ui.apply_len - drop);
			ui.apply_len -= drop;
		}
		memcpy(ui.apply_out + ui.apply_len, buf, (size_t)n);
		ui.apply_len += (size_t)n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close(ui.apply_fd);
	ui.apply_fd = -1;
	while (waitpid(ui.apply_pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	ui.apply_pid = 0;
	ui.apply_out[ui.apply_len] = '\0';
	while (ui.apply_len > 0 && ui.apply_out[ui.apply_len - 1] == '\n')
		ui.apply_out[--ui.apply_len] = '\0';
	{
		char *last = strrchr(ui.apply_out, '\n');
		char *tab;

		last = last ? last + 1 : ui.apply_out;
		/* "ID<TAB>applied: ..." on success, a message otherwise. */
		if ((tab = strchr(last, '\t')))
			last = tab + 1;
		say(!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0,
		    "applied again %s: %s", ui.apply_what,
		    *last ? last : "(no output)");
	}
	recent.dirty = 1;
}

/* --- keys ---------------------------------------------------------------- */

#ifndef CTRL
#define CTRL(c) ((c) & 037)
#endif

static void
scroll_doc(long by)
{
	long to = (long)ui.scroll + by;

	ui.scroll = to < 0 ? 0 : (size_t)to;	/* scr_draw caps it */
}

static void
prompt_key(int code, wint_t wc)
{
	if (code == KEY_CODE_YES) {
		int page = scr_body_rows() > 1 ? scr_body_rows() - 1 : 1;

		/* The diff about to be committed can be read meanwhile. */
		switch (wc) {
		case KEY_ENTER: goto accept;
		case KEY_BACKSPACE:
			if (ui.ninput > 0)
				ui.ninput--;
			break;
		case KEY_DOWN: scroll_doc(1); break;
		case KEY_UP: scroll_doc(-1); break;
		case KEY_NPAGE: scroll_doc(page); break;
		case KEY_PPAGE: scroll_doc(-page); break;
		}
		return;
	}
	if (wc == 27) {
		int was_edit = ui.act == ACT_MODIFY;

		targets_free();
		if (was_edit)
			ui.view = V_LIST;
		say(0, "cancelled; nothing written");
		return;
	}
	if (wc == '\r' || wc == '\n')
		goto accept;
	if (wc == 127 || wc == CTRL('h')) {
		if (ui.ninput > 0)
			ui.ninput--;
		return;
	}
	if (wc == CTRL('u')) {
		ui.ninput = 0;
		return;
	}
	if (iswprint(wc) && ui.ninput < TOP_INPUT_MAX)
		ui.input[ui.ninput++] = (wchar_t)wc;
	return;
accept: {
		char *notes = sv_xmalloc(ui.ninput * MB_CUR_MAX + 1);
		size_t k;

		ui.input[ui.ninput] = L'\0';
		if ((k = wcstombs(notes, ui.input, ui.ninput * MB_CUR_MAX + 1)) ==
		    (size_t)-1) {
			say(1, "the notes can't be written in this locale");
			free(notes);
			return;
		}
		notes[k] = '\0';
		decide(notes);
		free(notes);
	}
}

static void
move_cursor(long by)
{
	long n = (long)model.n, to = (long)ui.cur + by;

	if (to >= n)
		to = n - 1;
	if (to < 0)
		to = 0;
	ui.cur = (size_t)to;
	cursor_remember();
}

/* 1 when the program should end. */
static int
key(int code, wint_t wc)
{
	int page = scr_body_rows() > 1 ? scr_body_rows() - 1 : 1;

	if (code == KEY_CODE_YES && wc == KEY_RESIZE)
		return 0;
	if (ui.act != ACT_NONE) {
		prompt_key(code, wc);
		return 0;
	}
	if (ui.help) {
		ui.help = 0;
		return 0;
	}
	if (code == OK && wc == CTRL('l')) {
		clearok(curscr, TRUE);
		return 0;
	}
	if (code == OK && wc == '?') {
		ui.help = 1;
		return 0;
	}
	if (code == OK && wc == '\t' && (ui.view == V_LIST ||
	    ui.view == V_RECENT)) {
		ui.view = ui.view == V_LIST ? V_RECENT : V_LIST;
		if (ui.view == V_RECENT)
			recent_refresh(recent.dirty);
		return 0;
	}
	if (ui.view == V_RECENT) {
		long to = (long)ui.rcur, n = (long)recent.n;

		if (code == KEY_CODE_YES) {
			switch (wc) {
			case KEY_DOWN: to++; break;
			case KEY_UP: to--; break;
			case KEY_NPAGE: to += page; break;
			case KEY_PPAGE: to -= page; break;
			case KEY_HOME: to = 0; break;
			case KEY_END: to = n - 1; break;
			case KEY_ENTER: case KEY_RIGHT: open_decision(); break;
			}
		} else {
			switch (wc) {
			case 'q': return 1;
			case 'j': to++; break;
			case 'k': to--; break;
			case 'g': to = 0; break;
			case 'G': to = n - 1; break;
			case CTRL('f'): case CTRL('d'): to += page; break;
			case CTRL('b'): case CTRL('u'): to -= page; break;
			case '\r': case '\n': case 'l': open_decision(); break;
			case 'A': apply_again(); break;
			}
		}
		if (to >= n)
			to = n - 1;
		ui.rcur = to < 0 ? 0 : (size_t)to;
		return 0;
	}
	if (ui.view == V_DECISION || ui.view == V_DETAIL) {
		enum top_view back = ui.view == V_DECISION ? V_RECENT : V_LIST;

		if (code == KEY_CODE_YES) {
			switch (wc) {
			case KEY_DOWN: scroll_doc(1); break;
			case KEY_UP: scroll_doc(-1); break;
			case KEY_NPAGE: scroll_doc(page); break;
			case KEY_PPAGE: scroll_doc(-page); break;
			case KEY_HOME: ui.scroll = 0; break;
			case KEY_END: scroll_doc((long)ui.nlines); break;
			case KEY_LEFT: case KEY_ENTER: ui.view = back; break;
			}
			return 0;
		}
		switch (wc) {
		case 'j': scroll_doc(1); break;
		case 'k': scroll_doc(-1); break;
		case ' ': scroll_doc(page); break;
		case 'b': scroll_doc(-page); break;
		case 'g': ui.scroll = 0; break;
		case 'G': scroll_doc((long)ui.nlines); break;
		case 'q': case 'h': case 27: case '\r': case '\n':
			ui.view = back;
			break;
		/* What can be done with what is open. */
		case 'A': if (back == V_RECENT) apply_again(); break;
		case 'a': if (back == V_LIST) ask(ACT_APPROVE); break;
		case 'r': if (back == V_LIST) ask(ACT_REJECT); break;
		case 'e': if (back == V_LIST) edit(); break;
		}
		return 0;
	}
	/* the list */
	if (code == KEY_CODE_YES) {
		switch (wc) {
		case KEY_DOWN: move_cursor(1); break;
		case KEY_UP: move_cursor(-1); break;
		case KEY_NPAGE: move_cursor(page); break;
		case KEY_PPAGE: move_cursor(-page); break;
		case KEY_HOME: move_cursor(-(long)model.n); break;
		case KEY_END: move_cursor((long)model.n); break;
		case KEY_ENTER: case KEY_RIGHT: open_detail(); break;
		}
		return 0;
	}
	switch (wc) {
	case 'q':
		return 1;
	case 'j': move_cursor(1); break;
	case 'k': move_cursor(-1); break;
	case CTRL('f'): case CTRL('d'): move_cursor(page); break;
	case CTRL('b'): case CTRL('u'): move_cursor(-page); break;
	case 'g': move_cursor(-(long)model.n); break;
	case 'G': move_cursor((long)model.n); break;
	case '\r': case '\n': case 'l': open_detail(); break;
	case ' ': {
		struct top_row *r = scr_row(&ui, ui.cur);

		if (r) {
			r->marked = !r->marked;
			move_cursor(1);
		}
		break;
	}
	case 'a': ask(ACT_APPROVE); break;
	case 'r': ask(ACT_REJECT); break;
	case 'e': edit(); break;
	case 'o':
		ui.newest_first = !ui.newest_first;
		cursor_follow();
		break;
	}
	return 0;
}

/* --- the loop ------------------------------------------------------------ */

static void
leave(void)
{
	scr_stop();
}

/* Wake to age the rows only while a visible row is under a minute old. */
static int
age_timeout(time_t now)
{
	int rows = scr_body_rows();

	if (ui.view != V_LIST)
		return -1;
	for (int y = 0; y < rows; y++) {
		struct top_row *r = scr_row(&ui, ui.first + (size_t)y);

		if (!r)
			break;
		if (r->arrived && now - r->arrived < 60)
			return 1000;
	}
	return 30000;
}

int
main(int argc, char *argv[])
{
	struct pollfd pfd[5];
	struct sv_err e;
	sigset_t sigs;
	int c, sfd, quit = 0, status = 0;

	sv_setprog(argv[0]);
	setlocale(LC_ALL, "");
	while ((c = getopt(argc, argv, "nh")) != -1) {
		switch (c) {
		case 'n': ui.newest_first = 1; break;
		case 'h': usage(stdout, 0);
		default: usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;
	if (sv_cli_check_slugs(argc, argv, &e) < 0) {
		sv_warnx("can't follow %s", e.msg);
		return 2;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		sv_warnx("needs a terminal on stdin and stdout; "
		    "supervise-list and supervise-watch are for scripts");
		return 2;
	}
	/* Read INT, TERM, HUP and WINCH from a descriptor: each is handled
	 * in the loop, where the terminal can be put back. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
	    (sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		sv_die(1, "can't catch signals: %s", strerror(errno));
	if (top_pending_open(&model, argv, (size_t)argc, &e) < 0)
		sv_die(1, "%s", e.msg);
	ui.m = &model;
	top_recent_open(&recent, argv, (size_t)argc);
	ui.r = &recent;
	ui.apply_fd = -1;
	if (scr_start(&ui) < 0)
		sv_die(2, "can't use the terminal (TERM=%s)",
		    getenv("TERM") ? getenv("TERM") : "");
	atexit(leave);
	cursor_follow();
	if (model.error) {
		say(1, "%s", model.error);
		free(model.error);
		model.error = NULL;
	}

	pfd[0].fd = STDIN_FILENO;
	pfd[0].events = POLLIN;
	pfd[1].fd = model.ifd;
	pfd[1].events = POLLIN;
	pfd[2].fd = sfd;
	pfd[2].events = POLLIN;
	pfd[3].fd = recent.ifd;
	pfd[3].events = POLLIN;
	pfd[4].events = POLLIN;
	while (!quit) {
		struct signalfd_siginfo si;
		time_t now = time(NULL);
		int timeout = age_timeout(now);
		wint_t wc;
		int code;

		if (ui.view == V_RECENT) {
			recent_refresh(0);
			/* Moved too soon after the last load: come back. */
			if (recent.dirty && (timeout < 0 ||
			    timeout > RECENT_EVERY))
				timeout = RECENT_EVERY;
		}
		scr_draw(&ui, now);
		pfd[4].fd = ui.apply_fd;
		if (poll(pfd, 5, timeout) < 0 && errno != EINTR)
			sv_die(1, "can't wait for events: %s", strerror(errno));
		if (pfd[3].revents & POLLIN)
			top_recent_events(&recent);
		if (ui.apply_fd >= 0 && (pfd[4].revents & (POLLIN | POLLHUP)))
			apply_output();
		while (read(sfd, &si, sizeof si) == sizeof si) {
			if (si.ssi_signo == SIGWINCH) {
				struct winsize ws;

				if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
				    ws.ws_row > 0 && ws.ws_col > 0)
					resizeterm(ws.ws_row, ws.ws_col);
			} else {
				quit = 1;
			}
		}
		if (pfd[1].revents & POLLIN) {
			if (top_pending_events(&model))
				cursor_follow();
			if (model.error) {
				say(1, "%s", model.error);
				free(model.error);
				model.error = NULL;
			}
		}
		while (!quit && (code = get_wch(&wc)) != ERR)
			quit = key(code, wc);
	}
	scr_stop();
	targets_free();
	top_pending_close(&model);
	top_recent_close(&recent);
	free(ui.doc);
	free(ui.lines);
	free(ui.message);
	close(sfd);
	return status;
}
