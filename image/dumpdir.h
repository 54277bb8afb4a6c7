/* SPDX-License-Identifier: MIT */
/*
 * A dump directory is complete or absent: it is written under a temporary
 * name beside its final one and renamed into place at the end.
 */
#ifndef DT_DUMPDIR_H
#define DT_DUMPDIR_H

#include <limits.h>

struct dump_dir {
	char final[PATH_MAX];
	char tmp[PATH_MAX];
	int fd;			/* the temporary directory */
};

/* path must not exist, or be an empty directory (not a symlink). */
int dump_dir_begin(struct dump_dir *d, const char *path);
/* The `parent` symlink, relative, as CRIU writes it. */
int dump_dir_link_parent(struct dump_dir *d, const char *parent_path);
int dump_dir_commit(struct dump_dir *d);
void dump_dir_abort(struct dump_dir *d);

#endif
