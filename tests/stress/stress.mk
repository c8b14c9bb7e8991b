# tests/stress/stress.mk - the full stress run (issue 7), for the root Makefile to include.
#
#   make stress     steps 3, 4, 5 and step-6 upper in each mode: 1000 connections at once
#                   x 100 messages of 1 B to 64 KiB (random sizes and bytes), every reply
#                   byte checked by tests/client bench; then the server's descriptors,
#                   threads and children are back at their baseline. Prints one
#                   "stress:" line of figures per server. About 10 minutes on 2 cores.
#
# The same suite, tests/stress.bats, runs small (200 x 20) inside `make test`; here it is
# given the full size. STRESS_CONNECTIONS, STRESS_MESSAGES, STRESS_SIZES (MIN:MAX),
# STRESS_SEED and STRESS_TIMEOUT (seconds per server) may be set on the command line.

STRESS_CONNECTIONS ?= 1000
STRESS_MESSAGES ?= 100
STRESS_SIZES ?= 1:65536
STRESS_SEED ?= 1
STRESS_TIMEOUT ?= 900

.PHONY: stress

stress: deps all
	STRESS_CONNECTIONS=$(STRESS_CONNECTIONS) STRESS_MESSAGES=$(STRESS_MESSAGES) \
	  STRESS_SIZES=$(STRESS_SIZES) STRESS_SEED=$(STRESS_SEED) STRESS_TIMEOUT=$(STRESS_TIMEOUT) \
	  bats tests/stress.bats
