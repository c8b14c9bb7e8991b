#!/usr/bin/env bash
# make step1 - the blocking server: one recv per client, one client at a time.
. "$(dirname "$0")/lib.sh"

say "Step 1: accept, one recv, one reply, close, next client."
start_server step1_blocking/server
blank

say "A client sends two messages on one connection. The first is answered;"
say "the server has already closed the connection when the second arrives."
chat aa bb
show_log "closed by server"
blank

say "Client A connects and says nothing: the server waits in recv() for it."
start_background A tests/client --port "$PORT" hold
show_output A "connected from"
show_log " connected$" 2
say "Client B connects too (the kernel's backlog takes it) and sends a message."
start_background B tests/client --port "$PORT" --reply-timeout 1
feed B "hello"
show_output B "no reply"
say "A hangs up. Only now does the server accept B and answer it."
finish A
show_output B "recv from server"
finish B
show_log "closed by server" 2
blank

stop_server
