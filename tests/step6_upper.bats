#!/usr/bin/env bats
# passes: plain memcheck:13
# Step 6: the upper-case echo on the framework, in each mode over each transport (as
# CPython's twelve echo tests), and what every step-6 program shares: options, usage,
# exit statuses, the ready line, signals and the log lines.

load helpers

STEP6="$LAB/step6_socketserver"
# UPPER overrides the binary, to watch the suite fail against a broken variant.
UPPER="${UPPER:-$STEP6/upper}"
PROGRAMS=(upper callcenter ftpserver threadname)

# serve MODE TRANSPORT - start upper in MODE over TRANSPORT (tcp, udp, unix,
# unix-dgram); TARGET is then what the shared client needs to reach it.
serve() {
  local socket="$BATS_TEST_TMPDIR/upper.sock"
  case $2 in
  tcp) start_server "$UPPER" --mode "$1" && TARGET=(--port "$SERVER_PORT") ;;
  udp) start_server "$UPPER" --mode "$1" --udp && TARGET=(--port "$SERVER_PORT" --udp) ;;
  unix) start_server "$UPPER" --mode "$1" --unix "$socket" && TARGET=(--unix "$socket") ;;
  unix-dgram) start_server "$UPPER" --mode "$1" --unix "$socket" --udp &&
    TARGET=(--unix "$socket" --udp) ;;
  esac
}

# echo_test MODE TRANSPORT - every reply byte checked by the bench client (several
# connections at once where the transport has connections), a line through the chat
# client, and the log names it.
echo_test() {
  serve "$1" "$2"
  local connections=3
  [ "$2" != unix-dgram ] || connections=1 # the client binds one path of its own
  # Under valgrind a forked child takes its time to start: a late reply is not lost.
  run "$CLIENT" "${TARGET[@]}" bench -c "$connections" -n 10 -s 700 --loss-ms $((1000 * DEADLINE_SCALE))
  assert_success
  assert_output --partial "errors=0"
  run "$CLIENT" "${TARGET[@]}" <<<"Hello, World! 123"
  assert_output "recv from server: HELLO, WORLD! 123"
  wait_for_log " wrote: Hello, World! 123$"
  stop_server
}

@test "upper: sync over TCP" { echo_test sync tcp; }
@test "upper: sync over UDP" { echo_test sync udp; }
@test "upper: sync over a Unix stream socket" { echo_test sync unix; }
@test "upper: sync over a Unix datagram socket" { echo_test sync unix-dgram; }
@test "upper: threading over TCP" { echo_test threading tcp; }
@test "upper: threading over UDP" { echo_test threading udp; }
@test "upper: threading over a Unix stream socket" { echo_test threading unix; }
@test "upper: threading over a Unix datagram socket" { echo_test threading unix-dgram; }
@test "upper: forking over TCP" { echo_test forking tcp; }
@test "upper: forking over UDP" { echo_test forking udp; }
@test "upper: forking over a Unix stream socket" { echo_test forking unix; }
@test "upper: forking over a Unix datagram socket" { echo_test forking unix-dgram; }

@test "upper: every byte value comes back, a-z upper-cased, over TCP and UDP" {
  every_byte "$BATS_TEST_TMPDIR/in"
  upper_case_of "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/expected"
  start_server "$UPPER"
  exchange "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
  cmp "$BATS_TEST_TMPDIR/expected" "$BATS_TEST_TMPDIR/out"
  stop_server
  start_server "$UPPER" --udp
  python3 - "$SERVER_PORT" "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(open(sys.argv[2], 'rb').read(), ('127.0.0.1', int(sys.argv[1])))
sys.stdout.buffer.write(s.recv(65536))
EOF
  cmp "$BATS_TEST_TMPDIR/expected" "$BATS_TEST_TMPDIR/out"
  stop_server
}

@test "upper --udp: an empty datagram gets an empty reply; 8192 bytes come back whole" {
  start_server "$UPPER" --udp
  run python3 - "$SERVER_PORT" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
server = ('127.0.0.1', int(sys.argv[1]))
s.sendto(b'', server)
print(len(s.recv(65536)))
s.sendto(b'x' * 8192, server)
print(s.recv(65536) == b'X' * 8192)
EOF
  assert_success
  assert_output $'0\nTrue'
  stop_server
}

# second_client_waits ARGS... - with upper started with ARGS, a second client is served
# only once the first (connected and silent) has hung up.
second_client_waits() {
  start_server "$UPPER" "$@"
  hold_open first
  client --reply-timeout 0.5 <<<"second" >"$BATS_TEST_TMPDIR/second.out" &
  wait_until 5 grep -q "no reply" "$BATS_TEST_TMPDIR/second.out"
  release first
  wait_until 5 grep -q "recv from server: SECOND" "$BATS_TEST_TMPDIR/second.out"
  stop_server
  local first_gone second_served # in the log, in this order
  first_gone=$(grep -nE " disconnected$" "$SERVER_LOG" | head -n 1 | cut -d: -f1)
  second_served=$(grep -n " wrote: second$" "$SERVER_LOG" | cut -d: -f1)
  [ "$first_gone" -lt "$second_served" ]
}

@test "upper --mode sync: a second client waits until the first hangs up" {
  second_client_waits --mode sync
}

@test "upper --mode threading: a thread per client, gone when the client is" {
  start_server "$UPPER" --mode threading
  [ "$(server_threads)" = 1 ]
  hold_open first
  hold_open second
  wait_until 5 threads_are 3
  [ "$(server_children)" = 0 ]
  release first
  release second
  wait_until 5 threads_are 1
  stop_server
}

@test "upper --mode forking: a process per client, reaped when the client is gone" {
  start_server "$UPPER" --mode forking
  hold_open first
  hold_open second
  wait_until 5 children_are 2
  [ "$(server_threads)" = 1 ]
  release first
  release second
  wait_until 5 children_are 0
  stop_server
}

@test "upper --mode forking --max-children 1: the second client waits for the first" {
  second_client_waits --mode forking --max-children 1
}

@test "upper: connected, wrote (trailing whitespace trimmed), disconnected and reset are logged" {
  start_server "$UPPER"
  run client <<<"hi there   "
  assert_output "recv from server: HI THERE   "
  wait_for_log "^127\.0\.0\.1:[0-9]+ disconnected$"
  "$CLIENT" --port "$SERVER_PORT" --reset <<<"bye" >/dev/null
  wait_for_log "^127\.0\.0\.1:[0-9]+ reset$"
  stop_server
  run grep -cE "^127\.0\.0\.1:[0-9]+ connected$" "$SERVER_LOG"
  assert_output 2
  grep -qE "^127\.0\.0\.1:[0-9]+ wrote: hi there$" "$SERVER_LOG"
}

@test "upper --unix: the ready line names the path, and the path is gone after a stop" {
  start_server "$UPPER" --unix "$BATS_TEST_TMPDIR/u.sock"
  [ "$(head -n 1 "$SERVER_LOG")" = "serving on $BATS_TEST_TMPDIR/u.sock" ]
  [ -S "$BATS_TEST_TMPDIR/u.sock" ]
  stop_server
  [ ! -e "$BATS_TEST_TMPDIR/u.sock" ]
}

# ---- What every step-6 program shares ------------------------------------------------


# usage_refused PROGRAM ARGS... - PROGRAM given ARGS names the bad value on stderr, then
# the usage, prints nothing on stdout and exits 2, serving nothing. A program that wrongly
# starts to serve is ended by the deadline (status 124) and fails the assertion.
usage_refused() {
  local program=$1
  shift
  local extra=()
  [ "$program" != ftpserver ] || extra=(--dir "$BATS_TEST_TMPDIR/up")
  run --separate-stderr timeout $((5 * DEADLINE_SCALE)) "$STEP6/$program" --port 0 \
    "${extra[@]}" "$@"
  [ "$status" = 2 ] || { echo "$program $*: status $status, stdout: $output"; false; }
  [ -z "$output" ] || { echo "$program $*: stdout: $output"; false; }
  [[ "$stderr" == *"bad value for --"*"usage: "* ]] || { echo "$program $*: $stderr"; false; }
}

@test "step 6 programs: a number is decimal, whole and in range, and a name is not empty, or usage" {
  local program line args
  for program in "${PROGRAMS[@]}"; do
    while IFS= read -r line; do
      eval "args=($line)" # each line is the arguments, quoted as in a shell
      usage_refused "$program" "${args[@]}"
    done <<'ARGS'
--port ' 80'
--port '80 '
--port +80
--port 0x50
--port 1e2
--port 65536
--port ''
--max-children ' 5'
--max-children 0x10
--max-children +5
--timeout 0x10
--timeout ' 1'
--timeout 1e1
--timeout -0.5
--timeout inf
--timeout nan
--timeout .
--timeout 1..2
--max-clients ' 2'
--max-clients 2.0
--host ''
--allow '10.0.0.0/ 8'
--allow 10.0.0.0/+8
ARGS
  done
  usage_refused upper --unix ''
  usage_refused upper --unix '' --udp
  local size
  for size in ' 5' '5 ' 0x10 +5 -1 1e3 99999999999999999999; do
    usage_refused ftpserver --max-size "$size"
  done
  # What is right is still taken: these serve.
  start_server "$STEP6/upper" --port 00 --timeout 0.5 --max-children 007 --max-clients 3
  stop_server
  start_server "$STEP6/ftpserver" --dir "$BATS_TEST_TMPDIR/up" --max-size 0 --timeout 2.
  stop_server
}

@test "step 6 programs: the 17th --allow is refused as one too many, with the usage" {
  local args=() i
  for i in $(seq 16); do args+=(--allow "10.0.0.$i"); done
  start_server "$UPPER" "${args[@]}" # 16 are fine
  stop_server
  usage_refused upper "${args[@]}" --allow 10.0.0.17
  [[ "$stderr" == *"at most 16 networks are allowed"* ]] || { echo "$stderr"; false; }
}
