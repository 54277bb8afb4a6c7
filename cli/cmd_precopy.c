// SPDX-License-Identifier: MIT
/*
 * precopy: the pre-copy migration loop.  A full dump while the target runs,
 * then incremental ones while the dirty set shrinks, then a short frozen
 * final dump: BASE/1, BASE/2, ..., BASE/final, each the parent of the next.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/dump.h"
#include "cli/progress.h"
#include "lib/util.h"
#include "tracker/proc.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct loop {
	struct args a;
	int iters;
	uint64_t bytes_total, prev_present;
	uint64_t prev_start;	/* when the previous dump began collecting */
	char last_dir[PATH_MAX];
	const char *verdict;	/* why the loop ended */
	bool converged;
};

/* Seconds the link needs for this many bytes; 0 without a link model. */
static double link_seconds(const struct loop *l, uint64_t bytes)
{
	return l->a.link_mbps > 0 ? (double)bytes * 8 / (l->a.link_mbps * 1e6) : 0;
}

static void print_row(const char *name, const struct dump_report *r,
		      double rate_mib_s, double est_downtime_ms)
{
	warn_unseen(r);
	double mib = (double)r->pages_written * PAGE_SIZE / (1024.0 * 1024.0);

	if (json_output) {
		json_object_begin(&jw, NULL);
		json_str(&jw, "event", strcmp(name, "final") ? "iteration" : "final");
		json_str(&jw, "name", name);
		json_str(&jw, "dir", r->dir);
		json_bool(&jw, "full", r->id.full);
		json_u64(&jw, "pages_dirty", r->pages_dirty);
		json_u64(&jw, "pages_written", r->pages_written);
		json_u64(&jw, "pages_parent", r->pages_parent);
		json_u64(&jw, "bytes_written", r->pages_written * PAGE_SIZE);
		json_double(&jw, "dump_ms", r->total_ns / 1e6);
		json_double(&jw, "freeze_ms", r->freeze_us / 1e3);
		json_double(&jw, "dirty_mib_per_s", rate_mib_s);
		json_double(&jw, "est_downtime_ms", est_downtime_ms);
		json_object_end(&jw);
		return;
	}
	printf("%-6s %10llu %10.2f %10.1f %12.2f %14.1f%s\n", name,
	       (unsigned long long)r->pages_written, mib, r->total_ns / 1e6, rate_mib_s,
	       est_downtime_ms, r->id.full ? "  (full)" : "");
	fflush(stdout);
}

/*
 * Run one dump with SIGINT/SIGTERM held back (a dump is whole or absent),
 * its progress on the terminal.
 */
static int dump_held(struct dump_request *rq, struct dump_report *rep)
{
	struct progress p;
	sigset_t set, old;
	char what[96];
	int r;

	snprintf(what, sizeof(what), "precopy: dump %s", rq->dir);
	progress_begin(&p, what);
	rq->progress = progress_report;
	rq->progress_ctx = &p;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &old);
	r = dump_run(rq, rep);
	sigprocmask(SIG_SETMASK, &old, NULL);
	progress_end(&p);
	return r;
}

/* Every process the final dump holds (the whole tree with --tree). */
static void signal_tree(const struct dump_report *r, int sig)
{
	for (int i = 0; i < r->nprocs; i++)
		kill(r->procs[i].pid, sig);
}

static void wait_interval(double seconds)
{
	uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);

	while (!stop_requested) {
		uint64_t now = now_ns();
		struct timespec ts;

		if (now >= end)
			break;
		ts.tv_sec = (time_t)((end - now) / 1000000000ULL);
		ts.tv_nsec = (long)((end - now) % 1000000000ULL);
		nanosleep(&ts, NULL);
	}
}

/* Should the loop stop after this incremental iteration? */
static bool done_iterating(struct loop *l, const struct dump_report *r)
{
	uint64_t pages = r->pages_written;

	if (pages == 0) {
		l->verdict = "nothing was written in the last interval";
		l->converged = true;
	} else if (l->a.until_pages != UINT64_MAX && pages <= l->a.until_pages) {
		l->verdict = "the dirty set fell under --until-pages";
		l->converged = true;
	} else if (l->a.until_ratio > 0 && l->iters > 2 && l->prev_present &&
		   pages <= l->a.until_ratio * l->prev_present) {
		l->verdict = "the dirty set fell under --until-ratio of the previous iteration";
		l->converged = true;
	} else if (l->iters > 2 && pages >= l->prev_present) {
		l->verdict = "the dirty set stopped shrinking: the workload does not converge at "
			     "this rate";
	} else if (l->iters >= l->a.max_iters) {
		l->verdict = "--max-iters reached";
	}
	l->prev_present = pages;
	return l->verdict != NULL;
}

/*
 * The last line (or JSON event): what was dumped, why the loop ended, and
 * what became of the target (target: "stopped", "killed" or "running").
 */
static void print_summary(const struct loop *l, const struct dump_report *final, bool interrupted,
			  const char *target)
{
	char size[32];

	human_size(l->bytes_total, size, sizeof(size));
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_str(&jw, "event", "summary");
		json_i64(&jw, "iterations", l->iters);
		json_u64(&jw, "bytes_total", l->bytes_total);
		json_bool(&jw, "converged", l->converged);
		json_str(&jw, "reason", interrupted ? "interrupted" : l->verdict);
		json_bool(&jw, "interrupted", interrupted);
		if (final) {
			json_str(&jw, "final", final->dir);
			json_double(&jw, "final_freeze_ms", final->freeze_us / 1e3);
		} else {
			json_null(&jw, "final");
			json_null(&jw, "final_freeze_ms");
		}
		json_str(&jw, "last", l->last_dir);
		json_str(&jw, "then", precopy_then_names[l->a.then]);
		json_str(&jw, "target", target);
		json_object_end(&jw);
		return;
	}
	if (interrupted) {
		printf("interrupted: %d complete dumps%s in %s (latest %s); the target is %s\n",
		       l->iters, final ? " and the final one" : "", l->a.dir,
		       l->last_dir[0] ? l->last_dir : "none", target);
		return;
	}
	printf("%s\n", l->verdict);
	printf("%d iterations and a final dump, %s written in all; final freeze %.1f ms "
	       "(the downtime of a cut-over)%s; --then %s: the target is %s\n", l->iters, size,
	       final->freeze_us / 1e3, l->converged ? "" : "; did not converge",
	       precopy_then_names[l->a.then], target);
}

/* SIGINT or SIGTERM: the complete dumps stay, the target runs on. */
static int interrupted(const struct loop *l, const struct dump_report *final)
{
	print_summary(l, final, true, "running");
	return DT_EXIT_INTERRUPTED;
}

static int precopy(int argc, char **argv, struct dump_report *repp, struct dump_report *finalp)
{
	struct sigaction sa = { .sa_handler = on_stop };
	struct dump_request rq = { 0 };
	struct loop l = { 0 };
	struct proc_stat st;
	char dir[PATH_MAX], base[PATH_MAX];
	int r = parse_args(argc, argv, &l.a);

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	snprintf(base, sizeof(base), "%s", l.a.dir);
	while (strlen(base) > 1 && base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = '\0';
	l.a.dir = base;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* nothing is created for a process that is not there, or not ours to trace */
	if (proc_stat_read(l.a.pid, &st))
		return report_error();
	rq.pid = l.a.pid;
	rq.make_parent_dir = true;	/* BASE, by the first dump once it may trace */
	rq.backend = l.a.backend;
	rq.strict = l.a.strict;
	rq.tree = l.a.tree;
	if (!json_output)
		printf("%-6s %10s %10s %10s %12s %14s\n", "ITER", "PAGES", "MiB", "DUMP(ms)",
		       "DIRTY MiB/s", "DOWNTIME~(ms)");
	for (;;) {
		uint64_t started = now_ns();
		double wait_s, rate;

		snprintf(dir, sizeof(dir), "%s/%d", l.a.dir, l.iters + 1);
		rq.dir = dir;
		rq.parent = l.iters ? l.last_dir : NULL;
		dump_report_free(repp);
		if (dump_held(&rq, repp))
			return report_error();
		l.iters++;
		l.bytes_total += repp->pages_written * PAGE_SIZE;
		snprintf(l.last_dir, sizeof(l.last_dir), "%s", repp->dir);
		/* written since the previous dump, per second of wall time */
		rate = l.iters > 1 ? repp->pages_written * (double)PAGE_SIZE / (1024.0 * 1024.0) /
					     ((started - l.prev_start) / 1e9)
				   : 0;
		l.prev_start = started;
		/* a cut-over now would freeze for about one such dump (and its transfer) */
		print_row(dir + strlen(l.a.dir) + 1, repp, rate,
			  repp->total_ns / 1e6 + link_seconds(&l, repp->pages_written * PAGE_SIZE) * 1e3);
		if (stop_requested)
			break;
		if (l.iters > 1 && done_iterating(&l, repp))
			break;
		if (l.iters == 1)
			l.prev_present = repp->pages_written;
		if (l.iters >= l.a.max_iters) {
			l.verdict = "--max-iters reached";
			break;
		}
		wait_s = l.a.link_mbps > 0 ? link_seconds(&l, repp->pages_written * PAGE_SIZE)
					   : l.a.interval_ms / 1000.0;
		wait_interval(wait_s);
		if (stop_requested)
			break;
	}
	if (stop_requested)
		return interrupted(&l, NULL);
	/* the last iteration's pages take their interval (or transfer) too */
	wait_interval(l.a.link_mbps > 0 ? link_seconds(&l, repp->pages_written * PAGE_SIZE)
					 : l.a.interval_ms / 1000.0);
	if (stop_requested)
		return interrupted(&l, NULL);
	snprintf(dir, sizeof(dir), "%s/final", l.a.dir);
	rq.dir = dir;
	rq.parent = l.last_dir;
	rq.leave_stopped = l.a.then == THEN_LEAVE_STOPPED || l.a.then == THEN_KILL;
	rq.freeze = !rq.leave_stopped;
	if (dump_held(&rq, finalp))
		return report_error();
	l.bytes_total += finalp->pages_written * PAGE_SIZE;
	snprintf(l.last_dir, sizeof(l.last_dir), "%s", finalp->dir);
	print_row("final", finalp, 0, finalp->freeze_us / 1e3);
	if (stop_requested) {
		/* interrupted during the final dump: it is complete, the target runs on */
		if (finalp->left_stopped)
			signal_tree(finalp, SIGCONT);
		return interrupted(&l, finalp);
	}
	if (l.a.then == THEN_KILL)
		signal_tree(finalp, SIGKILL);
	print_summary(&l, finalp, false, l.a.then == THEN_KILL ? "killed"
					 : finalp->left_stopped ? "stopped" : "running");
	return DT_EXIT_OK;
}

int cmd_precopy(int argc, char **argv)
{
	struct dump_report rep = { 0 }, final = { 0 };
	int r = precopy(argc, argv, &rep, &final);

	dump_report_free(&rep);
	dump_report_free(&final);
	return r;
}
