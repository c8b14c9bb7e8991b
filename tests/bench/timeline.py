#!/usr/bin/env python3
"""tests/bench/timeline.py - a picture of who served whom: one row per worker, one bar a client.

  tests/bench/timeline.py            every picture (make timeline):
                                     tests/bench/timeline-NAME.png for each of TIMELINES
  tests/bench/timeline.py --only step4 --text   one design, its bars as text, no gnuplot

A short scripted load: --clients clients, the i-th connecting i x --stagger ms after the
first; each sends one line, reads its reply, holds its connection a while (150, 250 or
350 ms, in turn, so the bars differ, and on until the harness knows who serves it), then
closes and waits for end of stream. Meanwhile
the harness reads the server's log, line by line, from its standard output (the servers
line-buffer it, even into a pipe) and stamps each line with CLOCK_MONOTONIC as it reads
it: the servers' logs carry no time of their own. A bar runs from a client's `connected`
line to its `disconnected` (or `reset`) line, and a thin line under it from the client's
own connect() to the bar: the time it waited for a worker (in the backlog, when all are
busy). Its row is the worker that served it:
- the name the line starts with, where the server names its worker (`Thread-3: ...`);
- for a server that serves from one thread (iterative, select, epoll), that thread;
- otherwise the process, other than the server's own, that holds the connection's socket
  when the `connected` line is read (/proc/net/tcp gives the socket, /proc/PID/fd its
  owner): a fork per client. A thread shares its process's descriptors, so a threaded
  server whose log names no thread cannot be drawn.
The stamp lags the event by the pipe and the harness's wake-up; the script prints, for
each picture, how far each `connected` stamp came after the client's connect() returned,
an upper bound on that lag (the server's accept and fork or thread start are in it too,
and so is a wait in the backlog for a busy pool's worker: read the median).
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import designs  # noqa: E402  (the design list: each picture names one of its designs)
import run  # noqa: E402

# A picture is one line: the PNG's name (timeline-NAME.png) and the design it draws.
TIMELINES = [
    ("step4", "thread per client: step 4"),
    ("step5", "fork per client: step 5"),
    ("prefork", "prefork, shared mutex: step 6 upper"),
    ("pool", "pool, main accepts: step 6 upper"),
]

HOLDS_MS = (150, 250, 350)
EVENT = re.compile(r"^(?:(?P<worker>[^ :]+): )?(?P<peer>[0-9.]+:\d+) (?P<what>connected|disconnected|reset)$")


def clock():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class LoggedServer:
    """A server whose standard output is read by a thread, each line stamped on arrival."""

    def __init__(self, argv, one_worker, deadline=10.0):
        self.one_worker = one_worker  # all is served by the server's own thread
        self.proc = subprocess.Popen(argv + ["--port", "0"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.lines = []  # (stamp, text, {"pid": owner found in /proc} or None)
        self.lookups = []  # the threads looking owners up
        # Per client port: set once its `connected` line is read and its owner, where one
        # is looked up, is found (see wait_served).
        self.served = {}
        self.served_lock = threading.Lock()
        self.ready = threading.Event()
        self.port = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.ready.wait(deadline) or self.port is None:
            self.stop()
            raise RuntimeError("%s: no ready line within %gs" % (argv[0], deadline))

    def _read(self):
        for raw in self.proc.stdout:
            stamp = clock()  # first, before anything else can delay it
            text = raw.decode("latin-1").rstrip("\n")
            if self.port is None:
                m = re.match(r"serving on \S+:(\d+)$", text)
                self.port = int(m.group(1)) if m else None
                self.ready.set()
                continue
            m = EVENT.match(text)
            owner = None
            connected = m and m.group("what") == "connected"
            if connected and self.one_worker:
                owner = {"pid": self.proc.pid}
            if connected and not self.one_worker and not m.group("worker"):
                # Looked up aside, so the next line's stamp never waits for it.
                owner = {"pid": None}
                look = threading.Thread(target=find_owner, daemon=True, args=(
                    owner, self.proc.pid, self.port, int(m.group("peer").rsplit(":", 1)[1]),
                    self._served(int(m.group("peer").rsplit(":", 1)[1]))))
                look.start()
                self.lookups.append(look)
            elif connected:
                self._served(int(m.group("peer").rsplit(":", 1)[1])).set()
            self.lines.append((stamp, text, owner))
        self.ready.set()

    def _served(self, peer_port):
        with self.served_lock:
            return self.served.setdefault(peer_port, threading.Event())

    def wait_served(self, peer_port, deadline=10.0):
        """Wait until the client from PEER_PORT is placed: its `connected` line read and
        the process that serves it found. A client calls it before it closes: the child
        of a fork per client ends with its client, and a lookup that came later (a /proc
        scan on a loaded machine can take longer than a client's hold) would find none."""
        self._served(peer_port).wait(deadline)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        run.end_leftovers(self.proc.pid, self.proc.args[0])
        self.reader.join(5)
        for look in self.lookups:
            look.join()
        err = self.proc.stderr.read().decode(errors="replace").strip()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, err


def find_owner(owner, server_pid, server_port, peer_port, found, deadline=5.0):
    """Set owner["pid"] to the process holding the connection, waiting (with a deadline)
    for it to exist: a server may log `connected` before it forks the child that serves.
    Then set FOUND, which lets the client close."""
    end = time.monotonic() + deadline
    while owner["pid"] is None and time.monotonic() < end:
        owner["pid"] = socket_owner(server_pid, server_port, peer_port)
        if owner["pid"] is None:
            time.sleep(0.002)  # polling a fact (the child holds the socket), with a deadline
    found.set()


def socket_owner(server_pid, server_port, peer_port):
    """The pid, other than SERVER_PID, of the process holding the server's end of the
    connection from PEER_PORT, or None."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for row in f:
                    fields = row.split()
                    local, remote = fields[1], fields[2]
                    if (int(local.rsplit(":", 1)[1], 16) == server_port
                            and int(remote.rsplit(":", 1)[1], 16) == peer_port):
                        inode = fields[9]
        except OSError:
            continue
    if inode is None:
        return None
    target = "socket:[%s]" % inode
    for pid in run.descendants(server_pid):
        if pid == server_pid:
            continue
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return pid
        except OSError:  # it ended meanwhile
            continue
    return None


def scripted_load(server, clients, stagger_ms):
    """Run the clients; returns, per client number, its port, connect time and success."""
    record, threads = {}, []
    start = clock() + 0.05
    for i in range(1, clients + 1):
        record[i] = {"port": None}
        t = threading.Thread(target=run_client, args=(i, server, start + (i - 1) * stagger_ms / 1000.0,
                                                      HOLDS_MS[(i - 1) % len(HOLDS_MS)], record))
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    return record, start


def run_client(index, server, start_at, hold_ms, record, timeout=10.0):
    """One scripted client: connect at START_AT, one round trip, hold HOLD_MS (and until
    the harness knows who serves it), close."""
    try:
        time.sleep(max(0.0, start_at - clock()))  # pacing the load, not waiting on a fact
        with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
            record[index].update(connected=clock(), port=s.getsockname()[1])
            message = b"client %d\n" % index
            s.sendall(message)
            reply = b""
            while len(reply) < len(message):
                chunk = s.recv(len(message) - len(reply))
                if not chunk:
                    break
                reply += chunk
            time.sleep(hold_ms / 1000.0)  # the hold is the load: a client that thinks a while
            server.wait_served(record[index]["port"], timeout)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
            record[index]["ok"] = reply == message.upper()
    except OSError as e:
        record[index]["error"] = str(e)


def bars(lines, record):
    """From the stamped log: (worker, client number, start, end) for each client served."""
    client_of = {r["port"]: i for i, r in record.items() if r.get("port")}
    open_bars, out = {}, []
    for stamp, text, owner in lines:
        m = EVENT.match(text)
        if not m:
            continue
        peer_port = int(m.group("peer").rsplit(":", 1)[1])
        if m.group("what") == "connected":
            worker = m.group("worker") or ("pid %d" % owner["pid"] if owner and owner["pid"] else None)
            open_bars[m.group("peer")] = (worker, client_of.get(peer_port), stamp)
        elif m.group("peer") in open_bars:
            worker, number, began = open_bars.pop(m.group("peer"))
            out.append((worker, number, began, stamp))
    return out


def draw(design, drawn, connects, origin, png, ylabel):
    """The PNG, with gnuplot: one row per worker (in order of first appearance), a bar per
    client from its `connected` to its `disconnected` line, and a line before it from the
    client's connect(): the time it waited for a worker (and the stamp's lag)."""
    rows = []
    for worker, _, _, _ in sorted(drawn, key=lambda b: b[2]):
        if worker not in rows:
            rows.append(worker)
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as data:
        for worker, number, began, ended in drawn:
            y = len(rows) - rows.index(worker)  # the first worker on top
            b, e = 1000 * (began - origin), 1000 * (ended - origin)
            c = 1000 * (connects[number] - origin)
            data.write("%.3f %d %.3f %s %.3f %.3f\n" % ((b + e) / 2, y, (e - b) / 2, number,
                                                       c, max(0.0, b - c)))
    ytics = ", ".join('"%s" %d' % (w, len(rows) - i) for i, w in enumerate(rows))
    height = 230 + 34 * max(len(rows), 4)
    script = """
set terminal pngcairo size 900,%d font 'sans,13' noenhanced
set output '%s'
set title "%s: who served whom, %d clients\\n(cN: the N-th client to connect)"
set xlabel 'time since the first client was due to connect (ms)'
set ylabel "%s"
set ytics (%s) nomirror
set yrange [0.4:%f]
set xrange [0:*]
set grid xtics
set style fill solid 0.8 border rgb '#1f4e79'
set key at screen 0.5, screen 0.01 center bottom horizontal samplen 2
set bmargin 6
plot '%s' using 1:2:3:(0.32) with boxxyerror lc rgb '#5b9bd5' \\
       title 'served: connected to disconnected, as logged', \\
     '' using 5:($2 - 0.4):6:(0) with vectors nohead lw 2 lc rgb '#c00000' \\
       title "waiting: from the client's connect()", \\
     '' using 1:2:(sprintf('c%%s', stringcolumn(4))) with labels font 'sans,10' notitle
""" % (height, png, design, len(drawn), ylabel, ytics, len(rows) + 0.6, data.name)
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.unlink(data.name)
    if p.returncode != 0:
        raise RuntimeError("gnuplot: %s" % p.stderr.strip())


def timeline(name, design_name, cfg):
    design = next((d for d in (designs.Design(*line) for line in designs.DESIGNS)
                   if d.name == design_name), None)
    if design is None:
        raise RuntimeError("%s: no design named %r in tests/bench/designs.py" % (name, design_name))
    if not design.available():
        raise RuntimeError("%s: %s is not built (make all)" % (name, design.argv[0]))
    server = LoggedServer(design.argv, design.one_worker())
    try:
        record, origin = scripted_load(server, cfg.clients, cfg.stagger)
        # Every client has seen end of stream: the server logged its disconnect before it closed.
    finally:
        rc, err = server.stop()
    if rc != 0:
        raise RuntimeError("%s exited %d: %s" % (design.name, rc, err))
    failed = {i: r for i, r in record.items() if not r.get("ok")}
    if failed:
        raise RuntimeError("%s: clients failed: %s" % (design.name, failed))
    drawn = bars(server.lines, record)
    unnamed = [b for b in drawn if b[0] is None]
    if len(drawn) != cfg.clients or unnamed:
        raise RuntimeError("%s: %d bars for %d clients, %d with no worker: its log names no "
                           "worker and no process of its own held the socket"
                           % (design.name, len(drawn), cfg.clients, len(unnamed)))
    lags = sorted(1000 * (began - record[number]["connected"]) for _, number, began, _ in drawn)
    workers = len({b[0] for b in drawn})
    summary = ("%s: %d clients, %d worker(s); a connected stamp came %.2f ms (median) to %.2f ms "
               "(max) after the client's connect(), a wait for a worker included" % (design.name, cfg.clients, workers,
                                                        lags[len(lags) // 2], lags[-1]))
    if cfg.text:
        for worker, number, began, ended in sorted(drawn, key=lambda b: b[2]):
            print("%s client=%d start_ms=%.1f end_ms=%.1f" % (
                worker, number, 1000 * (began - origin), 1000 * (ended - origin)))
    else:
        png = os.path.join(cfg.dir, "timeline-%s.png" % name)
        draw(design.name, drawn, {i: r["connected"] for i, r in record.items()}, origin, png,
             "the server's one thread" if design.one_worker() else
             "worker process (pid, from /proc)" if all(b[0].startswith("pid ") for b in drawn)
             else "worker, as the log names it")
        summary += "; wrote %s" % os.path.relpath(png, run.ROOT)
    print(summary, file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="only these pictures, by NAME (comma-separated): %s"
                        % ", ".join(n for n, _ in TIMELINES))
    parser.add_argument("--clients", type=int, default=12, help="clients in the script (12)")
    parser.add_argument("--stagger", type=float, default=60.0,
                        help="ms between one client's connect and the next's (60)")
    parser.add_argument("--text", action="store_true",
                        help="print each bar as a line instead of drawing (no gnuplot needed)")
    parser.add_argument("--dir", default=run.BENCH, help="where the PNGs go (tests/bench)")
    cfg = parser.parse_args()
    if cfg.clients < 1 or cfg.stagger < 0:
        parser.error("--clients must be at least 1 and --stagger at least 0")
    chosen = TIMELINES
    if cfg.only:
        wanted = cfg.only.split(",")
        chosen = [t for t in TIMELINES if t[0] in wanted]
        if len(chosen) != len(wanted):
            parser.error("--only takes: %s" % ", ".join(n for n, _ in TIMELINES))
    if not cfg.text and not shutil.which("gnuplot"):
        print("timeline: gnuplot is not installed (make bench-deps installs it)", file=sys.stderr)
        return 1
    status = 0
    for name, design_name in chosen:
        try:
            timeline(name, design_name, cfg)
        except (RuntimeError, OSError) as e:
            print("timeline: %s" % e, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
