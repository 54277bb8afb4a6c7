/* SPDX-License-Identifier: MIT */
/*
 * Looking into dumps: what one dump holds mapping by mapping (show), and a
 * chain's memory compared byte for byte with a stopped process (verify).
 */
#ifndef DT_VERIFY_H
#define DT_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/chain.h"
#include "image/meta.h"
#include "lib/util.h"
#include "pagemap/rangeset.h"

/* One mapping of a dump's mm image, with the dump's pages inside it. */
struct vma_pages {
	uint64_t start, end;
	uint32_t status, prot, flags;	/* CRIU status bits, PROT_*, MAP_* */
	uint64_t pages_present, pages_parent;
};

struct dump_summary {
	char comm[32];			/* from core-PID.img; "" without one */
	bool has_identity;		/* written by dirtytrack */
	struct dump_identity id;
	struct vma_pages *vmas;
	size_t nvmas;
	uint64_t pages_outside;		/* pagemap pages in no mapping of mm */
};

/* Fails only on a core image that is there but unreadable. */
int dump_summarize(const struct dump *d, struct dump_summary *s);
void dump_summary_free(struct dump_summary *s);
/* What chain_open leaves unread: the main thread's core image decodes. */
int dump_check_images(const struct dump *d);
/* "anon", "heap", "stack", "file", "file-shared", "shmem", "special", ... */
const char *vma_status_name(uint32_t status);

struct verify_live_result {
	uint64_t pages_compared;	/* byte for byte */
	uint64_t pages_live;		/* with content in the target */
	uint64_t pages_chain;		/* the chain holds, in mappings with content */
	uint64_t pages_file;		/* the chain holds, private file pages the
					   target reads from the file: not compared */
	uint64_t pages_unmapped;	/* the chain holds, where the target has no
					   mapping with content: not compared */
	struct range_set mismatches;	/* pages that differ, coalesced */
};

/*
 * Compare chain c with the memory of pid, which must be stopped (state T
 * or t) so that nothing changes while we read.  Differences are results,
 * not errors: -1 only when the comparison could not be made.  progress
 * (may be NULL) hears of the bytes compared.
 */
int verify_live(const struct dump_chain *c, pid_t pid, struct verify_live_result *r,
		dt_progress_fn progress, void *progress_ctx);
void verify_live_result_free(struct verify_live_result *r);

#endif
