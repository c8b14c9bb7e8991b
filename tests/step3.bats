#!/usr/bin/env bats
# passes: plain memcheck:6
# Step 3: one process, one thread, many clients through select().
#
# The misbehaving clients (a flood that never reads, a trickle, a half-close, a reset)
# and the crowd that holds many connections open are tests/tools/misbehave.py.

load helpers

# STEP3=PATH runs the suite against another build (a broken copy, or step 2 to watch
# the concurrency tests fail).
STEP3=${STEP3:-$LAB/step3_select/server}




rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }

@test "step 3: SIGINT closes every client, logged, and exits 0" {
  start_server "$STEP3"
  hold_open a
  hold_open b
  wait_for_log "connected$"
  stop_server INT
  run grep -c "closed by server$" "$SERVER_LOG"
  assert_output 2
}

@test "step 3: SIGTERM closes every client, logged, and exits 0" {
  start_server "$STEP3"
  hold_open a
  round_trip "talked"
  # The round trip's client has hung up, but under load the server may not have read
  # that yet: a stop before it would close two clients, not one.
  wait_for_log " disconnected$"
  stop_server TERM
  run grep -c "closed by server$" "$SERVER_LOG"
  assert_output 1
}

@test "step 3: 100 clients at once, messages interleaved, all answered (client bench)" {
  start_server "$STEP3"
  run client bench -c 100 -n 20 -s 64
  assert_success
  assert_output --regexp "connections=100 messages=2000 .* errors=0( |$)"
  stop_server
}

@test "step 3: one thread and no child while 100 clients are connected and answered" {
  start_server "$STEP3"
  local baseline
  baseline=$(server_fds)
  in_background crowd python3 "$MISBEHAVE" --port "$SERVER_PORT" crowd -c 100 --rounds 3
  wait_until 20 output_of crowd "^answered"
  run cat "$BATS_TEST_TMPDIR/crowd.out"
  assert_line "answered 100, closed by server 0, wrong 0"
  # the model, while all 100 are still connected: one descriptor each, one thread
  assert_equal "$(server_fds)" $((baseline + 100))
  assert_equal "$(server_threads)" 1
  assert_equal "$(server_children)" 0
  let_go crowd
  wait_until 10 fds_are "$baseline"
  stop_server
}

@test "step 3: a client that sends megabytes and never reads does not delay another" {
  start_server "$STEP3"
  in_background flood python3 "$MISBEHAVE" --port "$SERVER_PORT" flood --bytes $((32 << 20))
  wait_until 30 output_of flood "^(blocked|sent all)"
  round_trip "not delayed"
  round_trip "still not delayed"
  let_go flood
  wait_for_log " reset$"
  round_trip "after the flood"
  stop_server
}

@test "step 3: the server stops reading a client that never reads: memory stays bounded" {
  [ "${VALGRIND:-0}" = 1 ] && skip "VmRSS under valgrind is valgrind's memory, not the server's"
  start_server "$STEP3"
  round_trip "warm up"
  local before
  before=$(rss_kb)
  in_background flood python3 "$MISBEHAVE" --port "$SERVER_PORT" flood --bytes $((32 << 20))
  # Without backpressure the server takes all 32 MiB; with it, the flood blocks.
  wait_until 30 output_of flood "^(blocked|sent all)"
  run cat "$BATS_TEST_TMPDIR/flood.out"
  assert_line --regexp "^blocked after [0-9]+ bytes$"
  local after
  after=$(rss_kb)
  echo "VmRSS ${before} kB before the flood, ${after} kB with it blocked" >&2
  [ $((after - before)) -lt 4096 ]
  let_go flood
  stop_server
}

@test "step 3: a client that trickles one byte at a time does not delay another" {
  start_server "$STEP3"
  local text="one byte at a time, slowly"
  in_background trickle python3 "$MISBEHAVE" --port "$SERVER_PORT" trickle --gap 0.1 --text "$text"
  wait_until 10 output_of trickle "^trickling$"
  wait_for_log "wrote: t"
  round_trip "meanwhile"
  # The round trip came back while the trickle was still going.
  kill -0 "$BG_PID_trickle"
  let_go trickle
  run cat "$BATS_TEST_TMPDIR/trickle.out"
  assert_line "recv: b'${text^^}'"
  stop_server
}

@test "step 3: connections beyond FD_SETSIZE are refused and logged, the rest served" {
  ulimit -n 2048
  start_server "$STEP3"
  in_background crowd python3 "$MISBEHAVE" --port "$SERVER_PORT" crowd -c 1100 --timeout $((5 * DEADLINE_SCALE))
  wait_until 60 output_of crowd "^answered"
  run cat "$BATS_TEST_TMPDIR/crowd.out"
  assert_line --regexp "^answered 10[0-9][0-9], closed by server [1-9][0-9]*, wrong 0$"
  local refused
  refused=$(sed -n 's/.*closed by server \([0-9]*\),.*/\1/p' "$BATS_TEST_TMPDIR/crowd.out")
  run grep -c " refused: descriptor [0-9]* is not below FD_SETSIZE" "$SERVER_LOG"
  assert_output "$refused"
  # Only descriptors at or above FD_SETSIZE (1024) were refused.
  run grep -E " refused: descriptor (10[01][0-9]|102[0-3]|[0-9]{1,3}) " "$SERVER_LOG"
  assert_failure
  let_go crowd
  wait_until 20 grep -qE " disconnected$" "$SERVER_LOG"
  round_trip "served after the crowd"
  stop_server
}

@test "step 3: a client that half-closes after sending still gets every reply" {
  start_server "$STEP3"
  # --narrow and --wait-read: the server meets the end of stream with replies unsent.
  run misbehave halfclose --bytes 100000 --narrow --wait-read
  assert_success
  assert_output "received all 100000 bytes, upper-cased"
  wait_for_log "disconnected$"
  run bash -c "printf 'bye\\n' | python3 '$MISBEHAVE' --port $SERVER_PORT halfclose"
  assert_output "BYE"
  stop_server
}

@test "step 3: a reset in the middle of a message is logged and survived" {
  start_server "$STEP3"
  hold_open other
  # The held client is connected once the kernel has queued it; the baseline counts its
  # descriptor only once the server has accepted it too.
  wait_for_log " connected$"
  local baseline
  baseline=$(server_fds)
  run misbehave reset --bytes $((256 << 10)) </dev/null
  assert_success
  wait_for_log " reset$"
  wait_until 5 fds_are $((baseline))
  round_trip "still serving"
  release other
  stop_server
}
