// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/imgfile.h"
#include "lib/err.h"
#include "lib/path.h"
#include "lib/util.h"

#define OUT_FLUSH (1 << 20)
#define OUT_DIRECT (16 << 10)

static int out_flush(struct img_out *o)
{
	size_t done = 0;

	while (done < o->len) {
		ssize_t n = write(o->fd, o->buf + done, o->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dt_err_sys(0, "writing %s", o->name);
		done += n;
	}
	o->len = 0;
	return 0;
}

int img_create(struct img_out *o, int dirfd, const char *name, uint32_t magic)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (o->fd < 0)
		return dt_err_sys(0, "creating %s", name);
	o->cap = OUT_FLUSH;
	o->buf = xmalloc(o->cap);
	if (magic == IMG_INVENTORY_MAGIC)
		return img_put_raw(o, &magic, sizeof(magic));
	if (magic) {
		uint32_t hdr[2] = { IMG_COMMON_MAGIC, magic };

		return img_put_raw(o, hdr, sizeof(hdr));
	}
	return 0;
}

int img_put_raw(struct img_out *o, const void *data, size_t len)
{
	/*
	 * Big writes, and anything not joining buffered bytes (the pages file
	 * has no header), go straight through: pages are never copied here.
	 */
	if (len >= o->cap || (!o->len && len >= OUT_DIRECT)) {
		if (out_flush(o))
			return -1;
		for (size_t done = 0; done < len;) {
			ssize_t n = write(o->fd, (const char *)data + done, len - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return dt_err_sys(0, "writing %s", o->name);
			done += n;
		}
		return 0;
	}
	if (o->len + len > o->cap && out_flush(o))
		return -1;
	memcpy(o->buf + o->len, data, len);
	o->len += len;
	return 0;
}

int img_put_msg(struct img_out *o, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint32_t len = (uint32_t)n;
	unsigned char *p;
	int err;

	if (img_put_raw(o, &len, sizeof(len)))
		return -1;
	p = xmalloc(n);
	protobuf_c_message_pack(msg, p);
	err = img_put_raw(o, p, n);
	free(p);
	return err;
}

int img_close(struct img_out *o)
{
	int err = out_flush(o);

	if (!err && fsync(o->fd))
		err = dt_err_sys(0, "writing %s", o->name);
	if (close(o->fd) && !err)
		err = dt_err_sys(0, "writing %s", o->name);
	o->fd = -1;
	free(o->buf);
	o->buf = NULL;
	return err;
}

void img_discard(struct img_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	free(o->buf);
	o->buf = NULL;
}

size_t img_max_size(uint32_t magic)
{
	switch (magic) {
	case IMG_INVENTORY_MAGIC:
	case IMG_STATS_MAGIC:
		return PAGE_SIZE;
	case IMG_CORE_MAGIC:
		return 1 << 20;		/* one thread's registers and task state */
	case IMG_PSTREE_MAGIC:
	case IMG_MM_MAGIC:
		return 64 << 20;	/* thread ids; 65530 mappings at most (vm.max_map_count) */
	case IMG_PAGEMAP_MAGIC:
		return 1ULL << 30;
	default:
		return 0;
	}
}

int img_open(struct img_in *in, int dirfd, const char *name, uint32_t magic)
{
	memset(in, 0, sizeof(*in));
	snprintf(in->name, sizeof(in->name), "%s", name);
	in->data = (unsigned char *)path_read_image(dirfd, name, img_max_size(magic), &in->len);
	if (!in->data)
		return -1;
	return img_parse(in, magic);
}

int img_parse(struct img_in *in, uint32_t magic)
{
	const char *name = in->name;
	uint32_t m[2];
	size_t hdr = magic == IMG_INVENTORY_MAGIC ? 4 : 8;

	if (in->len < hdr) {
		img_in_free(in);
		return dt_err(DT_EXIT_ERROR, "%s is truncated (no header)", name);
	}
	memcpy(m, in->data, hdr);
	if ((hdr == 4 && m[0] != magic) || (hdr == 8 && (m[0] != IMG_COMMON_MAGIC || m[1] != magic))) {
		img_in_free(in);
		return dt_err(DT_EXIT_ERROR, "%s: wrong magic (not this kind of image)", name);
	}
	in->pos = hdr;
	return 0;
}

int img_get_msg(struct img_in *in, const ProtobufCMessageDescriptor *d, ProtobufCMessage **msg)
{
	uint32_t len;

	if (in->pos == in->len)
		return 1;
	if (in->len - in->pos < sizeof(len))
		return dt_err(DT_EXIT_ERROR, "%s is truncated (record header)", in->name);
	memcpy(&len, in->data + in->pos, sizeof(len));
	in->pos += sizeof(len);
	if (len > in->len - in->pos)
		return dt_err(DT_EXIT_ERROR, "%s is truncated (record of %u bytes)", in->name, len);
	*msg = protobuf_c_message_unpack(d, NULL, len, in->data + in->pos);
	if (!*msg)
		return dt_err(DT_EXIT_ERROR, "%s is corrupt (bad record at byte %zu)", in->name,
			      in->pos - sizeof(len));
	in->pos += len;
	return 0;
}

void img_in_free(struct img_in *in)
{
	free(in->data);
	in->data = NULL;
}

int img_read_single(int dirfd, const char *name, uint32_t magic,
		    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg)
{
	struct img_in in;
	int r;

	if (img_open(&in, dirfd, name, magic))
		return -1;
	r = img_get_msg(&in, desc, msg);
	img_in_free(&in);
	if (r > 0)
		return dt_err(DT_EXIT_ERROR, "%s is empty", name);
	return r;
}
