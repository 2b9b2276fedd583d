"""WebSocket benchmark: cogen-web against the ``websockets`` package's asyncio server, one run.

Run from the repository root (``pip install -e '.[test]'`` brings both)::

    python3 -m benchmarks.websocket [--clients 100] [--duration 5] [--idle 10000] [--repeats 3]

Each server runs alone, pinned to CPU 0 (``--server-cpu``); the load client
runs in this process, pinned to CPU 1 (``--client-cpu``). Both servers echo
every message; compression is off on both.

- ``echo``: ``--clients`` connections each send a 32-byte text message and
  wait for its echo, over and over, for ``--duration`` seconds -> messages
  echoed per second. The client is a lean asyncio protocol that sends
  pre-built masked frames and counts reply bytes, so it costs far less than
  either server per message.
- ``idle``: ``--idle`` WebSockets opened and left idle -> the server's
  resident memory per connection (the growth of its RSS over the count).

The last column is cogen's figure divided by websockets' (above 1: cogen
does more messages per second; below 1 for memory: cogen uses less).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESSAGE = b"0123456789abcdef0123456789abcdef"

#: The WSGI app cogen-web serves: an echo handler.
COGEN_APP = "benchmarks.websocket:application"


def application(environ: dict[str, Any], start_response: Any) -> Any:
    """Echo every WebSocket message back (cogen-web side)."""
    return environ["cogen"].websocket.serve(_echo, compression=False)


async def _echo(ws: Any) -> None:
    while True:
        await ws.send(await ws.receive())


def serve_websockets(port: int) -> None:
    """The peer: websockets' asyncio server echoing, compression off."""
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", port, compression=None, max_queue=None, backlog=4096):
            await asyncio.Future()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(name: str, port: int) -> list[str]:
    if name == "cogen":
        return [sys.executable, "-m", "cogen.web", COGEN_APP, "--host", "127.0.0.1", "--port", str(port),
                "--backlog", "4096", "--websocket-ping-interval", "0"]
    return [sys.executable, "-m", "benchmarks.websocket", "--serve-websockets", str(port)]


def start(name: str, port: int, cpu: int) -> subprocess.Popen[bytes]:
    def setup() -> None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    proc = subprocess.Popen(server_command(name, port), cwd=ROOT, preexec_fn=setup,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start listening")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class EchoClient(asyncio.Protocol):
    """One connection: handshake, then send a frame and wait for its echo, repeatedly."""

    def __init__(self, port: int, counter: list[int], stop: Callable[[], bool], opened: asyncio.Future[None]):
        self.port, self.counter, self.stop, self.opened = port, counter, stop, opened
        self.frame = masked_text_frame(MESSAGE)
        self.reply = 2 + len(MESSAGE)
        self.buf = b""
        self.upgraded = False
        self.transport: Any = None
        self.running = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                         f"Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def go(self) -> None:
        self.running = True
        self.transport.write(self.frame)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"no upgrade: {self.buf[:80]!r}")
            self.buf = self.buf[end + 4:]
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(None)
            return
        while len(self.buf) >= self.reply:
            self.buf = self.buf[self.reply:]
            self.counter[0] += 1
            if not self.stop():
                self.transport.write(self.frame)


async def open_many(port: int, count: int, counter: list[int], stop: Callable[[], bool]) -> list[EchoClient]:
    loop = asyncio.get_running_loop()
    clients: list[EchoClient] = []
    for start_at in range(0, count, 200):  # in batches: a backlog overflow would add SYN retries
        batch = []
        for _ in range(min(200, count - start_at)):
            opened: asyncio.Future[None] = loop.create_future()
            _t, proto = await loop.create_connection(
                lambda o=opened: EchoClient(port, counter, stop, o), "127.0.0.1", port)
            batch.append(proto)
        await asyncio.wait_for(asyncio.gather(*(c.opened for c in batch)), 30)
        clients += batch
    return clients


async def echo_rate(port: int, clients: int, duration: float) -> float:
    counter = [0]
    stopping = [False]
    conns = await open_many(port, clients, counter, lambda: stopping[0])
    for c in conns:
        c.go()
    await asyncio.sleep(0.5)  # warm-up
    first, t0 = counter[0], time.perf_counter()
    await asyncio.sleep(duration)
    done, t1 = counter[0], time.perf_counter()
    stopping[0] = True
    for c in conns:
        c.transport.close()
    return (done - first) / (t1 - t0)


async def idle_memory(port: int, pid: int, count: int) -> float:
    before = rss_kb(pid)
    conns = await open_many(port, count, [0], lambda: True)
    await asyncio.sleep(0.5)
    after = rss_kb(pid)
    for c in conns:
        c.transport.close()
    return (after - before) / count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--serve-websockets", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_websockets:
        serve_websockets(args.serve_websockets)
        return 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results: dict[str, dict[str, list[float]]] = {"cogen": {"echo": [], "idle": []},
                                                   "websockets": {"echo": [], "idle": []}}
    for rep in range(args.repeats):
        for name in ("cogen", "websockets"):  # taking turns: load on the machine hits both alike
            port = free_port()
            proc = start(name, port, args.server_cpu)
            try:
                rate = asyncio.run(echo_rate(port, args.clients, args.duration))
                per_conn = asyncio.run(idle_memory(port, proc.pid, args.idle)) if args.idle else 0.0
            finally:
                proc.kill()
                proc.wait()
            results[name]["echo"].append(rate)
            results[name]["idle"].append(per_conn)
            print(f"run {rep + 1} {name:10s} echo {rate:10,.0f} msg/s   idle {per_conn:6.2f} KiB/conn",
                  flush=True)
    print(f"\nmedians of {args.repeats} runs, {args.clients} clients echoing, {args.idle} idle; "
          f"server on CPU {args.server_cpu}, client on CPU {args.client_cpu}")
    print(f"{'benchmark':34s} {'cogen':>12s} {'websockets':>12s} {'ratio':>7s}")
    for key, label in (("echo", "echo messages/s"), ("idle", "KiB per idle WebSocket")):
        c = statistics.median(results["cogen"][key])
        w = statistics.median(results["websockets"][key])
        print(f"{label:34s} {c:12,.2f} {w:12,.2f} {c / w if w else float('nan'):6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
