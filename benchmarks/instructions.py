"""Instructions per keep-alive request of the hello app, counted by callgrind.

Run from the checkout (needs ``valgrind`` on PATH)::

    python3 -m benchmarks.instructions [--requests 200,1200] [--python PYTHON]

Wall or CPU time on a shared machine moves with the neighbours' load;
the number of instructions the server executes does not. So the server
runs under ``valgrind --tool=callgrind`` (which counts every instruction
it executes, ``Ir``), in-process: a :class:`~cogen.web.wsgi.WSGIServer`
on a :class:`~cogen.core.schedulers.Scheduler`, serving
``benchmarks.apps:hello`` on 127.0.0.1 with no access log. Its client is a
separate process (not under valgrind: children are not traced) that sends
``GET /`` on one keep-alive connection, waits for each whole response and
sends the next. After the last request the server shuts down. The hash
seed is fixed (``PYTHONHASHSEED=0``) so that runs compare.

Start-up (interpreter, imports, bind) costs the same at any request count,
so the server runs twice, with the two counts of ``--requests``, and the
figure is the difference in ``Ir`` divided by the difference in requests.
Prints one line: ``Ir/request: N`` (and each run's total).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def client(port: int, count: int) -> None:
    """Send ``count`` keep-alive requests to 127.0.0.1:``port``, one after another."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for _ in range(count):
            sock.sendall(_REQUEST)
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", buf[:head_end])
                    if match is None:
                        raise SystemExit("response without Content-Length")
                    end = head_end + 4 + int(match.group(1))
                    if len(buf) >= end:
                        buf = buf[end:]
                        break
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit("server closed the connection early")
                buf += chunk


def server(count: int, python: str) -> None:
    """Serve ``count`` hello requests to a client subprocess, then shut down."""
    from benchmarks.apps import hello
    from cogen.core.schedulers import Scheduler
    from cogen.web.wsgi import WSGIServer

    sched = Scheduler()
    served = 0

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        nonlocal served
        served += 1
        if served == count:
            sched.call_soon_threadsafe(srv.shutdown, 5.0)
        return hello(environ, start_response)

    srv = WSGIServer(("127.0.0.1", 0), app, sched, access_log=False)
    srv.start()
    port = srv.address[1]
    proc = subprocess.Popen([python, "-m", "benchmarks.instructions", "client",
                             "--port", str(port), "--requests", str(count)], cwd=_ROOT)
    sched.run()
    if proc.wait(timeout=60) != 0:
        raise SystemExit("the client failed")


def _count(requests: int, python: str) -> int:
    """Run the server under callgrind for ``requests`` requests; returns its total Ir."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        # a fixed hash seed: randomised str hashes change dict probing, hence the count
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        python, "-m", "benchmarks.instructions", "server",
                        "--requests", str(requests)],
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
    parser.add_argument("role", nargs="?", default="measure", choices=["measure", "server", "client"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--requests", default="200,1200",
                        help="two request counts, LOW,HIGH (default 200,1200)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "client":
        client(args.port, int(args.requests))
        return 0
    if args.role == "server":
        server(int(args.requests), args.python)
        return 0
    try:
        low, high = (int(n) for n in args.requests.split(","))
    except ValueError:
        parser.error(f"--requests wants LOW,HIGH, got {args.requests!r}")
    if not 0 < low < high:
        parser.error(f"--requests wants 0 < LOW < HIGH, got {args.requests!r}")
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH", file=sys.stderr)
        return 2
    ir_low = _count(low, args.python)
    ir_high = _count(high, args.python)
    print(f"Ir total: {ir_low} ({low} requests), {ir_high} ({high} requests)")
    print(f"Ir/request: {(ir_high - ir_low) / (high - low):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
