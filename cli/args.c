// SPDX-License-Identifier: MIT
/* The one option table and the one parser (see cli/args.h). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/util.h"
#include "tracker/unwind.h"

#define FIELD(f) offsetof(struct args, f)

/* -j and -p: every command with output of its own (not help) */
#define OUTPUT_COMMANDS ((ON_COMMANDS & ~ON(CMD_HELP)) | ON_GLOBAL)
#define PID_COMMANDS (ON(CMD_START) | ON(CMD_STOP) | ON(CMD_STATUS) | ON(CMD_WATCH) | \
		      ON(CMD_DUMP) | ON(CMD_PRECOPY))
#define SCAN_COMMANDS (ON(CMD_START) | ON(CMD_STATUS) | ON(CMD_WATCH) | ON(CMD_DUMP) | \
		       ON(CMD_PRECOPY))

const char *const precopy_then_names[] = {
	[THEN_LEAVE_STOPPED] = "leave-stopped",
	[THEN_KILL] = "kill",
	[THEN_RESUME] = "resume",
	NULL,
};

_Static_assert(sizeof(enum dirty_backend) == sizeof(int) &&
	       sizeof(enum precopy_then) == sizeof(int), "OPT_ENUM fields are stored as int");

const struct dt_option dt_options[] = {
	{ 'D', "dir", "DIR", "the new dump directory (precopy: the base, BASE/1 ... BASE/final)",
	  NULL, OPT_STRING, NULL, COMPLETE_DIR, ON(CMD_DUMP) | ON(CMD_PRECOPY), true,
	  FIELD(dir) },
	{ 0, "parent", "PARENT_DIR", "incremental: store only the pages written since PARENT_DIR",
	  NULL, OPT_STRING, NULL, COMPLETE_DIR, ON(CMD_DUMP), false, FIELD(parent) },
	{ 0, "full-if-needed", NULL, "take a full dump (and say why) when the parent cannot be used",
	  NULL, OPT_FLAG, NULL, COMPLETE_NONE, ON(CMD_DUMP), false, FIELD(full_if_needed) },
	{ 0, "tree", NULL, "the process and all its descendants, as one (dump: one directory, "
	  "shared memory stored once)", NULL, OPT_FLAG, NULL, COMPLETE_NONE,
	  ON(CMD_START) | ON(CMD_STOP) | ON(CMD_STATUS) | ON(CMD_WATCH) | ON(CMD_DUMP) |
	  ON(CMD_PRECOPY) | ON(CMD_THREADS), false, FIELD(tree) },
	{ 0, "no-track", NULL, "a one-off full dump: tracking is neither turned on nor used", NULL,
	  OPT_FLAG, NULL, COMPLETE_NONE, ON(CMD_DUMP), false, FIELD(no_track) },
	{ 0, "strict", NULL, "fail instead of warning when memory may change unseen (pinned "
	  "pages no io_uring buffer explains, I/O in flight in a frozen dump)", NULL, OPT_FLAG, NULL,
	  COMPLETE_NONE, ON(CMD_DUMP) | ON(CMD_PRECOPY), false, FIELD(strict) },
	{ 0, "freeze", NULL, "stop the target from the collection until its pages are copied",
	  NULL, OPT_FLAG, NULL, COMPLETE_NONE, ON(CMD_DUMP), false, FIELD(freeze) },
	{ 0, "leave-stopped", NULL, "as --freeze, and leave the target stopped (SIGSTOP)",
	  NULL, OPT_FLAG, NULL, COMPLETE_NONE, ON(CMD_DUMP), false, FIELD(leave_stopped) },
	{ 'o', "output", "OUT", "the new standalone dump directory", NULL, OPT_STRING, NULL,
	  COMPLETE_DIR, ON(CMD_FLATTEN), true, FIELD(out) },
	{ 0, "pid", "PID", "also compare the chain with the memory of stopped process PID",
	  NULL, OPT_PID, NULL, COMPLETE_PID, ON(CMD_VERIFY), false, FIELD(live_pid) },
	{ 'i', "interval", "MS", "milliseconds between collections (precopy: between dumps)",
	  "1000", OPT_INT, NULL, COMPLETE_NONE, ON(CMD_WATCH) | ON(CMD_PRECOPY), false,
	  FIELD(interval_ms), 1, INT_MAX },
	{ 'n', "count", "N", "stop after N intervals (without it: until interrupted)", NULL,
	  OPT_INT, NULL, COMPLETE_NONE, ON(CMD_WATCH), false, FIELD(count), 1, INT_MAX },
	{ 0, "max-iters", "N", "at most N dumps before the final one", "10", OPT_INT, NULL,
	  COMPLETE_NONE, ON(CMD_PRECOPY), false, FIELD(max_iters), 1, INT_MAX },
	{ 0, "until-pages", "P", "converged when a dump stores P pages or fewer", NULL, OPT_U64,
	  NULL, COMPLETE_NONE, ON(CMD_PRECOPY), false, FIELD(until_pages) },
	{ 0, "until-ratio", "R", "converged when a dump stores at most R times the previous one",
	  NULL, OPT_DOUBLE, NULL, COMPLETE_NONE, ON(CMD_PRECOPY), false, FIELD(until_ratio),
	  0.0001, 0.9999 },
	{ 0, "link-mbps", "M", "model a link of M Mbit/s: wait as long as sending each dump takes",
	  NULL, OPT_DOUBLE, NULL, COMPLETE_NONE, ON(CMD_PRECOPY), false, FIELD(link_mbps),
	  0.001, 1e9 },
	{ 0, "then", NULL, "what becomes of the target after the final dump", "leave-stopped",
	  OPT_ENUM, precopy_then_names, COMPLETE_WORDS, ON(CMD_PRECOPY), false, FIELD(then) },
	{ 0, "scan", NULL, "how written pages are read: PAGEMAP_SCAN, or the pagemap's uffd-wp bit",
	  "ioctl", OPT_ENUM, dirty_backend_names, COMPLETE_WORDS, SCAN_COMMANDS, false,
	  FIELD(backend) },
	{ 0, "pages", NULL, "also list the page ranges (diff: changed, only in A, only in B)",
	  NULL, OPT_FLAG, NULL, COMPLETE_NONE, ON(CMD_STATUS) | ON(CMD_WATCH) | ON(CMD_DIFF), false,
	  FIELD(pages) },
	{ 0, "bytes", NULL, "also count the bytes that differ inside changed pages", NULL,
	  OPT_FLAG, NULL, COMPLETE_NONE, ON(CMD_DIFF), false, FIELD(bytes) },
	{ 0, "threads", NULL, "each thread: as the dump recorded it (registers, backtrace, pending "
	  "signals); watch: its CPU time in each interval", NULL, OPT_FLAG, NULL, COMPLETE_NONE,
	  ON(CMD_SHOW) | ON(CMD_WATCH), false, FIELD(threads) },
	{ 0, "depth", "N", "backtraces of at most N frames", "64", OPT_INT, NULL, COMPLETE_NONE,
	  ON(CMD_THREADS), false, FIELD(depth), 1, UNWIND_DEPTH_MAX },
	{ 'v', "verbose", NULL, "also the pages written per kind of mapping", NULL, OPT_FLAG, NULL,
	  COMPLETE_NONE, ON(CMD_WATCH), false, FIELD(verbose) },
	{ 'j', "json", NULL, "print JSON: one document, or one line per event", NULL, OPT_FLAG,
	  NULL, COMPLETE_NONE, OUTPUT_COMMANDS, false, FIELD(json) },
	{ 'p', "pretty", NULL, "indented JSON (implies -j)", NULL, OPT_FLAG, NULL, COMPLETE_NONE,
	  OUTPUT_COMMANDS, false, FIELD(pretty) },
	{ 'h', "help", NULL, "show this help", NULL, OPT_HELP, NULL, COMPLETE_NONE,
	  ON_COMMANDS | ON_GLOBAL },
	{ 'V', "version", NULL, "print the version and the commit it was built from", NULL,
	  OPT_VERSION, NULL, COMPLETE_NONE, ON_GLOBAL },
};

const size_t dt_noptions = ARRAY_SIZE(dt_options);
_Static_assert(ARRAY_SIZE(dt_options) <= DT_MAX_OPTIONS, "raise DT_MAX_OPTIONS");

bool option_on(const struct dt_option *o, unsigned int cmd_id)
{
	return o->cmds & (cmd_id >= CMD_COUNT ? ON_GLOBAL : ON(cmd_id));
}

const char *option_argname(const struct dt_option *o, char *buf, size_t len)
{
	size_t n = 0;

	if (!o->words)
		return o->argh ? o->argh : "";
	buf[0] = '\0';
	for (const char *const *w = o->words; *w && n < len; w++)
		n += snprintf(buf + n, len - n, "%s%s", w == o->words ? "" : "|", *w);
	return buf;
}

/* Plain decimal notation only: no spaces, signs, hex, inf or nan. */
static bool parse_decimal(const char *s, double *out)
{
	const char *p = s;
	bool digits = false;
	char *end;

	while (isdigit((unsigned char)*p))
		p++, digits = true;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			digits = true;
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return false;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p)
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return !errno && *end == '\0' && isfinite(*out);
}

static int bad_value(const struct dt_option *o, const char *v)
{
	char words[128];

	switch (o->kind) {
	case OPT_INT:
		return usage_error("--%s: '%s' is not a whole number from %.0f to %.0f", o->long_name,
				   v, o->min, o->max);
	case OPT_DOUBLE:
		return usage_error("--%s: '%s' is not a decimal number from %g to %g", o->long_name,
				   v, o->min, o->max);
	case OPT_ENUM:
		return usage_error("--%s: '%s' is not one of %s", o->long_name, v,
				   option_argname(o, words, sizeof(words)));
	default:
		return usage_error("--%s: '%s' is not a whole number", o->long_name, v);
	}
}

/* Store v (an argument or the default) in the option's field. */
static int set_value(const struct dt_option *o, const char *v, struct args *a)
{
	void *field = (char *)a + o->off;
	double d;
	int i;

	switch (o->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		return 0;
	case OPT_STRING:
		if (!*v)
			return usage_error("--%s: the %s is empty", o->long_name, o->argh);
		*(const char **)field = v;
		return 0;
	case OPT_PID:
		return parse_pid_arg(v, field);
	case OPT_INT:
		if (!parse_int(v, &i) || i < o->min || i > o->max)
			return bad_value(o, v);
		*(int *)field = i;
		return 0;
	case OPT_U64:
		return parse_u64(v, field) ? 0 : bad_value(o, v);
	case OPT_DOUBLE:
		if (!parse_decimal(v, &d) || d < o->min || d > o->max)
			return bad_value(o, v);
		*(double *)field = d;
		return 0;
	case OPT_ENUM:
		for (i = 0; o->words[i]; i++)
			if (!strcmp(o->words[i], v)) {
				*(int *)field = i;
				return 0;
			}
		return bad_value(o, v);
	default:
		return 0;
	}
}

bool command_has_option(const char *long_name)
{
	for (size_t i = 0; current_cmd && i < dt_noptions; i++)
		if (!strcmp(dt_options[i].long_name, long_name))
			return option_on(&dt_options[i], current_cmd->id);
	return false;
}

bool option_has_value(const struct dt_option *o)
{
	return o->argh || o->words;
}

static int has_arg(const struct dt_option *o)
{
	return option_has_value(o) ? required_argument : no_argument;
}

/*
 * getopt_long over the rows of one command (or of the global line): each
 * row's val is its index + 256; shorts come from the same rows.
 */
struct optset {
	struct option longs[ARRAY_SIZE(dt_options) + 1];
	char shorts[2 * ARRAY_SIZE(dt_options) + 4];
};

static void build_optset(struct optset *s, unsigned int cmd_id, bool stop_at_operand)
{
	size_t n = 0, k = 0;

	s->shorts[k++] = stop_at_operand ? '+' : ':';
	if (stop_at_operand)
		s->shorts[k++] = ':';
	for (size_t i = 0; i < dt_noptions; i++) {
		const struct dt_option *o = &dt_options[i];

		if (!option_on(o, cmd_id))
			continue;
		s->longs[n++] = (struct option){ o->long_name, has_arg(o), NULL, (int)i + 256 };
		if (o->short_name) {
			s->shorts[k++] = o->short_name;
			if (has_arg(o))
				s->shorts[k++] = ':';
		}
	}
	memset(&s->longs[n], 0, sizeof(s->longs[n]));
	s->shorts[k] = '\0';
	opterr = 0;
	optind = 0;	/* 0: getopt starts afresh (ordering too) */
}

static const struct dt_option *row_of(int c)
{
	if (c >= 256)
		return &dt_options[c - 256];
	for (size_t i = 0; i < dt_noptions; i++)
		if (dt_options[i].short_name == c)
			return &dt_options[i];
	return NULL;
}

static int getopt_error(int c, char **argv)
{
	if (c == ':')
		return usage_error("option '%s' needs a value", argv[optind - 1]);
	if (optopt && optopt < 256)
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", argv[optind - 1]);
}

/* The next option: 1 and its row in *o, 0 at the end, -1 after reporting a bad one. */
static int next_option(int argc, char **argv, const struct optset *s, const struct dt_option **o)
{
	int c = getopt_long(argc, argv, s->shorts, s->longs, NULL);

	if (c == -1)
		return 0;
	*o = row_of(c);
	if (c == '?' || c == ':' || !*o) {
		getopt_error(c, argv);
		return -1;
	}
	return 1;
}

static void apply_output(const struct args *a)
{
	if (a->json || a->pretty)
		json_output = true;
	if (a->pretty)
		json_set_pretty(&jw, true);
}

int parse_global_args(int argc, char **argv, int *action)
{
	const struct dt_option *o;
	struct optset s;
	struct args a = { 0 };
	int r;

	*action = 0;
	build_optset(&s, CMD_COUNT, true);
	while ((r = next_option(argc, argv, &s, &o)) > 0) {
		if (o->kind == OPT_HELP || o->kind == OPT_VERSION) {
			*action = o->kind == OPT_HELP ? 'h' : 'V';
			continue;
		}
		set_value(o, optarg, &a);
		apply_output(&a);	/* -j holds for the errors that follow */
	}
	return r < 0 ? -1 : optind;
}

static int take_operands(int argc, char **argv, struct args *a)
{
	switch (current_cmd->operands) {
	case OPERANDS_PID:
		if (optind >= argc)
			return usage_error("missing PID");
		if (parse_pid_arg(argv[optind], &a->pid))
			return -1;
		optind++;
		break;
	case OPERANDS_DIR:
		if (optind >= argc)
			return usage_error("missing DIR");
		a->dir = argv[optind++];
		break;
	case OPERANDS_DIR_PAIR:
		if (argc - optind < 2)
			return usage_error("missing %s",
					   optind < argc ? "B (the second dump)" : "dumps A and B");
		a->dir = argv[optind++];
		a->dir_b = argv[optind++];
		break;
	case OPERANDS_COMMAND:
		if (optind < argc)
			a->topic = argv[optind++];
		break;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

int parse_args(int argc, char **argv, struct args *a)
{
	unsigned int id = current_cmd->id;
	const struct dt_option *o;
	struct optset s;
	int r;

	memset(a, 0, sizeof(*a));
	a->until_pages = UINT64_MAX;	/* not given; 0 is a real limit */
	for (size_t i = 0; i < dt_noptions; i++)
		if (option_on(&dt_options[i], id) && dt_options[i].defval &&
		    set_value(&dt_options[i], dt_options[i].defval, a))
			return ARGS_FAIL;
	build_optset(&s, id, false);
	while ((r = next_option(argc, argv, &s, &o)) > 0) {
		if (o->kind == OPT_HELP)
			return print_cmd_help(current_cmd->name) == 0 ? ARGS_HELP : ARGS_FAIL;
		if (set_value(o, optarg, a))
			return ARGS_FAIL;
		apply_output(a);
	}
	if (r < 0)
		return ARGS_FAIL;
	if (take_operands(argc, argv, a))
		return ARGS_FAIL;
	for (size_t i = 0; i < dt_noptions; i++) {
		const struct dt_option *req = &dt_options[i];

		if (req->required && option_on(req, id) && !*(const char **)((char *)a + req->off)) {
			if (req->short_name)
				usage_error("missing -%c %s", req->short_name, req->argh);
			else
				usage_error("missing --%s %s", req->long_name, req->argh);
			return ARGS_FAIL;
		}
	}
	if (a->freeze && a->leave_stopped) {
		usage_error("--freeze and --leave-stopped exclude each other");
		return ARGS_FAIL;
	}
	if (a->until_pages != UINT64_MAX && a->until_ratio > 0) {
		usage_error("--until-pages and --until-ratio exclude each other");
		return ARGS_FAIL;
	}
	return ARGS_OK;
}
