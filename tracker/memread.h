/* SPDX-License-Identifier: MIT */
/*
 * Copying the target's pages out: process_vm_readv of many ranges a call
 * into one reused buffer (one copy; the buffer goes to the sink as it is),
 * /proc/PID/mem where that cannot read (PROT_NONE pages, holes).
 */
#ifndef DT_MEMREAD_H
#define DT_MEMREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "pagemap/rangeset.h"

/* One huge page (a fresh buffer costs a fault a page otherwise); a power of 2. */
#define MEMREAD_BUF (2u << 20)
/* Ranges a process_vm_readv call takes at most (IOV_MAX). */
#define MEMREAD_IOV 1024

typedef int (*mem_put_fn)(void *ctx, const void *data, size_t len);

struct mem_reader {
	pid_t pid;
	int fd;			/* /proc/PID/mem: reads PROT_NONE pages too */
	uint64_t start_time, mm_id;	/* who we opened: checked after the copy */
	unsigned char *buf;
	size_t buf_len;
	struct iovec *iov;		/* one batch's remote ranges */
	bool no_vm_readv;		/* refused: /proc/PID/mem reads everything */
	bool used_vm_readv;
	uint64_t vm_readv_calls;	/* for benchmarks */
	struct range_set gone;	/* unmapped under us: left out, not stored */
};

int mem_reader_open(struct mem_reader *m, pid_t pid);
void mem_reader_close(struct mem_reader *m);
/*
 * Hand the bytes of every range, in order, to put.  Pages unmapped while a
 * running target is read are skipped and added to m->gone; an address that
 * is still mapped but cannot be read is an error; an address space that is
 * gone (exit, exec) is DT_EXIT_GONE.
 */
int mem_copy(struct mem_reader *m, const struct range_set *ranges, mem_put_fn put, void *ctx);

#endif
