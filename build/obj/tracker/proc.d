build/obj/tracker/proc.o: tracker/proc.c lib/err.h lib/util.h \
 tracker/proc.h
lib/err.h:
lib/util.h:
tracker/proc.h:
