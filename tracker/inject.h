/* SPDX-License-Identifier: MIT */
/*
 * Making a seized target run system calls of our choosing, then putting
 * back its registers, code bytes and signal mask exactly as they were.
 */
#ifndef DT_INJECT_H
#define DT_INJECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "tracker/seize.h"

struct injector {
	struct seized *s;
	pid_t tid;
	uint64_t code_addr;
	long saved_code;
	uint64_t saved_sigmask;
	struct user_regs_struct saved_regs;
	bool armed;
};

int inject_begin(struct injector *in, struct seized *s);
/* Runs nr(args) in the target; *ret gets the raw result (-errno on error). */
int inject_syscall(struct injector *in, long nr, long *ret, int nargs, ...);
/* Restores everything; safe to call after a failed begin or syscall. */
int inject_end(struct injector *in);

#endif
