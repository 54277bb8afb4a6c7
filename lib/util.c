// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

static void oom(size_t n)
{
	fprintf(stderr, "dirtytrack: out of memory allocating %zu bytes\n", n);
	abort();
}

void die_oom(void)
{
	fprintf(stderr, "dirtytrack: out of memory\n");
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom(strlen(s));
	return p;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t n = 0;

	while (n < len) {
		ssize_t r = read(fd, (char *)buf + n, len - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += r;
	}
	return (ssize_t)n;
}

char *read_file_at(int dirfd, const char *path, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf;
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	buf = xmalloc(cap);
	for (;;) {
		size_t want = cap - n - 1;
		ssize_t r = read_full(fd, buf + n, want);

		if (r < 0) {
			int e = errno;

			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		n += r;
		if ((size_t)r < want)
			break;		/* the end of the file */
		buf = xrealloc(buf, cap *= 2);
	}
	close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

char *read_file(const char *path, size_t *len)
{
	return read_file_at(AT_FDCWD, path, len);
}

bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* strtoull takes leading spaces and signs: a number starts with a digit */
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

bool parse_int(const char *s, int *out)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Is name one of the comma-separated words of environment variable var? */
static bool env_list_has(const char *var, const char *name)
{
	const char *list = getenv(var);
	size_t n = strlen(name);

	while (list && *list) {
		const char *comma = strchr(list, ',');
		size_t len = comma ? (size_t)(comma - list) : strlen(list);

		if (len == n && !strncmp(list, name, n))
			return true;
		list = comma ? comma + 1 : NULL;
	}
	return false;
}

bool dt_simulate_missing(const char *feature)
{
	return env_list_has("DIRTYTRACK_SIMULATE_MISSING", feature);
}

bool dt_fault(const char *point)
{
	return env_list_has("DIRTYTRACK_FAULT", point);
}

static void fault_kill_self(const char *point)
{
	(void)point;
	kill(getpid(), SIGKILL);
}

static void (*fault_handler)(const char *point) = fault_kill_self;

void dt_fault_set_handler(void (*fn)(const char *point))
{
	fault_handler = fn ? fn : fault_kill_self;
}

void dt_fault_point(const char *point)
{
	if (dt_fault(point))
		fault_handler(point);
}
