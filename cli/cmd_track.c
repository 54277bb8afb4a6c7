// SPDX-License-Identifier: MIT
/* start, stop, status: turning tracking on and off, and looking at it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/util.h"
#include "tracker/tracker.h"
#include "tracker/tree.h"

struct vma_totals {
	int n[3];
	uint64_t bytes[3];
};

static void count_vmas(const struct tracker *t, struct vma_totals *tot)
{
	memset(tot, 0, sizeof(*tot));
	for (size_t i = 0; i < t->vmas.n; i++) {
		enum vma_track_state st = t->track[i].state;

		tot->n[st]++;
		tot->bytes[st] += t->vmas.v[i].end - t->vmas.v[i].start;
	}
}

static const char *events_name(const struct holder_info *h)
{
	return h->events == HOLDER_EVENTS_CONNECTOR ? "proc connector" : "polling";
}

/* Who keeps tracking alive, and what it saw of the target's forks. */
static void json_holder(const struct tracker *t)
{
	const struct holder_info *h = &t->holder;

	json_object_begin(&jw, "holder");
	json_i64(&jw, "pid", h->holder_pid);
	json_u64(&jw, "uffd_ino", h->uffd_ino);
	json_str(&jw, "events", events_name(h));
	if (h->events != HOLDER_EVENTS_CONNECTOR)
		json_str(&jw, "events_why", h->events_why);
	json_u64(&jw, "forks", h->forks);
	if (h->last_child)
		json_i64(&jw, "last_child", h->last_child);
	json_bool(&jw, "events_lost", h->events_lost);
	json_object_end(&jw);
}

/* Pages the kernel writes through the page, not the page table. */
static void json_pinned(const struct pinned *p)
{
	json_object_begin(&jw, "pinned");
	json_u64(&jw, "pages", range_set_pages(&p->ranges));
	json_ranges("ranges", &p->ranges);
	json_u64(&jw, "vmpin_bytes", p->vmpin_bytes);
	json_u64(&jw, "unattributed_bytes", pinned_unattributed(p));
	json_i64(&jw, "io_uring_queued", p->io_uring_queued);
	json_i64(&jw, "aio_contexts", p->aio_contexts);
	json_object_end(&jw);
}

static void print_pinned(const struct pinned *p)
{
	if (range_set_pages(&p->ranges))
		printf("pinned: %llu pages of io_uring registered buffers, counted as written at "
		       "every collection\n", (unsigned long long)range_set_pages(&p->ranges));
	if (pinned_unattributed(p))
		printf("warning: %llu KiB pinned by something else (RDMA, vfio?): the kernel may "
		       "write it unseen\n", (unsigned long long)(pinned_unattributed(p) / 1024));
}

static const char *state_name(enum vma_track_state st)
{
	static const char *const names[] = {
		[VMA_TRACKED] = "tracked", [VMA_NEW] = "new", [VMA_SKIPPED] = "skipped",
	};

	return names[st];
}

static int start_one(const struct args *args, pid_t pid, bool *started)
{
	struct tracker t;
	struct vma_totals tot;
	struct args a = *args;
	bool already;
	char size[32];
	int r;

	a.pid = pid;
	if (tracker_start(a.pid, a.backend, true, &t, &already))
		return -1;
	*started = !already;
	if (already) {
		struct range_set dirty = RANGE_SET_INIT;

		r = tracker_collect(&t, false, &dirty);
		range_set_free(&dirty);
		if (r) {
			tracker_close(&t);
			return -1;
		}
	}
	count_vmas(&t, &tot);
	human_size(tot.bytes[VMA_TRACKED] + tot.bytes[VMA_NEW], size, sizeof(size));
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_i64(&jw, "pid", a.pid);
		json_str(&jw, "comm", t.stat.comm);
		json_bool(&jw, "already_tracked", already);
		json_holder(&t);
		json_i64(&jw, "tracked_vmas", tot.n[VMA_TRACKED] + tot.n[VMA_NEW]);
		json_u64(&jw, "tracked_bytes", tot.bytes[VMA_TRACKED] + tot.bytes[VMA_NEW]);
		json_i64(&jw, "skipped_vmas", tot.n[VMA_SKIPPED]);
		json_double(&jw, "arm_ms", already ? 0 : t.collect_ns / 1e6);
		json_object_end(&jw);
	} else if (already) {
		printf("process %d (%s) is already tracked (held by process %d): nothing to do\n",
		       a.pid, t.stat.comm, t.holder.holder_pid);
	} else {
		printf("tracking process %d (%s): %d mappings (%s) tracked, %d skipped "
		       "(see 'dirtytrack status %d'); held by process %d; armed in %.1f ms\n",
		       a.pid, t.stat.comm, tot.n[VMA_TRACKED] + tot.n[VMA_NEW], size,
		       tot.n[VMA_SKIPPED], a.pid, t.holder.holder_pid, t.collect_ns / 1e6);
	}
	tracker_close(&t);
	return 0;
}

int cmd_start(int argc, char **argv)
{
	struct proc_tree tree;
	struct args a;
	bool *started;
	int r = parse_args(argc, argv, &a), err = 0;

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if (a.tree ? tree_scan(a.pid, &tree) : tree_single(a.pid, &tree))
		return report_error();
	/* all or nothing: every process must be ours to trace before any is injected */
	for (int i = 0; i < tree.n; i++)
		if (tracker_check_access(tree.p[i].pid) && !cli_tree_gone(i)) {
			if (i)
				dt_err_prefix("process %d of the tree of %d: ", tree.p[i].pid, a.pid);
			tree_free(&tree);
			return report_error();
		}
	tree_free(&tree);
	if (cli_tree_begin(&a, &tree))
		return report_error();
	started = xcalloc((size_t)tree.n, sizeof(*started));
	for (int i = 0; i < tree.n && !err; i++)
		if (start_one(&a, tree.p[i].pid, &started[i]) && !cli_tree_gone(i))
			err = -1;
	if (err) {
		struct dt_err_saved first;

		dt_err_save(&first);
		for (int i = 0; i < tree.n; i++)
			if (started[i])
				tracker_stop(tree.p[i].pid);
		dt_err_restore(&first);
		json_release(&jw, false);
	} else {
		cli_tree_end(&a, &tree);
	}
	free(started);
	tree_free(&tree);
	return err ? report_error() : DT_EXIT_OK;
}

static int stop_one(pid_t pid)
{
	int r = tracker_stop(pid);

	if (r < 0)
		return -1;
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_i64(&jw, "pid", pid);
		json_bool(&jw, "was_tracked", r == 1);
		json_object_end(&jw);
	} else {
		printf(r ? "stopped tracking process %d\n"
			 : "process %d was not tracked: nothing to do\n", pid);
	}
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	struct proc_tree tree;
	struct args a;
	int r = parse_args(argc, argv, &a), err = 0;

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if (!a.tree)
		return stop_one(a.pid) ? report_error() : DT_EXIT_OK;
	if (cli_tree_begin(&a, &tree))
		return report_error();
	/* every one we can: one that fails does not keep the others tracked */
	for (int i = 0; i < tree.n; i++)
		if (stop_one(tree.p[i].pid) && !cli_tree_gone(i) && !err) {
			err = -1;
			dt_err_prefix("process %d: ", tree.p[i].pid);
			break;
		}
	if (err) {
		json_release(&jw, false);
		tree_free(&tree);
		return report_error();
	}
	cli_tree_end(&a, &tree);
	return DT_EXIT_OK;
}

static int status_off(pid_t pid, const struct tracker *t)
{
	/* "not tracked" is an answer, not an error; lost tracking says why */
	const char *why = dt_err_msg();
	const char *state = t->lost ? "lost (holder gone)"
			    : dt_err_kind() == DT_EXIT_GONE ? "lost" : "off";

	if (json_output) {
		json_object_begin(&jw, NULL);
		json_i64(&jw, "pid", pid);
		json_str(&jw, "comm", t->stat.comm);
		json_str(&jw, "tracking", t->lost || dt_err_kind() == DT_EXIT_GONE ? "lost" : "off");
		json_str(&jw, "reason", why);
		json_object_end(&jw);
	} else {
		if (t->lost)	/* the reason says the same again: say it once */
			printf("process %d (%s): tracking %s: it ended without a stop (the holder "
			       "was killed?); 'dirtytrack start %d' tracks it again\n", pid,
			       t->stat.comm, state, pid);
		else
			printf("process %d (%s): tracking %s: %s\n", pid, t->stat.comm, state, why);
	}
	return DT_EXIT_OK;
}

static void print_vma_text(const struct tracker *t, size_t i, uint64_t written)
{
	const struct vma *v = &t->vmas.v[i];
	const struct vma_track *vt = &t->track[i];
	char size[32];

	human_size(v->end - v->start, size, sizeof(size));
	printf("  %012llx-%012llx %10s %-11s %-7s %8llu  %s%s%s%s\n",
	       (unsigned long long)v->start, (unsigned long long)v->end, size,
	       vma_kind_name(v->kind), state_name(vt->state), (unsigned long long)written,
	       v->path, vt->reason ? (*v->path ? " (" : "(") : "", vt->reason ? vt->reason : "",
	       vt->reason ? ")" : "");
}

static uint64_t pages_in(const struct range_set *s, uint64_t start, uint64_t end)
{
	struct range_set one = RANGE_SET_INIT, both = RANGE_SET_INIT;
	uint64_t n;

	if (range_set_add(&one, start, end) || range_set_intersect(&both, s, &one))
		die_oom();
	n = range_set_pages(&both);
	range_set_free(&one);
	range_set_free(&both);
	return n;
}

static int status_one(const struct args *args, pid_t pid)
{
	struct range_set dirty = RANGE_SET_INIT;
	struct vma_totals tot;
	struct tracker t;
	struct args a = *args;
	char size[32], since[64];

	a.pid = pid;
	if (tracker_open(a.pid, a.backend, &t)) {
		if (!t.untracked)
			return -1;
		status_off(a.pid, &t);
		return 0;
	}
	if (tracker_collect(&t, false, &dirty)) {
		range_set_free(&dirty);
		tracker_close(&t);
		return -1;
	}
	count_vmas(&t, &tot);
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_i64(&jw, "pid", a.pid);
		json_str(&jw, "comm", t.stat.comm);
		json_str(&jw, "tracking", "on");
		json_holder(&t);
		json_u64(&jw, "started", t.sess.started_unix);
		json_u64(&jw, "collections", t.sess.generation);
		json_u64(&jw, "written_pages", range_set_pages(&dirty));
		json_u64(&jw, "written_bytes", range_set_bytes(&dirty));
		json_pinned(&t.pinned);
		json_array_begin(&jw, "vmas");
		for (size_t i = 0; i < t.vmas.n; i++) {
			const struct vma *v = &t.vmas.v[i];

			json_object_begin(&jw, NULL);
			json_hex(&jw, "start", v->start);
			json_hex(&jw, "end", v->end);
			json_u64(&jw, "bytes", v->end - v->start);
			json_str(&jw, "kind", vma_kind_name(v->kind));
			json_str(&jw, "state", state_name(t.track[i].state));
			if (t.track[i].reason)
				json_str(&jw, "reason", t.track[i].reason);
			json_u64(&jw, "written_pages", pages_in(&dirty, v->start, v->end));
			json_str(&jw, "path", v->path);
			json_object_end(&jw);
		}
		json_array_end(&jw);
		if (a.pages)
			print_ranges(&dirty);
		json_object_end(&jw);
	} else {
		time_t st = (time_t)t.sess.started_unix;

		strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", localtime(&st));
		human_size(range_set_bytes(&dirty), size, sizeof(size));
		printf("process %d (%s): tracking on (held by process %d, since %s, "
		       "%llu collections)\n", a.pid, t.stat.comm, t.holder.holder_pid,
		       t.sess.started_unix ? since : "?", (unsigned long long)t.sess.generation);
		if (t.holder.events == HOLDER_EVENTS_CONNECTOR) {
			printf("process events: proc connector; %llu forks seen",
			       (unsigned long long)t.holder.forks);
			if (t.holder.last_child)
				printf(" (last child %d)", t.holder.last_child);
			printf("\n");
		} else {
			printf("process events: polling (%s)\n", t.holder.events_why);
		}
		printf("written since the last collection: %llu pages (%s)\n",
		       (unsigned long long)range_set_pages(&dirty), size);
		print_pinned(&t.pinned);
		printf("mappings: %d tracked, %d new (counted as written), %d skipped\n",
		       tot.n[VMA_TRACKED], tot.n[VMA_NEW], tot.n[VMA_SKIPPED]);
		printf("  %-25s %10s %-11s %-7s %8s  %s\n", "RANGE", "SIZE", "KIND", "STATE",
		       "WRITTEN", "PATH");
		for (size_t i = 0; i < t.vmas.n; i++)
			print_vma_text(&t, i, pages_in(&dirty, t.vmas.v[i].start, t.vmas.v[i].end));
		if (a.pages)
			print_ranges(&dirty);
	}
	range_set_free(&dirty);
	tracker_close(&t);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	struct proc_tree tree;
	struct args a;
	int r = parse_args(argc, argv, &a);

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if (!a.tree)
		return status_one(&a, a.pid) ? report_error() : DT_EXIT_OK;
	if (cli_tree_begin(&a, &tree))
		return report_error();
	for (int i = 0; i < tree.n; i++)
		if (status_one(&a, tree.p[i].pid) && !cli_tree_gone(i)) {
			json_release(&jw, false);
			tree_free(&tree);
			return report_error();
		}
	cli_tree_end(&a, &tree);
	return DT_EXIT_OK;
}
