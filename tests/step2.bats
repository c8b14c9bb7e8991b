#!/usr/bin/env bats
# passes: plain memcheck:3
# Step 2: the session loops until the client hangs up; resets are survived.

load helpers

setup() { start_server "$LAB/step2_loop/server"; }

@test "step 2: many messages on one connection, each answered" {
  run client <<<$'one\ntwo\nthree\nfour\nfive'
  assert_success
  assert_output $'recv from server: ONE\nrecv from server: TWO\nrecv from server: THREE\nrecv from server: FOUR\nrecv from server: FIVE'
  wait_for_log "disconnected$"
  run grep -c " connected$" "$SERVER_LOG"
  assert_output 1
  stop_server
}

@test "step 2: a blank message does not end the session" {
  run client <<<$'before\n \t \nafter'
  assert_output $'recv from server: BEFORE\nrecv from server:  \t \nrecv from server: AFTER'
  stop_server
}

@test "step 2: whitespace comes back byte for byte, nothing stripped or added" {
  printf '  \n' >"$BATS_TEST_TMPDIR/in"
  exchange "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
  cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
  stop_server
}

@test "step 2: only the client's end of stream ends the session" {
  hold_open quiet
  wait_for_log "connected$"
  release quiet
  wait_for_log "127\.0\.0\.1:[0-9]+ disconnected$"
  stop_server
}

@test "step 2: a client that resets after a reply is logged and the next one is served" {
  run client --reset <<<"bye"
  assert_output "recv from server: BYE"
  wait_for_log "127\.0\.0\.1:[0-9]+ reset$"
  run client <<<"next"
  assert_output "recv from server: NEXT"
  stop_server
}

@test "step 2: a client that resets mid-message with replies unread is survived" {
  # 4 MiB that are never read back: the server's send fails with EPIPE or ECONNRESET.
  exec {fd}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT"
  head -c 4194304 /dev/zero >&"$fd" &
  wait_for_log "wrote:"
  "$CLIENT" --port "$SERVER_PORT" --reset hold </dev/null
  exec {fd}>&-
  wait_for_log "reset$|disconnected$" 10
  run client <<<"still serving"
  assert_output "recv from server: STILL SERVING"
  stop_server
}

@test "step 2: a second client waits while the first is connected, then is served" {
  second_client_waits
  stop_server
}

@test "step 2: SIGTERM during a session closes the client and exits 0" {
  # A client waiting for the server to speak first notices when it hangs up.
  mkfifo "$BATS_TEST_TMPDIR/in"
  client --recv-first <>"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" &
  local waiting=$!
  wait_for_log " connected$"
  stop_server TERM
  wait "$waiting"
  run cat "$BATS_TEST_TMPDIR/out"
  assert_output "server closed the connection"
}
