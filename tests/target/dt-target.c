/*
 * dt-target: a scriptable test target for dirtytrack integration tests.
 *
 * Reads one command per line on stdin, executes it and writes exactly one
 * reply line on stdout ("ok ..." or "err <message>").  The `block` command
 * additionally writes a second line ("done ...") once the blocking call
 * returns.  See tests/integration/target.py for the driver.
 *
 * The program is careful not to touch memory the tests measure unless told
 * to: all of its own buffers are static, stdio is not used (so nothing is
 * malloc'ed behind our back), and mapped regions are never touched by
 * `map`/`heap`/`stack`.
 *
 * Build: gcc -std=gnu11 -O1 -g -Wall -Wextra -Werror -pthread dt-target.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/userfaultfd.h>
#include <linux/io_uring.h>
#include <sys/uio.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE            4096UL
#define MAX_REGIONS     64
#define NAME_MAX_LEN    31
#define LINE_MAX_LEN    4096
#define MAX_ARGS        16
#define STACK_PAGES     256
#define MAX_THREADS     256
#define THREAD_STACK    (256 * 1024)
#define DEFAULT_BYTE    0xA5
#define WRITE_OFFSET    8
#define THP_PAGES       512UL

enum kind {
	K_ANON, K_THP, K_SHARED, K_MEMFD, K_FILEPRIV, K_FILESHARED,
	K_FILESHARED_RO, K_NONE, K_HEAP, K_STACK, K_HUGESHARED, K_SYSV,
};

static const char *const kind_names[] = {
	[K_ANON] = "anon",
	[K_THP] = "thp",
	[K_SHARED] = "shared",
	[K_MEMFD] = "memfd",
	[K_FILEPRIV] = "filepriv",
	[K_FILESHARED] = "fileshared",
	[K_FILESHARED_RO] = "fileshared-ro",
	[K_NONE] = "none",
	[K_HEAP] = "heap",
	[K_STACK] = "stack",
	[K_HUGESHARED] = "hugeshared",	/* MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB */
	[K_SYSV] = "sysv",		/* shmget + shmat, removed once detached */
};

struct region {
	int used;
	int kind;
	char name[NAME_MAX_LEN + 1];
	char *addr;
	size_t pages;
	int fd;              /* memfd / file kinds: backing fd, else -1 */
	size_t backed;       /* pages backed by the object (SIGBUS beyond) */
};

static struct region regions[MAX_REGIONS];

/* The reserved stack area (page-aligned interior of a large local array). */
static char *stack_area;
static size_t stack_area_pages;
static volatile char *stack_array_escape;

static char **saved_argv;

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

static char out_buf[LINE_MAX_LEN + 256];

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* stdout is gone: nobody to talk to any more. */
			_exit(3);
		}
		buf += n;
		len -= (size_t)n;
	}
}

__attribute__((format(printf, 1, 2)))
static void reply(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out_buf, sizeof(out_buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(out_buf) - 2)
		n = (int)sizeof(out_buf) - 2;
	/* Replies are single lines: neutralise any embedded newline. */
	for (int i = 0; i < n; i++)
		if (out_buf[i] == '\n' || out_buf[i] == '\r')
			out_buf[i] = ' ';
	out_buf[n++] = '\n';
	write_all(1, out_buf, (size_t)n);
}

/* Error reply; always returns -1 so handlers can `return fail(...)`. */
__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	static char msg[LINE_MAX_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply("err %s", msg);
	return -1;
}

static int fail_errno(const char *what)
{
	int e = errno;
	return fail("%s: %s (errno %d)", what, strerror(e), e);
}

/* ------------------------------------------------------------------------ */
/* Parsing helpers                                                           */

/* Decimal, or hex with a 0x/0X prefix.  Returns 0 on success. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	int base = 10;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (*s == '\0')
			return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_int(const char *s, long *out)
{
	char *end;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_byte(const char *s, unsigned char *out)
{
	uint64_t v;

	if (parse_u64(s, &v) != 0 || v > 255)
		return -1;
	*out = (unsigned char)v;
	return 0;
}

/* Page counts: 1 .. 2^35 pages (128 TiB) keeps every product in range. */
static int parse_count(const char *s, size_t *out, int allow_zero)
{
	uint64_t v;

	if (parse_u64(s, &v) != 0 || v > (1ULL << 35) || (!allow_zero && v == 0))
		return -1;
	*out = (size_t)v;
	return 0;
}

static struct region *find_region(const char *name)
{
	for (int i = 0; i < MAX_REGIONS; i++)
		if (regions[i].used && strcmp(regions[i].name, name) == 0)
			return &regions[i];
	return NULL;
}

static struct region *lookup(const char *name)
{
	struct region *r = find_region(name);
	if (r == NULL)
		fail("no such region: %s", name);
	return r;
}

static struct region *new_region(const char *name)
{
	if (strlen(name) > NAME_MAX_LEN) {
		fail("region name too long (max %d)", NAME_MAX_LEN);
		return NULL;
	}
	if (find_region(name) != NULL) {
		fail("region exists: %s", name);
		return NULL;
	}
	for (int i = 0; i < MAX_REGIONS; i++) {
		if (!regions[i].used)
			return &regions[i];
	}
	fail("region table full (%d)", MAX_REGIONS);
	return NULL;
}

static void set_region(struct region *r, const char *name, int kind,
		       void *addr, size_t pages, int fd)
{
	r->used = 1;
	r->fd = fd;
	r->backed = SIZE_MAX;
	r->kind = kind;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->addr = addr;
	r->pages = pages;
}

/*
 * Check that pages [p, p+n) lie inside the region and are currently mapped
 * (msync(MS_ASYNC) fails with ENOMEM on holes; it touches no memory).
 */
static int check_range(struct region *r, size_t p, size_t n)
{
	if (p > r->pages || n > r->pages - p)
		return fail("page range %zu+%zu outside region %s (%zu pages)",
			    p, n, r->name, r->pages);
	if (n > 0 && p + n > r->backed)
		return fail("page range %zu+%zu of %s is beyond the end of its "
			    "backing object (%zu pages)", p, n, r->name, r->backed);
	if (n > 0 && msync(r->addr + p * PAGE, n * PAGE, MS_ASYNC) != 0) {
		if (errno == ENOMEM)
			return fail("page range %zu+%zu of %s is not mapped",
				    p, n, r->name);
		return fail_errno("msync");
	}
	return 0;
}

/* Parse "NAME P N" style arguments (n_idx < 0: N is fixed to 1). */
static struct region *region_range(char **av, int ac, int name_idx, int p_idx,
				   int n_idx, size_t *p, size_t *n, int n_default)
{
	struct region *r;

	if (ac <= name_idx || ac <= p_idx) {
		fail("missing arguments");
		return NULL;
	}
	r = lookup(av[name_idx]);
	if (r == NULL)
		return NULL;
	if (parse_count(av[p_idx], p, 1) != 0) {
		fail("bad page index: %s", av[p_idx]);
		return NULL;
	}
	if (n_idx >= 0 && ac > n_idx) {
		if (parse_count(av[n_idx], n, 1) != 0) {
			fail("bad page count: %s", av[n_idx]);
			return NULL;
		}
	} else if (n_default) {
		*n = 1;
	} else {
		fail("missing page count");
		return NULL;
	}
	if (check_range(r, *p, *n) != 0)
		return NULL;
	return r;
}

/* ------------------------------------------------------------------------ */
/* Region creation                                                           */

static int open_backing_file(const char *path, int ro, size_t pages)
{
	int fd = open(path, ro ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (!ro) {
		struct stat st;
		if (fstat(fd, &st) != 0)
			goto err;
		if ((uint64_t)st.st_size < pages * PAGE &&
		    ftruncate(fd, (off_t)(pages * PAGE)) != 0)
			goto err;
	}
	return fd;
err:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int cmd_map(char **av, int ac)
{
	const char *name, *kname, *path;
	struct region *r;
	size_t pages, len;
	int kind = -1, fd = -1;
	void *addr;

	if (ac < 4)
		return fail("usage: map NAME KIND N [PATH]");
	name = av[1];
	kname = av[2];
	path = ac > 4 ? av[4] : NULL;
	for (int k = 0; k <= K_SYSV; k++)
		if (k != K_HEAP && k != K_STACK && strcmp(kname, kind_names[k]) == 0)
			kind = k;
	if (kind < 0)
		return fail("unknown kind: %s", kname);
	if (parse_count(av[3], &pages, 0) != 0)
		return fail("bad page count: %s", av[3]);
	len = pages * PAGE;
	if ((kind == K_FILEPRIV || kind == K_FILESHARED || kind == K_FILESHARED_RO) &&
	    path == NULL)
		return fail("kind %s needs a PATH", kname);
	if (kind == K_THP && pages % THP_PAGES != 0)
		return fail("thp page count must be a multiple of %lu", THP_PAGES);
	r = new_region(name);
	if (r == NULL)
		return -1;

	switch (kind) {
	case K_ANON:
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	case K_NONE:
		addr = mmap(NULL, len, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	case K_SHARED:
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		break;
	case K_SYSV: {
		int id = shmget(IPC_PRIVATE, len, IPC_CREAT | 0600);

		if (id < 0)
			return fail_errno("shmget");
		addr = shmat(id, NULL, 0);
		if (addr == (void *)-1)
			addr = MAP_FAILED;
		shmctl(id, IPC_RMID, NULL);	/* gone with the last detach */
		break;
	}
	case K_HUGESHARED:
		if (pages % THP_PAGES != 0)
			return fail("hugeshared page count must be a multiple of %lu", THP_PAGES);
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		break;
	case K_THP: {
		size_t align = THP_PAGES * PAGE;
		char *raw = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (raw == MAP_FAILED) {
			addr = MAP_FAILED;
			break;
		}
		uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
		size_t head = start - (uintptr_t)raw;
		size_t tail = align - head;
		if (head)
			munmap(raw, head);
		if (tail)
			munmap((char *)start + len, tail);
		addr = (void *)start;
		if (madvise(addr, len, MADV_HUGEPAGE) != 0) {
			int e = errno;
			munmap(addr, len);
			errno = e;
			return fail_errno("madvise(MADV_HUGEPAGE)");
		}
		break;
	}
	case K_MEMFD: {
		char mname[NAME_MAX_LEN + 8];
		snprintf(mname, sizeof(mname), "dt-%s", name);
		fd = memfd_create(mname, MFD_CLOEXEC);
		if (fd < 0)
			return fail_errno("memfd_create");
		if (ftruncate(fd, (off_t)len) != 0) {
			int e = errno;
			close(fd);
			errno = e;
			return fail_errno("ftruncate");
		}
		addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		break;
	}
	case K_FILEPRIV:
	case K_FILESHARED:
	case K_FILESHARED_RO:
		fd = open_backing_file(path, kind == K_FILESHARED_RO, pages);
		if (fd < 0)
			return fail_errno(path);
		if (kind == K_FILESHARED_RO)
			addr = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		else
			addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
				    kind == K_FILEPRIV ? MAP_PRIVATE : MAP_SHARED,
				    fd, 0);
		break;
	default:
		return fail("internal: bad kind");
	}
	if (addr == MAP_FAILED) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return fail_errno("mmap");
	}
	/*
	 * The fd is kept (close-on-exec) so that `remap` can grow the file
	 * along with the mapping; it is closed by `unmap NAME`.
	 */
	set_region(r, name, kind, addr, pages, fd);
	if (kind == K_SHARED || kind == K_HUGESHARED || kind == K_SYSV)
		r->backed = pages;      /* the shmem object cannot grow */
	if (kind == K_FILESHARED_RO) {
		struct stat st;         /* read-only file cannot grow either */
		if (fstat(fd, &st) == 0)
			r->backed = ((size_t)st.st_size + PAGE - 1) / PAGE;
	}
	reply("ok %p", addr);
	return 0;
}

static int cmd_heap(char **av, int ac)
{
	struct region *r;
	size_t pages;

	if (ac != 3)
		return fail("usage: heap NAME N");
	if (parse_count(av[2], &pages, 0) != 0)
		return fail("bad page count: %s", av[2]);
	if (pages > (1UL << 20))
		return fail("heap region too large");
	r = new_region(av[1]);
	if (r == NULL)
		return -1;
	void *old = sbrk((intptr_t)(pages * PAGE + PAGE));
	if (old == (void *)-1)
		return fail_errno("sbrk");
	uintptr_t start = ((uintptr_t)old + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
	set_region(r, av[1], K_HEAP, (void *)start, pages, -1);
	reply("ok %p", (void *)start);
	return 0;
}

static int cmd_stack(char **av, int ac)
{
	struct region *r;
	size_t pages;

	if (ac != 3)
		return fail("usage: stack NAME N");
	if (parse_count(av[2], &pages, 0) != 0)
		return fail("bad page count: %s", av[2]);
	if (pages > stack_area_pages)
		return fail("stack area has only %zu pages", stack_area_pages);
	r = new_region(av[1]);
	if (r == NULL)
		return -1;
	set_region(r, av[1], K_STACK, stack_area, pages, -1);
	reply("ok %p", (void *)stack_area);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Memory access                                                             */

static int cmd_write(char **av, int ac)
{
	size_t p, n;
	unsigned char b = DEFAULT_BYTE;
	struct region *r;

	if (ac < 3 || ac > 5)
		return fail("usage: write NAME P [N] [BYTE]");
	if (ac == 5 && parse_byte(av[4], &b) != 0)
		return fail("bad byte: %s", av[4]);
	r = region_range(av, ac, 1, 2, 3, &p, &n, 1);
	if (r == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		*(volatile unsigned char *)(r->addr + (p + i) * PAGE + WRITE_OFFSET) = b;
	reply("ok");
	return 0;
}

static int cmd_fill(char **av, int ac)
{
	size_t p, n;
	unsigned char b;
	struct region *r;

	if (ac != 5)
		return fail("usage: fill NAME P N BYTE");
	if (parse_byte(av[4], &b) != 0)
		return fail("bad byte: %s", av[4]);
	r = region_range(av, ac, 1, 2, 3, &p, &n, 0);
	if (r == NULL)
		return -1;
	memset(r->addr + p * PAGE, b, n * PAGE);
	reply("ok");
	return 0;
}

static int cmd_read(char **av, int ac)
{
	size_t p, n;
	struct region *r;
	uint64_t sum = 0;

	if (ac < 3 || ac > 4)
		return fail("usage: read NAME P [N]");
	r = region_range(av, ac, 1, 2, 3, &p, &n, 1);
	if (r == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		sum += *(volatile unsigned char *)(r->addr + (p + i) * PAGE + WRITE_OFFSET);
	reply("ok %llu", (unsigned long long)sum);
	return 0;
}

static int cmd_sysread(char **av, int ac)
{
	size_t p, n, done = 0, len;
	struct region *r;
	int fd;

	if (ac != 4)
		return fail("usage: sysread NAME P N");
	r = region_range(av, ac, 1, 2, 3, &p, &n, 0);
	if (r == NULL)
		return -1;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno("open /dev/urandom");
	len = n * PAGE;
	while (done < len) {
		ssize_t got = read(fd, r->addr + p * PAGE + done, len - done);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return fail("read /dev/urandom after %zu bytes: %s (errno %d)",
				    done, strerror(e), e);
		}
		if (got == 0)
			break;
		done += (size_t)got;
	}
	close(fd);
	reply("ok %zu", done);
	return 0;
}

static int cmd_checksum(char **av, int ac)
{
	struct region *r;
	uint64_t h = 0xcbf29ce484222325ULL;

	if (ac != 2)
		return fail("usage: checksum NAME");
	r = lookup(av[1]);
	if (r == NULL || check_range(r, 0, r->pages) != 0)
		return -1;
	const volatile unsigned char *b = (const volatile unsigned char *)r->addr;
	size_t len = r->pages * PAGE;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	reply("ok %016llx", (unsigned long long)h);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Mapping changes                                                           */

static int cmd_unmap(char **av, int ac)
{
	struct region *r;
	size_t p, n;

	if (ac != 2 && ac != 4)
		return fail("usage: unmap NAME [P N]");
	r = lookup(av[1]);
	if (r == NULL)
		return -1;
	if (ac == 2) {
		/* The stack area is never unmapped: just forget the region. */
		if (r->kind != K_STACK && munmap(r->addr, r->pages * PAGE) != 0)
			return fail_errno("munmap");
		if (r->fd >= 0)
			close(r->fd);
		memset(r, 0, sizeof(*r));
		reply("ok");
		return 0;
	}
	if (r->kind == K_STACK)
		return fail("cannot unmap part of a stack region");
	if (parse_count(av[2], &p, 1) != 0 || parse_count(av[3], &n, 0) != 0)
		return fail("bad page range");
	if (p > r->pages || n > r->pages - p)
		return fail("page range outside region");
	if (munmap(r->addr + p * PAGE, n * PAGE) != 0)
		return fail_errno("munmap");
	reply("ok");
	return 0;
}

static int cmd_remap(char **av, int ac)
{
	struct region *r;
	size_t pages;
	void *addr;

	if (ac != 3 && ac != 4)
		return fail("usage: remap NAME N [move]");
	r = lookup(av[1]);
	if (r == NULL)
		return -1;
	if (r->kind == K_STACK)
		return fail("cannot remap a stack region");
	if (parse_count(av[2], &pages, 0) != 0)
		return fail("bad page count: %s", av[2]);
	if (ac == 4 && strcmp(av[3], "move") != 0)
		return fail("expected 'move', got %s", av[3]);
	if (pages > r->pages && (r->kind == K_MEMFD || r->kind == K_FILEPRIV ||
				 r->kind == K_FILESHARED)) {
		/* Grow the backing file too, or the new pages would SIGBUS. */
		struct stat st;
		if (r->fd < 0)
			return fail("backing fd of %s was closed; cannot grow", r->name);
		if (fstat(r->fd, &st) != 0)
			return fail_errno("fstat");
		if ((uint64_t)st.st_size < pages * PAGE &&
		    ftruncate(r->fd, (off_t)(pages * PAGE)) != 0)
			return fail_errno("ftruncate");
	}
	if (ac == 4) {
		void *dst = mmap(NULL, pages * PAGE, PROT_NONE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (dst == MAP_FAILED)
			return fail_errno("mmap (reserve)");
		addr = mremap(r->addr, r->pages * PAGE, pages * PAGE,
			      MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (addr == MAP_FAILED) {
			int e = errno;
			munmap(dst, pages * PAGE);
			errno = e;
			return fail_errno("mremap");
		}
	} else {
		addr = mremap(r->addr, r->pages * PAGE, pages * PAGE,
			      MREMAP_MAYMOVE);
		if (addr == MAP_FAILED)
			return fail_errno("mremap");
	}
	r->addr = addr;
	r->pages = pages;
	reply("ok %p", addr);
	return 0;
}

static int cmd_mprotect(char **av, int ac)
{
	struct region *r;
	size_t p, n;
	int prot = 0;

	if (ac != 5)
		return fail("usage: mprotect NAME P N PROT");
	if (strcmp(av[4], "none") != 0) {
		for (const char *c = av[4]; *c; c++) {
			switch (*c) {
			case 'r': prot |= PROT_READ; break;
			case 'w': prot |= PROT_WRITE; break;
			case 'x': prot |= PROT_EXEC; break;
			case '-': break;
			default: return fail("bad prot: %s", av[4]);
			}
		}
	}
	r = region_range(av, ac, 1, 2, 3, &p, &n, 0);
	if (r == NULL)
		return -1;
	if (mprotect(r->addr + p * PAGE, n * PAGE, prot) != 0)
		return fail_errno("mprotect");
	reply("ok");
	return 0;
}

static int cmd_dontneed(char **av, int ac)
{
	struct region *r;
	size_t p, n;

	if (ac != 4)
		return fail("usage: dontneed NAME P N");
	r = region_range(av, ac, 1, 2, 3, &p, &n, 0);
	if (r == NULL)
		return -1;
	if (madvise(r->addr + p * PAGE, n * PAGE, MADV_DONTNEED) != 0)
		return fail_errno("madvise(MADV_DONTNEED)");
	reply("ok");
	return 0;
}

static int cmd_mapfixed(char **av, int ac)
{
	struct region *r;
	size_t p, n;

	if (ac != 4)
		return fail("usage: mapfixed NAME P N");
	r = lookup(av[1]);
	if (r == NULL)
		return -1;
	if (parse_count(av[2], &p, 1) != 0 || parse_count(av[3], &n, 0) != 0)
		return fail("bad page range");
	if (p > r->pages || n > r->pages - p)
		return fail("page range outside region");
	void *a = mmap(r->addr + p * PAGE, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (a == MAP_FAILED)
		return fail_errno("mmap(MAP_FIXED)");
	reply("ok");
	return 0;
}

static int cmd_addr(char **av, int ac)
{
	struct region *r;

	if (ac != 2)
		return fail("usage: addr NAME");
	r = lookup(av[1]);
	if (r == NULL)
		return -1;
	reply("ok %p %zu", (void *)r->addr, r->pages);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */

struct worker {
	pthread_t tid;
	char *base;          /* first page to write */
	size_t pages;
	unsigned char byte;
	int index;
	_Atomic unsigned long loops;
};

static struct worker workers[MAX_THREADS];
static pthread_barrier_t barrier;

static struct worker spinners[MAX_THREADS];
static int nspinners;
static atomic_int spin_stop;
static unsigned long spin_total_final;

static int start_thread(pthread_t *tid, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int rc;

	rc = pthread_attr_init(&attr);
	if (rc != 0)
		return rc;
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	rc = pthread_create(tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc;
}

static void *writer_main(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&barrier);
	for (size_t i = 0; i < w->pages; i++)
		*(volatile unsigned char *)(w->base + i * PAGE + WRITE_OFFSET) = w->byte;
	return NULL;
}

static int cmd_threads(char **av, int ac)
{
	long t;
	size_t p, n, start;
	unsigned char b = DEFAULT_BYTE;
	struct region *r;
	int started = 0, rc = 0;

	if (ac != 5 && ac != 6)
		return fail("usage: threads T NAME P N [BYTE]");
	if (parse_int(av[1], &t) != 0 || t < 1 || t > MAX_THREADS)
		return fail("bad thread count: %s (1..%d)", av[1], MAX_THREADS);
	if (ac == 6 && parse_byte(av[5], &b) != 0)
		return fail("bad byte: %s", av[5]);
	r = region_range(av, ac, 2, 3, 4, &p, &n, 0);
	if (r == NULL)
		return -1;
	if (pthread_barrier_init(&barrier, NULL, (unsigned)t) != 0)
		return fail("pthread_barrier_init failed");
	start = p;
	for (long i = 0; i < t; i++) {
		size_t share = n / (size_t)t + ((size_t)i < n % (size_t)t ? 1 : 0);
		workers[i].base = r->addr + start * PAGE;
		workers[i].pages = share;
		workers[i].byte = b;
		workers[i].index = (int)i;
		start += share;
	}
	for (long i = 0; i < t; i++) {
		rc = start_thread(&workers[i].tid, writer_main, &workers[i]);
		if (rc != 0)
			break;
		started++;
	}
	if (rc != 0) {
		/*
		 * The barrier can never be satisfied now.  Threads already
		 * started are stuck in it; that would hang `threads` forever,
		 * so give up loudly instead.
		 */
		reply("err pthread_create: %s (errno %d); aborting", strerror(rc), rc);
		_exit(4);
	}
	for (int i = 0; i < started; i++)
		pthread_join(workers[i].tid, NULL);
	pthread_barrier_destroy(&barrier);
	reply("ok");
	return 0;
}

static void *spinner_main(void *arg)
{
	struct worker *w = arg;
	unsigned char v = 0;

	while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
		v++;
		for (size_t i = 0; i < w->pages; i++)
			__atomic_store_n((unsigned char *)(w->base + i * PAGE + WRITE_OFFSET),
					 v, __ATOMIC_RELAXED);
		atomic_fetch_add_explicit(&w->loops, 1, memory_order_relaxed);
	}
	return NULL;
}

static unsigned long spin_total(void)
{
	unsigned long total = 0;

	for (int i = 0; i < nspinners; i++)
		total += atomic_load_explicit(&spinners[i].loops, memory_order_relaxed);
	return total;
}

static void stop_spinners(void)
{
	atomic_store(&spin_stop, 1);
	for (int i = 0; i < nspinners; i++)
		pthread_join(spinners[i].tid, NULL);
	spin_total_final = spin_total();
	nspinners = 0;
}

static int cmd_spin(char **av, int ac)
{
	long t;
	size_t p, n;
	struct region *r;

	if (ac != 5)
		return fail("usage: spin T NAME P N");
	if (nspinners > 0)
		return fail("already spinning (unspin first)");
	if (parse_int(av[1], &t) != 0 || t < 1 || t > MAX_THREADS)
		return fail("bad thread count: %s (1..%d)", av[1], MAX_THREADS);
	r = region_range(av, ac, 2, 3, 4, &p, &n, 0);
	if (r == NULL)
		return -1;
	atomic_store(&spin_stop, 0);
	spin_total_final = 0;
	for (long i = 0; i < t; i++) {
		spinners[i].base = r->addr + p * PAGE;
		spinners[i].pages = n;
		spinners[i].index = (int)i;
		atomic_store(&spinners[i].loops, 0);
		int rc = start_thread(&spinners[i].tid, spinner_main, &spinners[i]);
		if (rc != 0) {
			stop_spinners();
			return fail("pthread_create: %s (errno %d)", strerror(rc), rc);
		}
		nspinners++;
	}
	reply("ok");
	return 0;
}

static int cmd_unspin(char **av, int ac)
{
	(void)av;
	if (ac != 1)
		return fail("usage: unspin");
	if (nspinners == 0)
		return fail("not spinning");
	stop_spinners();
	reply("ok");
	return 0;
}

static int cmd_spincount(char **av, int ac)
{
	(void)av;
	if (ac != 1)
		return fail("usage: spincount");
	reply("ok %lu", nspinners > 0 ? spin_total() : spin_total_final);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Parked threads: blocked in functions of their own, for backtraces          */

/*
 * A frame-pointer-based function (its unwind information says "the caller's
 * frame is at rbp") that then points rbp at whatever its argument says and
 * waits in pause(): the unwinder must end the trace cleanly.  The loop label
 * is global so that a fake return address can point back into it.
 */
__asm__(
	".text\n"
	".globl dt_park_badfp\n"
	".type dt_park_badfp, @function\n"
	"dt_park_badfp:\n"
	".cfi_startproc\n"
	"	push %rbp\n"
	".cfi_def_cfa_offset 16\n"
	".cfi_offset %rbp, -16\n"
	"	mov %rsp, %rbp\n"
	".cfi_def_cfa_register %rbp\n"
	"	mov %rdi, %rbp\n"
	"	nop\n"		/* a return address here is looked up at the nop: rbp-based */
	".globl dt_park_badfp_loop\n"
	"dt_park_badfp_loop:\n"
	"	mov $34, %eax\n"	/* pause */
	"	syscall\n"
	"	jmp dt_park_badfp_loop\n"
	".cfi_endproc\n"
	".size dt_park_badfp, .-dt_park_badfp\n");
void dt_park_badfp(void *fp);
extern char dt_park_badfp_loop[];

enum park_kind { PARK_READ, PARK_NANOSLEEP, PARK_FUTEX, PARK_SPIN, PARK_BADFP, PARK_LOOPFP,
		 PARK_JIT, PARK_DEEP, PARK_KINDS };
static const char *const park_names[PARK_KINDS] = {
	"read", "nanosleep", "futex", "spin", "badfp", "loopfp", "jit", "deep",
};

struct parked {
	pthread_t thread;
	int kind;
	long arg;
	_Atomic int tid;
};

static struct parked parked[MAX_THREADS];
static int nparked;
static int park_futex_word;
static volatile int park_spin_forever = 1;
static volatile unsigned long park_sink;
static _Atomic long park_read_n = -2;	/* -2: no read returned yet */
static int park_read_err;
static char park_read_data[64];

static __attribute__((noinline, noclone)) void dt_park_read(void)
{
	ssize_t n = read(3, park_read_data, sizeof(park_read_data) - 1);

	park_read_err = n < 0 ? errno : 0;
	atomic_store(&park_read_n, (long)n);
}

static __attribute__((noinline, noclone)) void dt_park_nanosleep(void)
{
	struct timespec ts = { 3600, 0 };

	for (;;)
		nanosleep(&ts, NULL);
}

static __attribute__((noinline, noclone)) void dt_park_futex(void)
{
	for (;;)
		syscall(SYS_futex, &park_futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static __attribute__((noinline, noclone)) void dt_park_spin(void)
{
	while (park_spin_forever)
		park_sink++;
}

static __attribute__((noinline, noclone)) void dt_park_loopfp(void)
{
	/* a saved-rbp slot pointing at itself, "returning" into the same loop */
	volatile uint64_t slot[2];

	slot[0] = (uint64_t)(uintptr_t)slot;
	slot[1] = (uint64_t)(uintptr_t)dt_park_badfp_loop;
	dt_park_badfp((void *)slot);
}

/* mov $34,%eax; syscall; jmp back: pause() forever, in anonymous memory */
static const unsigned char jit_code[] = { 0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7 };

static __attribute__((noinline, noclone)) void dt_park_jit(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	memcpy(p, jit_code, sizeof(jit_code));
	if (mprotect(p, PAGE, PROT_READ | PROT_EXEC) == 0)
		((void (*)(void))p)();
}

static __attribute__((noinline, noclone)) void dt_park_deep(long n)
{
	if (n > 0) {
		dt_park_deep(n - 1);
		park_sink++;	/* not a tail call: each level keeps its frame */
		return;
	}
	while (park_spin_forever)
		pause();
}

static void *park_main(void *arg)
{
	struct parked *p = arg;
	char name[16];

	snprintf(name, sizeof(name), "dt-%s", park_names[p->kind]);
	prctl(PR_SET_NAME, name);
	atomic_store(&p->tid, (int)syscall(SYS_gettid));
	switch (p->kind) {
	case PARK_READ: dt_park_read(); break;
	case PARK_NANOSLEEP: dt_park_nanosleep(); break;
	case PARK_FUTEX: dt_park_futex(); break;
	case PARK_SPIN: dt_park_spin(); break;
	case PARK_BADFP: dt_park_badfp((void *)0x4141414141414140UL); break;
	case PARK_LOOPFP: dt_park_loopfp(); break;
	case PARK_JIT: dt_park_jit(); break;
	case PARK_DEEP: dt_park_deep(p->arg); break;
	}
	for (;;)
		pause();
	return NULL;
}

/* park KIND [N [ARG]]: N threads parked in dt_park_KIND; replies their tids */
static int cmd_park(char **av, int ac)
{
	static char out[MAX_THREADS * 12];
	long n = 1, arg = 0;
	int kind = -1, first = nparked;
	size_t o = 0;

	if (ac < 2 || ac > 4)
		return fail("usage: park read|nanosleep|futex|spin|badfp|loopfp|jit|deep [N [ARG]]");
	for (int k = 0; k < PARK_KINDS; k++)
		if (!strcmp(av[1], park_names[k]))
			kind = k;
	if (kind < 0)
		return fail("unknown park kind: %s", av[1]);
	if (ac >= 3 && (parse_int(av[2], &n) != 0 || n < 1 || n > MAX_THREADS - nparked))
		return fail("bad thread count: %s", av[2]);
	if (ac == 4 && (parse_int(av[3], &arg) != 0 || arg < 0 || arg > 4096))
		return fail("bad argument: %s", av[3]);
	for (long i = 0; i < n; i++) {
		struct parked *p = &parked[nparked];
		int rc;

		p->kind = kind;
		p->arg = arg;
		atomic_store(&p->tid, 0);
		rc = start_thread(&p->thread, park_main, p);
		if (rc != 0)
			return fail("pthread_create: %s (errno %d)", strerror(rc), rc);
		nparked++;
	}
	for (int i = first; i < nparked; i++) {
		while (!atomic_load(&parked[i].tid))
			sched_yield();
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%d", o ? " " : "",
				      atomic_load(&parked[i].tid));
	}
	/* give each a moment to reach its blocking call */
	usleep(20000);
	reply("ok %s", out);
	return 0;
}

/* parkread: what the parked read() returned: "none", or "N ERRNO DATA" */
static int cmd_parkread(char **av, int ac)
{
	long n = atomic_load(&park_read_n);

	(void)av;
	if (ac != 1)
		return fail("usage: parkread");
	if (n == -2)
		reply("ok none");
	else if (n > 0)
		reply("ok %ld %d %.*s", n, park_read_err, (int)strcspn(park_read_data, "\n"),
		      park_read_data);
	else
		reply("ok %ld %d", n, park_read_err);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Blocking calls                                                            */

static int futex_word;

static long elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000L + (b->tv_nsec - a->tv_nsec) / 1000000L;
}

static int cmd_block(char **av, int ac)
{
	static char data[64];
	static char text[64 * 4 + 1];
	const char *kind;
	long ms = 0;
	int err;

	if (ac != 2)
		return fail("usage: block read|nanosleep:MS|futex:MS|accept");
	kind = av[1];

	if (strcmp(kind, "read") == 0) {
		reply("ok blocking");
		ssize_t n = read(3, data, sizeof(data));
		err = n < 0 ? errno : 0;
		size_t o = 0;
		for (ssize_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)data[i];
			if (c > ' ' && c < 0x7f && c != '\\')
				text[o++] = (char)c;
			else
				o += (size_t)snprintf(text + o, sizeof(text) - o, "\\x%02x", c);
		}
		text[o] = '\0';
		if (n > 0)
			reply("done read %zd %d %s", n, err, text);
		else
			reply("done read %zd %d", n, err);
		return 0;
	}

	if (strncmp(kind, "nanosleep:", 10) == 0 || strncmp(kind, "futex:", 6) == 0) {
		int is_futex = kind[0] == 'f';
		const char *arg = strchr(kind, ':') + 1;
		struct timespec ts, t0, t1;
		long rc;

		if (parse_int(arg, &ms) != 0 || ms < 0)
			return fail("bad milliseconds: %s", arg);
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		reply("ok blocking");
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (is_futex)
			rc = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0,
				     &ts, NULL, 0);
		else
			rc = nanosleep(&ts, NULL);
		err = rc < 0 ? errno : 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		reply("done %s %ld %d %ld", is_futex ? "futex" : "nanosleep",
		      rc, err, elapsed_ms(&t0, &t1));
		return 0;
	}

	if (strcmp(kind, "accept") == 0) {
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (ls < 0)
			return fail_errno("socket");
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = 0;
		if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    listen(ls, 4) != 0 ||
		    getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
			int e = errno;
			close(ls);
			errno = e;
			return fail_errno("bind/listen");
		}
		reply("ok blocking %u", (unsigned)ntohs(sa.sin_port));
		int fd = accept(ls, NULL, NULL);
		err = fd < 0 ? errno : 0;
		reply("done accept %d %d", fd, err);
		if (fd >= 0)
			close(fd);
		close(ls);
		return 0;
	}

	return fail("unknown block kind: %s", kind);
}

/* ------------------------------------------------------------------------ */
/* Signals, processes, fds                                                   */

static _Atomic unsigned long sig_counts[_NSIG];

static void count_signal(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (sig > 0 && sig < _NSIG)
		atomic_fetch_add_explicit(&sig_counts[sig], 1, memory_order_relaxed);
}

static int parse_signal(const char *s, int *sig)
{
	long v;

	if (parse_int(s, &v) != 0 || v < 1 || v >= _NSIG)
		return -1;
	*sig = (int)v;
	return 0;
}

static int cmd_signals(char **av, int ac)
{
	struct sigaction sa;
	int sig;

	if (ac != 2 && ac != 3)
		return fail("usage: signals SIG [restart]");
	if (parse_signal(av[1], &sig) != 0)
		return fail("bad signal: %s", av[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = count_signal;
	sa.sa_flags = SA_SIGINFO;
	if (ac == 3) {
		if (strcmp(av[2], "restart") != 0)
			return fail("expected 'restart', got %s", av[2]);
		sa.sa_flags |= SA_RESTART;
	}
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		return fail_errno("sigaction");
	reply("ok");
	return 0;
}

/* sigaction SIG: "ok HANDLER FLAGS MASK" as the kernel holds them. */
static int cmd_sigaction(char **av, int ac)
{
	struct sigaction sa;
	uint64_t mask = 0;
	int sig;

	if (ac != 2 || parse_signal(av[1], &sig) != 0)
		return fail("usage: sigaction SIG");
	if (sigaction(sig, NULL, &sa) != 0)
		return fail_errno("sigaction");
	for (int s = 1; s <= 64 && s < _NSIG; s++)
		if (sigismember(&sa.sa_mask, s) == 1)
			mask |= 1ULL << (s - 1);
	reply("ok %lx %x %016llx", (unsigned long)(uintptr_t)sa.sa_sigaction,
	      (unsigned)sa.sa_flags, (unsigned long long)mask);
	return 0;
}

/* altstack [set]: the alternate signal stack ("ok SP SIZE FLAGS"); set installs one. */
static int cmd_altstack(char **av, int ac)
{
	static char stack_mem[64 * 1024];
	stack_t ss;

	if (ac == 2 && !strcmp(av[1], "set")) {
		ss.ss_sp = stack_mem;
		ss.ss_size = sizeof(stack_mem);
		ss.ss_flags = 0;
		if (sigaltstack(&ss, NULL))
			return fail_errno("sigaltstack");
	} else if (ac != 1) {
		return fail("usage: altstack [set]");
	}
	if (sigaltstack(NULL, &ss))
		return fail_errno("sigaltstack");
	reply("ok %lx %zu %d", (unsigned long)(uintptr_t)ss.ss_sp, ss.ss_size, ss.ss_flags);
	return 0;
}

static int cmd_sigcount(char **av, int ac)
{
	int sig;

	if (ac != 2)
		return fail("usage: sigcount SIG");
	if (parse_signal(av[1], &sig) != 0)
		return fail("bad signal: %s", av[1]);
	reply("ok %lu", atomic_load(&sig_counts[sig]));
	return 0;
}

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];

static void remember_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] == 0) {
			children[i] = pid;
			return;
		}
	}
}

/* Kill and reap the fork/forkwrite children still alive (on exit). */
static void kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	}
}

/* Child side of fork/forkwrite: detach from the driver's pipes and wait. */
static __attribute__((noreturn)) void child_pause(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (fd > 1)
			close(fd);
	}
	for (;;)
		pause();
}

static int cmd_fork(char **av, int ac)
{
	pid_t parent = getpid(), pid;

	(void)av;
	if (ac != 1)
		return fail("usage: fork");
	pid = fork();
	if (pid < 0)
		return fail_errno("fork");
	if (pid == 0)
		child_pause(parent);
	remember_child(pid);
	reply("ok %d", (int)pid);
	return 0;
}

static int cmd_forkwrite(char **av, int ac)
{
	pid_t parent = getpid(), pid;
	struct region *r;
	size_t p, n;
	unsigned char b = DEFAULT_BYTE;
	int pfd[2];
	char c;

	if (ac != 3 && ac != 4)
		return fail("usage: forkwrite NAME P [BYTE]");
	if (ac == 4 && parse_byte(av[3], &b) != 0)
		return fail("bad byte: %s", av[3]);
	r = region_range(av, ac, 1, 2, -1, &p, &n, 1);
	if (r == NULL)
		return -1;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return fail_errno("pipe");
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		errno = e;
		return fail_errno("fork");
	}
	if (pid == 0) {
		close(pfd[0]);
		*(volatile unsigned char *)(r->addr + p * PAGE + WRITE_OFFSET) = b;
		c = 'w';
		if (write(pfd[1], &c, 1) != 1)
			_exit(5);
		close(pfd[1]);
		child_pause(parent);
	}
	close(pfd[1]);
	remember_child(pid);
	ssize_t got;
	do {
		got = read(pfd[0], &c, 1);
	} while (got < 0 && errno == EINTR);
	close(pfd[0]);
	if (got != 1)
		return fail("child %d died before writing", (int)pid);
	reply("ok %d", (int)pid);
	return 0;
}

static size_t pending_input(void);

/*
 * The application's own userfaultfd: async write-protect on one region,
 * as a program tracking its own writes would have it (kernel 6.7 values;
 * the build headers may be older).
 */
#define OWN_WP_ASYNC (1ULL << 15)
#define OWN_WP_UNPOPULATED (1ULL << 13)
#define OWN_PAGEMAP_SCAN _IOWR('f', 16, struct own_pm_scan_arg)
#define OWN_PAGE_IS_WRITTEN (1ULL << 1)

struct own_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

struct own_page_region {
	uint64_t start, end, categories;
};

static int own_uffd = -1;

static int cmd_ownuffd(char **av, int ac)
{
	struct uffdio_api api = { .api = UFFD_API, .features = OWN_WP_ASYNC | OWN_WP_UNPOPULATED };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	struct region *r;

	if (ac != 2)
		return fail("usage: ownuffd NAME");
	r = find_region(av[1]);
	if (r == NULL)
		return fail("no region %s", av[1]);
	if (own_uffd < 0) {
		own_uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1);
		if (own_uffd < 0)
			return fail_errno("userfaultfd");
		if (ioctl(own_uffd, UFFDIO_API, &api))
			return fail_errno("UFFDIO_API");
	}
	reg.range.start = (uint64_t)(uintptr_t)r->addr;
	reg.range.len = r->pages * PAGE;
	wp.range = reg.range;
	if (ioctl(own_uffd, UFFDIO_REGISTER, &reg))
		return fail_errno("UFFDIO_REGISTER");
	if (ioctl(own_uffd, UFFDIO_WRITEPROTECT, &wp))
		return fail_errno("UFFDIO_WRITEPROTECT");
	reply("ok %d", own_uffd);
	return 0;
}

/* ownwritten NAME: the pages of NAME written since ownuffd, as we see them. */
static int cmd_ownwritten(char **av, int ac)
{
	static struct own_page_region vec[256];
	static char list[LINE_MAX_LEN];
	struct own_pm_scan_arg a = { .size = sizeof(a) };
	struct region *r;
	size_t len = 0;
	int fd, n;

	if (ac != 2)
		return fail("usage: ownwritten NAME");
	r = find_region(av[1]);
	if (r == NULL)
		return fail("no region %s", av[1]);
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno("pagemap");
	a.start = (uint64_t)(uintptr_t)r->addr;
	a.end = a.start + r->pages * PAGE;
	a.vec = (uint64_t)(uintptr_t)vec;
	a.vec_len = 256;
	a.category_mask = a.return_mask = OWN_PAGE_IS_WRITTEN;
	n = ioctl(fd, OWN_PAGEMAP_SCAN, &a);
	close(fd);
	if (n < 0)
		return fail_errno("PAGEMAP_SCAN");
	list[0] = '\0';
	for (int i = 0; i < n; i++)
		for (uint64_t p = vec[i].start; p < vec[i].end && len + 16 < sizeof(list); p += PAGE)
			len += (size_t)snprintf(list + len, sizeof(list) - len, " %lu",
						(unsigned long)((p - a.start) / PAGE));
	reply("ok%s", list);
	return 0;
}

/*
 * io_uring with a registered (fixed) buffer, by raw system calls: the
 * kernel writes READ_FIXED data through the pinned pages, not through the
 * page tables, so no write-protect bit ever sees it.
 */
static struct {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
} ring = { .fd = -1 };

static int cmd_uring(char **av, int ac)
{
	struct io_uring_params p;
	struct region *r;
	struct iovec iov;
	char *sq, *cq;

	if (ac != 2 || (r = find_region(av[1])) == NULL)
		return fail("usage: uring NAME");
	if (ring.fd >= 0)
		return fail("uring: one ring at a time");
	memset(&p, 0, sizeof(p));
	ring.fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (ring.fd < 0)
		return fail_errno("io_uring_setup");
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_CQ_RING);
	ring.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || ring.sqes == MAP_FAILED)
		return fail_errno("mmap io_uring");
	ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
	ring.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	ring.sq_array = (unsigned *)(sq + p.sq_off.array);
	ring.cq_head = (unsigned *)(cq + p.cq_off.head);
	ring.cq_tail = (unsigned *)(cq + p.cq_off.tail);
	ring.cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	ring.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	iov.iov_base = r->addr;
	iov.iov_len = r->pages * PAGE;
	if (syscall(__NR_io_uring_register, ring.fd, IORING_REGISTER_BUFFERS, &iov, 1) < 0)
		return fail_errno("IORING_REGISTER_BUFFERS");
	reply("ok %d", ring.fd);
	return 0;
}

/* uringqueue: a NOP submission queued, not yet handed to the kernel (I/O "in flight"). */
static int cmd_uringqueue(char **av, int ac)
{
	unsigned tail, idx;

	(void)av;
	if (ac != 1 || ring.fd < 0)
		return fail("usage: uringqueue (after uring NAME)");
	tail = *ring.sq_tail;
	idx = tail & *ring.sq_mask;
	memset(&ring.sqes[idx], 0, sizeof(ring.sqes[idx]));
	ring.sqes[idx].opcode = IORING_OP_NOP;
	ring.sq_array[idx] = idx;
	__atomic_store_n(ring.sq_tail, tail + 1, __ATOMIC_RELEASE);
	reply("ok");
	return 0;
}

/* uringread NAME P N BYTE: READ_FIXED N pages of BYTE into page P of the fixed buffer. */
static int cmd_uringread(char **av, int ac)
{
	static char buf[64 * 4096];
	struct region *r;
	struct io_uring_sqe *sqe;
	unsigned tail, head, idx;
	size_t p, n;
	unsigned char b;
	int file, res;

	r = region_range(av, ac, 1, 2, 3, &p, &n, 1);
	if (r == NULL)
		return -1;
	if (ring.fd < 0 || parse_byte(av[4], &b) != 0 || n * PAGE > sizeof(buf))
		return fail("usage: uringread NAME P N BYTE (after uring NAME)");
	file = memfd_create("dt-uring", MFD_CLOEXEC);
	memset(buf, b, n * PAGE);
	if (file < 0 || write(file, buf, n * PAGE) != (ssize_t)(n * PAGE))
		return fail_errno("uringread source");
	tail = *ring.sq_tail;
	idx = tail & *ring.sq_mask;
	sqe = &ring.sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_READ_FIXED;
	sqe->fd = file;
	sqe->addr = (uint64_t)(uintptr_t)(r->addr + p * PAGE);
	sqe->len = (unsigned)(n * PAGE);
	sqe->off = 0;
	sqe->buf_index = 0;
	ring.sq_array[idx] = idx;
	__atomic_store_n(ring.sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		close(file);
		return fail_errno("io_uring_enter");
	}
	head = *ring.cq_head;
	if (head == __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE)) {
		close(file);
		return fail("uringread: no completion");
	}
	res = ring.cqes[head & *ring.cq_mask].res;
	__atomic_store_n(ring.cq_head, head + 1, __ATOMIC_RELEASE);
	close(file);
	reply("ok %d", res);
	return 0;
}

static size_t in_len;	/* the command reader's buffer (below) */

/*
 * forkserve IN OUT: fork a child that serves commands of its own, read
 * from fifo IN and answered on fifo OUT, with everything the parent has
 * (regions included).  The child says "ready PID" on OUT.
 */
static int cmd_forkserve(char **av, int ac)
{
	pid_t parent = getpid(), pid;

	if (ac != 3)
		return fail("usage: forkserve IN OUT");
	pid = fork();
	if (pid < 0)
		return fail_errno("fork");
	if (pid == 0) {
		int in, out;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		in = open(av[1], O_RDONLY | O_CLOEXEC);
		out = open(av[2], O_WRONLY | O_CLOEXEC);
		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0)
			_exit(4);
		close(in);
		close(out);
		in_len = 0;
		memset(children, 0, sizeof(children));
		reply("ready %d", (int)getpid());
		return 0;	/* back to the command loop, on the new fifos */
	}
	remember_child(pid);
	reply("ok %d", (int)pid);
	return 0;
}

/*
 * become UID GID: this process takes another identity for good (and stays
 * dumpable, so that its new owner may trace it).  Needs root.
 */
static int cmd_become(char **av, int ac)
{
	long uid, gid;

	if (ac != 3 || parse_int(av[1], &uid) != 0 || parse_int(av[2], &gid) != 0)
		return fail("usage: become UID GID");
	if (setgroups(0, NULL) || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) ||
	    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid))
		return fail_errno("become");
	prctl(PR_SET_DUMPABLE, 1);
	reply("ok");
	return 0;
}

/* forkloop N: fork N children that exit at once, and reap them. */
static int cmd_forkloop(char **av, int ac)
{
	long n;

	if (ac != 2 || (n = strtol(av[1], NULL, 10)) <= 0)
		return fail("usage: forkloop N");
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return fail_errno("fork");
		if (pid == 0)
			_exit(0);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	reply("ok %ld", n);
	return 0;
}

static int cmd_exec(char **av, int ac)
{
	(void)av;
	if (ac != 1)
		return fail("usage: exec");
	if (pending_input() > 0)
		return fail("exec with unread input pending");
	if (nspinners > 0)
		stop_spinners();
	reply("ok");
	execv("/proc/self/exe", saved_argv);
	/* Only reached on failure: the driver already got "ok". */
	int e = errno;
	reply("err execv: %s (errno %d)", strerror(e), e);
	return -1;
}

static int cmd_close_fds(char **av, int ac)
{
	(void)av;
	if (ac != 1)
		return fail("usage: close-fds");
	if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
		return fail_errno("close_range");
	for (int i = 0; i < MAX_REGIONS; i++)
		regions[i].fd = -1;
	reply("ok");
	return 0;
}

static int cmd_fds(char **av, int ac)
{
	static char dbuf[8192];
	long count = 0;
	int dfd;

	(void)av;
	if (ac != 1)
		return fail("usage: fds");
	dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail_errno("open /proc/self/fd");
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, dbuf, sizeof(dbuf));
		if (n < 0) {
			int e = errno;
			close(dfd);
			errno = e;
			return fail_errno("getdents64");
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			/* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
			unsigned short reclen;
			memcpy(&reclen, dbuf + off + 16, sizeof(reclen));
			const char *nm = dbuf + off + 19;
			if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0)
				count++;
			off += reclen;
		}
	}
	close(dfd);
	reply("ok %ld", count - 1);
	return 0;
}

static int cmd_sigmask(char **av, int ac)
{
	sigset_t set;
	uint64_t mask = 0;

	(void)av;
	if (ac != 1)
		return fail("usage: sigmask");
	if (pthread_sigmask(SIG_BLOCK, NULL, &set) != 0)
		return fail("pthread_sigmask failed");
	for (int s = 1; s <= 64 && s < _NSIG; s++)
		if (sigismember(&set, s) == 1)
			mask |= 1ULL << (s - 1);
	reply("ok %016llx", (unsigned long long)mask);
	return 0;
}

static int cmd_pid(char **av, int ac)
{
	(void)av;
	if (ac != 1)
		return fail("usage: pid");
	reply("ok %d", (int)getpid());
	return 0;
}

static int cmd_exit(char **av, int ac)
{
	long code = 0;

	if (ac > 2 || (ac == 2 && (parse_int(av[1], &code) != 0 || code < 0 || code > 255)))
		return fail("usage: exit [CODE 0..255]");
	kill_children();
	reply("ok");
	_exit((int)code);
}

/* ------------------------------------------------------------------------ */
/* Command loop                                                              */

struct command {
	const char *name;
	int (*fn)(char **av, int ac);
};

static const struct command commands[] = {
	{ "map", cmd_map },
	{ "heap", cmd_heap },
	{ "stack", cmd_stack },
	{ "write", cmd_write },
	{ "fill", cmd_fill },
	{ "read", cmd_read },
	{ "sysread", cmd_sysread },
	{ "unmap", cmd_unmap },
	{ "remap", cmd_remap },
	{ "mprotect", cmd_mprotect },
	{ "dontneed", cmd_dontneed },
	{ "mapfixed", cmd_mapfixed },
	{ "addr", cmd_addr },
	{ "checksum", cmd_checksum },
	{ "threads", cmd_threads },
	{ "spin", cmd_spin },
	{ "unspin", cmd_unspin },
	{ "spincount", cmd_spincount },
	{ "block", cmd_block },
	{ "signals", cmd_signals },
	{ "sigcount", cmd_sigcount },
	{ "sigaction", cmd_sigaction },
	{ "altstack", cmd_altstack },
	{ "fork", cmd_fork },
	{ "forkwrite", cmd_forkwrite },
	{ "exec", cmd_exec },
	{ "forkserve", cmd_forkserve },
	{ "forkloop", cmd_forkloop },
	{ "become", cmd_become },
	{ "ownuffd", cmd_ownuffd },
	{ "uring", cmd_uring },
	{ "uringread", cmd_uringread },
	{ "uringqueue", cmd_uringqueue },
	{ "ownwritten", cmd_ownwritten },
	{ "close-fds", cmd_close_fds },
	{ "fds", cmd_fds },
	{ "sigmask", cmd_sigmask },
	{ "pid", cmd_pid },
	{ "park", cmd_park },
	{ "parkread", cmd_parkread },
	{ "exit", cmd_exit },
};

static char in_buf[LINE_MAX_LEN];

static size_t pending_input(void)
{
	return in_len;
}

/*
 * Read the next line into `line` (NUL-terminated, without newline).
 * Returns 1 for a line, 0 on EOF, -1 for an over-long line (discarded).
 */
static int next_line(char *line)
{
	int too_long = 0;

	for (;;) {
		char *nl = memchr(in_buf, '\n', in_len);
		if (nl != NULL) {
			size_t l = (size_t)(nl - in_buf);
			if (!too_long) {
				memcpy(line, in_buf, l);
				line[l] = '\0';
			}
			in_len -= l + 1;
			memmove(in_buf, nl + 1, in_len);
			return too_long ? -1 : 1;
		}
		if (in_len == sizeof(in_buf)) {
			too_long = 1;
			in_len = 0;
		}
		ssize_t n = read(0, in_buf + in_len, sizeof(in_buf) - in_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (n == 0) {
			if (in_len == 0 || too_long)
				return 0;
			/* Last line without a newline. */
			memcpy(line, in_buf, in_len);
			line[in_len] = '\0';
			in_len = 0;
			return 1;
		}
		in_len += (size_t)n;
	}
}

static void reap_children(void)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		for (int i = 0; i < MAX_CHILDREN; i++)
			if (children[i] == pid)
				children[i] = 0;
	}
}

static __attribute__((noinline)) void command_loop(void)
{
	static char line[LINE_MAX_LEN + 1];
	static char *av[MAX_ARGS];

	for (;;) {
		int rc = next_line(line);
		if (rc == 0)
			break;
		reap_children();
		if (rc < 0) {
			fail("line too long");
			continue;
		}
		int ac = 0;
		char *save = NULL;
		for (char *tok = strtok_r(line, " \t\r", &save); tok != NULL;
		     tok = strtok_r(NULL, " \t\r", &save)) {
			if (ac == MAX_ARGS) {
				ac = -1;
				break;
			}
			av[ac++] = tok;
		}
		if (ac < 0) {
			fail("too many arguments");
			continue;
		}
		if (ac == 0) {
			fail("empty command");
			continue;
		}
		size_t i;
		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
			if (strcmp(av[0], commands[i].name) == 0) {
				commands[i].fn(av, ac);
				break;
			}
		}
		if (i == sizeof(commands) / sizeof(commands[0]))
			fail("unknown command: %s", av[0]);
	}
}

/*
 * Reserve STACK_PAGES pages of main-thread stack above the command loop's
 * frames.  The array is never touched by the program itself; its address
 * escapes to a global so it cannot be optimised away.
 */
static __attribute__((noinline)) void run_with_stack_area(void)
{
	volatile char area[(STACK_PAGES + 1) * PAGE];
	uintptr_t lo = ((uintptr_t)area + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
	uintptr_t hi = ((uintptr_t)area + sizeof(area)) & ~(uintptr_t)(PAGE - 1);

	stack_array_escape = area;
	stack_area = (char *)lo;
	stack_area_pages = (hi - lo) / PAGE;
	/*
	 * Code that ran before main() may have used (faulted in) the deepest
	 * part of what is now the array; drop those pages so the whole area
	 * starts out not present.  Its contents are dead, nothing is lost.
	 */
	madvise(stack_area, stack_area_pages * PAGE, MADV_DONTNEED);
	command_loop();
	/* Keep the frame (and the array) live until the loop returns. */
	stack_array_escape = NULL;
	__asm__ volatile("" : : "r"(area) : "memory");
}

int main(int argc, char **argv)
{
	(void)argc;
	saved_argv = argv;
	reply("ready %d", (int)getpid());
	run_with_stack_area();
	if (nspinners > 0)
		stop_spinners();
	kill_children();
	return 0;
}
