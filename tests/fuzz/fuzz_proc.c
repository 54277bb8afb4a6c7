// SPDX-License-Identifier: MIT
/*
 * The /proc text parsers on bytes: maps, smaps (VmFlags of the mappings
 * its own header lines describe), stat, status fields, io_uring fdinfo.
 * /proc is the kernel's, but a target controls parts of it (its comm, the
 * names of its mappings), and nothing may trust a format not to change.
 */
#include <stdio.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tests/fuzz/fuzz.h"
#include "tracker/pinned.h"
#include "tracker/proc.h"

static const char *kind;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const kinds[] = { "maps", "smaps", "stat", "status", "fdinfo" };

	(void)argc;
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (!strcmp(kinds[i], fuzz_kind((*argv)[0])))
			kind = kinds[i];
	if (!kind) {
		fprintf(stderr, "fuzz_proc: no parser '%s'\n", fuzz_kind((*argv)[0]));
		exit(2);
	}
	return 0;
}

/* The header lines of an smaps text: the maps file of the same process. */
static char *smaps_headers(const char *text)
{
	size_t n = strlen(text), len = 0;
	char *out = xmalloc(n + 1);

	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);
		char *end;

		strtoull(p, &end, 16);
		if (end != p && *end == '-') {
			memcpy(out + len, p, l);
			len += l;
		}
		p += l;
	}
	out[len] = '\0';
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	uint64_t v;

	if (!strcmp(kind, "maps")) {
		struct vma_list l;

		if (vma_list_parse(&l, text) == 0) {
			for (size_t i = 0; i < l.n; i++)
				vma_list_find(&l, l.v[i].start);
			vma_list_user_end(&l);
			vma_list_free(&l);
		}
		text = NULL;	/* the list owned it */
	} else if (!strcmp(kind, "smaps")) {
		struct vma_list l;

		if (vma_list_parse(&l, smaps_headers(text)) == 0) {
			char (*flags)[96] = xcalloc(l.n ? l.n : 1, sizeof(*flags));

			proc_smaps_vmflags(text, &l, flags);
			free(flags);
			vma_list_free(&l);
		}
	} else if (!strcmp(kind, "stat")) {
		struct proc_stat st;

		memset(&st, 0, sizeof(st));
		proc_stat_parse(text, &st);
	} else if (!strcmp(kind, "status")) {
		proc_status_field(text, "TracerPid", 10, &v);
		proc_status_field(text, "Seccomp", 10, &v);
		proc_status_field(text, "SigBlk", 16, &v);
	} else {
		struct pinned p;

		memset(&p, 0, sizeof(p));
		pinned_parse_uring_fdinfo(text, &p);
		pinned_free(&p);
	}
	free(text);
	dt_err_clear();
	return 0;
}
