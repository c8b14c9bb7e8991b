#!/usr/bin/env bats
# passes: plain memcheck:7
# Step 6: the defences every program shares (program_defences.c) - the loopback by default,
# --timeout, --max-clients, --allow. Shown on upper; the other three parse the same options
# and run the same verify_request and handler timeout.

load helpers

UPPER="${UPPER:-$LAB/step6_socketserver/upper}"

setup() { cd "$BATS_TEST_TMPDIR" || return 1; }

# served - a client's "hi" comes back as "HI".
served() {
  run timeout $((10 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" <<<hi
  assert_success
  assert_output 'recv from server: HI'
}

# refused - the connection is closed at once, nothing answered, and the refusal logged.
refused() {
  run timeout $((10 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" <<<hi
  assert_success # the client saw the close, not its deadline
  assert_output 'server closed the connection'
  wait_for_log "^127\.0\.0\.1:[0-9]+ refused: $1"
}

@test "defences: --help names them; a bad value is refused with the usage and status 2" {
  run "$UPPER" --help
  assert_success
  assert_line --regexp '^ +--timeout SECONDS '
  assert_line --regexp '^ +--max-clients N '
  assert_line --regexp '^ +--allow CIDR '
  local args
  while IFS= read -r args; do
    # shellcheck disable=SC2086 # each line is a list of arguments
    run --separate-stderr "$UPPER" --port 0 $args
    assert_failure 2
    [ -z "$output" ] || { echo "stdout for $args: $output"; false; }
    [[ "$stderr" == *"usage: "* ]] || { echo "no usage for $args: $stderr"; false; }
  done <<'EOF'
--timeout 0
--timeout -1
--timeout abc
--timeout nan
--timeout inf
--timeout 1s
--max-clients 0
--max-clients -3
--max-clients many
--max-clients 2 --mode sync
--max-clients 2 --mode forking
--max-clients 2 --udp
--allow 10.0.0.0/33
--allow ::1/129
--allow 10.0.0.0/
--allow 10.0.0.0/-8
--allow /8
--allow 1.2.3
--allow localhost
--allow 10.0.0.0/8 --unix sock
EOF
}

@test "defences: the server listens on 127.0.0.1 unless told otherwise" {
  start_server "$UPPER"
  [ "$SERVER_HOST" = 127.0.0.1 ]
  served
  # Bound to the loopback address itself, not to every address: 127.0.0.2 is refused.
  ! (exec 9<>"/dev/tcp/127.0.0.2/$SERVER_PORT") 2>/dev/null
  stop_server
}

# silent_client_dropped MODE - with --timeout 1, a client that says nothing is closed
# and logged, and what it held (a thread, a child, the only slot) is free again.
silent_client_dropped() {
  start_server "$UPPER" --mode "$1" --timeout 1
  hold_open silent
  wait_for_log '^127\.0\.0\.1:[0-9]+ connected$'
  wait_for_log '^127\.0\.0\.1:[0-9]+ timed out$' 10
  case $1 in
  sync) served ;; # the one client at a time is no longer the silent one
  threading) wait_until 10 threads_are 1 ;; # the main one only
  forking) wait_until 10 children_are 0 ;;
  esac
  release silent
  stop_server
  [ ! -s "$SERVER_ERR" ] # a timeout is the client's silence, not a server error
}

@test "defences --timeout, --mode sync: a silent client is dropped, the next is served" {
  silent_client_dropped sync
}
@test "defences --timeout, --mode threading: a silent client's thread ends" {
  silent_client_dropped threading
}
@test "defences --timeout, --mode forking: a silent client's process ends" {
  silent_client_dropped forking
}

@test "defences --timeout: a client that keeps talking is not dropped" {
  start_server "$UPPER" --timeout 1
  # Each message comes well within the timeout; the whole session outlasts it.
  run timeout $((20 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" \
    < <(for i in 1 2 3 4; do echo "m$i"; sleep 0.5; done) # pacing the input, not a wait
  assert_success
  assert_output "recv from server: M1
recv from server: M2
recv from server: M3
recv from server: M4"
  ! grep -q 'timed out' "$SERVER_LOG"
  stop_server
}

@test "defences --max-clients 2: a third client is refused at once, and served once one leaves" {
  start_server "$UPPER" --max-clients 2
  hold_open one
  hold_open two
  wait_until 5 threads_are 3 # the main one and the two held
  refused 'already serving 2, the --max-clients limit'
  threads_are 3 # the refused one got none
  release one
  wait_for_log ' disconnected$'
  wait_until 10 served_quietly
  release two
  stop_server
}

# served_quietly - served, as a condition to wait for.
served_quietly() {
  [ "$(timeout $((10 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" <<<hi 2>&1)" = 'recv from server: HI' ]
}

@test "defences --allow: a peer outside every network is refused, one inside is served" {
  start_server "$UPPER" --allow 10.0.0.0/8
  refused 'not in --allow'
  ! grep -q ' connected$' "$SERVER_LOG" # no handler ever ran
  stop_server
  start_server "$UPPER" --allow 127.0.0.0/8
  served
  ! grep -q 'refused' "$SERVER_LOG"
  stop_server
  start_server "$UPPER" --allow 10.0.0.0/8 --allow 127.0.0.1/32 --mode forking
  served
  stop_server
  start_server "$UPPER" --allow 127.0.0.2/32 --allow ::1/128 --mode sync # /32: one address
  refused 'not in --allow'
  stop_server
}

@test "defences --allow: IPv6 networks over IPv6" {
  (exec 9<>/dev/null; python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))') 2>/dev/null ||
    skip "no IPv6 loopback here"
  start_server "$UPPER" --host ::1 --allow ::1/128
  printf 'hi' | timeout 10 "$CLIENT" --host ::1 --port "$SERVER_PORT" | grep -qx 'recv from server: HI'
  stop_server
  start_server "$UPPER" --host ::1 --allow fe80::/10 --allow 127.0.0.0/8
  run timeout 10 "$CLIENT" --host ::1 --port "$SERVER_PORT" <<<hi
  assert_output 'server closed the connection'
  wait_for_log '^\[?::1\]?:[0-9]+ refused: not in --allow'
  stop_server
}

@test "defences --timeout: below the resolution (0.001 s) is refused; 0.001 itself is honoured" {
  local value
  for value in 0.0000001 0.0009 0 0.0; do
    run --separate-stderr timeout $((5 * DEADLINE_SCALE)) "$UPPER" --port 0 --timeout "$value"
    assert_failure 2 # a server that wrongly serves is stopped by the deadline: 124
    [ -z "$output" ]
    [[ "$stderr" == *"bad value for --timeout: '$value': at least 0.001 seconds"*"usage: "* ]] ||
      { echo "$stderr"; false; }
  done
  start_server "$UPPER" --timeout 0.001
  hold_open silent
  wait_for_log '^127\.0\.0\.1:[0-9]+ timed out$' 10 # dropped, not waited on for ever
  served
  release silent
  stop_server
}
