build/obj/cli/args.o: cli/args.c cli/args.h pagemap/dirty.h \
 pagemap/rangeset.h pagemap/scan.h lib/uapi.h cli/cli.h cli/json.h \
 lib/err.h lib/util.h
cli/args.h:
pagemap/dirty.h:
pagemap/rangeset.h:
pagemap/scan.h:
lib/uapi.h:
cli/cli.h:
cli/json.h:
lib/err.h:
lib/util.h:
