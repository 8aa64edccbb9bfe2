/*
 * policy.c: the operator's rules (SLUG/policy in the audit repository)
 * that decide a proposal when it is filed.
 *
 * The language is line-based: `ACTION TOOL [FIELD=PATTERN]...`, `#` to
 * the end of the line a comment, the first rule that matches wins, no
 * match leaves the proposal to the operator.  It is specified in
 * supervise-policy(5).  Rules look at what tools.c made of the call (the
 * validated, canonical payload: a lower-case host, the route's path
 * prefixes, its auth block), never at the agent's raw text, so a rule
 * means the same thing as the decision it stands in for.
 *
 * A parse is all or nothing: a file with one bad line is refused as a
 * whole ("FILE:LINE: reason"), and the daemon then decides nothing by
 * rule rather than guess which lines the operator meant.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervise.h"

/* The fields a rule may test, per tool. */
enum field { F_HOST, F_PATH, F_AUTH, F_FINGERPRINT, NFIELDS };

static const char *const field_names[NFIELDS] = {
	"host", "path", "auth", "fingerprint",
};

struct tool_fields {
	const char *tool;
	unsigned mask;		/* 1 << enum field */
	const char *list;	/* for messages */
};

static const struct tool_fields tool_fields[] = {
	{ SV_TOOL_EGRESS_BLOCK, 1u << F_HOST | 1u << F_PATH | 1u << F_AUTH,
	  "host, path, auth" },
	{ SV_TOOL_EGRESS_ALLOW, 1u << F_HOST | 1u << F_PATH | 1u << F_AUTH,
	  "host, path, auth" },
	{ SV_TOOL_PIPELOCK_BLOCK, 1u << F_HOST, "host" },
	{ SV_TOOL_CAPABILITY_BLOCK, 0, "none" },
	{ SV_TOOL_GITLEAKS_ALLOW, 1u << F_FINGERPRINT, "fingerprint" },
	{ NULL, 0, NULL },
};

static const struct tool_fields *
find_tool(const char *name)
{
	const struct tool_fields *t;

	for (t = tool_fields; t->tool != NULL; t++)
		if (strcmp(t->tool, name) == 0)
			return t;
	return NULL;
}

/* --- parsing -------------------------------------------------------------- */

struct parser {
	const char *file;
	unsigned line;
	struct sv_err *e;
};

static int
perr(struct parser *ps, const char *fmt, const char *arg)
{
	char *q = arg ? sv_escape(arg, strlen(arg), 0) : NULL;
	char msg[512];

	snprintf(msg, sizeof msg, fmt, q ? q : "");
	free(q);
	return sv_errf(ps->e, 0, "%s:%u: %s", ps->file, ps->line, msg);
}

/* A host pattern, made canonical in place: lower case, without one
 * trailing dot; "*" or "*.NAME" or "NAME", NAME a valid host. */
static int
check_host_pattern(struct parser *ps, char *pat)
{
	struct sv_err why;
	size_t n;
	char *p, *name = pat;

	for (p = pat; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	n = strlen(pat);
	if (n > 1 && pat[n - 1] == '.')
		pat[--n] = '\0';
	if (strcmp(pat, "*") == 0)
		return 0;
	if (strncmp(pat, "*.", 2) == 0)
		name = pat + 2;
	if (strchr(name, '*') != NULL)
		return perr(ps, "host pattern '%s': '*' may only stand for the "
		    "first labels, as in *.example.org", pat);
	if (sv_valid_host(name, &why) == -1)
		return perr(ps, "host pattern '%s' is not a DNS name", pat);
	return 0;
}

static int
check_pattern(struct parser *ps, enum field f, char *pat)
{
	const char *p;

	switch (f) {
	case F_HOST:
		return check_host_pattern(ps, pat);
	case F_PATH:
		if (pat[0] != '/')
			return perr(ps, "path pattern '%s' must start with '/'",
			    pat);
		return 0;
	case F_AUTH:
		if (strcmp(pat, "*") == 0)
			return 0;
		for (p = pat; *p != '\0'; p++)
			if (!(isalnum((unsigned char)*p) || *p == '_') ||
			    isdigit((unsigned char)pat[0]))
				return perr(ps, "auth pattern '%s' must be '*' or "
				    "an environment variable name (the route's "
				    "token_ref)", pat);
		return 0;
	default:
		return 0;
	}
}

static void
rule_free(struct sv_rule *r)
{
	for (size_t i = 0; i < r->nconds; i++)
		free(r->conds[i].pattern);
	free(r->conds);
	free(r->text);
}

/* Split off the next blank-separated word of [*s, end). */
static int
next_word(const char **s, const char *end, const char **w, size_t *n)
{
	const char *p = *s;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end)
		return 0;
	*w = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	*n = (size_t)(p - *w);
	*s = p;
	return 1;
}

/* One line [s, end) without its newline: a rule into *r, or nothing
 * (*r->tool stays NULL) for a blank or comment line. */
static int
parse_line(struct parser *ps, const char *s, const char *end,
    struct sv_rule *r)
{
	const struct tool_fields *tf;
	const char *hash, *w, *eq, *p;
	char *word = NULL;
	size_t n;
	int f;

	memset(r, 0, sizeof *r);
	r->line = ps->line;
	if ((size_t)(end - s) > SV_POLICY_LINE_MAX)
		return perr(ps, "line longer than " SV_POLICY_LINE_MAX_S
		    " bytes%s", NULL);
	for (p = s; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if ((c < 0x20 && c != '\t' && !(c == '\r' && p + 1 == end)) ||
		    c == 0x7f) {
			char hex[8];

			snprintf(hex, sizeof hex, "0x%02x", c);
			return perr(ps, "control character %s (even a comment "
			    "may hold none)", hex);
		}
	}
	if (end > s && end[-1] == '\r')
		end--;
	hash = memchr(s, '#', (size_t)(end - s));
	if (hash != NULL)
		end = hash;
	for (p = s; p < end; p++)
		if ((unsigned char)*p >= 0x80)
			return perr(ps, "a byte that is not ASCII outside a "
			    "comment%s", NULL);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end)
		return 0;
	r->text = sv_xstrndup(s, (size_t)(end - s));	/* for trailers, explanations */

	next_word(&s, end, &w, &n);
	word = sv_xstrndup(w, n);
	if (strcmp(word, "approve") == 0)
		r->action = SV_APPROVED;
	else if (strcmp(word, "reject") == 0)
		r->action = SV_REJECTED;
	else {
		perr(ps, "unknown action '%s' (approve or reject)", word);
		goto fail;
	}
	free(word);
	word = NULL;
	if (!next_word(&s, end, &w, &n)) {
		perr(ps, "a rule names a tool after its action%s", NULL);
		goto fail;
	}
	word = sv_xstrndup(w, n);
	tf = find_tool(word);
	if (tf == NULL) {
		perr(ps, "unknown tool '%s' (egress-block, egress-allow, "
		    "pipelock-block, capability-block, gitleaks-allow)", word);
		goto fail;
	}
	free(word);
	r->tool = tf->tool;
	while (next_word(&s, end, &w, &n)) {
		word = sv_xstrndup(w, n);
		eq = memchr(w, '=', n);
		if (eq == NULL || eq == w) {
			perr(ps, "'%s' is not FIELD=PATTERN", word);
			goto fail;
		}
		for (f = 0; f < NFIELDS; f++)
			if (strlen(field_names[f]) == (size_t)(eq - w) &&
			    memcmp(field_names[f], w, (size_t)(eq - w)) == 0)
				break;
		if (f == NFIELDS || !(tf->mask & 1u << f)) {
			char *msg = sv_xasprintf("%s has no field '%%s' (fields: "
			    "%s)", tf->tool, tf->list);

			word[eq - w] = '\0';
			perr(ps, msg, word);
			free(msg);
			goto fail;
		}
		if ((size_t)(eq - w) + 1 == n) {
			perr(ps, "'%s' has an empty pattern", word);
			goto fail;
		}
		r->conds = sv_xrealloc(r->conds, (r->nconds + 1) *
		    sizeof *r->conds);
		r->conds[r->nconds].field = f;
		r->conds[r->nconds].pattern = sv_xstrndup(eq + 1,
		    n - (size_t)(eq - w) - 1);
		r->nconds++;
		if (check_pattern(ps, (enum field)f,
		    r->conds[r->nconds - 1].pattern) == -1)
			goto fail;
		free(word);
	}
	return 0;
fail:
	free(word);
	rule_free(r);
	r->tool = NULL;
	return -1;
}

int
sv_policy_parse(const char *text, size_t len, const char *file,
    struct sv_policy *pol, struct sv_err *e)
{
	struct parser ps = { file, 0, e };
	const char *s = text, *end = text + len, *nl;
	struct sv_rule r;

	memset(pol, 0, sizeof *pol);
	if (text == NULL)
		return 0;
	if (memchr(text, '\0', len) != NULL)
		return sv_errf(e, 0, "%s: holds a NUL byte", file);
	while (s < end) {
		ps.line++;
		nl = memchr(s, '\n', (size_t)(end - s));
		if (parse_line(&ps, s, nl ? nl : end, &r) == -1) {
			sv_policy_free(pol);
			return -1;
		}
		if (r.tool != NULL) {
			pol->rules = sv_xrealloc(pol->rules, (pol->n + 1) *
			    sizeof *pol->rules);
			pol->rules[pol->n++] = r;
		}
		s = nl ? nl + 1 : end;
	}
	return 0;
}

void
sv_policy_free(struct sv_policy *pol)
{
	for (size_t i = 0; i < pol->n; i++)
		rule_free(&pol->rules[i]);
	free(pol->rules);
	memset(pol, 0, sizeof *pol);
}

/* --- matching ------------------------------------------------------------- */

/* What a rule may look at, from the canonical payload. */
struct facts {
	char *host;		/* lower case, no trailing dot */
	char **paths;		/* the route's prefixes; "/" when none */
	size_t npaths;
	char *auth;		/* the route's token_ref, or NULL */
	const char *fingerprint;
};

static void
facts_free(struct facts *fa)
{
	free(fa->host);
	for (size_t i = 0; i < fa->npaths; i++)
		free(fa->paths[i]);
	free(fa->paths);
	free(fa->auth);
}

static int
facts_of(const char *tool, const char *payload, struct facts *fa)
{
	json_t *j, *pal, *v;
	struct sv_err e;
	const char *s;
	char *url;
	size_t i, n;

	memset(fa, 0, sizeof *fa);
	if (sv_payload_check(tool, payload, &e) == -1)
		return -1;
	if (strcmp(tool, SV_TOOL_EGRESS_BLOCK) == 0 ||
	    strcmp(tool, SV_TOOL_EGRESS_ALLOW) == 0) {
		j = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
		if (j == NULL)
			return -1;
		/* Checked: a valid host; made lower case as tools.c does. */
		s = json_string_value(json_object_get(j, "host"));
		fa->host = sv_xstrdup(s ? s : "");
		for (char *p = fa->host; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		pal = json_object_get(j, "path_allowlist");
		n = json_array_size(pal);
		fa->paths = sv_xmalloc((n ? n : 1) * sizeof *fa->paths);
		json_array_foreach(pal, i, v)
			fa->paths[fa->npaths++] =
			    sv_xstrdup(json_string_value(v));
		if (fa->npaths == 0)
			fa->paths[fa->npaths++] = sv_xstrdup("/");
		s = json_string_value(json_object_get(json_object_get(j,
		    "auth"), "token_ref"));
		if (s != NULL)
			fa->auth = sv_xstrdup(s);
		json_decref(j);
	} else if (strcmp(tool, SV_TOOL_PIPELOCK_BLOCK) == 0) {
		url = sv_xstrdup(payload);
		n = strlen(url);
		while (n > 0 && isspace((unsigned char)url[n - 1]))
			url[--n] = '\0';
		s = url;
		while (isspace((unsigned char)*s))
			s++;
		i = sv_url_host(s, &fa->host, &e) == -1;
		free(url);
		if (i)
			return -1;
	} else if (strcmp(tool, SV_TOOL_GITLEAKS_ALLOW) == 0) {
		fa->fingerprint = payload;
	}
	return 0;
}

/* "*.example.org" holds names under example.org, never example.org
 * itself, evilexample.org or example.org.evil.net. */
int
sv_policy_host_match(const char *pattern, const char *host)
{
	size_t hn = strlen(host), sn;

	if (strcmp(pattern, "*") == 0)
		return 1;
	if (strncmp(pattern, "*.", 2) == 0) {
		sn = strlen(pattern + 1);	/* ".example.org" */
		return hn > sn && strcasecmp(host + hn - sn, pattern + 1) == 0;
	}
	return strcasecmp(pattern, host) == 0;
}

/* Path prefixes on segment boundaries: "/simple" holds "/simple" and
 * "/simple/x", not "/simpler"; "/simple/" holds "/simple/x" only. */
int
sv_policy_path_match(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);

	if (strncmp(pattern, path, n) != 0)
		return 0;
	return pattern[n - 1] == '/' || path[n] == '\0' || path[n] == '/';
}

static int
cond_holds(const struct sv_rule_cond *c, const char *value)
{
	switch (c->field) {
	case F_HOST:
		return sv_policy_host_match(c->pattern, value);
	case F_PATH:
		return sv_policy_path_match(c->pattern, value);
	case F_AUTH:
		return strcmp(c->pattern, "*") == 0 ||
		    strcmp(c->pattern, value) == 0;
	case F_FINGERPRINT:
		return fnmatch(c->pattern, value, 0) == 0;
	default:
		return 0;
	}
}

/* Does any of the rule's conditions on field f hold for value? -1: the
 * rule has none on f. */
static int
any_holds(const struct sv_rule *r, int f, const char *value)
{
	int seen = 0;

	for (size_t i = 0; i < r->nconds; i++) {
		if (r->conds[i].field != f)
			continue;
		seen = 1;
		if (cond_holds(&r->conds[i], value))
			return 1;
	}
	return seen ? 0 : -1;
}

static int
has_field(const struct sv_rule *r, int f)
{
	for (size_t i = 0; i < r->nconds; i++)
		if (r->conds[i].field == f)
			return 1;
	return 0;
}

/* NULL when rule r holds for the facts, else why not (malloc'd). */
static char *
why_not(const struct sv_rule *r, const struct facts *fa)
{
	char *q, *why;
	int h;

	if (fa->host != NULL && any_holds(r, F_HOST, fa->host) == 0) {
		q = sv_escape(fa->host, strlen(fa->host), 0);
		why = sv_xasprintf("host '%s' is not a host the rule names", q);
		free(q);
		return why;
	}
	for (size_t i = 0; i < fa->npaths; i++) {
		if (any_holds(r, F_PATH, fa->paths[i]) == 0) {
			q = sv_escape(fa->paths[i], strlen(fa->paths[i]), 0);
			why = sv_xasprintf("path '%s' is not under a path the "
			    "rule names%s", q, strcmp(fa->paths[i], "/") == 0 ?
			    " (the route allows every path)" : "");
			free(q);
			return why;
		}
	}
	h = fa->auth ? any_holds(r, F_AUTH, fa->auth) : -1;
	if (fa->auth != NULL && h == 0) {
		q = sv_escape(fa->auth, strlen(fa->auth), 0);
		why = sv_xasprintf("auth token_ref '%s' is not the rule's", q);
		free(q);
		return why;
	}
	/* An approval never lets a credential through by default. */
	if (fa->auth != NULL && h == -1 && r->action == SV_APPROVED)
		return sv_xstrdup("the route carries an auth block, which only "
		    "a rule with auth= approves");
	if (fa->auth == NULL && has_field(r, F_AUTH))
		return sv_xstrdup("the route has no auth block, and the rule "
		    "names one");
	if (fa->fingerprint != NULL &&
	    any_holds(r, F_FINGERPRINT, fa->fingerprint) == 0)
		return sv_xstrdup("the fingerprint does not match the rule's "
		    "pattern");
	return NULL;
}

int
sv_policy_match(const struct sv_policy *pol, const char *tool,
    const char *payload, char **explain)
{
	struct facts fa;
	char *why;
	int found = -1;
	size_t len = 0;
	FILE *f = NULL;

	if (explain != NULL) {
		*explain = NULL;
		f = open_memstream(explain, &len);
		if (f == NULL)
			sv_die(111, "out of memory");
	}
	if (tool == NULL || facts_of(tool, payload, &fa) == -1) {
		if (f != NULL) {
			fprintf(f, "the payload is not valid for its tool; no "
			    "rule applies\n");
			fclose(f);
		}
		return -1;
	}
	for (size_t i = 0; i < pol->n && found == -1; i++) {
		const struct sv_rule *r = &pol->rules[i];

		if (strcmp(r->tool, tool) != 0)
			continue;
		why = why_not(r, &fa);
		if (why == NULL)
			found = (int)i;
		if (f != NULL) {
			char *q = sv_escape(r->text, strlen(r->text), 0);

			fprintf(f, "line %u: %s: %s\n", r->line, q,
			    why ? why : "matches");
			free(q);
		}
		free(why);
	}
	if (f != NULL) {
		if (found == -1)
			fprintf(f, "no rule matches: the operator decides\n");
		fclose(f);
	}
	facts_free(&fa);
	return found;
}
