/*
 * policy.c: unit tests of the policy language (src/policy.c): what parses
 * and the FILE:LINE message of what does not, hostile lines, and which
 * proposals each rule matches, on payloads made the way the daemon makes
 * them (sv_tool_args), so a rule is tested against the canonical form.
 */
#include <stdlib.h>
#include <string.h>

#include "supervise.h"
#include "tap.h"

/* Parse text; "ok N" (rules) or the error message. */
static char *
parse(const char *text)
{
	struct sv_policy pol;
	struct sv_err e;
	char *out;

	if (sv_policy_parse(text, strlen(text), "web1/policy", &pol, &e) == -1)
		return sv_xstrdup(e.msg);
	out = sv_xasprintf("ok %zu", pol.n);
	sv_policy_free(&pol);
	return out;
}

static void
parse_is(const char *text, const char *want, const char *name)
{
	char *got = parse(text);

	is_str(got, want, "%s", name);
	free(got);
}

/* The payload sv_tool_args makes of tools/call arguments. */
static char *
payload(const char *tool, const char *json)
{
	json_t *j = json_loads(json, 0, NULL);
	char *p = NULL, *just = NULL;
	struct sv_err e;

	if (j == NULL || sv_tool_args(tool, j, &p, &just, &e) == -1) {
		fprintf(stderr, "# bad test arguments %s: %s\n", json,
		    j ? e.msg : "JSON");
		exit(1);
	}
	json_decref(j);
	free(just);
	return p;
}

/* Line of the first rule in `rules` matching, or 0. */
static unsigned
match(const char *rules, const char *tool, const char *json)
{
	struct sv_policy pol;
	struct sv_err e;
	char *p = payload(tool, json);
	int i;
	unsigned line;

	if (sv_policy_parse(rules, strlen(rules), "p", &pol, &e) == -1) {
		fprintf(stderr, "# bad test rules: %s\n", e.msg);
		exit(1);
	}
	i = sv_policy_match(&pol, tool, p, NULL);
	line = i < 0 ? 0 : pol.rules[i].line;
	sv_policy_free(&pol);
	free(p);
	return line;
}

#define EG(host, rest) "{\"host\": \"" host "\"" rest ", \"justification\": \"j\"}"

int
main(void)
{
	struct sv_policy pol;
	struct sv_err e;
	char *big, *why, *p;
	json_t *j;
	size_t n;

	plan(65);

	/* --- parsing -------------------------------------------------------- */
	parse_is("", "ok 0", "an empty file has no rules");
	parse_is("# only a comment\n\n   \t\n", "ok 0",
	    "comments and blank lines are not rules");
	parse_is("approve egress-block host=*.pypi.org path=/simple/\n"
	    "reject capability-block   # never by rule\n"
	    "approve pipelock-block host=registry.npmjs.org\n"
	    "approve gitleaks-allow fingerprint=*:testdata/*:generic-api-key:*",
	    "ok 4", "the issue's examples parse, the last without a newline");
	parse_is("approve egress-block\nbogus pipelock-block\n",
	    "web1/policy:2: unknown action 'bogus' (approve or reject)",
	    "an unknown action names its line");
	parse_is("approve\n",
	    "web1/policy:1: a rule names a tool after its action",
	    "a rule without a tool");
	parse_is("approve egress-token-allow\n",
	    "web1/policy:1: unknown tool 'egress-token-allow' (egress-block, "
	    "egress-allow, pipelock-block, capability-block, gitleaks-allow)",
	    "a tool no agent calls is refused");
	parse_is("approve egress-block host\n",
	    "web1/policy:1: 'host' is not FIELD=PATTERN", "a bare word");
	parse_is("approve egress-block host=\n",
	    "web1/policy:1: 'host=' has an empty pattern", "an empty pattern");
	parse_is("approve pipelock-block path=/x\n",
	    "web1/policy:1: pipelock-block has no field 'path' (fields: host)",
	    "a field the tool does not have");
	parse_is("approve capability-block host=a.org\n",
	    "web1/policy:1: capability-block has no field 'host' (fields: "
	    "none)", "capability-block has no field");
	parse_is("approve egress-block host=a*.org\n",
	    "web1/policy:1: host pattern 'a*.org': '*' may only stand for the "
	    "first labels, as in *.example.org", "a wildcard inside a label");
	parse_is("approve egress-block host=*.*.org\n",
	    "web1/policy:1: host pattern '*.*.org': '*' may only stand for the "
	    "first labels, as in *.example.org", "two wildcards");
	parse_is("approve egress-block host=10.0.0.1\n",
	    "web1/policy:1: host pattern '10.0.0.1' is not a DNS name",
	    "an IP address is not a host pattern");
	parse_is("approve egress-block path=simple\n",
	    "web1/policy:1: path pattern 'simple' must start with '/'",
	    "a path without its slash");
	parse_is("approve egress-block auth=1TOKEN\n",
	    "web1/policy:1: auth pattern '1TOKEN' must be '*' or an "
	    "environment variable name (the route's token_ref)",
	    "an auth pattern that is no variable name");
	parse_is("# fine\n# \x1b]0;owned\x07 title\n",
	    "web1/policy:2: control character 0x1b (even a comment may hold "
	    "none)", "an escape sequence in a comment is refused");
	parse_is("approve egress-block host=caf\xc3\xa9.org\n",
	    "web1/policy:1: a byte that is not ASCII outside a comment",
	    "a rule is ASCII");
	parse_is("# caf\xc3\xa9 \xe2\x80\x94 ok\r\napprove egress-block\r\n",
	    "ok 1", "UTF-8 in a comment and CRLF line ends are fine");
	ok(sv_policy_parse("a\0b", 3, "f", &pol, &e) == -1 &&
	    strcmp(e.msg, "f: holds a NUL byte") == 0, "a NUL byte: %s", e.msg);

	n = 1000 * 1000;
	big = sv_xmalloc(n + 64);
	strcpy(big, "approve egress-block\n#");
	memset(big + 22, 'x', n);
	strcpy(big + 22 + n, "\nreject capability-block\n");
	parse_is(big, "web1/policy:2: line longer than 4096 bytes",
	    "a 1 MB comment line is refused with its line number");
	memset(big, ' ', n);
	strcpy(big + n - 30, "approve egress-block\n");
	parse_is(big, "web1/policy:1: line longer than 4096 bytes",
	    "a 1 MB line of blanks is refused");
	free(big);

	/* The rule's text is kept as written, without its comment. */
	ok(sv_policy_parse("\n  approve  egress-block host=A.Example.ORG. # hi\n",
	    48, "f", &pol, &e) == 0 && pol.n == 1 && pol.rules[0].line == 2 &&
	    strcmp(pol.rules[0].text, "approve  egress-block "
	    "host=A.Example.ORG.") == 0 &&
	    strcmp(pol.rules[0].conds[0].pattern, "a.example.org") == 0,
	    "line number, text, and the host pattern made canonical");
	sv_policy_free(&pol);

	/* --- hosts ---------------------------------------------------------- */
	ok(sv_policy_host_match("*.example.org", "a.example.org"),
	    "*.example.org matches a name under it");
	ok(sv_policy_host_match("*.example.org", "a.b.example.org"),
	    "*.example.org matches a name two labels under it");
	ok(!sv_policy_host_match("*.example.org", "example.org"),
	    "*.example.org does not match example.org itself");
	ok(!sv_policy_host_match("*.example.org", "example.org.evil.net"),
	    "*.example.org does not match example.org.evil.net");
	ok(!sv_policy_host_match("*.example.org", "evilexample.org"),
	    "*.example.org does not match evilexample.org");
	ok(!sv_policy_host_match("*.example.org", ".example.org"),
	    "*.example.org does not match an empty first label");
	ok(sv_policy_host_match("*", "anything.org"), "* matches any host");

	ok(match("approve egress-block host=*.pypi.org\n", "egress-block",
	    EG("files.PyPI.org", "")) == 1,
	    "the agent's upper case host is matched as tools.c normalises it");
	ok(match("approve egress-block host=PyPI.org.\n", "egress-block",
	    EG("pypi.org", "")) == 1,
	    "a rule's trailing dot and case do not matter");
	ok(match("approve egress-block host=*.pypi.org\n", "egress-block",
	    EG("pypi.org", "")) == 0, "*.pypi.org leaves pypi.org alone");
	ok(match("approve egress-block host=pypi.org\n", "egress-block",
	    EG("pypi.org.evil.net", "")) == 0,
	    "a host that only starts like the rule's");
	ok(match("approve egress-block host=*.pypi.org\n", "egress-block",
	    EG("evilpypi.org", "")) == 0,
	    "a host that only ends like the rule's");
	ok(match("approve egress-allow host=a.org host=b.org\n", "egress-allow",
	    EG("b.org", "")) == 1, "host= twice: either");
	ok(match("approve egress-allow host=a.org\n", "egress-block",
	    EG("a.org", "")) == 0, "a rule holds for its own tool only");
	/* The agent's trailing dot: tools.c refuses it when the call is
	 * made, and a payload that holds one anyway (written into the
	 * spool by hand) is matched by no rule, not by the dotless name. */
	ok(sv_tool_args("egress-block", j = json_pack("{s:s, s:s}", "host",
	    "files.pypi.org.", "justification", "j"), &p, &why, &e) == -1,
	    "the agent's trailing dot is refused when the call is made");
	json_decref(j);
	big = "approve egress-block host=*.pypi.org\n";
	ok(sv_policy_parse(big, strlen(big), "p", &pol, &e) == 0 &&
	    sv_policy_match(&pol, "egress-block",
	    "{\n  \"host\": \"files.pypi.org.\"\n}\n", &why) == -1,
	    "a stored payload whose host ends with a dot: no rule applies");
	is_str(why, "the payload is not valid for its tool; no rule applies\n",
	    "because the payload is not valid");
	free(why);
	sv_policy_free(&pol);

	/* --- paths ---------------------------------------------------------- */
	ok(match("approve egress-block host=pypi.org path=/simple\n",
	    "egress-block", EG("pypi.org", ", \"path_allowlist\": "
	    "[\"/simpler\"]")) == 0, "/simple does not match /simpler");
	ok(match("approve egress-block host=pypi.org path=/simple\n",
	    "egress-block", EG("pypi.org", ", \"path_allowlist\": "
	    "[\"/simple\", \"/simple/numpy/\"]")) == 1,
	    "/simple matches /simple and /simple/numpy/");
	ok(match("approve egress-block host=pypi.org path=/simple/\n",
	    "egress-block", EG("pypi.org", ", \"path_allowlist\": "
	    "[\"/simple\"]")) == 0, "/simple/ does not match the wider /simple");
	ok(match("approve egress-block host=pypi.org path=/simple/\n",
	    "egress-block", EG("pypi.org", "")) == 0,
	    "a path rule does not match a route that allows every path");
	ok(match("approve egress-block host=pypi.org path=/\n",
	    "egress-block", EG("pypi.org", "")) == 1,
	    "path=/ matches a route that allows every path");
	ok(match("approve egress-block host=pypi.org path=/simple\n",
	    "egress-block", EG("pypi.org", ", \"path_allowlist\": "
	    "[\"/Simple/\"]")) == 0,
	    "paths are compared as written: /Simple is not under /simple");
	ok(match("approve egress-block path=/a path=/b\n",
	    "egress-block", EG("x.org", ", \"path_allowlist\": [\"/a/1\", "
	    "\"/b\"]")) == 1, "every path under one of the rule's");
	ok(match("approve egress-block path=/a\n",
	    "egress-block", EG("x.org", ", \"path_allowlist\": [\"/a/1\", "
	    "\"/b\"]")) == 0, "one path outside the rule's: no match");

	/* --- auth ----------------------------------------------------------- */
#define AUTH ", \"auth\": {\"scheme\": \"Bearer\", \"token_ref\": \"GH_TOKEN\"}"
	ok(match("approve egress-block host=api.github.com\n", "egress-block",
	    EG("api.github.com", AUTH)) == 0,
	    "an approval without auth= never lets an auth block through");
	ok(match("approve egress-block\n", "egress-block",
	    EG("api.github.com", AUTH)) == 0,
	    "not even a rule for every route");
	ok(match("approve egress-block auth=GH_TOKEN\n", "egress-block",
	    EG("api.github.com", AUTH)) == 1, "auth= naming the token_ref");
	ok(match("approve egress-block auth=OTHER\n", "egress-block",
	    EG("api.github.com", AUTH)) == 0, "auth= naming another token_ref");
	ok(match("approve egress-block auth=*\n", "egress-block",
	    EG("api.github.com", "")) == 0,
	    "an auth= rule does not match a route without auth");
	ok(match("reject egress-block host=*.github.com\n", "egress-block",
	    EG("api.github.com", AUTH)) == 1,
	    "a rejection needs no auth= to refuse a route with auth");

	/* --- other tools, order --------------------------------------------- */
	ok(match("approve pipelock-block host=registry.npmjs.org\n",
	    "pipelock-block", "{\"failed_url\": \" https://Registry.NPMJS.org/"
	    "left-pad \", \"justification\": \"j\"}") == 1,
	    "pipelock-block: the URL's host, lower case");
	ok(match("approve pipelock-block host=registry.npmjs.org\n",
	    "pipelock-block", "{\"failed_url\": \"https://registry.npmjs.org."
	    "evil.net/\", \"justification\": \"j\"}") == 0,
	    "pipelock-block: a longer host");
	ok(match("reject capability-block\n", "capability-block",
	    "{\"dockerfile\": \"FROM x\", \"justification\": \"j\"}") == 1,
	    "capability-block: a rule with no field");
	ok(match("approve gitleaks-allow fingerprint=*:testdata/*\n",
	    "gitleaks-allow", "{\"fingerprint\": \"abc:testdata/k.env:generic:1"
	    "\", \"justification\": \"j\"}") == 1, "gitleaks-allow: a pattern");
	ok(match("approve gitleaks-allow fingerprint=*:testdata/*\n",
	    "gitleaks-allow", "{\"fingerprint\": \"abc:src/k.env:generic:1\", "
	    "\"justification\": \"j\"}") == 0, "gitleaks-allow: no match");
	ok(match("reject egress-block host=x.pypi.org\n"
	    "approve egress-block host=*.pypi.org\n", "egress-block",
	    EG("x.pypi.org", "")) == 1, "the first matching line wins");
	ok(match("reject egress-block host=y.pypi.org\n"
	    "approve egress-block host=*.pypi.org\n", "egress-block",
	    EG("x.pypi.org", "")) == 2, "a later line when the first does not");

	/* --- why not -------------------------------------------------------- */
	big = "approve egress-block host=*.pypi.org path=/simple\n"
	    "reject pipelock-block\n"
	    "approve egress-block host=*.github.com\n";
	ok(sv_policy_parse(big, strlen(big), "p", &pol, &e) == 0 && pol.n == 3,
	    "three rules");
	p = payload("egress-block", EG("api.github.com", AUTH));
	ok(sv_policy_match(&pol, "egress-block", p, &why) == -1,
	    "no rule for a route with auth");
	is_str(why, "line 1: approve egress-block host=*.pypi.org "
	    "path=/simple: host 'api.github.com' is not a host the rule names\n"
	    "line 3: approve egress-block host=*.github.com: the route carries "
	    "an auth block, which only a rule with auth= approves\n"
	    "no rule matches: the operator decides\n", "why each rule failed");
	free(why);
	free(p);
	p = payload("egress-block", EG("pypi.org", ""));
	sv_policy_match(&pol, "egress-block", p, &why);
	ok(strstr(why, "line 1: approve egress-block host=*.pypi.org "
	    "path=/simple: host 'pypi.org' is not") != NULL,
	    "why: *.pypi.org is not pypi.org");
	free(why);
	free(p);
	p = payload("egress-block", EG("x.pypi.org",
	    ", \"path_allowlist\": [\"/simpler\"]"));
	sv_policy_match(&pol, "egress-block", p, &why);
	ok(strstr(why, "path '/simpler' is not under a path the rule names") !=
	    NULL, "why: /simpler is not under /simple");
	free(why);
	free(p);
	sv_policy_free(&pol);

	return done_testing();
}
