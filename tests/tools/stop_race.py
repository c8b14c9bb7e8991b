#!/usr/bin/env python3
"""tests/tools/stop_race.py - is a stop ever lost? Start, one round trip, SIGTERM; repeat.

    stop_race.py [--cycles N] [--deadline SECONDS] [--seed N] -- SERVER [ARGS...]

Each cycle starts SERVER on a free port (--port 0 is added), waits for its ready line,
sends one message on a new connection, reads the upper-cased reply and closes, then
sends SIGTERM at a random moment near that close: a little before it, or up to a few
hundred microseconds after. The server must exit 0 within the deadline.

Why this finds the bug: a server that checks a stop flag and then blocks in accept() or
recv() loses a SIGTERM that lands between the check and the call. The handler runs, the
flag is set, and the call then waits for ever. Natively that window is nanoseconds wide,
so it takes many cycles to hit it; under valgrind, which delivers a signal only at its
own scheduling points, it is much wider.

Prints one line, `stop-race: NAME cycles=N hung=H wrong-exit=W`, naming the cycles that
failed, and exits 1 if any did. A hung server is killed (SIGKILL), so the run always ends.
"""
import argparse
import random
import signal
import socket
import subprocess
import sys
import time


def busy_wait(seconds):
    """time.sleep() cannot wait a few microseconds; spinning on the clock can."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def one_cycle(command, deadline, rng):
    """Returns None when the server stopped cleanly, else what went wrong."""
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        ready = server.stdout.readline().decode(errors="replace")
        if not ready.startswith("serving on "):
            return "no ready line: %r" % ready
        host, _, port = ready[len("serving on "):].strip().rpartition(":")
        try:
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=deadline)
            sock.sendall(b"hello\n")
            reply = b""
            while len(reply) < 6:
                chunk = sock.recv(6 - len(reply))
                if not chunk:
                    break
                reply += chunk
        except OSError as e:
            return "round trip: %s" % e
        if reply != b"HELLO\n":
            return "reply %r" % reply
        # The moment of the stop: a third of the cycles just before the close, the rest
        # up to 300 us after it, when the server is between its last check and its wait.
        early = rng.random() < 1 / 3
        delay = 0.0 if early else rng.uniform(0, 300e-6)
        if not early:
            sock.close()
            busy_wait(delay)
        server.send_signal(signal.SIGTERM)
        if early:
            sock.close()
        try:
            status = server.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            return "hung: no exit %g s after SIGTERM (sent %s)" % (
                deadline, "before the close" if early else "%.0f us after the close" % (delay * 1e6))
        if status != 0:
            return "exit status %d: %s" % (status, server.stderr.read().decode(errors="replace")[-300:])
        return None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--deadline", type=float, default=1.0, help="seconds to exit after SIGTERM")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--name", default=None, help="how the summary names the server")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [a for a in args.command if a != "--"]
    if not command:
        parser.error("no server command")
    command += ["--port", "0"]
    name = args.name or command[0]
    rng = random.Random(args.seed)
    failures = []
    for cycle in range(1, args.cycles + 1):
        what = one_cycle(command, args.deadline, rng)
        if what is not None:
            failures.append("cycle %d: %s" % (cycle, what))
    hung = sum("hung" in f for f in failures)
    print("stop-race: %s cycles=%d hung=%d wrong-exit=%d"
          % (name, args.cycles, hung, len(failures) - hung))
    for failure in failures[:10]:
        print("  " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
