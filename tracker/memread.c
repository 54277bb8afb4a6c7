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
	range_set_free(&m->gone);
}

/*
 * An address we could not read (EIO): if the process still maps it, that is
 * an error, never a zero page; if not, it was unmapped under a running dump:
 * the hole up to the next mapping is gone, and *gone_end says where it ends.
 */
static int explain_hole(struct mem_reader *m, uint64_t addr, uint64_t *gone_end)
{
	struct vma_list l;
	const struct vma *v;

	if (vma_list_read(m->pid, &l))
		return -1;
	v = vma_list_find(&l, addr);
	if (v) {
		int err = v->kind == VMA_SHMEM
			? dt_err(DT_EXIT_PERM, "cannot read page %#llx of process %d: it lies beyond "
				 "the end of the object of shared mapping %llx-%llx %s, which only "
				 "/proc/PID/map_files opens (CAP_CHECKPOINT_RESTORE)",
				 (unsigned long long)addr, m->pid, (unsigned long long)v->start,
				 (unsigned long long)v->end, v->path)
			: dt_err(DT_EXIT_ERROR, "cannot read page %#llx of process %d (mapping "
				 "%llx-%llx %s): the kernel refuses it (EIO)",
				 (unsigned long long)addr, m->pid, (unsigned long long)v->start,
				 (unsigned long long)v->end, *v->path ? v->path : vma_kind_name(v->kind));

		vma_list_free(&l);
		return err;
	}
	*gone_end = UINT64_MAX;
	for (size_t i = 0; i < l.n; i++)
		if (l.v[i].start > addr) {
			*gone_end = l.v[i].start;
			break;
		}
	vma_list_free(&l);
	return 0;
}

/*
 * Read [addr, addr+len) into buf; stops early at a vanished hole, leaving
 * *got the bytes read and *skip the bytes of the hole to leave out.
 */
static int read_span(struct mem_reader *m, uint64_t addr, size_t len, unsigned char *buf,
		     size_t *got, size_t *skip)
{
	size_t done = 0;

	*skip = 0;
	while (done < len) {
		ssize_t n = pread(m->fd, buf + done, len - done, (off_t)(addr + done));
		uint64_t gone_end = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			done += n;
			continue;
		}
		/* the address space itself is gone: exit or exec */
		if (n == 0)
			return dt_err(DT_EXIT_GONE, "process %d exited or exec'd during the dump",
				      m->pid);
		if (errno != EIO && errno != EFAULT)
			return dt_err_sys(errno == ESRCH ? DT_EXIT_GONE : 0,
					  "reading memory of process %d", m->pid);
		if (explain_hole(m, addr + done, &gone_end))
			return -1;
		done -= done % PAGE_SIZE;
		*skip = gone_end - (addr + done) < len - done ? gone_end - (addr + done) : len - done;
		break;
	}
	*got = done;
	return 0;
}

static int flush(struct mem_reader *m, mem_put_fn put, void *ctx, size_t *fill, bool *first)
{
	if (put(ctx, m->buf, *fill))
		return -1;
	*fill = 0;
	if (*first)
		dt_fault_point("mid-copy");
	*first = false;
	return 0;
}

int mem_copy(struct mem_reader *m, const struct range_set *ranges, mem_put_fn put, void *ctx)
{
	size_t fill = 0;
	bool first = true;

	range_set_for_each(r, ranges) {
		for (uint64_t a = r->start; a < r->end;) {
			size_t len = r->end - a, got = 0, skip = 0;

			if (len > MEMREAD_BUF - fill)
				len = MEMREAD_BUF - fill;
			if (read_span(m, a, len, m->buf + fill, &got, &skip))
				return -1;
			fill += got;
			a += got;
			if (skip) {
				/* unmapped under us: left out of the dump, and counted */
				if (range_set_add(&m->gone, a, a + skip))
					die_oom();
				a += skip;
			}
			if ((fill == MEMREAD_BUF || (skip && fill)) && flush(m, put, ctx, &fill, &first))
				return -1;
		}
	}
	return fill ? flush(m, put, ctx, &fill, &first) : 0;
}
