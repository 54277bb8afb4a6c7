/* SPDX-License-Identifier: MIT */
/* What /proc says about a target: its identity, threads and mappings. */
#ifndef DT_PROC_H
#define DT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_stat {
	pid_t pid;
	char state;			/* R S D T t Z X ... */
	char comm[32];
	pid_t ppid;
	unsigned long long start_time;	/* clock ticks since boot: pid reuse check */
	unsigned long long utime, stime;	/* CPU time in user and kernel mode, clock ticks */
	uint64_t start_code, end_code, start_stack;
	uint64_t start_data, end_data, start_brk;
	uint64_t arg_start, arg_end, env_start, env_end;
};

/* Parse the text of /proc/PID/stat; -1 on garbage. */
int proc_stat_parse(const char *buf, struct proc_stat *st);
/* Fails with DT_EXIT_GONE when the process does not exist or is a zombie. */
int proc_stat_read(pid_t pid, struct proc_stat *st);
/*
 * Gone, a zombie, or exiting with its mm shed: the state in which /proc
 * refuses access (EACCES) to files it gave a moment before.
 */
bool proc_exiting(pid_t pid);
/* Same for one thread; does not refuse zombies. */
int proc_task_stat_read(pid_t pid, pid_t tid, struct proc_stat *st);

/*
 * What /proc/PID/task/TID/syscall says: the system call the thread is
 * blocked in (nr >= 0, its six arguments), or nr -1 (in user code, sp and
 * ip still given), or running (on a CPU: nothing more is known).
 */
struct task_syscall {
	bool running;
	long nr;
	uint64_t args[6];
	uint64_t sp, ip;
};
int proc_task_syscall_read(pid_t pid, pid_t tid, struct task_syscall *sc);

/*
 * "/proc/PID/file", or "/proc/PID/task/TID/file" of a live thread when the
 * main thread has exited (its mm and fd table are gone from /proc/PID).
 */
void proc_path(pid_t pid, const char *file, char *buf, size_t len);
/* pid itself, or a live thread when the main thread has exited. */
pid_t proc_live_tid(pid_t pid);

/*
 * A number from /proc/PID/status ("TracerPid", "RssAnon" in kB, ...):
 * 1 found, 0 not there, -1 error.
 */
int proc_status_read(pid_t pid, const char *key, int base, uint64_t *val);

/* Thread ids of pid, ascending; returns the count or -1. */
int proc_tasks(pid_t pid, pid_t **tids);

enum vma_kind {
	VMA_ANON,		/* private anonymous */
	VMA_HEAP,
	VMA_STACK,
	VMA_FILE_PRIVATE,
	VMA_FILE_SHARED,
	VMA_SHMEM,		/* shared anonymous, memfd, SysV, /dev/shm */
	VMA_SPECIAL,		/* [vdso] [vvar] [vsyscall] ... */
	VMA_KIND_COUNT
};

struct vma {
	uint64_t start, end;
	uint64_t pgoff;
	unsigned int prot;	/* PROT_* */
	bool shared;
	unsigned int dev_major, dev_minor;
	uint64_t inode;
	const char *path;	/* "" for anonymous; points into the list */
	enum vma_kind kind;
};

struct vma_list {
	struct vma *v;
	size_t n;
	char *text;		/* the maps file; paths point into it */
};

int vma_list_read(pid_t pid, struct vma_list *l);
/* The text of a maps file (malloc'd; l owns it, even on failure); -1 on garbage. */
int vma_list_parse(struct vma_list *l, char *text);
void vma_list_free(struct vma_list *l);
const struct vma *vma_list_find(const struct vma_list *l, uint64_t addr);
const char *vma_kind_name(enum vma_kind kind);

/* "Key:\tvalue" of a /proc status file, as a number in base; false if absent. */
bool proc_status_field(const char *buf, const char *key, int base, uint64_t *out);
/* VmFlags of each mapping of l from the text of smaps, as " f1 f2 ... " */
void proc_smaps_vmflags(const char *buf, const struct vma_list *l, char (*flags)[96]);

/* End of the highest mapping a scan of the whole address space must cover. */
uint64_t vma_list_user_end(const struct vma_list *l);

#endif
