/*
 * tools.c: unit tests of the tool table and of payload validation
 * (src/tools.c): the tools/list document, tools/call argument checks with
 * the seed's messages, the canonical payload texts, hosts and URLs.
 */
#include <stdlib.h>
#include <string.h>

#include "supervise.h"
#include "tap.h"

/* Run sv_tool_args on a JSON text; return the payload or "ERR: msg". */
static char *
args(const char *tool, const char *json)
{
	json_error_t jerr;
	json_t *j = json_loads(json, JSON_ALLOW_NUL, &jerr);
	char *payload, *just, *out;
	struct sv_err e;

	if (j == NULL)
		return sv_xasprintf("BAD TEST JSON: %s", jerr.text);
	if (sv_tool_args(tool, j, &payload, &just, &e) == -1) {
		out = sv_xasprintf("ERR: %s", e.msg);
	} else {
		out = payload;
		free(just);
	}
	json_decref(j);
	return out;
}

static int
args_is(const char *tool, const char *json, const char *want,
    const char *name)
{
	char *got = args(tool, json);
	int r = is_str(got, want, "%s", name);

	free(got);
	return r;
}

static char *
check(const char *tool, const char *payload)
{
	struct sv_err e;

	if (sv_payload_check(tool, payload, &e) == -1)
		return sv_xasprintf("ERR: %s", e.msg);
	return sv_xstrdup("ok");
}

static int
check_is(const char *tool, const char *payload, const char *want,
    const char *name)
{
	char *got = check(tool, payload);
	int r = is_str(got, want, "%s", name);

	free(got);
	return r;
}

static char *
host_of(const char *url)
{
	struct sv_err e;
	char *h;

	if (sv_url_host(url, &h, &e) == -1)
		return sv_xasprintf("ERR: %s", e.msg);
	return h;
}

static int
summary_is(const char *tool, const char *payload, const char *want,
    const char *name)
{
	char *got = sv_payload_summary(tool, payload);
	int r = is_str(got, want, "%s", name);

	free(got);
	return r;
}

static void
test_table(void)
{
	const struct sv_tool *t;
	json_t *list, *tool, *a, *b;
	size_t i;
	const char *want[] = { "egress-block", "egress-allow",
	    "list-egress-routes", "pipelock-block", "capability-block",
	    "gitleaks-allow", "proposal-status" };

	t = sv_tool_find("egress-block");
	ok(t && t->proposes && t->offered &&
	    strcmp(t->config, "egress/routes.json") == 0, "egress-block row");
	t = sv_tool_find("egress-token-allow");
	ok(t && t->proposes && !t->offered && t->config == NULL,
	    "egress-token-allow proposes but is not offered");
	t = sv_tool_find("list-egress-routes");
	ok(t && !t->proposes && t->offered, "list-egress-routes is read-only");
	t = sv_tool_find("gitleaks-allow");
	ok(t && strcmp(t->config, "gitleaks/.gitleaksignore") == 0,
	    "gitleaks-allow config path");
	ok(sv_tool_find("nope") == NULL && sv_tool_find(NULL) == NULL,
	    "unknown tool not found");

	list = sv_tools_list_json();
	ok(json_array_size(list) == sizeof want / sizeof want[0],
	    "tools/list has %zu tools", sizeof want / sizeof want[0]);
	json_array_foreach(list, i, tool) {
		if (i >= sizeof want / sizeof want[0])
			break;
		is_str(json_string_value(json_object_get(tool, "name")),
		    want[i], "tools/list[%zu] name", i);
		ok(json_is_object(json_object_get(tool, "inputSchema")) &&
		    strlen(json_string_value(json_object_get(tool,
		    "description"))) > 40, "tools/list[%zu] schema and "
		    "description", i);
	}
	a = json_object_get(json_array_get(list, 0), "inputSchema");
	b = json_object_get(json_array_get(list, 1), "inputSchema");
	ok(json_equal(a, b), "egress-allow has egress-block's schema");
	ok(json_is_false(json_object_get(json_object_get(json_object_get(a,
	    "properties"), "auth"), "additionalProperties")),
	    "auth schema forbids other keys");
	b = json_object_get(json_object_get(json_array_get(list, 6),
	    "inputSchema"), "required");
	ok(json_array_size(b) == 1 &&
	    strcmp(json_string_value(json_array_get(b, 0)), "proposal_id") == 0,
	    "proposal-status requires proposal_id");
	json_decref(list);
}

static void
test_egress_args(void)
{
	args_is("egress-block", "{\"host\": \"API.GitHub.com\", "
	    "\"justification\": \"need it\"}",
	    "{\n  \"host\": \"api.github.com\"\n}\n", "bare route, lowercased");
	args_is("egress-allow", "{\"host\": \"api.github.com\", "
	    "\"path_allowlist\": [\"/repos\", \"/user\"], "
	    "\"auth\": {\"token_ref\": \"GH_TOKEN\", \"scheme\": \"Bearer\"}, "
	    "\"justification\": \"j\"}",
	    "{\n  \"auth\": {\n    \"scheme\": \"Bearer\",\n"
	    "    \"token_ref\": \"GH_TOKEN\"\n  },\n"
	    "  \"host\": \"api.github.com\",\n"
	    "  \"path_allowlist\": [\n    \"/repos\",\n    \"/user\"\n  ]\n}\n",
	    "full route, sorted keys, 2-space indent");
	args_is("egress-block", "{\"host\": \"a.example\", "
	    "\"path_allowlist\": [], \"auth\": null, \"extra\": 1, "
	    "\"justification\": \"j\"}",
	    "{\n  \"host\": \"a.example\"\n}\n",
	    "empty path_allowlist and null auth left out, other keys ignored");
	args_is("egress-block", "{\"host\": \"a.example\"}",
	    "ERR: egress-block: 'justification' is required and must be a "
	    "non-empty string", "justification required");
	args_is("egress-block", "{\"host\": \"a.example\", "
	    "\"justification\": \"  \\n\"}",
	    "ERR: egress-block: 'justification' is required and must be a "
	    "non-empty string", "blank justification refused");
	args_is("egress-block", "{\"host\": \"a.example\", "
	    "\"justification\": \"a\\u0000b\"}",
	    "ERR: egress-block: 'justification' is required and must be a "
	    "non-empty string", "justification with a NUL refused");
	args_is("egress-block", "{\"justification\": \"j\", \"host\": 3}",
	    "ERR: egress-block: 'host' is required and must be a non-empty "
	    "string", "host must be a string");
	args_is("egress-block", "{\"justification\": \"j\", \"host\": \" \"}",
	    "ERR: egress-block: 'host' is required and must be a non-empty "
	    "string", "host must not be blank");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example:443\"}",
	    "ERR: egress-block: host 'a.example:443' must be a DNS name, "
	    "without a port or IPv6 address", "port refused");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"10.0.0.1\"}",
	    "ERR: egress-block: host '10.0.0.1' must be a DNS name, not an IP "
	    "address", "IP literal refused");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example.\"}",
	    "ERR: egress-block: host 'a.example.' must not end with a dot",
	    "trailing dot refused");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"u@a.example\"}",
	    "ERR: egress-block: host 'u@a.example' must not carry user info",
	    "userinfo refused");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example\", \"path_allowlist\": \"/x\"}",
	    "ERR: egress-block: 'path_allowlist' must be an array of strings",
	    "path_allowlist must be an array");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example\", \"path_allowlist\": [\"/x\", 2]}",
	    "ERR: egress-block: path_allowlist[1] must be a string",
	    "path_allowlist item must be a string");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example\", \"path_allowlist\": [\"x\"]}",
	    "ERR: egress-block: path_allowlist[0] 'x' must start with '/'",
	    "path prefix must start with /");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example\", \"auth\": \"Bearer\"}",
	    "ERR: egress-block: 'auth' must be an object with 'scheme' and "
	    "'token_ref'", "auth must be an object");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example\", \"auth\": {\"scheme\": \"Basic\", "
	    "\"token_ref\": \"T\"}}",
	    "ERR: egress-block: auth.scheme must be one of Bearer, token "
	    "(got 'Basic')", "auth scheme checked");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example\", \"auth\": {\"scheme\": \"token\"}}",
	    "ERR: egress-block: auth.token_ref must be a non-empty string "
	    "naming the host env var holding the token",
	    "auth token_ref required");
	args_is("egress-block", "{\"justification\": \"j\", "
	    "\"host\": \"a.example\", \"auth\": {\"scheme\": \"token\", "
	    "\"token_ref\": \"1X-Y\"}}",
	    "ERR: egress-block: auth.token_ref '1X-Y' must be an environment "
	    "variable name ([A-Za-z_][A-Za-z0-9_]*)", "token_ref is an env name");
	args_is("egress-block", "[1]",
	    "ERR: tools/call 'arguments' must be an object",
	    "arguments must be an object");
}

static void
test_other_args(void)
{
	args_is("pipelock-block", "{\"failed_url\": "
	    "\" https://API.example.com/x?y \\n\", \"justification\": \"j\"}",
	    "https://API.example.com/x?y", "failed_url kept, stripped");
	args_is("pipelock-block", "{\"justification\": \"j\"}",
	    "ERR: pipelock-block: 'failed_url' is required and must be a "
	    "string", "failed_url required");
	args_is("pipelock-block", "{\"failed_url\": \"  \", "
	    "\"justification\": \"j\"}",
	    "ERR: pipelock-block: proposed file is empty", "blank failed_url");
	args_is("pipelock-block", "{\"failed_url\": \"ftp://a.example/\", "
	    "\"justification\": \"j\"}",
	    "ERR: pipelock-block: failed_url must start with http:// or "
	    "https:// (got 'ftp://a.example/')", "scheme checked");
	args_is("pipelock-block", "{\"failed_url\": \"https:/x\", "
	    "\"justification\": \"j\"}",
	    "ERR: pipelock-block: failed_url is missing a hostname "
	    "(got 'https:/x')", "hostname required");
	args_is("pipelock-block", "{\"failed_url\": "
	    "\"https://u:p@a.example/\", \"justification\": \"j\"}",
	    "ERR: pipelock-block: failed_url must not carry user info "
	    "(got 'https://u:p@a.example/')", "userinfo refused");
	args_is("pipelock-block", "{\"failed_url\": \"http://[::1]/\", "
	    "\"justification\": \"j\"}",
	    "ERR: pipelock-block: failed_url must name a host, not an IP "
	    "address (got 'http://[::1]/')", "IPv6 literal refused");
	args_is("pipelock-block", "{\"failed_url\": \"http://a b/\", "
	    "\"justification\": \"j\"}",
	    "ERR: pipelock-block: failed_url is not a valid URL "
	    "(got 'http://a b/')", "unparsable URL refused");
	args_is("pipelock-block", "{\"failed_url\": \"http://a\\u001b[31m/\", "
	    "\"justification\": \"j\"}",
	    "ERR: pipelock-block: failed_url is not a valid URL "
	    "(got 'http://a\\x1b[31m/')", "control characters escaped in "
	    "messages");
	args_is("capability-block", "{\"dockerfile\": \"FROM debian\\n\", "
	    "\"justification\": \"j\"}", "FROM debian\n",
	    "Dockerfile kept as given");
	args_is("capability-block", "{\"dockerfile\": \"\\n\", "
	    "\"justification\": \"j\"}",
	    "ERR: capability-block: proposed file is empty", "empty Dockerfile");
	args_is("capability-block", "{\"dockerfile\": [\"FROM x\"], "
	    "\"justification\": \"j\"}",
	    "ERR: capability-block: 'dockerfile' is required and must be a "
	    "string", "dockerfile must be a string");
	args_is("gitleaks-allow", "{\"fingerprint\": "
	    "\"abc123:config/app.env:generic-api-key:12\", "
	    "\"justification\": \"j\"}",
	    "abc123:config/app.env:generic-api-key:12", "fingerprint kept");
	args_is("gitleaks-allow", "{\"fingerprint\": \"a\\nb\", "
	    "\"justification\": \"j\"}",
	    "ERR: gitleaks-allow: fingerprint must be one line without "
	    "control characters or line separators",
	    "multi-line fingerprint refused");
	args_is("gitleaks-allow", "{\"fingerprint\": \"a \", "
	    "\"justification\": \"j\"}",
	    "ERR: gitleaks-allow: fingerprint must not start or end with "
	    "white space", "padded fingerprint refused");
	args_is("egress-token-allow", "{\"proposed_file\": \"GH_TOKEN for "
	    "api.github.com\", \"justification\": \"j\"}",
	    "GH_TOKEN for api.github.com", "egress-token-allow takes any text");
	args_is("list-egress-routes", "{\"justification\": \"j\"}",
	    "ERR: unknown tool 'list-egress-routes'",
	    "read-only tool does not propose");
	args_is("bogus\x1b", "{\"justification\": \"j\"}",
	    "ERR: unknown tool 'bogus\\x1b'", "unknown tool, name escaped");
}

static void
test_payload_check(void)
{
	char *big;

	check_is("egress-block", "{\"host\": \"a.example\", "
	    "\"path_allowlist\": [\"/v1\"]}", "ok", "route payload");
	check_is("egress-allow", "{\"host\": \"a.example\", \"port\": 1}",
	    "ERR: egress-allow: unknown key 'port' in route",
	    "unknown route key refused");
	check_is("egress-block", "{\"host\": \"a.example\", \"host\": \"b\"}",
	    "ERR: egress-block: route is not valid JSON: 1:28: duplicate "
	    "object key near '\"host\"'", "duplicate key refused");
	check_is("egress-block", "[\"a.example\"]",
	    "ERR: egress-block: route must be a JSON object",
	    "non-object route refused");
	check_is("egress-block", "{\"host\": \"a.example\", "
	    "\"path_allowlist\": []}",
	    "ERR: egress-block: 'path_allowlist' must not be empty (leave it "
	    "out to allow every path)", "empty path list refused in a payload");
	check_is("egress-block", "{\"host\": \"a.example\", \"auth\": "
	    "{\"scheme\": \"token\", \"token_ref\": \"T\", \"x\": 1}}",
	    "ERR: egress-block: unknown key 'x' in auth",
	    "unknown auth key refused");
	check_is("pipelock-block", "http://a.example/x\n", "ok",
	    "URL payload with a newline");
	check_is("pipelock-block", "a.example",
	    "ERR: pipelock-block: failed_url must start with http:// or "
	    "https:// (got 'a.example')", "URL payload checked");
	check_is("capability-block", "FROM x", "ok", "Dockerfile payload");
	check_is("capability-block", " \t\n",
	    "ERR: capability-block: proposed file is empty",
	    "blank Dockerfile refused");
	check_is("gitleaks-allow", "fp:1", "ok", "fingerprint payload");
	check_is("gitleaks-allow", "fp:1\n",
	    "ERR: gitleaks-allow: fingerprint must be one line without "
	    "control characters or line separators",
	    "fingerprint with newline refused");
	/* Readers that split lines the Unicode way would read two. */
	check_is("gitleaks-allow", "fp:1\xe2\x80\xa8" "fp:2",
	    "ERR: gitleaks-allow: fingerprint must be one line without "
	    "control characters or line separators",
	    "fingerprint with U+2028 refused");
	check_is("gitleaks-allow", "fp:1\xe2\x80\xa9" "fp:2",
	    "ERR: gitleaks-allow: fingerprint must be one line without "
	    "control characters or line separators",
	    "fingerprint with U+2029 refused");
	check_is("gitleaks-allow", "fp:1\xc2\x85" "fp:2",
	    "ERR: gitleaks-allow: fingerprint must be one line without "
	    "control characters or line separators",
	    "fingerprint with U+0085 refused");
	check_is("egress-token-allow", "x", "ok", "token payload");
	check_is("list-egress-routes", "x",
	    "ERR: unknown tool 'list-egress-routes'",
	    "read-only tool has no payload");
	big = sv_xmalloc(SV_FILE_MAX + 2);
	memset(big, 'a', SV_FILE_MAX + 1);
	big[SV_FILE_MAX + 1] = '\0';
	check_is("capability-block", big,
	    "ERR: capability-block: proposed file is larger than 1048576 bytes",
	    "oversize payload refused");
	free(big);
}

static void
test_hosts(void)
{
	struct sv_err e;
	char *h;
	char long_label[80], long_host[300];

	ok(sv_valid_host("localhost", &e) == 0, "single label host");
	ok(sv_valid_host("a-b.c_d.example", &e) == 0, "dashes, underscores");
	ok(sv_valid_host("1password.com", &e) == 0, "label may start with a "
	    "digit");
	ok(sv_valid_host("", &e) == -1, "empty host refused");
	ok(sv_valid_host("-a.example", &e) == -1, "leading dash refused");
	ok(sv_valid_host("a..example", &e) == -1, "empty label refused");
	ok(sv_valid_host("a.example/x", &e) == -1, "slash refused");
	ok(sv_valid_host("a.example\n", &e) == -1, "newline refused");
	ok(sv_valid_host("0x7f.1", &e) == -1, "numeric TLD refused");
	ok(sv_valid_host("0x7f000001", &e) == -1, "hex IPv4 refused");
	ok(sv_valid_host("a.0X1f", &e) == -1, "hex last label refused");
	ok(sv_valid_host("0xdead.example", &e) == 0, "hex-looking first label "
	    "is fine");
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	ok(sv_valid_host(long_label, &e) == -1, "64-byte label refused");
	memset(long_host, 'a', sizeof long_host);
	for (int i = 60; i < 290; i += 61)
		long_host[i] = '.';
	long_host[254] = '\0';
	ok(sv_valid_host(long_host, &e) == -1, "254-byte host refused");

	h = host_of("HTTPS://API.GitHub.com:8443/repos?x#y");
	is_str(h, "api.github.com", "URL host lowercased, port dropped");
	free(h);
	h = host_of("http://a.example");
	is_str(h, "a.example", "URL without path");
	free(h);
	h = host_of("http://127.0.0.1/");
	is_str(h, "ERR: URL must name a host, not an IP address "
	    "(got 'http://127.0.0.1/')", "IPv4 URL refused");
	free(h);
	h = host_of("file:///etc/passwd");
	is_str(h, "ERR: URL must start with http:// or https:// "
	    "(got 'file:///etc/passwd')", "file URL refused");
	free(h);
}

static void
test_summary(void)
{
	summary_is("egress-block", "{\"host\": \"a.example\"}", "a.example",
	    "egress summary is the host");
	summary_is("egress-allow", "not json\nsecond", "not json",
	    "unparsable route: first line");
	summary_is("pipelock-block", "https://B.example/path", "b.example",
	    "pipelock summary is the URL's host");
	summary_is("capability-block", "FROM x\nRUN y", "Dockerfile",
	    "capability summary");
	summary_is("gitleaks-allow", "fp:1:rule:2", "fp:1:rule:2",
	    "gitleaks summary is the fingerprint");
	summary_is("egress-token-allow", "\n  GH_TOKEN api.github.com  \nmore",
	    "GH_TOKEN api.github.com", "other tools: first non-blank line");
}

int
main(void)
{
	plan(103);
	test_table();
	test_egress_args();
	test_other_args();
	test_payload_check();
	test_hosts();
	test_summary();
	return done_testing();
}
