#!/usr/bin/env bash
# make step6 - the framework: one handler, three modes; then the Python articles' programs,
# and the two pools beyond Python's socketserver.
# tests/demo/step6.sh PART runs one part alone (upper, callcenter, ftpserver,
# threadname, pools), as TUTORIAL.md shows each next to its program; no argument runs
# them all.
. "$(dirname "$0")/lib.sh"
PARTS="upper callcenter ftpserver threadname pools"
ONLY=${1:-}
[ -z "$ONLY" ] || [[ " $PARTS " == *" $ONLY "* ]] || fail "usage: step6.sh [$(tr ' ' '|' <<<"$PARTS")]"

# The demo runs in its own folder, where the programs and the client are reached by the
# paths the transcript shows, and the file server's ./file_upload is thrown away after.
cd "$DEMO_DIR" || fail "no demo folder"
ln -s "$LAB/step6_socketserver" step6_socketserver
ln -s "$LAB/tests" tests

children_are() { [ "$(ps -o pid= --ppid "$SERVER_PID" | wc -l)" = "$1" ]; }
threads_are() { [ "$(awk '/^Threads:/ {print $2}' "/proc/$SERVER_PID/status")" = "$1" ]; }

# three_clients MODE NAME... - three clients connect one after the other and each says
# a line, all staying connected. In sync mode the second and third wait for the ones
# before them; in the other modes all three are answered at once. Then they leave.
three_clients() {
  local mode=$1 i
  shift
  for i in 1 2 3; do
    start_background "${!i}" tests/client --port "$PORT" --reply-timeout 1
    feed "${!i}" "hello from ${!i}"
    if [ "$mode" = sync ] && [ "$i" != 1 ]; then
      show_output "${!i}" "no reply"
    else
      show_output "${!i}" "recv from server"
      show_log "wrote: hello from ${!i}$"
    fi
  done
  case $mode in
  sync) say "$2 and $3 wait in the listen queue: one client at a time." ;;
  threading)
    wait_for 10 threads_are 4
    say "The server runs 4 threads now: the serving loop and one per client." ;;
  forking)
    wait_for 10 children_are 3
    say "The server has 3 child processes now, one per client." ;;
  esac
  for i in 1 2 3; do
    finish "${!i}"
    local next=$((i + 1))
    if [ "$mode" = sync ] && [ "$i" != 3 ]; then # the next one is served now
      show_log "wrote: hello from ${!next}$"
      show_output "${!next}" "recv from server"
    else
      show_log "disconnected$" "$i"
    fi
  done
}

upper() {
  say "The upper-case echo with --mode sync: three clients at once."
  start_server step6_socketserver/upper --mode sync
  three_clients sync A B C
  stop_server
  blank
  say "The same handler with --mode threading."
  start_server step6_socketserver/upper --mode threading
  three_clients threading D E F
  stop_server
  blank
  say "And with --mode forking."
  start_server step6_socketserver/upper --mode forking
  three_clients forking G H I
  stop_server
}

callcenter() {
  say "The call-center article's 10086 line, called by the article's own client (in Python 3)."
  start_server step6_socketserver/callcenter
  printf "\$ printf '1001\\\\n0\\\\nexit\\\\n' | python3 tests/articles/callcenter_client.py 127.0.0.1 %s\n" "$PORT"
  printf '1001\n0\nexit\n' | python3 tests/articles/callcenter_client.py 127.0.0.1 "$PORT"
  printf '\n' # the client's last prompt ends without one
  show_log "disconnected$"
  stop_server
}

ftpserver() {
  say "The upload article's file server. The article's put client sends struct.pack('i', len),"
  say "a JSON header and the bytes, and never reads the reply; tests/client reads it."
  start_server step6_socketserver/ftpserver
  seq 1 20000 >numbers.txt
  printf '$ seq 1 20000 >numbers.txt\n'
  printf '$ python3 tests/articles/put_client.py 127.0.0.1 %s numbers.txt\n' "$PORT"
  python3 tests/articles/put_client.py 127.0.0.1 "$PORT" numbers.txt
  show_log_through "ok: numbers.txt"
  skip_log_through "(disconnected|reset)$"
  say "The article's client hangs up without reading the reply. The server logs that as"
  say "disconnected, or as reset when the reply reached the client before its close():"
  say "which one depends on timing, so that line is left out here."
  client get numbers.txt -o copy.txt
  show_log_through "disconnected$"
  printf '$ cmp numbers.txt copy.txt && ls file_upload\n'
  cmp numbers.txt copy.txt && ls file_upload
  say "A name that would climb out of file_upload is refused, and nothing is stored."
  client put numbers.txt --as ../numbers.txt
  show_log_through "disconnected$"
  stop_server
}

threadname() {
  say "The thread-name article: which thread answers? Its three clients, one after another."
  say "(The server's log is left out here: its threads write it in the order they run.)"
  for mode in threading sync; do
    start_server step6_socketserver/threadname --mode "$mode"
    printf '$ python3 tests/articles/threadname_clients.py 127.0.0.1 %s\n' "$PORT"
    python3 tests/articles/threadname_clients.py 127.0.0.1 "$PORT"
    for client in 1 2 3; do skip_log_through "disconnected$"; done
    stop_server
    blank
  done
  say "Threads are numbered as Python numbers them, one per client; in sync mode the"
  say "main thread answers everyone. (With --mode forking each client has a process of"
  say "its own. Python would say MainThread there; the lab names it Process-PID.)"
}

# ---- pools: a bounded number of workers ----------------------------------------------

# Which pool worker takes which client is the scheduler's choice, and a prefork worker's
# name holds its pid: the log is shown with the worker's number as "?" (Thread-?,
# Process-?), and what the names must be is checked on the real log instead.
# (Never in a pipe: the function must run in this shell, which keeps count of the lines
# shown.)
masked() {
  "$@" >"$DEMO_DIR/shown"
  sed -E 's/^(server\| (Thread|Process))-[0-9]+:/\1-?:/' "$DEMO_DIR/shown"
}
show_log_masked() { masked show_log "$@"; }

# worker_of NAME - the worker that logged "wrote: hello from NAME".
worker_of() { sed -nE "s/^([A-Za-z]+-[0-9]+): .* wrote: hello from $1\$/\1/p" "$DEMO_DIR/server.log"; }

# join_pool NAME - a client connects, says hello and stays; its worker answers it.
join_pool() {
  start_background "$1" tests/client --port "$PORT" --reply-timeout 1
  feed "$1" "hello from $1"
  show_output "$1" "recv from server"
  show_log_masked "wrote: hello from $1$"
}

pools() {
  say "Beyond Python: a pool of three worker threads (Stevens' serv07), which take"
  say "turns at accept() and each serve a client to its end."
  start_server step6_socketserver/upper --mode pool --workers 3 --log-worker
  wait_for 10 threads_are 4
  say "Before any client: 4 threads, the main one and the 3 workers."
  local name
  for name in A B C; do join_pool "$name"; done
  [ "$(for name in A B C; do worker_of "$name"; done | sort -u | wc -l)" = 3 ] ||
    fail "A, B and C were not served by three workers"
  say "A, B and C are served by three different workers, Thread-1 to Thread-3."
  start_background D tests/client --port "$PORT" --reply-timeout 1
  feed D "hello from D"
  show_output D "no reply"
  threads_are 4 || fail "the pool grew for D"
  log_has " connected$" 4 && fail "D was taken by a worker"
  say "D is connected (the kernel completed its handshake) but waits in the backlog:"
  say "no worker is free, and none is made. Still 4 threads. Then B leaves."
  local b_worker
  b_worker=$(worker_of B)
  finish B
  show_log_masked "wrote: hello from D$"
  show_output D "recv from server"
  [ "$(worker_of D)" = "$b_worker" ] || fail "D was not served by B's worker"
  threads_are 4 || fail "the pool grew"
  say "D is served by the worker B had, and the pool is still 3 workers."
  local left=1
  for name in A C D; do
    finish "$name"
    left=$((left + 1))
    show_log_masked "disconnected$" "$left"
  done
  masked stop_server
  blank
  say "A pool of three processes (Stevens' serv03): each in turn waits for a client and"
  say "accepts it, under a lock on a file; the log names them Process-PID, with the worker's pid."
  start_server step6_socketserver/upper --mode prefork --workers 3 --accept-lock file --log-worker
  wait_for 10 children_are 3
  printf '$ ps -o pid,ppid,comm --pid <server> --ppid <server>\n'
  ps -o pid,ppid,comm --pid "$SERVER_PID" --ppid "$SERVER_PID"
  chat "hello from E"
  show_log_masked "disconnected$"
  local worker
  worker=$(worker_of E)
  ps -o pid= --ppid "$SERVER_PID" | tr -d ' ' | grep -qx "${worker#Process-}" ||
    fail "$worker is no child of the server"
  say "Process-? is one of the 3 children above: its pid (the demo checks it)."
  masked stop_server
}

if [ -n "$ONLY" ]; then
  "$ONLY"
  exit 0
fi
say "Step 6: steps 1 to 5 as a framework with the shape of Python's socketserver."
say "A program is a handler; the mode, the socket and the rest are the framework's."
blank
first=yes
for part in $PARTS; do
  [ "$first" = yes ] || blank
  first=no
  "$part"
done
