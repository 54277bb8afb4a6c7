// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/dumpdir.h"
#include "lib/err.h"
#include "tracker/proc.h"
#include "lib/path.h"
#include "lib/util.h"

static int dir_is_empty(int pfd, const char *name)
{
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int empty = 1;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* Our own start time (clock ticks since boot): with the pid, who made a temp dir. */
static unsigned long long start_time_of(pid_t pid)
{
	struct proc_stat st;

	if (proc_task_stat_read(pid, pid, &st)) {
		dt_err_clear();
		return 0;
	}
	return st.start_time;
}

/*
 * ".NAME.tmp-PID-START-XXXXXX" in the directory a dump goes to, whose maker
 * (PID, started at START) no longer exists: a dump killed before its rename.  Only ours
 * (same owner), only flat directories of files, nothing followed.
 */
static void remove_stale_tmp(struct dump_dir *d)
{
	DIR *dir;
	struct dirent *de;
	int dfd = dup(d->pfd);

	dir = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!dir) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((de = readdir(dir))) {
		const char *tag = de->d_name[0] == '.' ? strstr(de->d_name, ".tmp-") : NULL;
		unsigned long long start;
		struct stat st;
		int pid, n = 0, fd;

		/* any dump's, beside ours: ".NAME.tmp-PID-START-XXXXXX" */
		while (tag && strstr(tag + 1, ".tmp-"))
			tag = strstr(tag + 1, ".tmp-");
		if (!tag || sscanf(tag + 5, "%d-%llu-%n", &pid, &start, &n) != 2 || !n ||
		    strlen(tag + 5 + n) != 6)
			continue;
		if (fstatat(d->pfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode) ||
		    st.st_uid != geteuid() || (pid > 0 && start_time_of(pid) == start))
			continue;
		fd = openat(d->pfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			struct dump_dir stale = { .fd = fd, .pfd = -1 };

			dump_dir_abort(&stale);		/* empties and closes it */
		}
		unlinkat(d->pfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(dir);
}

/* mkdtemp(3) relative to pfd: ".NAME.tmp-PID-START-XXXXXX", 0700 */
static int make_tmp(struct dump_dir *d)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned long long me = start_time_of(getpid());

	remove_stale_tmp(d);
	for (int tries = 0; tries < 100; tries++) {
		unsigned char r[6];

		if (getrandom(r, sizeof(r), 0) != sizeof(r))
			return -1;
		snprintf(d->tmp, sizeof(d->tmp), ".%.200s.tmp-%d-%llu-%c%c%c%c%c%c", d->leaf,
			 (int)getpid(), me, chars[r[0] % 62], chars[r[1] % 62], chars[r[2] % 62],
			 chars[r[3] % 62], chars[r[4] % 62], chars[r[5] % 62]);
		if (mkdirat(d->pfd, d->tmp, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	d->tmp[0] = '\0';
	return -1;
}

int dump_dir_begin(struct dump_dir *d, const char *path, bool make_parent)
{
	char parent[PATH_MAX];
	struct stat st;
	size_t len = strlen(path);

	memset(d, 0, sizeof(*d));
	d->fd = d->pfd = -1;
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(d->final) - 32)
		return dt_err(DT_EXIT_ERROR, "dump directory '%s': bad path", path);
	snprintf(d->final, sizeof(d->final), "%.*s", (int)len, path);
	if (make_parent) {
		char *slash;

		snprintf(parent, sizeof(parent), "%s", d->final);
		slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = '\0';
		else
			snprintf(parent, sizeof(parent), "%s", slash ? "/" : ".");
		d->pfd = path_open_dir(parent, PATH_DIR_CREATE);
		if (d->pfd < 0)
			return -1;
		close(d->pfd);
	}
	d->pfd = path_open_parent(d->final, d->leaf, sizeof(d->leaf));	/* names d->final */
	if (d->pfd < 0)
		return -1;
	if (fstatat(d->pfd, d->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode))
			dt_err(DT_EXIT_ERROR, "dump directory %s is a symlink: refusing to follow it",
			       d->final);
		else if (!S_ISDIR(st.st_mode))
			dt_err(DT_EXIT_ERROR, "dump directory %s exists and is not a directory",
			       d->final);
		else if (dir_is_empty(d->pfd, d->leaf) != 1)
			dt_err(DT_EXIT_ERROR, "dump directory %s exists and is not empty", d->final);
		else
			goto make;
		goto fail;
	} else if (errno != ENOENT) {
		dt_err_sys(0, "dump directory %s", d->final);
		goto fail;
	}
make:
	if (make_tmp(d)) {
		dt_err_sys(0, "creating a directory beside %s", d->final);
		goto fail;
	}
	d->fd = path_openat(d->pfd, d->tmp, O_RDONLY | O_DIRECTORY, 0);
	if (d->fd < 0) {
		dt_err_sys(0, "%s", d->final);
		goto fail;
	}
	return 0;
fail:
	dump_dir_abort(d);
	return -1;
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
	char to[PATH_MAX], dir[PATH_MAX], self[PATH_MAX * 2], rel[PATH_MAX];

	if (!realpath(parent_path, to))
		return dt_err_sys(0, "parent %s", parent_path);
	if (path_of_fd(d->pfd, dir, sizeof(dir)))
		return -1;
	snprintf(self, sizeof(self), "%s/%s", strcmp(dir, "/") ? dir : "", d->leaf);
	relpath(self, to, rel, sizeof(rel));
	if (symlinkat(rel, d->fd, "parent"))
		return dt_err_sys(0, "creating the parent link");
	return 0;
}

int dump_dir_commit(struct dump_dir *d)
{
	if (fsync(d->fd))
		return dt_err_sys(0, "%s", d->final);
	if (renameat(d->pfd, d->tmp, d->pfd, d->leaf))
		return dt_err_sys(0, "renaming %s into place as %s", d->tmp, d->final);
	close(d->fd);
	d->fd = -1;
	d->tmp[0] = '\0';
	fsync(d->pfd);
	close(d->pfd);
	d->pfd = -1;
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
	if (d->tmp[0] && d->pfd >= 0)
		unlinkat(d->pfd, d->tmp, AT_REMOVEDIR);
	d->tmp[0] = '\0';
	if (d->pfd >= 0)
		close(d->pfd);
	d->pfd = -1;
}
