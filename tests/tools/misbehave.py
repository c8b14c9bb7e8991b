#!/usr/bin/env python3
"""tests/tools/misbehave.py - clients the shared client has no mode for, for the step 3-5 suites.

The shared client (tests/client) talks politely, one connection at a time. These are
the clients a server must survive without letting them delay anybody else, and a crowd
to hold many connections open at once. Each prints facts a test can wait on, one line
at a time, flushed at once.

  crowd     open N connections, then ROUNDS of one message on each, all in flight at
            once; check every reply; hold them open until stdin ends
  flood     send BYTES without ever reading; say when the server stops taking them
  trickle   send TEXT one byte per GAP seconds, then half-close and print the reply
  halfclose send stdin (or BYTES of a pattern), half-close, print every reply byte
  reset     send BYTES without reading, then reset the connection (SO_LINGER 0); with
            --half-close, half-close before the reset
  resets    N connections at once, each reset at a random point: mid-message, with
            replies unread or half read (a seed makes the run repeatable)
  hold      open N connections and say nothing until stdin ends

The bytes sent are lower-case text without newlines (one log line per recv), so
every reply byte can be checked. Whatever the server does, a client ends: --within S
bounds the reading of a reply to its end of stream (trickle, halfclose: default 30 s),
which then says `no end of stream`, and a crowd's wait for each round of replies (by
default only each reply's --timeout does).
"""
import argparse
import select
import socket
import struct
import sys
import time

PATTERN = b"the quick brown fox jumps over the lazy dog 0123456789 "


def pattern(size):
    """SIZE bytes of lower-case text, the same every time."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def say(text):
    print(text, flush=True)


def connect(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((args.host, args.port))
    return sock


def wait_for_stdin_end():
    """Hold the connection open until the test closes our standard input."""
    while sys.stdin.buffer.read(4096):
        pass


def flood(args):
    """Send without reading. A server with backpressure stops reading us, the kernel's
    buffers fill, and our sends stop making progress: 'blocked after N bytes' after
    --stall seconds without progress. A server without it takes everything: 'sent all'."""
    sock = connect(args)
    sock.setblocking(False)
    say("connected from %s:%d" % sock.getsockname()[:2])
    data = memoryview(pattern(args.bytes))
    sent = 0
    next_report = args.report
    while sent < len(data):
        _, writable, _ = select.select([], [sock], [], args.stall)
        if not writable:
            say("blocked after %d bytes" % sent)
            break
        try:
            sent += sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            continue
        while args.report and sent >= next_report:
            say("sent %d" % next_report)
            next_report += args.report
    else:
        say("sent all %d bytes" % sent)
    wait_for_stdin_end()
    sock.close()


def crowd(args):
    """Every connection is opened before the first message, so the server has them all
    at once. A connection the server closes (refuses) is counted, not an error."""
    socks = [socket.create_connection((args.host, args.port)) for _ in range(args.c)]
    say("connected %d" % len(socks))
    refused = set()
    wrong = 0
    for r in range(args.rounds):
        deadline = time.monotonic() + (args.within or float("inf"))
        messages = {}
        for i, sock in enumerate(socks):
            if i in refused:
                continue
            messages[i] = b"message %d from client %d" % (r, i)
            try:
                sock.sendall(messages[i])
            except OSError:
                refused.add(i)
        for i, message in messages.items():
            if i in refused:
                continue
            reply = b""
            try:
                while len(reply) < len(message):
                    socks[i].settimeout(max(0.001, min(args.timeout, deadline - time.monotonic())))
                    chunk = socks[i].recv(len(message) - len(reply))
                    if not chunk:
                        break
                    reply += chunk
            except OSError:  # reset, or no reply in time: counted below
                pass
            if not reply and r == 0:
                refused.add(i)
            elif reply != message.upper():
                wrong += 1
                say("client %d round %d: %r" % (i, r, reply))
    say("answered %d, closed by server %d, wrong %d"
        % (len(socks) - len(refused), len(refused), wrong))
    wait_for_stdin_end()
    for sock in socks:
        sock.close()
    return 1 if wrong else 0


def read_to_end(sock, within):
    """Every byte until the server closes, within WITHIN seconds in all (not of each
    recv: a server that sends a byte now and then cannot hold us): (bytes, ended)."""
    chunks = []
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def trickle(args):
    """One byte, a pause, the next byte: a client that sends very slowly."""
    sock = connect(args)
    text = args.text.encode()
    for i, byte in enumerate(text):
        sock.sendall(bytes([byte]))
        if i == 0:
            say("trickling")
        if i + 1 < len(text):
            time.sleep(args.gap)  # the misbehaviour itself, not synchronisation
    sock.shutdown(socket.SHUT_WR)
    reply, ended = read_to_end(sock, args.within or 30)
    sock.close()
    if not ended:
        say("recv (no end of stream within %g s): %r" % (args.within or 30, reply))
        return 1
    say("recv: %r" % reply)
    return 0


def server_has_read_all(sock):
    """True once the server's end of this connection has nothing left unread: its line
    in /proc/net/tcp (local address = the server, remote = us) shows rx_queue 0."""
    def hexaddr(addr):
        ip, port = addr[:2]
        return "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(ip))[0], port)
    server, us = hexaddr(sock.getpeername()), hexaddr(sock.getsockname())
    with open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if fields[1] == server and fields[2] == us:
                return int(fields[4].split(":")[1], 16) == 0
    return False


def halfclose(args):
    """Send everything, close our sending side, then read until the server closes: every
    reply must still come. BYTES must fit in the kernel's buffers (a few hundred KiB),
    since we read only after sending. --narrow makes the path back to us narrow (MSS 536,
    a 4 KiB receive buffer), so replies back up in the server; --wait-read holds our
    reading (up to 5 s) until the server has read all we sent, end of stream included:
    then the server meets our end of stream with replies still unsent. With --bytes,
    check the reply against the upper-cased pattern; without, send standard input and
    copy the reply to standard output byte for byte."""
    data = pattern(args.bytes) if args.bytes is not None else sys.stdin.buffer.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if args.narrow:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((args.host, args.port))
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 5
    while args.wait_read and not server_has_read_all(sock) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a fact, with a deadline
    within = args.within or 30
    reply, ended = read_to_end(sock, within)
    sock.close()
    if args.bytes is None:
        sys.stdout.buffer.write(reply)
        sys.stdout.flush()
        if not ended:
            print("no end of stream within %g s" % within, file=sys.stderr)
        return 0 if ended else 1
    expected = data.upper()
    if not ended:
        say("no end of stream within %g s: %d bytes of %d received" % (within, len(reply), len(expected)))
        return 1
    if reply == expected:
        say("received all %d bytes, upper-cased" % len(reply))
        return 0
    same = next((i for i, (a, b) in enumerate(zip(reply, expected)) if a != b),
                min(len(reply), len(expected)))
    say("wrong reply: %d bytes of %d, first difference at %d" % (len(reply), len(expected), same))
    return 1


def reset(args):
    """Send without reading, then abort: the server meets ECONNRESET or EPIPE with a
    reply still unsent. A half-close first puts the server's end in CLOSE_WAIT, where
    Linux records the reset as EPIPE: the server's next send is then the one that
    raises SIGPIPE unless it says MSG_NOSIGNAL."""
    sock = connect(args)
    sock.sendall(pattern(args.bytes))
    say("sent %d bytes" % args.bytes)
    if args.half_close:
        sock.shutdown(socket.SHUT_WR)
    wait_for_stdin_end()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    say("reset")


def resets(args):
    """N connections at once. Each sends a random part of a message of up to MAX bytes
    (as much as the server takes without blocking us), then reads a random part of what
    has come back (possibly nothing), then is reset with SO_LINGER 0 - the server meets
    ECONNRESET or EPIPE in recv or in send, mid-message, with replies unsent or unread.
    The connections are reset in a random order. Prints what it did."""
    import random
    rng = random.Random(args.seed)
    socks = [socket.create_connection((args.host, args.port)) for _ in range(args.c)]
    say("connected %d" % len(socks))
    sent = [0] * len(socks)
    for i, sock in enumerate(socks):
        sock.setblocking(False)
        data = memoryview(pattern(rng.randint(1, args.max)))
        try:
            while sent[i] < len(data):
                sent[i] += sock.send(data[sent[i]:])
        except (BlockingIOError, ConnectionError):
            pass  # the server stopped taking bytes (backpressure) or has gone
    read = 0
    deadline = time.monotonic() + args.read_for
    for i, sock in enumerate(socks):
        want = rng.randint(0, sent[i])
        got = 0
        while got < want and time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = sock.recv(want - got)
            except (BlockingIOError, ConnectionError):
                break
            if not chunk:
                break
            got += len(chunk)
        read += got
    order = list(range(len(socks)))
    rng.shuffle(order)
    for i in order:
        socks[i].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        socks[i].close()
    say("reset %d connections after sending %d bytes and reading %d"
        % (len(socks), sum(sent), read))


def hold(args):
    """Open N connections (the kernel's backlog completes them whether or not the server
    accepts), say nothing, and close them all when stdin ends."""
    socks = [socket.create_connection((args.host, args.port)) for _ in range(args.c)]
    say("connected %d" % len(socks))
    wait_for_stdin_end()
    for sock in socks:
        sock.close()
    say("closed %d" % len(socks))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=9999)
    parser.add_argument("--within", type=float,
                        help="seconds to read replies, in all (default: 30 to an end of stream)")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("crowd", help="N connections at once, ROUNDS messages on each")
    p.add_argument("-c", type=int, default=100, help="connections (default 100)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply")
    p = sub.add_parser("flood", help="send BYTES, never read")
    p.add_argument("--bytes", type=int, default=32 << 20)
    p.add_argument("--stall", type=float, default=1.0,
                   help="seconds without progress that count as blocked (default 1)")
    p.add_argument("--report", type=int, default=0, help="say 'sent N' every N bytes")
    p = sub.add_parser("trickle", help="send TEXT one byte per GAP seconds")
    p.add_argument("--text", default="slowly, one byte at a time\n")
    p.add_argument("--gap", type=float, default=0.1)
    p = sub.add_parser("halfclose", help="send, half-close, read every reply")
    p.add_argument("--bytes", type=int)
    p.add_argument("--narrow", action="store_true")
    p.add_argument("--wait-read", action="store_true")
    p = sub.add_parser("reset", help="send BYTES, then reset")
    p.add_argument("--bytes", type=int, default=256 << 10)
    p.add_argument("--half-close", action="store_true")
    p = sub.add_parser("resets", help="N connections, each reset at a random point")
    p.add_argument("-c", type=int, default=50, help="connections (default 50)")
    p.add_argument("--max", type=int, default=256 << 10,
                   help="largest message, in bytes (default 256 KiB)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--read-for", type=float, default=2.0,
                   help="seconds to spend reading replies before the resets (default 2)")
    p = sub.add_parser("hold", help="N silent connections, held until stdin ends")
    p.add_argument("-c", type=int, default=10, help="connections (default 10)")
    args = parser.parse_args()
    return {"crowd": crowd, "flood": flood, "trickle": trickle, "halfclose": halfclose,
            "reset": reset, "resets": resets, "hold": hold}[args.mode](args) or 0


if __name__ == "__main__":
    sys.exit(main())
