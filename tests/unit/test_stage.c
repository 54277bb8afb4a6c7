/*
 * The stage in front of page sinks: bytes come out of each sink in the
 * order they went in, whether the stage held them, ran out half way, or
 * another sink took the rest of it; finish writes what it held.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "image/sink.h"
#include "lib/util.h"

/* A sink that keeps what it is given, in order. */
struct mem_sink {
	struct page_sink base;
	unsigned char *data;
	size_t len, cap;
	int entries, finished, aborted;
};

static int m_entry(struct page_sink *s, uint64_t vaddr, uint64_t nr, uint32_t flags)
{
	(void)vaddr, (void)nr, (void)flags;
	((struct mem_sink *)s)->entries++;
	return 0;
}

static int m_pages(struct page_sink *base, const void *data, size_t len)
{
	struct mem_sink *s = (struct mem_sink *)base;

	if (s->len + len > s->cap)
		s->data = realloc(s->data, s->cap = (s->len + len) * 2);
	memcpy(s->data + s->len, data, len);
	s->len += len;
	return 0;
}

static int m_finish(struct page_sink *s)
{
	((struct mem_sink *)s)->finished++;
	return 0;
}

static void m_abort(struct page_sink *s)
{
	((struct mem_sink *)s)->aborted++;
}

static const struct page_sink_ops mem_ops = { m_entry, m_pages, m_finish, m_abort };

static unsigned char page[4][PAGE_SIZE];

static void setup_pages(void)
{
	for (int i = 0; i < 4; i++)
		memset(page[i], 'a' + i, PAGE_SIZE);
}

static void expect_pages(const struct mem_sink *m, const int *which, size_t n)
{
	assert_int_equal(m->len, n * PAGE_SIZE);
	for (size_t i = 0; i < n; i++)
		assert_memory_equal(m->data + i * PAGE_SIZE, page[which[i]], PAGE_SIZE);
}

static void test_held_until_finish(void **state)
{
	struct page_stage st;
	struct mem_sink m = { .base.ops = &mem_ops };
	struct stage_sink s;

	(void)state;
	setup_pages();
	assert_int_equal(page_stage_init(&st, 4 * PAGE_SIZE), 0);
	stage_sink_init(&s, &m.base, &st);
	assert_int_equal(s.base.ops->pages(&s.base, page[0], PAGE_SIZE), 0);
	assert_int_equal(s.base.ops->pages(&s.base, page[1], PAGE_SIZE), 0);
	assert_int_equal(m.len, 0);		/* held */
	assert_int_equal(s.base.ops->entry(&s.base, 0, 2, 4), 0);
	assert_int_equal(s.base.ops->finish(&s.base), 0);
	expect_pages(&m, (const int[]){ 0, 1 }, 2);
	assert_int_equal(m.finished, 1);
	assert_int_equal(m.entries, 1);
	assert_int_equal(s.base.pages_written, 2);
	page_stage_free(&st);
	free(m.data);
}

static void test_runs_out_half_way(void **state)
{
	struct page_stage st;
	struct mem_sink m = { .base.ops = &mem_ops };
	struct stage_sink s;

	(void)state;
	setup_pages();
	assert_int_equal(page_stage_init(&st, PAGE_SIZE), 0);
	size_t real = st.cap;

	st.cap = 2 * PAGE_SIZE;			/* (rounded up to 2 MiB: make it small) */
	stage_sink_init(&s, &m.base, &st);
	for (int i = 0; i < 4; i++)
		assert_int_equal(s.base.ops->pages(&s.base, page[i], PAGE_SIZE), 0);
	/* what it held went first, then the rest straight through */
	expect_pages(&m, (const int[]){ 0, 1, 2, 3 }, 4);
	assert_int_equal(s.base.ops->finish(&s.base), 0);
	expect_pages(&m, (const int[]){ 0, 1, 2, 3 }, 4);
	st.cap = real;
	page_stage_free(&st);
	free(m.data);
}

static void test_two_sinks_share_it(void **state)
{
	struct page_stage st;
	struct mem_sink a = { .base.ops = &mem_ops }, b = { .base.ops = &mem_ops };
	struct stage_sink sa, sb;

	(void)state;
	setup_pages();
	assert_int_equal(page_stage_init(&st, PAGE_SIZE), 0);
	size_t real = st.cap;

	st.cap = 8 * PAGE_SIZE;
	stage_sink_init(&sa, &a.base, &st);
	assert_int_equal(sa.base.ops->pages(&sa.base, page[0], PAGE_SIZE), 0);
	stage_sink_init(&sb, &b.base, &st);
	assert_int_equal(sb.base.ops->pages(&sb.base, page[1], PAGE_SIZE), 0);
	/* a is not the last any more: its next page cannot join its held ones */
	assert_int_equal(sa.base.ops->pages(&sa.base, page[2], PAGE_SIZE), 0);
	expect_pages(&a, (const int[]){ 0, 2 }, 2);
	assert_int_equal(sb.base.ops->pages(&sb.base, page[3], PAGE_SIZE), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(sa.base.ops->finish(&sa.base), 0);
	assert_int_equal(sb.base.ops->finish(&sb.base), 0);
	expect_pages(&a, (const int[]){ 0, 2 }, 2);
	expect_pages(&b, (const int[]){ 1, 3 }, 2);
	st.cap = real;
	page_stage_free(&st);
	free(a.data);
	free(b.data);
}

static void test_abort_reaches_inner(void **state)
{
	struct page_stage st;
	struct mem_sink m = { .base.ops = &mem_ops };
	struct stage_sink s;

	(void)state;
	assert_int_equal(page_stage_init(&st, PAGE_SIZE), 0);
	stage_sink_init(&s, &m.base, &st);
	s.base.ops->abort(&s.base);
	assert_int_equal(m.aborted, 1);
	assert_int_equal(m.len, 0);
	page_stage_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_until_finish),
		cmocka_unit_test(test_runs_out_half_way),
		cmocka_unit_test(test_two_sinks_share_it),
		cmocka_unit_test(test_abort_reaches_inner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
