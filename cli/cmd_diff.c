// SPDX-License-Identifier: MIT
/*
 * diff A B: the memory two dumps describe, compared mapping by mapping.
 * Exits like diff(1): 0 the same, 1 different, 2 trouble.
 */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "image/chain.h"
#include "image/diff.h"
#include "image/verify.h"
#include "lib/util.h"

static const char *row_kind(const struct diff_vma *v)
{
	return v->in_a || v->in_b ? vma_status_name(v->status) : "unmapped";
}

static const char *row_mapped(const struct diff_vma *v)
{
	return v->in_a && v->in_b ? "both" : v->in_a ? "a" : v->in_b ? "b" : "none";
}

static void json_counts(const struct diff_counts *n, bool bytes)
{
	json_u64(&jw, "only_a", n->only_a);
	json_u64(&jw, "only_b", n->only_b);
	json_u64(&jw, "changed", n->changed);
	json_u64(&jw, "unchanged", n->unchanged);
	json_u64(&jw, "written_identical", n->written_identical);
	if (bytes)
		json_u64(&jw, "changed_bytes", n->changed_bytes);
}

static void json_side(const char *key, const struct dump_chain *c, const struct diff_side *s)
{
	json_object_begin(&jw, key);
	json_str(&jw, "dir", c->d[0].path);
	json_i64(&jw, "pid", s->id.pid);
	if (s->has_identity) {
		json_str(&jw, "id", s->id.id);
		json_u64(&jw, "iteration", s->id.iteration);
		json_bool(&jw, "full", s->id.full);
	} else {
		json_null(&jw, "id");
	}
	json_chain("chain", c);
	json_object_end(&jw);
}

static void print_json(const struct args *a, const struct dump_chain *ca,
		       const struct dump_chain *cb, const struct diff_result *r)
{
	json_object_begin(&jw, NULL);
	json_side("a", ca, &r->a);
	json_side("b", cb, &r->b);
	json_bool(&jw, "same_process", r->same_process);
	json_str(&jw, "relation", diff_relation_name(r->relation));
	if (r->relation == DIFF_A_ANCESTOR_OF_B || r->relation == DIFF_B_ANCESTOR_OF_A)
		json_u64(&jw, "distance", (uint64_t)r->distance);
	json_bool(&jw, "differ", diff_differs(r));
	json_array_begin(&jw, "vmas");
	for (size_t i = 0; i < r->nvmas; i++) {
		const struct diff_vma *v = &r->vmas[i];

		json_object_begin(&jw, NULL);
		json_hex(&jw, "start", v->start);
		json_hex(&jw, "end", v->end);
		json_str(&jw, "kind", row_kind(v));
		json_str(&jw, "mapped", row_mapped(v));
		json_counts(&v->n, a->bytes);
		json_object_end(&jw);
	}
	json_array_end(&jw);
	json_object_begin(&jw, "totals");
	json_counts(&r->total, a->bytes);
	json_object_end(&jw);
	if (a->pages) {
		json_ranges("changed_ranges", &r->changed);
		if (a->bytes) {
			/* one number per range of changed_ranges, in the same order */
			json_array_begin(&jw, "changed_ranges_bytes");
			for (size_t i = 0; i < r->changed.n; i++)
				json_u64(&jw, NULL, r->changed_range_bytes[i]);
			json_array_end(&jw);
		}
		json_ranges("only_a_ranges", &r->only_a);
		json_ranges("only_b_ranges", &r->only_b);
	}
	if (a->bytes)
		json_u64(&jw, "changed_bytes", r->total.changed_bytes);
	json_object_end(&jw);
}

static void print_side(const char *name, const struct dump_chain *c, const struct diff_side *s)
{
	printf("%s: %s (pid %d", name, c->d[0].path, (int)s->id.pid);
	if (s->has_identity)
		printf(", dump %u, %s", s->id.iteration, s->id.full ? "full" : "incremental");
	else
		printf(", not written by dirtytrack");
	if (s->depth > 1)
		printf(", %d %s in its chain", s->depth - 1, s->depth > 2 ? "parents" : "parent");
	printf(")\n");
}

static void print_row(int width, const char *range, const char *kind,
		      const struct diff_counts *n, bool bytes)
{
	printf("%-*s %-16s %8llu %8llu %8llu %10llu %17llu",
	       width, range, kind, (unsigned long long)n->only_a, (unsigned long long)n->only_b,
	       (unsigned long long)n->changed, (unsigned long long)n->unchanged,
	       (unsigned long long)n->written_identical);
	if (bytes)
		printf(" %13llu", (unsigned long long)n->changed_bytes);
	printf("\n");
}

/* The three kinds of differing ranges, merged in address order. */
static void print_page_ranges(const struct diff_result *r)
{
	const struct range_set *sets[] = { &r->changed, &r->only_a, &r->only_b };
	static const char *const names[] = { "changed", "only-a", "only-b" };
	size_t at[3] = { 0, 0, 0 };

	for (;;) {
		int best = -1;

		for (int k = 0; k < 3; k++)
			if (at[k] < sets[k]->n &&
			    (best < 0 || sets[k]->r[at[k]].start < sets[best]->r[at[best]].start))
				best = k;
		if (best < 0)
			break;
		{
			size_t i = at[best]++;
			const struct range *x = &sets[best]->r[i];
			uint64_t pages = (x->end - x->start) / PAGE_SIZE;

			printf("  %-8s %012llx-%012llx %llu %s", names[best],
			       (unsigned long long)x->start, (unsigned long long)x->end,
			       (unsigned long long)pages, pages == 1 ? "page" : "pages");
			if (best == 0 && r->changed_range_bytes)
				printf(", %llu %s", (unsigned long long)r->changed_range_bytes[i],
				       r->changed_range_bytes[i] == 1 ? "byte" : "bytes");
			printf("\n");
		}
	}
}

static void print_summary(const struct args *a, const struct diff_result *r)
{
	const struct diff_counts *t = &r->total;

	if (!diff_differs(r)) {
		printf("same: %llu pages, all unchanged, %llu of them written but identical\n",
		       (unsigned long long)t->unchanged, (unsigned long long)t->written_identical);
		return;
	}
	printf("differ: %llu pages changed", (unsigned long long)t->changed);
	if (a->bytes)
		printf(" (%llu bytes)", (unsigned long long)t->changed_bytes);
	printf(", %llu only in a, %llu only in b; %llu unchanged, %llu of them written but "
	       "identical\n", (unsigned long long)t->only_a, (unsigned long long)t->only_b,
	       (unsigned long long)t->unchanged, (unsigned long long)t->written_identical);
}

static void print_text(const struct args *a, const struct dump_chain *ca,
		       const struct dump_chain *cb, const struct diff_result *r)
{
	char range[64];
	int width = 25;

	print_side("a", ca, &r->a);
	print_side("b", cb, &r->b);
	switch (r->relation) {
	case DIFF_SAME:
		printf("relation: the same dump\n");
		break;
	case DIFF_A_ANCESTOR_OF_B:
		printf("relation: a is an ancestor of b (%d %s up)\n", r->distance,
		       r->distance > 1 ? "dumps" : "dump");
		break;
	case DIFF_B_ANCESTOR_OF_A:
		printf("relation: b is an ancestor of a (%d %s up)\n", r->distance,
		       r->distance > 1 ? "dumps" : "dump");
		break;
	default:
		printf("relation: unrelated (neither is in the other's parent chain)\n");
	}
	if (!r->same_process)
		printf("note: a and b are dumps of different processes (pid %d and pid %d)\n",
		       (int)r->a.id.pid, (int)r->b.id.pid);
	for (size_t i = 0; i < r->nvmas; i++) {
		int w = snprintf(range, sizeof(range), "%012llx-%012llx",
				 (unsigned long long)r->vmas[i].start,
				 (unsigned long long)r->vmas[i].end);

		if (w > width)
			width = w;
	}
	printf("\n%-*s %-16s %8s %8s %8s %10s %17s%s\n", width, "RANGE", "KIND", "ONLY-A",
	       "ONLY-B", "CHANGED", "UNCHANGED", "WRITTEN-IDENTICAL",
	       a->bytes ? " CHANGED-BYTES" : "");
	for (size_t i = 0; i < r->nvmas; i++) {
		const struct diff_vma *v = &r->vmas[i];
		char kind[32];

		/* mappings with no content on either side say nothing: -j lists them */
		if (!v->n.only_a && !v->n.only_b && !v->n.changed && !v->n.unchanged)
			continue;
		snprintf(range, sizeof(range), "%012llx-%012llx", (unsigned long long)v->start,
			 (unsigned long long)v->end);
		/* a mapping only one side has is marked with that side */
		snprintf(kind, sizeof(kind), "%s%s", row_kind(v),
			 v->in_a && !v->in_b ? " (a)" : !v->in_a && v->in_b ? " (b)" : "");
		print_row(width, range, kind, &v->n, a->bytes);
	}
	print_row(width, "total", "", &r->total, a->bytes);
	if (a->pages && diff_differs(r)) {
		printf("\n");
		print_page_ranges(r);
	}
	printf("\n");
	print_summary(a, r);
}

/* diff(1) has one error status, whatever the kind of trouble. */
static int diff_error(void)
{
	dt_err_set_kind(DT_EXIT_ERROR);
	return report_error();
}

/* Processes of one tree dump that the other does not hold, by pid. */
static int only_in(const struct dump *x, const struct dump *y, const char *key, bool *differ)
{
	int n = 0;

	if (json_output)
		json_array_begin(&jw, key);
	for (size_t i = 0; i < x->nprocs; i++) {
		if (dump_proc_find(y, x->procs[i].pid))
			continue;
		n++;
		if (json_output)
			json_u64(&jw, NULL, x->procs[i].pid);
		else
			printf("process %u is only in %s\n", x->procs[i].pid, x->path);
	}
	if (json_output)
		json_array_end(&jw);
	*differ |= n > 0;
	return n;
}

/* Trees: process by process (shared memory in each process that maps it). */
static int diff_trees(const struct args *a, struct dump_chain *ca, struct dump_chain *cb,
		      const struct diff_opts *o)
{
	bool differ = false;

	if (json_output) {
		json_hold(&jw);
		json_object_begin(&jw, NULL);
		json_bool(&jw, "tree", true);
		json_array_begin(&jw, "processes");
	}
	for (size_t i = 0; i < ca->d[0].nprocs; i++) {
		unsigned int pid = ca->d[0].procs[i].pid;
		struct diff_result r;

		if (!dump_proc_find(&cb->d[0], pid))
			continue;
		if (chain_select(ca, pid) || chain_select(cb, pid) || dump_diff(ca, cb, o, &r)) {
			json_release(&jw, false);
			return diff_error();
		}
		if (!json_output)
			printf("== process %u\n", pid);
		if (json_output)
			print_json(a, ca, cb, &r);
		else
			print_text(a, ca, cb, &r);
		differ |= diff_differs(&r);
		diff_result_free(&r);
	}
	if (json_output)
		json_array_end(&jw);
	only_in(&ca->d[0], &cb->d[0], "processes_only_a", &differ);
	only_in(&cb->d[0], &ca->d[0], "processes_only_b", &differ);
	if (json_output) {
		json_bool(&jw, "differ", differ);
		json_object_end(&jw);
		json_release(&jw, true);
	}
	return differ ? DT_EXIT_DIFFER : DT_EXIT_OK;
}

int cmd_diff(int argc, char **argv)
{
	struct dump_chain ca = { 0 }, cb = { 0 };
	struct diff_opts o = { 0 };
	struct diff_result r;
	struct args a;
	int ret = parse_args(argc, argv, &a);

	if (ret)
		return ret == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if (chain_open(&ca, a.dir))
		return diff_error();
	if (chain_open(&cb, a.dir_b)) {
		chain_close(&ca);
		return diff_error();
	}
	o.count_bytes = a.bytes;
	if (ca.d[0].nprocs > 1 || cb.d[0].nprocs > 1) {
		ret = diff_trees(&a, &ca, &cb, &o);
		chain_close(&ca);
		chain_close(&cb);
		return ret;
	}
	if (dump_diff(&ca, &cb, &o, &r)) {
		chain_close(&ca);
		chain_close(&cb);
		return diff_error();
	}
	if (json_output)
		print_json(&a, &ca, &cb, &r);
	else
		print_text(&a, &ca, &cb, &r);
	ret = diff_differs(&r) ? DT_EXIT_DIFFER : DT_EXIT_OK;
	diff_result_free(&r);
	chain_close(&ca);
	chain_close(&cb);
	return ret;
}
