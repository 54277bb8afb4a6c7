/* SPDX-License-Identifier: MIT */
/*
 * The one option table and the one parser.  Every option is one row of
 * dt_options[]: its names, argument, help, default, value kind, words,
 * completion and the commands that take it.  The parser, every --help, the
 * man page's SYNOPSIS and OPTIONS (man/dirtytrack.1, checked by a test) and
 * the bash completion (through --completion-helper) all come from it.
 */
#ifndef DT_ARGS_H
#define DT_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagemap/dirty.h"

/* Every command, in the order of the command table (cli/main.c). */
enum dt_cmd_id {
	CMD_CHECK, CMD_START, CMD_STOP, CMD_STATUS, CMD_WATCH, CMD_THREADS, CMD_DUMP, CMD_PRECOPY,
	CMD_SHOW, CMD_VERIFY, CMD_FLATTEN, CMD_DIFF, CMD_HELP, CMD_COUNT
};

#define ON(c) (1u << (c))
#define ON_COMMANDS ((1u << CMD_COUNT) - 1)
#define ON_GLOBAL (1u << CMD_COUNT)	/* also before the command name */

/* What a command takes after its options. */
enum dt_operands {
	OPERANDS_NONE,
	OPERANDS_PID,		/* PID */
	OPERANDS_DIR,		/* DIR, a dump directory */
	OPERANDS_DIR_PAIR,	/* A B, two dump directories */
	OPERANDS_COMMAND,	/* [COMMAND] (help) */
};

enum dt_opt_kind {
	OPT_FLAG,		/* bool */
	OPT_INT,		/* int in [min, max] */
	OPT_U64,		/* uint64_t */
	OPT_DOUBLE,		/* double in [min, max], plain decimal notation */
	OPT_ENUM,		/* int: the index of the word in words[] */
	OPT_STRING,		/* const char * */
	OPT_PID,		/* pid_t */
	OPT_HELP,		/* -h: this command's help */
	OPT_VERSION,		/* -V: global only */
};

/* What the bash completion offers for the option's value. */
enum dt_complete { COMPLETE_NONE, COMPLETE_WORDS, COMPLETE_PID, COMPLETE_DIR };

struct dt_option {
	char short_name;	/* 0: long only */
	const char *long_name;
	const char *argh;	/* argument name; NULL for flags and enums (the words) */
	const char *help;
	const char *defval;	/* parsed into the field before argv, shown in --help */
	enum dt_opt_kind kind;
	const char *const *words;	/* OPT_ENUM: NULL-terminated */
	enum dt_complete complete;
	unsigned int cmds;	/* ON(CMD_...) bits, ON_GLOBAL */
	bool required;		/* by every command that takes it */
	size_t off;		/* the field in struct args */
	double min, max;	/* OPT_INT, OPT_DOUBLE: inclusive */
};

#define DT_MAX_OPTIONS 32
extern const struct dt_option dt_options[];
extern const size_t dt_noptions;

/* precopy --then */
enum precopy_then { THEN_LEAVE_STOPPED, THEN_KILL, THEN_RESUME };
extern const char *const precopy_then_names[];

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_FAIL = -1 };

struct args {
	bool json, pretty;	/* -j, -p: applied to the output at once */
	pid_t pid;
	enum dirty_backend backend;
	int interval_ms;
	int count;		/* 0: until interrupted */
	bool verbose;
	bool pages;		/* list the written ranges */
	const char *dir;	/* -D */
	const char *parent;
	bool freeze, leave_stopped, full_if_needed;
	bool strict;		/* --strict */
	bool no_track;		/* --no-track */
	bool tree;		/* --tree */
	int max_iters;
	uint64_t until_pages;	/* UINT64_MAX: not given */
	double until_ratio;	/* 0: not given */
	double link_mbps;	/* 0: no link model */
	enum precopy_then then;
	const char *out;	/* -o */
	pid_t live_pid;		/* --pid, 0 when absent */
	bool bytes;		/* --bytes */
	bool threads;		/* --threads */
	int depth;		/* --depth: frames a backtrace */
	const char *dir_b;	/* the second DIR of OPERANDS_DIR_PAIR */
	const char *topic;	/* help COMMAND */
};

/*
 * Parse the options and operands of the running command (prog_cmd).
 * Reports its own errors; ARGS_FAIL means "exit with DT_EXIT_ERROR".
 */
int parse_args(int argc, char **argv, struct args *a);
/*
 * The global options before the command name; returns the index of the
 * command name, argc when there is none, or -1 after reporting an error.
 * *action is 'h' or 'V' when one of those was asked for.
 */
int parse_global_args(int argc, char **argv, int *action);
/* Does the option belong to command id (or, for CMD_COUNT, the global line)? */
bool option_on(const struct dt_option *o, unsigned int cmd_id);
bool option_has_value(const struct dt_option *o);
/* Does the running command take --long_name?  Hints name only those. */
bool command_has_option(const char *long_name);
/* "ioctl|pagemap" for enums, else the argument name ("" for flags) */
const char *option_argname(const struct dt_option *o, char *buf, size_t len);

#endif
