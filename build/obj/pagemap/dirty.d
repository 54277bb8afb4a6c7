build/obj/pagemap/dirty.o: pagemap/dirty.c lib/err.h lib/uapi.h \
 lib/util.h pagemap/dirty.h pagemap/rangeset.h pagemap/scan.h \
 tracker/uffd.h tracker/inject.h tracker/seize.h
lib/err.h:
lib/uapi.h:
lib/util.h:
pagemap/dirty.h:
pagemap/rangeset.h:
pagemap/scan.h:
tracker/uffd.h:
tracker/inject.h:
tracker/seize.h:
