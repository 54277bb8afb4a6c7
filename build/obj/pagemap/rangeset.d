build/obj/pagemap/rangeset.o: pagemap/rangeset.c pagemap/rangeset.h
pagemap/rangeset.h:
