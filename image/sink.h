/* SPDX-License-Identifier: MIT */
/*
 * Where a dump's pages go.  The dump code hands a sink the pagemap entries
 * and then the bytes of the PE_PRESENT pages, in address order, and never
 * knows whether they land in an image directory, a stream or a peer.
 */
#ifndef DT_SINK_H
#define DT_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/imgfile.h"
#include "pagemap/rangeset.h"

struct page_sink;

struct page_sink_ops {
	int (*entry)(struct page_sink *s, uint64_t vaddr, uint64_t nr_pages, uint32_t flags);
	int (*pages)(struct page_sink *s, const void *data, size_t len);
	int (*finish)(struct page_sink *s);
	void (*abort)(struct page_sink *s);
};

struct page_sink {
	const struct page_sink_ops *ops;
	uint64_t pages_written;
};

/* A pagemap image (pagemap-PID.img, pagemap-shmem-SHMID.img) and its pages-ID.img */
struct dir_sink {
	struct page_sink base;
	struct img_out pagemap, pages;
};

int dir_sink_open(struct dir_sink *s, int dirfd, const char *pagemap, uint32_t pages_id);

/*
 * Bytes held in memory for a while: a frozen dump copies the pages into a
 * buffer made ready before the freeze and writes them once the target
 * runs again, so that the file system's cost is not downtime.
 */
struct page_stage {
	unsigned char *buf;
	size_t cap, used;
};

/* A buffer of cap bytes, every page already backed (huge pages if we can). */
int page_stage_init(struct page_stage *st, size_t cap);
void page_stage_free(struct page_stage *st);

/*
 * A sink in front of inner: pages go into st while it has room, then
 * (what it held first) straight to inner; finish writes what it held,
 * then finishes inner.  It owns inner from here on.
 */
struct stage_sink {
	struct page_sink base;
	struct page_sink *inner;
	struct page_stage *st;
	size_t off, len;	/* this sink's bytes in st */
	bool direct;		/* st ran out: writing to inner */
};

void stage_sink_init(struct stage_sink *s, struct page_sink *inner, struct page_stage *st);

/* Write the entries of a dump: present and parent are disjoint sets. */
int sink_put_entries(struct page_sink *s, const struct range_set *present,
		     const struct range_set *parent);
/* mem_put_fn-shaped adapter: hands bytes to s->ops->pages. */
int sink_put_pages(void *sink, const void *data, size_t len);

#endif
