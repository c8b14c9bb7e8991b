#!/usr/bin/env python3
"""tests/bench/run.py - every model of the lab measured side by side with Python's socketserver.

  tests/bench/run.py            the full benchmark (make bench): tables on stdout and in
                                tests/bench/RESULTS.md, the plot tests/bench/throughput.png
  tests/bench/run.py --quick    fewer loads, shorter runs (make bench-quick): the same, as
                                tests/bench/results-quick.md and throughput-quick.png
  tests/bench/run.py --syscalls-only   the strace pass alone (make bench-syscalls)

Method. The load is tests/client bench (one thread, every reply checked byte for byte).
Each server is started afresh for every cell (a load at a connection count) on --port 0;
its ready line gives the port; its log (one line per message, every server's included,
the Python peers' too) goes to a file on tmpfs, so logging costs what a cheap write()
costs. Server and client are pinned to different cores (taskset) when there are two.
Each cell starts with a warm-up that also sizes the runs: the number of messages is
chosen so that one repetition lasts about --seconds, and then --reps repetitions give
the median and the min-max. The server's CPU time (user + system from /proc/PID/stat,
its reaped children's included: forking servers are waited for until every child is
reaped) divided by the messages is the efficiency figure; the client's own CPU time,
divided by the run's wall time, says when the client is the bottleneck.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "tests", "bench")
CLIENT = os.path.join(ROOT, "tests", "client")
CROWD = os.path.join(ROOT, "tests", "tools", "misbehave.py")
PEER = os.path.join(BENCH, "py_upper.py")
TICK = os.sysconf("SC_CLK_TCK")

ONE_AT_A_TIME = "serves one client at a time"
PY_FORK_LIMIT = "ForkingTCPServer's max_children is 40: the 41st client waits for a child to end"


class Server:
    """One server under test: how to start it, its model, and what it cannot hold."""

    def __init__(self, name, argv, model, python=False, max_conns=None, why=None, env=None):
        self.name, self.argv, self.model, self.python = name, argv, model, python
        self.max_conns, self.why = max_conns, why

    def available(self):
        path = self.argv[0] if not self.python else PEER
        return os.path.exists(path) and (self.python or os.access(path, os.X_OK))

    def cannot(self, conns):
        """The reason this server cannot hold CONNS connections at once, or None."""
        if self.max_conns is not None and conns > self.max_conns:
            return self.why
        return None


def server_list():
    r = lambda *p: os.path.join(ROOT, *p)
    py = lambda mode: [sys.executable, PEER, "--mode", mode]
    return [
        Server("step 2 (loop)", [r("step2_loop", "server")], "sync", max_conns=1, why=ONE_AT_A_TIME),
        Server("step 3 (select)", [r("step3_select", "server")], "select"),
        Server("step 4 (threads)", [r("step4_threading", "server")], "threading"),
        Server("step 5 (fork)", [r("step5_forking", "server"), "--max-children", "5000"], "forking"),
        Server("step 6 upper sync", [r("step6_socketserver", "upper"), "--mode", "sync"], "sync",
               max_conns=1, why=ONE_AT_A_TIME),
        Server("step 6 upper threading", [r("step6_socketserver", "upper"), "--mode", "threading"],
               "threading"),
        Server("step 6 upper forking", [r("step6_socketserver", "upper"), "--mode", "forking",
                                        "--max-children", "5000"], "forking"),
        Server("epoll (ceiling)", [r("tests", "bench", "epoll_server")], "epoll"),
        Server("Python TCPServer", py("sync"), "sync", python=True, max_conns=1, why=ONE_AT_A_TIME),
        Server("Python ThreadingTCPServer", py("threading"), "threading", python=True),
        Server("Python ForkingTCPServer", py("forking"), "forking", python=True, max_conns=40,
               why=PY_FORK_LIMIT),
    ]


BUILTIN = {s.name for s in server_list()}


def python_peer(servers, server):
    """The Python server of the same model, if there is one (select and epoll have none)."""
    if server.python:
        return None
    return next((s for s in servers if s.python and s.model == server.model), None)


# ---------------------------------------------------------------- the machine and the cores

def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "cc": cc,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }


def pinning():
    """(server prefix, client prefix): taskset onto different cores when there are two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2 and shutil.which("taskset"):
        return (["taskset", "-c", str(cores[0])], ["taskset", "-c", str(cores[1])])
    return ([], [])


# ---------------------------------------------------------------- a server's life

class Running:
    """A started server: its pid, port and log file. Stopped with SIGTERM, always."""

    def __init__(self, server, prefix, logdir, extra=()):
        self.server = server
        self.log = tempfile.NamedTemporaryFile(dir=logdir, prefix="server-", delete=False)
        self.proc = subprocess.Popen(prefix + list(extra) + server.argv + ["--port", "0"],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.port = self._wait_ready()
        self.pid = self._server_pid()

    def _wait_ready(self, deadline=10.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with open(self.log.name, "rb") as f:
                line = f.readline()
            if line.endswith(b"\n"):
                m = re.match(rb"serving on (\S+):(\d+)$", line.strip())
                if not m:
                    raise RuntimeError("%s: unexpected first line %r" % (self.server.name, line))
                return int(m.group(2))
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %d before its ready line: %s" % (
                    self.server.name, self.proc.returncode, self.proc.stderr.read().decode()))
            time.sleep(0.01)  # polling a fact (the ready line), with a deadline
        raise RuntimeError("%s: no ready line within %gs" % (self.server.name, deadline))

    def _server_pid(self):
        """The server's own pid: under taskset it is the same process (taskset execs);
        under strace it is strace's child."""
        pid = self.proc.pid
        if os.path.basename(self.proc.args[0]) == "strace":
            for _ in range(500):
                kids = children(pid)
                if kids:
                    return kids[0]
                time.sleep(0.01)
        return pid

    def stop(self, timeout=15.0, read_log=None):
        """SIGTERM, then wait; READ_LOG, if given, is called with the log file, open for
        reading, once the server has exited (the log is deleted afterwards)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its whole session, children too
                self.proc.wait()
                print("warning: %s did not stop within %gs of SIGTERM; killed" % (
                    self.server.name, timeout), file=sys.stderr)
        end_leftovers(self.proc.pid, self.server.name)
        err = self.proc.stderr.read().decode(errors="replace").strip()
        self.proc.stderr.close()
        self.log.close()
        if read_log is not None:
            with open(self.log.name, "rb") as f:
                read_log(f)
        os.unlink(self.log.name)
        return self.proc.returncode, err


def log_dir(prefix):
    """A fresh folder for the servers' logs: in /dev/shm, in memory, so a server's log
    lines never wait on a disk; where /dev/shm is missing or not ours to write (a user
    other than root, on some machines), in TMPDIR (tempfile's choice) instead."""
    try:
        return tempfile.mkdtemp(prefix=prefix, dir="/dev/shm")
    except OSError:
        return tempfile.mkdtemp(prefix=prefix)


def end_leftovers(session, name):
    """A server that exited must have left no process of its session behind (a child it
    did not stop would also hold its standard error open, and reading it would never end):
    any such process is named in a warning and killed."""
    left = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != "Z":  # its session id
                left.append(int(entry))
    if left:
        print("warning: %s left %d process(es) behind after it exited: %s; killed"
              % (name, len(left), " ".join(map(str, left))), file=sys.stderr)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return left


def children(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cpu_ticks(pid):
    """utime + stime of every thread, plus cutime + cstime of the reaped children."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])


def wait_children_reaped(pid, deadline=10.0):
    """A forking server's CPU is complete once every child has ended and been reaped."""
    end = time.monotonic() + deadline
    while children(pid) and time.monotonic() < end:
        time.sleep(0.01)  # polling a fact (no child left), with a deadline


def memory_kib(pids):
    """(RSS, PSS) in KiB summed over PIDS. RSS counts pages shared after fork() once per
    process; PSS shares them out, so it is the fairer figure for forking servers."""
    rss = pss = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


# ---------------------------------------------------------------- the load

SUMMARY = re.compile(r"(\w+(?:/s)?)=([\d.]+)")


def bench(client_prefix, port, args, timeout):
    cmd = client_prefix + [CLIENT, "--port", str(port), "bench", "--timeout", str(timeout)] + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = p.stdout.strip().split("\n")[-1] if p.stdout.strip() else ""
    fields = {k: float(v) for k, v in SUMMARY.findall(line)}
    if p.returncode != 0 or "messages" not in fields:
        raise RuntimeError("client %s: exit %d: %s %s" % (" ".join(args), p.returncode, line,
                                                          p.stderr.strip()[:300]))
    return fields


def measure_cell(server, load, conns, cfg, pins, logdir):
    """Warm up, size the runs, then cfg.reps repetitions. Returns a dict of lists."""
    server_prefix, client_prefix = pins
    run = Running(server, server_prefix, logdir)
    try:
        base = ["-c", str(conns)]
        if load == "churn":
            base = ["--churn", "-c", str(conns), "-s", "64"]
        else:
            base += ["-s", str(load)]
        # Warm-up, growing until a run is long enough to time: it sizes the real runs.
        # A server that forks or starts a thread per connection does so while the first
        # messages wait, so a run also needs enough messages per connection for that
        # start-up to be a small part of it (churn is where it is measured on its own).
        if cfg.quick:
            per_conn = max(5, 300 // conns) if load != 16384 else 5
        else:
            per_conn = max(20, 2000 // conns) if load != 16384 else max(5, 50 // conns)
        if load == "churn":
            per_conn = 2
        n = 2
        for _ in range(10):
            r = bench(client_prefix, run.port, base + ["-n", str(n)], cfg.timeout)
            wait_children_reaped(run.pid)
            long_enough = r["seconds"] >= cfg.seconds / 2
            too_long = r["seconds"] >= max(3 * cfg.seconds, 1.0 if cfg.quick else 2.0)
            if (long_enough and n >= per_conn) or too_long or n >= 10 ** 7:
                break
            grow = cfg.seconds / max(r["seconds"], 1e-3) if not long_enough else per_conn / n
            n = int(n * min(10.0, max(2.0, grow)))
        n = max(2, int(n * min(2.0, cfg.seconds / max(r["seconds"], 1e-3))), min(n, per_conn))
        reps = {k: [] for k in ("msgs", "mbs", "p99", "cpu_us", "client")}
        for _ in range(cfg.reps):
            before = cpu_ticks(run.pid)
            r = bench(client_prefix, run.port, base + ["-n", str(n)], cfg.timeout)
            wait_children_reaped(run.pid)
            used = (cpu_ticks(run.pid) - before) / TICK
            reps["msgs"].append(r["msgs/s"])
            reps["mbs"].append(r["MB/s"])
            reps["p99"].append(r["p99_us"] / 1000.0)
            reps["cpu_us"].append(used * 1e6 / r["messages"])
            reps["client"].append(100.0 * r["client_cpu_s"] / max(r["seconds"], 1e-6))
        reps["n"] = n
        return reps
    finally:
        rc, err = run.stop()
        if rc != 0:
            print("warning: %s exited %d after %s x%d: %s" % (server.name, rc, load, conns, err),
                  file=sys.stderr)


def idle_memory(server, conns, pins, logdir):
    """Resident memory per connection of the server and all its children holding CONNS
    idle connections (each has had one round trip, so every thread or child exists)."""
    run = Running(server, pins[0], logdir)
    try:
        base_rss, base_pss = memory_kib(descendants(run.pid))
        crowd = subprocess.Popen([sys.executable, CROWD, "--port", str(run.port), "crowd",
                                  "-c", str(conns), "--rounds", "1", "--timeout", "30"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            lines = []
            for line in crowd.stdout:
                lines.append(line.strip())
                if line.startswith("answered"):
                    break
            if not lines or not lines[-1].startswith("answered %d," % conns):
                raise RuntimeError("crowd against %s: %s" % (server.name, " | ".join(lines[-3:])))
            rss, pss = memory_kib(descendants(run.pid))
            procs = len(descendants(run.pid))
        finally:
            crowd.stdin.close()
            crowd.wait(timeout=60)
        return {"rss_kib": (rss - base_rss) / conns, "pss_kib": (pss - base_pss) / conns,
                "base_rss_kib": base_rss, "procs": procs}
    finally:
        run.stop()


# ---------------------------------------------------------------- system calls

def syscalls(server, pins, logdir, messages):
    """strace -c -f: the server's system calls per round trip (10 connections, 64 B) and
    per short connection (connect, one round trip, close, 10 at once)."""
    out = {}
    for what, args, count in (
            ("steady", ["-c", "10", "-n", str(messages // 10), "-s", "64"], messages),
            ("churn", ["--churn", "-c", "10", "-n", str(messages // 100), "-s", "64"],
             10 * (messages // 100))):
        if server.cannot(10):
            out[what] = None
            continue
        trace = tempfile.NamedTemporaryFile(dir=logdir, prefix="strace-", delete=False)
        trace.close()
        run = Running(server, [], logdir, extra=["strace", "-f", "-c", "-o", trace.name, "--"])
        try:
            bench(pins[1], run.port, args, 120)
            wait_children_reaped(run.pid)
        finally:
            run.stop()
        calls = {}
        with open(trace.name) as f:
            for line in f:
                parts = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(parts) >= 5 and parts[0][0].isdigit() and not parts[-1].startswith("total"):
                    calls[parts[-1]] = int(parts[3])
        os.unlink(trace.name)
        out[what] = {"per": sum(calls.values()) / count,
                     "top": sorted(((c / count, name) for name, c in calls.items()), reverse=True)}
    return out


# ---------------------------------------------------------------- reporting

def med(xs):
    return statistics.median(xs)


def fmt_rate(x):
    return "{:,.0f}".format(x) if x >= 100 else ("%.1f" % x if x >= 10 else "%.2f" % x)


def fmt_range(xs, f=fmt_rate):
    return "%s (%s–%s)" % (f(med(xs)), f(min(xs)), f(max(xs)))


def fmt_ratio(x):
    if x is None:
        return "—"
    return ("%.0f×" % x) if x >= 100 else ("%.2f×" % x if x < 10 else "%.1f×" % x)


def load_name(load):
    if load == "churn":
        return "churn"
    return "%d KiB" % (load // 1024) if load % 1024 == 0 else "%d B" % load


def cell_table(results, servers, load, conns):
    rows = []
    ceiling = results.get(("epoll (ceiling)", load, conns))
    for s in servers:
        r = results.get((s.name, load, conns))
        if r is None:
            continue
        if isinstance(r, str):
            rows.append("| %s | skipped: %s | | | | | | | |" % (s.name, r))
            continue
        peer = python_peer(servers, s)
        pr = results.get((peer.name, load, conns)) if peer else None
        vs_peer = med(r["msgs"]) / med(pr["msgs"]) if isinstance(pr, dict) else None
        vs_ceiling = med(r["msgs"]) / med(ceiling["msgs"]) if isinstance(ceiling, dict) else None
        client = med(r["client"])
        rows.append("| %s | %s | %d | %s | %.2f | %.1f | %.0f%%%s | %s | %s |" % (
            s.name, fmt_range(r["msgs"]), r["n"], fmt_rate(med(r["mbs"])) if med(r["mbs"]) >= 100
            else "%.2f" % med(r["mbs"]), med(r["p99"]), med(r["cpu_us"]), client,
            " **client-bound**" if client >= 90 else "", fmt_ratio(vs_peer), fmt_ratio(vs_ceiling)))
    what = "connect, one 64 B round trip, close; %d at once" % conns if load == "churn" else \
        "%s messages, %d connection%s" % (load_name(load), conns, "s" if conns > 1 else "")
    head = ["### %s" % what, "",
            "| server | %s/s median (min–max) | %s | MB/s | p99 ms | server CPU µs/%s | client CPU | × Python peer | × ceiling |"
            % (("connections", "cycles/slot", "conn") if load == "churn" else ("msgs", "msgs/conn", "msg")),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    return head + rows + [""]


def headline(results, servers, loads, conns_list):
    """Ratios to the Python peer of the same model, 64 B, by connections: the headline."""
    lines = ["| server | " + " | ".join("%d conn" % c for c in conns_list) + " | churn |",
             "|---|" + "---:|" * (len(conns_list) + 1)]
    for s in servers:
        peer = python_peer(servers, s)
        ref_name = peer.name if peer else "epoll (ceiling)"
        if s.name == ref_name or s.python:
            continue
        cells = []
        for load, c in [(64, c) for c in conns_list] + [("churn", 10)]:
            r, p = results.get((s.name, load, c)), results.get((ref_name, load, c))
            if isinstance(r, dict) and isinstance(p, dict):
                cells.append(fmt_ratio(med(r["msgs"]) / med(p["msgs"])))
            else:
                cells.append("—")
        lines.append("| %s (÷ %s) | %s |" % (s.name, ref_name, " | ".join(cells)))
    return lines


def check_targets(results, servers):
    """Issue 6's targets, each with its figures: (holds, text)."""
    out = []
    g = lambda name, load, c: results.get((name, load, c))
    ok = lambda r: isinstance(r, dict)
    ceil = "epoll (ceiling)"
    c_servers = [s for s in servers if not s.python and s.name != ceil]
    # 1. 16 KiB: >= 0.8 x ceiling MB/s at 1 and 10 connections, p99 < 5 ms.
    for s in c_servers:
        for c in (1, 10):
            r, e = g(s.name, 16384, c), g(ceil, 16384, c)
            if not (ok(r) and ok(e)):
                continue
            ratio = med(r["mbs"]) / med(e["mbs"])
            p99 = med(r["p99"])
            out.append((ratio >= 0.8 and p99 < 5,
                        "16 KiB, %d conn: %s %.0f MB/s = %.2f× ceiling (≥ 0.8), p99 %.2f ms (< 5)"
                        % (c, s.name, med(r["mbs"]), ratio, p99)))
    # 2. step 3 against the ceiling.
    s3 = "step 3 (select)"
    for c, want in ((100, 0.85), (1000, 0.6)):
        r, e = g(s3, 64, c), g(ceil, 64, c)
        if ok(r) and ok(e):
            ratio = med(r["msgs"]) / med(e["msgs"])
            out.append((ratio >= want, "64 B, %d conn: step 3 %s msgs/s = %.2f× ceiling (≥ %.2f)"
                        % (c, fmt_rate(med(r["msgs"])), ratio, want)))
    r, e = g(s3, 64, 100), g(ceil, 64, 100)
    if ok(r) and ok(e):
        ratio = med(r["cpu_us"]) / med(e["cpu_us"])
        out.append((ratio <= 1.3, "64 B, 100 conn: step 3 CPU %.1f µs/msg = %.2f× ceiling's %.1f (≤ 1.3)"
                    % (med(r["cpu_us"]), ratio, med(e["cpu_us"]))))
    # 3. threading against Python threading.
    pyt = "Python ThreadingTCPServer"
    for name in ("step 4 (threads)", "step 6 upper threading"):
        for c in (100, 1000):
            r, p = g(name, 64, c), g(pyt, 64, c)
            if ok(r) and ok(p):
                ratio = med(r["msgs"]) / med(p["msgs"])
                cpu = med(r["cpu_us"]) / med(p["cpu_us"])
                out.append((ratio >= 1.2 and cpu <= 0.8,
                            "64 B, %d conn: %s %.2f× Python threading msgs/s (≥ 1.2), CPU/msg %.2f× (≤ 0.8)"
                            % (c, name, ratio, cpu)))
    # 4. churn.
    for name, ref, want in ((s3, ceil, 0.7), ("step 4 (threads)", pyt, 1.5),
                            ("step 5 (fork)", "Python ForkingTCPServer", 20),
                            ("step 6 upper forking", "Python ForkingTCPServer", 20)):
        r, p = g(name, "churn", 10), g(ref, "churn", 10)
        if ok(r) and ok(p):
            ratio = med(r["msgs"]) / med(p["msgs"])
            out.append((ratio >= want, "churn, 10 at once: %s %s conn/s = %.2f× %s (≥ %g)"
                        % (name, fmt_rate(med(r["msgs"])), ratio, ref, want)))
    # 5. framework overhead: each mode against the hand-written step of its model.
    for name, ref in (("step 6 upper sync", "step 2 (loop)"),
                      ("step 6 upper threading", "step 4 (threads)"),
                      ("step 6 upper forking", "step 5 (fork)")):
        ratios = []
        for key in results:
            if key[0] == name and ok(results[key]) and ok(results.get((ref,) + key[1:])):
                ratios.append((med(results[key]["msgs"]) / med(results[(ref,) + key[1:]]["msgs"]),
                               key[1:]))
        if ratios:
            worst = min(ratios)
            out.append((worst[0] >= 0.9, "framework: %s ÷ %s, worst cell %s %s: %.2f× (≥ 0.9; all cells %s)"
                        % (name, ref, load_name(worst[1][0]), worst[1][1], worst[0],
                           ", ".join("%.2f" % x for x, _ in sorted(ratios, key=lambda t: str(t[1]))))))
    # 6. the client.
    bound = [(k, med(v["client"])) for k, v in results.items() if ok(v) and med(v["client"]) >= 90]
    out.append((True, "client CPU ≥ 90%% of wall time (client-bound, marked in the tables) in %d of %d cells"
                % (len(bound), sum(1 for v in results.values() if ok(v)))))
    return out


def syscall_table(sys_results):
    lines = ["| server | syscalls per round trip (10 conn, 64 B) | the main ones, per round trip | syscalls per connection (churn) |",
             "|---|---:|---|---:|"]
    for name, r in sys_results:
        st, ch = r.get("steady"), r.get("churn")
        top = ", ".join("%s %.2f" % (n, c) for c, n in st["top"][:5] if c >= 0.05) if st else "—"
        lines.append("| %s | %s | %s | %s |" % (
            name, "%.2f" % st["per"] if st else "skipped: %s" % ONE_AT_A_TIME, top,
            "%.1f" % ch["per"] if ch else "—"))
    return lines


def plot(results, servers, conns_list, path, load=64):
    if not shutil.which("gnuplot"):
        print("gnuplot not found: no plot", file=sys.stderr)
        return
    datafile = path + ".dat"
    with open(datafile, "w") as f:
        for s in servers:
            f.write('"%s"\n' % s.name)
            for c in conns_list:
                r = results.get((s.name, load, c))
                if isinstance(r, dict):
                    f.write("%d %f %f %f\n" % (c, med(r["msgs"]), min(r["msgs"]), max(r["msgs"])))
            f.write("\n\n")
    colours = {"sync": "#1b9e77", "select": "#7570b3", "threading": "#d95f02",
               "forking": "#e7298a", "epoll": "#000000"}
    extra = ["#666666", "#a6761d", "#66a61e", "#e6ab02"]
    plots = []
    for i, s in enumerate(servers):
        if not any(isinstance(results.get((s.name, load, c)), dict) for c in conns_list):
            continue
        step6 = s.name.startswith("step 6")
        style = "lw 2.5 dt %d pt %d ps 1.3 lc rgb '%s'" % (
            2 if s.python else (4 if step6 else 1), 6 if s.python else (4 if step6 else 7),
            colours.get(s.model, extra[i % len(extra)]) if s.name in BUILTIN else extra[i % len(extra)])
        plots.append("'%s' index %d using 1:2:3:4 with yerrorlines %s title '%s'" % (
            datafile, i, style, s.name.replace("_", "\\_")))
    script = """
set terminal pngcairo size 1200,760 font 'sans,12' noenhanced
set output '%s'
set title 'Upper-case echo, %s messages: round trips per second (median; bars: min to max)'
set xlabel 'connections at once (log scale)'
set ylabel 'messages per second (log scale)'
set logscale xy
set xrange [0.7:1500]
set xtics (1, 10, 100, 1000)
set format y '%%.0s%%c'
set grid xtics ytics mytics
set key outside right top box spacing 1.2 title "solid: C steps 2-5, epoll\\ndash-dot: C step 6 upper\\ndashed: Python socketserver"
plot %s
""" % (path, load_name(load), ", \\\n     ".join(plots))
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if p.returncode != 0:
        print("gnuplot failed: %s" % p.stderr, file=sys.stderr)
    os.unlink(datafile)


# ---------------------------------------------------------------- RESULTS.md's sections

# RESULTS.md is written by more than one program: this one writes the file, and each
# other (tests/bench/designs.py) owns one section between these markers, which a
# rewrite by any of them keeps.
SECTION_BEGIN = "<!-- section %s: written by %s -->"
SECTION_END = "<!-- end of section %s -->"
SECTION = re.compile(r"<!-- section (\S+): written by .*? -->\n.*?<!-- end of section \1 -->\n",
                     re.S)


def other_sections(text, but=None):
    """The marked sections of TEXT, each whole, except the one named BUT."""
    return [m.group(0) for m in SECTION.finditer(text) if m.group(1) != but]


def write_section(path, name, writer, body):
    """Put BODY into PATH as the section NAME (replacing the old one, or appended)."""
    old = open(path).read() if os.path.exists(path) else ""
    section = "%s\n%s\n%s\n" % (SECTION_BEGIN % (name, writer), body.rstrip("\n"),
                                  SECTION_END % name)
    kept = SECTION.sub(lambda m: section if m.group(1) == name else m.group(0), old)
    if kept == old and section not in old:
        kept = old.rstrip("\n") + ("\n\n" if old else "") + section
    with open(path, "w") as f:
        f.write(kept)


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="bench-quick: fewer loads, shorter runs")
    parser.add_argument("--syscalls-only", action="store_true", help="only the strace pass")
    parser.add_argument("--no-syscalls", action="store_true", help="skip the strace pass")
    parser.add_argument("--only", help="only servers whose name contains this (comma-separated)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME:MODEL:COMMAND",
                        help="also measure COMMAND (e.g. a patched copy of a step), as NAME, of "
                             "MODEL (sync, select, threading, forking, epoll)")
    parser.add_argument("--loads", help="only these cells, e.g. '64x100,16384x1,churnx10'")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-memory cells")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, help="length of one repetition")
    parser.add_argument("--timeout", type=float, default=60.0, help="the client's --timeout")
    parser.add_argument("--out", help="the Markdown file (default RESULTS.md, or results-quick.md)")
    parser.add_argument("--png", help="the plot (default throughput.png, or throughput-quick.png)")
    cfg = parser.parse_args()
    quick = cfg.quick
    cfg.seconds = cfg.seconds or (0.15 if quick else 0.8)
    cfg.out = cfg.out or os.path.join(BENCH, "results-quick.md" if quick else "RESULTS.md")
    cfg.png = cfg.png or os.path.join(BENCH, "throughput-quick.png" if quick else "throughput.png")
    conns_list = [1, 10, 100] if quick else [1, 10, 100, 1000]
    loads = [(64, c) for c in conns_list] + [(16384, c) for c in ((1,) if quick else conns_list)]
    loads += [("churn", 10)]
    if cfg.loads:
        loads = [(int(l) if l.isdigit() else l, int(c))
                 for l, c in (cell.split("x") for cell in cfg.loads.split(","))]
    idle_conns = 200 if quick else 1000

    servers = server_list()
    for spec in cfg.extra:
        name, model, command = spec.split(":", 2)
        servers.append(Server(name, command.split(), model,
                              max_conns=1 if model == "sync" else None, why=ONE_AT_A_TIME))
    missing = [s.name for s in servers if not s.available()]
    servers = [s for s in servers if s.available()]
    if cfg.only:
        servers = [s for s in servers if any(w in s.name for w in cfg.only.split(","))]
    pins = pinning()
    info = machine()
    load_before = os.getloadavg()
    logdir = log_dir("bench-")
    started = time.monotonic()

    def say(text):
        print(text, file=sys.stderr, flush=True)

    def on_signal(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    results, idle, sys_results = {}, {}, []
    try:
        if not cfg.syscalls_only:
            for s in servers:
                for load, c in loads:
                    why = s.cannot(c)
                    if why:
                        results[(s.name, load, c)] = why
                        continue
                    say("  %-26s %-6s x%-4d ..." % (s.name, load_name(load), c))
                    try:
                        results[(s.name, load, c)] = measure_cell(s, load, c, cfg, pins, logdir)
                    except RuntimeError as e:
                        results[(s.name, load, c)] = "failed: %s" % str(e).replace("|", "/")[:200]
                        say("    " + results[(s.name, load, c)])
                why = s.cannot(idle_conns)
                if cfg.no_idle:
                    pass
                elif why:
                    idle[s.name] = why
                else:
                    say("  %-26s idle x%d ..." % (s.name, idle_conns))
                    try:
                        idle[s.name] = idle_memory(s, idle_conns, pins, logdir)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        idle[s.name] = "failed: %s" % e
        if (cfg.syscalls_only or not cfg.no_syscalls) and shutil.which("strace"):
            for s in servers:
                say("  %-26s strace ..." % s.name)
                try:
                    sys_results.append((s.name, syscalls(s, pins, logdir, 2000 if quick else 10000)))
                except RuntimeError as e:
                    say("    failed: %s" % e)
    except KeyboardInterrupt:
        say("interrupted: reporting what was measured")
    finally:
        shutil.rmtree(logdir, ignore_errors=True)

    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    doc = ["# Benchmark results%s" % (" (quick)" if quick else ""), "",
           "Measured %s by `make %s` (`tests/bench/run.py%s`) in %.0f s." % (
               info["date"], "bench-quick" if quick else ("bench-syscalls" if cfg.syscalls_only else "bench"),
               " --quick" if quick else (" --syscalls-only" if cfg.syscalls_only else ""), elapsed),
           "Machine: %s, %d cores, Linux %s; %s; Python %s. Load average before %.2f, after %.2f%s." % (
               info["cpu"], info["cores"], info["kernel"], info["cc"], info["python"],
               load_before[0], load_after[0],
               " (other work was running: treat the absolute numbers with care)" if load_before[0] > 0.5 else ""),
           "Server pinned to core %s, client to core %s." % (pins[0][-1], pins[1][-1]) if pins[0]
           else "One core: server and client share it (no pinning).",
           "", "Method: `tests/client bench` (one thread, every byte checked) against each server started "
           "afresh per cell on `--port 0`; a warm-up sizes each run to about %.2g s; %d repetitions, "
           "median (min–max). Every server logs one line per message (the Python peers too) to a file on "
           "tmpfs: the logging is part of each server's cost (the client's messages hold newlines and NULs, so "
           "a line-buffered log line per message costs about 1.5 write() calls for 64 B, more for 16 KiB). "
           "*msgs/conn*: messages per connection in each repetition; a server that starts a thread or a process "
           "per connection does so inside the timed phase, so that start-up is spread over them. *Server CPU* is user + system time from "
           "`/proc/PID/stat`, threads and reaped children included, divided by the messages (or "
           "connections); it includes accepting and thread or process creation. *Client CPU* is the "
           "client's CPU time over the run's wall time: near 100%% the client, not the server, is the "
           "limit. *× Python peer*: the Python socketserver server of the same model, same run; select "
           "and epoll have none. *× ceiling*: the single-thread epoll server `tests/bench/epoll_server`."
           % (cfg.seconds, cfg.reps), ""]
    if missing:
        doc += ["Not built, so not measured: %s." % ", ".join(missing), ""]
    if results:
        doc += ["## Headline: each server ÷ the Python server of its model (64 B messages)", ""]
        doc += headline(results, servers, loads, conns_list) + [""]
        doc += ["## Throughput, latency and CPU", ""]
        for load, c in loads:
            doc += cell_table(results, servers, load, c)
    if idle:
        doc += ["## Idle memory: %d idle connections (each after one round trip)" % idle_conns, "",
                "| server | RSS per connection | PSS per connection | processes | server RSS before |",
                "|---|---:|---:|---:|---:|"]
        for s in servers:
            m = idle.get(s.name)
            if isinstance(m, dict):
                doc.append("| %s | %.1f KiB | %.1f KiB | %d | %.0f KiB |" % (
                    s.name, m["rss_kib"], m["pss_kib"], m["procs"], m["base_rss_kib"]))
            elif m:
                doc.append("| %s | skipped: %s | | | |" % (s.name, m))
        doc += ["", "RSS sums each process's resident pages (pages shared after fork() counted once "
                "per child, as the issue defines it); PSS shares them out among the processes that map them.", ""]
    if sys_results:
        doc += ["## System calls (`strace -c -f`, the server and all its threads and children)", ""]
        doc += syscall_table(sys_results) + [""]
    if results:
        doc += ["## Targets (issue 6)", ""]
        for holds, text in check_targets(results, servers):
            doc.append("- %s %s" % ("**holds**:" if holds else "**missed**:", text))
        doc.append("")
    text = "\n".join(doc)
    print(text)
    if not cfg.syscalls_only:
        kept = other_sections(open(cfg.out).read()) if os.path.exists(cfg.out) else []
        with open(cfg.out, "w") as f:
            f.write(text + "".join("\n" + k for k in kept))
        if results:
            plot(results, servers, conns_list, cfg.png)
        with open(os.path.splitext(cfg.out)[0] + ".json", "w") as f:
            json.dump({"machine": info, "results": {"|".join(map(str, k)): v for k, v in results.items()},
                       "idle": idle, "syscalls": sys_results}, f, indent=1)
        say("wrote %s, %s" % (os.path.relpath(cfg.out, ROOT), os.path.relpath(cfg.png, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
