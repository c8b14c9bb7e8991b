#!/usr/bin/env python3
"""tests/exercises/talk.py - a client that sends whole lines, blank ones too, for the graders.

  talk.py --port PORT [--timeout S] [--gap S] [--greeting] [--exact] MESSAGE...

Each MESSAGE (backslash escapes such as \\n are decoded) is sent in one write; then the
client reads until a newline arrives or S seconds (default 1) have passed since the
message went out, whatever comes in between, and prints `reply: LINE` (without its
newline) for each line it got, `no reply within S s` when nothing came, and `closed` when
the server closed the connection, after which it stops. --greeting first prints the line
the server sends on connect; --gap waits S seconds before each message (a client that
types slowly). The shared client cannot do this: it sends nothing for a blank line.

A reply line longer than 4096 bytes is shown cut, with its length: `... (N bytes in all)`.
--exact prints each reply's bytes as they came, escaped, its newline too: `reply: HI\\n`
for a whole line, `reply: HI` for one that came without its newline; \\r, \\t, a
backslash (\\\\) and other bytes that are not printable ASCII (\\xNN) are escaped the same.

  talk.py --port PORT --room MEMBERS [--lazy] [--repeat N] MESSAGE

A chat room: MEMBERS connections (and with --lazy one more that never reads) print
`connected N`, then wait for a line on standard input (the test's go, once the server has
accepted them all). Then member 0 sends MESSAGE N times, and every other member must get
exactly those bytes, upper-cased: `member I got all B bytes` or `member I got B of TOTAL bytes: ...`;
then `sender got nothing`, or what came back to it. --within S (default 10) bounds the
room's sending and reading in all, whatever the server does.
"""
import threading
import argparse
import codecs
import socket
import sys
import time


def say(text):
    print(text, flush=True)


def read_reply(sock, timeout):
    """What came within TIMEOUT seconds, up to a newline: (bytes, closed). The deadline is
    for the whole reply, so that a server that sends a byte now and then cannot hold us."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return data, True
        data += chunk
    return data, False


def escaped(line):
    """LINE's bytes, printable: \\n, \\r, \\t, \\\\ and \\xNN for the rest."""
    names = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\"}
    return "".join(names.get(byte) or (chr(byte) if 32 <= byte < 127 else "\\x%02x" % byte)
                   for byte in line)


def report(reply, exact, timeout):
    """Print the reply; False once the server has closed the connection."""
    data, closed = reply
    if exact:
        lines = [escaped(line[:SHOWN]) + cut(line) for line in split_after_newlines(data)]
    else:
        lines = [line[:SHOWN] + cut(line) for line in data.decode(errors="replace").splitlines()]
    if not data and not closed:
        say("no reply within %g s" % timeout)
    for line in lines:
        say("reply: " + line)
    if closed:
        say("closed")
    return not closed


SHOWN = 4096  # a longer reply line is cut: a server that floods us does not flood the grade


def cut(line):
    return " ... (%d bytes in all)" % len(line) if len(line) > SHOWN else ""


def split_after_newlines(data):
    """DATA cut after each newline (kept); a last piece without one stays as it is."""
    lines = data.split(b"\n")
    return [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


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
    deadline = time.monotonic() + args.within

    def read(i):
        try:
            while len(got[i]) < len(total):
                members[i].settimeout(max(0.001, min(args.timeout, deadline - time.monotonic())))
                chunk = members[i].recv(65536)
                if not chunk:
                    break
                got[i] += chunk
        except OSError:
            pass

    readers = [threading.Thread(target=read, args=(i,)) for i in range(1, len(members))]
    for reader in readers:
        reader.start()
    try:
        for _ in range(args.repeat):
            members[0].settimeout(max(0.001, min(args.timeout, deadline - time.monotonic())))
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
    parser.add_argument("--exact", action="store_true")
    parser.add_argument("--room", type=int, default=0)
    parser.add_argument("--lazy", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--within", type=float, default=10.0)
    parser.add_argument("messages", nargs="*")
    args = parser.parse_args()
    if args.room:
        return room(args)
    sock = socket.create_connection((args.host, args.port))
    say("connected from %s:%d" % sock.getsockname()[:2])
    if args.greeting and not report(read_reply(sock, args.timeout), args.exact, args.timeout):
        return 0
    for message in args.messages:
        if args.gap:
            time.sleep(args.gap)  # the client's pace, not a synchronisation
        try:
            sock.sendall(codecs.decode(message, "unicode_escape").encode("latin-1"))
        except (BrokenPipeError, ConnectionResetError):
            say("closed")
            return 0
        if not report(read_reply(sock, args.timeout), args.exact, args.timeout):
            return 0
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
