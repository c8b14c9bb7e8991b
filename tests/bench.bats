#!/usr/bin/env bats
# tests/bench.bats - the design benchmark's harness (tests/bench/designs.py, timeline.py).
#
# A harness that miscounts makes `make bench-designs` and `make timeline` lie, so a tiny
# run of each checks what they parse: the client's summary, the /proc CPU reading, the
# `connected` lines and the worker each names, the socket's owner found in /proc, and the
# section of RESULTS.md that must survive a rewrite. Seconds, no gnuplot: the figures
# themselves are the benchmark's, not a test's.

load helpers

DESIGNS="$LAB/tests/bench/designs.py"
TIMELINE="$LAB/tests/bench/timeline.py"
STEP4="thread per client: step 4"

# One tiny run of each harness, shared by the tests below: 2 clients x 5 connections of
# 64 B, one repetition, into a RESULTS.md that already holds other text and a stale
# section of its own; and the timeline of 3 clients, as text.
setup_file() {
  for bin in "$CLIENT" "$LAB/step2_loop/server" "$LAB/step4_threading/server" \
    "$LAB/step5_forking/server"; do
    [ -x "$bin" ] || { echo "$bin is not built (make)" >&2; return 1; }
  done
  export RESULTS="$BATS_FILE_TMPDIR/RESULTS.md" BARS="$BATS_FILE_TMPDIR/timeline.out"
  printf '# Benchmark results\n\nkept above\n\n%s\nstale\n%s\n' \
    '<!-- section designs: written by an older run -->' '<!-- end of section designs -->' >"$RESULTS"
  harness designs python3 "$DESIGNS" --clients 2 --loops 5 --bytes 64 --reps 1 --messages 30 \
    --out "$RESULTS" --only "iterative: step 2,$STEP4,fork per client: step 5"
  harness timeline python3 "$TIMELINE" --only step4,step5 --clients 3 --stagger 20 --text
}

# harness NAME COMMAND... - run COMMAND, its output in NAME.out, its errors in NAME.err,
# its exit status in NAME.status, whatever that status is: under bats' set -e a failed
# command would end setup_file at once, before the status was saved, and the error it
# printed would never be shown (ran shows it).
harness() {
  local name=$1 status=0
  shift
  "$@" >"$BATS_FILE_TMPDIR/$name.out" 2>"$BATS_FILE_TMPDIR/$name.err" || status=$?
  echo "$status" >"$BATS_FILE_TMPDIR/$name.status"
}

# ran NAME - that harness exited 0 (else its stderr is shown).
ran() {
  [ "$(cat "$BATS_FILE_TMPDIR/$1.status")" = 0 ] ||
    fail "$1 exit $(cat "$BATS_FILE_TMPDIR/$1.status"): $(cat "$BATS_FILE_TMPDIR/$1.err")"
}

@test "a harness that fails is reported with its exit status and its error" {
  harness broken bash -c 'echo "step5: no ready line within 10s" >&2; exit 3'
  run ran broken
  assert_failure
  assert_output --partial "broken exit 3: step5: no ready line within 10s"
}

@test "the log parser counts each worker's connected lines, and only those" {
  # A client's text in a wrote line cannot pass for a connection; a line with no worker
  # name counts under None.
  run python3 -c '
import io, sys
sys.path.insert(0, sys.argv[1])
import designs
log = io.BytesIO(b"serving on 127.0.0.1:5\n"
                 b"Thread-1: 127.0.0.1:40001 connected\n"
                 b"Thread-1: 127.0.0.1:40001 wrote: Thread-2: 127.0.0.1:9 connected\n"
                 b"Process-77: 127.0.0.1:40002 connected\n"
                 b"Thread-1: 127.0.0.1:40003 connected\n"
                 b"127.0.0.1:40004 connected\n"
                 b"Thread-1: 127.0.0.1:40001 disconnected\n")
conns, workers = designs.count_workers(log)
print(conns, sorted(workers.items(), key=str))' "$LAB/tests/bench"
  assert_success
  assert_output "4 [('Process-77', 1), ('Thread-1', 2), (None, 1)]"
}

@test "bench-designs on a tiny run: a figure for each design" {
  ran designs
  # CPU µs/conn, minus iterative, connections/s, p99 ms, CPU s per 5,000: all numbers;
  # then Linux's in 2000, where there is one.
  local figures='[0-9]+ \| -?[0-9]+ \| [0-9.,]+ \| [0-9.]+ \| [0-9.]+ \| ([0-9.]+|N/A)? \|$' design
  for design in "serv00 | iterative: step 2" "serv06 | $STEP4" "serv01 | fork per client: step 5"; do
    grep -qE "^\| ${design//|/\\|} \| $figures" "$RESULTS" || fail "no row for $design: $(cat "$RESULTS")"
  done
  grep -qE '^\| serv00 \| iterative: step 2 \| [0-9]+ \| 0 \|' "$RESULTS" ||
    fail "step 2 is the iterative baseline: minus itself is 0"
  # The table is printed too.
  grep -qF "| serv06 | $STEP4 |" "$BATS_FILE_TMPDIR/designs.out" || fail "not printed"
}

@test "bench-designs counts who took each connection from the log, or says the log cannot" {
  ran designs
  # Ten connections, ten threads, one each, all ten counted from the log; the warm-up's
  # four (2 clients x 2) took Thread-1 to Thread-4 and are not counted.
  local want="| $STEP4 | 10 | 10 | $(printf 'Thread-%d 1, ' $(seq 5 14))"
  grep -qF -- "${want%, } |" "$RESULTS" || fail "step 4's workers: $(grep -F "$STEP4 |" "$RESULTS")"
  grep -qF '| fork per client: step 5 | — | 10 | the log names no worker |' "$RESULTS" ||
    fail "step 5: $(grep -F 'step 5 |' "$RESULTS")"
  # The iterative server serves from one thread: it has no row of who took what.
  [ "$(grep -c '^| iterative: step 2 |' "$RESULTS")" = 0 ] || fail "iterative listed as multi-worker"
}

@test "bench-designs: the persistent workload's rates, and the targets read off the two tables" {
  ran designs
  local design
  for design in "serv06 | $STEP4" "serv01 | fork per client: step 5"; do
    grep -qE "^\| ${design//|/\\|} \| [0-9,]+ \| [0-9.]+ \|$" "$RESULTS" ||
      fail "no persistent row for $design: $(cat "$RESULTS")"
  done
  grep -qF -- '-c 10 -n 30 -s 64' "$RESULTS" || fail "the persistent command is not named"
  # Only steps 2, 4 and 5 ran: no pool was measured, so no target can be read.
  ! grep -qx '### Targets (issue 14)' "$RESULTS" || fail "targets with no pool measured: $(cat "$RESULTS")"
  # With a pool and what it is read against measured, the ratios follow from the figures.
  run python3 -c '
import sys
sys.path.insert(0, sys.argv[1])
import designs
rep = lambda **kw: [kw]
results = {"prefork, no lock: step 6 upper": rep(rate=10000.0, cpu_us=100.0),
           "fork per client: Python ForkingTCPServer": rep(rate=400.0, cpu_us=3000.0),
           "epoll, one thread: the ceiling": rep(rate=20000.0, cpu_us=50.0),
           "fork per client: step 5": rep(rate=3000.0, cpu_us=200.0)}
persistent = {"fork per client: step 5": rep(rate=1000.0),
              "prefork, no lock: step 6 upper, 10 workers": rep(rate=950.0)}
print("\n".join(designs.targets(results, persistent)))' "$LAB/tests/bench"
  assert_success
  assert_output - <<'EOF'
| churn ÷ Python ForkingTCPServer | prefork, no lock: step 6 upper | ≥ 20 | 25.00 | met |
| churn ÷ epoll | prefork, no lock: step 6 upper | ≥ 0.7 | 0.50 | **missed** |
| server CPU per connection ÷ step 5's | prefork, no lock: step 6 upper | ≤ 0.25 | 0.50 | **missed** |
| 64 B, 10 persistent connections ÷ step 5 | prefork, no lock: step 6 upper, 10 workers | ≥ 0.9 | 0.95 | met |
EOF
}

@test "bench-designs runs with /dev/shm not writable: its logs go to TMPDIR" {
  # /dev/shm read-only, in a mount namespace of its own: what a user other than root
  # meets where /dev/shm is not open to all.
  unshare --user --map-root-user --mount true 2>/dev/null || skip "no mount namespace here"
  mkdir "$BATS_TEST_TMPDIR/tmp"
  run --separate-stderr env TMPDIR="$BATS_TEST_TMPDIR/tmp" \
    unshare --user --map-root-user --mount sh -c 'mount -t tmpfs -o ro none /dev/shm && exec "$@"' \
    sh python3 "$DESIGNS" --clients 1 --loops 1 --bytes 64 --reps 1 --no-persistent \
    --only "iterative: step 2" --out "$BATS_TEST_TMPDIR/RESULTS.md"
  [ "$status" -eq 0 ] || fail "exit $status: $stderr"
  grep -qF '| serv00 | iterative: step 2 |' "$BATS_TEST_TMPDIR/RESULTS.md" || fail "no row"
}

@test "bench-designs keeps the rest of RESULTS.md and replaces only its own section" {
  ran designs
  grep -qx 'kept above' "$RESULTS" || fail "the rest of the file is gone: $(cat "$RESULTS")"
  ! grep -qx 'stale' "$RESULTS" || fail "the old section is still there: $(cat "$RESULTS")"
  [ "$(grep -c '^<!-- section designs: ' "$RESULTS")" = 1 ] || fail "section twice: $(cat "$RESULTS")"
  [ "$(grep -c '^## Server designs' "$RESULTS")" = 1 ] || fail "table twice: $(cat "$RESULTS")"
  grep -qx '<!-- end of section designs -->' "$RESULTS" || fail "section not closed"
}

@test "timeline --text: step 4's clients each in a thread of its own, as its log names them" {
  ran timeline
  local i
  for i in 1 2 3; do
    grep -qE "^Thread-$i client=$i start_ms=[0-9.]+ end_ms=[0-9.]+$" "$BARS" ||
      fail "no bar for client $i in Thread-$i: $(cat "$BARS")"
  done
}

@test "timeline: a child found late is found all the same: each client holds on until it is" {
  # A /proc scan on a loaded machine can outlast a client's hold, and a fork per client's
  # child ends with its client: made slower than any hold here, every lookup found
  # nothing until the clients waited for it.
  run python3 -c '
import argparse, sys, time
sys.path.insert(0, sys.argv[1])
import timeline
real = timeline.socket_owner
def slow(*args):
    time.sleep(0.4)  # a slow scan: longer than the longest hold, 350 ms
    return real(*args)
timeline.socket_owner = slow
timeline.timeline("step5", "fork per client: step 5",
                  argparse.Namespace(clients=3, stagger=0.0, text=True))' "$LAB/tests/bench"
  assert_success
  [ "$(grep -c '^pid [0-9]* client=[123] ' <<<"$output")" = 3 ] || fail "$output"
}

@test "timeline --text: step 5's clients each in a child of its own, found in /proc" {
  ran timeline
  local bars
  bars=$(grep '^pid ' "$BARS")
  [ "$(wc -l <<<"$bars")" = 3 ] || fail "expected 3 bars: $(cat "$BARS")"
  [ "$(cut -d' ' -f2 <<<"$bars" | sort -u | wc -l)" = 3 ] || fail "not 3 processes: $bars"
  [ "$(grep -c ' client=[123] ' <<<"$bars")" = 3 ] || fail "not clients 1 to 3: $bars"
  # A bar ends after it starts.
  awk '{ split($4, s, "="); split($5, e, "="); if (e[2] + 0 <= s[2] + 0) exit 1 }' <<<"$bars" ||
    fail "a bar ends before it starts: $bars"
}
