/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd that lives in the target's fd table: creating it there,
 * finding it again, taking our own handle, registering and protecting.
 */
#ifndef DT_UFFD_H
#define DT_UFFD_H

#include <stdint.h>
#include <sys/types.h>

#include "tracker/inject.h"

#define UFFD_WANTED_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

struct uffd_in_target {
	int fd;			/* number in the target's fd table */
	uint64_t features;	/* from its fdinfo API: line */
	uint64_t ino;		/* identity of the uffd file */
};

/* 1 when the target holds an async write-protect uffd, 0 when not, -1. */
int uffd_find(pid_t pid, struct uffd_in_target *u);
/* The features of the "API:" line of a userfaultfd's fdinfo text; -1 without one. */
int uffd_fdinfo_parse(const char *buf, uint64_t *features);
/* Inject userfaultfd() and move the fd out of the application's way. */
int uffd_create_in_target(struct injector *in, int *target_fd);
int uffd_close_in_target(struct injector *in, int target_fd);
/* Our own handle on the target's fd (pidfd_getfd). */
int uffd_grab(pid_t pid, int target_fd, int *fd);
/* UFFDIO_API with async write-protect; DT_EXIT_UNSUPPORTED when missing. */
int uffd_enable(int fd);
/* These return 0 or -errno and record nothing: callers decide the words. */
int uffd_register_wp(int fd, uint64_t start, uint64_t end);
int uffd_protect(int fd, uint64_t start, uint64_t end);

#endif
