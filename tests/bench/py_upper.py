#!/usr/bin/env python3
"""tests/bench/py_upper.py - the Python peers of the benchmark: the seeds' upper-case echo
on Python's own socketserver, as a student would write it.

  --mode sync       socketserver.TCPServer
  --mode threading  socketserver.ThreadingTCPServer
  --mode forking    socketserver.ForkingTCPServer (max_children left at Python's 40)

The handler is the seeds' loop: recv(1024), then sendall(data.upper()), until end of
stream. Like every server of the lab it logs one line per message (line-buffered, so
one write per line, as the C servers do), since the seeds' handlers print what each
client wrote; the benchmark sends the logs to a file, but their cost stays in. As in
the C servers, a control byte a client sent is logged as '.', so it cannot forge a line,
and each line is one write, so threads never interleave halves of lines. The threading
and forking servers name the worker first, as step 4 does (`Thread-N: `, `Process-PID: `),
so the benchmark can count who served whom. The first line is the lab's ready line,
`serving on HOST:PORT`. SIGTERM and SIGINT stop it.
"""
import argparse
import os
import signal
import socket
import socketserver
import sys
import threading

CONTROL_BYTES = bytes(range(32)) + b"\x7f"
SHOWN = bytes.maketrans(CONTROL_BYTES, b"." * len(CONTROL_BYTES))


def worker_name(mode):
    """The prefix that names who serves: none for the one-at-a-time server."""
    if mode == "threading":  # Python 3.10+ adds " (process_request_thread)": dropped
        return threading.current_thread().name.split(" ")[0] + ": "
    if mode == "forking":
        return "Process-%d: " % os.getpid()
    return ""


def log(line):
    sys.stdout.write(line + "\n")  # one write per line: see the header


class UpperHandler(socketserver.BaseRequestHandler):
    mode = "sync"

    def handle(self):
        peer = worker_name(self.mode) + "%s:%d" % self.client_address[:2]
        log("%s connected" % peer)
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            log("%s wrote: %s" % (peer, data.rstrip().translate(SHOWN).decode("latin-1")))
            self.request.sendall(data.upper())
        log("%s disconnected" % peer)


SERVERS = {
    "sync": socketserver.TCPServer,
    "threading": socketserver.ThreadingTCPServer,
    "forking": socketserver.ForkingTCPServer,
}


def main():
    parser = argparse.ArgumentParser(description="Upper-case echo on Python's socketserver.")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=9999)
    parser.add_argument("--mode", choices=sorted(SERVERS), default="threading")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    server_class = SERVERS[args.mode]
    UpperHandler.mode = args.mode
    server_class.allow_reuse_address = True
    server_class.daemon_threads = True  # a stop never waits for a client to hang up
    # The one change from Python's defaults that the load needs: a listen backlog of
    # SOMAXCONN, as the C servers have. Python's 5 drops the SYNs of a burst of
    # connections, and each dropped one costs its client a 1 s retransmission.
    server_class.request_queue_size = socket.SOMAXCONN

    def stop(signo, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with server_class((args.host, args.port), UpperHandler) as server:
        print("serving on %s:%d" % server.server_address[:2])
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
