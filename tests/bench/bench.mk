# tests/bench/bench.mk - the benchmark, for the root Makefile to include.
#
#   make bench            every model against Python's socketserver and the epoll ceiling,
#                         with the strace pass: tests/bench/RESULTS.md and throughput.png
#                         (about 10 minutes)
#   make bench-quick      fewer loads, shorter runs (about a minute):
#                         tests/bench/results-quick.md and throughput-quick.png
#   make bench-syscalls   the strace pass alone: system calls per round trip, per model
#   make bench-designs    Stevens' design table (CPU per connection of each server design,
#                         connections/s, p99, who took each connection): the section
#                         "designs" of tests/bench/RESULTS.md (tests/bench/designs.py)
#   make timeline         the who-served-whom pictures, tests/bench/timeline-NAME.png
#                         (tests/bench/timeline.py)
#
# None of this is part of `make test`: a benchmark is not a test. Its packages (gnuplot for
# the plot, strace for the system calls) are installed here, not in the test dependencies.

## bench: the benchmark: every model against Python and the epoll ceiling, RESULTS.md
## bench-quick: a shorter benchmark, into results-quick.md
## bench-syscalls: the system calls per round trip of each model (strace)
## bench-designs: Stevens' design table today, into RESULTS.md (about 10 minutes)
## timeline: the pictures, tests/bench/timeline-*.png: who served whom in each design, step 2 one client at a time, a thread's life, the signal race
## bench-deps: install what the benchmark needs (gnuplot, strace)
## bench-clean: remove what the benchmark made

BENCH_DIR := tests/bench
BENCH_PROGRAMS := $(BENCH_DIR)/epoll_server
BENCH_PACKAGES := gnuplot-nox strace python3 util-linux
BENCH_OUTPUTS := $(BENCH_DIR)/results-quick.md $(BENCH_DIR)/results-quick.json \
                 $(BENCH_DIR)/throughput-quick.png $(BENCH_DIR)/RESULTS.json

.PHONY: bench bench-quick bench-syscalls bench-designs timeline bench-deps bench-clean

$(BENCH_DIR)/epoll_server: $(BENCH_DIR)/epoll_server.c
	$(CC) $(CFLAGS) -o $@ $<

bench-deps:
	@tests/deps.sh $(BENCH_PACKAGES)

bench: bench-deps all $(BENCH_PROGRAMS)
	python3 $(BENCH_DIR)/run.py

bench-quick: bench-deps all $(BENCH_PROGRAMS)
	python3 $(BENCH_DIR)/run.py --quick --no-syscalls

bench-syscalls: bench-deps all $(BENCH_PROGRAMS)
	python3 $(BENCH_DIR)/run.py --syscalls-only

bench-designs: bench-deps all $(BENCH_PROGRAMS)
	python3 $(BENCH_DIR)/designs.py

timeline: bench-deps all
	python3 $(BENCH_DIR)/timeline.py

bench-clean:
	rm -f $(BENCH_PROGRAMS) $(BENCH_OUTPUTS)
