# tests/stress/stress.mk - the full stress run, for the root Makefile to include.
#
#   make stress     steps 3, 4, 5 and step-6 upper in each mode: 1000 connections at once
#                   x 100 messages of 1 B to 64 KiB (random sizes and bytes), every reply
#                   byte checked by tests/client bench; then the server's descriptors,
#                   threads and children are back at their baseline. Prints one
#                   "stress:" line of figures per server. Then the stop race
#                   (tests/stop.bats): STOP_CYCLES start / round trip / SIGTERM cycles
#                   per echo server, and STOP_VALGRIND_CYCLES of them under valgrind for
#                   steps 1 and 2, where the race was.
#
# The same suites run small inside `make test` (stress: 200 x 20; the stop race: 100
# cycles, 20 under valgrind). STRESS_CONNECTIONS, STRESS_MESSAGES, STRESS_SIZES
# (MIN:MAX), STRESS_SEED, STRESS_TIMEOUT (seconds per server), STOP_CYCLES and
# STOP_VALGRIND_CYCLES may be set on the command line.

## stress: the full stress run and the long stop race

STRESS_CONNECTIONS ?= 1000
STRESS_MESSAGES ?= 100
STRESS_SIZES ?= 1:65536
STRESS_SEED ?= 1
STRESS_TIMEOUT ?= 900
STOP_CYCLES ?= 500
STOP_VALGRIND_CYCLES ?= 100

.PHONY: stress

stress: deps all
	STRESS_CONNECTIONS=$(STRESS_CONNECTIONS) STRESS_MESSAGES=$(STRESS_MESSAGES) \
	  STRESS_SIZES=$(STRESS_SIZES) STRESS_SEED=$(STRESS_SEED) STRESS_TIMEOUT=$(STRESS_TIMEOUT) \
	  bats tests/stress.bats
	STOP_CYCLES=$(STOP_CYCLES) bats --jobs 2 tests/stop.bats
	VALGRIND=1 STOP_CYCLES=$(STOP_VALGRIND_CYCLES) bats --jobs 2 -f 'stop: step [12] ' tests/stop.bats
