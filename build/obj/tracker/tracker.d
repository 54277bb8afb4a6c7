build/obj/tracker/tracker.o: tracker/tracker.c lib/err.h lib/uapi.h \
 lib/util.h tracker/inject.h tracker/seize.h tracker/tracker.h \
 pagemap/dirty.h pagemap/rangeset.h pagemap/scan.h tracker/proc.h \
 tracker/session.h tracker/uffd.h
lib/err.h:
lib/uapi.h:
lib/util.h:
tracker/inject.h:
tracker/seize.h:
tracker/tracker.h:
pagemap/dirty.h:
pagemap/rangeset.h:
pagemap/scan.h:
tracker/proc.h:
tracker/session.h:
tracker/uffd.h:
