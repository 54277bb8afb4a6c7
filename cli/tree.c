// SPDX-License-Identifier: MIT
/* Commands over a process tree (--tree): one document, one process at a time. */
#include "cli/args.h"
#include "cli/cli.h"
#include "lib/err.h"
#include "tracker/tree.h"

/*
 * --tree: every process of the tree, each as one process would be, in a
 * "processes" array under the root's pid.  A process (not the root) that
 * exits meanwhile is left out.
 */
int cli_tree_begin(const struct args *a, struct proc_tree *t)
{
	if (a->tree ? tree_scan(a->pid, t) : tree_single(a->pid, t))
		return -1;
	if (a->tree && json_output) {
		json_hold(&jw);
		json_object_begin(&jw, NULL);
		json_i64(&jw, "pid", a->pid);
		json_bool(&jw, "tree", true);
		json_array_begin(&jw, "processes");
	}
	return 0;
}

void cli_tree_end(const struct args *a, struct proc_tree *t)
{
	if (a->tree && json_output) {
		json_array_end(&jw);
		json_object_end(&jw);
		json_release(&jw, true);
	}
	tree_free(t);
}

bool cli_tree_gone(int i)
{
	if (!i || dt_err_kind() != DT_EXIT_GONE)
		return false;
	dt_err_clear();
	return true;
}
