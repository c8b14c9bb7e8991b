#!/usr/bin/env bats
# passes: plain
# Stress: many connections at once, messages of random sizes, every byte checked; then
# the server is back where it started (descriptors, threads, children).
#
# In `make test` this runs small (200 connections x 20 messages of 1 B to 64 KiB, about
# 250 MB checked in all); `make stress` runs it at full size (1000 x 100, about 6.5 GB)
# by setting STRESS_CONNECTIONS and STRESS_MESSAGES. It is not in the valgrind pass (its
# name is not tests/step*.bats): valgrind would take hours over these bytes.
#
# Each test prints its figures (a line starting with "stress:") on the terminal.

load helpers

CONNECTIONS=${STRESS_CONNECTIONS:-200}
MESSAGES=${STRESS_MESSAGES:-20}
SIZES=${STRESS_SIZES:-1:65536}
SEED=${STRESS_SEED:-1}
TIMEOUT=${STRESS_TIMEOUT:-120} # seconds the bench may take before it fails, naming what is outstanding

# Every server, the bench and its 2 x CONNECTIONS descriptors need room: raise the soft
# limit (up to the hard one) and fail clearly when even that is too small.
# (1000 at least: the bounded pools' tests open that many.)
setup() {
  local want=$((CONNECTIONS > 1000 ? CONNECTIONS + 200 : 1200)) hard
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] ||
    fail "ulimit -Hn is $hard; $CONNECTIONS connections need $want descriptors"
  ulimit -Sn "$want" 2>/dev/null || [ "$(ulimit -Sn)" -ge "$want" ]
}

# start_quiet BIN ARGS... - start_server's work, but the log after its ready line is
# read and dropped: steps 3 to 5 log every recv (a `wrote:` line of up to 1 KiB), which
# at full size would be gigabytes on disk. Only the ready line reaches $SERVER_LOG; the
# figures come from the bench and /proc, errors from $SERVER_ERR, kept whole.
start_quiet() {
  local bin=$1
  shift
  SERVER_LOG="$BATS_TEST_TMPDIR/server.out"
  SERVER_ERR="$BATS_TEST_TMPDIR/server.err"
  [ -x "$bin" ] || fail "no server at $bin (run make)"
  : >"$SERVER_LOG" # (the reader below writes it in the background)
  "$bin" --port 0 "$@" </dev/null 2>"$SERVER_ERR" 3>&- \
    > >(exec 3>&-; IFS= read -r line; printf '%s\n' "$line" >"$SERVER_LOG"; exec cat >/dev/null) &
  SERVER_PID=$!
  wait_until 10 ready_line_seen || fail "no ready line from $bin: $(cat "$SERVER_ERR")"
  SERVER_ADDR=$(sed -n '1s/^serving on //p' "$SERVER_LOG")
  SERVER_PORT=${SERVER_ADDR##*:}
  SERVER_HOST=${SERVER_ADDR%:*}
}


# stress NAME CONNECTIONS BIN ARGS... - the load, the check of every byte, the figures,
# and the return to the state the server had before the load.
stress() {
  local name=$1 connections=$2 bin=$3
  shift 3
  start_quiet "$bin" "$@"
  local baseline
  baseline=$(state)
  run --separate-stderr "$CLIENT" --port "$SERVER_PORT" bench -c "$connections" \
    -n "$MESSAGES" --random-size "$SIZES" --seed "$SEED" --timeout "$TIMEOUT"
  local summary=$output
  [ "$status" -eq 0 ] || fail "bench exit $status: $output $stderr"
  [[ $summary == *"connections=$connections messages=$((connections * MESSAGES)) "*" errors=0 "* ]] ||
    fail "summary: $summary"
  # bench's bytes count the payload both ways; every byte that came back was checked.
  local bytes seconds
  bytes=$(sed -E 's/.* bytes=([0-9]+) .*/\1/' <<<"$summary")
  seconds=$(sed -E 's/.* seconds=([0-9.]+) .*/\1/' <<<"$summary")
  printf 'stress: %-22s connections=%d messages=%d sizes=%s bytes_checked=%d seconds=%s errors=0\n' \
    "$name" "$connections" "$((connections * MESSAGES))" "$SIZES" "$((bytes / 2))" "$seconds" >&3
  # Everything handed back: descriptors, threads, children (zombies count as children).
  wait_until 10 state_is "$baseline" || fail "after the load: $(state), before: $baseline"
  [ ! -s "$SERVER_ERR" ] || fail "the server's stderr: $(cat "$SERVER_ERR")"
  stop_server
}

@test "stress: step 3 (select), every byte checked, back to baseline" {
  stress step3_select "$CONNECTIONS" "$LAB/step3_select/server"
}

@test "stress: step 4 (a thread per client), every byte checked, back to baseline" {
  stress step4_threading "$CONNECTIONS" "$LAB/step4_threading/server"
}

@test "stress: step 5 (a child per client), every byte checked, back to baseline" {
  # --max-children as many as the connections: all of them served at once.
  stress step5_forking "$CONNECTIONS" "$LAB/step5_forking/server" --max-children "$CONNECTIONS"
}

@test "stress: step 6 upper --mode threading, every byte checked, back to baseline" {
  stress upper-threading "$CONNECTIONS" "$LAB/step6_socketserver/upper" --mode threading
}

@test "stress: step 6 upper --mode forking, every byte checked, back to baseline" {
  stress upper-forking "$CONNECTIONS" "$LAB/step6_socketserver/upper" --mode forking \
    --max-children "$CONNECTIONS"
}

@test "stress: step 6 upper --mode prefork (4 workers, file lock), every byte checked, back to baseline" {
  # The clients beyond the four being served wait in the backlog, and are served in turn.
  stress upper-prefork "$CONNECTIONS" "$LAB/step6_socketserver/upper" --mode prefork \
    --workers 4 --accept-lock file
}

@test "stress: step 6 upper --mode pool (4 threads, main accepts), every byte checked, back to baseline" {
  stress upper-pool "$CONNECTIONS" "$LAB/step6_socketserver/upper" --mode pool \
    --workers 4 --accept-by main
}

# sample PID PROGRAM - one line: PID's threads, and its children that run PROGRAM.
sample() {
  local tasks kids=() kid comm workers=0
  tasks=("/proc/$1/task"/*)
  [ -r "/proc/$1/task/$1/children" ] || return 0
  read -ra kids <"/proc/$1/task/$1/children" || true # (the list ends with no newline)
  for kid in "${kids[@]}"; do
    read -r comm <"/proc/$kid/comm" 2>/dev/null && [ "$comm" = "$2" ] && workers=$((workers + 1))
  done
  echo "${#tasks[@]} $workers"
}

# bounded NAME WORKERS BIN ARGS... - 1000 clients connect at once, each then makes 20
# round trips. While they do, the server's threads and its worker children (children
# running the server's program: the log's reader is a child too) are sampled; neither
# count may pass the WORKERS the pool started with, and every client is served.
bounded() {
  local name=$1 workers=$2 bin=$3 connections=1000
  shift 3
  start_quiet "$bin" "$@"
  local baseline samples="$BATS_TEST_TMPDIR/samples" program
  baseline=$(state)
  program=$(basename "$bin")
  # A measurement, not a wait: the sampler runs for as long as the load does, with
  # builtins alone, so that it samples often.
  (while kill -0 "$SERVER_PID" 2>/dev/null; do
    sample "$SERVER_PID" "$program"
  done >"$samples") 3>&- &
  local sampler=$!
  run --separate-stderr "$CLIENT" --port "$SERVER_PORT" bench -c "$connections" -n 20 \
    -s 64 --timeout "$TIMEOUT"
  local summary=$output
  kill "$sampler" && wait "$sampler" || true
  [ "$status" -eq 0 ] || fail "bench exit $status: $output $stderr"
  [[ $summary == *"connections=$connections messages=$((connections * 20)) "*" errors=0 "* ]] ||
    fail "summary: $summary"
  local count peak_threads peak_children
  count=$(wc -l <"$samples")
  peak_threads=$(awk '$1 > max { max = $1 } END { print max + 0 }' "$samples")
  peak_children=$(awk '$2 > max { max = $2 } END { print max + 0 }' "$samples")
  printf 'stress: %-22s connections=%d samples=%d peak_threads=%d peak_worker_children=%d\n' \
    "$name" "$connections" "$count" "$peak_threads" "$peak_children" >&3
  [ "$count" -ge 10 ] || fail "only $count samples were taken"
  case " $* " in
  *" --mode pool "*) [ "$peak_threads" -le $((workers + 1)) ] && [ "$peak_children" = 0 ] ;;
  *) [ "$peak_threads" = 1 ] && [ "$peak_children" -le "$workers" ] ;;
  esac || fail "$workers workers grew to $peak_threads threads and $peak_children children"
  wait_until 10 state_is "$baseline" || fail "after the load: $(state), before: $baseline"
  [ ! -s "$SERVER_ERR" ] || fail "the server's stderr: $(cat "$SERVER_ERR")"
  stop_server
}

@test "stress: pool of 4 threads, 1000 clients at once: never more than 4 workers + main, none lost" {
  bounded upper-pool-bounded 4 "$LAB/step6_socketserver/upper" --mode pool --workers 4
}

@test "stress: prefork of 4 processes, 1000 clients at once: never more than 4 children, none lost" {
  bounded upper-prefork-bounded 4 "$LAB/step6_socketserver/upper" --mode prefork --workers 4
}

@test "stress: step 6 upper --mode sync, one connection at a time (it serves no more)" {
  # Sync mode serves one client until it hangs up: a thousand connections at once would
  # only queue in the backlog, so it takes the same messages on a single connection.
  stress upper-sync 1 "$LAB/step6_socketserver/upper" --mode sync
}
