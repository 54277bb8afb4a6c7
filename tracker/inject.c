// SPDX-License-Identifier: MIT
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/inject.h"
#include "tracker/proc.h"

#ifndef PTRACE_GETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif

/* syscall; int3; then whatever was there */
static const unsigned char inject_code[] = { 0x0f, 0x05, 0xcc };

static int find_code_addr(pid_t pid, uint64_t *addr)
{
	struct vma_list l;

	if (vma_list_read(pid, &l))
		return -1;
	for (size_t i = 0; i < l.n; i++) {
		const struct vma *v = &l.v[i];

		if ((v->prot & PROT_EXEC) && v->kind != VMA_SPECIAL && v->end - v->start >= 8) {
			*addr = v->start;
			vma_list_free(&l);
			return 0;
		}
	}
	vma_list_free(&l);
	return dt_err(DT_EXIT_ERROR, "process %d has no executable mapping to run injected code", pid);
}

/* Seccomp: 2 in /proc/PID/status: a filter we cannot read decides. */
static bool seccomp_filtered(pid_t pid)
{
	uint64_t mode = 0;

	if (proc_status_read(pid, "Seccomp", 10, &mode) < 0)
		dt_err_clear();
	return mode == 2;
}

static int poke(struct injector *in, long word, const char *what)
{
	if (ptrace(PTRACE_POKEDATA, in->tid, in->code_addr, word))
		return dt_err_sys(0, "%s code of process %d at %#llx", what, in->s->pid,
				  (unsigned long long)in->code_addr);
	return 0;
}

int inject_begin(struct injector *in, struct seized *s)
{
	/*
	 * No handler may run between our instructions, but SIGTRAP stays
	 * open: the int3 forces it, and a forced signal that is blocked gets
	 * its handler reset to the default (the application's own SIGTRAP
	 * handler would be lost).  The trap stops in the tracer, never in a
	 * handler.
	 */
	uint64_t blocked = ~0ULL & ~(1ULL << (SIGTRAP - 1));

	memset(in, 0, sizeof(*in));
	in->s = s;
	/* a filter returning SECCOMP_RET_KILL would kill the target on our call */
	if (seccomp_filtered(s->pid) && !getenv("DIRTYTRACK_ALLOW_SECCOMP"))
		return dt_err(DT_EXIT_PERM, "process %d runs under a seccomp filter: a system call "
			      "it forbids could kill it (set DIRTYTRACK_ALLOW_SECCOMP=1 if the filter "
			      "allows userfaultfd and close)", s->pid);
	in->tid = seize_pick_thread(s);
	if (!in->tid)
		return dt_err(DT_EXIT_GONE, "process %d has no live thread", s->pid);
	if (find_code_addr(s->pid, &in->code_addr))
		return -1;
	if (ptrace(PTRACE_GETREGS, in->tid, 0, &in->saved_regs))
		return dt_err_sys(0, "PTRACE_GETREGS thread %d", in->tid);
	if (ptrace(PTRACE_GETSIGMASK, in->tid, sizeof(uint64_t), &in->saved_sigmask))
		return dt_err_sys(0, "PTRACE_GETSIGMASK thread %d", in->tid);
	errno = 0;
	in->saved_code = ptrace(PTRACE_PEEKDATA, in->tid, in->code_addr, 0);
	if (errno)
		return dt_err_sys(0, "reading code of process %d at %#llx", s->pid,
				  (unsigned long long)in->code_addr);
	/* from here on, inject_end() has something to undo */
	in->armed = true;
	if (ptrace(PTRACE_SETSIGMASK, in->tid, sizeof(uint64_t), &blocked)) {
		dt_err_sys(0, "PTRACE_SETSIGMASK thread %d", in->tid);
		inject_end(in);
		return -1;
	}
	return 0;
}

/* Run the patched instructions once; the original bytes go back at once. */
static int run_patched(struct injector *in, struct user_regs_struct *r, int *st)
{
	long word = in->saved_code;
	int err;

	memcpy(&word, inject_code, sizeof(inject_code));
	if (poke(in, word, "writing"))
		return -1;
	in->patched = true;
	dt_fault_point("after-patch");
	if (ptrace(PTRACE_SETREGS, in->tid, 0, r))
		err = dt_err_sys(0, "PTRACE_SETREGS thread %d", in->tid);
	else if ((in->s->resumed = true, ptrace(PTRACE_CONT, in->tid, 0, 0)))
		err = dt_err_sys(0, "PTRACE_CONT thread %d", in->tid);
	else {
		dt_fault_point("in-syscall");
		err = seize_wait_trap(in->s, in->tid, st);
	}
	if (!err && ptrace(PTRACE_GETREGS, in->tid, 0, r))
		err = dt_err_sys(0, "PTRACE_GETREGS thread %d", in->tid);
	dt_fault_point("before-restore");
	if (poke(in, in->saved_code, "restoring") == 0)
		in->patched = false;
	else
		err = -1;
	return err;
}

int inject_syscall(struct injector *in, long nr, long *ret, int nargs, ...)
{
	struct user_regs_struct r = in->saved_regs;
	unsigned long long *argv[] = { &r.rdi, &r.rsi, &r.rdx, &r.r10, &r.r8, &r.r9 };
	va_list ap;
	int st;

	va_start(ap, nargs);
	for (int i = 0; i < nargs && i < 6; i++)
		*argv[i] = (unsigned long long)va_arg(ap, long);
	va_end(ap);
	r.rax = nr;
	/* no syscall-restart fix-ups may apply at our ip */
	r.orig_rax = (unsigned long long)-1;
	r.rip = in->code_addr;
	if (run_patched(in, &r, &st))
		return -1;
	if (WSTOPSIG(st) == SIGSYS)
		return dt_err(DT_EXIT_PERM, "process %d: its seccomp filter refuses system call %ld",
			      in->s->pid, nr);
	if (WSTOPSIG(st) != SIGTRAP || r.rip != in->code_addr + 3)
		return dt_err(DT_EXIT_ERROR, "process %d: injected system call %ld stopped with "
			      "signal %d at %#llx", in->s->pid, nr, WSTOPSIG(st), r.rip);
	*ret = (long)r.rax;
	return 0;
}

int inject_end(struct injector *in)
{
	int err = 0;

	if (!in->armed)
		return 0;
	in->armed = false;
	if (in->patched && poke(in, in->saved_code, "restoring"))
		err = -1;
	in->patched = false;
	if (ptrace(PTRACE_SETREGS, in->tid, 0, &in->saved_regs))
		err = dt_err_sys(0, "restoring registers of thread %d", in->tid);
	if (ptrace(PTRACE_SETSIGMASK, in->tid, sizeof(uint64_t), &in->saved_sigmask))
		err = dt_err_sys(0, "restoring the signal mask of thread %d", in->tid);
	return err;
}
