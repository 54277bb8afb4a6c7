// SPDX-License-Identifier: MIT
/* One option parser for every command: each says which options it takes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
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
	{ { "dir", required_argument, NULL, 'D' }, ARG_DUMP | ARG_PRECOPY },
	{ { "max-iters", required_argument, NULL, 'M' }, ARG_PRECOPY },
	{ { "until-pages", required_argument, NULL, 'G' }, ARG_PRECOPY },
	{ { "until-ratio", required_argument, NULL, 'R' }, ARG_PRECOPY },
	{ { "link-mbps", required_argument, NULL, 'K' }, ARG_PRECOPY },
	{ { "then", required_argument, NULL, 'T' }, ARG_PRECOPY },
	{ { "parent", required_argument, NULL, 'P' }, ARG_DUMP },
	{ { "freeze", no_argument, NULL, 'F' }, ARG_DUMP },
	{ { "leave-stopped", no_argument, NULL, 'L' }, ARG_DUMP },
	{ { "full-if-needed", no_argument, NULL, 'U' }, ARG_DUMP },
	{ { "output", required_argument, NULL, 'o' }, ARG_OUTPUT },
	{ { "pid", required_argument, NULL, 'I' }, ARG_LIVE_PID },
	{ { "bytes", no_argument, NULL, 'b' }, ARG_BYTES },
	{ { "threads", no_argument, NULL, 't' }, ARG_THREADS },
};

int parse_args(int argc, char **argv, unsigned int allowed, struct args *a)
{
	struct option opts[ARRAY_SIZE(all_opts) + 1];
	char shorts[64] = ":jh";
	size_t n = 0;
	int c;

	memset(a, 0, sizeof(*a));
	a->backend = DIRTY_IOCTL;
	a->interval_ms = 1000;
	a->max_iters = 10;
	a->until_pages = UINT64_MAX;	/* not given; 0 is a real limit */
	a->then = "leave-stopped";
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
		if (all_opts[i].opt.val == 'o')
			strcat(shorts, "o:");
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
		case 'M':
			if (!parse_int(optarg, &a->max_iters) || a->max_iters < 1) {
				usage_error("--max-iters: '%s' is not a positive number", optarg);
				return ARGS_FAIL;
			}
			break;
		case 'G':
			if (!parse_u64(optarg, &a->until_pages)) {
				usage_error("--until-pages: '%s' is not a number of pages", optarg);
				return ARGS_FAIL;
			}
			break;
		case 'R':
		case 'K': {
			char *end;
			double v = strtod(optarg, &end);

			if (*end || end == optarg || !(v > 0) || (c == 'R' && v >= 1)) {
				usage_error("--%s: '%s' is not %s", c == 'R' ? "until-ratio" : "link-mbps",
					    optarg, c == 'R' ? "a ratio between 0 and 1" : "a positive rate");
				return ARGS_FAIL;
			}
			*(c == 'R' ? &a->until_ratio : &a->link_mbps) = v;
			break;
		}
		case 'T':
			if (strcmp(optarg, "leave-stopped") && strcmp(optarg, "kill") &&
			    strcmp(optarg, "resume")) {
				usage_error("--then: '%s' is not leave-stopped, kill or resume", optarg);
				return ARGS_FAIL;
			}
			a->then = optarg;
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
		case 'o':
			a->out = optarg;
			break;
		case 'I':
			if (parse_pid_arg(optarg, &a->live_pid))
				return ARGS_FAIL;
			break;
		case 'b':
			a->bytes = true;
			break;
		case 't':
			a->threads = true;
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
	if (allowed & ARG_DIR) {
		if (optind >= argc) {
			usage_error("missing DIR");
			return ARGS_FAIL;
		}
		a->dir = argv[optind++];
	}
	if (allowed & ARG_DIR_PAIR) {
		if (argc - optind < 2) {
			usage_error("missing %s", optind < argc ? "B (the second dump)" : "dumps A and B");
			return ARGS_FAIL;
		}
		a->dir = argv[optind++];
		a->dir_b = argv[optind++];
	}
	if (optind < argc) {
		usage_error("unexpected argument '%s'", argv[optind]);
		return ARGS_FAIL;
	}
	if ((allowed & ARG_OUTPUT) && !a->out) {
		usage_error("missing -o OUT");
		return ARGS_FAIL;
	}
	if ((allowed & (ARG_DUMP | ARG_PRECOPY)) && !a->dir) {
		usage_error("missing -D DIR");
		return ARGS_FAIL;
	}
	if (a->freeze && a->leave_stopped) {
		usage_error("--freeze and --leave-stopped exclude each other");
		return ARGS_FAIL;
	}
	return ARGS_OK;
}
