/* SPDX-License-Identifier: MIT */
/*
 * Comparing the memory two dumps describe, each resolved through its parent
 * chain, whatever their relation.
 *
 * A page no entry covers is zero, so pages compare by content: an explicit
 * all-zero page against no entry at all is unchanged.  "Only in A" is a page
 * A gives non-zero content for and B has no entry for (and the other way
 * round).  Where both chains share a dump (one is the other's ancestor, or
 * they have a common ancestor), a page both resolve to that same stored copy
 * is unchanged without being read.
 */
#ifndef DT_DIFF_H
#define DT_DIFF_H

#include <stdbool.h>
#include <stdint.h>

#include "image/chain.h"
#include "image/meta.h"
#include "pagemap/rangeset.h"

enum diff_relation {
	DIFF_UNRELATED,
	DIFF_SAME,			/* the same dump (path or dump id) */
	DIFF_A_ANCESTOR_OF_B,
	DIFF_B_ANCESTOR_OF_A,
};

/* Pages, except changed_bytes. */
struct diff_counts {
	uint64_t only_a, only_b, changed, unchanged;
	/*
	 * Unchanged pages one side stored again (PE_PRESENT in a dump the
	 * other side's chain does not hold) with the very same bytes: for
	 * A ancestor of B, stored between A (exclusive) and B (inclusive).
	 */
	uint64_t written_identical;
	uint64_t changed_bytes;		/* inside changed pages, with count_bytes */
};

/*
 * A piece of address space mapped the same way in both dumps: one mapping
 * of A's mm image (or none) and one of B's (or none).  Identical mappings
 * give one row; a mapping that grew gives a row for the common part and a
 * row for the growth.  Pages outside every mapping get rows with neither.
 */
struct diff_vma {
	uint64_t start, end;
	uint32_t status;		/* CRIU status bits: B's mapping, else A's */
	bool in_a, in_b;		/* mapped in A's / B's mm image */
	struct diff_counts n;
};

struct diff_opts {
	bool count_bytes;		/* count differing bytes in changed pages */
};

struct diff_side {
	bool has_identity;		/* written by dirtytrack */
	struct dump_identity id;
	int depth;			/* dumps in its chain, itself included */
};

struct diff_result {
	enum diff_relation relation;
	int distance;			/* ancestor relations: dumps between, + 1 */
	bool same_process;
	struct diff_side a, b;
	struct diff_vma *vmas;		/* sorted by start */
	size_t nvmas;
	struct diff_counts total;
	/* page ranges, sorted and coalesced */
	struct range_set changed, only_a, only_b;
	/* with count_bytes: the changed bytes of each range of changed */
	uint64_t *changed_range_bytes;
};

/* Differences are results: -1 (dt_err) only when comparing failed. */
int dump_diff(const struct dump_chain *a, const struct dump_chain *b,
	      const struct diff_opts *o, struct diff_result *r);
void diff_result_free(struct diff_result *r);
/* "same", "a_is_ancestor_of_b", "b_is_ancestor_of_a", "unrelated" */
const char *diff_relation_name(enum diff_relation rel);
/* Any page only in A, only in B or changed. */
bool diff_differs(const struct diff_result *r);

#endif
