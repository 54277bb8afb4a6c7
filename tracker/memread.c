// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/proc.h"
#include "tracker/memread.h"

int mem_reader_open(struct mem_reader *m, pid_t pid)
{
	char path[64];

	memset(m, 0, sizeof(*m));
	m->pid = pid;
	proc_path(pid, "mem", path, sizeof(path));
	m->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (m->fd < 0)
		return dt_err_sys(errno == ENOENT ? DT_EXIT_GONE : 0, "%s", path);
	m->buf = xmalloc(MEMREAD_BUF);
	memset(m->buf, 0, MEMREAD_BUF);
	return 0;
}

void mem_reader_close(struct mem_reader *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	free(m->buf);
	m->buf = NULL;
}

/* Fill buf from [addr, addr+len); a page that cannot be read reads as zero. */
static int read_span(struct mem_reader *m, uint64_t addr, size_t len, unsigned char *buf)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(m->fd, buf + done, len - done, (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			done += n;
			continue;
		}
		if (n < 0 && errno != EIO && errno != EFAULT)
			return dt_err_sys(errno == ESRCH ? DT_EXIT_GONE : 0,
					  "reading memory of process %d", m->pid);
		if (n == 0 && kill(m->pid, 0) && errno == ESRCH)
			return dt_err(DT_EXIT_GONE, "process %d exited during the dump", m->pid);
		/* unmapped since we looked: the page is gone, dump zero */
		memset(buf + done, 0, PAGE_SIZE - (done % PAGE_SIZE));
		done += PAGE_SIZE - (done % PAGE_SIZE);
		m->vanished++;
	}
	return 0;
}

int mem_copy(struct mem_reader *m, const struct range_set *ranges, mem_put_fn put, void *ctx)
{
	size_t fill = 0;

	range_set_for_each(r, ranges) {
		for (uint64_t a = r->start; a < r->end;) {
			size_t len = r->end - a;

			if (len > MEMREAD_BUF - fill)
				len = MEMREAD_BUF - fill;
			if (read_span(m, a, len, m->buf + fill))
				return -1;
			fill += len;
			a += len;
			if (fill == MEMREAD_BUF) {
				if (put(ctx, m->buf, fill))
					return -1;
				fill = 0;
			}
		}
	}
	return fill ? put(ctx, m->buf, fill) : 0;
}
