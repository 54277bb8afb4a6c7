/* SPDX-License-Identifier: MIT */
/*
 * Reading dumps: one dump directory, and the chain of its parents, checked
 * whole (magics, sizes, every PE_PARENT resolvable) before anyone uses it.
 *
 * A dump holds a tree of processes (one, without --tree): per process its
 * private memory in pagemap-PID.img, and shared memory once per object in
 * pagemap-shmem-SHMID.img, addressed by offset in the object.  Readers look
 * at one process at a time: chain_select() builds, in every dump of the
 * chain, that process's view - its private entries and the shared objects'
 * entries placed at the addresses where the top dump's process maps them -
 * so that a page resolves down the chain by address as it always did.
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
struct pm_file;

struct dump_entry {
	uint64_t vaddr, nr_pages;	/* vaddr: an offset in the object, in a shmem file */
	uint32_t flags;
	uint64_t offset;	/* in the pages file, for PE_PRESENT */
	const struct pm_file *src;	/* where the bytes are (views) */
};

/* One pagemap image and its pages file. */
struct pm_file {
	char name[64];			/* pagemap-PID.img, pagemap-shmem-SHMID.img */
	bool shmem;
	uint64_t key;			/* the pid, or the shmid */
	struct dump_entry *ents;	/* sorted by vaddr */
	size_t nents;
	uint64_t pages_present, pages_parent;
	const unsigned char *pages;	/* the pages file, mapped */
	uint64_t pages_size;
	uint32_t pages_id;		/* the pages file is pages-<pages_id>.img */
};

struct dump_proc {
	unsigned int pid, ppid;
	struct PstreeEntry *pstree;
	struct MmEntry *mm;
	int pm;				/* its private pagemap in pms[], -1 for none */
};

struct dump {
	char path[PATH_MAX];		/* canonical */
	int dirfd;
	struct InventoryEntry *inv;
	struct dump_proc *procs;	/* procs[0] the root, as pstree.img lists them */
	size_t nprocs;
	struct pm_file *pms;		/* private ones, then shared objects */
	size_t npms;
	bool has_parent;
	bool whole;			/* every image read; else the inventory only */
	/* the selected process (chain_select; the root after chain_open) */
	unsigned int pid;
	struct PstreeEntry *pstree;	/* NULL when the process is not in this dump */
	struct MmEntry *mm;
	struct dump_entry *ents;	/* its view, sorted by vaddr */
	size_t nents;
	uint64_t pages_present, pages_parent;
	uint64_t pages_size;		/* bytes of all the dump's pages files */
};

struct dump_chain {
	struct dump *d;		/* d[0] the dump asked for, then its parents */
	int n;
};

struct img_in;
/* The entries of an opened pagemap image into pm, checked (in is freed). */
int dump_parse_pagemap(struct pm_file *pm, struct img_in *in, uint64_t *pages_bytes);

/* Opens dir and all its parents; fails on anything not whole. */
int chain_open(struct dump_chain *c, const char *dir);
/*
 * What the next dump needs of its parent: dir whole (d[0]); of the dumps
 * before it, dirtytrack's own, only the links (identity, parent link),
 * not their pages: what the child holds of each was checked when the
 * child was written.  Others are read whole.
 */
int chain_open_tip(struct dump_chain *c, const char *dir);
void chain_close(struct dump_chain *c);
/* Look at process pid of the top dump (an error naming it if absent). */
int chain_select(struct dump_chain *c, unsigned int pid);
/* The process of dump d with this pid, or NULL. */
const struct dump_proc *dump_proc_find(const struct dump *d, unsigned int pid);
/* The pagemap of dump d with this name, or NULL. */
const struct pm_file *dump_pm_find(const struct dump *d, const char *name);

/* The 4096 bytes of addr as dump d..n-1 describe them; NULL for zero. */
const unsigned char *chain_page(const struct dump_chain *c, int d, uint64_t addr);
/* The same for a page of one pagemap file, by its name and vaddr/offset. */
const unsigned char *chain_pm_page(const struct dump_chain *c, int d, const char *name,
				   uint64_t addr);
/* Pages that dump d gives content for (present or in its parent), in its view. */
void dump_covered(const struct dump *d, struct range_set *out);
/* ... and in one pagemap file (empty when pm is NULL). */
void pm_covered(const struct pm_file *pm, struct range_set *out);
/* The entry of d's view holding addr, or NULL. */
const struct dump_entry *dump_find(const struct dump *d, uint64_t addr);
const struct dump_entry *pm_find(const struct pm_file *pm, uint64_t addr);

/* The bytes of a view entry's first page. */
static inline const unsigned char *dump_entry_data(const struct dump_entry *e)
{
	return e->src->pages + e->offset;
}

#endif
