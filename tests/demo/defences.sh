#!/usr/bin/env bash
# The step-6 defences, for the tutorial's transcript: --timeout, --max-clients, --allow.
. "$(dirname "$0")/lib.sh"

say "--timeout: a client silent for that long is closed, and its thread is free again."
start_server step6_socketserver/upper --timeout 1
start_background A tests/client --port "$PORT" hold
show_output A "connected from"
show_log "timed out$"
finish A
stop_server
blank
say "--max-clients: a client beyond the limit is refused, and logged; the others go on."
start_server step6_socketserver/upper --max-clients 1
start_background B tests/client --port "$PORT"
feed B "first"
show_output B "recv from server"
show_log "wrote: first$"
start_background C tests/client --port "$PORT" hold
show_output C "connected from"
show_log "refused: "
finish C
feed B "still here"
show_output B "STILL HERE"
show_log "wrote: still here$"
finish B
show_log "disconnected$"
stop_server
blank
say "--allow: only peers in the networks given are served, and 127.0.0.1 is in neither."
start_server step6_socketserver/upper --allow 10.0.0.0/8 --allow 192.168.0.0/16
start_background D tests/client --port "$PORT" hold
show_output D "connected from"
show_log "refused: "
finish D
stop_server
