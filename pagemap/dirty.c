// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/uapi.h"
#include "lib/util.h"
#include "pagemap/dirty.h"
#include "tracker/uffd.h"

#define PAGEMAP_BATCH (64 * 1024)	/* entries per read: 512 KiB, 256 MiB of memory */

const char *const dirty_backend_names[] = {
	[DIRTY_IOCTL] = "ioctl",
	[DIRTY_PAGEMAP] = "pagemap",
	NULL,
};

const char *dirty_backend_name(enum dirty_backend b)
{
	return dirty_backend_names[b == DIRTY_PAGEMAP ? DIRTY_PAGEMAP : DIRTY_IOCTL];
}

void dirty_reader_init(struct dirty_reader *r, enum dirty_backend b, struct pm_scanner *scan,
		       int uffd)
{
	memset(r, 0, sizeof(*r));
	r->backend = b;
	r->scan = scan;
	r->uffd = uffd;
}

void dirty_reader_free(struct dirty_reader *r)
{
	free(r->entries);
	r->entries = NULL;
}

static int add_region(void *ctx, uint64_t start, uint64_t end, uint64_t categories)
{
	(void)categories;
	if (range_set_add(ctx, start, end))
		die_oom();
	return 0;
}

static int collect_ioctl(struct dirty_reader *r, const struct range_set *tracked, bool consume,
			 struct range_set *dirty)
{
	/*
	 * One walk over the hull of the tracked ranges: the kernel skips
	 * unregistered VMAs cheaply (WP_MATCHING skips them; without it the
	 * WPALLOWED category excludes them).  mask == return mask == WRITTEN
	 * is the kernel's fast path.  A mapping another userfaultfd owns is
	 * registered too: the walk is cut around it, never protecting it.
	 */
	struct pm_query q = {
		.flags = consume ? PM_SCAN_WP_MATCHING : 0,
		.mask = consume ? PAGE_IS_WRITTEN : PAGE_IS_WRITTEN | PAGE_IS_WPALLOWED,
		.ret = PAGE_IS_WRITTEN,
	};

	uint64_t seg;

	if (!tracked->n)
		return 0;
	seg = tracked->r[0].start;
	for (size_t i = 0; i < tracked->n; i++) {
		uint64_t end = tracked->r[i].end;
		bool last = i + 1 == tracked->n;
		int err;

		if (!last && !(r->foreign && range_set_overlaps(r->foreign, end,
								 tracked->r[i + 1].start)))
			continue;
		err = pm_scan(r->scan, seg, end, &q, add_region, dirty);
		if (err)
			return err;
		if (!last)
			seg = tracked->r[i + 1].start;
	}
	return 0;
}

static int read_entries(struct dirty_reader *r, uint64_t addr, size_t n)
{
	size_t want = n * sizeof(uint64_t), got = 0;
	off_t off = (off_t)(addr / PAGE_SIZE * sizeof(uint64_t));

	while (got < want) {
		ssize_t k = pread(r->scan->fd, (char *)r->entries + got, want - got, off + got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return pm_scan_error(r->scan->pid, errno);
		if (k == 0)
			return dt_err(DT_EXIT_GONE, "process %d exited or exec'd", r->scan->pid);
		got += k;
	}
	return 0;
}

/*
 * A page of a registered VMA whose uffd-wp bit is clear was written since
 * it was protected: present, swapped, or zapped to none alike.  Read the
 * bits, protect that set, and only then let anyone copy the pages: a write
 * after the read either hit a protected page (caught next time) or an
 * unprotected one we are about to protect (caught now).
 */
static int collect_pagemap(struct dirty_reader *r, const struct range_set *tracked, bool consume,
			   struct range_set *dirty)
{
	struct range_set found = RANGE_SET_INIT;
	int err = 0;

	if (!r->entries) {
		r->entries_len = PAGEMAP_BATCH;
		r->entries = xmalloc(r->entries_len * sizeof(uint64_t));
	}
	range_set_for_each(t, tracked) {
		for (uint64_t a = t->start; a < t->end && !err;) {
			size_t n = (t->end - a) / PAGE_SIZE;

			if (n > r->entries_len)
				n = r->entries_len;
			err = read_entries(r, a, n);
			for (size_t i = 0; i < n && !err; i++)
				if (!(r->entries[i] & PM_ENTRY_UFFD_WP) &&
				    range_set_add(&found, a + i * PAGE_SIZE, a + (i + 1) * PAGE_SIZE))
					die_oom();
			a += n * PAGE_SIZE;
		}
		if (err)
			break;
	}
	if (!err && consume) {
		range_set_for_each(f, &found) {
			/*
			 * A range that stopped being registered (unmapped,
			 * moved) cannot be protected; it stays in the set and
			 * its VMA is seen as new next time.
			 */
			int e = uffd_protect(r->uffd, f->start, f->end);

			if (e && e != -ENOENT && e != -EINVAL) {
				errno = -e;
				err = e == -ESRCH ? pm_scan_error(r->scan->pid, ESRCH)
						  : dt_err_sys(0, "UFFDIO_WRITEPROTECT");
				break;
			}
		}
	}
	if (!err && range_set_union(dirty, &found))
		die_oom();
	range_set_free(&found);
	return err;
}

int dirty_collect(struct dirty_reader *r, const struct range_set *tracked, bool consume,
		  struct range_set *dirty)
{
	if (r->backend == DIRTY_PAGEMAP)
		return collect_pagemap(r, tracked, consume, dirty);
	return collect_ioctl(r, tracked, consume, dirty);
}
