/*
 * supervise.h: the public header of libsupervise.
 *
 * Every program (the daemon and the spool tools) links libsupervise.a and
 * includes this header; what only the daemon uses is in daemon.h.
 * Declarations are grouped by the file that defines them.
 *
 * Conventions:
 *  - Library functions return 0 on success and -1 on failure, after filling
 *    a struct sv_err with a message that names what was wrong, for example
 *    "can't rename 'proposals/tmp/X' to 'proposals/new/X': File exists".
 *    Only main() prints, as "prog: MESSAGE".
 *  - Strings are NUL-terminated UTF-8 and owned by the struct that holds
 *    them; *_free() releases them.
 *  - Spool paths are always reached through directory descriptors opened
 *    with O_NOFOLLOW, so a symlink planted in the spool is never followed.
 */
#ifndef SUPERVISE_H
#define SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#define SV_VERSION "0.1.0"

/* Limits.  Documented in supervise-spool(5). */
#define SV_SLUG_MAX	64		/* bytes in a bottle slug */
#define SV_ID_MAX	128		/* bytes in a proposal id (maildir name) */
#define SV_RECORD_MAX	(8 << 20)	/* bytes in one record file */
#define SV_FILE_MAX	(1 << 20)	/* proposed_file, final_file */
#define SV_TEXT_MAX	(64 << 10)	/* justification, notes */
#define SV_SHORT_MAX	256		/* tool, timestamps, hash, decided_by */
#define SV_TMP_MAX_AGE	(36 * 3600)	/* seconds before tmp/ files are removed */

/* Tool names. */
#define SV_TOOL_EGRESS_BLOCK	"egress-block"
#define SV_TOOL_EGRESS_ALLOW	"egress-allow"
#define SV_TOOL_PIPELOCK_BLOCK	"pipelock-block"
#define SV_TOOL_CAPABILITY_BLOCK "capability-block"
#define SV_TOOL_GITLEAKS_ALLOW	"gitleaks-allow"
#define SV_TOOL_EGRESS_TOKEN_ALLOW "egress-token-allow"
#define SV_TOOL_LIST_EGRESS_ROUTES "list-egress-routes"

struct sv_err {
	int errnum;		/* errno of the cause, or 0 */
	char msg[1024];
};

/* util.c */
extern const char *sv_prog;			/* set by sv_setprog() */
void sv_setprog(const char *argv0);
int sv_errf(struct sv_err *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));	/* appends ": strerror" when errnum; returns -1 */
void sv_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sv_warn_err(const struct sv_err *e);	/* "prog: msg\n" on stderr */
_Noreturn void sv_die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void *sv_xmalloc(size_t n);
void *sv_xrealloc(void *p, size_t n);
char *sv_xstrdup(const char *s);
char *sv_xstrndup(const char *s, size_t n);	/* at most n bytes of s */
char *sv_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define SV_ESC_NL	1	/* keep newlines (multi-line display) */
/*
 * The one escaping rule for text that reaches a human (supervise(7),
 * SECURITY): C0 and C1 controls (U+0085 among them), DEL, invalid UTF-8,
 * and what sv_invisible names become visible escapes such as \x1b (a
 * byte: a control or invalid UTF-8) or \u{202e}, \u{e0041}, \u{a0}; a
 * backslash becomes \\.  Tab becomes \t, newline \n unless SV_ESC_NL.
 * Returns a malloc'd string.
 */
char *sv_escape(const char *s, size_t len, int flags);
/* Invisible or misleading when shown: Unicode Cf, Zl, Zp, Zs but U+0020,
 * tag characters, variation selectors, invisible fillers. */
int sv_invisible(unsigned cp);
/* A line break of any kind (C0, DEL, C1, U+2028, U+2029) or invalid
 * UTF-8 in s: config values that become lines of a file refuse them. */
int sv_breaks_line(const char *s);

char *sv_iso8601(const struct timespec *ts, char *buf, size_t n);	/* 2026-11-22T18:00:00.123456Z */
/* An RFC 3339 time (Z or +HH:MM) as time_t and, when utc is not NULL,
 * rewritten in UTC with Z, its fraction kept: 0 or -1. */
#define SV_TIME_MAX	40
int sv_time_utc(const char *s, time_t *out, char utc[SV_TIME_MAX]);
const char *sv_root(void);		/* $SUPERVISE_ROOT or ~/.bot-bottle */
char *sv_audit_dir(void);		/* $SUPERVISE_AUDIT_DIR or ROOT/audit.git, malloc'd */
char *sv_queue_dir(const char *slug);	/* ROOT/queue/SLUG, malloc'd */
int sv_read_all(int fd, const char *path, size_t max, char **buf, size_t *len, struct sv_err *e);
/* sv_read_all of a regular file whose size fstat gave (0: unknown): one
 * read(2) when the file has not grown since. */
int sv_read_sized(int fd, const char *path, size_t max, size_t size,
    char **buf, size_t *len, struct sv_err *e);
int sv_write_all(int fd, const char *buf, size_t len);
int64_t sv_now_ms(void);		/* CLOCK_MONOTONIC in milliseconds */
void sv_sleep_us(long us);		/* the whole time, despite signals */
/* mkdir -p, each directory made 0700; "can't create 'DIR'" names the one
 * that failed. */
int sv_mkdirs(const char *path, struct sv_err *e);
int sv_all_space(const char *s);	/* nothing but ASCII white space? */
char *sv_strip_dup(const char *s);	/* malloc'd copy, white space trimmed (Python's str.strip) */

/*
 * durable.c: making what we wrote survive a power cut, by name.  Hand a
 * set the files and directories written, then sync it: each is fsync'd
 * (all at once), nothing else.  A file must be synced before a name for
 * it is made: hand the file, sync, rename, hand the directory, sync.
 */
struct sv_durable_item;
struct sv_durable {
	struct sv_durable_item *v;
	size_t n, cap;
};
void sv_durable_init(struct sv_durable *d);
/* An open file or directory (fd stays the caller's; open until synced). */
void sv_durable_fd(struct sv_durable *d, int fd, const char *label);
/* NAME in directory dirfd (opened when synced; dirfd open until then). */
void sv_durable_at(struct sv_durable *d, int dirfd, const char *name,
    const char *label);
void sv_durable_path(struct sv_durable *d, const char *path);
/* A file, and the directory that names it: for a file already renamed
 * into place whose name must survive too. */
void sv_durable_file(struct sv_durable *d, const char *path);
/* fsync everything handed, then forget it; "can't flush 'LABEL' to
 * disk: reason" names the first that failed. */
int sv_durable_sync(struct sv_durable *d, struct sv_err *e);
void sv_durable_free(struct sv_durable *d);

/* record.c: the one loader and dumper of proposal and response records */
enum sv_status { SV_NONE = 0, SV_APPROVED, SV_MODIFIED, SV_REJECTED };

struct sv_proposal {
	char *id;
	char *bottle_slug;
	char *tool;
	char *proposed_file;
	char *justification;
	char *arrival_timestamp;
	char *current_file_hash;
};

struct sv_response {
	char *proposal_id;		/* NULL when left out (hand-written) */
	enum sv_status status;
	char *notes;			/* NULL when left out */
	char *final_file;		/* NULL: none (JSON null or left out) */
	char *decided_by;		/* NULL when left out */
	char *decided_at;		/* NULL when left out */
	char *rule;			/* decided by rule: "SLUG/policy:N: TEXT" */
	char *policy_commit;		/* the last commit of that policy file */
	/* proposal fields a hand-edited copy of the proposal may carry */
	struct sv_proposal copy;	/* members NULL when absent */
};

const char *sv_status_name(enum sv_status s);	/* "approved", ... */
int sv_status_parse(const char *s, enum sv_status *out);

/*
 * Read a record file strictly: regular file (O_NOFOLLOW), at most
 * SV_RECORD_MAX bytes, no NUL byte, valid UTF-8 JSON with no duplicate
 * keys, an object at top level.  Errors in the text read
 * "PATH:LINE:COLUMN: reason" (columns count characters, as jansson's);
 * a file refused as a whole (symlink, fifo, too large) reads
 * "can't open|read 'PATH': reason".  `path` is the name used in messages;
 * *text (may be NULL) receives the NUL-terminated text.
 */
int sv_record_load(int dirfd, const char *name, const char *path,
    json_t **out, char **text, struct sv_err *e);
/* Load a record from memory (same checks). text may be NULL. */
int sv_record_loadb(const char *buf, size_t len, const char *path,
    json_t **out, struct sv_err *e);

/*
 * Strict shape checks: unknown keys, wrong types, oversize fields, and
 * values with a form (ids, slugs, times, hashes, status).  `text` is the
 * record's NUL-terminated text, used only to say where a key is; NULL:
 * messages read "PATH: reason".
 */
int sv_proposal_from_json(json_t *j, const char *path, const char *text,
    struct sv_proposal *p, struct sv_err *e);
int sv_response_from_json(json_t *j, const char *path, const char *text,
    struct sv_response *r, struct sv_err *e);
int sv_proposal_read(int dirfd, const char *name, const char *path,
    struct sv_proposal *p, struct sv_err *e);
int sv_response_read(int dirfd, const char *name, const char *path,
    struct sv_response *r, struct sv_err *e);

/*
 * Complete a response against its proposal, as the daemon does before it
 * commits: proposal_id defaults to the proposal's id (and must match it),
 * notes to "", decided_by to `owner` (the file owner's name); copied
 * proposal fields must equal the proposal's except proposed_file; an edited
 * proposed_file or a final_file that differs from the proposal makes the
 * status modified; approved gets final_file = proposed_file; rejected
 * carries no final_file; decided_at defaults to `mtime` (NULL: now).  A
 * modified final_file must pass sv_payload_check.  The merged copy is
 * freed, so sv_response_dump then writes only the response fields.
 */
int sv_response_resolve(struct sv_response *r, const struct sv_proposal *p,
    const char *owner, const struct timespec *mtime, const char *path,
    struct sv_err *e);

/* JSON text as records and config files are written: 2-space indent,
 * sorted keys, a final newline; malloc'd. */
char *sv_json_text(const json_t *j);
/* A record's JSON text; NULL when a field is not valid UTF-8. */
char *sv_proposal_dump(const struct sv_proposal *p);
char *sv_response_dump(const struct sv_response *r);
json_t *sv_proposal_json(const struct sv_proposal *p);
json_t *sv_response_json(const struct sv_response *r);
void sv_proposal_free(struct sv_proposal *p);
void sv_response_free(struct sv_response *r);

/* spool.c: the maildir spool of one bottle */
struct sv_spool {
	char *path;		/* the bottle's queue directory */
	char *slug;
	int dirfd;		/* the queue directory */
	int pdir, ptmp, pnew, pcur;	/* proposals/{,tmp,new,cur} */
	int rdir, rtmp, rnew, rcur, rbad;	/* responses/{,tmp,new,cur,bad} */
};

int sv_valid_slug(const char *s, struct sv_err *e);
int sv_valid_id(const char *s, struct sv_err *e);
/* SEC.MUSECPPIDQSEQRHEX.HOST; buf must hold SV_ID_MAX + 1 bytes. */
int sv_unique_name(char *buf, size_t n, struct sv_err *e);

/* Open (create when `create`: dirs 0700) the spool at `path` for `slug`. */
int sv_spool_open(struct sv_spool *s, const char *path, const char *slug,
    int create, struct sv_err *e);
/* Open ROOT/queue/SLUG. */
int sv_spool_open_slug(struct sv_spool *s, const char *slug, int create,
    struct sv_err *e);
void sv_spool_close(struct sv_spool *s);

/*
 * Deliver: create tmpdir/NAME with O_EXCL (0600), write, fsync, close,
 * publish into newdir/NAME with a no-replace rename (link+unlink where the
 * file system lacks renameat2), fsync newdir.  EEXIST when NAME is taken.
 */
int sv_deliver(int tmpdir, int newdir, const char *name, const char *data,
    size_t len, const char *what, struct sv_err *e);

/* Fill p->id, p->arrival_timestamp when NULL; deliver into proposals/. */
int sv_propose(struct sv_spool *s, struct sv_proposal *p, struct sv_err *e);
/*
 * File a proposal that is decided as it is filed (by a rule of the
 * bottle's policy) and its response r (proposal_id, when NULL, becomes
 * the new id), neither flushed, through the spare files when there are
 * (sv_spool_spares): such a decision counts once its commit
 * has landed, and until then the agent has no answer, so a power cut
 * before the commit loses nothing anyone was told; the record of both is
 * the commit.  -1: nothing filed; -2: the proposal is filed and pending,
 * its response could not be written (e says why).
 */
int sv_propose_decided(struct sv_spool *s, struct sv_proposal *p,
    struct sv_response *r, struct sv_err *e);
/* Make the files sv_propose_decided fills next (SPOOL/spare/), unflushed. */
int sv_spool_spares(struct sv_spool *s, struct sv_err *e);
/*
 * sv_propose for n proposals at once (calls that arrived together): the
 * files are written, then all are synced at once by name (sv_durable),
 * then each is published, then one flush of proposals/new.  Two rounds
 * of flushes however many.  ok[i] says whether v[i] was filed, errs[i] why
 * not.  Returns how many were filed.
 */
size_t sv_propose_many(struct sv_spool *s, struct sv_proposal **v, size_t n,
    int *ok, struct sv_err *errs);

enum sv_where { SV_MISSING = 0, SV_NEW, SV_CUR };
struct sv_entry {
	char id[SV_ID_MAX + 1];
	enum sv_where where;
	char flags[16];		/* maildir flags, ASCII order, "" in new/ */
	char name[SV_ID_MAX + 32];	/* file name in new/ or cur/ */
	int gone;		/* its caller left (gone/ID; sv_list_pending) */
};

/* gone.c: queue/SLUG/gone/ID, a pending proposal whose caller left */
int sv_gone_mark(struct sv_spool *s, const char *id, struct sv_err *e);
int sv_gone_clear(struct sv_spool *s, const char *id, struct sv_err *e);
/* Is proposal id marked gone?  One look-up, for one that changed. */
int sv_gone_is(struct sv_spool *s, const char *id);
/* Set v[i].gone for each entry, from one read of gone/. */
int sv_gone_apply(struct sv_spool *s, struct sv_entry *v, size_t n,
    struct sv_err *e);

/* Split "ID:2,FLAGS" (or a bare "ID"); -1 if not a valid name. */
int sv_parse_name(const char *name, char *id, size_t idn, char *flags, size_t fn);
/*
 * Look a proposal up by exact id, without scanning on the common path.
 * 1 when found, 0 when there is none (out->where SV_MISSING), -1 on error
 * (a bad id, or something other than a regular file under that name).
 */
int sv_find_proposal(struct sv_spool *s, const char *id, struct sv_entry *out,
    struct sv_err *e);
/* new/ID -> cur/ID:2,S; a proposal already in cur/ is left as it is. */
int sv_mark_seen(struct sv_spool *s, const char *id, struct sv_err *e);
/* Add maildir flags (e.g. "R", "T") to a proposal, moving it to cur/. */
int sv_add_flags(struct sv_spool *s, const char *id, const char *flags,
    struct sv_err *e);
/* The same without the sync of proposals/cur: for the consumer, whose
 * renames need not last (recovery redoes them). */
int sv_add_flags_nosync(struct sv_spool *s, const char *id, const char *flags,
    struct sv_err *e);
/* renameat2(RENAME_NOREPLACE), or link+unlink where the file system lacks
 * it; -1 with errno set (EEXIST: `to` exists). */
int sv_rename_noreplace(int fromdir, const char *from, int todir,
    const char *to);
/*
 * Has a decision been made or delivered for ID?  1 when responses/new/ID
 * or an archived response (sv_archived_name) responses/cur/ID:2,FLAGS
 * exists or the proposal is flagged R, else 0.  Look-ups only: its cost
 * does not grow with the spool.
 */
int sv_decided(struct sv_spool *s, const char *id, struct sv_err *e);
/* Is NAME in responses/cur an archived response: ID:2,FLAGS, FLAGS any of
 * the maildir letters DFPRST in that order? */
int sv_archived_name(const char *name);
/*
 * Respond: refuse when decided; deliver the response into
 * responses/new/ID.  A second decision fails with a message that says
 * the proposal was already decided.
 */
int sv_respond(struct sv_spool *s, const struct sv_response *r,
    struct sv_err *e);
/* sv_respond for n responses, with two flushes for all of them (see
 * sv_propose_many).  Returns how many were delivered. */
size_t sv_respond_many(struct sv_spool *s, const struct sv_response **v,
    size_t n, int *ok, struct sv_err *errs);

/* Pending proposals (sorted by name = arrival).  Free with sv_entries_free. */
int sv_list_pending(struct sv_spool *s, struct sv_entry **out, size_t *n,
    struct sv_err *e);
/* Every proposal not flagged R, decided or not (sorted by id): one read
 * of proposals/new and proposals/cur.  Free with sv_entries_free. */
int sv_list_unreplied(struct sv_spool *s, struct sv_entry **out, size_t *n,
    struct sv_err *e);
void sv_entries_free(struct sv_entry *v);
/*
 * Resolve an operator's argument to a proposal id: the full id, an
 * unambiguous prefix of it, or an unambiguous prefix of its random part
 * (the hex after 'R').  Searches every proposal, decided or not.
 */
int sv_resolve_id(struct sv_spool *s, const char *arg, char *id, size_t n,
    struct sv_err *e);
/* Remove tmp/ files older than max_age seconds; returns count or -1. */
int sv_clean_tmp(struct sv_spool *s, time_t max_age, struct sv_err *e);
/*
 * Move a refused response aside: responses/new/NAME ->
 * responses/bad/NAME~SEC.USEC, with the reason in NAME~SEC.USEC.err.
 * Never deletes.  `newname` receives the new file name.
 */
int sv_refuse_response(struct sv_spool *s, const char *name,
    const char *reason, char *newname, size_t n, struct sv_err *e);

/* tools.c: the tool table and the validation of agent-supplied payloads */
/* Read-only: resume waiting on a proposal after --max-wait ran out. */
#define SV_TOOL_PROPOSAL_STATUS	"proposal-status"
struct sv_tool {
	const char *name;
	const char *config;	/* "egress/routes.json", ... or NULL */
	int proposes;		/* 0 for read-only tools */
	int offered;		/* offered to agents in tools/list */
	/* A second file an approval changes, in the same commit: an egress
	 * route's host goes onto pipelock's allowlist too.  Or NULL. */
	const char *mirror;
};
const struct sv_tool *sv_tool_find(const char *name);
extern const struct sv_tool sv_tools[];	/* terminated by {NULL} */
/* The MCP tools/list array (seed descriptions and schemas). New ref. */
json_t *sv_tools_list_json(void);
/*
 * Validate MCP tools/call arguments for a proposing tool; on success set
 * *payload (malloc'd proposed_file text) and *justification.  Messages
 * are the seed's, e.g. "egress-block: 'host' is required and must be a
 * non-empty string".
 */
int sv_tool_args(const char *tool, json_t *args, char **payload,
    char **justification, struct sv_err *e);
/* Validate a payload text (proposed_file or final_file) for `tool`. */
int sv_payload_check(const char *tool, const char *payload, struct sv_err *e);
/* The fingerprint of a gitleaks finding: one line of visible text, not
 * starting or ending with white space (the gitleaks-allow payload). */
int sv_fingerprint_check(const char *fp, struct sv_err *e);
/* One-line summary of a payload for lists and commit subjects, malloc'd. */
char *sv_payload_summary(const char *tool, const char *payload);
/* Hostname from an http(s) URL (uriparser); refuses userinfo. */
int sv_url_host(const char *url, char **host, struct sv_err *e);
int sv_valid_host(const char *host, struct sv_err *e);

/* policy.c: the operator's rules that decide proposals when filed */
#define SV_POLICY_PATH		"policy"	/* SLUG/policy on main */
#define SV_POLICY_LINE_MAX	4096		/* bytes in one line */
#define SV_POLICY_LINE_MAX_S	"4096"
#define SV_POLICY_AUTHOR	"policy"	/* decided_by of a rule */
struct sv_rule_cond {
	int field;		/* host, path, auth, fingerprint */
	char *pattern;		/* canonical: a host pattern in lower case */
};
struct sv_rule {
	unsigned line;		/* 1-based, in the file */
	enum sv_status action;	/* SV_APPROVED or SV_REJECTED */
	const char *tool;	/* a name from sv_tools */
	char *text;		/* the rule as written, without its comment */
	struct sv_rule_cond *conds;
	size_t nconds;
};
struct sv_policy {
	struct sv_rule *rules;
	size_t n;
};
/*
 * Parse a policy file: one rule a line, `ACTION TOOL [FIELD=PATTERN]...`,
 * `#` comments (supervise-policy(5)).  All or nothing: the first bad line
 * fails the parse with "FILE:LINE: reason".  text NULL: no rules.
 */
int sv_policy_parse(const char *text, size_t len, const char *file,
    struct sv_policy *pol, struct sv_err *e);
void sv_policy_free(struct sv_policy *pol);
/*
 * The first rule of pol that matches a proposal of `tool` with the
 * canonical payload `payload` (as sv_tool_args makes it): its index, or
 * -1 when none does (or the payload is not valid for the tool).  With
 * explain, *explain receives (malloc'd) one line per rule of the tool
 * tried, "line N: RULE: matches" or "...: why not", and a last line
 * when none matched.
 */
int sv_policy_match(const struct sv_policy *pol, const char *tool,
    const char *payload, char **explain);
/* "*.example.org" (names under it), "*", or a name (case-insensitive). */
int sv_policy_host_match(const char *pattern, const char *host);
/* A path prefix on segment boundaries: "/simple" holds "/simple/x", not
 * "/simpler". */
int sv_policy_path_match(const char *pattern, const char *path);

/* confupdate.c: the config update, how an approved payload changes a
 * bottle's config file */
/* Merge one route into routes.json text (NULL: no routes yet). */
int sv_routes_merge(const char *routes, const char *route, char **out,
    struct sv_err *e);
/* Add a line to a sorted, unique line list (NULL: empty). */
int sv_lines_add(const char *list, const char *line, char **out,
    struct sv_err *e);
/* New config text for `tool` given the current text and final payload;
 * *out NULL when the tool changes no config. */
int sv_config_update(const char *tool, const char *current,
    const char *payload, char **out, struct sv_err *e);
/* New text of the tool's mirror file (sv_tool.mirror) given its current
 * text and the final payload: the route's host added to pipelock's
 * allowlist.  *out NULL when the tool has no mirror. */
int sv_config_mirror(const char *tool, const char *current,
    const char *payload, char **out, struct sv_err *e);
/*
 * Check a whole config file (an operator's edit, a starting config) and
 * put it in canonical form: routes.json a routes document (each route as
 * an egress payload, one route per host, sorted by host); allowlist one
 * valid host per line and gitleaksignore one fingerprint per line (blank
 * lines and surrounding white space dropped, sorted, unique); Dockerfile
 * non-empty, kept as it is.  relpath: "egress/routes.json", ...
 */
int sv_config_normalize(const char *relpath, const char *text, char **out,
    struct sv_err *e);

/* audit.c and the files of audit.h: the bare git repository, one commit
 * per decision */
struct sv_audit;
/* Open (create on first use: bare, branch main) the repository at path
 * (NULL: sv_audit_dir()).  One handle is used by one thread at a time. */
int sv_audit_open(struct sv_audit **a, const char *path, struct sv_err *e);
void sv_audit_close(struct sv_audit *a);
/* Current text of SLUG/RELPATH on main; *text NULL when absent. */
int sv_audit_read(struct sv_audit *a, const char *slug, const char *relpath,
    char **text, size_t *len, struct sv_err *e);
/* The blob id of SLUG/RELPATH on main into hex, without reading it;
 * "" when absent. */
int sv_audit_blob_id(struct sv_audit *a, const char *slug,
    const char *relpath, char hex[41], struct sv_err *e);
/* The commit on main that last changed SLUG/RELPATH (following first
 * parents) into hex; "" when main has no such file. */
int sv_audit_last_change(struct sv_audit *a, const char *slug,
    const char *relpath, char hex[41], struct sv_err *e);
/* The record of the decision on ID on main, relative to its bottle's
 * directory at "decisions/X/Y/Z/W/ID.json" or at the first layout's
 * "decisions/XX/YY/ID.json": *text and *rel (the path it was found at)
 * malloc'd, both NULL when there is none. */
int sv_audit_read_record(struct sv_audit *a, const char *slug,
    const char *id, char **text, size_t *len, char **rel, struct sv_err *e);
/* Is the decision on proposal ID recorded on main? 1/0/-1. */
int sv_audit_has_record(struct sv_audit *a, const char *slug, const char *id,
    struct sv_err *e);
/*
 * Commit one decision (record + config change) unless already recorded.
 * *committed is set to 1 when a commit was made, 0 when it existed.
 */
int sv_audit_commit_decision(struct sv_audit *a, const struct sv_proposal *p,
    const struct sv_response *r, int *committed, struct sv_err *e);
struct sv_config_file {
	const char *relpath;	/* "egress/routes.json", ... */
	const char *text;	/* NULL: remove the file */
	/* Blob id (sv_blob_hash) the file must still have on main, that of
	 * "" when it must be absent or empty; NULL: no check.  Guards an
	 * operator's edit against a decision that landed meanwhile. */
	const char *base_hash;
};
/*
 * One commit that sets config files of a bottle (init, operator edit).
 * Each text is checked and made canonical with sv_config_normalize; no
 * commit when nothing would change.  The message is the subject, a blank
 * line and the body (its trailers last: Bottle, Component, Action),
 * control characters escaped.  `author` is "Name <email>" or a name.
 */
int sv_audit_commit_config(struct sv_audit *a, const char *slug,
    const struct sv_config_file *files, size_t n, const char *author,
    const char *subject, const char *body, struct sv_err *e);
/* Unified diff (libgit2 patch from buffers) of a config file; malloc'd,
 * "" when equal.  `path` labels both sides (a/PATH, b/PATH). */
char *sv_config_diff(const char *old, const char *new, const char *path);
/* git blob id (hex) of a text: the current_file_hash of proposals. */
void sv_blob_hash(const char *text, size_t len, char hex[41]);
/*
 * The operator, as "Name <email>": $SUPERVISE_OPERATOR, else git's
 * user.name and user.email, else the login name.  Without an email of
 * the operator's own, the email is LOGIN@HOST, and *note (when note is not
 * NULL; else NULL) says so in a line for the operator, to free.
 */
char *sv_operator(char **note);

/* Serialise with the committers (the repository's flock, waited for a
 * bounded time): what reads main and acts on it, as live.c does. */
int sv_audit_lock(struct sv_audit *a, struct sv_err *e);
void sv_audit_unlock(struct sv_audit *a);

/* decide.c: decisions the sidecar makes itself (rules, expiry) */
#define SV_EXPIRY_AUTHOR	"expiry"	/* decided_by of an expiry */
/* A bottle's policy as last read from main. */
struct sv_rules {
	int loaded;		/* read at least once */
	char hash[41];		/* its blob id; "" when there is none */
	int broken;		/* it does not parse: no rule decides */
	char *error;		/* why ("SLUG/policy:LINE: reason") */
	struct sv_policy pol;
	char commit[41];	/* the last commit that changed it */
};
/* Read SLUG/policy from main; parse it again only when it changed.
 * 1 when it changed (or was read the first time), 0 when not, -1. */
int sv_rules_refresh(struct sv_rules *r, struct sv_audit *a,
    const char *slug, struct sv_err *e);
void sv_rules_free(struct sv_rules *r);
/*
 * The decision of the first rule that matches p, as a complete response
 * (decided_by "policy", rule, policy_commit, notes "rule RULE"): 1, or 0
 * when no rule decides (none matches, no policy, a broken one).
 */
int sv_rules_decide(const struct sv_rules *r, const struct sv_proposal *p,
    struct sv_response *resp);
/* "90s", "30m", "24h", "7d", or seconds: 0, or -1 when not a duration. */
int sv_parse_duration(const char *s, long *secs);
/* The largest whole unit: 1800 -> "30m". */
void sv_format_duration(long secs, char *buf, size_t n);
/* The rejection of proposal id after secs: notes "expired after 30m". */
void sv_expiry_response(const char *id, long secs, struct sv_response *resp);
/* When a proposal that arrived at `arrival` expires; -1: never. */
time_t sv_expires_at(const char *arrival, long secs);
/* The sidecar's expiry setting, in the queue directory's `expire` file
 * (seconds; absent: off), for the operator's tools.  0 turns it off. */
#define SV_EXPIRE_FILE	"expire"
int sv_spool_set_expire(struct sv_spool *s, long secs, struct sv_err *e);
int sv_spool_expire(struct sv_spool *s, long *secs, struct sv_err *e);

/* live.c: the bottle's live config directory, as main has it */
/* $SUPERVISE_STATE_DIR or ROOT/state/SLUG, malloc'd. */
char *sv_state_dir(const char *slug);
/* The config files' paths in a bottle's tree ("egress/routes.json", ...),
 * from the tool table, each once; returns how many (at most max). */
size_t sv_config_files(const char **v, size_t max);
/*
 * Make directory `dir` hold the config files of bottle `slug` as they
 * stand on main, each published atomically (dot file, fsync, rename,
 * directory fsync), files that are already so left alone, files absent
 * from main removed; under sv_audit_lock.  *changed (may be NULL) gets
 * bit i set for each sv_config_files()[i] written or removed.
 */
int sv_live_publish(struct sv_audit *a, const char *slug, const char *dir,
    unsigned *changed, struct sv_err *e);
/* Create the live directory (and parents, 0755) when missing. */
int sv_live_create(const char *dir, struct sv_err *e);

/* applynote.c: whether a decision took effect, as a git note on its
 * commit under refs/notes/apply; the one writer and reader of its text */
struct sv_apply_note {
	int applied;		/* "applied: yes" */
	char *line;		/* the first line (sv_apply_note_parse) */
	char *reason;		/* after "applied: no: " */
	char *hook;		/* Hook:, NULL when none ran */
	int exit_status;	/* Exit:, -1 when absent */
	int signal;		/* Signal:, 0 when absent */
	long timeout_s;		/* Timeout:, 0 when absent */
	long duration_ms;	/* Duration-Ms:, -1 when absent */
	long long output_bytes;	/* Output-Bytes:, -1 when absent */
	char *files;		/* Files: the config files the decision changed */
	char *commit;		/* Commit: the decision's */
	char *output;		/* the tail of the hook's output, escaped */
};
void sv_apply_note_init(struct sv_apply_note *n);	/* all absent */
void sv_apply_note_free(struct sv_apply_note *n);
/* "applied: yes|no: REASON\nKey: value...\n\nOUTPUT"; malloc'd. */
char *sv_apply_note_text(const struct sv_apply_note *n);
int sv_apply_note_parse(const char *text, struct sv_apply_note *n,
    struct sv_err *e);
/* The note on commit (hex): 1 read, 0 none, -1 error. */
int sv_apply_note_read(struct sv_audit *a, const char *commit,
    struct sv_apply_note *n, struct sv_err *e);
/* Add or replace the note on commit, under sv_audit_lock; the notes
 * ref's history keeps a replaced one. */
int sv_apply_note_write(struct sv_audit *a, const char *commit,
    const struct sv_apply_note *n, struct sv_err *e);
/* The same for n notes (texts from sv_apply_note_text) at once: one
 * commit of the notes ref, two flushes. */
/* Remove a lock on the notes ref left by a killed writer (start-up: a
 * drain with nothing to note must not leave it). */
int sv_apply_notes_unlock(struct sv_audit *a, struct sv_err *e);
int sv_apply_notes_write(struct sv_audit *a, const char *const *commits,
    const char *const *texts, size_t n, struct sv_err *e);

/* A decision's commit on main, read from its trailers. */
struct sv_decision_commit {
	char commit[41];
	char parent[41];	/* "" for a root commit */
	char *slug, *id, *tool, *status;
	char *subject;
	char *who;		/* the author, who decided: "Name <email>" */
	int64_t when;		/* committer time */
};
void sv_decision_commit_free(struct sv_decision_commit *d);
/* A copy of d that owns its strings (free with sv_decision_commit_free). */
void sv_decision_commit_copy(struct sv_decision_commit *to,
    const struct sv_decision_commit *d);
/*
 * Call fn for each decision commit of bottle slug (NULL: every bottle)
 * among the last `max` commits of main (first parents), newest first;
 * fn returns non-zero to stop.  d's strings are valid during the call.
 */
int sv_audit_decisions(struct sv_audit *a, const char *slug, size_t max,
    int (*fn)(const struct sv_decision_commit *, void *), void *arg,
    struct sv_err *e);
/* The commit of the decision on id, among the last max: 1, 0, -1. */
int sv_audit_find_decision(struct sv_audit *a, const char *slug,
    const char *id, size_t max, struct sv_decision_commit *out,
    struct sv_err *e);
/* The bottle's config files that commit changed: bit i for
 * sv_config_files()[i]. */
int sv_audit_commit_changes(struct sv_audit *a,
    const struct sv_decision_commit *d, unsigned *changed, struct sv_err *e);

/* hook.c: making approved decisions take effect (live files, apply hook,
 * note); see the comment at its top */
#define SV_HOOK_OUTPUT_MAX	(16 << 10)	/* bytes of output kept */
#define SV_HOOK_TIMEOUT		60		/* seconds, by default */
/*
 * The apply hook: `configured` (an absolute path that must be an
 * executable file) when not NULL or empty, else ROOT/hooks/apply when it
 * is an executable file, else none (*path NULL).
 */
int sv_hook_find(const char *configured, char **path, struct sv_err *e);
/* The record of the decision on id from main: its text (may be NULL)
 * and its response. */
int sv_decision_read(struct sv_audit *a, const char *slug, const char *id,
    char **text, struct sv_response *r, struct sv_err *e);
struct sv_applier;
struct sv_apply_result {
	const char *id;
	const struct sv_apply_note *note;	/* note->applied, ->reason */
	enum sv_status status;			/* from the record */
	const char *notes, *final_file;
};
/*
 * An applier for one bottle: hook NULL for none, timeout in seconds,
 * spooldir the spool's directory (its apply/ markers; -1: none).  done
 * is called with each outcome, before its note is written: for a hook
 * that outlasted the caller's short wait for it, from the applier's own
 * thread, the moment the hook exits (done must be thread-safe); else
 * from sv_applier_add or sv_applier_events.
 */
int sv_applier_new(struct sv_applier **ap, struct sv_audit *a,
    const char *slug, const char *state_dir, const char *hook, long timeout,
    int spooldir, void (*done)(const struct sv_apply_result *, void *),
    void *arg, struct sv_err *e);
void sv_applier_free(struct sv_applier *ap);	/* kills a running hook */
/* An epoll descriptor for the caller's loop: when it is readable, call
 * sv_applier_events. */
int sv_applier_fd(const struct sv_applier *ap);
void sv_applier_events(struct sv_applier *ap);
/* Markers for responses about to be consumed, and their removal when a
 * decision needs no apply.  The markers' directory is handed to d, to be
 * flushed with the commit that follows (NULL: flushed here). */
int sv_applier_mark(struct sv_applier *ap, char *const *ids, size_t n,
    struct sv_durable *d, struct sv_err *e);
void sv_applier_unmark(struct sv_applier *ap, const char *id);
/* Apply the decision on id (its commit on main), after those queued;
 * again: even when it already has a note.  Starts at once when idle: with
 * no hook, done is called before this returns. */
void sv_applier_add(struct sv_applier *ap, const char *id, int again);
/* The same for a decision just committed: dc is its commit on main, so
 * the applier need not look for it. */
void sv_applier_add_commit(struct sv_applier *ap,
    const struct sv_decision_commit *dc);
/* Queue every decision a marker names (start-up). */
int sv_applier_recover(struct sv_applier *ap, struct sv_err *e);
/* Is id queued or being applied?  Then its callers are answered by the
 * done callback. */
int sv_applier_busy(struct sv_applier *ap, const char *id);
/* Nothing queued, no hook running. */
int sv_applier_idle(const struct sv_applier *ap);
/* Write the notes of the outcomes so far (one notes commit). */
int sv_applier_flush(struct sv_applier *ap, struct sv_err *e);
/* Block until every queued decision is applied and noted. */
int sv_applier_wait(struct sv_applier *ap, struct sv_err *e);

/* cli.c: what the operator tools share */
/*
 * Call fn(arg, ctx) for each operand: argv[0..argc) or, when there is
 * none and stdin is not a terminal, each line of stdin (each NUL-ended
 * record with `nul`) up to its first tab, so that supervise-list output
 * can be piped in.  Returns the number of operands that failed (fn
 * returned -1, or stdin could not be read: then e says why, for the
 * caller to print; else e->msg is empty), or -1 when there is no
 * operand and stdin is a terminal (a usage error).
 */
int sv_cli_loop(int argc, char **argv, int nul,
    int (*fn)(const char *arg, void *ctx), void *ctx, struct sv_err *e);
/* sv_cli_loop in batches: every argument at once, or the ids that have
 * arrived on stdin without waiting for more; fn returns its failures. */
int sv_cli_loop_many(int argc, char **argv, int nul,
    int (*fn)(const char **args, size_t n, void *ctx), void *ctx,
    struct sv_err *e);
/* Sorted slugs of the bottles under ROOT/queue (invalid names skipped);
 * NULL-terminated, free with sv_cli_strv_free.  No queue/: none. */
int sv_cli_bottles(char ***slugs, size_t *n, struct sv_err *e);
void sv_cli_strv_free(char **v);
/* Every argument a valid slug?  Else -1 and e says "'ARG': reason"
 * (ARG escaped). */
int sv_cli_check_slugs(int argc, char **argv, struct sv_err *e);
/*
 * Find the proposal an operator means by `arg`: "ID" (a full id, an
 * unambiguous prefix, or the random part; every bottle is searched, ids
 * are unique across bottles) or "SLUG/ID" (that bottle only).  Opens *s
 * (close it with sv_spool_close) and reads the proposal into *p.
 */
int sv_cli_open_proposal(const char *arg, struct sv_spool *s,
    struct sv_entry *en, struct sv_proposal *p, struct sv_err *e);
/* Read proposal ID of spool s, wherever it is now (new/ or cur/). */
int sv_cli_read_proposal(struct sv_spool *s, const char *id,
    struct sv_entry *en, struct sv_proposal *p, struct sv_err *e);
/*
 * Run $VISUAL, $EDITOR or vi on path through the shell, as git does,
 * ignoring SIGINT and SIGQUIT meanwhile (the editor handles ^C).  When
 * it fails: "the editor 'ED' failed; NOTHING" (NOTHING: "nothing written").
 * Signals the caller blocks are unblocked for the editor.
 */
int sv_cli_edit(const char *path, const char *nothing, struct sv_err *e);
/* Read an operator's file: at most max bytes, no NUL byte; "-" is stdin. */
int sv_cli_read_file(const char *path, size_t max, char **text, size_t *len,
    struct sv_err *e);
/*
 * Current text of the config file `tool` changes in bottle `slug`, from
 * the audit repository's main (*text NULL when absent, when there is no
 * repository yet, or when the tool has no config).  Never creates the
 * repository.
 */
int sv_cli_config_text(const char *slug, const char *tool, char **text,
    size_t *len, struct sv_err *e);
/* The same for any file of the bottle's tree ("policy"). */
int sv_cli_audit_text(const char *slug, const char *relpath, char **text,
    size_t *len, struct sv_err *e);
/*
 * What approving `payload` (NULL: the proposal's proposed_file) would
 * change in bottle `slug`'s config, as text for a terminal, malloc'd:
 * "Diff of SLUG/PATH:" and the libgit2 patch, escaped line by line, or
 * "Diff: none, ..." saying why there is none; first a "Note: ..." line
 * when the config changed since the proposal was made.
 */
int sv_cli_diff(const char *slug, const struct sv_proposal *p,
    const char *payload, char **out, struct sv_err *e);
/*
 * Put `text` in a new private temporary file (*tmp, malloc'd), run
 * $VISUAL, $EDITOR or vi on it through the shell (the editor, not the
 * caller, gets ^C; signals the caller blocks are unblocked for it), and
 * read it back into *edited.  An empty file is an error (aborted, as git
 * does with an empty message).  The caller removes *tmp when it is set.
 */
int sv_cli_edit_text(const char *text, char **tmp, char **edited,
    size_t *len, struct sv_err *e);
/* Is the agent still waiting on the line for a pending proposal:
 * "waiting", "gone" (its connection dropped) or "cancelled" (flag T). */
const char *sv_cli_caller(const struct sv_entry *en);
/*
 * What became of a decision, for lists: "applied: yes" or "applied: no:
 * REASON" from its note (sv_apply_note_read), "-" for a rejection (it
 * changes nothing), "applied: unknown" when no outcome is recorded (yet);
 * malloc'd.  *noted: 1 when the note was there.  A note that can't be
 * read is "applied: unknown" and -1, with e set.
 */
int sv_cli_outcome(struct sv_audit *a, const struct sv_decision_commit *d,
    char **outcome, int *noted, struct sv_err *e);
/* One supervise-log line, without its terminator: id, bottle, tool,
 * status, outcome, commit (12 digits), date (UTC), who, tab-separated,
 * each field escaped; malloc'd. */
char *sv_cli_log_line(const struct sv_decision_commit *d,
    const char *outcome);
/*
 * Watch (inotify descriptor ifd) what moves when a decision is committed
 * or its outcome noted: the repository's refs/heads, refs/notes (refs/
 * until it exists) and the repository itself (packed-refs; the
 * repository's parent until it exists).  An event sv_cli_audit_event
 * accepts means "look again"; call this again after one, to follow
 * directories that appeared.  Unused slots are -1.
 */
void sv_cli_watch_audit(int ifd, int wd[3]);
/* Does an event of those watches mean main or a note may have moved
 * (not a lock file, not our own opening of the repository)? */
struct inotify_event;
int sv_cli_audit_event(const struct inotify_event *ev, const int wd[3]);
/* Read every event waiting on the non-blocking inotify descriptor fd
 * and call fn for each; the number of calls that returned non-zero, or
 * -1 with e set. */
int sv_cli_inotify_each(int fd,
    int (*fn)(const struct inotify_event *, void *), void *arg,
    struct sv_err *e);
/* "new", "seen", "withdrawn" (flag T) or "decided" (flag R). */
const char *sv_cli_state(const struct sv_entry *en);
/* An age for lists: 5s, 3m, 2h, 4d (negative ages count as 0s). */
void sv_cli_age(time_t secs, char *buf, size_t n);
/* One supervise-list line, without its terminator: id, bottle, tool,
 * age, state, summary, tab-separated, agent text escaped; malloc'd. */
char *sv_cli_list_line(const char *slug, const struct sv_entry *en,
    const struct sv_proposal *p, time_t now);
/* When a proposal that arrived at `arrival` expires, for lists: "expires
 * in 29m", "expiring" (due: the sidecar rejects it at its next look),
 * or "-" (expire 0: never). */
void sv_cli_expiry(const char *arrival, long expire, time_t now, char *buf,
    size_t n);
/* One pending proposal of supervise-list: sv_cli_list_line, a tab, and
 * sv_cli_expiry with the bottle's expiry setting (sv_spool_expire). */
struct sv_cli_row {
	char *id;
	char *arrival;		/* arrival_timestamp: sorts as time */
	char *line;		/* sv_cli_list_line */
};
/* Errors of a call that goes on past them, in order; free v. */
struct sv_cli_errs {
	struct sv_err *v;
	size_t n;
};
/*
 * The pending proposals of bottles `slugs`, sorted by arrival (then id).
 * A bottle or proposal that can't be read is skipped and its error added
 * to *errs ("can't list 'SLUG': ..." for a bottle), and the return value
 * is then -1; *rows and *errs are always filled.
 */
int sv_cli_pending(char *const *slugs, size_t nslugs, time_t now,
    struct sv_cli_row **rows, size_t *n, struct sv_cli_errs *errs);
void sv_cli_rows_free(struct sv_cli_row *rows, size_t n);
/*
 * sv_operator for a tool that decides or commits: the first time the
 * operator has no email of their own, it says on stderr what it records.
 */
char *sv_cli_operator(void);
/*
 * Decide a proposal: write its response (all fields; decided_by is
 * sv_cli_operator(), decided_at now) with sv_respond.  final_file NULL:
 * approved takes the proposed file; a final_file that differs from it
 * makes the decision modified (checked with sv_payload_check); rejected
 * takes none.  *path receives the response file's path (malloc'd).  A
 * proposal already decided fails with the message "already decided".
 */
int sv_cli_respond(struct sv_spool *s, const struct sv_proposal *p,
    enum sv_status status, const char *notes, const char *final_file,
    char **path, struct sv_err *e);
/* sv_cli_open_proposal and sv_cli_respond for many arguments: the
 * responses for one bottle are delivered together (sv_respond_many).
 * For each: ok, and path (malloc'd) or err. */
struct sv_cli_decision {
	const char *arg;
	int ok;
	char *path;
	struct sv_err err;
};
void sv_cli_decide_many(struct sv_cli_decision *d, size_t n,
    enum sv_status status, const char *notes, const char *final_file);
/* sv_cli_decide_many, then each path on stdout (NUL-ended with nul) or
 * "can't VERB 'ARG': reason" on stderr; returns how many failed. */
int sv_cli_decide_print(const char **args, size_t n, enum sv_status status,
    const char *notes, const char *final_file, int nul, const char *verb);

#endif
