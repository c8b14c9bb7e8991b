#!/usr/bin/env python3
"""tests/exercises/talk.py - a client that sends whole lines, blank ones too, for the graders.

  talk.py --port PORT [--timeout S] [--gap S] [--greeting] MESSAGE...

Each MESSAGE (backslash escapes such as \\n are decoded) is sent in one write; then the
client reads until a newline arrives, and prints `reply: LINE` (without its newline) for
each whole line it got, `no reply within S s` when none came, or `closed` when the server
closed the connection, after which it stops. --greeting first prints the line the server
sends on connect; --gap waits S seconds before each message (a client that types slowly).
The shared client cannot do this: it sends nothing for a blank line.
"""
import argparse
import codecs
import socket
import sys
import time


def say(text):
    print(text, flush=True)


def read_lines(sock, timeout):
    """Whole lines, within TIMEOUT seconds of silence; None when the server closed."""
    data = b""
    sock.settimeout(timeout)
    while not data.endswith(b"\n"):
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None if not data else data.decode(errors="replace").splitlines()
        data += chunk
    return data.decode(errors="replace").splitlines()


def report(lines, timeout):
    if lines is None:
        say("closed")
        return False
    if not lines:
        say("no reply within %g s" % timeout)
    for line in lines:
        say("reply: " + line)
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--gap", type=float, default=0.0)
    parser.add_argument("--greeting", action="store_true")
    parser.add_argument("messages", nargs="*")
    args = parser.parse_args()
    sock = socket.create_connection((args.host, args.port))
    say("connected from %s:%d" % sock.getsockname()[:2])
    if args.greeting and not report(read_lines(sock, args.timeout), args.timeout):
        return 0
    for message in args.messages:
        if args.gap:
            time.sleep(args.gap)  # the client's pace, not a synchronisation
        try:
            sock.sendall(codecs.decode(message, "unicode_escape").encode("latin-1"))
        except (BrokenPipeError, ConnectionResetError):
            say("closed")
            return 0
        if not report(read_lines(sock, args.timeout), args.timeout):
            return 0
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
