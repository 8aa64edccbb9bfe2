/*
 * confupdate.c: the config update, how an approved payload changes a
 * bottle's config file.
 *
 * Pure functions from text to text: the current file (NULL when absent)
 * and an approved payload go in, the new file comes out.  Every output is
 * canonical (routes sorted by host, 2-space indent, sorted keys; line
 * lists sorted and unique, each line ending in a newline), so applying an
 * approval twice gives the same bytes, and `git log -p` on a config file
 * shows exactly what each decision changed and nothing else.
 *
 * An approved egress route changes two files: the route is merged into
 * routes.json and its host added to pipelock's allowlist (the tool's
 * mirror), so the downstream gate never refuses what egress allows.
 *
 * Payloads are judged by tools.c (sv_payload_check), the one validator;
 * this file only decides how a valid payload combines with what is there.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "supervise.h"

#define ROUTES_PATH	"egress/routes.json"
#define ALLOWLIST_PATH	"pipelock/allowlist"
#define DOCKERFILE_PATH	"capability/Dockerfile"
#define GITLEAKS_PATH	"gitleaks/.gitleaksignore"

static char *
lower_dup(const char *s)
{
	char *d = sv_xstrdup(s);

	for (char *p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sorted copy of a JSON array of strings, duplicates dropped. */
static json_t *
sorted_unique(json_t *arr)
{
	size_t n = json_array_size(arr), i, k = 0;
	const char **v = sv_xmalloc((n ? n : 1) * sizeof *v);
	json_t *out = json_array();

	for (i = 0; i < n; i++)
		v[k++] = json_string_value(json_array_get(arr, i));
	if (k > 1)
		qsort(v, k, sizeof *v, cmp_str);
	for (i = 0; i < k; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
			json_array_append_new(out, json_string(v[i]));
	free(v);
	return out;
}

/*
 * The canonical form of one route: validated as an egress payload (the
 * same check an agent's proposal gets), host lowercased, path prefixes
 * sorted and unique, auth as given.  `what` names the route in messages.
 */
static json_t *
route_canonical(json_t *src, const char *what, struct sv_err *e)
{
	const char *prefix = SV_TOOL_EGRESS_BLOCK ": ";
	json_t *route, *pal, *auth;
	char *text, *host, msg[sizeof e->msg];

	if (!json_is_object(src)) {
		sv_errf(e, 0, "%s: a route must be a JSON object", what);
		return NULL;
	}
	text = json_dumps(src, JSON_SORT_KEYS);
	if (text == NULL)
		sv_die(111, "out of memory");
	if (sv_payload_check(SV_TOOL_EGRESS_BLOCK, text, e) == -1) {
		/* Name the route, not the tool: this may be an operator's file. */
		memcpy(msg, e->msg, sizeof msg);
		sv_errf(e, 0, "%s: %s", what,
		    strncmp(msg, prefix, strlen(prefix)) == 0 ?
		    msg + strlen(prefix) : msg);
		free(text);
		return NULL;
	}
	free(text);

	host = lower_dup(json_string_value(json_object_get(src, "host")));
	route = json_pack("{s:s}", "host", host);
	free(host);
	pal = json_object_get(src, "path_allowlist");
	if (json_is_array(pal) && json_array_size(pal) > 0)
		json_object_set_new(route, "path_allowlist", sorted_unique(pal));
	auth = json_object_get(src, "auth");
	if (json_is_object(auth))
		json_object_set_new(route, "auth", json_pack("{s:O, s:O}",
		    "scheme", json_object_get(auth, "scheme"),
		    "token_ref", json_object_get(auth, "token_ref")));
	return route;
}

static const char *
route_host(json_t *route)
{
	return json_string_value(json_object_get(route, "host"));
}

static int
cmp_route(const void *a, const void *b)
{
	return strcmp(route_host(*(json_t *const *)a),
	    route_host(*(json_t *const *)b));
}

static void
sort_routes(json_t *routes)
{
	size_t n = json_array_size(routes), i;
	json_t **v = sv_xmalloc((n ? n : 1) * sizeof *v);

	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(routes, i));
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_route);
	json_array_clear(routes);
	for (i = 0; i < n; i++)
		json_array_append_new(routes, v[i]);
	free(v);
}

/*
 * Load a routes document ({"routes": [route, ...]}) into a sorted array
 * of canonical routes.  NULL or blank text is a bottle without routes.  A
 * host that appears twice is refused: merging would have to pick one
 * route's auth, and that is the operator's call, not ours.
 */
static int
routes_load(const char *text, const char *path, json_t **out,
    struct sv_err *e)
{
	json_t *doc = NULL, *arr, *v, *routes, *r;
	const char *key;
	char what[64];
	size_t i;

	*out = NULL;
	routes = json_array();
	if (text == NULL || sv_all_space(text)) {
		*out = routes;
		return 0;
	}
	if (sv_record_loadb(text, strlen(text), path, &doc, e) == -1)
		goto fail;
	json_object_foreach(doc, key, v) {
		if (strcmp(key, "routes") != 0) {
			char *q = sv_escape(key, strlen(key), 0);
			sv_errf(e, 0, "%s: unknown key '%s' (a routes file holds "
			    "only \"routes\")", path, q);
			free(q);
			goto fail;
		}
	}
	arr = json_object_get(doc, "routes");
	if (!json_is_array(arr)) {
		sv_errf(e, 0, "%s: \"routes\" must be an array of routes", path);
		goto fail;
	}
	json_array_foreach(arr, i, v) {
		snprintf(what, sizeof what, "%s: routes[%zu]", path, i);
		if ((r = route_canonical(v, what, e)) == NULL)
			goto fail;
		json_array_append_new(routes, r);
	}
	sort_routes(routes);
	for (i = 1; i < json_array_size(routes); i++) {
		const char *h = route_host(json_array_get(routes, i));
		if (strcmp(h, route_host(json_array_get(routes, i - 1))) == 0) {
			sv_errf(e, 0, "%s: host '%s' has more than one route",
			    path, h);
			goto fail;
		}
	}
	json_decref(doc);
	*out = routes;
	return 0;
fail:
	json_decref(doc);
	json_decref(routes);
	return -1;
}

static char *
routes_dump(json_t *routes)
{
	json_t *doc = json_pack("{s:O}", "routes", routes);
	char *s = sv_json_text(doc);

	json_decref(doc);
	return s;
}

/* The union of two routes for the same host, into `have`. */
static void
route_union(json_t *have, json_t *add)
{
	json_t *hp = json_object_get(have, "path_allowlist");
	json_t *ap = json_object_get(add, "path_allowlist");
	json_t *both;

	/* No list means every path: the union of "all" and anything is all. */
	if (hp == NULL)
		return;
	if (ap == NULL) {
		json_object_del(have, "path_allowlist");
		return;
	}
	both = json_copy(hp);
	json_array_extend(both, ap);
	json_object_set_new(have, "path_allowlist", sorted_unique(both));
	json_decref(both);
	/* Auth stays as the operator set it: an agent cannot change it. */
}

/*
 * The last routes file this process wrote, and its routes.  A sidecar
 * merges into the file it merged into last, so the next merge need not
 * check every route of it again (that was a fifth of a commit's CPU with
 * 64 routes): the same bytes are the same canonical routes.  The merge
 * takes them over rather than copying them (a copy was another tenth),
 * and leaves its result in their place.
 */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char *last_text;
static json_t *last_routes;

/* The routes of `text`, to be changed: the remembered ones, or loaded. */
static int
routes_take(const char *text, json_t **out, struct sv_err *e)
{
	pthread_mutex_lock(&last_lock);
	if (text != NULL && last_text != NULL && strcmp(text, last_text) == 0) {
		*out = last_routes;
		last_routes = NULL;
		free(last_text);
		last_text = NULL;
		pthread_mutex_unlock(&last_lock);
		return 0;
	}
	pthread_mutex_unlock(&last_lock);
	return routes_load(text, ROUTES_PATH, out, e);
}

/* Keep `routes` as the routes of `text`; no one changes them after this
 * but the next routes_take. */
static void
routes_remember(const char *text, json_t *routes)
{
	pthread_mutex_lock(&last_lock);
	free(last_text);
	json_decref(last_routes);
	last_text = sv_xstrdup(text);
	last_routes = json_incref(routes);
	pthread_mutex_unlock(&last_lock);
}

int
sv_routes_merge(const char *routes, const char *route, char **out,
    struct sv_err *e)
{
	json_t *arr = NULL, *src = NULL, *add = NULL, *r, *have;
	size_t i;
	int rc = -1;

	*out = NULL;
	if (routes_take(routes, &arr, e) == -1)
		return -1;
	if (sv_record_loadb(route, strlen(route), "route", &src, e) == -1)
		goto out;
	if ((add = route_canonical(src, "route", e)) == NULL)
		goto out;
	have = NULL;
	json_array_foreach(arr, i, r) {
		if (strcmp(route_host(r), route_host(add)) == 0)
			have = r;
	}
	if (have != NULL) {
		route_union(have, add);
	} else {
		json_array_append(arr, add);
		sort_routes(arr);
	}
	*out = routes_dump(arr);
	routes_remember(*out, arr);
	rc = 0;
out:
	json_decref(add);
	json_decref(src);
	json_decref(arr);
	return rc;
}

/* Split text into its non-empty lines (pointers into a copy, *buf). */
static char **
split_lines(const char *text, char **buf, size_t *n)
{
	size_t cap = 16, k = 0;
	char **v = sv_xmalloc(cap * sizeof *v), *p, *nl;

	*buf = sv_xstrdup(text ? text : "");
	for (p = *buf; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (*p != '\0') {
			if (k + 2 > cap)
				v = sv_xrealloc(v, (cap *= 2) * sizeof *v);
			v[k++] = p;
		}
		if (nl == NULL)
			break;
	}
	*n = k;
	return v;
}

/* Sorted, unique lines, each ending in a newline ("" for none). */
static char *
join_sorted(char **v, size_t n)
{
	size_t len = 1, i, off = 0;
	char *out;

	if (n > 1)
		qsort(v, n, sizeof *v, cmp_str);
	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	out = sv_xmalloc(len);
	for (i = 0; i < n; i++) {
		size_t l;

		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		l = strlen(v[i]);
		memcpy(out + off, v[i], l);
		off += l;
		out[off++] = '\n';
	}
	out[off] = '\0';
	return out;
}

int
sv_lines_add(const char *list, const char *line, char **out,
    struct sv_err *e)
{
	char **v, *buf;
	size_t n;

	*out = NULL;
	if (*line == '\0')
		return sv_errf(e, 0, "can't add an empty line");
	for (const unsigned char *p = (const unsigned char *)line; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return sv_errf(e, 0, "can't add a line with a control "
			    "character (a line must be one entry)");
	v = split_lines(list, &buf, &n);
	v[n++] = (char *)line;
	*out = join_sorted(v, n);
	free(v);
	free(buf);
	return 0;
}

int
sv_config_update(const char *tool, const char *current, const char *payload,
    char **out, struct sv_err *e)
{
	const struct sv_tool *t = sv_tool_find(tool);
	char *url, *host;
	int rc;

	*out = NULL;
	if (t == NULL || !t->proposes)
		return sv_errf(e, 0, "can't apply a payload of tool '%s'",
		    tool ? tool : "");
	if (sv_payload_check(tool, payload, e) == -1)
		return -1;
	if (strcmp(tool, SV_TOOL_EGRESS_BLOCK) == 0 ||
	    strcmp(tool, SV_TOOL_EGRESS_ALLOW) == 0)
		return sv_routes_merge(current, payload, out, e);
	if (strcmp(tool, SV_TOOL_PIPELOCK_BLOCK) == 0) {
		/* The host is what pipelock matches; the path was context. */
		url = sv_strip_dup(payload);
		rc = sv_url_host(url, &host, e);
		free(url);
		if (rc == -1)
			return -1;
		rc = sv_lines_add(current, host, out, e);
		free(host);
		return rc;
	}
	if (strcmp(tool, SV_TOOL_CAPABILITY_BLOCK) == 0) {
		*out = sv_xstrdup(payload);
		return 0;
	}
	if (strcmp(tool, SV_TOOL_GITLEAKS_ALLOW) == 0)
		return sv_lines_add(current, payload, out, e);
	/* egress-token-allow and any later tool without a file: recorded. */
	return 0;
}

int
sv_config_mirror(const char *tool, const char *current, const char *payload,
    char **out, struct sv_err *e)
{
	const struct sv_tool *t = sv_tool_find(tool);
	json_t *route;
	char *host;
	int rc;

	*out = NULL;
	if (t == NULL || t->mirror == NULL)
		return 0;
	if (sv_payload_check(tool, payload, e) == -1)
		return -1;
	/* Checked: an object with a valid host.  Hosts match in lower case. */
	if (sv_record_loadb(payload, strlen(payload), "route", &route, e) == -1)
		return -1;
	host = lower_dup(json_string_value(json_object_get(route, "host")));
	json_decref(route);
	rc = sv_lines_add(current, host, out, e);
	free(host);
	return rc;
}

/*
 * A line list an operator edited: surrounding white space and blank lines
 * dropped, each entry checked by `check`, sorted and unique.
 */
static int
lines_normalize(const char *text, const char *path, int lower,
    int (*check)(const char *entry, struct sv_err *e), char **out,
    struct sv_err *e)
{
	char **entries = NULL, *s, msg[sizeof e->msg];
	size_t n = 0, cap = 0, i, lineno = 0, len;
	const char *p = text, *nl;
	int rc = -1;

	for (; *p != '\0'; p = nl + 1) {
		lineno++;
		nl = strchr(p, '\n');
		len = nl ? (size_t)(nl - p) : strlen(p);
		s = sv_xmalloc(len + 1);
		memcpy(s, p, len);
		s[len] = '\0';
		if (lower)
			for (char *c = s; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
		char *stripped = sv_strip_dup(s);
		free(s);
		if (*stripped == '\0') {
			free(stripped);
		} else {
			if (n == cap)
				entries = sv_xrealloc(entries,
				    (cap = cap ? 2 * cap : 16) * sizeof *entries);
			entries[n++] = stripped;
			if (check(stripped, e) == -1) {
				memcpy(msg, e->msg, sizeof msg);
				sv_errf(e, 0, "%s:%zu: %s", path, lineno, msg);
				goto out;
			}
		}
		if (nl == NULL)
			break;
	}
	*out = join_sorted(entries, n);
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
	return rc;
}

static int
check_host(const char *entry, struct sv_err *e)
{
	return sv_valid_host(entry, e);
}

int
sv_config_normalize(const char *relpath, const char *text, char **out,
    struct sv_err *e)
{
	json_t *routes;

	*out = NULL;
	if (text == NULL)
		text = "";
	if (strlen(text) > SV_FILE_MAX)
		return sv_errf(e, 0, "%s: larger than %d bytes", relpath,
		    SV_FILE_MAX);
	if (strcmp(relpath, ROUTES_PATH) == 0) {
		if (sv_all_space(text))
			return sv_errf(e, 0, "%s: empty; a bottle without routes "
			    "has {\"routes\": []}", relpath);
		if (routes_load(text, relpath, &routes, e) == -1)
			return -1;
		*out = routes_dump(routes);
		json_decref(routes);
		return 0;
	}
	if (strcmp(relpath, ALLOWLIST_PATH) == 0)
		return lines_normalize(text, relpath, 1, check_host, out, e);
	if (strcmp(relpath, GITLEAKS_PATH) == 0)
		return lines_normalize(text, relpath, 0, sv_fingerprint_check,
		    out, e);
	if (strcmp(relpath, DOCKERFILE_PATH) == 0) {
		if (sv_all_space(text))
			return sv_errf(e, 0, "%s: empty", relpath);
		*out = sv_xstrdup(text);
		return 0;
	}
	if (strcmp(relpath, SV_POLICY_PATH) == 0) {
		/* Kept as written (comments are the operator's); checked. */
		struct sv_policy pol;

		if (sv_policy_parse(text, strlen(text), relpath, &pol, e) == -1)
			return -1;
		sv_policy_free(&pol);
		*out = sv_xstrdup(text);
		return 0;
	}
	return sv_errf(e, 0, "'%s' is not a config file of a bottle (egress/"
	    "routes.json, pipelock/allowlist, capability/Dockerfile, gitleaks/"
	    ".gitleaksignore, policy)", relpath);
}
