// SPDX-License-Identifier: MIT
/* The one JSON writer and the one error path: exact output. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/json.h"
#include "lib/err.h"

static char *render(void (*fn)(struct json *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json j;

	json_init(&j, f);
	fn(&j);
	fclose(f);
	return buf;
}

static void nested(struct json *j)
{
	json_object_begin(j, NULL);
	json_str(j, "s", "a\"b\\c\nd\te\x01");
	json_u64(j, "u", UINT64_MAX);
	json_i64(j, "i", -5);
	json_bool(j, "t", true);
	json_null(j, "n");
	json_hex(j, "h", 0x7fff0000ULL);
	json_double(j, "d", 1.5);
	json_array_begin(j, "a");
	json_u64(j, NULL, 1);
	json_object_begin(j, NULL);
	json_array_begin(j, "e");
	json_array_end(j);
	json_object_end(j);
	json_str(j, NULL, NULL);
	json_array_end(j);
	json_object_end(j);
}

static void test_nested_document(void **state)
{
	char *out = render(nested);

	(void)state;
	assert_string_equal(out, "{\"s\":\"a\\\"b\\\\c\\nd\\te\\u0001\",\"u\":18446744073709551615,"
				 "\"i\":-5,\"t\":true,\"n\":null,\"h\":\"0x7fff0000\",\"d\":1.5,"
				 "\"a\":[1,{\"e\":[]},null]}\n");
	free(out);
}

static void two_lines(struct json *j)
{
	json_object_begin(j, NULL);
	json_u64(j, "n", 1);
	json_object_end(j);
	json_object_begin(j, NULL);
	json_u64(j, "n", 2);
	json_object_end(j);
}

static void test_json_lines(void **state)
{
	char *out = render(two_lines);

	(void)state;
	assert_string_equal(out, "{\"n\":1}\n{\"n\":2}\n");
	free(out);
}

static void not_finite(struct json *j)
{
	json_object_begin(j, NULL);
	json_double(j, "x", 1.0 / 0.0);
	json_object_end(j);
}

static void test_non_finite_is_null(void **state)
{
	char *out = render(not_finite);

	(void)state;
	assert_string_equal(out, "{\"x\":null}\n");
	free(out);
}

static void test_pretty(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json j;

	(void)state;
	json_init(&j, f);
	json_set_pretty(&j, true);
	nested(&j);
	two_lines(&j);
	fclose(f);
	assert_string_equal(buf, "{\n"
			    "  \"s\": \"a\\\"b\\\\c\\nd\\te\\u0001\",\n"
			    "  \"u\": 18446744073709551615,\n"
			    "  \"i\": -5,\n"
			    "  \"t\": true,\n"
			    "  \"n\": null,\n"
			    "  \"h\": \"0x7fff0000\",\n"
			    "  \"d\": 1.5,\n"
			    "  \"a\": [\n"
			    "    1,\n"
			    "    {\n"
			    "      \"e\": []\n"
			    "    },\n"
			    "    null\n"
			    "  ]\n"
			    "}\n"
			    "{\n  \"n\": 1\n}\n{\n  \"n\": 2\n}\n");
	free(buf);
}

static void bytes(struct json *j)
{
	json_array_begin(j, NULL);
	json_str(j, NULL, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");	/* valid: kept */
	json_str(j, NULL, "/tmp/\xff\xfe");			/* not UTF-8 at all */
	json_str(j, NULL, "\xc3");				/* truncated */
	json_str(j, NULL, "\xc0\xaf");				/* overlong '/' */
	json_str(j, NULL, "\xed\xa0\x80");			/* a surrogate */
	json_str(j, NULL, "\xf4\x90\x80\x80");			/* past U+10FFFF */
	json_str(j, NULL, "\xe2\x82x");				/* broken in the middle */
	json_array_end(j);
}

static void test_not_utf8_is_escaped(void **state)
{
	char *out = render(bytes);

	(void)state;
	assert_string_equal(out, "[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
			    "\"/tmp/\\u00ff\\u00fe\",\"\\u00c3\",\"\\u00c0\\u00af\","
			    "\"\\u00ed\\u00a0\\u0080\",\"\\u00f4\\u0090\\u0080\\u0080\","
			    "\"\\u00e2\\u0082x\"]\n");
	free(out);
}

static void test_error_path(void **state)
{
	(void)state;
	dt_err_clear();
	assert_int_equal(dt_err(DT_EXIT_GONE, "process %d exited", 42), -1);
	assert_int_equal(dt_err_kind(), DT_EXIT_GONE);
	assert_string_equal(dt_err_msg(), "process 42 exited");
	dt_err_prefix("dump %s: ", "d1");
	assert_string_equal(dt_err_msg(), "dump d1: process 42 exited");
	assert_string_equal(dt_exit_name(DT_EXIT_PERM), "permission");
	errno = EACCES;
	assert_int_equal(dt_err_sys(0, "opening %s", "x"), -1);
	assert_int_equal(dt_err_kind(), DT_EXIT_PERM);
	assert_string_equal(dt_err_msg(), "opening x: Permission denied");
	errno = ESRCH;
	dt_err_sys(0, "scan");
	assert_int_equal(dt_err_kind(), DT_EXIT_GONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nested_document),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_non_finite_is_null),
		cmocka_unit_test(test_pretty),
		cmocka_unit_test(test_not_utf8_is_escaped),
		cmocka_unit_test(test_error_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
