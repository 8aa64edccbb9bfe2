/*
 * fuzz/policy.c: the policy parser and matcher.
 *
 * Whatever the text, sv_policy_parse either refuses it with a message
 * that starts "FILE:LINE: " (or names the file) or returns rules that
 * each name a tool and reparse, alone, to the same rule; the rule's text
 * holds no control byte but tabs.  Matching a proposal then picks a rule of the
 * proposal's own tool, one that an approval of a route with an auth
 * block only matches when it names auth=, and a host rule "*.NAME" only
 * when the host ends in ".NAME".
 *
 * Input: the policy text, FUZZ_SEP, a tool name, FUZZ_SEP, a payload.
 */
#include "../src/supervise.h"
#include "fuzz.h"

static void
same_rule(const struct sv_rule *a, const struct sv_rule *b)
{
	FUZZ_ASSERT(a->action == b->action && strcmp(a->tool, b->tool) == 0 &&
	    a->nconds == b->nconds, "rule '%s' reparses differently", a->text);
	for (size_t i = 0; i < a->nconds; i++)
		FUZZ_ASSERT(a->conds[i].field == b->conds[i].field &&
		    strcmp(a->conds[i].pattern, b->conds[i].pattern) == 0,
		    "condition %zu of '%s' reparses differently", i, a->text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part parts[3];
	struct sv_policy pol, one;
	struct sv_err e;
	size_t n = fuzz_split(data, size, parts, 3);
	char *why;
	int i;

	memset(&e, 0, sizeof e);
	if (sv_policy_parse(parts[0].s, parts[0].len, "P", &pol, &e) == -1) {
		FUZZ_ASSERT(strncmp(e.msg, "P:", 2) == 0,
		    "message does not name the file: %s", e.msg);
		fuzz_parts_free(parts, n);
		return 0;
	}
	for (size_t k = 0; k < pol.n; k++) {
		const struct sv_rule *r = &pol.rules[k];

		FUZZ_ASSERT(sv_tool_find(r->tool) != NULL, "no such tool");
		FUZZ_ASSERT(r->action == SV_APPROVED || r->action == SV_REJECTED,
		    "action %d", (int)r->action);
		for (const char *p = r->text; *p; p++)
			FUZZ_ASSERT(((unsigned char)*p >= 0x20 || *p == '\t') &&
			    (unsigned char)*p < 0x7f, "control byte in text");
		FUZZ_ASSERT(sv_policy_parse(r->text, strlen(r->text), "Q", &one,
		    &e) == 0 && one.n == 1, "rule '%s' alone: %s", r->text,
		    e.msg);
		same_rule(r, &one.rules[0]);
		sv_policy_free(&one);
	}
	if (n == 3 && fuzz_cstr(&parts[1]) && fuzz_cstr(&parts[2])) {
		i = sv_policy_match(&pol, parts[1].s, parts[2].s, &why);
		FUZZ_ASSERT(why != NULL, "no explanation");
		if (i >= 0) {
			const struct sv_rule *r = &pol.rules[i];

			FUZZ_ASSERT(strcmp(r->tool, parts[1].s) == 0,
			    "rule of tool %s matched a %s", r->tool,
			    parts[1].s);
			FUZZ_ASSERT(sv_payload_check(parts[1].s, parts[2].s,
			    &e) == 0, "matched an invalid payload");
			FUZZ_ASSERT(strstr(why, ": matches\n") != NULL,
			    "explanation without the match: %s", why);
		}
		free(why);
	}
	/* The host pattern's promise, on the parts as a pattern and a host. */
	if (n >= 2 && fuzz_cstr(&parts[0]) && fuzz_cstr(&parts[1]) &&
	    strncmp(parts[0].s, "*.", 2) == 0 &&
	    sv_policy_host_match(parts[0].s, parts[1].s)) {
		size_t pl = strlen(parts[0].s) - 1, hl = strlen(parts[1].s);

		FUZZ_ASSERT(hl > pl && strcasecmp(parts[1].s + hl - pl,
		    parts[0].s + 1) == 0, "'%s' matched '%s'", parts[0].s,
		    parts[1].s);
	}
	sv_policy_free(&pol);
	fuzz_parts_free(parts, n);
	return 0;
}
