/*
 * fuzz/rpc.c: the request path of the sidecar, body in, verdict out.
 *
 * sv_mcp_handle is everything supervised does with an agent's request
 * before any I/O: the JSON-RPC parse, the dispatch by method, and the
 * tools/call argument checks (sv_tool_args).  The agent is the party we
 * do not trust, so every body is fair game.  Promises checked:
 *  - a verdict is always one of the four kinds, with what that kind
 *    needs (a reply to send; a tool for a call; an id for a cancel);
 *  - a reply is a JSON-RPC 2.0 response: "jsonrpc": "2.0", an id, and
 *    exactly one of result or error, the error code one of the five
 *    standard ones; it dumps as one line of JSON that parses back;
 *  - initialize answers a protocol version we support;
 *  - a proposing call carries a non-empty justification within the limit
 *    and a payload that passes the tool's own payload check (what the
 *    operator's tools and the audit code later assume), and a
 *    proposal-status call a valid proposal id (it becomes a path).
 *
 * Input: the request body, as it came over HTTP.
 */
#include "../src/daemon.h"
#include "fuzz.h"

static void
check_reply(const struct sv_mcp_msg *m)
{
	json_t *r = m->reply, *err, *back;
	char *line;

	FUZZ_ASSERT(json_is_object(r), "reply is not an object");
	FUZZ_ASSERT(json_is_string(json_object_get(r, "jsonrpc")) &&
	    strcmp(json_string_value(json_object_get(r, "jsonrpc")), "2.0") == 0,
	    "reply without jsonrpc 2.0");
	FUZZ_ASSERT(json_object_get(r, "id") != NULL, "reply without an id");
	err = json_object_get(r, "error");
	FUZZ_ASSERT((err != NULL) != (json_object_get(r, "result") != NULL),
	    "reply needs exactly one of result and error");
	if (err) {
		json_int_t code = json_integer_value(json_object_get(err,
		    "code"));
		FUZZ_ASSERT(code == SV_RPC_PARSE_ERROR ||
		    code == SV_RPC_INVALID_REQUEST ||
		    code == SV_RPC_METHOD_NOT_FOUND ||
		    code == SV_RPC_INVALID_PARAMS ||
		    code == SV_RPC_INTERNAL_ERROR, "error code %lld",
		    (long long)code);
		FUZZ_ASSERT(json_is_string(json_object_get(err, "message")) &&
		    *json_string_value(json_object_get(err, "message")),
		    "error without a message");
	}
	if (m->initialize && !err) {
		const char *v = json_string_value(json_object_get(
		    json_object_get(r, "result"), "protocolVersion"));
		FUZZ_ASSERT(sv_mcp_version_ok(v), "initialize answered '%s'",
		    v ? v : "(none)");
	}

	line = sv_mcp_dumps(r);
	FUZZ_ASSERT(line != NULL, "reply does not dump");
	FUZZ_ASSERT(strchr(line, '\n') == line + strlen(line) - 1,
	    "reply is not one line");
	back = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
	FUZZ_ASSERT(back != NULL && json_equal(back, r),
	    "dumped reply does not parse back to itself");
	json_decref(back);
	free(line);
}

static void
check_call(const struct sv_mcp_msg *m)
{
	struct sv_err e;

	FUZZ_ASSERT(m->tool != NULL && m->tool->offered, "call without an "
	    "offered tool");
	FUZZ_ASSERT(m->id != NULL, "a call without an id");
	if (m->tool->proposes) {
		FUZZ_ASSERT(m->payload && m->justification,
		    "%s call without payload or justification", m->tool->name);
		FUZZ_ASSERT(sv_payload_check(m->tool->name, m->payload, &e) == 0,
		    "%s payload fails its own check: %s", m->tool->name, e.msg);
		FUZZ_ASSERT(*m->justification &&
		    strlen(m->justification) <= SV_TEXT_MAX,
		    "justification empty or too long");
		FUZZ_ASSERT(strlen(m->payload) <= SV_FILE_MAX, "payload too long");
	} else if (strcmp(m->tool->name, SV_TOOL_PROPOSAL_STATUS) == 0) {
		FUZZ_ASSERT(m->proposal_id &&
		    sv_valid_id(m->proposal_id, &e) == 0,
		    "proposal-status with an invalid id");
		FUZZ_ASSERT(m->wait_seconds >= -1, "negative wait");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_mcp_msg m;

	sv_mcp_handle((const char *)data, size, &m);
	switch (m.kind) {
	case SV_MCP_REPLY:
		FUZZ_ASSERT(m.reply != NULL, "a reply verdict without a reply");
		check_reply(&m);
		break;
	case SV_MCP_ACCEPTED:
		FUZZ_ASSERT(m.reply == NULL, "accepted with a reply");
		break;
	case SV_MCP_CANCEL:
		FUZZ_ASSERT(json_is_string(m.cancel_id) ||
		    json_is_number(m.cancel_id), "cancel without a request id");
		break;
	case SV_MCP_CALL:
		check_call(&m);
		break;
	default:
		FUZZ_ASSERT(0, "verdict kind %d", (int)m.kind);
	}
	sv_mcp_msg_free(&m);
	return 0;
}
