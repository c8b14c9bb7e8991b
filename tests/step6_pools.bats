#!/usr/bin/env bats
# passes: plain:4 memcheck:11 helgrind:3
# tests/step6_pools.bats - the pools beyond Python's socketserver: PreforkingMixIn
# (--mode prefork, --accept-lock none|file|mutex: Stevens' serv02, serv03, serv04) and
# ThreadPoolMixIn (--mode pool, --accept-by workers|main: serv07, serv08).
#
# For every variant, with --workers 3: three clients are served at once, the fourth
# waits in the backlog (connected, unanswered, never a fourth worker) until one leaves;
# a SIGTERM under load ends it with exit 0 and nothing left. Prefork workers killed with
# SIGKILL are replaced while the others go on. Then the names (threadname, --log-worker),
# every program and a Unix socket in both modes, and the usage errors.
#
# Under valgrind the variants are one of each mix-in (the mutex, the main thread's
# hand-over: the most machinery); the plain pass runs all five.

load helpers

STEP6="$LAB/step6_socketserver"
UPPER="$STEP6/upper"
WORKERS=3

ALL_VARIANTS=("prefork --accept-lock none" "prefork --accept-lock file"
  "prefork --accept-lock mutex" "pool --accept-by workers" "pool --accept-by main")
if [ "${VALGRIND:-0}" = 1 ]; then
  VARIANTS=("prefork --accept-lock mutex" "pool --accept-by main")
else
  VARIANTS=("${ALL_VARIANTS[@]}")
fi

# start_variant VARIANT [BIN] [ARGS...] - BIN (upper) in --mode VARIANT, --workers 3,
# once all its workers are there; BASELINE is then its state (descriptors, threads,
# children).
start_variant() {
  local variant=$1 bin=${2:-$STEP6/upper}
  shift $(($# > 1 ? 2 : 1))
  # shellcheck disable=SC2086 # the variant is its options, word-split on purpose
  start_server "$bin" --mode $variant --workers "$WORKERS" "$@"
  MODE=${variant%% *}
  wait_until 10 workers_are "$WORKERS"
  BASELINE=$(state)
}

# workers_are N - the pool has N workers: N children (prefork), N threads besides the
# main one (pool), and no other. (ThreadSanitizer adds a thread of its own to a process
# that has started one.)
workers_are() {
  if [ "$MODE" = prefork ]; then
    children_are "$1" && threads_are 1
  else
    threads_are $(($1 + 1 + ${TSAN_THREAD:-0})) && children_are 0
  fi
}
[ "${SANITIZER:-}" != thread ] || TSAN_THREAD=1

# workers_pids - the prefork workers' pids, one a line.
workers_pids() { ps -o pid= --ppid "$SERVER_PID" | tr -d ' '; }

# forget_clients - the clients' fifos and outputs go, so the next variant's can take
# their names.
forget_clients() { rm -f "$BATS_TEST_TMPDIR"/*.in "$BATS_TEST_TMPDIR"/*.out; }

# connect NAME / ask NAME MESSAGE - a connection kept open in fd $NAME; one line sent and
# the answer read into ANSWER, with a deadline.
connect() { exec {fd}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT" && printf -v "$1" %s "$fd"; }
ask() {
  printf '%s\n' "$2" >&"${!1}"
  ANSWER=
  read -r -t $((5 * DEADLINE_SCALE)) ANSWER <&"${!1}"
}

# ---- Bounded: N at once, the next waits ----------------------------------------------

@test "pools: 3 workers serve 3 clients at once; the 4th waits unanswered, then is served" {
  for variant in "${VARIANTS[@]}"; do
    start_variant "$variant"
    chats_answered a b c # all three held, all three answered
    in_background fourth "$CLIENT" --port "$SERVER_PORT" --reply-timeout 1 chat
    say fourth "fourth"
    wait_until 10 output_of fourth "no reply within"
    log_count_is " connected$" 3 || fail "$variant: the 4th was taken: $(cat "$SERVER_LOG")"
    workers_are "$WORKERS" || fail "$variant: $(state), not $WORKERS workers"
    let_go b
    wait_until 5 output_of fourth "^recv from server: FOURTH$" ||
      fail "$variant: $(cat "$BATS_TEST_TMPDIR/fourth.out")"
    let_go fourth
    workers_are "$WORKERS" || fail "$variant: $(state) after the 4th"
    let_go a
    let_go c
    wait_until 5 log_count_is " disconnected$" 4
    forget_clients
    wait_until 5 state_is "$BASELINE" || fail "$variant: $(state), not back to $BASELINE"
    no_errors
    stop_server
  done
}

@test "pools: SIGTERM with every worker busy and clients in the backlog: exit 0, nothing left" {
  for variant in "${VARIANTS[@]}"; do
    start_variant "$variant"
    local pids
    pids=$(workers_pids)
    chats_answered a b c
    hold_open d
    hold_open e # d and e wait in the backlog
    stop_server # exit 0, and under valgrind no error, leak or descriptor left
    local pid
    for pid in $pids; do
      ! kill -0 "$pid" 2>/dev/null || fail "$variant: worker $pid outlived the server"
    done
    chats_closed a b c
    release d
    release e
    for name in a b c; do let_go "$name"; done
    forget_clients
  done
}

# ---- Prefork: a worker that dies is replaced ------------------------------------------

@test "prefork: workers killed with SIGKILL are replaced, and the busy one goes on" {
  for variant in "${VARIANTS[@]}"; do
    [[ $variant == prefork* ]] || continue
    start_variant "$variant" "$STEP6/threadname"
    connect a
    ask a "before"
    local busy=${ANSWER%%: *} pid killed=0
    [ "$ANSWER" = "$busy: before" ] && [[ $busy == Process-* ]] || fail "$variant: '$ANSWER'"
    # Every idle worker dies, the one in accept() (holding the lock, if any) among them.
    for pid in $(workers_pids); do
      [ "Process-$pid" = "$busy" ] || { kill -KILL "$pid" && killed=$((killed + 1)); }
    done
    wait_until 10 eval '[ "$(grep -c "killed by signal 9: starting another" "$SERVER_ERR")" = "$killed" ]'
    wait_until 10 workers_are "$WORKERS"
    ask a "after"
    [ "$ANSWER" = "$busy: after" ] || fail "$variant: the busy worker's client got '$ANSWER'"
    connect b
    ask b "new"
    [[ $ANSWER == Process-*": new" ]] && [ "${ANSWER%%: *}" != "$busy" ] ||
      fail "$variant: a new worker should answer, not '$ANSWER'"
    local new=${ANSWER%%: *}
    workers_pids | grep -qx "${new#Process-}" || fail "$variant: $new is no worker of the server"
    exec {a}>&- {b}>&-
    stop_server
  done
}

# ---- Prefork: a worker stopped with the accept lock ------------------------------------

# the_idle_one - the one worker waiting in poll() for a client: with an accept lock, the
# holder (the others wait in fcntl() or futex() for the lock). Its pid in IDLE.
the_idle_one() {
  local pid
  IDLE=
  for pid in $(workers_pids); do
    if grep -qE "^$SYS_POLL " "/proc/$pid/syscall" 2>/dev/null; then
      [ -z "$IDLE" ] || return 1
      IDLE=$pid
    fi
  done
  [ -n "$IDLE" ]
}

@test "prefork: a worker stopped while it holds the accept lock is killed and replaced; one stopped otherwise is left alone" {
  need_syscall_numbers
  local lock
  for lock in file mutex; do
    start_variant "prefork --accept-lock $lock"
    wait_until 5 the_idle_one || fail "$lock: no one worker in poll(): $(workers_pids)"
    kill -STOP "$IDLE"
    wait_until 5 grep -q "^worker Process-$IDLE is stopped, holding the accept lock: killing it$" \
      "$SERVER_ERR" || fail "$lock: the stopped holder was not seen: $(cat "$SERVER_ERR")"
    round_trip "served meanwhile"
    wait_until 5 none_alive "$IDLE" || fail "$lock: the stopped holder is still there"
    wait_until 5 workers_are "$WORKERS"
    stop_server
  done
  # A worker stopped while it serves a client holds up that client alone: left alone.
  start_variant "prefork --accept-lock mutex" "$STEP6/threadname"
  connect a
  ask a "before"
  local busy=${ANSWER%%: *}
  kill -STOP "${busy#Process-}"
  connect b
  ask b "meanwhile"
  [[ $ANSWER == Process-*": meanwhile" ]] || fail "the others did not serve: '$ANSWER'"
  kill -CONT "${busy#Process-}"
  ask a "after"
  [ "$ANSWER" = "$busy: after" ] || fail "the stopped worker's client got '$ANSWER'"
  exec {a}>&- {b}>&-
  stop_server
  no_errors
  # Without a lock, a stopped worker holds nobody up, and is left alone.
  start_variant "prefork --accept-lock none"
  local stopped
  stopped=$(workers_pids | head -n 1)
  kill -STOP "$stopped"
  chats_answered a b
  kill -CONT "$stopped"
  for name in a b; do let_go "$name"; done
  stop_server
  no_errors
}

# parent_killed ARGS... - upper --mode prefork ARGS (--workers 3) is served, then its
# parent is SIGKILLed: every worker ends within the deadline (the children's pipe, its
# end in the parent closed by the kernel, wakes them), and a new server binds the address.
parent_killed() {
  start_variant "prefork $*"
  local workers port=(--port "$SERVER_PORT") address=(--port "$SERVER_PORT")
  [[ " $* " != *" --unix "* ]] || port=() address=(--unix "$SERVER_ADDR")
  run timeout $((5 * DEADLINE_SCALE)) "$CLIENT" "${address[@]}" chat <<<"before"
  assert_output "recv from server: BEFORE"
  workers=$(workers_pids)
  kill -KILL "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  # shellcheck disable=SC2086 # the pids, word-split on purpose
  wait_until 5 none_alive $workers || {
    ps -o pid,stat,wchan:20,args -p "${workers//$'\n'/,}" >&2
    kill -KILL $workers
    fail "$*: workers outlived their parent"
  }
  start_server "$UPPER" --mode prefork "$@" "${port[@]}"
  run timeout $((5 * DEADLINE_SCALE)) "$CLIENT" "${address[@]}" chat <<<"after"
  assert_output "recv from server: AFTER"
  stop_server
}
none_alive() {
  local pid
  for pid in "$@"; do ! kill -0 "$pid" 2>/dev/null || return 1; done
}

@test "prefork: a SIGKILLed parent's workers end, with every accept lock and on --unix; a restart binds" {
  local lock
  for lock in none file mutex; do
    parent_killed --accept-lock "$lock"
  done
  parent_killed --unix "$BATS_TEST_TMPDIR/prefork.sock"
}

# ---- Names ----------------------------------------------------------------------------

@test "threadname: pool workers are Thread-1 to Thread-3, and a 4th client gets one of them" {
  for variant in "pool --accept-by workers" "pool --accept-by main"; do
    start_variant "$variant" "$STEP6/threadname"
    local names=() name
    for name in a b c; do
      connect "$name"
      ask "$name" "hi"
      names+=("${ANSWER%%: *}")
    done
    [ "$(printf '%s\n' "${names[@]}" | sort | tr '\n' ' ')" = "Thread-1 Thread-2 Thread-3 " ] ||
      fail "$variant: ${names[*]}"
    exec {b}>&-
    connect d
    ask d "later"
    [[ $ANSWER =~ ^Thread-[123]": later"$ ]] || fail "$variant: the 4th got '$ANSWER'"
    exec {a}>&- {c}>&- {d}>&-
    stop_server
  done
}

@test "threadname: prefork workers are Process-PID, the pids of the server's children" {
  start_variant "prefork --accept-lock none" "$STEP6/threadname"
  connect a
  ask a "hi"
  [[ $ANSWER =~ ^Process-([0-9]+)": hi"$ ]] || fail "'$ANSWER'"
  workers_pids | grep -qx "${BASH_REMATCH[1]}" || fail "${BASH_REMATCH[1]} is no worker"
  exec {a}>&-
  stop_server
}

@test "--log-worker: every log line but the ready line starts with the worker's name" {
  local mode want
  for mode in sync threading forking "prefork --workers 2" "pool --workers 2"; do
    # shellcheck disable=SC2086
    start_server "$STEP6/upper" --mode $mode --log-worker
    round_trip "hello"
    wait_for_log " disconnected$"
    case $mode in
    sync) want="MainThread" ;;
    threading | pool*) want="Thread-[0-9]+" ;;
    *) want="Process-[0-9]+" ;;
    esac
    local re="^$want: 127\.0\.0\.1:[0-9]+ (connected|wrote: hello|disconnected)$"
    [ "$(head -n 1 "$SERVER_LOG")" = "serving on $SERVER_ADDR" ] || fail "$mode: the ready line"
    [ "$(tail -n +2 "$SERVER_LOG" | grep -cvE "$re")" = 0 ] ||
      fail "$mode: lines without '$want: ': $(cat "$SERVER_LOG")"
    log_count_is "$re" 3 || fail "$mode: $(cat "$SERVER_LOG")"
    # One worker logs the whole session.
    [ "$(tail -n +2 "$SERVER_LOG" | cut -d: -f1 | sort -u | wc -l)" = 1 ] || fail "$mode: $(cat "$SERVER_LOG")"
    stop_server
  done
  start_server "$STEP6/upper" --mode pool
  round_trip "plain"
  wait_for_log "^127\.0\.0\.1:[0-9]+ disconnected$" # without it, no name
  stop_server
  # A refusal names the worker that refused too.
  start_server "$STEP6/upper" --mode pool --workers 2 --log-worker --allow 10.0.0.0/8
  run "$CLIENT" --port "$SERVER_PORT" <<<"outsider"
  wait_for_log "^Thread-[0-9]+: 127\.0\.0\.1:[0-9]+ refused: not in --allow$"
  stop_server
}

# ---- The log, written by many processes --------------------------------------------------

# log_lines_whole - every line of the log is one of the server's lines, from its start: a
# line written in pieces would be cut into by another process's, and leave one line with
# two starts and one that begins with a client's bytes.
log_lines_whole() {
  local start='127\.0\.0\.1:[0-9]+ (connected|disconnected|wrote: )'
  # (bytes, not characters: a client's bytes are no UTF-8)
  run env LC_ALL=C grep -avcE "^(serving on |$start)" "$SERVER_LOG"
  assert_output 0
  run env LC_ALL=C grep -acE ".$start" "$SERVER_LOG"
  assert_output 0
}

@test "forking and prefork: long messages from 16 clients at once, every log line whole" {
  protocol_only
  local mode
  for mode in "forking" "prefork --workers 16"; do
    # shellcheck disable=SC2086 # the mode is its options, word-split on purpose
    start_server "$UPPER" --mode $mode
    run client bench -c 16 -n 10 -s 12000
    assert_success
    stop_server
    log_lines_whole
    assert_equal "$(log_count " connected$")" 16
    run env LC_ALL=C grep -acE " wrote: .*\[\.\.\. [0-9]+ more bytes\]$" "$SERVER_LOG"
    [ "$output" -gt 0 ] || fail "$mode: no line was cut"
  done
}

# ---- Every program, and a Unix socket --------------------------------------------------

@test "pools: callcenter, ftpserver and upper on a Unix socket serve in both mix-ins" {
  local mode path="$BATS_TEST_TMPDIR/pool.sock"
  for mode in prefork pool; do
    start_server "$STEP6/callcenter" --mode "$mode"
    run timeout $((5 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" --recv-first chat <<<"0"
    assert_line --index 0 --partial "10086"
    assert_line --index 1 --partial "录音"
    stop_server
    mkdir -p "$BATS_TEST_TMPDIR/up"
    start_server "$STEP6/ftpserver" --mode "$mode" --dir "$BATS_TEST_TMPDIR/up"
    printf 'bytes of %s\n' "$mode" >"$BATS_TEST_TMPDIR/sent"
    (cd "$BATS_TEST_TMPDIR" && timeout $((5 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" \
      put sent --as "$mode.txt" >/dev/null) || fail "$mode: put failed"
    cmp "$BATS_TEST_TMPDIR/sent" "$BATS_TEST_TMPDIR/up/$mode.txt"
    stop_server
    start_server "$STEP6/upper" --mode "$mode" --unix "$path"
    run timeout $((5 * DEADLINE_SCALE)) "$CLIENT" --unix "$path" chat <<<"over unix"
    assert_output "recv from server: OVER UNIX"
    stop_server
    [ ! -e "$path" ] || fail "$mode: the socket file was left behind"
  done
}

# ---- The command line -------------------------------------------------------------------

# refused ARGS... - upper ARGS exits 2, with nothing on stdout and the usage on stderr
# after a line naming the problem.
refused() {
  run --separate-stderr timeout $((5 * DEADLINE_SCALE)) "$STEP6/upper" --port 0 "$@"
  [ "$status" = 2 ] || fail "$*: status $status, stdout: $output"
  [ -z "$output" ] || fail "$*: stdout: $output"
  [[ "$stderr" == *"upper: "*"usage: "* ]] || fail "$*: $stderr"
}

@test "prefork: an accept lock file that cannot be made is said as such, not as 'cannot bind'" {
  local dir="$BATS_TEST_TMPDIR/missing"
  run --separate-stderr env TMPDIR="$dir" "$STEP6/upper" --mode prefork --accept-lock file --port 0
  assert_equal "$status" 1
  assert_equal "$stderr" "cannot make the accept lock file in $dir: No such file or directory"
}

@test "pools: --help names the modes and options; bad values and misfits are usage errors" {
  run "$STEP6/upper" --help
  assert_success
  for word in "prefork" "pool" "--workers N" "--accept-lock LOCK" "--accept-by WHO" \
    "--log-worker" "not with --udp" "most 256"; do
    assert_output --partial -- "$word"
  done
  while read -r line; do
    # shellcheck disable=SC2086 # each line is a command line
    refused $line
    case $line in
    *--udp* | *--max-* | "--workers 2" | *"sync --accept"* | *"--mode pool --accept-lock"* | *"prefork --accept-by"*)
      [[ $stderr == *" is for "* || $stderr == *"serve streams"* ]] || fail "$line: no misfit said: $stderr" ;;
    *) [[ $stderr == *"bad value for --"* ]] || fail "$line: $stderr" ;;
    esac
  done <<'ARGS'
--mode prefork --workers 0
--mode pool --workers 1x
--mode pool --workers -1
--mode prefork --workers 257
--mode pool --workers 1000000
--mode prefork --accept-lock semaphore
--mode pool --accept-by nobody
--mode pools
--mode prefork --udp
--mode pool --udp
--mode prefork --unix /tmp/x --udp
--mode prefork --max-children 3
--mode pool --max-clients 3
--workers 2
--mode sync --accept-lock file
--mode pool --accept-lock file
--mode prefork --accept-by main
ARGS
  run --separate-stderr "$STEP6/callcenter" --mode prefork --workers 2 --accept-by main
  [ "$status" = 2 ] && [[ $stderr == *"--accept-by is for --mode pool"* ]] || fail "$stderr"
}
