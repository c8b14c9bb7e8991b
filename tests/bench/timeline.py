#!/usr/bin/env python3
"""tests/bench/timeline.py - a picture of who served whom: one row per worker, one bar a client.

  tests/bench/timeline.py            every picture (make timeline):
                                     tests/bench/timeline-NAME.png for each of TIMELINES
  tests/bench/timeline.py --only step4 --text   one design, its bars as text, no gnuplot

Besides the designs (one row per worker), three pictures of their own:
- step2: steps 1-2's one client at a time, one row per client: each waits in the backlog
  (red) until the one before it has gone;
- thread-life: step 4 under strace: each thread's life, from pthread_create() (the main
  thread's clone3()) through its client's session (recvfrom/sendto) and its exit, to the
  join, which the main thread makes when its wait next returns (a client or the tick);
- signal-race: a diagram, not a run: a stop signal that comes between the check of a
  flag and the block in accept() is lost; the self-pipe keeps it.

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

# A picture is one line: the PNG's name (timeline-NAME.png), the design it draws, and how
# many clients its script runs by default.
TIMELINES = [
    ("step2", "iterative: step 2", 4),
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


def round_trip(sock, message):
    """Send MESSAGE, and read as many bytes back (fewer if the server closes)."""
    sock.sendall(message)
    reply = b""
    while len(reply) < len(message):
        chunk = sock.recv(len(message) - len(reply))
        if not chunk:
            break
        reply += chunk
    return reply


def run_client(index, server, start_at, hold_ms, record, timeout=10.0):
    """One scripted client: connect at START_AT, one round trip, hold HOLD_MS (and until
    the harness knows who serves it), close."""
    try:
        time.sleep(max(0.0, start_at - clock()))  # pacing the load, not waiting on a fact
        with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
            record[index].update(connected=clock(), port=s.getsockname()[1])
            message = b"client %d\n" % index
            reply = round_trip(s, message)
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


def draw(design, drawn, connects, origin, png, ylabel, by_client=False):
    """The PNG, with gnuplot: one row per worker (in order of first appearance), or with
    BY_CLIENT one row per client, a bar per client from its `connected` to its
    `disconnected` line, and a line before it from the client's connect(): the time it
    waited for a worker (and the stamp's lag)."""
    rows = []
    for worker, number, _, _ in sorted(drawn, key=lambda b: b[2]):
        row = "c%d" % number if by_client else worker
        if row not in rows:
            rows.append(row)
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as data:
        for worker, number, began, ended in drawn:
            y = len(rows) - rows.index("c%d" % number if by_client else worker)  # the first on top
            b, e = 1000 * (began - origin), 1000 * (ended - origin)
            c = 1000 * (connects[number] - origin)
            data.write("%.3f %d %.3f %s %.3f %.3f\n" % ((b + e) / 2, y, (e - b) / 2, number,
                                                       c, max(0.0, b - c)))
    ytics = ", ".join('"%s" %d' % (w, len(rows) - i) for i, w in enumerate(rows))
    height = 230 + 34 * max(len(rows), 4)
    script = """
set terminal pngcairo size 900,%d font 'sans,13' noenhanced
set output '%s'
set title "%s: %s, %d clients\\n(cN: the N-th client to connect)"
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
""" % (height, png, design, "one at a time" if by_client else "who served whom", len(drawn),
       ylabel, ytics, len(rows) + 0.6, data.name)
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.unlink(data.name)
    if p.returncode != 0:
        raise RuntimeError("gnuplot: %s" % p.stderr.strip())


def timeline(name, design_name, cfg, clients):
    design = next((d for d in (designs.Design(*line) for line in designs.DESIGNS)
                   if d.name == design_name), None)
    if design is None:
        raise RuntimeError("%s: no design named %r in tests/bench/designs.py" % (name, design_name))
    if not design.available():
        raise RuntimeError("%s: %s is not built (make all)" % (name, design.argv[0]))
    server = LoggedServer(design.argv, design.one_worker())
    try:
        record, origin = scripted_load(server, clients, cfg.stagger)
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
    if len(drawn) != clients or unnamed:
        raise RuntimeError("%s: %d bars for %d clients, %d with no worker: its log names no "
                           "worker and no process of its own held the socket"
                           % (design.name, len(drawn), clients, len(unnamed)))
    lags = sorted(1000 * (began - record[number]["connected"]) for _, number, began, _ in drawn)
    workers = len({b[0] for b in drawn})
    summary = ("%s: %d clients, %d worker(s); a connected stamp came %.2f ms (median) to %.2f ms "
               "(max) after the client's connect(), a wait for a worker included" % (design.name, clients, workers,
                                                        lags[len(lags) // 2], lags[-1]))
    if cfg.text:
        for worker, number, began, ended in sorted(drawn, key=lambda b: b[2]):
            print("%s client=%d start_ms=%.1f end_ms=%.1f" % (
                worker, number, 1000 * (began - origin), 1000 * (ended - origin)))
    else:
        png = os.path.join(cfg.dir, "timeline-%s.png" % name)
        draw(design.name, drawn, {i: r["connected"] for i, r in record.items()}, origin, png,
             "client (one served at a time)" if design.one_worker() else
             "worker process (pid, from /proc)" if all(b[0].startswith("pid ") for b in drawn)
             else "worker, as the log names it", by_client=design.one_worker())
        summary += "; wrote %s" % os.path.relpath(png, run.ROOT)
    print(summary, file=sys.stderr)


# A thread's life: step 4 under strace, three clients whose sessions overlap. Each is
# (when it connects, in ms after the first, its messages, the ms it waits after each).
THREAD_CLIENTS = ((0, (b"hello\n", b"bye\n"), 300), (200, (b"second\n",), 500), (1100, (b"third\n",), 250))
STRACE_LINE = re.compile(r"^(?P<t>\d+\.\d+) (?P<call>\w+)\(.*\) += (?P<result>-?\d+|\?).*<(?P<took>[\d.]+)>$")


def talk_for_a_while(port, start_at, messages, pause_ms, errors):
    """One client: connect at START_AT, send each message, read its reply, pause; close."""
    try:
        time.sleep(max(0.0, start_at - clock()))  # pacing the script, not waiting on a fact
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for message in messages:
                reply = round_trip(s, message)
                if reply != message.upper():
                    errors.append("%r came back as %r" % (message, reply))
                time.sleep(pause_ms / 1000.0)  # the client's thinking time: the load itself
    except OSError as e:
        errors.append(str(e))


def traced_calls(path):
    """The complete lines of one strace -ff file: (return time, call, result) each."""
    calls = []
    with open(path) as f:
        for line in f:
            m = STRACE_LINE.match(line.rstrip("\n"))
            if m:
                calls.append((float(m.group("t")) + float(m.group("took")), m.group("call"), m.group("result")))
            elif line.split(" ", 2)[1:2] == ["exit(0)"]:
                calls.append((float(line.split(" ", 1)[0]), "exit", "?"))
    return calls


def lives(prefix, server_pid):
    """Each thread the server made, in the order made: its name, created, served (the
    times of its recvfrom and sendto), ended, joined (None while not yet); and the times
    the main thread's wait returned."""
    main = traced_calls("%s.%d" % (prefix, server_pid))
    wakes = [t for t, call, _ in main if call == "poll"]
    out = []
    made = [(t, int(result)) for t, call, result in main if call in ("clone", "clone3") and result.isdigit()]
    for number, (created, tid) in enumerate(made, 1):
        try:
            own = traced_calls("%s.%d" % (prefix, tid))
        except OSError:
            own = []
        ended = next((t for t, call, _ in own if call == "exit"), None)
        served = [(t, call) for t, call, _ in own if call in ("recvfrom", "sendto")]
        joined = next((t for t in wakes if ended is not None and t > ended), None)
        out.append(("Thread-%d" % number, created, served, ended, joined))
    return out, wakes


def all_joined(prefix, server_pid, count):
    made, _ = lives(prefix, server_pid)
    return len(made) == count and all(life[4] is not None for life in made)


def thread_life(name, cfg):
    """Step 4 under strace: each thread from its creation to its join."""
    for tool in ("strace",) + (() if cfg.text else ("gnuplot",)):
        if not shutil.which(tool):
            raise RuntimeError("%s: %s is not installed (make bench-deps installs it)" % (name, tool))
    program = os.path.join(run.ROOT, "step4_threading", "server")
    if not os.access(program, os.X_OK):
        raise RuntimeError("%s: %s is not built (make all)" % (name, program))
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "trace")
        server = LoggedServer(["strace", "-f", "-ff", "-ttt", "-T", "-qq", "-e",
                               "trace=clone,clone3,exit,poll,recvfrom,sendto", "-o", prefix,
                               program, "--poll-interval", "0.5"], one_worker=False)
        errors, clients = [], []
        try:
            server_pid = run.children(server.proc.pid)[0]
            start = clock() + 0.05
            # strace's times are the wall clock's: the same start, on that clock.
            origin = start + time.time() - clock()
            for at, messages, pause in THREAD_CLIENTS:
                clients.append(threading.Thread(target=talk_for_a_while, args=(
                    server.port, start + at / 1000.0, messages, pause, errors)))
                clients[-1].start()
            for client in clients:
                client.join()
            # The main thread joins a finished thread when its wait next returns: wait
            # (with a deadline) until strace has shown that for every thread.
            end = time.monotonic() + 10
            while not all_joined(prefix, server_pid, len(THREAD_CLIENTS)) and time.monotonic() < end:
                time.sleep(0.02)  # polling a fact (strace's file), with a deadline
            made, wakes = lives(prefix, server_pid)
            os.kill(server_pid, signal.SIGTERM)
        finally:
            rc, err = server.stop()
    if errors:
        raise RuntimeError("%s: clients failed: %s" % (name, errors))
    if rc != 0:
        raise RuntimeError("%s: strace or step 4 exited %d: %s" % (name, rc, err))
    if len(made) != len(THREAD_CLIENTS) or any(None in (life[3], life[4]) for life in made):
        raise RuntimeError("%s: %d threads seen, for %d clients, not all ended and joined: %s"
                           % (name, len(made), len(THREAD_CLIENTS), made))
    if cfg.text:
        for thread, created, served, ended, joined in made:
            print("%s created_ms=%.1f served=%d ended_ms=%.1f joined_ms=%.1f" % (
                thread, 1000 * (created - origin), len(served), 1000 * (ended - origin),
                1000 * (joined - origin)))
    else:
        png = os.path.join(cfg.dir, "timeline-%s.png" % name)
        draw_lives(made, [t for t in wakes if t <= made[-1][4]], origin, png)
        print("%s: %d threads, each created, served, ended and joined; wrote %s"
              % (name, len(made), os.path.relpath(png, run.ROOT)), file=sys.stderr)


def draw_lives(made, wakes, origin, png):
    """One row per thread under the main thread's (a dot each time its wait returned): an
    arrow down at pthread_create(), a bar while the thread runs (a tick at each recv and
    send), a dashed wait from its end to its join."""
    ms = lambda t: 1000 * (t - origin)  # noqa: E731
    rows = len(made)
    bars, ticks, waits = [], [], []
    woken = ["%.3f %d" % (ms(t), rows + 1) for t in wakes if ms(t) >= 0]
    for i, (thread, created, served, ended, joined) in enumerate(made):
        y = rows - i
        bars.append("%.3f %d %.3f" % ((ms(created) + ms(ended)) / 2, y, (ms(ended) - ms(created)) / 2))
        ticks += ["%.3f %d" % (ms(t), y) for t, _ in served]
        waits.append("%.3f %d %.3f %.3f %s" % (ms(ended), y, ms(joined) - ms(ended), ms(created), thread))
    main = rows + 1
    script = """
set terminal pngcairo size 900,%d font 'sans,13' noenhanced
set output '%s'
set title "step 4: a thread's life, from a run under strace\\n(--poll-interval 0.5: the main thread's wait returns for a client, or after 0.5 s)"
set xlabel 'time since the first client was due to connect (ms)'
set ytics (%s) nomirror
set yrange [0.4:%f]
set xrange [0:*]
set grid xtics
set key below center maxrows 3 Left reverse samplen 2 width 2
$bars << EOD
%s
EOD
$ticks << EOD
%s
EOD
$waits << EOD
%s
EOD
$woken << EOD
%s
EOD
plot $woken using 1:2 with points pt 7 ps 0.8 lc rgb '#000000' \\
       title "the main thread's wait returns", \\
     $waits using 4:(%d):(0):($2 + 0.3 - %d) with vectors lw 2 lc rgb '#2e7d32' \\
       title 'pthread_create() (clone3)', \\
     $bars using 1:2:3:(0.25) with boxxyerror fill solid 0.8 lc rgb '#5b9bd5' \\
       title 'the thread serves its client', \\
     $ticks using 1:2 with points pt 2 ps 1.3 lc rgb '#1f4e79' title 'recv() or send()', \\
     $waits using 1:2:3:(0) with vectors nohead dt 2 lw 2 lc rgb '#7f7f7f' \\
       title 'ended, not yet joined: its stack is kept', \\
     $waits using ($1 + $3):2 with points pt 7 ps 1.6 lc rgb '#c00000' \\
       title 'joined (pthread_tryjoin_np), at that return', \\
     $waits using ($1 + $3):(%d):(0):($2 - %d) with vectors nohead dt 3 lc rgb '#c00000' notitle
""" % (340 + 60 * main, png,
       ", ".join('"%s" %d' % (life[0], rows - i) for i, life in enumerate(made)) + ', "main thread" %d' % main,
       main + 0.6, "\n".join(bars), "\n".join(ticks), "\n".join(waits), "\n".join(woken),
       main, main, main, main)
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("gnuplot: %s" % p.stderr.strip())


def signal_race(name, cfg):
    """A diagram of the order of events, not a measurement: the same stop signal, coming
    between the loop's check and its wait, against a flag and against the self-pipe."""
    if cfg.text:
        return
    if not shutil.which("gnuplot"):
        raise RuntimeError("%s: gnuplot is not installed (make bench-deps installs it)" % name)
    png = os.path.join(cfg.dir, "timeline-%s.png" % name)
    script = """
set terminal pngcairo size 1000,520 font 'sans,13' noenhanced
set output '%s'
set title "A stop signal that comes between the check and the wait\\n(a diagram of the order of events, not a measurement)"
unset xtics
set xlabel 'time: the same events, in the same order, in both'
set ytics ("flag: main thread" 4, "flag: handler" 3.2, "self-pipe: main thread" 1.8, "self-pipe: handler" 1) nomirror
set yrange [0.4:4.7]
set xrange [0:10]
set style fill solid 0.8
set object 1 rect from 0.2,3.8 to 2.2,4.2 fc rgb '#5b9bd5'
set label 1 "stop is 0: go on" at 0.2,4.45 font 'sans,11'
set object 2 rect from 3.4,3.8 to 10,4.2 fc rgb '#c00000'
set label 2 "accept(): blocks for ever; nobody reads stop again" at 3.5,4.45 font 'sans,11'
set arrow 1 from 2.8,3.2 to 2.8,3.8 lw 2 lc rgb '#2e7d32'
set label 3 "SIGTERM: the handler sets stop = 1, too late" at 3.0,3.2 font 'sans,11'
set object 3 rect from 0.2,1.6 to 2.2,2.0 fc rgb '#5b9bd5'
set label 4 "no flag to check" at 0.2,2.25 font 'sans,11'
set object 4 rect from 3.4,1.6 to 3.7,2.0 fc rgb '#5b9bd5'
set object 5 rect from 3.7,1.6 to 6.2,2.0 fc rgb '#2e7d32'
set label 5 "poll(listener, stop pipe): the byte is there, it returns at once" at 3.5,2.25 font 'sans,11'
set label 6 "clean stop, exit 0" at 3.8,1.8 font 'sans,11' tc rgb '#ffffff'
set arrow 2 from 2.8,1.0 to 3.5,1.6 lw 2 lc rgb '#2e7d32'
set label 7 "SIGTERM: the handler writes one byte into the stop pipe" at 3.0,0.85 font 'sans,11'
plot NaN notitle
""" % png
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("gnuplot: %s" % p.stderr.strip())
    print("%s: a diagram; wrote %s" % (name, os.path.relpath(png, run.ROOT)), file=sys.stderr)


# The pictures that are not a design's timeline: their names and what draws each.
PICTURES = [("thread-life", thread_life), ("signal-race", signal_race)]


def main():
    names = [t[0] for t in TIMELINES] + [n for n, _ in PICTURES]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="only these pictures, by NAME (comma-separated): %s"
                        % ", ".join(names))
    parser.add_argument("--clients", type=int,
                        help="clients in a design's script (12; step2: 4)")
    parser.add_argument("--stagger", type=float, default=60.0,
                        help="ms between one client's connect and the next's (60)")
    parser.add_argument("--text", action="store_true",
                        help="print each bar as a line instead of drawing (no gnuplot needed)")
    parser.add_argument("--dir", default=run.BENCH, help="where the PNGs go (tests/bench)")
    cfg = parser.parse_args()
    if (cfg.clients is not None and cfg.clients < 1) or cfg.stagger < 0:
        parser.error("--clients must be at least 1 and --stagger at least 0")
    wanted = cfg.only.split(",") if cfg.only else names
    if not set(wanted) <= set(names):
        parser.error("--only takes: %s" % ", ".join(names))
    if not cfg.text and not shutil.which("gnuplot"):
        print("timeline: gnuplot is not installed (make bench-deps installs it)", file=sys.stderr)
        return 1
    status = 0
    for line in TIMELINES:
        if line[0] not in wanted:
            continue
        try:
            timeline(line[0], line[1], cfg, cfg.clients or (line[2] if len(line) > 2 else 12))
        except (RuntimeError, OSError) as e:
            print("timeline: %s" % e, file=sys.stderr)
            status = 1
    for name, picture in PICTURES:
        if name not in wanted:
            continue
        try:
            picture(name, cfg)
        except (RuntimeError, OSError) as e:
            print("timeline: %s" % e, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
