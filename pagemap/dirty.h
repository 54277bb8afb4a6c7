/* SPDX-License-Identifier: MIT */
/*
 * Which pages were written since they were last protected.  Two readers
 * behind one interface: the PAGEMAP_SCAN ioctl (atomic get-and-protect) and
 * the pagemap uffd-wp bit (bit 57) followed by UFFDIO_WRITEPROTECT.
 */
#ifndef DT_DIRTY_H
#define DT_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

#include "pagemap/rangeset.h"
#include "pagemap/scan.h"

enum dirty_backend {
	DIRTY_IOCTL,		/* PAGEMAP_SCAN */
	DIRTY_PAGEMAP,		/* /proc/PID/pagemap bit 57 */
};

struct dirty_reader {
	enum dirty_backend backend;
	struct pm_scanner *scan;	/* its fd is also the pagemap reader's */
	int uffd;			/* our handle, for re-protecting */
	/*
	 * Mappings another userfaultfd owns (the application's own): a walk
	 * that protects never crosses them.  NULL: none.
	 */
	const struct range_set *foreign;
	uint64_t *entries;		/* reused pagemap buffer */
	size_t entries_len;
};

/* The readers' names, indexed by enum dirty_backend, NULL-terminated: --scan's words. */
extern const char *const dirty_backend_names[];
const char *dirty_backend_name(enum dirty_backend b);

void dirty_reader_init(struct dirty_reader *r, enum dirty_backend b, struct pm_scanner *scan,
		       int uffd);
void dirty_reader_free(struct dirty_reader *r);

/*
 * Add to *dirty every page of the registered ranges `tracked` written since
 * it was last protected.  With consume, the pages are protected again so
 * that the next call reports only later writes; a write racing with the
 * call shows up in this call or the next, never in neither.
 */
int dirty_collect(struct dirty_reader *r, const struct range_set *tracked, bool consume,
		  struct range_set *dirty);

#endif
