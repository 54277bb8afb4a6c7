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

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL	/* 6.9: a pidfd for one thread */
#endif

/* Our own copy of the target's fd (pidfd_getfd). */
static int grab(pid_t pid, int target_fd, int *fd)
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

int uffd_create_in_target(struct injector *in, int *fd)
{
	long tfd, r;
	int err;

	*fd = -1;
	if (dt_simulate_missing("userfaultfd"))
		return dt_err(DT_EXIT_UNSUPPORTED, "this kernel lacks the userfaultfd() system call");
	if (inject_syscall(in, __NR_userfaultfd, &tfd, 1,
			   (long)(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)))
		return -1;
	if (tfd < 0)
		return syscall_error(in, "userfaultfd()", tfd);
	/* ours from here on; the target's copy goes before it runs again */
	err = grab(in->s->pid, (int)tfd, fd);
	if (inject_syscall(in, __NR_close, &r, 1, tfd) || r < 0) {
		if (!err && r < 0)
			syscall_error(in, "close()", r);
		err = -1;
	}
	if (err && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return err;
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

int uffd_unregister(int fd, uint64_t start, uint64_t end)
{
	struct uffdio_range r = { .start = start, .len = end - start };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int uffd_protect(int fd, uint64_t start, uint64_t end)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}
