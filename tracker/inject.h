/* SPDX-License-Identifier: MIT */
/*
 * Making a seized target run system calls of our choosing, then putting
 * back its registers, code bytes and signal mask exactly as they were.
 * The code bytes are patched for one system call at a time and put back
 * at once; only the holder (tracker/holder.h) injects, so that no kill of
 * a command can leave a target half way.
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
	bool armed;		/* registers and mask to put back */
	bool patched;		/* code bytes to put back */
};

int inject_begin(struct injector *in, struct seized *s) __attribute__((warn_unused_result));
/* Runs nr(args) in the target; *ret gets the raw result (-errno on error). */
int inject_syscall(struct injector *in, long nr, long *ret, int nargs, ...)
	__attribute__((warn_unused_result));
/* Restores everything; safe to call after a failed begin or syscall. */
int inject_end(struct injector *in);

#endif
