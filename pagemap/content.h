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
/* Add the pages with content of v to *out. */
int content_of_vma(struct pm_scanner *s, const struct vma *v, struct range_set *out);

#endif
