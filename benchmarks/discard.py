"""A load client that throws response bodies away without copying them: for large bodies.

wrk reads every response into its own 8 KiB buffer. For a 10 MiB body on
loopback that copy is the whole cost of the transfer on the client's side,
and with a server that sends with ``sendfile()`` (no copy of its own) wrk,
not the server, is what saturates: a run then measures wrk. This client
reads each response's head, then discards its body with
``recv(MSG_TRUNC)``, which Linux implements for TCP without copying the
data out, so the receiving side costs little and the server is what a run
measures.

Run by ``benchmarks/wsgi.py`` for the ``*-discard`` workloads, one process
pinned like wrk; by hand::

    python3 benchmarks/discard.py --port 8080 --path / --conns 100 --duration 5

It keeps ``--conns`` keep-alive connections busy for ``--duration``
seconds, each sending ``GET`` and waiting for the whole answer before the
next, and prints one line in the shape of the benchmark's wrk script:
``WRK_JSON {"requests": ..., "duration_us": ..., "p50_us": ..., ...}``.
Linux only (``MSG_TRUNC`` on a TCP socket); responses need a
``Content-Length``.
"""
from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time
from array import array
from typing import Any

#: The largest body part one call discards, and the size of the (never
#: written) buffer that call is given.
DISCARD_MAX = 4 << 20


class _Conn:
    """One client connection's state: its socket and the response it is reading."""

    __slots__ = ("body_left", "head", "sent_at", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.head = b""
        self.body_left = -1  # -1: reading the head
        self.sent_at = 0.0


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    raise ValueError("a response without Content-Length")


def run(host: str, port: int, path: str, conns: int, duration: float, close: bool,
        timeout: float) -> dict[str, Any]:
    """Keep ``conns`` connections requesting ``path`` for ``duration`` s; wrk-shaped figures."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
               + ("Connection: close\r\n" if close else "") + "\r\n").encode()
    scratch = memoryview(bytearray(DISCARD_MAX))
    sel = selectors.DefaultSelector()
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    latencies = array("d")

    def start(conn: _Conn | None) -> None:
        if conn is not None:
            sel.unregister(conn.sock)
            conn.sock.close()
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError:
            errors["connect"] += 1
            return
        sock.setblocking(False)
        new = _Conn(sock)
        sel.register(sock, selectors.EVENT_READ, new)
        send(new)

    def send(conn: _Conn) -> None:
        conn.head, conn.body_left = b"", -1
        conn.sent_at = time.perf_counter()
        try:
            conn.sock.sendall(request)  # (small: the kernel takes it at once)
        except OSError:
            errors["write"] += 1
            start(conn)

    def answered(conn: _Conn, ok: bool) -> None:
        latencies.append(time.perf_counter() - conn.sent_at)
        if not ok:
            errors["status"] += 1
        if time.perf_counter() >= end:
            conn.sent_at = 0.0  # done: not waiting for anything
        elif close or not ok:
            start(conn)
        else:
            send(conn)

    def readable(conn: _Conn) -> None:
        sock = conn.sock
        while True:
            try:
                if conn.body_left < 0:
                    data = sock.recv(65536)
                    if not data:
                        errors["read"] += 1
                        start(conn)
                        return
                    conn.head += data
                    at = conn.head.find(b"\r\n\r\n")
                    if at < 0:
                        continue
                    head, rest = conn.head[:at], conn.head[at + 4:]
                    conn.body_left = _content_length(head) - len(rest)
                    conn.head = head
                else:
                    n = sock.recv_into(scratch, min(conn.body_left, DISCARD_MAX), socket.MSG_TRUNC)
                    if n == 0:
                        errors["read"] += 1
                        start(conn)
                        return
                    conn.body_left -= n
            except BlockingIOError:
                return
            except (OSError, ValueError):
                errors["read"] += 1
                start(conn)
                return
            if conn.body_left == 0:
                answered(conn, conn.head.startswith(b"HTTP/1.1 200 "))
                return

    t0 = time.perf_counter()
    end = t0 + duration
    for _ in range(conns):
        start(None)
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(timeout=min(timeout, end - now)):
            readable(key.data)
        for key in list(sel.get_map().values()):
            conn = key.data
            if conn.sent_at and time.perf_counter() - conn.sent_at > timeout:
                errors["timeout"] += 1
                start(conn)
    elapsed = time.perf_counter() - t0
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()
    ordered = sorted(latencies)

    def percentile(p: float) -> int:
        if not ordered:
            return 0
        return int(1e6 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))])

    return {"requests": len(ordered), "duration_us": int(elapsed * 1e6), **errors,
            "p50_us": percentile(50), "p99_us": percentile(99), "p999_us": percentile(99.9),
            "max_us": int(1e6 * ordered[-1]) if ordered else 0}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run, print the WRK_JSON line; 2 on a bad argument."""
    p = argparse.ArgumentParser(prog="benchmarks/discard.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--conns", type=int, default=10)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds one response may take (5)")
    p.add_argument("--close", action="store_true", help="a new connection per request")
    args = p.parse_args(argv)
    if not hasattr(socket, "MSG_TRUNC") or not sys.platform.startswith("linux"):
        p.error("needs Linux (MSG_TRUNC on a TCP socket)")
    if args.conns < 1 or args.duration <= 0:
        p.error("--conns must be at least 1 and --duration positive")
    res = run(args.host, args.port, args.path, args.conns, args.duration, args.close, args.timeout)
    print("WRK_JSON " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
