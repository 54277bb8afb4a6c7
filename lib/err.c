// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

static char err_msg[1024];
static enum dt_exit err_kind = DT_EXIT_OK;

static enum dt_exit kind_from_errno(int e)
{
	switch (e) {
	case EPERM:
	case EACCES:
		return DT_EXIT_PERM;
	case ESRCH:
		return DT_EXIT_GONE;
	case ENOSYS:
	case ENOTTY:
	case EOPNOTSUPP:
		return DT_EXIT_UNSUPPORTED;
	default:
		return DT_EXIT_ERROR;
	}
}

static void record(enum dt_exit kind, int e, const char *fmt, va_list ap)
{
	int n = vsnprintf(err_msg, sizeof(err_msg), fmt, ap);

	if (e && n >= 0 && (size_t)n < sizeof(err_msg))
		snprintf(err_msg + n, sizeof(err_msg) - n, ": %s", strerror(e));
	err_kind = kind ? kind : (e ? kind_from_errno(e) : DT_EXIT_ERROR);
}

int dt_err(enum dt_exit kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(kind, 0, fmt, ap);
	va_end(ap);
	return -1;
}

int dt_err_sys(enum dt_exit kind, const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	record(kind, e, fmt, ap);
	va_end(ap);
	errno = e;
	return -1;
}

void dt_err_prefix(const char *fmt, ...)
{
	char old[sizeof(err_msg)];
	va_list ap;
	int n;

	memcpy(old, err_msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(err_msg))
		snprintf(err_msg + n, sizeof(err_msg) - n, "%s", old);
}

void dt_err_save(struct dt_err_saved *s)
{
	snprintf(s->msg, sizeof(s->msg), "%s", err_msg);
	s->kind = err_kind;
}

void dt_err_restore(const struct dt_err_saved *s)
{
	snprintf(err_msg, sizeof(err_msg), "%s", s->msg);
	err_kind = s->kind;
}

void dt_err_set_kind(enum dt_exit kind)
{
	err_kind = kind;
}

const char *dt_err_msg(void)
{
	return err_msg[0] ? err_msg : "unknown error";
}

enum dt_exit dt_err_kind(void)
{
	return err_kind ? err_kind : DT_EXIT_ERROR;
}

const char *dt_exit_name(enum dt_exit kind)
{
	static const char *const names[] = {
		[DT_EXIT_OK] = "ok",
		[DT_EXIT_DIFFER] = "differ",
		[DT_EXIT_ERROR] = "error",
		[DT_EXIT_PERM] = "permission",
		[DT_EXIT_UNSUPPORTED] = "unsupported",
		[DT_EXIT_GONE] = "gone",
	};

	if ((unsigned)kind < sizeof(names) / sizeof(names[0]) && names[kind])
		return names[kind];
	return kind == DT_EXIT_INTERRUPTED ? "interrupted" : "error";
}

void dt_err_clear(void)
{
	err_msg[0] = '\0';
	err_kind = DT_EXIT_OK;
}
