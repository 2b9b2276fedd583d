"""The Redis broker across processes: cogen against redis-py's asyncio client, one run.

Run from the repository root (``pip install -e '.[test]'`` brings redis-py and
hiredis; ``redis-server`` from Debian's package)::

    python3 -m benchmarks.broker [--hops 5000] [--messages 5000] [--polls 1000] [--repeats 3]

One ``redis-server`` (persistence off) on a free port serves every program.

- ``signal ring``: 4 processes pass a token round a ring, each waiting on its
  own name and signalling the next one's: cogen ``WaitForSignal`` /
  ``Signal`` through ``Scheduler(broker=...)``, against redis-py asyncio
  ``subscribe`` / ``publish`` doing the same hops -> hops/s (each hop is one
  publish and one delivery across processes).
- ``stream queue``: 1 process publishes ``--messages`` to a named
  ``PublishSubscribeQueue`` and 3 processes fetch them all, against redis-py
  asyncio ``XADD`` and three ``XREAD BLOCK`` readers -> messages/s (from the
  first publish until the last reader has them all).
- ``fan-out``: ``cogen-web --workers 4 --broker`` serving
  ``examples.signals``; ``--polls`` long polls parked across the workers, then
  one ``/send`` -> the time from that send to each poll's answer (p50, p99,
  and the last).

Ratios are cogen's rate over redis-py's (above 1: cogen is faster).
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
RING = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is missing (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def _ready_then_go(ready: Any, go: Any) -> Any:
    """Give the broker's listener time to subscribe, say ready, wait for go (the loop keeps running)."""
    from cogen.core.events import Sleep
    yield Sleep(0.5)
    ready.set()
    while go is not None and not go.is_set():
        yield Sleep(0.005)


# -- signal ring ----------------------------------------------------------------------------
def cogen_ring_member(url: str, k: int, hops: int, tag: str, ready: Any, go: Any, out: Any) -> None:
    from cogen.core.events import Signal, WaitForSignal
    from cogen.core.schedulers import Scheduler

    sched = Scheduler(broker=url)
    mine, nxt = f"{tag}:{k}", f"{tag}:{(k + 1) % RING}"

    def member() -> Any:
        # only the first waits for go: the others must be parked when the token comes
        yield from _ready_then_go(ready, go if k == 0 else None)
        if k == 0:
            started = time.perf_counter()
            yield Signal(nxt, 0)
        while True:
            value = yield WaitForSignal(mine, timeout=30)
            if k == 0 and value >= hops:
                out.put(time.perf_counter() - started)
                yield Signal(nxt, -1)  # tell the others to stop
                return
            if value < 0:
                if k != RING - 1:
                    yield Signal(nxt, -1)
                return
            yield Signal(nxt, value + 1)

    sched.add(member)
    sched.run()
    sched.close()


def redispy_ring_member(url: str, k: int, hops: int, tag: str, ready: Any, go: Any, out: Any) -> None:
    import redis.asyncio as aioredis

    async def main() -> None:
        r = aioredis.Redis.from_url(url)
        pubsub = r.pubsub()
        mine, nxt = f"{tag}:{k}", f"{tag}:{(k + 1) % RING}"
        await pubsub.subscribe(mine)
        await pubsub.get_message(timeout=5)  # the subscribe confirmation
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        if k == 0:
            started = time.perf_counter()
            await r.publish(nxt, 0)
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
            if msg is None:
                continue
            value = int(msg["data"])
            if k == 0 and value >= hops:
                out.put(time.perf_counter() - started)
                await r.publish(nxt, -1)
                break
            if value < 0:
                if k != RING - 1:
                    await r.publish(nxt, -1)
                break
            await r.publish(nxt, value + 1)
        await pubsub.aclose()
        await r.aclose()

    asyncio.run(main())


# -- stream queue ---------------------------------------------------------------------------
def cogen_queue_member(url: str, k: int, count: int, tag: str, ready: Any, go: Any, out: Any) -> None:
    from cogen.core.pubsub import PublishSubscribeQueue
    from cogen.core.schedulers import Scheduler

    sched = Scheduler(broker=url)
    queue = PublishSubscribeQueue(name=tag)

    def member() -> Any:
        if k > 0:
            yield queue.subscribe(f"reader{k}")
        yield from _ready_then_go(ready, go)
        started = time.perf_counter()
        if k == 0:
            for n in range(count):
                yield queue.publish(n)
            return
        got = 0
        while got < count:
            got += len((yield queue.fetch(f"reader{k}", timeout=30)))
        out.put(time.perf_counter() - started)

    sched.add(member)
    sched.run()
    sched.close()


def redispy_queue_member(url: str, k: int, count: int, tag: str, ready: Any, go: Any, out: Any) -> None:
    import redis.asyncio as aioredis

    async def main() -> None:
        r = aioredis.Redis.from_url(url)
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        started = time.perf_counter()
        if k == 0:
            for n in range(count):
                await r.xadd(tag, {"v": n}, maxlen=100000, approximate=True)
        else:
            last, got = "0-0", 0
            while got < count:
                reply = await r.xread({tag: last}, block=30000, count=1000)
                for _stream, entries in reply:
                    got += len(entries)
                    last = entries[-1][0]
            out.put(time.perf_counter() - started)
        await r.aclose()

    asyncio.run(main())


def run_group(target: Any, url: str, arg: int, tag: str) -> float:
    """Start RING processes of ``target``, release them together; the longest time reported."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    out = ctx.Queue()
    readies = [ctx.Event() for _ in range(RING)]
    procs = [ctx.Process(target=target, args=(url, k, arg, tag, readies[k], go, out)) for k in range(RING)]
    for p in procs:
        p.start()
    for ready in readies:
        if not ready.wait(30):
            raise RuntimeError(f"{target.__name__} did not get ready")
    go.set()
    times = []
    expected = 1 if "ring" in target.__name__ else RING - 1
    for _ in range(expected):
        times.append(out.get(timeout=120))
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    return max(times)


# -- fan-out ---------------------------------------------------------------------------------
async def fan_out(port: int, polls: int) -> list[float]:
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    conns = []
    for start in range(0, polls, 100):
        batch = [asyncio.open_connection("127.0.0.1", port) for _ in range(min(100, polls - start))]
        conns += await asyncio.gather(*batch)
    for _reader, writer in conns:
        writer.write(b"GET /wait/fan?timeout=60 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.gather(*(w.drain() for _r, w in conns))

    async def answer(reader: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        arrivals.append(loop.time())

    waits = [asyncio.ensure_future(answer(r)) for r, _w in conns]
    await asyncio.sleep(1.0)  # every poll parked in its worker
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = loop.time()
    writer.write(b"POST /send/fan HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\ngo")
    await writer.drain()
    await asyncio.wait_for(asyncio.gather(*waits), 60)
    writer.close()
    for _r, w in conns:
        w.close()
    return sorted(t - sent for t in arrivals)


def run_fan_out(url: str, polls: int) -> list[float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cogen.web", "examples.signals:application",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "4",
                             "--broker", url, "--backlog", "4096"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "workers serving" in line:
                break
        return asyncio.run(fan_out(port, polls))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hops", type=int, default=5000)
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--polls", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = tempfile.mkdtemp(prefix="cogen-bench-redis-")
    redis_proc, url = start_redis(tmp)
    rows: dict[str, list[float]] = {k: [] for k in ("ring-cogen", "ring-redispy", "queue-cogen",
                                                     "queue-redispy")}
    fan: list[list[float]] = []
    try:
        for rep in range(args.repeats):
            tag = f"b{rep}-{os.getpid()}"
            rows["ring-cogen"].append(args.hops / run_group(cogen_ring_member, url, args.hops, tag + "c"))
            rows["ring-redispy"].append(args.hops / run_group(redispy_ring_member, url, args.hops, tag + "r"))
            rows["queue-cogen"].append(args.messages / run_group(cogen_queue_member, url, args.messages,
                                                                 tag + "qc"))
            rows["queue-redispy"].append(args.messages / run_group(redispy_queue_member, url,
                                                                   args.messages, tag + "qr"))
            if args.polls:
                fan.append(run_fan_out(url, args.polls))
            print(f"run {rep + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rows.items())
                  + (f", fan-out last {fan[-1][-1] * 1000:.1f} ms" if fan else ""), flush=True)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"\nmedians of {args.repeats} runs ({RING} processes, one local redis-server)")
    print(f"{'benchmark':28s} {'cogen':>12s} {'redis-py':>12s} {'ratio':>7s}")
    for key, label in (("ring", "signal ring hops/s"), ("queue", "stream queue messages/s")):
        c, r = med[f"{key}-cogen"], med[f"{key}-redispy"]
        print(f"{label:28s} {c:12,.0f} {r:12,.0f} {c / r:6.2f}x")
    if fan:
        p50 = statistics.median(statistics.median(f) for f in fan) * 1000
        p99 = statistics.median(f[int(len(f) * 0.99) - 1] for f in fan) * 1000
        last = statistics.median(f[-1] for f in fan) * 1000
        print(f"fan-out to {args.polls} long polls over 4 workers: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"last {last:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
