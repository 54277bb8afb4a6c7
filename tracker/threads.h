/* SPDX-License-Identifier: MIT */
/*
 * Where each thread of a process is: seize it briefly (tracker/seize.h: it
 * resumes as it was, blocked system calls included), read each thread's
 * state, system call, registers and backtrace, let it go.  One process a
 * call: a process tree is this, once per process.
 */
#ifndef DT_THREADS_H
#define DT_THREADS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "tracker/proc.h"
#include "tracker/unwind.h"

struct thread_state {
	pid_t tid;
	char comm[32];
	char state;			/* before we stopped it: R S D T ... */
	bool has_regs;
	struct user_regs_struct regs;
	struct task_syscall sc;		/* while stopped: nr -1 in user code */
	struct backtrace bt;
};

struct threads_snapshot {
	pid_t pid;
	char comm[32];
	struct thread_state *t;
	int n;
	uint64_t seize_ns;		/* stopping every thread */
	uint64_t frozen_ns;		/* from all stopped to all released */
};

/*
 * Every thread of pid, with backtraces of at most depth frames.  A process
 * that exits meanwhile is DT_EXIT_GONE, like one that was never there.
 */
int threads_snapshot(pid_t pid, int depth, struct threads_snapshot *s);
void threads_snapshot_free(struct threads_snapshot *s);

#endif
