// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/pinned.h"
#include "tracker/proc.h"

static long long field(const char *buf, const char *key)
{
	uint64_t v;

	return proc_status_field(buf, key, 10, &v) ? (long long)v : -1;
}

void pinned_parse_uring_fdinfo(const char *buf, struct pinned *p)
{
	const char *ub = strstr(buf, "\nUserBufs:");
	long long head = field(buf, "SqHead"), tail = field(buf, "SqTail");
	long long done = field(buf, "CqTail");

	/* queued, not yet consumed; consumed, with no completion posted yet */
	if (head >= 0 && tail >= 0)
		p->io_uring_queued += (int)(uint32_t)(tail - head);
	if (head >= 0 && done >= 0 && (int32_t)(uint32_t)(head - done) > 0)
		p->io_uring_queued += (int32_t)(uint32_t)(head - done);
	if (!ub)
		return;
	/* "UserBufs:\t2", then "    0: 0x7f033bc66000/262144" per buffer */
	for (const char *l = strchr(ub + 1, '\n'); l && *l; l = strchr(l, '\n')) {
		unsigned long long addr, len;
		unsigned idx;

		l++;
		if (sscanf(l, " %u: 0x%llx/%llu", &idx, &addr, &len) != 3)
			break;
		if (!len || addr + len < addr)
			continue;
		p->attributed_bytes += len;
		if (range_set_add(&p->ranges, addr & ~(uint64_t)(PAGE_SIZE - 1),
				  (addr + len + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1)))
			die_oom();
	}
}

static void count_aio(const struct vma_list *l, struct pinned *p)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strncmp(l->v[i].path, "/[aio]", 6))
			p->aio_contexts++;
}

int pinned_read(pid_t pid, const struct vma_list *vmas, bool io, struct pinned *p)
{
	char path[64], link[64];
	struct dirent *de;
	uint64_t kb = 0;
	DIR *d;

	memset(p, 0, sizeof(*p));
	if (proc_status_read(pid, "VmPin", 10, &kb) < 0)
		return -1;
	p->vmpin_bytes = kb * 1024;
	count_aio(vmas, p);
	/* registered buffers are pinned: nothing pinned, no fd to look at (unless asked for I/O) */
	if (!kb && !io)
		return 0;
	proc_path(pid, "fd", path, sizeof(path));
	d = opendir(path);
	if (!d)
		return dt_err_sys(errno == ENOENT ? DT_EXIT_GONE : 0, "%s", path);
	while ((de = readdir(d))) {
		char name[300], info[340], *buf;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, "anon_inode:[io_uring]"))
			continue;
		snprintf(name, sizeof(name), "fdinfo/%s", de->d_name);
		proc_path(pid, name, info, sizeof(info));
		buf = read_file(info, NULL);
		if (buf)
			pinned_parse_uring_fdinfo(buf, p);
		free(buf);
	}
	closedir(d);
	return 0;
}

uint64_t pinned_unattributed(const struct pinned *p)
{
	/* VmPin counts in pages: compare page-rounded */
	uint64_t have = range_set_bytes(&p->ranges);

	return p->vmpin_bytes > have ? p->vmpin_bytes - have : 0;
}

void pinned_free(struct pinned *p)
{
	range_set_free(&p->ranges);
}
