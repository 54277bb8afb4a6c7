build/obj/cli/json.o: cli/json.c cli/json.h
cli/json.h:
