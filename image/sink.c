// SPDX-License-Identifier: MIT
#include <stdio.h>
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
