// SPDX-License-Identifier: MIT
/* check: what this kernel and this user can do, like 'criu check'. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/caps.h"
#include "lib/uapi.h"
#include "lib/util.h"

struct feature {
	const char *name;
	char name_buf[40];
	bool ok;
	bool required;
	char detail[192];
};

#define MAX_FEATURES 16

static struct feature *add(struct feature *f, int *n, const char *name, bool required)
{
	struct feature *x = &f[(*n)++];

	memset(x, 0, sizeof(*x));
	x->name = name;
	x->required = required;
	return x;
}

static int try_userfaultfd(int flags)
{
	if (dt_simulate_missing("userfaultfd")) {
		errno = ENOSYS;
		return -1;
	}
	return (int)syscall(__NR_userfaultfd, flags | O_CLOEXEC | O_NONBLOCK);
}

static void check_uffd(struct feature *f, int *n)
{
	struct feature *user = add(f, n, "userfaultfd (user-mode only)", true);
	struct feature *full = add(f, n, "userfaultfd (kernel faults too)", false);
	struct feature *dev = add(f, n, "/dev/userfaultfd", false);
	struct feature *async = add(f, n, "UFFD_FEATURE_WP_ASYNC", true);
	struct feature *unpop = add(f, n, "UFFD_FEATURE_WP_UNPOPULATED", true);
	struct uffdio_api api = { .api = UFFD_API };
	int fd = try_userfaultfd(UFFD_USER_MODE_ONLY), fd2;

	user->ok = fd >= 0;
	snprintf(user->detail, sizeof(user->detail), "%s",
		 fd >= 0 ? "syscall, UFFD_USER_MODE_ONLY: what dirtytrack injects" : strerror(errno));
	fd2 = try_userfaultfd(0);
	full->ok = fd2 >= 0;
	snprintf(full->detail, sizeof(full->detail), "%s",
		 fd2 >= 0 ? "not needed" : "not needed (CAP_SYS_PTRACE or vm.unprivileged_userfaultfd)");
	if (fd2 >= 0)
		close(fd2);
	dev->ok = access("/dev/userfaultfd", R_OK | W_OK) == 0;
	snprintf(dev->detail, sizeof(dev->detail), "%s", dev->ok ? "accessible" : strerror(errno));
	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) == 0) {
		async->ok = (api.features & UFFD_FEATURE_WP_ASYNC) && !dt_simulate_missing("wp_async");
		unpop->ok = api.features & UFFD_FEATURE_WP_UNPOPULATED;
		snprintf(async->detail, sizeof(async->detail), "%s",
			 async->ok ? "writes resolve in the kernel" : "Linux 6.7 or later needed");
		snprintf(unpop->detail, sizeof(unpop->detail), "%s",
			 unpop->ok ? "untouched pages are protected too" : "Linux 6.4 or later needed");
	} else {
		snprintf(async->detail, sizeof(async->detail), "cannot query without userfaultfd");
		snprintf(unpop->detail, sizeof(unpop->detail), "cannot query without userfaultfd");
	}
	if (fd >= 0)
		close(fd);
}

static long scan_self(int fd, void *page, uint64_t mask)
{
	struct page_region r;
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .start = (uintptr_t)page, .end = (uintptr_t)page + PAGE_SIZE,
		.vec = (uintptr_t)&r, .vec_len = 1, .category_mask = mask, .return_mask = mask,
	};

	if (dt_simulate_missing("pagemap_scan")) {
		errno = ENOTTY;
		return -1;
	}
	return ioctl(fd, PAGEMAP_SCAN, &arg);
}

static void check_pagemap_scan(struct feature *f, int *n)
{
	struct feature *scan = add(f, n, "PAGEMAP_SCAN", true);
	struct feature *sd = add(f, n, "PAGE_IS_SOFT_DIRTY category", false);
	struct feature *guard = add(f, n, "PAGE_IS_GUARD category", false);
	void *page = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	scan->ok = fd >= 0 && page != MAP_FAILED && scan_self(fd, page, PAGE_IS_PRESENT) >= 0;
	snprintf(scan->detail, sizeof(scan->detail), "%s",
		 scan->ok ? "categories WPALLOWED WRITTEN FILE PRESENT SWAPPED PFNZERO HUGE"
			  : "Linux 6.7 or later needed");
	sd->ok = scan->ok && scan_self(fd, page, PAGE_IS_SOFT_DIRTY) >= 0;
	snprintf(sd->detail, sizeof(sd->detail), "%s", sd->ok ? "Linux 6.8+" : "not known to this kernel");
	guard->ok = scan->ok && scan_self(fd, page, PAGE_IS_GUARD) >= 0;
	snprintf(guard->detail, sizeof(guard->detail), "%s",
		 guard->ok ? "Linux 6.15+" : "not known to this kernel");
	if (fd >= 0)
		close(fd);
	if (page != MAP_FAILED)
		munmap(page, PAGE_SIZE);
}

/* What we had when we started: check itself keeps nothing (lib/caps.c). */
static void check_caps(struct feature *f, int *n)
{
	static const struct {
		cap_value_t cap;
		const char *why;
	} caps[] = {
		{ CAP_SYS_PTRACE, "trace processes of other users" },
		{ CAP_DAC_READ_SEARCH, "list the fds of other users' processes" },
		{ CAP_CHECKPOINT_RESTORE, "open /proc/PID/map_files (shared memory never mapped)" },
		{ CAP_KILL, "stop or kill other users' processes" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(caps); i++) {
		struct feature *x = add(f, n, "", false);

		caps_name(caps[i].cap, x->name_buf, sizeof(x->name_buf));
		x->name = x->name_buf;
		x->ok = caps_had(caps[i].cap);
		snprintf(x->detail, sizeof(x->detail), "%s: %s", x->ok ? "effective" : "absent",
			 caps[i].why);
	}
}

/* The one table of lib/caps.c: what each command keeps when it has them. */
static void print_kept_caps(void)
{
	size_t n;
	const struct caps_rule *r = caps_rules(&n);
	char name[64];

	if (json_output) {
		json_array_begin(&jw, "capabilities_kept");
		for (size_t i = 0; i < n; i++) {
			json_object_begin(&jw, NULL);
			json_str(&jw, "command", r[i].cmd);
			if (r[i].with_opt)
				json_str(&jw, "with", r[i].with_opt);
			else
				json_null(&jw, "with");
			json_array_begin(&jw, "keep");
			for (int k = 0; k < r[i].nkeep; k++) {
				caps_name(r[i].keep[k], name, sizeof(name));
				json_str(&jw, NULL, name);
			}
			json_array_end(&jw);
			json_str(&jw, "why", r[i].why);
			json_object_end(&jw);
		}
		json_array_end(&jw);
		return;
	}
	printf("capabilities each command keeps when run with them (all others dropped):\n");
	for (size_t i = 0; i < n; i++) {
		printf("  %-7s %-6s", r[i].cmd, r[i].with_opt ? r[i].with_opt : "");
		for (int k = 0; k < r[i].nkeep; k++) {
			caps_name(r[i].keep[k], name, sizeof(name));
			printf("%s%s", k ? "," : " ", name);
		}
		printf("  (%s)\n", r[i].why);
	}
	printf("  every other command keeps none\n");
}

/* Which shared memory this user dumps exactly, and how the rest is read. */
static void check_shmem(struct feature *f, int *n)
{
	struct feature *x = add(f, n, "shared memory, exactly", false);

	x->ok = caps_had(CAP_CHECKPOINT_RESTORE) || caps_had(CAP_SYS_ADMIN);
	snprintf(x->detail, sizeof(x->detail), "%s",
		 x->ok ? "all kinds, through /proc/PID/map_files"
		       : "memfd and /dev/shm through the process's fd; shared anonymous and SysV "
			 "read whole through the mapping (map_files needs CAP_CHECKPOINT_RESTORE)");
}

static void check_events(struct feature *f, int *n)
{
	struct feature *x = add(f, n, "process events", false);

	/* check itself keeps no capability: ask what we started with */
	x->ok = caps_had(CAP_NET_ADMIN);
	snprintf(x->detail, sizeof(x->detail), "%s",
		 x->ok ? "proc connector (CAP_NET_ADMIN): the holder sees fork, exec and exit as "
			 "they happen"
		       : "no CAP_NET_ADMIN for the proc connector: the holder sees exit through a "
			 "pidfd and exec within a second");
}

static void check_ptrace(struct feature *f, int *n)
{
	struct feature *x = add(f, n, "ptrace scope", false);
	char *scope = read_file("/proc/sys/kernel/yama/ptrace_scope", NULL);

	if (!scope) {
		x->ok = true;
		snprintf(x->detail, sizeof(x->detail), "no Yama: same-uid processes can be traced");
	} else {
		x->ok = scope[0] == '0';
		snprintf(x->detail, sizeof(x->detail), "Yama ptrace_scope=%c%s", scope[0],
			 x->ok ? "" : ": only descendants, or CAP_SYS_PTRACE");
		free(scope);
	}
}

int cmd_check(int argc, char **argv)
{
	struct feature f[MAX_FEATURES];
	struct utsname u;
	struct args a;
	bool all_ok = true;
	int n = 0, r = parse_args(argc, argv, &a);

	if (r)
		return r == ARGS_HELP ? DT_EXIT_OK : DT_EXIT_ERROR;
	uname(&u);
	check_uffd(f, &n);
	check_pagemap_scan(f, &n);
	check_ptrace(f, &n);
	check_caps(f, &n);
	check_events(f, &n);
	check_shmem(f, &n);
	for (int i = 0; i < n; i++)
		if (f[i].required && !f[i].ok)
			all_ok = false;
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_str(&jw, "kernel", u.release);
		json_str(&jw, "machine", u.machine);
		json_bool(&jw, "usable", all_ok);
		json_array_begin(&jw, "features");
		for (int i = 0; i < n; i++) {
			json_object_begin(&jw, NULL);
			json_str(&jw, "name", f[i].name);
			json_bool(&jw, "ok", f[i].ok);
			json_bool(&jw, "required", f[i].required);
			json_str(&jw, "detail", f[i].detail);
			json_object_end(&jw);
		}
		json_array_end(&jw);
		print_kept_caps();
		json_object_end(&jw);
	} else {
		printf("kernel %s (%s)\n", u.release, u.machine);
		for (int i = 0; i < n; i++)
			printf("  %-4s %-32s %s%s\n", f[i].ok ? "ok" : (f[i].required ? "FAIL" : "no"),
			       f[i].name, f[i].detail, f[i].required ? "" : " [optional]");
		print_kept_caps();
		printf(all_ok ? "dirtytrack can track processes here\n"
			      : "dirtytrack cannot track processes here: see FAIL above\n");
	}
	if (!all_ok) {
		dt_err(DT_EXIT_UNSUPPORTED, "this kernel lacks a feature dirtytrack needs");
		if (!json_output)
			fprintf(stderr, "dirtytrack check: %s\n", dt_err_msg());
		return DT_EXIT_UNSUPPORTED;
	}
	return DT_EXIT_OK;
}
