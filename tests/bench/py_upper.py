#!/usr/bin/env python3
"""tests/bench/py_upper.py - the Python peers of the benchmark: the seeds' upper-case echo
on Python's own socketserver, as a student would write it.

  --mode sync       socketserver.TCPServer
  --mode threading  socketserver.ThreadingTCPServer
  --mode forking    socketserver.ForkingTCPServer (max_children left at Python's 40)

The handler is the seeds' loop: recv(1024), then sendall(data.upper()), until end of
stream. Like every server of the lab it logs one line per message (line-buffered, so
one write per line, as the C servers do), since the seeds' handlers print what each
client wrote; the benchmark sends the logs to /dev/null, but their cost stays in. The
first line is the lab's ready line, `serving on HOST:PORT`. SIGTERM and SIGINT stop it.
"""
import argparse
import signal
import socket
import socketserver
import sys


class UpperHandler(socketserver.BaseRequestHandler):
    def handle(self):
        peer = "%s:%d" % self.client_address[:2]
        print("%s connected" % peer)
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            print("%s wrote: %s" % (peer, data.rstrip().decode("latin-1")))
            self.request.sendall(data.upper())
        print("%s disconnected" % peer)


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
