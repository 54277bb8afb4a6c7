/* SPDX-License-Identifier: MIT */
/*
 * Backtraces of the threads of a seized (ptrace-stopped) process, with
 * libunwind's remote unwinder.  A target's stack is untrusted input: every
 * trace is bounded in depth, in memory reads and in time, and ends with the
 * reason it ended (the outermost frame, a frame without unwind information,
 * a stack pointer that does not move up its stack, ...), never with a hang.
 */
#ifndef DT_UNWIND_H
#define DT_UNWIND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "tracker/proc.h"

#define UNWIND_DEPTH_DEFAULT 64
#define UNWIND_DEPTH_MAX 1024

/* Why a trace ended. */
enum unwind_end {
	UNWIND_END_OUTERMOST,	/* the first frame of the thread: a whole trace */
	UNWIND_END_DEPTH,	/* the depth asked for was reached */
	UNWIND_END_NO_INFO,	/* a frame without unwind information (JIT, asm) */
	UNWIND_END_BAD_IP,	/* a return address outside any executable mapping */
	UNWIND_END_BAD_SP,	/* the stack pointer did not move up, or left the stack */
	UNWIND_END_LOOP,	/* a frame seen before */
	UNWIND_END_UNREADABLE,	/* the unwinder could not read or step (a corrupted frame) */
	UNWIND_END_BUDGET,	/* too many memory reads or too long for one thread */
	UNWIND_END_GONE,	/* the thread exited (was killed) while unwound */
	UNWIND_END_COUNT
};

struct frame {
	uint64_t ip, sp;
	char *func;		/* NULL: no symbol (stripped, JIT) */
	uint64_t func_off;	/* ip - the function's start, when func */
	char *map;		/* the mapping's file, "[stack]", "" anonymous, NULL none */
	uint64_t map_off;	/* the offset of ip in the mapped file */
	bool signal_frame;	/* a signal handler's frame: the next one was interrupted */
};

struct backtrace {
	pid_t tid;
	struct frame *f;
	int n;
	enum unwind_end end;
	uint64_t ns;		/* time spent unwinding this thread */
};

/* One process's unwinding state: its address space, maps and caches. */
struct unwinder;

/*
 * For process pid, whose threads are all stopped by us (tracker/seize.h),
 * traces of at most depth frames (1..UNWIND_DEPTH_MAX).  NULL + dt_err.
 */
struct unwinder *unwinder_open(pid_t pid, int depth);
/*
 * The backtrace of stopped thread tid.  regs: its registers when the caller
 * has them (NULL: read here).  A trace that ends early is not an error; -1
 * only for trouble of our own (out of descriptors, ...).  A thread that is
 * gone gives 0 and UNWIND_END_GONE.
 */
int unwinder_trace(struct unwinder *u, pid_t tid, const struct user_regs_struct *regs,
		   struct backtrace *bt);
void unwinder_close(struct unwinder *u);
void backtrace_free(struct backtrace *bt);
/* "outermost", "depth", "no-unwind-info", ...: stable words for JSON and text */
const char *unwind_end_name(enum unwind_end e);
/* The end's word back to its value (show reads them from a dump); -1 unknown. */
int unwind_end_parse(const char *name);
/* A sentence for the text output: "no unwind information (JIT code?)" ... */
const char *unwind_end_text(enum unwind_end e);

#endif
