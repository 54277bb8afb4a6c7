// SPDX-License-Identifier: MIT
/*
 * raw_fault: what one page fault costs on this machine, without dirtytrack.
 *
 * The process write-protects its own memory with a userfaultfd in async
 * write-protect mode (what dirtytrack injects into a target), arms it with
 * PAGEMAP_SCAN WP_MATCHING (what a collection does), and times, per page:
 *
 *   first_touch     the first write to fresh anonymous memory
 *   wp_fault        the first write to a warm page after arming (every page)
 *   wp_fault_sparse the same, on every 64th page only (no neighbour effects)
 *   wp_fault_random the same, every page once in a random order (what a
 *                   workload scattering its writes sees)
 *   write_plain     a write to a warm page that is not protected
 *   arm             the PAGEMAP_SCAN that re-protects all written pages
 *
 * Each is the median of --runs rounds.  Prints one JSON object with -j.
 * --no-first-touch skips the (slow) fresh-memory rounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/uapi.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096UL
#define SPARSE_STRIDE 64
#define MAX_RUNS 64

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "raw_fault: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static unsigned char *map_pages(size_t bytes)
{
	unsigned char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	/* 4 KiB pages: a THP would make one fault stand for 512 pages */
	if (madvise(p, bytes, MADV_NOHUGEPAGE))
		die("madvise");
	return p;
}

/* ns per page for writing one byte to every page, in the order given */
static double time_writes_in_order(volatile unsigned char *p, const uint32_t *order, size_t pages)
{
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < pages; i++)
		p[(size_t)order[i] * PAGE]++;
	return (double)(now_ns() - t0) / pages;
}

/* ns per page for writing one byte to every stride-th page */
static double time_writes(volatile unsigned char *p, size_t pages, size_t stride)
{
	uint64_t t0 = now_ns();
	size_t n = 0;

	for (size_t i = 0; i < pages; i += stride, n++)
		p[i * PAGE]++;
	return (double)(now_ns() - t0) / n;
}

static int uffd_setup(void *p, size_t bytes)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = bytes },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0)
		die("userfaultfd");
	if (ioctl(fd, UFFDIO_API, &api))
		die("UFFDIO_API (async write-protect needs Linux 6.7)");
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
	return fd;
}

/* Re-protect every written page: the get-and-clear of a collection. */
static long arm(int pagemap, void *p, size_t bytes, struct page_region *vec, size_t vec_len)
{
	uint64_t start = (uintptr_t)p, end = start + bytes;
	long regions = 0;

	while (start < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = PM_SCAN_WP_MATCHING,
			.start = start,
			.end = end,
			.vec = (uintptr_t)vec,
			.vec_len = vec_len,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(pagemap, PAGEMAP_SCAN, &arg);

		if (n < 0)
			die("PAGEMAP_SCAN");
		regions += n;
		start = arg.walk_end;
	}
	return regions;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-first-touch", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double touch[MAX_RUNS], wp[MAX_RUNS], sparse[MAX_RUNS], plain[MAX_RUNS], armed[MAX_RUNS];
	double random[MAX_RUNS];
	uint32_t *order;
	uint64_t seed = 0x2545F4914F6CDD1DULL;
	size_t size_mib = 64, bytes, pages, vec_len = 4096;
	int runs = 5, c, uffd, pagemap;
	bool json = false, first_touch = true;
	struct page_region *vec;
	unsigned char *p;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			size_mib = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			first_touch = false;
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"Usage: raw_fault [--size-mib N] [--runs R] [--no-first-touch] [-j]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (size_mib < 1 || size_mib > 4096 || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "raw_fault: --size-mib 1..4096, --runs 1..%d\n", MAX_RUNS);
		return 2;
	}
	bytes = size_mib << 20;
	pages = bytes / PAGE;
	vec = calloc(vec_len, sizeof(*vec));
	order = malloc(pages * sizeof(*order));
	if (!order)
		die("malloc");
	for (size_t i = 0; i < pages; i++)
		order[i] = (uint32_t)i;
	for (size_t i = pages - 1; i > 0; i--) {	/* Fisher-Yates, xorshift */
		size_t j;
		uint32_t t;

		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		j = seed % (i + 1);
		t = order[i], order[i] = order[j], order[j] = t;
	}
	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (!vec || pagemap < 0)
		die("/proc/self/pagemap");

	for (int r = 0; r < runs; r++) {
		if (!first_touch) {
			touch[r] = 0;
			continue;
		}
		p = map_pages(bytes);
		touch[r] = time_writes(p, pages, 1);
		munmap(p, bytes);
	}

	p = map_pages(bytes);
	madvise(p, bytes, MADV_POPULATE_WRITE);
	time_writes(p, pages, 1);	/* warm: no first-touch cost below */
	uffd = uffd_setup(p, bytes);
	arm(pagemap, p, bytes, vec, vec_len);
	for (int r = 0; r < runs; r++) {
		uint64_t t0;

		wp[r] = time_writes(p, pages, 1);
		plain[r] = time_writes(p, pages, 1);
		/* every page is written now: a full re-protect */
		t0 = now_ns();
		arm(pagemap, p, bytes, vec, vec_len);
		armed[r] = (double)(now_ns() - t0) / pages;
		sparse[r] = time_writes(p, pages, SPARSE_STRIDE);
		arm(pagemap, p, bytes, vec, vec_len);
		random[r] = time_writes_in_order(p, order, pages);
		arm(pagemap, p, bytes, vec, vec_len);
	}
	close(uffd);
	close(pagemap);

	if (json) {
		printf("{\"page_size\": %lu, \"pages\": %zu, \"runs\": %d, "
		       "\"first_touch_ns\": %.1f, \"wp_fault_ns\": %.1f, \"wp_fault_sparse_ns\": %.1f, "
		       "\"wp_fault_random_ns\": %.1f, \"write_plain_ns\": %.2f, "
		       "\"arm_ns_per_page\": %.2f}\n",
		       PAGE, pages, runs, median(touch, runs), median(wp, runs), median(sparse, runs),
		       median(random, runs), median(plain, runs), median(armed, runs));
	} else {
		printf("%zu pages, median of %d runs, ns per page:\n", pages, runs);
		printf("  first touch of fresh memory    %10.1f\n", median(touch, runs));
		printf("  first write after arming (WP)  %10.1f\n", median(wp, runs));
		printf("  same, every %dth page          %10.1f\n", SPARSE_STRIDE, median(sparse, runs));
		printf("  same, in random order          %10.1f\n", median(random, runs));
		printf("  write to an unprotected page   %10.2f\n", median(plain, runs));
		printf("  arming (PAGEMAP_SCAN WP)       %10.2f\n", median(armed, runs));
	}
	return 0;
}
