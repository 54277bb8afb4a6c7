/* SPDX-License-Identifier: MIT */
/*
 * The one JSON writer: one document (or one line) at a time, compact or
 * indented.  Always valid JSON: strings are escaped, and bytes that are not
 * UTF-8 (paths are bytes) become \u00XX, the byte's value as a code point.
 */
#ifndef DT_JSON_H
#define DT_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
	FILE *f;
	FILE *held_to;		/* json_hold: f is a buffer, this the real output */
	char *held;
	size_t held_len;
	int depth;
	bool pretty;		/* indent two spaces per level, one member a line */
	bool first[JSON_MAX_DEPTH];
};

void json_init(struct json *j, FILE *f);
void json_set_pretty(struct json *j, bool pretty);
/*
 * A document built over many steps that may fail half way: held back
 * until json_release(j, true) writes it, or json_release(j, false) drops
 * it (and the error report is the only document).
 */
void json_hold(struct json *j);
void json_release(struct json *j, bool emit);
/* key is NULL inside arrays and for the top-level value */
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);	/* a newline after the top level */
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_str(struct json *j, const char *key, const char *v);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_double(struct json *j, const char *key, double v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
/* "0x..." strings: addresses do not fit JavaScript numbers */
void json_hex(struct json *j, const char *key, uint64_t v);

#endif
