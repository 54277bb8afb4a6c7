build/obj/pagemap/scan.o: pagemap/scan.c lib/err.h lib/util.h \
 pagemap/scan.h lib/uapi.h
lib/err.h:
lib/util.h:
pagemap/scan.h:
lib/uapi.h:
