"""cogen-web next to peer WSGI servers under wrk: a benchmark run by hand, never a test.

Run from anywhere (see benchmarks/README.rst)::

    python3 benchmarks/wsgi.py --python /path/to/venv/bin/python --repeats 3

Theory of operation
-------------------
Each server is one process serving ``benchmarks.apps:hello`` (13 bytes with
a Content-Length) on 127.0.0.1, started in a session of its own (so its whole
process group can be killed) and pinned to ``--server-cpu``; the driver, wrk
and the idle connections are pinned to ``--client-cpu``. A server is ready
when a real ``GET /`` is answered 200; a ``--warmup`` wrk run follows.

Throughput visit (one server start): wrk ``-t1`` for ``--duration`` seconds at
-c10 and -c100 with keep-alive, then -c10 with ``Connection: close`` (one TCP
connection per request). A ``done()`` hook in Lua prints the request count,
p50/p99/p99.9 latency and wrk's error counters as one JSON line.

Idle visit (a second start, with options that lift connection caps): wrk
-c100 (the baseline), then N keep-alive connections each make one request and
stay open; the RSS growth of the server's process tree (VmRSS summed over it)
divided by N is the cost of one idle connection. wrk -c100 runs again with
them held, then every idle connection that is still open sends one more
request (the probe: did the server keep them?).

Repeats are round-robin (every server once, then again), so drift on a shared
machine spreads over all servers; tables show medians of the repeats. Each
run also records the CPU that other processes used on the two CPUs meanwhile
(``other%``), to spot runs disturbed by a busy machine.

Bounds: wrk runs for a fixed time with a 5 s request timeout, every socket
operation and wait has a deadline, each server dies on SIGALRM after
``--max-life`` seconds, the driver gives up after ``--max-time``, and servers
are stopped by process group on every path, Ctrl-C included.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SERVERS", "Server", "main"]

ROOT = Path(__file__).resolve().parent.parent  # the checkout: makes `benchmarks` importable
HOST = "127.0.0.1"
APP = "benchmarks.apps:hello"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_BATCH = 100  # idle connections opened (or probed) at once
BASE_CHECKOUT = [""]  # --base-checkout, for the cogen-base server
SCENARIOS = (("c10", 10, False), ("c100", 100, False), ("close-c10", 10, True))

LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


@dataclass(frozen=True)
class Server:
    """A server under test.

    ``argv`` is formatted with ``py`` (the ``--python`` interpreter), ``port``
    and ``limit`` (a connection cap above the idle count); the element
    ``"{idle_opts}"`` is replaced by ``idle_opts`` in the idle visit and
    dropped otherwise. ``cannot_idle`` says why a server is left out of the
    idle test (``None``: it takes part). Log lines containing a ``log_noise``
    string are expected and not reported.
    """

    name: str
    module: str
    dist: str
    argv: tuple[str, ...]
    note: str
    idle_opts: tuple[str, ...] = ()
    cannot_idle: str | None = None
    log_noise: tuple[str, ...] = ()  # expected warnings, not reported

    def command(self, py: str, port: int, idle_limit: int | None) -> list[str]:
        """The command line; ``idle_limit`` is set for the idle visit."""
        out: list[str] = []
        for arg in self.argv:
            if arg == "{idle_opts}":
                if idle_limit is not None:
                    out += [a.format(limit=idle_limit) for a in self.idle_opts]
            else:
                out.append(arg.format(py=py, port=port, base=f"{BASE_CHECKOUT[0]}{os.pathsep}{ROOT}"))
        return out


SERVERS: tuple[Server, ...] = (
    Server("cogen", "cogen.web", "cogen",
           ("{py}", "-m", "cogen.web", APP, "--host", HOST, "--port", "{port}", "--no-access-log"),
           "cogen-web, defaults (one process, TCP_NODELAY, no connection cap)"),
    # the blocked-loop watchdog's overhead: cogen / cogen-nowatchdog in the ratio table
    Server("cogen-nowatchdog", "cogen.web", "cogen",
           ("{py}", "-m", "cogen.web", APP, "--host", HOST, "--port", "{port}", "--no-access-log",
            "--blocked-loop-warning", "off"),
           "cogen-web, defaults but the blocked-loop watchdog off"),
    # an earlier checkout of cogen, for before/after figures in one run (--base-checkout PATH)
    Server("cogen-base", "cogen.web", "cogen",
           ("env", "PYTHONPATH={base}", "{py}", "-m", "cogen.web", APP, "--host", HOST, "--port", "{port}",
            "--no-access-log"),
           "cogen-web from --base-checkout (the before of a before/after)"),
    Server("gevent", "gevent", "gevent",
           ("{py}", "-m", "benchmarks.apps", "gevent", "--host", HOST, "--port", "{port}"),
           "gevent.pywsgi, patch_all(), TCP_NODELAY on accepted sockets (benchmarks/apps.py)"),
    Server("waitress", "waitress", "waitress",
           ("{py}", "-m", "waitress", f"--listen={HOST}:{{port}}", "--threads=1", "{idle_opts}", APP),
           "waitress, threads=1",
           idle_opts=("--connection-limit={limit}", "--asyncore-use-poll"),
           # logged whenever a request waits for the one thread: that is threads=1 working
           log_noise=("Task queue depth",)),
    Server("gunicorn", "gunicorn", "gunicorn",
           ("{py}", "-m", "gunicorn", "-w", "1", "-k", "sync", "-b", f"{HOST}:{{port}}", APP),
           "gunicorn sync worker, 1 worker (closes every connection: no keep-alive)",
           cannot_idle="the sync worker closes every connection after one response (no keep-alive)"),
)


class DriverTimeout(Exception):
    """The whole run took longer than --max-time."""


# ---------------------------------------------------------------- /proc

def tree_pids(pid: int) -> list[int]:
    """``pid`` and its live descendants (gunicorn: master and worker)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
        out.append(p)
    return out


def tree_rss_kb(pid: int) -> int:
    """VmRSS summed over the process tree, in KiB."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def tree_cpu_ticks(pid: int) -> int:
    """utime + stime of the live process tree, in clock ticks."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_busy_ticks(cpus: tuple[int, int]) -> list[int]:
    """Busy clock ticks (everything but idle and iowait) of the given CPUs, from /proc/stat."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks = [int(v) for v in vals[:8]]
                busy[int(name[3:])] = sum(ticks) - ticks[3] - ticks[4]
    return [busy.get(c, 0) for c in cpus]


# ---------------------------------------------------------------- processes

_running: dict[int, subprocess.Popen[bytes]] = {}


def _child_setup(cpu: int, max_life: int) -> Callable[[], None]:
    """A ``preexec_fn`` (safe here: the driver has no threads) pinning the child to ``cpu``."""
    def setup() -> None:
        os.sched_setaffinity(0, {cpu})
        if max_life:
            signal.alarm(max_life)  # survives exec: a forgotten server dies on its own
    return setup


def start_server(args: argparse.Namespace, srv: Server, port: int, idle_limit: int | None,
                 log: Path) -> subprocess.Popen[bytes]:
    """Start ``srv`` in its own session pinned to the server CPU; wait until it answers 200.

    Raises RuntimeError (after stopping it) when it exits or is not ready in 30 s.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with open(log, "ab") as logf:
        logf.write(f"\n==== {time.strftime('%H:%M:%S')} {srv.name} idle={idle_limit}\n".encode())
        logf.flush()
        proc = subprocess.Popen(srv.command(args.python, port, idle_limit), cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=_child_setup(args.server_cpu, args.max_life))  # noqa: PLW1509
    _running[proc.pid] = proc
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_server(proc)
            raise RuntimeError(f"{srv.name} exited with status {proc.returncode}; see {log}")
        if http_get_ok(port):
            time.sleep(0.3)  # a prefork master (gunicorn) may still be settling its worker
            return proc
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"{srv.name} did not answer 200 within 30 s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, give it 5 s, then SIGKILL what is left of the group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group id is the leader's pid (start_new_session)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    _running.pop(proc.pid, None)


def http_get_ok(port: int, timeout: float = 2.0) -> bool:
    """True when a fresh connection's ``GET /`` gets a complete 200 response."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(REQUEST)
            return read_response(sock) == 200
    except OSError:
        return False


def read_response(sock: socket.socket) -> int | None:
    """Read one response with a Content-Length; its status, or None on EOF or garbage."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next((int(v) for n, _, v in (ln.partition(b":") for ln in lines[1:])
                   if n.strip().lower() == b"content-length"), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    parts = lines[0].split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


# ---------------------------------------------------------------- wrk

def run_wrk(args: argparse.Namespace, lua: Path, port: int, conns: int, duration: float,
            close: bool, server: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """One wrk run pinned to the client CPU; wrk's JSON line plus req/s and CPU figures.

    Returns ``{"failed": reason}`` when wrk printed no JSON line.
    """
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--timeout", "5s", "-s", str(lua)]
    argv += ["-H", "Connection: close"] if close else []
    argv.append(f"http://{HOST}:{port}/")
    cpus = (args.server_cpu, args.client_cpu)
    busy0, srv0 = cpu_busy_ticks(cpus), tree_cpu_ticks(server.pid) if server else 0
    usage0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          preexec_fn=_child_setup(args.client_cpu, 0)) as wrk:  # noqa: PLW1509
        try:
            text = wrk.communicate(timeout=duration + 30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            wrk.kill()
            wrk.communicate()
            return {"failed": "wrk did not finish in time"}
    wall = time.monotonic() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in text.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        return {"failed": f"wrk exit {wrk.returncode}: {text.strip()[-300:]}"}
    res: dict[str, Any] = json.loads(line[len("WRK_JSON "):])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
    wrk_s = usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
    srv_s = (tree_cpu_ticks(server.pid) - srv0) / CLK_TCK if server else 0.0
    busy = [(b - a) / CLK_TCK for a, b in zip(busy0, cpu_busy_ticks(cpus))]
    res["server_cpu_pct"] = round(100 * srv_s / wall, 1)
    res["wrk_cpu_pct"] = round(100 * wrk_s / wall, 1)
    # CPU burnt by anybody else (other engineers' tests) on each of our two CPUs
    res["other_cpu_pct"] = [round(max(0.0, 100 * (busy[0] - srv_s) / wall), 1),
                            round(max(0.0, 100 * (busy[1] - wrk_s) / wall), 1)]
    return res


def describe(res: dict[str, Any]) -> str:
    """One line for a wrk result."""
    if "failed" in res:
        return f"FAILED: {res['failed']}"
    errs = ",".join(f"{k}={res[k]}" for k in ("connect", "read", "write", "status", "timeout") if res[k])
    return (f"{res['rps']:9,.0f} req/s  p50 {res['p50_us'] / 1000:6.2f} ms  p99 {res['p99_us'] / 1000:6.2f} ms"
            f"  max {res['max_us'] / 1000:7.1f} ms  srv {res['server_cpu_pct']:3.0f}%"
            f"  wrk {res['wrk_cpu_pct']:3.0f}%  other {res['other_cpu_pct'][0]:.0f}/{res['other_cpu_pct'][1]:.0f}%"
            + (f"  errors {errs}" if errs else ""))


# ---------------------------------------------------------------- idle connections

def exchange(socks: list[socket.socket], deadline: float) -> list[socket.socket]:
    """Send one request on every socket, then read the responses; the sockets answered 200.

    All requests go out before any response is read, so the server sees them
    together, as it would from many clients.
    """
    sent, answered = [], []
    for sock in socks:
        try:
            sock.sendall(REQUEST)
            sent.append(sock)
        except OSError:
            pass
    for sock in sent:
        try:
            sock.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
            if read_response(sock) == 200:
                answered.append(sock)
        except OSError:  # includes the timeout
            pass
    return answered


def open_idle(port: int, count: int, deadline: float) -> tuple[list[socket.socket], int]:
    """Open up to ``count`` connections that each got one answer; (those, how many failed)."""
    socks: list[socket.socket] = []
    tried = 0
    while tried < count and time.monotonic() < deadline:
        batch = []
        for _ in range(min(IDLE_BATCH, count - tried)):
            tried += 1
            try:
                batch.append(socket.create_connection((HOST, port), timeout=5.0))
            except OSError:
                pass
        answered = exchange(batch, deadline)
        for sock in set(batch) - set(answered):
            sock.close()
        socks += answered
    return socks, count - len(socks)


def probe_idle(socks: list[socket.socket], deadline: float) -> tuple[int, int]:
    """(closed by the server while idle, answered one more request) over ``socks``."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    readable = {key.fileobj for key, _ in sel.select(timeout=0)}  # idle and readable: EOF
    sel.close()
    left = [sock for sock in socks if sock not in readable]
    answered = sum(len(exchange(left[i:i + IDLE_BATCH], deadline))
                   for i in range(0, len(left), IDLE_BATCH) if time.monotonic() < deadline)
    return len(readable), answered


# ---------------------------------------------------------------- visits

@contextmanager
def serving(args: argparse.Namespace, srv: Server, idle_limit: int | None,
            lua: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A started, warmed-up server, stopped on exit whatever happens."""
    proc = start_server(args, srv, args.port, idle_limit, args.logs / f"{srv.name}.log")
    try:
        if args.warmup:
            run_wrk(args, lua, args.port, 10, args.warmup, False)
        yield proc
    finally:
        stop_server(proc)


def throughput_visit(args: argparse.Namespace, srv: Server, rep: int, lua: Path) -> list[dict[str, Any]]:
    """Start ``srv`` and run every scenario once; the result rows."""
    rows = []
    with serving(args, srv, None, lua) as proc:
        for scenario, conns, close in SCENARIOS:
            res = run_wrk(args, lua, args.port, conns, args.duration, close, proc)
            rows.append({"kind": "throughput", "server": srv.name, "repeat": rep, "scenario": scenario,
                         "conns": conns, "close": close, **res})
            print(f"[{rep}] {srv.name:9s} {scenario:9s} {describe(res)}", flush=True)
            if proc.poll() is not None:
                print(f"[{rep}] {srv.name} DIED (status {proc.returncode})", flush=True)
                break
    return rows


def idle_visit(args: argparse.Namespace, srv: Server, rep: int, lua: Path) -> dict[str, Any]:
    """Start ``srv`` with caps lifted, measure c100 without and with N idle connections."""
    row: dict[str, Any] = {"kind": "idle", "server": srv.name, "repeat": rep, "idle": args.idle}
    with serving(args, srv, args.idle + 1000, lua) as proc:
        row["without"] = run_wrk(args, lua, args.port, 100, args.duration, False, proc)
        row["rss_before_kb"] = tree_rss_kb(proc.pid)
        t0 = time.monotonic()
        socks, row["open_failed"] = open_idle(args.port, args.idle, t0 + args.idle_setup)
        try:
            row["setup_s"] = round(time.monotonic() - t0, 2)
            row["held"] = len(socks)
            time.sleep(0.5)  # let the server finish any bookkeeping after the last response
            row["rss_idle_kb"] = tree_rss_kb(proc.pid)
            row["kib_per_conn"] = (row["rss_idle_kb"] - row["rss_before_kb"]) / max(1, len(socks))
            row["with"] = run_wrk(args, lua, args.port, 100, args.duration, False, proc)
            row["dropped"], row["probe_ok"] = probe_idle(socks, time.monotonic() + args.idle_setup)
            row["alive"] = proc.poll() is None
        finally:
            for sock in socks:
                sock.close()
    without, with_ = row["without"].get("rps"), row["with"].get("rps")
    row["pct"] = 100 * with_ / without if without and with_ else None
    print(f"[{rep}] {srv.name:9s} idle      held {row['held']}/{args.idle} in {row['setup_s']} s, "
          f"{row['kib_per_conn']:.2f} KiB/conn, c100 {without or 0:,.0f} -> {with_ or 0:,.0f} req/s"
          f" ({row['pct'] or 0:.0f}%), p99 with {row['with'].get('p99_us', 0) / 1000:.2f} ms, "
          f"dropped {row['dropped']}, probe ok {row['probe_ok']}/{row['held'] - row['dropped']}", flush=True)
    return row


# ---------------------------------------------------------------- report

def med(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def summarize(rows: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, Any]]:
    """Per server: median req/s per scenario, median p99 at c100, total errors."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [r for r in rows if r.get("server") == name and r["kind"] == "throughput" and "rps" in r]
        fig: dict[str, Any] = {sc: med([r["rps"] for r in mine if r["scenario"] == sc]) for sc, _, _ in SCENARIOS}
        fig["p99_c100"] = med([r["p99_us"] / 1000 for r in mine if r["scenario"] == "c100"])
        fig["cpu_c100"] = med([r["server_cpu_pct"] for r in mine if r["scenario"] == "c100"])
        fig["errors"] = sum(r["errors"] for r in mine)
        fig["failed"] = sum(1 for r in rows if r.get("server") == name and ("failed" in r or "error" in r))
        fig["other"] = [med([r["other_cpu_pct"][i] for r in mine]) for i in (0, 1)]
        fig["n"] = len({r["repeat"] for r in mine})
        out[name] = fig
    return out


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted, or ``-`` for a missing figure."""
    return "-" if value is None else format(value, spec)


def print_throughput(rows: list[dict[str, Any]], names: list[str], args: argparse.Namespace) -> None:
    """The throughput table and cogen's ratios to each peer."""
    figs = summarize(rows, names)
    print(f"\nThroughput: medians of {args.repeats} repeat(s) of {args.duration:g} s runs "
          f"(server on CPU {args.server_cpu}, wrk on CPU {args.client_cpu})")
    print(f"{'server':10s} {'c10 req/s':>10s} {'c100 req/s':>11s} {'close-c10':>10s} "
          f"{'p99 c100 ms':>12s} {'srv CPU% c100':>14s} {'errors':>7s} {'n':>2s} {'other CPU% srv/cli':>19s}")
    for name, f in figs.items():
        print(f"{name:10s} {fmt(f['c10'], ',.0f'):>10s} {fmt(f['c100'], ',.0f'):>11s} "
              f"{fmt(f['close-c10'], ',.0f'):>10s} {fmt(f['p99_c100'], '.2f'):>12s} "
              f"{fmt(f['cpu_c100'], '.0f'):>14s} {f['errors'] + f['failed']:>7d} {f['n']:>2d} "
              f"{fmt(f['other'][0], '.0f'):>15s}/{fmt(f['other'][1], '.0f')}")
    if "cogen" in figs and len(figs) > 1:
        cog = figs["cogen"]
        print("\ncogen / peer (req/s: above 1 = cogen faster; p99: below 1 = cogen faster)")
        print(f"{'peer':10s} {'c10':>7s} {'c100':>7s} {'close-c10':>10s} {'p99 c100':>9s}")
        for name, f in figs.items():
            if name == "cogen":
                continue
            ratios = [cog[k] / f[k] if cog[k] and f[k] else None
                      for k in ("c10", "c100", "close-c10", "p99_c100")]
            print(f"{name:10s} {fmt(ratios[0], '.2f'):>7s} {fmt(ratios[1], '.2f'):>7s} "
                  f"{fmt(ratios[2], '.2f'):>10s} {fmt(ratios[3], '.2f'):>9s}")


def print_idle(rows: list[dict[str, Any]], names: list[str], args: argparse.Namespace) -> None:
    """The idle-connection table."""
    idle = [r for r in rows if r["kind"] == "idle"]
    print(f"\nIdle keep-alive connections (N={args.idle}, each made one request): medians of {args.repeats}")
    print(f"{'server':10s} {'held':>6s} {'KiB/conn':>9s} {'c100 without':>13s} {'c100 with':>10s} "
          f"{'with/without':>13s} {'p99 with ms':>12s} {'dropped':>8s} {'probe ok':>9s}")
    for name in names:
        mine = [r for r in idle if r.get("server") == name and "held" in r]
        if not mine:
            continue
        print(f"{name:10s} {fmt(med([r['held'] for r in mine]), '.0f'):>6s} "
              f"{fmt(med([r['kib_per_conn'] for r in mine]), '.2f'):>9s} "
              f"{fmt(med([r['without']['rps'] for r in mine if 'rps' in r['without']]), ',.0f'):>13s} "
              f"{fmt(med([r['with']['rps'] for r in mine if 'rps' in r['with']]), ',.0f'):>10s} "
              f"{fmt(med([r['pct'] for r in mine if r['pct']]), '.0f'):>12s}% "
              f"{fmt(med([r['with']['p99_us'] / 1000 for r in mine if 'rps' in r['with']]), '.2f'):>12s} "
              f"{fmt(med([r['dropped'] for r in mine]), '.0f'):>8s} {fmt(med([r['probe_ok'] for r in mine]), '.0f'):>9s}")


# ---------------------------------------------------------------- main

def check_servers(args: argparse.Namespace, names: list[str]) -> tuple[list[Server], dict[str, str]]:
    """The selected servers whose module imports in ``--python``; their versions."""
    chosen, versions = [], {}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for srv in (s for s in SERVERS if s.name in names):
        code = (f"import importlib.metadata as m, {srv.module}\n"
                f"try: print(m.version({srv.dist!r}))\nexcept m.PackageNotFoundError: print('checkout')")
        try:
            res = subprocess.run([args.python, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"skip {srv.name}: cannot run {args.python}: {exc}")
            continue
        if res.returncode != 0:
            why = (res.stderr.strip().splitlines() or ["import failed"])[-1]
            print(f"skip {srv.name}: not installed in {args.python} ({why})")
            continue
        versions[srv.name] = res.stdout.strip()
        chosen.append(srv)
    return chosen, versions


def raise_nofile(args: argparse.Namespace) -> None:
    """Raise RLIMIT_NOFILE (inherited by the servers) to hold the idle connections; may lower --idle."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle + 2048
    if hard != resource.RLIM_INFINITY and hard < want:
        args.idle = max(0, hard - 2048)
        print(f"note: RLIMIT_NOFILE hard limit is {hard}; idle connections lowered to {args.idle}")
        want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    names = [s.name for s in SERVERS]
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--servers", default=",".join(n for n in names if n != "cogen-base"),
                   help=f"comma-separated, from {','.join(names)}")
    p.add_argument("--python", default=sys.executable, help="interpreter that has the peers installed")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    p.add_argument("--repeats", type=int, default=1, help="round-robin passes over the servers")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk -c10 after readiness")
    p.add_argument("--idle", type=int, default=5000, help="idle keep-alive connections; 0 skips that test")
    p.add_argument("--only", choices=["throughput", "idle"], help="run one of the two tests")
    p.add_argument("--idle-setup", type=float, default=120.0, help="max seconds to open (or probe) them")
    p.add_argument("--out", type=Path, default=Path("/tmp/cogen-bench.jsonl"),
                   help="raw results, appended as JSON lines (server logs go to OUT's stem + '-logs/')")
    p.add_argument("--base-checkout", type=Path, default=None,
                   help="a checkout of an earlier cogen: the server 'cogen-base' runs it")
    p.add_argument("--port", type=int, default=18800, help="the port every server listens on, in turn")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1, help="CPU of wrk, the idle connections and the driver")
    p.add_argument("--max-life", type=int, default=900, help="seconds after which a server kills itself")
    p.add_argument("--max-time", type=int, default=0, help="seconds before the driver gives up; 0 = estimate x2")
    args = p.parse_args(argv)
    args.names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if "cogen-base" in args.names:
        if args.base_checkout is None or not (args.base_checkout / "cogen" / "web").is_dir():
            p.error("the server cogen-base needs --base-checkout PATH, a checkout of cogen")
        BASE_CHECKOUT[0] = str(args.base_checkout.resolve())
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        p.error(f"unknown server(s) {', '.join(unknown)} in --servers {args.servers!r}; known: {', '.join(names)}")
    if not {args.server_cpu, args.client_cpu} <= os.sched_getaffinity(0) or args.server_cpu == args.client_cpu:
        p.error(f"--server-cpu {args.server_cpu} and --client-cpu {args.client_cpu} must be two different CPUs "
                f"this process may use: {sorted(os.sched_getaffinity(0))}")
    return args


def _on_alarm(signum: int, frame: Any) -> None:
    raise DriverTimeout("the whole run took longer than --max-time")


def _on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0, 1 (failed or interrupted) or 2 (bad setup)."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found on PATH: install it (Debian/Ubuntu: apt-get install wrk) and run again",
              file=sys.stderr)
        return 2
    servers, versions = check_servers(args, args.names)
    if not servers:
        print("no server to run", file=sys.stderr)
        return 2
    raise_nofile(args)
    os.sched_setaffinity(0, {args.client_cpu})
    args.logs = args.out.parent / f"{args.out.stem}-logs"
    args.logs.mkdir(parents=True, exist_ok=True)
    if args.only == "throughput":
        args.idle = 0
    idle_servers = [s for s in servers if s.cannot_idle is None] if args.idle else []
    tput_servers = [] if args.only == "idle" else servers
    per_rep = (len(tput_servers) * (args.warmup + 3 * args.duration + 10)
               + len(idle_servers) * (args.warmup + 2 * args.duration + 40))
    args.max_time = args.max_time or int(2 * args.repeats * per_rep + 120)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    print(f"run {run_id}: {', '.join(f'{s.name} {versions[s.name]}' for s in servers)}; "
          f"about {args.repeats * per_rep / 60:.0f} min (gives up after {args.max_time} s); logs in {args.logs}")
    for srv in servers:
        print(f"  {srv.name:9s} {srv.note}")
    for srv in servers:
        if args.idle and srv.cannot_idle:
            print(f"  idle test skips {srv.name}: {srv.cannot_idle}")
    rows: list[dict[str, Any]] = [{"kind": "meta", "args": {k: str(v) for k, v in vars(args).items()},
                                   "versions": versions, "python": args.python, "cpus": os.cpu_count()}]
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(args.max_time)
    status = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lua = Path(tmp) / "done.lua"
            lua.write_text(LUA_DONE)
            for rep in range(1, args.repeats + 1):
                for srv in tput_servers:
                    rows += visit(throughput_visit, args, srv, rep, lua)
                for srv in idle_servers:
                    rows += visit(idle_visit, args, srv, rep, lua)
    except (KeyboardInterrupt, DriverTimeout) as exc:
        print(f"\nstopped: {str(exc) or 'interrupted'}", file=sys.stderr)
        status = 1
    finally:
        signal.alarm(0)
        for proc in list(_running.values()):
            stop_server(proc)
        with open(args.out, "a") as f:
            f.writelines(json.dumps({"run": run_id, **row}) + "\n" for row in rows)
    names = [s.name for s in servers]
    if any(r["kind"] == "throughput" for r in rows):
        print_throughput(rows, names, args)
    if any(r["kind"] == "idle" for r in rows):
        print_idle(rows, names, args)
    skipped = sorted(set(args.names) - set(versions))
    if skipped:
        print(f"\nskipped (not installed in {args.python}): {', '.join(skipped)}")
    print(f"\nraw results: {args.out} (run {run_id}); server logs: {args.logs}")
    return status


def visit(run: Callable[..., Any], args: argparse.Namespace, srv: Server, rep: int,
          lua: Path) -> list[dict[str, Any]]:
    """Run one visit; its rows, plus a row for a failed start and for warnings in the server's log.

    A server that fails to start gives an error row instead of stopping the run.
    """
    log = args.logs / f"{srv.name}.log"
    offset = log.stat().st_size if log.exists() else 0
    try:
        result = run(args, srv, rep, lua)
        rows: list[dict[str, Any]] = result if isinstance(result, list) else [result]
    except RuntimeError as exc:
        print(f"[{rep}] {srv.name}: {exc}", flush=True)
        rows = [{"kind": "error", "server": srv.name, "repeat": rep, "error": str(exc)}]
    with open(log, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    bad = [ln for ln in lines if any(w in ln for w in ("Traceback", "ERROR", "WARNING", "Error", "CRITICAL"))
           and not any(w in ln for w in srv.log_noise)]
    if bad:
        print(f"[{rep}] {srv.name}: {len(bad)} warning/error line(s) in {log}, first: {bad[0][:160]}", flush=True)
        rows.append({"kind": "log", "server": srv.name, "repeat": rep, "count": len(bad), "first": bad[:5]})
    return rows


if __name__ == "__main__":
    sys.exit(main())
