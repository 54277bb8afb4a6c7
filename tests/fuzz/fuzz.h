/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harnesses.  One source serves several targets: the binary's
 * name (fuzz_<kind>, hard links made by the Makefile) picks the reader.
 */
#ifndef DT_FUZZ_H
#define DT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The kind of a target from argv[0]: "fuzz_mm" -> "mm". */
static inline const char *fuzz_kind(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	return strncmp(base, "fuzz_", 5) ? base : base + 5;
}

/* A NUL-terminated malloc'd copy: the /proc parsers read text. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
