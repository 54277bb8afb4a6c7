// SPDX-License-Identifier: MIT
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

static void dump_free(struct dump *d)
{
	if (d->inv)
		inventory_entry__free_unpacked(d->inv, NULL);
	if (d->pstree)
		pstree_entry__free_unpacked(d->pstree, NULL);
	if (d->mm)
		mm_entry__free_unpacked(d->mm, NULL);
	if (d->pages && d->pages_size)
		munmap((void *)d->pages, d->pages_size);
	if (d->dirfd >= 0)
		close(d->dirfd);
	free(d->ents);
	memset(d, 0, sizeof(*d));
	d->dirfd = -1;
}

int dump_parse_pagemap(struct dump *d, struct img_in *in, uint64_t *pages_bytes)
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

static int read_pagemap(struct dump *d)
{
	char name[64];
	struct img_in in;
	uint64_t off;

	snprintf(name, sizeof(name), "pagemap-%u.img", d->pid);
	if (img_open(&in, d->dirfd, name, IMG_PAGEMAP_MAGIC) ||
	    dump_parse_pagemap(d, &in, &off))
		return -1;
	snprintf(name, sizeof(name), "pages-%u.img", d->pages_id);
	/* the pages file must hold exactly what the entries promise */
	{
		off_t size;
		int fd = path_open_image(d->dirfd, name, SIZE_MAX, &size);

		if (fd < 0)
			return -1;
		if ((uint64_t)size != off) {
			close(fd);
			return dt_err(DT_EXIT_ERROR, "%s/%s holds %lld bytes, its pagemap promises %llu "
				      "(truncated or corrupt)", d->path, name, (long long)size,
				      (unsigned long long)off);
		}
		d->pages_size = off;
		if (off) {
			void *p = mmap(NULL, off, PROT_READ, MAP_PRIVATE, fd, 0);

			if (p == MAP_FAILED) {
				close(fd);
				return dt_err_sys(0, "mapping %s/%s", d->path, name);
			}
			madvise(p, off, MADV_SEQUENTIAL);
			d->pages = p;
		}
		close(fd);
	}
	return 0;
}

/*
 * d takes dirfd (and closes it on failure); dir names it in messages.
 * whole: every image; else the inventory, and its pagemap only looked at
 * (a regular file, not through a symlink).
 */
static int dump_open(struct dump *d, int dirfd, const char *dir, bool whole)
{
	struct stat st;
	ProtobufCMessage *m;
	char name[64];

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
		off_t size;
		int fd;

		d->pid = d->inv->dt_pid;
		snprintf(name, sizeof(name), "pagemap-%u.img", d->pid);
		fd = path_open_image(d->dirfd, name, img_max_size(IMG_PAGEMAP_MAGIC), &size);
		if (fd < 0)
			goto fail;
		close(fd);
		return 0;
	}
	if (img_read_single(d->dirfd, "pstree.img", IMG_PSTREE_MAGIC, &pstree_entry__descriptor, &m))
		goto fail;
	d->pstree = (PstreeEntry *)m;
	d->pid = d->pstree->pid;
	snprintf(name, sizeof(name), "mm-%u.img", d->pid);
	if (img_read_single(d->dirfd, name, IMG_MM_MAGIC, &mm_entry__descriptor, &m))
		goto fail;
	d->mm = (MmEntry *)m;
	if (read_pagemap(d))
		goto fail;
	d->whole = true;
	return 0;
fail:
	dt_err_prefix("dump %s: ", d->path[0] ? d->path : dir);
	dump_free(d);
	return -1;
}

const struct dump_entry *dump_find(const struct dump *d, uint64_t addr)
{
	size_t lo = 0, hi = d->nents;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct dump_entry *e = &d->ents[mid];

		if (addr < e->vaddr)
			hi = mid;
		else if (addr >= e->vaddr + e->nr_pages * PAGE_SIZE)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

void dump_covered(const struct dump *d, struct range_set *out)
{
	range_set_clear(out);
	for (size_t i = 0; i < d->nents; i++)
		if (d->ents[i].flags & (PE_PRESENT | PE_PARENT) &&
		    range_set_add(out, d->ents[i].vaddr,
				  d->ents[i].vaddr + d->ents[i].nr_pages * PAGE_SIZE))
			die_oom();
}

const unsigned char *chain_page(const struct dump_chain *c, int i, uint64_t addr)
{
	for (; i < c->n; i++) {
		const struct dump_entry *e = dump_find(&c->d[i], addr);

		if (!e)
			return NULL;
		if (e->flags & PE_PRESENT)
			return c->d[i].pages + e->offset + (addr - e->vaddr);
		if (!(e->flags & PE_PARENT))
			return NULL;
	}
	return NULL;
}

/* Every PE_PARENT page of d must have content in its parent. */
static int check_parent_cover(const struct dump *d, const struct dump *parent)
{
	struct range_set need = RANGE_SET_INIT, have = RANGE_SET_INIT, missing = RANGE_SET_INIT;
	int err = 0;

	for (size_t i = 0; i < d->nents; i++)
		if ((d->ents[i].flags & PE_PARENT) &&
		    range_set_add(&need, d->ents[i].vaddr,
				  d->ents[i].vaddr + d->ents[i].nr_pages * PAGE_SIZE))
			die_oom();
	dump_covered(parent, &have);
	if (range_set_subtract(&missing, &need, &have))
		die_oom();
	if (missing.n)
		err = dt_err(DT_EXIT_ERROR, "dump %s: %llu pages marked in-parent are missing from "
			     "parent %s (first at %#llx)", d->path,
			     (unsigned long long)range_set_pages(&missing), parent->path,
			     (unsigned long long)missing.r[0].start);
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
		/* a link of ours checked, not decoded: the dump that wrote the child checked it */
		if (c->n > 1 && (c->d[c->n - 2].whole && d->whole) &&
		    check_parent_cover(&c->d[c->n - 2], d))
			goto fail;
		if (!d->has_parent) {
			if (d->whole && d->pages_parent) {
				dt_err(DT_EXIT_ERROR, "dump %s: %llu pages are marked in-parent but it "
				       "has no parent link", d->path,
				       (unsigned long long)d->pages_parent);
				goto fail;
			}
			if (!d->whole && !d->inv->dt_full) {
				dt_err(DT_EXIT_ERROR, "dump %s: it is an incremental dump but has no "
				       "parent link", d->path);
				goto fail;
			}
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
