/* SPDX-License-Identifier: MIT */
/*
 * The holder: one small process of ours per tracked process that keeps
 * the reference which keeps tracking alive, so that nothing of ours stays
 * in the target (its children inherit nothing; CRIU sees a clean fd table).
 *
 * `start` (or the first dump or watch that turns tracking on) spawns it: a
 * fork + exec of this binary, detached (own session, stdio on /dev/null,
 * cwd /, terminal signals ignored).  The holder itself seizes the target,
 * makes it call userfaultfd(), takes the fd out with pidfd_getfd and closes
 * it in the target before the target runs again: a command killed at any
 * moment cannot leave an injection half done.  It ends by itself when the
 * target exits or execs, on `stop`, on SIGTERM, or when the command that
 * spawned it dies before recording the session.
 *
 * Later commands reach it over an abstract unix socket named after the
 * user, the target's pid and start time and a random token (found in the
 * holder's command line); it answers only peers of its own user (or
 * root), and hands out the userfaultfd with SCM_RIGHTS.
 */
#ifndef DT_HOLDER_H
#define DT_HOLDER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum holder_events_source {
	HOLDER_EVENTS_POLL,		/* pidfd for exit, a look each second for exec */
	HOLDER_EVENTS_CONNECTOR,	/* the kernel's proc connector */
};

struct holder_info {
	pid_t holder_pid;
	unsigned long long holder_start;	/* its start time: pid reuse check */
	pid_t target_pid;
	unsigned long long target_start;
	uint64_t uffd_ino;
	uint64_t started_unix;
	enum holder_events_source events;
	char events_why[160];		/* why there is no connector */
	uint64_t forks;			/* children the target forked since start */
	pid_t last_child;
	bool events_lost;		/* the connector overflowed once */
	bool pinned;			/* on until stop (start, dump); else while leased */
	unsigned int leases;		/* commands relying on it now (watch) */
};

/*
 * Spawn a holder for (pid, start_time) and wait until it has attached:
 * on success *uffd is our handle on the new userfaultfd and *commit the
 * channel that holder_commit() closes once the session is recorded (if
 * this process dies first, the holder drops tracking and exits).
 */
int holder_spawn(pid_t pid, unsigned long long start_time, bool pinned, int *uffd, int *commit,
		 struct holder_info *info);
int holder_commit(int commit);
/* Tracking is abandoned: the holder exits without serving anyone. */
void holder_abandon(int commit);

/*
 * Ask the holder of (pid, start_time) who it is; with uffd non-NULL, also
 * take a handle on its userfaultfd.  1 found, 0 no holder, -1 error.
 */
int holder_query(pid_t pid, unsigned long long start_time, struct holder_info *info, int *uffd);
/*
 * Tracking turned on by start or dump is pinned: on until stop.  Tracking a
 * watch turned on lasts while some command holds a lease on it (the lease
 * is a connection: it ends when the command does, killed or not), unless
 * something pins it meanwhile.  1 done, 0 no holder, -1.
 */
int holder_pin(pid_t pid, unsigned long long start_time, struct holder_info *info);
int holder_lease(pid_t pid, unsigned long long start_time, int *lease);
/* Tell it to end and wait until it has: 1 it ended, 0 there was none, -1. */
int holder_stop(pid_t pid, unsigned long long start_time);

/* The holder process itself (the hidden command `__holder`). */
int holder_main(int argc, char **argv);
#define HOLDER_COMMAND "__holder"

#endif
