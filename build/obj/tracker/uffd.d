build/obj/tracker/uffd.o: tracker/uffd.c lib/err.h lib/uapi.h lib/util.h \
 tracker/uffd.h tracker/inject.h tracker/seize.h
lib/err.h:
lib/uapi.h:
lib/util.h:
tracker/uffd.h:
tracker/inject.h:
tracker/seize.h:
