# tests/demo/lib.sh - what the guided demos (make step1 ... make step6) share.
#
# A demo prints a transcript: narration lines starting with "#", each command as
# "$ command" followed by what it printed, and the server's log, shown as "server| ..."
# at the moment the demo has waited for it. Every wait is on a fact (a log line, a
# client's output) with a deadline, so the transcript is the same on every run apart
# from ports and pids.

set -u
LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$LAB" || exit 1
DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sockets-lab-demo.XXXXXX")
SERVER_PID=
LOG_SHOWN=0
BACKGROUND_FDS=""
trap 'demo_cleanup' EXIT

demo_cleanup() {
  [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
  local job
  for job in $(jobs -p); do kill "$job" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$DEMO_DIR"
}

say() { printf '# %s\n' "$*"; }
blank() { printf '\n'; }
fail() {
  printf 'demo failed: %s\n' "$*" >&2
  exit 1
}

# wait_for SECONDS COMMAND... - poll a condition until it holds or the deadline passes.
# The pause between tries grows from 10 to 50 ms, and is `read -t` on a pipe nobody
# writes to: a wait that starts no process (tests/helpers.bash's wait_until does the same).
wait_for() {
  local deadline=$((SECONDS + $1)) pause_us=10000 pause idle_fd
  shift
  exec {idle_fd}<> <(:)
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for: $*"
    printf -v pause '0.%06d' "$pause_us"
    read -r -t "$pause" -u "$idle_fd" _ || true
    pause_us=$((pause_us * 3 / 2 > 50000 ? 50000 : pause_us * 3 / 2))
  done
  exec {idle_fd}>&-
}

# start_server BIN [ARGS...] - start a server on a free port and wait for its ready line.
start_server() {
  printf '$ %s\n' "$*"
  # A demo may run one server after another: the last one's log must be gone before
  # the wait below looks for a ready line (the background redirection comes too late).
  : >"$DEMO_DIR/server.log"
  LOG_SHOWN=0
  "$@" --port 0 </dev/null >"$DEMO_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  wait_for 10 ready_line_written
  PORT=$(sed -n '1s/^serving on .*://p' "$DEMO_DIR/server.log")
  show_log
}

# The ready line counts once its newline is written: a prefix caught mid-write would
# give a wrong port.
ready_line_written() {
  [ "$(wc -l <"$DEMO_DIR/server.log")" -ge 1 ] && head -n 1 "$DEMO_DIR/server.log" | grep -q '^serving on '
}

# log_has PATTERN [COUNT] - the server has logged COUNT (default 1) lines matching
# PATTERN (an extended regular expression).
log_has() { [ "$(grep -cE -- "$1" "$DEMO_DIR/server.log")" -ge "${2:-1}" ]; }

# show_log [PATTERN [COUNT]] - wait for the log lines, then print those not shown yet.
show_log() {
  [ $# -eq 0 ] || wait_for 10 log_has "$@"
  local total
  total=$(wc -l <"$DEMO_DIR/server.log")
  sed -n "$((LOG_SHOWN + 1)),${total}p" "$DEMO_DIR/server.log" | sed 's/^/server| /'
  LOG_SHOWN=$total
}

# next_log_line PATTERN - the number of the first line not shown yet that matches PATTERN.
next_log_line() {
  awk -v from=$((LOG_SHOWN + 1)) -v pattern="$1" 'NR >= from && $0 ~ pattern {print NR; exit}' \
    "$DEMO_DIR/server.log"
}
has_next_log_line() { [ -n "$(next_log_line "$1")" ]; }

# show_log_through PATTERN - wait for a line matching PATTERN, then print the lines not
# shown yet up to it; any after it wait for the next show_log.
show_log_through() {
  wait_for 10 has_next_log_line "$1"
  local upto
  upto=$(next_log_line "$1")
  sed -n "$((LOG_SHOWN + 1)),${upto}p" "$DEMO_DIR/server.log" | sed 's/^/server| /'
  LOG_SHOWN=$upto
}

# skip_log_through PATTERN - the same, printing nothing: for a line whose wording
# depends on timing, which the narration then explains.
skip_log_through() {
  wait_for 10 has_next_log_line "$1"
  LOG_SHOWN=$(next_log_line "$1")
}

server_exited() { ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$(ps -o stat= -p "$SERVER_PID")" = Z ]; }

# stop_server [SIGNAL] - stop the server and say how it ended.
stop_server() {
  local signal=${1:-TERM}
  printf '$ kill -%s <server>\n' "$signal"
  kill -"$signal" "$SERVER_PID"
  wait_for 10 server_exited # a server that lost the stop fails the demo, never hangs it
  local status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=
  show_log
  printf 'server exited with status %d\n' "$status"
}

# client ARGS... - show and run the shared client against the demo's server.
client() {
  printf '$ tests/client --port %s %s\n' "$PORT" "$*"
  tests/client --port "$PORT" "$@"
}

# chat LINES... - run the chat client on the given lines, as typed into a pipe.
chat() {
  local input
  input=$(printf '%s\\n' "$@")
  printf "\$ printf '%s' | tests/client --port %s\n" "$input" "$PORT"
  printf '%s\n' "$@" | tests/client --port "$PORT"
}

# start_background NAME COMMAND... - run COMMAND with its input on a fifo the demo keeps
# open and its output in a file; `feed NAME TEXT` writes a line, `finish NAME` closes.
# A NAME may be used again once finished: the new client starts with a new fifo and
# its output shown from its first line.
start_background() {
  local name=$1 pid_var="${1}_PID"
  shift
  [ -z "${!pid_var:-}" ] || fail "background client $name is still running"
  rm -f "$DEMO_DIR/$name.in"
  mkfifo "$DEMO_DIR/$name.in" || fail "no fifo for $name"
  : >"$DEMO_DIR/$name.out" # there before the client's own redirection: output_has reads it
  eval "${name}_SHOWN=0"
  printf '$ %s   (%s, in the background)\n' "$*" "$name"
  # The other clients' fifo ends are closed in this one: a fifo held open by someone
  # else would never give its reader the end of input.
  local fd closes=""
  for fd in $BACKGROUND_FDS; do closes+=" $fd>&-"; done
  eval '"$@" <"$DEMO_DIR/$name.in" >"$DEMO_DIR/$name.out" 2>&1' "$closes" '&'
  eval "${name}_PID=\$!"
  eval "exec {${name}_FD}>\"\$DEMO_DIR/\$name.in\""
  local fd_var="${name}_FD"
  BACKGROUND_FDS+=" ${!fd_var}"
}

feed() {
  local fd_var="${1}_FD"
  printf '%s> %s\n' "$1" "$2"
  printf '%s\n' "$2" >&"${!fd_var}"
}

finish() {
  local fd_var="${1}_FD" pid_var="${1}_PID"
  eval "exec ${!fd_var}>&-"
  wait "${!pid_var}" 2>/dev/null
  BACKGROUND_FDS=${BACKGROUND_FDS/ ${!fd_var}/}
  eval "${1}_PID="
}

# output_has NAME PATTERN - the background client NAME has printed a matching line.
output_has() { grep -qE -- "$2" "$DEMO_DIR/$1.out"; }

# show_output NAME [PATTERN] - wait for PATTERN, then print NAME's output so far, once.
show_output() {
  local name=$1 shown_var="${1}_SHOWN"
  [ $# -lt 2 ] || wait_for 10 output_has "$name" "$2"
  local total shown=${!shown_var:-0}
  total=$(wc -l <"$DEMO_DIR/$name.out")
  sed -n "$((shown + 1)),${total}p" "$DEMO_DIR/$name.out" | sed "s/^/$name| /"
  eval "${shown_var}=\$total"
}
