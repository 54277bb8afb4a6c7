// SPDX-License-Identifier: MIT
/* watch: how fast, and where, a process writes its memory. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/util.h"
#include "tracker/threads.h"
#include "tracker/tracker.h"
#include "tracker/tree.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const enum vma_kind shown_kinds[] = {
	VMA_HEAP, VMA_STACK, VMA_ANON, VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_SHMEM,
};

static void print_header(bool verbose)
{
	printf("%8s %10s %10s %10s %9s", "TIME(s)", "PAGES", "MiB", "MiB/s", "SCAN(ms)");
	if (verbose)
		for (size_t k = 0; k < ARRAY_SIZE(shown_kinds); k++)
			printf(" %11s", vma_kind_name(shown_kinds[k]));
	printf("\n");
}

static void print_cpus(const struct thread_cpus *c, double interval_s)
{
	double hz = (double)sysconf(_SC_CLK_TCK);

	if (json_output)
		json_array_begin(&jw, "threads");
	else
		printf("  cpu:");
	for (int i = 0; i < c->n; i++) {
		const struct thread_cpu *t = &c->t[i];
		double s = t->seen_before ? (double)(t->ticks - t->prev) / hz : 0;

		if (json_output) {
			json_object_begin(&jw, NULL);
			json_i64(&jw, "tid", t->tid);
			json_str(&jw, "name", t->comm);
			/* a thread born in the interval: its time so far is not this interval's */
			if (t->seen_before)
				json_double(&jw, "cpu_s", s);
			else
				json_null(&jw, "cpu_s");
			json_double(&jw, "cpu_total_s", (double)t->ticks / hz);
			json_object_end(&jw);
		} else if (t->seen_before) {
			printf(" %d(%s) %.0f%%", t->tid, t->comm, interval_s > 0 ? 100 * s / interval_s : 0);
		} else {
			printf(" %d(%s) new", t->tid, t->comm);
		}
	}
	if (json_output)
		json_array_end(&jw);
	else
		printf("\n");
}

/*
 * What every interval says first: a JSON object (left open) or the table's
 * columns (the line left open).
 */
static void interval_begin(int iter, double elapsed_s, double interval_s, uint64_t pages,
			   uint64_t collect_ns)
{
	double mib = (double)pages * PAGE_SIZE / (1024.0 * 1024.0);

	if (!json_output) {
		printf("%8.2f %10llu %10.2f %10.2f %9.2f", elapsed_s, (unsigned long long)pages, mib,
		       interval_s > 0 ? mib / interval_s : 0, collect_ns / 1e6);
		return;
	}
	json_object_begin(&jw, NULL);
	json_i64(&jw, "iteration", iter);
	json_double(&jw, "elapsed_s", elapsed_s);
	json_double(&jw, "interval_s", interval_s);
	json_u64(&jw, "pages", pages);
	json_u64(&jw, "bytes", pages * PAGE_SIZE);
	json_double(&jw, "mib_per_s", interval_s > 0 ? mib / interval_s : 0);
	json_double(&jw, "collect_ms", collect_ns / 1e6);
}

static void print_interval(const struct tracker *t, const struct range_set *dirty, int iter,
			   double elapsed_s, double interval_s, const struct args *a,
			   const struct thread_cpus *cpus)
{
	uint64_t pages = range_set_pages(dirty), by_kind[VMA_KIND_COUNT];

	tracker_dirty_by_kind(t, dirty, by_kind);
	interval_begin(iter, elapsed_s, interval_s, pages, t->collect_ns);
	if (json_output) {
		json_u64(&jw, "forks", t->holder.forks);
		json_object_begin(&jw, "pages_by_kind");
		for (size_t k = 0; k < ARRAY_SIZE(shown_kinds); k++)
			json_u64(&jw, vma_kind_name(shown_kinds[k]), by_kind[shown_kinds[k]]);
		json_object_end(&jw);
		if (a->threads)
			print_cpus(cpus, interval_s);
		if (a->pages)
			print_ranges(dirty);
		json_object_end(&jw);
		return;
	}
	if (a->verbose)
		for (size_t k = 0; k < ARRAY_SIZE(shown_kinds); k++)
			printf(" %11llu", (unsigned long long)by_kind[shown_kinds[k]]);
	printf("\n");
	if (a->threads)
		print_cpus(cpus, interval_s);
	if (a->pages)
		print_ranges(dirty);
	fflush(stdout);
}

/* Interrupted (Ctrl-C, SIGTERM): what the whole watch saw, in one line. */
static void print_totals(int intervals, uint64_t pages, double elapsed_s)
{
	double mib = (double)pages * PAGE_SIZE / (1024.0 * 1024.0);

	if (json_output) {
		json_object_begin(&jw, NULL);
		json_str(&jw, "event", "totals");
		json_i64(&jw, "intervals", intervals);
		json_double(&jw, "elapsed_s", elapsed_s);
		json_u64(&jw, "pages", pages);
		json_u64(&jw, "bytes", pages * PAGE_SIZE);
		json_double(&jw, "mib_per_s", elapsed_s > 0 ? mib / elapsed_s : 0);
		json_object_end(&jw);
		return;
	}
	printf("total: %d intervals in %.2f s, %llu pages written (%.2f MiB, %.2f MiB/s on "
	       "average)\n", intervals, elapsed_s, (unsigned long long)pages, mib,
	       elapsed_s > 0 ? mib / elapsed_s : 0);
}

static void sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = { (time_t)(deadline_ns / 1000000000ULL),
			       (long)(deadline_ns % 1000000000ULL) };

	while (!interrupted && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* One process of the watch (the tree's, with --tree). */
struct watched {
	pid_t pid;
	struct tracker t;
	struct range_set dirty;
	struct thread_cpus cpus;
	bool open;
	bool fresh;		/* tracked since this interval: all its pages count */
};

/* Track pid (for the length of the watch if it was not) and start it clean. */
static int watch_add(struct watched *w, pid_t pid, const struct args *a, bool quiet)
{
	bool already = true;

	memset(w, 0, sizeof(*w));
	w->pid = pid;
	if (tracker_open(pid, a->backend, &w->t)) {
		/* not tracked yet: track for the length of the watch */
		if (!w->t.untracked || dt_err_kind() == DT_EXIT_GONE)
			return -1;
		tracker_close(&w->t);
		if (tracker_start(pid, a->backend, false, &w->t, &already))
			return -1;
		if (!json_output && !quiet)
			fprintf(stderr, "dirtytrack watch: tracking process %d until the watch ends\n",
				pid);
	}
	w->open = true;
	/* each collection takes the session lock for its own length only */
	tracker_unlock(&w->t);
	/* tracking lasts at least as long as we watch, whoever turned it on */
	if (tracker_lease(&w->t) || tracker_collect(&w->t, true, &w->dirty))
		return -1;
	if (a->threads)
		thread_cpus_sample(pid, &w->cpus);
	return 0;
}

static void watch_close(struct watched *w, bool *failed)
{
	if (!w->open)
		return;
	/* unpinned tracking that only this watch relied on ends with it */
	if (!*failed && tracker_end_auto(&w->t))
		*failed = true;
	tracker_close(&w->t);
	range_set_free(&w->dirty);
	thread_cpus_free(&w->cpus);
	w->open = false;
}

/* --tree: processes that appeared since the last look are watched from now. */
static int watch_rescan(pid_t root, struct watched ***w, int *n, const struct args *a)
{
	struct proc_tree tree;

	if (tree_scan(root, &tree))
		return -1;
	for (int k = 1; k < tree.n; k++) {
		bool known = false;

		for (int i = 0; i < *n && !known; i++)
			known = (*w)[i]->open && (*w)[i]->pid == tree.p[k].pid;
		if (known)
			continue;
		/* each its own: a tracker must not move */
		*w = xrealloc(*w, (size_t)(*n + 1) * sizeof(**w));
		(*w)[*n] = xcalloc(1, sizeof(***w));
		if (watch_add((*w)[*n], tree.p[k].pid, a, true)) {
			bool f = false;

			watch_close((*w)[*n], &f);
			free((*w)[*n]);
			dt_err_clear();		/* gone already, or not ours: not watched */
			continue;
		}
		(*w)[(*n)++]->fresh = true;
	}
	tree_free(&tree);
	return 0;
}

static void print_tree_interval(struct watched *const *w, int n, int iter, double elapsed_s,
				double interval_s, const struct args *a)
{
	uint64_t pages = 0, ns = 0;

	for (int i = 0; i < n; i++)
		if (w[i]->open) {
			pages += range_set_pages(&w[i]->dirty);
			ns += w[i]->t.collect_ns;
		}
	interval_begin(iter, elapsed_s, interval_s, pages, ns);
	if (json_output) {
		json_array_begin(&jw, "processes");
		for (int i = 0; i < n; i++) {
			if (!w[i]->open)
				continue;
			json_object_begin(&jw, NULL);
			json_i64(&jw, "pid", w[i]->pid);
			json_str(&jw, "comm", w[i]->t.stat.comm);
			json_bool(&jw, "new", w[i]->fresh);
			json_u64(&jw, "pages", range_set_pages(&w[i]->dirty));
			json_u64(&jw, "bytes", range_set_bytes(&w[i]->dirty));
			if (a->threads)
				print_cpus(&w[i]->cpus, interval_s);
			if (a->pages)
				print_ranges(&w[i]->dirty);
			json_object_end(&jw);
		}
		json_array_end(&jw);
		json_object_end(&jw);
		return;
	}
	printf("\n");
	for (int i = 0; i < n; i++) {
		if (!w[i]->open)
			continue;
		printf("  %7d %-15s %10llu %10.2f%s\n", w[i]->pid, w[i]->t.stat.comm,
		       (unsigned long long)range_set_pages(&w[i]->dirty),
		       range_set_bytes(&w[i]->dirty) / 1048576.0, w[i]->fresh ? " (new)" : "");
		if (a->threads)
			print_cpus(&w[i]->cpus, interval_s);
		if (a->pages)
			print_ranges(&w[i]->dirty);
	}
	fflush(stdout);
}

/*
 * One interval's collection of every watched process.  The root's tracking
 * ending ends the watch; a descendant that exits or loses tracking leaves it.
 */
static int watch_collect(struct watched **w, int n, const struct args *a)
{
	for (int i = 0; i < n; i++) {
		if (!w[i]->open)
			continue;
		/* stopped under us, or its holder killed: say so, do not track on alone */
		if (tracker_holder_alive(&w[i]->t) || tracker_collect(&w[i]->t, true, &w[i]->dirty)) {
			bool f = false;

			if (!i)
				return -1;
			dt_err_clear();
			watch_close(w[i], &f);
			continue;
		}
		if (a->threads)
			thread_cpus_sample(w[i]->pid, &w[i]->cpus);
	}
	return 0;
}

int cmd_watch(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct watched **w;
	struct args a;
	bool failed = false;
	uint64_t t0 = 0, prev, next, total_pages = 0;
	int done = 0, n = 1;
	int r = parse_args(argc, argv, &a);

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	w = xcalloc(1, sizeof(*w));
	w[0] = xcalloc(1, sizeof(**w));
	if (watch_add(w[0], a.pid, &a, false)) {
		failed = true;
		goto out;
	}
	if (a.tree && watch_rescan(a.pid, &w, &n, &a)) {
		failed = true;
		goto out;
	}
	for (int i = 0; i < n; i++)
		w[i]->fresh = false;	/* the first interval starts clean for all */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!json_output)
		print_header(a.verbose);
	t0 = prev = now_ns();
	next = t0 + (uint64_t)a.interval_ms * 1000000ULL;
	for (int i = 1; !interrupted && (!a.count || i <= a.count); i++) {
		uint64_t now;

		sleep_until(next);
		for (int k = 0; k < n; k++)
			w[k]->fresh = false;
		if (watch_collect(w, n, &a) || (a.tree && watch_rescan(a.pid, &w, &n, &a))) {
			failed = true;
			break;
		}
		now = now_ns();
		if (a.tree)
			print_tree_interval(w, n, i, (now - t0) / 1e9, (now - prev) / 1e9, &a);
		else
			print_interval(&w[0]->t, &w[0]->dirty, i, (now - t0) / 1e9, (now - prev) / 1e9, &a,
				       &w[0]->cpus);
		for (int k = 0; k < n; k++)
			if (w[k]->open)
				total_pages += range_set_pages(&w[k]->dirty);
		done = i;
		prev = now;
		next += (uint64_t)a.interval_ms * 1000000ULL;
		if (next < now)
			next = now;
	}
	if (interrupted)
		print_totals(done, total_pages, (now_ns() - t0) / 1e9);
out:
	{
		struct dt_err_saved first;

		dt_err_save(&first);
		for (int i = 0; i < n; i++) {
			watch_close(w[i], &failed);
			free(w[i]);
		}
		dt_err_restore(&first);
	}
	free(w);
	if (failed)
		return report_error();
	return DT_EXIT_OK;
}
