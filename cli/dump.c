// SPDX-License-Identifier: MIT
/*
 * dump: the pipeline target -> tracker (collect) -> dirty ranges -> content
 * and plan -> page reader -> sink -> image files, for a tree of processes
 * (one, without --tree).  A full dump stores every page with content; an
 * incremental one stores the pages written since its parent and points at
 * the parent for the rest, only where the parent really holds them.
 *
 * Each process has its private memory in pagemap-PID.img; each shared
 * object (shared anonymous memory, SysV, memfd, /dev/shm) is stored once
 * for the whole tree in pagemap-shmem-SHMID.img, by offset in the object.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/dump.h"
#include "lib/err.h"
#include "image/chain.h"
#include "image/dumpdir.h"
#include "image/meta.h"
#include "image/sink.h"
#include "lib/util.h"
#include "mm.pb-c.h"
#include "pagemap/content.h"
#include "pstree.pb-c.h"
#include "tracker/memread.h"
#include "tracker/seize.h"
#include "tracker/tracker.h"
#include "tracker/tree.h"

/* A pagemap whose pages wait in the stage until the tree is thawed. */
struct deferred {
	struct dir_sink dir;
	struct stage_sink staged;
	const struct range_set *present, *in_parent;
	uint64_t *written;
};

/* One process of the tree. */
struct proc_job {
	pid_t pid;
	int index;			/* in the job's tree */
	struct tracker t;
	bool tracked;			/* t is a tracking session (not a look) */
	bool started_tracking;		/* tracking was off: this dump turned it on */
	bool full;			/* stored whole: no page in the parent */
	const char *note;		/* why it is stored whole, when it could have been not */
	const struct dump_proc *in_parent_dump;	/* the same process in the parent, if any */
	struct seized frozen;
	bool is_frozen;
	struct thread_regs *regs;
	int nregs;
	struct sigqueue shared;		/* the process's pending signals, when frozen */
	struct range_set dirty, content, present, in_parent;
	struct range_set cover;		/* what its pagemap in the parent holds (incremental) */
	uint64_t vanished;		/* pages unmapped while a running target was read */
	uint64_t pages_written, pages_scanned;
	bool gone;			/* exited during the dump: left out */
	struct mem_reader mem;		/* its pages' reader, once opened (mem.buf set) */
	uint32_t pages_id;		/* of its pagemap, once written (0: none) */
	bool forks_known;		/* the holder counted every fork (process events) */
	uint64_t forks;			/* ... as of the collection */
};

/* Where a shared object shows: a mapping of one process. */
struct shm_window {
	int proc;
	uint64_t start, end, pgoff;
};

struct shm_obj {
	uint64_t shmid;			/* the inode */
	unsigned int dev_major, dev_minor;
	bool sysv, anon;		/* SysV segment; shared anonymous memory */
	struct shm_window *w;
	int nw;
	struct range_set content, dirty, present, in_parent;	/* offsets in the object */
	struct range_set seen;		/* offsets whose content was looked at */
	bool exact;			/* its holes are known (we can open the object) */
	bool incremental;		/* written pages known: the rest is in the parent */
	const char *whole_because;	/* why not */
	uint64_t vanished, pages_written;
};

struct dump_job {
	struct dump_request a;
	struct proc_tree tree;
	struct proc_job **p;		/* each its own: a tracker must not move */
	int n;
	struct shm_obj *shm;
	int nshm;
	struct dump_chain parent;	/* empty for a full dump */
	struct dump_identity parent_id;
	struct dump_identity id;
	struct dump_dir dir;
	bool is_frozen;
	struct dump_stats stats;
	const char *note;		/* why the root is stored whole */
	uint64_t copied, to_copy;	/* bytes, for the progress callback */
	struct page_sink *out;		/* where put_pages sends the pages now */
	uint32_t next_pages_id;
	struct page_stage stage;	/* frozen incremental dumps: pages held until thawed */
	struct deferred **deferred;	/* pagemaps finished once the tree runs again */
	int ndeferred;
};

static void set_add(struct range_set *s, uint64_t start, uint64_t end)
{
	if (range_set_add(s, start, end))
		die_oom();
}

/*
 * The parent must be the last dump of this very tracking session, with no
 * collection since: only then is "not written since" the same as "as in
 * the parent".
 */
static const char *parent_mismatch(const struct proc_job *pj, const PstreeEntry *pe,
				   const char *parent_dump_id)
{
	const struct session *s = &pj->t.sess;

	if (!pe->has_dt_uffd_ino || !pe->dt_uffd_ino)
		return "it was taken without a tracking session (--no-track, or not tracked then)";
	if (pe->dt_uffd_ino != s->uffd_ino)
		return "it was taken in another tracking session (tracking was restarted since)";
	if (s->pending)
		return "a collection for a dump that never completed consumed the written pages "
		       "since (a dump killed or failed half way)";
	if (pe->dt_generation != s->generation)
		return "it is not the latest collection of this session (another dump or a watch "
		       "consumed the written pages since)";
	if (s->last_dump[0] && strcmp(s->last_dump, parent_dump_id))
		return "it is not the last dump of this session";
	return NULL;
}

static int open_parent(struct dump_job *j)
{
	struct proc_stat st;

	if (chain_open_tip(&j->parent, j->a.parent) ||
	    meta_read_identity(&j->parent.d[0], &j->parent_id))
		return -1;
	if (proc_stat_read(j->a.pid, &st))
		return -1;
	if (j->parent_id.pid != j->a.pid || j->parent_id.start_time != st.start_time) {
		const char *why = j->parent_id.pid != j->a.pid
					  ? "it is a dump of another process"
					  : "it is a dump of an earlier process with the same pid";

		if (!j->a.full_if_needed)
			return dt_err(DT_EXIT_ERROR, "cannot dump incrementally on %s: %s%s",
				      j->a.parent, why, command_has_option("full-if-needed")
				      ? " (use --full-if-needed to take a full dump instead)" : "");
		j->note = why;
		chain_close(&j->parent);
	}
	return 0;
}

/* A full dump needs about the tree's anonymous and shared memory. */
static int check_space(struct dump_job *j)
{
	uint64_t need = 0, avail;
	struct statvfs fs;
	char a[32], b[32];

	if (j->a.parent || fstatvfs(j->dir.fd, &fs))
		return 0;
	for (int i = 0; i < j->tree.n; i++) {
		uint64_t anon = 0, shmem = 0;

		if (proc_status_read(j->tree.p[i].pid, "RssAnon", 10, &anon) < 0 ||
		    proc_status_read(j->tree.p[i].pid, "RssShmem", 10, &shmem) < 0) {
			if (i && dt_err_kind() == DT_EXIT_GONE)
				continue;
			return -1;
		}
		need += (anon + shmem) * 1024;
	}
	avail = (uint64_t)fs.f_bavail * fs.f_frsize;
	if (need <= avail)
		return 0;
	human_size(need, a, sizeof(a));
	human_size(avail, b, sizeof(b));
	return dt_err(DT_EXIT_ERROR, "not enough free space for %s: the dump needs about %s, %s "
		      "are free", j->a.dir, a, b);
}

static int start_tracking(struct dump_job *j, struct proc_job *pj)
{
	bool already = true;
	int err = tracker_start(pj->pid, j->a.backend, true, &pj->t, &already);

	pj->tracked = !err;
	pj->started_tracking = !err && !already;
	pj->full = true;
	return err;
}

/*
 * One process's tracking, and whether it can be dumped incrementally:
 * only the very process of the parent dump, in the same session, right
 * after the parent's collection.  The root follows the user's word
 * (--full-if-needed); a process new in the tree is simply stored whole.
 */
static int open_tracking(struct dump_job *j, struct proc_job *pj, bool root)
{
	const struct dump_proc *pp = NULL;
	const char *why;

	if (j->a.no_track) {
		pj->full = true;
		return tracker_look(pj->pid, &pj->t);
	}
	if (!j->parent.n)
		return start_tracking(j, pj);
	pp = dump_proc_find(&j->parent.d[0], (unsigned int)pj->pid);
	if (!root && (!pp || !pp->pstree->has_dt_start_time ||
		      pp->pstree->dt_start_time != j->tree.p[pj->index].start_time)) {
		pj->note = "new in the tree since the parent dump";
		return start_tracking(j, pj);
	}
	if (tracker_open(pj->pid, j->a.backend, &pj->t)) {
		if (!pj->t.untracked)
			return -1;
		why = pj->t.lost ? "tracking was lost (its holder is gone)"
				 : "the process was not tracked";
		if (root && !j->a.full_if_needed)
			return -1;
		tracker_close(&pj->t);
		pj->note = why;
		if (root)
			chain_close(&j->parent);
		return start_tracking(j, pj);
	}
	pj->tracked = true;
	why = pp ? parent_mismatch(pj, pp->pstree, j->parent_id.id)
		 : "it is not in the parent dump";
	if (!why) {
		pj->in_parent_dump = pp;
		return 0;
	}
	if (!j->a.full_if_needed) {
		const char *hint = command_has_option("full-if-needed")
					   ? " (use --full-if-needed to take a full dump instead)" : "";

		if (root)
			return dt_err(DT_EXIT_ERROR, "cannot dump incrementally on %s: %s%s",
				      j->a.parent, why, hint);
		return dt_err(DT_EXIT_ERROR, "cannot dump process %d of the tree incrementally on "
			      "%s: %s%s", pj->pid, j->a.parent, why, hint);
	}
	pj->note = why;
	pj->full = true;
	/* the root stored whole: a full dump, with no parent at all */
	if (root)
		chain_close(&j->parent);
	return 0;
}

static struct proc_job *add_proc(struct dump_job *j, pid_t pid)
{
	struct proc_job *pj;

	j->p = xrealloc(j->p, (size_t)(j->n + 1) * sizeof(*j->p));
	pj = j->p[j->n] = xcalloc(1, sizeof(*pj));
	pj->index = j->n++;
	pj->pid = pid;
	pj->t.lock_fd = pj->t.lease_fd = pj->t.uffd = pj->t.scan.fd = -1;
	pj->t.pid = pid;
	return pj;
}

/* A process of the tree (not the root) that exits meanwhile just leaves it. */
static bool left_the_tree(struct proc_job *pj, int i)
{
	if (!i || dt_err_kind() != DT_EXIT_GONE)
		return false;
	dt_err_clear();
	pj->gone = true;
	return true;
}

static int open_all(struct dump_job *j)
{
	/* all or nothing: every process must be ours before any is injected */
	for (int i = 1; i < j->tree.n; i++)
		if (tracker_check_access(j->tree.p[i].pid) && dt_err_kind() != DT_EXIT_GONE) {
			dt_err_prefix("process %d of the tree of %d: ", j->tree.p[i].pid, j->a.pid);
			return -1;
		}
	dt_err_clear();
	for (int i = 0; i < j->tree.n; i++) {
		struct proc_job *pj = add_proc(j, j->tree.p[i].pid);

		if (i && tracker_check_access(pj->pid)) {
			if (left_the_tree(pj, i))
				continue;
			dt_err_prefix("process %d of the tree of %d: ", pj->pid, j->a.pid);
			return -1;
		}
		if (open_tracking(j, pj, i == 0)) {
			if (left_the_tree(pj, i))
				continue;
			return -1;
		}
		pj->t.hold_journal = true;
		pj->t.want_io = j->a.freeze || j->a.leave_stopped;
	}
	if (j->note && !j->p[0]->note)
		j->p[0]->note = j->note;
	return 0;
}

#define STAGE_SLACK (4ULL << 20)
#define STAGE_MAX (1ULL << 30)

/*
 * A frozen incremental dump copies its pages into memory made ready now,
 * while the tree runs, and writes them once it runs again: the frozen time
 * is the copy, not the file system.  Sized by a look at what was written so
 * far (it counts, it does not consume); pages beyond it are written
 * straight away, frozen.
 */
static int prepare_stage(struct dump_job *j)
{
	uint64_t bytes = 0, avail = 0;

	if (!(j->a.freeze || j->a.leave_stopped) || !j->parent.n || j->a.no_track)
		return 0;
	for (int i = 0; i < j->n; i++) {
		struct proc_job *pj = j->p[i];
		uint64_t b;

		if (pj->gone || !pj->tracked || !pj->in_parent_dump)
			continue;
		/* a failed look is only a smaller stage: the collection will say why */
		if (tracker_estimate_written(&pj->t, &b) == 0)
			bytes += b;
		dt_err_clear();
	}
	bytes = bytes + bytes / 4 + STAGE_SLACK;
	{
		char *mi = read_file("/proc/meminfo", NULL);

		if (mi && proc_status_field(mi, "MemAvailable", 10, &avail))
			avail *= 1024;
		free(mi);
	}
	if (bytes > STAGE_MAX)
		bytes = STAGE_MAX;
	if (avail && bytes > avail / 4)
		bytes = avail / 4;
	/* no room: the pages go to the files while frozen, as without a stage */
	if (page_stage_init(&j->stage, bytes))
		dt_err_clear();
	return 0;
}

static int freeze_one(struct proc_job *pj)
{
	if (seize_all(pj->pid, &pj->frozen))
		return -1;
	pj->is_frozen = true;
	pj->regs = xcalloc(pj->frozen.n, sizeof(*pj->regs));
	pj->nregs = pj->frozen.n;
	for (int i = 0; i < pj->frozen.n; i++) {
		struct thread_regs *r = &pj->regs[i];

		r->tid = pj->frozen.tids[i];
		r->valid = ptrace(PTRACE_GETREGS, r->tid, 0, &r->regs) == 0 &&
			   ptrace(PTRACE_GETFPREGS, r->tid, 0, &r->fpregs) == 0;
	}
	record_backtraces(pj->pid, pj->regs, pj->nregs);
	return 0;
}

/*
 * The whole tree stops before any memory is read.  A child forked before
 * its parent stopped is found by a walk after and stopped too: it is
 * stored whole, untracked (its parent's tracer is us, now).
 */
static int freeze(struct dump_job *j)
{
	uint64_t t0 = now_ns();

	for (int i = 0; i < j->n; i++) {
		if (j->p[i]->gone)
			continue;
		if (freeze_one(j->p[i])) {
			if (left_the_tree(j->p[i], i))
				continue;
			return -1;
		}
	}
	j->is_frozen = true;
	while (j->a.tree) {
		struct proc_tree now;
		int before = j->n;

		if (tree_scan(j->a.pid, &now))
			return -1;
		for (int k = 0; k < now.n; k++) {
			struct proc_job *pj;
			bool known = false;

			for (int i = 0; i < j->n && !known; i++)
				known = j->p[i]->pid == now.p[k].pid && !j->p[i]->gone;
			if (known)
				continue;
			tree_append(&j->tree, &now.p[k]);
			pj = add_proc(j, now.p[k].pid);
			pj->full = true;
			pj->note = "forked while the tree was being stopped";
			if (tracker_look(pj->pid, &pj->t) || freeze_one(pj)) {
				if (!left_the_tree(pj, j->n - 1)) {
					tree_free(&now);
					return -1;
				}
			}
		}
		tree_free(&now);
		if (j->n == before)
			break;
	}
	j->stats.freezing_us = (now_ns() - t0) / 1000;
	return 0;
}

/* What is pending as we let go: it stays pending; the dump says what it was. */
static int peek_pending(struct proc_job *pj)
{
	for (int i = 0; i < pj->nregs; i++) {
		struct thread_regs *r = &pj->regs[i];

		r->pending.n = seize_peek_signals(r->tid, false, &r->pending.sig);
		if (r->pending.n < 0)
			return -1;
	}
	pj->shared.n = seize_peek_signals(pj->regs[0].tid, true, &pj->shared.sig);
	return pj->shared.n < 0 ? -1 : 0;
}

static int stop_and_peek(struct dump_job *j)
{
	for (int i = 0; i < j->n; i++) {
		struct proc_job *pj = j->p[i];

		if (!pj->is_frozen)
			continue;
		/* left stopped: into group stop first, so that the record is the final word */
		if (j->a.leave_stopped && seize_group_stop(&pj->frozen))
			return dt_err(DT_EXIT_ERROR, "process %d could not be left in group stop",
				      pj->pid);
		if (peek_pending(pj))
			return -1;
	}
	return 0;
}

static void thaw(struct dump_job *j, uint64_t frozen_at)
{
	if (!j->is_frozen)
		return;
	for (int i = 0; i < j->n; i++)
		if (j->p[i]->is_frozen) {
			seize_release(&j->p[i]->frozen, j->a.leave_stopped);
			j->p[i]->is_frozen = false;
		}
	j->is_frozen = false;
	j->stats.frozen_us = (now_ns() - frozen_at) / 1000;
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
static int check_unseen(const struct dump_job *j, const struct proc_job *pj)
{
	struct pinned pin, *p = &pin;
	struct vma_list l;
	uint64_t unexplained;
	bool in_flight;
	int err;

	/* before the collection: a refusal must not consume the written pages */
	if (!j->a.strict)
		return 0;
	if (vma_list_read(pj->pid, &l))
		return -1;
	err = pinned_read(pj->pid, &l, pj->is_frozen, p);
	vma_list_free(&l);
	if (err)
		return -1;
	unexplained = pinned_unattributed(p);
	in_flight = pj->is_frozen && (p->io_uring_queued || p->aio_contexts);
	pinned_free(p);
	if (unexplained)
		return dt_err(DT_EXIT_ERROR, "process %d has %llu KiB of pinned memory that no "
			      "io_uring buffer explains (RDMA, vfio?): the kernel may write it unseen "
			      "(--strict)", pj->pid, (unsigned long long)(unexplained / 1024));
	if (in_flight)
		return dt_err(DT_EXIT_ERROR, "process %d has asynchronous I/O that may be in flight "
			      "(%d io_uring submissions queued, %d Linux AIO contexts): the frozen dump "
			      "may miss its writes (--strict)", pj->pid, p->io_uring_queued,
			      p->aio_contexts);
	return 0;
}

static int collect(struct dump_job *j)
{
	for (int i = 0; i < j->n; i++) {
		struct proc_job *pj = j->p[i];

		if (pj->gone)
			continue;
		if (check_interrupted(j) || check_unseen(j, pj))
			return -1;
		if (pj->tracked ? tracker_collect(&pj->t, true, &pj->dirty) : 0) {
			if (left_the_tree(pj, i))
				continue;
			return -1;
		}
	}
	/* after the collection: a child forked before it is counted */
	for (int i = 0; i < j->n; i++) {
		struct proc_job *pj = j->p[i];
		struct holder_info h;

		if (pj->gone || !pj->tracked ||
		    holder_query(pj->pid, pj->t.stat.start_time, &h, NULL) != 1)
			continue;
		pj->forks_known = h.events == HOLDER_EVENTS_CONNECTOR && !h.events_lost &&
				  h.uffd_ino == pj->t.sess.uffd_ino;
		pj->forks = h.forks;
	}
	dt_err_clear();
	return 0;
}

static struct shm_obj *shm_of(struct dump_job *j, const struct vma *v)
{
	struct shm_obj *o;

	for (int k = 0; k < j->nshm; k++)
		if (j->shm[k].shmid == v->inode)
			return &j->shm[k];
	j->shm = xrealloc(j->shm, (size_t)(j->nshm + 1) * sizeof(*j->shm));
	o = &j->shm[j->nshm++];
	memset(o, 0, sizeof(*o));
	o->shmid = v->inode;
	o->dev_major = v->dev_major;
	o->dev_minor = v->dev_minor;
	o->sysv = !strncmp(v->path, "/SYSV", 5);
	o->anon = !strncmp(v->path, "/dev/zero", 9) || !strncmp(v->path, "[anon_shmem:", 12) ||
		  !*v->path;
	return o;
}

/* Address range [s, e) of window w, as offsets in its object, into out. */
static void to_offsets(const struct shm_window *w, const struct range_set *in,
		       struct range_set *out)
{
	range_set_for_each(r, in) {
		uint64_t s = r->start > w->start ? r->start : w->start;
		uint64_t e = r->end < w->end ? r->end : w->end;

		if (s < e)
			set_add(out, w->pgoff + (s - w->start), w->pgoff + (e - w->start));
	}
}

/* Content of each process's private memory, and each shared object's windows. */
static int find_content(struct dump_job *j)
{
	for (int i = 0; i < j->n; i++) {
		struct proc_job *pj = j->p[i];
		bool incremental = pj->in_parent_dump && !pj->full;
		bool derive = incremental && pj->tracked;

		if (pj->gone)
			continue;
		/*
		 * What the parent holds of it: the base of the plan, and (for a
		 * mapping tracked all along) of its content map, the parent's
		 * content plus what changed, not a walk of every page table.
		 */
		if (incremental) {
			char name[64];

			snprintf(name, sizeof(name), "pagemap-%d.img", pj->pid);
			pm_covered(dump_pm_find(&j->parent.d[0], name), &pj->cover);
		}
		for (size_t k = 0; k < pj->t.vmas.n; k++) {
			const struct vma *v = &pj->t.vmas.v[k];
			struct range_set c = RANGE_SET_INIT;
			struct shm_obj *o;
			struct shm_window *w;

			if (v->kind != VMA_SHMEM) {
				bool tracked = derive && pj->t.track &&
					       pj->t.track[k].state == VMA_TRACKED;

				if (tracked ? content_from_parent(&pj->t.scan, v, &pj->cover,
								  &pj->dirty, &pj->content)
					    : content_of_vma(&pj->t.scan, v, &pj->content))
					return -1;
				continue;
			}
			o = shm_of(j, v);
			if (o->dev_major != v->dev_major || o->dev_minor != v->dev_minor)
				return dt_err(DT_EXIT_ERROR, "two shared memory objects of process %d "
					      "have inode %llu on different devices: they cannot be told "
					      "apart in one dump", pj->pid,
					      (unsigned long long)v->inode);
			if (!o->nw && !dt_simulate_missing("shmem_objects")) {
				int fd = shmem_object_open(pj->pid, v);

				o->exact = fd >= 0;
				if (fd >= 0)
					close(fd);
			}
			o->w = xrealloc(o->w, (size_t)(o->nw + 1) * sizeof(*o->w));
			w = &o->w[o->nw++];
			*w = (struct shm_window){ i, v->start, v->end, v->pgoff };
			to_offsets(w, &pj->dirty, &o->dirty);
			/* the object's content is the object's: looked at once per offset */
			if (range_set_covers(&o->seen, v->pgoff, v->pgoff + (v->end - v->start)))
				continue;
			set_add(&o->seen, v->pgoff, v->pgoff + (v->end - v->start));
			if (content_of_vma(&pj->t.scan, v, &c)) {
				range_set_free(&c);
				return -1;
			}
			to_offsets(w, &c, &o->content);
			range_set_free(&c);
		}
		pj->pages_scanned = range_set_pages(&pj->content);
	}
	return 0;
}

/*
 * What to store of one pagemap: present and in-parent.  cover is what the
 * parent's pagemap holds; NULL: store every page with content.
 */
static void split_by_parent(const struct range_set *cover, const struct range_set *content,
			    const struct range_set *dirty, struct range_set *present,
			    struct range_set *in_parent)
{
	struct range_set maybe = RANGE_SET_INIT;

	if (!cover) {
		if (range_set_copy(present, content))
			die_oom();
		return;
	}
	if (range_set_subtract(&maybe, content, dirty) ||
	    range_set_intersect(in_parent, &maybe, cover) ||
	    range_set_subtract(present, content, in_parent))
		die_oom();
	range_set_free(&maybe);
}

/* Each process's private memory: against its own pagemap in the parent. */
static void plan_private(struct proc_job *pj)
{
	split_by_parent(pj->full || !pj->in_parent_dump ? NULL : &pj->cover, &pj->content,
			&pj->dirty, &pj->present, &pj->in_parent);
}

/* The mappings of object shmid in a process of the parent dump. */
static int parent_windows(const struct dump_proc *pp, uint64_t shmid, struct shm_window *out,
			  int max)
{
	int n = 0;

	for (size_t i = 0; i < pp->mm->n_vmas; i++) {
		const VmaEntry *v = pp->mm->vmas[i];

		if (v->shmid != shmid)
			continue;
		if (n < max)
			out[n] = (struct shm_window){ 0, v->start, v->end, v->pgoff };
		n++;
	}
	return n;
}

/* Does a process outside the tree map object o?  Scans what we may read. */
static bool mapped_outside(const struct dump_job *j, const struct shm_obj *o)
{
	char want[64], path[64];
	struct dirent *de;
	bool found = false;
	DIR *d = opendir("/proc");
	int len;

	if (!d)
		return true;
	len = snprintf(want, sizeof(want), " %02x:%02x %llu ", o->dev_major, o->dev_minor,
		       (unsigned long long)o->shmid);
	while (!found && (de = readdir(d))) {
		int pid;
		char *text;
		bool ours = false;

		if (!parse_int(de->d_name, &pid))
			continue;
		for (int i = 0; i < j->n && !ours; i++)
			ours = j->p[i]->pid == pid && !j->p[i]->gone;
		if (ours)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/maps", pid);
		text = read_file(path, NULL);
		/* unreadable: another user's, which cannot share our anonymous memory */
		if (text)
			found = memmem(text, strlen(text), want, (size_t)len) != NULL;
		free(text);
	}
	closedir(d);
	return found;
}

/*
 * SysV: the kernel's count of attaches of our segment (its shmid is the
 * inode the maps show) must be our mappings, all of them.
 */
static bool sysv_attached_elsewhere(const struct shm_obj *o)
{
	char *text = read_file("/proc/sysvipc/shm", NULL), *line;
	bool other = true;

	if (!text)
		return true;
	for (line = strchr(text, '\n'); line && *line; line = strchr(line + 1, '\n')) {
		unsigned long long shmid, nattch;

		/* key shmid perms size cpid lpid nattch ... */
		if (sscanf(line + 1, "%*d %llu %*o %*u %*d %*d %llu", &shmid, &nattch) != 2 ||
		    shmid != o->shmid)
			continue;
		other = nattch != (unsigned long long)o->nw;
		break;
	}
	free(text);
	return other;
}

/*
 * Written pages of a shared object are the union of what every mapping
 * process wrote through its page tables, provided that every process that
 * could write it since the parent dump is one we track and its every
 * mapping of it is one we tracked all along: the same processes, the same
 * mappings as in the parent dump, no process outside the tree, and no way
 * to write it other than a mapping (so shared anonymous memory and SysV,
 * not files: write(2) bypasses page tables).
 */
static const char *shm_not_incremental(const struct dump_job *j, const struct shm_obj *o)
{
	const struct dump *par = &j->parent.d[0];
	char name[64];
	int mappers_then = 0;

	if (!j->parent.n)
		return "full dump";
	snprintf(name, sizeof(name), "pagemap-shmem-%llu.img", (unsigned long long)o->shmid);
	if (!dump_pm_find(par, name))
		return "not in the parent dump";
	if (!o->anon && !o->sysv)
		return "a file: write(2) changes it without any page table";
	/* a hole punched (MADV_REMOVE) changes it unseen: only the object shows holes */
	if (!o->exact)
		return "its holes cannot be seen without opening it (CAP_CHECKPOINT_RESTORE)";
	for (int k = 0; k < o->nw; k++) {
		const struct proc_job *pj = j->p[o->w[k].proc];
		const struct vma *v = vma_list_find(&pj->t.vmas, o->w[k].start);

		if (pj->full || !pj->in_parent_dump)
			return "a process mapping it is new, exec'd or untracked since the parent";
		/* a child it forked shares it: it may have written it and gone */
		if (!pj->forks_known || !pj->in_parent_dump->pstree->has_dt_forks)
			return "without process events, a child that wrote it and exited is unseen";
		if (pj->in_parent_dump->pstree->dt_forks != pj->forks)
			return "a process mapping it forked since the parent (the child may have "
			       "written it)";
		for (size_t i = 0; i < pj->t.vmas.n; i++)
			if (&pj->t.vmas.v[i] == v && pj->t.track[i].state != VMA_TRACKED)
				return "a mapping of it is not tracked (new since the parent, or skipped)";
		if (range_set_overlaps(&pj->t.pinned.ranges, o->w[k].start, o->w[k].end))
			return "pinned pages in it: the kernel writes them unseen";
	}
	/* every mapping of the parent dump is still here, the same */
	for (size_t i = 0; i < par->nprocs; i++) {
		struct shm_window pw[64];
		const struct dump_proc *pp = &par->procs[i];
		int n = parent_windows(pp, o->shmid, pw, 64), have = 0;
		const struct proc_job *pj = NULL;

		if (!n)
			continue;
		if (n > 64)
			return "mapped too many times";
		mappers_then += n;
		for (int k = 0; k < j->n && !pj; k++)
			if (j->p[k]->in_parent_dump == pp && !j->p[k]->gone)
				pj = j->p[k];
		if (!pj)
			return "a process that mapped it at the parent dump has exited or changed";
		for (int a = 0; a < n; a++)
			for (int k = 0; k < o->nw; k++)
				have += j->p[o->w[k].proc] == pj && o->w[k].start == pw[a].start &&
					o->w[k].end == pw[a].end && o->w[k].pgoff == pw[a].pgoff;
		if (have != n)
			return "a process unmapped or moved a mapping of it since the parent";
	}
	if (mappers_then != o->nw)
		return "a process mapped it since the parent";
	if (o->sysv && sysv_attached_elsewhere(o))
		return "attached by a process outside the tree";
	if (mapped_outside(j, o))
		return "mapped by a process outside the tree";
	return NULL;
}

static void plan_shmem(struct dump_job *j, struct shm_obj *o)
{
	struct range_set cover = RANGE_SET_INIT;
	char name[64];

	o->whole_because = shm_not_incremental(j, o);
	o->incremental = !o->whole_because;
	if (o->incremental) {
		snprintf(name, sizeof(name), "pagemap-shmem-%llu.img",
			 (unsigned long long)o->shmid);
		pm_covered(dump_pm_find(&j->parent.d[0], name), &cover);
	}
	split_by_parent(o->incremental ? &cover : NULL, &o->content, &o->dirty, &o->present,
			&o->in_parent);
	range_set_free(&cover);
}

static void plan(struct dump_job *j)
{
	for (int i = 0; i < j->n; i++)
		if (!j->p[i]->gone)
			plan_private(j->p[i]);
	for (int k = 0; k < j->nshm; k++)
		plan_shmem(j, &j->shm[k]);
}

/* The sink's page writer, with a look at whether the user asked us to stop. */
static int put_pages(void *ctx, const void *data, size_t len)
{
	struct dump_job *j = ctx;

	if (check_interrupted(j) || sink_put_pages(j->out, data, len))
		return -1;
	j->copied += len;
	if (j->a.progress)
		j->a.progress(j->a.progress_ctx, j->copied, j->to_copy);
	return 0;
}

static int sink_finish(struct page_sink *sink, const struct range_set *present,
		       const struct range_set *in_parent, uint64_t *written)
{
	int err = sink_put_entries(sink, present, in_parent);

	if (err) {
		sink->ops->abort(sink);
		return -1;
	}
	err = sink->ops->finish(sink);
	*written = sink->pages_written;
	return err;
}

/* A pagemap's sink: straight to its files, or through the stage. */
struct pm_out {
	struct dir_sink dir;
	struct deferred *d;
	struct page_sink *sink;
};

static int pm_out_open(struct dump_job *j, struct pm_out *o, const char *name)
{
	struct dir_sink *dir = &o->dir;

	o->d = NULL;
	if (j->stage.buf) {
		o->d = xcalloc(1, sizeof(*o->d));
		dir = &o->d->dir;
	}
	if (dir_sink_open(dir, j->dir.fd, name, j->next_pages_id++)) {
		free(o->d);
		return -1;
	}
	if (o->d) {
		stage_sink_init(&o->d->staged, &o->d->dir.base, &j->stage);
		o->sink = &o->d->staged.base;
	} else {
		o->sink = &dir->base;
	}
	j->out = o->sink;
	return 0;
}

static void pm_out_abort(struct pm_out *o)
{
	o->sink->ops->abort(o->sink);
	free(o->d);
}

/* Entries and the end of the files now, or once thawed (staged). */
static int pm_out_finish(struct dump_job *j, struct pm_out *o, const struct range_set *present,
			 const struct range_set *in_parent, uint64_t *written)
{
	if (!o->d)
		return sink_finish(o->sink, present, in_parent, written);
	o->d->present = present;
	o->d->in_parent = in_parent;
	o->d->written = written;
	j->deferred = xrealloc(j->deferred, (size_t)(j->ndeferred + 1) * sizeof(*j->deferred));
	j->deferred[j->ndeferred++] = o->d;
	return 0;
}

/* The tree runs again: what the stage holds goes to the files. */
static int finish_deferred(struct dump_job *j)
{
	int err = 0;

	for (int i = 0; i < j->ndeferred; i++) {
		struct deferred *d = j->deferred[i];

		if (err)
			d->staged.base.ops->abort(&d->staged.base);
		else
			err = sink_finish(&d->staged.base, d->present, d->in_parent, d->written);
		free(d);
	}
	free(j->deferred);
	j->deferred = NULL;
	j->ndeferred = 0;
	return err;
}

static void drop_gone(struct range_set *present, const struct range_set *gone, uint64_t *vanished)
{
	struct range_set kept = RANGE_SET_INIT;

	*vanished += range_set_pages(gone);
	if (range_set_subtract(&kept, present, gone))
		die_oom();
	range_set_free(present);
	*present = kept;
}

/* The reader of process i: opened once (its buffer is backed only once). */
static struct mem_reader *reader_of(struct dump_job *j, int i)
{
	struct proc_job *pj = j->p[i];

	if (!pj->mem.buf && mem_reader_open(&pj->mem, pj->pid))
		return NULL;
	return &pj->mem;
}

static int write_private(struct dump_job *j, struct proc_job *pj)
{
	struct pm_out out;
	struct mem_reader *mem;
	char name[64];
	int err;

	snprintf(name, sizeof(name), "pagemap-%d.img", pj->pid);
	pj->pages_id = j->next_pages_id;
	if (pm_out_open(j, &out, name))
		return -1;
	mem = reader_of(j, pj->index);
	if (!mem) {
		pm_out_abort(&out);
		return -1;
	}
	/* the pages first: what vanished meanwhile gets no entry */
	err = mem_copy(mem, &pj->present, put_pages, j);
	if (!err && mem->gone.n) {
		if (pj->is_frozen)
			err = dt_err(DT_EXIT_ERROR, "process %d unmapped memory while frozen", pj->pid);
		drop_gone(&pj->present, &mem->gone, &pj->vanished);
		range_set_clear(&mem->gone);
	}
	if (err) {
		pm_out_abort(&out);
		return -1;
	}
	return pm_out_finish(j, &out, &pj->present, &pj->in_parent, &pj->pages_written);
}

/* The window of o that shows offset off (and up to where), or NULL. */
static const struct shm_window *window_at(const struct dump_job *j, const struct shm_obj *o,
					  uint64_t off, uint64_t *end)
{
	for (int k = 0; k < o->nw; k++) {
		const struct shm_window *x = &o->w[k];
		uint64_t xe = x->pgoff + (x->end - x->start);

		if (!j->p[x->proc]->gone && x->pgoff <= off && off < xe) {
			if (xe < *end)
				*end = xe;
			return x;
		}
	}
	return NULL;
}

/* Offset reached after n bytes of the offsets in batch (window w's addresses). */
static uint64_t offset_after(const struct shm_window *w, const struct range_set *batch,
			     uint64_t n)
{
	range_set_for_each(r, batch) {
		if (n < r->end - r->start)
			return w->pgoff + (r->start + n - w->start);
		n -= r->end - r->start;
	}
	return UINT64_MAX;
}

/*
 * A shared object's pages, in offset order, read through the processes
 * that map them: consecutive runs one window shows are one batch (one
 * batched read).  A process that exits meanwhile hands over to another
 * window from where it stopped; pages no window shows any more are left
 * out (counted as vanished).
 */
static int write_shmem(struct dump_job *j, struct shm_obj *o)
{
	struct range_set batch = RANGE_SET_INIT, gone = RANGE_SET_INIT;
	struct pm_out out;
	char name[64];
	uint64_t from = 0;
	int err = 0;

	snprintf(name, sizeof(name), "pagemap-shmem-%llu.img", (unsigned long long)o->shmid);
	if (pm_out_open(j, &out, name))
		return -1;
	while (!err && from != UINT64_MAX) {
		const struct shm_window *bw = NULL;
		struct mem_reader *rd;
		uint64_t next = UINT64_MAX, before;

		/* plan one batch from `from` on: the runs of one window, in order */
		range_set_clear(&batch);
		range_set_for_each(r, &o->present) {
			uint64_t off = r->start > from ? r->start : from;

			while (off < r->end) {
				uint64_t end = r->end;
				const struct shm_window *w = window_at(j, o, off, &end);

				if (!w) {	/* nothing maps it any more */
					if (!bw)
						set_add(&gone, off, end);
					else
						next = off;
				} else if (!bw || w == bw) {
					bw = w;
					set_add(&batch, w->start + (off - w->pgoff),
						w->start + (end - w->pgoff));
				} else {
					next = off;
				}
				if (next != UINT64_MAX)
					break;
				off = end;
			}
			if (next != UINT64_MAX)
				break;
		}
		if (!bw)
			break;
		rd = reader_of(j, bw->proc);
		if (!rd) {
			if (dt_err_kind() != DT_EXIT_GONE || bw->proc == 0) {
				err = -1;
				break;
			}
			dt_err_clear();
			j->p[bw->proc]->gone = true;	/* plan again without it */
			continue;
		}
		before = j->copied;
		err = mem_copy(rd, &batch, put_pages, j);
		to_offsets(bw, &rd->gone, &gone);
		range_set_clear(&rd->gone);
		if (err && dt_err_kind() == DT_EXIT_GONE && bw->proc != 0) {
			/* the process left the tree: another window may show the rest */
			dt_err_clear();
			err = 0;
			j->p[bw->proc]->gone = true;
			next = offset_after(bw, &batch, j->copied - before);
			if (next == UINT64_MAX)
				next = from;	/* nothing given: plan again without it */
		}
		from = next;
	}
	range_set_free(&batch);
	/* frozen, a window only goes with its process (killed): the pages with it */
	if (!err && gone.n)
		drop_gone(&o->present, &gone, &o->vanished);
	range_set_free(&gone);
	if (err) {
		pm_out_abort(&out);
		return -1;
	}
	return pm_out_finish(j, &out, &o->present, &o->in_parent, &o->pages_written);
}

static int write_pages(struct dump_job *j)
{
	uint64_t t0 = now_ns();

	j->next_pages_id = 1;
	for (int i = 0; i < j->n; i++)
		if (!j->p[i]->gone)
			j->to_copy += range_set_bytes(&j->p[i]->present);
	for (int k = 0; k < j->nshm; k++)
		j->to_copy += range_set_bytes(&j->shm[k].present);
	for (int i = 0; i < j->n; i++) {
		if (j->p[i]->gone)
			continue;
		/* one killed while frozen (SIGKILL reaches traced processes too) is gone */
		if (write_private(j, j->p[i])) {
			if (left_the_tree(j->p[i], i))
				continue;
			return -1;
		}
	}
	for (int k = 0; k < j->nshm; k++)
		if (write_shmem(j, &j->shm[k]))
			return -1;
	j->stats.memdump_us = (now_ns() - t0) / 1000;
	return 0;
}

/* A process that left the tree after its pagemap was written: no files of it. */
static int drop_gone_files(struct dump_job *j)
{
	for (int i = 0; i < j->n; i++) {
		char name[64];

		if (!j->p[i]->gone || !j->p[i]->pages_id)
			continue;
		snprintf(name, sizeof(name), "pagemap-%d.img", j->p[i]->pid);
		if (unlinkat(j->dir.fd, name, 0) && errno != ENOENT)
			return dt_err_sys(0, "removing %s", name);
		snprintf(name, sizeof(name), "pages-%u.img", j->p[i]->pages_id);
		if (unlinkat(j->dir.fd, name, 0) && errno != ENOENT)
			return dt_err_sys(0, "removing %s", name);
	}
	return 0;
}

static int write_meta(struct dump_job *j)
{
	struct pstree_proc *pp = xcalloc((size_t)j->n, sizeof(*pp));
	pid_t **tids = xcalloc((size_t)j->n, sizeof(*tids));
	int np = 0, err = 0;

	for (int i = 0; i < j->n && !err; i++) {
		struct proc_job *pj = j->p[i];
		int n;

		if (pj->gone)
			continue;
		if (pj->regs) {
			n = pj->nregs;
			tids[i] = xcalloc((size_t)n, sizeof(**tids));
			for (int k = 0; k < n; k++)
				tids[i][k] = pj->regs[k].tid;
		} else {
			n = proc_tasks(pj->pid, &tids[i]);
			if (n < 0) {
				err = -1;
				break;
			}
		}
		pp[np++] = (struct pstree_proc){
			.st = &pj->t.stat, .tids = tids[i], .n = n,
			.uffd_ino = pj->tracked ? pj->t.sess.uffd_ino : 0,
			.generation = pj->tracked ? pj->t.sess.generation : 0,
			.full = pj->full || !pj->in_parent_dump,
			.forks_known = pj->forks_known, .forks = pj->forks,
		};
		err = meta_write_mm(j->dir.fd, &pj->t.stat, &pj->t.vmas);
		for (int k = 0; k < n && !err; k++) {
			struct thread_regs none = { .tid = tids[i][k] };

			err = meta_write_core(j->dir.fd, pj->pid, &pj->t.stat,
					      pj->regs ? &pj->regs[k] : &none,
					      tids[i][k] == pj->pid ? &pj->shared : NULL);
		}
	}
	if (!err)
		err = meta_write_inventory(j->dir.fd, &j->id) || meta_write_pstree(j->dir.fd, pp, np) ||
		      meta_write_stats(j->dir.fd, &j->stats);
	for (int i = 0; i < j->n; i++)
		free(tids[i]);
	free(tids);
	free(pp);
	if (!err && j->parent.n)
		err = dump_dir_link_parent(&j->dir, j->parent.d[0].path);
	return err ? -1 : 0;
}

static void fill_identity(struct dump_job *j)
{
	struct dump_identity *id = &j->id;
	const struct proc_job *root = j->p[0];

	id->pid = j->a.pid;
	id->start_time = root->t.stat.start_time;
	id->uffd_ino = root->tracked ? root->t.sess.uffd_ino : 0;
	id->generation = root->tracked ? root->t.sess.generation : 0;
	id->full = !j->parent.n;
	id->iteration = j->parent.n ? j->parent_id.iteration + 1 : 1;
	if (j->parent.n)
		snprintf(id->parent_id, sizeof(id->parent_id), "%s", j->parent_id.id);
	dump_identity_new_id(id->id);
	id->frozen = j->a.freeze || j->a.leave_stopped;
	snprintf(id->scan, sizeof(id->scan), "%s", dirty_backend_name(j->a.backend));
	id->dump_unix = (uint64_t)time(NULL);
	for (int i = 0; i < j->n; i++)
		j->stats.pages_scanned += j->p[i]->pages_scanned;
	for (int k = 0; k < j->nshm; k++)
		j->stats.pages_scanned += range_set_pages(&j->shm[k].content);
	for (int i = 0; i < j->n; i++) {
		j->stats.pages_written += j->p[i]->pages_written;
		j->stats.pages_skipped_parent += range_set_pages(&j->p[i]->in_parent);
	}
	for (int k = 0; k < j->nshm; k++) {
		j->stats.pages_written += j->shm[k].pages_written;
		j->stats.pages_skipped_parent += range_set_pages(&j->shm[k].in_parent);
	}
}

static void fill_report(const struct dump_job *j, struct dump_report *rep, uint64_t total_ns)
{
	const struct proc_job *root = j->p[0];

	memset(rep, 0, sizeof(*rep));
	snprintf(rep->dir, sizeof(rep->dir), "%s", j->dir.final);
	if (j->parent.n)
		snprintf(rep->parent, sizeof(rep->parent), "%s", j->parent.d[0].path);
	rep->id = j->id;
	rep->full_because = root->note;
	rep->procs = xcalloc((size_t)j->n, sizeof(*rep->procs));
	for (int i = 0; i < j->n; i++) {
		const struct proc_job *pj = j->p[i];
		struct dump_proc_report *pr;

		if (pj->gone)
			continue;
		pr = &rep->procs[rep->nprocs++];
		pr->pid = pj->pid;
		pr->ppid = pj->t.stat.ppid;
		snprintf(pr->comm, sizeof(pr->comm), "%s", pj->t.stat.comm);
		pr->full = pj->full || !pj->in_parent_dump;
		pr->full_because = pj->note;
		pr->started_tracking = pj->started_tracking;
		pr->pages_dirty = range_set_pages(&pj->dirty);
		pr->pages_present = range_set_pages(&pj->present);
		pr->pages_parent = range_set_pages(&pj->in_parent);
		pr->pages_written = pj->pages_written;
		pr->pages_vanished = pj->vanished;
		pr->pinned_pages = range_set_pages(&pj->t.pinned.ranges);
		pr->pinned_unattributed = pinned_unattributed(&pj->t.pinned);
		if (j->id.frozen) {
			pr->io_uring_queued = pj->t.pinned.io_uring_queued;
			pr->aio_contexts = pj->t.pinned.aio_contexts;
		}
		rep->pages_dirty += pr->pages_dirty;
		rep->pages_present += pr->pages_present;
		rep->pages_parent += pr->pages_parent;
		rep->pages_written += pr->pages_written;
		rep->pages_vanished += pr->pages_vanished;
		rep->pinned_pages += pr->pinned_pages;
		rep->pinned_unattributed += pr->pinned_unattributed;
		rep->io_uring_queued += pr->io_uring_queued;
		rep->aio_contexts += pr->aio_contexts;
		rep->collect_ns += pj->t.collect_ns;
	}
	rep->shm = xcalloc((size_t)j->nshm + 1, sizeof(*rep->shm));
	for (int k = 0; k < j->nshm; k++) {
		const struct shm_obj *o = &j->shm[k];
		struct dump_shm_report *sr = &rep->shm[rep->nshm++];

		sr->shmid = o->shmid;
		sr->mappings = o->nw;
		sr->incremental = o->incremental;
		sr->whole_because = o->whole_because;
		sr->pages_content = range_set_pages(&o->content);
		sr->pages_present = range_set_pages(&o->present);
		sr->pages_parent = range_set_pages(&o->in_parent);
		sr->pages_written = o->pages_written;
		rep->pages_present += sr->pages_present;
		rep->pages_parent += sr->pages_parent;
		rep->pages_written += sr->pages_written;
		rep->pages_vanished += o->vanished;
	}
	rep->pages_scanned = j->stats.pages_scanned;
	rep->freeze_us = j->stats.frozen_us;
	rep->total_ns = total_ns;
	rep->left_stopped = j->a.leave_stopped;
	rep->started_tracking = root->started_tracking;
	rep->tree = j->a.tree;
}

void dump_report_free(struct dump_report *rep)
{
	free(rep->procs);
	free(rep->shm);
	rep->procs = NULL;
	rep->shm = NULL;
	rep->nprocs = rep->nshm = 0;
}

static void job_free(struct dump_job *j)
{
	for (int i = 0; i < j->n; i++) {
		struct proc_job *pj = j->p[i];

		range_set_free(&pj->dirty);
		range_set_free(&pj->content);
		range_set_free(&pj->present);
		range_set_free(&pj->in_parent);
		range_set_free(&pj->cover);
		tracker_close(&pj->t);
		if (pj->mem.buf)
			mem_reader_close(&pj->mem);
		for (int k = 0; k < pj->nregs; k++) {
			free(pj->regs[k].pending.sig);
			backtrace_free(&pj->regs[k].bt);
		}
		free(pj->regs);
		free(pj->shared.sig);
	}
	for (int k = 0; k < j->nshm; k++) {
		struct shm_obj *o = &j->shm[k];

		range_set_free(&o->content);
		range_set_free(&o->seen);
		range_set_free(&o->dirty);
		range_set_free(&o->present);
		range_set_free(&o->in_parent);
		free(o->w);
	}
	free(j->shm);
	for (int i = 0; i < j->ndeferred; i++) {
		j->deferred[i]->staged.base.ops->abort(&j->deferred[i]->staged.base);
		free(j->deferred[i]);
	}
	free(j->deferred);
	j->deferred = NULL;
	j->ndeferred = 0;
	page_stage_free(&j->stage);
	for (int i = 0; i < j->n; i++)
		free(j->p[i]);
	chain_close(&j->parent);
	tree_free(&j->tree);
}

/* Durable: only now are the collected pages recorded as in a dump. */
static int complete_all(struct dump_job *j)
{
	int err = 0;

	for (int i = 0; i < j->n; i++)
		if (j->p[i]->tracked && !j->p[i]->gone && tracker_complete(&j->p[i]->t, j->id.id))
			err = -1;
	return err;
}

int dump_run(const struct dump_request *rq, struct dump_report *rep)
{
	struct dump_job j = { 0 };
	uint64_t t0 = now_ns(), frozen_at = 0;

	j.a = *rq;
	j.dir.fd = -1;
	/* permission first, then the directory, and only then tracking */
	if (tracker_check_access(j.a.pid) ||
	    (j.a.tree ? tree_scan(j.a.pid, &j.tree) : tree_single(j.a.pid, &j.tree)) ||
	    dump_dir_begin(&j.dir, j.a.dir, j.a.make_parent_dir) || check_space(&j) ||
	    (j.a.parent && open_parent(&j)) || open_all(&j))
		goto fail;
	if (prepare_stage(&j))
		goto fail;
	/* frozen: the readers' buffers are backed now, while the tree runs */
	for (int i = 0; (j.a.freeze || j.a.leave_stopped) && i < j.n; i++)
		if (!j.p[i]->gone && !reader_of(&j, i) && !left_the_tree(j.p[i], i))
			goto fail;
	if (j.a.freeze || j.a.leave_stopped) {
		frozen_at = now_ns();
		if (freeze(&j))
			goto fail;
	}
	if (collect(&j) || find_content(&j))
		goto fail;
	plan(&j);
	if (write_pages(&j) || (j.is_frozen && stop_and_peek(&j)))
		goto fail;
	thaw(&j, frozen_at);
	{
		uint64_t t1 = now_ns();

		if (finish_deferred(&j))
			goto fail;
		j.stats.memwrite_us = (now_ns() - t1) / 1000;
	}
	page_stage_free(&j.stage);
	if (drop_gone_files(&j))
		goto fail;
	fill_identity(&j);
	if (write_meta(&j))
		goto fail;
	dt_fault_point("before-rename");
	if (dump_dir_commit(&j.dir))
		goto fail;
	if (complete_all(&j))
		goto fail_committed;
	fill_report(&j, rep, now_ns() - t0);
	job_free(&j);
	free(j.p);
	return 0;
fail:
	/* the tree goes on as it was; no dump is left behind */
	{
		struct dt_err_saved first;

		dt_err_save(&first);
		j.a.leave_stopped = false;
		thaw(&j, frozen_at);
		dump_dir_abort(&j.dir);
		dt_err_restore(&first);
	}
fail_committed:
	{
		pid_t *started = xcalloc((size_t)j.n + 1, sizeof(*started));
		int ns = 0;

		for (int i = 0; i < j.n; i++)
			if (j.p[i]->started_tracking)
				started[ns++] = j.p[i]->pid;
		job_free(&j);
		/* a dump that turned tracking on and failed turns it off again */
		for (int i = 0; i < ns; i++) {
			struct dt_err_saved first;

			dt_err_save(&first);
			tracker_stop(started[i]);
			dt_err_restore(&first);
		}
		free(started);
	}
	free(j.p);
	return -1;
}
