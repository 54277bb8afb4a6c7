// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/dumpdir.h"
#include "image/flatten.h"
#include "image/imgfile.h"
#include "image/meta.h"
#include "image/sink.h"
#include "lib/err.h"
#include "lib/util.h"

static const unsigned char zero_page[PAGE_SIZE];

/* The images around the pages, unchanged from the top dump. */
static int copy_meta(const struct dump *top, int to, int *copied)
{
	struct dirent *de;
	DIR *dir;
	int err = 0, fd;

	if (meta_copy_file(top->dirfd, to, "pstree.img", IMG_PSTREE_MAGIC))
		return -1;
	*copied = 1;
	for (size_t i = 0; i < top->nprocs; i++) {
		char mm[64];

		snprintf(mm, sizeof(mm), "mm-%u.img", top->procs[i].pid);
		if (meta_copy_file(top->dirfd, to, mm, IMG_MM_MAGIC))
			return -1;
		++*copied;
	}
	if (faccessat(top->dirfd, "stats-dump", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		if (meta_copy_file(top->dirfd, to, "stats-dump", IMG_STATS_MAGIC))
			return -1;
		++*copied;
	}
	fd = dup(top->dirfd);
	dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return dt_err_sys(0, "listing %s", top->path);
	}
	rewinddir(dir);		/* the dup shares the offset of dirfd */
	while (!err && (de = readdir(dir)))
		if (!fnmatch("core-*.img", de->d_name, 0)) {
			err = meta_copy_file(top->dirfd, to, de->d_name, IMG_CORE_MAGIC);
			++*copied;
		}
	closedir(dir);
	return err;
}

/* Every page one pagemap of the top dump describes, resolved, in order. */
static int write_pages(const struct dump_chain *c, const char *pm, const struct range_set *pages,
		       struct page_sink *s)
{
	const unsigned char *run = NULL;
	size_t run_len = 0;

	range_set_for_each(r, pages) {
		for (uint64_t a = r->start; a < r->end; a += PAGE_SIZE) {
			const unsigned char *p = chain_pm_page(c, 0, pm, a);

			/* chain_open checked every in-parent page is held: this is defensive */
			if (!p)
				p = zero_page;
			if (run && p == run + run_len && p != zero_page) {
				run_len += PAGE_SIZE;
				continue;
			}
			if (run && s->ops->pages(s, run, run_len))
				return -1;
			run = p;
			run_len = PAGE_SIZE;
		}
	}
	return run ? s->ops->pages(s, run, run_len) : 0;
}

/* One pagemap file and its pages, every page resolved down the chain. */
static int flatten_pm(const struct dump_chain *c, const struct pm_file *pm, int to,
		      uint32_t pages_id, uint64_t *written)
{
	struct range_set pages = RANGE_SET_INIT, none = RANGE_SET_INIT;
	struct dir_sink sink;
	int err;

	pm_covered(pm, &pages);
	if (dir_sink_open(&sink, to, pm->name, pages_id)) {
		range_set_free(&pages);
		return -1;
	}
	err = sink_put_entries(&sink.base, &pages, &none) ||
	      write_pages(c, pm->name, &pages, &sink.base);
	range_set_free(&pages);
	if (err) {
		sink.base.ops->abort(&sink.base);
		return -1;
	}
	err = sink.base.ops->finish(&sink.base);
	*written += sink.base.pages_written;
	return err;
}

int chain_flatten(const struct dump_chain *c, const char *out, struct flatten_result *r)
{
	const struct dump *top = &c->d[0];
	struct dump_identity id;
	struct dump_dir dd;

	memset(r, 0, sizeof(*r));
	if (meta_read_identity(top, &id))
		return -1;
	id.full = true;
	id.parent_id[0] = '\0';
	if (dump_dir_begin(&dd, out, false))
		return -1;
	for (size_t i = 0; i < top->npms; i++)
		if (flatten_pm(c, &top->pms[i], dd.fd, (uint32_t)i + 1, &r->pages_written))
			goto fail;
	r->bytes = r->pages_written * PAGE_SIZE;
	if (copy_meta(top, dd.fd, &r->files_copied) || meta_write_inventory(dd.fd, &id) ||
	    dump_dir_commit(&dd))
		goto fail;
	return 0;
fail:
	dump_dir_abort(&dd);
	dt_err_prefix("flattening into %s: ", out);
	return -1;
}
