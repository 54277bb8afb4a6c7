/* SPDX-License-Identifier: MIT */
#ifndef DT_ARGS_H
#define DT_ARGS_H

#include <stdbool.h>
#include <sys/types.h>

#include "pagemap/dirty.h"

enum {
	ARG_PID = 1 << 0,
	ARG_SCAN = 1 << 1,
	ARG_INTERVAL = 1 << 2,
	ARG_COUNT = 1 << 3,
	ARG_VERBOSE = 1 << 4,
	ARG_PAGES = 1 << 5,
	ARG_DUMP = 1 << 6,	/* -D --parent --freeze --leave-stopped --full-if-needed */
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
};

/* Reports its own errors; ARGS_FAIL means "exit with DT_EXIT_ERROR". */
int parse_args(int argc, char **argv, unsigned int allowed, struct args *a);

#endif
