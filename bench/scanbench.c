// SPDX-License-Identifier: MIT
/*
 * scanbench: the baselines dirtytrack's figures are divided by, measured
 * with the project's own code where that is the point and with the
 * plainest possible loop where the limit is the point.
 *
 *   scanbench collect --size-mib N --dirty-pct P[,P...] [--runs R]
 *       In-process: its own memory, its own async-WP userfaultfd, armed;
 *       then per run and per fraction P, with exactly P% of the pages
 *       (scattered at random) written since the last protect, times
 *         collect_ioctl    dirty_collect(), PAGEMAP_SCAN backend (consume)
 *         raw_ioctl        the bare PAGEMAP_SCAN get-and-protect loop
 *         collect_pagemap  dirty_collect(), pagemap bit-57 backend (consume)
 *         pagemap_read     reading the range's /proc/self/pagemap entries
 *   scanbench memread --pid P --addr A --len L [--runs R] [--chunk BYTES]
 *       /proc/P/mem into one reused 8 MiB buffer: the copy limit of a dump.
 *   scanbench write --dir D --bytes B [--runs R]
 *       B bytes from a reused buffer into a new file in D, fsync: the sink limit.
 *   scanbench copy --pid P --addr A --len L --dir D [--runs R] [--chunk BYTES]
 *       both in series, as a one-thread dump does: read 8 MiB, write 8 MiB
 *       (--chunk: another buffer size, to see what the size costs).
 *   scanbench mapcopy --pid P --addr A --len L --dir D [--runs R] [--chunk BYTES]
 *       one copy instead of two: the output file is sized, mapped shared and
 *       populated, and /proc/P/mem is read straight into the mapping.
 *   scanbench pipecopy --pid P --addr A --len L --dir D [--runs R] [--chunk BYTES]
 *       read and write overlapped: a reader thread and a writer thread
 *       passing four reused buffers, so the time is max(read, write), not
 *       their sum.
 *   scanbench splice --size-mib N --dir D [--runs R] [--chunk BYTES]
 *       the zero-copy-read design CRIU's parasite uses, on its own memory:
 *       vmsplice() pages into a pipe, splice() the pipe into a file in D.
 *       Only the file write copies.  For dirtytrack the target would make
 *       the vmsplice call (an injected syscall), the tracker the splice.
 *   scanbench readfiles [--runs R] FILE...
 *       read files into a reused buffer: the floor of comparing two dumps.
 *
 * Output: one JSON object on stdout with every run's time in ms; the
 * caller takes medians and ratios.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/uapi.h"
#include "lib/util.h"
#include "pagemap/dirty.h"
#include "pagemap/rangeset.h"
#include "pagemap/scan.h"
#include "tracker/uffd.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CHUNK (8u << 20)		/* default: as tracker/memread.h's MEMREAD_BUF */
#define MAX_RUNS 64
#define MAX_PCTS 16
#define PAGEMAP_BATCH (64 * 1024)	/* as pagemap/dirty.c */

struct opts {
	uint64_t size_mib;
	double pcts[MAX_PCTS];
	int npcts;
	int runs;
	pid_t pid;
	uint64_t addr, len, bytes;
	const char *dir;
	size_t chunk;			/* bytes per read and write */
};

static void fail(const char *what)
{
	fprintf(stderr, "scanbench: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* The project's functions record their error instead of setting errno. */
static void fail_dt(const char *what)
{
	fprintf(stderr, "scanbench: %s: %s\n", what, dt_err_msg());
	exit(2);
}

static void print_runs(const char *key, const double *v, int n, bool comma)
{
	printf("\"%s\": [", key);
	for (int i = 0; i < n; i++)
		printf("%s%.4f", i ? ", " : "", v[i]);
	printf("]%s", comma ? ", " : "");
}

static void *warm_buffer(size_t n)
{
	unsigned char *b = xmalloc(n);

	/* non-zero, and every page touched before any timing */
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 131 + 7);
	return b;
}

/* ---- collect ---------------------------------------------------------- */

enum reader { R_COLLECT_IOCTL, R_RAW_IOCTL, R_COLLECT_PAGEMAP, R_PAGEMAP_READ, R_COUNT };
static const char *const reader_names[R_COUNT] = {
	"collect_ioctl_ms", "raw_ioctl_ms", "collect_pagemap_ms", "pagemap_read_ms",
};

struct collect_ctx {
	unsigned char *mem;
	uint64_t start, end, pages;
	int uffd;
	struct pm_scanner scan;
	struct dirty_reader ioctl_rd, pagemap_rd;
	struct range_set tracked, dirty;
	uint64_t *entries;
	struct page_region *vec;
};

/* The same get-and-protect walk collect_ioctl() asks for, minus everything else. */
static uint64_t raw_ioctl(struct collect_ctx *c)
{
	uint64_t start = c->start, found = 0;

	while (start < c->end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = PM_SCAN_WP_MATCHING,
			.start = start,
			.end = c->end,
			.vec = (uintptr_t)c->vec,
			.vec_len = 4096,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(c->scan.fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			fail("PAGEMAP_SCAN");
		for (long i = 0; i < n; i++)
			found += (c->vec[i].end - c->vec[i].start) / PAGE_SIZE;
		start = arg.walk_end;
	}
	return found;
}

static uint64_t pagemap_read(struct collect_ctx *c)
{
	uint64_t found = 0;

	for (uint64_t a = c->start; a < c->end;) {
		size_t n = (c->end - a) / PAGE_SIZE, want;

		if (n > PAGEMAP_BATCH)
			n = PAGEMAP_BATCH;
		want = n * sizeof(uint64_t);
		if (pread(c->scan.fd, c->entries, want, (off_t)(a / PAGE_SIZE * 8)) != (ssize_t)want)
			fail("reading /proc/self/pagemap");
		for (size_t i = 0; i < n; i++)
			found += !(c->entries[i] & PM_ENTRY_UFFD_WP);
		a += n * PAGE_SIZE;
	}
	return found;
}

static uint64_t collect_with(struct collect_ctx *c, struct dirty_reader *r)
{
	range_set_clear(&c->dirty);
	if (dirty_collect(r, &c->tracked, true, &c->dirty))
		fail_dt("dirty_collect");
	return range_set_pages(&c->dirty);
}

static uint64_t run_reader(struct collect_ctx *c, enum reader r)
{
	switch (r) {
	case R_COLLECT_IOCTL:
		return collect_with(c, &c->ioctl_rd);
	case R_RAW_IOCTL:
		return raw_ioctl(c);
	case R_COLLECT_PAGEMAP:
		return collect_with(c, &c->pagemap_rd);
	default:
		return pagemap_read(c);
	}
}

/* k distinct pages out of n, scattered (Floyd's sampling), ascending. */
static uint64_t *pick_pages(uint64_t n, uint64_t k, uint64_t seed)
{
	uint64_t *bitmap = xcalloc((n + 63) / 64, sizeof(uint64_t)), *out = xcalloc(k + 1, 8);
	uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1, m = 0;

	for (uint64_t j = n - k; j < n; j++) {
		uint64_t t;

		s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
		t = (s * 0x2545F4914F6CDD1DULL) % (j + 1);
		if (bitmap[t / 64] & (1ULL << (t % 64)))
			t = j;
		bitmap[t / 64] |= 1ULL << (t % 64);
	}
	for (uint64_t i = 0; i < n; i++)
		if (bitmap[i / 64] & (1ULL << (i % 64)))
			out[m++] = i;
	free(bitmap);
	return out;
}

/* Runs of adjacent pages: what PAGEMAP_SCAN returns as separate regions. */
static uint64_t count_regions(const uint64_t *idx, uint64_t k)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < k; i++)
		n += i == 0 || idx[i] != idx[i - 1] + 1;
	return n;
}

static void write_pages(struct collect_ctx *c, const uint64_t *idx, uint64_t k)
{
	for (uint64_t i = 0; i < k; i++)
		((volatile unsigned char *)c->mem)[idx[i] * PAGE_SIZE]++;
}

static void collect_setup(struct collect_ctx *c, uint64_t bytes)
{
	memset(c, 0, sizeof(*c));
	c->mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->mem == MAP_FAILED)
		fail("mmap");
	madvise(c->mem, bytes, MADV_NOHUGEPAGE);	/* count 4 KiB pages */
	madvise(c->mem, bytes, MADV_POPULATE_WRITE);
	for (uint64_t i = 0; i < bytes; i += PAGE_SIZE)
		c->mem[i] = 1;
	c->start = (uintptr_t)c->mem;
	c->end = c->start + bytes;
	c->pages = bytes / PAGE_SIZE;
	c->uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (c->uffd < 0)
		fail("userfaultfd");
	if (uffd_enable(c->uffd))
		fail_dt("UFFDIO_API");
	errno = -uffd_register_wp(c->uffd, c->start, c->end);
	if (errno)
		fail("UFFDIO_REGISTER");
	if (pm_scanner_open(&c->scan, getpid()))
		fail_dt("/proc/self/pagemap");
	dirty_reader_init(&c->ioctl_rd, DIRTY_IOCTL, &c->scan, c->uffd);
	dirty_reader_init(&c->pagemap_rd, DIRTY_PAGEMAP, &c->scan, c->uffd);
	range_set_init(&c->tracked);
	range_set_init(&c->dirty);
	if (range_set_add(&c->tracked, c->start, c->end))
		die_oom();
	c->entries = xmalloc(PAGEMAP_BATCH * sizeof(uint64_t));
	c->vec = xcalloc(4096, sizeof(*c->vec));
	collect_with(c, &c->ioctl_rd);	/* arm: every page protected */
	/* the readers' own buffers, warm before timing */
	pagemap_read(c);
	collect_with(c, &c->pagemap_rd);
}

static int cmd_collect(const struct opts *o)
{
	struct collect_ctx c;
	double t[R_COUNT][MAX_RUNS];
	uint64_t bad = 0;

	collect_setup(&c, o->size_mib << 20);
	printf("{\"size_mib\": %llu, \"pages\": %llu, \"points\": [",
	       (unsigned long long)o->size_mib, (unsigned long long)c.pages);
	for (int p = 0; p < o->npcts; p++) {
		uint64_t k = (uint64_t)(c.pages * o->pcts[p] / 100.0 + 0.5);
		uint64_t *idx = pick_pages(c.pages, k, (uint64_t)p + 1);

		for (int run = 0; run < o->runs; run++) {
			for (int i = 0; i < R_COUNT; i++) {
				/* rotate the order: drift does not favour one reader */
				enum reader r = (enum reader)((i + run) % R_COUNT);
				uint64_t t0, found;

				collect_with(&c, &c.ioctl_rd);	/* all protected */
				write_pages(&c, idx, k);	/* exactly these written */
				t0 = now_ns();
				found = run_reader(&c, r);
				t[r][run] = (now_ns() - t0) / 1e6;
				if (found != k) {
					fprintf(stderr, "scanbench: %s found %llu pages, wrote %llu\n",
						reader_names[r], (unsigned long long)found,
						(unsigned long long)k);
					bad++;
				}
			}
		}
		printf("%s{\"dirty_pct\": %g, \"dirty_pages\": %llu, \"regions\": %llu, ",
		       p ? ", " : "", o->pcts[p], (unsigned long long)k,
		       (unsigned long long)count_regions(idx, k));
		for (int r = 0; r < R_COUNT; r++)
			print_runs(reader_names[r], t[r], o->runs, r + 1 < R_COUNT);
		printf("}");
		free(idx);
	}
	printf("], \"mismatches\": %llu}\n", (unsigned long long)bad);
	return bad ? 1 : 0;
}

/* ---- copy limits ------------------------------------------------------ */

static void pread_all(int fd, unsigned char *buf, size_t len, off_t off, const char *what)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail(what);
		done += (size_t)n;
	}
}

static void write_full(int fd, const unsigned char *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("write");
		done += (size_t)n;
	}
}

static int open_mem(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail(path);
	return fd;
}

static int create_out(const char *dir, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/.scanbench-%d", dir, getpid());
	/* read-write: mapcopy maps it shared */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		fail(path);
	return fd;
}

static void finish_out(int fd, const char *path)
{
	/* as a dump does: its data must be on the file system */
	if (fsync(fd) || close(fd))
		fail(path);
}

/* read_mem and write_file: in series, as a one-thread dump does. */
static int cmd_transfer(const struct opts *o, bool read_mem, bool write_file)
{
	unsigned char *buf = warm_buffer(o->chunk);
	uint64_t total = write_file && !read_mem ? o->bytes : o->len;
	double t[MAX_RUNS];
	char path[4096];

	for (int run = 0; run < o->runs; run++) {
		int mem = read_mem ? open_mem(o->pid) : -1;
		int out = write_file ? create_out(o->dir, path, sizeof(path)) : -1;
		uint64_t t0 = now_ns();

		for (uint64_t off = 0; off < total; off += o->chunk) {
			size_t n = total - off < o->chunk ? total - off : o->chunk;

			if (read_mem)
				pread_all(mem, buf, n, (off_t)(o->addr + off), "reading /proc/PID/mem");
			if (write_file)
				write_full(out, buf, n);
		}
		if (write_file)
			finish_out(out, path);
		t[run] = (now_ns() - t0) / 1e6;
		if (mem >= 0)
			close(mem);
		if (write_file)
			unlink(path);
	}
	printf("{\"bytes\": %llu, \"chunk\": %zu, ", (unsigned long long)total, o->chunk);
	print_runs("ms", t, o->runs, false);
	printf("}\n");
	free(buf);
	return 0;
}

/* The one-copy alternative: /proc/PID/mem read straight into the page cache. */
static int cmd_mapcopy(const struct opts *o)
{
	double t[MAX_RUNS];
	char path[4096];

	for (int run = 0; run < o->runs; run++) {
		int mem = open_mem(o->pid), out = create_out(o->dir, path, sizeof(path));
		uint64_t t0 = now_ns();
		unsigned char *dst;

		if (ftruncate(out, (off_t)o->len))
			fail("ftruncate");
		dst = mmap(NULL, o->len, PROT_READ | PROT_WRITE, MAP_SHARED, out, 0);
		if (dst == MAP_FAILED)
			fail("mmap");
		/* allocate the page cache in one call, not one fault per page */
		madvise(dst, o->len, MADV_POPULATE_WRITE);
		for (uint64_t off = 0; off < o->len; off += o->chunk) {
			size_t n = o->len - off < o->chunk ? o->len - off : o->chunk;

			pread_all(mem, dst + off, n, (off_t)(o->addr + off), "reading /proc/PID/mem");
		}
		munmap(dst, o->len);
		finish_out(out, path);
		t[run] = (now_ns() - t0) / 1e6;
		close(mem);
		unlink(path);
	}
	printf("{\"bytes\": %llu, \"chunk\": %zu, ", (unsigned long long)o->len, o->chunk);
	print_runs("ms", t, o->runs, false);
	printf("}\n");
	return 0;
}

/* One copy: vmsplice our own pages into a pipe, splice the pipe to a file. */
static int cmd_splice(const struct opts *o)
{
	uint64_t bytes = o->size_mib << 20;
	unsigned char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double t[MAX_RUNS];
	char path[4096];

	if (mem == MAP_FAILED)
		fail("mmap");
	madvise(mem, bytes, MADV_NOHUGEPAGE);
	madvise(mem, bytes, MADV_POPULATE_WRITE);
	for (uint64_t i = 0; i < bytes; i += PAGE_SIZE)
		mem[i] = 1;
	for (int run = 0; run < o->runs; run++) {
		int out = create_out(o->dir, path, sizeof(path)), pfd[2];
		uint64_t t0;

		if (pipe2(pfd, O_CLOEXEC))
			fail("pipe");
		/* a pipe as large as a chunk: one vmsplice fills it */
		if (fcntl(pfd[1], F_SETPIPE_SZ, (int)o->chunk) < 0)
			fail("F_SETPIPE_SZ");
		t0 = now_ns();
		for (uint64_t off = 0; off < bytes; off += o->chunk) {
			struct iovec iov = { mem + off, bytes - off < o->chunk ? bytes - off : o->chunk };

			while (iov.iov_len) {
				ssize_t n = vmsplice(pfd[1], &iov, 1, 0);

				if (n < 0)
					fail("vmsplice");
				iov.iov_base = (char *)iov.iov_base + n;
				iov.iov_len -= (size_t)n;
				while (n > 0) {
					ssize_t m = splice(pfd[0], NULL, out, NULL, (size_t)n, SPLICE_F_MOVE);

					if (m <= 0)
						fail("splice");
					n -= m;
				}
			}
		}
		finish_out(out, path);
		t[run] = (now_ns() - t0) / 1e6;
		close(pfd[0]);
		close(pfd[1]);
		unlink(path);
	}
	printf("{\"bytes\": %llu, \"chunk\": %zu, ", (unsigned long long)bytes, o->chunk);
	print_runs("ms", t, o->runs, false);
	printf("}\n");
	munmap(mem, bytes);
	return 0;
}

#define PIPE_BUFS 4

struct pipeline {
	const struct opts *o;
	int mem, out;
	unsigned char *buf[PIPE_BUFS];
	size_t len[PIPE_BUFS];
	sem_t full, empty;
};

static void *pipe_writer(void *arg)
{
	struct pipeline *p = arg;

	for (uint64_t off = 0, i = 0; off < p->o->len; off += p->o->chunk, i++) {
		sem_wait(&p->full);
		write_full(p->out, p->buf[i % PIPE_BUFS], p->len[i % PIPE_BUFS]);
		sem_post(&p->empty);
	}
	return NULL;
}

/* Overlapped read and write: what a two-thread dump could reach. */
static int cmd_pipecopy(const struct opts *o)
{
	struct pipeline p = { .o = o };
	double t[MAX_RUNS];
	char path[4096];

	for (int i = 0; i < PIPE_BUFS; i++)
		p.buf[i] = warm_buffer(o->chunk);
	for (int run = 0; run < o->runs; run++) {
		pthread_t th;
		uint64_t t0;

		p.mem = open_mem(o->pid);
		p.out = create_out(o->dir, path, sizeof(path));
		sem_init(&p.full, 0, 0);
		sem_init(&p.empty, 0, PIPE_BUFS);
		t0 = now_ns();
		if (pthread_create(&th, NULL, pipe_writer, &p))
			fail("pthread_create");
		for (uint64_t off = 0, i = 0; off < o->len; off += o->chunk, i++) {
			size_t n = o->len - off < o->chunk ? o->len - off : o->chunk;

			sem_wait(&p.empty);
			pread_all(p.mem, p.buf[i % PIPE_BUFS], n, (off_t)(o->addr + off),
				  "reading /proc/PID/mem");
			p.len[i % PIPE_BUFS] = n;
			sem_post(&p.full);
		}
		pthread_join(th, NULL);
		finish_out(p.out, path);
		t[run] = (now_ns() - t0) / 1e6;
		close(p.mem);
		unlink(path);
		sem_destroy(&p.full);
		sem_destroy(&p.empty);
	}
	printf("{\"bytes\": %llu, \"chunk\": %zu, ", (unsigned long long)o->len, o->chunk);
	print_runs("ms", t, o->runs, false);
	printf("}\n");
	for (int i = 0; i < PIPE_BUFS; i++)
		free(p.buf[i]);
	return 0;
}

static int cmd_readfiles(const struct opts *o, int nfiles, char **files)
{
	unsigned char *buf = warm_buffer(CHUNK);
	double t[MAX_RUNS];
	uint64_t bytes = 0;

	for (int run = 0; run < o->runs; run++) {
		uint64_t t0 = now_ns();

		bytes = 0;
		for (int f = 0; f < nfiles; f++) {
			int fd = open(files[f], O_RDONLY | O_CLOEXEC);
			ssize_t n;

			if (fd < 0)
				fail(files[f]);
			while ((n = read(fd, buf, CHUNK)) > 0)
				bytes += (uint64_t)n;
			if (n < 0)
				fail(files[f]);
			close(fd);
		}
		t[run] = (now_ns() - t0) / 1e6;
	}
	printf("{\"bytes\": %llu, ", (unsigned long long)bytes);
	print_runs("ms", t, o->runs, false);
	printf("}\n");
	free(buf);
	return 0;
}

/* ---- options ---------------------------------------------------------- */

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"Usage: scanbench collect --size-mib N --dirty-pct P[,P...] [--runs R]\n"
		"       scanbench memread --pid P --addr A --len L [--runs R] [--chunk BYTES]\n"
		"       scanbench write --dir D --bytes B [--runs R] [--chunk BYTES]\n"
		"       scanbench copy --pid P --addr A --len L --dir D [--runs R] [--chunk BYTES]\n"
		"       scanbench mapcopy --pid P --addr A --len L --dir D [--runs R] [--chunk BYTES]\n"
		"       scanbench pipecopy --pid P --addr A --len L --dir D [--runs R] [--chunk BYTES]\n"
		"       scanbench splice --size-mib N --dir D [--runs R] [--chunk BYTES]\n"
		"       scanbench readfiles [--runs R] FILE...\n");
	exit(code);
}

static uint64_t num(const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end || errno)
		usage(2);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "dirty-pct", required_argument, NULL, 'p' },
		{ "runs", required_argument, NULL, 'r' },
		{ "pid", required_argument, NULL, 'P' },
		{ "addr", required_argument, NULL, 'a' },
		{ "len", required_argument, NULL, 'l' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "dir", required_argument, NULL, 'd' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .size_mib = 256, .runs = 5, .dir = "/dev/shm", .chunk = CHUNK };
	const char *cmd;
	int c;

	if (argc < 2)
		usage(2);
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.size_mib = num(optarg);
			break;
		case 'p':
			for (char *s = optarg, *end; *s && o.npcts < MAX_PCTS; s = end + (*end == ',')) {
				o.pcts[o.npcts++] = strtod(s, &end);
				if (end == s || (*end && *end != ','))
					usage(2);
			}
			break;
		case 'r':
			o.runs = (int)num(optarg);
			break;
		case 'P':
			o.pid = (pid_t)num(optarg);
			break;
		case 'a':
			o.addr = num(optarg);
			break;
		case 'l':
			o.len = num(optarg);
			break;
		case 'b':
			o.bytes = num(optarg);
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'c':
			o.chunk = num(optarg);
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	if (o.runs < 1 || o.runs > MAX_RUNS || o.chunk < PAGE_SIZE || o.chunk % PAGE_SIZE)
		usage(2);
	if (!strcmp(cmd, "collect")) {
		if (!o.npcts || o.size_mib < 1 || o.size_mib > 65536)
			usage(2);
		return cmd_collect(&o);
	}
	if (!strcmp(cmd, "memread") || !strcmp(cmd, "copy")) {
		if (!o.pid || !o.len)
			usage(2);
		return cmd_transfer(&o, true, !strcmp(cmd, "copy"));
	}
	if (!strcmp(cmd, "mapcopy")) {
		if (!o.pid || !o.len)
			usage(2);
		return cmd_mapcopy(&o);
	}
	if (!strcmp(cmd, "pipecopy")) {
		if (!o.pid || !o.len)
			usage(2);
		return cmd_pipecopy(&o);
	}
	if (!strcmp(cmd, "splice"))
		return cmd_splice(&o);
	if (!strcmp(cmd, "write")) {
		if (!o.bytes)
			usage(2);
		return cmd_transfer(&o, false, true);
	}
	if (!strcmp(cmd, "readfiles")) {
		if (optind >= argc)
			usage(2);
		return cmd_readfiles(&o, argc - optind, argv + optind);
	}
	usage(2);
	return 2;
}
