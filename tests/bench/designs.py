#!/usr/bin/env python3
"""tests/bench/designs.py - Stevens' Figure 30.1 today: what each server design costs a client.

  tests/bench/designs.py       every design (make bench-designs): the table on stdout and
                               as the section "designs" of tests/bench/RESULTS.md

The workload is Stevens' (UNIX Network Programming vol. 1, ch. 30): K clients at once,
each L times: connect, send B bytes, read the B bytes back, close. It is the shared
client's churn mode, `tests/client bench --churn -c K -n L -s B` (one process, K slots
on epoll; every reply checked byte for byte). The default is 10 x 500 connections of
4,000 bytes: the 5,000 connections x 4,000 bytes of Dan Kegel's Linux run of Stevens'
servers in 2000, whose figures the section shows beside ours.

A second workload, for issue 14's targets: 10 persistent connections, --messages round
trips of 64 B each, against pools of 10 workers beside step 4 and step 5 (PERSISTENT).
The section ends with the targets, each a ratio of two medians.

For each design, started afresh for each repetition on --port 0, pinned to its own core
(the client to the other, as tests/bench/run.py does):
- server CPU per connection: user + system time of the server, its threads and its
  children (utime + stime + cutime + cstime of /proc/PID/stat, as Stevens' pr_cpu_time
  sums them; for children that stay, such as a pool of processes, their own), read once
  the warm-up's children are reaped and again once the run's are, divided by the
  connections;
- the same minus the iterative server's of the same code (steps and epoll: step 2; step 6:
  upper --mode sync; Python: TCPServer): Stevens' "process control" column;
- connections per second and the p99 of a whole cycle (connect to end of stream), as the
  client measures them.
Each figure is the median of --reps repetitions, taken in turn: every design once, then
every design again.

Who gets the connection: every server logs `[WORKER: ]IP:PORT connected` when a worker
takes a client. Where the log names the worker (step 4's Thread-N, the Python peers'
Thread-N and Process-PID), the section counts the connections each worker served in the
last repetition; where it names none, it says so.
"""
import argparse
import collections
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the benchmark's server handling, /proc readers and client call)

# A design is one line: Stevens' server number ("—" for a one-thread event loop, which his
# chapter does not measure), the name shown, and its command from the repository's root.
# Every program of one code base (the C steps and epoll; step 6; the Python peers) is
# read against that code base's iterative server (serv00), the first one listed.
DESIGNS = [
    ("serv00", "iterative: step 2", "step2_loop/server"),
    ("serv00", "iterative: step 6 upper --mode sync", "step6_socketserver/upper --mode sync"),
    ("serv00", "iterative: Python TCPServer", "python3 tests/bench/py_upper.py --mode sync"),
    ("serv01", "fork per client: step 5", "step5_forking/server"),
    ("serv01", "fork per client: step 6 upper --mode forking", "step6_socketserver/upper --mode forking --log-worker"),
    ("serv01", "fork per client: Python ForkingTCPServer", "python3 tests/bench/py_upper.py --mode forking"),
    ("serv06", "thread per client: step 4", "step4_threading/server"),
    ("serv06", "thread per client: step 6 upper --mode threading", "step6_socketserver/upper --mode threading --log-worker"),
    ("serv06", "thread per client: Python ThreadingTCPServer", "python3 tests/bench/py_upper.py --mode threading"),
    ("serv02", "prefork, no lock: step 6 upper", "step6_socketserver/upper --mode prefork --accept-lock none --log-worker"),
    ("serv03", "prefork, file lock: step 6 upper", "step6_socketserver/upper --mode prefork --accept-lock file --log-worker"),
    ("serv04", "prefork, shared mutex: step 6 upper", "step6_socketserver/upper --mode prefork --accept-lock mutex --log-worker"),
    ("serv07", "pool, workers accept: step 6 upper", "step6_socketserver/upper --mode pool --accept-by workers --log-worker"),
    ("serv08", "pool, main accepts: step 6 upper", "step6_socketserver/upper --mode pool --accept-by main --log-worker"),
    ("—", "select, one thread: step 3", "step3_select/server"),
    ("—", "epoll, one thread: the ceiling", "tests/bench/epoll_server"),
]

# The targets' second workload: 10 persistent connections, 64 B round trips, against
# pools of 10 (a worker per connection, as step 4 and step 5 give them).
PERSISTENT = [
    ("serv06", "thread per client: step 4", "step4_threading/server"),
    ("serv01", "fork per client: step 5", "step5_forking/server"),
    ("serv02", "prefork, no lock: step 6 upper, 10 workers", "step6_socketserver/upper --mode prefork --accept-lock none --workers 10"),
    ("serv04", "prefork, shared mutex: step 6 upper, 10 workers", "step6_socketserver/upper --mode prefork --accept-lock mutex --workers 10"),
    ("serv07", "pool, workers accept: step 6 upper, 10 workers", "step6_socketserver/upper --mode pool --accept-by workers --workers 10"),
    ("serv08", "pool, main accepts: step 6 upper, 10 workers", "step6_socketserver/upper --mode pool --accept-by main --workers 10"),
    ("—", "epoll, one thread: the ceiling", "tests/bench/epoll_server"),
]

# Dan Kegel's Linux run of Stevens' servers, 2000: user + system seconds for 5,000
# connections of 4,000 bytes. N/A: Linux could then not run or not measure that server.
LINUX_2000 = [
    ("serv00", "iterative", "5.5"),
    ("serv01", "fork per client", "21.5"),
    ("serv02–05", "preforked (which of the variants is not recorded)", "7.7"),
    ("serv04", "preforked, process-shared mutex around accept", "N/A"),
    ("serv06", "thread per client", "N/A"),
    ("serv08", "prethreaded, main thread accepts", "6.5"),
]

ROOT = run.ROOT
# A worker taking a client, as every server logs it: the worker's name first if it has one.
CONNECTED = re.compile(rb"^(?:(?P<worker>[^ :]+): )?(?P<peer>[0-9.]+:\d+|\[[0-9a-f:.]+\]:\d+) connected$")


class Design:
    def __init__(self, stevens, name, command):
        self.stevens, self.name = stevens, name
        argv = command.split()
        python = argv[0] == "python3"
        argv = [sys.executable] + argv[1:] if python else argv
        # A word with a slash is a path in the repository; options and values are not.
        self.argv = [os.path.join(ROOT, a) if "/" in a and not os.path.isabs(a) else a
                     for a in argv]
        self.family = ("Python" if python else
                       "step 6" if argv[0].startswith("step6_socketserver/") else "C")
        self.server = run.Server(name, self.argv, stevens, python=python)

    def available(self):
        return self.server.available()

    def one_worker(self):
        """Serves from one thread: nobody to share the connections with."""
        return self.stevens in ("serv00", "—")


def count_workers(log, offset=0):
    """Read a server's log (binary, from byte OFFSET): (connections logged, Counter of the
    connections each named worker took). A connection whose line names no worker counts
    under None."""
    log.seek(offset)
    connections, workers = 0, collections.Counter()
    for line in log:
        m = CONNECTED.match(line.rstrip(b"\n"))
        if m:
            connections += 1
            worker = m.group("worker")
            workers[worker.decode(errors="replace") if worker else None] += 1
    return connections, workers


def state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def settle(pid, resident=None, deadline=10.0, quiet=0.2):
    """Wait until the server's children are the ones that stay: every child that served a
    client has ended and been reaped, so its CPU time is in the server's cutime + cstime.
    With RESIDENT (the children that stay, e.g. a pool of processes), until no other child
    is left; without, until no child is a zombie and the set of children has not changed
    for QUIET seconds. Returns the children then."""
    end, seen, since = time.monotonic() + deadline, None, time.monotonic()
    while time.monotonic() < end:
        kids = set(run.children(pid))
        if kids != seen:
            seen, since = kids, time.monotonic()
        no_zombie = not any(state(k) == "Z" for k in kids)
        if no_zombie and (kids <= resident if resident is not None
                          else time.monotonic() - since >= quiet):
            return kids
        time.sleep(0.01)  # polling a fact (the children left), with a deadline
    raise RuntimeError("children of %d still ending after %gs: %s" % (pid, deadline, sorted(seen)))


def tree_ticks(pid):
    """CPU clock ticks of the server and of every child that is still alive (a pool of
    processes stays): each one's utime + stime + cutime + cstime, so the reaped children's
    are in too. Read when settled, so no child is reaped between two reads."""
    return sum(run.cpu_ticks(p) for p in run.descendants(pid))


def measure(design, cfg, pins, logdir):
    """One repetition: a fresh server, a warm-up, the run. A dict of its figures."""
    churn = ["--churn", "-c", str(cfg.clients), "-s", str(cfg.bytes)]
    server = run.Running(design.server, pins[0], logdir)
    counted, offset = {}, None

    def read_log(log):
        if offset is not None:  # the run began: its connections are counted
            counted["logged"], counted["workers"] = count_workers(log, offset)
    try:
        # The warm-up pages the program in (and Python's imports); it is not counted.
        run.bench(pins[1], server.port, churn + ["-n", "2"], cfg.timeout)
        resident = settle(server.pid)
        offset = os.path.getsize(server.log.name)
        before = tree_ticks(server.pid)
        r = run.bench(pins[1], server.port, churn + ["-n", str(cfg.loops)], cfg.timeout)
        settle(server.pid, resident)
        used_s = (tree_ticks(server.pid) - before) / run.TICK
    finally:
        rc, err = server.stop(read_log=read_log)
    if rc != 0:
        raise RuntimeError("%s exited %d: %s" % (design.name, rc, err))
    conns = int(r["messages"])
    return {"conns": conns, "cpu_us": used_s * 1e6 / conns, "rate": r["msgs/s"],
            "p99_ms": r["p99_us"] / 1000.0, "logged": counted.get("logged", 0),
            "workers": counted.get("workers", collections.Counter())}


def measure_persistent(design, cfg, pins, logdir):
    """One repetition of the second workload: 10 connections, cfg.messages round trips of
    64 B each, one in flight per connection. Round trips per second."""
    server = run.Running(design.server, pins[0], logdir)
    try:
        run.bench(pins[1], server.port, ["-c", "10", "-n", "20", "-s", "64"], cfg.timeout)
        r = run.bench(pins[1], server.port, ["-c", "10", "-n", str(cfg.messages), "-s", "64"],
                      cfg.timeout)
    finally:
        rc, err = server.stop()
    if rc != 0:
        raise RuntimeError("%s exited %d: %s" % (design.name, rc, err))
    return {"rate": r["msgs/s"], "p99_ms": r["p99_us"] / 1000.0}


def targets(results, persistent):
    """Issue 14's targets, each a ratio of two of the run's medians; a list of table rows."""
    med = lambda name, key, table=results: (statistics.median(x[key] for x in table[name])
                                            if isinstance(table.get(name), list) else None)
    rows = []

    def row(target, want, name, ratio, ok):  # (a design not measured this run has none)
        if ratio is not None:
            rows.append("| %s | %s | %s | %.2f | %s |" % (
                target, name, want, ratio, "met" if ok(ratio) else "**missed**"))

    def ratio(a, b):
        return a / b if a is not None and b else None
    pools = [d for d in DESIGNS if d[1].startswith(("prefork", "pool"))]
    forking_py = med("fork per client: Python ForkingTCPServer", "rate")
    epoll = med("epoll, one thread: the ceiling", "rate")
    step5_cpu = med("fork per client: step 5", "cpu_us")
    for _, name, _ in pools:
        row("churn ÷ Python ForkingTCPServer", "≥ 20", name, ratio(med(name, "rate"), forking_py),
            lambda r: r >= 20)
        row("churn ÷ epoll", "≥ 0.7", name, ratio(med(name, "rate"), epoll), lambda r: r >= 0.7)
        row("server CPU per connection ÷ step 5's", "≤ 0.25", name,
            ratio(med(name, "cpu_us"), step5_cpu), lambda r: r <= 0.25)
    step4 = med("thread per client: step 4", "rate", persistent)
    step5 = med("fork per client: step 5", "rate", persistent)
    for _, name, _ in PERSISTENT:
        against = ("step 4", step4) if name.startswith("pool") else (
            ("step 5", step5) if name.startswith("prefork") else (None, None))
        if against[0]:
            row("64 B, 10 persistent connections ÷ %s" % against[0], "≥ 0.9", name,
                ratio(med(name, "rate", persistent), against[1]), lambda r: r >= 0.9)
    return rows


def worker_summary(design, reps):
    """One row of the who-got-the-connection table, or None for a one-worker design."""
    last = reps[-1]
    workers, logged = last["workers"], last["logged"]
    named = {w: n for w, n in workers.items() if w is not None}
    if not named:
        return None if design.one_worker() else (
            "| %s | — | %d | the log names no worker |" % (design.name, logged))
    counts = sorted(named.values())
    if len(named) <= 12:
        shown = ", ".join("%s %d" % (w, n) for w, n in sorted(named.items(), key=worker_order))
    elif counts[0] == counts[-1]:
        shown = "each served %d" % counts[0]
    else:
        busiest = max(named.items(), key=lambda wn: wn[1])
        shown = "min %d, median %g, max %d (%s)" % (counts[0], statistics.median(counts),
                                                    counts[-1], busiest[0])
    unnamed = " (%d lines name no worker)" % workers[None] if workers.get(None) else ""
    return "| %s | %d | %d | %s%s |" % (design.name, len(named), logged, shown, unnamed)


def worker_order(item):
    """Thread-2 before Thread-10: by the name's text, then its number."""
    m = re.match(r"(.*?)(\d+)$", item[0])
    return (m.group(1), int(m.group(2))) if m else (item[0], 0)


def report(designs, results, persistent, cfg, info, pins, load_before, elapsed):
    med = lambda r, k: statistics.median(x[k] for x in r)
    baseline = {}
    for d in designs:
        r = results.get(d.name)
        if d.stevens == "serv00" and isinstance(r, list) and d.family not in baseline:
            baseline[d.family] = (d.name, med(r, "cpu_us"))
    total = cfg.clients * cfg.loops
    out = ["## Server designs: Stevens' Figure 30.1 today", "",
           "Measured %s by `make bench-designs` (`tests/bench/designs.py --clients %d --loops %d "
           "--bytes %d --reps %d`) in %.0f s." % (info["date"], cfg.clients, cfg.loops, cfg.bytes,
                                                   cfg.reps, elapsed),
           "Machine: %s, %d cores, Linux %s; %s; Python %s. Load average before %.2f, after %.2f%s."
           % (info["cpu"], info["cores"], info["kernel"], info["cc"], info["python"],
              load_before, os.getloadavg()[0],
              " (other work was running: treat the figures with care)" if load_before > 0.5 else ""),
           ("Server pinned to core %s, client to core %s." % (pins[0][-1], pins[1][-1]) if pins[0]
            else "One core: server and client share it (no pinning)."), "",
           "Workload (Stevens'): %d clients at once, each %d times: connect, send %d bytes, read "
           "them back, close (`tests/client bench --churn -c %d -n %d -s %d`, every byte checked): "
           "%s connections a repetition, after a warm-up of %d. *Server CPU* is user + system "
           "time of the server, its threads and its children over the run (utime + stime "
           "+ cutime + cstime of `/proc/PID/stat`, as Stevens' `pr_cpu_time` sums them, read "
           "once every child that served a client is reaped; a child that stays, as in a pool "
           "of processes, counts its own), per connection; the kernel counts it in clock ticks of "
           "%.0f ms, so the figure moves in steps of %.1f µs. *Minus iterative* subtracts "
           "the iterative server of the same code: Stevens' process-control time. *p99* is a whole cycle, connect to end of stream. "
           "Each figure is the median of %d repetitions, each against a fresh server, taken in "
           "turn (every design once, then every design again), so that a slow spell of the "
           "machine costs every design one repetition rather than one design all of them. Every "
           "server logs its lines to a file on tmpfs, as `make bench` does."
           % (cfg.clients, cfg.loops, cfg.bytes, cfg.clients, cfg.loops, cfg.bytes,
              "{:,}".format(total), 2 * cfg.clients, 1000.0 / run.TICK, 1e6 / run.TICK / total,
              cfg.reps), "",
           "| Stevens | design | server CPU µs/conn | minus iterative µs/conn | connections/s "
           "| p99 ms | CPU s per 5,000 conns | Linux 2000, s per 5,000 |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    linux_2000 = {stevens: seconds for stevens, _, seconds in LINUX_2000}
    # The 2000 run recorded one figure for the preforked servers, not which of them.
    for stevens in ("serv02", "serv03", "serv05"):
        linux_2000.setdefault(stevens, linux_2000["serv02–05"])
    for d in designs:
        r = results.get(d.name)
        if not isinstance(r, list):
            out.append("| %s | %s | %s | | | | | |" % (d.stevens, d.name, r))
            continue
        cpu = med(r, "cpu_us")
        base = baseline.get(d.family)
        minus = "%.0f" % (cpu - base[1]) if base else "—"
        out.append("| %s | %s | %.0f | %s | %s | %.2f | %.2f | %s |" % (
            d.stevens, d.name, cpu, minus, run.fmt_rate(med(r, "rate")), med(r, "p99_ms"),
            cpu * 5000 / 1e6, linux_2000.get(d.stevens, "")))
    if baseline:
        out += ["", "*Minus iterative* is read against: %s." % "; ".join(
            "%s, %s (%.0f µs/conn)" % (family, name, cpu) for family, (name, cpu) in baseline.items())]
    out += ["", "Linux in 2000 (Dan Kegel's run of Stevens' servers, 5,000 connections of 4,000 "
        "bytes, user + system seconds; N/A: Linux could not then run or measure it):", "",
        "| Stevens | design | CPU s per 5,000 conns, Linux 2000 |", "|---|---|---:|"]
    out += ["| %s | %s | %s |" % row for row in LINUX_2000]
    if persistent:
        out += ["", "### 64 B round trips on 10 persistent connections", "",
                "The targets' second workload: 10 connections opened once, then %s round trips "
                "of 64 bytes on each, one in flight per connection (`tests/client bench -c 10 -n "
                "%d -s 64`, after a warm-up of 20), against pools of 10 workers: one worker per "
                "connection, as step 4 and step 5 have. Median of %d repetitions."
                % ("{:,}".format(cfg.messages), cfg.messages, cfg.reps), "",
                "| Stevens | design | round trips/s | p99 ms |", "|---|---|---:|---:|"]
        for stevens, name, _ in PERSISTENT:
            r = persistent.get(name)
            if r is None:
                continue
            if not isinstance(r, list):
                out.append("| %s | %s | %s | |" % (stevens, name, r))
                continue
            out.append("| %s | %s | %s | %.2f |" % (
                stevens, name, run.fmt_rate(statistics.median(x["rate"] for x in r)),
                statistics.median(x["p99_ms"] for x in r)))
    target_rows = targets(results, persistent or {})
    if target_rows:
        out += ["", "### Targets (issue 14)", "",
                "Each a ratio of two medians above. *Churn* is the first table's connections/s "
                "(Stevens' workload, %d at once); the bound on workers under 1,000 clients is "
                "tests/stress.bats's, which `make test` runs." % cfg.clients, "",
                "| target | design | wanted | ratio | |", "|---|---|---:|---:|---|"] + target_rows
    rows = [worker_summary(d, results[d.name]) for d in designs if isinstance(results.get(d.name), list)]
    out += ["", "### Who gets the connection", "",
            "Connections each worker took in the last repetition (%s), counted from the "
            "server's own log: the `connected` lines, by the worker named first on the line. "
            "A thread or a process per client shows as many workers as connections."
            % "{:,}".format(total), "",
            "| design | workers | connections logged | connections per worker |",
            "|---|---:|---:|---|"] + [r for r in rows if r]
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10, help="K: clients at once (10)")
    parser.add_argument("--loops", type=int, default=500, help="L: connections each (500)")
    parser.add_argument("--bytes", type=int, default=4000, help="B: request and reply size (4000)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions, median shown (5)")
    parser.add_argument("--messages", type=int, default=5000,
                        help="round trips per connection in the persistent workload (5000)")
    parser.add_argument("--no-persistent", action="store_true",
                        help="leave the persistent workload out")
    parser.add_argument("--only", help="only designs whose name contains one of these (comma-separated)")
    parser.add_argument("--timeout", type=float, default=300.0, help="the client's --timeout")
    parser.add_argument("--out", default=os.path.join(run.BENCH, "RESULTS.md"),
                        help="the Markdown file whose section 'designs' is written (RESULTS.md)")
    cfg = parser.parse_args()
    for name in ("clients", "loops", "bytes", "reps", "messages"):
        if getattr(cfg, name) < 1:
            parser.error("--%s must be at least 1" % name)

    designs = [Design(*line) for line in DESIGNS]
    if cfg.only:
        designs = [d for d in designs if any(w in d.name for w in cfg.only.split(","))]
        if not designs:
            parser.error("no design's name contains any of: %s" % cfg.only)
    pins, info, load_before = run.pinning(), run.machine(), os.getloadavg()[0]
    logdir = run.log_dir("designs-")
    started, results, persistent = time.monotonic(), {}, {}
    persistent_designs = [] if cfg.no_persistent else [Design(*line) for line in PERSISTENT]
    if cfg.only:
        persistent_designs = [d for d in persistent_designs
                              if any(w in d.name for w in cfg.only.split(","))]
    try:
        # Repetition by repetition, every design in each: a slow spell of the machine
        # (these are shared virtual cores) then costs every design one repetition, and
        # the medians, not one design all three.
        for rep in range(cfg.reps):
            for table, listed, how, label in ((results, designs, measure, ""),
                                              (persistent, persistent_designs,
                                               measure_persistent, " (persistent)")):
                for d in listed:
                    if isinstance(table.get(d.name), str):
                        continue  # not built, or failed in an earlier repetition
                    if not d.available():
                        table[d.name] = "not built (make all %s)" % os.path.relpath(d.argv[0], ROOT)
                        continue
                    print("  %d/%d %-52s%s ..." % (rep + 1, cfg.reps, d.name, label),
                          file=sys.stderr, flush=True)
                    try:
                        table.setdefault(d.name, []).append(how(d, cfg, pins, logdir))
                    except RuntimeError as e:
                        table[d.name] = "failed: %s" % " ".join(str(e).replace("|", "/").split())[:200]
                        print("    " + table[d.name], file=sys.stderr)
    finally:
        for leftover in os.listdir(logdir):
            os.unlink(os.path.join(logdir, leftover))
        os.rmdir(logdir)
    text = report(designs, results, persistent, cfg, info, pins, load_before,
                  time.monotonic() - started)
    print(text, end="")
    run.write_section(cfg.out, "designs", "tests/bench/designs.py (make bench-designs)", text)
    print("wrote the section 'designs' of %s" % os.path.relpath(cfg.out, ROOT), file=sys.stderr)
    failed = [name for name, r in list(results.items()) + list(persistent.items())
              if isinstance(r, str) and r.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
