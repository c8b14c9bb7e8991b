# step6_socketserver/build.mk - the step-6 framework, for the root Makefile to include.
#
# Alone, from the repository's root:
#   make -f step6_socketserver/build.mk CFLAGS='-std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -g -pthread' step6-unit
# Targets: the library, the unit tests (step6-unit), the same under valgrind
# (step6-valgrind), and under ThreadSanitizer without the forking tests (step6-tsan).

## step6-lib: build the step-6 framework, libsocketserver.a
## step6-unit: run the framework's unit tests
## step6-valgrind: the framework's unit tests under memcheck
## step6-tsan: the framework's unit tests under ThreadSanitizer, forking left out
## step6-clean: remove what step 6's build made

STEP6_DIR := step6_socketserver
STEP6_LIB := $(STEP6_DIR)/libsocketserver.a
# The programs are programs.mk's: it adds them to STEP6_PROGRAMS.
STEP6_PROGRAMS +=
# The framework: the core, then the socket classes, the stop, and one file per mix-in.
STEP6_SOURCES := $(addprefix $(STEP6_DIR)/,socketserver.c socketserver_address.c \
    socketserver_signals.c socketserver_threading.c socketserver_forking.c \
    socketserver_prefork.c socketserver_pool.c)
STEP6_OBJECTS := $(STEP6_SOURCES:.c=.o)
STEP6_CLEAN += $(STEP6_OBJECTS) $(STEP6_LIB) $(STEP6_DIR)/test_socketserver \
               $(STEP6_DIR)/test_socketserver_tsan
STEP6_UNIT_TESTS := $(STEP6_DIR)/test_socketserver
STEP6_TSAN_TESTS := $(STEP6_DIR)/test_socketserver_tsan
STEP6_HEADERS := $(STEP6_DIR)/socketserver.h
STEP6_PRIVATE_HEADER := $(STEP6_DIR)/socketserver_private.h
# <linux/futex.h>: the prefork reads who holds its robust mutex (socketserver_prefork.c).
STEP6_PACKAGES += linux-libc-dev
STEP6_VALGRIND := valgrind -q --vgdb=no --leak-check=full --errors-for-leak-kinds=definite,indirect \
                  --error-exitcode=99 --track-fds=yes --trace-children=yes

$(STEP6_OBJECTS): %.o: %.c $(STEP6_HEADERS) $(STEP6_PRIVATE_HEADER)
	$(CC) $(CFLAGS) -c -o $@ $<

$(STEP6_LIB): $(STEP6_OBJECTS)
	$(AR) rcs $@ $^

$(STEP6_UNIT_TESTS): $(STEP6_DIR)/test_socketserver.c $(STEP6_HEADERS) $(STEP6_LIB)
	$(CC) $(CFLAGS) -o $@ $< $(STEP6_LIB)

# TSan keeps a thread of its own, so the forking mode would (rightly) refuse to fork.
$(STEP6_TSAN_TESTS): $(STEP6_DIR)/test_socketserver.c $(STEP6_SOURCES) $(STEP6_HEADERS) \
    $(STEP6_PRIVATE_HEADER)
	$(CC) $(CFLAGS) -O1 -fsanitize=thread -o $@ $(STEP6_DIR)/test_socketserver.c $(STEP6_SOURCES)

.PHONY: step6-lib step6-unit step6-valgrind step6-tsan step6-clean
step6-lib: $(STEP6_LIB)

step6-unit: $(STEP6_UNIT_TESTS)
	$(STEP6_UNIT_TESTS)

step6-valgrind: $(STEP6_UNIT_TESTS)
	$(STEP6_VALGRIND) $(STEP6_UNIT_TESTS)

step6-tsan: $(STEP6_TSAN_TESTS)
	$(STEP6_TSAN_TESTS) --no-fork

step6-clean:
	rm -f $(STEP6_CLEAN)
