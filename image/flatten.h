/* SPDX-License-Identifier: MIT */
/*
 * Flattening: a dump and its parents merged into one standalone full dump,
 * every page resolved through the chain and stored present.
 */
#ifndef DT_FLATTEN_H
#define DT_FLATTEN_H

#include <stdint.h>

#include "image/chain.h"

struct flatten_result {
	uint64_t pages_written;
	uint64_t bytes;		/* of the new pages file */
	int files_copied;	/* pstree, mm, core-*, stats-dump */
};

/*
 * Write the merge of chain c into out, which must not exist or be an empty
 * directory; out is complete or absent afterwards.  The new inventory keeps
 * the top dump's identity (id, iteration, session) but is full and has no
 * parent.
 */
int chain_flatten(const struct dump_chain *c, const char *out, struct flatten_result *r);

#endif
