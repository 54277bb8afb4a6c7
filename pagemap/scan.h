/* SPDX-License-Identifier: MIT */
/* The PAGEMAP_SCAN ioctl on /proc/PID/pagemap, with a reusable vector. */
#ifndef DT_SCAN_H
#define DT_SCAN_H

#include <stdint.h>
#include <sys/types.h>

#include "lib/uapi.h"

struct pm_scanner {
	pid_t pid;
	int fd;				/* /proc/PID/pagemap */
	struct page_region *vec;
	size_t vec_len;
	uint64_t ioctls;		/* calls made: for stats and benchmarks */
};

struct pm_query {
	uint64_t flags;			/* PM_SCAN_* */
	uint64_t inverted, mask, anyof, ret;
};

typedef int (*pm_region_fn)(void *ctx, uint64_t start, uint64_t end, uint64_t categories);

int pm_scanner_open(struct pm_scanner *s, pid_t pid);
void pm_scanner_close(struct pm_scanner *s);
/* Walk [start, end), resuming at walk_end until done; cb gets each region. */
int pm_scan(struct pm_scanner *s, uint64_t start, uint64_t end, const struct pm_query *q,
	    pm_region_fn cb, void *ctx);
/* Turn a failed walk's errno into words (exited, exec'd, unsupported...). */
int pm_scan_error(pid_t pid, int err);

#endif
