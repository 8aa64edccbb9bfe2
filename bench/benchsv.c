/*
 * benchsv.c: the operator side of the benchmarks, through libsupervise:
 * an approval exactly as supervise-approve writes it (all fields, the
 * proposal's payload as final_file).
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"
#include "supervise.h"

/* Fill r (borrowing from p) with an approval of p made now. */
static void
approval_of(const struct sv_proposal *p, struct sv_response *r, char *when,
    size_t n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	r->proposal_id = p->id;
	r->status = SV_APPROVED;
	r->notes = (char *)"benchmark";
	r->final_file = p->proposed_file;
	r->decided_by = (char *)"Bench Operator <bench@localhost>";
	r->decided_at = sv_iso8601(&ts, when, n);
}

static int
read_proposal(struct sv_spool *sp, const char *id, struct sv_proposal *p,
    struct sv_err *e)
{
	struct sv_entry ent;
	int r = sv_find_proposal(sp, id, &ent, e);	/* 1: found */

	if (r < 0)
		return -1;
	if (r == 0)
		return sv_errf(e, 0, "no proposal '%s' in '%s'", id, sp->path);
	return sv_proposal_read(ent.where == SV_NEW ? sp->pnew : sp->pcur,
	    ent.name, ent.name, p, e);
}

char *
bench_approval_text(struct sv_spool *sp, const char *id, struct sv_err *e)
{
	struct sv_proposal p = { 0 };
	struct sv_response r = { 0 };
	char when[64], *text;

	if (read_proposal(sp, id, &p, e) != 0)
		return NULL;
	approval_of(&p, &r, when, sizeof when);
	text = sv_response_dump(&r);
	sv_proposal_free(&p);
	return text;
}

int
bench_approve(struct sv_spool *sp, const char *id, struct sv_err *e)
{
	struct sv_proposal p = { 0 };
	struct sv_response r = { 0 };
	char when[64];
	int rc;

	if (read_proposal(sp, id, &p, e) != 0)
		return -1;
	approval_of(&p, &r, when, sizeof when);
	rc = sv_respond(sp, &r, e);
	sv_proposal_free(&p);
	return rc;
}

long
bench_approve_many(struct sv_spool *sp, char **ids, size_t n,
    const char *prog)
{
	struct sv_proposal *p = sv_xmalloc((n ? n : 1) * sizeof *p);
	struct sv_response *r = sv_xmalloc((n ? n : 1) * sizeof *r);
	const struct sv_response **v = sv_xmalloc((n ? n : 1) * sizeof *v);
	struct sv_err *errs = sv_xmalloc((n ? n : 1) * sizeof *errs);
	char (*when)[64] = sv_xmalloc((n ? n : 1) * sizeof *when);
	int *ok = sv_xmalloc((n ? n : 1) * sizeof *ok);
	size_t k = 0;
	long done;

	for (size_t i = 0; i < n; i++) {
		struct sv_err e;

		memset(&p[k], 0, sizeof p[k]);
		memset(&r[k], 0, sizeof r[k]);
		if (read_proposal(sp, ids[i], &p[k], &e) != 0) {
			if (sv_decided(sp, ids[i], &e) != 1)
				fprintf(stderr, "%s: %s\n", prog, e.msg);
			continue;
		}
		approval_of(&p[k], &r[k], when[k], sizeof when[k]);
		v[k] = &r[k];
		k++;
	}
	done = (long)sv_respond_many(sp, v, k, ok, errs);
	for (size_t i = 0; i < k; i++) {
		if (!ok[i] && errs[i].errnum != EEXIST)
			fprintf(stderr, "%s: %s\n", prog, errs[i].msg);
		sv_proposal_free(&p[i]);
	}
	free(p);
	free(r);
	free(v);
	free(errs);
	free(when);
	free(ok);
	return done;
}
