#!/usr/bin/env python3
"""tests/exercises/talk.py - a client that sends whole lines, blank ones too, for the graders.

  talk.py --port PORT [--timeout S] [--gap S] [--greeting] MESSAGE...

Each MESSAGE (backslash escapes such as \\n are decoded) is sent in one write; then the
client reads until a newline arrives, and prints `reply: LINE` (without its newline) for
each whole line it got, `no reply within S s` when none came, or `closed` when the server
closed the connection, after which it stops. --greeting first prints the line the server
sends on connect; --gap waits S seconds before each message (a client that types slowly).
The shared client cannot do this: it sends nothing for a blank line.

  talk.py --port PORT --room MEMBERS [--lazy] [--repeat N] MESSAGE

A chat room: MEMBERS connections (and with --lazy one more that never reads) print
`connected N`, then wait for a line on standard input (the test's go, once the server has
accepted them all). Then member 0 sends MESSAGE N times, and every other member must get
exactly those bytes, upper-cased: `member I got all B bytes` or `member I got B of TOTAL bytes: ...`;
then `sender got nothing`, or what came back to it.
"""
import threading
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


def room(args):
    """Every member but the sender reads in a thread of its own, so that the sender's
    writes never wait on our reading."""
    members = [socket.create_connection((args.host, args.port)) for _ in range(args.room)]
    lazy = None
    if args.lazy:  # a small receive buffer: the server's backlog for it fills sooner
        lazy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.connect((args.host, args.port))
    say("connected %d" % (len(members) + (lazy is not None)))
    sys.stdin.readline()
    message = codecs.decode(args.messages[0], "unicode_escape").encode("latin-1")
    total = (message * args.repeat).upper()
    got = [bytearray() for _ in members]

    def read(i):
        members[i].settimeout(args.timeout)
        try:
            while len(got[i]) < len(total):
                chunk = members[i].recv(65536)
                if not chunk:
                    break
                got[i] += chunk
        except OSError:
            pass

    readers = [threading.Thread(target=read, args=(i,)) for i in range(1, len(members))]
    for reader in readers:
        reader.start()
    members[0].settimeout(args.timeout)
    try:
        for _ in range(args.repeat):
            members[0].sendall(message)
    except OSError as error:
        say("sender could not send: %s" % error)
    for i, reader in enumerate(readers, 1):
        reader.join()
        if got[i] == total:
            say("member %d got all %d bytes" % (i, len(total)))
        else:
            say("member %d got %d of %d bytes: %r" % (i, len(got[i]), len(total), got[i][:60]))
    members[0].settimeout(0.2)  # the others have had it all by now: so would the sender
    try:
        back = members[0].recv(65536)
        say("sender got %r" % back[:60] if back else "sender: closed")
    except socket.timeout:
        say("sender got nothing")
    for sock in members + ([lazy] if lazy else []):
        sock.close()
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--gap", type=float, default=0.0)
    parser.add_argument("--greeting", action="store_true")
    parser.add_argument("--room", type=int, default=0)
    parser.add_argument("--lazy", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("messages", nargs="*")
    args = parser.parse_args()
    if args.room:
        return room(args)
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
