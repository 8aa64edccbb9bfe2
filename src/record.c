/*
 * record.c: the one loader and dumper of proposal and response records.
 *
 * Every record read anywhere in supervise goes through sv_record_load():
 * a regular file (never a symlink or fifo), bounded in size, free of NUL
 * bytes, parsed by jansson with duplicate keys refused.  The shape checks
 * then walk a field table, so a record with an unknown key, a wrong type
 * or an oversize field is refused with "PATH:LINE:COLUMN: reason".
 * jansson reports positions for syntax errors; for shape errors the
 * already-parsed text is scanned for the top-level key only to say where
 * it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervise.h"

/* A text position, 1-based, columns counted in characters as jansson does. */
struct pos {
	int line, column;
};

static struct pos
pos_at(const char *text, size_t off)
{
	struct pos p = {1, 0};
	size_t i;

	for (i = 0; i < off; i++) {
		if (text[i] == '\n')
			p.line++, p.column = 0;
		else if (((unsigned char)text[i] & 0xc0) != 0x80)
			p.column++;
	}
	/* The character at off itself. */
	p.column++;
	return p;
}

/* Where the top-level object starts: the place to blame a missing key. */
static size_t
object_start(const char *text)
{
	size_t i = 0;

	while (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
	    text[i] == '\r')
		i++;
	return i;
}

/*
 * Find the top-level key `key` in text already accepted by jansson, so its
 * syntax is known to be valid: track strings and nesting depth, and decode
 * each key token at depth 1 with jansson to compare it (keys may use
 * escapes).  Returns the key's offset, or the object's start if not found.
 */
static size_t
key_offset(const char *text, const char *key)
{
	size_t i = 0, start, klen = strlen(key);
	int depth = 0, want_key = 0;
	json_t *tok;

	while (text[i] != '\0') {
		char c = text[i];

		if (c == '"') {
			start = i++;
			while (text[i] != '\0' && text[i] != '"') {
				if (text[i] == '\\' && text[i + 1] != '\0')
					i++;
				i++;
			}
			if (text[i] == '\0')
				break;
			i++;
			if (depth == 1 && want_key) {
				tok = json_loadb(text + start, i - start,
				    JSON_DECODE_ANY, NULL);
				if (tok && json_string_length(tok) == klen &&
				    memcmp(json_string_value(tok), key, klen) == 0) {
					json_decref(tok);
					return start;
				}
				json_decref(tok);
			}
			want_key = 0;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
			want_key = depth == 1 && c == '{';
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == ',' && depth == 1) {
			want_key = 1;
		}
		i++;
	}
	return object_start(text);
}

/* "PATH:LINE:COLUMN: " for a key, or "PATH: " when there is no text. */
static int
shape_err(struct sv_err *e, const char *path, const char *text,
    const char *key, const char *fmt, const char *a, const char *b)
{
	char reason[900];
	struct pos p;

	snprintf(reason, sizeof reason, fmt, a, b);
	if (text == NULL)
		return sv_errf(e, 0, "%s: %s", path, reason);
	p = pos_at(text, key ? key_offset(text, key) : object_start(text));
	return sv_errf(e, 0, "%s:%d:%d: %s", path, p.line, p.column, reason);
}

int
sv_record_loadb(const char *buf, size_t len, const char *path, json_t **out,
    struct sv_err *e)
{
	json_error_t je;
	const char *nul;
	json_t *j;
	struct pos p;

	/* jansson would stop at the NUL; say where it is instead. */
	nul = memchr(buf, '\0', len);
	if (nul != NULL) {
		p = pos_at(buf, (size_t)(nul - buf));
		return sv_errf(e, 0, "%s:%d:%d: NUL byte in record", path,
		    p.line, p.column);
	}
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		/* jansson quotes the text "near" the error: it may be anything. */
		char *why = sv_escape(je.text, strlen(je.text), 0);

		sv_errf(e, 0, "%s:%d:%d: %s", path, je.line < 1 ? 1 : je.line,
		    je.column < 1 ? 1 : je.column, why);
		free(why);
		return -1;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		/* buf has no NUL inside, but may lack one at the end. */
		p.line = 1, p.column = 1;
		for (size_t i = 0; i < len && strchr(" \t\r\n", buf[i]); i++) {
			if (buf[i] == '\n')
				p.line++, p.column = 1;
			else
				p.column++;
		}
		return sv_errf(e, 0, "%s:%d:%d: the record must be a JSON object",
		    path, p.line, p.column);
	}
	*out = j;
	return 0;
}

int
sv_record_load(int dirfd, const char *name, const char *path, json_t **out,
    char **text, struct sv_err *e)
{
	struct stat st;
	char *buf;
	size_t len;
	int fd, r;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP) {
			sv_errf(e, 0, "can't open '%s': is a symbolic link, refused",
			    path);
			if (e)
				e->errnum = ELOOP;
			return -1;
		}
		return sv_errf(e, errno, "can't open '%s'", path);
	}
	if (fstat(fd, &st) < 0) {
		sv_errf(e, errno, "can't stat '%s'", path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return sv_errf(e, 0, "can't read '%s': not a regular file, refused",
		    path);
	}
	if (st.st_size > SV_RECORD_MAX) {
		close(fd);
		sv_errf(e, 0, "can't read '%s': larger than %d bytes", path,
		    SV_RECORD_MAX);
		if (e)
			e->errnum = EFBIG;
		return -1;
	}
	r = sv_read_sized(fd, path, SV_RECORD_MAX, (size_t)st.st_size, &buf,
	    &len, e);
	close(fd);
	if (r < 0)
		return -1;
	if (sv_record_loadb(buf, len, path, out, e) < 0) {
		free(buf);
		return -1;
	}
	if (text)
		*text = buf;
	else
		free(buf);
	return 0;
}

/* The field tables.  Checks beyond type and size name what a value is. */
enum check { CK_NONE, CK_ID, CK_SLUG, CK_TIME, CK_HASH, CK_STATUS };
#define F_REQUIRED	1
#define F_NULLABLE	2
struct field {
	const char *key;
	ptrdiff_t off;		/* char * member; -1 for status */
	size_t max;
	int flags;
	enum check check;
};

#define P(m) offsetof(struct sv_proposal, m)
static const struct field proposal_fields[] = {
	{"arrival_timestamp", P(arrival_timestamp), SV_SHORT_MAX, F_REQUIRED, CK_TIME},
	{"bottle_slug", P(bottle_slug), SV_SLUG_MAX, F_REQUIRED, CK_SLUG},
	{"current_file_hash", P(current_file_hash), SV_SHORT_MAX, F_REQUIRED, CK_HASH},
	{"id", P(id), SV_ID_MAX, F_REQUIRED, CK_ID},
	{"justification", P(justification), SV_TEXT_MAX, F_REQUIRED, CK_NONE},
	{"proposed_file", P(proposed_file), SV_FILE_MAX, F_REQUIRED, CK_NONE},
	{"tool", P(tool), SV_SHORT_MAX, F_REQUIRED, CK_NONE},
	{NULL, 0, 0, 0, 0}
};
#undef P

#define R(m) offsetof(struct sv_response, m)
static const struct field response_fields[] = {
	{"status", -1, SV_SHORT_MAX, F_REQUIRED, CK_STATUS},
	{"proposal_id", R(proposal_id), SV_ID_MAX, 0, CK_ID},
	{"notes", R(notes), SV_TEXT_MAX, 0, CK_NONE},
	{"final_file", R(final_file), SV_FILE_MAX, F_NULLABLE, CK_NONE},
	{"decided_by", R(decided_by), SV_SHORT_MAX, 0, CK_NONE},
	{"decided_at", R(decided_at), SV_SHORT_MAX, 0, CK_TIME},
	/* A decision made by a rule of the bottle's policy (policy.c). */
	{"rule", R(rule), SV_POLICY_LINE_MAX + SV_SHORT_MAX, 0, CK_NONE},
	{"policy_commit", R(policy_commit), SV_SHORT_MAX, 0, CK_HASH},
	/* A hand-edited copy of the proposal; compared in resolve. */
	{"arrival_timestamp", R(copy.arrival_timestamp), SV_SHORT_MAX, 0, CK_TIME},
	{"bottle_slug", R(copy.bottle_slug), SV_SLUG_MAX, 0, CK_NONE},
	{"current_file_hash", R(copy.current_file_hash), SV_SHORT_MAX, 0, CK_NONE},
	{"id", R(copy.id), SV_ID_MAX, 0, CK_NONE},
	{"justification", R(copy.justification), SV_TEXT_MAX, 0, CK_NONE},
	{"proposed_file", R(copy.proposed_file), SV_FILE_MAX, 0, CK_NONE},
	{"tool", R(copy.tool), SV_SHORT_MAX, 0, CK_NONE},
	{NULL, 0, 0, 0, 0}
};
#undef R

/*
 * A hash: 40 lowercase hex digits (the git blob id our writers give) or
 * 64 (the sha256 the egress proxy's writer gives).
 */
static int
is_hash(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return s[n] == '\0' && (n == 40 || n == 64);
}

/*
 * Check a value's meaning.  A time is rewritten in UTC into `norm`, which
 * the caller stores instead of the value when it is not empty.
 */
static int
check_value(const struct field *f, const char *v, const char *path,
    const char *text, enum sv_status *status, char norm[SV_TIME_MAX],
    struct sv_err *e)
{
	struct sv_err why;
	char *ev;
	int r = 0;

	switch (f->check) {
	case CK_NONE:
		return 0;
	case CK_ID:
		if (sv_valid_id(v, &why) < 0)
			return shape_err(e, path, text, f->key, "%s%s", why.msg, "");
		return 0;
	case CK_SLUG:
		if (sv_valid_slug(v, &why) < 0)
			return shape_err(e, path, text, f->key, "%s%s", why.msg, "");
		return 0;
	default:
		break;
	}
	ev = sv_escape(v, strlen(v), 0);
	if (f->check == CK_TIME && sv_time_utc(v, NULL, norm) < 0)
		r = shape_err(e, path, text, f->key,
		    "'%s' must be an RFC 3339 time like 2026-11-22T18:00:00.123456Z "
		    "or 2026-11-22T19:00:00+01:00, not '%s'", f->key, ev);
	else if (f->check == CK_HASH && !is_hash(v))
		r = shape_err(e, path, text, f->key,
		    "'%s' must be 40 or 64 lowercase hex digits, not '%s'",
		    f->key, ev);
	else if (f->check == CK_STATUS && sv_status_parse(v, status) < 0)
		r = shape_err(e, path, text, f->key,
		    "'%s' must be approved, modified or rejected, not '%s'",
		    f->key, ev);
	free(ev);
	return r;
}

/*
 * Check j against the table and copy its strings into the struct at
 * base.  On failure nothing is left allocated in base's fields.
 */
static int
from_json(const struct field *table, json_t *j, const char *path,
    const char *text, void *base, enum sv_status *status, struct sv_err *e)
{
	const struct field *f;
	const char *key;
	json_t *v;
	char *ek, norm[SV_TIME_MAX];

	if (!json_is_object(j))
		return shape_err(e, path, text, NULL,
		    "the record must be a JSON object%s%s", "", "");
	/* Keys in document order (jansson keeps insertion order). */
	json_object_foreach(j, key, v) {
		for (f = table; f->key; f++)
			if (strcmp(f->key, key) == 0)
				break;
		if (f->key == NULL) {
			ek = sv_escape(key, strlen(key), 0);
			shape_err(e, path, text, key, "unknown key '%s'%s", ek, "");
			free(ek);
			goto fail;
		}
		if (json_is_null(v) && (f->flags & F_NULLABLE))
			continue;
		if (!json_is_string(v)) {
			shape_err(e, path, text, key, "'%s' must be a string%s",
			    key, f->flags & F_NULLABLE ? " or null" : "");
			goto fail;
		}
		if (json_string_length(v) > f->max) {
			char max[32];

			snprintf(max, sizeof max, "%zu", f->max);
			shape_err(e, path, text, key,
			    "'%s' is longer than %s bytes", key, max);
			goto fail;
		}
		norm[0] = '\0';
		if (check_value(f, json_string_value(v), path, text, status,
		    norm, e) < 0)
			goto fail;
		if (f->off >= 0)
			*(char **)((char *)base + f->off) =
			    sv_xstrdup(*norm ? norm : json_string_value(v));
	}
	for (f = table; f->key; f++) {
		if ((f->flags & F_REQUIRED) && json_object_get(j, f->key) == NULL) {
			shape_err(e, path, text, NULL,
			    "missing required key '%s'%s", f->key, "");
			goto fail;
		}
	}
	return 0;
fail:
	for (f = table; f->key; f++) {
		if (f->off >= 0) {
			char **m = (char **)((char *)base + f->off);

			free(*m);
			*m = NULL;
		}
	}
	return -1;
}

int
sv_proposal_from_json(json_t *j, const char *path, const char *text,
    struct sv_proposal *p, struct sv_err *e)
{
	memset(p, 0, sizeof *p);
	return from_json(proposal_fields, j, path, text, p, NULL, e);
}

int
sv_response_from_json(json_t *j, const char *path, const char *text,
    struct sv_response *r, struct sv_err *e)
{
	memset(r, 0, sizeof *r);
	return from_json(response_fields, j, path, text, r, &r->status, e);
}

int
sv_proposal_read(int dirfd, const char *name, const char *path,
    struct sv_proposal *p, struct sv_err *e)
{
	json_t *j;
	char *text;
	int r;

	memset(p, 0, sizeof *p);
	if (sv_record_load(dirfd, name, path, &j, &text, e) < 0)
		return -1;
	r = sv_proposal_from_json(j, path, text, p, e);
	json_decref(j);
	free(text);
	return r;
}

int
sv_response_read(int dirfd, const char *name, const char *path,
    struct sv_response *r, struct sv_err *e)
{
	json_t *j;
	char *text;
	int rc;

	memset(r, 0, sizeof *r);
	if (sv_record_load(dirfd, name, path, &j, &text, e) < 0)
		return -1;
	rc = sv_response_from_json(j, path, text, r, e);
	json_decref(j);
	free(text);
	return rc;
}

const char *
sv_status_name(enum sv_status s)
{
	switch (s) {
	case SV_APPROVED:
		return "approved";
	case SV_MODIFIED:
		return "modified";
	case SV_REJECTED:
		return "rejected";
	default:
		return "none";
	}
}

int
sv_status_parse(const char *s, enum sv_status *out)
{
	enum sv_status st;

	if (strcmp(s, "approved") == 0)
		st = SV_APPROVED;
	else if (strcmp(s, "modified") == 0)
		st = SV_MODIFIED;
	else if (strcmp(s, "rejected") == 0)
		st = SV_REJECTED;
	else
		return -1;
	if (out)
		*out = st;
	return 0;
}

static int
streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

int
sv_response_resolve(struct sv_response *r, const struct sv_proposal *p,
    const char *owner, const struct timespec *mtime, const char *path,
    struct sv_err *e)
{
	static const struct {
		const char *key;
		size_t off;
	} same[] = {
		{"id", offsetof(struct sv_proposal, id)},
		{"bottle_slug", offsetof(struct sv_proposal, bottle_slug)},
		{"tool", offsetof(struct sv_proposal, tool)},
		{"justification", offsetof(struct sv_proposal, justification)},
		{"arrival_timestamp", offsetof(struct sv_proposal, arrival_timestamp)},
		{"current_file_hash", offsetof(struct sv_proposal, current_file_hash)},
	};
	struct sv_err why;
	struct timespec now;
	char when[64], *eid, *ep;
	size_t i;

	if (r->status == SV_NONE)
		return sv_errf(e, 0, "%s: missing required key 'status'", path);
	if (r->proposal_id == NULL) {
		r->proposal_id = sv_xstrdup(p->id);
	} else if (!streq(r->proposal_id, p->id)) {
		eid = sv_escape(r->proposal_id, strlen(r->proposal_id), 0);
		ep = sv_escape(p->id, strlen(p->id), 0);
		sv_errf(e, 0, "%s: proposal_id '%s' does not match the proposal '%s'",
		    path, eid, ep);
		free(eid);
		free(ep);
		return -1;
	}
	/* A hand-edited copy of the proposal may change only proposed_file. */
	for (i = 0; i < sizeof same / sizeof same[0]; i++) {
		const char *mine = *(char **)((char *)&r->copy + same[i].off);
		const char *theirs = *(char **)((char *)p + same[i].off);

		if (mine != NULL && !streq(mine, theirs))
			return sv_errf(e, 0,
			    "%s: '%s' differs from the proposal's; only "
			    "'proposed_file' may be edited", path, same[i].key);
	}
	if (r->copy.proposed_file != NULL &&
	    !streq(r->copy.proposed_file, p->proposed_file)) {
		if (r->status == SV_REJECTED)
			return sv_errf(e, 0, "%s: a rejection carries no final "
			    "file, but 'proposed_file' was edited", path);
		if (r->final_file != NULL &&
		    !streq(r->final_file, r->copy.proposed_file))
			return sv_errf(e, 0, "%s: both 'final_file' and an edited "
			    "'proposed_file' are given; keep one", path);
		if (r->final_file == NULL)
			r->final_file = sv_xstrdup(r->copy.proposed_file);
	}
	switch (r->status) {
	case SV_REJECTED:
		if (r->final_file != NULL)
			return sv_errf(e, 0, "%s: a rejection carries no final "
			    "file; remove 'final_file' or set it to null", path);
		break;
	case SV_APPROVED:
		if (r->final_file == NULL)
			r->final_file = sv_xstrdup(p->proposed_file);
		else if (!streq(r->final_file, p->proposed_file))
			r->status = SV_MODIFIED;
		break;
	case SV_MODIFIED:
		if (r->final_file == NULL || streq(r->final_file, p->proposed_file))
			return sv_errf(e, 0, "%s: status 'modified' needs a "
			    "final file that differs from the proposal's", path);
		break;
	default:
		break;
	}
	if (r->status == SV_MODIFIED &&
	    sv_payload_check(p->tool, r->final_file, &why) < 0)
		return sv_errf(e, 0, "%s: final file refused: %s", path, why.msg);
	if (r->notes == NULL)
		r->notes = sv_xstrdup("");
	if (r->decided_by == NULL)
		r->decided_by = sv_xstrdup(owner && *owner ? owner : "unknown");
	if (r->decided_at == NULL) {
		if (mtime == NULL) {
			clock_gettime(CLOCK_REALTIME, &now);
			mtime = &now;
		}
		if (sv_iso8601(mtime, when, sizeof when) == NULL)
			return sv_errf(e, EOVERFLOW, "%s: can't format decided_at",
			    path);
		r->decided_at = sv_xstrdup(when);
	}
	/* The copy has been checked and merged; the record keeps no copy. */
	sv_proposal_free(&r->copy);
	return 0;
}

static int
set_string(json_t *o, const char *key, const char *v)
{
	json_t *s;

	if (v == NULL)
		return 0;
	s = json_string(v);
	if (s == NULL)		/* not valid UTF-8 */
		return -1;
	return json_object_set_new(o, key, s);
}

json_t *
sv_proposal_json(const struct sv_proposal *p)
{
	json_t *o = json_object();
	const struct field *f;

	if (o == NULL)
		return NULL;
	for (f = proposal_fields; f->key; f++) {
		if (set_string(o, f->key,
		    *(char **)((char *)p + f->off)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

json_t *
sv_response_json(const struct sv_response *r)
{
	json_t *o = json_object();
	const struct field *f;
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= json_object_set_new(o, "status",
	    json_string(sv_status_name(r->status)));
	bad |= json_object_set_new(o, "final_file",
	    r->final_file ? json_string(r->final_file) : json_null());
	for (f = response_fields; f->key; f++)
		if (f->off >= 0 && !streq(f->key, "final_file"))
			bad |= set_string(o, f->key,
			    *(char **)((char *)r + f->off));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *
sv_json_text(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	char *out;

	if (s == NULL)
		sv_die(111, "out of memory");
	out = sv_xasprintf("%s\n", s);
	free(s);
	return out;
}

/* Text of a record made by sv_*_json, which is let go. */
static char *
dump(json_t *j)
{
	char *out;

	if (j == NULL)
		return NULL;
	out = sv_json_text(j);
	json_decref(j);
	return out;
}

char *
sv_proposal_dump(const struct sv_proposal *p)
{
	return dump(sv_proposal_json(p));
}

char *
sv_response_dump(const struct sv_response *r)
{
	return dump(sv_response_json(r));
}

void
sv_proposal_free(struct sv_proposal *p)
{
	const struct field *f;

	if (p == NULL)
		return;
	for (f = proposal_fields; f->key; f++) {
		char **m = (char **)((char *)p + f->off);

		free(*m);
		*m = NULL;
	}
}

void
sv_response_free(struct sv_response *r)
{
	const struct field *f;

	if (r == NULL)
		return;
	for (f = response_fields; f->key; f++) {
		if (f->off >= 0) {
			char **m = (char **)((char *)r + f->off);

			free(*m);
			*m = NULL;
		}
	}
	r->status = SV_NONE;
}
