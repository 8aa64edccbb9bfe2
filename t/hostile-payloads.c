/*
 * hostile-payloads: what an agent may not get into a proposal.
 *
 * Each case goes through sv_tool_args (the tools/call arguments an agent
 * sends) and, where a payload text results, sv_payload_check (the same
 * payload as an operator's final file or a file dropped into the spool):
 * hosts with ports, user info, IP literals in any spelling a resolver
 * accepts, trailing dots; token_refs that are not environment-variable
 * names; URLs with credentials; oversize Dockerfiles and justifications;
 * fingerprints that would add a second line to .gitleaksignore.  Each
 * must be refused with a message that names what was wrong.
 */
#include <stdlib.h>
#include <string.h>

#include "supervise.h"
#include "tap.h"

/* Does msg mention one of the '|'-separated words of want? */
static int
mentions(const char *msg, const char *want)
{
	char *w = sv_xstrdup(want), *save = NULL, *tok;
	int found = 0;

	for (tok = strtok_r(w, "|", &save); tok && !found;
	    tok = strtok_r(NULL, "|", &save))
		found = strstr(msg, tok) != NULL;
	free(w);
	return found;
}

/* tools/call arguments as JSON text; expect refusal with `want` in it. */
static void
refused(const char *tool, const char *args, const char *want)
{
	json_error_t je;
	json_t *j = json_loads(args, JSON_ALLOW_NUL, &je);
	char *payload = NULL, *just = NULL;
	struct sv_err e;
	int rc;

	if (j == NULL) {
		ok(0, "test bug: %s: %s", args, je.text);
		return;
	}
	memset(&e, 0, sizeof e);
	rc = sv_tool_args(tool, j, &payload, &just, &e);
	if (!ok(rc == -1 && mentions(e.msg, want),
	    "%s %s refused: %s", tool, args, rc == -1 ? e.msg : "ACCEPTED"))
	{
		char *shown = payload ? sv_escape(payload, strlen(payload), 0) :
		    NULL;
		printf("#   payload: %s\n#   wanted a message with '%s'\n",
		    shown ? shown : "", want);
		free(shown);
	}
	free(payload);
	free(just);
	json_decref(j);
}

/* Accepted; the payload must equal `want` when given. */
static void
accepted(const char *tool, const char *args, const char *want)
{
	json_t *j = json_loads(args, 0, NULL);
	char *payload = NULL, *just = NULL;
	struct sv_err e;
	int rc;

	memset(&e, 0, sizeof e);
	rc = sv_tool_args(tool, j, &payload, &just, &e);
	char *shown = rc == 0 ? sv_escape(payload, strlen(payload), 0) :
	    sv_xstrdup(e.msg);
	ok(rc == 0 && (want == NULL || strcmp(payload, want) == 0),
	    "%s %s accepted: %s", tool, args, shown);
	free(shown);
	free(payload);
	free(just);
	json_decref(j);
}

/* A payload text (final file, spool file) refused by the payload check. */
static void
payload_refused(const char *tool, const char *payload, const char *label,
    const char *want)
{
	struct sv_err e;
	int rc;

	memset(&e, 0, sizeof e);
	rc = sv_payload_check(tool, payload, &e);
	ok(rc == -1 && mentions(e.msg, want), "%s payload %s refused: %s",
	    tool, label, rc == -1 ? e.msg : "ACCEPTED");
}

static const char *const bad_hosts[] = {
	"api.example.org:443", "user@api.example.org",
	"user:pw@api.example.org", "127.0.0.1", "10.0.0.1", "[::1]", "::1",
	"2130706433",		/* 127.0.0.1 as one decimal number */
	"0x7f000001",		/* 127.0.0.1 as one hex number */
	"0x7f.0x1",		/* 127.0.0.1, inet_aton's short hex form */
	"0X7F.1", "0177.0.0.1", "example.org.", "a..b", ".example.org",
	"exa mple.org", "exa\\nmple.org", "example.org/path",
	"example.org\\\\@evil", "\\u00e9xample.org",
	"\\u202eexample.org", "-example.org",
	NULL,
};

int
main(void)
{
	char *big, *args;
	size_t i;

	for (i = 0; bad_hosts[i]; i++) {
		args = sv_xasprintf("{\"host\": \"%s\", \"justification\": "
		    "\"x\"}", bad_hosts[i]);
		refused(SV_TOOL_EGRESS_BLOCK, args, "host");
		free(args);
		args = sv_xasprintf("{\"host\": \"%s\"}\n", bad_hosts[i]);
		payload_refused(SV_TOOL_EGRESS_ALLOW, args, bad_hosts[i], "host");
		free(args);
	}
	accepted(SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"API.Example.ORG\", \"justification\": \"x\"}",
	    "{\n  \"host\": \"api.example.org\"\n}\n");
	accepted(SV_TOOL_EGRESS_BLOCK,
	    "{\"host\": \"api.example.org\", \"justification\": \"x\", "
	    "\"auth\": {\"scheme\": \"Bearer\", \"token_ref\": \"_GH_TOKEN1\"}}",
	    NULL);

	/* token_ref names an environment variable, nothing else. */
	static const char *const bad_refs[] = {
		"$(cat /etc/passwd)", "${HOME}", "A-B", "1ABC", "A B",
		"GH_TOKEN\\n", "GH_TOKEN\\u0000X", "", "../secret", "a=b",
		NULL,
	};
	for (i = 0; bad_refs[i]; i++) {
		args = sv_xasprintf("{\"host\": \"api.example.org\", "
		    "\"justification\": \"x\", \"auth\": {\"scheme\": \"Bearer\", "
		    "\"token_ref\": \"%s\"}}", bad_refs[i]);
		refused(SV_TOOL_EGRESS_BLOCK, args, "token_ref");
		free(args);
	}
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\", \"justification\": "
	    "\"x\", \"auth\": {\"scheme\": \"Basic\", \"token_ref\": \"T\"}}",
	    "scheme");
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\", \"justification\": "
	    "\"x\", \"auth\": {\"scheme\": \"Bearer\", \"token_ref\": 7}}",
	    "token_ref");
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\", \"justification\": "
	    "\"x\", \"path_allowlist\": [\"v1/\"]}", "path_allowlist");
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\", \"justification\": "
	    "\"x\", \"path_allowlist\": \"/v1/\"}", "path_allowlist");
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": 42, \"justification\": \"x\"}",
	    "host");
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"exa\\u0000mple.org\", "
	    "\"justification\": \"x\"}", "host");
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\"}", "justification");
	refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\", "
	    "\"justification\": \" \\t\\n\"}", "justification");
	refused(SV_TOOL_EGRESS_BLOCK, "[\"a.example\"]", "arguments");
	payload_refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\", "
	    "\"extra\": 1}\n", "with an unknown key", "extra");
	payload_refused(SV_TOOL_EGRESS_BLOCK, "{\"host\": \"a.example\", "
	    "\"host\": \"b.example\"}\n", "with a duplicate key", "host");

	/* URLs: http(s), a DNS host, no credentials. */
	static const char *const bad_urls[] = {
		"https://user:pw@example.org/", "https://user@example.org/",
		"https://:pw@example.org/", "ftp://example.org/",
		"file:///etc/passwd", "javascript:alert(1)", "https://127.0.0.1/",
		"https://[::1]/", "https://0x7f000001/", "https://0x7f.0x1/",
		"https://2130706433/", "https://example.org./", "http:///x",
		"https://", "example.org", "https://exa mple.org/",
		NULL,
	};
	for (i = 0; bad_urls[i]; i++) {
		args = sv_xasprintf("{\"failed_url\": \"%s\", "
		    "\"justification\": \"x\"}", bad_urls[i]);
		refused(SV_TOOL_PIPELOCK_BLOCK, args, "failed_url|host");
		free(args);
		payload_refused(SV_TOOL_PIPELOCK_BLOCK, bad_urls[i], bad_urls[i],
		    "failed_url|host");
	}
	accepted(SV_TOOL_PIPELOCK_BLOCK, "{\"failed_url\": "
	    "\" https://Example.org:8443/a?b#c \", \"justification\": \"x\"}",
	    "https://Example.org:8443/a?b#c");
	char *summary = sv_payload_summary(SV_TOOL_PIPELOCK_BLOCK,
	    "https://Example.org:8443/a");
	is_str(summary, "example.org", "the allowlist gets the host only, "
	    "lowercased, without the port");
	free(summary);

	/* A 10 MiB Dockerfile: refused by size, whichever way it comes. */
	big = sv_xmalloc((10 << 20) + 1);
	memset(big, 'A', 10 << 20);
	memcpy(big, "FROM x\nRUN ", 11);
	big[10 << 20] = '\0';
	payload_refused(SV_TOOL_CAPABILITY_BLOCK, big, "of 10 MiB", "larger");
	{
		json_t *a = json_pack("{s:s, s:s}", "dockerfile", big,
		    "justification", "x");
		char *p = NULL, *j = NULL;
		struct sv_err e;
		int rc = sv_tool_args(SV_TOOL_CAPABILITY_BLOCK, a, &p, &j, &e);
		ok(rc == -1 && strstr(e.msg, "larger"), "capability-block with "
		    "a 10 MiB dockerfile refused: %s", rc ? e.msg : "ACCEPTED");
		free(p);
		free(j);
		json_decref(a);
	}
	big[(64 << 10) + 1] = '\0';
	{
		json_t *a = json_pack("{s:s, s:s}", "dockerfile", "FROM x\n",
		    "justification", big);
		char *p = NULL, *j = NULL;
		struct sv_err e;
		int rc = sv_tool_args(SV_TOOL_CAPABILITY_BLOCK, a, &p, &j, &e);
		ok(rc == -1 && strstr(e.msg, "justification"), "a justification "
		    "over 64 KiB refused: %s", rc ? e.msg : "ACCEPTED");
		free(p);
		free(j);
		json_decref(a);
	}
	free(big);
	payload_refused(SV_TOOL_CAPABILITY_BLOCK, " \n\t", "of white space",
	    "empty");

	/* A fingerprint is one line: no second entry smuggled in. */
	static const char *const bad_fps[] = {
		"abc:f:r:1\nevil:f:r:2", "abc:f:r:1\r", "\x1b[2Jabc", "abc\x7f",
		" abc:f:r:1", NULL,
	};
	for (i = 0; bad_fps[i]; i++) {
		char *esc = sv_escape(bad_fps[i], strlen(bad_fps[i]), 0);
		payload_refused(SV_TOOL_GITLEAKS_ALLOW, bad_fps[i], esc,
		    "fingerprint");
		free(esc);
	}

	/* Tools an agent may not propose through. */
	refused(SV_TOOL_LIST_EGRESS_ROUTES, "{\"justification\": \"x\"}", "tool");
	refused("../../etc/passwd", "{\"justification\": \"x\"}", "tool");
	plan(tap_n);
	return done_testing();
}
