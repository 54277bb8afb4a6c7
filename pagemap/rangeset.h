#ifndef PAGEMAP_RANGESET_H
#define PAGEMAP_RANGESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Only range_set_pages() cares; everything else works on raw bytes. */
#define RANGESET_PAGE_SIZE 4096ULL

/* Half-open so that adjacent ranges share an endpoint and merge trivially. */
struct range {
	uint64_t start, end;
};

/*
 * Kept sorted, disjoint and non-adjacent, so every set has exactly one
 * representation: lookups can binary search and equality is a memcmp.
 */
struct range_set {
	struct range *r;
	size_t n, cap;
};

#define RANGE_SET_INIT { NULL, 0, 0 }

/*
 * Functions returning int allocate: 0 on success, -1 with errno = ENOMEM
 * on failure, in which case the set is left untouched so callers can
 * report and carry on.
 */
void range_set_init(struct range_set *s);
/* Leaves an empty, valid set so it can be reused without re-init. */
void range_set_free(struct range_set *s);
/* Keeps the storage for the next round of tracking. */
void range_set_clear(struct range_set *s);
/* Callers mostly add in ascending order, so appending is O(1) amortized. */
int range_set_add(struct range_set *s, uint64_t start, uint64_t end);
/* Can split a range, hence may need to allocate. */
int range_set_remove(struct range_set *s, uint64_t start, uint64_t end);
int range_set_union(struct range_set *dst, const struct range_set *src);
/* out is built while a and b are read, so it must not alias either. */
int range_set_intersect(struct range_set *out, const struct range_set *a,
			const struct range_set *b);
int range_set_subtract(struct range_set *out, const struct range_set *a,
		       const struct range_set *b);
int range_set_copy(struct range_set *dst, const struct range_set *src);
bool range_set_contains(const struct range_set *s, uint64_t addr);
/* Is all of [start, end) in the set? */
bool range_set_covers(const struct range_set *s, uint64_t start, uint64_t end);
bool range_set_overlaps(const struct range_set *s, uint64_t start,
			uint64_t end);
uint64_t range_set_bytes(const struct range_set *s);
/* A partial page still has to be transferred whole. */
uint64_t range_set_pages(const struct range_set *s);
bool range_set_equal(const struct range_set *a, const struct range_set *b);

static inline const struct range *range_set_begin(const struct range_set *s)
{
	return s->r;
}

/* An empty set may have no storage, and NULL + 0 is undefined. */
static inline const struct range *range_set_end(const struct range_set *s)
{
	return s->n ? s->r + s->n : s->r;
}

#define range_set_for_each(it, s)					\
	for (const struct range *it = range_set_begin(s);		\
	     it != range_set_end(s); it++)

#endif /* PAGEMAP_RANGESET_H */
