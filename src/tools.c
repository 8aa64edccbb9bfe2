/*
 * tools.c: the MCP tools the sidecar offers and the validation of what
 * agents (and operators, through final_file) may put into a proposal.
 *
 * These are pure functions over strings and jansson values: the daemon
 * uses them on tools/call arguments, the CLIs on an operator's final file
 * and the audit code for commit subjects, so a payload is judged the same
 * way wherever it enters.  Descriptions, schemas and messages follow the
 * seed's supervise_server.py.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <uriparser/Uri.h>

#include "supervise.h"

const struct sv_tool sv_tools[] = {
	/* pipelock is the downstream gate: it must not refuse a host that
	 * egress now allows. */
	{ SV_TOOL_EGRESS_BLOCK, "egress/routes.json", 1, 1, "pipelock/allowlist" },
	{ SV_TOOL_EGRESS_ALLOW, "egress/routes.json", 1, 1, "pipelock/allowlist" },
	{ SV_TOOL_LIST_EGRESS_ROUTES, NULL, 0, 1, NULL },
	{ SV_TOOL_PIPELOCK_BLOCK, "pipelock/allowlist", 1, 1, NULL },
	{ SV_TOOL_CAPABILITY_BLOCK, "capability/Dockerfile", 1, 1, NULL },
	{ SV_TOOL_GITLEAKS_ALLOW, "gitleaks/.gitleaksignore", 1, 1, NULL },
	{ SV_TOOL_PROPOSAL_STATUS, NULL, 0, 1, NULL },
	/* Enqueued by the egress proxy through the spool, never by agents. */
	{ SV_TOOL_EGRESS_TOKEN_ALLOW, NULL, 1, 0, NULL },
	{ NULL, NULL, 0, 0, NULL },
};

static const char *const auth_schemes[] = { "Bearer", "token", NULL };

const struct sv_tool *
sv_tool_find(const char *name)
{
	const struct sv_tool *t;

	if (name == NULL)
		return NULL;
	for (t = sv_tools; t->name != NULL; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

static int
is_egress(const char *tool)
{
	return strcmp(tool, SV_TOOL_EGRESS_BLOCK) == 0 ||
	    strcmp(tool, SV_TOOL_EGRESS_ALLOW) == 0;
}

/* --- tools/list ---------------------------------------------------------- */

static const char egress_block_desc[] =
    "Call when egress refused your HTTPS request \xe2\x80\x94 host "
    "without a matching route, or a path outside the route's "
    "path_allowlist (typically a 403 from the proxy). Propose "
    "a SINGLE route to add: the host you need + (optionally) "
    "a path_allowlist + (optionally) an auth block. The "
    "supervisor merges the route into the live table at "
    "approval time \xe2\x80\x94 you do NOT need to see or reproduce the "
    "existing routes, and you do not pass a full routes file. "
    "If the host already has a route, the proposed "
    "path_allowlist entries are unioned with the existing "
    "ones (host stays single-route). The operator approves "
    "or rejects. On approval the supervisor commits the "
    "merged routes, swaps them into the bottle's live routes "
    "file (atomically) and runs the operator's apply hook, "
    "which on a configured system makes egress reload it "
    "(no dropped connections). The answer's 'applied:' line "
    "says whether the change is in effect: 'applied: yes', "
    "or 'applied: no: REASON' (then retrying now will be "
    "refused again).";

static const char egress_allow_desc[] =
    "Call to ask for a route before egress refuses you \xe2\x80\x94 when "
    "you already know the task needs a host that is not in the "
    "route table (see list-egress-routes). Same input as "
    "egress-block: a SINGLE route, the host + (optionally) a "
    "path_allowlist + (optionally) an auth block. The supervisor "
    "merges it into the live table at approval time; if the host "
    "already has a route, the path_allowlist entries are unioned "
    "with the existing ones. The call returns when the operator "
    "has approved or rejected it and, on approval, once the "
    "change was applied; its 'applied:' line says whether it is "
    "in effect.";

static const char list_routes_desc[] =
    "List the current egress route table \xe2\x80\x94 the bottle's "
    "primary egress allowlist. Returns JSON with one entry "
    "per allowed host, each carrying its path_allowlist (if "
    "any) and whether the proxy injects Authorization for "
    "the route. Use this before composing an "
    "`egress-block` proposal so the new routes file "
    "extends the live one rather than replacing it. "
    "Pipelock's allowlist is a mirror of this set \xe2\x80\x94 every "
    "host listed here is also reachable through pipelock's "
    "downstream hostname gate.";

static const char pipelock_desc[] =
    "Call when pipelock refused your outbound request and "
    "the failing host is genuinely missing from the bottle's "
    "allowlist (vs. blocked for DLP reasons \xe2\x80\x94 those need a "
    "different remediation). In practice pipelock's allowlist "
    "is now a mirror of the egress routes set by "
    "`egress-block`, so prefer that tool when you want "
    "to add a host. This tool stays available for the rare "
    "case where pipelock and egress have diverged. "
    "Pass the full URL you tried to hit (scheme + host + "
    "path); the supervisor extracts the hostname and merges "
    "it into pipelock's allowlist. On approval the "
    "supervisor writes the new allowlist and runs the "
    "operator's apply hook, which on a configured system "
    "restarts pipelock; the answer's 'applied:' line says "
    "whether that happened.";

static const char capability_desc[] =
    "Call when the bottle is missing a tool, skill, permission, "
    "or env var you need \xe2\x80\x94 something that lives in the agent "
    "Dockerfile rather than in routes or the pipelock allowlist. "
    "Read the current Dockerfile from "
    "/etc/claude-bottle/current-config/Dockerfile, compose a "
    "modified version, and pass the full new file plus a "
    "justification. On approval the new Dockerfile is recorded "
    "and written where the bottle's build reads it; the bottle "
    "is rebuilt from it by the operator (the apply hook may say "
    "what that takes), not while you run: the answer's "
    "'applied:' line says what happened.";

static const char gitleaks_desc[] =
    "Call when the git push gate's secret scanner (gitleaks) "
    "refused your push over a finding that is not a secret "
    "(a test fixture, a documented example key). Pass the "
    "finding's fingerprint exactly as gitleaks reports it "
    "(commit:file:rule:line, e.g. "
    "abc123:config/app.env:generic-api-key:12) and a "
    "justification. On approval the supervisor adds the "
    "fingerprint to the bottle's .gitleaksignore, so once it is "
    "applied ('applied: yes' in the answer) the same finding no "
    "longer blocks the push. Never use this to push a real "
    "credential.";

static const char status_desc[] =
    "Check on a proposal whose call returned \"still pending\" "
    "(the sidecar stopped waiting before the operator decided). "
    "Waits up to wait_seconds for the operator's decision, then "
    "returns it exactly as the original call would have "
    "(status, whether it is applied, notes), or says the "
    "proposal is still pending so you can call again.";

static json_t *
egress_schema(void)
{
	return json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:{s:s}, s:s},"
	    " s:{s:s, s:s, s:{s:{s:s}, s:{s:s}}, s:[ss], s:b},"
	    " s:{s:s, s:s}}, s:[ss]}",
	    "type", "object",
	    "properties",
	    "host", "type", "string", "description",
	    "The hostname to allow (e.g. 'api.github.com'). "
	    "Case-insensitive on match.",
	    "path_allowlist", "type", "array", "items", "type", "string",
	    "description",
	    "Optional URL path prefixes the route permits. Each must start "
	    "with '/'. Omit to allow all paths under this host (bare-pass "
	    "route).",
	    "auth", "type", "object", "description",
	    "Optional credential injection. {scheme, token_ref}: scheme is "
	    "'Bearer' or 'token'; token_ref names the host env var holding "
	    "the secret value. Omit to add a host without credential "
	    "injection. Ignored if the host already has a route (operator "
	    "decides auth changes, not the agent).",
	    "properties", "scheme", "type", "string",
	    "token_ref", "type", "string",
	    "required", "scheme", "token_ref",
	    "additionalProperties", 0,
	    "justification", "type", "string", "description",
	    "Why this host needs to be allowed.",
	    "required", "host", "justification");
}

/* A schema of two string properties, both required. */
static json_t *
two_string_schema(const char *field, const char *field_desc,
    const char *just_desc)
{
	return json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[ss]}",
	    "type", "object",
	    "properties",
	    field, "type", "string", "description", field_desc,
	    "justification", "type", "string", "description", just_desc,
	    "required", field, "justification");
}

static json_t *
tool_json(const char *name, const char *desc, json_t *schema)
{
	return json_pack("{s:s, s:s, s:o}", "name", name, "description", desc,
	    "inputSchema", schema);
}

json_t *
sv_tools_list_json(void)
{
	json_t *a = json_array();

	json_array_append_new(a, tool_json(SV_TOOL_EGRESS_BLOCK,
	    egress_block_desc, egress_schema()));
	json_array_append_new(a, tool_json(SV_TOOL_EGRESS_ALLOW,
	    egress_allow_desc, egress_schema()));
	json_array_append_new(a, tool_json(SV_TOOL_LIST_EGRESS_ROUTES,
	    list_routes_desc, json_pack("{s:s, s:{}, s:b}", "type", "object",
	    "properties", "additionalProperties", 0)));
	json_array_append_new(a, tool_json(SV_TOOL_PIPELOCK_BLOCK,
	    pipelock_desc, two_string_schema("failed_url",
	    "The full URL pipelock blocked, e.g. "
	    "https://api.github.com/repos/foo/bar. Scheme and hostname are "
	    "required; path is recorded as operator context.",
	    "Why the new host should be allowed.")));
	json_array_append_new(a, tool_json(SV_TOOL_CAPABILITY_BLOCK,
	    capability_desc, two_string_schema("dockerfile",
	    "Full proposed Dockerfile content.",
	    "Why this capability is needed.")));
	json_array_append_new(a, tool_json(SV_TOOL_GITLEAKS_ALLOW,
	    gitleaks_desc, two_string_schema("fingerprint",
	    "The gitleaks finding's fingerprint, "
	    "e.g. 'abc123:config/app.env:generic-api-key:12'.",
	    "Why this finding is not a secret.")));
	json_array_append_new(a, tool_json(SV_TOOL_PROPOSAL_STATUS,
	    status_desc, json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:i, s:s}},"
	    " s:[s], s:b}",
	    "type", "object",
	    "properties",
	    "proposal_id", "type", "string", "description",
	    "The proposal id named in the \"still pending\" result.",
	    "wait_seconds", "type", "integer", "minimum", 0, "description",
	    "How long to wait for the decision before answering "
	    "(default and maximum: the sidecar's maximum wait).",
	    "required", "proposal_id",
	    "additionalProperties", 0)));
	return a;
}

/* --- validation helpers -------------------------------------------------- */

/* 'TEXT' for messages, escaped so agent text is never shown raw. */
static char *
quoted(const char *s)
{
	char *esc = sv_escape(s, strlen(s), 0);
	char *q = sv_xasprintf("'%s'", esc);

	free(esc);
	return q;
}

/* Fail with "PREFIX...(got 'VALUE')": a helper for the seed's messages. */
static int
fail_got(struct sv_err *e, const char *msg, const char *value)
{
	char *q = quoted(value);

	sv_errf(e, 0, "%s (got %s)", msg, q);
	free(q);
	return -1;
}

/* A JSON string holding no NUL byte (JSON's \u0000 would cut it short). */
static const char *
string_value(json_t *j)
{
	const char *s = json_string_value(j);

	if (s == NULL || strlen(s) != json_string_length(j))
		return NULL;
	return s;
}

/* "0x" or "0X" and hex digits only (none at all counts: "0x" is 0). */
static int
hex_number(const char *label)
{
	if (label[0] != '0' || (label[1] != 'x' && label[1] != 'X'))
		return 0;
	for (label += 2; *label != '\0'; label++)
		if (!isxdigit((unsigned char)*label))
			return 0;
	return 1;
}

int
sv_valid_host(const char *host, struct sv_err *e)
{
	const char *p, *label;
	size_t n = strlen(host), len;
	int digits_only;
	char *q;

	if (n == 0)
		return sv_errf(e, 0, "host is empty");
	q = quoted(host);
	if (n > 253) {
		sv_errf(e, 0, "host %s is longer than 253 bytes", q);
		goto fail;
	}
	if (strchr(host, '@') != NULL) {
		sv_errf(e, 0, "host %s must not carry user info", q);
		goto fail;
	}
	if (strchr(host, ':') != NULL || host[0] == '[') {
		sv_errf(e, 0, "host %s must be a DNS name, without a port or "
		    "IPv6 address", q);
		goto fail;
	}
	if (host[n - 1] == '.') {
		sv_errf(e, 0, "host %s must not end with a dot", q);
		goto fail;
	}
	label = host;
	digits_only = 1;
	for (p = host;; p++) {
		if (*p == '.' || *p == '\0') {
			len = (size_t)(p - label);
			if (len == 0 || len > 63) {
				sv_errf(e, 0, "host %s has an empty or over-long "
				    "label", q);
				goto fail;
			}
			if (label[0] == '-' || p[-1] == '-') {
				sv_errf(e, 0, "host %s has a label that starts or "
				    "ends with '-'", q);
				goto fail;
			}
			if (*p == '\0')
				break;
			label = p + 1;
			digits_only = 1;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
			sv_errf(e, 0, "host %s must be a DNS name (letters, "
			    "digits, '-', '_' and dots)", q);
			goto fail;
		}
		if (!isdigit((unsigned char)*p))
			digits_only = 0;
	}
	/*
	 * URL parsers and inet_aton read a host whose last label is a number
	 * (decimal, or hex after 0x) as an IPv4 address: 10.0.0.1, 0x7f.1,
	 * 2130706433, 0x7f000001.  No top-level domain looks like that.
	 */
	if (digits_only || hex_number(label)) {
		sv_errf(e, 0, "host %s must be a DNS name, not an IP address", q);
		goto fail;
	}
	free(q);
	return 0;
fail:
	free(q);
	return -1;
}

static char *
lowercase_dup(const char *s, size_t n)
{
	char *d = sv_xmalloc(n + 1);
	size_t i;

	for (i = 0; i < n; i++)
		d[i] = (char)tolower((unsigned char)s[i]);
	d[n] = '\0';
	return d;
}

/* sv_url_host with `what` naming the URL in messages ("failed_url"). */
static int
url_host(const char *url, const char *what, char **host, struct sv_err *e)
{
	UriUriA uri;
	const char *errpos = NULL;
	size_t slen, hlen;
	char *h, msg[128];
	int rc = -1;

	*host = NULL;
	memset(&uri, 0, sizeof uri);
	if (uriParseSingleUriExA(&uri, url, url + strlen(url), &errpos) !=
	    URI_SUCCESS) {
		snprintf(msg, sizeof msg, "%s is not a valid URL", what);
		fail_got(e, msg, url);
		goto out;
	}
	slen = uri.scheme.first ?
	    (size_t)(uri.scheme.afterLast - uri.scheme.first) : 0;
	if (!((slen == 4 && strncasecmp(uri.scheme.first, "http", 4) == 0) ||
	    (slen == 5 && strncasecmp(uri.scheme.first, "https", 5) == 0))) {
		snprintf(msg, sizeof msg,
		    "%s must start with http:// or https://", what);
		fail_got(e, msg, url);
		goto out;
	}
	hlen = uri.hostText.first ?
	    (size_t)(uri.hostText.afterLast - uri.hostText.first) : 0;
	if (hlen == 0) {
		snprintf(msg, sizeof msg, "%s is missing a hostname", what);
		fail_got(e, msg, url);
		goto out;
	}
	if (uri.userInfo.first != NULL) {
		snprintf(msg, sizeof msg, "%s must not carry user info", what);
		fail_got(e, msg, url);
		goto out;
	}
	if (uri.hostData.ip4 != NULL || uri.hostData.ip6 != NULL ||
	    uri.hostData.ipFuture.first != NULL) {
		snprintf(msg, sizeof msg,
		    "%s must name a host, not an IP address", what);
		fail_got(e, msg, url);
		goto out;
	}
	h = lowercase_dup(uri.hostText.first, hlen);
	if (sv_valid_host(h, e) == -1) {
		free(h);
		goto out;
	}
	*host = h;
	rc = 0;
out:
	uriFreeUriMembersA(&uri);
	return rc;
}

int
sv_url_host(const char *url, char **host, struct sv_err *e)
{
	return url_host(url, "URL", host, e);
}

/* "TOOL: " before a message from a helper (the buffer cannot be both the
 * source and the destination of sv_errf). */
static int
prefix_err(struct sv_err *e, const char *tool)
{
	char msg[sizeof e->msg];

	memcpy(msg, e->msg, sizeof msg);
	return sv_errf(e, 0, "%s: %s", tool, msg);
}

static int
valid_env_name(const char *s)
{
	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (s++; *s != '\0'; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

/*
 * Build the canonical route object from `src` (tools/call arguments, or a
 * parsed payload when `strict`).  Agents' arguments are read as the seed
 * reads them (other keys ignored, an empty path_allowlist means "all
 * paths"); a payload must hold exactly the route's keys.
 */
static json_t *
route_from_json(const char *tool, json_t *src, int strict, struct sv_err *e)
{
	json_t *route = NULL, *host_j, *pal, *auth, *v, *prefixes;
	const char *host, *key, *scheme, *token_ref;
	char *lower, *q;
	size_t i;
	int k;

	if (strict) {
		json_object_foreach(src, key, v) {
			if (strcmp(key, "host") != 0 &&
			    strcmp(key, "path_allowlist") != 0 &&
			    strcmp(key, "auth") != 0) {
				q = quoted(key);
				sv_errf(e, 0, "%s: unknown key %s in route",
				    tool, q);
				free(q);
				return NULL;
			}
		}
	}
	host_j = json_object_get(src, "host");
	host = string_value(host_j);
	if (host == NULL || sv_all_space(host)) {
		sv_errf(e, 0, "%s: 'host' is required and must be a non-empty "
		    "string", tool);
		return NULL;
	}
	lower = lowercase_dup(host, strlen(host));
	if (sv_valid_host(lower, e) == -1) {
		free(lower);
		prefix_err(e, tool);
		return NULL;
	}
	route = json_pack("{s:s}", "host", lower);
	free(lower);

	pal = json_object_get(src, "path_allowlist");
	if (pal != NULL && !json_is_null(pal)) {
		if (!json_is_array(pal)) {
			sv_errf(e, 0, "%s: 'path_allowlist' must be an array of "
			    "strings", tool);
			goto fail;
		}
		if (strict && json_array_size(pal) == 0) {
			sv_errf(e, 0, "%s: 'path_allowlist' must not be empty "
			    "(leave it out to allow every path)", tool);
			goto fail;
		}
		prefixes = json_array();
		json_array_foreach(pal, i, v) {
			const char *p = string_value(v);

			if (p == NULL) {
				json_decref(prefixes);
				sv_errf(e, 0, "%s: path_allowlist[%zu] must be a "
				    "string", tool, i);
				goto fail;
			}
			if (p[0] != '/') {
				json_decref(prefixes);
				q = quoted(p);
				sv_errf(e, 0, "%s: path_allowlist[%zu] %s must "
				    "start with '/'", tool, i, q);
				free(q);
				goto fail;
			}
			json_array_append_new(prefixes, json_string(p));
		}
		if (json_array_size(prefixes) > 0)
			json_object_set_new(route, "path_allowlist", prefixes);
		else
			json_decref(prefixes);
	}

	auth = json_object_get(src, "auth");
	if (auth != NULL && !json_is_null(auth)) {
		if (!json_is_object(auth)) {
			sv_errf(e, 0, "%s: 'auth' must be an object with 'scheme' "
			    "and 'token_ref'", tool);
			goto fail;
		}
		if (strict) {
			json_object_foreach(auth, key, v) {
				if (strcmp(key, "scheme") != 0 &&
				    strcmp(key, "token_ref") != 0) {
					q = quoted(key);
					sv_errf(e, 0, "%s: unknown key %s in "
					    "auth", tool, q);
					free(q);
					goto fail;
				}
			}
		}
		scheme = string_value(json_object_get(auth, "scheme"));
		for (k = 0; scheme != NULL && auth_schemes[k] != NULL; k++)
			if (strcmp(scheme, auth_schemes[k]) == 0)
				break;
		if (scheme == NULL || auth_schemes[k] == NULL) {
			if (scheme == NULL)
				sv_errf(e, 0, "%s: auth.scheme must be one of "
				    "Bearer, token (got None)", tool);
			else {
				q = quoted(scheme);
				sv_errf(e, 0, "%s: auth.scheme must be one of "
				    "Bearer, token (got %s)", tool, q);
				free(q);
			}
			goto fail;
		}
		token_ref = string_value(json_object_get(auth, "token_ref"));
		if (token_ref == NULL || token_ref[0] == '\0') {
			sv_errf(e, 0, "%s: auth.token_ref must be a non-empty "
			    "string naming the host env var holding the token",
			    tool);
			goto fail;
		}
		if (!valid_env_name(token_ref)) {
			q = quoted(token_ref);
			sv_errf(e, 0, "%s: auth.token_ref %s must be an "
			    "environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
			    tool, q);
			free(q);
			goto fail;
		}
		json_object_set_new(route, "auth", json_pack("{s:s, s:s}",
		    "scheme", scheme, "token_ref", token_ref));
	}
	return route;
fail:
	json_decref(route);
	return NULL;
}

int
sv_fingerprint_check(const char *fp, struct sv_err *e)
{
	if (sv_breaks_line(fp))
		return sv_errf(e, 0, "fingerprint must be one line "
		    "without control characters or line separators");
	if (isspace((unsigned char)fp[0]) ||
	    isspace((unsigned char)fp[strlen(fp) - 1]))
		return sv_errf(e, 0, "fingerprint must not start or end "
		    "with white space");
	return 0;
}

int
sv_payload_check(const char *tool, const char *payload, struct sv_err *e)
{
	const struct sv_tool *t = sv_tool_find(tool);
	json_error_t jerr;
	json_t *j, *route;
	char *q, *host, *url;
	int rc;

	if (t == NULL || !t->proposes) {
		q = quoted(tool ? tool : "");
		sv_errf(e, 0, "unknown tool %s", q);
		free(q);
		return -1;
	}
	if (strlen(payload) > SV_FILE_MAX)
		return sv_errf(e, 0, "%s: proposed file is larger than %d bytes",
		    tool, SV_FILE_MAX);
	if (sv_all_space(payload))
		return sv_errf(e, 0, "%s: proposed file is empty", tool);
	if (is_egress(tool)) {
		j = json_loads(payload, JSON_REJECT_DUPLICATES, &jerr);
		if (j == NULL)
			return sv_errf(e, 0, "%s: route is not valid JSON: "
			    "%d:%d: %s", tool, jerr.line, jerr.column, jerr.text);
		if (!json_is_object(j)) {
			json_decref(j);
			return sv_errf(e, 0, "%s: route must be a JSON object",
			    tool);
		}
		route = route_from_json(tool, j, 1, e);
		json_decref(j);
		if (route == NULL)
			return -1;
		json_decref(route);
		return 0;
	}
	if (strcmp(tool, SV_TOOL_PIPELOCK_BLOCK) == 0) {
		url = sv_strip_dup(payload);
		rc = url_host(url, "failed_url", &host, e);
		free(url);
		if (rc == -1)
			return prefix_err(e, tool);
		free(host);
		return 0;
	}
	if (strcmp(tool, SV_TOOL_GITLEAKS_ALLOW) == 0)
		return sv_fingerprint_check(payload, e) == -1 ?
		    prefix_err(e, tool) : 0;
	/* capability-block, egress-token-allow: any non-empty text. */
	return 0;
}

/* The argument that carries each single-field tool's payload. */
static const char *
payload_field(const char *tool)
{
	if (strcmp(tool, SV_TOOL_PIPELOCK_BLOCK) == 0)
		return "failed_url";
	if (strcmp(tool, SV_TOOL_CAPABILITY_BLOCK) == 0)
		return "dockerfile";
	if (strcmp(tool, SV_TOOL_GITLEAKS_ALLOW) == 0)
		return "fingerprint";
	if (strcmp(tool, SV_TOOL_EGRESS_TOKEN_ALLOW) == 0)
		return "proposed_file";
	return NULL;
}

int
sv_tool_args(const char *tool, json_t *args, char **payload,
    char **justification, struct sv_err *e)
{
	const struct sv_tool *t = sv_tool_find(tool);
	const char *just, *field, *value;
	json_t *route;
	char *q, *text;

	*payload = NULL;
	*justification = NULL;
	if (t == NULL || !t->proposes) {
		q = quoted(tool ? tool : "");
		sv_errf(e, 0, "unknown tool %s", q);
		free(q);
		return -1;
	}
	if (!json_is_object(args))
		return sv_errf(e, 0, "tools/call 'arguments' must be an object");
	just = string_value(json_object_get(args, "justification"));
	if (just == NULL || sv_all_space(just))
		return sv_errf(e, 0, "%s: 'justification' is required and must "
		    "be a non-empty string", tool);
	if (strlen(just) > SV_TEXT_MAX)
		return sv_errf(e, 0, "%s: 'justification' is longer than %d "
		    "bytes", tool, SV_TEXT_MAX);

	if (is_egress(tool)) {
		route = route_from_json(tool, args, 0, e);
		if (route == NULL)
			return -1;
		text = sv_json_text(route);
		json_decref(route);
	} else {
		field = payload_field(tool);
		value = string_value(json_object_get(args, field));
		if (value == NULL)
			return sv_errf(e, 0, "%s: '%s' is required and must be "
			    "a string", tool, field);
		/* The seed checks the stripped URL; keep what it checked. */
		if (strcmp(tool, SV_TOOL_PIPELOCK_BLOCK) == 0)
			text = sv_strip_dup(value);
		else
			text = sv_xstrdup(value);
	}
	if (sv_payload_check(tool, text, e) == -1) {
		free(text);
		return -1;
	}
	*payload = text;
	*justification = sv_xstrdup(just);
	return 0;
}

char *
sv_payload_summary(const char *tool, const char *payload)
{
	json_t *j;
	const char *h;
	char *s, *url, *host;
	struct sv_err e;
	size_t n;

	if (tool != NULL && is_egress(tool)) {
		j = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
		h = string_value(json_object_get(j, "host"));
		s = h ? sv_xstrdup(h) : NULL;
		json_decref(j);
		if (s != NULL)
			return s;
	} else if (tool != NULL && strcmp(tool, SV_TOOL_PIPELOCK_BLOCK) == 0) {
		url = sv_strip_dup(payload);
		if (url_host(url, "URL", &host, &e) == 0) {
			free(url);
			return host;
		}
		free(url);
	} else if (tool != NULL &&
	    strcmp(tool, SV_TOOL_CAPABILITY_BLOCK) == 0) {
		return sv_xstrdup("Dockerfile");
	}
	/* gitleaks-allow, other tools, and payloads that do not parse:
	 * the first non-blank line. */
	while (*payload != '\0' && isspace((unsigned char)*payload))
		payload++;
	n = strcspn(payload, "\n");
	while (n > 0 && isspace((unsigned char)payload[n - 1]))
		n--;
	return sv_xstrndup(payload, n);
}
