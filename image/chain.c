// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/chain.h"
#include "image/imgfile.h"
#include "lib/err.h"
#include "lib/path.h"
#include "lib/util.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

static void pm_free(struct pm_file *pm)
{
	if (pm->pages && pm->pages_size)
		munmap((void *)pm->pages, pm->pages_size);
	free(pm->ents);
}

static void view_free(struct dump *d)
{
	free(d->ents);
	d->ents = NULL;
	d->nents = 0;
	d->pages_present = d->pages_parent = 0;
}

static void dump_free(struct dump *d)
{
	if (d->inv)
		inventory_entry__free_unpacked(d->inv, NULL);
	for (size_t i = 0; i < d->nprocs; i++) {
		if (d->procs[i].pstree)
			pstree_entry__free_unpacked(d->procs[i].pstree, NULL);
		if (d->procs[i].mm)
			mm_entry__free_unpacked(d->procs[i].mm, NULL);
	}
	free(d->procs);
	for (size_t i = 0; i < d->npms; i++)
		pm_free(&d->pms[i]);
	free(d->pms);
	view_free(d);
	if (d->dirfd >= 0)
		close(d->dirfd);
	memset(d, 0, sizeof(*d));
	d->dirfd = -1;
}

int dump_parse_pagemap(struct pm_file *d, struct img_in *in, uint64_t *pages_bytes)
{
	ProtobufCMessage *m;
	PagemapHead *head;
	uint64_t off = 0, prev_end = 0;
	size_t cap = 64;
	int r;

	r = img_get_msg(in, &pagemap_head__descriptor, &m);
	if (r) {
		img_in_free(in);
		return r > 0 ? dt_err(DT_EXIT_ERROR, "%s is empty", in->name) : -1;
	}
	head = (PagemapHead *)m;
	d->pages_id = head->pages_id;
	pagemap_head__free_unpacked(head, NULL);
	d->ents = xmalloc(cap * sizeof(*d->ents));
	while ((r = img_get_msg(in, &pagemap_entry__descriptor, &m)) == 0) {
		PagemapEntry *e = (PagemapEntry *)m;
		struct dump_entry *x;
		uint64_t nr = e->has_nr_pages && e->nr_pages ? e->nr_pages : e->compat_nr_pages;

		if (d->nents == cap)
			d->ents = xrealloc(d->ents, (cap *= 2) * sizeof(*d->ents));
		x = &d->ents[d->nents++];
		x->vaddr = e->vaddr;
		x->nr_pages = nr;
		x->flags = e->has_flags ? e->flags : (e->has_in_parent && e->in_parent ? PE_PARENT
											: PE_PRESENT);
		x->src = d;
		pagemap_entry__free_unpacked(e, NULL);
		if (x->vaddr % PAGE_SIZE || !nr || x->vaddr < prev_end ||
		    nr > (UINT64_MAX - x->vaddr) / PAGE_SIZE ||
		    ((x->flags & PE_PRESENT) && nr * PAGE_SIZE > UINT64_MAX - off)) {
			img_in_free(in);
			return dt_err(DT_EXIT_ERROR, "%s is corrupt: bad entry at %#llx", in->name,
				      (unsigned long long)x->vaddr);
		}
		prev_end = x->vaddr + nr * PAGE_SIZE;
		x->offset = off;
		if (x->flags & PE_PRESENT) {
			off += nr * PAGE_SIZE;
			d->pages_present += nr;
		} else if (x->flags & PE_PARENT) {
			d->pages_parent += nr;
		}
	}
	img_in_free(in);
	*pages_bytes = off;
	return r < 0 ? -1 : 0;
}

static int read_pagemap(struct dump *d, struct pm_file *pm)
{
	char name[64];
	struct img_in in;
	uint64_t off;
	off_t size;
	int fd;

	if (img_open(&in, d->dirfd, pm->name, IMG_PAGEMAP_MAGIC) ||
	    dump_parse_pagemap(pm, &in, &off))
		return -1;
	/* the entries point into the array: fix them once it stops moving */
	for (size_t i = 0; i < pm->nents; i++)
		pm->ents[i].src = pm;
	snprintf(name, sizeof(name), "pages-%u.img", pm->pages_id);
	/* the pages file must hold exactly what the entries promise */
	fd = path_open_image(d->dirfd, name, SIZE_MAX, &size);
	if (fd < 0)
		return -1;
	if ((uint64_t)size != off) {
		close(fd);
		return dt_err(DT_EXIT_ERROR, "%s/%s holds %lld bytes, its pagemap %s promises %llu "
			      "(truncated or corrupt)", d->path, name, (long long)size, pm->name,
			      (unsigned long long)off);
	}
	pm->pages_size = off;
	d->pages_size += off;
	if (off) {
		void *p = mmap(NULL, off, PROT_READ, MAP_PRIVATE, fd, 0);

		if (p == MAP_FAILED) {
			close(fd);
			return dt_err_sys(0, "mapping %s/%s", d->path, name);
		}
		madvise(p, off, MADV_SEQUENTIAL);
		pm->pages = p;
	}
	close(fd);
	return 0;
}

static struct pm_file *add_pm(struct dump *d, bool shmem, uint64_t key)
{
	struct pm_file *pm;

	d->pms = xrealloc(d->pms, (d->npms + 1) * sizeof(*d->pms));
	pm = &d->pms[d->npms++];
	memset(pm, 0, sizeof(*pm));
	pm->shmem = shmem;
	pm->key = key;
	if (shmem)
		snprintf(pm->name, sizeof(pm->name), "pagemap-shmem-%llu.img", (unsigned long long)key);
	else
		snprintf(pm->name, sizeof(pm->name), "pagemap-%llu.img", (unsigned long long)key);
	return pm;
}

static int read_pstree(struct dump *d)
{
	struct img_in in;
	ProtobufCMessage *m;
	int r;

	if (img_open(&in, d->dirfd, "pstree.img", IMG_PSTREE_MAGIC))
		return -1;
	while ((r = img_get_msg(&in, &pstree_entry__descriptor, &m)) == 0) {
		PstreeEntry *e = (PstreeEntry *)m;
		struct dump_proc *p;

		if (dump_proc_find(d, e->pid) || !e->pid) {
			pstree_entry__free_unpacked(e, NULL);
			img_in_free(&in);
			return dt_err(DT_EXIT_ERROR, "pstree.img is corrupt: pid %u twice or zero",
				      e->pid);
		}
		d->procs = xrealloc(d->procs, (d->nprocs + 1) * sizeof(*d->procs));
		p = &d->procs[d->nprocs++];
		memset(p, 0, sizeof(*p));
		p->pid = e->pid;
		p->ppid = e->ppid;
		p->pstree = e;
		p->pm = -1;
	}
	img_in_free(&in);
	if (r < 0)
		return -1;
	if (!d->nprocs)
		return dt_err(DT_EXIT_ERROR, "pstree.img is empty");
	return 0;
}

/* pagemap-shmem-SHMID.img: every shared object the dump stores */
static int find_shmem_files(struct dump *d)
{
	struct dirent *de;
	DIR *dir;
	int fd = dup(d->dirfd);

	dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return dt_err_sys(0, "listing %s", d->path);
	}
	rewinddir(dir);
	while ((de = readdir(dir))) {
		uint64_t id;
		char num[32];
		size_t len = strlen(de->d_name);

		if (strncmp(de->d_name, "pagemap-shmem-", 14) || len < 19 || len - 18 >= sizeof(num) ||
		    strcmp(de->d_name + len - 4, ".img"))
			continue;
		memcpy(num, de->d_name + 14, len - 18);
		num[len - 18] = '\0';
		if (!parse_u64(num, &id) || !id)
			continue;
		add_pm(d, true, id);
	}
	closedir(dir);
	return 0;
}

/*
 * d takes dirfd (and closes it on failure); dir names it in messages.
 * whole: every image; else (an older dump of ours, below the one asked
 * for) the inventory and the parent link only.
 */
static int dump_open(struct dump *d, int dirfd, const char *dir, bool whole)
{
	struct stat st;
	ProtobufCMessage *m;

	memset(d, 0, sizeof(*d));
	d->dirfd = dirfd;
	if (path_of_fd(d->dirfd, d->path, sizeof(d->path)))
		goto fail;
	if (img_read_single(d->dirfd, "inventory.img", IMG_INVENTORY_MAGIC, &inventory_entry__descriptor,
		     &m))
		goto fail;
	d->inv = (InventoryEntry *)m;
	d->has_parent = fstatat(d->dirfd, "parent", &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (!whole && d->inv->has_dt_pid && d->inv->dt_dump_id) {
		if (!d->has_parent && !d->inv->dt_full) {
			dt_err(DT_EXIT_ERROR, "it is an incremental dump but has no parent link");
			goto fail;
		}
		return 0;
	}
	d->whole = true;
	if (read_pstree(d))
		goto fail;
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dump_proc *p = &d->procs[i];
		char name[64];

		snprintf(name, sizeof(name), "mm-%u.img", p->pid);
		if (img_read_single(d->dirfd, name, IMG_MM_MAGIC, &mm_entry__descriptor, &m))
			goto fail;
		p->mm = (MmEntry *)m;
		p->pm = (int)d->npms;
		add_pm(d, false, p->pid);
	}
	if (find_shmem_files(d))
		goto fail;
	for (size_t i = 0; i < d->npms; i++)
		if (read_pagemap(d, &d->pms[i]))
			goto fail;
	d->has_parent = fstatat(d->dirfd, "parent", &st, AT_SYMLINK_NOFOLLOW) == 0;
	return 0;
fail:
	dt_err_prefix("dump %s: ", d->path[0] ? d->path : dir);
	dump_free(d);
	return -1;
}

const struct dump_proc *dump_proc_find(const struct dump *d, unsigned int pid)
{
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i].pid == pid)
			return &d->procs[i];
	return NULL;
}

const struct pm_file *dump_pm_find(const struct dump *d, const char *name)
{
	for (size_t i = 0; i < d->npms; i++)
		if (!strcmp(d->pms[i].name, name))
			return &d->pms[i];
	return NULL;
}

static const struct dump_entry *entries_find(const struct dump_entry *ents, size_t n,
					     uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct dump_entry *e = &ents[mid];

		if (addr < e->vaddr)
			hi = mid;
		else if (addr >= e->vaddr + e->nr_pages * PAGE_SIZE)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

const struct dump_entry *dump_find(const struct dump *d, uint64_t addr)
{
	return entries_find(d->ents, d->nents, addr);
}

const struct dump_entry *pm_find(const struct pm_file *pm, uint64_t addr)
{
	return pm ? entries_find(pm->ents, pm->nents, addr) : NULL;
}

static void entries_covered(const struct dump_entry *ents, size_t n, struct range_set *out)
{
	range_set_clear(out);
	for (size_t i = 0; i < n; i++)
		if (ents[i].flags & (PE_PRESENT | PE_PARENT) &&
		    range_set_add(out, ents[i].vaddr, ents[i].vaddr + ents[i].nr_pages * PAGE_SIZE))
			die_oom();
}

void dump_covered(const struct dump *d, struct range_set *out)
{
	entries_covered(d->ents, d->nents, out);
}

void pm_covered(const struct pm_file *pm, struct range_set *out)
{
	if (pm)
		entries_covered(pm->ents, pm->nents, out);
	else
		range_set_clear(out);
}

/* Down the chain from dump i: the first entry holding the bytes, by find. */
static const unsigned char *resolve_down(const struct dump_chain *c, int i, uint64_t addr,
					 const struct dump_entry *(*find)(const struct dump *d,
									  const char *name,
									  uint64_t addr),
					 const char *name)
{
	for (; i < c->n; i++) {
		const struct dump_entry *e = find(&c->d[i], name, addr);

		if (!e)
			return NULL;
		if (e->flags & PE_PRESENT)
			return dump_entry_data(e) + (addr - e->vaddr);
		if (!(e->flags & PE_PARENT))
			return NULL;
	}
	return NULL;
}

static const struct dump_entry *find_in_view(const struct dump *d, const char *name,
					     uint64_t addr)
{
	(void)name;
	return dump_find(d, addr);
}

static const struct dump_entry *find_in_pm(const struct dump *d, const char *name, uint64_t addr)
{
	return pm_find(dump_pm_find(d, name), addr);
}

const unsigned char *chain_page(const struct dump_chain *c, int i, uint64_t addr)
{
	return resolve_down(c, i, addr, find_in_view, NULL);
}

const unsigned char *chain_pm_page(const struct dump_chain *c, int i, const char *name,
				   uint64_t addr)
{
	return resolve_down(c, i, addr, find_in_pm, name);
}

static int cmp_entry(const void *x, const void *y)
{
	const struct dump_entry *a = x, *b = y;

	return a->vaddr < b->vaddr ? -1 : a->vaddr > b->vaddr;
}

static void view_add(struct dump *d, size_t *cap, const struct dump_entry *e)
{
	if (d->nents == *cap)
		d->ents = xrealloc(d->ents, (*cap = *cap ? *cap * 2 : 64) * sizeof(*d->ents));
	d->ents[d->nents++] = *e;
	if (e->flags & PE_PRESENT)
		d->pages_present += e->nr_pages;
	else if (e->flags & PE_PARENT)
		d->pages_parent += e->nr_pages;
}

/* The entries of shared object pm that mapping v shows, at v's addresses. */
static void view_add_shmem(struct dump *d, size_t *cap, const struct pm_file *pm,
			   const VmaEntry *v)
{
	uint64_t lo = v->pgoff, hi = v->pgoff + (v->end - v->start);

	for (size_t k = 0; k < pm->nents; k++) {
		const struct dump_entry *e = &pm->ents[k];
		uint64_t s = e->vaddr, t = e->vaddr + e->nr_pages * PAGE_SIZE;
		struct dump_entry x = *e;

		if (t <= lo || s >= hi)
			continue;
		if (s < lo)
			s = lo;
		if (t > hi)
			t = hi;
		x.vaddr = v->start + (s - v->pgoff);
		x.nr_pages = (t - s) / PAGE_SIZE;
		if (e->flags & PE_PRESENT)
			x.offset = e->offset + (s - e->vaddr);
		view_add(d, cap, &x);
	}
}

/*
 * Process pid's view of dump d: its private entries, and the shared
 * objects where top (the process in the dump asked for) maps them.
 */
static int view_build(struct dump *d, const struct dump_proc *top, unsigned int pid)
{
	const struct dump_proc *p = dump_proc_find(d, pid);
	size_t cap = 0;

	view_free(d);
	d->pid = pid;
	d->pstree = p ? p->pstree : NULL;
	d->mm = p ? p->mm : NULL;
	if (p && p->pm >= 0)
		for (size_t k = 0; k < d->pms[p->pm].nents; k++)
			view_add(d, &cap, &d->pms[p->pm].ents[k]);
	for (size_t i = 0; i < top->mm->n_vmas; i++) {
		const VmaEntry *v = top->mm->vmas[i];
		char name[64];
		const struct pm_file *pm;

		if (!v->shmid || v->end <= v->start)
			continue;
		snprintf(name, sizeof(name), "pagemap-shmem-%llu.img", (unsigned long long)v->shmid);
		pm = dump_pm_find(d, name);
		if (pm)
			view_add_shmem(d, &cap, pm, v);
	}
	if (d->nents)
		qsort(d->ents, d->nents, sizeof(*d->ents), cmp_entry);
	for (size_t k = 1; k < d->nents; k++)
		if (d->ents[k].vaddr < d->ents[k - 1].vaddr + d->ents[k - 1].nr_pages * PAGE_SIZE)
			return dt_err(DT_EXIT_ERROR, "dump %s is corrupt: process %u's private and "
				      "shared pages overlap at %#llx", d->path, pid,
				      (unsigned long long)d->ents[k].vaddr);
	return 0;
}

int chain_select(struct dump_chain *c, unsigned int pid)
{
	const struct dump_proc *top = dump_proc_find(&c->d[0], pid);

	if (!top)
		return dt_err(DT_EXIT_ERROR, "dump %s holds no process %u", c->d[0].path, pid);
	for (int i = 0; i < c->n; i++)
		if (view_build(&c->d[i], top, pid))
			return -1;
	return 0;
}

/* Every PE_PARENT page of d must have content in its parent. */
static int check_parent_cover(const struct dump *d, const struct dump *parent)
{
	struct range_set need = RANGE_SET_INIT, have = RANGE_SET_INIT, missing = RANGE_SET_INIT;
	int err = 0;

	for (size_t k = 0; k < d->npms && !err; k++) {
		const struct pm_file *pm = &d->pms[k];

		range_set_clear(&need);
		for (size_t i = 0; i < pm->nents; i++)
			if ((pm->ents[i].flags & PE_PARENT) &&
			    range_set_add(&need, pm->ents[i].vaddr,
					  pm->ents[i].vaddr + pm->ents[i].nr_pages * PAGE_SIZE))
				die_oom();
		if (!need.n)
			continue;
		pm_covered(dump_pm_find(parent, pm->name), &have);
		if (range_set_subtract(&missing, &need, &have))
			die_oom();
		if (missing.n)
			err = dt_err(DT_EXIT_ERROR, "dump %s: %llu pages of %s marked in-parent are "
				     "missing from parent %s (first at %#llx)", d->path,
				     (unsigned long long)range_set_pages(&missing), pm->name,
				     parent->path, (unsigned long long)missing.r[0].start);
		/* a pid's private pages go on only in the very same process */
		if (!err && !pm->shmem) {
			const struct dump_proc *a = dump_proc_find(d, (unsigned int)pm->key);
			const struct dump_proc *b = dump_proc_find(parent, (unsigned int)pm->key);

			if (a && b && a->pstree->has_dt_start_time && b->pstree->has_dt_start_time &&
			    a->pstree->dt_start_time != b->pstree->dt_start_time)
				err = dt_err(DT_EXIT_ERROR, "dump %s: process %u refers to pages of "
					     "parent %s, where pid %u is another process", d->path,
					     (unsigned int)pm->key, parent->path,
					     (unsigned int)pm->key);
		}
	}
	range_set_free(&need);
	range_set_free(&have);
	range_set_free(&missing);
	return err;
}

/* The parent link must lead to the very dump the child was taken after. */
static int check_parent_identity(const struct dump *d, const struct dump *parent)
{
	const char *want = d->inv->dt_parent_id, *have = parent->inv->dt_dump_id;

	if (want && (!have || strcmp(want, have)))
		return dt_err(DT_EXIT_ERROR, "dump %s: its parent link leads to %s, which is not "
			      "the dump it was taken after (id %s, found %s)", d->path, parent->path,
			      want, have ? have : "none");
	return 0;
}

/* "../NAME": a directory beside the dump */
static bool sibling_link(const char *link)
{
	const char *name = link + 3;

	return !strncmp(link, "../", 3) && *name && !strchr(name, '/') && strcmp(name, ".") &&
	       strcmp(name, "..");
}

/*
 * The directory d's parent link names.  The link is relative and passes
 * through no symlink; it leads beside d ("../NAME"), or, when d records
 * the id of the dump it was taken after (check_parent_identity holds it to
 * that), to that dump wherever dirtytrack wrote it; and the parent
 * belongs to d's owner.
 */
static int open_parent_dir(const struct dump *d, const char *top)
{
	char link[PATH_MAX], path[PATH_MAX];
	struct stat ds, ps;
	ssize_t n = readlinkat(d->dirfd, "parent", link, sizeof(link) - 1);
	int fd;

	if (n < 0)
		return dt_err_sys(0, "dump %s: %s/parent is not a symlink", top, d->path);
	link[n] = '\0';
	if (link[0] == '/')
		return dt_err(DT_EXIT_ERROR, "dump %s: %s/parent is absolute (%s): a parent link is "
			      "relative", top, d->path, link);
	if (!d->inv->dt_parent_id && !sibling_link(link))
		return dt_err(DT_EXIT_ERROR, "dump %s: %s/parent (%s) does not lie beside it: a dump "
			      "that does not record its parent's id has its parent at ../NAME", top,
			      d->path, link);
	fd = path_open_relative_dir(d->dirfd, link);
	if (fd < 0) {
		if (errno == ENOENT)
			return dt_err(DT_EXIT_ERROR, "dump %s: its parent is missing (%s/parent points "
				      "nowhere)", top, d->path);
		if (errno == ELOOP)
			return dt_err(DT_EXIT_ERROR, "dump %s: %s/parent (%s) passes through a "
				      "symlink: refusing to follow it", top, d->path, link);
		return dt_err_sys(0, "dump %s: %s/parent", top, d->path);
	}
	if (fstat(fd, &ps) || fstat(d->dirfd, &ds) || path_of_fd(fd, path, sizeof(path))) {
		dt_err_sys(0, "dump %s: %s/parent", top, d->path);
		close(fd);
		return -1;
	}
	if (ps.st_uid != ds.st_uid) {
		close(fd);
		return dt_err(DT_EXIT_ERROR, "dump %s: %s/parent leads to %s of uid %u, the dump "
			      "is of uid %u: refusing to follow it", top, d->path, path,
			      (unsigned)ps.st_uid, (unsigned)ds.st_uid);
	}
	return fd;
}

static int open_chain(struct dump_chain *c, const char *dir, bool whole)
{
	int cap = 4, fd;

	memset(c, 0, sizeof(*c));
	fd = path_open_dir(dir, 0);	/* its error names dir */
	if (fd < 0)
		return -1;
	c->d = xcalloc(cap, sizeof(*c->d));
	for (;;) {
		struct dump *d;

		if (c->n == cap)
			c->d = xrealloc(c->d, (cap *= 2) * sizeof(*c->d));
		d = &c->d[c->n];
		if (dump_open(d, fd, dir, whole || c->n == 0))
			goto fail;
		c->n++;
		for (int i = 0; i < c->n - 1; i++)
			if (!strcmp(c->d[i].path, d->path)) {
				dt_err(DT_EXIT_ERROR, "dump %s: its parent chain loops back to %s",
				       c->d[0].path, d->path);
				goto fail;
			}
		if (c->n > 1 && check_parent_identity(&c->d[c->n - 2], d))
			goto fail;
		/* a link of ours looked at, not read: the dump that wrote the child checked it */
		if (c->n > 1 && c->d[c->n - 2].whole && d->whole &&
		    check_parent_cover(&c->d[c->n - 2], d))
			goto fail;
		if (!d->has_parent) {
			uint64_t in_parent = 0;

			for (size_t k = 0; k < d->npms; k++)
				in_parent += d->pms[k].pages_parent;
			if (in_parent) {
				dt_err(DT_EXIT_ERROR, "dump %s: %llu pages are marked in-parent but it "
				       "has no parent link", d->path, (unsigned long long)in_parent);
				goto fail;
			}
			if (chain_select(c, c->d[0].procs[0].pid))
				goto fail;
			return 0;
		}
		if (c->n >= CHAIN_MAX_DEPTH) {
			dt_err(DT_EXIT_ERROR, "dump %s: parent chain deeper than %d", c->d[0].path,
			       CHAIN_MAX_DEPTH);
			goto fail;
		}
		fd = open_parent_dir(d, c->d[0].path);
		if (fd < 0)
			goto fail;
		dir = d->path;
	}
fail:
	chain_close(c);
	return -1;
}

int chain_open(struct dump_chain *c, const char *dir)
{
	return open_chain(c, dir, true);
}

int chain_open_tip(struct dump_chain *c, const char *dir)
{
	return open_chain(c, dir, false);
}

void chain_close(struct dump_chain *c)
{
	for (int i = 0; i < c->n; i++)
		dump_free(&c->d[i]);
	free(c->d);
	c->d = NULL;
	c->n = 0;
}
