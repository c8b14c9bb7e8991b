# tests/helpers.bash - what every bats suite of the lab shares.
#
# A suite starts with `load helpers`. A server is started on a free port with
# start_server, which waits for its ready line (with a deadline, never a sleep) and sets
#   SERVER_PID    the server's pid
#   SERVER_ADDR   what followed "serving on " (HOST:PORT, or a Unix path)
#   SERVER_HOST, SERVER_PORT
#   SERVER_LOG    its standard output, SERVER_ERR its standard error
# stop_server sends SIGTERM (or the signal given), waits, and fails the test unless the
# server exits 0 - and, with VALGRIND=1, unless valgrind found no error and no leak.
# The default teardown stops whatever is still running, so a failed test leaves nothing.

# This file is read again before every test, so it starts no process: what it runs
# costs a few milliseconds of CPU a test, hundreds of times over.
LAB=${BATS_TEST_DIRNAME%/*} # (bats gives the suite's folder as an absolute path: tests/)
CLIENT="$LAB/tests/client"

bats_require_minimum_version 1.5.0
# bats-support and bats-assert, file by file: their own load.bash runs dirname for each
# file it sources, fifteen processes before every test.
for bats_library in /usr/lib/bats/bats-support/src/*.bash /usr/lib/bats/bats-assert/src/*.bash; do
  # shellcheck source=/dev/null
  source "$bats_library"
done
unset bats_library

# Deadlines grow under valgrind, which runs programs tens of times slower.
if [ "${VALGRIND:-0}" = 1 ]; then DEADLINE_SCALE=10; else DEADLINE_SCALE=1; fi
VALGRIND_STATUS=97

# wait_until SECONDS COMMAND... - run COMMAND until it succeeds or SECONDS pass.
# A condition that returns NEVER (99) says it can never hold (the server has exited): no
# waiting on. (Not 2: grep says 2 of a file that is not there yet.)
#
# Between two tries it pauses 10 ms, then half as long again each time, up to 50 ms: a
# condition that holds at once is seen at once, and a long wait (a server under valgrind)
# costs a few tries a second, not fifty. The pause is `read -t` on a pipe that nobody
# writes to (we hold its write end, so no end of file comes either), which starts no
# process: `sleep` would, two hundred times in a ten-second wait, and the polls of two
# suites side by side once took a third of the machine.
NEVER=99
wait_until() {
  local seconds=$1
  shift
  local deadline=$((${EPOCHREALTIME/./} + seconds * DEADLINE_SCALE * 1000000)) status
  local pause_us=10000 pause idle_fd
  exec {idle_fd}<> <(:)
  until "$@"; do
    status=$?
    if [ "$status" -eq "$NEVER" ] || ((${EPOCHREALTIME/./} >= deadline)); then
      [ "$status" -eq "$NEVER" ] || echo "gave up after $((seconds * DEADLINE_SCALE)) s waiting for: $*" >&2
      exec {idle_fd}>&-
      return 1
    fi
    printf -v pause '0.%06d' "$pause_us"
    read -r -t "$pause" -u "$idle_fd" _ || true # a poll interval: the condition decides
    pause_us=$((pause_us * 3 / 2 > 50000 ? 50000 : pause_us * 3 / 2))
  done
  exec {idle_fd}>&-
}

# start_server BIN [ARGS...] - start BIN on a free port (unless ARGS name --port or
# --unix) and wait for its ready line.
start_server() {
  server_args "$@"
  SERVER_LOG="$BATS_TEST_TMPDIR/server.out"
  SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
  valgrind_runner
  # Emptied here, not only by the redirection below, which runs in the background: a
  # test that starts servers one after another would else read the last one's ready line.
  : >"$SERVER_LOG"
  # 3>&-: bats waits for every holder of fd 3, so a server must not inherit it.
  "${RUNNER[@]}" "${SERVER_ARGS[@]}" </dev/null >"$SERVER_LOG" 2>"$SERVER_ERR" 3>&- &
  SERVER_PID=$!
  server_ready
}

# start_with_closed_stdout BIN [ARGS...] - start_server's work, but the server's standard
# output is a pipe whose reader takes the ready line and goes: every later log line is
# written into a closed pipe (which kills a server that does not ignore SIGPIPE).
start_with_closed_stdout() {
  server_args "$@"
  SERVER_NAME+=" (standard output closed)"
  SERVER_LOG="$BATS_TEST_TMPDIR/server.out"
  SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
  : >"$SERVER_LOG"
  valgrind_runner
  "${RUNNER[@]}" "${SERVER_ARGS[@]}" </dev/null 2>"$SERVER_ERR" 3>&- \
    > >(exec 3>&-; head -n 1 >"$SERVER_LOG") &
  SERVER_PID=$!
  server_ready
}

# server_args BIN [ARGS...] - SERVER_ARGS, the command line: --port 0 is added unless
# ARGS name --port or --unix. SERVER_NAME says it for failure messages.
server_args() {
  SERVER_ARGS=("$@")
  case " $* " in
  *" --port "* | *" -p "* | *" --unix "*) ;;
  *) SERVER_ARGS+=(--port 0) ;;
  esac
  SERVER_NAME="${SERVER_ARGS[*]}"
  SERVER_NAME=${SERVER_NAME#"$LAB"/}
}

# server_ready - wait for the ready line of the server just started; SERVER_ADDR,
# SERVER_HOST and SERVER_PORT from it.
server_ready() {
  if ! wait_until 10 ready_line_seen; then
    echo "no ready line from $SERVER_NAME; its stderr:" >&2
    cat "$SERVER_ERR" >&2
    return 1
  fi
  local ready_line
  ready_line=$(head -n 1 "$SERVER_LOG")
  SERVER_ADDR=${ready_line#serving on }
  SERVER_PORT=${SERVER_ADDR##*:}
  SERVER_HOST=${SERVER_ADDR%:*}
  # Seen once under heavy load: a port that came out empty. Say so here, with what was
  # read, rather than let a client fail later on `--port ''`.
  if [ -z "$SERVER_ADDR" ] || [ "$ready_line" = "$SERVER_ADDR" ] || [ -z "$SERVER_PORT" ]; then
    echo "the ready line of $SERVER_NAME reads '$ready_line': no address in it" >&2
    return 1
  fi
}

# valgrind_runner - RUNNER is the command a server runs under: nothing, or with VALGRIND=1
# valgrind (memcheck, or the thread checker VALGRIND_TOOL names), each process logging
# to $VALGRIND_LOG.PID.
valgrind_runner() {
  VALGRIND_LOG="$BATS_TEST_TMPDIR/valgrind"
  RUNNER=()
  # The exercises' graders run a student's server in a sandbox: their hook sets RUNNER's
  # start (and may move VALGRIND_LOG where the student's user can write).
  ! declare -F server_launcher >/dev/null || server_launcher
  if [ "${VALGRIND:-0}" = 1 ] && [ -n "${VALGRIND_TOOL:-}" ]; then
    # A thread checker (VALGRIND_TOOL=helgrind): any report fails the test.
    RUNNER+=(valgrind --quiet --vgdb=no --tool="$VALGRIND_TOOL" --error-exitcode=$VALGRIND_STATUS
      --log-file="$VALGRIND_LOG.%p")
  elif [ "${VALGRIND:-0}" = 1 ]; then
    RUNNER+=(valgrind --quiet --vgdb=no --leak-check=full --show-leak-kinds=definite,indirect
      --errors-for-leak-kinds=definite,indirect --error-exitcode=$VALGRIND_STATUS
      --trace-children=yes --child-silent-after-fork=no --track-fds=yes
      --log-file="$VALGRIND_LOG.%p")
  fi
}

ready_line_seen() {
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server exited before its ready line" >&2
    return "$NEVER"
  fi
  # The line must be whole (its newline written), not a prefix caught mid-write: read
  # fails on a line with no newline yet. (Builtins only: this runs at every poll.)
  local line
  [ -f "$SERVER_LOG" ] && IFS= read -r line <"$SERVER_LOG" && [[ $line == "serving on "* ]]
}

# stop_server [SIGNAL] - stop the server and insist on a clean exit.
stop_server() {
  local signal=${1:-TERM}
  [ -n "${SERVER_PID:-}" ] || return 0
  kill -"$signal" "$SERVER_PID"
  wait_for_exit 10
  if [ "$SERVER_STATUS" -ne 0 ]; then
    echo "$SERVER_NAME exited with status $SERVER_STATUS after SIG$signal" >&2
    report_valgrind >&2
    return 1
  fi
  if [ "${VALGRIND:-0}" = 1 ] && ! valgrind_clean; then
    report_valgrind >&2
    return 1
  fi
}

# wait_for_exit SECONDS - wait for the server to end; its status goes to SERVER_STATUS.
wait_for_exit() {
  wait_until "$1" server_gone || {
    kill -KILL "$SERVER_PID" 2>/dev/null
    echo "$SERVER_NAME did not exit within $(($1 * DEADLINE_SCALE)) s" >&2
  }
  SERVER_STATUS=0
  wait "$SERVER_PID" || SERVER_STATUS=$?
  SERVER_PID=
}

server_gone() {
  ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$(ps -o stat= -p "$SERVER_PID")" = Z ]
}

# valgrind_clean - in no process's log an error, a leak, or a descriptor the program
# opened and left open at exit (those it inherited are listed as "<inherited ...>").
valgrind_clean() {
  ! grep -qE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]' \
    "$VALGRIND_LOG".* 2>/dev/null &&
    ! grep -A1 -E '== Open (file descriptor|AF_)' "$VALGRIND_LOG".* 2>/dev/null |
    grep -qE '==[0-9]+==    at '
}

report_valgrind() {
  [ "${VALGRIND:-0}" = 1 ] || return 0
  local log
  for log in "$VALGRIND_LOG".*; do
    [ -s "$log" ] && { echo "--- $log"; cat "$log"; }
  done
}

# wait_for_log PATTERN [SECONDS] - wait until the server's log has a line matching the
# extended regular expression PATTERN.
wait_for_log() {
  wait_until "${2:-5}" grep -qE -- "$1" "$SERVER_LOG" || {
    echo "server log so far:" >&2
    cat "$SERVER_LOG" >&2
    return 1
  }
}

# client ARGS... - the shared client, pointed at the running server.
client() {
  "$CLIENT" --port "$SERVER_PORT" "$@"
}

# exchange INPUT OUTPUT - send the bytes of file INPUT on a new connection and read as
# many bytes back into file OUTPUT (with a deadline), then close.
exchange() {
  local size fd
  size=$(stat -c %s "$1")
  exec {fd}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT"
  cat "$1" >&"$fd"
  timeout $((5 * DEADLINE_SCALE)) head -c "$size" <&"$fd" >"$2"
  exec {fd}>&-
}

# round_trip TEXT - a new client's message must be answered within a second (the client
# says so when it is not; `timeout` ends it, for it would go on waiting).
round_trip() {
  run timeout $((5 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" \
    --reply-timeout $((1 * DEADLINE_SCALE)) <<<"$1"
  assert_output "recv from server: ${1^^}"
  assert_success
}

# second_client_waits - a server of one client at a time: while a first client is
# connected, a second one's message gets no reply within a second and only the first has
# been accepted; once the first hangs up, the second is answered.
second_client_waits() {
  hold_open first
  wait_for_log "connected$"
  client --reply-timeout 1 <<<"hello" >"$BATS_TEST_TMPDIR/second.out" &
  local second=$!
  wait_until 10 grep -q "no reply within" "$BATS_TEST_TMPDIR/second.out"
  run grep -c " connected$" "$SERVER_LOG"
  assert_output 1
  release first
  wait "$second"
  run cat "$BATS_TEST_TMPDIR/second.out"
  assert_line "recv from server: HELLO"
}

# every_byte FILE - write the 256 byte values, 0 to 255, into FILE.
every_byte() {
  # shellcheck disable=SC2046 # one format of 256 octal escapes, word-split on purpose
  printf "$(printf '\\%03o' $(seq 0 255))" >"$1"
}

# upper_case_of FILE - what the upper-case echo protocol answers to FILE's bytes.
upper_case_of() { LC_ALL=C tr 'a-z' 'A-Z' <"$1"; }

# hold_open NAME [CLIENT-OPTIONS...] - connect a client that says nothing and keep it
# connected until `release NAME`. Its output (the "connected from IP:PORT" line) is in
# $BATS_TEST_TMPDIR/NAME.out.
hold_open() {
  local name=$1
  shift
  # Its input is a fifo it holds open itself (<>), so it never sees an end of input
  # and no other process holds it: release is a SIGTERM, on which it hangs up.
  mkfifo "$BATS_TEST_TMPDIR/$name.in"
  "$CLIENT" --port "$SERVER_PORT" "$@" hold <>"$BATS_TEST_TMPDIR/$name.in" >"$BATS_TEST_TMPDIR/$name.out" 2>&1 3>&- &
  printf -v "HOLD_PID_$name" %s $!
  wait_until 5 grep -qs '^connected from' "$BATS_TEST_TMPDIR/$name.out"
}

# release NAME - make the held client hang up, and wait for it.
release() {
  local pid_var="HOLD_PID_$1"
  kill -TERM "${!pid_var}"
  wait "${!pid_var}"
}

# in_background NAME COMMAND... - run COMMAND with its input on a fifo this test holds
# open (`let_go NAME` closes it, which ends the command); its output is in NAME.out.
# The fifo ends of the commands started before are closed in this one, so each command
# sees its own end of input.
BG_FDS=""
in_background() {
  local name=$1 fd
  shift
  mkfifo "$BATS_TEST_TMPDIR/$name.in"
  # shellcheck disable=SC2016
  "$BASH" -c 'for fd in $1; do eval "exec $fd>&-"; done; shift; exec "$@"' close-fifos \
    "$BG_FDS" "$@" <"$BATS_TEST_TMPDIR/$name.in" >"$BATS_TEST_TMPDIR/$name.out" 2>&1 3>&- &
  printf -v "BG_PID_$name" %s $!
  exec {fd}>"$BATS_TEST_TMPDIR/$name.in"
  printf -v "BG_FD_$name" %s "$fd"
  BG_FDS+=" $fd"
}

# say NAME LINE - one line on NAME's input (a chat client sends it).
say() {
  local fd_var="BG_FD_$1"
  printf '%s\n' "$2" >&"${!fd_var}"
}

let_go() {
  local fd_var="BG_FD_$1" pid_var="BG_PID_$1"
  eval "exec ${!fd_var}>&-"
  BG_FDS=${BG_FDS/ ${!fd_var}/}
  wait "${!pid_var}"
}

# output_of NAME PATTERN - NAME has printed a line matching PATTERN.
output_of() { grep -qsE -- "$2" "$BATS_TEST_TMPDIR/$1.out"; }

# misbehave MODE ARGS... - a misbehaving client (tests/tools/misbehave.py) for the server;
# in_background needs a program, so it is given python3 "$MISBEHAVE" --port ... instead.
MISBEHAVE="$LAB/tests/tools/misbehave.py"
# protocol_only - for a test that checks bytes on the wire or in the log and nothing a
# sanitizer would see: under valgrind it is skipped (and counted as skipped), because the
# step and program suites already run every server's sessions under memcheck.
protocol_only() {
  [ "${VALGRIND:-0}" != 1 ] || skip "protocol only: the plain pass checks it"
}

misbehave() { python3 "$MISBEHAVE" --port "$SERVER_PORT" "$@"; }

# Where a process's threads wait: the first field of /proc/PID/task/TID/syscall is the
# number of the system call a thread is blocked in.
case $HOSTTYPE in # (uname -m, without starting it)
x86_64) SYS_POLL=7 SYS_SENDTO=44 ;;
aarch64) SYS_POLL=73 SYS_SENDTO=206 ;; # ppoll: aarch64 has no poll
*) SYS_POLL= SYS_SENDTO= ;;
esac
need_syscall_numbers() { [ -n "$SYS_POLL" ] || skip "no syscall numbers for $HOSTTYPE"; }

# blocked_in PID NUMBER... - a thread of PID other than its main one, or any thread of a
# child of PID, is blocked in one of the system calls NUMBER...
blocked_in() {
  local pid=$1 calls child task
  shift
  calls=$(IFS='|' && echo "$*")
  for task in "/proc/$pid/task/"* $(for child in $(ps -o pid= --ppid "$pid"); do
    echo "/proc/$child/task/"*
  done); do
    [ "$task" != "/proc/$pid/task/$pid" ] || continue
    grep -qE "^($calls) " "$task/syscall" 2>/dev/null && return 0
  done
  return 1
}

# The state of the running server, read from /proc.
server_threads() { awk '/^Threads:/ {print $2}' "/proc/$SERVER_PID/status"; }
server_fds() { ls "/proc/$SERVER_PID/fd" | wc -l; }
server_children() { ps -o pid= --ppid "$SERVER_PID" | wc -l; }
server_zombies() { ps -o stat= --ppid "$SERVER_PID" | grep -c '^Z' || true; }
threads_are() { [ "$(server_threads)" = "$1" ]; }
# state - the server's resources in one line, for "back where it started". Under
# ThreadSanitizer (SANITIZER=thread) the thread count is left out: TSan starts a thread
# of its own with the program's first, which stays.
state() {
  local threads
  threads=" threads=$(server_threads)"
  [ "${SANITIZER:-}" != thread ] || threads=
  echo "fds=$(server_fds)$threads children=$(server_children)"
}
state_is() { [ "$(state)" = "$1" ]; }
fds_are() { [ "$(server_fds)" = "$1" ]; }
children_are() { [ "$(server_children)" = "$1" ]; }

# no_errors - nothing on the server's standard error: no process of it (a child that
# ran on into the parent's loop, say) has failed.
no_errors() { [ ! -s "$SERVER_ERR" ] || fail "the server's stderr: $(cat "$SERVER_ERR")"; }

# chat_open NAME - a chat client in the background: `say NAME LINE`, `let_go NAME`.
chat_open() { in_background "$1" "$CLIENT" --port "$SERVER_PORT" chat; }

# chats_answered NAME... - a chat client for each NAME, one after the other, each saying
# "hello from NAME" and answered before the next one connects.
chats_answered() {
  local name
  for name in "$@"; do
    chat_open "$name"
    say "$name" "hello from $name"
    wait_until 5 output_of "$name" "recv from server: HELLO FROM ${name^^}"
  done
}

# chats_closed NAME... - each chat client, speaking again, finds its connection closed.
chats_closed() {
  local name
  for name in "$@"; do
    say "$name" "anyone there?"
    wait_until 5 output_of "$name" "^server closed the connection$"
  done
}

# log_count PATTERN - how many lines of the server's log match PATTERN.
log_count() { grep -cE -- "$1" "$SERVER_LOG" || true; }
log_count_is() { [ "$(log_count "$1")" = "$2" ]; }
now_ms() { date +%s%3N; }

# clean_env COMMAND... - run COMMAND as a user's shell runs it: none of this bats run's
# own variables, and not its libexec folder, which it puts first in PATH (a bats started
# inside would be its internal one). For suites that run make, or bats, inside a test.
clean_env() {
  local path
  path=$(tr ':' '\n' <<<"$PATH" | grep -v 'bats-core' | paste -sd:)
  env -i PATH="$path" HOME="$HOME" TERM=dumb "$@"
}

teardown() {
  # A test that loops over several servers says which one it was at when it failed.
  [ -n "${BATS_TEST_COMPLETED:-}" ] || [ -z "${SERVER_NAME:-}" ] ||
    echo "# failed while testing: $SERVER_NAME" >&2
  # Every step is `|| true`: this also runs as an EXIT trap under set -e (the exercises'
  # criteria), where one failed kill would end it before the rest were killed.
  if [ -n "${SERVER_PID:-}" ]; then
    # Its children first: a prefork worker whose parent is gone would wait in accept()
    # for ever, and hold the test's descriptors open.
    pkill -KILL -P "$SERVER_PID" 2>/dev/null || true
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
  # Background helpers a test started (clients held open) die with it.
  local job
  for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done
  return 0
}
