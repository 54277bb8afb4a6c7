// SPDX-License-Identifier: MIT
/*
 * dump: the pipeline target -> tracker (collect) -> dirty ranges -> content
 * and plan -> page reader -> sink -> image files.  A full dump stores every
 * page with content; an incremental one stores the pages written since its
 * parent and points at the parent for the rest, only where the parent
 * really holds them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/statvfs.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/dump.h"
#include "lib/err.h"
#include "image/chain.h"
#include "image/dumpdir.h"
#include "image/meta.h"
#include "image/sink.h"
#include "lib/util.h"
#include "pagemap/content.h"
#include "tracker/memread.h"
#include "tracker/seize.h"
#include "tracker/tracker.h"

struct dump_job {
	struct dump_request a;
	struct tracker t;
	struct dump_chain parent;	/* empty for a full dump */
	struct dump_identity parent_id;
	struct dump_identity id;
	struct dump_dir dir;
	struct dir_sink sink;
	struct seized frozen;
	bool is_frozen;
	struct thread_regs *regs;
	int nregs;
	struct sigqueue shared;		/* the process's pending signals, when frozen */
	struct range_set dirty, content, shmem, present, in_parent;
	struct dump_stats stats;
	const char *note;		/* why a full dump was taken */
	bool started_tracking;		/* tracking was off: this dump turned it on */
	uint64_t vanished;		/* pages unmapped while a running target was read */
	uint64_t copied, to_copy;	/* bytes, for the progress callback */
};

static void set_free_all(struct dump_job *j)
{
	range_set_free(&j->dirty);
	range_set_free(&j->content);
	range_set_free(&j->shmem);
	range_set_free(&j->present);
	range_set_free(&j->in_parent);
}

/*
 * The parent must be the last dump of this very tracking session, with no
 * collection since: only then is "not written since" the same as "as in
 * the parent".
 */
static const char *parent_mismatch(const struct dump_job *j)
{
	const struct dump_identity *p = &j->parent_id;
	const struct session *s = &j->t.sess;

	if (p->pid != j->t.pid)
		return "it is a dump of another process";
	if (p->start_time != j->t.stat.start_time)
		return "it is a dump of an earlier process with the same pid";
	if (p->uffd_ino != s->uffd_ino)
		return "it was taken in another tracking session (tracking was restarted since)";
	if (s->pending)
		return "a collection for a dump that never completed consumed the written pages "
		       "since (a dump killed or failed half way)";
	if (p->generation != s->generation)
		return "it is not the latest collection of this session (another dump or a watch "
		       "consumed the written pages since)";
	if (s->last_dump[0] && strcmp(s->last_dump, p->id))
		return "it is not the last dump of this session";
	return NULL;
}

static int open_parent(struct dump_job *j)
{
	const char *why;

	if (chain_open_tip(&j->parent, j->a.parent) || meta_read_identity(&j->parent.d[0], &j->parent_id))
		return -1;
	why = parent_mismatch(j);
	if (!why)
		return 0;
	if (!j->a.full_if_needed)
		return dt_err(DT_EXIT_ERROR, "cannot dump incrementally on %s: %s%s", j->a.parent, why,
			      command_has_option("full-if-needed")
				      ? " (use --full-if-needed to take a full dump instead)" : "");
	j->note = why;
	chain_close(&j->parent);
	return 0;
}

/* A full dump needs about the process's anonymous and shared memory. */
static int check_space(struct dump_job *j)
{
	uint64_t anon = 0, shmem = 0;
	struct statvfs fs;
	uint64_t need, avail;
	char a[32], b[32];

	if (j->a.parent || fstatvfs(j->dir.fd, &fs))
		return 0;
	if (proc_status_read(j->a.pid, "RssAnon", 10, &anon) < 0 ||
	    proc_status_read(j->a.pid, "RssShmem", 10, &shmem) < 0)
		return -1;
	need = (anon + shmem) * 1024;
	avail = (uint64_t)fs.f_bavail * fs.f_frsize;
	if (need <= avail)
		return 0;
	human_size(need, a, sizeof(a));
	human_size(avail, b, sizeof(b));
	return dt_err(DT_EXIT_ERROR, "not enough free space for %s: the dump needs about %s, %s "
		      "are free", j->a.dir, a, b);
}

static int open_tracking(struct dump_job *j)
{
	bool already = true;
	int err;

	if (!j->a.parent) {
		err = tracker_start(j->a.pid, j->a.backend, true, &j->t, &already);
	} else if (tracker_open(j->a.pid, j->a.backend, &j->t)) {
		if (!j->t.untracked || !j->a.full_if_needed)
			return -1;
		j->note = j->t.lost ? "tracking was lost (its holder is gone)"
				    : "the process was not tracked";
		err = tracker_start(j->a.pid, j->a.backend, true, &j->t, &already);
	} else {
		return open_parent(j);
	}
	j->started_tracking = !err && !already;
	return err;
}

static int freeze(struct dump_job *j)
{
	uint64_t t0 = now_ns();

	if (seize_all(j->a.pid, &j->frozen))
		return -1;
	j->is_frozen = true;
	j->stats.freezing_us = (now_ns() - t0) / 1000;
	j->regs = xcalloc(j->frozen.n, sizeof(*j->regs));
	j->nregs = j->frozen.n;
	for (int i = 0; i < j->frozen.n; i++) {
		struct thread_regs *r = &j->regs[i];

		r->tid = j->frozen.tids[i];
		r->valid = ptrace(PTRACE_GETREGS, r->tid, 0, &r->regs) == 0 &&
			   ptrace(PTRACE_GETFPREGS, r->tid, 0, &r->fpregs) == 0;
	}
	return 0;
}

/* What is pending as we let go: it stays pending; the dump says what it was. */
static int peek_pending(struct dump_job *j)
{
	for (int i = 0; i < j->nregs; i++) {
		struct thread_regs *r = &j->regs[i];

		r->pending.n = seize_peek_signals(r->tid, false, &r->pending.sig);
		if (r->pending.n < 0)
			return -1;
	}
	j->shared.n = seize_peek_signals(j->regs[0].tid, true, &j->shared.sig);
	return j->shared.n < 0 ? -1 : 0;
}

static int stop_and_peek(struct dump_job *j)
{
	/* left stopped: into group stop first, so that the record is the final word */
	if (j->a.leave_stopped && seize_group_stop(&j->frozen))
		return dt_err(DT_EXIT_ERROR, "process %d could not be left in group stop",
			      j->a.pid);
	return peek_pending(j);
}

static void thaw(struct dump_job *j, uint64_t frozen_at)
{
	if (!j->is_frozen)
		return;
	seize_release(&j->frozen, j->a.leave_stopped);
	j->is_frozen = false;
	j->stats.frozen_us = (now_ns() - frozen_at) / 1000;
}

/*
 * The content map: walked whole for a full dump; for an incremental one,
 * the parent's plus what changed, wherever the mapping is one the parent
 * saw and tracking never lost sight of (registered all along).
 */
static int content_map(struct dump_job *j, const struct range_set *cover)
{
	for (size_t i = 0; i < j->t.vmas.n; i++) {
		const struct vma *v = &j->t.vmas.v[i];
		bool tracked = cover && j->t.track && j->t.track[i].state == VMA_TRACKED;

		if (tracked ? content_from_parent(&j->t.scan, v, cover, &j->dirty, &j->content)
			    : content_of_vma(&j->t.scan, v, &j->content))
			return -1;
		/* shared memory can change without our page tables: store it */
		if (v->kind == VMA_SHMEM && range_set_add(&j->shmem, v->start, v->end))
			die_oom();
	}
	return 0;
}

/* What to store: content, split into present and in-parent. */
static int plan(struct dump_job *j)
{
	struct range_set maybe_parent = RANGE_SET_INIT, tmp = RANGE_SET_INIT, cover = RANGE_SET_INIT;

	if (j->parent.n)
		dump_covered(&j->parent.d[0], &cover);
	if (content_map(j, j->parent.n && !j->a.no_track ? &cover : NULL)) {
		range_set_free(&cover);
		return -1;
	}
	j->stats.pages_scanned = range_set_pages(&j->content);
	if (!j->parent.n) {
		if (range_set_copy(&j->present, &j->content))
			die_oom();
		return 0;
	}
	if (range_set_subtract(&tmp, &j->content, &j->dirty) ||
	    range_set_subtract(&maybe_parent, &tmp, &j->shmem) ||
	    range_set_intersect(&j->in_parent, &maybe_parent, &cover) ||
	    range_set_subtract(&j->present, &j->content, &j->in_parent))
		die_oom();
	range_set_free(&maybe_parent);
	range_set_free(&tmp);
	range_set_free(&cover);
	j->stats.pages_skipped_parent = range_set_pages(&j->in_parent);
	return 0;
}

static int check_interrupted(const struct dump_job *j)
{
	if (j->a.interrupted && *j->a.interrupted)
		return dt_err(DT_EXIT_INTERRUPTED, "interrupted: no dump was written");
	return 0;
}

/*
 * Writes no collection can see: pinned pages count as written (the tracker
 * added them), VmPin beyond them and I/O in flight in a frozen dump are
 * warnings in the report, errors with --strict.
 */
static int check_unseen(const struct dump_job *j)
{
	struct pinned pin, *p = &pin;
	struct vma_list l;
	uint64_t unexplained;
	bool in_flight;
	int err;

	/* before the collection: a refusal must not consume the written pages */
	if (!j->a.strict)
		return 0;
	if (vma_list_read(j->a.pid, &l))
		return -1;
	err = pinned_read(j->a.pid, &l, j->is_frozen, p);
	vma_list_free(&l);
	if (err)
		return -1;
	unexplained = pinned_unattributed(p);
	in_flight = j->is_frozen && (p->io_uring_queued || p->aio_contexts);
	pinned_free(p);
	if (unexplained)
		return dt_err(DT_EXIT_ERROR, "process %d has %llu KiB of pinned memory that no "
			      "io_uring buffer explains (RDMA, vfio?): the kernel may write it unseen "
			      "(--strict)", j->a.pid, (unsigned long long)(unexplained / 1024));
	if (in_flight)
		return dt_err(DT_EXIT_ERROR, "process %d has asynchronous I/O that may be in flight "
			      "(%d io_uring submissions queued, %d Linux AIO contexts): the frozen dump "
			      "may miss its writes (--strict)", j->a.pid, p->io_uring_queued,
			      p->aio_contexts);
	return 0;
}

/* The sink's page writer, with a look at whether the user asked us to stop. */
static int put_pages(void *ctx, const void *data, size_t len)
{
	struct dump_job *j = ctx;

	if (check_interrupted(j) || sink_put_pages(&j->sink.base, data, len))
		return -1;
	j->copied += len;
	if (j->a.progress)
		j->a.progress(j->a.progress_ctx, j->copied, j->to_copy);
	return 0;
}

static int write_pages(struct dump_job *j)
{
	struct mem_reader mem;
	uint64_t t0 = now_ns();
	int err;

	if (dir_sink_open(&j->sink, j->dir.fd, j->a.pid))
		return -1;
	if (mem_reader_open(&mem, j->a.pid)) {
		j->sink.base.ops->abort(&j->sink.base);
		return -1;
	}
	j->to_copy = range_set_bytes(&j->present);
	/* the pages first: what vanished meanwhile gets no entry */
	err = mem_copy(&mem, &j->present, put_pages, j);
	if (!err && mem.gone.n) {
		struct range_set kept = RANGE_SET_INIT;

		if (j->is_frozen)
			err = dt_err(DT_EXIT_ERROR, "process %d unmapped memory while frozen",
				     j->a.pid);
		j->vanished = range_set_pages(&mem.gone);
		if (range_set_subtract(&kept, &j->present, &mem.gone))
			die_oom();
		range_set_free(&j->present);
		j->present = kept;
	}
	if (!err)
		err = sink_put_entries(&j->sink.base, &j->present, &j->in_parent);
	mem_reader_close(&mem);
	if (err) {
		j->sink.base.ops->abort(&j->sink.base);
		return -1;
	}
	j->stats.memdump_us = (now_ns() - t0) / 1000;
	t0 = now_ns();
	err = j->sink.base.ops->finish(&j->sink.base);
	j->stats.memwrite_us = (now_ns() - t0) / 1000;
	j->stats.pages_written = j->sink.base.pages_written;
	return err;
}

static int write_meta(struct dump_job *j)
{
	pid_t *tids = NULL;
	int n, err = 0;

	if (j->regs) {
		n = j->nregs;
		tids = xcalloc(n, sizeof(*tids));
		for (int i = 0; i < n; i++)
			tids[i] = j->regs[i].tid;
	} else {
		n = proc_tasks(j->a.pid, &tids);
		if (n < 0)
			return -1;
	}
	err = meta_write_inventory(j->dir.fd, &j->id) ||
	      meta_write_pstree(j->dir.fd, &j->t.stat, tids, n) ||
	      meta_write_mm(j->dir.fd, &j->t.stat, &j->t.vmas) ||
	      meta_write_stats(j->dir.fd, &j->stats);
	for (int i = 0; i < n && !err; i++) {
		struct thread_regs none = { .tid = tids[i] };

		err = meta_write_core(j->dir.fd, j->a.pid, &j->t.stat, j->regs ? &j->regs[i] : &none,
				      tids[i] == j->a.pid ? &j->shared : NULL);
	}
	free(tids);
	if (!err && j->parent.n)
		err = dump_dir_link_parent(&j->dir, j->parent.d[0].path);
	return err ? -1 : 0;
}

static void fill_identity(struct dump_job *j)
{
	struct dump_identity *id = &j->id;

	id->pid = j->a.pid;
	id->start_time = j->t.stat.start_time;
	id->uffd_ino = j->t.sess.uffd_ino;
	id->generation = j->t.sess.generation;
	id->full = !j->parent.n;
	id->iteration = j->parent.n ? j->parent_id.iteration + 1 : 1;
	if (j->parent.n)
		snprintf(id->parent_id, sizeof(id->parent_id), "%s", j->parent_id.id);
	dump_identity_new_id(id->id);
	id->frozen = j->a.freeze || j->a.leave_stopped;
	snprintf(id->scan, sizeof(id->scan), "%s", dirty_backend_name(j->a.backend));
	id->dump_unix = (uint64_t)time(NULL);
}


static void fill_report(const struct dump_job *j, struct dump_report *rep, uint64_t total_ns)
{
	memset(rep, 0, sizeof(*rep));
	snprintf(rep->dir, sizeof(rep->dir), "%s", j->dir.final);
	if (j->parent.n)
		snprintf(rep->parent, sizeof(rep->parent), "%s", j->parent.d[0].path);
	rep->id = j->id;
	rep->full_because = j->note;
	rep->pages_dirty = range_set_pages(&j->dirty);
	rep->pages_scanned = j->stats.pages_scanned;
	rep->pages_present = range_set_pages(&j->present);
	rep->pages_parent = range_set_pages(&j->in_parent);
	rep->pages_written = j->stats.pages_written;
	rep->pages_vanished = j->vanished;
	rep->freeze_us = j->stats.frozen_us;
	rep->collect_ns = j->t.collect_ns;
	rep->total_ns = total_ns;
	rep->left_stopped = j->a.leave_stopped;
	rep->started_tracking = j->started_tracking;
	rep->pinned_pages = range_set_pages(&j->t.pinned.ranges);
	rep->pinned_unattributed = pinned_unattributed(&j->t.pinned);
	if (j->id.frozen) {
		rep->io_uring_queued = j->t.pinned.io_uring_queued;
		rep->aio_contexts = j->t.pinned.aio_contexts;
	}
}

static void job_free(struct dump_job *j)
{
	set_free_all(j);
	chain_close(&j->parent);
	tracker_close(&j->t);
	for (int i = 0; i < j->nregs; i++)
		free(j->regs[i].pending.sig);
	free(j->regs);
	free(j->shared.sig);
}

int dump_run(const struct dump_request *rq, struct dump_report *rep)
{
	struct dump_job j = { 0 };
	uint64_t t0 = now_ns(), frozen_at = 0;

	j.a = *rq;
	j.dir.fd = -1;
	/* permission first, then the directory, and only then tracking */
	if (tracker_check_access(j.a.pid) || dump_dir_begin(&j.dir, j.a.dir, j.a.make_parent_dir) ||
	    check_space(&j) || (j.a.no_track ? tracker_look(j.a.pid, &j.t) : open_tracking(&j)))
		goto fail;
	j.t.hold_journal = true;
	j.t.want_io = j.a.freeze || j.a.leave_stopped;
	if (j.a.freeze || j.a.leave_stopped) {
		frozen_at = now_ns();
		if (freeze(&j))
			goto fail;
	}
	if (check_interrupted(&j) || check_unseen(&j) ||
	    (!j.a.no_track && tracker_collect(&j.t, true, &j.dirty)) ||
	    plan(&j) ||
	    write_pages(&j) || (j.is_frozen && stop_and_peek(&j)))
		goto fail;
	thaw(&j, frozen_at);
	fill_identity(&j);
	if (write_meta(&j))
		goto fail;
	dt_fault_point("before-rename");
	if (dump_dir_commit(&j.dir))
		goto fail;
	/* durable: only now are the collected pages recorded as in a dump */
	if (!j.a.no_track && tracker_complete(&j.t, j.id.id))
		goto fail_committed;
	fill_report(&j, rep, now_ns() - t0);
	job_free(&j);
	return 0;
fail:
	/* the target goes on as it was; no dump is left behind */
	{
		struct dt_err_saved first;

		dt_err_save(&first);
		j.a.leave_stopped = false;
		thaw(&j, frozen_at);
		dump_dir_abort(&j.dir);
		dt_err_restore(&first);
	}
fail_committed:
	job_free(&j);
	/* a dump that turned tracking on and failed turns it off again */
	if (j.started_tracking) {
		struct dt_err_saved first;

		dt_err_save(&first);
		tracker_stop(j.a.pid);
		dt_err_restore(&first);
	}
	return -1;
}
