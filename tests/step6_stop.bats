#!/usr/bin/env bats
# passes: plain memcheck:9
# tests/step6_stop.bats - how the step-6 framework stops, and what cannot stop it: a
# closed stdout (SIGPIPE), a signal to one forking child, a second or an early SIGTERM,
# stopped children, Unix socket paths, tiny timeouts and bad hosts. The stop race, for
# every server, is stop.bats's.

load helpers

UPPER="$LAB/step6_socketserver/upper"
FTPSERVER="$LAB/step6_socketserver/ftpserver"

# ---- Local helpers ---------------------------------------------------------------------

# The server's children (forking mode), one pid a line.
children_of_server() { ps -o pid= --ppid "$SERVER_PID" | tr -d ' '; }

# sigterms_until_exit - SIGTERM the server, and again and again until it has exited (a
# zombie, or gone), for at most 10 seconds: its clean-up after the first one is sure to
# get some. Builtins only, so the gaps are microseconds. TERMS_SENT counts them.
sigterms_until_exit() {
  local stat deadline=$((${EPOCHREALTIME/./} + 10000000))
  TERMS_SENT=0
  while ((${EPOCHREALTIME/./} < deadline)); do
    read -r stat <"/proc/$SERVER_PID/stat" 2>/dev/null || return 0
    stat=${stat##*) } # the state follows the command's name in parentheses
    [ "${stat%% *}" != Z ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || return 0
    TERMS_SENT=$((TERMS_SENT + 1))
  done
  return 1
}

# upper_round_trip ARGS... - a chat client (with ARGS for the address) says hello and
# must get HELLO back.
upper_round_trip() {
  local out
  out=$(printf 'hello\n' | timeout $((5 * DEADLINE_SCALE)) "$CLIENT" "$@" chat)
  [ "$out" = "recv from server: HELLO" ] || fail "no HELLO, but: '$out'"
}

# not_serving BIN ARGS... - BIN must refuse to start: exit 1 or 2 within a deadline,
# with no ready line, and stderr saying why. A server that does start is stopped.
not_serving() {
  local out="$BATS_TEST_TMPDIR/refused.out" err="$BATS_TEST_TMPDIR/refused.err" status=0
  timeout $((5 * DEADLINE_SCALE)) "$@" </dev/null >"$out" 2>"$err" 3>&- || status=$?
  if grep -q '^serving on' "$out"; then
    fail "it served: $(head -n 1 "$out") (exit $status)"
  fi
  [ "$status" = 1 ] || [ "$status" = 2 ] || fail "exit $status, stderr: $(cat "$err")"
  [ -s "$err" ] || fail "nothing on stderr says why"
  REFUSAL=$(cat "$err")
}

# ---- 1. A closed standard output is no SIGPIPE ------------------------------------------

@test "upper survives a closed stdout in every mode (SIGPIPE is ignored)" {
  for mode in sync threading forking; do
    start_with_closed_stdout "$UPPER" --mode "$mode"
    upper_round_trip --port "$SERVER_PORT"
    upper_round_trip --port "$SERVER_PORT" # a forking child that died would show here
    kill -0 "$SERVER_PID" || fail "$mode: the server died"
    stop_server
  done
}

@test "ftpserver survives a closed stdout" {
  start_with_closed_stdout "$FTPSERVER" --dir "$BATS_TEST_TMPDIR"
  printf 'some bytes\n' >"$BATS_TEST_TMPDIR/sent"
  (cd "$BATS_TEST_TMPDIR" && timeout $((5 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" \
    put sent --as stored) || fail "put failed"
  cmp "$BATS_TEST_TMPDIR/sent" "$BATS_TEST_TMPDIR/stored"
  stop_server
}

@test "a Unix socket server with a closed stdout serves, stops with 0 and removes its path" {
  local path="$BATS_TEST_TMPDIR/upper.sock"
  start_with_closed_stdout "$UPPER" --unix "$path"
  upper_round_trip --unix "$path"
  stop_server
  [ ! -e "$path" ] || fail "the socket file was left behind"
}

# answers ARGS... - like upper_round_trip, a condition to wait for, not an assertion.
answers() {
  [ "$(printf 'hello\n' | timeout $((5 * DEADLINE_SCALE)) "$CLIENT" "$@" chat 2>/dev/null)" = \
    "recv from server: HELLO" ]
}

@test "a server started with stdout and stderr closed (>&- 2>&-): its first error line does not stop it" {
  # Its descriptors 0 to 2 stay taken: else its self-pipe would be 1 and 2, and the line
  # about a dead worker, written to 2, a stop request.
  local path="$BATS_TEST_TMPDIR/closed.sock" worker
  valgrind_runner
  "${RUNNER[@]}" "$UPPER" --mode prefork --workers 2 --unix "$path" </dev/null >&- 2>&- 3>&- &
  SERVER_PID=$! SERVER_NAME="upper --mode prefork (stdout and stderr closed)"
  wait_until 10 answers --unix "$path"
  worker=$(ps -o pid= --ppid "$SERVER_PID" | head -n 1)
  kill -KILL $worker # "worker Process-N killed by signal 9: starting another", on stderr
  wait_until 10 eval "[ \"\$(ps -o pid= --ppid $SERVER_PID | grep -cvw $worker)\" = 2 ]" ||
    fail "the worker was not replaced"
  upper_round_trip --unix "$path"
  stop_server
  [ ! -e "$path" ] || fail "the socket file was left behind"
}

# ---- 2. A stop signal to one forking child ends its session only -------------------------

@test "SIGTERM to one forking child ends that session, not the server" {
  start_server "$UPPER" --mode forking
  hold_open a
  hold_open b
  wait_until 5 children_are 2
  local victim
  victim=$(children_of_server | head -n 1)
  kill -TERM "$victim"
  wait_until 5 children_are 1
  wait_for_log 'disconnected$'
  kill -0 "$SERVER_PID" || fail "the whole server stopped"
  upper_round_trip --port "$SERVER_PORT"
  # The victim's session and the round trip's. The round trip's child logs its end after
  # its client has read the reply and gone, so the line may come a moment later.
  wait_until 5 log_count_is 'disconnected$' 2
  release a
  release b
  stop_server
}

# ---- 3. A second SIGTERM during the clean-up ---------------------------------------------

# more_sigterms MODE: N idle clients, then SIGTERMs until the server has exited.
more_sigterms() {
  local n=300 i fd fds=()
  [ "${VALGRIND:-0}" = 1 ] && n=20
  start_server "$UPPER" --mode "$1" --max-children 1000
  for ((i = 0; i < n; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$SERVER_PORT"
    fds+=("$fd")
  done
  wait_until 20 log_count_is ' connected$' "$n"
  sigterms_until_exit
  wait_for_exit 10
  for fd in "${fds[@]}"; do exec {fd}>&-; done
  [ "$SERVER_STATUS" = 0 ] || fail "$1: exit $SERVER_STATUS after $TERMS_SENT SIGTERMs"
  ((TERMS_SENT > 1)) || fail "$1: it exited before a second SIGTERM: nothing was tested"
  if [ "${VALGRIND:-0}" = 1 ] && ! valgrind_clean; then
    report_valgrind
    fail "valgrind"
  fi
}

@test "SIGTERMs during the clean-up of many idle clients: threading exits 0" {
  more_sigterms threading
}

@test "SIGTERMs during the clean-up of many idle clients: forking exits 0" {
  more_sigterms forking
}

# ---- 4. Stopped children cannot hang the stop ----------------------------------------------

@test "SIGTERM with every forking child stopped: grace, SIGCONT, exit 0, no orphans" {
  start_server "$UPPER" --mode forking
  hold_open a
  hold_open b
  wait_until 5 children_are 2
  local pids
  pids=$(children_of_server)
  # shellcheck disable=SC2086 # one pid a word
  kill -STOP $pids
  stop_server || {
    kill -KILL $pids 2>/dev/null # the orphans the old code leaves
    false
  }
  grep -q 'still running after .* ms: SIGCONT' "$SERVER_ERR"
  for pid in $pids; do
    ! kill -0 "$pid" 2>/dev/null || fail "child $pid outlived the server"
  done
}

# ---- 5. Unix socket paths -----------------------------------------------------------------

@test "a stale Unix socket left by a killed server does not block a restart" {
  local path="$BATS_TEST_TMPDIR/upper.sock"
  start_server "$UPPER" --unix "$path"
  kill -KILL "$SERVER_PID"
  wait_for_exit 5
  [ -S "$path" ] # what a crash leaves behind
  start_server "$UPPER" --unix "$path"
  upper_round_trip --unix "$path"
  stop_server
  [ ! -e "$path" ]
}

@test "a live Unix socket server's path is not taken over" {
  local path="$BATS_TEST_TMPDIR/upper.sock"
  start_server "$UPPER" --unix "$path"
  not_serving "$UPPER" --unix "$path"
  assert_equal "$REFUSAL" "cannot lock $path.lock: another server serves on $path"
  upper_round_trip --unix "$path"
  stop_server
  [ ! -e "$path" ] && [ ! -e "$path.lock" ] || fail "left behind: $(ls "$BATS_TEST_TMPDIR")"
}

# pair_at_once I - two servers started at once on one Unix path: one serves, the other
# exits 1 saying another server holds the path. The one serving stops with exit 0 and
# removes the path and its lock file.
pair_at_once() {
  local path="$BATS_TEST_TMPDIR/pair.sock" d="$BATS_TEST_TMPDIR/pair$1" pid=() ran served=-1 status
  mkdir "$d" # the pair's own output files: a redirection in the background empties a reused one late
  for ran in 0 1; do
    "$UPPER" --unix "$path" </dev/null >"$d/$ran.out" 2>"$d/$ran.err" 3>&- &
    pid[ran]=$!
  done
  for ran in 0 1; do
    wait_until 10 eval "grep -q '^serving on' '$d/$ran.out' || ! kill -0 ${pid[ran]} 2>/dev/null"
    ! grep -q '^serving on' "$d/$ran.out" || { [ "$served" = -1 ] || fail "pair $1: both serve"; served=$ran; }
  done
  [ "$served" != -1 ] || fail "pair $1: neither serves: $(cat "$d"/*.err)"
  SERVER_PID=${pid[served]} SERVER_NAME="pair $1"
  local refused=$((1 - served))
  status=0 && wait "${pid[refused]}" || status=$?
  [ "$status" = 1 ] || fail "pair $1: the other one's exit $status"
  assert_equal "$(cat "$d/$refused.err")" "cannot lock $path.lock: another server serves on $path"
  upper_round_trip --unix "$path"
  stop_server
  [ ! -e "$path" ] && [ ! -e "$path.lock" ] || fail "pair $1: left behind: $(ls -A "$BATS_TEST_TMPDIR")"
}

@test "two servers started at once on one Unix path, 100 times: one serves, the other says why" {
  protocol_only
  local pair
  for pair in {1..100}; do pair_at_once "$pair"; done
}

@test "after rm -f of its path, a newer server is refused; another program's socket there is left alone" {
  local path="$BATS_TEST_TMPDIR/upper.sock" old_pid old_valgrind_log
  start_server "$UPPER" --unix "$path"
  old_pid=$SERVER_PID old_valgrind_log=$VALGRIND_LOG
  rm -f "$path"
  # A newer server of ours is refused while the old one holds the lock file ...
  not_serving "$UPPER" --unix "$path"
  # ... which the old one removes as it stops.
  SERVER_PID=$old_pid VALGRIND_LOG=$old_valgrind_log
  stop_server
  [ ! -e "$path.lock" ] || fail "the old server left its lock file"
  # Another program's socket, bound after the rm -f, is no business of the old server's.
  start_server "$UPPER" --unix "$path"
  rm -f "$path"
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$path"
  stop_server
  [ -S "$path" ] || fail "the server removed another program's socket"
}

@test "--unix '' is refused, not bound to an unreachable abstract name" {
  not_serving "$UPPER" --unix ''
}

# ---- 6. A tiny timeout is a timeout: test_socketserver's tiny_timeout_is_a_timeout and
# eintr_after_deadline (the programs refuse a --timeout below 1 ms).

# ---- 7. --host ----------------------------------------------------------------------------

@test "--host '' is refused, not bound to every interface" {
  not_serving "$UPPER" --host '' --port 0
}

@test "--host '[::1]' never shows doubled brackets" {
  local out="$BATS_TEST_TMPDIR/v6.out" err="$BATS_TEST_TMPDIR/v6.err"
  "$UPPER" --host '[::1]' --port 0 </dev/null >"$out" 2>"$err" 3>&- &
  SERVER_PID=$!
  wait_until 10 eval '[ -s "$out" ] || [ -s "$err" ] || ! kill -0 $SERVER_PID'
  if kill -0 "$SERVER_PID" 2>/dev/null; then stop_server; else wait_for_exit 5; fi
  ! grep -F '[[' "$out" "$err" || fail "doubled brackets"
  # Served (where the machine has IPv6), or refused with a reason.
  grep -q '^serving on ::1:' "$out" || [ -s "$err" ]
}

@test "--host that cannot be resolved says so, not 'Cannot assign requested address'" {
  run --separate-stderr timeout $((5 * DEADLINE_SCALE)) "$UPPER" --host nonsense.invalid --port 0
  [ "$status" -eq 1 ] || fail "exit $status, stdout: $output"
  [[ $stderr == "cannot resolve nonsense.invalid: "* ]] || fail "stderr: $stderr"
}

@test "a --unix path too long for a socket is named whole in the error" {
  local path
  path="$BATS_TEST_TMPDIR/$(printf 'x%.0s' {1..130})"
  run --separate-stderr timeout $((5 * DEADLINE_SCALE)) "$UPPER" --unix "$path"
  [ "$status" -eq 1 ] || fail "exit $status, stdout: $output"
  [ "$stderr" = "cannot bind $path: File name too long" ] || fail "stderr: $stderr"
}
