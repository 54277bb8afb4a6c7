/* SPDX-License-Identifier: MIT */
/*
 * CRIU image framing: a u32 common magic and a u32 image magic (inventory:
 * one magic), then records of u32 length + packed protobuf, host order.
 */
#ifndef DT_IMGFILE_H
#define DT_IMGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define IMG_COMMON_MAGIC	0x54564319
#define IMG_INVENTORY_MAGIC	0x58313116
#define IMG_PSTREE_MAGIC	0x50273030
#define IMG_PAGEMAP_MAGIC	0x56084025
#define IMG_CORE_MAGIC		0x55053847
#define IMG_MM_MAGIC		0x57492820
#define IMG_STATS_MAGIC		0x57093306

struct img_out {
	int fd;
	char name[64];
	unsigned char *buf;
	size_t len, cap;
};

struct img_in {
	char name[64];
	unsigned char *data;
	size_t len, pos;
};

/* Create name in dirfd (O_EXCL, O_NOFOLLOW, 0600); magic 0: no header. */
int img_create(struct img_out *o, int dirfd, const char *name, uint32_t magic);
int img_put_msg(struct img_out *o, const ProtobufCMessage *msg);
int img_put_raw(struct img_out *o, const void *data, size_t len);
/* Flush, fsync, close; on error the file is left for the caller's abort. */
int img_close(struct img_out *o);
void img_discard(struct img_out *o);

/*
 * Read a whole image and check its magic: a regular file (never through a
 * symlink, never a FIFO or device) no larger than its kind can be.
 */
int img_open(struct img_in *in, int dirfd, const char *name, uint32_t magic);
/* The largest file an image of this magic may be; 0 for unknown magics. */
size_t img_max_size(uint32_t magic);
/* Check the header of in->data (in->len bytes, malloc'd; freed on error). */
int img_parse(struct img_in *in, uint32_t magic);
/* 0 and *msg, 1 at the end, -1 on a truncated or corrupt record. */
int img_get_msg(struct img_in *in, const ProtobufCMessageDescriptor *d, ProtobufCMessage **msg);
void img_in_free(struct img_in *in);
/* An image of one record (inventory, pstree, mm, core): read, check, unpack. */
int img_read_single(int dirfd, const char *name, uint32_t magic,
		    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg);

#endif
