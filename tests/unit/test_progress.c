// SPDX-License-Identifier: MIT
/*
 * Progress lines: on a terminal only, not with -j, not in the first second,
 * cleared at the end; the exact text.
 */
#include <fcntl.h>
#include <poll.h>
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
	size_t len = 0;
	struct pollfd p = { reader, POLLIN, 0 };

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	/* a pty hands the bytes over in pieces: read until it has been quiet a while */
	while (len < sizeof(buf) - 1 && poll(&p, 1, 200) > 0) {
		ssize_t n = read(reader, buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(reader);
	return buf;
}

/* What a dump's progress writes to stderr, in the given circumstances. */
static char *progress_output(bool tty, bool json, bool started_long_ago)
{
	struct progress p;
	int reader;

	json_output = json;
	redirect_stderr(tty, &reader);
	progress_begin(&p, "dump ckpt/1");
	progress_report(&p, 1 << 20, 4 << 20);	/* within the first second: quiet */
	if (started_long_ago)
		p.t0 -= 200000000000ULL;	/* 200 s in, 1 MiB done: 5.1 KiB/s */
	progress_report(&p, 1 << 20, 4 << 20);
	progress_report(&p, 2 << 20, 4 << 20);	/* too soon after the last line */
	progress_end(&p);
	json_output = false;
	return restore_stderr(reader);
}

static void test_terminal(void **state)
{
	(void)state;
	assert_string_equal(progress_output(true, false, true),
			    "\r\033[Kdump ckpt/1: 1.0 MiB of 4.0 MiB (25%), 5.1 KiB/s, "
			    "about 600 s left\r\033[K");
}

static void test_quiet(void **state)
{
	(void)state;
	assert_string_equal(progress_output(true, false, false), "");	/* the first second */
	assert_string_equal(progress_output(false, false, true), "");	/* not a terminal */
	assert_string_equal(progress_output(true, true, true), "");	/* -j */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_terminal),
		cmocka_unit_test(test_quiet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
