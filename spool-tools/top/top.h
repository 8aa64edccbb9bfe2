/*
 * top.h: the parts of supervise-top, the operator's live console.
 *
 *   pending.c  the pending proposals of the bottles followed, kept up to
 *              date by inotify (no polling): the rows the list shows
 *   recent.c   the recent decisions on the audit repository's main and
 *              whether each took effect
 *   screen.c   drawing with ncursesw: escaped text cut to the width, the
 *              list, the detail, prompts and the help
 *   supervise-top.c  main: the event loop, the keys, the decisions
 *
 * Everything read from the spool and the repository goes through
 * libsupervise (supervise.h), as the other operator tools do; every text
 * an agent wrote is escaped (sv_escape) before it reaches the screen.
 */
#ifndef TOP_H
#define TOP_H

#include <sys/types.h>

#include <stddef.h>
#include <time.h>
#include <wchar.h>

#include "supervise.h"

/* pending.c */
struct top_bottle {
	char *slug;
	char *queue;		/* its queue directory */
	struct sv_spool s;
	int open;		/* s is open: the spool is complete */
	int watched;		/* every watch of a complete spool is in place */
	long expire;		/* the sidecar's --expire (sv_spool_expire),
				 * seconds; 0: off */
};

struct top_row {
	struct top_bottle *b;
	char id[SV_ID_MAX + 1];
	struct sv_entry en;	/* where the proposal is, its flags */
	char *tool;		/* escaped */
	char *summary;		/* escaped, one line */
	char *arrival;		/* arrival_timestamp: sorts as time */
	time_t arrived;		/* 0: unknown */
	int marked;		/* selected for a bulk decision */
};

struct top_watch;

struct top_pending {
	struct top_bottle **bottles;
	size_t nbottles;
	int all;		/* following every bottle, new ones too */
	struct top_row **rows;	/* oldest first (arrival, then id) */
	size_t n, cap;
	int ifd;		/* inotify */
	struct top_watch *watches;
	size_t nwatches;
	char *error;		/* the last thing that could not be read */
};

/* Follow `slugs` (n of them; none: every bottle, new ones too): place
 * the watches first, then read what is pending. */
int top_pending_open(struct top_pending *m, char **slugs, size_t n,
    struct sv_err *e);
void top_pending_close(struct top_pending *m);
/* Read the inotify events waiting on m->ifd; 1 when rows changed. */
int top_pending_events(struct top_pending *m);
/* Look proposal ID of bottle b up again (after a decision, an event). */
void top_pending_refresh(struct top_pending *m, struct top_bottle *b,
    const char *id);
/* The row of bottle slug's proposal id, or -1. */
long top_pending_find(const struct top_pending *m, const char *slug,
    const char *id);
size_t top_pending_marked(const struct top_pending *m);


/* recent.c */
#define TOP_RECENT_MAX 200	/* decisions on the second tab */

struct top_decision {
	struct sv_decision_commit d;
	char *outcome;		/* sv_cli_outcome */
	int noted;
};

struct top_recent {
	char **slugs;		/* the bottles followed; none: every one */
	size_t nslugs;
	struct top_decision *rows;	/* newest first */
	size_t n;
	int ifd;		/* inotify on the repository's refs */
	int wd[3];
	int dirty;		/* main or a note moved since the last load */
	char *error;
};

void top_recent_open(struct top_recent *r, char **slugs, size_t nslugs);
void top_recent_close(struct top_recent *r);
/* Read r->ifd's events; 1 (and r->dirty) when main or a note moved. */
int top_recent_events(struct top_recent *r);
/* Read the last TOP_RECENT_MAX decisions and their outcomes again. */
void top_recent_load(struct top_recent *r);
/* A decision and its note (the hook's output), escaped, for the detail
 * view; malloc'd. */
char *top_recent_doc(const struct top_decision *t);

/* screen.c */
struct scr_line {
	const char *s;		/* into the document */
	size_t len;
	int kind;		/* SCR_* below: how to colour it */
};
enum { SCR_TEXT, SCR_HEAD, SCR_ADD, SCR_DEL, SCR_HUNK, SCR_NOTE };

enum top_view { V_LIST, V_DETAIL, V_CONFIRM, V_RECENT, V_DECISION };
enum top_act { ACT_NONE, ACT_APPROVE, ACT_REJECT, ACT_MODIFY };

#define TOP_INPUT_MAX 1024	/* characters in a notes prompt */

struct top_ui {
	struct top_pending *m;
	struct top_recent *r;
	size_t rcur, rfirst;	/* the recent tab: cursor, first row shown */
	pid_t apply_pid;	/* a supervise-apply running, or 0 */
	int apply_fd;		/* its output */
	char apply_out[1024];	/* the end of it */
	size_t apply_len;
	char apply_what[SV_SLUG_MAX + SV_ID_MAX + 2];
	enum top_view view;
	int help;		/* the key list is shown over the view */
	int newest_first;
	int color;
	size_t cur, first;	/* list: cursor and first row shown (display order) */
	char cur_slug[SV_SLUG_MAX + 1], cur_id[SV_ID_MAX + 1];

	/* the detail (and the confirmation of an edit) */
	char d_slug[SV_SLUG_MAX + 1], d_id[SV_ID_MAX + 1];
	char *doc;		/* escaped text */
	struct scr_line *lines;
	size_t nlines, scroll;
	int doc_cols;		/* the width it was wrapped to */
	int d_gone;		/* decided or gone since it was opened */

	/* a decision waiting for its notes */
	enum top_act act;
	char **targets;		/* "SLUG/ID" */
	size_t ntargets;
	char *final_file;	/* ACT_MODIFY: the edited payload */
	char *edit_tmp;		/* and the file it was edited in */
	wchar_t input[TOP_INPUT_MAX + 1];
	size_t ninput;

	char *message;		/* the status line */
	int message_bad;
};

int scr_start(struct top_ui *u);	/* -1: no terminal to draw on */
void scr_stop(void);		/* leaves the terminal as it was; idempotent */
/* Display order <-> rows of the model. */
struct top_row *scr_row(const struct top_ui *u, size_t i);
/* Split u->doc into lines of at most `cols` columns (u->lines). */
void scr_wrap(struct top_ui *u, int cols);
/* Rows the list (or the detail) has room for. */
int scr_body_rows(void);
void scr_draw(struct top_ui *u, time_t now);

#endif
