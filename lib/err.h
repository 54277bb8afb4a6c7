/* SPDX-License-Identifier: MIT */
/*
 * One error path.  Lower layers never print and never exit: they record
 * what went wrong with dt_err() and return -1.  The command layer reports
 * the recorded message once, as one line, and exits with the kind's code.
 */
#ifndef DT_ERR_H
#define DT_ERR_H

/* Exit codes: stable, documented in dirtytrack(1). */
enum dt_exit {
	DT_EXIT_OK = 0,
	DT_EXIT_DIFFER = 1,	/* diff/verify: the memory differs */
	DT_EXIT_ERROR = 2,	/* usage, bad input, I/O, anything else */
	DT_EXIT_PERM = 3,	/* not permitted (ptrace, capabilities, LSM, seccomp) */
	DT_EXIT_UNSUPPORTED = 4,/* the kernel lacks a feature we need */
	DT_EXIT_GONE = 5,	/* no such process, exited, exec'd, pid reused */
	DT_EXIT_INTERRUPTED = 130,	/* SIGINT/SIGTERM/SIGHUP: stopped cleanly */
};

int dt_err(enum dt_exit kind, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like dt_err() with ": strerror(errno)" appended; kind from errno if 0. */
int dt_err_sys(enum dt_exit kind, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Put context in front of the recorded message ("pid 12: " ...). */
void dt_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Clean-up after a failure may itself fail and record over the first error;
 * keep the first one across it.
 */
struct dt_err_saved {
	char msg[1024];
	enum dt_exit kind;
};
void dt_err_save(struct dt_err_saved *s);
void dt_err_restore(const struct dt_err_saved *s);
/* Report the recorded error under another kind (diff(1) has one). */
void dt_err_set_kind(enum dt_exit kind);
const char *dt_err_msg(void);
enum dt_exit dt_err_kind(void);
const char *dt_exit_name(enum dt_exit kind);
void dt_err_clear(void);

#endif
