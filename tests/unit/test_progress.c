// SPDX-License-Identifier: MIT
/*
 * Progress lines: on a terminal only, not with -j, not in the first second,
 * cleared at the end; the exact text.
 */
#include <fcntl.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/cli.h"
#include "cli/progress.h"

static int master = -1, saved_stderr = -1;

/* stderr becomes a terminal (a pty), or a pipe: what the command would see */
static void redirect_stderr(bool tty, int *reader)
{
	int fds[2], slave;

	fflush(stderr);
	saved_stderr = dup(2);
	if (tty) {
		assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
		*reader = master;
	} else {
		assert_int_equal(pipe(fds), 0);
		slave = fds[1];
		*reader = fds[0];
	}
	dup2(slave, 2);
	close(slave);
	fcntl(*reader, F_SETFL, O_NONBLOCK);
}

static char *restore_stderr(int reader)
{
	static char buf[1024];
	ssize_t n;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	n = read(reader, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(reader);
	return buf;
}

static void run(struct progress *p, bool started_long_ago)
{
	progress_begin(p, "dump ckpt/1");
	progress_report(p, 1 << 20, 4 << 20);	/* within the first second: quiet */
	if (started_long_ago)
		p->t0 -= 200000000000ULL;	/* 200 s in, 1 MiB done: 5.1 KiB/s */
	progress_report(p, 1 << 20, 4 << 20);
	progress_report(p, 2 << 20, 4 << 20);	/* too soon after the last line */
	progress_end(p);
}

static void test_terminal(void **state)
{
	struct progress p;
	int r;
	char *out;

	(void)state;
	json_output = false;
	redirect_stderr(true, &r);
	run(&p, true);
	out = restore_stderr(r);
	assert_string_equal(out, "\r\033[Kdump ckpt/1: 1.0 MiB of 4.0 MiB (25%), 5.1 KiB/s, "
				 "about 600 s left\r\033[K");
}

static void test_quiet_first_second(void **state)
{
	struct progress p;
	int r;

	(void)state;
	json_output = false;
	redirect_stderr(true, &r);
	run(&p, false);
	assert_string_equal(restore_stderr(r), "");
}

static void test_not_a_terminal(void **state)
{
	struct progress p;
	int r;

	(void)state;
	json_output = false;
	redirect_stderr(false, &r);
	run(&p, true);
	assert_string_equal(restore_stderr(r), "");
}

static void test_json(void **state)
{
	struct progress p;
	int r;

	(void)state;
	json_output = true;
	redirect_stderr(true, &r);
	run(&p, true);
	assert_string_equal(restore_stderr(r), "");
	json_output = false;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_terminal),
		cmocka_unit_test(test_quiet_first_second),
		cmocka_unit_test(test_not_a_terminal),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
