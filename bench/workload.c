// SPDX-License-Identifier: MIT
/*
 * workload: a target process that writes a chosen fraction of its memory
 * in a known pattern, for benchmarks and for `make demo`.
 *
 *   workload [--size-mib N] [--thp] [--dirty-pct P] [--pattern random|seq|hot]
 *            [--interval-ms M] [--threads T] [--warm] [--once] [--busy] [--seed S]
 *            [--shared] [--procs N]
 *
 * Every interval each writer picks its share of P% of the pages (random:
 * anywhere, distinct; seq: the next P% in address order; hot: a window of
 * P% that moves by 1/8 of its size per interval, so consecutive sets
 * overlap) and writes one byte to each, then sleeps the rest of the
 * interval.  With --busy it rewrites that interval's pages until the
 * interval ends instead of sleeping: writes per second is then a
 * throughput.  With --once it writes one set per SIGUSR1 and nothing else,
 * so a benchmark can create an exact dirty fraction between two dumps.
 * --shared maps the region MAP_SHARED (shared anonymous memory); --procs N
 * then forks N-1 children once it is warm, each with 1 MiB of private
 * memory of its own, that share it and sleep (a process tree sharing one
 * object, as a database's backends share its buffers).  The writes are the
 * parent's; the children end with it.
 *
 * Protocol on stdout, one line each, flushed:
 *   ready PID ADDR BYTES          when the region is mapped (and warm)
 *   wrote PAGES ns NS             after each --once set (NS: wall time of the writes)
 *   writes N ns T rounds R busy_ns B   on SIGUSR2 (T: CLOCK_MONOTONIC now)
 * SIGTERM or SIGINT ends it.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096UL
#define HUGE_ALIGN (2UL << 20)

enum pattern { PAT_RANDOM, PAT_SEQ, PAT_HOT };

static struct {
	uint64_t size_mib;
	bool thp, warm, once, busy, shared;
	unsigned procs;
	double dirty_pct;
	enum pattern pattern;
	unsigned interval_ms;
	unsigned threads;
	uint64_t seed;
} opt = {
	/* the demo's defaults: a few hundred MiB with a slowly moving hot set */
	.size_mib = 256, .dirty_pct = 2, .pattern = PAT_HOT, .interval_ms = 100, .threads = 1,
	.seed = 1, .procs = 1,
};

struct writer {
	pthread_t th;
	unsigned idx;
	volatile unsigned char *base;	/* its slice of the region */
	uint64_t npages, k;		/* pages in the slice, chosen per interval */
	uint64_t cursor;		/* seq: next page; hot: window start */
	uint64_t rng;
	uint64_t *chosen;
	uint64_t *bitmap;		/* random: Floyd's sampling */
	/* read by the main thread: relaxed atomics */
	uint64_t writes, rounds, busy_ns;
};

static struct writer *writers;
static unsigned char *region;
static uint64_t region_bytes;

/* --once: main bumps `generation`; each writer writes one set and reports */
static pthread_mutex_t once_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t once_go = PTHREAD_COND_INITIALIZER, once_done = PTHREAD_COND_INITIALIZER;
static uint64_t generation;
static unsigned finished;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)	/* xorshift64* */
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void die(const char *what)
{
	fprintf(stderr, "workload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"Usage: workload [--size-mib N] [--thp] [--dirty-pct P] [--pattern random|seq|hot]\n"
		"                [--interval-ms M] [--threads T] [--warm] [--once] [--busy] [--seed S]\n"
		"Defaults: --size-mib 256 --pattern hot --dirty-pct 2 --interval-ms 100 --threads 1\n"
		"--shared: MAP_SHARED; --procs N: N-1 children share it (a tree)\n"
		"stdout: 'ready PID ADDR BYTES'; --once: SIGUSR1 writes one set, prints\n"
		"'wrote PAGES ns NS'; SIGUSR2 prints 'writes N ns T rounds R busy_ns B'.\n");
	exit(code);
}

/* Exactly k distinct pages of the slice, for the pattern. */
static void choose(struct writer *w)
{
	uint64_t n = w->npages, k = w->k;

	switch (opt.pattern) {
	case PAT_RANDOM:
		/* Floyd: k distinct samples in O(k), bitmap cleared afterwards */
		for (uint64_t j = n - k, i = 0; j < n; j++, i++) {
			uint64_t t = rnd(&w->rng) % (j + 1);

			if (w->bitmap[t / 64] & (1ULL << (t % 64)))
				t = j;
			w->bitmap[t / 64] |= 1ULL << (t % 64);
			w->chosen[i] = t;
		}
		for (uint64_t i = 0; i < k; i++)
			w->bitmap[w->chosen[i] / 64] = 0;
		break;
	case PAT_SEQ:
		for (uint64_t i = 0; i < k; i++)
			w->chosen[i] = (w->cursor + i) % n;
		w->cursor = (w->cursor + k) % n;
		break;
	case PAT_HOT:
		for (uint64_t i = 0; i < k; i++)
			w->chosen[i] = (w->cursor + i) % n;
		w->cursor = (w->cursor + (k / 8 ? k / 8 : 1)) % n;
		break;
	}
}

static void write_set(struct writer *w)
{
	for (uint64_t i = 0; i < w->k; i++)
		w->base[w->chosen[i] * PAGE]++;
	__atomic_fetch_add(&w->writes, w->k, __ATOMIC_RELAXED);
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ULL), (long)(t % 1000000000ULL) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void run_once_mode(struct writer *w)
{
	uint64_t seen = 0;

	for (;;) {
		uint64_t t0;

		pthread_mutex_lock(&once_lock);
		while (generation == seen)
			pthread_cond_wait(&once_go, &once_lock);
		seen = generation;
		pthread_mutex_unlock(&once_lock);
		t0 = now_ns();
		choose(w);
		write_set(w);
		__atomic_fetch_add(&w->busy_ns, now_ns() - t0, __ATOMIC_RELAXED);
		__atomic_fetch_add(&w->rounds, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&once_lock);
		finished++;
		pthread_cond_signal(&once_done);
		pthread_mutex_unlock(&once_lock);
	}
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t interval = (uint64_t)opt.interval_ms * 1000000ULL, next = now_ns();

	if (opt.once) {
		run_once_mode(w);
		return NULL;
	}
	for (;;) {
		uint64_t t0 = now_ns(), t;

		choose(w);
		write_set(w);
		next += interval;
		/* --busy: the same pages again and again until the interval ends */
		if (opt.busy)
			while (now_ns() < next)
				write_set(w);
		t = now_ns();
		__atomic_fetch_add(&w->busy_ns, t - t0, __ATOMIC_RELAXED);
		__atomic_fetch_add(&w->rounds, 1, __ATOMIC_RELAXED);
		if (next < t)
			next = t;	/* overran: do not try to catch up */
		else if (interval)
			sleep_until(next);
	}
	return NULL;
}

static void map_region(void)
{
	uint64_t bytes = opt.size_mib << 20;
	size_t len = bytes + HUGE_ALIGN;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				(opt.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		die("mmap");
	/* 2 MiB aligned so that --thp can back all of it; trim the slack */
	a = ((uintptr_t)p + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + len > a + bytes)
		munmap((void *)(a + bytes), (uintptr_t)p + len - (a + bytes));
	region = (unsigned char *)a;
	region_bytes = bytes;
	/* without --thp, keep 4 KiB pages whatever the system default is */
	if (madvise(region, bytes, opt.thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise");
}

/* First touch is slow (host faults): populate, then write every page once. */
static void *warm_slice(void *arg)
{
	struct writer *w = arg;

	madvise((void *)w->base, w->npages * PAGE, MADV_POPULATE_WRITE);
	for (uint64_t i = 0; i < w->npages; i++)
		w->base[i * PAGE] = 1;
	return NULL;
}

static void setup_writers(void)
{
	uint64_t pages = region_bytes / PAGE, first = 0;

	writers = calloc(opt.threads, sizeof(*writers));
	if (!writers)
		die("calloc");
	for (unsigned i = 0; i < opt.threads; i++) {
		struct writer *w = &writers[i];
		uint64_t n = pages / opt.threads + (i < pages % opt.threads);
		uint64_t k = (uint64_t)(n * opt.dirty_pct / 100.0 + 0.5);

		w->idx = i;
		w->base = region + first * PAGE;
		w->npages = n;
		w->k = k < 1 ? 1 : k > n ? n : k;
		w->rng = opt.seed * 0x9E3779B97F4A7C15ULL + i + 1;
		w->chosen = malloc(w->k * sizeof(*w->chosen));
		w->bitmap = calloc((n + 63) / 64, sizeof(*w->bitmap));
		if (!w->chosen || !w->bitmap)
			die("malloc");
		first += n;
	}
}

static void warm_all(void)
{
	/* one helper per writer slice, at least two: warming is the slow part */
	unsigned n = opt.threads;

	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&writers[i].th, NULL, warm_slice, &writers[i]))
			die("pthread_create");
	for (unsigned i = 0; i < n; i++)
		pthread_join(writers[i].th, NULL);
}

static void totals(uint64_t *writes, uint64_t *rounds, uint64_t *busy)
{
	*writes = *rounds = *busy = 0;
	for (unsigned i = 0; i < opt.threads; i++) {
		*writes += __atomic_load_n(&writers[i].writes, __ATOMIC_RELAXED);
		*rounds += __atomic_load_n(&writers[i].rounds, __ATOMIC_RELAXED);
		*busy += __atomic_load_n(&writers[i].busy_ns, __ATOMIC_RELAXED);
	}
}

static void write_once(void)
{
	uint64_t t0 = now_ns(), pages = 0;

	pthread_mutex_lock(&once_lock);
	finished = 0;
	generation++;
	pthread_cond_broadcast(&once_go);
	while (finished < opt.threads)
		pthread_cond_wait(&once_done, &once_lock);
	pthread_mutex_unlock(&once_lock);
	for (unsigned i = 0; i < opt.threads; i++)
		pages += writers[i].k;
	printf("wrote %llu ns %llu\n", (unsigned long long)pages,
	       (unsigned long long)(now_ns() - t0));
	fflush(stdout);
}

static void parse(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "thp", no_argument, NULL, 'H' },
		{ "dirty-pct", required_argument, NULL, 'p' },
		{ "pattern", required_argument, NULL, 'P' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "threads", required_argument, NULL, 't' },
		{ "warm", no_argument, NULL, 'w' },
		{ "once", no_argument, NULL, 'o' },
		{ "busy", no_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 'S' },
		{ "shared", no_argument, NULL, 'A' },
		{ "procs", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		errno = 0;
		switch (c) {
		case 's':
			opt.size_mib = strtoull(optarg, &end, 10);
			if (*end || errno || opt.size_mib < 1 || opt.size_mib > 65536)
				usage(2);
			break;
		case 'H':
			opt.thp = true;
			break;
		case 'p':
			opt.dirty_pct = strtod(optarg, &end);
			if (*end || !(opt.dirty_pct > 0 && opt.dirty_pct <= 100))
				usage(2);
			break;
		case 'P':
			if (!strcmp(optarg, "random"))
				opt.pattern = PAT_RANDOM;
			else if (!strcmp(optarg, "seq"))
				opt.pattern = PAT_SEQ;
			else if (!strcmp(optarg, "hot"))
				opt.pattern = PAT_HOT;
			else
				usage(2);
			break;
		case 'i':
			opt.interval_ms = (unsigned)strtoul(optarg, &end, 10);
			if (*end || errno || opt.interval_ms > 3600000)
				usage(2);
			break;
		case 't':
			opt.threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || errno || opt.threads < 1 || opt.threads > 256)
				usage(2);
			break;
		case 'w':
			opt.warm = true;
			break;
		case 'o':
			opt.once = true;
			break;
		case 'b':
			opt.busy = true;
			break;
		case 'S':
			opt.seed = strtoull(optarg, &end, 10);
			if (*end || errno)
				usage(2);
			break;
		case 'A':
			opt.shared = true;
			break;
		case 'N':
			opt.procs = (unsigned)strtoul(optarg, &end, 10);
			if (*end || errno || !opt.procs || opt.procs > 1000)
				usage(2);
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (opt.busy && (opt.once || !opt.interval_ms)) {
		fprintf(stderr, "workload: --busy needs periodic intervals (no --once, interval > 0)\n");
		exit(2);
	}
}

/* A process of the tree: its own memory, the shared region, and nothing to do. */
static void start_child(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		die("fork");
	if (pid > 0)
		return;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	{
		size_t len = 1 << 20;
		unsigned char *own = mmap(NULL, len, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (own != MAP_FAILED)
			memset(own, 0x5a, len);
	}
	for (;;)
		pause();	/* every signal is blocked: it sleeps until the parent goes */
}

int main(int argc, char **argv)
{
	sigset_t set;

	parse(argc, argv);
	/* every thread inherits the mask: only sigwaitinfo() below sees these */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	map_region();
	setup_writers();
	if (opt.warm)
		warm_all();
	for (unsigned i = 1; i < opt.procs; i++)
		start_child();
	for (unsigned i = 0; i < opt.threads; i++)
		if (pthread_create(&writers[i].th, NULL, writer_main, &writers[i]))
			die("pthread_create");
	printf("ready %d %#lx %llu\n", (int)getpid(), (unsigned long)(uintptr_t)region,
	       (unsigned long long)region_bytes);
	fflush(stdout);

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		uint64_t w, r, b;

		if (sig < 0)
			continue;	/* EINTR: a tracer stopped and resumed us */
		switch (sig) {
		case SIGUSR1:
			if (opt.once)
				write_once();
			break;
		case SIGUSR2:
			totals(&w, &r, &b);
			printf("writes %llu ns %llu rounds %llu busy_ns %llu\n",
			       (unsigned long long)w, (unsigned long long)now_ns(),
			       (unsigned long long)r, (unsigned long long)b);
			fflush(stdout);
			break;
		default:
			return 0;
		}
	}
}
