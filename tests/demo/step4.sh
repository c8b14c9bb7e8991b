#!/usr/bin/env bash
# make step4 - a thread per client: the blog's three clients at once, seen from /proc.
. "$(dirname "$0")/lib.sh"

# threads_are N - the server's thread count, from /proc, is N.
threads_are() { [ "$(awk '/^Threads:/ {print $2}' "/proc/$SERVER_PID/status")" = "$1" ]; }

# show_threads - the kernel's view of the server: how many threads, and their names
# (set with pthread_setname_np), in the order they were created.
show_threads() {
  printf '$ grep Threads /proc/<server>/status\n'
  grep '^Threads:' "/proc/$SERVER_PID/status"
  printf '$ cat /proc/<server>/task/*/comm\n'
  local task
  for task in $(ls "/proc/$SERVER_PID/task" | sort -n); do
    cat "/proc/$SERVER_PID/task/$task/comm"
  done
}

say "Step 4: every client gets a thread of its own. The accept loop waits in poll()"
say "at most one poll interval (0.5 s), then joins the threads that have finished."
start_server step4_threading/server
blank

say "Three clients connect, one after the other, and stay connected."
for n in 1 2 3; do
  start_background "client$n" tests/client --port "$PORT"
  show_log "^Thread-$n: .* connected$"
done
blank

say "All three are connected at once, and each is answered at once."
for n in 1 2 3; do
  feed "client$n" "from client$n"
  show_output "client$n" "FROM CLIENT$n"
  show_log "^Thread-$n: .* wrote: from client$n$"
done
blank

say "The system's view while they are connected: the main thread and one per client."
show_threads
blank

say "The clients leave, and each thread ends with its client. \"Threads: 1\" shows they"
say "have ended; that each was also joined, /proc cannot show (valgrind can)."
for n in 1 2 3; do
  finish "client$n"
  show_log "^Thread-$n: .* disconnected$"
done
wait_for 10 threads_are 1
show_threads
blank

say "A fourth client is connected and idle when the server is told to stop: Thread-4's"
say "wait sees the stop pipe too, so its session ends; the server joins it, exits 0."
start_background client4 tests/client --port "$PORT"
show_log "^Thread-4: .* connected$"
stop_server TERM
say "The client finds the connection closed the next time it speaks."
feed client4 "anyone there?"
show_output client4 "server closed the connection"
finish client4
