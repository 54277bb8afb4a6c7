// SPDX-License-Identifier: MIT
/*
 * dirtytrack: find the memory pages a running process writes, and dump
 * them as CRIU-compatible images.  One table of commands; each command
 * parses its own options and prints through the one output path.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/caps.h"
#include "lib/util.h"
#include "pagemap/rangeset.h"
#include "tracker/holder.h"

#ifndef DT_VERSION
#define DT_VERSION "0.1"
#endif

bool json_output;
struct json jw;
const char *prog_cmd = "";

static const struct cmd commands[] = {
	{ "check", cmd_check, "[-j]",
	  "what this kernel and this user can do" },
	{ "start", cmd_start, "PID [--scan ioctl|pagemap] [-j]",
	  "start tracking the writes of process PID" },
	{ "stop", cmd_stop, "PID [-j]",
	  "stop tracking: the target is left with no userfaultfd and no write-protect" },
	{ "status", cmd_status, "PID [--scan ioctl|pagemap] [--pages] [-j]",
	  "tracking on or off, tracked and skipped mappings, pages written so far" },
	{ "watch", cmd_watch, "PID [--interval MS] [--count N] [--scan ioctl|pagemap] [--pages] [-v] [-j]",
	  "collect written pages every interval and print the dirty rate" },
	{ "dump", cmd_dump,
	  "PID -D DIR [--parent PARENT_DIR] [--full-if-needed] [--freeze | --leave-stopped] "
	  "[--scan ioctl|pagemap] [-j]",
	  "write a full or incremental CRIU-compatible dump of PID's memory" },
	{ "precopy", cmd_precopy,
	  "PID -D BASE [--max-iters N] [--until-pages P | --until-ratio R] [--interval MS] "
	  "[--link-mbps M] [--then leave-stopped|kill|resume] [--scan ioctl|pagemap] [-j]",
	  "pre-copy loop: BASE/1 (full), BASE/2, ... while the dirty set shrinks, then a frozen "
	  "BASE/final" },
	{ "show", cmd_show, "DIR [-j]",
	  "a dump at a glance: process, parent chain, mappings, pages present and in parent" },
	{ "verify", cmd_verify, "DIR [--pid PID] [-j]",
	  "check a dump's parent chain is whole; with --pid, compare it with stopped PID's memory" },
	{ "flatten", cmd_flatten, "DIR -o OUT [-j]",
	  "merge a dump and its parents into one standalone full dump in OUT" },
	{ "diff", cmd_diff, "A B [--pages] [--bytes] [-j]",
	  "compare the memory two dumps describe: pages only in A, only in B, changed; exit 1 "
	  "if they differ" },
};

static void print_usage(FILE *f)
{
	fprintf(f, "Usage: dirtytrack [-j] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-7s %s\n          %s\n", commands[i].name, commands[i].usage,
			commands[i].summary);
	fprintf(f, "\nOptions:\n"
		"  -j, --json     print JSON (one document, or one line per event)\n"
		"  -h, --help     this help; 'dirtytrack COMMAND --help' for one command\n"
		"  -V, --version  print the version\n\n"
		"Exit status: 0 success, 1 difference found, 2 error, 3 not permitted,\n"
		"4 not supported by this kernel, 5 process gone (exited, exec'd, pid reused).\n"
		"See dirtytrack(1).\n");
}

int print_cmd_help(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name)) {
			printf("Usage: dirtytrack %s %s\n  %s\nSee dirtytrack(1).\n", name,
			       commands[i].usage, commands[i].summary);
			return DT_EXIT_OK;
		}
	return DT_EXIT_ERROR;
}

int report_error(void)
{
	enum dt_exit kind = dt_err_kind();

	fprintf(stderr, "dirtytrack%s%s: %s\n", *prog_cmd ? " " : "", prog_cmd, dt_err_msg());
	if (json_output) {
		json_object_begin(&jw, NULL);
		json_object_begin(&jw, "error");
		json_str(&jw, "kind", dt_exit_name(kind));
		json_i64(&jw, "exit", kind);
		json_str(&jw, "message", dt_err_msg());
		json_object_end(&jw);
		json_object_end(&jw);
	}
	return kind;
}

int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dt_err(DT_EXIT_ERROR, "%s (see 'dirtytrack %s%s--help')", msg, prog_cmd,
	       *prog_cmd ? " " : "");
	return report_error();
}

int parse_pid_arg(const char *s, pid_t *pid)
{
	int v;

	if (!s)
		return usage_error("missing PID");
	if (!parse_int(s, &v) || v <= 0)
		return usage_error("'%s' is not a process id", s);
	*pid = v;
	return 0;
}

void human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

void json_ranges(const char *key, const struct range_set *s)
{
	json_array_begin(&jw, key);
	range_set_for_each(r, s) {
		json_array_begin(&jw, NULL);
		json_hex(&jw, NULL, r->start);
		json_hex(&jw, NULL, r->end);
		json_array_end(&jw);
	}
	json_array_end(&jw);
}

void print_ranges(const struct range_set *s)
{
	if (json_output) {
		json_ranges("ranges", s);
		return;
	}
	range_set_for_each(r, s)
		printf("  written %012llx-%012llx %llu pages\n", (unsigned long long)r->start,
		       (unsigned long long)r->end, (unsigned long long)((r->end - r->start) / PAGE_SIZE));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	/* the holder of a tracked process: spawned by start, never typed */
	if (argc >= 2 && !strcmp(argv[1], HOLDER_COMMAND))
		return holder_main(argc, argv);
	json_init(&jw, stdout);
	opterr = 0;
	/* global options stop at the command name */
	while ((c = getopt_long(argc, argv, "+jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json_output = true;
			break;
		case 'h':
			print_usage(stdout);
			return DT_EXIT_OK;
		case 'V':
			printf("dirtytrack %s\n", DT_VERSION);
			return DT_EXIT_OK;
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("missing command");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[optind], commands[i].name))
			continue;
		prog_cmd = commands[i].name;
		argv += optind;
		argc -= optind;
		optind = 0;	/* the command parses from its own argv[0] */
		/* least privilege before the command touches anything (lib/caps.c) */
		if (caps_limit(prog_cmd, argc, argv))
			return report_error();
		return commands[i].run(argc, argv);
	}
	return usage_error("unknown command '%s'", argv[optind]);
}
