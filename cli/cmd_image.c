// SPDX-License-Identifier: MIT
/* show, verify, flatten: looking at dumps, checking them, merging a chain. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cli/args.h"
#include "pstree.pb-c.h"
#include "cli/cli.h"
#include "cli/dump.h"
#include "cli/progress.h"
#include "image/chain.h"
#include "image/flatten.h"
#include "image/verify.h"
#include "lib/util.h"

#define TEXT_MISMATCH_MAX 100

static void prot_string(uint32_t prot, char out[4])
{
	out[0] = prot & PROT_READ ? 'r' : '-';
	out[1] = prot & PROT_WRITE ? 'w' : '-';
	out[2] = prot & PROT_EXEC ? 'x' : '-';
	out[3] = '\0';
}

static void time_string(uint64_t unix_s, char *buf, size_t len)
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	if (!unix_s || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "unknown");
}

/* Open DIR's chain, or report why it is not whole. */
static int open_chain(const char *dir, struct dump_chain *c)
{
	return chain_open(c, dir) ? report_error() : 0;
}

static void signal_name(int sig, char *buf, size_t len)
{
	const char *abbrev = sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;

	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, len, "SIGRTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(buf, len, "signal %d", sig);
}

static void json_signals(const char *key, const struct dump_thread *t)
{
	char name[32];

	json_array_begin(&jw, key);
	for (int i = 0; i < t->npending; i++) {
		signal_name(t->pending[i], name, sizeof(name));
		json_str(&jw, NULL, name);
	}
	json_array_end(&jw);
}

static void print_signals(const struct dump_thread *t)
{
	char name[32];

	for (int i = 0; i < t->npending; i++) {
		signal_name(t->pending[i], name, sizeof(name));
		printf("%s%s", i ? " " : "", name);
	}
	printf("%s\n", t->npending ? "" : "-");
}

/* What show --threads read: each thread as the dump recorded it. */
struct shown_threads {
	struct dump_thread *t, shared;
	int n;
};

static void show_threads(const struct shown_threads *st)
{
	const struct dump_thread *t = st->t, *shared = &st->shared;
	int n = st->n;

	if (json_output) {
		json_array_begin(&jw, "threads");
		for (int i = 0; i < n; i++) {
			json_object_begin(&jw, NULL);
			json_i64(&jw, "tid", t[i].tid);
			json_str(&jw, "comm", t[i].comm);
			if (t[i].has_regs) {
				json_hex(&jw, "ip", t[i].ip);
				json_hex(&jw, "sp", t[i].sp);
			}
			json_signals("pending", &t[i]);
			if (t[i].has_bt) {
				json_object_begin(&jw, "backtrace");
				json_double(&jw, "unwind_ms", t[i].bt.ns / 1e6);
				json_backtrace(&t[i].bt);
				json_object_end(&jw);
			} else {
				json_null(&jw, "backtrace");
			}
			json_object_end(&jw);
		}
		json_array_end(&jw);
		json_signals("pending_shared", shared);
	} else {
		printf("threads (registers, backtraces and pending signals are recorded by frozen "
		       "dumps)\n");
		printf("  %-8s %-16s %-18s %-18s %s\n", "TID", "COMM", "IP", "SP", "PENDING");
		for (int i = 0; i < n; i++) {
			char ip[24] = "-", sp[24] = "-";

			if (t[i].has_regs) {
				snprintf(ip, sizeof(ip), "%#llx", (unsigned long long)t[i].ip);
				snprintf(sp, sizeof(sp), "%#llx", (unsigned long long)t[i].sp);
			}
			printf("  %-8d %-16s %-18s %-18s ", t[i].tid, t[i].comm, ip, sp);
			print_signals(&t[i]);
			if (t[i].has_bt)
				print_backtrace(&t[i].bt, "      ");
		}
		printf("  pending for the whole process: ");
		print_signals(shared);
	}
}

/* The tree: each process's private pages, each shared object's, once. */
static void show_tree(const struct dump *d)
{
	if (json_output)
		json_array_begin(&jw, "processes");
	else
		printf("processes: %zu\n  %-8s %-8s %10s %10s\n", d->nprocs, "pid", "ppid",
		       "private", "in parent");
	for (size_t i = 0; i < d->nprocs; i++) {
		const struct dump_proc *p = &d->procs[i];
		const struct pm_file *pm = &d->pms[p->pm];

		if (json_output) {
			json_object_begin(&jw, NULL);
			json_u64(&jw, "pid", p->pid);
			json_u64(&jw, "ppid", p->ppid);
			json_u64(&jw, "threads", p->pstree->n_threads);
			json_u64(&jw, "pages_present", pm->pages_present);
			json_u64(&jw, "pages_parent", pm->pages_parent);
			json_object_end(&jw);
		} else {
			printf("  %-8u %-8u %10llu %10llu\n", p->pid, p->ppid,
			       (unsigned long long)pm->pages_present,
			       (unsigned long long)pm->pages_parent);
		}
	}
	if (json_output) {
		json_array_end(&jw);
		json_array_begin(&jw, "shared");
	}
	for (size_t i = 0; i < d->npms; i++) {
		const struct pm_file *pm = &d->pms[i];

		if (!pm->shmem)
			continue;
		if (json_output) {
			json_object_begin(&jw, NULL);
			json_u64(&jw, "shmid", pm->key);
			json_u64(&jw, "pages_present", pm->pages_present);
			json_u64(&jw, "pages_parent", pm->pages_parent);
			json_object_end(&jw);
		} else {
			printf("shared memory %llu: %llu pages present, %llu in parent (stored once)\n",
			       (unsigned long long)pm->key, (unsigned long long)pm->pages_present,
			       (unsigned long long)pm->pages_parent);
		}
	}
	if (json_output)
		json_array_end(&jw);
}

static void show_json(const struct dump_chain *c, const struct dump_summary *sums,
		      const struct shown_threads *threads)
{
	const struct dump *d = &c->d[0];
	const struct dump_summary *s = &sums[0];
	char prot[4];

	json_object_begin(&jw, NULL);
	json_str(&jw, "dir", d->path);
	json_u64(&jw, "pid", d->pid);
	if (s->comm[0])
		json_str(&jw, "comm", s->comm);
	else
		json_null(&jw, "comm");
	if (s->has_identity) {
		json_str(&jw, "id", s->id.id);
		json_u64(&jw, "iteration", s->id.iteration);
		json_bool(&jw, "full", s->id.full);
		json_bool(&jw, "frozen", s->id.frozen);
		json_u64(&jw, "dump_unix", s->id.dump_unix);
		if (s->id.parent_id[0])
			json_str(&jw, "parent_id", s->id.parent_id);
		else
			json_null(&jw, "parent_id");
		json_str(&jw, "scan", s->id.scan);
	} else {
		json_null(&jw, "id");
		json_null(&jw, "iteration");
		json_bool(&jw, "full", !d->has_parent);
		json_null(&jw, "frozen");
		json_null(&jw, "dump_unix");
	}
	json_chain("chain", c);
	json_array_begin(&jw, "vmas");
	for (size_t i = 0; i < s->nvmas; i++) {
		const struct vma_pages *v = &s->vmas[i];

		prot_string(v->prot, prot);
		json_object_begin(&jw, NULL);
		json_hex(&jw, "start", v->start);
		json_hex(&jw, "end", v->end);
		json_u64(&jw, "bytes", v->end - v->start);
		json_u64(&jw, "status", v->status);
		json_str(&jw, "kind", vma_status_name(v->status));
		json_str(&jw, "prot", prot);
		json_u64(&jw, "flags", v->flags);
		json_u64(&jw, "pages_present", v->pages_present);
		json_u64(&jw, "pages_parent", v->pages_parent);
		json_object_end(&jw);
	}
	json_array_end(&jw);
	json_u64(&jw, "pages_present", d->pages_present);
	json_u64(&jw, "pages_parent", d->pages_parent);
	json_u64(&jw, "pages_total", d->pages_present + d->pages_parent);
	json_u64(&jw, "pages_outside_vmas", s->pages_outside);
	json_u64(&jw, "pages_bytes", d->pages_size);
	show_tree(d);
	if (threads)
		show_threads(threads);
	json_object_end(&jw);
}

static void show_text(const struct dump_chain *c, const struct dump_summary *sums,
		      const struct shown_threads *threads)
{
	const struct dump *d = &c->d[0];
	const struct dump_summary *s = &sums[0];
	char when[64], size[32], prot[4];

	printf("dump %s\n", d->path);
	printf("  process    %u (%s)\n", d->pid, s->comm[0] ? s->comm : "comm unknown");
	if (s->has_identity) {
		time_string(s->id.dump_unix, when, sizeof(when));
		printf("  dumped     %s\n", when);
		printf("  id         %s\n", s->id.id);
		printf("  kind       %s, iteration %u, %s%s%s\n",
		       s->id.full ? "full" : "incremental", s->id.iteration,
		       s->id.frozen ? "frozen" : "not frozen",
		       s->id.scan[0] ? ", scan " : "", s->id.scan);
	} else {
		printf("  kind       %s (not written by dirtytrack: no session identity)\n",
		       d->has_parent ? "incremental" : "full");
	}
	printf("chain: %d dump%s, newest first\n", c->n, c->n == 1 ? "" : "s");
	for (int i = 0; i < c->n; i++) {
		printf("  %s\n", c->d[i].path);
		if (sums[i].has_identity)
			printf("      id %s, iteration %u, %s, ", sums[i].id.id, sums[i].id.iteration,
			       sums[i].id.full ? "full" : "incremental");
		else
			printf("      ");
		printf("%llu pages present, %llu in parent\n",
		       (unsigned long long)c->d[i].pages_present,
		       (unsigned long long)c->d[i].pages_parent);
	}
	printf("mappings: %zu\n", s->nvmas);
	printf("  %-12s %-12s %10s  %-12s %-4s %8s %9s\n", "start", "end", "size", "kind", "prot",
	       "present", "in parent");
	for (size_t i = 0; i < s->nvmas; i++) {
		const struct vma_pages *v = &s->vmas[i];

		human_size(v->end - v->start, size, sizeof(size));
		prot_string(v->prot, prot);
		printf("  %012llx-%012llx %10s  %-12s %-4s %8llu %9llu\n",
		       (unsigned long long)v->start, (unsigned long long)v->end, size,
		       vma_status_name(v->status), prot, (unsigned long long)v->pages_present,
		       (unsigned long long)v->pages_parent);
	}
	human_size(d->pages_size, size, sizeof(size));
	printf("total: %llu pages present, %llu in parent, %llu described; pages file %s "
	       "(%llu bytes)\n", (unsigned long long)d->pages_present,
	       (unsigned long long)d->pages_parent,
	       (unsigned long long)(d->pages_present + d->pages_parent), size,
	       (unsigned long long)d->pages_size);
	if (s->pages_outside)
		printf("note: %llu described pages lie outside every mapping of the mm image\n",
		       (unsigned long long)s->pages_outside);
	if (d->nprocs > 1 || d->npms > d->nprocs)
		show_tree(d);
	if (threads)
		show_threads(threads);
}

int cmd_show(int argc, char **argv)
{
	struct dump_summary *sums;
	struct shown_threads th = { 0 };
	struct dump_chain c;
	struct args a;
	int r = parse_args(argc, argv, &a), n = 0;

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if ((r = open_chain(a.dir, &c)))
		return r;
	sums = xcalloc(c.n, sizeof(*sums));
	for (; n < c.n; n++)
		if (dump_summarize(&c.d[n], &sums[n]))
			break;
	if (n == c.n && a.threads && meta_read_threads(&c.d[0], &th.t, &th.n, &th.shared))
		n = -1;
	if (n == c.n) {
		if (json_output)
			show_json(&c, sums, a.threads ? &th : NULL);
		else
			show_text(&c, sums, a.threads ? &th : NULL);
		r = DT_EXIT_OK;
		if (a.threads)
			meta_threads_free(th.t, th.n, &th.shared);
	} else {
		r = report_error();
		n = n < 0 ? c.n : n;
	}
	while (n-- > 0)
		dump_summary_free(&sums[n]);
	free(sums);
	chain_close(&c);
	return r;
}

static void print_mismatches(const struct range_set *m)
{
	size_t shown = 0;

	if (json_output) {
		json_ranges("mismatches", m);
		return;
	}
	range_set_for_each(x, m) {
		if (shown++ == TEXT_MISMATCH_MAX) {
			printf("  ... and %zu more ranges (-j lists them all)\n",
			       m->n - TEXT_MISMATCH_MAX);
			break;
		}
		printf("  differs %012llx-%012llx %llu page%s\n", (unsigned long long)x->start,
		       (unsigned long long)x->end,
		       (unsigned long long)((x->end - x->start) / PAGE_SIZE),
		       x->end - x->start == PAGE_SIZE ? "" : "s");
	}
}

/* One process of the dump compared with the live one of the same pid. */
struct verified {
	pid_t pid;
	struct verify_live_result res;
};

static void verify_text_one(const struct verified *v)
{
	const struct verify_live_result *res = &v->res;

	printf("process %d: %llu pages compared (%llu with content in the process, "
	       "%llu held by the chain)\n", v->pid, (unsigned long long)res->pages_compared,
	       (unsigned long long)res->pages_live, (unsigned long long)res->pages_chain);
	if (res->pages_file || res->pages_unmapped)
		printf("  not compared: %llu private file pages the process reads from its "
		       "file, %llu pages outside its mappings with content\n",
		       (unsigned long long)res->pages_file, (unsigned long long)res->pages_unmapped);
	print_mismatches(&res->mismatches);
	if (res->mismatches.n)
		printf("DIFFERENT: %llu pages in %zu ranges differ\n",
		       (unsigned long long)range_set_pages(&res->mismatches), res->mismatches.n);
	else
		printf("EQUAL: the chain holds process %d's memory\n", v->pid);
}

static void verify_json_one(const struct verified *v)
{
	const struct verify_live_result *res = &v->res;

	json_u64(&jw, "pages_compared", res->pages_compared);
	json_u64(&jw, "pages_live", res->pages_live);
	json_u64(&jw, "pages_chain", res->pages_chain);
	json_u64(&jw, "pages_not_compared_file", res->pages_file);
	json_u64(&jw, "pages_not_compared_unmapped", res->pages_unmapped);
	json_u64(&jw, "pages_differ", range_set_pages(&res->mismatches));
	json_bool(&jw, "equal", res->mismatches.n == 0);
	print_mismatches(&res->mismatches);
}

int cmd_verify(int argc, char **argv)
{
	struct verified *v = NULL;
	struct dump_chain c;
	struct args a;
	uint64_t present = 0, parent = 0, total = 0;
	bool live, pid_match, differ = false;
	int r = parse_args(argc, argv, &a), nv = 0;
	const struct dump *top;

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if ((r = open_chain(a.dir, &c)))
		return r;
	top = &c.d[0];
	for (int i = 0; i < c.n; i++) {
		if (dump_check_images(&c.d[i])) {
			chain_close(&c);
			return report_error();
		}
		for (size_t k = 0; k < c.d[i].npms; k++) {
			present += c.d[i].pms[k].pages_present;
			parent += c.d[i].pms[k].pages_parent;
		}
	}
	for (size_t k = 0; k < top->npms; k++)
		total += top->pms[k].pages_present + top->pms[k].pages_parent;
	live = a.live_pid > 0;
	pid_match = !live || dump_proc_find(top, (unsigned int)a.live_pid);
	if (live) {
		/* the root names the tree: every process of it; another pid, that one */
		bool all = (unsigned int)a.live_pid == top->procs[0].pid;
		size_t first = 0, n = all ? top->nprocs : 1;
		struct progress p;

		if (!all && pid_match)
			first = (size_t)(dump_proc_find(top, (unsigned int)a.live_pid) - top->procs);
		v = xcalloc(n, sizeof(*v));
		progress_begin(&p, "verify: comparing");
		for (size_t i = first; i < first + n; i++) {
			pid_t pid = pid_match ? (pid_t)top->procs[i].pid : a.live_pid;

			if (chain_select(&c, top->procs[i].pid) ||
			    verify_live(&c, pid, &v[nv].res, progress_report, &p)) {
				progress_end(&p);
				while (nv--)
					verify_live_result_free(&v[nv].res);
				free(v);
				chain_close(&c);
				return report_error();
			}
			v[nv].pid = pid;
			differ |= v[nv++].res.mismatches.n != 0;
		}
		progress_end(&p);
	}
	if (!pid_match && !json_output)
		fprintf(stderr, "dirtytrack verify: warning: the dump is of process %u, comparing "
			"with process %d\n", top->procs[0].pid, a.live_pid);
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_str(&jw, "dir", top->path);
		json_u64(&jw, "pid", top->procs[0].pid);
		json_u64(&jw, "processes_in_dump", top->nprocs);
		json_bool(&jw, "chain_ok", true);
		json_u64(&jw, "dumps", c.n);
		json_u64(&jw, "pages_total", total);
		json_u64(&jw, "pages_stored", present);
		json_u64(&jw, "pages_parent_refs", parent);
		if (live) {
			json_i64(&jw, "live_pid", a.live_pid);
			json_bool(&jw, "pid_match", pid_match);
			if (nv == 1) {
				verify_json_one(&v[0]);
			} else {
				json_bool(&jw, "equal", !differ);
				json_array_begin(&jw, "processes");
				for (int i = 0; i < nv; i++) {
					json_object_begin(&jw, NULL);
					json_i64(&jw, "pid", v[i].pid);
					verify_json_one(&v[i]);
					json_object_end(&jw);
				}
				json_array_end(&jw);
			}
		}
		json_object_end(&jw);
	} else {
		printf("chain OK: %s, %d dump%s, %llu pages described (%llu stored in the chain, "
		       "%llu in-parent references resolved)\n", top->path, c.n, c.n == 1 ? "" : "s",
		       (unsigned long long)total, (unsigned long long)present,
		       (unsigned long long)parent);
		for (int i = 0; i < nv; i++)
			verify_text_one(&v[i]);
		if (nv > 1)
			printf(differ ? "DIFFERENT: the tree's memory is not what the chain holds\n"
				      : "EQUAL: the chain holds the memory of all %d processes\n", nv);
	}
	r = differ ? DT_EXIT_DIFFER : DT_EXIT_OK;
	for (int i = 0; i < nv; i++)
		verify_live_result_free(&v[i].res);
	free(v);
	chain_close(&c);
	return r;
}

int cmd_flatten(int argc, char **argv)
{
	struct flatten_result res;
	struct dump_chain c;
	struct args a;
	char size[32];
	int r = parse_args(argc, argv, &a);

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if (check_new_dir("-o", a.out))
		return DT_EXIT_ERROR;
	if ((r = open_chain(a.dir, &c)))
		return r;
	if (chain_flatten(&c, a.out, &res)) {
		chain_close(&c);
		return report_error();
	}
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_str(&jw, "dir", a.out);
		json_str(&jw, "from", c.d[0].path);
		json_u64(&jw, "dumps_merged", c.n);
		json_u64(&jw, "pages_present", res.pages_written);
		json_u64(&jw, "pages_bytes", res.bytes);
		json_i64(&jw, "files_copied", res.files_copied);
		json_object_end(&jw);
	} else {
		human_size(res.bytes, size, sizeof(size));
		printf("flattened %d dump%s of %s into %s: %llu pages written (%s)\n", c.n,
		       c.n == 1 ? "" : "s", c.d[0].path, a.out, (unsigned long long)res.pages_written,
		       size);
	}
	chain_close(&c);
	return DT_EXIT_OK;
}
