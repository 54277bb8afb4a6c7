// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/uapi.h"
#include "lib/util.h"
#include "tracker/proc.h"
#include "tracker/uffd.h"

#define UFFD_LINK "anon_inode:[userfaultfd]"
/* Injected fds go at or above this number, out of the application's way. */
#define HIGH_FD_MIN 1000

int uffd_fdinfo_parse(const char *buf, uint64_t *features)
{
	const char *api = strstr(buf, "API:");
	unsigned long long v, f;

	if (!api || sscanf(api + 4, " %llx:%llx:", &v, &f) != 2)
		return -1;
	*features = f;
	return 0;
}

static int fdinfo_features(pid_t pid, int fd, uint64_t *features)
{
	char path[64], name[32], *buf;
	int r;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	proc_path(pid, name, path, sizeof(path));
	buf = read_file(path, NULL);
	if (!buf)
		return -1;
	r = uffd_fdinfo_parse(buf, features);
	free(buf);
	return r;
}

int uffd_find(pid_t pid, struct uffd_in_target *u)
{
	char path[64], link[64];
	struct dirent *de;
	int found = 0, dfd;
	DIR *d;

	proc_path(pid, "fd", path, sizeof(path));
	d = opendir(path);
	if (!d) {
		if ((errno == EACCES || errno == EPERM) && !proc_exiting(pid))
			return dt_err_sys(DT_EXIT_PERM, "cannot read the fds of process %d", pid);
		return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
	}
	dfd = dirfd(d);
	while (!found && (de = readdir(d))) {
		ssize_t n;
		int fd;
		struct stat st;

		if (!parse_int(de->d_name, &fd))
			continue;
		n = readlinkat(dfd, de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, UFFD_LINK))
			continue;
		if (fdinfo_features(pid, fd, &u->features))
			continue;
		if (!(u->features & UFFD_FEATURE_WP_ASYNC))
			continue;	/* the application's own userfaultfd */
		u->fd = fd;
		u->ino = fstatat(dfd, de->d_name, &st, 0) == 0 ? st.st_ino : 0;
		found = 1;
	}
	closedir(d);
	return found;
}

static long high_fd_min(pid_t pid)
{
	char path[64], *buf, *p;
	unsigned long long soft;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	buf = read_file(path, NULL);
	if (!buf)
		return HIGH_FD_MIN;
	p = strstr(buf, "Max open files");
	if (!p || sscanf(p + strlen("Max open files"), " %llu", &soft) != 1) {
		free(buf);
		return HIGH_FD_MIN;
	}
	free(buf);
	if (soft <= 4)
		return 3;
	return soft - 1 < HIGH_FD_MIN ? (long)soft / 2 : HIGH_FD_MIN;
}

static int syscall_error(struct injector *in, const char *what, long ret)
{
	errno = (int)-ret;
	if (ret == -EPERM || ret == -EACCES)
		return dt_err_sys(DT_EXIT_PERM, "process %d may not call %s (seccomp filter, LSM "
				  "or sysctl)", in->s->pid, what);
	if (ret == -ENOSYS)
		return dt_err(DT_EXIT_UNSUPPORTED, "this kernel lacks %s (or a seccomp filter of "
			      "process %d hides it)", what, in->s->pid);
	return dt_err_sys(0, "%s in process %d", what, in->s->pid);
}

int uffd_create_in_target(struct injector *in, int *target_fd)
{
	long fd, high, r;

	if (dt_simulate_missing("userfaultfd"))
		return dt_err(DT_EXIT_UNSUPPORTED, "this kernel lacks the userfaultfd() system call");
	if (inject_syscall(in, __NR_userfaultfd, &fd, 1,
			   (long)(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)))
		return -1;
	if (fd < 0)
		return syscall_error(in, "userfaultfd()", fd);
	if (inject_syscall(in, __NR_fcntl, &high, 3, fd, (long)F_DUPFD_CLOEXEC,
			   high_fd_min(in->s->pid)))
		return -1;
	if (high < 0) {
		/* keep the low fd rather than failing: it works all the same */
		high = fd;
	} else if (inject_syscall(in, __NR_close, &r, 1, fd) || r < 0) {
		uffd_close_in_target(in, (int)high);
		return r < 0 ? syscall_error(in, "close()", r) : -1;
	}
	*target_fd = (int)high;
	return 0;
}

int uffd_close_in_target(struct injector *in, int target_fd)
{
	long r;

	if (inject_syscall(in, __NR_close, &r, 1, (long)target_fd))
		return -1;
	if (r < 0)
		return syscall_error(in, "close()", r);
	return 0;
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL	/* 6.9: a pidfd for one thread */
#endif

int uffd_grab(pid_t pid, int target_fd, int *fd)
{
	/* the main thread may have exited: its fd table went with it */
	pid_t tid = proc_live_tid(pid);
	int pidfd = (int)syscall(__NR_pidfd_open, tid, tid == pid ? 0 : PIDFD_THREAD);

	if (pidfd < 0) {
		if (errno == ESRCH)
			return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
		return dt_err_sys(0, "pidfd_open(%d)", pid);
	}
	*fd = (int)syscall(__NR_pidfd_getfd, pidfd, target_fd, 0);
	if (*fd < 0) {
		dt_err_sys(0, "pidfd_getfd(%d, fd %d)", pid, target_fd);
		close(pidfd);
		return -1;
	}
	close(pidfd);
	return 0;
}

int uffd_enable(int fd)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_WANTED_FEATURES };

	bool missing = dt_simulate_missing("wp_async");

	if (missing || ioctl(fd, UFFDIO_API, &api)) {
		if (missing || errno == EINVAL)
			return dt_err(DT_EXIT_UNSUPPORTED, "this kernel lacks userfaultfd asynchronous "
				      "write-protect (UFFD_FEATURE_WP_ASYNC, Linux 6.7)");
		return dt_err_sys(0, "UFFDIO_API");
	}
	return 0;
}

int uffd_register_wp(int fd, uint64_t start, uint64_t end)
{
	struct uffdio_register r = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(fd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

int uffd_protect(int fd, uint64_t start, uint64_t end)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}
