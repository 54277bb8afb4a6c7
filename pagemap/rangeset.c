#include "pagemap/rangeset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the doubling in reserve() and cap * sizeof free of overflow. */
#define RANGE_SET_MAX (SIZE_MAX / sizeof(struct range) / 2)
#define RANGE_SET_MIN_CAP 8

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static int reserve(struct range_set *s, size_t need)
{
	size_t cap = s->cap ? s->cap : RANGE_SET_MIN_CAP;
	struct range *r;

	if (need <= s->cap)
		return 0;
	if (need > RANGE_SET_MAX)
		goto nomem;
	while (cap < need)
		cap *= 2;
	r = realloc(s->r, cap * sizeof(*r));
	if (!r)
		goto nomem;
	s->r = r;
	s->cap = cap;
	return 0;
nomem:
	errno = ENOMEM;
	return -1;
}

/* Index of the first range with end >= addr, i.e. touching [addr, ...). */
static size_t first_end_from(const struct range_set *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[mid].end < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first range at or after lo with start > addr. */
static size_t first_start_after(const struct range_set *s, size_t lo,
				uint64_t addr)
{
	size_t hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Replace ranges [i, j) with k new ones. pieces must not point into s->r,
 * which reserve() may move.
 */
static int splice(struct range_set *s, size_t i, size_t j,
		  const struct range *pieces, size_t k)
{
	size_t n = s->n - (j - i) + k;

	if (reserve(s, n))
		return -1;
	memmove(s->r + i + k, s->r + j, (s->n - j) * sizeof(*s->r));
	memcpy(s->r + i, pieces, k * sizeof(*pieces));
	s->n = n;
	return 0;
}

/* Append assuming capacity and start >= start of the last range. */
static void push(struct range_set *s, uint64_t start, uint64_t end)
{
	struct range *last = s->n ? &s->r[s->n - 1] : NULL;

	if (last && start <= last->end) {
		last->end = max_u64(last->end, end);
		return;
	}
	s->r[s->n].start = start;
	s->r[s->n].end = end;
	s->n++;
}

void range_set_init(struct range_set *s)
{
	*s = (struct range_set)RANGE_SET_INIT;
}

void range_set_free(struct range_set *s)
{
	free(s->r);
	range_set_init(s);
}

void range_set_clear(struct range_set *s)
{
	s->n = 0;
}

int range_set_add(struct range_set *s, uint64_t start, uint64_t end)
{
	struct range merged;
	size_t i, j;

	if (start >= end)
		return 0;
	if (!s->n || start >= s->r[s->n - 1].start) {
		if (reserve(s, s->n + 1))
			return -1;
		push(s, start, end);
		return 0;
	}
	i = first_end_from(s, start);
	j = first_start_after(s, i, end);
	merged.start = start;
	merged.end = end;
	if (i < j) {
		merged.start = min_u64(start, s->r[i].start);
		merged.end = max_u64(end, s->r[j - 1].end);
	}
	return splice(s, i, j, &merged, 1);
}

int range_set_remove(struct range_set *s, uint64_t start, uint64_t end)
{
	struct range keep[2];
	size_t i, j, k = 0;

	if (start >= end)
		return 0;
	i = first_end_from(s, start + 1);
	j = first_start_after(s, i, end - 1);
	if (i == j)
		return 0;
	if (s->r[i].start < start)
		keep[k++] = (struct range){ s->r[i].start, start };
	if (s->r[j - 1].end > end)
		keep[k++] = (struct range){ end, s->r[j - 1].end };
	return splice(s, i, j, keep, k);
}

int range_set_union(struct range_set *dst, const struct range_set *src)
{
	struct range_set tmp = RANGE_SET_INIT;
	size_t i = 0, j = 0;

	if (!src->n || dst == src)
		return 0;
	if (reserve(&tmp, dst->n + src->n))
		return -1;
	while (i < dst->n || j < src->n) {
		const struct range *r;

		if (j == src->n ||
		    (i < dst->n && dst->r[i].start <= src->r[j].start))
			r = &dst->r[i++];
		else
			r = &src->r[j++];
		push(&tmp, r->start, r->end);
	}
	free(dst->r);
	*dst = tmp;
	return 0;
}

int range_set_intersect(struct range_set *out, const struct range_set *a,
			const struct range_set *b)
{
	size_t i = 0, j = 0;

	if (reserve(out, a->n + b->n))
		return -1;
	out->n = 0;
	while (i < a->n && j < b->n) {
		uint64_t start = max_u64(a->r[i].start, b->r[j].start);
		uint64_t end = min_u64(a->r[i].end, b->r[j].end);

		if (start < end)
			push(out, start, end);
		if (a->r[i].end < b->r[j].end)
			i++;
		else
			j++;
	}
	return 0;
}

/*
 * Each piece ends at a b start inside some a range or at an a end, so
 * there are at most a->n + b->n of them.
 */
int range_set_subtract(struct range_set *out, const struct range_set *a,
		       const struct range_set *b)
{
	size_t i, j = 0;

	if (reserve(out, a->n + b->n))
		return -1;
	out->n = 0;
	for (i = 0; i < a->n; i++) {
		uint64_t cur = a->r[i].start, end = a->r[i].end;
		size_t k;

		while (j < b->n && b->r[j].end <= cur)
			j++;
		for (k = j; k < b->n && b->r[k].start < end; k++) {
			if (b->r[k].start > cur)
				push(out, cur, b->r[k].start);
			cur = b->r[k].end;
		}
		if (cur < end)
			push(out, cur, end);
	}
	return 0;
}

int range_set_copy(struct range_set *dst, const struct range_set *src)
{
	if (dst == src)
		return 0;
	if (reserve(dst, src->n))
		return -1;
	if (src->n)
		memcpy(dst->r, src->r, src->n * sizeof(*src->r));
	dst->n = src->n;
	return 0;
}

bool range_set_contains(const struct range_set *s, uint64_t addr)
{
	size_t k = first_start_after(s, 0, addr);

	return k && s->r[k - 1].end > addr;
}

bool range_set_covers(const struct range_set *s, uint64_t start, uint64_t end)
{
	/* non-adjacent ranges: all of [start, end) lies in the one range holding start */
	size_t k = first_start_after(s, 0, start);

	return start >= end || (k && s->r[k - 1].end >= end);
}

bool range_set_overlaps(const struct range_set *s, uint64_t start,
			uint64_t end)
{
	size_t k;

	if (start >= end)
		return false;
	k = first_start_after(s, 0, end - 1);
	return k && s->r[k - 1].end > start;
}

uint64_t range_set_bytes(const struct range_set *s)
{
	uint64_t sum = 0;

	range_set_for_each(r, s)
		sum += r->end - r->start;
	return sum;
}

uint64_t range_set_pages(const struct range_set *s)
{
	uint64_t sum = 0;

	range_set_for_each(r, s) {
		uint64_t len = r->end - r->start;

		sum += len / RANGESET_PAGE_SIZE + !!(len % RANGESET_PAGE_SIZE);
	}
	return sum;
}

bool range_set_equal(const struct range_set *a, const struct range_set *b)
{
	if (a->n != b->n)
		return false;
	return !a->n || !memcmp(a->r, b->r, a->n * sizeof(*a->r));
}
