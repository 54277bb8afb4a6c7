/* SPDX-License-Identifier: MIT */
#ifndef DT_UTIL_H
#define DT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* spelled as <sys/user.h> spells them, so both can be included */
#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Out of memory is not something a CLI can recover from: these abort. */
void die_oom(void) __attribute__((noreturn));
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* read(2) until len bytes or the end (EINTR retried); -1 + errno on error. */
ssize_t read_full(int fd, void *buf, size_t len);
/* Read a whole (small, /proc) file; NUL-terminated; NULL + errno on error. */
char *read_file(const char *path, size_t *len);
/* Same, relative to a directory fd. */
char *read_file_at(int dirfd, const char *path, size_t *len);

/* Strict decimal parse of a whole string; false on garbage or overflow. */
bool parse_u64(const char *s, uint64_t *out);
bool parse_int(const char *s, int *out);

uint64_t now_ns(void);		/* CLOCK_MONOTONIC */

/*
 * Long work tells its caller how far it got (bytes done of total); the
 * caller decides whether to show it.  Lower layers never print.
 */
typedef void (*dt_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/*
 * Tests simulate an older kernel: DIRTYTRACK_SIMULATE_MISSING is a comma
 * list of features (wp_async, pagemap_scan, userfaultfd) to pretend absent.
 */
bool dt_simulate_missing(const char *feature);

/*
 * Fault points, for tests: DIRTYTRACK_FAULT is a comma list of named
 * points at which the command dies by SIGKILL, as a user's kill would
 * make it (see dirtytrack(1), ENVIRONMENT).  dt_fault() only says whether
 * a point is named; dt_fault_point() kills this process there, or does
 * what the handler set says (the holder kills the command it serves: the
 * points of an injection are reached in the holder).
 */
bool dt_fault(const char *point);
void dt_fault_point(const char *point);
void dt_fault_set_handler(void (*fn)(const char *point));

#endif
