/* SPDX-License-Identifier: MIT */
/* What every command shares: output mode, errors, option parsing. */
#ifndef DT_CLI_H
#define DT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cli/json.h"
#include "lib/err.h"

extern bool json_output;
extern struct json jw;		/* stdout, used when json_output */
extern const char *prog_cmd;	/* the command running, for messages */

struct cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	unsigned int id;	/* enum dt_cmd_id: the option table's ON() bit */
	unsigned int operands;	/* enum dt_operands */
	const char *summary;	/* one line */
	const char *exit_status;	/* the codes it can return, for its --help */
};

/* The command table (cli/main.c), in enum dt_cmd_id order. */
extern const struct cmd dt_commands[];
extern const size_t dt_ncommands;
extern const struct cmd *current_cmd;	/* NULL before the command name */
extern pid_t prog_pid;		/* the PID operand, for permission messages */

/* Report the recorded error (dt_err) once and return its exit code. */
int report_error(void);
/* Usage errors: one line naming the problem, exit DT_EXIT_ERROR. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_pid_arg(const char *s, pid_t *pid);
/* Help (cli/help.c): all generated from the command and option tables. */
void print_usage(FILE *f);
int print_cmd_help(const char *name);
void print_version(void);
/* Hidden helpers: the bash completion's data, the man page's generated parts. */
int completion_helper(int argc, char **argv);
int man_helper(int argc, char **argv);
void human_size(uint64_t bytes, char *buf, size_t len);
struct range_set;
/* The written ranges, as a JSON "ranges" member or as text lines. */
void print_ranges(const struct range_set *s);
/* [["0xSTART","0xEND"],...] under key: the one way ranges go into JSON */
void json_ranges(const char *key, const struct range_set *s);
struct dump_chain;
/*
 * A chain under key, newest first: [{dir, id, iteration, full,
 * pages_present, pages_parent}, ...]: the one shape show and diff print.
 */
void json_chain(const char *key, const struct dump_chain *c);

struct args;
struct proc_tree;
/*
 * --tree: the tree of a->pid (just a->pid without it); with -j and --tree
 * one document {pid, tree, processes: [...]} that each process adds an
 * object to, held back until cli_tree_end (an error drops it).
 */
int cli_tree_begin(const struct args *a, struct proc_tree *t);
void cli_tree_end(const struct args *a, struct proc_tree *t);
/* Process i of the tree is gone: not the root, and it exited (error cleared). */
bool cli_tree_gone(int i);

int cmd_check(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_threads(int argc, char **argv);
struct backtrace;
/* A backtrace: "frames" and "end" members, or text lines after indent. */
void json_backtrace(const struct backtrace *bt);
void print_backtrace(const struct backtrace *bt, const char *indent);
struct thread_regs;
/*
 * A frozen dump's hook: each seized thread's backtrace beside its registers
 * (UNWIND_DEPTH_DEFAULT frames).  Never fails the dump: a thread that cannot
 * be unwound has no backtrace recorded.
 */
void record_backtraces(pid_t pid, struct thread_regs *regs, int n);
int cmd_dump(int argc, char **argv);
int cmd_precopy(int argc, char **argv);
struct dump_report;
void print_dump_report(const struct dump_report *r);
/* Warnings (stderr) about memory the kernel may write unseen. */
void warn_unseen(const struct dump_report *r);
int cmd_show(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_flatten(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_help(int argc, char **argv);

#endif
