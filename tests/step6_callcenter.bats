#!/usr/bin/env bats
# passes: plain memcheck:4
# Step 6: the seed's 10086 call center, byte for byte, in each mode.

load helpers

# CALLCENTER overrides the binary, to watch the suite fail against a broken variant.
CALLCENTER="${CALLCENTER:-$LAB/step6_socketserver/callcenter}"
GREETING='欢迎致电 10086,请输入1xxx,0转人工服务.'
OPERATOR='通过可能会被录音.balabala一大推'
AGAIN='请重新输入.'

# call - a connection to the server in fd $CALL.
call() { exec {CALL}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT"; }

# say TEXT - send TEXT's bytes, nothing added.
say() { printf '%s' "$1" >&"$CALL"; }

# hear TEXT - the next reply is exactly TEXT's bytes (read with a deadline).
hear() {
  printf '%s' "$1" >"$BATS_TEST_TMPDIR/expected"
  timeout $((5 * DEADLINE_SCALE)) head -c "$(stat -c %s "$BATS_TEST_TMPDIR/expected")" \
    <&"$CALL" >"$BATS_TEST_TMPDIR/heard" || true
  cmp "$BATS_TEST_TMPDIR/expected" "$BATS_TEST_TMPDIR/heard"
}

# hung_up - the server has closed the call, having sent nothing more.
hung_up() {
  timeout $((5 * DEADLINE_SCALE)) cat <&"$CALL" >"$BATS_TEST_TMPDIR/rest"
  [ ! -s "$BATS_TEST_TMPDIR/rest" ]
  exec {CALL}>&-
}

conversation() {
  start_server "$CALLCENTER" --mode "$1"
  call
  hear "$GREETING"
  say "1"
  hear "$AGAIN"
  say "0"
  hear "$OPERATOR"
  say $'0\r\n' # trailing whitespace is trimmed before the comparison ...
  hear "$OPERATOR"
  say " 0" # ... leading whitespace is not
  hear "$AGAIN"
  say "exit"
  hung_up
  wait_for_log "^127\.0\.0\.1:[0-9]+ disconnected$"
  stop_server
  grep -qE "^127\.0\.0\.1:[0-9]+ connected$" "$SERVER_LOG"
  grep -qE "^127\.0\.0\.1:[0-9]+ wrote: 1$" "$SERVER_LOG"
}

@test "callcenter --mode sync: the conversation, byte for byte" { conversation sync; }
@test "callcenter --mode threading: the conversation, byte for byte" { conversation threading; }
@test "callcenter --mode forking: the conversation, byte for byte" { conversation forking; }

@test "callcenter: exit with trailing whitespace hangs up too" {
  start_server "$CALLCENTER"
  call
  hear "$GREETING"
  say $'exit \t\n'
  hung_up
  stop_server
}

@test "callcenter: the shared client's --recv-first conversation" {
  start_server "$CALLCENTER"
  run client --recv-first <<<$'1234\n0\nexit'
  assert_success
  assert_output "recv from server: $GREETING
recv from server: $AGAIN
recv from server: $OPERATOR
server closed the connection"
  stop_server
}

@test "callcenter: a caller who hangs up without exit ends the session, the server goes on" {
  start_server "$CALLCENTER" --mode threading
  call
  hear "$GREETING"
  exec {CALL}>&-
  wait_for_log "^127\.0\.0\.1:[0-9]+ disconnected$"
  # The handler thread is gone, not spinning on recv() == 0 as the seed's would.
  wait_until 5 grep -q '^Threads:[[:space:]]*1$' "/proc/$SERVER_PID/status"
  call
  hear "$GREETING"
  stop_server
}
