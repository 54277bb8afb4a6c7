build/obj/tracker/seize.o: tracker/seize.c lib/err.h lib/util.h \
 tracker/proc.h tracker/seize.h
lib/err.h:
lib/util.h:
tracker/proc.h:
tracker/seize.h:
