// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <linux/futex.h>

#include "core.pb-c.h"
#include "image/chain.h"
#include "image/imgfile.h"
#include "image/criu.h"
#include "image/meta.h"
#include "inventory.pb-c.h"
#include "lib/err.h"
#include "lib/util.h"
#include "mm.pb-c.h"
#include "pstree.pb-c.h"
#include "stats.pb-c.h"


static int write_single(int dirfd, const char *name, uint32_t magic, const ProtobufCMessage *m)
{
	struct img_out o;

	if (img_create(&o, dirfd, name, magic))
		return -1;
	if (img_put_msg(&o, m)) {
		img_discard(&o);
		return -1;
	}
	return img_close(&o);
}

void dump_identity_new_id(char id[DUMP_ID_LEN + 1])
{
	unsigned char raw[DUMP_ID_LEN / 2];

	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw)) {
		uint64_t t = now_ns() ^ ((uint64_t)getpid() << 32);

		memset(raw, 0, sizeof(raw));
		memcpy(raw, &t, sizeof(t));
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
}

int meta_write_inventory(int dirfd, const struct dump_identity *id)
{
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	TaskKobjIdsEntry ids = TASK_KOBJ_IDS_ENTRY__INIT;
	struct sysinfo si;

	inv.img_version = 2;
	inv.has_fdinfo_per_id = true;
	inv.fdinfo_per_id = true;
	ids.vm_id = ids.files_id = ids.fs_id = ids.sighand_id = 1;
	inv.root_ids = &ids;
	inv.has_lsmtype = true;
	inv.lsmtype = LSMTYPE__NO_LSM;
	if (sysinfo(&si) == 0) {
		inv.has_dump_uptime = true;
		inv.dump_uptime = (uint64_t)si.uptime * 1000000ULL;
	}
	inv.has_dt_pid = true;
	inv.dt_pid = id->pid;
	inv.has_dt_start_time = true;
	inv.dt_start_time = id->start_time;
	inv.has_dt_uffd_ino = true;
	inv.dt_uffd_ino = id->uffd_ino;
	inv.has_dt_generation = true;
	inv.dt_generation = id->generation;
	inv.has_dt_iteration = true;
	inv.dt_iteration = id->iteration;
	inv.dt_dump_id = (char *)id->id;
	inv.dt_parent_id = id->parent_id[0] ? (char *)id->parent_id : NULL;
	inv.has_dt_full = true;
	inv.dt_full = id->full;
	inv.has_dt_dump_unix = true;
	inv.dt_dump_unix = id->dump_unix;
	inv.dt_scan = (char *)id->scan;
	inv.has_dt_frozen = true;
	inv.dt_frozen = id->frozen;
	return write_single(dirfd, "inventory.img", IMG_INVENTORY_MAGIC, &inv.base);
}

int meta_read_identity(const struct dump *d, struct dump_identity *id)
{
	const InventoryEntry *inv = d->inv;

	memset(id, 0, sizeof(*id));
	if (!inv->has_dt_pid || !inv->has_dt_generation || !inv->dt_dump_id)
		return dt_err(DT_EXIT_ERROR, "dump %s was not written by dirtytrack (no session "
			      "identity in its inventory)", d->path);
	id->pid = (pid_t)inv->dt_pid;
	id->start_time = inv->dt_start_time;
	id->uffd_ino = inv->dt_uffd_ino;
	id->generation = inv->dt_generation;
	id->iteration = inv->dt_iteration;
	snprintf(id->id, sizeof(id->id), "%s", inv->dt_dump_id);
	if (inv->dt_parent_id)
		snprintf(id->parent_id, sizeof(id->parent_id), "%s", inv->dt_parent_id);
	id->full = inv->dt_full;
	id->frozen = inv->dt_frozen;
	if (inv->dt_scan)
		snprintf(id->scan, sizeof(id->scan), "%s", inv->dt_scan);
	id->dump_unix = inv->dt_dump_unix;
	return 0;
}

int meta_write_pstree(int dirfd, const struct pstree_proc *procs, int nprocs)
{
	PstreeEntry *e = xcalloc(nprocs, sizeof(*e));
	const ProtobufCMessage **m = xcalloc(nprocs, sizeof(*m));
	struct img_out o;
	int err = 0;

	for (int k = 0; k < nprocs; k++) {
		const struct pstree_proc *p = &procs[k];
		char path[64], *buf;
		int pgid = 0, sid = 0;

		pstree_entry__init(&e[k]);
		snprintf(path, sizeof(path), "/proc/%d/stat", p->st->pid);
		buf = read_file(path, NULL);
		if (buf && strrchr(buf, ')'))
			sscanf(strrchr(buf, ')') + 2, "%*c %*d %d %d", &pgid, &sid);
		free(buf);
		e[k].pid = p->st->pid;
		e[k].ppid = k ? p->st->ppid : 0;	/* the root's, as CRIU writes it */
		e[k].pgid = pgid;
		e[k].sid = sid;
		e[k].n_threads = p->n;
		e[k].threads = xcalloc(p->n ? p->n : 1, sizeof(uint32_t));
		for (int i = 0; i < p->n; i++)
			e[k].threads[i] = (uint32_t)p->tids[i];
		e[k].has_dt_start_time = e[k].has_dt_uffd_ino = e[k].has_dt_generation = true;
		e[k].has_dt_full = true;
		e[k].dt_start_time = p->st->start_time;
		e[k].dt_uffd_ino = p->uffd_ino;
		e[k].dt_generation = p->generation;
		e[k].dt_full = p->full;
		e[k].has_dt_forks = p->forks_known;
		e[k].dt_forks = p->forks;
		m[k] = &e[k].base;
	}
	if (img_create(&o, dirfd, "pstree.img", IMG_PSTREE_MAGIC))
		err = -1;
	for (int k = 0; k < nprocs && !err; k++)
		err = img_put_msg(&o, m[k]);
	if (!err)
		err = img_close(&o);
	else if (o.fd >= 0)
		img_discard(&o);
	for (int k = 0; k < nprocs; k++)
		free(e[k].threads);
	free(e);
	free(m);
	return err;
}

static uint32_t vma_status(const struct vma *v)
{
	switch (v->kind) {
	case VMA_HEAP:
		return CRIU_VMA_REGULAR | CRIU_VMA_ANON_PRIVATE | CRIU_VMA_HEAP;
	case VMA_STACK:
		return CRIU_VMA_REGULAR | CRIU_VMA_ANON_PRIVATE | CRIU_VMA_STACK;
	case VMA_ANON:
		return CRIU_VMA_REGULAR | CRIU_VMA_ANON_PRIVATE;
	case VMA_FILE_PRIVATE:
		return CRIU_VMA_REGULAR | CRIU_VMA_FILE_PRIVATE;
	case VMA_FILE_SHARED:
		return CRIU_VMA_REGULAR | CRIU_VMA_FILE_SHARED;
	case VMA_SHMEM:
		if (!strncmp(v->path, "/memfd:", 7))
			return CRIU_VMA_REGULAR | CRIU_VMA_FILE_SHARED | CRIU_VMA_MEMFD;
		if (!strncmp(v->path, "/SYSV", 5))
			return CRIU_VMA_REGULAR | CRIU_VMA_ANON_SHARED | CRIU_VMA_SYSVIPC;
		return CRIU_VMA_REGULAR | CRIU_VMA_ANON_SHARED;
	default:
		if (!strcmp(v->path, "[vdso]"))
			return CRIU_VMA_REGULAR | CRIU_VMA_VDSO;
		if (!strncmp(v->path, "[vvar", 5))
			return CRIU_VMA_REGULAR | CRIU_VMA_VVAR;
		if (!strcmp(v->path, "[vsyscall]"))
			return CRIU_VMA_VSYSCALL;
		return CRIU_VMA_REGULAR;
	}
}

/* Anonymous in CRIU's sense: no file behind it (shared anon has shmem's). */
static bool is_anonymous(const struct vma *v)
{
	if (v->kind == VMA_ANON || v->kind == VMA_HEAP || v->kind == VMA_STACK)
		return true;
	return v->kind == VMA_SHMEM && (!strncmp(v->path, "/dev/zero", 9) ||
					!strncmp(v->path, "[anon_shmem:", 12) || !*v->path);
}

int meta_write_mm(int dirfd, const struct proc_stat *st, const struct vma_list *l)
{
	MmEntry mm = MM_ENTRY__INIT;
	VmaEntry *vmas = xcalloc(l->n, sizeof(*vmas));
	VmaEntry **ptrs = xcalloc(l->n, sizeof(*ptrs));
	char name[64], path[64], *auxv;
	size_t auxv_len = 0;
	int err;

	mm.mm_start_code = st->start_code;
	mm.mm_end_code = st->end_code;
	mm.mm_start_data = st->start_data;
	mm.mm_end_data = st->end_data;
	mm.mm_start_stack = st->start_stack;
	mm.mm_start_brk = st->start_brk;
	mm.mm_brk = st->start_brk;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].kind == VMA_HEAP)
			mm.mm_brk = l->v[i].end;
	mm.mm_arg_start = st->arg_start;
	mm.mm_arg_end = st->arg_end;
	mm.mm_env_start = st->env_start;
	mm.mm_env_end = st->env_end;
	mm.exe_file_id = 0;
	proc_path(st->pid, "auxv", path, sizeof(path));
	auxv = read_file(path, &auxv_len);
	if (auxv) {
		mm.n_mm_saved_auxv = auxv_len / sizeof(uint64_t);
		mm.mm_saved_auxv = (uint64_t *)auxv;
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct vma *v = &l->v[i];
		VmaEntry *e = &vmas[i];

		vma_entry__init(e);
		e->start = v->start;
		e->end = v->end;
		e->pgoff = v->pgoff;
		e->shmid = v->kind == VMA_SHMEM ? v->inode : 0;
		e->prot = v->prot;
		e->flags = (v->shared ? MAP_SHARED : MAP_PRIVATE) |
			   (is_anonymous(v) ? MAP_ANONYMOUS : 0) |
			   (v->kind == VMA_STACK ? MAP_GROWSDOWN : 0);
		e->status = vma_status(v);
		e->fd = -1;
		ptrs[i] = e;
	}
	mm.n_vmas = l->n;
	mm.vmas = ptrs;
	snprintf(name, sizeof(name), "mm-%d.img", st->pid);
	err = write_single(dirfd, name, IMG_MM_MAGIC, &mm.base);
	free(auxv);
	free(vmas);
	free(ptrs);
	return err;
}

static uint64_t sig_blocked(pid_t pid, pid_t tid)
{
	char path[64], *buf;
	uint64_t v = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
	buf = read_file(path, NULL);
	if (buf && !proc_status_field(buf, "SigBlk", 16, &v))
		v = 0;
	free(buf);
	return v;
}

/* A queue as CRIU stores it: one siginfo blob per signal (entries in e). */
static SignalQueueEntry *queue_entry(const struct sigqueue *q, SignalQueueEntry *qe,
				     SiginfoEntry **ptrs, SiginfoEntry *e)
{
	signal_queue_entry__init(qe);
	for (int i = 0; i < q->n; i++) {
		siginfo_entry__init(&e[i]);
		e[i].siginfo.len = sizeof(siginfo_t);
		e[i].siginfo.data = (uint8_t *)&q->sig[i];
		ptrs[i] = &e[i];
	}
	qe->n_signals = (size_t)q->n;
	qe->signals = ptrs;
	return qe;
}

/* The backtrace as our fields of the core image (frames in f, pointers in fp). */
static DtBacktraceEntry *backtrace_entry(const struct backtrace *bt, DtBacktraceEntry *e,
					 DtFrameEntry *f, DtFrameEntry **fp)
{
	dt_backtrace_entry__init(e);
	for (int i = 0; i < bt->n; i++) {
		const struct frame *src = &bt->f[i];

		dt_frame_entry__init(&f[i]);
		f[i].ip = src->ip;
		f[i].has_sp = true;
		f[i].sp = src->sp;
		f[i].function = src->func;
		f[i].has_offset = src->func != NULL;
		f[i].offset = src->func_off;
		f[i].map = src->map;
		f[i].has_map_offset = src->map && src->map[0] == '/';
		f[i].map_offset = src->map_off;
		f[i].has_signal_frame = src->signal_frame;
		f[i].signal_frame = src->signal_frame;
		fp[i] = &f[i];
	}
	e->n_frames = (size_t)bt->n;
	e->frames = fp;
	e->end = (char *)unwind_end_name(bt->end);
	e->has_unwind_ns = true;
	e->unwind_ns = bt->ns;
	return e;
}

int meta_write_core(int dirfd, pid_t pid, const struct proc_stat *st, const struct thread_regs *t,
		    const struct sigqueue *shared)
{
	int nsh = shared ? shared->n : 0, nown = t->pending.n, err;
	SiginfoEntry *e = xcalloc((size_t)(nsh + nown + 1), sizeof(*e));
	SiginfoEntry **ptrs = xcalloc((size_t)(nsh + nown + 1), sizeof(*ptrs));
	SignalQueueEntry sq_s, sq_p;
	DtBacktraceEntry bte;
	DtFrameEntry *frames = xcalloc((size_t)t->bt.n + 1, sizeof(*frames));
	DtFrameEntry **fptrs = xcalloc((size_t)t->bt.n + 1, sizeof(*fptrs));
	ThreadCoreEntry thc = THREAD_CORE_ENTRY__INIT;
	struct robust_list_head *rla = NULL;
	size_t rla_len = 0;
	CoreEntry core = CORE_ENTRY__INIT;
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;
	ThreadInfoX86 ti = THREAD_INFO_X86__INIT;
	UserX86RegsEntry gp = USER_X86_REGS_ENTRY__INIT;
	UserX86FpregsEntry fp = USER_X86_FPREGS_ENTRY__INIT;
	char name[64], comm[32];
	const struct user_regs_struct *r = &t->regs;
	const struct user_fpregs_struct *f = &t->fpregs;
	struct proc_stat ts;
	char *pers;

	core.mtype = CORE_ENTRY__MARCH__X86_64;
	tc.task_state = 1;	/* alive */
	pers = read_file(((void)snprintf(name, sizeof(name), "/proc/%d/personality", pid), name),
			 NULL);
	tc.personality = pers ? (uint32_t)strtoul(pers, NULL, 16) : 0;
	free(pers);
	tc.blk_sigset = sig_blocked(pid, t->tid);
	snprintf(comm, sizeof(comm), "%s",
		 proc_task_stat_read(pid, t->tid, &ts) == 0 ? ts.comm : st->comm);
	tc.comm = comm;
	core.tc = &tc;
	if (t->valid) {
		gp.r15 = r->r15; gp.r14 = r->r14; gp.r13 = r->r13; gp.r12 = r->r12;
		gp.bp = r->rbp; gp.bx = r->rbx; gp.r11 = r->r11; gp.r10 = r->r10;
		gp.r9 = r->r9; gp.r8 = r->r8; gp.ax = r->rax; gp.cx = r->rcx;
		gp.dx = r->rdx; gp.si = r->rsi; gp.di = r->rdi; gp.orig_ax = r->orig_rax;
		gp.ip = r->rip; gp.cs = r->cs; gp.flags = r->eflags; gp.sp = r->rsp;
		gp.ss = r->ss; gp.fs_base = r->fs_base; gp.gs_base = r->gs_base;
		gp.ds = r->ds; gp.es = r->es; gp.fs = r->fs; gp.gs = r->gs;
		gp.has_mode = true;
		gp.mode = USER_X86_REGS_MODE__NATIVE;
		fp.cwd = f->cwd; fp.swd = f->swd; fp.twd = f->ftw; fp.fop = f->fop;
		fp.rip = f->rip; fp.rdp = f->rdp; fp.mxcsr = f->mxcsr;
		fp.mxcsr_mask = f->mxcr_mask;
		fp.n_st_space = 32;
		fp.st_space = (uint32_t *)f->st_space;
		fp.n_xmm_space = 64;
		fp.xmm_space = (uint32_t *)f->xmm_space;
		fp.n_padding = 24;
		fp.padding = (uint32_t *)f->padding;
		ti.gpregs = &gp;
		ti.fpregs = &fp;
		core.thread_info = &ti;
	}
	if (shared && shared->n)
		tc.signals_s = queue_entry(shared, &sq_s, ptrs, e);
	if (t->pending.n)
		thc.signals_p = queue_entry(&t->pending, &sq_p, ptrs + nsh, e + nsh);
	/* the robust futex list: CRIU's thread core needs it */
	syscall(SYS_get_robust_list, t->tid, &rla, &rla_len);
	thc.futex_rla = (uint64_t)(uintptr_t)rla;
	thc.futex_rla_len = (uint32_t)rla_len;
	thc.has_blk_sigset = true;
	thc.blk_sigset = tc.blk_sigset;
	core.thread_core = &thc;
	if (t->has_bt)
		core.dt_backtrace = backtrace_entry(&t->bt, &bte, frames, fptrs);
	snprintf(name, sizeof(name), "core-%d.img", t->tid);
	err = write_single(dirfd, name, IMG_CORE_MAGIC, &core.base);
	free(e);
	free(ptrs);
	free(frames);
	free(fptrs);
	return err;
}

static void signos(const SignalQueueEntry *q, struct dump_thread *t)
{
	t->npending = 0;
	t->pending = xcalloc(q ? q->n_signals + 1 : 1, sizeof(int));
	for (size_t i = 0; q && i < q->n_signals; i++) {
		siginfo_t si;

		if (q->signals[i]->siginfo.len < sizeof(int))
			continue;
		memset(&si, 0, sizeof(si));
		memcpy(&si, q->signals[i]->siginfo.data,
		       q->signals[i]->siginfo.len < sizeof(si) ? q->signals[i]->siginfo.len : sizeof(si));
		t->pending[t->npending++] = si.si_signo;
	}
}

/* Our backtrace fields, as show prints them; an end we do not know reads as unreadable. */
static void read_backtrace(const DtBacktraceEntry *e, struct dump_thread *t)
{
	int end = unwind_end_parse(e->end);
	struct backtrace *bt = &t->bt;

	t->has_bt = true;
	bt->tid = t->tid;
	bt->end = end < 0 ? UNWIND_END_UNREADABLE : (enum unwind_end)end;
	bt->ns = e->has_unwind_ns ? e->unwind_ns : 0;
	bt->n = (int)e->n_frames;
	bt->f = xcalloc(e->n_frames + 1, sizeof(*bt->f));
	for (size_t i = 0; i < e->n_frames; i++) {
		const DtFrameEntry *src = e->frames[i];
		struct frame *f = &bt->f[i];

		f->ip = src->ip;
		f->sp = src->sp;
		f->func = src->function ? xstrdup(src->function) : NULL;
		f->func_off = src->offset;
		f->map = src->map ? xstrdup(src->map) : NULL;
		f->map_off = src->map_offset;
		f->signal_frame = src->signal_frame;
	}
}

int meta_read_threads(const struct dump *d, struct dump_thread **out, int *n,
		      struct dump_thread *shared)
{
	size_t nt = d->pstree->n_threads;
	struct dump_thread *t = xcalloc(nt ? nt : 1, sizeof(*t));

	memset(shared, 0, sizeof(*shared));
	signos(NULL, shared);
	for (size_t i = 0; i < nt; i++) {
		ProtobufCMessage *m;
		CoreEntry *c;
		char name[64];

		t[i].tid = (pid_t)d->pstree->threads[i];
		snprintf(name, sizeof(name), "core-%d.img", t[i].tid);
		if (img_read_single(d->dirfd, name, IMG_CORE_MAGIC, &core_entry__descriptor, &m)) {
			dt_err_prefix("%s: ", d->path);
			meta_threads_free(t, (int)i, shared);
			return -1;
		}
		c = (CoreEntry *)m;
		if (c->tc && c->tc->comm)
			snprintf(t[i].comm, sizeof(t[i].comm), "%s", c->tc->comm);
		if (c->thread_info && c->thread_info->gpregs) {
			t[i].has_regs = true;
			t[i].ip = c->thread_info->gpregs->ip;
			t[i].sp = c->thread_info->gpregs->sp;
		}
		signos(c->thread_core ? c->thread_core->signals_p : NULL, &t[i]);
		if (c->tc && c->tc->signals_s) {
			free(shared->pending);
			signos(c->tc->signals_s, shared);
		}
		if (c->dt_backtrace)
			read_backtrace(c->dt_backtrace, &t[i]);
		core_entry__free_unpacked(c, NULL);
	}
	*out = t;
	*n = (int)nt;
	return 0;
}

void meta_threads_free(struct dump_thread *t, int n, struct dump_thread *shared)
{
	for (int i = 0; i < n; i++) {
		free(t[i].pending);
		backtrace_free(&t[i].bt);
	}
	free(t);
	free(shared->pending);
	shared->pending = NULL;
}

int meta_write_stats(int dirfd, const struct dump_stats *s)
{
	StatsEntry e = STATS_ENTRY__INIT;
	DumpStatsEntry d = DUMP_STATS_ENTRY__INIT;

	d.freezing_time = (uint32_t)s->freezing_us;
	d.frozen_time = (uint32_t)s->frozen_us;
	d.memdump_time = (uint32_t)s->memdump_us;
	d.memwrite_time = (uint32_t)s->memwrite_us;
	d.pages_scanned = s->pages_scanned;
	d.pages_skipped_parent = s->pages_skipped_parent;
	d.pages_written = s->pages_written;
	e.dump = &d;
	return write_single(dirfd, "stats-dump", IMG_STATS_MAGIC, &e.base);
}

int meta_copy_file(int from_dirfd, int to_dirfd, const char *name, uint32_t magic)
{
	struct img_out o;
	struct img_in in;
	int err;

	/* read as any image is: a regular file of its kind, never a symlink */
	if (img_open(&in, from_dirfd, name, magic))
		return -1;
	if (img_create(&o, to_dirfd, name, 0)) {
		img_in_free(&in);
		return -1;
	}
	err = img_put_raw(&o, in.data, in.len);
	img_in_free(&in);
	if (err) {
		img_discard(&o);
		return -1;
	}
	return img_close(&o);
}
