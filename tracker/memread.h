/* SPDX-License-Identifier: MIT */
/* Copying the target's pages out, in large reads into one reused buffer. */
#ifndef DT_MEMREAD_H
#define DT_MEMREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagemap/rangeset.h"

/*
 * Small and touched once: every new page of a fresh buffer costs a fault
 * here (~12 us), more than copying it; 256 KiB still makes large writes.
 */
#define MEMREAD_BUF (256u << 10)

typedef int (*mem_put_fn)(void *ctx, const void *data, size_t len);

struct mem_reader {
	pid_t pid;
	int fd;			/* /proc/PID/mem: reads PROT_NONE pages too */
	unsigned char *buf;
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
