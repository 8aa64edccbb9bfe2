/*
 * budget.c: the memory the sidecar lends to request bodies, in total.
 *
 * Each connection may send up to SV_MCP_BODY_MAX bytes of body, and the
 * daemon holds a body whole before it parses it; without a total, many
 * connections that each send most of a body and then trickle (or stop)
 * hold gigabytes.  A request takes its share when its length is known
 * (Content-Length) or as a chunked body grows, and gives it back once
 * what it holds of the body is freed.  Past the limit a request is
 * refused at once.  Counters only, safe from any thread: bodies arrive
 * on libmicrohttpd's thread, and the spool thread frees what a waiting
 * call still holds.
 */
#include <time.h>

#include "daemon.h"

void
sv_budget_init(struct sv_budget *b, size_t limit)
{
	b->limit = limit;
	b->used = 0;
}

int
sv_budget_take(struct sv_budget *b, size_t n)
{
	size_t used = __atomic_load_n(&b->used, __ATOMIC_RELAXED);

	do {
		if (n > b->limit || used > b->limit - n)
			return -1;
	} while (!__atomic_compare_exchange_n(&b->used, &used, used + n, 1,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return 0;
}

void
sv_budget_give(struct sv_budget *b, size_t n)
{
	if (n > 0)
		__atomic_sub_fetch(&b->used, n, __ATOMIC_RELAXED);
}

size_t
sv_budget_used(const struct sv_budget *b)
{
	return __atomic_load_n(&b->used, __ATOMIC_RELAXED);
}

/*
 * Count an event; 1 when it is time to log them, at most once a minute,
 * so that a flood of connections makes one line, not one each: *n gets
 * the count since the last line.
 */
int
sv_ratelog(struct sv_ratelog *rl, unsigned long *n)
{
	time_t now = time(NULL), last;

	__atomic_add_fetch(&rl->count, 1, __ATOMIC_RELAXED);
	last = __atomic_load_n(&rl->last, __ATOMIC_RELAXED);
	if (now - last < 60 || !__atomic_compare_exchange_n(&rl->last,
	    &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return 0;
	*n = __atomic_exchange_n(&rl->count, 0, __ATOMIC_RELAXED);
	return 1;
}
