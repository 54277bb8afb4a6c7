// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/path.h"
#include "lib/uapi.h"
#include "lib/util.h"

#define RESOLVE_SAFE (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

static bool no_openat2;		/* the kernel said ENOSYS once: O_NOFOLLOW per step */

static int openat2_safe(int dirfd, const char *name, int flags, mode_t mode, __u64 resolve)
{
	struct open_how how = {
		.flags = (unsigned)(flags | O_CLOEXEC),	/* RESOLVE_NO_SYMLINKS: ELOOP */
		.mode = flags & (O_CREAT | O_TMPFILE) ? mode : 0,
		.resolve = resolve,
	};
	int fd;

	if (no_openat2) {
		errno = ENOSYS;
		return -1;
	}
	fd = (int)syscall(__NR_openat2, dirfd, name, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		no_openat2 = true;
	return fd;
}

int path_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	int fd;

	if (!*name || strchr(name, '/') || !strcmp(name, "..")) {
		errno = EINVAL;
		return -1;
	}
	fd = openat2_safe(dirfd, name, flags, mode, RESOLVE_BENEATH | RESOLVE_SAFE);
	if (fd < 0 && errno == ENOSYS)
		fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	return fd;
}

int path_of_fd(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0)
		return dt_err_sys(0, "finding the path of an open directory");
	if ((size_t)n >= len - 1)
		return dt_err(DT_EXIT_ERROR, "path too long");
	buf[n] = '\0';
	return 0;
}

/*
 * fs.protected_symlinks: in a sticky world-writable directory, a symlink
 * is followed only by its owner, or when it belongs to the directory's owner.
 */
static int check_link(const char *path, int dirfd, const char *name, const struct stat *link)
{
	char dir[PATH_MAX];
	struct stat ds;

	if (fstat(dirfd, &ds))
		return dt_err_sys(0, "%s", path);
	if (!(ds.st_mode & S_ISVTX) || !(ds.st_mode & S_IWOTH) || link->st_uid == geteuid() ||
	    link->st_uid == ds.st_uid)
		return 0;
	if (path_of_fd(dirfd, dir, sizeof(dir)))
		return -1;
	return dt_err(DT_EXIT_PERM, "%s: refusing to follow %s%s%s, a symlink of uid %u in the "
		      "sticky world-writable directory %s", path, strcmp(dir, "/") ? dir : "", "/",
		      name, (unsigned)link->st_uid, dir);
}

/* Next component of *rest (NUL-terminated in place); NULL at the end. */
static char *next_component(char **rest, bool *last)
{
	char *p = *rest, *c;

	while (*p == '/')
		p++;
	if (!*p)
		return NULL;
	c = p;
	while (*p && *p != '/')
		p++;
	if (*p)
		*p++ = '\0';
	while (*p == '/')
		p++;
	*rest = p;
	*last = !*p;
	return c;
}

static int open_root(const char *p)
{
	return open(*p == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/*
 * Walk path; with leaf, stop before the last component and return it.
 * Returns an O_PATH fd of the directory reached.
 */
static int walk(const char *path, unsigned int flags, char *leaf, size_t leaf_len)
{
	char *buf = xmalloc(PATH_MAX * 2), *rest = buf, *c;
	int cur, links = 0;
	bool last = false;

	if (!*path || strlen(path) >= PATH_MAX) {
		free(buf);
		return dt_err(DT_EXIT_ERROR, "'%s': bad path", path);
	}
	snprintf(buf, PATH_MAX * 2, "%s", path);
	cur = open_root(buf);
	if (cur < 0) {
		free(buf);
		return dt_err_sys(0, "%s", path);
	}
	while ((c = next_component(&rest, &last))) {
		struct stat st;
		int fd;

		if (leaf && last) {
			if (!strcmp(c, ".") || !strcmp(c, "..") || strlen(c) >= leaf_len) {
				dt_err(DT_EXIT_ERROR, "'%s': bad path", path);
				goto fail;
			}
			snprintf(leaf, leaf_len, "%s", c);
			free(buf);
			return cur;
		}
		if (!strcmp(c, "."))
			continue;
		fd = openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && last && (flags & PATH_DIR_CREATE)) {
			if (mkdirat(cur, c, 0700) && errno != EEXIST) {
				dt_err_sys(0, "creating %s", path);
				goto fail;
			}
			fd = openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0 || fstat(fd, &st)) {
			dt_err_sys(0, "%s", path);
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n;

			if (last && (flags & PATH_LEAF_NOFOLLOW)) {
				dt_err(DT_EXIT_ERROR, "%s is a symlink: refusing to follow it", path);
				close(fd);
				goto fail;
			}
			if (check_link(path, cur, c, &st)) {
				close(fd);
				goto fail;
			}
			n = readlinkat(fd, "", target, sizeof(target) - 1);
			close(fd);
			if (++links > PATH_MAX_LINKS || n <= 0 ||
			    (size_t)n + strlen(rest) + 2 >= PATH_MAX * 2) {
				errno = n < 0 ? errno : ELOOP;
				dt_err_sys(0, "%s", path);
				goto fail;
			}
			target[n] = '\0';
			/* the link's text takes the place of its name in what is left */
			memmove(buf + n + 1, rest, strlen(rest) + 1);
			memcpy(buf, target, n);
			buf[n] = '/';
			rest = buf;
			if (target[0] == '/') {
				close(cur);
				cur = open_root("/");
				if (cur < 0) {
					dt_err_sys(0, "%s", path);
					free(buf);
					return -1;
				}
			}
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			dt_err(DT_EXIT_ERROR, "%s: %s is not a directory", path, c);
			close(fd);
			goto fail;
		}
		close(cur);
		cur = fd;
	}
	if (leaf) {
		dt_err(DT_EXIT_ERROR, "'%s': bad path", path);
		goto fail;
	}
	free(buf);
	return cur;
fail:
	close(cur);
	free(buf);
	return -1;
}

static int reopen_dir(int opath, const char *path)
{
	int fd = openat(opath, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		dt_err_sys(0, "%s", path);
	close(opath);
	return fd;
}

int path_open_dir(const char *path, unsigned int flags)
{
	int fd = walk(path, flags, NULL, 0);

	return fd < 0 ? -1 : reopen_dir(fd, path);
}

int path_open_parent(const char *path, char *leaf, size_t len)
{
	int fd = walk(path, 0, leaf, len);

	return fd < 0 ? -1 : reopen_dir(fd, path);
}

int path_open_relative_dir(int dirfd, const char *rel)
{
	char *buf, *rest, *c;
	bool last;
	int cur, fd;

	fd = openat2_safe(dirfd, rel, O_RDONLY | O_DIRECTORY, 0, RESOLVE_SAFE);
	if (fd >= 0 || errno != ENOSYS)
		return fd;
	/* no openat2: one component at a time, none a symlink */
	if (*rel == '/') {
		errno = EXDEV;
		return -1;
	}
	buf = xstrdup(rel);
	rest = buf;
	cur = dup(dirfd);
	while (cur >= 0 && (c = next_component(&rest, &last))) {
		fd = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOTDIR) {
			struct stat st;

			if (fstatat(cur, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				errno = ELOOP;
		}
		close(cur);
		cur = fd;
	}
	free(buf);
	return cur;
}

int path_open_image(int dirfd, const char *name, size_t max, off_t *size)
{
	struct stat st;
	int fd = path_openat(dirfd, name, O_RDONLY | O_NONBLOCK, 0);

	if (fd < 0) {
		if (errno == ENOENT)
			return dt_err(DT_EXIT_ERROR, "%s is missing", name);
		if (errno == ELOOP)
			return dt_err(DT_EXIT_ERROR, "%s is a symlink: refusing to follow it", name);
		return dt_err_sys(0, "opening %s", name);
	}
	if (fstat(fd, &st)) {
		dt_err_sys(0, "%s", name);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return dt_err(DT_EXIT_ERROR, "%s is not a regular file (%s)", name,
			      S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory" :
			      S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a socket");
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return dt_err(DT_EXIT_ERROR, "%s is %lld bytes: more than such an image can hold "
			      "(%zu)", name, (long long)st.st_size, max);
	}
	*size = st.st_size;
	return fd;
}

char *path_read_image(int dirfd, const char *name, size_t max, size_t *len)
{
	off_t size;
	ssize_t n;
	char *buf;
	int fd = path_open_image(dirfd, name, max, &size);

	if (fd < 0)
		return NULL;
	/* what fstat said, no more: a file that grows meanwhile is cut there */
	buf = xmalloc((size_t)size + 1);
	n = read_full(fd, buf, (size_t)size);
	if (n < 0) {
		dt_err_sys(0, "reading %s", name);
		free(buf);
		close(fd);
		return NULL;
	}
	close(fd);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}
