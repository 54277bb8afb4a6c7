build/obj/cli/cmd_watch.o: cli/cmd_watch.c cli/args.h pagemap/dirty.h \
 pagemap/rangeset.h pagemap/scan.h lib/uapi.h cli/cli.h cli/json.h \
 lib/err.h lib/util.h tracker/tracker.h tracker/proc.h tracker/session.h
cli/args.h:
pagemap/dirty.h:
pagemap/rangeset.h:
pagemap/scan.h:
lib/uapi.h:
cli/cli.h:
cli/json.h:
lib/err.h:
lib/util.h:
tracker/tracker.h:
tracker/proc.h:
tracker/session.h:
