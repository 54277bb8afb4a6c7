/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd: creating it in the target (which keeps nothing of it),
 * enabling async write-protect, registering and protecting.
 */
#ifndef DT_UFFD_H
#define DT_UFFD_H

#include <stdint.h>
#include <sys/types.h>

#include "tracker/inject.h"

#define UFFD_WANTED_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

/*
 * Make the target call userfaultfd(), take our own handle on it
 * (pidfd_getfd) and close the target's copy: when this returns, the
 * target's fd table is as it was, whatever happened.
 */
int uffd_create_in_target(struct injector *in, int *fd);
/* UFFDIO_API with async write-protect; DT_EXIT_UNSUPPORTED when missing. */
int uffd_enable(int fd);
/* These return 0 or -errno and record nothing: callers decide the words. */
int uffd_register_wp(int fd, uint64_t start, uint64_t end);
int uffd_unregister(int fd, uint64_t start, uint64_t end);
int uffd_protect(int fd, uint64_t start, uint64_t end);

#endif
