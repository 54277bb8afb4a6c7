// SPDX-License-Identifier: MIT
/*
 * lib/path.c on a scratch tree: what is opened, what is refused, and the
 * one message.  (The rule about other users' links needs a second user:
 * tests/integration/test_hostile.py.)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/path.h"

static char root[64];

static void at(char *buf, const char *rel)
{
	snprintf(buf, PATH_MAX, "%s/%s", root, rel);
}

static void put(const char *rel, size_t size)
{
	char p[PATH_MAX];
	int fd;

	at(p, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static int setup(void **state)
{
	char p[PATH_MAX], q[PATH_MAX];

	(void)state;
	snprintf(root, sizeof(root), "/tmp/dt-unit-path-XXXXXX");
	assert_non_null(mkdtemp(root));
	at(p, "d");
	assert_int_equal(mkdir(p, 0700), 0);
	at(p, "d/sub");
	assert_int_equal(mkdir(p, 0700), 0);
	put("d/img", 100);
	put("d/big", 5000);
	at(p, "d/fifo");
	assert_int_equal(mkfifo(p, 0600), 0);
	at(p, "d/link");
	assert_int_equal(symlink("img", p), 0);
	at(p, "d/sublink");
	assert_int_equal(symlink("sub", p), 0);
	at(p, "own");			/* our own link to d: followed */
	at(q, "d");
	assert_int_equal(symlink(q, p), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd);
}

static int dir_fd(void)
{
	char p[PATH_MAX];

	at(p, "d");
	return path_open_dir(p, 0);
}

static void test_images(void **state)
{
	int d = dir_fd(), fd;
	size_t len;
	off_t size;
	char *buf;

	(void)state;
	assert_true(d >= 0);
	fd = path_open_image(d, "img", 4096, &size);
	assert_true(fd >= 0);
	assert_int_equal(size, 100);
	close(fd);
	buf = path_read_image(d, "img", 4096, &len);
	assert_non_null(buf);
	assert_int_equal(len, 100);
	free(buf);
	/* a FIFO neither blocks nor is read */
	assert_int_equal(path_open_image(d, "fifo", 4096, &size), -1);
	assert_string_equal(dt_err_msg(), "fifo is not a regular file (a FIFO)");
	assert_int_equal(path_open_image(d, "link", 4096, &size), -1);
	assert_string_equal(dt_err_msg(), "link is a symlink: refusing to follow it");
	assert_int_equal(path_open_image(d, "big", 4096, &size), -1);
	assert_string_equal(dt_err_msg(), "big is 5000 bytes: more than such an image can hold (4096)");
	assert_int_equal(path_open_image(d, "sub", 4096, &size), -1);
	assert_string_equal(dt_err_msg(), "sub is not a regular file (a directory)");
	assert_int_equal(path_open_image(d, "none", 4096, &size), -1);
	assert_string_equal(dt_err_msg(), "none is missing");
	assert_null(path_read_image(d, "fifo", 4096, &len));
	/* one name, never a path */
	errno = 0;
	assert_int_equal(path_openat(d, "sub/../img", O_RDONLY, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(path_openat(d, "..", O_RDONLY, 0), -1);
	close(d);
}

static void test_dirs(void **state)
{
	char p[PATH_MAX], q[PATH_MAX + 64], leaf[NAME_MAX + 1];
	int d, fd;

	(void)state;
	/* our own symlink on the way: followed, the fd is of d */
	at(p, "own/sub");
	fd = path_open_dir(p, 0);
	assert_true(fd >= 0);
	assert_int_equal(path_of_fd(fd, q, sizeof(q)), 0);
	at(p, "d/sub");
	assert_string_equal(q, p);
	close(fd);
	/* ... but not as the leaf where the caller says so */
	at(p, "own");
	assert_int_equal(path_open_dir(p, PATH_LEAF_NOFOLLOW), -1);
	snprintf(q, sizeof(q), "%s is a symlink: refusing to follow it", p);
	assert_string_equal(dt_err_msg(), q);
	/* the parent of a new name; the name itself is not looked at */
	at(p, "own/new");
	fd = path_open_parent(p, leaf, sizeof(leaf));
	assert_true(fd >= 0);
	assert_string_equal(leaf, "new");
	close(fd);
	at(p, "d/..");
	assert_int_equal(path_open_parent(p, leaf, sizeof(leaf)), -1);
	/* a file on the way */
	at(p, "d/img/x");
	assert_int_equal(path_open_dir(p, 0), -1);
	snprintf(q, sizeof(q), "%s: img is not a directory", p);
	assert_string_equal(dt_err_msg(), q);
	/* created when asked */
	at(p, "d/made");
	fd = path_open_dir(p, PATH_DIR_CREATE);
	assert_true(fd >= 0);
	close(fd);
	/* relative links: '..' is fine, a symlink anywhere on the way is not */
	d = dir_fd();
	fd = path_open_relative_dir(d, "../d/sub");
	assert_true(fd >= 0);
	close(fd);
	errno = 0;
	assert_int_equal(path_open_relative_dir(d, "sublink"), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(path_open_relative_dir(d, "../own/sub"), -1);
	assert_int_equal(errno, ELOOP);
	close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_images),
		cmocka_unit_test(test_dirs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
