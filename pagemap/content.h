/* SPDX-License-Identifier: MIT */
/*
 * Which pages of a mapping hold content a dump must store: anonymous pages
 * (private anon, copy-on-write pages of private file mappings) and every
 * page of shared anonymous memory and memfds.  Untouched pages are zero or
 * come from their file; uffd-wp markers look swapped but hold nothing.
 */
#ifndef DT_CONTENT_H
#define DT_CONTENT_H

#include "pagemap/rangeset.h"
#include "pagemap/scan.h"
#include "tracker/proc.h"

/* Does this kind of mapping have content of its own to dump? */
bool vma_dumps_content(const struct vma *v);
/*
 * The object a shared mapping maps, opened: through /proc/PID/map_files
 * (CAP_CHECKPOINT_RESTORE), else one of the process's own fds on it
 * (pidfd_getfd).  -1 when there is no way to it.
 */
int shmem_object_open(pid_t pid, const struct vma *v);
/*
 * A raw pagemap entry that is swapped out for real, not a uffd-wp marker
 * (ndev: pagemap_swap_devices()).  The hidden frame (no CAP_SYS_ADMIN)
 * counts as real: keep the page.
 */
int pagemap_swap_devices(void);
bool pagemap_real_swap(uint64_t e, int ndev);
/* Add the pages with content of v to *out: a walk of its page tables. */
int content_of_vma(struct pm_scanner *s, const struct vma *v, struct range_set *out);
/*
 * The same set, from a parent's: cover is what the parent dump holds (its
 * content then), changed every page that may have changed since (written,
 * zapped, dropped copies: the collection's dirty set).  Only changed pages
 * and the parent's holes are walked, in few calls.  Exactly
 * content_of_vma's answer as long as v is the very mapping the parent saw,
 * registered and tracked all along: a page with content that nothing
 * changed keeps it (zapping one reads as written).  Shared memory changes
 * without our page tables: it is walked whole.
 */
int content_from_parent(struct pm_scanner *s, const struct vma *v, const struct range_set *cover,
			const struct range_set *changed, struct range_set *out);

#endif
