// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/uapi.h"
#include "lib/util.h"
#include "pagemap/content.h"

#define SWP_TYPE_BITS 5

bool vma_dumps_content(const struct vma *v)
{
	switch (v->kind) {
	case VMA_ANON:
	case VMA_HEAP:
	case VMA_STACK:
	case VMA_FILE_PRIVATE:
	case VMA_SHMEM:
		return true;
	default:
		return false;
	}
}

/* Swap devices in use: with none, a "swapped" entry can only be a marker. */
int pagemap_swap_devices(void)
{
	char *buf = read_file("/proc/swaps", NULL);
	int lines = 0;

	if (!buf)
		return 1;	/* cannot tell: assume swap */
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			lines++;
	free(buf);
	return lines > 0 ? lines - 1 : 0;
}

struct collect {
	const struct vma *v;
	struct range_set *present, *swapped;
};

static int on_region(void *ctx, uint64_t start, uint64_t end, uint64_t cat)
{
	struct collect *c = ctx;
	struct range_set *to;

	if (cat & PAGE_IS_PRESENT) {
		/* a private file mapping's own content is its anonymous pages */
		if (c->v->kind == VMA_FILE_PRIVATE && (cat & PAGE_IS_FILE))
			return 0;
		to = c->present;
	} else {
		to = c->swapped;
	}
	if (range_set_add(to, start, end))
		die_oom();
	return 0;
}

bool pagemap_real_swap(uint64_t e, int ndev)
{
	uint64_t frame = e & ((1ULL << 55) - 1), type = frame & ((1ULL << SWP_TYPE_BITS) - 1);

	if (!(e & PM_ENTRY_SWAPPED) || ndev == 0)
		return false;
	return frame == 0 || (type < (uint64_t)ndev && (frame >> SWP_TYPE_BITS) != 0);
}

/*
 * Swapped-looking entries: real swap entries carry a swap type below the
 * number of devices and a non-zero offset; uffd-wp markers do not.  When
 * the frame is hidden (no CAP_SYS_ADMIN) we cannot tell: keep the page.
 */
static int keep_real_swap(struct pm_scanner *s, const struct range_set *swapped,
			  struct range_set *out)
{
	int ndev = swapped->n ? pagemap_swap_devices() : 0;
	uint64_t e;

	if (ndev == 0)
		return 0;
	range_set_for_each(r, swapped) {
		for (uint64_t a = r->start; a < r->end; a += PAGE_SIZE) {
			if (pread(s->fd, &e, sizeof(e), (off_t)(a / PAGE_SIZE * 8)) != sizeof(e))
				return pm_scan_error(s->pid, errno ? errno : ESRCH);
			if (pagemap_real_swap(e, ndev) && range_set_add(out, a, a + PAGE_SIZE))
				die_oom();
		}
	}
	return 0;
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

/* One of the target's own fds on the object v maps (a memfd, a /dev/shm file). */
static int object_by_target_fd(pid_t pid, const struct vma *v)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int found = -1, pidfd;
	pid_t tid = proc_live_tid(pid);

	proc_path(pid, "fd", path, sizeof(path));
	d = opendir(path);
	if (!d)
		return -1;
	while (found < 0 && (de = readdir(d))) {
		struct stat st;
		int fd;

		if (!parse_int(de->d_name, &fd) || fstatat(dirfd(d), de->d_name, &st, 0) ||
		    st.st_ino != v->inode || major(st.st_dev) != v->dev_major ||
		    minor(st.st_dev) != v->dev_minor)
			continue;
		pidfd = (int)syscall(__NR_pidfd_open, tid, tid == pid ? 0 : PIDFD_THREAD);
		if (pidfd < 0)
			break;
		found = (int)syscall(__NR_pidfd_getfd, pidfd, fd, 0);
		close(pidfd);
	}
	closedir(d);
	return found;
}

int shmem_object_open(pid_t pid, const struct vma *v)
{
	char path[128], name[64];
	int fd;

	/* map_files needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) */
	snprintf(name, sizeof(name), "map_files/%llx-%llx", (unsigned long long)v->start,
		 (unsigned long long)v->end);
	proc_path(pid, name, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	/* without it: a file of the object the process holds open itself */
	return object_by_target_fd(pid, v);
}

/* shmem pages the target never mapped still have content: ask the object */
static bool shmem_file_extents(pid_t pid, const struct vma *v, struct range_set *out)
{
	off_t pos, first = (off_t)v->pgoff, last = (off_t)(v->pgoff + (v->end - v->start));
	int fd = shmem_object_open(pid, v);

	if (fd < 0)
		return false;
	for (pos = first; pos < last;) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 || data >= last)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > last)
			hole = last;
		if (range_set_add(out, v->start + (uint64_t)(data - first) / PAGE_SIZE * PAGE_SIZE,
				  v->start + ((uint64_t)(hole - first) + PAGE_SIZE - 1) / PAGE_SIZE *
						     PAGE_SIZE))
			die_oom();
		pos = hole;
	}
	close(fd);
	return true;
}

/* The pages with content of the spans [start, end) of v (inside it), into *out. */
static int content_of_spans(struct pm_scanner *s, const struct vma *v, const struct range *spans,
			    size_t n, struct range_set *out)
{
	struct range_set present = RANGE_SET_INIT, swapped = RANGE_SET_INIT;
	struct collect c = { v, &present, &swapped };
	struct pm_query q = {
		.anyof = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.ret = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE,
	};
	int err = 0;

	/* in address order: each region found is appended, and joined once at the end */
	for (size_t i = 0; i < n && !err; i++)
		err = pm_scan(s, spans[i].start, spans[i].end, &q, on_region, &c);
	if (!err)
		err = keep_real_swap(s, &swapped, &present);
	if (!err && range_set_union(out, &present))
		die_oom();
	range_set_free(&present);
	range_set_free(&swapped);
	return err;
}

static int content_of_span(struct pm_scanner *s, const struct vma *v, uint64_t start,
			   uint64_t end, struct range_set *out)
{
	struct range one = { start, end };

	return content_of_spans(s, v, &one, 1, out);
}

int content_of_vma(struct pm_scanner *s, const struct vma *v, struct range_set *out)
{
	struct range_set objects = RANGE_SET_INIT;
	int err;

	if (!vma_dumps_content(v))
		return 0;
	/*
	 * Shared memory: the object's own extents hold every page any mapping
	 * shows (swapped ones too), so its page tables need no walk.  No way to
	 * the object (shared anonymous or SysV memory, without
	 * CAP_CHECKPOINT_RESTORE): every page of the mapping counts, and is
	 * read through the process's address space (holes get allocated).
	 */
	if (v->kind == VMA_SHMEM && !dt_simulate_missing("shmem_objects")) {
		if (!shmem_file_extents(s->pid, v, &objects) &&
		    range_set_add(&objects, v->start, v->end))
			die_oom();
		if (range_set_union(out, &objects))
			die_oom();
		range_set_free(&objects);
		return 0;
	}
	err = content_of_span(s, v, v->start, v->end, out);
	return err;
}

/*
 * Gaps this small are walked with the ranges around them: a PAGEMAP_SCAN
 * call costs about as much as walking 32 page-table entries.
 */
#define WALK_MERGE_GAP (32 * PAGE_SIZE)

int content_from_parent(struct pm_scanner *s, const struct vma *v, const struct range_set *cover,
			const struct range_set *changed, struct range_set *out)
{
	struct range_set keep = RANGE_SET_INIT, walk = RANGE_SET_INIT, span = RANGE_SET_INIT;
	int err = 0;

	if (!vma_dumps_content(v))
		return 0;
	if (v->kind == VMA_SHMEM)
		return content_of_vma(s, v, out);
	/* kept: what the parent stored and nothing changed since */
	if (range_set_add(&span, v->start, v->end) || range_set_intersect(&walk, cover, &span) ||
	    range_set_subtract(&keep, &walk, changed) || range_set_subtract(&walk, &span, &keep))
		die_oom();
	/* walked: everything else (holes of the parent's, written, zapped) */
	{
		struct range *spans = xmalloc((walk.n ? walk.n : 1) * sizeof(*spans));
		size_t n = 0;

		for (size_t i = 0; i < walk.n;) {
			uint64_t start = walk.r[i].start, end = walk.r[i].end;

			while (++i < walk.n && walk.r[i].start - end < WALK_MERGE_GAP)
				end = walk.r[i].end;
			spans[n++] = (struct range){ start, end };
		}
		err = content_of_spans(s, v, spans, n, out);
		free(spans);
	}
	if (!err && range_set_union(out, &keep))
		die_oom();
	range_set_free(&keep);
	range_set_free(&walk);
	range_set_free(&span);
	return err;
}
