// SPDX-License-Identifier: MIT
/*
 * libunwind's remote unwinder over a stopped target.  We take libunwind's
 * ptrace accessors (_UPT_accessors) for what needs the target's ELF files
 * (unwind tables, symbol names) and put our own in front of the rest:
 *
 * - memory comes from /proc/PID/mem through a small page cache (one read a
 *   page, not one PTRACE_PEEKDATA a word), and every read counts against a
 *   budget and a deadline: a hostile stack or unwind table (DWARF
 *   expressions can branch backwards) makes the step fail, not spin;
 * - registers come from one PTRACE_GETREGS, or from the caller's copy;
 * - an address outside an executable mapping of a regular file (JIT code,
 *   anonymous memory, a file replaced since it was mapped, which libunwind
 *   would open by name) has no unwind information and no name, without
 *   libunwind opening anything;
 * - names are cached by address: the threads of a pool share their frames.
 *
 * One UPT handle serves every thread: with memory and registers ours, it
 * only reads the process's maps and files, which all threads share.  It is
 * also the accessors' argument: libunwind's own functions hand theirs down
 * to the accessors they call, so ours find their state by the address
 * space instead (one trace at a time: the tool is single-threaded).
 */
#include <errno.h>
#include <fcntl.h>
#include <libunwind-ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/unwind.h"

#define CACHE_PAGES 64
#define IP_SLOTS 1024
#define NAME_MAX_LEN 512
/* a trace of 1024 frames reads a few thousand words; a hostile one stops here */
#define READS_MAX 65536
#define THREAD_NS_MAX (100ULL * 1000000ULL)

struct page_slot {
	uint64_t page;
	bool valid;
	unsigned char data[PAGE_SIZE];
};

/* What we learnt of one address: its name, its function's unwind range. */
struct ip_slot {
	uint64_t ip;
	bool used;
	bool name_known, found;
	char *name;
	uint64_t off;
	bool pi_known, has_pi;
	uint64_t start_ip, end_ip;
};

struct unwinder {
	pid_t pid;
	int depth;
	int memfd;
	unw_addr_space_t as;
	void *upt;
	struct vma_list maps;
	struct page_slot *cache;
	struct ip_slot *ips;
	/* the thread being unwound */
	struct user_regs_struct regs;
	uint64_t reads, deadline;
	bool over_budget, unreadable;
};

static struct unwinder *active;

/* The unwinder whose trace is running, and whose address space as is. */
static struct unwinder *of(unw_addr_space_t as)
{
	return active && active->as == as ? active : NULL;
}

/* Each end's word (JSON, images) and sentence (text), one row each. */
static const struct {
	const char *name, *text;
} ends[UNWIND_END_COUNT] = {
	[UNWIND_END_OUTERMOST] = { "outermost", "the thread's first frame" },
	[UNWIND_END_DEPTH] = { "depth", "the depth asked for (--depth)" },
	[UNWIND_END_NO_INFO] = { "no-unwind-info",
				 "a frame without unwind information (JIT code, assembly?)" },
	[UNWIND_END_BAD_IP] = { "bad-return-address",
				"a return address outside any executable mapping" },
	[UNWIND_END_BAD_SP] = { "bad-stack-pointer",
				"a stack pointer that did not move up its stack, or left it" },
	[UNWIND_END_LOOP] = { "loop", "a frame seen before (a loop in the stack)" },
	[UNWIND_END_UNREADABLE] = { "unreadable", "a frame that could not be read or followed "
				    "(a corrupted stack?)" },
	[UNWIND_END_BUDGET] = { "budget", "too many memory reads or too long for one thread" },
	[UNWIND_END_GONE] = { "gone", "the thread exited while it was unwound" },
};

const char *unwind_end_name(enum unwind_end e)
{
	return (unsigned)e < UNWIND_END_COUNT ? ends[e].name : "unknown";
}

const char *unwind_end_text(enum unwind_end e)
{
	return (unsigned)e < UNWIND_END_COUNT ? ends[e].text : "unknown";
}

int unwind_end_parse(const char *name)
{
	for (int i = 0; name && i < UNWIND_END_COUNT; i++)
		if (!strcmp(ends[i].name, name))
			return i;
	return -1;
}

/* Over budget: every further read fails, and the step with it. */
static bool spend_read(struct unwinder *u)
{
	if (u->over_budget)
		return false;
	if (++u->reads > READS_MAX || ((u->reads & 63) == 0 && now_ns() > u->deadline))
		u->over_budget = true;
	return !u->over_budget;
}

static const unsigned char *cached_page(struct unwinder *u, uint64_t page)
{
	struct page_slot *s = &u->cache[(page >> PAGE_SHIFT) % CACHE_PAGES];

	if (s->valid && s->page == page)
		return s->data;
	s->valid = false;
	/* an address beyond off_t's range (not user memory) fails as EINVAL */
	if (pread(u->memfd, s->data, PAGE_SIZE, (off_t)page) != (ssize_t)PAGE_SIZE)
		return NULL;
	s->page = page;
	s->valid = true;
	return s->data;
}

static int read_word(struct unwinder *u, uint64_t addr, unw_word_t *val)
{
	unsigned char buf[sizeof(*val)];

	for (size_t done = 0; done < sizeof(buf);) {
		uint64_t a = addr + done, page = a & ~(PAGE_SIZE - 1), in = a - page;
		size_t n = sizeof(buf) - done < PAGE_SIZE - in ? sizeof(buf) - done : PAGE_SIZE - in;
		const unsigned char *p = a < addr ? NULL : cached_page(u, page);

		if (!p) {
			u->unreadable = true;
			return -UNW_EINVAL;
		}
		memcpy(buf + done, p + in, n);
		done += n;
	}
	memcpy(val, buf, sizeof(buf));
	return 0;
}

static int acc_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
	struct unwinder *u = of(as);

	(void)arg;
	if (!u || write)
		return -UNW_EINVAL;	/* we never change the target */
	if (!spend_read(u))
		return -UNW_EINVAL;
	return read_word(u, addr, val);
}

static int acc_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write, void *arg)
{
	struct unwinder *u = of(as);
	const struct user_regs_struct *r;

	(void)arg;
	if (!u || write)
		return -UNW_EREADONLYREG;
	r = &u->regs;
	/* libunwind's x86-64 numbering (UNW_X86_64_RAX ... UNW_X86_64_RIP) */
	const unsigned long long *by_num[] = {
		&r->rax, &r->rdx, &r->rcx, &r->rbx, &r->rsi, &r->rdi, &r->rbp, &r->rsp,
		&r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15, &r->rip,
	};

	if (reg < 0 || (size_t)reg >= ARRAY_SIZE(by_num))
		return -UNW_EBADREG;
	*val = *by_num[reg];
	return 0;
}

static int acc_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
		     void *arg)
{
	(void)as, (void)reg, (void)val, (void)write, (void)arg;
	return -UNW_EBADREG;
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
	(void)as, (void)c, (void)arg;
	return -UNW_EINVAL;
}

/*
 * Code libunwind may look at: an executable mapping of a regular file that
 * is still the file mapped (same device and inode, not a FIFO planted under
 * its name, which libunwind's open would wait on).
 */
static const struct vma *code_mapping(const struct unwinder *u, uint64_t ip)
{
	const struct vma *v = vma_list_find(&u->maps, ip);
	struct stat st;

	if (!v || !(v->prot & PROT_EXEC) || v->path[0] != '/')
		return NULL;
	if (lstat(v->path, &st) || !S_ISREG(st.st_mode) || st.st_ino != v->inode ||
	    major(st.st_dev) != v->dev_major || minor(st.st_dev) != v->dev_minor)
		return NULL;
	return v;
}

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			      int need_unwind_info, void *arg)
{
	struct unwinder *u = of(as);

	(void)arg;
	if (!u || !code_mapping(u, ip))
		return -UNW_ENOINFO;
	return _UPT_find_proc_info(as, ip, pi, need_unwind_info, u->upt);
}

static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	_UPT_put_unwind_info(as, pi, arg);
}

/* libunwind's registry of dynamically generated code: not used (JIT shows addresses) */
static int acc_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	(void)as, (void)addr, (void)arg;
	return -UNW_ENOINFO;
}

static struct ip_slot *ip_slot(struct unwinder *u, uint64_t ip)
{
	for (size_t i = 0, h = (ip * 0x9e3779b97f4a7c15ULL) >> 54; i < IP_SLOTS; i++) {
		struct ip_slot *s = &u->ips[(h + i) % IP_SLOTS];

		if (!s->used || s->ip == ip)
			return s;
	}
	return NULL;	/* full: look it up uncached */
}

static int acc_proc_name(unw_addr_space_t as, unw_word_t ip, char *buf, size_t len,
			 unw_word_t *off, void *arg)
{
	struct unwinder *u = of(as);
	struct ip_slot *s;
	int r;

	(void)arg;
	if (!u)
		return -UNW_ENOINFO;
	s = ip_slot(u, ip);
	if (s && s->name_known) {
		if (!s->found)
			return -UNW_ENOINFO;
		snprintf(buf, len, "%s", s->name);
		*off = s->off;
		return 0;
	}
	r = code_mapping(u, ip) ? _UPT_get_proc_name(as, ip, buf, len, off, u->upt)
				: -UNW_ENOINFO;
	/* a name longer than buf comes back cut, with -UNW_ENOMEM: keep the cut one */
	if (r == -UNW_ENOMEM && len)
		r = 0;
	if (s) {
		s->used = s->name_known = true;
		s->ip = ip;
		s->found = r == 0;
		s->name = r == 0 ? xstrdup(buf) : NULL;
		s->off = r == 0 ? *off : 0;
	}
	return r;
}

static unw_accessors_t accessors = {
	.find_proc_info = acc_find_proc_info,
	.put_unwind_info = acc_put_unwind_info,
	.get_dyn_info_list_addr = acc_dyn_info_list_addr,
	.access_mem = acc_mem,
	.access_reg = acc_reg,
	.access_fpreg = acc_fpreg,
	.resume = acc_resume,
	.get_proc_name = acc_proc_name,
};

struct unwinder *unwinder_open(pid_t pid, int depth)
{
	struct unwinder *u = xcalloc(1, sizeof(*u));
	char path[64];

	u->pid = pid;
	u->depth = depth < 1 ? 1 : depth > UNWIND_DEPTH_MAX ? UNWIND_DEPTH_MAX : depth;
	u->memfd = -1;
	if (vma_list_read(pid, &u->maps)) {
		free(u);
		return NULL;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	u->memfd = open(path, O_RDONLY | O_CLOEXEC);
	if (u->memfd < 0) {
		dt_err_sys(errno == ENOENT ? DT_EXIT_GONE : 0, "%s", path);
		goto fail;
	}
	u->as = unw_create_addr_space(&accessors, 0);
	u->upt = _UPT_create(pid);
	if (!u->as || !u->upt) {
		dt_err(DT_EXIT_ERROR, "libunwind: cannot set up the unwinding of process %d", pid);
		goto fail;
	}
	unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
	u->cache = xcalloc(CACHE_PAGES, sizeof(*u->cache));
	u->ips = xcalloc(IP_SLOTS, sizeof(*u->ips));
	return u;
fail:
	unwinder_close(u);
	return NULL;
}

void unwinder_close(struct unwinder *u)
{
	if (!u)
		return;
	if (u->as)
		unw_destroy_addr_space(u->as);
	if (u->upt)
		_UPT_destroy(u->upt);
	if (u->memfd >= 0)
		close(u->memfd);
	for (size_t i = 0; u->ips && i < IP_SLOTS; i++)
		free(u->ips[i].name);
	free(u->ips);
	free(u->cache);
	vma_list_free(&u->maps);
	free(u);
}

void backtrace_free(struct backtrace *bt)
{
	for (int i = 0; i < bt->n; i++) {
		free(bt->f[i].func);
		free(bt->f[i].map);
	}
	free(bt->f);
	bt->f = NULL;
	bt->n = 0;
}

static bool thread_gone(pid_t pid, pid_t tid)
{
	struct proc_stat st;

	if (proc_task_stat_read(pid, tid, &st)) {
		dt_err_clear();
		return true;
	}
	return st.state == 'Z' || st.state == 'X';
}

/*
 * The unwind information of the function at ip (a return address is looked
 * up one byte back, inside the call): asked of the accessor directly, as
 * unw_get_proc_info makes up a one-byte function where there is none.
 */
static bool proc_info(struct unwinder *u, uint64_t ip, bool is_return, unw_proc_info_t *pi)
{
	uint64_t at = is_return ? ip - 1 : ip;
	struct ip_slot *s = ip_slot(u, at);
	bool has;

	memset(pi, 0, sizeof(*pi));
	if (s && s->pi_known) {
		pi->start_ip = s->start_ip;
		pi->end_ip = s->end_ip;
		return s->has_pi;
	}
	has = acc_find_proc_info(u->as, at, pi, 0, u->upt) == 0;
	if (has)
		acc_put_unwind_info(u->as, pi, u->upt);
	has = has && pi->start_ip <= at && at < pi->end_ip;
	if (s) {
		s->used = s->pi_known = true;
		s->ip = at;
		s->has_pi = has;
		s->start_ip = pi->start_ip;
		s->end_ip = pi->end_ip;
	}
	return has;
}

/*
 * The symbol libunwind names is the nearest one below ip, whatever its
 * size: a static function of a stripped library takes the name of the
 * exported one before it.  Believe it only where the unwind information
 * says the function starts.
 */
static bool name_fits(const unw_proc_info_t *pi, bool has_pi, uint64_t ip, uint64_t off)
{
	return !has_pi || ip - off == pi->start_ip;
}

/* Adds the frame; false when it has no unwind information. */
static bool add_frame(struct unwinder *u, struct backtrace *bt, unw_cursor_t *c, uint64_t ip,
		      uint64_t sp)
{
	const struct vma *v = vma_list_find(&u->maps, ip);
	bool is_return = bt->n > 0 && !bt->f[bt->n - 1].signal_frame, has_pi;
	unw_proc_info_t pi;
	struct frame *f;
	char name[NAME_MAX_LEN];
	unw_word_t off = 0;

	has_pi = proc_info(u, ip, is_return, &pi);

	bt->f = xrealloc(bt->f, (size_t)(bt->n + 1) * sizeof(*bt->f));
	f = &bt->f[bt->n++];
	memset(f, 0, sizeof(*f));
	f->ip = ip;
	f->sp = sp;
	if (unw_get_proc_name(c, name, sizeof(name), &off) == 0 && name_fits(&pi, has_pi, ip, off)) {
		f->func = xstrdup(name);
		f->func_off = off;
	}
	if (v) {
		f->map = xstrdup(v->path);
		if (v->kind == VMA_FILE_PRIVATE || v->kind == VMA_FILE_SHARED)
			f->map_off = ip - v->start + v->pgoff;
	}
	f->signal_frame = unw_is_signal_frame(c) > 0;
	return has_pi;
}

static bool seen_before(const struct backtrace *bt, uint64_t ip, uint64_t sp)
{
	for (int i = 0; i < bt->n; i++)
		if (bt->f[i].ip == ip && bt->f[i].sp == sp)
			return true;
	return false;
}

/* The checks on the frame unw_step went to; UNWIND_END_COUNT: it may be shown. */
static enum unwind_end check_step(struct unwinder *u, const struct backtrace *bt,
				  const struct vma **stack, uint64_t ip, uint64_t sp)
{
	const struct frame *prev = &bt->f[bt->n - 1];
	const struct vma *v;

	if (seen_before(bt, ip, sp))
		return UNWIND_END_LOOP;
	if (!prev->signal_frame) {
		/* callers' frames lie above, on the same stack */
		if (sp <= prev->sp || !*stack || sp >= (*stack)->end)
			return UNWIND_END_BAD_SP;
	} else {
		/* a handler on an alternate stack: the interrupted frame is elsewhere */
		*stack = vma_list_find(&u->maps, sp);
		if (!*stack || !((*stack)->prot & PROT_WRITE))
			return UNWIND_END_BAD_SP;
	}
	v = vma_list_find(&u->maps, ip);
	if (!v || !(v->prot & PROT_EXEC))
		return UNWIND_END_BAD_IP;
	return UNWIND_END_COUNT;
}

static enum unwind_end walk(struct unwinder *u, struct backtrace *bt)
{
	const struct vma *stack = vma_list_find(&u->maps, u->regs.rsp);
	unw_cursor_t c;

	if (unw_init_remote(&c, u->as, u->upt) < 0)
		return UNWIND_END_UNREADABLE;
	for (;;) {
		unw_word_t ip = 0, sp = 0;
		enum unwind_end why;
		bool has_info;
		int r;

		if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || unw_get_reg(&c, UNW_REG_SP, &sp) < 0)
			return UNWIND_END_UNREADABLE;
		if (bt->n > 0) {
			if (ip == 0)
				return UNWIND_END_OUTERMOST;
			why = check_step(u, bt, &stack, ip, sp);
			if (why == UNWIND_END_BAD_IP)
				add_frame(u, bt, &c, ip, sp);	/* where it points is the news */
			if (why != UNWIND_END_COUNT)
				return why;
		}
		has_info = add_frame(u, bt, &c, ip, sp);
		if (bt->n >= u->depth)
			return UNWIND_END_DEPTH;
		if (!has_info && !bt->f[bt->n - 1].signal_frame)
			return UNWIND_END_NO_INFO;
		r = unw_step(&c);
		if (r == 0)
			return UNWIND_END_OUTERMOST;
		if (r < 0 || u->over_budget)
			return u->over_budget ? UNWIND_END_BUDGET : UNWIND_END_UNREADABLE;
	}
}

int unwinder_trace(struct unwinder *u, pid_t tid, const struct user_regs_struct *regs,
		   struct backtrace *bt)
{
	uint64_t t0 = now_ns();

	memset(bt, 0, sizeof(*bt));
	bt->tid = tid;
	if (regs) {
		u->regs = *regs;
	} else if (ptrace(PTRACE_GETREGS, tid, 0, &u->regs)) {
		if (errno != ESRCH && !thread_gone(u->pid, tid))
			return dt_err_sys(0, "PTRACE_GETREGS thread %d", tid);
		bt->end = UNWIND_END_GONE;
		return 0;
	}
	u->reads = 0;
	u->deadline = t0 + THREAD_NS_MAX;
	u->over_budget = u->unreadable = false;
	active = u;
	bt->end = walk(u, bt);
	active = NULL;
	/* a read that failed: the stack's fault, or the thread's end? */
	if (u->unreadable && bt->end != UNWIND_END_DEPTH && thread_gone(u->pid, tid))
		bt->end = UNWIND_END_GONE;
	bt->ns = now_ns() - t0;
	return 0;
}
