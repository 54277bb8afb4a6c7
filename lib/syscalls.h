/* SPDX-License-Identifier: MIT */
/*
 * x86-64 system call names, from the table generated at build time out of
 * the system's <asm/unistd_64.h> (see the Makefile): the kernel headers the
 * tool is built against name every call they know, with no list of ours to
 * fall behind.
 */
#ifndef DT_SYSCALLS_H
#define DT_SYSCALLS_H

/* "read", "futex", ...; NULL for a number the headers do not name. */
const char *syscall_name(long nr);

#endif
