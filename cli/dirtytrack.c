// SPDX-License-Identifier: MIT
/*
 * dirtytrack's entry point: the global options, then the command named in
 * the command table (cli/main.c).  Everything else of cli/ links into the
 * unit tests too; this file only into the binary.
 */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "lib/caps.h"
#include "tracker/holder.h"

int main(int argc, char **argv)
{
	int action, at;

	/* the holder of a tracked process: spawned by start, never typed */
	if (argc >= 2 && !strcmp(argv[1], HOLDER_COMMAND))
		return holder_main(argc, argv);
	json_init(&jw, stdout);
	/* hidden helpers for the completion and the man page, not options */
	if (argc >= 2 && !strcmp(argv[1], "--completion-helper"))
		return completion_helper(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "--man-helper"))
		return man_helper(argc - 1, argv + 1);
	at = parse_global_args(argc, argv, &action);
	if (at < 0)
		return DT_EXIT_ERROR;
	if (action == 'h') {
		print_usage(stdout);
		return DT_EXIT_OK;
	}
	if (action == 'V') {
		print_version();
		return DT_EXIT_OK;
	}
	if (at >= argc)
		return usage_error("missing command");
	for (size_t i = 0; i < dt_ncommands; i++) {
		if (strcmp(argv[at], dt_commands[i].name))
			continue;
		current_cmd = &dt_commands[i];
		prog_cmd = current_cmd->name;
		/* least privilege before the command touches anything (lib/caps.c) */
		if (caps_limit(prog_cmd, argc - at, argv + at))
			return report_error();
		return current_cmd->run(argc - at, argv + at);
	}
	return usage_error("unknown command '%s' (see 'dirtytrack help')", argv[at]);
}
