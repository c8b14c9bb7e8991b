# tests/exercises/tcp.bash - what the graders read of a connection in /proc/net/tcp, for
# scenarios that must know where the bytes are without waiting for time to pass: has the
# server read them, sent anything back, taken a reset? An exercise sources it:
#   source "$LAB/tests/exercises/tcp.bash"
# PORTs are the clients' (talk.py and tests/client print `connected from IP:PORT`); the
# server's is SERVER_PORT. IPv4 on 127.0.0.1 only, as the graders' servers listen.

# tcp_queues FROM TO - the send and receive queues (bytes, in hex: TX:RX) of the socket
# from local port FROM to port TO; nothing when there is no such socket.
tcp_queues() {
  local from to
  printf -v from '%04X' "$1"
  printf -v to '%04X' "$2"
  grep -oE "0100007F:$from 0100007F:$to [0-9A-F]{2} [0-9A-F]{8}:[0-9A-F]{8}" /proc/net/tcp |
    cut -d ' ' -f 4
}

# server_waits_on PORT - the server (its main thread) has read all that the client at
# PORT sent, and waits in poll() again: whatever it does with what it read, it has done.
# (Where helpers.bash knows no system call numbers, only the first half is seen.)
server_waits_on() {
  local call=
  [ -z "$SYS_POLL" ] || read -r call _ <"/proc/$SERVER_PID/syscall"
  [ "$call" = "$SYS_POLL" ] && [[ $(tcp_queues "$SERVER_PORT" "$1") == *:00000000 ]]
}

# nothing_sent_to PORT - no byte from the server is on its way to the client at PORT:
# none unacknowledged at the server's end, none unread at the client's.
nothing_sent_to() {
  [[ $(tcp_queues "$SERVER_PORT" "$1") == 00000000:* ]] &&
    [[ $(tcp_queues "$1" "$SERVER_PORT") == *:00000000 ]]
}

# bytes_arrived PORT - bytes from the server wait unread at the client at PORT.
bytes_arrived() {
  local queues
  queues=$(tcp_queues "$1" "$SERVER_PORT")
  [ -n "$queues" ] && [[ $queues != *:00000000 ]]
}

# reset_taken PORT - the kernel has taken the reset of the client at PORT: the server's
# end of that connection has left the table (a reset ends it at once, no TIME_WAIT).
reset_taken() { [ -z "$(tcp_queues "$SERVER_PORT" "$1")" ]; }

# server_connections_are N - the server's end of N connections is open (its listener
# aside), accepted or waiting in the backlog.
server_connections_are() {
  local port
  printf -v port '%04X' "$SERVER_PORT"
  [ "$(grep -cE "^ *[0-9]+: 0100007F:$port [0-9A-F]{8}:[0-9A-F]{4} 0[1-9] " /proc/net/tcp)" = "$1" ]
}
