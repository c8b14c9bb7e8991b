# tests/tutorial/tutorial.mk - the tutorial's targets (included by the root Makefile).
#
#   make tutorial-check    compare every marked block of TUTORIAL.md with a real run
#                          (what tests/tutorial.bats does inside `make test`)
#   make tutorial-update   rewrite TUTORIAL.md's transcript blocks from real runs
#   make diff-N            diff -u of step N's server.c against the step it grows from
#                          (N = 2..6): 2 grows from 1; 3, 4 and 5 each grow from 2 (each
#                          runs step 2's session loop its own way, so that diff is the
#                          new idea alone); 6, the upper program on the framework, is
#                          diffed against step 5, the last hand-written server
#   make diff A=4 B=5      any two steps 1..5
#   make trace-stepN       step N's server under strace -f, driven by two clients, with
#                          its threads, process tree and sockets shown (N = 1..6;
#                          6 is the upper program in its default mode, threading)
#   make nagle             the closing chapter's experiment: four copies of step 2, with
#                          and without TCP_NODELAY, replies in one send or in 1 KiB
#                          pieces, measured; then the stalled copy's timeline under
#                          strace (tests/tutorial/nagle --timeline; about 5 s)
#
# The conventions (markers, normalisation) are documented at the top of
# tests/tutorial/check and tests/tutorial/normalise.

## tutorial-check: compare every marked block of TUTORIAL.md with a real run
## tutorial-update: rewrite TUTORIAL.md's transcripts from real runs
## diff-N: step N's new idea, as diff -u against the step it grows from (N = 2..6)
## diff: diff -u between any two steps: make diff A=N B=M
## trace-stepN: step N's server under strace, with its threads and sockets (N = 1..6)
## nagle: Nagle's algorithm against delayed ACKs, measured, with a timeline (about 5 s)

TRACE_STEPS := trace-step1 trace-step2 trace-step3 trace-step4 trace-step5 trace-step6

.PHONY: tutorial-check tutorial-update diff diff-2 diff-3 diff-4 diff-5 diff-6 $(TRACE_STEPS)

tutorial-check: all
	@tests/tutorial/check

tutorial-update: all
	@tests/tutorial/check --update

# diff exits 1 when the files differ, which is the point here; 2 is a real failure.
# --label keeps file times out of the output, so the tutorial can quote it.
tutorial_diff = diff -u --label $(1) --label $(2) $(1) $(2) || [ $$? -eq 1 ]

diff-2:
	@$(call tutorial_diff,step1_blocking/server.c,step2_loop/server.c)
diff-3:
	@$(call tutorial_diff,step2_loop/server.c,step3_select/server.c)
diff-4:
	@$(call tutorial_diff,step2_loop/server.c,step4_threading/server.c)
diff-5:
	@$(call tutorial_diff,step2_loop/server.c,step5_forking/server.c)
diff-6:
	@test -f step6_socketserver/upper.c || { echo "step6_socketserver/upper.c does not exist yet" >&2; exit 1; }
	@$(call tutorial_diff,step5_forking/server.c,step6_socketserver/upper.c)

tutorial_step = $(firstword $(wildcard step$(1)_*/server.c))
diff:
	@test -n "$(call tutorial_step,$(A))" -a -n "$(call tutorial_step,$(B))" || \
	  { echo "usage: make diff A=N B=M (N, M = 1..5, steps that exist)" >&2; exit 2; }
	@$(call tutorial_diff,$(call tutorial_step,$(A)),$(call tutorial_step,$(B)))

# strace is not on a fresh machine: install it (and ss, ps) first.
$(TRACE_STEPS): trace-step%: all
	@tests/deps.sh strace iproute2 procps
	@tests/tutorial/trace $*

.PHONY: nagle
nagle: all
	@tests/deps.sh strace
	@tests/tutorial/nagle --timeline
