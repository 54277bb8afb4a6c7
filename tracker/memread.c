// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/proc.h"
#include "tracker/memread.h"
#include "tracker/session.h"

/*
 * The copy buffer: one aligned huge page where the kernel gives one, so
 * that touching it costs one fault, not 512 (~12 us each here).
 */
static unsigned char *copy_buffer(size_t len)
{
	void *p = mmap(NULL, len * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		die_oom();
	a = ((uintptr_t)p + len - 1) & ~(uintptr_t)(len - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((void *)(a + len), (uintptr_t)p + len * 2 - (a + len));
	madvise((void *)a, len, MADV_HUGEPAGE);
	memset((void *)a, 0, len);
	return (unsigned char *)a;
}

int mem_reader_open(struct mem_reader *m, pid_t pid)
{
	char path[64];
	struct proc_stat st;

	memset(m, 0, sizeof(*m));
	m->pid = pid;
	proc_path(pid, "mem", path, sizeof(path));
	m->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (m->fd < 0)
		return dt_err_sys(errno == ENOENT ? DT_EXIT_GONE : 0, "%s", path);
	if (proc_stat_read(pid, &st)) {
		close(m->fd);
		m->fd = -1;
		return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
	}
	m->start_time = st.start_time;
	m->mm_id = session_mm_id(&st);
	m->buf_len = MEMREAD_BUF;
	m->buf = copy_buffer(m->buf_len);
	m->iov = xcalloc(MEMREAD_IOV, sizeof(*m->iov));
	m->no_vm_readv = dt_simulate_missing("process_vm_readv");
	return 0;
}

void mem_reader_close(struct mem_reader *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	if (m->buf)
		munmap(m->buf, m->buf_len);
	m->buf = NULL;
	free(m->iov);
	m->iov = NULL;
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

/*
 * The remote ranges of one batch, read into m->buf: process_vm_readv
 * first (one copy, up to MEMREAD_IOV ranges a call); from where it stops
 * (a PROT_NONE page, a hole, a kernel that refuses it) /proc/PID/mem takes
 * over for the rest of that range, and the next call goes on after it.
 * *fill: the bytes in m->buf; what vanished is in m->gone.
 */
static int read_batch(struct mem_reader *m, size_t n, size_t *fill)
{
	size_t pos = 0, i = 0;

	while (i < n) {
		ssize_t got = -1;

		if (!m->no_vm_readv) {
			struct iovec local = { m->buf + pos, m->buf_len - pos };

			got = process_vm_readv(m->pid, &local, 1, m->iov + i, n - i, 0);
			m->vm_readv_calls++;
			if (got < 0 && errno == ESRCH)
				return dt_err(DT_EXIT_GONE, "process %d exited during the dump", m->pid);
			if (got < 0 && errno != EFAULT && errno != EINTR)
				m->no_vm_readv = true;	/* EPERM, ENOSYS: the file does it all */
			if (got > 0)
				m->used_vm_readv = true;
		}
		if (got < 0)
			got = 0;
		while (i < n && (size_t)got >= m->iov[i].iov_len) {
			got -= m->iov[i].iov_len;
			pos += m->iov[i].iov_len;
			i++;
		}
		if (i == n)
			break;
		/* range i stopped after got bytes: the file reads the rest of it */
		{
			uint64_t a = (uint64_t)(uintptr_t)m->iov[i].iov_base + got;
			size_t left = m->iov[i].iov_len - got;

			pos += got;
			while (left) {
				size_t g = 0, skip = 0;

				if (read_span(m, a, left, m->buf + pos, &g, &skip))
					return -1;
				pos += g;
				a += g;
				left -= g;
				if (skip) {
					/* unmapped under us: left out of the dump, and counted */
					if (range_set_add(&m->gone, a, a + skip))
						die_oom();
					a += skip;
					left -= skip;
				}
			}
			i++;
		}
	}
	*fill = pos;
	return 0;
}

/*
 * process_vm_readv names the process by pid, not by the address space the
 * file was opened on: after the copy, the process must still be the one
 * we opened (same start time) with the same address space (exec rebuilds
 * its layout), or bytes of another program may be in the dump.
 */
static int check_same_process(const struct mem_reader *m)
{
	struct proc_stat st;

	if (!m->used_vm_readv)
		return 0;
	if (proc_stat_read(m->pid, &st) || st.start_time != m->start_time)
		return dt_err(DT_EXIT_GONE, "process %d exited during the dump", m->pid);
	if (session_mm_id(&st) != m->mm_id)
		return dt_err(DT_EXIT_GONE, "process %d exited or exec'd during the dump", m->pid);
	return 0;
}

/* Read the batch of n ranges and hand it on. */
static int copy_batch(struct mem_reader *m, size_t n, mem_put_fn put, void *ctx, bool *first)
{
	size_t fill = 0;

	if (read_batch(m, n, &fill) || (fill && put(ctx, m->buf, fill)))
		return -1;
	if (*first)
		dt_fault_point("mid-copy");
	*first = false;
	return 0;
}

int mem_copy(struct mem_reader *m, const struct range_set *ranges, mem_put_fn put, void *ctx)
{
	size_t planned = 0, n = 0;
	bool first = true;

	range_set_for_each(r, ranges) {
		for (uint64_t a = r->start; a < r->end;) {
			size_t len = r->end - a;

			if (len > m->buf_len - planned)
				len = m->buf_len - planned;
			m->iov[n++] = (struct iovec){ (void *)(uintptr_t)a, len };
			planned += len;
			a += len;
			if (planned < m->buf_len && n < MEMREAD_IOV)
				continue;
			if (copy_batch(m, n, put, ctx, &first))
				return -1;
			planned = n = 0;
		}
	}
	if (n && copy_batch(m, n, put, ctx, &first))
		return -1;
	return check_same_process(m);
}
