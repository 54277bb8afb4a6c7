/* SPDX-License-Identifier: MIT */
/*
 * Path safety.  A path the user names on the command line is walked one
 * component at a time, relative to directory fds: a symlink in it is
 * followed only where fs.protected_symlinks would let it be followed (we
 * apply the rule ourselves: the sysctl may be off), at most PATH_MAX_LINKS
 * of them.  Everything below the directory it leads to is opened relative
 * to that fd, one component, never through a symlink.
 */
#ifndef DT_PATH_H
#define DT_PATH_H

#include <stddef.h>
#include <sys/types.h>

#define PATH_MAX_LINKS 8

/* What path_open_dir may do with the last component. */
enum {
	PATH_DIR_CREATE = 1 << 0,	/* mkdir it (0700) when it is missing */
	PATH_LEAF_NOFOLLOW = 1 << 1,	/* the last component itself must not be a symlink */
};

/* An O_RDONLY|O_DIRECTORY fd of the directory the user named, or -1. */
int path_open_dir(const char *path, unsigned int flags);
/*
 * The directory holding path's last component (opened as path_open_dir
 * does), and that component in leaf.  A path ending in "." or ".." has
 * no last component to create: refused.
 */
int path_open_parent(const char *path, char *leaf, size_t len);
/* The canonical absolute path of an open fd (from /proc/self/fd). */
int path_of_fd(int fd, char *buf, size_t len);

/*
 * One component name below dirfd, never through a symlink (openat2 with
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, O_NOFOLLOW where the kernel lacks
 * it).  Sets errno (ELOOP for a symlink) and returns -1; records nothing.
 */
int path_openat(int dirfd, const char *name, int flags, mode_t mode);

/*
 * An image file below dirfd: a regular file only (O_NONBLOCK so that a
 * FIFO cannot block the open, fstat after it), of at most max bytes.
 * Returns the fd and its size, or -1 with one error naming the file.
 */
int path_open_image(int dirfd, const char *name, size_t max, off_t *size);
/* Read such a file whole (NUL-terminated); NULL with the error recorded. */
char *path_read_image(int dirfd, const char *name, size_t max, size_t *len);

/*
 * Resolve a relative link text below dirfd with no symlink on the way
 * ('..' allowed): the fd of the directory it names, or -1 and errno.
 */
int path_open_relative_dir(int dirfd, const char *rel);

#endif
