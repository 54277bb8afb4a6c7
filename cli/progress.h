/* SPDX-License-Identifier: MIT */
/*
 * Progress of long work (a dump, a verify) on standard error: only when it
 * is a terminal and the output is not JSON, and only once the work has run
 * for a second.  Lower layers call a dt_progress_fn; this is the one that
 * prints.
 */
#ifndef DT_PROGRESS_H
#define DT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	char what[96];		/* "dump ckpt/2" */
	bool on;		/* stderr is a terminal and not -j */
	bool shown;		/* a line is on the screen */
	uint64_t t0, last;	/* ns */
};

void progress_begin(struct progress *p, const char *what);
/* A dt_progress_fn (lib/util.h): bytes done of total. */
void progress_report(void *p, uint64_t done, uint64_t total);
/* Clear the line, if one was shown. */
void progress_end(struct progress *p);

#endif
