build/obj/tracker/session.o: tracker/session.c lib/err.h lib/util.h \
 tracker/session.h tracker/proc.h
lib/err.h:
lib/util.h:
tracker/session.h:
tracker/proc.h:
