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
		cmocka_unit_test(test_error_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
