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
/* Add the pages with content of v to *out. */
int content_of_vma(struct pm_scanner *s, const struct vma *v, struct range_set *out);

#endif
