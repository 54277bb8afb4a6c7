// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/uapi.h"
#include "lib/util.h"
#include "pagemap/content.h"
#include "tracker/holder.h"
#include "tracker/tracker.h"
#include "tracker/uffd.h"

static void tracker_init(struct tracker *t, pid_t pid)
{
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->uffd = -1;
	t->scan.fd = -1;
	t->lock_fd = -1;
	t->lease_fd = -1;
}

void tracker_unlock(struct tracker *t)
{
	session_unlock(t->lock_fd);
	t->lock_fd = -1;
}

/* Take the lock again and pick up what others recorded meanwhile. */
static int relock(struct tracker *t)
{
	struct session s;

	t->lock_fd = session_lock(t->pid);
	if (t->lock_fd < 0)
		return -1;
	if (session_load(t->pid, &s) == 1 && s.uffd_ino == t->sess.uffd_ino &&
	    s.start_time == t->sess.start_time) {
		t->sess.generation = s.generation;
		t->sess.pending = s.pending;
		memcpy(t->sess.last_dump, s.last_dump, sizeof(s.last_dump));
		t->sess.nskips = s.nskips;
		memcpy(t->sess.skips, s.skips, sizeof(s.skips));
		range_set_free(&t->sess.cow);
		range_set_free(&t->sess.ours);
		t->sess.cow = s.cow;
		t->sess.ours = s.ours;
		return 0;
	}
	session_free(&s);
	return 0;
}

void tracker_close(struct tracker *t)
{
	tracker_unlock(t);
	if (t->lease_fd >= 0)
		close(t->lease_fd);
	t->lease_fd = -1;
	if (t->uffd >= 0)
		close(t->uffd);
	t->uffd = -1;
	dirty_reader_free(&t->reader);
	pm_scanner_close(&t->scan);
	vma_list_free(&t->vmas);
	free(t->track);
	t->track = NULL;
	range_set_free(&t->tracked);
	range_set_free(&t->fresh);
	range_set_free(&t->foreign);
	pinned_free(&t->pinned);
	session_free(&t->sess);
}

static const char *register_reason(int err)
{
	switch (err) {
	case EBUSY:
		return "owned by another userfaultfd";
	case EPERM:
		return "shared mapping of a file opened read-only";
	case EINVAL:
		return "the kernel cannot write-protect this mapping";
	case ENOMEM:
		return "mapping changed while registering";
	default:
		return strerror(err);
	}
}

static const char *session_skip_reason(const struct session *s, const struct vma *v)
{
	for (int i = 0; i < s->nskips; i++)
		if (s->skips[i].start == v->start && s->skips[i].end == v->end)
			return register_reason(s->skips[i].err);
	return NULL;
}

static void set_add(struct range_set *s, uint64_t start, uint64_t end)
{
	if (range_set_add(s, start, end))
		die_oom();
}

static int add_unreg(void *ctx, uint64_t start, uint64_t end, uint64_t categories)
{
	(void)categories;
	set_add(ctx, start, end);
	return 0;
}

/*
 * Ranges of VMAs not registered with an async-WP uffd: the kernel's own
 * word (PAGE_IS_WPALLOWED), so a VMA unmapped and mapped again at the same
 * place with the same flags is still seen as new.  Registered VMAs are
 * skipped without walking their page tables.
 */
static int find_unregistered(struct tracker *t, struct range_set *unreg)
{
	struct pm_query q = {
		.inverted = PAGE_IS_WPALLOWED,
		.mask = PAGE_IS_WPALLOWED,
		.ret = PAGE_IS_WPALLOWED,
	};
	uint64_t end = vma_list_user_end(&t->vmas);

	if (!t->vmas.n || !end)
		return 0;
	return pm_scan(&t->scan, t->vmas.v[0].start, end, &q, add_unreg, unreg);
}

/* Register v; 0 ours now, else the errno the kernel gave. */
static int try_register(struct tracker *t, const struct vma *v, int *nskips, int *err)
{
	int e = uffd_register_wp(t->uffd, v->start, v->end);

	if (e == -ESRCH || (e == -ENOMEM && kill(t->pid, 0) && errno == ESRCH)) {
		*err = pm_scan_error(t->pid, ESRCH);
		return ESRCH;
	}
	if (e && *nskips < SESSION_MAX_SKIPS)
		t->sess.skips[(*nskips)++] = (struct session_skip){ v->start, v->end, -e };
	return -e;
}

static int refresh(struct tracker *t, bool do_register)
{
	struct range_set unreg = RANGE_SET_INIT;
	struct session *s = &t->sess;
	int nskips = 0, err = 0;

	vma_list_free(&t->vmas);
	free(t->track);
	t->track = NULL;
	range_set_clear(&t->tracked);
	range_set_clear(&t->fresh);
	range_set_clear(&t->foreign);
	if (vma_list_read(t->pid, &t->vmas))
		return -1;
	t->track = xcalloc(t->vmas.n, sizeof(*t->track));
	if (find_unregistered(t, &unreg))
		return -1;
	for (size_t i = 0; i < t->vmas.n && !err; i++) {
		const struct vma *v = &t->vmas.v[i];
		struct vma_track *vt = &t->track[i];
		bool registered = !range_set_overlaps(&unreg, v->start, v->end);
		int e;

		if (v->kind == VMA_SPECIAL) {
			vt->state = VMA_SKIPPED;
			vt->reason = "special mapping";
			continue;
		}
		if (registered && range_set_covers(&s->ours, v->start, v->end)) {
			vt->state = VMA_TRACKED;
			set_add(&t->tracked, v->start, v->end);
			continue;
		}
		if (!registered && v->prot == PROT_NONE) {
			/* nothing can write it; arming would only cost page tables */
			vt->state = VMA_SKIPPED;
			vt->reason = "no access (PROT_NONE)";
			continue;
		}
		if (!registered && !do_register) {
			vt->reason = session_skip_reason(s, v);
			vt->state = vt->reason ? VMA_SKIPPED : VMA_NEW;
			continue;
		}
		/*
		 * Registered by someone, not known to be us: registering again
		 * tells (nothing changes if it is ours, EBUSY if another
		 * userfaultfd owns it: the application's own is left alone).
		 */
		e = try_register(t, v, &nskips, &err);
		if (e == ESRCH && err)
			break;
		if (e == 0 && registered) {
			/*
			 * Ours already (grown in place, or a session adopted):
			 * a page we never armed has no uffd-wp bit and reads
			 * as written, so its bits can be trusted as they are.
			 */
			vt->state = VMA_TRACKED;
			set_add(&t->tracked, v->start, v->end);
			continue;
		}
		if (e == 0) {
			vt->state = VMA_NEW;
			set_add(&t->tracked, v->start, v->end);
			set_add(&t->fresh, v->start, v->end);
			continue;
		}
		vt->state = VMA_SKIPPED;
		vt->reason = register_reason(e);
		if (registered)
			set_add(&t->foreign, v->start, v->end);
	}
	if (do_register && !err) {
		s->nskips = nskips;
		range_set_free(&s->ours);
		if (range_set_copy(&s->ours, &t->tracked))
			die_oom();
	}
	range_set_free(&unreg);
	return err ? -1 : 0;
}

/* Tell exit, exec and pid reuse apart after a failed walk. */
static int explain_gone(struct tracker *t)
{
	struct proc_stat st;

	if (proc_stat_read(t->pid, &st))
		return dt_err(DT_EXIT_GONE, "process %d exited", t->pid);
	if (st.start_time != t->stat.start_time)
		return dt_err(DT_EXIT_GONE, "process %d exited (the pid now belongs to another process)",
			      t->pid);
	if (session_mm_id(&st) == 0)
		return dt_err(DT_EXIT_GONE, "process %d exited", t->pid);
	if (session_mm_id(&st) != t->sess.mm_id)
		return dt_err(DT_EXIT_GONE, "process %d exec'd a new program: tracking ended with "
			      "its old address space", t->pid);
	return -1;
}

static int collect_locked(struct tracker *t, bool consume, struct range_set *dirty);

/* Private copies that went back to file content since the last collection. */
static int dropped_copies(struct tracker *t, bool consume, struct range_set *dirty)
{
	struct range_set now = RANGE_SET_INIT, mine = RANGE_SET_INIT, files = RANGE_SET_INIT,
			 gone = RANGE_SET_INIT;
	int err = 0;

	for (size_t i = 0; i < t->vmas.n && !err; i++) {
		const struct vma *v = &t->vmas.v[i];

		if (v->kind != VMA_FILE_PRIVATE || t->track[i].state == VMA_SKIPPED)
			continue;
		set_add(&files, v->start, v->end);
		err = content_of_vma(&t->scan, v, &now);
	}
	if (!err) {
		if (range_set_intersect(&mine, &t->sess.cow, &files) ||
		    range_set_subtract(&gone, &mine, &now) || range_set_union(dirty, &gone))
			die_oom();
		if (consume) {
			range_set_free(&t->sess.cow);
			t->sess.cow = now;
			now = (struct range_set)RANGE_SET_INIT;
		}
	}
	range_set_free(&now);
	range_set_free(&mine);
	range_set_free(&files);
	range_set_free(&gone);
	return err;
}

int tracker_estimate_written(struct tracker *t, uint64_t *bytes)
{
	struct range_set d = RANGE_SET_INIT;
	int err = dirty_collect(&t->reader, &t->sess.ours, false, &d);

	*bytes = err ? 0 : range_set_bytes(&d);
	range_set_free(&d);
	return err;
}

int tracker_collect(struct tracker *t, bool consume, struct range_set *dirty)
{
	bool relocked = consume && t->lock_fd < 0;
	int err = relocked ? relock(t) : 0;

	if (!err)
		err = collect_locked(t, consume, dirty);
	if (relocked)
		tracker_unlock(t);
	return err;
}

static int collect_locked(struct tracker *t, bool consume, struct range_set *dirty)
{
	uint64_t t0 = now_ns();
	int err;

	range_set_clear(dirty);
	/* journal first: once the scan has run, those writes are ours to keep */
	if (consume) {
		t->sess.pending = getpid();
		if (session_save(&t->sess))
			return -1;
	}
	err = refresh(t, consume);
	if (!err && !consume)
		err = tracker_inspect(t);
	if (!err)
		err = dirty_collect(&t->reader, &t->tracked, consume, dirty);
	if (!err)
		err = dropped_copies(t, consume, dirty);
	/*
	 * Mappings we cannot track (PROT_NONE, refused by the kernel) may still
	 * have been written: a PROT_NONE area made writable, written and closed
	 * again between collections looks unchanged.  Their content counts as
	 * written every time: dumping a page twice is cheap, losing one is not.
	 */
	for (size_t i = 0; !err && i < t->vmas.n; i++)
		if (t->track[i].state == VMA_SKIPPED)
			err = content_of_vma(&t->scan, &t->vmas.v[i], dirty);
	/*
	 * Pinned pages (io_uring fixed buffers) are written by the kernel
	 * through the page, never through the page table: always written.
	 */
	if (!err) {
		pinned_free(&t->pinned);
		err = pinned_read(t->pid, &t->vmas, t->want_io, &t->pinned);
		if (!err && !dt_simulate_missing("pinned_pages") &&
		    range_set_union(dirty, &t->pinned.ranges))
			die_oom();
	}
	/* not registered yet: every page of a new mapping counts as written */
	for (size_t i = 0; !err && !consume && i < t->vmas.n; i++)
		if (t->track[i].state == VMA_NEW)
			set_add(dirty, t->vmas.v[i].start, t->vmas.v[i].end);
	if (err) {
		if (dt_err_kind() == DT_EXIT_GONE)
			explain_gone(t);
		return -1;
	}
	t->collect_ns = now_ns() - t0;
	if (consume) {
		dt_fault_point("after-collect");
		t->sess.generation++;
		if (!t->hold_journal) {
			t->sess.pending = 0;
			t->sess.last_dump[0] = '\0';
		}
		if (session_save(&t->sess))
			return -1;
	}
	return 0;
}

int tracker_complete(struct tracker *t, const char *dump_id)
{
	bool relocked = t->lock_fd < 0;
	int err = relocked ? relock(t) : 0;

	if (!err && t->sess.pending != getpid())
		err = dt_err(DT_EXIT_ERROR, "the session of process %d changed under this dump",
			     t->pid);
	if (!err) {
		t->sess.pending = 0;
		snprintf(t->sess.last_dump, sizeof(t->sess.last_dump), "%s", dump_id);
		err = session_save(&t->sess);
	}
	if (relocked)
		tracker_unlock(t);
	return err;
}

static int open_common(struct tracker *t, pid_t pid, enum dirty_backend b)
{
	if (pm_scanner_open(&t->scan, pid))
		return -1;
	dirty_reader_init(&t->reader, b, &t->scan, t->uffd);
	t->reader.foreign = &t->foreign;
	return 0;
}

/* The session file's word on why a live process has no tracking. */
static int explain_untracked(struct tracker *t)
{
	const struct proc_stat *st = &t->stat;
	pid_t pid = t->pid;
	struct session s;
	int r = session_load(pid, &s);

	session_free(&s);
	if (r <= 0)
		return dt_err(DT_EXIT_ERROR, "process %d is not tracked (run 'dirtytrack start %d')",
			      pid, pid);
	/* the session file stays: tracking reads as lost until start or stop */
	if (s.start_time != st->start_time)
		return dt_err(DT_EXIT_GONE, "process %d is not tracked: the tracked process exited "
			      "and its pid was reused", pid);
	if (session_mm_id(st) == 0)
		return dt_err(DT_EXIT_GONE, "process %d exited", pid);
	if (s.mm_id != session_mm_id(st))
		return dt_err(DT_EXIT_GONE, "process %d exec'd a new program: tracking ended with "
			      "its old address space", pid);
	t->lost = true;
	return dt_err(DT_EXIT_ERROR, "tracking of process %d was lost: its holder (pid %d) is "
		      "gone", pid, s.holder_pid);
}

int tracker_check_access(pid_t pid)
{
	char path[64];
	DIR *d;

	proc_path(pid, "fd", path, sizeof(path));
	d = opendir(path);
	if (d) {
		closedir(d);
		return 0;
	}
	/* an exiting process refuses us too: that is "gone", not "not permitted" */
	if ((errno == EACCES || errno == EPERM) && !proc_exiting(pid))
		return dt_err_sys(DT_EXIT_PERM, "cannot read the fds of process %d", pid);
	return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
}

/* Who the target is and whether a holder of ours tracks it: 1, 0, -1. */
static int probe(struct tracker *t, pid_t pid)
{
	tracker_init(t, pid);
	if (proc_stat_read(pid, &t->stat) || tracker_check_access(pid))
		return -1;
	t->lock_fd = session_lock(pid);
	if (t->lock_fd < 0)
		return -1;
	return holder_query(pid, t->stat.start_time, &t->holder, &t->uffd);
}

static void new_session(struct tracker *t)
{
	session_free(&t->sess);
	memset(&t->sess, 0, sizeof(t->sess));
	t->sess.pid = t->pid;
	t->sess.start_time = t->stat.start_time;
	t->sess.mm_id = session_mm_id(&t->stat);
	t->sess.holder_pid = t->holder.holder_pid;
	t->sess.holder_start = t->holder.holder_start;
	t->sess.uffd_ino = t->holder.uffd_ino;
	t->sess.started_unix = t->holder.started_unix;
}

/* A holder answered: take the session it belongs to. */
static int open_tracked(struct tracker *t, enum dirty_backend b)
{
	if (session_load(t->pid, &t->sess) <= 0 || t->sess.start_time != t->stat.start_time ||
	    t->sess.uffd_ino != t->holder.uffd_ino || t->sess.holder_pid != t->holder.holder_pid) {
		/* tracked, but by a session whose record we lack: adopt it */
		new_session(t);
	}
	t->sess.mm_id = session_mm_id(&t->stat);
	if (open_common(t, t->pid, b)) {
		tracker_close(t);
		return -1;
	}
	return 0;
}

int tracker_open(pid_t pid, enum dirty_backend b, struct tracker *t)
{
	int found = probe(t, pid);

	if (found <= 0)
		tracker_unlock(t);
	if (found < 0)
		return -1;
	if (!found) {
		t->untracked = true;
		return explain_untracked(t);
	}
	return open_tracked(t, b);
}

int tracker_start(pid_t pid, enum dirty_backend b, bool pin, struct tracker *t, bool *already)
{
	struct range_set armed = RANGE_SET_INIT;
	int found = probe(t, pid), commit = -1;

	*already = false;
	if (found < 0) {
		tracker_unlock(t);
		return -1;
	}
	if (found) {
		*already = true;
		if (pin && !t->holder.pinned && holder_pin(pid, t->stat.start_time, &t->holder) < 0) {
			tracker_close(t);
			return -1;
		}
		return open_tracked(t, b);
	}
	/* the holder attaches and injects; we register, arm and record */
	if (holder_spawn(pid, t->stat.start_time, pin, &t->uffd, &commit, &t->holder)) {
		tracker_unlock(t);
		return -1;
	}
	new_session(t);
	/* register every mapping, then arm: the first collection is the baseline */
	if (open_common(t, pid, b) || tracker_collect(t, true, &armed) || tracker_inspect(t) ||
	    (t->sess.generation = 0, session_save(&t->sess)) || holder_commit(commit)) {
		struct dt_err_saved first;

		/* the holder ends with its target: say that, not how we noticed */
		if (dt_err_kind() != DT_EXIT_GONE) {
			dt_err_save(&first);
			dt_err_clear();
			explain_gone(t);
			if (dt_err_kind() != DT_EXIT_GONE)
				dt_err_restore(&first);
		}

		/* leave the target as we found it: the holder goes, and tracking with it */
		dt_err_save(&first);
		holder_abandon(commit);
		session_remove(pid);
		range_set_free(&armed);
		tracker_close(t);
		dt_err_restore(&first);
		return -1;
	}
	range_set_free(&armed);
	session_gc();
	return 0;
}

int tracker_look(pid_t pid, struct tracker *t)
{
	tracker_init(t, pid);
	t->untracked = true;
	if (proc_stat_read(pid, &t->stat) || tracker_check_access(pid) ||
	    pm_scanner_open(&t->scan, pid) || vma_list_read(pid, &t->vmas) ||
	    pinned_read(pid, &t->vmas, true, &t->pinned)) {
		tracker_close(t);
		return -1;
	}
	t->track = xcalloc(t->vmas.n ? t->vmas.n : 1, sizeof(*t->track));
	return 0;
}

int tracker_lease(struct tracker *t)
{
	int r = holder_lease(t->pid, t->stat.start_time, &t->lease_fd);

	if (r == 0)
		return dt_err(DT_EXIT_ERROR, "tracking of process %d ended meanwhile", t->pid);
	return r < 0 ? -1 : 0;
}

int tracker_holder_alive(struct tracker *t)
{
	struct pollfd p = { t->lease_fd, POLLIN, 0 };
	struct holder_info now;
	uint64_t at = now_ns();
	int r = 1;

	/*
	 * Our lease hangs up when the holder ends: a poll tells, at no cost.
	 * Its news (forks seen) is asked for at most once a second.
	 */
	if (t->lease_fd >= 0 && poll(&p, 1, 0) == 0 && at - t->holder_asked_ns < 1000000000ULL)
		return 0;
	t->holder_asked_ns = at;
	r = holder_query(t->pid, t->stat.start_time, &now, NULL);
	if (r < 0)
		return -1;
	if (r == 0 || now.uffd_ino != t->holder.uffd_ino || p.revents) {
		/* the holder ends with its target: exit and exec say so themselves */
		dt_err_clear();
		explain_gone(t);
		if (dt_err_kind() == DT_EXIT_GONE)
			return -1;
		return dt_err(DT_EXIT_ERROR, "tracking of process %d ended: its holder (pid %d) is gone "
			      "(tracking was stopped, or the holder killed)", t->pid,
			      t->holder.holder_pid);
	}
	t->holder = now;
	return 0;
}

int tracker_end_auto(struct tracker *t)
{
	struct holder_info now;
	int r;

	/* the last lease on tracking nobody pinned: end it now, and its record */
	r = holder_query(t->pid, t->stat.start_time, &now, NULL);
	if (r <= 0 || now.pinned || now.leases > 1 || now.uffd_ino != t->holder.uffd_ino)
		return r < 0 ? -1 : 0;
	r = tracker_stop(t->pid);
	return r < 0 ? -1 : 0;
}

int tracker_stop(pid_t pid)
{
	struct proc_stat st;
	int r, lock;

	if (proc_stat_read(pid, &st) || tracker_check_access(pid))
		return -1;
	/* stop does not depend on the state directory: without it, no lock */
	lock = session_lock(pid);
	dt_err_clear();
	r = holder_stop(pid, st.start_time);
	if (r >= 0)
		session_remove(pid);
	session_unlock(lock);
	/* the state directory does not grow with every process ever tracked */
	session_gc();
	return r;
}

/* smaps VmFlags: what maps cannot say (device memory, may-write). */
static int read_vmflags(pid_t pid, struct vma_list *l, char (*flags)[96])
{
	char path[64], *buf;

	proc_path(pid, "smaps", path, sizeof(path));
	buf = read_file(path, NULL);
	if (!buf)
		return dt_err_sys(0, "%s", path);
	proc_smaps_vmflags(buf, l, flags);
	free(buf);
	return 0;
}

static bool has_flag(const char *flags, const char *f)
{
	char pat[8];

	snprintf(pat, sizeof(pat), " %s ", f);
	return strstr(flags, pat) != NULL;
}

int tracker_inspect(struct tracker *t)
{
	char (*flags)[96] = xcalloc(t->vmas.n ? t->vmas.n : 1, sizeof(*flags));

	if (read_vmflags(t->pid, &t->vmas, flags)) {
		free(flags);
		return -1;
	}
	for (size_t i = 0; i < t->vmas.n; i++) {
		struct vma_track *vt = &t->track[i];

		if (t->vmas.v[i].kind == VMA_SPECIAL)
			continue;
		if (has_flag(flags[i], "pf") || has_flag(flags[i], "io")) {
			vt->state = VMA_SKIPPED;
			vt->reason = "device memory (VM_PFNMAP/VM_IO)";
		} else if (vt->state == VMA_NEW && t->vmas.v[i].shared &&
			   !has_flag(flags[i], "mw") && t->vmas.v[i].kind == VMA_FILE_SHARED) {
			vt->state = VMA_SKIPPED;
			vt->reason = register_reason(EPERM);
		}
	}
	free(flags);
	return 0;
}

void tracker_dirty_by_kind(const struct tracker *t, const struct range_set *dirty,
			   uint64_t pages[VMA_KIND_COUNT])
{
	memset(pages, 0, sizeof(uint64_t) * VMA_KIND_COUNT);
	range_set_for_each(r, dirty) {
		for (uint64_t a = r->start; a < r->end;) {
			const struct vma *v = vma_list_find(&t->vmas, a);
			uint64_t end;

			if (!v) {
				a += PAGE_SIZE;
				continue;
			}
			end = v->end < r->end ? v->end : r->end;
			pages[v->kind] += (end - a) / PAGE_SIZE;
			a = end;
		}
	}
}
