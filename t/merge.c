/* merge.c: the merge rules of approvals, as a table, and operators' edits. */
#include <stdlib.h>
#include <string.h>

#include "supervise.h"
#include "tap.h"

#define R1(h) "{\"host\": \"" h "\"}"

struct merge_case {
	const char *name;
	const char *routes;	/* NULL: no routes.json yet */
	const char *route;
	const char *want;	/* NULL: must fail */
};

static const struct merge_case merges[] = {
	{ "first route into no file", NULL,
	  "{\"host\": \"api.github.com\", \"path_allowlist\": [\"/repos\"]}",
	  "{\n  \"routes\": [\n    {\n      \"host\": \"api.github.com\",\n"
	  "      \"path_allowlist\": [\n        \"/repos\"\n      ]\n    }\n"
	  "  ]\n}\n" },
	{ "same host: union of path prefixes, sorted",
	  "{\"routes\": [{\"host\": \"a.example\", \"path_allowlist\": "
	  "[\"/z\", \"/b\"]}]}",
	  "{\"host\": \"a.example\", \"path_allowlist\": [\"/c\", \"/b\"]}",
	  "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\",\n"
	  "      \"path_allowlist\": [\n        \"/b\",\n        \"/c\",\n"
	  "        \"/z\"\n      ]\n    }\n  ]\n}\n" },
	{ "a bare route (all paths) stays bare",
	  "{\"routes\": [" R1("a.example") "]}",
	  "{\"host\": \"a.example\", \"path_allowlist\": [\"/only\"]}",
	  "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\"\n    }\n"
	  "  ]\n}\n" },
	{ "a bare proposal widens a listed route to all paths",
	  "{\"routes\": [{\"host\": \"a.example\", \"path_allowlist\": "
	  "[\"/x\"]}]}",
	  R1("a.example"),
	  "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\"\n    }\n"
	  "  ]\n}\n" },
	{ "existing auth unchanged by a proposal's auth",
	  "{\"routes\": [{\"auth\": {\"scheme\": \"Bearer\", \"token_ref\": "
	  "\"GH_TOKEN\"}, \"host\": \"a.example\"}]}",
	  "{\"auth\": {\"scheme\": \"token\", \"token_ref\": \"EVIL\"}, "
	  "\"host\": \"a.example\"}",
	  "{\n  \"routes\": [\n    {\n      \"auth\": {\n"
	  "        \"scheme\": \"Bearer\",\n        \"token_ref\": \"GH_TOKEN\"\n"
	  "      },\n      \"host\": \"a.example\"\n    }\n  ]\n}\n" },
	{ "no auth is not given one by an agent",
	  "{\"routes\": [" R1("a.example") "]}",
	  "{\"auth\": {\"scheme\": \"token\", \"token_ref\": \"T\"}, "
	  "\"host\": \"a.example\"}",
	  "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\"\n    }\n"
	  "  ]\n}\n" },
	{ "a new host comes with its auth, sorted in",
	  "{\"routes\": [" R1("b.example") ", " R1("d.example") "]}",
	  "{\"auth\": {\"scheme\": \"token\", \"token_ref\": \"C_TOKEN\"}, "
	  "\"host\": \"c.example\"}",
	  "{\n  \"routes\": [\n    {\n      \"host\": \"b.example\"\n    },\n"
	  "    {\n      \"auth\": {\n        \"scheme\": \"token\",\n"
	  "        \"token_ref\": \"C_TOKEN\"\n      },\n"
	  "      \"host\": \"c.example\"\n    },\n"
	  "    {\n      \"host\": \"d.example\"\n    }\n  ]\n}\n" },
	{ "hosts match case-insensitively and are stored lowercased",
	  "{\"routes\": [{\"host\": \"api.github.com\", \"path_allowlist\": "
	  "[\"/a\"]}]}",
	  "{\"host\": \"API.GitHub.COM\", \"path_allowlist\": [\"/b\"]}",
	  "{\n  \"routes\": [\n    {\n      \"host\": \"api.github.com\",\n"
	  "      \"path_allowlist\": [\n        \"/a\",\n        \"/b\"\n"
	  "      ]\n    }\n  ]\n}\n" },
	{ "an unsorted file comes out sorted",
	  "{\"routes\": [" R1("z.example") ", " R1("a.example") "]}",
	  R1("m.example"),
	  "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\"\n    },\n"
	  "    {\n      \"host\": \"m.example\"\n    },\n"
	  "    {\n      \"host\": \"z.example\"\n    }\n  ]\n}\n" },
	{ "empty text is no routes", "  \n", R1("a.example"),
	  "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\"\n    }\n"
	  "  ]\n}\n" },
	{ "refused: a route with a port", NULL, R1("a.example:443"), NULL },
	{ "refused: an IP literal", NULL, R1("10.0.0.1"), NULL },
	{ "refused: a relative path prefix", NULL,
	  "{\"host\": \"a.example\", \"path_allowlist\": [\"x\"]}", NULL },
	{ "refused: an unknown key in the route", NULL,
	  "{\"host\": \"a.example\", \"port\": 1}", NULL },
	{ "refused: not JSON", NULL, "host: a.example", NULL },
	{ "refused: existing file with a duplicate host",
	  "{\"routes\": [" R1("a.example") ", " R1("A.example") "]}",
	  R1("b.example"), NULL },
	{ "refused: existing file with an unknown key",
	  "{\"routes\": [], \"extra\": 1}", R1("b.example"), NULL },
	{ "refused: existing file that is not JSON", "routes:\n",
	  R1("b.example"), NULL },
};

static void
test_merges(void)
{
	struct sv_err e;
	char *out, *again;
	size_t i;

	for (i = 0; i < sizeof merges / sizeof merges[0]; i++) {
		const struct merge_case *c = &merges[i];
		int rc = sv_routes_merge(c->routes, c->route, &out, &e);

		if (c->want == NULL) {
			ok(rc == -1 && out == NULL && e.msg[0] != '\0',
			    "%s (%s)", c->name, rc == -1 ? e.msg : "accepted");
			continue;
		}
		if (!ok(rc == 0, "%s: merged", c->name)) {
			printf("#   error: %s\n", e.msg);
			continue;
		}
		is_str(out, c->want, "%s: canonical result", c->name);
		/* Approving the same route again changes nothing. */
		ok(sv_routes_merge(out, c->route, &again, &e) == 0 &&
		    strcmp(again, out) == 0, "%s: idempotent", c->name);
		free(again);
		free(out);
	}
}

static void
test_lines(void)
{
	struct sv_err e;
	char *out;

	ok(sv_lines_add(NULL, "b.example", &out, &e) == 0, "first line");
	is_str(out, "b.example\n", "one line, newline-terminated");
	free(out);
	ok(sv_lines_add("c\na\n", "b", &out, &e) == 0, "line into a list");
	is_str(out, "a\nb\nc\n", "sorted in");
	free(out);
	ok(sv_lines_add("a\nb\n", "a", &out, &e) == 0, "line already there");
	is_str(out, "a\nb\n", "unique");
	free(out);
	ok(sv_lines_add("b\n\n\na", "c", &out, &e) == 0, "blank lines, no "
	    "final newline");
	is_str(out, "a\nb\nc\n", "blank lines dropped, newline added");
	free(out);
	ok(sv_lines_add("a\n", "x\ny", &out, &e) == -1 && out == NULL,
	    "a line with a newline is refused: %s", e.msg);
	ok(sv_lines_add("a\n", "x\ry", &out, &e) == -1, "a CR is refused");
	ok(sv_lines_add("a\n", "", &out, &e) == -1, "an empty line is refused");
}

static void
test_apply(void)
{
	struct sv_err e;
	char *out;

	ok(sv_config_update(SV_TOOL_PIPELOCK_BLOCK, "a.example\nz.example\n",
	    "https://Files.Example.ORG/some/path?q=1", &out, &e) == 0,
	    "pipelock-block applies");
	is_str(out, "a.example\nfiles.example.org\nz.example\n",
	    "the URL's host, lowercased, is added to the allowlist");
	free(out);
	ok(sv_config_update(SV_TOOL_PIPELOCK_BLOCK, NULL,
	    "https://u:p@x.example/", &out, &e) == -1, "a URL with user info is refused: %s", e.msg);
	ok(sv_config_update(SV_TOOL_GITLEAKS_ALLOW, "b:f:r:2\n", "a:f:r:1", &out,
	    &e) == 0, "gitleaks-allow applies");
	is_str(out, "a:f:r:1\nb:f:r:2\n", "fingerprint added, sorted");
	free(out);
	ok(sv_config_update(SV_TOOL_CAPABILITY_BLOCK, "FROM old\n", "FROM new\n",
	    &out, &e) == 0, "capability-block applies");
	is_str(out, "FROM new\n", "the Dockerfile is replaced");
	free(out);
	ok(sv_config_update(SV_TOOL_EGRESS_ALLOW, NULL, R1("x.example"), &out,
	    &e) == 0 && out != NULL && strstr(out, "x.example") != NULL,
	    "egress-allow merges a route too");
	free(out);
	out = (char *)"unchanged";
	ok(sv_config_update(SV_TOOL_EGRESS_TOKEN_ALLOW, "x", "token please", &out,
	    &e) == 0 && out == NULL, "egress-token-allow changes no file");
	ok(sv_config_update(SV_TOOL_LIST_EGRESS_ROUTES, NULL, "x", &out,
	    &e) == -1,
	    "a read-only tool has nothing to apply");
	ok(sv_config_update("no-such-tool", NULL, "x", &out, &e) == -1,
	    "an unknown tool is refused");
	ok(sv_config_update(SV_TOOL_CAPABILITY_BLOCK, NULL, "  \n", &out,
	    &e) == -1,
	    "an empty Dockerfile is refused: %s", e.msg);
}

/* An egress route's host goes onto pipelock's allowlist too. */
static void
test_mirror(void)
{
	struct sv_err e;
	char *out;

	is_str(sv_tool_find(SV_TOOL_EGRESS_BLOCK)->mirror, "pipelock/allowlist",
	    "egress-block mirrors onto pipelock's allowlist");
	is_str(sv_tool_find(SV_TOOL_EGRESS_ALLOW)->mirror, "pipelock/allowlist",
	    "egress-allow too");
	ok(sv_config_mirror(SV_TOOL_EGRESS_BLOCK, NULL,
	    "{\"host\": \"api.github.com\", \"path_allowlist\": [\"/repos/\"]}",
	    &out, &e) == 0, "a route into no allowlist");
	is_str(out, "api.github.com\n", "its host, no path: pipelock matches "
	    "hosts");
	free(out);
	ok(sv_config_mirror(SV_TOOL_EGRESS_ALLOW, "b.example\nz.example\n",
	    R1("M.Example"), &out, &e) == 0, "a route into an allowlist");
	is_str(out, "b.example\nm.example\nz.example\n", "lower case, sorted "
	    "in");
	free(out);
	ok(sv_config_mirror(SV_TOOL_EGRESS_BLOCK, "a.example\n", R1("A.example"),
	    &out, &e) == 0, "a host already there");
	is_str(out, "a.example\n", "stays once");
	free(out);
	out = (char *)"unchanged";
	ok(sv_config_mirror(SV_TOOL_PIPELOCK_BLOCK, "a.example\n",
	    "https://b.example/", &out, &e) == 0 && out == NULL,
	    "pipelock-block has no mirror");
	out = (char *)"unchanged";
	ok(sv_config_mirror(SV_TOOL_CAPABILITY_BLOCK, NULL, "FROM x\n", &out,
	    &e) == 0 && out == NULL, "capability-block has no mirror");
	ok(sv_config_mirror(SV_TOOL_EGRESS_BLOCK, "a.example\n",
	    R1("a.example:443"), &out, &e) == -1 && out == NULL,
	    "a route refused by the payload check: %s", e.msg);
	ok(sv_config_mirror(SV_TOOL_EGRESS_BLOCK, "a.example\n", "not json",
	    &out, &e) == -1, "not JSON: %s", e.msg);
}

static void
test_normalize(void)
{
	struct sv_err e;
	char *out;

	ok(sv_config_normalize("pipelock/allowlist",
	    "  B.example \n\na.example\nb.example\r\n", &out, &e) == 0,
	    "allowlist edit accepted");
	is_str(out, "a.example\nb.example\n", "trimmed, lowercased, sorted, "
	    "unique");
	free(out);
	ok(sv_config_normalize("pipelock/allowlist", "a.example\n\nbad host\n",
	    &out, &e) == -1, "an invalid host is refused");
	ok(strncmp(e.msg, "pipelock/allowlist:3: ", 22) == 0,
	    "with its line number: %s", e.msg);
	ok(sv_config_normalize("pipelock/allowlist", "", &out, &e) == 0 &&
	    strcmp(out, "") == 0, "an empty allowlist is fine");
	free(out);
	ok(sv_config_normalize("egress/routes.json",
	    "{\"routes\":[{\"host\":\"B.example\"},{\"host\":\"a.example\"}]}",
	    &out, &e) == 0, "routes edit accepted");
	is_str(out, "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\"\n"
	    "    },\n    {\n      \"host\": \"b.example\"\n    }\n  ]\n}\n",
	    "routes made canonical");
	free(out);
	ok(sv_config_normalize("egress/routes.json", "", &out, &e) == -1,
	    "an empty routes.json is refused: %s", e.msg);
	ok(sv_config_normalize("egress/routes.json",
	    "{\"routes\": [{\"host\": \"a.example\", \"path_allowlist\": []}]}",
	    &out, &e) == -1, "an empty path_allowlist is refused: %s", e.msg);
	ok(sv_config_normalize("egress/routes.json", "{\"routes\": [\n  1\n]}",
	    &out, &e) == -1 && strstr(e.msg, "routes[0]") != NULL,
	    "a bad route is named: %s", e.msg);
	ok(sv_config_normalize("gitleaks/.gitleaksignore", "b:1\n a:2 \n",
	    &out, &e) == 0, "gitleaksignore accepted");
	is_str(out, "a:2\nb:1\n", "gitleaksignore canonical");
	free(out);
	ok(sv_config_normalize("capability/Dockerfile", "FROM x\nRUN y", &out,
	    &e) == 0, "Dockerfile accepted");
	is_str(out, "FROM x\nRUN y", "Dockerfile kept as it is");
	free(out);
	ok(sv_config_normalize("capability/Dockerfile", " \n", &out, &e) == -1,
	    "an empty Dockerfile is refused");
	ok(sv_config_normalize("../etc/passwd", "x", &out, &e) == -1,
	    "an unknown file is refused: %s", e.msg);
}

/*
 * Merges chained through the routes the last merge left (confupdate.c
 * takes them over): each result must be what a merge from the text alone
 * gives, whatever failed or was merged in between.
 */
static void
test_chain(void)
{
	static const char *const hosts[] = { "d.example", "b.example",
	    "a.example", "c.example" };
	char *text = NULL, *next, *fresh, *a = NULL;
	struct sv_err e;
	char route[128];
	int same = 1;

	for (size_t i = 0; i < 4; i++) {
		snprintf(route, sizeof route, "{\"host\": \"%s\", "
		    "\"path_allowlist\": [\"/p%zu\"]}", hosts[i], i);
		if (sv_routes_merge(text, route, &next, &e) == -1) {
			ok(0, "merge %zu: %s", i, e.msg);
			free(text);
			return;
		}
		/* The same merge again, from the same text, not the last one. */
		if (sv_routes_merge(text, route, &fresh, &e) == -1) {
			ok(0, "merge %zu again: %s", i, e.msg);
			free(next);
			free(text);
			return;
		}
		same &= strcmp(next, fresh) == 0;
		free(fresh);
		if (i == 1)
			a = strdup(next);
		free(text);
		text = next;
	}
	ok(same, "a merge from an older text ignores the remembered routes");
	ok(sv_routes_merge(text, "{\"host\": \"bad host\"}", &next, &e) == -1,
	    "a bad route after a merge is refused");
	ok(sv_routes_merge(text, "{\"host\": \"a.example\", "
	    "\"path_allowlist\": [\"/q\"]}", &next, &e) == 0,
	    "and the next merge into the same text works");
	is_str(next, "{\n  \"routes\": [\n    {\n      \"host\": \"a.example\",\n"
	    "      \"path_allowlist\": [\n        \"/p2\",\n        \"/q\"\n"
	    "      ]\n    },\n    {\n      \"host\": \"b.example\",\n"
	    "      \"path_allowlist\": [\n        \"/p1\"\n      ]\n    },\n"
	    "    {\n      \"host\": \"c.example\",\n      \"path_allowlist\": [\n"
	    "        \"/p3\"\n      ]\n    },\n    {\n      \"host\": \"d.example\",\n"
	    "      \"path_allowlist\": [\n        \"/p0\"\n      ]\n    }\n  ]\n}\n",
	    "with every route of the chain");
	free(next);
	ok(sv_routes_merge(a, "{\"host\": \"e.example\"}", &next, &e) == 0 &&
	    strstr(next, "c.example") == NULL && strstr(next, "e.example") &&
	    strstr(next, "b.example"), "a merge into an earlier text: its "
	    "routes only");
	free(next);
	free(a);
	free(text);
}

int
main(void)
{
	test_merges();
	test_chain();
	test_lines();
	test_apply();
	test_mirror();
	test_normalize();
	plan(tap_n);		/* a trailing plan: the table sets the count */
	return done_testing();
}
