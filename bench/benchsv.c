/*
 * benchsv.c: the operator side of the benchmarks, through libsupervise:
 * an approval exactly as supervise-approve writes it (all fields, the
 * proposal's payload as final_file).
 */
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
