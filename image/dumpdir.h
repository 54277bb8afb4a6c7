/* SPDX-License-Identifier: MIT */
/*
 * A dump directory is complete or absent: it is written under a temporary
 * name beside its final one and renamed into place at the end.  Everything
 * happens relative to the fd of the directory that holds it, reached as
 * lib/path.h walks a path the user named.
 */
#ifndef DT_DUMPDIR_H
#define DT_DUMPDIR_H

#include <limits.h>
#include <stdbool.h>

struct dump_dir {
	char final[PATH_MAX];		/* as the user named it, for messages */
	char leaf[NAME_MAX + 1];	/* its name in pfd */
	char tmp[NAME_MAX + 1];		/* the temporary name in pfd; "" when none */
	int pfd;			/* the directory holding it */
	int fd;				/* the temporary directory */
};

/*
 * path must not exist, or be an empty directory (not a symlink); with
 * make_parent, its parent directory is created (0700) when missing.
 */
int dump_dir_begin(struct dump_dir *d, const char *path, bool make_parent);
/* The `parent` symlink, relative, as CRIU writes it. */
int dump_dir_link_parent(struct dump_dir *d, const char *parent_path);
int dump_dir_commit(struct dump_dir *d);
void dump_dir_abort(struct dump_dir *d);

#endif
