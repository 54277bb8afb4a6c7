/* SPDX-License-Identifier: MIT */
/* What every command shares: output mode, errors, option parsing. */
#ifndef DT_CLI_H
#define DT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/json.h"
#include "lib/err.h"

extern bool json_output;
extern struct json jw;		/* stdout, used when json_output */
extern const char *prog_cmd;	/* the command running, for messages */

struct cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;	/* one line: arguments and options */
	const char *summary;
};

/* Report the recorded error (dt_err) once and return its exit code. */
int report_error(void);
/* Usage errors: one line naming the problem, exit DT_EXIT_ERROR. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_pid_arg(const char *s, pid_t *pid);
/* Print "--help" text of one command. */
int print_cmd_help(const char *name);
void human_size(uint64_t bytes, char *buf, size_t len);
struct range_set;
/* The written ranges, as a JSON "ranges" member or as text lines. */
void print_ranges(const struct range_set *s);
/* [["0xSTART","0xEND"],...] under key: the one way ranges go into JSON */
void json_ranges(const char *key, const struct range_set *s);

int cmd_check(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_precopy(int argc, char **argv);
struct dump_report;
void print_dump_report(const struct dump_report *r);
int cmd_show(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_flatten(int argc, char **argv);
int cmd_diff(int argc, char **argv);

#endif
