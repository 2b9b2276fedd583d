"""Instructions per keep-alive request of a WSGI app (hello), counted by callgrind.

Run from the checkout (needs ``valgrind`` on PATH)::

    python3 -m benchmarks.instructions [--requests 200,1200] [--app hello] [--connections 1]
                                       [--server cogen] [--python PYTHON]

Wall or CPU time on a shared machine moves with the neighbours' load;
the number of instructions the server executes does not. So the server
runs under ``valgrind --tool=callgrind`` (which counts every instruction
it executes, ``Ir``), in-process: a :class:`~cogen.web.wsgi.WSGIServer`
on a :class:`~cogen.core.schedulers.Scheduler`, serving
``benchmarks.apps:hello`` (or another app of :mod:`benchmarks.apps` whose
responses have a Content-Length: ``--app``; ``echo`` is sent a 64 KiB
``POST``) on 127.0.0.1 with no access
log. Its client is a separate process (not under valgrind: children are not
traced) that sends
``GET /`` on one keep-alive connection, waits for each whole response and
sends the next. After the last request the server shuts down. The hash
seed is fixed (``PYTHONHASHSEED=0``) so that runs compare.

``--server raw-epoll-wsgi`` counts the bare pure-Python loop of
:mod:`benchmarks.raw_wsgi` (the ceiling of ``benchmarks/wsgi.py``) serving
the same app the same way: what cogen-web spends on being correct is the
difference.

``--connections N`` spreads the requests over N connections with one
request in flight on each, as ``wrk -cN`` does. The server under valgrind
is far slower than its client, so every connection's next request is
waiting by the time the server polls again: the count is that of a
saturated server, whose one poll returns N ready connections, and shows
what the work of one wake-up costs spread over the requests it serves.

Start-up (interpreter, imports, bind) costs the same at any request count,
so the server runs twice, with the two counts of ``--requests``, and the
figure is the difference in ``Ir`` divided by the difference in requests.
Prints one line: ``Ir/request: N`` (and each run's total).

``--core`` counts the core programs of :mod:`benchmarks.core` the same way
(``Sleep(0)`` switches, Signal ping-pong round trips, spawned coroutines,
each run at the two counts of ``--iterations``): ``Ir/iteration`` for each,
the scheduler's fast path measured without the machine's noise, beside the
count of the asyncio program ``benchmarks.core`` compares it with and the
ratio of the two (asyncio's instructions over cogen's: above 1, cogen does
less work; how much faster that is on a clock also depends on how many
instructions each side runs per cycle).
"""
from __future__ import annotations

import argparse
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
from functools import partial
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
#: What the client sends for an app that wants more than ``GET /``: echo, a 64 KiB POST.
_REQUESTS = {"echo": b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 65536\r\n\r\n" + b"e" * 65536}


def client(port: int, count: int, app_name: str = "hello", connections: int = 1) -> None:
    """Send ``count`` keep-alive requests for ``app_name`` to 127.0.0.1:``port``.

    Over ``connections`` connections, each with one request in flight: a
    connection sends its next request once the whole response to the last
    one is in, as wrk does.
    """
    request = _REQUESTS.get(app_name, _REQUEST)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(connections)]
    sel = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    waiting: set[socket.socket] = set()  # the connections with a request in flight
    sent = answered = 0
    try:
        for sock in socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sel.register(sock, selectors.EVENT_READ)
            buffers[sock] = b""
            if sent < count:
                sock.sendall(request)
                waiting.add(sock)
                sent += 1
        while answered < count:
            events = sel.select(timeout=60)
            if not events:
                raise SystemExit("no response within 60 s")
            for key, _ in events:
                sock = key.fileobj  # type: ignore[assignment]
                chunk = sock.recv(65536)
                if not chunk:
                    if sock in waiting:
                        raise SystemExit("server closed the connection early")
                    # an idle one, closed by the server that served the last
                    # request: its answer may still be unread on another
                    sel.unregister(sock)
                    continue
                buf = buffers[sock] + chunk
                while True:
                    head_end = buf.find(b"\r\n\r\n")
                    if head_end < 0:
                        break
                    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", buf[:head_end])
                    if match is None:
                        raise SystemExit("response without Content-Length")
                    end = head_end + 4 + int(match.group(1))
                    if len(buf) < end:
                        break
                    buf = buf[end:]
                    answered += 1
                    waiting.discard(sock)
                    if sent < count:
                        sock.sendall(request)
                        waiting.add(sock)
                        sent += 1
                buffers[sock] = buf
    finally:
        sel.close()
        for sock in socks:
            sock.close()


#: The servers --server may name: cogen-web, and the pure-Python ceiling of benchmarks.raw_wsgi.
SERVERS = ("cogen", "raw-epoll-wsgi")


def server(count: int, python: str, app_name: str = "hello", connections: int = 1,
           kind: str = "cogen") -> None:
    """Serve ``count`` requests with ``benchmarks.apps.<app_name>`` to a client subprocess, then shut down.

    The client spreads them over ``connections`` keep-alive connections.
    ``kind`` is the server (:data:`SERVERS`): a cogen-web
    :class:`~cogen.web.wsgi.WSGIServer`, or the bare loop of
    :mod:`benchmarks.raw_wsgi`, the same way.
    """
    from benchmarks import apps

    measured = getattr(apps, app_name)
    served = 0
    stop: Any = None

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        nonlocal served
        served += 1
        if served == count:
            stop()
        return measured(environ, start_response)

    run: Any
    if kind == "raw-epoll-wsgi":
        from benchmarks.raw_wsgi import RawWSGIServer

        raw = RawWSGIServer(socket.create_server(("127.0.0.1", 0)), app)
        port = raw.sock.getsockname()[1]
        stop = raw.shutdown  # (the loop ends after the poll that served the last request)

        def run() -> None:
            try:
                raw.serve_forever()
            finally:
                raw.close()
    else:
        from cogen.core.schedulers import Scheduler
        from cogen.web.wsgi import WSGIServer

        sched = Scheduler()
        srv = WSGIServer(("127.0.0.1", 0), app, sched, access_log=False)
        stop = partial(sched.call_soon_threadsafe, srv.shutdown, 5.0)
        srv.start()
        port = srv.address[1]
        run = sched.run
    proc = subprocess.Popen([python, "-m", "benchmarks.instructions", "client", app_name,
                             "--port", str(port), "--requests", str(count),
                             "--connections", str(connections)], cwd=_ROOT)
    run()
    if proc.wait(timeout=60) != 0:
        raise SystemExit("the client failed")


#: The apps of benchmarks.apps that --app may name: their responses have a Content-Length.
APPS = ("hello", "page", "big", "big_list", "echo")

#: The programs of benchmarks.core that --core counts.
CORE_PROGRAMS = ("cogen_sleep0", "cogen_pingpong", "cogen_pingpong_ops_once", "cogen_spawn")
#: The asyncio programs --core counts beside them: each cogen program's
#: counterpart in benchmarks.core, the asyncio side of its ratio.
ASYNCIO_PROGRAMS = {"cogen_sleep0": "_sleep0", "cogen_pingpong": "_pingpong_future",
                    "cogen_pingpong_ops_once": "_pingpong_future", "cogen_spawn": "_spawn"}


def core_program(name: str, count: int) -> None:
    """Run one program of :mod:`benchmarks.core` for ``count`` iterations.

    ``name`` is one of :data:`CORE_PROGRAMS`, or ``asyncio`` followed by one
    of the coroutine functions of :data:`ASYNCIO_PROGRAMS` (run on a new
    asyncio loop, as ``benchmarks.core`` runs it).
    """
    import asyncio

    from benchmarks import core
    if name.startswith("asyncio_"):
        core.asyncio_runner(getattr(core, name[len("asyncio"):]), asyncio.new_event_loop)(count)
    else:
        getattr(core, name)(count, None)


def _count(requests: int, python: str, role: tuple[str, ...] = ("server", "hello"),
           connections: int = 1, kind: str = "cogen") -> int:
    """Run ``role`` (the server, by default) under callgrind for ``requests``; returns its total Ir."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        # a fixed hash seed: randomised str hashes change dict probing, hence the count
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        python, "-m", "benchmarks.instructions", *role,
                        "--requests", str(requests), "--connections", str(connections),
                        "--server", kind],
                       cwd=_ROOT, check=True, stderr=subprocess.DEVNULL, env=env)
        with open(out, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise SystemExit("no summary in the callgrind output")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the measurement (or one of its two halves)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.instructions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="measure",
                        choices=["measure", "server", "client", "core"], help=argparse.SUPPRESS)
    parser.add_argument("program", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--app", default="hello", choices=APPS,
                        help="the app of benchmarks.apps to serve (default hello)")
    parser.add_argument("--requests", default="200,1200",
                        help="two request counts, LOW,HIGH (default 200,1200)")
    parser.add_argument("--core", action="store_true",
                        help="count the core programs of benchmarks.core instead")
    parser.add_argument("--iterations", default="10000,60000",
                        help="with --core: two iteration counts, LOW,HIGH (default 10000,60000)")
    parser.add_argument("--server", default="cogen", choices=SERVERS,
                        help="the server to count: cogen-web, or the bare pure-Python loop "
                             "of benchmarks.raw_wsgi (default cogen)")
    parser.add_argument("--connections", type=int, default=1,
                        help="keep-alive connections the client spreads the requests over, "
                             "one request in flight on each (default 1)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "client":
        client(args.port, int(args.requests), args.program or "hello", args.connections)
        return 0
    if args.role == "server":
        server(int(args.requests), args.python, args.program or "hello", args.connections,
               args.server)
        return 0
    if args.role == "core":
        if args.program not in CORE_PROGRAMS and args.program not in {
                f"asyncio{fn}" for fn in ASYNCIO_PROGRAMS.values()}:
            parser.error(f"unknown core program {args.program!r}")
        core_program(args.program, int(args.requests))
        return 0
    option, counts = ("--iterations", args.iterations) if args.core else ("--requests", args.requests)
    try:
        low, high = (int(n) for n in counts.split(","))
    except ValueError:
        parser.error(f"{option} wants LOW,HIGH, got {counts!r}")
    if not 0 < low < high:
        parser.error(f"{option} wants 0 < LOW < HIGH, got {counts!r}")
    if args.connections < 1:
        parser.error(f"--connections wants at least 1, got {args.connections}")
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH", file=sys.stderr)
        return 2
    if args.core:
        counted: dict[str, float] = {}
        for name in CORE_PROGRAMS:
            theirs = f"asyncio{ASYNCIO_PROGRAMS[name]}"
            for program in (name, theirs):
                if program not in counted:
                    ir_low = _count(low, args.python, ("core", program))
                    ir_high = _count(high, args.python, ("core", program))
                    counted[program] = (ir_high - ir_low) / (high - low)
            print(f"{name}: Ir/iteration: {counted[name]:.0f}; {theirs}: {counted[theirs]:.0f}; "
                  f"asyncio / cogen: {counted[theirs] / counted[name]:.2f}")
        return 0
    ir_low = _count(low, args.python, ("server", args.app), args.connections, args.server)
    ir_high = _count(high, args.python, ("server", args.app), args.connections, args.server)
    print(f"Ir total: {ir_low} ({low} requests), {ir_high} ({high} requests)")
    print(f"Ir/request: {(ir_high - ir_low) / (high - low):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
