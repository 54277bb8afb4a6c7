/* SPDX-License-Identifier: MIT */
/*
 * The images around the pages: inventory (with dirtytrack's session
 * identity in fields crit does not know), pstree, mm, core, stats.
 */
#ifndef DT_META_H
#define DT_META_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "tracker/proc.h"
#include "tracker/unwind.h"

#define DUMP_ID_LEN 32

/* Who was dumped, in which tracking session, after which collection. */
struct dump_identity {
	pid_t pid;
	unsigned long long start_time;
	uint64_t uffd_ino;
	uint64_t generation;		/* the session's collections after this dump's */
	uint32_t iteration;		/* 1 for a full dump, parent's + 1 after */
	char id[DUMP_ID_LEN + 1];
	char parent_id[DUMP_ID_LEN + 1];
	bool full, frozen;
	char scan[16];
	uint64_t dump_unix;
};

struct dump_stats {
	uint64_t freezing_us, frozen_us, memdump_us, memwrite_us;
	uint64_t pages_scanned, pages_skipped_parent, pages_written;
};

/* Signals pending, as PTRACE_PEEKSIGINFO gives them (not dequeued). */
struct sigqueue {
	siginfo_t *sig;
	int n;
};

struct thread_regs {
	pid_t tid;
	bool valid;
	struct user_regs_struct regs;
	struct user_fpregs_struct fpregs;
	struct sigqueue pending;	/* frozen dumps: this thread's own queue */
	bool has_bt;			/* frozen dumps: where the thread was */
	struct backtrace bt;
};

/* A thread as a dump recorded it (core-TID.img), for show. */
struct dump_thread {
	pid_t tid;
	char comm[32];
	bool has_regs;
	uint64_t ip, sp;
	int *pending;			/* signal numbers, in queue order */
	int npending;
	bool has_bt;
	struct backtrace bt;
};

struct dump;

void dump_identity_new_id(char id[DUMP_ID_LEN + 1]);
int meta_write_inventory(int dirfd, const struct dump_identity *id);
int meta_read_identity(const struct dump *d, struct dump_identity *id);
/* One process of a dumped tree, with its tracking session (0: untracked). */
struct pstree_proc {
	const struct proc_stat *st;
	const pid_t *tids;
	int n;
	uint64_t uffd_ino, generation;
	bool full;			/* stored whole, no page in the parent */
	bool forks_known;		/* every fork since tracking began was counted */
	uint64_t forks;
};

/* pstree.img: the root first, parents before their children. */
int meta_write_pstree(int dirfd, const struct pstree_proc *procs, int nprocs);
int meta_write_mm(int dirfd, const struct proc_stat *st, const struct vma_list *vmas);
/* shared: the process's queue, written with the main thread (may be NULL). */
int meta_write_core(int dirfd, pid_t pid, const struct proc_stat *st, const struct thread_regs *t,
		    const struct sigqueue *shared);
/*
 * Every thread of dump d, from its core images; *shared gets the process's
 * pending signals.  Free with meta_threads_free.
 */
int meta_read_threads(const struct dump *d, struct dump_thread **out, int *n,
		      struct dump_thread *shared);
void meta_threads_free(struct dump_thread *t, int n, struct dump_thread *shared);
int meta_write_stats(int dirfd, const struct dump_stats *s);
/* Copy an image file of this magic unchanged (flatten keeps pstree, mm, core). */
int meta_copy_file(int from_dirfd, int to_dirfd, const char *name, uint32_t magic);

#endif
