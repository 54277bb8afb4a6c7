// SPDX-License-Identifier: MIT
#include <stddef.h>

#include "lib/syscalls.h"
#include "lib/util.h"

static const char *const names[] = {
#include "syscall_names.h"
};

const char *syscall_name(long nr)
{
	return nr >= 0 && (size_t)nr < ARRAY_SIZE(names) ? names[nr] : NULL;
}
