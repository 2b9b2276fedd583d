"""cogen-web next to peer WSGI servers under wrk: a benchmark run by hand, never a test.

Run from anywhere (see benchmarks/README.rst)::

    python3 benchmarks/wsgi.py --python /path/to/venv/bin/python --repeats 3 --chart perf.png

Theory of operation
-------------------
Each server is one process serving one app of ``benchmarks/apps.py`` on
127.0.0.1, started in a session of its own (so its whole process group can be
killed) and pinned to ``--server-cpu``; the driver, wrk and the client
connections are pinned to ``--client-cpu``. A server is ready when a real
request is answered 200; a ``--warmup`` wrk run follows. The peers include
the compiled frontier (granian, meinheld, bjoern, uWSGI) and
``raw-epoll-wsgi`` (``benchmarks/raw_wsgi.py``), the least a pure-Python
WSGI server can do: the ceiling for cogen-web.

Workloads (``--workloads``): ``hello`` (13 bytes), ``big`` (1 MiB in 64 KiB
chunks from a generator), ``big-list`` (the same chunks as a list), ``file``
(10 MiB through ``wsgi.file_wrapper``), ``file-discard`` (the same, with
benchmarks/discard.py as the client: it throws the body away uncopied, where
wrk's copy of it saturates wrk first), ``echo`` (a 64 KiB
POST sent back; wrk's Lua script sets the method and body), ``flask`` and
``flask-json`` (a Flask app's text and JSON routes), each measured with wrk
``-t1`` for ``--duration`` seconds at -c10 and -c100 with keep-alive (hello
also at -c10 with ``Connection: close``); a ``done()`` hook in Lua prints the
request count, latency percentiles and wrk's error counters as one JSON line.
``longpoll``: ``--longpoll`` connections each send ``GET /wait`` and park;
once the server counts them all, one ``POST /release`` wakes them; measured
is the time from sending the release to the last answer read. Servers that
cannot park requests without blocking their only thread are skipped (each
says why); waitress and granian get a thread per parked request.

Idle visit (a fresh start, with options that lift connection caps): wrk
-c100 (the baseline), then N keep-alive connections each make one request and
stay open; the RSS growth of the server's process tree (VmRSS summed over it)
divided by N is the cost of one idle connection. wrk -c100 runs again with
them held, then every idle connection that is still open sends one more
request (the probe: did the server keep them?).

``--workers N`` (N >= 2) measures the servers' multi-process modes instead:
cogen-web ``--workers N``, gunicorn's gevent worker ``-w N``, granian
``--workers N`` and waitress (one process, 4 threads). A 2-core machine has no
core to spare for the load, so the server may run on both CPUs and wrk stays
pinned to ``--client-cpu``, sharing it with whatever server process the
kernel puts there: the figures are what the whole machine serves, comparable
between servers of one run, not with the one-core figures.

Repeats are round-robin (every server once, then again), so drift on a shared
machine spreads over all servers; tables show medians of the repeats, and
end with cogen's figure divided by each peer's. Each run also records the
CPU that other processes used on the two CPUs meanwhile (``other%``), to spot
runs disturbed by a busy machine.

Bounds: wrk runs for a fixed time with a 5 s request timeout, every socket
operation and wait has a deadline, each server dies on SIGALRM after
``--max-life`` seconds, the driver gives up after ``--max-time``, and servers
are stopped by process group on every path, Ctrl-C included.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import shlex
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

__all__ = ["SERVERS", "WORKLOADS", "Server", "Workload", "main"]

ROOT = Path(__file__).resolve().parent.parent  # the checkout: makes `benchmarks` importable
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_BATCH = 100  # idle connections opened (or probed) at once
BASE_CHECKOUT = [""]  # --base-checkout, for the cogen-base server
KEEPALIVE = (("c10", 10, False), ("c100", 100, False))
HELLO_SCENARIOS = (*KEEPALIVE, ("close-c10", 10, True))
ECHO_SIZE = 64 * 1024
MULTI_THREADS = 4  # waitress's threads in --workers mode (its default)

LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""
LUA_POST = (f'wrk.method = "POST"\nwrk.body = string.rep("x", {ECHO_SIZE})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n')


@dataclass(frozen=True)
class Workload:
    """What the servers serve: an app of ``benchmarks/apps.py``, the path wrk asks for, the wrk runs.

    ``lua`` goes before the ``done()`` hook in wrk's script (the POST of
    ``echo``). ``expect`` is the start of the readiness request's answer
    body, so a server that serves the wrong thing is caught before it is
    measured. ``longpoll`` workloads are not measured by wrk (see
    :func:`longpoll_visit`).
    """

    name: str
    app: str
    path: str
    scenarios: tuple[tuple[str, int, bool], ...]
    lua: str = ""
    expect: bytes = b""
    longpoll: bool = False
    #: ``wrk``, or ``discard`` for benchmarks/discard.py (bodies thrown away uncopied)
    client: str = "wrk"

    @property
    def request(self) -> bytes:
        """The readiness request: what wrk will send, once."""
        if self.lua:
            return (f"POST {self.path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello").encode()
        return f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("hello", "benchmarks.apps:hello", "/", HELLO_SCENARIOS, expect=b"Hello, World!"),
    Workload("big", "benchmarks.apps:big", "/", KEEPALIVE, expect=b"AAAA"),
    Workload("big-list", "benchmarks.apps:big_list", "/", KEEPALIVE, expect=b"AAAA"),
    Workload("file", "benchmarks.apps:file", "/", KEEPALIVE, expect=bytes(range(16))),
    Workload("file-discard", "benchmarks.apps:file", "/", KEEPALIVE, expect=bytes(range(16)),
             client="discard"),
    Workload("echo", "benchmarks.apps:echo", "/", KEEPALIVE, lua=LUA_POST, expect=b"hello"),
    Workload("flask", "benchmarks.apps:flask_app", "/", KEEPALIVE, expect=b"Hello, World!"),
    Workload("flask-json", "benchmarks.apps:flask_app", "/json", KEEPALIVE, expect=b'{"message":'),
    Workload("longpoll", "benchmarks.apps:longpoll", "/count", (), expect=b"0", longpoll=True),
)}


@dataclass(frozen=True)
class Server:
    """A server under test.

    ``argv`` (one process on one CPU) and ``multi`` (``--workers N``; empty:
    the server has no such mode here) are formatted with ``py`` (the
    ``--python`` interpreter), ``bin`` (its directory), ``port``, ``app``,
    ``workers`` and ``limit`` (a connection cap above the idle count; in the
    long-poll visit ``--longpoll`` + 1000, a threaded server's threads); the
    element ``"{opts}"`` is replaced by ``idle_opts`` in the idle visit, by
    ``longpoll_opts`` in the long-poll one, and dropped otherwise.
    ``cannot_idle`` / ``cannot_longpoll`` say why a server is left out of
    those tests (``None``: it takes part), ``cannot`` why it is left out of a
    workload. Log lines containing a ``log_noise`` string are expected and
    not reported.
    """

    name: str
    module: str
    dist: str
    argv: tuple[str, ...]
    note: str
    multi: tuple[str, ...] = ()
    idle_opts: tuple[str, ...] = ()
    cannot_idle: str | None = None
    longpoll_opts: tuple[str, ...] = ()
    cannot_longpoll: str | None = None
    log_noise: tuple[str, ...] = ()
    cannot: tuple[tuple[str, str], ...] = ()  # (workload, why the server sits it out)

    def command(self, py: str, port: int, app: str, mode: str, limit: int, workers: int = 1) -> list[str]:
        """The command line; ``mode`` is ``throughput``, ``idle`` or ``longpoll``."""
        opts = {"idle": self.idle_opts, "longpoll": self.longpoll_opts}.get(mode, ())
        fields = {"py": py, "bin": str(Path(py).parent), "port": port, "app": app, "limit": limit,
                  "workers": workers, "threads": MULTI_THREADS,
                  "base": f"{BASE_CHECKOUT[0]}{os.pathsep}{ROOT}"}
        out: list[str] = []
        for arg in self.multi if workers > 1 else self.argv:
            out += [a.format(**fields) for a in opts] if arg == "{opts}" else [arg.format(**fields)]
        return out


COGEN = ("{py}", "-m", "cogen.web", "{app}", "--host", HOST, "--port", "{port}", "--no-access-log")
NO_PARKING = "its one thread would block on the first parked request"
SERVERS: tuple[Server, ...] = (
    Server("cogen", "cogen.web", "cogen", COGEN,
           "cogen-web, defaults (one process, TCP_NODELAY, no connection cap)",
           multi=(*COGEN, "--workers", "{workers}")),
    # the blocked-loop watchdog's overhead: cogen / cogen-nowatchdog in the ratio table
    Server("cogen-nowatchdog", "cogen.web", "cogen", (*COGEN, "--blocked-loop-warning", "off"),
           "cogen-web, defaults but the blocked-loop watchdog off"),
    # an earlier checkout of cogen, for before/after figures in one run (--base-checkout PATH)
    # -P (Python 3.11+): the servers run in this checkout, whose cogen would
    # otherwise come first on sys.path, before the base on PYTHONPATH
    Server("cogen-base", "cogen.web", "cogen", ("env", "PYTHONPATH={base}", "{py}", "-P", *COGEN[1:]),
           "cogen-web from --base-checkout (the before of a before/after)",
           multi=("env", "PYTHONPATH={base}", "{py}", "-P", *COGEN[1:], "--workers", "{workers}")),
    Server("raw-epoll-wsgi", "benchmarks.raw_wsgi", "",
           ("{py}", "-m", "benchmarks.raw_wsgi", "--app", "{app}", "--host", HOST, "--port", "{port}"),
           "pure-Python epoll loop: head split + PEP 3333 environ + app call, no validation (the ceiling)",
           cannot_longpoll="an app cannot wait without blocking its loop"),
    Server("granian", "granian", "granian",
           ("{bin}/granian", "--interface", "wsgi", "--host", HOST, "--port", "{port}", "--workers", "1",
            "--blocking-threads", "1", "--no-access-log", "{opts}", "{app}"),
           "granian (Rust), WSGI interface, 1 worker, 1 blocking thread",
           multi=("{bin}/granian", "--interface", "wsgi", "--host", HOST, "--port", "{port}", "--workers",
                  "{workers}", "--blocking-threads", "1", "--no-access-log", "{app}"),
           # its defaults serve at most backlog (1024) connections at once and close a keep-alive
           # connection idle for 30 s; the idle test lifts both as far as granian allows (60 s)
           idle_opts=("--backlog", "{limit}", "--backpressure", "{limit}",
                      "--http1-header-read-timeout", "60000"),
           longpoll_opts=("--blocking-threads", "{limit}", "--backpressure", "{limit}"),
           log_noise=("Python threads, which seems quite high",)),
    Server("meinheld", "meinheld.server", "meinheld",
           ("{py}", "-m", "benchmarks.apps", "meinheld", "--app", "{app}", "--host", HOST, "--port", "{port}",
            "{opts}"),
           "meinheld (C, picoev), keep-alive switched on", idle_opts=("--c10k",),
           cannot_longpoll=NO_PARKING,
           cannot=(("file", "its wsgi.file_wrapper stalls part-way through a 10 MiB file (4-8 MiB reach a "
                             "client)"),),
           # a client (wrk) closing its connections at the end of a run
           log_noise=("Broken pipe",)),
    Server("bjoern", "bjoern", "bjoern",
           ("{py}", "-m", "benchmarks.apps", "bjoern", "--app", "{app}", "--host", HOST, "--port", "{port}"),
           "bjoern (C, libev)", cannot_longpoll=NO_PARKING),
    Server("uwsgi", "pyuwsgi", "pyuwsgi",
           ("{bin}/uwsgi", "--http11-socket", f"{HOST}:{{port}}", "--module", "{app}", "--master",
            "--processes", "1", "--http-keepalive", "--disable-logging", "--die-on-term", "--listen", "1024"),
           "uWSGI (C, pyuwsgi wheel), --http11-socket, 1 process, keep-alive",
           cannot_idle="one process, one thread: it stopped answering once a few connections stayed open",
           cannot_longpoll=NO_PARKING,
           # root is the benchmark box's business; the pipe errors are wrk closing at the end of a run
           log_noise=("running uWSGI as root", "Broken pipe", "OSError: write error")),
    Server("gevent", "gevent", "gevent",
           ("{py}", "-m", "benchmarks.apps", "gevent", "--app", "{app}", "--host", HOST, "--port", "{port}"),
           "gevent.pywsgi, patch_all(), TCP_NODELAY on accepted sockets (benchmarks/apps.py)"),
    Server("waitress", "waitress", "waitress",
           ("{py}", "-m", "waitress", f"--listen={HOST}:{{port}}", "--threads=1", "{opts}", "{app}"),
           "waitress, threads=1 (long polls: a thread per parked request)",
           multi=("{py}", "-m", "waitress", f"--listen={HOST}:{{port}}", "--threads={threads}", "{app}"),
           idle_opts=("--connection-limit={limit}", "--asyncore-use-poll"),
           longpoll_opts=("--threads={limit}", "--connection-limit={limit}", "--asyncore-use-poll"),
           # threads=1 working, and wrk's 100 connections reaching the default cap of 100
           log_noise=("Task queue depth", "reached the connection limit")),
    Server("gunicorn", "gunicorn", "gunicorn",
           ("{py}", "-m", "gunicorn", "-w", "1", "-k", "sync", "-b", f"{HOST}:{{port}}", "{app}"),
           "gunicorn sync worker, 1 worker (closes every connection: no keep-alive)",
           cannot_idle="the sync worker closes every connection after one response (no keep-alive)",
           cannot_longpoll=NO_PARKING),
    Server("gunicorn-gevent", "gunicorn.workers.ggevent", "gunicorn",
           ("{py}", "-m", "gunicorn", "-w", "1", "-k", "gevent", "--worker-connections", "{limit}",
            "-b", f"{HOST}:{{port}}", "{app}"),
           "gunicorn's gevent worker (-w 1; --workers N: -w N)",
           multi=("{py}", "-m", "gunicorn", "-w", "{workers}", "-k", "gevent", "--worker-connections",
                  "{limit}", "-b", f"{HOST}:{{port}}", "{app}")),
)
SINGLE_DEFAULT = ("cogen", "cogen-nowatchdog", "raw-epoll-wsgi", "granian", "meinheld", "bjoern", "uwsgi",
                  "gevent", "waitress", "gunicorn")
MULTI_DEFAULT = ("cogen", "gunicorn-gevent", "granian", "waitress")


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


def machine() -> str:
    """One line: CPU model, CPU count, kernel and the driver's Python."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return f"{os.cpu_count()} x {model}, Linux {platform.release()}"


# ---------------------------------------------------------------- processes

_running: dict[int, subprocess.Popen[bytes]] = {}


def _child_setup(cpus: set[int], max_life: int) -> Callable[[], None]:
    """A ``preexec_fn`` (safe here: the driver has no threads) pinning the child to ``cpus``."""
    def setup() -> None:
        os.sched_setaffinity(0, cpus)
        if max_life:
            signal.alarm(max_life)  # survives exec: a forgotten server dies on its own
    return setup


def server_cpus(args: argparse.Namespace) -> set[int]:
    """Where servers run: ``--server-cpu``, or both CPUs with ``--workers N``."""
    return {args.server_cpu, args.client_cpu} if args.workers > 1 else {args.server_cpu}


def start_server(args: argparse.Namespace, srv: Server, work: Workload, mode: str,
                 log: Path) -> subprocess.Popen[bytes]:
    """Start ``srv`` serving ``work`` in its own session on the server CPU(s); wait until it answers.

    Ready means the workload's request was answered 200 with the expected
    body. Raises RuntimeError (after stopping it) when it exits or is not
    ready in 30 s.
    """
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    # long polls: a thread per parked request (and some), not one per idle connection
    limit = args.longpoll + 1000 if mode == "longpoll" else args.limit
    argv = srv.command(args.python, args.port, work.app, mode, limit, args.workers)
    with open(log, "ab") as logf:
        stamp = time.strftime("%H:%M:%S")
        logf.write(f"\n==== {stamp} {srv.name} {work.name} {mode}: {shlex.join(argv)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_child_setup(server_cpus(args), args.max_life))  # noqa: PLW1509
    _running[proc.pid] = proc
    deadline = time.monotonic() + 30
    answer: tuple[int, bytes] | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_server(proc)
            raise RuntimeError(f"{srv.name} exited with status {proc.returncode}; see {log}")
        answer = http_request(args.port, work.request)
        if answer is not None:
            if answer[0] == 200 and answer[1].startswith(work.expect):
                time.sleep(0.3)  # a prefork master may still be settling its workers
                return proc
            break
        time.sleep(0.1)
    stop_server(proc)
    got = f"; it answered {answer[0]} {answer[1][:40]!r}" if answer else ""
    raise RuntimeError(f"{srv.name} did not serve {work.name} within 30 s{got}; see {log}")


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


def http_request(port: int, request: bytes, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """Send ``request`` on a fresh connection; (status, body), or None on a failure."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request)
            return read_response(sock)
    except OSError:
        return None


def parse_response(buf: bytes) -> tuple[int, bytes, int] | None:
    """A complete response (Content-Length or chunked) at the start of ``buf``: (status, body, its end)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    fields = {n.strip().lower(): v.strip() for n, _, v in (ln.partition(b":") for ln in lines[1:])}
    parts = lines[0].split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        # (granian sends a generator's body chunked, even with the app's Content-Length)
        pos, pieces = end + 4, []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            if len(buf) < eol + 4 + size:
                return None
            if size == 0:  # (no trailer fields: the empty line follows)
                return status, b"".join(pieces), eol + 4
            pieces.append(buf[eol + 2:eol + 2 + size])
            pos = eol + 4 + size
    length = int(fields.get(b"content-length", b"0"))
    if len(buf) < end + 4 + length:
        return None
    return status, buf[end + 4:end + 4 + length], end + 4 + length


def read_response(sock: socket.socket) -> tuple[int, bytes] | None:
    """Read one response with a Content-Length; (status, body), or None on EOF."""
    buf = b""
    while (res := parse_response(buf)) is None:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return None
        buf += chunk
    return res[0], res[1]


# ---------------------------------------------------------------- wrk

def write_lua(tmp: Path, work: Workload) -> Path:
    """wrk's script for ``work``: its prelude (the POST of ``echo``) and the JSON ``done()`` hook."""
    path = tmp / f"{work.name}.lua"
    path.write_text(work.lua + LUA_DONE)
    return path


def run_wrk(args: argparse.Namespace, lua: Path, path: str, conns: int, duration: float,
            close: bool, server: subprocess.Popen[bytes] | None = None,
            client: str = "wrk") -> dict[str, Any]:
    """One wrk run pinned to the client CPU; wrk's JSON line plus req/s and CPU figures.

    ``client="discard"`` runs benchmarks/discard.py instead (GET only: it
    has no Lua script), which prints the same line. Returns ``{"failed":
    reason}`` when the client printed no JSON line.
    """
    if client == "discard":
        argv = [sys.executable, str(ROOT / "benchmarks" / "discard.py"), "--host", HOST,
                "--port", str(args.port), "--path", path, "--conns", str(conns),
                "--duration", f"{duration:g}", "--timeout", "5"] + (["--close"] if close else [])
    else:
        argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--timeout", "5s", "-s", str(lua)]
        argv += ["-H", "Connection: close"] if close else []
        argv.append(f"http://{HOST}:{args.port}{path}")
    cpus = (args.server_cpu, args.client_cpu)
    busy0, srv0 = cpu_busy_ticks(cpus), tree_cpu_ticks(server.pid) if server else 0
    usage0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          preexec_fn=_child_setup({args.client_cpu}, 0)) as wrk:  # noqa: PLW1509
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
    busy = [(b - a) / CLK_TCK for a, b in zip(busy0, cpu_busy_ticks(cpus), strict=True)]
    res["server_cpu_pct"] = round(100 * srv_s / wall, 1)
    res["wrk_cpu_pct"] = round(100 * wrk_s / wall, 1)
    # CPU burnt by anybody else (other engineers' tests) on each of our two CPUs; with --workers the
    # server runs on both, so its CPU is taken off their sum
    if args.workers > 1:
        other = max(0.0, 100 * (busy[0] + busy[1] - srv_s - wrk_s) / wall)
        res["other_cpu_pct"] = [round(other / 2, 1), round(other / 2, 1)]
    else:
        res["other_cpu_pct"] = [round(max(0.0, 100 * (busy[0] - srv_s) / wall), 1),
                                round(max(0.0, 100 * (busy[1] - wrk_s) / wall), 1)]
    return res


def describe(res: dict[str, Any]) -> str:
    """One line for a wrk result."""
    if "failed" in res:
        return f"FAILED: {res['failed']}"
    errs = ",".join(f"{k}={res[k]}" for k in ("connect", "read", "write", "status", "timeout") if res[k])
    other = res["other_cpu_pct"]
    return (f"{res['rps']:9,.0f} req/s  p50 {res['p50_us'] / 1000:6.2f} ms"
            f"  p99 {res['p99_us'] / 1000:6.2f} ms  max {res['max_us'] / 1000:7.1f} ms"
            f"  srv {res['server_cpu_pct']:3.0f}%  wrk {res['wrk_cpu_pct']:3.0f}%"
            f"  other {other[0]:.0f}/{other[1]:.0f}%"
            + (f"  errors {errs}" if errs else ""))


# ---------------------------------------------------------------- many connections at once

def connect_many(port: int, count: int, deadline: float) -> list[socket.socket]:
    """Up to ``count`` connections, opened ``IDLE_BATCH`` at a time, before ``deadline``."""
    socks: list[socket.socket] = []
    while len(socks) < count and time.monotonic() < deadline:
        for _ in range(min(IDLE_BATCH, count - len(socks))):
            try:
                socks.append(socket.create_connection((HOST, port), timeout=5.0))
            except OSError:
                return socks
    return socks


Answers = dict[socket.socket, tuple[int, bytes]]


def collect(socks: list[socket.socket], deadline: float) -> tuple[Answers, float]:
    """Read one response from each socket at once; (answers by socket, time the last one completed)."""
    sel = selectors.DefaultSelector()
    bufs: dict[socket.socket, bytes] = {}
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, sock)
        bufs[sock] = b""
    answers: Answers = {}
    last = time.monotonic()
    try:
        while bufs and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                sock = key.data  # the socket itself (registered as data too: typed, unlike fileobj)
                try:
                    chunk = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                buf = bufs[sock] + chunk
                res = parse_response(buf) if chunk else None
                if chunk and res is None:
                    bufs[sock] = buf
                    continue
                sel.unregister(sock)
                del bufs[sock]
                if res is not None:
                    answers[sock] = res[0], res[1]
                    last = time.monotonic()
    finally:
        sel.close()
        for sock in socks:
            sock.setblocking(True)
    return answers, last


def exchange(socks: list[socket.socket], request: bytes, deadline: float) -> list[socket.socket]:
    """Send ``request`` on every socket, then read the responses; the sockets answered 200.

    All requests go out before any response is read, so the server sees them
    together, as it would from many clients.
    """
    sent = []
    for sock in socks:
        try:
            sock.sendall(request)
            sent.append(sock)
        except OSError:
            pass
    answers, _ = collect(sent, deadline)
    return [sock for sock in sent if answers.get(sock, (0, b""))[0] == 200]


def open_idle(port: int, count: int, deadline: float) -> tuple[list[socket.socket], int]:
    """Open up to ``count`` connections that each got one answer; (those, how many failed)."""
    request = WORKLOADS["hello"].request
    socks: list[socket.socket] = []
    tried = 0
    while tried < count and time.monotonic() < deadline:
        batch = connect_many(port, min(IDLE_BATCH, count - tried), deadline)
        tried += IDLE_BATCH if not batch else len(batch)
        answered = exchange(batch, request, deadline)
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
    request = WORKLOADS["hello"].request
    answered = sum(len(exchange(left[i:i + IDLE_BATCH], request, deadline))
                   for i in range(0, len(left), IDLE_BATCH) if time.monotonic() < deadline)
    return len(readable), answered


# ---------------------------------------------------------------- visits

@contextmanager
def serving(args: argparse.Namespace, srv: Server, work: Workload, mode: str,
            lua: Path | None) -> Iterator[subprocess.Popen[bytes]]:
    """A started, warmed-up (when ``lua`` is given) server, stopped on exit whatever happens."""
    proc = start_server(args, srv, work, mode, args.logs / f"{srv.name}.log")
    try:
        if args.warmup and lua is not None:
            run_wrk(args, lua, work.path, 10, args.warmup, False, client=work.client)
        yield proc
    finally:
        stop_server(proc)


def throughput_visit(args: argparse.Namespace, srv: Server, work: Workload, rep: int) -> list[dict[str, Any]]:
    """Start ``srv`` serving ``work`` and run each of its scenarios once; the result rows."""
    rows = []
    lua = write_lua(args.tmp, work)
    with serving(args, srv, work, "throughput", lua) as proc:
        for scenario, conns, close in work.scenarios:
            res = run_wrk(args, lua, work.path, conns, args.duration, close, proc, client=work.client)
            rows.append({"kind": "throughput", "server": srv.name, "workload": work.name, "repeat": rep,
                         "scenario": scenario, "conns": conns, "close": close, **res})
            print(f"[{rep}] {srv.name:15s} {work.name:10s} {scenario:9s} {describe(res)}", flush=True)
            if proc.poll() is not None:
                print(f"[{rep}] {srv.name} DIED (status {proc.returncode})", flush=True)
                break
    return rows


def longpoll_round(port: int, count: int, deadline: float) -> dict[str, Any]:
    """Park ``count`` ``GET /wait`` requests, release them with one ``POST /release``; the figures.

    ``ms`` is the time from sending the release to the last answer read;
    ``ok`` the answers that were a 200 ``released``.
    """
    socks = connect_many(port, count, deadline)
    out: dict[str, Any] = {"parked": 0, "ok": 0, "connected": len(socks)}
    try:
        wait = f"GET /wait HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
        for sock in socks:
            sock.sendall(wait)
        while time.monotonic() < deadline:  # until the server counts every request as parked
            answer = http_request(port, f"GET /count HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode(), 5.0)
            out["parked"] = int(answer[1]) if answer and answer[1].isdigit() else -1
            if out["parked"] >= len(socks):
                break
            time.sleep(0.05)
        else:
            out["failed"] = f"only {out['parked']} of {len(socks)} requests parked in time"
        with socket.create_connection((HOST, port), timeout=5.0) as rel:
            t0 = time.monotonic()
            rel.sendall(f"POST /release HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n".encode())
            answers, last = collect(socks, deadline)
            released = read_response(rel)
        out["ok"] = sum(1 for a in answers.values() if a == (200, b"released"))
        out["ms"] = round(1000 * (last - t0), 2) if answers else None
        out["release_answer"] = released[1].decode(errors="replace") if released else None
        if out["ok"] < count and "failed" not in out:
            out["failed"] = f"{out['ok']} of {count} long polls answered 'released'"
    finally:
        for sock in socks:
            sock.close()
    return out


def longpoll_visit(args: argparse.Namespace, srv: Server, work: Workload, rep: int) -> list[dict[str, Any]]:
    """Start ``srv`` with a thread (or nothing) per parked request; ``--longpoll-rounds`` rounds."""
    rows = []
    with serving(args, srv, work, "longpoll", None):
        try:
            longpoll_round(args.port, min(100, args.longpoll), time.monotonic() + 30)  # warm-up
        except OSError:
            pass  # the measured rounds will say what is wrong
        for rnd in range(1, args.longpoll_rounds + 1):
            try:
                res = longpoll_round(args.port, args.longpoll, time.monotonic() + 60)
            except OSError as exc:  # the server reset or refused a connection mid-round
                res = {"ok": 0, "failed": f"{type(exc).__name__}: {exc}"}
            rows.append({"kind": "longpoll", "server": srv.name, "workload": work.name, "repeat": rep,
                         "round": rnd, "count": args.longpoll, **res})
            print(f"[{rep}] {srv.name:15s} longpoll   {res['ok']}/{args.longpoll} released, last answer "
                  f"{fmt(res.get('ms'), '.1f')} ms after the signal ({res.get('release_answer')})"
                  + (f"  FAILED: {res['failed']}" if "failed" in res else ""), flush=True)
    return rows


def idle_visit(args: argparse.Namespace, srv: Server, work: Workload, rep: int) -> dict[str, Any]:
    """Start ``srv`` with caps lifted, measure c100 without and with N idle connections."""
    row: dict[str, Any] = {"kind": "idle", "server": srv.name, "repeat": rep, "idle": args.idle}
    lua = write_lua(args.tmp, work)
    with serving(args, srv, work, "idle", lua) as proc:
        row["without"] = run_wrk(args, lua, work.path, 100, args.duration, False, proc)
        row["rss_before_kb"] = tree_rss_kb(proc.pid)
        t0 = time.monotonic()
        socks, row["open_failed"] = open_idle(args.port, args.idle, t0 + args.idle_setup)
        try:
            row["setup_s"] = round(time.monotonic() - t0, 2)
            row["held"] = len(socks)
            time.sleep(0.5)  # let the server finish any bookkeeping after the last response
            row["rss_idle_kb"] = tree_rss_kb(proc.pid)
            row["kib_per_conn"] = (row["rss_idle_kb"] - row["rss_before_kb"]) / max(1, len(socks))
            row["with"] = run_wrk(args, lua, work.path, 100, args.duration, False, proc)
            row["dropped"], row["probe_ok"] = probe_idle(socks, time.monotonic() + args.idle_setup)
            row["alive"] = proc.poll() is None
        finally:
            for sock in socks:
                sock.close()
    without, with_ = row["without"].get("rps"), row["with"].get("rps")
    row["pct"] = 100 * with_ / without if without and with_ else None
    print(f"[{rep}] {srv.name:15s} idle      held {row['held']}/{args.idle} in {row['setup_s']} s, "
          f"{row['kib_per_conn']:.2f} KiB/conn, c100 {without or 0:,.0f} -> {with_ or 0:,.0f} req/s"
          f" ({row['pct'] or 0:.0f}%), p99 with {row['with'].get('p99_us', 0) / 1000:.2f} ms, "
          f"dropped {row['dropped']}, probe ok {row['probe_ok']}/{row['held'] - row['dropped']}", flush=True)
    return row


# ---------------------------------------------------------------- report

def med(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted, or ``-`` for a missing figure."""
    return "-" if value is None else format(value, spec)


def summarize(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Medians over the repeats: ``throughput[workload][server]``, ``longpoll[server]``, ``idle[server]``.

    This is what the tables print and what ``benchmarks/chart.py`` draws
    (the driver stores it as the run's ``summary`` row).
    """
    out: dict[str, Any] = {"throughput": {}, "longpoll": {}, "idle": {}}
    for wname, work in WORKLOADS.items():
        for name in names:
            mine = [r for r in rows if r["kind"] == "throughput" and r.get("server") == name
                    and r.get("workload") == wname and "rps" in r]
            failed = sum(1 for r in rows if r.get("server") == name and r.get("workload") == wname
                         and r["kind"] in ("throughput", "error") and ("failed" in r or "error" in r))
            if not mine and not failed:
                continue
            fig: dict[str, Any] = {sc: med([r["rps"] for r in mine if r["scenario"] == sc])
                                   for sc, _, _ in work.scenarios}
            fig["p99_c100"] = med([r["p99_us"] / 1000 for r in mine if r["scenario"] == "c100"])
            fig["cpu_c100"] = med([r["server_cpu_pct"] for r in mine if r["scenario"] == "c100"])
            fig["errors"] = sum(r["errors"] for r in mine) + failed
            fig["other"] = [med([r["other_cpu_pct"][i] for r in mine]) for i in (0, 1)]
            fig["n"] = len({r["repeat"] for r in mine})
            out["throughput"].setdefault(wname, {})[name] = fig
    for name in names:
        polls = [r for r in rows if r["kind"] == "longpoll" and r.get("server") == name]
        if polls:
            out["longpoll"][name] = {"ms": med([r["ms"] for r in polls if r.get("ms") is not None]),
                                     "ok": min(r["ok"] for r in polls), "count": polls[0]["count"],
                                     "failed": sum(1 for r in polls if "failed" in r), "n": len(polls)}
        idle = [r for r in rows if r["kind"] == "idle" and r.get("server") == name and "held" in r]
        if idle:
            out["idle"][name] = {
                "idle": idle[0]["idle"], "held": med([r["held"] for r in idle]),
                "kib_per_conn": med([r["kib_per_conn"] for r in idle]),
                "without": med([r["without"]["rps"] for r in idle if "rps" in r["without"]]),
                "with": med([r["with"]["rps"] for r in idle if "rps" in r["with"]]),
                "pct": med([r["pct"] for r in idle if r["pct"]]),
                "p99_with": med([r["with"]["p99_us"] / 1000 for r in idle if "rps" in r["with"]]),
                "dropped": med([r["dropped"] for r in idle]), "probe_ok": med([r["probe_ok"] for r in idle])}
    return out


def ratio(mine: float | None, theirs: float | None) -> float | None:
    """``mine / theirs``, or None when either is missing."""
    return mine / theirs if mine and theirs else None


def print_throughput(summary: dict[str, Any], args: argparse.Namespace) -> None:
    """One table per workload: medians and cogen's ratio to each peer per scenario."""
    where = (f"servers on CPUs {args.server_cpu}+{args.client_cpu} ({args.workers} workers), wrk on CPU "
             f"{args.client_cpu}" if args.workers > 1 else f"server on CPU {args.server_cpu}, wrk on CPU "
             f"{args.client_cpu}")
    for wname, figs in summary["throughput"].items():
        scen = [sc for sc, _, _ in WORKLOADS[wname].scenarios]
        print(f"\nThroughput, {wname} ({WORKLOADS[wname].app} {WORKLOADS[wname].path}): req/s, medians of "
              f"{args.repeats} repeat(s) of {args.duration:g} s; {where}")
        print(f"{'server':16s} " + " ".join(f"{s:>10s}" for s in scen)
              + f" {'p99 c100 ms':>12s} {'srv CPU%':>9s} {'errors':>7s} {'n':>2s}"
              + f" {'other CPU% srv/cli':>19s}  "
              + " ".join(f"{'cogen/' + s:>12s}" for s in scen))
        cog = figs.get("cogen", {})
        for name, f in figs.items():
            ratios = "" if name == "cogen" else " ".join(
                f"{fmt(ratio(cog.get(s), f[s]), '.2f'):>12s}" for s in scen)
            print(f"{name:16s} " + " ".join(f"{fmt(f[s], ',.0f'):>10s}" for s in scen)
                  + f" {fmt(f['p99_c100'], '.2f'):>12s} {fmt(f['cpu_c100'], '.0f'):>9s} {f['errors']:>7d}"
                  f" {f['n']:>2d} {fmt(f['other'][0], '.0f'):>15s}/{fmt(f['other'][1], '.0f'):3s}  {ratios}")


def print_ratios(summary: dict[str, Any]) -> None:
    """cogen / peer for every workload in one matrix (long polls: peer's time / cogen's)."""
    cols = [(w, sc) for w, figs in summary["throughput"].items() for sc, _, _ in WORKLOADS[w].scenarios
            if sc != "c10" or w == "hello"]
    peers = {n for figs in summary["throughput"].values() for n in figs} | set(summary["longpoll"])
    peers.discard("cogen")
    if not peers:
        return
    print("\ncogen / peer, all workloads (above 1: cogen better; req/s ratios; long polls: peer's time / "
          "cogen's)")
    heads = [f"{w}/{sc}" for w, sc in cols] + (["longpoll"] if summary["longpoll"] else [])
    print(f"{'peer':16s} " + " ".join(f"{h:>{max(8, len(h))}s}" for h in heads))
    cog_lp = summary["longpoll"].get("cogen", {}).get("ms")
    for name in [n for n in dict.fromkeys((*SINGLE_DEFAULT, *MULTI_DEFAULT, *(s.name for s in SERVERS)))
                 if n in peers]:
        cells = [ratio(summary["throughput"][w].get("cogen", {}).get(sc),
                       summary["throughput"][w].get(name, {}).get(sc)) for w, sc in cols]
        if summary["longpoll"]:
            cells.append(ratio(summary["longpoll"].get(name, {}).get("ms"), cog_lp))
        print(f"{name:16s} " + " ".join(f"{fmt(c, '.2f'):>{max(8, len(h))}s}"
                                        for c, h in zip(cells, heads, strict=True)))


def print_longpoll(summary: dict[str, Any], args: argparse.Namespace) -> None:
    """The long-poll table."""
    print(f"\nLong polls: {args.longpoll} parked requests released by one signal, "
          f"{args.longpoll_rounds} round(s) per repeat; ms from the release to the last answer (median)")
    print(f"{'server':16s} {'ms to last':>11s} {'released (min)':>15s} {'failed rounds':>14s} {'n':>3s}")
    for name, f in summary["longpoll"].items():
        print(f"{name:16s} {fmt(f['ms'], '.1f'):>11s} {f['ok']:>10d}/{f['count']:<4d} {f['failed']:>14d}"
              f" {f['n']:>3d}")


def print_idle(summary: dict[str, Any], args: argparse.Namespace) -> None:
    """The idle-connection table."""
    print(f"\nIdle keep-alive connections (N={args.idle}, each made one request): medians of {args.repeats}")
    print(f"{'server':16s} {'held':>6s} {'KiB/conn':>9s} {'c100 without':>13s} {'c100 with':>10s} "
          f"{'with/without':>13s} {'p99 with ms':>12s} {'dropped':>8s} {'probe ok':>9s}")
    for name, f in summary["idle"].items():
        print(f"{name:16s} {fmt(f['held'], '.0f'):>6s} {fmt(f['kib_per_conn'], '.2f'):>9s} "
              f"{fmt(f['without'], ',.0f'):>13s} {fmt(f['with'], ',.0f'):>10s} {fmt(f['pct'], '.0f'):>12s}% "
              f"{fmt(f['p99_with'], '.2f'):>12s} {fmt(f['dropped'], '.0f'):>8s}"
              f" {fmt(f['probe_ok'], '.0f'):>9s}")


def render_chart(args: argparse.Namespace, out: Path, run_id: str) -> None:
    """Draw the run's summary into ``args.chart`` with ``--python``'s matplotlib (see benchmarks/chart.py)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [args.python, "-m", "benchmarks.chart", "--from", str(out), "--run", run_id, str(args.chart)]
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"\n--chart: could not run {args.python}: {exc}")
        return
    if res.returncode == 0:
        print(f"\nchart: {args.chart} (again: {shlex.join(cmd)})")
    else:
        print(f"\n--chart: no chart written: {(res.stderr.strip().splitlines() or ['failed'])[-1]}")


# ---------------------------------------------------------------- main

def check_servers(args: argparse.Namespace, names: list[str]) -> tuple[list[Server], dict[str, str]]:
    """The selected servers whose module imports in ``--python``; their versions."""
    chosen, versions = [], {}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for srv in (s for name in names for s in SERVERS if s.name == name):
        if args.workers > 1 and not srv.multi:
            print(f"skip {srv.name}: no multi-process mode here (--workers {args.workers})")
            continue
        code = (f"import importlib.metadata as m, {srv.module}\n"
                f"try: print(m.version({srv.dist or 'cogen'!r}) if {bool(srv.dist)} else 'checkout')\n"
                "except m.PackageNotFoundError: print('checkout')")
        try:
            res = subprocess.run([args.python, "-c", code], check=False, cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"skip {srv.name}: cannot run {args.python}: {exc}")
            continue
        if res.returncode != 0:
            why = (res.stderr.strip().splitlines() or ["import failed"])[-1]
            print(f"skip {srv.name}: {srv.module} does not import in {args.python} ({why})")
            continue
        versions[srv.name] = res.stdout.strip()
        chosen.append(srv)
    return chosen, versions


def raise_nofile(args: argparse.Namespace) -> None:
    """Raise RLIMIT_NOFILE (inherited by the servers) to hold the idle connections; may lower --idle."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.idle, args.longpoll) + 2048
    if hard != resource.RLIM_INFINITY and hard < want:
        args.idle = max(0, min(args.idle, hard - 2048))
        print(f"note: RLIMIT_NOFILE hard limit is {hard}; idle connections lowered to {args.idle}")
        want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    names = [s.name for s in SERVERS]
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--servers", default=None,
                   help=f"comma-separated, from {','.join(names)} (default: {','.join(SINGLE_DEFAULT)}; "
                        f"with --workers: {','.join(MULTI_DEFAULT)})")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, from the default")
    p.add_argument("--workers", type=int, default=1,
                   help="1: one process on one CPU; N>1: the servers' N-process modes on both CPUs")
    p.add_argument("--python", default=sys.executable, help="interpreter that has the peers installed")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    p.add_argument("--repeats", type=int, default=1, help="round-robin passes over the servers")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk -c10 after readiness")
    p.add_argument("--idle", type=int, default=10000, help="idle keep-alive connections; 0 skips that test")
    p.add_argument("--longpoll", type=int, default=1000, help="parked requests per long-poll round")
    p.add_argument("--longpoll-rounds", type=int, default=3, help="long-poll rounds per server start")
    p.add_argument("--only", choices=["throughput", "idle"], help="run one of the two tests")
    p.add_argument("--idle-setup", type=float, default=120.0, help="max seconds to open (or probe) them")
    p.add_argument("--chart", type=Path, default=None,
                   help="draw the summary into this PNG (needs matplotlib)")
    p.add_argument("--out", type=Path, default=Path("/tmp/cogen-bench.jsonl"),
                   help="raw results, appended as JSON lines (server logs go to OUT's stem + '-logs/')")
    p.add_argument("--base-checkout", type=Path, default=None,
                   help="a checkout of an earlier cogen: the server 'cogen-base' runs it")
    p.add_argument("--port", type=int, default=18800, help="the port every server listens on, in turn")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1,
                   help="CPU of wrk, the client connections and the driver")
    p.add_argument("--max-life", type=int, default=900, help="seconds after which a server kills itself")
    p.add_argument("--max-time", type=int, default=0,
                   help="seconds before the driver gives up; 0 = estimate x2")
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.workers < 1:
        p.error(f"--workers {args.workers}: must be at least 1")
    if min(args.repeats, args.longpoll, args.longpoll_rounds) < 1 or args.duration <= 0 or args.idle < 0:
        p.error("--duration, --repeats, --longpoll and --longpoll-rounds must be positive, "
                "--idle not negative")
    default = MULTI_DEFAULT if args.workers > 1 else SINGLE_DEFAULT
    args.names = [n.strip() for n in (args.servers or ",".join(default)).split(",") if n.strip()]
    args.workload_names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown_w = sorted(set(args.workload_names) - set(WORKLOADS))
    if unknown_w or not args.workload_names:
        p.error(f"unknown workload(s) {', '.join(unknown_w)} in --workloads {args.workloads!r}; "
                f"known: {', '.join(WORKLOADS)}")
    if "cogen-base" in args.names:
        if args.base_checkout is None or not (args.base_checkout / "cogen" / "web").is_dir():
            p.error("the server cogen-base needs --base-checkout PATH, a checkout of cogen")
        BASE_CHECKOUT[0] = str(args.base_checkout.resolve())
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        p.error(f"unknown server(s) {', '.join(unknown)} in --servers {args.servers!r}; "
                f"known: {', '.join(names)}")
    cpus = {args.server_cpu, args.client_cpu}
    if not cpus <= os.sched_getaffinity(0) or args.server_cpu == args.client_cpu:
        p.error(f"--server-cpu {args.server_cpu} and --client-cpu {args.client_cpu} must be two different "
                f"CPUs this process may use: {sorted(os.sched_getaffinity(0))}")
    return args


def _on_alarm(signum: int, frame: Any) -> None:
    raise DriverTimeout("the whole run took longer than --max-time")


def _on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


Visit = tuple[Callable[..., Any], Server, Workload]


def plan(args: argparse.Namespace, servers: list[Server]) -> list[Visit]:
    """The visits of one repeat, in order; prints one line per test a server sits out."""
    visits: list[Visit] = []
    works = [WORKLOADS[w] for w in args.workload_names] if args.only != "idle" else []
    for work in works:
        for srv in servers:
            why = dict(srv.cannot).get(work.name)
            if why:
                print(f"  {work.name} skips {srv.name}: {why}")
            elif not work.longpoll:
                visits.append((throughput_visit, srv, work))
            elif args.workers > 1:
                print(f"  longpoll skips {srv.name}: the parked requests would be spread over processes "
                      f"that do not share the signal (--workers)")
            elif srv.cannot_longpoll:
                print(f"  longpoll skips {srv.name}: {srv.cannot_longpoll}")
            else:
                visits.append((longpoll_visit, srv, work))
    if args.idle and args.only != "throughput":
        if args.workers > 1:
            print("  the idle test runs only without --workers")
        else:
            for srv in servers:
                if srv.cannot_idle:
                    print(f"  idle test skips {srv.name}: {srv.cannot_idle}")
                else:
                    visits.append((idle_visit, srv, WORKLOADS["hello"]))
    return visits


def visit_seconds(args: argparse.Namespace, run: Callable[..., Any], work: Workload) -> float:
    """A rough duration of one visit, for the estimate and --max-time."""
    warmup, duration = float(args.warmup), float(args.duration)
    if run is throughput_visit:
        return warmup + len(work.scenarios) * (duration + 1) + 5
    if run is longpoll_visit:
        return 5.0 + (int(args.longpoll_rounds) + 1) * (2 + int(args.longpoll) / 500)
    return warmup + 2 * duration + 10 + int(args.idle) / 250


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
    if args.chart is not None:
        has_mpl = subprocess.run([args.python, "-c", "import matplotlib"], capture_output=True, check=False,
                                 timeout=60).returncode == 0
        if not has_mpl:
            print(f"note: --chart needs matplotlib in {args.python} (pip install matplotlib, or the 'bench' "
                  f"extra); the benchmark runs, no chart will be drawn")
            args.chart = None
    args.limit = max(args.idle, args.longpoll) + 1000
    raise_nofile(args)
    os.sched_setaffinity(0, {args.client_cpu})
    args.logs = args.out.parent / f"{args.out.stem}-logs"
    args.logs.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    print(f"run {run_id}: {', '.join(f'{s.name} {versions[s.name]}' for s in servers)}")
    pyver = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                           capture_output=True, text=True, check=False, timeout=60).stdout.strip()
    print(f"  machine: {machine()}; servers under {args.python} (Python {pyver})")
    if args.workers > 1:
        print(f"  cores: --workers {args.workers}: each server may use CPUs {args.server_cpu} and "
              f"{args.client_cpu}; wrk and the driver are pinned to CPU {args.client_cpu}, so they share it "
              "with the server processes the kernel runs there (a 2-core machine has no core left for the "
              "load)")
    else:
        print(f"  cores: server pinned to CPU {args.server_cpu}; wrk, client connections and driver to CPU "
              f"{args.client_cpu}")
    for srv in servers:
        print(f"  {srv.name:15s} {srv.note}")
    visits = plan(args, servers)
    per_rep = sum(visit_seconds(args, run, work) for run, _, work in visits)
    args.max_time = args.max_time or int(2 * args.repeats * per_rep + 120)
    print(f"  about {args.repeats * per_rep / 60:.0f} min (gives up after {args.max_time} s); "
          f"logs in {args.logs}")
    rows: list[dict[str, Any]] = [{"kind": "meta", "args": {k: str(v) for k, v in vars(args).items()},
                                   "versions": versions, "python": args.python, "cpus": os.cpu_count(),
                                   "machine": machine(),
                                   "command": shlex.join(["benchmarks/wsgi.py", *args.argv])}]
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(args.max_time)
    status = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            args.tmp = Path(tmp)
            for rep in range(1, args.repeats + 1):
                for run, srv, work in visits:
                    rows += visit(run, args, srv, work, rep)
    except (KeyboardInterrupt, DriverTimeout) as exc:
        print(f"\nstopped: {str(exc) or 'interrupted'}", file=sys.stderr)
        status = 1
    finally:
        signal.alarm(0)
        for proc in list(_running.values()):
            stop_server(proc)
        summary = summarize(rows, [s.name for s in servers])
        rows.append({"kind": "summary", **summary, "meta": {
            "machine": rows[0]["machine"], "versions": versions, "command": rows[0]["command"],
            "workers": args.workers, "duration": args.duration, "repeats": args.repeats, "idle_n": args.idle,
            "longpoll_n": args.longpoll}})
        with open(args.out, "a") as f:
            f.writelines(json.dumps({"run": run_id, **row}) + "\n" for row in rows)
    if summary["throughput"]:
        print_throughput(summary, args)
    if summary["longpoll"]:
        print_longpoll(summary, args)
    if summary["idle"]:
        print_idle(summary, args)
    print_ratios(summary)
    skipped = sorted(set(args.names) - set(versions))
    if skipped:
        print(f"\nskipped: {', '.join(skipped)}")
    print(f"\nraw results: {args.out} (run {run_id}); server logs: {args.logs}")
    if args.chart is not None:
        render_chart(args, args.out, run_id)
    return status


def visit(run: Callable[..., Any], args: argparse.Namespace, srv: Server, work: Workload,
          rep: int) -> list[dict[str, Any]]:
    """Run one visit; its rows, plus a row for a failed start and for warnings in the server's log.

    A server that fails to start gives an error row instead of stopping the run.
    """
    log = args.logs / f"{srv.name}.log"
    offset = log.stat().st_size if log.exists() else 0
    try:
        result = run(args, srv, work, rep)
        rows: list[dict[str, Any]] = result if isinstance(result, list) else [result]
    except RuntimeError as exc:
        print(f"[{rep}] {srv.name} {work.name}: {exc}", flush=True)
        rows = [{"kind": "error", "server": srv.name, "workload": work.name, "repeat": rep,
                 "error": str(exc)}]
    with open(log, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    bad = [ln for ln in lines if any(w in ln for w in ("Traceback", "ERROR", "WARNING", "Error", "CRITICAL"))
           and not any(w in ln for w in srv.log_noise)]
    if bad:
        print(f"[{rep}] {srv.name}: {len(bad)} warning/error line(s) in {log}, first: {bad[0][:160]}",
              flush=True)
        rows.append({"kind": "log", "server": srv.name, "workload": work.name, "repeat": rep,
                     "count": len(bad), "first": bad[:5]})
    return rows


if __name__ == "__main__":
    sys.exit(main())
