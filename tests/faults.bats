#!/usr/bin/env bats
# passes: plain:6
# Faults: clients that reset at random points, half-close, trickle or never read; the
# descriptor table full; a forked child killed; for every server that serves many
# clients, and steps 1 and 2 one client at a time. What a step's own suite already
# proves is not repeated here (step 3's half-close, trickle and flood are in step3.bats,
# step 5's SIGKILLed child in step5.bats). SIGTERM under load is in
# faults_sigterm.bats, which the valgrind pass runs too.
#
# Not in the valgrind pass: the resets and the saturation measure time and CPU.

load helpers

STEP1=$LAB/step1_blocking/server
STEP2=$LAB/step2_loop/server
STEP3=$LAB/step3_select/server
STEP4=$LAB/step4_threading/server
STEP5=$LAB/step5_forking/server
UPPER=$LAB/step6_socketserver/upper

# in_send PID - a worker of PID (a thread other than its main one, or a child) is blocked
# sending: in send(), or in poll(), where steps 1 to 5 wait for room to send (their send()
# never blocks: MSG_DONTWAIT). With a flood the only client, a worker in poll() waits to
# send: the flood never stops sending, so a wait to read would end at once.
in_send() { blocked_in "$1" "$SYS_SENDTO" "$SYS_POLL"; }

# ---------------------------------------------------------------------------------------
# Resets at random points

# How a session's end is logged: step 1 closes after its one reply.
ENDED=" (reset|disconnected|closed by server)$"

# resets_survived CLIENTS BIN ARGS... - CLIENTS connections at once, each reset at a
# random point of a message (sent part way, replies unread or half read); every one is
# logged as ended, the server has given back every descriptor, thread and child, and
# serves the next client. The seed is random, and printed when the test fails.
resets_survived() {
  local clients=$1 sessions=$1 queued=0
  shift
  if [ "$1" = --queued ]; then queued=1 && shift; fi
  start_server "$@"
  local baseline seed=$RANDOM
  baseline=$(state)
  if [ "$queued" = 1 ]; then
    # A server of one client at a time, kept busy by a silent one: the resets reach the
    # others while they wait in the backlog, before the server has read a byte.
    hold_open busy
    wait_for_log " connected$"
    sessions=$((clients + 1))
  fi
  echo "misbehave resets --seed $seed" # shown if the test fails: the run can be repeated
  run misbehave resets -c "$clients" --seed "$seed" --read-for 1
  assert_success
  assert_output --regexp "^connected $clients"
  [ "$queued" = 0 ] || release busy
  # Every session ended, whatever the point of its reset; none was left hanging.
  wait_until 20 log_count_is "$ENDED" "$sessions" ||
    fail "$(log_count "$ENDED") of $sessions sessions ended: $(tail "$SERVER_LOG")"
  assert_equal "$(log_count " connected$")" "$sessions"
  [ "$(log_count " reset$")" -gt 0 ] || fail "no reset was logged"
  wait_until 10 state_is "$baseline" || fail "after the resets: $(state), before: $baseline"
  round_trip "still serving"
  no_errors
  stop_server
}

@test "faults: step 3: 50 clients reset at random points mid-message" {
  resets_survived 50 "$STEP3"
}

@test "faults: step 4: 50 clients reset at random points mid-message" {
  resets_survived 50 "$STEP4"
}

@test "faults: step 5: 50 clients reset at random points mid-message" {
  resets_survived 50 "$STEP5" --max-children 50
}

@test "faults: upper --mode threading: 50 clients reset at random points mid-message" {
  resets_survived 50 "$UPPER" --mode threading
}

@test "faults: upper --mode forking: 50 clients reset at random points mid-message" {
  resets_survived 50 "$UPPER" --mode forking --max-children 50
}

# Steps 1 and 2 serve one client at a time: the resets come while the clients wait.
@test "faults: upper --mode prefork (file lock): 50 clients reset at random points mid-message" {
  # Four workers: most of the resets reach clients still waiting in the backlog.
  resets_survived 50 "$UPPER" --mode prefork --workers 4 --accept-lock file
}

@test "faults: upper --mode pool (main accepts): 50 clients reset at random points mid-message" {
  resets_survived 50 "$UPPER" --mode pool --workers 4 --accept-by main
}

@test "faults: step 1: 10 clients reset at random points while they wait their turn" {
  resets_survived 10 --queued "$STEP1"
}

@test "faults: step 2: 10 clients reset at random points, one session at a time" {
  resets_survived 10 "$STEP2"
}

# ---------------------------------------------------------------------------------------
# Half-close after sending: every reply still delivered, then the server closes

# replies_after_halfclose BIN ARGS... - 100000 bytes, then shutdown(SHUT_WR); the path
# back is narrow and the client reads only once the server has read everything, end of
# stream included, so the server meets the end of stream with replies unsent.
replies_after_halfclose() {
  start_server "$@"
  run misbehave halfclose --bytes 100000 --narrow --wait-read
  assert_output "received all 100000 bytes, upper-cased" # and then end of stream
  assert_success
  wait_for_log " disconnected$"
  no_errors
  stop_server
}

@test "faults: step 2: a half-close after sending still gets every reply" {
  replies_after_halfclose "$STEP2"
}

@test "faults: step 4: a half-close after sending still gets every reply" {
  replies_after_halfclose "$STEP4"
}

@test "faults: step 5: a half-close after sending still gets every reply" {
  replies_after_halfclose "$STEP5"
}

@test "faults: upper (threading, forking, prefork, pool): a half-close after sending still gets every reply" {
  # (sync mode runs the same handler in the serving thread: upper's own suite covers it)
  local mode
  for mode in threading forking prefork pool; do
    replies_after_halfclose "$UPPER" --mode "$mode"
  done
}

@test "faults: step 1: a half-close after its one message still gets the reply" {
  # Step 1 answers one recv of at most 1024 bytes, then closes: the message fits.
  start_server "$STEP1"
  run bash -c "printf 'half closed\\n' | python3 '$MISBEHAVE' --port $SERVER_PORT halfclose"
  assert_output "HALF CLOSED"
  assert_success
  round_trip "next"
  stop_server
}

@test "faults: step 1: a reset in the middle of a message is survived" {
  start_server "$STEP1"
  # 256 KiB, never read: step 1 reads 1 KiB, replies, closes on the rest (the kernel
  # resets), and the client resets too; neither may cost the server.
  run misbehave reset --bytes $((256 << 10)) </dev/null
  assert_success
  round_trip "still serving"
  no_errors
  stop_server
}

# ---------------------------------------------------------------------------------------
# A trickling client, a client that never reads (steps 4 and 5; step 3's are in step3.bats)

# trickle_does_not_delay BIN ARGS...
trickle_does_not_delay() {
  start_server "$@"
  local text="one byte at a time, slowly"
  in_background trickle python3 "$MISBEHAVE" --port "$SERVER_PORT" trickle --gap 0.1 --text "$text"
  wait_until 10 output_of trickle "^trickling$"
  wait_for_log "wrote: o"
  round_trip "meanwhile"
  # The round trip came back while the trickle was still going.
  kill -0 "$BG_PID_trickle" || fail "the trickle had finished: nothing was shown"
  let_go trickle
  run cat "$BATS_TEST_TMPDIR/trickle.out"
  assert_line "recv: b'${text^^}'"
  no_errors
  stop_server
}

@test "faults: step 4: a client that trickles one byte at a time does not delay another" {
  trickle_does_not_delay "$STEP4"
}

@test "faults: step 5: a client that trickles one byte at a time does not delay another" {
  trickle_does_not_delay "$STEP5"
}

@test "faults: upper --mode prefork: a client that trickles one byte at a time does not delay another" {
  trickle_does_not_delay "$UPPER" --mode prefork --workers 2
}

@test "faults: upper --mode pool: a client that trickles one byte at a time does not delay another" {
  trickle_does_not_delay "$UPPER" --mode pool --workers 2 --accept-by workers
}

# slowloris MODE - ftpserver --mode MODE (a pool: prefork or pool) with 4 workers and --timeout 2: four clients send
# a header one byte every 1.5 s, each wait shorter than the timeout. They hold every
# worker, but only until the whole-header deadline (2 s): each is cut ("timed out"), and
# a fifth client, waiting in the backlog meanwhile, is answered.
slowloris() {
  local up="$BATS_TEST_TMPDIR/up" i
  start_server "$LAB/step6_socketserver/ftpserver" --dir "$up" --mode "$1" --workers 4 --timeout 2
  for i in 1 2 3 4; do
    in_background "slow$i" python3 "$MISBEHAVE" --port "$SERVER_PORT" trickle --frame \
      --gap 1.5 --text '{"cmd":"put","filename":"slow","filesize":1}'
  done
  wait_until 10 log_count_is " connected$" 4 || fail "the four did not get the four workers"
  printf 'fine' >"$BATS_TEST_TMPDIR/fine"
  run timeout $((10 * DEADLINE_SCALE)) "$CLIENT" --port "$SERVER_PORT" put "$BATS_TEST_TMPDIR/fine"
  assert_output '{"status":"ok","filename":"fine","filesize":4}'
  wait_until 5 log_count_is " timed out$" 4
  for i in 1 2 3 4; do
    wait_until 10 output_of "slow$i" "^cut after [0-9]+ bytes$"
    let_go "slow$i" || true # (it says so, with exit 1)
  done
  stop_server
}

@test "faults: ftpserver --mode prefork: four slowloris clients are cut at --timeout, a fifth is answered" {
  slowloris prefork
}

# never_reads BIN ARGS... - a client sends megabytes and reads nothing: its own thread or
# child blocks in send(), nobody else waits; when it hangs up (unread bytes: a reset),
# that thread or child is gone and everything is back at its baseline.
never_reads() {
  need_syscall_numbers
  start_server "$@"
  local baseline
  baseline=$(state)
  in_background flood python3 "$MISBEHAVE" --port "$SERVER_PORT" flood --bytes $((32 << 20))
  wait_until 30 output_of flood "^(blocked|sent all)"
  run cat "$BATS_TEST_TMPDIR/flood.out"
  assert_line --regexp "^blocked after [0-9]+ bytes$"
  wait_until 5 in_send "$SERVER_PID" || fail "no thread or child of the server is in send()"
  round_trip "not delayed"
  round_trip "still not delayed"
  let_go flood
  wait_for_log " reset$"
  wait_until 5 state_is "$baseline" || fail "after the flood: $(state), before: $baseline"
  round_trip "after the flood"
  no_errors
  stop_server
}

@test "faults: step 4: a client that never reads blocks its own thread only" {
  never_reads "$STEP4"
}

@test "faults: step 5: a client that never reads blocks its own child only" {
  never_reads "$STEP5"
}

@test "faults: upper --mode prefork: a client that never reads blocks its own worker only" {
  never_reads "$UPPER" --mode prefork --workers 2 --accept-lock mutex
}

@test "faults: upper --mode pool: a client that never reads blocks its own worker only" {
  never_reads "$UPPER" --mode pool --workers 2 --accept-by main
}

# ---------------------------------------------------------------------------------------
# The descriptor table full

# cpu_ticks - the server's user + system CPU time so far, all threads and the children
# it has now (a prefork server's workers), in clock ticks.
cpu_ticks() {
  local fields pid kids=() ticks=0
  read -ra kids <"/proc/$SERVER_PID/task/$SERVER_PID/children" || true # no newline at its end
  for pid in "$SERVER_PID" "${kids[@]}"; do
    read -ra fields < <(sed 's/.*) //' "/proc/$pid/stat")
    ticks=$((ticks + fields[11] + fields[12]))
  done
  echo "$ticks"
}

# saturated_for MS - MS have passed since SATURATED_AT and the server is still out of
# descriptors (clients wait in its backlog: /proc/net/tcp's listening socket shows them
# in its rx_queue).
backlog() {
  local queue
  queue=$(awk -v port="$(printf ':%04X' "$SERVER_PORT")" \
    'substr($2, length($2) - 4) == port && $4 == "0A" {split($5, q, ":"); print q[2]}' /proc/net/tcp)
  echo $((16#${queue:-0}))
}
backlog_is() { [ "$(backlog)" = "$1" ]; }
saturated_for() { [ $(($(now_ms) - SATURATED_AT)) -ge "$1" ] && [ "$(backlog)" -gt 0 ]; }

# does_not_spin [STILL] - over two seconds of saturation the server's CPU time grows by
# less than 20% of the wall time: it waits, it does not retry accept() in a loop. STILL MS
# says the two seconds have passed and the trouble lasts (saturated_for by default).
does_not_spin() {
  local ticks0 ticks1 hz wall_ms cpu_ms still=${1:-saturated_for}
  hz=$(getconf CLK_TCK)
  SATURATED_AT=$(now_ms)
  ticks0=$(cpu_ticks)
  wait_until 10 "$still" 2000 || fail "the trouble ended before two seconds"
  ticks1=$(cpu_ticks)
  wall_ms=$(($(now_ms) - SATURATED_AT))
  cpu_ms=$(((ticks1 - ticks0) * 1000 / hz))
  echo "saturated: ${cpu_ms} ms of CPU in ${wall_ms} ms" >&2
  [ $((cpu_ms * 5)) -lt "$wall_ms" ] || fail "the server spins: ${cpu_ms} ms of CPU in ${wall_ms} ms"
}

# keeper_answered - a chat client, the keeper, connected and answered once, before the
# table fills.
keeper_answered() {
  in_background keeper "$CLIENT" --port "$SERVER_PORT" chat
  say keeper "first"
  wait_until 5 output_of keeper "recv from server: FIRST"
}

# saturated_by N - N clients connect and hold on, more than the server's table takes:
# EMFILE is logged, the server does not spin, and the keeper is still answered.
saturated_by() {
  in_background holders python3 "$MISBEHAVE" --port "$SERVER_PORT" hold -c "$1"
  wait_until 10 output_of holders "^connected $1$"
  wait_until 10 grep -q "Too many open files" "$SERVER_ERR" || fail "no EMFILE logged"
  does_not_spin
  # The clients it has are still served.
  say keeper "while full"
  wait_until 5 output_of keeper "recv from server: WHILE FULL" || fail "the chat client was not answered"
}

# emfile_survived BIN ARGS... - the server runs under ulimit -n 32; a chat client is
# connected first, then 40 more hold connections open: the table fills, accept() fails
# with EMFILE, clients wait in the backlog. The server says so, does not spin, still
# answers the chat client, and when the 40 hang up (descriptors free up) it accepts what
# waited and serves a newcomer.
emfile_survived() {
  start_server "$BASH" -c 'ulimit -n 32 && exec "$@"' limit "$@"
  keeper_answered
  saturated_by 40
  crowd_gone_all_served
  stop_server
}

# crowd_gone_all_served - the holders hang up, descriptors free up: the server takes what
# waited in its backlog, a newcomer, and the keeper again.
crowd_gone_all_served() {
  let_go holders
  wait_until 10 backlog_is 0 || fail "clients still wait in the backlog: $(backlog)"
  round_trip "after the crowd"
  say keeper "still here"
  wait_until 5 output_of keeper "recv from server: STILL HERE"
}

@test "faults: step 3: descriptor table full (ulimit -n 32): EMFILE logged, no spin, recovers" {
  emfile_survived "$STEP3"
}

@test "faults: step 4: descriptor table full (ulimit -n 32): EMFILE logged, no spin, recovers" {
  emfile_survived "$STEP4"
}

@test "faults: upper --mode threading: descriptor table full (ulimit -n 32): EMFILE logged, no spin, recovers" {
  emfile_survived "$UPPER" --mode threading
}

# (40 workers, more than the table holds: a pool bounded by its descriptors, not its size.)
@test "faults: upper --mode pool --accept-by main: descriptor table full (ulimit -n 32): EMFILE logged, no spin, recovers" {
  emfile_survived "$UPPER" --mode pool --workers 40 --accept-by main
}

@test "faults: upper --mode pool --accept-by workers: descriptor table full (ulimit -n 32): EMFILE logged, no spin, recovers" {
  emfile_survived "$UPPER" --mode pool --workers 40 --accept-by workers
}

@test "faults: upper started with stdin and stderr closed: its EMFILE line does not stop it" {
  # A server must keep descriptors 0 to 2 taken: else its self-pipe lands on them, and the
  # first error line (which a crowd of clients can cause) is a stop request. Standard
  # output stays open here, for the ready line.
  start_server "$BASH" -c 'ulimit -n 24 && exec "$@" <&- 2>&-' limit "$UPPER"
  keeper_answered
  in_background holders python3 "$MISBEHAVE" --port "$SERVER_PORT" hold -c 40
  wait_until 10 output_of holders "^connected 40$"
  wait_until 10 eval '[ "$(backlog)" -gt 0 ]' || fail "the descriptor table never filled"
  crowd_gone_all_served
  stop_server
}

# ---------------------------------------------------------------------------------------
# Out of processes: fork() and pthread_create() fail

# out_of_processes MODE - upper --mode MODE --workers 4 runs with at most 3 tasks
# (RLIMIT_NPROC counts the processes and threads of its user, and root is exempt, so it
# runs as a user of its own that nothing else uses): 2 workers start, the third fails.
# The server serves with the 2, says so, and tries again after pauses that double (0.5,
# 1, 2 s): in two seconds 3 tries, where one each poll tick would be 5; it does not spin.
# Given more room, it starts the missing workers.
out_of_processes() {
  MODE=$1
  [ "$EUID" = 0 ] || skip "needs root, to run the server as a user of its own"
  local as_user=(setpriv --reuid=$((200000 + BASHPID)) --regid=65534 --clear-groups)
  start_server "${as_user[@]}" prlimit --nproc=3:64 "$UPPER" --mode "$MODE" --workers 4
  wait_until 5 grep -q "cannot start a worker" "$SERVER_ERR" || fail "$MODE: no failure said"
  does_not_spin two_seconds_passed
  run grep "cannot start a worker" "$SERVER_ERR"
  assert_line --index 0 "cannot start a worker: Resource temporarily unavailable (trying again in 500 ms)"
  assert_line --index 1 --partial "(trying again in 1000 ms)"
  [ "${#lines[@]}" -le 3 ] || fail "$MODE: ${#lines[@]} tries in two seconds: $output"
  round_trip "served by two"
  "${as_user[@]}" prlimit --pid "$SERVER_PID" --nproc=64:
  wait_until 10 workers_are 4 || fail "$MODE: the missing workers never started"
  stop_server
}
two_seconds_passed() { [ $(($(now_ms) - SATURATED_AT)) -ge "$1" ]; }
workers_are() {
  if [ "$MODE" = prefork ]; then children_are "$1"; else threads_are $(($1 + 1)); fi
}

@test "faults: upper --mode prefork: fork() fails (RLIMIT_NPROC): said, backs off, no spin, recovers" {
  out_of_processes prefork
}

@test "faults: upper --mode pool: pthread_create() fails (RLIMIT_NPROC): said, backs off, no spin, recovers" {
  out_of_processes pool
}

# lowest_free_fd [PID] - the lowest descriptor PID (the server) does not have open.
lowest_free_fd() {
  local fd=0
  while [ -e "/proc/${1:-$SERVER_PID}/fd/$fd" ]; do fd=$((fd + 1)); done
  echo "$fd"
}

@test "faults: step 5: descriptor table full (parent's limit lowered): EMFILE logged, no spin, recovers" {
  # The parent closes every client's socket once it has forked, so clients alone never
  # fill its table: its soft limit is lowered to the four it holds (stdin, stdout,
  # stderr, the listener, whatever it inherited) while a client is being served, then
  # raised again.
  start_server "$STEP5"
  keeper_answered
  # accept() takes the lowest free descriptor, and fails with EMFILE when that is not
  # below the soft limit.
  prlimit --pid "$SERVER_PID" --nofile="$(lowest_free_fd):"
  saturated_by 5
  prlimit --pid "$SERVER_PID" --nofile=1024:
  round_trip "after the limit rose"
  wait_until 5 log_count_is " connected$" 7 # the keeper, the five that waited, the newcomer
  let_go holders
  stop_server
}

@test "faults: upper --mode prefork: descriptor table full (workers' limits lowered): EMFILE logged, no spin, recovers" {
  # A worker holds one client at a time, so clients alone never fill its table: each
  # worker's soft limit is lowered to what it holds, while one of them serves a client.
  # The idle one waits in poll(), and its next accept() fails.
  start_server "$UPPER" --mode prefork --workers 2
  keeper_answered
  local workers worker
  workers=$(ps -o pid= --ppid "$SERVER_PID")
  for worker in $workers; do
    prlimit --pid "$worker" --nofile="$(lowest_free_fd "$worker"):"
  done
  saturated_by 3
  for worker in $workers; do prlimit --pid "$worker" --nofile=1024:; done
  # The idle worker takes a holder; once the holders hang up, it serves the rest and a
  # newcomer.
  wait_until 5 log_count_is " connected$" 2 || fail "no worker took a waiting client"
  let_go holders
  round_trip "after the limit rose"
  # the keeper, the three that waited, the newcomer
  wait_until 5 log_count_is " connected$" 5
  let_go keeper
  stop_server
}

@test "faults: upper --mode prefork: a worker pausing after EMFILE ends when its parent is killed" {
  # Seen once: the parent SIGKILLed, its worker went on retrying accept() at full speed,
  # for ever. Its pause polls the children's pipe, whose end in the parent is now closed.
  start_server "$UPPER" --mode prefork --workers 1
  local worker
  worker=$(ps -o pid= --ppid "$SERVER_PID" | tr -d ' ')
  prlimit --pid "$worker" --nofile="$(lowest_free_fd "$worker"):"
  in_background holder python3 "$MISBEHAVE" --port "$SERVER_PORT" hold -c 1
  wait_until 10 grep -q "Too many open files" "$SERVER_ERR" || fail "no EMFILE logged"
  kill -KILL "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  wait_until 5 eval '! kill -0 '"$worker"' 2>/dev/null' ||
    fail "the worker outlived its parent: $(ps -o pid,stat,etime,args -p "$worker")"
}

# ---------------------------------------------------------------------------------------
# A forked child killed (step 5's is in step5.bats)

@test "faults: upper --mode forking: a child killed with SIGKILL disturbs neither the parent nor the others" {
  start_server "$UPPER" --mode forking
  in_background victim "$CLIENT" --port "$SERVER_PORT" chat
  say victim "hello"
  wait_until 5 output_of victim "recv from server: HELLO"
  wait_until 5 children_are 1
  local child
  child=$(ps -o pid= --ppid "$SERVER_PID" | tr -d ' ')
  in_background a "$CLIENT" --port "$SERVER_PORT" chat
  say a "a first"
  wait_until 5 output_of a "recv from server: A FIRST"
  wait_until 5 children_are 2
  kill -KILL "$child"
  # The dead child is reaped within a poll interval; its client finds the connection closed.
  wait_until 5 children_are 1 || fail "the killed child was not reaped: $(ps -o pid=,stat= --ppid "$SERVER_PID")"
  assert_equal "$(server_zombies)" 0
  say victim "still there?"
  wait_until 5 output_of victim "^server closed the connection$"
  # The parent and the other client go on as if nothing happened.
  say a "a again"
  wait_until 5 output_of a "recv from server: A AGAIN"
  round_trip "newcomer"
  stop_server
}
