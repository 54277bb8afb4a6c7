// SPDX-License-Identifier: MIT
/*
 * dirtytrack: find the memory pages a running process writes, and dump
 * them as CRIU-compatible images.  One table of commands; each command
 * parses its own options and prints through the one output path.
 */
#include <stdarg.h>
#include <stdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/util.h"
#include "image/chain.h"
#include "image/meta.h"
#include "pagemap/rangeset.h"
#include "tracker/proc.h"

bool json_output;
struct json jw;
const char *prog_cmd = "";
const struct cmd *current_cmd;
pid_t prog_pid;

#define EXIT_PID "2 error, 3 not permitted, 5 process gone"
#define EXIT_TRACK "2 error, 3 not permitted, 4 the kernel lacks a feature, 5 process gone"

/* In enum dt_cmd_id order: the option table's ON() bits index this. */
const struct cmd dt_commands[] = {
	{ "check", cmd_check, CMD_CHECK, OPERANDS_NONE,
	  "what this kernel and this user can do",
	  "0 dirtytrack can track processes here, 2 error, 4 a required kernel feature is "
	  "missing" },
	{ "start", cmd_start, CMD_START, OPERANDS_PID,
	  "start tracking the writes of process PID",
	  "0 tracking is on (also when it already was), " EXIT_TRACK },
	{ "stop", cmd_stop, CMD_STOP, OPERANDS_PID,
	  "stop tracking: the target is left with no userfaultfd and no write-protect",
	  "0 tracking is off (also when it already was), " EXIT_PID },
	{ "status", cmd_status, CMD_STATUS, OPERANDS_PID,
	  "tracking on or off, tracked and skipped mappings, pages written so far",
	  "0 whatever the tracking state, " EXIT_PID },
	{ "watch", cmd_watch, CMD_WATCH, OPERANDS_PID,
	  "collect written pages every interval and print the dirty rate",
	  "0 the count was reached or it was interrupted, " EXIT_TRACK },
	{ "threads", cmd_threads, CMD_THREADS, OPERANDS_PID,
	  "stop PID for a moment: each thread's state, system call, registers and backtrace",
	  "0 shown, " EXIT_PID },
	{ "dump", cmd_dump, CMD_DUMP, OPERANDS_PID,
	  "write a full or incremental CRIU-compatible dump of PID's memory",
	  "0 the dump is complete, " EXIT_TRACK ", 130 interrupted (SIGINT, SIGTERM, SIGHUP): no "
	  "dump was written" },
	{ "precopy", cmd_precopy, CMD_PRECOPY, OPERANDS_PID,
	  "pre-copy loop: BASE/1 (full), BASE/2, ... while the dirty set shrinks, then a frozen "
	  "BASE/final",
	  "0 the final dump is complete, " EXIT_TRACK ", 130 interrupted by "
	  "SIGINT or SIGTERM (the complete dumps stay, the target runs on)" },
	{ "show", cmd_show, CMD_SHOW, OPERANDS_DIR,
	  "a dump at a glance: process, parent chain, mappings, pages present and in parent",
	  "0 shown, 2 not a dump or a broken chain" },
	{ "verify", cmd_verify, CMD_VERIFY, OPERANDS_DIR,
	  "check a dump's parent chain is whole; with --pid, compare it with stopped PID's memory",
	  "0 the chain is whole (and with --pid holds the process's memory), 1 with --pid: the "
	  "memory differs, " EXIT_PID " (with --pid)" },
	{ "flatten", cmd_flatten, CMD_FLATTEN, OPERANDS_DIR,
	  "merge a dump and its parents into one standalone full dump in OUT",
	  "0 written, 2 error" },
	{ "diff", cmd_diff, CMD_DIFF, OPERANDS_DIR_PAIR,
	  "compare the memory two dumps describe: pages only in A, only in B, changed",
	  "0 the same memory, 1 it differs, 2 any trouble" },
	{ "help", cmd_help, CMD_HELP, OPERANDS_COMMAND,
	  "the commands, or one command's options",
	  "0 shown, 2 unknown command" },
};

const size_t dt_ncommands = ARRAY_SIZE(dt_commands);
_Static_assert(ARRAY_SIZE(dt_commands) == CMD_COUNT, "one row per enum dt_cmd_id");

#define PF_EXITING 0x00000004
#define PF_KTHREAD 0x00200000

/* The kernel's flags of process pid (/proc/PID/stat field 9); 0 if unknown. */
static unsigned int proc_flags(pid_t pid, char *comm, size_t len)
{
	char path[32], *stat, *open, *close;
	unsigned int flags = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	stat = read_file(path, NULL);
	if (!stat)
		return 0;
	open = strchr(stat, '(');
	close = strrchr(stat, ')');
	if (open && close && close > open) {
		snprintf(comm, len, "%.*s", (int)(close - open - 1), open + 1);
		if (sscanf(close + 1, " %*c %*d %*d %*d %*d %*d %u", &flags) != 1)
			flags = 0;
	}
	free(stat);
	return flags;
}

/* "user alice (uid 1000)" */
static const char *user_name(uid_t uid)
{
	static char buf[2][96];
	static int k;
	struct passwd *pw = getpwuid(uid);

	k = !k;
	if (pw)
		snprintf(buf[k], sizeof(buf[k]), "user %s (uid %u)", pw->pw_name, (unsigned)uid);
	else
		snprintf(buf[k], sizeof(buf[k]), "uid %u", (unsigned)uid);
	return buf[k];
}

/*
 * A permission error about a process the user may not trace says whose it
 * is and what would be needed; one about a process that is exiting is the
 * process being gone, whoever asks.
 */
static bool has_ptrace_cap(void)
{
	cap_flag_value_t v = CAP_CLEAR;
	cap_t caps = cap_get_proc();

	if (caps) {
		cap_get_flag(caps, CAP_SYS_PTRACE, CAP_EFFECTIVE, &v);
		cap_free(caps);
	}
	return v == CAP_SET;
}

/* What would let this user trace a process of owner; "" when it is not a matter of who. */
static void what_is_needed(uid_t owner, char *need, size_t len)
{
	char *scope = read_file("/proc/sys/kernel/yama/ptrace_scope", NULL);
	char level = scope ? scope[0] : '0';

	free(scope);
	need[0] = '\0';
	if (has_ptrace_cap())
		return;		/* seccomp, an LSM: the message says */
	if (level == '3')
		snprintf(need, len, "Yama ptrace_scope is 3: no process may be traced until reboot");
	else if (level == '2')
		snprintf(need, len, "Yama ptrace_scope is 2: only CAP_SYS_PTRACE may trace");
	else if (owner != geteuid())
		snprintf(need, len, "run it as that user, or as root (CAP_SYS_PTRACE)");
	else if (level == '1')
		snprintf(need, len, "Yama ptrace_scope is 1, which lets a user trace only its own "
			 "descendants: CAP_SYS_PTRACE is needed (or ptrace_scope 0)");
}

static void explain_permission(void)
{
	struct dt_err_saved first;
	struct proc_stat st;
	struct stat owner;
	char path[32], need[192], comm[32];

	if (dt_err_kind() != DT_EXIT_PERM || prog_pid <= 0)
		return;
	dt_err_save(&first);
	if (proc_stat_read(prog_pid, &st) && dt_err_kind() == DT_EXIT_GONE)
		return;		/* its message and kind: gone */
	dt_err_restore(&first);
	/* an exiting process has lost its mm: /proc refuses everyone but root */
	if (proc_flags(prog_pid, comm, sizeof(comm)) & PF_EXITING) {
		dt_err(DT_EXIT_GONE, "process %d is exiting (%s)", prog_pid, first.msg);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d", prog_pid);
	if (stat(path, &owner))
		return;
	what_is_needed(owner.st_uid, need, sizeof(need));
	if (*need)
		dt_err(DT_EXIT_PERM, "%s; process %d belongs to %s, you are %s: %s", first.msg,
		       prog_pid, user_name(owner.st_uid), user_name(geteuid()), need);
}

int report_error(void)
{
	enum dt_exit kind;

	explain_permission();
	kind = dt_err_kind();

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
	char comm[32] = "";
	int v;

	if (!s)
		return usage_error("missing PID");
	if (!parse_int(s, &v) || v <= 0)
		return usage_error("'%s' is not a process id", s);
	if (v == getpid())
		return usage_error("process %d is dirtytrack itself: give the pid of another process", v);
	if (proc_flags(v, comm, sizeof(comm)) & PF_KTHREAD) {
		dt_err(DT_EXIT_ERROR, "process %d (%s) is a kernel thread: it has no user memory to "
		       "track or dump", v, comm);
		return report_error();
	}
	*pid = v;
	prog_pid = v;
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

void json_chain(const char *key, const struct dump_chain *c)
{
	json_array_begin(&jw, key);
	for (int i = 0; i < c->n; i++) {
		struct dump_identity id;
		struct dt_err_saved none;
		bool known;

		/* a dump not written by dirtytrack has no identity: null, not an error */
		dt_err_save(&none);
		known = meta_read_identity(&c->d[i], &id) == 0;
		dt_err_restore(&none);
		json_object_begin(&jw, NULL);
		json_str(&jw, "dir", c->d[i].path);
		if (known) {
			json_str(&jw, "id", id.id);
			json_u64(&jw, "iteration", id.iteration);
			json_bool(&jw, "full", id.full);
		} else {
			json_null(&jw, "id");
			json_null(&jw, "iteration");
			json_bool(&jw, "full", !c->d[i].has_parent);
		}
		json_u64(&jw, "pages_present", c->d[i].pages_present);
		json_u64(&jw, "pages_parent", c->d[i].pages_parent);
		json_object_end(&jw);
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
