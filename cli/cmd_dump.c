// SPDX-License-Identifier: MIT
/* dump: one full or incremental dump (the pipeline lives in cli/dump.c). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/dump.h"
#include "cli/progress.h"
#include "tracker/proc.h"
#include "lib/util.h"

/* What the kernel may write unseen: said on stderr, whatever the output mode. */
void warn_unseen(const struct dump_report *r)
{
	if (r->pinned_unattributed)
		fprintf(stderr, "dirtytrack %s: warning: process %d has %llu KiB of pinned memory that "
			"no io_uring buffer explains (RDMA, vfio?): the kernel may write it unseen\n",
			prog_cmd, r->id.pid, (unsigned long long)(r->pinned_unattributed / 1024));
	if (r->io_uring_queued || r->aio_contexts)
		fprintf(stderr, "dirtytrack %s: warning: process %d has asynchronous I/O that may be "
			"in flight (%d io_uring submissions queued, %d Linux AIO contexts)\n", prog_cmd,
			r->id.pid, r->io_uring_queued, r->aio_contexts);
}

void print_dump_report(const struct dump_report *r)
{
	warn_unseen(r);
	char size[32];
	uint64_t bytes = r->pages_written * PAGE_SIZE;

	human_size(bytes, size, sizeof(size));
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_str(&jw, "dir", r->dir);
		json_i64(&jw, "pid", r->id.pid);
		json_str(&jw, "id", r->id.id);
		json_bool(&jw, "full", r->id.full);
		json_u64(&jw, "iteration", r->id.iteration);
		if (r->parent[0])
			json_str(&jw, "parent", r->parent);
		else
			json_null(&jw, "parent");
		if (r->full_because)
			json_str(&jw, "full_because", r->full_because);
		json_u64(&jw, "pages_dirty", r->pages_dirty);
		json_u64(&jw, "pages_scanned", r->pages_scanned);
		json_u64(&jw, "pages_present", r->pages_present);
		json_u64(&jw, "pages_parent", r->pages_parent);
		json_u64(&jw, "pages_written", r->pages_written);
		json_u64(&jw, "bytes_written", bytes);
		json_u64(&jw, "pages_vanished", r->pages_vanished);
		json_u64(&jw, "pinned_pages", r->pinned_pages);
		json_u64(&jw, "pinned_unattributed_bytes", r->pinned_unattributed);
		if (r->id.frozen) {
			json_i64(&jw, "io_uring_queued", r->io_uring_queued);
			json_i64(&jw, "aio_contexts", r->aio_contexts);
		}
		json_bool(&jw, "frozen", r->id.frozen);
		json_bool(&jw, "left_stopped", r->left_stopped);
		json_bool(&jw, "tracking_started", r->started_tracking);
		json_double(&jw, "freeze_ms", r->freeze_us / 1e3);
		json_double(&jw, "collect_ms", r->collect_ns / 1e6);
		json_double(&jw, "dump_ms", r->total_ns / 1e6);
		json_bool(&jw, "tree", r->tree);
		json_array_begin(&jw, "processes");
		for (int i = 0; i < r->nprocs; i++) {
			const struct dump_proc_report *p = &r->procs[i];

			json_object_begin(&jw, NULL);
			json_i64(&jw, "pid", p->pid);
			json_i64(&jw, "ppid", p->ppid);
			json_str(&jw, "comm", p->comm);
			json_bool(&jw, "full", p->full);
			if (p->full_because)
				json_str(&jw, "full_because", p->full_because);
			else
				json_null(&jw, "full_because");
			json_bool(&jw, "tracking_started", p->started_tracking);
			json_u64(&jw, "pages_dirty", p->pages_dirty);
			json_u64(&jw, "pages_present", p->pages_present);
			json_u64(&jw, "pages_parent", p->pages_parent);
			json_u64(&jw, "pages_written", p->pages_written);
			json_u64(&jw, "pages_vanished", p->pages_vanished);
			json_object_end(&jw);
		}
		json_array_end(&jw);
		json_array_begin(&jw, "shared");
		for (int k = 0; k < r->nshm; k++) {
			const struct dump_shm_report *o = &r->shm[k];

			json_object_begin(&jw, NULL);
			json_u64(&jw, "shmid", o->shmid);
			json_i64(&jw, "mappings", o->mappings);
			json_bool(&jw, "incremental", o->incremental);
			if (o->whole_because)
				json_str(&jw, "whole_because", o->whole_because);
			else
				json_null(&jw, "whole_because");
			json_u64(&jw, "pages_content", o->pages_content);
			json_u64(&jw, "pages_present", o->pages_present);
			json_u64(&jw, "pages_parent", o->pages_parent);
			json_u64(&jw, "pages_written", o->pages_written);
			json_object_end(&jw);
		}
		json_array_end(&jw);
		json_object_end(&jw);
		return;
	}
	if (r->full_because && r->id.full)
		fprintf(stderr, "dirtytrack %s: taking a full dump: %s\n", prog_cmd, r->full_because);
	for (int i = 1; i < r->nprocs; i++)
		if (r->procs[i].full_because && !r->id.full)
			fprintf(stderr, "dirtytrack %s: process %d (%s) stored whole: %s\n", prog_cmd,
				r->procs[i].pid, r->procs[i].comm, r->procs[i].full_because);
	printf("%s: %s dump %u of process %d", r->dir, r->id.full ? "full" : "incremental",
	       r->id.iteration, r->id.pid);
	if (r->tree)
		printf(" and its tree (%d processes, %d shared objects)", r->nprocs, r->nshm);
	printf(": %llu pages written (%s), %llu in parent; %.1f ms",
	       (unsigned long long)r->pages_written, size, (unsigned long long)r->pages_parent,
	       r->total_ns / 1e6);
	if (r->id.frozen)
		printf(", frozen %.1f ms%s", r->freeze_us / 1e3,
		       r->left_stopped ? " (left stopped)" : "");
	printf("\n");
	if (r->pages_vanished)
		printf("%llu pages were unmapped by process %d while it was dumped: they are left out "
		       "of the dump\n", (unsigned long long)r->pages_vanished, r->id.pid);
	if (r->started_tracking)
		printf("tracking of process %d is now on, for the next incremental dump "
		       "('dirtytrack stop %d' turns it off)\n", r->id.pid, r->id.pid);
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* A dump needs a directory of its own: not ".", "..", "/" or their like. */
int check_new_dir(const char *opt, const char *path)
{
	size_t len = strlen(path);
	const char *base;

	while (len > 1 && path[len - 1] == '/')
		len--;
	base = memrchr(path, '/', len);
	base = base ? base + 1 : path;
	len -= base - path;
	if (len == 0 || (len == 1 && *base == '.') || (len == 2 && !strncmp(base, "..", 2)))
		return usage_error("%s %s: a dump needs a new directory of its own, not an existing "
				   "parent of others (give a new name, such as ckpt/1)", opt, path);
	return 0;
}

int cmd_dump(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct dump_request rq = { 0 };
	struct dump_report rep;
	struct progress p;
	char what[96];
	struct args a;
	int r = parse_args(argc, argv, &a);

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if (check_new_dir("-D", a.dir))
		return DT_EXIT_ERROR;
	rq.pid = a.pid;
	rq.dir = a.dir;
	rq.parent = a.parent;
	rq.freeze = a.freeze;
	rq.leave_stopped = a.leave_stopped;
	rq.full_if_needed = a.full_if_needed;
	rq.strict = a.strict;
	rq.no_track = a.no_track;
	rq.tree = a.tree;
	if (a.no_track && (a.parent || a.full_if_needed))
		return usage_error("--no-track takes a full dump: it goes with neither --parent nor "
				   "--full-if-needed");
	rq.backend = a.backend;
	snprintf(what, sizeof(what), "dump %s", a.dir);
	progress_begin(&p, what);
	rq.progress = progress_report;
	rq.progress_ctx = &p;
	/* a signal stops the dump cleanly: no directory, the target as it was */
	rq.interrupted = &interrupted;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	r = dump_run(&rq, &rep);
	progress_end(&p);
	if (r)
		return report_error();
	print_dump_report(&rep);
	dump_report_free(&rep);
	return DT_EXIT_OK;
}
