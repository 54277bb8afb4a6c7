// SPDX-License-Identifier: MIT
/*
 * diff: walk the pages either dump gives content for, in runs that resolve
 * the same way on both sides (same dump of each chain, contiguous in its
 * pages file).  A run both chains hold in one shared dump is unchanged
 * unread; any other run is compared one memcmp per block, page by page only
 * inside a block that differs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/diff.h"
#include "lib/err.h"
#include "lib/path.h"
#include "lib/util.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pstree.pb-c.h"

/* Compared with one memcmp; small enough to stay in cache for a rescan. */
#define DIFF_BLOCK (64 * PAGE_SIZE)

static const unsigned char zero_block[DIFF_BLOCK];

struct differ {
	const struct dump_chain *a, *b;
	/* level of the same dump in the other chain, or -1 */
	int *shared_a, *shared_b;
	/* A's dump i is B's shared_a[i] as one directory, not a copy of it */
	bool *one_dir_a;
	const struct diff_opts *o;
	struct diff_result *r;
	size_t range_bytes_cap;
	/* each pages file of each dump, opened when first read: -2 not yet, -1 none */
	int *fd_a, *fd_b;
	size_t *first_a, *first_b;	/* dump i's files start at first[i] */
	unsigned char *buf_a, *buf_b;
};

/* How addr resolves in a chain, and for how many bytes it goes on so. */
struct resolved {
	const unsigned char *p;		/* NULL: zero */
	int level;			/* the dump storing the bytes, -1 for none */
	const struct pm_file *pm;	/* its file */
	uint64_t len;
};

static uint64_t entry_end(const struct dump_entry *e)
{
	return e->vaddr + e->nr_pages * PAGE_SIZE;
}

/* Start of the first entry of d above addr, or UINT64_MAX. */
static uint64_t next_entry_start(const struct dump *d, uint64_t addr)
{
	size_t lo = 0, hi = d->nents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->ents[mid].vaddr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < d->nents ? d->ents[lo].vaddr : UINT64_MAX;
}

static void resolve(const struct dump_chain *c, uint64_t addr, uint64_t end, struct resolved *r)
{
	r->p = NULL;
	r->level = -1;
	for (int i = 0; i < c->n; i++) {
		const struct dump *d = &c->d[i];
		const struct dump_entry *e = dump_find(d, addr);

		if (!e) {
			uint64_t next = next_entry_start(d, addr);

			if (next < end)
				end = next;
			break;
		}
		if (entry_end(e) < end)
			end = entry_end(e);
		if (e->flags & PE_PRESENT) {
			r->p = dump_entry_data(e) + (addr - e->vaddr);
			r->level = i;
			r->pm = e->src;
			break;
		}
		if (!(e->flags & PE_PARENT))
			break;
	}
	r->len = end - addr;
}

static const char *dump_id_of(const struct dump *d)
{
	return d->inv && d->inv->dt_dump_id && d->inv->dt_dump_id[0] ? d->inv->dt_dump_id : NULL;
}

/*
 * One dump seen twice: the same directory, or a copy of it (same dump id).
 * Only the same directory lets pages go unread: a copy may have been
 * damaged, and comparing a copy with its original is a use of diff.
 */
static bool same_dump(const struct dump *x, const struct dump *y)
{
	const char *ix, *iy;

	if (x->pages_size != y->pages_size || x->nents != y->nents)
		return false;
	if (!strcmp(x->path, y->path))
		return true;
	ix = dump_id_of(x);
	iy = dump_id_of(y);
	return ix && iy && !strcmp(ix, iy);
}

/* Chains share a suffix, if anything: find where it starts on each side. */
static void find_shared(struct differ *df)
{
	const struct dump_chain *a = df->a, *b = df->b;

	for (int i = 0; i < a->n; i++)
		df->shared_a[i] = -1;
	for (int j = 0; j < b->n; j++)
		df->shared_b[j] = -1;
	for (int i = 0; i < a->n; i++)
		for (int j = 0; j < b->n; j++) {
			if (!same_dump(&a->d[i], &b->d[j]))
				continue;
			for (; i < a->n && j < b->n && same_dump(&a->d[i], &b->d[j]); i++, j++) {
				df->shared_a[i] = j;
				df->shared_b[j] = i;
				df->one_dir_a[i] = !strcmp(a->d[i].path, b->d[j].path);
			}
			return;
		}
}

static void find_relation(struct differ *df)
{
	struct diff_result *r = df->r;

	r->relation = DIFF_UNRELATED;
	if (df->shared_a[0] == 0) {
		r->relation = DIFF_SAME;
	} else if (df->shared_a[0] > 0) {
		r->relation = DIFF_A_ANCESTOR_OF_B;
		r->distance = df->shared_a[0];
	} else if (df->shared_b[0] > 0) {
		r->relation = DIFF_B_ANCESTOR_OF_A;
		r->distance = df->shared_b[0];
	}
}

static void read_side(const struct dump_chain *c, struct diff_side *s)
{
	s->depth = c->n;
	s->has_identity = meta_read_identity(&c->d[0], &s->id) == 0;
	if (!s->has_identity) {
		/* a dump CRIU wrote: compare it all the same */
		dt_err_clear();
		memset(&s->id, 0, sizeof(s->id));
		s->id.pid = (pid_t)c->d[0].pid;
	}
}

/* ---- rows: the two mm images' mappings, overlaid ---- */

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

static int cmp_vma_start(const void *x, const void *y)
{
	const VmaEntry *a = *(VmaEntry *const *)x, *b = *(VmaEntry *const *)y;

	return a->start < b->start ? -1 : a->start > b->start;
}

static int cmp_row_start(const void *x, const void *y)
{
	const struct diff_vma *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

static VmaEntry **sorted_vmas(const struct dump *d, size_t *n)
{
	VmaEntry **v;

	*n = d->mm ? d->mm->n_vmas : 0;
	v = xcalloc(*n ? *n : 1, sizeof(*v));
	for (size_t i = 0; i < *n; i++)
		v[i] = d->mm->vmas[i];
	qsort(v, *n, sizeof(*v), cmp_vma_start);
	return v;
}

/* The mapping of v[0..n) holding addr, advancing *i (addr only grows). */
static const VmaEntry *vma_at(VmaEntry **v, size_t n, size_t *i, uint64_t addr)
{
	while (*i < n && v[*i]->end <= addr)
		(*i)++;
	return *i < n && v[*i]->start <= addr ? v[*i] : NULL;
}

static struct diff_vma *add_row(struct diff_result *r, size_t *cap)
{
	if (r->nvmas == *cap)
		r->vmas = xrealloc(r->vmas, (*cap = *cap ? *cap * 2 : 16) * sizeof(*r->vmas));
	memset(&r->vmas[r->nvmas], 0, sizeof(r->vmas[0]));
	return &r->vmas[r->nvmas++];
}

static void build_rows(struct differ *df, const struct range_set *pages)
{
	struct diff_result *r = df->r;
	size_t na, nb, npts = 0, ia = 0, ib = 0, cap = 0;
	VmaEntry **va = sorted_vmas(&df->a->d[0], &na), **vb = sorted_vmas(&df->b->d[0], &nb);
	uint64_t *pts = xmalloc((2 * (na + nb) + 1) * sizeof(*pts));
	const VmaEntry *pa = NULL, *pb = NULL;
	struct range_set mapped = RANGE_SET_INIT, outside = RANGE_SET_INIT;

	for (size_t i = 0; i < na; i++) {
		pts[npts++] = va[i]->start;
		pts[npts++] = va[i]->end;
	}
	for (size_t i = 0; i < nb; i++) {
		pts[npts++] = vb[i]->start;
		pts[npts++] = vb[i]->end;
	}
	qsort(pts, npts, sizeof(*pts), cmp_u64);
	for (size_t k = 0; k + 1 < npts; k++) {
		uint64_t s = pts[k], e = pts[k + 1];
		const VmaEntry *xa, *xb;
		struct diff_vma *row;

		if (s == e)
			continue;
		xa = vma_at(va, na, &ia, s);
		xb = vma_at(vb, nb, &ib, s);
		if (!xa && !xb)
			continue;
		if (r->nvmas && r->vmas[r->nvmas - 1].end == s && xa == pa && xb == pb) {
			r->vmas[r->nvmas - 1].end = e;
			continue;
		}
		row = add_row(r, &cap);
		row->start = s;
		row->end = e;
		row->status = xb ? xb->status : xa->status;
		row->in_a = xa;
		row->in_b = xb;
		pa = xa;
		pb = xb;
		if (range_set_add(&mapped, s, e))
			die_oom();
	}
	/* pages no mapping holds: one row for each gap between mappings */
	if (range_set_subtract(&outside, pages, &mapped))
		die_oom();
	for (size_t k = 0; k < outside.n;) {
		struct diff_vma *row = add_row(r, &cap);
		size_t gap = k;

		/* pieces of one gap are separated by nothing mapped */
		while (k + 1 < outside.n && !range_set_overlaps(&mapped, outside.r[k].end,
								  outside.r[k + 1].start))
			k++;
		row->start = outside.r[gap].start;
		row->end = outside.r[k].end;
		k++;
	}
	qsort(r->vmas, r->nvmas, sizeof(*r->vmas), cmp_row_start);
	range_set_free(&mapped);
	range_set_free(&outside);
	free(pts);
	free(va);
	free(vb);
}

/* ---- comparing ---- */

static uint64_t bytes_differing(const unsigned char *a, const unsigned char *b)
{
	const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
	uint64_t n = 0;

	for (size_t i = 0; i < PAGE_SIZE; i += 8) {
		uint64_t x, y;

		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		x ^= y;
		/* the top bit of each byte of x that is not zero */
		x = (((x & low7) + low7) | x) & ~low7;
		n += (uint64_t)__builtin_popcountll(x);
	}
	return n;
}

static void add_range(struct range_set *s, uint64_t start, uint64_t end)
{
	if (range_set_add(s, start, end))
		die_oom();
}

/* Pages come in address order, so a page extends the last range or starts one. */
static void add_changed(struct differ *df, struct diff_vma *row, uint64_t addr, uint64_t bytes)
{
	struct diff_result *r = df->r;
	size_t n = r->changed.n;

	add_range(&r->changed, addr, addr + PAGE_SIZE);
	row->n.changed++;
	if (!df->o->count_bytes)
		return;
	row->n.changed_bytes += bytes;
	if (r->changed.n > n) {
		if (r->changed.n > df->range_bytes_cap) {
			df->range_bytes_cap = r->changed.n * 2;
			r->changed_range_bytes = xrealloc(r->changed_range_bytes,
							  df->range_bytes_cap * sizeof(uint64_t));
		}
		r->changed_range_bytes[r->changed.n - 1] = 0;
	}
	r->changed_range_bytes[r->changed.n - 1] += bytes;
}

static void count_unchanged(struct diff_vma *row, uint64_t pages, bool rewritten)
{
	row->n.unchanged += pages;
	if (rewritten)
		row->n.written_identical += pages;
}

/*
 * Where one side's bytes come from: pread() into a block buffer.  It costs
 * a copy, but touching the mapped pages file costs more: a page table entry
 * per page, dear under shadow paging (3-4 times the copy on our test VM,
 * for long runs and scattered single pages alike).  The mapping serves
 * only when the file cannot be opened.
 */
struct source {
	const unsigned char *p;		/* in the mapping; NULL: zero */
	int fd;				/* >= 0: read through it */
	uint64_t off;			/* p's offset in the pages file */
	unsigned char *buf;		/* DIFF_BLOCK bytes */
};

static int pages_fd(struct differ *df, bool side_a, int level, const struct pm_file *pm)
{
	const struct dump *d = side_a ? &df->a->d[level] : &df->b->d[level];
	size_t slot = (side_a ? df->first_a : df->first_b)[level] + (size_t)(pm - d->pms);
	int *fd = side_a ? &df->fd_a[slot] : &df->fd_b[slot];
	char name[64];

	if (*fd == -2) {
		snprintf(name, sizeof(name), "pages-%u.img", pm->pages_id);
		struct stat st;

		*fd = path_openat(d->dirfd, name, O_RDONLY | O_NONBLOCK, 0);
		/* no file descriptor: the mapping serves as well, only slower */
		if (*fd >= 0 && (fstat(*fd, &st) || !S_ISREG(st.st_mode))) {
			close(*fd);
			*fd = -1;
		}
		if (*fd >= 0)
			posix_fadvise(*fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		else
			*fd = -1;
	}
	return *fd;
}

static void source_init(struct differ *df, struct source *s, bool side_a,
			const struct resolved *r)
{
	s->p = r->p;
	s->fd = -1;
	s->buf = side_a ? df->buf_a : df->buf_b;
	if (r->p) {
		s->fd = pages_fd(df, side_a, r->level, r->pm);
		s->off = (uint64_t)(r->p - r->pm->pages);
	}
}

static const unsigned char *source_block(struct differ *df, struct source *s, uint64_t at,
					 uint64_t n, bool side_a)
{
	uint64_t done = 0;

	if (!s->p)
		return zero_block;
	if (s->fd < 0)
		return s->p + at;
	while (done < n) {
		ssize_t k = pread(s->fd, s->buf + done, n - done, (off_t)(s->off + at + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			const struct dump_chain *c = side_a ? df->a : df->b;

			if (k == 0)
				errno = EIO;	/* shrunk since it was opened */
			dt_err_sys(DT_EXIT_ERROR, "reading the pages of %s",
				   c->d[0].path);
			return NULL;
		}
		done += (uint64_t)k;
	}
	return s->buf;
}

/*
 * One memcmp per block; page by page only inside a block that differs.
 * A side without bytes reads as zero: a page only one side stores is
 * "only" there unless it is all zero, then it is unchanged.
 */
static int compare_run(struct differ *df, struct diff_vma *row, uint64_t addr,
		       const struct resolved *ra, const struct resolved *rb, uint64_t len,
		       bool rewritten)
{
	struct source sa, sb;

	source_init(df, &sa, true, ra);
	source_init(df, &sb, false, rb);
	for (uint64_t off = 0; off < len; off += DIFF_BLOCK) {
		uint64_t n = len - off < DIFF_BLOCK ? len - off : DIFF_BLOCK;
		const unsigned char *pa = source_block(df, &sa, off, n, true);
		const unsigned char *pb = source_block(df, &sb, off, n, false);

		if (!pa || !pb)
			return -1;
		if (!memcmp(pa, pb, n)) {
			count_unchanged(row, n / PAGE_SIZE, rewritten);
			continue;
		}
		for (uint64_t q = 0; q < n; q += PAGE_SIZE) {
			uint64_t at = addr + off + q;

			if (!memcmp(pa + q, pb + q, PAGE_SIZE)) {
				count_unchanged(row, 1, rewritten);
			} else if (ra->p && rb->p) {
				add_changed(df, row, at, df->o->count_bytes ?
					    bytes_differing(pa + q, pb + q) : 0);
			} else if (ra->p) {
				row->n.only_a++;
				add_range(&df->r->only_a, at, at + PAGE_SIZE);
			} else {
				row->n.only_b++;
				add_range(&df->r->only_b, at, at + PAGE_SIZE);
			}
		}
	}
	return 0;
}

static int compare_range(struct differ *df, struct diff_vma *row, uint64_t addr, uint64_t end)
{
	while (addr < end) {
		struct resolved ra, rb;
		uint64_t len;
		bool one_copy, rewritten;

		resolve(df->a, addr, end, &ra);
		resolve(df->b, addr, end, &rb);
		len = ra.len < rb.len ? ra.len : rb.len;
		/* the one stored copy both chains hold */
		one_copy = ra.level >= 0 && rb.level >= 0 && df->shared_a[ra.level] == rb.level;
		if ((one_copy && df->one_dir_a[ra.level]) || (!ra.p && !rb.p)) {
			count_unchanged(row, len / PAGE_SIZE, false);
		} else {
			rewritten = !one_copy && ((ra.level >= 0 && df->shared_a[ra.level] < 0) ||
						  (rb.level >= 0 && df->shared_b[rb.level] < 0));
			if (compare_run(df, row, addr, &ra, &rb, len, rewritten))
				return -1;
		}
		addr += len;
	}
	return 0;
}

static void add_counts(struct diff_counts *to, const struct diff_counts *n)
{
	to->only_a += n->only_a;
	to->only_b += n->only_b;
	to->changed += n->changed;
	to->unchanged += n->unchanged;
	to->written_identical += n->written_identical;
	to->changed_bytes += n->changed_bytes;
}

int dump_diff(const struct dump_chain *a, const struct dump_chain *b,
	      const struct diff_opts *o, struct diff_result *r)
{
	struct differ df = { .a = a, .b = b, .o = o, .r = r };
	struct range_set cov_a = RANGE_SET_INIT, cov_b = RANGE_SET_INIT, pages = RANGE_SET_INIT;
	int err = 0;

	memset(r, 0, sizeof(*r));
	if (!a->n || !b->n)
		return dt_err(DT_EXIT_ERROR, "diff: a dump chain is not open");
	df.shared_a = xcalloc(a->n, sizeof(int));
	df.shared_b = xcalloc(b->n, sizeof(int));
	df.one_dir_a = xcalloc(a->n, sizeof(bool));
	df.first_a = xcalloc((size_t)a->n + 1, sizeof(size_t));
	df.first_b = xcalloc((size_t)b->n + 1, sizeof(size_t));
	for (int i = 0; i < a->n; i++)
		df.first_a[i + 1] = df.first_a[i] + a->d[i].npms;
	for (int i = 0; i < b->n; i++)
		df.first_b[i + 1] = df.first_b[i] + b->d[i].npms;
	df.fd_a = xcalloc(df.first_a[a->n] + 1, sizeof(int));
	df.fd_b = xcalloc(df.first_b[b->n] + 1, sizeof(int));
	for (size_t i = 0; i < df.first_a[a->n]; i++)
		df.fd_a[i] = -2;
	for (size_t i = 0; i < df.first_b[b->n]; i++)
		df.fd_b[i] = -2;
	df.buf_a = xmalloc(DIFF_BLOCK);
	df.buf_b = xmalloc(DIFF_BLOCK);
	find_shared(&df);
	find_relation(&df);
	read_side(a, &r->a);
	read_side(b, &r->b);
	r->same_process = r->a.id.pid == r->b.id.pid &&
			  (!r->a.has_identity || !r->b.has_identity ||
			   r->a.id.start_time == r->b.id.start_time);

	/* every page either side gives content for */
	dump_covered(&a->d[0], &cov_a);
	dump_covered(&b->d[0], &cov_b);
	if (range_set_copy(&pages, &cov_a) || range_set_union(&pages, &cov_b))
		die_oom();
	build_rows(&df, &pages);
	for (size_t i = 0, k = 0; i < r->nvmas && !err; i++) {
		struct diff_vma *row = &r->vmas[i];

		/* rows are sorted and disjoint; a range may span several */
		while (k < pages.n && pages.r[k].end <= row->start)
			k++;
		for (size_t j = k; j < pages.n && pages.r[j].start < row->end && !err; j++) {
			uint64_t s = pages.r[j].start > row->start ? pages.r[j].start : row->start;
			uint64_t e = pages.r[j].end < row->end ? pages.r[j].end : row->end;

			if (compare_range(&df, row, s, e))
				err = -1;
		}
		add_counts(&r->total, &row->n);
	}
	for (size_t i = 0; i < df.first_a[a->n]; i++)
		if (df.fd_a[i] >= 0)
			close(df.fd_a[i]);
	for (size_t i = 0; i < df.first_b[b->n]; i++)
		if (df.fd_b[i] >= 0)
			close(df.fd_b[i]);
	free(df.first_a);
	free(df.first_b);
	range_set_free(&cov_a);
	range_set_free(&cov_b);
	range_set_free(&pages);
	free(df.shared_a);
	free(df.shared_b);
	free(df.one_dir_a);
	free(df.fd_a);
	free(df.fd_b);
	free(df.buf_a);
	free(df.buf_b);
	if (err)
		diff_result_free(r);
	return err;
}

void diff_result_free(struct diff_result *r)
{
	free(r->vmas);
	free(r->changed_range_bytes);
	range_set_free(&r->changed);
	range_set_free(&r->only_a);
	range_set_free(&r->only_b);
	memset(r, 0, sizeof(*r));
}

const char *diff_relation_name(enum diff_relation rel)
{
	switch (rel) {
	case DIFF_SAME:
		return "same";
	case DIFF_A_ANCESTOR_OF_B:
		return "a_is_ancestor_of_b";
	case DIFF_B_ANCESTOR_OF_A:
		return "b_is_ancestor_of_a";
	default:
		return "unrelated";
	}
}

bool diff_differs(const struct diff_result *r)
{
	return r->total.only_a || r->total.only_b || r->total.changed;
}
