/* SPDX-License-Identifier: MIT */
/*
 * Memory the kernel writes without the page tables: long-term pinned pages
 * (io_uring registered buffers; RDMA and vfio pin too) and asynchronous I/O
 * still in flight.  A write-protect bit never sees those writes, so pinned
 * ranges count as written at every collection, and what cannot be
 * attributed is said aloud.
 */
#ifndef DT_PINNED_H
#define DT_PINNED_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagemap/rangeset.h"

struct pinned {
	struct range_set ranges;	/* io_uring registered buffers, page aligned */
	uint64_t attributed_bytes;	/* their size, as the kernel pins them */
	uint64_t vmpin_bytes;		/* VmPin of /proc/PID/status: all long-term pins */
	int io_uring_queued;		/* submissions without a completion yet */
	int aio_contexts;		/* Linux AIO rings ([aio] mappings) */
};

/* One io_uring fd's fdinfo: its registered buffers into *p (and its queue). */
void pinned_parse_uring_fdinfo(const char *buf, struct pinned *p);
struct vma_list;
/*
 * What pid has pinned; vmas: its mappings as just read (for the [aio]
 * rings); io: also count io_uring I/O in flight when nothing is pinned.
 */
int pinned_read(pid_t pid, const struct vma_list *vmas, bool io, struct pinned *p);
/* VmPin that no io_uring buffer explains (RDMA, vfio, ...). */
uint64_t pinned_unattributed(const struct pinned *p);
void pinned_free(struct pinned *p);

#endif
