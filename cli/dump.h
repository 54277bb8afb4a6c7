/* SPDX-License-Identifier: MIT */
/* One dump, as the dump and precopy commands both take it. */
#ifndef DT_CLI_DUMP_H
#define DT_CLI_DUMP_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/meta.h"
#include "lib/util.h"
#include "pagemap/dirty.h"

struct dump_request {
	pid_t pid;
	const char *dir;
	const char *parent;		/* NULL: full dump */
	bool freeze, leave_stopped, full_if_needed;
	bool strict;			/* unseen writes possible: an error, not a warning */
	bool no_track;			/* a full dump that neither starts nor uses tracking */
	bool tree;			/* the process and all its descendants */
	bool make_parent_dir;		/* create dir's parent, once permission is established */
	enum dirty_backend backend;
	/* set by a signal handler: the dump stops, whole or absent */
	volatile sig_atomic_t *interrupted;
	dt_progress_fn progress;	/* NULL: none; hears of the bytes copied */
	void *progress_ctx;
};

/* One process of a dumped tree. */
struct dump_proc_report {
	pid_t pid, ppid;
	char comm[32];
	bool full;			/* stored whole */
	const char *full_because;	/* static text, or NULL */
	bool started_tracking;
	uint64_t pages_dirty, pages_present, pages_parent, pages_written, pages_vanished;
	uint64_t pinned_pages, pinned_unattributed;
	int io_uring_queued, aio_contexts;
};

/* One shared memory object, stored once for the tree. */
struct dump_shm_report {
	uint64_t shmid;
	int mappings;			/* in the tree */
	bool incremental;		/* only its written pages stored */
	const char *whole_because;	/* static text, or NULL */
	uint64_t pages_content, pages_present, pages_parent, pages_written;
};

/* The totals are over the tree, shared objects once. */
struct dump_report {
	char dir[PATH_MAX];
	char parent[PATH_MAX];		/* "" for a full dump */
	struct dump_identity id;
	const char *full_because;	/* static text, or NULL */
	uint64_t pages_dirty, pages_scanned, pages_present, pages_parent, pages_written;
	uint64_t pages_vanished;
	uint64_t freeze_us, collect_ns, total_ns;
	bool left_stopped;
	bool started_tracking;		/* tracking was off and is now on */
	/* memory the kernel writes unseen: stored by content, or warned about */
	uint64_t pinned_pages, pinned_unattributed;
	int io_uring_queued, aio_contexts;	/* frozen dumps: I/O that may be in flight */
	bool tree;
	struct dump_proc_report *procs;	/* root first */
	int nprocs;
	struct dump_shm_report *shm;
	int nshm;
};

/* Take one dump: a complete directory, or nothing and a recorded error. */
int dump_run(const struct dump_request *rq, struct dump_report *rep);
void dump_report_free(struct dump_report *rep);

/* A usage error (reported) when path is ".", "..", "/" and the like. */
int check_new_dir(const char *opt, const char *path);

#endif
