// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <sys/mman.h>
#include <string.h>

#include "image/chain.h"
#include "image/sink.h"
#include "lib/err.h"
#include "lib/util.h"
#include "pagemap.pb-c.h"

static int dir_entry(struct page_sink *base, uint64_t vaddr, uint64_t nr, uint32_t flags)
{
	struct dir_sink *s = (struct dir_sink *)base;
	PagemapEntry e = PAGEMAP_ENTRY__INIT;

	/* both counts: CRIU 3.x reads field 2, CRIU 4.x field 5 */
	e.vaddr = vaddr;
	e.compat_nr_pages = nr > UINT32_MAX ? UINT32_MAX : (uint32_t)nr;
	e.has_nr_pages = true;
	e.nr_pages = nr;
	e.has_flags = true;
	e.flags = flags;
	if (flags & PE_PARENT) {
		e.has_in_parent = true;
		e.in_parent = true;
	}
	return img_put_msg(&s->pagemap, &e.base);
}

static int dir_pages(struct page_sink *base, const void *data, size_t len)
{
	struct dir_sink *s = (struct dir_sink *)base;

	base->pages_written += len / PAGE_SIZE;
	return img_put_raw(&s->pages, data, len);
}

static int dir_finish(struct page_sink *base)
{
	struct dir_sink *s = (struct dir_sink *)base;
	int err = img_close(&s->pagemap);

	if (img_close(&s->pages))
		err = -1;
	return err;
}

static void dir_abort(struct page_sink *base)
{
	struct dir_sink *s = (struct dir_sink *)base;

	img_discard(&s->pagemap);
	img_discard(&s->pages);
}

static const struct page_sink_ops dir_ops = {
	.entry = dir_entry, .pages = dir_pages, .finish = dir_finish, .abort = dir_abort,
};

int dir_sink_open(struct dir_sink *s, int dirfd, const char *pagemap, uint32_t pages_id)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;
	char name[64];

	memset(s, 0, sizeof(*s));
	s->base.ops = &dir_ops;
	s->pagemap.fd = s->pages.fd = -1;
	if (img_create(&s->pagemap, dirfd, pagemap, IMG_PAGEMAP_MAGIC))
		return -1;
	head.pages_id = pages_id;
	snprintf(name, sizeof(name), "pages-%u.img", pages_id);
	if (img_put_msg(&s->pagemap, &head.base) || img_create(&s->pages, dirfd, name, 0)) {
		dir_abort(&s->base);
		return -1;
	}
	return 0;
}

int sink_put_entries(struct page_sink *s, const struct range_set *present,
		     const struct range_set *parent)
{
	size_t i = 0, j = 0;

	/* merge two sorted, disjoint range lists into address order */
	while (i < present->n || j < parent->n) {
		bool take_present = j == parent->n ||
				    (i < present->n && present->r[i].start < parent->r[j].start);
		const struct range *r = take_present ? &present->r[i++] : &parent->r[j++];

		if (s->ops->entry(s, r->start, (r->end - r->start) / PAGE_SIZE,
				  take_present ? PE_PRESENT : PE_PARENT))
			return -1;
	}
	return 0;
}

int sink_put_pages(void *sink, const void *data, size_t len)
{
	struct page_sink *s = sink;

	return s->ops->pages(s, data, len);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define STAGE_ALIGN (2UL << 20)

int page_stage_init(struct page_stage *st, size_t cap)
{
	size_t len = (cap + STAGE_ALIGN - 1) & ~(STAGE_ALIGN - 1);
	unsigned char *p = mmap(NULL, len + STAGE_ALIGN, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	memset(st, 0, sizeof(*st));
	if (p == MAP_FAILED)
		return dt_err_sys(0, "allocating %zu bytes to stage pages", len);
	/* aligned to huge pages: a fault backs 2 MiB, not 4 KiB */
	a = ((uintptr_t)p + STAGE_ALIGN - 1) & ~(STAGE_ALIGN - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((void *)(a + len), (uintptr_t)p + STAGE_ALIGN - a);
	st->buf = (unsigned char *)a;
	st->cap = len;
	madvise(st->buf, len, MADV_HUGEPAGE);
	if (madvise(st->buf, len, MADV_POPULATE_WRITE))
		memset(st->buf, 0, len);	/* older kernels: touch it ourselves */
	return 0;
}

void page_stage_free(struct page_stage *st)
{
	if (st->buf)
		munmap(st->buf, st->cap);
	memset(st, 0, sizeof(*st));
}

static int stage_entry(struct page_sink *base, uint64_t vaddr, uint64_t nr, uint32_t flags)
{
	struct stage_sink *s = (struct stage_sink *)base;

	return s->inner->ops->entry(s->inner, vaddr, nr, flags);
}

static int stage_flush(struct stage_sink *s)
{
	int err = s->len ? s->inner->ops->pages(s->inner, s->st->buf + s->off, s->len) : 0;

	s->len = 0;
	return err;
}

static int stage_pages(struct page_sink *base, const void *data, size_t len)
{
	struct stage_sink *s = (struct stage_sink *)base;

	base->pages_written += len / PAGE_SIZE;
	/* only the last sink may grow: the bytes of each stay contiguous */
	if (!s->direct && s->off + s->len == s->st->used && s->st->used + len <= s->st->cap) {
		memcpy(s->st->buf + s->st->used, data, len);
		s->st->used += len;
		s->len += len;
		return 0;
	}
	s->direct = true;
	if (stage_flush(s))
		return -1;
	return s->inner->ops->pages(s->inner, data, len);
}

static int stage_finish(struct page_sink *base)
{
	struct stage_sink *s = (struct stage_sink *)base;

	if (stage_flush(s)) {
		s->inner->ops->abort(s->inner);
		return -1;
	}
	return s->inner->ops->finish(s->inner);
}

static void stage_abort(struct page_sink *base)
{
	struct stage_sink *s = (struct stage_sink *)base;

	s->inner->ops->abort(s->inner);
}

static const struct page_sink_ops stage_ops = {
	.entry = stage_entry, .pages = stage_pages, .finish = stage_finish, .abort = stage_abort,
};

void stage_sink_init(struct stage_sink *s, struct page_sink *inner, struct page_stage *st)
{
	memset(s, 0, sizeof(*s));
	s->base.ops = &stage_ops;
	s->inner = inner;
	s->st = st;
	s->off = st->used;
}
