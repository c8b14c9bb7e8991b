#!/usr/bin/env bash
# make step3 - select(): one process, one thread, many clients at once.
. "$(dirname "$0")/lib.sh"

# show_log_without_flood - show_log, less the flood's "wrote:" lines: one per recv(),
# so how many there are changes from run to run.
show_log_without_flood() {
  local total
  total=$(wc -l <"$DEMO_DIR/server.log")
  sed -n "$((LOG_SHOWN + 1)),${total}p" "$DEMO_DIR/server.log" |
    grep -vF "$FLOOD_PEER wrote:" | sed 's/^/server| /'
  LOG_SHOWN=$total
}

say "Step 3: one thread waits in select() for whichever client is ready."
start_server step3_select/server
blank

say "Three clients connect, as in the blog's Linux run, and all stay connected."
for n in 1 2 3; do
  start_background "client$n" tests/client --port "$PORT"
  show_log " connected$" "$n" # one at a time, so each client keeps its place in the log
done
blank

say "Each one talks and is answered while the other two are still connected."
for n in 1 2 3; do
  feed "client$n" "from client$n"
  show_output "client$n" "FROM CLIENT$n"
  show_log "wrote: from client$n"
done
blank

say "The model, read from the system while the three are connected: one thread"
say "in one process, with no child."
printf '$ grep Threads /proc/<server>/status\n'
grep Threads "/proc/$SERVER_PID/status"
printf '$ ps --ppid <server> -o pid,comm\n'
ps --ppid "$SERVER_PID" -o pid,comm
blank

say "They take turns in any order; client1 has waited for nobody."
feed client3 "client3 again"
show_output client3 "CLIENT3 AGAIN"
feed client1 "client1 again"
show_output client1 "CLIENT1 AGAIN"
show_log "wrote: client1 again"
blank

say "A client that sends and never reads. Its replies fill the kernel's buffers,"
say "then wait in the server; past 64 KiB unsent the server stops reading from it,"
say "so its sends block. The server's memory for it stays bounded."
start_background flood tests/tools/misbehave.py --port "$PORT" flood
wait_for 10 output_has flood "^connected from"
FLOOD_PEER=$(sed -n 's/^connected from //p' "$DEMO_DIR/flood.out")
wait_for 10 log_has "$FLOOD_PEER connected"
show_log_without_flood
say "(Its 'wrote:' lines, one per recv() and thousands, are left out.)"
wait_for 20 output_has flood "^blocked after"
say "The flood is blocked now; client2 is answered all the same."
feed client2 "still here"
show_output client2 "STILL HERE"
wait_for 10 log_has "wrote: still here"
show_log_without_flood
say "The flood hangs up with replies unread, which is a reset."
finish flood
wait_for 10 log_has "$FLOOD_PEER reset"
show_log_without_flood
blank

say "SIGINT with three clients connected: the server closes each and exits 0."
stop_server INT
for n in 1 2 3; do finish "client$n"; done
