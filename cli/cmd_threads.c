// SPDX-License-Identifier: MIT
/*
 * threads: where each thread of a process is, with the process stopped
 * only for as long as it takes to look (the frozen time is in the output).
 */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "tracker/tree.h"
#include "lib/syscalls.h"
#include "image/meta.h"
#include "lib/util.h"
#include "tracker/threads.h"

void json_backtrace(const struct backtrace *bt)
{
	json_array_begin(&jw, "frames");
	for (int i = 0; i < bt->n; i++) {
		const struct frame *f = &bt->f[i];

		json_object_begin(&jw, NULL);
		json_i64(&jw, "n", i);
		json_hex(&jw, "ip", f->ip);
		json_hex(&jw, "sp", f->sp);
		if (f->func) {
			json_str(&jw, "function", f->func);
			json_u64(&jw, "offset", f->func_off);
		} else {
			json_null(&jw, "function");
		}
		if (f->map) {
			json_str(&jw, "map", f->map);
			json_hex(&jw, "map_offset", f->map_off);
		} else {
			json_null(&jw, "map");
		}
		if (f->signal_frame)
			json_bool(&jw, "signal_frame", true);
		json_object_end(&jw);
	}
	json_array_end(&jw);
	json_str(&jw, "end", unwind_end_name(bt->end));
}

void print_backtrace(const struct backtrace *bt, const char *indent)
{
	for (int i = 0; i < bt->n; i++) {
		const struct frame *f = &bt->f[i];
		char func[160] = "?", where[320] = "";

		if (f->func)
			snprintf(func, sizeof(func), "%s+%#llx", f->func,
				 (unsigned long long)f->func_off);
		if (f->map && f->map[0] == '/')
			snprintf(where, sizeof(where), "%s+%#llx", f->map,
				 (unsigned long long)f->map_off);
		else if (f->map)
			snprintf(where, sizeof(where), "%s", f->map[0] ? f->map : "[anonymous]");
		else
			snprintf(where, sizeof(where), "[not mapped]");
		printf("%s#%-3d %#018llx %-36s %s%s\n", indent, i, (unsigned long long)f->ip, func,
		       where, f->signal_frame ? " [signal frame]" : "");
	}
	if (bt->end != UNWIND_END_OUTERMOST)
		printf("%s(the trace ends at %s)\n", indent, unwind_end_text(bt->end));
}

void record_backtraces(pid_t pid, struct thread_regs *regs, int n)
{
	struct dt_err_saved before;
	struct unwinder *u;

	dt_err_save(&before);
	u = unwinder_open(pid, UNWIND_DEPTH_DEFAULT);
	for (int i = 0; u && i < n; i++)
		regs[i].has_bt = unwinder_trace(u, regs[i].tid, regs[i].valid ? &regs[i].regs : NULL,
						&regs[i].bt) == 0;
	unwinder_close(u);
	/* the dump goes on whatever happened here; its own errors come later */
	dt_err_restore(&before);
}

static void syscall_text(const struct task_syscall *sc, char *buf, size_t len)
{
	const char *name = syscall_name(sc->nr);
	size_t o;

	if (sc->running || sc->nr < 0) {
		snprintf(buf, len, "%s", sc->running ? "running" : "in user code");
		return;
	}
	if (name)
		o = (size_t)snprintf(buf, len, "in %s(", name);
	else
		o = (size_t)snprintf(buf, len, "in system call %ld(", sc->nr);
	for (int i = 0; i < 6 && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%#llx", i ? ", " : "",
				      (unsigned long long)sc->args[i]);
	if (o < len)
		snprintf(buf + o, len - o, ")");
}

static void json_thread(const struct thread_state *t)
{
	char state[2] = { t->state, 0 };

	json_object_begin(&jw, NULL);
	json_i64(&jw, "tid", t->tid);
	json_str(&jw, "name", t->comm);
	json_str(&jw, "state", state);
	if (!t->sc.running && t->sc.nr >= 0) {
		const char *name = syscall_name(t->sc.nr);

		json_object_begin(&jw, "syscall");
		json_i64(&jw, "nr", t->sc.nr);
		if (name)
			json_str(&jw, "name", name);
		else
			json_null(&jw, "name");
		json_array_begin(&jw, "args");
		for (int i = 0; i < 6; i++)
			json_hex(&jw, NULL, t->sc.args[i]);
		json_array_end(&jw);
		json_object_end(&jw);
	} else {
		json_null(&jw, "syscall");
	}
	if (t->has_regs) {
		json_hex(&jw, "ip", t->regs.rip);
		json_hex(&jw, "sp", t->regs.rsp);
	}
	json_double(&jw, "unwind_ms", t->bt.ns / 1e6);
	json_backtrace(&t->bt);
	json_object_end(&jw);
}

static void print_snapshot(const struct threads_snapshot *s)
{
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_i64(&jw, "pid", s->pid);
		json_str(&jw, "comm", s->comm);
		json_double(&jw, "seize_ms", s->seize_ns / 1e6);
		json_double(&jw, "frozen_ms", s->frozen_ns / 1e6);
		json_array_begin(&jw, "threads");
		for (int i = 0; i < s->n; i++)
			json_thread(&s->t[i]);
		json_array_end(&jw);
		json_object_end(&jw);
		return;
	}
	printf("process %d (%s): %d thread%s, stopped %.2f ms to seize, frozen %.2f ms\n",
	       s->pid, s->comm, s->n, s->n == 1 ? "" : "s", s->seize_ns / 1e6, s->frozen_ns / 1e6);
	for (int i = 0; i < s->n; i++) {
		const struct thread_state *t = &s->t[i];
		char sc[256];

		syscall_text(&t->sc, sc, sizeof(sc));
		printf("\nthread %d (%s) state %c, %s\n", t->tid, t->comm, t->state, sc);
		if (t->has_regs)
			printf("  ip %#llx sp %#llx, unwound in %.3f ms\n",
			       (unsigned long long)t->regs.rip, (unsigned long long)t->regs.rsp,
			       t->bt.ns / 1e6);
		print_backtrace(&t->bt, "  ");
	}
}

int cmd_threads(int argc, char **argv)
{
	struct threads_snapshot s;
	struct proc_tree tree;
	struct args a;
	int r = parse_args(argc, argv, &a);

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	if (cli_tree_begin(&a, &tree))
		return report_error();
	for (int i = 0; i < tree.n; i++) {
		if (threads_snapshot(tree.p[i].pid, a.depth, &s)) {
			if (cli_tree_gone(i))
				continue;
			json_release(&jw, false);
			tree_free(&tree);
			return report_error();
		}
		print_snapshot(&s);
		threads_snapshot_free(&s);
	}
	cli_tree_end(&a, &tree);
	return DT_EXIT_OK;
}
