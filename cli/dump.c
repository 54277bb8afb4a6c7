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
#include <time.h>

#include "cli/args.h"
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
	struct seized frozen;
	bool is_frozen;
	struct thread_regs *regs;
	int nregs;
	struct range_set dirty, content, shmem, present, in_parent;
	struct dump_stats stats;
	const char *note;		/* why a full dump was taken */
	bool started_tracking;		/* tracking was off: this dump turned it on */
	uint64_t vanished;
	struct dir_sink *sink;		/* while the pages are written */
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
	if (p->generation != s->generation)
		return "it is not the latest collection of this session (another dump or a watch "
		       "consumed the written pages since)";
	return NULL;
}

static int open_parent(struct dump_job *j)
{
	const char *why;

	if (chain_open(&j->parent, j->a.parent) || meta_read_identity(&j->parent.d[0], &j->parent_id))
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

static int open_tracking(struct dump_job *j)
{
	bool already = true;
	int err;

	if (!j->a.parent) {
		err = tracker_start(j->a.pid, j->a.backend, &j->t, &already);
	} else if (tracker_open(j->a.pid, j->a.backend, &j->t)) {
		if (!j->t.untracked || !j->a.full_if_needed)
			return -1;
		j->note = "the process was not tracked";
		err = tracker_start(j->a.pid, j->a.backend, &j->t, &already);
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

static void thaw(struct dump_job *j, uint64_t frozen_at)
{
	if (!j->is_frozen)
		return;
	seize_release(&j->frozen, j->a.leave_stopped);
	j->is_frozen = false;
	j->stats.frozen_us = (now_ns() - frozen_at) / 1000;
}

/* What to store: content, split into present and in-parent. */
static int plan(struct dump_job *j)
{
	struct range_set maybe_parent = RANGE_SET_INIT, tmp = RANGE_SET_INIT, cover = RANGE_SET_INIT;

	for (size_t i = 0; i < j->t.vmas.n; i++) {
		const struct vma *v = &j->t.vmas.v[i];

		if (content_of_vma(&j->t.scan, v, &j->content))
			return -1;
		/* shared memory can change without our page tables: store it */
		if (v->kind == VMA_SHMEM && range_set_add(&j->shmem, v->start, v->end))
			die_oom();
	}
	j->stats.pages_scanned = range_set_pages(&j->content);
	if (!j->parent.n) {
		if (range_set_copy(&j->present, &j->content))
			die_oom();
		return 0;
	}
	dump_covered(&j->parent.d[0], &cover);
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

/* The copy loop's put: into the sink, counting the bytes for the progress callback. */
static int put_pages(void *ctx, const void *data, size_t len)
{
	struct dump_job *j = ctx;

	if (sink_put_pages(&j->sink->base, data, len))
		return -1;
	j->copied += len;
	if (j->a.progress)
		j->a.progress(j->a.progress_ctx, j->copied, j->to_copy);
	return 0;
}

static int write_pages(struct dump_job *j)
{
	struct dir_sink sink;
	struct mem_reader mem;
	uint64_t t0 = now_ns();
	int err;

	if (dir_sink_open(&sink, j->dir.fd, j->a.pid))
		return -1;
	if (mem_reader_open(&mem, j->a.pid)) {
		sink.base.ops->abort(&sink.base);
		return -1;
	}
	j->sink = &sink;
	j->to_copy = range_set_bytes(&j->present);
	err = sink_put_entries(&sink.base, &j->present, &j->in_parent);
	if (!err)
		err = mem_copy(&mem, &j->present, put_pages, j);
	j->vanished = mem.vanished;
	mem_reader_close(&mem);
	if (err) {
		sink.base.ops->abort(&sink.base);
		return -1;
	}
	j->stats.memdump_us = (now_ns() - t0) / 1000;
	t0 = now_ns();
	err = sink.base.ops->finish(&sink.base);
	j->stats.memwrite_us = (now_ns() - t0) / 1000;
	j->stats.pages_written = sink.base.pages_written;
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

		err = meta_write_core(j->dir.fd, j->a.pid, &j->t.stat, j->regs ? &j->regs[i] : &none);
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
}

static void job_free(struct dump_job *j)
{
	set_free_all(j);
	chain_close(&j->parent);
	tracker_close(&j->t);
	free(j->regs);
}

int dump_run(const struct dump_request *rq, struct dump_report *rep)
{
	struct dump_job j = { 0 };
	uint64_t t0 = now_ns(), frozen_at = 0;

	j.a = *rq;
	j.dir.fd = -1;
	if (open_tracking(&j) || dump_dir_begin(&j.dir, j.a.dir))
		goto fail_early;
	if (j.a.freeze || j.a.leave_stopped) {
		frozen_at = now_ns();
		if (freeze(&j))
			goto fail;
	}
	if (tracker_collect(&j.t, true, &j.dirty) || plan(&j) || write_pages(&j))
		goto fail;
	thaw(&j, frozen_at);
	fill_identity(&j);
	if (write_meta(&j) || dump_dir_commit(&j.dir))
		goto fail;
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
fail_early:
	job_free(&j);
	return -1;
}
