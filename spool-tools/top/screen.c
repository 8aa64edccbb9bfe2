/*
 * screen.c: what supervise-top draws, with ncursesw.
 *
 * Text reaches the screen only through put_text, which takes text already
 * escaped with sv_escape (so no control character, bidi override or
 * invalid UTF-8 is left), measures each character with wcwidth and stops
 * at the width it was given: a 10,000-character line is cut, never
 * wrapped into the next row.  A character the terminal could not show
 * (unprintable here, or not in the locale's character set) is drawn as
 * '?'.  Colour only when the terminal has it and NO_COLOR is unset;
 * selection and emphasis are reverse and bold, which need no colour.
 */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "top.h"

enum { C_ADD = 1, C_DEL, C_HUNK, C_NOTE, C_BAD, C_OK };

static int started;

int
scr_start(struct top_ui *u)
{
	const char *nc = getenv("NO_COLOR");

	if (!newterm(NULL, stdout, stdin))
		return -1;
	started = 1;
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	u->color = has_colors() && !(nc && *nc);
	if (u->color) {
		start_color();
		use_default_colors();
		init_pair(C_ADD, COLOR_GREEN, -1);
		init_pair(C_DEL, COLOR_RED, -1);
		init_pair(C_HUNK, COLOR_CYAN, -1);
		init_pair(C_NOTE, COLOR_YELLOW, -1);
		init_pair(C_BAD, COLOR_RED, -1);
		init_pair(C_OK, COLOR_GREEN, -1);
	}
	return 0;
}

void
scr_stop(void)
{
	if (started && !isendwin()) {
		curs_set(1);
		endwin();
	}
}

static attr_t
pair(const struct top_ui *u, int p)
{
	return u->color ? COLOR_PAIR(p) : A_NORMAL;
}

/*
 * Draw escaped text s (len bytes) at the cursor in at most w columns;
 * returns the columns used.  With `more`, a cut is shown by '>' in the
 * last column.
 */
static int
put_text(const char *s, size_t len, int w, int more)
{
	mbstate_t st;
	int used = 0;

	memset(&st, 0, sizeof st);
	while (len > 0 && used < w) {
		wchar_t wc;
		size_t k = mbrtowc(&wc, s, len, &st);
		int cw;

		if (k == (size_t)-1 || k == (size_t)-2) {
			memset(&st, 0, sizeof st);
			wc = L'?';
			k = 1;
		} else if (k == 0) {
			break;
		}
		cw = wcwidth(wc);
		if (cw < 0) {
			wc = L'?';
			cw = 1;
		}
		if (used + cw > w || (more && used + cw == w && len > k)) {
			if (more && used < w) {
				addch('>');
				used++;
			}
			return used;
		}
		addnwstr(&wc, 1);
		used += cw;
		s += k;
		len -= k;
	}
	return used;
}

static int
puts_at(int y, int x, const char *s, int w)
{
	if (w <= 0)
		return 0;
	move(y, x);
	return put_text(s, strlen(s), w, 1);
}

struct top_row *
scr_row(const struct top_ui *u, size_t i)
{
	const struct top_pending *m = u->m;

	if (i >= m->n)
		return NULL;
	return m->rows[u->newest_first ? m->n - 1 - i : i];
}

int
scr_body_rows(void)
{
	/* Title, column heads; message and key lines. */
	return LINES > 4 ? LINES - 4 : 0;
}

/* The display width of the first len bytes of s, and where a line of at
 * most cols columns ends (bytes). */
static size_t
fit(const char *s, size_t len, int cols)
{
	mbstate_t st;
	size_t off = 0;
	int used = 0;

	memset(&st, 0, sizeof st);
	while (off < len) {
		wchar_t wc;
		size_t k = mbrtowc(&wc, s + off, len - off, &st);
		int cw;

		if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
			memset(&st, 0, sizeof st);
			k = 1;
			cw = 1;
		} else if ((cw = wcwidth(wc)) < 0) {
			cw = 1;
		}
		if (used + cw > cols)
			break;
		used += cw;
		off += k;
	}
	return off ? off : (len ? 1 : 0);
}

static int
line_kind(const char *s, size_t len, int in_diff)
{
	if (len >= 5 && (strncmp(s, "Diff ", 5) == 0 ||
	    strncmp(s, "Diff:", 5) == 0))
		return SCR_HEAD;
	if (len >= 5 && strncmp(s, "Note:", 5) == 0)
		return SCR_NOTE;
	if (!in_diff)
		return len > 0 && s[len - 1] == ':' && memchr(s, ' ', len) == NULL ?
		    SCR_HEAD : SCR_TEXT;
	if (len >= 2 && strncmp(s, "@@", 2) == 0)
		return SCR_HUNK;
	if (len >= 3 && (strncmp(s, "+++", 3) == 0 || strncmp(s, "---", 3) == 0))
		return SCR_TEXT;
	if (len >= 1 && s[0] == '+')
		return SCR_ADD;
	if (len >= 1 && s[0] == '-')
		return SCR_DEL;
	return SCR_TEXT;
}

void
scr_wrap(struct top_ui *u, int cols)
{
	const char *s = u->doc;
	size_t cap = 64;
	int in_diff = 0;

	free(u->lines);
	u->lines = sv_xmalloc(cap * sizeof *u->lines);
	u->nlines = 0;
	u->doc_cols = cols;
	if (cols < 1)
		cols = 1;
	while (s && *s) {
		size_t len = strcspn(s, "\n"), off = 0;
		int kind = line_kind(s, len, in_diff);

		if (len >= 8 && strncmp(s, "Diff of ", 8) == 0)
			in_diff = 1;
		do {
			size_t k = fit(s + off, len - off, cols);

			if (u->nlines == cap)
				u->lines = sv_xrealloc(u->lines,
				    (cap *= 2) * sizeof *u->lines);
			u->lines[u->nlines++] = (struct scr_line){ s + off, k,
			    off ? SCR_TEXT : kind };
			if (off && kind != SCR_HEAD)
				u->lines[u->nlines - 1].kind = kind;
			off += k;
		} while (off < len);
		s += len;
		if (*s == '\n')
			s++;
	}
}

static void
draw_title(const struct top_ui *u, const char *left, const char *right)
{
	attr_t a = A_REVERSE;

	move(0, 0);
	attron(a);
	hline(' ', COLS);
	puts_at(0, 0, left, COLS);
	if ((int)strlen(right) + (int)strlen(left) + 2 <= COLS)
		puts_at(0, COLS - (int)strlen(right), right, (int)strlen(right));
	attroff(a);
	(void)u;
}

static void
draw_keys(const char *keys)
{
	move(LINES - 1, 0);
	clrtoeol();
	attron(A_REVERSE);
	hline(' ', COLS);
	puts_at(LINES - 1, 0, keys, COLS);
	attroff(A_REVERSE);
}

static void
draw_message(const struct top_ui *u)
{
	int y = LINES - 2;

	move(y, 0);
	clrtoeol();
	if (u->act != ACT_NONE) {
		const char *verb = u->act == ACT_APPROVE ? "Approve" :
		    u->act == ACT_REJECT ? "Reject" : "Approve as modified";
		char label[128];
		size_t from = 0;
		int w;

		snprintf(label, sizeof label, "%s %zu%s, notes (Enter accepts, "
		    "Esc cancels): ", verb, u->ntargets,
		    u->ntargets == 1 ? "" : " proposals");
		if (u->ntargets == 1)
			snprintf(label, sizeof label, "%s, notes (Enter accepts, "
			    "Esc cancels): ", verb);
		attron(A_BOLD);
		w = puts_at(y, 0, label, COLS - 10);
		attroff(A_BOLD);
		/* Show the end of what is typed. */
		while (from < u->ninput &&
		    wcswidth(u->input + from, u->ninput - from) > COLS - w - 1)
			from++;
		move(y, w);
		for (size_t i = from; i < u->ninput; i++) {
			wchar_t wc = u->input[i];

			if (wcwidth(wc) < 0)
				wc = L'?';
			addnwstr(&wc, 1);
		}
		curs_set(1);
		return;
	}
	curs_set(0);
	if (u->message) {
		attr_t a = u->message_bad ? (pair(u, C_BAD) | A_BOLD) : A_BOLD;

		attron(a);
		puts_at(y, 0, u->message, COLS);
		attroff(a);
	}
}

/* Keep the cursor of n rows on a page of `rows`, the page full. */
static void
scroll_to(size_t *cur, size_t *first, size_t n, int rows)
{
	if (*cur >= n && n > 0)
		*cur = n - 1;
	if (*cur < *first)
		*first = *cur;
	if (rows > 0 && *cur >= *first + (size_t)rows)
		*first = *cur - (size_t)rows + 1;
	if (*first > 0 && *first + (size_t)rows > n)
		*first = n > (size_t)rows ? n - (size_t)rows : 0;
}

static void
draw_list(struct top_ui *u, time_t now)
{
	int rows = scr_body_rows(), bw = 6;
	int tw = 18, aw = 4, ew = 0, cw = 9, sw;
	char title[128], right[64], age[32], when[40];
	size_t n = u->m->n, marked = top_pending_marked(u->m), nb = 0;

	for (size_t i = 0; i < u->m->nbottles; i++) {
		int l = (int)strlen(u->m->bottles[i]->slug);

		nb += u->m->bottles[i]->watched;
		if (l > bw)
			bw = l;
		/* A column for when each expires, once a sidecar expires
		 * proposals: "in 29m", "expiring" (due), "-" (never). */
		if (u->m->bottles[i]->watched && u->m->bottles[i]->expire > 0)
			ew = 8;
	}
	if (bw > 16)
		bw = 16;
	snprintf(title, sizeof title, " supervise-top: %zu pending in %zu "
	    "bottle%s%s", n, nb, nb == 1 ? "" : "s",
	    u->newest_first ? ", newest first" : "");
	if (marked)
		snprintf(title + strlen(title), sizeof title - strlen(title),
		    ", %zu selected", marked);
	snprintf(right, sizeof right, "[Pending] Recent ");
	draw_title(u, title, right);

	move(1, 0);
	clrtoeol();
	attron(A_BOLD);
	mvprintw(1, 0, "  %-*s %-*s %*s %-*s%s%-*s %s", bw, "BOTTLE", tw,
	    "TOOL", aw, "AGE", ew, ew ? "EXPIRES" : "", ew ? " " : "", cw,
	    "CALLER", "SUMMARY");
	attroff(A_BOLD);
	sw = COLS - (2 + bw + 1 + tw + 1 + aw + 1 + (ew ? ew + 1 : 0) + cw + 1);

	scroll_to(&u->cur, &u->first, n, rows);
	for (int y = 0; y < rows; y++) {
		size_t i = u->first + (size_t)y;
		struct top_row *r = scr_row(u, i);
		const char *caller, *w;
		attr_t a = A_NORMAL;
		int x = 0;

		move(2 + y, 0);
		clrtoeol();
		if (!r)
			continue;
		if (i == u->cur)
			a |= A_REVERSE;
		if (r->en.where == SV_NEW)
			a |= A_BOLD;
		attron(a);
		if (i == u->cur)
			hline(' ', COLS);
		mvaddstr(2 + y, 0, r->marked ? "* " : "  ");
		x = 2;
		move(2 + y, x);
		put_text(r->b->slug, strlen(r->b->slug), bw, 1);
		x += bw + 1;
		move(2 + y, x);
		put_text(r->tool, strlen(r->tool), tw, 1);
		x += tw + 1;
		if (r->arrived)
			sv_cli_age(now - r->arrived, age, sizeof age);
		else
			snprintf(age, sizeof age, "?");
		mvprintw(2 + y, x, "%*.*s", aw, aw, age);
		x += aw + 1;
		if (ew) {
			/* supervise-list's column, without its "expires ". */
			sv_cli_expiry(r->arrival, r->b->expire, now, when,
			    sizeof when);
			w = strncmp(when, "expires ", 8) == 0 ? when + 8 : when;
			move(2 + y, x);
			put_text(w, strlen(w), ew, 1);
			x += ew + 1;
		}
		caller = sv_cli_caller(&r->en);
		if (strcmp(caller, "waiting") != 0 && i != u->cur)
			attron(pair(u, C_NOTE));
		move(2 + y, x);
		put_text(caller, strlen(caller), cw, 1);
		if (strcmp(caller, "waiting") != 0 && i != u->cur)
			attroff(pair(u, C_NOTE));
		x += cw + 1;
		if (sw > 0) {
			move(2 + y, x);
			put_text(r->summary, strlen(r->summary), sw, 1);
		}
		attroff(a);
	}
	if (n == 0 && rows > 0)
		puts_at(2, 2, "Nothing is pending.", COLS - 2);
	draw_message(u);
	draw_keys(" j/k move  Enter open  space select  a approve  r reject  "
	    "e edit  ? keys  q quit");
}

/* "applied: yes" -> "yes", "applied: no: R" -> "no: R". */
static const char *
effect(const char *outcome)
{
	return strncmp(outcome, "applied: ", 9) == 0 ? outcome + 9 : outcome;
}

static void
draw_recent(struct top_ui *u, time_t now)
{
	struct top_recent *r = u->r;
	int rows = scr_body_rows(), bw = 6, tw = 18, aw = 4, stw = 8, ww = 16;
	char title[128], age[32];
	size_t n = r->n;
	int ew;

	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(r->rows[i].d.slug);

		if (l > bw)
			bw = l;
	}
	if (bw > 16)
		bw = 16;
	if (COLS < 100)
		ww = 12;
	snprintf(title, sizeof title, " supervise-top: the last %zu "
	    "decision%s%s", n, n == 1 ? "" : "s",
	    u->apply_pid ? ", applying again..." : "");
	draw_title(u, title, "Pending [Recent] ");
	move(1, 0);
	clrtoeol();
	attron(A_BOLD);
	mvprintw(1, 0, "  %*s %-*s %-*s %-*s %-*s %s", aw, "AGO", bw, "BOTTLE",
	    tw, "TOOL", stw, "STATUS", ww, "WHO", "TOOK EFFECT");
	attroff(A_BOLD);
	ew = COLS - (2 + aw + 1 + bw + 1 + tw + 1 + stw + 1 + ww + 1);
	scroll_to(&u->rcur, &u->rfirst, n, rows);
	for (int y = 0; y < rows; y++) {
		size_t i = u->rfirst + (size_t)y;
		const struct top_decision *t = i < n ? &r->rows[i] : NULL;
		const char *ef;
		char *esc[4];
		attr_t a = A_NORMAL, ea = A_NORMAL;
		int x = 2;

		move(2 + y, 0);
		clrtoeol();
		if (!t)
			continue;
		if (i == u->rcur)
			a |= A_REVERSE;
		attron(a);
		if (i == u->rcur)
			hline(' ', COLS);
		esc[0] = sv_escape(t->d.slug, strlen(t->d.slug), 0);
		esc[1] = sv_escape(t->d.tool, strlen(t->d.tool), 0);
		esc[2] = sv_escape(t->d.status, strlen(t->d.status), 0);
		esc[3] = sv_escape(t->d.who ? t->d.who : "",
		    t->d.who ? strlen(t->d.who) : 0, 0);
		sv_cli_age(now - (time_t)t->d.when, age, sizeof age);
		mvprintw(2 + y, x, "%*.*s", aw, aw, age);
		x += aw + 1;
		move(2 + y, x);
		put_text(esc[0], strlen(esc[0]), bw, 1);
		x += bw + 1;
		move(2 + y, x);
		put_text(esc[1], strlen(esc[1]), tw, 1);
		x += tw + 1;
		move(2 + y, x);
		put_text(esc[2], strlen(esc[2]), stw, 1);
		x += stw + 1;
		move(2 + y, x);
		put_text(esc[3], strlen(esc[3]), ww, 1);
		x += ww + 1;
		ef = effect(t->outcome);
		if (i != u->rcur && strncmp(ef, "no", 2) == 0)
			ea = pair(u, C_BAD) | A_BOLD;
		else if (i != u->rcur && strcmp(ef, "yes") == 0)
			ea = pair(u, C_OK);
		if (ew > 0) {
			char *e = sv_escape(ef, strlen(ef), 0);

			attron(ea);
			move(2 + y, x);
			put_text(e, strlen(e), ew, 1);
			attroff(ea);
			free(e);
		}
		attroff(a);
		for (int k = 0; k < 4; k++)
			free(esc[k]);
	}
	if (n == 0 && rows > 0)
		puts_at(2, 2, r->error ? r->error : "No decision yet.",
		    COLS - 2);
	draw_message(u);
	draw_keys(" j/k move  Enter open  A apply again  Tab pending  ? keys  "
	    "q quit");
}

static void
draw_doc(struct top_ui *u)
{
	int rows = LINES - 3;
	char title[SV_ID_MAX + SV_SLUG_MAX + 64], right[32];

	if (u->doc_cols != COLS)
		scr_wrap(u, COLS);
	if (rows < 0)
		rows = 0;
	if (u->nlines <= (size_t)rows)
		u->scroll = 0;
	else if (u->scroll > u->nlines - (size_t)rows)
		u->scroll = u->nlines - (size_t)rows;
	snprintf(title, sizeof title, " %s%s %s/%s",
	    u->view == V_CONFIRM ? "Approve as modified:" :
	    u->view == V_DECISION ? "Decision" : "Proposal",
	    u->d_gone ? " (decided or gone)" : "", u->d_slug, u->d_id);
	snprintf(right, sizeof right, "%zu/%zu ",
	    u->nlines ? u->scroll + 1 : 0, u->nlines);
	draw_title(u, title, right);
	for (int y = 0; y < rows; y++) {
		size_t i = u->scroll + (size_t)y;
		attr_t a = A_NORMAL;

		move(1 + y, 0);
		clrtoeol();
		if (i >= u->nlines)
			continue;
		switch (u->lines[i].kind) {
		case SCR_HEAD: a = A_BOLD; break;
		case SCR_ADD: a = pair(u, C_ADD); break;
		case SCR_DEL: a = pair(u, C_DEL); break;
		case SCR_HUNK: a = pair(u, C_HUNK); break;
		case SCR_NOTE: a = pair(u, C_NOTE) | A_BOLD; break;
		}
		attron(a);
		put_text(u->lines[i].s, u->lines[i].len, COLS, 0);
		attroff(a);
	}
	draw_message(u);
	if (u->view == V_CONFIRM)
		draw_keys(" Up/Down scroll  type notes, Enter approves  Esc cancels");
	else if (u->view == V_DECISION)
		draw_keys(" j/k scroll  A apply again  q back  ? keys");
	else
		draw_keys(" j/k scroll  a approve  r reject  e edit  q back  "
		    "? keys");
}

static const char *const help_text[] = {
	"Keys",
	"",
	"  j, Down        next proposal (in a proposal: scroll down)",
	"  k, Up          previous proposal (scroll up)",
	"  PgDn, PgUp     a page down, up",
	"  g, Home        the first; G, End: the last",
	"  Enter          open the proposal: its text and diff (marks it seen)",
	"  space          select or unselect, for a decision on several",
	"  a              approve the selected, or this one",
	"  r              reject the selected, or this one",
	"  e              edit this one's payload in $EDITOR, then approve it",
	"  o              newest or oldest first",
	"  Tab            pending proposals or recent decisions",
	"  A              (recent) apply a decision again: supervise-apply",
	"  q, Esc         back from a proposal; quit from the list",
	"  ^L             redraw",
	"  ?              this list",
	"",
	"A decision asks for notes on one line: Enter accepts, Esc cancels.",
	"Press any key to go back.",
};

static void
draw_help(struct top_ui *u)
{
	int n = (int)(sizeof help_text / sizeof help_text[0]);

	draw_title(u, " supervise-top: keys", "");
	for (int y = 1; y < LINES - 1; y++) {
		move(y, 0);
		clrtoeol();
		if (y - 1 < n) {
			if (y == 1)
				attron(A_BOLD);
			puts_at(y, 0, help_text[y - 1], COLS);
			if (y == 1)
				attroff(A_BOLD);
		}
	}
	draw_keys(" any key: back");
}

void
scr_draw(struct top_ui *u, time_t now)
{
	if (LINES < 5 || COLS < 30) {
		erase();
		puts_at(0, 0, "supervise-top: the terminal is too small", COLS);
		refresh();
		return;
	}
	if (u->help)
		draw_help(u);
	else if (u->view == V_LIST)
		draw_list(u, now);
	else if (u->view == V_RECENT)
		draw_recent(u, now);
	else
		draw_doc(u);
	refresh();
}
