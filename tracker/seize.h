/* SPDX-License-Identifier: MIT */
/*
 * Stopping every thread of a target with PTRACE_SEIZE + PTRACE_INTERRUPT,
 * and letting it go again exactly as it was.
 */
#ifndef DT_SEIZE_H
#define DT_SEIZE_H

#include <stdbool.h>
#include <signal.h>
#include <sys/types.h>

struct seized {
	pid_t pid;
	pid_t *tids;
	int n;
	bool was_stopped;	/* in group stop (SIGSTOP) before we came */
	bool stop_arrived;	/* a SIGSTOP arrived while we held it */
	bool in_group_stop;	/* seize_group_stop() put it there */
	bool resumed;		/* a thread ran (an injected system call) while seized */
	unsigned long long start_time;
};

/*
 * Seize and stop all threads; re-reads the thread list until no new thread
 * shows up.  On failure every thread seized so far is released.
 */
int seize_all(pid_t pid, struct seized *s);
/*
 * Put every thread in group stop (still traced) without delivering any
 * pending signal: they stay pending, in order, for whoever continues the
 * process.  0, or -1 (seize_release then falls back to a plain SIGSTOP).
 */
int seize_group_stop(struct seized *s);
/* Detach every thread; leave_stopped puts the whole process in group stop. */
void seize_release(struct seized *s, bool leave_stopped);
/*
 * Wait for tid to stop after it was resumed, with a deadline.  Returns the
 * wait status; a signal other than SIGTRAP that arrives on the way is
 * delivered (or, for SIGSTOP, remembered for release) and waiting goes on.
 */
int seize_wait_trap(struct seized *s, pid_t tid, int *status);
/*
 * The signals pending for stopped thread tid (shared: the process's queue),
 * without dequeuing them: a malloc'ed array in *out, the count returned.
 */
int seize_peek_signals(pid_t tid, bool shared, siginfo_t **out);
/* The first thread that can run injected code (not a zombie). */
pid_t seize_pick_thread(const struct seized *s);

#endif
