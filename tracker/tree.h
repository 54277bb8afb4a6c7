/* SPDX-License-Identifier: MIT */
/*
 * A process and all its descendants, as /proc/PID/task/TID/children lists
 * them: the unit a tree dump covers.  Parents come before their children.
 */
#ifndef DT_TREE_H
#define DT_TREE_H

#include <stdbool.h>
#include <sys/types.h>

struct tree_proc {
	pid_t pid, ppid;
	unsigned long long start_time;
};

struct proc_tree {
	struct tree_proc *p;	/* p[0] is the root */
	int n, cap;
};

/*
 * The tree under root now: read until two walks agree (a fork during the
 * walk is seen), at most a few times.  The root must exist.
 */
int tree_scan(pid_t root, struct proc_tree *t);
/* Only the root: a dump without --tree is a tree of one. */
int tree_single(pid_t root, struct proc_tree *t);
int tree_find(const struct proc_tree *t, pid_t pid);
/* One found later (a child forked while the tree was being stopped). */
void tree_append(struct proc_tree *t, const struct tree_proc *p);
void tree_free(struct proc_tree *t);

#endif
