// SPDX-License-Identifier: MIT
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/proc.h"
#include "tracker/seize.h"

#define STOP_DEADLINE_NS (10ULL * 1000000000ULL)

static bool has_tid(const struct seized *s, pid_t tid)
{
	for (int i = 0; i < s->n; i++)
		if (s->tids[i] == tid)
			return true;
	return false;
}

static void drop_tid(struct seized *s, pid_t tid)
{
	for (int i = 0; i < s->n; i++)
		if (s->tids[i] == tid) {
			memmove(&s->tids[i], &s->tids[i + 1], (s->n - i - 1) * sizeof(pid_t));
			s->n--;
			return;
		}
}

static void short_sleep(void)
{
	struct timespec ts = { 0, 100 * 1000 };

	nanosleep(&ts, NULL);
}

static bool is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/*
 * Wait for one thread with a deadline: a thread stuck in uninterruptible
 * sleep (a vfork parent, a hung NFS read) must give an error, not a hang.
 */
/*
 * A zombie that waitpid cannot report yet: a thread group leader is
 * reported only once its other threads are reaped, and those may be ours
 * to reap (killed while we seize them).  It is as good as exited.
 */
static bool is_zombie(pid_t tid)
{
	struct proc_stat st;
	char path[64];
	char *buf;
	bool dead;

	snprintf(path, sizeof(path), "/proc/%d/stat", tid);
	buf = read_file(path, NULL);
	if (!buf)
		return errno == ENOENT || errno == ESRCH;
	dead = proc_stat_parse(buf, &st) == 0 && (st.state == 'Z' || st.state == 'X');
	free(buf);
	return dead;
}

static int wait_deadline(pid_t tid, int *status)
{
	uint64_t deadline = now_ns() + STOP_DEADLINE_NS;

	for (unsigned int polls = 1;; polls++) {
		pid_t r = waitpid(tid, status, __WALL | WNOHANG);

		if (r == tid)
			return 0;
		if (r < 0 && errno != EINTR)
			return dt_err_sys(DT_EXIT_GONE, "waiting for thread %d", tid);
		if (r == 0 && polls % 64 == 0 && is_zombie(tid)) {
			*status = 0;	/* WIFEXITED: the callers' "gone" */
			return 0;
		}
		if (now_ns() > deadline)
			return dt_err(DT_EXIT_ERROR, "thread %d did not stop within 10 s "
				      "(uninterruptible sleep?)", tid);
		short_sleep();
	}
}

/* Wait until tid is in a ptrace event stop; 1 if the thread went away. */
static int wait_event_stop(struct seized *s, pid_t tid)
{
	for (;;) {
		int st;

		if (wait_deadline(tid, &st))
			return -1;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return 1;
		if (!WIFSTOPPED(st))
			continue;
		if ((st >> 16) == PTRACE_EVENT_STOP) {
			if (is_stop_signal(WSTOPSIG(st)))
				s->was_stopped = true;
			return 0;
		}
		/*
		 * A signal was being delivered as we interrupted: let it go
		 * through now (delivered once, as it would have been); the
		 * interrupt stays pending and stops the thread next.
		 */
		if (ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(st)) && errno == ESRCH)
			return 1;
	}
}

int seize_wait_trap(struct seized *s, pid_t tid, int *status)
{
	for (;;) {
		int st, sig;

		if (wait_deadline(tid, &st))
			return -1;
		*status = st;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return dt_err(DT_EXIT_GONE, "process %d exited while stopped for tracking", s->pid);
		if (!WIFSTOPPED(st))
			continue;
		sig = WSTOPSIG(st);
		if ((st >> 16) == PTRACE_EVENT_STOP) {
			/* a group stop started by someone else: keep going */
			if (is_stop_signal(sig))
				s->stop_arrived = true;
			ptrace(PTRACE_CONT, tid, 0, 0);
			continue;
		}
		if (sig == SIGSTOP) {
			/* unblockable: hold it back and raise it again at release */
			s->stop_arrived = true;
			ptrace(PTRACE_CONT, tid, 0, 0);
			continue;
		}
		return 0;	/* SIGTRAP, or a fault the caller must handle */
	}
}

static int tracer_of(pid_t pid)
{
	uint64_t tracer = 0;

	if (proc_status_read(pid, "TracerPid", 10, &tracer) < 0)
		dt_err_clear();
	return (int)tracer;
}

/* 1 seized, 0 nothing to seize (zombie or gone), -1 error */
static int seize_one(struct seized *s, pid_t tid)
{
	struct proc_stat st;

	/* a zombie thread never stops: leave it alone */
	if (proc_task_stat_read(s->pid, tid, &st) == 0 && (st.state == 'Z' || st.state == 'X'))
		return 0;
	/* an exiting task refuses attach (EPERM) for a moment before it is a zombie */
	for (int tries = 0; ptrace(PTRACE_SEIZE, tid, 0, 0); tries++) {
		int e = errno, tracer = e == EPERM ? tracer_of(s->pid) : 0;

		/* (reading /proc may change errno: e is the kernel's answer) */
		if (e == EPERM && tries < 5 && !tracer) {
			short_sleep();
			continue;
		}
		if (e == ESRCH)
			return 0;	/* exited meanwhile */
		if (e == EPERM) {
			/* the kernel refuses to attach to an exiting task, too */
			if (proc_task_stat_read(s->pid, tid, &st) ||
			    st.state == 'Z' || st.state == 'X')
				return 0;

			if (tracer > 0)
				return dt_err(DT_EXIT_PERM, "cannot ptrace process %d: it is already "
					      "traced by process %d", s->pid, tracer);
			errno = e;
			return dt_err_sys(DT_EXIT_PERM, "cannot ptrace process %d (need the same user "
					  "and no ptrace restriction, or CAP_SYS_PTRACE)", s->pid);
		}
		errno = e;
		return dt_err_sys(0, "PTRACE_SEIZE thread %d of process %d", tid, s->pid);
	}
	s->tids = xrealloc(s->tids, (s->n + 1) * sizeof(pid_t));
	s->tids[s->n++] = tid;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) && errno != ESRCH)
		return dt_err_sys(0, "PTRACE_INTERRUPT thread %d", tid);
	return 1;
}

int seize_all(pid_t pid, struct seized *s)
{
	uint64_t deadline = now_ns() + STOP_DEADLINE_NS;
	struct proc_stat st;
	bool grew = true;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	if (proc_stat_read(pid, &st))
		return -1;
	s->start_time = st.start_time;
	s->was_stopped = st.state == 'T';


	while (grew) {
		pid_t *tids;
		int n, first_new = s->n;

		grew = false;
		n = proc_tasks(pid, &tids);
		if (n < 0)
			goto fail;
		for (int i = 0; i < n; i++) {
			int r;

			if (has_tid(s, tids[i]))
				continue;
			r = seize_one(s, tids[i]);
			if (r < 0) {
				free(tids);
				goto fail;
			}
			if (r > 0)
				grew = true;
		}
		free(tids);
		if (now_ns() > deadline) {
			dt_err(DT_EXIT_ERROR, "process %d keeps creating threads: cannot stop them all",
			       pid);
			goto fail;
		}
		/* all listed threads must be stopped before the list is final */
		for (int i = first_new; i < s->n; i++) {
			int r = wait_event_stop(s, s->tids[i]);

			if (r < 0)
				goto fail;
			if (r > 0) {
				drop_tid(s, s->tids[i]);
				i--;
			}
		}
	}
	if (s->n == 0 || proc_stat_read(pid, &st)) {
		dt_err(DT_EXIT_GONE, "process %d exited while being attached", pid);
		goto fail;
	}
	if (st.start_time != s->start_time) {
		dt_err(DT_EXIT_GONE, "process %d exited while being attached (pid reused)", pid);
		goto fail;
	}
	return 0;
fail:
	seize_release(s, false);
	return -1;
}

#ifndef PTRACE_GETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif

static void detach_all(struct seized *s)
{
	for (int i = 0; i < s->n; i++)
		ptrace(PTRACE_DETACH, s->tids[i], 0, 0);
	free(s->tids);
	s->tids = NULL;
	s->n = 0;
}

/*
 * Put every thread in group stop without letting any handler run: with
 * every signal blocked, the SIGSTOP we send is the one signal a thread can
 * take when it resumes, so the signals that were pending stay pending, in
 * order, for whoever continues the process.  Then the masks go back; a
 * thread in group stop stays stopped after PTRACE_DETACH.
 */
/* Resume thread tid and wait until it sits in group stop (or is gone). */
static int into_group_stop(pid_t tid)
{
	if (ptrace(PTRACE_CONT, tid, 0, 0))
		return errno == ESRCH ? 0 : -1;
	for (;;) {
		int st;

		if (wait_deadline(tid, &st))
			return -1;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return 0;
		if (!WIFSTOPPED(st))
			continue;
		if ((st >> 16) == PTRACE_EVENT_STOP && is_stop_signal(WSTOPSIG(st)))
			return 0;
		/* the SIGSTOP itself (signal-delivery-stop): let it start the group stop */
		if (ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(st) == SIGSTOP ? SIGSTOP : 0))
			return errno == ESRCH ? 0 : -1;
	}
}

int seize_group_stop(struct seized *s)
{
	uint64_t all = ~0ULL, *masks;
	int err = 0;

	/* stopped before we came and never resumed: every thread is in group stop already */
	if (s->was_stopped && !s->resumed && !s->stop_arrived) {
		s->in_group_stop = true;
		return 0;
	}
	masks = xcalloc(s->n, sizeof(*masks));

	for (int i = 0; i < s->n && !err; i++)
		err = ptrace(PTRACE_GETSIGMASK, s->tids[i], sizeof(uint64_t), &masks[i]) ||
		      ptrace(PTRACE_SETSIGMASK, s->tids[i], sizeof(uint64_t), &all);
	if (!err && kill(s->pid, SIGSTOP))
		err = -1;
	/*
	 * One thread first: the only one running, it takes the SIGSTOP and
	 * starts the group stop.  The others are resumed only then, and find
	 * the stop pending before they could return to user code: no thread
	 * runs an instruction after the dump was copied.
	 */
	for (int i = 0; i < s->n && !err; i++)
		err = into_group_stop(s->tids[i]);
	for (int i = 0; i < s->n; i++)
		ptrace(PTRACE_SETSIGMASK, s->tids[i], sizeof(uint64_t), &masks[i]);
	free(masks);
	s->in_group_stop = !err;
	return err;
}

void seize_release(struct seized *s, bool leave_stopped)
{
	if (s->n && (leave_stopped || s->was_stopped || s->stop_arrived)) {
		if (s->in_group_stop || seize_group_stop(s) == 0) {
			detach_all(s);
			return;
		}
		/*
		 * A SIGSTOP queued before detaching is acted on by the threads as
		 * they leave the ptrace stop: the process ends up in group stop
		 * (a pending handled signal may run first).
		 */
		kill(s->pid, SIGSTOP);
	} else if (s->in_group_stop) {
		/* stopped for a dump that then failed: it runs on, as it did */
		detach_all(s);
		kill(s->pid, SIGCONT);
		return;
	}
	detach_all(s);
}

int seize_peek_signals(pid_t tid, bool shared, siginfo_t **out)
{
	siginfo_t *all = NULL;
	int n = 0;

	for (;;) {
		struct __ptrace_peeksiginfo_args a = {
			.off = (uint64_t)n, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0, .nr = 32,
		};
		long got;

		all = xrealloc(all, (n + 32) * sizeof(*all));
		got = ptrace(PTRACE_PEEKSIGINFO, tid, &a, all + n);
		if (got < 0) {
			free(all);
			return dt_err_sys(0, "PTRACE_PEEKSIGINFO thread %d", tid);
		}
		n += (int)got;
		if (got < 32)
			break;
	}
	*out = all;
	return n;
}

pid_t seize_pick_thread(const struct seized *s)
{
	for (int i = 0; i < s->n; i++) {
		struct proc_stat st;

		if (proc_task_stat_read(s->pid, s->tids[i], &st) == 0 && st.state != 'Z' &&
		    st.state != 'X')
			return s->tids[i];
	}
	return 0;
}
