// SPDX-License-Identifier: MIT
/*
 * The chain opener on bytes: the input describes two dump directories, a
 * and b (b/parent -> ../a), and chain_open reads b and its parent as it
 * reads any dump the user names.
 *
 * Input: records of u8 file, u16 length (little-endian), bytes.  file % 10:
 * 0..4 the inventory, pstree, mm, pagemap and pages files of a, 5..9 of b.
 * The mm, pagemap and pages files are named after the pid of the pstree
 * and the pages_id of the pagemap, as a dump names them.  A pages file is
 * given as a u32 size only (a sparse file of that size, at most 16 MiB).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/chain.h"
#include "image/imgfile.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

#define PAGES_MAX (16u << 20)

static char work[64];

static void empty_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
}

static void cleanup(void)
{
	char path[96];

	for (const char *d = "a"; d; d = *d == 'a' ? "b" : NULL) {
		snprintf(path, sizeof(path), "%s/%s", work, d);
		empty_dir(path);
		rmdir(path);
	}
	rmdir(work);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[96];

	(void)argc;
	(void)argv;
	snprintf(work, sizeof(work), "/tmp/dt-fuzz-chain-XXXXXX");
	if (!mkdtemp(work))
		abort();
	snprintf(path, sizeof(path), "%s/a", work);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/b", work);
	mkdir(path, 0700);
	atexit(cleanup);
	return 0;
}

/* The first record of an image, decoded, to name the files after it. */
static ProtobufCMessage *first_msg(const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *d)
{
	uint32_t len;

	if (n < 12)
		return NULL;
	memcpy(&len, p + 8, 4);
	if (len > n - 12)
		return NULL;
	return protobuf_c_message_unpack(d, NULL, len, p + 12);
}

struct file {
	const uint8_t *p;
	size_t n;
	bool given;
};

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", work, dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

static void make_dump(const char *dir, struct file *f)
{
	char name[64], path[160];
	unsigned int pid = 0, pages_id = 0;
	ProtobufCMessage *m;

	snprintf(path, sizeof(path), "%s/%s", work, dir);
	empty_dir(path);
	if ((m = f[1].given ? first_msg(f[1].p, f[1].n, &pstree_entry__descriptor) : NULL)) {
		pid = ((PstreeEntry *)m)->pid;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	if ((m = f[3].given ? first_msg(f[3].p, f[3].n, &pagemap_head__descriptor) : NULL)) {
		pages_id = ((PagemapHead *)m)->pages_id;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	if (f[0].given)
		write_file(dir, "inventory.img", f[0].p, f[0].n);
	if (f[1].given)
		write_file(dir, "pstree.img", f[1].p, f[1].n);
	snprintf(name, sizeof(name), "mm-%u.img", pid);
	if (f[2].given)
		write_file(dir, name, f[2].p, f[2].n);
	snprintf(name, sizeof(name), "pagemap-%u.img", pid);
	if (f[3].given)
		write_file(dir, name, f[3].p, f[3].n);
	if (f[4].given) {
		uint32_t size = 0;

		memcpy(&size, f[4].p, f[4].n < 4 ? f[4].n : 4);
		snprintf(name, sizeof(name), "pages-%u.img", pages_id);
		write_file(dir, name, NULL, 0);
		snprintf(path, sizeof(path), "%s/%s/%s", work, dir, name);
		if (truncate(path, size % PAGES_MAX))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct file f[10] = { 0 };
	struct dump_chain c;
	char top[96];

	while (size >= 3) {
		unsigned int which = data[0] % 10;
		size_t n = data[1] | (size_t)data[2] << 8;

		data += 3;
		size -= 3;
		if (n > size)
			n = size;
		f[which] = (struct file){ data, n, true };
		data += n;
		size -= n;
	}
	make_dump("a", f);
	make_dump("b", f + 5);
	snprintf(top, sizeof(top), "%s/b/parent", work);
	if (symlink("../a", top))
		abort();
	snprintf(top, sizeof(top), "%s/b", work);
	if (chain_open(&c, top) == 0) {
		for (int i = 0; i < c.n; i++)
			for (size_t e = 0; e < c.d[i].nents; e++)
				chain_page(&c, i, c.d[i].ents[e].vaddr);
		chain_close(&c);
	}
	dt_err_clear();
	return 0;
}
