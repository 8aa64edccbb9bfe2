/*
 * decide.c: the decisions a sidecar makes on its own, as responses in
 * the spool like an operator's: by a rule of the bottle's policy when a
 * proposal is filed, and by expiry when a proposal waited too long.
 *
 * Both only write a response; consume.c commits it and the sidecar
 * answers, so a rule's or an expiry's decision is committed once, runs
 * the same apply, and survives a crash the way any decision does.
 *
 * The policy is read from main when proposals are filed and parsed again
 * only when its blob changed; a policy that does not parse decides
 * nothing (the caller says so, loudly).  The expiry setting is kept in
 * the bottle's queue directory (`expire`), so the operator's tools can say
 * when a proposal will expire.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"

/* --- rules ---------------------------------------------------------------- */

void
sv_rules_free(struct sv_rules *r)
{
	sv_policy_free(&r->pol);
	free(r->error);
	memset(r, 0, sizeof *r);
}

int
sv_rules_refresh(struct sv_rules *r, struct sv_audit *a, const char *slug,
    struct sv_err *e)
{
	char *text, *label, hash[41];
	size_t len;
	struct sv_err why;

	/* Each filing looks at the blob's id; the text only when it changed. */
	if (sv_audit_blob_id(a, slug, SV_POLICY_PATH, hash, e) == -1)
		return -1;
	if (r->loaded && strcmp(hash, r->hash) == 0)
		return 0;
	if (sv_audit_read(a, slug, SV_POLICY_PATH, &text, &len, e) == -1)
		return -1;
	if (text != NULL)
		sv_blob_hash(text, len, hash);	/* what was read, if it moved */
	sv_rules_free(r);
	snprintf(r->hash, sizeof r->hash, "%s", hash);
	if (text != NULL) {
		label = sv_xasprintf("%s/%s", slug, SV_POLICY_PATH);
		if (sv_policy_parse(text, len, label, &r->pol, &why) == -1) {
			r->broken = 1;
			r->error = sv_xstrdup(why.msg);
		}
		free(label);
		free(text);
		if (sv_audit_last_change(a, slug, SV_POLICY_PATH, r->commit,
		    e) == -1) {
			sv_rules_free(r);
			return -1;
		}
	}
	r->loaded = 1;
	return 1;
}

int
sv_rules_decide(const struct sv_rules *r, const struct sv_proposal *p,
    struct sv_response *resp)
{
	const struct sv_rule *rule;
	struct timespec now;
	char when[64];
	int i;

	memset(resp, 0, sizeof *resp);
	if (!r->loaded || r->broken || r->pol.n == 0)
		return 0;
	i = sv_policy_match(&r->pol, p->tool, p->proposed_file, NULL);
	if (i < 0)
		return 0;
	rule = &r->pol.rules[i];
	clock_gettime(CLOCK_REALTIME, &now);
	/* NULL when p is not filed yet: sv_propose_decided fills it. */
	resp->proposal_id = p->id ? sv_xstrdup(p->id) : NULL;
	resp->status = rule->action;
	if (rule->action == SV_APPROVED)
		resp->final_file = sv_xstrdup(p->proposed_file);
	resp->rule = sv_xasprintf("%s/%s:%u: %s", p->bottle_slug,
	    SV_POLICY_PATH, rule->line, rule->text);
	resp->notes = sv_xasprintf("rule %s", resp->rule);
	resp->policy_commit = sv_xstrdup(r->commit);
	resp->decided_by = sv_xstrdup(SV_POLICY_AUTHOR);
	resp->decided_at = sv_xstrdup(sv_iso8601(&now, when, sizeof when));
	return 1;
}

/* --- expiry --------------------------------------------------------------- */

int
sv_parse_duration(const char *s, long *secs)
{
	char *end;
	long v, unit = 1;

	errno = 0;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (errno != 0 || v <= 0)
		return -1;
	switch (*end) {
	case '\0': case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > 3650L * 86400 / unit)
		return -1;
	*secs = v * unit;
	return 0;
}

void
sv_format_duration(long secs, char *buf, size_t n)
{
	if (secs % 86400 == 0)
		snprintf(buf, n, "%ldd", secs / 86400);
	else if (secs % 3600 == 0)
		snprintf(buf, n, "%ldh", secs / 3600);
	else if (secs % 60 == 0)
		snprintf(buf, n, "%ldm", secs / 60);
	else
		snprintf(buf, n, "%lds", secs);
}

void
sv_expiry_response(const char *id, long secs, struct sv_response *resp)
{
	struct timespec now;
	char when[64], d[32];

	memset(resp, 0, sizeof *resp);
	clock_gettime(CLOCK_REALTIME, &now);
	sv_format_duration(secs, d, sizeof d);
	resp->proposal_id = sv_xstrdup(id);
	resp->status = SV_REJECTED;
	resp->notes = sv_xasprintf("expired after %s", d);
	resp->decided_by = sv_xstrdup(SV_EXPIRY_AUTHOR);
	resp->decided_at = sv_xstrdup(sv_iso8601(&now, when, sizeof when));
}

time_t
sv_expires_at(const char *arrival, long secs)
{
	time_t t;

	if (secs <= 0 || arrival == NULL || sv_time_utc(arrival, &t, NULL) == -1)
		return (time_t)-1;
	return t + secs;
}

#define EXPIRE_TMP	"expire.tmp"

int
sv_spool_set_expire(struct sv_spool *s, long secs, struct sv_err *e)
{
	char line[32];
	int fd, n;

	if (secs <= 0) {
		if (unlinkat(s->dirfd, SV_EXPIRE_FILE, 0) == -1 &&
		    errno != ENOENT)
			return sv_errf(e, errno, "can't remove '%s/%s'",
			    s->path, SV_EXPIRE_FILE);
		return 0;
	}
	n = snprintf(line, sizeof line, "%ld\n", secs);
	unlinkat(s->dirfd, EXPIRE_TMP, 0);
	fd = openat(s->dirfd, EXPIRE_TMP, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1)
		return sv_errf(e, errno, "can't create '%s/%s'", s->path,
		    EXPIRE_TMP);
	if (sv_write_all(fd, line, (size_t)n) == -1 || fsync(fd) == -1) {
		sv_errf(e, errno, "can't write '%s/%s'", s->path, EXPIRE_TMP);
		close(fd);
		return -1;
	}
	close(fd);
	if (renameat(s->dirfd, EXPIRE_TMP, s->dirfd, SV_EXPIRE_FILE) == -1)
		return sv_errf(e, errno, "can't rename '%s/%s' to '%s'",
		    s->path, EXPIRE_TMP, SV_EXPIRE_FILE);
	if (fsync(s->dirfd) == -1)
		return sv_errf(e, errno, "can't sync '%s'", s->path);
	return 0;
}

int
sv_spool_expire(struct sv_spool *s, long *secs, struct sv_err *e)
{
	char *buf, *end;
	size_t len;
	long v;
	int fd;

	*secs = 0;
	fd = openat(s->dirfd, SV_EXPIRE_FILE, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 0 : sv_errf(e, errno,
		    "can't open '%s/%s'", s->path, SV_EXPIRE_FILE);
	if (sv_read_all(fd, SV_EXPIRE_FILE, 64, &buf, &len, e) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') ||
	    v <= 0) {
		free(buf);
		return sv_errf(e, 0, "'%s/%s' does not hold a number of seconds",
		    s->path, SV_EXPIRE_FILE);
	}
	free(buf);
	*secs = v;
	return 0;
}
