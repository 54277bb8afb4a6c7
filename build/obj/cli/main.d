build/obj/cli/main.o: cli/main.c cli/cli.h cli/json.h lib/err.h \
 lib/util.h pagemap/rangeset.h
cli/cli.h:
cli/json.h:
lib/err.h:
lib/util.h:
pagemap/rangeset.h:
