// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "lib/caps.h"
#include "lib/err.h"
#include "lib/util.h"

/*
 * What each command needs, measured as root against a target of another
 * user, with setpriv --bounding-set (tests/integration/test_hostile.py checks
 * that the images are the same with the rest dropped):
 *  CAP_SYS_PTRACE      PTRACE_SEIZE, pidfd_getfd, the ptrace check of
 *                      /proc/PID/{mem,pagemap,maps,smaps,fd} of another user
 *  CAP_DAC_READ_SEARCH the file mode check of the same files (0400/0600/0500,
 *                      owned by the target's user): without it, "cannot read
 *                      the fds", "/proc/PID/pagemap: Permission denied"
 *  CAP_CHECKPOINT_RESTORE /proc/PID/map_files (the content of shared memory
 *                      the target never mapped; collections and dumps ask);
 *                      enough there: CAP_SYS_ADMIN is not needed for anything
 *  CAP_NET_ADMIN       the proc connector, for the holder that start, dump,
 *                      watch and precopy spawn (it keeps only CAP_SYS_PTRACE
 *                      once attached and subscribed); without it, polling
 *  CAP_KILL            the SIGSTOP of --leave-stopped (without it the target
 *                      silently runs on), precopy's --then kill and the
 *                      SIGCONT of an interrupted final dump
 * Writing images needs nothing: without CAP_DAC_OVERRIDE, root writes where
 * its uid may (its own directories, or where the owner let it).
 */
#define PROC_READ CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH
#define COLLECT PROC_READ, CAP_CHECKPOINT_RESTORE
static const struct caps_rule rules[] = {
	{ "start", NULL, "attach, register the userfaultfd, first collection", { COLLECT, CAP_NET_ADMIN }, 4 },
	{ "stop", NULL, "find the holder, end it", { PROC_READ }, 2 },
	{ "status", NULL, "collect the written pages", { COLLECT }, 3 },
	{ "watch", NULL, "collect the written pages", { COLLECT, CAP_NET_ADMIN }, 4 },
	{ "threads", NULL, "seize, read registers, memory and mapped files, keep a stop",
	  { PROC_READ, CAP_KILL }, 3 },
	{ "dump", NULL, "collect, read memory, leave stopped", { COLLECT, CAP_KILL, CAP_NET_ADMIN }, 5 },
	{ "precopy", NULL, "collect, read memory, stop or kill", { COLLECT, CAP_KILL, CAP_NET_ADMIN }, 5 },
	{ "verify", "--pid", "read a stopped process's memory", { COLLECT }, 3 },
};

static cap_t at_start;

const struct caps_rule *caps_rules(size_t *n)
{
	*n = ARRAY_SIZE(rules);
	return rules;
}

void caps_name(cap_value_t cap, char *buf, size_t len)
{
	char *name = cap_to_name(cap);

	snprintf(buf, len, "%s", name ? name : "?");
	for (char *p = buf; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	cap_free(name);
}

bool caps_had(cap_value_t cap)
{
	cap_flag_value_t v = CAP_CLEAR;
	cap_t c = at_start ? at_start : cap_get_proc();

	if (c)
		cap_get_flag(c, cap, CAP_EFFECTIVE, &v);
	if (c && c != at_start)
		cap_free(c);
	return v == CAP_SET;
}

static bool has_opt(int argc, char **argv, const char *opt)
{
	size_t n = strlen(opt);

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strncmp(argv[i], opt, n) && (argv[i][n] == '\0' || argv[i][n] == '='))
			return true;
	}
	return false;
}

static const struct caps_rule *rule_for(const char *cmd, int argc, char **argv)
{
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
		if (!strcmp(rules[i].cmd, cmd) &&
		    (!rules[i].with_opt || has_opt(argc, argv, rules[i].with_opt)))
			return &rules[i];
	return NULL;
}

static bool kept(const struct caps_rule *r, cap_value_t cap)
{
	for (int i = 0; r && i < r->nkeep; i++)
		if (r->keep[i] == cap)
			return true;
	return false;
}

int caps_limit(const char *cmd, int argc, char **argv)
{
	const struct caps_rule *r = rule_for(cmd, argc, argv);
	cap_value_t max = cap_max_bits();
	cap_flag_value_t setpcap = CAP_CLEAR;
	cap_t now, want;
	bool any = false;
	int err = 0;

	now = cap_get_proc();
	if (!now)
		return dt_err_sys(0, "reading our capabilities");
	at_start = cap_dup(now);
	for (cap_value_t c = 0; c < max && !any; c++) {
		cap_flag_value_t p = CAP_CLEAR, i = CAP_CLEAR;

		cap_get_flag(now, c, CAP_PERMITTED, &p);
		cap_get_flag(now, c, CAP_INHERITABLE, &i);
		any = p == CAP_SET || i == CAP_SET || cap_get_ambient(c) > 0;
	}
	if (!any) {
		cap_free(now);
		return 0;	/* an ordinary user: nothing to give up */
	}
	/* the bounding set needs CAP_SETPCAP to shrink: first, while we have it */
	cap_get_flag(now, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap);
	for (cap_value_t c = 0; c < max && setpcap == CAP_SET && !err; c++)
		if (!kept(r, c) && cap_get_bound(c) > 0 && cap_drop_bound(c))
			err = dt_err_sys(DT_EXIT_PERM, "dropping capability %d from the bounding set", c);
	if (!err && CAP_AMBIENT_SUPPORTED() && cap_reset_ambient())
		err = dt_err_sys(DT_EXIT_PERM, "clearing the ambient capabilities");
	want = cap_init();
	for (int i = 0; r && i < r->nkeep; i++) {
		cap_flag_value_t p = CAP_CLEAR;

		cap_get_flag(now, r->keep[i], CAP_PERMITTED, &p);
		if (p == CAP_SET) {
			cap_set_flag(want, CAP_PERMITTED, 1, &r->keep[i], CAP_SET);
			cap_set_flag(want, CAP_EFFECTIVE, 1, &r->keep[i], CAP_SET);
		}
	}
	if (!err && cap_set_proc(want))
		err = dt_err_sys(DT_EXIT_PERM, "dropping capabilities");
	cap_free(want);
	cap_free(now);
	return err;
}

int caps_holder_settle(void)
{
	cap_value_t keep = CAP_SYS_PTRACE;
	cap_t now = cap_get_proc(), want = cap_init();
	cap_flag_value_t p = CAP_CLEAR;
	int err = 0;

	if (!now || !want)
		err = dt_err_sys(0, "capabilities");
	if (!err) {
		cap_get_flag(now, keep, CAP_PERMITTED, &p);
		if (p == CAP_SET) {
			cap_set_flag(want, CAP_PERMITTED, 1, &keep, CAP_SET);
			cap_set_flag(want, CAP_EFFECTIVE, 1, &keep, CAP_SET);
		}
		if (cap_set_proc(want))
			err = dt_err_sys(0, "dropping capabilities");
	}
	cap_free(now);
	cap_free(want);
	return err;
}
