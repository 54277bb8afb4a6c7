/* SPDX-License-Identifier: MIT */
/*
 * Tracking a process: start (inject a userfaultfd, register, arm), find it
 * again in a later command, collect the written pages, stop.
 */
#ifndef DT_TRACKER_H
#define DT_TRACKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagemap/dirty.h"
#include "pagemap/rangeset.h"
#include "pagemap/scan.h"
#include "tracker/holder.h"
#include "tracker/pinned.h"
#include "tracker/proc.h"
#include "tracker/session.h"

enum vma_track_state {
	VMA_TRACKED,		/* registered; its writes are recorded */
	VMA_NEW,		/* not registered yet: every page counts as dirty */
	VMA_SKIPPED,		/* cannot be tracked; see reason */
};

struct vma_track {
	enum vma_track_state state;
	const char *reason;	/* for VMA_SKIPPED */
};

struct tracker {
	pid_t pid;
	struct proc_stat stat;
	struct session sess;
	struct holder_info holder;	/* who keeps the uffd alive */
	int uffd;			/* our handle on the target's uffd */
	struct pm_scanner scan;
	struct dirty_reader reader;
	struct vma_list vmas;		/* as of the last refresh */
	struct vma_track *track;	/* one per vma */
	struct range_set tracked;	/* registered ranges */
	struct range_set fresh;		/* registered by the last refresh */
	struct range_set foreign;	/* registered by another userfaultfd */
	struct pinned pinned;		/* as of the last collection */
	uint64_t collect_ns;
	bool untracked;			/* open failed: not tracked (see error) */
	bool lost;			/* ... because its holder is gone */
	bool hold_journal;		/* a dump: collections stay pending until complete */
	bool want_io;			/* a frozen dump: count I/O in flight too */
	int lock_fd;			/* the session lock, while held */
	int lease_fd;			/* our lease on the holder (watch), or -1 */
	uint64_t holder_asked_ns;	/* when tracker_holder_alive last asked it */
};

/* May we look at the target at all?  Asked before anything is created. */
int tracker_check_access(pid_t pid);
/*
 * pin: tracking stays on until stop (start, dump).  Without it (watch),
 * tracking turned on here ends with the last lease on it.
 */
int tracker_start(pid_t pid, enum dirty_backend b, bool pin, struct tracker *t, bool *already);
/* Look without tracking (dump --no-track): identity, mappings, pinned memory. */
int tracker_look(pid_t pid, struct tracker *t);
/* A long runner relies on tracking: hold a lease on the holder until close. */
int tracker_lease(struct tracker *t);
/* Between a long runner's collections: is the holder still there? */
int tracker_holder_alive(struct tracker *t);
/* A long runner is done: unpinned tracking it alone relied on ends now. */
int tracker_end_auto(struct tracker *t);
int tracker_open(pid_t pid, enum dirty_backend b, struct tracker *t);
/*
 * Refresh the mappings and gather written pages into *dirty (which is
 * cleared first).  consume re-arms them and registers new mappings;
 * without it nothing in the target changes (new mappings count in full).
 */
int tracker_collect(struct tracker *t, bool consume, struct range_set *dirty);
/*
 * About how much was written since the last collection, in the mappings
 * registered then (new ones not counted), cheaply and changing nothing.
 */
int tracker_estimate_written(struct tracker *t, uint64_t *bytes);
/*
 * With t->hold_journal set, a consuming collection stays recorded as
 * pending (its pages are in no dump yet) until this records the dump that
 * holds them, once that dump is durable.
 */
int tracker_complete(struct tracker *t, const char *dump_id);
/*
 * open and start take the session lock and hold it until close; a long
 * runner (watch) lets go with tracker_unlock, and each consuming collection
 * then takes it again for its own length.
 */
void tracker_unlock(struct tracker *t);
/* Per-VMA states with the reasons only /proc/PID/smaps can tell. */
int tracker_inspect(struct tracker *t);
void tracker_close(struct tracker *t);

/*
 * 1 when it was tracked and now is not, 0 when it was not tracked.  The
 * holder ends; the state directory is not needed for that.
 */
int tracker_stop(pid_t pid);

/* Where the written pages are, by VMA kind. */
void tracker_dirty_by_kind(const struct tracker *t, const struct range_set *dirty,
			   uint64_t pages[VMA_KIND_COUNT]);

#endif
