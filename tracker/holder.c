// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/caps.h"
#include "lib/err.h"
#include "lib/uapi.h"
#include "lib/util.h"
#include "tracker/events.h"
#include "tracker/holder.h"
#include "tracker/inject.h"
#include "tracker/proc.h"
#include "tracker/seize.h"
#include "tracker/session.h"
#include "tracker/uffd.h"

#define HOLDER_MAGIC 0x64746864u	/* "dthd" */
#define HOLDER_VERSION 1
#define HOLDER_CHAN_FD 3		/* where the spawned holder finds its fds */
#define HOLDER_LISTEN_FD 4
#define HOLDER_IO_TIMEOUT_S 5

enum holder_op {
	HOLDER_OP_INFO = 1,
	HOLDER_OP_GET = 2,
	HOLDER_OP_STOP = 3,
	HOLDER_OP_PIN = 4,	/* tracking stays on until stop */
	HOLDER_OP_LEASE = 5,	/* the connection stays open while the caller relies on us */
};
#define HOLDER_MAX_LEASES 64

struct holder_request {
	uint32_t magic, version, op;
};

/* The one message the holder sends: its state, or why it could not attach. */
struct holder_msg {
	uint32_t magic, version;
	int32_t status;			/* 0, or the dt_exit kind of the error */
	char error[512];
	int32_t holder_pid;
	int32_t target_pid;
	uint64_t target_start;
	uint64_t uffd_ino;
	uint64_t started_unix;
	uint32_t events;
	char events_why[160];
	uint64_t forks;
	int32_t last_child;
	uint32_t events_lost;
	uint32_t pinned, leases;
};

static int pidfd_open(pid_t pid)
{
	return (int)syscall(__NR_pidfd_open, pid, 0);
}

#define HOLDER_TOKEN_LEN 16

/*
 * The abstract address: no file to plant, no state directory needed.  Its
 * random token makes it impossible to take before the holder binds it
 * (another user could otherwise squat the name and keep us from tracking).
 */
static socklen_t holder_addr(pid_t pid, unsigned long long start, const char *token,
			     struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "dirtytrack/holder/%u/%d/%llu/%s",
		     (unsigned)geteuid(), pid, start, token);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int new_token(char token[HOLDER_TOKEN_LEN + 1])
{
	unsigned char r[HOLDER_TOKEN_LEN / 2];

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return dt_err_sys(0, "getrandom");
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(token + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/*
 * The holders of our user seen in the last walk of /proc: a command that
 * asks about many processes (a tree) walks /proc once, not once each.
 */
struct known_holder {
	pid_t pid;
	unsigned long long start;
	char token[HOLDER_TOKEN_LEN + 1];
};

static struct known_holder *known;
static size_t nknown;

static int scan_holders(void)
{
	struct dirent *de;
	size_t cap = 0;
	DIR *d = opendir("/proc");

	if (!d)
		return dt_err_sys(0, "/proc");
	free(known);
	known = NULL;
	nknown = 0;
	while ((de = readdir(d))) {
		char path[300], *buf, *argv[7] = { 0 };
		struct stat st;
		size_t len, k = 0;
		int pid;
		unsigned long long start;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    fstatat(dirfd(d), de->d_name, &st, 0) || st.st_uid != geteuid())
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		buf = read_file(path, &len);
		if (!buf)
			continue;
		for (size_t i = 0; i < len && k < 7; i += strlen(buf + i) + 1)
			argv[k++] = buf + i;
		if (k == 6 && !strcmp(argv[1], HOLDER_COMMAND) && parse_int(argv[2], &pid) &&
		    sscanf(argv[3], "%llu", &start) == 1 && strlen(argv[5]) == HOLDER_TOKEN_LEN) {
			if (nknown == cap)
				known = xrealloc(known, (cap = cap ? cap * 2 : 16) * sizeof(*known));
			known[nknown].pid = pid;
			known[nknown].start = start;
			memcpy(known[nknown++].token, argv[5], HOLDER_TOKEN_LEN + 1);
		}
		free(buf);
	}
	closedir(d);
	return 0;
}

static int lookup_token(pid_t pid, unsigned long long start, char token[HOLDER_TOKEN_LEN + 1])
{
	for (size_t i = 0; i < nknown; i++)
		if (known[i].pid == pid && known[i].start == start) {
			memcpy(token, known[i].token, HOLDER_TOKEN_LEN + 1);
			return 1;
		}
	return 0;
}

/*
 * Our user's holder of (pid, start), found by its command line in /proc:
 * "dirtytrack __holder PID START MODE TOKEN".  1 found, 0 none.  fresh:
 * walk /proc again (what the last walk saw may have gone or come since).
 */
static int find_token(pid_t pid, unsigned long long start, char token[HOLDER_TOKEN_LEN + 1],
		      bool fresh)
{
	if (!fresh && lookup_token(pid, start, token))
		return 1;
	if (scan_holders())
		return -1;
	return lookup_token(pid, start, token);
}

static void set_timeouts(int fd)
{
	struct timeval tv = { HOLDER_IO_TIMEOUT_S, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		m.msg_control = ctl;
		m.msg_controllen = sizeof(ctl);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Bytes received (0 at EOF) or -1; *fd gets a passed fd or -1. */
static ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return n;
}

static void info_from_msg(const struct holder_msg *m, struct holder_info *info)
{
	struct proc_stat st;

	memset(info, 0, sizeof(*info));
	info->holder_pid = m->holder_pid;
	if (proc_stat_read(m->holder_pid, &st) == 0)
		info->holder_start = st.start_time;
	dt_err_clear();
	info->target_pid = m->target_pid;
	info->target_start = m->target_start;
	info->uffd_ino = m->uffd_ino;
	info->started_unix = m->started_unix;
	info->events = m->events;
	snprintf(info->events_why, sizeof(info->events_why), "%.*s",
		 (int)sizeof(m->events_why) - 1, m->events_why);
	info->forks = m->forks;
	info->last_child = m->last_child;
	info->events_lost = m->events_lost;
	info->pinned = m->pinned;
	info->leases = m->leases;
}

/* ---- the command's side ------------------------------------------------ */

static int spawn_holder(pid_t pid, unsigned long long start, bool pinned, char *token, int chan,
			int lsock)
{
	char pidbuf[16], startbuf[24];
	char *argv[] = { "dirtytrack", HOLDER_COMMAND, pidbuf, startbuf, pinned ? "pinned" : "auto",
			 token, NULL };
	pid_t child;
	int st;

	snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
	snprintf(startbuf, sizeof(startbuf), "%llu", start);
	child = fork();
	if (child < 0)
		return dt_err_sys(0, "fork");
	if (child == 0) {
		/* a session of its own: no terminal, no job-control signals */
		if (setsid() < 0 || fork() != 0)
			_exit(0);
		/* out of the way first: either may sit where the other must go */
		int c = fcntl(chan, F_DUPFD, 16), l = fcntl(lsock, F_DUPFD, 16);
		int null = open("/dev/null", O_RDWR);

		if (c < 0 || l < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
		    dup2(null, 2) < 0 || dup2(c, HOLDER_CHAN_FD) < 0 ||
		    dup2(l, HOLDER_LISTEN_FD) < 0 || chdir("/"))
			_exit(127);
		syscall(__NR_close_range, HOLDER_LISTEN_FD + 1, ~0U, 0);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

int holder_spawn(pid_t pid, unsigned long long start_time, bool pinned, int *uffd, int *commit,
		 struct holder_info *info)
{
	char token[HOLDER_TOKEN_LEN + 1];
	struct sockaddr_un sa;
	socklen_t len;
	struct holder_msg m;
	int sv[2], lsock, fd;
	ssize_t n;

	*uffd = *commit = -1;
	if (new_token(token))
		return -1;
	len = holder_addr(pid, start_time, token, &sa);
	lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lsock < 0)
		return dt_err_sys(0, "socket");
	if (bind(lsock, (struct sockaddr *)&sa, len) || listen(lsock, 16)) {
		if (errno == EADDRINUSE)
			dt_err(DT_EXIT_ERROR, "process %d is being tracked by another holder "
			       "(a start running at the same time?)", pid);
		else
			dt_err_sys(0, "binding the holder's socket");
		close(lsock);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		close(lsock);
		return dt_err_sys(0, "socketpair");
	}
	if (spawn_holder(pid, start_time, pinned, token, sv[1], lsock)) {
		close(lsock);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	close(lsock);
	close(sv[1]);
	n = recv_with_fd(sv[0], &m, sizeof(m), &fd);
	if (n != (ssize_t)sizeof(m) || m.magic != HOLDER_MAGIC) {
		if (fd >= 0)
			close(fd);
		close(sv[0]);
		return dt_err(DT_EXIT_ERROR, "the holder process for %d died while attaching "
			      "(the target is left as it was)", pid);
	}
	if (m.status) {
		if (fd >= 0)
			close(fd);
		close(sv[0]);
		return dt_err((enum dt_exit)m.status, "%.*s", (int)sizeof(m.error) - 1, m.error);
	}
	if (fd < 0) {
		close(sv[0]);
		return dt_err(DT_EXIT_ERROR, "the holder process for %d sent no userfaultfd", pid);
	}
	/* the pair was made before the fork: the holder says who it is */
	info_from_msg(&m, info);
	*uffd = fd;
	*commit = sv[0];
	return 0;
}

int holder_commit(int commit)
{
	char ok = 1;
	int err = send(commit, &ok, 1, MSG_NOSIGNAL) == 1 ? 0 : -1;

	if (err)
		dt_err(DT_EXIT_ERROR, "tracking could not be turned on: its holder process died "
		       "before it was recorded");
	close(commit);
	return err;
}

void holder_abandon(int commit)
{
	if (commit >= 0)
		close(commit);
}

/* 1 connected (fd in *sock, the holder's pid in *holder), 0 none, -1 error. */
static int holder_connect(pid_t pid, unsigned long long start, int *sock, pid_t *holder)
{
	char token[HOLDER_TOKEN_LEN + 1];
	struct sockaddr_un sa;
	socklen_t len;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	bool fresh = false;
	int fd, r;

again:
	r = find_token(pid, start, token, fresh);
	if (r <= 0)
		return r;
	len = holder_addr(pid, start, token, &sa);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dt_err_sys(0, "socket");
	if (connect(fd, (struct sockaddr *)&sa, len)) {
		int e = errno;

		close(fd);
		/* a holder remembered from an earlier walk may be gone, or replaced */
		if ((e == ECONNREFUSED || e == ENOENT) && !fresh) {
			fresh = true;
			goto again;
		}
		if (e == ECONNREFUSED || e == ENOENT)
			return 0;
		errno = e;
		return dt_err_sys(0, "connecting to the holder of process %d", pid);
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
		close(fd);
		return dt_err_sys(0, "SO_PEERCRED");
	}
	if (cred.uid != geteuid()) {
		close(fd);
		return dt_err(DT_EXIT_PERM, "the holder address of process %d is taken by process %d "
			      "of user %u, not ours: refusing to use it", pid, cred.pid, cred.uid);
	}
	set_timeouts(fd);
	*sock = fd;
	*holder = cred.pid;
	return 1;
}

static int holder_call(pid_t pid, unsigned long long start, enum holder_op op,
		       struct holder_info *info, int *uffd, pid_t *holder_out)
{
	struct holder_request rq = { HOLDER_MAGIC, HOLDER_VERSION, op };
	struct holder_msg m;
	pid_t holder = 0;
	int sock = -1, fd, r = holder_connect(pid, start, &sock, &holder);
	ssize_t n;

	if (r <= 0)
		return r;
	if (send(sock, &rq, sizeof(rq), MSG_NOSIGNAL) != sizeof(rq)) {
		close(sock);
		return dt_err_sys(0, "asking the holder of process %d", pid);
	}
	n = recv_with_fd(sock, &m, sizeof(m), &fd);
	close(sock);
	if (n != (ssize_t)sizeof(m) || m.magic != HOLDER_MAGIC || m.version != HOLDER_VERSION ||
	    m.target_pid != pid || m.target_start != start || m.holder_pid != holder) {
		if (fd >= 0)
			close(fd);
		/* it was on its way out: its target exited or exec'd, or it was told */
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 0;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return dt_err(DT_EXIT_ERROR, "the holder of process %d (pid %d) did not answer "
				      "within %d s (still attaching?): try again", pid, holder,
				      HOLDER_IO_TIMEOUT_S);
		return dt_err(DT_EXIT_ERROR, "the holder of process %d (pid %d) gave no valid answer "
			      "(another version of dirtytrack?)", pid, holder);
	}
	info_from_msg(&m, info);
	if (holder_out)
		*holder_out = holder;
	if (uffd)
		*uffd = fd;
	else if (fd >= 0)
		close(fd);
	if (uffd && fd < 0)
		return dt_err(DT_EXIT_ERROR, "the holder of process %d sent no userfaultfd", pid);
	return 1;
}

int holder_query(pid_t pid, unsigned long long start_time, struct holder_info *info, int *uffd)
{
	return holder_call(pid, start_time, uffd ? HOLDER_OP_GET : HOLDER_OP_INFO, info, uffd, NULL);
}

int holder_pin(pid_t pid, unsigned long long start_time, struct holder_info *info)
{
	return holder_call(pid, start_time, HOLDER_OP_PIN, info, NULL, NULL);
}

int holder_lease(pid_t pid, unsigned long long start_time, int *lease)
{
	struct holder_request rq = { HOLDER_MAGIC, HOLDER_VERSION, HOLDER_OP_LEASE };
	struct holder_msg m;
	pid_t holder = 0;
	int sock = -1, fd, r = holder_connect(pid, start_time, &sock, &holder);

	*lease = -1;
	if (r <= 0)
		return r;
	if (send(sock, &rq, sizeof(rq), MSG_NOSIGNAL) != sizeof(rq) ||
	    recv_with_fd(sock, &m, sizeof(m), &fd) != (ssize_t)sizeof(m) || m.magic != HOLDER_MAGIC) {
		close(sock);
		return 0;	/* it was on its way out */
	}
	if (fd >= 0)
		close(fd);
	*lease = sock;
	return 1;
}

int holder_stop(pid_t pid, unsigned long long start_time)
{
	struct holder_info info;
	pid_t holder = 0;
	int r = holder_call(pid, start_time, HOLDER_OP_STOP, &info, NULL, &holder), pidfd;
	struct pollfd p;

	if (r <= 0 || holder <= 0)
		return r;
	/* when we return, its reference on the target's memory is gone */
	pidfd = pidfd_open(holder);
	if (pidfd < 0)
		return 1;
	p = (struct pollfd){ pidfd, POLLIN, 0 };
	if (poll(&p, 1, HOLDER_IO_TIMEOUT_S * 1000) == 0) {
		close(pidfd);
		return dt_err(DT_EXIT_ERROR, "the holder of process %d (pid %d) did not exit", pid,
			      holder);
	}
	close(pidfd);
	return 1;
}

/* ---- the holder's side ------------------------------------------------- */

struct holder {
	pid_t pid;
	unsigned long long start;
	uint64_t mm_id;
	int uffd, pidfd, chan, lsock, sigfd;
	pid_t requester;		/* the command that spawned us, for fault points */
	struct holder_msg state;
	struct proc_events ev;
	int leases[HOLDER_MAX_LEASES];
	int nleases;
	bool done;
	bool target_ended;		/* exit or exec: the session file says so */
};

static struct holder *the_holder;

/* A fault point of the injection: the command dies there, as a kill would do. */
static void kill_requester(const char *point)
{
	struct holder *h = the_holder;
	int pidfd;
	struct pollfd p;

	(void)point;
	if (!h || h->requester <= 0)
		return;
	pidfd = pidfd_open(h->requester);
	kill(h->requester, SIGKILL);
	if (pidfd >= 0) {
		p = (struct pollfd){ pidfd, POLLIN, 0 };
		poll(&p, 1, 5000);
		close(pidfd);
	}
}

static void fill_error(struct holder_msg *m)
{
	m->status = dt_err_kind() ? (int32_t)dt_err_kind() : DT_EXIT_ERROR;
	snprintf(m->error, sizeof(m->error), "%s", dt_err_msg());
}

/* Seize, make the target call userfaultfd(), take it out, close it there. */
static int attach(struct holder *h)
{
	struct proc_stat st;
	struct seized s;
	struct injector in;
	int err;

	if (proc_stat_read(h->pid, &st))
		return -1;
	if (st.start_time != h->start)
		return dt_err(DT_EXIT_GONE, "process %d exited (the pid now belongs to another "
			      "process)", h->pid);
	h->mm_id = session_mm_id(&st);
	if (seize_all(h->pid, &s))
		return -1;
	dt_fault_point("after-seize");
	err = s.start_time != h->start
		      ? dt_err(DT_EXIT_GONE, "process %d exited while being attached", h->pid)
		      : inject_begin(&in, &s);
	if (!err)
		err = uffd_create_in_target(&in, &h->uffd);
	if (s.start_time == h->start && inject_end(&in) && !err)
		err = -1;
	seize_release(&s, false);
	if (!err)
		err = uffd_enable(h->uffd);
	return err;
}

static int wait_commit(struct holder *h)
{
	struct pollfd p[2] = { { h->chan, POLLIN, 0 }, { h->pidfd, POLLIN, 0 } };
	char c;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[1].revents)
			return -1;	/* the target is gone */
		if (p[0].revents) {
			ssize_t n = recv(h->chan, &c, 1, 0);

			if (n < 0 && errno == EINTR)
				continue;
			return n == 1 ? 0 : -1;	/* EOF: the command died first */
		}
	}
}

static void on_event(void *ctx, const struct proc_event_seen *ev)
{
	struct holder *h = ctx;

	if (ev->kind == PROC_EV_FORK) {
		h->state.forks++;
		h->state.last_child = ev->child;
	} else {
		h->done = h->target_ended = true;	/* exec or exit: tracking ends with it */
	}
}

static void look_at_target(struct holder *h)
{
	struct proc_stat st;

	if (proc_stat_read(h->pid, &st) || st.start_time != h->start ||
	    session_mm_id(&st) != h->mm_id)
		h->done = h->target_ended = true;
	dt_err_clear();
}

static void serve(struct holder *h)
{
	struct holder_request rq;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int c = accept4(h->lsock, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	if (c < 0)
		return;
	/* only our own user, or root, may have the fd */
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) ||
	    (cred.uid != geteuid() && cred.uid != 0)) {
		close(c);
		return;
	}
	set_timeouts(c);
	n = recv(c, &rq, sizeof(rq), 0);
	if (n == sizeof(rq) && rq.magic == HOLDER_MAGIC && rq.version == HOLDER_VERSION) {
		bool keep = rq.op == HOLDER_OP_LEASE && h->nleases < HOLDER_MAX_LEASES;

		if (rq.op == HOLDER_OP_STOP)
			h->done = true;
		if (rq.op == HOLDER_OP_PIN)
			h->state.pinned = 1;
		/* exec may have come before its event: never hand out a stale context */
		if (rq.op == HOLDER_OP_GET)
			look_at_target(h);
		/* a fork that returned before the question is in the answer */
		if (h->state.events == HOLDER_EVENTS_CONNECTOR) {
			bool lost;

			proc_events_read(&h->ev, on_event, h, &lost);
			if (lost)
				h->state.events_lost = 1;
		}
		if (keep)
			h->state.leases = (uint32_t)h->nleases + 1;
		if (!h->done || rq.op == HOLDER_OP_STOP)
			send_with_fd(c, &h->state, sizeof(h->state),
				     rq.op == HOLDER_OP_GET ? h->uffd : -1);
		if (keep && !h->done) {
			h->leases[h->nleases++] = c;
			return;
		}
	}
	close(c);
}

/* A lease ended (its command exited, however): unpinned tracking ends with the last. */
static void drop_lease(struct holder *h, int i)
{
	close(h->leases[i]);
	h->leases[i] = h->leases[--h->nleases];
	h->state.leases = (uint32_t)h->nleases;
	if (!h->state.pinned && h->nleases == 0)
		h->done = true;
}

/* Subscribed before the attach: no fork or exec falls between the two. */
static void open_events(struct holder *h)
{
	bool events = proc_events_open(&h->ev, h->pid) == 0;

	h->state.events = events ? HOLDER_EVENTS_CONNECTOR : HOLDER_EVENTS_POLL;
	snprintf(h->state.events_why, sizeof(h->state.events_why), "%s",
		 events ? "" : dt_err_msg());
	dt_err_clear();
}

static void holder_loop(struct holder *h)
{
	bool events = h->state.events == HOLDER_EVENTS_CONNECTOR;

	/* what happened while we waited for the commit */
	if (events) {
		bool lost;

		proc_events_read(&h->ev, on_event, h, &lost);
	}
	look_at_target(h);
	while (!h->done) {
		struct pollfd p[4 + HOLDER_MAX_LEASES] = {
			{ h->lsock, POLLIN, 0 }, { h->pidfd, POLLIN, 0 }, { h->sigfd, POLLIN, 0 },
			{ events ? proc_events_fd(&h->ev) : -1, POLLIN, 0 },
		};
		int nl = h->nleases, r;

		for (int i = 0; i < nl; i++)
			p[4 + i] = (struct pollfd){ h->leases[i], POLLIN, 0 };
		r = poll(p, (nfds_t)(4 + nl), events ? -1 : 1000);

		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0) {
			look_at_target(h);
			continue;
		}
		if (p[1].revents) {
			h->target_ended = true;
			break;
		}
		if (p[2].revents)
			break;
		if (p[3].revents) {
			bool lost;

			proc_events_read(&h->ev, on_event, h, &lost);
			if (lost) {
				h->state.events_lost = 1;
				look_at_target(h);
			}
		}
		for (int i = nl - 1; i >= 0; i--)
			if (p[4 + i].revents)
				drop_lease(h, i);
		if (!h->done && p[0].revents)
			serve(h);
	}
	while (h->nleases)
		close(h->leases[--h->nleases]);
}

static void forget_session(const struct holder *h)
{
	struct session s;
	/* never wait: whoever holds the lock (stop) is ending us and tidies up itself */
	int lock = session_trylock(h->pid);

	if (lock < 0) {
		dt_err_clear();
		return;
	}
	if (session_load(h->pid, &s) == 1 && s.holder_pid == getpid() &&
	    s.start_time == h->start)
		session_remove(h->pid);
	session_free(&s);
	session_unlock(lock);
	dt_err_clear();
}

static void holder_signals(struct holder *h)
{
	static const int ignored[] = { SIGINT, SIGQUIT, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU,
				       SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM };
	sigset_t term;

	for (size_t i = 0; i < ARRAY_SIZE(ignored); i++)
		signal(ignored[i], SIG_IGN);
	/* SIGTERM ends us, but only between requests: never mid-injection */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	h->sigfd = signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK);
}

int holder_main(int argc, char **argv)
{
	struct holder h = { .uffd = -1, .pidfd = -1, .chan = HOLDER_CHAN_FD,
			    .lsock = HOLDER_LISTEN_FD, .sigfd = -1 };
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	unsigned long long start;
	int pid;

	if (argc != 6 || !parse_int(argv[2], &pid) || pid <= 0 ||
	    sscanf(argv[3], "%llu", &start) != 1 ||
	    (strcmp(argv[4], "pinned") && strcmp(argv[4], "auto"))) {
		fprintf(stderr, "dirtytrack: %s is internal: it is spawned by start\n", HOLDER_COMMAND);
		return DT_EXIT_ERROR;
	}
	prctl(PR_SET_NAME, "dt-holder");
	fcntl(h.chan, F_SETFD, FD_CLOEXEC);
	fcntl(h.lsock, F_SETFD, FD_CLOEXEC);
	/* listening again makes the peer credentials its clients see ours */
	listen(h.lsock, 16);
	holder_signals(&h);
	h.pid = pid;
	h.start = start;
	the_holder = &h;
	if (getsockopt(h.chan, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		h.requester = cred.pid;
	dt_fault_set_handler(kill_requester);
	h.state = (struct holder_msg){ .magic = HOLDER_MAGIC, .version = HOLDER_VERSION,
				       .holder_pid = getpid(), .target_pid = pid,
				       .target_start = start, .pinned = !strcmp(argv[4], "pinned"),
				       .started_unix = (uint64_t)time(NULL) };
	open_events(&h);
	h.pidfd = pidfd_open(pid);
	if (h.pidfd < 0)
		dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
	if (h.pidfd < 0 || attach(&h)) {
		fill_error(&h.state);
		send_with_fd(h.chan, &h.state, sizeof(h.state), -1);
	} else {
		struct stat fst;

		h.state.uffd_ino = fstat(h.uffd, &fst) == 0 ? fst.st_ino : 0;
		/* attached and subscribed: from now on we need next to nothing */
		caps_holder_settle();
		dt_err_clear();
		if (send_with_fd(h.chan, &h.state, sizeof(h.state), h.uffd) == 0 &&
		    wait_commit(&h) == 0) {
			close(h.chan);
			h.chan = -1;
			holder_loop(&h);
		}
	}
	/*
	 * Tracking ended on purpose (stop, SIGTERM, the last lease, a command
	 * that died before it committed): the session this holder kept is
	 * off, not lost.  An exit or exec keeps it, so that status says which.
	 */
	if (!h.target_ended && !h.state.status)
		forget_session(&h);
	/* our reference goes: with no other, the kernel unregisters everything */
	if (h.uffd >= 0)
		close(h.uffd);
	if (h.chan >= 0)
		close(h.chan);
	close(h.lsock);
	if (h.pidfd >= 0)
		close(h.pidfd);
	proc_events_close(&h.ev);
	if (h.sigfd >= 0)
		close(h.sigfd);
	the_holder = NULL;
	return h.state.status ? h.state.status : DT_EXIT_OK;
}
