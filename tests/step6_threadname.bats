#!/usr/bin/env bats
# passes: plain memcheck:1 helgrind:1
# Step 6: the seed's ThreadingMixIn demo - who handles each request: Thread-1, Thread-2,
# ... in order; MainThread in sync mode; a process of its own per client when forking.

load helpers

# THREADNAME overrides the binary, to watch the suite fail against a broken variant.
THREADNAME="${THREADNAME:-$LAB/step6_socketserver/threadname}"

# connect NAME - a connection to the server, kept open in fd $NAME.
connect() { exec {fd}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT" && printf -v "$1" %s "$fd"; }

# ask NAME MESSAGE - send MESSAGE and a newline on connection NAME; the answer (one
# line, read with a deadline) goes to ANSWER.
ask() {
  printf '%s\n' "$2" >&"${!1}"
  ANSWER=
  read -r -t $((5 * DEADLINE_SCALE)) ANSWER <&"${!1}"
}

@test "threadname: one client after another is Thread-1, Thread-2, Thread-3" {
  start_server "$THREADNAME"
  for i in 1 2 3; do
    run client <<<"Hello from client$i"
    assert_output "recv from server: Thread-$i: Hello from client$i"
  done
  stop_server
}

@test "threadname: each message is answered, the message as sent after the name" {
  start_server "$THREADNAME"
  connect a
  ask a "first"
  [ "$ANSWER" = "Thread-1: first" ]
  ask a "  spaced  out"
  [ "$ANSWER" = "Thread-1:   spaced  out" ]
  connect b
  ask b "other"
  [ "$ANSWER" = "Thread-2: other" ]
  ask a "still one"
  [ "$ANSWER" = "Thread-1: still one" ] # a thread per client, not per message
  stop_server
}

@test "threadname --mode sync: the main thread handles everyone" {
  start_server "$THREADNAME" --mode sync
  for i in 1 2; do
    run client <<<"hi $i"
    assert_output "recv from server: MainThread: hi $i"
  done
  stop_server
}

@test "threadname --mode forking: live children have names of their own, their pids" {
  start_server "$THREADNAME" --mode forking
  connect a
  connect b
  ask a "from a"
  local name_a=${ANSWER%%: *}
  [ "$ANSWER" = "$name_a: from a" ]
  ask b "from b"
  local name_b=${ANSWER%%: *}
  [ "$ANSWER" = "$name_b: from b" ]
  [ "$name_a" != "$name_b" ]
  # Each is "Process-PID", and PID is one of the server's children.
  local children
  children=$(ps -o pid= --ppid "$SERVER_PID" | tr -d ' ')
  grep -qx "${name_a#Process-}" <<<"$children"
  grep -qx "${name_b#Process-}" <<<"$children"
  ask a "again"
  [ "$ANSWER" = "$name_a: again" ]
  stop_server
}
