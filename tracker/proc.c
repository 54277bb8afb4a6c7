// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/proc.h"

int proc_stat_parse(const char *buf, struct proc_stat *st)
{
	const char *open = strchr(buf, '('), *close = strrchr(buf, ')');
	unsigned long long f[52];
	const char *p;
	int i;

	/* ") S ...": a stat that ends at the comm has no state to read */
	if (!open || !close || close < open || close[1] != ' ' || !close[2])
		return -1;
	snprintf(st->comm, sizeof(st->comm), "%.*s", (int)(close - open - 1), open + 1);
	p = close + 2;
	st->state = *p++;
	/* Fields 4.. are numbers; f[k] holds field k + 4 (1-based, proc(5)). */
	for (i = 0; i < 49; i++) {
		char *end;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		f[i] = strtoull(p, &end, 10);
		if (end == p)
			f[i] = (unsigned long long)strtoll(p, &end, 10);
		p = end;
	}
	if (i < 19)
		return -1;
	st->ppid = (pid_t)f[0];
	st->start_time = f[18];
	st->utime = f[10];
	st->stime = f[11];
#define FIELD(n) (i > (n) - 4 ? f[(n) - 4] : 0)
	st->start_code = FIELD(26);
	st->end_code = FIELD(27);
	st->start_stack = FIELD(28);
	st->start_data = FIELD(45);
	st->end_data = FIELD(46);
	st->start_brk = FIELD(47);
	st->arg_start = FIELD(48);
	st->arg_end = FIELD(49);
	st->env_start = FIELD(50);
	st->env_end = FIELD(51);
#undef FIELD
	return 0;
}

/* 0 parsed, 1 no such file (the process or thread is gone), -1 garbage */
static int read_stat_file(const char *path, pid_t id, struct proc_stat *st)
{
	char *buf = read_file(path, NULL);
	int r;

	if (!buf)
		return 1;
	memset(st, 0, sizeof(*st));
	st->pid = id;
	r = proc_stat_parse(buf, st);
	free(buf);
	return r ? dt_err(DT_EXIT_ERROR, "%s: cannot parse", path) : 0;
}

int proc_task_stat_read(pid_t pid, pid_t tid, struct proc_stat *st)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	r = read_stat_file(path, tid, st);
	if (r > 0)
		return dt_err(DT_EXIT_GONE, "thread %d of process %d: no such thread", tid, pid);
	return r;
}

int proc_task_syscall_read(pid_t pid, pid_t tid, struct task_syscall *sc)
{
	unsigned long long v[9];
	char path[64], *buf;
	int n;

	memset(sc, 0, sizeof(*sc));
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	buf = read_file(path, NULL);
	if (!buf) {
		int e = errno;
		struct proc_stat st;

		/* an exiting process (or thread) refuses us too: that is gone, not denied */
		if (e == ENOENT || e == ESRCH ||
		    ((e == EACCES || e == EPERM) &&
		     (proc_exiting(pid) || proc_task_stat_read(pid, tid, &st) || st.state == 'Z' ||
		      st.state == 'X' || (!st.start_code && !st.start_stack)))) {
			dt_err_clear();
			return dt_err(DT_EXIT_GONE, "thread %d of process %d: no such thread", tid, pid);
		}
		errno = e;
		return dt_err_sys(0, "%s", path);
	}
	if (!strncmp(buf, "running", 7)) {
		sc->running = true;
		free(buf);
		return 0;
	}
	sc->nr = strtol(buf, NULL, 10);
	n = sscanf(buf, "%*d %llx %llx %llx %llx %llx %llx %llx %llx", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	free(buf);
	/* "-1 SP IP" in user code, "NR A1..A6 SP IP" in a system call */
	if (sc->nr < 0 && n == 2) {
		sc->sp = v[0];
		sc->ip = v[1];
		return 0;
	}
	if (sc->nr < 0 || n != 8)
		return dt_err(DT_EXIT_ERROR, "%s: cannot parse", path);
	memcpy(sc->args, v, sizeof(sc->args));
	sc->sp = v[6];
	sc->ip = v[7];
	return 0;
}

/* A live thread of a process whose main thread is a zombie; 0 if none. */
static pid_t live_thread(pid_t pid)
{
	char path[64];
	struct dirent *de;
	pid_t found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	while (d && !found && (de = readdir(d))) {
		struct proc_stat t;
		int tid;

		if (parse_int(de->d_name, &tid) && tid != pid &&
		    proc_task_stat_read(pid, tid, &t) == 0 && t.state != 'Z' && t.state != 'X')
			found = tid;
	}
	if (d)
		closedir(d);
	return found;
}

static bool leader_is_zombie(pid_t pid)
{
	char path[64], *buf, *p;
	bool z = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	buf = read_file(path, NULL);
	if (buf && (p = strrchr(buf, ')')) && p[1] && p[2])
		z = p[2] == 'Z';
	free(buf);
	return z;
}

pid_t proc_live_tid(pid_t pid)
{
	pid_t tid = leader_is_zombie(pid) ? live_thread(pid) : 0;

	return tid ? tid : pid;
}

void proc_path(pid_t pid, const char *file, char *buf, size_t len)
{
	pid_t tid = proc_live_tid(pid);

	if (tid != pid)
		snprintf(buf, len, "/proc/%d/task/%d/%s", pid, tid, file);
	else
		snprintf(buf, len, "/proc/%d/%s", pid, file);
}

int proc_stat_read(pid_t pid, struct proc_stat *st)
{
	char path[64];
	int r;

	if (pid <= 0)
		return dt_err(DT_EXIT_ERROR, "invalid pid %d", pid);
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	r = read_stat_file(path, pid, st);
	if (r > 0)
		return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
	if (r < 0)
		return -1;
	if (st->state == 'Z' || st->state == 'X') {
		/* the main thread may have exited while others run on */
		pid_t tid = live_thread(pid);
		struct proc_stat t;

		if (!tid || proc_task_stat_read(pid, tid, &t))
			return dt_err(DT_EXIT_GONE, "process %d is a zombie (it has exited)", pid);
		st->state = t.state;
		st->start_code = t.start_code;
		st->end_code = t.end_code;
		st->start_stack = t.start_stack;
		st->start_data = t.start_data;
		st->end_data = t.end_data;
		st->start_brk = t.start_brk;
		st->arg_start = t.arg_start;
		st->arg_end = t.arg_end;
		st->env_start = t.env_start;
		st->env_end = t.env_end;
	}
	return 0;
}

int proc_status_read(pid_t pid, const char *key, int base, uint64_t *val)
{
	char path[64], *buf;
	int found;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	buf = read_file(path, NULL);
	if (!buf)
		return dt_err_sys(errno == ENOENT ? DT_EXIT_GONE : 0, "%s", path);
	found = proc_status_field(buf, key, base, val);
	free(buf);
	return found;
}

bool proc_exiting(pid_t pid)
{
	struct proc_stat st;

	if (proc_stat_read(pid, &st)) {
		dt_err_clear();
		return true;
	}
	return !st.start_code && !st.start_stack;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

int proc_tasks(pid_t pid, pid_t **tids)
{
	char path[64];
	struct dirent *de;
	size_t n = 0, cap = 16;
	pid_t *t;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
	t = xmalloc(cap * sizeof(*t));
	while ((de = readdir(d))) {
		int tid;

		if (!parse_int(de->d_name, &tid))
			continue;
		if (n == cap)
			t = xrealloc(t, (cap *= 2) * sizeof(*t));
		t[n++] = tid;
	}
	closedir(d);
	qsort(t, n, sizeof(*t), cmp_pid);
	*tids = t;
	return (int)n;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static enum vma_kind classify(const struct vma *v)
{
	const char *p = v->path;

	if (!strcmp(p, "[heap]"))
		return VMA_HEAP;
	if (!strcmp(p, "[stack]"))
		return VMA_STACK;
	if (starts_with(p, "[anon_shmem:"))
		return VMA_SHMEM;
	if (starts_with(p, "[anon:") || !*p)
		return v->shared ? VMA_SHMEM : VMA_ANON;
	if (p[0] == '[')
		return VMA_SPECIAL;
	/* the kernel's own names for shared memory objects */
	if (v->shared && (starts_with(p, "/dev/zero") || starts_with(p, "/memfd:") ||
			  starts_with(p, "/SYSV") || starts_with(p, "/dev/shm/") ||
			  (starts_with(p, "/anon_hugepage") && !dt_simulate_missing("hugetlb_shmem"))))
		return VMA_SHMEM;
	if (!v->shared && starts_with(p, "/memfd:"))
		return VMA_FILE_PRIVATE;
	return v->shared ? VMA_FILE_SHARED : VMA_FILE_PRIVATE;
}

static int parse_maps_line(char *line, struct vma *v)
{
	unsigned long long start, end, pgoff, ino;
	char perms[8];
	int pos = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu%n", &start, &end, perms, &pgoff,
		   &v->dev_major, &v->dev_minor, &ino, &pos) != 7)
		return -1;
	v->start = start;
	v->end = end;
	v->pgoff = pgoff;
	v->inode = ino;
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';
	line += pos;
	while (*line == ' ')
		line++;
	v->path = line;
	v->kind = classify(v);
	return 0;
}

int vma_list_parse(struct vma_list *l, char *text)
{
	char *line, *next;
	size_t cap = 64;

	memset(l, 0, sizeof(*l));
	l->text = text;
	l->v = xmalloc(cap * sizeof(*l->v));
	for (line = l->text; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (l->n == cap)
			l->v = xrealloc(l->v, (cap *= 2) * sizeof(*l->v));
		if (parse_maps_line(line, &l->v[l->n])) {
			vma_list_free(l);
			return -1;
		}
		l->n++;
	}
	return 0;
}

int vma_list_read(pid_t pid, struct vma_list *l)
{
	char path[64], *text;

	memset(l, 0, sizeof(*l));
	proc_path(pid, "maps", path, sizeof(path));
	text = read_file(path, NULL);
	if (!text) {
		if (errno == ENOENT || errno == ESRCH)
			return dt_err(DT_EXIT_GONE, "process %d: no such process", pid);
		return dt_err_sys(0, "%s", path);
	}
	if (vma_list_parse(l, text))
		return dt_err(DT_EXIT_ERROR, "%s: cannot parse a line", path);
	return 0;
}

bool proc_status_field(const char *buf, const char *key, int base, uint64_t *out)
{
	size_t n = strlen(key);
	const char *p;
	char *end;

	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, n) || p[n] != ':')
			continue;
		errno = 0;
		*out = strtoull(p + n + 1, &end, base);
		return end != p + n + 1 && !errno;
	}
	return false;
}

void proc_smaps_vmflags(const char *buf, const struct vma_list *l, char (*flags)[96])
{
	const struct vma *cur = NULL;
	const char *p;

	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		char *end;
		unsigned long long a;

		/* a mapping's header line: "start-end perms ..." (parse this line only) */
		a = strtoull(p, &end, 16);
		if (end != p && *end == '-') {
			cur = vma_list_find(l, a);
			continue;
		}
		if (cur && !strncmp(p, "VmFlags:", 8)) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p - 8) : strlen(p + 8);

			snprintf(flags[cur - l->v], 96, "%.*s ", (int)(n < 94 ? n : 94), p + 8);
			cur = NULL;
		}
	}
}

void vma_list_free(struct vma_list *l)
{
	free(l->v);
	free(l->text);
	memset(l, 0, sizeof(*l));
}

const struct vma *vma_list_find(const struct vma_list *l, uint64_t addr)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (addr < l->v[mid].start)
			hi = mid;
		else if (addr >= l->v[mid].end)
			lo = mid + 1;
		else
			return &l->v[mid];
	}
	return NULL;
}

const char *vma_kind_name(enum vma_kind kind)
{
	static const char *const names[] = {
		[VMA_ANON] = "anon", [VMA_HEAP] = "heap", [VMA_STACK] = "stack",
		[VMA_FILE_PRIVATE] = "file", [VMA_FILE_SHARED] = "file-shared",
		[VMA_SHMEM] = "shmem", [VMA_SPECIAL] = "special",
	};

	return kind < VMA_KIND_COUNT ? names[kind] : "?";
}

uint64_t vma_list_user_end(const struct vma_list *l)
{
	size_t i = l->n;

	/* [vsyscall] sits above the user address space: not walkable. */
	while (i > 0 && l->v[i - 1].start >= (1ULL << 56))
		i--;
	return i ? l->v[i - 1].end : 0;
}
