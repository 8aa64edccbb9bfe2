/*
 * fuzz/record.c: the record loader and the proposal and response shapes.
 *
 * Everything in a spool record may have been written by someone we do not
 * trust (an agent's text, a proxy's file, an operator's editor), so the
 * loader and the shape checks see arbitrary bytes here.  Promises checked:
 *  - an accepted record held no NUL byte and is a JSON object;
 *  - an accepted proposal has a valid id and slug (they become spool and
 *    audit-tree paths), and what sv_proposal_dump writes loads back to
 *    the same dump;
 *  - the same for responses;
 *  - a response resolved against a proposal names that proposal, has
 *    notes, decided_by and decided_at, and its status agrees with its
 *    final file: approved carries the proposed file, modified a different
 *    one that passes the tool's payload check, rejected none;
 *  - the commit message of that decision has exactly our trailers, as git
 *    parses them (libgit2's parser), with the proposal's id and the
 *    response's status, whatever the justification and notes say; every
 *    line of theirs is quoted ("> "), and no control byte but the
 *    newline is left raw.
 *
 * Input: a record, or PROPOSAL FUZZ_SEP RESPONSE.  A lone record is also
 * resolved, as a response, against a fixed proposal for every tool.
 */
#include "../src/audit.h"
#include "fuzz.h"

#define FIXED(tool, file) { (char *)"1790000000.M1P1Q1Rfeedfacefeedface.fuzz", \
	(char *)"fuzz", (char *)(tool), (char *)(file), (char *)"because", \
	(char *)"2026-11-22T18:00:00.000000Z", \
	(char *)"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391" }

static const struct sv_proposal fixed[] = {
	FIXED(SV_TOOL_EGRESS_BLOCK, "{\n  \"host\": \"api.example.org\"\n}\n"),
	FIXED(SV_TOOL_EGRESS_ALLOW, "{\n  \"host\": \"example.org\",\n"
	    "  \"path_allowlist\": [\n    \"/v1/\"\n  ]\n}\n"),
	FIXED(SV_TOOL_PIPELOCK_BLOCK, "https://example.org/a/b"),
	FIXED(SV_TOOL_CAPABILITY_BLOCK, "FROM debian:12\nRUN true\n"),
	FIXED(SV_TOOL_GITLEAKS_ALLOW, "abc123:config/app.env:generic-api-key:12"),
	FIXED(SV_TOOL_EGRESS_TOKEN_ALLOW, "token for example.org"),
};

static const struct timespec fixed_mtime = { 1790000000, 123456000 };

/* A dump loads back, through the same checks, to the same dump. */
static void
check_proposal_dump(const struct sv_proposal *p)
{
	struct sv_proposal q;
	struct sv_err e;
	json_t *j = NULL;
	char *dump = sv_proposal_dump(p), *again;

	FUZZ_ASSERT(dump != NULL, "sv_proposal_dump returned NULL");
	memset(&q, 0, sizeof q);
	FUZZ_ASSERT(sv_record_loadb(dump, strlen(dump), "dump", &j, &e) == 0,
	    "dumped proposal does not load: %s", e.msg);
	FUZZ_ASSERT(sv_proposal_from_json(j, "dump", dump, &q, &e) == 0,
	    "dumped proposal is refused: %s", e.msg);
	again = sv_proposal_dump(&q);
	FUZZ_ASSERT(again != NULL && strcmp(dump, again) == 0,
	    "proposal dump changes on reload");
	free(again);
	sv_proposal_free(&q);
	json_decref(j);
	free(dump);
}

static void
check_response_dump(const struct sv_response *r)
{
	struct sv_response q;
	struct sv_err e;
	json_t *j = NULL;
	char *dump = sv_response_dump(r), *again;

	FUZZ_ASSERT(dump != NULL, "sv_response_dump returned NULL");
	memset(&q, 0, sizeof q);
	FUZZ_ASSERT(sv_record_loadb(dump, strlen(dump), "dump", &j, &e) == 0,
	    "dumped response does not load: %s", e.msg);
	FUZZ_ASSERT(sv_response_from_json(j, "dump", dump, &q, &e) == 0,
	    "dumped response is refused: %s", e.msg);
	again = sv_response_dump(&q);
	FUZZ_ASSERT(again != NULL && strcmp(dump, again) == 0,
	    "response dump changes on reload");
	free(again);
	sv_response_free(&q);
	json_decref(j);
	free(dump);
}

static void
check_resolved(const struct sv_response *r, const struct sv_proposal *p)
{
	struct sv_err e;

	FUZZ_ASSERT(r->proposal_id && strcmp(r->proposal_id, p->id) == 0,
	    "resolved response names another proposal");
	FUZZ_ASSERT(r->notes != NULL, "resolved response has no notes");
	FUZZ_ASSERT(r->decided_by != NULL, "resolved response has no decided_by");
	FUZZ_ASSERT(r->decided_at != NULL, "resolved response has no decided_at");
	switch (r->status) {
	case SV_APPROVED:
		FUZZ_ASSERT(r->final_file &&
		    strcmp(r->final_file, p->proposed_file) == 0,
		    "approved without the proposed file as final file");
		break;
	case SV_MODIFIED:
		FUZZ_ASSERT(r->final_file &&
		    strcmp(r->final_file, p->proposed_file) != 0,
		    "modified without a different final file");
		FUZZ_ASSERT(sv_payload_check(p->tool, r->final_file, &e) == 0,
		    "modified final file fails the payload check: %s", e.msg);
		break;
	case SV_REJECTED:
		FUZZ_ASSERT(r->final_file == NULL, "rejected with a final file");
		break;
	default:
		FUZZ_ASSERT(0, "resolved response has no status");
	}
	check_response_dump(r);
}

/*
 * The decision's commit message: agent and operator text cannot add,
 * change or hide a trailer, nor put a line of its own in the body.
 */
static void
check_message(const struct sv_proposal *p, const struct sv_response *r)
{
	static const char *const keys[] = { "Proposal-Id", "Bottle", "Tool",
	    "Status", "Arrived", "Decided", "Rule", "Policy-Commit" };
	git_message_trailer_array t;
	char *msg = decision_message(p, r), *line, *nl;
	size_t i, want = r->rule != NULL ? 8 : 6, para = 0;
	const char *v;

	static int git_ready;

	if (!git_ready)
		git_ready = git_libgit2_init() > 0;
	FUZZ_ASSERT(msg != NULL, "decision_message returned NULL");
	for (i = 0; msg[i] != '\0'; i++)
		FUZZ_ASSERT((unsigned char)msg[i] >= 0x20 || msg[i] == '\n',
		    "raw control 0x%02x at byte %zu of the message",
		    (unsigned char)msg[i], i);

	memset(&t, 0, sizeof t);
	FUZZ_ASSERT(git_message_trailers(&t, msg) == 0,
	    "git cannot parse the trailers of:\n%s", msg);
	FUZZ_ASSERT(t.count == want, "%zu trailers, not %zu, in:\n%s",
	    t.count, want, msg);
	for (i = 0; i < t.count; i++)
		FUZZ_ASSERT(strcmp(t.trailers[i].key, keys[i]) == 0,
		    "trailer %zu is '%s', not '%s', in:\n%s", i,
		    t.trailers[i].key, keys[i], msg);
	FUZZ_ASSERT(strcmp(t.trailers[0].value, p->id) == 0,
	    "Proposal-Id is '%s'", t.trailers[0].value);
	v = sv_status_name(r->status);
	FUZZ_ASSERT(strcmp(t.trailers[3].value, v) == 0,
	    "Status is '%s', not '%s'", t.trailers[3].value, v);
	git_message_trailer_array_free(&t);

	/*
	 * Subject, blank, then paragraphs "Justification:" and "Notes:" of
	 * quoted lines, then the trailers: nothing else starts a line.
	 */
	for (line = strchr(msg, '\n'); line != NULL && line[1] != '\0';
	    line = nl) {
		line++;
		nl = strchr(line, '\n');
		FUZZ_ASSERT(nl != NULL, "message does not end with a newline");
		if (nl == line) {
			para++;
			continue;
		}
		if (para >= 3)
			break;		/* the trailers, checked above */
		FUZZ_ASSERT(para >= 1 && (line[0] == '>' ||
		    strncmp(line, para == 1 ? "Justification:\n" : "Notes:\n",
		    (size_t)(nl - line) + 1) == 0),
		    "line of paragraph %zu not quoted: '%.*s'", para,
		    (int)(nl - line), line);
	}
	FUZZ_ASSERT(para == 3, "%zu blank lines before the trailers, not 3",
	    para);
	free(msg);
}

/* Load `text` as a response and resolve it against p. */
static void
resolve_against(const struct fuzz_part *text, const struct sv_proposal *p)
{
	struct sv_response r;
	struct sv_err e;
	json_t *j = NULL;

	if (sv_record_loadb(text->s, text->len, "r", &j, &e) != 0)
		return;
	memset(&r, 0, sizeof r);
	if (sv_response_from_json(j, "r", text->s, &r, &e) == 0 &&
	    sv_response_resolve(&r, p, "fuzz", &fixed_mtime, "r", &e) == 0) {
		check_resolved(&r, p);
		check_message(p, &r);
	}
	sv_response_free(&r);
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[2];
	size_t nparts = fuzz_split(data, size, part, 2);
	struct sv_proposal p;
	struct sv_response r;
	struct sv_err e;
	json_t *j = NULL;
	int have_p = 0;

	memset(&p, 0, sizeof p);
	if (sv_record_loadb(part[0].s, part[0].len, "a", &j, &e) == 0) {
		FUZZ_ASSERT(json_is_object(j), "accepted a non-object record");
		FUZZ_ASSERT(memchr(part[0].s, '\0', part[0].len) == NULL,
		    "accepted a record with a NUL byte");
		if (sv_proposal_from_json(j, "a", part[0].s, &p, &e) == 0) {
			have_p = 1;
			FUZZ_ASSERT(sv_valid_id(p.id, &e) == 0,
			    "accepted proposal id '%s'", p.id);
			FUZZ_ASSERT(sv_valid_slug(p.bottle_slug, &e) == 0,
			    "accepted bottle_slug '%s'", p.bottle_slug);
			check_proposal_dump(&p);
		}
		memset(&r, 0, sizeof r);
		if (sv_response_from_json(j, "a", part[0].s, &r, &e) == 0)
			check_response_dump(&r);
		sv_response_free(&r);
		json_decref(j);
	}

	if (nparts == 2) {
		if (have_p)
			resolve_against(&part[1], &p);
	} else {
		for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
			resolve_against(&part[0], &fixed[i]);
	}
	sv_proposal_free(&p);
	fuzz_parts_free(part, nparts);
	return 0;
}
