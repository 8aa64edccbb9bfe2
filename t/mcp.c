/*
 * mcp.c: unit tests of the JSON-RPC layer (src/mcp.c): error codes and
 * the seed's messages, version negotiation, notifications, tools/call
 * argument checks, and the texts a waiting call is answered with.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "tap.h"

static struct sv_mcp_msg m;

static void
handle(const char *body)
{
	sv_mcp_msg_free(&m);
	sv_mcp_handle(body, strlen(body), &m);
}

static json_t *
path(json_t *j, const char *a, const char *b)
{
	j = json_object_get(j, a);
	return b ? json_object_get(j, b) : j;
}

static int
error_is(const char *body, int code, const char *msg, const char *name)
{
	const char *got;

	handle(body);
	got = json_string_value(path(m.reply, "error", "message"));
	return ok(m.kind == SV_MCP_REPLY &&
	    json_integer_value(path(m.reply, "error", "code")) == code &&
	    got != NULL && strcmp(got, msg) == 0, "%s", name) ||
	    (printf("#   got: %d %s\n", (int)json_integer_value(path(m.reply,
	    "error", "code")), got ? got : "(none)"), 0);
}

static const char *
negotiated(const char *body)
{
	handle(body);
	return json_string_value(path(path(m.reply, "result", NULL),
	    "protocolVersion", NULL));
}

/* "x" repeated n times, as a JSON string's contents. */
static char *
xs(size_t n)
{
	char *s = malloc(n + 1);

	memset(s, 'x', n);
	s[n] = '\0';
	return s;
}

static void
long_ids(void)
{
	char *at = xs(SV_MCP_ID_MAX), *over = xs(SV_MCP_ID_MAX + 1), *b, *msg;

	b = sv_xasprintf("{\"jsonrpc\": \"2.0\", \"id\": \"%s\", "
	    "\"method\": \"ping\"}", at);
	handle(b);
	ok(m.kind == SV_MCP_REPLY && json_object_get(m.reply, "result") &&
	    strcmp(json_string_value(json_object_get(m.reply, "id")), at) == 0,
	    "an id of %d bytes is answered", SV_MCP_ID_MAX);
	free(b);
	b = sv_xasprintf("{\"jsonrpc\": \"2.0\", \"id\": \"%s\", "
	    "\"method\": \"ping\"}", over);
	msg = sv_xasprintf("id must be at most %d bytes long (this one has "
	    "%d)", SV_MCP_ID_MAX, SV_MCP_ID_MAX + 1);
	error_is(b, SV_RPC_INVALID_REQUEST, msg, "a longer id is refused");
	ok(json_is_null(json_object_get(m.reply, "id")),
	    "and not echoed back");
	free(b);
	free(msg);
	b = sv_xasprintf("{\"jsonrpc\": \"2.0\", \"id\": 4, \"method\": "
	    "\"tools/call\", \"params\": {\"name\": \"egress-block\", "
	    "\"_meta\": {\"progressToken\": \"%s\"}, \"arguments\": "
	    "{\"host\": \"a.example\", \"justification\": \"j\"}}}", over);
	msg = sv_xasprintf("_meta.progressToken must be at most %d bytes long "
	    "(this one has %d)", SV_MCP_ID_MAX, SV_MCP_ID_MAX + 1);
	error_is(b, SV_RPC_INVALID_PARAMS, msg,
	    "a longer progress token is refused; nothing to file");
	free(b);
	free(msg);
	b = sv_xasprintf("{\"jsonrpc\": \"2.0\", \"id\": 4, \"method\": "
	    "\"tools/call\", \"params\": {\"name\": \"egress-block\", "
	    "\"_meta\": {\"progressToken\": \"%s\"}, \"arguments\": "
	    "{\"host\": \"a.example\", \"justification\": \"j\"}}}", at);
	handle(b);
	ok(m.kind == SV_MCP_CALL && json_string_length(m.progress_token) ==
	    SV_MCP_ID_MAX, "a progress token of %d bytes is kept",
	    SV_MCP_ID_MAX);
	free(b);
	free(at);
	free(over);
}

int
main(void)
{
	char *s;
	const char *v;

	plan(48);

	error_is("{", SV_RPC_PARSE_ERROR,
	    "parse error: string or '}' expected near end of file: "
	    "line 1 column 1", "parse error");
	ok(json_is_null(json_object_get(m.reply, "id")), "parse error has id "
	    "null");
	error_is("{\"a\": 1, \"a\": 2}", SV_RPC_PARSE_ERROR,
	    "parse error: duplicate object key near '\"a\"': line 1 column 12",
	    "duplicate keys refused");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"a\\u0000\"}",
	    SV_RPC_PARSE_ERROR, "parse error: \\u0000 is not allowed without "
	    "JSON_ALLOW_NUL near '\"a\\u0000\"': line 1 column 47",
	    "NUL refused");
	error_is("[1]", SV_RPC_INVALID_REQUEST, "request must be a JSON object",
	    "batch refused");
	error_is("7", SV_RPC_INVALID_REQUEST, "request must be a JSON object",
	    "scalar refused");
	error_is("{\"jsonrpc\": \"1.0\", \"id\": 1, \"method\": \"ping\"}",
	    SV_RPC_INVALID_REQUEST, "jsonrpc field must be '2.0'",
	    "jsonrpc 1.0 refused");
	ok(json_integer_value(json_object_get(m.reply, "id")) == 1,
	    "error carries the request id");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": 3}",
	    SV_RPC_INVALID_REQUEST, "method must be a string", "method type");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": [1], \"method\": \"ping\"}",
	    SV_RPC_INVALID_REQUEST, "id must be a string or a number",
	    "id type");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\", "
	    "\"params\": [1]}", SV_RPC_INVALID_PARAMS,
	    "params must be an object", "params type");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": \"x\", \"method\": "
	    "\"server/discover\"}", SV_RPC_METHOD_NOT_FOUND,
	    "method not found: server/discover", "unknown method");
	ok(strcmp(json_string_value(json_object_get(m.reply, "id")), "x") == 0,
	    "string id echoed");

	handle("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"\\u00\326\235\"}");
	ok(m.kind == SV_MCP_REPLY && json_integer_value(path(m.reply, "error",
	    "code")) == SV_RPC_PARSE_ERROR, "a parse error quoting half a "
	    "character is still answered");
	{
		char *line = m.reply ? sv_mcp_dumps(m.reply) : NULL;

		ok(line && strstr(line, "invalid escape near") != NULL,
		    "with jansson's message, made valid UTF-8");
		free(line);
	}
	handle("{\"jsonrpc\": \"2.0\", \"method\": \"notifications/"
	    "initialized\"}");
	ok(m.kind == SV_MCP_ACCEPTED && m.reply == NULL, "notification "
	    "accepted");
	handle("{\"jsonrpc\": \"2.0\", \"method\": \"tools/call\"}");
	ok(m.kind == SV_MCP_ACCEPTED, "a request without id is a notification");
	handle("{\"jsonrpc\": \"2.0\", \"id\": 5, \"result\": {}}");
	ok(m.kind == SV_MCP_ACCEPTED, "a client's response is accepted");
	handle("{\"jsonrpc\": \"2.0\", \"method\": \"notifications/cancelled\","
	    " \"params\": {\"requestId\": 7, \"reason\": \"timeout\"}}");
	ok(m.kind == SV_MCP_CANCEL && json_integer_value(m.cancel_id) == 7,
	    "cancellation names its request");
	handle("{\"jsonrpc\": \"2.0\", \"method\": \"notifications/cancelled\"}");
	ok(m.kind == SV_MCP_ACCEPTED, "cancellation without requestId "
	    "ignored");

	v = negotiated("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": "
	    "\"initialize\", \"params\": {\"protocolVersion\": \"2025-06-18\"}}");
	is_str(v, "2025-06-18", "2025-06-18 echoed");
	ok(m.initialize, "initialize flagged");
	is_str(json_string_value(path(path(m.reply, "result", "serverInfo"),
	    "name", NULL)), "supervise", "server name");
	ok(json_is_false(path(path(m.reply, "result", "capabilities"), "tools",
	    "listChanged")), "tools capability");
	is_str(negotiated("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": "
	    "\"initialize\", \"params\": {\"protocolVersion\": \"2024-11-05\"}}"),
	    "2024-11-05", "2024-11-05 echoed");
	is_str(negotiated("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": "
	    "\"initialize\", \"params\": {\"protocolVersion\": \"2025-03-26\"}}"),
	    "2025-03-26", "2025-03-26 echoed");
	is_str(negotiated("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": "
	    "\"initialize\", \"params\": {\"protocolVersion\": \"2099-01-01\"}}"),
	    "2025-11-25", "unknown version: the newest");
	is_str(negotiated("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": "
	    "\"initialize\"}"), "2025-11-25", "no version: the newest");

	handle("{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"ping\"}");
	ok(json_is_object(path(m.reply, "result", NULL)) &&
	    json_object_size(path(m.reply, "result", NULL)) == 0, "ping");
	handle("{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"tools/list\"}");
	ok(json_array_size(path(m.reply, "result", "tools")) == 7, "tools/list");

	error_is("{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/call\", "
	    "\"params\": {}}", SV_RPC_INVALID_PARAMS,
	    "tools/call missing 'name'", "tool name required");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/call\", "
	    "\"params\": {\"name\": \"egress-token-allow\"}}",
	    SV_RPC_INVALID_PARAMS, "unknown tool 'egress-token-allow'",
	    "tools not offered are unknown");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/call\", "
	    "\"params\": {\"name\": \"egress-block\", \"arguments\": 1}}",
	    SV_RPC_INVALID_PARAMS, "tools/call 'arguments' must be an object",
	    "arguments type");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"tools/call\", "
	    "\"params\": {\"name\": \"egress-block\"}}", SV_RPC_INVALID_PARAMS,
	    "egress-block: 'justification' is required and must be a "
	    "non-empty string", "missing arguments: justification first");

	handle("{\"jsonrpc\": \"2.0\", \"id\": 4, \"method\": \"tools/call\", "
	    "\"params\": {\"name\": \"egress-block\", \"_meta\": "
	    "{\"progressToken\": \"p1\"}, \"arguments\": {\"host\": \"A.example\","
	    " \"justification\": \"j\"}}}");
	ok(m.kind == SV_MCP_CALL && m.tool && strcmp(m.tool->name,
	    "egress-block") == 0 && m.payload && strcmp(m.payload,
	    "{\n  \"host\": \"a.example\"\n}\n") == 0 && m.justification &&
	    strcmp(m.justification, "j") == 0, "proposing call validated");
	is_str(json_string_value(m.progress_token), "p1", "progress token kept");

	/* A waiting call keeps its id and progress token: both bounded. */
	long_ids();

	handle("{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": \"tools/call\", "
	    "\"params\": {\"name\": \"proposal-status\", \"arguments\": "
	    "{\"proposal_id\": \"1.M2P3Q4Rab.h\", \"wait_seconds\": 10}}}");
	ok(m.kind == SV_MCP_CALL && m.proposal_id && m.wait_seconds == 10,
	    "proposal-status call");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": \"tools/call\", "
	    "\"params\": {\"name\": \"proposal-status\", \"arguments\": "
	    "{\"proposal_id\": \"../x\"}}}", SV_RPC_INVALID_PARAMS,
	    "proposal-status: invalid proposal id '../x': must start with a "
	    "letter or digit", "bad id refused");
	error_is("{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": \"tools/call\", "
	    "\"params\": {\"name\": \"proposal-status\", \"arguments\": "
	    "{\"proposal_id\": \"a\", \"wait_seconds\": -1}}}",
	    SV_RPC_INVALID_PARAMS, "proposal-status: 'wait_seconds' must be a "
	    "non-negative integer", "negative wait refused");

	s = sv_mcp_decision_text(SV_APPROVED, "applied: yes", "ok", "x");
	is_str(s, "status: approved\napplied: yes\nnotes: ok", "approved text");
	free(s);
	s = sv_mcp_decision_text(SV_MODIFIED, "applied: yes", "", "x");
	is_str(s, "status: modified\napplied: yes\nthe operator modified your "
	    "proposal before approving; the final config is now what's been "
	    "applied", "modified text, empty notes left out");
	free(s);
	s = sv_mcp_decision_text(SV_MODIFIED, "applied: no: no hook configured",
	    "slimmer", "x");
	is_str(s, "status: modified\napplied: no: no hook configured\nnotes: "
	    "slimmer\nthe operator modified your proposal before approving; the "
	    "final config is the operator's version",
	    "modified but not applied: no promise that it is in effect");
	free(s);
	s = sv_mcp_decision_text(SV_REJECTED, NULL, NULL, NULL);
	is_str(s, "status: rejected", "rejected text");
	free(s);

	sv_mcp_msg_free(&m);
	return done_testing();
}
