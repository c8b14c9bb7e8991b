#!/usr/bin/env bats
# passes: plain memcheck:10 helgrind:2
# Step 4: an accept loop that polls with a timeout, and a thread per client.

load helpers

# STEP4=PATH runs the suite against another build (a sanitizer build, a broken copy).
STEP4=${STEP4:-$LAB/step4_threading/server}

# local_port NAME - the port a held client connected from.
local_port() { sed -n 's/^connected from .*://p' "$BATS_TEST_TMPDIR/$1.out"; }

main_thread_in_poll() { grep -q "^$SYS_POLL " "/proc/$SERVER_PID/task/$SERVER_PID/syscall"; }
# A handler thread (not the main one) in poll(): where write_all() waits while the client's
# socket is full, since send() itself never blocks (MSG_DONTWAIT).
a_thread_in_send() { blocked_in "$SERVER_PID" "$SYS_POLL"; }

# stuck_in_send - a handler thread waits in poll() and the log has not grown, five looks
# in a row: with a client sending all the time, that wait is for room to send.
STUCK_LOOKS=0
LOG_LINES=-1
stuck_in_send() {
  local lines
  lines=$(wc -l <"$SERVER_LOG")
  if a_thread_in_send && [ "$lines" = "$LOG_LINES" ]; then
    STUCK_LOOKS=$((STUCK_LOOKS + 1))
  else
    STUCK_LOOKS=0
  fi
  LOG_LINES=$lines
  [ "$STUCK_LOOKS" -ge 5 ]
}


@test "step 4: --help names --poll-interval and exits 0" {
  run --separate-stderr "$STEP4" --help
  assert_success
  assert_output --partial "--poll-interval SECONDS"
  for option in --host --port --help; do assert_output --partial -- "$option"; done
}

@test "step 4: a bad option, a bad --poll-interval or a stray argument exits 2 with the usage" {
  for args in "--bogus" "--poll-interval" "--poll-interval 0" "--poll-interval -1" \
    "--poll-interval abc" "--poll-interval 0.5s" "--poll-interval nan" \
    "--poll-interval 1e9" "--poll-interval 0x10" "--poll-interval inf" "--poll-interval 1e0" \
    "--poll-interval +1" "--port 0 stray"; do
    # shellcheck disable=SC2086
    run --separate-stderr timeout 5 "$STEP4" $args
    [ "$status" -eq 2 ] || fail "$args: exit $status"
    [[ $stderr == *"usage: "*"--poll-interval"* ]] || fail "$args: no usage on stderr: $stderr"
    [ -z "$output" ] || fail "$args: served or wrote to stdout: $output"
  done
  # strtod() alone would take a leading space.
  run --separate-stderr timeout 5 "$STEP4" --poll-interval " 1"
  [ "$status" -eq 2 ] || fail "--poll-interval ' 1': exit $status"
}

@test "step 4: 100 clients at once, 20 messages each, every reply correct" {
  start_server "$STEP4"
  # An idle client holds a thread of its own the whole time: one client at a time
  # (step 2) would never get to the hundred.
  hold_open idle
  run --separate-stderr client bench -c 100 -n 20 -s 64 --timeout $((10 * DEADLINE_SCALE))
  [ "$status" -eq 0 ] || fail "bench exit $status: $output $stderr"
  [[ $output == *"connections=100 messages=2000 "*" errors=0 "* ]] || fail "summary: $output"
  wait_for_log "^Thread-101: 127\.0\.0\.1:[0-9]+ disconnected$"
  release idle
  stop_server
}

@test "step 4: threads are named Thread-1, Thread-2, ... in accept order, in the log and in /proc" {
  start_server "$STEP4"
  # The clients connect one after the other, and the kernel's backlog is first in,
  # first out: whatever the server's timing, accept order is connect order.
  hold_open a
  hold_open b
  hold_open c
  wait_for_log "^Thread-3: .* connected$"
  local name port n
  for name in a b c; do
    port=$(local_port "$name")
    case $name in a) n=1 ;; b) n=2 ;; c) n=3 ;; esac
    grep -qx "Thread-$n: 127\.0\.0\.1:$port connected" "$SERVER_LOG" ||
      fail "client $name (port $port) is not Thread-$n: $(cat "$SERVER_LOG")"
  done
  # pthread_setname_np: ps -L and /proc show the names too (the main thread keeps the
  # program's name, which is valgrind's under VALGRIND=1).
  assert_equal "$(server_threads)" 4
  run sort "/proc/$SERVER_PID/task/"*/comm
  assert_line --index 0 Thread-1
  assert_line --index 1 Thread-2
  assert_line --index 2 Thread-3
  # The thread names its own lines.
  chat_open d
  say d "who serves me?"
  wait_until 5 output_of d "recv from server: WHO SERVES ME\?"
  wait_for_log "^Thread-4: 127\.0\.0\.1:[0-9]+ wrote: who serves me\?$"
  stop_server
}

@test "step 4: a thread appears with each client and is gone after it" {
  start_server "$STEP4"
  assert_equal "$(server_threads)" 1
  hold_open a
  wait_until 5 threads_are 2
  hold_open b
  hold_open c
  wait_until 5 threads_are 4
  release b
  wait_until 5 threads_are 3
  release a
  release c
  wait_until 5 threads_are 1
  wait_for_log "^Thread-3: .* disconnected$"
  stop_server
}

@test "step 4: finished threads are joined: serving 200 clients does not grow the server" {
  start_server "$STEP4"
  client <<<"warm up" >/dev/null
  wait_until 5 threads_are 1
  local before after i
  before=$(awk '/^VmSize:/ {print $2}' "/proc/$SERVER_PID/status")
  for i in $(seq 200); do client hold </dev/null >/dev/null; done
  wait_for_log "^Thread-201: .* disconnected$" 10
  wait_until 5 threads_are 1
  # An unjoined thread keeps its stack (8 MiB by default) mapped; allow a few in flight.
  after=$(awk '/^VmSize:/ {print $2}' "/proc/$SERVER_PID/status")
  [ "$after" -le $((before + 64 * 1024)) ] || fail "VmSize grew from $before kB to $after kB"
  stop_server
}

@test "step 4: SIGTERM with idle clients connected: exit 0 within two seconds, clients see EOF" {
  start_server "$STEP4"
  chats_answered a b c
  wait_until 5 threads_are 4
  local started elapsed
  started=$(now_ms)
  stop_server TERM
  elapsed=$(($(now_ms) - started))
  [ "$elapsed" -le $((2000 * DEADLINE_SCALE)) ] || fail "SIGTERM took $elapsed ms"
  # Each thread's wait saw the stop pipe: its session ended without an error.
  [ ! -s "$SERVER_ERR" ] || fail "errors at the stop: $(cat "$SERVER_ERR")"
  chats_closed a b c
}

@test "step 4: a stop ends the accept loop's poll() at once, whatever the interval" {
  need_syscall_numbers
  start_server "$STEP4" --poll-interval 3600
  hold_open a
  hold_open b
  wait_until 5 threads_are 3
  wait_until 5 main_thread_in_poll
  local started elapsed
  started=$(now_ms)
  stop_server TERM
  elapsed=$(($(now_ms) - started))
  [ "$elapsed" -le $((2000 * DEADLINE_SCALE)) ] || fail "SIGTERM took $elapsed ms"
}

@test "step 4: SIGTERM wakes a thread blocked in send to a client that does not read" {
  need_syscall_numbers
  start_server "$STEP4"
  local fd
  exec {fd}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT"
  # Send without reading: the replies fill both socket buffers and the server's thread
  # waits for room to send (write_all's poll); then this writer blocks too.
  head -c 64M /dev/zero >&"$fd" 2>/dev/null 3>&- &
  wait_for_log "^Thread-1: .* wrote: " 10
  wait_until 10 stuck_in_send
  local started elapsed
  started=$(now_ms)
  stop_server TERM
  # The thread's wait for room to send watched the stop pipe too: it ended at once.
  elapsed=$(($(now_ms) - started))
  [ "$elapsed" -le $((2000 * DEADLINE_SCALE)) ] || fail "SIGTERM took $elapsed ms"
  exec {fd}>&-
}

@test "step 4: a client's reset is logged and the server goes on serving" {
  start_server "$STEP4"
  client --reset hold </dev/null
  wait_for_log "^Thread-1: 127\.0\.0\.1:[0-9]+ reset$"
  run client <<<"next"
  assert_output "recv from server: NEXT"
  wait_until 5 threads_are 1
  stop_server
}

@test "step 4: no descriptor leak: after 100 clients the count is back to its baseline" {
  start_server "$STEP4"
  local baseline i
  baseline=$(server_fds)
  for i in $(seq 50); do client <<<"message $i" >/dev/null; done
  for i in $(seq 25); do client --reset hold </dev/null >/dev/null; done
  for i in $(seq 25); do client hold </dev/null >/dev/null; done
  wait_for_log "^Thread-100: .* (disconnected|reset)$" 10
  wait_until 5 fds_are "$baseline"
  stop_server
}
