// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/proc.h"
#include "pagemap/scan.h"

#define SCAN_VEC_LEN 4096

int pm_scanner_open(struct pm_scanner *s, pid_t pid)
{
	char path[64];

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	proc_path(pid, "pagemap", path, sizeof(path));
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		int e = errno;

		if (e == ENOENT || ((e == EACCES || e == EPERM) && proc_exiting(pid)))
			return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
		errno = e;
		return dt_err_sys(0, "%s", path);
	}
	s->vec_len = SCAN_VEC_LEN;
	s->vec = xmalloc(s->vec_len * sizeof(*s->vec));
	return 0;
}

void pm_scanner_close(struct pm_scanner *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->vec);
	s->vec = NULL;
	s->fd = -1;
}

int pm_scan_error(pid_t pid, int err)
{
	errno = err;
	switch (err) {
	case ENOTTY:
		return dt_err(DT_EXIT_UNSUPPORTED, "this kernel lacks the PAGEMAP_SCAN ioctl (Linux 6.7)");
	case ESRCH:
		return dt_err(DT_EXIT_GONE, "process %d exited or exec'd", pid);
	default:
		return dt_err_sys(0, "PAGEMAP_SCAN of process %d", pid);
	}
}

int pm_scan(struct pm_scanner *s, uint64_t start, uint64_t end, const struct pm_query *q,
	    pm_region_fn cb, void *ctx)
{
	if (dt_simulate_missing("pagemap_scan"))
		return pm_scan_error(s->pid, ENOTTY);
	while (start < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = q->flags,
			.start = start,
			.end = end,
			.vec = (uintptr_t)s->vec,
			.vec_len = s->vec_len,
			.category_inverted = q->inverted,
			.category_mask = q->mask,
			.category_anyof_mask = q->anyof,
			.return_mask = q->ret,
		};
		long n = ioctl(s->fd, PAGEMAP_SCAN, &arg);

		s->ioctls++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pm_scan_error(s->pid, errno);
		}
		for (long i = 0; i < n; i++)
			if (cb(ctx, s->vec[i].start, s->vec[i].end, s->vec[i].categories))
				return -1;
		if (arg.walk_end <= start)
			return dt_err(DT_EXIT_ERROR, "PAGEMAP_SCAN made no progress at %#llx",
				      (unsigned long long)start);
		start = arg.walk_end;
	}
	return 0;
}
