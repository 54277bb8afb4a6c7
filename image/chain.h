/* SPDX-License-Identifier: MIT */
/*
 * Reading dumps: one dump directory, and the chain of its parents, checked
 * whole (magics, sizes, every PE_PARENT resolvable) before anyone uses it.
 */
#ifndef DT_CHAIN_H
#define DT_CHAIN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "pagemap/rangeset.h"

#include "image/criu.h"

#define CHAIN_MAX_DEPTH 4096

struct InventoryEntry;
struct PstreeEntry;
struct MmEntry;

struct dump_entry {
	uint64_t vaddr, nr_pages;
	uint32_t flags;
	uint64_t offset;	/* in the pages file, for PE_PRESENT */
};

struct dump {
	char path[PATH_MAX];		/* canonical */
	int dirfd;
	struct InventoryEntry *inv;
	struct PstreeEntry *pstree;
	struct MmEntry *mm;
	unsigned int pid;
	struct dump_entry *ents;	/* sorted by vaddr */
	size_t nents;
	uint64_t pages_present, pages_parent;
	const unsigned char *pages;	/* the pages file, mapped */
	uint64_t pages_size;
	uint32_t pages_id;		/* the pages file is pages-<pages_id>.img */
	bool has_parent;
	bool whole;			/* every image read; else the inventory only */
};

struct dump_chain {
	struct dump *d;		/* d[0] the dump asked for, then its parents */
	int n;
};

struct img_in;
/* The entries of an opened pagemap image into d, checked (in is freed). */
int dump_parse_pagemap(struct dump *d, struct img_in *in, uint64_t *pages_bytes);

/* Opens dir and all its parents; fails on anything not whole. */
int chain_open(struct dump_chain *c, const char *dir);
/*
 * What the next dump needs of its parent: dir whole (d[0]); of the dumps
 * before it, dirtytrack's own, only the links (identity, parent link, a
 * pagemap there), not their pages: what the child holds of each was
 * checked when the child was written.  Others are read whole.
 */
int chain_open_tip(struct dump_chain *c, const char *dir);
void chain_close(struct dump_chain *c);

/* The 4096 bytes of addr as dump d..n-1 describe them; NULL for zero. */
const unsigned char *chain_page(const struct dump_chain *c, int d, uint64_t addr);
/* Pages that dump d gives content for (present or in its parent). */
void dump_covered(const struct dump *d, struct range_set *out);
/* The entry of d holding addr, or NULL. */
const struct dump_entry *dump_find(const struct dump *d, uint64_t addr);

#endif
