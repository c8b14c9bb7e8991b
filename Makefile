# sockets-lab - one entry point for everything. `make help` lists every target.
#
## all: build every server, the step-6 programs and tests/client (what `make` does)
## stepN: build step N and run its guided demo (N = 1..6)
## check-stepN: step N's own suites, plain, in seconds (N = 1..6)
## test: install what is missing, build, run every pass; ends with N passed, M failed
## test-plain: the unit tests and every suite, as they are
## test-valgrind: the servers' suites under memcheck, then helgrind
## deps: install the packages the tests need (Debian's apt-get)
## clean: remove everything the build made
## help: this list

CC ?= cc
CFLAGS := -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -g -pthread

# Packages the build needs (Debian names): gcc only recommends libc6-dev, the C library's
# headers (arpa/inet.h, pthread.h, ...), so a machine that takes no recommends lacks them.
BUILD_PACKAGES := make gcc libc6-dev

# Packages the test suites need (Debian names); tests/deps.sh installs what is missing,
# without the packages they merely recommend, so each one the tests use is named here:
# procps for ps and pkill.
TEST_PACKAGES := bats bats-support bats-assert valgrind python3 procps

# Python run by the tests and tools leaves no __pycache__ in the tree.
export PYTHONDONTWRITEBYTECODE := 1

# A version manager's python3 (pyenv's shim) is a script that costs about a second at
# every start, and the tests start hundreds: put the interpreter's own folder first on
# PATH, so that python3 is the program itself. Nothing changes where python3 already is.
PYTHON_ON_PATH := $(shell command -v python3 2>/dev/null)
PYTHON_OWN_DIR := $(if $(PYTHON_ON_PATH),$(shell python3 -c \
    'import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))' 2>/dev/null))
ifneq ($(PYTHON_OWN_DIR),$(patsubst %/,%,$(dir $(PYTHON_ON_PATH))))
export PATH := $(PYTHON_OWN_DIR):$(PATH)
endif

SERVERS := $(patsubst %.c,%,$(sort $(wildcard step[1-5]_*/server.c)))
CLIENT_SOURCES := tests/client.c $(sort $(wildcard tests/client_*.c))
FIXTURES := $(patsubst %.c,%,$(sort $(wildcard tests/fixtures/*.c)))

# The fragments included below define targets of their own; `make` alone builds all.
.DEFAULT_GOAL := all

# Step 6 describes its own library, programs and packages.
STEP6_PROGRAMS :=
STEP6_UNIT_TESTS :=
STEP6_PACKAGES :=
STEP6_CLEAN :=
-include $(sort $(wildcard step6_socketserver/*.mk))

# Further targets (tutorial, bench, stress, ...) each describe themselves in a fragment.
EXTRA_PACKAGES :=
-include $(sort $(wildcard tests/*/*.mk))

PROGRAMS := $(SERVERS) tests/client $(FIXTURES) $(STEP6_PROGRAMS) $(STEP6_UNIT_TESTS)
DEMOS := $(patsubst tests/demo/%.sh,%,$(sort $(wildcard tests/demo/step[1-6].sh)))

# Every suite runs once as it is, then the servers' suites again under memcheck, then
# the thread checker over the threads the lab writes itself and the step-6 programs whose
# handlers share more than the framework does (cJSON, thread names); the framework's own
# threading is ThreadSanitizer's, in make tsan. tests/run_passes runs them all from one
# queue, so each list names its heaviest suites first: the longest start first, and the
# short ones fill the end.
HEAVY_SUITES := tests/exercises.bats tests/faults.bats tests/contract.bats \
  tests/step6_pools.bats tests/stop.bats tests/step6_ftpserver.bats tests/tutorial.bats
SUITES := $(HEAVY_SUITES) $(filter-out $(HEAVY_SUITES),$(sort $(wildcard tests/*.bats)))
VALGRIND_SUITES := tests/stop.bats tests/contract.bats tests/step6_ftpserver.bats \
  tests/step6_upper.bats tests/step5.bats tests/step6_pools.bats tests/step4.bats \
  tests/step6_stop.bats tests/faults_sigterm.bats tests/step6_defences.bats tests/step3.bats \
  tests/step6_seeds.bats tests/step6_callcenter.bats tests/step2.bats tests/step1.bats \
  tests/step6_threadname.bats
HELGRIND_SUITES := tests/step6_ftpserver.bats tests/step6_pools.bats tests/step4.bats \
  tests/step6_threadname.bats

CHECK_STEPS := $(addprefix check-,$(DEMOS))

.PHONY: all deps test test-plain test-valgrind clean help $(DEMOS) $(CHECK_STEPS)

all: $(PROGRAMS)

$(SERVERS) $(FIXTURES): %: %.c
	$(CC) $(CFLAGS) -o $@ $<

tests/client: $(CLIENT_SOURCES) tests/client.h
	$(CC) $(CFLAGS) -o $@ $(CLIENT_SOURCES)

# Every package the dependency step installs. (Recursive: the fragments add to the lists
# after this line.) tests/deps.bats checks it against every #include of the C sources.
DEPS_PACKAGES = $(BUILD_PACKAGES) $(TEST_PACKAGES) $(STEP6_PACKAGES) $(EXTRA_PACKAGES)

deps:
	@tests/deps.sh $(DEPS_PACKAGES)

# The demos build quietly, so what they print is the transcript alone.
$(DEMOS): deps
	@$(MAKE) --no-print-directory -s all
	@tests/demo/$@.sh

# Every pass runs to its end, whatever the others did; the last line counts them all.
test: deps all $(STEP6_UNIT_TESTS)
	@UNIT_TESTS="$(STEP6_UNIT_TESTS)" PLAIN_SUITES="$(SUITES)" \
	  VALGRIND_SUITES="$(VALGRIND_SUITES)" HELGRIND_SUITES="$(HELGRIND_SUITES)" \
	  tests/run_passes

# One pass alone.
test-plain: all $(STEP6_UNIT_TESTS)
	@UNIT_TESTS="$(STEP6_UNIT_TESTS)" PLAIN_SUITES="$(SUITES)" tests/run_passes

test-valgrind: all
	@VALGRIND_SUITES="$(VALGRIND_SUITES)" HELGRIND_SUITES="$(HELGRIND_SUITES)" tests/run_passes

# A step's own suites: stepN*.bats (step 6: its programs' suites and the unit tests).
$(CHECK_STEPS): check-step%: deps all $(STEP6_UNIT_TESTS)
	@UNIT_TESTS="$(if $(filter 6,$*),$(STEP6_UNIT_TESTS))" \
	  PLAIN_SUITES="$(sort $(wildcard tests/step$*.bats tests/step$*_*.bats))" tests/run_passes

# Every "## TARGET: what it does" line of the Makefile and its fragments, in the order read.
help:
	@sed -n 's/^## \([^:]*\): \(.*\)/\1\t\2/p' $(MAKEFILE_LIST) | \
	  awk -F '\t' '{ printf "  make %-16s %s\n", $$1, $$2 }'

clean:
	rm -f $(SERVERS) tests/client $(FIXTURES) $(STEP6_CLEAN) $(BENCH_PROGRAMS) $(BENCH_OUTPUTS)
