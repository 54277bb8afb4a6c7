// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/proc.h"
#include "tracker/tree.h"

#define TREE_MAX 65536
#define TREE_WALKS 8

static void tree_add(struct proc_tree *t, pid_t pid, pid_t ppid,
		     unsigned long long start)
{
	if (t->n == t->cap)
		t->p = xrealloc(t->p, (size_t)(t->cap = t->cap ? t->cap * 2 : 16) * sizeof(*t->p));
	t->p[t->n++] = (struct tree_proc){ pid, ppid, start };
}

void tree_append(struct proc_tree *t, const struct tree_proc *p)
{
	tree_add(t, p->pid, p->ppid, p->start_time);
}

int tree_find(const struct proc_tree *t, pid_t pid)
{
	for (int i = 0; i < t->n; i++)
		if (t->p[i].pid == pid)
			return i;
	return -1;
}

/* The children of every thread of pid (a thread's children are the process's). */
static int add_children(struct proc_tree *t, pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	proc_path(pid, "task", path, sizeof(path));
	d = opendir(path);
	if (!d)
		return 0;	/* gone meanwhile: it has no children to follow */
	while ((de = readdir(d))) {
		char name[96], *buf, *s, *end;
		int tid;

		if (!parse_int(de->d_name, &tid))
			continue;
		snprintf(name, sizeof(name), "%s/%d/children", path, tid);
		buf = read_file(name, NULL);
		if (!buf) {
			if (errno == ENOENT || errno == ESRCH)
				continue;
			closedir(d);
			return dt_err_sys(0, "reading %s", name);
		}
		for (s = buf; *s; s = end) {
			long c = strtol(s, &end, 10);
			struct proc_stat st;

			if (end == s)
				break;
			if (c <= 0 || tree_find(t, (pid_t)c) >= 0)
				continue;
			if (t->n >= TREE_MAX) {
				free(buf);
				closedir(d);
				return dt_err(DT_EXIT_ERROR, "process %d has more than %d descendants",
					      t->p[0].pid, TREE_MAX);
			}
			/* a zombie child has nothing to dump: leave it out */
			if (proc_stat_read((pid_t)c, &st) == 0)
				tree_add(t, (pid_t)c, pid, st.start_time);
		}
		free(buf);
	}
	closedir(d);
	return 0;
}

int tree_single(pid_t root, struct proc_tree *t)
{
	struct proc_stat st;

	memset(t, 0, sizeof(*t));
	if (proc_stat_read(root, &st))
		return -1;
	tree_add(t, root, st.ppid, st.start_time);
	return 0;
}

static int walk(pid_t root, struct proc_tree *t)
{
	if (tree_single(root, t))
		return -1;
	for (int i = 0; i < t->n; i++)
		if (add_children(t, t->p[i].pid)) {
			tree_free(t);
			return -1;
		}
	return 0;
}

static bool same_tree(const struct proc_tree *a, const struct proc_tree *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++) {
		int j = tree_find(b, a->p[i].pid);

		if (j < 0 || b->p[j].start_time != a->p[i].start_time || b->p[j].ppid != a->p[i].ppid)
			return false;
	}
	return true;
}

int tree_scan(pid_t root, struct proc_tree *t)
{
	struct proc_tree again;

	if (walk(root, t))
		return -1;
	for (int k = 0; k < TREE_WALKS; k++) {
		if (walk(root, &again)) {
			tree_free(t);
			return -1;
		}
		if (same_tree(t, &again)) {
			tree_free(&again);
			return 0;
		}
		tree_free(t);
		*t = again;
	}
	/* forking faster than we read: what we have is a moment's tree */
	return 0;
}

void tree_free(struct proc_tree *t)
{
	free(t->p);
	t->p = NULL;
	t->n = t->cap = 0;
}
