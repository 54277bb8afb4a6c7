/* SPDX-License-Identifier: MIT */
#ifndef DT_ARGS_H
#define DT_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagemap/dirty.h"

enum {
	ARG_PID = 1 << 0,
	ARG_SCAN = 1 << 1,
	ARG_INTERVAL = 1 << 2,
	ARG_COUNT = 1 << 3,
	ARG_VERBOSE = 1 << 4,
	ARG_PAGES = 1 << 5,
	ARG_PRECOPY = 1 << 12,	/* -D --max-iters --until-* --link-mbps --then */
	ARG_DUMP = 1 << 6,	/* -D --parent --freeze --leave-stopped --full-if-needed */
	ARG_DIR = 1 << 7,	/* a DIR argument (a dump directory), into .dir */
	ARG_OUTPUT = 1 << 8,	/* -o OUT, required */
	ARG_LIVE_PID = 1 << 9,	/* --pid PID: a live process to compare with */
	ARG_BYTES = 1 << 20,	/* --bytes: count changed bytes */
	ARG_DIR_PAIR = 1 << 21,	/* two DIR arguments A B, into .dir and .dir_b */
	ARG_THREADS = 1 << 22,	/* --threads: each thread as the dump recorded it */
};

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_FAIL = -1 };

struct args {
	pid_t pid;
	enum dirty_backend backend;
	int interval_ms;
	int count;		/* 0: until interrupted */
	bool verbose;
	bool pages;		/* list the written ranges */
	const char *dir;	/* -D */
	const char *parent;
	bool freeze, leave_stopped, full_if_needed;
	int max_iters;
	uint64_t until_pages;	/* UINT64_MAX: not given */
	double until_ratio;	/* 0: not given */
	double link_mbps;	/* 0: no link model */
	const char *then;	/* leave-stopped, kill, resume */
	const char *out;	/* -o */
	pid_t live_pid;		/* --pid, 0 when absent */
	bool bytes;		/* --bytes */
	bool threads;		/* --threads */
	const char *dir_b;	/* the second DIR of ARG_DIR_PAIR */
};

/* Reports its own errors; ARGS_FAIL means "exit with DT_EXIT_ERROR". */
int parse_args(int argc, char **argv, unsigned int allowed, struct args *a);

#endif
