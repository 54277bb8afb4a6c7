// SPDX-License-Identifier: MIT
/* One option parser for every command: each says which options it takes. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/util.h"

static const struct {
	struct option opt;
	unsigned int flag;
} all_opts[] = {
	{ { "json", no_argument, NULL, 'j' }, 0 },
	{ { "help", no_argument, NULL, 'h' }, 0 },
	{ { "scan", required_argument, NULL, 's' }, ARG_SCAN },
	{ { "interval", required_argument, NULL, 'i' }, ARG_INTERVAL },
	{ { "count", required_argument, NULL, 'n' }, ARG_COUNT },
	{ { "verbose", no_argument, NULL, 'v' }, ARG_VERBOSE },
	{ { "pages", no_argument, NULL, 'p' }, ARG_PAGES },
	{ { "dir", required_argument, NULL, 'D' }, ARG_DUMP },
	{ { "parent", required_argument, NULL, 'P' }, ARG_DUMP },
	{ { "freeze", no_argument, NULL, 'F' }, ARG_DUMP },
	{ { "leave-stopped", no_argument, NULL, 'L' }, ARG_DUMP },
	{ { "full-if-needed", no_argument, NULL, 'U' }, ARG_DUMP },
};

int parse_args(int argc, char **argv, unsigned int allowed, struct args *a)
{
	struct option opts[ARRAY_SIZE(all_opts) + 1];
	char shorts[32] = "jh";
	size_t n = 0;
	int c;

	memset(a, 0, sizeof(*a));
	a->backend = DIRTY_IOCTL;
	a->interval_ms = 1000;
	for (size_t i = 0; i < ARRAY_SIZE(all_opts); i++) {
		if (all_opts[i].flag && !(allowed & all_opts[i].flag))
			continue;
		opts[n++] = all_opts[i].opt;
		if (all_opts[i].opt.val == 'v')
			strcat(shorts, "v");
		if (all_opts[i].opt.val == 'i')
			strcat(shorts, "i:");
		if (all_opts[i].opt.val == 'n')
			strcat(shorts, "n:");
		if (all_opts[i].opt.val == 'D')
			strcat(shorts, "D:");
	}
	memset(&opts[n], 0, sizeof(opts[n]));
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json_output = true;
			break;
		case 'h':
			return print_cmd_help(argv[0]) == 0 ? ARGS_HELP : ARGS_FAIL;
		case 's':
			if (dirty_backend_parse(optarg, &a->backend)) {
				report_error();
				return ARGS_FAIL;
			}
			break;
		case 'i':
			if (!parse_int(optarg, &a->interval_ms) || a->interval_ms < 1) {
				usage_error("--interval: '%s' is not a positive number of milliseconds",
					    optarg);
				return ARGS_FAIL;
			}
			break;
		case 'n':
			if (!parse_int(optarg, &a->count) || a->count < 1) {
				usage_error("--count: '%s' is not a positive number", optarg);
				return ARGS_FAIL;
			}
			break;
		case 'v':
			a->verbose = true;
			break;
		case 'p':
			a->pages = true;
			break;
		case 'D':
			a->dir = optarg;
			break;
		case 'P':
			a->parent = optarg;
			break;
		case 'F':
			a->freeze = true;
			break;
		case 'L':
			a->leave_stopped = true;
			break;
		case 'U':
			a->full_if_needed = true;
			break;
		case ':':
			usage_error("option '%s' needs a value", argv[optind - 1]);
			return ARGS_FAIL;
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
			return ARGS_FAIL;
		}
	}
	if (allowed & ARG_PID) {
		if (optind >= argc) {
			usage_error("missing PID");
			return ARGS_FAIL;
		}
		if (parse_pid_arg(argv[optind], &a->pid))
			return ARGS_FAIL;
		optind++;
	}
	if (optind < argc) {
		usage_error("unexpected argument '%s'", argv[optind]);
		return ARGS_FAIL;
	}
	if ((allowed & ARG_DUMP) && !a->dir) {
		usage_error("missing -D DIR");
		return ARGS_FAIL;
	}
	if (a->freeze && a->leave_stopped) {
		usage_error("--freeze and --leave-stopped exclude each other");
		return ARGS_FAIL;
	}
	return ARGS_OK;
}
