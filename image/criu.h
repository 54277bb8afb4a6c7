/* SPDX-License-Identifier: MIT */
/* CRIU's on-disk constants: the one place that knows them. */
#ifndef DT_CRIU_H
#define DT_CRIU_H

/* vma_entry.status */
#define CRIU_VMA_REGULAR	(1U << 0)
#define CRIU_VMA_STACK		(1U << 1)
#define CRIU_VMA_VSYSCALL	(1U << 2)
#define CRIU_VMA_VDSO		(1U << 3)
#define CRIU_VMA_HEAP		(1U << 5)
#define CRIU_VMA_FILE_PRIVATE	(1U << 6)
#define CRIU_VMA_FILE_SHARED	(1U << 7)
#define CRIU_VMA_ANON_SHARED	(1U << 8)
#define CRIU_VMA_ANON_PRIVATE	(1U << 9)
#define CRIU_VMA_SYSVIPC	(1U << 10)
#define CRIU_VMA_SOCKET		(1U << 11)
#define CRIU_VMA_VVAR		(1U << 12)
#define CRIU_VMA_AIORING	(1U << 13)
#define CRIU_VMA_MEMFD		(1U << 14)
#define CRIU_VMA_GUARD		(1U << 16)
#define CRIU_VMA_UNSUPP		(1U << 31)

/* pagemap_entry.flags */
#define PE_PARENT	(1U << 0)
#define PE_LAZY		(1U << 1)
#define PE_PRESENT	(1U << 2)

#endif
