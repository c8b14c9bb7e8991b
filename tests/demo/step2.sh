#!/usr/bin/env bash
# make step2 - the session loop: talk until the client hangs up, survive a reset.
. "$(dirname "$0")/lib.sh"

say "Step 2: the handler loops until recv() returns 0."
start_server step2_loop/server
blank

say "A conversation of several messages on one connection. The blank message"
say "(a single space) is a message like any other: only the end of the stream"
say "ends a session."
chat "hello" "how are you?" " " "bye"
show_log "disconnected"
blank

say "A client that resets its connection (SO_LINGER 0) instead of closing it."
start_background A tests/client --port "$PORT" --reset
feed A "about to reset"
show_output A "recv from server"
finish A
show_log "reset"
say "The server logs the reset and serves the next client."
chat "still here"
show_log "disconnected" 2
blank

say "Client C talks and stays connected."
start_background C tests/client --port "$PORT"
feed C "first"
show_output C "recv from server"
show_log "wrote: first"
say "Client D connects and sends a message: it waits, one client at a time."
start_background D tests/client --port "$PORT" --reply-timeout 1
feed D "second"
show_output D "no reply"
say "C hangs up; the server moves on to D."
finish C
show_output D "recv from server"
finish D
show_log "disconnected" 4
blank

stop_server
