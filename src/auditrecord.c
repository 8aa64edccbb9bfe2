/*
 * auditrecord.c: a decision's record in the audit repository: where it
 * lives in the tree (both layouts) and its text, the proposal and the
 * response as ASCII JSON.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"

/*
 * Where the record of a decision lives, under its bottle's directory:
 * decisions/X/Y/Z/W/ID.json, the first four hex digits of the blob id of
 * the id, one a level.  65,536 leaves, like the two levels of 256 that
 * records had first (decisions/XX/YY/ID.json, still read: see
 * record_find), but a commit rewrites four trees of at most 16 entries
 * above its leaf instead of two of up to 256, which libgit2 built entry
 * by entry and hashed, and the pack stored, for every decision.
 */
static char *
record_relpath(const char *id)
{
	char hex[41];

	sv_blob_hash(id, strlen(id), hex);
	return sv_xasprintf("decisions/%c/%c/%c/%c/%s.json", hex[0], hex[1],
	    hex[2], hex[3], id);
}

/* The first layout: decisions/XX/YY/ID.json. */
static char *
record_relpath_v1(const char *id)
{
	char hex[41];

	sv_blob_hash(id, strlen(id), hex);
	return sv_xasprintf("decisions/%.2s/%.2s/%s.json", hex, hex + 2, id);
}

/* SLUG/decisions/X/Y/Z/W/ID.json: {"proposal": ..., "response": ...} */
char *
record_path(const char *slug, const char *id)
{
	char *rel = record_relpath(id), *path;

	path = sv_xasprintf("%s/%s", slug, rel);
	free(rel);
	return path;
}

/*
 * Is the decision on `id` recorded in `tree`, at either layout?  1 (with
 * its path under SLUG/ in *rel when rel is not NULL), 0, or -1.
 */
int
record_find(struct sv_audit *a, git_tree *tree, const char *slug,
    const char *id, char **rel, struct sv_err *e)
{
	char *(*const layouts[])(const char *) = { record_relpath,
	    record_relpath_v1 };
	int rc = 0;

	for (size_t i = 0; i < 2 && rc == 0; i++) {
		char *r = layouts[i](id), *path = sv_xasprintf("%s/%s", slug, r);
		git_tree_entry *ent;

		rc = tree_entry(a, tree, path, &ent, e);
		git_tree_entry_free(ent);
		free(path);
		if (rc == 1 && rel != NULL)
			*rel = r;
		else
			free(r);
	}
	return rc;
}

char *
record_text(const struct sv_proposal *p, const struct sv_response *r)
{
	json_t *pj = sv_proposal_json(p), *rj = sv_response_json(r), *j;
	char *s, *out, *o;
	const char *q;
	size_t ndel;

	/* NULL only for text that is not valid UTF-8: never from the loader. */
	if (pj == NULL || rj == NULL) {
		json_decref(pj);
		json_decref(rj);
		return NULL;
	}
	/*
	 * ASCII only: `git show` and `git log -p` print the record raw, and
	 * agent text may carry bidi or invisible characters; as \uXXXX they
	 * are visible (jansson escapes C0 controls, but not DEL, which JSON
	 * allows raw: a DEL byte can only be inside a string, so it becomes
	 * \u007f here).
	 */
	j = json_pack("{s:o, s:o}", "proposal", pj, "response", rj);
	if (j == NULL || (s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS |
	    JSON_ENSURE_ASCII)) == NULL)
		sv_die(111, "out of memory");
	ndel = 0;
	for (q = s; *q != '\0'; q++)
		ndel += *q == 0x7f;
	out = sv_xmalloc(strlen(s) + 5 * ndel + 2);
	for (q = s, o = out; *q != '\0'; q++) {
		if (*q == 0x7f) {
			memcpy(o, "\\u007f", 6);
			o += 6;
		} else {
			*o++ = *q;
		}
	}
	*o++ = '\n';
	*o = '\0';
	free(s);
	json_decref(j);
	return out;
}
