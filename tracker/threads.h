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

/*
 * Each thread's CPU time (user + system, /proc/PID/task/TID/stat), read
 * again and again without stopping anything: which threads ran between two
 * readings (watch --threads).  It says which threads ran, not which wrote.
 */
struct thread_cpu {
	pid_t tid;
	char comm[32];
	unsigned long long ticks, prev;
	bool seen_before;		/* prev is a reading of ours */
};

struct thread_cpus {
	struct thread_cpu *t;
	int n;
};

/* A new reading into c; threads that exited meanwhile drop out. */
void thread_cpus_sample(pid_t pid, struct thread_cpus *c);
void thread_cpus_free(struct thread_cpus *c);

#endif
