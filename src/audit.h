/*
 * audit.h: what the parts of the audit repository share: audit.c (open,
 * read, decisions and config edits), tree.c (reading main), commit.c
 * (the commit loop), ref.c (moving the branch), auditlock.c (our lock,
 * and locks left by the dead), message.c (commit
 * messages and identities), auditrecord.c (a decision's record), git.c
 * (libgit2's set-up) and operator.c.  Programs use supervise.h and
 * daemon.h.
 */
#ifndef SUPERVISE_AUDIT_H
#define SUPERVISE_AUDIT_H

#include <git2.h>

#include "daemon.h"
#include "git.h"
#include "odb.h"

#define LOCK_NAME	"supervise.lock"

struct sv_audit {
	git_repository *repo;
	struct sv_odb *odb;	/* the repository's objects: see odb.c */
	int defer_merges;	/* sv_audit_maintain merges off the lock */
	int defer_sync;		/* sv_audit_sync makes the branch durable */
	int unsynced;		/* the branch moved; not flushed since */
	int oldref;		/* OLDREF_NAME is ours to remove */
	char *branch;		/* the ref HEAD named at the last move */
	/* Made durable with the next commit's objects (sv_audit_durable). */
	struct sv_durable durable;
	char *path;
	int lockfd;
	char host[256];
	char self[128];		/* "PID START BOOT": this process, for mark_moving */
};

/* operator.c */
void host_name(char *buf, size_t n);
void mail_word(char *s);
int is_address(const char *s);

/* auditlock.c */
void identify_self(struct sv_audit *a);
void mark_moving(struct sv_audit *a, int moving);
void read_mark(struct sv_audit *a, char *mark, size_t n);
int left_by_dead_committer(const char *mark);
int oldest_lock(struct sv_audit *a, char **path, long *age,
    int *branch_lock);

/* ref.c */
void drop_old_ref(struct sv_audit *a);
int move_branch(struct sv_audit *a, const git_oid *old, const git_oid *id);
int ref_sync(struct sv_audit *a, struct sv_err *e);

/* message.c */
struct ident {
	char *name;
	char *email;
};

void ident_parse(const char *who, const char *host, struct ident *id);
void ident_free(struct ident *id);
void signature_at(git_signature *sig, struct ident *id, time_t when);
char *subject_line(const char *raw);
char *decision_message(const struct sv_proposal *p,
    const struct sv_response *r);
char *config_message(const char *subject, const char *body);

/* auditrecord.c */
char *record_path(const char *slug, const char *id);
int record_find(struct sv_audit *a, git_tree *tree, const char *slug,
    const char *id, char **rel, struct sv_err *e);
char *record_text(const struct sv_proposal *p, const struct sv_response *r);

/* commit.c */
#define PLAN_MAX 8

/* What one commit changes, built afresh on the tip of each attempt. */
struct plan {
	git_tree_update up[PLAN_MAX];
	char *paths[PLAN_MAX];
	size_t n;
	int nothing;		/* already done: no commit */
	int store_failed;	/* the repository failed, not the plan */
};

typedef int (*plan_fn)(struct sv_audit *a, git_tree *tip, void *ctx,
    struct plan *pl, struct sv_err *e);

/* One commit of a batch: what to change, by whom, and what became of it. */
enum { ITEM_TODO, ITEM_NEW, ITEM_DONE, ITEM_FAILED };
struct item {
	plan_fn build;
	void *ctx;
	const git_signature *author;
	const char *message;
	int state;		/* NEW: committed now; DONE: it already was */
	git_oid made;		/* NEW: the commit made */
	struct sv_err err;	/* ITEM_FAILED: why */
};

void plan_free(struct plan *pl);
int plan_put(struct sv_audit *a, struct plan *pl, const char *path,
    const char *text, struct sv_err *e);
int audit_commit(struct sv_audit *a, struct item *items, size_t n,
    struct sv_err *e);

/* applynote.c */
int decision_of(git_commit *c, struct sv_decision_commit *d);

/* tree.c */
int tree_entry(struct sv_audit *a, git_tree *tree, const char *path,
    git_tree_entry **ent, struct sv_err *e);
int audit_tip(struct sv_audit *a, git_commit **commit, git_tree **tree,
    struct sv_err *e);
int tree_text(struct sv_audit *a, git_tree *tree, const char *path,
    char **text, size_t *len, struct sv_err *e);

#endif
