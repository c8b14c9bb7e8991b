#!/usr/bin/env bats
# passes: plain memcheck:2
# Step 1: one recv per connection, one client at a time.

load helpers

setup() { start_server "$LAB/step1_blocking/server"; }

@test "step 1: the first message is answered, the second gets no reply" {
  run client <<<$'aa\nbb'
  assert_success
  assert_output $'recv from server: AA\nserver closed the connection'
  wait_for_log "wrote: aa$"
  run grep -c "wrote:" "$SERVER_LOG"
  assert_output 1
  stop_server
}

@test "step 1: the server closes the connection after one reply" {
  wait_for_log "^serving on"
  client <<<"once"
  wait_for_log "127\.0\.0\.1:[0-9]+ closed by server$"
  stop_server
}

@test "step 1: a second client waits until the first is done" {
  second_client_waits
  stop_server
}

@test "step 1: a client that resets is logged and the next one is served" {
  client --reset hold </dev/null
  wait_for_log "127\.0\.0\.1:[0-9]+ reset$"
  run client <<<"next"
  assert_output "recv from server: NEXT"
  stop_server
}

@test "step 1: a client that connects and closes without a word is logged" {
  client hold </dev/null
  wait_for_log "127\.0\.0\.1:[0-9]+ disconnected$"
  stop_server
}
