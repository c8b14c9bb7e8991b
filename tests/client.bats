#!/usr/bin/env bats
# The shared client's chat and hold modes, against the step 2 server.

load helpers

setup() { start_server "$LAB/step2_loop/server"; }

@test "client: chat from a pipe sends each line and prints each reply, no prompt" {
  run --separate-stderr client <<<$'hello\nworld'
  assert_success
  assert_output $'recv from server: HELLO\nrecv from server: WORLD'
  wait_for_log "wrote: world$"
  stop_server
}

@test "client: chat sends a line without its newline" {
  client <<<"abc" >"$BATS_TEST_TMPDIR/out"
  # Had the newline been sent, the reply would carry it and print an extra line.
  cmp "$BATS_TEST_TMPDIR/out" <(printf 'recv from server: ABC\n')
  stop_server
}

@test "client: chat on a terminal prompts with '>>: '" {
  run script -qec "$CLIENT --port $SERVER_PORT" /dev/null <<<$'hi\nthere'
  assert_success
  [[ "$output" == *">>: recv from server: HI"* ]] || fail "no prompt before the reply: $output"
  [[ "$output" == *">>: recv from server: THERE"* ]] || fail "no second prompt: $output"
  stop_server
}

@test "client: an empty line sends nothing and the chat goes on" {
  run client <<<$'a\n\nb'
  assert_output $'recv from server: A\nrecv from server: B'
  stop_server
}

@test "client: --recv-first prints what the server says when it hangs up first" {
  mkfifo "$BATS_TEST_TMPDIR/in"
  client --recv-first <>"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" &
  local waiting=$!
  wait_for_log " connected$"
  # Nothing was printed: the client is waiting for the server's first words.
  [ ! -s "$BATS_TEST_TMPDIR/out" ]
  stop_server
  wait "$waiting"
  assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "server closed the connection"
}

@test "client: --reply-timeout says so once and goes on waiting" {
  hold_open busy
  client --reply-timeout 0.2 <<<"later" >"$BATS_TEST_TMPDIR/out" &
  local waiting=$!
  wait_until 5 grep -q "no reply within 0.2 s" "$BATS_TEST_TMPDIR/out"
  release busy
  wait "$waiting"
  run cat "$BATS_TEST_TMPDIR/out"
  assert_output $'no reply within 0.2 s: the server is busy with someone else\nrecv from server: LATER'
  stop_server
}

@test "client: --reset makes the server see a reset, not an end of stream" {
  run client --reset <<<"x"
  wait_for_log "reset$"
  run grep -c "disconnected$" "$SERVER_LOG"
  assert_output 0
  stop_server
}

@test "client: hold names its own address, says nothing, and hangs up on SIGTERM" {
  hold_open quiet
  run cat "$BATS_TEST_TMPDIR/quiet.out"
  assert_output --regexp '^connected from 127\.0\.0\.1:[0-9]+$'
  local port=${output##*:}
  wait_for_log "127\.0\.0\.1:$port connected$"
  release quiet
  wait_for_log "127\.0\.0\.1:$port disconnected$"
  run grep -c "wrote:" "$SERVER_LOG"
  assert_output 0
  stop_server
}

@test "client: a refused connection is exit 1 with one line naming it" {
  stop_server
  run --separate-stderr "$CLIENT" --port "$SERVER_PORT" <<<"x"
  assert_failure 1
  [ "$stderr" = "cannot connect to 127.0.0.1:$SERVER_PORT: Connection refused" ]
}

@test "client: --help exits 0; a bad option or an unknown mode exits 2" {
  run --separate-stderr "$CLIENT" --help
  assert_success
  for option in --host --port --unix --udp --recv-first --reply-timeout --reset chat hold bench; do
    assert_output --partial -- "$option"
  done
  run --separate-stderr "$CLIENT" --bogus
  assert_failure 2
  [[ "$stderr" == *usage:* ]]
  run --separate-stderr "$CLIENT" dance
  assert_failure 2
  run --separate-stderr "$CLIENT" --reply-timeout never
  assert_failure 2
}
