/* SPDX-License-Identifier: MIT */
/*
 * The one place that knows kernel uapi values.  The build machines have
 * Linux 6.1 headers; everything newer (userfaultfd async write-protect,
 * the PAGEMAP_SCAN ioctl) is defined here behind #ifndef so that newer
 * installed headers win.
 */
#ifndef DT_UAPI_H
#define DT_UAPI_H

#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <linux/fs.h>

#ifndef __NR_userfaultfd
#define __NR_userfaultfd 323
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_openat2				/* 5.6; struct open_how: <linux/openat2.h> */
#define __NR_openat2 437
#endif

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED		/* 6.4 */
#define UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC			/* 6.7 */
#define UFFD_FEATURE_WP_ASYNC (1ULL << 15)
#endif

/* PAGEMAP_SCAN (6.7) */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED	(1ULL << 0)
#define PAGE_IS_WRITTEN		(1ULL << 1)
#define PAGE_IS_FILE		(1ULL << 2)
#define PAGE_IS_PRESENT		(1ULL << 3)
#define PAGE_IS_SWAPPED		(1ULL << 4)
#define PAGE_IS_PFNZERO		(1ULL << 5)
#define PAGE_IS_HUGE		(1ULL << 6)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING	(1ULL << 0)
#define PM_SCAN_CHECK_WPASYNC	(1ULL << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif /* PAGEMAP_SCAN */

#ifndef PAGE_IS_SOFT_DIRTY			/* 6.8 */
#define PAGE_IS_SOFT_DIRTY	(1ULL << 7)
#endif
#ifndef PAGE_IS_GUARD				/* 6.15 */
#define PAGE_IS_GUARD		(1ULL << 8)
#endif

/* /proc/PID/pagemap entry bits */
#define PM_ENTRY_SOFT_DIRTY	(1ULL << 55)
#define PM_ENTRY_EXCLUSIVE	(1ULL << 56)
#define PM_ENTRY_UFFD_WP	(1ULL << 57)
#define PM_ENTRY_GUARD		(1ULL << 58)
#define PM_ENTRY_FILE		(1ULL << 61)
#define PM_ENTRY_SWAPPED	(1ULL << 62)
#define PM_ENTRY_PRESENT	(1ULL << 63)

#endif /* DT_UAPI_H */
