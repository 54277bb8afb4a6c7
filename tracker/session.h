/* SPDX-License-Identifier: MIT */
/*
 * What outlives one command: the tracking session of a process.  The
 * kernel keeps the tracking itself, alive through the holder's reference
 * (tracker/holder.h); this small state file keeps who the target and the
 * holder were, so that exec, pid reuse and lost tracking are told apart
 * from "nothing changed", and counts consuming collections so that later
 * work can tell whether dirty state was taken.
 */
#ifndef DT_SESSION_H
#define DT_SESSION_H

#include <stdint.h>
#include <sys/types.h>

#include "pagemap/rangeset.h"
#include "tracker/proc.h"

#define SESSION_MAX_SKIPS 256

struct session_skip {
	uint64_t start, end;
	int err;		/* errno of the failed registration */
};

struct session {
	pid_t pid;
	unsigned long long start_time;
	uint64_t mm_id;		/* changes on exec */
	pid_t holder_pid;	/* the process that keeps the uffd alive */
	unsigned long long holder_start;
	uint64_t uffd_ino;
	uint64_t generation;	/* consuming collections so far */
	/*
	 * The journal of collections: a command that consumes written pages
	 * for a dump writes its pid here before the scan and clears it, with
	 * the dump's id in last_dump, only once the dump is durable.  Found
	 * set by anyone else, it means those pages are in no dump.
	 */
	pid_t pending;
	char last_dump[64];
	uint64_t started_unix;
	int nskips;
	struct session_skip skips[SESSION_MAX_SKIPS];
	/*
	 * Private copies in private file mappings at the last collection:
	 * MADV_DONTNEED drops one back to the file's content without any
	 * write the kernel reports, so a copy that disappears counts as written.
	 */
	struct range_set cow;
	/*
	 * What we registered: a mapping registered for async write-protect
	 * that is not in here may be the application's own userfaultfd's.
	 */
	struct range_set ours;
};

uint64_t session_mm_id(const struct proc_stat *st);
/* 1 loaded, 0 no session for this pid, -1 error. */
int session_load(pid_t pid, struct session *s);
int session_save(const struct session *s);
void session_remove(pid_t pid);
void session_free(struct session *s);
/*
 * One command at a time changes a session: a collection and the check of
 * which dump came last must not interleave with another's.  Returns an fd
 * holding the lock (blocks until free), or -1.
 */
int session_lock(pid_t pid);
/* The same without waiting: -1 (EWOULDBLOCK) when someone holds it. */
int session_trylock(pid_t pid);
void session_unlock(int fd);
const char *session_dir(void);
/* Remove the session files and free locks of processes that no longer exist. */
void session_gc(void);

#endif
