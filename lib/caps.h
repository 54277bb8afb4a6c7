/* SPDX-License-Identifier: MIT */
/*
 * Least privilege.  Run as root (or with file capabilities), each command
 * keeps only the capabilities its work needs, in one table, and drops the
 * rest from every set before it opens any image: effective, permitted,
 * inheritable, ambient, and the bounding set.  Commands that only read
 * images keep nothing.
 *
 * The tracking commands keep what they need in their bounding set too: a
 * helper they fork and exec (/proc/self/exe) as root gets its capabilities
 * back from the bounding set at exec, and needs the same ones.
 */
#ifndef DT_CAPS_H
#define DT_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/capability.h>

#define CAPS_MAX_KEEP 8

struct caps_rule {
	const char *cmd;
	const char *with_opt;		/* the row applies only when this option is given */
	const char *why;
	cap_value_t keep[CAPS_MAX_KEEP];
	int nkeep;
};

/* The table, in order; a command without a row keeps nothing. */
const struct caps_rule *caps_rules(size_t *n);
/* Drop what cmd does not need; argv is the command's own (argv[0] = cmd). */
int caps_limit(const char *cmd, int argc, char **argv);
/* Was cap effective when we started (before caps_limit)? */
bool caps_had(cap_value_t cap);
/*
 * The holder, once attached and subscribed: nothing but CAP_SYS_PTRACE
 * (reading its target's /proc/PID/stat in full, to see an exec).
 */
int caps_holder_settle(void);
/* "CAP_SYS_PTRACE" */
void caps_name(cap_value_t cap, char *buf, size_t len);

#endif
