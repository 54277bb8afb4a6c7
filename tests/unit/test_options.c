// SPDX-License-Identifier: MIT
/*
 * The option table checks itself (like git's parse_options_check): no name
 * twice on one command line, every row well formed, every default parses.
 * And the parser's answers for good and bad values, exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/err.h"

/* The command lines an option can be on: each command, and the global one. */
static void test_no_duplicate_names(void **state)
{
	(void)state;
	for (unsigned int c = 0; c <= CMD_COUNT; c++)
		for (size_t i = 0; i < dt_noptions; i++)
			for (size_t k = i + 1; k < dt_noptions; k++) {
				const struct dt_option *a = &dt_options[i], *b = &dt_options[k];

				if (!option_on(a, c) || !option_on(b, c))
					continue;
				if (!strcmp(a->long_name, b->long_name))
					fail_msg("--%s twice on command %u", a->long_name, c);
				if (a->short_name && a->short_name == b->short_name)
					fail_msg("-%c twice (--%s, --%s)", a->short_name, a->long_name,
						 b->long_name);
			}
}

static void test_rows_well_formed(void **state)
{
	(void)state;
	for (size_t i = 0; i < dt_noptions; i++) {
		const struct dt_option *o = &dt_options[i];
		bool value = o->kind != OPT_FLAG && o->kind != OPT_HELP && o->kind != OPT_VERSION;

		assert_non_null(o->long_name);
		assert_non_null(o->help);
		assert_true(o->cmds != 0);
		/* a value has an argument name or words, a flag neither */
		assert_int_equal(option_has_value(o), value);
		assert_int_equal(o->kind == OPT_ENUM, o->words != NULL);
		assert_int_equal(o->kind == OPT_ENUM, o->complete == COMPLETE_WORDS);
		if (o->kind == OPT_ENUM)
			assert_null(o->argh);
		/* required is checked as a missing string */
		if (o->required)
			assert_int_equal(o->kind, OPT_STRING);
		if (o->kind == OPT_INT || o->kind == OPT_DOUBLE)
			assert_true(o->min < o->max);
		if (o->complete == COMPLETE_PID)
			assert_int_equal(o->kind, OPT_PID);
	}
}

static int cmd_nothing(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static int parse(unsigned int id, struct args *a, ...)
{
	static struct cmd c;
	char *argv[16];
	int argc = 0, saved, quiet, r;
	va_list ap;

	c = dt_commands[id];
	c.run = cmd_nothing;
	current_cmd = &c;
	prog_cmd = c.name;
	argv[argc++] = (char *)c.name;
	va_start(ap, a);
	for (char *s; (s = va_arg(ap, char *));)
		argv[argc++] = s;
	va_end(ap);
	argv[argc] = NULL;
	dt_err_clear();
	/* the parser reports on stderr, as the binary does: not into the test log */
	fflush(stderr);
	saved = dup(2);
	quiet = open("/dev/null", O_WRONLY);
	dup2(quiet, 2);
	r = parse_args(argc, argv, a);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(quiet);
	return r;
}

/* Every default of every command parses into its field. */
static void test_defaults(void **state)
{
	struct args a;
	char pid[16];

	(void)state;
	assert_int_equal(parse(CMD_PRECOPY, &a, "1", "-D", "x", NULL), ARGS_OK);	/* init */
	assert_int_equal(a.interval_ms, 1000);
	assert_int_equal(a.max_iters, 10);
	assert_int_equal(a.then, THEN_LEAVE_STOPPED);
	assert_int_equal(a.backend, DIRTY_IOCTL);
	assert_true(a.until_pages == UINT64_MAX);
	assert_true(a.until_ratio == 0 && a.link_mbps == 0);
	/* a pid that is neither a kernel thread nor the test itself */
	snprintf(pid, sizeof(pid), "%d", (int)getppid());
	assert_int_equal(parse(CMD_WATCH, &a, pid, "-i", "250", "--scan", "pagemap", "-n", "3",
			       NULL), ARGS_OK);
	assert_int_equal(a.pid, getppid());
	assert_int_equal(a.interval_ms, 250);
	assert_int_equal(a.count, 3);
	assert_int_equal(a.backend, DIRTY_PAGEMAP);
	assert_int_equal(parse(CMD_PRECOPY, &a, "--then", "kill", "--link-mbps", "12.5", pid,
			       "-D", "b", "--until-ratio", "0.25", NULL), ARGS_OK);
	assert_int_equal(a.then, THEN_KILL);
	assert_true(a.link_mbps == 12.5 && a.until_ratio == 0.25);
	assert_string_equal(a.dir, "b");
}

static void rejected(unsigned int id, const char *opt, const char *value, const char *msg)
{
	struct args a;

	assert_int_equal(parse(id, &a, "1", "-D", "d", opt, value, NULL), ARGS_FAIL);	/* init */
	assert_string_equal(dt_err_msg(), msg);
}

static void test_bad_values(void **state)
{
	const char *help = " (see 'dirtytrack precopy --help')";
	char want[512];

	(void)state;
#define REJECT(opt, v, what) \
	snprintf(want, sizeof(want), "%s: '%s' is not %s%s", opt, v, what, help); \
	rejected(CMD_PRECOPY, opt, v, want)
	REJECT("--interval", " 12", "a whole number from 1 to 2147483647");
	REJECT("--interval", "+12", "a whole number from 1 to 2147483647");
	REJECT("--interval", "0", "a whole number from 1 to 2147483647");
	REJECT("--interval", "12ms", "a whole number from 1 to 2147483647");
	REJECT("--max-iters", "99999999999", "a whole number from 1 to 2147483647");
	REJECT("--link-mbps", "0x0.8", "a decimal number from 0.001 to 1e+09");
	REJECT("--link-mbps", "1e-300", "a decimal number from 0.001 to 1e+09");
	REJECT("--link-mbps", "1e999", "a decimal number from 0.001 to 1e+09");
	REJECT("--link-mbps", "inf", "a decimal number from 0.001 to 1e+09");
	REJECT("--link-mbps", "nan", "a decimal number from 0.001 to 1e+09");
	REJECT("--link-mbps", " 5", "a decimal number from 0.001 to 1e+09");
	REJECT("--until-ratio", "1", "a decimal number from 0.0001 to 0.9999");
	REJECT("--until-pages", "-1", "a whole number");
	REJECT("--until-pages", " 3", "a whole number");
	REJECT("--then", "stop", "one of leave-stopped|kill|resume");
	REJECT("--scan", "IOCTL", "one of ioctl|pagemap");
#undef REJECT
}

static void test_structure_errors(void **state)
{
	struct args a;

	(void)state;
	assert_int_equal(parse(CMD_DUMP, &a, "1", NULL), ARGS_FAIL);
	assert_string_equal(dt_err_msg(), "missing -D DIR (see 'dirtytrack dump --help')");
	assert_int_equal(parse(CMD_DUMP, &a, "1", "-D", "x", "--freeze", "--leave-stopped", NULL),
			 ARGS_FAIL);
	assert_string_equal(dt_err_msg(), "--freeze and --leave-stopped exclude each other "
			    "(see 'dirtytrack dump --help')");
	assert_int_equal(parse(CMD_DUMP, &a, "1", "-D", "x", "--pages", NULL), ARGS_FAIL);
	assert_string_equal(dt_err_msg(), "unknown option '--pages' (see 'dirtytrack dump --help')");
	assert_int_equal(parse(CMD_DIFF, &a, "a", NULL), ARGS_FAIL);
	assert_string_equal(dt_err_msg(), "missing B (the second dump) (see 'dirtytrack diff --help')");
	assert_int_equal(parse(CMD_STOP, &a, "1", "2", NULL), ARGS_FAIL);
	assert_string_equal(dt_err_msg(), "unexpected argument '2' (see 'dirtytrack stop --help')");
	assert_int_equal(parse(CMD_STOP, &a, " 1", NULL), ARGS_FAIL);
	assert_string_equal(dt_err_msg(), "' 1' is not a process id (see 'dirtytrack stop --help')");
	assert_int_equal(parse(CMD_DUMP, &a, "1", "-D", "", NULL), ARGS_FAIL);
	assert_string_equal(dt_err_msg(), "--dir: the DIR is empty (see 'dirtytrack dump --help')");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_duplicate_names),
		cmocka_unit_test(test_rows_well_formed),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_structure_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
