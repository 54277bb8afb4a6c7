// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/seize.h"
#include "tracker/threads.h"

struct before {
	pid_t tid;
	char state;
	char comm[32];
};

/* What each thread is doing before we stop it (stopped, it is 't'). */
static int states_before(pid_t pid, struct before **out)
{
	pid_t *tids;
	int n = proc_tasks(pid, &tids);

	if (n < 0)
		return -1;
	*out = xcalloc((size_t)n + 1, sizeof(**out));
	for (int i = 0; i < n; i++) {
		struct proc_stat st;

		(*out)[i].tid = tids[i];
		(*out)[i].state = '?';
		if (proc_task_stat_read(pid, tids[i], &st)) {
			dt_err_clear();
			continue;
		}
		(*out)[i].state = st.state;
		snprintf((*out)[i].comm, sizeof((*out)[i].comm), "%s", st.comm);
	}
	free(tids);
	return n;
}

static void note_state(pid_t pid, const struct before *b, int nb, struct thread_state *t)
{
	struct proc_stat st;

	for (int i = 0; i < nb; i++)
		if (b[i].tid == t->tid) {
			t->state = b[i].state;
			snprintf(t->comm, sizeof(t->comm), "%s", b[i].comm);
			return;
		}
	/* born while we were stopping the others: it had not run much */
	t->state = '?';
	if (proc_task_stat_read(pid, t->tid, &st) == 0)
		snprintf(t->comm, sizeof(t->comm), "%s", st.comm);
	else
		dt_err_clear();
}

/* While stopped: registers, system call, backtrace; 1 if the process died. */
static int look_at(pid_t pid, struct unwinder *u, struct thread_state *t)
{
	t->has_regs = ptrace(PTRACE_GETREGS, t->tid, 0, &t->regs) == 0;
	if (proc_task_syscall_read(pid, t->tid, &t->sc)) {
		if (dt_err_kind() == DT_EXIT_GONE)
			return 1;
		return -1;
	}
	if (unwinder_trace(u, t->tid, t->has_regs ? &t->regs : NULL, &t->bt))
		return -1;
	return t->bt.end == UNWIND_END_GONE ? 1 : 0;
}

int threads_snapshot(pid_t pid, int depth, struct threads_snapshot *s)
{
	struct seized sz;
	struct unwinder *u;
	struct proc_stat st;
	struct before *b;
	uint64_t t0, frozen_at;
	int err = 0, gone = 0, nb;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	if (proc_stat_read(pid, &st))
		return -1;
	snprintf(s->comm, sizeof(s->comm), "%s", st.comm);
	nb = states_before(pid, &b);
	if (nb < 0)
		return -1;
	t0 = now_ns();
	if (seize_all(pid, &sz)) {
		free(b);
		return -1;
	}
	frozen_at = now_ns();
	s->seize_ns = frozen_at - t0;
	s->n = sz.n;
	s->t = xcalloc((size_t)sz.n, sizeof(*s->t));
	for (int i = 0; i < sz.n; i++) {
		s->t[i].tid = sz.tids[i];
		note_state(pid, b, nb, &s->t[i]);
	}
	free(b);
	u = unwinder_open(pid, depth);
	if (!u)
		err = -1;
	for (int i = 0; u && i < s->n && !err && !gone; i++) {
		int r = look_at(pid, u, &s->t[i]);

		err = r < 0 ? -1 : 0;
		gone = r > 0;
	}
	unwinder_close(u);
	seize_release(&sz, false);
	s->frozen_ns = now_ns() - frozen_at;
	if (gone || (err && dt_err_kind() == DT_EXIT_GONE) || proc_stat_read(pid, &st) ||
	    st.start_time != sz.start_time) {
		dt_err(DT_EXIT_GONE, "process %d exited while its threads were looked at", pid);
		err = -1;
	}
	if (err)
		threads_snapshot_free(s);
	return err;
}

void threads_snapshot_free(struct threads_snapshot *s)
{
	for (int i = 0; i < s->n; i++)
		backtrace_free(&s->t[i].bt);
	free(s->t);
	s->t = NULL;
	s->n = 0;
}

static const struct thread_cpu *cpu_prev(const struct thread_cpus *c, pid_t tid)
{
	for (int i = 0; i < c->n; i++)
		if (c->t[i].tid == tid)
			return &c->t[i];
	return NULL;
}

void thread_cpus_sample(pid_t pid, struct thread_cpus *c)
{
	struct thread_cpus now = { 0 };
	pid_t *tids;
	int n = proc_tasks(pid, &tids);

	if (n < 0) {
		dt_err_clear();
		n = 0;
		tids = NULL;
	}
	now.t = xcalloc((size_t)n + 1, sizeof(*now.t));
	for (int i = 0; i < n; i++) {
		const struct thread_cpu *old = cpu_prev(c, tids[i]);
		struct thread_cpu *t = &now.t[now.n];
		struct proc_stat st;

		if (proc_task_stat_read(pid, tids[i], &st)) {
			dt_err_clear();
			continue;
		}
		t->tid = tids[i];
		snprintf(t->comm, sizeof(t->comm), "%s", st.comm);
		t->ticks = st.utime + st.stime;
		t->seen_before = old != NULL;
		t->prev = old ? old->ticks : 0;
		now.n++;
	}
	free(tids);
	free(c->t);
	*c = now;
}


void thread_cpus_free(struct thread_cpus *c)
{
	free(c->t);
	c->t = NULL;
	c->n = 0;
}
