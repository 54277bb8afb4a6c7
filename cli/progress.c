// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "lib/util.h"

#define PROGRESS_AFTER_NS 1000000000ULL	/* quiet for the first second */
#define PROGRESS_EVERY_NS 200000000ULL

void progress_begin(struct progress *p, const char *what)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->on = !json_output && isatty(STDERR_FILENO);
	p->t0 = now_ns();
}

void progress_report(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	char d[32], t[32], rate[32], left[32] = "";
	uint64_t now;
	double s, bps;

	if (!p || !p->on)
		return;
	now = now_ns();
	if (now - p->t0 < PROGRESS_AFTER_NS || (p->shown && now - p->last < PROGRESS_EVERY_NS))
		return;
	s = (now - p->t0) / 1e9;
	bps = done / s;
	human_size(done, d, sizeof(d));
	human_size(total, t, sizeof(t));
	human_size((uint64_t)bps, rate, sizeof(rate));
	if (bps > 0 && total > done)
		snprintf(left, sizeof(left), ", about %.0f s left", (total - done) / bps);
	fprintf(stderr, "\r\033[K%s: %s of %s (%.0f%%), %s/s%s", p->what, d, t,
		total ? 100.0 * done / total : 100.0, rate, left);
	fflush(stderr);
	p->shown = true;
	p->last = now;
}

void progress_end(struct progress *p)
{
	if (p && p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->shown = false;
	}
}
