/*
 * record.c tests: the strict loader against a table of bad inputs (each
 * with its exact "FILE:LINE:COLUMN: reason"), the response rules of
 * sv_response_resolve, and the dump format.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervise.h"
#include "tap.h"

#define ID "1795370400.M123456P42Q1Rabcdef0123456789.host"
#define HASH "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"

static const char good[] =
    "{\n"
    "  \"arrival_timestamp\": \"2026-11-22T18:00:00.123456Z\",\n"
    "  \"bottle_slug\": \"web1\",\n"
    "  \"current_file_hash\": \"" HASH "\",\n"
    "  \"id\": \"" ID "\",\n"
    "  \"justification\": \"need it\",\n"
    "  \"proposed_file\": \"https://api.example.org/v1\",\n"
    "  \"tool\": \"pipelock-block\"\n"
    "}\n";

static int dirfd_;

static void
put(const char *name, const char *data, size_t len)
{
	int fd;

	unlinkat(dirfd_, name, 0);
	fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || sv_write_all(fd, data, len) < 0) {
		perror(name);
		exit(1);
	}
	close(fd);
}

/* good with `from` replaced by `to` (first occurrence). */
static char *
edit(const char *from, const char *to)
{
	const char *at = strstr(good, from);
	char *s;

	if (at == NULL) {
		fprintf(stderr, "edit: '%s' not in the record\n", from);
		exit(1);
	}
	s = sv_xasprintf("%.*s%s%s", (int)(at - good), good, to,
	    at + strlen(from));
	return s;
}

static char *
repeat(char c, size_t n)
{
	char *s = sv_xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Load a proposal from file `name`: the error message, or "ok". */
static const char *
load_proposal(const char *name, const char *data, size_t len)
{
	static struct sv_err e;
	struct sv_proposal p;

	if (data)
		put(name, data, len);
	if (sv_proposal_read(dirfd_, name, name, &p, &e) < 0)
		return e.msg;
	sv_proposal_free(&p);
	return "ok";
}

static void
bad_proposal(const char *data, size_t len, const char *want, const char *what)
{
	is_str(load_proposal("p.json", data, len), want, "refused: %s", what);
}

static void
bad_edit(const char *from, const char *to, const char *want, const char *what)
{
	char *s = edit(from, to);

	bad_proposal(s, strlen(s), want, what);
	free(s);
}

static void
test_bad_inputs(void)
{
	char *s, *big;
	size_t n;

	is_str(load_proposal("p.json", good, strlen(good)), "ok",
	    "the good proposal loads");

	/* Syntax: jansson's own positions and words. */
	bad_edit("  \"tool\": \"pipelock-block\"\n",
	    "  \"tool\": \"pipelock-block\",\n  \"tool\": \"x\"\n",
	    "p.json:9:8: duplicate object key near '\"tool\"'", "duplicate key");
	bad_edit("need it", "need \xff it",
	    "p.json:6:25: unable to decode byte 0xff near '\"need '",
	    "invalid UTF-8");
	bad_edit("need it", "need \\u0000 it",
	    "p.json:6:35: \\\\u0000 is not allowed without JSON_ALLOW_NUL near "
	    "'\"need \\\\u0000 it\"'", "escaped NUL (message escaped too)");
	bad_proposal(good, strlen(good) - 20,
	    "p.json:8:9: unexpected token near end of file",
	    "truncated JSON");
	bad_proposal("", 0, "p.json:1:1: '[' or '{' expected near end of file",
	    "empty file");
	bad_proposal("\n\n", 2, "p.json:3:1: '[' or '{' expected near end of file",
	    "blank file");
	bad_proposal("{} x\n", 5, "p.json:1:4: end of file expected near 'x'",
	    "trailing garbage");
	bad_proposal("\xef\xbb\xbf{}", 5,
	    "p.json:1:1: '[' or '{' expected near '\\u{feff}'",
	    "byte order mark (escaped in the message)");
	bad_proposal("{\"\x1b[31m\": 1\n", 12,
	    "p.json:1:2: control character 0x1b near '\"'",
	    "raw ESC inside a string");
	bad_proposal("{\"a\": 1 \x1b[2J}", 13,
	    "p.json:1:9: '}' expected near '\\x1b'",
	    "raw ESC in the message is escaped");
	/* Nesting beyond jansson's limit, inside an otherwise good object. */
	n = 3000;
	big = sv_xmalloc(2 * n + 40);
	strcpy(big, "{\"justification\": ");
	memset(big + strlen(big), '[', n);
	big[18 + n] = '\0';
	bad_proposal(big, strlen(big),
	    "p.json:1:2066: maximum parsing depth reached near '['",
	    "deep nesting");
	free(big);

	/* NUL bytes: where they are, before jansson sees them. */
	s = edit("need it", "need\1 it");
	*strchr(s, '\1') = '\0';
	bad_proposal(s, strlen(good) + 1, "p.json:6:25: NUL byte in record",
	    "NUL byte");
	free(s);
	bad_proposal("\0{}", 3, "p.json:1:1: NUL byte in record",
	    "NUL byte first");
	bad_proposal("{\n\"\xc3\xa9\xc3\xa9\": \0}", 11,
	    "p.json:2:7: NUL byte in record",
	    "NUL byte: column counts characters, not bytes");

	/* Top level. */
	bad_proposal("[1, 2]\n", 7,
	    "p.json:1:1: the record must be a JSON object", "an array");
	bad_proposal("\n  [\"x\"]", 8,
	    "p.json:2:3: the record must be a JSON object", "an array, indented");
	bad_proposal("\"x\"", 3, "p.json:1:3: '[' or '{' expected near '\"x\"'",
	    "a string");

	/* Shape: the key's position, found in the parsed text. */
	bad_edit("  \"bottle_slug\"", "  \"colour\": \"red\",\n  \"bottle_slug\"",
	    "p.json:3:3: unknown key 'colour'", "unknown key");
	bad_edit("  \"bottle_slug\"",
	    "  \"\\u001b[31m\": \"red\",\n  \"bottle_slug\"",
	    "p.json:3:3: unknown key '\\x1b[31m'", "unknown key, escaped");
	bad_proposal("{\"justification\": \"colour\\\", \\\"colour\", \"colour\": 1}",
	    52, "p.json:1:41: unknown key 'colour'",
	    "unknown key: the key, not the same text inside a value");
	bad_proposal("{\"justification\": \"\xc3\xa9\", \"colour\": 1}", 36,
	    "p.json:1:24: unknown key 'colour'",
	    "unknown key: column in characters");
	bad_edit("\"need it\"", "5", "p.json:6:3: 'justification' must be a string",
	    "wrong type: number");
	bad_edit("\"need it\"", "null",
	    "p.json:6:3: 'justification' must be a string", "wrong type: null");
	bad_edit("  \"tool\": \"pipelock-block\"",
	    "  \"\\u0074ool\": [\"pipelock-block\"]",
	    "p.json:8:3: 'tool' must be a string",
	    "wrong type, key written with an escape");
	bad_edit("  \"bottle_slug\": \"web1\",\n", "",
	    "p.json:1:1: missing required key 'bottle_slug'", "missing key");
	bad_edit(",\n  \"tool\": \"pipelock-block\"", "",
	    "p.json:1:1: missing required key 'tool'", "missing last key");

	/* Oversize fields: one byte over each limit. */
	big = repeat('a', SV_SHORT_MAX + 1);
	s = edit("pipelock-block", big);
	bad_proposal(s, strlen(s), "p.json:8:3: 'tool' is longer than 256 bytes",
	    "oversize tool");
	free(s);
	free(big);
	big = repeat('j', SV_TEXT_MAX + 1);
	s = edit("need it", big);
	bad_proposal(s, strlen(s),
	    "p.json:6:3: 'justification' is longer than 65536 bytes",
	    "oversize justification");
	free(s);
	free(big);
	big = repeat('f', SV_FILE_MAX + 1);
	s = edit("https://api.example.org/v1", big);
	bad_proposal(s, strlen(s),
	    "p.json:7:3: 'proposed_file' is longer than 1048576 bytes",
	    "oversize proposed_file");
	free(s);
	big[SV_FILE_MAX] = '\0';
	s = edit("https://api.example.org/v1", big);
	is_str(load_proposal("p.json", s, strlen(s)), "ok",
	    "proposed_file of exactly 1 MiB loads");
	free(s);
	free(big);

	/* Values with a meaning. */
	bad_edit(ID, "../x",
	    "p.json:5:3: invalid proposal id '../x': must start with a letter "
	    "or digit", "path traversal in id");
	bad_edit(ID, "a/b",
	    "p.json:5:3: invalid proposal id 'a/b': '/' is not allowed "
	    "(letters, digits, '.', '_', '-' only)", "slash in id");
	bad_edit("\"web1\"", "\".hidden\"",
	    "p.json:3:3: invalid bottle slug '.hidden': must start with a letter "
	    "or digit", "hidden slug");
	bad_edit("2026-11-22T18:00:00.123456Z", "yesterday",
	    "p.json:2:3: 'arrival_timestamp' must be an RFC 3339 time like "
	    "2026-11-22T18:00:00.123456Z or 2026-11-22T19:00:00+01:00, not "
	    "'yesterday'", "bad timestamp");
	bad_edit(HASH, "E69DE29BB2D1D6434B8B29AE775AD8C2E48C5391",
	    "p.json:4:3: 'current_file_hash' must be 40 or 64 lowercase hex "
	    "digits, not 'E69DE29BB2D1D6434B8B29AE775AD8C2E48C5391'", "bad hash");
}

static void
test_files(void)
{
	struct sv_err e;
	json_t *j;
	char *text, *big;
	size_t n = SV_RECORD_MAX + 1;

	put("target.json", good, strlen(good));
	unlinkat(dirfd_, "link.json", 0);
	ok(symlinkat("target.json", dirfd_, "link.json") == 0, "make a symlink");
	is_str(load_proposal("link.json", NULL, 0),
	    "can't open 'link.json': is a symbolic link, refused", "symlink");
	unlinkat(dirfd_, "fifo.json", 0);
	ok(mkfifoat(dirfd_, "fifo.json", 0600) == 0, "make a fifo");
	/* O_NONBLOCK: opening a fifo with no writer must not hang. */
	is_str(load_proposal("fifo.json", NULL, 0),
	    "can't read 'fifo.json': not a regular file, refused", "fifo");
	mkdirat(dirfd_, "dir.json", 0700);
	is_str(load_proposal("dir.json", NULL, 0),
	    "can't read 'dir.json': not a regular file, refused", "directory");
	is_str(load_proposal("missing.json", NULL, 0),
	    "can't open 'missing.json': No such file or directory", "missing");

	big = sv_xmalloc(n);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	put("big.json", big, n);
	ok(sv_record_load(dirfd_, "big.json", "big.json", &j, NULL, &e) == -1,
	    "record of 8 MiB + 1 refused");
	is_str(e.msg, "can't read 'big.json': larger than 8388608 bytes",
	    "size message");
	put("big.json", big + 1, n - 1);
	big[1] = '{';
	put("big.json", big + 1, n - 1);
	ok(sv_record_load(dirfd_, "big.json", "big.json", &j, &text, &e) == 0 &&
	    strlen(text) == n - 1, "record of exactly 8 MiB loads, text kept");
	json_decref(j);
	free(text);
	free(big);
}

static int
parse_response(const char *text, struct sv_response *r, struct sv_err *e)
{
	json_t *j;
	int rc;

	if (sv_record_loadb(text, strlen(text), "r.json", &j, e) < 0)
		return -1;
	rc = sv_response_from_json(j, "r.json", text, r, e);
	json_decref(j);
	return rc;
}

static void
base_proposal(struct sv_proposal *p)
{
	struct sv_err e;

	put("p.json", good, strlen(good));
	if (sv_proposal_read(dirfd_, "p.json", "p.json", p, &e) < 0) {
		printf("# %s\n", e.msg);
		exit(1);
	}
}

/* Parse and resolve: the error, or "ok"; r is kept for inspection. */
static const char *
resolve(const char *text, struct sv_response *r)
{
	static struct sv_err e;
	struct timespec mtime = {1795370460, 250000000};
	struct sv_proposal p;
	int rc;

	base_proposal(&p);
	memset(r, 0, sizeof *r);
	rc = parse_response(text, r, &e);
	if (rc == 0)
		rc = sv_response_resolve(r, &p, "alice", &mtime, "r.json", &e);
	sv_proposal_free(&p);
	return rc == 0 ? "ok" : e.msg;
}

static void
refused(const char *text, const char *want, const char *what)
{
	struct sv_response r;

	is_str(resolve(text, &r), want, "response refused: %s", what);
	sv_response_free(&r);
}

static void
test_responses(void)
{
	struct sv_response r;
	char *copy, *s;

	is_str(resolve("{\"status\": \"approved\", \"notes\": \"ok\"}\n", &r),
	    "ok", "hand-written minimal approval");
	ok(r.status == SV_APPROVED, "status approved");
	is_str(r.proposal_id, ID, "proposal_id from the proposal");
	is_str(r.final_file, "https://api.example.org/v1",
	    "approved: final file is the proposed file");
	is_str(r.notes, "ok", "notes kept");
	is_str(r.decided_by, "alice", "decided_by from the owner");
	is_str(r.decided_at, "2026-11-22T18:01:00.250000Z",
	    "decided_at from the mtime");
	sv_response_free(&r);

	is_str(resolve("{\"status\": \"rejected\"}", &r), "ok", "bare rejection");
	ok(r.status == SV_REJECTED && r.final_file == NULL &&
	    strcmp(r.notes, "") == 0, "rejected: no final file, notes \"\"");
	s = sv_response_dump(&r);
	is_str(s, "{\n"
	    "  \"decided_at\": \"2026-11-22T18:01:00.250000Z\",\n"
	    "  \"decided_by\": \"alice\",\n"
	    "  \"final_file\": null,\n"
	    "  \"notes\": \"\",\n"
	    "  \"proposal_id\": \"" ID "\",\n"
	    "  \"status\": \"rejected\"\n"
	    "}\n", "response dump: sorted, 2-space indent, null final_file");
	free(s);
	sv_response_free(&r);

	is_str(resolve("{\"status\": \"rejected\", \"final_file\": null}", &r),
	    "ok", "rejection with final_file null");
	sv_response_free(&r);
	refused("{\"status\": \"rejected\", \"final_file\": \"x\"}",
	    "r.json: a rejection carries no final file; remove 'final_file' or "
	    "set it to null", "rejected with a final file");

	is_str(resolve("{\"status\": \"approved\", \"final_file\": "
	    "\"https://other.example.org/\"}", &r), "ok",
	    "approval with a different final file");
	ok(r.status == SV_MODIFIED, "... becomes modified");
	sv_response_free(&r);
	is_str(resolve("{\"status\": \"approved\", \"final_file\": null}", &r),
	    "ok", "approval with final_file null: same as absent");
	is_str(r.final_file, "https://api.example.org/v1", "... proposed file");
	sv_response_free(&r);
	is_str(resolve("{\"status\": \"modified\", \"final_file\": "
	    "\"https://other.example.org/\"}", &r), "ok", "modified");
	ok(r.status == SV_MODIFIED, "... stays modified");
	sv_response_free(&r);
	refused("{\"status\": \"modified\"}",
	    "r.json: status 'modified' needs a final file that differs from the "
	    "proposal's", "modified without a final file");
	refused("{\"status\": \"modified\", \"final_file\": "
	    "\"https://api.example.org/v1\"}",
	    "r.json: status 'modified' needs a final file that differs from the "
	    "proposal's", "modified with the same file");
	s = sv_xasprintf("{\"status\": \"modified\", \"final_file\": \"%s\"}",
	    "not a url");
	is_str(resolve(s, &r), "r.json: final file refused: pipelock-block: "
	    "failed_url is not a valid URL (got 'not a url')",
	    "modified payload checked");
	sv_response_free(&r);
	free(s);

	refused("{\"status\": \"approved\", \"proposal_id\": "
	    "\"1795370400.M1P1Q1Rffff.other\"}",
	    "r.json: proposal_id '1795370400.M1P1Q1Rffff.other' does not match "
	    "the proposal '" ID "'", "mismatched proposal_id");
	is_str(resolve("{\"status\": \"approved\", \"proposal_id\": \"" ID "\", "
	    "\"decided_by\": \"Bob <bob@example.org>\", \"decided_at\": "
	    "\"2026-11-22T19:00:00.000000Z\", \"notes\": \"n\"}", &r), "ok",
	    "full response from a CLI");
	is_str(r.decided_by, "Bob <bob@example.org>", "decided_by kept");
	is_str(r.decided_at, "2026-11-22T19:00:00.000000Z", "decided_at kept");
	sv_response_free(&r);

	/* Edit and move: a copy of the proposal with a status. */
	copy = edit("{\n", "{\n  \"status\": \"approved\",\n");
	is_str(resolve(copy, &r), "ok", "unchanged copy of the proposal");
	ok(r.status == SV_APPROVED, "... is approved");
	ok(r.copy.id == NULL && r.copy.proposed_file == NULL,
	    "... and the copy is dropped once merged");
	s = sv_response_dump(&r);
	ok(s && strstr(s, "\"tool\"") == NULL, "... and not dumped");
	free(s);
	sv_response_free(&r);
	free(copy);
	copy = edit("{\n", "{\n  \"status\": \"approved\",\n");
	s = copy;
	copy = sv_xasprintf("%.*shttps://api.example.org/v2%s",
	    (int)(strstr(s, "https://api.example.org/v1") - s), s,
	    strstr(s, "https://api.example.org/v1") +
	    strlen("https://api.example.org/v1"));
	free(s);
	is_str(resolve(copy, &r), "ok", "copy with an edited proposed_file");
	ok(r.status == SV_MODIFIED, "... is modified");
	is_str(r.final_file, "https://api.example.org/v2", "... with that text");
	sv_response_free(&r);
	s = edit("{\n", "{\n  \"status\": \"rejected\",\n");
	free(copy);
	copy = sv_xasprintf("%.*shttps://api.example.org/v2%s",
	    (int)(strstr(s, "https://api.example.org/v1") - s), s,
	    strstr(s, "https://api.example.org/v1") +
	    strlen("https://api.example.org/v1"));
	free(s);
	refused(copy, "r.json: a rejection carries no final file, but "
	    "'proposed_file' was edited", "rejected copy with an edit");
	free(copy);
	copy = edit("{\n", "{\n  \"final_file\": \"https://x.example.org/\",\n"
	    "  \"status\": \"approved\",\n");
	s = copy;
	copy = sv_xasprintf("%.*shttps://api.example.org/v2%s",
	    (int)(strstr(s, "https://api.example.org/v1") - s), s,
	    strstr(s, "https://api.example.org/v1") +
	    strlen("https://api.example.org/v1"));
	free(s);
	refused(copy, "r.json: both 'final_file' and an edited 'proposed_file' "
	    "are given; keep one", "final_file and an edited proposed_file");
	free(copy);
	copy = edit("{\n", "{\n  \"status\": \"approved\",\n");
	s = copy;
	copy = sv_xasprintf("%.*segress-block%s",
	    (int)(strstr(s, "pipelock-block") - s), s,
	    strstr(s, "pipelock-block") + strlen("pipelock-block"));
	free(s);
	refused(copy, "r.json: 'tool' differs from the proposal's; only "
	    "'proposed_file' may be edited", "copy with an edited tool");
	free(copy);

	/* Shape errors in responses. */
	refused("{\"notes\": \"ok\"}", "r.json:1:1: missing required key 'status'",
	    "no status");
	refused("{\"status\": \"yes\"}",
	    "r.json:1:2: 'status' must be approved, modified or rejected, not "
	    "'yes'", "unknown status");
	refused("{\"status\": \"approved\",\n \"final_file\": 5}",
	    "r.json:2:2: 'final_file' must be a string or null",
	    "final_file of the wrong type");
	refused("{\"status\": \"approved\",\n \"notes\": null}",
	    "r.json:2:2: 'notes' must be a string", "notes null");
	refused("{\"status\": \"approved\", \"decided_at\": \"now\"}",
	    "r.json:1:24: 'decided_at' must be an RFC 3339 time like "
	    "2026-11-22T18:00:00.123456Z or 2026-11-22T19:00:00+01:00, not "
	    "'now'", "decided_at not a time");
	refused("{\"status\": \"approved\", \"Status\": \"approved\"}",
	    "r.json:1:24: unknown key 'Status'", "unknown key (case matters)");
	refused("{\"status\": \"approved\", \"status\": \"rejected\"}",
	    "r.json:1:31: duplicate object key near '\"status\"'",
	    "two statuses");
	refused("{\"status\": \"approved\", \"proposal_id\": \"../../etc\"}",
	    "r.json:1:24: invalid proposal id '../../etc': must start with a "
	    "letter or digit", "proposal_id with path traversal");
}

/*
 * The egress proxy's writer (its egress-token-allow proposals) gives the
 * time with a numeric offset and a sha256 hash; both load, the time
 * rewritten in UTC.  A malformed offset is refused where it stands.
 */
#define SHA256 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define PROXY_TIME "2026-12-04T15:40:37.188892+00:00"

static void
test_proxy_writer(void)
{
	static const struct {
		const char *given, *utc;
	} times[] = {
		{PROXY_TIME, "2026-12-04T15:40:37.188892Z"},
		{"2026-12-04T21:10:37.5+05:30", "2026-12-04T15:40:37.5Z"},
		{"2026-01-01T00:30:00-01:00", "2026-01-01T01:30:00Z"},
		{"2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00Z"},
		{"2024-03-01T00:00:00.000000001+00:01", "2024-02-29T23:59:00.000000001Z"},
		{"2026-12-04t15:40:37z", "2026-12-04T15:40:37Z"},
		{"2016-12-31T23:59:60Z", "2016-12-31T23:59:60Z"},
		{"2017-01-01T00:59:60+01:00", "2016-12-31T23:59:60Z"},
		{"2026-11-22T18:00:00.123456-00:00", "2026-11-22T18:00:00.123456Z"},
	};
	static const char *bad[] = {
		"2026-12-04T15:40:37.188892+0000", "2026-12-04T15:40:37+5:00",
		"2026-12-04T15:40:37+24:00", "2026-12-04T15:40:37+01:60",
		"2026-12-04T15:40:37+01", "2026-12-04T15:40:37 +01:00",
		"2026-12-04T15:40:37+01:00Z", "2026-12-04 15:40:37+01:00",
		"2026-12-04T15:40:60+01:00", "2026-12-04T15:40:37.+01:00",
		"0000-01-01T00:30:00+01:00",
	};
	struct sv_proposal p;
	struct sv_response r;
	struct sv_err e;
	char *s, *t, *want, *copy, *dump;
	size_t i;

	for (i = 0; i < sizeof times / sizeof times[0]; i++) {
		s = edit("2026-11-22T18:00:00.123456Z", times[i].given);
		put("o.json", s, strlen(s));
		memset(&p, 0, sizeof p);
		if (sv_proposal_read(dirfd_, "o.json", "o.json", &p, &e) < 0)
			is_str(e.msg, "ok", "%s loads", times[i].given);
		else
			is_str(p.arrival_timestamp, times[i].utc,
			    "%s is stored as %s", times[i].given, times[i].utc);
		sv_proposal_free(&p);
		free(s);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		s = edit("2026-11-22T18:00:00.123456Z", bad[i]);
		want = sv_xasprintf("p.json:2:3: 'arrival_timestamp' must be an "
		    "RFC 3339 time like 2026-11-22T18:00:00.123456Z or "
		    "2026-11-22T19:00:00+01:00, not '%s'", bad[i]);
		is_str(load_proposal("p.json", s, strlen(s)), want,
		    "refused: malformed time %s", bad[i]);
		free(want);
		free(s);
	}

	/* The whole record as the egress proxy writes it. */
	t = edit("2026-11-22T18:00:00.123456Z", PROXY_TIME);
	s = sv_xasprintf("%.*s%s%s", (int)(strstr(t, HASH) - t), t, SHA256,
	    strstr(t, HASH) + strlen(HASH));
	free(t);
	is_str(load_proposal("o.json", s, strlen(s)), "ok",
	    "offset time and sha256 hash load together");
	memset(&p, 0, sizeof p);
	sv_proposal_read(dirfd_, "o.json", "o.json", &p, &e);
	is_str(p.current_file_hash, SHA256, "the sha256 is kept as given");
	dump = sv_proposal_dump(&p);
	ok(dump && strstr(dump, "\"2026-12-04T15:40:37.188892Z\"") &&
	    !strstr(dump, "+00:00"), "the record is written back in UTC");
	free(dump);

	/* An operator's edited copy of that file still matches it. */
	copy = sv_xasprintf("{\n  \"status\": \"approved\",%s", s + 1);
	memset(&r, 0, sizeof r);
	if (parse_response(copy, &r, &e) == 0 &&
	    sv_response_resolve(&r, &p, "alice", NULL, "r.json", &e) == 0)
		strcpy(e.msg, "ok");
	is_str(e.msg, "ok", "a copy of it with a status resolves against it");
	sv_response_free(&r);
	sv_proposal_free(&p);
	free(copy);
	free(s);

	s = edit(HASH, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0");
	bad_proposal(s, strlen(s), "p.json:4:3: 'current_file_hash' must be "
	    "40 or 64 lowercase hex digits, not "
	    "'9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0'",
	    "a hash of 63 digits");
	free(s);
}

static void
test_dump(void)
{
	struct sv_proposal p, q;
	struct sv_err e;
	json_t *j;
	char *s;

	base_proposal(&p);
	s = sv_proposal_dump(&p);
	is_str(s, good, "proposal dump is byte-identical to the canonical form");
	ok(sv_record_loadb(s, strlen(s), "d", &j, &e) == 0 &&
	    sv_proposal_from_json(j, "d", s, &q, &e) == 0 &&
	    strcmp(q.proposed_file, p.proposed_file) == 0,
	    "dump loads back");
	json_decref(j);
	sv_proposal_free(&q);
	free(s);
	free(p.justification);
	p.justification = sv_xstrdup("bad \xff utf-8");
	ok(sv_proposal_dump(&p) == NULL, "dump refuses invalid UTF-8");
	sv_proposal_free(&p);
	ok(p.id == NULL && p.tool == NULL, "free clears the fields");
	ok(strcmp(sv_status_name(SV_MODIFIED), "modified") == 0 &&
	    sv_status_parse("rejected", NULL) == 0 &&
	    sv_status_parse("Rejected", NULL) == -1, "status names");
}

int
main(void)
{
	char dir[] = "/tmp/supervise-record.XXXXXX";

	if (mkdtemp(dir) == NULL || (dirfd_ = open(dir, O_DIRECTORY)) < 0) {
		perror(dir);
		return 1;
	}
	plan(118);
	test_bad_inputs();
	test_files();
	test_responses();
	test_dump();
	test_proxy_writer();
	/* Everything was made inside dir; remove it the simple way. */
	char *cmd = sv_xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(cmd);
	return done_testing();
}
