#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "pagemap/rangeset.h"

#define PG RANGESET_PAGE_SIZE
#define P(x) ((uint64_t)(x) * PG)
#define R(a, b) { P(a), P(b) }

#define expect_ranges(s, ...)						\
	check_ranges((s), (const struct range[]){ __VA_ARGS__ },	\
		     sizeof((const struct range[]){ __VA_ARGS__ }) /	\
		     sizeof(struct range))

static void check_ranges(const struct range_set *s, const struct range *exp,
			 size_t n)
{
	size_t i;

	assert_int_equal(s->n, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(s->r[i].start, exp[i].start);
		assert_int_equal(s->r[i].end, exp[i].end);
	}
}

/* Builds a set from page pairs, relying only on range_set_add(). */
static void build(struct range_set *s, const uint64_t *pages, size_t n)
{
	size_t i;

	for (i = 0; i < n; i += 2)
		assert_int_equal(range_set_add(s, P(pages[i]), P(pages[i + 1])), 0);
}

#define BUILD(s, ...)							\
	build((s), (const uint64_t[]){ __VA_ARGS__ },			\
	      sizeof((const uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t))

static void test_init_empty(void **state)
{
	struct range_set s = RANGE_SET_INIT;
	struct range_set t;

	(void)state;
	range_set_init(&t);
	assert_int_equal(s.n, 0);
	assert_int_equal(t.n, 0);
	assert_null(t.r);
	assert_true(range_set_equal(&s, &t));
	assert_int_equal(range_set_bytes(&s), 0);
	assert_int_equal(range_set_pages(&s), 0);
	assert_false(range_set_contains(&s, 0));
	assert_false(range_set_overlaps(&s, 0, UINT64_MAX));
	range_set_free(&s);
	assert_null(s.r);
	assert_int_equal(s.cap, 0);
}

static void test_add_in_order(void **state)
{
	struct range_set s = RANGE_SET_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < 100; i++)
		assert_int_equal(range_set_add(&s, P(2 * i), P(2 * i + 1)), 0);
	assert_int_equal(s.n, 100);
	for (i = 0; i < 100; i++) {
		assert_int_equal(s.r[i].start, P(2 * i));
		assert_int_equal(s.r[i].end, P(2 * i + 1));
	}
	range_set_free(&s);
}

static void test_add_out_of_order(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 10, 11, 2, 3, 6, 7, 0, 1, 14, 15, 4, 5);
	expect_ranges(&s, R(0, 1), R(2, 3), R(4, 5), R(6, 7), R(10, 11),
		      R(14, 15));
	range_set_free(&s);
}

static void test_add_coalesce(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 0, 2, 2, 4);		/* adjacent after */
	expect_ranges(&s, R(0, 4));
	BUILD(&s, 10, 12, 8, 10);	/* adjacent before, out of order */
	expect_ranges(&s, R(0, 4), R(8, 12));
	BUILD(&s, 3, 5);		/* overlaps tail */
	expect_ranges(&s, R(0, 5), R(8, 12));
	BUILD(&s, 7, 9);		/* overlaps head */
	expect_ranges(&s, R(0, 5), R(7, 12));
	BUILD(&s, 5, 7);		/* bridges the gap exactly */
	expect_ranges(&s, R(0, 12));
	BUILD(&s, 1, 3);		/* already covered */
	expect_ranges(&s, R(0, 12));
	BUILD(&s, 12, 13, 11, 14);	/* grows the last range */
	expect_ranges(&s, R(0, 14));
	range_set_free(&s);
}

static void test_add_unaligned(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	assert_int_equal(range_set_add(&s, 10, 20), 0);
	assert_int_equal(range_set_add(&s, 1, 5), 0);
	assert_int_equal(range_set_add(&s, 5, 10), 0);
	expect_ranges(&s, { 1, 20 });
	assert_int_equal(range_set_add(&s, UINT64_MAX - 1, UINT64_MAX), 0);
	expect_ranges(&s, { 1, 20 }, { UINT64_MAX - 1, UINT64_MAX });
	assert_true(range_set_contains(&s, UINT64_MAX - 1));
	assert_false(range_set_contains(&s, UINT64_MAX));
	range_set_free(&s);
}

static void test_add_swallows_many(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 20, 21);
	BUILD(&s, 2, 14);
	expect_ranges(&s, R(0, 1), R(2, 14), R(15, 16), R(20, 21));
	BUILD(&s, 1, 15);
	expect_ranges(&s, R(0, 16), R(20, 21));
	BUILD(&s, 0, 100);
	expect_ranges(&s, R(0, 100));
	range_set_free(&s);
}

static void test_add_empty(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	assert_int_equal(range_set_add(&s, P(5), P(5)), 0);
	assert_int_equal(range_set_add(&s, P(6), P(5)), 0);
	assert_int_equal(s.n, 0);
	assert_null(s.r);
	BUILD(&s, 1, 2);
	assert_int_equal(range_set_add(&s, P(9), P(3)), 0);
	expect_ranges(&s, R(1, 2));
	range_set_free(&s);
}

static void test_remove_split(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 0, 10, 20, 30);
	assert_int_equal(range_set_remove(&s, P(3), P(5)), 0);
	expect_ranges(&s, R(0, 3), R(5, 10), R(20, 30));
	assert_int_equal(range_set_remove(&s, P(25), P(26)), 0);
	expect_ranges(&s, R(0, 3), R(5, 10), R(20, 25), R(26, 30));
	range_set_free(&s);
}

static void test_remove_trim(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 0, 10, 20, 30);
	assert_int_equal(range_set_remove(&s, P(8), P(22)), 0);
	expect_ranges(&s, R(0, 8), R(22, 30));
	assert_int_equal(range_set_remove(&s, 0, P(1)), 0);
	expect_ranges(&s, R(1, 8), R(22, 30));
	assert_int_equal(range_set_remove(&s, P(29), P(40)), 0);
	expect_ranges(&s, R(1, 8), R(22, 29));
	range_set_free(&s);
}

static void test_remove_whole(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18);
	assert_int_equal(range_set_remove(&s, P(4), P(6)), 0);
	expect_ranges(&s, R(0, 2), R(8, 10), R(12, 14), R(16, 18));
	assert_int_equal(range_set_remove(&s, P(7), P(15)), 0);
	expect_ranges(&s, R(0, 2), R(16, 18));
	assert_int_equal(range_set_remove(&s, P(1), P(17)), 0);
	expect_ranges(&s, R(0, 1), R(17, 18));
	assert_int_equal(range_set_remove(&s, 0, UINT64_MAX), 0);
	assert_int_equal(s.n, 0);
	range_set_free(&s);
}

static void test_remove_noop(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	assert_int_equal(range_set_remove(&s, P(0), P(10)), 0);
	assert_int_equal(s.n, 0);
	BUILD(&s, 2, 4, 8, 10);
	assert_int_equal(range_set_remove(&s, P(4), P(8)), 0);
	assert_int_equal(range_set_remove(&s, P(0), P(2)), 0);
	assert_int_equal(range_set_remove(&s, P(10), P(20)), 0);
	assert_int_equal(range_set_remove(&s, P(3), P(3)), 0);
	assert_int_equal(range_set_remove(&s, P(9), P(3)), 0);
	expect_ranges(&s, R(2, 4), R(8, 10));
	range_set_free(&s);
}

static void test_clear(void **state)
{
	struct range_set s = RANGE_SET_INIT;
	const struct range *storage;

	(void)state;
	BUILD(&s, 0, 1, 2, 3);
	storage = s.r;
	range_set_clear(&s);
	assert_int_equal(s.n, 0);
	assert_ptr_equal(s.r, storage);
	assert_true(s.cap >= 2);
	BUILD(&s, 5, 6);
	expect_ranges(&s, R(5, 6));
	range_set_free(&s);
}

static void test_union(void **state)
{
	struct range_set a = RANGE_SET_INIT, b = RANGE_SET_INIT;
	struct range_set e = RANGE_SET_INIT;

	(void)state;
	BUILD(&a, 0, 2, 10, 12, 20, 22);
	BUILD(&b, 2, 4, 6, 8, 11, 21, 30, 31);
	assert_int_equal(range_set_union(&a, &b), 0);
	expect_ranges(&a, R(0, 4), R(6, 8), R(10, 22), R(30, 31));
	expect_ranges(&b, R(2, 4), R(6, 8), R(11, 21), R(30, 31));

	assert_int_equal(range_set_union(&a, &e), 0);
	expect_ranges(&a, R(0, 4), R(6, 8), R(10, 22), R(30, 31));
	assert_int_equal(range_set_union(&e, &b), 0);
	assert_true(range_set_equal(&e, &b));
	assert_int_equal(range_set_union(&a, &a), 0);
	expect_ranges(&a, R(0, 4), R(6, 8), R(10, 22), R(30, 31));
	range_set_free(&a);
	range_set_free(&b);
	range_set_free(&e);
}

static void test_intersect(void **state)
{
	struct range_set a = RANGE_SET_INIT, b = RANGE_SET_INIT;
	struct range_set out = RANGE_SET_INIT;

	(void)state;
	BUILD(&a, 0, 10, 20, 30, 40, 50);
	BUILD(&b, 5, 25, 28, 29, 30, 40, 45, 46, 49, 60);
	assert_int_equal(range_set_intersect(&out, &a, &b), 0);
	expect_ranges(&out, R(5, 10), R(20, 25), R(28, 29), R(45, 46),
		      R(49, 50));
	assert_int_equal(range_set_intersect(&out, &b, &a), 0);
	expect_ranges(&out, R(5, 10), R(20, 25), R(28, 29), R(45, 46),
		      R(49, 50));
	range_set_free(&a);
	range_set_free(&b);
	range_set_free(&out);
}

static void test_intersect_edge(void **state)
{
	struct range_set a = RANGE_SET_INIT, b = RANGE_SET_INIT;
	struct range_set e = RANGE_SET_INIT, out = RANGE_SET_INIT;

	(void)state;
	BUILD(&a, 0, 2, 4, 6);
	BUILD(&b, 2, 4, 6, 8);
	BUILD(&out, 100, 101);		/* stale contents get overwritten */
	assert_int_equal(range_set_intersect(&out, &a, &b), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(range_set_intersect(&out, &a, &e), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(range_set_intersect(&out, &e, &a), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(range_set_intersect(&out, &e, &e), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(range_set_intersect(&out, &a, &a), 0);
	expect_ranges(&out, R(0, 2), R(4, 6));
	range_set_free(&a);
	range_set_free(&b);
	range_set_free(&out);
}

static void test_subtract(void **state)
{
	struct range_set a = RANGE_SET_INIT, b = RANGE_SET_INIT;
	struct range_set out = RANGE_SET_INIT;

	(void)state;
	BUILD(&a, 0, 10, 20, 30, 40, 50, 60, 70);
	BUILD(&b, 2, 3, 5, 6, 9, 21, 25, 26, 29, 45, 70, 80);
	assert_int_equal(range_set_subtract(&out, &a, &b), 0);
	expect_ranges(&out, R(0, 2), R(3, 5), R(6, 9), R(21, 25), R(26, 29),
		      R(45, 50), R(60, 70));
	assert_int_equal(range_set_subtract(&out, &b, &a), 0);
	expect_ranges(&out, R(10, 20), R(30, 40), R(70, 80));
	range_set_free(&a);
	range_set_free(&b);
	range_set_free(&out);
}

static void test_subtract_edge(void **state)
{
	struct range_set a = RANGE_SET_INIT, b = RANGE_SET_INIT;
	struct range_set e = RANGE_SET_INIT, out = RANGE_SET_INIT;

	(void)state;
	BUILD(&a, 0, 2, 4, 6);
	BUILD(&b, 2, 4, 6, 8);
	BUILD(&out, 100, 101);
	assert_int_equal(range_set_subtract(&out, &a, &e), 0);
	expect_ranges(&out, R(0, 2), R(4, 6));
	assert_int_equal(range_set_subtract(&out, &e, &a), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(range_set_subtract(&out, &e, &e), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(range_set_subtract(&out, &a, &a), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(range_set_subtract(&out, &a, &b), 0);
	expect_ranges(&out, R(0, 2), R(4, 6));
	BUILD(&b, 0, 100);
	assert_int_equal(range_set_subtract(&out, &a, &b), 0);
	assert_int_equal(out.n, 0);
	range_set_free(&a);
	range_set_free(&b);
	range_set_free(&out);
}

static void test_contains(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 1, 2, 4, 6);
	assert_false(range_set_contains(&s, 0));
	assert_false(range_set_contains(&s, P(1) - 1));
	assert_true(range_set_contains(&s, P(1)));
	assert_true(range_set_contains(&s, P(2) - 1));
	assert_false(range_set_contains(&s, P(2)));
	assert_false(range_set_contains(&s, P(4) - 1));
	assert_true(range_set_contains(&s, P(4)));
	assert_true(range_set_contains(&s, P(5)));
	assert_true(range_set_contains(&s, P(6) - 1));
	assert_false(range_set_contains(&s, P(6)));
	assert_false(range_set_contains(&s, UINT64_MAX));
	range_set_free(&s);
}

static void test_overlaps(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 2, 4, 8, 10);
	assert_false(range_set_overlaps(&s, 0, P(2)));
	assert_true(range_set_overlaps(&s, 0, P(2) + 1));
	assert_true(range_set_overlaps(&s, P(3), P(3) + 1));
	assert_true(range_set_overlaps(&s, P(4) - 1, P(8)));
	assert_false(range_set_overlaps(&s, P(4), P(8)));
	assert_true(range_set_overlaps(&s, P(4), P(8) + 1));
	assert_true(range_set_overlaps(&s, 0, UINT64_MAX));
	assert_true(range_set_overlaps(&s, P(1), P(11)));
	assert_false(range_set_overlaps(&s, P(10), UINT64_MAX));
	assert_false(range_set_overlaps(&s, P(3), P(3)));
	assert_false(range_set_overlaps(&s, P(9), P(3)));
	range_set_free(&s);
}

static void test_bytes_pages(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 0, 3, 10, 11);
	assert_int_equal(range_set_bytes(&s), P(4));
	assert_int_equal(range_set_pages(&s), 4);
	assert_int_equal(range_set_add(&s, P(20), P(20) + 1), 0);
	assert_int_equal(range_set_add(&s, P(30) + 5, P(32) + 5), 0);
	assert_int_equal(range_set_bytes(&s), P(6) + 1);
	assert_int_equal(range_set_pages(&s), 7);
	range_set_free(&s);
}

static void test_equal(void **state)
{
	struct range_set a = RANGE_SET_INIT, b = RANGE_SET_INIT;
	struct range_set e = RANGE_SET_INIT;

	(void)state;
	BUILD(&a, 0, 2, 4, 6);
	BUILD(&b, 4, 6, 1, 2, 0, 1);
	assert_true(range_set_equal(&a, &b));
	assert_true(range_set_equal(&a, &a));
	assert_false(range_set_equal(&a, &e));
	assert_false(range_set_equal(&e, &a));
	BUILD(&b, 6, 7);
	assert_false(range_set_equal(&a, &b));
	BUILD(&a, 6, 7);
	assert_true(range_set_equal(&a, &b));
	assert_int_equal(range_set_remove(&b, P(0), P(1)), 0);
	BUILD(&b, 0, 1, 9, 10);
	assert_false(range_set_equal(&a, &b));
	range_set_clear(&a);
	assert_true(range_set_equal(&a, &e));
	range_set_free(&a);
	range_set_free(&b);
}

static void test_copy(void **state)
{
	struct range_set a = RANGE_SET_INIT, b = RANGE_SET_INIT;
	struct range_set e = RANGE_SET_INIT;

	(void)state;
	BUILD(&a, 0, 2, 4, 6, 8, 10);
	assert_int_equal(range_set_copy(&b, &a), 0);
	assert_true(range_set_equal(&a, &b));
	assert_ptr_not_equal(a.r, b.r);
	BUILD(&a, 2, 4);
	expect_ranges(&b, R(0, 2), R(4, 6), R(8, 10));
	assert_int_equal(range_set_copy(&a, &a), 0);
	expect_ranges(&a, R(0, 6), R(8, 10));
	assert_int_equal(range_set_copy(&b, &e), 0);
	assert_int_equal(b.n, 0);
	range_set_free(&a);
	range_set_free(&b);
}

static void test_iterate(void **state)
{
	static const struct range exp[] = { R(1, 2), R(3, 5), R(7, 8) };
	struct range_set s = RANGE_SET_INIT;
	size_t i = 0;

	(void)state;
	range_set_for_each(r, &s)
		fail();
	BUILD(&s, 7, 8, 1, 2, 3, 5);
	range_set_for_each(r, &s) {
		assert_true(i < 3);
		assert_int_equal(r->start, exp[i].start);
		assert_int_equal(r->end, exp[i].end);
		i++;
	}
	assert_int_equal(i, 3);
	assert_int_equal(range_set_end(&s) - range_set_begin(&s), 3);
	range_set_free(&s);
}

/*
 * A set claiming more ranges than could ever be allocated makes the size
 * check fail before its storage is read, so no allocator hooks are needed.
 */
static void test_nomem(void **state)
{
	struct range_set huge = { NULL, SIZE_MAX / sizeof(struct range), 0 };
	struct range_set s = RANGE_SET_INIT, out = RANGE_SET_INIT;

	(void)state;
	BUILD(&s, 1, 2);
	BUILD(&out, 5, 6);
	errno = 0;
	assert_int_equal(range_set_intersect(&out, &s, &huge), -1);
	assert_int_equal(errno, ENOMEM);
	expect_ranges(&out, R(5, 6));
	errno = 0;
	assert_int_equal(range_set_subtract(&out, &huge, &s), -1);
	assert_int_equal(errno, ENOMEM);
	expect_ranges(&out, R(5, 6));
	errno = 0;
	assert_int_equal(range_set_copy(&out, &huge), -1);
	assert_int_equal(errno, ENOMEM);
	expect_ranges(&out, R(5, 6));
	errno = 0;
	assert_int_equal(range_set_union(&out, &huge), -1);
	assert_int_equal(errno, ENOMEM);
	expect_ranges(&out, R(5, 6));
	range_set_free(&s);
	range_set_free(&out);
}

/* Randomized check against a page bitmap. */

#define NPAGES 256
#define NOPS 2000

struct model {
	bool pg[NPAGES];
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Mostly short ranges so that sets stay fragmented; sometimes empty. */
static void rand_range(uint64_t *start, uint64_t *end)
{
	uint64_t s = rng() % NPAGES;
	uint64_t len = rng() % 8 ? rng() % 12 : rng() % NPAGES;

	*start = s;
	*end = s + len > NPAGES ? NPAGES : s + len;
}

static void model_set(struct model *m, uint64_t s, uint64_t e, bool v)
{
	for (; s < e; s++)
		m->pg[s] = v;
}

static uint64_t model_pages(const struct model *m)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < NPAGES; i++)
		n += m->pg[i];
	return n;
}

/* The set must be exactly the canonical run list of the bitmap. */
static void check_model(const struct range_set *s, const struct model *m)
{
	size_t i = 0, k = 0;

	while (i < NPAGES) {
		size_t j;

		if (!m->pg[i]) {
			i++;
			continue;
		}
		for (j = i; j < NPAGES && m->pg[j]; j++)
			;
		assert_true(k < s->n);
		assert_int_equal(s->r[k].start, P(i));
		assert_int_equal(s->r[k].end, P(j));
		k++;
		i = j;
	}
	assert_int_equal(s->n, k);
	assert_int_equal(range_set_pages(s), model_pages(m));
	assert_int_equal(range_set_bytes(s), P(model_pages(m)));
}

static void check_queries(const struct range_set *s, const struct model *m)
{
	uint64_t addr = rng() % P(NPAGES + 1);
	uint64_t st, en, p;
	bool any = false;

	assert_int_equal(range_set_contains(s, addr),
			 addr < P(NPAGES) && m->pg[addr / PG]);
	rand_range(&st, &en);
	for (p = st; p < en; p++)
		any |= m->pg[p];
	assert_int_equal(range_set_overlaps(s, P(st), P(en)), any);
}

static void random_op(struct range_set *sets, struct model *models)
{
	struct range_set out = RANGE_SET_INIT;
	struct model mo;
	unsigned int op = rng() % 8, x = rng() % 2;
	struct range_set *a = &sets[x], *b = &sets[!x];
	struct model *ma = &models[x], *mb = &models[!x];
	uint64_t st, en;
	size_t i;

	rand_range(&st, &en);
	switch (op) {
	case 0:
	case 1:
		assert_int_equal(range_set_add(a, P(st), P(en)), 0);
		model_set(ma, st, en, true);
		break;
	case 2:
		assert_int_equal(range_set_remove(a, P(st), P(en)), 0);
		model_set(ma, st, en, false);
		break;
	case 3:
		assert_int_equal(range_set_union(a, b), 0);
		for (i = 0; i < NPAGES; i++)
			ma->pg[i] |= mb->pg[i];
		break;
	case 4:
		assert_int_equal(range_set_intersect(&out, a, b), 0);
		for (i = 0; i < NPAGES; i++)
			mo.pg[i] = ma->pg[i] && mb->pg[i];
		check_model(&out, &mo);
		break;
	case 5:
		assert_int_equal(range_set_subtract(&out, a, b), 0);
		for (i = 0; i < NPAGES; i++)
			mo.pg[i] = ma->pg[i] && !mb->pg[i];
		check_model(&out, &mo);
		break;
	case 6:
		assert_int_equal(range_set_equal(a, b),
				 !memcmp(ma->pg, mb->pg, sizeof(ma->pg)));
		break;
	case 7:
		assert_int_equal(range_set_copy(&out, a), 0);
		assert_true(range_set_equal(&out, a));
		check_model(&out, ma);
		break;
	}
	/* Feed intersect/subtract results back in so that sets change shape. */
	if ((op == 4 || op == 5) && rng() % 4 == 0) {
		assert_int_equal(range_set_copy(a, &out), 0);
		*ma = mo;
	}
	range_set_free(&out);
	check_model(a, ma);
	check_model(b, mb);
	check_queries(a, ma);
}

static void test_random(void **state)
{
	struct range_set sets[2] = { RANGE_SET_INIT, RANGE_SET_INIT };
	struct model models[2];
	int i;

	(void)state;
	memset(models, 0, sizeof(models));
	for (i = 0; i < NOPS; i++)
		random_op(sets, models);
	range_set_free(&sets[0]);
	range_set_free(&sets[1]);
}

static void test_covers(void **state)
{
	struct range_set s = RANGE_SET_INIT;

	(void)state;
	assert_int_equal(range_set_add(&s, 0x1000, 0x4000), 0);
	assert_int_equal(range_set_add(&s, 0x6000, 0x8000), 0);
	assert_true(range_set_covers(&s, 0x1000, 0x4000));
	assert_true(range_set_covers(&s, 0x2000, 0x3000));
	assert_true(range_set_covers(&s, 0x6000, 0x8000));
	assert_true(range_set_covers(&s, 0x5000, 0x5000));	/* empty */
	assert_false(range_set_covers(&s, 0x0, 0x2000));
	assert_false(range_set_covers(&s, 0x3000, 0x5000));
	assert_false(range_set_covers(&s, 0x1000, 0x8000));	/* across the hole */
	assert_false(range_set_covers(&s, 0x4000, 0x6000));
	assert_false(range_set_covers(&s, 0x7000, 0x9000));
	range_set_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_covers),
		cmocka_unit_test(test_init_empty),
		cmocka_unit_test(test_add_in_order),
		cmocka_unit_test(test_add_out_of_order),
		cmocka_unit_test(test_add_coalesce),
		cmocka_unit_test(test_add_unaligned),
		cmocka_unit_test(test_add_swallows_many),
		cmocka_unit_test(test_add_empty),
		cmocka_unit_test(test_remove_split),
		cmocka_unit_test(test_remove_trim),
		cmocka_unit_test(test_remove_whole),
		cmocka_unit_test(test_remove_noop),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_union),
		cmocka_unit_test(test_intersect),
		cmocka_unit_test(test_intersect_edge),
		cmocka_unit_test(test_subtract),
		cmocka_unit_test(test_subtract_edge),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_overlaps),
		cmocka_unit_test(test_bytes_pages),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_iterate),
		cmocka_unit_test(test_nomem),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
