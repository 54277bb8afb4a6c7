build/obj/tracker/inject.o: tracker/inject.c lib/err.h tracker/inject.h \
 tracker/seize.h tracker/proc.h
lib/err.h:
tracker/inject.h:
tracker/seize.h:
tracker/proc.h:
