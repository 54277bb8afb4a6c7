// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/dumpdir.h"
#include "lib/err.h"
#include "lib/util.h"

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int empty = 1;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

int dump_dir_begin(struct dump_dir *d, const char *path)
{
	char copy[PATH_MAX], copy2[PATH_MAX], *base, *parent;
	struct stat st;
	size_t len = strlen(path);

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(d->final) - 32)
		return dt_err(DT_EXIT_ERROR, "dump directory '%s': bad path", path);
	snprintf(d->final, sizeof(d->final), "%.*s", (int)len, path);
	if (lstat(d->final, &st) == 0) {
		if (S_ISLNK(st.st_mode))
			return dt_err(DT_EXIT_ERROR, "dump directory %s is a symlink: refusing to "
				      "follow it", d->final);
		if (!S_ISDIR(st.st_mode))
			return dt_err(DT_EXIT_ERROR, "dump directory %s exists and is not a directory",
				      d->final);
		if (dir_is_empty(d->final) != 1)
			return dt_err(DT_EXIT_ERROR, "dump directory %s exists and is not empty",
				      d->final);
	} else if (errno != ENOENT) {
		return dt_err_sys(0, "dump directory %s", d->final);
	}
	snprintf(copy, sizeof(copy), "%s", d->final);
	base = basename(copy);
	snprintf(copy2, sizeof(copy2), "%s", d->final);
	parent = dirname(copy2);
	if (strlen(parent) + strlen(base) + 16 >= sizeof(d->tmp))
		return dt_err(DT_EXIT_ERROR, "dump directory '%s': path too long", path);
	strcpy(d->tmp, parent);
	strcat(d->tmp, "/.");
	strcat(d->tmp, base);
	strcat(d->tmp, ".tmp-XXXXXX");
	if (!mkdtemp(d->tmp)) {
		d->tmp[0] = '\0';
		if (errno == ENOENT || errno == ENOTDIR)
			return dt_err(DT_EXIT_ERROR, "dump directory %s: %s is not an existing "
				      "directory", d->final, parent);
		return dt_err_sys(0, "creating a directory beside %s", d->final);
	}
	/* mkdtemp makes it 0700 */
	d->fd = open(d->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d->fd < 0) {
		dt_err_sys(0, "%s", d->tmp);
		dump_dir_abort(d);
		return -1;
	}
	return 0;
}

/* Split an absolute path into its components (modifies buf). */
static int components(char *buf, char **c, int max)
{
	int n = 0;

	for (char *tok = strtok(buf, "/"); tok && n < max; tok = strtok(NULL, "/"))
		c[n++] = tok;
	return n;
}

/* from_dir and to are absolute and canonical. */
static void relpath(const char *from_dir, const char *to, char *out, size_t len)
{
	char a[PATH_MAX * 2], b[PATH_MAX], *ca[256], *cb[256];
	int na, nb, common = 0;

	snprintf(a, sizeof(a), "%s", from_dir);
	snprintf(b, sizeof(b), "%s", to);
	na = components(a, ca, 256);
	nb = components(b, cb, 256);
	while (common < na && common < nb && !strcmp(ca[common], cb[common]))
		common++;
	out[0] = '\0';
	for (int i = common; i < na; i++)
		snprintf(out + strlen(out), len - strlen(out), "../");
	for (int i = common; i < nb; i++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", cb[i], i + 1 < nb ? "/" : "");
	if (!out[0])
		snprintf(out, len, ".");
	else if (out[strlen(out) - 1] == '/')
		out[strlen(out) - 1] = '\0';
}

int dump_dir_link_parent(struct dump_dir *d, const char *parent_path)
{
	char to[PATH_MAX], dir[PATH_MAX], copy[PATH_MAX], self[PATH_MAX * 2], rel[PATH_MAX];

	if (!realpath(parent_path, to))
		return dt_err_sys(0, "parent %s", parent_path);
	snprintf(copy, sizeof(copy), "%s", d->final);
	if (!realpath(dirname(copy), dir))
		return dt_err_sys(0, "%s", d->final);
	snprintf(copy, sizeof(copy), "%s", d->final);
	snprintf(self, sizeof(self), "%s/%s", strcmp(dir, "/") ? dir : "", basename(copy));
	relpath(self, to, rel, sizeof(rel));
	if (symlinkat(rel, d->fd, "parent"))
		return dt_err_sys(0, "creating the parent link");
	return 0;
}

int dump_dir_commit(struct dump_dir *d)
{
	char copy[PATH_MAX];
	int pfd;

	if (fsync(d->fd))
		return dt_err_sys(0, "%s", d->tmp);
	if (rename(d->tmp, d->final))
		return dt_err_sys(0, "renaming %s to %s", d->tmp, d->final);
	close(d->fd);
	d->fd = -1;
	d->tmp[0] = '\0';
	snprintf(copy, sizeof(copy), "%s", d->final);
	pfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd >= 0) {
		fsync(pfd);
		close(pfd);
	}
	return 0;
}

void dump_dir_abort(struct dump_dir *d)
{
	if (d->fd >= 0) {
		DIR *dir = fdopendir(dup(d->fd));
		struct dirent *de;

		while (dir && (de = readdir(dir)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				unlinkat(d->fd, de->d_name, 0);
		if (dir)
			closedir(dir);
		close(d->fd);
		d->fd = -1;
	}
	if (d->tmp[0])
		rmdir(d->tmp);
	d->tmp[0] = '\0';
}
