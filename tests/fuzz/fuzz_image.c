// SPDX-License-Identifier: MIT
/*
 * The image readers on bytes: framing and header (img_parse, img_get_msg),
 * every record of an image of one kind, and what the tool does with the
 * decoded message (identity of an inventory, pagemap entries checked as
 * chain_open checks them, a summary of an mm image).
 */
#include <stdio.h>

#include "image/chain.h"
#include "image/imgfile.h"
#include "image/meta.h"
#include "image/verify.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz.h"
#include "core.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pstree.pb-c.h"
#include "stats.pb-c.h"

static const struct kind {
	const char *name, *file;
	uint32_t magic;
	const ProtobufCMessageDescriptor *desc;
} kinds[] = {
	{ "inventory", "inventory.img", IMG_INVENTORY_MAGIC, &inventory_entry__descriptor },
	{ "pstree", "pstree.img", IMG_PSTREE_MAGIC, &pstree_entry__descriptor },
	{ "mm", "mm-1.img", IMG_MM_MAGIC, &mm_entry__descriptor },
	{ "core", "core-1.img", IMG_CORE_MAGIC, &core_entry__descriptor },
	{ "stats", "stats-dump", IMG_STATS_MAGIC, &stats_entry__descriptor },
	{ "pagemap", "pagemap-1.img", IMG_PAGEMAP_MAGIC, NULL },
};

static const struct kind *kind;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *name = fuzz_kind((*argv)[0]);

	(void)argc;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kinds[i].name, name))
			kind = &kinds[i];
	if (!kind) {
		fprintf(stderr, "fuzz_image: no image kind '%s'\n", name);
		exit(2);
	}
	return 0;
}

/* What the tool does with one decoded message beyond decoding it. */
static void use(ProtobufCMessage *m)
{
	struct dump d = { .dirfd = -1, .pid = 1 };
	struct dump_identity id;
	struct dump_summary sum;
	InventoryEntry empty = INVENTORY_ENTRY__INIT;

	if (kind->magic == IMG_INVENTORY_MAGIC) {
		d.inv = (InventoryEntry *)m;
		meta_read_identity(&d, &id);
	} else if (kind->magic == IMG_MM_MAGIC) {
		d.inv = &empty;
		d.mm = (MmEntry *)m;
		if (dump_summarize(&d, &sum) == 0)
			dump_summary_free(&sum);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct img_in in = { 0 };
	ProtobufCMessage *m;

	/* img_open refuses larger files before reading them */
	if (size > img_max_size(kind->magic))
		return 0;
	snprintf(in.name, sizeof(in.name), "%s", kind->file);
	in.data = malloc(size ? size : 1);
	memcpy(in.data, data, size);
	in.len = size;
	if (img_parse(&in, kind->magic))
		goto out;
	if (!kind->desc) {
		struct pm_file pm = { .key = 1 };
		uint64_t bytes;

		dump_parse_pagemap(&pm, &in, &bytes);
		free(pm.ents);
		goto out;
	}
	while (img_get_msg(&in, kind->desc, &m) == 0) {
		use(m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	img_in_free(&in);
out:
	dt_err_clear();
	return 0;
}
