/*
 * tree.c: reading main in the audit repository: its tip commit and
 * tree, and a file's entry or text in a tree.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"

/* The commit main points at, and its tree; both NULL while main is unborn. */
int
audit_tip(struct sv_audit *a, git_commit **commit, git_tree **tree,
    struct sv_err *e)
{
	git_oid oid;
	int rc;

	*commit = NULL;
	*tree = NULL;
	rc = git_reference_name_to_id(&oid, a->repo, "HEAD");
	if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH)
		return 0;
	if (rc < 0)
		return sv_git_fail(e, rc, "can't read HEAD of '%s'", a->path);
	if ((rc = git_commit_lookup(commit, a->repo, &oid)) < 0)
		return sv_git_fail(e, rc, "can't read the tip of '%s'", a->path);
	if ((rc = git_commit_tree(tree, *commit)) < 0) {
		git_commit_free(*commit);
		*commit = NULL;
		return sv_git_fail(e, rc, "can't read the tree of the tip of '%s'",
		    a->path);
	}
	return 0;
}

/* The entry at `path` in `tree` (*ent, to free): 1; 0 when absent; -1. */
int
tree_entry(struct sv_audit *a, git_tree *tree, const char *path,
    git_tree_entry **ent, struct sv_err *e)
{
	int rc;

	*ent = NULL;
	if (tree == NULL)
		return 0;
	rc = git_tree_entry_bypath(ent, tree, path);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return sv_git_fail(e, rc, "can't look up '%s' in '%s'", path,
		    a->path);
	return 1;
}

/* Text of the file at `path` in `tree`; *text NULL when absent. */
int
tree_text(struct sv_audit *a, git_tree *tree, const char *path, char **text,
    size_t *len, struct sv_err *e)
{
	git_tree_entry *ent = NULL;
	git_blob *blob = NULL;
	const char *raw;
	size_t size;
	int rc;

	*text = NULL;
	if (len != NULL)
		*len = 0;
	if ((rc = tree_entry(a, tree, path, &ent, e)) != 1)
		return rc;
	if (git_tree_entry_type(ent) != GIT_OBJECT_BLOB) {
		git_tree_entry_free(ent);
		return sv_errf(e, 0, "'%s' in '%s' is not a file", path,
		    a->path);
	}
	rc = git_blob_lookup(&blob, a->repo, git_tree_entry_id(ent));
	git_tree_entry_free(ent);
	if (rc < 0)
		return sv_git_fail(e, rc, "can't read '%s' in '%s'", path, a->path);
	size = (size_t)git_blob_rawsize(blob);
	raw = git_blob_rawcontent(blob);
	if (memchr(raw, '\0', size) != NULL) {
		git_blob_free(blob);
		return sv_errf(e, 0, "'%s' in '%s' holds a NUL byte", path,
		    a->path);
	}
	*text = sv_xmalloc(size + 1);
	memcpy(*text, raw, size);
	(*text)[size] = '\0';
	if (len != NULL)
		*len = size;
	git_blob_free(blob);
	return 0;
}
