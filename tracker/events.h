/* SPDX-License-Identifier: MIT */
/*
 * Process events from the kernel's proc connector (NETLINK_CONNECTOR,
 * CN_IDX_PROC) through libnl: fork, exec and exit of one process as they
 * happen.  Subscribing needs CAP_NET_ADMIN; without it the caller falls
 * back to looking (pidfd for exit, the address-space identity for exec).
 */
#ifndef DT_EVENTS_H
#define DT_EVENTS_H

#include <stdbool.h>
#include <sys/types.h>

struct nl_sock;

struct proc_events {
	struct nl_sock *sk;
	pid_t pid;		/* the process whose events we want */
};

enum proc_event_kind {
	PROC_EV_NONE,
	PROC_EV_FORK,		/* pid forked a child (child holds its pid) */
	PROC_EV_EXEC,		/* pid exec'd: its address space was replaced */
	PROC_EV_EXIT,		/* pid's thread group leader exited */
};

struct proc_event_seen {
	enum proc_event_kind kind;
	pid_t child;
};

/*
 * Subscribe for pid's events.  0 subscribed, -1 not available with the
 * reason recorded (DT_EXIT_PERM without CAP_NET_ADMIN).
 */
int proc_events_open(struct proc_events *e, pid_t pid);
/* The fd to poll for readability. */
int proc_events_fd(const struct proc_events *e);
/*
 * Read what is waiting; calls seen() for each event about pid.  A lost
 * message (ENOBUFS: the socket overflowed) is reported as lost = true, so
 * that the caller can look for itself.
 */
int proc_events_read(struct proc_events *e, void (*seen)(void *ctx, const struct proc_event_seen *ev),
		     void *ctx, bool *lost);
void proc_events_close(struct proc_events *e);

#endif
