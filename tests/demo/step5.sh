#!/usr/bin/env bash
# make step5 - a process per client: fork, close the right sockets, reap, cap the count.
. "$(dirname "$0")/lib.sh"

# show_processes - the server and its children, as ps sees them (a zombie would show
# as "[server] <defunct>").
show_processes() {
  printf '$ ps -o pid,ppid,args --pid <server> --ppid <server>\n'
  ps -o pid,ppid,args --pid "$SERVER_PID" --ppid "$SERVER_PID"
}

children_are() { [ "$(ps -o pid= --ppid "$SERVER_PID" | wc -l)" -eq "$1" ]; }

say "Step 5: the parent accepts; each client gets a child process that runs"
say "step 2's session loop, as the blog's ForkingTCPServer does."
start_server step5_forking/server
blank

say "Three clients connect and talk at the same time, as in the blog's example 5."
for n in 1 2 3; do
  start_background "client$n" tests/client --port "$PORT"
  show_log " connected$" "$n" # one at a time, so each client keeps its place in the log
done
for name in client1 client2 client3; do
  feed "$name" "from $name"
  show_output "$name" "recv from server"
  show_log "wrote: from $name"
done
blank

say "All three are still connected. The system shows the server and one child"
say "process per client, each child's parent being the server."
wait_for 10 children_are 3
show_processes
blank

say "They hang up one after the other. Each child logs the end of its session and"
say "exits; the parent reaps it on its next turn of the loop (0.5 s at most)."
finish client1
show_log "disconnected$" 1
finish client2
show_log "disconnected$" 2
finish client3
show_log "disconnected$" 3
wait_for 10 children_are 0
say "No child is left, and no zombie either:"
show_processes
blank
stop_server
blank

say "With --max-children 2 the parent stops accepting while two children run."
# shellcheck disable=SC2034 # lib.sh's count of log lines shown: a new server, a new log
LOG_SHOWN=0
start_server step5_forking/server --max-children 2
start_background A tests/client --port "$PORT"
feed A "from A"
show_output A "recv from server"
show_log "wrote: from A"
start_background B tests/client --port "$PORT"
feed B "from B"
show_output B "recv from server"
show_log "wrote: from B"
say "C connects (the kernel's backlog takes it) and sends: no one answers yet."
start_background C tests/client --port "$PORT" --reply-timeout 1
feed C "from C"
show_output C "no reply"
wait_for 10 children_are 2
show_processes
say "A hangs up: its child ends, and at its next tick the parent reaps it and accepts C."
finish A
show_output C "recv from server"
show_log "wrote: from C"
blank

say "SIGTERM while B and C are connected: the parent stops accepting, passes"
say "SIGTERM on to its children, reaps them and exits 0."
children=$(ps -o pid= --ppid "$SERVER_PID" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
stop_server
printf '$ ps -o pid= --pid <its two children> | wc -l\n'
ps -o pid= --pid "$children" | wc -l
say "The clients find their connections closed."
feed B "anyone there?"
show_output B "server closed the connection"
feed C "anyone there?"
show_output C "server closed the connection"
finish B
finish C
