/*
 * mcp.c: JSON-RPC 2.0 and the MCP methods that answer at once.
 *
 * A request body goes in, a verdict comes out: a reply to send now, a
 * notification to acknowledge with 202, a cancellation, or a tools/call
 * whose arguments are already validated and which the daemon must carry
 * out (propose and wait, or read the spool and audit repository).  No
 * HTTP and no I/O here, so the parser can be fuzzed on its own.  Codes
 * and messages are the seed's (supervise_server.py).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

/* Newest first: the answer when a client asks for one we do not know. */
const char *const sv_mcp_versions[] = {
	"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", NULL,
};

static const char server_instructions[] =
    "This server connects you with the human operator of your sandbox. "
    "Call egress-block, egress-allow, pipelock-block, capability-block or "
    "gitleaks-allow when the sandbox stops you; each call files a proposal "
    "and waits until the operator approves or rejects it, which can take "
    "minutes. If a call answers \"status: pending\", call proposal-status "
    "with the proposal id it names to keep waiting.";

int
sv_mcp_version_ok(const char *v)
{
	int i;

	for (i = 0; v != NULL && sv_mcp_versions[i] != NULL; i++)
		if (strcmp(v, sv_mcp_versions[i]) == 0)
			return 1;
	return 0;
}

json_t *
sv_mcp_result(json_t *id, json_t *result)
{
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0",
	    "id", id ? id : json_null(), "result", result);
}

/*
 * Replace each byte that does not start a valid UTF-8 sequence by '?'.
 * Messages quote the request, and may quote half a character: jansson's
 * parse errors and a message cut short both do.  jansson refuses to
 * build a string that is not UTF-8, and the error must still go out.
 */
static void
utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;
	uint32_t cp;
	size_t n, i;

	while (*p != '\0') {
		if (*p < 0x80) {
			p++;
			continue;
		}
		n = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
		    (*p & 0xf8) == 0xf0 ? 4 : 0;
		cp = n == 2 ? (*p & 0x1fu) : n == 3 ? (*p & 0x0fu) : (*p & 0x07u);
		for (i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				break;
			cp = cp << 6 | (p[i] & 0x3fu);
		}
		if (n == 0 || i < n || (n == 2 && cp < 0x80) ||
		    (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

json_t *
sv_mcp_error(json_t *id, int code, const char *fmt, ...)
{
	va_list ap;
	char msg[2048];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	utf8_scrub(msg);
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0",
	    "id", id ? id : json_null(), "error", "code", code, "message", msg);
}

json_t *
sv_mcp_text_result(const char *text, int is_error)
{
	return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text",
	    "text", text, "isError", is_error);
}

char *
sv_mcp_decision_text(enum sv_status status, const char *applied,
    const char *notes, const char *final_file)
{
	char *text = sv_xasprintf("status: %s", sv_status_name(status)), *t;
	int in_effect = applied != NULL && strcmp(applied, "applied: yes") == 0;

	if (applied != NULL) {
		t = sv_xasprintf("%s\n%s", text, applied);
		free(text);
		text = t;
	}

	if (notes != NULL && notes[0] != '\0') {
		t = sv_xasprintf("%s\nnotes: %s", text, notes);
		free(text);
		text = t;
	}
	/* The seed's words where they are true. */
	if (status == SV_MODIFIED && final_file != NULL) {
		t = sv_xasprintf("%s\nthe operator modified your proposal "
		    "before approving; %s", text, in_effect ?
		    "the final config is now what's been applied" :
		    "the final config is the operator's version");
		free(text);
		text = t;
	}
	return text;
}

char *
sv_mcp_pending_text(const char *id)
{
	return sv_xasprintf("status: pending\nproposal_id: %s\n"
	    "The operator has not decided yet; the proposal stays queued. "
	    "Call %s with this proposal_id to keep waiting for the decision.",
	    id, SV_TOOL_PROPOSAL_STATUS);
}

char *
sv_mcp_dumps(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT), *line;

	if (s == NULL)
		sv_die(1, "out of memory");
	line = sv_xasprintf("%s\n", s);
	free(s);
	return line;
}

static void
reply(struct sv_mcp_msg *m, json_t *msg)
{
	m->kind = SV_MCP_REPLY;
	m->reply = msg;
}

static json_t *
initialize_result(json_t *params)
{
	const char *asked = json_string_value(json_object_get(params,
	    "protocolVersion"));
	const char *v = sv_mcp_version_ok(asked) ? asked : sv_mcp_versions[0];

	return json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}, s:s}",
	    "protocolVersion", v,
	    "capabilities", "tools", "listChanged", 0,
	    "serverInfo", "name", "supervise", "version", SV_VERSION,
	    "instructions", server_instructions);
}

/* tools/call: validate now, so that argument errors never wait. */
static void
tools_call(struct sv_mcp_msg *m, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments"), *meta, *v;
	const struct sv_tool *t;
	struct sv_err e;
	char *q;

	if (name == NULL) {
		reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS,
		    "tools/call missing 'name'"));
		return;
	}
	t = sv_tool_find(name);
	if (t == NULL || !t->offered) {
		q = sv_escape(name, strlen(name), 0);
		reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS,
		    "unknown tool '%s'", q));
		free(q);
		return;
	}
	if (args == NULL || json_is_null(args))
		args = NULL;
	else if (!json_is_object(args)) {
		reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS,
		    "tools/call 'arguments' must be an object"));
		return;
	}
	meta = json_object_get(params, "_meta");
	v = json_object_get(meta, "progressToken");
	if (json_is_string(v) && json_string_length(v) > SV_MCP_ID_MAX) {
		reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS,
		    "_meta.progressToken must be at most %d bytes long (this "
		    "one has %zu)", SV_MCP_ID_MAX, json_string_length(v)));
		return;
	}
	if (json_is_string(v) || json_is_integer(v))
		m->progress_token = json_incref(v);
	m->tool = t;

	if (strcmp(name, SV_TOOL_PROPOSAL_STATUS) == 0) {
		const char *id = json_string_value(json_object_get(args,
		    "proposal_id"));

		if (id == NULL) {
			reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS,
			    "%s: 'proposal_id' is required and must be a string",
			    name));
			return;
		}
		if (sv_valid_id(id, &e) == -1) {
			reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS,
			    "%s: %s", name, e.msg));
			return;
		}
		v = json_object_get(args, "wait_seconds");
		m->wait_seconds = -1;
		if (v != NULL && !json_is_null(v)) {
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				reply(m, sv_mcp_error(m->id,
				    SV_RPC_INVALID_PARAMS, "%s: 'wait_seconds' "
				    "must be a non-negative integer", name));
				return;
			}
			m->wait_seconds = json_integer_value(v) > 86400 ?
			    86400 : (long)json_integer_value(v);
		}
		m->proposal_id = sv_xstrdup(id);
	} else if (t->proposes) {
		json_t *empty = args ? NULL : json_object();

		if (sv_tool_args(name, args ? args : empty, &m->payload,
		    &m->justification, &e) == -1) {
			json_decref(empty);
			reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS, "%s",
			    e.msg));
			return;
		}
		json_decref(empty);
	}
	m->kind = SV_MCP_CALL;
}

void
sv_mcp_handle(const char *body, size_t len, struct sv_mcp_msg *m)
{
	json_error_t jerr;
	json_t *req, *params, *idj, *rid;
	const char *method;

	memset(m, 0, sizeof *m);
	m->wait_seconds = -1;
	req = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
	    &jerr);
	if (req == NULL) {
		reply(m, sv_mcp_error(NULL, SV_RPC_PARSE_ERROR,
		    "parse error: %s: line %d column %d", jerr.text, jerr.line,
		    jerr.column));
		return;
	}
	if (!json_is_object(req)) {
		reply(m, sv_mcp_error(NULL, SV_RPC_INVALID_REQUEST,
		    "request must be a JSON object"));
		goto out;
	}
	idj = json_object_get(req, "id");
	if (idj != NULL && !json_is_string(idj) && !json_is_number(idj) &&
	    !json_is_null(idj)) {
		reply(m, sv_mcp_error(NULL, SV_RPC_INVALID_REQUEST,
		    "id must be a string or a number"));
		goto out;
	}
	/*
	 * MCP: a request's id "MUST NOT be null".  One that is would be
	 * filed and answered to nobody the client can match, and it looks
	 * like a notification to anything that tests "has an id".  An
	 * answer without a method (to a request we never send) may carry
	 * null, as JSON-RPC's errors do.
	 */
	if (idj != NULL && json_is_null(idj) &&
	    json_object_get(req, "method") != NULL) {
		reply(m, sv_mcp_error(NULL, SV_RPC_INVALID_REQUEST,
		    "id must be a string or a number, not null"));
		goto out;
	}
	if (json_is_string(idj) && json_string_length(idj) > SV_MCP_ID_MAX) {
		/* Not echoed: the answer would carry what it refuses. */
		reply(m, sv_mcp_error(NULL, SV_RPC_INVALID_REQUEST,
		    "id must be at most %d bytes long (this one has %zu)",
		    SV_MCP_ID_MAX, json_string_length(idj)));
		goto out;
	}
	if (idj != NULL)
		m->id = json_incref(idj);
	if (!json_is_string(json_object_get(req, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(req, "jsonrpc")),
	    "2.0") != 0) {
		reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_REQUEST,
		    "jsonrpc field must be '2.0'"));
		goto out;
	}
	method = json_string_value(json_object_get(req, "method"));
	if (method == NULL) {
		/* A client's answer to a server request: we send none, so
		 * there is nothing to match it with; acknowledge it. */
		if (idj != NULL && json_object_get(req, "method") == NULL &&
		    (json_object_get(req, "result") != NULL ||
		    json_object_get(req, "error") != NULL)) {
			m->kind = SV_MCP_ACCEPTED;
			goto out;
		}
		reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_REQUEST,
		    "method must be a string"));
		goto out;
	}
	params = json_object_get(req, "params");
	if (params != NULL && !json_is_null(params) && !json_is_object(params)) {
		reply(m, sv_mcp_error(m->id, SV_RPC_INVALID_PARAMS,
		    "params must be an object"));
		goto out;
	}
	if (idj == NULL) {
		m->kind = SV_MCP_ACCEPTED;
		if (strcmp(method, "notifications/cancelled") == 0) {
			rid = json_object_get(params, "requestId");
			if (json_is_string(rid) || json_is_number(rid)) {
				m->kind = SV_MCP_CANCEL;
				m->cancel_id = json_incref(rid);
			}
		}
		goto out;
	}
	if (strcmp(method, "initialize") == 0) {
		m->initialize = 1;
		reply(m, sv_mcp_result(m->id, initialize_result(params)));
	} else if (strcmp(method, "ping") == 0) {
		reply(m, sv_mcp_result(m->id, json_object()));
	} else if (strcmp(method, "tools/list") == 0) {
		reply(m, sv_mcp_result(m->id, json_pack("{s:o}", "tools",
		    sv_tools_list_json())));
	} else if (strcmp(method, "tools/call") == 0) {
		tools_call(m, params);
	} else {
		reply(m, sv_mcp_error(m->id, SV_RPC_METHOD_NOT_FOUND,
		    "method not found: %s", method));
	}
out:
	json_decref(req);
}

void
sv_mcp_msg_free(struct sv_mcp_msg *m)
{
	json_decref(m->id);
	json_decref(m->reply);
	json_decref(m->cancel_id);
	json_decref(m->progress_token);
	free(m->payload);
	free(m->justification);
	free(m->proposal_id);
	memset(m, 0, sizeof *m);
}
