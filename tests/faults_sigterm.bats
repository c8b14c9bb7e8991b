#!/usr/bin/env bats
# passes: plain memcheck:8
# Faults, part two: SIGTERM under load. The valgrind pass of `make test` runs it too
# (its line above names memcheck): there, stop_server also fails the test on any memory error,
# any leak, or a descriptor left open at exit, in the server and (--trace-children) in
# every child it forked. The rest of the faults are in faults.bats.

load helpers

STEP3=$LAB/step3_select/server
STEP4=$LAB/step4_threading/server
STEP5=$LAB/step5_forking/server
UPPER=$LAB/step6_socketserver/upper

accepted_at_least() { [ "$(log_count " connected$")" -ge "$1" ]; }

# sigterm_under_load BIN ARGS... - 200 connections of the bench client at once, messages
# of 1 B to 4 KiB, without end; once the server has accepted 50 of them (40 for a forking
# server, its default --max-children; a pool's 8 workers for the pools, whose other
# clients wait in the backlog) and is answering, SIGTERM: it
# exits 0 within five seconds (times ten under valgrind), with nothing leaked.
sigterm_under_load() {
  start_server "$@"
  local accepted=50
  case " $* " in
  *" --mode forking "* | *step5_forking*) accepted=40 ;;
  *" --mode prefork "* | *" --mode pool "*) accepted=8 ;;
  esac
  "$CLIENT" --port "$SERVER_PORT" bench -c 200 -n 1000000 --random-size 1:4096 \
    --timeout 600 >"$BATS_TEST_TMPDIR/bench.out" 2>&1 3>&- &
  local bench=$!
  wait_until 30 accepted_at_least "$accepted" ||
    fail "only $(log_count " connected$") connections accepted"
  wait_for_log " wrote: " 30
  local started elapsed
  started=$(now_ms)
  stop_server TERM
  elapsed=$(($(now_ms) - started))
  echo "SIGTERM to exit: $elapsed ms" >&2
  [ "$elapsed" -le $((5000 * DEADLINE_SCALE)) ] || fail "SIGTERM took $elapsed ms"
  # The bench lost its server mid-run: it fails, naming what was outstanding, and ends.
  run wait "$bench"
  [ "$status" -ne 0 ] || fail "the bench did not notice: $(cat "$BATS_TEST_TMPDIR/bench.out")"
}

@test "faults under valgrind: step 3: SIGTERM under load (200 connections): exit 0, nothing leaked" {
  sigterm_under_load "$STEP3"
}

@test "faults under valgrind: step 4: SIGTERM under load (200 connections): exit 0, nothing leaked" {
  sigterm_under_load "$STEP4"
}

@test "faults under valgrind: step 5: SIGTERM under load (200 connections): exit 0, nothing leaked" {
  sigterm_under_load "$STEP5"
}

@test "faults under valgrind: upper --mode threading: SIGTERM under load: exit 0, nothing leaked" {
  sigterm_under_load "$UPPER" --mode threading
}

@test "faults under valgrind: upper --mode forking: SIGTERM under load: exit 0, nothing leaked" {
  sigterm_under_load "$UPPER" --mode forking
}

@test "faults under valgrind: upper --mode prefork: SIGTERM under load: exit 0, nothing leaked" {
  sigterm_under_load "$UPPER" --mode prefork --workers 8 --accept-lock file
}

@test "faults under valgrind: upper --mode pool: SIGTERM under load: exit 0, nothing leaked" {
  sigterm_under_load "$UPPER" --mode pool --workers 8 --accept-by workers
}
