// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unistd.h>

#include "core.pb-c.h"
#include "image/imgfile.h"
#include "image/criu.h"
#include "image/verify.h"
#include "lib/err.h"
#include "lib/util.h"
#include "mm.pb-c.h"
#include "pagemap/content.h"
#include "tracker/memread.h"
#include "tracker/proc.h"

/* CRIU's VMA status bits, as far as naming a mapping needs them */

const char *vma_status_name(uint32_t st)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		/*
		 * Most specific first: a heap is also private anonymous.  The
		 * names are the tracker's (vma_kind_name(), what status and
		 * watch print) wherever a kind has one: one name per kind.
		 */
		{ CRIU_VMA_UNSUPP, "unsupported" }, { CRIU_VMA_VSYSCALL, "special" },
		{ CRIU_VMA_VDSO, "special" }, { CRIU_VMA_VVAR, "special" }, { CRIU_VMA_GUARD, "guard" },
		{ CRIU_VMA_AIORING, "aio-ring" }, { CRIU_VMA_SOCKET, "socket" },
		{ CRIU_VMA_SYSVIPC, "shmem" }, { CRIU_VMA_HEAP, "heap" }, { CRIU_VMA_STACK, "stack" },
		{ CRIU_VMA_MEMFD, "shmem" }, { CRIU_VMA_ANON_SHARED, "shmem" },
		{ CRIU_VMA_FILE_SHARED, "file-shared" }, { CRIU_VMA_FILE_PRIVATE, "file" },
		{ CRIU_VMA_ANON_PRIVATE, "anon" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (st & names[i].bit)
			return names[i].name;
	return "other";
}

/* comm of the main thread; "" when the dump has no core image for it */
static int read_comm(const struct dump *d, char *comm, size_t len)
{
	char name[64];
	struct img_in in;
	ProtobufCMessage *m;
	int r;

	comm[0] = '\0';
	snprintf(name, sizeof(name), "core-%u.img", d->pid);
	if (faccessat(d->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) && errno == ENOENT)
		return 0;
	if (img_open(&in, d->dirfd, name, IMG_CORE_MAGIC))
		goto fail;
	r = img_get_msg(&in, &core_entry__descriptor, &m);
	img_in_free(&in);
	if (r > 0)
		dt_err(DT_EXIT_ERROR, "%s is empty", name);
	if (r)
		goto fail;
	if (((CoreEntry *)m)->tc && ((CoreEntry *)m)->tc->comm)
		snprintf(comm, len, "%s", ((CoreEntry *)m)->tc->comm);
	core_entry__free_unpacked((CoreEntry *)m, NULL);
	return 0;
fail:
	dt_err_prefix("dump %s: ", d->path);
	return -1;
}

int dump_check_images(const struct dump *d)
{
	char comm[32];

	return read_comm(d, comm, sizeof(comm));
}

/* Pages of d's entries with flags in [start, end), by kind. */
static void count_in(const struct dump *d, uint64_t start, uint64_t end, uint64_t *present,
		     uint64_t *parent)
{
	size_t lo = 0, hi = d->nents;

	/* the first entry ending after start */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (d->ents[mid].vaddr + d->ents[mid].nr_pages * PAGE_SIZE <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	*present = *parent = 0;
	for (size_t i = lo; i < d->nents && d->ents[i].vaddr < end; i++) {
		const struct dump_entry *e = &d->ents[i];
		uint64_t s = e->vaddr > start ? e->vaddr : start;
		uint64_t x = e->vaddr + e->nr_pages * PAGE_SIZE;
		uint64_t n = ((x < end ? x : end) - s) / PAGE_SIZE;

		if (e->flags & PE_PRESENT)
			*present += n;
		else if (e->flags & PE_PARENT)
			*parent += n;
	}
}

int dump_summarize(const struct dump *d, struct dump_summary *s)
{
	const MmEntry *mm = d->mm;
	uint64_t in_vmas = 0;

	memset(s, 0, sizeof(*s));
	if (read_comm(d, s->comm, sizeof(s->comm)))
		return -1;
	s->has_identity = meta_read_identity(d, &s->id) == 0;
	if (!s->has_identity)
		dt_err_clear();	/* a CRIU dump: shown without dirtytrack's identity */
	s->nvmas = mm->n_vmas;
	s->vmas = xcalloc(s->nvmas ? s->nvmas : 1, sizeof(*s->vmas));
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		struct vma_pages *p = &s->vmas[i];

		p->start = v->start;
		p->end = v->end;
		p->status = v->status;
		p->prot = v->prot;
		p->flags = v->flags;
		if (v->end > v->start)
			count_in(d, v->start, v->end, &p->pages_present, &p->pages_parent);
		in_vmas += p->pages_present + p->pages_parent;
	}
	/* mappings do not overlap in a sane mm image; never report < 0 */
	s->pages_outside = d->pages_present + d->pages_parent > in_vmas
				   ? d->pages_present + d->pages_parent - in_vmas : 0;
	return 0;
}

void dump_summary_free(struct dump_summary *s)
{
	free(s->vmas);
	s->vmas = NULL;
	s->nvmas = 0;
}

/* --- the chain against live memory --- */

/* Every thread of pid must be stopped, or memory could change under us. */
static int check_stopped(pid_t pid)
{
	struct proc_stat st;
	pid_t *tids = NULL;
	int n, err = 0;

	if (proc_stat_read(pid, &st))
		return -1;
	if (st.state != 'T' && st.state != 't')
		return dt_err(DT_EXIT_ERROR, "process %d (%s) is not stopped (state %c): stop it "
			      "first (kill -STOP %d, or dump with --leave-stopped)", pid, st.comm,
			      st.state, pid);
	n = proc_tasks(pid, &tids);
	if (n < 0)
		return -1;
	for (int i = 0; i < n && !err; i++) {
		if (proc_task_stat_read(pid, tids[i], &st))
			continue;	/* exited meanwhile: it writes nothing more */
		if (st.state != 'T' && st.state != 't' && st.state != 'Z' && st.state != 'X')
			err = dt_err(DT_EXIT_ERROR, "thread %d of process %d is not stopped (state %c): "
				     "stop the whole process first (kill -STOP %d)", tids[i], pid,
				     st.state, pid);
	}
	free(tids);
	return err;
}

static const unsigned char zero_page[PAGE_SIZE];

static bool page_is_zero(const unsigned char *p)
{
	return p[0] == 0 && !memcmp(p, p + 1, PAGE_SIZE - 1);
}

static void add_page(struct range_set *s, uint64_t addr)
{
	if (range_set_add(s, addr, addr + PAGE_SIZE))
		die_oom();
}

/* mem_copy hands over bytes only: this walks the ranges alongside them. */
struct live_cmp {
	const struct dump_chain *c;
	const struct range_set *ranges;
	size_t ri;
	uint64_t addr;
	struct verify_live_result *r;
	dt_progress_fn progress;
	void *progress_ctx;
	uint64_t done, total;
};

static int compare_chunk(void *ctx, const void *data, size_t len)
{
	struct live_cmp *k = ctx;
	const unsigned char *live = data;

	for (size_t off = 0; off + PAGE_SIZE <= len; off += PAGE_SIZE) {
		const unsigned char *dumped;

		while (k->addr >= k->ranges->r[k->ri].end) {
			k->ri++;
			k->addr = k->ranges->r[k->ri].start;
		}
		dumped = chain_page(k->c, 0, k->addr);
		if (memcmp(live + off, dumped ? dumped : zero_page, PAGE_SIZE))
			add_page(&k->r->mismatches, k->addr);
		k->addr += PAGE_SIZE;
	}
	k->done += len;
	if (k->progress)
		k->progress(k->progress_ctx, k->done, k->total);
	return 0;
}

static void one_range(struct range_set *s, uint64_t start, uint64_t end)
{
	range_set_clear(s);
	if (range_set_add(s, start, end))
		die_oom();
}

/*
 * What the live process holds, found another way than the dump found it
 * (the dump's PAGEMAP_SCAN content map could share its blind spots):
 * shared memory is compared page for page over the whole object the
 * mapping shows (its size from the object when we can open it), private
 * memory wherever the raw pagemap has a present or swapped entry.
 */
#define PAGEMAP_CHUNK 65536	/* entries per read: 256 MiB of address space */

static int live_content(pid_t pid, struct pm_scanner *s, const struct vma *v,
			struct range_set *out)
{
	uint64_t end = v->end, e;

	if (v->kind == VMA_SHMEM) {
		int fd = shmem_object_open(pid, v);
		struct stat st;

		if (fd >= 0 && fstat(fd, &st) == 0) {
			uint64_t size = (uint64_t)st.st_size;

			end = size <= v->pgoff ? v->start
			      : v->start + ((size - v->pgoff + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1));
			if (end > v->end)
				end = v->end;
		}
		if (fd >= 0)
			close(fd);
		if (end > v->start && range_set_add(out, v->start, end))
			die_oom();
		return 0;
	}
	uint64_t *ents = xmalloc(PAGEMAP_CHUNK * sizeof(*ents));
	int ndev = pagemap_swap_devices();

	for (uint64_t a = v->start; a < v->end;) {
		size_t n = (v->end - a) / PAGE_SIZE;

		if (n > PAGEMAP_CHUNK)
			n = PAGEMAP_CHUNK;
		errno = 0;
		if (lseek(s->fd, (off_t)(a / PAGE_SIZE * 8), SEEK_SET) < 0 ||
		    read_full(s->fd, ents, n * sizeof(*ents)) != (ssize_t)(n * sizeof(*ents))) {
			free(ents);
			return pm_scan_error(pid, errno ? errno : ESRCH);
		}
		for (size_t i = 0; i < n; i++) {
			e = ents[i];
			/* present or swapped; a private file mapping's own pages are its anon ones */
			if (!(e & PM_ENTRY_PRESENT) && !pagemap_real_swap(e, ndev))
				continue;
			if (v->kind == VMA_FILE_PRIVATE && (e & PM_ENTRY_FILE))
				continue;
			if (range_set_add(out, a + i * PAGE_SIZE, a + (i + 1) * PAGE_SIZE))
				die_oom();
		}
		a += n * PAGE_SIZE;
	}
	free(ents);
	return 0;
}

/*
 * The pages to compare: every live page with content (read from the
 * target), and every chain page in such a mapping that the target has no
 * content for (it reads as zero there) - except in private file mappings,
 * where such a page reads from the file.
 */
static int collect(const struct dump_chain *c, pid_t pid, struct range_set *live,
		   struct range_set *chain_only, struct verify_live_result *r)
{
	struct range_set covered = RANGE_SET_INIT, vma = RANGE_SET_INIT, in_vma = RANGE_SET_INIT,
			 v_live = RANGE_SET_INIT, extra = RANGE_SET_INIT, mapped = RANGE_SET_INIT,
			 outside = RANGE_SET_INIT;
	struct vma_list l;
	struct pm_scanner s;
	int err = 0;

	if (vma_list_read(pid, &l))
		return -1;
	if (pm_scanner_open(&s, pid)) {
		vma_list_free(&l);
		return -1;
	}
	dump_covered(&c->d[0], &covered);
	for (size_t i = 0; i < l.n && !err; i++) {
		const struct vma *v = &l.v[i];

		if (!vma_dumps_content(v))
			continue;
		range_set_clear(&v_live);
		err = live_content(pid, &s, v, &v_live);
		if (err)
			break;
		one_range(&vma, v->start, v->end);
		if (range_set_add(&mapped, v->start, v->end) ||
		    range_set_intersect(&in_vma, &covered, &vma) ||
		    range_set_subtract(&extra, &in_vma, &v_live) || range_set_union(live, &v_live))
			die_oom();
		r->pages_chain += range_set_pages(&in_vma);
		if (v->kind == VMA_FILE_PRIVATE)
			r->pages_file += range_set_pages(&extra);
		else if (range_set_union(chain_only, &extra))
			die_oom();
	}
	if (!err) {
		if (range_set_subtract(&outside, &covered, &mapped))
			die_oom();
		r->pages_unmapped = range_set_pages(&outside);
		r->pages_live = range_set_pages(live);
	}
	pm_scanner_close(&s);
	vma_list_free(&l);
	range_set_free(&covered);
	range_set_free(&vma);
	range_set_free(&in_vma);
	range_set_free(&v_live);
	range_set_free(&extra);
	range_set_free(&mapped);
	range_set_free(&outside);
	return err;
}

int verify_live(const struct dump_chain *c, pid_t pid, struct verify_live_result *r,
		dt_progress_fn progress, void *progress_ctx)
{
	struct range_set live = RANGE_SET_INIT, chain_only = RANGE_SET_INIT;
	struct mem_reader m;
	int err;

	memset(r, 0, sizeof(*r));
	if (check_stopped(pid))
		return -1;
	err = collect(c, pid, &live, &chain_only, r);
	if (!err && live.n) {
		struct live_cmp k = { c, &live, 0, live.r[0].start, r, progress, progress_ctx,
				      0, range_set_bytes(&live) };

		err = mem_reader_open(&m, pid);
		if (!err) {
			err = mem_copy(&m, &live, compare_chunk, &k);
			mem_reader_close(&m);
		}
	}
	if (!err) {
		range_set_for_each(x, &chain_only) {
			for (uint64_t a = x->start; a < x->end; a += PAGE_SIZE) {
				const unsigned char *p = chain_page(c, 0, a);

				if (p && !page_is_zero(p))
					add_page(&r->mismatches, a);
			}
		}
		r->pages_compared = range_set_pages(&live) + range_set_pages(&chain_only);
	}
	range_set_free(&live);
	range_set_free(&chain_only);
	if (err)
		verify_live_result_free(r);
	return err;
}

void verify_live_result_free(struct verify_live_result *r)
{
	range_set_free(&r->mismatches);
}
