/*
 * fuzz/merge.c: how approvals change a bottle's config, and the host and
 * payload checks that guard what gets in.
 *
 * The config files in the audit repository are what the egress proxy,
 * pipelock and the gitleaks gate obey, so the promises checked here are
 * the ones that keep a bottle's allow-lists honest:
 *  - a merge loses nothing that was there, adds what was asked, keeps the
 *    file sorted and unique, and is idempotent (approving twice changes
 *    nothing the second time);
 *  - a payload that passes the tool's check carries only a DNS host (no
 *    port, userinfo, IP literal or trailing dot), path prefixes that start
 *    with '/', an environment-variable name as token_ref, a one-line
 *    fingerprint: nothing that could smuggle a second entry into a file.
 *
 * Input: one selector byte, then up to two parts separated by FUZZ_SEP.
 */
#include <ctype.h>

#include "../src/supervise.h"
#include "fuzz.h"

static const char *const tools[] = {
	SV_TOOL_EGRESS_BLOCK, SV_TOOL_EGRESS_ALLOW, SV_TOOL_PIPELOCK_BLOCK,
	SV_TOOL_CAPABILITY_BLOCK, SV_TOOL_GITLEAKS_ALLOW,
	SV_TOOL_EGRESS_TOKEN_ALLOW,
};
#define NTOOLS (sizeof tools / sizeof tools[0])

/*
 * A DNS name as the contract means it; deliberately a second reading.
 * A last label that is a number (decimal, or 0x hex) makes URL parsers
 * read the whole host as an IPv4 address (WHATWG "ends in a number"), so
 * such a host is an IP literal in disguise.
 */
static int
dns_name_ok(const char *h)
{
	size_t len = strlen(h), label = 0;
	const char *last;
	int digits = 1;

	if (len == 0 || len > 253 || h[0] == '.' || h[len - 1] == '.')
		return 0;
	for (const char *p = h; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	last = strrchr(h, '.');
	last = last ? last + 1 : h;
	if (last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
		for (const char *p = last + 2; *p; p++)
			digits &= isxdigit((unsigned char)*p) != 0;
	} else {
		for (const char *p = last; *p; p++)
			digits &= isdigit((unsigned char)*p) != 0;
	}
	return !digits;
}

static int
env_name_ok(const char *s)
{
	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

static void
check_lines_add(const char *list, const char *line)
{
	struct sv_err e;
	char *out = NULL, *again = NULL;

	if (sv_lines_add(list, line, &out, &e) != 0)
		return;
	FUZZ_ASSERT(out != NULL, "sv_lines_add gave no text");
	FUZZ_ASSERT(has_line(out, line), "added line is not a line of the result");
	FUZZ_ASSERT(*out == '\0' || out[strlen(out) - 1] == '\n',
	    "no trailing newline");

	/* Sorted, unique, and every line that was there still is. */
	char *copy = sv_xstrdup(out), *prev = NULL;
	for (char *p = copy, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		*nl = '\0';
		FUZZ_ASSERT(prev == NULL || strcmp(prev, p) < 0,
		    "lines not sorted and unique: '%s' before '%s'", prev, p);
		prev = p;
	}
	free(copy);
	if (list) {
		char *was = sv_xstrdup(list), *save = NULL;
		for (char *l = strtok_r(was, "\n", &save); l;
		    l = strtok_r(NULL, "\n", &save))
			FUZZ_ASSERT(has_line(out, l), "line '%s' was lost", l);
		free(was);
	}

	FUZZ_ASSERT(sv_lines_add(out, line, &again, &e) == 0,
	    "adding to our own output failed: %s", e.msg);
	FUZZ_ASSERT(strcmp(out, again) == 0, "adding a line twice changed the list");
	free(again);
	free(out);
}

static void
route_hosts(const char *text, json_t **routes)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	FUZZ_ASSERT(j != NULL, "merged routes are not JSON: %s", je.text);
	*routes = json_incref(json_object_get(j, "routes"));
	FUZZ_ASSERT(json_is_array(*routes), "merged routes have no array");
	json_decref(j);
}

static void
check_routes_merge(const char *routes, const char *route)
{
	struct sv_err e;
	char *out = NULL, *again = NULL;
	json_t *arr, *r, *old = NULL;
	const char *prev = NULL;
	size_t i;

	if (sv_routes_merge(routes, route, &out, &e) != 0)
		return;
	FUZZ_ASSERT(out != NULL && *out && out[strlen(out) - 1] == '\n',
	    "merged routes lack a trailing newline");
	route_hosts(out, &arr);
	json_array_foreach(arr, i, r) {
		const char *h = json_string_value(json_object_get(r, "host"));
		FUZZ_ASSERT(h != NULL, "route %zu has no host", i);
		FUZZ_ASSERT(prev == NULL || strcasecmp(prev, h) < 0,
		    "routes not sorted or duplicate host: '%s', '%s'", prev, h);
		prev = h;
	}

	/* The new route's host is there; every old host still is. */
	json_t *nr = json_loads(route, 0, NULL);
	const char *nh = json_string_value(json_object_get(nr, "host"));
	int found = 0;
	FUZZ_ASSERT(nh != NULL, "merged a route without a host");
	json_array_foreach(arr, i, r)
		found |= strcasecmp(json_string_value(json_object_get(r,
		    "host")), nh) == 0;
	FUZZ_ASSERT(found, "merged host '%s' is missing", nh);
	json_decref(nr);
	if (routes && (old = json_loads(routes, 0, NULL)) != NULL) {
		json_t *oarr = json_object_get(old, "routes"), *o, *pa;
		size_t k;
		json_array_foreach(oarr, k, o) {
			const char *oh = json_string_value(json_object_get(o,
			    "host"));
			json_t *match = NULL;
			if (oh == NULL)
				continue;
			json_array_foreach(arr, i, r)
				if (strcasecmp(json_string_value(
				    json_object_get(r, "host")), oh) == 0)
					match = r;
			FUZZ_ASSERT(match, "host '%s' was lost", oh);
			/* A route that allowed all paths still does. */
			pa = json_object_get(o, "path_allowlist");
			if (pa == NULL)
				FUZZ_ASSERT(json_object_get(match,
				    "path_allowlist") == NULL,
				    "all-paths route '%s' was narrowed", oh);
			/* An existing auth is never changed by an agent. */
			if (json_object_get(o, "auth"))
				FUZZ_ASSERT(json_equal(json_object_get(o, "auth"),
				    json_object_get(match, "auth")),
				    "auth of '%s' changed", oh);
		}
		json_decref(old);
	}
	json_decref(arr);

	FUZZ_ASSERT(sv_routes_merge(out, route, &again, &e) == 0,
	    "merging into our own output failed: %s", e.msg);
	FUZZ_ASSERT(strcmp(out, again) == 0, "merging twice changed the routes");
	free(again);
	free(out);
}

/* What passing the payload check promises for each tool. */
static void
check_payload(const char *tool, const char *payload)
{
	struct sv_err e;
	char *host = NULL, *out = NULL, *again = NULL;

	if (sv_payload_check(tool, payload, &e) != 0)
		return;
	FUZZ_ASSERT(*payload != '\0', "%s: empty payload accepted", tool);
	if (strncmp(tool, "egress-", 7) == 0 &&
	    strcmp(tool, SV_TOOL_EGRESS_TOKEN_ALLOW) != 0) {
		json_t *j = json_loads(payload, JSON_REJECT_DUPLICATES, NULL), *v;
		const char *h, *ref;
		size_t i;
		FUZZ_ASSERT(json_is_object(j), "%s: payload not an object", tool);
		h = json_string_value(json_object_get(j, "host"));
		FUZZ_ASSERT(h && dns_name_ok(h), "%s: host '%s' accepted", tool,
		    h ? h : "(none)");
		json_array_foreach(json_object_get(j, "path_allowlist"), i, v)
			FUZZ_ASSERT(json_is_string(v) &&
			    json_string_value(v)[0] == '/',
			    "%s: path prefix %zu accepted", tool, i);
		if ((v = json_object_get(j, "auth")) != NULL) {
			ref = json_string_value(json_object_get(v, "token_ref"));
			FUZZ_ASSERT(ref && env_name_ok(ref),
			    "%s: token_ref '%s' accepted", tool, ref ? ref : "");
		}
		json_decref(j);
	} else if (strcmp(tool, SV_TOOL_PIPELOCK_BLOCK) == 0) {
		/* The check reads the URL without surrounding white space. */
		size_t skip = strspn(payload, " \t\n\v\f\r"), n;
		char *url = sv_xstrdup(payload + skip);
		for (n = strlen(url); n > 0 && isspace((unsigned char)url[n - 1]);)
			url[--n] = '\0';
		FUZZ_ASSERT(sv_url_host(url, &host, &e) == 0,
		    "accepted URL has no host: %s", e.msg);
		free(url);
		FUZZ_ASSERT(dns_name_ok(host), "pipelock host '%s' accepted", host);
		free(host);
	} else if (strcmp(tool, SV_TOOL_GITLEAKS_ALLOW) == 0) {
		for (const char *p = payload; *p; p++)
			FUZZ_ASSERT((unsigned char)*p >= 0x20 && *p != 0x7f,
			    "control byte in accepted fingerprint");
	}

	/*
	 * An approved payload applies (else its decision could never be
	 * committed), and applying it again changes nothing.
	 */
	FUZZ_ASSERT(sv_config_update(tool, NULL, payload, &out, &e) == 0,
	    "%s: accepted payload does not apply: %s", tool, e.msg);
	if (out != NULL) {
		FUZZ_ASSERT(sv_config_update(tool, out, payload, &again, &e) == 0,
		    "%s: applying to own output failed: %s", tool, e.msg);
		if (strcmp(tool, SV_TOOL_CAPABILITY_BLOCK) != 0)
			FUZZ_ASSERT(again && strcmp(out, again) == 0,
			    "%s: applying twice changed the config", tool);
		free(again);
	}
	free(out);
	/* Its mirror applies too, and again changes nothing: an approved
	 * route's host is always a valid allowlist line. */
	FUZZ_ASSERT(sv_config_mirror(tool, NULL, payload, &out, &e) == 0,
	    "%s: accepted payload does not mirror: %s", tool, e.msg);
	if (out != NULL) {
		char *norm;

		FUZZ_ASSERT(sv_config_mirror(tool, out, payload, &again, &e) == 0 &&
		    strcmp(out, again) == 0, "%s: mirroring twice changed the "
		    "allowlist", tool);
		FUZZ_ASSERT(sv_config_normalize("pipelock/allowlist", out, &norm,
		    &e) == 0 && strcmp(norm, out) == 0, "%s: mirrored allowlist "
		    "'%s' is not canonical", tool, out);
		free(norm);
		free(again);
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[2];
	struct sv_err e;
	const char *a, *b;
	char *out = NULL, *host = NULL;
	size_t n;
	unsigned sel;

	if (size < 1)
		return 0;
	sel = data[0];
	n = fuzz_split(data + 1, size - 1, part, 2);
	a = fuzz_cstr(&part[0]);
	b = n == 2 ? fuzz_cstr(&part[1]) : NULL;

	switch (sel % 6) {
	case 0:		/* ROUTE, or ROUTES @@ ROUTE */
		if (n == 1 && a)
			check_routes_merge(NULL, a);
		else if (n == 2 && a && b)
			check_routes_merge(a, b);
		break;
	case 1:		/* LINE, or LIST @@ LINE */
		if (n == 1 && a)
			check_lines_add(NULL, a);
		else if (n == 2 && a && b)
			check_lines_add(a, b);
		break;
	case 2:		/* PAYLOAD, or CURRENT @@ PAYLOAD, for tool sel/6 */
		if (n == 2 && a && b) {
			if (sv_config_update(tools[sel / 6 % NTOOLS], a, b, &out, &e) == 0)
				free(out);
		} else if (a) {
			check_payload(tools[sel / 6 % NTOOLS], a);
		}
		break;
	case 3:
		if (a && sv_url_host(a, &host, &e) == 0) {
			FUZZ_ASSERT(host && *host, "empty host from '%s'", a);
			FUZZ_ASSERT(strchr(host, '@') == NULL,
			    "userinfo in host '%s'", host);
			free(host);
		}
		break;
	case 4:
		if (a && sv_valid_host(a, &e) == 0)
			FUZZ_ASSERT(dns_name_ok(a), "host '%s' accepted", a);
		break;
	case 5:		/* every tool's payload check on the same text */
		if (a)
			for (size_t i = 0; i < NTOOLS; i++)
				check_payload(tools[i], a);
		break;
	}
	fuzz_parts_free(part, n);
	return 0;
}
