#!/usr/bin/env bash
# What hurts a pool, for the tutorial's pools chapter: clients that send slowly, and a
# worker stopped while it holds the accept lock.
. "$(dirname "$0")/lib.sh"

# As in step6.sh: in the demo's own folder, where the file server's upload goes.
cd "$DEMO_DIR" || fail "no demo folder"
ln -s "$LAB/step6_socketserver" step6_socketserver
ln -s "$LAB/tests" tests

# A prefork worker's name and a client's port differ on every run: both are shown as ?.
mask() { sed -E 's/Process-[0-9]+/Process-?/; s/127\.0\.0\.1:[0-9]+/127.0.0.1:?/'; }
show_log_masked() {
  show_log "$@" >"$DEMO_DIR/shown"
  mask <"$DEMO_DIR/shown"
}

# show_matching PATTERN COUNT - wait for COUNT log lines matching PATTERN, and show them
# alone: how the slow clients' bytes and the others' lines interleave differs every run.
show_matching() {
  wait_for 10 log_has "$1" "$2"
  grep -E -- "$1" "$DEMO_DIR/server.log" | mask | sed 's/^/server| /'
}

# stop_quietly - stop_server, showing the command and the exit status only.
stop_quietly() {
  stop_server >"$DEMO_DIR/stopped"
  sed -n '1p;$p' "$DEMO_DIR/stopped"
}

# trickle NAME TEXT [--frame] - a client that sends TEXT a byte every 0.6 s, in the background.
trickle() {
  start_background "$1" python3 tests/tools/misbehave.py --port "$PORT" trickle --gap 0.6 \
    --text "$2" "${@:3}"
  show_output "$1" "trickling"
}

slow() {
  say "A pool of 2 workers, each closing a client silent for a second (--timeout 1)."
  start_server step6_socketserver/upper --mode pool --workers 2 --timeout 1
  say "Two clients send a byte every 0.6 s: never silent for a second, and each byte is"
  say "a message the worker answers. Both workers are theirs for as long as they go on."
  trickle S1 "slowly, slowly"
  trickle S2 "slowly, slowly"
  show_matching " connected$" 2
  start_background A tests/client --port "$PORT" --reply-timeout 1
  feed A "hello"
  show_output A "no reply"
  say "A waits in the backlog: the pool has no worker left, and makes none. A thread per"
  say "client (--mode threading) would serve A at once, for one more thread; step 3's"
  say "loop, for a few bytes of buffer. In a fixed pool every slow client takes a whole"
  say "worker, and N of them take the server."
  stop_quietly
  finish A
  finish S1
  finish S2
  blank
  say "The file server asks more: a command's header must come whole within --timeout."
  start_server step6_socketserver/ftpserver --mode prefork --workers 2 --timeout 1
  trickle S3 '{"cmd":"put","filename":"slow","filesize":1}' --frame
  trickle S4 '{"cmd":"put","filename":"slow","filesize":1}' --frame
  show_matching " connected$" 2
  printf 'fine\n' >fine
  client put fine
  show_matching " timed out$" 2
  say "Both headers were cut a second after they began, though no gap was a second"
  say "long; the put waited until a worker was free, and was served."
  finish S3
  finish S4
  stop_quietly
}

# accept_lock_holder - the pid of the worker holding the server's file lock, as
# /proc/locks names it ("1: POSIX ADVISORY WRITE PID ..."); nothing if none holds it.
accept_lock_holder() {
  local pid
  for pid in $(ps -o pid= --ppid "$SERVER_PID"); do
    awk -v pid="$pid" '$2 == "POSIX" && $5 == pid {found = 1} END {exit !found}' /proc/locks &&
      echo "$pid"
  done
}
holder_known() {
  HOLDER=$(accept_lock_holder)
  [ -n "$HOLDER" ]
}

stopped() {
  say "Two workers taking turns at accept() under a file lock (Stevens' serv03)."
  start_server step6_socketserver/upper --mode prefork --workers 2 --accept-lock file
  wait_for 10 holder_known
  printf '$ kill -STOP <the worker holding the lock>\n'
  kill -STOP "$HOLDER"
  say "In serv03 the other worker would now wait for the lock as long as this one stays"
  say "stopped, and every client in the backlog with it. The parent sees a stopped worker"
  say "holding the lock, kills it (the kernel frees its lock) and starts another:"
  show_log_masked "starting another$"
  chat "hello"
  stop_server
}

slow
blank
stopped
