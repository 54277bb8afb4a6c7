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
	char mm[64];
	struct dirent *de;
	DIR *dir;
	int err = 0, fd;

	snprintf(mm, sizeof(mm), "mm-%u.img", top->pid);
	if (meta_copy_file(top->dirfd, to, "pstree.img", IMG_PSTREE_MAGIC) ||
	    meta_copy_file(top->dirfd, to, mm, IMG_MM_MAGIC))
		return -1;
	*copied = 2;
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

/* Every page the top dump describes, resolved, in address order. */
static int write_pages(const struct dump_chain *c, const struct range_set *pages,
		       struct page_sink *s)
{
	const unsigned char *run = NULL;
	size_t run_len = 0;

	range_set_for_each(r, pages) {
		for (uint64_t a = r->start; a < r->end; a += PAGE_SIZE) {
			const unsigned char *p = chain_page(c, 0, a);

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

int chain_flatten(const struct dump_chain *c, const char *out, struct flatten_result *r)
{
	const struct dump *top = &c->d[0];
	struct range_set pages = RANGE_SET_INIT, none = RANGE_SET_INIT;
	struct dump_identity id;
	struct dump_dir dd;
	struct dir_sink sink;
	bool sink_open = false;

	memset(r, 0, sizeof(*r));
	if (meta_read_identity(top, &id))
		return -1;
	id.full = true;
	id.parent_id[0] = '\0';
	if (dump_dir_begin(&dd, out, false))
		return -1;
	dump_covered(top, &pages);
	if (dir_sink_open(&sink, dd.fd, top->pid))
		goto fail;
	sink_open = true;
	if (sink_put_entries(&sink.base, &pages, &none) || write_pages(c, &pages, &sink.base))
		goto fail;
	sink_open = false;
	if (sink.base.ops->finish(&sink.base))
		goto fail;
	r->pages_written = sink.base.pages_written;
	r->bytes = r->pages_written * PAGE_SIZE;
	if (copy_meta(top, dd.fd, &r->files_copied) || meta_write_inventory(dd.fd, &id) ||
	    dump_dir_commit(&dd))
		goto fail;
	range_set_free(&pages);
	return 0;
fail:
	if (sink_open)
		sink.base.ops->abort(&sink.base);
	dump_dir_abort(&dd);
	range_set_free(&pages);
	dt_err_prefix("flattening into %s: ", out);
	return -1;
}
