// SPDX-License-Identifier: MIT
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>

#include "lib/err.h"
#include "tracker/events.h"

static bool has_net_admin(void)
{
	cap_t caps = cap_get_proc();
	cap_flag_value_t v = CAP_CLEAR;

	if (caps) {
		cap_get_flag(caps, CAP_NET_ADMIN, CAP_EFFECTIVE, &v);
		cap_free(caps);
	}
	return v == CAP_SET;
}

static int send_op(struct nl_sock *sk, enum proc_cn_mcast_op op)
{
	struct {
		struct cn_msg msg;
		enum proc_cn_mcast_op op;
	} __attribute__((packed)) req;

	memset(&req, 0, sizeof(req));
	req.msg.id.idx = CN_IDX_PROC;
	req.msg.id.val = CN_VAL_PROC;
	req.msg.len = sizeof(req.op);
	req.op = op;
	return nl_send_simple(sk, NLMSG_DONE, 0, &req, sizeof(req));
}

int proc_events_open(struct proc_events *e, pid_t pid)
{
	int r;

	memset(e, 0, sizeof(*e));
	e->pid = pid;
	if (!has_net_admin())
		return dt_err(DT_EXIT_PERM, "process events need CAP_NET_ADMIN (the proc connector); "
			      "exit and exec are found by looking instead");
	e->sk = nl_socket_alloc();
	if (!e->sk)
		return dt_err(DT_EXIT_ERROR, "out of memory for a netlink socket");
	nl_socket_disable_seq_check(e->sk);
	nl_socket_disable_auto_ack(e->sk);
	r = nl_connect(e->sk, NETLINK_CONNECTOR);
	if (!r)
		r = nl_socket_add_membership(e->sk, CN_IDX_PROC);
	if (!r)
		r = nl_socket_set_nonblocking(e->sk);
	if (!r)
		r = nl_socket_set_buffer_size(e->sk, 1 << 20, 0);
	if (!r)
		r = send_op(e->sk, PROC_CN_MCAST_LISTEN) < 0 ? -1 : 0;
	if (r) {
		dt_err(DT_EXIT_ERROR, "proc connector: %s", nl_geterror(r));
		proc_events_close(e);
		return -1;
	}
	return 0;
}

int proc_events_fd(const struct proc_events *e)
{
	return e->sk ? nl_socket_get_fd(e->sk) : -1;
}

static void one_event(struct proc_events *e, const struct proc_event *ev,
		      void (*seen)(void *, const struct proc_event_seen *), void *ctx)
{
	struct proc_event_seen s = { PROC_EV_NONE, 0 };

	switch (ev->what) {
	case PROC_EVENT_FORK:
		/* a new process, not a new thread of pid */
		if (ev->event_data.fork.parent_tgid == e->pid &&
		    ev->event_data.fork.child_pid == ev->event_data.fork.child_tgid)
			s = (struct proc_event_seen){ PROC_EV_FORK, ev->event_data.fork.child_pid };
		break;
	case PROC_EVENT_EXEC:
		if (ev->event_data.exec.process_tgid == e->pid)
			s.kind = PROC_EV_EXEC;
		break;
	case PROC_EVENT_EXIT:
		if (ev->event_data.exit.process_tgid == e->pid &&
		    ev->event_data.exit.process_pid == e->pid)
			s.kind = PROC_EV_EXIT;
		break;
	default:
		break;
	}
	if (s.kind != PROC_EV_NONE)
		seen(ctx, &s);
}

int proc_events_read(struct proc_events *e, void (*seen)(void *ctx, const struct proc_event_seen *ev),
		     void *ctx, bool *lost)
{
	*lost = false;
	for (;;) {
		struct sockaddr_nl from;
		unsigned char *buf = NULL;
		struct nlmsghdr *h;
		int n = nl_recv(e->sk, &from, &buf, NULL);

		if (n == -NLE_AGAIN || n == 0) {
			free(buf);
			return 0;
		}
		if (n < 0) {
			/* overflowed: some events are gone, the caller must look */
			free(buf);
			*lost = true;
			return 0;
		}
		for (h = (struct nlmsghdr *)buf; nlmsg_ok(h, n); h = nlmsg_next(h, &n)) {
			const struct cn_msg *cn = nlmsg_data(h);

			if (from.nl_pid != 0 || h->nlmsg_type != NLMSG_DONE ||
			    nlmsg_datalen(h) < (int)sizeof(*cn) ||
			    nlmsg_datalen(h) < (int)(sizeof(*cn) + cn->len) ||
			    cn->id.idx != CN_IDX_PROC || cn->len < sizeof(struct proc_event))
				continue;	/* only the kernel speaks here */
			struct proc_event ev;

			/* the payload sits at 4 bytes past 8: copy it out aligned */
			memcpy(&ev, cn->data, sizeof(ev));
			one_event(e, &ev, seen, ctx);
		}
		free(buf);
	}
}

void proc_events_close(struct proc_events *e)
{
	if (e->sk) {
		send_op(e->sk, PROC_CN_MCAST_IGNORE);
		nl_socket_free(e->sk);
	}
	e->sk = NULL;
}
