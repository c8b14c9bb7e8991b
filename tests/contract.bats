#!/usr/bin/env bats
# What the contract asks of every server: options, the ready line, exit statuses and
# signals of the five steps and the four step-6 programs, and the upper-case echo
# protocol byte for byte of those that speak it, upper's two pools included.

load helpers

STEP6="$LAB/step6_socketserver"
servers() { ls "$LAB"/step[1-5]_*/server "$STEP6"/{upper,callcenter,ftpserver,threadname}; }
# Each an echo server and its options, to be word-split: `start_server $server`.
ECHO_SERVERS=("$LAB"/step[1-5]_*/server "$STEP6/upper" "$STEP6/upper --mode prefork"
  "$STEP6/upper --mode pool")

# freeze SIGNAL - STOP or CONT the server and its children (a prefork server's workers).
freeze() {
  pkill -"$1" -P "$SERVER_PID" || true
  kill -"$1" "$SERVER_PID"
}

@test "every server: --help prints the usage on stdout, naming every option, exit 0" {
  for server in $(servers); do
    run --separate-stderr "$server" --help
    assert_success
    assert_output --partial "usage:"
    for option in --host --port --help -H -p; do
      assert_output --partial -- "$option"
    done
    [ -z "$stderr" ]
  done
}

@test "every server: a bad option, a bad port or a stray argument is exit 2 with usage on stderr" {
  for server in $(servers); do
    for args in "--bogus" "--port 70000" "--port abc" "--port" "stray"; do
      # shellcheck disable=SC2086
      run --separate-stderr "$server" $args
      assert_failure 2
      [ -z "$output" ] || fail "$server $args printed on stdout: $output"
      [[ "$stderr" == *"usage:"* ]] || fail "$server $args: no usage on stderr: $stderr"
    done
  done
}

@test "every server: a port is decimal digits in range: ' 80', '+80', '', '0x50' and 99999 are usage" {
  # strtol() alone takes a leading space and a sign; base 0 would take hex.
  for server in $(servers); do
    for port in " 80" "+80" "" "0x50" "99999" "80 "; do
      run --separate-stderr timeout 10 "$server" --port "$port"
      [ "$status" -eq 2 ] || fail "$server --port '$port': status $status, stdout: $output"
      [[ "$stderr" == *"usage:"* ]] || fail "$server --port '$port': no usage on stderr: $stderr"
    done
  done
}

@test "every server: the ready line names the port really bound" {
  protocol_only
  for server in $(servers); do
    start_server "$server"
    [[ "$(head -n 1 "$SERVER_LOG")" =~ ^serving\ on\ 127\.0\.0\.1:[1-9][0-9]*$ ]]
    [ "$SERVER_PORT" -ne 0 ]
    stop_server
  done
}

@test "every server: a port in use is exit 1 with one line naming it" {
  for server in $(servers); do
    start_server "$server"
    run --separate-stderr "$server" --port "$SERVER_PORT"
    assert_failure 1
    [ "$stderr" = "cannot bind 127.0.0.1:$SERVER_PORT: Address already in use" ]
    stop_server
  done
}

@test "every server: SIGTERM and SIGINT stop it with exit 0" {
  # Under memcheck every suite already ends each server with SIGTERM: SIGINT is new here.
  local signals=(TERM INT)
  [ "${VALGRIND:-0}" != 1 ] || signals=(INT)
  for server in $(servers); do
    for signal in "${signals[@]}"; do
      start_server "$server"
      stop_server "$signal"
    done
  done
}

@test "every echo server: hello and a newline come back upper-cased, byte for byte" {
  protocol_only
  printf 'hello\n' >"$BATS_TEST_TMPDIR/in"
  for server in "${ECHO_SERVERS[@]}"; do
    # shellcheck disable=SC2086 # a server and its options, word-split on purpose
    start_server $server
    exchange "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
    [ "$(od -An -c "$BATS_TEST_TMPDIR/out")" = "$(printf 'HELLO\n' | od -An -c)" ]
    stop_server
  done
}

@test "every echo server: every byte but a-z comes back unchanged" {
  protocol_only
  every_byte "$BATS_TEST_TMPDIR/in"
  upper_case_of "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/expected"
  for server in "${ECHO_SERVERS[@]}"; do
    # shellcheck disable=SC2086 # a server and its options, word-split on purpose
    start_server $server
    exchange "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
    cmp "$BATS_TEST_TMPDIR/expected" "$BATS_TEST_TMPDIR/out"
    stop_server
  done
}

@test "every echo server: a 1 KiB message comes back whole" {
  protocol_only
  head -c 1024 /dev/zero | tr '\0' 'q' >"$BATS_TEST_TMPDIR/in"
  upper_case_of "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/expected"
  for server in "${ECHO_SERVERS[@]}"; do
    # shellcheck disable=SC2086 # a server and its options, word-split on purpose
    start_server $server
    exchange "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
    cmp "$BATS_TEST_TMPDIR/expected" "$BATS_TEST_TMPDIR/out"
    stop_server
  done
}

@test "every echo server: the log names the client and trims trailing whitespace" {
  protocol_only
  for server in "${ECHO_SERVERS[@]}"; do
    # shellcheck disable=SC2086 # a server and its options, word-split on purpose
    start_server $server
    run client <<<"hi there   "
    assert_output "recv from server: HI THERE   "
    wait_for_log "127\.0\.0\.1:[0-9]+ wrote: hi there$"
    stop_server
  done
}

@test "every echo server: a newline or NUL inside a message cannot forge or hide a log line" {
  printf 'one\nserving on fake\0hidden\n' >"$BATS_TEST_TMPDIR/in"
  for server in "${ECHO_SERVERS[@]}"; do
    # shellcheck disable=SC2086 # a server and its options, word-split on purpose
    start_server $server
    exchange "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
    wait_for_log "wrote: one\.serving on fake\.hidden$"
    run grep -c "^serving on" "$SERVER_LOG"
    assert_output 1
    stop_server
  done
}

@test "every echo server: a client that half-closes and resets before it is read costs no SIGPIPE" {
  # The server is stopped while the client sends, half-closes and resets, so all of it
  # has arrived before the server reads: it reads the message, and its reply's send
  # fails with EPIPE, which kills a process that forgot MSG_NOSIGNAL.
  for server in "${ECHO_SERVERS[@]}"; do
    # shellcheck disable=SC2086 # a server and its options, word-split on purpose
    start_server $server
    freeze STOP
    run misbehave reset --bytes 5 --half-close </dev/null
    freeze CONT
    assert_line "reset"
    wait_for_log "127\.0\.0\.1:[0-9]+ wrote: the q$"
    wait_for_log "127\.0\.0\.1:[0-9]+ reset$"
    run client <<<"still here"
    assert_output "recv from server: STILL HERE"
    stop_server
  done
}

@test "every server: a log that cannot be written (standard output closed) does not stop it" {
  # Without SIGPIPE ignored, the first log line after the ready line kills the server
  # (exit 141); in a forking or prefork server, the child that logs.
  for server in $(servers) "$STEP6/upper --mode forking" "$STEP6/upper --mode prefork" \
    "$STEP6/upper --mode pool"; do
    # shellcheck disable=SC2086 # a server and its options, word-split on purpose
    start_with_closed_stdout $server
    run client <<<"still here"
    if [[ $server == *upper* || $server == */server ]]; then
      assert_output "recv from server: STILL HERE"
    fi
    kill -0 "$SERVER_PID" || fail "$SERVER_NAME died after its first client"
    run client <<<"and here"
    kill -0 "$SERVER_PID" || fail "$SERVER_NAME died after its second client"
    stop_server
  done
}

# lowest_free_fd - the lowest descriptor number the server has free: the number its
# next accept() would take.
lowest_free_fd() {
  local fd=0
  while [ -e "/proc/$SERVER_PID/fd/$fd" ]; do fd=$((fd + 1)); done
  echo "$fd"
}
# writes_of_server - how many write() calls the server has made so far.
writes_of_server() { awk '/^syscw:/ {print $2}' "/proc/$SERVER_PID/io"; }
writes_grew() {
  kill -0 "$SERVER_PID" 2>/dev/null || return "$NEVER"
  [ "$(writes_of_server)" -gt "$1" ]
}

@test "every step: started with standard input and error closed, an error line is no stop" {
  # A closed standard descriptor is the number the server's first open() takes: the stop
  # pipe would be 0 and 2, and the first line on standard error (here accept()'s EMFILE,
  # the descriptor limit lowered under the server's feet) a stop.
  for server in "$LAB"/step[1-5]_*/server; do
    server_args "$server"
    SERVER_NAME+=" (standard input and error closed)"
    SERVER_LOG="$BATS_TEST_TMPDIR/server.out"
    : >"$SERVER_LOG"
    valgrind_runner
    "${RUNNER[@]}" "${SERVER_ARGS[@]}" <&- >"$SERVER_LOG" 2>&- 3>&- &
    SERVER_PID=$!
    server_ready
    local writes
    writes=$(writes_of_server)
    prlimit --pid "$SERVER_PID" --nofile="$(lowest_free_fd):" # the soft limit
    client <<<"hello" >"$BATS_TEST_TMPDIR/client.out" &
    local waiting=$!
    wait_until 10 writes_grew "$writes" || fail "$SERVER_NAME stopped at its first error line"
    prlimit --pid "$SERVER_PID" --nofile="$(ulimit -Sn):"
    wait "$waiting"
    run cat "$BATS_TEST_TMPDIR/client.out"
    assert_output "recv from server: HELLO"
    kill -0 "$SERVER_PID" || fail "$SERVER_NAME stopped at its first error line"
    stop_server
  done
}
